package gpu

import "fmt"

// QuantFormat says how a QuantWeight's elements are encoded.
type QuantFormat uint8

// The quantized weight formats. Loaders repack every checkpoint layout (FP8
// per tensor or per channel; AWQ and GPTQ int4, act_order included) into one
// of these, so that a backend has one kernel per format.
const (
	// QuantFP8: Data is F8E4M3 [n, k]; Scales is F32 [n], one per output
	// row (a per-tensor scale is repeated). W[r][c] = Data[r][c]·Scales[r].
	QuantFP8 QuantFormat = iota + 1
	// QuantInt4: Data is I32 [n, k/8], each word holding 8 consecutive
	// columns of one output row, column 8j+i in bits 4i to 4i+3 of word j;
	// Scales and Zeros are F32 [n, groups]; Groups is I32 [segs, k], the
	// group of each column for each of segs equal bands of rows (several
	// when projections with their own GPTQ act_order are merged).
	// W[r][c] = (q − Zeros[r][g])·Scales[r][g], g = Groups[r/(n/segs)][c].
	QuantInt4
)

func (f QuantFormat) String() string {
	switch f {
	case QuantFP8:
		return "fp8"
	case QuantInt4:
		return "int4"
	}
	return fmt.Sprintf("quant(%d)", uint8(f))
}

// QuantWeight is a [n, k] linear weight (torch.nn.Linear's layout) held
// quantized on a device. Its tensors belong to whoever built it, who frees
// them (Free).
type QuantWeight struct {
	Format              QuantFormat
	N, K                int
	Data, Scales, Zeros *Tensor
	Groups              *Tensor
}

// Free frees the weight's tensors.
func (w *QuantWeight) Free() {
	if w == nil {
		return
	}
	for _, t := range []*Tensor{w.Data, w.Scales, w.Zeros, w.Groups} {
		t.Free()
	}
}

// Bytes is the device memory the weight's tensors take.
func (w *QuantWeight) Bytes() int {
	n := 0
	for _, t := range []*Tensor{w.Data, w.Scales, w.Zeros, w.Groups} {
		if t != nil {
			n += t.Bytes()
		}
	}
	return n
}

// Check reports whether the tensors match the format's shapes and dtypes,
// naming the tensor that does not. Backends call it before they read w.
func (w *QuantWeight) Check() error {
	if w == nil {
		return fmt.Errorf("gpu: quantized weight is nil: %w", ErrArg)
	}
	// want checks t is dt of rank 1 ([d0]) or 2 ([d0, d1]); d1 < 0 means
	// rank 1. The shape slice is built only for the error, so that a
	// QMatMul allocates nothing.
	want := func(name string, t *Tensor, dt DType, d0, d1 int) error {
		rank := 2
		if d1 < 0 {
			rank = 1
		}
		if t != nil && t.DType() == dt && t.NDim() == rank && t.Dim(0) == d0 && (rank == 1 || t.Dim(1) == d1) {
			return nil
		}
		shape := []int{d0, d1}[:rank]
		if t == nil {
			return fmt.Errorf("gpu: %s weight [%d, %d]: %s is nil, want %s%v: %w", w.Format, w.N, w.K, name, dt, shape, ErrShape)
		}
		return fmt.Errorf("gpu: %s weight [%d, %d]: %s is %s, want %s%v: %w", w.Format, w.N, w.K, name, t, dt, shape, ErrShape)
	}
	if w.N <= 0 || w.K <= 0 {
		return fmt.Errorf("gpu: quantized weight [%d, %d]: %w", w.N, w.K, ErrShape)
	}
	switch w.Format {
	case QuantFP8:
		if err := want("data", w.Data, F8E4M3, w.N, w.K); err != nil {
			return err
		}
		return want("scales", w.Scales, F32, w.N, -1)
	case QuantInt4:
		if w.K%8 != 0 {
			return fmt.Errorf("gpu: int4 weight [%d, %d]: k is not a multiple of 8: %w", w.N, w.K, ErrShape)
		}
		if err := want("data", w.Data, I32, w.N, w.K/8); err != nil {
			return err
		}
		if w.Scales == nil || w.Scales.NDim() != 2 {
			return want("scales", w.Scales, F32, w.N, 1)
		}
		g := w.Scales.Dim(1)
		if err := want("scales", w.Scales, F32, w.N, g); err != nil {
			return err
		}
		if err := want("zeros", w.Zeros, F32, w.N, g); err != nil {
			return err
		}
		if w.Groups == nil || w.Groups.NDim() != 2 || w.Groups.Dim(0) <= 0 || w.N%w.Groups.Dim(0) != 0 {
			return fmt.Errorf("gpu: int4 weight [%d, %d]: groups %s must be I32 [segs, %d] with segs dividing %d: %w", w.N, w.K, w.Groups, w.K, w.N, ErrShape)
		}
		return want("groups", w.Groups, I32, w.Groups.Dim(0), w.K)
	}
	return fmt.Errorf("gpu: quantized weight format %v: %w", w.Format, ErrArg)
}

// QuantOps is a device's matrix product with quantized weights, dequantized
// inside the product: no float copy of the whole weight is made. It is
// optional: detect it on a Device's Ops with a type assertion. It follows
// the Device's threading and ordering rules.
type QuantOps interface {
	// QMatMul computes c = a·Wᵀ + bias as Ops.MatMul does, with W the
	// dequantized w: a [m, k] (or [..., k]), bias [n] or nil, c [m, n],
	// float32 accumulation. Group indices out of range are ErrIndex.
	QMatMul(c, a *Tensor, w *QuantWeight, bias *Tensor) error
}
