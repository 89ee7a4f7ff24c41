package tune

import (
	"context"
	"sync/atomic"
	"testing"
)

// BenchmarkASHA64 is a local take on tune/asha-64: 64 trials of the noisy
// quadratic, up to 100 iterations each, 8 at once, under ASHA and FIFO.
// It reports the iterations run and the experiment's time per report
// (the trial function does almost nothing, so that is the loop's
// overhead: scheduler, state bookkeeping, saves of experiment.json).
func BenchmarkASHA64(b *testing.B) {
	for _, tc := range []struct {
		name  string
		sched func() Scheduler
	}{
		{"fifo", FIFO},
		{"asha", func() Scheduler { a := NewASHA(); a.MaxT = 100; return a }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var reports atomic.Int64
			for b.Loop() {
				_, err := Run(context.Background(), Config{Space: quadSpace, Metric: "loss", Mode: Min, NumSamples: 64,
					MaxConcurrent: 8, Seed: 1, Dir: b.TempDir(), Scheduler: tc.sched()}, quad(100, &reports))
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(reports.Load())/float64(b.N), "iterations/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(reports.Load()), "ns/report")
		})
	}
}
