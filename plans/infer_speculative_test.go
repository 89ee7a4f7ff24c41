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
	"github.com/sluicehq/sluice/plans"
)

// An infer step with speculative_model and num_speculative_tokens (vLLM's
// names) runs the engine speculating: with the model itself as its draft,
// greedy completions equal the engine's without speculation, and the
// step's engine (DefaultRegistry's, looked up with the config the step
// maps to) drafted and accepted tokens; "[ngram]" is prompt lookup. Either
// key without the other is an error naming it.
func TestInferStepSpeculative(t *testing.T) {
	modelDir, err := filepath.Abs("../infer/model/testdata/fixtures/llama3")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	prompts := []string{"Hello world!", "The sea is blue.", "data plan step"}
	var in strings.Builder
	for i, p := range prompts {
		line, _ := json.Marshal(map[string]any{"id": i, "prompt": p})
		in.Write(append(line, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, "prompts.jsonl"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
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
	want := map[int]string{}
	for i, p := range prompts {
		cs, err := e.Generate(context.Background(), []engine.Request{{Prompt: p, Params: engine.SamplingParams{MaxTokens: 12}}})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = cs[0].Text
	}
	for _, tc := range []struct{ name, model, method string }{
		{"draft", modelDir, "draft_model"}, {"ngram", "\"[ngram]\"", "ngram"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+tc.name)
			plans.CompileRun(t, `name: infer-spec
read: {jsonl: `+filepath.Join(dir, "prompts.jsonl")+`}
steps:
  - infer: {model: `+modelDir+`, speculative_model: `+tc.model+`, num_speculative_tokens: 3, input: prompt, output: completion, max_tokens: 12, temperature: 0, device: cpu, dtype: f32}
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
			for i := range prompts {
				if got[i] != want[i] {
					t.Errorf("row %d: %q, the engine without speculation gives %q", i, got[i], want[i])
				}
			}
			cfg := infer.StageConfig{Model: modelDir, Device: "cpu", DType: "f32", EngineConfig: engine.DefaultConfig()}
			cfg.EngineConfig.Speculative = engine.SpeculativeConfig{Method: tc.method, NumSpeculativeTokens: 3}
			if tc.method == "draft_model" {
				cfg.EngineConfig.Speculative.Model = modelDir
			}
			se, err := infer.DefaultRegistry.Engine(cfg)
			if err != nil {
				t.Fatal(err)
			}
			st := se.Stats()
			if st.SpecDraftTokens == 0 {
				t.Fatalf("the step's engine (%s) drafted no token: %+v", tc.method, st)
			}
			if tc.method == "draft_model" && st.SpecAcceptedTokens == 0 {
				t.Errorf("the model as its own draft: %d drafted, none accepted", st.SpecDraftTokens)
			}
		})
	}
	for _, bad := range []struct{ keys, want string }{
		{"num_speculative_tokens: 3", "num_speculative_tokens needs speculative_model"},
		{"speculative_model: " + modelDir, "speculative_model needs num_speculative_tokens"},
	} {
		_, lints := plans.Parse("p.yaml", []byte(`name: p
read: {jsonl: in.jsonl}
steps:
  - infer: {model: `+modelDir+`, `+bad.keys+`, input: prompt, output: completion}
write: {jsonl: out/}
`))
		if lints == nil || !strings.Contains(lints.Error(), bad.want) {
			t.Errorf("%s: lints %v, want one saying %q", bad.keys, lints, bad.want)
		}
	}
}
