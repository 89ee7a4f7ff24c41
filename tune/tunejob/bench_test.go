package tunejob

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sluicehq/sluice/tune"
)

// BenchmarkASHA64Cluster is tune/asha-64 on a loopback cluster: a
// coordinator and two workers of 4 CPUs in this process, 64 trials of the
// synthetic objective (quadProgram, a process per trial), up to 100
// iterations each, 8 at once (a CPU each), each trial a plan job; under
// FIFO and ASHA. It reports trials/s, the iterations run and the time
// the experiment loop took to answer a report (ns/report: scheduler,
// bookkeeping, saves of experiment.json). The -store cases keep the
// experiment's record in the coordinator's state too (Store), as `sluice
// tune --coordinators` does.
func BenchmarkASHA64Cluster(b *testing.B) {
	os.Setenv("TUNEJOB_QUAD", "1")
	defer os.Unsetenv("TUNEJOB_QUAD")
	cl := cluster(b, 2, 4)
	for _, tc := range []struct {
		name  string
		sched func() tune.Scheduler
		store bool
	}{
		{"fifo", tune.FIFO, false},
		{"asha", asha100, false},
		{"fifo-store", tune.FIFO, true},
		{"asha-store", asha100, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			iters, trials := 0, 0
			var wall time.Duration
			var stats tune.ClusterStats
			n := 0
			for b.Loop() {
				n++
				var store tune.Store
				if tc.store {
					store = Store{API: cl, Name: fmt.Sprintf("%s-%d-%d", tc.name, time.Now().UnixNano(), n)}
				}
				c := tune.Cluster{Jobs: Client{API: cl}, Command: []string{os.Args[0]}, Base: tune.Values{"steps": int64(100)},
					Poll: 20 * time.Millisecond, Stats: &stats}
				start := time.Now()
				exp, err := tune.Run(context.Background(), tune.Config{Space: quadSpace, Metric: "loss", Mode: tune.Min, NumSamples: 64,
					MaxConcurrent: 8, Seed: 1, Dir: b.TempDir(), Scheduler: tc.sched(), Store: store}, c.Func())
				if err != nil {
					b.Fatal(err)
				}
				wall += time.Since(start)
				for _, t := range exp.Trials {
					if t.Status == tune.Failed {
						b.Fatalf("%s: %s", t.ID, t.Error)
					}
					iters += t.Iterations
					trials++
				}
			}
			b.ReportMetric(float64(trials)/wall.Seconds(), "trials/s")
			b.ReportMetric(float64(iters)/float64(b.N), "iterations/op")
			b.ReportMetric(float64(stats.ReportTime.Load())/float64(stats.Reports.Load()), "ns/report")
		})
	}
}

func asha100() tune.Scheduler { a := tune.NewASHA(); a.MaxT = 100; return a }
