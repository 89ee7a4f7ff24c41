package cpu

import (
	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

var _ gpu.QuantOps = (*Device)(nil)

// QMatMul computes c = a·Wᵀ + bias with W quantized. It runs MatMul's
// blocked product, except that a worker packs each panel of B by
// dequantizing its rows (an E4M3 lookup times the row's scale, or the int4
// nibble minus its group's zero times the group's scale) straight into the
// packed panel: the float weights exist only one block of rows at a time,
// in the worker's scratch. The values are exactly those of the reference
// dequantization in float32, so products agree with MatMul over the
// dequantized weight up to the summation order.
func (d *Device) QMatMul(c, a *gpu.Tensor, w *gpu.QuantWeight, bias *gpu.Tensor) error {
	const op = "QMatMul"
	m, n, k, err := check.QMatMul(c, a, w, bias)
	if err != nil {
		return err
	}
	q := &d.qw
	*q = qweight{format: w.Format, n: n, k: k}
	if q.data, err = d.span(op, "data", w.Data); err != nil {
		return err
	}
	if q.scales, err = d.span(op, "scales", w.Scales); err != nil {
		return err
	}
	if w.Format == gpu.QuantInt4 {
		if q.zeros, err = d.span(op, "zeros", w.Zeros); err != nil {
			return err
		}
		gs, err := d.span(op, "groups", w.Groups)
		if err != nil {
			return err
		}
		q.groups, q.ngroups = gs.i32, w.Scales.Dim(1)
		q.segRows = n / w.Groups.Dim(0)
		for i, g := range q.groups {
			if err := check.Index(op, "groups", i, int(g), q.ngroups); err != nil {
				return err
			}
		}
	}
	g := &d.gemm
	if g.c, err = d.span(op, "c", c); err != nil {
		return err
	}
	if g.a, err = d.span(op, "a", a); err != nil {
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
	if m == 0 {
		return nil
	}
	d.packGen++
	g.d, g.m, g.n, g.k, g.gen = d, m, n, k, d.packGen
	g.b, g.q = span{}, q
	g.blocking(d.threads)
	g.direct = false
	nbn := (n + g.nc - 1) / g.nc
	d.pool.parallel(g, g.nbm*nbn, 1)
	g.q = nil
	return nil
}

// qweight is a QuantWeight's elements as host slices.
type qweight struct {
	format        gpu.QuantFormat
	n, k          int
	data          span // u8 (FP8) or i32 (int4)
	scales, zeros span // f32
	groups        []int32
	ngroups       int
	segRows       int // rows per band of groups
}

// row dequantizes weight row r into buf (length k).
func (q *qweight) row(buf []float32, r int) []float32 {
	k := q.k
	buf = buf[:k]
	if q.format == gpu.QuantFP8 {
		lut := gpu.Float8E4M3Table()
		s := q.scales.f32[r]
		for c, b := range q.data.u8[r*k : (r+1)*k] {
			buf[c] = lut[b] * s
		}
		return buf
	}
	words := q.data.i32[r*(k/8) : (r+1)*(k/8)]
	gi := q.groups[(r/q.segRows)*k : (r/q.segRows+1)*k]
	sc := q.scales.f32[r*q.ngroups : (r+1)*q.ngroups]
	zr := q.zeros.f32[r*q.ngroups : (r+1)*q.ngroups]
	for j, w := range words {
		u := uint32(w)
		out := buf[8*j : 8*j+8]
		gs := gi[8*j : 8*j+8]
		for i := range 8 {
			g := gs[i]
			out[i] = (float32(u>>(4*i)&0xf) - zr[g]) * sc[g]
		}
	}
	return buf
}

// pack writes rows [r0, r1) into panels of nr rows as pack does for a
// float B, dequantizing each row once into buf.
func (q *qweight) pack(dst, buf []float32, r0, r1 int) {
	k := q.k
	for base := r0; base < r1; base += nr {
		panel := dst[(base-r0)*k : (base-r0+nr)*k]
		for r := range nr {
			if base+r >= r1 {
				for kk := range k {
					panel[kk*nr+r] = 0
				}
				continue
			}
			for kk, v := range q.row(buf, base+r) {
				panel[kk*nr+r] = v
			}
		}
	}
}
