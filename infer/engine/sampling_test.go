package engine

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// fixedSource makes rng.Float64() return u (to 2^-53).
type fixedSource struct{ u float64 }

func (s fixedSource) Uint64() uint64 { return uint64(s.u * (1 << 53)) }

// logitsOf returns logits whose softmax is probs.
func logitsOf(probs ...float64) []float32 {
	x := make([]float32, len(probs))
	for i, p := range probs {
		x[i] = float32(math.Log(p))
	}
	return x
}

// seqWith is a sequence of prompt and output tokens, for the sampler.
func seqWith(prompt, output []int32, minTokens int, stopIDs ...int32) *Sequence {
	s := newSequence(1, prompt, stopRule{maxTokens: 100, minTokens: minTokens, stopIDs: stopIDs})
	s.tokens = append(s.tokens, output...)
	return s
}

func TestPenalties(t *testing.T) {
	// Vocabulary of 4; prompt [1]; output [0 0 2].
	raw := []float32{2, -1, 0.5, 1}
	cases := []struct {
		name   string
		p      SamplingParams
		want   []float32
		greedy int32
	}{
		{"none", SamplingParams{}, []float32{2, -1, 0.5, 1}, 0},
		// Seen tokens 0, 1, 2: positive logits divided, negative multiplied.
		{"repetition 4", SamplingParams{RepetitionPenalty: 4}, []float32{0.5, -4, 0.125, 1}, 3},
		// Output counts {0: 2, 2: 1}; the prompt does not count.
		{"frequency 0.8", SamplingParams{FrequencyPenalty: 0.8}, []float32{0.4, -1, -0.3, 1}, 3},
		{"presence 0.5", SamplingParams{PresencePenalty: 0.5}, []float32{1.5, -1, 0, 1}, 0},
		{"presence and frequency", SamplingParams{PresencePenalty: 0.5, FrequencyPenalty: 0.5}, []float32{0.5, -1, -0.5, 1}, 3},
		{"negative frequency", SamplingParams{FrequencyPenalty: -1}, []float32{4, -1, 1.5, 1}, 0},
		// Repetition first, then frequency: (2/2) - 2*0.25 = 0.5.
		{"repetition then frequency", SamplingParams{RepetitionPenalty: 2, FrequencyPenalty: 0.25}, []float32{0.5, -2, 0, 1}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.p.withDefaults()
			seq := seqWith([]int32{1}, []int32{0, 0, 2}, 0)
			st := newSamplerState(&p, 0)
			sm := newSampler(4, nil)
			x := slices.Clone(raw)
			sm.penalize(x, seq, st)
			if !approx(x, c.want) {
				t.Errorf("penalized logits %v, want %v", x, c.want)
			}
			tok, _ := sm.sample(raw, seq, st)
			if tok != c.greedy {
				t.Errorf("greedy token %d, want %d", tok, c.greedy)
			}
			// State is incremental: a new output token updates the counts.
			seq.tokens = append(seq.tokens, 3)
			x = slices.Clone(raw)
			sm.penalize(x, seq, st)
			if p.FrequencyPenalty != 0 && p.RepetitionPenalty == 1 && x[3] != 1-float32(p.FrequencyPenalty)-float32(p.PresencePenalty) {
				t.Errorf("after a new token 3, its logit is %v", x[3])
			}
		})
	}
}

func approx(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			return false
		}
	}
	return true
}

