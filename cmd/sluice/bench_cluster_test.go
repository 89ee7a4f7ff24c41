package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestBenchCluster runs `bench cluster` at a tiny size: the cluster's
// processes are this test binary (TestMain makes it act as sluice), the
// output is checked against the local executor's, and the table printed.
// No timing is asserted.
func TestBenchCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator and workers as processes")
	}
	t.Setenv("SLUICE_TEST_MAIN", "1")
	out := runOut(t, "bench", "cluster", "--rows", "200000", "--files", "2", "--workers", "1,2", "--runs", "1",
		"--queries", "q2", "--cpu-per-worker", "1", "--dir", t.TempDir())
	for _, want := range []string{"outputs: the same rows", "speed-up local/cluster", "json: [{"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	// query, workers, cluster wall, local wall, speed-up, stages.
	row := regexp.MustCompile(`(?m)^q2 +[12] +[0-9.]+s +[0-9.]+s +[0-9.]+ +plan 1×`)
	if n := len(row.FindAllString(out, -1)); n != 2 {
		t.Errorf("%d rows of q2 in the table, want 2 (1 and 2 workers):\n%s", n, out)
	}
}

// TestBenchClusterFailover runs `bench cluster --failover` once at a small
// size: the leader and a worker are killed mid-job and the output must
// equal the undisturbed run's (the command fails otherwise).
func TestBenchClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 coordinators and 3 workers as processes")
	}
	t.Setenv("SLUICE_TEST_MAIN", "1")
	out := runOut(t, "bench", "cluster", "--failover", "--failover-rows", "500000", "--files", "4", "--workers", "3", "--runs", "1",
		"--cpu-per-worker", "1", "--worker-timeout", "2s", "--dir", t.TempDir())
	for _, want := range []string{"the same rows as the undisturbed run's", "leader kill → next task done", "\n1  ", "json: {"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
}
