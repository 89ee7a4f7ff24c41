package cuda_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// TestGraph records ops that need scratch (MatMul with a bias through its
// f32 scratch, decode attention split over several blocks through its
// partial states) and RoPE, WriteKV and RMSNorm, replays the graph on two
// sets of inputs uploaded into the same tensors, and requires the eager
// results bit for bit.
func TestGraph(t *testing.T) {
	d := open(t)
	gputest.CheckLeaks(t, d)
	gr, ok := d.(gpu.Grapher)
	if !ok {
		t.Fatal("cuda.Device is not a gpu.Grapher")
	}
	ops := d.Ops()
	r := rand.New(rand.NewPCG(1, 2))
	const (
		seqs, heads, kvHeads, hd = 3, 8, 2, 64
		hidden, blocks, bs, per  = 256, 64, 16, 16 // per: blocks per sequence
	)
	var free []*gpu.Tensor
	defer func() {
		for _, x := range free {
			x.Free()
		}
	}()
	alloc := func(dt gpu.DType, shape ...int) *gpu.Tensor {
		x, err := d.Alloc(dt, shape...)
		if err != nil {
			t.Fatal(err)
		}
		free = append(free, x)
		return x
	}
	bf16 := func(n int) []gpu.BFloat16 {
		v := make([]gpu.BFloat16, n)
		for i := range v {
			v[i] = gpu.ToBFloat16(float32(r.NormFloat64()))
		}
		return v
	}
	x := alloc(gpu.BF16, seqs, hidden)
	w, bias := alloc(gpu.BF16, heads*hd, hidden), alloc(gpu.BF16, heads*hd)
	wk, wv := alloc(gpu.BF16, kvHeads*hd, hidden), alloc(gpu.BF16, kvHeads*hd, hidden)
	norm := alloc(gpu.BF16, hd)
	q, k, v := alloc(gpu.BF16, seqs, heads, hd), alloc(gpu.BF16, seqs, kvHeads, hd), alloc(gpu.BF16, seqs, kvHeads, hd)
	kc, vc := alloc(gpu.BF16, blocks, bs, kvHeads, hd), alloc(gpu.BF16, blocks, bs, kvHeads, hd)
	out := alloc(gpu.BF16, seqs, heads, hd)
	pos, slots, lens := alloc(gpu.I32, seqs), alloc(gpu.I32, seqs), alloc(gpu.I32, seqs)
	starts, tables := alloc(gpu.I32, seqs+1), alloc(gpu.I32, seqs, per)
	for _, u := range []struct {
		t *gpu.Tensor
		v []gpu.BFloat16
	}{{w, bf16(w.Len())}, {bias, bf16(bias.Len())}, {wk, bf16(wk.Len())}, {wv, bf16(wv.Len())}, {norm, bf16(hd)}, {kc, bf16(kc.Len())}, {vc, bf16(vc.Len())}} {
		if err := gpu.Upload(u.t, u.v); err != nil {
			t.Fatal(err)
		}
	}
	q2, _ := q.View(seqs, heads*hd)
	k2, _ := k.View(seqs, kvHeads*hd)
	v2, _ := v.View(seqs, kvHeads*hd)
	tab := make([]int32, seqs*per)
	for i := range tab {
		tab[i] = int32(i)
	}
	if err := gpu.Upload(tables, tab); err != nil {
		t.Fatal(err)
	}
	if err := gpu.Upload(starts, []int32{0, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	rope := gpu.Rope{Theta: 10000}
	ab := gpu.AttnBatch{BlockTables: tables, ContextLens: lens, QueryStarts: starts, MaxQueryLen: 1, MaxContextLen: per * bs}
	step := func() error {
		if err := ops.MatMul(q2, x, w, bias); err != nil {
			return err
		}
		if err := ops.MatMul(k2, x, wk, nil); err != nil {
			return err
		}
		if err := ops.MatMul(v2, x, wv, nil); err != nil {
			return err
		}
		if err := ops.RMSNorm(q, q, nil, norm, 1e-6); err != nil {
			return err
		}
		if err := ops.RoPE(q, k, pos, rope); err != nil {
			return err
		}
		if err := ops.WriteKV(kc, vc, k, v, slots); err != nil {
			return err
		}
		return ops.Attention(out, q, kc, vc, ab)
	}
	// Two sets of inputs: hidden states, positions (contexts of 200 to
	// 250 keys: several splits for 3 sequences) and the slot of each new
	// token.
	type inputs struct {
		x           []gpu.BFloat16
		pos, slots  []int32
		lens, owner []int32
	}
	mk := func() inputs {
		in := inputs{x: bf16(seqs * hidden)}
		for s := range seqs {
			p := 200 + r.IntN(50)
			in.pos = append(in.pos, int32(p))
			in.lens = append(in.lens, int32(p+1))
			in.slots = append(in.slots, int32(s*per*bs+p))
		}
		return in
	}
	sets := []inputs{mk(), mk()}
	kc0, _ := gpu.ToHost[gpu.BFloat16](kc)
	vc0, _ := gpu.ToHost[gpu.BFloat16](vc)
	run := func(in inputs, launch func() error) []gpu.BFloat16 {
		t.Helper()
		// The same cache contents before every run: WriteKV changes them.
		for _, u := range []struct {
			t *gpu.Tensor
			v []gpu.BFloat16
		}{{kc, kc0}, {vc, vc0}, {x, in.x}} {
			if err := gpu.Upload(u.t, u.v); err != nil {
				t.Fatal(err)
			}
		}
		for _, u := range []struct {
			t *gpu.Tensor
			v []int32
		}{{pos, in.pos}, {slots, in.slots}, {lens, in.lens}} {
			if err := gpu.Upload(u.t, u.v); err != nil {
				t.Fatal(err)
			}
		}
		if err := launch(); err != nil {
			t.Fatal(err)
		}
		o, err := gpu.ToHost[gpu.BFloat16](out)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	var want [][]gpu.BFloat16
	for _, in := range sets {
		want = append(want, run(in, step)) // eager: also uploads the RoPE table
	}
	if slices.Equal(want[0], want[1]) {
		t.Fatal("the two input sets give the same output")
	}
	g, err := gr.Capture(step)
	if err != nil {
		t.Fatal(err)
	}
	for rep := range 2 {
		for i, in := range sets {
			if got := run(in, g.Launch); !slices.Equal(got, want[i]) {
				t.Errorf("replay %d of input set %d: the graph's output differs from the eager one", rep, i)
			}
		}
	}
	if err := g.Free(); err != nil {
		t.Fatal(err)
	}
	if err := g.Free(); err != nil {
		t.Errorf("a second Free: %v", err)
	}
	if err := g.Launch(); !errors.Is(err, gpu.ErrFreed) {
		t.Errorf("Launch after Free: %v, want ErrFreed", err)
	}

	// A failing record leaves no graph and the device usable.
	boom := errors.New("boom")
	if _, err := gr.Capture(func() error {
		if err := step(); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Errorf("Capture of a failing record: %v, want boom", err)
	}
	// RoPE with a table not uploaded yet cannot be recorded.
	if _, err := gr.Capture(func() error { return ops.RoPE(q, nil, pos, gpu.Rope{Theta: 12345}) }); !errors.Is(err, gpu.ErrArg) {
		t.Errorf("Capture of RoPE with a new table: %v, want ErrArg", err)
	}
	if got := run(sets[0], step); !slices.Equal(got, want[0]) {
		t.Error("eager output after failed captures differs")
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}
