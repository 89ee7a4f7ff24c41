// Grouped LoRA kernels of the cuda backend (gpu.LoRAOps), included by
// sluice.cu.
//
// One LoRA call is two launches over all its segments, vLLM's lora_shrink
// and lora_expand: loraShrink writes xa = x·Aᵀ of every segment into an f32
// scratch (segment s at t.s[s].off, [hi−lo, r], unrounded), and loraExpand
// adds xa·Bᵀ into y, rounding each element of y once. The segment table
// travels by value as a kernel parameter (LoraTable, at most LORA_SEGS
// segments a launch: gpu/cuda/lora.go splits larger calls), so a launch
// reads nothing the host wrote beside it and a captured graph keeps the
// table it was recorded with. Every sum runs in a fixed order (no atomics):
// a call repeats bit for bit.
//
// The blocks of a launch are numbered segment after segment; segment s owns
// blocks [s0, s0 + its count) of the shrink and [e0, …) of the expand, and a
// block finds its segment by walking the table (uniform across the block).
//
// loraShrinkIdx and loraExpandIdx (gpu.LoRATableOps) are the same products
// with nothing of the batch in their parameters, for CUDA graphs: the
// adapters' pairs are a table of slots in device memory (LoraPair, written
// when adapters load), and the step's segments, (lo, hi, slot) rows, are
// an int array the step uploads before it launches. The grid is fixed by
// the call's shapes: along x, ⌈rows/tile⌉ blocks, each taking row tiles
// blockIdx.x, + gridDim.x, … of the segments' tiles counted one after
// another (segments of partial tiles make more than gridDim.x of them),
// along y the pairs of a slot times their rank chunks (shrink) or column
// tiles (expand); a block finds a tile's segment with a warp scan of the
// segments' tile counts and stops past the last. A block computes a tile with the same device function
// as the by-value kernels, so a row gives the same bits from both when ks
// is the same.
#define LORA_SEGS 64
#define LORA_TM 4       // rows of one shrink warp tile
#define LORA_RC 16      // ranks of one shrink (and expand) chunk
#define LORA_EROWS 16   // rows of one expand block
#define LORA_ECOLS 256  // columns of one expand block (one a thread)

// LoraSeg is one segment: rows [lo, hi) of x and y, y's columns [col,
// col+n), A [r, in] and B [n, r]. dts holds A's dtype (bits 0-3), B's (bits
// 4-7), and whether A (bit 8) and B (bit 9) may be read 8 elements (16
// bytes) at a time. lora.go's loraSeg has this layout.
struct LoraSeg {
  const void* a;
  const void* b;
  i64 off;  // first float of the segment's xa
  int lo, hi, col, r, n, dts, s0, e0;
};

struct LoraTable {
  int segs, pad;
  LoraSeg s[LORA_SEGS];
};

// loraFind returns the segment whose blocks (start field at byte offset
// of start: s0 or e0) hold block b.
__device__ __forceinline__ int loraFind(const LoraTable& t, int b, bool expand) {
  int s = 0;
  while (s + 1 < t.segs && (expand ? t.s[s + 1].e0 : t.s[s + 1].s0) <= b) s++;
  return s;
}

// ld8 loads elements i..i+7 of p (dtype dt) as floats: 16-byte loads with
// vec (i a multiple of 8, p 16-byte aligned), else one element at a time,
// the ones at or past n as 0.
__device__ __forceinline__ void ld8(const void* p, int dt, i64 i, i64 n, bool vec, float* v) {
  if (vec) {
    if (dt == F32) {
      float4 u = *(const float4*)((const float*)p + i), w = *(const float4*)((const float*)p + i + 4);
      v[0] = u.x, v[1] = u.y, v[2] = u.z, v[3] = u.w, v[4] = w.x, v[5] = w.y, v[6] = w.z, v[7] = w.w;
      return;
    }
    uint4 u = dt == BF16 ? *(const uint4*)((const __nv_bfloat16*)p + i) : *(const uint4*)((const __half*)p + i);
    unsigned int wd[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
      unsigned short lo = wd[k] & 0xffff, hi = wd[k] >> 16;
      if (dt == BF16) {
        v[2 * k] = __uint_as_float((unsigned int)lo << 16);
        v[2 * k + 1] = __uint_as_float((unsigned int)hi << 16);
      } else {
        v[2 * k] = __half2float(__ushort_as_half(lo));
        v[2 * k + 1] = __half2float(__ushort_as_half(hi));
      }
    }
    return;
  }
#pragma unroll
  for (int k = 0; k < 8; k++) v[k] = i + k < n ? ld(p, dt, i + k) : 0.f;
}

