package gpu

import "fmt"

// LoRAOps is an optional ability of Ops (detect it with a type assertion):
// the grouped LoRA product of multi-LoRA serving, Punica's SGMV and vLLM's
// lora_shrink + lora_expand, for a batch whose rows use different adapters.
// The caller lays rows of one adapter side by side (vLLM's
// unique_consecutive token mapping), so each adapter is one segment.
//
// Threading: LoRA follows the Device's rule, like every op. A backend
// without it leaves the caller to compose the product of MatMul and Add
// per segment.
type LoRAOps interface {
	// LoRA adds every segment's product into y: for each s in segs,
	// y[s.Lo:s.Hi, s.Col:s.Col+n] += (x[s.Lo:s.Hi]·s.Aᵀ)·s.Bᵀ, with x
	// [rows, in], y [rows, out], s.A [r, in] and s.B [n, r] (any scale
	// folded into B), r and n per segment. The shrink x·Aᵀ is accumulated
	// in float32 and kept unrounded for the expand; y is rounded once.
	// Segments may share rows only where their column ranges are disjoint
	// (the slices of a merged projection: gate and up of gate_up), so that
	// no element of y is added to twice; y must not overlap x, A or B.
	LoRA(y, x *Tensor, segs []LoRASegment) error
}

// LoRASegment is one adapter's pair applied to rows [Lo, Hi) of a LoRA
// call, over the columns of y from Col on (vLLM's output slice offset).
type LoRASegment struct {
	Lo, Hi int
	A, B   *Tensor // [r, in] and [n, r]
	Col    int
}

// CheckLoRA checks the arguments of LoRAOps.LoRA, for backends: float
// tensors, A [r, in] and B [n, r] of each segment fitting x [rows, in] and
// y [rows, out] at its rows and columns. It does not check that segments
// sharing rows have disjoint columns.
func CheckLoRA(y, x *Tensor, segs []LoRASegment) error {
	bad := func(err error, format string, args ...any) error {
		return fmt.Errorf("gpu: LoRA: %s: %w", fmt.Sprintf(format, args...), err)
	}
	if y == nil || x == nil {
		return bad(ErrShape, "y or x is nil")
	}
	if !y.DType().IsFloat() || !x.DType().IsFloat() {
		return bad(ErrDType, "y %s and x %s must be float", y, x)
	}
	rows, in, out := x.Rows(), x.Dim(-1), y.Dim(-1)
	if y.Rows() != rows {
		return bad(ErrShape, "y %s and x %s have different rows", y, x)
	}
	for i, s := range segs {
		if s.A == nil || s.B == nil {
			return bad(ErrShape, "segment %d: A or B is nil", i)
		}
		if !s.A.DType().IsFloat() || !s.B.DType().IsFloat() {
			return bad(ErrDType, "segment %d: A %s and B %s must be float", i, s.A, s.B)
		}
		r, n := s.A.Dim(0), s.B.Dim(0)
		switch {
		case s.A.NDim() != 2 || s.A.Dim(1) != in:
			return bad(ErrShape, "segment %d: A %s for x %s: want [r, %d]", i, s.A, x, in)
		case s.B.NDim() != 2 || s.B.Dim(1) != r:
			return bad(ErrShape, "segment %d: B %s for A %s: want [n, %d]", i, s.B, s.A, r)
		case s.Lo < 0 || s.Hi < s.Lo || s.Hi > rows:
			return bad(ErrShape, "segment %d: rows [%d, %d) of x %s", i, s.Lo, s.Hi, x)
		case s.Col < 0 || s.Col+n > out:
			return bad(ErrShape, "segment %d: columns [%d, %d) of y %s", i, s.Col, s.Col+n, y)
		}
	}
	return nil
}
