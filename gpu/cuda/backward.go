package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// The backward ops (gpu.BackwardOps) take F32 tensors only: training keeps
// f32 master weights and gradients. MatMulBackward's products are cuBLAS
// GEMMs at the device's Precision (f32 by default, no TF32; training sets
// bf16), and so are the attention's products where the kernels have the
// training attention (trainattn.go); the rest are the kernels of
// train.cuh, which sum every output element in a fixed order (no
// atomics), so a run repeats bit for bit. As for the forward ops, index
// tensors are not read on the host: out-of-range ids are skipped, and a
// cross-entropy target ≥ vocab gives a NaN loss (and a 0 gradient row).
// First versions: simple and correct, not tuned.

var _ gpu.BackwardOps = (*Device)(nil)

// backwardFuncs are the backward kernels New looks up.
type backwardFuncs struct {
	fillF32, colSum, embedBackward, rmsnormInv, rmsnormDWPart, rmsnormBackward, ropeBackward,
	siluMulBackward, crossEntropy, attnBwdQ, attnBwdKV uintptr
	embedGrouped uintptr   // looked up at first use (EmbedBackwardGrouped)
	siluMulX     uintptr   // looked up at first use (SiLUMulBackward of bf16 activations)
	attn         trainAttn // looked up at first use, not in table (trainattn.go)
}

func (f *backwardFuncs) table() []kernelFunc {
	return []kernelFunc{
		{&f.fillF32, "fillF32"}, {&f.colSum, "colSum"}, {&f.embedBackward, "embedBackward"},
		{&f.rmsnormInv, "rmsnormInv"}, {&f.rmsnormDWPart, "rmsnormDWPart"}, {&f.rmsnormBackward, "rmsnormBackward"},
		{&f.ropeBackward, "ropeBackward"}, {&f.siluMulBackward, "siluMulBackward"}, {&f.crossEntropy, "crossEntropy"},
		{&f.attnBwdQ, "attnBwdQ"}, {&f.attnBwdKV, "attnBwdKV"},
	}
}

// attnBwdMaxHeadDim is ATB_MAXD in sluice.cu: 32 lanes × ATB_NB columns.
const attnBwdMaxHeadDim = 256

// f32Only refuses the float tensors (nil ones skipped) that are not F32.
func f32Only(op string, names []string, ts ...*gpu.Tensor) error {
	for i, t := range ts {
		if t != nil && t.DType() != gpu.F32 {
			return fmt.Errorf("gpu: %s: %s %s: the cuda backward ops take f32: %w", op, names[i], t, gpu.ErrDType)
		}
	}
	return nil
}

// withScratch runs fn with n bytes of scratch (none for n = 0), freed after.
// The caller holds enter.
func (d *Device) withScratch(n int, fn func(p uint64) error) (err error) {
	if n == 0 {
		return fn(0)
	}
	s, err := d.scratch(n)
	if err != nil {
		return err
	}
	defer func() {
		if ferr := d.freeScratch(s); ferr != nil && err == nil {
			err = ferr
		}
	}()
	return fn(uint64(s))
}

// gemmF32 is cublasGemmEx on column-major operands of dtype typ (f32, or
// bf16 at PrecisionBF16) into f32 at d's Precision: C [rows, cols] =
// alpha·op(A)·op(B) + beta·C, inner size inner. The caller holds enter.
func (d *Device) gemmF32(what string, typ gpu.DType, ta, tb uintptr, rows, cols, inner int, a uint64, lda int, b uint64, ldb int, beta float32, c uint64, ldc int) error {
	d.beta = beta
	err := d.blas.call("cublasGemmEx", d.blas.gemmEx, d.hndl, ta, tb,
		uintptr(rows), uintptr(cols), uintptr(inner),
		uintptr(unsafe.Pointer(&d.alpha)), uintptr(a), gemmType(typ), uintptr(lda),
		uintptr(b), gemmType(typ), uintptr(ldb),
		uintptr(unsafe.Pointer(&d.beta)), uintptr(c), cudaR32F, uintptr(ldc),
		d.computeType(typ), ^uintptr(0)) // CUBLAS_GEMM_DEFAULT
	if err != nil {
		return fmt.Errorf("gpu: MatMulBackward %s: %w", what, err)
	}
	return nil
}

// MatMulBackward runs both products as GEMMs. Row-major x [r, c] is
// column-major xᵀ, so da [m, k] = dc·b is daᵀ = bᵀ·dcᵀ: GemmEx(N, N, k, m,
// n, b, dc) with beta 0, and db [n, k] += dcᵀ·a is dbᵀ += aᵀ·dc: GemmEx(N,
// T, k, n, m, a, dc) with beta 1. colSum adds dc's column sums to dbias.
// At PrecisionBF16 dc, a and b are rounded to bf16 first (bf16.go), dc
// once for both products.
func (d *Device) MatMulBackward(da, db, dbias, dc, a, b *gpu.Tensor) error {
	return d.matMulBackward(da, db, dbias, dc, a, b, 0)
}

