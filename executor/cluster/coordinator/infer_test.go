package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/plans"
)

const inferPlan = `name: infer
read: {parquet: %s/}
steps:
  - filter: "id < 60"
  - with_column: {name: prompt, expr: "note"}
  - infer: {model: %s, input: prompt, output: completion, max_tokens: 4, temperature: 0}
  - select: [id, completion, completion_tokens]
  - sort: [{column: id}]
write: {parquet: %s/}
`

// An infer stage asks for a GPU: on a cluster with a GPU worker its tasks
// all run there (the worker keeps the model between them), the others run
// anywhere, and the output equals the local executor's.
func TestClusterInferOnGPUWorker(t *testing.T) {
	model, _ := filepath.Abs("../../../infer/model/testdata/fixtures/llama3")
	src, _ := filepath.Abs("../../../examples/data/sales")
	h := start(t, 1)
	cl := h.client()
	gpu, _ := startWorkerWith(t, h.urls(), state.Resources{CPU: 2, GPU: 1, Memory: 1 << 30}, nil)
	startWorker(t, h.urls(), nil)
	h.waitFor("two workers", func() bool {
		n := 0
		h.nodes[0].Read(func(s *state.State) { n = len(s.Workers) })
		return n == 2
	})
	out := filepath.Join(t.TempDir(), "out")
	var r api.IDResponse
	if err := cl.Do(context.Background(), http.MethodPost, "/v1/jobs", api.SubmitRequest{File: "infer.yaml",
		Plan: fmt.Sprintf(inferPlan, src, model, out)}, &r); err != nil {
		t.Fatal(err)
	}
	st := h.waitJob(cl, r.ID, state.JobSucceeded)
	inferStage := -1
	for i, p := range st.Stages {
		if strings.Contains(p.Name, "MapBatches infer") {
			inferStage = i
		}
	}
	if inferStage < 0 || st.Job.Stages[inferStage].Needs.GPU != 1 || !st.Job.Stages[inferStage].Stateful {
		t.Fatalf("no GPU stage for the infer step: %+v", st.Job.Stages)
	}
	for _, tk := range st.Tasks {
		if tk.Stage == inferStage && tk.Worker != gpu.ID() {
			t.Fatalf("infer task %s ran on %s, not on the GPU worker %s", tk.ID, tk.Worker, gpu.ID())
		}
	}

	localOut := filepath.Join(t.TempDir(), "local")
	p, lints := plans.Parse("infer.yaml", []byte(fmt.Sprintf(inferPlan, src, model, localOut)))
	if err := lints.Err(); err != nil {
		t.Fatal(err)
	}
	job, err := plans.Compile(p, plans.Vars{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Run(context.Background(), local.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	got, want := rowsText(t, out), rowsText(t, localOut)
	if got != want || strings.Count(got, "\n") != 60 {
		t.Fatalf("cluster wrote\n%s\nthe local executor\n%s", got, want)
	}
}
