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

// qmSub is x − y of two bf16 pairs (exact for qmma's small integers).
__device__ __forceinline__ unsigned qmSub(unsigned x, unsigned y) {
  __nv_bfloat162 r = __hsub2(*(const __nv_bfloat162*)&x, *(const __nv_bfloat162*)&y);
  return *(unsigned*)&r;
}

// ---- int4 tensor-core product (qMMA) ----
// c [m, n] = a [m, k]·Wᵀ (+ bias) for an int4 W whose groups are uniform
// (column c in group c / gs for every band of rows, gs % 64 == 0), whose
// zeros are integers in [0, 127] and a bf16 a with k % 64 == 0 (the host
// checks all of it once per weight; other weights take the tile path).
// The weight is never dequantized to memory: each thread turns the nibbles
// of its mma.sync B fragments into bf16 (q − z), exact small integers, the
// tensor cores sum a·(q − z) of a group in f32, and the group's scale
// multiplies that partial sum into the f32 accumulator: the same value as
// Σ a·((q − z)·s) with the dequantized weight held exactly (no rounding of
// it to bf16, unlike the tile path), up to the order of the f32 sums.
//
// Block: 128 threads (4 warps), 16·MT rows of a by QM_BN = 128 weight rows
// (32 a warp: four n8 tiles), k in stages of QM_BK = 64 columns kept in
// shared memory by a cp.async pipeline of qmStages(MT) stages. grid.x walks
// the row tiles of a (so blocks in flight share weight tiles through L2),
// grid.y the weight tiles, grid.z splits k in whole groups: with more than
// one split, each writes its f32 partial to c + z·m·n (a scratch) and
// qSplitSum adds them and the bias.
//
// The mma's k order is permuted, the same way for a and W, so that each
// thread's fragments come from whole words. In a 32-column block, thread
// (g = lane / 4, t = lane % 4) holds word t of a weight row (columns 8t to
// 8t + 7, nibble i = column 8t + i) and, of rows g and g + 8 of a, the
// same 8 columns (one 16-byte load). k step s ∈ {0, 1} of the block gives
// the mma's k slots 2t + h the columns 8t + 2s + 4h and slots 2t + 8 + h the
// columns 8t + 2s + 1 + 4h (h ∈ {0, 1}): on the weight side (u >> 8s) and
// (u >> (8s + 4)) masked with 0x000F000F put exactly those nibble pairs in
// the two halves of a bf16x2, and on a's side one byte permute of the
// 16-byte load gives each pair.
#define QM_BN 128
#define QM_BK 64

// qmStages is the pipeline depth for MT row tiles (the stages fit the 48
// KiB of static shared memory).
__host__ __device__ constexpr int qmStages(int mt) { return mt >= 4 ? 3 : 4; }

template <int MT>
__device__ __forceinline__ void qmma(void* c, int cdt, const unsigned short* a, const void* bias, int bdt,
                                     const unsigned* data, const float* scales, const float* zeros, int ngroups, int gs,
                                     int m, int n, int k, int splitGroups) {
  constexpr int ST = qmStages(MT), BM = 16 * MT;
  __shared__ __align__(16) unsigned short As[ST][BM * QM_BK];
  __shared__ __align__(16) unsigned Ws[ST][QM_BN * QM_BK / 8];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * QM_BN;
  const int kw = k >> 3;  // words per weight row
  // This split's columns: groups [g0, g1).
  const int g0 = blockIdx.z * splitGroups, g1 = min(ngroups, g0 + splitGroups);
  const int kb = g0 * gs, ke = g1 * gs, kt = (ke - kb) / QM_BK;

  // load starts the copies of stage slot s: columns [k0, k0 + 64).
  auto load = [&](int s, int k0) {
#pragma unroll
    for (int p = 0; p < MT; p++) {
      int id = tid + 128 * p, r = id >> 3, ch = id & 7, row = m0 + r;
      const unsigned short* src = a + (i64)min(row, m - 1) * k + k0 + 8 * ch;
      cpAsync16(&As[s][r * QM_BK + ((ch ^ ((r & 1) << 2)) << 3)], src, row < m ? 16 : 0);
    }
#pragma unroll
    for (int p = 0; p < 2; p++) {
      int id = tid + 128 * p, r = id >> 1, ch = id & 1, row = n0 + r;
      const unsigned* src = data + (i64)min(row, n - 1) * kw + (k0 >> 3) + 4 * ch;
      cpAsync16(&Ws[s][r * 8 + ((ch ^ ((r >> 2) & 1)) << 2)], src, row < n ? 16 : 0);
    }
  };

  // The weight rows of this thread's B fragments (zeros) and of its
  // accumulator columns (scales), clamped into range (their products are
  // not stored).
  int brow[4], crow[4][2];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    brow[j] = min(n0 + 32 * warp + 8 * j + g, n - 1);
    crow[j][0] = min(n0 + 32 * warp + 8 * j + 2 * t, n - 1);
    crow[j][1] = min(n0 + 32 * warp + 8 * j + 2 * t + 1, n - 1);
  }
  float acc[MT][4][4], part[MT][4][4];
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;
  // Zeros of the current group as bf16x2 (128 + z) and of the next one,
  // loaded a group ahead; the current group's scales.
  float znext[4], sc[4][2];
  unsigned zz[4];
#pragma unroll
  for (int j = 0; j < 4; j++) znext[j] = zeros[(i64)brow[j] * ngroups + g0];

