// Package cpu is the pure-Go backend of package gpu: no cgo, no assembly.
// It runs every model the engine runs, slowly, on any machine — the
// reference the cuda backend is tested against and the device CI uses.
// Importing it registers the device "cpu" with gpu.Register.
//
// Tensors are Go memory; each op validates its arguments, checks indices
// (token ids, slots, block tables: ErrIndex), and runs before it returns on
// the calling goroutine and Config.Threads−1 worker goroutines owned by the
// Device until Close. Ops allocate nothing once their per-worker scratch has
// grown to the sizes in use.
//
// # MatMul
//
// C = A·Bᵀ is cache-blocked in the manner of BLIS: per block of C, panels of
// A and B are packed k-major (converting BF16/F16 weights to float32 once,
// there) and a register-tiled micro-kernel of mr×nr float32 accumulators
// runs down them. When C is a single block row (decode batches), weights are
// used once, so the kernel reads F32 or BF16 B in place instead. Go does not vectorize, so the kernel is scalar and its
// tile is as large as the compiler keeps in registers: 2×3 by default,
// 2×4 when built with GOAMD64=v3, where multiply-adds fuse. It reaches
// about 11 GFLOP/s per core on a recent x86 (12–15 for the bare kernel), on
// par with gonum's Dgemm and below gonum's Sgemm, whose inner loops are SSE
// assembly. See BenchmarkMatMul.
//
// Attention works on (token, kv head) pairs, reading each cached key and
// value once for the query heads of a group, a cache block at a time with
// an online softmax in float32.
package cpu
