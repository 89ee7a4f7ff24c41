package coordinator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
)

const (
	token  = "s3cret-token"
	secret = "cluster-secret-0123456789" // the harness's cluster secret
)

// harness runs coordinators on loopback TCP with real disks.
type harness struct {
	t     testing.TB
	nodes []*Coordinator
	cfgs  []Config
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func newConfig(t testing.TB, id string) Config {
	return Config{
		NodeID: id, DataDir: filepath.Join(t.TempDir(), id), RaftAddr: freeAddr(t), APIAddr: freeAddr(t),
		Token: token, Secret: secret, WorkerTimeout: time.Second, Tick: 50 * time.Millisecond, ApplyTimeout: 5 * time.Second,
		RaftHeartbeat: 300 * time.Millisecond, RaftElection: 300 * time.Millisecond, RaftLeaderLease: 150 * time.Millisecond,
		Logger: testLogger(t), RaftLog: tlogWriter{t}, LogStore: *logStoreKind,
	}
}

// -logstore runs the package's tests and benchmarks on either Raft log
// store (BENCHMARKS.md compares them).
var logStoreKind = flag.String("logstore", "bolt", "Raft log store of the test clusters: bolt, raftlog or wal")

// start starts n coordinators: the first bootstraps, the others join it.
func start(t testing.TB, n int) *harness { return startWith(t, n, func(*Config) {}) }

func (h *harness) shutdown() {
	for _, c := range h.nodes {
		if c != nil {
			c.Shutdown()
		}
	}
}

func (h *harness) waitFor(what string, ok func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leader waits for a live node to lead and have published its API.
func (h *harness) leader() *Coordinator {
	h.t.Helper()
	var l *Coordinator
	h.waitFor("a leader", func() bool {
		for _, c := range h.nodes {
			if c != nil && c.IsLeader() {
				if _, err := c.leaderAPI(); err == nil {
					l = c
					return true
				}
			}
		}
		return false
	})
	return l
}

func (h *harness) urls() []string {
	var out []string
	for _, c := range h.nodes {
		if c != nil {
			out = append(out, c.URL())
		}
	}
	return out
}

func (h *harness) client() *api.Client { return api.NewClient(h.urls(), token) }

func (h *harness) job(cl *api.Client, id string) api.JobStatus {
	var st api.JobStatus
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs/"+id, nil, &st); err != nil {
		h.t.Logf("job %s: %v", id, err)
	}
	return st
}

func (h *harness) waitJob(cl *api.Client, id string, want state.JobState) api.JobStatus {
	h.t.Helper()
	var st api.JobStatus
	h.waitFor("job "+id+" "+string(want), func() bool {
		st = h.job(cl, id)
		if st.Job.State.Done() && st.Job.State != want {
			h.t.Fatalf("job %s is %s (%s), want %s", id, st.Job.State, st.Job.Error, want)
		}
		return st.Job.State == want
	})
	return st
}

func startWorker(t *testing.T, urls []string, run func(ctx context.Context, a api.Assignment) (int64, error)) (*worker.Worker, context.CancelFunc) {
	return startWorkerWith(t, urls, state.Resources{CPU: 2, Memory: 1 << 30}, run)
}

// rowsRun is run as a worker's Run (nil: the worker's own).
func rowsRun(run func(ctx context.Context, a api.Assignment) (int64, error)) func(context.Context, api.Assignment) (worker.Outcome, error) {
	if run == nil {
		return nil
	}
	return func(ctx context.Context, a api.Assignment) (worker.Outcome, error) {
		rows, err := run(ctx, a)
		return worker.Outcome{Rows: rows}, err
	}
}

func startWorkerWith(t *testing.T, urls []string, res state.Resources, run func(ctx context.Context, a api.Assignment) (int64, error)) (*worker.Worker, context.CancelFunc) {
	w, err := worker.New(worker.Config{Coordinators: urls, DataDir: t.TempDir(), Addr: "127.0.0.1:0",
		Resources: res, Token: token, Heartbeat: 100 * time.Millisecond,
		Logger: testLogger(t), Run: rowsRun(run)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return w, sync.OnceFunc(stop)
}

const planText = `name: sales
read:
  parquet: %s
steps:
  - filter: "price > 50"
write:
  parquet: %s
  mode: overwrite
`

func TestClusterRunsPlan(t *testing.T) {
	h := start(t, 3)
	out := filepath.Join(t.TempDir(), "out")
	src, _ := filepath.Abs("../../../examples/data/sales")
	// Talk to a follower only: it forwards writes to the leader.
	var follower *Coordinator
	for _, c := range h.nodes {
		if !c.IsLeader() {
			follower = c
		}
	}
	cl := api.NewClient([]string{follower.URL()}, token)
	startWorker(t, h.urls(), nil) // the real plan runner

	req := api.SubmitRequest{RequestID: "req-1", File: "sales.yaml", Plan: fmt.Sprintf(planText, src, out)}
	var a, b api.IDResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", req, &a); err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", req, &b); err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.Kind != "job" {
		t.Fatalf("duplicate submission: %+v then %+v", a, b)
	}
	st := h.waitJob(cl, a.ID, state.JobSucceeded)
	// Planned, run as the layout's stages, committed by the last task.
	if n := len(st.Stages); n < 3 || st.Stages[0].Kind != state.StagePlan || st.Stages[n-1].Kind != state.StageCommit {
		t.Fatalf("stages: %+v", st.Stages)
	}
	commit := st.Tasks[len(st.Tasks)-1]
	if commit.Rows == 0 || commit.Attempt != 1 || st.Stages[len(st.Stages)-2].Rows != commit.Rows {
		t.Fatalf("commit task: %+v; stages %+v", commit, st.Stages)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.parquet"))
	if len(files) == 0 || len(files) != len(st.Job.Output) {
		t.Fatalf("%d parquet files in %s, the job's output lists %v", len(files), out, st.Job.Output)
	}
	if staging, _ := filepath.Glob(filepath.Join(out, "_*staging*")); len(staging) > 0 {
		t.Fatalf("staging left behind: %v", staging)
	}
	// Every replica holds the job, and one job only.
	h.waitFor("replication", func() bool {
		for _, c := range h.nodes {
			n := 0
			c.Read(func(s *state.State) { n = len(s.Jobs) })
			if n != 1 {
				return false
			}
		}
		return true
	})

	// A malformed plan is refused with its lint.
	err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{File: "bad.yaml", Plan: "name: x\nread: {parquet: a}\nwrite: {parquet: b}\nbogus: 1\n"}, nil)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:4:1") {
		t.Fatalf("malformed plan: %v", err)
	}

	// Without the token, or with a wrong one: 401, on every node.
	for _, tok := range []string{"", "wrong"} {
		err := api.NewClient([]string{follower.URL()}, tok).Do(context.Background(), http.MethodGet, "/v1/jobs", nil, nil)
		if !errors.Is(err, api.ErrUnauthorized) {
			t.Fatalf("token %q: %v", tok, err)
		}
	}
	var cs api.ClusterStatus
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs.Nodes) != 3 || cs.Leader == "" || len(cs.Workers) != 1 || cs.Term == 0 {
		t.Fatalf("cluster status: %+v", cs)
	}
}

