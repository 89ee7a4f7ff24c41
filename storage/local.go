package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Local is the FS of the machine's own file systems. Paths are OS paths or
// file:// URLs; the paths it returns (FileInfo.Path) are OS paths.
//
// Create stages the bytes in a hidden file beside the destination,
// ".<name>.sluice-tmp-<random>", and Commit renames it into place, which is
// atomic when both are on one file system (they always are: same directory).
// A crashed writer leaves its staging file behind: ListUploads finds them,
// and Glob skips them.
type Local struct {
	// createTemp opens a new staging file; tests replace it to inject
	// failures such as a full disk.
	createTemp func(name string) (*os.File, error)
}

var (
	_ FS           = (*Local)(nil)
	_ UploadLister = (*Local)(nil)
)

// NewLocal returns the local FS. The zero Local is ready to use as well.
func NewLocal() *Local { return &Local{} }

const tmpMarker = ".sluice-tmp-"

// Open opens a regular file (or a link to one) for reading.
func (l *Local) Open(ctx context.Context, p string) (File, error) {
	if err := ctx.Err(); err != nil {
		return nil, newError(p, "open: "+err.Error(), err)
	}
	name := localPath(p)
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, notExist(p, "no such file", err)
		}
		return nil, osError(p, "open", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, osError(p, "stat", err)
	}
	if st.IsDir() {
		f.Close()
		return nil, newError(p, "is a directory: use List or Glob to read the files in it")
	}
	return &localFile{f: f, path: p, size: st.Size()}, nil
}

type localFile struct {
	f    *os.File
	path string
	size int64
}

func (f *localFile) ReadAt(b []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, osError(f.path, "read", err)
	}
	return n, err
}

func (f *localFile) Close() error {
	return osError(f.path, "close", f.f.Close())
}

func (f *localFile) Size() int64  { return f.size }
func (f *localFile) Path() string { return f.path }

// Create starts a staged write of p, creating missing parent directories.
// ctx is only checked here: local writes are not cancellable.
func (l *Local) Create(ctx context.Context, p string) (Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, newError(p, "create: "+err.Error(), err)
	}
	dest := localPath(p)
	if st, err := os.Stat(dest); err == nil && st.IsDir() {
		return nil, newError(p, "create: a directory exists at the destination", ErrExist)
	}
	if strings.HasSuffix(dest, string(filepath.Separator)) {
		return nil, newError(p, "create: the path names a directory, not a file")
	}
	dir, base := filepath.Dir(dest), filepath.Base(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, osError(p, "create directory", err)
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	tmp := filepath.Join(dir, "."+base+tmpMarker+hex.EncodeToString(suffix[:]))
	open := l.createTemp
	if open == nil {
		open = func(name string) (*os.File, error) {
			return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		}
	}
	f, err := open(tmp)
	if err != nil {
		return nil, osError(p, "create", err)
	}
	return &localUpload{f: f, path: p, dest: dest, tmp: tmp}, nil
}

// localUpload states: open (f != nil) → closed → committed or aborted.
type localUpload struct {
	path, dest, tmp string

	mu        sync.Mutex
	f         *os.File
	closed    bool
	done      bool // committed or aborted
	committed bool
}

func (u *localUpload) Write(b []byte) (int, error) {
	if u.f == nil {
		return 0, newError(u.path, "write after Close, Commit or Abort")
	}
	n, err := u.f.Write(b)
	return n, osError(u.path, "write", err)
}

// Close flushes the data to disk (fsync), so that Commit publishes complete
// bytes even across a crash.
func (u *localUpload) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		if u.closed {
			return nil
		}
		return newError(u.path, "close: upload already aborted")
	}
	f := u.f
	u.f = nil
	u.closed = true
	if err := f.Sync(); err != nil {
		f.Close()
		return osError(u.path, "sync", err)
	}
	return osError(u.path, "close", f.Close())
}

