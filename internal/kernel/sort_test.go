package kernel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// refCompare orders Go values as the kernels should: NaN above everything,
// then the natural order; nulls per the key.
func refCompare(a, b any, key SortKey) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case (a == nil) == key.NullsFirst:
			return -1
		default:
			return 1
		}
	}
	var c int
	switch x := a.(type) {
	case int64:
		c = cmp.Compare(x, b.(int64))
	case uint64:
		c = cmp.Compare(x, b.(uint64))
	case float64:
		y := b.(float64)
		switch xn, yn := math.IsNaN(x), math.IsNaN(y); {
		case xn && yn:
			c = 0
		case xn:
			c = 1
		case yn:
			c = -1
		default:
			c = cmp.Compare(x, y)
		}
	case string:
		c = strings.Compare(x, b.(string))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
		case !x:
			c = -1
		default:
			c = 1
		}
	default:
		panic(fmt.Sprintf("refCompare(%T)", a))
	}
	if key.Descending {
		c = -c
	}
	return c
}

// refSort stably sorts rows by the columns cols[k] under keys[k].
func refSort(rows [][]any, cols []int, keys []SortKey) [][]any {
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b []any) int {
		for k, c := range cols {
			if r := refCompare(a[c], b[c], keys[k]); r != 0 {
				return r
			}
		}
		return 0
	})
	return out
}

// genRows makes rows of (id int64, grp int64 0..4 or null, name string of
// few values or null, x float64 with ties, NaN and null).
var sortSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "grp", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
}, nil)

func genSortRows(rng *rand.Rand, n, start int) [][]any {
	names := []string{"", "a", "ab", "b", "ba", "zz"}
	rows := make([][]any, n)
	for i := range rows {
		row := []any{int64(start + i), nil, nil, nil}
		if rng.IntN(8) > 0 {
			row[1] = int64(rng.IntN(5) - 2)
		}
		if rng.IntN(8) > 0 {
			row[2] = names[rng.IntN(len(names))]
		}
		switch r := rng.IntN(20); {
		case r == 0:
		case r == 1:
			row[3] = math.NaN()
		case r == 2:
			row[3] = math.Copysign(0, -1)
		default:
			row[3] = float64(rng.IntN(7)-3) / 2
		}
		rows[i] = row
	}
	return rows
}

func toBatches(mem memory.Allocator, schema *arrow.Schema, rows [][]any, sizes []int) []arrow.RecordBatch {
	var recs []arrow.RecordBatch
	for i := 0; len(rows) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(rows))
		cols := make([][]any, schema.NumFields())
		for _, row := range rows[:n] {
			for c := range cols {
				cols[c] = append(cols[c], row[c])
			}
		}
		if n == 0 {
			for c := range cols {
				cols[c] = []any{}
			}
		}
		recs = append(recs, batch(mem, schema, cols...))
		rows = rows[n:]
	}
	return recs
}

func TestSortMatchesStableReference(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(1, 2))
	rows := genSortRows(rng, 3000, 0)
	recs := toBatches(mem, sortSchema, rows, []int{700, 0, 1, 1299, 1000})
	defer releaseAllBatches(recs)

	cases := []struct {
		keys []SortKey
		cols []int
	}{
		{[]SortKey{{Column: "x"}}, []int{3}},
		{[]SortKey{{Column: "x", Descending: true}}, []int{3}},
		{[]SortKey{{Column: "x", Descending: true, NullsFirst: true}}, []int{3}},
		{[]SortKey{{Column: "grp"}, {Column: "x", Descending: true}}, []int{1, 3}},
		{[]SortKey{{Column: "grp", NullsFirst: true}, {Column: "name"}}, []int{1, 2}},
		{[]SortKey{{Column: "name", Descending: true}}, []int{2}},
		{[]SortKey{{Column: "name", NullsFirst: true}, {Column: "grp", Descending: true}, {Column: "x"}}, []int{2, 1, 3}},
		{[]SortKey{{Column: "id", Descending: true}}, []int{0}},
	}
	for _, tc := range cases {
		for _, maxRows := range []int{0, 1000, 7} {
			t.Run(fmt.Sprintf("%v/max%d", tc.keys, maxRows), func(t *testing.T) {
				got, err := Sort(context.Background(), mem, sortSchema, recs, tc.keys, maxRows)
				if err != nil {
					t.Fatal(err)
				}
				defer releaseAllBatches(got)
				for i, rec := range got {
					if maxRows > 0 && rec.NumRows() > int64(maxRows) {
						t.Fatalf("batch %d has %d rows, max %d", i, rec.NumRows(), maxRows)
					}
				}
				checkRows(t, rowsOf(got...), refSort(rows, tc.cols, tc.keys))
			})
		}
	}
}

