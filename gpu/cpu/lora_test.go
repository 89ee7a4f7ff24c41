package cpu_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
)

// loraCase is a segment of TestLoRA: rows [lo, hi) of x, rank r, n
// columns of y from col.
type loraCase struct{ lo, hi, r, n, col int }

// TestLoRA checks LoRA against a float64 shrink and expand of the same
// (rounded) operands, added to y's previous values, in F32, BF16 and a mix,
// with one and three workers, over segments that share rows on disjoint
// columns (the gate and up slices), one row, no row, an odd row count,
// ranks and widths that are not multiples of the 2×3 tile, and rows no
// segment covers, which must keep their values. It allocates nothing.
func TestLoRA(t *testing.T) {
	const rows, in, out = 37, 50, 70
	cases := []loraCase{
		{0, 16, 16, 40, 0}, {0, 16, 16, 30, 40}, // two slices of one projection
		{16, 17, 4, 70, 0}, // one row
		{17, 17, 8, 5, 0},  // empty
		{20, 37, 7, 13, 57},
		{20, 37, 1, 1, 0},
		{22, 24, 3, 2, 20},
	}
	types := [][4]gpu.DType{ // x, y, A, B
		{gpu.F32, gpu.F32, gpu.F32, gpu.F32},
		{gpu.BF16, gpu.BF16, gpu.BF16, gpu.BF16},
		{gpu.F32, gpu.BF16, gpu.BF16, gpu.F32},
	}
	for _, dts := range types {
		for _, threads := range []int{1, 3} {
			t.Run(fmt.Sprintf("%v/threads=%d", dts, threads), func(t *testing.T) {
				d, err := cpu.New(cpu.Config{Threads: threads})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				rng := rand.New(rand.NewPCG(3, uint64(threads)))
				x, xv := tensor(t, d, dts[0], rng, rows, in)
				y, yv := tensor(t, d, dts[1], rng, rows, out)
				want := append([]float64(nil), yv...)
				scale := make([]float64, len(want)) // Σ|terms|, for the tolerance
				var segs []gpu.LoRASegment
				for _, c := range cases {
					a, av := tensor(t, d, dts[2], rng, c.r, in)
					b, bv := tensor(t, d, dts[3], rng, c.n, c.r)
					segs = append(segs, gpu.LoRASegment{Lo: c.lo, Hi: c.hi, A: a, B: b, Col: c.col})
					for i := c.lo; i < c.hi; i++ {
						xa := make([]float64, c.r)
						for k := range c.r {
							for j := range in {
								xa[k] += xv[i*in+j] * av[k*in+j]
							}
						}
						for j := range c.n {
							for k := range c.r {
								want[i*out+c.col+j] += xa[k] * bv[j*c.r+k]
								scale[i*out+c.col+j] += math.Abs(xa[k] * bv[j*c.r+k])
							}
						}
					}
				}
				if err := d.LoRA(y, x, segs); err != nil {
					t.Fatal(err)
				}
				got := download(t, d, y)
				for i := range rows {
					for j := range out {
						w := want[i*out+j]
						tol := 1e-5 * (1 + scale[i*out+j])
						if dts[1] == gpu.BF16 {
							tol += math.Abs(w) / 256
						}
						if g := float64(got[i*out+j]); math.Abs(g-w) > tol {
							t.Fatalf("y[%d][%d] = %g, want %g (was %g)", i, j, g, w, yv[i*out+j])
						}
					}
				}
				if n := testing.AllocsPerRun(10, func() {
					if err := d.LoRA(y, x, segs); err != nil {
						t.Fatal(err)
					}
				}); n != 0 {
					t.Errorf("LoRA allocates %.0f times a call", n)
				}
			})
		}
	}
}

