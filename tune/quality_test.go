package tune

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// TPE finds a better best value than random search in the same budget on
// the noisy quadratic, for most seeds.
func TestTPEBeatsRandom(t *testing.T) {
	const seeds, budget = 20, 30
	objective := func(ctx context.Context, tr *Trial) error {
		r := rand.New(rand.NewPCG(uint64(tr.Config["x"].(float64)*1e9), 1))
		return tr.Report(map[string]float64{"loss": quadLoss(tr.Config, 1, 0.05*r.NormFloat64()) - 1})
	}
	best := func(s Searcher, seed uint64) float64 {
		exp, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: budget,
			MaxConcurrent: 1, Seed: seed, Dir: t.TempDir(), Searcher: s}, objective)
		if err != nil {
			t.Fatal(err)
		}
		return *exp.Best().Best
	}
	wins := 0
	for seed := range uint64(seeds) {
		tp, rnd := best(TPE(TPEOptions{}), seed), best(Random(), seed)
		if tp < rnd {
			wins++
		}
		t.Logf("seed %d: tpe %.4f random %.4f", seed, tp, rnd)
	}
	if wins < seeds*3/4 {
		t.Errorf("TPE beat random search on %d of %d seeds, want at least %d", wins, seeds, seeds*3/4)
	}
}

// ASHA reaches FIFO's best value with fewer iterations in all.
func TestASHASavesIterations(t *testing.T) {
	for seed := range uint64(5) {
		run := func(s Scheduler) (best float64, iters int64) {
			var calls atomic.Int64
			exp, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 16,
				MaxConcurrent: 2, Seed: seed, Dir: t.TempDir(), Scheduler: s}, quad(32, &calls))
			if err != nil {
				t.Fatal(err)
			}
			return *exp.Best().Best, calls.Load()
		}
		fb, fi := run(FIFO())
		a := NewASHA()
		a.MaxT = 32
		ab, ai := run(a)
		t.Logf("seed %d: fifo best %.4f in %d iterations, asha %.4f in %d", seed, fb, fi, ab, ai)
		if ab != fb || ai >= fi {
			t.Errorf("seed %d: ASHA best %g in %d iterations, FIFO %g in %d", seed, ab, ai, fb, fi)
		}
	}
}
