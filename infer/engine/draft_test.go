package engine

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/model"
	"github.com/sluicehq/sluice/infer/model/loratest"
)

func draftSpec(d Runner, k int) SpeculativeConfig {
	return SpeculativeConfig{Method: "draft_model", NumSpeculativeTokens: k, Draft: d}
}

// TestDraftMatchesReference runs the requests of TestGreedyMatchesReference
// with a draft model under every way of scheduling them (prefix caching
// on and off, chunked prefill, one sequence at a time, preemption) and
// compares each output with the fake model's cache-free greedy
// continuation. The drafts are the fake itself (every draft accepted) and
// a noisy copy (some accepted). The fake draft fails a forward pass that
// reads a position of its cache that was never written or holds another
// position, so the draft's cache bookkeeping is checked too: catch-up
// after a step that accepted every draft, preemption, and blocks taken
// from the prefix cache, including blocks computed while decoding (the
// third batch's prompts are the first's prompts and outputs). Close finds
// no leaked block.
func TestDraftMatchesReference(t *testing.T) {
	prompts := testPrompts(12, 7)
	const maxTokens = 24
	configs := map[string]func(c *Config){
		"default":         func(c *Config) {},
		"no prefix cache": func(c *Config) { c.EnablePrefixCaching = false },
		"chunked":         func(c *Config) { c.MaxNumBatchedTokens = 8 },
		"one seq":         func(c *Config) { c.MaxNumSeqs = 1; c.MaxNumBatchedTokens = 8 },
		"preemption":      func(c *Config) { c.NumBlocks = 30 },
		"preemption, chunked, block 16": func(c *Config) {
			c.BlockSize = 16
			c.NumBlocks = 8
			c.MaxNumBatchedTokens = 16
		},
	}
	drafts := map[string]func() *FakeRunner{
		"self":  func() *FakeRunner { return NewFakeRunner(128) },
		"noisy": func() *FakeRunner { return NewFakeDraft(128, 1, 1) },
	}
	for dname, newDraft := range drafts {
		for name, edit := range configs {
			t.Run(dname+"/"+name, func(t *testing.T) {
				cfg := smallConfig()
				edit(&cfg)
				d := newDraft()
				cfg.Speculative = draftSpec(d, 3)
				e, f := newTestEngine(t, cfg, 128)
				var reqs []Request
				for _, p := range prompts {
					reqs = append(reqs, Request{PromptIDs: p, Params: SamplingParams{MaxTokens: maxTokens}})
				}
				got, err := e.Generate(context.Background(), reqs)
				if err != nil {
					t.Fatal(err)
				}
				for i, c := range got {
					checkGreedy(t, f, prompts[i], maxTokens, c)
				}
				for i := range reqs[:4] {
					got, err := e.Generate(context.Background(), reqs[i:i+1])
					if err != nil {
						t.Fatal(err)
					}
					checkGreedy(t, f, prompts[i], maxTokens, got[0])
				}
				// Prompts that continue the first batch's completions: their
				// leading blocks, decoded ones included, come from the prefix
				// cache for both models.
				var longer [][]int32
				var more []Request
				for i, c := range got {
					p := append(slices.Clone(prompts[i]), c.TokenIDs...)
					if len(p)+8 > e.Config().MaxModelLen || (len(c.TokenIDs) > 0 && c.TokenIDs[len(c.TokenIDs)-1] == FakeEOS) {
						continue
					}
					longer = append(longer, p)
					more = append(more, Request{PromptIDs: p, Params: SamplingParams{MaxTokens: 8}})
				}
				got, err = e.Generate(context.Background(), more)
				if err != nil {
					t.Fatal(err)
				}
				for i, c := range got {
					checkGreedy(t, f, longer[i], 8, c)
				}
				st := e.Stats()
				t.Logf("drafts %d, accepted %d (%.2f), preemptions %d, prefix hits %.2f, steps %d",
					st.SpecDraftTokens, st.SpecAcceptedTokens, st.SpecAcceptanceRate, st.Preemptions, st.PrefixCacheHit, st.Steps)
				if strings.HasPrefix(name, "preemption") && st.Preemptions == 0 {
					t.Errorf("no preemption with %d blocks", cfg.NumBlocks)
				}
				if st.SpecDraftTokens == 0 {
					t.Fatal("no draft tokens")
				}
				switch {
				case dname == "self" && st.SpecAcceptanceRate != 1:
					t.Errorf("the model as its own draft: acceptance %.3f, want 1", st.SpecAcceptanceRate)
				case dname == "noisy" && (st.SpecAcceptanceRate == 0 || st.SpecAcceptanceRate == 1):
					t.Errorf("noisy draft: acceptance %.3f, want strictly between 0 and 1", st.SpecAcceptanceRate)
				}
			})
		}
	}
}

