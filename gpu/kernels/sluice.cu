// Kernels of the cuda backend of gpu (package gpu/cuda). Every kernel is
// extern "C" so that cuModuleGetFunction finds it by its plain name, and
// takes the dtypes of its float tensors as run-time codes equal to gpu.DType
// (1 f32, 2 bf16, 3 f16): a uniform branch per element is cheap next to the
// memory traffic, and it spares one instantiation per dtype mix. Every op
// computes in float32 and rounds once, to nearest even, when it stores.
//
// Built by build.sh into PTX for compute_80 and compute_90; the PTX is
// committed and embedded by kernels.go.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#define F32 1
#define BF16 2
#define F16 3
#define F8E4M3 5  // KV caches only (ldc, stc)

typedef long long i64;

__device__ __forceinline__ float ld(const void* p, int dt, i64 i) {
  if (dt == F32) return ((const float*)p)[i];
  if (dt == BF16) return __bfloat162float(((const __nv_bfloat16*)p)[i]);
  return __half2float(((const __half*)p)[i]);
}

__device__ __forceinline__ void st(void* p, int dt, i64 i, float v) {
  if (dt == F32) ((float*)p)[i] = v;
  else if (dt == BF16) ((__nv_bfloat16*)p)[i] = __float2bfloat16_rn(v);
  else ((__half*)p)[i] = __float2half_rn(v);
}

// roundTo returns v rounded to dt, as a float.
__device__ __forceinline__ float roundTo(int dt, float v) {
  if (dt == BF16) return __bfloat162float(__float2bfloat16_rn(v));
  if (dt == F16) return __half2float(__float2half_rn(v));
  return v;
}

// f8f is an FP8 E4M3 byte as a float, exactly (gpu.Float8E4M3.Float32):
// E4M3 fits in f16, whose exponent is 8 lower; 0x7f (either sign) is NaN.
__device__ __forceinline__ float f8f(unsigned b) {
  unsigned u = b & 0x7fu;
  float f = __half2float(__ushort_as_half((unsigned short)(u << 7))) * 256.f;
  if (u == 0x7fu) f = __int_as_float(0x7fffffff);
  return __uint_as_float(__float_as_uint(f) | ((b & 0x80u) << 24));
}

// f2f8 rounds f to the nearest E4M3, ties to even, saturating to ±448, a
// NaN staying NaN: gpu.ToFloat8E4M3, step for step, so cpu and cuda store
// the same bits.
__device__ __forceinline__ unsigned f2f8(float f) {
  const unsigned minNorm = (127u - 6) << 23, magic = (127u + 14) << 23;  // 2^-6; 2^14, whose ulp is 2^-9
  unsigned u = __float_as_uint(f);
  unsigned sign = (u >> 24) & 0x80u;
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return sign | 0x7fu;
  if (__uint_as_float(u) >= 448.f) return sign | 0x7eu;
  if (u < minNorm) return sign | ((__float_as_uint(__fadd_rn(__uint_as_float(u), __uint_as_float(magic))) - magic) & 0xffu);
  u += 0x7ffffu + ((u >> 20) & 1u);
  u -= (127u - 7) << 23;
  return sign | ((u >> 20) & 0xffu);
}

// ldc and stc are ld and st for KV caches, which may also be F8E4M3: stc
// stores v / scale rounded to E4M3 there (scale, the cache's k_scale or
// v_scale, is ignored for the other dtypes); ldc returns the stored value,
// the caller multiplies by the scale.
__device__ __forceinline__ float ldc(const void* p, int dt, i64 i) {
  if (dt == F8E4M3) return f8f(((const unsigned char*)p)[i]);
  return ld(p, dt, i);
}

__device__ __forceinline__ void stc(void* p, int dt, i64 i, float v, float scale) {
  if (dt == F8E4M3) ((unsigned char*)p)[i] = (unsigned char)f2f8(v / scale);
  else st(p, dt, i, v);
}

// f8x8bf16 widens 8 E4M3 bytes (u.x, u.y, element 0 in the low byte) to 8
// bf16 (u.x .. u.w, element 0 in the low half), exactly: every E4M3 value
// is a bf16 one. The tiles of the 2-byte kernels take FP8 caches so.
__device__ __forceinline__ uint4 f8x8bf16(uint4 u) {
  unsigned wd[2] = {u.x, u.y}, o[4];
#pragma unroll
  for (int e = 0; e < 4; e++) {
    unsigned w = wd[e >> 1] >> (16 * (e & 1));
    o[e] = (__float_as_uint(f8f(w & 0xffu)) >> 16) | (__float_as_uint(f8f((w >> 8) & 0xffu)) & 0xffff0000u);
  }
  return make_uint4(o[0], o[1], o[2], o[3]);
}

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// blockSum returns the sum of v over the block (blockDim.x a multiple of 32,
// at most 1024) to every thread. sh holds 32 floats.
__device__ float blockSum(float v, float* sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warpSum(v);
  __syncthreads();  // sh may still be read by a previous call
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.f;
  return warpSum(v);
}

