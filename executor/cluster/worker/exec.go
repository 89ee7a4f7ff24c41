package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/blocks"
	"github.com/sluicehq/sluice/executor/cluster/dist"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/commit"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/plans"
	"github.com/sluicehq/sluice/storage"
)

// Outcome is what a task's attempt produced, beyond success.
type Outcome struct {
	Rows, Bytes int64
	Layout      []byte        // a planning task's layout
	Stages      []state.Stage // and the stages it makes
	Lost        []string      // producer tasks whose output could not be fetched
	Output      []string      // files a commit task published
	// Staged is a sink task's staging directory: removed again when the
	// coordinators refuse the attempt's finish (another attempt won).
	Staged string
}

// compiled is a job's plan compiled once per worker: the stages of a job
// that run here share it, so a stateful step (a model) loads once.
type compiled struct {
	job  *plans.Job
	root plan.Node // optimized, the write at its root
	// refs hide the values of the environment variables the plan reads
	// (this worker's, under its --env-allow) in all the task hands on:
	// the layout, stage names, errors, output paths. The cluster stores
	// and shows ${env:NAME}; each worker shows its own values again.
	refs *plans.EnvRefs
}

// jobCache keeps the compiled plans of the last few jobs.
type jobCache struct {
	envAllow []string // Config.EnvAllow
	mu       sync.Mutex
	order    []string
	jobs     map[string]*compiled
}

const cachedJobs = 4

// compiles counts the plans compiled (parsed) here, for tests: once per
// job and worker.
var compiles atomic.Int64

func (c *jobCache) get(a api.Assignment) (*compiled, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := c.jobs[a.Task.Job]; j != nil {
		return j, nil
	}
	sp := a.Job
	if sp == nil {
		return nil, fmt.Errorf("worker: task %s: no job spec", a.Task.ID)
	}
	compiles.Add(1)
	p, lints := plans.Parse(sp.File, []byte(sp.Plan))
	if err := lints.Err(); err != nil {
		return nil, err
	}
	vars := plans.Vars{Params: sp.Params, ScheduledTime: sp.ScheduledTime, RunID: sp.RunID,
		EnvAllow: c.envAllow} // the operator's, never the plan's
	refs := plans.NewEnvRefs(p, vars)
	job, err := plans.Compile(p, vars)
	if err != nil {
		return nil, hidden(refs, err)
	}
	root, err := plan.Optimize(job.Sink)
	if err != nil {
		return nil, hidden(refs, err)
	}
	if c.jobs == nil {
		c.jobs = map[string]*compiled{}
	}
	if len(c.order) >= cachedJobs {
		delete(c.jobs, c.order[0])
		c.order = c.order[1:]
	}
	j := &compiled{job: job, root: root, refs: refs}
	c.jobs[a.Task.Job] = j
	c.order = append(c.order, a.Task.Job)
	return j, nil
}

// refs are the env references of a job compiled here, or nil.
func (c *jobCache) refs(job string) *plans.EnvRefs {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := c.jobs[job]; j != nil {
		return j.refs
	}
	return nil
}

// hiddenError is an error whose text has the plan's env values hidden.
type hiddenError struct {
	msg string
	err error
}

func (e *hiddenError) Error() string { return e.msg }
func (e *hiddenError) Unwrap() error { return e.err }

func hidden(refs *plans.EnvRefs, err error) error {
	if err == nil {
		return nil
	}
	if msg := refs.Hide(err.Error()); msg != err.Error() {
		return &hiddenError{msg: msg, err: err}
	}
	return err
}

// execute runs one task of a plan job: its planning, one task of its
// layout, or its commit.
func (w *Worker) execute(ctx context.Context, a api.Assignment) (Outcome, error) {
	if d := w.cfg.TaskDelay; d > 0 && a.Kind == state.StageExec {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
	}
	switch a.Kind {
	case state.StagePlan:
		return w.planJob(ctx, a)
	case state.StageExec:
		return w.runStage(ctx, a)
	case state.StageCommit:
		return w.commit(ctx, a)
	}
	return Outcome{}, fmt.Errorf("task %s: unknown stage kind %q", a.Task.ID, a.Kind)
}

