package plans_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/infer"
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/model/loratest"
	"github.com/sluicehq/sluice/plans"
)

// An infer step with lora completes its rows with the adapter: the
// engine's completions for the adapter, not the base model's.
func TestInferStepLoRA(t *testing.T) {
	modelDir, err := filepath.Abs("../infer/model/testdata/fixtures/llama3")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ad := filepath.Join(dir, "adapter")
	if err := loratest.Write(modelDir, ad, loratest.Spec{Rank: 8, Alpha: 16, Targets: []string{"q_proj", "v_proj", "down_proj"}, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	prompts := []string{"Hello world!", "The sea is blue.", "data plan step"}
	var in strings.Builder
	for i, p := range prompts {
		line, _ := json.Marshal(map[string]any{"id": i, "prompt": p})
		in.Write(append(line, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, "prompts.jsonl"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	plans.CompileRun(t, `name: infer-lora
read: {jsonl: `+filepath.Join(dir, "prompts.jsonl")+`}
steps:
  - infer: {model: `+modelDir+`, lora: `+ad+`, input: prompt, output: completion, max_tokens: 8, temperature: 0, device: cpu, dtype: f32}
write: {jsonl: `+out+`/}
`, plans.Vars{})
	got := map[int]string{}
	files, _ := filepath.Glob(filepath.Join(out, "*.jsonl"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			var r struct {
				ID         int    `json:"id"`
				Completion string `json:"completion"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			got[r.ID] = r.Completion
		}
	}
	l, err := infer.Load(modelDir, infer.LoadOptions{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e, err := engine.New(l.Runner, l.Tokenizer, engine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.LoadLoRA("a", ad); err != nil {
		t.Fatal(err)
	}
	differ := 0
	for i, p := range prompts {
		cs, err := e.Generate(context.Background(), []engine.Request{
			{Prompt: p, LoRA: "a", Params: engine.SamplingParams{MaxTokens: 8}},
			{Prompt: p, Params: engine.SamplingParams{MaxTokens: 8}}})
		if err != nil {
			t.Fatal(err)
		}
		if got[i] != cs[0].Text {
			t.Errorf("row %d: %q, the engine with the adapter gives %q", i, got[i], cs[0].Text)
		}
		if cs[0].Text != cs[1].Text {
			differ++
		}
	}
	if differ == 0 {
		t.Error("the adapter changes no completion")
	}
}
