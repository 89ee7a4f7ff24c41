// Package check validates the arguments of gpu.Ops for every backend, so
// that all of them accept and refuse the same calls with the same errors.
package check

import (
	"fmt"
	"math"

	"github.com/sluicehq/sluice/gpu"
)

func fail(op string, sentinel error, format string, args ...any) error {
	return fmt.Errorf("gpu: %s: %s: %w", op, fmt.Sprintf(format, args...), sentinel)
}

// present reports a missing tensor.
func present(op, name string, t *gpu.Tensor) error {
	if t == nil {
		return fail(op, gpu.ErrShape, "%s is nil", name)
	}
	return nil
}

// Float checks that t is present and holds floats.
func Float(op, name string, t *gpu.Tensor) error {
	if err := present(op, name, t); err != nil {
		return err
	}
	if !t.DType().IsFloat() {
		return fail(op, gpu.ErrDType, "%s %s is not a float tensor", name, t)
	}
	return nil
}

// Int checks that t is present and holds I32.
func Int(op, name string, t *gpu.Tensor) error {
	if err := present(op, name, t); err != nil {
		return err
	}
	if t.DType() != gpu.I32 {
		return fail(op, gpu.ErrDType, "%s %s is not i32", name, t)
	}
	return nil
}

func floats(op string, names []string, ts ...*gpu.Tensor) error {
	for i, t := range ts {
		if err := Float(op, names[i], t); err != nil {
			return err
		}
	}
	return nil
}

func sameShape(a, b *gpu.Tensor) bool {
	if a.NDim() != b.NDim() {
		return false
	}
	for i := range a.NDim() {
		if a.Dim(i) != b.Dim(i) {
			return false
		}
	}
	return true
}

// MatMul checks c = a·bᵀ + bias and returns its sizes.
func MatMul(c, a, b, bias *gpu.Tensor) (m, n, k int, err error) {
	const op = "MatMul"
	if err := floats(op, []string{"c", "a", "b"}, c, a, b); err != nil {
		return 0, 0, 0, err
	}
	m, k, n = a.Rows(), a.Dim(-1), b.Dim(0)
	switch {
	case b.NDim() != 2:
		return 0, 0, 0, fail(op, gpu.ErrShape, "b %s is not [n, k]", b)
	case b.Dim(1) != k:
		return 0, 0, 0, fail(op, gpu.ErrShape, "a %s and b %s: inner dimensions %d and %d differ", a, b, k, b.Dim(1))
	case c.Dim(-1) != n || c.Rows() != m:
		return 0, 0, 0, fail(op, gpu.ErrShape, "c %s for a %s and b %s: want [%d, %d]", c, a, b, m, n)
	}
	if bias != nil {
		if err := Float(op, "bias", bias); err != nil {
			return 0, 0, 0, err
		}
		if bias.Len() != n {
			return 0, 0, 0, fail(op, gpu.ErrShape, "bias %s for b %s: want [%d]", bias, b, n)
		}
	}
	return m, n, k, nil
}

// Embed checks dst = table[ids] and returns the token count and row size.
func Embed(dst, table, ids *gpu.Tensor) (t, h int, err error) {
	const op = "Embed"
	if err := floats(op, []string{"dst", "table"}, dst, table); err != nil {
		return 0, 0, err
	}
	if err := Int(op, "ids", ids); err != nil {
		return 0, 0, err
	}
	t, h = ids.Len(), table.Dim(-1)
	if table.NDim() != 2 || dst.Rows() != t || dst.Dim(-1) != h {
		return 0, 0, fail(op, gpu.ErrShape, "dst %s, table %s, ids %s: want table [vocab, h] and dst [%d, h]", dst, table, ids, t)
	}
	return t, h, nil
}

