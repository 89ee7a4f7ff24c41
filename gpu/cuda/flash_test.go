package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cuda"
)

// flashTol is the fused attention's tolerance at bf16: its worst error on
// an output, over that output's absmax (at least flashFloor: the exact dq
// and dk of T = 1 are 0, and bf16's noise on them is ~1e-6). q, k, v and
// dO are rounded to bf16 (8 bits of mantissa, 2⁻⁹ relative) and so are P
// and dS before their products; the sums are f32.
const flashTol, flashFloor = 3e-2, 1e-2

// flashCase is one shape of the fused attention's tests.
type flashCase struct {
	D, T, seqs, G int
	scale         float32
}

func (c flashCase) String() string {
	return fmt.Sprintf("D%d/T%d/seqs%d/G%d/scale%g", c.D, c.T, c.seqs, c.G, c.scale)
}

// flashRun runs CausalAttention and CausalAttentionBackward on d at its
// current precision over inputs from seed (kv heads 2, heads 2G) and
// returns out, dq, dk, dv.
func flashRun(t *testing.T, d *cuda.Device, c flashCase, seed uint64) [4][]float32 {
	t.Helper()
	const KV = 2
	H, N := KV*c.G, c.seqs*c.T
	r := rand.New(rand.NewPCG(seed, 7))
	var all []*gpu.Tensor
	defer func() {
		for _, x := range all {
			x.Free()
		}
	}()
	put := func(fill bool, shape ...int) *gpu.Tensor {
		t.Helper()
		n := 1
		for _, s := range shape {
			n *= s
		}
		v := make([]float32, n)
		for i := range v {
			if fill {
				v[i] = float32(2*r.Float64() - 1)
			} else {
				v[i] = float32(math.NaN()) // every element must be written
			}
		}
		x, err := gpu.FromHost(d, v, shape...)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, x)
		return x
	}
	q, k, v, dout := put(true, N, H, c.D), put(true, N, KV, c.D), put(true, N, KV, c.D), put(true, N, H, c.D)
	out, dq, dk, dv := put(false, N, H, c.D), put(false, N, H, c.D), put(false, N, KV, c.D), put(false, N, KV, c.D)
	if err := d.CausalAttention(out, q, k, v, c.T, c.scale); err != nil {
		t.Fatalf("%v: CausalAttention: %v", c, err)
	}
	if err := d.CausalAttentionBackward(dq, dk, dv, dout, q, k, v, c.T, c.scale); err != nil {
		t.Fatalf("%v: CausalAttentionBackward: %v", c, err)
	}
	var res [4][]float32
	for i, x := range []*gpu.Tensor{out, dq, dk, dv} {
		h, err := gpu.ToHost[float32](x)
		if err != nil {
			t.Fatal(err)
		}
		res[i] = h
	}
	return res
}

// flashErr is the worst |got − want| over max(absmax(want), flashFloor);
// a NaN anywhere is +Inf.
func flashErr(got, want []float32) float64 {
	var am, e float64
	for i := range want {
		am = max(am, math.Abs(float64(want[i])))
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		e = max(e, d)
	}
	return e / max(am, flashFloor)
}

