package kernel

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

const benchBatch = 64 << 10

// benchBatches builds rows rows in batches of benchBatch from per-column
// appenders.
func benchBatches(mem memory.Allocator, schema *arrow.Schema, rows int, fill func(b *array.RecordBuilder, i int)) []arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	var recs []arrow.RecordBatch
	for i := range rows {
		fill(b, i)
		if (i+1)%benchBatch == 0 || i == rows-1 {
			recs = append(recs, b.NewRecordBatch())
		}
	}
	return recs
}

func benchRows(b *testing.B, rows int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rows), "ns/row")
}

var salesSchema = arrow.NewSchema([]arrow.Field{
	{Name: "category", Type: arrow.BinaryTypes.String},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
}, nil)

func salesBatches(mem memory.Allocator, rows int) []arrow.RecordBatch {
	rng := rand.New(rand.NewPCG(1, 1))
	cats := make([]string, 50)
	for i := range cats {
		cats[i] = fmt.Sprintf("category-%02d", i)
	}
	return benchBatches(mem, salesSchema, rows, func(b *array.RecordBuilder, i int) {
		b.Field(0).(*array.StringBuilder).Append(cats[rng.IntN(len(cats))])
		b.Field(1).(*array.Float64Builder).Append(rng.Float64() * 100)
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(1_700_000_000_000_000 + rng.Int64N(1e12)))
	})
}

var salesAggs = []Agg{
	{Func: CountAll},
	{Func: Sum, Column: "price"},
	{Func: Mean, Column: "price"},
	{Func: Min, Column: "ts"},
	{Func: Max, Column: "ts"},
}

// BenchmarkHashAgg groups 1M rows by a 50-value string column computing
// count, sum, mean, min and max.
func BenchmarkHashAgg(b *testing.B) { benchHashAgg(b, 1<<20) }

// BenchmarkHashAgg10M is BenchmarkHashAgg on 10M rows, one goroutine.
func BenchmarkHashAgg10M(b *testing.B) {
	if testing.Short() {
		b.Skip("10M rows")
	}
	benchHashAgg(b, 10_000_000)
}

func benchHashAgg(b *testing.B, rows int) {
	mem := memory.NewGoAllocator()
	recs := salesBatches(mem, rows)
	defer releaseAllBatches(recs)
	aggs := salesAggs
	b.ReportAllocs()
	for b.Loop() {
		h, err := NewHashAgg(mem, salesSchema, []string{"category"}, aggs)
		if err != nil {
			b.Fatal(err)
		}
		for _, rec := range recs {
			if err := h.Push(rec); err != nil {
				b.Fatal(err)
			}
		}
		out, err := h.Finish()
		if err != nil {
			b.Fatal(err)
		}
		if out.NumRows() != 50 {
			b.Fatalf("%d groups", out.NumRows())
		}
		out.Release()
		h.Release()
	}
	benchRows(b, rows)
}

