package cuda

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/internal/check"
)

// The ops: arguments are checked on the host with gpu/internal/check (the
// same checks as every backend), then one or two kernels are enqueued.
// Index tensors' contents are not read on the host: out-of-range ids,
// slots and block numbers are skipped by the kernels instead of reported.

// threads is the block size for n items along a row: a multiple of 32,
// at most 1024.
func threads(n int) int { return min(1024, max(32, (n+31)/32*32)) }

// Elements per thread that rmsnorm keeps in registers (RMS_PER in
// sluice.cu) and heads per thread of rope (ROPE_HPT).
const rmsRegs, ropeHeads = 8, 4

// grid1 is the grid of a grid-stride loop over n elements.
func (d *Device) grid1(n int) [3]int {
	return [3]int{min((n+255)/256, d.sms*16), 1, 1}
}

// ptrs resolves up to 8 tensors (nil ones give 0); names and ts have one
// length. It returns an array so that ops allocate nothing.
func (d *Device) ptrs(op string, names []string, ts ...*gpu.Tensor) ([8]uint64, error) {
	var out [8]uint64
	for i, t := range ts {
		p, err := d.optPtr(op, names[i], t)
		if err != nil {
			return out, err
		}
		out[i] = p
	}
	return out, nil
}

// gemmType is the cudaDataType of a float dtype.
func gemmType(t gpu.DType) uintptr {
	switch t {
	case gpu.BF16:
		return cudaR16BF
	case gpu.F16:
		return cudaR16F
	}
	return cudaR32F
}

// MatMul computes c = a·bᵀ + bias with cublasGemmEx (float32 compute).
// Row-major c [m, n] is column-major cᵀ [n, m] = b·aᵀ, so the call is
// GemmEx(T, N, n, m, k, b, a). At PrecisionBF16 f32 and bf16 inputs are
// bf16 operands (bf16Operands); else inputs of two dtypes are widened to
// f32 first (exact); a bias, or an output dtype cuBLAS cannot write for the
// inputs, goes through an f32 scratch and the epilogue kernel, so c is
// rounded once.
func (d *Device) MatMul(c, a, b, bias *gpu.Tensor) (err error) {
	m, n, k, err := check.MatMul(c, a, b, bias)
	if err != nil {
		return err
	}
	p, err := d.ptrs("MatMul", []string{"c", "a", "b", "bias"}, c, a, b, bias)
	if err != nil {
		return err
	}
	if m == 0 || n == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if k == 0 {
		return d.launch("epilogue", d.fn.epilogue, d.grid1(m*n), 256, p[0], dt(c), 0, p[3], dt(bias), i64(m), i64(n))
	}
	sc := &scratchSet{d: d}
	defer sc.release(&err)
	tmp := sc.take
	ap, bp, typ := p[1], p[2], a.DType()
	if d.mixedBF16(a, b) {
		o, err := d.bf16Operands(tmp, []*gpu.Tensor{a, b}, []uint64{ap, bp})
		if err != nil {
			return err
		}
		ap, bp, typ = o[0], o[1], gpu.BF16
	} else if a.DType() != b.DType() {
		typ = gpu.F32
		for _, x := range []struct {
			t *gpu.Tensor
			p *uint64
		}{{a, &ap}, {b, &bp}} {
			if x.t.DType() == gpu.F32 {
				continue
			}
			w, err := tmp(4 * x.t.Len())
			if err != nil {
				return err
			}
			if err := d.launch("convert", d.fn.convert, d.grid1(x.t.Len()), 256, w, uint64(gpu.F32), *x.p, dt(x.t), i64(x.t.Len())); err != nil {
				return err
			}
			*x.p = w
		}
	}
	cp, ctype := p[0], c.DType()
	direct := bias == nil && (ctype == typ || ctype == gpu.F32)
	if !direct {
		if cp, err = tmp(4 * m * n); err != nil {
			return err
		}
		ctype = gpu.F32
	}
	d.beta = 0
	err = d.blas.call("cublasGemmEx", d.blas.gemmEx, d.hndl, cublasOpT, cublasOpN,
		uintptr(n), uintptr(m), uintptr(k),
		uintptr(unsafe.Pointer(&d.alpha)), uintptr(bp), gemmType(typ), uintptr(k),
		uintptr(ap), gemmType(typ), uintptr(k),
		uintptr(unsafe.Pointer(&d.beta)), uintptr(cp), gemmType(ctype), uintptr(n),
		d.computeType(typ), ^uintptr(0)) // CUBLAS_GEMM_DEFAULT
	if err != nil {
		return fmt.Errorf("gpu: MatMul %s·%sᵀ → %s: %w", a, b, c, err)
	}
	if !direct {
		return d.launch("epilogue", d.fn.epilogue, d.grid1(m*n), 256, p[0], dt(c), cp, p[3], dt(bias), i64(m), i64(n))
	}
	return nil
}

