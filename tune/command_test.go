package tune

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary act as a training program when
// TUNE_FAKE_TRAIN=1: the subprocess trials of these tests run it.
func TestMain(m *testing.M) {
	if os.Getenv("TUNE_FAKE_TRAIN") == "1" {
		os.Exit(fakeTrain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeTrain is a training program with `sluice train`'s interface: it
// prints {"step","loss","lr"} per step for a synthetic objective, writes
// OUT/checkpoint atomically every --checkpoint-every steps and continues
// from --resume.
func fakeTrain(args []string) int {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	lr := fs.Float64("lr", 0.1, "")
	steps := fs.Int("steps", 10, "")
	out := fs.String("out", "", "")
	every := fs.Int("checkpoint-every", 0, "")
	resume := fs.String("resume", "", "")
	rank := fs.Int("lora-rank", 4, "")
	fail := fs.Bool("fail", false, "")
	fs.String("model", "", "")
	if len(args) > 0 && args[0] == "train" {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *fail {
		fmt.Fprintln(os.Stderr, "train: out of memory")
		return 1
	}
	step, level := 0, 4.0
	if *resume != "" {
		b, err := os.ReadFile(filepath.Join(*resume, "state.json"))
		var st struct {
			Step  int     `json:"step"`
			Level float64 `json:"level"`
		}
		if err != nil || json.Unmarshal(b, &st) != nil {
			fmt.Fprintln(os.Stderr, "train: --resume:", err)
			return 1
		}
		step, level = st.Step, st.Level
	}
	for step < *steps {
		step++
		// Progress per step depends on lr (best near 1e-2) and rank.
		rate := 0.3 * math.Exp(-math.Pow(math.Log10(*lr)+2, 2)) * (1 + float64(*rank)/64)
		level *= 1 - rate
		b, _ := json.Marshal(map[string]any{"step": step, "loss": level, "lr": *lr, "note": "text fields are skipped"})
		fmt.Println(string(b))
		if *every > 0 && step%*every == 0 && step < *steps {
			// As sluice train: the checkpoint after the step's line,
			// written aside and renamed into place.
			tmp := filepath.Join(*out, "checkpoint.tmp")
			os.RemoveAll(tmp)
			os.MkdirAll(tmp, 0o755)
			st, _ := json.Marshal(map[string]any{"step": step, "level": level})
			os.WriteFile(filepath.Join(tmp, "state.json"), st, 0o644)
			dst := filepath.Join(*out, "checkpoint")
			os.RemoveAll(dst)
			os.Rename(tmp, dst)
			// A line larger than a pipe's buffer: this write returns only
			// once tune has read on past this step, as a real trainer is
			// slower than tune.
			fmt.Println(strings.Repeat("-", 256<<10))
		}
	}
	fmt.Fprintln(os.Stderr, "train: done")
	return 0
}

func fakeCommand(base Values, every int) Command {
	return Command{Args: []string{os.Args[0], "train"}, Base: base, CheckpointEvery: every, Env: append(os.Environ(), "TUNE_FAKE_TRAIN=1")}
}

func TestFlags(t *testing.T) {
	got, err := Flags(Values{"batch_size": int64(8), "lr": 0.001, "shuffle": true, "bf16": false, "model": "m", "opt": Values{"optimizer": "sgd", "momentum": 0.9}})
	if err != nil {
		t.Fatal(err)
	}
	want := "--batch-size=8 --bf16=false --lr=0.001 --model=m --momentum=0.9 --optimizer=sgd --shuffle"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	if _, err := Flags(Values{"x": []any{1}}); err == nil {
		t.Error("a list became a flag")
	}
}

// Subprocess trials under ASHA: reports come from the program's JSON
// lines; stopped trials' programs are killed; a failing program's trial
// gets its stderr in the error.
func TestCommandTrials(t *testing.T) {
	dir := t.TempDir()
	cmd := fakeCommand(Values{"steps": int64(16), "model": "fixture"}, 0)
	a := NewASHA()
	a.MaxT, a.GracePeriod, a.ReductionFactor = 16, 1, 2
	exp, err := Run(context.Background(), Config{
		Space:  Space{"lr": LogUniform{1e-4, 1}, "lora_rank": Choice{[]any{4, 16}}, "fail": Choice{[]any{false, false, false, true}}},
		Metric: "loss", Mode: Min, NumSamples: 8, MaxConcurrent: 2, Seed: 1, Dir: dir, Scheduler: a,
	}, cmd.Func())
	if err != nil {
		t.Fatal(err)
	}
	var done, stopped, failed int
	for _, tr := range exp.Trials {
		switch tr.Status {
		case Done:
			done++
			if tr.Iterations != 16 {
				t.Errorf("%s done at %d", tr.ID, tr.Iterations)
			}
		case Stopped:
			stopped++
			if tr.Iterations >= 16 {
				t.Errorf("%s stopped at %d", tr.ID, tr.Iterations)
			}
		case Failed:
			failed++
			if tr.Config["fail"] != true || !strings.Contains(tr.Error, "exit status 1: train: out of memory") {
				t.Errorf("%s: %s", tr.ID, tr.Error)
			}
		}
		if tr.Status != Failed && tr.Config["fail"] == true {
			t.Errorf("%s: --fail gave %s", tr.ID, tr.Status)
		}
	}
	if done == 0 || stopped == 0 || failed == 0 {
		t.Errorf("done %d, stopped %d, failed %d: want some of each\n%s", done, stopped, failed, exp.JSONL())
	}
}

// PBT over subprocess trials: checkpoints are copied out of the program's
// OUT/checkpoint, and an exploited trial's program resumes from its
// donor's checkpoint (--resume) with a perturbed lr.
func TestCommandPBT(t *testing.T) {
	dir := t.TempDir()
	p := NewPBT()
	p.Interval = 4
	exp, err := Run(context.Background(), Config{
		Space:  Space{"lr": LogUniform{1e-4, 1}},
		Metric: "loss", Mode: Min, NumSamples: 4, MaxConcurrent: 4, Seed: 2, Dir: dir, Scheduler: p,
	}, fakeCommand(Values{"steps": int64(24)}, 4).Func())
	if err != nil {
		t.Fatal(err)
	}
	exploited := 0
	for _, tr := range exp.Trials {
		if tr.Status != Done || tr.Iterations != 24 {
			t.Errorf("%s: %s at %d: %s", tr.ID, tr.Status, tr.Iterations, tr.Error)
		}
		if tr.RestoredFrom != "" {
			exploited++
			b, err := os.ReadFile(filepath.Join(tr.RestoredFrom, "state.json"))
			if err != nil {
				t.Fatal(err)
			}
			var st struct{ Step int }
			json.Unmarshal(b, &st)
			if step := st.Step; step%4 != 0 {
				t.Errorf("%s restored from a checkpoint of step %d", tr.ID, step)
			}
		}
		// The iterations follow the program's steps across restarts.
		for i, m := range tr.Reports {
			if i > 0 && m["iteration"] <= tr.Reports[i-1]["iteration"] && tr.RestoredFrom == "" {
				t.Errorf("%s: iterations %v", tr.ID, tr.Reports)
			}
		}
		last := tr.Reports[len(tr.Reports)-1]
		if last["step"] != last["iteration"] {
			t.Errorf("%s: step %g at iteration %g", tr.ID, last["step"], last["iteration"])
		}
	}
	if exploited == 0 {
		t.Errorf("no trial exploited another:\n%s", exp.JSONL())
	}
}
