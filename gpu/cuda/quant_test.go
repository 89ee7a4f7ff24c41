package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"unsafe"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// TestTrampoline16 calls libc's snprintf with 16 arguments (buffer, size,
// format and 13 integers, ten of them on the stack) through the trampoline
// that cublasLtMatmul's call goes through, on any amd64 machine.
func TestTrampoline16(t *testing.T) {
	if runtime.GOARCH != "amd64" || runtime.GOOS != "linux" {
		t.Skip("the trampoline is amd64 Linux code")
	}
	snprintf := libcSym(t, "snprintf")
	tramp, err := trampoline16()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128)
	format := cString("%d %d %d %d %d %d %d %d %d %d %d %d %d")
	args := [16]uintptr{uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&format[0]))}
	for i := 3; i < 16; i++ {
		args[i] = uintptr(100 + i)
	}
	var block [17]uintptr
	n := call16(tramp, snprintf, &block, args)
	runtime.KeepAlive(buf)
	runtime.KeepAlive(format)
	want := "103 104 105 106 107 108 109 110 111 112 113 114 115"
	if got := goString(&buf[0]); got != want || int(int32(n)) != len(want) {
		t.Errorf("snprintf through the trampoline = %q (%d), want %q (%d)", got, int32(n), want, len(want))
	}
}

