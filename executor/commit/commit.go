package commit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/storage"
)

// ManifestName is the file a successful write publishes last, listing its files.
const ManifestName = "_SUCCESS"

// Manifest is the content of the _SUCCESS file.
type Manifest struct {
	JobID   string         `json:"job_id"`
	Created time.Time      `json:"created"`
	Rows    int64          `json:"rows"`
	Files   []ManifestFile `json:"files"`
}

// ManifestFile is one published file.
type ManifestFile struct {
	Path  string `json:"path"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
}

// Finish publishes a job's new files (with publish) so that a failure at
// any step leaves the destination readable: old or new data, never neither.
//
//  1. In append mode, read the previous manifest, whose files the new one
//     lists too (before anything is published, so a bad one fails the job
//     with the destination untouched).
//  2. Publish every new file. If that fails, publish has removed what it
//     published (or can publish again, for a retried cluster commit): the
//     old files and the old _SUCCESS are as they were.
//  3. In overwrite mode, delete the old files not in the new set, the old
//     _SUCCESS first, so a failure here leaves no manifest naming gone files.
//  4. Write _SUCCESS last.
//
// It returns the manifest written and the rows of the one it extends (in
// append mode; 0 otherwise).
func Finish(ctx context.Context, fs storage.FS, dest string, mode plan.WriteMode, jobID string, existing []storage.FileInfo,
	files []ManifestFile, publish func(context.Context) error) (Manifest, int64, error) {
	m, err := finish(ctx, fs, dest, mode, jobID, existing, files, publish)
	return m.Manifest, m.prevRows, err
}

func finish(ctx context.Context, fs storage.FS, dest string, mode plan.WriteMode, jobID string, existing []storage.FileInfo,
	files []ManifestFile, publish func(context.Context) error) (manifest, error) {
	manifestPath := storage.Join(dest, ManifestName)
	m := manifest{Manifest: Manifest{JobID: jobID, Created: time.Now().UTC()}}
	if mode == plan.ModeAppend {
		prev, err := ReadManifest(ctx, fs, manifestPath)
		if err != nil {
			return m, err
		}
		m.Files, m.Rows, m.prevRows = prev.Files, prev.Rows, prev.Rows
	}
	for _, f := range files {
		m.Files = append(m.Files, f)
		m.Rows += f.Rows
	}
	if err := publish(ctx); err != nil {
		return m, err
	}

	if mode == plan.ModeOverwrite {
		keep := map[string]bool{}
		for _, f := range files {
			keep[PathKey(f.Path)] = true
		}
		// The old manifest goes first (pass one): from here on the
		// destination holds a mix until the new one is written.
		for _, manifest := range []bool{true, false} {
			for _, e := range existing {
				if (path.Base(e.Path) == ManifestName) != manifest || keep[PathKey(e.Path)] {
					continue
				}
				if err := fs.Delete(ctx, e.Path); err != nil {
					return m, fmt.Errorf("the new files are published, but deleting the old file %s failed, so %s holds old and new files: %w", e.Path, dest, err)
				}
			}
		}
	}

	data, err := json.MarshalIndent(m.Manifest, "", "  ")
	if err != nil {
		return m, err
	}
	u, err := fs.Create(ctx, manifestPath)
	if err != nil {
		return m, err
	}
	if _, err := u.Write(append(data, '\n')); err != nil {
		_ = u.Close()
		_ = u.Abort(ctx)
		return m, err
	}
	if err := u.Close(); err != nil {
		_ = u.Abort(ctx)
		return m, err
	}
	if err := u.Commit(ctx); err != nil {
		_ = u.Abort(context.WithoutCancel(ctx))
		return m, err
	}
	return m, nil
}

// manifest is a Manifest being written, with the rows of the one it extends.
type manifest struct {
	Manifest
	prevRows int64
}

// ReadManifest returns the manifest at p, or an empty one if there is none.
func ReadManifest(ctx context.Context, fs storage.FS, p string) (Manifest, error) {
	var m Manifest
	data, err := storage.ReadFile(ctx, fs, p)
	if errors.Is(err, storage.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%s: previous manifest: %w (mode is append, which extends it: fix or delete it, or use mode overwrite)", p, err)
	}
	return m, nil
}

// PathKey makes a path comparable with the paths List returns, which are OS
// paths for file:// URLs.
func PathKey(p string) string {
	if rest, ok := strings.CutPrefix(p, "file://"); ok {
		return filepath.Clean(filepath.FromSlash(rest))
	}
	if storage.IsURL(p) {
		return p
	}
	return filepath.Clean(p)
}

// NamePath adds path to err unless err already names it.
func NamePath(path, op string, err error) error {
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// StagingName is the directory under a destination where the tasks of a
// cluster job write their files before the job's commit. Scans skip it
// (names starting with "_" are hidden).
const StagingName = "_sluice_staging"

// AttemptDir is where one attempt of a sink task writes its files, under
// the destination, until the job's commit publishes one attempt per task.
// task is the task's index in its stage.
func AttemptDir(dest, job string, task, attempt int) string {
	return storage.Join(dest, StagingName, job, fmt.Sprintf("t%05d-a%d", task, attempt))
}

// CheckDest refuses a destination that already holds files when mode is
// error; existing are the files found there (the staging directory and the
// job's own files left out).
func CheckDest(dest string, mode plan.WriteMode, existing int) error {
	if existing > 0 && mode == plan.ModeError {
		return fmt.Errorf("%s: %w (%d files; mode is error: use mode overwrite to replace it or append to add to it)", dest, storage.ErrExist, existing)
	}
	return nil
}

// StagedFile is a complete file written under a staging name, and the path
// it is published at.
type StagedFile struct {
	From, To    string
	Rows, Bytes int64
}

// Publish commits the files that the tasks of job jobID staged for the
// write to dest, with the write mode's semantics and the local executor's
// guarantees (see Finish): the files are moved into place (storage.Rename),
// old files go in overwrite mode, _SUCCESS is written last. It is safe to
// run again after a failure or a crash at any point: a destination whose
// _SUCCESS already names jobID is returned as it is, files already moved
// stay, and the rest are moved. It does not remove the staging directory
// (see RemoveStaging).
func Publish(ctx context.Context, fs storage.FS, dest string, mode plan.WriteMode, jobID string, files []StagedFile) (Manifest, error) {
	prev, err := ReadManifest(ctx, fs, storage.Join(dest, ManifestName))
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
		ours[PathKey(f.To)] = true
	}
	staging := PathKey(storage.Join(dest, StagingName))
	var existing []storage.FileInfo
	for _, e := range all {
		k := PathKey(e.Path)
		if !ours[k] && !strings.HasPrefix(k, staging) {
			existing = append(existing, e)
		}
	}
	if err := CheckDest(dest, mode, len(existing)); err != nil {
		return Manifest{}, err
	}
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b StagedFile) int { return strings.Compare(a.To, b.To) })
	out := make([]ManifestFile, len(files))
	for i, f := range files {
		out[i] = ManifestFile{Path: f.To, Rows: f.Rows, Bytes: f.Bytes}
	}
	m, _, err := Finish(ctx, fs, dest, mode, jobID, existing, out, func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, f := range files {
			g.Go(func() error {
				if err := storage.Rename(gctx, fs, f.From, f.To); err != nil {
					return NamePath(f.From, "publish", err)
				}
				return nil
			})
		}
		return g.Wait()
	})
	return m, err
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
