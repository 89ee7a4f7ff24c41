package model

import (
	"errors"
	"fmt"
	"math/bits"
	"os"

	"github.com/sluicehq/sluice/gpu"
)

// Decode steps as CUDA graphs, as vLLM does: a step in which every
// sequence has one new token is padded to a bucket of sequences (1, 2, 4,
// 8, then multiples of 8 to 256 and of 16 to maxBucket), and the decoder
// and the LM head of each (bucket, block-table width, cache) are recorded
// once on a device that can (gpu.Grapher) and replayed after: a step then
// uploads its inputs into the step buffers and launches one graph instead
// of a few hundred kernels.
//
// Padding rows are token 0 at position 0 with slot −1 (WriteKV skips them),
// one query row and a context of one key through a table of block 0 (they
// read, never write, the cache); their outputs are not returned. Every
// launch parameter of the step is fixed by its key: MaxContextLen is the
// block-table width times the block size (decodeBound; the attention
// kernels size their splits from it), and the ops' scratch is the graph's
// own (gpu/cuda). Eager decode steps take the same bound, so a step whose
// batch is a bucket's size gives the same bits eagerly and from its graph;
// a padded one computes its real rows with more rows beside them, which
// may change the GEMMs' algorithm or the attention's splits, as any other
// change of batch does.
// The first step of a key runs eagerly (it also uploads the RoPE table and
// loads the kernels); the second records the graph.
//
// Steps with LoRA adapters have graphs of their own (the key's lora),
// which run every targeted projection's LoRAIndexed: the step uploads its
// segments (lora.go), and the graph, eager or replayed, computes whichever
// adapters they name. Padding rows are in no segment.

// Graph modes: how decode-only steps run.
const (
	graphsOff = iota // unpadded and eager: Options.EnforceEager, SLUICE_CUDA_GRAPHS=0, or a device without graphs
	graphsPad        // padded to their bucket and run eagerly (SLUICE_CUDA_GRAPHS=pad: tests and A/B runs)
	graphsOn         // padded and replayed from graphs
)

// maxBucket is the largest padded decode batch; larger ones run eagerly.
const maxBucket = 512

// bucket returns the padded size of a decode batch of n sequences, or 0
// when n is over maxBucket.
func bucket(n int) int {
	switch {
	case n <= 0 || n > maxBucket:
		return 0
	case n <= 8:
		return 1 << bits.Len(uint(n-1))
	case n <= 256:
		return (n + 7) &^ 7
	}
	return (n + 15) &^ 15
}

// graphKey identifies a recorded decode step: the bucket, the block-table
// width, the cache, whose tensors the graph reads and writes, and whether
// it has the LoRA products (not which adapters: the step's segments say).
type graphKey struct {
	seqs, blocks int
	cache        uint64
	lora         bool
}

// graphs are a model's recorded decode steps. A nil entry marks a key
// whose first step ran eagerly.
type graphs struct {
	mode  int
	dev   gpu.Grapher
	m     map[graphKey]gpu.Graph
	cache uint64 // the cache the graphs in m use
}

// initGraphs picks the mode for a model on dev.
func (st *step) initGraphs(dev gpu.Device, enforceEager bool) {
	g := &st.graphs
	g.mode = graphsOff
	switch env := os.Getenv("SLUICE_CUDA_GRAPHS"); {
	case enforceEager || env == "0" || env == "off":
	case env == "pad":
		g.mode = graphsPad
	default:
		if gr, ok := dev.(gpu.Grapher); ok {
			g.mode, g.dev = graphsOn, gr
		}
	}
}

// freeGraphs frees the recorded steps; for the step buffers' release and
// Close.
func (st *step) freeGraphs() error {
	var err error
	for k, g := range st.graphs.m {
		if g != nil {
			err = errors.Join(err, g.Free())
		}
		delete(st.graphs.m, k)
	}
	return err
}

// pad extends the host metadata of a decode-only step of shape k, planned
// by plan, to its bucket and returns the padded shape; ok is false when
// the step is not one to pad.
func (st *step) pad(k stepKey) (stepKey, bool) {
	if st.graphs.mode == graphsOff || k.tokens != k.seqs {
		return k, false
	}
	n := bucket(k.seqs)
	if n == 0 {
		return k, false
	}
	for range n - k.seqs {
		st.ids = append(st.ids, 0)
		st.pos = append(st.pos, 0)
		st.slots = append(st.slots, -1)
		st.ctxLens = append(st.ctxLens, 1)
		st.qStarts = append(st.qStarts, int32(len(st.qStarts)))
		for range k.blocks {
			st.tables = append(st.tables, 0)
		}
	}
	for len(st.last) < n {
		st.last = append(st.last, 0)
	}
	return stepKey{tokens: n, seqs: n, logits: n, blocks: k.blocks}, true
}

