package gpu

import "math"

// OptimOps are an optimizer's steps over a parameter's f32 buffers, so that
// training keeps its weights, gradients and moments on the device and moves
// them to the host only to save them. It is optional: detect it with a type
// assertion on Device.Ops (cpu has it; train falls back to its host
// optimizer without it). The ops follow the Device's threading and ordering
// rules.
//
// Every float tensor is F32; one step's w, g, m and v have one length (their
// shapes may differ). Each element is updated on its own, as the reference
// loops AdamW.Apply and SGD.Apply compute it, so a backend whose float32
// arithmetic rounds each operation as Go does matches them bit for bit (cpu
// does; a fused multiply-add may differ in the last bit).
type OptimOps interface {
	// Zero sets every byte of t to 0 (any dtype): a gradient accumulator
	// at the start of a step.
	Zero(t *Tensor) error

	// SumSquares writes, for each srcs[j], Σ srcs[j][i]² into dst as a
	// float64: dst is I32 [2·len(srcs)] used as raw storage, its bytes
	// 8j..8j+7 the little-endian float64 of srcs[j], so one Download of dst
	// brings every sum. cpu sums in float64 in index order (SumSquares);
	// other backends may sum in another order.
	SumSquares(dst *Tensor, srcs []*Tensor) error

	// AdamWStep applies one AdamW update (h) to w with gradient g and
	// moments m and v (zeros before the first step), in place; g is read,
	// not written.
	AdamWStep(w, g, m, v *Tensor, h AdamW) error

	// SGDStep applies one SGD-with-momentum update (h) to w with gradient g
	// and momentum buffer m, in place; g is read, not written.
	SGDStep(w, g, m *Tensor, h SGD) error
}

// AdamW is one step of torch.optim.AdamW (decoupled weight decay, bias
// correction; its single-tensor path), the gradient first multiplied by
// GradScale (gradient clipping; 0 or 1 leaves it as it is).
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	Step                               int // this update's 1-based number, for the bias corrections
	GradScale                          float32
}

// Coefficients are the step's float32 constants, computed on the host as
// Apply uses them, for a backend's kernel: w·decay (when WeightDecay is not
// 0), the betas, lr/(1−β₁ᵗ), sqrt(1−β₂ᵗ) and eps.
func (h AdamW) Coefficients() (decay, b1, b2, stepSize, bc2sqrt, eps float32) {
	t := float64(h.Step)
	decay = float32(1 - h.LR*h.WeightDecay)
	b1, b2 = float32(h.Beta1), float32(h.Beta2)
	bc1 := 1 - math.Pow(h.Beta1, t)
	bc2sqrt = float32(math.Sqrt(1 - math.Pow(h.Beta2, t)))
	stepSize = float32(h.LR / bc1)
	eps = float32(h.Eps)
	return
}

// Apply is the reference update over host slices of one length. Each
// operation rounds to float32 as written: m += (g − m)·(1 − β₁);
// v = v·β₂ + ((1 − β₂)·g)·g; w += ((−stepSize)·m) / (sqrt(v)/bc2sqrt + eps).
func (h AdamW) Apply(w, g, m, v []float32) {
	decay, b1, b2, stepSize, bc2sqrt, eps := h.Coefficients()
	c := h.GradScale
	scaled := c != 0 && c != 1
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i, gi := range g {
		if scaled {
			gi *= c
		}
		if h.WeightDecay != 0 {
			w[i] *= decay
		}
		m[i] += (gi - m[i]) * (1 - b1)
		v[i] = v[i]*b2 + (1-b2)*gi*gi
		denom := float32(math.Sqrt(float64(v[i])))/bc2sqrt + eps
		w[i] += -stepSize * m[i] / denom
	}
}

// SGD is one step of torch.optim.SGD with momentum (the first step's buffer
// is the gradient itself) and L2 weight decay, the gradient first
// multiplied by GradScale (0 or 1 leaves it as it is).
type SGD struct {
	LR, Momentum, WeightDecay float64
	Step                      int // 1-based; step 1 sets the buffer to the gradient
	GradScale                 float32
}

// Apply is the reference update over host slices of one length.
func (h SGD) Apply(w, g, m []float32) {
	mom, wd, l := float32(h.Momentum), float32(h.WeightDecay), float32(h.LR)
	c := h.GradScale
	scaled := c != 0 && c != 1
	g, m = g[:len(w)], m[:len(w)]
	for i, gi := range g {
		if scaled {
			gi *= c
		}
		if wd != 0 {
			gi += wd * w[i]
		}
		if h.Step == 1 {
			m[i] = gi
		} else {
			m[i] = mom*m[i] + gi
		}
		w[i] -= l * m[i]
	}
}

// SumSquares is Σ v[i]² in float64, in index order: the reference of
// OptimOps.SumSquares.
func SumSquares(v []float32) float64 {
	var s float64
	for _, g := range v {
		s += float64(g) * float64(g)
	}
	return s
}
