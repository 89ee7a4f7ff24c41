package cuda

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/sluicehq/sluice/gpu"
)

// LoRA (gpu.LoRAOps) is the two kernels of gpu/kernels/lora.cuh, vLLM's
// lora_shrink and lora_expand over every segment of the call in one launch
// each: loraShrink writes x·Aᵀ of each segment into an f32 scratch (not
// rounded), loraExpand adds that times Bᵀ into y, rounded once, as
// gpu.LoRAOps asks. The segment table (rows, columns, ranks, the A and B
// addresses and dtypes) is a kernel parameter passed by value, so a call
// uploads nothing, allocates only its scratch (the graph's arena during a
// Capture) and never waits for the host: it can be captured. A graph
// replays the table it was recorded with, as it replays every op's
// arguments.
//
// LoRAIndexed (gpu.LoRATableOps) is the pair for graphs, loraShrinkIdx and
// loraExpandIdx: the adapters' pairs are a loraSlots table in device
// memory and the segments an I32 tensor, both read by the kernels, so a
// replay computes the segments uploaded before it. Its launches depend on
// the shapes alone: the grid is ⌈rows/tile⌉ blocks along x (a block loops
// over the tiles past them), the scratch pairs·rows·rank floats, and ks a function
// of in (the most warps a tile that the row length gives work to, as
// LoRA picks for a call of few rows: decode steps).
//
// The kernels are looked up on the first LoRA call rather than at New, so
// that a PTX built before them (SLUICE_CUDA_PTX) still opens the device
// for everything else.

var (
	_ gpu.LoRAOps      = (*Device)(nil)
	_ gpu.LoRATableOps = (*Device)(nil)
	_ gpu.LoRATable    = (*loraSlots)(nil)
)

// loraMaxSegs is LORA_SEGS in lora.cuh: the segments one launch takes.
// Calls with more launch once per loraMaxSegs of them, which is correct
// because no two segments add into the same element of y.
const loraMaxSegs = 64

// Tile sizes of lora.cuh: rows of a shrink warp tile (LORA_TM), ranks of a
// chunk (LORA_RC), rows and columns of an expand block (LORA_EROWS,
// LORA_ECOLS).
const loraTM, loraRC, loraERows, loraECols = 4, 16, 16, 256

// loraSegC is lora.cuh's LoraSeg, field for field (56 bytes).
type loraSegC struct {
	a, b                           uint64
	off                            int64
	lo, hi, col, r, n, dts, s0, e0 int32
}

// loraTable is lora.cuh's LoraTable (3,592 bytes).
type loraTable struct {
	segs, _ int32
	s       [loraMaxSegs]loraSegC
}

// The kernel parameter must have the size the kernel reads.
var _ [unsafe.Sizeof(loraTable{}) - 3592]struct{}
var _ [3592 - unsafe.Sizeof(loraTable{})]struct{}

// loraState is the Device's LoRA kernels and launch arguments, reused from
// call to call (the Device lives on the heap, so their addresses are
// stable for the driver).
type loraState struct {
	shrink, expand       uintptr
	shrinkIdx, expandIdx uintptr
	ptrs                 [][2]uint64 // this call's A and B addresses, by segment
	tab                  loraTable
	argv                 [6]uint64
	argp                 [7]uintptr
}

// loraFuncs looks up the LoRA kernels once. The caller holds enter.
func (d *Device) loraFuncs() error {
	l := &d.lora
	return d.lookupOnce("LoRA", "PTX built before gpu/kernels/lora.cuh", kernelFunc{&l.shrink, "loraShrink"}, kernelFunc{&l.expand, "loraExpand"})
}

// lookupOnce looks fs up unless the first is found already; where one is
// missing it leaves them all unset and names it, with hint on the PTX.
// The caller holds enter.
func (d *Device) lookupOnce(op, hint string, fs ...kernelFunc) error {
	if *fs[0].p != 0 {
		return nil
	}
	if name, err := d.lookup(fs); err != nil {
		for _, f := range fs {
			*f.p = 0
		}
		return fmt.Errorf("gpu: %s: the loaded kernels have no %s (%s: rebuild it with gpu/kernels/build.sh): %w", op, name, hint, err)
	}
	return nil
}

