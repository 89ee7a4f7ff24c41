package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Errors shared by every FS. Wrap them with the path: fmt.Errorf("%s: %w", p, ErrNotExist).
var (
	// ErrNotExist is returned when a path names nothing.
	ErrNotExist = errors.New("storage: no such file or object")
	// ErrExist is returned when a destination exists and the write mode forbids replacing it.
	ErrExist = errors.New("storage: destination exists")
)

// File is an open, read-only object of known size. ReadAt may be called from
// several goroutines at once.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
	// Path is the path or URL the file was opened with, for error messages.
	Path() string
}

// Upload is a staged write. Write and Close are called from one goroutine.
// After Close, the data is complete but not visible; Commit publishes it
// (atomically for a single object), Abort discards it. Commit and Abort may be
// called from a goroutine other than the writer's, after Close.
type Upload interface {
	io.Writer
	Close() error
	Commit(ctx context.Context) error
	Abort(ctx context.Context) error
}

// FileInfo describes one listed file.
type FileInfo struct {
	Path    string // full path or URL, usable with Open
	Size    int64
	ModTime time.Time
}

// FS is one storage system. All methods are safe for concurrent use.
type FS interface {
	// Open opens a file for reading.
	Open(ctx context.Context, path string) (File, error)
	// Create starts a staged write of path; nothing is visible until Commit.
	Create(ctx context.Context, path string) (Upload, error)
	// List returns every file under prefix (recursively), sorted by path.
	// A prefix naming a single file lists that file.
	List(ctx context.Context, prefix string) ([]FileInfo, error)
	// Stat describes one file; ErrNotExist when there is none.
	Stat(ctx context.Context, path string) (FileInfo, error)
	// Delete removes one file; deleting a missing file is not an error.
	Delete(ctx context.Context, path string) error
}

// ReadFile reads the whole of a small file of fsys. Open's errors (such as
// ErrNotExist) come back as they are; a failed read names the path.
func ReadFile(ctx context.Context, fsys FS, path string) ([]byte, error) {
	f, err := fsys.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

// ReadPath reads the whole of a small file named by a local path or an
// s3:// URL: ReadFile on the file system For(path) picks.
func ReadPath(ctx context.Context, path string) ([]byte, error) {
	fsys, err := For(path)
	if err != nil {
		return nil, err
	}
	return ReadFile(ctx, fsys, path)
}
