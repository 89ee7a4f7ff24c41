package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/infer/tokenizer"
)

// newTestEngine starts an engine on a fake model with the fake tokenizer;
// the test fails if Close finds leaked blocks.
func newTestEngine(t testing.TB, cfg Config, maxPositions int) (*Engine, *FakeRunner) {
	t.Helper()
	f := NewFakeRunner(maxPositions)
	e, err := New(f, FakeTokenizer(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e, f
}

// testPrompts returns n prompts of byte tokens; every third shares a
// 40-token prefix with the others of its kind, so prefix caching has
// something to find.
func testPrompts(n int, seed uint64) [][]int32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	shared := make([]int32, 40)
	for i := range shared {
		shared[i] = int32(rng.IntN(256))
	}
	var out [][]int32
	for i := range n {
		l := 5 + rng.IntN(60)
		var p []int32
		if i%3 == 0 {
			p = append(p, shared...)
		}
		for range l {
			p = append(p, int32(rng.IntN(256)))
		}
		out = append(out, p)
	}
	return out
}

func smallConfig() Config {
	c := DefaultConfig()
	c.BlockSize = 4
	c.NumBlocks = 256
	c.MaxNumSeqs = 8
	c.MaxNumBatchedTokens = 64
	return c
}

// TestGreedyMatchesReference runs the same requests under every way of
// scheduling them and compares each output with the fake model's
// cache-free greedy continuation.
func TestGreedyMatchesReference(t *testing.T) {
	prompts := testPrompts(12, 7)
	const maxTokens = 24
	configs := map[string]func(c *Config){
		"default":         func(c *Config) {},
		"no prefix cache": func(c *Config) { c.EnablePrefixCaching = false },
		"chunked":         func(c *Config) { c.MaxNumBatchedTokens = 8 },
		"no chunking":     func(c *Config) { c.EnableChunkedPrefill = false; c.MaxNumBatchedTokens = 128; c.MaxModelLen = 128 },
		"one seq":         func(c *Config) { c.MaxNumSeqs = 1; c.MaxNumBatchedTokens = 8 },
		"preemption":      func(c *Config) { c.NumBlocks = 30 },
		"preemption, no prefix cache": func(c *Config) {
			c.NumBlocks = 30
			c.EnablePrefixCaching = false
		},
		"preemption, chunked, block 16": func(c *Config) {
			c.BlockSize = 16
			c.NumBlocks = 8
			c.MaxNumBatchedTokens = 16
		},
	}
	for name, edit := range configs {
		t.Run(name, func(t *testing.T) {
			cfg := smallConfig()
			edit(&cfg)
			e, f := newTestEngine(t, cfg, 128)
			var reqs []Request
			for _, p := range prompts {
				reqs = append(reqs, Request{PromptIDs: p, Params: SamplingParams{MaxTokens: maxTokens}})
			}
			// All together, then each alone.
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
			st := e.Stats()
			t.Logf("%+v", st)
			if strings.HasPrefix(name, "preemption") && st.Preemptions == 0 {
				t.Errorf("no preemption with %d blocks", cfg.NumBlocks)
			}
			if cfg.EnablePrefixCaching && st.PrefixCacheHit == 0 {
				t.Errorf("no prefix cache hits")
			}
			if !cfg.EnablePrefixCaching && st.PrefixCacheHit != 0 {
				t.Errorf("prefix cache hits with prefix caching off")
			}
			// Every step is a prefill step (a prompt chunk in it) or a
			// decode step, and both kinds ran (prompts of several tokens,
			// several tokens out).
			if st.PrefillSteps+st.DecodeSteps != st.Steps || st.PrefillSteps == 0 || st.DecodeSteps == 0 {
				t.Errorf("%d prefill and %d decode steps of %d", st.PrefillSteps, st.DecodeSteps, st.Steps)
			}
			if !(st.PrefillSeconds > 0 && st.DecodeSeconds > 0) {
				t.Errorf("prefill %vs, decode %vs: want both > 0", st.PrefillSeconds, st.DecodeSeconds)
			}
		})
	}
}

func checkGreedy(t *testing.T, f *FakeRunner, prompt []int32, maxTokens int, c Completion) {
	t.Helper()
	want := f.Generate(prompt, maxTokens, false)
	if c.Err != nil || !slices.Equal(c.TokenIDs, want) {
		t.Errorf("request %d: got %v (err %v), want %v", c.Request, c.TokenIDs, c.Err, want)
	}
	reason := FinishLength
	if len(want) > 0 && want[len(want)-1] == FakeEOS {
		reason = FinishStop
	}
	if c.FinishReason != reason || c.PromptTokens != len(prompt) || c.CompletionTokens != len(want) {
		t.Errorf("request %d: finish %q, tokens %d+%d; want %q, %d+%d", c.Request, c.FinishReason,
			c.PromptTokens, c.CompletionTokens, reason, len(prompt), len(want))
	}
}

// TestPrefixCacheChainsParents: a block's cache key covers everything
// before it. C shares its first block with A and its second block's
// tokens with B, but after a different first block, so only the first
// may be reused.
func TestPrefixCacheChainsParents(t *testing.T) {
	cfg := smallConfig()
	e, f := newTestEngine(t, cfg, 128)
	x, y, z, w := []int32{1, 2, 3, 4}, []int32{5, 6, 7, 8}, []int32{9, 10, 11, 12}, []int32{13, 14, 15, 16}
	a := slices.Concat(x, y, []int32{20})
	b := slices.Concat(z, w, []int32{21})
	c := slices.Concat(x, w, []int32{22})
	for _, p := range [][]int32{a, b, c} {
		got, err := e.Generate(context.Background(), []Request{{PromptIDs: p, Params: SamplingParams{MaxTokens: 8}}})
		if err != nil {
			t.Fatal(err)
		}
		checkGreedy(t, f, p, 8, got[0])
		if slices.Equal(p, c) && got[0].CachedTokens != 4 {
			t.Errorf("C found %d cached tokens, want 4", got[0].CachedTokens)
		}
	}
}

func TestMaxModelLen(t *testing.T) {
	e, f := newTestEngine(t, smallConfig(), 128)
	p := testPrompts(1, 3)[0]
	p = append(p, make([]int32, 120-len(p))...)
	got, err := e.Generate(context.Background(), []Request{{PromptIDs: p, Params: SamplingParams{MaxTokens: 100, IgnoreEOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	want := f.Generate(p, 8, true)
	if c := got[0]; c.FinishReason != FinishLength || !slices.Equal(c.TokenIDs, want) {
		t.Errorf("got %v (%s), want %v (length)", c.TokenIDs, c.FinishReason, want)
	}
}

// stopCase finds, in the greedy output of a prompt, two printable ASCII
// tokens after the third output token to use as a stop string, and the
// expected outputs: tokens up to the one that completes the stop string's
// first appearance, and the text before it.
func stopCase(t *testing.T, f *FakeRunner, maxTokens int) (prompt []int32, stop string, wantToks []int32, wantText string) {
	t.Helper()
	tok := FakeTokenizer()
	for seed := uint64(0); seed < 200; seed++ {
		prompt = testPrompts(1, seed)[0]
		ref := f.Generate(prompt, maxTokens, true)
		for i := 3; i+1 < len(ref); i++ {
			if ref[i] < 0x20 || ref[i] > 0x7e || ref[i+1] < 0x20 || ref[i+1] > 0x7e {
				continue
			}
			stop = string([]byte{byte(ref[i]), byte(ref[i+1])})
			for k := range ref {
				text := tok.Decode(ref[:k+1], true)
				if j := strings.Index(text, stop); j >= 0 {
					return prompt, stop, ref[:k+1], text[:j]
				}
			}
		}
	}
	t.Fatal("no prompt with a printable pair in its output")
	return
}

func TestStopStrings(t *testing.T) {
	e, f := newTestEngine(t, smallConfig(), 128)
	prompt, stop, wantToks, wantText := stopCase(t, f, 40)
	params := SamplingParams{MaxTokens: 40, IgnoreEOS: true, Stop: []string{"\x00never", stop}}
	got, err := e.Generate(context.Background(), []Request{
		{PromptIDs: prompt, Params: params},
		{PromptIDs: prompt, Params: func() SamplingParams { p := params; p.IncludeStopStrInOutput = true; return p }()},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := got[0]
	if c.FinishReason != FinishStop || c.StopString != stop || c.Text != wantText || !slices.Equal(c.TokenIDs, wantToks) {
		t.Errorf("got %q %v (%s, %q), want %q %v (stop, %q)", c.Text, c.TokenIDs, c.FinishReason, c.StopString, wantText, wantToks, stop)
	}
	if c := got[1]; c.Text != wantText+stop || !slices.Equal(c.TokenIDs, wantToks) {
		t.Errorf("with the stop string included: %q %v, want %q", c.Text, c.TokenIDs, wantText+stop)
	}

	// Streaming holds back a possible stop string's start and ends with
	// the same text.
	ch, err := e.Submit(context.Background(), Request{PromptIDs: prompt, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	var text string
	var toks []int32
	var last Output
	for o := range ch {
		if strings.Contains(text+o.Text, stop) {
			t.Errorf("streamed text %q contains the stop string %q", text+o.Text, stop)
		}
		text += o.Text
		toks = append(toks, o.TokenIDs...)
		last = o
	}
	if text != wantText || !slices.Equal(toks, wantToks) || !last.Finished || last.FinishReason != FinishStop {
		t.Errorf("streamed %q %v, last %+v; want %q %v", text, toks, last, wantText, wantToks)
	}
}

func TestStopTokensAndEOS(t *testing.T) {
	e, f := newTestEngine(t, smallConfig(), 128)
	prompt := testPrompts(1, 11)[0]
	ref := f.Generate(prompt, 30, true)
	stopID := ref[5]
	first := slices.Index(ref, stopID)
	tok := FakeTokenizer()
	got, err := e.Generate(context.Background(), []Request{
		{PromptIDs: prompt, Params: SamplingParams{MaxTokens: 30, IgnoreEOS: true, StopTokenIDs: []int32{stopID}}},
		{PromptIDs: prompt, Params: SamplingParams{MaxTokens: 30, IgnoreEOS: true, StopTokenIDs: []int32{stopID}, MinTokens: first + 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The stop token ends the output and stays in the ids, not the text.
	if c := got[0]; c.FinishReason != FinishStop || !slices.Equal(c.TokenIDs, ref[:first+1]) || c.Text != tok.Decode(ref[:first], true) {
		t.Errorf("stop token %d: got %v %q (%s), want %v", stopID, c.TokenIDs, c.Text, c.FinishReason, ref[:first+1])
	}
	// With min_tokens past its first appearance, the stop token is masked
	// there, so the output differs from the greedy reference from then on.
	if c := got[1]; len(c.TokenIDs) <= first || c.TokenIDs[first] == stopID || !slices.Equal(c.TokenIDs[:first], ref[:first]) {
		t.Errorf("min_tokens %d: got %v, reference %v", first+1, c.TokenIDs, ref)
	}
}

// TestEOSFromTokenizer: the fake model's EOS (257) ends a generation and
// is not in the text.
func TestEOS(t *testing.T) {
	e, f := newTestEngine(t, smallConfig(), 512)
	for seed := uint64(0); seed < 300; seed++ {
		prompt := testPrompts(1, seed)[0]
		ref := f.Generate(prompt, 400, false)
		if ref[len(ref)-1] != FakeEOS {
			continue
		}
		got, err := e.Generate(context.Background(), []Request{{PromptIDs: prompt, Params: SamplingParams{MaxTokens: 400}}})
		if err != nil {
			t.Fatal(err)
		}
		c := got[0]
		if c.FinishReason != FinishStop || !slices.Equal(c.TokenIDs, ref) || c.Text != FakeTokenizer().Decode(ref[:len(ref)-1], true) {
			t.Errorf("got %v %q (%s), want %v", c.TokenIDs, c.Text, c.FinishReason, ref)
		}
		return
	}
	t.Fatal("no prompt reaches EOS")
}

// TestSeedIndependentOfBatch: a seeded request samples the same tokens
// alone and among others, and child i of n is the request seeded seed+i.
func TestSeedIndependentOfBatch(t *testing.T) {
	e, _ := newTestEngine(t, smallConfig(), 128)
	prompt := testPrompts(1, 5)[0]
	seeded := func(seed int64, n int) Request {
		return Request{PromptIDs: prompt, Params: SamplingParams{N: n, Temperature: 1.2, TopP: 0.95, Seed: &seed, MaxTokens: 20, IgnoreEOS: true}}
	}
	alone, err := e.Generate(context.Background(), []Request{seeded(42, 1)})
	if err != nil {
		t.Fatal(err)
	}
	reqs := []Request{seeded(42, 1)}
	for i, p := range testPrompts(7, 9) {
		reqs = append(reqs, Request{PromptIDs: p, Params: SamplingParams{Temperature: 1, MaxTokens: 5 + i*3}})
	}
	reqs[0], reqs[3] = reqs[3], reqs[0]
	batch, err := e.Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(alone[0].TokenIDs, batch[3].TokenIDs) {
		t.Errorf("alone %v, in a batch %v", alone[0].TokenIDs, batch[3].TokenIDs)
	}
	kids, err := e.Generate(context.Background(), []Request{seeded(41, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 3 || kids[1].Index != 1 || !slices.Equal(kids[1].TokenIDs, alone[0].TokenIDs) || slices.Equal(kids[0].TokenIDs, kids[1].TokenIDs) {
		t.Errorf("n=3 seed 41: %v; seed 42 alone: %v", kids, alone[0].TokenIDs)
	}
}

func TestLogprobsFromEngine(t *testing.T) {
	e, f := newTestEngine(t, smallConfig(), 128)
	prompt := testPrompts(1, 2)[0]
	got, err := e.Generate(context.Background(), []Request{{PromptIDs: prompt, Params: SamplingParams{MaxTokens: 6, Logprobs: 3, IgnoreEOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	c := got[0]
	if len(c.Logprobs) != 6 {
		t.Fatalf("%d logprobs for 6 tokens", len(c.Logprobs))
	}
	history := slices.Clone(prompt)
	for i, lp := range c.Logprobs {
		x := f.Logits(history)
		if lp.Sampled.ID != c.TokenIDs[i] || lp.Sampled.Rank != 1 || len(lp.Top) != 3 || lp.Top[0].ID != c.TokenIDs[i] ||
			math.Abs(float64(lp.Sampled.Logprob)-(float64(x[c.TokenIDs[i]])-logSumExp(x))) > 1e-5 {
			t.Errorf("token %d: %+v", i, lp)
		}
		if lp.Sampled.Token != FakeTokenizer().Decode(c.TokenIDs[i:i+1], false) {
			t.Errorf("token %d decodes to %q", i, lp.Sampled.Token)
		}
		history = append(history, c.TokenIDs[i])
	}
}

func TestPromptForms(t *testing.T) {
	e, f := newTestEngine(t, smallConfig(), 128)
	tok := FakeTokenizer()
	msgs := []tokenizer.Message{{Role: "user", Content: "hi"}}
	chat, err := tok.ApplyChatTemplate(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Generate(context.Background(), []Request{
		{Prompt: "hello", Params: SamplingParams{MaxTokens: 4, IgnoreEOS: true}},
		{Messages: msgs, Params: SamplingParams{MaxTokens: 4, IgnoreEOS: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantPrompts := [][]int32{tok.Encode("hello", true), tok.Encode(chat, false)}
	if wantPrompts[0][0] != FakeBOS || wantPrompts[1][0] != FakeBOS {
		t.Fatalf("prompts %v lack BOS", wantPrompts)
	}
	for i, c := range got {
		checkGreedy(t, f, wantPrompts[i], 4, Completion{Request: i, TokenIDs: c.TokenIDs, FinishReason: c.FinishReason,
			PromptTokens: c.PromptTokens, CompletionTokens: c.CompletionTokens})
	}
}

// TestBadRequests: a request that cannot be served gets its own error;
// the others are served.
func TestBadRequests(t *testing.T) {
	cfg := smallConfig()
	cfg.MaxModelLen = 64
	e, f := newTestEngine(t, cfg, 128)
	good := testPrompts(1, 1)[0][:20]
	reqs := []Request{
		{PromptIDs: good, Params: SamplingParams{MaxTokens: 3}},
		{Prompt: ""},
		{PromptIDs: make([]int32, 65)},
		{PromptIDs: []int32{1, 300}},
		{PromptIDs: good, Params: SamplingParams{TopP: 2}},
		{Prompt: "x", PromptIDs: good},
		{PromptIDs: []int32{}},
		{PromptIDs: good, Params: SamplingParams{Logprobs: 21}},
		{PromptIDs: good, Params: SamplingParams{StopTokenIDs: []int32{258}}},
	}
	got, err := e.Generate(context.Background(), reqs)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"",
		"request 1: infer: invalid prompt: the prompt is empty",
		"request 2: infer: prompt too long: 65 tokens, the max model length is 64",
		"request 3: infer: invalid prompt: token 300 at index 1 is outside the vocabulary of 258",
		"request 4: infer: invalid sampling params: top_p must be in (0, 1], got 2",
		"request 5: infer: invalid prompt: give one of Prompt, PromptIDs and Messages",
		"request 6: infer: invalid prompt: the prompt is empty",
		"request 7: infer: invalid sampling params: logprobs (21) cannot be larger than the engine's MaxLogprobs (20)",
		"request 8: infer: invalid sampling params: stop_token_ids[0] (258) is outside the vocabulary of 258",
	}
	if msg := err.Error(); msg != strings.Join(want[1:], "\n") {
		t.Errorf("error:\n%s\nwant:\n%s", msg, strings.Join(want[1:], "\n"))
	}
	if len(got) != len(reqs) {
		t.Fatalf("%d completions for %d requests", len(got), len(reqs))
	}
	checkGreedy(t, f, good, 3, got[0])
	for i, c := range got[1:] {
		if c.Err == nil || c.Request != i+1 || c.FinishReason != "" {
			t.Errorf("request %d: %+v", i+1, c)
		}
	}
	if !errors.Is(got[2].Err, ErrPromptTooLong) || !errors.Is(got[1].Err, ErrInvalidPrompt) || !errors.Is(got[4].Err, ErrInvalidParams) {
		t.Errorf("sentinels: %v, %v, %v", got[2].Err, got[1].Err, got[4].Err)
	}
	if _, err := e.Submit(context.Background(), reqs[2]); !errors.Is(err, ErrPromptTooLong) {
		t.Errorf("Submit of a long prompt: %v", err)
	}
}

// TestForwardFailure: when the model fails, the requests of that step end
// with the error, their blocks are freed, and the engine serves the next.
func TestForwardFailure(t *testing.T) {
	e, f := newTestEngine(t, smallConfig(), 128)
	boom := errors.New("boom")
	f.FailForward = func(call int) error {
		if call == 2 {
			return boom
		}
		return nil
	}
	prompts := testPrompts(3, 4)
	var reqs []Request
	for _, p := range prompts {
		reqs = append(reqs, Request{PromptIDs: p, Params: SamplingParams{MaxTokens: 10, IgnoreEOS: true}})
	}
	got, err := e.Generate(context.Background(), reqs)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	for _, c := range got {
		if !errors.Is(c.Err, boom) || c.FinishReason != FinishAbort || len(c.TokenIDs) > 2 {
			t.Errorf("%+v", c)
		}
	}
	got, err = e.Generate(context.Background(), reqs[:1])
	if err != nil {
		t.Fatal(err)
	}
	checkGreedy(t, f, prompts[0], 10, got[0])
}

// gate makes the fake model's Forward number n wait for release, after
// closing reached, so that a test can act while a generation is under way.
func gate(f *FakeRunner, n int) (reached, release chan struct{}) {
	reached, release = make(chan struct{}), make(chan struct{})
	f.FailForward = func(call int) error {
		if call == n {
			close(reached)
			<-release
		}
		return nil
	}
	return reached, release
}

func TestCancel(t *testing.T) {
	e, f := newTestEngine(t, smallConfig(), 512)
	reached, release := gate(f, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	var got []Completion
	go func() {
		var err error
		got, err = e.Generate(ctx, []Request{{PromptIDs: []int32{1, 2, 3}, Params: SamplingParams{MaxTokens: 400, IgnoreEOS: true}}})
		done <- err
	}()
	<-reached
	cancel()
	close(release)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Generate: %v", err)
	}
	if len(got) != 1 || got[0].FinishReason != FinishAbort || !errors.Is(got[0].Err, context.Canceled) || len(got[0].TokenIDs) < 3 {
		t.Errorf("%+v", got)
	}

	// A streaming request ends its channel when its context ends.
	reached, release = gate(f, f.Calls()+2)
	ctx, cancel = context.WithCancel(context.Background())
	ch, err := e.Submit(ctx, Request{PromptIDs: []int32{1, 2, 3}, Params: SamplingParams{MaxTokens: 400, IgnoreEOS: true}})
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	cancel()
	close(release)
	// It closes, at most after an abort: it never runs on to a normal finish.
	for o := range ch {
		if o.Finished && (o.FinishReason != FinishAbort || !errors.Is(o.Err, context.Canceled)) {
			t.Errorf("a cancelled stream finished: %+v", o)
		}
	}
}

func TestClose(t *testing.T) {
	f := NewFakeRunner(512)
	reached, release := gate(f, 3)
	e, err := New(f, nil, smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []Completion)
	go func() {
		got, _ := e.Generate(context.Background(), []Request{{PromptIDs: []int32{1, 2, 3}, Params: SamplingParams{MaxTokens: 400, IgnoreEOS: true}}})
		done <- got
	}()
	<-reached
	closed := make(chan error)
	go func() { closed <- e.Close() }()
	for !e.isClosing() { // Close must have begun before the step is let go
		runtime.Gosched()
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := <-done; len(got) != 1 || !errors.Is(got[0].Err, ErrClosed) || got[0].FinishReason != FinishAbort {
		t.Errorf("%+v", got)
	}
	if _, err := e.Generate(context.Background(), []Request{{PromptIDs: []int32{1}}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Generate after Close: %v", err)
	}
	if _, err := e.Submit(context.Background(), Request{PromptIDs: []int32{1}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestConcurrentCallers: many goroutines' requests share one engine and
// each gets its own reference output.
func TestConcurrentCallers(t *testing.T) {
	cfg := smallConfig()
	cfg.NumBlocks = 60
	e, f := newTestEngine(t, cfg, 128)
	prompts := testPrompts(24, 21)
	errs := make(chan error, len(prompts))
	for i, p := range prompts {
		go func() {
			var err error
			if i%2 == 0 {
				var got []Completion
				got, err = e.Generate(context.Background(), []Request{{PromptIDs: p, Params: SamplingParams{MaxTokens: 12}}})
				if err == nil && !slices.Equal(got[0].TokenIDs, f.Generate(p, 12, false)) {
					err = fmt.Errorf("prompt %d: %v", i, got[0].TokenIDs)
				}
			} else {
				var ch <-chan Output
				ch, err = e.Submit(context.Background(), Request{PromptIDs: p, Params: SamplingParams{MaxTokens: 12}})
				var toks []int32
				if err == nil {
					for o := range ch {
						toks = append(toks, o.TokenIDs...)
					}
					if !slices.Equal(toks, f.Generate(p, 12, false)) {
						err = fmt.Errorf("prompt %d streamed %v", i, toks)
					}
				}
			}
			errs <- err
		}()
	}
	for range prompts {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		edit func(c *Config)
		want string
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.BlockSize = 0 }, "BlockSize must be positive, got 0"},
		{func(c *Config) { c.NumBlocks = -1 }, "NumBlocks must be non-negative, got -1"},
		{func(c *Config) { c.CacheBytes = 0 }, "CacheBytes must be positive when NumBlocks is 0, got 0"},
		{func(c *Config) { c.MaxNumSeqs = 0 }, "MaxNumSeqs must be positive, got 0"},
		{func(c *Config) { c.MaxNumBatchedTokens = 100 }, "MaxNumBatchedTokens (100) cannot be smaller than MaxNumSeqs (256)"},
		{func(c *Config) { c.EnableChunkedPrefill = false; c.MaxModelLen = 4096 },
			"MaxNumBatchedTokens (2048) cannot be smaller than MaxModelLen (4096) when EnableChunkedPrefill is false"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.edit(&cfg)
		err := cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || err.Error() != "infer: invalid config: "+c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	// Cross-checks against the model happen in New.
	cfg := DefaultConfig()
	cfg.EnableChunkedPrefill = false
	if _, err := New(NewFakeRunner(4096), nil, cfg); err == nil || !strings.Contains(err.Error(), "MaxNumBatchedTokens (2048) cannot be smaller than the max model length (4096)") {
		t.Errorf("New: %v", err)
	}
	cfg = DefaultConfig()
	cfg.MaxModelLen = 200
	if _, err := New(NewFakeRunner(100), nil, cfg); err == nil || !strings.Contains(err.Error(), "MaxModelLen (200) cannot be larger than the model's max positions (100)") {
		t.Errorf("New: %v", err)
	}
	// From memory: 1 MiB of 1 KiB blocks (16 tokens × 64 bytes), capped at
	// what 256 sequences of 100 tokens can use (7 blocks each).
	cfg = DefaultConfig()
	cfg.CacheBytes = 1 << 20
	e, err := New(NewFakeRunner(100), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Config().NumBlocks; got != 1024 {
		t.Errorf("NumBlocks %d, want 1024", got)
	}
	cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 8, 64
	e2, err := New(NewFakeRunner(100), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if got := e2.Config().NumBlocks; got != 56 {
		t.Errorf("NumBlocks %d, want 56", got)
	}
}
