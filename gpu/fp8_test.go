package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// nearestE4M3 is the reference rounding: the finite code nearest f, ties
// to the even code (mantissa LSB 0), found by search over all codes.
func nearestE4M3(f float32) Float8E4M3 {
	best, bestD := Float8E4M3(0), math.Inf(1)
	for b := range 256 {
		v := Float8E4M3(b).Float32()
		if v != v || (f < 0) != (b&0x80 != 0) && v != 0 {
			continue
		}
		d := math.Abs(float64(v) - float64(f))
		if d < bestD || d == bestD && b&1 == 0 && (f < 0) == (b&0x80 != 0) {
			best, bestD = Float8E4M3(b), d
		}
	}
	return best
}

func TestFloat8E4M3(t *testing.T) {
	for b := range 256 {
		f := Float8E4M3(b)
		v := f.Float32()
		if v != v {
			if b&0x7f != 0x7f {
				t.Fatalf("code %#x is NaN", b)
			}
			if g := ToFloat8E4M3(v); g&0x7f != 0x7f {
				t.Fatalf("NaN → %#x", g)
			}
			continue
		}
		if g := ToFloat8E4M3(v); g != f && !(v == 0 && g&0x7f == 0) {
			t.Fatalf("round trip of code %#x (%g) gave %#x", b, v, g)
		}
	}
	if got := Float8E4M3(0x7e).Float32(); got != 448 {
		t.Fatalf("0x7e = %g, want 448", got)
	}
	if got := Float8E4M3(0x01).Float32(); got != 1.0/512 {
		t.Fatalf("0x01 = %g, want 2^-9", got)
	}
	if got := ToFloat8E4M3(1000); got != 0x7e {
		t.Fatalf("1000 → %#x, want saturation to 0x7e", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200000 {
		var f float32
		switch i % 3 {
		case 0:
			f = float32(r.NormFloat64() * 100)
		case 1:
			f = float32(r.NormFloat64() * 0.01)
		default: // exact midpoints between neighbouring codes
			b := r.IntN(0x7e)
			f = (Float8E4M3(b).Float32() + Float8E4M3(b+1).Float32()) / 2
			if r.IntN(2) == 0 {
				f = -f
			}
		}
		if math.Abs(float64(f)) >= 448 {
			continue
		}
		if got, want := ToFloat8E4M3(f), nearestE4M3(f); got.Float32() != want.Float32() {
			t.Fatalf("ToFloat8E4M3(%g) = %#x (%g), want %#x (%g)", f, got, got.Float32(), want, want.Float32())
		}
	}
}
