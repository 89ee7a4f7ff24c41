package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/coordinator"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/internal/clustertest"
)

// syncBuffer is a buffer that commands running in goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loopback is a free loopback address (clustertest.Addr).
func loopback(t *testing.T) string { return clustertest.Addr(t) }

// background runs a long-lived command until the test ends.
func background(t *testing.T, args ...string) *syncBuffer {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan int)
	go func() { done <- runMain(ctx, &env{stdout: out, stderr: out, stdin: strings.NewReader("")}, args) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("%s exited %d:\n%s", args[0], code, out)
		}
	})
	return out
}

// poll waits for ok with a deadline (clustertest.Poll).
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	clustertest.Poll(t, what, ok)
}

func TestClusterCommands(t *testing.T) {
	dir := planDir(t, "")
	const token = "cli-token"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api1, raft1 := loopback(t), loopback(t)
	log1 := background(t, "coordinator", "--node-id", "n1", "--data-dir", filepath.Join(dir, "n1"),
		"--raft-addr", raft1, "--api-addr", api1, "--bootstrap", "--token-file", tokenFile, "--worker-timeout", "2s")
	cl := api.NewClient([]string{api1}, token)
	poll(t, "n1 leads", func() bool {
		var st api.ClusterStatus
		return cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1" && len(st.Nodes) == 1 && st.Nodes[0].APIAddr != ""
	})
	// Two more coordinators join through n1.
	urls := []string{api1}
	for _, id := range []string{"n2", "n3"} {
		c := clustertest.Start(t, coordinator.Config{NodeID: id, DataDir: filepath.Join(dir, id),
			RaftAddr: loopback(t), APIAddr: loopback(t), Join: "http://" + api1, Token: token, Secret: clustertest.SecretOf(t, filepath.Join(dir, "n1")),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLog: io.Discard})
		urls = append(urls, c.URL())
	}
	background(t, "worker", "--coordinators", strings.Join(urls, ","), "--data-dir", filepath.Join(dir, "w1"),
		"--addr", "127.0.0.1:0", "--resources", "cpu=2,gpu=0,memory=4GiB", "--token-file", tokenFile, "--heartbeat", "100ms")
	t.Setenv("SLUICE_COORDINATORS", strings.Join(urls[1:], ","))
	t.Setenv("SLUICE_TOKEN", token)
	poll(t, "three voters and a worker", func() bool {
		_, out, _ := sluice(t, "cluster", "status")
		return strings.Count(out, "Voter") == 3 && strings.Contains(out, "4294967296")
	})

	code, out, errOut := sluice(t, "submit", "plan.yaml", "--param", "min=40")
	id := strings.TrimSpace(out)
	if code != 0 || !regexp.MustCompile(`^j-\d+$`).MatchString(id) {
		t.Fatalf("submit: exit %d, %q %s", code, out, errOut)
	}
	code, out, errOut = sluice(t, "job", "status", id, "--wait")
	// The stages' progress: the planning task, the plan's stages, the commit.
	if code != 0 || !strings.Contains(out, "succeeded") || !regexp.MustCompile(`(?m)^\s+0\s+1\s+1\s+0\s+0\s.*plan$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)\s1\s+1\s+0\s+0\s+\d+\s.*commit$`).MatchString(out) || !strings.Contains(out, "output: ") {
		t.Fatalf("job status --wait: exit %d\n%s%s", code, out, errOut)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "out", "q", "*.parquet")); len(files) == 0 {
		t.Fatal("no Parquet written")
	}
	if _, out, _ := sluice(t, "jobs"); !strings.Contains(out, id) || !strings.Contains(out, "succeeded") {
		t.Fatalf("jobs:\n%s", out)
	}

	// A plan that fails at run time: exit 1 after its retries.
	bad := strings.ReplaceAll(mustRead(t, "plan.yaml"), "examples/data/sales", "examples/data/missing")
	if err := os.WriteFile("missing.yaml", []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	// Validation reads the source too, so the missing source is refused at submit.
	if code, _, errOut := sluice(t, "submit", "missing.yaml"); code != 1 || !strings.Contains(errOut, "missing.yaml:") {
		t.Fatalf("submit of an invalid plan: exit %d\n%s", code, errOut)
	}

	// Cancel: a job that cannot be placed (it needs no more than the
	// cluster has, but we cancel it at once) ends cancelled, exit 1.
	var r api.IDResponse
	err := api.NewClient(urls, token).Do(context.Background(), http.MethodPost, "/v1/jobs",
		api.SubmitRequest{Plan: mustRead(t, "plan.yaml"), Needs: state.Resources{GPU: 1}}, &r)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := sluice(t, "job", "cancel", r.ID); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: %d %s", code, out)
	}
	if code, out, _ := sluice(t, "job", "status", r.ID, "--wait"); code != 1 || !strings.Contains(out, "cancelled") {
		t.Fatalf("status of a cancelled job: exit %d\n%s", code, out)
	}

	// A wrong token: refused, and the token is in no log.
	t.Setenv("SLUICE_TOKEN", "wrong-token-xyz")
	t.Setenv("SLUICE_COORDINATORS", api1)
	if code, _, errOut := sluice(t, "jobs"); code != 1 || !strings.Contains(errOut, "unauthorized") {
		t.Fatalf("wrong token: exit %d %s", code, errOut)
	}
	if logs := log1.String(); strings.Contains(logs, token) || strings.Contains(logs, "wrong-token-xyz") || !strings.Contains(logs, "unauthorized request") {
		t.Fatalf("coordinator log:\n%s", logs)
	}
	// No coordinators: a clear error.
	t.Setenv("SLUICE_COORDINATORS", "")
	if code, _, errOut := sluice(t, "jobs"); code != 1 || !strings.Contains(errOut, "SLUICE_COORDINATORS") {
		t.Fatalf("no coordinators: exit %d %s", code, errOut)
	}
}

func mustRead(t *testing.T, file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCoordinatorNeedsBootstrapOrJoin(t *testing.T) {
	code, _, errOut := sluice(t, "coordinator", "--node-id", "n1", "--data-dir", t.TempDir(), "--raft-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "--bootstrap") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// A coordinator that joins without the cluster secret fails at once,
// naming the flag (the token is never the secret).
func TestCoordinatorJoinNeedsSecret(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("join-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_CLUSTER_SECRET", "")
	code, _, errOut := sluice(t, "coordinator", "--node-id", "n2", "--data-dir", filepath.Join(dir, "n2"), "--raft-addr", "127.0.0.1:0",
		"--api-addr", "127.0.0.1:0", "--join", "http://127.0.0.1:1", "--token-file", tokenFile)
	if code != 1 || !strings.Contains(errOut, "--cluster-secret-file") || !strings.Contains(errOut, "no cluster secret") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
