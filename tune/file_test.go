package tune

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleFiles(t *testing.T) {
	files, _ := filepath.Glob("../examples/tune/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example files")
	}
	for _, f := range files {
		ef, err := LoadFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		cfg := ef.Config()
		cfg.Dir = t.TempDir()
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseFile(t *testing.T) {
	f, err := ParseFile("e.yaml", []byte(`
tune:
  metric: acc
  mode: max
  searcher: grid
  scheduler: pbt
  perturbation_interval: 3
  resample_probability: 0
  space:
    opt:
      choice:
        - {optimizer: sgd, momentum: {grid: [0.5, 0.9]}}
        - {optimizer: adamw}
train: {model: m, steps: 10, shuffle: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.Config()
	p, ok := cfg.Scheduler.(*PBT)
	if !ok || p.Interval != 3 || p.ResampleProbability != 0 || p.QuantileFraction != 0.25 || cfg.Mode != Max {
		t.Errorf("config %+v, scheduler %+v", cfg, cfg.Scheduler)
	}
	if f.Train["steps"] != 10 || f.Train["shuffle"] != false {
		t.Errorf("train %v", f.Train)
	}

	_, err = ParseFile("e.yaml", []byte("tune:\n  metric: 3\n  num_samples: 0\n  frob: 1\n  space: {lr: {uniform: [0, 1]}, out-dir: 1}\ntrain: {batch-size: 8, resume: x}\nextra: 1\n"))
	want := []string{
		"e.yaml:2:11: tune.metric: want the name of a reported key (loss), got 3",
		"e.yaml:3:16: tune.num_samples: want an integer of at least 1, got 0",
		"e.yaml:4:3: tune.frob: unknown key: want metric, mode, searcher, scheduler, num_samples, max_concurrent, seed, max_t, grace_period, reduction_factor, min_samples, perturbation_interval, quantile_fraction, resample_probability, space, command, cpu, gpu or memory",
		"e.yaml:5:34: tune.space.out-dir: a train flag's key is snake_case: lower-case letters, digits and _",
		"e.yaml:6:9: train.batch-size: a train flag's key is snake_case: lower-case letters, digits and _",
		"e.yaml:6:24: train.resume: tune sets --resume itself",
		"e.yaml:7:1: extra: unknown key: a tune file has name, description, tune, and train or plan",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") || !errors.Is(err, ErrInvalid) {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if _, err := ParseFile("e.yaml", []byte("train: {steps: 1}\n")); err == nil || err.Error() != "e.yaml:1:1: tune: missing: the tune: section describes the search" {
		t.Errorf("no tune: %v", err)
	}
}

func TestParseFilePlan(t *testing.T) {
	f, err := ParseFile("p.yaml", []byte(`
tune:
  metric: revenue
  mode: max
  space: {min_price: {randint: [10, 90]}}
plan:
  file: plans/q.yaml
  params: {region: eu, n: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Plan == nil || f.Plan.File != "plans/q.yaml" || f.Plan.Params["region"] != "eu" || f.Plan.Params["n"] != "3" || len(f.Train) != 0 {
		t.Errorf("plan %+v, train %v", f.Plan, f.Train)
	}
	_, err = ParseFile("p.yaml", []byte(`tune:
  metric: n
  scheduler: pbt
  command: [x]
  space: {a: {uniform: [0, 1]}}
plan: {params: {a: [1]}, frob: 1}
train: {steps: 1}
`))
	want := []string{
		"p.yaml:6:20: plan.params.a: want a single value (a --param's), got a list of 1",
		"p.yaml:6:26: plan.frob: unknown key: want file or params",
		"p.yaml:6:7: plan.file: missing: the plan file to run per trial",
		"p.yaml:6:1: plan: a tune file's trials run a train: section or a plan:, not both",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	_, err = ParseFile("p.yaml", []byte("tune:\n  metric: n\n  scheduler: pbt\n  command: [x]\n  space: {a: {uniform: [0, 1]}}\nplan: {file: q.yaml}\n"))
	want = []string{
		"p.yaml:4:12: tune.command: applies to train: trials; a plan: trial runs its plan",
		"p.yaml:3:14: tune.scheduler: pbt needs checkpoints, which a plan: trial has none of (it reports once)",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}
