package cuda_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// TestOptimOpsVsCPU: AdamWStep and SGDStep on cuda give the cpu device's
// results bit for bit (both round every operation as gpu's reference loops
// do), over sizes that exercise the grid-stride loop, with and without
// clipping's scale and weight decay; SumSquares agrees with the cpu's to
// 1e-12 relative (another summation order) and Zero clears.
func TestOptimOpsVsCPU(t *testing.T) {
	dev := open(t)
	host, err := gpu.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	gputest.CheckLeaks(t, dev)
	oc, oh := dev.Ops().(gpu.OptimOps), host.Ops().(gpu.OptimOps)
	r := rand.New(rand.NewPCG(5, 6))
	var all []*gpu.Tensor
	defer func() {
		for _, x := range all {
			x.Free()
		}
	}()
	up := func(d gpu.Device, v []float32) *gpu.Tensor {
		x, err := gpu.FromHost(d, v, len(v))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, x)
		return x
	}
	down := func(x *gpu.Tensor) []float32 {
		v, err := gpu.ToHost[float32](x)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, n := range []int{1, 1000, 5_000_003} {
		vec := func(s float64, abs bool) []float32 {
			v := make([]float32, n)
			for i := range v {
				f := r.NormFloat64() * s
				if abs {
					f = math.Abs(f)
				}
				v[i] = float32(f)
			}
			return v
		}
		for _, c := range []float32{1, 0.25} {
			for _, wd := range []float64{0, 0.1} {
				w, g, m, v := vec(1, false), vec(0.1, false), vec(0.01, false), vec(1e-4, true)
				cw, cg, cm, cv := up(dev, w), up(dev, g), up(dev, m), up(dev, v)
				hw, hg, hm, hv := up(host, w), up(host, g), up(host, m), up(host, v)
				a := gpu.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: wd, Step: 7, GradScale: c}
				if err := oc.AdamWStep(cw, cg, cm, cv, a); err != nil {
					t.Fatal(err)
				}
				if err := oh.AdamWStep(hw, hg, hm, hv, a); err != nil {
					t.Fatal(err)
				}
				s := gpu.SGD{LR: 1e-2, Momentum: 0.9, WeightDecay: wd, Step: 2, GradScale: c}
				if err := oc.SGDStep(cw, cg, cm, s); err != nil {
					t.Fatal(err)
				}
				if err := oh.SGDStep(hw, hg, hm, s); err != nil {
					t.Fatal(err)
				}
				for name, pr := range map[string][2]*gpu.Tensor{"w": {cw, hw}, "m": {cm, hm}, "v": {cv, hv}} {
					gc, gh := down(pr[0]), down(pr[1])
					for i := range gh {
						if math.Float32bits(gc[i]) != math.Float32bits(gh[i]) {
							t.Fatalf("n %d c %v wd %v: %s[%d] cuda %v, cpu %v", n, c, wd, name, i, gc[i], gh[i])
						}
					}
				}
			}
		}
		a, b := vec(1, false), vec(3, false)
		srcs := []*gpu.Tensor{up(dev, a), up(dev, b)}
		dst, err := dev.Alloc(gpu.I32, 4)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, dst)
		if err := oc.SumSquares(dst, srcs); err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, 16)
		if err := dev.Download(raw, dst); err != nil {
			t.Fatal(err)
		}
		for j, v := range [][]float32{a, b} {
			got, want := math.Float64frombits(binary.LittleEndian.Uint64(raw[8*j:])), gpu.SumSquares(v)
			if math.Abs(got-want) > 1e-12*want {
				t.Errorf("n %d: SumSquares[%d] = %v, cpu order %v", n, j, got, want)
			}
		}
		if err := oc.Zero(srcs[0]); err != nil {
			t.Fatal(err)
		}
		for i, f := range down(srcs[0]) {
			if f != 0 {
				t.Fatalf("n %d: Zero left element %d = %v", n, i, f)
			}
		}
	}
}
