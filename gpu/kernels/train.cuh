// Training kernels of the cuda backend (gpu.BackwardOps in
// gpu/cuda/backward.go, gpu.OptimOps in gpu/cuda/optim.go), included by
// sluice.cu after the inference kernels, whose helpers (ld, st, warpSum,
// blockSum, ...) they use.

// ---- Backward ops (gpu.BackwardOps: gpu/cuda/backward.go), f32 only ----
//
// The gradients of the forward ops, for training. Every output element is
// summed by one thread in a fixed order, or by a fixed tree over a block of
// a fixed size (warp shuffles, then warps in order through shared memory):
// no atomics, so a run repeats bit for bit whatever the scheduling. First
// versions: simple and correct, not tuned. MatMulBackward's products are
// cuBLAS GEMMs; colSum serves its bias and RMSNormBackward's weight.
#define ATB_WARPS 4     // warps of attnBwdQ and attnBwdKV
#define ATB_MAXD 256    // their largest head size (backward.go checks it)
#define ATB_NB (ATB_MAXD / 32)

// blockSumD is blockSum in double. sh holds 32 doubles.
__device__ double blockSumD(double v, double* sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// atbDot is the dot product of a row a in shared memory and a row b in
// global memory, d long, over one warp (lane L takes columns L + 32c in
// order, then the warp's butterfly): every lane gets the same value, and
// attnBwdQ and attnBwdKV get the same value for the same pair of rows
// whichever of the two is in shared memory (fmaf's product is symmetric).
__device__ __forceinline__ float atbDot(const float* a, const float* b, int d, int lane) {
  float s = 0.f;
  for (int c = lane; c < d; c += 32) s = fmaf(a[c], b[c], s);
  return warpSum(s);
}

extern "C" {

// fillF32: dst[i] = v, n elements.
__global__ void fillF32(float* dst, i64 n, float v) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) dst[i] = v;
}

// colSum: dst[j] += Σ_i src[i, j] for src [m, n], the rows in order, one
// thread per column.
__global__ void colSum(float* dst, const float* src, i64 m, int n) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float s = 0.f;
  for (i64 i = 0; i < m; i++) s += src[i * n + j];
  dst[j] += s;
}

// embedBackward: dtable[ids[i], j] += dy[i, j] for i < t in order, one
// thread per column j, so a row gathered twice gets both in order. Ids
// outside [0, rows) are skipped (the host does not check them).
__global__ void embedBackward(float* dtable, const float* dy, const int* ids, int t, int rows, int h) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= h) return;
  for (int i = 0; i < t; i++) {
    int id = ids[i];
    if (id < 0 || id >= rows) continue;
    dtable[(i64)id * h + j] += dy[(i64)i * h + j];
  }
}

// embedBackwardGrouped is embedBackward over ids grouped by value
// (gpu.EmbedGroups): group g (block x) is row uniq[g] of dtable and the
// rows order[starts[g]..starts[g+1]) of dy in their order in ids, so each
// element of dtable gets the same sums in the same order as embedBackward
// gives it (the same bits), with a thread per (group, column) instead of a
// thread per column walking every id. Block y tiles the columns.
__global__ void embedBackwardGrouped(float* dtable, const float* dy, const int* order, const int* starts,
                                     const int* uniq, int rows, int h) {
  int g = blockIdx.x, j = blockIdx.y * blockDim.x + threadIdx.x;
  int id = uniq[g];
  if (j >= h || id < 0 || id >= rows) return;
  float* dst = dtable + (i64)id * h + j;
  float acc = *dst;
  for (int k = starts[g], e = starts[g + 1]; k < e; k++) acc += dy[(i64)order[k] * h + j];
  *dst = acc;
}

// rmsnormInv: inv[r] = rsqrt(mean(x[r]²) + eps), one block per row (the
// forward kernel's formula).
__global__ void rmsnormInv(float* inv, const float* x, int h, float eps) {
  __shared__ float sh[32];
  const float* xr = x + (i64)blockIdx.x * h;
  float ss = 0.f;
  for (int j = threadIdx.x; j < h; j += blockDim.x) ss += xr[j] * xr[j];
  ss = blockSum(ss, sh);
  if (threadIdx.x == 0) inv[blockIdx.x] = rsqrtf(ss / (float)h + eps);
}

// rmsnormDWPart: part[c, j] = Σ dy[r, j]·x[r, j]·inv[r] over the rows r of
// chunk c ([c·chunk, (c+1)·chunk) ∩ [0, rows)), in order; grid
// (ceil(h / blockDim.x), chunks), one thread per column. colSum then adds
// the chunks in order into dweight.
__global__ void rmsnormDWPart(float* part, const float* dy, const float* x, const float* inv, int rows, int h, int chunk) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= h) return;
  int c = blockIdx.y;
  int r0 = c * chunk, r1 = min(rows, r0 + chunk);
  float s = 0.f;
  for (int r = r0; r < r1; r++) s += dy[(i64)r * h + j] * x[(i64)r * h + j] * inv[r];
  part[(i64)c * h + j] = s;
}

// rmsnormBackward: dx = inv·dy·w − inv³·x·Σ_j(dy·w·x)/h, one block per row;
// dx may alias dy (each element is read, then written, by one thread).
__global__ void rmsnormBackward(float* dx, const float* dy, const float* x, const float* w, const float* inv, int h) {
  __shared__ float sh[32];
  i64 base = (i64)blockIdx.x * h;
  float s = 0.f;
  for (int j = threadIdx.x; j < h; j += blockDim.x) s += dy[base + j] * w[j] * x[base + j];
  s = blockSum(s, sh);
  float iv = inv[blockIdx.x];
  float c = iv * iv * iv * s / (float)h;
  for (int j = threadIdx.x; j < h; j += blockDim.x) {
    float g = dy[base + j], xv = x[base + j];
    dx[base + j] = iv * g * w[j] - c * xv;
  }
}

