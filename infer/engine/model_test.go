package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/infer/model"
)

// The fixtures of infer/model: random-weight models of each architecture,
// saved by transformers, with 32-token greedy continuations (EOS ignored)
// that transformers computed in float32 (model/testdata/make_fixtures.py).
var fixtureNames = []string{"llama3", "llama2", "mistral", "qwen2", "qwen3"}

func fixtureDir(name string) string {
	return filepath.Join("..", "model", "testdata", "fixtures", name)
}

type greedyFixture struct {
	Prompt []int32 `json:"prompt"`
	Tokens []int32 `json:"tokens"`
}

func readGreedy(t testing.TB, name string) []greedyFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir(name), "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		F32 struct {
			Greedy []greedyFixture `json:"greedy"`
		} `json:"f32"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.F32.Greedy) == 0 {
		t.Fatalf("%s: no greedy cases", name)
	}
	return e.F32.Greedy
}

// loadFixture loads a fixture model in float32 on a two-thread cpu device,
// or on the device SLUICE_TEST_DEVICE names (cuda on the GPU machine: the
// engine-level fixtures then run on the GPU).
func loadFixture(t testing.TB, name string) *model.Model {
	t.Helper()
	var dev gpu.Device
	var err error
	if d := os.Getenv("SLUICE_TEST_DEVICE"); d != "" {
		dev, err = gpu.Open(d)
	} else {
		dev, err = cpu.New(cpu.Config{Threads: 2})
	}
	if err != nil {
		t.Fatal(err)
	}
	// f32 on every device: the fixtures hold transformers' f32 tokens.
	m, err := model.Load(fixtureDir(name), dev, model.Options{DType: gpu.F32})
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		if n := dev.LiveBytes(); n != 0 {
			t.Errorf("%d device bytes live after Close", n)
		}
		dev.Close()
	})
	return m
}

// TestFixturesGreedy reproduces transformers' greedy continuations
// through the whole engine: each prompt alone, all in one batch (each
// twice, so the twins share cached blocks), with prefix caching off,
// with prefill chunked into small steps, and with a KV cache too small
// for the batch, so that sequences are preempted and recomputed.
func TestFixturesGreedy(t *testing.T) {
	configs := []struct {
		name string
		edit func(c *Config)
	}{
		{"default", func(c *Config) {}},
		{"no prefix cache", func(c *Config) { c.EnablePrefixCaching = false }},
		{"chunked prefill", func(c *Config) { c.MaxNumBatchedTokens = 8; c.MaxNumSeqs = 8 }},
		{"no chunking", func(c *Config) {
			c.EnableChunkedPrefill = false
			c.MaxModelLen = 128
			c.MaxNumBatchedTokens = 128
		}},
		{"preemption", func(c *Config) { c.NumBlocks = 24 }},
		{"preemption, no prefix cache, chunked", func(c *Config) {
			c.NumBlocks = 24
			c.EnablePrefixCaching = false
			c.MaxNumBatchedTokens = 8
			c.MaxNumSeqs = 8
		}},
		// Speculative decoding (n-gram) must not change a greedy token.
		{"speculative ngram", func(c *Config) {
			c.Speculative = SpeculativeConfig{Method: "ngram", NumSpeculativeTokens: 3, PromptLookupMax: 3, PromptLookupMin: 1}
		}},
		{"speculative ngram, preemption, chunked", func(c *Config) {
			c.Speculative = SpeculativeConfig{Method: "ngram", NumSpeculativeTokens: 5, PromptLookupMax: 2, PromptLookupMin: 1}
			c.NumBlocks = 24
			c.MaxNumBatchedTokens = 8
			c.MaxNumSeqs = 8
		}},
	}
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			cases := readGreedy(t, name)
			r := FromModel(loadFixture(t, name))
			for _, cc := range configs {
				t.Run(cc.name, func(t *testing.T) {
					cfg := DefaultConfig()
					cfg.BlockSize = 4
					cfg.NumBlocks = 128
					cfg.MaxNumSeqs = 16
					cfg.MaxNumBatchedTokens = 256
					cc.edit(&cfg)
					e, err := New(r, nil, cfg)
					if err != nil {
						t.Fatal(err)
					}
					defer func() {
						if err := e.Close(); err != nil {
							t.Error(err)
						}
					}()
					var reqs []Request
					for _, c := range append(slices.Clone(cases), cases...) {
						reqs = append(reqs, Request{PromptIDs: c.Prompt, Params: SamplingParams{MaxTokens: len(c.Tokens), IgnoreEOS: true}})
					}
					got, err := e.Generate(context.Background(), reqs)
					if err != nil {
						t.Fatal(err)
					}
					for i, c := range got {
						want := cases[i%len(cases)].Tokens
						if !slices.Equal(c.TokenIDs, want) || c.FinishReason != FinishLength {
							t.Errorf("prompt %d in a batch: got %v (%s), want %v", i, c.TokenIDs, c.FinishReason, want)
						}
					}
					if cc.name == "default" {
						for i, req := range reqs[:len(cases)] {
							got, err := e.Generate(context.Background(), []Request{req})
							if err != nil {
								t.Fatal(err)
							}
							if !slices.Equal(got[0].TokenIDs, cases[i].Tokens) {
								t.Errorf("prompt %d alone: got %v, want %v", i, got[0].TokenIDs, cases[i].Tokens)
							}
						}
					}
					st := e.Stats()
					if strings.HasPrefix(cc.name, "preemption") && st.Preemptions == 0 {
						t.Errorf("no preemption with %d blocks", cfg.NumBlocks)
					}
					if cc.name == "default" && st.PrefixCacheHit == 0 {
						t.Errorf("no prefix cache hits")
					}
					if cfg.Speculative.Method != "" && st.SpecAcceptedTokens == 0 {
						t.Errorf("speculation accepted none of %d draft tokens", st.SpecDraftTokens)
					}
					t.Logf("steps %d, batched tokens %d, preemptions %d, prefix cache hits %.0f%%, drafts %d accepted %d",
						st.Steps, st.BatchedTokens, st.Preemptions, 100*st.PrefixCacheHit, st.SpecDraftTokens, st.SpecAcceptedTokens)
				})
			}
		})
	}
}

// TestFixtureSampling runs text prompts (through the fake byte-level
// tokenizer, whose ids the llama3 fixture's 512-token vocabulary covers)
// with seeded sampling on a real model: a request samples the same tokens
// alone and in a batch, and streaming gives what Generate gives.
func TestFixtureSampling(t *testing.T) {
	r := FromModel(loadFixture(t, "llama3"))
	cfg := DefaultConfig()
	cfg.BlockSize, cfg.NumBlocks, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, 64, 8, 32
	e, err := New(r, FakeTokenizer(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	}()
	req := func(prompt string, seed int64) Request {
		return Request{Prompt: prompt, Params: SamplingParams{Temperature: 0.9, TopK: 50, Seed: &seed, MaxTokens: 24, IgnoreEOS: true, Logprobs: 2}}
	}
	prompts := []string{"Hello, world", "The quick brown fox", "a", "Sluice sluices"}
	var batch []Request
	for i, p := range prompts {
		batch = append(batch, req(p, int64(i)))
	}
	all, err := e.Generate(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		alone, err := e.Generate(context.Background(), []Request{req(p, int64(i))})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(alone[0].TokenIDs, all[i].TokenIDs) || alone[0].Text != all[i].Text {
			t.Errorf("prompt %d: alone %v, in a batch %v", i, alone[0].TokenIDs, all[i].TokenIDs)
		}
		ch, err := e.Submit(context.Background(), req(p, int64(i)))
		if err != nil {
			t.Fatal(err)
		}
		var text string
		var toks []int32
		var lps []TokenLogprobs
		for o := range ch {
			text += o.Text
			toks = append(toks, o.TokenIDs...)
			lps = append(lps, o.Logprobs...)
		}
		if text != all[i].Text || !slices.Equal(toks, all[i].TokenIDs) || len(lps) != 24 {
			t.Errorf("prompt %d: streamed %q %v (%d logprobs), generated %q %v", i, text, toks, len(lps), all[i].Text, all[i].TokenIDs)
		}
	}
}