__device__ float blockMax(float v, float* sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warpMax(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : -INFINITY;
  return warpMax(v);
}

// ---- Tiled prefill attention (attentionPrefill, below in extern "C") ----
//
// One block per (query tile, kv head, sequence): grid (ceil(maxQueryLen /
// QT), kvHeads, seqs), PF_THREADS threads. The tile's R "rows" are (query
// row, head) pairs, row r = qi·G + g (query row i0 + qi, head kh·G + g), so
// QT = R / G query rows of the sequence (R = 64 for d ≤ 64, 32 for d ≤ 128;
// ops.go computes the same QT). The causal context up to the tile's last
// position is walked in key tiles of PF_KT positions: each K tile, then each
// V tile, is gathered once through the block table into shared memory (as
// f32, zeros for skipped keys) and used by all R rows. Warp w owns rows
// w + 4a (a < RA = R/4): for scores lane L takes key L of the tile against
// its RA rows (q from shared memory, 4-wide broadcast loads), keeps one
// online softmax per row (warp-uniform m, l), and writes the probabilities
// to shared memory; for values lane L owns columns L + 32b (b < NB) of its
// rows' accumulators, in registers. Keys whose block table entry is outside
// [0, blocks) are skipped, as in attention.
#define PF_THREADS 128
#define PF_KT 32            // keys per tile
#define PF_PS (PF_KT + 4)   // row stride of the probabilities
// Shared floats: R·d4 (q) + PF_KT·KS (k or v) + R·PF_PS (p); the largest
// layout is R = 32, d = 128: 4096 + 4224 + 1152.
#define PF_SMEM 9472

template <int RA, int NB>
__device__ __forceinline__ void prefillTile(
    float* smem, i64* koff, void* out, int odt, const void* q, int qdt, const void* kc, const void* vc, int cdt,
    const int* tables, const int* ctxLens, const int* starts, int maxBlocks, int blocks, int bs,
    int heads, int kvHeads, int d, float scale, int minRows, float vscale) {
  const int R = 4 * RA;
  int kh = blockIdx.y, s = blockIdx.z;
  int G = heads / kvHeads;
  int QT = R / G;
  int q0 = starts[s], n = starts[s + 1] - q0;
  int i0 = blockIdx.x * QT;
  if (i0 >= n || n < minRows) return;  // the whole block; shorter sequences are attentionSplit's
  int ctx = ctxLens[s];
  int nq = min(QT, n - i0);
  int rows = nq * G;         // rows r < rows hold a query
  int base = ctx - n + i0;   // position of the tile's first query row
  int last = base + nq - 1;  // and of its last one
  int d4 = (d + 3) & ~3;
  int KS = ((d4 >> 2) | 1) << 2;  // k row stride: 4·odd, so 16-byte loads of 8 lanes hit distinct banks
  float* Qs = smem;               // [R][d4], scaled, zero-padded
  float* KV = Qs + R * d4;        // [PF_KT][KS]: the k tile, then the v tile
  float* Ps = KV + PF_KT * KS;    // [R][PF_PS]
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  i64 qbase = ((i64)(q0 + i0) * heads + (i64)kh * G) * d;
  for (int r = w; r < R; r += PF_THREADS / 32) {
    i64 qo = qbase + (i64)(r / G) * heads * d + (i64)(r % G) * d;
    for (int j = lane; j < d4; j += 32)
      Qs[r * d4 + j] = r < rows && j < d ? ld(q, qdt, qo + j) * scale : 0.f;
  }
  float acc[RA][NB], m[RA], l[RA];
#pragma unroll
  for (int a = 0; a < RA; a++) {
    m[a] = -INFINITY, l[a] = 0.f;
#pragma unroll
    for (int b = 0; b < NB; b++) acc[a][b] = 0.f;
  }
  const int* table = tables + (i64)s * maxBlocks;
  i64 row = (i64)kvHeads * d;
  for (int k0 = 0; k0 <= last; k0 += PF_KT) {
    __syncthreads();  // the previous tile's reads of KV, Ps and koff are done (and Qs is written)
    if (threadIdx.x < PF_KT) {
      int p = k0 + threadIdx.x;
      i64 o = -1;
      if (p <= last) {
        int blk = table[p / bs];
        if (blk >= 0 && blk < blocks) o = ((i64)blk * bs + p % bs) * row + (i64)kh * d;
      }
      koff[threadIdx.x] = o;
    }
    __syncthreads();
    for (int k = w; k < PF_KT; k += PF_THREADS / 32) {
      i64 o = koff[k];
      for (int j = lane; j < d4; j += 32) KV[k * KS + j] = o >= 0 && j < d ? ldc(kc, cdt, o + j) : 0.f;
    }
    __syncthreads();
    float sc[RA];
#pragma unroll
    for (int a = 0; a < RA; a++) sc[a] = 0.f;
    const float* kr = KV + lane * KS;
    for (int j = 0; j < d4; j += 4) {
      float4 kv = *(const float4*)(kr + j);
#pragma unroll
      for (int a = 0; a < RA; a++) {
        float4 qv = *(const float4*)(Qs + (w + 4 * a) * d4 + j);
        sc[a] = fmaf(qv.x, kv.x, sc[a]);
        sc[a] = fmaf(qv.y, kv.y, sc[a]);
        sc[a] = fmaf(qv.z, kv.z, sc[a]);
        sc[a] = fmaf(qv.w, kv.w, sc[a]);
      }
    }
    int p = k0 + lane;
    bool kin = koff[lane] >= 0;
#pragma unroll
    for (int a = 0; a < RA; a++) {
      int r = w + 4 * a;
      int pr = r < rows ? base + r / G : -1;  // the row's position; -1 masks every key
      bool ok = kin && p <= pr;
      float v = ok ? sc[a] : -INFINITY;
      float mn = fmaxf(m[a], warpMax(v));  // uniform across the warp
      float e = 0.f, al = 1.f;
      if (mn != -INFINITY) {
        al = expf(m[a] - mn);  // 0 while m is -inf
        e = ok ? expf(v - mn) : 0.f;
      }
      l[a] = l[a] * al + warpSum(e);
      m[a] = mn;
      Ps[r * PF_PS + lane] = e;
#pragma unroll
      for (int b = 0; b < NB; b++) acc[a][b] *= al;
    }
    __syncthreads();  // every warp is done with the k tile
    for (int k = w; k < PF_KT; k += PF_THREADS / 32) {
      i64 o = koff[k];
      for (int j = lane; j < d4; j += 32) KV[k * KS + j] = o >= 0 && j < d ? ldc(vc, cdt, o + j) : 0.f;
    }
    __syncthreads();
    int kend = min(PF_KT, last - k0 + 1);  // probabilities past it are 0
    for (int k = 0; k < kend; k += 4) {
      float vv[4][NB];
#pragma unroll
      for (int e = 0; e < 4; e++) {
#pragma unroll
        for (int b = 0; b < NB; b++) {
          int c = lane + 32 * b;
          vv[e][b] = c < d4 ? KV[(k + e) * KS + c] : 0.f;
        }
      }
#pragma unroll
      for (int a = 0; a < RA; a++) {
        float4 pv = *(const float4*)(Ps + (w + 4 * a) * PF_PS + k);
#pragma unroll
        for (int b = 0; b < NB; b++) {
          float t = acc[a][b];
          t = fmaf(pv.x, vv[0][b], t);
          t = fmaf(pv.y, vv[1][b], t);
          t = fmaf(pv.z, vv[2][b], t);
          t = fmaf(pv.w, vv[3][b], t);
          acc[a][b] = t;
        }
      }
    }
  }
#pragma unroll
  for (int a = 0; a < RA; a++) {
    int r = w + 4 * a;
    if (r >= rows) continue;
    i64 o = qbase + (i64)(r / G) * heads * d + (i64)(r % G) * d;
    float L = l[a];
#pragma unroll
    for (int b = 0; b < NB; b++) {
      int c = lane + 32 * b;
      if (c < d) st(out, odt, o + c, L > 0.f ? acc[a][b] / L * vscale : 0.f);
    }
  }
}

// ---- Split-context decode attention (attentionSplit, attentionMerge) ----
//
// For sequences with one query row (decode batches, and the decode rows of
// mixed batches, whose other sequences attentionPrefill serves, skipping
// these): one block per (split j,
// kv head, sequence), grid (splits, kvHeads, seqs), SP_THREADS threads and
// dynamic shared memory (ops.go computes the same size). Split j of a
// sequence whose query row sees L keys covers keys [j·chunk, (j+1)·chunk) (the
// last split runs to L); splits past L exit at once. The block serves the
// G query heads of its kv head ("rows", warp w owning rows w + 4a, a < RA),
// so each key and value is read once per group. The split's keys are walked
// in tiles of SP_KT: the K and V tiles are gathered into shared memory as
// f32 (zeros for masked keys), with 16-byte loads of 2-byte caches that are
// issued for tile t+1 before tile t is computed; lane L scores key L of the
// tile against its rows, one online softmax per row, then owns columns
// L + 32b of its rows' accumulators. With one split the block writes the
// normalized output; with more it writes its (max, sum, unnormalized
// accumulator) to part, and attentionMerge combines the splits.
#define SP_THREADS 128
#define SP_KT 32           // keys per tile
#define SP_PS (SP_KT + 4)  // row stride of the probabilities

__device__ __forceinline__ void unpack8(uint4 u, int cdt, float* dst) {
  unsigned int wd[4] = {u.x, u.y, u.z, u.w};
  float f[8];
#pragma unroll
  for (int e = 0; e < 4; e++) {
    if (cdt == F8E4M3) {  // 8 bytes in u.x, u.y (splitFetch)
      f[2 * e] = f8f((wd[e >> 1] >> (16 * (e & 1))) & 0xffu);
      f[2 * e + 1] = f8f((wd[e >> 1] >> (16 * (e & 1) + 8)) & 0xffu);
    } else if (cdt == BF16) {
      f[2 * e] = __uint_as_float(wd[e] << 16);
      f[2 * e + 1] = __uint_as_float(wd[e] & 0xffff0000u);
    } else {
      f[2 * e] = __half2float(__ushort_as_half((unsigned short)(wd[e] & 0xffffu)));
      f[2 * e + 1] = __half2float(__ushort_as_half((unsigned short)(wd[e] >> 16)));
    }
  }
  ((float4*)dst)[0] = make_float4(f[0], f[1], f[2], f[3]);
  ((float4*)dst)[1] = make_float4(f[4], f[5], f[6], f[7]);
}

// splitKey is the cache element offset of key p's row for kv head offset
// head, or -1 for a masked key (p ≥ ke or a block table entry outside
// [0, blocks)).
__device__ __forceinline__ i64 splitKey(const int* table, int p, int ke, int bs, int blocks, i64 row, i64 head) {
  if (p >= ke) return -1;
  int blk = table[p / bs];
  if (blk < 0 || blk >= blocks) return -1;
  return ((i64)blk * bs + p % bs) * row + head;
}

// splitFetch loads the 16-byte chunks of a K and a V tile (masked keys as
// zeros) that this thread stores: slot threadIdx.x + SP_THREADS·i is chunk
// c = slot & (2^lg − 1) of key k = slot >> lg of the tile (2^lg ≥ C8 = d /
// 8 chunks per row), NB slots per thread cover the 32·2^lg slots. off is
// the lane's own key's offset (splitKey of key k0 + lane); a chunk's key
// offset comes from lane k by a shuffle, so no thread divides.
template <int NB>
__device__ __forceinline__ void splitFetch(uint4 (&kr)[NB], uint4 (&vr)[NB], const void* kc, const void* vc, i64 off,
                                           int lg, int C8, int cdt) {
#pragma unroll
  for (int i = 0; i < NB; i++) {
    int slot = threadIdx.x + SP_THREADS * i;
    int k = slot >> lg, c = slot & ((1 << lg) - 1);
    i64 o = __shfl_sync(0xffffffffu, off, k & 31);
    kr[i] = vr[i] = make_uint4(0u, 0u, 0u, 0u);
    if (k < SP_KT && c < C8 && o >= 0) {
      if (cdt == F8E4M3) {  // a chunk is 8 bytes
        uint2 a = *(const uint2*)((const unsigned char*)kc + o + 8 * c), b = *(const uint2*)((const unsigned char*)vc + o + 8 * c);
        kr[i].x = a.x, kr[i].y = a.y, vr[i].x = b.x, vr[i].y = b.y;
      } else {
        kr[i] = *(const uint4*)((const unsigned short*)kc + o + 8 * c);
        vr[i] = *(const uint4*)((const unsigned short*)vc + o + 8 * c);
      }
    }
  }
}

template <int RA, int NB>
__device__ __forceinline__ void splitTile(
    float* smem, void* out, int odt, float* part, const void* q, int qdt, const void* kc, const void* vc, int cdt,
    const int* tables, const int* ctxLens, const int* starts, int maxBlocks, int blocks, int bs,
    int heads, int kvHeads, int d, float scale, int vec, int chunk, float vscale) {
  const int R = 4 * RA;
  int j = blockIdx.x, kh = blockIdx.y, s = blockIdx.z, splits = gridDim.x;
  int q0 = starts[s], n = starts[s + 1] - q0;
  if (n != 1) return;  // no query row, or several: attentionPrefill's
  int L = ctxLens[s];  // the query row sees keys 0..L-1
  int kb = j * chunk;
  if (j > 0 && kb >= L) return;  // past the context: attentionMerge skips this split
  int ke = j == splits - 1 ? L : min(L, kb + chunk);
  int G = heads / kvHeads;
  int d4 = (d + 3) & ~3;
  int KS = ((d4 >> 2) | 1) << 2;  // row stride: 4·odd floats, so lanes' 16-byte loads of rows hit distinct banks
  float* Qs = smem;                // [R][d4], scaled, zero-padded
  float* Ks = Qs + R * d4;         // [SP_KT][KS]
  float* Vs = Ks + SP_KT * KS;     // [SP_KT][KS]
  float* Ps = Vs + SP_KT * KS;     // [R][SP_PS]
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  i64 qo = ((i64)q0 * heads + (i64)kh * G) * d;  // the group's heads are contiguous
  for (int idx = threadIdx.x; idx < R * d4; idx += SP_THREADS) {
    int r = idx / d4, c = idx - r * d4;
    Qs[idx] = r < G && c < d ? ld(q, qdt, qo + (i64)r * d + c) * scale : 0.f;
  }
  const int* table = tables + (i64)s * maxBlocks;
  i64 row = (i64)kvHeads * d;
  i64 head = (i64)kh * d;
  int C8 = d >> 3;  // 8-element chunks per row (vec: d % 8 == 0; 16 bytes of a 2-byte cache, 8 of an F8E4M3 one)
  int lg = 0;
  while ((1 << lg) < C8) lg++;
  uint4 kr[NB], vr[NB];  // the next tile's chunks, in flight
  float acc[RA][NB], acc2[RA][NB], m[RA], l[RA];  // acc2: a second FMA chain over odd keys
#pragma unroll
  for (int a = 0; a < RA; a++) {
    m[a] = -INFINITY, l[a] = 0.f;
#pragma unroll
    for (int b = 0; b < NB; b++) acc[a][b] = acc2[a][b] = 0.f;
  }
  int ntiles = ke > kb ? (ke - kb + SP_KT - 1) / SP_KT : 0;
  i64 offNext = ntiles > 0 ? splitKey(table, kb + lane, ke, bs, blocks, row, head) : -1;
  if (vec && ntiles > 0) splitFetch<NB>(kr, vr, kc, vc, offNext, lg, C8, cdt);
  for (int t = 0; t < ntiles; t++) {
    int k0 = kb + t * SP_KT;
    i64 off = offNext;  // key k0 + lane
    __syncthreads();  // the previous tile's reads of Ks and Vs are done (and Qs is written)
    if (vec) {
#pragma unroll
      for (int i = 0; i < NB; i++) {
        int slot = threadIdx.x + SP_THREADS * i;
        int k = slot >> lg, c = slot & ((1 << lg) - 1);
        if (k < SP_KT && c < C8) {
          unpack8(kr[i], cdt, Ks + k * KS + 8 * c);
          unpack8(vr[i], cdt, Vs + k * KS + 8 * c);
        }
      }
    } else {
      for (int idx = threadIdx.x; idx < SP_KT * d4; idx += SP_THREADS) {
        int k = idx / d4, c = idx - k * d4;
        int p = k0 + k;
        i64 o = -1;
        if (p < ke && c < d) {
          int blk = table[p / bs];
          if (blk >= 0 && blk < blocks) o = ((i64)blk * bs + p % bs) * row + (i64)kh * d + c;
        }
        Ks[k * KS + c] = o >= 0 ? ldc(kc, cdt, o) : 0.f;
        Vs[k * KS + c] = o >= 0 ? ldc(vc, cdt, o) : 0.f;
      }
    }
    __syncthreads();
    if (t + 1 < ntiles) {  // the next tile's loads are in flight while this one is computed
      offNext = splitKey(table, k0 + SP_KT + lane, ke, bs, blocks, row, head);
      if (vec) splitFetch<NB>(kr, vr, kc, vc, offNext, lg, C8, cdt);
    }
    float sc[RA];
    float4 s4[RA];  // four independent FMA chains per row
#pragma unroll
    for (int a = 0; a < RA; a++) s4[a] = make_float4(0.f, 0.f, 0.f, 0.f);
    const float* krow = Ks + lane * KS;
    for (int jj = 0; jj < d4; jj += 4) {
      float4 kv = *(const float4*)(krow + jj);
#pragma unroll
      for (int a = 0; a < RA; a++) {
        float4 qv = *(const float4*)(Qs + (w + 4 * a) * d4 + jj);
        s4[a].x = fmaf(qv.x, kv.x, s4[a].x);
        s4[a].y = fmaf(qv.y, kv.y, s4[a].y);
        s4[a].z = fmaf(qv.z, kv.z, s4[a].z);
        s4[a].w = fmaf(qv.w, kv.w, s4[a].w);
      }
    }
#pragma unroll
    for (int a = 0; a < RA; a++) sc[a] = (s4[a].x + s4[a].y) + (s4[a].z + s4[a].w);
    bool kin = off >= 0;
#pragma unroll
    for (int a = 0; a < RA; a++) {
      int r = w + 4 * a;
      if (r >= G) continue;  // uniform across the warp
      float v = kin ? sc[a] : -INFINITY;
      float mn = fmaxf(m[a], warpMax(v));
      float e = 0.f, al = 1.f;
      if (mn != -INFINITY) {
        al = expf(m[a] - mn);  // 0 while m is -inf
        e = kin ? expf(v - mn) : 0.f;
      }
      l[a] = l[a] * al + warpSum(e);
      m[a] = mn;
      Ps[r * SP_PS + lane] = e;
#pragma unroll
      for (int b = 0; b < NB; b++) acc[a][b] *= al, acc2[a][b] *= al;
    }
    __syncwarp();  // each warp reads back only its own rows of Ps
    int kend = min(SP_KT, (ke - k0 + 3) & ~3);  // probabilities and values past ke are 0
    for (int k = 0; k < kend; k += 4) {
      float vv[4][NB];
#pragma unroll
      for (int e = 0; e < 4; e++) {
#pragma unroll
        for (int b = 0; b < NB; b++) {
          int c = lane + 32 * b;
          vv[e][b] = c < d4 ? Vs[(k + e) * KS + c] : 0.f;
        }
      }
#pragma unroll
      for (int a = 0; a < RA; a++) {
        int r = w + 4 * a;
        if (r >= G) continue;
        float4 pv = *(const float4*)(Ps + r * SP_PS + k);
#pragma unroll
        for (int b = 0; b < NB; b++) {
          float x = acc[a][b], y = acc2[a][b];
          x = fmaf(pv.x, vv[0][b], x);
          y = fmaf(pv.y, vv[1][b], y);
          x = fmaf(pv.z, vv[2][b], x);
          y = fmaf(pv.w, vv[3][b], y);
          acc[a][b] = x, acc2[a][b] = y;
        }
      }
    }
  }
#pragma unroll
  for (int a = 0; a < RA; a++) {
#pragma unroll
    for (int b = 0; b < NB; b++) acc[a][b] += acc2[a][b];
  }
  i64 N = (i64)gridDim.z * heads * splits;  // partial states in part: m [N], l [N], acc [N][d]
#pragma unroll
  for (int a = 0; a < RA; a++) {
    int r = w + 4 * a;
    if (r >= G) continue;
    if (part == nullptr) {
#pragma unroll
      for (int b = 0; b < NB; b++) {
        int c = lane + 32 * b;
        if (c < d) st(out, odt, qo + (i64)r * d + c, l[a] > 0.f ? acc[a][b] / l[a] * vscale : 0.f);
      }
      continue;
    }
    i64 pi = ((i64)s * heads + (i64)kh * G + r) * splits + j;
    if (lane == 0) part[pi] = m[a], part[N + pi] = l[a];
#pragma unroll
    for (int b = 0; b < NB; b++) {
      int c = lane + 32 * b;
      if (c < d) part[2 * N + pi * d + c] = acc[a][b] * vscale;
    }
  }
}

// unpack8f converts 8 elements of a 2-byte cache (bf16 or f16) to f32.
__device__ __forceinline__ void unpack8f(uint4 u, int cdt, float (&f)[8]) {
  unsigned int wd[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int e = 0; e < 4; e++) {
    if (cdt == BF16) {
      f[2 * e] = __uint_as_float(wd[e] << 16);
      f[2 * e + 1] = __uint_as_float(wd[e] & 0xffff0000u);
    } else {
      f[2 * e] = __half2float(__ushort_as_half((unsigned short)(wd[e] & 0xffffu)));
      f[2 * e + 1] = __half2float(__ushort_as_half((unsigned short)(wd[e] >> 16)));
    }
  }
}

// splitTileRaw is splitTile for 2-byte caches with d % 8 == 0 (vec): the K
// and V tiles stay in shared memory as the cache stores them (rows of d + 8
// elements, so lanes' 16-byte loads of rows 16 bytes apart in bank terms hit
// distinct banks when d % 16 == 0), halving the shared-memory stores and
// the loads of k; scores convert 8 elements per 16-byte load, and lane L
// owns column pairs 2L + 64b, read 4 bytes at a time.
// cp.async (sm_80+): 16 bytes from global to shared memory without
// registers; bytes < 16 fills the rest with zeros (0: a masked chunk).
__device__ __forceinline__ void cpAsync16(void* dst, const void* src, int bytes) {
  unsigned a = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// SP_STAGES K/V tile stages in flight for attentionSplit's cp.async path.
#define SP_STAGES 3

// splitIssue starts the copies of a K and a V tile into the stage at Kd
// (K rows, then V rows, KS elements apart), with splitFetch's chunk slots:
// off is the lane's own key's offset, a chunk's comes by shuffle; masked
// keys are zero-filled.
template <int NB>
__device__ __forceinline__ void splitIssue(unsigned short* Kd, int KS, const void* kc, const void* vc, i64 off, int lg,
                                           int C8) {
  unsigned short* Vd = Kd + SP_KT * KS;
#pragma unroll
  for (int i = 0; i < NB; i++) {
    int slot = threadIdx.x + SP_THREADS * i;
    int k = slot >> lg, c = slot & ((1 << lg) - 1);
    i64 o = __shfl_sync(0xffffffffu, off, k & 31);
    if (k < SP_KT && c < C8) {
      i64 e = o >= 0 ? o + 8 * c : 0;
      int n = o >= 0 ? 16 : 0;
      cpAsync16(Kd + k * KS + 8 * c, (const unsigned short*)kc + e, n);
      cpAsync16(Vd + k * KS + 8 * c, (const unsigned short*)vc + e, n);
    }
  }
}

template <int RA, int NB, bool ASYNC>
__device__ __forceinline__ void splitTileRaw(
    float* smem, void* out, int odt, float* part, const void* q, int qdt, const void* kc, const void* vc, int cdt,
    const int* tables, const int* ctxLens, const int* starts, int maxBlocks, int blocks, int bs,
    int heads, int kvHeads, int d, float scale, int chunk, float vscale) {
  const int R = 4 * RA;
  const int NP = NB / 2;  // column pairs per lane
  const bool f8 = cdt == F8E4M3;      // register path only: tiles widened to bf16 (f8x8bf16)
  const int tdt = f8 ? BF16 : cdt;  // the tiles' dtype
  int j = blockIdx.x, kh = blockIdx.y, s = blockIdx.z, splits = gridDim.x;
  int q0 = starts[s], n = starts[s + 1] - q0;
  if (n != 1) return;  // no query row, or several: attentionPrefill's
  int L = ctxLens[s];  // the query row sees keys 0..L-1
  int kb = j * chunk;
  if (j > 0 && kb >= L) return;  // past the context: attentionMerge skips this split
  int ke = j == splits - 1 ? L : min(L, kb + chunk);
  int G = heads / kvHeads;
  int KS = d + 8;                                  // row stride in elements
  float* Qs = smem;                                // [R][d], scaled
  const int ST = ASYNC ? SP_STAGES : 1;          // K/V tile stages
  unsigned short* Kb = (unsigned short*)(Qs + R * d);  // stage t: K [SP_KT][KS], then V [SP_KT][KS]
  float* Ps = (float*)(Kb + ST * 2 * SP_KT * KS);  // [R][SP_PS]; 16-byte aligned: KS % 8 == 0
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  i64 qo = ((i64)q0 * heads + (i64)kh * G) * d;  // the group's heads are contiguous
  for (int idx = threadIdx.x; idx < R * d; idx += SP_THREADS) {
    int r = idx / d;
    Qs[idx] = r < G ? ld(q, qdt, qo + idx) * scale : 0.f;
  }
  const int* table = tables + (i64)s * maxBlocks;
  i64 row = (i64)kvHeads * d;
  i64 head = (i64)kh * d;
  int C8 = d >> 3;
  int lg = 0;
  while ((1 << lg) < C8) lg++;
  uint4 kr[NB], vr[NB];  // the next tile's chunks, in flight
  float acc[RA][NB], acc2[RA][NB], m[RA], l[RA];  // acc[a][2p + e]: column 2·lane + 64p + e
#pragma unroll
  for (int a = 0; a < RA; a++) {
    m[a] = -INFINITY, l[a] = 0.f;
#pragma unroll
    for (int b = 0; b < NB; b++) acc[a][b] = acc2[a][b] = 0.f;
  }
  int ntiles = ke > kb ? (ke - kb + SP_KT - 1) / SP_KT : 0;
  i64 offNext = -1;
  if constexpr (ASYNC) {
    // Tiles 0 and 1 in flight; then each iteration waits for tile t and
    // issues tile t + 2 into the stage tile t - 1 used. One commit group
    // per tile (empty past the last), so wait_group 1 means "tile t landed".
#pragma unroll
    for (int p = 0; p < SP_STAGES - 1; p++) {
      if (p < ntiles)
        splitIssue<NB>(Kb + p * 2 * SP_KT * KS, KS, kc, vc,
                       splitKey(table, kb + p * SP_KT + lane, ke, bs, blocks, row, head), lg, C8);
      cpAsyncCommit();
    }
  } else {
    offNext = ntiles > 0 ? splitKey(table, kb + lane, ke, bs, blocks, row, head) : -1;
    if (ntiles > 0) splitFetch<NB>(kr, vr, kc, vc, offNext, lg, C8, cdt);
  }
  for (int t = 0; t < ntiles; t++) {
    int k0 = kb + t * SP_KT;
    unsigned short* Ks = Kb + (t % ST) * 2 * SP_KT * KS;
    unsigned short* Vs = Ks + SP_KT * KS;
    i64 off;  // key k0 + lane
    if constexpr (ASYNC) {
      cpAsyncWait<SP_STAGES - 2>();
      __syncthreads();  // tile t is visible to all; tile t - 1's stage is free (and Qs is written)
      int tn = t + SP_STAGES - 1;
      if (tn < ntiles)
        splitIssue<NB>(Kb + (tn % ST) * 2 * SP_KT * KS, KS, kc, vc,
                       splitKey(table, kb + tn * SP_KT + lane, ke, bs, blocks, row, head), lg, C8);
      cpAsyncCommit();
      off = splitKey(table, k0 + lane, ke, bs, blocks, row, head);
    } else {
      off = offNext;
      __syncthreads();  // the previous tile's reads of Ks and Vs are done (and Qs is written)
#pragma unroll
      for (int i = 0; i < NB; i++) {
        int slot = threadIdx.x + SP_THREADS * i;
        int k = slot >> lg, c = slot & ((1 << lg) - 1);
        if (k < SP_KT && c < C8) {
          *(uint4*)(Ks + k * KS + 8 * c) = f8 ? f8x8bf16(kr[i]) : kr[i];
          *(uint4*)(Vs + k * KS + 8 * c) = f8 ? f8x8bf16(vr[i]) : vr[i];
        }
      }
      __syncthreads();
      if (t + 1 < ntiles) {  // the next tile's loads are in flight while this one is computed
        offNext = splitKey(table, k0 + SP_KT + lane, ke, bs, blocks, row, head);
        splitFetch<NB>(kr, vr, kc, vc, offNext, lg, C8, cdt);
      }
    }
    float4 s4[RA];  // four independent FMA chains per row
#pragma unroll
    for (int a = 0; a < RA; a++) s4[a] = make_float4(0.f, 0.f, 0.f, 0.f);
    const unsigned short* krow = Ks + lane * KS;
    for (int jj = 0; jj < d; jj += 8) {
      float kv[8];
      unpack8f(*(const uint4*)(krow + jj), tdt, kv);
#pragma unroll
      for (int a = 0; a < RA; a++) {
        float4 qa = *(const float4*)(Qs + (w + 4 * a) * d + jj);
        float4 qb = *(const float4*)(Qs + (w + 4 * a) * d + jj + 4);
        s4[a].x = fmaf(qa.x, kv[0], s4[a].x);
        s4[a].y = fmaf(qa.y, kv[1], s4[a].y);
        s4[a].z = fmaf(qa.z, kv[2], s4[a].z);
        s4[a].w = fmaf(qa.w, kv[3], s4[a].w);
        s4[a].x = fmaf(qb.x, kv[4], s4[a].x);
        s4[a].y = fmaf(qb.y, kv[5], s4[a].y);
        s4[a].z = fmaf(qb.z, kv[6], s4[a].z);
        s4[a].w = fmaf(qb.w, kv[7], s4[a].w);
      }
    }
    bool kin = off >= 0;
#pragma unroll
    for (int a = 0; a < RA; a++) {
      int r = w + 4 * a;
      if (r >= G) continue;  // uniform across the warp
      float v = kin ? (s4[a].x + s4[a].y) + (s4[a].z + s4[a].w) : -INFINITY;
      float mn = fmaxf(m[a], warpMax(v));
      float e = 0.f, al = 1.f;
      if (mn != -INFINITY) {
        al = expf(m[a] - mn);  // 0 while m is -inf
        e = kin ? expf(v - mn) : 0.f;
      }
      l[a] = l[a] * al + warpSum(e);
      m[a] = mn;
      Ps[r * SP_PS + lane] = e;
#pragma unroll
      for (int b = 0; b < NB; b++) acc[a][b] *= al, acc2[a][b] *= al;
    }
    __syncwarp();  // each warp reads back only its own rows of Ps
    int kend = min(SP_KT, (ke - k0 + 3) & ~3);  // probabilities and values past ke are 0
    for (int k = 0; k < kend; k += 4) {
      float vv[4][NB];
#pragma unroll
      for (int e = 0; e < 4; e++) {
#pragma unroll
        for (int p = 0; p < NP; p++) {
          int c = 2 * lane + 64 * p;
          unsigned int u = c < d ? *(const unsigned int*)(Vs + (k + e) * KS + c) : 0u;
          if (tdt == BF16) {
            vv[e][2 * p] = __uint_as_float(u << 16);
            vv[e][2 * p + 1] = __uint_as_float(u & 0xffff0000u);
          } else {
            vv[e][2 * p] = __half2float(__ushort_as_half((unsigned short)(u & 0xffffu)));
            vv[e][2 * p + 1] = __half2float(__ushort_as_half((unsigned short)(u >> 16)));
          }
        }
      }
#pragma unroll
      for (int a = 0; a < RA; a++) {
        int r = w + 4 * a;
        if (r >= G) continue;
        float4 pv = *(const float4*)(Ps + r * SP_PS + k);
#pragma unroll
        for (int b = 0; b < NB; b++) {
          float x = acc[a][b], y = acc2[a][b];
          x = fmaf(pv.x, vv[0][b], x);
          y = fmaf(pv.y, vv[1][b], y);
          x = fmaf(pv.z, vv[2][b], x);
          y = fmaf(pv.w, vv[3][b], y);
          acc[a][b] = x, acc2[a][b] = y;
        }
      }
    }
  }
  i64 N = (i64)gridDim.z * heads * splits;  // partial states in part: m [N], l [N], acc [N][d]
#pragma unroll
  for (int a = 0; a < RA; a++) {
    int r = w + 4 * a;
    if (r >= G) continue;
    i64 pi = ((i64)s * heads + (i64)kh * G + r) * splits + j;
    if (part != nullptr && lane == 0) part[pi] = m[a], part[N + pi] = l[a];
#pragma unroll
    for (int b = 0; b < NB; b++) {
      int c = 2 * lane + 64 * (b >> 1) + (b & 1);
      if (c >= d) continue;
      float x = acc[a][b] + acc2[a][b];
      if (part == nullptr)
        st(out, odt, qo + (i64)r * d + c, l[a] > 0.f ? x / l[a] * vscale : 0.f);
      else
        part[2 * N + pi * d + c] = x * vscale;
    }
  }
}

// ---- Tensor-core prefill attention (attentionPrefillMMA) ----
//
// attentionPrefill's tiling (one block per (query tile, kv head, sequence),
// R = 64 (query row, head) rows, row r = qi·G + g) with q·k and p·v on the
// tensor cores (mma.sync m16n8k16, bf16 inputs, f32 accumulators), for bf16
// q, cache and output and d = 64 or 128. Warp w owns rows 16w .. 16w + 15:
// its q fragments stay in registers, S = q·kᵀ for a tile of 32 keys is 4
// n-tiles of 8 keys, and the online softmax runs on the accumulators (each
// thread holds rows g = lane / 4 and g + 8, the 4 lanes of a group share
// them). p is split into bf16 hi + lo parts (two p·v products) so the
// result keeps about 16 bits of p, not 8. K and V tiles are gathered as
// stored (rows of d + 8 elements: conflict-free 32-bit fragment loads) with
// the next tile's 16-byte loads in flight while this one is computed. An
// FP8 cache's tiles are fetched 8 bytes a chunk and widened to bf16 (exact)
// as they are stored; vscale multiplies the output.
#define MMA_KT 32

__device__ __forceinline__ void mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// packBF16 rounds lo and hi to bf16 and packs them, lo in the low half.
__device__ __forceinline__ unsigned packBF16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *(unsigned*)&v;
}

template <int D>
__device__ __forceinline__ void prefillMMA(
    unsigned short* sm, int* kok, void* out, int odt, const void* q, const void* kc, const void* vc, int cdt,
    const int* tables, const int* ctxLens, const int* starts, int maxBlocks, int blocks, int bs,
    int heads, int kvHeads, float scale, int minRows, float vscale) {
  const bool f8 = cdt == F8E4M3;  // an FP8 cache: tiles widened to bf16 as they are stored (f8x8bf16)
  const int R = 64, KC = D / 16, NT = D / 8, NB = D / 32, KS = D + 8;
  int kh = blockIdx.y, s = blockIdx.z;
  int G = heads / kvHeads;
  int QT = R / G;
  int q0 = starts[s], n = starts[s + 1] - q0;
  int i0 = blockIdx.x * QT;
  if (i0 >= n || n < minRows) return;  // the whole block; shorter sequences are attentionSplit's
  int ctx = ctxLens[s];
  int nq = min(QT, n - i0);
  int rows = nq * G;
  int base = ctx - n + i0;
  int last = base + nq - 1;
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
  unsigned short* Ks = sm;
  unsigned short* Vs = sm + MMA_KT * KS;
  i64 qbase = ((i64)(q0 + i0) * heads + (i64)kh * G) * D;  // out has q's layout
  int rr[2] = {16 * w + g, 16 * w + g + 8};                // this thread's rows
  i64 ro[2];
  int rpos[2];  // the rows' positions; -1 masks every key
#pragma unroll
  for (int h = 0; h < 2; h++) {
    ro[h] = qbase + (i64)(rr[h] / G) * heads * D + (i64)(rr[h] % G) * D;
    rpos[h] = rr[h] < rows ? base + rr[h] / G : -1;
  }
  const unsigned short* qs = (const unsigned short*)q;
  unsigned qa[KC][4];
#pragma unroll
  for (int c16 = 0; c16 < KC; c16++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      int h = e & 1, col = c16 * 16 + (e >> 1) * 8 + 2 * tq;
      qa[c16][e] = rr[h] < rows ? *(const unsigned*)(qs + ro[h] + col) : 0u;
    }
  }
  float o[NT][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
#pragma unroll
  for (int t = 0; t < NT; t++) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.f;
  const int* table = tables + (i64)s * maxBlocks;
  i64 row = (i64)kvHeads * D, head = (i64)kh * D;
  const int lg = D == 64 ? 3 : 4;
  uint4 kr[NB], vr[NB];
  i64 offNext = splitKey(table, lane, last + 1, bs, blocks, row, head);
  splitFetch<NB>(kr, vr, kc, vc, offNext, lg, D / 8, cdt);
  for (int k0 = 0; k0 <= last; k0 += MMA_KT) {
    i64 off = offNext;
    __syncthreads();  // the previous tile's reads of Ks, Vs and kok are done
#pragma unroll
    for (int i = 0; i < NB; i++) {
      int slot = threadIdx.x + SP_THREADS * i;
      int k = slot >> lg, c = slot & ((1 << lg) - 1);
      *(uint4*)(Ks + k * KS + 8 * c) = f8 ? f8x8bf16(kr[i]) : kr[i];
      *(uint4*)(Vs + k * KS + 8 * c) = f8 ? f8x8bf16(vr[i]) : vr[i];
    }
    if (threadIdx.x < MMA_KT) kok[threadIdx.x] = off >= 0;
    __syncthreads();
    if (k0 + MMA_KT <= last) {
      offNext = splitKey(table, k0 + MMA_KT + lane, last + 1, bs, blocks, row, head);
      splitFetch<NB>(kr, vr, kc, vc, offNext, lg, D / 8, cdt);
    }
    float sc[4][4];
#pragma unroll
    for (int t = 0; t < 4; t++) sc[t][0] = sc[t][1] = sc[t][2] = sc[t][3] = 0.f;
#pragma unroll
    for (int c16 = 0; c16 < KC; c16++) {
#pragma unroll
      for (int t = 0; t < 4; t++) {
        const unsigned short* kp = Ks + (t * 8 + g) * KS + c16 * 16 + 2 * tq;
        mma16816(sc[t], qa[c16], *(const unsigned*)kp, *(const unsigned*)(kp + 8));
      }
    }
    // Mask, scale and the online softmax of rows rr[0] (elements 0, 1) and rr[1] (2, 3).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int t = 0; t < 4; t++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int kt = t * 8 + 2 * tq + (e & 1), h = e >> 1;
        bool ok = kok[kt] && k0 + kt <= rpos[h];
        sc[t][e] = ok ? sc[t][e] * scale : -INFINITY;
        mx[h] = fmaxf(mx[h], sc[t][e]);
      }
    }
    float al[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
      float mn = fmaxf(m[h], mx[h]);
      al[h] = mn == -INFINITY ? 1.f : expf(m[h] - mn);  // 0 while m is -inf
      m[h] = mn;
    }
    float ls[2] = {0.f, 0.f};
#pragma unroll
    for (int t = 0; t < 4; t++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int h = e >> 1;
        float p = sc[t][e] == -INFINITY ? 0.f : expf(sc[t][e] - m[h]);
        sc[t][e] = p;
        ls[h] += p;
      }
    }