// planJob lays the plan out into stages sized to the cluster.
func (w *Worker) planJob(ctx context.Context, a api.Assignment) (Outcome, error) {
	c, err := w.jobs.get(a)
	if err != nil {
		return Outcome{}, err
	}
	// Refused before any work: mode error over files, an overwrite of
	// files no _SUCCESS lists, a destination overlapping a source.
	if c.job.Sink != nil {
		fs, err := storage.For(c.job.Sink.Path)
		if err != nil {
			return Outcome{}, err
		}
		if err := commit.Check(ctx, fs, c.job.Sink.Path, c.job.Sink.Mode, c.root); err != nil {
			return Outcome{}, err
		}
		// The operator's --allowed-paths (sluice worker sets it).
		if err := commit.CheckAllowed(c.job.Sink.Path, w.cfg.AllowedPaths); err != nil {
			return Outcome{}, err
		}
	}
	opts := dist.DefaultOptions()
	opts.Partitions = max(1, a.CPUs)
	opts.MinTasks = a.CPUs
	if w.cfg.SplitBytes > 0 {
		opts.SplitBytes = w.cfg.SplitBytes
	}
	l, err := dist.PlanContext(ctx, c.root, opts)
	if err != nil {
		return Outcome{}, err
	}
	// What leaves this worker carries ${env:NAME}, never the value.
	l.Rewrite(c.refs.Hide)
	out := Outcome{}
	if out.Layout, err = json.Marshal(l); err != nil {
		return Outcome{}, err
	}
	for _, s := range l.Stages {
		st := state.Stage{Name: s.Name, Tasks: s.Tasks, Blocks: !s.Sink, Stateful: s.Stateful}
		if a.GPUs > 0 {
			// On GPU workers only when there are some; else on CPUs.
			st.Needs.GPU = s.GPU
		}
		if st.Blocks {
			st.MaxInFlight = 2 * opts.Partitions
		}
		for _, in := range s.Inputs {
			st.Inputs = append(st.Inputs, state.StageInput{Stage: in.Stage, All: in.Mode != dist.ModeOne})
		}
		out.Stages = append(out.Stages, st)
	}
	return out, nil
}

// runStage runs one task of the layout: its inputs fetched from the
// workers that made them, its output kept here (or staged, in the sink).
func (w *Worker) runStage(ctx context.Context, a api.Assignment) (Outcome, error) {
	if w.store == nil {
		return Outcome{}, errors.New("worker: no block server (start the worker with --addr)")
	}
	c, err := w.jobs.get(a)
	if err != nil {
		return Outcome{}, err
	}
	e, err := w.specs.get(ctx, a, w.fetchSpec)
	if err != nil {
		return Outcome{}, err
	}
	lp, err := e.decoded(c.refs.Show)
	if err != nil {
		return Outcome{}, err
	}
	l := *lp // shared by the job's tasks here: read only
	spec := dist.TaskSpec{Job: a.Task.Job, Stage: state.LayoutStage(a.Task.Stage), Task: a.Task.Index, Attempt: a.Task.Attempt}
	// dist wants every producer of an input stage by task index; a
	// one-to-one input names only the one this task reads.
	producer := map[string]string{} // block id prefix "job/sS/tT/aA" → producer task id
	byStage := map[int][]dist.Producer{}
	var order []int
	var missing []string
	for _, in := range a.Inputs {
		si := state.LayoutStage(in.Stage)
		if si < 0 || si >= len(l.Stages) {
			return Outcome{}, fmt.Errorf("worker: task %s reads stage %d, which the layout does not have", a.Task.ID, in.Stage)
		}
		ps, ok := byStage[si]
		if !ok {
			ps = make([]dist.Producer, l.Stages[si].Tasks)
			for i := range ps {
				ps[i].Task = i
			}
			order = append(order, si)
		}
		for _, p := range in.Producers {
			if p.Missing {
				missing = append(missing, p.ID)
				continue
			}
			if p.Index < 0 || p.Index >= len(ps) {
				return Outcome{}, fmt.Errorf("worker: task %s: producer %s has index %d of %d", a.Task.ID, p.ID, p.Index, len(ps))
			}
			ps[p.Index] = dist.Producer{Task: p.Index, Attempt: p.Attempt, Addr: p.Addr}
			producer[path.Dir(dist.SampleID(a.Task.Job, si, p.Index, p.Attempt))] = p.ID
		}
		byStage[si] = ps
	}
	if len(missing) > 0 {
		return Outcome{Lost: missing}, fmt.Errorf("worker: task %s: the output of %s is gone; it runs again first", a.Task.ID, strings.Join(missing, ", "))
	}
	for _, si := range order {
		spec.Inputs = append(spec.Inputs, dist.StageInput{Stage: si, Producers: byStage[si]})
	}
	var mu sync.Mutex
	var lost []string
	env := dist.Env{
		Fetch: func(ctx context.Context, addr, id string) (*arrow.Schema, []arrow.RecordBatch, error) {
			sch, recs, err := w.fetch(ctx, addr, id)
			if errors.Is(err, blocks.ErrNotFound) || errors.Is(err, blocks.ErrUnreachable) {
				mu.Lock()
				if p := producer[path.Dir(id)]; p != "" {
					lost = append(lost, p)
				}
				mu.Unlock()
			}
			return sch, recs, err
		},
		Put:   w.store.Put,
		Local: local.DefaultConfig(), // dist.Run runs a task on one goroutine: the worker's CPUs each take a task
	}
	var staged string
	if si := spec.Stage; si >= 0 && si < len(l.Stages) && l.Stages[si].Sink && c.job.Sink != nil {
		staged = commit.AttemptDir(c.job.Sink.Path, a.Task.Job, a.Task.Index, a.Task.Attempt)
	}
	res, err := dist.Run(ctx, c.root, &l, spec, env)
	if err != nil {
		return Outcome{Lost: lost, Staged: staged}, err
	}
	return Outcome{Rows: res.Rows, Bytes: res.Bytes, Staged: staged}, nil
}

