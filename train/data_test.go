package train

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluicehq/sluice/dataset"
)

// writeParquetIDs writes rows as a Parquet file with a list<int64> column
// named col.
func writeParquetIDs(t *testing.T, path, col string, rows [][]int64) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sc := arrow.NewSchema([]arrow.Field{{Name: col, Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	lb := b.Field(0).(*array.ListBuilder)
	vb := lb.ValueBuilder().(*array.Int64Builder)
	for _, r := range rows {
		lb.Append(true)
		vb.AppendValues(r, nil)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
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

// TestParquetIDsAndEpochs: a renamed list<int64> column of Parquet feeds
// training; without shuffle, rows come in file order and repeat from the
// start when a batch needs more rows than there are; rows longer than
// --max-seq-len are cut.
func TestParquetIDsAndEpochs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.parquet")
	writeParquetIDs(t, path, "toks", [][]int64{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {11, 12, 13}})
	c := baseConfig(t, "llama3")
	c.IDsColumn, c.Shuffle, c.Steps, c.BatchSize, c.MaxSeqLen = "toks", false, 2, 3, 8
	var tokens []int
	c.OnStep = func(m Metrics) error { tokens = append(tokens, m.Tokens); return nil }
	if err := Run(context.Background(), c, dataset.ReadParquet(path)); err != nil {
		t.Fatal(err)
	}
	// Step 1: rows 0 (cut to 8), 1, 0; step 2: rows 1, 0, 1.
	if len(tokens) != 2 || tokens[0] != 8+3+8 || tokens[1] != 3+8+3 {
		t.Fatalf("tokens per step %v, want [19 14]", tokens)
	}
}

// TestGradAccum: two micro-batches of 2 rows make the same first-step loss
// as one batch of 4, and close gradients.
func TestGradAccum(t *testing.T) {
	data := writeRows(t, t.TempDir(), 8, 512)
	one := baseConfig(t, "llama3")
	one.Shuffle, one.Steps, one.BatchSize = false, 2, 4
	acc := one
	acc.Out = filepath.Join(t.TempDir(), "acc")
	acc.BatchSize, acc.GradAccum = 2, 2
	a, b := runLosses(t, one, data), runLosses(t, acc, data)
	if a[0].Loss != b[0].Loss || !relClose(b[0].GradNorm, a[0].GradNorm, 1e-5) || !relClose(b[1].Loss, a[1].Loss, 1e-5) {
		t.Fatalf("batch 4: %+v\n2 x batch 2: %+v", a, b)
	}
}