// loraShrinkTile is block local of segment g of loraShrink (counted
// from the segment's first block): xa[s] = x[lo:hi]·Aᵀ in float32. A block
// is 4 warps; with ks warps a tile (1, 2 or 4, by the row length) the
// block covers 4/ks tiles of LORA_TM rows, over one chunk of LORA_RC ranks.
// The lanes of a warp split the row length in 8-element steps (the ks
// warps of a tile take every ks-th step: lora.go takes ks = 4 for rows of
// 1,024 elements or more, so that a warp's chain of dependent steps stays
// short), keep LORA_TM × LORA_RC sums in
// registers, and reduce them with shuffles; the ks warps' partial sums are
// added in warp order through shared memory.
__device__ __forceinline__ void loraShrinkTile(float* xa, const void* x, int xdt, int in, int xvec, int ks,
                                               const LoraSeg& g, int local, float (*part)[LORA_TM * LORA_RC]) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  int tiles = 4 / ks;  // row tiles of the block
  int nrc = (g.r + LORA_RC - 1) / LORA_RC;
  int rc = local % nrc, bt = local / nrc;
  int tile = w / ks, p = w % ks;
  int rows = g.hi - g.lo;
  int i0 = (bt * tiles + tile) * LORA_TM;  // first row of the warp's tile, from lo
  int adt = g.dts & 15;
  bool avec = (g.dts >> 8) & 1;
  int j0 = rc * LORA_RC;
  float acc[LORA_TM][LORA_RC];
#pragma unroll
  for (int i = 0; i < LORA_TM; i++)
