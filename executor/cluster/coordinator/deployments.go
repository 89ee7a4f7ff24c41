package coordinator

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// deployments are the serving replicas that the workers' heartbeats
// report (api.HeartbeatRequest), kept in the leader's memory only: a
// replica's load changes every second and matters only while it is fresh,
// so it never enters the Raft log. A new leader learns them with each
// worker's next heartbeat. A worker's report replaces its last one; the
// replicas of a worker that is dead, or has not heartbeated for a worker
// timeout, are left out.
type deployments struct {
	mu       sync.Mutex
	byWorker map[string]workerReplicas
}

type workerReplicas struct {
	at   time.Time
	reps []api.Replica
}

// report records worker's replicas as of at.
func (d *deployments) report(worker string, at time.Time, reps []api.Replica) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byWorker == nil {
		d.byWorker = map[string]workerReplicas{}
	}
	if len(reps) == 0 {
		delete(d.byWorker, worker)
		return
	}
	for i := range reps {
		reps[i].Worker, reps[i].Reported = worker, at
	}
	d.byWorker[worker] = workerReplicas{at: at, reps: reps}
}

// list returns the deployments of the replicas that live workers reported
// within timeout of now and of the replica jobs not done (named
// api.DeploymentJobPrefix+NAME), sorted by name, each one's replicas and
// jobs by id.
func (d *deployments) list(s *state.State, now time.Time, timeout time.Duration) []api.Deployment {
	d.mu.Lock()
	defer d.mu.Unlock()
	by := map[string]*api.Deployment{}
	get := func(name string) *api.Deployment {
		if by[name] == nil {
			by[name] = &api.Deployment{Name: name, Replicas: []api.Replica{}, Jobs: []api.DeploymentJob{}}
		}
		return by[name]
	}
	for id, wr := range d.byWorker {
		if w := s.Workers[id]; w == nil || !w.Alive || now.Sub(wr.at) > timeout {
			continue
		}
		for _, r := range wr.reps {
			dep := get(r.Deployment)
			dep.Replicas = append(dep.Replicas, r)
		}
	}
	for _, j := range s.Jobs {
		if name, ok := strings.CutPrefix(j.Name, api.DeploymentJobPrefix); ok && !j.State.Done() {
			dep := get(name)
			dep.Jobs = append(dep.Jobs, api.DeploymentJob{ID: j.ID, State: j.State, Submitted: j.Submitted})
		}
	}
	out := []api.Deployment{}
	for _, name := range slices.Sorted(maps.Keys(by)) {
		dep := by[name]
		slices.SortFunc(dep.Replicas, func(a, b api.Replica) int { return cmp.Compare(a.ID, b.ID) })
		slices.SortFunc(dep.Jobs, func(a, b api.DeploymentJob) int { return cmp.Compare(a.ID, b.ID) })
		out = append(out, *dep)
	}
	return out
}

func (c *Coordinator) deploymentList() []api.Deployment {
	var out []api.Deployment
	now := c.cfg.Now().UTC()
	c.fsm.read(func(s *state.State) { out = c.met.deps.list(s, now, c.cfg.WorkerTimeout) })
	return out
}

// listDeployments answers GET /v1/deployments (on the leader: only it
// hears the heartbeats).
func (c *Coordinator) listDeployments(rw http.ResponseWriter, r *http.Request) {
	writeJSON(rw, http.StatusOK, c.deploymentList())
}

// deployment answers GET /v1/deployments/{name}; a deployment with no
// live replica and no replica job is not found.
func (c *Coordinator) deployment(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	for _, d := range c.deploymentList() {
		if d.Name == name {
			writeJSON(rw, http.StatusOK, d)
			return
		}
	}
	writeError(rw, http.StatusNotFound, fmt.Errorf("deployment %q has no replica job running and no replica reported by a live worker (sluice serve --coordinators creates one)", name))
}