// TestLoRAErrors: arguments that do not fit are refused with the gpu
// sentinel, naming the segment.
func TestLoRAErrors(t *testing.T) {
	d, err := cpu.New(cpu.Config{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	other, err := cpu.New(cpu.Config{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	x, _ := tensor(t, d, gpu.F32, rng, 4, 8)
	y, _ := tensor(t, d, gpu.F32, rng, 4, 6)
	a, _ := tensor(t, d, gpu.F32, rng, 2, 8)
	b, _ := tensor(t, d, gpu.F32, rng, 3, 2)
	a5, _ := tensor(t, d, gpu.F32, rng, 2, 5)
	b3, _ := tensor(t, d, gpu.F32, rng, 3, 3)
	y5, _ := tensor(t, d, gpu.F32, rng, 5, 6)
	ids, err := d.Alloc(gpu.I32, 4, 8)
	if err != nil {
		t.Fatal(err)
	}
	far, _ := tensor(t, other, gpu.F32, rng, 2, 8)
	freed, _ := tensor(t, d, gpu.F32, rng, 3, 2)
	freed.Free()
	seg := func(lo, hi int, a1, b1 *gpu.Tensor, col int) []gpu.LoRASegment {
		return []gpu.LoRASegment{{Lo: 0, Hi: 4, A: a, B: b}, {Lo: lo, Hi: hi, A: a1, B: b1, Col: col}}
	}
	for _, tc := range []struct {
		name string
		y, x *gpu.Tensor
		segs []gpu.LoRASegment
		want error
		says string
	}{
		{"A of another width", y, x, seg(0, 4, a5, b, 0), gpu.ErrShape, "segment 1: A"},
		{"B of another rank", y, x, seg(0, 4, a, b3, 0), gpu.ErrShape, "segment 1: B"},
		{"rows past x", y, x, seg(2, 5, a, b, 0), gpu.ErrShape, "segment 1: rows [2, 5)"},
		{"columns past y", y, x, seg(0, 4, a, b, 4), gpu.ErrShape, "segment 1: columns [4, 7)"},
		{"nil A", y, x, seg(0, 4, nil, b, 0), gpu.ErrShape, "segment 1: A or B is nil"},
		{"y of other rows", y5, x, nil, gpu.ErrShape, "different rows"},
		{"I32 x", y, ids, nil, gpu.ErrDType, "must be float"},
		{"A on another device", y, x, seg(0, 4, far, b, 0), gpu.ErrDevice, "segment 1"},
		{"B freed", y, x, seg(0, 4, a, freed, 0), gpu.ErrFreed, "segment 1"},
	} {
		err := d.LoRA(tc.y, tc.x, tc.segs)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}
}

// tensor allocates a [rows, cols] tensor of dt with values in [-1, 1) and
// returns them as dt holds them.
func tensor(t testing.TB, d *cpu.Device, dt gpu.DType, rng *rand.Rand, rows, cols int) (*gpu.Tensor, []float64) {
	t.Helper()
	x, err := d.Alloc(dt, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]float64, rows*cols)
	var raw []byte
	for i := range vals {
		v := float32(rng.Float64()*2 - 1)
		if dt == gpu.BF16 {
			h := gpu.ToBFloat16(v)
			raw = binary.LittleEndian.AppendUint16(raw, uint16(h))
			vals[i] = float64(h.Float32())
		} else {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
			vals[i] = float64(v)
		}
	}
	if err := d.Upload(x, raw); err != nil {
		t.Fatal(err)
	}
	return x, vals
}

func download(t testing.TB, d *cpu.Device, x *gpu.Tensor) []float32 {
	t.Helper()
	n := x.Len()
	sz := 4
	if x.DType() == gpu.BF16 {
		sz = 2
	}
	raw := make([]byte, n*sz)
	if err := d.Download(raw, x); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, n)
	for i := range out {
		if sz == 2 {
			out[i] = gpu.BFloat16(binary.LittleEndian.Uint16(raw[2*i:])).Float32()
		} else {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	return out
}

// BenchmarkLoRA: the LoRA call of one projection of a 256-row decode step
// over 16 adapters of rank 16 (16 rows each), the llama2 fixture's
// shapes (q: 96 to 96; gate_up: 96 to two slices of 256; down: 256 to
// 96), against the projection's base MatMul, in GFLOP/s; 2 threads.
func BenchmarkLoRA(b *testing.B) {
	const rows, segs, r = 256, 16, 16
	for _, s := range []struct {
		name            string
		in, out, slices int
	}{{"q", 96, 96, 1}, {"gate_up", 96, 512, 2}, {"down", 256, 96, 1}} {
		d, err := cpu.New(cpu.Config{Threads: 2})
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 1))
		x, _ := tensor(b, d, gpu.F32, rng, rows, s.in)
		y, _ := tensor(b, d, gpu.F32, rng, rows, s.out)
		w, _ := tensor(b, d, gpu.F32, rng, s.out, s.in)
		var ls []gpu.LoRASegment
		n := s.out / s.slices
		for i := range segs {
			for k := range s.slices {
				a, _ := tensor(b, d, gpu.F32, rng, r, s.in)
				bb, _ := tensor(b, d, gpu.F32, rng, n, r)
				ls = append(ls, gpu.LoRASegment{Lo: i * rows / segs, Hi: (i + 1) * rows / segs, A: a, B: bb, Col: k * n})
			}
		}
		b.Run(s.name+"/lora", func(b *testing.B) {
			for b.Loop() {
				if err := d.LoRA(y, x, ls); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(2*rows*r*(s.in*s.slices+s.out))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(s.name+"/base", func(b *testing.B) {
			for b.Loop() {
				if err := d.MatMul(y, x, w, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(2*rows*s.in*s.out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		d.Close()
	}
}
