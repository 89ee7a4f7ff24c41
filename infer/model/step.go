package model

import (
	"fmt"
	"math/bits"

	"github.com/sluicehq/sluice/gpu"
)

// stepKey is the shape of one step: new tokens, sequences, rows of logits
// and blocks per (padded) block table.
type stepKey struct{ tokens, seqs, logits, blocks int }

// step holds what Forward reuses from call to call: the host-side metadata,
// the device buffers sized by capacity, and views of them for the last
// step shape.
type step struct {
	// Host metadata of the current step.
	ids, pos, slots      []int32 // per new token
	ctxLens, qStarts     []int32 // per sequence (qStarts has one more)
	last                 []int32 // row of each token whose logits are wanted
	tables               []int32 // [seqs × blocks], padded with block 0
	maxQuery, maxContext int
	out                  []float32 // the logits returned
	loraSegs             []int32   // [loraGraphSegs × 3]: a padded step's LoRA segments (lora.go)
	argOut               []int32   // the greedy tokens ForwardArgmax returns

	// Device buffers and their capacities.
	tokCap, seqCap, blkCap int
	bufs                   views // the whole buffers, nil before the first step

	// Views of bufs for the shape vkey.
	vkey  stepKey
	vw    views
	vwSet bool

	// Decode steps padded to a bucket (graph.go): the recorded graphs, and
	// the views of a padded step's real rows of logits.
	graphs  graphs
	rows    views
	rowsKey stepKey
	rowsL   int
	rowsSet bool
	caches  uint64 // Cache ids handed out
}

// views are the tensors of a step, either whole buffers or views of them
// with the step's row counts.
type views struct {
	ids, pos, slots        *gpu.Tensor // I32 [T]
	ctxLens, qStarts, last *gpu.Tensor // I32 [S], [S+1], [L]
	tables                 *gpu.Tensor // I32 [S, blocks]
	x, h, o                *gpu.Tensor // [T, hidden]: residual, normed, sublayer output
	q, k, v, attn          *gpu.Tensor // [T, heads·d] and [T, kvHeads·d]
	q3, k3, v3, attn3      *gpu.Tensor // the same as [T, heads, d]
	gateUp, act            *gpu.Tensor // [T, 2·intermediate], [T, intermediate]
	g                      *gpu.Tensor // [L, hidden]: the gathered last tokens
	logits                 *gpu.Tensor // F32 [L, vocab]
	argmax                 *gpu.Tensor // I32 [L]: each row's largest logit
	loraSegs               *gpu.Tensor // I32 [loraGraphSegs, 3]: (lo, hi, slot) rows (lora.go)
}

func batchError(format string, args ...any) error {
	return fmt.Errorf("model: Forward: %s: %w", fmt.Sprintf(format, args...), ErrBatch)
}

