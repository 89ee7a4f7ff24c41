package kernel

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestConcatAndTake(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(15, 16))
	rows := genAggRows(rng, 300)
	recs := toBatches(mem, aggSchema, rows, []int{100, 0, 150, 50})
	defer releaseAllBatches(recs)

	all, err := Concat(mem, aggSchema, recs)
	if err != nil {
		t.Fatal(err)
	}
	defer all.Release()
	checkRows(t, rowsOf(all), rows)

	none, err := Concat(mem, aggSchema, nil)
	if err != nil {
		t.Fatal(err)
	}
	if none.NumRows() != 0 || none.NumCols() != int64(aggSchema.NumFields()) {
		t.Errorf("Concat of nothing: %d rows, %d columns", none.NumRows(), none.NumCols())
	}
	none.Release()

	idx := []int32{299, 0, 5, 5, 150}
	got, err := Take(mem, all, idx)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	var want [][]any
	for _, i := range idx {
		want = append(want, rows[i])
	}
	checkRows(t, rowsOf(got), want)

	// A slice of a batch: offsets into the buffers must be honoured.
	sl := all.NewSlice(101, 201)
	defer sl.Release()
	got2, err := Take(mem, sl, []int32{0, 99})
	if err != nil {
		t.Fatal(err)
	}
	defer got2.Release()
	checkRows(t, rowsOf(got2), [][]any{rows[101], rows[200]})

	if _, err := Take(mem, all, []int32{300}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Take out of range: got %v", err)
	}
}

func TestHashPartition(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(17, 18))
	rows := genAggRows(rng, 2000)
	recs := toBatches(mem, aggSchema, rows, []int{2000})
	defer releaseAllBatches(recs)

	parts, err := HashPartition(mem, recs[0], []string{"cat", "n"}, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAllBatches(parts)
	seen := map[[2]any]int{}
	total := 0
	for p, part := range parts {
		if part == nil {
			continue
		}
		for _, row := range rowsOf(part) {
			k := [2]any{row[0], row[1]}
			if q, ok := seen[k]; ok && q != p {
				t.Fatalf("key %v in parts %d and %d", k, q, p)
			}
			seen[k] = p
			total++
		}
	}
	if total != len(rows) {
		t.Fatalf("parts hold %d rows, want %d", total, len(rows))
	}

	// An int32 key and an int64 key with the same values go to the same parts,
	// as do string and large_string: both sides of a shuffle join agree.
	mk := func(dt arrow.DataType, s arrow.DataType) []arrow.RecordBatch {
		schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: dt}, {Name: "s", Type: s}}, nil)
		var ks, ss []any
		for i := range 100 {
			ks, ss = append(ks, i*7919-300), append(ss, string(rune('a'+i%26)))
		}
		rec := batch(mem, schema, ks, ss)
		defer rec.Release()
		parts, err := HashPartition(mem, rec, []string{"k", "s"}, 5)
		if err != nil {
			t.Fatal(err)
		}
		return parts
	}
	a := mk(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String)
	defer releaseAllBatches(a)
	b := mk(arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.LargeString)
	defer releaseAllBatches(b)
	for p := range a {
		if (a[p] == nil) != (b[p] == nil) || (a[p] != nil && a[p].NumRows() != b[p].NumRows()) {
			t.Fatalf("part %d differs between int32/string and int64/large_string keys", p)
		}
	}
	if _, err := HashPartition(mem, recs[0], []string{"cat"}, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("0 parts: got %v", err)
	}
}

func TestShuffle(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	schema := arrow.NewSchema([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int64}}, nil)
	var vals []any
	for i := range 100 {
		vals = append(vals, i)
	}
	rec := batch(mem, schema, vals)
	defer rec.Release()
	order := func(seed uint64) []int64 {
		out, err := Shuffle(mem, rec, rand.New(rand.NewPCG(seed, 0)))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Release()
		var got []int64
		for _, row := range rowsOf(out) {
			got = append(got, row[0].(int64))
		}
		return got
	}
	a, b, c := order(1), order(1), order(2)
	if !slices.Equal(a, b) {
		t.Error("same seed, different orders")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same order")
	}
	slices.Sort(a)
	for i, x := range a {
		if x != int64(i) {
			t.Fatalf("not a permutation: %v", a)
		}
	}
}

func TestBatchBytes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	rec := batch(mem, schema, []any{1, 2, 3}, []any{"ab", nil, "cde"})
	defer rec.Release()
	// Every buffer counts at its length: int64 values 24 bytes; string
	// validity 1 byte, offsets 16 bytes, data 5 bytes.
	got := BatchBytes(rec)
	var want int64
	for _, col := range rec.Columns() {
		for _, b := range col.Data().Buffers() {
			if b != nil {
				want += int64(b.Len())
			}
		}
	}
	if got != want || got < 24+1+16+5 {
		t.Errorf("BatchBytes = %d, want %d (at least 46)", got, want)
	}
}