// RMSNorm checks the norm's tensors and returns rows and row size.
func RMSNorm(dst, x, residual, weight *gpu.Tensor, eps float32) (rows, h int, err error) {
	const op = "RMSNorm"
	if err := floats(op, []string{"dst", "x", "weight"}, dst, x, weight); err != nil {
		return 0, 0, err
	}
	rows, h = x.Rows(), x.Dim(-1)
	switch {
	case !sameShape(dst, x):
		return 0, 0, fail(op, gpu.ErrShape, "dst %s and x %s differ", dst, x)
	case weight.Len() != h:
		return 0, 0, fail(op, gpu.ErrShape, "weight %s for rows of %d", weight, h)
	case !(eps >= 0):
		return 0, 0, fail(op, gpu.ErrArg, "eps (%v) must be at least 0", eps)
	}
	if residual != nil {
		if err := Float(op, "residual", residual); err != nil {
			return 0, 0, err
		}
		if !sameShape(residual, x) {
			return 0, 0, fail(op, gpu.ErrShape, "residual %s and x %s differ", residual, x)
		}
		if residual.Buffer() == dst.Buffer() && residual.Offset() == dst.Offset() || residual.Buffer() == x.Buffer() && residual.Offset() == x.Offset() {
			return 0, 0, fail(op, gpu.ErrArg, "residual aliases dst or x")
		}
	}
	return rows, h, nil
}

// RoPE checks the rotary embedding's tensors and returns the token count and
// head size.
func RoPE(q, k, pos *gpu.Tensor, rope gpu.Rope) (t, d int, err error) {
	const op = "RoPE"
	if err := Float(op, "q", q); err != nil {
		return 0, 0, err
	}
	if err := Int(op, "pos", pos); err != nil {
		return 0, 0, err
	}
	if err := rope.Validate(); err != nil {
		return 0, 0, err // names the Rope field
	}
	t, d = pos.Len(), q.Dim(-1)
	if q.NDim() != 3 || q.Dim(0) != t || d%2 != 0 {
		return 0, 0, fail(op, gpu.ErrShape, "q %s for pos %s: want [%d, heads, d] with d even", q, pos, t)
	}
	if k != nil {
		if err := Float(op, "k", k); err != nil {
			return 0, 0, err
		}
		if k.NDim() != 3 || k.Dim(0) != t || k.Dim(2) != d {
			return 0, 0, fail(op, gpu.ErrShape, "k %s for q %s: want [%d, kvHeads, %d]", k, q, t, d)
		}
	}
	return t, d, nil
}

// SiLUMul checks dst = silu(gate)·up and returns rows and output row size.
func SiLUMul(dst, gate, up *gpu.Tensor) (rows, n int, err error) {
	const op = "SiLUMul"
	if err := floats(op, []string{"dst", "gate"}, dst, gate); err != nil {
		return 0, 0, err
	}
	rows, n = dst.Rows(), dst.Dim(-1)
	if up == nil {
		if gate.Rows() != rows || gate.Dim(-1) != 2*n {
			return 0, 0, fail(op, gpu.ErrShape, "merged gate_up %s for dst %s: want [%d, %d]", gate, dst, rows, 2*n)
		}
		return rows, n, nil
	}
	if err := Float(op, "up", up); err != nil {
		return 0, 0, err
	}
	if !sameShape(dst, gate) || !sameShape(dst, up) {
		return 0, 0, fail(op, gpu.ErrShape, "dst %s, gate %s and up %s differ", dst, gate, up)
	}
	return rows, n, nil
}

// Add checks dst = a + b and returns the element count.
func Add(dst, a, b *gpu.Tensor) (n int, err error) {
	const op = "Add"
	if err := floats(op, []string{"dst", "a", "b"}, dst, a, b); err != nil {
		return 0, err
	}
	if !sameShape(dst, a) || !sameShape(dst, b) {
		return 0, fail(op, gpu.ErrShape, "dst %s, a %s and b %s differ", dst, a, b)
	}
	return dst.Len(), nil
}

// Softmax checks dst = softmax(x) and returns rows and row size.
func Softmax(dst, x *gpu.Tensor) (rows, n int, err error) {
	const op = "Softmax"
	if err := floats(op, []string{"dst", "x"}, dst, x); err != nil {
		return 0, 0, err
	}
	if !sameShape(dst, x) {
		return 0, 0, fail(op, gpu.ErrShape, "dst %s and x %s differ", dst, x)
	}
	return x.Rows(), x.Dim(-1), nil
}

// Argmax checks dst = argmax(x) and returns rows and row size.
func Argmax(dst, x *gpu.Tensor) (rows, n int, err error) {
	const op = "Argmax"
	if err := Float(op, "x", x); err != nil {
		return 0, 0, err
	}
	if err := Int(op, "dst", dst); err != nil {
		return 0, 0, err
	}
	rows, n = x.Rows(), x.Dim(-1)
	if dst.Len() != rows || n == 0 {
		return 0, 0, fail(op, gpu.ErrShape, "dst %s for x %s: want [%d] and non-empty rows", dst, x, rows)
	}
	return rows, n, nil
}

