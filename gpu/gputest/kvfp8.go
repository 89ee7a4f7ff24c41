package gputest

import "github.com/sluicehq/sluice/gpu"

// FP8 KV caches: gpu.UploadF32 and DownloadF32 take the float dtypes only,
// so the suite moves E4M3 bytes itself.

// uploadF8 rounds data to E4M3 and uploads it into x.
func (e *env) uploadF8(x *gpu.Tensor, data []float32) *gpu.Tensor {
	e.t.Helper()
	b := make([]byte, len(data))
	for i, f := range data {
		b[i] = byte(gpu.ToFloat8E4M3(f))
	}
	e.must(e.dev.Upload(x, b))
	return x
}

// getF8 downloads x, an F8E4M3 tensor, into out as float32s.
func (e *env) getF8(out []float32, x *gpu.Tensor) []float32 {
	e.t.Helper()
	for i, b := range e.raw(x) {
		out[i] = gpu.Float8E4M3(b).Float32()
	}
	return out
}

// raw downloads x as it is stored.
func (e *env) raw(x *gpu.Tensor) []byte {
	e.t.Helper()
	b := make([]byte, x.Bytes())
	e.must(e.dev.Download(b, x))
	return b
}
