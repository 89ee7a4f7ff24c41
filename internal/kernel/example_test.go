package kernel_test

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/internal/kernel"
)

// Group sales by category, then order the groups by revenue.
func Example() {
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "category", Type: arrow.BinaryTypes.String},
		{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"tea", "coffee", "tea", "cocoa", "coffee"}, nil)
	b.Field(1).(*array.Float64Builder).AppendValues([]float64{3, 4.5, 2.5, 0, 5}, []bool{true, true, true, false, true})
	rec := b.NewRecordBatch()
	defer rec.Release()

	agg, err := kernel.NewHashAgg(mem, schema, []string{"category"}, []kernel.Agg{
		{Func: kernel.CountAll, As: "n"},
		{Func: kernel.Sum, Column: "price", As: "revenue"},
	})
	if err != nil {
		panic(err)
	}
	defer agg.Release()
	if err := agg.Push(rec); err != nil {
		panic(err)
	}
	groups, err := agg.Finish()
	if err != nil {
		panic(err)
	}
	defer groups.Release()

	sorted, err := kernel.Sort(context.Background(), mem, agg.OutputSchema(), []arrow.RecordBatch{groups},
		[]kernel.SortKey{{Column: "revenue", Descending: true}}, 0)
	if err != nil {
		panic(err)
	}
	for _, out := range sorted {
		for i := range int(out.NumRows()) {
			fmt.Println(out.Column(0).ValueStr(i), out.Column(1).ValueStr(i), out.Column(2).ValueStr(i))
		}
		out.Release()
	}
	// Output:
	// coffee 2 9.5
	// tea 2 5.5
	// cocoa 1 (null)
}
