package format_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluicehq/sluice/dataset/format"
)

var lateSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "cat", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "qty", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "score", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
}, nil)

// writeLateFile writes n rows in row groups of 3000 rows and 4 KiB pages:
// cat dictionary-encoded, note plain, nulls in every nullable column. Each
// value derives from the row's id, so a value decoded for the wrong row
// shows.
func writeLateFile(t *testing.T, p string, n int, mem memory.Allocator) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	props := parquet.NewWriterProperties(parquet.WithDataPageSize(4<<10), parquet.WithMaxRowGroupLength(3000),
		parquet.WithDictionaryDefault(true), parquet.WithDictionaryFor("note", false), parquet.WithCompression(0))
	w, err := pqarrow.NewFileWriter(lateSchema, f, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	for start := 0; start < n; start += 2500 {
		b := array.NewRecordBuilder(mem, lateSchema)
		for i := start; i < min(start+2500, n); i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			if i%13 == 0 {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.Float64Builder).Append(float64((i * 7919) % 100))
			}
			if i%17 == 0 {
				b.Field(2).AppendNull()
			} else {
				b.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("c%d", i%9))
			}
			if i%5 == 0 {
				b.Field(3).AppendNull()
			} else {
				b.Field(3).(*array.Int32Builder).Append(int32(i * 3))
			}
			if i%19 == 0 {
				b.Field(4).AppendNull()
			} else {
				b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(i) * 1000))
			}
			if i%11 == 0 {
				b.Field(5).AppendNull()
			} else {
				b.Field(5).(*array.StringBuilder).Append(fmt.Sprintf("note-%d-%s", i, strings.Repeat("x", i%40)))
			}
			if i%23 == 0 {
				b.Field(6).AppendNull()
			} else {
				b.Field(6).(*array.Float32Builder).Append(float32(i) / 4)
			}
		}
		rec := b.NewRecordBatch()
		b.Release()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// rowStrings renders every row of recs, one string a row.
func rowStrings(recs []arrow.RecordBatch) []string {
	var out []string
	for _, r := range recs {
		for i := 0; i < int(r.NumRows()); i++ {
			var sb strings.Builder
			for c := 0; c < int(r.NumCols()); c++ {
				fmt.Fprintf(&sb, "%s=%s ", r.ColumnName(c), r.Column(c).ValueStr(i))
			}
			out = append(out, sb.String())
		}
	}
	return out
}

// TestParquetLate reads a file of several row groups and pages, with nulls,
// dictionary and plain pages, the late way (Late over id and price) and
// checks the rows equal the eager read's rows that the predicate keeps,
// for predicates keeping no row, about 3%, a contiguous block (whole
// batches skipped), about half and every row; and that the batches held
// only the kept rows (so the late path ran, not a full read).
func TestParquetLate(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p := filepath.Join(t.TempDir(), "late.parquet")
	const n = 10_000
	writeLateFile(t, p, n, mem)
	checkPages(t, p)

	type pred func(id int64, priceOK bool, price float64) bool
	for _, tc := range []struct {
		name string
		keep pred
	}{
		{"none", func(int64, bool, float64) bool { return false }},
		{"3pct", func(id int64, _ bool, _ float64) bool { return id%33 == 0 }},
		{"block", func(id int64, _ bool, _ float64) bool { return id >= 4000 && id < 4100 }},
		{"half", func(_ int64, ok bool, price float64) bool { return ok && price < 50 }},
		{"all", func(int64, bool, float64) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cols := range [][]string{nil, {"note", "price", "id"}, {"id", "price", "ts"}} {
				f := openFile(t, p)
				eager, err := readAll(t, format.Parquet(), f, format.ReadOptions{Columns: cols, BatchRows: 512}, mem)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, r := range eager {
					id := r.Column(r.Schema().FieldIndices("id")[0]).(*array.Int64)
					pr := r.Column(r.Schema().FieldIndices("price")[0]).(*array.Float64)
					for i := 0; i < int(r.NumRows()); i++ {
						if tc.keep(id.Value(i), pr.IsValid(i), pr.Value(i)) {
							row := r.NewSlice(int64(i), int64(i+1))
							want = append(want, rowStrings([]arrow.RecordBatch{row})...)
							row.Release()
						}
					}
				}
				release(eager)
				calls := 0
				opts := format.ReadOptions{Columns: cols, BatchRows: 512, LateColumns: []string{"id", "price"},
					Late: func(_ context.Context, rec arrow.RecordBatch) ([]bool, error) {
						calls++
						if rec.NumCols() != 2 {
							return nil, fmt.Errorf("late batch has %d columns, want id and price", rec.NumCols())
						}
						id := rec.Column(rec.Schema().FieldIndices("id")[0]).(*array.Int64)
						pr := rec.Column(rec.Schema().FieldIndices("price")[0]).(*array.Float64)
						keep := make([]bool, rec.NumRows())
						for i := range keep {
							keep[i] = tc.keep(id.Value(i), pr.IsValid(i), pr.Value(i))
						}
						return keep, nil
					}}
				late, err := readAll(t, format.Parquet(), f, opts, mem)
				if err != nil {
					t.Fatal(err)
				}
				got := rowStrings(late)
				release(late)
				if calls == 0 {
					t.Fatalf("cols %v: Late never called", cols)
				}
				if len(got) != len(want) {
					t.Fatalf("cols %v: late read %d rows, the eager read keeps %d", cols, len(got), len(want))
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("cols %v: row %d\nlate  %s\neager %s", cols, i, got[i], want[i])
					}
				}
			}
		})
	}
}

