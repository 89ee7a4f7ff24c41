package serve_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/serve"
)

// TestEcho: echo puts the prompt before the completion, streamed or not;
// with logprobs it is a 400 naming echo (prompt logprobs are not computed).
func TestEcho(t *testing.T) {
	v := newEnv(t, serve.DefaultConfig(), nil)
	const prompt = "The quick brown fox"
	want := v.want(t, engine.Request{PromptIDs: v.l.Tokenizer.Encode(prompt, true), Params: engine.SamplingParams{MaxTokens: 10}})
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model": "llama3", "prompt": %q, "echo": true, "temperature": 0, "max_tokens": 10, "stream": %v}`, prompt, stream)
		got := complete(t, v.url+"/v1/completions", body, stream)
		if len(got) != 1 || got[0].Text != prompt+want[0].Text {
			t.Errorf("stream %v: %+v, want the text %q", stream, got, prompt+want[0].Text)
		}
	}
	code, b := post(t, v.url+"/v1/completions", `{"model": "llama3", "prompt": "hi", "echo": true, "logprobs": 2, "max_tokens": 2}`)
	if code != 400 || !strings.Contains(string(b), "echo") {
		t.Errorf("echo with logprobs: %d %s, want 400 naming echo", code, b)
	}
}

// TestMinP: min_p 1 keeps only the likeliest token, so a hot seeded
// sample equals the greedy output, while the same sample without min_p
// does not; each equals the engine's with the same parameters.
func TestMinP(t *testing.T) {
	v := newEnv(t, serve.DefaultConfig(), nil)
	const prompt = "The sea is"
	ids := v.l.Tokenizer.Encode(prompt, true)
	greedy := v.want(t, engine.Request{PromptIDs: ids, Params: engine.SamplingParams{MaxTokens: 16}})[0].TokenIDs
	run := func(minP string) []int32 {
		body := fmt.Sprintf(`{"model": "llama3", "prompt": %q, "temperature": 2, "seed": 3, "max_tokens": 16, "return_token_ids": true%s}`, prompt, minP)
		got := complete(t, v.url+"/v1/completions", body, false)
		if len(got) != 1 {
			t.Fatalf("min_p%s: %d choices", minP, len(got))
		}
		return got[0].TokenIDs
	}
	hot, cut := run(""), run(`, "min_p": 1`)
	if !slices.Equal(cut, greedy) {
		t.Errorf("min_p 1 at temperature 2: %v, want the greedy %v", cut, greedy)
	}
	if slices.Equal(hot, greedy) {
		t.Errorf("temperature 2 without min_p gives the greedy output %v: the test shows nothing", hot)
	}
	p := engine.SamplingParams{Temperature: 2, Seed: new(int64(3)), MaxTokens: 16, MinP: 1}
	if w := v.want(t, engine.Request{PromptIDs: ids, Params: p})[0].TokenIDs; !slices.Equal(cut, w) {
		t.Errorf("min_p 1: server %v, engine %v", cut, w)
	}
}
