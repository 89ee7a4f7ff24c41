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
// any step leaves the visible files of dest as they were (the old files and
// the old _SUCCESS), or all new: never a mix, never neither.
//
//  1. Read the previous manifest (before anything moves, so a bad one fails
//     the job with the destination untouched). In append mode the new one
//     lists its files too. In overwrite mode only the files it lists are
//     replaced: a visible file it does not list (or any visible file, when
//     there is no manifest) is not Sluice's to delete, and the write is
//     refused naming it (see CheckOverwrite).
//  2. Publish every new file. If that fails, unpublish takes them back.
//  3. In overwrite mode, move the old files and the old _SUCCESS under
//     dest/_sluice_trash/JOB/ (hidden from scans), so they can come back.
//  4. Write _SUCCESS. If that (or step 3) fails, the old files come back
//     and unpublish takes the new ones back.
//  5. Delete the trash; a failure there leaves only hidden files.
//
// unpublish must be safe to call after a publish that failed part way or
// after one that succeeded. existing are the files listed under dest before
// the write (the job's own new files and staging left out).
//
// It returns the manifest written and the rows of the one it extends (in
// append mode; 0 otherwise).
func Finish(ctx context.Context, fs storage.FS, dest string, mode plan.WriteMode, jobID string, existing []storage.FileInfo,
	files []ManifestFile, publish, unpublish func(context.Context) error) (Manifest, int64, error) {
	m, err := finish(ctx, fs, dest, mode, jobID, existing, files, publish, unpublish)
	return m.Manifest, m.prevRows, err
}

// TrashName is the directory under a destination where an overwrite keeps
// the files it replaces until its _SUCCESS is written.
const TrashName = "_sluice_trash"

func finish(ctx context.Context, fs storage.FS, dest string, mode plan.WriteMode, jobID string, existing []storage.FileInfo,
	files []ManifestFile, publish, unpublish func(context.Context) error) (manifest, error) {
	manifestPath := storage.Join(dest, ManifestName)
	trash := storage.Join(dest, TrashName, jobID)
	m := manifest{Manifest: Manifest{JobID: jobID, Created: time.Now().UTC()}}
	prev, err := ReadManifest(ctx, fs, manifestPath)
	if err != nil {
		return m, err
	}
	var old []string // the files an overwrite replaces
	switch mode {
	case plan.ModeAppend:
		m.Files, m.Rows, m.prevRows = prev.Files, prev.Rows, prev.Rows
	case plan.ModeOverwrite:
		if prev.JobID == "" {
			// A retried commit may have moved the old manifest already.
			if prev, err = ReadManifest(ctx, fs, storage.Join(trash, ManifestName)); err != nil {
				return m, err
			}
		}
		if old, err = CheckOverwrite(dest, prev, existing, files); err != nil {
			return m, err
		}
	}
	for _, f := range files {
		m.Files = append(m.Files, f)
		m.Rows += f.Rows
	}
	rctx := context.WithoutCancel(ctx)
	undo := func(err error, moved [][2]string) error {
		errs := []error{err}
		for _, mv := range moved {
			if rerr := storage.Rename(rctx, fs, mv[1], mv[0]); rerr != nil {
				errs = append(errs, fmt.Errorf("rolling back: %s stays at %s: %w", mv[0], mv[1], rerr))
			}
		}
		if uerr := unpublish(rctx); uerr != nil {
			errs = append(errs, fmt.Errorf("rolling back the new files: %w", uerr))
		}
		return errors.Join(errs...)
	}
	if err := publish(ctx); err != nil {
		return m, undo(err, nil)
	}

	var moved [][2]string
	for _, p := range old {
		to := storage.Join(trash, relPath(dest, p))
		if err := storage.Rename(ctx, fs, p, to); err != nil {
			return m, undo(fmt.Errorf("overwrite %s: moving the old file %s aside: %w", dest, p, err), moved)
		}
		moved = append(moved, [2]string{p, to})
	}

	data, err := json.MarshalIndent(m.Manifest, "", "  ")
	if err != nil {
		return m, undo(err, moved)
	}
	if err := writeFile(ctx, fs, manifestPath, append(data, '\n')); err != nil {
		return m, undo(NamePath(manifestPath, "write", err), moved)
	}
	if len(old) > 0 {
		_ = RemoveDir(rctx, fs, trash, storage.Join(dest, TrashName))
	}
	return m, nil
}