// checkPages makes sure the test file has what TestParquetLate claims:
// several row groups, several pages in a chunk, a dictionary page for cat
// and none for note.
func checkPages(t *testing.T, p string) {
	t.Helper()
	r, err := file.OpenParquetFile(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NumRowGroups() < 3 {
		t.Fatalf("%d row groups, want several", r.NumRowGroups())
	}
	rg := r.MetaData().RowGroup(0)
	cat, _ := rg.ColumnChunk(2)
	note, _ := rg.ColumnChunk(5)
	if !cat.HasDictionaryPage() || note.HasDictionaryPage() {
		t.Fatalf("cat dictionary %v, note dictionary %v: want true, false", cat.HasDictionaryPage(), note.HasDictionaryPage())
	}
	pr, err := r.RowGroup(0).GetColumnPageReader(5)
	if err != nil {
		t.Fatal(err)
	}
	pages := 0
	for pr.Next() {
		pages++
	}
	if pages < 3 {
		t.Fatalf("note has %d pages in row group 0, want several", pages)
	}
}

// TestParquetFlatStrings: an eager read builds flat string columns from
// the column chunk (not pqarrow): its rows equal pqarrow's own read of the
// file, for batches that cross pages and row groups, for nullable columns
// (cat dictionary-encoded, note plain) and a required one, and every
// string array is valid (offsets, validity, data).
func TestParquetFlatStrings(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	nullable := filepath.Join(dir, "late.parquet")
	writeLateFile(t, nullable, 10_000, mem)
	required := filepath.Join(dir, "required.parquet")
	{
		sc := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}}, nil)
		f, err := os.Create(required)
		if err != nil {
			t.Fatal(err)
		}
		w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(parquet.WithDataPageSize(1<<10),
			parquet.WithMaxRowGroupLength(1500), parquet.WithDictionaryDefault(false)), pqarrow.DefaultWriterProps())
		if err != nil {
			t.Fatal(err)
		}
		b := array.NewRecordBuilder(mem, sc)
		for i := range 4000 {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			b.Field(1).(*array.StringBuilder).Append(strings.Repeat(fmt.Sprint(i%10), i%7))
		}
		rec := b.NewRecordBatch()
		b.Release()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{nullable, required} {
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := file.NewParquetReader(fh)
		if err != nil {
			t.Fatal(err)
		}
		fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 1 << 20}, mem)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		tr := array.NewTableReader(tbl, 1<<20)
		var ref []arrow.RecordBatch
		for tr.Next() {
			r := tr.RecordBatch()
			r.Retain()
			ref = append(ref, r)
		}
		tr.Release()
		tbl.Release()
		pr.Close()
		want := rowStrings(ref)
		release(ref)
		for _, batch := range []int{333, 4096} {
			got, err := readAll(t, format.Parquet(), openFile(t, p), format.ReadOptions{BatchRows: batch}, mem)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range got {
				for c, col := range r.Columns() {
					if col.DataType().ID() == arrow.STRING {
						if err := col.(*array.String).ValidateFull(); err != nil {
							t.Fatalf("%s: column %s: %v", p, r.ColumnName(c), err)
						}
					}
				}
			}
			rows := rowStrings(got)
			release(got)
			if len(rows) != len(want) {
				t.Fatalf("%s, batches of %d: %d rows, pqarrow read %d", p, batch, len(rows), len(want))
			}
			for i := range rows {
				if rows[i] != want[i] {
					t.Fatalf("%s, batches of %d: row %d\nflat   %s\npqarrow %s", p, batch, i, rows[i], want[i])
				}
			}
		}
	}
}

