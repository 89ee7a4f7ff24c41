package local_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
)

// TestScanTotals: a Parquet scan knows its rows from the footers before
// it reads (what the progress line's share and ETA use): 1,200 + 500 rows
// written, the same counted in; a CSV scan knows its bytes, the files'
// sizes.
func TestScanTotals(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	writeSales(t, filepath.Join(in, "a.parquet"), rng, []any{"x", nil}, 1200, 500, true)
	writeSales(t, filepath.Join(in, "b.parquet"), rng, []any{"y"}, 500, 500, false)
	cfg := local.DefaultConfig()
	st, err := dataset.ReadParquet(in).Configure(cfg).WriteCSV(t.Context(), filepath.Join(t.TempDir(), "csv"), dataset.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scan := st.Ops[0]
	if !strings.HasPrefix(scan.Name, "Scan") || scan.RowsTotal.Load() != 1700 || scan.RowsIn.Load() != 1700 {
		t.Fatalf("parquet scan %q: total %d, in %d; want 1700", scan.Name, scan.RowsTotal.Load(), scan.RowsIn.Load())
	}
	csvDir := filepath.Dir(st.Files[0])
	var size int64
	for _, f := range st.Files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	st, err = dataset.ReadCSV(csvDir).Configure(cfg).WriteParquet(t.Context(), filepath.Join(t.TempDir(), "pq"), dataset.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if scan := st.Ops[0]; scan.RowsTotal.Load() != 0 || scan.BytesTotal.Load() != size {
		t.Fatalf("csv scan %q: rows total %d, bytes total %d; want 0 and %d", scan.Name, scan.RowsTotal.Load(), scan.BytesTotal.Load(), size)
	}
}
