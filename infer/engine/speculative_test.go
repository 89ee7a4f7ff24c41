package engine

import (
	"context"
	"math"
	"slices"
	"testing"
)

func TestNgramPropose(t *testing.T) {
	cases := []struct {
		toks       []int32
		k, lo, hi  int
		want       []int32
		whyNothing string
	}{
		{toks: []int32{1, 2, 3, 4, 1, 2}, k: 3, lo: 1, hi: 3, want: []int32{3, 4, 1}},
		{toks: []int32{1, 2, 3, 4, 1, 2}, k: 1, lo: 1, hi: 3, want: []int32{3}},
		// The longest n-gram wins over a newer shorter match.
		{toks: []int32{7, 8, 9, 5, 8, 6, 7, 8}, k: 2, lo: 1, hi: 2, want: []int32{9, 5}},
		// Among matches of one length, the newest.
		{toks: []int32{5, 1, 5, 2, 5}, k: 1, lo: 1, hi: 1, want: []int32{2}},
		// The draft stops at the end of the sequence.
		{toks: []int32{4, 4}, k: 5, lo: 1, hi: 3, want: []int32{4}},
		{toks: []int32{1, 2, 3}, k: 3, lo: 1, hi: 3, whyNothing: "the last token never occurred before"},
		{toks: []int32{1, 2, 9, 2}, k: 3, lo: 2, hi: 3, whyNothing: "only a 1-gram matches, below the minimum"},
		{toks: []int32{1, 1}, k: 0, lo: 1, hi: 3, whyNothing: "no room for a draft"},
	}
	for _, c := range cases {
		got := ngramPropose(nil, c.toks, c.k, c.lo, c.hi)
		if !slices.Equal(got, c.want) {
			t.Errorf("ngramPropose(%v, k=%d, n in [%d, %d]) = %v, want %v %s", c.toks, c.k, c.lo, c.hi, got, c.want, c.whyNothing)
		}
	}
}

func TestSpeculativeConfigErrors(t *testing.T) {
	for _, c := range []SpeculativeConfig{
		{Method: "draft"},
		{Method: "ngram"},
		{Method: "ngram", NumSpeculativeTokens: 2, PromptLookupMin: 3, PromptLookupMax: 2},
	} {
		cfg := DefaultConfig()
		cfg.Speculative = c
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// TestSpeculativeHostPath runs requests whose draws happen on the host
// (penalties, logprobs, seeded sampling) on every fixture model, with and
// without n-gram speculation: each draws from the distribution it would
// have without speculation, with the same uniforms in the same order, so
// the tokens and logprobs are the same.
func TestSpeculativeHostPath(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			cases := readGreedy(t, name)
			r := FromModel(loadFixture(t, name))
			var reqs []Request
			for i, c := range cases {
				seed := int64(i)
				reqs = append(reqs,
					Request{PromptIDs: c.Prompt, Params: SamplingParams{MaxTokens: 24, IgnoreEOS: true, Logprobs: 2, RepetitionPenalty: 1.05, MinTokens: 3}},
					Request{PromptIDs: c.Prompt, Params: SamplingParams{MaxTokens: 24, IgnoreEOS: true, Temperature: 0.3, TopK: 8, Seed: &seed, FrequencyPenalty: 0.1}})
			}
			run := func(spec SpeculativeConfig) ([]Completion, Stats) {
				cfg := DefaultConfig()
				cfg.BlockSize, cfg.NumBlocks, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, 128, 8, 64
				cfg.Speculative = spec
				e, err := New(r, nil, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				got, err := e.Generate(context.Background(), reqs)
				if err != nil {
					t.Fatal(err)
				}
				return got, e.Stats()
			}
			want, _ := run(SpeculativeConfig{})
			got, st := run(SpeculativeConfig{Method: "ngram", NumSpeculativeTokens: 4})
			for i := range want {
				if !slices.Equal(got[i].TokenIDs, want[i].TokenIDs) {
					t.Errorf("request %d: %v with speculation, %v without", i, got[i].TokenIDs, want[i].TokenIDs)
					continue
				}
				for j := range want[i].Logprobs {
					if g, w := got[i].Logprobs[j].Sampled, want[i].Logprobs[j].Sampled; g.ID != w.ID || math.Abs(float64(g.Logprob-w.Logprob)) > 1e-4 {
						t.Errorf("request %d token %d: logprob %+v with speculation, %+v without", i, j, g, w)
					}
				}
			}
			if st.SpecAcceptedTokens == 0 {
				t.Errorf("speculation accepted none of %d drafts", st.SpecDraftTokens)
			}
			t.Logf("drafts %d, accepted %d (%.0f%%)", st.SpecDraftTokens, st.SpecAcceptedTokens, 100*st.SpecAcceptanceRate)
		})
	}
}