// ropeBackward: rope's transpose, the rotation by the negated angle, in
// place on x [t, heads, d] (f32); the threads are rope's.
__global__ void ropeBackward(float* x, const int* pos, const float* inv, int heads, int d, int t) {
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
      double x1 = x[o], x2 = x[o + half];
      x[o] = (float)(x1 * cs + x2 * sn);
      x[o + half] = (float)(x2 * cs - x1 * sn);
    }
  }
}

// siluMulBackward: with s = sigmoid(g), dup = dy·g·s and dgate =
// dy·u·s·(1 + g·(1 − s)); dgate may alias gate and dup up (each element's
// inputs are read before its outputs are written, by one thread).
__device__ __forceinline__ void siluMulGrad(float* dgate, float* dup, i64 i, float g, float u, float d) {
  float s = 1.f / (1.f + expf(-g));
  dup[i] = d * g * s;
  dgate[i] = d * u * s * (1.f + g * (1.f - s));
}

__global__ void siluMulBackward(float* dgate, float* dup, const float* dy, const float* gate, const float* up, i64 n) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    siluMulGrad(dgate, dup, i, gate[i], up[i], dy[i]);
}

// siluMulBackwardX is siluMulBackward with gate and up of dtype gdt (f32,
// bf16 or f16: training's bf16 activations), the arithmetic in f32 as
// there.
__global__ void siluMulBackwardX(float* dgate, float* dup, const float* dy, const void* gate, const void* up, int gdt,
                                 i64 n) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    siluMulGrad(dgate, dup, i, ld(gate, gdt, i), ld(up, gdt, i), dy[i]);
}

// crossEntropy: one block per row of logits [rows, n]: loss = logsumexp −
// logits[target] (the exponentials summed in double; two reads of the row:
// the max and the sum together, then the gradient), dlogits =
// scale·(softmax − onehot). A negative target gives a 0 loss and a 0 row;
// a target ≥ n (the host does not check targets) a NaN loss and a 0 row.
// dlogits may alias logits: every read of the row comes before the
// barriers of the sum, and each element is then read and written by one
// thread.
__global__ void crossEntropy(float* loss, float* dlogits, const float* logits, const int* targets, int n, float scale) {
  __shared__ float sh[32];
  __shared__ double shd[32];
  i64 base = (i64)blockIdx.x * n;
  const float* x = logits + base;
  float* g = dlogits + base;
  int tg = targets[blockIdx.x];
  if (tg < 0 || tg >= n) {  // uniform over the block
    for (int j = threadIdx.x; j < n; j += blockDim.x) g[j] = 0.f;
    if (threadIdx.x == 0) loss[blockIdx.x] = tg < 0 ? 0.f : __int_as_float(0x7fc00000);
    return;
  }
  float xt = x[tg];
  // One pass for the max and the sum (online, per thread: a larger value
  // rescales the thread's sum), the threads merged at the block's max.
  float mt = -INFINITY;
  double st = 0.0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float v = x[j];
    if (v > mt) {
      st = st * (double)expf(mt - v) + 1.0;
      mt = v;
    } else if (v != -INFINITY) {  // a NaN goes on into the sum
      st += (double)expf(v - mt);
    }
  }
  float m = blockMax(mt, sh);
  // A thread that saw no value above -inf holds 0 (or a NaN it met).
  double s = blockSumD(mt == -INFINITY ? st : st * (double)expf(mt - m), shd);
  double lse = (double)m + log(s);
  if (threadIdx.x == 0) loss[blockIdx.x] = (float)(lse - (double)xt);
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float p = (float)exp((double)x[j] - lse);
    if (j == tg) p -= 1.f;
    g[j] = p * scale;
  }
}

// Causal attention's backward over seqs sequences of T tokens: q, dout
// [seqs·T, heads, d], k, v [seqs·T, kvh, d], query i of a sequence seeing
// its keys 0..i. Two kernels, the probabilities recomputed in each.
//
// attnBwdQ: one block per (query row i, head h, sequence b), grid (T, heads,
// seqs), ATB_WARPS warps; warp w takes keys j = w, w + ATB_WARPS, … ≤ i.
// Three passes over the keys: the softmax's max and sum (per warp online,
// then the warps merged in order: lse), D = Σ_j p·dp with dp = dout·v_j,
// and dq = scale·Σ_j p·(dp − D)·k_j (lane L owning columns L + 32c, the
// warps' partial sums added in order). It writes (lse, D) of the row to
// stats [seqs·T·heads][2] for attnBwdKV.
__global__ void __launch_bounds__(ATB_WARPS * 32) attnBwdQ(float* dq, float* stats, const float* dout, const float* q,
                                                           const float* k, const float* v, int T, int heads, int kvh, int d,
                                                           float scale) {
  __shared__ float qs[ATB_MAXD], os[ATB_MAXD];
  __shared__ float wm[ATB_WARPS], wl[ATB_WARPS];
  __shared__ float acc[ATB_WARPS][ATB_MAXD];
  int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  int kh = h / (heads / kvh);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  i64 row = ((i64)b * T + i) * heads + h;
  i64 qo = row * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) qs[c] = q[qo + c], os[c] = dout[qo + c];
  __syncthreads();
  i64 ks = (i64)kvh * d;  // key j's row is at kb + j·ks
  const float* kb = k + ((i64)b * T * kvh + kh) * d;
  const float* vb = v + ((i64)b * T * kvh + kh) * d;
  float m = -INFINITY, l = 0.f;
  for (int j = w; j <= i; j += ATB_WARPS) {
    float s = atbDot(qs, kb + j * ks, d, lane) * scale;
    if (s > m) {
      l = l * expf(m - s) + 1.f;  // 0·0 + 1 on the first key
      m = s;
    } else {
      l += expf(s - m);
    }
  }
  if (lane == 0) wm[w] = m, wl[w] = l;
  __syncthreads();
  float M = -INFINITY;
  for (int x = 0; x < ATB_WARPS; x++) M = fmaxf(M, wm[x]);
  float L = 0.f;
  for (int x = 0; x < ATB_WARPS; x++)
    if (wm[x] != -INFINITY) L += wl[x] * expf(wm[x] - M);
  float lse = M + logf(L);  // key 0 is always seen: M is finite
  float D = 0.f;
  for (int j = w; j <= i; j += ATB_WARPS) {
    float p = expf(atbDot(qs, kb + j * ks, d, lane) * scale - lse);
    D += p * atbDot(os, vb + j * ks, d, lane);
  }
  __syncthreads();  // every thread has read wm and wl
  if (lane == 0) wm[w] = D;
  __syncthreads();
  D = 0.f;
  for (int x = 0; x < ATB_WARPS; x++) D += wm[x];
  float a[ATB_NB];
