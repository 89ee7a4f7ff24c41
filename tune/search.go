package tune

import (
	"fmt"
	"math/rand/v2"
)

// Mode says whether the metric is minimized or maximized.
type Mode string

// The modes.
const (
	Min Mode = "min"
	Max Mode = "max"
)

// Setup is what searchers and schedulers learn of the experiment before
// its first trial.
type Setup struct {
	Space      Space
	Mode       Mode
	NumSamples int
	Seed       uint64
}

// Searcher proposes the configs of trials. The experiment loop calls every
// method from one goroutine, Init first; Suggest is called with n = 0, 1,
// 2... in turn and Observe once per ended trial, in the order they end.
type Searcher interface {
	// Init prepares the searcher for an experiment.
	Init(s Setup) error
	// Suggest returns trial n's sample, or false when the searcher has no
	// more trials to propose.
	Suggest(n int) (Sample, bool)
	// Observe tells the searcher how trial n ended: loss is the trial's
	// best metric with lower better (the metric, negated for Max).
	Observe(n int, smp Sample, loss float64)
}

// trialRand is the random stream of trial n: configs depend on the seed
// and the trial number only, not on the order trials end in.
func trialRand(seed uint64, n int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(n)^0x9e3779b97f4a7c15))
}

func randomPick(r *rand.Rand) pick {
	return func(_ string, d Domain) any { return d.sample(r) }
}

// Random returns the random searcher: every parameter (Grid ones too) is
// drawn independently, NumSamples trials.
func Random() Searcher { return &random{} }

type random struct{ s Setup }

func (r *random) Init(s Setup) error { r.s = s; return nil }

func (r *random) Suggest(n int) (Sample, bool) {
	if n >= r.s.NumSamples {
		return Sample{}, false
	}
	return r.s.Space.build(randomPick(trialRand(r.s.Seed, n))), true
}

func (r *random) Observe(int, Sample, float64) {}

// GridSearch returns the grid searcher: every combination of the Grid and
// Choice values (a branch's own grid under the option that holds it), each
// combination NumSamples times as Ray's num_samples with grid_search;
// continuous parameters are drawn at random per trial.
func GridSearch() Searcher { return &grid{} }

type grid struct {
	s      Setup
	points []map[string]int
}

func (g *grid) Init(s Setup) error {
	g.s = s
	const limit = 1 << 20
	if n := s.Space.gridSize(limit); n > limit {
		return fmt.Errorf("%w: the grid has more than %d points: search some parameters at random (uniform, randint) or with tpe", ErrInvalid, limit)
	}
	g.points = s.Space.gridPoints("")
	if len(g.points) == 0 {
		return fmt.Errorf("%w: the grid has no points", ErrInvalid)
	}
	return nil
}

func (g *grid) Suggest(n int) (Sample, bool) {
	reps := max(g.s.NumSamples, 1)
	if n >= reps*len(g.points) {
		return Sample{}, false
	}
	point := g.points[n%len(g.points)]
	r := trialRand(g.s.Seed, n)
	return g.s.Space.build(func(path string, d Domain) any {
		if i, ok := point[path]; ok {
			return i
		}
		return d.sample(r)
	}), true
}

func (g *grid) Observe(int, Sample, float64) {}

var (
	_ Searcher = (*random)(nil)
	_ Searcher = (*grid)(nil)
	_ Searcher = (*tpe)(nil)
)
