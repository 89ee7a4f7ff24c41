package coordinator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// TestWorkerCallsJSONAndBinary: heartbeats and report batches are
// answered in binary to a caller that asks (api.Client does for them) and
// in JSON to one that does not, with the same content; a JSON report
// batch and a binary one both apply.
func TestWorkerCallsJSONAndBinary(t *testing.T) {
	h := start(t, 1)
	cl := h.client()
	ctx := context.Background()
	if err := cl.Do(ctx, http.MethodPost, "/v1/workers", api.RegisterRequest{ID: "w-wire", Addr: "127.0.0.1:1",
		Resources: state.Resources{CPU: 1, Memory: 1 << 30}}, nil); err != nil {
		t.Fatal(err)
	}
	wcl := api.NewClient(h.urls(), WorkerCredential(secret, "w-wire"))
	var job api.IDResponse
	if err := cl.Do(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{File: "p.yaml",
		Plan: "name: p\nread: {parquet: x/}\nwrite: {parquet: y/}\n"}, &job); err != nil {
		t.Fatal(err)
	}
	hb := "/v1/workers/w-wire/heartbeat"
	var bin api.HeartbeatResponse
	h.waitFor("the planning task assigned", func() bool {
		bin = api.HeartbeatResponse{}
		return wcl.Do(ctx, http.MethodPost, hb, nil, &bin) == nil && len(bin.Tasks) == 1
	})
	var raw json.RawMessage // not an api wire type: asks for JSON
	if err := wcl.Do(ctx, http.MethodPost, hb, nil, &raw); err != nil {
		t.Fatal(err)
	}
	var old api.HeartbeatResponse
	if err := json.Unmarshal(raw, &old); err != nil {
		t.Fatalf("the JSON heartbeat answer %s: %v", raw, err)
	}
	if !reflect.DeepEqual(bin, old) {
		t.Fatalf("binary heartbeat answer\n%+v\nJSON\n%+v", bin, old)
	}
	// The answer to an Accept of the binary type is binary.
	req, _ := http.NewRequest(http.MethodPost, h.urls()[0]+hb, nil)
	req.Header.Set("Authorization", "Bearer "+WorkerCredential(secret, "w-wire"))
	req.Header.Set("Accept", api.ContentTypeBinary)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var direct api.HeartbeatResponse
	if ct := resp.Header.Get("Content-Type"); ct != api.ContentTypeBinary || direct.ReadWire(body) != nil || !reflect.DeepEqual(direct, old) {
		t.Fatalf("heartbeat with Accept %s: %s %q", api.ContentTypeBinary, ct, body)
	}
	task := bin.Tasks[0].Task
	// A start in a JSON batch (the type is not api.ReportBatch: JSON).
	start := struct {
		Reports []api.TaskReport `json:"reports"`
	}{[]api.TaskReport{{RequestID: "s", Worker: "w-wire", Attempt: task.Attempt, Task: task.ID, Phase: "start"}}}
	raw = nil
	if err := wcl.Do(ctx, http.MethodPost, "/v1/workers/w-wire/reports", start, &raw); err != nil {
		t.Fatal(err)
	}
	var res api.ReportBatchResponse
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Results) != 1 || res.Results[0].Error != "" {
		t.Fatalf("JSON report answer %s: %v", raw, err)
	}
	// Its finish, laying out a stage, in binary.
	fin := api.ReportBatch{Reports: []api.TaskReport{{RequestID: "f", Worker: "w-wire", Attempt: task.Attempt, Task: task.ID,
		Phase: "finish", OK: true, Layout: []byte("{}"), Stages: []state.Stage{{Name: "scan", Tasks: 3}}}}}
	res = api.ReportBatchResponse{}
	if err := wcl.Do(ctx, http.MethodPost, "/v1/workers/w-wire/reports", fin, &res); err != nil || len(res.Results) != 1 || res.Results[0].Error != "" {
		t.Fatalf("binary report answer %+v: %v", res, err)
	}
	if st := h.job(cl, job.ID); len(st.Job.Tasks) != 5 {
		t.Fatalf("job after the binary finish: %d tasks, want 5 (plan, 3, commit)", len(st.Job.Tasks))
	}
}
