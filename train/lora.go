package train

import (
	"math"
	"math/rand/v2"
	"strings"
)

// LoRA adapters in PEFT's layout: for a target weight W [out, in], A [r, in]
// (kaiming-uniform as PEFT initializes it) and B [out, r] (zeros), and the
// layer computes with W + (alpha/r)·B·A. The product is merged into the
// weight before each step's passes, and since the loss depends on A and B
// only through it, their gradients follow from W's:
// ∂A = s·Bᵀ·∂W, ∂B = s·∂W·Aᵀ.

// DefaultLoRATargets are PEFT's default target modules for Llama and Qwen.
var DefaultLoRATargets = []string{"q_proj", "v_proj"}

type loraSet struct {
	rank   int
	alpha  float64
	scale  float32
	mods   []string
	adapts []*adapter
	params []*param // every A and B
}

type adapter struct {
	base  *param    // the weight W, which the optimizer does not touch
	w0    []float32 // W as loaded
	a, b  *param
	in, o int
}

func newLoRA(n *net, rank int, alpha float64, targets []string, seed uint64) *loraSet {
	ls := &loraSet{rank: rank, alpha: alpha, scale: float32(alpha / float64(rank)), mods: targets}
	r := rand.New(rand.NewPCG(seed, 0x10a))
	for _, p := range n.params {
		if len(p.shape) != 2 || !isTarget(p.name, targets) {
			continue
		}
		o, in := p.shape[0], p.shape[1]
		stem := strings.TrimSuffix(p.name, ".weight")
		a := &param{name: stem + ".lora_A.weight", shape: []int{rank, in}, w: make([]float32, rank*in), g: make([]float32, rank*in)}
		bound := 1 / math.Sqrt(float64(in))
		for i := range a.w {
			a.w[i] = float32((2*r.Float64() - 1) * bound)
		}
		b := &param{name: stem + ".lora_B.weight", shape: []int{o, rank}, w: make([]float32, o*rank), g: make([]float32, o*rank)}
		ls.adapts = append(ls.adapts, &adapter{base: p, w0: append([]float32(nil), p.w...), a: a, b: b, in: in, o: o})
		ls.params = append(ls.params, a, b)
	}
	return ls
}

func isTarget(name string, targets []string) bool {
	if !strings.HasPrefix(name, "model.layers.") {
		return false
	}
	for _, t := range targets {
		if strings.HasSuffix(name, "."+t+".weight") {
			return true
		}
	}
	return false
}

// merge sets every target weight to W0 + s·B·A (on the host: the next
// push uploads it).
func (ls *loraSet) merge() {
	for _, ad := range ls.adapts {
		ad.base.dirty = true
		parallel(ad.o, func(i int) {
			row := ad.base.w[i*ad.in : (i+1)*ad.in]
			copy(row, ad.w0[i*ad.in:(i+1)*ad.in])
			for k := range ls.rank {
				c := ls.scale * ad.b.w[i*ls.rank+k]
				if c == 0 {
					continue
				}
				ar := ad.a.w[k*ad.in : (k+1)*ad.in]
				for j := range row {
					row[j] += c * ar[j]
				}
			}
		})
	}
}

func (ls *loraSet) zeroGrad() {
	for _, p := range ls.params {
		clear(p.g)
	}
}

// backprop turns the merged weights' gradients into A's and B's.
func (ls *loraSet) backprop() {
	for _, ad := range ls.adapts {
		dw, r := ad.base.g, ls.rank
		// ∂B[i,k] = s·Σ_j ∂W[i,j]·A[k,j]
		parallel(ad.o, func(i int) {
			for k := range r {
				ad.b.g[i*r+k] += ls.scale * dot(dw[i*ad.in:(i+1)*ad.in], ad.a.w[k*ad.in:(k+1)*ad.in])
			}
		})
		// ∂A[k,j] = s·Σ_i B[i,k]·∂W[i,j]
		parallel(r, func(k int) {
			g := ad.a.g[k*ad.in : (k+1)*ad.in]
			for i := range ad.o {
				c := ls.scale * ad.b.w[i*r+k]
				if c == 0 {
					continue
				}
				for j, d := range dw[i*ad.in : (i+1)*ad.in] {
					g[j] += c * d
				}
			}
		})
	}
}

func dot(a, b []float32) float32 {
	var s float32
	b = b[:len(a)]
	for i, v := range a {
		s += v * b[i]
	}
	return s
}
