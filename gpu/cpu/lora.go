package cpu

import (
	"fmt"
	"slices"

	"github.com/sluicehq/sluice/gpu"
)

var _ gpu.LoRAOps = (*Device)(nil)

// LoRA implements gpu.LoRAOps as S-LoRA's and Punica's SGMV do, with the
// shrink and the expand fused: the items the workers share are blocks of
// at most lora.mb rows of one segment, and for a block a worker computes
// x·Aᵀ into its own scratch (r floats a row, never stored in a tensor)
// and then adds that times Bᵀ into the block's rows of y. A and B are read
// in place when F32 (converted once per block otherwise), so nothing is
// packed, allocated or dispatched per segment: one LoRA call is one
// parallel dispatch, whatever the number of adapters in the step.
//
// The products are 2×3 register tiles of dot products along contiguous
// rows: the shrink's along in (a row of x against rows of A), the
// expand's along r (a row of x·Aᵀ against rows of B), so both read their
// operands with unit stride and keep six accumulators in registers, the
// tile the MatMul kernel uses without FMA.
func (d *Device) LoRA(y, x *gpu.Tensor, segs []gpu.LoRASegment) error {
	if err := gpu.CheckLoRA(y, x, segs); err != nil {
		return err
	}
	t := &d.lora
	const op = "LoRA"
	var err error
	if t.y, err = d.span(op, "y", y); err != nil {
		return err
	}
	if t.x, err = d.span(op, "x", x); err != nil {
		return err
	}
	t.d, t.in, t.out = d, x.Dim(-1), y.Dim(-1)
	rows, work := 0, 0
	for _, s := range segs {
		rows += s.Hi - s.Lo
		work += (s.Hi - s.Lo) * s.A.Dim(0) * (t.in + s.B.Dim(0))
	}
	if rows == 0 {
		return nil
	}
	// Blocks of an even row count, small enough that every thread gets
	// about four, and at most 32 rows, past which a worker's x·Aᵀ and rows
	// of y stop fitting in L1 beside A and B.
	t.mb = min(32, max(2, roundUp((rows+4*d.threads-1)/(4*d.threads), 2)))
	t.segs = t.segs[:0]
	items := 0
	for i, s := range segs {
		if s.Hi == s.Lo {
			continue
		}
		g := loraSeg{lo: s.Lo, hi: s.Hi, col: s.Col, r: s.A.Dim(0), n: s.B.Dim(0), start: items}
		// Errors are built again with the segment's index, so that the
		// call allocates nothing when it succeeds.
		if g.a, err = d.span(op, "A", s.A); err != nil {
			_, err = d.span(fmt.Sprintf("%s: segment %d", op, i), "A", s.A)
			return err
		}
		if g.b, err = d.span(op, "B", s.B); err != nil {
			_, err = d.span(fmt.Sprintf("%s: segment %d", op, i), "B", s.B)
			return err
		}
		items += (s.Hi - s.Lo + t.mb - 1) / t.mb
		t.segs = append(t.segs, g)
	}
	d.pool.parallel(t, items, split(items, work/items))
	return nil
}

// loraTask is one LoRA call, reused from call to call.
type loraTask struct {
	d       *Device
	x, y    span
	in, out int
	mb      int // rows a block
	segs    []loraSeg
}

// loraSeg is a segment of a LoRA call and the index of its first block.
type loraSeg struct {
	a, b              span
	lo, hi, col, r, n int
	start             int
}

func (t *loraTask) run(w, lo, hi int) {
	s := t.d.scratch[w]
	i := 0
	for it := lo; it < hi; it++ {
		for i+1 < len(t.segs) && t.segs[i+1].start <= it {
			i++
		}
		g := &t.segs[i]
		r0 := g.lo + (it-g.start)*t.mb
		t.block(s, g, r0, min(r0+t.mb, g.hi))
	}
}