// TestDraw checks the masks and the inverse-CDF draw on probabilities
// [0.5 0.3 0.15 0.05] with a fixed uniform u.
func TestDraw(t *testing.T) {
	probs := []float64{0.5, 0.3, 0.15, 0.05}
	cases := []struct {
		name string
		p    SamplingParams
		u    float64
		want int32
	}{
		{"u below the first", SamplingParams{Temperature: 1}, 0.45, 0},
		{"u in the second", SamplingParams{Temperature: 1}, 0.55, 1},
		{"u in the third", SamplingParams{Temperature: 1}, 0.9, 2},
		{"u in the last", SamplingParams{Temperature: 1}, 0.99, 3},
		// top_k 2 keeps 0 and 1: renormalized [0.625 0.375].
		{"top_k 2", SamplingParams{Temperature: 1, TopK: 2}, 0.6, 0},
		{"top_k 2, high u", SamplingParams{Temperature: 1, TopK: 2}, 0.99, 1},
		// top_p 0.8: ascending cumsum 0.05, 0.2, 0.5: the first two are
		// at most 0.2 and masked.
		{"top_p 0.8", SamplingParams{Temperature: 1, TopP: 0.8}, 0.99, 1},
		// top_p 0.9: only 0.05 <= 0.1 is masked: [0.526 0.316 0.158].
		{"top_p 0.9", SamplingParams{Temperature: 1, TopP: 0.9}, 0.99, 2},
		// min_p 0.2 drops probabilities below 0.1: token 3.
		{"min_p 0.2", SamplingParams{Temperature: 1, MinP: 0.2}, 0.99, 2},
		// min_p 0.7 keeps only probabilities >= 0.35: token 0.
		{"min_p 0.7", SamplingParams{Temperature: 1, MinP: 0.7}, 0.99, 0},
		// Temperature 0.5 squares the probabilities: [0.25 .09 .0225
		// .0025]/0.365: token 0 up to 0.685.
		{"temperature 0.5", SamplingParams{Temperature: 0.5}, 0.68, 0},
		{"temperature 0.5, past", SamplingParams{Temperature: 0.5}, 0.69, 1},
		// top_k 1 is greedy whatever u.
		{"top_k 1", SamplingParams{Temperature: 1, TopK: 1}, 0.99, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.p.withDefaults()
			sm := newSampler(4, nil)
			got := sm.draw(logitsOf(probs...), &p, rand.New(fixedSource{c.u}))
			if got != c.want {
				t.Errorf("drew %d, want %d", got, c.want)
			}
		})
	}
}

// TestTopKOneIsGreedy compares top_k 1 at any temperature with greedy on
// random logits.
func TestTopKOneIsGreedy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sm := newSampler(1000, nil)
	for i := range 50 {
		x := make([]float32, 1000)
		for j := range x {
			x[j] = float32(rng.NormFloat64())
		}
		p := SamplingParams{Temperature: 0.3 + rng.Float64()*2, TopK: 1, Seed: new(int64(i))}.withDefaults()
		st := newSamplerState(&p, uint64(i))
		seq := seqWith([]int32{5}, nil, 0)
		got, _ := sm.sample(x, seq, st)
		if want := argmax(x); got != want {
			t.Fatalf("case %d: top_k 1 sampled %d, argmax is %d", i, got, want)
		}
	}
}

func TestMinTokensMasksStops(t *testing.T) {
	// EOS 3 is likeliest, then stop token 2, then 0.
	x := []float32{1, 0, 2, 3}
	sm := newSampler(4, []int32{3})
	p := SamplingParams{MinTokens: 2, StopTokenIDs: []int32{2}}.withDefaults()
	st := newSamplerState(&p, 0)
	for n, want := range []int32{0, 0, 3} {
		seq := seqWith([]int32{1}, make([]int32, n), 2, 2)
		seq.stop.eos = []int32{3}
		if got, _ := sm.sample(x, seq, st); got != want {
			t.Errorf("after %d outputs: sampled %d, want %d", n, got, want)
		}
	}
}

