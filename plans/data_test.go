package plans

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
)

// salesFormat is the format test data is written in.
var salesFormat = "parquet"

// sale is a row of the etl/sales schema (WORKLOADS.md).
type sale struct {
	ID       int64     `sluice:"id"`
	UserID   int64     `sluice:"user_id"`
	Category string    `sluice:"category"`
	Price    float64   `sluice:"price"`
	Qty      int32     `sluice:"qty"`
	TS       time.Time `sluice:"ts"`
	Note     string    `sluice:"note"`
}

// makeSales is n seeded rows: 10 categories c0..c9, prices in [1, 100).
func makeSales(n int) []sale {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]sale, n)
	for i := range out {
		out[i] = sale{
			ID:       int64(i),
			UserID:   int64(r.IntN(100)),
			Category: fmt.Sprintf("c%d", r.IntN(10)),
			Price:    float64(1+r.IntN(9900)) / 100,
			Qty:      int32(1 + r.IntN(10)),
			TS:       base.Add(time.Duration(i) * time.Minute),
			Note:     fmt.Sprintf("Note %d", i),
		}
	}
	return out
}

// writeSales writes rows as Parquet files under dir/data/sales/ (several
// files) and returns the rows.
func writeSales(t testing.TB, dir string, n int) []sale {
	t.Helper()
	rows := makeSales(n)
	_, err := dataset.FromItems(rows).Configure(testConfig(t)).Write(context.Background(), salesFormat, filepath.Join(dir, "data", "sales"),
		dataset.WriteOptions{Mode: dataset.Overwrite, RowsPerFile: int64(n/3 + 1)})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// testConfig is the executor's default with a checked allocator that must
// be empty when the test ends.
func testConfig(t testing.TB) local.Config {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	cfg := local.DefaultConfig()
	cfg.Allocator = mem
	cfg.Concurrency = 2
	return cfg
}