#pragma unroll
  for (int c = 0; c < ATB_NB; c++) a[c] = 0.f;
  for (int j = w; j <= i; j += ATB_WARPS) {
    const float* kj = kb + j * ks;
    float p = expf(atbDot(qs, kj, d, lane) * scale - lse);
    float ds = p * (atbDot(os, vb + j * ks, d, lane) - D) * scale;
#pragma unroll
    for (int c = 0; c < ATB_NB; c++) {
      int col = lane + 32 * c;
      if (col < d) a[c] = fmaf(ds, kj[col], a[c]);
    }
  }
#pragma unroll
  for (int c = 0; c < ATB_NB; c++) {
    int col = lane + 32 * c;
    if (col < d) acc[w][col] = a[c];
  }
  __syncthreads();
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float t = 0.f;
    for (int x = 0; x < ATB_WARPS; x++) t += acc[x][c];
    dq[qo + c] = t;
  }
  if (threadIdx.x == 0) stats[2 * row] = lse, stats[2 * row + 1] = D;
}

// attnBwdKV: one block per (key row j, kv head kh, sequence b), grid (T,
// kvh, seqs), ATB_WARPS warps: for the heads of the group in order and,
// per head, warp w taking queries i = j + w, j + w + ATB_WARPS, … < T, with
// p = exp(q_i·k_j·scale − lse_i) and ds = p·(dout_i·v_j − D_i)·scale from
// attnBwdQ's stats: dv_j = Σ p·dout_i and dk_j = Σ ds·q_i (lane L owning
// columns L + 32c, the warps' partial sums added in order).
__global__ void __launch_bounds__(ATB_WARPS * 32) attnBwdKV(float* dk, float* dv, const float* stats, const float* dout,
                                                            const float* q, const float* k, const float* v, int T,
                                                            int heads, int kvh, int d, float scale) {
  __shared__ float ksh[ATB_MAXD], vsh[ATB_MAXD];
  __shared__ float acck[ATB_WARPS][ATB_MAXD], accv[ATB_WARPS][ATB_MAXD];
  int j = blockIdx.x, kh = blockIdx.y, b = blockIdx.z;
  int G = heads / kvh;
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  i64 ko = (((i64)b * T + j) * kvh + kh) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) ksh[c] = k[ko + c], vsh[c] = v[ko + c];
  __syncthreads();
  float ak[ATB_NB], av[ATB_NB];
#pragma unroll
  for (int c = 0; c < ATB_NB; c++) ak[c] = av[c] = 0.f;
  for (int h = kh * G; h < (kh + 1) * G; h++) {
    for (int i = j + w; i < T; i += ATB_WARPS) {
      i64 row = ((i64)b * T + i) * heads + h;
      const float* qi = q + row * d;
      const float* oi = dout + row * d;
      float p = expf(atbDot(ksh, qi, d, lane) * scale - stats[2 * row]);
      float ds = p * (atbDot(vsh, oi, d, lane) - stats[2 * row + 1]) * scale;
#pragma unroll
      for (int c = 0; c < ATB_NB; c++) {
        int col = lane + 32 * c;
        if (col < d) {
          ak[c] = fmaf(ds, qi[col], ak[c]);
          av[c] = fmaf(p, oi[col], av[c]);
        }
      }
    }
  }
#pragma unroll
  for (int c = 0; c < ATB_NB; c++) {
    int col = lane + 32 * c;
    if (col < d) acck[w][col] = ak[c], accv[w][col] = av[c];
  }
  __syncthreads();
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float tk = 0.f, tv = 0.f;
    for (int x = 0; x < ATB_WARPS; x++) tk += acck[x][c], tv += accv[x][c];
    dk[ko + c] = tk;
    dv[ko + c] = tv;
  }
}

// ---- Training attention on the tensor cores (gpu/cuda/trainattn.go) ----
//
// The products are cuBLAS GEMMs; these are the row kernels between them,
// over one sequence's [heads·T, T] scratch, row r being query i = r mod T
// of its head. One block per row (blockDim a multiple of 32), the row's
// sums by blockSum's fixed tree, so a run repeats bit for bit.

// attnSoftmax: s_j ← exp(scale·s_j − m) / Σ_{j' ≤ i} exp(scale·s_j' − m)
// for j ≤ i and 0 past the diagonal (so that P·V and Pᵀ·dO over the full
// rows see the causal mask), in place.
__global__ void attnSoftmax(float* s, int T, float scale) {
  __shared__ float sh[32];
  int i = blockIdx.x % T;
  float* x = s + (i64)blockIdx.x * T;
  float m = -INFINITY;
  for (int j = threadIdx.x; j <= i; j += blockDim.x) m = fmaxf(m, x[j] * scale);
  m = blockMax(m, sh);
  float l = 0.f;
  for (int j = threadIdx.x; j <= i; j += blockDim.x) l += expf(x[j] * scale - m);
  l = blockSum(l, sh);
  float inv = 1.f / l;
  for (int j = threadIdx.x; j < T; j += blockDim.x) x[j] = j <= i ? expf(x[j] * scale - m) * inv : 0.f;
}

