package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// failoverRun is one run of cluster/failover, in seconds.
type failoverRun struct {
	Undisturbed float64 `json:"undisturbed_s"` // the job without kills
	Killed      float64 `json:"killed_s"`      // the job with the kills, submit to success
	LeaderTask  float64 `json:"leader_kill_to_task_s"`
	WorkerTask  float64 `json:"worker_kill_to_task_s"` // -1: the job finished first
	WorkerDone  float64 `json:"worker_kill_to_job_done_s"`
	Reruns      int     `json:"tasks_rerun"` // tasks that ran more than once
}

// benchFailover is cluster/failover: the failover plan over FailoverRows
// rows on 3 coordinators and n workers, each run on a fresh cluster once
// undisturbed and once with the Raft leader, then a worker that holds
// work of the job, killed with SIGKILL mid-job. The figures are the
// seconds from each kill to the next task that succeeds (by the time the
// replicated state stamped its finish), and the output must equal the
// undisturbed run's.
func failover(ctx context.Context, stdout, stderr io.Writer, self string, f ClusterConfig, n int) error {
	data, err := salesData(ctx, stderr, self, f.Dir, f.FailoverRows, f.Files)
	if err != nil {
		return err
	}
	var runs []failoverRun
	for i := range f.Runs {
		r, err := failoverOnce(ctx, stderr, self, f, n, data, filepath.Join(f.Dir, "failover", fmt.Sprint("run", i+1)))
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, r)
	}
	med := func(get func(r failoverRun) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Fprintf(stdout, "cluster/failover: %d rows in %d files, 3 coordinators, %d workers of %d CPUs, worker timeout %s, %d runs\n",
		f.FailoverRows, f.Files, n, f.CPUPerWorker, f.WorkerTimeout, f.Runs)
	fmt.Fprintln(stdout, "outputs: after the kills, the same rows as the undisturbed run's, in every run")
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tundisturbed job\tjob with the kills\tleader kill → next task done\tworker kill → next task done\tworker kill → job done\ttasks run again")
	row := func(name string, r failoverRun) {
		wt := fmt.Sprintf("%.3fs", r.WorkerTask)
		if r.WorkerTask < 0 {
			wt = "(job done first)"
		}
		fmt.Fprintf(tw, "%s\t%.3fs\t%.3fs\t%.3fs\t%s\t%.3fs\t%d\n", name, r.Undisturbed, r.Killed, r.LeaderTask, wt, r.WorkerDone, r.Reruns)
	}
	for i, r := range runs {
		row(fmt.Sprint(i+1), r)
	}
	if len(runs) > 1 {
		row("median", failoverRun{Undisturbed: med(func(r failoverRun) float64 { return r.Undisturbed }),
			Killed:     med(func(r failoverRun) float64 { return r.Killed }),
			LeaderTask: med(func(r failoverRun) float64 { return r.LeaderTask }),
			WorkerTask: med(func(r failoverRun) float64 { return r.WorkerTask }),
			WorkerDone: med(func(r failoverRun) float64 { return r.WorkerDone }),
			Reruns:     int(med(func(r failoverRun) float64 { return float64(r.Reruns) }))})
	}
	tw.Flush()
	js, _ := json.Marshal(map[string]any{"rows": f.FailoverRows, "workers": n, "cpu_per_worker": f.CPUPerWorker, "runs": runs})
	fmt.Fprintf(stdout, "json: %s\n", js)
	return nil
}

