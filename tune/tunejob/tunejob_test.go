package tunejob

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/cli"
	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/coordinator"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/internal/clustertest"
	"github.com/sluicehq/sluice/tune"
)

// TestMain registers the map_batches function and the Go trial
// functions, as a worker's program does, and lets the test binary act as
// the trial program when TUNEJOB_QUAD=1, or as a worker process when
// TUNEJOB_WORKER=1 (its arguments the worker's flags).
func TestMain(m *testing.M) {
	if os.Getenv("TUNEJOB_QUAD") == "1" {
		os.Exit(quadProgram(os.Args[1:]))
	}
	if err := Register(); err != nil {
		panic(err)
	}
	registerTrialFuncs()
	if os.Getenv("TUNEJOB_WORKER") == "1" {
		if err := cli.RunWorker(context.Background(), os.Args[1:], os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// quadProgram is a trial program of a synthetic objective: one line per
// step, {"step", "loss"}, the loss a quadratic in x and log10(lr) plus
// 1/step, --delay apart; --fail exits 1.
func quadProgram(args []string) int {
	fs := flag.NewFlagSet("quad", flag.ContinueOnError)
	x := fs.Float64("x", 0, "")
	lr := fs.Float64("lr", 0.01, "")
	steps := fs.Int("steps", 10, "")
	fail := fs.Bool("fail", false, "")
	delay := fs.Duration("delay", 0, "")
	fs.String("out", "", "")
	fs.Int("checkpoint-every", 0, "")
	fs.String("resume", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *fail {
		fmt.Fprintln(os.Stderr, "quad: asked to fail")
		return 1
	}
	for i := 1; i <= *steps; i++ {
		loss := (*x-1)*(*x-1) + math.Pow(math.Log10(*lr)+2, 2) + 1/float64(i)
		fmt.Printf("{\"step\": %d, \"loss\": %g}\n", i, loss)
		time.Sleep(*delay)
	}
	return 0
}

// cluster starts a coordinator and workers in this process, on loopback,
// each worker with cpus CPUs; it returns the API client.
func cluster(t testing.TB, workers, cpus int) *api.Client {
	co, dir, tokenFile := startCoordinator(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, workers)
	for i := range workers {
		go func() {
			done <- cli.RunWorker(ctx, []string{"-coordinators", co.URL(), "-data-dir", filepath.Join(dir, fmt.Sprint("w", i)),
				"-addr", "127.0.0.1:0", "-token-file", tokenFile, "-resources", fmt.Sprintf("cpu=%d,memory=4GiB", cpus), "-heartbeat", "100ms"}, io.Discard)
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range workers {
			<-done
		}
	})
	return waitCluster(t, co, workers)
}

const token = "tunejob-token"

// startCoordinator starts a coordinator in this process, on loopback
// (clustertest), that declares a worker dead after workerTimeout (0: the
// default); it returns the coordinator, a directory for the test and the
// token's file.
func startCoordinator(t testing.TB, workerTimeout time.Duration) (*coordinator.Coordinator, string, string) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := clustertest.Config(t, "n1", token)
	cfg.Tick = 20 * time.Millisecond
	if workerTimeout > 0 {
		cfg.WorkerTimeout = workerTimeout
	}
	return clustertest.Start(t, cfg), dir, tokenFile
}

// waitCluster waits for the coordinator to lead with the number of
// workers; it returns an API client.
func waitCluster(t testing.TB, co *coordinator.Coordinator, workers int) *api.Client {
	cl := api.NewClient([]string{co.URL()}, token)
	clustertest.WaitReady(t, cl, workers)
	return cl
}

var quadSpace = tune.Space{"x": tune.Uniform{Lo: -4, Hi: 4}, "lr": tune.LogUniform{Lo: 1e-5, Hi: 1}}

// Trials as cluster jobs under ASHA: the stopped trials' jobs are
// cancelled through the coordinator, a failing program's trial fails with
// its stderr, the others complete.
func TestClusterTrials(t *testing.T) {
	t.Setenv("TUNEJOB_QUAD", "1") // the workers' trial program is this binary's quadProgram
	cl := cluster(t, 1, 2)
	dir := t.TempDir()
	a := tune.NewASHA()
	a.MaxT, a.GracePeriod, a.ReductionFactor = 20, 2, 2
	space := tune.Space{"x": quadSpace["x"], "lr": quadSpace["lr"], "fail": tune.Choice{Values: []any{false, false, false, false, false, true}}}
	c := tune.Cluster{Jobs: Client{API: cl}, Command: []string{os.Args[0]}, Base: tune.Values{"steps": int64(20), "delay": "20ms"}, Poll: 20 * time.Millisecond}
	exp, err := tune.Run(context.Background(), tune.Config{Space: space, Metric: "loss", Mode: tune.Min, NumSamples: 8,
		MaxConcurrent: 2, Seed: 4, Dir: dir, Scheduler: a}, c.Func())
	if err != nil {
		t.Fatal(err)
	}
	// Trials that ended at their last step let their jobs finish.
	var jobs []state.Job
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs", nil, &jobs); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(jobs, func(j state.Job) bool { return !j.State.Done() }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the trials' jobs did not finish")
		}
	}
	byRun := map[string]state.Job{}
	for _, j := range jobs {
		var js api.JobStatus
		if err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs/"+j.ID, nil, &js); err != nil {
			t.Fatal(err)
		}
		for _, tr := range exp.Trials {
			if strings.Contains(string(js.Job.Plan), filepath.Join(dir, "trials", tr.ID)+"/") {
				byRun[tr.ID] = js.Job
			}
		}
	}
	stopped, failed, cancelled := 0, 0, 0
	for _, tr := range exp.Trials {
		j, ok := byRun[tr.ID]
		if !ok {
			t.Errorf("%s: no job", tr.ID)
			continue
		}
		switch tr.Status {
		case tune.Stopped:
			stopped++
			// Cancelled, unless its program had printed its last line already.
			if j.State == state.JobCancelled {
				cancelled++
			} else if j.State != state.JobSucceeded {
				t.Errorf("stopped %s: job %s is %s", tr.ID, j.ID, j.State)
			}
		case tune.Failed:
			failed++
			if j.State != state.JobFailed || !strings.Contains(tr.Error, "quad: asked to fail") {
				t.Errorf("failed %s: job %s, error %q", tr.ID, j.State, tr.Error)
			}
		case tune.Done:
			if j.State != state.JobSucceeded || tr.Iterations != 20 {
				t.Errorf("done %s: job %s, %d iterations", tr.ID, j.State, tr.Iterations)
			}
		default:
			t.Errorf("%s: status %s", tr.ID, tr.Status)
		}
	}
	if cancelled == 0 || failed == 0 {
		t.Errorf("%d stopped (%d jobs cancelled), %d failed: the test should see a cancelled and a failed one", stopped, cancelled, failed)
	}
	b, _ := json.Marshal(exp.Summary())
	t.Logf("%s", b)
}

