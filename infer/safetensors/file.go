package safetensors

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/sluicehq/sluice/storage"
)

// File is one open safetensors file. Its methods may be called from several
// goroutines at once; Close must come after every other call.
type File struct {
	path string
	hdr  *Header

	// mapped is the whole file when it is memory-mapped (local files);
	// otherwise r serves ranged reads (s3://).
	mapped []byte
	unmap  func() error
	r      storage.File
}

// Open opens and validates the safetensors file at path: a local path or a
// file:// URL is memory-mapped (where the platform can; read otherwise), any
// other URL is read through package storage.
func Open(ctx context.Context, path string) (*File, error) {
	if local, ok := localPath(path); ok {
		return openLocal(path, local)
	}
	fsys, err := storage.For(path)
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	r, err := fsys.Open(ctx, path)
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	hdr, err := ReadHeader(path, r, r.Size())
	if err != nil {
		r.Close()
		return nil, err
	}
	return &File{path: path, hdr: hdr, r: r}, nil
}

// localPath reports whether path names a local file, and its OS path.
func localPath(path string) (string, bool) {
	if !storage.IsURL(path) {
		return path, true
	}
	if p, ok := strings.CutPrefix(path, "file://"); ok {
		return p, true
	}
	return "", false
}

func openLocal(path, local string) (*File, error) {
	f, err := os.Open(local)
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	defer f.Close() // a mapping outlives its descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	size := st.Size()
	if size < 8 {
		return nil, headerError(path, "", "file of %d bytes is too short for the 8-byte header length", size)
	}
	data, unmap, err := mmap(f, size)
	if err != nil {
		return nil, &Error{Path: path, Msg: "memory-mapping: " + err.Error(), Err: err}
	}
	hdr, err := ReadHeader(path, bytes.NewReader(data), size)
	if err != nil {
		unmap()
		return nil, err
	}
	return &File{path: path, hdr: hdr, mapped: data, unmap: unmap}, nil
}

// Path is the path or URL the file was opened with.
func (f *File) Path() string { return f.path }

// Header is the file's validated header.
func (f *File) Header() *Header { return f.hdr }

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (TensorInfo, bool) { return f.hdr.Tensor(name) }

// Data returns the bytes of the tensor called name. For a memory-mapped
// file they are the mapping itself: read-only (writing to them faults) and
// valid until Close. Otherwise they are read into a new slice.
func (f *File) Data(name string) ([]byte, error) {
	t, ok := f.hdr.Tensor(name)
	if !ok {
		return nil, &Error{Path: f.path, Tensor: name, Msg: "no such tensor in the file", Err: ErrNotFound}
	}
	return f.read(t)
}

func (f *File) read(t TensorInfo) ([]byte, error) {
	if f.mapped != nil {
		return f.mapped[t.Offset : t.Offset+t.Size : t.Offset+t.Size], nil
	}
	if f.r == nil {
		return nil, &Error{Path: f.path, Tensor: t.Name, Msg: "file is closed", Err: os.ErrClosed}
	}
	b := make([]byte, t.Size)
	if _, err := f.r.ReadAt(b, t.Offset); err != nil {
		return nil, &Error{Path: f.path, Tensor: t.Name, Msg: fmt.Sprintf("reading %d bytes at %d: %v", t.Size, t.Offset, err), Err: err}
	}
	return b, nil
}

// Close unmaps or closes the file; slices Data returned from a mapping must
// no longer be used.
func (f *File) Close() error {
	var err error
	if f.unmap != nil {
		err = f.unmap()
		f.unmap, f.mapped = nil, nil
	}
	if f.r != nil {
		err = f.r.Close()
		f.r = nil
	}
	if err != nil {
		return &Error{Path: f.path, Msg: "closing: " + err.Error(), Err: err}
	}
	return nil
}
