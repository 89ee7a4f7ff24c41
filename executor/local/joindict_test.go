package local_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
)

// TestGroupByJoinedDictionaryKeys groups a join's output by two right-side
// string columns, which the join hands to the aggregate as dictionaries into
// its build side (several build batches, duplicate build keys, null values,
// unmatched rows), and compares with the same query behind a filter that
// reads both sides, where the strings stay plain.
func TestGroupByJoinedDictionaryKeys(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	writeSales(t, filepath.Join(in, "a.parquet"), rng, []any{"c1", "c2", "c3", "c8", nil}, 3000, 700, true)
	writeSales(t, filepath.Join(in, "b.parquet"), rng, []any{"c3", "c4", "c1"}, 1500, 600, false)

	sc := arrow.NewSchema([]arrow.Field{
		{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "region", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "tier", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	cats := []string{"c1", "c2", "c3", "c4", "c5"} // c8 matches nothing
	for i := range 600 {
		b.Field(0).(*array.StringBuilder).Append(cats[i%len(cats)])
		if i%7 == 0 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprint("r", rng.IntN(4)))
		}
		b.Field(2).(*array.StringBuilder).Append(fmt.Sprint("t", i%3))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	users := filepath.Join(dir, "users.parquet")
	f, err := os.Create(users)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(250)), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := local.DefaultConfig()
	cfg.Allocator = mem
	cfg.BatchRows = 256
	cfg.Concurrency = 2
	query := func(filter string) *dataset.Dataset {
		d := dataset.ReadParquet(in).Configure(cfg).
			Join(dataset.ReadParquet(users).Configure(cfg), dataset.JoinOptions{On: []string{"category"}}).
			WithColumn("revenue", "price * qty")
		if filter != "" {
			d = d.Filter(filter)
		}
		return d.GroupBy("region", "tier").Agg(dataset.Count().As("n"), dataset.Sum("revenue").As("revenue"))
	}
	rows := func(d *dataset.Dataset) []string {
		t.Helper()
		var out []string
		for rec, err := range d.Iter(t.Context()) {
			if err != nil {
				t.Fatal(err)
			}
			for c := range 2 {
				if f := rec.Schema().Field(c); !arrow.TypeEqual(f.Type, arrow.BinaryTypes.String) {
					t.Errorf("%s is %s in the output, want string", f.Name, f.Type)
				}
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
	if c := chosen(); !slices.Contains(c, "join:region,tier") && !slices.Contains(c, "join:tier,region") {
		t.Errorf("dictionary path not taken: join:region,tier not among the keys chosen %v", c)
	}
	want := rows(query("revenue >= 0 OR region = tier"))
	if len(want) != 15 { // r0-r3 and null, by t0-t2
		t.Fatalf("plain path: %d groups, want 15: %v", len(want), want)
	}
	if !slices.Equal(got, want) {
		t.Errorf("dictionary path:\n%v\nplain path:\n%v", got, want)
	}
}