// gate is a task runner that blocks until released.
type gate struct {
	mu      sync.Mutex
	started map[string]int // worker-independent: task id -> runs
	release chan struct{}
}

func newGate() *gate { return &gate{started: map[string]int{}, release: make(chan struct{})} }

func (g *gate) run(ctx context.Context, a api.Assignment) (int64, error) {
	g.mu.Lock()
	g.started[a.Task.ID]++
	g.mu.Unlock()
	select {
	case <-g.release:
		return 1, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func submitNoop(t *testing.T, cl *api.Client, req string) string {
	var r api.IDResponse
	plan := "name: noop\nread: {parquet: in/}\nwrite: {parquet: out/}\n"
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: req, Plan: plan, MaxRetries: 1}, &r); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

func TestLeaderKilledJobFinishes(t *testing.T) {
	h := start(t, 3)
	g := newGate()
	startWorker(t, h.urls(), g.run)
	cl := h.client()
	id := submitNoop(t, cl, "r1")
	h.waitFor("task running", func() bool { return h.job(cl, id).Tasks[0].State == state.TaskRunning })
	old := h.leader()
	killed := time.Now()
	for i, c := range h.nodes {
		if c == old {
			c.Shutdown()
			h.nodes[i] = nil
		}
	}
	nl := h.leader()
	close(g.release)
	cl = h.client()
	h.waitJob(cl, id, state.JobSucceeded)
	t.Logf("new leader %s; job done %s after the leader was killed", nl.cfg.NodeID, time.Since(killed).Round(time.Millisecond))
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started[id+"-t0"] != 1 {
		t.Fatalf("task ran %d times", g.started[id+"-t0"])
	}
}

func TestWorkerStoppedTaskMoves(t *testing.T) {
	h := start(t, 1)
	cl := h.client()
	g1, g2 := newGate(), newGate()
	w1, stop1 := startWorker(t, h.urls(), g1.run)
	id := submitNoop(t, cl, "r1")
	h.waitFor("task on w1", func() bool {
		tk := h.job(cl, id).Tasks[0]
		return tk.State == state.TaskRunning && tk.Worker == w1.ID()
	})
	w2, _ := startWorker(t, h.urls(), g2.run)
	stop1()
	h.waitFor("task on w2", func() bool {
		tk := h.job(cl, id).Tasks[0]
		return tk.State == state.TaskRunning && tk.Worker == w2.ID()
	})
	close(g2.release)
	st := h.waitJob(cl, id, state.JobSucceeded)
	if tk := st.Tasks[0]; tk.Attempt != 2 || tk.Failures != 0 {
		t.Fatalf("task: %+v", tk)
	}
	// w1's late report of attempt 1 is stale.
	err := api.NewClient(h.urls(), WorkerCredential(secret, w1.ID())).Do(context.Background(), http.MethodPost, "/v1/tasks/"+id+"-t0/finish",
		api.TaskReport{Worker: w1.ID(), Attempt: 1, OK: true}, nil)
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("stale report: %v", err)
	}
}

