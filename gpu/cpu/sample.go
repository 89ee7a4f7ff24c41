package cpu

import (
	"math"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// Sample draws one token per row, as infer's host sampler does: it is the
// reference the cuda kernel is checked against. Rows run on the pool; the
// edits are checked on the calling goroutine.
func (d *Device) Sample(dst, logits *gpu.Tensor, b gpu.SampleBatch) error {
	rows, n, edits, err := check.Sample(dst, logits, b)
	if err != nil {
		return err
	}
	const op = "Sample"
	t := &d.sample
	ds, err := d.span(op, "dst", dst)
	if err != nil {
		return err
	}
	x, err := d.span(op, "logits", logits)
	if err != nil {
		return err
	}
	ps, err := d.span(op, "b.Rows", b.Rows)
	if err != nil {
		return err
	}
	var es []int32
	if b.Edits != nil {
		s, err := d.span(op, "b.Edits", b.Edits)
		if err != nil {
			return err
		}
		es = s.i32
	}
	t.rows = t.rows[:0]
	for r := range rows {
		p := gpu.UnpackSampleRow(ps.i32[r*gpu.SampleRowWords : (r+1)*gpu.SampleRowWords])
		if p.EditStart < 0 || p.EditEnd < p.EditStart || p.EditEnd > edits {
			return check.Index(op, "b.Rows edit range", r, p.EditEnd, edits+1)
		}
		for e := p.EditStart; e < p.EditEnd; e++ {
			if err := check.Index(op, "b.Edits token", e, int(es[3*e]), n); err != nil {
				return err
			}
		}
		t.rows = append(t.rows, p)
	}
	for len(t.work) < len(d.scratch) {
		t.work = append(t.work, new(sampleWork))
	}
	t.dst, t.x, t.edits, t.n = ds.i32, x.f32, es, n
	d.pool.parallel(t, rows, 1)
	return nil
}

type sampleTask struct {
	rows  []gpu.PackedSampleRow
	dst   []int32
	x     []float32
	edits []int32
	n     int
	work  []*sampleWork // one per worker
}

// sampleWork is one worker's scratch.
type sampleWork struct{ gpu.HostDraw }

func (t *sampleTask) run(w, lo, hi int) {
	s := t.work[w]
	for r := lo; r < hi; r++ {
		x := t.x[r*t.n : (r+1)*t.n]
		p := &t.rows[r]
		for e := p.EditStart; e < p.EditEnd; e++ {
			x[t.edits[3*e]] = editLogit(x[t.edits[3*e]], t.edits[3*e+1], t.edits[3*e+2], p)
		}
		t.dst[r] = s.sample(x, p)
	}
}

// editLogit applies one edit: min_tokens mask, repetition, then frequency
// and presence penalties, each rounded to float32 (no fused multiply-add).
func editLogit(v float32, count, flags int32, p *gpu.PackedSampleRow) float32 {
	if flags&gpu.SampleEditMask != 0 {
		v = float32(math.Inf(-1))
	}
	if flags&gpu.SampleEditSeen != 0 {
		if v > 0 {
			v /= p.Repetition
		} else {
			v *= p.Repetition
		}
	}
	if count > 0 {
		v -= float32(p.Freq*float32(count)) + p.Presence
	}
	return v
}

// sample draws from the edited row x (read only): its argmax when the row
// is greedy, else gpu.HostDraw's draw.
func (s *sampleWork) sample(x []float32, p *gpu.PackedSampleRow) int32 {
	if p.InvTemperature == 0 {
		best := 0
		for i, v := range x {
			if v > x[best] {
				best = i
			}
		}
		return int32(best)
	}
	return s.Draw(x, p.InvTemperature, p.TopK, p.TopP, p.MinP, p.U)
}