// Cache are the sizes of a paged KV cache.
type Cache struct {
	Blocks, BlockSize, KVHeads, HeadDim int
}

// Slots is the number of token slots in the cache.
func (c Cache) Slots() int { return c.Blocks * c.BlockSize }

// cache checks a KV cache pair: float, or F8E4M3 (an FP8 cache, which
// backends without FP8 caches refuse before calling this).
func cache(op string, kc, vc *gpu.Tensor) (Cache, error) {
	if kc == nil || kc.DType() != gpu.F8E4M3 {
		if err := floats(op, []string{"kCache", "vCache"}, kc, vc); err != nil {
			return Cache{}, err
		}
	} else if vc == nil {
		return Cache{}, fail(op, gpu.ErrShape, "vCache is nil")
	}
	if kc.NDim() != 4 || !sameShape(kc, vc) || kc.DType() != vc.DType() || kc.Len() == 0 {
		return Cache{}, fail(op, gpu.ErrShape, "kCache %s and vCache %s: want one dtype and shape [blocks, blockSize, kvHeads, d], none 0", kc, vc)
	}
	return Cache{kc.Dim(0), kc.Dim(1), kc.Dim(2), kc.Dim(3)}, nil
}

// WriteKV checks the cache write and returns the cache's sizes and the
// token count.
func WriteKV(kc, vc, k, v, slots *gpu.Tensor) (c Cache, t int, err error) {
	const op = "WriteKV"
	if c, err = cache(op, kc, vc); err != nil {
		return Cache{}, 0, err
	}
	if err := floats(op, []string{"k", "v"}, k, v); err != nil {
		return Cache{}, 0, err
	}
	if err := Int(op, "slots", slots); err != nil {
		return Cache{}, 0, err
	}
	t = slots.Len()
	if k.NDim() != 3 || !sameShape(k, v) || k.Dim(0) != t || k.Dim(1) != c.KVHeads || k.Dim(2) != c.HeadDim {
		return Cache{}, 0, fail(op, gpu.ErrShape, "k %s and v %s for slots %s and cache %s: want [%d, %d, %d]",
			k, v, slots, kc, t, c.KVHeads, c.HeadDim)
	}
	return c, t, nil
}

// Attn are the sizes of an Attention call.
type Attn struct {
	Cache
	Tokens, Heads, Seqs, MaxBlocks int
}

// Attention checks the attention call's tensors (not their contents).
func Attention(out, q, kc, vc *gpu.Tensor, b gpu.AttnBatch) (a Attn, err error) {
	const op = "Attention"
	if a.Cache, err = cache(op, kc, vc); err != nil {
		return Attn{}, err
	}
	if err := floats(op, []string{"out", "q"}, out, q); err != nil {
		return Attn{}, err
	}
	for _, x := range []struct {
		name string
		t    *gpu.Tensor
	}{{"BlockTables", b.BlockTables}, {"ContextLens", b.ContextLens}, {"QueryStarts", b.QueryStarts}} {
		if err := Int(op, x.name, x.t); err != nil {
			return Attn{}, err
		}
	}
	a.Tokens, a.Heads = q.Dim(0), q.Dim(1)
	a.Seqs, a.MaxBlocks = b.ContextLens.Len(), b.BlockTables.Dim(-1)
	switch {
	case q.NDim() != 3 || q.Dim(2) != a.HeadDim || !sameShape(out, q):
		return Attn{}, fail(op, gpu.ErrShape, "q %s and out %s for cache %s: want one shape [tokens, heads, %d]", q, out, kc, a.HeadDim)
	case a.Heads == 0 || a.Heads%a.KVHeads != 0:
		return Attn{}, fail(op, gpu.ErrShape, "q heads (%d) must be a multiple of the cache's kv heads (%d)", a.Heads, a.KVHeads)
	case b.BlockTables.NDim() != 2 || b.BlockTables.Dim(0) != a.Seqs:
		return Attn{}, fail(op, gpu.ErrShape, "BlockTables %s for ContextLens %s: want [%d, maxBlocks]", b.BlockTables, b.ContextLens, a.Seqs)
	case b.QueryStarts.Len() != a.Seqs+1:
		return Attn{}, fail(op, gpu.ErrShape, "QueryStarts %s for ContextLens %s: want [%d]", b.QueryStarts, b.ContextLens, a.Seqs+1)
	case b.MaxQueryLen < 0 || b.MaxContextLen < 0 || !(b.Scale >= 0):
		return Attn{}, fail(op, gpu.ErrArg, "MaxQueryLen (%d), MaxContextLen (%d) and Scale (%v) must not be negative", b.MaxQueryLen, b.MaxContextLen, b.Scale)
	}
	if err := KVScales(op, b.KScale, b.VScale); err != nil {
		return Attn{}, err
	}
	return a, nil
}

