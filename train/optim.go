package train

import (
	"math"

	"github.com/sluicehq/sluice/gpu"
)

// lrAt is the learning rate of step s (0-based) under the schedule, as
// transformers' get_{constant,linear,cosine}_schedule_with_warmup: a
// linear warmup from 0 over warmup steps, then constant, linear decay to 0
// at total, or a half cosine to 0 at total.
func lrAt(base float64, schedule string, s, warmup, total int) float64 {
	if s < warmup {
		return base * float64(s) / float64(max(1, warmup))
	}
	switch schedule {
	case "linear":
		return base * math.Max(0, float64(total-s)/float64(max(1, total-warmup)))
	case "cosine":
		progress := float64(s-warmup) / float64(max(1, total-warmup))
		return base * math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	}
	return base
}

// clipGrads scales every gradient by min(1, maxNorm/(norm+1e-6)) when
// maxNorm > 0, as torch.nn.utils.clip_grad_norm_, and returns the global
// L2 norm before clipping. Each param's squares are summed in float64 in
// order (gpu.SumSquares), the params in parallel, then the sums in order.
func clipGrads(ps []*param, maxNorm float64) float64 {
	sums := make([]float64, len(ps))
	parallel(len(ps), func(i int) { sums[i] = gpu.SumSquares(ps[i].g) })
	var sq float64
	for _, s := range sums {
		sq += s
	}
	norm := math.Sqrt(sq)
	if c := clipScale(norm, maxNorm); c < 1 {
		for _, p := range ps {
			g := p.g
			parallel((len(g)+optimChunk-1)/optimChunk, func(k int) {
				for i := k * optimChunk; i < min((k+1)*optimChunk, len(g)); i++ {
					g[i] *= c
				}
			})
		}
	}
	return norm
}

// clipScale is what clipping multiplies the gradients by: 1 when maxNorm is
// 0 or the norm is within it.
func clipScale(norm, maxNorm float64) float32 {
	if maxNorm <= 0 {
		return 1
	}
	return float32(math.Min(1, maxNorm/(norm+1e-6)))
}

// optimChunk is the elements one goroutine of the host optimizer updates at
// a time; elements are independent, so the split changes no result.
const optimChunk = 1 << 16

// optimizer updates params from their gradients.
type optimizer struct {
	name              string // adamw or sgd
	beta1, beta2, eps float64
	momentum          float64
	weightDecay       float64
	step              int // updates done
}

func newOptimizer(name string, weightDecay float64) *optimizer {
	return &optimizer{name: name, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0.9, weightDecay: weightDecay}
}

// adamw is the next step's AdamW at lr, gradients scaled by c.
func (o *optimizer) adamw(lr float64, c float32) gpu.AdamW {
	return gpu.AdamW{LR: lr, Beta1: o.beta1, Beta2: o.beta2, Eps: o.eps, WeightDecay: o.weightDecay, Step: o.step, GradScale: c}
}

// sgd is the next step's SGD at lr, gradients scaled by c.
func (o *optimizer) sgd(lr float64, c float32) gpu.SGD {
	return gpu.SGD{LR: lr, Momentum: o.momentum, WeightDecay: o.weightDecay, Step: o.step, GradScale: c}
}

// update applies one step at lr on the host, as torch.optim.AdamW
// (decoupled weight decay, bias correction; the single-tensor path) or
// torch.optim.SGD with momentum (the first step's buffer is the gradient
// itself): gpu's reference loops, which the cpu device's OptimOps run too,
// over chunks in parallel.
func (o *optimizer) update(ps []*param, lr float64) {
	o.step++
	for _, p := range ps {
		if p.m == nil {
			p.m = make([]float32, len(p.w))
			if o.name == "adamw" {
				p.v = make([]float32, len(p.w))
			}
		}
		ad, sg := o.adamw(lr, 1), o.sgd(lr, 1)
		n := len(p.w)
		parallel((n+optimChunk-1)/optimChunk, func(k int) {
			a, b := k*optimChunk, min((k+1)*optimChunk, n)
			if o.name == "adamw" {
				ad.Apply(p.w[a:b], p.g[a:b], p.m[a:b], p.v[a:b])
			} else {
				sg.Apply(p.w[a:b], p.g[a:b], p.m[a:b])
			}
		})
		p.dirty = true
	}
}
