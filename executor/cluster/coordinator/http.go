package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/common/expfmt"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/plans"
)

const forwardedHeader = "X-Sluice-Forwarded"

func (c *Coordinator) handler() http.Handler {
	mux := http.NewServeMux()
	w := c.leaderOnly
	mux.HandleFunc("POST /v1/jobs", w(c.submit))
	mux.HandleFunc("GET /v1/jobs", c.current(c.jobs))
	mux.HandleFunc("GET /v1/jobs/{id}", c.current(c.job))
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", w(c.cancelJob))
	mux.HandleFunc("GET /v1/schedules", c.current(c.schedules))
	mux.HandleFunc("DELETE /v1/schedules/{id}", w(c.unschedule))
	mux.HandleFunc("POST /v1/workers", w(c.register))
	mux.HandleFunc("POST /v1/workers/{id}/heartbeat", w(c.heartbeat))
	mux.HandleFunc("POST /v1/tasks/{id}/start", w(c.report(state.OpStart)))
	mux.HandleFunc("POST /v1/tasks/{id}/finish", w(c.report(state.OpFinish)))
	mux.HandleFunc("POST /v1/workers/{id}/reports", w(c.reports))
	mux.HandleFunc("POST /v1/workers/{id}/spec", w(c.spec))
	mux.HandleFunc("POST /v1/cluster/join", w(c.joinNode))
	mux.HandleFunc("POST /v1/cluster/remove", w(c.removeNode))
	mux.HandleFunc("POST /v1/cluster/promote", w(c.promoteNode))
	mux.HandleFunc("GET /v1/cluster", c.current(c.status))
	mux.HandleFunc("GET /v1/deployments", w(c.listDeployments))
	mux.HandleFunc("GET /v1/deployments/{name}", w(c.deployment))
	mux.HandleFunc("/v1/deployments/{name}/v1/", w(c.route))
	c.experimentRoutes(mux, w)
	mux.HandleFunc("GET /health", c.health)
	mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		leader := c.IsLeader()
		var err error
		now := c.cfg.Now().UTC()
		c.fsm.read(func(s *state.State) { err = c.met.write(rw, s, leader, c.met.deps.list(s, now, c.cfg.WorkerTimeout)) })
		if err != nil {
			c.log.Error("metrics", "err", err)
		}
	})
	return c.auth(mux)
}

// leaderOnly forwards a write to the leader when this node follows.
func (c *Coordinator) leaderOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if c.IsLeader() {
			h(rw, r)
			return
		}
		c.forward(rw, r)
	}
}

// current serves a read from this node's state once it has applied the
// log it restarted with, and while it hears from a leader (see stale);
// otherwise (a restarted follower catching up, a cut-off one) the leader
// answers, or, with no leader known, the call is refused with 503 so the
// client asks another coordinator.
func (c *Coordinator) current(h http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if _, stale := c.stale(); c.IsLeader() || !stale && c.raft.AppliedIndex() >= c.bootIndex {
			h(rw, r)
			return
		}
		c.forward(rw, r)
	}
}

// forward proxies a call to the leader, once (a forwarded call is never
// forwarded again).
func (c *Coordinator) forward(rw http.ResponseWriter, r *http.Request) {
	addr, err := c.leaderAPI()
	if err != nil || r.Header.Get(forwardedHeader) != "" {
		if err == nil {
			err = ErrNotLeader
		}
		writeError(rw, http.StatusServiceUnavailable, err)
		return
	}
	target := &url.URL{Scheme: c.scheme(), Host: addr}
	p := httputil.NewSingleHostReverseProxy(target)
	if c.cfg.ClientTLS != nil {
		p.Transport = &http.Transport{TLSClientConfig: c.cfg.ClientTLS, ForceAttemptHTTP2: true}
	}
	p.ErrorHandler = func(rw http.ResponseWriter, _ *http.Request, err error) {
		if _, big := errors.AsType[*http.MaxBytesError](err); big {
			// The body was over api.MaxBody: no coordinator takes it.
			writeError(rw, http.StatusRequestEntityTooLarge, fmt.Errorf("request body: %w (at most %d bytes)", err, api.MaxBody))
			return
		}
		writeError(rw, http.StatusBadGateway, fmt.Errorf("forwarding to the leader at %s: %w", addr, err))
	}
	r.Header.Set(forwardedHeader, c.cfg.NodeID)
	p.ServeHTTP(rw, r)
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	json.NewEncoder(rw).Encode(v)
}

