package model

import (
	"fmt"

	"github.com/sluicehq/sluice/gpu"
)

// SeqInput is one sequence's share of a Forward step.
type SeqInput struct {
	Tokens     []int32 // this step's new tokens of the sequence (a prefill chunk or one decode token)
	StartPos   int     // position of Tokens[0] (= tokens already in the cache)
	BlockTable []int32 // cache blocks of the sequence, covering positions [0, StartPos+len(Tokens))
	WantLogits bool    // logits for the last new token are needed
	// NumLogits, with WantLogits, asks for the logits after each of the last
	// NumLogits new tokens (speculative decoding verifies its draft tokens
	// with them); 0 and 1 mean the last token's only.
	NumLogits int
	// LoRA is the id LoadLoRA returned for the adapter this sequence runs
	// with; 0 is the base model.
	LoRA int
}

// logitRows is the number of rows of logits q wants.
func (q *SeqInput) logitRows() int {
	if !q.WantLogits {
		return 0
	}
	return max(1, q.NumLogits)
}

// Batch is the sequences of one Forward step; prefill chunks and decode
// tokens mix freely.
type Batch struct{ Seqs []SeqInput }

// Forward runs one step: writes the new tokens' K/V into the cache at their
// positions (slot = BlockTable[pos/blockSize]*blockSize + pos%blockSize), and
// returns the float32 logits [rows wanted × Vocab] (one per sequence with
// WantLogits, NumLogits with that set), row i for the
// i-th sequence that wants logits, in order. Not safe for concurrent use.
//
// The returned slice is reused by the next Forward: read it before then.
// Blocks may be shared between sequences (prefix caching) as long as no
// sequence writes into a block another one reads. Forward checks the batch
// on the host (token ids, positions, block numbers) before it enqueues
// anything, so an error leaves the cache as it was. Its buffers are sized
// by the largest step so far: a step no larger than an earlier one
// allocates nothing on the device, and nothing on the Go heap when its
// shape (tokens, sequences, rows of logits, blocks per table) repeats.
func (m *Model) Forward(c *Cache, b *Batch) ([]float32, error) {
	key, v, err := m.forwardHead(c, b)
	if err != nil || key.tokens == 0 {
		return nil, err
	}
	st := &m.step
	out := st.out[:key.logits*m.cfg.Vocab]
	if key.logits == 0 {
		return out, nil
	}
	if err := gpu.DownloadF32(out, v.logits); err != nil {
		return nil, fmt.Errorf("model: Forward: %w", err)
	}
	return out, nil
}

// ForwardArgmax runs one step as Forward does but returns, instead of the
// logits, the index of each wanted row's largest logit (greedy sampling,
// ties to the lowest id), computed on the device: only the token ids cross
// to the host. The returned slice is reused by the next call.
func (m *Model) ForwardArgmax(c *Cache, b *Batch) ([]int32, error) {
	return m.forwardTokens(c, b, "ForwardArgmax", func(v *views) error { return m.ops.Argmax(v.argmax, v.logits) })
}

// forwardTokens runs one step as Forward does, then pick, which writes a
// token per wanted row of v.logits into v.argmax, and downloads those.
func (m *Model) forwardTokens(c *Cache, b *Batch, op string, pick func(v *views) error) ([]int32, error) {
	key, v, err := m.forwardHead(c, b)
	if err != nil || key.tokens == 0 {
		return nil, err
	}
	out := m.step.argOut[:key.logits]
	if key.logits == 0 {
		return out, nil
	}
	if err := pick(v); err != nil {
		return nil, fmt.Errorf("model: %s: %w", op, err)
	}
	if err := gpu.Download(out, v.argmax); err != nil {
		return nil, fmt.Errorf("model: %s: %w", op, err)
	}
	return out, nil
}