var _ gpu.MatMulBackwardAccOps = (*Device)(nil)

// MatMulBackwardAcc is MatMulBackward with beta 1 in da's GEMM.
func (d *Device) MatMulBackwardAcc(da, db, dbias, dc, a, b *gpu.Tensor) error {
	return d.matMulBackward(da, db, dbias, dc, a, b, 1)
}

// matMulBackward is MatMulBackward with da = dc·b + betaA·da.
func (d *Device) matMulBackward(da, db, dbias, dc, a, b *gpu.Tensor, betaA float32) (err error) {
	m, n, k, err := check.MatMulBackward(da, db, dbias, dc, a, b)
	if err != nil {
		return err
	}
	const op = "MatMulBackward"
	names := []string{"da", "db", "dbias", "dc", "a", "b"}
	if d.realBF16() {
		// a and b may be bf16 activations at PrecisionBF16: they are the
		// GEMMs' operands as they are.
		if err := f32Only(op, names[:4], da, db, dbias, dc); err != nil {
			return err
		}
		for i, t := range []*gpu.Tensor{a, b} {
			if t.DType() != gpu.F32 && t.DType() != gpu.BF16 {
				return fmt.Errorf("gpu: %s: %s %s: the cuda backward ops take f32 (or bf16 at PrecisionBF16): %w", op, names[4+i], t, gpu.ErrDType)
			}
		}
	} else if err := f32Only(op, names, da, db, dbias, dc, a, b); err != nil {
		return err
	}
	p, err := d.ptrs(op, names, da, db, dbias, dc, a, b)
	if err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	typ, pdc, pa, pb := gpu.F32, p[3], p[4], p[5]
	gemms := (da != nil && m*k > 0 && n > 0) || (db != nil && m > 0 && n*k > 0)
	if gemms && d.realBF16() {
		sc := &scratchSet{d: d}
		defer sc.release(&err)
		// a is read only by db's product and b only by da's.
		ta, tb := a, b
		if db == nil {
			ta = nil
		}
		if da == nil {
			tb = nil
		}
		o, err := d.bf16Operands(sc.take, []*gpu.Tensor{dc, ta, tb}, []uint64{pdc, pa, pb})
		if err != nil {
			return err
		}
		typ, pdc, pa, pb = gpu.BF16, o[0], o[1], o[2]
	}
	if da != nil && m*k > 0 {
		if n == 0 {
			// A sum of no products: da = 0, or da as it is when accumulated.
			if betaA == 0 {
				if err := d.launch("fillF32", d.fn.bwd.fillF32, d.grid1(m*k), 256, p[0], i64(m*k), f32(0)); err != nil {
					return err
				}
			}
		} else if err := d.gemmF32("da = dc·b", typ, cublasOpN, cublasOpN, k, m, n, pb, k, pdc, n, betaA, p[0], k); err != nil {
			return err
		}
	}
	if db != nil && m > 0 && n*k > 0 {
		if err := d.gemmF32("db += dcᵀ·a", typ, cublasOpN, cublasOpT, k, n, m, pa, k, pdc, n, 1, p[1], k); err != nil {
			return err
		}
	}
	if dbias != nil && m > 0 && n > 0 {
		return d.launch("colSum", d.fn.bwd.colSum, [3]int{(n + 255) / 256, 1, 1}, 256, p[2], p[3], i64(m), i64(n))
	}
	return nil
}

var _ gpu.EmbedGroupOps = (*Device)(nil)

// EmbedBackwardGrouped runs a thread per (group, column): block x is the
// group, block y a tile of 256 columns.
func (d *Device) EmbedBackwardGrouped(dtable, dy, order, starts, uniq *gpu.Tensor) error {
	t, h, err := check.EmbedBackward(dtable, dy, order)
	if err != nil {
		return err
	}
	const op = "EmbedBackwardGrouped"
	if err := f32Only(op, []string{"dtable", "dy"}, dtable, dy); err != nil {
		return err
	}
	u := uniq.Len()
	if err := check.Int(op, "starts", starts); err != nil {
		return err
	}
	if err := check.Int(op, "uniq", uniq); err != nil {
		return err
	}
	if starts.Len() != u+1 || u > t {
		return fmt.Errorf("gpu: %s: starts %s for uniq %s and order %s: want [%d] and at most %d groups: %w", op, starts, uniq, order, u+1, t, gpu.ErrShape)
	}
	p, err := d.ptrs(op, []string{"dtable", "dy", "order", "starts", "uniq"}, dtable, dy, order, starts, uniq)
	if err != nil || u == 0 || h == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	f := &d.fn.bwd
	if err := d.lookupOnce(op, "PTX built before it", kernelFunc{&f.embedGrouped, "embedBackwardGrouped"}); err != nil {
		return err
	}
	return d.launch("embedBackwardGrouped", f.embedGrouped, [3]int{u, (h + 255) / 256, 1}, 256,
		p[0], p[1], p[2], p[3], p[4], i64(dtable.Dim(0)), i64(h))
}