#pragma unroll
    for (int h = 0; h < 2; h++) l[h] = l[h] * al[h] + ls[h];  // this thread's columns; summed over the group at the end
#pragma unroll
    for (int t = 0; t < NT; t++) o[t][0] *= al[0], o[t][1] *= al[0], o[t][2] *= al[1], o[t][3] *= al[1];
    // p as A fragments (hi and lo bf16 parts): keys 16kk .. 16kk + 15 are S n-tiles 2kk and 2kk + 1.
#pragma unroll
    for (int kk = 0; kk < 2; kk++) {
      unsigned ph[4], pl[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float* src = sc[2 * kk + (e >> 1)] + 2 * (e & 1);  // a0: t0 c0c1, a1: t0 c2c3, a2: t1 c0c1, a3: t1 c2c3
        __nv_bfloat162 hi = __floats2bfloat162_rn(src[0], src[1]);
        ph[e] = *(unsigned*)&hi;
        pl[e] = packBF16(src[0] - __low2float(hi), src[1] - __high2float(hi));
      }
#pragma unroll
      for (int t = 0; t < NT; t++) {
        const unsigned short* vp = Vs + (kk * 16 + 2 * tq) * KS + t * 8 + g;
        unsigned b0 = (unsigned)vp[0] | ((unsigned)vp[KS] << 16);
        unsigned b1 = (unsigned)vp[8 * KS] | ((unsigned)vp[9 * KS] << 16);
        mma16816(o[t], ph, b0, b1);
        mma16816(o[t], pl, b0, b1);
      }
    }
  }
