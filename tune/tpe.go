package tune

import (
	"math"
	"math/rand/v2"
	"slices"
)

// TPEOptions configure the Tree-structured Parzen Estimator. The zero
// value means Optuna's defaults.
type TPEOptions struct {
	// Startup is how many trials are drawn at random before TPE models
	// anything (Optuna's n_startup_trials: 10).
	Startup int
	// Candidates is how many draws from the good-trials model are scored
	// per parameter (Optuna's n_ei_candidates: 24).
	Candidates int
	// PriorWeight is the weight of the prior kernel (Optuna: 1.0).
	PriorWeight float64
}

// TPE returns Optuna's independent TPE sampler (TPESampler with its
// defaults: prior on, magic clip on, endpoints off, gamma(n) = min(ceil(0.1
// n), 25), Optuna's ramp of weights). Each parameter is modelled on its
// own from the ended trials that hold it, so conditional parameters are
// learnt from the trials of their branch. Where it differs from Optuna: a
// trial stopped early counts with its best metric like a finished one
// (Optuna ranks pruned trials after all complete ones), running trials
// are not observed (Optuna's constant_liar off, the same), and Grid
// parameters are treated as Choice.
//
// Seeded: with MaxConcurrent 1 the same seed gives the same trials, end to
// end (TestTPESeedEndToEnd). With several trials at once, the trials that
// have ended when trial n is proposed depend on timing, so only the
// startup trials (drawn from the seed and n alone) are the same from run
// to run; the later ones differ as TPE's observations do.
func TPE(o TPEOptions) Searcher {
	if o.Startup <= 0 {
		o.Startup = 10
	}
	if o.Candidates <= 0 {
		o.Candidates = 24
	}
	if o.PriorWeight <= 0 {
		o.PriorWeight = 1
	}
	return &tpe{o: o}
}

type tpeObs struct {
	n      int
	params map[string]any
	loss   float64
}

type tpe struct {
	o   TPEOptions
	s   Setup
	obs []tpeObs
}

func (t *tpe) Init(s Setup) error { t.s = s; t.obs = nil; return nil }

func (t *tpe) Observe(n int, smp Sample, loss float64) {
	if math.IsNaN(loss) {
		return
	}
	t.obs = append(t.obs, tpeObs{n, smp.Params, loss})
}

func (t *tpe) Suggest(n int) (Sample, bool) {
	if n >= t.s.NumSamples {
		return Sample{}, false
	}
	r := trialRand(t.s.Seed, n)
	if len(t.obs) < t.o.Startup {
		return t.s.Space.build(randomPick(r)), true
	}
	sorted := slices.Clone(t.obs)
	slices.SortStableFunc(sorted, func(a, b tpeObs) int {
		if a.loss != b.loss {
			if a.loss < b.loss {
				return -1
			}
			return 1
		}
		return a.n - b.n
	})
	nb := int(math.Min(math.Ceil(0.1*float64(len(sorted))), 25))
	below, above := slices.Clone(sorted[:nb]), slices.Clone(sorted[nb:])
	byNumber := func(a, b tpeObs) int { return a.n - b.n }
	slices.SortFunc(below, byNumber)
	slices.SortFunc(above, byNumber)
	return t.s.Space.build(func(path string, d Domain) any {
		return t.sample(r, path, d, below, above)
	}), true
}

// sample draws Candidates values from the good trials' Parzen estimator of
// one parameter and keeps the one with the highest l(x)/g(x).
func (t *tpe) sample(r *rand.Rand, path string, d Domain, below, above []tpeObs) any {
	if vs := values(d); vs != nil {
		l := t.categorical(observed(below, path), len(vs))
		g := t.categorical(observed(above, path), len(vs))
		best, bestScore := 0, math.Inf(-1)
		for range t.o.Candidates {
			c := l.sample(r)
			if s := l.logPDF(c) - g.logPDF(c); s > bestScore {
				best, bestScore = c, s
			}
		}
		return best
	}
	nm := numericOf(d)
	l := t.numeric(observed(below, path), nm)
	g := t.numeric(observed(above, path), nm)
	best, bestScore := math.NaN(), math.Inf(-1)
	for range t.o.Candidates {
		x := l.sample(r)
		if s := l.logPDF(x) - g.logPDF(x); s > bestScore || math.IsNaN(best) {
			best, bestScore = x, s
		}
	}
	return nm.external(best)
}

// observed are the raw values of path in the trials that hold it.
func observed(obs []tpeObs, path string) []any {
	var out []any
	for _, o := range obs {
		if v, ok := o.params[path]; ok {
			out = append(out, v)
		}
	}
	return out
}

