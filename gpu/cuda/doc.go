// Package cuda is the NVIDIA GPU backend of gpu: a gpu.Device whose tensors
// live in device memory and whose ops run on one CUDA stream.
//
// It calls the CUDA driver API (libcuda.so.1) and cuBLAS (libcublas.so.13)
// through github.com/ebitengine/purego, found with dlopen at run time, so
// the binary builds with CGO_ENABLED=0 and runs unchanged on a machine
// without a GPU: New then fails with ErrUnavailable and gpu.Open("auto")
// chooses the CPU backend and logs why. Importing the package registers the
// "cuda" backend:
//
//	import _ "github.com/sluicehq/sluice/gpu/cuda"
//
// Matrix products go to cublasGemmEx with float32 compute; the other ops
// are the kernels of gpu/kernels (CUDA C++ compiled to PTX on the GPU
// machine, committed and embedded), loaded with cuModuleLoadData.
//
// Tests run gputest's conformance suite and skip when no GPU is found;
// build them here and run them on the GPU machine:
//
//	CGO_ENABLED=0 go test -c -o devrun/cuda.test ./gpu/cuda
//	./devrun/cuda.test -test.v   # on the GPU machine
//
// Attention picks its kernel from the batch (see Attention and AttnKernels, Config.Attn):
// split-context paged attention for decode rows, tiled prefill attention
// on the tensor cores (bf16) or in f32 FMAs for the rest; gpu/kernels'
// NOTES.md has each kernel's measurements.
//
// It also implements gpu.BackwardOps for training (f32 only, backward.go):
// the matmul gradient's two products as cuBLAS GEMMs, the rest as the
// backward kernels of gpu/kernels, each output summed in a fixed order.
//
// The Device is a gpu.Grapher: Capture records what a function enqueues as
// a CUDA graph (stream capture), which infer/model replays for decode steps.
//
// Unstable: kernels and their choice change with measurements.
package cuda
