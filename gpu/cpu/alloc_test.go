package cpu_test

import (
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// TestNoAllocs checks that ops allocate nothing once their scratch has
// grown: a decode step calls them thousands of times a second.
func TestNoAllocs(t *testing.T) {
	d, err := cpu.New(cpu.Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	gputest.CheckLeaks(t, d)
	var tensors []*gpu.Tensor
	defer func() {
		for _, x := range tensors {
			x.Free()
		}
	}()
	f := func(dt gpu.DType, shape ...int) *gpu.Tensor {
		x, err := d.Alloc(dt, shape...)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, x)
		if dt != gpu.I32 {
			v := make([]float32, x.Len())
			for i := range v {
				v[i] = float32(i%13) / 13
			}
			if err := gpu.UploadF32(x, v); err != nil {
				t.Fatal(err)
			}
		}
		return x
	}
	ints := func(v []int32, shape ...int) *gpu.Tensor {
		x, err := gpu.FromHost(d, v, shape...)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, x)
		return x
	}
	const tok, hidden, heads, kvh, hd, bs = 8, 256, 4, 2, 64, 16
	x, res, w := f(gpu.BF16, tok, hidden), f(gpu.BF16, tok, hidden), f(gpu.BF16, hidden)
	wq, bias, qkv := f(gpu.BF16, 3*hidden, hidden), f(gpu.BF16, 3*hidden), f(gpu.F32, tok, 3*hidden)
	q, k, v := f(gpu.BF16, tok, heads, hd), f(gpu.BF16, tok, kvh, hd), f(gpu.BF16, tok, kvh, hd)
	kc, vc, out := f(gpu.BF16, 8, bs, kvh, hd), f(gpu.BF16, 8, bs, kvh, hd), f(gpu.BF16, tok, heads, hd)
	ids, pos := ints([]int32{1, 2, 3, 4, 5, 6, 7, 0}, tok), ints([]int32{0, 1, 2, 3, 4, 5, 30, 31}, tok)
	slots := ints([]int32{0, 1, 2, 3, 4, 5, 30, 31}, tok)
	batch := gpu.AttnBatch{
		BlockTables: ints([]int32{0, 1, 2, 3}, 2, 2), ContextLens: ints([]int32{6, 32}, 2),
		QueryStarts: ints([]int32{0, 6, 8}, 3), MaxQueryLen: 6, MaxContextLen: 32,
	}
	logits, am := f(gpu.F32, tok, 3*hidden), f(gpu.I32, tok)
	rope := gpu.Rope{Theta: 500000, Llama3: &gpu.Llama3Scaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}}
	ops := d.Ops()
	cases := map[string]func() error{
		"MatMul":    func() error { return ops.MatMul(qkv, x, wq, bias) },
		"Embed":     func() error { return ops.Embed(x, res, ids) },
		"RMSNorm":   func() error { return ops.RMSNorm(x, x, res, w, 1e-5) },
		"RoPE":      func() error { return ops.RoPE(q, k, pos, rope) },
		"SiLUMul":   func() error { return ops.SiLUMul(x, x, res) },
		"Add":       func() error { return ops.Add(x, x, res) },
		"Softmax":   func() error { return ops.Softmax(logits, logits) },
		"Argmax":    func() error { return ops.Argmax(am, logits) },
		"WriteKV":   func() error { return ops.WriteKV(kc, vc, k, v, slots) },
		"Attention": func() error { return ops.Attention(out, q, kc, vc, batch) },
	}
	for name, op := range cases {
		if err := op(); err != nil { // grows the scratch
			t.Fatalf("%s: %v", name, err)
		}
		if n := testing.AllocsPerRun(20, func() {
			if err := op(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}
