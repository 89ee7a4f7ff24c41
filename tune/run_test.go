package tune

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// quadSpace and quad make a synthetic objective with a known optimum:
// loss(x, lr) = (x-1)^2 + (log10 lr + 2)^2 + 1/iteration + noise, least
// (0 + 1/T) at x = 1, lr = 1e-2. Every trial's curve falls with the
// iterations, and better configs are better at every iteration, as
// learning curves of real training tend to be.
var quadSpace = Space{"x": Uniform{-4, 4}, "lr": LogUniform{1e-5, 1}}

func quadLoss(c Values, iter int, noise float64) float64 {
	x, lr := c["x"].(float64), c["lr"].(float64)
	return (x-1)*(x-1) + math.Pow(math.Log10(lr)+2, 2) + 1/float64(iter) + noise
}

// quad reports the objective for iters iterations; calls counts the
// reports.
func quad(iters int, calls *atomic.Int64) Func {
	return func(ctx context.Context, t *Trial) error {
		r := rand.New(rand.NewPCG(uint64(len(t.ID)), uint64(t.Iteration())))
		for i := t.Iteration() + 1; i <= iters; i++ {
			if calls != nil {
				calls.Add(1)
			}
			if err := t.Report(map[string]float64{"loss": quadLoss(t.Config, i, 0.01*r.NormFloat64())}); err != nil {
				return err
			}
		}
		return nil
	}
}

func readTable(t *testing.T, dir string) []Row {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "trials.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []Row
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var r Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		rows = append(rows, r)
	}
	return rows
}

func TestRunRandom(t *testing.T) {
	dir := t.TempDir()
	var progress bytes.Buffer
	exp, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 8,
		MaxConcurrent: 3, Seed: 5, Dir: dir, Progress: &progress}, quad(5, nil))
	if err != nil {
		t.Fatal(err)
	}
	rows := readTable(t, dir)
	if len(rows) != 8 || len(exp.Trials) != 8 {
		t.Fatalf("%d rows, %d trials, want 8", len(rows), len(exp.Trials))
	}
	best := exp.Best()
	for _, r := range rows {
		if r.Status != Done || r.Iterations != 5 || r.Last == nil || r.Best == nil {
			t.Errorf("row %+v", r)
		}
		if *r.Best < *best.Best {
			t.Errorf("best is %s (%g) but %s has %g", best.ID, *best.Best, r.Trial, *r.Best)
		}
	}
	if s := exp.Summary(); s.Trials != 8 || s.StoppedEarly != 0 || s.Best.Trial != best.ID {
		t.Errorf("summary %+v", s)
	}
	// The same seed gives the same configs, whatever the concurrency.
	exp2, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 8,
		MaxConcurrent: 1, Seed: 5, Dir: t.TempDir()}, quad(5, nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := range exp.Trials {
		if a, b := formatConfig(exp.Trials[i].Config), formatConfig(exp2.Trials[i].Config); a != b {
			t.Errorf("trial %d: %s vs %s", i, a, b)
		}
	}
	// A directory that holds an experiment is not overwritten.
	if _, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, Dir: dir}, quad(1, nil)); !errors.Is(err, ErrExists) {
		t.Errorf("second run in %s: %v, want ErrExists", dir, err)
	}
	var tbl strings.Builder
	loaded, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	loaded.WriteTable(&tbl)
	if !strings.Contains(tbl.String(), "t0007  done") || strings.Count(tbl.String(), "\n") != 9 {
		t.Errorf("table:\n%s", tbl.String())
	}
}

