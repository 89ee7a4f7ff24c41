package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/internal/clustertest"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/storage/miniotest"
)

// TestTrainClusterDataParallel: `sluice train --coordinators --num-workers
// 2` runs two ranks as jobs of a cluster of one coordinator and three
// worker processes. The worker running rank 1 is killed with SIGKILL after
// a checkpoint; rank 0 then fails on its broken ring, and the driver
// starts both ranks again from the checkpoint on the two workers left. The
// steps it prints (each once) equal, loss and gradient norm bit for bit,
// those of the same two ranks run by hand with --workers and --rank and
// no kill; the model is written.
func TestTrainClusterDataParallel(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of processes and a killed worker; about 10 s")
	}
	trainClusterDP(t, "")
}

// TestTrainClusterDataParallelS3 is TestTrainClusterDataParallel with
// --out in s3:// (a real MinIO server): the rendezvous, the checkpoints,
// the metrics and the model go through the bucket, no shared directory.
func TestTrainClusterDataParallelS3(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of processes and a killed worker; about 10 s")
	}
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("train-dp")
	trainClusterDP(t, "s3://train-dp/runs/a")
}

// trainClusterDP runs the test with the cluster run's --out got (a local
// temporary directory when empty).
func trainClusterDP(t *testing.T, got string) {
	dir := t.TempDir()
	data := filepath.Join(dir, "rows.jsonl")
	var rows strings.Builder
	for i := range 24 {
		js, _ := json.Marshal(map[string]string{"text": fmt.Sprintf("row %d: the quick brown fox jumps over the lazy dog %d", i, i*7)})
		rows.Write(append(js, '\n'))
	}
	writeFile(t, data, rows.String())
	fixture, err := filepath.Abs(filepath.Join("..", "..", "infer", "model", "testdata", "fixtures", "llama3"))
	if err != nil {
		t.Fatal(err)
	}
	const steps = 24
	common := []string{"train", "--model", fixture, "--data", data, "--steps", fmt.Sprint(steps), "--lr", "1e-3",
		"--batch-size", "4", "--max-seq-len", "16", "--device", "cpu", "--seed", "3", "--checkpoint-every", "4"}

	// The reference: both ranks by hand, no kill.
	ref := filepath.Join(dir, "ref")
	addrs := clustertest.Addr(t) + "," + clustertest.Addr(t)
	var hand []*proc
	for r := range 2 {
		hand = append(hand, spawn(t, append(common, "--out", ref, "--workers", addrs, "--rank", fmt.Sprint(r))...))
	}
	for r, p := range hand {
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("rank %d by hand: %v\n%s", r, err, p.out)
		}
	}
	want := stepLines(t, readFile(t, filepath.Join(ref, "metrics.jsonl")))
	if len(want) != steps {
		t.Fatalf("the reference wrote %d steps, want %d", len(want), steps)
	}

	// The cluster.
	const token = "train-dp-token"
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, token)
	coord := clustertest.Addr(t)
	spawn(t, "coordinator", "--node-id", "n1", "--data-dir", filepath.Join(dir, "n1"), "--raft-addr", clustertest.Addr(t),
		"--api-addr", coord, "--token-file", tokenFile, "--worker-timeout", "2s", "--bootstrap")
	cl := api.NewClient([]string{coord}, token)
	ctx := context.Background()
	clustertest.Poll(t, "n1 leads", func() bool {
		var st api.ClusterStatus
		return cl.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1"
	})
	workers := map[string]*proc{} // by data directory
	for i := range 3 {
		wd := filepath.Join(dir, fmt.Sprint("w", i+1))
		workers[wd] = spawn(t, "worker", "--coordinators", coord, "--data-dir", wd, "--addr", "127.0.0.1:0",
			"--resources", "cpu=1,memory=1GiB", "--token-file", tokenFile, "--heartbeat", "100ms")
	}
	clustertest.WaitReady(t, cl, 3)
	if got == "" {
		got = filepath.Join(dir, "got")
	}
	fsys, err := storage.For(got)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, _ := storage.ReadFile(ctx, fsys, storage.Join(got, name))
		return string(b)
	}
	driver := spawn(t, append(common, "--out", got, "--coordinators", coord, "--token-file", tokenFile,
		"--num-workers", "2", "--rank-host", "127.0.0.1", "--max-restarts", "2", "--step-delay", "150ms")...)

	// Kill rank 1's worker once a checkpoint of step 8 or later is
	// written, mid-run.
	clustertest.Poll(t, "a checkpoint of step 8 or later", func() bool {
		var st struct {
			Step int `json:"step"`
		}
		return json.Unmarshal([]byte(read("checkpoint/state.json")), &st) == nil && st.Step >= 8
	})
	m := regexp.MustCompile(`generation 0 rank 1: job (\S+)`).FindStringSubmatch(driver.out.String())
	if m == nil {
		t.Fatalf("the driver did not say rank 1's job:\n%s", driver.out)
	}
	var js api.JobStatus
	if err := cl.Do(ctx, http.MethodGet, "/v1/jobs/"+m[1], nil, &js); err != nil {
		t.Fatal(err)
	}
	killed := ""
	for _, task := range js.Tasks {
		if task.State != state.TaskRunning {
			continue
		}
		for wd, p := range workers {
			if id, err := os.ReadFile(filepath.Join(wd, "worker-id")); err == nil && strings.TrimSpace(string(id)) == task.Worker {
				p.kill9(t)
				killed = wd
			}
		}
	}
	if killed == "" {
		t.Fatalf("no worker runs rank 1's job %s: %+v", m[1], js.Tasks)
	}
	if read("model.safetensors") != "" {
		t.Fatal("the run finished before the kill")
	}
	t.Logf("killed %s, which ran rank 1", filepath.Base(killed))

	done := make(chan error, 1)
	go func() { done <- driver.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("driver: %v\n%s", err, driver.out)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("the driver did not finish\n%s", driver.out)
	}
	out := driver.out.String()
	if !strings.Contains(out, "restarting all 2 ranks from the last checkpoint") {
		t.Errorf("the driver did not restart a generation:\n%s", out)
	}
	printed := stepLines(t, out)
	if len(printed) != steps {
		t.Fatalf("the driver printed %d step lines, want %d (each step once):\n%s", len(printed), steps, out)
	}
	for i := range steps {
		g, w := printed[i], want[i]
		if g["step"] != w["step"] || g["loss"] != w["loss"] || g["grad_norm"] != w["grad_norm"] || g["lr"] != w["lr"] {
			t.Errorf("step %d: got %v, want %v (the run by hand)", i+1, g, w)
		}
	}
	// Generation 1 resumed from a checkpoint, not from step 0.
	if m := regexp.MustCompile(`generation 1 resumes from \S+ \(step (\d+)\)`).FindStringSubmatch(out); m == nil {
		t.Errorf("generation 1 did not resume from a checkpoint:\n%s", out)
	} else if c, _ := strconv.Atoi(m[1]); c < 8 || c%4 != 0 {
		t.Errorf("generation 1 resumed from step %d, want a checkpoint's step (every 4) from 8 on", c)
	}
	for _, f := range []string{"config.json", "model.safetensors"} {
		if _, err := fsys.Stat(ctx, storage.Join(got, f)); err != nil {
			t.Error(err)
		}
	}
}

// stepLines parses the JSON lines of text that carry a step, keeping the
// number fields.
func stepLines(t *testing.T, text string) []map[string]float64 {
	t.Helper()
	var out []map[string]float64
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var raw map[string]any
		if json.Unmarshal([]byte(line), &raw) != nil {
			continue
		}
		m := map[string]float64{}
		for k, v := range raw {
			if f, ok := v.(float64); ok {
				m[k] = f
			}
		}
		if m["step"] > 0 {
			out = append(out, m)
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
