package cuda

import (
	"fmt"

	"github.com/sluicehq/sluice/gpu"
)

// The optimizer ops (gpu.OptimOps) are the optimizer section of sluice.cu:
// AdamWStep and SGDStep one thread per element, every operation rounded
// as gpu.AdamW.Apply and gpu.SGD.Apply round it (the _rn intrinsics), so
// they match the cpu device bit for bit; SumSquares sums in double in a
// fixed order (per-block trees, then the blocks in order), which differs
// from the cpu's index order in the last bits but repeats run to run.

var _ gpu.OptimOps = (*Device)(nil)

// optimFuncs are the optimizer kernels New looks up.
type optimFuncs struct {
	adamwStep, sgdStep, sumSqPart, sumSqFinal uintptr
}

func (f *optimFuncs) table() []kernelFunc {
	return []kernelFunc{
		{&f.adamwStep, "adamwStep"}, {&f.sgdStep, "sgdStep"}, {&f.sumSqPart, "sumSqPart"}, {&f.sumSqFinal, "sumSqFinal"},
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// Zero fills t with zero words (fillF32 of 0.0 is all zero bits).
func (d *Device) Zero(t *gpu.Tensor) error {
	p, err := d.ptrs("Zero", []string{"t"}, t)
	if err != nil {
		return err
	}
	if t == nil {
		return fmt.Errorf("gpu: Zero: t is nil: %w", gpu.ErrShape)
	}
	n := t.Bytes()
	if n%4 != 0 {
		return fmt.Errorf("gpu: Zero: %s has %d bytes, the cuda backend clears whole 4-byte words: %w", t, n, gpu.ErrShape)
	}
	if n == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("fillF32", d.fn.bwd.fillF32, d.grid1(n/4), 256, p[0], i64(n/4), f32(0))
}

// optimArgs checks one step's tensors (F32, one length) and resolves them.
func (d *Device) optimArgs(op string, names []string, ts ...*gpu.Tensor) ([8]uint64, int, error) {
	for i, t := range ts {
		if t == nil {
			return [8]uint64{}, 0, fmt.Errorf("gpu: %s: %s is nil: %w", op, names[i], gpu.ErrShape)
		}
		if t.DType() != gpu.F32 {
			return [8]uint64{}, 0, fmt.Errorf("gpu: %s: %s %s: the optimizer ops take f32: %w", op, names[i], t, gpu.ErrDType)
		}
		if t.Len() != ts[0].Len() {
			return [8]uint64{}, 0, fmt.Errorf("gpu: %s: %s %s and %s %s differ in length: %w", op, names[0], ts[0], names[i], t, gpu.ErrShape)
		}
	}
	p, err := d.ptrs(op, names, ts...)
	return p, ts[0].Len(), err
}

// AdamWStep launches adamwStep with the coefficients computed here.
func (d *Device) AdamWStep(w, g, m, v *gpu.Tensor, h gpu.AdamW) error {
	p, n, err := d.optimArgs("AdamWStep", []string{"w", "g", "m", "v"}, w, g, m, v)
	if err != nil || n == 0 {
		return err
	}
	decay, b1, b2, stepSize, bc2sqrt, eps := h.Coefficients()
	c := h.GradScale
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("adamwStep", d.fn.opt.adamwStep, d.grid1(n), 256, p[0], p[1], p[2], p[3], i64(n),
		f32(c), b2u(c != 0 && c != 1), b2u(h.WeightDecay != 0), f32(decay), f32(b1), f32(b2), f32(stepSize), f32(bc2sqrt), f32(eps))
}

// SGDStep launches sgdStep.
func (d *Device) SGDStep(w, g, m *gpu.Tensor, h gpu.SGD) error {
	p, n, err := d.optimArgs("SGDStep", []string{"w", "g", "m"}, w, g, m)
	if err != nil || n == 0 {
		return err
	}
	c := h.GradScale
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("sgdStep", d.fn.opt.sgdStep, d.grid1(n), 256, p[0], p[1], p[2], i64(n),
		f32(c), b2u(c != 0 && c != 1), f32(float32(h.Momentum)), f32(float32(h.WeightDecay)), f32(float32(h.LR)), b2u(h.Step == 1))
}

// SumSquares runs sumSqPart over each source into a scratch of partial
// sums, then sumSqFinal into dst's words 2j, 2j+1.
func (d *Device) SumSquares(dst *gpu.Tensor, srcs []*gpu.Tensor) error {
	const op = "SumSquares"
	if dst == nil || dst.DType() != gpu.I32 || dst.Len() != 2*len(srcs) {
		return fmt.Errorf("gpu: %s: dst %v, want I32 [%d] (two words per source): %w", op, dst, 2*len(srcs), gpu.ErrShape)
	}
	pd, err := d.ptrs(op, []string{"dst"}, dst)
	if err != nil {
		return err
	}
	src := make([]uint64, len(srcs))
	blocks := 1
	for j, t := range srcs {
		if t == nil || t.DType() != gpu.F32 {
			return fmt.Errorf("gpu: %s: srcs[%d] %v: the optimizer ops take f32: %w", op, j, t, gpu.ErrDType)
		}
		p, err := d.ptrs(op, []string{fmt.Sprintf("srcs[%d]", j)}, t)
		if err != nil {
			return err
		}
		src[j] = p[0]
		blocks = max(blocks, d.grid1(t.Len())[0])
	}
	if len(srcs) == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.withScratch(8*blocks, func(part uint64) error {
		for j, t := range srcs {
			n := t.Len()
			parts := max(1, d.grid1(n)[0])
			if err := d.launch("sumSqPart", d.fn.opt.sumSqPart, [3]int{parts, 1, 1}, 256, part, src[j], i64(n)); err != nil {
				return err
			}
			if err := d.launch("sumSqFinal", d.fn.opt.sumSqFinal, [3]int{1, 1, 1}, 32, pd[0]+uint64(8*j), part, i64(parts)); err != nil {
				return err
			}
		}
		return nil
	})
}
