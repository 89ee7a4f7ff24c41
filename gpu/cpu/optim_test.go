package cpu

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// TestOptimOps: AdamWStep, SGDStep and SumSquares on the device give gpu's
// reference loops bit for bit over buffers of several pool chunks (and a
// ragged last one), with and without gradient scaling; Zero clears; bad
// arguments are refused naming the tensor.
func TestOptimOps(t *testing.T) {
	d, err := New(Config{Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	gputest.CheckLeaks(t, d) // after the tensors' Free, which the cleanups below run first
	n := 3*optimChunk + 17
	r := rand.New(rand.NewPCG(1, 2))
	vec := func(scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * scale)
		}
		return v
	}
	up := func(v []float32) *gpu.Tensor {
		tt, err := gpu.FromHost(d, v, len(v))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tt.Free)
		return tt
	}
	down := func(tt *gpu.Tensor) []float32 {
		v, err := gpu.ToHost[float32](tt)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	same := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s[%d] = %v, reference %v", what, i, got[i], want[i])
			}
		}
	}
	for _, c := range []float32{0, 1, 0.37} {
		w, g, m, v := vec(1), vec(0.1), vec(0.01), vec(0.001)
		for i := range v {
			v[i] = float32(math.Abs(float64(v[i])))
		}
		wt, gt, mt, vt := up(w), up(g), up(m), up(v)
		h := gpu.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: 3, GradScale: c}
		if err := d.AdamWStep(wt, gt, mt, vt, h); err != nil {
			t.Fatal(err)
		}
		h.Apply(w, g, m, v)
		same("adamw w", down(wt), w)
		same("adamw m", down(mt), m)
		same("adamw v", down(vt), v)
		same("adamw g (read only)", down(gt), g)

		s := gpu.SGD{LR: 1e-2, Momentum: 0.9, WeightDecay: 0.01, Step: 2, GradScale: c}
		if err := d.SGDStep(wt, gt, mt, s); err != nil {
			t.Fatal(err)
		}
		s.Apply(w, g, m)
		same("sgd w", down(wt), w)
		same("sgd m", down(mt), m)
	}

	a, b := vec(1), vec(3)
	dst, err := d.Alloc(gpu.I32, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dst.Free)
	if err := d.SumSquares(dst, []*gpu.Tensor{up(a), up(b)}); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 16)
	if err := d.Download(raw, dst); err != nil {
		t.Fatal(err)
	}
	for j, v := range [][]float32{a, b} {
		if got, want := math.Float64frombits(binary.LittleEndian.Uint64(raw[8*j:])), gpu.SumSquares(v); got != want {
			t.Errorf("SumSquares[%d] = %v, reference %v", j, got, want)
		}
	}

	z := up(vec(1))
	if err := d.Zero(z); err != nil {
		t.Fatal(err)
	}
	if got := down(z); slices.ContainsFunc(got, func(f float32) bool { return f != 0 }) {
		t.Errorf("Zero left a non-zero element")
	}

	short := up(vec(1)[:10])
	err = d.AdamWStep(up(w0(n)), short, up(w0(n)), up(w0(n)), gpu.AdamW{Step: 1})
	if !errors.Is(err, gpu.ErrShape) {
		t.Errorf("AdamWStep with a short g: %v, want ErrShape", err)
	}
	if err := d.SumSquares(dst, []*gpu.Tensor{z}); !errors.Is(err, gpu.ErrShape) {
		t.Errorf("SumSquares with dst of 4 words for 1 source: %v, want ErrShape", err)
	}
}

func w0(n int) []float32 { return make([]float32, n) }
