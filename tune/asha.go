package tune

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ASHA is Ray Tune's AsyncHyperBandScheduler with one bracket: rungs at
// GracePeriod * ReductionFactor^k iterations below MaxT; a trial reaching a
// rung is stopped when its reward is below the rung's (1 - 1/ReductionFactor)
// percentile of the rewards recorded there before it, and every trial
// completes at MaxT.
type ASHA struct {
	// MaxT is the most iterations a trial runs (Ray's default 100).
	MaxT int
	// GracePeriod is the first rung's iteration (Ray's default 1).
	GracePeriod int
	// ReductionFactor sets the rung spacing and the fraction kept (Ray's
	// default 4).
	ReductionFactor float64

	rungs []rung // highest milestone first
}

type rung struct {
	milestone float64
	recorded  map[int]float64
}

// NewASHA returns ASHA with Ray's defaults.
func NewASHA() *ASHA { return &ASHA{MaxT: 100, GracePeriod: 1, ReductionFactor: 4} }

// Init validates the options and lays out the rungs as Ray does.
func (a *ASHA) Init(Setup) error {
	switch {
	case a.MaxT <= 0:
		return fmt.Errorf("%w: max_t must be above 0, got %d", ErrInvalid, a.MaxT)
	case a.GracePeriod <= 0:
		return fmt.Errorf("%w: grace_period must be above 0, got %d", ErrInvalid, a.GracePeriod)
	case a.GracePeriod > a.MaxT:
		return fmt.Errorf("%w: grace_period (%d) cannot be above max_t (%d)", ErrInvalid, a.GracePeriod, a.MaxT)
	case !(a.ReductionFactor > 1):
		return fmt.Errorf("%w: reduction_factor must be above 1, got %g", ErrInvalid, a.ReductionFactor)
	}
	n := int(math.Log(float64(a.MaxT)/float64(a.GracePeriod))/math.Log(a.ReductionFactor) + 1)
	a.rungs = nil
	for k := n - 1; k >= 0; k-- {
		a.rungs = append(a.rungs, rung{milestone: float64(a.GracePeriod) * math.Pow(a.ReductionFactor, float64(k)), recorded: map[int]float64{}})
	}
	return nil
}

// OnResult applies Ray's _Bracket.on_result.
func (a *ASHA) OnResult(r Result) Decision {
	if r.Iter >= a.MaxT {
		return Decision{Action: Complete}
	}
	for _, g := range a.rungs {
		if _, done := g.recorded[r.Trial]; float64(r.Iter) < g.milestone || done {
			continue
		}
		d := Decision{}
		if len(g.recorded) > 0 {
			vals := make([]float64, 0, len(g.recorded))
			for _, v := range g.recorded {
				vals = append(vals, v)
			}
			if r.Reward < percentile(vals, (1-1/a.ReductionFactor)*100) {
				d.Action = Stop
			}
		}
		g.recorded[r.Trial] = r.Reward
		return d
	}
	return Decision{}
}

// OnEnd does nothing: rungs keep the rewards of ended trials.
func (a *ASHA) OnEnd(int) {}

// String prints the rungs, highest first, with their recorded rewards.
func (a *ASHA) String() string {
	var b strings.Builder
	for _, g := range a.rungs {
		fmt.Fprintf(&b, "rung %s:", strconv.FormatFloat(g.milestone, 'g', -1, 64))
		for _, t := range sortedInts(g.recorded) {
			fmt.Fprintf(&b, " t%d=%s", t, strconv.FormatFloat(g.recorded[t], 'g', 6, 64))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func sortedInts[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