// EmbedBackward runs one thread per column, each walking the ids in order.
func (d *Device) EmbedBackward(dtable, dy, ids *gpu.Tensor) error {
	t, h, err := check.EmbedBackward(dtable, dy, ids)
	if err != nil {
		return err
	}
	const op = "EmbedBackward"
	if err := f32Only(op, []string{"dtable", "dy"}, dtable, dy); err != nil {
		return err
	}
	p, err := d.ptrs(op, []string{"dtable", "dy", "ids"}, dtable, dy, ids)
	if err != nil || t == 0 || h == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("embedBackward", d.fn.bwd.embedBackward, [3]int{(h + 127) / 128, 1, 1}, 128,
		p[0], p[1], p[2], i64(t), i64(dtable.Dim(0)), i64(h))
}

// rmsbChunk is the rows of one partial sum of RMSNormBackward's weight
// gradient (rmsnormDWPart): a function of the row count only, so the sums'
// order does not depend on the GPU.
func rmsbChunk(rows int) int { return max(32, (rows+65534)/65535) }

// RMSNormBackward: rmsnormInv writes each row's inverse RMS to a scratch,
// rmsnormDWPart the weight gradient's partial sums over chunks of rows,
// colSum adds the chunks in order into dweight, then rmsnormBackward
// writes dx (after dweight, since dx may alias dy).
func (d *Device) RMSNormBackward(dx, dweight, dy, x, weight *gpu.Tensor, eps float32) error {
	rows, h, err := check.RMSNormBackward(dx, dweight, dy, x, weight, eps)
	if err != nil {
		return err
	}
	const op = "RMSNormBackward"
	names := []string{"dx", "dweight", "dy", "x", "weight"}
	if err := f32Only(op, names, dx, dweight, dy, x, weight); err != nil {
		return err
	}
	p, err := d.ptrs(op, names, dx, dweight, dy, x, weight)
	if err != nil || rows == 0 || h == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	chunk := rmsbChunk(rows)
	chunks := (rows + chunk - 1) / chunk
	return d.withScratch(4*(rows+chunks*h), func(s uint64) error {
		inv, part := s, s+uint64(4*rows)
		if err := d.launch("rmsnormInv", d.fn.bwd.rmsnormInv, [3]int{rows, 1, 1}, threads(h), inv, p[3], i64(h), f32(eps)); err != nil {
			return err
		}
		if err := d.launch("rmsnormDWPart", d.fn.bwd.rmsnormDWPart, [3]int{(h + 255) / 256, chunks, 1}, 256,
			part, p[2], p[3], inv, i64(rows), i64(h), i64(chunk)); err != nil {
			return err
		}
		if err := d.launch("colSum", d.fn.bwd.colSum, [3]int{(h + 255) / 256, 1, 1}, 256, p[1], part, i64(chunks), i64(h)); err != nil {
			return err
		}
		return d.launch("rmsnormBackward", d.fn.bwd.rmsnormBackward, [3]int{rows, 1, 1}, threads(h),
			p[0], p[2], p[3], p[4], inv, i64(h))
	})
}

// RoPEBackward rotates by the negated angles, with RoPE's threads and
// inverse-frequency table.
func (d *Device) RoPEBackward(dq, dk, pos *gpu.Tensor, rope gpu.Rope) error {
	t, dim, err := check.RoPE(dq, dk, pos, rope)
	if err != nil {
		return err
	}
	const op = "RoPEBackward"
	if err := f32Only(op, []string{"dq", "dk"}, dq, dk); err != nil {
		return err
	}
	p, err := d.ptrs(op, []string{"dq", "dk", "pos"}, dq, dk, pos)
	if err != nil || t == 0 || dim == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	inv, err := d.invFreq(rope, dim)
	if err != nil {
		return err
	}
	for i, x := range []*gpu.Tensor{dq, dk} {
		if x == nil || x.Dim(1) == 0 {
			continue
		}
		heads := x.Dim(1)
		groups := (heads + ropeHeads - 1) / ropeHeads
		if err := d.launch("ropeBackward", d.fn.bwd.ropeBackward, d.grid1(t*groups*(dim/2)), 256, p[i], p[2], inv, i64(heads), i64(dim), i64(t)); err != nil {
			return err
		}
	}
	return nil
}

