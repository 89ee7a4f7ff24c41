// Package model loads decoder-only transformers from Hugging Face model
// directories and runs their forward pass over a paged KV cache, on any
// gpu.Device.
//
// [Load] reads config.json, generation_config.json and the safetensors
// checkpoint (one file or shards, local or s3://, memory-mapped where
// local) of a LlamaForCausalLM (Llama 2, 3, 3.1/3.2 with llama3 rope
// scaling), MistralForCausalLM, Qwen2ForCausalLM (q/k/v biases) or
// Qwen3ForCausalLM (q/k norms, explicit head_dim), with tied or untied
// embeddings and grouped-query attention, and uploads the weights in the
// requested dtype. It refuses what it cannot run exactly: an unknown
// architecture, a rope scaling other than llama3, a missing tensor, a
// tensor whose shape disagrees with the config, a tensor the config does
// not account for; each error names the file and the tensor.
//
// [Model.Forward] runs one step of a continuous batch, as vLLM's model
// runner does: the batch mixes prefill chunks and decode tokens of many
// sequences, each with its own block table into a [Cache]. One step builds
// the I32 metadata (token ids, positions, cache slots, padded block tables,
// context lengths, query starts) on the host, uploads it once, runs every
// layer as gpu.Ops over all the step's tokens together (MatMul, RMSNorm with
// the residual add fused, RoPE, WriteKV, paged Attention, SiLUMul), gathers
// the last token of each sequence that wants logits before the LM head, and
// downloads only those logits. Nothing in it is backend-specific, so the
// cuda backend runs it unchanged; its buffers are reused from step to step.
// On a device that records graphs (gpu.Grapher: cuda), a decode step, every
// sequence with one new token, is padded to a bucket of sequences and
// replayed from a graph recorded for its shape, as vLLM's CUDA graphs;
// Options.EnforceEager or SLUICE_CUDA_GRAPHS=0 turns that off.
//
// The tests compare the cpu backend in float32 with logits and greedy
// continuations that transformers computed for random-weight models of
// each architecture (testdata/make_fixtures.py writes them): prefill,
// token-by-token decoding, chunked prefill, and batches with scattered
// block tables must all agree within 1e-4, and greedy decoding must repeat
// transformers' tokens exactly.
//
// Quantized checkpoints are detected from config.json's
// quantization_config ([QuantConfig]): FP8 E4M3 weights with per-tensor or
// per-channel scales in the fp8 (AutoFP8) and compressed-tensors
// (llm-compressor) layouts, and AWQ (gemm) and GPTQ (v1 and v2, act_order's
// g_idx) int4 with group scales and zero points. The loader repacks each
// into a gpu.QuantWeight, and the linear layers run through the device's
// gpu.QuantOps, which dequantizes inside the product (the cpu backend does;
// cuda has no quantized kernels yet, and Load says so). Options.Quantization
// "fp8" quantizes a float checkpoint per tensor at load, as vLLM's
// --quantization fp8. testdata/make_quantized.py writes quantized copies of
// the fixtures with their dequantized float references; on the cpu they
// agree within 1e-4 and repeat the reference's greedy tokens.
//
// Scheduling, sampling and block management are package infer's; this
// package is loading and the forward pass only. It is young: its API may
// still change.
package model
