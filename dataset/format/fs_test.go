package format_test

import (
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/storage"
)

// testFS is the FS the tests write and read through: the real local one.
func testFS() storage.FS { return storage.NewLocal() }

// countingFile counts what the reader asks the storage for.
type countingFile struct {
	storage.File
	bytes, reads atomic.Int64
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	n, err := c.File.ReadAt(p, off)
	c.bytes.Add(int64(n))
	return n, err
}

// memFile is a storage.File over a byte slice, for fuzzing.
type memFile struct {
	b    []byte
	path string
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (m *memFile) Close() error { return nil }
func (m *memFile) Size() int64  { return int64(len(m.b)) }
func (m *memFile) Path() string { return m.path }

// writeFile writes recs as one file of the named format, committed.
func writeFile(t testing.TB, name, p string, sc *arrow.Schema, opts format.WriteOptions, mem memory.Allocator, recs ...arrow.RecordBatch) {
	t.Helper()
	ctx := context.Background()
	u, err := testFS().Create(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	w, err := format.NewWriter(name, u, sc, opts, mem)
	if err != nil {
		u.Abort(ctx)
		t.Fatal(err)
	}
	var rows int64
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			w.Close()
			u.Abort(ctx)
			t.Fatal(err)
		}
		rows += r.NumRows()
	}
	if err := w.Close(); err != nil {
		u.Abort(ctx)
		t.Fatal(err)
	}
	if w.Rows() != rows {
		t.Errorf("Rows() = %d, want %d", w.Rows(), rows)
	}
	st, err := os.Stat(p) // not visible before Commit
	if err == nil {
		t.Errorf("%s visible before Commit (%d bytes)", p, st.Size())
	}
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil {
		t.Fatal(err)
	} else if st.Size() != w.Bytes() {
		t.Errorf("Bytes() = %d, file has %d", w.Bytes(), st.Size())
	}
}

func openFile(t testing.TB, p string) storage.File {
	t.Helper()
	f, err := testFS().Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readAll reads every split of f and returns the batches (the caller releases them).
func readAll(t testing.TB, fm format.Format, f storage.File, opts format.ReadOptions, mem memory.Allocator) ([]arrow.RecordBatch, error) {
	t.Helper()
	ctx := context.Background()
	splits, err := fm.Splits(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	var out []arrow.RecordBatch
	for _, s := range splits {
		err := fm.Read(ctx, f, s, opts, mem, func(r arrow.RecordBatch) error {
			out = append(out, r)
			return nil
		})
		if err != nil {
			release(out)
			return nil, err
		}
	}
	return out, nil
}

func release(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}
