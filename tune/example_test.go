package tune_test

import (
	"context"
	"fmt"
	"math"
	"os"

	"github.com/sluicehq/sluice/tune"
)

// A search over a Go function that reports a loss per iteration, with
// ASHA stopping the poor trials early.
func Example() {
	dir, _ := os.MkdirTemp("", "tune-example-")
	defer os.RemoveAll(dir)
	asha := tune.NewASHA()
	asha.MaxT = 20
	exp, err := tune.Run(context.Background(), tune.Config{
		Space:         tune.Space{"lr": tune.LogUniform{Lo: 1e-4, Hi: 1}, "layers": tune.Choice{Values: []any{2, 4}}},
		Metric:        "loss",
		Mode:          tune.Min,
		NumSamples:    12,
		Searcher:      tune.TPE(tune.TPEOptions{}),
		Scheduler:     asha,
		Seed:          1,
		MaxConcurrent: 1, // one at a time: the same output on every machine
		Dir:           dir,
	}, func(ctx context.Context, t *tune.Trial) error {
		lr := t.Config["lr"].(float64)
		for i := t.Iteration() + 1; ; i++ {
			loss := math.Pow(math.Log10(lr)+2, 2) + 1/float64(i)
			if err := t.Report(map[string]float64{"loss": loss}); err != nil {
				return err // tune.ErrStopped: the scheduler is done with this trial
			}
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := exp.Summary()
	fmt.Printf("%d trials, %d stopped early; best lr within 2x of 1e-2: %v\n",
		s.Trials, s.StoppedEarly, math.Abs(math.Log10(s.Best.Config["lr"].(float64))+2) < math.Log10(2))
	// Output: 12 trials, 10 stopped early; best lr within 2x of 1e-2: true
}
