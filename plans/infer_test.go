package plans_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/infer"
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/plans"
)

// An infer step over a real model directory validates, and its output
// columns are known to the steps after it.
func TestInferStepValidates(t *testing.T) {
	model, err := filepath.Abs("../infer/model/testdata/fixtures/llama3")
	if err != nil {
		t.Fatal(err)
	}
	data, err := filepath.Abs("../examples/data/sales")
	if err != nil {
		t.Fatal(err)
	}
	src := `name: infer-ok
read: {parquet: ` + data + `/}
steps:
  - with_column: {name: prompt, expr: "note"}
  - infer: {model: ` + model + `, input: prompt, output: completion, max_tokens: 8}
  - select: [id, completion, completion_tokens, finish_reason]
write: {parquet: ` + filepath.Join(t.TempDir(), "out") + `/}
`
	f := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, lints := plans.Check(f, []byte(src), plans.Vars{})
	if lints.HasErrors() {
		t.Fatalf("lints:\n%v", lints)
	}
	job, err := plans.Compile(p, plans.Vars{})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := job.Explain(); err != nil || !strings.Contains(ex, "MapBatches infer "+model) {
		t.Fatalf("explain %v:\n%s", err, ex)
	}
}

// A plan with an infer step runs end to end on a fixture model: prompts
// read from JSON lines, completed greedily, written as JSON lines with the
// completion and its token counts and finish reason, equal to what the
// engine itself completes for the same prompts.
func TestInferStepRuns(t *testing.T) {
	modelDir, err := filepath.Abs("../infer/model/testdata/fixtures/llama3")
	if err != nil {
		t.Fatal(err)
	}
	prompts := []string{"Hello world!", "The sea is blue.", "Write a short poem about the sea.", "data plan step", "2026"}
	dir := t.TempDir()
	var in bytes.Buffer
	for i, p := range prompts {
		line, err := json.Marshal(map[string]any{"id": i, "prompt": p})
		if err != nil {
			t.Fatal(err)
		}
		in.Write(append(line, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, "prompts.jsonl"), in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	const maxTokens = 6
	out := filepath.Join(dir, "out")
	src := `name: infer-run
read: {jsonl: ` + filepath.Join(dir, "prompts.jsonl") + `}
steps:
  - infer: {model: ` + modelDir + `, input: prompt, output: completion, max_tokens: ` + strconv.Itoa(maxTokens) + `, temperature: 0, device: cpu, dtype: f32}
write: {jsonl: ` + out + `/}
`
	plans.CompileRun(t, src, plans.Vars{})

	// The output rows, by id.
	type row struct {
		ID               int64   `json:"id"`
		Prompt           string  `json:"prompt"`
		Completion       *string `json:"completion"`
		PromptTokens     *int64  `json:"prompt_tokens"`
		CompletionTokens *int64  `json:"completion_tokens"`
		FinishReason     *string `json:"finish_reason"`
	}
	files, err := filepath.Glob(filepath.Join(out, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no JSON-lines output in %s (%v)", out, err)
	}
	got := map[int64]row{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			if line == "" {
				continue
			}
			var r row
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v: %s", f, err, line)
			}
			got[r.ID] = r
		}
	}
	if len(got) != len(prompts) {
		t.Fatalf("%d output rows, want %d", len(got), len(prompts))
	}

	// The same prompts through the engine directly.
	l, err := infer.Load(modelDir, infer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e, err := engine.New(l.Runner, l.Tokenizer, engine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	reqs := make([]engine.Request, len(prompts))
	for i, p := range prompts {
		reqs[i] = engine.Request{Prompt: p, Params: engine.SamplingParams{MaxTokens: maxTokens, Temperature: 0}}
	}
	comps, err := e.Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range comps {
		r := got[int64(i)]
		if r.Completion == nil || r.PromptTokens == nil || r.CompletionTokens == nil || r.FinishReason == nil {
			t.Errorf("row %d: a column is missing or null: %+v", i, r)
			continue
		}
		if r.Prompt != prompts[i] || *r.Completion != c.Text || *r.PromptTokens != int64(c.PromptTokens) ||
			*r.CompletionTokens != int64(c.CompletionTokens) || *r.FinishReason != c.FinishReason {
			t.Errorf("row %d: got %q, %d+%d tokens, %s; the engine gives %q, %d+%d tokens, %s", i,
				*r.Completion, *r.PromptTokens, *r.CompletionTokens, *r.FinishReason,
				c.Text, c.PromptTokens, c.CompletionTokens, c.FinishReason)
		}
		if c.CompletionTokens < 1 || c.CompletionTokens > maxTokens {
			t.Errorf("row %d: %d completion tokens, want 1..%d", i, c.CompletionTokens, maxTokens)
		}
	}
}
