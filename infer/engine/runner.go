package engine

import "github.com/sluicehq/sluice/gpu"

// ModelSpec is what the engine needs to know about a model.
type ModelSpec struct {
	// Vocab is the number of logits per position.
	Vocab int
	// MaxPositions bounds prompt plus output length.
	MaxPositions int
	// EOS lists the ids that end a generation (generation_config.json's
	// eos_token_id, which may be a list), unless a request sets IgnoreEOS.
	EOS []int32
}

// SeqInput is one sequence's share of a forward pass.
type SeqInput struct {
	// Tokens are this step's new tokens: a prefill chunk or one decode token.
	Tokens []int32
	// StartPos is the position of Tokens[0], which is also the number of the
	// sequence's tokens already in the cache.
	StartPos int
	// BlockTable lists the sequence's cache blocks, covering positions
	// [0, StartPos+len(Tokens)); the runner writes the new tokens' keys and
	// values into them and reads the earlier ones from them.
	BlockTable []int32
	// WantLogits asks for the logits after the last of Tokens.
	WantLogits bool
	// NumLogits, with WantLogits, asks for the logits after each of the
	// last NumLogits of Tokens, in order (speculative decoding verifies its
	// draft tokens with them); 0 and 1 mean the last token's only.
	NumLogits int
	// LoRA is the runner's id of the sequence's LoRA adapter (LoRARunner);
	// 0 is the base model.
	LoRA int
}

// logitRows is the number of rows of logits s wants.
func (s *SeqInput) logitRows() int {
	if !s.WantLogits {
		return 0
	}
	return max(1, s.NumLogits)
}

// Batch is one forward pass over several sequences.
type Batch struct{ Seqs []SeqInput }

// Runner runs a model's forward pass over a paged KV cache.
//
// Threading: an Engine calls its Runner from one goroutine at a time (its
// loop), never concurrently; Forward calls are in schedule order and
// each sees the cache writes of the ones before it. Blocks named in a
// BlockTable may be shared by several sequences (prefix caching); the
// engine never asks a Runner to write into a block that another sequence
// reads.
type Runner interface {
	// Spec describes the model.
	Spec() ModelSpec
	// NewCache allocates a KV cache of numBlocks blocks of blockSize
	// tokens each; the engine frees it.
	NewCache(numBlocks, blockSize int) (KVCache, error)
	// Forward runs one step and returns the logits of the sequences that
	// want them, [n_want × Vocab] row-major, in batch order. The returned
	// slice is read before the next call, so a Runner may reuse it.
	Forward(c KVCache, b *Batch) ([]float32, error)
}

// GreedyRunner is a Runner that can also sample greedily on its device.
// The engine uses it for a step in which every sequence that samples is
// greedy with nothing that needs the logits on the host (penalties,
// logprobs, min_tokens masking): only the token ids cross to the host.
type GreedyRunner interface {
	Runner
	// ForwardArgmax runs one step as Forward does and returns the index
	// of each wanted row's largest logit (the lowest on ties), [n_want],
	// in batch order. The returned slice is read before the next call.
	ForwardArgmax(c KVCache, b *Batch) ([]int32, error)
}

// SamplingRunner is a Runner that can also sample on its device, with any
// sampling parameters: the engine uses it for a step in which no sequence
// that samples wants logprobs, and hands it, per wanted row, the row's
// parameters, its uniform draw and its logit edits (penalties, min_tokens
// masks), so that only those and the token ids cross to the device and
// back (gpu.Ops.Sample says how the draw is made).
type SamplingRunner interface {
	Runner
	// ForwardSample runs one step as Forward does and returns the token
	// drawn for each wanted row, [n_want], in batch order, with row i of s
	// for the i-th wanted row. The returned slice is read before the next
	// call.
	ForwardSample(c KVCache, b *Batch, s *gpu.SamplePack) ([]int32, error)
}

// KVCache is a Runner's paged key/value cache.
type KVCache interface {
	// BytesPerBlock is the memory one block takes, for sizing the cache
	// from a byte budget.
	BytesPerBlock() int64
	// Free releases the cache's memory.
	Free() error
}
