package cuda_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/gputest"
	"github.com/sluicehq/sluice/gpu/kernels"
)

// TestLoRAKernelsBuilt checks, without a GPU, that the embedded PTX of
// every architecture has the LoRA kernels (looked up on the first LoRA
// call, not at New). It fails until the PTX is rebuilt from lora.cuh.
func TestLoRAKernelsBuilt(t *testing.T) {
	for _, cc := range [][2]int{{8, 0}, {9, 0}} {
		ptx := kernels.PTX(cc[0], cc[1])
		for _, name := range []string{"loraShrink", "loraExpand"} {
			if !bytes.Contains(ptx, []byte(".entry "+name+"(")) {
				t.Errorf("sm_%d%d PTX has no kernel %q: rebuild it with gpu/kernels/build.sh", cc[0], cc[1], name)
			}
		}
	}
}

// loraFixture is a decode-like LoRA call: rows rows of bf16 x [rows, in]
// over adapters segments of rank r, each with two column slices of y
// [rows, out] (gate and up).
type loraFixture struct {
	x, y  *gpu.Tensor
	segs  []gpu.LoRASegment
	xv    []float32
	yv    []float32
	frees []*gpu.Tensor
}

func newLoRAFixture(tb testing.TB, d gpu.Device, r *rand.Rand, rows, in, out, adapters, rank int) *loraFixture {
	tb.Helper()
	f := &loraFixture{}
	tensor := func(v []float32, shape ...int) *gpu.Tensor {
		x, err := d.Alloc(gpu.BF16, shape...)
		if err != nil {
			tb.Fatal(err)
		}
		f.frees = append(f.frees, x)
		if err := gpu.UploadF32(x, v); err != nil {
			tb.Fatal(err)
		}
		return x
	}
	vals := func(n int, scale float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = gpu.ToBFloat16((2*r.Float32() - 1) * scale).Float32()
		}
		return v
	}
	f.xv, f.yv = vals(rows*in, 1), vals(rows*out, 1)
	f.x, f.y = tensor(f.xv, rows, in), tensor(f.yv, rows, out)
	for i := range adapters {
		lo, hi := i*rows/adapters, (i+1)*rows/adapters
		for c := range 2 {
			a := tensor(vals(rank*in, 0.03), rank, in)
			b := tensor(vals(out/2*rank, 0.25), out/2, rank)
			f.segs = append(f.segs, gpu.LoRASegment{Lo: lo, Hi: hi, A: a, B: b, Col: c * out / 2})
		}
	}
	return f
}

func (f *loraFixture) free() {
	for _, x := range f.frees {
		x.Free()
	}
}

// TestLoRAGraph records a LoRA call (scratch from the graph's arena, the
// segment table as a kernel parameter) and replays it: the same bits as
// the eager call; after new x and y are uploaded into the same tensors,
// the eager result on those; and changing the host's segment slice after
// the recording does not change what the graph computes (the table was
// copied into the graph).
func TestLoRAGraph(t *testing.T) {
	d := open(t)
	gputest.CheckLeaks(t, d)
	lo := d.Ops().(gpu.LoRAOps)
	gr := d.(gpu.Grapher)
	r := rand.New(rand.NewPCG(5, 6))
	f := newLoRAFixture(t, d, r, 96, 520, 512, 6, 16)
	defer f.free()
	eager := func() []float32 {
		if err := gpu.UploadF32(f.y, f.yv); err != nil {
			t.Fatal(err)
		}
		if err := lo.LoRA(f.y, f.x, f.segs); err != nil {
			t.Fatal(err)
		}
		return get(t, f.y)
	}
	want := eager()
	segs := slices.Clone(f.segs)
	g, err := gr.Capture(func() error { return lo.LoRA(f.y, f.x, segs) })
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	replay := func() []float32 {
		if err := gpu.UploadF32(f.y, f.yv); err != nil {
			t.Fatal(err)
		}
		if err := g.Launch(); err != nil {
			t.Fatal(err)
		}
		return get(t, f.y)
	}
	if got := replay(); !slices.Equal(got, want) {
		t.Errorf("graph replay differs from the eager call (first at %d)", firstDiff(got, want))
	}
	for i := range segs {
		segs[i].Lo, segs[i].Hi = 0, 0 // the host's table changes; the graph's must not
	}
	for i := range f.xv {
		f.xv[i] = gpu.ToBFloat16(2*r.Float32() - 1).Float32()
	}
	for i := range f.yv {
		f.yv[i] = gpu.ToBFloat16(2*r.Float32() - 1).Float32()
	}
	if err := gpu.UploadF32(f.x, f.xv); err != nil {
		t.Fatal(err)
	}
	want = eager()
	if got := replay(); !slices.Equal(got, want) {
		t.Errorf("graph replay on new inputs differs from the eager call (first at %d)", firstDiff(got, want))
	}
	if slices.Equal(want, f.yv) {
		t.Errorf("LoRA left y unchanged: the test would not see a replay that skips it")
	}
}

func get(t testing.TB, x *gpu.Tensor) []float32 {
	t.Helper()
	v := make([]float32, x.Len())
	if err := gpu.DownloadF32(v, x); err != nil {
		t.Fatal(err)
	}
	return v
}

func firstDiff(a, b []float32) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// BenchmarkLoRA times one LoRA call of a 256-row decode step over 16
// adapters of rank 16 (bf16) for the projections of bench-1b (hidden 2048,
// intermediate 8192, 8 kv heads of 64) against the base MatMul of the same
// projection: the peer, in the same benchmark. gate_up is two column
// slices per adapter.
func BenchmarkLoRA(b *testing.B) {
	for _, p := range []struct {
		name    string
		in, out int
		slices  int
	}{{"q", 2048, 2048, 1}, {"k", 2048, 512, 1}, {"gate_up", 2048, 16384, 2}, {"down", 8192, 2048, 1}} {
		for _, rows := range []int{256, 4096} {
			b.Run(fmt.Sprintf("%s/rows=%d", p.name, rows), func(b *testing.B) {
				d := benchDevice(b)
				r := rand.New(rand.NewPCG(1, 2))
				f := newLoRAFixture(b, d, r, rows, p.in, p.out, 16, 16)
				b.Cleanup(f.free)
				if p.slices == 1 {
					// One slice over all of y per adapter.
					var segs []gpu.LoRASegment
					for i := 0; i < len(f.segs); i += 2 {
						s := f.segs[i]
						bb := random(b, d, gpu.BF16, p.out, 16)
						s.B, s.Col = bb, 0
						segs = append(segs, s)
					}
					f.segs = segs
				}
				w := random(b, d, gpu.BF16, p.out, p.in)
				timeIt := func(fn func() error) float64 {
					if err := fn(); err != nil { // warm-up
						b.Fatal(err)
					}
					if err := d.Sync(); err != nil {
						b.Fatal(err)
					}
					const n = 50
					start := time.Now()
					for range n {
						if err := fn(); err != nil {
							b.Fatal(err)
						}
					}
					if err := d.Sync(); err != nil {
						b.Fatal(err)
					}
					return time.Since(start).Seconds() / n
				}
				b.ResetTimer()
				var lora, base float64
				for range b.N {
					base += timeIt(func() error { return d.MatMul(f.y, f.x, w, nil) })
					lora += timeIt(func() error { return d.LoRA(f.y, f.x, f.segs) })
				}
				b.ReportMetric(lora/float64(b.N)*1e6, "lora-µs")
				b.ReportMetric(base/float64(b.N)*1e6, "matmul-µs")
				b.ReportMetric(lora/base, "lora/matmul")
			})
		}
	}
}
