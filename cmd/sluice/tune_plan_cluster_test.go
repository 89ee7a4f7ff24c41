package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/internal/clustertest"
	"github.com/sluicehq/sluice/plans"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/storage/miniotest"
	"github.com/sluicehq/sluice/tune"
)

// planCluster starts a loopback cluster of one coordinator and two
// workers (one CPU each) for plan trials; it returns the flags that name
// it and a client of it.
func planCluster(t *testing.T, dir string) ([]string, *api.Client) {
	t.Helper()
	const token = "tune-plan-token"
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, token)
	cfg := clustertest.Config(t, "n1", token)
	c := clustertest.Start(t, cfg)
	cl := api.NewClient([]string{c.URL()}, token)
	for _, w := range []string{"w1", "w2"} {
		background(t, "worker", "--coordinators", c.URL(), "--data-dir", filepath.Join(dir, w), "--addr", "127.0.0.1:0",
			"--resources", "cpu=1,memory=1GiB", "--token-file", tokenFile, "--heartbeat", "100ms")
	}
	clustertest.WaitReady(t, cl, 2)
	return []string{"--coordinators", c.URL(), "--token-file", tokenFile}, cl
}

// samePlanTables compares two plan experiments' trial tables (as tuneTable)
// and their trials' reports: equal but for run_seconds, which no two runs
// share, and for the float sums (best, last, revenue) within 1e-12
// relative, which the cluster adds in another order (partial aggregates
// of the input's partitions).
func samePlanTables(t *testing.T, got, want string) {
	t.Helper()
	rows := func(dir string) []map[string]any {
		b, err := storage.ReadPath(context.Background(), storage.Join(dir, "trials.jsonl")) // local or s3://
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var row map[string]any
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			delete(row, "checkpoint")
			out = append(out, row)
		}
		return out
	}
	near := func(a, b any) bool {
		x, ok1 := a.(float64)
		y, ok2 := b.(float64)
		return ok1 && ok2 && math.Abs(x-y) <= 1e-12*math.Max(math.Abs(x), math.Abs(y))
	}
	g, w := rows(got), rows(want)
	if len(g) != len(w) {
		t.Fatalf("%d trials, the local run %d", len(g), len(w))
	}
	for i := range g {
		for k := range w[i] {
			if k == "best" || k == "last" {
				if !near(g[i][k], w[i][k]) {
					t.Errorf("trial %v: %s %v, the local run's %v", w[i]["trial"], k, g[i][k], w[i][k])
				}
				delete(g[i], k)
				delete(w[i], k)
			}
		}
		if a, b := fmt.Sprint(g[i]), fmt.Sprint(w[i]); a != b {
			t.Errorf("the cluster's trial row %s, the local run's %s", a, b)
		}
	}
	ge, err := tune.Load(context.Background(), got)
	if err != nil {
		t.Fatal(err)
	}
	we, err := tune.Load(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	for i, wt := range we.Trials {
		gt := ge.Trials[i]
		if len(gt.Reports) != 1 || len(wt.Reports) != 1 {
			t.Errorf("%s: %d reports, the local run %d", wt.ID, len(gt.Reports), len(wt.Reports))
			continue
		}
		gr, wr := gt.Reports[0], wt.Reports[0]
		if len(gr) != len(wr) || gr["n"] != wr["n"] || gr["run_rows"] != wr["run_rows"] || !near(gr["revenue"], wr["revenue"]) || gr["run_seconds"] <= 0 {
			t.Errorf("%s: report %v, the local run's %v", wt.ID, gr, wr)
		}
	}
}

// clusterJobs lists the cluster's jobs.
func clusterJobs(t *testing.T, cl *api.Client) []state.Job {
	t.Helper()
	var jobs []state.Job
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs", nil, &jobs); err != nil {
		t.Fatal(err)
	}
	return jobs
}