func TestSortDescendingNulls(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "tag", Type: arrow.BinaryTypes.String},
	}, nil)
	nan := math.NaN()
	rec := batch(mem, schema,
		[]any{1.5, nil, nan, -2.0, math.Inf(1), 1.5, nil, math.Inf(-1)},
		[]any{"a", "b", "c", "d", "e", "f", "g", "h"})
	defer rec.Release()

	for _, tc := range []struct {
		key  SortKey
		want string
	}{
		{SortKey{Column: "x"}, "h d a f e c b g"},
		{SortKey{Column: "x", Descending: true}, "c e a f d h b g"},
		{SortKey{Column: "x", Descending: true, NullsFirst: true}, "b g c e a f d h"},
		{SortKey{Column: "x", NullsFirst: true}, "b g h d a f e c"},
	} {
		got, err := Sort(context.Background(), mem, schema, []arrow.RecordBatch{rec}, []SortKey{tc.key}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var tags []string
		for _, row := range rowsOf(got...) {
			tags = append(tags, row[1].(string))
		}
		releaseAllBatches(got)
		if s := strings.Join(tags, " "); s != tc.want {
			t.Errorf("%+v: got %s, want %s", tc.key, s, tc.want)
		}
	}
}

func TestSortKeyTypes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(3, 4))
	types := []arrow.DataType{
		arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64,
		arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64,
		arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64, arrow.FixedWidthTypes.Boolean,
		arrow.BinaryTypes.String, arrow.BinaryTypes.LargeString, arrow.BinaryTypes.Binary,
		&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, arrow.FixedWidthTypes.Date32, arrow.FixedWidthTypes.Date64,
		&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String},
	}
	for _, dt := range types {
		t.Run(dt.String(), func(t *testing.T) {
			schema := arrow.NewSchema([]arrow.Field{
				{Name: "k", Type: dt, Nullable: true},
				{Name: "i", Type: arrow.PrimitiveTypes.Int64},
			}, nil)
			var rows [][]any
			for i := range 500 {
				rows = append(rows, []any{randomValue(rng, dt), int64(i)})
			}
			recs := toBatches(mem, schema, rows, []int{200, 300})
			defer releaseAllBatches(recs)
			// Values as they read back (uint64 keys stay uint64, small ints widen).
			rows = rowsOf(recs...)
			for _, key := range []SortKey{{Column: "k"}, {Column: "k", Descending: true, NullsFirst: true}} {
				got, err := Sort(context.Background(), mem, schema, recs, []SortKey{key}, 0)
				if err != nil {
					t.Fatal(err)
				}
				checkRows(t, rowsOf(got...), refSort(rows, []int{0}, []SortKey{key}))
				releaseAllBatches(got)
			}
		})
	}
}

// randomValue draws a value for dt with nulls, ties, and the extremes.
func randomValue(rng *rand.Rand, dt arrow.DataType) any {
	if rng.IntN(10) == 0 {
		return nil
	}
	switch dt.ID() {
	case arrow.INT8:
		return []any{-128, 127, 0, -1, 5}[rng.IntN(5)]
	case arrow.INT16, arrow.INT32, arrow.DATE32:
		return rng.IntN(200) - 100
	case arrow.INT64, arrow.TIMESTAMP, arrow.DATE64:
		return []any{int64(math.MinInt64), int64(math.MaxInt64), int64(rng.IntN(1000) - 500)}[rng.IntN(3)]
	case arrow.UINT8, arrow.UINT16, arrow.UINT32:
		return rng.IntN(250)
	case arrow.UINT64:
		return []any{uint64(math.MaxUint64), uint64(1 << 63), uint64(rng.IntN(100))}[rng.IntN(3)]
	case arrow.FLOAT32, arrow.FLOAT64:
		return []any{math.NaN(), math.Inf(-1), math.Inf(1), 0.0, -1.5, float64(rng.IntN(100)) / 8}[rng.IntN(6)]
	case arrow.BOOL:
		return rng.IntN(2) == 0
	default:
		return []any{"", "a", "\xff", "abc", "ab", fmt.Sprint(rng.IntN(50))}[rng.IntN(6)]
	}
}

