package tune

import (
	"fmt"
	"math"
)

// Median is Ray Tune's MedianStoppingRule with hard stops, over training
// iterations: past GracePeriod, a trial is stopped when its best reward so
// far is below the median, over the other trials that reached its
// iteration (at least MinSamples of them), of their mean reward from the
// grace period up to that iteration.
type Median struct {
	// GracePeriod is the first iteration at which a trial may be stopped
	// (Ray's default is 60 seconds of time_total_s; here iterations, 1).
	GracePeriod int
	// MinSamples is how many other trials must have reached the iteration
	// (Ray's min_samples_required: 3).
	MinSamples int

	results map[int][]medianResult
	stopped map[int]bool
}

type medianResult struct {
	iter   int
	reward float64
}

// NewMedian returns the median stopping rule with Ray's defaults (grace
// period 1 iteration).
func NewMedian() *Median { return &Median{GracePeriod: 1, MinSamples: 3} }

// Init validates the options.
func (m *Median) Init(Setup) error {
	if m.GracePeriod < 0 {
		return fmt.Errorf("%w: grace_period must not be negative, got %d", ErrInvalid, m.GracePeriod)
	}
	if m.MinSamples < 1 {
		return fmt.Errorf("%w: min_samples must be above 0, got %d", ErrInvalid, m.MinSamples)
	}
	m.results, m.stopped = map[int][]medianResult{}, map[int]bool{}
	return nil
}

// OnResult applies the rule.
func (m *Median) OnResult(r Result) Decision {
	if m.stopped[r.Trial] {
		return Decision{Action: Stop}
	}
	m.results[r.Trial] = append(m.results[r.Trial], medianResult{r.Iter, r.Reward})
	if r.Iter < m.GracePeriod {
		return Decision{}
	}
	var means []float64
	for t, rs := range m.results {
		if t == r.Trial || rs[len(rs)-1].iter < r.Iter {
			continue
		}
		sum, n := 0.0, 0
		for _, x := range rs {
			if x.iter >= m.GracePeriod && x.iter <= r.Iter {
				sum += x.reward
				n++
			}
		}
		if n > 0 {
			means = append(means, sum/float64(n))
		}
	}
	if len(means) < m.MinSamples {
		return Decision{}
	}
	best := math.Inf(-1)
	for _, x := range m.results[r.Trial] {
		best = math.Max(best, x.reward)
	}
	if best < percentile(means, 50) {
		m.stopped[r.Trial] = true
		return Decision{Action: Stop}
	}
	return Decision{}
}

// OnEnd does nothing: ended trials still count in the medians.
func (m *Median) OnEnd(int) {}
