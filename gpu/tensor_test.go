package gpu

import (
	"errors"
	"math"
	"slices"
	"testing"
)

type fakeBuffer struct {
	size     int
	released int
}

func (b *fakeBuffer) Size() int { return b.size }
func (b *fakeBuffer) Release()  { b.released++ }

func TestTensorViews(t *testing.T) {
	buf := &fakeBuffer{size: 4 * 2 * 3 * 5}
	x, err := NewTensor(nil, buf, F32, 4, 6, 5)
	if err == nil {
		t.Fatalf("NewTensor over a too-small buffer: %s", x)
	}
	x, err = NewTensor(nil, buf, BF16, 4, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if x.String() != "bf16[4 3 5]" || x.Len() != 60 || x.Bytes() != 120 || x.Rows() != 12 || x.Dim(-1) != 5 || x.Dim(3) != 0 {
		t.Errorf("%s: Len %d Bytes %d Rows %d Dim(-1) %d", x, x.Len(), x.Bytes(), x.Rows(), x.Dim(-1))
	}
	s, err := x.Slice(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Shape(), []int{2, 3, 5}) || s.Offset() != 30 || !s.IsView() {
		t.Errorf("Slice(1, 3) = %s at %d, view %v", s, s.Offset(), s.IsView())
	}
	ss, err := s.Slice(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ss.Offset() != 60 {
		t.Errorf("slice of a slice at byte %d, want 60", ss.Offset())
	}
	v, err := ss.View(5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != "bf16[5 3]" || v.Offset() != 60 {
		t.Errorf("View(5, 3) = %s at %d", v, v.Offset())
	}
	for _, bad := range [][2]int{{-1, 2}, {3, 2}, {0, 5}} {
		if _, err := x.Slice(bad[0], bad[1]); !errors.Is(err, ErrShape) {
			t.Errorf("Slice(%d, %d): %v, want ErrShape", bad[0], bad[1], err)
		}
	}
	if _, err := x.View(7, 8); !errors.Is(err, ErrShape) {
		t.Errorf("View(7, 8): %v, want ErrShape", err)
	}
	if _, err := x.View(1, 1, 1, 1, 1, 1, 60); !errors.Is(err, ErrShape) {
		t.Errorf("View of rank 7: %v, want ErrShape", err)
	}
	v.Free()
	s.Free()
	if buf.released != 0 {
		t.Fatal("freeing a view released the buffer")
	}
	x.Free()
	x.Free()
	if buf.released != 1 {
		t.Fatalf("buffer released %d times, want 1", buf.released)
	}
}

func TestCheckShape(t *testing.T) {
	for _, c := range []struct {
		dt    DType
		shape []int
		want  error
		bytes int
	}{
		{F32, []int{2, 3}, nil, 24},
		{I32, []int{0, 3}, nil, 0},
		{BF16, []int{7}, nil, 14},
		{DType(9), []int{2}, ErrDType, 0},
		{F32, nil, ErrShape, 0},
		{F32, []int{2, -1}, ErrShape, 0},
		{F32, []int{math.MaxInt / 8, 3}, ErrShape, 0},
	} {
		n, err := CheckShape(c.dt, c.shape...)
		if !errors.Is(err, c.want) || err == nil && n != c.bytes {
			t.Errorf("CheckShape(%v, %v) = %d, %v; want %d, %v", c.dt, c.shape, n, err, c.bytes, c.want)
		}
	}
}

func TestDType(t *testing.T) {
	if DTypeOf[float32]() != F32 || DTypeOf[BFloat16]() != BF16 || DTypeOf[Float16]() != F16 || DTypeOf[int32]() != I32 {
		t.Error("DTypeOf maps Go types to the wrong dtypes")
	}
	if F32.Size() != 4 || BF16.Size() != 2 || DType(0).Valid() || I32.IsFloat() || !F16.IsFloat() {
		t.Error("DType sizes or predicates are wrong")
	}
	if DType(0).String() != "dtype(0)" || BF16.String() != "bf16" {
		t.Errorf("String: %v %v", DType(0), BF16)
	}
}

func TestRopeInvFreq(t *testing.T) {
	got := Rope{Theta: 10000}.InvFreq(4)
	if want := []float32{1, 0.01}; !slices.Equal(got, want) {
		t.Errorf("InvFreq(4) = %v, want %v", got, want)
	}
	// Llama 3.1 8B: high frequencies (wavelength < 2048) kept, low ones
	// (> 8192) divided by 8, between them interpolated.
	plain := Rope{Theta: 500000}.InvFreq(128)
	scaled := Rope{Theta: 500000, Llama3: &Llama3Scaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}}.InvFreq(128)
	for i := range plain {
		wavelen := 2 * 3.141592653589793 / float64(plain[i])
		switch {
		case wavelen < 2048:
			if scaled[i] != plain[i] {
				t.Errorf("inv_freq[%d] (wavelength %.0f) scaled to %v, want %v", i, wavelen, scaled[i], plain[i])
			}
		case wavelen > 8192:
			if d := float64(scaled[i]) - float64(plain[i])/8; d > 1e-6*float64(plain[i]) || d < -1e-6*float64(plain[i]) {
				t.Errorf("inv_freq[%d] (wavelength %.0f) = %v, want %v/8", i, wavelen, scaled[i], plain[i])
			}
		default:
			if !(scaled[i] < plain[i] && scaled[i] > plain[i]/8) {
				t.Errorf("inv_freq[%d] (wavelength %.0f) = %v, want between %v/8 and it", i, wavelen, scaled[i], plain[i])
			}
		}
	}
	for _, r := range []Rope{{}, {Theta: 1e4, Llama3: &Llama3Scaling{Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1, OriginalMaxPositions: 8192}}} {
		if err := r.Validate(); !errors.Is(err, ErrArg) {
			t.Errorf("Validate(%+v) = %v, want ErrArg", r, err)
		}
	}
}
