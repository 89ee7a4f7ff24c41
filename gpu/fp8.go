package gpu

import "math"

// Float8E4M3 is an OCP FP8 E4M3 value on the host, as torch.float8_e4m3fn
// stores it: 1 sign, 4 exponent (bias 7) and 3 mantissa bits, subnormals,
// no infinities, and the NaN 0x7f (with either sign). ±448 is the largest
// finite value.
type Float8E4M3 uint8

// MaxFloat8E4M3 is the largest finite E4M3 value.
const MaxFloat8E4M3 = 448

var f8Table = func() (t [256]float32) {
	for b := range t {
		e, m := (b>>3)&0xf, b&7
		var v float32
		switch {
		case e == 0xf && m == 7:
			v = float32(math.NaN())
		case e == 0:
			v = float32(m) / 512 // m·2⁻⁹
		default:
			v = float32(math.Ldexp(1+float64(m)/8, e-7))
		}
		if b&0x80 != 0 {
			v = -v
		}
		t[b] = v
	}
	return t
}()

// Float32 returns f exactly as a float32.
func (f Float8E4M3) Float32() float32 { return f8Table[f] }

// Float8E4M3Table is the float32 value of every E4M3 bit pattern, for
// kernels that dequantize by lookup.
func Float8E4M3Table() *[256]float32 { return &f8Table }

// ToFloat8E4M3 rounds f to the nearest E4M3, ties to even, as torch's
// .to(torch.float8_e4m3fn) does for values within ±448. Larger magnitudes
// saturate to ±448, which is what torch gives after the clamp(−448, 448)
// every FP8 quantizer applies first (torch itself would give NaN); a NaN
// stays a NaN.
func ToFloat8E4M3(f float32) Float8E4M3 {
	const (
		minNorm = (127 - 6) << 23  // 2⁻⁶
		magic   = (127 + 14) << 23 // 2¹⁴: its ulp is the E4M3 subnormal step 2⁻⁹
	)
	u := math.Float32bits(f)
	sign := uint8(u>>24) & 0x80
	u &= 0x7fffffff
	switch {
	case u > 0x7f800000:
		return Float8E4M3(sign | 0x7f)
	case math.Float32frombits(u) >= MaxFloat8E4M3:
		return Float8E4M3(sign | 0x7e)
	case u < minNorm:
		s := math.Float32frombits(u) + math.Float32frombits(magic)
		return Float8E4M3(sign | uint8(math.Float32bits(s)-magic))
	default:
		odd := (u >> 20) & 1
		u += 0x7ffff + odd
		u -= (127 - 7) << 23
		return Float8E4M3(sign | uint8(u>>20))
	}
}