func failoverOnce(ctx context.Context, stderr io.Writer, self string, f ClusterConfig, n int, data, work string) (r failoverRun, err error) {
	c, err := startCluster(ctx, stderr, self, filepath.Join(work, "cluster"), 3, n, f.CPUPerWorker, f.WorkerTimeout, f.SplitBytes)
	if err != nil {
		return r, err
	}
	defer c.stop()
	calm, hit := filepath.Join(work, "out-undisturbed"), filepath.Join(work, "out-killed")
	_, calmWall, err := c.runJob(ctx, "undisturbed", "failover.yaml", fmt.Sprintf(FailoverPlan, data, calm))
	if err != nil {
		return r, fmt.Errorf("the undisturbed run: %w", err)
	}
	r.Undisturbed = calmWall.Seconds()

	start := time.Now()
	id, err := c.submit(ctx, "killed", "failover.yaml", fmt.Sprintf(FailoverPlan, data, hit))
	if err != nil {
		return r, err
	}
	job := func() api.JobStatus { st, _ := c.job(ctx, id); return st }
	// pollFast polls every 5 ms: the figures are read off the replicated
	// state over HTTP, which has no change notification.
	pollFast := func(what string, ok func() bool) error {
		deadline := time.Now().Add(3 * time.Minute)
		for !ok() {
			if time.Now().After(deadline) {
				return fmt.Errorf("timed out waiting for %s (logs under %s)", what, filepath.Join(work, "cluster"))
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}
	// nextDone is the first task that succeeded after t, or zero.
	nextDone := func(st api.JobStatus, t time.Time) (first time.Time) {
		for _, tk := range st.Tasks {
			if tk.State == state.TaskSucceeded && tk.Updated.After(t) && (first.IsZero() || tk.Updated.Before(first)) {
				first = tk.Updated
			}
		}
		return first
	}
	var st api.JobStatus
	if err := pollFast("the job to run its stages", func() bool {
		st = job()
		return st.Job.State.Done() || len(st.Stages) > 2 && st.Stages[1].Running > 0
	}); err != nil {
		return r, err
	}
	if st.Job.State.Done() {
		return r, fmt.Errorf("the job ended (%s) before the leader could be killed: use more --failover-rows", st.Job.State)
	}
	leader := c.status(ctx).Leader
	i := slices.Index(c.ids, leader)
	if i < 0 {
		return r, fmt.Errorf("no leader to kill (status says %q)", leader)
	}
	killed := time.Now()
	c.coords[i].kill9()
	fmt.Fprintf(stderr, "failover: killed the leader %s at %s into the job\n", leader, killed.Sub(start).Round(time.Millisecond))
	var leaderNext time.Time
	if err := pollFast("a task done after the leader's kill", func() bool {
		st = job()
		leaderNext = nextDone(st, killed)
		return !leaderNext.IsZero()
	}); err != nil {
		return r, err
	}
	r.LeaderTask = leaderNext.Sub(killed).Seconds()
	// A worker that holds work of the job: a running task, or kept blocks.
	byID := map[string]*child{}
	for _, w := range c.workers {
		b, err := os.ReadFile(filepath.Join(w.dir, "worker-id"))
		if err != nil {
			return r, err
		}
		byID[strings.TrimSpace(string(b))] = w
	}
	var victim string
	for _, tk := range st.Tasks {
		if tk.Worker != "" && tk.Stage > 0 && tk.State != state.TaskFailed && byID[tk.Worker] != nil {
			victim = tk.Worker
			if tk.State == state.TaskRunning || tk.State == state.TaskAssigned {
				break // prefer one that is running a task now
			}
		}
	}
	if st.Job.State.Done() || victim == "" {
		return r, fmt.Errorf("the job ended (%s) before a worker could be killed: use more --failover-rows", st.Job.State)
	}
	wkilled := time.Now()
	byID[victim].kill9()
	fmt.Fprintf(stderr, "failover: killed worker %s at %s into the job\n", victim, wkilled.Sub(start).Round(time.Millisecond))
	var workerNext time.Time
	if err := pollFast("a task done after the worker's kill", func() bool {
		st = job()
		workerNext = nextDone(st, wkilled)
		return !workerNext.IsZero() || st.Job.State.Done()
	}); err != nil {
		return r, err
	}
	r.WorkerTask = -1
	if !workerNext.IsZero() {
		r.WorkerTask = workerNext.Sub(wkilled).Seconds()
	}
	if st, err = c.await(ctx, id, 5*time.Minute); err != nil {
		return r, err
	}
	r.Killed = time.Since(start).Seconds()
	r.WorkerDone = st.Job.Finished.Sub(wkilled).Seconds()
	for _, tk := range st.Tasks {
		if tk.Attempt > 1 {
			r.Reruns++
		}
	}
	if err := sameRows(ctx, hit, calm); err != nil {
		return r, fmt.Errorf("the output after the kills differs from the undisturbed run's: %w", err)
	}
	return r, nil
}
