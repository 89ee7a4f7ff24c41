package format_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluicehq/sluice/dataset/format"
)

// The benchmarks read and write 1M rows of the etl/sales-10m schema
// (WORKLOADS.md), zstd, with the writer's default row groups.
const benchRows = 1 << 20

var bench struct {
	once sync.Once
	dir  string
	file string
	recs []arrow.RecordBatch
}

func benchData(b *testing.B) (string, []arrow.RecordBatch) {
	bench.once.Do(func() {
		dir, err := os.MkdirTemp("", "format-bench")
		if err != nil {
			b.Fatal(err)
		}
		bench.dir = dir
		bench.file = filepath.Join(dir, "sales.parquet")
		bench.recs = salesBatches(memory.NewGoAllocator(), benchRows, 64<<10, 1)
		writeFile(b, "parquet", bench.file, salesSchema, format.WriteOptions{}, memory.NewGoAllocator(), bench.recs...)
	})
	return bench.file, bench.recs
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

func BenchmarkParquetRead(b *testing.B) {
	p, _ := benchData(b)
	st, _ := os.Stat(p)
	for _, bc := range []struct {
		name string
		cols []string
	}{
		{"all-7-columns", nil},
		{"3-columns", []string{"id", "category", "price"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := openFile(b, p)
			opts := format.ReadOptions{Columns: bc.cols}
			b.SetBytes(st.Size())
			b.ReportAllocs()
			for b.Loop() {
				var rows int64
				splits, err := format.Parquet().Splits(context.Background(), f, opts)
				if err != nil {
					b.Fatal(err)
				}
				for _, s := range splits {
					err := format.Parquet().Read(context.Background(), f, s, opts, memory.DefaultAllocator, func(r arrow.RecordBatch) error {
						rows += r.NumRows()
						r.Release()
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				if rows != benchRows {
					b.Fatalf("read %d rows", rows)
				}
			}
			b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrows/s")
		})
	}
	// The peer: arrow-go's own whole-file reader, all columns, 64Ki-row batches.
	b.Run("pqarrow-ReadTable-all-7-columns", func(b *testing.B) {
		b.SetBytes(st.Size())
		b.ReportAllocs()
		for b.Loop() {
			fh, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			tbl, err := pqarrow.ReadTable(context.Background(), fh, parquet.NewReaderProperties(memory.DefaultAllocator),
				pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
			fh.Close()
			if err != nil {
				b.Fatal(err)
			}
			if tbl.NumRows() != benchRows {
				b.Fatalf("read %d rows", tbl.NumRows())
			}
			tbl.Release()
		}
		b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrows/s")
	})
}

func BenchmarkParquetWrite(b *testing.B) {
	p, recs := benchData(b)
	st, _ := os.Stat(p)
	out := filepath.Join(b.TempDir(), "out.parquet")
	b.SetBytes(st.Size())
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		u, err := testFS().Create(ctx, out)
		if err != nil {
			b.Fatal(err)
		}
		w, err := format.NewWriter("parquet", u, salesSchema, format.WriteOptions{}, memory.DefaultAllocator)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			if err := w.Write(r); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		if err := u.Abort(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrows/s")
}