// Embed gathers rows of table.
func (d *Device) Embed(dst, table, ids *gpu.Tensor) error {
	t, h, err := check.Embed(dst, table, ids)
	if err != nil {
		return err
	}
	p, err := d.ptrs("Embed", []string{"dst", "table", "ids"}, dst, table, ids)
	if err != nil || t == 0 || h == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("embed", d.fn.embed, [3]int{t, 1, 1}, min(threads(h), 256), p[0], dt(dst), p[1], dt(table), p[2], i64(table.Dim(0)), i64(h))
}

// RMSNorm normalizes rows, with the fused residual add.
func (d *Device) RMSNorm(dst, x, residual, weight *gpu.Tensor, eps float32) error {
	rows, h, err := check.RMSNorm(dst, x, residual, weight, eps)
	if err != nil {
		return err
	}
	p, err := d.ptrs("RMSNorm", []string{"dst", "x", "residual", "weight"}, dst, x, residual, weight)
	if err != nil || rows == 0 || h == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	// Each thread keeps up to rmsRegs elements of its row in registers
	// (RMS_PER in sluice.cu) when the row fits; a batch of few rows
	// (decode) takes wider blocks, so that more threads are in flight.
	bt := threads((h + rmsRegs - 1) / rmsRegs)
	if rows < 4*d.sms {
		bt = threads(h)
	}
	return d.launch("rmsnorm", d.fn.rmsnorm, [3]int{rows, 1, 1}, bt,
		p[0], dt(dst), p[1], dt(x), p[2], dt(residual), p[3], dt(weight), i64(h), f32(eps))
}

// ropeKey identifies an inverse-frequency table.
type ropeKey struct {
	theta  float64
	llama3 gpu.Llama3Scaling
	scaled bool
	d      int
}

// invFreq returns the device table of rope.InvFreq(dim), uploading it the
// first time. The caller holds enter.
func (d *Device) invFreq(rope gpu.Rope, dim int) (uint64, error) {
	key := ropeKey{theta: rope.Theta, d: dim}
	if rope.Llama3 != nil {
		key.llama3, key.scaled = *rope.Llama3, true
	}
	if p, ok := d.ropes[key]; ok {
		return uint64(p), nil
	}
	if d.capturing != nil {
		// The upload would be recorded from host memory that does not
		// outlive the capture.
		return 0, fmt.Errorf("gpu: RoPE: the inv_freq table of theta %g, d %d is uploaded by the first RoPE call, which must run before a Capture: %w",
			rope.Theta, dim, gpu.ErrArg)
	}
	inv := rope.InvFreq(dim)
	p, err := d.malloc(4 * len(inv))
	if err != nil {
		return 0, err
	}
	err = d.drv.call("cuMemcpyHtoDAsync_v2", d.drv.cuMemcpyHtoDAsync, p, uintptr(unsafe.Pointer(&inv[0])), uintptr(4*len(inv)), d.stream)
	runtime.KeepAlive(inv)
	if err != nil {
		d.free(p)
		return 0, err
	}
	d.ropes[key] = p
	return uint64(p), nil
}

// RoPE rotates q and k in place.
func (d *Device) RoPE(q, k, pos *gpu.Tensor, rope gpu.Rope) error {
	t, dim, err := check.RoPE(q, k, pos, rope)
	if err != nil {
		return err
	}
	p, err := d.ptrs("RoPE", []string{"q", "k", "pos"}, q, k, pos)
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
	for i, x := range []*gpu.Tensor{q, k} {
		if x == nil || x.Dim(1) == 0 {
			continue
		}
		heads := x.Dim(1)
		groups := (heads + ropeHeads - 1) / ropeHeads // threads per (token, pair)
		if err := d.launch("rope", d.fn.rope, d.grid1(t*groups*(dim/2)), 256, p[i], dt(x), p[2], inv, i64(heads), i64(dim), i64(t)); err != nil {
			return err
		}
	}
	return nil
}