// TestDraftConfigErrors: method draft_model without a draft, a draft
// with another method, and a draft of another vocabulary are refused.
func TestDraftConfigErrors(t *testing.T) {
	f := NewFakeRunner(64)
	for _, c := range []struct {
		spec SpeculativeConfig
		want string
	}{
		{SpeculativeConfig{Method: "draft_model", NumSpeculativeTokens: 2, Model: "/m/draft"}, `needs the loaded draft model in SpeculativeConfig.Draft (model "/m/draft")`},
		{SpeculativeConfig{Method: "ngram", NumSpeculativeTokens: 2, Draft: f}, `Draft is set with method "ngram"`},
		{SpeculativeConfig{Method: "draft_model", Draft: f}, "num_speculative_tokens must be at least 1"},
		{SpeculativeConfig{Method: "medusa", NumSpeculativeTokens: 2}, `want "ngram" or "draft_model"`},
	} {
		cfg := smallConfig()
		cfg.Speculative = c.spec
		if _, err := New(f, nil, cfg); err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one with %q", c.spec, err, c.want)
		}
	}
	other := &FakeRunner{spec: ModelSpec{Vocab: FakeVocab + 2, MaxPositions: 64}}
	cfg := smallConfig()
	cfg.Speculative = draftSpec(other, 2)
	if _, err := New(f, nil, cfg); err == nil || !strings.Contains(err.Error(), "the draft model's vocabulary has 260 tokens, the target's 258") {
		t.Errorf("draft of another vocabulary: error %v", err)
	}
	// A draft of fewer positions caps the max model length.
	cfg.Speculative = draftSpec(NewFakeRunner(32), 2)
	e, err := New(f, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Config().MaxModelLen; got != 32 {
		t.Errorf("MaxModelLen %d with a draft of 32 positions, want 32", got)
	}
}

// TestDraftModelFixtures runs every fixture model with a draft model: the
// fixture itself, loaded again on the same device (acceptance near 1),
// and a copy of it with its first layer only (a different model of the
// same vocabulary, as a small draft is). Greedy requests give
// transformers' tokens, and requests drawn on the host (logprobs,
// penalties, min_tokens, seeded sampling at temperature 0.3) give the same
// tokens and logprobs as without speculation.
func TestDraftModelFixtures(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			cases := readGreedy(t, name)
			m := loadFixture(t, name)
			r := FromModel(m)
			short := filepath.Join(t.TempDir(), "short")
			if err := loratest.Truncate(fixtureDir(name), short, 1); err != nil {
				t.Fatal(err)
			}
			var greedy, host []Request
			for i, c := range cases {
				seed := int64(i)
				greedy = append(greedy, Request{PromptIDs: c.Prompt, Params: SamplingParams{MaxTokens: len(c.Tokens), IgnoreEOS: true}})
				host = append(host,
					Request{PromptIDs: c.Prompt, Params: SamplingParams{MaxTokens: 16, IgnoreEOS: true, Logprobs: 2, RepetitionPenalty: 1.05, MinTokens: 3}},
					Request{PromptIDs: c.Prompt, Params: SamplingParams{MaxTokens: 16, IgnoreEOS: true, Temperature: 0.3, TopK: 8, Seed: &seed, FrequencyPenalty: 0.1}})
			}
			run := func(spec SpeculativeConfig, reqs []Request) ([]Completion, Stats) {
				cfg := DefaultConfig()
				cfg.BlockSize, cfg.NumBlocks, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, 128, 8, 64
				cfg.Speculative = spec
				e, err := New(r, nil, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := e.Close(); err != nil {
						t.Error(err)
					}
				}()
				got, err := e.Generate(context.Background(), reqs)
				if err != nil {
					t.Fatal(err)
				}
				return got, e.Stats()
			}
			want, _ := run(SpeculativeConfig{}, host)
			for _, dc := range []struct {
				name string
				dir  string
			}{{"self", fixtureDir(name)}, {"first layer", short}} {
				t.Run(dc.name, func(t *testing.T) {
					dm, err := model.Load(dc.dir, m.Device(), model.Options{DType: gpu.F32})
					if err != nil {
						t.Fatal(err)
					}
					defer dm.Close()
					spec := draftSpec(FromModel(dm), 3)
					got, st := run(spec, greedy)
					for i, c := range got {
						if !slices.Equal(c.TokenIDs, cases[i].Tokens) {
							t.Errorf("greedy prompt %d: got %v, want %v", i, c.TokenIDs, cases[i].Tokens)
						}
					}
					t.Logf("greedy: drafts %d, accepted %d (%.2f)", st.SpecDraftTokens, st.SpecAcceptedTokens, st.SpecAcceptanceRate)
					if dc.name == "self" && st.SpecAcceptanceRate < 0.9 {
						t.Errorf("the model as its own draft accepted %.2f of the drafts, want about 1", st.SpecAcceptanceRate)
					}
					got, st = run(spec, host)
					for i := range want {
						if !slices.Equal(got[i].TokenIDs, want[i].TokenIDs) {
							t.Errorf("request %d: %v with the draft, %v without", i, got[i].TokenIDs, want[i].TokenIDs)
							continue
						}
						for j := range want[i].Logprobs {
							if g, w := got[i].Logprobs[j].Sampled, want[i].Logprobs[j].Sampled; g.ID != w.ID || math.Abs(float64(g.Logprob-w.Logprob)) > 1e-4 {
								t.Errorf("request %d token %d: logprob %+v with the draft, %+v without", i, j, g, w)
							}
						}
					}
					t.Logf("host-drawn: drafts %d, accepted %d (%.2f)", st.SpecDraftTokens, st.SpecAcceptedTokens, st.SpecAcceptanceRate)
					if st.SpecDraftTokens == 0 {
						t.Error("no draft tokens")
					}
				})
			}
		})
	}
}

