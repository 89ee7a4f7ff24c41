package train

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/storage/miniotest"
)

// TestS3: --data, --out and --resume in s3:// (a real MinIO server). The
// run publishes the model, metrics and checkpoint; a run resumed from the
// bucket's checkpoint continues as the uninterrupted local run, bit for bit.
func TestS3(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("train")
	local := writeRows(t, t.TempDir(), 7, 512)
	srv.Upload("train", "data/", local)
	data := dataset.ReadJSONL("s3://train/data/rows.jsonl")

	whole := baseConfig(t, "llama3")
	whole.Steps = 4
	want := runLosses(t, whole, local)

	ctx := context.Background()
	var got []Metrics
	first := baseConfig(t, "llama3")
	first.Out, first.Steps, first.CheckpointEvery = "s3://train/runs/a", 2, 2
	first.OnStep = func(m Metrics) error { got = append(got, m); return nil }
	if err := Run(ctx, first, data); err != nil {
		t.Fatal(err)
	}
	fsys, err := storage.For("s3://train/runs/a")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config.json", "model.safetensors", "generation_config.json", "metrics.jsonl",
		"checkpoint/state.json", "checkpoint/params.safetensors", "checkpoint/optimizer.safetensors"} {
		if _, err := fsys.Stat(ctx, "s3://train/runs/a/"+name); err != nil {
			t.Errorf("the run did not publish %s: %v", name, err)
		}
	}
	again := first
	again.Steps, again.Resume = 4, "s3://train/runs/a/checkpoint"
	if err := Run(ctx, again, data); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d steps reported, want 4: %+v", len(got), got)
	}
	for i := range want {
		if got[i].Loss != want[i].Loss || got[i].GradNorm != want[i].GradNorm {
			t.Errorf("step %d: from s3 loss %v grad_norm %v, local run %v %v", i+1, got[i].Loss, got[i].GradNorm, want[i].Loss, want[i].GradNorm)
		}
	}
	b, err := storage.ReadFile(ctx, fsys, "s3://train/runs/a/metrics.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if n := countLines(b); n != 4 {
		t.Errorf("metrics.jsonl has %d lines after the resumed run, want 4:\n%s", n, b)
	}
	// The trained model loads back from the bucket.
	n, err := loadNet(ctx, "s3://train/runs/a", "cpu")
	if err != nil {
		t.Fatal(err)
	}
	n.close()
}

// TestS3CrashKeepsMetrics: a run with an s3:// --out that dies after a
// checkpoint (here its OnStep fails at step 3, so nothing is published at
// the end) has published the metrics through the checkpoint's step with
// it, so the run resumed from that checkpoint ends with every step's line.
func TestS3CrashKeepsMetrics(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("train")
	local := writeRows(t, t.TempDir(), 7, 512)
	srv.Upload("train", "data/", local)
	data := dataset.ReadJSONL("s3://train/data/rows.jsonl")
	ctx := context.Background()

	first := baseConfig(t, "llama3")
	first.Out, first.Steps, first.CheckpointEvery = "s3://train/runs/b", 4, 2
	first.OnStep = func(m Metrics) error {
		if m.Step == 3 {
			return errors.New("crash")
		}
		return nil
	}
	if err := Run(ctx, first, data); err == nil || !strings.Contains(err.Error(), "crash") {
		t.Fatalf("the crashing run: %v", err)
	}
	fsys, err := storage.For("s3://train/runs/b")
	if err != nil {
		t.Fatal(err)
	}
	b, err := storage.ReadFile(ctx, fsys, "s3://train/runs/b/metrics.jsonl")
	if err != nil {
		t.Fatalf("no metrics published with the checkpoint: %v", err)
	}
	if n := countLines(b); n != 2 {
		t.Errorf("published metrics.jsonl has %d lines after the crash, want 2 (the checkpoint's step):\n%s", n, b)
	}
	again := first
	again.OnStep, again.Resume = nil, "s3://train/runs/b/checkpoint"
	if err := Run(ctx, again, data); err != nil {
		t.Fatal(err)
	}
	if b, err = storage.ReadFile(ctx, fsys, "s3://train/runs/b/metrics.jsonl"); err != nil {
		t.Fatal(err)
	}
	if n := countLines(b); n != 4 {
		t.Errorf("metrics.jsonl has %d lines after the resumed run, want 4:\n%s", n, b)
	}
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}