// Commit renames the staging file onto the destination, replacing a file
// already there, and syncs the directory so the rename survives a crash.
func (u *localUpload) Commit(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.done && u.committed:
		return newError(u.path, "commit: already committed")
	case u.done:
		return newError(u.path, "commit: upload was aborted")
	case !u.closed || u.f != nil:
		return newError(u.path, "commit before Close")
	}
	if st, err := os.Stat(u.dest); err == nil && st.IsDir() {
		return newError(u.path, "commit: a directory exists at the destination", ErrExist)
	}
	if err := os.Rename(u.tmp, u.dest); err != nil {
		return osError(u.path, "commit", err)
	}
	u.done, u.committed = true, true
	if d, err := os.Open(filepath.Dir(u.dest)); err == nil {
		d.Sync() // best effort: some file systems cannot sync directories
		d.Close()
	}
	return nil
}

// Abort removes the staging file. After Commit it does nothing, so
// `defer u.Abort(ctx)` is safe on the success path too.
func (u *localUpload) Abort(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return nil
	}
	u.done = true
	if u.f != nil {
		u.f.Close()
		u.f = nil
	}
	if err := os.Remove(u.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return osError(u.path, "abort", err)
	}
	return nil
}

// List returns the regular files under prefix (following links to files, not
// to directories), or prefix itself when it names a file. A prefix naming
// nothing lists nothing, as on S3, which cannot tell an empty directory from a
// missing one.
func (l *Local) List(ctx context.Context, prefix string) ([]FileInfo, error) {
	root := filepath.Clean(localPath(prefix))
	st, err := os.Stat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, osError(prefix, "list", err)
	}
	if !st.IsDir() {
		return []FileInfo{{Path: root, Size: st.Size(), ModTime: st.ModTime()}}, nil
	}
	var out []FileInfo
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while listing
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if d.Type()&fs.ModeSymlink != 0 {
			info, err = os.Stat(p)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			out = append(out, FileInfo{Path: p, Size: info.Size(), ModTime: info.ModTime()})
		}
		return nil
	})
	if err != nil {
		return nil, osError(prefix, "list", err)
	}
	slices.SortFunc(out, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// Stat describes one regular file.
func (l *Local) Stat(ctx context.Context, p string) (FileInfo, error) {
	name := localPath(p)
	st, err := os.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return FileInfo{}, notExist(p, "no such file", err)
	}
	if err != nil {
		return FileInfo{}, osError(p, "stat", err)
	}
	if st.IsDir() {
		return FileInfo{}, newError(p, "is a directory: use List or Glob to read the files in it")
	}
	return FileInfo{Path: filepath.Clean(name), Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete removes one file; it refuses directories.
func (l *Local) Delete(ctx context.Context, p string) error {
	name := localPath(p)
	st, err := os.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return osError(p, "delete", err)
	}
	if st.IsDir() {
		return newError(p, "delete: is a directory")
	}
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return osError(p, "delete", err)
	}
	return nil
}

// ListUploads finds staging files under prefix that were never committed or
// aborted. AbortUpload removes one.
func (l *Local) ListUploads(ctx context.Context, prefix string) ([]PendingUpload, error) {
	root := filepath.Clean(localPath(prefix))
	var out []PendingUpload
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		name := d.Name()
		i := strings.LastIndex(name, tmpMarker)
		if d.IsDir() || !strings.HasPrefix(name, ".") || i < 1 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		out = append(out, PendingUpload{
			Path:      filepath.Join(filepath.Dir(p), name[1:i]),
			ID:        p,
			Initiated: info.ModTime(),
		})
		return nil
	})
	if err != nil {
		return nil, osError(prefix, "list uploads", err)
	}
	return out, nil
}

// AbortUpload removes a staging file found by ListUploads.
func (l *Local) AbortUpload(ctx context.Context, u PendingUpload) error {
	if !strings.Contains(filepath.Base(u.ID), tmpMarker) {
		return newError(u.Path, "abort upload: "+u.ID+" is not a staging file")
	}
	if err := os.Remove(u.ID); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return osError(u.Path, "abort upload", err)
	}
	return nil
}
