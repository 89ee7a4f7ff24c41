package cuda

import (
	"errors"
	"fmt"
	"math"
	"os"
	"unsafe"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// Training's compute on the tensor cores: how f32 GEMMs compute
// (Precision), and causal self-attention over equal-length sequences as
// cuBLAS strided-batched GEMMs around two row kernels of train.cuh
// (attnSoftmax, attnGradS). Per sequence, the scores S = Q·Kᵀ of every
// head are one [heads, T, T] f32 scratch, softmaxed in place into P; the
// forward pass is then O = P·V, and the backward recomputes P, takes
// dP = dO·Vᵀ, dS = scale·P∘(dP − rowsum(P∘dP)) in place, and dV = Σ Pᵀ·dO,
// dK = Σ dSᵀ·Q over the heads of each kv group (in head order, beta 1 after
// the first), dQ = dS·K. Grouped-query heads are batched by fixing the
// head's place g in its group: heads kh·G + g for every kv head kh are one
// strided batch. Nothing of size T² outlives the op. The full T×T products
// are computed (the masked half as zeros): twice the causal FLOPs, on
// tensor cores.
//
// At PrecisionBF16 both ops take fused FlashAttention-2 kernels instead
// (flashFwd*, flashBwd* of train.cuh) where the head size is 16, 32, 64
// or 128: q, k, v and dO tiles rounded to bf16 in shared memory, products
// on the tensor cores (mma.sync, f32 accumulators), the softmax online in
// f32, nothing of size T² in memory and the masked tiles skipped. The
// backward runs a prologue (the forward again, writing each row's
// logsumexp and rowsum(dO∘O) into scratch and zeroing dq), then one block
// per (key tile, kv head, sequence) that keeps dK and dV in registers over
// the kv group's heads in order, and dQ in a kernel of its own (flashBwdQ:
// per query tile, S, P, dP and dS again, no atomics), so that the backward
// repeats bit for bit. f32 and tf32 keep the GEMM path, as do other head
// sizes and a PTX without the fused kernels. SLUICE_CUDA_FLASH_ATTN (read
// at a device's first attention): 0 keeps the GEMM path at bf16 too, for
// A/B runs; atomic adds dQ inside flashBwd with f32 atomics instead (dq's
// last bits vary between runs). On an H200 (bench-1b's attention, seqs 4,
// T 1024, BenchmarkTrainAttention) the deterministic backward took 0.86 ms
// and the atomic one 0.93 ms, the GEMM path 2.11 ms; the forward 0.19 ms
// against 0.96 ms.

// Precision is how the f32 GEMMs of MatMul, MatMulBackward and the
// training attention compute (their tensors stay f32, accumulation f32).
type Precision int

const (
	// PrecisionF32 is f32 FMA (CUBLAS_COMPUTE_32F, no TF32): the default.
	PrecisionF32 Precision = iota
	// PrecisionTF32 rounds the inputs to TF32 on the tensor cores
	// (CUBLAS_COMPUTE_32F_FAST_TF32: 10 bits of mantissa).
	PrecisionTF32
	// PrecisionBF16 lets cuBLAS round the inputs to bf16 on the tensor
	// cores (CUBLAS_COMPUTE_32F_FAST_16BF: 8 bits of mantissa). The mode
	// allows the down-conversion and does not force it: on an H100 with
	// CUDA 13 and f32 operands it gave TF32's results and times
	// (BENCHMARKS.md train/sft-1b); bf16 kernels need bf16 operands.
	PrecisionBF16
)

var precisionNames = [...]string{"f32", "tf32", "bf16"}

func (p Precision) String() string {
	if p >= 0 && int(p) < len(precisionNames) {
		return precisionNames[p]
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// ParsePrecision reads f32, tf32 or bf16.
func ParsePrecision(s string) (Precision, error) {
	for i, n := range precisionNames {
		if s == n {
			return Precision(i), nil
		}
	}
	return 0, fmt.Errorf("cuda: precision %q: want f32, tf32 or bf16: %w", s, gpu.ErrArg)
}

// SetPrecision sets how f32 GEMMs compute from the next op on (name is
// f32, tf32 or bf16); training sets it, inference keeps Config.Precision.
// Inputs of other dtypes (bf16 and f16 weights) always compute in f32.
func (d *Device) SetPrecision(name string) error {
	p, err := ParsePrecision(name)
	if err != nil {
		return err
	}
	d.prec = p
	return nil
}

// Precision is the current f32 GEMM precision.
func (d *Device) Precision() string { return d.prec.String() }

// cuBLAS compute types (cublasComputeType_t).
const (
	cublasCompute32FFast16BF = 75
	cublasCompute32FFastTF32 = 77
)

// computeType is the cublasComputeType_t of a GEMM over inputs of dtype t.
func (d *Device) computeType(t gpu.DType) uintptr {
	if t != gpu.F32 {
		return cublasCompute32F
	}
	switch d.prec {
	case PrecisionTF32:
		return cublasCompute32FFastTF32
	case PrecisionBF16:
		return cublasCompute32FFast16BF
	}
	return cublasCompute32F
}

// trainAttn is what the training attention looks up at its first use,
// not at New: the kernels and cuBLAS's strided-batched GEMM. A PTX
// without the kernels (one built before them) leaves ok false, and the
// backward keeps attnBwdQ/attnBwdKV.
type trainAttn struct {
	tried, ok          bool
	softmax, gradS     uintptr
	gemmStridedBatched uintptr
	err                error
	flash              flashAttn
}

// flashAttn is the fused kernels, looked up at the first attention:
// fwd[i], bwd[i] and bwdQ[i] serve head size flashDims[i], 0 where the
// PTX has none. mode is SLUICE_CUDA_FLASH_ATTN's ("0": off, "atomic": dQ
// by atomics in flashBwd; else dQ by flashBwdQ). flash and other count the calls (forward and backward) that
// took the fused kernels and the other paths, for tests.
type flashAttn struct {
	tried          bool
	mode           string
	fwd, bwd, bwdQ [len(flashDims)]uintptr
	flash, other   int
}

// flashDims is the head sizes of the fused kernels (train.cuh's FA_FWD,
// FA_BWD).
var flashDims = [...]int{16, 32, 64, 128}

// flashFuncs gives the fused kernels for a's head size (bwdQ 0 under
// SLUICE_CUDA_FLASH_ATTN=atomic), or ok false where the GEMM path serves (not
// bf16, SLUICE_CUDA_FLASH_ATTN=0, another head size, a grid over the
// driver's limits, a PTX without them). The caller holds enter.
func (d *Device) flashFuncs(a check.CausalAttention) (fwd, bwd, bwdQ uintptr, ok bool) {
	fa := d.flashLookup()
	if d.prec != PrecisionBF16 || fa.mode == "0" || a.Heads > 65535 || a.Seqs > 65535 {
		return 0, 0, 0, false
	}
	for i, hd := range flashDims {
		if hd == a.HeadDim && fa.fwd[i] != 0 {
			if fa.mode != "atomic" {
				bwdQ = fa.bwdQ[i]
			}
			return fa.fwd[i], fa.bwd[i], bwdQ, true
		}
	}
	return 0, 0, 0, false
}

// aligned16 reports whether every address is a multiple of 16 bytes (the
// fused kernels' float4 loads; a view may start anywhere).
func aligned16(ps ...uint64) bool {
	for _, p := range ps {
		if p%16 != 0 {
			return false
		}
	}
	return true
}

// flashLookup looks the fused kernels up and reads SLUICE_CUDA_FLASH_ATTN
// once. The caller holds enter.
func (d *Device) flashLookup() *flashAttn {
	fa := &d.fn.bwd.attn.flash
	if fa.tried {
		return fa
	}
	fa.tried, fa.mode = true, os.Getenv("SLUICE_CUDA_FLASH_ATTN")
	for i, hd := range flashDims {
		fs := []kernelFunc{{&fa.fwd[i], fmt.Sprintf("flashFwd%d", hd)}, {&fa.bwd[i], fmt.Sprintf("flashBwd%d", hd)},
			{&fa.bwdQ[i], fmt.Sprintf("flashBwdQ%d", hd)}}
		if _, err := d.lookup(fs); err != nil {
			fa.fwd[i], fa.bwd[i], fa.bwdQ[i] = 0, 0, 0 // an older PTX: the GEMM path
		}
	}
	return fa
}

// flashTile is the query tile of flashFwd and flashBwdQ and the key tile
// of flashBwd (FA_BQ, FA_BK); the kernels run 128 threads.
const flashTile = 64

// flashForward is CausalAttention on the fused kernel; ok is false where
// flashFuncs refuses, and the caller takes the GEMM path. The caller holds
// enter.
func (d *Device) flashForward(a check.CausalAttention, out, q, k, v uint64, scale float32) (ok bool, err error) {
	fwd, _, _, ok := d.flashFuncs(a)
	fa := &d.fn.bwd.attn.flash
	if !ok || !aligned16(out, q, k, v) {
		fa.other++
		return false, nil
	}
	fa.flash++
	grid := [3]int{(a.SeqLen + flashTile - 1) / flashTile, a.Heads, a.Seqs}
	return true, d.launch("flashFwd", fwd, grid, 128, out, 0, 0, 0, 0, q, k, v,
		i64(a.SeqLen), i64(a.Heads), i64(a.KVHeads), f32(scale))
}

// flashBackward is CausalAttentionBackward on the fused kernels (p as
// attentionBackwardGEMM's), ok as flashForward's. The caller holds enter.
func (d *Device) flashBackward(a check.CausalAttention, p [8]uint64, scale float32) (ok bool, err error) {
	fwd, bwd, bwdQ, ok := d.flashFuncs(a)
	fa := &d.fn.bwd.attn.flash
	if !ok || !aligned16(p[:7]...) {
		fa.other++
		return false, nil
	}
	fa.flash++
	dq, dk, dv, dout, q, k, v := p[0], p[1], p[2], p[3], p[4], p[5], p[6]
	T, H, KV := i64(a.SeqLen), i64(a.Heads), i64(a.KVHeads)
	tiles := (a.SeqLen + flashTile - 1) / flashTile
	rows := a.Seqs * a.Heads * a.SeqLen
	return true, d.withScratch(8*rows, func(s uint64) error {
		// flashBwd adds dQ by atomics into the dq the prologue zeroes, or
		// leaves it to flashBwdQ (dq 0 for both).
		lse, drow, dqAtomic := s, s+uint64(4*rows), dq
		if bwdQ != 0 {
			dqAtomic = 0
		}
		if err := d.launch("flashFwd (backward prologue)", fwd, [3]int{tiles, a.Heads, a.Seqs}, 128,
			0, lse, drow, dqAtomic, dout, q, k, v, T, H, KV, f32(scale)); err != nil {
			return err
		}
		if err := d.launch("flashBwd", bwd, [3]int{tiles, a.KVHeads, a.Seqs}, 128,
			dqAtomic, dk, dv, lse, drow, dout, q, k, v, T, H, KV, f32(scale)); err != nil || bwdQ == 0 {
			return err
		}
		return d.launch("flashBwdQ", bwdQ, [3]int{tiles, a.Heads, a.Seqs}, 128,
			dq, lse, drow, dout, q, k, v, T, H, KV, f32(scale))
	})
}

// attnFuncs looks the training attention up once. The caller holds enter.
func (d *Device) attnFuncs() *trainAttn {
	ta := &d.fn.bwd.attn
	if ta.tried {
		return ta
	}
	ta.tried = true
	if name, err := d.lookup([]kernelFunc{{&ta.softmax, "attnSoftmax"}, {&ta.gradS, "attnGradS"}}); err != nil {
		ta.err = fmt.Errorf("cuda: the kernels have no %s (PTX from before the training attention): %w", name, errors.ErrUnsupported)
		return ta
	}
	p, err := d.blas.lib.sym("cublasGemmStridedBatchedEx")
	if err != nil {
		ta.err = fmt.Errorf("%w: %w", err, errors.ErrUnsupported)
		return ta
	}
	ta.gemmStridedBatched, ta.ok = p, true
	return ta
}

// mat is one operand of a strided batch of row-major matrices: its
// address, row stride and the stride between batch members (elements).
type mat struct {
	p      uint64
	ld     int
	stride int
}

// at is the operand moved by off elements.
func (m mat) at(off int) mat { m.p += uint64(4 * off); return m }

// gemmRM runs batch row-major f32 products C = op(A)·op(B) + beta·C with
// op(A) [m, k] (A stored [k, m] when ta) and op(B) [k, n] (B stored
// [n, k] when tb): column-major Cᵀ = op(B)ᵀ·op(A)ᵀ. The caller holds
// enter.
func (d *Device) gemmRM(what string, ta, tb bool, m, n, k int, a, b mat, beta float32, c mat, batch int) error {
	opA, opB := uintptr(cublasOpN), uintptr(cublasOpN)
	if ta {
		opA = cublasOpT
	}
	if tb {
		opB = cublasOpT
	}
	d.beta = beta
	err := d.blas.call("cublasGemmStridedBatchedEx", d.fn.bwd.attn.gemmStridedBatched, d.hndl, opB, opA,
		uintptr(n), uintptr(m), uintptr(k),
		uintptr(unsafe.Pointer(&d.alpha)), uintptr(b.p), cudaR32F, uintptr(b.ld), uintptr(b.stride),
		uintptr(a.p), cudaR32F, uintptr(a.ld), uintptr(a.stride),
		uintptr(unsafe.Pointer(&d.beta)), uintptr(c.p), cudaR32F, uintptr(c.ld), uintptr(c.stride),
		uintptr(batch), d.computeType(gpu.F32), ^uintptr(0)) // CUBLAS_GEMM_DEFAULT
	if err != nil {
		return fmt.Errorf("gpu: causal attention %s: %w", what, err)
	}
	return nil
}

// attnLayout is the operands of one sequence's attention: q-shaped
// tensors [T, heads, d] and kv-shaped [T, kvHeads, d] at sequence b, and
// the [heads, T, T] scratch matrices, each batched over the kv heads for
// head place g.
type attnLayout struct {
	a check.CausalAttention
	G int
}

func (l attnLayout) qm(base uint64, b, g int) mat {
	a := l.a
	return mat{p: base, ld: a.Heads * a.HeadDim, stride: l.G * a.HeadDim}.at((b*a.SeqLen*a.Heads + g) * a.HeadDim)
}

func (l attnLayout) kvm(base uint64, b int) mat {
	a := l.a
	return mat{p: base, ld: a.KVHeads * a.HeadDim, stride: a.HeadDim}.at(b * a.SeqLen * a.KVHeads * a.HeadDim)
}

func (l attnLayout) sm(base uint64, g int) mat {
	T := l.a.SeqLen
	return mat{p: base, ld: T, stride: l.G * T * T}.at(g * T * T)
}

// rowKernel launches a row kernel of the training attention over the
// heads·T rows of one sequence's scratch.
func (d *Device) rowKernel(name string, fn uintptr, rows, T int, args ...uint64) error {
	return d.launch(name, fn, [3]int{rows, 1, 1}, threads(min(T, 256)), args...)
}

// CausalAttention is causal self-attention for training over seqs
// sequences of seqLen tokens: out and q [seqs·seqLen, heads, d], k and v
// [seqs·seqLen, kvHeads, d], query i of a sequence attending to its keys
// 0..i with scores q·k·scale (0: 1/sqrt(d)), as Attention over a cache
// whose block j is sequence j. F32 only; its GEMMs compute at the
// device's Precision. A PTX without the training attention's kernels
// gives an error wrapping errors.ErrUnsupported.
func (d *Device) CausalAttention(out, q, k, v *gpu.Tensor, seqLen int, scale float32) error {
	const op = "CausalAttention"
	a, err := check.CausalAttentionBackward(out, k, v, out, q, k, v, seqLen, scale)
	if err != nil {
		return fmt.Errorf("%w (the forward's shapes are the backward's: out as dq)", err)
	}
	names := []string{"out", "q", "k", "v"}
	if err := f32Only(op, names, out, q, k, v); err != nil {
		return err
	}
	p, err := d.ptrs(op, names, out, q, k, v)
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
	if ok, err := d.flashForward(a, p[0], p[1], p[2], p[3], scale); ok {
		return err
	}
	ta := d.attnFuncs()
	if !ta.ok {
		return ta.err
	}
	l := attnLayout{a: a, G: a.Heads / a.KVHeads}
	T, KV := a.SeqLen, a.KVHeads
	rows := a.Heads * T
	return d.withScratch(4*rows*T, func(s uint64) error {
		for b := range a.Seqs {
			for g := range l.G {
				if err := d.gemmRM("S = Q·Kᵀ", false, true, T, T, a.HeadDim, l.qm(p[1], b, g), l.kvm(p[2], b), 0, l.sm(s, g), KV); err != nil {
					return err
				}
			}
			if err := d.rowKernel("attnSoftmax", ta.softmax, rows, T, s, i64(T), f32(scale)); err != nil {
				return err
			}
			for g := range l.G {
				if err := d.gemmRM("O = P·V", false, false, T, a.HeadDim, T, l.sm(s, g), l.kvm(p[3], b), 0, l.qm(p[0], b, g), KV); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// attentionBackwardGEMM is CausalAttentionBackward on the tensor cores
// (the file's comment): the fused kernels where flashFuncs has them, else
// the GEMMs. ok is false when the kernels are missing, and the
// caller takes attnBwdQ/attnBwdKV. The caller holds enter.
func (d *Device) attentionBackwardGEMM(a check.CausalAttention, p [8]uint64, scale float32) (ok bool, err error) {
	if ok, err := d.flashBackward(a, p, scale); ok {
		return true, err
	}
	ta := d.attnFuncs()
	if !ta.ok {
		return false, nil
	}
	l := attnLayout{a: a, G: a.Heads / a.KVHeads}
	T, KV, D := a.SeqLen, a.KVHeads, a.HeadDim
	rows := a.Heads * T
	dq, dk, dv, dout, q, k, v := p[0], p[1], p[2], p[3], p[4], p[5], p[6]
	return true, d.withScratch(8*rows*T, func(s uint64) error {
		ps, ds := s, s+uint64(4*rows*T)
		for b := range a.Seqs {
			for g := range l.G {
				if err := d.gemmRM("S = Q·Kᵀ", false, true, T, T, D, l.qm(q, b, g), l.kvm(k, b), 0, l.sm(ps, g), KV); err != nil {
					return err
				}
				if err := d.gemmRM("dP = dO·Vᵀ", false, true, T, T, D, l.qm(dout, b, g), l.kvm(v, b), 0, l.sm(ds, g), KV); err != nil {
					return err
				}
			}
			if err := d.rowKernel("attnSoftmax", ta.softmax, rows, T, ps, i64(T), f32(scale)); err != nil {
				return err
			}
			if err := d.rowKernel("attnGradS", ta.gradS, rows, T, ds, ps, i64(T), f32(scale)); err != nil {
				return err
			}
			for g := range l.G {
				beta := float32(min(g, 1))
				if err := d.gemmRM("dV += Pᵀ·dO", true, false, T, D, T, l.sm(ps, g), l.qm(dout, b, g), beta, l.kvm(dv, b), KV); err != nil {
					return err
				}
				if err := d.gemmRM("dK += dSᵀ·Q", true, false, T, D, T, l.sm(ds, g), l.qm(q, b, g), beta, l.kvm(dk, b), KV); err != nil {
					return err
				}
				if err := d.gemmRM("dQ = dS·K", false, false, T, D, T, l.sm(ds, g), l.kvm(k, b), 0, l.qm(dq, b, g), KV); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
