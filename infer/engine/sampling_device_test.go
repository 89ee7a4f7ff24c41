package engine

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
)

// randomParams draws sampling parameters of every kind the device path
// takes: greedy with edits, temperature, top_k, top_p, min_p, penalties
// and min_tokens, alone and mixed.
func randomParams(r *rand.Rand, vocab int) SamplingParams {
	p := SamplingParams{Temperature: 0.3 + 1.4*r.Float64()}
	switch r.IntN(7) {
	case 0:
		p.Temperature = 0
		p.RepetitionPenalty = 1.5
	case 1:
		p.TopK = 1 + r.IntN(vocab/4)
	case 2:
		p.TopP = 0.1 + 0.85*r.Float64()
	case 3:
		p.MinP = 0.3 * r.Float64()
	case 4:
		p.TopK, p.TopP, p.MinP = 1+r.IntN(vocab), 0.5+0.5*r.Float64(), 0.05*r.Float64()
	case 5:
		p.TopK = vocab + 1
	}
	if r.IntN(2) == 0 {
		p.RepetitionPenalty, p.FrequencyPenalty, p.PresencePenalty = 0.6+r.Float64(), 2*r.Float64()-1, 2*r.Float64()-1
	}
	return p
}

// TestAddRowMatchesSample draws tokens for random logits, parameters and
// sequences twice, from generators with the same seed: with the host
// sampler, and with addRow's packed row through the cpu backend's
// gpu.Ops.Sample. They must agree token for token, over several steps of
// the same sequence (the penalty state grows in between).
func TestAddRowMatchesSample(t *testing.T) {
	dev, err := cpu.New(cpu.Config{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	const vocab = 301
	r := rand.New(rand.NewPCG(5, 6))
	eos := []int32{3, 7}
	host, devSm := newSampler(vocab, eos), newSampler(vocab, eos)
	logits, err := dev.Alloc(gpu.F32, 1, vocab)
	if err != nil {
		t.Fatal(err)
	}
	defer logits.Free()
	rows, err := dev.Alloc(gpu.I32, 1, gpu.SampleRowWords)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Free()
	dst, err := dev.Alloc(gpu.I32, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Free()
	var pack gpu.SamplePack
	x := make([]float32, vocab)
	for trial := range 300 {
		p := randomParams(r, vocab).withDefaults()
		minTok := r.IntN(4)
		prompt := make([]int32, 1+r.IntN(12))
		for i := range prompt {
			prompt[i] = int32(r.IntN(vocab))
		}
		seq := seqWith(prompt, nil, minTok, 11, 3)
		seq.stop.eos = eos
		seed := r.Uint64()
		stH, stD := newSamplerState(&p, seed), newSamplerState(&p, seed)
		for step := range 5 {
			for i := range x {
				x[i] = float32(math.Round(r.NormFloat64()*8) / 4) // ties on a coarse grid
			}
			want, _ := host.sample(x, seq, stH)

			pack.Reset()
			devSm.addRow(&pack, seq, stD)
			if err := gpu.UploadF32(logits, x); err != nil {
				t.Fatal(err)
			}
			if err := dev.Upload(rows, pack.Rows); err != nil {
				t.Fatal(err)
			}
			b := gpu.SampleBatch{Rows: rows}
			if pack.NumEdits() > 0 {
				if b.Edits, err = dev.Alloc(gpu.I32, pack.NumEdits(), 3); err != nil {
					t.Fatal(err)
				}
				if err := dev.Upload(b.Edits, pack.Edits); err != nil {
					t.Fatal(err)
				}
			}
			if err := dev.Ops().Sample(dst, logits, b); err != nil {
				t.Fatal(err)
			}
			b.Edits.Free()
			got, err := gpu.ToHost[int32](dst)
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != want {
				t.Fatalf("trial %d step %d (%+v, min_tokens %d, %d outputs): device path %d, host %d", trial, step, p, minTok, seq.numOutput(), got[0], want)
			}
			seq.tokens = append(seq.tokens, want)
		}
	}
}

// samplingCounter counts the steps a SamplingRunner ran each way.
type samplingCounter struct {
	SamplingRunner
	forward, sampled int
}

func (r *samplingCounter) Forward(c KVCache, b *Batch) ([]float32, error) {
	r.forward++
	return r.SamplingRunner.Forward(c, b)
}

func (r *samplingCounter) ForwardSample(c KVCache, b *Batch, s *gpu.SamplePack) ([]int32, error) {
	r.sampled++
	return r.SamplingRunner.ForwardSample(c, b, s)
}

// TestDeviceSampling generates seeded completions of every sampling kind
// through the engine twice, on the cpu backend: sampled on the device
// (ForwardSample) and on the host from downloaded logits; the tokens must
// be the same. A batch with a logprobs request falls back to the host
// while that request runs.
func TestDeviceSampling(t *testing.T) {
	for _, name := range []string{"llama3", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			cases := readGreedy(t, name)
			m := loadFixture(t, name)
			gen := func(r Runner, reqs []Request) []Completion {
				return generateSmall(t, r, reqs, 256)
			}
			vocab := m.Config().Vocab
			r := rand.New(rand.NewPCG(9, 10))
			var reqs, withLogprobs []Request
			for i := range 12 {
				c := cases[i%len(cases)]
				p := randomParams(r, vocab)
				p.Seed = new(int64)
				*p.Seed = int64(i)
				p.MaxTokens, p.MinTokens = 10, r.IntN(4)
				if i%4 == 0 {
					p.N = 2
				}
				if i%5 == 0 {
					p.StopTokenIDs = []int32{int32(r.IntN(vocab))}
				}
				reqs = append(reqs, Request{PromptIDs: c.Prompt, Params: p})
				if i == 3 {
					p.Logprobs = 2
				}
				withLogprobs = append(withLogprobs, Request{PromptIDs: c.Prompt, Params: p})
			}
			for _, tc := range []struct {
				name     string
				reqs     []Request
				fallback bool
			}{{"all", reqs, false}, {"with logprobs", withLogprobs, true}} {
				host := gen(hostRunner{FromModel(m)}, tc.reqs)
				sc := &samplingCounter{SamplingRunner: FromModel(m).(SamplingRunner)}
				dev := gen(sc, tc.reqs)
				if sc.sampled == 0 || (sc.forward > 0) != tc.fallback {
					t.Errorf("%s: %d device-sampled steps, %d host-sampled; want host steps: %v", tc.name, sc.sampled, sc.forward, tc.fallback)
				}
				if len(dev) != len(host) {
					t.Fatalf("%s: %d completions device-sampled, %d host-sampled", tc.name, len(dev), len(host))
				}
				for _, cs := range [][]Completion{host, dev} {
					slices.SortFunc(cs, func(a, b Completion) int { return (a.Request-b.Request)*16 + a.Index - b.Index })
				}
				for i, h := range host {
					if d := dev[i]; !slices.Equal(h.TokenIDs, d.TokenIDs) || d.Request != h.Request || d.Index != h.Index {
						t.Errorf("%s: request %d (%+v) completion %d: device-sampled %v, host-sampled %v", tc.name, h.Request, tc.reqs[h.Request].Params, h.Index, d.TokenIDs, h.TokenIDs)
					}
				}
			}
		})
	}
}