#pragma unroll
  for (int h = 0; h < 2; h++) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; h++) {
    if (rr[h] >= rows) continue;
    float inv = l[h] > 0.f ? vscale / l[h] : 0.f;
#pragma unroll
    for (int t = 0; t < NT; t++) {
      int c = t * 8 + 2 * tq;
      st(out, odt, ro[h] + c, o[t][2 * h] * inv);
      st(out, odt, ro[h] + c + 1, o[t][2 * h + 1] * inv);
    }
  }
}

extern "C" {

// convert: dst = src, n elements, changing dtype.
__global__ void convert(void* dst, int ddt, const void* src, int sdt, i64 n) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    st(dst, ddt, i, ld(src, sdt, i));
}

// epilogue: c[i, j] = acc[i, j] + bias[j], either input optional (absent
// reads as 0), c [m, n] of cdt, acc f32.
__global__ void epilogue(void* c, int cdt, const float* acc, const void* bias, int bdt, i64 m, int n) {
  i64 total = m * n;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
    float v = acc ? acc[i] : 0.f;
    if (bias) v += ld(bias, bdt, i % n);
    st(c, cdt, i, v);
  }
}

// embed: dst[i] = table[ids[i]], one block per token. Ids outside
// [0, vocab) leave the row unwritten (the host does not check them).
__global__ void embed(void* dst, int ddt, const void* table, int tdt, const int* ids, int vocab, int h) {
  int t = blockIdx.x;
  int id = ids[t];
  if (id < 0 || id >= vocab) return;
  for (int j = threadIdx.x; j < h; j += blockDim.x)
    st(dst, ddt, (i64)t * h + j, ld(table, tdt, (i64)id * h + j));
}

