package gpu

import (
	"fmt"
	"math"
	"strings"
)

// MaxDims is the largest rank a Tensor may have.
const MaxDims = 6

// Buffer is one allocation in a device's memory. Backends implement it; a
// Tensor that owns a Buffer releases it on Free, and views share it.
type Buffer interface {
	// Size is the length of the allocation in bytes.
	Size() int
	// Release returns the memory to the device. Tensor.Free calls it once.
	Release()
}

// Tensor is a dense, row-major array of one DType held by a Device. A
// Tensor either owns its Buffer (from Device.Alloc) or is a view of another
// tensor's (from Slice or View): views copy nothing and must not outlive the
// owner's Free.
//
// A Tensor's metadata is immutable; its contents change only through its
// Device's Upload, Copy and Ops.
type Tensor struct {
	dev   Device
	buf   Buffer
	off   int // bytes from the start of buf
	dtype DType
	ndim  int
	shape [MaxDims]int
	view  bool
	freed bool
}

// NewTensor wraps buf, from dev, as a tensor of the given dtype and shape
// that owns buf. It is for backends implementing Device.Alloc.
func NewTensor(dev Device, buf Buffer, dt DType, shape ...int) (*Tensor, error) {
	t := &Tensor{dev: dev, buf: buf, dtype: dt}
	if err := t.setShape(shape); err != nil {
		return nil, err
	}
	if n := t.Bytes(); n > buf.Size() {
		return nil, fmt.Errorf("gpu: tensor %s needs %d bytes, buffer holds %d: %w", t, n, buf.Size(), ErrShape)
	}
	return t, nil
}

// CheckShape reports whether a tensor of dt and shape may exist, and returns
// its size in bytes. Backends call it before allocating.
func CheckShape(dt DType, shape ...int) (int, error) {
	if !dt.Valid() {
		return 0, fmt.Errorf("gpu: %v: %w", dt, ErrDType)
	}
	if len(shape) == 0 || len(shape) > MaxDims {
		return 0, fmt.Errorf("gpu: rank %d, want 1 to %d: %w", len(shape), MaxDims, ErrShape)
	}
	n := dt.Size()
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("gpu: shape %v has a negative dimension: %w", shape, ErrShape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("gpu: shape %v is too large: %w", shape, ErrShape)
		}
		n *= d
	}
	return n, nil
}

func (t *Tensor) setShape(shape []int) error {
	if _, err := CheckShape(t.dtype, shape...); err != nil {
		return err
	}
	t.ndim = copy(t.shape[:], shape)
	return nil
}

// Device is the device holding t.
func (t *Tensor) Device() Device { return t.dev }

// DType is t's element type.
func (t *Tensor) DType() DType { return t.dtype }

// NDim is t's rank.
func (t *Tensor) NDim() int { return t.ndim }

// Dim is the size of dimension i; negative i counts from the end, so Dim(-1)
// is the innermost. It returns 0 for a dimension t does not have.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += t.ndim
	}
	if i < 0 || i >= t.ndim {
		return 0
	}
	return t.shape[i]
}

// Shape returns a copy of t's dimensions.
func (t *Tensor) Shape() []int { return append([]int(nil), t.shape[:t.ndim]...) }

// Len is the number of elements.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.shape[:t.ndim] {
		n *= d
	}
	return n
}

// Rows is the product of all dimensions but the last: the number of rows an
// op that works along the last dimension sees.
func (t *Tensor) Rows() int {
	n := 1
	for _, d := range t.shape[:t.ndim-1] {
		n *= d
	}
	return n
}

// Bytes is the size of t's elements in bytes.
func (t *Tensor) Bytes() int { return t.Len() * t.dtype.Size() }

// Buffer is the allocation t lives in, for backends.
func (t *Tensor) Buffer() Buffer { return t.buf }

// Offset is where t starts in Buffer, in bytes, for backends.
func (t *Tensor) Offset() int { return t.off }

// IsView reports whether t shares another tensor's buffer.
func (t *Tensor) IsView() bool { return t.view }

// Slice returns the view of rows [lo, hi) along dimension 0.
func (t *Tensor) Slice(lo, hi int) (*Tensor, error) {
	if lo < 0 || hi < lo || hi > t.shape[0] {
		return nil, fmt.Errorf("gpu: Slice(%d, %d) of %s: %w", lo, hi, t, ErrShape)
	}
	v := *t
	v.view, v.freed = true, false
	v.shape[0] = hi - lo
	v.off = t.off + lo*(t.Len()/max(t.shape[0], 1))*t.dtype.Size()
	return &v, nil
}

// View returns a view of t's elements with another shape of the same
// length, as a reshape of a contiguous array: [tokens, heads*d] viewed as
// [tokens, heads, d], for instance.
func (t *Tensor) View(shape ...int) (*Tensor, error) {
	v := *t
	v.view, v.freed = true, false
	if err := v.setShape(shape); err != nil {
		return nil, err
	}
	if v.Len() != t.Len() {
		return nil, fmt.Errorf("gpu: View %v of %s changes the length: %w", shape, t, ErrShape)
	}
	return &v, nil
}

// Free releases the memory of a tensor that owns it; later use of the tensor
// or of its views is an error (ErrFreed). Free on a view does nothing, and a
// second Free does nothing. Like the ops, Free is ordered after work already
// enqueued on the device, and follows the Device's threading rule.
func (t *Tensor) Free() {
	if t == nil || t.view || t.freed {
		return
	}
	t.freed = true
	t.buf.Release()
}

// String formats t as dtype[d0 d1 ...], as errors show it.
func (t *Tensor) String() string {
	if t == nil {
		return "<nil tensor>"
	}
	var b strings.Builder
	b.WriteString(t.dtype.String())
	b.WriteByte('[')
	for i, d := range t.shape[:t.ndim] {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, d)
	}
	b.WriteByte(']')
	return b.String()
}
