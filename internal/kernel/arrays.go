package kernel

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Arrays built from Go slices (aggregation results, group keys) or from
// freshly allocated buffers (gather).

func emptyArray(mem memory.Allocator, dt arrow.DataType) arrow.Array {
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	return b.NewArray()
}

func newBuffer(mem memory.Allocator, size int) *memory.Buffer {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(size)
	return buf
}

// makeArray wraps freshly allocated buffers (whose references it takes over)
// in an array.
func makeArray(dt arrow.DataType, n, nulls int, bufs ...*memory.Buffer) arrow.Array {
	data := array.NewData(dt, n, bufs, nil, nulls, 0)
	arr := array.MakeFromData(data)
	data.Release()
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	return arr
}

// fixedArray builds an array of dt (whose values are laid out as T) from
// vals, null where nulls[i] (nulls may be nil).
func fixedArray[T any](mem memory.Allocator, dt arrow.DataType, vals []T, nulls []bool) arrow.Array {
	n := len(vals)
	if n == 0 {
		return emptyArray(mem, dt)
	}
	var z T
	w := int(unsafe.Sizeof(z))
	buf := newBuffer(mem, n*w)
	copy(buf.Bytes(), unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(vals))), n*w))
	valid, cnt := validityFrom(mem, nulls)
	return makeArray(dt, n, cnt, valid, buf)
}

func boolArray(mem memory.Allocator, vals []bool, nulls []bool) arrow.Array {
	n := len(vals)
	if n == 0 {
		return emptyArray(mem, arrow.FixedWidthTypes.Boolean)
	}
	buf := newBuffer(mem, (n+7)/8)
	bm := buf.Bytes()
	clear(bm)
	for i, v := range vals {
		if v {
			bm[i>>3] |= 1 << (i & 7)
		}
	}
	valid, cnt := validityFrom(mem, nulls)
	return makeArray(arrow.FixedWidthTypes.Boolean, n, cnt, valid, buf)
}

// bytesArray builds a string or binary array of dt (any of the four
// offset layouts) from vals, null where nulls[i].
func bytesArray(mem memory.Allocator, dt arrow.DataType, vals [][]byte, nulls []bool) (arrow.Array, error) {
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	b.Reserve(len(vals))
	switch bb := b.(type) {
	case *array.StringBuilder:
		for i, v := range vals {
			if nulls != nil && nulls[i] {
				bb.AppendNull()
			} else {
				bb.BinaryBuilder.Append(v)
			}
		}
	case *array.LargeStringBuilder:
		for i, v := range vals {
			if nulls != nil && nulls[i] {
				bb.AppendNull()
			} else {
				bb.BinaryBuilder.Append(v)
			}
		}
	case *array.BinaryBuilder:
		for i, v := range vals {
			if nulls != nil && nulls[i] {
				bb.AppendNull()
			} else {
				bb.Append(v)
			}
		}
	default:
		return nil, errorf(ErrType, "cannot build a %s column", typeName(dt))
	}
	return b.NewArray(), nil
}

func validityFrom(mem memory.Allocator, nulls []bool) (*memory.Buffer, int) {
	cnt := 0
	for _, isNull := range nulls {
		if isNull {
			cnt++
		}
	}
	if cnt == 0 {
		return nil, 0
	}
	buf := newBuffer(mem, (len(nulls)+7)/8)
	bm := buf.Bytes()
	clear(bm)
	for i, isNull := range nulls {
		if !isNull {
			bm[i>>3] |= 1 << (i & 7)
		}
	}
	return buf, cnt
}