// discard removes the files a sink attempt staged that can no longer be
// published: the coordinators refused its finish, or took the task away
// before it reported. The commit removes the job's whole staging
// directory, but an attempt that outlived its lease (a worker declared
// dead while it ran on) may write after that.
func (w *Worker) discard(ctx context.Context, a api.Assignment, dir string) {
	fs, err := storage.For(dir)
	if err == nil {
		err = commit.RemoveDir(ctx, fs, dir, path.Dir(dir), path.Dir(path.Dir(dir))) // and the job's, then the staging root, when empty
	}
	if err != nil {
		w.log.Warn("removing a stale attempt's staged files", "task", a.Task.ID, "attempt", a.Task.Attempt, "dir", dir, "err", err)
		return
	}
	w.log.Info("removed a stale attempt's staged files", "task", a.Task.ID, "attempt", a.Task.Attempt, "dir", dir)
}

// fetch reads a block: from this worker's own store when it made it.
func (w *Worker) fetch(ctx context.Context, addr, id string) (*arrow.Schema, []arrow.RecordBatch, error) {
	if addr == w.cfg.Addr {
		return w.store.Get(id)
	}
	return w.flight.Fetch(ctx, addr, id)
}

// commit publishes the files of the sink tasks' winning attempts (or, for
// a failed job, removes every staged file), and says which it published.
func (w *Worker) commit(ctx context.Context, a api.Assignment) (Outcome, error) {
	c, err := w.jobs.get(a)
	if err != nil {
		return Outcome{}, err
	}
	sink := c.job.Sink
	fs, err := storage.For(sink.Path)
	if err != nil {
		return Outcome{}, err
	}
	if a.Failing {
		return Outcome{}, commit.RemoveStaging(ctx, fs, sink.Path, a.Task.Job)
	}
	if data, err := storage.ReadFile(ctx, fs, storage.Join(sink.Path, commit.ManifestName)); err == nil {
		var m commit.Manifest
		if json.Unmarshal(data, &m) == nil && m.JobID == a.Task.Job {
			// Published by an earlier attempt, which stopped before its report.
			out := Outcome{Rows: m.Rows}
			for _, f := range m.Files {
				out.Output = append(out.Output, f.Path)
			}
			return out, commit.RemoveStaging(ctx, fs, sink.Path, a.Task.Job)
		}
	}
	if len(a.Inputs) != 1 {
		return Outcome{}, fmt.Errorf("worker: commit task %s has %d inputs, want the sink stage", a.Task.ID, len(a.Inputs))
	}
	var files []commit.StagedFile
	err = a.Inputs[0].Each(func(index, attempt int) error {
		dir := commit.AttemptDir(sink.Path, a.Task.Job, index, attempt)
		data, err := storage.ReadFile(ctx, fs, storage.Join(dir, commit.ManifestName))
		if err != nil {
			return fmt.Errorf("worker: commit: the files of the sink stage's task %d attempt %d: %w", index, attempt, err)
		}
		var m commit.Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("worker: commit: %s: %w", storage.Join(dir, commit.ManifestName), err)
		}
		for _, f := range m.Files {
			rel := strings.TrimPrefix(strings.TrimPrefix(f.Path, dir), "/")
			if rel == f.Path {
				rel = path.Base(f.Path)
			}
			// The task's index first, so the files sort in task order.
			d, base := path.Split(rel)
			to := storage.Join(sink.Path, d+fmt.Sprintf("part-%05d-%s", index, strings.TrimPrefix(base, "part-")))
			files = append(files, commit.StagedFile{From: f.Path, To: to, Rows: f.Rows, Bytes: f.Bytes})
		}
		return nil
	})
	if err != nil {
		return Outcome{}, err
	}
	m, err := commit.Publish(ctx, fs, sink.Path, sink.Mode, a.Task.Job, files)
	if err != nil {
		return Outcome{}, err
	}
	if err := commit.RemoveStaging(ctx, fs, sink.Path, a.Task.Job); err != nil {
		return Outcome{}, err
	}
	out := Outcome{Rows: m.Rows}
	for _, f := range files {
		out.Output = append(out.Output, f.To)
		out.Bytes += f.Bytes
	}
	return out, nil
}
