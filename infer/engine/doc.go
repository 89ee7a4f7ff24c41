// Package engine is Sluice's LLM engine core: continuous batching over a
// paged KV cache and vLLM's sampling parameters, driving a Runner. It
// imports no GPU backend: the engine runs on whatever device the Runner's
// model was loaded on (infer.Load opens one by name).
//
// It reads like nano-vllm's engine, one concept per file:
//
//   - sequence.go: a Sequence, one completion of a prompt, and when it
//     stops at the token level (EOS, stop tokens, lengths);
//   - block.go: the block manager of the paged KV cache: fixed-size
//     blocks, a free list in LRU order, reference counts, and automatic
//     prefix caching (full blocks keyed by a chained hash of their tokens
//     and everything before them);
//   - scheduler.go: vLLM V1's scheduler as a deterministic state machine:
//     Schedule plans a step under MaxNumSeqs and MaxNumBatchedTokens
//     (running sequences first, long prompts in chunks), preempting the
//     newest sequence for recomputation when blocks run out; Update applies
//     the sampled tokens. testdata/scheduler/*.txt are its traces;
//   - sampling.go: SamplingParams and the sampler (penalties, temperature,
//     min_p, top_k, top_p, per-request seeded generators, logprobs);
//     sampling_device.go packs the same parameters, each sequence's uniform
//     and its logit edits for a SamplingRunner, which samples on its device
//     (gpu.Ops.Sample) when no sequence of the step wants logprobs;
//     constraint.go: the Constraint a request's structured output masks
//     logits with;
//   - output.go: incremental detokenization, stop strings, and what
//     streaming hands out;
//   - config.go: Config and its defaults; memory.go: sizing the KV cache
//     from the device's memory after a profiling step;
//   - engine.go: Engine, whose step is schedule → run (forward pass and
//     sampling) → postprocess, looped by one goroutine that owns the
//     scheduler, the cache and the model; request.go: Request, Generate
//     and Submit; gauges.go: the live counters serve's /metrics reads;
//   - speculative.go: speculative decoding with an n-gram (prompt lookup)
//     proposer: the scheduler budgets each decode's draft tokens, the step
//     computes them with logits after each, and the sampler verifies them
//     by exact rejection sampling (greedy output is unchanged token for
//     token, sampled output keeps its distribution); draft.go: the
//     draft-model proposer (method "draft_model"), a second model of the
//     same vocabulary with a KV cache of its own indexed by the same
//     block tables, run before each step's forward pass;
//   - runner.go: the Runner interface the engine drives, implemented over
//     infer/model by model_runner.go (FromModel) and in memory by
//     FakeRunner (fake.go), whose outputs hash the whole token history so
//     that any scheduling or cache bug changes them.
//
// # Concurrency
//
// Generate and Submit may be called from any goroutine; their requests
// join the running batch at the next step. A Runner is only ever called
// from the engine's loop goroutine. Close ends the loop, failing what is in
// flight with ErrClosed.
//
// # Correctness
//
// The tests drive the scheduler through trace files, check the sampler
// against hand-computed tables, compare every output of the engine with
// FakeRunner's cache-free reference under prefix caching, chunked prefill
// and preemption, and reproduce the greedy continuations that transformers
// computed for random-weight models of each supported architecture
// (infer/model/testdata) under the same conditions.
//
// This package is unstable: its API may change with the engine's needs
// (the OpenAI-compatible server and the CUDA backend are next).
package engine
