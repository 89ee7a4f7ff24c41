package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// A task whose workers keep dying fails the job after state.MaxDeaths
// deaths, with real worker processes: one coordinator process and, one at
// a time, worker processes that hold the job's task running (the testing
// flag --task-delay) and are killed with SIGKILL while they do. Each death
// puts the task back with one more death and does not count as a
// failure; the death past MaxDeaths fails the task and the job, naming
// the deaths and the last worker, and nothing is published.
func TestTaskThatKillsItsWorkersProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("worker processes killed one after another")
	}
	dir := t.TempDir()
	const token = "deaths-token"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "data", "sales", "part-0.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "part-0.parquet"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	apiAddr := loopback(t)
	spawn(t, "coordinator", "--node-id", "n1", "--data-dir", filepath.Join(dir, "n1"), "--raft-addr", loopback(t),
		"--api-addr", apiAddr, "--token-file", tokenFile, "--bootstrap", "--worker-timeout", "1s")
	cl := api.NewClient([]string{apiAddr}, token)
	poll(t, "n1 leads", func() bool {
		var st api.ClusterStatus
		return cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1"
	})
	out := filepath.Join(dir, "out")
	plan := fmt.Sprintf("name: deaths\nread:\n  parquet: %s/\nsteps:\n  - filter: \"price > 50\"\nwrite:\n  parquet: %s/\n", src, out)
	var r api.IDResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: "deaths", Plan: plan,
		MaxRetries: 3, Needs: state.Resources{CPU: 1}}, &r); err != nil {
		t.Fatal(err)
	}
	job := func() (js api.JobStatus) {
		cl.Do(context.Background(), http.MethodGet, "/v1/jobs/"+r.ID, nil, &js)
		return js
	}
	// The exec task running on the only live worker, if any.
	running := func(js api.JobStatus) *state.Task {
		for i, tk := range js.Tasks {
			if tk.State == state.TaskRunning && tk.Stage > 0 && js.Stages[tk.Stage].Kind == state.StageExec {
				return &js.Tasks[i]
			}
		}
		return nil
	}
	var last string
	kills := 0
	for ; kills < 3*(state.MaxDeaths+1); kills++ {
		wdir := filepath.Join(dir, fmt.Sprint("w", kills))
		w := spawn(t, "worker", "--coordinators", apiAddr, "--data-dir", wdir, "--addr", "127.0.0.1:0",
			"--resources", "cpu=1,memory=1GiB", "--token-file", tokenFile, "--heartbeat", "100ms", "--task-delay", "1h")
		var tk *state.Task
		// The worker after the last death only cleans the failed job up.
		done := false
		poll(t, fmt.Sprintf("a task running on worker %d", kills), func() bool {
			js := job()
			tk, done = running(js), js.Job.State.Done()
			return tk != nil || done
		})
		if tk == nil {
			break
		}
		if tk.Failures != 0 {
			t.Fatalf("task %s counts %d failures after %d deaths: a death is not a failure", tk.ID, tk.Failures, tk.Deaths)
		}
		t.Logf("kill %d: task %s on %s, deaths %d", kills, tk.ID, tk.Worker, tk.Deaths)
		last = tk.Worker
		w.kill9(t)
		poll(t, "the dead worker's task to leave it", func() bool {
			js := job()
			for _, x := range js.Tasks {
				if x.ID == tk.ID {
					return x.State != state.TaskRunning || x.Worker != last
				}
			}
			return false
		})
	}
	js := job()
	if js.Job.State != state.JobFailed {
		t.Fatalf("job %s after %d worker deaths: %s (%s)", r.ID, kills, js.Job.State, js.Job.Error)
	}
	var failed *state.Task
	for i, tk := range js.Tasks {
		if tk.State == state.TaskFailed {
			failed = &js.Tasks[i]
		}
	}
	want := fmt.Sprintf("%d workers died running it, the last %s", state.MaxDeaths+1, last)
	if failed == nil || failed.Deaths != state.MaxDeaths+1 || !strings.Contains(js.Job.Error, want) {
		t.Fatalf("job error %q, failed task %+v: want %d deaths and %q", js.Job.Error, failed, state.MaxDeaths+1, want)
	}
	t.Logf("job %s failed after %d kills: %s", r.ID, kills, js.Job.Error)
	if _, err := os.Stat(filepath.Join(out, "_SUCCESS")); err == nil {
		t.Fatal("the failed job published its output")
	}
}
