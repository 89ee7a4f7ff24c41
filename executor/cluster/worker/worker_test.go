package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// fakeCoordinator assigns one task until a finish report arrives, and
// records the calls.
type fakeCoordinator struct {
	mu      sync.Mutex
	calls   []string
	reports []api.TaskReport
	done    bool
	refuse  bool // refuse finish reports, as for a stale attempt
}

func (f *fakeCoordinator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer tok" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	switch {
	case strings.HasSuffix(r.URL.Path, "/heartbeat"):
		out := api.HeartbeatResponse{Tasks: []api.Assignment{}}
		if !f.done {
			out.Tasks = append(out.Tasks, api.Assignment{Task: state.Task{ID: "j-1-t0", Job: "j-1", State: state.TaskAssigned, Attempt: 3}, Spec: fakeSpec.Hash})
		}
		json.NewEncoder(w).Encode(out)
	case strings.HasSuffix(r.URL.Path, "/spec"):
		json.NewEncoder(w).Encode(fakeSpec)
	case strings.HasSuffix(r.URL.Path, "/reports"):
		req := readReports(r)
		var out api.ReportBatchResponse
		for _, rep := range req.Reports {
			f.reports = append(f.reports, rep)
			r := api.ReportResult{Task: rep.Task}
			if rep.Phase == "finish" {
				f.done = true
				if f.refuse {
					r.Error = "state: stale task report: task j-1-t0 attempt 3 from worker w (task is running, attempt 4 on \"w2\")"
				}
			}
			out.Results = append(out.Results, r)
		}
		json.NewEncoder(w).Encode(out)
	default:
		json.NewEncoder(w).Encode(api.IDResponse{ID: "w"})
	}
}

var fakeSpec = func() api.JobSpec {
	sp := api.JobSpec{Job: "j-1", File: "plan.yaml", Plan: "x"}
	sp.Hash = api.SpecHash(sp)
	return sp
}()