// rmsnorm: one block per row. With res, z = round(rdt, res + x) is stored
// in res and normalized; dst may alias x (each element is read before it
// is written, by the same thread). Rows of at most RMS_PER·blockDim.x
// elements stay in registers between the sum and the scaling (one read of
// x and res); longer rows are read twice.
#define RMS_PER 8
__global__ void rmsnorm(void* dst, int ddt, const void* x, int xdt, void* res, int rdt,
                        const void* w, int wdt, int h, float eps) {
  __shared__ float sh[32];
  i64 base = (i64)blockIdx.x * h;
  float ss = 0.f;
  if (h <= RMS_PER * (int)blockDim.x) {
    float z[RMS_PER];
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
      int j = threadIdx.x + k * blockDim.x;
      z[k] = 0.f;
      if (j < h) {
        z[k] = ld(x, xdt, base + j);
        if (res) z[k] = roundTo(rdt, ld(res, rdt, base + j) + z[k]);
      }
    }
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
      int j = threadIdx.x + k * blockDim.x;
      if (j < h && res) st(res, rdt, base + j, z[k]);
      ss += z[k] * z[k];
    }
    ss = blockSum(ss, sh);
    float inv = rsqrtf(ss / (float)h + eps);
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
      int j = threadIdx.x + k * blockDim.x;
      if (j < h) st(dst, ddt, base + j, z[k] * inv * ld(w, wdt, j));
    }
    return;
  }
  for (int j = threadIdx.x; j < h; j += blockDim.x) {
    float z = ld(x, xdt, base + j);
    if (res) {
      z = roundTo(rdt, ld(res, rdt, base + j) + z);
      st(res, rdt, base + j, z);
    }
    ss += z * z;
  }
  ss = blockSum(ss, sh);
  float inv = rsqrtf(ss / (float)h + eps);
  for (int j = threadIdx.x; j < h; j += blockDim.x) {
    float z = res ? ld(res, rdt, base + j) : ld(x, xdt, base + j);
    st(dst, ddt, base + j, z * inv * ld(w, wdt, j));
  }
}

// rope: rotates x [t, heads, d] in place; one thread per (token, group of
// ROPE_HPT heads, pair i < d/2), so each angle's cos and sin serve
// ROPE_HPT heads. The angle is the float32 product of the position and the
// float32 frequency, as transformers computes it; cos and sin are taken in
// double so large angles keep full accuracy.
#define ROPE_HPT 4
__global__ void rope(void* x, int dt, const int* pos, const float* inv, int heads, int d, int t) {
  int half = d / 2, hg = (heads + ROPE_HPT - 1) / ROPE_HPT;
  i64 n = (i64)t * hg * half;
  for (i64 idx = blockIdx.x * (i64)blockDim.x + threadIdx.x; idx < n; idx += (i64)gridDim.x * blockDim.x) {
    i64 rowg = idx / half;  // (token, head group)
    int i = (int)(idx - rowg * half);
    int tok = (int)(rowg / hg), g = (int)(rowg - (i64)tok * hg);
    float ang = __fmul_rn((float)pos[tok], inv[i]);
    double sn, cs;
    sincos((double)ang, &sn, &cs);
    int h0 = g * ROPE_HPT, h1 = min(heads, h0 + ROPE_HPT);
    i64 o = ((i64)tok * heads + h0) * d + i;
    for (int h = h0; h < h1; h++, o += d) {
      double x1 = ld(x, dt, o), x2 = ld(x, dt, o + half);
      st(x, dt, o, (float)(x1 * cs - x2 * sn));
      st(x, dt, o + half, (float)(x2 * cs + x1 * sn));
    }
  }
}

// siluMul: dst[r, j] = silu(gate[r, j]) * up[r, j]; with up null, gate rows
// are [2n]: gate then up. Grid (ceil(n / (4·blockDim.x)), row blocks): each
// thread loads 4 pairs of a row before it stores, and divides no index.
__global__ void siluMul(void* dst, int ddt, const void* gate, int gdt, const void* up, int udt, i64 rows, int n) {
  const void* u = up ? up : gate;
  int ut = up ? udt : gdt;
  for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
    i64 go = up ? r * n : r * 2 * n, uo = up ? r * n : r * 2 * n + n;
    int j0 = blockIdx.x * blockDim.x * 4 + threadIdx.x;
    float g[4], v[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
      int j = j0 + k * blockDim.x;
      g[k] = v[k] = 0.f;
      if (j < n) g[k] = ld(gate, gdt, go + j), v[k] = ld(u, ut, uo + j);
    }
#pragma unroll
    for (int k = 0; k < 4; k++) {
      int j = j0 + k * blockDim.x;
      if (j < n) st(dst, ddt, r * n + j, g[k] / (1.f + expf(-g[k])) * v[k]);
    }
  }
}

// add: dst = a + b elementwise.
__global__ void add(void* dst, int ddt, const void* a, int adt, const void* b, int bdt, i64 n) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    st(dst, ddt, i, ld(a, adt, i) + ld(b, bdt, i));
}

// softmax: one block per row; dst may alias x.
__global__ void softmax(void* dst, int ddt, const void* x, int xdt, int n) {
  __shared__ float sh[32];
  i64 base = (i64)blockIdx.x * n;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, ld(x, xdt, base + j));
  m = blockMax(m, sh);
  float s = 0.f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) s += expf(ld(x, xdt, base + j) - m);
  s = blockSum(s, sh);
  float inv = 1.f / s;
  for (int j = threadIdx.x; j < n; j += blockDim.x) st(dst, ddt, base + j, expf(ld(x, xdt, base + j) - m) * inv);
}

// better reports whether (v, i) beats (bv, bi): NaN is the largest value,
// ties go to the lower index.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  bool vn = isnan(v), bn = isnan(bv);
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

// argmax: one block per row.
__global__ void argmax(int* dst, const void* x, int xdt, int n) {
  __shared__ float sv[32];
  __shared__ int si[32];
  i64 base = (i64)blockIdx.x * n;
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float v = ld(x, xdt, base + j);
    if (better(v, j, bv, bi)) bv = v, bi = j;
  }
  for (int o = 16; o > 0; o >>= 1) {
    float v = __shfl_xor_sync(0xffffffffu, bv, o);
    int i = __shfl_xor_sync(0xffffffffu, bi, o);
    if (better(v, i, bv, bi)) bv = v, bi = i;
  }
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) sv[w] = bv, si[w] = bi;
  __syncthreads();
  if (w == 0) {
    bv = lane < nw ? sv[lane] : -INFINITY;
    bi = lane < nw ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
      float v = __shfl_xor_sync(0xffffffffu, bv, o);
      int i = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(v, i, bv, bi)) bv = v, bi = i;
    }
    if (lane == 0) dst[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
  }
}

// writeKV: token t's k and v rows (kvHeads·d) go to slot slots[t] of the
// caches; a negative slot, or one past the cache, is skipped. An F8E4M3
// cache stores k / ks and v / vs (stc).
__global__ void writeKV(void* kc, void* vc, int cdt, const void* k, int kdt, const void* v, int vdt,
                        const int* slots, i64 nslots, int row, float ks, float vs) {
  int t = blockIdx.x;
  int s = slots[t];
  if (s < 0 || s >= nslots) return;
  for (int j = threadIdx.x; j < row; j += blockDim.x) {
    stc(kc, cdt, (i64)s * row + j, ld(k, kdt, (i64)t * row + j), ks);
    stc(vc, cdt, (i64)s * row + j, ld(v, vdt, (i64)t * row + j), vs);
  }
}

#define ATTN_WARPS 4
#define ATTN_MAXR 8  // head size up to 32·8 = 256

// dotK is q·k over d elements: q in shared memory (f32, already scaled), k
// at element ko of the cache. With vec (a 2-byte cache, d a multiple of 8,
// 16-byte aligned rows) k is read 8 elements per load.
__device__ __forceinline__ float dotK(const void* kc, int cdt, i64 ko, const float* sq, int d, int vec) {
  float s = 0.f;
  if (vec) {
    const uint4* kp = (const uint4*)((const unsigned short*)kc + ko);
    for (int j = 0; j < d / 8; j++) {
      uint4 u = kp[j];
      unsigned int w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float lo, hi;
        if (cdt == BF16) {
          lo = __uint_as_float(w[e] << 16);
          hi = __uint_as_float(w[e] & 0xffff0000u);
        } else {
          lo = __half2float(__ushort_as_half((unsigned short)(w[e] & 0xffffu)));
          hi = __half2float(__ushort_as_half((unsigned short)(w[e] >> 16)));
        }
        s += sq[8 * j + 2 * e] * lo;
        s += sq[8 * j + 2 * e + 1] * hi;
      }
    }
    return s;
  }
  for (int j = 0; j < d; j++) s += sq[j] * ldc(kc, cdt, ko + j);
  return s;
}

// attention: one block per (query row i of sequence s, head h): grid
// (maxQueryLen, heads, seqs). Each warp takes chunks of 32 context
// positions: lane L scores position c0+L on its own, the warp updates one
// online softmax per chunk, then accumulates the chunk's values with lanes
// splitting the head dimension (coalesced rows of v). The warps' states are
// merged at the end. Block table entries outside [0, blocks) are skipped
// (the host does not check them).
__global__ void __launch_bounds__(ATTN_WARPS * 32) attention(
    void* out, int odt, const void* q, int qdt, const void* kc, const void* vc, int cdt,
    const int* tables, const int* ctxLens, const int* starts, int maxBlocks, int blocks, int bs,
    int heads, int kvHeads, int d, float scale, int vec, float vscale) {
  __shared__ float sq[32 * ATTN_MAXR];
  __shared__ float sm[ATTN_WARPS], sl[ATTN_WARPS];
  __shared__ float sacc[ATTN_WARPS][32 * ATTN_MAXR];
  if (cdt == F8E4M3) vec = 0;  // vec reads 2-byte elements
  int i = blockIdx.x, h = blockIdx.y, s = blockIdx.z;
  int q0 = starts[s], n = starts[s + 1] - q0;
  if (i >= n) return;  // the whole block
  int ctx = ctxLens[s];
  int pos = ctx - n + i;
  int kh = h / (heads / kvHeads);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  i64 qo = ((i64)(q0 + i) * heads + h) * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) sq[j] = ld(q, qdt, qo + j) * scale;
  __syncthreads();
  float acc[ATTN_MAXR];
#pragma unroll
  for (int r = 0; r < ATTN_MAXR; r++) acc[r] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int* table = tables + (i64)s * maxBlocks;
  i64 row = (i64)kvHeads * d;
  for (int c0 = w * 32; c0 <= pos; c0 += ATTN_WARPS * 32) {
    int p = c0 + lane;
    i64 ko = -1;
    float sc = -INFINITY;
    if (p <= pos) {
      int blk = table[p / bs];
      if (blk >= 0 && blk < blocks) {
        ko = ((i64)blk * bs + p % bs) * row + (i64)kh * d;
        sc = dotK(kc, cdt, ko, sq, d, vec);
      }
    }
    float mc = warpMax(sc);
    if (mc == -INFINITY) continue;  // uniform across the warp
    float mn = fmaxf(m, mc);
    float a = expf(m - mn);
    float e = sc == -INFINITY ? 0.f : expf(sc - mn);
    l = l * a + warpSum(e);
#pragma unroll
    for (int r = 0; r < ATTN_MAXR; r++) acc[r] *= a;
    int cnt = min(32, pos - c0 + 1);
    for (int k = 0; k < cnt; k++) {
      float pk = __shfl_sync(0xffffffffu, e, k);
      i64 kok = __shfl_sync(0xffffffffu, ko, k);
      if (kok < 0) continue;
#pragma unroll
      for (int r = 0; r < ATTN_MAXR; r++) {
        int j = lane + 32 * r;
        if (j < d) acc[r] += pk * ldc(vc, cdt, kok + j);
      }
    }
    m = mn;
  }
  if (lane == 0) sm[w] = m, sl[w] = l;
