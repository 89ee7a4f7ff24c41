package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// TestHeartbeatNamesSpecByHash: the heartbeat answers of a worker running
// tasks of one job carry the job's spec hash with each task, never the
// plan or the layout; the spec the worker fetches once has that hash and
// holds them. (Before, every task of every answer carried both.)
func TestHeartbeatNamesSpecByHash(t *testing.T) {
	h := start(t, 1)
	cl := h.client()
	const planMarker, layoutMarker = "plan-marker-7f3a", "layout-marker-91c2"
	plan := "name: noop\n# " + planMarker + "\nread: {parquet: in/}\nwrite: {parquet: out/}\n"
	// A worker driven by hand, the only one: the job's tasks go to it.
	var reg api.RegisterResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/workers", api.RegisterRequest{ID: "w-spec", Addr: "127.0.0.1:1",
		Resources: state.Resources{CPU: 8, Memory: 1 << 30}}, &reg); err != nil {
		t.Fatal(err)
	}
	wc := api.NewClient(h.urls(), reg.Credential)
	call := func(path string, in any) []byte {
		t.Helper()
		var body []byte
		if in != nil {
			body, _ = json.Marshal(in)
		}
		req, _ := http.NewRequest(http.MethodPost, h.leader().URL()+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+reg.Credential)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	// The answer of the first heartbeat that names n tasks.
	tasks := func(n int) ([]byte, api.HeartbeatResponse) {
		t.Helper()
		var raw []byte
		var hb api.HeartbeatResponse
		h.waitFor("assignments", func() bool {
			raw = call("/v1/workers/w-spec/heartbeat", nil)
			hb = api.HeartbeatResponse{}
			if err := json.Unmarshal(raw, &hb); err != nil {
				t.Fatal(err)
			}
			return len(hb.Tasks) == n
		})
		return raw, hb
	}
	var id api.IDResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: "spec-1", Plan: plan,
		Needs: state.Resources{CPU: 1}}, &id); err != nil {
		t.Fatal(err)
	}
	raw, hb := tasks(1)
	if bytes.Contains(raw, []byte(planMarker)) || hb.Tasks[0].Spec == "" || hb.Tasks[0].Kind != state.StagePlan {
		t.Fatalf("the planning task's heartbeat answer: %s", raw)
	}
	var sp api.JobSpec
	if err := wc.Do(context.Background(), http.MethodPost, "/v1/workers/w-spec/spec", api.SpecRequest{Job: id.ID}, &sp); err != nil {
		t.Fatal(err)
	}
	if sp.Hash != hb.Tasks[0].Spec || sp.Plan != plan || sp.Hash != api.SpecHash(sp) {
		t.Fatalf("spec %+v for task spec %s", sp, hb.Tasks[0].Spec)
	}
	// The planning task lays out 20 tasks; 8 fit the worker at once.
	layout := []byte(`{"note":"` + layoutMarker + `"}`)
	call("/v1/workers/w-spec/reports", api.ReportBatch{Reports: []api.TaskReport{{RequestID: "plan-done", Worker: "w-spec",
		Attempt: 1, OK: true, Task: hb.Tasks[0].Task.ID, Phase: string(state.OpFinish), Layout: layout,
		Stages: []state.Stage{{Name: "tasks", Tasks: 20}}}}})
	raw, hb = tasks(8)
	if bytes.Contains(raw, []byte(planMarker)) || bytes.Contains(raw, []byte(layoutMarker)) {
		t.Fatalf("a heartbeat answer carries the plan or the layout: %s", raw)
	}
	var after api.JobSpec
	if err := wc.Do(context.Background(), http.MethodPost, "/v1/workers/w-spec/spec", api.SpecRequest{Job: id.ID}, &after); err != nil {
		t.Fatal(err)
	}
	for _, a := range hb.Tasks {
		if a.Spec != after.Hash || a.Kind != state.StageExec {
			t.Fatalf("task %s names spec %s (%s), the job's is %s", a.Task.ID, a.Spec, a.Kind, after.Hash)
		}
	}
	if after.Hash == sp.Hash || !bytes.Equal(after.Layout, layout) || after.Plan != plan {
		t.Fatalf("the spec after planning: %+v (before: %s)", after, sp.Hash)
	}
	// Another worker's credential cannot read it through this route.
	if err := api.NewClient(h.urls(), reg.Credential).Do(context.Background(), http.MethodPost, "/v1/workers/w-other/spec",
		api.SpecRequest{Job: id.ID}, nil); err == nil {
		t.Fatal("worker w-spec read a spec as w-other")
	}
}
