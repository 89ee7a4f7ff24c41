package model

import (
	"fmt"

	"github.com/sluicehq/sluice/gpu"
)

// sampleBufs hold ForwardSample's per-row parameters and logit edits on
// the device, grown to the largest step so far, with views of them for
// the last shape.
type sampleBufs struct {
	rows, edits     *gpu.Tensor // I32 [rowCap, SampleRowWords], [editCap, 3]
	rowCap, editCap int
	vkey            [2]int // rows and edits of vw
	vw              gpu.SampleBatch
	vwSet           bool
}

// ForwardSample runs one step as Forward does but returns, instead of the
// logits, the token drawn for each wanted row on the device (gpu.Ops.Sample)
// with the parameters, uniforms and logit edits of s, one row of s per
// wanted row in order: only s and the token ids cross between host and
// device. The returned slice is reused by the next call.
func (m *Model) ForwardSample(c *Cache, b *Batch, s *gpu.SamplePack) ([]int32, error) {
	want := 0
	for i := range b.Seqs {
		if b.Seqs[i].WantLogits {
			want++
		}
	}
	if s.NumRows() != want {
		return nil, fmt.Errorf("model: ForwardSample: %d sampling rows for %d sequences that want logits: %w", s.NumRows(), want, ErrBatch)
	}
	key, v, err := m.forwardHead(c, b)
	if err != nil || key.tokens == 0 {
		return nil, err
	}
	st := &m.step
	out := st.argOut[:key.logits]
	if key.logits == 0 {
		return out, nil
	}
	sb, err := m.samp.batch(m.dev, s)
	if err != nil {
		return nil, fmt.Errorf("model: ForwardSample: %w", err)
	}
	if err := m.ops.Sample(v.argmax, v.logits, sb); err != nil {
		return nil, fmt.Errorf("model: ForwardSample: %w", err)
	}
	if err := gpu.Download(out, v.argmax); err != nil {
		return nil, fmt.Errorf("model: ForwardSample: %w", err)
	}
	return out, nil
}

// batch uploads s into the buffers, growing them (to a power of two) when
// s is larger than any step before, and returns views of its size.
func (sb *sampleBufs) batch(dev gpu.Device, s *gpu.SamplePack) (gpu.SampleBatch, error) {
	rows, edits := s.NumRows(), s.NumEdits()
	if rows > sb.rowCap {
		t, err := dev.Alloc(gpu.I32, grow(rows), gpu.SampleRowWords)
		if err != nil {
			return gpu.SampleBatch{}, err
		}
		if sb.rows != nil {
			sb.rows.Free()
		}
		sb.rows, sb.rowCap, sb.vwSet = t, grow(rows), false
	}
	if edits > sb.editCap {
		t, err := dev.Alloc(gpu.I32, grow(edits), 3)
		if err != nil {
			return gpu.SampleBatch{}, err
		}
		if sb.edits != nil {
			sb.edits.Free()
		}
		sb.edits, sb.editCap, sb.vwSet = t, grow(edits), false
	}
	if !sb.vwSet || sb.vkey != [2]int{rows, edits} {
		var err error
		if sb.vw.Rows, err = sb.rows.Slice(0, rows); err != nil {
			return gpu.SampleBatch{}, err
		}
		sb.vw.Edits = nil
		if edits > 0 {
			if sb.vw.Edits, err = sb.edits.Slice(0, edits); err != nil {
				return gpu.SampleBatch{}, err
			}
		}
		sb.vkey, sb.vwSet = [2]int{rows, edits}, true
	}
	if err := dev.Upload(sb.vw.Rows, s.Rows); err != nil {
		return gpu.SampleBatch{}, err
	}
	if edits > 0 {
		if err := dev.Upload(sb.vw.Edits, s.Edits); err != nil {
			return gpu.SampleBatch{}, err
		}
	}
	return sb.vw, nil
}

// grow rounds n up to a power of two, at least 8.
func grow(n int) int {
	c := 8
	for c < n {
		c *= 2
	}
	return c
}

func (sb *sampleBufs) free() {
	for _, t := range []*gpu.Tensor{sb.rows, sb.edits} {
		if t != nil {
			t.Free()
		}
	}
	*sb = sampleBufs{}
}