func TestSortEmpty(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	keys := []SortKey{{Column: "x"}}
	got, err := Sort(context.Background(), mem, sortSchema, nil, keys, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("no input: got %d batches, %v", len(got), err)
	}
	empty := toBatches(mem, sortSchema, nil, []int{0})
	empty = append(empty, batch(mem, sortSchema, []any{}, []any{}, []any{}, []any{}))
	defer releaseAllBatches(empty)
	got, err = Sort(context.Background(), mem, sortSchema, empty, keys, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty batches: got %d batches, %v", len(got), err)
	}
}

func TestSortErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "v", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
		{Name: "x", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	for _, tc := range []struct {
		keys []SortKey
		want string
		is   error
	}{
		{nil, "kernel: Sort: no sort keys", ErrInvalid},
		{[]SortKey{{Column: "y"}}, `kernel: Sort: sort key "y": no such column (have v, x)`, ErrColumn},
		{[]SortKey{{Column: "v"}}, `kernel: Sort: sort key "v": cannot sort by a list<item: float32, nullable> column`, ErrType},
	} {
		_, err := Sort(context.Background(), mem, schema, nil, tc.keys, 0)
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.is) {
			t.Errorf("keys %v: got %v, want %q", tc.keys, err, tc.want)
		}
	}
	other := batch(mem, sortSchema, []any{int64(1)}, []any{nil}, []any{nil}, []any{nil})
	defer other.Release()
	_, err := Sort(context.Background(), mem, schema, []arrow.RecordBatch{other}, []SortKey{{Column: "x"}}, 0)
	if !errors.Is(err, ErrSchema) {
		t.Errorf("mismatched batch: got %v, want ErrSchema", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	recs := toBatches(mem, sortSchema, genSortRows(rand.New(rand.NewPCG(1, 1)), 10, 0), []int{10})
	defer releaseAllBatches(recs)
	if _, err := Sort(ctx, mem, sortSchema, recs, []SortKey{{Column: "x"}}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: got %v", err)
	}
}

// A value column of a type gather does not copy itself (a list) goes through
// arrow's take kernel, also across batches.
func TestSortCarriesListColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.PrimitiveTypes.Int64},
		{Name: "v", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
	}, nil)
	mk := func(ks []int64, lists string) arrow.RecordBatch {
		k := column(mem, arrow.PrimitiveTypes.Int64, []any{int64(ks[0]), int64(ks[1])})
		defer k.Release()
		v, _, err := array.FromJSON(mem, arrow.ListOf(arrow.PrimitiveTypes.Int64), strings.NewReader(lists))
		if err != nil {
			t.Fatal(err)
		}
		defer v.Release()
		return array.NewRecordBatch(schema, []arrow.Array{k, v}, 2)
	}
	a := mk([]int64{3, 1}, `[[3,3,3], [1]]`)
	defer a.Release()
	b := mk([]int64{2, 0}, `[null, []]`)
	defer b.Release()
	got, err := Sort(context.Background(), mem, schema, []arrow.RecordBatch{a, b}, []SortKey{{Column: "k"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAllBatches(got)
	if s := got[0].Column(1).String(); s != "[[] [1] (null) [3 3 3]]" {
		t.Errorf("got %s", s)
	}
}

func TestRadixSortStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	gens := map[string]func() uint64{
		"uniform":  rng.Uint64,
		"small":    func() uint64 { return uint64(rng.IntN(1000)) },
		"dups":     func() uint64 { return uint64(rng.IntN(3)) << 40 },
		"floats":   func() uint64 { return floatKey(rng.Float64()*100, forOrder) },
		"highbyte": func() uint64 { return uint64(rng.IntN(256)) << 56 },
	}
	for name, gen := range gens {
		for _, n := range []int{0, 1, 31, 33, 5000, 8193, 100_000} {
			a := make([]radixPair, n)
			for i := range a {
				a[i] = radixPair{gen(), uint32(i)}
			}
			want := slices.Clone(a)
			slices.SortStableFunc(want, func(x, y radixPair) int { return cmp.Compare(x.key, y.key) })
			got := radixSort(a, make([]radixPair, n))
			if !slices.Equal(got, want) {
				t.Fatalf("%s n=%d: radix sort differs from a stable sort", name, n)
			}
		}
	}
}
