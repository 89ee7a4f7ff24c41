package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// The etl/sales-10m queries as plan files: the same as etlQueries (bench
// etl), written in YAML. %[1]s is the input directory, %[2]s the output.
var clusterPlans = map[string]string{
	"q1": `name: sales-q1
read:
  parquet: %[1]s/
steps:
  - filter: "price > 50 AND category IN ('c1','c7','c9')"
  - with_column: {name: revenue, expr: "price * qty"}
  - with_column: {name: note, expr: "lower(note)"}
  - select: [id, user_id, revenue, note]
write:
  parquet: %[2]s/
  mode: overwrite
`,
	"q2": `name: sales-q2
read:
  parquet: %[1]s/
steps:
  - with_column: {name: revenue, expr: "price * qty"}
  - group_by:
      keys: [category]
      aggs:
        - {fn: count, as: n}
        - {fn: sum, column: revenue, as: revenue}
        - {fn: mean, column: price, as: avg_price}
        - {fn: min, column: ts, as: min_ts}
        - {fn: max, column: ts, as: max_ts}
write:
  parquet: %[2]s/
  mode: overwrite
`,
	"q3": `name: sales-q3
read:
  parquet: %[1]s/
steps:
  - with_column: {name: revenue, expr: "price * qty"}
  - sort: [{column: revenue, descending: true}]
  - limit: 1000
write:
  parquet: %[2]s/
  mode: overwrite
`,
}

// failoverPlan is cluster/failover's plan: the chaos test's (scan, filter,
// group-by, sort), so that every kind of exchange is in flight at a kill.
const failoverPlan = `name: failover
read:
  parquet: %[1]s/
steps:
  - filter: "price > 20"
  - with_column: {name: revenue, expr: "price * qty"}
  - group_by:
      keys: [user_id]
      aggs:
        - {fn: count, as: sales}
        - {fn: sum, column: revenue, as: revenue}
        - {fn: min, column: price, as: min_price}
        - {fn: max, column: qty, as: max_qty}
  - sort: [{column: user_id}]
write:
  parquet: %[2]s/
  mode: overwrite
`

// benchClusterFlags are the flags of `bench cluster`.
type benchClusterFlags struct {
	workers       string
	rows          int64
	files, runs   int
	cpu           int
	dir, queries  string
	failover      bool
	failoverRows  int64
	workerTimeout time.Duration
	splitBytes    int64
}

func init() {
	var f benchClusterFlags
	register(&command{
		name:    "bench cluster",
		summary: "run etl/sales-10m on a loopback cluster of 1, 2, 4 workers against the local executor (--failover: cluster/failover)",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&f.workers, "workers", "1,2,4", "worker counts to measure, comma-separated")
			fs.Int64Var(&f.rows, "rows", 10_000_000, "rows of generated data")
			fs.IntVar(&f.files, "files", 8, "files of generated data")
			fs.IntVar(&f.runs, "runs", 3, "runs per query, worker count and side (the median is reported)")
			fs.IntVar(&f.cpu, "cpu-per-worker", 0, "CPUs each worker offers and may use (GOMAXPROCS) (default: all CPUs / the largest worker count, at least 1)")
			fs.StringVar(&f.dir, "dir", ".cache/bench", "working directory for data, outputs and the cluster's files")
			fs.StringVar(&f.queries, "queries", "q1,q2,q3", "queries to run, comma-separated")
			fs.BoolVar(&f.failover, "failover", false, "run cluster/failover instead: 3 coordinators, the largest worker count; kill -9 the leader, then a worker, mid-job")
			fs.Int64Var(&f.failoverRows, "failover-rows", 1_000_000, "rows of cluster/failover's data")
			fs.DurationVar(&f.workerTimeout, "worker-timeout", 5*time.Second, "the coordinators' --worker-timeout")
			fs.Func("split-bytes", "input `SIZE` per scan task of the layout, e.g. 40MiB (default: the worker's: 256 MiB, and at least one task per CPU of the cluster); passed to the workers' --split-bytes", func(v string) error {
				n, err := parseSize(v)
				f.splitBytes = n
				return err
			})
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return errUsage
			}
			return benchCluster(ctx, e, f)
		},
	})
}