// writeFile writes data to p in one upload.
func writeFile(ctx context.Context, fs storage.FS, p string, data []byte) error {
	u, err := fs.Create(ctx, p)
	if err != nil {
		return err
	}
	if _, err := u.Write(data); err != nil {
		_ = u.Close()
		_ = u.Abort(context.WithoutCancel(ctx))
		return err
	}
	if err := u.Close(); err != nil {
		_ = u.Abort(context.WithoutCancel(ctx))
		return err
	}
	if err := u.Commit(ctx); err != nil {
		_ = u.Abort(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

// relPath is p relative to dir ("/"-separated), p being a file below dir.
func relPath(dir, p string) string {
	d, q := PathKey(dir), PathKey(p)
	if storage.IsURL(q) {
		return strings.TrimPrefix(strings.TrimPrefix(q, strings.TrimSuffix(d, "/")), "/")
	}
	if rel, err := filepath.Rel(d, q); err == nil {
		return filepath.ToSlash(rel)
	}
	return path.Base(q)
}

// visible reports whether the file p below dir is one a scan of dir reads:
// no segment of its path below dir starts with "." or "_".
func visible(dir, p string) bool {
	for _, seg := range strings.Split(relPath(dir, p), "/") {
		if strings.HasPrefix(seg, ".") || strings.HasPrefix(seg, "_") {
			return false
		}
	}
	return true
}

// CheckOverwrite returns the files an overwrite of dest replaces: those of
// existing that the previous manifest prev lists, and the manifest itself.
// It refuses when dest holds a visible file (one a scan reads) that is
// neither listed there nor one of the new files: Sluice did not write it,
// so it neither deletes it nor leaves it to be read with the new files.
func CheckOverwrite(dest string, prev Manifest, existing []storage.FileInfo, files []ManifestFile) ([]string, error) {
	listed := map[string]bool{}
	for _, f := range prev.Files {
		listed[PathKey(f.Path)] = true
	}
	for _, f := range files {
		listed[PathKey(f.Path)] = false // ours: neither replaced nor foreign
	}
	var old, foreign []string
	for _, e := range existing {
		k := PathKey(e.Path)
		replace, known := listed[k]
		switch {
		case replace:
			old = append(old, e.Path)
		case known:
		case path.Base(filepath.ToSlash(k)) == ManifestName && relPath(dest, e.Path) == ManifestName:
			old = append(old, e.Path)
		case visible(dest, e.Path):
			foreign = append(foreign, e.Path)
		}
	}
	if len(foreign) > 0 {
		slices.Sort(foreign)
		why := "its _SUCCESS does not list them"
		if prev.JobID == "" {
			why = "it has no _SUCCESS"
		}
		shown := foreign[:min(3, len(foreign))]
		more := ""
		if len(foreign) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(foreign)-len(shown))
		}
		return nil, fmt.Errorf("%s: %w: mode overwrite replaces only the files a Sluice write published there, and %s holds %d files it did not (%s): %s%s (delete them, or write to another directory)",
			dest, storage.ErrExist, dest, len(foreign), why, strings.Join(shown, ", "), more)
	}
	return old, nil
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
	var existing []storage.FileInfo
	for _, e := range all {
		k := PathKey(e.Path)
		if rel := relPath(dest, e.Path); !ours[k] && !strings.HasPrefix(rel, StagingName+"/") && !strings.HasPrefix(rel, TrashName+"/") {
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
	move := func(ctx context.Context, back bool) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, f := range files {
			g.Go(func() error {
				from, to := f.From, f.To
				if back {
					from, to = to, from
				}
				if err := storage.Rename(gctx, fs, from, to); err != nil {
					return NamePath(from, "publish", err)
				}
				return nil
			})
		}
		return g.Wait()
	}
	// Taken back, the files return to staging, where a retried commit
	// finds them.
	m, _, err := Finish(ctx, fs, dest, mode, jobID, existing, out,
		func(ctx context.Context) error { return move(ctx, false) },
		func(ctx context.Context) error { return move(ctx, true) })
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

// Check refuses a write to dest before anything is written: a destination
// that holds files in mode error (CheckDest), one holding files an
// overwrite may not replace (CheckOverwrite), or one that overlaps a
// source of the job's plan root (CheckOverlap). The staging and trash
// directories of earlier jobs are not counted.
func Check(ctx context.Context, fs storage.FS, dest string, mode plan.WriteMode, root plan.Node) error {
	if err := CheckOverlap(dest, root); err != nil {
		return err
	}
	all, err := fs.List(ctx, dest)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return err
	}
	var existing []storage.FileInfo
	for _, e := range all {
		if rel := relPath(dest, e.Path); !strings.HasPrefix(rel, StagingName+"/") && !strings.HasPrefix(rel, TrashName+"/") {
			existing = append(existing, e)
		}
	}
	if err := CheckDest(dest, mode, len(existing)); err != nil {
		return err
	}
	if mode == plan.ModeOverwrite {
		prev, err := ReadManifest(ctx, fs, storage.Join(dest, ManifestName))
		if err != nil {
			return err
		}
		if _, err := CheckOverwrite(dest, prev, existing, nil); err != nil {
			return err
		}
	}
	return nil
}

// CheckOverlap refuses a destination that overlaps a file the plan under
// root reads: the same directory, one inside a source directory (the next
// run would read the output back) or one holding a source file (an
// overwrite would replace the input). The error names both.
func CheckOverlap(dest string, root plan.Node) error {
	d := overlapKey(dest)
	var err error
	walk(root, func(s *plan.Scan) {
		if err != nil {
			return
		}
		r := overlapKey(literalPrefix(s.Root))
		if within(d, r) || within(r, d) {
			err = fmt.Errorf("write %s: the destination overlaps the source %s that the plan reads: write to a directory outside it (and not holding it)", dest, s.Root)
			return
		}
		for _, f := range s.Files {
			if within(overlapKey(f.Path), d) {
				err = fmt.Errorf("write %s: the destination holds %s, a file of the source %s that the plan reads: write to a directory outside it", dest, f.Path, s.Root)
				return
			}
		}
	})
	return err
}

func walk(n plan.Node, f func(*plan.Scan)) {
	if n == nil {
		return
	}
	if s, ok := n.(*plan.Scan); ok {
		f(s)
	}
	for _, c := range n.Children() {
		walk(c, f)
	}
}

// within reports whether p is dir or a path below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// overlapKey is p made comparable for CheckOverlap: an absolute, cleaned,
// "/"-separated local path, or a URL without a trailing "/".
func overlapKey(p string) string {
	k := PathKey(p)
	if storage.IsURL(k) {
		return strings.TrimSuffix(k, "/")
	}
	if abs, err := filepath.Abs(k); err == nil {
		k = abs
	}
	return filepath.ToSlash(k)
}

// literalPrefix is the part of a glob pattern before its first segment
// with a wildcard.
func literalPrefix(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if strings.ContainsAny(s, `*?[\`) {
			return strings.Join(segs[:i], "/")
		}
	}
	return pattern
}

// Cleanup returns what removes the directories a write to dest is about
// to make on a local file system, when the write leaves them empty: the
// empty directories under dest (partition directories), deepest first,
// then dest and its parents that do not exist yet. Call it before the
// write; run what it returns after it, failed or not (directories that
// hold files stay). Object stores have no directories: it does nothing.
func Cleanup(dest string) func() {
	if storage.IsURL(dest) && !strings.HasPrefix(dest, "file://") {
		return func() {}
	}
	root := filepath.Clean(filepath.FromSlash(strings.TrimPrefix(dest, "file://")))
	var made []string // dest and its missing parents, deepest first
	for d := root; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
		made = append(made, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	return func() {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && p != root {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i]) // only when empty
		}
		for _, d := range made {
			if os.Remove(d) != nil {
				return // not empty: its parents are not either
			}
		}
	}
}

// CheckAllowed refuses a destination outside every root of allowed (local
// directories, or URLs such as "s3://" for every bucket or
// "s3://bucket/prefix"). A local destination is resolved first ("..",
// relative to the working directory), so "out/../../etc" is judged where it
// lands; a URL holding a ".." segment is refused outright (object keys do
// not resolve it, so the path cannot mean what it says). No roots: no
// restriction.
func CheckAllowed(dest string, allowed []string) error {
	if len(allowed) == 0 {
		return nil
	}
	k := overlapKey(dest)
	if storage.IsURL(k) {
		_, rest, _ := strings.Cut(k, "://")
		if slices.Contains(strings.Split(rest, "/"), "..") {
			return fmt.Errorf("write %s: a URL with a \"..\" segment is refused (object stores do not resolve it)", dest)
		}
	}
	for _, r := range allowed {
		rk := overlapKey(r)
		if strings.HasSuffix(r, "://") {
			rk = r // a whole scheme: "s3://"
		}
		if within(k, rk) || strings.HasSuffix(rk, "://") && strings.HasPrefix(k, rk) {
			return nil
		}
	}
	return fmt.Errorf("write %s: the destination (%s) is outside the paths this worker allows (--allowed-paths %s): write below one of them, or start the worker with a wider --allowed-paths", dest, k, strings.Join(allowed, ","))
}
