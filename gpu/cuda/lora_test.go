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
		for _, name := range []string{"loraShrink", "loraExpand", "loraShrinkIdx", "loraExpandIdx"} {
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

// TestLoRAIndexedGraph checks LoRAIndexed (gpu.LoRATableOps), the LoRA
// product that CUDA graphs replay: eagerly it gives LoRA's bits for the
// same segments (decode-sized calls, where both pick the same warps a
// tile), with rows in no segment (base and padding rows) unchanged, an
// invalid row skipped and rows after the terminator unread; recorded as a
// graph and replayed it gives the same bits; and after new segments (other
// adapters on other rows) are uploaded into the same tensor and a slot is
// Set to another adapter, the replay gives the eager result of the new
// ones, which a table fixed at capture (LoRA's) would not.
func TestLoRAIndexedGraph(t *testing.T) {
	for _, in := range []int{2048, 520, 100} {
		t.Run(fmt.Sprint("in=", in), func(t *testing.T) { testLoRAIndexedGraph(t, in) })
	}
}

func testLoRAIndexedGraph(t *testing.T, in int) {
	d := open(t)
	gputest.CheckLeaks(t, d)
	lo := d.Ops().(gpu.LoRAOps)
	lt := d.Ops().(gpu.LoRATableOps)
	gr := d.(gpu.Grapher)
	r := rand.New(rand.NewPCG(7, uint64(in)))
	const rows, half, slots = 64, 384, 6
	var frees []*gpu.Tensor
	defer func() {
		for _, x := range frees {
			x.Free()
		}
	}()
	tensor := func(dt gpu.DType, v []float32, shape ...int) *gpu.Tensor {
		x, err := d.Alloc(dt, shape...)
		if err != nil {
			t.Fatal(err)
		}
		frees = append(frees, x)
		if err := gpu.UploadF32(x, v); err != nil {
			t.Fatal(err)
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
	xv, yv := vals(rows*in, 1), vals(rows*2*half, 1)
	x, y := tensor(gpu.BF16, xv, rows, in), tensor(gpu.BF16, yv, rows, 2*half)
	// Adapters of two pairs (gate and up columns), rank 16 but one of 8.
	adapter := func(rank int) []gpu.LoRAPair {
		var ps []gpu.LoRAPair
		for c := range 2 {
			a := tensor(gpu.BF16, vals(rank*in, 0.03), rank, in)
			b := tensor(gpu.BF16, vals(half*rank, 0.25), half, rank)
			ps = append(ps, gpu.LoRAPair{A: a, B: b, Col: c * half})
		}
		return ps
	}
	ads := [][]gpu.LoRAPair{adapter(16), adapter(8), adapter(16), adapter(16)}
	tab, err := lt.NewLoRATable(gpu.LoRATableShape{Slots: slots, Pairs: 2, Rank: 16, In: in, N: half})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Free()
	inSlot := map[int]int{0: 0, 1: 1, 4: 2} // slot: adapter
	for s, a := range inSlot {
		if err := tab.Set(s, ads[a]); err != nil {
			t.Fatal(err)
		}
	}
	sd, err := d.Alloc(gpu.I32, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	frees = append(frees, sd)
	// upload writes segments (lo, hi, slot) into sd, then a terminator and
	// a valid-looking row after it, and returns LoRA's segments for them.
	upload := func(rowsOf [][3]int32) []gpu.LoRASegment {
		v := make([]int32, 0, 24)
		var segs []gpu.LoRASegment
		for _, s := range rowsOf {
			v = append(v, s[0], s[1], s[2])
			if s[1] > rows || s[2] >= slots {
				continue // skipped on the device
			}
			for _, p := range ads[inSlot[int(s[2])]] {
				segs = append(segs, gpu.LoRASegment{Lo: int(s[0]), Hi: int(s[1]), A: p.A, B: p.B, Col: p.Col})
			}
		}
		v = append(v, 0, 0, -1, 0, rows, 0)
		for len(v) < 24 {
			v = append(v, 0, 0, -1)
		}
		if err := gpu.Upload(sd, v); err != nil {
			t.Fatal(err)
		}
		return segs
	}
	run := func(fn func() error) []float32 {
		if err := gpu.UploadF32(y, yv); err != nil {
			t.Fatal(err)
		}
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		return get(t, y)
	}
	indexed := func() error { return lt.LoRAIndexed(y, x, tab, sd) }
	check := func(what string, segs []gpu.LoRASegment, got []float32) {
		t.Helper()
		want := run(func() error { return lo.LoRA(y, x, segs) })
		if !slices.Equal(got, want) {
			t.Errorf("%s: differs from LoRA over the same segments (first at %d)", what, firstDiff(got, want))
		}
		if slices.Equal(want, yv) {
			t.Errorf("%s: y unchanged: the test would not see a skipped product", what)
		}
	}
	// Rows 0-4 base, 40-63 padding; the row of 70 is past x and skipped.
	segs := upload([][3]int32{{5, 20, 0}, {20, 21, 4}, {21, 40, 1}, {50, 70, 0}})
	eager := run(indexed)
	check("eager", segs, eager)
	for i := range 5 * 2 * half {
		if eager[i] != yv[i] {
			t.Fatalf("element %d of a row in no segment changed", i)
		}
	}
	g, err := gr.Capture(indexed)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	if got := run(g.Launch); !slices.Equal(got, eager) {
		t.Errorf("replay differs from the eager call (first at %d)", firstDiff(got, eager))
	}
	// Other adapters on other rows, and slot 4 holding another adapter.
	inSlot[4] = 3
	if err := tab.Set(4, ads[3]); err != nil {
		t.Fatal(err)
	}
	segs = upload([][3]int32{{0, 3, 4}, {3, 30, 1}, {30, 31, 0}, {31, 33, 4}, {33, 58, 0}})
	got := run(g.Launch)
	check("replay after new segments", segs, got)
	if eagerNew := run(indexed); !slices.Equal(got, eagerNew) {
		t.Errorf("replay after new segments differs from the eager call (first at %d)", firstDiff(got, eagerNew))
	}
	// No segments: nothing added.
	upload(nil)
	if got := run(g.Launch); !slices.Equal(got, yv) {
		t.Errorf("a replay with no segments changed y (first at %d)", firstDiff(got, yv))
	}
	// Emptied slots add nothing.
	for s := range inSlot {
		if err := tab.Set(s, nil); err != nil {
			t.Fatal(err)
		}
	}
	upload([][3]int32{{0, 30, 0}, {30, 64, 1}})
	if got := run(g.Launch); !slices.Equal(got, yv) {
		t.Errorf("a replay over empty slots changed y (first at %d)", firstDiff(got, yv))
	}
}
