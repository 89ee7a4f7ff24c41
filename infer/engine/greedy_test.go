package engine

import (
	"context"
	"slices"
	"testing"
)

// hostRunner hides a runner's ForwardArgmax, so the engine samples every
// step on the host from downloaded logits.
type hostRunner struct{ Runner }

// countingRunner counts the steps a GreedyRunner ran either way.
type countingRunner struct {
	GreedyRunner
	forward, argmax int
}

func (r *countingRunner) Forward(c KVCache, b *Batch) ([]float32, error) {
	r.forward++
	return r.GreedyRunner.Forward(c, b)
}

func (r *countingRunner) ForwardArgmax(c KVCache, b *Batch) ([]int32, error) {
	r.argmax++
	return r.GreedyRunner.ForwardArgmax(c, b)
}

// TestGreedyFastPath checks that greedy steps sampled on the device
// (ForwardArgmax) give the host sampler's tokens on every fixture, that a
// step with a request needing the logits (logprobs, penalties, min_tokens)
// falls back to the host, and that both match transformers.
func TestGreedyFastPath(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			cases := readGreedy(t, name)
			m := loadFixture(t, name)
			gen := func(r Runner, reqs []Request) []Completion {
				return generateSmall(t, r, reqs, 128)
			}
			var greedy, mixed []Request
			for i, c := range cases {
				p := SamplingParams{MaxTokens: len(c.Tokens), IgnoreEOS: true}
				greedy = append(greedy, Request{PromptIDs: c.Prompt, Params: p})
				switch i % 3 {
				case 0:
					p.Logprobs = 1
				case 1:
					p.MinTokens = 4
				}
				mixed = append(mixed, Request{PromptIDs: c.Prompt, Params: p})
			}
			host := gen(hostRunner{FromModel(m)}, greedy)
			cr := &countingRunner{GreedyRunner: FromModel(m).(GreedyRunner)}
			dev := gen(cr, greedy)
			if cr.forward != 0 || cr.argmax == 0 {
				t.Errorf("all-greedy batch: %d host-sampled steps, %d device-sampled, want only device-sampled", cr.forward, cr.argmax)
			}
			for i := range cases {
				if !slices.Equal(dev[i].TokenIDs, host[i].TokenIDs) || !slices.Equal(dev[i].TokenIDs, cases[i].Tokens) {
					t.Errorf("prompt %d: device-sampled %v, host-sampled %v, transformers %v", i, dev[i].TokenIDs, host[i].TokenIDs, cases[i].Tokens)
				}
			}
			cr = &countingRunner{GreedyRunner: FromModel(m).(GreedyRunner)}
			mix := gen(cr, mixed)
			if cr.forward == 0 {
				t.Errorf("mixed batch: no host-sampled step, though requests want logprobs")
			}
			for i := range cases {
				if !slices.Equal(mix[i].TokenIDs, cases[i].Tokens) {
					t.Errorf("prompt %d in a mixed batch: got %v, want %v", i, mix[i].TokenIDs, cases[i].Tokens)
				}
				if (i%3 == 0) != (len(mix[i].Logprobs) > 0) {
					t.Errorf("prompt %d in a mixed batch: %d logprobs", i, len(mix[i].Logprobs))
				}
			}
		})
	}
}

// generateSmall runs reqs to completion on a fresh engine over r with
// small blocks (4 tokens), numBlocks of them, and batches of at most 16
// sequences and 64 tokens, so that fixture runs batch, chunk and share.
func generateSmall(t *testing.T, r Runner, reqs []Request, numBlocks int) []Completion {
	t.Helper()
	cfg := DefaultConfig()
	cfg.BlockSize, cfg.NumBlocks, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, numBlocks, 16, 64
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
	return got
}
