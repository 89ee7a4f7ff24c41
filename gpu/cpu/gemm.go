package cpu

import (
	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// MatMul computes c = a·bᵀ + bias.
//
// The layout follows BLIS, without its k blocking: C is cut into blocks of
// mc rows by nc columns, the items the workers share. For a block, a worker
// packs the rows of A into panels of mr rows interleaved along k, and the
// rows of B into panels of nr rows, converting BF16 and F16 to float32 once
// there; then for each B panel (kept in L1) it runs the register-tiled
// kernel down the A panels (kept in L2). A whole row of k stays in one
// accumulator, so BF16 output is rounded once and no C scratch is needed.
// Items run B-block-major so that a worker reuses its packed B panel, and
// its packed A block when C has one block row. That case — decode, where m
// is the batch — skips packing B: the kernel reads each weight once, in
// place, widening BF16 as it loads.
func (d *Device) MatMul(c, a, b, bias *gpu.Tensor) error {
	m, n, k, err := check.MatMul(c, a, b, bias)
	if err != nil {
		return err
	}
	g := &d.gemm
	const op = "MatMul"
	if g.c, err = d.span(op, "c", c); err != nil {
		return err
	}
	if g.a, err = d.span(op, "a", a); err != nil {
		return err
	}
	if g.b, err = d.span(op, "b", b); err != nil {
		return err
	}
	bs, err := d.optSpan(op, "bias", bias)
	if err != nil {
		return err
	}
	g.bias = nil
	if bias != nil {
		d.host.bufs[0] = grow(d.host.bufs[0], n)
		g.bias = bs.load(d.host.bufs[0], 0, n)
	}
	if m == 0 || n == 0 {
		return nil
	}
	d.packGen++
	g.d, g.m, g.n, g.k, g.gen = d, m, n, k, d.packGen
	g.q = nil
	g.blocking(d.threads)
	g.direct = g.nbm == 1 && (g.b.dt == gpu.F32 || g.b.dt == gpu.BF16)
	nbn := (n + g.nc - 1) / g.nc
	d.pool.parallel(g, g.nbm*nbn, 1)
	return nil
}

type gemmTask struct {
	d       *Device
	a, b, c span
	bias    []float32 // float32 copy, or nil
	m, n, k int
	mc, nc  int // block sizes, multiples of mr and nr
	nbm     int // blocks along m
	gen     uint64
	// direct reads F32 or BF16 B in place instead of packing it, when C has
	// one block row and so each weight is used by one block only.
	direct bool
	// q, when not nil, is a quantized B, dequantized as its panels are
	// packed (QMatMul); b is unused then.
	q *qweight
}

// blocking sizes the blocks: an A block of about 256 KiB, half of a
// typical L2, and enough blocks for every thread to take several, which
// matters for decode where m is small and all the parallelism is along n.
func (g *gemmTask) blocking(threads int) {
	const aBlockFloats = 64 << 10
	g.mc = min(roundUp(g.m, mr), max(mr, aBlockFloats/max(g.k, 1)/mr*mr))
	g.nbm = (g.m + g.mc - 1) / g.mc
	g.nc = min(roundUp(g.n, nr), 32*nr)
	// Aim for 4 items per thread, but keep panels of at least 8 B rows' worth.
	want := 4 * threads
	if nbn := (g.n + g.nc - 1) / g.nc; g.nbm*nbn < want {
		perN := (want + g.nbm - 1) / g.nbm
		g.nc = max(8*nr, roundUp((g.n+perN-1)/perN, nr))
		g.nc = min(g.nc, roundUp(g.n, nr))
	}
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

func (g *gemmTask) run(w, lo, hi int) {
	s := g.d.scratch[w]
	for it := lo; it < hi; it++ {
		jb, ib := it/g.nbm, it%g.nbm
		i0, i1 := ib*g.mc, min((ib+1)*g.mc, g.m)
		j0, j1 := jb*g.nc, min((jb+1)*g.nc, g.n)
		if s.aGen != g.gen || s.aBlock != ib {
			s.ap = grow(s.ap, roundUp(i1-i0, mr)*g.k)
			pack(s.ap, g.a, s.buf(0, g.k), g.k, i0, i1, mr)
			s.aGen, s.aBlock = g.gen, ib
		}
		if g.direct {
			s.bp = grow(s.bp, nr*g.k) // for the last, partial panel only
		} else if s.bGen != g.gen || s.bBlock != jb {
			s.bp = grow(s.bp, roundUp(j1-j0, nr)*g.k)
			if g.q != nil {
				g.q.pack(s.bp, s.buf(0, g.k), j0, j1)
			} else {
				pack(s.bp, g.b, s.buf(0, g.k), g.k, j0, j1, nr)
			}
			s.bGen, s.bBlock = g.gen, jb
		}
		g.block(s, i0, i1, j0, j1)
	}
}

// pack copies rows [r0, r1) of src (rows of k) into panels of p rows, each
// stored k-major: dst[(panel·k + kk)·p + r]. Rows past r1 in the last panel
// are zero. buf is scratch of length k for conversions.
func pack(dst []float32, src span, buf []float32, k, r0, r1, p int) {
	for base := r0; base < r1; base += p {
		panel := dst[(base-r0)*k : (base-r0+p)*k]
		for r := range p {
			if base+r >= r1 {
				for kk := range k {
					panel[kk*p+r] = 0
				}
				continue
			}
			row := src.load(buf, (base+r)*k, k)
			for kk, v := range row {
				panel[kk*p+r] = v
			}
		}
	}
}

func (g *gemmTask) block(s *scratch, i0, i1, j0, j1 int) {
	k := g.k
	var tile [mr * nr]float32
	for jr := j0; jr < j1; jr += nr {
		nn := min(nr, j1-jr)
		var bp []float32 // the packed panel, or nil to read B in place
		switch {
		case !g.direct:
			bp = s.bp[(jr-j0)*k : (jr-j0+nr)*k]
		case nn < nr:
			bp = s.bp[:nr*k]
			pack(bp, g.b, s.buf(0, k), k, jr, jr+nn, nr)
		}
		for ir := i0; ir < i1; ir += mr {
			ap := s.ap[(ir-i0)*k : (ir-i0+mr)*k]
			switch {
			case bp != nil:
				kernel(k, ap, bp, &tile)
			case g.b.dt == gpu.F32:
				kernelF32(k, ap, g.b.f32[jr*k:], k, &tile)
			default:
				kernelBF16(k, ap, g.b.u16[jr*k:], k, &tile)
			}
			g.store(&tile, ir, jr, min(mr, i1-ir), nn)
		}
	}
}

// store writes the valid mm×nn corner of a tile at C[i][j], adding the bias.
func (g *gemmTask) store(t *[mr * nr]float32, i, j, mm, nn int) {
	for r := range mm {
		row := t[r*nr : r*nr+nn]
		if g.bias != nil {
			for c, b := range g.bias[j : j+nn] {
				row[c] += b
			}
		}
		off := (i+r)*g.n + j
		switch g.c.dt {
		case gpu.F32:
			copy(g.c.f32[off:off+nn], row)
		case gpu.BF16:
			dst := g.c.u16[off : off+nn]
			for c, v := range row {
				dst[c] = uint16(gpu.ToBFloat16(v))
			}
		default:
			dst := g.c.u16[off : off+nn]
			for c, v := range row {
				dst[c] = uint16(gpu.ToFloat16(v))
			}
		}
	}
}
