package gputest

import (
	"errors"
	"fmt"
	"math"

	"github.com/sluicehq/sluice/gpu"
)

// loraSeg is one segment of a LoRA case: rows [lo, hi), rank r, n columns
// of y from col.
type loraSeg struct{ lo, hi, r, n, col int }

// loraCase is one LoRA call: x [rows, in], y [rows, out], the segments and
// the dtypes of x, y, every A and every B. With view, x and y are row
// slices of larger tensors, starting one row in (an odd in then puts x off
// any 16-byte boundary).
type loraCase struct {
	rows, in, out  int
	segs           []loraSeg
	dx, dy, da, db gpu.DType
	view           bool
}

// testLoRA checks gpu.LoRAOps, on backends that have it, against a float64
// shrink and expand of the same rounded operands added to y's previous
// values: segments sharing rows on disjoint columns (gate and up of one
// projection), one row, no row, rows no segment covers (which must keep
// their values bit for bit), ranks past one chunk of 16 and not a multiple
// of 8, widths of several column tiles, row lengths that are and are not
// multiples of 8, views off 16-byte boundaries, every dtype and a mix, and
// more segments than one launch takes (70). A second call on the same
// inputs must give the same bits.
func testLoRA(e *env) {
	lo, ok := e.ops.(gpu.LoRAOps)
	if !ok {
		e.t.Skipf("%s has no gpu.LoRAOps", e.dev.Name())
	}
	mixed := []loraSeg{
		{0, 16, 16, 40, 0}, {0, 16, 16, 30, 40}, // two slices of one projection
		{16, 17, 4, 70, 0}, // one row
		{17, 17, 8, 5, 0},  // empty
		{20, 37, 7, 13, 57},
		{20, 37, 1, 1, 0},
		{22, 24, 3, 2, 20},
		{24, 30, 5, 0, 70}, // no columns
		{30, 33, 0, 9, 60}, // rank 0: adds nothing
	}
	wide := []loraSeg{{0, 3, 16, 300, 0}, {3, 40, 33, 600, 0}, {40, 41, 20, 600, 0}, {45, 64, 8, 600, 0}}
	var many []loraSeg
	for i := range 70 {
		many = append(many, loraSeg{i, i + 1, 1 + i%17, 8, 8 * (i % 3)})
	}
	cases := map[string]loraCase{
		"mixed/f32":       {37, 50, 70, mixed, f32, f32, f32, f32, false},
		"mixed/bf16":      {37, 50, 70, mixed, bf16, bf16, bf16, bf16, false},
		"mixed/f16-view":  {37, 51, 70, mixed, f16, f16, f16, f16, true},
		"mixed/mix":       {37, 50, 70, mixed, f32, bf16, bf16, f32, false},
		"wide/bf16":       {64, 256, 600, wide, bf16, bf16, bf16, bf16, false},
		"wide/f32-view":   {64, 264, 600, wide, f32, f32, f32, f32, true},
		"wide/f16·bf16":   {64, 1000, 600, wide, f16, bf16, f16, bf16, false},
		"many/bf16":       {72, 40, 24, many, bf16, bf16, bf16, bf16, false},
		"decode/bf16-2k":  {256, 2048, 512, loraBlocks(256, 16, 16, 512), bf16, bf16, bf16, bf16, false},
		"prefill/bf16-2k": {600, 2048, 256, loraBlocks(600, 3, 16, 256), bf16, bf16, bf16, bf16, false},
	}
	for _, name := range []string{"mixed/f32", "mixed/bf16", "mixed/f16-view", "mixed/mix", "wide/bf16", "wide/f32-view",
		"wide/f16·bf16", "many/bf16", "decode/bf16-2k", "prefill/bf16-2k"} {
		e.run(name, func(e *env) { e.lora(lo, cases[name]) })
	}
	e.run("Errors", func(e *env) {
		x := e.tensor(f32, e.values(f32, 8*6, 1), 8, 6)
		y := e.tensor(f32, e.values(f32, 8*5, 1), 8, 5)
		a := e.tensor(bf16, e.values(bf16, 2*6, 1), 2, 6)
		b := e.tensor(bf16, e.values(bf16, 5*2, 1), 5, 2)
		bad := e.tensor(bf16, e.values(bf16, 2*7, 1), 2, 7)
		for _, c := range []struct {
			what string
			segs []gpu.LoRASegment
		}{
			{"A of another row length", []gpu.LoRASegment{{Lo: 0, Hi: 8, A: bad, B: b}}},
			{"rows past x", []gpu.LoRASegment{{Lo: 4, Hi: 9, A: a, B: b}}},
			{"columns past y", []gpu.LoRASegment{{Lo: 0, Hi: 8, A: a, B: b, Col: 1}}},
		} {
			before := e.get(y)
			err := lo.LoRA(y, x, c.segs)
			if !errors.Is(err, gpu.ErrShape) {
				e.t.Errorf("%s: %v, want ErrShape", c.what, err)
			}
			if got := e.get(y); fmt.Sprint(got) != fmt.Sprint(before) {
				e.t.Errorf("%s: y changed by a refused call", c.what)
			}
		}
	})
}

