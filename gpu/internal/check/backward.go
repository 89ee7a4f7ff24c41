package check

import "github.com/sluicehq/sluice/gpu"

// Checks of gpu.BackwardOps' arguments.

// MatMulBackward checks the gradient of c = a·bᵀ + bias and returns its
// sizes.
func MatMulBackward(da, db, dbias, dc, a, b *gpu.Tensor) (m, n, k int, err error) {
	const op = "MatMulBackward"
	if err := floats(op, []string{"dc", "a", "b"}, dc, a, b); err != nil {
		return 0, 0, 0, err
	}
	m, k, n = a.Rows(), a.Dim(-1), b.Dim(0)
	switch {
	case b.NDim() != 2 || b.Dim(1) != k:
		return 0, 0, 0, fail(op, gpu.ErrShape, "a %s and b %s: want b [n, %d]", a, b, k)
	case dc.Rows() != m || dc.Dim(-1) != n:
		return 0, 0, 0, fail(op, gpu.ErrShape, "dc %s for a %s and b %s: want [%d, %d]", dc, a, b, m, n)
	}
	if da != nil {
		if err := Float(op, "da", da); err != nil {
			return 0, 0, 0, err
		}
		if da.Rows() != m || da.Dim(-1) != k {
			return 0, 0, 0, fail(op, gpu.ErrShape, "da %s for a %s: want [%d, %d]", da, a, m, k)
		}
	}
	if db != nil {
		if err := Float(op, "db", db); err != nil {
			return 0, 0, 0, err
		}
		if !sameShape(db, b) {
			return 0, 0, 0, fail(op, gpu.ErrShape, "db %s and b %s differ", db, b)
		}
	}
	if dbias != nil {
		if err := Float(op, "dbias", dbias); err != nil {
			return 0, 0, 0, err
		}
		if dbias.Len() != n {
			return 0, 0, 0, fail(op, gpu.ErrShape, "dbias %s for b %s: want [%d]", dbias, b, n)
		}
	}
	return m, n, k, nil
}

// EmbedBackward checks dtable[ids[i]] += dy[i].
func EmbedBackward(dtable, dy, ids *gpu.Tensor) (t, h int, err error) {
	const op = "EmbedBackward"
	if err := floats(op, []string{"dtable", "dy"}, dtable, dy); err != nil {
		return 0, 0, err
	}
	if err := Int(op, "ids", ids); err != nil {
		return 0, 0, err
	}
	t, h = ids.Len(), dtable.Dim(-1)
	if dtable.NDim() != 2 || dy.Rows() != t || dy.Dim(-1) != h {
		return 0, 0, fail(op, gpu.ErrShape, "dtable %s, dy %s, ids %s: want dtable [n, h] and dy [%d, h]", dtable, dy, ids, t)
	}
	return t, h, nil
}

// RMSNormBackward checks the norm's gradient and returns rows and row size.
func RMSNormBackward(dx, dweight, dy, x, weight *gpu.Tensor, eps float32) (rows, h int, err error) {
	const op = "RMSNormBackward"
	if err := floats(op, []string{"dx", "dweight", "dy", "x", "weight"}, dx, dweight, dy, x, weight); err != nil {
		return 0, 0, err
	}
	rows, h = x.Rows(), x.Dim(-1)
	switch {
	case !sameShape(dx, x) || !sameShape(dy, x):
		return 0, 0, fail(op, gpu.ErrShape, "dx %s, dy %s and x %s differ", dx, dy, x)
	case weight.Len() != h || dweight.Len() != h:
		return 0, 0, fail(op, gpu.ErrShape, "weight %s and dweight %s for rows of %d", weight, dweight, h)
	case !(eps >= 0):
		return 0, 0, fail(op, gpu.ErrArg, "eps (%v) must be at least 0", eps)
	}
	return rows, h, nil
}

// SiLUMulBackward checks the gated activation's gradient and returns the
// element count.
func SiLUMulBackward(dgate, dup, dy, gate, up *gpu.Tensor) (n int, err error) {
	const op = "SiLUMulBackward"
	if err := floats(op, []string{"dgate", "dup", "dy", "gate", "up"}, dgate, dup, dy, gate, up); err != nil {
		return 0, err
	}
	for _, t := range []*gpu.Tensor{dgate, dup, gate, up} {
		if !sameShape(t, dy) {
			return 0, fail(op, gpu.ErrShape, "dgate %s, dup %s, dy %s, gate %s and up %s differ", dgate, dup, dy, gate, up)
		}
	}
	return dy.Len(), nil
}

// CausalAttention are the sizes of a CausalAttentionBackward call.
type CausalAttention struct {
	Seqs, SeqLen, Heads, KVHeads, HeadDim int
}

// CausalAttentionBackward checks dense causal attention's gradient.
func CausalAttentionBackward(dq, dk, dv, dout, q, k, v *gpu.Tensor, seqLen int, scale float32) (a CausalAttention, err error) {
	const op = "CausalAttentionBackward"
	if err := floats(op, []string{"dq", "dk", "dv", "dout", "q", "k", "v"}, dq, dk, dv, dout, q, k, v); err != nil {
		return a, err
	}
	a = CausalAttention{SeqLen: seqLen, Heads: q.Dim(1), KVHeads: k.Dim(1), HeadDim: q.Dim(-1)}
	switch {
	case q.NDim() != 3 || k.NDim() != 3 || !sameShape(k, v) || k.Dim(0) != q.Dim(0) || k.Dim(2) != a.HeadDim:
		return a, fail(op, gpu.ErrShape, "q %s, k %s and v %s: want [tokens, heads, d] and [tokens, kvHeads, d]", q, k, v)
	case !sameShape(dq, q) || !sameShape(dout, q) || !sameShape(dk, k) || !sameShape(dv, v):
		return a, fail(op, gpu.ErrShape, "dq %s, dout %s, dk %s, dv %s for q %s and k %s", dq, dout, dk, dv, q, k)
	case a.KVHeads == 0 || a.Heads%a.KVHeads != 0:
		return a, fail(op, gpu.ErrShape, "q heads (%d) must be a multiple of the kv heads (%d)", a.Heads, a.KVHeads)
	case seqLen <= 0 || q.Dim(0)%seqLen != 0:
		return a, fail(op, gpu.ErrArg, "seqLen (%d) must be positive and divide the %d tokens", seqLen, q.Dim(0))
	case !(scale >= 0):
		return a, fail(op, gpu.ErrArg, "scale (%v) must not be negative", scale)
	}
	a.Seqs = q.Dim(0) / seqLen
	return a, nil
}

// CrossEntropy checks the loss's tensors and returns rows and vocabulary.
func CrossEntropy(loss, dlogits, logits, targets *gpu.Tensor, scale float32) (rows, vocab int, err error) {
	const op = "CrossEntropy"
	if err := floats(op, []string{"loss", "dlogits", "logits"}, loss, dlogits, logits); err != nil {
		return 0, 0, err
	}
	if err := Int(op, "targets", targets); err != nil {
		return 0, 0, err
	}
	rows, vocab = logits.Rows(), logits.Dim(-1)
	switch {
	case !sameShape(dlogits, logits):
		return 0, 0, fail(op, gpu.ErrShape, "dlogits %s and logits %s differ", dlogits, logits)
	case loss.Len() != rows || targets.Len() != rows || vocab == 0:
		return 0, 0, fail(op, gpu.ErrShape, "loss %s and targets %s for logits %s: want [%d] and non-empty rows", loss, targets, logits, rows)
	case scale != scale:
		return 0, 0, fail(op, gpu.ErrArg, "scale is NaN")
	}
	return rows, vocab, nil
}
