package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/sluicehq/sluice/cli"
	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/plans"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/tune"
	"github.com/sluicehq/sluice/tune/tunejob"
)

// Plan trials on a cluster (`sluice tune FILE --coordinators ADDRS` with a
// plan: section).
//
// Each trial is a plan job of the cluster, submitted as `sluice submit`
// submits a plan (relative paths made absolute against this directory)
// with the trial's params as the job's --param, out among them; the
// driver waits on the job's state through the API, cancels the job when
// the experiment stops (or is interrupted), and, once the job succeeded,
// reads the metrics row from the job's output through the storage
// package, as a local trial does: a local path the workers share or an
// s3:// URL. A failed job fails the trial with the job's error. The trial
// reports once, at its end, so a scheduler (ASHA, median) sees one report
// per trial and stops none midway; max_concurrent bounds the jobs at once.
//
// Each run of a trial writes the id of its job to DIR/trials/ID/jobs/run-N
// before it waits; a later run of the trial (after --resume of a driver
// that died) cancels the earlier runs' jobs that are still going.

// planJobs runs plan trials as jobs of a cluster.
type planJobs struct {
	dir   string // the experiment's Dir
	jobs  tunejob.Client
	needs tune.Resources
	// nonce makes each driver's submits its own; within one driver a
	// retried submit of a run is the same job.
	nonce    string
	poll     time.Duration
	progress io.Writer
}

// planClusterTrials is the trial function of a plan: section whose trials
// run on the cluster the flags name; the experiment's record, as name, is
// kept in the cluster's state.
func planClusterTrials(f *tune.File, cf *cli.Client, name string, cfg *tune.Config, progress io.Writer, noColumn func(error)) (tune.Func, error) {
	needs := tune.Resources{CPU: max(f.Tune.CPU, 1), GPU: f.Tune.GPU}
	if f.Tune.Memory != "" {
		var err error
		if needs.Memory, err = cli.ParseSize(f.Tune.Memory); err != nil {
			return nil, f.ErrorAt("tune.memory", err)
		}
	}
	if !storage.IsURL(cfg.Dir) {
		// The trials' outputs are under it: the workers write them.
		abs, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return nil, err
		}
		cfg.Dir = abs
	}
	cl, err := cf.Client()
	if err != nil {
		return nil, err
	}
	cfg.Store = tunejob.Store{API: cl, Name: name}
	var nonce [8]byte
	rand.Read(nonce[:])
	j := &planJobs{dir: cfg.Dir, jobs: tunejob.Client{API: cl}, needs: needs, nonce: hex.EncodeToString(nonce[:]), poll: 100 * time.Millisecond, progress: progress}
	return planTrials(f, cfg, progress, j, noColumn)
}

// outTemplate is the plan's template of the param out.
var outTemplate = regexp.MustCompile(`\{\{-?\s*\.Params\.out\s*-?\}\}`)

// runner is the planRunner of the plan file's trials: it reads the plan
// once, with its relative paths made absolute against this directory.
// When the trials' out is absolute (absOut: tune sets it, or the
// section's params give an absolute one), paths templated on it are left
// as they are.
func (j *planJobs) runner(file string, absOut bool) (planRunner, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	// A path templated on an absolute out needs no resolving (AbsPaths
	// refuses a relative path that starts with a template): it stands
	// aside while the others are resolved.
	const mark = "/sluice-tune-trial-out"
	var tmpl [][]byte
	if absOut {
		tmpl = outTemplate.FindAll(data, -1)
		data = outTemplate.ReplaceAll(data, []byte(mark))
	}
	data, _, err = plans.AbsPaths(file, data, wd)
	if err != nil {
		return nil, err
	}
	for _, t := range tmpl {
		data = bytes.Replace(data, []byte(mark), t, 1)
	}
	return func(ctx context.Context, t *tune.Trial, job *plans.Job, params map[string]string) (int64, time.Duration, error) {
		return j.run(ctx, t, file, string(data), job, params)
	}, nil
}

