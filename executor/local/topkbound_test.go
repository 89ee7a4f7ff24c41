package local_test

import (
	"encoding/csv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
)

// TestTopKBoundDropsRows: a top-k over a Parquet scan (ORDER BY a key
// computed from file columns, LIMIT k) lets the scan drop rows that sort
// after the k-th seen so far before it decodes their other columns, and
// the result is the full sort's first k rows: one goroutine, exactly (many
// ties in the key, a filter in the scan too); two, the same keys in the
// same order. The scan's rows out show the drop.
func TestTopKBoundDropsRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	writeSales(t, filepath.Join(in, "a.parquet"), rng, []any{"c1", "c2", nil}, 3000, 700, true)
	writeSales(t, filepath.Join(in, "b.parquet"), rng, []any{"c3", "c1"}, 2500, 600, false)
	writeSales(t, filepath.Join(in, "c.parquet"), rng, []any{"c2"}, 1800, 900, true)

	for _, conc := range []int{1, 2} {
		for _, filter := range []string{"", "qty > 2"} {
			cfg := local.DefaultConfig()
			cfg.Allocator = mem
			cfg.BatchRows = 256
			cfg.Concurrency = conc
			query := func() *dataset.Dataset {
				d := dataset.ReadParquet(in).Configure(cfg)
				if filter != "" {
					d = d.Filter(filter)
				}
				return d.WithColumn("revenue", "price * qty").Sort(dataset.Desc("revenue"))
			}
			out := filepath.Join(t.TempDir(), "out")
			st, err := query().Limit(40).WriteCSV(t.Context(), out, dataset.WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := readCSVRows(t, st.Files)
			want := readCSVRows(t, writeAll(t, query()))[:40]
			if conc == 1 {
				if !slices.Equal(got, want) {
					t.Errorf("concurrency 1, filter %q: top 40\n%v\nwant the full sort's first 40\n%v", filter, got, want)
				}
			} else if g, w := revenues(got), revenues(want); !slices.Equal(g, w) {
				t.Errorf("concurrency 2, filter %q: top 40 revenues %v, want %v", filter, g, w)
			}
			scan := st.Ops[0]
			if !strings.HasPrefix(scan.Name, "Scan") {
				t.Fatalf("first operator %q, want the scan", scan.Name)
			}
			// At concurrency 2 the bound reaches the scan when a partial
			// top-k reports it, which on a loaded machine may be late: it
			// has to drop some rows there, most of them at concurrency 1.
			in, kept := scan.RowsIn.Load(), scan.RowsOut.Load()
			if in != 7300 || (conc == 1 && kept > in/2) || kept >= in {
				t.Errorf("concurrency %d, filter %q: the scan decoded %d rows and kept %d; want 7300 and the top-k's bound dropping most", conc, filter, in, kept)
			}
		}
	}
}

// writeAll writes d as CSV and returns the files.
func writeAll(t *testing.T, d *dataset.Dataset) []string {
	t.Helper()
	st, err := d.WriteCSV(t.Context(), filepath.Join(t.TempDir(), "all"), dataset.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st.Files
}

// readCSVRows returns the data rows of CSV files, in file order, each
// joined by "|".
func readCSVRows(t *testing.T, files []string) []string {
	t.Helper()
	slices.Sort(files)
	var rows []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs[1:] {
			rows = append(rows, strings.Join(r, "|"))
		}
	}
	return rows
}

// revenues is the last field of each row.
func revenues(rows []string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r[strings.LastIndex(r, "|")+1:])
	}
	return out
}