// LoRA implements gpu.LoRAOps.
func (d *Device) LoRA(y, x *gpu.Tensor, segs []gpu.LoRASegment) error {
	if err := gpu.CheckLoRA(y, x, segs); err != nil {
		return err
	}
	const op = "LoRA"
	yp, err := d.ptr(op, "y", y)
	if err != nil {
		return err
	}
	xp, err := d.ptr(op, "x", x)
	if err != nil {
		return err
	}
	in, out := x.Dim(-1), y.Dim(-1)
	floats := 0
	l := &d.lora
	l.ptrs = l.ptrs[:0]
	for i, s := range segs {
		// Resolve every A and B before anything is enqueued; an error is
		// built again with the segment's index, so that a call that
		// succeeds formats nothing.
		a, err := d.ptr(op, "A", s.A)
		if err != nil {
			_, err = d.ptr(op, fmt.Sprintf("segment %d: A", i), s.A)
			return err
		}
		b, err := d.ptr(op, "B", s.B)
		if err != nil {
			_, err = d.ptr(op, fmt.Sprintf("segment %d: B", i), s.B)
			return err
		}
		l.ptrs = append(l.ptrs, [2]uint64{a, b})
		floats += (s.Hi - s.Lo) * s.A.Dim(0)
	}
	if floats == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.loraFuncs(); err != nil {
		return err
	}
	return d.withScratch(4*floats, func(xa uint64) error {
		off, next := 0, 0
		for next < len(segs) {
			var err error
			if next, off, err = d.loraLaunch(yp, xp, xa, y, x, in, out, segs, next, off); err != nil {
				return err
			}
		}
		return nil
	})
}

// loraLaunch fills the table with the non-empty segments from segs[i] on
// (at most loraMaxSegs), their scratch from float off on, and launches the
// shrink and the expand over them. It returns where the next launch
// starts. The caller holds enter.
func (d *Device) loraLaunch(yp, xp, xa uint64, y, x *gpu.Tensor, in, out int, segs []gpu.LoRASegment, i, off int) (int, int, error) {
	l := &d.lora
	t := &l.tab
	t.segs = 0
	var rows, rows2, rows4 int // shrink blocks with 1, 2 and 4 warps a tile
	for ; i < len(segs) && t.segs < loraMaxSegs; i++ {
		s := segs[i]
		if s.Hi == s.Lo {
			continue
		}
		a, b := l.ptrs[i][0], l.ptrs[i][1]
		r, n, m := s.A.Dim(0), s.B.Dim(0), s.Hi-s.Lo
		dts := int32(s.A.DType()) | int32(s.B.DType())<<4
		if a%16 == 0 && in%8 == 0 {
			dts |= 1 << 8
		}
		if b%16 == 0 && r%8 == 0 {
			dts |= 1 << 9
		}
		nrc := (r + loraRC - 1) / loraRC
		t.s[t.segs] = loraSegC{a: a, b: b, off: int64(off), lo: int32(s.Lo), hi: int32(s.Hi), col: int32(s.Col),
			r: int32(r), n: int32(n), dts: dts}
		t.segs++
		off += m * r
		rows += (m + 4*loraTM - 1) / (4 * loraTM) * nrc
		rows2 += (m + 2*loraTM - 1) / (2 * loraTM) * nrc
		rows4 += (m + loraTM - 1) / loraTM * nrc
	}
	if t.segs == 0 {
		return i, off, nil
	}
	ks, blocks := loraWarps(in), rows
	switch ks {
	case 4:
		blocks = rows4
	case 2:
		blocks = rows2
	}
	sb, eb := 0, 0
	for k := range t.segs {
		g := &t.s[k]
		m, r, n := int(g.hi-g.lo), int(g.r), int(g.n)
		g.s0, g.e0 = int32(sb), int32(eb)
		sb += (m + 4/ks*loraTM - 1) / (4 / ks * loraTM) * ((r + loraRC - 1) / loraRC)
		eb += (m + loraERows - 1) / loraERows * ((n + loraECols - 1) / loraECols)
	}
	if sb != blocks {
		return 0, 0, fmt.Errorf("cuda: LoRA: %d shrink blocks counted, %d laid out: %w", blocks, sb, gpu.ErrArg)
	}
	// A launch of no blocks is an error: segments of rank 0 or width 0
	// have none.
	xvec := b2u(xp%16 == 0 && in%8 == 0)
	if sb > 0 {
		if err := d.loraKernel("loraShrink", l.shrink, sb, 128, xa, xp, dt(x), i64(in), xvec, i64(ks)); err != nil {
			return 0, 0, err
		}
	}
	if eb > 0 {
		if err := d.loraKernel("loraExpand", l.expand, eb, loraECols, yp, dt(y), xa, i64(out)); err != nil {
			return 0, 0, err
		}
	}
	return i, off, nil
}

