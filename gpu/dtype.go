package gpu

import "fmt"

// DType is the element type of a Tensor.
type DType uint8

// The element types every backend supports. The zero DType is invalid.
const (
	F32  DType = iota + 1 // IEEE 754 binary32
	BF16                  // bfloat16: the top half of a float32
	F16                   // IEEE 754 binary16
	I32                   // int32: token ids, positions, block tables, slots
	// F8E4M3 is OCP FP8 E4M3 (torch.float8_e4m3fn: no infinities, ±448 the
	// largest finite value): quantized weights and KV caches only. The
	// float ops (IsFloat) do not take it; see QuantWeight and Float8E4M3.
	F8E4M3
)

// Size is the number of bytes of one element; 0 for an invalid DType.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case BF16, F16:
		return 2
	case F8E4M3:
		return 1
	}
	return 0
}

// IsFloat reports whether d is one of the floating-point types.
func (d DType) IsFloat() bool { return d == F32 || d == BF16 || d == F16 }

// Valid reports whether d is one of the defined element types.
func (d DType) Valid() bool { return d.Size() != 0 }

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case F16:
		return "f16"
	case I32:
		return "i32"
	case F8E4M3:
		return "f8e4m3"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// ParseDType reads a floating-point dtype by name: "f32" (or "float32"),
// "bf16" ("bfloat16"), "f16" ("float16"); "" and "auto" give 0, which lets
// the loader choose by device.
func ParseDType(s string) (DType, error) {
	switch s {
	case "", "auto":
		return 0, nil
	case "f32", "float32":
		return F32, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "f16", "float16":
		return F16, nil
	}
	return 0, fmt.Errorf("gpu: dtype %q: want auto, f32, bf16 or f16", s)
}

// Elem is the set of Go types that hold one element of a DType on the host.
type Elem interface {
	float32 | BFloat16 | Float16 | int32
}

// DTypeOf returns the DType whose elements T holds on the host.
func DTypeOf[T Elem]() DType {
	var z T
	switch any(z).(type) {
	case float32:
		return F32
	case BFloat16:
		return BF16
	case Float16:
		return F16
	default:
		return I32
	}
}
