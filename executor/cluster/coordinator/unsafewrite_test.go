package coordinator

import (
	"bytes"
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

// On the cluster path a worker refuses, at planning and before any work,
// a destination that overlaps a source (inside it, or the source itself
// under overwrite with a filter) and an overwrite of a directory holding
// files Sluice did not write: the job fails with an error naming both
// paths (or the foreign file), and the source and the foreign file are
// left as they were. A real coordinator and the worker's own plan runner
// on loopback. (A test of commit.Check as the worker calls it, not of a
// new fix.)
func TestClusterRefusesUnsafeWrites(t *testing.T) {
	h := start(t, 1)
	startWorker(t, h.urls(), nil)
	cl := h.client()

	src := filepath.Join(t.TempDir(), "sales")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	orig := map[string][]byte{}
	for _, f := range []string{"part-0.parquet", "part-1.parquet"} {
		b, err := os.ReadFile(filepath.Join("../../../examples/data/sales", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
		orig[f] = b
	}
	foreignDir := filepath.Join(t.TempDir(), "theirs")
	foreign := filepath.Join(foreignDir, "report.parquet")
	if err := os.MkdirAll(foreignDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(foreign, orig["part-0.parquet"], 0o644); err != nil {
		t.Fatal(err)
	}

	for i, tc := range []struct {
		name, dest string
		want       []string
	}{
		{"destination inside the source", filepath.Join(src, "out"), []string{"overlaps the source", src}},
		{"overwrite of the source", src, []string{"overlaps the source", src}},
		{"overwrite of foreign files", foreignDir, []string{"did not", foreign}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var id api.IDResponse
			req := api.SubmitRequest{RequestID: fmt.Sprint("unsafe-", i), File: "sales.yaml", Plan: fmt.Sprintf(planText, src, tc.dest)}
			if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", req, &id); err != nil {
				t.Fatal(err)
			}
			st := h.waitJob(cl, id.ID, state.JobFailed)
			t.Logf("job %s: %s", id.ID, st.Job.Error)
			for _, w := range tc.want {
				if !strings.Contains(st.Job.Error, w) {
					t.Errorf("job error %q lacks %q", st.Job.Error, w)
				}
			}
			if len(st.Stages) != 1 || st.Stages[0].Kind != state.StagePlan {
				t.Errorf("stages past planning: %+v", st.Stages)
			}
		})
	}
	// Nothing was written, moved or deleted.
	got, _ := os.ReadDir(src)
	if len(got) != len(orig) {
		var names []string
		for _, e := range got {
			names = append(names, e.Name())
		}
		t.Errorf("source holds %v, want only %d files", names, len(orig))
	}
	for f, b := range orig {
		if now, err := os.ReadFile(filepath.Join(src, f)); err != nil || !bytes.Equal(now, b) {
			t.Errorf("source file %s changed: %v", f, err)
		}
	}
	if got, _ := os.ReadDir(foreignDir); len(got) != 1 {
		t.Errorf("%s holds %d entries after the refused overwrite, want the foreign file only", foreignDir, len(got))
	}
	if b, err := os.ReadFile(foreign); err != nil || !bytes.Equal(b, orig["part-0.parquet"]) {
		t.Errorf("foreign file changed: %v", err)
	}
}
