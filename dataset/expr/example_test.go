package expr_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/expr"
)

func ExampleCompile() {
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "qty", Type: arrow.PrimitiveTypes.Int64},
		{Name: "category", Type: arrow.BinaryTypes.String},
	}, nil)
	rec, _, err := array.RecordFromJSON(mem, schema, strings.NewReader(`[
		{"price": 80, "qty": 2, "category": "c1"},
		{"price": 20, "qty": 5, "category": "c7"},
		{"price": null, "qty": 1, "category": "c9"},
		{"price": 99.5, "qty": 4, "category": "c2"}
	]`))
	if err != nil {
		panic(err)
	}
	defer rec.Release()
	ctx := context.Background()

	pred, err := expr.Compile("price > 50 and category in ('c1','c7','c9')", schema)
	if err != nil {
		panic(err)
	}
	kept, err := pred.Filter(ctx, mem, rec)
	if err != nil {
		panic(err)
	}
	defer kept.Release()
	fmt.Println(pred, "keeps", kept.NumRows(), "row; reads", pred.Columns())

	revenue, err := expr.Compile("price * qty", schema)
	if err != nil {
		panic(err)
	}
	out, err := revenue.Eval(ctx, mem, rec)
	if err != nil {
		panic(err)
	}
	defer out.Release()
	fmt.Println(revenue, "=", out, "as", revenue.Type())

	_, err = expr.Compile("price > 50 AND pirce < 3", schema)
	fmt.Println(err)
	// Output:
	// price > 50 AND category IN ('c1', 'c7', 'c9') keeps 1 row; reads [price category]
	// price * qty = [160 100 (null) 398] as float64
	// expr: 1:16: unknown column "pirce" (did you mean "price"?)
}