#pragma unroll
  for (int r = 0; r < ATTN_MAXR; r++) sacc[w][lane + 32 * r] = acc[r];
  __syncthreads();
  float M = -INFINITY;
  for (int k = 0; k < ATTN_WARPS; k++) M = fmaxf(M, sm[k]);
  float L = 0.f;
  for (int k = 0; k < ATTN_WARPS; k++) L += sm[k] == -INFINITY ? 0.f : sl[k] * expf(sm[k] - M);
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float o = 0.f;
    for (int k = 0; k < ATTN_WARPS; k++)
      if (sm[k] != -INFINITY) o += sacc[k][j] * expf(sm[k] - M);
    st(out, odt, qo + j, o / L * vscale);
  }
}

#define GQA_MAXG 8  // query heads per kv head
#define GQA_MAXR 4  // head size up to 32·4 = 128

// attentionGQA is attention with one block per (query row i of sequence s,
// kv head kh): grid (maxQueryLen, kvHeads, seqs). It serves the G = heads /
// kvHeads query heads of the group at once (G ≤ GQA_MAXG, d ≤ 32·GQA_MAXR),
// so each key and value row is read once for the group instead of G times.
// As in attention, lane L of a warp scores position c0+L (against all G
// queries), the warp keeps one online softmax per head, and accumulates
// values with lanes splitting the head dimension.
__global__ void __launch_bounds__(ATTN_WARPS * 32) attentionGQA(
    void* out, int odt, const void* q, int qdt, const void* kc, const void* vc, int cdt,
    const int* tables, const int* ctxLens, const int* starts, int maxBlocks, int blocks, int bs,
    int heads, int kvHeads, int d, float scale, int vec, float vscale) {
  __shared__ float sq[GQA_MAXG * 32 * GQA_MAXR];
  __shared__ float sm[ATTN_WARPS][GQA_MAXG], sl[ATTN_WARPS][GQA_MAXG];
  __shared__ float sacc[ATTN_WARPS][GQA_MAXG][32 * GQA_MAXR];
  if (cdt == F8E4M3) vec = 0;  // vec reads 2-byte elements
  int i = blockIdx.x, kh = blockIdx.y, s = blockIdx.z;
  int q0 = starts[s], n = starts[s + 1] - q0;
  if (i >= n) return;  // the whole block
  int ctx = ctxLens[s];
  int pos = ctx - n + i;
  int G = heads / kvHeads;
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  i64 qo = ((i64)(q0 + i) * heads + (i64)kh * G) * d;  // the group's heads are contiguous
  for (int j = threadIdx.x; j < G * d; j += blockDim.x) sq[j] = ld(q, qdt, qo + j) * scale;
  __syncthreads();
  float acc[GQA_MAXG][GQA_MAXR], m[GQA_MAXG], l[GQA_MAXG];
#pragma unroll
  for (int g = 0; g < GQA_MAXG; g++) {
    m[g] = -INFINITY, l[g] = 0.f;
#pragma unroll
    for (int r = 0; r < GQA_MAXR; r++) acc[g][r] = 0.f;
  }
  const int* table = tables + (i64)s * maxBlocks;
  i64 row = (i64)kvHeads * d;
  for (int c0 = w * 32; c0 <= pos; c0 += ATTN_WARPS * 32) {
    int p = c0 + lane;
    i64 ko = -1;
    float sc[GQA_MAXG];
#pragma unroll
    for (int g = 0; g < GQA_MAXG; g++) sc[g] = 0.f;
    if (p <= pos) {
      int blk = table[p / bs];
      if (blk >= 0 && blk < blocks) {
        ko = ((i64)blk * bs + p % bs) * row + (i64)kh * d;
        if (vec) {
          const uint4* kp = (const uint4*)((const unsigned short*)kc + ko);
          for (int j = 0; j < d / 8; j++) {
            uint4 u = kp[j];
            unsigned int wd[4] = {u.x, u.y, u.z, u.w};
            float kv[8];
#pragma unroll
            for (int e = 0; e < 4; e++) {
              if (cdt == BF16) {
                kv[2 * e] = __uint_as_float(wd[e] << 16);
                kv[2 * e + 1] = __uint_as_float(wd[e] & 0xffff0000u);
              } else {
                kv[2 * e] = __half2float(__ushort_as_half((unsigned short)(wd[e] & 0xffffu)));
                kv[2 * e + 1] = __half2float(__ushort_as_half((unsigned short)(wd[e] >> 16)));
              }
            }
#pragma unroll
            for (int g = 0; g < GQA_MAXG; g++) {
              if (g < G) {
                const float* qg = sq + g * d + 8 * j;
#pragma unroll
                for (int e = 0; e < 8; e++) sc[g] += qg[e] * kv[e];
              }
            }
          }
        } else {
          for (int j = 0; j < d; j++) {
            float kj = ldc(kc, cdt, ko + j);
#pragma unroll
            for (int g = 0; g < GQA_MAXG; g++)
              if (g < G) sc[g] += sq[g * d + j] * kj;
          }
        }
      }
    }
    if (!__any_sync(0xffffffffu, ko >= 0)) continue;  // uniform across the warp
    float e[GQA_MAXG];
#pragma unroll
    for (int g = 0; g < GQA_MAXG; g++) {
      e[g] = 0.f;
      if (g < G) {
        float v = ko >= 0 ? sc[g] : -INFINITY;
        float mn = fmaxf(m[g], warpMax(v));
        float a = expf(m[g] - mn);
        e[g] = ko >= 0 ? expf(v - mn) : 0.f;
        l[g] = l[g] * a + warpSum(e[g]);
#pragma unroll
        for (int r = 0; r < GQA_MAXR; r++) acc[g][r] *= a;
        m[g] = mn;
      }
    }
    int cnt = min(32, pos - c0 + 1);
    for (int k = 0; k < cnt; k++) {
      i64 kok = __shfl_sync(0xffffffffu, ko, k);
      float pk[GQA_MAXG];
#pragma unroll
      for (int g = 0; g < GQA_MAXG; g++) pk[g] = g < G ? __shfl_sync(0xffffffffu, e[g], k) : 0.f;
      if (kok < 0) continue;
#pragma unroll
      for (int r = 0; r < GQA_MAXR; r++) {
        int j = lane + 32 * r;
        if (j < d) {
          float vj = ldc(vc, cdt, kok + j);
#pragma unroll
          for (int g = 0; g < GQA_MAXG; g++)
            if (g < G) acc[g][r] += pk[g] * vj;
        }
      }
    }
  }
#pragma unroll
  for (int g = 0; g < GQA_MAXG; g++) {
    if (g < G) {
      if (lane == 0) sm[w][g] = m[g], sl[w][g] = l[g];
#pragma unroll
      for (int r = 0; r < GQA_MAXR; r++) sacc[w][g][lane + 32 * r] = acc[g][r];
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * d; idx += blockDim.x) {
    int g = idx / d, j = idx - g * d;
    float M = -INFINITY;
    for (int k = 0; k < ATTN_WARPS; k++) M = fmaxf(M, sm[k][g]);
    float L = 0.f, o = 0.f;
    for (int k = 0; k < ATTN_WARPS; k++) {
      if (sm[k][g] == -INFINITY) continue;
      float f = expf(sm[k][g] - M);
      L += sl[k][g] * f;
      o += sacc[k][g][j] * f;
    }
    st(out, odt, qo + idx, o / L * vscale);
  }
}

// attentionPrefill: the tiled prefill kernel above, with attentionGQA's
// arguments (vec is unused) plus minRows: sequences with fewer query rows
// are skipped (2 when attentionSplit serves a mixed batch's decode rows,
// else 1). heads / kvHeads ≤ 8 and d ≤ 128.
__global__ void __launch_bounds__(PF_THREADS) attentionPrefill(
    void* out, int odt, const void* q, int qdt, const void* kc, const void* vc, int cdt,
    const int* tables, const int* ctxLens, const int* starts, int maxBlocks, int blocks, int bs,
    int heads, int kvHeads, int d, float scale, int vec, int minRows, float vscale) {
  __shared__ __align__(16) float smem[PF_SMEM];
  __shared__ i64 koff[PF_KT];
  if (d <= 64)
    prefillTile<16, 2>(smem, koff, out, odt, q, qdt, kc, vc, cdt, tables, ctxLens, starts, maxBlocks, blocks, bs,
                       heads, kvHeads, d, scale, minRows, vscale);
  else
    prefillTile<8, 4>(smem, koff, out, odt, q, qdt, kc, vc, cdt, tables, ctxLens, starts, maxBlocks, blocks, bs,
                      heads, kvHeads, d, scale, minRows, vscale);
}

// attentionSplit: the split-context decode kernel above for d ≤ 64, with
// attentionGQA's arguments plus part (null with one split) and chunk (keys
// per split); attentionSplit128 for 64 < d ≤ 128 (twice the registers for
// the accumulators and chunks in flight, so fewer blocks per SM). heads /
// kvHeads ≤ 8; it serves the sequences with exactly one query row (a
// decode batch, or the decode rows of a mixed one). Shared memory: dynamic, 4·(R·d4 + 2·SP_KT·KS + R·SP_PS) bytes,
// R = 4 for G ≤ 4, else 8.
#define SPLIT_ARGS                                                                                                 \
  void *out, int odt, const void *q, int qdt, const void *kc, const void *vc, int cdt, const int *tables,          \
      const int *ctxLens, const int *starts, int maxBlocks, int blocks, int bs, int heads, int kvHeads, int d, \
      float scale, int vec, float *part, int chunk, int pipe, float vscale
#define SPLIT_PASS \
  dsm, out, odt, part, q, qdt, kc, vc, cdt, tables, ctxLens, starts, maxBlocks, blocks, bs, heads, kvHeads, d, scale, vec, chunk, vscale
#define SPLIT_RAW \
  dsm, out, odt, part, q, qdt, kc, vc, cdt, tables, ctxLens, starts, maxBlocks, blocks, bs, heads, kvHeads, d, scale, chunk, vscale
__global__ void __launch_bounds__(SP_THREADS, 6) attentionSplit(SPLIT_ARGS) {
  extern __shared__ __align__(16) float dsm[];
  bool g4 = heads / kvHeads <= 4;
  if (vec && pipe && cdt != F8E4M3) {  // cp.async copies 2-byte elements as stored
    if (g4)
      splitTileRaw<1, 2, true>(SPLIT_RAW);
    else
      splitTileRaw<2, 2, true>(SPLIT_RAW);
  } else if (vec) {
    if (g4)
      splitTileRaw<1, 2, false>(SPLIT_RAW);
    else
      splitTileRaw<2, 2, false>(SPLIT_RAW);
  } else {
    if (g4)
      splitTile<1, 2>(SPLIT_PASS);
    else
      splitTile<2, 2>(SPLIT_PASS);
  }
}

__global__ void __launch_bounds__(SP_THREADS, 4) attentionSplit128(SPLIT_ARGS) {
  extern __shared__ __align__(16) float dsm[];
  bool g4 = heads / kvHeads <= 4;
  if (vec) {
    if (g4)
      splitTileRaw<1, 4, false>(SPLIT_RAW);
    else
      splitTileRaw<2, 4, false>(SPLIT_RAW);
  } else {
    if (g4)
      splitTile<1, 4>(SPLIT_PASS);
    else
      splitTile<2, 4>(SPLIT_PASS);
  }
}

// attentionMerge combines attentionSplit's partial states: one warp per
// (sequence, head), 4 per block; lanes split the head dimension. A
// sequence's query row seeing L keys has min(splits, ceil(L / chunk))
// splits (at least 1); a row that saw no key gets zeros. Sequences without
// exactly one query row are skipped, as in attentionSplit.
__global__ void attentionMerge(void* out, int odt, const float* part, const int* ctxLens, const int* starts,
                               int seqs, int heads, int d, int splits, int chunk) {
  int wid = blockIdx.x * 4 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (wid >= seqs * heads) return;
  int s = wid / heads, h = wid - s * heads;
  int q0 = starts[s], n = starts[s + 1] - q0;
  if (n != 1) return;
  int L = ctxLens[s];
  int ns = L <= 0 ? 1 : min(splits, (L + chunk - 1) / chunk);
  i64 N = (i64)seqs * heads * splits;
  const float* pm = part + (i64)wid * splits;
  const float* pl = pm + N;
  const float* pa = part + 2 * N + (i64)wid * splits * d;
  float M = -INFINITY;
  for (int k = lane; k < ns; k += 32) M = fmaxf(M, pm[k]);
  M = warpMax(M);
  float S = 0.f;
  for (int k = lane; k < ns; k += 32)
    if (pm[k] != -INFINITY) S += pl[k] * expf(pm[k] - M);
  S = warpSum(S);
  float inv = S > 0.f ? 1.f / S : 0.f;
  i64 o = ((i64)q0 * heads + h) * d;
  for (int c = lane; c < d; c += 32) {
    float x = 0.f;
    for (int k = 0; k < ns; k++) {
      float mk = pm[k];
      if (mk != -INFINITY) x += pa[(i64)k * d + c] * expf(mk - M);
    }
    st(out, odt, o + c, x * inv);
  }
}

// attentionPrefillMMA: the tensor-core prefill kernel above, with
// attentionPrefill's arguments; bf16 q and out, bf16 or FP8 caches (8-byte
// chunks widened to bf16 exactly), d = 64 or 128, heads / kvHeads ≤ 8,
// 16-byte aligned cache rows.
__global__ void __launch_bounds__(128) attentionPrefillMMA(
    void* out, int odt, const void* q, int qdt, const void* kc, const void* vc, int cdt,
    const int* tables, const int* ctxLens, const int* starts, int maxBlocks, int blocks, int bs,
    int heads, int kvHeads, int d, float scale, int vec, int minRows, float vscale) {
  __shared__ __align__(16) unsigned short sm[2 * MMA_KT * (128 + 8)];
  __shared__ int kok[MMA_KT];
  if (d == 64)
    prefillMMA<64>(sm, kok, out, odt, q, kc, vc, cdt, tables, ctxLens, starts, maxBlocks, blocks, bs, heads, kvHeads,
                   scale, minRows, vscale);
  else
    prefillMMA<128>(sm, kok, out, odt, q, kc, vc, cdt, tables, ctxLens, starts, maxBlocks, blocks, bs, heads, kvHeads,
                    scale, minRows, vscale);
}

}  // extern "C"