// topKProbs is the distribution a draw with top_k = k at temperature 1
// samples from: softmax over the k largest logits.
func topKProbs(logits []float32, k int) map[int32]float64 {
	ids := make([]int32, len(logits))
	for i := range ids {
		ids[i] = int32(i)
	}
	slices.SortStableFunc(ids, func(a, b int32) int {
		switch {
		case logits[a] > logits[b]:
			return -1
		case logits[a] < logits[b]:
			return 1
		}
		return 0
	})
	p := map[int32]float64{}
	sum := 0.0
	for _, id := range ids[:k] {
		p[id] = math.Exp(float64(logits[id] - logits[ids[0]]))
		sum += p[id]
	}
	for id := range p {
		p[id] /= sum
	}
	return p
}

// TestSpeculativeChiSquare samples many seeded three-token completions of
// a prompt the n-gram speculator drafts for, with top_k = 2, and compares
// the counts of each (t0, t1, t2) with the fake model's exact
// probabilities by a chi-square test: with speculation, t1 and t2 come from
// the verification of a draft when t0 (and t1) make one, and the joint
// distribution must stay the model's. The same holds with a draft model
// proposing: the fake itself (its greedy drafts are the likeliest token)
// and a noisy copy of it (its drafts are sometimes the second likeliest,
// sometimes outside the top 2).
func TestSpeculativeChiSquare(t *testing.T) {
	const topK, n = 2, 4000
	f := NewFakeRunner(64)
	// A prompt a b a b a whose likely continuations draft: b is among the
	// two likeliest tokens after it, and a after the prompt and b.
	var prompt []int32
	for a := int32(1); a < 200 && prompt == nil; a++ {
		for b := int32(1); b < 200; b++ {
			pr := []int32{a, b, a, b, a}
			p0 := topKProbs(f.Logits(pr), topK)
			p1 := topKProbs(f.Logits(append(slices.Clone(pr), b)), topK)
			if a != b && p0[b] > 0.25 && p1[a] > 0.25 {
				prompt = pr
				break
			}
		}
	}
	if prompt == nil {
		t.Fatal("no prompt found")
	}
	for _, spec := range []SpeculativeConfig{{}, {Method: "ngram", NumSpeculativeTokens: 2},
		{Method: "draft_model", NumSpeculativeTokens: 2, Draft: NewFakeRunner(64)},
		{Method: "draft_model", NumSpeculativeTokens: 2, Draft: NewFakeDraft(64, 1, 1)}} {
		cfg := DefaultConfig()
		cfg.BlockSize, cfg.NumBlocks, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, 4096, 256, 2048
		cfg.Speculative = spec
		e, err := New(f, nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		reqs := make([]Request, n)
		for i := range reqs {
			seed := int64(i)
			reqs[i] = Request{PromptIDs: prompt, Params: SamplingParams{Temperature: 1, TopK: topK, Seed: &seed, MaxTokens: 3, IgnoreEOS: true}}
		}
		got, err := e.Generate(context.Background(), reqs)
		st := e.Stats()
		if cerr := e.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		counts := map[[3]int32]int{}
		for _, c := range got {
			counts[[3]int32(c.TokenIDs)]++
		}
		// The exact joint distribution, cell by cell.
		chi2, cells := 0.0, 0
		p0 := topKProbs(f.Logits(prompt), topK)
		for t0, q0 := range p0 {
			h1 := append(slices.Clone(prompt), t0)
			for t1, q1 := range topKProbs(f.Logits(h1), topK) {
				for t2, q2 := range topKProbs(f.Logits(append(slices.Clone(h1), t1)), topK) {
					want := n * q0 * q1 * q2
					d := float64(counts[[3]int32{t0, t1, t2}]) - want
					chi2 += d * d / want
					cells++
					delete(counts, [3]int32{t0, t1, t2})
				}
			}
		}
		if len(counts) > 0 {
			t.Errorf("%+v: completions outside the top-%d support: %v", spec, topK, counts)
		}
		// 7 degrees of freedom: P(chi2 > 24.32) = 0.001.
		if cells != 8 || chi2 > 24.32 {
			t.Errorf("%+v: chi-square %.2f over %d cells, want at most 24.32 over 8", spec, chi2, cells)
		}
		if spec.Method != "" && st.SpecAcceptedTokens < n/20 {
			t.Errorf("only %d of %d drafts accepted: the test does not exercise verification", st.SpecAcceptedTokens, st.SpecDraftTokens)
		}
		t.Logf("%+v: chi-square %.2f; drafts %d, accepted %d", spec, chi2, st.SpecDraftTokens, st.SpecAcceptedTokens)
	}
}