func TestLogprobs(t *testing.T) {
	// Probabilities 0.1 0.2 0.3 0.4.
	x := logitsOf(0.1, 0.2, 0.3, 0.4)
	sm := newSampler(4, nil)
	p := SamplingParams{Logprobs: 2, Temperature: 1}.withDefaults()
	st := newSamplerState(&p, 0)
	st.rng = rand.New(fixedSource{0.15}) // cum 0.1, 0.3: token 1
	tok, lp := sm.sample(x, seqWith([]int32{0}, nil, 0), st)
	if tok != 1 {
		t.Fatalf("sampled %d, want 1", tok)
	}
	want := TokenLogprobs{
		Sampled: Logprob{ID: 1, Logprob: float32(math.Log(0.2)), Rank: 3},
		Top:     []Logprob{{ID: 3, Logprob: float32(math.Log(0.4)), Rank: 1}, {ID: 2, Logprob: float32(math.Log(0.3)), Rank: 2}},
	}
	near := func(a, b Logprob) bool {
		return a.ID == b.ID && a.Rank == b.Rank && math.Abs(float64(a.Logprob-b.Logprob)) < 1e-6
	}
	if !near(lp.Sampled, want.Sampled) || len(lp.Top) != 2 || !near(lp.Top[0], want.Top[0]) || !near(lp.Top[1], want.Top[1]) {
		t.Errorf("logprobs %+v, want %+v", *lp, want)
	}
	// Ties: equal logits list the smaller id first.
	lp = topLogprobs([]float32{1, 2, 2, 0}, 2)
	if lp.Top[0].ID != 1 || lp.Top[1].ID != 2 {
		t.Errorf("tied top %+v, want ids 1, 2", lp.Top)
	}
}

// TestSeededDrawsAreReproducible: the same seed gives the same tokens
// from the same logits, one draw per token.
func TestSeededDraws(t *testing.T) {
	x := logitsOf(0.25, 0.25, 0.25, 0.25)
	sm := newSampler(4, nil)
	run := func(seed uint64) []int32 {
		p := SamplingParams{Temperature: 1}.withDefaults()
		st := newSamplerState(&p, seed)
		var out []int32
		for range 20 {
			tok, _ := sm.sample(x, seqWith([]int32{0}, nil, 0), st)
			out = append(out, tok)
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Errorf("seed 7: %v and %v; seed 8: %v", a, b, c)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		p    SamplingParams
		want string
	}{
		{SamplingParams{}, ""},
		{DefaultSamplingParams(), ""},
		{SamplingParams{TopK: -1, MinP: 1, PresencePenalty: -2, FrequencyPenalty: 2, Stop: []string{"x"}}, ""},
		{SamplingParams{N: -1}, "n must be at least 1, got -1"},
		{SamplingParams{Temperature: -0.5}, "temperature must be non-negative, got -0.5"},
		{SamplingParams{Temperature: math.NaN()}, "temperature must be non-negative, got NaN"},
		{SamplingParams{TopP: 1.5}, "top_p must be in (0, 1], got 1.5"},
		{SamplingParams{TopP: -0.1}, "top_p must be in (0, 1], got -0.1"},
		{SamplingParams{TopK: -2}, "top_k must be -1 (disable), 0 (disable) or at least 1, got -2"},
		{SamplingParams{MinP: 1.1}, "min_p must be in [0, 1], got 1.1"},
		{SamplingParams{PresencePenalty: 2.5}, "presence_penalty must be in [-2, 2], got 2.5"},
		{SamplingParams{FrequencyPenalty: -3}, "frequency_penalty must be in [-2, 2], got -3"},
		{SamplingParams{RepetitionPenalty: -1}, "repetition_penalty must be greater than zero, got -1"},
		{SamplingParams{MaxTokens: -4}, "max_tokens must be at least 1, got -4"},
		{SamplingParams{MinTokens: -1}, "min_tokens must be non-negative, got -1"},
		{SamplingParams{MinTokens: 20, MaxTokens: 10}, "min_tokens (20) cannot be larger than max_tokens (10)"},
		{SamplingParams{MinTokens: 17}, "min_tokens (17) cannot be larger than max_tokens (16)"},
		{SamplingParams{Logprobs: -1}, "logprobs must be non-negative, got -1"},
		{SamplingParams{Stop: []string{"a", ""}}, "stop[1] is an empty string"},
		{SamplingParams{StopTokenIDs: []int32{3, -3}}, "stop_token_ids[1] must be non-negative, got -3"},
	}
	for _, c := range cases {
		err := c.p.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.p, err)
		case c.want != "" && (err == nil || err.Error() != "infer: invalid sampling params: "+c.want):
			t.Errorf("%+v: got %v, want %q", c.p, err, c.want)
		case err != nil && !errors.Is(err, ErrInvalidParams):
			t.Errorf("%v is not ErrInvalidParams", err)
		}
	}
}