#pragma unroll
    for (int j = 0; j < LORA_RC; j++) acc[i][j] = 0.f;
  if (i0 < rows) {
    for (i64 k = (i64)(p * 32 + lane) * 8; k < in; k += (i64)ks * 256) {
      float xv[LORA_TM][8];
#pragma unroll
      for (int i = 0; i < LORA_TM; i++) {
        if (i0 + i < rows) ld8(x, xdt, (i64)(g.lo + i0 + i) * in + k, (i64)(g.lo + i0 + i) * in + in, xvec, xv[i]);
        else {
#pragma unroll
          for (int e = 0; e < 8; e++) xv[i][e] = 0.f;
        }
      }
#pragma unroll
      for (int j = 0; j < LORA_RC; j++) {
        if (j0 + j < g.r) {
          float av[8];
          ld8(g.a, adt, (i64)(j0 + j) * in + k, (i64)(j0 + j) * in + in, avec, av);
#pragma unroll
          for (int i = 0; i < LORA_TM; i++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[i][j] = fmaf(xv[i][e], av[e], acc[i][j]);
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < LORA_TM; i++)
#pragma unroll
    for (int j = 0; j < LORA_RC; j++) {
      float v = warpSum(acc[i][j]);
      if (lane == 0) part[w][i * LORA_RC + j] = v;
    }
  __syncthreads();
  for (int o = threadIdx.x; o < tiles * LORA_TM * LORA_RC; o += blockDim.x) {
    int tt = o / (LORA_TM * LORA_RC), q = o % (LORA_TM * LORA_RC);
    int i = (bt * tiles + tt) * LORA_TM + q / LORA_RC, j = j0 + q % LORA_RC;
    if (i < rows && j < g.r) {
      float v = 0.f;
      for (int pp = 0; pp < ks; pp++) v += part[tt * ks + pp][q];
      xa[g.off + (i64)i * g.r + j] = v;
    }
  }
}

// loraExpandTile is block local of segment g of loraExpand: y[lo:hi,
// col:col+n] += xa[s]·Bᵀ. A block of LORA_ECOLS threads owns LORA_EROWS rows × LORA_ECOLS columns of one
// segment, a column a thread: for each chunk of LORA_RC ranks it reads its
// column's row of B into registers and the rows' xa chunk from shared
// memory (the same word for every thread), keeps LORA_EROWS sums, and at
// the end adds each to y's element, rounded once.
__device__ __forceinline__ void loraExpandTile(void* y, int ydt, const float* xa, int out, const LoraSeg& g, int local,
                                               float (*xs)[LORA_RC]) {
  int nct = (g.n + LORA_ECOLS - 1) / LORA_ECOLS;
  int ct = local % nct, rt = local / nct;
  int rows = g.hi - g.lo, r = g.r;
  int i0 = rt * LORA_EROWS;
  int j = ct * LORA_ECOLS + threadIdx.x;
  int bdt = (g.dts >> 4) & 15;
  bool bvec = (g.dts >> 9) & 1;
  float acc[LORA_EROWS];
#pragma unroll
  for (int i = 0; i < LORA_EROWS; i++) acc[i] = 0.f;
  for (int k0 = 0; k0 < r; k0 += LORA_RC) {
    __syncthreads();  // xs may still be read for the previous chunk
    {
      int i = threadIdx.x / LORA_RC, k = threadIdx.x % LORA_RC;
      xs[i][k] = i0 + i < rows && k0 + k < r ? xa[g.off + (i64)(i0 + i) * r + k0 + k] : 0.f;
    }
    __syncthreads();
    float bv[LORA_RC];
    if (j < g.n) {
      ld8(g.b, bdt, (i64)j * r + k0, (i64)j * r + r, bvec, bv);
      if (k0 + 8 < r) ld8(g.b, bdt, (i64)j * r + k0 + 8, (i64)j * r + r, bvec, bv + 8);
      else {
#pragma unroll
        for (int k = 8; k < LORA_RC; k++) bv[k] = 0.f;
      }
    } else {
#pragma unroll
      for (int k = 0; k < LORA_RC; k++) bv[k] = 0.f;
    }
#pragma unroll
    for (int i = 0; i < LORA_EROWS; i++)
#pragma unroll
      for (int k = 0; k < LORA_RC; k++) acc[i] = fmaf(xs[i][k], bv[k], acc[i]);
  }
  if (j >= g.n) return;
  // Every load of y before the first store: the compiler cannot tell the
  // stores from the next rows' loads, and a load after each store made the
  // rows one memory round trip each.
  int nr = min(LORA_EROWS, rows - i0);
  float yv[LORA_EROWS];
  i64 e0 = (i64)(g.lo + i0) * out + g.col + j;
#pragma unroll
  for (int i = 0; i < LORA_EROWS; i++)
    if (i < nr) yv[i] = ld(y, ydt, e0 + (i64)i * out);
#pragma unroll
  for (int i = 0; i < LORA_EROWS; i++)
    if (i < nr) st(y, ydt, e0 + (i64)i * out, yv[i] + acc[i]);
}

// loraLocate finds the segment of segs (nsegs rows of lo, hi, slot; a
// negative slot ends them) whose tiles of tile rows hold tile b, counting
// the tiles of valid segments one after another. It returns false when b
// is past them; else the segment's rows and slot, and b's tile within it.
// Every warp computes the same: lane l reads row c+l of each chunk of 32,
// and a shuffle scan adds up the tile counts.
__device__ __forceinline__ bool loraLocate(const int* segs, int nsegs, int slots, int rows, int tile, int b, int& lo,
                                           int& hi, int& slot, int& t) {
  int lane = threadIdx.x & 31;
  int base = 0;
  for (int c = 0; c < nsegs; c += 32) {
    int s = c + lane;
    int l = 0, h = 0, sl = -1;
    if (s < nsegs) l = segs[3 * s], h = segs[3 * s + 1], sl = segs[3 * s + 2];
    // Rows from the first negative slot on (or past nsegs) end the list.
    unsigned end = __ballot_sync(~0u, sl < 0);
    bool live = end == 0 || lane < __ffs(end) - 1;
    int cnt = live && sl < slots && l >= 0 && h > l && h <= rows ? (h - l + tile - 1) / tile : 0;
    int inc = cnt;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      int v = __shfl_up_sync(~0u, inc, o);
      if (lane >= o) inc += v;
    }
    int start = base + inc - cnt;
    unsigned hit = __ballot_sync(~0u, cnt > 0 && b >= start && b < start + cnt);
    if (hit) {
      int src = __ffs(hit) - 1;
      lo = __shfl_sync(~0u, l, src);
      hi = __shfl_sync(~0u, h, src);
      slot = __shfl_sync(~0u, sl, src);
      t = b - __shfl_sync(~0u, start, src);
      return true;
    }
    if (end != 0) return false;
    base += __shfl_sync(~0u, inc, 31);
  }
  return false;
}

// LoraPair is one pair of a slot of a LoRA table in device memory: A [r,
// in] and B [n, r] added into y's columns [col, col+n), dts as LoraSeg's;
// r = 0 marks no pair. lora.go's loraPairC has this layout (32 bytes).
struct LoraPair {
  const void* a;
  const void* b;
  int r, n, col, dts;
};

// loraPairSeg is segment rows [lo, hi) of pair q, the p-th of its slot,
// with its xa at ((p·rows + lo)·rank): pairs·rows·rank floats hold every
// segment's, whatever the segments are.
__device__ __forceinline__ LoraSeg loraPairSeg(const LoraPair& q, int p, int lo, int hi, int rows, int rank) {
  LoraSeg g;
  g.a = q.a, g.b = q.b;
  g.off = ((i64)p * rows + lo) * rank;
  g.lo = lo, g.hi = hi, g.col = q.col, g.r = q.r, g.n = q.n, g.dts = q.dts;
  g.s0 = 0, g.e0 = 0;
  return g;
}

extern "C" {

// loraShrink: xa[s] = x[lo:hi]·Aᵀ for every segment of t (loraShrinkTile).
__global__ void __launch_bounds__(128) loraShrink(float* xa, const void* x, int xdt, int in, int xvec, int ks,
                                                  const LoraTable t) {
  __shared__ float part[4][LORA_TM * LORA_RC];
  const LoraSeg& g = t.s[loraFind(t, blockIdx.x, false)];
  loraShrinkTile(xa, x, xdt, in, xvec, ks, g, blockIdx.x - g.s0, part);
}

// loraExpand: y[lo:hi, col:col+n] += xa[s]·Bᵀ for every segment of t
// (loraExpandTile).
__global__ void __launch_bounds__(LORA_ECOLS) loraExpand(void* y, int ydt, const float* xa, int out,
                                                         const LoraTable t) {
  __shared__ float xs[LORA_EROWS][LORA_RC];
  const LoraSeg& g = t.s[loraFind(t, blockIdx.x, true)];
  loraExpandTile(y, ydt, xa, out, g, blockIdx.x - g.e0, xs);
}

// loraShrinkIdx is loraShrink over the segments in segs of the pairs in
// tab (slots × pairs LoraPairs), x [rows, in]: block x is a tile of 4/ks ×
// LORA_TM rows of a segment, block y the pair (y / chunks) and the chunk
// of LORA_RC ranks (y % chunks), chunks = ⌈rank / LORA_RC⌉.
__global__ void __launch_bounds__(128) loraShrinkIdx(float* xa, const void* x, int xdt, int in, int xvec, int ks,
                                                     int rows, const LoraPair* tab, int pairs, int rank,
                                                     const int* segs, int nsegs, int slots) {
  __shared__ float part[4][LORA_TM * LORA_RC];
  int chunks = (rank + LORA_RC - 1) / LORA_RC;
  int p = blockIdx.y / chunks, rc = blockIdx.y % chunks;
  int lo, hi, slot, bt;
  for (int b = blockIdx.x; loraLocate(segs, nsegs, slots, rows, 4 / ks * LORA_TM, b, lo, hi, slot, bt); b += gridDim.x) {
    const LoraPair q = tab[(i64)slot * pairs + p];
    if (q.r <= 0 || rc * LORA_RC >= q.r) continue;
    if (b != blockIdx.x) __syncthreads();  // part may still be read for the previous tile
    LoraSeg g = loraPairSeg(q, p, lo, hi, rows, rank);
    loraShrinkTile(xa, x, xdt, in, xvec, ks, g, bt * ((q.r + LORA_RC - 1) / LORA_RC) + rc, part);
  }
}

// loraExpandIdx is loraExpand over the segments in segs of the pairs in
// tab: block x is a tile of LORA_EROWS rows of a segment, block y the pair
// (y / nct) and the tile of LORA_ECOLS columns (y % nct) of its B.
__global__ void __launch_bounds__(LORA_ECOLS) loraExpandIdx(void* y, int ydt, const float* xa, int out, int rows,
                                                            const LoraPair* tab, int pairs, int rank, int nct,
                                                            const int* segs, int nsegs, int slots) {
  __shared__ float xs[LORA_EROWS][LORA_RC];
  int p = blockIdx.y / nct, ct = blockIdx.y % nct;
  int lo, hi, slot, rt;
  for (int b = blockIdx.x; loraLocate(segs, nsegs, slots, rows, LORA_EROWS, b, lo, hi, slot, rt); b += gridDim.x) {
    const LoraPair q = tab[(i64)slot * pairs + p];
    if (q.r <= 0 || ct * LORA_ECOLS >= q.n) continue;
    // loraExpandTile syncs before it writes xs.
    LoraSeg g = loraPairSeg(q, p, lo, hi, rows, rank);
    loraExpandTile(y, ydt, xa, out, g, rt * ((q.n + LORA_ECOLS - 1) / LORA_ECOLS) + ct, xs);
  }
}

}  // extern "C"
