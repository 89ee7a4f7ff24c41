package gpu

import "errors"

// Errors returned by devices and ops, wrapped with the op and the shapes
// involved; test them with errors.Is.
var (
	// ErrShape: a tensor's shape does not fit the op or the other tensors.
	ErrShape = errors.New("gpu: shape mismatch")
	// ErrDType: the op does not take a tensor of that element type.
	ErrDType = errors.New("gpu: unsupported dtype")
	// ErrDevice: a tensor belongs to another device.
	ErrDevice = errors.New("gpu: tensor belongs to another device")
	// ErrFreed: a tensor, or the tensor a view was taken from, was freed.
	ErrFreed = errors.New("gpu: tensor used after Free")
	// ErrIndex: a token id, position, slot or block number is out of range.
	// Backends that cannot check without synchronizing (cuda) may not report it.
	ErrIndex = errors.New("gpu: index out of range")
	// ErrArg: a scalar argument or configuration is invalid (eps, Rope).
	ErrArg = errors.New("gpu: invalid argument")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("gpu: device closed")
	// ErrUnknownDevice: Open was given a name no backend registered.
	ErrUnknownDevice = errors.New("gpu: unknown device")
)

// Device is one accelerator (or the CPU) with its memory and one in-order
// queue of work, like a CUDA device with its stream.
//
// Threading: a Device and its Ops belong to one goroutine at a time; calls
// from several goroutines must be serialized by the caller. Only LiveBytes
// may be called from any goroutine at any time.
//
// Ordering: Upload, Copy, Tensor.Free and every op are enqueued in call order
// and may still be running when the call returns; each sees the effects of
// everything enqueued before it, so no host synchronization is needed
// between ops. The host sees results only through Download, which waits for
// the work before it, or after Sync. Arguments (shapes, dtypes, devices) are
// checked when an op is called: an error then means nothing was enqueued.
// Faults found while running are returned by the next Sync or Download.
type Device interface {
	// Name is the registry name of the backend: "cpu", "cuda".
	Name() string
	// Alloc returns an uninitialized tensor owned by the caller, who must
	// Free it.
	Alloc(dt DType, shape ...int) (*Tensor, error)
	// Upload copies src, the raw little-endian elements of dst, into dst.
	// src may be reused as soon as Upload returns.
	Upload(dst *Tensor, src []byte) error
	// Download waits for the work enqueued before it and copies src's raw
	// elements into dst.
	Download(dst []byte, src *Tensor) error
	// Copy copies src into dst on the device; both have one dtype and
	// length (their shapes may differ).
	Copy(dst, src *Tensor) error
	// Sync waits until all enqueued work is done and returns its first fault.
	Sync() error
	// LiveBytes is the size of the buffers allocated and not yet freed: tests
	// check it is zero at their end (gputest.CheckLeaks).
	LiveBytes() int64
	// Ops returns the operations that run on this device's queue.
	Ops() Ops
	// Close waits for enqueued work and releases the device's own resources
	// (threads, handles). Tensors must be freed before; using the device
	// after Close returns ErrClosed.
	Close() error
}

