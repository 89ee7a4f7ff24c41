package format_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/storage"
)

// Write a Parquet file through a staged upload, then read two of its
// columns back, skipping row groups by their statistics.
func Example() {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	dir, err := os.MkdirTemp("", "format-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sales.parquet")
	fs, err := storage.For(path)
	if err != nil {
		log.Fatal(err)
	}

	// Write 1,000 rows in row groups of 250.
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "item", Type: arrow.BinaryTypes.String},
		{Name: "price", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := range 1000 {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("item-%d", i%7))
		b.Field(2).(*array.Float64Builder).Append(float64(i) / 4)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()

	up, err := fs.Create(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	w, err := format.NewWriter("parquet", up, schema, format.WriteOptions{RowGroupRows: 250}, mem)
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	if err := up.Commit(ctx); err != nil { // the file appears only now
		log.Fatal(err)
	}

	// Read price and id where id >= 900: only the last row group can match.
	f, err := fs.Open(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	pq, err := format.ForPath(path)
	if err != nil {
		log.Fatal(err)
	}
	opts := format.ReadOptions{
		Columns: []string{"price", "id"},
		Prune: func(stats func(string) (format.ColumnStats, bool)) bool {
			st, ok := stats("id")
			return !ok || !st.HasMinMax || st.Max.(int64) >= 900
		},
	}
	splits, err := pq.Splits(ctx, f, opts)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range splits {
		fmt.Printf("split: row groups %v, %d rows\n", s.RowGroups, s.Rows)
		err := pq.Read(ctx, f, s, opts, mem, func(r arrow.RecordBatch) error {
			defer r.Release()
			fmt.Printf("batch: %d rows of %v\n", r.NumRows(), r.Schema().Field(0).Name+", "+r.Schema().Field(1).Name)
			fmt.Println("first row:", r.Column(0).ValueStr(0), r.Column(1).ValueStr(0))
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// split: row groups [3], 250 rows
	// batch: 250 rows of price, id
	// first row: 187.5 750
}
