package train

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/sluicehq/sluice/gpu"
)

// The decoder's forward pass and its reverse-mode gradient run on the
// net's gpu.Device through its Ops and BackwardOps, in float32: every op
// keeps what its backward needs (inputs; attention recomputes its
// probabilities, RMSNorm its inverse RMS) and the backward pass runs the
// ops in reverse, accumulating into each param's gradient tensor.
// Cross-entropy is fused with the LM head a chunk of target rows at a
// time, so a batch's logits are never all held at once.
//
// The weights stay on the device from step to step and the gradients of a
// step's micro-batches accumulate there (resident.go): a step moves the
// token ids in and the losses out, and, where the device has
// gpu.OptimOps, nothing else; the host copies are brought up to date for
// checkpoints and the saved model. lossAndGrad, the tests' entry, runs one
// micro-batch from the host weights to the host gradients.

// batch is one micro-batch: B right-padded rows of T ids; lens[b] tokens of
// row b are real. Targets are ids[b][t] for 0 < t < lens[b] where mask[b]
// is nil or mask[b][t] (prompt tokens and non-assistant turns are not).
type batch struct {
	ids  [][]int32
	lens []int
	mask [][]bool // nil, or one per row (nil: every token)
	T    int
}

// isTarget says whether token t of row bi counts in the loss.
func (b *batch) isTarget(bi, t int) bool {
	return t > 0 && t < b.lens[bi] && (b.mask == nil || b.mask[bi] == nil || b.mask[bi][t])
}

func (b *batch) targets() int {
	n := 0
	for bi := range b.ids {
		for t := 1; t < b.lens[bi]; t++ {
			if b.isTarget(bi, t) {
				n++
			}
		}
	}
	return n
}

// logitElems bounds the logits of one chunk of target rows (256 MiB of
// f32): bench-1b's 128k vocabulary gets 523-row chunks, enough rows for
// the LM head's GEMMs to fill the tensor cores.
const logitElems = 1 << 26

// causalAttention is a device's causal self-attention for training over
// sequences of one length (cuda: tensor-core GEMMs, gpu/cuda/trainattn.go),
// as ops.Attention over a cache whose block j is sequence j computes it. A
// device without it, or one whose error wraps errors.ErrUnsupported (a
// PTX from before it), takes ops.Attention.
type causalAttention interface {
	CausalAttention(out, q, k, v *gpu.Tensor, seqLen int, scale float32) error
}

// precisionSetter is a device whose f32 GEMMs can compute at bf16 or tf32
// on the tensor cores (cuda.Device.SetPrecision).
type precisionSetter interface {
	SetPrecision(name string) error
}

// setPrecision applies --precision: "" is bf16 on a device that can, f32
// elsewhere; bf16 or tf32 on a device that cannot is refused.
func (n *net) setPrecision(p string) error {
	ps, ok := n.dev.(precisionSetter)
	switch {
	case ok && p == "":
		p = "bf16"
	case !ok && (p == "" || p == "f32"):
		return nil
	case !ok:
		return fmt.Errorf("train: --precision %s: the %s backend computes in f32 only; use --precision f32: %w", p, n.dev.Name(), ErrConfig)
	}
	if err := ps.SetPrecision(p); err != nil {
		return fmt.Errorf("train: --precision %s: %w: %w", p, err, ErrConfig)
	}
	if p == "bf16" && os.Getenv("SLUICE_TRAIN_BF16_ACTS") == "1" {
		// The activations that only GEMMs read held in bf16: the two
		// norms' outputs (written by RMSNorm in bf16, the same rounding the
		// GEMMs gave their f32 copies, so the same operands) and the MLP's
		// gate, up and SiLU product: half the bytes, and no rounding into
		// scratch before each forward and backward product (cuda's GEMMs
		// and SiLUMulBackward take them).
		n.acts = gpu.BF16
	}
	return nil
}

// optionalOp returns bw as the optional ops T where dev's own ops have
// them: the profiler's wrapper (profOps) has every optional method whatever
// the device, so bw alone cannot tell.
func optionalOp[T any](bw gpu.BackwardOps, dev gpu.Device) (T, bool) {
	if _, ok := dev.Ops().(T); !ok {
		var none T
		return none, false
	}
	t, ok := bw.(T)
	return t, ok
}

// pass is one lossAndGrad: the tensors it allocates are freed at its end,
// and the first error sticks, so the op sequence reads straight.
type pass struct {
	dev  gpu.Device
	ops  gpu.Ops
	bw   gpu.BackwardOps
	ts   []*gpu.Tensor
	err  error
	zero []byte
}

