package tune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// memStore is a Store in memory that keeps what a cluster would: the
// record as MarshalRecord encodes it within limit bytes.
type memStore struct {
	rec   []byte
	limit int
	saves int
}

func (s *memStore) Load(context.Context) (*Experiment, error) {
	if s.rec == nil {
		return nil, ErrNoExperiment
	}
	return UnmarshalRecord(s.rec, "the test's record")
}

func (s *memStore) Save(_ context.Context, e *Experiment) error {
	b, err := MarshalRecord(e, s.limit)
	if err != nil {
		return err
	}
	s.rec, s.saves = b, s.saves+1
	return nil
}

func (s *memStore) String() string { return "the test's store" }

// A resumed experiment reads the Store's record before Dir's files: here
// Dir's experiment.json is replaced by one that calls every trial
// running, and only the trial the record calls running runs again; with
// an empty store the resume falls back to Dir. A new run refuses a store
// that holds a record.
func TestRunStoreResume(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	store := &memStore{limit: 1 << 20}
	cfg := Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 5, MaxConcurrent: 1, Seed: 3, Dir: dir, Store: store}
	checkpointing := func(block bool) Func {
		return func(ctx context.Context, tr *Trial) error {
			step := tr.Iteration()
			for step < 4 {
				step++
				if err := tr.Report(map[string]float64{"loss": quadLoss(tr.Config, step, 0), "other": 1}); err != nil {
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
	rec, err := store.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Trials) != 3 || rec.Trials[1].Status != Done || rec.Trials[2].Status != Running || rec.Trials[2].Iterations != 2 ||
		len(rec.Trials[2].Checkpoints) != 2 || len(rec.Trials[0].Reports) != 4 {
		t.Fatalf("the store's record after the interruption: %s", store.rec)
	}
	if _, ok := rec.Trials[0].Reports[0]["other"]; ok {
		t.Errorf("the record keeps keys other than the metric: %v", rec.Trials[0].Reports[0])
	}
	// Dir's state goes stale: every trial running.
	stale := *rec
	stale.Trials = nil
	for _, tr := range rec.Trials {
		c := *tr
		c.Status = Running
		stale.Trials = append(stale.Trials, &c)
	}
	b, _ := json.Marshal(&stale)
	if err := os.WriteFile(filepath.Join(dir, stateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cfg, checkpointing(false)); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "the test's store") {
		t.Fatalf("a new run over a stored record: %v", err)
	}
	var ran []string
	cfg.Resume = true
	var progress strings.Builder
	cfg.Progress = &progress
	exp, err := Run(context.Background(), cfg, func(ctx context.Context, tr *Trial) error {
		ran = append(ran, fmt.Sprintf("%s@%d", tr.ID, tr.Iteration()))
		return checkpointing(false)(ctx, tr)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ran, " "); got != "t0002@2 t0003@0 t0004@0" {
		t.Errorf("resumed trials: %s", got)
	}
	if !strings.Contains(progress.String(), "resuming from the test's store") {
		t.Errorf("progress: %s", progress.String())
	}
	for _, tr := range exp.Trials {
		if tr.Status != Done || tr.Iterations != 4 {
			t.Errorf("%s: %s at %d", tr.ID, tr.Status, tr.Iterations)
		}
	}
	if got, _ := Load(context.Background(), dir); got == nil || len(got.Trials) != 5 || got.Trials[0].Status != Done {
		t.Errorf("Dir's state after the resume: %+v", got)
	}

	// An empty store: the resume reads Dir.
	dir2 := t.TempDir()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	cfg2 := cfg
	cfg2.Dir, cfg2.Store, cfg2.Resume, cfg2.Progress = dir2, nil, false, nil
	if _, err := Run(ctx, cfg2, checkpointing(true)); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	cfg2.Store, cfg2.Resume, cfg2.Progress = &memStore{}, true, &progress
	ran = nil
	if _, err := Run(context.Background(), cfg2, func(ctx context.Context, tr *Trial) error {
		ran = append(ran, tr.ID)
		return checkpointing(false)(ctx, tr)
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ran, " "); got != "t0002 t0003 t0004" || !strings.Contains(progress.String(), "resuming from "+dir2) {
		t.Errorf("resumed from Dir: %s; progress %s", got, progress.String())
	}
}

// The record holds each report's iteration and metric; over the limit it
// drops the finished trials' reports, and beyond that it is refused.
func TestMarshalRecord(t *testing.T) {
	v := 1.5
	e := &Experiment{Metric: "loss", Mode: Min, Seed: 1, NumSamples: 2, Trials: []*TrialState{
		{ID: "t0000", Index: 0, Status: Done, Iterations: 2, Last: &v, Best: &v,
			Reports: []map[string]float64{{"iteration": 1, "loss": 2, "acc": 0.1}, {"iteration": 2, "loss": 1.5}}},
		{ID: "t0001", Index: 1, Status: Running, Iterations: 1,
			Reports: []map[string]float64{{"iteration": 1, "loss": 3, "acc": 0.2}, {"iteration": 2, "acc": 0.3}}},
	}}
	full, err := MarshalRecord(e, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalRecord(full, "r")
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Trials[0].Reports; len(r) != 2 || len(r[0]) != 2 || r[0]["loss"] != 2 || r[1]["iteration"] != 2 {
		t.Errorf("t0000 reports %v", r)
	}
	if r := got.Trials[1].Reports; len(r) != 1 || r[0]["loss"] != 3 {
		t.Errorf("t0001 reports %v (a report without the metric is left out)", r)
	}
	if len(e.Trials[0].Reports[0]) != 3 {
		t.Errorf("MarshalRecord changed the experiment: %v", e.Trials[0].Reports)
	}
	trimmed, err := MarshalRecord(e, len(full)-1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = UnmarshalRecord(trimmed, "r")
	if len(got.Trials[0].Reports) != 0 || len(got.Trials[1].Reports) != 1 || *got.Trials[0].Best != 1.5 {
		t.Errorf("trimmed: %s", trimmed)
	}
	if _, err := MarshalRecord(e, 100); !errors.Is(err, ErrRecordTooLarge) || !strings.Contains(err.Error(), "at most 100") {
		t.Errorf("too large: %v", err)
	}
	if _, err := UnmarshalRecord([]byte(`{"trials":[{"trial":"t0001","index":1}]}`), "rec X"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "rec X: trials[0]") {
		t.Errorf("bad record: %v", err)
	}
}

// Reports alone save the store at most every StoreEvery: 2,000 reports of
// one trial make a handful of saves (start, end, the run's first and
// last, some coalesced), not one each; the last holds the end.
func TestStoreSavesThrottled(t *testing.T) {
	store := &memStore{}
	cfg := Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 1, Dir: t.TempDir(), Store: store}
	if _, err := Run(context.Background(), cfg, quad(2000, nil)); err != nil {
		t.Fatal(err)
	}
	if store.saves < 1 || store.saves > 100 {
		t.Errorf("%d saves for 2,000 reports", store.saves)
	}
	rec, _ := store.Load(context.Background())
	if tr := rec.Trials[0]; tr.Status != Done || tr.Iterations != 2000 || len(tr.Reports) != 2000 {
		t.Errorf("the last record: %s at %d with %d reports", tr.Status, tr.Iterations, len(tr.Reports))
	}
}