// tpeWeights is Optuna's default_weights: flat for the newest 25, a ramp
// down to 1/n for older ones.
func tpeWeights(n int) []float64 {
	w := make([]float64, n)
	if n < 25 {
		for i := range w {
			w[i] = 1
		}
		return w
	}
	ramp := n - 25
	for i := range ramp {
		if ramp == 1 {
			w[i] = 1 / float64(n)
		} else {
			w[i] = 1/float64(n) + (1-1/float64(n))*float64(i)/float64(ramp-1)
		}
	}
	for i := ramp; i < n; i++ {
		w[i] = 1
	}
	return w
}

// mixtureWeights are the kernels' weights with the prior last, summing to 1.
func (t *tpe) mixtureWeights(n int) []float64 {
	w := append(tpeWeights(n), t.o.PriorWeight)
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

// numeric is a numeric domain in TPE's internal scale: log for LogUniform,
// a step for QUniform and RandInt.
type numeric struct {
	lo, hi, step float64
	log, integer bool
}

func numericOf(d Domain) numeric {
	switch d := d.(type) {
	case Uniform:
		return numeric{lo: d.Lo, hi: d.Hi}
	case LogUniform:
		return numeric{lo: math.Log(d.Lo), hi: math.Log(d.Hi), log: true}
	case QUniform:
		return numeric{lo: math.Ceil(d.Lo/d.Q-1e-9) * d.Q, hi: math.Floor(d.Hi/d.Q+1e-9) * d.Q, step: d.Q}
	case RandInt:
		return numeric{lo: float64(d.Lo), hi: float64(d.Hi - 1), step: 1, integer: true}
	}
	panic("tune: not a numeric domain") // every Domain is covered above
}

func (nm numeric) internal(v any) float64 {
	var x float64
	switch v := v.(type) {
	case float64:
		x = v
	case int64:
		x = float64(v)
	case int:
		x = float64(v)
	}
	if nm.log {
		return math.Log(x)
	}
	return x
}

func (nm numeric) external(x float64) any {
	if nm.step > 0 {
		x = nm.lo + math.Round((x-nm.lo)/nm.step)*nm.step
		x = math.Min(math.Max(x, nm.lo), nm.hi)
	}
	switch {
	case nm.log:
		return math.Exp(x)
	case nm.integer:
		return int64(math.Round(x))
	case nm.step > 0:
		return QUniform{Lo: nm.lo, Hi: nm.hi, Q: nm.step}.round(x)
	}
	return x
}

// truncMixture is a mixture of normals truncated to [lo, hi] (with a step:
// discretized, each point holding the mass of [x-step/2, x+step/2]).
type truncMixture struct {
	w, mu, sigma []float64
	nm           numeric
}

// numeric is Optuna's univariate Parzen estimator: one kernel per
// observation with the prior kernel, sigmas from the distances to the
// neighbours, clipped by the magic clip.
func (t *tpe) numeric(obs []any, nm numeric) truncMixture {
	mus := make([]float64, len(obs))
	for i, v := range obs {
		mus[i] = nm.internal(v)
	}
	prior := 0.5 * (nm.lo + nm.hi)
	width := nm.hi - nm.lo + nm.step
	sigmas := make([]float64, len(mus))
	if len(mus) > 0 {
		withPrior := append(slices.Clone(mus), prior)
		order := make([]int, len(withPrior))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case withPrior[a] < withPrior[b]:
				return -1
			case withPrior[a] > withPrior[b]:
				return 1
			}
			return 0
		})
		ends := make([]float64, len(withPrior)+2)
		ends[0] = nm.lo - nm.step/2
		for i, j := range order {
			ends[i+1] = withPrior[j]
		}
		ends[len(ends)-1] = nm.hi + nm.step/2
		sorted := make([]float64, len(withPrior))
		for i := range sorted {
			sorted[i] = math.Max(ends[i+1]-ends[i], ends[i+2]-ends[i+1])
		}
		if len(ends) >= 4 { // consider_endpoints=False
			sorted[0] = ends[2] - ends[1]
			sorted[len(sorted)-1] = ends[len(ends)-2] - ends[len(ends)-3]
		}
		all := make([]float64, len(withPrior))
		for i, j := range order {
			all[j] = sorted[i]
		}
		minSigma := width / math.Min(100, 1+float64(len(mus)+1))
		for i := range sigmas {
			sigmas[i] = math.Min(math.Max(all[i], minSigma), width)
		}
	}
	return truncMixture{
		w:     t.mixtureWeights(len(mus)),
		mu:    append(mus, prior),
		sigma: append(sigmas, width),
		nm:    nm,
	}
}