// plan checks b against the model and the cache and fills the host
// metadata.
func (st *step) plan(m *Model, c *Cache, b *Batch) (stepKey, error) {
	cfg, bs := m.cfg, c.size
	k := stepKey{seqs: len(b.Seqs)}
	st.maxQuery, st.maxContext = 0, 0
	for s := range b.Seqs {
		q := &b.Seqs[s]
		n := len(q.Tokens)
		if n == 0 {
			return k, batchError("sequence %d has no tokens", s)
		}
		if q.StartPos < 0 {
			return k, batchError("sequence %d: StartPos (%d) is negative", s, q.StartPos)
		}
		ctx := q.StartPos + n
		if ctx > cfg.MaxPositions {
			return k, batchError("sequence %d: positions [%d, %d) reach past max_position_embeddings (%d)", s, q.StartPos, ctx, cfg.MaxPositions)
		}
		if w := cfg.SlidingWindow; w > 0 && ctx > w {
			return k, batchError("sequence %d: a context of %d tokens exceeds the sliding window (%d), which is not implemented", s, ctx, w)
		}
		need := (ctx + bs - 1) / bs
		if len(q.BlockTable) < need {
			return k, batchError("sequence %d: BlockTable has %d blocks, positions [0, %d) need %d of %d tokens", s, len(q.BlockTable), ctx, need, bs)
		}
		for j, blk := range q.BlockTable[:need] {
			if blk < 0 || int(blk) >= c.blocks {
				return k, batchError("sequence %d: BlockTable[%d] is block %d, the cache has blocks [0, %d)", s, j, blk, c.blocks)
			}
		}
		for j, tok := range q.Tokens {
			if tok < 0 || int(tok) >= cfg.Vocab {
				return k, batchError("sequence %d: Tokens[%d] is %d, outside the vocabulary [0, %d)", s, j, tok, cfg.Vocab)
			}
		}
		k.tokens += n
		k.blocks = max(k.blocks, need)
		st.maxQuery = max(st.maxQuery, n)
		st.maxContext = max(st.maxContext, ctx)
		if q.NumLogits < 0 || q.NumLogits > max(1, n) {
			return k, batchError("sequence %d: NumLogits is %d, outside [0, %d] (its new tokens)", s, q.NumLogits, n)
		}
		k.logits += q.logitRows()
	}
	// Pad the tables to a power of two of blocks, so that decoding, which
	// needs one more block every blockSize steps, changes the step's shape
	// (and remakes its views) only at each doubling.
	k.blocks = max(4, 1<<bits.Len(uint(k.blocks-1)))
	st.ids, st.pos, st.slots = st.ids[:0], st.pos[:0], st.slots[:0]
	st.ctxLens, st.qStarts, st.last = st.ctxLens[:0], st.qStarts[:0], st.last[:0]
	st.tables = st.tables[:0]
	for s := range b.Seqs {
		q := &b.Seqs[s]
		ctx := q.StartPos + len(q.Tokens)
		st.qStarts = append(st.qStarts, int32(len(st.ids)))
		st.ctxLens = append(st.ctxLens, int32(ctx))
		for i, tok := range q.Tokens {
			p := q.StartPos + i
			st.ids = append(st.ids, tok)
			st.pos = append(st.pos, int32(p))
			st.slots = append(st.slots, q.BlockTable[p/bs]*int32(bs)+int32(p%bs))
		}
		need := (ctx + bs - 1) / bs
		st.tables = append(st.tables, q.BlockTable[:need]...)
		for range k.blocks - need {
			st.tables = append(st.tables, 0)
		}
		for r := q.logitRows(); r > 0; r-- {
			st.last = append(st.last, int32(len(st.ids)-r))
		}
	}
	st.qStarts = append(st.qStarts, int32(len(st.ids)))
	return k, nil
}

// reserve grows the device buffers to hold a step of shape k.
func (st *step) reserve(m *Model, k stepKey) error {
	rows := max(k.seqs, k.logits) // the per-sequence buffers also hold the rows of logits
	if st.bufs.x != nil && k.tokens <= st.tokCap && rows <= st.seqCap && k.blocks <= st.blkCap {
		return nil
	}
	tok, seq, blk := max(k.tokens, 2*st.tokCap), max(rows, 2*st.seqCap), max(k.blocks, 2*st.blkCap)
	st.free()
	cfg, dt := m.cfg, m.dtype
	qd, kvd := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	var err error
	alloc := func(dt gpu.DType, shape ...int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var t *gpu.Tensor
		t, err = m.dev.Alloc(dt, shape...)
		return t
	}
	b := &st.bufs
	b.ids, b.pos, b.slots = alloc(gpu.I32, tok), alloc(gpu.I32, tok), alloc(gpu.I32, tok)
	b.ctxLens, b.qStarts, b.last = alloc(gpu.I32, seq), alloc(gpu.I32, seq+1), alloc(gpu.I32, seq)
	b.tables = alloc(gpu.I32, seq*blk)
	b.x, b.h, b.o = alloc(dt, tok, cfg.Hidden), alloc(dt, tok, cfg.Hidden), alloc(dt, tok, cfg.Hidden)
	b.q, b.attn = alloc(dt, tok, qd), alloc(dt, tok, qd)
	b.k, b.v = alloc(dt, tok, kvd), alloc(dt, tok, kvd)
	b.gateUp, b.act = alloc(dt, tok, 2*cfg.Intermediate), alloc(dt, tok, cfg.Intermediate)
	b.g = alloc(dt, seq, cfg.Hidden)
	b.logits = alloc(gpu.F32, seq, cfg.Vocab)
	b.argmax = alloc(gpu.I32, seq)
	b.loraSegs = alloc(gpu.I32, loraGraphSegs, 3)
	if err != nil {
		st.free()
		return fmt.Errorf("model: Forward: allocating buffers for %d tokens of %d sequences: %w", tok, seq, err)
	}
	st.tokCap, st.seqCap, st.blkCap = tok, seq, blk
	st.out = make([]float32, seq*cfg.Vocab)
	st.argOut = make([]int32, seq)
	st.loraSegs = make([]int32, 3*loraGraphSegs)
	return nil
}

