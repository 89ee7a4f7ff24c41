package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
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

// FailoverPlan is cluster/failover's plan: the chaos test's (scan, filter,
// group-by, sort), so that every kind of exchange is in flight at a kill.
const FailoverPlan = `name: failover
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

// ClusterConfig is etl/sales-10m on a loopback cluster against the local
// executor, or cluster/failover (`bench cluster`).
type ClusterConfig struct {
	Sluice        string        // the sluice binary of the coordinators, workers and local runs (default: this executable)
	Workers       []int         // worker counts to measure
	Rows          int64         // rows of generated data
	Files         int           // files of generated data
	Runs          int           // runs per query, worker count and side; the median is reported
	CPUPerWorker  int           // CPUs each worker offers and may use (GOMAXPROCS); 0: all CPUs / the largest worker count, at least 1
	Dir           string        // working directory for data, outputs and the cluster's files
	Queries       []string      // q1, q2, q3
	Failover      bool          // run cluster/failover instead: 3 coordinators, the largest worker count
	FailoverRows  int64         // rows of cluster/failover's data
	WorkerTimeout time.Duration // the coordinators' --worker-timeout
	SplitBytes    int64         // input bytes per scan task, the workers' --split-bytes; 0: the worker's default
}

// Cluster runs the benchmark, checks that the cluster and the local
// executor wrote the same rows, and prints a table and a json: line to
// stdout; progress goes to stderr, the processes' logs under Dir/cluster.
func Cluster(ctx context.Context, stdout, stderr io.Writer, f ClusterConfig) error {
	counts := f.Workers
	if len(counts) == 0 {
		return fmt.Errorf("no worker counts to measure")
	}
	for _, n := range counts {
		if n < 1 {
			return fmt.Errorf("worker count %d: want positive counts", n)
		}
	}
	queries := f.Queries
	for _, q := range queries {
		if clusterPlans[q] == "" {
			return fmt.Errorf("--queries: unknown query %q (want q1, q2, q3)", q)
		}
	}
	if f.Runs < 1 {
		return fmt.Errorf("--runs (%d) must be at least 1", f.Runs)
	}
	if f.CPUPerWorker <= 0 {
		f.CPUPerWorker = max(1, runtime.NumCPU()/slices.Max(counts))
	}
	self, err := self(f.Sluice)
	if err != nil {
		return err
	}
	if f.Dir, err = filepath.Abs(f.Dir); err != nil {
		return err
	}
	if f.Failover {
		return failover(ctx, stdout, stderr, self, f, slices.Max(counts))
	}
	data, err := salesData(ctx, stderr, self, f.Dir, f.Rows, f.Files)
	if err != nil {
		return err
	}
	work := filepath.Join(f.Dir, "cluster")
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
		c, err := startCluster(ctx, stderr, self, filepath.Join(work, fmt.Sprintf("w%d", n)), 1, n, f.CPUPerWorker, f.WorkerTimeout, f.SplitBytes)
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
			for i := range f.Runs {
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
			r := result{Query: q, Workers: n, CPU: f.CPUPerWorker, Cluster: cm.wall.Seconds(), Local: lm.wall.Seconds(),
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
			fmt.Fprintf(stderr, "%s on %d workers: cluster %.3fs, local %.3fs\n", q, n, r.Cluster, r.Local)
		}
		c.stop()
	}
	split := "the worker's default split size"
	if f.SplitBytes > 0 {
		split = fmt.Sprintf("--split-bytes %d", f.SplitBytes)
	}
	fmt.Fprintf(stdout, "etl/sales on the cluster: %d rows in %d files, 1 coordinator (throughput needs no more; failover runs 3), "+
		"workers of %d CPU each (GOMAXPROCS too), %s, machine of %d CPUs; local executor in a child process with all CPUs\n",
		f.Rows, f.Files, f.CPUPerWorker, split, runtime.NumCPU())
	fmt.Fprintln(stdout, "outputs: the same rows from the cluster and the local executor for every query and worker count")
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "query\tworkers\tcluster (median of %d)\tlocal (median of %d)\tspeed-up local/cluster\tstages of the median cluster run (tasks, first assignment to last finish)\n", f.Runs, f.Runs)
	for _, r := range results {
		var st []string
		for _, s := range r.Stages {
			st = append(st, fmt.Sprintf("%s %d×%.2fs", s.Name, s.Tasks, s.Seconds))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3fs\t%.3fs\t%.2f\t%s\n", r.Query, r.Workers, r.Cluster, r.Local, r.Speedup, strings.Join(st, " | "))
	}
	tw.Flush()
	js, _ := json.Marshal(results)
	fmt.Fprintf(stdout, "json: %s\n", js)
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
