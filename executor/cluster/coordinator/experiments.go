package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Tune experiments' records (api's experiments.go lists the routes): the
// driver of an experiment (`sluice tune --coordinators`) writes its whole
// record through the log as trials start, end and checkpoint, so that a
// driver that died resumes from the cluster. Writes and the read of one
// record go to the leader, which answers the read once it has applied
// every entry before it (a Raft barrier): a resume must not read a record
// older than the last write, as a follower's or a fresh leader's may be.
// The list is served by a current node. The token or the cluster secret
// may call them, not a worker's credential (auth.go's default).

// experimentRoutes registers the routes; w is leaderOnly.
func (c *Coordinator) experimentRoutes(mux *http.ServeMux, w func(http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("PUT /v1/experiments/{name}", w(c.putExperiment))
	mux.HandleFunc("GET /v1/experiments/{name}", w(c.experiment))
	mux.HandleFunc("GET /v1/experiments", c.current(c.experiments))
	mux.HandleFunc("DELETE /v1/experiments/{name}", w(c.deleteExperiment))
}

func (c *Coordinator) putExperiment(rw http.ResponseWriter, r *http.Request) {
	var rec json.RawMessage
	if !decode(rw, r, &rec) {
		return
	}
	name := r.PathValue("name")
	c.proposeExperiment(rw, &state.Experiment{Name: name, Record: rec})
}

func (c *Coordinator) deleteExperiment(rw http.ResponseWriter, r *http.Request) {
	c.proposeExperiment(rw, &state.Experiment{Name: r.PathValue("name"), Delete: true})
}

// proposeExperiment applies an OpExperiment and answers the record's
// version.
func (c *Coordinator) proposeExperiment(rw http.ResponseWriter, e *state.Experiment) {
	res, ok := c.applyOrFail(rw, state.Command{Op: state.OpExperiment, Experiment: e})
	switch {
	case !ok:
		return
	case errors.Is(res.Err, state.ErrUnknownExperiment):
		writeError(rw, http.StatusNotFound, fmt.Errorf("%w (sluice tune status --coordinators lists none by that name)", res.Err))
		return
	case errors.Is(res.Err, state.ErrExperimentTooLarge):
		writeError(rw, http.StatusRequestEntityTooLarge, res.Err)
		return
	case res.Err != nil:
		writeError(rw, http.StatusBadRequest, res.Err)
		return
	}
	out := api.ExperimentSaved{Name: e.Name}
	c.fsm.read(func(s *state.State) {
		if x := s.Experiments[e.Name]; x != nil {
			out.Version = x.Version
		}
	})
	writeJSON(rw, http.StatusOK, out)
}

func (c *Coordinator) experiment(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := c.raft.Barrier(c.cfg.ApplyTimeout).Error(); err != nil {
		// Not the leader any more, or the log failed: the client asks another.
		writeError(rw, http.StatusServiceUnavailable, fmt.Errorf("reading experiment %q: %w", name, err))
		return
	}
	var out *state.Experiment
	c.fsm.read(func(s *state.State) {
		if e := s.Experiments[name]; e != nil {
			cp := *e
			out = &cp
		}
	})
	if out == nil {
		writeError(rw, http.StatusNotFound, fmt.Errorf("%w: %q", state.ErrUnknownExperiment, name))
		return
	}
	writeJSON(rw, http.StatusOK, out)
}

// experiments lists the experiments without their records.
func (c *Coordinator) experiments(rw http.ResponseWriter, r *http.Request) {
	out := []state.Experiment{}
	c.fsm.read(func(s *state.State) {
		for _, name := range slices.Sorted(maps.Keys(s.Experiments)) {
			e := *s.Experiments[name]
			e.Record = nil
			out = append(out, e)
		}
	})
	writeJSON(rw, http.StatusOK, out)
}