// TestEngineSizesFromMemInfoWithDraft: on a device that reports memory,
// a block counts the draft's bytes with the target's, and the profiling
// step runs the draft too, so a workload with drafts afterwards grows no
// buffer of either model (without the draft's profiling step, its step
// buffers are allocated during the workload, past the budget).
func TestEngineSizesFromMemInfoWithDraft(t *testing.T) {
	const total, reserved = 8 << 20, 1 << 20
	m, dev := loadMemFixture(t, "llama3", total, reserved)
	short := filepath.Join(t.TempDir(), "short")
	if err := loratest.Truncate(fixtureDir("llama3"), short, 1); err != nil {
		t.Fatal(err)
	}
	dm, err := model.Load(short, dev, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dm.Close()
	cfg := DefaultConfig()
	cfg.BlockSize, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, 8, 64
	cfg.GPUMemoryUtilization = 0.5
	cfg.Speculative = draftSpec(FromModel(dm), 3)
	e, err := New(FromModel(m), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	}()
	var pers []int64
	for _, mm := range []*model.Model{m, dm} {
		c, err := mm.NewCache(1, 4)
		if err != nil {
			t.Fatal(err)
		}
		pers = append(pers, c.BytesPerBlock())
		c.Free()
	}
	per := pers[0] + pers[1]
	n := e.Config().NumBlocks
	kept := dev.LiveBytes() - int64(n)*per
	// The draft's 4-block profiling cache, freed after its step, is the
	// profiled steps' transient (the cpu frees no step buffer).
	budget := int64(total*0.5) - reserved - kept - 4*pers[1]
	if int64(n)*per > budget || int64(n+1)*per <= budget {
		t.Errorf("%d blocks of %d bytes (target and draft) for a budget of %d bytes", n, per, budget)
	}
	live := dev.LiveBytes()
	var reqs []Request
	for i := range 12 {
		ids := make([]int32, 10+i*7)
		for j := range ids {
			ids[j] = int32((i*31 + j) % 500)
		}
		reqs = append(reqs, Request{PromptIDs: ids, Params: SamplingParams{MaxTokens: 8, IgnoreEOS: true}})
	}
	if _, err := e.Generate(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if got := dev.LiveBytes(); got != live {
		t.Errorf("LiveBytes %d after the workload, %d before: a step outgrew the profiled one", got, live)
	}
	if st := e.Stats(); st.SpecDraftTokens == 0 {
		t.Error("no draft tokens")
	}
}

// TestProfileBatchSpeculative: with speculation, the profiled step gives
// every sequence a decode's 1 + K tokens with a row of logits each before
// the prompt tokens go to the second one, so it asks for the most rows a
// speculative step can.
func TestProfileBatchSpeculative(t *testing.T) {
	for _, c := range []struct {
		seqs, tokens, maxLen, k int
		wantLens, wantRows      []int
	}{
		{4, 64, 512, 3, []int{4, 52, 4, 4}, []int{4, 4, 4, 4}},
		{4, 10, 512, 3, []int{4, 4, 1, 1}, []int{4, 4, 1, 1}},
		{1, 64, 512, 3, []int{64}, []int{4}},
		{3, 30, 3, 5, []int{3, 3, 3}, []int{3, 3, 3}},
		{4, 64, 512, 0, []int{1, 61, 1, 1}, []int{1, 1, 1, 1}},
	} {
		cfg := DefaultConfig()
		cfg.BlockSize, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens, cfg.MaxModelLen = 4, c.seqs, c.tokens, c.maxLen
		if c.k > 0 {
			cfg.Speculative = SpeculativeConfig{Method: "ngram", NumSpeculativeTokens: c.k}
		}
		var lens, rows []int
		for i, s := range profileBatch(cfg, 3).Seqs {
			lens, rows = append(lens, len(s.Tokens)), append(rows, s.logitRows())
			if ctx := s.StartPos + len(s.Tokens); i == 0 && ctx != c.maxLen || i > 0 && s.StartPos != 0 || len(s.BlockTable) != (ctx+3)/4 {
				t.Errorf("%+v: sequence %d: StartPos %d, %d tokens, %d blocks", c, i, s.StartPos, len(s.Tokens), len(s.BlockTable))
			}
		}
		if !slices.Equal(lens, c.wantLens) || !slices.Equal(rows, c.wantRows) {
			t.Errorf("%+v: tokens %v, rows %v; want %v, %v", c, lens, rows, c.wantLens, c.wantRows)
		}
	}
}