// block adds segment g's product into rows [r0, r1) of y.
func (t *loraTask) block(s *scratch, g *loraSeg, r0, r1 int) {
	in, r, n, rows := t.in, g.r, g.n, r1-r0
	x := t.x.load(s.buf(0, rows*in), r0*in, rows*in)
	a := g.a.load(s.buf(1, r*in), 0, r*in)
	b := g.b.load(s.buf(2, n*r), 0, n*r)
	xa := s.buf(3, rows*r)
	// Shrink: xa = x·Aᵀ, two rows at a time.
	for i := 0; i < rows; i += 2 {
		if i+1 < rows {
			tile2(x[i*in:(i+1)*in], x[(i+1)*in:(i+2)*in], a, in, r, xa[i*r:(i+1)*r], xa[(i+1)*r:(i+2)*r], false)
		} else {
			tile1(x[i*in:(i+1)*in], a, in, r, xa[i*r:(i+1)*r], false)
		}
	}
	// Expand: y[:, col:col+n] += xa·Bᵀ, into y in place when F32, else
	// through float32 rows rounded once.
	row := func(k, i int) []float32 {
		return t.y.load(s.buf(4+k, n), (r0+i)*t.out+g.col, n)
	}
	put := func(i int, v []float32) {
		if t.y.dt != gpu.F32 {
			t.y.store((r0+i)*t.out+g.col, v)
		}
	}
	for i := 0; i < rows; i += 2 {
		if i+1 < rows {
			y0, y1 := row(0, i), row(1, i+1)
			tile2(xa[i*r:(i+1)*r], xa[(i+1)*r:(i+2)*r], b, r, n, y0, y1, true)
			put(i, y0)
			put(i+1, y1)
		} else {
			y0 := row(0, i)
			tile1(xa[i*r:(i+1)*r], b, r, n, y0, true)
			put(i, y0)
		}
	}
}

// tile2 computes the dot products of x0 and x1 (length k) with each of
// the n rows of b (row j at b[j·k:]), into o0[j] and o1[j], or added to
// them with add: 2×3 tiles, the last columns in 2×2 and 2×1 ones.
func tile2(x0, x1, b []float32, k, n int, o0, o1 []float32, add bool) {
	j := 0
	// n = 3q+1 ends in two 2×2 tiles rather than a 2×1.
	for ; n-j >= 3 && n-j != 4; j += 3 {
		c00, c01, c02, c10, c11, c12 := dot2x3(x0, x1, b[j*k:(j+1)*k], b[(j+1)*k:(j+2)*k], b[(j+2)*k:(j+3)*k])
		if add {
			o0[j] += c00
			o0[j+1] += c01
			o0[j+2] += c02
			o1[j] += c10
			o1[j+1] += c11
			o1[j+2] += c12
		} else {
			o0[j], o0[j+1], o0[j+2] = c00, c01, c02
			o1[j], o1[j+1], o1[j+2] = c10, c11, c12
		}
	}
	for ; n-j >= 2; j += 2 {
		c00, c01, c10, c11 := dot2x2(x0, x1, b[j*k:(j+1)*k], b[(j+1)*k:(j+2)*k])
		if add {
			o0[j] += c00
			o0[j+1] += c01
			o1[j] += c10
			o1[j+1] += c11
		} else {
			o0[j], o0[j+1] = c00, c01
			o1[j], o1[j+1] = c10, c11
		}
	}
	if j < n {
		c0, c1 := dot2x1(x0, x1, b[j*k:(j+1)*k])
		if add {
			o0[j] += c0
			o1[j] += c1
		} else {
			o0[j], o1[j] = c0, c1
		}
	}
}

// tile1 is tile2 for one row.
func tile1(x0, b []float32, k, n int, o0 []float32, add bool) {
	j := 0
	for ; n-j >= 3; j += 3 {
		c0, c1, c2 := dot1x3(x0, b[j*k:(j+1)*k], b[(j+1)*k:(j+2)*k], b[(j+2)*k:(j+3)*k])
		if add {
			o0[j] += c0
			o0[j+1] += c1
			o0[j+2] += c2
		} else {
			o0[j], o0[j+1], o0[j+2] = c0, c1, c2
		}
	}
	for ; j < n; j++ {
		c := dot(x0, b[j*k:(j+1)*k])
		if add {
			o0[j] += c
		} else {
			o0[j] = c
		}
	}
}

func dot2x3(x0, x1, b0, b1, b2 []float32) (c00, c01, c02, c10, c11, c12 float32) {
	x1, b0, b1, b2 = x1[:len(x0)], b0[:len(x0)], b1[:len(x0)], b2[:len(x0)]
	for i, u := range x0 {
		v, p, q, w := x1[i], b0[i], b1[i], b2[i]
		c00 += u * p
		c01 += u * q
		c02 += u * w
		c10 += v * p
		c11 += v * q
		c12 += v * w
	}
	return
}