// BenchmarkHashAggParallel10M aggregates 10M rows with one HashAgg per
// GOMAXPROCS goroutine, then merges the partial aggregations.
func BenchmarkHashAggParallel10M(b *testing.B) {
	if testing.Short() {
		b.Skip("10M rows")
	}
	const rows = 10_000_000
	mem := memory.NewGoAllocator()
	recs := salesBatches(mem, rows)
	defer releaseAllBatches(recs)
	workers := runtime.GOMAXPROCS(0)
	b.ReportAllocs()
	for b.Loop() {
		parts := make([]*HashAgg, workers)
		var g errgroup.Group
		for w := range workers {
			h, err := NewHashAgg(mem, salesSchema, []string{"category"}, salesAggs)
			if err != nil {
				b.Fatal(err)
			}
			parts[w] = h
			g.Go(func() error {
				for i := w; i < len(recs); i += workers {
					if err := h.Push(recs[i]); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		for _, p := range parts[1:] {
			if err := parts[0].Merge(p); err != nil {
				b.Fatal(err)
			}
			p.Release()
		}
		out, err := parts[0].Finish()
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
		parts[0].Release()
	}
	benchRows(b, rows)
}

// BenchmarkTopK keeps the 1000 largest of 1M float64 rows.
func BenchmarkTopK(b *testing.B) { benchTopK(b, 1<<20) }

// BenchmarkTopK10M keeps the 1000 largest of 10M float64 rows.
func BenchmarkTopK10M(b *testing.B) {
	if testing.Short() {
		b.Skip("10M rows")
	}
	benchTopK(b, 10_000_000)
}

func benchTopK(b *testing.B, rows int) {
	mem := memory.NewGoAllocator()
	recs := salesBatches(mem, rows)
	defer releaseAllBatches(recs)
	keys := []SortKey{{Column: "price", Descending: true}}
	b.ReportAllocs()
	for b.Loop() {
		top, err := NewTopK(mem, salesSchema, keys, 1000)
		if err != nil {
			b.Fatal(err)
		}
		for _, rec := range recs {
			if err := top.Push(rec); err != nil {
				b.Fatal(err)
			}
		}
		out, err := top.Finish()
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
		top.Release()
	}
	benchRows(b, rows)
}

// BenchmarkSort sorts 1M rows (three columns, 16 input batches) by a
// float64 key, descending, into batches of 64K rows.
func BenchmarkSort(b *testing.B) {
	mem := memory.NewGoAllocator()
	const rows = 1 << 20
	recs := salesBatches(mem, rows)
	defer releaseAllBatches(recs)
	keys := []SortKey{{Column: "price", Descending: true}}
	b.ReportAllocs()
	for b.Loop() {
		out, err := Sort(context.Background(), mem, salesSchema, recs, keys, benchBatch)
		if err != nil {
			b.Fatal(err)
		}
		releaseAllBatches(out)
	}
	benchRows(b, rows)
}

// BenchmarkSortString sorts 1M rows by the 50-value string column.
func BenchmarkSortString(b *testing.B) {
	mem := memory.NewGoAllocator()
	const rows = 1 << 20
	recs := salesBatches(mem, rows)
	defer releaseAllBatches(recs)
	keys := []SortKey{{Column: "category"}}
	b.ReportAllocs()
	for b.Loop() {
		out, err := Sort(context.Background(), mem, salesSchema, recs, keys, benchBatch)
		if err != nil {
			b.Fatal(err)
		}
		releaseAllBatches(out)
	}
	benchRows(b, rows)
}

// BenchmarkHashJoin builds 100k rows with unique int64 keys and probes 1M
// rows, about half of which match.
func BenchmarkHashJoin(b *testing.B) {
	mem := memory.NewGoAllocator()
	const buildRows, probeRows = 100_000, 1 << 20
	rs := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	ls := arrow.NewSchema([]arrow.Field{
		{Name: "user", Type: arrow.PrimitiveTypes.Int64},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	rng := rand.New(rand.NewPCG(2, 2))
	perm := rng.Perm(buildRows)
	build := benchBatches(mem, rs, buildRows, func(bb *array.RecordBuilder, i int) {
		bb.Field(0).(*array.Int64Builder).Append(int64(perm[i]) * 2)
		bb.Field(1).(*array.StringBuilder).Append(fmt.Sprint("user-", perm[i]))
		bb.Field(2).(*array.Float64Builder).Append(rng.Float64())
	})
	defer releaseAllBatches(build)
	probe := benchBatches(mem, ls, probeRows, func(bb *array.RecordBuilder, i int) {
		bb.Field(0).(*array.Int64Builder).Append(rng.Int64N(buildRows * 2))
		bb.Field(1).(*array.Float64Builder).Append(rng.Float64())
	})
	defer releaseAllBatches(probe)
	b.ReportAllocs()
	for b.Loop() {
		j, err := NewHashJoin(mem, ls, rs, []string{"user"}, []string{"id"}, Inner)
		if err != nil {
			b.Fatal(err)
		}
		for _, rec := range build {
			if err := j.Build(rec); err != nil {
				b.Fatal(err)
			}
		}
		for _, rec := range probe {
			out, err := j.Probe(rec)
			if err != nil {
				b.Fatal(err)
			}
			out.Release()
		}
		j.Release()
	}
	benchRows(b, probeRows)
}

// BenchmarkSortSmallBatches sorts 400K rows that arrive, and leave, in
// batches of 97 rows: every output batch gathers from thousands of chunks.
func BenchmarkSortSmallBatches(b *testing.B) {
	mem := memory.NewGoAllocator()
	const rows, batch = 400_000, 97
	all := salesBatches(mem, rows)
	defer releaseAllBatches(all)
	var recs []arrow.RecordBatch
	for _, r := range all {
		for off := int64(0); off < r.NumRows(); off += batch {
			recs = append(recs, r.NewSlice(off, min(off+batch, r.NumRows())))
		}
	}
	defer releaseAllBatches(recs)
	keys := []SortKey{{Column: "price", Descending: true}}
	b.ReportAllocs()
	for b.Loop() {
		out, err := Sort(context.Background(), mem, salesSchema, recs, keys, batch)
		if err != nil {
			b.Fatal(err)
		}
		releaseAllBatches(out)
	}
	benchRows(b, rows)
}
