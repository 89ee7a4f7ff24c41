package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/storage"
)

// StagingName is the directory under a destination where the tasks of a
// cluster job write their files before the job's commit. Scans skip it
// (names starting with "_" are hidden).
const StagingName = "_sluice_staging"

// StagedFile is a complete file written under a staging name, and the path
// it is published at.
type StagedFile struct {
	From, To    string
	Rows, Bytes int64
}

// Publish commits the files that the tasks of job jobID staged for the
// write to dest, with the write mode's semantics and the local executor's
// guarantees (see finish): the files are moved into place (storage.Rename),
// old files go in overwrite mode, _SUCCESS is written last. It is safe to
// run again after a failure or a crash at any point: a destination whose
// _SUCCESS already names jobID is returned as it is, files already moved
// stay, and the rest are moved. It does not remove the staging directory
// (see RemoveStaging).
func Publish(ctx context.Context, fs storage.FS, dest string, mode plan.WriteMode, jobID string, files []StagedFile) (Manifest, error) {
	prev, err := readManifest(ctx, fs, storage.Join(dest, ManifestName))
	if err != nil {
		return Manifest{}, err
	}
	if prev.JobID == jobID {
		return prev, nil // committed by an earlier attempt
	}
	all, err := fs.List(ctx, dest)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return Manifest{}, err
	}
	ours := map[string]bool{}
	for _, f := range files {
		ours[pathKey(f.To)] = true
	}
	staging := pathKey(storage.Join(dest, StagingName))
	var existing []storage.FileInfo
	for _, e := range all {
		k := pathKey(e.Path)
		if !ours[k] && !strings.HasPrefix(k, staging) {
			existing = append(existing, e)
		}
	}
	if len(existing) > 0 && mode == plan.ModeError {
		return Manifest{}, fmt.Errorf("%s: %w (%d files; mode is error: use mode overwrite to replace it or append to add to it)", dest, storage.ErrExist, len(existing))
	}
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b StagedFile) int { return strings.Compare(a.To, b.To) })
	out := make([]ManifestFile, len(files))
	for i, f := range files {
		out[i] = ManifestFile{Path: f.To, Rows: f.Rows, Bytes: f.Bytes}
	}
	m, err := finish(ctx, fs, dest, mode, jobID, existing, out, func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, f := range files {
			g.Go(func() error {
				if err := storage.Rename(gctx, fs, f.From, f.To); err != nil {
					return namePath(f.From, "publish", err)
				}
				return nil
			})
		}
		return g.Wait()
	})
	return m.Manifest, err
}

// RemoveStaging deletes every file under dest's staging directory of job
// jobID (all its tasks' attempts, committed or not). On a local disk it
// removes the directories too, and dest itself when that leaves it empty.
func RemoveStaging(ctx context.Context, fs storage.FS, dest, jobID string) error {
	return RemoveDir(ctx, fs, storage.Join(dest, StagingName, jobID), storage.Join(dest, StagingName), dest)
}

// RemoveDir deletes every file under dir. On a local file system it also
// removes dir itself, then each of parents in order while it is empty
// (object stores have no directories).
func RemoveDir(ctx context.Context, fs storage.FS, dir string, parents ...string) error {
	if !storage.IsURL(dir) || strings.HasPrefix(dir, "file://") {
		defer func() {
			local := func(p string) string { return filepath.FromSlash(strings.TrimPrefix(p, "file://")) }
			_ = os.RemoveAll(local(dir))
			for _, p := range parents {
				_ = os.Remove(local(p)) // only when empty
			}
		}()
	}
	files, err := fs.List(ctx, dir)
	if errors.Is(err, storage.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, f := range files {
		g.Go(func() error { return fs.Delete(gctx, f.Path) })
	}
	return g.Wait()
}
