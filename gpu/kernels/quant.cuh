// Quantized-weight kernels of the cuda backend (fp8, int4), included by
// sluice.cu after its helpers (ld, st, warpSum, blockMax). gpu/cuda/quant.go
// drives them:
//   - qActFP8 quantizes activations to E4M3 with one scale per row (per
//     token, vLLM's dynamic per-token scheme) for cuBLASLt's FP8 product,
//     qZero, qAbsmax and qActFP8T with one scale for the tensor (vLLM's
//     dynamic per-tensor scheme, for weights with one scale);
//   - qEpilogue applies the per-token and per-weight-row scales and the
//     bias to the product's f32 result;
//   - qGemv is the fused dequantizing product for few rows (decode);
//   - qDequant dequantizes a bounded band of weight rows into a scratch
//     tile for cuBLAS (many rows, and FP8 where there is no FP8 MMA).
// Weight formats are gpu.QuantFormat's: Q_FP8 data u8 [n, k], scales f32
// [n]; Q_INT4 data u32 [n, k/8] (column 8j+i in bits 4i..4i+3 of word j),
// scales and zeros f32 [n, ngroups], groups i32 [segs, k] with segRows rows
// per band. A group index outside [0, ngroups) dequantizes to NaN: the host
// checks each Groups tensor once, outside graph captures.
#include <cuda_fp8.h>

#define Q_FP8 1
#define Q_INT4 2
#define QG_M 8        // rows of a that qGemv takes
#define QG_WARPS 8    // weight rows per qGemv block, one per warp

__device__ __forceinline__ float qF8(unsigned b) {
  __half_raw h = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)b, __NV_E4M3);
  return __half2float(__half(h));
}

// qLoad8 dequantizes columns 8j..8j+7 of weight row r into v (columns past
// k read as 0).
__device__ __forceinline__ void qLoad8(float v[8], int fmt, const void* data, const float* scales, const float* zeros,
                                       const int* groups, int ngroups, int segRows, int r, int j, int k) {
  int c0 = 8 * j;
  if (fmt == Q_FP8) {
    const unsigned char* p = (const unsigned char*)data + (i64)r * k + c0;
    float s = scales[r];
#pragma unroll
    for (int i = 0; i < 8; i++) v[i] = c0 + i < k ? qF8(p[i]) * s : 0.f;
    return;
  }
  unsigned u = ((const unsigned*)data)[(i64)r * (k >> 3) + j];
  const int* g = groups + (i64)(r / segRows) * k + c0;
  const float* sc = scales + (i64)r * ngroups;
  const float* zr = zeros + (i64)r * ngroups;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    int gi = g[i];
    float q = (float)((u >> (4 * i)) & 15u);
    v[i] = gi >= 0 && gi < ngroups ? (q - zr[gi]) * sc[gi] : NAN;
  }
}

extern "C" {

// qActFP8: one block per row of a [m, k]: s = max(absmax / 448, 1/(448·512))
// (vLLM's floor), q = E4M3(a / s) saturated, sa[row] = s.
__global__ void qActFP8(unsigned char* q, float* sa, const void* a, int adt, int k) {
  __shared__ float sh[32];
  i64 o = (i64)blockIdx.x * k;
  float mx = 0.f;
  for (int c = threadIdx.x; c < k; c += blockDim.x) mx = fmaxf(mx, fabsf(ld(a, adt, o + c)));
  mx = blockMax(mx, sh);
  float s = fmaxf(mx / 448.f, 1.f / (448.f * 512.f));
  if (threadIdx.x == 0) sa[blockIdx.x] = s;
  for (int c = threadIdx.x; c < k; c += blockDim.x)
    q[o + c] = __nv_cvt_float_to_fp8(ld(a, adt, o + c) / s, __NV_SATFINITE, __NV_E4M3);
}

// qZero zeroes n words (qAbsmax's accumulator).
__global__ void qZero(unsigned* p, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = 0u;
}

// qAbsmax: one block per row of a [m, k]; folds the row's absmax into
// *amax (a non-negative float's bits order as unsigned ints; NaNs are
// skipped here and propagate through the product).
__global__ void qAbsmax(unsigned* amax, const void* a, int adt, int k) {
  __shared__ float sh[32];
  i64 o = (i64)blockIdx.x * k;
  float mx = 0.f;
  for (int c = threadIdx.x; c < k; c += blockDim.x) mx = fmaxf(mx, fabsf(ld(a, adt, o + c)));
  mx = blockMax(mx, sh);
  if (threadIdx.x == 0) atomicMax(amax, __float_as_uint(mx));
}

// qActFP8T quantizes a's n elements to E4M3 with one scale for the whole
// tensor, s = max(*amax / 448, 1/(448·512)), written to *sa (vLLM's
// dynamic per-tensor scheme).
__global__ void qActFP8T(unsigned char* q, float* sa, const unsigned* amax, const void* a, int adt, i64 n) {
  float s = fmaxf(__uint_as_float(*amax) / 448.f, 1.f / (448.f * 512.f));
  if (blockIdx.x == 0 && threadIdx.x == 0) *sa = s;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    q[i] = __nv_cvt_float_to_fp8(ld(a, adt, i) / s, __NV_SATFINITE, __NV_E4M3);
}

// qEpilogue: c[i·ldc + j] = acc[i·n + j]·sa[i]·sw[j] + bias[j], each of sa,
// sw and bias optional (absent: 1, 1, 0).
__global__ void qEpilogue(void* c, int cdt, i64 ldc, const float* acc, const float* sa, const float* sw,
                          const void* bias, int bdt, i64 m, int n) {
  i64 total = m * n;
  for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < total; t += (i64)gridDim.x * blockDim.x) {
    i64 i = t / n;
    int j = (int)(t - i * n);
    float v = acc[t];
    if (sa) v *= sa[i];
    if (sw) v *= sw[j];
    if (bias) v += ld(bias, bdt, j);
    st(c, cdt, i * ldc + j, v);
  }
}

