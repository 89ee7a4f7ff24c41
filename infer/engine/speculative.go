package engine

import (
	"fmt"
	"slices"
)

// Speculative decoding, as vLLM's n-gram speculator (prompt lookup
// decoding): before a decode step, a sequence proposes up to
// NumSpeculativeTokens draft tokens by finding the newest earlier place
// where its last n tokens occurred (n from PromptLookupMax down to
// PromptLookupMin) and copying the tokens that followed. The step computes
// the last token and the drafts together, with logits after each; the
// sampler then draws at each position in turn, with the position's
// history, and keeps going while its draw equals the draft.
//
// That is exact rejection sampling: a proposer that puts all its mass q on
// one draft token d accepts it with probability min(1, p(d)/q(d)) = p(d),
// and on rejection draws from (p − q)⁺ normalized, which is p conditioned
// on not d. Drawing x from p and accepting when x = d gives both at once,
// so every output token has the distribution it has without speculation,
// and greedy output is the same token for token.

// SpeculativeConfig turns on speculative decoding (vLLM's
// --speculative-config {"method": "ngram", ...} or {"method":
// "draft_model", "model": DIR, ...}).
type SpeculativeConfig struct {
	// Method is "ngram" (prompt lookup), "draft_model" (a second, smaller
	// model proposes: draft.go) or "" for none.
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	// Model is the draft model's directory with method "draft_model", for
	// the caller that loads it into Draft (the engine reads only Draft).
	Model string `json:"model,omitempty" yaml:"model,omitempty"`
	// Draft runs the draft model with method "draft_model". Its vocabulary
	// must be the target's; the engine gives it a KV cache of its own, of
	// as many blocks as the target's, and frees it on Close. It stays the
	// caller's to close, after the engine.
	Draft Runner `json:"-" yaml:"-"`
	// NumSpeculativeTokens is the most draft tokens a sequence proposes
	// per step.
	NumSpeculativeTokens int `json:"num_speculative_tokens,omitempty" yaml:"num_speculative_tokens,omitempty"`
	// PromptLookupMax and PromptLookupMin bound the n-gram matched against
	// the sequence's earlier tokens (vLLM's prompt_lookup_max/min); 0 means
	// 4 and 1.
	PromptLookupMax int `json:"prompt_lookup_max,omitempty" yaml:"prompt_lookup_max,omitempty"`
	PromptLookupMin int `json:"prompt_lookup_min,omitempty" yaml:"prompt_lookup_min,omitempty"`
}

func (c SpeculativeConfig) withDefaults() SpeculativeConfig {
	if c.PromptLookupMax == 0 {
		c.PromptLookupMax = 4
	}
	if c.PromptLookupMin == 0 {
		c.PromptLookupMin = 1
	}
	return c
}

// Validate checks the fields.
func (c SpeculativeConfig) Validate() error {
	if c.Method == "" {
		return nil
	}
	c = c.withDefaults()
	switch {
	case c.Method != "ngram" && c.Method != "draft_model":
		return fmt.Errorf("%w: speculative method %q: want \"ngram\" or \"draft_model\"", ErrInvalidConfig, c.Method)
	case c.Method == "draft_model" && c.Draft == nil:
		return fmt.Errorf("%w: speculative method \"draft_model\" needs the loaded draft model in SpeculativeConfig.Draft (model %q)", ErrInvalidConfig, c.Model)
	case c.Method != "draft_model" && c.Draft != nil:
		return fmt.Errorf("%w: SpeculativeConfig.Draft is set with method %q, not \"draft_model\"", ErrInvalidConfig, c.Method)
	case c.NumSpeculativeTokens < 1:
		return fmt.Errorf("%w: num_speculative_tokens must be at least 1 with method %q, got %d", ErrInvalidConfig, c.Method, c.NumSpeculativeTokens)
	case c.PromptLookupMin < 1 || c.PromptLookupMax < c.PromptLookupMin:
		return fmt.Errorf("%w: prompt_lookup_min (%d) and prompt_lookup_max (%d) must satisfy 1 <= min <= max",
			ErrInvalidConfig, c.PromptLookupMin, c.PromptLookupMax)
	}
	return nil
}

// ngramPropose returns up to k tokens that followed the newest earlier
// occurrence of toks' last n tokens, for the largest n in [minN, maxN]
// that has one, appended to dst[:0].
func ngramPropose(dst, toks []int32, k, minN, maxN int) []int32 {
	dst = dst[:0]
	if k <= 0 {
		return dst
	}
	L := len(toks)
	for n := min(maxN, L-1); n >= minN; n-- {
		suffix := toks[L-n:]
		// The newest match ending before the suffix itself.
		for start := L - n - 1; start >= 0; start-- {
			if slices.Equal(toks[start:start+n], suffix) {
				end := min(start+n+k, L)
				return append(dst, toks[start+n:end]...)
			}
		}
	}
	return dst
}

// spec is what a speculative step gave one sequence after its first token:
// the tokens drawn after each accepted draft, in order.
type spec struct {
	row  int // the sequence's index among the step's sampling ones
	toks []int32
	lps  []*TokenLogprobs
}

// verify draws the tokens after the first, tok, of a speculative
// sequence's step on the host: while the last draw equals the next draft,
// that draft is accepted and the next row's draw, with the accepted drafts
// in the history (penalties, min_tokens), is the next token. row is the
// first draft's row of logits; verify returns the row after the
// sequence's last.
func (e *Engine) verify(sc scheduled, tok int32, logits []float32, row int) int {
	seq, v := sc.seq, e.spec.Vocab
	n := len(seq.tokens)
	var m spec
	for i, d := range seq.draft {
		if tok != d {
			break
		}
		seq.tokens = append(seq.tokens, d) // the history the next draw sees
		var lp *TokenLogprobs
		tok, lp = e.sampler.sample(logits[(row+i)*v:(row+i+1)*v], seq, seq.x.samp)
		m.toks = append(m.toks, tok)
		m.lps = append(m.lps, lp)
	}
	seq.tokens = seq.tokens[:n] // postprocess appends them again, checking stops
	e.addMore(len(e.toks)-1, sc, m)
	return row + sc.draft
}

// addMore records m for the sampling sequence at index k and counts its
// drafts.
func (e *Engine) addMore(k int, sc scheduled, m spec) {
	e.stats.specDrafted.Add(int64(sc.draft))
	e.stats.specAccepted.Add(int64(len(m.toks)))
	if len(m.toks) == 0 {
		return
	}
	m.row = k
	e.more = append(e.more, m)
}
