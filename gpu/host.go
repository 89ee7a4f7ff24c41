package gpu

import (
	"fmt"
	"unsafe"
)

// Host-side helpers over Device.Upload and Device.Download for typed Go
// slices. They follow the device's threading rule.

// asBytes views the elements of s as bytes; the host is little-endian, as
// are the devices.
func asBytes[T Elem | uint16](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

// FromHost allocates a tensor of T's dtype and shape on dev and uploads
// data, whose length must match the shape.
func FromHost[T Elem](dev Device, data []T, shape ...int) (*Tensor, error) {
	t, err := dev.Alloc(DTypeOf[T](), shape...)
	if err != nil {
		return nil, err
	}
	if len(data) != t.Len() {
		t.Free()
		return nil, fmt.Errorf("gpu: FromHost: %d elements for shape %v: %w", len(data), shape, ErrShape)
	}
	if err := dev.Upload(t, asBytes(data)); err != nil {
		t.Free()
		return nil, err
	}
	return t, nil
}

// Upload copies data into t, whose dtype must be T's.
func Upload[T Elem](t *Tensor, data []T) error {
	if dt := DTypeOf[T](); t.DType() != dt {
		return fmt.Errorf("gpu: Upload of %v into %s: %w", dt, t, ErrDType)
	}
	return t.Device().Upload(t, asBytes(data))
}

// Download waits for t and copies it into dst, whose length must be t.Len()
// and whose element type must be t's.
func Download[T Elem](dst []T, t *Tensor) error {
	if dt := DTypeOf[T](); t.DType() != dt {
		return fmt.Errorf("gpu: Download of %s into []%v: %w", t, dt, ErrDType)
	}
	return t.Device().Download(asBytes(dst), t)
}

// ToHost waits for t and returns its elements in a new slice.
func ToHost[T Elem](t *Tensor) ([]T, error) {
	out := make([]T, t.Len())
	if err := Download(out, t); err != nil {
		return nil, err
	}
	return out, nil
}

// UploadF32 rounds data to t's float dtype and uploads it; for loading
// weights and test data (it allocates for BF16 and F16).
func UploadF32(t *Tensor, data []float32) error {
	switch t.DType() {
	case F32:
		return Upload(t, data)
	case BF16:
		h := make([]BFloat16, len(data))
		for i, f := range data {
			h[i] = ToBFloat16(f)
		}
		return Upload(t, h)
	case F16:
		h := make([]Float16, len(data))
		for i, f := range data {
			h[i] = ToFloat16(f)
		}
		return Upload(t, h)
	}
	return fmt.Errorf("gpu: UploadF32 into %s: %w", t, ErrDType)
}

// DownloadF32 waits for t, a float tensor of any dtype, and writes its
// elements as float32 into dst (len t.Len()). It allocates nothing, so it is
// the path for logits that host-side sampling (top-k, top-p) reads each step.
func DownloadF32(dst []float32, t *Tensor) error {
	n := t.Len()
	if len(dst) != n {
		return fmt.Errorf("gpu: DownloadF32 of %s into %d floats: %w", t, len(dst), ErrShape)
	}
	switch t.DType() {
	case F32:
		return Download(dst, t)
	case BF16, F16:
	default:
		return fmt.Errorf("gpu: DownloadF32 of %s: %w", t, ErrDType)
	}
	if n == 0 {
		return nil
	}
	// Download the 2-byte elements into the upper half of dst and widen them
	// in place, front to back: element i is written at bytes [4i, 4i+4),
	// which never reaches the unread elements from 2n+2(i+1) on.
	raw := unsafe.Slice((*uint16)(unsafe.Pointer(&dst[0])), 2*n)[n:]
	if err := t.Device().Download(asBytes(raw), t); err != nil {
		return err
	}
	if t.DType() == BF16 {
		for i := range n {
			dst[i] = BFloat16(raw[i]).Float32()
		}
	} else {
		for i := range n {
			dst[i] = Float16(raw[i]).Float32()
		}
	}
	return nil
}
