package kernel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var aggSchema = arrow.NewSchema([]arrow.Field{
	{Name: "cat", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "qty", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
	{Name: "day", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
}, nil)

func genAggRows(rng *rand.Rand, n int) [][]any {
	cats := []string{"apple", "banana", "cherry", "", "date", "elder", "fig"}
	maybe := func(v any) any {
		if rng.IntN(6) == 0 {
			return nil
		}
		return v
	}
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{
			maybe(cats[rng.IntN(len(cats))]),
			maybe(int64(rng.IntN(3))),
			maybe(float64(rng.IntN(400)-100) / 4),
			maybe(int64(rng.IntN(1000) - 300)),
			maybe(int64(1_700_000_000_000 + rng.IntN(1_000_000))),
			maybe(int64(19000 + rng.IntN(100))),
			maybe(rng.IntN(3) == 0),
			maybe(int64(rng.IntN(256))),
		}
	}
	return rows
}

var allAggs = []Agg{
	{Func: CountAll},
	{Func: Count, Column: "price"},
	{Func: Sum, Column: "price"},
	{Func: Sum, Column: "qty"},
	{Func: Sum, Column: "u8", As: "sum_u8"},
	{Func: Mean, Column: "price"},
	{Func: Mean, Column: "qty"},
	{Func: Min, Column: "ts"},
	{Func: Max, Column: "ts"},
	{Func: Min, Column: "price"},
	{Func: Max, Column: "qty"},
	{Func: Min, Column: "day"},
	{Func: Max, Column: "cat", As: "max_cat"},
	{Func: Min, Column: "cat", As: "min_cat"},
	{Func: Min, Column: "flag"},
	{Func: Max, Column: "flag"},
	{Func: Max, Column: "u8"},
	{Func: CountDistinct, Column: "qty"},
	{Func: CountDistinct, Column: "cat", As: "distinct_cat"},
	{Func: CountDistinct, Column: "flag"},
}

// refAgg computes the expected output with maps and loops over rows.
func refAgg(rows [][]any, schema *arrow.Schema, keys []string, aggs []Agg) [][]any {
	col := func(name string) int { i, _ := fieldIndex(schema, name); return i }
	var order []string
	groups := map[string][][]any{}
	for _, row := range rows {
		var key []any
		for _, k := range keys {
			key = append(key, row[col(k)])
		}
		ks := fmt.Sprintf("%#v", key)
		if _, ok := groups[ks]; !ok {
			order = append(order, ks)
		}
		groups[ks] = append(groups[ks], row)
	}
	if len(keys) == 0 && len(order) == 0 {
		order = append(order, "global")
	}
	var out [][]any
	for _, ks := range order {
		grows := groups[ks]
		var res []any
		if len(grows) > 0 {
			for _, k := range keys {
				res = append(res, grows[0][col(k)])
			}
		}
		for _, a := range aggs {
			var vals []any
			if a.Func != CountAll {
				for _, r := range grows {
					if v := r[col(a.Column)]; v != nil {
						vals = append(vals, v)
					}
				}
			}
			res = append(res, refAggValue(a.Func, vals, len(grows), schema.Field(max(col(a.Column), 0)).Type))
		}
		out = append(out, res)
	}
	return out
}

func refAggValue(f AggFunc, vals []any, rows int, dt arrow.DataType) any {
	switch f {
	case CountAll:
		return int64(rows)
	case Count:
		return int64(len(vals))
	case CountDistinct:
		set := map[any]bool{}
		for _, v := range vals {
			set[v] = true
		}
		return int64(len(set))
	}
	if len(vals) == 0 {
		return nil
	}
	switch f {
	case Sum, Mean:
		var fs float64
		var is int64
		for _, v := range vals {
			if x, ok := v.(float64); ok {
				fs += x
			} else {
				is += v.(int64)
				fs += float64(v.(int64))
			}
		}
		if f == Mean {
			return fs / float64(len(vals))
		}
		if isFloat(dt.ID()) {
			return fs
		}
		return is
	case Min, Max:
		best := vals[0]
		for _, v := range vals[1:] {
			c := refCompare(v, best, SortKey{})
			if (f == Min && c < 0) || (f == Max && c > 0) {
				best = v
			}
		}
		return best
	}
	panic(f)
}

func runAgg(t *testing.T, mem memory.Allocator, schema *arrow.Schema, keys []string, aggs []Agg, recs []arrow.RecordBatch) [][]any {
	t.Helper()
	h, err := NewHashAgg(mem, schema, keys, aggs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	for _, rec := range recs {
		if err := h.Push(rec); err != nil {
			t.Fatal(err)
		}
	}
	out, err := h.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if !out.Schema().Equal(h.OutputSchema()) {
		t.Fatalf("Finish schema %s, OutputSchema %s", out.Schema(), h.OutputSchema())
	}
	return rowsOf(out)
}

func TestHashAggMatchesReference(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(7, 8))
	rows := genAggRows(rng, 5000)
	recs := toBatches(mem, aggSchema, rows, []int{1000, 1, 0, 999, 3000})
	defer releaseAllBatches(recs)
	for _, keys := range [][]string{{"cat"}, {"cat", "n"}, {"n"}, {"flag", "day"}, {"u8"}, {"price"}, {}} {
		t.Run(fmt.Sprint(keys), func(t *testing.T) {
			checkRows(t, runAgg(t, mem, aggSchema, keys, allAggs, recs), refAgg(rows, aggSchema, keys, allAggs))
		})
	}
}

func TestHashAggEmptyAndSingleGroup(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	aggs := []Agg{{Func: CountAll}, {Func: Sum, Column: "price"}, {Func: Min, Column: "cat"}, {Func: CountDistinct, Column: "qty"}}
	// No rows: a global aggregation still gives its one row; grouped gives none.
	checkRows(t, runAgg(t, mem, aggSchema, nil, aggs, nil), [][]any{{int64(0), nil, nil, int64(0)}})
	checkRows(t, runAgg(t, mem, aggSchema, []string{"cat"}, aggs, nil), nil)

	// One group whose values are all null.
	rec := batch(mem, aggSchema,
		[]any{"a", "a", "a"}, []any{nil, nil, nil}, []any{nil, nil, nil}, []any{nil, nil, nil},
		[]any{nil, nil, nil}, []any{nil, nil, nil}, []any{nil, nil, nil}, []any{nil, nil, nil})
	defer rec.Release()
	checkRows(t, runAgg(t, mem, aggSchema, []string{"cat"}, aggs, []arrow.RecordBatch{rec}),
		[][]any{{"a", int64(3), nil, "a", int64(0)}})
	// Null keys form their own group.
	checkRows(t, runAgg(t, mem, aggSchema, []string{"n"}, []Agg{{Func: CountAll}}, []arrow.RecordBatch{rec}),
		[][]any{{nil, int64(3)}})
}

func TestHashAggMergeEqualsOnePass(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(9, 10))
	rows := genAggRows(rng, 6000)
	recs := toBatches(mem, aggSchema, rows, []int{500})
	defer releaseAllBatches(recs)
	for _, keys := range [][]string{{"cat", "n"}, {}} {
		want := runAgg(t, mem, aggSchema, keys, allAggs, recs)
		// Three partial aggregations over consecutive runs of batches, merged
		// in order, see groups in the same first-seen order as one pass.
		var parts []*HashAgg
		for p := range 3 {
			h, err := NewHashAgg(mem, aggSchema, keys, allAggs)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Release()
			for _, rec := range recs[p*4 : p*4+4] {
				if err := h.Push(rec); err != nil {
					t.Fatal(err)
				}
			}
			parts = append(parts, h)
		}
		for _, p := range parts[1:] {
			if err := parts[0].Merge(p); err != nil {
				t.Fatal(err)
			}
		}
		got, err := parts[0].Finish()
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, rowsOf(got), want)
		got.Release()
	}
}

