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

// LoRATableOps is an optional ability of Ops beside LoRAOps: the grouped
// LoRA product with the batch's adapter assignment in device memory, read
// by the kernels when they run rather than fixed when they are enqueued,
// so that work recorded once by a Grapher replays with whatever assignment
// was uploaded before each launch (vLLM's punica kernels under CUDA
// graphs). The adapters' pairs sit in a LoRATable of slots, filled when
// adapters load and emptied when they unload; a step uploads its segments
// (rows and the slot they use) into an I32 tensor. The launches of a call
// (grid, scratch) depend only on the shapes of y and x, the table's
// LoRATableShape and the number of rows of segs, never on their contents.
//
// Threading: as LoRAOps. LoRATable.Set uploads, so it may not run inside
// a Capture.
type LoRATableOps interface {
	// NewLoRATable returns a table of shape's slots, all empty.
	NewLoRATable(shape LoRATableShape) (LoRATable, error)
	// LoRAIndexed adds into y, for each segment (lo, hi, slot) of segs,
	// the products of the pairs in t's slot over rows [lo, hi), as
	// LoRA does with one segment per pair: y[lo:hi, p.Col:p.Col+n] +=
	// (x[lo:hi]·p.Aᵀ)·p.Bᵀ. segs is I32 [S, 3], read on the device: a row
	// whose slot is negative ends the list (the rows after it are not
	// read), and rows that are not a valid segment (lo < 0, hi ≤ lo, hi
	// past x's rows, slot ≥ t's slots) add nothing. Segments must not
	// share rows. x must have t's In columns, and y the columns of every
	// pair Set into t. Each element of y is rounded once, as LoRA rounds
	// it, and the sums are in an order that does not depend on segs: a
	// row's result is the same whatever the other segments are.
	LoRAIndexed(y, x *Tensor, t LoRATable, segs *Tensor) error
}

// LoRATable is a device table of adapter slots for one LoRA call site (a
// projection of a layer), made by LoRATableOps.NewLoRATable.
type LoRATable interface {
	// Shape is the table's shape.
	Shape() LoRATableShape
	// Set makes slot hold pairs (none: the slot is empty). The table keeps
	// the pairs' device addresses, not the tensors: empty a slot before
	// its tensors are freed. A pair of rank 0 adds nothing.
	Set(slot int, pairs []LoRAPair) error
	// Free releases the table once the work enqueued before it is done; a
	// second Free does nothing.
	Free()
}

// LoRAPair is one adapter's A [r, in] and B [n, r] (any scale folded into
// B), added into y's columns [Col, Col+n): a LoRASegment without rows.
type LoRAPair struct {
	A, B *Tensor
	Col  int
}

// LoRATableShape bounds the pairs a LoRATable holds; it fixes the launches
// of LoRAIndexed.
type LoRATableShape struct {
	Slots int // adapters the table holds at once
	Pairs int // most pairs a slot (2: gate and up of a merged gate_up)
	Rank  int // most rows of a pair's A
	In    int // columns of every A (x's)
	N     int // most rows of a pair's B (columns of y it adds into)
}

// Validate reports a shape NewLoRATable refuses: every bound positive.
func (s LoRATableShape) Validate() error {
	if s.Slots < 1 || s.Pairs < 1 || s.Rank < 1 || s.In < 1 || s.N < 1 {
		return fmt.Errorf("gpu: LoRA table shape %+v: every bound must be positive: %w", s, ErrShape)
	}
	return nil
}

// CheckLoRAPairs checks the arguments of LoRATable.Set, for backends:
// slot within the table, at most Pairs float pairs, each A [r ≤ Rank, In]
// and B [n ≤ N, r] with Col ≥ 0. It returns the largest Col+n, the columns
// y must have for the slot.
func CheckLoRAPairs(s LoRATableShape, slot int, pairs []LoRAPair) (int, error) {
	bad := func(err error, format string, args ...any) error {
		return fmt.Errorf("gpu: LoRATable.Set: slot %d: %s: %w", slot, fmt.Sprintf(format, args...), err)
	}
	switch {
	case slot < 0 || slot >= s.Slots:
		return 0, bad(ErrShape, "outside the table's %d slots", s.Slots)
	case len(pairs) > s.Pairs:
		return 0, bad(ErrShape, "%d pairs, the table takes %d a slot", len(pairs), s.Pairs)
	}
	end := 0
	for i, p := range pairs {
		if p.A == nil || p.B == nil {
			return 0, bad(ErrShape, "pair %d: A or B is nil", i)
		}
		if !p.A.DType().IsFloat() || !p.B.DType().IsFloat() {
			return 0, bad(ErrDType, "pair %d: A %s and B %s must be float", i, p.A, p.B)
		}
		r, n := p.A.Dim(0), p.B.Dim(0)
		switch {
		case p.A.NDim() != 2 || p.A.Dim(1) != s.In || r > s.Rank:
			return 0, bad(ErrShape, "pair %d: A %s: want [r ≤ %d, %d]", i, p.A, s.Rank, s.In)
		case p.B.NDim() != 2 || p.B.Dim(1) != r || n > s.N:
			return 0, bad(ErrShape, "pair %d: B %s for A %s: want [n ≤ %d, %d]", i, p.B, p.A, s.N, r)
		case p.Col < 0:
			return 0, bad(ErrShape, "pair %d: Col is %d", i, p.Col)
		}
		end = max(end, p.Col+n)
	}
	return end, nil
}

// CheckLoRAIndexed checks the arguments of LoRATableOps.LoRAIndexed, for
// backends: float x [rows, s.In] and y [rows, ≥ cols] (cols: the largest
// CheckLoRAPairs result of the table's slots), segs I32 [S, 3].
func CheckLoRAIndexed(y, x *Tensor, s LoRATableShape, cols int, segs *Tensor) error {
	bad := func(err error, format string, args ...any) error {
		return fmt.Errorf("gpu: LoRAIndexed: %s: %w", fmt.Sprintf(format, args...), err)
	}
	switch {
	case y == nil || x == nil || segs == nil:
		return bad(ErrShape, "y, x or segs is nil")
	case !y.DType().IsFloat() || !x.DType().IsFloat():
		return bad(ErrDType, "y %s and x %s must be float", y, x)
	case segs.DType() != I32:
		return bad(ErrDType, "segs %s must be I32", segs)
	case segs.NDim() != 2 || segs.Dim(1) != 3:
		return bad(ErrShape, "segs %s: want [S, 3]", segs)
	case y.Rows() != x.Rows():
		return bad(ErrShape, "y %s and x %s have different rows", y, x)
	case x.Dim(-1) != s.In:
		return bad(ErrShape, "x %s for a table of A [r, %d]", x, s.In)
	case y.Dim(-1) < cols:
		return bad(ErrShape, "y %s for a table whose pairs add into %d columns", y, cols)
	}
	return nil
}