// loraWarps is the shrink's warps a tile for rows of in elements: 4 when
// each still gets at least one step of 256 elements, else 2 or 1. Each
// warp's steps are a chain of dependent loads and sums, so more warps a
// tile is a shorter chain at any number of rows (ks 1 left the 4,096-row
// calls of a prefill latency-bound: 8 steps a warp for 2,048 elements, 32
// for 8,192). LoRA and LoRAIndexed choose alike, so a row gets the same
// bits from both.
func loraWarps(in int) int {
	switch steps := (in + 255) / 256; {
	case steps >= 4:
		return 4
	case steps >= 2:
		return 2
	}
	return 1
}

// loraKernel launches fn over blocks blocks of threads threads with args
// followed by the segment table. The caller holds enter.
func (d *Device) loraKernel(name string, fn uintptr, blocks, threads int, args ...uint64) error {
	l := &d.lora
	n := copy(l.argv[:], args)
	for k := range n {
		l.argp[k] = uintptr(unsafe.Pointer(&l.argv[k]))
	}
	l.argp[n] = uintptr(unsafe.Pointer(&l.tab))
	r, _, _ := purego.SyscallN(d.drv.cuLaunchKernel, fn, uintptr(blocks), 1, 1, uintptr(threads), 1, 1,
		0, d.stream, uintptr(unsafe.Pointer(&l.argp[0])), 0)
	if r != 0 {
		return d.drv.err("cuLaunchKernel("+name+")", cuResult(r))
	}
	return nil
}

// loraIdxFuncs looks up LoRAIndexed's kernels once, apart from LoRA's so
// that a PTX of the by-value kernels alone still runs LoRA. The caller
// holds enter.
func (d *Device) loraIdxFuncs() error {
	l := &d.lora
	return d.lookupOnce("LoRAIndexed", "PTX built before it", kernelFunc{&l.shrinkIdx, "loraShrinkIdx"}, kernelFunc{&l.expandIdx, "loraExpandIdx"})
}

// loraPairC is lora.cuh's LoraPair, field for field (32 bytes).
type loraPairC struct {
	a, b           uint64
	r, n, col, dts int32
}

var _ [unsafe.Sizeof(loraPairC{}) - 32]struct{}
var _ [32 - unsafe.Sizeof(loraPairC{})]struct{}

// loraSlots is a gpu.LoRATable: Slots × Pairs loraPairCs in device memory
// (an I32 tensor, so that the device's live bytes count it), r = 0 where a
// slot has fewer pairs, and on the host each slot's pairs' largest Col+n.
type loraSlots struct {
	d     *Device
	shape gpu.LoRATableShape
	t     *gpu.Tensor // I32 [Slots, Pairs·8]
	cols  []int
	buf   []loraPairC // one slot's entries, for Set
}

// NewLoRATable implements gpu.LoRATableOps: a table of empty slots.
func (d *Device) NewLoRATable(shape gpu.LoRATableShape) (gpu.LoRATable, error) {
	if err := shape.Validate(); err != nil {
		return nil, err
	}
	t, err := d.Alloc(gpu.I32, shape.Slots, shape.Pairs*8)
	if err != nil {
		return nil, fmt.Errorf("cuda: NewLoRATable: %w", err)
	}
	s := &loraSlots{d: d, shape: shape, t: t, cols: make([]int, shape.Slots), buf: make([]loraPairC, shape.Pairs)}
	zero := make([]int32, shape.Slots*shape.Pairs*8)
	if err := gpu.Upload(t, zero); err != nil {
		t.Free()
		return nil, fmt.Errorf("cuda: NewLoRATable: %w", err)
	}
	return s, nil
}