func TestWorkerRunsAndReports(t *testing.T) {
	f := &fakeCoordinator{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	dir := t.TempDir()
	var runs sync.WaitGroup
	runs.Add(1)
	w, err := New(Config{Coordinators: []string{srv.URL}, DataDir: dir, Token: "tok", Resources: state.Resources{CPU: 1},
		Heartbeat: 10 * time.Millisecond, Run: func(ctx context.Context, a api.Assignment) (Outcome, error) {
			defer runs.Done() // a second run would panic
			return Outcome{Rows: 42}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- w.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.reports)
		f.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reports")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls[0] != "POST /v1/workers" || f.reports[0].Attempt != 3 || f.reports[0].Phase != "start" || f.reports[0].Task != "j-1-t0" || !f.reports[1].OK || f.reports[1].Rows != 42 || f.reports[1].Worker != w.ID() {
		t.Fatalf("calls %v reports %+v", f.calls, f.reports)
	}
	// The id survives a restart.
	if w2, _ := New(Config{Coordinators: []string{srv.URL}, DataDir: dir, Token: "tok", Resources: state.Resources{CPU: 1}, Addr: "127.0.0.1:0"}); w2.ID() != w.ID() {
		t.Fatalf("id %s then %s", w.ID(), w2.ID())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "worker-id")); strings.TrimSpace(string(b)) != w.ID() {
		t.Fatal("worker-id file")
	}
}

// TestStaleSinkAttemptDiscarded: a sink attempt whose finish the
// coordinators refuse (another attempt of the task won while this one ran
// on) removes the files it staged; an accepted one keeps them for the commit.
func TestStaleSinkAttemptDiscarded(t *testing.T) {
	for _, refuse := range []bool{true, false} {
		t.Run(map[bool]string{true: "refused", false: "applied"}[refuse], func(t *testing.T) {
			f := &fakeCoordinator{refuse: refuse}
			srv := httptest.NewServer(f)
			defer srv.Close()
			dest := filepath.Join(t.TempDir(), "out")
			staged := filepath.Join(dest, "_sluice_staging", "j-1", "t00000-a3")
			if err := os.MkdirAll(staged, 0o755); err != nil {
				t.Fatal(err)
			}
			w, err := New(Config{Coordinators: []string{srv.URL}, DataDir: t.TempDir(), Token: "tok", Resources: state.Resources{CPU: 1},
				Heartbeat: 10 * time.Millisecond, Addr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			w.cfg.Run = func(ctx context.Context, a api.Assignment) (Outcome, error) {
				// What a sink task leaves: a part file and its manifest.
				for _, n := range []string{"part-0.parquet", "_sluice_manifest.json"} {
					if err := os.WriteFile(filepath.Join(staged, n), []byte("x"), 0o644); err != nil {
						return Outcome{}, err
					}
				}
				return Outcome{Rows: 1, Staged: staged}, nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error)
			go func() { errc <- w.Run(ctx) }()
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := os.Stat(staged)
				f.mu.Lock()
				finished := f.done
				f.mu.Unlock()
				if finished && (!refuse || errors.Is(err, os.ErrNotExist)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("finish reported %v, staged dir: %v", finished, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if refuse {
				// The job's and the root staging dirs went with it; the destination stays.
				if _, err := os.Stat(filepath.Join(dest, "_sluice_staging")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("staging root left: %v", err)
				}
				if _, err := os.Stat(dest); err != nil {
					t.Fatal(err)
				}
			} else if ents, err := os.ReadDir(staged); err != nil || len(ents) != 2 {
				t.Fatalf("an applied attempt's files: %v %v", ents, err)
			}
		})
	}
}

func TestWorkerWrongToken(t *testing.T) {
	srv := httptest.NewServer(&fakeCoordinator{})
	defer srv.Close()
	w, err := New(Config{Coordinators: []string{srv.URL}, DataDir: t.TempDir(), Token: "bad", Resources: state.Resources{CPU: 1}, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); !errors.Is(err, api.ErrUnauthorized) {
		t.Fatalf("Run: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := New(Config{DataDir: t.TempDir(), Token: "t", Resources: state.Resources{CPU: 1}})
	if err == nil || !strings.Contains(err.Error(), "--coordinators") {
		t.Fatalf("%v", err)
	}
	_, err = New(Config{Coordinators: []string{"x"}, DataDir: t.TempDir(), Token: "t"})
	if err == nil || !strings.Contains(err.Error(), "Resources.CPU (0)") {
		t.Fatalf("%v", err)
	}
	_, err = New(Config{Coordinators: []string{"x"}, DataDir: t.TempDir(), Token: "t", Resources: state.Resources{CPU: 1}})
	if err == nil || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("no address: %v", err)
	}
}

// A task of no known stage kind (the old whole-plan kind "") is refused,
// naming the task and the kind, before anything runs.
func TestExecuteRefusesUnknownKind(t *testing.T) {
	w, err := New(Config{Coordinators: []string{"x"}, DataDir: t.TempDir(), Token: "t", Resources: state.Resources{CPU: 1},
		Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.execute(context.Background(), api.Assignment{Task: state.Task{ID: "j-1-t0"},
		Job: &api.JobSpec{Job: "j-1", Plan: "name: p\nread: {parquet: in/}\nwrite: {parquet: out/}\n"}})
	if err == nil || !strings.Contains(err.Error(), `task j-1-t0: unknown stage kind ""`) {
		t.Fatalf("err %v", err)
	}
}

// specCoordinator assigns n tasks of one job at once, answers their
// job's spec, and counts the spec calls.
type specCoordinator struct {
	n       int
	mu      sync.Mutex
	specs   int
	reports int
}

func (f *specCoordinator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/heartbeat"):
		out := api.HeartbeatResponse{Tasks: []api.Assignment{}}
		for i := range f.n {
			out.Tasks = append(out.Tasks, api.Assignment{Task: state.Task{ID: fmt.Sprintf("j-1-t%d", i+1), Job: "j-1",
				State: state.TaskRunning, Attempt: 1, Stage: 1, Index: i}, Spec: fakeSpec.Hash, Kind: state.StageExec})
		}
		writeWire(w, r, out)
	case strings.HasSuffix(r.URL.Path, "/spec"):
		f.specs++
		json.NewEncoder(w).Encode(fakeSpec)
	case strings.HasSuffix(r.URL.Path, "/reports"):
		req := readReports(r)
		var out api.ReportBatchResponse
		for _, rep := range req.Reports {
			f.reports++
			out.Results = append(out.Results, api.ReportResult{Task: rep.Task})
		}
		writeWire(w, r, out) // this fake answers binary, the other JSON
	default:
		json.NewEncoder(w).Encode(api.IDResponse{ID: "w"})
	}
}

// TestSpecOncePerJob: the tasks of one job name its spec by hash; the
// worker fetches it once, however many of its tasks run at once, and
// every task sees the plan.
func TestSpecOncePerJob(t *testing.T) {
	const n = 30
	f := &specCoordinator{n: n}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var mu sync.Mutex
	plans := 0
	w, err := New(Config{Coordinators: []string{srv.URL}, DataDir: t.TempDir(), Token: "tok", Resources: state.Resources{CPU: n},
		Heartbeat: 10 * time.Millisecond, Run: func(ctx context.Context, a api.Assignment) (Outcome, error) {
			mu.Lock()
			defer mu.Unlock()
			if a.Job != nil && a.Job.Plan == fakeSpec.Plan {
				plans++
			}
			return Outcome{Rows: 1}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- w.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		done := f.reports >= n
		f.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tasks did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if f.specs != 1 || plans != n {
		t.Fatalf("%d spec fetches for %d tasks of one job (want 1); %d tasks saw the plan", f.specs, n, plans)
	}
}

// TestLayoutDecodedOnce: the tasks of a job share the layout decoded once
// from its spec, and the plan compiled once.
func TestLayoutDecodedOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.csv"), []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sp := &api.JobSpec{Job: "j-1", File: "p.yaml", Plan: fmt.Sprintf("name: p\nread: {csv: %s}\nwrite: {parquet: %s}\n",
		filepath.Join(dir, "in.csv"), filepath.Join(dir, "out")),
		Layout: []byte(`{"partitions":2,"stages":[{"name":"scan","tasks":3}]}`)}
	sp.Hash = api.SpecHash(*sp)
	var c specCache
	var jc jobCache
	fetches := 0
	fetch := func(context.Context, string) (*api.JobSpec, error) { fetches++; return sp, nil }
	before := compiles.Load()
	var first any
	for i := range 10 {
		a := api.Assignment{Task: state.Task{ID: fmt.Sprint("j-1-t", i), Job: "j-1"}, Spec: sp.Hash}
		e, err := c.get(context.Background(), a, fetch)
		if err != nil {
			t.Fatal(err)
		}
		l, err := e.decoded(func(s string) string { return s })
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = l
		} else if any(l) != first {
			t.Fatalf("task %d decoded the layout again", i)
		}
		a.Job = e.spec
		if _, err := jc.get(a); err != nil {
			t.Fatal(err)
		}
	}
	if fetches != 1 || compiles.Load()-before != 1 {
		t.Fatalf("%d fetches, %d compiles for 10 tasks of one job (want 1, 1)", fetches, compiles.Load()-before)
	}
}

// readReports reads a report batch as a coordinator does: binary (as the
// worker sends it) or JSON.
func readReports(r *http.Request) api.ReportBatch {
	var req api.ReportBatch
	if r.Header.Get("Content-Type") != api.ContentTypeBinary {
		json.NewDecoder(r.Body).Decode(&req)
		return req
	}
	b, _ := io.ReadAll(r.Body)
	if err := req.ReadWire(b); err != nil {
		panic(err) // the worker sent a bad body: the test fails
	}
	return req
}

// writeWire answers v in binary when asked, as a coordinator does.
func writeWire(w http.ResponseWriter, r *http.Request, v interface{ AppendWire([]byte) []byte }) {
	if r.Header.Get("Accept") != api.ContentTypeBinary {
		json.NewEncoder(w).Encode(v)
		return
	}
	w.Header().Set("Content-Type", api.ContentTypeBinary)
	w.Write(v.AppendWire(nil))
}
