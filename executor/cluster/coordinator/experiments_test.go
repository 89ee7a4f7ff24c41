package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// TestExperimentRoutes: three coordinators; a record written through a
// follower is on every node, read back from each, listed without its
// record, replaced (the version counts), refused when it is not an object
// or too large, refused to a worker's credential and without a token,
// removed, and 404 after.
func TestExperimentRoutes(t *testing.T) {
	h := start(t, 3)
	l := h.leader()
	ctx := context.Background()
	var follower *Coordinator
	for _, c := range h.nodes {
		if c != l {
			follower = c
		}
	}
	fcl := api.NewClient([]string{follower.URL()}, token)
	rec := json.RawMessage(`{"metric":"loss","trials":[{"trial":"t0000","status":"running","iterations":3}]}`)
	if v, err := fcl.PutExperiment(ctx, "grid/1", rec); err != nil || v != 1 {
		t.Fatalf("put through a follower: version %d, %v", v, err)
	}
	for _, c := range h.nodes {
		h.waitFor("the record on every node", func() bool {
			var e *state.Experiment
			c.Read(func(s *state.State) { e = s.Experiments["grid/1"] })
			return e != nil && string(e.Record) == string(rec)
		})
		e, err := api.NewClient([]string{c.URL()}, token).Experiment(ctx, "grid/1")
		if err != nil || e.Name != "grid/1" || e.Version != 1 || string(e.Record) != string(rec) {
			t.Fatalf("read from %s: %+v, %v", c.cfg.NodeID, e, err)
		}
	}
	rec2 := json.RawMessage(`{"metric":"loss","trials":[{"trial":"t0000","status":"done","iterations":5}]}`)
	cl := h.client()
	if v, err := cl.PutExperiment(ctx, "grid/1", rec2); err != nil || v != 2 {
		t.Fatalf("replace: version %d, %v", v, err)
	}
	if _, err := cl.PutExperiment(ctx, "other", rec); err != nil {
		t.Fatal(err)
	}
	var err error
	var list []state.Experiment
	h.waitFor("both records on the follower", func() bool {
		list, err = fcl.Experiments(ctx)
		return err != nil || len(list) == 2
	})
	if err != nil || len(list) != 2 || list[0].Name != "grid/1" || list[0].Version != 2 || list[1].Name != "other" || list[0].Record != nil {
		t.Fatalf("list: %+v, %v", list, err)
	}
	// Refusals name the problem and change nothing.
	for _, c := range []struct {
		body any
		want string
	}{
		{json.RawMessage(`[1]`), "not a JSON object"},
		{json.RawMessage(`{"x":"` + strings.Repeat("a", state.MaxExperimentBytes) + `"}`), "at most 1048576"},
	} {
		err := cl.Do(ctx, http.MethodPut, "/v1/experiments/grid%2F1", c.body, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("put %.20s...: %v, want an error containing %q", c.body, err, c.want)
		}
	}
	if e, err := cl.Experiment(ctx, "grid/1"); err != nil || e.Version != 2 || string(e.Record) != string(rec2) {
		t.Fatalf("after refusals: %+v, %v", e, err)
	}
	wcl := api.NewClient(h.urls(), WorkerCredential(secret, "w1"))
	if _, err := wcl.Experiment(ctx, "grid/1"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a worker's credential read a record: %v", err)
	}
	if _, err := api.NewClient(h.urls(), "wrong").Experiments(ctx); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("a wrong token listed the records: %v", err)
	}
	if err := fcl.DeleteExperiment(ctx, "grid/1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.nodes {
		h.waitFor("the record removed on every node", func() bool {
			n := -1
			c.Read(func(s *state.State) { n = len(s.Experiments) })
			return n == 1
		})
	}
	if _, err := cl.Experiment(ctx, "grid/1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("read after removal: %v, want ErrNotFound", err)
	}
	if err := cl.DeleteExperiment(ctx, "grid/1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("removing it again: %v, want ErrNotFound", err)
	}
}