// forwardHead checks and plans b, runs the decoder and, when some
// sequence wants logits, the LM head into v.logits (not downloaded).
// A zero key.tokens means an empty batch: nothing ran.
func (m *Model) forwardHead(c *Cache, b *Batch) (stepKey, *views, error) {
	if m.closed {
		return stepKey{}, nil, fmt.Errorf("model: Forward: %w", ErrClosed)
	}
	if c == nil || c.m != m {
		return stepKey{}, nil, fmt.Errorf("model: Forward: the cache belongs to another model: %w", ErrBatch)
	}
	if c.freed {
		return stepKey{}, nil, fmt.Errorf("model: Forward: the cache was freed: %w", ErrClosed)
	}
	st := &m.step
	key, err := st.plan(m, c, b)
	if err != nil || key.tokens == 0 {
		return stepKey{}, nil, err
	}
	if err := m.lora.plan(b); err != nil {
		return stepKey{}, nil, err
	}
	if err := m.lora.reserve(m, key.tokens); err != nil {
		return key, nil, err
	}
	// A decode step with adapters is padded and replayed like the base's
	// where the device reads the adapters' segments from memory
	// (gpu.LoRATableOps); elsewhere it runs eagerly.
	if len(m.lora.segs) == 0 || m.lora.indexable(m) {
		if pk, ok := st.pad(key); ok {
			if len(m.lora.segs) > 0 {
				if err := m.lora.makeTables(m); err != nil {
					return key, nil, err
				}
			}
			v, err := m.decodePadded(c, key, pk)
			return key, v, err
		}
	}
	if err := st.reserve(m, key); err != nil {
		return key, nil, err
	}
	v, err := st.viewsFor(m, key)
	if err != nil {
		return key, nil, err
	}
	if err := st.upload(v); err != nil {
		return key, nil, fmt.Errorf("model: Forward: uploading the step's metadata: %w", err)
	}
	ab := gpu.AttnBatch{
		BlockTables:   v.tables,
		ContextLens:   v.ctxLens,
		QueryStarts:   v.qStarts,
		MaxQueryLen:   st.maxQuery,
		MaxContextLen: st.maxContext,
	}
	if key.tokens == key.seqs {
		ab.MaxContextLen = decodeBound(key, c)
	}
	if err := m.layersForward(c, v, ab); err != nil {
		return key, nil, fmt.Errorf("model: Forward: %w", err)
	}
	if key.logits == 0 {
		return key, v, nil
	}
	ops := m.ops
	if err := ops.Embed(v.g, v.h, v.last); err != nil {
		return key, nil, fmt.Errorf("model: Forward: gathering the last tokens: %w", err)
	}
	if err := ops.MatMul(v.logits, v.g, m.lmHead, nil); err != nil {
		return key, nil, fmt.Errorf("model: Forward: LM head: %w", err)
	}
	return key, v, nil
}

// layersForward runs the decoder over every new token and leaves the final
// normed hidden states in v.h. The residual stream lives in v.x; each
// sublayer's output (v.o) is added into it by the next RMSNorm, as vLLM's
// fused_add_rms_norm does.
func (m *Model) layersForward(c *Cache, v *views, ab gpu.AttnBatch) error {
	ops, cfg := m.ops, m.cfg
	eps := cfg.RMSNormEps
	if err := ops.Embed(v.x, m.embed, v.ids); err != nil {
		return fmt.Errorf("embedding: %w", err)
	}
	for i := range m.layers {
		ly := &m.layers[i]
		var err error
		if i == 0 {
			err = ops.RMSNorm(v.h, v.x, nil, ly.inNorm, eps)
		} else {
			err = ops.RMSNorm(v.h, v.o, v.x, ly.inNorm, eps)
		}
		if err != nil {
			return fmt.Errorf("layer %d: input norm: %w", i, err)
		}
		if err := m.attention(c, i, v, ab); err != nil {
			return fmt.Errorf("layer %d: attention: %w", i, err)
		}
		if err := ops.RMSNorm(v.h, v.o, v.x, ly.postNorm, eps); err != nil {
			return fmt.Errorf("layer %d: post-attention norm: %w", i, err)
		}
		if err := m.matmulLoRA(v.gateUp, v.h, ly.gateUp, ly.gateUpBias, i, projGateUp); err != nil {
			return fmt.Errorf("layer %d: gate/up: %w", i, err)
		}
		if err := ops.SiLUMul(v.act, v.gateUp, nil); err != nil {
			return fmt.Errorf("layer %d: SiLU: %w", i, err)
		}
		if err := m.matmulLoRA(v.o, v.act, ly.down, ly.downBias, i, projDown); err != nil {
			return fmt.Errorf("layer %d: down: %w", i, err)
		}
	}
	if err := ops.RMSNorm(v.h, v.o, v.x, m.norm, eps); err != nil {
		return fmt.Errorf("final norm: %w", err)
	}
	return nil
}

// attention is one layer's self-attention from v.h into v.o.
func (m *Model) attention(c *Cache, i int, v *views, ab gpu.AttnBatch) error {
	ops, ly, eps := m.ops, &m.layers[i], m.cfg.RMSNormEps
	if err := m.matmulLoRA(v.q, v.h, ly.q, ly.qBias, i, projQ); err != nil {
		return err
	}
	if err := m.matmulLoRA(v.k, v.h, ly.k, ly.kBias, i, projK); err != nil {
		return err
	}
	if err := m.matmulLoRA(v.v, v.h, ly.v, ly.vBias, i, projV); err != nil {
		return err
	}
	if ly.qNorm != nil {
		if err := ops.RMSNorm(v.q3, v.q3, nil, ly.qNorm, eps); err != nil {
			return err
		}
		if err := ops.RMSNorm(v.k3, v.k3, nil, ly.kNorm, eps); err != nil {
			return err
		}
	}
	if err := ops.RoPE(v.q3, v.k3, v.pos, m.cfg.Rope); err != nil {
		return err
	}
	if err := m.writeKV(c, i, v); err != nil {
		return err
	}
	ab.KScale, ab.VScale = ly.kScale, ly.vScale
	if err := ops.Attention(v.attn3, v.q3, c.k[i], c.v[i], ab); err != nil {
		return err
	}
	return m.matmulLoRA(v.o, v.attn, ly.o, ly.oBias, i, projO)
}
