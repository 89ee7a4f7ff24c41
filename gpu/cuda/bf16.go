package cuda

import (
	"fmt"

	"github.com/sluicehq/sluice/gpu"
)

// At PrecisionBF16 the f32 GEMMs of MatMul and MatMulBackward take bf16
// operands: each f32 input is rounded to bf16 (convert, round to nearest
// even) into scratch and cuBLAS multiplies bf16 × bf16 into the f32
// output with f32 accumulation, on the bf16 tensor cores. (Asking cuBLAS
// for CUBLAS_COMPUTE_32F_FAST_16BF on f32 operands is what PrecisionBF16
// did before: cuBLAS is free to pick TF32 kernels then, and on the H100 it
// did, at half the bf16 rate.) Weights need not be rounded at every GEMM:
// CacheBF16 keeps a bf16 copy of each tensor it is given, and the GEMMs
// use the copy in place of the tensor until the next CacheBF16 of it or
// DropBF16. Training caches its weights after every change of them (an
// optimizer step, an upload), so a step's micro-batches round each weight
// once; a GEMM of a tensor changed since its copy was made would read the
// old values, which is the caller's contract to avoid.

// bf16Key is a cached tensor: its allocation (the Go object, so that an
// address reused after a free is never taken for it), offset and length.
type bf16Key struct {
	b      *buffer
	off, n int
}

func keyBF16(t *gpu.Tensor) (bf16Key, bool) {
	b, ok := t.Buffer().(*buffer)
	return bf16Key{b, t.Offset(), t.Len()}, ok
}

// CacheBF16 (re)makes the bf16 copies of the f32 tensors ts that the
// GEMMs at PrecisionBF16 read in their place.
func (d *Device) CacheBF16(ts ...*gpu.Tensor) error {
	const op = "CacheBF16"
	for _, t := range ts {
		if err := f32Only(op, []string{"t"}, t); err != nil {
			return err
		}
		p, err := d.ptr(op, "t", t)
		if err != nil {
			return err
		}
		key, _ := keyBF16(t)
		c := d.bf16[key]
		if c == nil {
			if c, err = d.Alloc(gpu.BF16, t.Len()); err != nil {
				return fmt.Errorf("cuda: CacheBF16 %s: %w", t, err)
			}
			if d.bf16 == nil {
				d.bf16 = map[bf16Key]*gpu.Tensor{}
			}
			d.bf16[key] = c
		}
		cp, err := d.ptr(op, "copy", c)
		if err != nil {
			return err
		}
		if err := d.enter(); err != nil {
			return err
		}
		err = d.launch("convert", d.fn.convert, d.grid1(t.Len()), 256, cp, uint64(gpu.BF16), p, uint64(gpu.F32), i64(t.Len()))
		d.leave()
		if err != nil {
			return err
		}
	}
	return nil
}

// DropBF16 frees every copy CacheBF16 made.
func (d *Device) DropBF16() {
	for _, c := range d.bf16 {
		c.Free()
	}
	clear(d.bf16)
}

// bf16Operands gives the GEMMs at PrecisionBF16 their bf16 inputs: for
// each f32 tensor ts[i] at address ps[i] (nil: left 0), its CacheBF16 copy
// or a rounding into scratch taken through tmp; a bf16 one as it is. The
// caller holds enter.
func (d *Device) bf16Operands(tmp func(int) (uint64, error), ts []*gpu.Tensor, ps []uint64) ([]uint64, error) {
	out := make([]uint64, len(ts))
	for i, t := range ts {
		if t == nil {
			continue
		}
		if t.DType() == gpu.BF16 {
			out[i] = ps[i] // a bf16 activation, as it is
			continue
		}
		if key, ok := keyBF16(t); ok {
			if c := d.bf16[key]; c != nil && !key.b.released {
				p, err := d.ptr("bf16 operand", "copy", c)
				if err != nil {
					return nil, err
				}
				out[i] = p
				continue
			}
		}
		s, err := tmp(2 * t.Len())
		if err != nil {
			return nil, err
		}
		if err := d.launch("convert", d.fn.convert, d.grid1(t.Len()), 256, s, uint64(gpu.BF16), ps[i], uint64(gpu.F32), i64(t.Len())); err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// scratchSet is an op's scratch pieces, freed together at its end: an op
// takes them with take and defers release(&err).
type scratchSet struct {
	d  *Device
	ps []uintptr
}

func (s *scratchSet) take(bytes int) (uint64, error) {
	p, err := s.d.scratch(bytes)
	if err != nil {
		return 0, err
	}
	s.ps = append(s.ps, p)
	return uint64(p), nil
}

// release frees the pieces, setting *err to the first failure where it is
// nil.
func (s *scratchSet) release(err *error) {
	for _, p := range s.ps {
		if ferr := s.d.freeScratch(p); ferr != nil && *err == nil {
			*err = ferr
		}
	}
	s.ps = nil
}

// realBF16 says whether GEMMs over f32 inputs take bf16 operands.
func (d *Device) realBF16() bool { return d.prec == PrecisionBF16 }

// mixedBF16 says whether a GEMM of a and b takes bf16Operands at
// PrecisionBF16: both f32 or bf16 and at least one f32 (training's f32
// weights with a bf16 activation, or the other way round).
func (d *Device) mixedBF16(a, b *gpu.Tensor) bool {
	fb := func(t *gpu.Tensor) bool { return t.DType() == gpu.F32 || t.DType() == gpu.BF16 }
	return d.realBF16() && fb(a) && fb(b) && (a.DType() == gpu.F32 || b.DType() == gpu.F32)
}