// Ops are the kernels of a decoder-only transformer step (Llama, Qwen), on
// the queue of the Device that returned them and under its threading rule.
//
// Conventions: tensors are row-major; "rows" are all dimensions but the last
// (Tensor.Rows). Float tensors may be F32, BF16 or F16 in any mix unless
// said otherwise: each op computes in float32 and rounds once, to nearest
// even, when it stores. Index tensors are I32. An output may alias an input
// of the same shape and dtype only where the method says so.
type Ops interface {
	// MatMul computes c = a·bᵀ + bias, with a [m, k] activations (or any
	// [..., k], flattened to m rows), b [n, k] weights as stored by
	// torch.nn.Linear, bias [n] or nil, c [m, n]. Products are accumulated
	// in float32. c must not overlap a, b or bias.
	MatMul(c, a, b, bias *Tensor) error

	// Embed gathers dst[i] = table[ids[i]]: ids [t], table [vocab, h],
	// dst [t, h]. It gathers rows of any [n, h] tensor as well, such as the
	// hidden state of each sequence's last token before the LM head.
	Embed(dst, table, ids *Tensor) error

	// RMSNorm normalizes each row of x over its last dimension h:
	// dst = x / sqrt(mean(x²) + eps) * weight, with weight [h]. With a
	// residual (same shape as x) it first updates residual += x and
	// normalizes the sum instead, as vLLM's fused_add_rms_norm. dst may
	// alias x; residual must not alias either. Per-head q/k norms (Qwen3) are
	// RMSNorm of the [tokens, heads, d] tensor with a [d] weight.
	RMSNorm(dst, x, residual, weight *Tensor, eps float32) error

	// RoPE rotates q [t, qHeads, d] and k [t, kHeads, d] (k may be nil) in
	// place by the angles pos[i]·rope.InvFreq(d), with the rotate-half
	// layout of Hugging Face Llama: (x₁, x₂) → (x₁cos − x₂sin, x₂cos + x₁sin)
	// for the two halves of each head. pos is [t]. Angles are the float32
	// product of the position and the float32 frequency, as in transformers.
	RoPE(q, k, pos *Tensor, rope Rope) error

	// SiLUMul computes dst = silu(gate) ⊙ up, all [rows, n]. With up nil,
	// gate is [rows, 2n] holding gate then up in each row (a merged
	// gate_up projection). dst may alias gate when up is not nil.
	SiLUMul(dst, gate, up *Tensor) error

	// Add computes dst = a + b elementwise; all have one shape. dst may alias
	// a or b.
	Add(dst, a, b *Tensor) error

	// Softmax computes dst = softmax(x) over the last dimension. dst may
	// alias x.
	Softmax(dst, x *Tensor) error

	// Argmax writes the index of the largest element of each row of x into
	// dst [rows] (I32). Ties go to the lowest index; a NaN counts as the
	// largest value.
	Argmax(dst, x *Tensor) error

	// WriteKV stores the keys and values of new tokens in the paged cache:
	// k and v [t, kvHeads, d] go to slot slots[i] (I32 [t]) of kCache and
	// vCache [blocks, blockSize, kvHeads, d], slot = block·blockSize + offset.
	// A negative slot skips the token (padding).
	WriteKV(kCache, vCache, k, v, slots *Tensor) error

	// Attention computes causal attention for a variable-length batch over
	// the paged cache: q and out [t, heads, d], caches as in WriteKV (with
	// this step's keys and values already written), heads a multiple of
	// kvHeads (grouped-query attention). See AttnBatch.
	Attention(out, q, kCache, vCache *Tensor, b AttnBatch) error

	// Sample draws one token per row of logits (F32 [rows, vocab]) into
	// dst (I32 [rows]), with the row's parameters and logit edits from b
	// (see SampleBatch and SampleRow), as vLLM V1's sampler and
	// infer's host sampler: min_tokens masking and penalties (the edits),
	// then greedy argmax, or temperature, min_p, top_k, top_p and an
	// inverse-CDF draw over the token ids in order with the row's uniform
	// U. Probabilities and their sums are float64, so a backend agrees with
	// the host sampler except where the rounding of a sum decides (a
	// uniform or a top_p bound within about 1e-12 of a cumulative sum).
	// Sample overwrites the edited logits with their penalized values
	// (before temperature); the others are left as they were.
	Sample(dst, logits *Tensor, b SampleBatch) error
}

// AttnBatch describes the sequences of one Attention call. Sequence s owns
// the query rows [QueryStarts[s], QueryStarts[s+1]) — its n new tokens, a
// prefill chunk or one decode token — and has ContextLens[s] tokens in the
// cache, the new ones included and last. New token i sits at position
// ContextLens[s] − n + i and attends to cache positions 0 through its own.
// Position p of sequence s lives in block BlockTables[s][p / blockSize] at
// offset p % blockSize. Query rows from QueryStarts[seqs] on are not written.
type AttnBatch struct {
	BlockTables *Tensor // I32 [seqs, maxBlocks]
	ContextLens *Tensor // I32 [seqs]
	QueryStarts *Tensor // I32 [seqs+1], non-decreasing, from 0
	// Host-side bounds on the query lengths and context lengths, which
	// backends size their launches by; cuda requires them, cpu checks them
	// when they are not zero.
	MaxQueryLen, MaxContextLen int
	// Scale multiplies q·k; 0 means 1/sqrt(d).
	Scale float32
	// KScale and VScale are an F8E4M3 cache's per-tensor scales (vLLM's
	// k_scale and v_scale): the cache holds k / KScale and v / VScale
	// (ScaledKV), and Attention reads k·KScale and v·VScale. 0 means 1;
	// the other cache dtypes ignore them.
	KScale, VScale float32
}

// MemInfo is a Device that reports its memory, so that a caller can size a
// cache from what the weights and a profiling run leave, as vLLM's
// gpu_memory_utilization does. It is optional: detect it with a type
// assertion (cuda has it, cpu does not).
//
// Threading: MemInfo follows the Device's rule (one goroutine at a time,
// like Sync); PeakBytes and ResetPeak, like LiveBytes, may be called from
// any goroutine, though a ResetPeak concurrent with allocations may start
// the new peak from a slightly stale amount.
type MemInfo interface {
	// MemInfo waits for the work enqueued, hands the memory the device's
	// allocator caches but no tensor uses back to the driver, and returns
	// the device's free and total bytes as the driver reports them: free
	// excludes what the driver, libraries and other processes hold.
	MemInfo() (free, total int64, err error)
	// PeakBytes is the most memory the device's own allocations (tensors,
	// which LiveBytes counts, plus the backend's scratch and tables) held at
	// once since the last ResetPeak, or since the device was opened.
	PeakBytes() int64
	// ResetPeak restarts PeakBytes from the memory held now: PeakBytes
	// right after it is the current amount.
	ResetPeak()
}