func dot2x2(x0, x1, b0, b1 []float32) (c00, c01, c10, c11 float32) {
	x1, b0, b1 = x1[:len(x0)], b0[:len(x0)], b1[:len(x0)]
	for i, u := range x0 {
		v, p, q := x1[i], b0[i], b1[i]
		c00 += u * p
		c01 += u * q
		c10 += v * p
		c11 += v * q
	}
	return
}

func dot2x1(x0, x1, b0 []float32) (c0, c1 float32) {
	x1, b0 = x1[:len(x0)], b0[:len(x0)]
	for i, u := range x0 {
		p := b0[i]
		c0 += u * p
		c1 += x1[i] * p
	}
	return
}

func dot1x3(x0, b0, b1, b2 []float32) (c0, c1, c2 float32) {
	b0, b1, b2 = b0[:len(x0)], b1[:len(x0)], b2[:len(x0)]
	for i, u := range x0 {
		c0 += u * b0[i]
		c1 += u * b1[i]
		c2 += u * b2[i]
	}
	return
}

var (
	_ gpu.LoRATableOps = (*Device)(nil)
	_ gpu.LoRATable    = (*loraSlots)(nil)
)

// loraSlots is the cpu gpu.LoRATable: the slots' pairs on the host (the
// cpu's device memory is the host's), and each slot's largest Col+n.
type loraSlots struct {
	d     *Device
	shape gpu.LoRATableShape
	pairs [][]gpu.LoRAPair
	cols  []int
	freed bool
}

// NewLoRATable implements gpu.LoRATableOps.
func (d *Device) NewLoRATable(shape gpu.LoRATableShape) (gpu.LoRATable, error) {
	if d.closed {
		return nil, gpu.ErrClosed
	}
	if err := shape.Validate(); err != nil {
		return nil, err
	}
	return &loraSlots{d: d, shape: shape, pairs: make([][]gpu.LoRAPair, shape.Slots), cols: make([]int, shape.Slots)}, nil
}

func (s *loraSlots) Shape() gpu.LoRATableShape { return s.shape }

// Set implements gpu.LoRATable. Like the cuda table, it keeps what the
// pairs are when Set runs: the slice is copied.
func (s *loraSlots) Set(slot int, pairs []gpu.LoRAPair) error {
	if s.freed {
		return fmt.Errorf("gpu: LoRATable.Set: %w", gpu.ErrFreed)
	}
	cols, err := gpu.CheckLoRAPairs(s.shape, slot, pairs)
	if err != nil {
		return err
	}
	s.pairs[slot] = append(s.pairs[slot][:0], pairs...)
	s.cols[slot] = cols
	return nil
}

// Free implements gpu.LoRATable.
func (s *loraSlots) Free() { s.freed, s.pairs = true, nil }

// LoRAIndexed implements gpu.LoRATableOps: the segments read from segs
// become one LoRA call, a segment per pair (rank-0 pairs and rows that are
// not a valid segment left out), so that its results are LoRA's bit for
// bit.
func (d *Device) LoRAIndexed(y, x *gpu.Tensor, tab gpu.LoRATable, segs *gpu.Tensor) error {
	s, ok := tab.(*loraSlots)
	if !ok || s == nil || s.d != d {
		return fmt.Errorf("gpu: LoRAIndexed: table %T is not this device's: %w", tab, gpu.ErrDevice)
	}
	if s.freed {
		return fmt.Errorf("gpu: LoRAIndexed: table: %w", gpu.ErrFreed)
	}
	if err := gpu.CheckLoRAIndexed(y, x, s.shape, slices.Max(s.cols), segs); err != nil {
		return err
	}
	sp, err := d.span("LoRAIndexed", "segs", segs)
	if err != nil {
		return err
	}
	rows := x.Rows()
	d.loraIdx = d.loraIdx[:0]
	for i := 0; i < segs.Dim(0); i++ {
		lo, hi, slot := int(sp.i32[3*i]), int(sp.i32[3*i+1]), int(sp.i32[3*i+2])
		if slot < 0 {
			break
		}
		if slot >= s.shape.Slots || lo < 0 || hi <= lo || hi > rows {
			continue
		}
		for _, p := range s.pairs[slot] {
			if p.A.Dim(0) > 0 {
				d.loraIdx = append(d.loraIdx, gpu.LoRASegment{Lo: lo, Hi: hi, A: p.A, B: p.B, Col: p.Col})
			}
		}
	}
	return d.LoRA(y, x, d.loraIdx)
}
