// Package gputest is the conformance suite of gpu backends: every op of
// gpu.Ops checked against straightforward float64 reference implementations
// (ref.go, written apart from any backend) on seeded random inputs, odd
// sizes, every dtype mix, outputs pre-filled with NaN so that unwritten
// elements show, and a live-bytes leak check in every test.
//
// A backend's test calls it with a function that opens its device:
//
//	func TestConformance(t *testing.T) {
//		gputest.Suite{Open: func(t *testing.T) gpu.Device { ... }, CheckIndices: true}.Run(t)
//	}
//
// The cuda backend runs the same suite on the GPU machine.
package gputest

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

// CheckLeaks fails t when dev still has live bytes at the end of the test:
// the gpu analogue of arrow's CheckedAllocator. Call it right after opening
// dev, so that it runs after the test's other cleanups and deferred Frees.
func CheckLeaks(t testing.TB, dev gpu.Device) {
	t.Helper()
	t.Cleanup(func() {
		if n := dev.LiveBytes(); n != 0 {
			t.Errorf("%s device: %d bytes still allocated at the end of the test", dev.Name(), n)
		}
	})
}

// Suite configures a conformance run.
type Suite struct {
	// Open returns a fresh device for one test; close it with t.Cleanup.
	Open func(t *testing.T) gpu.Device
	// CheckIndices runs the tests that expect ErrIndex for out-of-range ids,
	// slots and block numbers (backends that check them on the host).
	CheckIndices bool
}

// Run runs every conformance test as a subtest of t.
func (s Suite) Run(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*env)
	}{
		{"Tensor", testTensor},
		{"MatMul", testMatMul},
		{"Embed", testEmbed},
		{"RMSNorm", testRMSNorm},
		{"RoPE", testRoPE},
		{"SiLUMul", testSiLUMul},
		{"Add", testAdd},
		{"Softmax", testSoftmax},
		{"Argmax", testArgmax},
		{"WriteKV", testWriteKV},
		{"WriteKVF8", testWriteKVF8},
		{"Attention", testAttention},
		{"Sample", testSample},
		{"QMatMul", testQMatMul},
		{"LoRA", testLoRA},
		{"Errors", testErrors},
	}
	if s.CheckIndices {
		tests = append(tests, struct {
			name string
			fn   func(*env)
		}{"IndexErrors", testIndexErrors})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(s.env(t)) })
	}
}

// env is one test's device, ops and random source.
type env struct {
	t    *testing.T
	dev  gpu.Device
	ops  gpu.Ops
	rng  *rand.Rand
	open func(t *testing.T) gpu.Device
}

func (s Suite) env(t *testing.T) *env {
	dev := s.Open(t)
	CheckLeaks(t, dev)
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	return &env{t: t, dev: dev, ops: dev.Ops(), rng: rand.New(rand.NewPCG(1, h.Sum64())), open: s.Open}
}

func (e *env) run(name string, fn func(e *env)) {
	e.t.Run(name, func(t *testing.T) {
		sub := *e
		sub.t = t
		fn(&sub)
	})
}

// round returns f rounded to dt, as a float32.
func round(dt gpu.DType, f float32) float32 {
	switch dt {
	case gpu.BF16:
		return gpu.ToBFloat16(f).Float32()
	case gpu.F16:
		return gpu.ToFloat16(f).Float32()
	case gpu.F8E4M3:
		return gpu.ToFloat8E4M3(f).Float32()
	}
	return f
}

// unit is dt's unit roundoff: half an ulp, relative.
func unit(dt gpu.DType) float64 {
	switch dt {
	case gpu.BF16:
		return 0x1p-8
	case gpu.F16:
		return 0x1p-11
	case gpu.F8E4M3:
		return 0x1p-4
	}
	return 0x1p-24
}

// tiny absolute slack: below it float16 goes subnormal.
const tiny = 1e-6

// values returns n random values, uniform in [-scale, scale), already
// rounded to dt so that the reference sees exactly what the device does.
func (e *env) values(dt gpu.DType, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = round(dt, float32((2*e.rng.Float64()-1)*scale))
	}
	return v
}

// tensor uploads data as a dt tensor of shape, freed when the test ends.
func (e *env) tensor(dt gpu.DType, data []float32, shape ...int) *gpu.Tensor {
	e.t.Helper()
	x := e.alloc(dt, shape...)
	if dt == gpu.F8E4M3 {
		return e.uploadF8(x, data)
	}
	if err := gpu.UploadF32(x, data); err != nil {
		e.t.Fatal(err)
	}
	return x
}

func (e *env) ints(data []int32, shape ...int) *gpu.Tensor {
	e.t.Helper()
	x, err := gpu.FromHost(e.dev, data, shape...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(x.Free)
	return x
}

func (e *env) alloc(dt gpu.DType, shape ...int) *gpu.Tensor {
	e.t.Helper()
	x, err := e.dev.Alloc(dt, shape...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(x.Free)
	return x
}

// poison allocates a tensor filled with NaN (floats) or math.MinInt32.
func (e *env) poison(dt gpu.DType, shape ...int) *gpu.Tensor {
	e.t.Helper()
	x := e.alloc(dt, shape...)
	if dt == gpu.F8E4M3 {
		return e.uploadF8(x, nans(x.Len()))
	}
	if dt == gpu.I32 {
		p := make([]int32, x.Len())
		for i := range p {
			p[i] = math.MinInt32
		}
		if err := gpu.Upload(x, p); err != nil {
			e.t.Fatal(err)
		}
		return x
	}
	if err := gpu.UploadF32(x, nans(x.Len())); err != nil {
		e.t.Fatal(err)
	}
	return x
}

func nans(n int) []float32 {
	p := make([]float32, n)
	for i := range p {
		p[i] = float32(math.NaN())
	}
	return p
}

func (e *env) get(x *gpu.Tensor) []float32 {
	e.t.Helper()
	out := make([]float32, x.Len())
	if x.DType() == gpu.F8E4M3 {
		return e.getF8(out, x)
	}
	if err := gpu.DownloadF32(out, x); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// near checks |got−want| ≤ tol elementwise (a NaN got always fails) and
// reports the first mismatches and, verbosely, how close to the tolerance
// the worst element came.
func (e *env) near(what string, got []float32, want, tol []float64) {
	e.t.Helper()
	if len(got) != len(want) {
		e.t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad, worst := 0, 0.0
	for i, g := range got {
		d := math.Abs(float64(g) - want[i])
		if !(d <= tol[i]) {
			if bad < 5 {
				e.t.Errorf("%s[%d] = %v, want %v ± %.3g", what, i, g, want[i], tol[i])
			}
			bad++
			continue
		}
		if tol[i] > 0 {
			worst = max(worst, d/tol[i])
		}
	}
	if bad > 0 {
		e.t.Errorf("%s: %d of %d values wrong", what, bad, len(got))
	}
	e.t.Logf("%s: worst error %.2f of the tolerance", what, worst)
}

// stillPoisoned fails the test when an element at idx was written: it
// should have kept the NaN that poison put there.
func (e *env) stillPoisoned(what string, got []float32, idx []int) {
	e.t.Helper()
	for _, i := range idx {
		if !math.IsNaN(float64(got[i])) {
			e.t.Errorf("%s[%d] = %v: written, want untouched", what, i, got[i])
			return
		}
	}
}