func TestRestartKeepsState(t *testing.T) {
	for _, kind := range []string{"bolt", "wal", "raftlog"} {
		t.Run(kind, func(t *testing.T) { restartKeepsState(t, kind) })
	}
}

func restartKeepsState(t *testing.T, kind string) {
	h := startWith(t, 1, func(c *Config) { c.LogStore = kind })
	cl := h.client()
	id := submitNoop(t, cl, "r1")
	cfg := h.cfgs[0]
	h.nodes[0].Shutdown()
	h.nodes[0] = nil
	cfg.Bootstrap = false // a restarted node finds its state and ignores the flag anyway
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.nodes[0] = c
	h.leader()
	if st := h.job(h.client(), id); st.Job.ID != id {
		t.Fatalf("job %s lost on restart", id)
	}
	if again := submitNoop(t, h.client(), "r1"); again != id {
		t.Fatalf("request applied twice across a restart: %s, %s", id, again)
	}
	file := map[string]string{"bolt": "raft.db", "wal": "wal", "raftlog": "raftlog"}[kind]
	if _, err := os.Stat(filepath.Join(cfg.DataDir, file)); err != nil {
		t.Fatal(err)
	}
	// The other kind of store refuses the directory rather than starting
	// from an empty log.
	h.shutdown()
	cfg.LogStore = map[string]string{"bolt": "wal", "wal": "bolt", "raftlog": "bolt"}[kind]
	cfg.APIAddr, cfg.RaftAddr = freeAddr(t), freeAddr(t)
	if c, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "holds the other log store") {
		if c != nil {
			c.Shutdown()
		}
		t.Fatalf("store %s over a %s directory: %v", cfg.LogStore, kind, err)
	}
}

// A stage whose tasks always fail fails the job after its retries, and the
// destination is left as it was: nothing staged, nothing published.
func TestClusterFailedStageLeavesNothing(t *testing.T) {
	h := start(t, 1)
	cl := h.client()
	src, _ := filepath.Abs("../../../examples/data/sales")
	out := filepath.Join(t.TempDir(), "out")
	startWorker(t, h.urls(), nil)
	startWorker(t, h.urls(), nil)
	// The notes are not numbers: the cast fails on the first row.
	plan := fmt.Sprintf("name: bad\nread:\n  parquet: %s\nsteps:\n  - filter: \"cast(note as bigint) > 0\"\nwrite:\n  parquet: %s\n", src, out)
	var r api.IDResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{File: "bad.yaml", Plan: plan, MaxRetries: 1}, &r); err != nil {
		t.Fatal(err)
	}
	st := h.waitJob(cl, r.ID, state.JobFailed)
	if !strings.Contains(st.Job.Error, "invalid syntax") || !strings.Contains(st.Job.Error, ".parquet: expr") {
		t.Fatalf("job error: %s", st.Job.Error)
	}
	failed := 0
	for _, tk := range st.Tasks {
		if tk.Failures == 2 {
			failed++
		}
	}
	commit := st.Tasks[len(st.Tasks)-1]
	if failed == 0 || commit.State != state.TaskSucceeded || len(st.Job.Output) != 0 {
		t.Fatalf("a task should fail twice (retried once) and the commit task remove the staging: %+v", st.Tasks)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(out)
		t.Fatalf("the failed job left %s: %v", out, entries)
	}
}

// A heartbeat that knows its assignments waits for them to change: the
// answer carries a task assigned while it waited (an immediate answer
// would carry none).
func TestHeartbeatLongPoll(t *testing.T) {
	h := start(t, 1)
	cl := h.client()
	ctx := context.Background()
	if err := cl.Do(ctx, http.MethodPost, "/v1/workers", api.RegisterRequest{ID: "w-poll", Addr: "127.0.0.1:1",
		Resources: state.Resources{CPU: 1, Memory: 1 << 30}}, nil); err != nil {
		t.Fatal(err)
	}
	wcl := api.NewClient(h.urls(), WorkerCredential(secret, "w-poll"))
	var first api.HeartbeatResponse
	if err := wcl.Do(ctx, http.MethodPost, "/v1/workers/w-poll/heartbeat", nil, &first); err != nil || len(first.Tasks) != 0 {
		t.Fatalf("first heartbeat: %+v %v", first, err)
	}
	got := make(chan api.HeartbeatResponse, 1)
	go func() {
		var hb api.HeartbeatResponse
		if err := wcl.Do(ctx, http.MethodPost, "/v1/workers/w-poll/heartbeat?wait=5s&known="+api.Digest(first.Tasks), nil, &hb); err != nil {
			t.Error(err)
		}
		got <- hb
	}()
	var r api.IDResponse
	if err := cl.Do(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{File: "p.yaml", Plan: "name: p\nread: {parquet: x/}\nwrite: {parquet: y/}\n"}, &r); err != nil {
		t.Fatal(err)
	}
	hb := <-got
	if len(hb.Tasks) != 1 || hb.Tasks[0].Task.Job != r.ID || hb.Tasks[0].Kind != state.StagePlan {
		t.Fatalf("long poll answered %+v, want the planning task of %s", hb.Tasks, r.ID)
	}
}
