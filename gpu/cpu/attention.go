package cpu

import (
	"math"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

var _ gpu.ScaledKV = (*Device)(nil)

// WriteKV scatters new keys and values into their cache slots.
func (d *Device) WriteKV(kCache, vCache, k, v, slots *gpu.Tensor) error {
	return d.WriteKVScaled(kCache, vCache, k, v, slots, 1, 1)
}

// WriteKVScaled is WriteKV storing k / kScale and v / vScale into an FP8
// cache.
func (d *Device) WriteKVScaled(kCache, vCache, k, v, slots *gpu.Tensor, kScale, vScale float32) error {
	c, t, err := check.WriteKV(kCache, vCache, k, v, slots)
	if err != nil {
		return err
	}
	const op = "WriteKV"
	if err := check.KVScales(op, kScale, vScale); err != nil {
		return err
	}
	w := &d.kv
	w.ks, w.vs = 1, 1
	if kCache.DType() == gpu.F8E4M3 {
		w.ks, w.vs = orOne(kScale), orOne(vScale)
	}
	if w.kc, err = d.span(op, "kCache", kCache); err != nil {
		return err
	}
	if w.vc, err = d.span(op, "vCache", vCache); err != nil {
		return err
	}
	if w.k, err = d.span(op, "k", k); err != nil {
		return err
	}
	if w.v, err = d.span(op, "v", v); err != nil {
		return err
	}
	ss, err := d.span(op, "slots", slots)
	if err != nil {
		return err
	}
	for i, s := range ss.i32 {
		if s >= 0 {
			if err := check.Index(op, "slots", i, int(s), c.Slots()); err != nil {
				return err
			}
		}
	}
	w.d, w.slots, w.row = d, ss.i32, c.KVHeads*c.HeadDim
	d.pool.parallel(w, t, split(t, 2*w.row))
	return nil
}

type writeKVTask struct {
	d            *Device
	kc, vc, k, v span
	slots        []int32
	row          int     // kvHeads·d: one token's keys
	ks, vs       float32 // an FP8 cache's scales, else 1
}

// orOne is a KV scale with 0 read as 1.
func orOne(s float32) float32 {
	if s == 0 {
		return 1
	}
	return s
}

// unscale returns x / s (float32 division, as cuda's writeKV), in buf
// unless s is 1.
func unscale(buf, x []float32, s float32) []float32 {
	if s == 1 {
		return x
	}
	buf = buf[:len(x)]
	for i, f := range x {
		buf[i] = f / s
	}
	return buf
}

func (w *writeKVTask) run(wk, lo, hi int) {
	s := w.d.scratch[wk]
	for i := lo; i < hi; i++ {
		slot := int(w.slots[i])
		if slot < 0 {
			continue
		}
		w.kc.store(slot*w.row, unscale(s.buf(1, w.row), w.k.load(s.buf(0, w.row), i*w.row, w.row), w.ks))
		w.vc.store(slot*w.row, unscale(s.buf(1, w.row), w.v.load(s.buf(0, w.row), i*w.row, w.row), w.vs))
	}
}

// Attention computes paged causal attention for a variable-length batch.
//
// Work items are (token, kv head) pairs: the g = heads/kvHeads query heads
// that share a kv head are done together, so each cached key and value row
// is read and converted once for all of them. Keys are taken a cache block
// at a time: the block's scores, then one online-softmax rescale of the
// accumulators (float32), then the block's values.
func (d *Device) Attention(out, q, kCache, vCache *gpu.Tensor, b gpu.AttnBatch) error {
	a, err := check.Attention(out, q, kCache, vCache, b)
	if err != nil {
		return err
	}
	t := &d.attn
	const op = "Attention"
	if t.out, err = d.span(op, "out", out); err != nil {
		return err
	}
	if t.q, err = d.span(op, "q", q); err != nil {
		return err
	}
	if t.kc, err = d.span(op, "kCache", kCache); err != nil {
		return err
	}
	if t.vc, err = d.span(op, "vCache", vCache); err != nil {
		return err
	}
	tables, err := d.span(op, "BlockTables", b.BlockTables)
	if err != nil {
		return err
	}
	ctx, err := d.span(op, "ContextLens", b.ContextLens)
	if err != nil {
		return err
	}
	qs, err := d.span(op, "QueryStarts", b.QueryStarts)
	if err != nil {
		return err
	}
	// Check the metadata and map each query row to its sequence (−1: padding).
	if cap(t.seqOf) < a.Tokens {
		t.seqOf = make([]int32, a.Tokens)
	}
	t.seqOf = t.seqOf[:a.Tokens]
	for i := range t.seqOf {
		t.seqOf[i] = -1
	}
	for s := range a.Seqs {
		q0, q1, n := int(qs.i32[s]), int(qs.i32[s+1]), int(ctx.i32[s])
		if err := check.AttnSeq(a, b, s, q0, q1, n); err != nil {
			return err
		}
		for blk := range (n + a.BlockSize - 1) / a.BlockSize {
			if err := check.Index(op, "BlockTables", s*a.MaxBlocks+blk, int(tables.i32[s*a.MaxBlocks+blk]), a.Blocks); err != nil {
				return err
			}
		}
		for i := q0; i < q1; i++ {
			t.seqOf[i] = int32(s)
		}
	}
	t.scale = b.Scale
	if t.scale == 0 {
		t.scale = float32(1 / math.Sqrt(float64(a.HeadDim)))
	}
	t.vscale = 1
	if kCache.DType() == gpu.F8E4M3 { // the cache holds k / KScale and v / VScale
		t.scale *= orOne(b.KScale)
		t.vscale = orOne(b.VScale)
	}
	t.d, t.a, t.tables, t.ctx, t.qs = d, a, tables.i32, ctx.i32, qs.i32
	items := a.Tokens * a.KVHeads
	d.pool.parallel(t, items, 1)
	return nil
}

type attnTask struct {
	d               *Device
	out, q, kc, vc  span
	a               check.Attn
	tables, ctx, qs []int32
	seqOf           []int32
	scale, vscale   float32
}

func (t *attnTask) run(w, lo, hi int) {
	s := t.d.scratch[w]
	a := t.a
	hd, bs, kvh := a.HeadDim, a.BlockSize, a.KVHeads
	g := a.Heads / kvh
	stride := kvh * hd // between slots of one kv head
	qb := s.buf(0, g*hd)
	acc := s.buf(1, g*hd)
	scores := s.buf(2, g*bs)
	ml := s.buf(3, 2*g)
	m, l := ml[:g], ml[g:]
	for it := lo; it < hi; it++ {
		tok, kh := it/kvh, it%kvh
		seq := int(t.seqOf[tok])
		if seq < 0 {
			continue
		}
		n := int(t.qs[seq+1] - t.qs[seq])
		last := int(t.ctx[seq]) - n + (tok - int(t.qs[seq])) // the token's own position
		qoff := (tok*a.Heads + kh*g) * hd
		copy(qb, t.q.load(s.buf(4, g*hd), qoff, g*hd))
		for i := range qb {
			qb[i] *= t.scale
		}
		clear(acc)
		for h := range g {
			m[h], l[h] = float32(math.Inf(-1)), 0
		}
		table := t.tables[seq*a.MaxBlocks : (seq+1)*a.MaxBlocks]
		for blk := 0; blk*bs <= last; blk++ {
			nk := min(bs, last+1-blk*bs)
			base := int(table[blk])*bs*stride + kh*hd
			for j := range nk {
				k := t.kc.load(s.buf(4, hd), base+j*stride, hd)
				for h := range g {
					scores[h*bs+j] = dot(qb[h*hd:(h+1)*hd], k)
				}
			}
			for h := range g {
				sc := scores[h*bs : h*bs+nk]
				bm := m[h]
				for _, v := range sc {
					bm = max(bm, v)
				}
				if bm > m[h] {
					corr := float32(math.Exp(float64(m[h] - bm)))
					l[h] *= corr
					scaleBy(acc[h*hd:(h+1)*hd], corr)
					m[h] = bm
				}
				var sum float32
				for j, v := range sc {
					p := float32(math.Exp(float64(v - bm)))
					sc[j] = p
					sum += p
				}
				l[h] += sum
			}
			for j := range nk {
				v := t.vc.load(s.buf(4, hd), base+j*stride, hd)
				for h := range g {
					axpy(acc[h*hd:(h+1)*hd], scores[h*bs+j], v)
				}
			}
		}
		for h := range g {
			scaleBy(acc[h*hd:(h+1)*hd], 1/l[h])
			if t.vscale != 1 {
				scaleBy(acc[h*hd:(h+1)*hd], t.vscale)
			}
		}
		t.out.store(qoff, acc)
	}
}

// dot is a·b with four partial sums, which keeps the adds from waiting on
// each other.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy adds alpha·x to y.
func axpy(y []float32, alpha float32, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

func scaleBy(x []float32, f float32) {
	for i := range x {
		x[i] *= f
	}
}