// SiLUMul computes silu(gate) ⊙ up.
func (d *Device) SiLUMul(dst, gate, up *gpu.Tensor) error {
	rows, n, err := check.SiLUMul(dst, gate, up)
	if err != nil {
		return err
	}
	p, err := d.ptrs("SiLUMul", []string{"dst", "gate", "up"}, dst, gate, up)
	if err != nil || rows*n == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	// Blocks of 256 threads take 4 × 256 columns of a row (siluMul in sluice.cu).
	return d.launch("siluMul", d.fn.siluMul, [3]int{(n + 1023) / 1024, min(rows, 65535), 1}, 256,
		p[0], dt(dst), p[1], dt(gate), p[2], dt(up), i64(rows), i64(n))
}

// Add computes a + b.
func (d *Device) Add(dst, a, b *gpu.Tensor) error {
	n, err := check.Add(dst, a, b)
	if err != nil {
		return err
	}
	p, err := d.ptrs("Add", []string{"dst", "a", "b"}, dst, a, b)
	if err != nil || n == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("add", d.fn.add, d.grid1(n), 256, p[0], dt(dst), p[1], dt(a), p[2], dt(b), i64(n))
}

// Softmax normalizes rows.
func (d *Device) Softmax(dst, x *gpu.Tensor) error {
	rows, n, err := check.Softmax(dst, x)
	if err != nil {
		return err
	}
	p, err := d.ptrs("Softmax", []string{"dst", "x"}, dst, x)
	if err != nil || rows == 0 || n == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("softmax", d.fn.softmax, [3]int{rows, 1, 1}, threads(n), p[0], dt(dst), p[1], dt(x), i64(n))
}

// Argmax writes each row's first largest index.
func (d *Device) Argmax(dst, x *gpu.Tensor) error {
	rows, n, err := check.Argmax(dst, x)
	if err != nil {
		return err
	}
	p, err := d.ptrs("Argmax", []string{"dst", "x"}, dst, x)
	if err != nil || rows == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launch("argmax", d.fn.argmax, [3]int{rows, 1, 1}, threads(n), p[0], p[1], dt(x), i64(n))
}

var _ gpu.ScaledKV = (*Device)(nil)

// WriteKV stores new keys and values in the paged cache.
func (d *Device) WriteKV(kCache, vCache, k, v, slots *gpu.Tensor) error {
	return d.WriteKVScaled(kCache, vCache, k, v, slots, 1, 1)
}

