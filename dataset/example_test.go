package dataset_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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

// A seeded 80/20 train/test split written in one run: the rows of each
// part go under their own directory (DirBy), the part column is not in
// the files.
func ExampleDataset_WithSplit() {
	dir, err := os.MkdirTemp("", "split")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	_, err = dataset.Range(1000).
		WithSplit("part", []float64{0.8, 0.2}, []string{"train", "test"}, 42).
		WriteParquet(ctx, dir, dataset.WriteOptions{DirBy: "part"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, part := range []string{"train", "test"} {
		n, err := dataset.ReadParquet(filepath.Join(dir, part)).Count(ctx)
		fmt.Println(part, n > 0, err)
	}
	train, _ := dataset.ReadParquet(filepath.Join(dir, "train")).Count(ctx)
	kept, _ := dataset.Range(1000).Sample(0.8, 42).Count(ctx)
	fmt.Println("train is Sample(0.8, 42):", train == kept)
	// Output:
	// train true <nil>
	// test true <nil>
	// train is Sample(0.8, 42): true
}
