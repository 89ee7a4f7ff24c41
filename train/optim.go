package train

import (
	"math"
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
// L2 norm before clipping.
func clipGrads(ps []*param, maxNorm float64) float64 {
	var sq float64
	for _, p := range ps {
		var s float64
		for _, g := range p.g {
			s += float64(g) * float64(g)
		}
		sq += s
	}
	norm := math.Sqrt(sq)
	if maxNorm > 0 {
		c := float32(math.Min(1, maxNorm/(norm+1e-6)))
		if c < 1 {
			for _, p := range ps {
				for i := range p.g {
					p.g[i] *= c
				}
			}
		}
	}
	return norm
}

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

// update applies one step at lr, as torch.optim.AdamW (decoupled weight
// decay, bias correction; the single-tensor path) or torch.optim.SGD with
// momentum (the first step's buffer is the gradient itself).
func (o *optimizer) update(ps []*param, lr float64) {
	o.step++
	t := float64(o.step)
	for _, p := range ps {
		if p.m == nil {
			p.m = make([]float32, len(p.w))
			if o.name == "adamw" {
				p.v = make([]float32, len(p.w))
			}
		}
		switch o.name {
		case "adamw":
			decay := float32(1 - lr*o.weightDecay)
			b1, b2 := float32(o.beta1), float32(o.beta2)
			bc1 := 1 - math.Pow(o.beta1, t)
			bc2sqrt := float32(math.Sqrt(1 - math.Pow(o.beta2, t)))
			stepSize := float32(lr / bc1)
			eps := float32(o.eps)
			for i, g := range p.g {
				if o.weightDecay != 0 {
					p.w[i] *= decay
				}
				p.m[i] += (g - p.m[i]) * (1 - b1)
				p.v[i] = p.v[i]*b2 + (1-b2)*g*g
				denom := float32(math.Sqrt(float64(p.v[i])))/bc2sqrt + eps
				p.w[i] += -stepSize * p.m[i] / denom
			}
		default:
			mom, wd, l := float32(o.momentum), float32(o.weightDecay), float32(lr)
			for i, g := range p.g {
				if wd != 0 {
					g += wd * p.w[i]
				}
				if o.step == 1 {
					p.m[i] = g
				} else {
					p.m[i] = mom*p.m[i] + g
				}
				p.w[i] -= l * p.m[i]
			}
		}
	}
}