// attnGradS: dp_j ← scale·p_j·(dp_j − Σ_{j' ≤ i} p_j'·dp_j') in place (0
// past the diagonal): the scores' gradient dS from P and dP = dO·Vᵀ.
__global__ void attnGradS(float* dp, const float* p, int T, float scale) {
  __shared__ float sh[32];
  int i = blockIdx.x % T;
  i64 base = (i64)blockIdx.x * T;
  float s = 0.f;
  for (int j = threadIdx.x; j <= i; j += blockDim.x) s += p[base + j] * dp[base + j];
  s = blockSum(s, sh);
  for (int j = threadIdx.x; j < T; j += blockDim.x) dp[base + j] = j <= i ? scale * p[base + j] * (dp[base + j] - s) : 0.f;
}

// ---- Optimizer (gpu.OptimOps): one thread per element, grid-stride. Every
// operation is an _rn intrinsic so nvcc fuses none of them: the update is
// gpu.AdamW.Apply's / gpu.SGD.Apply's, rounded as Go rounds it.

// adamwStep: AdamW over n elements with the host's coefficients (gpu
// AdamW.Coefficients); g is multiplied by c first when scaled.
__global__ void adamwStep(float* w, const float* g, float* m, float* v, i64 n, float c, int scaled, int wd,
                          float decay, float b1, float b2, float stepSize, float bc2sqrt, float eps) {
  float omb1 = __fsub_rn(1.f, b1), omb2 = __fsub_rn(1.f, b2), nstep = -stepSize;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    float gi = g[i];
    if (scaled) gi = __fmul_rn(gi, c);
    float wi = w[i];
    if (wd) wi = __fmul_rn(wi, decay);
    float mi = m[i];
    mi = __fadd_rn(mi, __fmul_rn(__fsub_rn(gi, mi), omb1));
    float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(omb2, gi), gi));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2sqrt), eps);
    wi = __fadd_rn(wi, __fdiv_rn(__fmul_rn(nstep, mi), denom));
    m[i] = mi;
    v[i] = vi;
    w[i] = wi;
  }
}

// sgdStep: SGD with momentum over n elements; first sets the buffer to the
// gradient (step 1).
__global__ void sgdStep(float* w, const float* g, float* m, i64 n, float c, int scaled, float mom, float wd, float lr,
                        int first) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    float gi = g[i];
    if (scaled) gi = __fmul_rn(gi, c);
    float wi = w[i];
    if (wd != 0.f) gi = __fadd_rn(gi, __fmul_rn(wd, wi));
    float mi = first ? gi : __fadd_rn(__fmul_rn(mom, m[i]), gi);
    m[i] = mi;
    w[i] = __fsub_rn(wi, __fmul_rn(lr, mi));
  }
}

// sumSqPart: part[blockIdx.x] = Σ src[i]² in double over the block's
// grid-stride elements (blockDim.x 256), the threads' sums added in a fixed
// tree, so a run repeats bit for bit.
__global__ void sumSqPart(double* part, const float* src, i64 n) {
  __shared__ double sh[256];
  double s = 0;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    double x = src[i];
    s = __dadd_rn(s, __dmul_rn(x, x));
  }
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) sh[threadIdx.x] = __dadd_rn(sh[threadIdx.x], sh[threadIdx.x + k]);
    __syncthreads();
  }
  if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

// sumSqFinal: *dst = Σ part[0..parts) in order (one thread).
__global__ void sumSqFinal(double* dst, const double* part, int parts) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double s = 0;
  for (int k = 0; k < parts; k++) s = __dadd_rn(s, part[k]);
  *dst = s;
}

}  // extern "C"

// ---- Fused causal attention for training (flashFwd*, flashBwd*) ----
//
// FlashAttention-2 on the tensor cores (mma.sync m16n8k16, bf16 inputs, f32
// accumulators: mma16816 of sluice.cu) for gpu/cuda's CausalAttention and
// CausalAttentionBackward at PrecisionBF16 (trainattn.go), head sizes 16,
// 32, 64 and 128. Tensors are f32 in global memory: q, out, dq, dout
// [seqs·T, heads, D], k, v, dk, dv [seqs·T, kvHeads, D]; tiles are rounded
// to bf16 as they are stored in shared memory (rows of D + 8 elements:
// conflict-free 32-bit fragment loads). Query i of a sequence sees keys
// 0..i; head h reads kv head h / (heads / kvHeads).
//
// flashFwd: one block (4 warps) per (64-query tile, head, sequence); warp w
// owns queries 16w..16w + 15, its q fragments in registers, and runs the
// online softmax over 64-key tiles up to the diagonal on its accumulators
// (thread rows g = lane / 4 and g + 8, shared by the 4 lanes of a quad);
// P is rounded to bf16 for O += P·V. Writes out when out is given, the
// rows' logsumexp (scaled scores, natural log) into lse [seqs, heads, T]
// when lse is given, and with dout: drow = rowsum(bf16(dout)∘O) and zeros
// into dq when given (the backward's prologue: O stays in registers).
//
// flashBwd: one block per (64-key tile, kv head, sequence); warp w owns
// keys 16w..16w + 15 (k in shared memory, v fragments in registers, dK and
// dV accumulators in registers). For each head of the kv group in order and
// each BQ-query tile from the diagonal on: Sᵀ = K·Qᵀ, Pᵀ = exp(scale·Sᵀ −
// lse), dPᵀ = V·dOᵀ, dSᵀ = scale·Pᵀ∘(dPᵀ − drow), dV += Pᵀ·dO, dK += dSᵀ·Q
// in registers (one block owns its keys: no atomics, a fixed order), and
// dQ += dS·K through dS in shared memory, added to dq with f32 atomics
// (so dq's sums vary in order between runs in the last bits). With dq null
// it computes dK and dV only, and flashBwdQ (below) computes dQ in a fixed
// order.
#define FA_BQ 64  // flashFwd's query tile
#define FA_BK 64  // the key tile of both