func benchCluster(ctx context.Context, e *env, f benchClusterFlags) error {
	var counts []int
	for _, s := range strings.Split(f.workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--workers %q: want positive counts separated by commas", f.workers)
		}
		counts = append(counts, n)
	}
	var queries []string
	for _, q := range strings.Split(f.queries, ",") {
		q = strings.TrimSpace(q)
		if clusterPlans[q] == "" {
			return fmt.Errorf("--queries: unknown query %q (want q1, q2, q3)", q)
		}
		queries = append(queries, q)
	}
	if f.runs < 1 {
		return fmt.Errorf("--runs (%d) must be at least 1", f.runs)
	}
	if f.cpu <= 0 {
		f.cpu = max(1, runtime.NumCPU()/slices.Max(counts))
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if f.dir, err = filepath.Abs(f.dir); err != nil {
		return err
	}
	if f.failover {
		return benchFailover(ctx, e, self, f, slices.Max(counts))
	}
	data, err := salesData(ctx, e, self, f.dir, f.rows, f.files)
	if err != nil {
		return err
	}
	work := filepath.Join(f.dir, "cluster")
	planFile := func(q, out string) (string, string, error) {
		text := fmt.Sprintf(clusterPlans[q], data, out)
		p := filepath.Join(work, filepath.Base(out)+".yaml")
		return p, text, os.WriteFile(p, []byte(text), 0o644)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	// The local runs print their operator tables: kept apart.
	localLog, err := os.Create(filepath.Join(work, "local-runs.log"))
	if err != nil {
		return err
	}
	defer localLog.Close()

	type stageTime struct {
		Name    string    `json:"name"`
		Tasks   int       `json:"tasks"`
		Seconds float64   `json:"s"`
		TaskS   []float64 `json:"task_s"` // each task's assignment to finish
	}
	type result struct {
		Query   string      `json:"query"`
		Workers int         `json:"workers"`
		CPU     int         `json:"cpu_per_worker"`
		Cluster float64     `json:"cluster_s"`
		Local   float64     `json:"local_s"`
		Speedup float64     `json:"speedup"` // local / cluster
		Stages  []stageTime `json:"stages"`  // of the cluster's median run
	}
	var results []result
	for _, n := range counts {
		c, err := startCluster(ctx, e, self, filepath.Join(work, fmt.Sprintf("w%d", n)), 1, n, f.cpu, f.workerTimeout, f.splitBytes)
		if err != nil {
			return err
		}
		for _, q := range queries {
			localOut := filepath.Join(work, "out-local-"+q)
			clusterOut := filepath.Join(work, fmt.Sprintf("out-cluster-%s-w%d", q, n))
			localPlan, _, err := planFile(q, localOut)
			if err != nil {
				c.stop()
				return err
			}
			_, text, err := planFile(q, clusterOut)
			if err != nil {
				c.stop()
				return err
			}
			var lr, cr []benchRun
			var js []api.JobStatus
			for i := range f.runs {
				// Alternate which side goes first, so neither always meets a warm cache.
				order := []func() error{
					func() error {
						st, wall, err := c.runJob(ctx, fmt.Sprintf("%s-w%d-r%d", q, n, i), q+".yaml", text)
						cr, js = append(cr, benchRun{wall: wall}), append(js, st)
						return err
					},
					func() error {
						r, err := timeCmd(ctx, localLog, self, "run", localPlan)
						lr = append(lr, r)
						return err
					},
				}
				if i%2 == 1 {
					order[0], order[1] = order[1], order[0]
				}
				for _, run := range order {
					if err := run(); err != nil {
						c.stop()
						return fmt.Errorf("%s on %d workers: %w (logs under %s)", q, n, err, work)
					}
				}
			}
			if err := sameRows(ctx, clusterOut, localOut); err != nil {
				c.stop()
				return fmt.Errorf("%s on %d workers: the cluster and the local executor disagree: %w", q, n, err)
			}
			cm, lm := median(cr), median(lr)
			r := result{Query: q, Workers: n, CPU: f.cpu, Cluster: cm.wall.Seconds(), Local: lm.wall.Seconds(),
				Speedup: lm.wall.Seconds() / cm.wall.Seconds()}
			for i, run := range cr {
				if run.wall != cm.wall {
					continue
				}
				for _, s := range stageSpans(js[i]) {
					r.Stages = append(r.Stages, stageTime{Name: s.name, Tasks: s.tasks, Seconds: s.span.Seconds(), TaskS: s.taskS})
				}
				break
			}
			results = append(results, r)
			fmt.Fprintf(e.stderr, "%s on %d workers: cluster %.3fs, local %.3fs\n", q, n, r.Cluster, r.Local)
		}
		c.stop()
	}
	split := "the worker's default split size"
	if f.splitBytes > 0 {
		split = fmt.Sprintf("--split-bytes %d", f.splitBytes)
	}
	fmt.Fprintf(e.stdout, "etl/sales on the cluster: %d rows in %d files, 1 coordinator (throughput needs no more; failover runs 3), "+
		"workers of %d CPU each (GOMAXPROCS too), %s, machine of %d CPUs; local executor in a child process with all CPUs\n",
		f.rows, f.files, f.cpu, split, runtime.NumCPU())
	fmt.Fprintln(e.stdout, "outputs: the same rows from the cluster and the local executor for every query and worker count")
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "query\tworkers\tcluster (median of %d)\tlocal (median of %d)\tspeed-up local/cluster\tstages of the median cluster run (tasks, first assignment to last finish)\n", f.runs, f.runs)
	for _, r := range results {
		var st []string
		for _, s := range r.Stages {
			st = append(st, fmt.Sprintf("%s %d×%.2fs", s.Name, s.Tasks, s.Seconds))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3fs\t%.3fs\t%.2f\t%s\n", r.Query, r.Workers, r.Cluster, r.Local, r.Speedup, strings.Join(st, " | "))
	}
	tw.Flush()
	js, _ := json.Marshal(results)
	fmt.Fprintf(e.stdout, "json: %s\n", js)
	return nil
}

// span is how long one stage of a job ran.
type span struct {
	name  string
	tasks int
	span  time.Duration // first assignment to last finish
	taskS []float64     // each succeeded task's assignment to finish, in seconds
}

// stageSpans reads each stage's span off a finished job's tasks, with a
// short name: the first word of each operator ("Scan→Filter→hash").
func stageSpans(st api.JobStatus) []span {
	out := make([]span, len(st.Job.Stages))
	first := make([]time.Time, len(out))
	last := make([]time.Time, len(out))
	for i, s := range st.Job.Stages {
		out[i] = span{name: shortStage(s), tasks: s.Tasks}
	}
	for _, t := range st.Tasks {
		if t.Stage < 0 || t.Stage >= len(out) {
			continue
		}
		if !t.Assigned.IsZero() && (first[t.Stage].IsZero() || t.Assigned.Before(first[t.Stage])) {
			first[t.Stage] = t.Assigned
		}
		if t.State == state.TaskSucceeded && t.Updated.After(last[t.Stage]) {
			last[t.Stage] = t.Updated
		}
		if t.State == state.TaskSucceeded && !t.Assigned.IsZero() {
			out[t.Stage].taskS = append(out[t.Stage].taskS, math.Round(t.Updated.Sub(t.Assigned).Seconds()*1000)/1000)
		}
	}
	for i := range out {
		if !first[i].IsZero() && last[i].After(first[i]) {
			out[i].span = last[i].Sub(first[i])
		}
	}
	return out
}

func shortStage(s state.Stage) string {
	switch s.Kind {
	case state.StagePlan, state.StageCommit:
		return string(s.Kind)
	}
	var words []string
	for _, op := range strings.Split(s.Name, "->") {
		if w := strings.Fields(op); len(w) > 0 {
			words = append(words, w[0])
		}
	}
	if len(words) == 0 {
		return s.Name
	}
	return strings.Join(words, "→")
}

// child is a sluice process of a benchmark's cluster.
type child struct {
	cmd  *exec.Cmd
	log  string
	dir  string // its --data-dir
	done chan struct{}
}

func startChild(self, dir, log string, extraEnv []string, args ...string) (*child, error) {
	lf, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	c := &child{cmd: exec.Command(self, args...), log: log, dir: dir, done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), extraEnv...)
	c.cmd.Stdout, c.cmd.Stderr = lf, lf
	if err := c.cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	go func() { c.cmd.Wait(); lf.Close(); close(c.done) }()
	return c, nil
}