// ---- Sampling (sample) ----
//
// One block per row (gpu.Ops.Sample): the row's edits (min_tokens masks and
// penalties) are written into the logits, then a greedy row takes its
// argmax; any other follows infer's host sampler with y = x · (1/T) rounded
// to float32: min_p, top_k, top_p, then an inverse-CDF draw over the ids in
// order with the row's uniform. Probabilities are exp(y − max) · (1/Z) in
// float64 (the host divides by Z: the two differ by an ulp at most); the
// order of the sums differs from the host's too, and it is fixed (per
// thread, then a fixed tree), so a row draws the same token on every run.
//
// No sort: min_p is a value threshold, found by bisecting the probability
// formula on one thread; top_k and top_p are thresholds on the
// order-preserving uint32 key of y, found by a search that tests
// SAMP_WAYS − 1 thresholds per pass over the row (4 bits of the key per
// pass, at most 8 passes): the largest key K whose weight below it, W(<K),
// is at most T (top_k: counts, masked elements as -inf, T = n − k; top_p:
// probabilities, T = 1 − p). top_k's search ends early: once at most
// SAMP_CAP elements are left in the range, one more pass gathers their keys
// into shared memory and the kth is selected there; top_p's search, once
// its range spans fewer than SAMP_SPAN keys, gathers the range's elements
// (if at most SAMP_CAP) and finishes the cumulative sum in the host's order
// there (ties included). top_p's ties at K are cut by id, the larger
// ids first, as the host's sort orders them. The draw: each warp sums the
// probabilities of its segment of whole 32-element tiles (a warp scan per
// tile, carried along, with a checkpoint every few tiles), the warps'
// totals are added in order, and the warp whose segment the uniform falls
// in walks it again from the checkpoint before the crossing.
#define SAMP_THREADS 256
#define SAMP_ILP 4                 // loads in flight per thread
#define SAMP_WAYS 16
#define SAMP_WORDS 16              // gpu.SampleRowWords
#define SAMP_NINF_KEY 0x007fffffu  // skey(-inf)
#define SAMP_CKS 64                // draw checkpoints per warp
#define SAMP_CAP 1024              // keys sampSelect and sampTopP gather
#define SAMP_SPAN (1u << 16)       // key span below which top_p tries sampTopP

// skey maps floats to uint32 in the same order (-0 as +0).
__device__ __forceinline__ unsigned skey(float v) {
  unsigned b = __float_as_uint(v);
  if (b == 0x80000000u) b = 0u;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float skeyf(unsigned k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// sampFor calls f(x[j], j) for the thread's elements j = tid + i·blockDim,
// in increasing j, with SAMP_ILP loads issued before their use.
template <class F>
__device__ __forceinline__ void sampFor(const float* row, int n, F f) {
  const int nt = blockDim.x;
  for (int base = threadIdx.x; base < n; base += nt * SAMP_ILP) {
    float v[SAMP_ILP];
#pragma unroll
    for (int u = 0; u < SAMP_ILP; u++) {
      int j = base + u * nt;
      v[u] = j < n ? row[j] : 0.f;
    }
#pragma unroll
    for (int u = 0; u < SAMP_ILP; u++) {
      int j = base + u * nt;
      if (j < n) f(v[u], j);
    }
  }
}

// blockSums sums each v[j] over the block in a fixed order; every thread
// gets the sums. sh holds 32·N values.
template <typename T, int N>
__device__ __forceinline__ void blockSums(T (&v)[N], T* sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
  for (int j = 0; j < N; j++) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v[j] += __shfl_xor_sync(0xffffffffu, v[j], o);
  }
  __syncthreads();  // sh may still be read by a previous call
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < N; j++) sh[w * N + j] = v[j];
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < N; j++) {
    T s = 0;
    for (int k = 0; k < nw; k++) s += sh[k * N + j];
    v[j] = s;
  }
}

// warpScanD is the inclusive prefix sum of v over the warp's lanes.
__device__ __forceinline__ double warpScanD(double v) {
  int lane = threadIdx.x & 31;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    double t = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += t;
  }
  return v;
}

// sampSelect returns the r-th smallest (from 0) of the keys in [lo, hi]
// of the row (keys below low count as -inf), of which there are at most
// SAMP_CAP and more than r, gathered into shared memory in one pass.
__device__ __noinline__ unsigned sampSelect(const float* row, int n, float inv, unsigned low, unsigned lo,
                                            unsigned hi, int r) {
  __shared__ unsigned cand[SAMP_CAP];
  __shared__ int ncand;
  __shared__ unsigned ans;
  __syncthreads();
  if (threadIdx.x == 0) ncand = 0, ans = hi;
  __syncthreads();
  sampFor(row, n, [&](float x, int) {
    unsigned k = skey(__fmul_rn(x, inv));
    if (k < low) k = SAMP_NINF_KEY;
    if (k >= lo && k <= hi) {
      int s = atomicAdd(&ncand, 1);
      if (s < SAMP_CAP) cand[s] = k;
    }
  });
  __syncthreads();
  int c = min(ncand, SAMP_CAP);
  for (int i = threadIdx.x; i < c; i += blockDim.x) {
    unsigned ki = cand[i];
    int lt = 0, le = 0;
    for (int j = 0; j < c; j++) {
      unsigned kj = cand[j];
      lt += kj < ki;
      le += kj <= ki;
    }
    if (lt <= r && r < le) ans = ki;  // tied writers write the same key
  }
  __syncthreads();
  return ans;
}

// sampTopP finishes top_p's search in shared memory: it gathers the kept
// elements with keys in [lo, hi] (at most SAMP_CAP, else it returns -1),
// orders them as the host's sort does (key ascending, the larger id first)
// and adds their probabilities in that order to wl = W(<lo) until the sum
// passes T: that element is the first kept one, at key *pk with the ids
// below *pc kept. Returns the number gathered.
__device__ __noinline__ int sampTopP(const float* row, int n, float inv, double dmx, double iz, unsigned low,
                                     unsigned lo, unsigned hi, double wl, double T, unsigned* pk, int* pc) {
  __shared__ unsigned gk[SAMP_CAP];
  __shared__ int gi[SAMP_CAP], ord[SAMP_CAP];
  __shared__ double gq[SAMP_CAP];
  __shared__ int ng, rc;
  __shared__ unsigned rk;
  __syncthreads();
  if (threadIdx.x == 0) ng = 0;
  __syncthreads();
  sampFor(row, n, [&](float x, int j) {
    unsigned k = skey(__fmul_rn(x, inv));
    if (k >= low && k >= lo && k <= hi) {
      int s = atomicAdd(&ng, 1);
      if (s < SAMP_CAP) gk[s] = k, gi[s] = j;
    }
  });
  __syncthreads();
  int c = ng;
  if (c > SAMP_CAP || c == 0) return -1;
  for (int i = threadIdx.x; i < c; i += blockDim.x) {
    unsigned ki = gk[i];
    int ii = gi[i], rank = 0;
    for (int j = 0; j < c; j++) {
      unsigned kj = gk[j];
      rank += kj < ki || (kj == ki && gi[j] > ii);
    }
    ord[rank] = i;
    gq[rank] = exp((double)skeyf(ki) - dmx) * iz;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double cum = wl;
    int at = c - 1;  // rounding kept the sum within T: keep the largest
    for (int q = 0; q < c; q++) {
      cum += gq[q];
      if (cum > T) {
        at = q;
        break;
      }
    }
    rk = gk[ord[at]], rc = gi[ord[at]] + 1;
  }
  __syncthreads();
  *pk = rk;
  *pc = rc;
  return c;
}

template <bool PROB>
struct SampW {
  typedef double T;
};
template <>
struct SampW<false> {
  typedef int T;
};

// sampSearch returns the largest key K in [lo, hi] with W(<K) ≤ T, given
// W(<lo) = 0: W sums, over the row's elements, 1 (PROB false; keys below
// low count as -inf) or exp(y − mx) · iz for keys ≥ low (PROB true). *wlo
// gets W(<K).
template <bool PROB>
__device__ __forceinline__ unsigned sampSearch(const float* row, int n, float inv, double dmx, double iz,
                                               unsigned low, unsigned lo, unsigned hi, double T, double* wlo,
                                               int* pc, double* sh) {
  typedef typename SampW<PROB>::T W;
  double wl = 0, wh = n;  // W(<lo), and W(<hi + 1) for counts
  bool tried = false;
  while (lo < hi) {
    if constexpr (PROB) {
      // A narrow range holds few elements, as a rule: finish in shared
      // memory, in the host's order (pc set), if they fit.
      if (!tried && hi - lo < SAMP_SPAN) {
        tried = true;
        unsigned k;
        if (sampTopP(row, n, inv, dmx, iz, low, lo, hi, wl, T, &k, pc) >= 0) {
          *wlo = wl;
          return k;
        }
      }
    }
    if constexpr (!PROB) {
      // Few elements left in [lo, hi]: gather their keys and take the
      // (T − W(<lo))-th smallest, instead of more passes over the row.
      if (wh - wl <= SAMP_CAP) {
        *wlo = 0;
        return sampSelect(row, n, inv, low, lo, hi, (int)(T - wl));
      }
    }
    unsigned long long span = (unsigned long long)(hi - lo) + 1, end = (unsigned long long)hi + 1;
    unsigned t[SAMP_WAYS - 1];
    W acc[SAMP_WAYS - 1];
#pragma unroll
    for (int j = 0; j < SAMP_WAYS - 1; j++) {
      t[j] = lo + (unsigned)(span * (j + 1) / SAMP_WAYS);
      acc[j] = 0;
    }
    sampFor(row, n, [&](float x, int) {
      float y = __fmul_rn(x, inv);
      unsigned k = skey(y);
      W w = 1;
      if constexpr (PROB) {
        if (k < low) return;
        w = exp((double)y - dmx) * iz;
      } else {
        if (k < low) k = SAMP_NINF_KEY;
      }
#pragma unroll
      for (int j = 0; j < SAMP_WAYS - 1; j++) acc[j] += k < t[j] ? w : (W)0;
    });
    blockSums<W, SAMP_WAYS - 1>(acc, (W*)sh);
    // acc is non-decreasing in j: the thresholds within T are a prefix.
    unsigned nlo = lo;
    unsigned long long nhi = end;
#pragma unroll
    for (int j = 0; j < SAMP_WAYS - 1; j++) {
      if ((double)acc[j] <= T) {
        nlo = t[j];
        wl = (double)acc[j];
      } else if (nhi == end) {
        nhi = t[j];
        wh = (double)acc[j];
      }
    }
    lo = nlo;
    hi = (unsigned)(nhi - 1);
  }
  *wlo = wl;
  return lo;
}

