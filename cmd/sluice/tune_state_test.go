package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/coordinator"
	"github.com/sluicehq/sluice/internal/clustertest"
	"github.com/sluicehq/sluice/tune"
)

// slowTrainScript prints `sluice train`'s lines, one step every 0.1 s, the
// loss least at lr = 1e-2 and falling with the steps (fakeTrainScript's,
// slowed so that trials are caught running).
const slowTrainScript = `#!/bin/sh
lr=0.1; steps=5
for a in "$@"; do
  case $a in
    --lr=*) lr=${a#--lr=} ;;
    --steps=*) steps=${a#--steps=} ;;
    --out=*) mkdir -p "${a#--out=}" ;;
  esac
done
i=1
while [ $i -le $steps ]; do
  awk -v lr="$lr" -v i="$i" 'BEGIN { l = log(lr)/log(10) + 2; printf "{\"step\": %d, \"loss\": %.6f}\n", i, l*l + 1/i }'
  sleep 0.1
  i=$((i+1))
done
`

// tuneStateExperiment: six trials of 30 steps, two at once, FIFO over a
// grid, so that the table does not depend on the order reports arrive in.
const tuneStateExperiment = `name: state-grid
tune:
  metric: loss
  mode: min
  searcher: grid
  scheduler: fifo
  max_concurrent: 2
  seed: 1
  cpu: 1
  command: [SCRIPT]
  space:
    lr: {grid: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]}
train:
  model: fixture
  steps: 30
`

