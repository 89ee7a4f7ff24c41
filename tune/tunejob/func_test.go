package tunejob

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/tune"
)

// registerTrialFuncs registers the Go trial functions of the tests, as a
// worker's program would at init.
func registerTrialFuncs() {
	// quad reports the synthetic objective per iteration and checkpoints
	// its iteration each time; its config's numbers must arrive with their
	// kinds (x, lr float64; steps int64).
	tune.MustRegister("quad", func(ctx context.Context, t *tune.Trial) error {
		x, ok1 := t.Config["x"].(float64)
		lr, ok2 := t.Config["lr"].(float64)
		steps, ok3 := t.Config["steps"].(int64)
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("config %#v: want x, lr float64 and steps int64", t.Config)
		}
		for i := t.Iteration() + 1; i <= int(steps); i++ {
			loss := (x-1)*(x-1) + math.Pow(math.Log10(lr)+2, 2) + 1/float64(i)
			if err := t.Report(map[string]float64{"loss": loss}); err != nil {
				return err
			}
			if err := t.Checkpoint(func(dir string) error {
				return os.WriteFile(filepath.Join(dir, "iter"), []byte(strconv.Itoa(i)), 0o644)
			}); err != nil {
				return err
			}
		}
		return nil
	})
	// counter sums the iterations, its sum in its checkpoints: a run
	// restored from a checkpoint reports what an undisturbed one would,
	// and "restored" says from which iteration it went on.
	// With k in the config, each iteration adds k times it.
	tune.MustRegister("counter", func(ctx context.Context, t *tune.Trial) error {
		sum, restored := 0.0, 0
		if dir := t.Restore(); dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, "sum"))
			if err != nil {
				return err
			}
			if sum, err = strconv.ParseFloat(string(b), 64); err != nil {
				return err
			}
			restored = t.Iteration()
		}
		k, ok := t.Config["k"].(float64)
		if !ok {
			k = 1
		}
		steps, delay := t.Config["steps"].(int64), t.Config["delay_ms"].(int64)
		for i := t.Iteration() + 1; i <= int(steps); i++ {
			time.Sleep(time.Duration(delay) * time.Millisecond)
			sum += k * float64(i)
			if err := t.Report(map[string]float64{"sum": sum, "restored": float64(restored)}); err != nil {
				return err
			}
			if err := t.Checkpoint(func(dir string) error {
				return os.WriteFile(filepath.Join(dir, "sum"), []byte(strconv.FormatFloat(sum, 'g', -1, 64)), 0o644)
			}); err != nil {
				return err
			}
		}
		return nil
	})
	tune.MustRegister("boom", func(ctx context.Context, t *tune.Trial) error {
		if err := t.Report(map[string]float64{"loss": 1}); err != nil {
			return err
		}
		panic("boom at iteration 1")
	})
}

