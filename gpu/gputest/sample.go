package gputest

import (
	"math"
	"slices"
	"sort"

	"github.com/sluicehq/sluice/gpu"
)

// sampleCase is one row of a Sample check: its parameters and edits.
type sampleCase struct {
	row   gpu.SampleRow
	edits []gpu.SampleEdit
}

// fragileMargin: a row whose uniform, top_p bound or min_p cut lies this
// close to a sum the reference computed may differ between backends by the
// order of their float64 sums; such rows are not compared.
const fragileMargin = 1e-11

// refSample applies the edits to x (one row, changed in place) and draws
// the row's token in float64 by sorting, as vLLM's sampler. fragile
// reports a decision within fragileMargin of a rounding.
func refSample(x []float32, c sampleCase) (tok int32, fragile bool) {
	p := c.row
	rep, fq, pr := float32(p.Repetition), float32(p.Frequency), float32(p.Presence)
	for _, e := range c.edits {
		v := x[e.Token]
		if e.Mask {
			v = float32(math.Inf(-1))
		}
		if e.Seen {
			if v > 0 {
				v /= rep
			} else {
				v *= rep
			}
		}
		if e.Count > 0 {
			v -= float32(fq*float32(e.Count)) + pr
		}
		x[e.Token] = v
	}
	n := len(x)
	if p.Temperature < gpu.GreedyTemperature {
		best := 0
		for i := range x {
			if x[i] > x[best] {
				best = i
			}
		}
		return int32(best), false
	}
	inv := float32(1 / p.Temperature)
	y := make([]float64, n) // float32 values, widened
	for i := range x {
		y[i] = float64(x[i] * inv)
	}
	probs := func() []float64 {
		mx := slices.Max(y)
		q := make([]float64, n)
		sum := 0.0
		for i := range y {
			q[i] = math.Exp(y[i] - mx)
			sum += q[i]
		}
		for i := range q {
			q[i] /= sum
		}
		return q
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < fragileMargin }
	if p.MinP > 0 {
		q := probs()
		cut := slices.Max(q) * p.MinP
		for i := range q {
			fragile = fragile || near(q[i], cut)
			if q[i] < cut {
				y[i] = math.Inf(-1)
			}
		}
	}
	// Ascending by value, the larger id first among equals.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ya, yb := y[order[a]], y[order[b]]
		return ya < yb || ya == yb && order[a] > order[b]
	})
	if k := p.TopK; k > 0 && k < n {
		kth := y[order[n-k]]
		for _, i := range order[:n-k] {
			if y[i] < kth {
				y[i] = math.Inf(-1)
			}
		}
	}
	if p.TopP < 1 {
		q := probs()
		cum := 0.0
		for _, i := range order[:n-1] {
			cum += q[i]
			fragile = fragile || near(cum, 1-p.TopP)
			if cum > 1-p.TopP {
				break
			}
			y[i] = math.Inf(-1)
		}
	}
	q := probs()
	cum, last := 0.0, -1
	for i := range q {
		if q[i] == 0 {
			continue
		}
		cum += q[i]
		last = i
		fragile = fragile || near(cum, p.U)
		if p.U < cum {
			return int32(i), fragile
		}
	}
	return int32(last), fragile
}

// sampleCases draws rows of every kind: greedy with and without edits,
// temperature alone, min_p, top_k (with k ≥ n too), top_p, and mixes,
// with penalties and min_tokens masks on some.
func (e *env) sampleCases(rows, n int) []sampleCase {
	cs := make([]sampleCase, rows)
	for r := range cs {
		p := gpu.SampleRow{Temperature: 0.3 + 1.5*e.rng.Float64(), TopP: 1, Repetition: 1, U: e.rng.Float64()}
		switch r % 8 {
		case 0:
			p.Temperature = 0
		case 1: // temperature alone
		case 2:
			p.MinP = 0.02 + 0.3*e.rng.Float64()
		case 3:
			p.TopK = 1 + e.rng.IntN(min(n, 60))
		case 4:
			p.TopP = 0.05 + 0.9*e.rng.Float64()
		case 5:
			p.TopK, p.TopP, p.MinP = 1+e.rng.IntN(n), 0.2+0.79*e.rng.Float64(), 0.01*e.rng.Float64()
		case 6:
			p.TopK, p.TopP = n+e.rng.IntN(3), 0.9
		case 7:
			p.TopK, p.U = 5, 1-1e-9
		}
		if r%3 == 1 { // penalties and masks
			p.Repetition, p.Frequency, p.Presence = 0.5+1.5*e.rng.Float64(), 2*e.rng.Float64()-1, 2*e.rng.Float64()-1
			for _, t := range e.rng.Perm(n)[:min(n, 1+e.rng.IntN(20))] {
				cs[r].edits = append(cs[r].edits, gpu.SampleEdit{
					Token: int32(t), Count: int32(e.rng.IntN(3)), Mask: e.rng.IntN(6) == 0, Seen: e.rng.IntN(2) == 0,
				})
			}
		}
		cs[r].row = p
	}
	return cs
}

