package engine

import (
	"fmt"
	"iter"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/sluicehq/sluice/gpu"
)

// SamplingParams choose how tokens are drawn, as vLLM's SamplingParams.
// The zero value is valid: greedy, one completion of at most 16 tokens.
// Fields whose zero value vLLM rejects take vLLM's default instead: N 1,
// TopP 1, RepetitionPenalty 1, MaxTokens 16. Temperature 0 is greedy;
// DefaultSamplingParams has vLLM's default of 1.
type SamplingParams struct {
	// N is the number of completions of the prompt.
	N int `json:"n,omitempty" yaml:"n,omitempty"`
	// Temperature divides the logits; below 1e-5 sampling is greedy.
	Temperature float64 `json:"temperature,omitempty" yaml:"temperature,omitempty"`
	// TopP keeps the smallest set of likeliest tokens whose probabilities
	// add up to at least TopP, in (0, 1].
	TopP float64 `json:"top_p,omitempty" yaml:"top_p,omitempty"`
	// TopK keeps the K likeliest tokens (and those tied with the Kth);
	// 0 or -1 keeps all.
	TopK int `json:"top_k,omitempty" yaml:"top_k,omitempty"`
	// MinP drops tokens less likely than MinP times the likeliest, in [0, 1].
	MinP float64 `json:"min_p,omitempty" yaml:"min_p,omitempty"`
	// PresencePenalty is subtracted from the logit of every token already
	// generated, in [-2, 2].
	PresencePenalty float64 `json:"presence_penalty,omitempty" yaml:"presence_penalty,omitempty"`
	// FrequencyPenalty is subtracted once per earlier occurrence of a
	// token in the output, in [-2, 2].
	FrequencyPenalty float64 `json:"frequency_penalty,omitempty" yaml:"frequency_penalty,omitempty"`
	// RepetitionPenalty divides the positive logits, and multiplies the
	// negative ones, of the tokens in the prompt or output; > 0, 1 is off.
	RepetitionPenalty float64 `json:"repetition_penalty,omitempty" yaml:"repetition_penalty,omitempty"`
	// Seed makes sampling reproducible: each completion draws from its own
	// generator seeded by Seed (plus its index when N > 1), advanced once
	// per generated token, whatever else is in the batch.
	Seed *int64 `json:"seed,omitempty" yaml:"seed,omitempty"`
	// Stop strings end a completion when they appear in its text; the
	// text ends before the stop string.
	Stop []string `json:"stop,omitempty" yaml:"stop,omitempty"`
	// IncludeStopStrInOutput keeps the stop string at the end of the text.
	IncludeStopStrInOutput bool `json:"include_stop_str_in_output,omitempty" yaml:"include_stop_str_in_output,omitempty"`
	// StopTokenIDs end a completion, as EOS does; they stay in TokenIDs
	// but not in the text.
	StopTokenIDs []int32 `json:"stop_token_ids,omitempty" yaml:"stop_token_ids,omitempty"`
	// IgnoreEOS keeps generating past the model's EOS tokens.
	IgnoreEOS bool `json:"ignore_eos,omitempty" yaml:"ignore_eos,omitempty"`
	// MaxTokens bounds the completion's tokens.
	MaxTokens int `json:"max_tokens,omitempty" yaml:"max_tokens,omitempty"`
	// MinTokens is the least number of tokens generated before EOS, a stop
	// token or a stop string may end the completion.
	MinTokens int `json:"min_tokens,omitempty" yaml:"min_tokens,omitempty"`
	// Logprobs, when positive, returns for each generated token its
	// log-probability and the Logprobs likeliest tokens' (from the raw
	// logits, before penalties and temperature, as vLLM V1).
	Logprobs int `json:"logprobs,omitempty" yaml:"logprobs,omitempty"`
}

// DefaultSamplingParams returns vLLM's defaults: temperature 1, one
// completion of at most 16 tokens.
func DefaultSamplingParams() SamplingParams {
	return SamplingParams{N: 1, Temperature: 1, TopP: 1, RepetitionPenalty: 1, MaxTokens: 16}
}

// samplingEps is vLLM's _SAMPLING_EPS: temperatures below it are greedy.
const samplingEps = 1e-5

// withDefaults replaces the zero values that mean "vLLM's default".
func (p SamplingParams) withDefaults() SamplingParams {
	if p.N == 0 {
		p.N = 1
	}
	if p.TopP == 0 {
		p.TopP = 1
	}
	if p.TopK == -1 {
		p.TopK = 0
	}
	if p.RepetitionPenalty == 0 {
		p.RepetitionPenalty = 1
	}
	if p.MaxTokens == 0 {
		p.MaxTokens = 16
	}
	return p
}

