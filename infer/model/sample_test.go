package model

import (
	"errors"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

// TestForwardSample checks that ForwardSample draws, from the step's own
// logits, the tokens gpu.Ops.Sample draws from Forward's, with edits (a
// greedy row whose argmax is masked) and non-greedy rows; that it refuses a
// pack whose rows do not match the wanted rows; and (openCPU's leak check)
// that Close frees its buffers.
func TestForwardSample(t *testing.T) {
	dev := openCPU(t)
	m := load(t, dev, "llama3", gpu.F32)
	vocab := m.Config().Vocab
	batch := func(c *Cache) *Batch {
		bl := newBlocks(32, 3)
		b := &Batch{}
		for i, n := range []int{5, 3, 7} {
			toks := make([]int32, n)
			for j := range toks {
				toks[j] = int32((i*31 + j*7) % vocab)
			}
			b.Seqs = append(b.Seqs, SeqInput{Tokens: toks, BlockTable: bl.cover(t, nil, n, 4), WantLogits: i != 1})
		}
		return b
	}
	ca, cb := newCache(t, m, 32, 4), newCache(t, m, 32, 4)
	logits, err := m.Forward(ca, batch(ca))
	if err != nil {
		t.Fatal(err)
	}
	logits = slices.Clone(logits)
	first := argmax(logits[:vocab])

	var pack gpu.SamplePack
	pack.Add(gpu.SampleRow{TopP: 1, Repetition: 1}, []gpu.SampleEdit{{Token: first, Mask: true}})
	pack.Add(gpu.SampleRow{Temperature: 0.7, TopK: 20, TopP: 0.9, Repetition: 1, U: 0.37}, nil)
	if _, err := m.ForwardSample(cb, batch(cb), &gpu.SamplePack{Rows: pack.Rows[:4*gpu.SampleRowWords]}); !errors.Is(err, ErrBatch) {
		t.Errorf("ForwardSample with 1 row for 2 wanted: %v, want ErrBatch", err)
	}
	got, err := m.ForwardSample(cb, batch(cb), &pack)
	if err != nil {
		t.Fatal(err)
	}

	lt, err := gpu.FromHost(dev, logits, 2, vocab)
	if err != nil {
		t.Fatal(err)
	}
	defer lt.Free()
	rows, err := dev.Alloc(gpu.I32, 2, gpu.SampleRowWords)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Free()
	edits, err := dev.Alloc(gpu.I32, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer edits.Free()
	dst, err := dev.Alloc(gpu.I32, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Free()
	if err := dev.Upload(rows, pack.Rows); err != nil {
		t.Fatal(err)
	}
	if err := dev.Upload(edits, pack.Edits); err != nil {
		t.Fatal(err)
	}
	if err := dev.Ops().Sample(dst, lt, gpu.SampleBatch{Rows: rows, Edits: edits}); err != nil {
		t.Fatal(err)
	}
	want, err := gpu.ToHost[int32](dst)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ForwardSample = %v, Sample over Forward's logits = %v", got, want)
	}
	if got[0] == first {
		t.Errorf("greedy row with its argmax %d masked drew it anyway", first)
	}
}
