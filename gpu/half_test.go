package gpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

func f32(bits uint32) float32 { return math.Float32frombits(bits) }

func TestToBFloat16(t *testing.T) {
	for _, c := range []struct {
		name string
		in   uint32
		want uint16
	}{
		{"zero", 0, 0},
		{"negative zero", 0x80000000, 0x8000},
		{"one", 0x3f800000, 0x3f80},
		{"minus two", 0xc0000000, 0xc000},
		{"inf", 0x7f800000, 0x7f80},
		{"-inf", 0xff800000, 0xff80},
		{"max float32 rounds to inf", 0x7f7fffff, 0x7f80},
		{"below the overflow tie", 0x7f7f7fff, 0x7f7f},
		{"overflow tie to even (inf)", 0x7f7f8000, 0x7f80},
		{"tie to even, down", 0x3f808000, 0x3f80},
		{"tie to even, up", 0x3f818000, 0x3f82},
		{"just above a tie", 0x3f808001, 0x3f81},
		{"just below a tie", 0x3f807fff, 0x3f80},
		{"negative tie to even", 0xbf818000, 0xbf82},
		{"largest subnormal tie", 0x007f8000, 0x0080}, // rounds up into the normals
		{"subnormal tie down", 0x00008000, 0x0000},
		{"subnormal tie up", 0x00018000, 0x0002},
		{"smallest subnormal", 0x00000001, 0x0000},
		{"subnormal kept", 0x00010000, 0x0001},
	} {
		if got := ToBFloat16(f32(c.in)); uint16(got) != c.want {
			t.Errorf("%s: ToBFloat16(%#08x) = %#04x, want %#04x", c.name, c.in, uint16(got), c.want)
		}
	}
	for _, nan := range []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0x7fff0000, 0xff800001} {
		got := ToBFloat16(f32(nan))
		if f := got.Float32(); !math.IsNaN(float64(f)) || math.Signbit(float64(f)) != (nan>>31 == 1) {
			t.Errorf("ToBFloat16(NaN %#08x) = %#04x (%v), want a NaN of the same sign", nan, uint16(got), f)
		}
	}
}

// TestBFloat16Exhaustive: every bfloat16 survives a round trip, and random
// float32s round to the nearer of their two bfloat16 neighbours (the even
// one on a tie), found in float64 without the bit trick under test.
func TestBFloat16Exhaustive(t *testing.T) {
	for b := range 1 << 16 {
		f := BFloat16(b).Float32()
		if math.IsNaN(float64(f)) {
			continue
		}
		if got := ToBFloat16(f); got != BFloat16(b) {
			t.Fatalf("round trip of %#04x: got %#04x", b, uint16(got))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		bits := rng.Uint32()
		if bits&0x7f800000 == 0x7f800000 {
			continue // Inf and NaN: above
		}
		x := float64(f32(bits))
		lo := BFloat16(bits >> 16) // truncation: toward zero
		hi := lo + 1
		dlo := math.Abs(x - float64(lo.Float32()))
		hv := float64(hi.Float32())
		if math.IsInf(hv, 0) {
			hv = math.Copysign(0x1p128, hv) // IEEE rounds as if the exponent went on
		}
		dhi := math.Abs(hv - x)
		want := lo
		if dhi < dlo || dhi == dlo && hi&1 == 0 {
			want = hi
		}
		if got := ToBFloat16(float32(x)); got != want {
			t.Fatalf("ToBFloat16(%#08x) = %#04x, want %#04x", bits, uint16(got), uint16(want))
		}
	}
}

func TestToFloat16(t *testing.T) {
	for _, c := range []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"one", 1, 0x3c00},
		{"minus two", -2, 0xc000},
		{"max", 65504, 0x7bff},
		{"below the overflow tie", 65519.996, 0x7bff},
		{"overflow tie to even (inf)", 65520, 0x7c00},
		{"inf", float32(math.Inf(1)), 0x7c00},
		{"-inf", float32(math.Inf(-1)), 0xfc00},
		{"huge", 1e20, 0x7c00},
		{"smallest normal", 0x1p-14, 0x0400},
		{"largest subnormal", 1023 * 0x1p-24, 0x03ff},
		{"largest subnormal rounds up to normal", 1023.5 * 0x1p-24, 0x0400},
		{"smallest subnormal", 0x1p-24, 0x0001},
		{"half the smallest subnormal: tie to zero", 0x1p-25, 0x0000},
		{"above the tie", 0x1.000002p-25, 0x0001},
		{"subnormal tie to even, up", 1.5 * 0x1p-24, 0x0002},
		{"subnormal tie to even, down", 2.5 * 0x1p-24, 0x0002},
		{"tie to even, down", 1 + 0x1p-11, 0x3c00},
		{"tie to even, up", 1 + 3*0x1p-11, 0x3c02},
		{"just above a tie", 1 + 0x1p-11 + 0x1p-23, 0x3c01},
		{"underflow", 1e-10, 0x0000},
		{"negative subnormal", -3 * 0x1p-24, 0x8003},
	} {
		if got := ToFloat16(c.in); uint16(got) != c.want {
			t.Errorf("%s: ToFloat16(%g) = %#04x, want %#04x", c.name, c.in, uint16(got), c.want)
		}
	}
	for _, nan := range []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0x7f802000} {
		got := ToFloat16(f32(nan))
		if f := got.Float32(); !math.IsNaN(float64(f)) || math.Signbit(float64(f)) != (nan>>31 == 1) {
			t.Errorf("ToFloat16(NaN %#08x) = %#04x, want a NaN of the same sign", nan, uint16(got))
		}
	}
}

// TestFloat16Exhaustive: every float16 survives a round trip, and random
// float32s round to the nearest float16 found by binary search over all
// finite float16 values, ties to even, in float64.
func TestFloat16Exhaustive(t *testing.T) {
	var finite []float64 // the non-negative finite float16 values, ascending with their bits
	for h := range 1 << 16 {
		f := Float16(h).Float32()
		if math.IsNaN(float64(f)) {
			if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
				t.Fatalf("%#04x decodes to NaN", h)
			}
			continue
		}
		if got := ToFloat16(f); got != Float16(h) {
			t.Fatalf("round trip of %#04x (%g): got %#04x", h, f, uint16(got))
		}
		if h < 0x7c00 {
			finite = append(finite, float64(f))
		}
	}
	if !slices.IsSorted(finite) {
		t.Fatal("float16 values are not ascending with their bits")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		// Exponents around the float16 range, so that subnormals, normals and
		// overflow are all drawn.
		x := float64(f32(rng.Uint32()&0x807fffff | uint32(rng.IntN(50)+127-30)<<23))
		a := math.Abs(x)
		var want uint16
		switch i := sort.SearchFloat64s(finite, a); {
		case a >= 65520:
			want = 0x7c00
		case i == len(finite):
			want = 0x7bff
		case finite[i] == a:
			want = uint16(i)
		default:
			lo, hi := i-1, i
			dlo, dhi := a-finite[lo], finite[hi]-a
			want = uint16(lo)
			if dhi < dlo || dhi == dlo && hi&1 == 0 {
				want = uint16(hi)
			}
		}
		if x < 0 {
			want |= 0x8000
		}
		if got := ToFloat16(float32(x)); uint16(got) != want {
			t.Fatalf("ToFloat16(%g) = %#04x, want %#04x", x, uint16(got), want)
		}
	}
}
