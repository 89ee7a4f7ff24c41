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
	// w, with a bias or without, rounds: a to E4M3 (actRows > 0), each
	// band of actRows rows with the scale s = max(absmax/448, 2⁻⁹/448) of
	// its absmax, as RoundFP8Act does; and the dequantized weight to adt
	// (weight).
	QuantRounding(m int, adt gpu.DType, w *gpu.QuantWeight, hasBias bool) (actRows int, weight bool)
}

// RoundFP8Act rounds a (rows of k) in place as W8A8 products quantize
// their activations (vLLM's dynamic scheme): each band of rows rows (1:
// per token; all of a: per tensor) gets s = max(absmax/448, 2⁻⁹/448), and
// each element becomes E4M3(a/s)·s, a/s in float32 rounded to nearest even
// and saturated at ±448. The E4M3 × E4M3 products of such an a and an FP8
// weight are exact in float32, so a device that rounds a so differs from
// a float product of the rounded a only in its accumulation.
func RoundFP8Act(a []float32, k, rows int) {
	for b0 := 0; b0 < len(a); b0 += rows * k {
		band := a[b0:min(len(a), b0+rows*k)]
		var amax float32
		for _, v := range band {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		s := max(amax/gpu.MaxFloat8E4M3, 1/(gpu.MaxFloat8E4M3*512))
		for i, v := range band {
			band[i] = gpu.ToFloat8E4M3(v/s).Float32() * s
		}
	}
}

// fp8AccumTol is the accumulation error allowed an FP8 tensor-core product
// beyond float32's, as a fraction of Σ|a·w|. Hopper's FP8 MMA keeps about
// 14 bits of its running sum (DeepSeek-V3's report; cuBLASLt without fast
// accumulation adds partial sums in float32 now and then): truncating at
// 2⁻¹³ of the running sum on every one of k ≤ 384 additions, with no
// float32 promotion at all, costs about 2⁻¹⁴·Σ√i ≈ 2⁻¹⁰ of Σ|a·w| for
// random terms, a quarter of this bound. A wrong or missing weight or
// activation scale is off by far more (a scale of its own per run is a
// factor of 1.5 or more here); rounding a per token where the device
// rounds per tensor, or the reverse, moves each term by up to 2⁻⁴ of
// itself, about this bound in all.
const fp8AccumTol = 0x1p-8

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
	for _, s := range []shape{{1, 8, 128, 128, 1}, {3, 24, 256, 128, 2}, {17, 40, 384, 128, 1}, {70, 33, 64, 32, 1}, {5, 64, 96, 32, 4}, {33, 48, 256, 64, 3}, {150, 200, 512, 128, 2}} {
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
						var actRows int
						var wround bool
						if r, ok := qo.(QuantRounder); ok {
							actRows, wround = r.QuantRounding(s.m, dt, &q.w, bt != nil)
							e.t.Logf("rounds a to fp8 in bands of %d rows (0: not at all), the weight to %v: %v", actRows, dt, wround)
						}
						ra := a
						if actRows > 0 {
							// The reference of the rounded a: exact but for
							// the accumulation (RoundFP8Act).
							ra = append([]float32(nil), a...)
							RoundFP8Act(ra, s.k, actRows)
						}
						want, mag := refMatMul(ra, q.deq, bias, s.m, s.n, s.k)
						tol := make([]float64, len(want))
						for i := range want {
							tol[i] = unit(dt)*math.Abs(want[i]) + float64(s.k+2)*0x1p-24*mag[i] + tiny
							if wround {
								tol[i] += unit(dt) * mag[i]
							}
							if actRows > 0 {
								tol[i] += fp8AccumTol * mag[i]
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
