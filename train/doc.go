// Package train fine-tunes the decoder models that infer serves (Llama,
// Mistral, Qwen2, Qwen3 from a Hugging Face directory) on rows of a
// dataset: reverse-mode gradients of the whole decoder (embedding, linear
// layers with biases, RMSNorm, q/k norms, RoPE, causal grouped-query
// attention, SiLU-gated MLP, residuals, cross-entropy with ignored targets),
// AdamW and SGD with momentum, clipping by global norm, gradient
// accumulation, constant/linear/cosine schedules with warmup, checkpoints
// that resume bit for bit, and a Hugging Face model directory as output.
//
// Gradients and the loss are checked against PyTorch on infer's fixture
// models (testdata/make_reference.py, f32, 1e-4 relative).
//
// The forward and backward passes run on the shared gpu engine: infer's
// forward Ops (MatMul, Embed, RMSNorm, RoPE, paged Attention, SiLUMul, Add)
// and gpu.BackwardOps, in float32. The weights stay on the device across
// micro-batches and steps and the gradients accumulate there; clipping and
// the optimizer run there too where the device has gpu.OptimOps (cpu; cuda
// once its optimizer kernels are built), else on the host after one
// download of the gradients per step. LoRA's merge and adapter gradients
// run on the host (resident.go).
//
// Data-parallel runs (Config.Workers, Rank) sum each step's gradients
// over a ring all-reduce on TCP (allreduce.go says why a ring of our own).
//
// Prompt/completion rows (Config.PromptColumn, CompletionColumn) count only
// the completion's tokens in the loss, and chat rows (Config.Chat) only the
// assistant turns (Config.ChatLoss "all" counts every token).
//
// Each step's metrics (loss, lr, grad norm, tokens/s, MFU with a known peak
// FLOP/s, the seconds of each phase) go to Config.OnStep, Out/metrics.jsonl and Out/metrics.parquet
// (metrics.go gives the MFU formula); ProgressLine is the bar sluice train
// prints.
//
// Training runs on any gpu backend whose Ops implement gpu.BackwardOps
// (Config.Device; one without them is refused by name). A step moves its
// token ids in and its losses out; the weights come back to the host for
// checkpoints and the saved model.
//
// This package is unstable. bf16 training is not written yet.
package train
