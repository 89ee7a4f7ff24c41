package local_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
)

// writeSales writes n rows of (category, price, qty) with categories drawn
// from cats (nil entries are nulls), in row groups of rg rows, the strings
// dictionary-encoded or not.
func writeSales(t *testing.T, path string, rng *rand.Rand, cats []any, n, rg int, dict bool) {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "price", Type: arrow.PrimitiveTypes.Float64},
		{Name: "qty", Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for range n {
		if c := cats[rng.IntN(len(cats))]; c == nil {
			b.Field(0).AppendNull()
		} else {
			b.Field(0).(*array.StringBuilder).Append(c.(string))
		}
		b.Field(1).(*array.Float64Builder).Append(float64(1 + rng.IntN(99))) // whole numbers: sums exact in any order
		b.Field(2).(*array.Int32Builder).Append(int32(1 + rng.IntN(10)))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	props := parquet.NewWriterProperties(parquet.WithDictionaryDefault(dict), parquet.WithMaxRowGroupLength(int64(rg)))
	w, err := pqarrow.NewFileWriter(sc, f, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// A group-by on a string column the files store dictionary-encoded (the
// scan hands the aggregate dictionary arrays) gives the same groups as the
// plain path, and its output is plain strings: files whose dictionaries
// differ, nulls, a plain-encoded file among them, several batches per row
// group.
func TestGroupByDictionaryEncodedKey(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	writeSales(t, filepath.Join(in, "a.parquet"), rng, []any{"c1", "c2", "c3", nil}, 3000, 700, true)
	writeSales(t, filepath.Join(in, "b.parquet"), rng, []any{"c3", "zz", "c4", "c1", nil}, 2500, 1000, true)
	writeSales(t, filepath.Join(in, "c.parquet"), rng, []any{"c9", "c1"}, 800, 800, false)
	writeSales(t, filepath.Join(in, "d.parquet"), rng, []any{"c2", "zz", "c9"}, 1500, 600, true) // no nulls

	cfg := local.DefaultConfig()
	cfg.Allocator = mem
	cfg.BatchRows = 256
	cfg.Concurrency = 2
	query := func(filter string) *dataset.Dataset {
		d := dataset.ReadParquet(in).Configure(cfg)
		if filter != "" {
			d = d.Filter(filter) // a scan with a filter keeps strings plain
		}
		return d.WithColumn("revenue", "price * qty").
			GroupBy("category").
			Agg(dataset.Count().As("n"), dataset.Sum("revenue").As("revenue"), dataset.Mean("price").As("avg_price"),
				dataset.Max("qty").As("max_qty"))
	}
	rows := func(d *dataset.Dataset) []string {
		t.Helper()
		var out []string
		for rec, err := range d.Iter(t.Context()) {
			if err != nil {
				t.Fatal(err)
			}
			if f := rec.Schema().Field(0); !arrow.TypeEqual(f.Type, arrow.BinaryTypes.String) {
				t.Errorf("category is %s in the output, want string", f.Type)
			}
			for i := range int(rec.NumRows()) {
				var r string
				for _, c := range rec.Columns() {
					r += fmt.Sprintf("%v|", c.GetOneForMarshal(i))
				}
				out = append(out, r)
			}
		}
		slices.Sort(out)
		return out
	}
	chosen := dictKeysChosen(t)
	got := rows(query(""))
	if c := chosen(); !slices.Contains(c, "scan:category") {
		t.Errorf("dictionary path not taken: scan:category not among the keys chosen %v", c)
	}
	want := rows(query("qty > 0"))
	if len(want) != 7 { // c1 c2 c3 c4 c9 zz null
		t.Fatalf("plain path: %d groups, want 7: %v", len(want), want)
	}
	if !slices.Equal(got, want) {
		t.Errorf("dictionary path:\n%v\nplain path:\n%v", got, want)
	}

	// Written to Parquet, the key column is a plain string column.
	out := filepath.Join(dir, "out")
	if _, err := query("").WriteParquet(t.Context(), out, dataset.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	sc, err := dataset.ReadParquet(out).Schema()
	if err != nil {
		t.Fatal(err)
	}
	if f := sc.Field(0); f.Name != "category" || !arrow.TypeEqual(f.Type, arrow.BinaryTypes.String) {
		t.Errorf("written output's first column is %s %s, want category string", f.Name, f.Type)
	}
	if written := rows(dataset.ReadParquet(out).Configure(cfg)); !slices.Equal(written, want) {
		t.Errorf("written output:\n%v\nwant:\n%v", written, want)
	}
}

// dictKeysChosen records, until the test ends, the group keys the executor
// leaves dictionary-encoded ("scan:k1,k2" or "join:k1,k2"); the returned
// function lists them.
func dictKeysChosen(t *testing.T) func() []string {
	var mu sync.Mutex
	var chosen []string
	local.SetDictHook(func(where string, keys []string) {
		mu.Lock()
		defer mu.Unlock()
		if len(keys) > 0 {
			chosen = append(chosen, where+":"+strings.Join(keys, ","))
		}
	})
	t.Cleanup(func() { local.SetDictHook(nil) })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(chosen)
	}
}