func phi(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// logMass is log(Phi(b) - Phi(a)) computed on the side that keeps precision.
func logMass(a, b float64) float64 {
	var m float64
	if a > 0 {
		m = 0.5 * (math.Erfc(a/math.Sqrt2) - math.Erfc(b/math.Sqrt2))
	} else {
		m = 0.5 * (math.Erfc(-b/math.Sqrt2) - math.Erfc(-a/math.Sqrt2))
	}
	return math.Log(math.Max(m, 1e-300))
}

// truncStd draws a standard normal truncated to [a, b].
func truncStd(r *rand.Rand, a, b float64) float64 {
	if a > 0 {
		return -truncStd(r, -b, -a)
	}
	pa, pb := phi(a), phi(b)
	u := pa + r.Float64()*(pb-pa)
	z := math.Sqrt2 * math.Erfinv(2*u-1)
	if math.IsNaN(z) {
		z = a
	}
	return math.Min(math.Max(z, a), b)
}

func (m truncMixture) bounds() (lo, hi float64) {
	return m.nm.lo - m.nm.step/2, m.nm.hi + m.nm.step/2
}

func (m truncMixture) sample(r *rand.Rand) float64 {
	k := pickWeighted(r, m.w)
	lo, hi := m.bounds()
	mu, s := m.mu[k], m.sigma[k]
	x := mu + s*truncStd(r, (lo-mu)/s, (hi-mu)/s)
	if m.nm.step > 0 {
		x = m.nm.lo + math.Round((x-m.nm.lo)/m.nm.step)*m.nm.step
		x = math.Min(math.Max(x, m.nm.lo), m.nm.hi)
	}
	return x
}

func (m truncMixture) logPDF(x float64) float64 {
	lo, hi := m.bounds()
	terms := make([]float64, len(m.w))
	for k := range m.w {
		mu, s := m.mu[k], m.sigma[k]
		var lp float64
		if m.nm.step > 0 {
			lp = logMass((x-m.nm.step/2-mu)/s, (x+m.nm.step/2-mu)/s)
		} else {
			z := (x - mu) / s
			lp = -0.5*z*z - math.Log(s) - 0.5*math.Log(2*math.Pi)
		}
		terms[k] = math.Log(m.w[k]) + lp - logMass((lo-mu)/s, (hi-mu)/s)
	}
	return logSumExp(terms)
}

func logSumExp(xs []float64) float64 {
	hi := math.Inf(-1)
	for _, x := range xs {
		hi = math.Max(hi, x)
	}
	if math.IsInf(hi, -1) {
		return hi
	}
	sum := 0.0
	for _, x := range xs {
		sum += math.Exp(x - hi)
	}
	return hi + math.Log(sum)
}

func pickWeighted(r *rand.Rand, w []float64) int {
	u := r.Float64()
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// catMixture is Optuna's categorical Parzen estimator: one row of category
// weights per observation (the prior spread over every row) plus a uniform
// prior row.
type catMixture struct {
	w    []float64
	rows [][]float64
}

func (t *tpe) categorical(obs []any, k int) catMixture {
	if len(obs) == 0 {
		row := make([]float64, k)
		for i := range row {
			row[i] = 1 / float64(k)
		}
		return catMixture{w: []float64{1}, rows: [][]float64{row}}
	}
	rows := make([][]float64, len(obs)+1)
	for i := range rows {
		row := make([]float64, k)
		for c := range row {
			row[c] = t.o.PriorWeight / float64(len(obs)+1)
		}
		if i < len(obs) {
			if c, ok := asInt(obs[i]); ok && c >= 0 && c < k {
				row[c]++
			}
		}
		sum := 0.0
		for _, x := range row {
			sum += x
		}
		for c := range row {
			row[c] /= sum
		}
		rows[i] = row
	}
	return catMixture{w: t.mixtureWeights(len(obs)), rows: rows}
}

func (m catMixture) sample(r *rand.Rand) int {
	return pickWeighted(r, m.rows[pickWeighted(r, m.w)])
}

func (m catMixture) logPDF(c int) float64 {
	p := 0.0
	for i, w := range m.w {
		p += w * m.rows[i][c]
	}
	return math.Log(p)
}

// asInt reads an index that may have come back from JSON as a float64.
func asInt(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case int64:
		return int(v), true
	case float64:
		if v == math.Trunc(v) {
			return int(v), true
		}
	}
	return 0, false
}
