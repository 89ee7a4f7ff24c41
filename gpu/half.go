package gpu

import "math"

// BFloat16 is a bfloat16 value on the host: the upper 16 bits of a float32.
type BFloat16 uint16

// Float16 is an IEEE 754 binary16 value on the host.
type Float16 uint16

// ToBFloat16 rounds f to the nearest bfloat16, ties to even, as PyTorch and
// CUDA's __float2bfloat16 do. Values beyond the largest bfloat16 become ±Inf;
// a NaN stays a NaN (quiet, sign kept).
func ToBFloat16(f float32) BFloat16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		// Truncating could clear every mantissa bit and turn the NaN into Inf.
		return BFloat16(u>>16 | 0x40)
	}
	u += 0x7fff + (u>>16)&1
	return BFloat16(u >> 16)
}

// Float32 returns b exactly as a float32.
func (b BFloat16) Float32() float32 { return math.Float32frombits(uint32(b) << 16) }

// ToFloat16 rounds f to the nearest binary16, ties to even, producing
// subnormals below 2⁻¹⁴ and ±Inf at or beyond 65520. A NaN becomes the quiet
// NaN 0x7e00 with f's sign.
func ToFloat16(f float32) Float16 {
	const (
		f32Inf      = 255 << 23
		f16Overflow = (127 + 16) << 23                   // 65536: the first value that is Inf/NaN here
		f16MinNorm  = (127 - 14) << 23                   // 2⁻¹⁴
		denormMagic = ((127 - 15) + (23 - 10) + 1) << 23 // 0.5: its ulp is the f16 subnormal step 2⁻²⁴
	)
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	u &= 0x7fffffff
	switch {
	case u >= f16Overflow:
		if u > f32Inf {
			return Float16(sign | 0x7e00)
		}
		return Float16(sign | 0x7c00)
	case u < f16MinNorm:
		// The FPU does the rounding: adding 0.5 leaves exactly the subnormal
		// mantissa, rounded to nearest even, in the low bits.
		s := math.Float32frombits(u) + math.Float32frombits(denormMagic)
		return Float16(sign | uint16(math.Float32bits(s)-denormMagic))
	default:
		odd := (u >> 13) & 1
		// Round, then rebias the exponent; a carry out of the mantissa may
		// reach Inf, which is the right rounding.
		u += 0xfff + odd
		u -= (127 - 15) << 23
		return Float16(sign | uint16(u>>13))
	}
}

// Float32 returns h exactly as a float32.
func (h Float16) Float32() float32 {
	u := uint32(h)
	sign := (u & 0x8000) << 16
	exp := (u >> 10) & 0x1f
	mant := u & 0x3ff
	switch exp {
	case 0:
		// Zero or subnormal: mant·2⁻²⁴ is exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(v) | sign)
	case 31:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+(127-15))<<23 | mant<<13)
}