func (s *loraSlots) Shape() gpu.LoRATableShape { return s.shape }

// Set implements gpu.LoRATable: one upload of the slot's entries.
func (s *loraSlots) Set(slot int, pairs []gpu.LoRAPair) error {
	cols, err := gpu.CheckLoRAPairs(s.shape, slot, pairs)
	if err != nil {
		return err
	}
	d, in := s.d, s.shape.In
	clear(s.buf)
	for i, p := range pairs {
		a, err := d.ptr("LoRATable.Set", fmt.Sprintf("pair %d: A", i), p.A)
		if err != nil {
			return err
		}
		b, err := d.ptr("LoRATable.Set", fmt.Sprintf("pair %d: B", i), p.B)
		if err != nil {
			return err
		}
		r := p.A.Dim(0)
		dts := int32(p.A.DType()) | int32(p.B.DType())<<4
		if a%16 == 0 && in%8 == 0 {
			dts |= 1 << 8
		}
		if b%16 == 0 && r%8 == 0 {
			dts |= 1 << 9
		}
		s.buf[i] = loraPairC{a: a, b: b, r: int32(r), n: int32(p.B.Dim(0)), col: int32(p.Col), dts: dts}
	}
	row, err := s.t.Slice(slot, slot+1)
	if err != nil {
		return err
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&s.buf[0])), len(s.buf)*int(unsafe.Sizeof(loraPairC{})))
	if err := d.Upload(row, raw); err != nil {
		return fmt.Errorf("cuda: LoRATable.Set: %w", err)
	}
	s.cols[slot] = cols
	return nil
}

// Free implements gpu.LoRATable.
func (s *loraSlots) Free() { s.t.Free() }

// LoRAIndexed implements gpu.LoRATableOps.
func (d *Device) LoRAIndexed(y, x *gpu.Tensor, tab gpu.LoRATable, segs *gpu.Tensor) error {
	s, ok := tab.(*loraSlots)
	if !ok || s == nil || s.d != d {
		return fmt.Errorf("gpu: LoRAIndexed: table %T is not this device's: %w", tab, gpu.ErrDevice)
	}
	sh := s.shape
	if err := gpu.CheckLoRAIndexed(y, x, sh, slices.Max(s.cols), segs); err != nil {
		return err
	}
	const op = "LoRAIndexed"
	yp, err := d.ptr(op, "y", y)
	if err != nil {
		return err
	}
	xp, err := d.ptr(op, "x", x)
	if err != nil {
		return err
	}
	tp, err := d.ptr(op, "table", s.t)
	if err != nil {
		return err
	}
	sp, err := d.ptr(op, "segs", segs)
	if err != nil {
		return err
	}
	rows, nsegs, in, out := x.Rows(), segs.Dim(0), x.Dim(-1), y.Dim(-1)
	if rows == 0 || nsegs == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.loraIdxFuncs(); err != nil {
		return err
	}
	ks := loraWarps(in)
	// ⌈rows/tile⌉ blocks along x: as many as segments of whole tiles have;
	// the kernels loop over the tiles past them.
	tiles := func(tile int) int { return (rows + tile - 1) / tile }
	chunks := (sh.Rank + loraRC - 1) / loraRC
	nct := (sh.N + loraECols - 1) / loraECols
	xvec := b2u(xp%16 == 0 && in%8 == 0)
	return d.withScratch(4*sh.Pairs*rows*sh.Rank, func(xa uint64) error {
		err := d.launch("loraShrinkIdx", d.lora.shrinkIdx, [3]int{tiles(4 / ks * loraTM), sh.Pairs * chunks, 1}, 128,
			xa, xp, dt(x), i64(in), xvec, i64(ks), i64(rows), tp, i64(sh.Pairs), i64(sh.Rank), sp, i64(nsegs), i64(sh.Slots))
		if err != nil {
			return err
		}
		return d.launch("loraExpandIdx", d.lora.expandIdx, [3]int{tiles(loraERows), sh.Pairs * nct, 1}, loraECols,
			yp, dt(y), xa, i64(out), i64(rows), tp, i64(sh.Pairs), i64(sh.Rank), i64(nct), sp, i64(nsegs), i64(sh.Slots))
	})
}