// WriteKVScaled is WriteKV into an FP8 cache with k and v scales: the
// kernel divides in float32 and rounds as gpu.ToFloat8E4M3 does, so the
// cache holds the bits the cpu backend stores.
func (d *Device) WriteKVScaled(kCache, vCache, k, v, slots *gpu.Tensor, kScale, vScale float32) error {
	c, t, err := check.WriteKV(kCache, vCache, k, v, slots)
	if err != nil {
		return err
	}
	if err := check.KVScales("WriteKV", kScale, vScale); err != nil {
		return err
	}
	p, err := d.ptrs("WriteKV", []string{"kCache", "vCache", "k", "v", "slots"}, kCache, vCache, k, v, slots)
	if err != nil || t == 0 {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	row := c.KVHeads * c.HeadDim
	return d.launch("writeKV", d.fn.writeKV, [3]int{t, 1, 1}, min(threads(row), 256),
		p[0], p[1], dt(kCache), p[2], dt(k), p[3], dt(v), p[4], i64(c.Slots()), i64(row), f32(orOne(kScale)), f32(orOne(vScale)))
}

// orOne is a KV scale with 0 read as 1.
func orOne(s float32) float32 {
	if s == 0 {
		return 1
	}
	return s
}

// The bounds of the grouped-query kernel (GQA_MAXG and 32 × GQA_MAXR in
// sluice.cu); other shapes take the one-head-per-block kernel.
const gqaMaxGroup, gqaMaxHeadDim = 8, 128

// The tiled prefill kernel (attentionPrefill in sluice.cu) serves groups
// of up to 8 query heads and heads of up to 128; a tile holds
// prefillRows(d) (query row, head) pairs, so prefillRows(d) / G query rows.
// It is chosen when the batch's MaxQueryLen is at least prefillMinQuery.
const prefillMaxGroup, prefillMaxHeadDim, prefillMinQuery = 8, 128, 16

// prefillRows is R in sluice.cu's attentionPrefill: 64 rows for d ≤ 64,
// 32 for d ≤ 128.
func prefillRows(d int) int {
	if d <= 64 {
		return 64
	}
	return 32
}

// AttnKernels is the attention kernel choice of a Device (Config.Attn).
// Only AttnAuto is for real work; the others force a kernel on batches it
// would not get, so that tests reach every path.
type AttnKernels uint8

const (
	// AttnAuto chooses by the batch: attentionPrefill (attentionPrefillMMA
	// for bf16 q and out, bf16 or FP8 caches, d 64 or 128) for MaxQueryLen ≥
	// prefillMinQuery, with attentionSplit for the batch's decode rows;
	// attentionSplit for decode batches (MaxQueryLen 1); else attentionGQA
	// (2 ≤ G ≤ 8, d ≤ 128) or attention. gpu/kernels/NOTES.md has the
	// measurements behind each choice (v3 to v9).
	AttnAuto AttnKernels = iota
	// AttnPrefill sends every batch whose shapes the prefill kernels serve
	// through them, decode rows too.
	AttnPrefill
	// AttnSplitMost is AttnAuto with the most splits in attentionSplit:
	// one tile of keys each, so the merge always runs.
	AttnSplitMost
)

func (k AttnKernels) String() string {
	switch k {
	case AttnAuto:
		return "auto"
	case AttnPrefill:
		return "prefill"
	case AttnSplitMost:
		return "split-most"
	}
	return fmt.Sprintf("AttnKernels(%d)", uint8(k))
}

// The split-context decode kernel (attentionSplit in sluice.cu) serves
// groups of up to 8 query heads and heads of up to 128; splitTile is its
// SP_KT, the keys of one tile.
const splitMaxGroup, splitMaxHeadDim, splitTile = 8, 128, 32

// splitBlocksPerSM is how many attentionSplit blocks one multiprocessor
// holds (its __launch_bounds__: 6 for d ≤ 64, 4 for attentionSplit128),
// splitMinChunk the fewest keys of a split and splitMax the most splits.
func splitBlocksPerSM(d int) int {
	if d <= 64 {
		return 6
	}
	return 4
}

const splitMinChunk, splitMax = 64, 128

// decodeSplits returns how many splits attentionSplit takes for pairs
// (sequence, kv head) pairs whose longest context is maxCtx keys, when wave
// blocks fill the GPU once, and the keys per split (a multiple of
// splitTile; the last split takes the rest): one split when the pairs
// alone fill a wave (measured on an H200: splitting a full wave further
// only adds merge work), else as many as fill one, each at least
// splitMinChunk keys. mode and force are Config.Attn and Config.Splits.
func decodeSplits(pairs, maxCtx, wave int, mode AttnKernels, force int) (splits, chunk int) {
	tiles := max(1, (maxCtx+splitTile-1)/splitTile)
	switch {
	case mode == AttnSplitMost:
		splits = tiles
	case force > 0:
		splits = force
	default:
		splits = min(wave/max(1, pairs), (maxCtx+splitMinChunk-1)/splitMinChunk, splitMax)
	}
	splits = min(max(1, splits), tiles)
	chunk = (tiles + splits - 1) / splits * splitTile
	return max(1, (maxCtx+chunk-1)/chunk), chunk
}

// splitShared is attentionSplit's dynamic shared memory in bytes (its
// layouts in sluice.cu): q rows, the K and V tiles, the probabilities; the
// tiles as f32 rows of 4·odd floats, or, for d ≤ 64 (attentionSplit's
// cp.async path), splitStages stages of rows of d + 8 two-byte elements.
func splitShared(g, d int) int {
	r := 4
	if g > 4 {
		r = 8
	}
	d4 := (d + 3) &^ 3
	ks := ((d4 >> 2) | 1) << 2
	f32 := 4 * (r*d4 + 2*splitTile*ks + r*(splitTile+4))
	if d > 64 {
		return f32
	}
	return max(f32, 4*r*d+splitStages*2*splitTile*(d+8)*2+4*r*(splitTile+4))
}

// splitStages is SP_STAGES in sluice.cu.
const splitStages = 3

// maxHeadDim is the largest head size the attention kernel holds in
// registers (32 lanes × ATTN_MAXR).
const maxHeadDim = 256

// Attention runs causal paged attention. Batches with MaxQueryLen ≥
// prefillMinQuery take the tiled FlashAttention-style kernel (a tile of
// query rows per block, K/V tiles in shared memory): attentionPrefillMMA
// on the tensor cores for bf16 q and out, bf16 or FP8 caches, d 64 or 128,
// attentionPrefill in f32 FMAs otherwise. Decode batches (one query row
// per sequence), and the decode rows of batches that take a prefill
// kernel, take the split-context kernel (attentionSplit: each sequence's
// context split over several blocks when the batch alone would not fill
// the GPU, their partial softmax states combined by attentionMerge).
// Shapes none of these serve (more than 8 query heads per kv head, d over
// 128) take the row kernels: one block per (query row, kv head, sequence)
// for the group (attentionGQA) or per (query row, head, sequence)
// (attention).
func (d *Device) Attention(out, q, kCache, vCache *gpu.Tensor, b gpu.AttnBatch) error {
	a, err := check.Attention(out, q, kCache, vCache, b)
	if err != nil {
		return err
	}
	if a.HeadDim > maxHeadDim {
		return fmt.Errorf("gpu: Attention: head size %d over cuda's %d: %w", a.HeadDim, maxHeadDim, gpu.ErrShape)
	}
	p, err := d.ptrs("Attention", []string{"out", "q", "kCache", "vCache", "BlockTables", "ContextLens", "QueryStarts"},
		out, q, kCache, vCache, b.BlockTables, b.ContextLens, b.QueryStarts)
	if err != nil || a.Tokens == 0 || a.Seqs == 0 {
		return err
	}
	maxQ := b.MaxQueryLen
	if maxQ == 0 || maxQ > a.Tokens {
		maxQ = a.Tokens // a bound that needs no host copy of QueryStarts
	}
	scale := b.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(a.HeadDim)))
	}
	// An FP8 cache's k scale multiplies q·k (q is scaled once, not each
	// key), its v scale the output; the kernels take the vscale argument.
	// FP8 caches take every kernel but attentionSplit's cp.async pipeline
	// (it copies 2-byte elements as stored): the tiled kernels widen them
	// to bf16 (attentionPrefillMMA, attentionSplit's register path) or
	// f32 (attentionPrefill) in shared memory.
	f8 := kCache.DType() == gpu.F8E4M3
	vscale := float32(1)
	if f8 {
		scale *= orOne(b.KScale)
		vscale = orOne(b.VScale)
	}
	// Keys are read 16 bytes at a time where every row is 16-byte aligned:
	// 8 elements of a 2-byte cache; attentionSplit and attentionPrefillMMA
	// read 8 elements of an FP8 one in 8 bytes, the row kernels read FP8
	// element by element.
	vec := 0
	if kCache.DType() != gpu.F32 && a.HeadDim%8 == 0 && p[2]%16 == 0 {
		vec = 1
	}
	vecKV := vec == 1 && p[3]%16 == 0
	if f8 {
		vec = 0
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	g := a.Heads / a.KVHeads
	mode := d.attn
	split := g <= splitMaxGroup && a.HeadDim <= splitMaxHeadDim
	maxCtx := b.MaxContextLen
	if maxCtx == 0 || maxCtx > a.MaxBlocks*a.BlockSize {
		maxCtx = a.MaxBlocks * a.BlockSize // a bound that needs no host copy of ContextLens
	}
	prefill := g <= prefillMaxGroup && a.HeadDim <= prefillMaxHeadDim &&
		(b.MaxQueryLen >= prefillMinQuery || mode == AttnPrefill)
	if prefill {
		// In a mixed batch the decode rows (sequences of one query row)
		// go to attentionSplit, which reads their context once per kv
		// head instead of through a mostly empty tile of query rows.
		mixed := split && mode != AttnPrefill
		minRows := 1
		if mixed {
			minRows = 2
		}
		name, fn, qt := "attentionPrefill", d.fn.attentionPrefill, prefillRows(a.HeadDim)/g // query rows per block
		if (a.HeadDim == 64 || a.HeadDim == 128) && vecKV && p[1]%4 == 0 &&
			q.DType() == gpu.BF16 && (kCache.DType() == gpu.BF16 || f8) && out.DType() == gpu.BF16 {
			// The tensor-core kernel: 64 (query row, head) rows a block;
			// an FP8 cache's tiles are widened to bf16 in shared memory.
			name, fn, qt = "attentionPrefillMMA", d.fn.attentionPrefillMMA, 64/g
		}
		err := d.launch(name, fn, [3]int{(maxQ + qt - 1) / qt, a.KVHeads, a.Seqs}, 128,
			p[0], dt(out), p[1], dt(q), p[2], p[3], dt(kCache), p[4], p[5], p[6],
			i64(a.MaxBlocks), i64(a.Blocks), i64(a.BlockSize), i64(a.Heads), i64(a.KVHeads), i64(a.HeadDim), f32(scale), i64(vec), i64(minRows), f32(vscale))
		if err != nil || !mixed {
			return err
		}
		return d.attentionSplit(p, out, q, kCache, a, maxCtx, scale, vscale, vecKV)
	}
	if maxQ == 1 && split {
		return d.attentionSplit(p, out, q, kCache, a, maxCtx, scale, vscale, vecKV)
	}
	if g >= 2 && g <= gqaMaxGroup && a.HeadDim <= gqaMaxHeadDim {
		// One block per kv head serves its group of query heads: each
		// key and value is read once per group, not once per query head.
		return d.launch("attentionGQA", d.fn.attentionGQA, [3]int{maxQ, a.KVHeads, a.Seqs}, 128,
			p[0], dt(out), p[1], dt(q), p[2], p[3], dt(kCache), p[4], p[5], p[6],
			i64(a.MaxBlocks), i64(a.Blocks), i64(a.BlockSize), i64(a.Heads), i64(a.KVHeads), i64(a.HeadDim), f32(scale), i64(vec), f32(vscale))
	}
	return d.launch("attention", d.fn.attention, [3]int{maxQ, a.Heads, a.Seqs}, 128,
		p[0], dt(out), p[1], dt(q), p[2], p[3], dt(kCache), p[4], p[5], p[6],
		i64(a.MaxBlocks), i64(a.Blocks), i64(a.BlockSize), i64(a.Heads), i64(a.KVHeads), i64(a.HeadDim), f32(scale), i64(vec), f32(vscale))
}