#pragma unroll
  for (int s = 0; s < ST - 1; s++) {
    if (s < kt) load(s, kb + s * QM_BK);
    cpAsyncCommit();
  }
  for (int it = 0; it < kt; it++) {
    cpAsyncWait<ST - 2>();
    __syncthreads();
    {
      int nx = it + ST - 1;
      if (nx < kt) load(nx % ST, kb + nx * QM_BK);
      cpAsyncCommit();
    }
    const int k0 = kb + it * QM_BK;
    if ((k0 - kb) % gs == 0) {  // a group starts
      int gi = k0 / gs;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        zz[j] = packBF16(128.f + znext[j], 128.f + znext[j]);
        sc[j][0] = scales[(i64)crow[j][0] * ngroups + gi];
        sc[j][1] = scales[(i64)crow[j][1] * ngroups + gi];
        if (gi + 1 < g1) znext[j] = zeros[(i64)brow[j] * ngroups + gi + 1];
      }
#pragma unroll
      for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
          for (int e = 0; e < 4; e++) part[i][j][e] = 0.f;
    }
    const unsigned short* as = As[it % ST];
    const unsigned* ws = Ws[it % ST];
#pragma unroll
    for (int b = 0; b < 2; b++) {
      unsigned wv[4];
#pragma unroll
      for (int j = 0; j < 4; j++) {
        int r = 32 * warp + 8 * j + g;
        wv[j] = ws[r * 8 + (((b ^ ((r >> 2) & 1)) << 2) | t)];
      }
      uint4 lo[MT], hi[MT];
#pragma unroll
      for (int i = 0; i < MT; i++) {
        int r = 16 * i + g, ch = ((4 * b + t) ^ ((r & 1) << 2)) << 3;
        lo[i] = *(const uint4*)&as[r * QM_BK + ch];
        hi[i] = *(const uint4*)&as[(r + 8) * QM_BK + ch];
      }
#pragma unroll
      for (int s = 0; s < 2; s++) {
        unsigned b0[4], b1[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
          b0[j] = qmSub(((wv[j] >> (8 * s)) & 0x000F000Fu) | 0x43004300u, zz[j]);
          b1[j] = qmSub(((wv[j] >> (8 * s + 4)) & 0x000F000Fu) | 0x43004300u, zz[j]);
        }
#pragma unroll
        for (int i = 0; i < MT; i++) {
          unsigned lx = s ? lo[i].y : lo[i].x, lz = s ? lo[i].w : lo[i].z;
          unsigned hx = s ? hi[i].y : hi[i].x, hz = s ? hi[i].w : hi[i].z;
          unsigned af[4] = {__byte_perm(lx, lz, 0x5410), __byte_perm(hx, hz, 0x5410), __byte_perm(lx, lz, 0x7632),
                            __byte_perm(hx, hz, 0x7632)};
#pragma unroll
          for (int j = 0; j < 4; j++) mma16816(part[i][j], af, b0[j], b1[j]);
        }
      }
    }
    if ((k0 + QM_BK - kb) % gs == 0) {  // the group ends: scale it into acc
#pragma unroll
      for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
          for (int e = 0; e < 4; e++) acc[i][j][e] = fmaf(part[i][j][e], sc[j][e & 1], acc[i][j][e]);
    }
  }
  cpAsyncWait<0>();

  // Store: with splits, f32 partials to c + z·m·n, the bias left to qSplitSum.
  i64 off = 0;
  if (gridDim.z > 1) off = (i64)blockIdx.z * m * n, cdt = F32, bias = nullptr;
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int row = m0 + 16 * i + g + 8 * (e >> 1), col = n0 + 32 * warp + 8 * j + 2 * t + (e & 1);
        if (row < m && col < n) st(c, cdt, off + (i64)row * n + col, acc[i][j][e] + (bias ? ld(bias, bdt, col) : 0.f));
      }
}
// ---- end qMMA ----

extern "C" {

// qMMA16, qMMA32 and qMMA64: qmma with 16, 32 and 64 rows of a a block.
__global__ void __launch_bounds__(128) qMMA16(void* c, int cdt, const unsigned short* a, const void* bias, int bdt,
                                              const unsigned* data, const float* scales, const float* zeros, int ngroups,
                                              int gs, int m, int n, int k, int splitGroups) {
  qmma<1>(c, cdt, a, bias, bdt, data, scales, zeros, ngroups, gs, m, n, k, splitGroups);
}
__global__ void __launch_bounds__(128) qMMA32(void* c, int cdt, const unsigned short* a, const void* bias, int bdt,
                                              const unsigned* data, const float* scales, const float* zeros, int ngroups,
                                              int gs, int m, int n, int k, int splitGroups) {
  qmma<2>(c, cdt, a, bias, bdt, data, scales, zeros, ngroups, gs, m, n, k, splitGroups);
}
__global__ void __launch_bounds__(128) qMMA64(void* c, int cdt, const unsigned short* a, const void* bias, int bdt,
                                              const unsigned* data, const float* scales, const float* zeros, int ngroups,
                                              int gs, int m, int n, int k, int splitGroups) {
  qmma<4>(c, cdt, a, bias, bdt, data, scales, zeros, ngroups, gs, m, n, k, splitGroups);
}

// qSplitSum: c [m, n] (cdt) = Σ_z part[z] + bias over splits f32 partials
// of qMMA's k splits.
__global__ void qSplitSum(void* c, int cdt, const float* part, int splits, const void* bias, int bdt, int m, int n) {
  i64 total = (i64)m * n;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
    float v = bias ? ld(bias, bdt, i % n) : 0.f;
    for (int z = 0; z < splits; z++) v += part[z * total + i];
    st(c, cdt, i, v);
  }
}

}  // extern "C"