// loraBlocks is a batch of rows rows laid out as adapters adapters of rank
// r, consecutive equal blocks, each with gate-and-up style slices of n/2
// columns.
func loraBlocks(rows, adapters, r, n int) []loraSeg {
	var s []loraSeg
	for i := range adapters {
		lo, hi := i*rows/adapters, (i+1)*rows/adapters
		s = append(s, loraSeg{lo, hi, r, n / 2, 0}, loraSeg{lo, hi, r, n / 2, n / 2})
	}
	return s
}

func (e *env) lora(lo gpu.LoRAOps, c loraCase) {
	xv := e.values(c.dx, c.rows*c.in, 1)
	yv := e.values(c.dy, c.rows*c.out, 1)
	x := e.tensor(c.dx, xv, c.rows, c.in)
	y := e.tensor(c.dy, yv, c.rows, c.out)
	if c.view {
		bx := e.tensor(c.dx, append(e.values(c.dx, c.in, 1), xv...), c.rows+1, c.in)
		by := e.tensor(c.dy, append(e.values(c.dy, c.out, 1), yv...), c.rows+1, c.out)
		var err error
		x, err = bx.Slice(1, c.rows+1)
		e.must(err)
		y, err = by.Slice(1, c.rows+1)
		e.must(err)
	}
	want := make([]float64, len(yv))
	tol := make([]float64, len(yv))
	for i, v := range yv {
		want[i] = float64(v)
	}
	covered := make([]bool, len(yv))
	var segs []gpu.LoRASegment
	for _, s := range c.segs {
		// Values of about 1/√in and 1/√r keep the products near 1.
		av := e.values(c.da, s.r*c.in, 1/math.Sqrt(float64(c.in)))
		bv := e.values(c.db, s.n*s.r, 1/math.Sqrt(float64(s.r)))
		segs = append(segs, gpu.LoRASegment{Lo: s.lo, Hi: s.hi, Col: s.col,
			A: e.tensor(c.da, av, s.r, c.in), B: e.tensor(c.db, bv, s.n, s.r)})
		xa, xabs := make([]float64, s.r), make([]float64, s.r)
		for i := s.lo; i < s.hi; i++ {
			for k := range s.r {
				xa[k], xabs[k] = 0, 0
				for j := range c.in {
					p := float64(xv[i*c.in+j]) * float64(av[k*c.in+j])
					xa[k] += p
					xabs[k] += math.Abs(p)
				}
			}
			for j := range s.n {
				o := i*c.out + s.col + j
				covered[o] = true
				for k := range s.r {
					b := float64(bv[j*s.r+k])
					want[o] += xa[k] * b
					tol[o] += xabs[k] * math.Abs(b)
				}
			}
		}
	}
	for i := range tol {
		// float32 sums over in and r, then one rounding of y to its dtype.
		tol[i] = 4e-6*(tol[i]+math.Abs(float64(yv[i]))) + 2*unit(c.dy)*math.Abs(want[i]) + tiny
	}
	e.must(lo.LoRA(y, x, segs))
	got := e.get(y)
	e.near("y", got, want, tol)
	for i, cv := range covered {
		if !cv && got[i] != yv[i] {
			e.t.Errorf("y[%d] (row %d) = %v: no segment covers it, want its previous %v", i, i/c.out, got[i], yv[i])
			break
		}
	}
	// The same call again on the same inputs repeats bit for bit.
	e.must(gpu.UploadF32(y, yv))
	e.must(lo.LoRA(y, x, segs))
	if again := e.get(y); fmt.Sprint(again) != fmt.Sprint(got) {
		e.t.Errorf("a second call on the same inputs gave other bits")
	}
}
