package expr

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

const benchRows = 1 << 20

// benchBatch builds the benchmark workload's shape: price float64, qty
// int64, category string with ten values, note a short mixed-case string.
func benchBatch(b *testing.B, mem memory.Allocator) arrow.RecordBatch {
	b.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "qty", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	price := bld.Field(0).(*array.Float64Builder)
	qty := bld.Field(1).(*array.Int64Builder)
	cat := bld.Field(2).(*array.StringBuilder)
	note := bld.Field(3).(*array.StringBuilder)
	cats := make([]string, 10)
	for i := range cats {
		cats[i] = fmt.Sprintf("c%d", i)
	}
	for i := 0; i < benchRows; i++ {
		price.Append(float64((i * 7919) % 100))
		qty.Append(int64(i % 13))
		cat.Append(cats[(i*31)%10])
		note.Append(fmt.Sprintf("Order %d Shipped To Customer", i%1000))
	}
	return bld.NewRecordBatch()
}

func benchEval(b *testing.B, src string) {
	mem := memory.NewGoAllocator()
	rec := benchBatch(b, mem)
	defer rec.Release()
	bound, err := Compile(src, rec.Schema())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(benchRows) // "bytes" are rows: MB/s reads as million rows/s
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		out, err := bound.Eval(ctx, mem, rec)
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
	}
	reportCPU(b, cpu)
}

// cpuTime is the process's user+system CPU time. The shared build machine
// is often oversubscribed, so wall-clock ns/op overstates the cost;
// cpu-ns/op (reported beside it) does not count time spent waiting for a
// core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func BenchmarkFilterPredicate(b *testing.B) {
	benchEval(b, "price > 50 AND category IN ('c1','c7','c9')")
}

func BenchmarkLower(b *testing.B) { benchEval(b, "lower(note)") }

func BenchmarkMultiply(b *testing.B) { benchEval(b, "price * qty") }

func BenchmarkFilter(b *testing.B) {
	mem := memory.NewGoAllocator()
	rec := benchBatch(b, mem)
	defer rec.Release()
	bound, err := Compile("price > 50 AND category IN ('c1','c7','c9')", rec.Schema())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(benchRows)
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		out, err := bound.Filter(ctx, mem, rec)
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
	}
	reportCPU(b, cpu)
}

// BenchmarkFilterPredicateDict is the filter over a dictionary-encoded
// category column, as Parquet scans produce.
func BenchmarkFilterPredicateDict(b *testing.B) {
	mem := memory.NewGoAllocator()
	rec := benchBatch(b, mem)
	defer rec.Release()
	dictType := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	db := array.NewDictionaryBuilder(mem, dictType).(*array.BinaryDictionaryBuilder)
	defer db.Release()
	if err := db.AppendArray(rec.Column(2)); err != nil {
		b.Fatal(err)
	}
	cat := db.NewArray()
	defer cat.Release()
	schema := arrow.NewSchema([]arrow.Field{rec.Schema().Field(0), {Name: "category", Type: dictType, Nullable: true}}, nil)
	drec := array.NewRecordBatch(schema, []arrow.Array{rec.Column(0), cat}, rec.NumRows())
	defer drec.Release()
	bound, err := Compile("price > 50 AND category IN ('c1','c7','c9')", schema)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(benchRows)
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		out, err := bound.Eval(ctx, mem, drec)
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
	}
	reportCPU(b, cpu)
}