// Validate reports the first invalid field, naming it as vLLM does and
// showing the value.
func (p SamplingParams) Validate() error {
	q := p.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...)
	}
	nan := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case q.N < 1:
		return bad("n must be at least 1, got %d", p.N)
	case nan(q.Temperature) || q.Temperature < 0:
		return bad("temperature must be non-negative, got %v", p.Temperature)
	case nan(q.TopP) || q.TopP <= 0 || q.TopP > 1:
		return bad("top_p must be in (0, 1], got %v", p.TopP)
	case q.TopK < 0:
		return bad("top_k must be -1 (disable), 0 (disable) or at least 1, got %d", p.TopK)
	case nan(q.MinP) || q.MinP < 0 || q.MinP > 1:
		return bad("min_p must be in [0, 1], got %v", p.MinP)
	case nan(q.PresencePenalty) || q.PresencePenalty < -2 || q.PresencePenalty > 2:
		return bad("presence_penalty must be in [-2, 2], got %v", p.PresencePenalty)
	case nan(q.FrequencyPenalty) || q.FrequencyPenalty < -2 || q.FrequencyPenalty > 2:
		return bad("frequency_penalty must be in [-2, 2], got %v", p.FrequencyPenalty)
	case nan(q.RepetitionPenalty) || q.RepetitionPenalty <= 0:
		return bad("repetition_penalty must be greater than zero, got %v", p.RepetitionPenalty)
	case q.MaxTokens < 1:
		return bad("max_tokens must be at least 1, got %d", p.MaxTokens)
	case q.MinTokens < 0:
		return bad("min_tokens must be non-negative, got %d", p.MinTokens)
	case q.MinTokens > q.MaxTokens:
		return bad("min_tokens (%d) cannot be larger than max_tokens (%d)", q.MinTokens, q.MaxTokens)
	case q.Logprobs < 0:
		return bad("logprobs must be non-negative, got %d", p.Logprobs)
	}
	for i, s := range q.Stop {
		if s == "" {
			return bad("stop[%d] is an empty string", i)
		}
	}
	for i, id := range q.StopTokenIDs {
		if id < 0 {
			return bad("stop_token_ids[%d] must be non-negative, got %d", i, id)
		}
	}
	return nil
}

// greedy reports whether sampling takes the argmax.
func (p *SamplingParams) greedy() bool { return p.Temperature < samplingEps }

// Logprob is the log-probability of one token at one position.
type Logprob struct {
	ID      int32   `json:"id"`
	Token   string  `json:"token"` // the token decoded alone
	Logprob float32 `json:"logprob"`
	Rank    int     `json:"rank"` // 1 for the likeliest
}

// TokenLogprobs are the log-probabilities at one generated position.
type TokenLogprobs struct {
	// Sampled is the token that was generated.
	Sampled Logprob `json:"sampled"`
	// Top are the likeliest tokens, most likely first (ties by id).
	Top []Logprob `json:"top,omitempty"`
}

// samplerState is a sequence's own sampling state.
type samplerState struct {
	p   *SamplingParams // withDefaults applied
	rng *rand.Rand      // nil when greedy

	// Penalty state, kept only when a penalty is on: counts of each output
	// token (frequency, presence) and the tokens seen in prompt or output
	// (repetition), updated from the sequence's tokens as they grow.
	counts  map[int32]int32
	seen    []uint64 // bitset over the vocabulary
	counted int      // tokens of the sequence folded into the state
}

func newSamplerState(p *SamplingParams, seed uint64) *samplerState {
	st := &samplerState{p: p}
	if !p.greedy() {
		st.rng = rand.New(rand.NewPCG(seed, 0x736c75696365)) // "sluice"
	}
	return st
}

// sampler turns logits into tokens, as vLLM V1's Sampler: min_tokens
// masking, then penalties, then greedy argmax or temperature, min_p,
// top_k, top_p and a draw. It reuses its buffers: sample allocates only
// the logprobs it returns.
type sampler struct {
	vocab int
	eos   []int32 // masked with stop_token_ids before min_tokens
	buf   []float32
	host  gpu.HostDraw
	edits []gpu.SampleEdit // addRow's scratch
}

func newSampler(vocab int, eos []int32) *sampler {
	return &sampler{vocab: vocab, eos: eos, buf: make([]float32, vocab)}
}

// sample draws seq's next token from logits (one row, read only).
func (sm *sampler) sample(logits []float32, seq *Sequence, st *samplerState) (int32, *TokenLogprobs) {
	p := st.p
	var lp *TokenLogprobs
	if p.Logprobs > 0 {
		lp = topLogprobs(logits, p.Logprobs)
	}
	x := sm.buf
	copy(x, logits)
	for id := range sm.masked(seq) {
		x[id] = float32(math.Inf(-1))
	}
	constrain(x, seq)
	sm.penalize(x, seq, st)

	var tok int32
	if p.greedy() {
		tok = argmax(x)
	} else {
		tok = sm.draw(x, p, st.rng)
	}
	if lp != nil {
		lp.Sampled = rankOf(logits, tok)
	}
	return tok, lp
}

