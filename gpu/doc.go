// Package gpu is the tensor engine that infer and train run on: element
// types, device-resident tensors, and the Device and Ops interfaces that
// backends implement — gpu/cpu in pure Go, and gpu/cuda (the CUDA driver
// API and cuBLAS through purego).
//
// This package is unstable: its API may change until the cuda backend has
// landed and run a model end to end.
//
// # Tensors
//
// A Tensor is a dense row-major array of one DType (F32, BF16, F16, I32) in
// a device's memory, made by Device.Alloc (or FromHost, which also uploads)
// and released by Free. Slice (rows along dimension 0) and View (another
// shape of the same elements) make views that copy nothing. Host data moves
// only through Device.Upload and Device.Download, or their typed helpers
// Upload, Download, ToHost, UploadF32 and DownloadF32. BFloat16 and Float16
// hold 16-bit values on the host; ToBFloat16 and ToFloat16 round to nearest
// even as PyTorch and CUDA do.
//
// # Devices and ops
//
// A Device is one queue of work on one accelerator, like a CUDA device and
// its stream: Upload, Copy, Free and the Ops are enqueued in call order and
// may run asynchronously; each sees the effects of those before it, so a
// decode step runs with no host synchronization until Download (of the
// sampled tokens or the logits) or Sync. A Device belongs to one goroutine
// at a time. Ops are the kernels of a Llama/Qwen decoder step: MatMul
// (a·bᵀ against torch.nn.Linear weights), Embed, RMSNorm with fused
// residual add, RoPE with Llama 3 scaling, SiLUMul, Add, Softmax, Argmax,
// Sample (vLLM's sampler on the device: penalties, temperature, min_p,
// top_k, top_p and a seeded draw), and paged attention (WriteKV, Attention) over a block-table KV cache for
// a batch that mixes prefill chunks and decode tokens.
//
// Every Device counts the bytes it has allocated and not freed (LiveBytes),
// so tests end with a leak check (gputest.CheckLeaks); package gputest is
// the conformance suite every backend passes.
//
// # Backends
//
// Backends register themselves with Register from their init function, so
// a program imports the ones it wants and opens one by name:
//
//	import _ "github.com/sluicehq/sluice/gpu/cpu"
//
//	dev, err := gpu.Open("auto") // cuda when it is registered and works, else cpu
package gpu