// TestTuneClusterDriverKill: `sluice tune --coordinators` over three
// coordinator and two worker processes. The leader is killed with SIGKILL
// while trials run (and restarted from its data directory), then the
// experiment's driver is killed with SIGKILL once some trials are done,
// then the new leader is killed too, and the driver's own experiment.json
// and trials.jsonl are removed: `--resume` must continue from the record
// in the cluster's replicated state, through the two coordinators left.
// The trials the record held as done are not run again, and the trial
// table and `tune status --coordinators` equal those of the same
// experiment run locally, undisturbed.
func TestTuneClusterDriverKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills coordinator and driver processes; about 30 s")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "train.sh")
	if err := os.WriteFile(script, []byte(slowTrainScript), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "exp.yaml")
	writeFile(t, file, strings.ReplaceAll(tuneStateExperiment, "SCRIPT", script))
	want := filepath.Join(dir, "want")
	if code, stdout, stderr := sluice(t, "tune", file, "--dir", want); code != 0 {
		t.Fatalf("local run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	_, wantStatus, _ := sluice(t, "tune", "status", want)

	const token = "tune-state-token"
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, token)
	type node struct {
		id, api, raft string
		p             *proc
	}
	args := func(n *node) []string {
		a := []string{"coordinator", "--node-id", n.id, "--data-dir", filepath.Join(dir, n.id), "--raft-addr", n.raft,
			"--api-addr", n.api, "--token-file", tokenFile, "--worker-timeout", "2s"}
		if n.id != "n1" {
			a = append(a, "--cluster-secret-file", filepath.Join(dir, "n1", coordinator.SecretFile))
		}
		return a
	}
	ctx := context.Background()
	var nodes []*node
	var urls []string
	for i := range 3 {
		n := &node{id: fmt.Sprint("n", i+1), api: clustertest.Addr(t), raft: clustertest.Addr(t)}
		a := args(n)
		if i == 0 {
			a = append(a, "--bootstrap")
		} else {
			a = append(a, "--join", "http://"+nodes[0].api)
		}
		n.p = spawn(t, a...)
		nodes, urls = append(nodes, n), append(urls, n.api)
		if i == 0 {
			one := api.NewClient(urls[:1], token)
			clustertest.Poll(t, "n1 leads", func() bool {
				var st api.ClusterStatus
				return one.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1"
			})
		}
	}
	cl := api.NewClient(urls, token)
	status := func() (st api.ClusterStatus) {
		cl.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st)
		return st
	}
	clustertest.Poll(t, "three voters", func() bool { return status().Voters() == 3 })
	for i := range 2 {
		spawn(t, "worker", "--coordinators", strings.Join(urls, ","), "--data-dir", filepath.Join(dir, fmt.Sprint("w", i+1)),
			"--addr", "127.0.0.1:0", "--resources", "cpu=1,memory=1GiB", "--token-file", tokenFile, "--heartbeat", "100ms")
	}
	clustertest.WaitReady(t, cl, 2)
	killLeader := func() *node {
		t.Helper()
		leader := status().Leader
		for _, n := range nodes {
			if n.id == leader {
				n.p.kill9(t)
				t.Logf("killed the leader %s", n.id)
				return n
			}
		}
		t.Fatalf("no leader among the nodes: %q", leader)
		return nil
	}
	// record reads the experiment's record from the cluster and counts
	// its trials by status.
	record := func() (*tune.Experiment, map[tune.Status]int) {
		e, err := cl.Experiment(ctx, "state-grid")
		if err != nil {
			return nil, nil
		}
		exp, err := tune.UnmarshalRecord(e.Record, "the record")
		if err != nil {
			t.Fatal(err)
		}
		n := map[tune.Status]int{}
		for _, tr := range exp.Trials {
			n[tr.Status]++
		}
		return exp, n
	}
	got := filepath.Join(dir, "got")
	cluster := []string{"--coordinators", strings.Join(urls, ","), "--token-file", tokenFile}
	driver := spawn(t, append([]string{"tune", file, "--dir", got}, cluster...)...)
	waitRecord := func(what string, ok func(map[tune.Status]int) bool) {
		t.Helper()
		clustertest.Poll(t, what, func() bool {
			_, n := record()
			return n != nil && ok(n)
		})
	}

	// The leader dies while the first trials run; the driver goes on
	// through the new one, and the killed node comes back.
	waitRecord("a trial running", func(n map[tune.Status]int) bool { return n[tune.Running] > 0 })
	killed := killLeader()
	waitRecord("two trials done after the leader's kill", func(n map[tune.Status]int) bool { return n[tune.Done] >= 2 && n[tune.Running] > 0 })
	killed.p = spawn(t, args(killed)...)
	own := api.NewClient([]string{killed.api}, token)
	clustertest.Poll(t, "the restarted node to serve the record", func() bool {
		_, err := own.Experiment(ctx, "state-grid")
		return err == nil
	})

	// The driver dies with trials done and trials running.
	waitRecord("four trials done, one running", func(n map[tune.Status]int) bool { return n[tune.Done] >= 4 && n[tune.Running] > 0 })
	driver.kill9(t)
	exp, n := record()
	if n[tune.Done] == len(exp.Trials) && len(exp.Trials) == 6 {
		t.Fatal("the experiment finished before its driver was killed")
	}
	var done []string
	for _, tr := range exp.Trials {
		if tr.Status == tune.Done {
			done = append(done, tr.ID)
		}
	}
	t.Logf("killed the driver with %v done, %d trials in the record", done, len(exp.Trials))
	// The cluster's record is all the resume has.
	for _, f := range []string{"experiment.json", "trials.jsonl"} {
		if err := os.Remove(filepath.Join(got, f)); err != nil {
			t.Fatal(err)
		}
	}
	killLeader()

	code, stdout, stderr := sluice(t, append([]string{"tune", file, "--dir", got, "--resume"}, cluster...)...)
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, `resuming from the cluster's record of experiment "state-grid"`) {
		t.Errorf("the resume did not say it read the cluster's record:\n%s", stderr)
	}
	if a, b := tuneTable(t, want), tuneTable(t, got); a != b {
		t.Errorf("the resumed trial table:\n%s\nthe undisturbed local run's:\n%s", b, a)
	}
	// A trial the record held as done ran once: one run directory.
	for _, id := range done {
		if runs, _ := filepath.Glob(filepath.Join(got, "trials", id, "run-*")); len(runs) != 1 {
			t.Errorf("done trial %s ran again: %v", id, runs)
		}
	}
	// Some trial the driver left running ran again.
	if runs, _ := filepath.Glob(filepath.Join(got, "trials", "*", "run-2")); len(runs) == 0 {
		t.Errorf("no trial ran a second time after the driver's kill")
	}
	code, gotStatus, stderr := sluice(t, append([]string{"tune", "status", "state-grid"}, cluster...)...)
	if code != 0 || gotStatus != wantStatus {
		t.Errorf("tune status --coordinators: exit %d %s\n%s\nthe local run's:\n%s", code, stderr, gotStatus, wantStatus)
	}
	// A new run of the same experiment is refused while the record lives;
	// tune rm removes it.
	code, _, stderr = sluice(t, append([]string{"tune", file, "--dir", filepath.Join(dir, "again")}, cluster...)...)
	if code != 1 || !strings.Contains(stderr, `already holds an experiment: the cluster's record of experiment "state-grid"`) {
		t.Errorf("a new run over the record: exit %d: %s", code, stderr)
	}
	if code, _, stderr := sluice(t, append([]string{"tune", "rm", "state-grid"}, cluster...)...); code != 0 {
		t.Fatalf("tune rm: exit %d: %s", code, stderr)
	}
	clustertest.Poll(t, "the record removed", func() bool {
		_, err := cl.Experiment(ctx, "state-grid")
		return errors.Is(err, api.ErrNotFound)
	})
}
