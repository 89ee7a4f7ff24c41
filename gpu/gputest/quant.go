package gputest

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

// qcase is one quantized weight on the host and its float32 dequantization,
// computed here from the definitions in gpu.QuantFormat.
type qcase struct {
	w             gpu.QuantWeight
	data          []byte // F8E4M3
	words         []int32
	scales, zeros []float32
	groups        []int32
	ngroups, segs int
	deq           []float32
}

// qcase draws a weight; actOrder for FP8 means one scale for the tensor.
func (e *env) qcase(f gpu.QuantFormat, n, k, group, segs int, actOrder bool) *qcase {
	q := &qcase{}
	q.deq = make([]float32, n*k)
	if f == gpu.QuantFP8 {
		q.data = make([]byte, n*k)
		q.scales = make([]float32, n)
		for r := range n {
			q.scales[r] = float32(0.001 + e.rng.Float64()*0.01)
			if actOrder && r > 0 {
				q.scales[r] = q.scales[0]
			}
			for c := range k {
				b := byte(e.rng.IntN(256))
				if b&0x7f == 0x7f { // no NaNs
					b--
				}
				q.data[r*k+c] = b
				q.deq[r*k+c] = gpu.Float8E4M3(b).Float32() * q.scales[r]
			}
		}
		q.w = gpu.QuantWeight{Format: f, N: n, K: k,
			Data: e.bytes(gpu.F8E4M3, q.data, n, k), Scales: e.tensor(gpu.F32, q.scales, n)}
		return q
	}
	q.ngroups, q.segs = k/group, segs
	q.words = make([]int32, n*k/8)
	q.scales = make([]float32, n*q.ngroups)
	q.zeros = make([]float32, n*q.ngroups)
	q.groups = make([]int32, segs*k)
	for s := range segs {
		perm := e.rng.Perm(k)
		for c := range k {
			if actOrder {
				q.groups[s*k+perm[c]] = int32(c / group)
			} else {
				q.groups[s*k+c] = int32(c / group)
			}
		}
	}
	for i := range q.scales {
		q.scales[i] = float32(0.001 + e.rng.Float64()*0.01)
		q.zeros[i] = float32(e.rng.IntN(17)) // 16: GPTQ's stored −1 read back
	}
	for r := range n {
		band := r / (n / segs)
		for c := range k {
			v := e.rng.IntN(16)
			q.words[r*k/8+c/8] |= int32(uint32(v) << (4 * (c % 8)))
			g := int(q.groups[band*k+c])
			q.deq[r*k+c] = (float32(v) - q.zeros[r*q.ngroups+g]) * q.scales[r*q.ngroups+g]
		}
	}
	q.w = gpu.QuantWeight{Format: f, N: n, K: k,
		Data:   e.ints(q.words, n, k/8),
		Scales: e.tensor(gpu.F32, q.scales, n, q.ngroups),
		Zeros:  e.tensor(gpu.F32, q.zeros, n, q.ngroups),
		Groups: e.ints(q.groups, segs, k)}
	return q
}

func (e *env) bytes(dt gpu.DType, data []byte, shape ...int) *gpu.Tensor {
	e.t.Helper()
	x := e.alloc(dt, shape...)
	e.must(e.dev.Upload(x, data))
	return x
}

// QuantRounder is implemented by a gpu.QuantOps whose QMatMul rounds more
// than the float32 dequantized weight for speed, so that the suite holds it
// to the tolerance of what it rounds instead of the exact one.
type QuantRounder interface {
	// QuantRounding reports what QMatMul of m rows of a (of dtype adt) by
	// w rounds: a to E4M3 with one scale per row, absmax/448 (fp8Act), or
	// the dequantized weight to adt (weight).
	QuantRounding(m int, adt gpu.DType, w *gpu.QuantWeight) (fp8Act, weight bool)
}

// QMatMul runs the QMatMul conformance test alone, for backends that test
// several configurations of their quantized product.
func QMatMul(t *testing.T, open func(t *testing.T) gpu.Device) {
	testQMatMul(Suite{Open: open}.env(t))
}