// wireAnswer is an answer with a binary body (api/wire.go).
type wireAnswer interface {
	AppendWire([]byte) []byte
}

// reply writes v in binary to a caller that asks for it (a worker's
// Accept: api.ContentTypeBinary), else as JSON.
func reply(rw http.ResponseWriter, r *http.Request, v wireAnswer) {
	if r.Header.Get("Accept") != api.ContentTypeBinary {
		writeJSON(rw, http.StatusOK, v)
		return
	}
	rw.Header().Set("Content-Type", api.ContentTypeBinary)
	rw.WriteHeader(http.StatusOK)
	rw.Write(v.AppendWire(nil))
}

func writeError(rw http.ResponseWriter, code int, err error) {
	writeJSON(rw, code, api.ErrorResponse{Error: err.Error()})
}

func decode(rw http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("trailing data after the JSON value: send exactly one JSON object")
	}
	if err != nil {
		code := http.StatusBadRequest
		if _, big := errors.AsType[*http.MaxBytesError](err); big {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(rw, code, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

// applyOrFail applies cmd; when Raft could not (this node lost the lead,
// or the log failed) it writes the error and reports false.
func (c *Coordinator) applyOrFail(rw http.ResponseWriter, cmd state.Command) (state.Result, bool) {
	res, err := c.apply(cmd)
	switch {
	case errors.Is(err, ErrNotLeader):
		writeError(rw, http.StatusServiceUnavailable, err)
	case err != nil:
		writeError(rw, http.StatusInternalServerError, err)
	default:
		return res, true
	}
	return res, false
}

// propose applies cmd and writes the answer.
func (c *Coordinator) propose(rw http.ResponseWriter, cmd state.Command, kind string) {
	res, ok := c.applyOrFail(rw, cmd)
	switch {
	case !ok:
	case errors.Is(res.Err, state.ErrStale), errors.Is(res.Err, state.ErrFinished):
		writeError(rw, http.StatusConflict, res.Err)
	case errors.Is(res.Err, state.ErrUnknownJob), errors.Is(res.Err, state.ErrUnknownTask), errors.Is(res.Err, state.ErrUnknownWorker):
		writeError(rw, http.StatusNotFound, res.Err)
	case res.Err != nil:
		writeError(rw, http.StatusBadRequest, res.Err)
	default:
		writeJSON(rw, http.StatusOK, api.IDResponse{ID: res.Value, Kind: kind})
	}
}

func (c *Coordinator) submit(rw http.ResponseWriter, r *http.Request) {
	var req api.SubmitRequest
	if !decode(rw, r, &req) {
		return
	}
	if req.File == "" {
		req.File = "plan.yaml"
	}
	// The same checks as `sluice validate` that need no data: the plan's
	// structure, its templates and its params. The worker checks the data.
	p, lints := plans.Parse(req.File, []byte(req.Plan))
	if err := lints.Err(); err != nil {
		writeError(rw, http.StatusBadRequest, err)
		return
	}
	// The workers read env (what their operator allows); the coordinator
	// never reads its own environment for a plan: its credentials would
	// end up in the answer or the stored state.
	noEnv := func(string) (string, bool) { return "", false }
	if _, err := p.Render(plans.Vars{Params: req.Params, LookupEnv: noEnv, EnvAllow: []string{"*"}}); err != nil {
		writeError(rw, http.StatusBadRequest, err)
		return
	}
	if req.MaxRetries < 0 {
		writeError(rw, http.StatusBadRequest, fmt.Errorf("max_retries (%d) must not be negative", req.MaxRetries))
		return
	}
	cmd := state.Command{RequestID: req.RequestID, Needs: req.Needs, Locality: req.Locality}
	if p.Schedule != nil {
		cmd.Op = state.OpSchedule
		cmd.Schedule = &state.Schedule{Name: p.Name, File: req.File, Plan: []byte(req.Plan), Params: req.Params,
			Cron: p.Schedule.Cron, TimeZone: p.Schedule.TimeZone, CatchUp: p.Schedule.CatchUp, MaxRetries: req.MaxRetries,
			Needs: req.Needs, Locality: req.Locality}
		c.propose(rw, cmd, "schedule")
		return
	}
	cmd.Op = state.OpSubmit
	cmd.Job = &state.Job{Name: p.Name, File: req.File, Plan: []byte(req.Plan), Params: req.Params, MaxRetries: req.MaxRetries,
		ScheduledTime: req.ScheduledTime, RunID: req.RunID}
	c.propose(rw, cmd, "job")
}

func (c *Coordinator) jobs(rw http.ResponseWriter, r *http.Request) {
	var out []state.Job
	c.fsm.read(func(s *state.State) {
		for _, id := range slices.Sorted(maps.Keys(s.Jobs)) {
			j := *s.Jobs[id]
			j.Plan = nil
			out = append(out, j)
		}
	})
	writeJSON(rw, http.StatusOK, out)
}

// schedules lists the registered schedules, without their plans.
func (c *Coordinator) schedules(rw http.ResponseWriter, r *http.Request) {
	out := []state.Schedule{}
	c.fsm.read(func(s *state.State) {
		for _, id := range slices.Sorted(maps.Keys(s.Schedules)) {
			sc := *s.Schedules[id]
			sc.Plan = nil
			out = append(out, sc)
		}
	})
	writeJSON(rw, http.StatusOK, out)
}

// unschedule removes a schedule, named by its id or by its plan's name
// when one schedule has it; the jobs it made stay.
func (c *Coordinator) unschedule(rw http.ResponseWriter, r *http.Request) {
	key := r.PathValue("id")
	var ids []string
	c.fsm.read(func(s *state.State) {
		if s.Schedules[key] != nil {
			ids = []string{key}
			return
		}
		for _, id := range slices.Sorted(maps.Keys(s.Schedules)) {
			if s.Schedules[id].Name == key {
				ids = append(ids, id)
			}
		}
	})
	switch len(ids) {
	case 0:
		writeError(rw, http.StatusNotFound, fmt.Errorf("no schedule with the id or name %q (sluice schedule list shows them)", key))
		return
	case 1:
	default:
		writeError(rw, http.StatusConflict, fmt.Errorf("%d schedules are named %q (%v): remove one by its id", len(ids), key, ids))
		return
	}
	c.propose(rw, state.Command{Op: state.OpUnschedule, ID: ids[0]}, "schedule")
}

func (c *Coordinator) job(rw http.ResponseWriter, r *http.Request) {
	var out *api.JobStatus
	c.fsm.read(func(s *state.State) {
		j := s.Jobs[r.PathValue("id")]
		if j == nil {
			return
		}
		out = &api.JobStatus{Job: *j, Stages: progress(s, j, c.cfg.Now().UTC())}
		for _, id := range j.Tasks {
			out.Tasks = append(out.Tasks, *s.Tasks[id])
		}
	})
	if out == nil && !c.IsLeader() && r.Header.Get(forwardedHeader) == "" {
		// Submitted through another node and not replicated here yet.
		c.forward(rw, r)
		return
	}
	if out == nil {
		writeError(rw, http.StatusNotFound, fmt.Errorf("%w: %s", state.ErrUnknownJob, r.PathValue("id")))
		return
	}
	writeJSON(rw, http.StatusOK, out)
}

func (c *Coordinator) cancelJob(rw http.ResponseWriter, r *http.Request) {
	c.propose(rw, state.Command{Op: state.OpCancel, ID: r.PathValue("id")}, "job")
}

func (c *Coordinator) heartbeat(rw http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	// The body (empty from a worker that runs no replica) carries the
	// worker's serving replicas, kept in memory (deployments.go).
	var req api.HeartbeatRequest
	body, err := io.ReadAll(r.Body)
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeError(rw, http.StatusBadRequest, fmt.Errorf("heartbeat body: %w", err))
		return
	}
	// A heartbeat reaches the log only when the replicated one is getting
	// old (a quarter of the worker timeout): the others only fetch the
	// worker's assignments, and cost no Raft entry.
	now := c.cfg.Now().UTC()
	fresh := false
	c.fsm.read(func(s *state.State) {
		w := s.Workers[id]
		fresh = w != nil && w.Alive && now.Sub(w.LastHeartbeat) < c.cfg.WorkerTimeout/4
	})
	if !fresh {
		res, ok := c.applyOrFail(rw, state.Command{Op: state.OpHeartbeat, ID: id, At: now})
		if !ok {
			return
		}
		if res.Err != nil {
			writeError(rw, http.StatusNotFound, res.Err) // the worker registers again
			return
		}
	}
	c.met.deps.report(id, now, req.Replicas)
	// With ?wait=D&known=DIGEST the answer waits up to D (at most
	// api.MaxHeartbeatWait) while the worker's assignments are still the
	// ones it knows, so a task reaches its worker as soon as it is
	// assigned rather than at the next heartbeat.
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	wait = min(max(wait, 0), api.MaxHeartbeatWait)
	known := r.URL.Query().Get("known")
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	var out api.HeartbeatResponse
	for {
		out = api.HeartbeatResponse{Tasks: []api.Assignment{}}
		changed := c.fsm.readWatch(func(s *state.State) {
			for _, t := range s.TasksOf(id) {
				out.Tasks = append(out.Tasks, assignment(s, &c.specs, t))
			}
			out.Free = freeable(s, now)
		})
		if wait == 0 || known == "" || api.Digest(out.Tasks) != known {
			break
		}
		select {
		case <-changed:
			continue
		case <-timeout.C:
		case <-r.Context().Done():
			return
		}
		break
	}
	reply(rw, r, out)
}

// spec answers a job's spec, which a worker fetches once per job (and
// once more after planning) and keeps by its hash.
func (c *Coordinator) spec(rw http.ResponseWriter, r *http.Request) {
	var req api.SpecRequest
	if !decode(rw, r, &req) {
		return
	}
	var out *api.JobSpec
	c.fsm.read(func(s *state.State) {
		if j := s.Jobs[req.Job]; j != nil {
			sp := spec(j)
			out = &sp
		}
	})
	if out == nil {
		writeError(rw, http.StatusNotFound, fmt.Errorf("%w: %s", state.ErrUnknownJob, req.Job))
		return
	}
	writeJSON(rw, http.StatusOK, out)
}

func (c *Coordinator) report(op state.Op) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		var req api.TaskReport
		if !decode(rw, r, &req) {
			return
		}
		if who := callerOf(r); req.Worker != who.worker {
			writeError(rw, http.StatusForbidden, fmt.Errorf("%w: worker %s's credential cannot report as worker %q", errForbidden, who.worker, req.Worker))
			return
		}
		c.propose(rw, req.Command(op, r.PathValue("id")), "task")
	}
}

