package cpu

import (
	"fmt"
	"math"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// The backward ops take F32 tensors only: training keeps f32 master weights
// and gradients on this device. Each output element is computed by one
// worker in a fixed order, so results repeat bit for bit whatever the
// scheduling. Unlike the forward ops these allocate (closures and
// temporaries): a training step is long next to them.

var _ gpu.BackwardOps = (*Device)(nil)

// fnTask adapts a function to the pool's task.
type fnTask func(w, lo, hi int)

func (f fnTask) run(w, lo, hi int) { f(w, lo, hi) }

func (d *Device) f32(op, name string, t *gpu.Tensor) ([]float32, error) {
	if t == nil {
		return nil, nil
	}
	s, err := d.span(op, name, t)
	if err != nil {
		return nil, err
	}
	if s.dt != gpu.F32 {
		return nil, fmt.Errorf("gpu: %s: %s %s: the cpu backward ops take f32: %w", op, name, t, gpu.ErrDType)
	}
	if s.f32 == nil {
		s.f32 = []float32{}
	}
	return s.f32, nil
}

// f32s resolves several tensors; a nil tensor gives a nil slice.
func (d *Device) f32s(op string, names []string, ts ...*gpu.Tensor) ([][]float32, error) {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		s, err := d.f32(op, names[i], t)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// transpose returns src [r, c] as a new [c, r] tensor.
func (d *Device) transpose(src []float32, r, c int) (*gpu.Tensor, error) {
	t, err := d.Alloc(gpu.F32, c, r)
	if err != nil {
		return nil, err
	}
	dst, _ := d.f32("transpose", "dst", t)
	const tile = 32
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		for j0 := lo * tile; j0 < min(hi*tile, c); j0 += tile {
			for i0 := 0; i0 < r; i0 += tile {
				for j := j0; j < min(j0+tile, c); j++ {
					for i := i0; i < min(i0+tile, r); i++ {
						dst[j*r+i] = src[i*c+j]
					}
				}
			}
		}
	}), (c+tile-1)/tile, split((c+tile-1)/tile, tile*r))
	return t, nil
}

// MatMulBackward runs both products on the packed GEMM of MatMul, over
// transposed copies: da = dc·b is MatMul(da, dc, bᵀ) and dbᵀ… is
// MatMul(tmp, dcᵀ, aᵀ), added into db.
func (d *Device) MatMulBackward(da, db, dbias, dc, a, b *gpu.Tensor) error {
	m, n, k, err := check.MatMulBackward(da, db, dbias, dc, a, b)
	if err != nil {
		return err
	}
	const op = "MatMulBackward"
	s, err := d.f32s(op, []string{"da", "db", "dbias", "dc", "a", "b"}, da, db, dbias, dc, a, b)
	if err != nil {
		return err
	}
	sdb, sdbias, sdc, sa, sb := s[1], s[2], s[3], s[4], s[5]
	if m == 0 || n == 0 || k == 0 {
		if da != nil {
			clear(s[0]) // a sum of no products
		}
		// No products are left, but with k = 0 the bias still gets dc's
		// column sums.
		da, db = nil, nil
	}
	if da != nil {
		bt, err := d.transpose(sb, n, k)
		if err != nil {
			return err
		}
		dc2, _ := dc.View(m, n)
		da2, _ := da.View(m, k)
		err = d.MatMul(da2, dc2, bt, nil)
		bt.Free()
		if err != nil {
			return err
		}
	}
	if db != nil {
		dct, err := d.transpose(sdc, m, n)
		if err != nil {
			return err
		}
		defer dct.Free()
		at, err := d.transpose(sa, m, k)
		if err != nil {
			return err
		}
		defer at.Free()
		tmp, err := d.Alloc(gpu.F32, n, k)
		if err != nil {
			return err
		}
		defer tmp.Free()
		if err := d.MatMul(tmp, dct, at, nil); err != nil {
			return err
		}
		st, _ := d.f32(op, "tmp", tmp)
		d.pool.parallel(fnTask(func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				sdb[i] += st[i]
			}
		}), n*k, split(n*k, 1))
	}
	if dbias != nil {
		d.pool.parallel(fnTask(func(_, lo, hi int) {
			for j := lo; j < hi; j++ {
				var sum float32
				for i := range m {
					sum += sdc[i*n+j]
				}
				sdbias[j] += sum
			}
		}), n, split(n, m))
	}
	return nil
}