func (p *pass) fail(err error) {
	if p.err == nil && err != nil {
		p.err = err
	}
}

func (p *pass) alloc(dt gpu.DType, shape ...int) *gpu.Tensor {
	if p.err != nil {
		return nil
	}
	t, err := p.dev.Alloc(dt, shape...)
	p.fail(err)
	if err != nil {
		return nil
	}
	p.ts = append(p.ts, t)
	return t
}

// zeros is an f32 tensor of zeros, for gradients that ops accumulate into.
func (p *pass) zeros(shape ...int) *gpu.Tensor {
	t := p.alloc(gpu.F32, shape...)
	p.clear(t)
	return t
}

func (p *pass) clear(t *gpu.Tensor) {
	if p.err != nil {
		return
	}
	if oo, ok := p.ops.(gpu.OptimOps); ok {
		p.fail(oo.Zero(t))
		return
	}
	if n := t.Bytes(); len(p.zero) < n {
		p.zero = make([]byte, n)
	}
	p.fail(p.dev.Upload(t, p.zero[:t.Bytes()]))
}

func (p *pass) ints(v []int32) *gpu.Tensor {
	t := p.alloc(gpu.I32, len(v))
	if p.err == nil {
		if err := gpu.Upload(t, v); err != nil {
			p.fail(fmt.Errorf("upload of %d ids into %s: %w", len(v), t, err))
		}
	}
	return t
}

func (p *pass) view(t *gpu.Tensor, shape ...int) *gpu.Tensor {
	if p.err != nil {
		return nil
	}
	v, err := t.View(shape...)
	p.fail(err)
	return v
}

func (p *pass) do(err error) { p.fail(err) }

// newPass starts a pass on n's device (its ops timed under
// SLUICE_TRAIN_PROFILE=1).
func (n *net) newPass() *pass {
	ops, bw := n.prof.wrap(n.dev.Ops(), n.dev.Ops().(gpu.BackwardOps))
	return &pass{dev: n.dev, ops: ops, bw: bw}
}

func (p *pass) free() {
	for _, t := range p.ts {
		t.Free()
	}
	p.ts = nil
}

// ensureDevice gives every param its weight and gradient tensors.
func (n *net) ensureDevice() error {
	if _, ok := n.dev.Ops().(gpu.BackwardOps); !ok {
		return fmt.Errorf("train: device %s has no backward ops: %w", n.dev.Name(), ErrConfig)
	}
	if n.prof == nil {
		n.prof = newProfiler(n.dev)
	}
	for _, p := range n.params {
		if p.wt != nil {
			continue
		}
		var err error
		if p.wt, err = n.dev.Alloc(gpu.F32, p.shape...); err != nil {
			return err
		}
		if p.gt, err = n.dev.Alloc(gpu.F32, p.shape...); err != nil {
			return err
		}
	}
	return nil
}

// close frees the device tensors and closes the device.
func (n *net) close() {
	for _, p := range n.params {
		p.wt.Free()
		p.gt.Free()
		p.mt.Free()
		p.vt.Free()
		p.wt, p.gt, p.mt, p.vt = nil, nil, nil, nil
	}
	n.norms.Free()
	n.norms = nil
	n.prof.write(os.Stderr)
	n.prof = nil
	if c, ok := n.dev.(bf16Cacher); ok {
		c.DropBF16()
	}
	if n.dev != nil {
		n.dev.Close()
		n.dev = nil
	}
}

