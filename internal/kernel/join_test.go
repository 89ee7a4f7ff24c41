package kernel

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// refJoin is a nested-loop join: for each left row, every right row with
// equal non-null keys, in order; unmatched left rows padded with nulls for
// a left join. Output: left row, then right columns other than rkeys.
func refJoin(left, right [][]any, lkeys, rkeys []int, rightWidth int, kind JoinKind) [][]any {
	isKey := map[int]bool{}
	for _, c := range rkeys {
		isKey[c] = true
	}
	var out [][]any
	for _, l := range left {
		matched := false
		for _, r := range right {
			eq := true
			for k := range lkeys {
				lv, rv := l[lkeys[k]], r[rkeys[k]]
				if lv == nil || rv == nil || lv != rv {
					eq = false
					break
				}
			}
			if !eq {
				continue
			}
			matched = true
			row := append([]any{}, l...)
			for c := range rightWidth {
				if !isKey[c] {
					row = append(row, r[c])
				}
			}
			out = append(out, row)
		}
		if !matched && kind == Left {
			row := append([]any{}, l...)
			for c := range rightWidth {
				if !isKey[c] {
					row = append(row, nil)
				}
			}
			out = append(out, row)
		}
	}
	return out
}

var (
	joinLeft = arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "v", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	joinRight = arrow.NewSchema([]arrow.Field{
		{Name: "v", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "key", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "label", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, Nullable: true},
		{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "who", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
)

func genJoin(rng *rand.Rand, nl, nr int) (left, right [][]any) {
	names := []string{"ann", "bob", "cy"}
	maybe := func(v any) any {
		if rng.IntN(8) == 0 {
			return nil
		}
		return v
	}
	for i := range nl {
		left = append(left, []any{maybe(int64(rng.IntN(40))), maybe(names[rng.IntN(3)]), float64(i)})
	}
	for i := range nr {
		right = append(right, []any{
			fmt.Sprint("r", i), maybe(int64(rng.IntN(30))), maybe(names[rng.IntN(3)]),
			maybe(rng.IntN(2) == 0), maybe(names[rng.IntN(3)]),
		})
	}
	return left, right
}

func runJoin(t *testing.T, j *HashJoin, mem memory.Allocator, build, probe []arrow.RecordBatch) [][]any {
	t.Helper()
	for _, rec := range build {
		if err := j.Build(rec); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]any
	for _, rec := range probe {
		out, err := j.Probe(rec)
		if err != nil {
			t.Fatal(err)
		}
		if !out.Schema().Equal(j.OutputSchema()) {
			t.Fatalf("Probe schema %s, OutputSchema %s", out.Schema(), j.OutputSchema())
		}
		got = append(got, rowsOf(out)...)
		out.Release()
	}
	return got
}

func TestHashJoinMatchesNestedLoop(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(11, 12))
	left, right := genJoin(rng, 700, 90)
	lrecs := toBatches(mem, joinLeft, left, []int{300, 0, 400})
	defer releaseAllBatches(lrecs)
	rrecs := toBatches(mem, joinRight, right, []int{40, 50})
	defer releaseAllBatches(rrecs)

	for _, tc := range []struct {
		lk, rk []string
		lc, rc []int
	}{
		{[]string{"id"}, []string{"key"}, []int{0}, []int{1}},                      // int32 against int64
		{[]string{"id", "name"}, []string{"key", "who"}, []int{0, 1}, []int{1, 4}}, // two keys
		{[]string{"name"}, []string{"who"}, []int{1}, []int{4}},                    // many duplicates
	} {
		for _, kind := range []JoinKind{Inner, Left} {
			t.Run(fmt.Sprintf("%v/%v", tc.lk, kind), func(t *testing.T) {
				j, err := NewHashJoin(mem, joinLeft, joinRight, tc.lk, tc.rk, kind)
				if err != nil {
					t.Fatal(err)
				}
				defer j.Release()
				got := runJoin(t, j, mem, rrecs, lrecs)
				checkRows(t, got, refJoin(left, right, tc.lc, tc.rc, joinRight.NumFields(), kind))
			})
		}
	}
}

func TestHashJoinSchema(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	j, err := NewHashJoin(mem, joinLeft, joinRight, []string{"id"}, []string{"key"}, Left)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Release()
	want := "id:int32 name:utf8 v:float64 v_right:large_utf8 label:dictionary<values=utf8, indices=int32, ordered=false> flag:bool who:utf8"
	got := ""
	for i, f := range j.OutputSchema().Fields() {
		if i > 0 {
			got += " "
		}
		got += f.Name + ":" + f.Type.String()
		if i >= 3 && !f.Nullable {
			t.Errorf("right column %s of a left join is not nullable", f.Name)
		}
	}
	if got != want {
		t.Errorf("schema:\ngot  %s\nwant %s", got, want)
	}
}

func TestHashJoinLeftUnmatchedAndDuplicates(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	ls := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "i", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rs := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "i", Type: arrow.PrimitiveTypes.Int64}}, nil)
	l := batch(mem, ls, []any{"a", "b", nil, "c", "a"}, []any{1, 2, 3, 4, 5})
	defer l.Release()
	r1 := batch(mem, rs, []any{"a", nil, "c"}, []any{10, 11, 12})
	defer r1.Release()
	r2 := batch(mem, rs, []any{"a"}, []any{13})
	defer r2.Release()
	j, err := NewHashJoin(mem, ls, rs, []string{"k"}, []string{"k"}, Left)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Release()
	got := runJoin(t, j, mem, []arrow.RecordBatch{r1, r2}, []arrow.RecordBatch{l})
	checkRows(t, got, [][]any{
		{"a", int64(1), int64(10)}, {"a", int64(1), int64(13)},
		{"b", int64(2), nil},
		{nil, int64(3), nil}, // a null key matches nothing, not even the null on the right
		{"c", int64(4), int64(12)},
		{"a", int64(5), int64(10)}, {"a", int64(5), int64(13)},
	})
	if err := j.Build(r1); !errors.Is(err, ErrState) {
		t.Errorf("Build after Probe: got %v", err)
	}
}