// TestFlashAttention checks the fused attention (PrecisionBF16) against the
// GEMM path at PrecisionF32 on the same device and inputs, over head sizes
// 16, 32, 64 and 128, sequence lengths with partial tiles, one and three
// sequences, kv groups of 1, 2 and 4 and the default and another scale;
// both SLUICE_CUDA_FLASH_ATTN=atomic's dQ and the default deterministic
// one, which must also repeat bit for bit.
func TestFlashAttention(t *testing.T) {
	d := openConfig(t, cuda.DefaultConfig())
	on, det := "atomic", ""
	for _, D := range []int{16, 32, 64, 128} {
		has, _, err := cuda.FlashAttn(d, D, &on) // on even under SLUICE_CUDA_FLASH_ATTN=0
		if err != nil {
			t.Fatal(err)
		}
		if !has {
			t.Skipf("the loaded kernels have no flashFwd%d: build gpu/kernels (build.sh) and set SLUICE_CUDA_PTX", D)
		}
	}
	names := [4]string{"out", "dq", "dk", "dv"}
	worst := map[string]float64{}
	seed := uint64(1)
	for _, D := range []int{16, 32, 64, 128} {
		for _, T := range []int{1, 17, 64, 100, 256} {
			for _, seqs := range []int{1, 3} {
				for _, G := range []int{1, 2, 4} {
					for _, scale := range []float32{0, 0.3} {
						c := flashCase{D, T, seqs, G, scale}
						seed++
						if err := d.SetPrecision("f32"); err != nil {
							t.Fatal(err)
						}
						f0, o0 := cuda.AttnPaths(d)
						want := flashRun(t, d, c, seed)
						if err := d.SetPrecision("bf16"); err != nil {
							t.Fatal(err)
						}
						f1, o1 := cuda.AttnPaths(d)
						got := flashRun(t, d, c, seed)
						f2, o2 := cuda.AttnPaths(d)
						if f1 != f0 || o1 != o0+2 || f2 != f1+2 || o2 != o1 {
							t.Fatalf("%v: paths (flash, other) %d,%d → %d,%d (f32) → %d,%d (bf16): want the GEMM path at f32 and the fused one at bf16",
								c, f0, o0, f1, o1, f2, o2)
						}
						if _, _, err := cuda.FlashAttn(d, D, &det); err != nil {
							t.Fatal(err)
						}
						gotDet, again := flashRun(t, d, c, seed), flashRun(t, d, c, seed)
						if _, _, err := cuda.FlashAttn(d, D, &on); err != nil {
							t.Fatal(err)
						}
						for i := range got {
							for j, x := range gotDet[i] {
								if math.Float32bits(x) != math.Float32bits(again[i][j]) {
									t.Errorf("%v det %s: element %d is %v, then %v: want the same bits", c, names[i], j, x, again[i][j])
									break
								}
							}
							for _, m := range []struct {
								mode string
								v    []float32
							}{{"", got[i]}, {"det ", gotDet[i]}} {
								e := flashErr(m.v, want[i])
								key := fmt.Sprintf("D%d %s%s", D, m.mode, names[i])
								worst[key] = max(worst[key], e)
								if !(e <= flashTol) {
									t.Errorf("%v %s%s: worst error %.3g of the absmax, want ≤ %g", c, m.mode, names[i], e, flashTol)
								}
							}
						}
					}
				}
			}
		}
	}
	for _, D := range []int{16, 32, 64, 128} {
		for _, n := range []string{"out", "dq", "dk", "dv", "det dq", "det dk", "det dv"} {
			key := fmt.Sprintf("D%d %s", D, n)
			t.Logf("flash at bf16 vs GEMM at f32: %s worst error %.3g of the absmax (tolerance %g)", key, worst[key], flashTol)
		}
	}
}

// TestFlashAttnPath checks which path a call takes: the GEMM path at f32,
// under SLUICE_CUDA_FLASH_ATTN=0 and for a head size the fused kernels
// don't serve; the fused kernels at bf16 otherwise.
func TestFlashAttnPath(t *testing.T) {
	c := flashCase{D: 64, T: 17, seqs: 2, G: 2}
	t.Run("env0", func(t *testing.T) {
		t.Setenv("SLUICE_CUDA_FLASH_ATTN", "0")
		d := openConfig(t, cuda.DefaultConfig())
		if err := d.SetPrecision("bf16"); err != nil {
			t.Fatal(err)
		}
		flashRun(t, d, c, 1)
		if f, o := cuda.AttnPaths(d); f != 0 || o != 2 {
			t.Errorf("SLUICE_CUDA_FLASH_ATTN=0 at bf16: %d fused and %d other calls, want 0 and 2", f, o)
		}
	})
	t.Run("default", func(t *testing.T) {
		t.Setenv("SLUICE_CUDA_FLASH_ATTN", "")
		d := openConfig(t, cuda.DefaultConfig())
		flashRun(t, d, c, 1)
		if f, o := cuda.AttnPaths(d); f != 0 || o != 2 {
			t.Errorf("f32: %d fused and %d other calls, want 0 and 2", f, o)
		}
		has, mode, err := cuda.FlashAttn(d, c.D, nil)
		if err != nil {
			t.Fatal(err)
		}
		if mode != "" {
			t.Errorf("the fused attention's mode is %q without SLUICE_CUDA_FLASH_ATTN, want \"\"", mode)
		}
		if !has {
			t.Skip("the loaded kernels have no flashFwd64: build gpu/kernels (build.sh) and set SLUICE_CUDA_PTX")
		}
		if err := d.SetPrecision("bf16"); err != nil {
			t.Fatal(err)
		}
		flashRun(t, d, c, 1)
		if f, o := cuda.AttnPaths(d); f != 2 || o != 2 {
			t.Errorf("bf16, head size 64: %d fused and %d other calls, want 2 and 2", f, o)
		}
		flashRun(t, d, flashCase{D: 8, T: 17, seqs: 2, G: 2}, 1)
		if f, o := cuda.AttnPaths(d); f != 2 || o != 4 {
			t.Errorf("bf16, head size 8: %d fused and %d other calls, want 2 and 4", f, o)
		}
	})
}

