package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
)

// gemmShapes are m, n, k: a square problem and decode-like ones, where m is
// the number of sequences in a batch and n, k are a model's hidden sizes.
var gemmShapes = [][3]int{
	{512, 512, 512},
	{8, 1024, 1024}, {16, 1024, 1024}, {32, 1024, 1024}, {64, 1024, 1024},
	{8, 2048, 2048}, {16, 2048, 2048}, {32, 2048, 2048}, {64, 2048, 2048},
}

// BenchmarkMatMul compares MatMul (f32 weights, and bf16 weights as models
// store them) with gonum's pure-Go Sgemm and Dgemm on the same C = A·Bᵀ, in
// one run, on 1 and 2 threads. gonum parallelizes over GOMAXPROCS, so each
// sub-benchmark sets it to the thread count.
func BenchmarkMatMul(b *testing.B) {
	for _, s := range gemmShapes {
		m, n, k := s[0], s[1], s[2]
		for _, threads := range []int{1, 2} {
			name := fmt.Sprintf("m%dn%dk%d/threads=%d", m, n, k, threads)
			b.Run(name+"/sluice-f32", func(b *testing.B) { benchSluice(b, m, n, k, threads, gpu.F32) })
			b.Run(name+"/sluice-bf16w", func(b *testing.B) { benchSluice(b, m, n, k, threads, gpu.BF16) })
			b.Run(name+"/gonum-sgemm", func(b *testing.B) { benchSgemm(b, m, n, k, threads) })
			b.Run(name+"/gonum-dgemm", func(b *testing.B) { benchDgemm(b, m, n, k, threads) })
		}
	}
}

// gflops reports wall-clock GFLOP/s and GFLOP per CPU-second (cpu0 is
// cpuTime() when the timed loop started).
func gflops(b *testing.B, m, n, k int, cpu0 time.Duration) {
	flops := 2 * float64(m) * float64(n) * float64(k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(flops/cpu.Seconds()/1e9, "GFLOP/cpu-s")
	}
}

func randFloats(n int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

func withProcs(b *testing.B, n int) {
	old := runtime.GOMAXPROCS(n)
	b.Cleanup(func() { runtime.GOMAXPROCS(old) })
}

func benchSluice(b *testing.B, m, n, k, threads int, weights gpu.DType) {
	withProcs(b, threads)
	d, err := cpu.New(cpu.Config{Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	a, err := gpu.FromHost(d, randFloats(m*k), m, k)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Free()
	w, err := d.Alloc(weights, n, k)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Free()
	if err := gpu.UploadF32(w, randFloats(n*k)); err != nil {
		b.Fatal(err)
	}
	c, err := d.Alloc(gpu.F32, m, n)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Free()
	ops := d.Ops()
	if err := ops.MatMul(c, a, w, nil); err != nil { // grows the packing scratch
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if err := ops.MatMul(c, a, w, nil); err != nil {
			b.Fatal(err)
		}
	}
	gflops(b, m, n, k, cpu0)
}

func benchSgemm(b *testing.B, m, n, k, threads int) {
	withProcs(b, threads)
	a, w, c := randFloats(m*k), randFloats(n*k), make([]float32, m*n)
	var impl gonum.Implementation
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		impl.Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, a, k, w, k, 0, c, n)
	}
	gflops(b, m, n, k, cpu0)
	_ = blas32.Implementation() // gonum.Implementation is the default there too
}

func benchDgemm(b *testing.B, m, n, k, threads int) {
	withProcs(b, threads)
	f64 := func(v []float32) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	a := blas64.General{Rows: m, Cols: k, Stride: k, Data: f64(randFloats(m * k))}
	w := blas64.General{Rows: n, Cols: k, Stride: k, Data: f64(randFloats(n * k))}
	c := blas64.General{Rows: m, Cols: n, Stride: n, Data: make([]float64, m*n)}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		blas64.Gemm(blas.NoTrans, blas.Trans, 1, a, w, 0, c)
	}
	gflops(b, m, n, k, cpu0)
}

// BenchmarkDecodeStep times the non-GEMM ops of one decoder layer for a
// decode batch: 16 sequences of 512 cached tokens, Llama-3.2-1B sizes.
func BenchmarkDecodeStep(b *testing.B) {
	const (
		seqs, ctx, heads, kvh, hd, bs, hidden, inter = 16, 512, 32, 8, 64, 16, 2048, 8192
	)
	d, err := cpu.New(cpu.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var free []*gpu.Tensor
	defer func() {
		for _, t := range free {
			t.Free()
		}
	}()
	alloc := func(dt gpu.DType, shape ...int) *gpu.Tensor {
		t, err := d.Alloc(dt, shape...)
		if err != nil {
			b.Fatal(err)
		}
		free = append(free, t)
		if dt != gpu.I32 {
			if err := gpu.UploadF32(t, randFloats(t.Len())); err != nil {
				b.Fatal(err)
			}
		}
		return t
	}
	ints := func(v []int32, shape ...int) *gpu.Tensor {
		t, err := gpu.FromHost(d, v, shape...)
		if err != nil {
			b.Fatal(err)
		}
		free = append(free, t)
		return t
	}
	blocksPer := ctx / bs
	tables, ctxLens, starts, pos, slots := make([]int32, seqs*blocksPer), make([]int32, seqs), make([]int32, seqs+1), make([]int32, seqs), make([]int32, seqs)
	for s := range seqs {
		for j := range blocksPer {
			tables[s*blocksPer+j] = int32(s*blocksPer + j)
		}
		ctxLens[s], starts[s+1], pos[s] = ctx, int32(s+1), ctx-1
		slots[s] = int32(s*ctx + ctx - 1)
	}
	batch := gpu.AttnBatch{
		BlockTables: ints(tables, seqs, blocksPer), ContextLens: ints(ctxLens, seqs),
		QueryStarts: ints(starts, seqs+1), MaxQueryLen: 1, MaxContextLen: ctx,
	}
	x, res, w := alloc(gpu.BF16, seqs, hidden), alloc(gpu.BF16, seqs, hidden), alloc(gpu.BF16, hidden)
	q, k, v := alloc(gpu.BF16, seqs, heads, hd), alloc(gpu.BF16, seqs, kvh, hd), alloc(gpu.BF16, seqs, kvh, hd)
	kc, vc := alloc(gpu.BF16, seqs*blocksPer, bs, kvh, hd), alloc(gpu.BF16, seqs*blocksPer, bs, kvh, hd)
	out := alloc(gpu.BF16, seqs, heads, hd)
	gu, act := alloc(gpu.BF16, seqs, 2*inter), alloc(gpu.BF16, seqs, inter)
	posT, slotsT := ints(pos, seqs), ints(slots, seqs)
	rope := gpu.Rope{Theta: 500000, Llama3: &gpu.Llama3Scaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}}
	ops := d.Ops()
	step := func() {
		must(b, ops.RMSNorm(x, x, res, w, 1e-5))
		must(b, ops.RoPE(q, k, posT, rope))
		must(b, ops.WriteKV(kc, vc, k, v, slotsT))
		must(b, ops.Attention(out, q, kc, vc, batch))
		must(b, ops.SiLUMul(act, gu, nil))
	}
	step() // grows the scratch
	b.Run("ops", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			step()
		}
	})
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
