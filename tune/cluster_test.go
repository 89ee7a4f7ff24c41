package tune

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// RunSpec, as a worker runs a cluster trial: every step's line lands in
// the metrics file once; a second attempt after one that died (its last
// line cut short, its checkpoint behind its last line) resumes from the
// run's checkpoint, and the file ends up as an undisturbed run's.
func TestRunSpecResumesAfterDeadAttempt(t *testing.T) {
	t.Setenv("TUNE_FAKE_TRAIN", "1") // the program is this test binary's fakeTrain
	self := []string{os.Args[0], "train"}
	ctx := context.Background()
	spec := func(dir string, steps string) TrialSpec {
		return TrialSpec{Trial: "t0000", Flags: []string{"--lr=0.01", "--steps=" + steps}, Out: filepath.Join(dir, "out"),
			Metrics: filepath.Join(dir, "metrics.jsonl"), CheckpointEvery: 3, Steps: 10}
	}
	clean := t.TempDir()
	if n, err := RunSpec(ctx, spec(clean, "10"), self, nil); err != nil || n != 10 {
		t.Fatalf("undisturbed: %d lines, %v", n, err)
	}
	want, _ := os.ReadFile(filepath.Join(clean, "metrics.jsonl"))

	// The dead attempt: steps 1-7 reported, checkpoint at 6, a torn line.
	dir := t.TempDir()
	if _, err := RunSpec(ctx, spec(dir, "7"), self, nil); err != nil {
		t.Fatal(err)
	}
	if step, ok := checkpointStep(filepath.Join(dir, "out", "checkpoint")); !ok || step != 6 {
		t.Fatalf("checkpoint at %d (%v), want 6", step, ok)
	}
	f, _ := os.OpenFile(filepath.Join(dir, "metrics.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"step": 8, "lo`)
	f.Close()
	n, err := RunSpec(ctx, spec(dir, "10"), self, nil)
	if err != nil || n != 3 {
		t.Fatalf("second attempt: %d lines, %v; want steps 8-10", n, err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if string(got) != string(want) {
		t.Errorf("metrics after the resumed attempt:\n%s\nwant:\n%s", got, want)
	}
	// An attempt whose run already reached --steps runs nothing.
	os.WriteFile(filepath.Join(dir, "out", "checkpoint", "state.json"), []byte(`{"step": 10}`), 0o644)
	if n, err := RunSpec(ctx, spec(dir, "10"), self, nil); err != nil || n != 0 {
		t.Errorf("finished run: %d lines, %v", n, err)
	}
}

// TrialPlan quotes the paths: the plan format reads them back whole.
func TestTrialPlan(t *testing.T) {
	got := TrialPlan("/x y/run-1/spec.jsonl", `/x y/run-1/job`)
	want := "name: tune-trial\nread:\n  jsonl: \"/x y/run-1/spec.jsonl\"\nsteps:\n  - map_batches: {fn: sluice_tune_trial}\nwrite:\n  jsonl: \"/x y/run-1/job/\"\n  mode: overwrite\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// trials.parquet holds the rows of trials.jsonl.
func TestTableParquet(t *testing.T) {
	dir := t.TempDir()
	a := NewASHA()
	a.MaxT, a.GracePeriod = 8, 1
	if _, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 6,
		MaxConcurrent: 2, Seed: 3, Dir: dir, Scheduler: a}, quad(8, nil)); err != nil {
		t.Fatal(err)
	}
	rows := readTable(t, dir)
	pf, err := file.OpenParquetFile(filepath.Join(dir, "trials.parquet"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if int(tbl.NumRows()) != len(rows) || len(rows) != 6 {
		t.Fatalf("%d parquet rows, %d jsonl rows", tbl.NumRows(), len(rows))
	}
	tr := array.NewTableReader(tbl, 100)
	defer tr.Release()
	tr.Next()
	rec := tr.RecordBatch()
	col := func(name string) any { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
	for i, r := range rows {
		cfg, _ := json.Marshal(r.Config)
		best := col("best").(*array.Float64)
		if got := col("trial").(*array.String).Value(i); got != r.Trial ||
			col("config").(*array.String).Value(i) != string(cfg) ||
			col("status").(*array.String).Value(i) != string(r.Status) ||
			col("iterations").(*array.Int64).Value(i) != int64(r.Iterations) ||
			best.IsNull(i) || best.Value(i) != *r.Best || !strings.HasPrefix(r.Trial, "t") {
			t.Errorf("row %d: parquet %v, jsonl %+v", i, rec, r)
		}
	}
}
