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
__global__ void siluMulBackward(float* dgate, float* dup, const float* dy, const float* gate, const float* up, i64 n) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    float g = gate[i], u = up[i], d = dy[i];
    float s = 1.f / (1.f + expf(-g));
    dup[i] = d * g * s;
    dgate[i] = d * u * s * (1.f + g * (1.f - s));
  }
}

// crossEntropy: one block per row of logits [rows, n]: loss = logsumexp −
// logits[target] (the exponentials summed in double), dlogits =
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
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, x[j]);
  m = blockMax(m, sh);
  double s = 0.0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) s += (double)expf(x[j] - m);
  s = blockSumD(s, shd);
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