// faTile stores rows r0 .. r0 + R − 1 of an f32 tensor (row r at base +
// r·stride, D columns) into sm as bf16, R rows of LD; rows from T on are 0.
// 128 threads; each issues up to 8 16-byte loads before it stores any.
template <int R, int D, int LD>
__device__ __forceinline__ void faTile(unsigned short* sm, const float* base, i64 stride, int r0, int T) {
  constexpr int C4 = D / 4, N = R * C4 / 128, B = N < 8 ? N : 8;
  static_assert(N * 128 == R * C4 && N % B == 0, "faTile's split over 128 threads");
#pragma unroll
  for (int b = 0; b < N; b += B) {
    float4 x[B];
#pragma unroll
    for (int i = 0; i < B; i++) {
      int idx = threadIdx.x + 128 * (b + i), r = idx / C4, c = (idx % C4) * 4;
      x[i] = r0 + r < T ? *(const float4*)(base + (i64)(r0 + r) * stride + c) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int i = 0; i < B; i++) {
      int idx = threadIdx.x + 128 * (b + i), r = idx / C4, c = (idx % C4) * 4;
      *(uint2*)(sm + r * LD + c) = make_uint2(packBF16(x[i].x, x[i].y), packBF16(x[i].z, x[i].w));
    }
  }
}

// faGather is the B fragment of rows k0 .. k0 + 15 (the k dimension) and
// column n of a row-major bf16 tile of LD: two 16-bit loads per register.
template <int LD>
__device__ __forceinline__ void faGather(const unsigned short* sm, int k0, int n, int tq, unsigned& b0, unsigned& b1) {
  const unsigned short* p = sm + (k0 + 2 * tq) * LD + n;
  b0 = (unsigned)p[0] | ((unsigned)p[LD] << 16);
  b1 = (unsigned)p[8 * LD] | ((unsigned)p[9 * LD] << 16);
}

template <int D>
__device__ __forceinline__ void flashFwd(float* out, float* lse, float* drow, float* dq, const float* dout,
                                         const float* q, const float* k, const float* v, int T, int H, int KV,
                                         float scale) {
  constexpr int KC = D / 16, NT = D / 8, LD = D + 8, ST = FA_BK / 8;
  __shared__ __align__(16) unsigned short Ks[FA_BK * LD];
  __shared__ __align__(16) unsigned short Vs[FA_BK * LD];
  const int h = blockIdx.y, s = blockIdx.z, kh = h / (H / KV), q0 = blockIdx.x * FA_BQ;
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
  const i64 qs = (i64)H * D, ks = (i64)KV * D;
  const i64 qoff = (i64)s * T * qs + (i64)h * D;
  const float* kb = k + (i64)s * T * ks + (i64)kh * D;
  const float* vb = v + (i64)s * T * ks + (i64)kh * D;
  const int rows[2] = {q0 + 16 * w + g, q0 + 16 * w + g + 8};
  unsigned qa[KC][4];
#pragma unroll
  for (int c16 = 0; c16 < KC; c16++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      int r = rows[e & 1], col = c16 * 16 + (e >> 1) * 8 + 2 * tq;
      float2 x = r < T ? *(const float2*)(q + qoff + (i64)r * qs + col) : make_float2(0.f, 0.f);
      qa[c16][e] = packBF16(x.x, x.y);
    }
  }
  const float sl2 = scale * 1.4426950408889634f;  // scores in log2 units: exp2f
  float o[NT][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
#pragma unroll
  for (int t = 0; t < NT; t++) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.f;
  const int last = min(q0 + FA_BQ, T) - 1;
  for (int k0 = 0; k0 <= last; k0 += FA_BK) {
    __syncthreads();  // the previous tile's reads are done
    faTile<FA_BK, D, LD>(Ks, kb, ks, k0, T);
    faTile<FA_BK, D, LD>(Vs, vb, ks, k0, T);
    __syncthreads();
    float sc[ST][4];
#pragma unroll
    for (int t = 0; t < ST; t++) sc[t][0] = sc[t][1] = sc[t][2] = sc[t][3] = 0.f;
#pragma unroll
    for (int c16 = 0; c16 < KC; c16++) {
#pragma unroll
      for (int t = 0; t < ST; t++) {
        const unsigned short* kp = Ks + (t * 8 + g) * LD + c16 * 16 + 2 * tq;
        mma16816(sc[t], qa[c16], *(const unsigned*)kp, *(const unsigned*)(kp + 8));
      }
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int t = 0; t < ST; t++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int j = k0 + t * 8 + 2 * tq + (e & 1), r = rows[e >> 1];
        sc[t][e] = j <= r && r < T ? sc[t][e] * sl2 : -INFINITY;
        mx[e >> 1] = fmaxf(mx[e >> 1], sc[t][e]);
      }
    }
    float al[2];
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
      mx[hh] = fmaxf(mx[hh], __shfl_xor_sync(0xffffffffu, mx[hh], 1));
      mx[hh] = fmaxf(mx[hh], __shfl_xor_sync(0xffffffffu, mx[hh], 2));
      float mn = fmaxf(m[hh], mx[hh]);
      al[hh] = mn == -INFINITY ? 1.f : exp2f(m[hh] - mn);
      m[hh] = mn;
    }
    float ls[2] = {0.f, 0.f};