// reports applies a worker's batch of task reports as one Raft entry,
// with the assignments they make room for.
func (c *Coordinator) reports(rw http.ResponseWriter, r *http.Request) {
	var req api.ReportBatch
	if r.Header.Get("Content-Type") == api.ContentTypeBinary {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = req.ReadWire(body)
		}
		if err != nil {
			code := http.StatusBadRequest
			if _, big := errors.AsType[*http.MaxBytesError](err); big {
				code = http.StatusRequestEntityTooLarge
			}
			writeError(rw, code, fmt.Errorf("request body: %w", err))
			return
		}
	} else if !decode(rw, r, &req) {
		return
	}
	if len(req.Reports) == 0 || len(req.Reports) > api.MaxReports {
		writeError(rw, http.StatusBadRequest, fmt.Errorf("reports: want 1 to %d reports, got %d", api.MaxReports, len(req.Reports)))
		return
	}
	worker := r.PathValue("id")
	batch := make([]state.Command, len(req.Reports))
	for i, rep := range req.Reports {
		op := state.Op(rep.Phase)
		if (op != state.OpStart && op != state.OpFinish) || rep.Task == "" || rep.Worker != worker {
			writeError(rw, http.StatusBadRequest, fmt.Errorf("reports[%d]: want phase start or finish, a task, and worker %s", i, worker))
			return
		}
		batch[i] = rep.Command(op, rep.Task)
	}
	// The slots the batch frees are filled in the same entry (Assign).
	res, ok := c.applyOrFail(rw, state.Command{Op: state.OpBatch, Batch: batch, Assign: true})
	if !ok {
		return
	}
	c.kick()
	out := api.ReportBatchResponse{Results: make([]api.ReportResult, len(batch))}
	for i, b := range res.Batch {
		out.Results[i].Task = batch[i].ID
		if b.Err != nil {
			out.Results[i].Error = b.Err.Error()
			out.Results[i].Stale = errors.Is(b.Err, state.ErrStale) || errors.Is(b.Err, state.ErrUnknownTask) || errors.Is(b.Err, state.ErrUnknownWorker)
		}
	}
	reply(rw, r, out)
}

