package kernel

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestTopKMatchesSortSlice(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	rng := rand.New(rand.NewPCG(5, 6))
	rows := genSortRows(rng, 20000, 0)
	for _, sizes := range [][]int{{1000}, {1, 7, 0, 64}, {20000}} {
		recs := toBatches(mem, sortSchema, rows, sizes)
		for _, keys := range [][]SortKey{
			{{Column: "x", Descending: true}},
			{{Column: "grp", NullsFirst: true}, {Column: "x"}},
			{{Column: "name", Descending: true}, {Column: "x", NullsFirst: true}},
		} {
			for _, k := range []int{0, 1, 10, 1000, 25000} {
				t.Run(fmt.Sprintf("%v/%v/k%d", sizes, keys, k), func(t *testing.T) {
					top, err := NewTopK(mem, sortSchema, keys, k)
					if err != nil {
						t.Fatal(err)
					}
					defer top.Release()
					for _, rec := range recs {
						if err := top.Push(rec); err != nil {
							t.Fatal(err)
						}
						if max := 2*k + 4096 + int(rec.NumRows()); top.rows > max {
							t.Fatalf("TopK retains %d rows, bound %d", top.rows, max)
						}
					}
					got, err := top.Finish()
					if err != nil {
						t.Fatal(err)
					}
					defer got.Release()
					sorted, err := Sort(context.Background(), mem, sortSchema, recs, keys, 0)
					if err != nil {
						t.Fatal(err)
					}
					defer releaseAllBatches(sorted)
					want := rowsOf(sorted...)
					checkRows(t, rowsOf(got), want[:min(k, len(want))])
				})
			}
		}
		releaseAllBatches(recs)
	}
}

func TestTopKEmptyAndErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	top, err := NewTopK(mem, sortSchema, []SortKey{{Column: "x"}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	got, err := top.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if got.NumRows() != 0 || !got.Schema().Equal(sortSchema) {
		t.Errorf("empty TopK: got %d rows of %s", got.NumRows(), got.Schema())
	}
	got.Release()
	other := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := batch(mem, other, []any{1})
	defer rec.Release()
	if err := top.Push(rec); !errors.Is(err, ErrSchema) {
		t.Errorf("Push of another schema: got %v", err)
	}
	top.Release()
	if err := top.Push(rec); !errors.Is(err, ErrState) {
		t.Errorf("Push after Release: got %v", err)
	}
	if _, err := NewTopK(mem, sortSchema, []SortKey{{Column: "x"}}, -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("k=-1: got %v", err)
	}
}

// One fixed-width key without nulls takes TopK's word-compare path; ties
// must still keep the earliest rows.
func TestTopKFixedKeyTies(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "v", Type: arrow.PrimitiveTypes.Int64},
		{Name: "i", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	rng := rand.New(rand.NewPCG(23, 24))
	var rows [][]any
	for i := range 5000 {
		rows = append(rows, []any{int64(rng.IntN(50)), int64(i)})
	}
	recs := toBatches(mem, schema, rows, []int{37, 500})
	defer releaseAllBatches(recs)
	for _, key := range []SortKey{{Column: "v"}, {Column: "v", Descending: true}} {
		for _, k := range []int{1, 10, 100, 4999} {
			top, err := NewTopK(mem, schema, []SortKey{key}, k)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				if err := top.Push(rec); err != nil {
					t.Fatal(err)
				}
			}
			got, err := top.Finish()
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, rowsOf(got), refSort(rows, []int{0}, []SortKey{key})[:k])
			got.Release()
			top.Release()
		}
	}
}
