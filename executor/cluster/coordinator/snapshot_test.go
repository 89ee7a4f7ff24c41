package coordinator

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
)

// TestSnapshotMidJobRestores: a Raft snapshot taken while a 300-task job
// runs (half its tasks done, others held running) is installed by a node
// that joins (the log before it is gone), and restored by that node when
// it restarts; the job then finishes, and the node's state is the
// leader's, field for field.
func TestSnapshotMidJobRestores(t *testing.T) {
	h := startWith(t, 1, func(c *Config) { c.TrailingLogs = 2; c.SnapshotThreshold = 1 << 20 })
	cl := h.client()
	release := make(chan struct{})
	const n = 300
	run := layout(n, func(ctx context.Context, a api.Assignment) (int64, error) {
		if a.Task.Index >= n/2 {
			select {
			case <-release:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return int64(a.Task.Index), nil
	})
	w, err := worker.New(worker.Config{Coordinators: h.urls(), DataDir: t.TempDir(), Addr: "127.0.0.1:0",
		Resources: state.Resources{CPU: 8, Memory: 1 << 30}, Token: token, Heartbeat: 50 * time.Millisecond, Run: run,
		Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	stopWorker := func() { cancel(); <-done }
	defer stopWorker()

	var res api.IDResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: "mid",
		Plan: "name: noop\nread: {parquet: in/}\nwrite: {parquet: out/}\n", Needs: state.Resources{CPU: 1}}, &res); err != nil {
		t.Fatal(err)
	}
	l := h.nodes[0]
	h.waitFor("half the job done, 8 tasks held", func() bool {
		var c map[state.TaskState]int
		l.Read(func(s *state.State) { c = s.Counts() })
		return c[state.TaskSucceeded] >= n/2+1 && c[state.TaskRunning]+c[state.TaskAssigned] == 8
	})
	if err := l.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}

	cfg := newConfig(t, "n2")
	cfg.Join = l.URL()
	c2, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.nodes, h.cfgs = append(h.nodes, c2), append(h.cfgs, cfg)
	h.waitFor("n2 installed the snapshot", func() bool {
		n := 0
		c2.Read(func(s *state.State) { n = len(s.Tasks) })
		return n == 302
	})
	c2.Shutdown()
	cfg.Join = ""
	if c2, err = Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	h.nodes[1] = c2
	if idx, _ := strconv.Atoi(c2.Raft().Stats()["last_snapshot_index"]); idx == 0 {
		t.Fatalf("n2 restarted without a snapshot: %v", c2.Raft().Stats())
	}
	close(release)
	h.waitJob(cl, res.ID, state.JobSucceeded)
	stopWorker()

	var a, b bytes.Buffer
	h.waitFor("n2's state is the leader's", func() bool {
		a.Reset()
		b.Reset()
		i1 := l.Raft().AppliedIndex()
		l.Read(func(s *state.State) { s.SnapshotJSON(&a) })
		c2.Read(func(s *state.State) { s.SnapshotJSON(&b) })
		return i1 == c2.Raft().AppliedIndex() && i1 == l.Raft().AppliedIndex() && a.String() == b.String()
	})
	var j *state.Job
	c2.Read(func(s *state.State) { j = s.Jobs[res.ID] })
	if j.State != state.JobSucceeded || j.Succeeded != n+2 {
		t.Fatalf("on n2, job %s is %s with %d tasks succeeded", j.ID, j.State, j.Succeeded)
	}
}

// TestStallDelaysExpiry: after the state was held past a quarter of the
// worker timeout (a million-task layout, a snapshot), a worker whose
// heartbeat is older than the timeout is not found dead until a timeout
// after the stall's end: its heartbeats waited behind the stall. Later it
// is. (The clock is the commands' clock, set by the test; the worker
// registers and never heartbeats.)
func TestStallDelaysExpiry(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	t0 := clk.Now()
	h := startWith(t, 1, func(c *Config) { c.Now = clk.Now })
	l := h.leader()
	cl := h.client()
	var reg api.RegisterResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/workers", api.RegisterRequest{ID: "w1", Addr: "127.0.0.1:1",
		Resources: state.Resources{CPU: 4, Memory: 1 << 30}}, &reg); err != nil {
		t.Fatal(err)
	}
	timeout := h.cfgs[0].WorkerTimeout
	// A stall, 0.9 timeouts after the registration (its stallMin made
	// tiny: what counts is that the hold was noted, not its length).
	l.fsm.mu.Lock()
	l.fsm.stallMin = time.Nanosecond
	held := time.Now()
	clk.Set(t0.Add(timeout * 9 / 10))
	l.fsm.held(held)
	l.fsm.stallMin = timeout / 4
	l.fsm.mu.Unlock()

	// 1.5 timeouts after the last heartbeat, 0.6 after the stall: alive,
	// and given the job's planning task by the next decision.
	clk.Set(t0.Add(timeout * 3 / 2))
	id := submitNoop(t, cl, "r1")
	var alive bool
	h.waitFor("the planning task assigned or w1 dead", func() bool {
		var assigned bool // read under the lock: the FSM updates the task in place
		l.Read(func(s *state.State) {
			tk := s.Tasks[id+"-t0"]
			assigned, alive = tk != nil && tk.State == state.TaskAssigned, s.Workers["w1"].Alive
		})
		return !alive || assigned
	})
	if !alive {
		t.Fatal("w1 found dead 0.6 worker timeouts after a stall of the state")
	}
	// A timeout after the stall's end, it is.
	clk.Set(t0.Add(timeout * 2))
	h.waitFor("w1 dead", func() bool {
		l.Read(func(s *state.State) { alive = s.Workers["w1"].Alive })
		return !alive
	})
}