// qGemv: c [m, n] = a [m, k]·Wᵀ + bias for m ≤ QG_M. Warp w of block b owns
// weight row r = b·QG_WARPS + w: its lanes walk the row's 8-column chunks,
// dequantize each once and use it for all m rows of a (a is small and
// read through L1), then the warp sums. avec: a is bf16, k % 8 == 0 and a
// 16-byte aligned, so each chunk of a row of a is one 16-byte load.
__global__ void __launch_bounds__(QG_WARPS * 32) qGemv(
    void* c, int cdt, const void* a, int adt, int avec, const void* bias, int bdt, int fmt, const void* data,
    const float* scales, const float* zeros, const int* groups, int ngroups, int segRows, int m, int n, int k) {
  int r = blockIdx.x * QG_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (r >= n) return;  // the whole warp
  float acc[QG_M];
#pragma unroll
  for (int i = 0; i < QG_M; i++) acc[i] = 0.f;
  int chunks = (k + 7) >> 3;
#pragma unroll 2
  for (int j = lane; j < chunks; j += 32) {
    float w[8];
    qLoad8(w, fmt, data, scales, zeros, groups, ngroups, segRows, r, j, k);
#pragma unroll
    for (int i = 0; i < QG_M; i++) {
      if (i >= m) break;
      i64 ao = (i64)i * k + 8 * j;
      float s = 0.f;
      if (avec) {
        uint4 u = *(const uint4*)((const __nv_bfloat16*)a + ao);
        const __nv_bfloat162* h = (const __nv_bfloat162*)&u;
#pragma unroll
        for (int e = 0; e < 4; e++) {
          float2 f = __bfloat1622float2(h[e]);
          s = fmaf(f.x, w[2 * e], s);
          s = fmaf(f.y, w[2 * e + 1], s);
        }
      } else {
#pragma unroll
        for (int e = 0; e < 8; e++)
          if (8 * j + e < k) s = fmaf(ld(a, adt, ao + e), w[e], s);
      }
      acc[i] += s;
    }
  }
#pragma unroll
  for (int i = 0; i < QG_M; i++) acc[i] = warpSum(acc[i]);
  if (lane == 0) {
    float b = bias ? ld(bias, bdt, r) : 0.f;
#pragma unroll
    for (int i = 0; i < QG_M; i++)
      if (i < m) st(c, cdt, (i64)i * n + r, acc[i] + b);
  }
}

// qDequant: rows [r0, r0 + rows) of the weight into dst [rows, k] of ddt,
// one thread per 8-column chunk (grid-stride); bf16 with k % 8 == 0 stores
// each chunk as one 16-byte write.
__global__ void qDequant(void* dst, int ddt, int fmt, const void* data, const float* scales, const float* zeros,
                         const int* groups, int ngroups, int segRows, int r0, int rows, int k) {
  int chunks = (k + 7) >> 3;
  i64 total = (i64)rows * chunks;
  for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < total; t += (i64)gridDim.x * blockDim.x) {
    int lr = (int)(t / chunks), j = (int)(t - (i64)lr * chunks);
    float v[8];
    qLoad8(v, fmt, data, scales, zeros, groups, ngroups, segRows, r0 + lr, j, k);
    i64 o = (i64)lr * k + 8 * j;
    if (ddt == BF16 && (k & 7) == 0) {
      uint4 u;
      __nv_bfloat162* h = (__nv_bfloat162*)&u;
#pragma unroll
      for (int e = 0; e < 4; e++) h[e] = __floats2bfloat162_rn(v[2 * e], v[2 * e + 1]);
      *(uint4*)((__nv_bfloat16*)dst + o) = u;
    } else {
#pragma unroll
      for (int e = 0; e < 8; e++)
        if (8 * j + e < k) st(dst, ddt, o + e, v[e]);
    }
  }
}

}  // extern "C"