// masked yields the tokens min_tokens masks in seq's next draw: EOS and
// the stop token ids, until seq has min_tokens of output.
func (sm *sampler) masked(seq *Sequence) iter.Seq[int32] {
	return func(yield func(int32) bool) {
		if seq.numOutput() >= seq.stop.minTokens {
			return
		}
		for _, ids := range [][]int32{sm.eos, seq.stop.stopIDs} {
			for _, id := range ids {
				if id >= 0 && int(id) < sm.vocab && !yield(id) {
					return
				}
			}
		}
	}
}

// seenTokens yields the tokens of the prompt and output seen so far
// (the repetition penalty's set), in id order.
func (st *samplerState) seenTokens() iter.Seq[int32] {
	return func(yield func(int32) bool) {
		for w, word := range st.seen {
			for word != 0 {
				b := bits.TrailingZeros64(word)
				word &= word - 1
				if !yield(int32(w*64 + b)) {
					return
				}
			}
		}
	}
}

// penalize applies repetition, frequency and presence penalties, as vLLM's
// apply_penalties.
func (sm *sampler) penalize(x []float32, seq *Sequence, st *samplerState) {
	p := st.p
	rep, freq := sm.track(seq, st)
	if !rep && !freq {
		return
	}
	if rep {
		r := float32(p.RepetitionPenalty)
		for t := range st.seenTokens() {
			if x[t] > 0 {
				x[t] /= r
			} else {
				x[t] *= r
			}
		}
	}
	if freq {
		fp, pp := float32(p.FrequencyPenalty), float32(p.PresencePenalty)
		for t, c := range st.counts {
			x[t] -= float32(fp*float32(c)) + pp // rounded twice, as vLLM and the device sampler
		}
	}
}

// track folds the sequence's new tokens into its penalty state and reports
// which penalties are on: repetition, and frequency or presence.
func (sm *sampler) track(seq *Sequence, st *samplerState) (rep, freq bool) {
	p := st.p
	rep = p.RepetitionPenalty != 1
	freq = p.FrequencyPenalty != 0 || p.PresencePenalty != 0
	if !rep && !freq {
		return false, false
	}
	if st.counts == nil {
		st.counts = map[int32]int32{}
		if rep {
			st.seen = make([]uint64, (sm.vocab+63)/64)
		}
	}
	for i := st.counted; i < len(seq.tokens); i++ {
		t := seq.tokens[i]
		if int(t) >= sm.vocab || t < 0 {
			continue
		}
		if i >= seq.numPrompt {
			st.counts[t]++
		}
		if rep {
			st.seen[t/64] |= 1 << (t % 64)
		}
	}
	st.counted = len(seq.tokens)
	return rep, freq
}

// argmax returns the first index of the largest value, as torch.argmax.
func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

// draw samples from x (logits, read only) after temperature, min_p, top_k
// and top_p, with one uniform draw by inverse CDF over token ids in order:
// gpu.HostDraw, which the device sampler's cpu backend shares.
func (sm *sampler) draw(x []float32, p *SamplingParams, rng *rand.Rand) int32 {
	return sm.host.Draw(x, float32(1/p.Temperature), p.TopK, p.TopP, p.MinP, rng.Float64())
}

// logSumExp is log Σ exp(x).
func logSumExp(x []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = max(mx, float64(v))
	}
	sum := 0.0
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(sum)
}

// topLogprobs returns the n likeliest tokens of the raw logits.
func topLogprobs(logits []float32, n int) *TokenLogprobs {
	n = min(n, len(logits))
	lse := logSumExp(logits)
	top := make([]Logprob, 0, n+1)
	for i, v := range logits {
		if len(top) == n && v <= top[n-1].Logprob {
			continue
		}
		// Insert after equal values: ties keep the smaller id first.
		j := len(top)
		for j > 0 && top[j-1].Logprob < v {
			j--
		}
		top = slices.Insert(top, j, Logprob{ID: int32(i), Logprob: v})
		if len(top) > n {
			top = top[:n]
		}
	}
	for i := range top {
		top[i].Logprob = float32(float64(top[i].Logprob) - lse)
		top[i].Rank = i + 1
	}
	return &TokenLogprobs{Top: top}
}

// rankOf returns tok's logprob and rank (1 + the tokens strictly likelier).
func rankOf(logits []float32, tok int32) Logprob {
	v := logits[tok]
	rank := 1
	for _, w := range logits {
		if w > v {
			rank++
		}
	}
	return Logprob{ID: tok, Logprob: float32(float64(v) - logSumExp(logits)), Rank: rank}
}