// run runs one trial's job and waits for it: the rows of its output and
// the job's time from submit to end.
func (j *planJobs) run(ctx context.Context, t *tune.Trial, file, plan string, job *plans.Job, params map[string]string) (int64, time.Duration, error) {
	fsys, err := storage.For(j.dir)
	if err != nil {
		return 0, 0, err
	}
	runs := storage.Join(j.dir, "trials", t.ID, "jobs")
	earlier, err := fsys.List(ctx, runs)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return 0, 0, err
	}
	j.cancelEarlier(ctx, t, fsys, earlier)
	n := len(earlier) + 1
	start := time.Now()
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", j.nonce, t.ID, n)))
	id, err := j.jobs.SubmitPlan(ctx, "tune-plan-"+hex.EncodeToString(sum[:12]), file, plan, params, j.needs)
	if err != nil {
		return 0, 0, fmt.Errorf("submitting its job: %w", err)
	}
	if err := writeSmall(ctx, fsys, storage.Join(runs, fmt.Sprintf("run-%d", n)), id+"\n"); err != nil {
		j.cancel(t, id)
		return 0, 0, err
	}
	if j.progress != nil {
		fmt.Fprintf(j.progress, "%s runs as job %s (out %s)\n", t.ID, id, job.Output())
	}
	if err := j.wait(ctx, id); err != nil {
		j.cancel(t, id) // stopped, interrupted or failing here: the job must not go on
		return 0, 0, err
	}
	wall := time.Since(start)
	var st api.JobStatus
	if err := j.jobs.API.Do(ctx, http.MethodGet, "/v1/jobs/"+id, nil, &st); err == nil && !st.Job.Finished.IsZero() {
		wall = st.Job.Finished.Sub(st.Job.Submitted) // the cluster's own times, not this driver's polls
	}
	rows, err := dataset.Read(job.Sink.Format, job.Output()).Count(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("job %s: reading its output %s: %w", id, job.Output(), err)
	}
	return rows, wall, nil
}

// wait polls the job's state until it ends: nil when it succeeded, its
// error when it failed or was cancelled. Coordinators failing over are
// waited through for a minute.
func (j *planJobs) wait(ctx context.Context, id string) error {
	var failing time.Time
	for {
		st, err := j.jobs.State(ctx, id)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil && failing.IsZero():
			failing = time.Now()
		case err != nil && time.Since(failing) > time.Minute:
			return fmt.Errorf("job %s: %w", id, err)
		case err == nil && st.Done && st.Succeeded:
			return nil
		case err == nil && st.Done:
			msg := st.Error
			if msg == "" {
				msg = st.State
			}
			return fmt.Errorf("job %s %s: %s", id, st.State, msg)
		case err == nil:
			failing = time.Time{}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(j.poll):
		}
	}
}

// cancel cancels a trial's job unless it has ended, past the experiment's
// own cancellation.
func (j *planJobs) cancel(t *tune.Trial, id string) {
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	if st, err := j.jobs.State(ctx, id); err == nil && st.Done {
		return
	}
	if err := j.jobs.Cancel(ctx, id); err != nil && j.progress != nil {
		fmt.Fprintf(j.progress, "%s: cancelling job %s: %v\n", t.ID, id, err)
	}
}

// cancelEarlier cancels the jobs of the trial's earlier runs that are
// still going: a driver that died left them running, and this run
// replaces them.
func (j *planJobs) cancelEarlier(ctx context.Context, t *tune.Trial, fsys storage.FS, runs []storage.FileInfo) {
	for _, r := range runs {
		b, err := storage.ReadFile(ctx, fsys, r.Path)
		id := strings.TrimSpace(string(b))
		if err != nil || id == "" {
			continue
		}
		if st, err := j.jobs.State(ctx, id); err == nil && !st.Done {
			err := j.jobs.Cancel(ctx, id)
			if j.progress != nil {
				fmt.Fprintf(j.progress, "%s: cancelling job %s of an earlier run (%s): %v\n", t.ID, id, r.Path, err)
			}
		}
	}
}

// writeSmall writes a small file of fsys.
func writeSmall(ctx context.Context, fsys storage.FS, path, text string) error {
	u, err := fsys.Create(ctx, path)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(u, text); err != nil {
		u.Close()
		u.Abort(ctx)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := u.Close(); err != nil {
		u.Abort(ctx)
		return fmt.Errorf("%s: %w", path, err)
	}
	return u.Commit(ctx)
}