func (c *Coordinator) removeNode(rw http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if !decode(rw, r, &req) {
		return
	}
	if err := c.raft.RemoveServer(raft.ServerID(req.ID), 0, c.cfg.ApplyTimeout).Error(); err != nil {
		writeError(rw, http.StatusServiceUnavailable, fmt.Errorf("remove %s: %w", req.ID, err))
		return
	}
	c.propose(rw, state.Command{Op: state.OpRemove, ID: req.ID}, "node")
}

// Status is the cluster as this node sees it.
func (c *Coordinator) Status() api.ClusterStatus {
	_, leader := c.raft.LeaderWithID()
	term, _ := strconv.ParseUint(c.raft.Stats()["term"], 10, 64)
	out := api.ClusterStatus{Node: c.cfg.NodeID, Leader: string(leader), Term: term, Tasks: map[string]int{}}
	var servers []raft.Server
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		servers = f.Configuration().Servers
	}
	c.fsm.read(func(s *state.State) {
		for _, sv := range servers {
			n := api.NodeStatus{ID: string(sv.ID), RaftAddr: string(sv.Address), Suffrage: sv.Suffrage.String(), Leader: sv.ID == leader}
			if sn := s.Nodes[string(sv.ID)]; sn != nil {
				n.APIAddr = sn.APIAddr
			}
			out.Nodes = append(out.Nodes, n)
		}
		for _, id := range slices.Sorted(maps.Keys(s.Workers)) {
			out.Workers = append(out.Workers, api.WorkerStatus{Worker: *s.Workers[id], Free: s.Free(id), Tasks: len(s.TasksOf(id))})
		}
		for st, n := range s.Counts() {
			out.Tasks[string(st)] = n
		}
	})
	return out
}

func (c *Coordinator) status(rw http.ResponseWriter, r *http.Request) {
	writeJSON(rw, http.StatusOK, c.Status())
}
