package format_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluicehq/sluice/dataset/format"
)

// salesSchema is the etl/sales-10m schema (WORKLOADS.md).
var salesSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "user_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "category", Type: arrow.BinaryTypes.String},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64},
	{Name: "qty", Type: arrow.PrimitiveTypes.Int32},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
	{Name: "note", Type: arrow.BinaryTypes.String},
}, nil)

var salesStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// salesBatches generates rows [0, n) of the sales data in batches of size
// rows; the seed fixes the values.
func salesBatches(mem memory.Allocator, n, size int, seed uint64) []arrow.RecordBatch {
	rng := rand.New(rand.NewPCG(seed, 7))
	const letters = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var note []byte
	var out []arrow.RecordBatch
	for start := 0; start < n; start += size {
		b := array.NewRecordBuilder(mem, salesSchema)
		id := b.Field(0).(*array.Int64Builder)
		user := b.Field(1).(*array.Int64Builder)
		cat := b.Field(2).(*array.StringBuilder)
		price := b.Field(3).(*array.Float64Builder)
		qty := b.Field(4).(*array.Int32Builder)
		ts := b.Field(5).(*array.TimestampBuilder)
		nt := b.Field(6).(*array.StringBuilder)
		for i := start; i < min(start+size, n); i++ {
			id.Append(int64(i))
			user.Append(rng.Int64N(100_000))
			cat.Append(fmt.Sprintf("c%d", rng.IntN(50)))
			price.Append(1 + rng.Float64()*99)
			qty.Append(1 + rng.Int32N(10))
			ts.Append(arrow.Timestamp(salesStart + int64(i)*1000 + rng.Int64N(1000)))
			note = note[:0]
			for range 10 + rng.IntN(101) {
				note = append(note, letters[rng.IntN(len(letters))])
			}
			nt.BinaryBuilder.Append(note)
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return out
}

func writeSales(t testing.TB, p string, n int, opts format.WriteOptions, mem memory.Allocator) {
	t.Helper()
	recs := salesBatches(mem, n, 64<<10, 1)
	defer release(recs)
	writeFile(t, "parquet", p, salesSchema, opts, mem, recs...)
}

// TestParquetProjection reads 2 of 7 columns, in an order of its own, and
// shows from the bytes the File served that the others were never read.
func TestParquetProjection(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	const n = 200_000
	p := filepath.Join(t.TempDir(), "sales.parquet")
	writeSales(t, p, n, format.WriteOptions{RowGroupRows: 50_000}, mem)
	want := salesBatches(mem, n, n, 1)[0]
	defer want.Release()

	cf := &countingFile{File: openFile(t, p)}
	opts := format.ReadOptions{Columns: []string{"qty", "id"}}
	sc, err := format.Parquet().Schema(context.Background(), cf, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sc.Field(0).Name, sc.Field(1).Name, sc.NumFields()); got != "qtyid2" {
		t.Fatalf("projected schema %s", sc)
	}
	out, err := readAll(t, format.Parquet(), cf, opts, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer release(out)
	row := 0
	for _, r := range out {
		qty, id := r.Column(0).(*array.Int32), r.Column(1).(*array.Int64)
		for i := range int(r.NumRows()) {
			if qty.Value(i) != want.Column(4).(*array.Int32).Value(row) || id.Value(i) != int64(row) {
				t.Fatalf("row %d: qty %d id %d", row, qty.Value(i), id.Value(i))
			}
			row++
		}
	}
	if row != n {
		t.Fatalf("read %d rows, want %d", row, n)
	}
	size := cf.Size()
	chunks := chunkBytes(t, p)
	need := chunks["qty"] + chunks["id"]
	t.Logf("projected read of qty+id: %d of %d bytes (%.1f%%) in %d reads; their column chunks hold %d bytes; per column %v",
		cf.bytes.Load(), size, 100*float64(cf.bytes.Load())/float64(size), cf.reads.Load(), need, chunks)
	// The footer's tail read, the two columns' chunks, and at most a small
	// coalescing hole per row group.
	if limit := 64<<10 + need + 4*256<<10; cf.bytes.Load() > limit {
		t.Errorf("projected read fetched %d bytes, more than the %d its columns need: unread columns were fetched", cf.bytes.Load(), limit)
	}
	// One tail read for the footer, then one coalesced read per row group.
	if r := cf.reads.Load(); r > 1+4*2 {
		t.Errorf("%d ReadAt calls; want at most 9 (footer + ~1 per row group)", r)
	}

	// A narrow column alone.
	cf2 := &countingFile{File: openFile(t, p)}
	out2, err := readAll(t, format.Parquet(), cf2, format.ReadOptions{Columns: []string{"qty"}}, mem)
	if err != nil {
		t.Fatal(err)
	}
	release(out2)
	t.Logf("projected read of qty: %d of %d bytes (%.1f%%)", cf2.bytes.Load(), size, 100*float64(cf2.bytes.Load())/float64(size))
	if cf2.bytes.Load() > 64<<10+chunks["qty"] {
		t.Errorf("reading qty fetched %d of %d bytes", cf2.bytes.Load(), size)
	}
}

// chunkBytes sums each column's compressed chunk sizes, using arrow-go's
// parquet reader directly.
func chunkBytes(t *testing.T, p string) map[string]int64 {
	t.Helper()
	r, err := file.OpenParquetFile(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[string]int64{}
	md := r.MetaData()
	for rg := range md.NumRowGroups() {
		for c := range md.Schema.NumColumns() {
			cc, err := md.RowGroup(rg).ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			out[md.Schema.Column(c).Name()] += cc.TotalCompressedSize()
		}
	}
	return out
}

// TestParquetCount reads no columns: the rows come from the metadata.
func TestParquetCount(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	p := filepath.Join(t.TempDir(), "sales.parquet")
	writeSales(t, p, 10_000, format.WriteOptions{RowGroupRows: 3000}, mem)
	cf := &countingFile{File: openFile(t, p)}
	out, err := readAll(t, format.Parquet(), cf, format.ReadOptions{Columns: []string{}, BatchRows: 4000}, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer release(out)
	var rows int64
	for _, r := range out {
		if r.NumCols() != 0 {
			t.Fatalf("batch has %d columns", r.NumCols())
		}
		rows += r.NumRows()
	}
	if rows != 10_000 || cf.reads.Load() != 1 {
		t.Fatalf("counted %d rows with %d reads; want 10000 rows from the footer alone", rows, cf.reads.Load())
	}
}

// TestParquetPrune skips row groups by their id statistics.
func TestParquetPrune(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	p := filepath.Join(t.TempDir(), "sorted.parquet")
	writeSales(t, p, 1000, format.WriteOptions{RowGroupRows: 100}, mem)
	f := openFile(t, p)
	ctx := context.Background()

	all, err := format.Parquet().Splits(ctx, f, format.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var groups []int
	for _, s := range all {
		groups = append(groups, s.RowGroups...)
	}
	if fmt.Sprint(groups) != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("unpruned splits cover row groups %v", groups)
	}

	idAbove900 := func(stats func(string) (format.ColumnStats, bool)) bool {
		st, ok := stats("id")
		if !ok || !st.HasMinMax {
			return true
		}
		return st.Max.(int64) > 900
	}
	opts := format.ReadOptions{Prune: idAbove900}
	splits, err := format.Parquet().Splits(ctx, f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 1 || fmt.Sprint(splits[0].RowGroups) != "[9]" || splits[0].Rows != 100 || splits[0].Path != p {
		t.Fatalf("pruned splits = %+v, want one split of row group 9 with 100 rows", splits)
	}
	var ids []int64
	err = format.Parquet().Read(ctx, f, splits[0], format.ReadOptions{Columns: []string{"id"}}, mem, func(r arrow.RecordBatch) error {
		defer r.Release()
		ids = append(ids, r.Column(0).(*array.Int64).Int64Values()...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 100 || ids[0] != 900 || ids[99] != 999 {
		t.Fatalf("read ids %d..%d (%d)", ids[0], ids[len(ids)-1], len(ids))
	}

	// Read of a whole-file split applies Prune itself.
	n := 0
	err = format.Parquet().Read(ctx, f, format.Split{Path: p, Rows: -1}, opts, mem, func(r arrow.RecordBatch) error {
		n += int(r.NumRows())
		r.Release()
		return nil
	})
	if err != nil || n != 100 {
		t.Fatalf("Read(whole file, Prune) = %d rows, %v", n, err)
	}
}

// TestParquetStats checks the Go types ColumnStats holds.
func TestParquetStats(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	cols := allTypes(500, 3)
	recs := batches(mem, cols, 500)
	p := filepath.Join(t.TempDir(), "all.parquet")
	writeFile(t, "parquet", p, schemaOf(cols), format.WriteOptions{}, mem, recs...)
	release(recs)
	f := openFile(t, p)

	got := map[string]format.ColumnStats{}
	_, err := format.Parquet().Splits(context.Background(), f, format.ReadOptions{Prune: func(stats func(string) (format.ColumnStats, bool)) bool {
		for _, c := range cols {
			if st, ok := stats(c.field.Name); ok {
				got[c.field.Name] = st
			}
		}
		if _, ok := stats("no_such_column"); ok {
			t.Error("stats of a missing column")
		}
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cols {
		st, ok := got[c.field.Name]
		if !ok {
			t.Errorf("no stats for %q", c.field.Name)
			continue
		}
		var nulls int64
		var lo, hi any
		for _, v := range c.vals {
			if v == nil {
				nulls++
				continue
			}
			v = statValue(c.field, v)
			if f, ok := v.(float64); ok && f != f {
				continue // NaN is left out of float statistics
			}
			if lo == nil || less(v, lo) {
				lo = v
			}
			if hi == nil || less(hi, v) {
				hi = v
			}
		}
		if st.RowCount != 500 || st.NullCount != nulls {
			t.Errorf("%s: RowCount %d NullCount %d, want 500 and %d", c.field.Name, st.RowCount, st.NullCount, nulls)
		}
		if c.field.Name == "u64" {
			// Its values pass math.MaxInt64, which int64 cannot hold.
			if st.HasMinMax {
				t.Errorf("u64: HasMinMax with max %v", st.Max)
			}
			continue
		}
		if !st.HasMinMax || !sameValue(st.Min, lo) || !sameValue(st.Max, hi) {
			t.Errorf("%s: min %#v max %#v (has %v), want %#v %#v", c.field.Name, st.Min, st.Max, st.HasMinMax, lo, hi)
		}
	}
}

// statValue maps a generated value to the type ColumnStats documents.
func statValue(f arrow.Field, v any) any {
	switch v := v.(type) {
	case arrow.Timestamp:
		return v.ToTime(f.Type.(*arrow.TimestampType).Unit)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case float32:
		return float64(v)
	case arrow.Date32:
		return v.ToTime()
	}
	return v
}

func less(a, b any) bool {
	switch a := a.(type) {
	case int64:
		return a < b.(int64)
	case uint64:
		return a < b.(uint64)
	case float64:
		return a < b.(float64)
	case string:
		return a < b.(string)
	case bool:
		return !a && b.(bool)
	case time.Time:
		return a.Before(b.(time.Time))
	}
	panic(fmt.Sprintf("less(%T)", a))
}

func TestParquetStatsTimes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	p := filepath.Join(t.TempDir(), "s.parquet")
	writeSales(t, p, 1000, format.WriteOptions{}, mem)
	f := openFile(t, p)
	var ts format.ColumnStats
	_, err := format.Parquet().Splits(context.Background(), f, format.ReadOptions{Prune: func(stats func(string) (format.ColumnStats, bool)) bool {
		ts, _ = stats("ts")
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	lo, ok := ts.Min.(time.Time)
	if !ok || lo.Location() != time.UTC || lo.UnixMicro() < salesStart || lo.UnixMicro() >= salesStart+1000 {
		t.Fatalf("ts min %#v", ts.Min)
	}
}

func TestParquetMissingColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	p := filepath.Join(t.TempDir(), "x.parquet")
	writeSales(t, p, 10, format.WriteOptions{}, mem)
	f := openFile(t, p)
	_, err := format.Parquet().Schema(context.Background(), f, format.ReadOptions{Columns: []string{"id", "pirce"}})
	want := fmt.Sprintf(`format: %s: no column "pirce" (have: id, user_id, category, price, qty, ts, note)`, p)
	if err == nil || err.Error() != want || !errors.Is(err, format.ErrNoColumn) {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	_, err = readAll(t, format.Parquet(), f, format.ReadOptions{Columns: []string{"pirce"}}, mem)
	if !errors.Is(err, format.ErrNoColumn) {
		t.Fatalf("Read: err = %v", err)
	}
}

// TestParquetDictionary reads a column stored as an Arrow dictionary back
// as plain strings.
func TestParquetDictionary(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	sc := arrow.NewSchema([]arrow.Field{{Name: "cat", Type: dt, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, sc)
	db := b.Field(0).(*array.BinaryDictionaryBuilder)
	var want []any
	for i := range 1000 {
		if i%9 == 0 {
			db.AppendNull()
			want = append(want, nil)
			continue
		}
		s := fmt.Sprintf("cat-%d", i%13)
		db.AppendString(s)
		want = append(want, s)
	}
	rec := b.NewRecordBatch()
	b.Release()
	p := filepath.Join(t.TempDir(), "dict.parquet")
	writeFile(t, "parquet", p, sc, format.WriteOptions{}, mem, rec)
	rec.Release()

	f := openFile(t, p)
	got, err := format.Parquet().Schema(context.Background(), f, format.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !arrow.TypeEqual(got.Field(0).Type, arrow.BinaryTypes.String) {
		t.Fatalf("dictionary column reads as %s, want utf8", got.Field(0).Type)
	}
	out, err := readAll(t, format.Parquet(), f, format.ReadOptions{BatchRows: 300}, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer release(out)
	checkRows(t, out, []column{{field: got.Field(0), vals: want}}, nil)
}

// TestParquetCorrupt: bad input fails with the path, never a panic or a hang.
func TestParquetCorrupt(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	dir := t.TempDir()
	good := filepath.Join(dir, "good.parquet")
	writeSales(t, good, 20_000, format.WriteOptions{RowGroupRows: 5000}, mem)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range random {
		random[i] = byte(rng.IntN(256))
	}
	badMagic := append([]byte(nil), data...)
	copy(badMagic[len(badMagic)-4:], "PAR2")
	// The footer survives but the data it points at is gone.
	footer := int(binary.LittleEndian.Uint32(data[len(data)-8:])) + 8
	hollow := append(append([]byte(nil), data[:len(data)/3]...), data[len(data)-footer:]...)

	cases := []struct {
		name, want string
		data       []byte
		kind       error
	}{
		{"random", "not a parquet file (bad magic)", random, format.ErrCorrupt},
		{"truncated", "not a parquet file (bad magic)", data[:len(data)/2], format.ErrCorrupt},
		{"bad-magic", "not a parquet file (bad magic)", badMagic, format.ErrCorrupt},
		{"tiny", "not a parquet file (only 3 bytes)", []byte("PAR"), format.ErrCorrupt},
		{"empty", "not a parquet file (only 0 bytes)", nil, format.ErrCorrupt},
		{"hollow", "", hollow, format.ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".parquet")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f := openFile(t, p)
			_, err := format.Parquet().Schema(context.Background(), f, format.ReadOptions{})
			if err == nil {
				_, err = readAll(t, format.Parquet(), f, format.ReadOptions{}, mem)
			}
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "format: "+p+": ") || !errors.Is(err, c.kind) {
				t.Fatalf("err = %v; want it to start with the path and match %v", err, c.kind)
			}
			if c.want != "" && err.Error() != "format: "+p+": "+c.want {
				t.Fatalf("err = %v\nwant format: %s: %s", err, p, c.want)
			}
		})
	}
}

// TestParquetFlippedBytes damages the data pages (the footer intact): every
// read must end with an error naming the file, or with all 5000 rows in
// the file's schema (values may be wrong), never with a panic or a short
// read; and some damage must be detected.
func TestParquetFlippedBytes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	dir := t.TempDir()
	good := filepath.Join(dir, "good.parquet")
	// Uncompressed, so the damage reaches the decoders rather than a checksum.
	const rows = 5000
	writeSales(t, good, rows, format.WriteOptions{RowGroupRows: 1000, Compression: "none"}, mem)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	want, err := format.Parquet().Schema(context.Background(), &memFile{b: data, path: good}, format.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	failed := 0
	const tries = 300
	for i := range tries {
		bad := append([]byte(nil), data...)
		for range 1 + i%4 {
			bad[4+rng.IntN(len(bad)*3/4)] ^= byte(1 + rng.IntN(255))
		}
		f := &memFile{b: bad, path: fmt.Sprintf("flipped-%d.parquet", i)}
		out, err := readAll(t, format.Parquet(), f, format.ReadOptions{}, mem)
		n := int64(0)
		for _, r := range out {
			n += r.NumRows()
			if err == nil && !r.Schema().Equal(want) {
				t.Errorf("%s: read without error in schema %v, want %v", f.path, r.Schema(), want)
			}
		}
		release(out)
		if err != nil {
			if failed++; failed <= 3 {
				t.Log(err)
			}
			if !strings.HasPrefix(err.Error(), "format: "+f.path+": ") {
				t.Fatalf("err = %v", err)
			}
			continue
		}
		if n != rows {
			t.Errorf("%s: read %d rows without error, want %d", f.path, n, rows)
		}
	}
	t.Logf("%d of %d damaged files failed to read (the others decoded to wrong values)", failed, tries)
	if failed == 0 {
		t.Errorf("none of %d damaged files failed to read: the damage reached no decoder", tries)
	}
}

// TestParquetStops: Read stops at a cancelled context and returns emit's error as is.
func TestParquetStops(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	p := filepath.Join(t.TempDir(), "x.parquet")
	writeSales(t, p, 10_000, format.WriteOptions{RowGroupRows: 2000}, mem)
	f := openFile(t, p)
	stop := errors.New("stop")
	calls := 0
	err := format.Parquet().Read(context.Background(), f, format.Split{Path: p}, format.ReadOptions{BatchRows: 500}, mem, func(r arrow.RecordBatch) error {
		r.Release()
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 3 {
		t.Fatalf("err = %v after %d batches; want stop after 3", err, calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = format.Parquet().Read(ctx, f, format.Split{Path: p}, format.ReadOptions{BatchRows: 500}, mem, func(r arrow.RecordBatch) error {
		r.Release()
		calls++
		if calls == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Fatalf("err = %v after %d batches; want context.Canceled after 2", err, calls)
	}
}

// TestParquetParallel decodes a batch's columns concurrently and gets the same rows.
func TestParquetParallel(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	cols := allTypes(2000, 4)
	recs := batches(mem, cols, 2000)
	p := filepath.Join(t.TempDir(), "all.parquet")
	writeFile(t, "parquet", p, schemaOf(cols), format.WriteOptions{RowGroupRows: 600}, mem, recs...)
	release(recs)
	out, err := readAll(t, format.Parquet(), openFile(t, p), format.ReadOptions{Parallel: true, BatchRows: 256}, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer release(out)
	checkRows(t, out, cols, nil)
}

func TestParquetSplitsMergeSmallRowGroups(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	p := filepath.Join(t.TempDir(), "small.parquet")
	writeSales(t, p, 5000, format.WriteOptions{RowGroupRows: 100}, mem)
	splits, err := format.Parquet().Splits(context.Background(), openFile(t, p), format.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 1 || len(splits[0].RowGroups) != 50 || splits[0].Rows != 5000 {
		t.Fatalf("50 tiny row groups gave %d splits (first %+v)", len(splits), splits[0])
	}
}

func TestWriterOptions(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	u, err := testFS().Create(context.Background(), filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(context.Background())
	if _, err := format.NewWriter("parquet", u, salesSchema, format.WriteOptions{Compression: "lzo"}, mem); !errors.Is(err, format.ErrUnsupported) {
		t.Errorf("compression lzo: err = %v", err)
	}
	if _, err := format.NewWriter("orc", u, salesSchema, format.WriteOptions{}, mem); !errors.Is(err, format.ErrUnknownFormat) {
		t.Errorf("format orc: err = %v", err)
	}
	for _, c := range []string{"snappy", "gzip", "none", "zstd"} {
		p := filepath.Join(t.TempDir(), c+".parquet")
		writeSales(t, p, 1000, format.WriteOptions{Compression: c}, mem)
		out, err := readAll(t, format.Parquet(), openFile(t, p), format.ReadOptions{}, mem)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		release(out)
	}
}

func TestForPath(t *testing.T) {
	for p, want := range map[string]string{
		"a.parquet": "parquet", "s3://b/k/a.PQ": "parquet", "x.csv": "csv",
		"x.jsonl": "jsonl", "x.ndjson": "jsonl", "x.json": "jsonl",
	} {
		f, err := format.ForPath(p)
		if err != nil || f.Name() != want {
			t.Errorf("ForPath(%q) = %v, %v; want %s", p, f, err, want)
		}
	}
	if _, err := format.ForPath("x.txt"); !errors.Is(err, format.ErrUnknownFormat) {
		t.Errorf("ForPath(x.txt): err = %v", err)
	}
	if _, err := format.ByName("avro"); !errors.Is(err, format.ErrUnknownFormat) {
		t.Errorf("ByName(avro): err = %v", err)
	}
}

// TestParquetReadDict: a column named in ReadOptions.Dict that the file
// stores dictionary-encoded comes out as dictionary arrays holding the same
// values as the plain read (nulls included), while the schema still says
// string; a column without a dictionary page comes out plain.
func TestParquetReadDict(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	dir := t.TempDir()
	sales := filepath.Join(dir, "sales.parquet")
	writeSales(t, sales, 5000, format.WriteOptions{RowGroupRows: 2000}, mem)
	// Nulls, and a column whose dictionary the writer gives up on.
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "cat", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "uniq", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, sc)
	for i := range 3000 {
		if i%7 == 0 {
			b.Field(0).AppendNull()
		} else {
			b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("k%d", i%11))
		}
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("%0100d", i))
	}
	rec := b.NewRecordBatch()
	b.Release()
	nulls := filepath.Join(dir, "nulls.parquet")
	writeFile(t, "parquet", nulls, sc, format.WriteOptions{}, mem, rec)
	// The same rows without dictionary encoding.
	plainPath := filepath.Join(dir, "plain.parquet")
	pf, err := os.Create(plainPath)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := pqarrow.NewFileWriter(sc, pf, parquet.NewWriterProperties(parquet.WithDictionaryDefault(false)), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	rec.Release()

	for _, tc := range []struct {
		path  string
		cols  []string
		dicts map[string]bool // the columns that must come out as dictionaries
	}{
		{sales, []string{"price", "category", "note"}, map[string]bool{"category": true}},
		{nulls, []string{"cat", "uniq"}, map[string]bool{"cat": true}},
		{plainPath, []string{"uniq", "cat"}, nil},
	} {
		f := openFile(t, tc.path)
		plain, err := readAll(t, format.Parquet(), f, format.ReadOptions{Columns: tc.cols, BatchRows: 700}, mem)
		if err != nil {
			t.Fatal(err)
		}
		opts := format.ReadOptions{Columns: tc.cols, BatchRows: 700, Dict: []string{"category", "cat", "price"}}
		dict, err := readAll(t, format.Parquet(), f, opts, mem)
		if err != nil {
			release(plain)
			t.Fatal(err)
		}
		sc, err := format.Parquet().Schema(context.Background(), f, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, fl := range sc.Fields() {
			if fl.Type.ID() == arrow.DICTIONARY {
				t.Errorf("%s: Schema says %s is %s", tc.path, fl.Name, fl.Type)
			}
		}
		if len(plain) != len(dict) {
			t.Fatalf("%s: %d batches with Dict, %d without", tc.path, len(dict), len(plain))
		}
		for i := range plain {
			for c, name := range tc.cols {
				p, d := plain[i].Column(c), dict[i].Column(c)
				if _, ok := d.(*array.Dictionary); ok != tc.dicts[name] {
					t.Errorf("%s: batch %d column %s is %s", tc.path, i, name, d.DataType())
				}
				if !arrow.TypeEqual(dict[i].Schema().Field(c).Type, d.DataType()) {
					t.Errorf("%s: batch %d schema says %s is %s, column is %s", tc.path, i, name, dict[i].Schema().Field(c).Type, d.DataType())
				}
				if p.Len() != d.Len() {
					t.Fatalf("%s: batch %d column %s: %d rows with Dict, %d without", tc.path, i, name, d.Len(), p.Len())
				}
				for r := range p.Len() {
					if pv, dv := p.GetOneForMarshal(r), d.GetOneForMarshal(r); fmt.Sprint(pv) != fmt.Sprint(dv) {
						t.Fatalf("%s: batch %d column %s row %d: %v with Dict, %v without", tc.path, i, name, r, dv, pv)
					}
				}
			}
		}
		release(plain)
		release(dict)
	}
}

// The writer keeps a dictionary for a low-cardinality column and gives it
// up for a column of 100,000 distinct int64 values (800 KB of dictionary,
// under arrow-go's 1 MiB default limit but over the writer's 128 KiB), so
// such a column does not pay a hash insert per value.
func TestParquetWriterDictionaryLimit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "cat", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, sc)
	for i := range 100_000 {
		b.Field(0).(*array.Int64Builder).Append(int64(i) * 7)
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("c%d", i%10))
	}
	rec := b.NewRecordBatch()
	b.Release()
	p := filepath.Join(t.TempDir(), "d.parquet")
	writeFile(t, "parquet", p, sc, format.WriteOptions{}, mem, rec)
	rec.Release()
	pr, err := file.OpenParquetFile(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	for i, want := range []bool{false, true} {
		cc, err := pr.MetaData().RowGroup(0).ColumnChunk(i)
		if err != nil {
			t.Fatal(err)
		}
		// A chunk that gave up its dictionary part way has plain data pages.
		plain := slices.ContainsFunc(cc.EncodingStats(), func(st metadata.PageEncodingStats) bool {
			return strings.HasPrefix(fmt.Sprint(st.PageType), "DATA_PAGE") && st.Encoding == parquet.Encodings.Plain
		})
		if got := cc.HasDictionaryPage() && !plain; got != want {
			t.Errorf("column %s: dictionary-encoded throughout %v (pages %v), want %v", sc.Field(i).Name, got, cc.EncodingStats(), want)
		}
	}
}