func testSample(e *env) {
	for _, c := range []struct {
		name       string
		rows, n    int
		scale      float64
		ties, ninf bool
	}{
		{"small", 24, 50, 4, false, false},
		{"ties", 32, 1000, 3, true, false},
		{"masked", 16, 999, 8, false, true},
		{"wide", 16, 4099, 6, true, false},
		{"vocab", 8, 32003, 10, false, false},
	} {
		e.run(c.name, func(e *env) {
			x := e.values(gpu.F32, c.rows*c.n, c.scale)
			for i := range x {
				if c.ties { // a coarse grid: many equal logits, as bf16 heads give
					x[i] = float32(math.Round(float64(x[i])*4) / 4)
				}
				if c.ninf && e.rng.IntN(5) == 0 {
					x[i] = float32(math.Inf(-1))
				}
			}
			cases := e.sampleCases(c.rows, c.n)
			var pack gpu.SamplePack
			for _, sc := range cases {
				pack.Add(sc.row, sc.edits)
			}
			b := gpu.SampleBatch{Rows: e.alloc(gpu.I32, c.rows, gpu.SampleRowWords)}
			e.must(e.dev.Upload(b.Rows, pack.Rows))
			if pack.NumEdits() > 0 {
				b.Edits = e.alloc(gpu.I32, pack.NumEdits(), 3)
				e.must(e.dev.Upload(b.Edits, pack.Edits))
			}
			logits := e.tensor(gpu.F32, x, c.rows, c.n)
			dst := e.poison(gpu.I32, c.rows)
			e.must(e.ops.Sample(dst, logits, b))
			got, err := gpu.ToHost[int32](dst)
			e.must(err)
			edited := e.get(logits)

			want := slices.Clone(x)
			fragile := 0
			for r, sc := range cases {
				row := want[r*c.n : (r+1)*c.n]
				tok, fr := refSample(row, sc)
				if fr {
					fragile++
					continue
				}
				if got[r] != tok {
					e.t.Errorf("row %d (%+v, %d edits): token %d, want %d", r, sc.row, len(sc.edits), got[r], tok)
				}
			}
			if fragile > c.rows/4 {
				e.t.Errorf("%d of %d rows too close to a rounding to compare", fragile, c.rows)
			}
			for i := range want {
				if math.Float32bits(edited[i]) != math.Float32bits(want[i]) {
					e.t.Fatalf("logit %d (row %d) after Sample: %v, want %v (edited or untouched)", i, i/c.n, edited[i], want[i])
				}
			}
		})
	}
	e.run("errors", func(e *env) {
		rows := e.alloc(gpu.I32, 2, gpu.SampleRowWords)
		e.wantErr("Sample bf16 logits", e.ops.Sample(e.alloc(gpu.I32, 2), e.alloc(gpu.BF16, 2, 8), gpu.SampleBatch{Rows: rows}), gpu.ErrDType)
		e.wantErr("Sample rows of 3", e.ops.Sample(e.alloc(gpu.I32, 3), e.alloc(gpu.F32, 3, 8), gpu.SampleBatch{Rows: rows}), gpu.ErrShape)
		e.wantErr("Sample dst length", e.ops.Sample(e.alloc(gpu.I32, 3), e.alloc(gpu.F32, 2, 8), gpu.SampleBatch{Rows: rows}), gpu.ErrShape)
		e.wantErr("Sample edits of 2", e.ops.Sample(e.alloc(gpu.I32, 2), e.alloc(gpu.F32, 2, 8), gpu.SampleBatch{Rows: rows, Edits: e.alloc(gpu.I32, 4, 2)}), gpu.ErrShape)
		e.wantErr("Sample float params", e.ops.Sample(e.alloc(gpu.I32, 2), e.alloc(gpu.F32, 2, 8), gpu.SampleBatch{Rows: e.alloc(gpu.F32, 2, gpu.SampleRowWords)}), gpu.ErrDType)
	})
}
