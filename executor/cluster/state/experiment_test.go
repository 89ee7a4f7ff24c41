package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestExperimentApplySnapshot(t *testing.T) {
	s := New()
	rec := json.RawMessage(`{"metric":"loss","trials":[{"trial":"t0000","status":"done","iterations":3}]}`)
	mustApply(t, s, Command{Op: OpExperiment, At: at(1), Experiment: &Experiment{Name: "e1", Record: rec}})
	rec2 := json.RawMessage(`{"metric":"loss","trials":[{"trial":"t0000","status":"done","iterations":4}]}`)
	mustApply(t, s, Command{Op: OpExperiment, At: at(2), Experiment: &Experiment{Name: "e1", Record: rec2}})
	mustApply(t, s, Command{Op: OpExperiment, At: at(2), Experiment: &Experiment{Name: "e2", Record: rec}})
	e := s.Experiments["e1"]
	if e == nil || e.Version != 2 || !e.Updated.Equal(at(2)) || string(e.Record) != string(rec2) {
		t.Fatalf("e1 = %+v", e)
	}
	// Bad records change nothing.
	big := `{"x":"` + strings.Repeat("a", MaxExperimentBytes) + `"}`
	for _, c := range []struct {
		e    *Experiment
		want error
		msg  string
	}{
		{nil, ErrBadCommand, "without a record"},
		{&Experiment{Record: rec}, ErrBadCommand, `name ""`},
		{&Experiment{Name: "e1", Record: json.RawMessage(big)}, ErrExperimentTooLarge, "at most 1048576"},
		{&Experiment{Name: "e1", Record: json.RawMessage(`[1]`)}, ErrBadCommand, "not a JSON object"},
	} {
		r := s.Apply(Command{Op: OpExperiment, At: at(3), Experiment: c.e})
		if !errors.Is(r.Err, c.want) || !strings.Contains(r.Err.Error(), c.msg) {
			t.Errorf("%+v: got %v, want %v containing %q", c.e, r.Err, c.want, c.msg)
		}
	}
	if s.Experiments["e1"].Version != 2 {
		t.Fatalf("a refused record changed e1: %+v", s.Experiments["e1"])
	}
	// Through the log's encoding and a snapshot.
	dec, err := Decode(Command{Op: OpExperiment, At: at(4), Experiment: &Experiment{Name: "e3", Record: rec}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, dec)
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Experiments) != 3 {
		t.Fatalf("restored %d experiments, want 3", len(r.Experiments))
	}
	for name, want := range s.Experiments {
		got := r.Experiments[name]
		if got == nil || got.Version != want.Version || !got.Updated.Equal(want.Updated) || string(got.Record) != string(want.Record) {
			t.Errorf("restored %s = %+v, want %+v", name, got, want)
		}
	}
	// Removal, through the log's encoding; an unknown name is refused.
	dec, err = Decode(Command{Op: OpExperiment, At: at(5), Experiment: &Experiment{Name: "e2", Delete: true}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, dec)
	if s.Experiments["e2"] != nil || len(s.Experiments) != 2 {
		t.Fatalf("e2 not removed: %v", s.Experiments)
	}
	if r := s.Apply(Command{Op: OpExperiment, At: at(5), Experiment: &Experiment{Name: "e2", Delete: true}}); !errors.Is(r.Err, ErrUnknownExperiment) {
		t.Errorf("removing e2 twice: %v, want ErrUnknownExperiment", r.Err)
	}
	// A snapshot from before experiments existed restores with none.
	old, err := Restore(strings.NewReader(`{"jobs":{}}`))
	if err != nil || old.Experiments == nil {
		t.Fatalf("old snapshot: %v, experiments %v", err, old.Experiments)
	}
}