// `sluice tune --coordinators` with a plan: section runs each trial as a
// plan job of the cluster, two at once on the two workers, with the
// trial's params; the trial table equals the local run's of the same
// file (the reports' n and revenue read from the outputs the workers
// wrote); the record is the cluster's (tune status NAME), and --resume
// runs no finished trial again.
func TestTunePlanCluster(t *testing.T) {
	file, dir := planExperiment(t, tunePlanGroup, func(s string) string { return s })
	want := filepath.Join(dir, "want")
	if code, stdout, stderr := sluice(t, "tune", file, "--dir", want); code != 0 {
		t.Fatalf("local run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	flags, cl := planCluster(t, dir)
	got := filepath.Join(dir, "got")
	code, stdout, stderr := sluice(t, append([]string{"tune", file, "--dir", got}, flags...)...)
	if code != 0 {
		t.Fatalf("cluster run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	samePlanTables(t, got, want)
	jobs := clusterJobs(t, cl)
	if len(jobs) != 3 {
		t.Fatalf("%d jobs, want one per trial", len(jobs))
	}
	for _, j := range jobs {
		if j.State != state.JobSucceeded {
			t.Errorf("job %s: %s %s", j.ID, j.State, j.Error)
		}
	}
	e, err := tune.Load(context.Background(), got)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range e.Trials {
		b, err := os.ReadFile(filepath.Join(got, "trials", tr.ID, "jobs", "run-1"))
		if err != nil || !strings.HasPrefix(string(b), "j-") {
			t.Errorf("%s: its job's id %q: %v", tr.ID, b, err)
		}
		if files, _ := filepath.Glob(filepath.Join(got, "trials", tr.ID, "out", "*.parquet")); len(files) != 1 {
			t.Errorf("%s: output files %v", tr.ID, files)
		}
	}
	if code, out, errOut := sluice(t, append([]string{"tune", "status", "price-search"}, flags...)...); code != 0 || !strings.Contains(out, `"best"`) {
		t.Errorf("tune status: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, stdout, stderr := sluice(t, append([]string{"tune", file, "--dir", got, "--resume"}, flags...)...); code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := len(clusterJobs(t, cl)); n != 3 {
		t.Errorf("resuming a finished experiment submitted %d jobs", n-3)
	}
}

// ASHA over plan trials on the cluster, one at a time (so that the rungs
// see the reports in the same order): each trial's one report is its
// first rung's, and the trials below the first's are marked stopped, as in
// the local run.
func TestTunePlanClusterASHA(t *testing.T) {
	file, dir := planExperiment(t, tunePlanGroup, func(s string) string {
		return strings.Replace(s, "max_concurrent: 2", "max_concurrent: 1\n  scheduler: asha\n  max_t: 4\n  grace_period: 1\n  reduction_factor: 2", 1)
	})
	want := filepath.Join(dir, "want")
	if code, stdout, stderr := sluice(t, "tune", file, "--dir", want); code != 0 {
		t.Fatalf("local run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	flags, _ := planCluster(t, dir)
	got := filepath.Join(dir, "got")
	if code, stdout, stderr := sluice(t, append([]string{"tune", file, "--dir", got}, flags...)...); code != 0 {
		t.Fatalf("cluster run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	samePlanTables(t, got, want)
	if table := tuneTable(t, got); strings.Count(table, `"status":"stopped"`) != 2 {
		t.Errorf("want the two trials below the first stopped:\n%s", table)
	}
}

// With an s3:// --dir (a real MinIO server) the workers write the
// trials' outputs into the bucket and the driver reads the metrics rows
// from there: the same table as the local run's.
func TestTunePlanClusterS3(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("tune-plan")
	file, dir := planExperiment(t, tunePlanGroup, func(s string) string { return s })
	want := filepath.Join(dir, "want")
	if code, stdout, stderr := sluice(t, "tune", file, "--dir", want); code != 0 {
		t.Fatalf("local run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	flags, _ := planCluster(t, dir)
	got := "s3://tune-plan/experiments/price-search"
	if code, stdout, stderr := sluice(t, append([]string{"tune", file, "--dir", got}, flags...)...); code != 0 {
		t.Fatalf("cluster run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	samePlanTables(t, got, want)
	ctx := context.Background()
	fsys, err := storage.For(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t0000", "t0001", "t0002"} {
		files, err := storage.Glob(ctx, fsys, got+"/trials/"+id+"/out/*.parquet")
		if err != nil || len(files) != 1 {
			t.Errorf("%s: output files %v: %v", id, files, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "s3:")); err == nil {
		t.Errorf("an s3:// path was written as a local one")
	}
}

// A plan trial's one-row output without the metric fails the experiment
// naming the trial and the column; a job that fails on its worker fails
// its trial with the job's error.
func TestTunePlanClusterErrors(t *testing.T) {
	file, dir := planExperiment(t, `- group_by: {keys: [], aggs: [{fn: count, as: n}]}`, func(s string) string { return s })
	flags, _ := planCluster(t, dir)
	code, _, stderr := sluice(t, append([]string{"tune", file, "--dir", filepath.Join(dir, "nocol")}, flags...)...)
	want := `tune.metric: tune: metric never reported: trial t`
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, `has no column "revenue" (its columns: n)`) {
		t.Errorf("exit %d:\n%s\nwant %s ... has no column \"revenue\" (its columns: n)", code, stderr, want)
	}

	// Out under a regular file: the write fails on the worker.
	writeFile(t, filepath.Join(dir, "file"), "x")
	file, dir = planExperiment(t, tunePlanGroup, func(s string) string {
		s = strings.Replace(s, "name: price-search", "name: failing-out", 1)
		return strings.Replace(s, "max_concurrent: 2", "max_concurrent: 1", 1) + "  params: {out: " + filepath.Join(dir, "file", "out") + "}\n"
	})
	exp := filepath.Join(dir, "failing")
	code, _, stderr = sluice(t, append([]string{"tune", file, "--dir", exp}, flags...)...)
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	e, err := tune.Load(context.Background(), exp)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, tr := range e.Trials {
		if tr.Status != tune.Failed || !strings.Contains(tr.Error, " failed: ") || !strings.Contains(tr.Error, "--param min_price=") {
			t.Errorf("%s: %s: %s", tr.ID, tr.Status, tr.Error)
		}
	}
	if len(e.Trials) != 3 {
		t.Errorf("%d trials", len(e.Trials))
	}
}

// planHold is a map_batches function of the tests' plans that holds each
// batch until the channel registerPlanHold returned is closed or its task
// is cancelled. Every process of the tests registers it (a driver
// process compiles the plan too).
const planHold = "tune_plan_hold"

var planRelease atomic.Pointer[chan struct{}]

func init() {
	err := plans.Register(planHold, plans.Func{
		Out: func(in *arrow.Schema) (*arrow.Schema, error) { return in, nil },
		Fn: func(ctx context.Context, _ memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
			var release chan struct{} // nil: hold until cancelled
			if p := planRelease.Load(); p != nil {
				release = *p
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-release:
				return rec.NewSlice(0, rec.NumRows()), nil
			}
		},
	})
	if err != nil {
		panic(err)
	}
}

// registerPlanHold makes planHold hold batches until the channel it
// returns is closed.
func registerPlanHold(t *testing.T) chan struct{} {
	release := make(chan struct{})
	planRelease.Store(&release)
	t.Cleanup(func() { planRelease.Store(nil) })
	return release
}

// An experiment of plan trials on the cluster that is interrupted while
// its trials' jobs run cancels those jobs; --resume runs the interrupted
// trials again as new jobs (run-2) and ends with the local run's table.
func TestTunePlanClusterCancel(t *testing.T) {
	release := registerPlanHold(t)
	file, dir := planExperiment(t, "- map_batches: {fn: "+planHold+"}\n  "+tunePlanGroup, func(s string) string { return s })
	flags, cl := planCluster(t, dir)
	got := filepath.Join(dir, "got")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, &env{stdout: out, stderr: out, stdin: strings.NewReader("")}, append([]string{"tune", file, "--dir", got}, flags...))
	}()
	running := func() (ids []string) {
		for _, j := range clusterJobs(t, cl) {
			if j.State == state.JobRunning {
				ids = append(ids, j.ID)
			}
		}
		return ids
	}
	clustertest.Poll(t, "two trial jobs running", func() bool { return len(running()) == 2 })
	cancel()
	if code := <-done; code == 0 || !strings.Contains(out.String(), "experiment interrupted") {
		t.Fatalf("interrupted tune: exit %d\n%s", code, out)
	}
	clustertest.Poll(t, "the trials' jobs cancelled", func() bool {
		jobs := clusterJobs(t, cl)
		for _, j := range jobs {
			if j.State != state.JobCancelled {
				return false
			}
		}
		return len(jobs) == 2
	})

	close(release)
	if code, stdout, stderr := sluice(t, append([]string{"tune", file, "--dir", got, "--resume"}, flags...)...); code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	want := filepath.Join(dir, "want")
	if code, stdout, stderr := sluice(t, "tune", file, "--dir", want); code != 0 {
		t.Fatalf("local run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	samePlanTables(t, got, want)
	runs, _ := filepath.Glob(filepath.Join(got, "trials", "*", "jobs", "run-*"))
	if len(runs) != 5 || len(clusterJobs(t, cl)) != 5 {
		t.Errorf("runs %v, %d jobs: want two trials run twice, one once", runs, len(clusterJobs(t, cl)))
	}
}

// A driver killed (SIGKILL) while its plan trials' jobs run leaves them
// running; `--resume` (from the cluster's record) cancels them before it
// runs those trials again as new jobs, and ends with the local run's
// table.
func TestTunePlanClusterDriverKill(t *testing.T) {
	release := registerPlanHold(t)
	file, dir := planExperiment(t, "- map_batches: {fn: "+planHold+"}\n  "+tunePlanGroup, func(s string) string { return s })
	flags, cl := planCluster(t, dir)
	got := filepath.Join(dir, "got")
	driver := spawn(t, append([]string{"tune", file, "--dir", got}, flags...)...)
	var held []string
	clustertest.Poll(t, "two trial jobs running", func() bool {
		held = nil
		for _, j := range clusterJobs(t, cl) {
			if j.State == state.JobRunning {
				held = append(held, j.ID)
			}
		}
		return len(held) == 2
	})
	driver.kill9(t)

	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runMain(context.Background(), &env{stdout: out, stderr: out, stdin: strings.NewReader("")},
			append([]string{"tune", file, "--dir", got, "--resume"}, flags...))
	}()
	clustertest.Poll(t, "the dead driver's jobs cancelled", func() bool {
		for _, j := range clusterJobs(t, cl) {
			if (j.ID == held[0] || j.ID == held[1]) && j.State != state.JobCancelled {
				return false
			}
		}
		return true
	})
	close(release)
	if code := <-done; code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	if n := strings.Count(out.String(), "of an earlier run"); n != 2 {
		t.Errorf("%d earlier runs' jobs cancelled:\n%s", n, out)
	}
	want := filepath.Join(dir, "want")
	if code, stdout, stderr := sluice(t, "tune", file, "--dir", want); code != 0 {
		t.Fatalf("local run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	samePlanTables(t, got, want)
}