// free releases the device buffers and the graphs that use them.
func (st *step) free() {
	_ = st.freeGraphs() // like Tensor.Free, releasing cannot fail the caller (Close, a regrowth)
	st.rowsSet = false
	b := &st.bufs
	for _, t := range []*gpu.Tensor{b.ids, b.pos, b.slots, b.ctxLens, b.qStarts, b.last, b.tables,
		b.x, b.h, b.o, b.q, b.k, b.v, b.attn, b.gateUp, b.act, b.g, b.logits, b.argmax, b.loraSegs} {
		t.Free() // nil-safe
	}
	st.bufs = views{}
	st.vwSet = false
	st.tokCap, st.seqCap, st.blkCap = 0, 0, 0
}

// viewsFor returns views of the buffers with k's row counts, made once per
// shape.
func (st *step) viewsFor(m *Model, k stepKey) (*views, error) {
	if st.vwSet && st.vkey == k {
		return &st.vw, nil
	}
	cfg, b := m.cfg, &st.bufs
	t, s, l := k.tokens, k.seqs, k.logits
	var err error
	rows := func(x *gpu.Tensor, n int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var v *gpu.Tensor
		v, err = x.Slice(0, n)
		return v
	}
	heads := func(x *gpu.Tensor, h int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var v *gpu.Tensor
		v, err = x.View(t, h, cfg.HeadDim)
		return v
	}
	v := views{
		ids: rows(b.ids, t), pos: rows(b.pos, t), slots: rows(b.slots, t),
		ctxLens: rows(b.ctxLens, s), qStarts: rows(b.qStarts, s+1), last: rows(b.last, l),
		x: rows(b.x, t), h: rows(b.h, t), o: rows(b.o, t),
		q: rows(b.q, t), k: rows(b.k, t), v: rows(b.v, t), attn: rows(b.attn, t),
		gateUp: rows(b.gateUp, t), act: rows(b.act, t),
		g: rows(b.g, l), logits: rows(b.logits, l), argmax: rows(b.argmax, l),
		loraSegs: b.loraSegs,
	}
	v.q3, v.k3, v.v3, v.attn3 = heads(v.q, cfg.Heads), heads(v.k, cfg.KVHeads), heads(v.v, cfg.KVHeads), heads(v.attn, cfg.Heads)
	if tb := rows(b.tables, s*k.blocks); err == nil {
		v.tables, err = tb.View(s, k.blocks)
	}
	if err != nil {
		return nil, fmt.Errorf("model: Forward: views for %d tokens: %w", t, err)
	}
	st.vw, st.vkey, st.vwSet = v, k, true
	return &st.vw, nil
}

// upload copies the host metadata into v.
func (st *step) upload(v *views) error {
	for _, u := range []struct {
		t    *gpu.Tensor
		data []int32
	}{
		{v.ids, st.ids}, {v.pos, st.pos}, {v.slots, st.slots},
		{v.ctxLens, st.ctxLens}, {v.qStarts, st.qStarts}, {v.tables, st.tables}, {v.last, st.last},
	} {
		if len(u.data) == 0 {
			continue
		}
		if err := gpu.Upload(u.t, u.data); err != nil {
			return err
		}
	}
	return nil
}
