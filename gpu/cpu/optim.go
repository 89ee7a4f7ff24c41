package cpu

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sluicehq/sluice/gpu"
)

// The optimizer ops run gpu's reference loops (AdamW.Apply, SGD.Apply,
// SumSquares) over chunks of the buffers on the pool: each element is
// computed alone, so the chunking changes nothing and the results are those
// of the host loops bit for bit.

var _ gpu.OptimOps = (*Device)(nil)

// optimChunk is the elements one pool task updates.
const optimChunk = 1 << 14

// Zero clears t.
func (d *Device) Zero(t *gpu.Tensor) error {
	b, err := d.bytes("Zero", "t", t)
	if err != nil {
		return err
	}
	clear(b)
	return nil
}

// SumSquares sums each source on one worker, in index order.
func (d *Device) SumSquares(dst *gpu.Tensor, srcs []*gpu.Tensor) error {
	s, err := d.span("SumSquares", "dst", dst)
	if err != nil {
		return err
	}
	if s.dt != gpu.I32 || len(s.i32) != 2*len(srcs) {
		return fmt.Errorf("gpu: SumSquares: dst %s, want I32 [%d] (two words per source): %w", dst, 2*len(srcs), gpu.ErrShape)
	}
	vs := make([][]float32, len(srcs))
	for j, t := range srcs {
		if vs[j], err = d.f32("SumSquares", fmt.Sprintf("srcs[%d]", j), t); err != nil {
			return err
		}
	}
	out, _ := d.bytes("SumSquares", "dst", dst)
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		for j := lo; j < hi; j++ {
			binary.LittleEndian.PutUint64(out[8*j:], math.Float64bits(gpu.SumSquares(vs[j])))
		}
	}), len(srcs), 1)
	return nil
}

// optimBufs resolves one step's f32 tensors and checks they have one length.
func (d *Device) optimBufs(op string, names []string, ts ...*gpu.Tensor) ([][]float32, error) {
	vs, err := d.f32s(op, names, ts...)
	if err != nil {
		return nil, err
	}
	for i, v := range vs {
		if ts[i] == nil {
			return nil, fmt.Errorf("gpu: %s: %s is nil: %w", op, names[i], gpu.ErrShape)
		}
		if len(v) != len(vs[0]) {
			return nil, fmt.Errorf("gpu: %s: %s %s and %s %s differ in length: %w", op, names[0], ts[0], names[i], ts[i], gpu.ErrShape)
		}
	}
	return vs, nil
}

// AdamWStep runs h.Apply over chunks.
func (d *Device) AdamWStep(w, g, m, v *gpu.Tensor, h gpu.AdamW) error {
	vs, err := d.optimBufs("AdamWStep", []string{"w", "g", "m", "v"}, w, g, m, v)
	if err != nil {
		return err
	}
	n := len(vs[0])
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		a, b := lo*optimChunk, min(hi*optimChunk, n)
		h.Apply(vs[0][a:b], vs[1][a:b], vs[2][a:b], vs[3][a:b])
	}), (n+optimChunk-1)/optimChunk, 1)
	return nil
}

// SGDStep runs h.Apply over chunks.
func (d *Device) SGDStep(w, g, m *gpu.Tensor, h gpu.SGD) error {
	vs, err := d.optimBufs("SGDStep", []string{"w", "g", "m"}, w, g, m)
	if err != nil {
		return err
	}
	n := len(vs[0])
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		a, b := lo*optimChunk, min(hi*optimChunk, n)
		h.Apply(vs[0][a:b], vs[1][a:b], vs[2][a:b])
	}), (n+optimChunk-1)/optimChunk, 1)
	return nil
}