// KVScales checks an FP8 cache's k and v scales (gpu.ScaledKV): positive
// and finite, or 0 (which means 1).
func KVScales(op string, k, v float32) error {
	for _, s := range []struct {
		name string
		v    float32
	}{{"KScale", k}, {"VScale", v}} {
		if !(s.v >= 0 && s.v <= math.MaxFloat32) {
			return fail(op, gpu.ErrArg, "%s (%v) must be positive and finite, or 0 for 1", s.name, s.v)
		}
	}
	return nil
}

// AttnSeq checks the host-visible metadata of sequence s: query rows
// [q0, q1), context length ctx, against the batch's sizes and bounds. The
// block table entries are checked by BlockIndex.
func AttnSeq(a Attn, b gpu.AttnBatch, s, q0, q1, ctx int) error {
	const op = "Attention"
	n := q1 - q0
	switch {
	case q0 < 0 || n < 0 || q1 > a.Tokens:
		return fail(op, gpu.ErrIndex, "sequence %d: query rows [%d, %d) outside q's %d rows", s, q0, q1, a.Tokens)
	case ctx < n:
		return fail(op, gpu.ErrIndex, "sequence %d: ContextLens %d is less than its %d new tokens", s, ctx, n)
	case ctx > a.MaxBlocks*a.BlockSize:
		return fail(op, gpu.ErrIndex, "sequence %d: ContextLens %d exceeds the block table's %d×%d slots", s, ctx, a.MaxBlocks, a.BlockSize)
	case b.MaxQueryLen > 0 && n > b.MaxQueryLen:
		return fail(op, gpu.ErrIndex, "sequence %d: %d new tokens exceed MaxQueryLen (%d)", s, n, b.MaxQueryLen)
	case b.MaxContextLen > 0 && ctx > b.MaxContextLen:
		return fail(op, gpu.ErrIndex, "sequence %d: ContextLens %d exceeds MaxContextLen (%d)", s, ctx, b.MaxContextLen)
	}
	return nil
}

// Index reports an index tensor's entry v at i outside [0, n).
func Index(op, name string, i, v, n int) error {
	if v < 0 || v >= n {
		return fail(op, gpu.ErrIndex, "%s[%d] = %d outside [0, %d)", name, i, v, n)
	}
	return nil
}

// QMatMul checks QuantOps.QMatMul's arguments: w's own tensors, float a
// [m, k] and c [m, n], and a float bias [n] or nil.
func QMatMul(c, a *gpu.Tensor, w *gpu.QuantWeight, bias *gpu.Tensor) (m, n, k int, err error) {
	const op = "QMatMul"
	if err := w.Check(); err != nil {
		return 0, 0, 0, fmt.Errorf("gpu: %s: %w", op, err)
	}
	if err := Float(op, "a", a); err != nil {
		return 0, 0, 0, err
	}
	if err := Float(op, "c", c); err != nil {
		return 0, 0, 0, err
	}
	m, n, k = a.Rows(), w.N, w.K
	if a.Dim(-1) != k {
		return 0, 0, 0, fmt.Errorf("gpu: %s: a %s and weight [%d, %d]: inner dimensions differ: %w", op, a, n, k, gpu.ErrShape)
	}
	if c.Rows() != m || c.Dim(-1) != n {
		return 0, 0, 0, fmt.Errorf("gpu: %s: c %s for a %s and weight [%d, %d]: want [%d, %d]: %w", op, c, a, n, k, m, n, gpu.ErrShape)
	}
	if bias != nil {
		if err := Float(op, "bias", bias); err != nil {
			return 0, 0, 0, err
		}
		if bias.Len() != n {
			return 0, 0, 0, fmt.Errorf("gpu: %s: bias %s for weight [%d, %d]: want [%d]: %w", op, bias, n, k, n, gpu.ErrShape)
		}
	}
	return m, n, k, nil
}