// SiLUMulBackward is one elementwise kernel.
func (d *Device) SiLUMulBackward(dgate, dup, dy, gate, up *gpu.Tensor) error {
	n, err := check.SiLUMulBackward(dgate, dup, dy, gate, up)
	if err != nil {
		return err
	}
	const op = "SiLUMulBackward"
	names := []string{"dgate", "dup", "dy", "gate", "up"}
	wide := gate.DType() == up.DType() && (gate.DType() == gpu.BF16 || gate.DType() == gpu.F16)
	if wide {
		// bf16 (or f16) activations: the gradients stay f32.
		if err := f32Only(op, names[:3], dgate, dup, dy); err != nil {
			return err
		}
	} else if err := f32Only(op, names, dgate, dup, dy, gate, up); err != nil {
		return err
	}
	p, err := d.ptrs(op, names, dgate, dup, dy, gate, up)
	if err != nil || n == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if wide {
		f := &d.fn.bwd
		if err := d.lookupOnce(op, "PTX built before bf16 activations", kernelFunc{&f.siluMulX, "siluMulBackwardX"}); err != nil {
			return err
		}
		return d.launch("siluMulBackwardX", f.siluMulX, d.grid1(n), 256, p[0], p[1], p[2], p[3], p[4], dt(gate), i64(n))
	}
	return d.launch("siluMulBackward", d.fn.bwd.siluMulBackward, d.grid1(n), 256, p[0], p[1], p[2], p[3], p[4], i64(n))
}

// CausalAttentionBackward runs strided-batched GEMMs and two row kernels
// (attentionBackwardGEMM, trainattn.go) where the PTX has them; else
// attnBwdQ (dq, and each query row's logsumexp and D = Σ p·dp into a
// scratch), then attnBwdKV (dk and dv, one block per key row and kv head,
// over the group's heads and the later queries in order).
func (d *Device) CausalAttentionBackward(dq, dk, dv, dout, q, k, v *gpu.Tensor, seqLen int, scale float32) error {
	a, err := check.CausalAttentionBackward(dq, dk, dv, dout, q, k, v, seqLen, scale)
	if err != nil {
		return err
	}
	const op = "CausalAttentionBackward"
	names := []string{"dq", "dk", "dv", "dout", "q", "k", "v"}
	if err := f32Only(op, names, dq, dk, dv, dout, q, k, v); err != nil {
		return err
	}
	if a.HeadDim > attnBwdMaxHeadDim {
		return fmt.Errorf("gpu: %s: head size %d over cuda's %d: %w", op, a.HeadDim, attnBwdMaxHeadDim, gpu.ErrShape)
	}
	if a.Heads > 65535 || a.Seqs > 65535 {
		return fmt.Errorf("gpu: %s: %d heads and %d sequences: at most 65535 of each (the grid's y and z): %w", op, a.Heads, a.Seqs, gpu.ErrShape)
	}
	p, err := d.ptrs(op, names, dq, dk, dv, dout, q, k, v)
	if err != nil || a.Seqs == 0 || a.HeadDim == 0 {
		return err
	}
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(a.HeadDim)))
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if ok, err := d.attentionBackwardGEMM(a, p, scale); ok {
		return err
	}
	T, H, KV, D := i64(a.SeqLen), i64(a.Heads), i64(a.KVHeads), i64(a.HeadDim)
	return d.withScratch(8*a.Seqs*a.SeqLen*a.Heads, func(stats uint64) error {
		if err := d.launch("attnBwdQ", d.fn.bwd.attnBwdQ, [3]int{a.SeqLen, a.Heads, a.Seqs}, 128,
			p[0], stats, p[3], p[4], p[5], p[6], T, H, KV, D, f32(scale)); err != nil {
			return err
		}
		return d.launch("attnBwdKV", d.fn.bwd.attnBwdKV, [3]int{a.SeqLen, a.KVHeads, a.Seqs}, 128,
			p[1], p[2], stats, p[3], p[4], p[5], p[6], T, H, KV, D, f32(scale))
	})
}

// CrossEntropy runs one block per row.
func (d *Device) CrossEntropy(loss, dlogits, logits, targets *gpu.Tensor, scale float32) error {
	rows, vocab, err := check.CrossEntropy(loss, dlogits, logits, targets, scale)
	if err != nil {
		return err
	}
	const op = "CrossEntropy"
	if err := f32Only(op, []string{"loss", "dlogits", "logits"}, loss, dlogits, logits); err != nil {
		return err
	}
	p, err := d.ptrs(op, []string{"loss", "dlogits", "logits", "targets"}, loss, dlogits, logits, targets)
	if err != nil || rows == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("crossEntropy", d.fn.bwd.crossEntropy, [3]int{rows, 1, 1}, threads(vocab),
		p[0], p[1], p[2], p[3], i64(vocab), f32(scale))
}
