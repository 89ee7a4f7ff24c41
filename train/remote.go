package train

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/storage"
)

// --out and --resume in object storage (s3://): a run writes into a local
// staging directory and publishes what it wrote: each checkpoint once it
// is whole, the model and metrics at the end. A run that fails leaves
// nothing remote beyond the checkpoints it had published; a checkpoint's
// state.json goes up last, so a checkpoint without one is incomplete and
// --resume refuses it.

// publish uploads every file under dir (below sub, "" for all) to
// remote/sub/..., state.json files last.
func publish(ctx context.Context, dir, sub, remote string) error {
	fsys, err := storage.For(remote)
	if err != nil {
		return fmt.Errorf("train: --out %s: %w", remote, err)
	}
	var files []string
	root := filepath.Join(dir, sub)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return fmt.Errorf("train: staging %s: %w", root, err)
	}
	slices.SortStableFunc(files, func(a, b string) int {
		return boolInt(strings.HasSuffix(a, "state.json")) - boolInt(strings.HasSuffix(b, "state.json"))
	})
	for _, rel := range files {
		if err := uploadFile(ctx, fsys, filepath.Join(dir, filepath.FromSlash(rel)), storage.Join(remote, rel)); err != nil {
			return fmt.Errorf("train: --out: %w", err)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// publishMetrics uploads dir's metrics.jsonl and metrics.parquet to remote.
func publishMetrics(ctx context.Context, dir, remote string) error {
	fsys, err := storage.For(remote)
	if err != nil {
		return fmt.Errorf("train: --out %s: %w", remote, err)
	}
	for _, name := range []string{"metrics.jsonl", "metrics.parquet"} {
		if err := uploadFile(ctx, fsys, filepath.Join(dir, name), storage.Join(remote, name)); err != nil {
			return fmt.Errorf("train: --out: %w", err)
		}
	}
	return nil
}

func uploadFile(ctx context.Context, fsys storage.FS, local, remote string) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	up, err := fsys.Create(ctx, remote)
	if err != nil {
		return fmt.Errorf("%s: %w", remote, err)
	}
	if _, err := io.Copy(up, f); err != nil {
		up.Close()
		up.Abort(ctx)
		return fmt.Errorf("%s: %w", remote, err)
	}
	if err := up.Close(); err != nil {
		up.Abort(ctx)
		return fmt.Errorf("%s: %w", remote, err)
	}
	if err := up.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", remote, err)
	}
	return nil
}

// fetchDir copies every object under the remote directory into a new
// local directory, which the caller removes.
func fetchDir(ctx context.Context, remote string) (string, error) {
	fsys, err := storage.For(remote)
	if err != nil {
		return "", err
	}
	prefix := strings.TrimSuffix(remote, "/") + "/"
	infos, err := fsys.List(ctx, prefix)
	if err != nil {
		return "", err
	}
	if len(infos) == 0 {
		return "", fmt.Errorf("%s: %w", remote, storage.ErrNotExist)
	}
	dir, err := os.MkdirTemp("", "sluice-resume-")
	if err != nil {
		return "", err
	}
	for _, fi := range infos {
		rel := strings.TrimPrefix(fi.Path, prefix)
		b, err := storage.ReadFile(ctx, fsys, fi.Path)
		if err == nil {
			dst := filepath.Join(dir, filepath.FromSlash(rel))
			if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
				err = os.WriteFile(dst, b, 0o644)
			}
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}
