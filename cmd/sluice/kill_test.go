package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/coordinator"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// TestMain lets the test binary act as the sluice command itself when
// SLUICE_TEST_MAIN=1, so tests can run coordinators as real processes and
// kill them with SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("SLUICE_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// proc is a sluice command running as a child process.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func spawn(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], args...), out: &syncBuffer{}}
	p.cmd.Env = append(os.Environ(), "SLUICE_TEST_MAIN=1")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%s:\n%s", args[:3], p.out)
		}
	})
	return p
}

// kill9 kills p with SIGKILL: no shutdown, no flush beyond what fsync did.
func (p *proc) kill9(t *testing.T) {
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// Three coordinator processes; the leader is killed with SIGKILL while jobs
// run; the jobs finish on the new leader; the killed node restarts from its
// data directory alone and catches up.
func TestCoordinatorKill9(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const token = "kill-token"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	type node struct {
		id, api, raft string
		p             *proc
	}
	nodes := make([]*node, 3)
	args := func(n *node) []string {
		a := []string{"coordinator", "--node-id", n.id, "--data-dir", filepath.Join(dir, n.id), "--raft-addr", n.raft,
			"--api-addr", n.api, "--token-file", tokenFile, "--worker-timeout", "2s"}
		if n.id != "n1" { // n1 bootstraps and generates the cluster secret into its data directory
			a = append(a, "--cluster-secret-file", filepath.Join(dir, "n1", coordinator.SecretFile))
		}
		return a
	}
	var urls []string
	for i := range nodes {
		n := &node{id: fmt.Sprint("n", i+1), api: loopback(t), raft: loopback(t)}
		nodes[i] = n
		urls = append(urls, n.api)
		a := args(n)
		if i == 0 {
			a = append(a, "--bootstrap")
		} else {
			a = append(a, "--join", "http://"+nodes[0].api)
		}
		n.p = spawn(t, a...)
		if i == 0 {
			cl := api.NewClient([]string{n.api}, token)
			poll(t, "n1 leads", func() bool {
				var st api.ClusterStatus
				return cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1"
			})
		}
	}
	cl := api.NewClient(urls, token)
	status := func(cl *api.Client) (st api.ClusterStatus) {
		cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st)
		return st
	}
	poll(t, "three voters", func() bool { return status(cl).Voters() == 3 })
	background(t, "worker", "--coordinators", "127.0.0.1:1,"+urls[1]+","+urls[2]+","+urls[0], "--data-dir", filepath.Join(dir, "w1"),
		"--addr", "127.0.0.1:0", "--resources", "cpu=2,gpu=0,memory=4GiB", "--token-file", tokenFile, "--heartbeat", "100ms")

	plan := fmt.Sprintf("name: k\nread:\n  parquet: %s/\nsteps:\n  - filter: \"price > 50\"\nwrite:\n  parquet: \"%s/out-{{ .RunID }}/\"\n",
		filepath.Join(root, "examples", "data", "sales"), dir)
	var ids []string
	for i := range 3 {
		var r api.IDResponse
		if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: fmt.Sprint("k", i),
			Plan: plan, MaxRetries: 2, Needs: state.Resources{CPU: 1}, RunID: fmt.Sprint("r", i)}, &r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	leader := status(cl).Leader
	var killed *node
	for _, n := range nodes {
		if n.id == leader {
			killed = n
		}
	}
	if killed == nil {
		t.Fatalf("no leader among %v", leader)
	}
	killed.p.kill9(t)
	start := time.Now()

	jobsDone := func(cl *api.Client) bool {
		for _, id := range ids {
			var js api.JobStatus
			if cl.Do(context.Background(), http.MethodGet, "/v1/jobs/"+id, nil, &js) != nil || js.Job.State != state.JobSucceeded {
				return false
			}
		}
		return true
	}
	poll(t, "the jobs to succeed after the leader's kill -9", func() bool { return jobsDone(cl) })
	t.Logf("jobs succeeded %s after the kill of %s", time.Since(start).Round(time.Millisecond), killed.id)
	for i := range ids {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprint("out-r", i), "_SUCCESS")); err != nil {
			t.Fatalf("job %s committed no output: %v", ids[i], err)
		}
	}

	// The killed node restarts with neither --bootstrap nor --join and
	// serves the replicated state, jobs included, from its own API.
	killed.p = spawn(t, args(killed)...)
	own := api.NewClient([]string{killed.api}, token)
	// Its first answer is already current: until it has applied the log it
	// restarted with, reads go to the leader.
	poll(t, "the restarted node to answer", func() bool {
		var js []state.Job
		return own.Do(context.Background(), http.MethodGet, "/v1/jobs", nil, &js) == nil
	})
	if !jobsDone(own) {
		t.Fatal("the restarted node answered with a state older than the one it had")
	}
	poll(t, "the restarted node to catch up", func() bool {
		st := status(own)
		return st.Node == killed.id && st.Leader != "" && len(st.Nodes) == 3 && jobsDone(own)
	})
}