func testQMatMul(e *env) {
	qo, ok := e.ops.(gpu.QuantOps)
	if !ok {
		e.t.Skipf("%s has no gpu.QuantOps", e.dev.Name())
	}
	type shape struct{ m, n, k, group, segs int }
	for _, s := range []shape{{1, 8, 128, 128, 1}, {3, 24, 256, 128, 2}, {17, 40, 384, 128, 1}, {70, 33, 64, 32, 1}, {5, 64, 96, 32, 4}, {33, 48, 256, 64, 3}} {
		for _, f := range []gpu.QuantFormat{gpu.QuantFP8, gpu.QuantInt4} {
			for _, act := range []bool{false, true} {
				for _, dt := range []gpu.DType{gpu.F32, gpu.BF16} {
					// FP8 with act: one scale for the tensor and no bias.
					name := fmt.Sprintf("%v/%dx%dx%d/g%d/segs%d/act%v/%v", f, s.m, s.n, s.k, s.group, s.segs, act, dt)
					e.run(name, func(e *env) {
						q := e.qcase(f, s.n, s.k, s.group, s.segs, act)
						a := e.values(dt, s.m*s.k, 1)
						bias := e.values(gpu.F32, s.n, 0.1)
						bt := e.tensor(gpu.F32, bias, s.n)
						if f == gpu.QuantFP8 && act {
							bias, bt = nil, nil
						}
						c := e.poison(dt, s.m, s.n)
						e.must(qo.QMatMul(c, e.tensor(dt, a, s.m, s.k), &q.w, bt))
						want, mag := refMatMul(a, q.deq, bias, s.m, s.n, s.k)
						var fp8Act, wround bool
						if r, ok := qo.(QuantRounder); ok {
							fp8Act, wround = r.QuantRounding(s.m, dt, &q.w)
							e.t.Logf("rounds a to fp8: %v, the weight to %v: %v", fp8Act, dt, wround)
						}
						tol := make([]float64, len(want))
						for i := range want {
							tol[i] = unit(dt)*math.Abs(want[i]) + float64(s.k+2)*0x1p-24*mag[i] + tiny
							if wround {
								tol[i] += unit(dt) * mag[i]
							}
							if fp8Act {
								// Each a·w term is off by at most 2⁻⁴ of itself
								// (3 mantissa bits), or by half a subnormal step
								// of a's scale, 2⁻¹⁰·absmax/448, times |w|.
								col := i % s.n
								var amax, wsum float64 // amax over all of a: per-tensor scales too
								for _, v := range a {
									amax = max(amax, math.Abs(float64(v)))
								}
								for _, v := range q.deq[col*s.k : (col+1)*s.k] {
									wsum += math.Abs(float64(v))
								}
								tol[i] += 0x1p-4*mag[i] + 0x1p-10*amax/448*wsum
							}
						}
						e.near("c", e.get(c), want, tol)
					})
				}
			}
		}
	}
	e.run("errors", func(e *env) {
		q := e.qcase(gpu.QuantInt4, 8, 64, 32, 1, true)
		a := e.tensor(gpu.F32, e.values(gpu.F32, 64, 1), 1, 64)
		c := e.alloc(gpu.F32, 1, 8)
		bad := q.w
		bad.Scales = e.alloc(gpu.F32, 8, 3)
		if err := qo.QMatMul(c, a, &bad, nil); !errors.Is(err, gpu.ErrShape) || !strings.Contains(err.Error(), "zeros") {
			e.t.Errorf("scales [8 3] with zeros [8 2]: %v, want ErrShape naming zeros", err)
		}
		bad = q.w
		g := append([]int32(nil), q.groups...)
		g[5] = 2
		bad.Groups = e.ints(g, 1, 64)
		if err := qo.QMatMul(c, a, &bad, nil); !errors.Is(err, gpu.ErrIndex) {
			e.t.Errorf("group index 2 of 2 groups: %v, want ErrIndex", err)
		}
		if err := qo.QMatMul(e.alloc(gpu.F32, 1, 7), a, &q.w, nil); !errors.Is(err, gpu.ErrShape) {
			e.t.Errorf("c [1 7] for n 8: %v, want ErrShape", err)
		}
	})
}