// attentionSplit launches the split-context decode kernel and, with more
// than one split, the merge, through a scratch of partial states (f32: max
// and sum, then the unnormalized outputs, per sequence, head and split).
// p holds Attention's pointers; the caller holds enter.
func (d *Device) attentionSplit(p [8]uint64, out, q, kCache *gpu.Tensor, a check.Attn, maxCtx int, scale, vscale float32, vec bool) (err error) {
	splits, chunk := decodeSplits(a.Seqs*a.KVHeads, maxCtx, splitBlocksPerSM(a.HeadDim)*d.sms, d.attn, d.splits)
	var part uintptr
	if splits > 1 {
		if part, err = d.scratch(4 * a.Seqs * a.Heads * splits * (a.HeadDim + 2)); err != nil {
			return err
		}
		defer func() {
			if ferr := d.freeScratch(part); ferr != nil && err == nil {
				err = ferr
			}
		}()
	}
	// pipe 1: the cp.async path where it serves (d ≤ 64, 2-byte caches);
	// the kernel's register-prefetch path (pipe 0) serves the rest, FP8
	// caches included (8 elements per 8-byte load with vec, widened to
	// bf16 in shared memory).
	v, pipe := uint64(0), uint64(1)
	if vec {
		v = 1
	}
	name, fn := "attentionSplit", d.fn.attentionSplit
	if a.HeadDim > 64 {
		name, fn = "attentionSplit128", d.fn.attentionSplit128
	}
	err = d.launchShared(name, fn, [3]int{splits, a.KVHeads, a.Seqs}, 128,
		splitShared(a.Heads/a.KVHeads, a.HeadDim),
		p[0], dt(out), p[1], dt(q), p[2], p[3], dt(kCache), p[4], p[5], p[6],
		i64(a.MaxBlocks), i64(a.Blocks), i64(a.BlockSize), i64(a.Heads), i64(a.KVHeads), i64(a.HeadDim), f32(scale), v,
		uint64(part), i64(chunk), pipe, f32(vscale))
	if err != nil || splits == 1 {
		return err
	}
	return d.launch("attentionMerge", d.fn.attentionMerge, [3]int{(a.Seqs*a.Heads + 3) / 4, 1, 1}, 128,
		p[0], dt(out), uint64(part), p[5], p[6], i64(a.Seqs), i64(a.Heads), i64(a.HeadDim), i64(splits), i64(chunk))
}