func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// lossAndGrad runs b forward, returns the sum of the cross-entropy over its
// targets and their count, and adds scale·∂sum/∂param into every param's g
// (scale = 1/targets of the whole step makes the gradient of the mean).
func (n *net) lossAndGrad(b *batch, scale float32) (float64, int, error) {
	if n.dev == nil {
		return 0, 0, errors.New("train: the net's device is closed")
	}
	if err := n.ensureDevice(); err != nil {
		return 0, 0, err
	}
	p := n.newPass()
	defer p.free()
	for _, q := range n.params {
		if err := n.dev.Upload(q.wt, f32Bytes(q.w)); err != nil {
			p.fail(fmt.Errorf("upload of %s %v: %w", q.name, q.shape, err))
		}
		q.dirty, q.ahead = false, false
		p.clear(q.gt)
	}
	n.stale = true
	sum, count := n.run(p, b, scale, nil)
	if p.err != nil {
		return 0, 0, fmt.Errorf("train: %w", p.err)
	}
	buf := make([]float32, 0)
	for _, q := range n.params {
		buf = grow(buf, len(q.g))
		if err := n.dev.Download(f32Bytes(buf), q.gt); err != nil {
			return 0, 0, fmt.Errorf("train: %w", err)
		}
		for i, v := range buf {
			q.g[i] += v
		}
	}
	return sum, count, nil
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// acts is what one block's backward needs.
type acts struct {
	x0, h1     *gpu.Tensor // block input (residual), its norm
	qPre, kPre *gpu.Tensor // q, k before the q/k norms (Qwen3)
	q, k, v    *gpu.Tensor // after RoPE: [N, heads, hd]
	attn       *gpu.Tensor // attention output before o_proj [N, qd]
	x1, h2     *gpu.Tensor // after attention, its norm
	gate, up   *gpu.Tensor
	act        *gpu.Tensor
}

// run is one micro-batch's forward and backward pass on the device: it
// returns the loss summed over its targets and their count, and adds
// scale·∂sum/∂param into every param's gradient tensor gt. With tm set it
// adds the wall-clock time of each pass there, waiting for the device at
// the end of each.
func (n *net) run(p *pass, b *batch, scale float32, tm *phaseTimes) (float64, int) {
	t0 := time.Now()
	p.do(n.refreshBF16())
	c := n.cfg
	ops, bw := p.ops, p.bw
	B, T := len(b.ids), b.T
	N, H := B*T, c.Hidden
	qd, kvd, hd, I := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim, c.HeadDim, c.Intermediate
	eps := c.RMSNormEps
	flat, pos := make([]int32, 0, N), make([]int32, 0, N)
	for _, row := range b.ids {
		flat = append(flat, row...)
		for t := range T {
			pos = append(pos, int32(t))
		}
	}
	ids, posT := p.ints(flat), p.ints(pos)
	// Causal attention over the batch is Attention over a cache whose
	// block s is sequence s, every sequence T long (padding is right of the
	// real tokens, so it never reaches them).
	bt, ctxs, starts := make([]int32, B), make([]int32, B), make([]int32, B+1)
	for s := range B {
		bt[s], ctxs[s], starts[s+1] = int32(s), int32(T), int32((s+1)*T)
	}
	ab := gpu.AttnBatch{BlockTables: p.view(p.ints(bt), B, 1), ContextLens: p.ints(ctxs), QueryStarts: p.ints(starts),
		MaxQueryLen: T, MaxContextLen: T}
	bias := func(q *param) *gpu.Tensor {
		if q == nil {
			return nil
		}
		return q.wt
	}
	gbias := func(q *param) *gpu.Tensor {
		if q == nil {
			return nil
		}
		return q.gt
	}
	actDT := n.acts
	if actDT == 0 {
		actDT = gpu.F32
	}
	linearAs := func(dt gpu.DType, x *gpu.Tensor, w, bs *param, out int) *gpu.Tensor {
		y := p.alloc(dt, N, out)
		if p.err == nil {
			p.do(ops.MatMul(y, x, w.wt, bias(bs)))
		}
		return y
	}
	linear := func(x *gpu.Tensor, w, bs *param, out int) *gpu.Tensor { return linearAs(gpu.F32, x, w, bs, out) }
	normAs := func(dt gpu.DType, x *gpu.Tensor, w *param) *gpu.Tensor {
		if p.err != nil {
			return nil
		}
		y := p.alloc(dt, x.Shape()...)
		if p.err == nil {
			p.do(ops.RMSNorm(y, x, nil, w.wt, eps))
		}
		return y
	}
	norm := func(x *gpu.Tensor, w *param) *gpu.Tensor { return normAs(gpu.F32, x, w) }
	add := func(a, b *gpu.Tensor) *gpu.Tensor {
		if p.err != nil {
			return nil
		}
		y := p.alloc(gpu.F32, a.Shape()...)
		if p.err == nil {
			p.do(ops.Add(y, a, b))
		}
		return y
	}

	x := p.alloc(gpu.F32, N, H)
	if p.err == nil {
		p.do(ops.Embed(x, n.embed.wt, ids))
	}
	as := make([]acts, c.Layers)
	for li := range n.layers {
		ly, a := &n.layers[li], &as[li]
		a.x0 = x
		a.h1 = normAs(actDT, x, ly.inNorm) // only the GEMMs of q, k, v read it
		a.q = p.view(linear(a.h1, ly.q, ly.qBias, qd), N, c.Heads, hd)
		a.k = p.view(linear(a.h1, ly.k, ly.kBias, kvd), N, c.KVHeads, hd)
		a.v = p.view(linear(a.h1, ly.v, ly.vBias, kvd), N, c.KVHeads, hd)
		if ly.qNorm != nil {
			a.qPre, a.kPre = a.q, a.k
			a.q, a.k = norm(a.qPre, ly.qNorm), norm(a.kPre, ly.kNorm)
		}
		if p.err != nil {
			return 0, 0
		}
		p.do(ops.RoPE(a.q, a.k, posT, c.Rope))
		attn := p.alloc(gpu.F32, N, c.Heads, hd)
		if p.err != nil {
			return 0, 0
		}
		err := errors.ErrUnsupported
		if ca, ok := ops.(causalAttention); ok {
			err = ca.CausalAttention(attn, a.q, a.k, a.v, T, 0)
		}
		if errors.Is(err, errors.ErrUnsupported) {
			err = ops.Attention(attn, a.q, p.view(a.k, B, T, c.KVHeads, hd), p.view(a.v, B, T, c.KVHeads, hd), ab)
		}
		p.do(err)
		a.attn = p.view(attn, N, qd)
		a.x1 = add(x, linear(a.attn, ly.o, ly.oBias, H))
		a.h2 = normAs(actDT, a.x1, ly.postNorm) // only the GEMMs of gate and up read it
		a.gate = linearAs(actDT, a.h2, ly.gate, ly.gateBias, I)
		a.up = linearAs(actDT, a.h2, ly.up, ly.upBias, I)
		a.act = p.alloc(actDT, N, I)
		if p.err != nil {
			return 0, 0
		}
		p.do(ops.SiLUMul(a.act, a.gate, a.up))
		x = add(a.x1, linear(a.act, ly.down, ly.downBias, H))
	}
	hf := norm(x, n.norm)

	// Fused LM head and cross-entropy over chunks of target rows: gather
	// the rows' hidden states, take their logits, the loss and its
	// gradient in place, then the gradients of the head and of the rows,
	// scattered back into dhf.
	var rows, tgts []int32
	for bi, row := range b.ids {
		for t := 0; t+1 < b.lens[bi]; t++ {
			if b.isTarget(bi, t+1) {
				rows = append(rows, int32(bi*T+t))
				tgts = append(tgts, row[t+1])
			}
		}
	}
	dhf := p.zeros(N, H)
	chunk := logitElems / c.Vocab
	if p.dev.Name() != "cpu" {
		// A GPU: chunks 4x larger, so that the LM head's weight gradient
		// (vocab × hidden f32, 1 GiB for bench-1b) is read and written
		// once per 2,092 rows rather than per 523.
		chunk = 4 * logitElems / c.Vocab
	}
	if n.chunk > 0 {
		chunk = n.chunk
	}
	chunk = max(1, min(len(rows), chunk))
	// The rows, targets and losses of every chunk are one upload each and
	// one download at the pass's end, so the chunks queue without waiting.
	if len(rows) == 0 {
		return 0, 0
	}
	allRows, allTgts, losses := p.ints(rows), p.ints(tgts), p.alloc(gpu.F32, len(rows))
	// The rows are distinct and ascending, so scattering chunk [lo, hi)
	// back is EmbedBackwardGrouped with order and starts 0, 1, 2, …:
	// one upload of them serves every chunk.
	eg, grouped := optionalOp[gpu.EmbedGroupOps](bw, p.dev)
	var iota *gpu.Tensor
	if grouped {
		seq := make([]int32, min(chunk, len(rows))+1)
		for i := range seq {
			seq[i] = int32(i)
		}
		iota = p.ints(seq)
	}
	slice := func(t *gpu.Tensor, lo, hi int) *gpu.Tensor {
		if p.err != nil {
			return nil
		}
		v, err := t.Slice(lo, hi)
		p.fail(err)
		return v
	}
	for lo := 0; lo < len(rows) && p.err == nil; lo += chunk {
		hi := min(lo+chunk, len(rows))
		m := hi - lo
		ri, ti, loss := slice(allRows, lo, hi), slice(allTgts, lo, hi), slice(losses, lo, hi)
		hs, dhs := p.alloc(gpu.F32, m, H), p.alloc(gpu.F32, m, H)
		logits := p.alloc(gpu.F32, m, c.Vocab)
		if p.err != nil {
			break
		}
		p.do(ops.Embed(hs, hf, ri))
		p.do(ops.MatMul(logits, hs, n.lmHead.wt, nil))
		p.do(bw.CrossEntropy(loss, logits, logits, ti, scale))
		p.do(bw.MatMulBackward(dhs, n.lmHead.gt, nil, logits, hs, n.lmHead.wt))
		if grouped {
			p.do(eg.EmbedBackwardGrouped(dhf, dhs, slice(iota, 0, m), slice(iota, 0, m+1), ri))
		} else {
			p.do(bw.EmbedBackward(dhf, dhs, ri))
		}
		// The chunk's tensors are done with: free them now rather than at
		// the pass's end.
		for _, t := range []*gpu.Tensor{hs, dhs, logits} {
			t.Free()
		}
		p.ts = p.ts[:len(p.ts)-3]
	}
	if p.err != nil {
		return 0, 0
	}
	if tm != nil {
		p.do(p.dev.Sync())
		tm.forward += time.Since(t0)
		t0 = time.Now()
	}

	linearBack := func(dy, x *gpu.Tensor, w, bs *param, in int) *gpu.Tensor {
		dx := p.alloc(gpu.F32, N, in)
		if p.err == nil {
			p.do(bw.MatMulBackward(dx, w.gt, gbias(bs), dy, x, w.wt))
		}
		return dx
	}
	normBack := func(dy, x *gpu.Tensor, w *param) *gpu.Tensor {
		if p.err != nil {
			return nil
		}
		dx := p.alloc(gpu.F32, x.Shape()...)
		if p.err == nil {
			p.do(bw.RMSNormBackward(dx, w.gt, dy, x, w.wt, eps))
		}
		return dx
	}
	addInto := func(dst, src *gpu.Tensor) {
		if p.err == nil {
			p.do(ops.Add(dst, dst, src))
		}
	}
	// linearBackAdd is addInto(dst, linearBack(dy, x, w, bs, ·)), in the
	// product's epilogue where the device accumulates da (the same sums).
	ma, acc := optionalOp[gpu.MatMulBackwardAccOps](bw, p.dev)
	linearBackAdd := func(dst, dy, x *gpu.Tensor, w, bs *param) {
		if !acc {
			addInto(dst, linearBack(dy, x, w, bs, dst.Dim(-1)))
		} else if p.err == nil {
			p.do(ma.MatMulBackwardAcc(dst, w.gt, gbias(bs), dy, x, w.wt))
		}
	}
	dx := normBack(dhf, x, n.norm)
	for li := len(n.layers) - 1; li >= 0 && p.err == nil; li-- {
		ly, a := &n.layers[li], &as[li]
		// x = x1 + down(act): dx flows to x1 and into the MLP.
		dAct := linearBack(dx, a.act, ly.down, ly.downBias, I)
		dGate, dUp := p.alloc(gpu.F32, N, I), p.alloc(gpu.F32, N, I)
		if p.err != nil {
			break
		}
		p.do(bw.SiLUMulBackward(dGate, dUp, dAct, a.gate, a.up))
		dh2 := linearBack(dGate, a.h2, ly.gate, ly.gateBias, H)
		linearBackAdd(dh2, dUp, a.h2, ly.up, ly.upBias)
		dx1 := normBack(dh2, a.x1, ly.postNorm)
		addInto(dx1, dx)
		// x1 = x0 + o_proj(attn).
		dAttn := p.view(linearBack(dx1, a.attn, ly.o, ly.oBias, qd), N, c.Heads, hd)
		dq, dk, dv := p.alloc(gpu.F32, N, c.Heads, hd), p.alloc(gpu.F32, N, c.KVHeads, hd), p.alloc(gpu.F32, N, c.KVHeads, hd)
		if p.err != nil {
			break
		}
		p.do(bw.CausalAttentionBackward(dq, dk, dv, dAttn, a.q, a.k, a.v, T, 0))
		p.do(bw.RoPEBackward(dq, dk, posT, c.Rope))
		if ly.qNorm != nil {
			dq = normBack(dq, a.qPre, ly.qNorm)
			dk = normBack(dk, a.kPre, ly.kNorm)
		}
		dh1 := linearBack(p.view(dq, N, qd), a.h1, ly.q, ly.qBias, H)
		linearBackAdd(dh1, p.view(dk, N, kvd), a.h1, ly.k, ly.kBias)
		linearBackAdd(dh1, p.view(dv, N, kvd), a.h1, ly.v, ly.vBias)
		dx0 := normBack(dh1, a.x0, ly.inNorm)
		addInto(dx0, dx1)
		dx = dx0
	}
	if p.err == nil {
		if grouped {
			order, starts, uniq := gpu.EmbedGroups(flat)
			p.do(eg.EmbedBackwardGrouped(n.embed.gt, dx, p.ints(order), p.ints(starts), p.ints(uniq)))
		} else {
			p.do(bw.EmbedBackward(n.embed.gt, dx, ids))
		}
	}
	lossH := make([]float32, len(rows))
	if p.err == nil {
		p.do(gpu.Download(lossH, losses))
	}
	if tm != nil {
		tm.backward += time.Since(t0)
	}
	var sum float64
	for _, l := range lossH {
		sum += float64(l)
	}
	return sum, len(rows)
}
