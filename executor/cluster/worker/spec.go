package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/dist"
)

// specCache keeps the job specs this worker fetched, by hash: a job's plan
// and layout cross the wire once per job and worker (twice: before and
// after planning), not with every task, and the layout is decoded once.
type specCache struct {
	mu    sync.Mutex
	specs map[string]*specEntry
	order []string // oldest first
}

type specEntry struct {
	ready chan struct{} // closed once spec or err is set
	spec  *api.JobSpec
	err   error

	layoutOnce sync.Once
	layout     *dist.Layout
	layoutErr  error
}

// cachedSpecs is how many specs a worker keeps (a few jobs, each before
// and after planning).
const cachedSpecs = 16

// get is the spec named by a's hash, fetched by fetch when not cached (the
// tasks that want it meanwhile wait for the one fetch).
func (c *specCache) get(ctx context.Context, a api.Assignment, fetch func(context.Context, string) (*api.JobSpec, error)) (*specEntry, error) {
	c.mu.Lock()
	e := c.specs[a.Spec]
	if e == nil {
		e = &specEntry{ready: make(chan struct{})}
		if c.specs == nil {
			c.specs = map[string]*specEntry{}
		}
		c.specs[a.Spec] = e
		c.order = append(c.order, a.Spec)
		if len(c.order) > cachedSpecs {
			delete(c.specs, c.order[0])
			c.order = c.order[1:]
		}
		c.mu.Unlock()
		e.spec, e.err = fetch(ctx, a.Task.Job)
		if e.err == nil && e.spec.Hash != a.Spec {
			e.err = fmt.Errorf("worker: task %s names spec %s of job %s, the coordinators answered spec %s", a.Task.ID, a.Spec, a.Task.Job, e.spec.Hash)
		}
		if e.err != nil {
			c.mu.Lock()
			if c.specs[a.Spec] == e { // the next task fetches again
				delete(c.specs, a.Spec)
			}
			c.mu.Unlock()
		}
		close(e.ready)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return e, e.err
}

// decoded is the entry's layout, decoded once.
func (e *specEntry) decoded(show func(string) string) (*dist.Layout, error) {
	e.layoutOnce.Do(func() {
		var l dist.Layout
		if err := json.Unmarshal(e.spec.Layout, &l); err != nil {
			e.layoutErr = fmt.Errorf("worker: job %s: layout: %w", e.spec.Job, err)
			return
		}
		l.Rewrite(show) // this worker's env values where the layout has ${env:NAME}
		e.layout = &l
	})
	return e.layout, e.layoutErr
}

// fetchSpec asks the coordinators for job's spec.
func (w *Worker) fetchSpec(ctx context.Context, job string) (*api.JobSpec, error) {
	var sp api.JobSpec
	if err := w.cl.Do(ctx, http.MethodPost, "/v1/workers/"+w.id+"/spec", api.SpecRequest{Job: job}, &sp); err != nil {
		return nil, fmt.Errorf("worker: the spec of job %s: %w", job, err)
	}
	return &sp, nil
}
