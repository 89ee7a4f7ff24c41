package dataset_test

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/dataset"
)

func Example() {
	type order struct {
		ID       int64   `sluice:"id"`
		Category string  `sluice:"category"`
		Price    float64 `sluice:"price"`
		Qty      int32   `sluice:"qty"`
	}
	orders := []order{{1, "books", 12.5, 2}, {2, "games", 60, 1}, {3, "books", 80, 3}, {4, "toys", 5, 10}}
	rec, err := dataset.FromItems(orders).
		Filter("price > 10").
		WithColumn("revenue", "price * qty").
		GroupBy("category").
		Agg(dataset.Sum("revenue").As("revenue"), dataset.Count()).
		Sort(dataset.Asc("category")).
		Take(context.Background(), 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Release()
	for i := range int(rec.NumRows()) {
		fmt.Println(rec.Column(0).ValueStr(i), rec.Column(1).ValueStr(i), rec.Column(2).ValueStr(i))
	}
	// Output:
	// books 265 2
	// games 60 1
}
