package blocks

import (
	"bufio"
	"errors"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// writeSpill writes one block as an Arrow IPC stream to a temporary file
// in dir and renames it to path, so a reader never sees half a file. It
// returns the file's size.
func writeSpill(dir, path string, schema *arrow.Schema, recs []arrow.RecordBatch, mem memory.Allocator) (size int64, err error) {
	f, err := os.CreateTemp(dir, spillPrefix+"*"+tempSuffix)
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()

	bw := bufio.NewWriterSize(f, 1<<20)
	w := ipc.NewWriter(bw, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	for _, rec := range recs {
		if err = w.Write(rec); err != nil {
			_ = w.Close()
			_ = f.Close()
			return 0, err
		}
	}
	if err = errors.Join(w.Close(), bw.Flush()); err != nil {
		_ = f.Close()
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return 0, err
	}
	if err = f.Close(); err != nil {
		return 0, err
	}
	if err = os.Rename(tmp, path); err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// readSpill reads back a block written by writeSpill; its batches are
// allocated from mem and belong to the caller.
func readSpill(path string, mem memory.Allocator) ([]arrow.RecordBatch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ipc.NewReader(bufio.NewReaderSize(f, 1<<20), ipc.WithAllocator(mem))
	if err != nil {
		return nil, err
	}
	defer r.Release()
	var recs []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := r.Err(); err != nil {
		for _, rec := range recs {
			rec.Release()
		}
		return nil, err
	}
	return recs, nil
}