// noCancel is the API of a driver that died before it could cancel.
type noCancel struct{ Client }

func (noCancel) Cancel(context.Context, string) error { return errors.New("the driver died") }

// A resumed experiment cancels the jobs its dead driver left running, and
// runs the trial again.
func TestResumeCancelsEarlierJobs(t *testing.T) {
	t.Setenv("TUNEJOB_QUAD", "1")
	cl := cluster(t, 1, 2)
	dir := t.TempDir()
	cfg := tune.Config{Space: quadSpace, Metric: "loss", Mode: tune.Min, NumSamples: 1, Seed: 1, Dir: dir}
	ctx, cancel := context.WithCancel(context.Background())
	c := tune.Cluster{Jobs: noCancel{Client{API: cl}}, Command: []string{os.Args[0]}, Base: tune.Values{"steps": int64(400), "delay": "50ms"},
		Poll: 20 * time.Millisecond}
	done := make(chan error, 1)
	go func() { _, err := tune.Run(ctx, cfg, c.Func()); done <- err }()
	run := filepath.Join(dir, "trials", "t0000", "run-1")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(run, "metrics.jsonl")); len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the trial never reported")
		}
	}
	cancel()
	<-done
	b, err := os.ReadFile(filepath.Join(run, "job-id"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(b))
	jobState := func() state.JobState {
		var js api.JobStatus
		if err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs/"+id, nil, &js); err != nil {
			t.Fatal(err)
		}
		return js.Job.State
	}
	if st := jobState(); st.Done() {
		t.Fatalf("job %s is %s already: the test needs it left running", id, st)
	}
	cfg.Resume = true
	c2 := tune.Cluster{Jobs: Client{API: cl}, Command: []string{os.Args[0]}, Base: tune.Values{"steps": int64(5)}, Poll: 20 * time.Millisecond}
	exp, err := tune.Run(context.Background(), cfg, c2.Func())
	if err != nil {
		t.Fatal(err)
	}
	if tr := exp.Trials[0]; tr.Status != tune.Done || tr.Iterations != 5 {
		t.Errorf("resumed trial: %s, %d iterations: %s", tr.Status, tr.Iterations, tr.Error)
	}
	for deadline := time.Now().Add(5 * time.Second); !jobState().Done() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
	}
	if st := jobState(); st != state.JobCancelled {
		t.Errorf("the dead driver's job %s is %s, want cancelled", id, st)
	}
}
