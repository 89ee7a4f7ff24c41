package cpu

import (
	"math"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// Row-wise ops: each validates its arguments with package check, reads the
// index tensors it must bound-check on the calling goroutine, then runs rows
// on the pool. Rows go through float32 scratch when a tensor is not F32.

// Embed gathers dst[i] = table[ids[i]].
func (d *Device) Embed(dst, table, ids *gpu.Tensor) error {
	t, h, err := check.Embed(dst, table, ids)
	if err != nil {
		return err
	}
	e := &d.embed
	const op = "Embed"
	if e.dst, err = d.span(op, "dst", dst); err != nil {
		return err
	}
	if e.table, err = d.span(op, "table", table); err != nil {
		return err
	}
	is, err := d.span(op, "ids", ids)
	if err != nil {
		return err
	}
	vocab := table.Dim(0)
	for i, id := range is.i32 {
		if err := check.Index(op, "ids", i, int(id), vocab); err != nil {
			return err
		}
	}
	e.d, e.ids, e.h = d, is.i32, h
	d.pool.parallel(e, t, split(t, h))
	return nil
}

type embedTask struct {
	d          *Device
	dst, table span
	ids        []int32
	h          int
}

func (e *embedTask) run(w, lo, hi int) {
	s := e.d.scratch[w]
	for i := lo; i < hi; i++ {
		row := e.table.load(s.buf(0, e.h), int(e.ids[i])*e.h, e.h)
		e.dst.store(i*e.h, row)
	}
}

// RMSNorm normalizes rows of x (after adding it into residual, if given).
// The sum is rounded to residual's dtype and that rounded sum normalized, as
// transformers does when it adds in bf16 and then normalizes.
func (d *Device) RMSNorm(dst, x, residual, weight *gpu.Tensor, eps float32) error {
	rows, h, err := check.RMSNorm(dst, x, residual, weight, eps)
	if err != nil {
		return err
	}
	r := &d.rms
	const op = "RMSNorm"
	if r.dst, err = d.span(op, "dst", dst); err != nil {
		return err
	}
	if r.x, err = d.span(op, "x", x); err != nil {
		return err
	}
	if r.res, err = d.optSpan(op, "residual", residual); err != nil {
		return err
	}
	ws, err := d.span(op, "weight", weight)
	if err != nil {
		return err
	}
	d.host.bufs[0] = grow(d.host.bufs[0], h)
	r.w = ws.load(d.host.bufs[0], 0, h)
	r.d, r.h, r.eps, r.hasRes = d, h, eps, residual != nil
	d.pool.parallel(r, rows, split(rows, 3*h))
	return nil
}

type rmsTask struct {
	d           *Device
	dst, x, res span
	w           []float32
	h           int
	eps         float32
	hasRes      bool
}

func (r *rmsTask) run(w, lo, hi int) {
	s := r.d.scratch[w]
	for i := lo; i < hi; i++ {
		off := i * r.h
		x := r.x.load(s.buf(0, r.h), off, r.h)
		if r.hasRes {
			res := r.res.load(s.buf(1, r.h), off, r.h)
			sum := s.buf(2, r.h)
			for j := range sum {
				sum[j] = res[j] + x[j]
			}
			r.res.store(off, sum)
			x = r.res.load(sum, off, r.h)
		}
		var ss float32
		for _, v := range x {
			ss += v * v
		}
		inv := float32(1 / math.Sqrt(float64(ss/float32(r.h)+r.eps)))
		out := s.buf(3, r.h)
		for j, v := range x {
			out[j] = v * inv * r.w[j]
		}
		r.dst.store(off, out)
	}
}

// RoPE rotates q and k in place.
func (d *Device) RoPE(q, k, pos *gpu.Tensor, rope gpu.Rope) error {
	t, hd, err := check.RoPE(q, k, pos, rope)
	if err != nil {
		return err
	}
	r := &d.rope
	const op = "RoPE"
	if r.q, err = d.span(op, "q", q); err != nil {
		return err
	}
	if r.k, err = d.optSpan(op, "k", k); err != nil {
		return err
	}
	ps, err := d.span(op, "pos", pos)
	if err != nil {
		return err
	}
	r.freqs(rope, hd)
	r.d, r.pos, r.hd, r.qh, r.kh = d, ps.i32, hd, q.Dim(1), 0
	if k != nil {
		r.kh = k.Dim(1)
	}
	d.pool.parallel(r, t, split(t, (r.qh+r.kh)*hd*4))
	return nil
}

type ropeTask struct {
	d          *Device
	q, k       span
	pos        []int32
	hd, qh, kh int

	// The inverse frequencies of the last Rope and head size seen: a model
	// uses one, so they are computed once.
	inv    []float32
	invFor gpu.Rope
	llama3 gpu.Llama3Scaling
	invD   int
}

func (r *ropeTask) freqs(rope gpu.Rope, hd int) {
	var l3 gpu.Llama3Scaling
	if rope.Llama3 != nil {
		l3 = *rope.Llama3
	}
	if r.inv != nil && r.invD == hd && r.invFor.Theta == rope.Theta &&
		(r.invFor.Llama3 == nil) == (rope.Llama3 == nil) && r.llama3 == l3 {
		return
	}
	r.inv, r.invFor, r.llama3, r.invD = rope.InvFreq(hd), rope, l3, hd
}

func (r *ropeTask) run(w, lo, hi int) {
	s := r.d.scratch[w]
	half := r.hd / 2
	cos, sin := s.buf(0, half), s.buf(1, half)
	row := s.buf(2, r.hd)
	for t := lo; t < hi; t++ {
		p := float32(r.pos[t])
		for i, f := range r.inv {
			sn, cs := math.Sincos(float64(p * f))
			cos[i], sin[i] = float32(cs), float32(sn)
		}
		rotate(r.q, row, cos, sin, t*r.qh*r.hd, r.qh, r.hd)
		if r.kh > 0 {
			rotate(r.k, row, cos, sin, t*r.kh*r.hd, r.kh, r.hd)
		}
	}
}

// rotate applies rotate-half RoPE to heads rows of size hd from off.
func rotate(x span, buf, cos, sin []float32, off, heads, hd int) {
	half := hd / 2
	for h := range heads {
		o := off + h*hd
		v := x.load(buf, o, hd)
		x1, x2 := v[:half], v[half:hd]
		for i := range half {
			a, b := x1[i], x2[i]
			x1[i] = a*cos[i] - b*sin[i]
			x2[i] = b*cos[i] + a*sin[i]
		}
		x.store(o, v)
	}
}

// SiLUMul computes dst = silu(gate)·up.
func (d *Device) SiLUMul(dst, gate, up *gpu.Tensor) error {
	rows, n, err := check.SiLUMul(dst, gate, up)
	if err != nil {
		return err
	}
	u := &d.silu
	const op = "SiLUMul"
	if u.dst, err = d.span(op, "dst", dst); err != nil {
		return err
	}
	if u.gate, err = d.span(op, "gate", gate); err != nil {
		return err
	}
	if u.up, err = d.optSpan(op, "up", up); err != nil {
		return err
	}
	u.d, u.n, u.merged = d, n, up == nil
	d.pool.parallel(u, rows, split(rows, 8*n))
	return nil
}

type siluTask struct {
	d             *Device
	dst, gate, up span
	n             int
	merged        bool
}

func (u *siluTask) run(w, lo, hi int) {
	s := u.d.scratch[w]
	n := u.n
	for r := lo; r < hi; r++ {
		var g, x []float32
		if u.merged {
			g = u.gate.load(s.buf(0, n), 2*r*n, n)
			x = u.gate.load(s.buf(1, n), 2*r*n+n, n)
		} else {
			g = u.gate.load(s.buf(0, n), r*n, n)
			x = u.up.load(s.buf(1, n), r*n, n)
		}
		out := s.buf(2, n)
		for i, v := range g {
			out[i] = v / (1 + float32(math.Exp(float64(-v)))) * x[i]
		}
		u.dst.store(r*n, out)
	}
}

// Add computes dst = a + b.
func (d *Device) Add(dst, a, b *gpu.Tensor) error {
	n, err := check.Add(dst, a, b)
	if err != nil {
		return err
	}
	t := &d.add
	const op = "Add"
	if t.dst, err = d.span(op, "dst", dst); err != nil {
		return err
	}
	if t.a, err = d.span(op, "a", a); err != nil {
		return err
	}
	if t.b, err = d.span(op, "b", b); err != nil {
		return err
	}
	t.d = d
	const chunk = 4096
	t.n = n
	d.pool.parallel(t, (n+chunk-1)/chunk, split((n+chunk-1)/chunk, chunk))
	return nil
}

type addTask struct {
	d         *Device
	dst, a, b span
	n         int
}

func (t *addTask) run(w, lo, hi int) {
	const chunk = 4096
	s := t.d.scratch[w]
	for c := lo; c < hi; c++ {
		off := c * chunk
		m := min(chunk, t.n-off)
		a := t.a.load(s.buf(0, m), off, m)
		b := t.b.load(s.buf(1, m), off, m)
		out := s.buf(2, m)
		for i := range out {
			out[i] = a[i] + b[i]
		}
		t.dst.store(off, out)
	}
}

// Softmax computes dst = softmax(x) along the last dimension.
func (d *Device) Softmax(dst, x *gpu.Tensor) error {
	rows, n, err := check.Softmax(dst, x)
	if err != nil {
		return err
	}
	t := &d.softmax
	const op = "Softmax"
	if t.dst, err = d.span(op, "dst", dst); err != nil {
		return err
	}
	if t.x, err = d.span(op, "x", x); err != nil {
		return err
	}
	t.d, t.n = d, n
	d.pool.parallel(t, rows, split(rows, 8*n))
	return nil
}

type softmaxTask struct {
	d      *Device
	dst, x span
	n      int
}

func (t *softmaxTask) run(w, lo, hi int) {
	s := t.d.scratch[w]
	for r := lo; r < hi; r++ {
		x := t.x.load(s.buf(0, t.n), r*t.n, t.n)
		out := s.buf(1, t.n)
		softmax(out, x)
		t.dst.store(r*t.n, out)
	}
}

// softmax writes softmax(x) into out, accumulating in float32.
func softmax(out, x []float32) {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		out[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range out {
		out[i] *= inv
	}
}

// Argmax writes the index of each row's largest element into dst.
func (d *Device) Argmax(dst, x *gpu.Tensor) error {
	rows, n, err := check.Argmax(dst, x)
	if err != nil {
		return err
	}
	t := &d.argmax
	const op = "Argmax"
	ds, err := d.span(op, "dst", dst)
	if err != nil {
		return err
	}
	if t.x, err = d.span(op, "x", x); err != nil {
		return err
	}
	t.d, t.dst, t.n = d, ds.i32, n
	d.pool.parallel(t, rows, split(rows, n))
	return nil
}

type argmaxTask struct {
	d   *Device
	x   span
	dst []int32
	n   int
}

func (t *argmaxTask) run(w, lo, hi int) {
	s := t.d.scratch[w]
	for r := lo; r < hi; r++ {
		x := t.x.load(s.buf(0, t.n), r*t.n, t.n)
		best, at := x[0], 0
		for i, v := range x {
			// Once best is a NaN nothing replaces it; a first NaN replaces any number.
			if v > best || v != v && best == best {
				best, at = v, i
			}
		}
		t.dst[r] = int32(at)
	}
}
