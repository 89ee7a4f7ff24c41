package storage

import (
	"context"
	"sync/atomic"
)

// Counters accumulate the traffic of a Counting FS. They may be read at any
// time, also while the FS is in use.
type Counters struct {
	BytesRead    atomic.Int64 // bytes returned by File.ReadAt
	BytesWritten atomic.Int64 // bytes accepted by Upload.Write
	// Requests counts calls that reach the storage system: Open, Create,
	// List, Stat, Delete, each ReadAt, Commit and Abort. Writes are buffered
	// and counted in bytes only. One call may cost the system several
	// requests (S3 retries, pagination, multipart parts).
	Requests atomic.Int64
}

// Counting returns an FS that behaves like fsys and adds its traffic to c.
// Several FSs may share one Counters.
func Counting(fsys FS, c *Counters) FS { return &countingFS{fs: fsys, c: c} }

type countingFS struct {
	fs FS
	c  *Counters
}

var _ FS = (*countingFS)(nil)

// Unwrap returns the FS being counted, so optional abilities such as
// UploadLister stay reachable (see ListUploads).
func (f *countingFS) Unwrap() FS { return f.fs }

func (f *countingFS) Open(ctx context.Context, path string) (File, error) {
	f.c.Requests.Add(1)
	file, err := f.fs.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: file, c: f.c}, nil
}

func (f *countingFS) Create(ctx context.Context, path string) (Upload, error) {
	f.c.Requests.Add(1)
	u, err := f.fs.Create(ctx, path)
	if err != nil {
		return nil, err
	}
	return &countingUpload{Upload: u, c: f.c}, nil
}

func (f *countingFS) List(ctx context.Context, prefix string) ([]FileInfo, error) {
	f.c.Requests.Add(1)
	return f.fs.List(ctx, prefix)
}

func (f *countingFS) Stat(ctx context.Context, path string) (FileInfo, error) {
	f.c.Requests.Add(1)
	return f.fs.Stat(ctx, path)
}

func (f *countingFS) Delete(ctx context.Context, path string) error {
	f.c.Requests.Add(1)
	return f.fs.Delete(ctx, path)
}

type countingFile struct {
	File
	c *Counters
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	f.c.Requests.Add(1)
	n, err := f.File.ReadAt(p, off)
	f.c.BytesRead.Add(int64(n))
	return n, err
}

type countingUpload struct {
	Upload
	c *Counters
}

func (u *countingUpload) Write(p []byte) (int, error) {
	n, err := u.Upload.Write(p)
	u.c.BytesWritten.Add(int64(n))
	return n, err
}

func (u *countingUpload) Commit(ctx context.Context) error {
	u.c.Requests.Add(1)
	return u.Upload.Commit(ctx)
}

func (u *countingUpload) Abort(ctx context.Context) error {
	u.c.Requests.Add(1)
	return u.Upload.Abort(ctx)
}
