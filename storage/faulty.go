package storage

import (
	"context"
	"sync/atomic"
)

// Faults are the failures a [Faulty] FS injects. Each hook is called before
// the real operation; a non-nil error fails the call without doing it. Nil
// hooks inject nothing. Hooks may be called from several goroutines at once.
type Faults struct {
	// Commit is called before each Upload.Commit with the upload's path and
	// how many commits (this one included) the FS has seen.
	Commit func(path string, n int64) error
	// Delete is called before each Delete.
	Delete func(path string) error
	// Rename is called before each Rename (see [Rename]).
	Rename func(from, to string) error

	commits atomic.Int64
}

// Faulty returns an FS that behaves like fsys except where f injects a
// failure: the seam tests use to fail a job part way through its commit.
func Faulty(fsys FS, f *Faults) FS { return &faultyFS{FS: fsys, f: f} }

type faultyFS struct {
	FS
	f *Faults
}

var _ FS = (*faultyFS)(nil)

// Unwrap returns the FS failures are injected into, so optional abilities
// such as UploadLister stay reachable (see ListUploads).
func (f *faultyFS) Unwrap() FS { return f.FS }

func (f *faultyFS) Create(ctx context.Context, path string) (Upload, error) {
	u, err := f.FS.Create(ctx, path)
	if err != nil {
		return nil, err
	}
	return &faultyUpload{Upload: u, path: path, f: f.f}, nil
}

func (f *faultyFS) Delete(ctx context.Context, path string) error {
	if f.f.Delete != nil {
		if err := f.f.Delete(path); err != nil {
			return err
		}
	}
	return f.FS.Delete(ctx, path)
}

// Rename moves a file with the wrapped FS's own move when it has one.
func (f *faultyFS) Rename(ctx context.Context, from, to string) error {
	if f.f.Rename != nil {
		if err := f.f.Rename(from, to); err != nil {
			return err
		}
	}
	return Rename(ctx, f.FS, from, to)
}

type faultyUpload struct {
	Upload
	path string
	f    *Faults
}

func (u *faultyUpload) Commit(ctx context.Context) error {
	n := u.f.commits.Add(1)
	if u.f.Commit != nil {
		if err := u.f.Commit(u.path, n); err != nil {
			return err
		}
	}
	return u.Upload.Commit(ctx)
}
