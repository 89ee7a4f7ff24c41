package format_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/storage"
)

// readAny runs Schema, Splits and Read over f; for the fuzzers, which only
// care that bad input is an error, not a panic or a leak.
func readAny(t *testing.T, fm format.Format, f storage.File, opts format.ReadOptions) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := context.Background()
	if _, err := fm.Schema(ctx, f, opts); err != nil {
		return
	}
	splits, err := fm.Splits(ctx, f, opts)
	if err != nil {
		return
	}
	for _, s := range splits {
		err := fm.Read(ctx, f, s, opts, mem, func(r arrow.RecordBatch) error {
			r.Release()
			return nil
		})
		if err != nil {
			return
		}
	}
}

func FuzzCSV(f *testing.F) {
	for _, s := range []string{
		"a,b\n1,2\n", "a,b,c\n1,2.5,x\n,true,\"q\"\"\"\n", "x\n2024-01-02\n2024-01-02 03:04:05\n",
		"a;b\n1;2\n", "\"a\nb\",c\n1,2\n", "a,b\n1\n", "a\n\"unterminated\n", "\xef\xbb\xbfa\nNaN\n+Inf\n",
	} {
		f.Add([]byte(s), false, uint8(','))
	}
	f.Fuzz(func(t *testing.T, data []byte, noHeader bool, delim uint8) {
		file := &memFile{b: data, path: "fuzz.csv"}
		readAny(t, format.CSV(), file, format.ReadOptions{NoHeader: noHeader, InferRows: 3, BatchRows: 2, Delimiter: rune(delim)})
		readAny(t, format.CSV(), file, format.ReadOptions{NoHeader: noHeader, Columns: []string{"a", "c0"}})
	})
}

func FuzzJSONL(f *testing.F) {
	for _, s := range []string{
		`{"a": 1, "b": "x"}` + "\n" + `{"a": 2.5, "c": [1, {"d": null}]}`,
		`{"t": "2024-01-02T03:04:05Z", "d": "2024-01-02", "b": true}`,
		`{"s": "\u00e9\n\"", "n": -0.5e10}` + "\r\n\n" + `{}`,
		`{"a": }`, `[1]`, `{"a": 1} x`, `{"a": "\ud800"}`, `{"a": 1, "a": "x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file := &memFile{b: data, path: "fuzz.jsonl"}
		readAny(t, format.JSONL(), file, format.ReadOptions{InferRows: 3, BatchRows: 2})
		readAny(t, format.JSONL(), file, format.ReadOptions{InferRows: 1, Columns: []string{"a"}})
	})
}

func FuzzParquet(f *testing.F) {
	mem := memory.NewGoAllocator()
	dir := f.TempDir()
	for i, opts := range []format.WriteOptions{{Compression: "none", RowGroupRows: 20}, {RowGroupRows: 64}} {
		cols := pick(allTypes(30, uint64(i)), "i64", "u32", "f64", "s", "ts", "d")
		recs := batches(mem, cols, 30)
		p := filepath.Join(dir, fmt.Sprintf("seed%d.parquet", i))
		writeFile(f, "parquet", p, schemaOf(cols), opts, mem, recs...)
		release(recs)
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	prune := func(stats func(string) (format.ColumnStats, bool)) bool {
		st, ok := stats("i64")
		return !ok || !st.HasMinMax || st.Max.(int64) > 0
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file := &memFile{b: data, path: "fuzz.parquet"}
		readAny(t, format.Parquet(), file, format.ReadOptions{BatchRows: 16, Prune: prune})
		readAny(t, format.Parquet(), file, format.ReadOptions{Columns: []string{"s", "ts"}, Parallel: true})
	})
}
