package coordinator

import (
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// assignment is task t with what its worker needs to run it: its job's
// spec by hash (the plan and layout are fetched once per job, not sent
// with every task), and where the outputs of its input stages are.
func assignment(s *state.State, specs *specCache, t *state.Task) api.Assignment {
	j := s.Jobs[t.Job]
	st, _ := j.StageOf(t)
	a := api.Assignment{Task: *t, Spec: specs.hash(j), StageTasks: st.Tasks, Kind: st.Kind, Failing: j.Failing}
	switch st.Kind {
	case state.StagePlan:
		for _, w := range s.Workers {
			if w.Alive {
				a.Workers++
				a.CPUs += w.Resources.CPU
				a.GPUs += w.Resources.GPU
			}
		}
	case state.StageCommit:
		a.Inputs = specs.commitInputs(s, j, st, t)
	case state.StageExec:
		for _, in := range st.Inputs {
			ai := api.Input{Stage: in.Stage}
			for i := range j.Stages[in.Stage].Tasks {
				if !in.All && i != t.Index {
					continue
				}
				p := s.Tasks[j.TaskAt(in.Stage, i)]
				pr := api.Producer{ID: p.ID, Index: p.Index, Attempt: p.Attempt}
				if w := s.Workers[p.Worker]; w != nil && p.State == state.TaskSucceeded {
					pr.Addr = w.Addr
				} else {
					// Sent back to run again since the task was assigned:
					// the task reports it lost and waits for it.
					pr.Missing = true
				}
				ai.Producers = append(ai.Producers, pr)
			}
			a.Inputs = append(a.Inputs, ai)
		}
	}
	return a
}

// freeAfter is how long the blocks of a finished job are still named in
// heartbeats for workers to drop (one that missed them all drops them when
// it restarts: the block store starts empty).
const freeAfter = 10 * time.Minute

// freeable are the prefixes of block ids that no task needs: those of jobs
// finished lately, and of stages every reader of which succeeded.
func freeable(s *state.State, now time.Time) []string {
	var out []string
	for _, j := range s.Jobs {
		if len(j.Stages) < 2 {
			continue
		}
		if j.State.Done() {
			if now.Sub(j.Finished) < freeAfter {
				out = append(out, j.ID+"/")
			}
			continue
		}
		for si, st := range j.Stages {
			if !st.Blocks || !consumed(s, j, si) {
				continue
			}
			// Block ids count stages after the planning stage (see dist.BlockID).
			out = append(out, fmt.Sprintf("%s/s%d/", j.ID, si-1))
		}
	}
	return out
}

// consumed reports whether every task reading stage si succeeded.
func consumed(s *state.State, j *state.Job, si int) bool {
	for ci, c := range j.Stages {
		for _, in := range c.Inputs {
			if in.Stage != si {
				continue
			}
			for i := range c.Tasks {
				if s.Tasks[j.TaskAt(ci, i)].State != state.TaskSucceeded {
					return false
				}
			}
		}
	}
	return true
}

// progress is each stage's progress.
func progress(s *state.State, j *state.Job, now time.Time) []api.StageProgress {
	out := make([]api.StageProgress, len(j.Stages))
	first := make([]time.Time, len(j.Stages))
	last := make([]time.Time, len(j.Stages))
	for i, st := range j.Stages {
		out[i] = api.StageProgress{Name: st.Name, Kind: st.Kind, Tasks: st.Tasks}
	}
	for _, id := range j.Tasks {
		t := s.Tasks[id]
		p := &out[t.Stage]
		switch t.State {
		case state.TaskSucceeded:
			p.Succeeded++
			p.Rows += t.Rows
			p.Bytes += t.Bytes
		case state.TaskAssigned, state.TaskRunning:
			p.Running++
		case state.TaskFailed:
			p.Failed++
		}
		if !t.Assigned.IsZero() && (first[t.Stage].IsZero() || t.Assigned.Before(first[t.Stage])) {
			first[t.Stage] = t.Assigned
		}
		if t.Updated.After(last[t.Stage]) {
			last[t.Stage] = t.Updated
		}
	}
	for i := range out {
		end := last[i]
		if out[i].Succeeded < out[i].Tasks && !j.State.Done() {
			end = now
		}
		if d := end.Sub(first[i]).Seconds(); !first[i].IsZero() && d > 0 {
			out[i].RowsPerSec = float64(out[i].Rows) / d
		}
	}
	return out
}

// spec is job j's spec (its plan, what renders it, its layout).
func spec(j *state.Job) api.JobSpec {
	sp := api.JobSpec{Job: j.ID, File: j.File, Plan: string(j.Plan), Params: j.Params, ScheduledTime: j.ScheduledTime,
		RunID: j.RunID, Layout: j.Layout}
	if sp.ScheduledTime.IsZero() {
		// Every task of the job renders the plan alike.
		sp.ScheduledTime = j.Submitted
	}
	sp.Hash = api.SpecHash(sp)
	return sp
}

// specCache keeps each job's spec hash, so a heartbeat names a task's
// spec without hashing the plan again. A job's spec changes once, when
// its planning task reports the layout; the entry is keyed by the
// layout's length to see that.
type specCache struct {
	mu   sync.Mutex
	jobs map[string]specEntry
	// commits are the inputs of commit tasks' assignments, by task: a
	// heartbeat answer of the commit task's worker is made at each change
	// of the state while it runs, and its input is every task of the sink
	// stage (a million at most), walked once per attempt instead.
	commits map[string]commitEntry
}

// commitEntry is a commit task's inputs at one attempt, while its job had
// succeeded tasks succeeded (a producer sent back to run again changes
// it).
type commitEntry struct {
	attempt, succeeded int
	inputs             []api.Input
}

// maxCommits bounds specCache.commits (emptied when full).
const maxCommits = 256

// commitInputs are commit task t's inputs: the producers of the stages it
// reads (the sink stage) as runs of one attempt, their output being in
// storage.
func (c *specCache) commitInputs(s *state.State, j *state.Job, st *state.Stage, t *state.Task) []api.Input {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.commits[t.ID]; ok && e.attempt == t.Attempt && e.succeeded == j.Succeeded {
		return e.inputs
	}
	var out []api.Input
	for _, in := range st.Inputs {
		ai := api.Input{Stage: in.Stage, Producers: []api.Producer{}}
		for i := range j.Stages[in.Stage].Tasks {
			if !in.All && i != t.Index {
				continue
			}
			p := s.Tasks[j.TaskAt(in.Stage, i)]
			if n := len(ai.Runs); n > 0 && ai.Runs[n-1].Attempt == p.Attempt && ai.Runs[n-1].Index+ai.Runs[n-1].Count == p.Index {
				ai.Runs[n-1].Count++
				continue
			}
			ai.Runs = append(ai.Runs, api.ProducerRun{Index: p.Index, Count: 1, Attempt: p.Attempt})
		}
		out = append(out, ai)
	}
	if c.commits == nil || len(c.commits) >= maxCommits {
		c.commits = map[string]commitEntry{}
	}
	c.commits[t.ID] = commitEntry{attempt: t.Attempt, succeeded: j.Succeeded, inputs: out}
	return out
}

type specEntry struct {
	layout int
	hash   string
}

func (c *specCache) hash(j *state.Job) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.jobs[j.ID]; ok && e.layout == len(j.Layout) {
		return e.hash
	}
	if c.jobs == nil {
		c.jobs = map[string]specEntry{}
	}
	h := spec(j).Hash
	c.jobs[j.ID] = specEntry{layout: len(j.Layout), hash: h}
	return h
}