// decodePadded runs a padded decode step of shape pk (pad's) whose first
// logits rows are the real ones: the decoder and the LM head over every
// row, eagerly or from the key's graph. It returns views whose logits and
// argmax hold the real rows.
func (m *Model) decodePadded(c *Cache, k, pk stepKey) (*views, error) {
	st := &m.step
	if err := st.reserve(m, pk); err != nil {
		return nil, err
	}
	v, err := st.viewsFor(m, pk)
	if err != nil {
		return nil, err
	}
	if err := st.upload(v); err != nil {
		return nil, fmt.Errorf("model: Forward: uploading the step's metadata: %w", err)
	}
	lora := len(m.lora.segs) > 0
	if lora {
		m.lora.graphSegs(st.loraSegs)
		if err := gpu.Upload(v.loraSegs, st.loraSegs); err != nil {
			return nil, fmt.Errorf("model: Forward: uploading the step's LoRA segments: %w", err)
		}
	}
	ab := gpu.AttnBatch{
		BlockTables:   v.tables,
		ContextLens:   v.ctxLens,
		QueryStarts:   v.qStarts,
		MaxQueryLen:   1,
		MaxContextLen: decodeBound(pk, c),
	}
	g := &st.graphs
	if g.mode != graphsOn {
		if err := m.decodeRun(c, v, ab, lora); err != nil {
			return nil, fmt.Errorf("model: Forward: %w", err)
		}
		return st.realRows(v, k.logits)
	}
	if g.cache != c.id {
		// Graphs of another cache would read and write its tensors, which
		// may be freed by now.
		if err := st.freeGraphs(); err != nil {
			return nil, fmt.Errorf("model: Forward: %w", err)
		}
		g.cache = c.id
	}
	gk := graphKey{seqs: pk.seqs, blocks: pk.blocks, cache: c.id, lora: lora}
	gr, warm := g.m[gk]
	switch {
	case gr != nil:
	case !warm:
		if g.m == nil {
			g.m = map[graphKey]gpu.Graph{}
		}
		g.m[gk] = nil
		if err := m.decodeRun(c, v, ab, lora); err != nil {
			return nil, fmt.Errorf("model: Forward: %w", err)
		}
		return st.realRows(v, k.logits)
	default:
		if gr, err = g.dev.Capture(func() error { return m.decodeRun(c, v, ab, lora) }); err != nil {
			return nil, fmt.Errorf("model: Forward: recording the decode step of %d sequences as a graph (SLUICE_CUDA_GRAPHS=0 turns graphs off): %w", pk.seqs, err)
		}
		g.m[gk] = gr
	}
	if err := gr.Launch(); err != nil {
		return nil, fmt.Errorf("model: Forward: %w", err)
	}
	return st.realRows(v, k.logits)
}

// decodeRun enqueues a padded decode step: the decoder and the LM head
// over every row, with lora the LoRA products of the segments in
// v.loraSegs.
func (m *Model) decodeRun(c *Cache, v *views, ab gpu.AttnBatch, lora bool) error {
	ls := &m.lora
	ls.indexed, ls.dsegs = lora, v.loraSegs
	defer func() { ls.indexed, ls.dsegs = false, nil }()
	if err := m.layersForward(c, v, ab); err != nil {
		return err
	}
	if err := m.ops.Embed(v.g, v.h, v.last); err != nil {
		return fmt.Errorf("gathering the last tokens: %w", err)
	}
	if err := m.ops.MatMul(v.logits, v.g, m.lmHead, nil); err != nil {
		return fmt.Errorf("LM head: %w", err)
	}
	return nil
}

// decodeBound is the AttnBatch.MaxContextLen of a decode step of shape k,
// padded or not, run eagerly or from a graph: the block-table width times
// the block size rather than the longest context, so that the launch
// parameters the bound sets (the split-context kernel's splits and their
// keys) are a function of the step's shape alone. A graph is recorded
// once for many contexts, and an eager step of a bucket's size then
// launches the kernels its graph does (bit for bit the same logits, unless
// cuBLAS picks another algorithm for the eager buffers' alignment).
func decodeBound(k stepKey, c *Cache) int { return k.blocks * c.size }

// realRows returns v with logits and argmax cut to the first l rows, made
// once per (shape, l).
func (st *step) realRows(v *views, l int) (*views, error) {
	if st.rowsSet && st.rowsKey == st.vkey && st.rowsL == l {
		return &st.rows, nil
	}
	r := *v
	var err error
	if r.logits, err = v.logits.Slice(0, l); err == nil {
		r.argmax, err = v.argmax.Slice(0, l)
	}
	if err != nil {
		return nil, fmt.Errorf("model: Forward: views of %d rows of logits: %w", l, err)
	}
	st.rows, st.rowsKey, st.rowsL, st.rowsSet = r, st.vkey, l, true
	return &st.rows, nil
}

// Graphs is the number of decode steps recorded as graphs and kept (one
// per bucket, block-table width and cache in use): zero with
// EnforceEager, SLUICE_CUDA_GRAPHS=0 or on a device without graphs.
func (m *Model) Graphs() int {
	n := 0
	for _, g := range m.step.graphs.m {
		if g != nil {
			n++
		}
	}
	return n
}
