package dataset_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
)

// Every file holds at most RowsPerFile rows, read back file by file, also
// when the input's batches (70 rows) are larger than the limit and when the
// write is partitioned.
func TestRowsPerFile(t *testing.T) {
	for _, partition := range [][]string{nil, {"category"}} {
		t.Run(fmt.Sprint(partition), func(t *testing.T) {
			cfg, _ := testConfig(t)
			ctx := context.Background()
			dir := t.TempDir()
			const limit = 32
			rows := sales(1000)
			if _, err := ds(t, cfg, rows).WriteParquet(ctx, dir, dataset.WriteOptions{RowsPerFile: limit, PartitionBy: partition}); err != nil {
				t.Fatal(err)
			}
			var total int64
			var files int
			for _, f := range listFiles(t, dir) {
				if filepath.Ext(f) != ".parquet" {
					continue
				}
				files++
				n, err := dataset.ReadParquet(filepath.Join(dir, f), dataset.NoPartitioning()).Configure(cfg).Count(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n > limit || n == 0 {
					t.Errorf("%s holds %d rows, limit %d", f, n, limit)
				}
				total += n
			}
			if total != int64(len(rows)) || files < len(rows)/limit {
				t.Fatalf("%d rows in %d files, want %d rows in at least %d files", total, files, len(rows), len(rows)/limit)
			}
		})
	}
}

// MapBatches on several goroutines without order preserved yields the same
// multiset of rows as the function applied to each input row.
func TestMapBatchesUnordered(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cfg := local.DefaultConfig()
	cfg.Allocator = mem
	cfg.BatchRows = 100
	cfg.PreserveOrder = false
	cfg.Concurrency = 4
	const n = 20_000
	var mu sync.Mutex
	callers := 0
	active := 0
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "sq", Type: arrow.PrimitiveTypes.Int64}}, nil)
	d := dataset.Range(n).Configure(cfg).MapBatches(func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		mu.Lock()
		active++
		callers = max(callers, active)
		mu.Unlock()
		defer func() { mu.Lock(); active--; mu.Unlock() }()
		ids := rec.Column(0).(*array.Int64)
		b := array.NewInt64Builder(mem)
		defer b.Release()
		for _, v := range ids.Int64Values() {
			b.Append(v * v % 1009)
		}
		sq := b.NewArray()
		defer sq.Release()
		return array.NewRecordBatch(schema, []arrow.Array{ids, sq}, rec.NumRows()), nil
	}, dataset.MapOptions{Name: "square", Concurrency: 4, Schema: schema})

	type row struct{ id, sq int64 }
	var got []row
	for rec, err := range d.Iter(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		ids, sqs := rec.Column(0).(*array.Int64), rec.Column(1).(*array.Int64)
		for i := range ids.Len() {
			got = append(got, row{ids.Value(i), sqs.Value(i)})
		}
	}
	want := make([]row, n)
	for i := range want {
		want[i] = row{int64(i), int64(i) * int64(i) % 1009}
	}
	cmp := func(a, b row) int {
		if a.id != b.id {
			return int(a.id - b.id)
		}
		return int(a.sq - b.sq)
	}
	slices.SortFunc(got, cmp)
	if !slices.Equal(got, want) {
		t.Fatalf("got %d rows, want %d; first %v", len(got), len(want), got[:min(5, len(got))])
	}
	t.Logf("at most %d calls at once", callers)
}

// A sorted write on several goroutines still writes its files in order:
// read in name order they give the sort's order.
func TestSortedWriteKeepsOrder(t *testing.T) {
	cfg := local.DefaultConfig()
	cfg.BatchRows = 100
	cfg.Concurrency = 4
	ctx := context.Background()
	dir := t.TempDir()
	d := dataset.Range(20_000).Configure(cfg).WithColumn("k", "(id * 7919) % 20000").Sort(dataset.Desc("k"))
	if _, err := d.WriteParquet(ctx, dir, dataset.WriteOptions{RowsPerFile: 3000}); err != nil {
		t.Fatal(err)
	}
	files := 0
	last := int64(1 << 62)
	for _, f := range listFiles(t, dir) {
		if filepath.Ext(f) != ".parquet" {
			continue
		}
		files++
		for rec, err := range dataset.ReadParquet(filepath.Join(dir, f), dataset.NoPartitioning()).Configure(cfg).Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range rec.Column(rec.Schema().FieldIndices("k")[0]).(*array.Int64).Int64Values() {
				if k >= last {
					t.Fatalf("%s: k %d after %d", f, k, last)
				}
				last = k
			}
		}
	}
	if files < 6 || last != 0 {
		t.Fatalf("%d files, last key %d", files, last)
	}
}