// EmbedBackward splits the columns among workers, so each element's sum
// runs over the ids in order.
func (d *Device) EmbedBackward(dtable, dy, ids *gpu.Tensor) error {
	t, h, err := check.EmbedBackward(dtable, dy, ids)
	if err != nil {
		return err
	}
	const op = "EmbedBackward"
	s, err := d.f32s(op, []string{"dtable", "dy"}, dtable, dy)
	if err != nil {
		return err
	}
	is, err := d.span(op, "ids", ids)
	if err != nil {
		return err
	}
	rows := dtable.Dim(0)
	for i, id := range is.i32 {
		if err := check.Index(op, "ids", i, int(id), rows); err != nil {
			return err
		}
	}
	tab, g := s[0], s[1]
	const cols = 64
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		j0, j1 := lo*cols, min(hi*cols, h)
		for i, id := range is.i32 {
			dst, src := tab[int(id)*h:][j0:j1], g[i*h:][j0:j1]
			for j, v := range src {
				dst[j] += v
			}
		}
	}), (h+cols-1)/cols, split((h+cols-1)/cols, cols*t))
	return nil
}

// RMSNormBackward: with y = x·inv·w and inv = (mean(x²)+eps)^-½,
// dx = inv·dy·w − inv³·x·Σ(dy·w·x)/h and dw += Σ_rows dy·x·inv.
func (d *Device) RMSNormBackward(dx, dweight, dy, x, weight *gpu.Tensor, eps float32) error {
	rows, h, err := check.RMSNormBackward(dx, dweight, dy, x, weight, eps)
	if err != nil {
		return err
	}
	s, err := d.f32s("RMSNormBackward", []string{"dx", "dweight", "dy", "x", "weight"}, dx, dweight, dy, x, weight)
	if err != nil {
		return err
	}
	sdx, sdw, sdy, sx, sw := s[0], s[1], s[2], s[3], s[4]
	inv := make([]float32, rows)
	// The weight's gradient first, while dy is intact (dx may alias it).
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			var ss float32
			for _, v := range sx[r*h : (r+1)*h] {
				ss += v * v
			}
			inv[r] = float32(1 / math.Sqrt(float64(ss/float32(h)+eps)))
		}
	}), rows, split(rows, h))
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		for j := lo; j < hi; j++ {
			var sum float32
			for r, iv := range inv {
				sum += sdy[r*h+j] * sx[r*h+j] * iv
			}
			sdw[j] += sum
		}
	}), h, split(h, rows))
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			iv := inv[r]
			xr, dr, out := sx[r*h:(r+1)*h], sdy[r*h:(r+1)*h], sdx[r*h:(r+1)*h]
			var sum float32
			for j, g := range dr {
				sum += g * sw[j] * xr[j]
			}
			c := iv * iv * iv * sum / float32(h)
			for j, g := range dr {
				out[j] = iv*g*sw[j] - c*xr[j]
			}
		}
	}), rows, split(rows, 3*h))
	return nil
}

// RoPEBackward is RoPE at the negated positions: the angle is the float32
// product of position and frequency, and sin and cos are odd and even, so
// the rotation is exactly the inverse of RoPE's.
func (d *Device) RoPEBackward(dq, dk, pos *gpu.Tensor, rope gpu.Rope) error {
	if _, _, err := check.RoPE(dq, dk, pos, rope); err != nil {
		return err
	}
	ps, err := d.span("RoPEBackward", "pos", pos)
	if err != nil {
		return err
	}
	neg, err := d.Alloc(gpu.I32, pos.Len())
	if err != nil {
		return err
	}
	defer neg.Free()
	ns, _ := d.span("RoPEBackward", "neg", neg)
	for i, p := range ps.i32 {
		ns.i32[i] = -p
	}
	return d.RoPE(dq, dk, neg, rope)
}

// SiLUMulBackward: with s = sigmoid(g), ∂(g·s·u)/∂u = g·s and
// ∂/∂g = u·s·(1 + g·(1 − s)).
func (d *Device) SiLUMulBackward(dgate, dup, dy, gate, up *gpu.Tensor) error {
	n, err := check.SiLUMulBackward(dgate, dup, dy, gate, up)
	if err != nil {
		return err
	}
	s, err := d.f32s("SiLUMulBackward", []string{"dgate", "dup", "dy", "gate", "up"}, dgate, dup, dy, gate, up)
	if err != nil {
		return err
	}
	sdg, sdu, sdy, sg, su := s[0], s[1], s[2], s[3], s[4]
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			g, u, dy := sg[i], su[i], sdy[i]
			sig := float32(1 / (1 + math.Exp(-float64(g))))
			sdu[i] = dy * g * sig
			sdg[i] = dy * u * sig * (1 + g*(1-sig))
		}
	}), n, split(n, 20))
	return nil
}