// A trial that fails or panics gets status error with its message; the
// others run on.
func TestRunTrialErrors(t *testing.T) {
	dir := t.TempDir()
	exp, err := Run(context.Background(), Config{Space: Space{"n": RandInt{0, 100}}, Metric: "m", Mode: Max, NumSamples: 4, MaxConcurrent: 2, Dir: dir},
		func(ctx context.Context, tr *Trial) error {
			if err := tr.Report(map[string]float64{"m": 1}); err != nil {
				return err
			}
			switch tr.ID {
			case "t0001":
				return errors.New("out of memory")
			case "t0002":
				var m map[string]int
				m["x"] = 1 // panics
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	rows := readTable(t, dir)
	want := []Status{Done, Failed, Failed, Done}
	for i, r := range rows {
		if r.Status != want[i] {
			t.Errorf("%s: %s, want %s", r.Trial, r.Status, want[i])
		}
	}
	if rows[1].Error != "out of memory" || !strings.HasPrefix(rows[2].Error, "panic: assignment to entry in nil map") {
		t.Errorf("errors: %q, %q", rows[1].Error, firstLine(rows[2].Error))
	}
	if exp.Best() == nil || exp.Best().Status != Done {
		t.Errorf("best: %+v", exp.Best())
	}
}

func TestRunMetricNeverReported(t *testing.T) {
	dir := t.TempDir()
	var started atomic.Int64
	_, err := Run(context.Background(), Config{Space: quadSpace, Metric: "los", Mode: Min, NumSamples: 10, MaxConcurrent: 1, Dir: dir},
		func(ctx context.Context, tr *Trial) error {
			started.Add(1)
			return tr.Report(map[string]float64{"loss": 1, "lr": 2})
		})
	if !errors.Is(err, ErrNoMetric) || !strings.Contains(err.Error(), `metric "los" is not in the report of iteration 1 (its keys: loss, lr)`) {
		t.Fatalf("got %v", err)
	}
	if started.Load() != 1 {
		t.Errorf("%d trials started after the first showed the metric missing", started.Load())
	}
	// The state stays readable.
	exp, err := Load(context.Background(), dir)
	if err != nil || len(exp.Trials) != 1 || exp.Trials[0].Status != Failed {
		t.Fatalf("%v %+v", err, exp)
	}
	_, err = Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, Dir: t.TempDir()},
		func(ctx context.Context, tr *Trial) error { return nil })
	if !errors.Is(err, ErrNoMetric) {
		t.Fatalf("a trial that reports nothing: %v", err)
	}
}

// An interrupted experiment resumes: finished trials are not run again,
// the interrupted one continues from its checkpoint.
func TestRunResume(t *testing.T) { testResume(t, t.TempDir()) }

func testResume(t *testing.T, dir string) {
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 5, MaxConcurrent: 1, Seed: 3, Dir: dir}
	checkpointing := func(block bool) Func {
		return func(ctx context.Context, tr *Trial) error {
			step := tr.Iteration()
			if tr.Restore() != "" {
				b, err := os.ReadFile(filepath.Join(tr.Restore(), "step"))
				if err != nil {
					return err
				}
				if step, _ = strconv.Atoi(string(b)); step != tr.Iteration() {
					return fmt.Errorf("checkpoint holds step %d, iteration %d", step, tr.Iteration())
				}
			}
			for step < 4 {
				step++
				if err := tr.Report(map[string]float64{"loss": quadLoss(tr.Config, step, 0)}); err != nil {
					return err
				}
				if err := tr.Checkpoint(func(d string) error {
					return os.WriteFile(filepath.Join(d, "step"), []byte(strconv.Itoa(step)), 0o644)
				}); err != nil {
					return err
				}
				if block && tr.ID == "t0002" && step == 2 {
					cancel()
					<-ctx.Done()
					return ctx.Err()
				}
			}
			return nil
		}
	}
	if _, err := Run(ctx, cfg, checkpointing(true)); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	exp, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Trials) != 3 || exp.Trials[1].Status != Done || exp.Trials[2].Status != Running || exp.Trials[2].Iterations != 2 {
		t.Fatalf("after the interruption: %s", exp.JSONL())
	}
	var ran []string
	cfg.Resume = true
	exp, err = Run(context.Background(), cfg, func(ctx context.Context, tr *Trial) error {
		ran = append(ran, fmt.Sprintf("%s@%d", tr.ID, tr.Iteration()))
		return checkpointing(false)(ctx, tr)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ran, " "); got != "t0002@2 t0003@0 t0004@0" {
		t.Errorf("resumed trials: %s", got)
	}
	for _, tr := range exp.Trials {
		if tr.Status != Done || tr.Iterations != 4 {
			t.Errorf("%s: %s at %d", tr.ID, tr.Status, tr.Iterations)
		}
	}
	// The configs are those an uninterrupted run gives.
	whole, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 5, MaxConcurrent: 1, Seed: 3, Dir: t.TempDir()}, checkpointing(false))
	if err != nil {
		t.Fatal(err)
	}
	for i := range whole.Trials {
		if a, b := formatConfig(whole.Trials[i].Config), formatConfig(exp.Trials[i].Config); a != b || *whole.Trials[i].Best != *exp.Trials[i].Best {
			t.Errorf("trial %d: %s %g vs resumed %s %g", i, a, *whole.Trials[i].Best, b, *exp.Trials[i].Best)
		}
	}
	cfg.Seed = 4
	if _, err := Run(context.Background(), cfg, checkpointing(false)); err == nil || !strings.Contains(err.Error(), "seed was 3, the config says 4") {
		t.Errorf("resume with another seed: %v", err)
	}
}

// A NaN or infinite metric (a diverged run) is kept out of the state's
// JSON and of the ranking; the trial runs on.
func TestRunNaN(t *testing.T) {
	dir := t.TempDir()
	exp, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 2, Dir: dir, Scheduler: NewASHA()},
		func(ctx context.Context, tr *Trial) error {
			for _, v := range []float64{3, math.NaN(), math.Inf(1), 2} {
				if err := tr.Report(map[string]float64{"loss": v, "other": math.NaN()}); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range exp.Trials {
		if tr.Status != Done || tr.Iterations != 4 || *tr.Best != 2 || *tr.Last != 2 {
			t.Errorf("%s: %s", tr.ID, exp.JSONL())
		}
	}
	if _, err := Load(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
}
