package coordinator

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/cluster/worker"
	"github.com/sluicehq/sluice/plans"
)

// The value of an environment variable a plan reads (allowed by the
// worker's --env-allow) is used by the worker that runs the work (its
// rows hold it) but never reaches the cluster: not the job status the API
// returns, not the stage names, not the coordinators' data dirs (raft.db),
// not a failing task's error. They carry ${env:NAME}. A real coordinator
// and the worker's own plan runner on loopback. (Issue 19.)
func TestEnvValuesStayOnTheWorker(t *testing.T) {
	const name, secret = "SLUICE_TEST_WHERE", "hush7q2zv9kx"
	t.Setenv(name, secret)
	base := t.TempDir()
	src := filepath.Join(base, secret, "sales")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"part-0.parquet", "part-1.parquet"} {
		b, err := os.ReadFile(filepath.Join("../../../examples/data/sales", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := start(t, 1)
	w, err := worker.New(worker.Config{Coordinators: h.urls(), DataDir: t.TempDir(), Addr: "127.0.0.1:0",
		Resources: state.Resources{CPU: 2, Memory: 1 << 30}, Token: token, Heartbeat: 100 * time.Millisecond,
		Logger: testLogger(t), EnvAllow: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(sync.OnceFunc(func() { cancel(); <-done }))
	cl := h.client()

	env := `{{ env "` + name + `" }}`
	plan := "name: envs\nread: {parquet: '" + base + "/" + env + "/sales/'}\n" +
		"steps:\n  - filter: 'category != " + env + "'\n  - with_column: {name: tag, expr: '" + env + "'}\n" +
		"write: {parquet: '" + base + "/out/" + env + "/'}\n"
	submit := func(id, plan string) api.JobStatus {
		t.Helper()
		var out api.IDResponse
		if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: id, File: "envs.yaml", Plan: plan}, &out); err != nil {
			t.Fatal(err)
		}
		return api.JobStatus{Job: state.Job{ID: out.ID}}
	}
	raw := func(id string) []byte {
		t.Helper()
		resp, err := http.DefaultClient.Do(func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, h.urls()[0]+"/v1/jobs/"+id, nil)
			r.Header.Set("Authorization", "Bearer "+token)
			return r
		}())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}

	ok := submit("env-ok", plan)
	st := h.waitJob(cl, ok.Job.ID, state.JobSucceeded)
	rows := rowsText(t, filepath.Join(base, "out", secret))
	if n := strings.Count(rows, " "+secret+" "); n == 0 || n != strings.Count(rows, "\n") {
		t.Errorf("%d of %d rows hold the value in tag:\n%s", n, strings.Count(rows, "\n"), rows)
	}
	var names []string
	for _, s := range st.Stages {
		names = append(names, s.Name)
	}
	t.Logf("stages: %q", names)
	if !strings.Contains(strings.Join(names, "\n"), plans.EnvRef(name)) {
		t.Errorf("no stage name shows %s: %q", plans.EnvRef(name), names)
	}

	// The read path does not exist on the worker: planning fails, with the
	// path in the error.
	bad := submit("env-bad", strings.Replace(plan, "/sales/", "/nothing/", 1))
	stBad := h.waitJob(cl, bad.Job.ID, state.JobFailed)
	t.Logf("failed job: %s", stBad.Job.Error)
	if !strings.Contains(stBad.Job.Error, plans.EnvRef(name)) {
		t.Errorf("the error does not name the path as %s: %s", plans.EnvRef(name), stBad.Job.Error)
	}

	for _, id := range []string{ok.Job.ID, bad.Job.ID} {
		if b := raw(id); bytes.Contains(b, []byte(secret)) {
			t.Errorf("GET /v1/jobs/%s holds the value: %s", id, b)
		}
	}
	for _, cfg := range h.cfgs {
		filepath.WalkDir(cfg.DataDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds the value", p)
			}
			return nil
		})
	}
}
