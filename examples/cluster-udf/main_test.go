package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/internal/clustertest"
)

const planFile = "examples/cluster-udf/plan.yaml" // from the repository root

// checkedConfig is the executor's default with an allocator that must be
// empty when the test ends.
func checkedConfig(t *testing.T) local.Config {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	cfg := local.DefaultConfig()
	cfg.Allocator = mem
	cfg.Concurrency = 2
	return cfg
}

type sale struct {
	category string
	tax      float64
}

// wantSales is the plan's expected output, by id: the sample sales with
// qty > 1 and their tax computed here, row by row.
func wantSales(t *testing.T) map[int64]sale {
	t.Helper()
	rec, err := dataset.ReadParquet("examples/data/sales/").Configure(checkedConfig(t)).Filter("qty > 1").
		Select("id", "category", "price", "qty").Take(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	id, cat := rec.Column(0).(*array.Int64), rec.Column(1).(*array.String)
	price, qty := rec.Column(2).(*array.Float64), rec.Column(3).(*array.Int32)
	out := map[int64]sale{}
	for i := range int(rec.NumRows()) {
		out[id.Value(i)] = sale{cat.Value(i), taxOf(cat.Value(i), price.Value(i), qty.Value(i))}
	}
	return out
}

// checkOutput compares the Parquet files under dir with wantSales.
func checkOutput(t *testing.T, dir string) {
	t.Helper()
	want := wantSales(t)
	rec, err := dataset.ReadParquet(dir).Configure(checkedConfig(t)).Select("id", "category", "tax").Take(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	id, cat, tax := rec.Column(0).(*array.Int64), rec.Column(1).(*array.String), rec.Column(2).(*array.Float64)
	if int(rec.NumRows()) != len(want) || len(want) == 0 {
		t.Fatalf("%d rows in %s, want %d", rec.NumRows(), dir, len(want))
	}
	untaxed := 0
	for i := range int(rec.NumRows()) {
		w, ok := want[id.Value(i)]
		if !ok || cat.Value(i) != w.category || tax.IsNull(i) || tax.Value(i) != w.tax {
			t.Fatalf("row id %d: %s tax %v; want %+v (in the input: %v)", id.Value(i), cat.Value(i), tax.Value(i), w, ok)
		}
		delete(want, id.Value(i)) // each id once
		if w.tax == 0 {
			untaxed++
		}
	}
	if untaxed == 0 {
		t.Fatal("no sale of c4 (rate 0): the table lookup went untested")
	}
}

// TestRunPlan runs the example plan as `cluster-udf run` does.
func TestRunPlan(t *testing.T) {
	t.Chdir("../..")
	out := filepath.Join(t.TempDir(), "out")
	if _, err := runPlan(context.Background(), planFile, map[string]string{"out": out}, checkedConfig(t)); err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out)
}

// TestClusterRunsPlan starts a coordinator and a worker from this
// program's own code path (the `worker` command), on loopback, submits the
// example plan as `sluice submit` does, and checks the job's output; a plan
// naming a function the worker lacks fails its planning task with the
// "not registered" error.
func TestClusterRunsPlan(t *testing.T) {
	t.Chdir("../..") // the plan's source path is relative, for the worker too
	const token = "udf-test-token"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	co := clustertest.Start(t, clustertest.Config(t, "n1", token))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dispatch(ctx, []string{"worker", "-coordinators", co.URL(), "-data-dir", t.TempDir(), "-addr", "127.0.0.1:0",
			"-token-file", tokenFile, "-resources", "cpu=2", "-heartbeat", "100ms"}, nil, clustertest.LogWriter(t))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})

	cl := api.NewClient([]string{co.URL()}, token)
	clustertest.WaitReady(t, cl, 1)
	data, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	submit := func(id, plan, out string) api.JobStatus {
		req := api.SubmitRequest{RequestID: id, File: "plan.yaml", Plan: plan, Params: map[string]string{"out": out},
			Needs: state.Resources{CPU: 1}}
		var r api.IDResponse
		if err := cl.Do(ctx, http.MethodPost, "/v1/jobs", req, &r); err != nil {
			t.Fatal(err)
		}
		var st api.JobStatus
		clustertest.Poll(t, "job "+r.ID, func() bool {
			return cl.Do(ctx, http.MethodGet, "/v1/jobs/"+r.ID, nil, &st) == nil && st.Job.State.Done()
		})
		return st
	}

	out := filepath.Join(t.TempDir(), "out")
	st := submit("udf-1", string(data), out)
	if st.Job.State != state.JobSucceeded {
		t.Fatalf("job %s: %s", st.Job.State, st.Job.Error)
	}
	// Planned by the worker, run as the layout's stages, committed.
	if n := len(st.Stages); n < 3 || st.Stages[0].Kind != state.StagePlan || st.Stages[n-1].Kind != state.StageCommit {
		t.Fatalf("stages: %+v", st.Stages)
	}
	checkOutput(t, out)

	other := filepath.Join(t.TempDir(), "other")
	st = submit("udf-2", strings.Replace(string(data), "fn: add_tax", "fn: no_such_fn", 1), other)
	want := `function "no_such_fn" is not registered; registered: add_tax`
	if st.Job.State != state.JobFailed || !strings.Contains(st.Job.Error, want) {
		t.Fatalf("job %s: %q; want failed with %q", st.Job.State, st.Job.Error, want)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("a failed job left %s: %v", other, err)
	}
	t.Log("failed as it should:", st.Job.Error)
}