#pragma unroll
    for (int t = 0; t < ST; t++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float p = sc[t][e] == -INFINITY ? 0.f : exp2f(sc[t][e] - m[e >> 1]);
        sc[t][e] = p;
        ls[e >> 1] += p;
      }
    }
#pragma unroll
    for (int hh = 0; hh < 2; hh++) l[hh] = l[hh] * al[hh] + ls[hh];
#pragma unroll
    for (int t = 0; t < NT; t++) o[t][0] *= al[0], o[t][1] *= al[0], o[t][2] *= al[1], o[t][3] *= al[1];
#pragma unroll
    for (int kk = 0; kk < FA_BK / 16; kk++) {
      unsigned pa[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float* src = sc[2 * kk + (e >> 1)] + 2 * (e & 1);
        pa[e] = packBF16(src[0], src[1]);
      }
#pragma unroll
      for (int t = 0; t < NT; t++) {
        unsigned b0, b1;
        faGather<LD>(Vs, kk * 16, t * 8 + g, tq, b0, b1);
        mma16816(o[t], pa, b0, b1);
      }
    }
  }
#pragma unroll
  for (int hh = 0; hh < 2; hh++) {
    l[hh] += __shfl_xor_sync(0xffffffffu, l[hh], 1);
    l[hh] += __shfl_xor_sync(0xffffffffu, l[hh], 2);
  }
#pragma unroll
  for (int hh = 0; hh < 2; hh++) {
    int r = rows[hh];
    bool in = r < T;  // uniform over the quad: the shuffles below stay full-warp
    float inv = l[hh] > 0.f ? 1.f / l[hh] : 0.f;
    i64 ro = qoff + (i64)r * qs;
    float dd = 0.f;
#pragma unroll
    for (int t = 0; t < NT; t++) {
      int c = t * 8 + 2 * tq;
      float2 y = make_float2(o[t][2 * hh] * inv, o[t][2 * hh + 1] * inv);
      if (in && out) *(float2*)(out + ro + c) = y;
      if (in && dout) {
        float2 x = *(const float2*)(dout + ro + c);  // rounded as flashBwd's dO tiles are: Σ_j P·dP = drow
        dd += __bfloat162float(__float2bfloat16_rn(x.x)) * y.x + __bfloat162float(__float2bfloat16_rn(x.y)) * y.y;
        if (dq) *(float2*)(dq + ro + c) = make_float2(0.f, 0.f);
      }
    }
    dd += __shfl_xor_sync(0xffffffffu, dd, 1);
    dd += __shfl_xor_sync(0xffffffffu, dd, 2);
    if (in && tq == 0) {
      i64 li = ((i64)s * H + h) * T + r;
      if (lse) lse[li] = (m[hh] + log2f(l[hh])) * 0.6931471805599453f;
      if (dout) drow[li] = dd;
    }
  }
}

template <int D, int BQ>
__device__ __forceinline__ void flashBwd(float* dq, float* dk, float* dv, const float* lse, const float* drow,
                                         const float* dout, const float* q, const float* k, const float* v, int T,
                                         int H, int KV, float scale) {
  constexpr int KC = D / 16, NT = D / 8, LD = D + 8, QT = BQ / 8, DSL = FA_BK + 8;
  constexpr int QG = BQ / 16, WS = 4 / QG, NTW = NT / WS;  // dQ: warps over query groups × column shares
  static_assert(QG * WS == 4 && NTW * WS == NT, "flashBwd's dQ split");
  __shared__ __align__(16) unsigned short Ks[FA_BK * LD];
  __shared__ __align__(16) unsigned short Qs[BQ * LD];
  __shared__ __align__(16) unsigned short Os[BQ * LD];  // dO
  __shared__ __align__(16) unsigned short Ds[BQ * DSL];  // dS [query][key]
  __shared__ float Ls[BQ], Rs[BQ];
  const int kh = blockIdx.y, s = blockIdx.z, k0 = blockIdx.x * FA_BK, G = H / KV;
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
  const i64 qs = (i64)H * D, ks = (i64)KV * D;
  const i64 koff = (i64)s * T * ks + (i64)kh * D;
  const int keys[2] = {k0 + 16 * w + g, k0 + 16 * w + g + 8};
  faTile<FA_BK, D, LD>(Ks, k + koff, ks, k0, T);
  unsigned va[KC][4];
#pragma unroll
  for (int c16 = 0; c16 < KC; c16++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      int j = keys[e & 1], col = c16 * 16 + (e >> 1) * 8 + 2 * tq;
      float2 x = j < T ? *(const float2*)(v + koff + (i64)j * ks + col) : make_float2(0.f, 0.f);
      va[c16][e] = packBF16(x.x, x.y);
    }
  }
  float dka[NT][4], dva[NT][4];
#pragma unroll
  for (int t = 0; t < NT; t++)
