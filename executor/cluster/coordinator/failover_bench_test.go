package coordinator

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
)

var (
	failoverRows  = flag.Int("failover.rows", 1_000_000, "rows in BenchmarkFailover's plan")
	failoverTasks = flag.Int("failover.tasks", 1_000, "tasks the rows are split into")
)

// sink is the workers' output: each attempt writes its rows apart, and
// only the attempt the coordinators recorded as the task's success counts
// (as a real task's output is committed).
type sink struct {
	mu   sync.Mutex
	out  map[string][]int64 // "task/attempt" → row ids
	runs int
}

func (s *sink) run(ctx context.Context, a api.Assignment) (int64, error) {
	n, per := int64(a.Task.Index), int64(*failoverRows / *failoverTasks)
	rows := make([]int64, 0, per)
	for r := n * per; r < (n+1)*per; r++ {
		rows = append(rows, r)
	}
	select { // the task's work
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(5 * time.Millisecond):
	}
	s.mu.Lock()
	s.out[fmt.Sprintf("%s/%d", a.Task.ID, a.Task.Attempt)] = rows
	s.runs++
	s.mu.Unlock()
	return int64(len(rows)), nil
}

// BenchmarkFailover is cluster/failover (../shared/WORKLOADS.md) in one
// process: a plan of -failover.rows rows in -failover.tasks short tasks runs
// on three coordinators (fsync'd Raft logs, the tests' Raft timings:
// heartbeat and election 300 ms, worker timeout 1 s) and four workers; a
// third of the way in the leader is shut down, then, a third later, one
// worker. It reports the seconds from each kill until a task completes
// again (for the worker: until every task it held completed elsewhere),
// and checks the committed output is every row exactly once.
//
//	go test ./executor/cluster/coordinator -run '^$' -bench Failover -benchtime 1x -v
func BenchmarkFailover(b *testing.B) {
	for range b.N {
		failoverOnce(b)
	}
}

func failoverOnce(b *testing.B) {
	h := startWith(b, 3, func(c *Config) { c.Logger, c.RaftLog = quiet(), io.Discard })
	defer h.shutdown()
	urls := h.urls()
	cl := api.NewClient(urls, token)
	out := &sink{out: map[string][]int64{}}
	var workers []*worker.Worker
	var stops []func()
	for i := range 4 {
		w, stop := benchWorker(b, urls, i, 8, layout(*failoverTasks, out.run))
		defer stop()
		workers, stops = append(workers, w), append(stops, stop)
	}
	var res api.IDResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: "failover",
		Plan: "name: rows\nread: {parquet: in/}\nwrite: {parquet: out/}\n", Needs: state.Resources{CPU: 1}}, &res); err != nil {
		b.Fatal(err)
	}
	succeeded := func() int {
		var st api.ClusterStatus
		if err := cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st); err != nil {
			return -1
		}
		return st.Tasks["succeeded"]
	}
	// poll until ok, at 5 ms: the figures are read off the replicated state
	// over HTTP, which has no change notification.
	poll := func(what string, ok func() bool) time.Time {
		deadline := time.Now().Add(2 * time.Minute)
		for !ok() {
			if time.Now().After(deadline) {
				b.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Now()
	}
	start := time.Now()
	poll("a third done", func() bool { return succeeded() >= *failoverTasks/3 })
	// The kill: cut the leader's Raft connections at once (as kill -9
	// would: it commits nothing more), then stop it.
	old := h.leader()
	killed := time.Now()
	old.Isolate()
	for i, c := range h.nodes {
		if c == old {
			c.Shutdown()
			h.nodes[i] = nil
		}
	}
	cl = h.client()
	// The first task to succeed after the kill, by the time the new leader
	// stamped its finish.
	var first time.Time
	poll("a task done after the leader kill", func() bool {
		h.leader().Read(func(s *state.State) {
			for _, t := range s.Tasks {
				if t.State == state.TaskSucceeded && t.Updated.After(killed) && (first.IsZero() || t.Updated.Before(first)) {
					first = t.Updated
				}
			}
		})
		return !first.IsZero()
	})
	leaderGap := first.Sub(killed)
	poll("two thirds done", func() bool { return succeeded() >= 2**failoverTasks/3 })
	// Kill a worker that holds tasks.
	var victim int
	var held []string
	h.leader().Read(func(s *state.State) {
		for i, w := range workers {
			if ts := s.TasksOf(w.ID()); len(ts) > 0 {
				victim = i
				for _, t := range ts {
					held = append(held, t.ID)
				}
				break
			}
		}
	})
	wkilled := time.Now()
	stops[victim]()
	moved := poll("the dead worker's tasks done elsewhere", func() bool {
		var done bool
		h.leader().Read(func(s *state.State) {
			done = true
			for _, id := range held {
				if t := s.Tasks[id]; t.State != state.TaskSucceeded {
					done = false
				}
			}
		})
		return done
	})
	workerGap := moved.Sub(wkilled)
	poll("the job done", func() bool { return succeeded() >= *failoverTasks+2 }) // and the plan and commit tasks
	total := time.Since(start)
	// The committed output: each task's succeeded attempt.
	var js api.JobStatus
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs/"+res.ID, nil, &js); err != nil {
		b.Fatal(err)
	}
	if js.Job.State != state.JobSucceeded {
		b.Fatalf("job %s: %s", js.Job.State, js.Job.Error)
	}
	seen := make([]bool, *failoverRows)
	out.mu.Lock()
	defer out.mu.Unlock()
	n := 0
	for _, t := range js.Tasks {
		for _, r := range out.out[fmt.Sprintf("%s/%d", t.ID, t.Attempt)] {
			if seen[r] {
				b.Fatalf("row %d twice", r)
			}
			seen[r] = true
			n++
		}
	}
	if n != *failoverRows {
		b.Fatalf("%d rows, want %d", n, *failoverRows)
	}
	b.ReportMetric(leaderGap.Seconds(), "s-leader-kill-to-task")
	b.ReportMetric(workerGap.Seconds(), "s-worker-kill-to-moved")
	b.ReportMetric(total.Seconds(), "s-job")
	b.ReportMetric(float64(out.runs-*failoverTasks), "reruns")
	b.Logf("leader kill → next task done %s; worker kill (%d tasks held) → all done elsewhere %s; job %s; %d task runs",
		leaderGap.Round(time.Millisecond), len(held), workerGap.Round(time.Millisecond), total.Round(time.Millisecond), out.runs)
}
