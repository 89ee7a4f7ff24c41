package cuda_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/gpu/cuda"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// kvStep is one decode step's WriteKVScaled and Attention over an FP8
// cache, with its tensors on one device.
type kvStep struct {
	k, v, q, out, slots, lens, starts, tables, kc, vc *gpu.Tensor
	ab                                                gpu.AttnBatch
	ks, vs                                            float32
}

func (s *kvStep) run(d gpu.Device) error {
	if err := d.Ops().(gpu.ScaledKV).WriteKVScaled(s.kc, s.vc, s.k, s.v, s.slots, s.ks, s.vs); err != nil {
		return err
	}
	return d.Ops().Attention(s.out, s.q, s.kc, s.vc, s.ab)
}

// TestKVCacheFP8Graph writes a decode step's keys and values into FP8
// caches with scales and attends over them (several splits per sequence),
// eagerly and replayed as a CUDA graph on two input sets: the graph gives
// the eager output bit for bit, the cache bytes are the cpu backend's for
// the same inputs (E4M3 rounding of k / ks, bit for bit), and the output is
// within bf16 rounding of cpu's.
func TestKVCacheFP8Graph(t *testing.T) {
	d := open(t)
	gputest.CheckLeaks(t, d)
	ref, err := cpu.New(cpu.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	const seqs, heads, kvh, hd, blocks, bs, per = 3, 8, 2, 64, 64, 16, 16
	const ks, vs = 0.011, 0.37
	r := rand.New(rand.NewPCG(5, 6))
	bf16 := func(n int, scale float64) []gpu.BFloat16 {
		x := make([]gpu.BFloat16, n)
		for i := range x {
			x[i] = gpu.ToBFloat16(float32(r.NormFloat64() * scale))
		}
		return x
	}
	f8 := func(n int) []byte { // finite E4M3 values of magnitude up to 240
		x := make([]byte, n)
		for i := range x {
			x[i] = byte(r.IntN(0x78)) | byte(r.IntN(2)<<7)
		}
		return x
	}
	type inputs struct {
		k, v, q                   []gpu.BFloat16
		slots, lens, starts, tabs []int32
	}
	mk := func() inputs {
		in := inputs{k: bf16(seqs*kvh*hd, 2), v: bf16(seqs*kvh*hd, 50), q: bf16(seqs*heads*hd, 1), starts: []int32{0, 1, 2, 3}}
		for s := range seqs {
			p := 150 + r.IntN(100)
			in.lens = append(in.lens, int32(p+1))
			in.slots = append(in.slots, int32(s*per*bs+p))
		}
		for i := range seqs * per {
			in.tabs = append(in.tabs, int32(i))
		}
		return in
	}
	kc0, vc0 := f8(blocks*bs*kvh*hd), f8(blocks*bs*kvh*hd)
	steps := map[gpu.Device]*kvStep{}
	for _, dev := range []gpu.Device{d, ref} {
		alloc := func(dt gpu.DType, shape ...int) *gpu.Tensor {
			x, err := dev.Alloc(dt, shape...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(x.Free)
			return x
		}
		s := &kvStep{k: alloc(gpu.BF16, seqs, kvh, hd), v: alloc(gpu.BF16, seqs, kvh, hd), q: alloc(gpu.BF16, seqs, heads, hd),
			out: alloc(gpu.BF16, seqs, heads, hd), slots: alloc(gpu.I32, seqs), lens: alloc(gpu.I32, seqs), starts: alloc(gpu.I32, seqs+1),
			tables: alloc(gpu.I32, seqs, per), kc: alloc(gpu.F8E4M3, blocks, bs, kvh, hd), vc: alloc(gpu.F8E4M3, blocks, bs, kvh, hd), ks: ks, vs: vs}
		s.ab = gpu.AttnBatch{BlockTables: s.tables, ContextLens: s.lens, QueryStarts: s.starts, MaxQueryLen: 1, MaxContextLen: per * bs, KScale: ks, VScale: vs}
		steps[dev] = s
	}
	// run uploads in on dev, with the caches as they started, runs launch
	// and returns the output and the caches' bytes.
	run := func(dev gpu.Device, in inputs, launch func() error) ([]gpu.BFloat16, []byte, []byte) {
		t.Helper()
		s := steps[dev]
		for _, u := range []struct {
			t *gpu.Tensor
			v []gpu.BFloat16
		}{{s.k, in.k}, {s.v, in.v}, {s.q, in.q}} {
			if err := gpu.Upload(u.t, u.v); err != nil {
				t.Fatal(err)
			}
		}
		for _, u := range []struct {
			t *gpu.Tensor
			v []int32
		}{{s.slots, in.slots}, {s.lens, in.lens}, {s.starts, in.starts}, {s.tables, in.tabs}} {
			if err := gpu.Upload(u.t, u.v); err != nil {
				t.Fatal(err)
			}
		}
		if err := dev.Upload(s.kc, kc0); err != nil {
			t.Fatal(err)
		}
		if err := dev.Upload(s.vc, vc0); err != nil {
			t.Fatal(err)
		}
		if err := launch(); err != nil {
			t.Fatal(err)
		}
		out, err := gpu.ToHost[gpu.BFloat16](s.out)
		if err != nil {
			t.Fatal(err)
		}
		kb, vb := make([]byte, s.kc.Bytes()), make([]byte, s.vc.Bytes())
		if err := dev.Download(kb, s.kc); err != nil {
			t.Fatal(err)
		}
		if err := dev.Download(vb, s.vc); err != nil {
			t.Fatal(err)
		}
		return out, kb, vb
	}
	sets := []inputs{mk(), mk()}
	var want [][]gpu.BFloat16
	for i, in := range sets {
		out, kb, vb := run(d, in, func() error { return steps[d].run(d) })
		cout, ckb, cvb := run(ref, in, func() error { return steps[ref].run(ref) })
		if !bytes.Equal(kb, ckb) || !bytes.Equal(vb, cvb) {
			t.Errorf("input set %d: the FP8 cache bytes differ from cpu's", i)
		}
		if bytes.Equal(kb, kc0) {
			t.Errorf("input set %d: WriteKVScaled changed no key byte", i)
		}
		var dmax, rmax float64
		for j := range out {
			dmax = max(dmax, math.Abs(float64(out[j].Float32()-cout[j].Float32())))
			rmax = max(rmax, math.Abs(float64(cout[j].Float32())))
		}
		if dmax > 0x1p-7*rmax {
			t.Errorf("input set %d: output off cpu's by %.3g of its largest %.3g", i, dmax, rmax)
		}
		t.Logf("input set %d: output within %.3g of cpu's (largest %.3g)", i, dmax, rmax)
		want = append(want, out)
	}
	if slices.Equal(want[0], want[1]) {
		t.Fatal("the two input sets give the same output")
	}
	g, err := d.(gpu.Grapher).Capture(func() error { return steps[d].run(d) })
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	for rep := range 2 {
		for i, in := range sets {
			if got, _, _ := run(d, in, g.Launch); !slices.Equal(got, want[i]) {
				t.Errorf("replay %d of input set %d: the graph's output differs from the eager one", rep, i)
			}
		}
	}
}

// BenchmarkAttentionDecodeFP8 times decode attention over a bf16 cache and
// an FP8 one of the same shapes, side by side (BenchmarkAttentionDecode's
// bench-1b and 8B shapes, the splits attentionSplit chooses): FP8 reads
// half the bytes. TB/s counts K and V read once, in the cache's dtype.
func BenchmarkAttentionDecodeFP8(b *testing.B) {
	for _, sh := range []struct {
		name                           string
		seqs, ctx, heads, kvh, dim, bs int
	}{
		{"8b-64x1024", 64, 1024, 32, 8, 128, 16},
		{"1b-256x384", 256, 384, 32, 8, 64, 16},
		{"1b-16x4096", 16, 4096, 32, 8, 64, 16},
	} {
		for _, dt := range []gpu.DType{gpu.BF16, gpu.F8E4M3} {
			b.Run(fmt.Sprintf("%s/%v", sh.name, dt), func(b *testing.B) {
				d := benchDevice(b)
				seqs, ctx, heads, kvh, dim, bs := sh.seqs, sh.ctx, sh.heads, sh.kvh, sh.dim, sh.bs
				nb := seqs * ctx / bs
				kc, vc := cacheOf(b, d, dt, nb, bs, kvh, dim), cacheOf(b, d, dt, nb, bs, kvh, dim)
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
				defer cuda.SetAttn(d, cuda.AttnAuto, 0)()
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
				b.ReportMetric(float64(2*seqs*ctx*kvh*dim*dt.Size())/sec/1e12, "TB/s")
				b.ReportMetric(sec*1e6, "µs/step")
			})
		}
	}
}

// cacheOf is random for a bf16 cache and random E4M3 values (|x| ≤ 1,
// as random's) for an FP8 one.
func cacheOf(b *testing.B, d gpu.Device, dt gpu.DType, shape ...int) *gpu.Tensor {
	if dt != gpu.F8E4M3 {
		return random(b, d, dt, shape...)
	}
	x, err := d.Alloc(dt, shape...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(x.Free)
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]byte, x.Len())
	for i := range v {
		v[i] = byte(gpu.ToFloat8E4M3(2*r.Float32() - 1))
	}
	if err := d.Upload(x, v); err != nil {
		b.Fatal(err)
	}
	return x
}
