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
// This package is unstable. Training runs in float32 on the host (the
// --device cpu path); the cuda backward kernels and bf16 training are not
// written yet.
package train
