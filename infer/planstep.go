package infer

import (
	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/plans"
)

// The infer plan step compiles here, not in plans, so that linking the plan
// format does not link the engine and its GPU backends: a program that runs
// plans with infer steps imports this package (cmd/sluice, the worker).
func init() { plans.RegisterCompiler("infer", compileStep) }

// compileStep adds the engine's dataset stage: the model is loaded once per
// process, on the first batch that has rows, and every batch's prompts join
// one continuous batch.
func compileStep(s plans.Step, in *dataset.Dataset) *dataset.Dataset {
	st := s.(*plans.Infer)
	cfg := StageConfig{Model: st.Model, Prompt: st.Input, Output: st.Output, Device: st.Device, DType: st.DType,
		OnError: st.OnError, OnNull: st.OnNull, LoRA: st.LoRA}
	cfg.Params.MaxTokens = int(st.MaxTokens)
	cfg.Params.Temperature = st.Temperature
	if st.MaxTokens == 0 {
		cfg.Params.MaxTokens = engine.DefaultSamplingParams().MaxTokens
	}
	if st.SpeculativeModel != "" || st.NumSpeculativeTokens != 0 {
		cfg.EngineConfig = engine.DefaultConfig()
		cfg.EngineConfig.Speculative = speculative(st.SpeculativeModel, int(st.NumSpeculativeTokens))
	}
	return in.MapBatches(Generate(cfg), dataset.MapOptions{Name: "infer " + st.Model, GPU: true})
}

// speculative maps the step's vLLM options onto the engine's: "[ngram]"
// (vLLM's name for prompt lookup) is method ngram, any other model is a
// draft model the Registry loads. Tokens without a model give method ""
// with the count, which Validate ignores, so the plan's lint reports it.
func speculative(model string, tokens int) engine.SpeculativeConfig {
	c := engine.SpeculativeConfig{NumSpeculativeTokens: tokens}
	switch model {
	case "":
	case "[ngram]", "ngram":
		c.Method = "ngram"
	default:
		c.Method, c.Model = "draft_model", model
	}
	return c
}
