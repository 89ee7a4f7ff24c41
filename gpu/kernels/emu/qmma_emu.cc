// Host emulation of quant.cuh's int4 tensor-core product (qMMA16/32/64 and
// qSplitSum) on emu.h's block model, for checking its fragment layout, k
// permutation, swizzles, group scales, bounds and pipeline without a GPU.
// Compares c with a float64 product of the dequantized weight and fails
// over 2e-6 of the row's Σ|a·w| (f32 sums; bf16 c: plus its rounding). Each
// case runs twice: cp.async copies landing at the wait, then at the issue.
// Run with `bash gpu/kernels/emu/run.sh` (g++ 12, C++20).
#include "emu.h"
unsigned qmSub(unsigned x, unsigned y) {
  return (unsigned)f2bf(bf2f(x) - bf2f(y >> 0 & 0xffff)) | (unsigned)f2bf(bf2f(x >> 16) - bf2f(y >> 16)) << 16;
}
#include "qmma_body.inc"

template <int MT>
void launch(int gx, int gy, int gz, void* c, int cdt, const unsigned short* a, const void* bias, int bdt, const unsigned* data,
            const float* scales, const float* zeros, int ngroups, int gs, int m, int n, int k, int splitGroups) {
  grid(gx, gy, gz, [&] { qmma<MT>(c, cdt, a, bias, bdt, data, scales, zeros, ngroups, gs, m, n, k, splitGroups); });
}

double run(int m, int n, int k, int gs, int mt, int splits, int cdt, bool hasBias, unsigned seed) {
  std::mt19937 r(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  int ng = k / gs;
  std::vector<unsigned short> a(m * k);
  for (auto& x : a) x = f2bf(u(r));
  std::vector<unsigned> data(n * k / 8);
  for (auto& x : data) x = r();
  std::vector<float> sc(n * ng), zr(n * ng), bias(n);
  for (auto& x : sc) x = 0.001f + 0.01f * (u(r) + 1);
  for (auto& x : zr) x = (float)(r() % 16);
  for (auto& x : bias) x = u(r);
  int splitGroups = (ng + splits - 1) / splits, gz = (ng + splitGroups - 1) / splitGroups;
  std::vector<float> part((size_t)gz * m * n, NAN);
  std::vector<float> c32(m * n, NAN);
  std::vector<unsigned short> c16(m * n, 0x7fc0);
  void* cp = cdt == F32 ? (void*)c32.data() : (void*)c16.data();
  void* dst = gz > 1 ? (void*)part.data() : cp;
  int gx = (m + 16 * mt - 1) / (16 * mt), gy = (n + 127) / 128;
  const void* bp = hasBias ? bias.data() : nullptr;
  if (mt == 1) launch<1>(gx, gy, gz, dst, cdt, a.data(), bp, F32, data.data(), sc.data(), zr.data(), ng, gs, m, n, k, splitGroups);
  if (mt == 2) launch<2>(gx, gy, gz, dst, cdt, a.data(), bp, F32, data.data(), sc.data(), zr.data(), ng, gs, m, n, k, splitGroups);
  if (mt == 4) launch<4>(gx, gy, gz, dst, cdt, a.data(), bp, F32, data.data(), sc.data(), zr.data(), ng, gs, m, n, k, splitGroups);
  if (gz > 1) grid(2, 1, 1, [&] { qSplitSum(cp, cdt, part.data(), gz, bp, F32, m, n); });
  double worst = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = hasBias ? bias[j] : 0, mag = fabs(s);
      for (int kk = 0; kk < k; kk++) {
        int q = data[(j * k + kk) / 8] >> (4 * (kk % 8)) & 15, gi = kk / gs;
        double w = ((double)q - zr[j * ng + gi]) * sc[j * ng + gi], x = bf2f(a[i * k + kk]) * w;
        s += x, mag += fabs(x);
      }
      double got = cdt == F32 ? c32[i * n + j] : bf2f(c16[i * n + j]);
      double err = fabs(got - s), tol = 2e-6 * mag + (cdt == F32 ? 0 : fabs(s) / 256);
      if (!(err <= tol)) {
        if (worst < 1e9) printf("  c[%d][%d] = %g, want %g (tol %g)\n", i, j, got, s, tol);
        worst = 1e9;
      }
      worst = std::max(worst, std::isnan(err) ? 1e9 : err / (tol + 1e-30));
    }
  printf("%s m%d n%d k%d gs%d MT%d splits%d %s bias%d: worst err/tol %.3g\n", emuEagerCopies ? "eager" : "waited", m, n, k, gs, mt,
         gz, cdt == F32 ? "f32" : "bf16", hasBias, worst);
  return worst;
}

int main() {
  double w = 0;
  for (bool eager : {false, true}) {
    emuEagerCopies = eager;
    w = std::max(w, run(5, 130, 128, 64, 1, 1, F32, true, 1));
    w = std::max(w, run(33, 128, 256, 128, 2, 1, BF16, false, 2));
    w = std::max(w, run(70, 256, 384, 128, 4, 1, BF16, true, 3));
    w = std::max(w, run(64, 96, 512, 128, 4, 2, F32, true, 4));
    w = std::max(w, run(17, 40, 192, 64, 2, 3, BF16, true, 5));
    w = std::max(w, run(20, 64, 256, 256, 2, 1, F32, false, 6));
  }
  printf("worst err/tol %.3g\n", w);
  return w <= 1 ? 0 : 1;
}
