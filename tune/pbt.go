package tune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// PBT is Ray Tune's PopulationBasedTraining (asynchronous): every
// Interval iterations a trial's last reward ranks it among the running
// trials; a trial in the bottom QuantileFraction exploits a trial of the
// top fraction (continues from the checkpoint that trial had when it last
// ranked in the top, with that trial's config) and explores (each
// parameter of the space resampled with ResampleProbability, else a number
// multiplied by one of Factors and a Choice moved to a neighbouring value).
// Where it differs from Ray: perturbed numbers are kept inside their
// domain's range (QUniform rounded, RandInt truncated as Ray does for
// ints), and the donor's checkpoint is the latest one it saved itself
// rather than one saved on demand.
type PBT struct {
	// Interval is how many iterations pass between a trial's perturbations
	// (Ray's perturbation_interval; its default is 60 s of time_total_s).
	Interval int
	// QuantileFraction is the fraction of trials exploited and exploited
	// from (Ray: 0.25).
	QuantileFraction float64
	// ResampleProbability is the chance a parameter is drawn anew rather
	// than perturbed (Ray: 0.25).
	ResampleProbability float64
	// Factors multiply numeric parameters (Ray: 1.2 and 0.8).
	Factors []float64

	space  Space
	leaves map[string]Domain
	rng    *rand.Rand
	states map[int]*pbtState
}

type pbtState struct {
	lastScore      float64
	scored         bool
	lastPerturb    int
	lastCheckpoint int // 0: none usable as a donor
	sample         Sample
	ended          bool
}

// NewPBT returns PBT with Ray's defaults and an interval of 5 iterations.
func NewPBT() *PBT {
	return &PBT{Interval: 5, QuantileFraction: 0.25, ResampleProbability: 0.25, Factors: []float64{1.2, 0.8}}
}

// Init validates the options and seeds the explore draws.
func (p *PBT) Init(s Setup) error {
	switch {
	case p.Interval <= 0:
		return fmt.Errorf("%w: perturbation_interval must be above 0, got %d", ErrInvalid, p.Interval)
	case !(p.QuantileFraction > 0 && p.QuantileFraction <= 0.5):
		return fmt.Errorf("%w: quantile_fraction must be in (0, 0.5], got %g", ErrInvalid, p.QuantileFraction)
	case !(p.ResampleProbability >= 0 && p.ResampleProbability <= 1):
		return fmt.Errorf("%w: resample_probability must be in [0, 1], got %g", ErrInvalid, p.ResampleProbability)
	case len(p.Factors) == 0:
		return fmt.Errorf("%w: PBT needs perturbation factors", ErrInvalid)
	}
	p.space, p.leaves = s.Space, s.Space.leaves()
	p.rng = rand.New(rand.NewPCG(s.Seed, 0x7062740a))
	p.states = map[int]*pbtState{}
	return nil
}

func (p *PBT) state(t int) *pbtState {
	st := p.states[t]
	if st == nil {
		st = &pbtState{}
		p.states[t] = st
	}
	return st
}

// OnResult ranks the trial at its perturbation times and exploits.
func (p *PBT) OnResult(r Result) Decision {
	st := p.state(r.Trial)
	st.sample = r.Sample
	if r.Iter-st.lastPerturb < p.Interval {
		return Decision{}
	}
	st.lastScore, st.scored = r.Reward, true
	st.lastPerturb = r.Iter
	lower, upper := p.quantiles()
	st.lastCheckpoint = 0
	if slices.Contains(upper, r.Trial) {
		st.lastCheckpoint = r.Checkpoint
	}
	if !slices.Contains(lower, r.Trial) {
		return Decision{}
	}
	donor := upper[p.rng.IntN(len(upper))]
	ds := p.states[donor]
	if ds.lastCheckpoint == 0 {
		return Decision{}
	}
	smp := p.explore(ds.sample)
	st.sample = smp
	st.lastPerturb = ds.lastPerturb
	st.lastCheckpoint = ds.lastCheckpoint
	return Decision{Action: Exploit, Donor: donor, DonorCheckpoint: ds.lastCheckpoint, Sample: smp}
}

// quantiles are the worst and best running trials by last score.
func (p *PBT) quantiles() (lower, upper []int) {
	var ts []int
	for t, st := range p.states {
		if st.scored && !st.ended {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(a, b int) int {
		sa, sb := p.states[a].lastScore, p.states[b].lastScore
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return a - b
	})
	if len(ts) <= 1 {
		return nil, nil
	}
	n := int(math.Ceil(float64(len(ts)) * p.QuantileFraction))
	if float64(n) > float64(len(ts))/2 {
		n = len(ts) / 2
	}
	return ts[:n], ts[len(ts)-n:]
}

// explore perturbs every parameter of a donor's sample.
func (p *PBT) explore(from Sample) Sample {
	return p.space.build(func(path string, d Domain) any {
		old, ok := from.Params[path]
		if !ok { // a branch the donor did not take
			return d.sample(p.rng)
		}
		if vs := values(d); vs != nil {
			i, _ := asInt(old)
			if p.rng.Float64() < p.ResampleProbability {
				return p.rng.IntN(len(vs))
			}
			shift := []int{-1, 1}[p.rng.IntN(2)]
			return min(max(i+shift, 0), len(vs)-1)
		}
		if p.rng.Float64() < p.ResampleProbability {
			return d.sample(p.rng)
		}
		f := p.Factors[p.rng.IntN(len(p.Factors))]
		x := numericValue(old) * f
		switch d := d.(type) {
		case Uniform:
			return math.Min(math.Max(x, d.Lo), math.Nextafter(d.Hi, d.Lo))
		case LogUniform:
			return math.Min(math.Max(x, d.Lo), math.Nextafter(d.Hi, d.Lo))
		case QUniform:
			return d.round(math.Min(math.Max(x, d.Lo), d.Hi))
		case RandInt:
			return min(max(int64(x), d.Lo), d.Hi-1)
		}
		return x
	})
}

func numericValue(v any) float64 {
	switch v := v.(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	case int:
		return float64(v)
	}
	return math.NaN()
}

// OnEnd drops the trial from the rankings.
func (p *PBT) OnEnd(t int) { p.state(t).ended = true }