func TestHashJoinEmptyBuild(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(1, 3))
	left, _ := genJoin(rng, 50, 0)
	lrecs := toBatches(mem, joinLeft, left, []int{50})
	defer releaseAllBatches(lrecs)
	for _, kind := range []JoinKind{Inner, Left} {
		j, err := NewHashJoin(mem, joinLeft, joinRight, []string{"id"}, []string{"key"}, kind)
		if err != nil {
			t.Fatal(err)
		}
		got := runJoin(t, j, mem, nil, lrecs)
		checkRows(t, got, refJoin(left, nil, []int{0}, []int{1}, joinRight.NumFields(), kind))
		j.Release()
	}
}

func TestHashJoinIntegerWidths(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	ls := arrow.NewSchema([]arrow.Field{{Name: "u", Type: arrow.PrimitiveTypes.Uint64}}, nil)
	rs := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.PrimitiveTypes.Int8}, {Name: "tag", Type: arrow.BinaryTypes.String}}, nil)
	l := batch(mem, ls, []any{uint64(math.MaxUint64), uint64(5), uint64(1 << 63), uint64(127)})
	defer l.Release()
	r := batch(mem, rs, []any{-1, 5, -128, 127}, []any{"minus one", "five", "min", "max"})
	defer r.Release()
	j, err := NewHashJoin(mem, ls, rs, []string{"u"}, []string{"s"}, Left)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Release()
	got := runJoin(t, j, mem, []arrow.RecordBatch{r}, []arrow.RecordBatch{l})
	// MaxUint64 has the bits of int64(-1) and 1<<63 those of MinInt64, yet
	// they are different numbers and must not match.
	checkRows(t, got, [][]any{
		{uint64(math.MaxUint64), nil}, {uint64(5), "five"}, {uint64(1 << 63), nil}, {uint64(127), "max"},
	})
}

func TestHashJoinErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	for _, tc := range []struct {
		lk, rk []string
		want   string
		is     error
	}{
		{[]string{"name"}, []string{"key"}, `kernel: join: left key "name" (string) cannot be compared with right key "key" (int64)`, ErrType},
		{[]string{"v"}, []string{"v"}, `kernel: join: left key "v" (float64) cannot be compared with right key "v" (large_string)`, ErrType},
		{[]string{"id"}, []string{"nope"}, `kernel: join: right key "nope": no such column (have v, key, label, flag, who)`, ErrColumn},
		{[]string{"id"}, nil, `kernel: join: 1 left keys [id] and 0 right keys []; want the same number, at least one`, ErrInvalid},
	} {
		_, err := NewHashJoin(mem, joinLeft, joinRight, tc.lk, tc.rk, Inner)
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.is) {
			t.Errorf("%v %v:\ngot  %v\nwant %s", tc.lk, tc.rk, err, tc.want)
		}
	}
}

// Run with -race: probes share the table.
func TestHashJoinConcurrentProbe(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(13, 14))
	left, right := genJoin(rng, 2000, 300)
	lrecs := toBatches(mem, joinLeft, left, []int{250})
	defer releaseAllBatches(lrecs)
	rrecs := toBatches(mem, joinRight, right, []int{100})
	defer releaseAllBatches(rrecs)
	j, err := NewHashJoin(mem, joinLeft, joinRight, []string{"id", "name"}, []string{"key", "who"}, Left)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Release()
	for _, rec := range rrecs {
		if err := j.Build(rec); err != nil {
			t.Fatal(err)
		}
	}
	results := make([][][]any, len(lrecs))
	errs := make([]error, len(lrecs))
	var wg sync.WaitGroup
	for i, rec := range lrecs {
		wg.Go(func() {
			out, err := j.Probe(rec)
			if err != nil {
				errs[i] = err
				return
			}
			results[i] = rowsOf(out)
			out.Release()
		})
	}
	wg.Wait()
	var got [][]any
	for i := range lrecs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		got = append(got, results[i]...)
	}
	checkRows(t, got, refJoin(left, right, []int{0, 1}, []int{1, 4}, joinRight.NumFields(), Left))
}

