package expr

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// This file holds the plumbing for the hand-written kernels: typed views
// over arguments that are either arrays or broadcast scalars, and output
// builders that write straight into allocator-owned buffers. Kernels loop
// over rows through these views; nothing in a row loop allocates or boxes.

// nullN returns the null count of d, computing it if unknown.
func nullN(d arrow.ArrayData) int {
	if n := d.NullN(); n >= 0 {
		return n
	}
	if d.Buffers()[0] == nil {
		return 0
	}
	return d.Len() - bitutil.CountSetBits(d.Buffers()[0].Bytes(), d.Offset(), d.Len())
}

// validityOf returns d's validity bitmap and offset, or nil when it has no
// nulls.
func validityOf(d arrow.ArrayData) ([]byte, int) {
	if d.Buffers()[0] == nil || nullN(d) == 0 {
		return nil, 0
	}
	return d.Buffers()[0].Bytes(), d.Offset()
}

type fixed interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// fixedView reads a fixed-width argument.
type fixedView[T fixed] struct {
	vals    []T
	valid   []byte
	off     int
	c       T
	cValid  bool
	isConst bool
}

func newFixedView[T fixed](d compute.Datum) fixedView[T] {
	switch d := d.(type) {
	case *compute.ScalarDatum:
		v := fixedView[T]{isConst: true, cValid: d.Value.IsValid()}
		if v.cValid {
			v.c = arrow.GetData[T](d.Value.(scalar.PrimitiveScalar).Data())[0]
		}
		return v
	case *compute.ArrayDatum:
		var v fixedView[T]
		v.vals = arrow.GetValues[T](d.Value, 1)
		v.valid, v.off = validityOf(d.Value)
		return v
	}
	panic(fmt.Sprintf("expr: unexpected datum %T", d))
}

func (v *fixedView[T]) at(i int) T {
	if v.isConst {
		return v.c
	}
	return v.vals[i]
}

func (v *fixedView[T]) ok(i int) bool {
	if v.isConst {
		return v.cValid
	}
	return v.valid == nil || bitutil.BitIsSet(v.valid, v.off+i)
}

// boolView reads a boolean argument.
type boolView struct {
	bits    []byte
	valid   []byte
	off     int
	c       bool
	cValid  bool
	isConst bool
}

func newBoolView(d compute.Datum) boolView {
	switch d := d.(type) {
	case *compute.ScalarDatum:
		v := boolView{isConst: true, cValid: d.Value.IsValid()}
		if v.cValid {
			v.c = d.Value.(*scalar.Boolean).Value
		}
		return v
	case *compute.ArrayDatum:
		v := boolView{bits: d.Value.Buffers()[1].Bytes(), off: d.Value.Offset()}
		v.valid, _ = validityOf(d.Value)
		return v
	}
	panic(fmt.Sprintf("expr: unexpected datum %T", d))
}

// isTrue reports whether row i is valid and true.
func (v *boolView) isTrue(i int) bool {
	if v.isConst {
		return v.cValid && v.c
	}
	return (v.valid == nil || bitutil.BitIsSet(v.valid, v.off+i)) && bitutil.BitIsSet(v.bits, v.off+i)
}

func (v *boolView) ok(i int) bool {
	if v.isConst {
		return v.cValid
	}
	return v.valid == nil || bitutil.BitIsSet(v.valid, v.off+i)
}

func (v *boolView) at(i int) bool {
	if v.isConst {
		return v.c
	}
	return bitutil.BitIsSet(v.bits, v.off+i)
}

// strView reads a string argument.
type strView struct {
	offs    []int32
	data    []byte
	valid   []byte
	off     int
	c       []byte
	cValid  bool
	isConst bool
}

func newStrView(d compute.Datum) strView {
	switch d := d.(type) {
	case *compute.ScalarDatum:
		v := strView{isConst: true, cValid: d.Value.IsValid()}
		if v.cValid {
			v.c = d.Value.(*scalar.String).Data()
		}
		return v
	case *compute.ArrayDatum:
		var v strView
		if d.Value.Len() == 0 {
			return v
		}
		v.offs = arrow.GetOffsets[int32](d.Value, 1)
		if b := d.Value.Buffers()[2]; b != nil {
			v.data = b.Bytes()
		}
		v.valid, v.off = validityOf(d.Value)
		return v
	}
	panic(fmt.Sprintf("expr: unexpected datum %T", d))
}

func (v *strView) at(i int) []byte {
	if v.isConst {
		return v.c
	}
	return v.data[v.offs[i]:v.offs[i+1]]
}

func (v *strView) ok(i int) bool {
	if v.isConst {
		return v.cValid
	}
	return v.valid == nil || bitutil.BitIsSet(v.valid, v.off+i)
}

// validityOut accumulates an output validity bitmap. It starts all-valid
// and only materializes the buffer when the first null is written.
type validityOut struct {
	mem   memory.Allocator
	n     int
	buf   *memory.Buffer
	bits  []byte
	nulls int
}

func (v *validityOut) setNull(i int) {
	if v.buf == nil {
		v.buf = memory.NewResizableBuffer(v.mem)
		v.buf.Resize(int(bitutil.BytesForBits(int64(v.n))))
		v.bits = v.buf.Bytes()
		for k := range v.bits {
			v.bits[k] = 0xff
		}
	}
	bitutil.ClearBit(v.bits, i)
	v.nulls++
}