func TestHashAggFloatsAndDictionaryKeys(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.LargeString, Nullable: true},
	}, nil)
	nan := math.NaN()
	a := batch(mem, schema, []any{"x", "y", nil, "x"}, []any{1.0, nan, 2.0, math.Copysign(0, -1)}, []any{"b", "a", nil, "c"})
	defer a.Release()
	b := batch(mem, schema, []any{"y", "x"}, []any{3.0, 0.0}, []any{"z", nil})
	defer b.Release()
	aggs := []Agg{{Func: Max, Column: "f"}, {Func: Min, Column: "f"}, {Func: Max, Column: "s"}, {Func: CountDistinct, Column: "f"}}
	got := runAgg(t, mem, schema, []string{"k"}, aggs, []arrow.RecordBatch{a, b})
	checkRows(t, got, [][]any{
		{"x", 1.0, 0.0, "c", int64(2)}, // -0 and +0 are one value
		{"y", nan, 3.0, "z", int64(2)}, // NaN is the largest value
		{nil, 2.0, 2.0, nil, int64(1)},
	})
	// Grouping by a float: all NaNs are one group, -0 and +0 another.
	got = runAgg(t, mem, schema, []string{"f"}, []Agg{{Func: CountAll}}, []arrow.RecordBatch{a, b, a})
	checkRows(t, got, [][]any{{1.0, int64(2)}, {nan, int64(2)}, {2.0, int64(2)}, {0.0, int64(3)}, {3.0, int64(1)}})
}

func TestHashAggErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	listSchema := arrow.NewSchema([]arrow.Field{{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int8)}}, nil)
	for _, tc := range []struct {
		schema *arrow.Schema
		keys   []string
		aggs   []Agg
		want   string
		is     error
	}{
		{aggSchema, nil, []Agg{{Func: Sum, Column: "cat"}}, `kernel: sum("cat"): cannot sum a string column`, ErrType},
		{aggSchema, nil, []Agg{{Func: Mean, Column: "ts"}}, `kernel: mean("ts"): cannot mean a timestamp[ms] column`, ErrType},
		{aggSchema, nil, []Agg{{Func: Sum, Column: "nope"}}, `kernel: sum("nope"): no such column (have cat, n, price, qty, ts, day, flag, u8)`, ErrColumn},
		{aggSchema, nil, []Agg{{Func: "mode", Column: "qty"}}, `kernel: mode("qty"): unknown aggregate "mode" (want count, count_all, sum, mean, min, max, count_distinct, var, std or median)`, ErrInvalid},
		{aggSchema, []string{"nope"}, nil, `kernel: group key "nope": no such column (have cat, n, price, qty, ts, day, flag, u8)`, ErrColumn},
		{aggSchema, nil, []Agg{{Func: Sum, Column: "qty"}, {Func: Sum, Column: "qty"}}, `kernel: sum("qty"): output column "sum(qty)" is already used; set As`, ErrInvalid},
		{listSchema, []string{"l"}, nil, `kernel: group key "l": cannot group by a list<item: int8, nullable> column`, ErrType},
		{listSchema, nil, []Agg{{Func: Min, Column: "l"}}, `kernel: min("l"): cannot take the min of a list<item: int8, nullable> column`, ErrType},
	} {
		_, err := NewHashAgg(mem, tc.schema, tc.keys, tc.aggs)
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.is) {
			t.Errorf("%v %v:\ngot  %v\nwant %s", tc.keys, tc.aggs, err, tc.want)
		}
	}
	h, err := NewHashAgg(mem, aggSchema, []string{"cat"}, []Agg{{Func: Count, Column: "l"}, {Func: CountAll}}[1:])
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	other, err := NewHashAgg(mem, aggSchema, []string{"n"}, []Agg{{Func: CountAll}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	if err := h.Merge(other); !errors.Is(err, ErrInvalid) {
		t.Errorf("merge of different keys: got %v", err)
	}
	rec := batch(mem, listSchema, []any{})
	defer rec.Release()
	if err := h.Push(rec); !errors.Is(err, ErrSchema) {
		t.Errorf("push of another schema: got %v", err)
	}
}

// A dictionary whose entries include a null: rows pointing at it are null keys.
func TestHashAggDictionaryNullEntry(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: dt, Nullable: true}}, nil)
	dict := column(mem, arrow.BinaryTypes.String, []any{"a", nil, "b"})
	defer dict.Release()
	idx := column(mem, arrow.PrimitiveTypes.Int32, []any{0, 1, 2, nil, 1, 0})
	defer idx.Release()
	arr := array.NewDictionaryArray(dt, idx, dict)
	defer arr.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{arr}, 6)
	defer rec.Release()
	got := runAgg(t, mem, schema, []string{"k"}, []Agg{{Func: CountAll}, {Func: Count, Column: "k"}, {Func: Max, Column: "k"}}, []arrow.RecordBatch{rec})
	checkRows(t, got, [][]any{{"a", int64(2), int64(2), "a"}, {nil, int64(3), int64(0), nil}, {"b", int64(1), int64(1), "b"}})
}