// TestParquetLateStringFilter: a late column that is a string (etl Q1
// filters on category) is read flat, whole, for Late, and taken for the
// kept rows: the rows equal the eager read's rows whose cat is c3 or null.
func TestParquetLateStringFilter(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p := filepath.Join(t.TempDir(), "late.parquet")
	writeLateFile(t, p, 10_000, mem)
	f := openFile(t, p)
	keep := func(cat *array.String, i int) bool { return cat.IsNull(i) || cat.Value(i) == "c3" }
	eager, err := readAll(t, format.Parquet(), f, format.ReadOptions{BatchRows: 700}, mem)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range eager {
		cat := r.Column(r.Schema().FieldIndices("cat")[0]).(*array.String)
		for i := 0; i < int(r.NumRows()); i++ {
			if keep(cat, i) {
				row := r.NewSlice(int64(i), int64(i+1))
				want = append(want, rowStrings([]arrow.RecordBatch{row})...)
				row.Release()
			}
		}
	}
	release(eager)
	opts := format.ReadOptions{BatchRows: 700, LateColumns: []string{"cat"},
		Late: func(_ context.Context, rec arrow.RecordBatch) ([]bool, error) {
			cat := rec.Column(0).(*array.String)
			out := make([]bool, rec.NumRows())
			for i := range out {
				out[i] = keep(cat, i)
			}
			return out, nil
		}}
	late, err := readAll(t, format.Parquet(), f, opts, mem)
	if err != nil {
		t.Fatal(err)
	}
	got := rowStrings(late)
	release(late)
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("late read %d rows, the eager read keeps %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("row %d\nlate  %s\neager %s", i, got[i], want[i])
		}
	}
}

// TestParquetFlatCorruptPage: a flat string column whose later pages are
// damaged fails naming the row group and the column, eager and late, and
// the data buffer of the batch it was building is freed.
func TestParquetFlatCorruptPage(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p := filepath.Join(t.TempDir(), "late.parquet")
	writeLateFile(t, p, 10_000, mem)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := file.OpenParquetFile(p, false)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := r.MetaData().RowGroup(0).ColumnChunk(5) // note
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The second half of the chunk: the first pages decode, a later header does not.
	off, size := cc.DataPageOffset(), cc.TotalCompressedSize()
	for i := off + size/2; i < off+size; i++ {
		b[i] ^= 0x5a
	}
	bad := filepath.Join(t.TempDir(), "bad.parquet")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	late := func(_ context.Context, rec arrow.RecordBatch) ([]bool, error) {
		keep := make([]bool, rec.NumRows())
		for i := range keep {
			keep[i] = true
		}
		return keep, nil
	}
	for name, opts := range map[string]format.ReadOptions{
		"eager": {Columns: []string{"id", "note"}, BatchRows: 256},
		"late":  {Columns: []string{"id", "note"}, BatchRows: 256, LateColumns: []string{"id"}, Late: late},
	} {
		f := openFile(t, bad)
		splits, err := format.Parquet().Splits(context.Background(), f, opts)
		if err != nil {
			t.Fatal(err)
		}
		batches := 0
		err = format.Parquet().Read(context.Background(), f, splits[0], opts, mem, func(rec arrow.RecordBatch) error {
			batches++
			rec.Release()
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), `row group 0, column "note"`) {
			t.Fatalf("%s: error %v, want one naming row group 0, column \"note\"", name, err)
		}
		if batches == 0 {
			t.Fatalf("%s: no batch before the damaged page: the test damages too much", name)
		}
	}
}