// intersectValidity returns the AND of the validity bitmaps of the array
// arguments, or nil when every row is valid. It reports allNull when a
// scalar argument is null, in which case every output row is null.
func intersectValidity(mem memory.Allocator, n int, args ...compute.Datum) (buf *memory.Buffer, nulls int, allNull bool) {
	for _, a := range args {
		switch a := a.(type) {
		case *compute.ScalarDatum:
			if !a.Value.IsValid() {
				if buf != nil {
					buf.Release()
				}
				return nil, n, true
			}
		case *compute.ArrayDatum:
			bits, off := validityOf(a.Value)
			if bits == nil {
				continue
			}
			if buf == nil {
				buf = memory.NewResizableBuffer(mem)
				buf.Resize(int(bitutil.BytesForBits(int64(n))))
				bitutil.CopyBitmap(bits, off, n, buf.Bytes(), 0)
				continue
			}
			bitutil.BitmapAnd(buf.Bytes(), bits, 0, int64(off), buf.Bytes(), 0, int64(n))
		}
	}
	if buf == nil {
		return nil, 0, false
	}
	nulls = n - bitutil.CountSetBits(buf.Bytes(), 0, n)
	if nulls == 0 {
		buf.Release()
		return nil, 0, false
	}
	return buf, nulls, false
}

// newFixedOut allocates an output buffer of n values of T.
func newFixedOut[T fixed](mem memory.Allocator, n int) (*memory.Buffer, []T) {
	buf := memory.NewResizableBuffer(mem)
	var zero T
	buf.Resize(n * int(unsafe.Sizeof(zero)))
	return buf, arrow.GetData[T](buf.Bytes())
}

// newBoolOut allocates a zeroed bitmap of n bits.
func newBoolOut(mem memory.Allocator, n int) (*memory.Buffer, []byte) {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(int(bitutil.BytesForBits(int64(n))))
	b := buf.Bytes()
	clear(b)
	return buf, b
}

// makeDatum wraps buffers into an array datum, taking over the caller's
// references to them.
func makeDatum(dt arrow.DataType, n int, nulls int, bufs ...*memory.Buffer) compute.Datum {
	data := array.NewData(dt, n, bufs, nil, nulls, 0)
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	return &compute.ArrayDatum{Value: data}
}

// strOut builds a string array in allocator-owned buffers.
type strOut struct {
	offsBuf *memory.Buffer
	dataBuf *memory.Buffer
	offs    []int32
	data    []byte // dataBuf's bytes; len is the bytes written so far
}

func newStrOut(mem memory.Allocator, n, sizeHint int) *strOut {
	s := &strOut{offsBuf: memory.NewResizableBuffer(mem), dataBuf: memory.NewResizableBuffer(mem)}
	s.offsBuf.Resize((n + 1) * 4)
	s.offs = arrow.GetData[int32](s.offsBuf.Bytes())
	s.offs[0] = 0
	if sizeHint < 64 {
		sizeHint = 64
	}
	s.dataBuf.Reserve(sizeHint)
	s.data = s.dataBuf.Buf()[:0]
	return s
}

// reserve makes room for extra more bytes, so that appends up to that
// size stay inside dataBuf.
func (s *strOut) reserve(extra int) {
	if len(s.data)+extra <= cap(s.data) {
		return
	}
	newCap := max(2*cap(s.data), len(s.data)+extra)
	s.dataBuf.Reserve(newCap)
	s.data = s.dataBuf.Buf()[:len(s.data)]
}

func (s *strOut) append(p []byte) {
	s.reserve(len(p))
	s.data = append(s.data, p...)
}

// end closes row i.
func (s *strOut) end(i int) error {
	if unsafe.SliceData(s.data) != unsafe.SliceData(s.dataBuf.Buf()) {
		// An append outgrew the reservation and moved to the Go heap;
		// bring the bytes back into the allocator's buffer.
		s.dataBuf.Reserve(cap(s.data))
		buf := s.dataBuf.Buf()
		copy(buf, s.data)
		s.data = buf[:len(s.data)]
	}
	if len(s.data) > math.MaxInt32 {
		return fmt.Errorf("string result exceeds %d bytes", math.MaxInt32)
	}
	s.offs[i+1] = int32(len(s.data))
	return nil
}

func (s *strOut) release() {
	s.offsBuf.Release()
	s.dataBuf.Release()
}

// finish returns the array datum, consuming s and valid.
func (s *strOut) finish(n int, valid *memory.Buffer, nulls int) compute.Datum {
	s.dataBuf.ResizeNoShrink(len(s.data))
	return makeDatum(typString, n, nulls, valid, s.offsBuf, s.dataBuf)
}

// datumArray returns d as an array of n rows, materializing a scalar.
func datumArray(mem memory.Allocator, d compute.Datum, n int) (arrow.Array, error) {
	switch d := d.(type) {
	case *compute.ArrayDatum:
		return d.MakeArray(), nil
	case *compute.ScalarDatum:
		if !d.Value.IsValid() {
			return array.MakeArrayOfNull(mem, d.Value.DataType(), n), nil
		}
		return scalar.MakeArrayFromScalar(d.Value, n, mem)
	}
	return nil, fmt.Errorf("unexpected datum kind %s", d.Kind())
}

func releaseAll(ds []compute.Datum) {
	for _, d := range ds {
		if d != nil {
			d.Release()
		}
	}
}