// sampKept: element j (key k) survives min_p, top_k (k ≥ low) and top_p
// (above pk, or at pk with an id below pc).
__device__ __forceinline__ bool sampKept(unsigned k, int j, unsigned low, unsigned pk, int pc) {
  return k >= low && (k > pk || (k == pk && j < pc));
}

__device__ __forceinline__ double sampSum(const float* row, int n, float inv, double dmx, unsigned low,
                                          unsigned pk, int pc, double* sh) {
  double s[1] = {0};
  sampFor(row, n, [&](float x, int j) {
    float y = __fmul_rn(x, inv);
    if (sampKept(skey(y), j, low, pk, pc)) s[0] += exp((double)y - dmx);
  });
  blockSums<double, 1>(s, sh);
  return s[0];
}

extern "C" __global__ void __launch_bounds__(SAMP_THREADS, 2)
    sample(int* dst, float* x, int n, const int* params, const int* edits, int nEdits) {
  __shared__ double sh[32 * (SAMP_WAYS - 1)];
  __shared__ double ck[SAMP_THREADS / 32][SAMP_CKS];
  __shared__ double segSum[SAMP_THREADS / 32];
  __shared__ int segLast[SAMP_THREADS / 32];
  __shared__ float shf[32];
  __shared__ int shi[2];
  const int r = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
  const int lane = tid & 31, w = tid >> 5, nw = nt >> 5;
  const int* P = params + (i64)r * SAMP_WORDS;
  float* row = x + (i64)r * n;
  float inv = __int_as_float(P[0]);
  int topK = P[1];
  double topP = __hiloint2double(P[3], P[2]), minP = __hiloint2double(P[5], P[4]);
  double u = __hiloint2double(P[7], P[6]);
  float rep = __int_as_float(P[8]), fq = __int_as_float(P[9]), pr = __int_as_float(P[10]);
  int e0 = max(P[11], 0), e1 = min(P[12], nEdits);
  for (int e = e0 + tid; e < e1; e += nt) {
    int t = edits[3 * e], c = edits[3 * e + 1], f = edits[3 * e + 2];
    if (t < 0 || t >= n) continue;
    float v = row[t];
    if (f & 1) v = -INFINITY;
    if (f & 2) v = v > 0.f ? __fdiv_rn(v, rep) : __fmul_rn(v, rep);
    if (c > 0) v = __fsub_rn(v, __fadd_rn(__fmul_rn(fq, __int2float_rn(c)), pr));
    row[t] = v;
  }
  __syncthreads();  // the edits are visible to the whole block

  if (inv == 0.f) {  // greedy: the first largest
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    sampFor(row, n, [&](float v, int j) {
      if (better(v, j, bv, bi)) bv = v, bi = j;
    });
    for (int o = 16; o > 0; o >>= 1) {
      float v = __shfl_xor_sync(0xffffffffu, bv, o);
      int i = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(v, i, bv, bi)) bv = v, bi = i;
    }
    if (lane == 0) shf[w] = bv, segLast[w] = bi;
    __syncthreads();
    if (w == 0) {
      bv = lane < nw ? shf[lane] : -INFINITY;
      bi = lane < nw ? segLast[lane] : 0x7fffffff;
      for (int o = 16; o > 0; o >>= 1) {
        float v = __shfl_xor_sync(0xffffffffu, bv, o);
        int i = __shfl_xor_sync(0xffffffffu, bi, o);
        if (better(v, i, bv, bi)) bv = v, bi = i;
      }
      if (lane == 0) dst[r] = bi == 0x7fffffff ? 0 : bi;
    }
    return;
  }

  float mx = -INFINITY, mn = INFINITY;
  sampFor(row, n, [&](float v, int) {
    float y = __fmul_rn(v, inv);
    mx = fmaxf(mx, y);
    if (y > -INFINITY) mn = fminf(mn, y);
  });
  mx = blockMax(mx, shf);
  mn = -blockMax(-mn, shf);
  if (!(mx > -INFINITY)) {  // every logit masked: the host's NaN sums end on the last id
    if (tid == 0) dst[r] = n - 1;
    return;
  }
  const double dmx = mx;
  unsigned low = SAMP_NINF_KEY, pk = 0, kmx = skey(mx), kmn = skey(mn);
  int pc = n;
  double Z = sampSum(row, n, inv, dmx, low, pk, pc, sh);
  bool stale = false;  // Z no longer sums the kept elements

  if (minP > 0) {  // the smallest key whose probability is at least max · minP
    if (tid == 0) {
      double cut = (1.0 / Z) * minP;
      unsigned lo = SAMP_NINF_KEY, hi = kmx;
      while (hi - lo > 1) {
        unsigned mid = lo + (hi - lo) / 2;
        if (exp((double)skeyf(mid) - dmx) / Z >= cut)
          hi = mid;
        else
          lo = mid;
      }
      shi[0] = (int)hi;
    }
    __syncthreads();
    low = (unsigned)shi[0];
    __syncthreads();
    stale = low > kmn;
  }
  if (topK > 0 && topK < n) {  // the kth largest key, masked ones as -inf
    double wk;
    int unused = -1;
    unsigned K = sampSearch<false>(row, n, inv, dmx, 0, low, SAMP_NINF_KEY, kmx, (double)(n - topK), &wk, &unused, sh);
    if (K > low) {
      low = K;
      stale = stale || K > kmn;
    }
  }
  if (topP < 1) {
    if (stale) Z = sampSum(row, n, inv, dmx, low, pk, pc, sh);
    double T = 1.0 - topP, L;
    unsigned lo = max(low, kmn);
    int gpc = -1;  // set when the search ended in shared memory
    unsigned K = sampSearch<true>(row, n, inv, dmx, 1.0 / Z, low, lo, kmx, T, &L, &gpc, sh);
    // m members of the group at K, the largest ids first, keep the
    // cumulative sum within T; at least one stays.
    double q = exp((double)skeyf(K) - dmx) * (1.0 / Z);
    long long m = 0;
    if (gpc >= 0) {
      pc = gpc;
    } else if (q > 0 && T - L >= 0) {
      double est = floor((T - L) / q);
      m = est > (double)n ? (long long)n : (long long)est;
      while (m > 0 && L + (double)m * q > T) m--;
      while (m < n && L + (double)(m + 1) * q <= T) m++;
    }
    pk = K;
    if (m > 0) {
      // Contiguous chunks in reverse thread order: the scan counts the
      // group's members at larger ids.
      int cs = (n + nt - 1) / nt, ci = nt - 1 - tid;
      int j0 = min(n, ci * cs), j1 = min(n, j0 + cs);
      int cnt = 0;
      for (int j = j0; j < j1; j++)
        if (skey(__fmul_rn(row[j], inv)) == K) cnt++;
      // Exclusive scan of cnt over the threads, and the total.
      int inc = cnt;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        int t = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += t;
      }
      __syncthreads();
      if (lane == 31) segLast[w] = inc;
      if (tid == 0) shi[1] = n;
      __syncthreads();
      int after = inc - cnt, c = 0;
      for (int k = 0; k < nw; k++) {
        if (k < w) after += segLast[k];
        c += segLast[k];
      }
      m = min(m, (long long)c - 1);
      if (m > 0 && after < m && m <= after + cnt) {
        long long seen = after;
        for (int j = j1 - 1; j >= j0; j--) {
          if (skey(__fmul_rn(row[j], inv)) == K && ++seen == m) {
            shi[1] = j;
            break;
          }
        }
      }
      __syncthreads();
      pc = shi[1];
    }
    stale = stale || K > lo || pc < n;
  }
  if (stale) Z = sampSum(row, n, inv, dmx, low, pk, pc, sh);

  // The draw, phase 1: each warp's segment of tiles, its running sum
  // (checkpointed) and its last nonzero probability.
  const double iz = 1.0 / Z;
  int tiles = (n + 31) >> 5, tpw = (tiles + nw - 1) / nw;
  int every = max(1, (tpw + SAMP_CKS - 1) / SAMP_CKS);
  int t0 = min(tiles, w * tpw), t1 = min(tiles, t0 + tpw);
  double carry = 0;
  int last = -1;
  for (int t = t0; t < t1; t += SAMP_ILP) {
    float xv[SAMP_ILP];
#pragma unroll
    for (int a = 0; a < SAMP_ILP; a++) {
      int j = (t + a) * 32 + lane;
      xv[a] = (t + a < t1 && j < n) ? row[j] : 0.f;
    }
#pragma unroll
    for (int a = 0; a < SAMP_ILP; a++) {
      int tt = t + a, j = tt * 32 + lane;
      if (tt >= t1) break;
      if ((tt - t0) % every == 0 && lane == 0) ck[w][(tt - t0) / every] = carry;
      double q = 0;
      if (j < n) {
        float y = __fmul_rn(xv[a], inv);
        if (sampKept(skey(y), j, low, pk, pc)) q = exp((double)y - dmx) * iz;
      }
      double inc = warpScanD(q);
      if (q != 0) last = j;
      carry = carry + __shfl_sync(0xffffffffu, inc, 31);
    }
  }
  for (int o = 16; o > 0; o >>= 1) last = max(last, __shfl_xor_sync(0xffffffffu, last, o));
  if (lane == 0) segSum[w] = carry, segLast[w] = last;
  __syncthreads();
  // Phase 2: the first segment whose cumulative sum passes u.
  double pe = 0, pw = 0;
  int first = -1, lastAll = -1;
  for (int k = 0; k < nw; k++) {
    if (first < 0 && segLast[k] >= 0 && u < pe + segSum[k]) first = k, pw = pe;
    pe += segSum[k];
    lastAll = max(lastAll, segLast[k]);
  }
  if (first < 0) {  // u fell past a sum rounded below 1
    if (tid == 0) dst[r] = max(lastAll, 0);
    return;
  }
  if (w != first) return;
  // The checkpoint before the crossing, then tile by tile.
  int nck = (t1 - t0 + every - 1) / every, k0 = nck - 1;
  for (int k = lane; k < nck; k += 32) {
    double endk = k + 1 < nck ? ck[w][k + 1] : segSum[w];
    unsigned b = __ballot_sync(__activemask(), u < pw + endk);
    if (b) {
      k0 = min(k0, (k - lane) + __ffs(b) - 1);
      break;
    }
  }
  k0 = __shfl_sync(0xffffffffu, k0, 0);
  for (int o = 16; o > 0; o >>= 1) k0 = min(k0, __shfl_xor_sync(0xffffffffu, k0, o));
  carry = ck[w][k0];
  for (int tt = t0 + k0 * every; tt < t1; tt++) {
    int j = tt * 32 + lane;
    double q = 0;
    if (j < n) {
      float y = __fmul_rn(row[j], inv);
      if (sampKept(skey(y), j, low, pk, pc)) q = exp((double)y - dmx) * iz;
    }
    double inc = warpScanD(q);
    unsigned b = __ballot_sync(0xffffffffu, q != 0 && u < pw + (carry + inc));
    if (b) {
      if (lane == 0) dst[r] = tt * 32 + __ffs(b) - 1;
      return;
    }
    carry = carry + __shfl_sync(0xffffffffu, inc, 31);
  }
  if (lane == 0) dst[r] = segLast[w];
}

// ---- Areas kept in files of their own, so that each is edited apart ----
// Each is compiled here, in this one module, after the kernels above (whose
// helpers they use). build.sh hashes every .cuh with sluice.cu.
#include "train.cuh"  // backward ops and optimizers (training)
#include "quant.cuh"  // quantized weights: fp8 and int4 (issue 23)
#include "lora.cuh"   // grouped LoRA for multi-adapter batches (issue 23)
