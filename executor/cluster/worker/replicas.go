package worker

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// ErrNoWorker: Announce was called outside a task a worker runs.
var ErrNoWorker = errors.New("worker: not in a task of a worker (Announce needs the context a worker gives its task)")

// Task is what a running task knows of where it runs, from its context.
type Task struct {
	Worker string // the worker's id
	Addr   string // the worker's advertised host:port (its block server)
	Job    string // the task's job
	ID     string // the task
	// Needs is what the task holds of its worker; GPUs is how many the
	// worker has (Config.Resources.GPU), numbered from 0.
	Needs state.Resources
	GPUs  int
}

type taskKey struct{}

type taskInfo struct {
	w *Worker
	t Task
}

// TaskOf returns the worker and job of the task whose context ctx is (or
// derives from); ok is false outside a worker's task.
func TaskOf(ctx context.Context) (Task, bool) {
	ti, ok := ctx.Value(taskKey{}).(taskInfo)
	return ti.t, ok
}

// replicaSet is a worker's serving replicas, which its heartbeats carry.
type replicaSet struct {
	mu   sync.Mutex
	reps map[string]api.Replica // by id
}

func (s *replicaSet) list() []api.Replica {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]api.Replica, 0, len(s.reps))
	for _, id := range slices.Sorted(maps.Keys(s.reps)) {
		out = append(out, s.reps[id])
	}
	return out
}

// Announce adds a serving replica to the heartbeats of the worker that
// runs the task of ctx, with the task's job id as the replica's id. The
// replica calls load with its requests running and waiting as they change
// and done when it stops serving (it is also left out once the task ends).
func Announce(ctx context.Context, deployment, url string) (load func(running, waiting int), done func(), err error) {
	ti, ok := ctx.Value(taskKey{}).(taskInfo)
	if !ok {
		return nil, nil, ErrNoWorker
	}
	s, id := &ti.w.replicas, ti.t.Job
	s.mu.Lock()
	if s.reps == nil {
		s.reps = map[string]api.Replica{}
	}
	s.reps[id] = api.Replica{Deployment: deployment, ID: id, URL: url}
	s.mu.Unlock()
	var once sync.Once
	done = func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.reps, id)
			s.mu.Unlock()
		})
	}
	load = func(running, waiting int) {
		s.mu.Lock()
		if r, ok := s.reps[id]; ok {
			r.Running, r.Waiting = running, waiting
			s.reps[id] = r
		}
		s.mu.Unlock()
	}
	context.AfterFunc(ctx, done)
	return load, done, nil
}