// openForced opens the GPU with QMatMul's path forced (quantAuto: the
// device's own choice), or skips where there is none.
func openForced(t *testing.T, path quantPath) *Device {
	t.Helper()
	d, err := New(DefaultConfig())
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("no CUDA GPU here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	quantOf(d).force = path
	return d
}

// TestQuantPaths runs the QMatMul conformance test with each of QMatMul's
// paths forced for every shape: gemv and tile against the exact tolerance
// (widened by bf16 for tile's bf16 band), lt (FP8 weights whose shapes it
// takes) against the tolerance of rounding a to E4M3.
func TestQuantPaths(t *testing.T) {
	d := openForced(t, quantAuto)
	t.Logf("device: %v", d)
	for _, p := range []quantPath{quantAuto, quantGemv, quantLt, quantLtRow, quantTile, quantMMA} {
		t.Run(p.String(), func(t *testing.T) {
			gputest.QMatMul(t, func(t *testing.T) gpu.Device { return openForced(t, p) })
		})
	}
}

// qweight uploads a random weight of format f [n, k] (int4: groups of 64,
// act_order in two bands; FP8: runs > 0 equal bands of rows, each with one
// scale, else a random scale per row).
func qweight(t *testing.T, d *Device, r *rand.Rand, f gpu.QuantFormat, n, k int, runs int) *gpu.QuantWeight {
	t.Helper()
	up := func(x *gpu.Tensor, err error) *gpu.Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	w := &gpu.QuantWeight{Format: f, N: n, K: k}
	t.Cleanup(w.Free)
	if f == gpu.QuantFP8 {
		b := make([]uint8, n*k)
		for i := range b {
			if b[i] = uint8(r.IntN(256)); b[i]&0x7f == 0x7f {
				b[i]--
			}
		}
		data := up(d.Alloc(gpu.F8E4M3, n, k))
		if err := d.Upload(data, b); err != nil {
			t.Fatal(err)
		}
		s := make([]float32, n)
		for i := range s {
			if s[i] = 0.001 + r.Float32()*0.01; runs > 0 {
				s[i] = 0.004 * float32(1+i*runs/n)
			}
		}
		w.Data, w.Scales = data, up(gpu.FromHost(d, s, n))
		return w
	}
	w, _ = int4Weight(t, d, r, n, k, 64, 2, true, false)
	return w
}

// TestQuantCapture records QMatMul on every path in a CUDA graph and
// requires the replay's output, on inputs uploaded after the capture, to
// equal the eager output bit for bit: the scratch comes from the graph's
// arena and nothing is allocated or synchronized during the capture (the
// capture fails if it is).
func TestQuantCapture(t *testing.T) {
	for _, c := range []struct {
		path    quantPath
		f       gpu.QuantFormat
		m       int
		runs    int  // FP8 weight scales in this many runs of equal ones
		uniform bool // and no bias: the scaled lt product
	}{{quantGemv, gpu.QuantFP8, 5, 0, false}, {quantGemv, gpu.QuantInt4, 8, 0, false}, {quantLt, gpu.QuantFP8, 40, 0, false},
		{quantLt, gpu.QuantFP8, 40, 1, true}, {quantLt, gpu.QuantFP8, 40, 2, true}, {quantTile, gpu.QuantFP8, 24, 0, false},
		{quantTile, gpu.QuantInt4, 33, 0, false}, {quantAuto, gpu.QuantInt4, 300, 0, false}} {
		t.Run(fmt.Sprintf("%v/%v/m%d/runs%d", c.path, c.f, c.m, c.runs), func(t *testing.T) {
			d := openForced(t, c.path)
			gputest.CheckLeaks(t, d)
			r := rand.New(rand.NewPCG(3, uint64(c.m)))
			const n, k = 96, 256
			w := qweight(t, d, r, c.f, n, k, c.runs)
			a, _ := d.Alloc(gpu.BF16, c.m, k)
			out, _ := d.Alloc(gpu.BF16, c.m, n)
			bias, _ := d.Alloc(gpu.F32, n)
			defer a.Free()
			defer out.Free()
			defer bias.Free()
			input := func() {
				v := make([]float32, c.m*k)
				for i := range v {
					v[i] = float32(r.NormFloat64())
				}
				if err := gpu.UploadF32(a, v); err != nil {
					t.Fatal(err)
				}
				bv := make([]float32, n)
				for i := range bv {
					bv[i] = float32(r.NormFloat64())
				}
				if err := gpu.UploadF32(bias, bv); err != nil {
					t.Fatal(err)
				}
			}
			get := func() []float32 {
				v := make([]float32, c.m*n)
				if err := gpu.DownloadF32(v, out); err != nil {
					t.Fatal(err)
				}
				return v
			}
			input()
			b := bias
			if c.uniform {
				b = nil
			}
			if err := d.QMatMul(out, a, w, b); err != nil {
				t.Fatal(err)
			}
			g, err := d.Capture(func() error { return d.QMatMul(out, a, w, b) })
			if err != nil {
				t.Fatal(err)
			}
			defer g.Free()
			if q := quantOf(d); c.uniform && q.lt != nil && q.scaledCalls == 0 {
				t.Errorf("one FP8 scale and no bias: no product took the scaled lt path")
			} else {
				t.Logf("scaled lt products: %d (cuBLASLt: %v)", q.scaledCalls, q.ltErr)
			}
			for round := range 2 {
				input()
				if err := d.QMatMul(out, a, w, b); err != nil {
					t.Fatal(err)
				}
				eager := get()
				if err := gpu.UploadF32(out, nanSlice(c.m*n)); err != nil {
					t.Fatal(err)
				}
				if err := g.Launch(); err != nil {
					t.Fatal(err)
				}
				replay := get()
				for i := range eager {
					if math.Float32bits(eager[i]) != math.Float32bits(replay[i]) || math.IsNaN(float64(eager[i])) {
						t.Fatalf("round %d: c[%d] replayed %v, eager %v", round, i, replay[i], eager[i])
					}
				}
				if !c.uniform {
					continue
				}
				// The scaled lt product against gemv's exact one, by
				// norm: rounding a to E4M3 is off by about 2⁻⁴/√3 of
				// each term, a wrong run scale by a third or more.
				q := quantOf(d)
				q.force = quantGemv
				if err := d.QMatMul(out, a, w, b); err != nil {
					t.Fatal(err)
				}
				q.force = c.path
				exact := get()
				var num, den float64
				for i := range exact {
					e := float64(eager[i]) - float64(exact[i])
					num, den = num+e*e, den+float64(exact[i])*float64(exact[i])
				}
				if rel := math.Sqrt(num / den); !(rel < 0.08) {
					t.Errorf("round %d: scaled lt product off gemv's by %.3g of its norm, want < 0.08", round, rel)
				} else {
					t.Logf("round %d: scaled lt product off gemv's by %.3g of its norm", round, rel)
				}
			}
		})
	}
}

func nanSlice(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

// BenchmarkQMatMul times QMatMul (auto path) on bench-8b's gate_up shape
// (n 28672, k 4096) with a bf16, against MatMul with the bf16 weight of the
// same shape: go test -run X -bench QMatMul -benchtime 20x (GPU machine).
func BenchmarkQMatMul(b *testing.B) {
	d, err := New(DefaultConfig())
	if errors.Is(err, ErrUnavailable) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	const n, k = 28672, 4096
	r := rand.New(rand.NewPCG(5, 6))
	for _, m := range []int{1, 8, 64, 256, 1024, 2048} {
		a, _ := d.Alloc(gpu.BF16, m, k)
		c, _ := d.Alloc(gpu.BF16, m, n)
		v := make([]float32, m*k)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		if err := gpu.UploadF32(a, v); err != nil {
			b.Fatal(err)
		}
		wb, _ := d.Alloc(gpu.BF16, n, k)
		wv := make([]float32, n*k)
		for i := range wv {
			wv[i] = float32(r.NormFloat64() * 0.02)
		}
		if err := gpu.UploadF32(wb, wv); err != nil {
			b.Fatal(err)
		}
		run := func(name string, fn func() error) {
			b.Run(fmt.Sprintf("%s/m%d", name, m), func(b *testing.B) {
				for range 3 {
					if err := fn(); err != nil {
						b.Fatal(err)
					}
				}
				if err := d.Sync(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if err := fn(); err != nil {
						b.Fatal(err)
					}
				}
				if err := d.Sync(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(2*float64(m)*n*k*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
			})
		}
		run("bf16", func() error { return d.MatMul(c, a, wb, nil) })
		q := quantOf(d)
		for _, f := range []gpu.QuantFormat{gpu.QuantFP8, gpu.QuantInt4} {
			w := benchWeight(b, d, r, f, n, k)
			run(f.String(), func() error { return d.QMatMul(c, a, w, nil) })
			if f == gpu.QuantInt4 {
				// Each int4 path forced (auto above).
				for _, p := range []quantPath{quantMMA, quantTile, quantGemv} {
					if p == quantGemv && m > qgRows {
						continue
					}
					q.force = p
					run(f.String()+"/"+p.String(), func() error { return d.QMatMul(c, a, w, nil) })
					q.force = quantAuto
				}
			}
			w.Free()
		}
		a.Free()
		c.Free()
		wb.Free()
	}
}

// benchWeight is qweight for a benchmark (int4: groups of 128, in order).
func benchWeight(b *testing.B, d *Device, r *rand.Rand, f gpu.QuantFormat, n, k int) *gpu.QuantWeight {
	must := func(x *gpu.Tensor, err error) *gpu.Tensor {
		if err != nil {
			b.Fatal(err)
		}
		return x
	}
	w := &gpu.QuantWeight{Format: f, N: n, K: k}
	if f == gpu.QuantFP8 {
		bs := make([]uint8, n*k)
		for i := range bs {
			bs[i] = uint8(r.IntN(0x7e))
		}
		w.Data = must(d.Alloc(gpu.F8E4M3, n, k))
		if err := d.Upload(w.Data, bs); err != nil {
			b.Fatal(err)
		}
		s := make([]float32, n)
		for i := range s {
			s[i] = 0.001
		}
		w.Scales = must(gpu.FromHost(d, s, n))
		return w
	}
	g := k / 128
	words := make([]int32, n*k/8)
	for i := range words {
		words[i] = int32(r.Uint32())
	}
	s, z := make([]float32, n*g), make([]float32, n*g)
	for i := range s {
		s[i], z[i] = 0.001, 8
	}
	groups := make([]int32, k)
	for c := range groups {
		groups[c] = int32(c / 128)
	}
	w.Data, w.Scales, w.Zeros = must(gpu.FromHost(d, words, n, k/8)), must(gpu.FromHost(d, s, n, g)), must(gpu.FromHost(d, z, n, g))
	w.Groups = must(gpu.FromHost(d, groups, 1, k))
	return w
}

// TestQuantMMA checks the int4 mma path (qMMA) against the gemv path's
// product with the dequantized weight held in f32, and both against a
// float64 one on the host, on shapes that cover its row tiles (16, 32 and
// 64 rows a block), partial tiles of rows and of weight rows, k split over
// blocks, group sizes 64, 128 and k, merged bands and both output dtypes;
// weights it does not take (act_order, zeros that are not integers, an f32
// a) must go to another path and still be right.
func TestQuantMMA(t *testing.T) {
	d := openForced(t, quantMMA)
	q := quantOf(d)
	type tcase struct {
		m, n, k, gs, segs int
		act, fracZero     bool
		adt, cdt          gpu.DType
		bias              bool
	}
	cases := []tcase{
		{1, 200, 512, 128, 1, false, false, gpu.BF16, gpu.BF16, true},
		{5, 130, 256, 64, 1, false, false, gpu.BF16, gpu.F32, false},
		{16, 384, 1024, 128, 2, false, false, gpu.BF16, gpu.BF16, false},
		{17, 256, 512, 128, 1, false, false, gpu.BF16, gpu.F32, true},
		{33, 128, 256, 256, 1, false, false, gpu.BF16, gpu.BF16, true},
		{64, 96, 512, 128, 1, false, false, gpu.BF16, gpu.F32, false},
		{150, 200, 640, 128, 1, false, false, gpu.BF16, gpu.BF16, true},
		{300, 520, 1024, 64, 4, false, false, gpu.BF16, gpu.F32, true},
		{40, 128, 256, 128, 2, true, false, gpu.BF16, gpu.F32, false},
		{40, 128, 256, 128, 1, false, true, gpu.BF16, gpu.F32, false},
		{40, 128, 256, 128, 1, false, false, gpu.F32, gpu.F32, false},
	}
	for i, c := range cases {
		name := fmt.Sprintf("m%d/n%d/k%d/g%d/segs%d/act%v/frac%v/%v→%v/bias%v", c.m, c.n, c.k, c.gs, c.segs, c.act, c.fracZero, c.adt, c.cdt, c.bias)
		t.Run(name, func(t *testing.T) {
			gputest.CheckLeaks(t, d)
			r := rand.New(rand.NewPCG(11, uint64(i)))
			w, deq := int4Weight(t, d, r, c.n, c.k, c.gs, c.segs, c.act, c.fracZero)
			av := make([]float32, c.m*c.k)
			for j := range av {
				av[j] = float32(r.NormFloat64())
				if c.adt == gpu.BF16 {
					av[j] = gpu.ToBFloat16(av[j]).Float32()
				}
			}
			bv := make([]float32, c.n)
			for j := range bv {
				bv[j] = float32(r.NormFloat64())
			}
			a := must(t)(gpu.FromHost(d, av, c.m, c.k))
			defer a.Free()
			if c.adt == gpu.BF16 {
				ab := must(t)(d.Alloc(gpu.BF16, c.m, c.k))
				defer ab.Free()
				if err := gpu.UploadF32(ab, av); err != nil {
					t.Fatal(err)
				}
				a = ab
			}
			var bias *gpu.Tensor
			if c.bias {
				bias = must(t)(gpu.FromHost(d, bv, c.n))
				defer bias.Free()
			}
			out := must(t)(d.Alloc(c.cdt, c.m, c.n))
			defer out.Free()
			get := func(p quantPath) ([]float32, bool) {
				t.Helper()
				if err := gpu.UploadF32(out, nanSlice(c.m*c.n)); err != nil {
					t.Fatal(err)
				}
				q.force = p
				defer func() { q.force = quantMMA }()
				calls := q.mmaCalls
				if err := d.QMatMul(out, a, w, bias); err != nil {
					t.Fatal(err)
				}
				v := make([]float32, c.m*c.n)
				if err := gpu.DownloadF32(v, out); err != nil {
					t.Fatal(err)
				}
				return v, q.mmaCalls > calls
			}
			got, took := get(quantMMA)
			if want := !c.act && !c.fracZero && c.adt == gpu.BF16; took != want {
				t.Fatalf("the mma path took the product: %v, want %v", took, want)
			}
			exact, _ := get(quantGemv)
			unit := 0.0
			if c.cdt == gpu.BF16 {
				unit = 0x1p-8
			}
			worst := 0.0
			for row := range c.m {
				for col := range c.n {
					ref, mag := 0.0, 0.0
					if c.bias {
						ref, mag = float64(bv[col]), math.Abs(float64(bv[col]))
					}
					for j := range c.k {
						x := float64(av[row*c.k+j]) * float64(deq[col*c.k+j])
						ref, mag = ref+x, mag+math.Abs(x)
					}
					tol := float64(c.k+16)*0x1p-24*mag + unit*math.Abs(ref) + 1e-30
					for _, v := range []struct {
						path string
						x    float32
					}{{"mma", got[row*c.n+col]}, {"gemv", exact[row*c.n+col]}} {
						e := math.Abs(float64(v.x) - ref)
						if !(e <= tol) {
							t.Fatalf("%s: c[%d][%d] = %v, want %v (tolerance %.3g)", v.path, row, col, v.x, ref, tol)
						}
						worst = max(worst, e/tol)
					}
				}
			}
			t.Logf("worst error / tolerance %.3g (mma path: %v)", worst, took)
		})
	}
}

// int4Weight uploads a random int4 weight [n, k] with groups of gs columns
// in segs bands (act: each band's columns in groups of a random
// permutation, as GPTQ's act_order; else column c in group c / gs), zeros
// integers in [0, 15] (fracZero: one of them 7.5), and returns it with
// its dequantized values [n, k].
func int4Weight(t *testing.T, d *Device, r *rand.Rand, n, k, gs, segs int, act, fracZero bool) (*gpu.QuantWeight, []float32) {
	t.Helper()
	g := k / gs
	words := make([]int32, n*k/8)
	for i := range words {
		words[i] = int32(r.Uint32())
	}
	s, z := make([]float32, n*g), make([]float32, n*g)
	for i := range s {
		s[i], z[i] = 0.001+r.Float32()*0.01, float32(r.IntN(16))
	}
	if fracZero {
		z[len(z)/2] = 7.5
	}
	groups := make([]int32, segs*k)
	for b := range segs {
		for c := range k {
			groups[b*k+c] = int32(c / gs)
		}
		if act {
			for c, p := range r.Perm(k) {
				groups[b*k+p] = int32(c / gs)
			}
		}
	}
	deq := make([]float32, n*k)
	for row := range n {
		for c := range k {
			nib := float32(uint32(words[(row*k+c)/8]) >> (4 * (c % 8)) & 15)
			gi := int(groups[row/(n/segs)*k+c])
			deq[row*k+c] = (nib - z[row*g+gi]) * s[row*g+gi]
		}
	}
	w := &gpu.QuantWeight{Format: gpu.QuantInt4, N: n, K: k}
	t.Cleanup(w.Free)
	w.Data = must(t)(gpu.FromHost(d, words, n, k/8))
	w.Scales, w.Zeros = must(t)(gpu.FromHost(d, s, n, g)), must(t)(gpu.FromHost(d, z, n, g))
	w.Groups = must(t)(gpu.FromHost(d, groups, segs, k))
	return w, deq
}

// must returns a function that fails t on an error and returns x.
func must(t *testing.T) func(x *gpu.Tensor, err error) *gpu.Tensor {
	return func(x *gpu.Tensor, err error) *gpu.Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
}