// TestHashJoinEmitDict checks that Probe with EmitDict returns the rows
// gathering returns, with the string right columns as dictionaries sharing
// one dictionary, and that a HashAgg grouping on them gives the same groups:
// nulls in build keys and values, unmatched probe rows, duplicate build
// keys, several build and probe batches.
func TestHashJoinEmitDict(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(21, 22))
	left, right := genJoin(rng, 700, 90)
	for i := range 50 { // a batch matching nothing
		left = append(left, []any{int64(1000 + i), "zed", float64(i)})
	}
	clean := make([][]any, len(right)) // right without nulls in who
	for i, r := range right {
		clean[i] = append([]any{}, r...)
		if clean[i][4] == nil {
			clean[i][4] = "zed"
		}
	}
	lrecs := toBatches(mem, joinLeft, left, []int{300, 0, 400, 50})
	defer releaseAllBatches(lrecs)

	for _, tc := range []struct {
		name   string
		right  [][]any
		lk, rk []string
		group  []string
	}{
		{"nulls", right, []string{"id"}, []string{"key"}, []string{"who", "v_right"}},
		{"duplicates", right, []string{"name"}, []string{"who"}, []string{"v_right"}},
		{"clean", clean, []string{"id"}, []string{"key"}, []string{"v_right", "who"}},
	} {
		rrecs := toBatches(mem, joinRight, tc.right, []int{40, 50})
		for _, kind := range []JoinKind{Inner, Left} {
			t.Run(fmt.Sprintf("%s/%v", tc.name, kind), func(t *testing.T) {
				var outs [2][]arrow.RecordBatch
				for d := range outs {
					j, err := NewHashJoin(mem, joinLeft, joinRight, tc.lk, tc.rk, kind)
					if err != nil {
						t.Fatal(err)
					}
					if d == 1 {
						if err := j.EmitDict([]string{"v_right", "who", "label", "flag", "id"}); err != nil {
							t.Fatal(err)
						}
					}
					for _, rec := range rrecs {
						if err := j.Build(rec); err != nil {
							t.Fatal(err)
						}
					}
					for _, rec := range lrecs {
						out, err := j.Probe(rec)
						if err != nil {
							t.Fatal(err)
						}
						outs[d] = append(outs[d], out)
					}
					j.Release()
				}
				defer releaseAllBatches(outs[0])
				defer releaseAllBatches(outs[1])
				checkRows(t, rowsOf(outs[1]...), rowsOf(outs[0]...))
				var dict arrow.ArrayData
				for _, out := range outs[1] {
					for _, name := range []string{"v_right", "who"} {
						idx := out.Schema().FieldIndices(name)
						if len(idx) == 0 {
							continue // a join key
						}
						c, ok := out.Column(idx[0]).(*array.Dictionary)
						if !ok {
							t.Fatalf("%s is %s, want a dictionary", name, out.Column(idx[0]).DataType())
						}
						if name == "v_right" {
							if dict != nil && c.Dictionary().Data() != dict {
								t.Fatal("v_right: output batches have different dictionaries")
							}
							dict = c.Dictionary().Data()
						}
					}
				}
				// groups[2]: the dictionary batches' groups merged with the
				// gathered ones' (the same keys must hash alike on both paths).
				var groups [3][][]any
				for d := range groups {
					var hs []*HashAgg
					for _, src := range [][]arrow.RecordBatch{outs[min(d, 1)], outs[0]}[:1+d/2] {
						h, err := NewHashAgg(mem, outs[0][0].Schema(), tc.group, []Agg{{Func: CountAll}, {Func: Sum, Column: "v"}})
						if err != nil {
							t.Fatal(err)
						}
						defer h.Release()
						for _, out := range src {
							if err := h.Push(out); err != nil {
								t.Fatal(err)
							}
						}
						hs = append(hs, h)
					}
					if len(hs) == 2 {
						if err := hs[0].Merge(hs[1]); err != nil {
							t.Fatal(err)
						}
					}
					res, err := hs[0].Finish()
					if err != nil {
						t.Fatal(err)
					}
					groups[d] = rowsOf(res)
					res.Release()
				}
				if len(groups[2]) != len(groups[0]) {
					t.Fatalf("merged: %d groups, want %d", len(groups[2]), len(groups[0]))
				}
				if len(groups[0]) < 2 {
					t.Fatalf("only %d groups", len(groups[0]))
				}
				checkRows(t, groups[1], groups[0])
			})
		}
		releaseAllBatches(rrecs)
	}
}
