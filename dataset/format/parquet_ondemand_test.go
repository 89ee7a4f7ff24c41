package format_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/storage"
)

// readLog records every read the reader asks for.
type readLog struct {
	storage.File
	mu    sync.Mutex
	reads [][2]int64 // offset, length
}

func (f *readLog) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	f.reads = append(f.reads, [2]int64{off, int64(len(p))})
	f.mu.Unlock()
	return f.File.ReadAt(p, off)
}

// chunkRanges is where each column chunk of p lies: [start, end).
func chunkRanges(t *testing.T, p string) [][2]int64 {
	t.Helper()
	r, err := file.OpenParquetFile(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out [][2]int64
	md := r.MetaData()
	for rg := range md.NumRowGroups() {
		for c := range md.Schema.NumColumns() {
			cc, err := md.RowGroup(rg).ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			start := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
				start = cc.DictionaryPageOffset()
			}
			out = append(out, [2]int64{start, start + cc.TotalCompressedSize()})
		}
	}
	return out
}

// TestParquetOnDemand reads the same projection with and without
// OnDemand: the same rows, and on demand every read of the row groups
// lies within one column chunk (pages as the decoders reach them), where
// the default fetches several columns' chunks in one coalesced read.
func TestParquetOnDemand(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	const n = 200_000
	p := filepath.Join(t.TempDir(), "sales.parquet")
	writeSales(t, p, n, format.WriteOptions{RowGroupRows: 50_000}, mem)
	ranges := chunkRanges(t, p)
	cols := []string{"ts", "category", "price", "qty"}

	read := func(onDemand bool) ([]string, int) {
		f := &readLog{File: openFile(t, p)}
		out, err := readAll(t, format.Parquet(), f, format.ReadOptions{Columns: cols, OnDemand: onDemand, BatchRows: 7_000}, mem)
		if err != nil {
			t.Fatalf("OnDemand %v: %v", onDemand, err)
		}
		defer release(out)
		var rows []string
		for _, r := range out {
			for i := range int(r.NumRows()) {
				row := ""
				for c := range int(r.NumCols()) {
					row += r.Column(c).ValueStr(i) + "|"
				}
				rows = append(rows, row)
			}
		}
		spanning := 0 // reads of the row groups that cross a column chunk's end
		for _, rd := range f.reads {
			if rd[0]+rd[1] == f.Size() {
				continue // the footer's tail read
			}
			for _, cr := range ranges {
				if rd[0] >= cr[0] && rd[0] < cr[1] && rd[0]+rd[1] > cr[1] {
					spanning++
					break
				}
			}
		}
		t.Logf("OnDemand %v: %d reads, %d crossing a column chunk's end", onDemand, len(f.reads), spanning)
		return rows, spanning
	}
	want, fetched := read(false)
	got, onDemand := read(true)
	if len(got) != n || len(want) != n {
		t.Fatalf("read %d rows on demand, %d fetched; want %d", len(got), len(want), n)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d: %q on demand, %q fetched", i, got[i], want[i])
		}
	}
	if onDemand != 0 {
		t.Errorf("on demand, %d reads cross a column chunk's end: row groups were fetched up front", onDemand)
	}
	if fetched == 0 {
		t.Errorf("fetched up front, no read crosses a column chunk's end: the coalesced fetch is gone")
	}
}
