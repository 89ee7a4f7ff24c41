package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/gpu/cuda"
)

// TestAttentionLongDecode compares decode batches (one new token per
// sequence) over long contexts with the cpu backend: the split-context
// kernel with the splits it chooses, with the most splits (AttnSplitMost),
// and with 1, 3 and 200 forced; bf16, f16 and f32 caches, G = 4 and 8,
// d = 64 and 128.
func TestAttentionLongDecode(t *testing.T) {
	dev := openConfig(t, cuda.DefaultConfig())
	ref, err := cpu.New(cpu.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	seqs := [][2]int{{4000, 1}, {2500, 1}, {700, 1}, {33, 1}, {1, 1}, {4096, 1}}
	for _, shape := range [][3]int{{32, 8, 64}, {16, 2, 128}} {
		for _, v := range []struct {
			mode   cuda.AttnKernels
			splits int
		}{{cuda.AttnAuto, 0}, {cuda.AttnSplitMost, 0}, {cuda.AttnAuto, 1}, {cuda.AttnAuto, 3}, {cuda.AttnAuto, 200}} {
			for _, cdt := range []gpu.DType{gpu.BF16, gpu.F16, gpu.F32} {
				name := fmt.Sprintf("g%d-d%d/%s-splits%d/%s", shape[0]/shape[1], shape[2], v.mode, v.splits, cdt)
				t.Run(name, func(t *testing.T) {
					defer cuda.SetAttn(dev, v.mode, v.splits)()
					attentionLong(t, dev, ref, cdt, shape[0], shape[1], shape[2], 16, seqs)
				})
			}
		}
	}
}

// TestAttentionLong compares Attention on long contexts (many chunks per
// warp, scattered blocks) with the cpu backend on the same random inputs:
// decode rows and a prefill chunk, float32 and a bf16 cache, with each
// attention kernel choice (AttnAuto, AttnSplitMost and AttnPrefill).
func TestAttentionLong(t *testing.T) {
	dev := openConfig(t, cuda.DefaultConfig())
	ref, err := cpu.New(cpu.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	const heads, kvh, dim, bs = 8, 2, 128, 16
	seqs := [][2]int{{2500, 1}, {700, 300}, {33, 1}}
	for _, mode := range []cuda.AttnKernels{cuda.AttnAuto, cuda.AttnSplitMost, cuda.AttnPrefill} {
		for _, cdt := range []gpu.DType{gpu.F32, gpu.BF16} {
			t.Run(mode.String()+"/"+cdt.String(), func(t *testing.T) {
				defer cuda.SetAttn(dev, mode, 0)()
				attentionLong(t, dev, ref, cdt, heads, kvh, dim, bs, seqs)
			})
		}
	}
}

func attentionLong(t *testing.T, dev, ref gpu.Device, cdt gpu.DType, heads, kvh, dim, bs int, seqs [][2]int) {
	r := rand.New(rand.NewPCG(5, uint64(cdt)))
	var tables, lens, starts []int32
	starts = append(starts, 0)
	maxBlocks, tokens, nb, maxQ, maxCtx := 0, 0, 0, 0, 0
	for _, s := range seqs {
		maxBlocks = max(maxBlocks, (s[0]+bs-1)/bs)
		nb += (s[0] + bs - 1) / bs
		tokens += s[1]
		maxQ = max(maxQ, s[1])
		maxCtx = max(maxCtx, s[0])
	}
	perm := r.Perm(nb)
	for _, s := range seqs {
		row := make([]int32, maxBlocks)
		for b := range (s[0] + bs - 1) / bs {
			row[b] = int32(perm[0])
			perm = perm[1:]
		}
		tables = append(tables, row...)
		lens = append(lens, int32(s[0]))
		starts = append(starts, starts[len(starts)-1]+int32(s[1]))
	}
	vals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 2*r.Float32() - 1
		}
		return v
	}
	q, kc, vc := vals(tokens*heads*dim), vals(nb*bs*kvh*dim), vals(nb*bs*kvh*dim)
	run := func(d gpu.Device) []float32 {
		up := func(dt gpu.DType, v []float32, shape ...int) *gpu.Tensor {
			x, err := d.Alloc(dt, shape...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(x.Free)
			if err := gpu.UploadF32(x, v); err != nil {
				t.Fatal(err)
			}
			return x
		}
		ints := func(v []int32, shape ...int) *gpu.Tensor {
			x, err := gpu.FromHost(d, v, shape...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(x.Free)
			return x
		}
		out := up(gpu.F32, vals(tokens*heads*dim), tokens, heads, dim)
		err := d.Ops().Attention(out, up(gpu.F32, q, tokens, heads, dim),
			up(cdt, kc, nb, bs, kvh, dim), up(cdt, vc, nb, bs, kvh, dim), gpu.AttnBatch{
				BlockTables: ints(tables, len(seqs), maxBlocks), ContextLens: ints(lens, len(seqs)),
				QueryStarts: ints(starts, len(seqs)+1), MaxQueryLen: maxQ, MaxContextLen: maxCtx,
			})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, out.Len())
		if err := gpu.DownloadF32(got, out); err != nil {
			t.Fatal(err)
		}
		return got
	}
	got, want := run(dev), run(ref)
	var worst, scale float64
	for i := range want {
		if math.IsNaN(float64(got[i])) {
			t.Fatalf("out[%d] is NaN", i)
		}
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
		scale = max(scale, math.Abs(float64(want[i])))
	}
	t.Logf("max |cuda − cpu| / max |cpu| = %.3g", worst/scale)
	if worst/scale > 1e-4 {
		t.Errorf("max |cuda − cpu| / max |cpu| = %.3g, want ≤ 1e-4", worst/scale)
	}
}
