package gputest

import (
	"math"

	"github.com/sluicehq/sluice/gpu"
)

// The float64 references. They share no code with any backend, and they are
// written as the definitions read (naive loops), not for speed. Each also
// returns the magnitudes the error bounds need.

// refMatMul returns c = a·bᵀ + bias for row-major a [m,k], b [n,k], and per
// element mag = Σ|a·b| + |bias|, which bounds float32 accumulation error.
func refMatMul(a, b, bias []float32, m, n, k int) (c, mag []float64) {
	c, mag = make([]float64, m*n), make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s, abs float64
			for p := range k {
				x := float64(a[i*k+p]) * float64(b[j*k+p])
				s += x
				abs += math.Abs(x)
			}
			if bias != nil {
				s += float64(bias[j])
				abs += math.Abs(float64(bias[j]))
			}
			c[i*n+j], mag[i*n+j] = s, abs
		}
	}
	return c, mag
}

// refRMSNorm normalizes rows of h. With res, the sum res+x is computed in
// float32 and rounded to resDT (the residual's dtype) first, and newRes is
// that sum.
func refRMSNorm(x, res, w []float32, h int, eps float32, resDT gpu.DType) (out, newRes []float64) {
	rows := len(x) / h
	out = make([]float64, len(x))
	z := make([]float64, len(x))
	for i := range x {
		z[i] = float64(x[i])
		if res != nil {
			z[i] = float64(round(resDT, res[i]+x[i]))
		}
	}
	for r := range rows {
		var ss float64
		for j := range h {
			ss += z[r*h+j] * z[r*h+j]
		}
		inv := 1 / math.Sqrt(ss/float64(h)+float64(eps))
		for j := range h {
			out[r*h+j] = z[r*h+j] * inv * float64(w[j])
		}
	}
	if res != nil {
		newRes = z
	}
	return out, newRes
}

// refInvFreq follows transformers' _compute_default_rope_parameters and
// _compute_llama3_parameters, step by step.
func refInvFreq(theta float64, d int, l3 *gpu.Llama3Scaling) []float32 {
	inv := make([]float64, d/2)
	for i := range inv {
		inv[i] = 1.0 / math.Pow(theta, float64(2*i)/float64(d))
	}
	if l3 != nil {
		old := float64(l3.OriginalMaxPositions)
		lowFreqWavelen := old / l3.LowFreqFactor
		highFreqWavelen := old / l3.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / f
			llama := f
			if wavelen > lowFreqWavelen {
				llama = f / l3.Factor
			}
			smooth := (old/wavelen - l3.LowFreqFactor) / (l3.HighFreqFactor - l3.LowFreqFactor)
			smoothed := (1-smooth)*llama/l3.Factor + smooth*llama
			if !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen) {
				llama = smoothed
			}
			inv[i] = llama
		}
	}
	out := make([]float32, len(inv))
	for i, f := range inv {
		out[i] = float32(f)
	}
	return out
}

// refRoPE rotates x [t, heads, d] by pos: the angle is the float32 product
// of position and float32 frequency (as transformers computes it), the rest
// is float64. mag is |x₁|+|x₂| of each output's pair.
func refRoPE(x []float32, pos []int32, heads, d int, inv []float32) (out, mag []float64) {
	out, mag = make([]float64, len(x)), make([]float64, len(x))
	half := d / 2
	for t, p := range pos {
		for h := range heads {
			o := (t*heads + h) * d
			for i := range half {
				ang := float64(float32(p) * inv[i])
				c, s := math.Cos(ang), math.Sin(ang)
				x1, x2 := float64(x[o+i]), float64(x[o+half+i])
				out[o+i] = x1*c - x2*s
				out[o+half+i] = x2*c + x1*s
				mag[o+i] = math.Abs(x1) + math.Abs(x2)
				mag[o+half+i] = mag[o+i]
			}
		}
	}
	return out, mag
}

func refSiLUMul(g, u []float32) []float64 {
	out := make([]float64, len(g))
	for i := range g {
		x := float64(g[i])
		out[i] = x / (1 + math.Exp(-x)) * float64(u[i])
	}
	return out
}

// refSoftmax returns softmax of rows of n, and per element |x−max|, which
// bounds the error of exp's argument.
func refSoftmax(x []float32, n int) (out, spread []float64) {
	out, spread = make([]float64, len(x)), make([]float64, len(x))
	for r := 0; r < len(x); r += n {
		m := math.Inf(-1)
		for _, v := range x[r : r+n] {
			m = math.Max(m, float64(v))
		}
		var s float64
		for i, v := range x[r : r+n] {
			out[r+i] = math.Exp(float64(v) - m)
			spread[r+i] = float64(v) - m
			s += out[r+i]
		}
		for i := range n {
			out[r+i] /= s
			spread[r+i] = math.Abs(spread[r+i])
		}
	}
	return out, spread
}

func refArgmax(x []float32, n int) []int32 {
	out := make([]int32, len(x)/n)
	for r := range out {
		best := 0
		for i := 1; i < n; i++ {
			v, b := x[r*n+i], x[r*n+best]
			if math.IsNaN(float64(b)) {
				break
			}
			if math.IsNaN(float64(v)) || v > b {
				best = i
			}
		}
		out[r] = int32(best)
	}
	return out
}

// attnSeq is one sequence of a dense attention reference: its keys and
// values for every position [ctx][kvHeads][d], and the queries of its new
// tokens [n][heads][d], the last n positions.
type attnSeq struct {
	k, v [][]float32 // per position: kvHeads·d
	q    [][]float32 // per new token: heads·d
}

// refAttention is dense causal attention with grouped heads. It returns
// per new token heads·d outputs, and per output Σ p·|v| plus the largest
// Σ|q·k|·scale, which bound float32 error.
func refAttention(s attnSeq, heads, kvHeads, d int, scale float64) (out, mag [][]float64, scoreMag float64) {
	g := heads / kvHeads
	ctx, n := len(s.k), len(s.q)
	for i := range n {
		pos := ctx - n + i
		o, mg := make([]float64, heads*d), make([]float64, heads*d)
		for h := range heads {
			kh := h / g
			q := s.q[i][h*d : (h+1)*d]
			sc := make([]float64, pos+1)
			m := math.Inf(-1)
			for p := range pos + 1 {
				k := s.k[p][kh*d : (kh+1)*d]
				var dot, abs float64
				for j := range d {
					dot += float64(q[j]) * float64(k[j])
					abs += math.Abs(float64(q[j]) * float64(k[j]))
				}
				sc[p] = dot * scale
				scoreMag = math.Max(scoreMag, abs*scale)
				m = math.Max(m, sc[p])
			}
			var z float64
			for p := range sc {
				sc[p] = math.Exp(sc[p] - m)
				z += sc[p]
			}
			for p := range sc {
				w := sc[p] / z
				v := s.v[p][kh*d : (kh+1)*d]
				for j := range d {
					o[h*d+j] += w * float64(v[j])
					mg[h*d+j] += w * math.Abs(float64(v[j]))
				}
			}
		}
		out, mag = append(out, o), append(mag, mg)
	}
	return out, mag, scoreMag
}