// CausalAttentionBackward runs one task per sequence and kv head, so that
// the dk and dv of a head group are written by one worker in a fixed order.
func (d *Device) CausalAttentionBackward(dq, dk, dv, dout, q, k, v *gpu.Tensor, seqLen int, scale float32) error {
	a, err := check.CausalAttentionBackward(dq, dk, dv, dout, q, k, v, seqLen, scale)
	if err != nil {
		return err
	}
	s, err := d.f32s("CausalAttentionBackward", []string{"dq", "dk", "dv", "dout", "q", "k", "v"}, dq, dk, dv, dout, q, k, v)
	if err != nil {
		return err
	}
	sdq, sdk, sdv, sdo, sq, sk, sv := s[0], s[1], s[2], s[3], s[4], s[5], s[6]
	clear(sdq)
	clear(sdk)
	clear(sdv)
	T, heads, kvh, hd := a.SeqLen, a.Heads, a.KVHeads, a.HeadDim
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(hd)))
	}
	group := heads / kvh
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		p, dp := make([]float32, T), make([]float32, T)
		for bg := lo; bg < hi; bg++ {
			b, g := bg/kvh, bg%kvh
			kv := func(buf []float32, j int) []float32 { return buf[((b*T+j)*kvh+g)*hd:][:hd] }
			for h := g * group; h < (g+1)*group; h++ {
				for i := range T {
					qi := sq[((b*T+i)*heads+h)*hd:][:hd]
					do := sdo[((b*T+i)*heads+h)*hd:][:hd]
					dqi := sdq[((b*T+i)*heads+h)*hd:][:hd]
					mx := float32(math.Inf(-1))
					for j := 0; j <= i; j++ {
						p[j] = dot(qi, kv(sk, j)) * scale
						mx = max(mx, p[j])
					}
					var sum float32
					for j := 0; j <= i; j++ {
						p[j] = float32(math.Exp(float64(p[j] - mx)))
						sum += p[j]
					}
					var sd float32
					for j := 0; j <= i; j++ {
						p[j] /= sum
						dp[j] = dot(do, kv(sv, j))
						sd += p[j] * dp[j]
						dvj := kv(sdv, j)
						for l, x := range do {
							dvj[l] += p[j] * x
						}
					}
					for j := 0; j <= i; j++ {
						ds := p[j] * (dp[j] - sd) * scale
						kj, dkj := kv(sk, j), kv(sdk, j)
						for l := range dqi {
							dqi[l] += ds * kj[l]
							dkj[l] += ds * qi[l]
						}
					}
				}
			}
		}
	}), a.Seqs*kvh, 1)
	return nil
}

// CrossEntropy sums each row's exponentials in float64.
func (d *Device) CrossEntropy(loss, dlogits, logits, targets *gpu.Tensor, scale float32) error {
	rows, vocab, err := check.CrossEntropy(loss, dlogits, logits, targets, scale)
	if err != nil {
		return err
	}
	const op = "CrossEntropy"
	s, err := d.f32s(op, []string{"loss", "dlogits", "logits"}, loss, dlogits, logits)
	if err != nil {
		return err
	}
	ts, err := d.span(op, "targets", targets)
	if err != nil {
		return err
	}
	for i, t := range ts.i32 {
		if t >= 0 {
			if err := check.Index(op, "targets", i, int(t), vocab); err != nil {
				return err
			}
		}
	}
	sl, sd, sx := s[0], s[1], s[2]
	d.pool.parallel(fnTask(func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			x, g := sx[r*vocab:(r+1)*vocab], sd[r*vocab:(r+1)*vocab]
			tgt := int(ts.i32[r])
			if tgt < 0 {
				sl[r] = 0
				clear(g)
				continue
			}
			mx := float32(math.Inf(-1))
			for _, v := range x {
				mx = max(mx, v)
			}
			var se float64
			for _, v := range x {
				se += math.Exp(float64(v - mx))
			}
			lse := float64(mx) + math.Log(se)
			sl[r] = float32(lse - float64(x[tgt]))
			for j, v := range x {
				p := float32(math.Exp(float64(v) - lse))
				if j == tgt {
					p--
				}
				g[j] = p * scale
			}
		}
	}), rows, split(rows, 3*vocab))
	return nil
}
