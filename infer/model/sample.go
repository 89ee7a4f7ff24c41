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
		want += b.Seqs[i].logitRows()
	}
	if s.NumRows() != want {
		return nil, fmt.Errorf("model: ForwardSample: %d sampling rows for %d sequences that want logits: %w", s.NumRows(), want, ErrBatch)
	}
	return m.forwardTokens(c, b, "ForwardSample", func(v *views) error {
		sb, err := m.samp.batch(m.dev, s)
		if err != nil {
			return err
		}
		return m.ops.Sample(v.argmax, v.logits, sb)
	})
}

// batch uploads s into the buffers, growing them (to a power of two) when
// s is larger than any step before, and returns views of its size.
func (sb *sampleBufs) batch(dev gpu.Device, s *gpu.SamplePack) (gpu.SampleBatch, error) {
	rows, edits := s.NumRows(), s.NumEdits()
	if rows > sb.rowCap || edits > sb.editCap {
		sb.vwSet = false
	}
	if err := growI32(dev, &sb.rows, &sb.rowCap, rows, gpu.SampleRowWords); err != nil {
		return gpu.SampleBatch{}, err
	}
	if err := growI32(dev, &sb.edits, &sb.editCap, edits, 3); err != nil {
		return gpu.SampleBatch{}, err
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

// growI32 replaces *t, an I32 [*capN, width] tensor, by one of n rows
// rounded up to a power of two (at least 8) when n is larger than *capN.
func growI32(dev gpu.Device, t **gpu.Tensor, capN *int, n, width int) error {
	if n <= *capN {
		return nil
	}
	c := 8
	for c < n {
		c *= 2
	}
	nt, err := dev.Alloc(gpu.I32, c, width)
	if err != nil {
		return err
	}
	(*t).Free() // nil-safe
	*t, *capN = nt, c
	return nil
}

func (sb *sampleBufs) free() {
	sb.rows.Free() // nil-safe
	sb.edits.Free()
	*sb = sampleBufs{}
}
