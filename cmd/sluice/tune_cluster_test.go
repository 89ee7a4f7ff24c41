package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/coordinator"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// tuneClusterExperiment is a grid over lr and lora_rank of the llama3
// fixture's LoRA fine-tune: four trials of 60 steps, two at once, FIFO
// (so that which trials finish does not depend on the order reports
// arrive in).
const tuneClusterExperiment = `name: lora-grid
tune:
  metric: loss
  mode: min
  searcher: grid
  scheduler: fifo
  max_concurrent: 2
  seed: 1
  cpu: 1
  memory: 64MiB
  space:
    lr: {grid: [0.001, 0.03]}
    lora_rank: {grid: [2, 4]}
train:
  model: ROOT/infer/model/testdata/fixtures/llama3
  data: ROOT/examples/tune/train.jsonl
  steps: 60
  batch_size: 4
  max_seq_len: 24
  device: cpu
  seed: 0
`

// TestTuneClusterWorkerKill runs `sluice tune --coordinators` over a
// loopback cluster of three coordinator and two worker processes (one CPU
// each: one trial per worker), kills a worker with SIGKILL while its trial
// has reported some steps, and checks that the trial ran again on the
// other worker from its checkpoint and that the trial table equals the one
// of the same experiment run locally, undisturbed (training on the CPU is
// deterministic: the losses match exactly).
func TestTuneClusterWorkerKill(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "exp.yaml")
	writeFile(t, file, strings.ReplaceAll(tuneClusterExperiment, "ROOT", root))

	// The undisturbed run, locally.
	t.Setenv("SLUICE_TEST_MAIN", "1") // trial processes act as sluice
	old := trainCommand
	trainCommand = func() ([]string, error) { return []string{os.Args[0], "train"}, nil }
	t.Cleanup(func() { trainCommand = old })
	want := filepath.Join(dir, "want")
	if code, stdout, stderr := sluice(t, "tune", file, "--dir", want); code != 0 {
		t.Fatalf("local run: exit %d\n%s\n%s", code, stdout, stderr)
	}

	const token = "tune-token"
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, token)
	var urls []string
	for i := range 3 {
		id, apiAddr := fmt.Sprint("n", i+1), loopback(t)
		a := []string{"coordinator", "--node-id", id, "--data-dir", filepath.Join(dir, id), "--raft-addr", loopback(t),
			"--api-addr", apiAddr, "--token-file", tokenFile, "--worker-timeout", "2s"}
		if i == 0 {
			a = append(a, "--bootstrap")
		} else {
			a = append(a, "--join", "http://"+urls[0], "--cluster-secret-file", filepath.Join(dir, "n1", coordinator.SecretFile))
		}
		spawn(t, a...)
		urls = append(urls, apiAddr)
		if i == 0 {
			one := api.NewClient(urls[:1], token)
			poll(t, "n1 leads", func() bool {
				var st api.ClusterStatus
				return one.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1"
			})
		}
	}
	ctx := context.Background()
	cl := api.NewClient(urls, token)
	status := func() (st api.ClusterStatus) {
		cl.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st)
		return st
	}
	poll(t, "three voters", func() bool { return status().Voters() == 3 })
	workers := map[string]*proc{}
	for i := range 2 {
		wdir := filepath.Join(dir, fmt.Sprint("w", i+1))
		p := spawn(t, "worker", "--coordinators", strings.Join(urls, ","), "--data-dir", wdir, "--addr", "127.0.0.1:0",
			"--resources", "cpu=1,memory=1GiB", "--token-file", tokenFile, "--heartbeat", "100ms")
		poll(t, "worker id", func() bool { _, err := os.Stat(filepath.Join(wdir, "worker-id")); return err == nil })
		id, _ := os.ReadFile(filepath.Join(wdir, "worker-id"))
		workers[strings.TrimSpace(string(id))] = p
	}
	poll(t, "two workers", func() bool { return len(status().Workers) == 2 })

	got := filepath.Join(dir, "got")
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, stdout, stderr := sluice(t, "tune", file, "--dir", got, "--coordinators", strings.Join(urls, ","), "--token-file", tokenFile)
		done <- result{code, stdout, stderr}
	}()

	// Kill the worker of a trial that has reported at least 5 steps.
	var killed string
	deadline := time.Now().Add(60 * time.Second)
	for killed == "" {
		if time.Now().After(deadline) {
			t.Fatal("no trial job ran long enough to kill its worker")
		}
		select {
		case r := <-done:
			t.Fatalf("tune ended before a worker was killed: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		var jobs []state.Job
		if cl.Do(ctx, http.MethodGet, "/v1/jobs", nil, &jobs) != nil {
			continue
		}
		for _, j := range jobs {
			if j.State.Done() {
				continue
			}
			var js api.JobStatus
			if cl.Do(ctx, http.MethodGet, "/v1/jobs/"+j.ID, nil, &js) != nil {
				continue
			}
			for _, tk := range js.Tasks {
				if tk.Stage != 1 || tk.State != state.TaskRunning || workers[tk.Worker] == nil {
					continue
				}
				// The job's run: the plan reads got/trials/ID/run-1/spec.jsonl.
				m, _ := filepath.Glob(filepath.Join(got, "trials", "*", "run-1", "spec.jsonl"))
				for _, spec := range m {
					if !strings.Contains(string(js.Job.Plan), filepath.Dir(spec)+"/") {
						continue
					}
					lines, _ := os.ReadFile(filepath.Join(filepath.Dir(spec), "metrics.jsonl"))
					if strings.Count(string(lines), "\n") >= 5 {
						workers[tk.Worker].kill9(t)
						killed = tk.Worker
						t.Logf("killed worker %s while %s had %d steps", tk.Worker, filepath.Dir(spec), strings.Count(string(lines), "\n"))
					}
				}
				if killed != "" {
					break
				}
			}
			if killed != "" {
				break
			}
		}
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(120 * time.Second):
		t.Fatal("tune did not finish within 2 minutes of the kill")
	}
	if r.code != 0 {
		t.Fatalf("cluster run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if a, b := tuneTable(t, want), tuneTable(t, got); a != b {
		t.Errorf("the cluster's trial table:\n%s\nthe undisturbed local run's:\n%s", b, a)
	}
	resumed := false
	for id, p := range workers {
		if id != killed && strings.Contains(p.out.String(), "] train: resumed from ") {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no trial resumed from a checkpoint on the surviving worker")
	}
	// Each run's metrics hold every step once, in order.
	runs, _ := filepath.Glob(filepath.Join(got, "trials", "*", "run-*", "metrics.jsonl"))
	if len(runs) != 4 {
		t.Errorf("runs %v", runs)
	}
	for _, p := range runs {
		b, _ := os.ReadFile(p)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for i, l := range lines {
			var m struct{ Step int }
			if json.Unmarshal([]byte(l), &m) != nil || m.Step != i+1 {
				t.Errorf("%s line %d: %s", p, i+1, l)
				break
			}
		}
		if len(lines) != 60 {
			t.Errorf("%s: %d lines", p, len(lines))
		}
	}
}

// tuneTable is an experiment's trials.jsonl without its checkpoint paths
// (which name the directory).
func tuneTable(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "trials.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		delete(row, "checkpoint")
		js, _ := json.Marshal(row)
		out = append(out, string(js))
	}
	return strings.Join(out, "\n")
}

// Cluster-only settings are checked before anything is submitted, with
// errors naming the file position or the flag.
func TestTuneClusterErrors(t *testing.T) {
	file, dir := tuneFile(t, strings.Replace(tuneExperiment, "  seed: 7\n", "  seed: 7\n  memory: lots\n", 1))
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, "x")
	cluster := []string{"--coordinators", "127.0.0.1:1", "--token-file", tokenFile}
	code, _, stderr := sluice(t, append([]string{"tune", file, "--dir", filepath.Join(dir, "exp")}, cluster...)...)
	if want := "sluice tune: " + file + ":10:11: tune.memory: size \"lots\": want a number"; code != 1 || !strings.HasPrefix(stderr, want) {
		t.Errorf("exit %d: %s\nwant %s", code, stderr, want)
	}
	file, _ = tuneFile(t, tuneExperiment)
	code, _, stderr = sluice(t, append([]string{"tune", file, "--dir", "s3://bucket/exp"}, cluster...)...)
	if want := "sluice tune: --dir s3://bucket/exp: trials on a cluster need a directory every worker shares"; code != 1 || !strings.HasPrefix(stderr, want) {
		t.Errorf("exit %d: %s\nwant %s", code, stderr, want)
	}
}
