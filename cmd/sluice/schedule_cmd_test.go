package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/coordinator"
	"github.com/sluicehq/sluice/internal/clustertest"
)

// TestScheduleAndStatusCommands: schedule list and remove against three
// real coordinators; a submitted plan's relative paths are resolved
// against the directory it was submitted from; cluster status marks a
// coordinator that stopped answering; with no coordinator up, a command
// fails with a message saying so (after --timeout, not the API's 30 s).
func TestScheduleAndStatusCommands(t *testing.T) {
	dir := planDir(t, "schedule: {cron: \"0 3 * * *\"}\n")
	const token = "sched-token"
	t.Setenv("SLUICE_TOKEN", token)
	api1, raft1 := loopback(t), loopback(t)
	background(t, "coordinator", "--node-id", "n1", "--data-dir", filepath.Join(dir, "n1"),
		"--raft-addr", raft1, "--api-addr", api1, "--bootstrap", "--worker-timeout", "2s")
	cl := api.NewClient([]string{api1}, token)
	poll(t, "n1 leads", func() bool {
		var st api.ClusterStatus
		return cl.Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st) == nil && st.Leader == "n1" && len(st.Nodes) == 1 && st.Nodes[0].APIAddr != ""
	})
	var others []*coordinator.Coordinator
	for _, id := range []string{"n2", "n3"} {
		c, err := coordinator.Start(context.Background(), coordinator.Config{NodeID: id, DataDir: filepath.Join(dir, id),
			RaftAddr: loopback(t), APIAddr: loopback(t), Join: "http://" + api1, Token: token, Secret: clustertest.SecretOf(t, filepath.Join(dir, "n1")),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLog: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Shutdown() })
		others = append(others, c)
	}
	t.Setenv("SLUICE_COORDINATORS", api1)
	poll(t, "three voters", func() bool {
		_, out, _ := sluice(t, "cluster", "status")
		return strings.Count(out, "Voter") == 3
	})

	// A scheduled plan: registered, listed, removed by name.
	code, out, errOut := sluice(t, "submit", "plan.yaml")
	if code != 0 || !strings.HasPrefix(out, "s-") || !strings.Contains(errOut, "relative paths resolved against "+dir+": out/q/") {
		t.Fatalf("submit: exit %d %q %s", code, out, errOut)
	}
	code, out, errOut = sluice(t, "schedule", "list")
	if code != 0 || !strings.Contains(out, "q ") || !strings.Contains(out, "0 3 * * *") || !strings.Contains(out, "plan.yaml") {
		t.Fatalf("schedule list: exit %d\n%s%s", code, out, errOut)
	}
	// The registered plan writes under the submit directory, whatever the
	// workers' directories.
	var job api.JobStatus
	code, out, _ = sluice(t, "schedule", "remove", "q")
	if code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("schedule remove: exit %d %s", code, out)
	}
	if _, out, _ := sluice(t, "schedule", "list"); strings.Contains(out, "0 3 * * *") {
		t.Fatalf("still listed after remove:\n%s", out)
	}
	if code, _, errOut := sluice(t, "schedule", "remove", "q"); code != 1 || !strings.Contains(errOut, `no schedule with the id or name "q"`) {
		t.Fatalf("remove again: exit %d %s", code, errOut)
	}

	// A plain job: its stored plan has the absolute write path.
	plain := strings.Replace(mustRead(t, "plan.yaml"), "schedule: {cron: \"0 3 * * *\"}\n", "", 1)
	writeFile(t, "once.yaml", plain)
	code, out, errOut = sluice(t, "submit", "once.yaml")
	if code != 0 {
		t.Fatalf("submit once.yaml: exit %d %s", code, errOut)
	}
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs/"+strings.TrimSpace(out), nil, &job); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(job.Job.Plan), "parquet: "+dir+"/out/q/") {
		t.Errorf("stored plan:\n%s", job.Job.Plan)
	}
	// --keep-paths sends them as written.
	code, out, _ = sluice(t, "submit", "once.yaml", "--keep-paths")
	if code != 0 {
		t.Fatal(code)
	}
	if err := cl.Do(context.Background(), http.MethodGet, "/v1/jobs/"+strings.TrimSpace(out), nil, &job); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(job.Job.Plan), "parquet: out/q/") {
		t.Errorf("stored plan with --keep-paths:\n%s", job.Job.Plan)
	}

	// n3 stops: cluster status marks it.
	others[1].Shutdown()
	code, out, errOut = sluice(t, "cluster", "status")
	if code != 0 || !strings.Contains(out, "ANSWERS") || strings.Count(out, " yes") != 2 || !strings.Contains(out, "NO: ") {
		t.Fatalf("cluster status with n3 down: exit %d\n%s%s", code, out, errOut)
	}

	// No coordinator at the address: a clear error.
	t.Setenv("SLUICE_COORDINATORS", loopback(t))
	code, _, errOut = sluice(t, "jobs", "--timeout", "300ms")
	if code != 1 || !strings.Contains(errOut, "no coordinator answered") || !strings.Contains(errOut, "SLUICE_COORDINATORS") {
		t.Fatalf("no coordinator: exit %d %s", code, errOut)
	}
}