// An empty dictionary with every row null: keys hash and sort without
// touching a dictionary entry.
func TestEmptyDictionaryKey(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: dt, Nullable: true}, {Name: "i", Type: arrow.PrimitiveTypes.Int64}}, nil)
	dict := column(mem, arrow.BinaryTypes.String, []any{})
	defer dict.Release()
	idx := column(mem, arrow.PrimitiveTypes.Int8, []any{nil, nil})
	defer idx.Release()
	arr := array.NewDictionaryArray(dt, idx, dict)
	defer arr.Release()
	ids := column(mem, arrow.PrimitiveTypes.Int64, []any{1, 2})
	defer ids.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{arr, ids}, 2)
	defer rec.Release()
	checkRows(t, runAgg(t, mem, schema, []string{"k"}, []Agg{{Func: CountAll}}, []arrow.RecordBatch{rec}), [][]any{{nil, int64(2)}})
	sorted, err := Sort(context.Background(), mem, schema, []arrow.RecordBatch{rec}, []SortKey{{Column: "k"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAllBatches(sorted)
	checkRows(t, rowsOf(sorted...), [][]any{{nil, int64(1)}, {nil, int64(2)}})
	parts, err := HashPartition(mem, rec, []string{"k"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	releaseAllBatches(parts)
}

// A string key that arrives dictionary-encoded although the schema says
// string (a Parquet scan that kept the file's dictionary) groups exactly as
// the plain strings do: batches with different dictionaries, null indices,
// a null dictionary entry, and plain batches mixed in.
func TestHashAggDictionaryBatchesOfStringKey(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	dschema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: dt, Nullable: true}, schema.Field(1)}, nil)
	type part struct {
		dict []any // nil: a plain batch of keys
		keys []any // indices into dict, or the strings themselves
		vals []any
	}
	parts := []part{
		{[]any{"a", "b", "c"}, []any{0, 1, 2, 1, nil, 0}, []any{1, 2, 3, 4, 5, nil}},
		{[]any{"c", "zz", "a"}, []any{1, 1, 0, 2, 1}, []any{10, 20, 30, 40, 50}}, // no nulls
		{nil, []any{"b", nil, "zz", "d"}, []any{100, 200, 300, 400}},
		{[]any{"d", nil, "b"}, []any{1, 0, 2, 1}, []any{1000, 2000, 3000, 4000}},
	}
	var dicts, plains []arrow.RecordBatch
	defer func() { releaseAllBatches(dicts); releaseAllBatches(plains) }()
	for _, p := range parts {
		if p.dict == nil {
			rec := batch(mem, schema, p.keys, p.vals)
			dicts, plains = append(dicts, rec), append(plains, rec)
			rec.Retain()
			continue
		}
		d := column(mem, arrow.BinaryTypes.String, p.dict)
		idx := column(mem, arrow.PrimitiveTypes.Int32, p.keys)
		darr := array.NewDictionaryArray(dt, idx, d)
		vals := column(mem, arrow.PrimitiveTypes.Int64, p.vals)
		dicts = append(dicts, array.NewRecordBatch(dschema, []arrow.Array{darr, vals}, int64(len(p.keys))))
		plain := make([]any, len(p.keys))
		for i, j := range p.keys {
			if j != nil {
				plain[i] = p.dict[j.(int)]
			}
		}
		plains = append(plains, batch(mem, schema, plain, p.vals))
		for _, a := range []arrow.Array{d, idx, darr, vals} {
			a.Release()
		}
	}
	aggs := []Agg{{Func: CountAll}, {Func: Sum, Column: "v"}, {Func: Max, Column: "v"}}
	want := runAgg(t, mem, schema, []string{"k"}, aggs, plains)
	checkRows(t, runAgg(t, mem, schema, []string{"k"}, aggs, dicts), want)
	checkRows(t, want, [][]any{
		{"a", int64(3), int64(41), int64(40)},
		{"b", int64(4), int64(3106), int64(3000)},
		{"c", int64(2), int64(33), int64(30)},
		{nil, int64(4), int64(5205), int64(4000)},
		{"zz", int64(4), int64(380), int64(300)},
		{"d", int64(2), int64(2400), int64(2000)},
	})

	// Merged partial aggregates, one fed dictionaries, one plain strings.
	h1, err := NewHashAgg(mem, schema, []string{"k"}, aggs)
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Release()
	h2, err := NewHashAgg(mem, schema, []string{"k"}, aggs)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Release()
	for i := range dicts {
		if err := h1.Push(dicts[i]); err != nil {
			t.Fatal(err)
		}
		if err := h2.Push(plains[len(plains)-1-i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := h1.Merge(h2); err != nil {
		t.Fatal(err)
	}
	out, err := h1.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if !arrow.TypeEqual(out.Schema().Field(0).Type, arrow.BinaryTypes.String) {
		t.Errorf("key column comes out as %s, want string", out.Schema().Field(0).Type)
	}
	doubled := make([][]any, len(want))
	for i, r := range want {
		doubled[i] = []any{r[0], 2 * r[1].(int64), 2 * r[2].(int64), r[3]}
	}
	checkRows(t, rowsOf(out), doubled)

	// A column an aggregate reads must arrive as the schema says.
	h3, err := NewHashAgg(mem, schema, []string{"k"}, []Agg{{Func: Max, Column: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	defer h3.Release()
	if err := h3.Push(dicts[0]); !errors.Is(err, ErrSchema) {
		t.Errorf("Push of a dictionary key that max reads: %v, want ErrSchema", err)
	}
}
