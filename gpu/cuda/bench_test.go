package cuda_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cuda"
)

// The benchmarks enqueue b.N ops and wait once, so they time the GPU's
// throughput, launch gaps included; the reported rates are against the
// ceilings of METHOD.md (device-to-device copy, a large bf16 product).

func benchDevice(b *testing.B) *cuda.Device {
	d, err := cuda.New(cuda.DefaultConfig())
	if errors.Is(err, cuda.ErrUnavailable) {
		b.Skipf("no CUDA GPU here: %v", err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// random fills a new tensor with values uniform in [-1, 1).
func random(b *testing.B, d gpu.Device, dt gpu.DType, shape ...int) *gpu.Tensor {
	x, err := d.Alloc(dt, shape...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(x.Free)
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, x.Len())
	for i := range v {
		v[i] = 2*r.Float32() - 1
	}
	if err := gpu.UploadF32(x, v); err != nil {
		b.Fatal(err)
	}
	return x
}

func BenchmarkCopy(b *testing.B) {
	d := benchDevice(b)
	const n = 1 << 28 // 1 GiB of f32
	src, dst := random(b, d, gpu.F32, n), random(b, d, gpu.F32, n)
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := d.Copy(dst, src); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(2*4*n)*float64(b.N)/b.Elapsed().Seconds()/1e12, "TB/s")
}

func BenchmarkMatMul(b *testing.B) {
	for _, s := range [][3]int{{8192, 8192, 8192}, {4096, 4096, 4096}, {64, 4096, 4096}, {1, 4096, 4096}} {
		m, n, k := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("bf16/%dx%dx%d", m, n, k), func(b *testing.B) {
			d := benchDevice(b)
			a, w, c := random(b, d, gpu.BF16, m, k), random(b, d, gpu.BF16, n, k), random(b, d, gpu.BF16, m, n)
			if err := d.MatMul(c, a, w, nil); err != nil { // warm-up: cuBLAS's heuristics
				b.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := d.MatMul(c, a, w, nil); err != nil {
					b.Fatal(err)
				}
			}
			if err := d.Sync(); err != nil {
				b.Fatal(err)
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(2*float64(m)*float64(n)*float64(k)/sec/1e12, "TFLOP/s")
			b.ReportMetric(float64(2*(m*k+n*k+m*n))/sec/1e12, "TB/s")
		})
	}
}

// BenchmarkAttentionDecode is one decode step's attention (one layer) in
// bf16: Llama-3-8B's heads (32 query, 8 kv, d 128) on 64 sequences of 1024
// tokens; bench-1b's (32, 8, d 64) on 256 sequences of 384 (the decode step
// of infer/offline-512's profile) and on 16 of 4096; each with the kernel
// before the split one ("nosplit") and the split-context kernel with the
// splits it chooses (with its cp.async pipeline and with register prefetch,
// "split-reg") and with 1, 2, 4 and 8 forced. TB/s counts K and V
// read once.
func BenchmarkAttentionDecode(b *testing.B) {
	for _, sh := range []struct {
		name                           string
		seqs, ctx, heads, kvh, dim, bs int
	}{
		{"8b-64x1024", 64, 1024, 32, 8, 128, 16},
		{"1b-256x384", 256, 384, 32, 8, 64, 16},
		{"1b-16x4096", 16, 4096, 32, 8, 64, 16},
	} {
		b.Run(sh.name, func(b *testing.B) {
			d := benchDevice(b)
			seqs, ctx, heads, kvh, dim, bs := sh.seqs, sh.ctx, sh.heads, sh.kvh, sh.dim, sh.bs
			nb := seqs * ctx / bs
			kc, vc := random(b, d, gpu.BF16, nb, bs, kvh, dim), random(b, d, gpu.BF16, nb, bs, kvh, dim)
			q, out := random(b, d, gpu.BF16, seqs, heads, dim), random(b, d, gpu.BF16, seqs, heads, dim)
			tables := make([]int32, nb)
			for i, p := range rand.New(rand.NewPCG(3, 4)).Perm(nb) {
				tables[i] = int32(p)
			}
			lens, starts := make([]int32, seqs), make([]int32, seqs+1)
			for i := range lens {
				lens[i], starts[i+1] = int32(ctx), int32(i+1)
			}
			ints := func(v []int32, shape ...int) *gpu.Tensor {
				x, err := gpu.FromHost(d, v, shape...)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(x.Free)
				return x
			}
			batch := gpu.AttnBatch{BlockTables: ints(tables, seqs, ctx/bs), ContextLens: ints(lens, seqs), QueryStarts: ints(starts, seqs+1),
				MaxQueryLen: 1, MaxContextLen: ctx}
			for _, v := range []struct {
				name   string
				splits int
			}{{"split-auto", 0}, {"split-1", 1}, {"split-2", 2}, {"split-4", 4}, {"split-8", 8}} {
				b.Run(v.name, func(b *testing.B) {
					defer cuda.SetAttn(d, cuda.AttnAuto, v.splits)()
					if err := d.Attention(out, q, kc, vc, batch); err != nil { // warm-up
						b.Fatal(err)
					}
					if err := d.Sync(); err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					for range b.N {
						if err := d.Attention(out, q, kc, vc, batch); err != nil {
							b.Fatal(err)
						}
					}
					if err := d.Sync(); err != nil {
						b.Fatal(err)
					}
					sec := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(2*seqs*ctx*kvh*dim*2)/sec/1e12, "TB/s")
					b.ReportMetric(sec*1e6, "µs/step")
				})
			}
		})
	}
}
