package engine

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/infer/model"
)

// tinyCPUWorkload is infer/tiny-cpu of WORKLOADS.md: 64 seeded random
// prompts of 32 to 128 tokens, 64 greedy output tokens each (EOS ignored).
func tinyCPUWorkload(vocab int) []Request {
	rng := rand.New(rand.NewPCG(1, 0x7e57))
	reqs := make([]Request, 64)
	for i := range reqs {
		ids := make([]int32, 32+rng.IntN(97))
		for j := range ids {
			ids[j] = int32(rng.IntN(vocab))
		}
		reqs[i] = Request{PromptIDs: ids, Params: SamplingParams{MaxTokens: 64, IgnoreEOS: true}}
	}
	return reqs
}

func benchGenerate(b *testing.B, r Runner, cfg Config) {
	e, err := New(r, nil, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	reqs := tinyCPUWorkload(r.Spec().Vocab)
	b.ReportAllocs()
	out := 0
	for b.Loop() {
		comps, err := e.Generate(context.Background(), reqs)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range comps {
			out += c.CompletionTokens
		}
	}
	b.ReportMetric(float64(out)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(float64(out)/float64(b.N), "tokens/op")
}

// BenchmarkTinyCPU runs infer/tiny-cpu through the engine on a real model
// on two cpu threads: $SLUICE_BENCH_MODEL, or the qwen2 fixture. Prefix
// caching is off so that every iteration computes the same work.
//
//	SLUICE_BENCH_MODEL=/path/to/tiny go test ./infer -run - -bench TinyCPU
func BenchmarkTinyCPU(b *testing.B) {
	dir := os.Getenv("SLUICE_BENCH_MODEL")
	if dir == "" {
		dir = fixtureDir("qwen2")
	}
	dev, err := cpu.New(cpu.Config{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	m, err := model.Load(dir, dev, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	cfg := DefaultConfig()
	cfg.EnablePrefixCaching = false
	benchGenerate(b, FromModel(m), cfg)
}

// BenchmarkEngineFake measures the engine's own cost per token
// (scheduling, sampling, detokenizing, bookkeeping) with a model that
// costs almost nothing.
func BenchmarkEngineFake(b *testing.B) {
	cfg := DefaultConfig()
	cfg.EnablePrefixCaching = false
	benchGenerate(b, NewFakeRunner(512), cfg)
}