#pragma unroll
    for (int e = 0; e < 4; e++) dka[t][e] = dva[t][e] = 0.f;
  const float sl2 = scale * 1.4426950408889634f;
  const int m0 = (w % QG) * 16, t0 = (w / QG) * NTW;  // this warp's dQ rows and columns
  for (int hg = 0; hg < G; hg++) {
    const int h = kh * G + hg;
    const i64 qoff = (i64)s * T * qs + (i64)h * D;
    const i64 loff = ((i64)s * H + h) * T;
    for (int q0 = k0; q0 < T; q0 += BQ) {
      __syncthreads();  // the previous tile's reads of Qs, Os, Ds are done (and Ks is stored)
      faTile<BQ, D, LD>(Qs, q + qoff, qs, q0, T);
      faTile<BQ, D, LD>(Os, dout + qoff, qs, q0, T);
      if (threadIdx.x < BQ) {
        int i = q0 + threadIdx.x;
        Ls[threadIdx.x] = i < T ? lse[loff + i] * 1.4426950408889634f : 0.f;
        Rs[threadIdx.x] = i < T ? drow[loff + i] : 0.f;
      }
      __syncthreads();
      float sc[QT][4], dp[QT][4];
#pragma unroll
      for (int t = 0; t < QT; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) sc[t][e] = dp[t][e] = 0.f;
#pragma unroll
      for (int c16 = 0; c16 < KC; c16++) {
        unsigned ka[4];
#pragma unroll
        for (int e = 0; e < 4; e++)
          ka[e] = *(const unsigned*)(Ks + (16 * w + g + 8 * (e & 1)) * LD + c16 * 16 + (e >> 1) * 8 + 2 * tq);
#pragma unroll
        for (int t = 0; t < QT; t++) {
          const unsigned short* qp = Qs + (t * 8 + g) * LD + c16 * 16 + 2 * tq;
          mma16816(sc[t], ka, *(const unsigned*)qp, *(const unsigned*)(qp + 8));
          const unsigned short* op = Os + (t * 8 + g) * LD + c16 * 16 + 2 * tq;
          mma16816(dp[t], va[c16], *(const unsigned*)op, *(const unsigned*)(op + 8));
        }
      }
#pragma unroll
      for (int t = 0; t < QT; t++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          int ci = t * 8 + 2 * tq + (e & 1), i = q0 + ci;
          float p = keys[e >> 1] <= i && i < T ? exp2f(sc[t][e] * sl2 - Ls[ci]) : 0.f;
          sc[t][e] = p;
          dp[t][e] = scale * p * (dp[t][e] - Rs[ci]);
          if (dq) Ds[ci * DSL + 16 * w + g + 8 * (e >> 1)] = __bfloat16_as_ushort(__float2bfloat16_rn(dp[t][e]));
        }
      }
#pragma unroll
      for (int kk = 0; kk < BQ / 16; kk++) {
        unsigned pa[4], da[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const float* ps = sc[2 * kk + (e >> 1)] + 2 * (e & 1);
          const float* ds = dp[2 * kk + (e >> 1)] + 2 * (e & 1);
          pa[e] = packBF16(ps[0], ps[1]);
          da[e] = packBF16(ds[0], ds[1]);
        }
#pragma unroll
        for (int t = 0; t < NT; t++) {
          unsigned b0, b1;
          faGather<LD>(Os, kk * 16, t * 8 + g, tq, b0, b1);
          mma16816(dva[t], pa, b0, b1);
          faGather<LD>(Qs, kk * 16, t * 8 + g, tq, b0, b1);
          mma16816(dka[t], da, b0, b1);
        }
      }
      if (!dq) continue;  // flashBwdQ's (uniform over the block)
      __syncthreads();    // Ds is stored
      float acc[NTW][4];
#pragma unroll
      for (int t = 0; t < NTW; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < FA_BK / 16; kk++) {
        unsigned a[4];
#pragma unroll
        for (int e = 0; e < 4; e++)
          a[e] = *(const unsigned*)(Ds + (m0 + g + 8 * (e & 1)) * DSL + kk * 16 + (e >> 1) * 8 + 2 * tq);
#pragma unroll
        for (int t = 0; t < NTW; t++) {
          unsigned b0, b1;
          faGather<LD>(Ks, kk * 16, (t0 + t) * 8 + g, tq, b0, b1);
          mma16816(acc[t], a, b0, b1);
        }
      }
#pragma unroll
      for (int hh = 0; hh < 2; hh++) {
        int i = q0 + m0 + g + 8 * hh;
        if (i >= T) continue;
        float* dst = dq + qoff + (i64)i * qs;
#pragma unroll
        for (int t = 0; t < NTW; t++) {
          int c = (t0 + t) * 8 + 2 * tq;
          atomicAdd(dst + c, acc[t][2 * hh]);
          atomicAdd(dst + c + 1, acc[t][2 * hh + 1]);
        }
      }
    }
  }
#pragma unroll
  for (int hh = 0; hh < 2; hh++) {
    int j = keys[hh];
    if (j >= T) continue;
#pragma unroll
    for (int t = 0; t < NT; t++) {
      int c = t * 8 + 2 * tq;
      *(float2*)(dk + koff + (i64)j * ks + c) = make_float2(dka[t][2 * hh], dka[t][2 * hh + 1]);
      *(float2*)(dv + koff + (i64)j * ks + c) = make_float2(dva[t][2 * hh], dva[t][2 * hh + 1]);
    }
  }
}

// flashBwdQ is dQ without atomics (SLUICE_CUDA_FLASH_ATTN=det; flashBwd
// then runs with dq null): one block per (64-query tile, head, sequence) as
// flashFwd, warp w owning queries 16w..16w + 15 with their q and dO
// fragments, lse and drow in registers, over BK-key tiles up to the
// diagonal: S = Q·Kᵀ, P, dP = dO·Vᵀ, dS again, and dQ += dS·K in registers,
// stored once. Two products more than flashBwd's per pair of tiles, in
// exchange for a fixed order of every sum.
template <int D, int BK>
__device__ __forceinline__ void flashBwdQ(float* dq, const float* lse, const float* drow, const float* dout,
                                          const float* q, const float* k, const float* v, int T, int H, int KV,
                                          float scale) {
  constexpr int KC = D / 16, NT = D / 8, LD = D + 8, ST = BK / 8;
  __shared__ __align__(16) unsigned short Ks[BK * LD];
  __shared__ __align__(16) unsigned short Vs[BK * LD];
  const int h = blockIdx.y, s = blockIdx.z, kh = h / (H / KV), q0 = blockIdx.x * FA_BQ;
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
  const i64 qs = (i64)H * D, ks = (i64)KV * D;
  const i64 qoff = (i64)s * T * qs + (i64)h * D;
  const float* kb = k + (i64)s * T * ks + (i64)kh * D;
  const float* vb = v + (i64)s * T * ks + (i64)kh * D;
  const int rows[2] = {q0 + 16 * w + g, q0 + 16 * w + g + 8};
  unsigned qa[KC][4], oa[KC][4];
#pragma unroll
  for (int c16 = 0; c16 < KC; c16++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      int r = rows[e & 1], col = c16 * 16 + (e >> 1) * 8 + 2 * tq;
      float2 x = make_float2(0.f, 0.f), y = x;
      if (r < T) x = *(const float2*)(q + qoff + (i64)r * qs + col), y = *(const float2*)(dout + qoff + (i64)r * qs + col);
      qa[c16][e] = packBF16(x.x, x.y);
      oa[c16][e] = packBF16(y.x, y.y);
    }
  }
  const float sl2 = scale * 1.4426950408889634f;
  float l2[2], dr[2];
