package worker

import (
	"context"
	"encoding/json"
	"errors"
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
			out.Tasks = append(out.Tasks, api.Assignment{Task: state.Task{ID: "j-1-t0", Job: "j-1", State: state.TaskAssigned, Attempt: 3}, Plan: "x"})
		}
		json.NewEncoder(w).Encode(out)
	case strings.HasSuffix(r.URL.Path, "/reports"):
		var req api.ReportBatch
		json.NewDecoder(r.Body).Decode(&req)
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
		Plan: "name: p\nread: {parquet: in/}\nwrite: {parquet: out/}\n"})
	if err == nil || !strings.Contains(err.Error(), `task j-1-t0: unknown stage kind ""`) {
		t.Fatalf("err %v", err)
	}
}