// Trials that name a registered Go function run it in the worker's
// process: under ASHA some are stopped and the others reach max_t, every
// reported iteration's checkpoint is in the experiment with the function's
// content, and the config's numbers keep their kinds (quad fails
// otherwise). A function that panics fails its trial naming the trial and
// the panic; a name the workers did not register fails naming it and the
// registered ones.
func TestClusterFunctionTrials(t *testing.T) {
	cl := cluster(t, 1, 2)
	dir := t.TempDir()
	a := tune.NewASHA()
	a.MaxT, a.GracePeriod, a.ReductionFactor = 8, 1, 2
	c := tune.Cluster{Jobs: Client{API: cl}, Function: "quad", Base: tune.Values{"steps": int64(8)}, Poll: 10 * time.Millisecond}
	exp, err := tune.Run(context.Background(), tune.Config{Space: quadSpace, Metric: "loss", Mode: tune.Min, NumSamples: 6,
		MaxConcurrent: 2, Seed: 2, MaxT: 8, Dir: dir, Scheduler: a}, c.Func())
	if err != nil {
		t.Fatal(err)
	}
	done, stopped := 0, 0
	for _, tr := range exp.Trials {
		switch tr.Status {
		case tune.Done:
			done++
			if tr.Iterations != 8 {
				t.Errorf("%s: done at %d iterations, want 8", tr.ID, tr.Iterations)
			}
		case tune.Stopped:
			stopped++
		default:
			t.Errorf("%s: %s: %s", tr.ID, tr.Status, tr.Error)
			continue
		}
		for i, r := range tr.Reports {
			if int(r["iteration"]) != i+1 {
				t.Errorf("%s: report %d is of iteration %v", tr.ID, i+1, r["iteration"])
			}
		}
		// Each checkpoint holds its iteration, as the function wrote it
		// (the last one may have been cut short by the stop).
		if len(tr.Checkpoints) < tr.Iterations-1 || (tr.Status == tune.Done && len(tr.Checkpoints) < 7) {
			t.Errorf("%s: %d checkpoints for %d iterations", tr.ID, len(tr.Checkpoints), tr.Iterations)
		}
		for _, ck := range tr.Checkpoints {
			b, err := os.ReadFile(filepath.Join(ck.Path, "iter"))
			if err != nil || string(b) != strconv.Itoa(ck.Iter) || !strings.HasPrefix(ck.Path, filepath.Join(dir, "trials", tr.ID)+"/") {
				t.Errorf("%s: checkpoint %+v: %q %v", tr.ID, ck, b, err)
			}
		}
	}
	if done == 0 || stopped == 0 {
		t.Errorf("%d done, %d stopped: want some of each", done, stopped)
	}

	for _, tc := range []struct{ fn, want string }{
		{"boom", "function boom panicked: boom at iteration 1"},
		{"nope", `trial function "nope" is not registered in this program (tune.Register); registered: boom, counter, quad`},
	} {
		c.Function = tc.fn
		exp, err := tune.Run(context.Background(), tune.Config{Space: quadSpace, Metric: "loss", Mode: tune.Min, NumSamples: 1,
			Seed: 2, Dir: t.TempDir()}, c.Func())
		if tc.fn == "nope" {
			if !errors.Is(err, tune.ErrNoMetric) {
				t.Errorf("%s: %v, want ErrNoMetric (no trial reported)", tc.fn, err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if tr := exp.Trials[0]; tr.Status != tune.Failed || !strings.Contains(tr.Error, tc.want) || !strings.Contains(tr.Error, "trial t0000") {
			t.Errorf("%s: %s: %q\nwant it to name trial t0000 and %q", tc.fn, tr.Status, tr.Error, tc.want)
		}
	}
}

// PBT over a function trial on the cluster: an exploited trial's next run
// starts on the worker from the donor's checkpoint (its sum goes on from
// the donor's) at the donor's iteration, and every trial reaches max_t.
func TestClusterFunctionPBT(t *testing.T) {
	cl := cluster(t, 1, 6)
	p := tune.NewPBT()
	p.Interval, p.QuantileFraction = 2, 0.5 // exploits at most perturbations, whatever order the reports come in
	c := tune.Cluster{Jobs: Client{API: cl}, Function: "counter", Base: tune.Values{"steps": int64(16), "delay_ms": int64(40)},
		Poll: 10 * time.Millisecond}
	exp, err := tune.Run(context.Background(), tune.Config{Space: tune.Space{"k": tune.Uniform{Lo: 0.1, Hi: 10}}, Metric: "sum",
		Mode: tune.Max, NumSamples: 6, MaxConcurrent: 6, MaxT: 16, Seed: 3, Dir: t.TempDir(), Scheduler: p}, c.Func())
	if err != nil {
		t.Fatal(err)
	}
	exploited := 0
	for _, tr := range exp.Trials {
		if tr.Status != tune.Done || tr.Iterations != 16 {
			t.Errorf("%s: %s at %d: %s", tr.ID, tr.Status, tr.Iterations, tr.Error)
		}
		if tr.RestoredFrom == "" {
			continue
		}
		exploited++
		// The donor's checkpoint: its sum, and the reports of the run that
		// went on from it.
		b, err := os.ReadFile(filepath.Join(tr.RestoredFrom, "sum"))
		if err != nil {
			t.Fatal(err)
		}
		donorSum, _ := strconv.ParseFloat(string(b), 64)
		var iter int
		fmt.Sscanf(filepath.Base(tr.RestoredFrom), "checkpoint_%d", &iter)
		last := tr.Reports[len(tr.Reports)-1]
		if last["restored"] != float64(iter) {
			t.Errorf("%s: last report %v, want it restored at %d (from %s)", tr.ID, last, iter, tr.RestoredFrom)
		}
		// sum = donor's sum + k * (iter+1 + ... + 16), k the trial's last config.
		k := tr.Config["k"].(float64)
		want := donorSum + k*float64(16*17/2-iter*(iter+1)/2)
		if math.Abs(last["sum"]-want) > 1e-9*want {
			t.Errorf("%s: sum %g, want %g (donor's %g at %d, k %g)", tr.ID, last["sum"], want, donorSum, iter, k)
		}
	}
	if exploited == 0 {
		t.Error("no trial was exploited")
	}
}

// A function trial whose worker process is killed (SIGKILL) mid-run runs
// again on another worker from the run's last checkpoint: every iteration
// is reported once, in order, with the sums an undisturbed run gives, and
// the reports after the kill say they went on from a checkpoint.
func TestClusterFunctionWorkerKill(t *testing.T) {
	co, dir, tokenFile := startCoordinator(t, time.Second)
	var mu sync.Mutex
	worker := func(name string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-coordinators", co.URL(), "-data-dir", filepath.Join(dir, name), "-addr", "127.0.0.1:0",
			"-token-file", tokenFile, "-resources", "cpu=1,memory=1GiB", "-heartbeat", "100ms")
		cmd.Env = append(os.Environ(), "TUNEJOB_WORKER=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			mu.Lock()
			defer mu.Unlock()
			if t.Failed() {
				t.Logf("worker %s:\n%s", name, out.String())
			}
		})
		return cmd
	}
	first := worker("w1")
	cl := waitCluster(t, co, 1)

	exp := t.TempDir()
	c := tune.Cluster{Jobs: Client{API: cl}, Function: "counter", Base: tune.Values{"steps": int64(40), "delay_ms": int64(50)},
		Poll: 10 * time.Millisecond}
	type result struct {
		exp *tune.Experiment
		err error
	}
	done := make(chan result, 1)
	go func() {
		e, err := tune.Run(context.Background(), tune.Config{Space: tune.Space{"k": tune.Choice{Values: []any{1}}}, Metric: "sum",
			Mode: tune.Max, Seed: 1, Dir: exp}, c.Func())
		done <- result{e, err}
	}()
	metrics := filepath.Join(exp, "trials", "t0000", "run-1", "metrics.jsonl")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(metrics)
		if strings.Count(string(b), `"checkpoint"`) >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trial did not checkpoint 5 times: %s", b)
		}
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	worker("w2")
	var r result
	select {
	case r = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("the experiment did not end within 90 s of the kill")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	tr := r.exp.Trials[0]
	if tr.Status != tune.Done || tr.Iterations != 40 || len(tr.Reports) != 40 {
		t.Fatalf("trial: %s, %d iterations, %d reports: %s", tr.Status, tr.Iterations, len(tr.Reports), tr.Error)
	}
	restored := 0
	for i, rep := range tr.Reports {
		n := i + 1
		if int(rep["iteration"]) != n || int(rep["sum"]) != n*(n+1)/2 {
			t.Errorf("report %d: %v, want iteration %d and sum %d", n, rep, n, n*(n+1)/2)
		}
		if rep["restored"] > 0 {
			restored++
		}
	}
	if restored == 0 {
		t.Errorf("no report came from a run restored from a checkpoint")
	}
	// The run's file holds each iteration's report once.
	b, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var l struct {
			Iteration int
			Report    map[string]any
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if l.Report != nil {
			if seen[l.Iteration] {
				t.Errorf("iteration %d reported twice in %s", l.Iteration, metrics)
			}
			seen[l.Iteration] = true
		}
	}
	var cs api.ClusterStatus
	cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &cs)
	t.Logf("%d reports restored from a checkpoint; workers now %d", restored, len(cs.Workers))
}