#pragma unroll
  for (int hh = 0; hh < 2; hh++) {
    i64 li = ((i64)s * H + h) * T + rows[hh];
    l2[hh] = rows[hh] < T ? lse[li] * 1.4426950408889634f : 0.f;
    dr[hh] = rows[hh] < T ? drow[li] : 0.f;
  }
  float acc[NT][4];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.f;
  const int last = min(q0 + FA_BQ, T) - 1;
  for (int k0 = 0; k0 <= last; k0 += BK) {
    __syncthreads();
    faTile<BK, D, LD>(Ks, kb, ks, k0, T);
    faTile<BK, D, LD>(Vs, vb, ks, k0, T);
    __syncthreads();
    float sc[ST][4], dp[ST][4];
#pragma unroll
    for (int t = 0; t < ST; t++)
#pragma unroll
      for (int e = 0; e < 4; e++) sc[t][e] = dp[t][e] = 0.f;
#pragma unroll
    for (int c16 = 0; c16 < KC; c16++) {
#pragma unroll
      for (int t = 0; t < ST; t++) {
        const unsigned short* kp = Ks + (t * 8 + g) * LD + c16 * 16 + 2 * tq;
        mma16816(sc[t], qa[c16], *(const unsigned*)kp, *(const unsigned*)(kp + 8));
        const unsigned short* vp = Vs + (t * 8 + g) * LD + c16 * 16 + 2 * tq;
        mma16816(dp[t], oa[c16], *(const unsigned*)vp, *(const unsigned*)(vp + 8));
      }
    }
#pragma unroll
    for (int t = 0; t < ST; t++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int j = k0 + t * 8 + 2 * tq + (e & 1), hh = e >> 1, r = rows[hh];
        float p = j <= r && r < T ? exp2f(sc[t][e] * sl2 - l2[hh]) : 0.f;
        dp[t][e] = scale * p * (dp[t][e] - dr[hh]);
      }
    }
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
      unsigned da[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float* src = dp[2 * kk + (e >> 1)] + 2 * (e & 1);
        da[e] = packBF16(src[0], src[1]);
      }
#pragma unroll
      for (int t = 0; t < NT; t++) {
        unsigned b0, b1;
        faGather<LD>(Ks, kk * 16, t * 8 + g, tq, b0, b1);
        mma16816(acc[t], da, b0, b1);
      }
    }
  }
#pragma unroll
  for (int hh = 0; hh < 2; hh++) {
    int r = rows[hh];
    if (r >= T) continue;
#pragma unroll
    for (int t = 0; t < NT; t++)
      *(float2*)(dq + qoff + (i64)r * qs + t * 8 + 2 * tq) = make_float2(acc[t][2 * hh], acc[t][2 * hh + 1]);
  }
}

// The entry points, one per head size: blocks of 128 threads, grids
// (ceil(T/64), heads, seqs) for flashFwd and flashBwdQ and (ceil(T/64),
// kvHeads, seqs) for flashBwd.
#define FA_FWD(D)                                                                                              \
  extern "C" __global__ void __launch_bounds__(128) flashFwd##D(                                               \
      float* out, float* lse, float* drow, float* dq, const float* dout, const float* q, const float* k,      \
      const float* v, int T, int H, int KV, float scale) {                                                     \
    flashFwd<D>(out, lse, drow, dq, dout, q, k, v, T, H, KV, scale);                                           \
  }
#define FA_BWD(D, BQ)                                                                                          \
  extern "C" __global__ void __launch_bounds__(128) flashBwd##D(                                               \
      float* dq, float* dk, float* dv, const float* lse, const float* drow, const float* dout, const float* q, \
      const float* k, const float* v, int T, int H, int KV, float scale) {                                     \
    flashBwd<D, BQ>(dq, dk, dv, lse, drow, dout, q, k, v, T, H, KV, scale);                                    \
  }
#define FA_BWDQ(D, BK)                                                                                         \
  extern "C" __global__ void __launch_bounds__(128) flashBwdQ##D(                                              \
      float* dq, const float* lse, const float* drow, const float* dout, const float* q, const float* k,      \
      const float* v, int T, int H, int KV, float scale) {                                                     \
    flashBwdQ<D, BK>(dq, lse, drow, dout, q, k, v, T, H, KV, scale);                                           \
  }
FA_FWD(16)
FA_FWD(32)
FA_FWD(64)
FA_FWD(128)
FA_BWD(16, 64)
FA_BWD(32, 64)
FA_BWD(64, 64)
FA_BWD(128, 32)
FA_BWDQ(16, 64)
FA_BWDQ(32, 64)
FA_BWDQ(64, 64)
FA_BWDQ(128, 32)