// BenchmarkTrainAttention times the training attention at bench-1b's shape
// (4 sequences of 1024 tokens, 32 heads, 8 kv heads, head size 64) at
// PrecisionBF16, the GEMM path against the fused kernels (the backward
// with the default deterministic dQ, flash-det, and with atomics, flash), forward and backward. TFLOP/s counts the causal products only: 4·T(T+1)/2·D per
// head and sequence forward, 2.5 times that backward (FlashAttention's
// convention; the backward's recomputed forward is not counted).
func BenchmarkTrainAttention(b *testing.B) {
	const seqs, T, H, KV, D = 4, 1024, 32, 8, 64
	d := benchDevice(b)
	if err := d.SetPrecision("bf16"); err != nil {
		b.Fatal(err)
	}
	N := seqs * T
	q, k, v, dout := random(b, d, gpu.F32, N, H, D), random(b, d, gpu.F32, N, KV, D), random(b, d, gpu.F32, N, KV, D), random(b, d, gpu.F32, N, H, D)
	out, dq, dk, dv := random(b, d, gpu.F32, N, H, D), random(b, d, gpu.F32, N, H, D), random(b, d, gpu.F32, N, KV, D), random(b, d, gpu.F32, N, KV, D)
	fwdFlops := 4.0 * float64(T) * float64(T+1) / 2 * D * H * seqs
	for _, path := range []string{"gemm", "flash", "flash-det"} {
		mode := map[string]string{"gemm": "0", "flash": "atomic", "flash-det": ""}[path]
		on := mode != "0"
		has, _, err := cuda.FlashAttn(d, D, &mode)
		if err != nil {
			b.Fatal(err)
		}
		if on && !has {
			b.Logf("the loaded kernels have no flashFwd64: no flash benchmark (set SLUICE_CUDA_PTX)")
			continue
		}
		for _, dir := range []string{"fwd", "bwd"} {
			if path == "flash-det" && dir == "fwd" {
				continue // the forward is flash's
			}
			b.Run(path+"/"+dir, func(b *testing.B) {
				run := func() error { return d.CausalAttention(out, q, k, v, T, 0) }
				flops := fwdFlops
				if dir == "bwd" {
					run = func() error { return d.CausalAttentionBackward(dq, dk, dv, dout, q, k, v, T, 0) }
					flops *= 2.5
				}
				if err := run(); err != nil { // warm: lookups, scratch
					b.Fatal(err)
				}
				if err := d.Sync(); err != nil {
					b.Fatal(err)
				}
				f0, o0 := cuda.AttnPaths(d)
				b.ResetTimer()
				for range b.N {
					if err := run(); err != nil {
						b.Fatal(err)
					}
				}
				if err := d.Sync(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if f1, o1 := cuda.AttnPaths(d); (on && f1-f0 != b.N) || (!on && o1-o0 != b.N) {
					b.Fatalf("%s: %d fused and %d other calls for b.N %d", path, f1-f0, o1-o0, b.N)
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(sec*1e3, "ms/call")
				b.ReportMetric(flops/sec/1e12, "TFLOP/s")
			})
		}
	}
}