// stop ends the child with SIGTERM (a clean shutdown), then SIGKILL.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// kill9 kills the child with SIGKILL: no shutdown, nothing flushed.
func (c *child) kill9() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// tail is the end of the child's log, for errors.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// cluster is coordinators and workers started from this binary on loopback.
type cluster struct {
	coords  []*child
	ids     []string // the coordinators' node ids
	workers []*child
	cl      *api.Client
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startCluster starts coords coordinators and workers workers of cpu CPUs
// under a fresh dir and waits until the first leads and every worker is
// registered.
func startCluster(ctx context.Context, e *env, self, dir string, coords, workers, cpu int, workerTimeout time.Duration, splitBytes int64) (c *cluster, err error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var key [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	token := fmt.Sprintf("%x", key)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return nil, err
	}
	c = &cluster{}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	var urls []string
	for i := range coords {
		id := fmt.Sprint("n", i+1)
		raft, err1 := freeAddr()
		apiAddr, err2 := freeAddr()
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		a := []string{"coordinator", "--node-id", id, "--data-dir", filepath.Join(dir, id), "--raft-addr", raft,
			"--api-addr", apiAddr, "--token-file", tokenFile, "--worker-timeout", workerTimeout.String()}
		if i == 0 {
			a = append(a, "--bootstrap")
		} else {
			a = append(a, "--join", "http://"+urls[0])
		}
		p, err := startChild(self, filepath.Join(dir, id), filepath.Join(dir, id+".log"), nil, a...)
		if err != nil {
			return nil, err
		}
		c.coords, c.ids, urls = append(c.coords, p), append(c.ids, id), append(urls, apiAddr)
		if i == 0 {
			one := api.NewClient(urls, token)
			if err := c.wait(ctx, "n1 to lead", func() bool {
				var st api.ClusterStatus
				return one.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1"
			}); err != nil {
				return nil, err
			}
		}
	}
	c.cl = api.NewClient(urls, token)
	if err := c.wait(ctx, fmt.Sprintf("%d coordinators", coords), func() bool { return c.status(ctx).Voters() == coords }); err != nil {
		return nil, err
	}
	for i := range workers {
		wdir := filepath.Join(dir, fmt.Sprint("worker", i+1))
		a := []string{"worker", "--coordinators", strings.Join(urls, ","), "--data-dir", wdir, "--addr", "127.0.0.1:0",
			"--resources", fmt.Sprintf("cpu=%d,memory=4GiB", cpu), "--token-file", tokenFile, "--heartbeat", "100ms"}
		if splitBytes > 0 {
			a = append(a, "--split-bytes", strconv.FormatInt(splitBytes, 10))
		}
		p, err := startChild(self, wdir, wdir+".log", []string{"GOMAXPROCS=" + strconv.Itoa(cpu)}, a...)
		if err != nil {
			return nil, err
		}
		c.workers = append(c.workers, p)
	}
	if err := c.wait(ctx, fmt.Sprintf("%d workers", workers), func() bool {
		alive := 0
		for _, w := range c.status(ctx).Workers {
			if w.Alive {
				alive++
			}
		}
		return alive == workers
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "cluster: %d coordinators, %d workers of %d CPUs under %s\n", coords, workers, cpu, dir)
	return c, nil
}

func (c *cluster) status(ctx context.Context) (st api.ClusterStatus) {
	_ = c.cl.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st)
	return st
}

// wait polls ok every 20 ms for up to a minute; a child that exits fails it.
func (c *cluster) wait(ctx context.Context, what string, ok func() bool) error {
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		for _, p := range append(slices.Clone(c.coords), c.workers...) {
			if p.exited() && p.cmd.ProcessState.ExitCode() != -1 {
				return fmt.Errorf("waiting for %s: %s exited: %s\n%s", what, p.log, p.cmd.ProcessState, p.tail())
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: timed out after a minute (logs under %s)", what, filepath.Dir(c.coords[0].log))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (c *cluster) stop() {
	for _, p := range c.workers {
		p.stop()
	}
	for _, p := range c.coords {
		p.stop()
	}
}

// submit submits a plan and returns the job's id.
func (c *cluster) submit(ctx context.Context, requestID, file, plan string) (string, error) {
	var sub api.IDResponse
	err := c.cl.Do(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: requestID, File: file, Plan: plan,
		MaxRetries: 3, Needs: state.Resources{CPU: 1}}, &sub)
	return sub.ID, err
}

func (c *cluster) job(ctx context.Context, id string) (st api.JobStatus, err error) {
	err = c.cl.Do(ctx, http.MethodGet, "/v1/jobs/"+id, nil, &st)
	return st, err
}

// runJob submits a plan and polls it every 50 ms until it is done: the wall
// time is from the submit to the poll that saw it succeed.
func (c *cluster) runJob(ctx context.Context, requestID, file, plan string) (api.JobStatus, time.Duration, error) {
	start := time.Now()
	id, err := c.submit(ctx, requestID, file, plan)
	if err != nil {
		return api.JobStatus{}, 0, err
	}
	st, err := c.await(ctx, id, 10*time.Minute)
	return st, time.Since(start), err
}

// await polls a job every 50 ms until it is done and fails unless it succeeded.
func (c *cluster) await(ctx context.Context, id string, limit time.Duration) (api.JobStatus, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := c.job(ctx, id)
		if err == nil && st.Job.State.Done() {
			if st.Job.State != state.JobSucceeded {
				return st, fmt.Errorf("job %s %s: %s", id, st.Job.State, st.Job.Error)
			}
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("job %s not done after %s (state %s)", id, limit, st.Job.State)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

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
func benchFailover(ctx context.Context, e *env, self string, f benchClusterFlags, n int) error {
	data, err := salesData(ctx, e, self, f.dir, f.failoverRows, f.files)
	if err != nil {
		return err
	}
	var runs []failoverRun
	for i := range f.runs {
		r, err := failoverOnce(ctx, e, self, f, n, data, filepath.Join(f.dir, "failover", fmt.Sprint("run", i+1)))
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
	fmt.Fprintf(e.stdout, "cluster/failover: %d rows in %d files, 3 coordinators, %d workers of %d CPUs, worker timeout %s, %d runs\n",
		f.failoverRows, f.files, n, f.cpu, f.workerTimeout, f.runs)
	fmt.Fprintln(e.stdout, "outputs: after the kills, the same rows as the undisturbed run's, in every run")
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
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
	js, _ := json.Marshal(map[string]any{"rows": f.failoverRows, "workers": n, "cpu_per_worker": f.cpu, "runs": runs})
	fmt.Fprintf(e.stdout, "json: %s\n", js)
	return nil
}

func failoverOnce(ctx context.Context, e *env, self string, f benchClusterFlags, n int, data, work string) (r failoverRun, err error) {
	c, err := startCluster(ctx, e, self, filepath.Join(work, "cluster"), 3, n, f.cpu, f.workerTimeout, f.splitBytes)
	if err != nil {
		return r, err
	}
	defer c.stop()
	calm, hit := filepath.Join(work, "out-undisturbed"), filepath.Join(work, "out-killed")
	_, calmWall, err := c.runJob(ctx, "undisturbed", "failover.yaml", fmt.Sprintf(failoverPlan, data, calm))
	if err != nil {
		return r, fmt.Errorf("the undisturbed run: %w", err)
	}
	r.Undisturbed = calmWall.Seconds()

	start := time.Now()
	id, err := c.submit(ctx, "killed", "failover.yaml", fmt.Sprintf(failoverPlan, data, hit))
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
	fmt.Fprintf(e.stderr, "failover: killed the leader %s at %s into the job\n", leader, killed.Sub(start).Round(time.Millisecond))
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
	fmt.Fprintf(e.stderr, "failover: killed worker %s at %s into the job\n", victim, wkilled.Sub(start).Round(time.Millisecond))
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
