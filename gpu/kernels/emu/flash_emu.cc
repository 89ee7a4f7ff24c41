// Host emulation of train.cuh's flash kernels (flashFwd, flashBwd,
// flashBwdQ), for checking their indexing, masks and fragment layouts
// without a GPU: 128 std::threads per block, std::barrier for
// __syncthreads, warp exchanges for the shuffles and for mma.sync
// m16n8k16 (its fragment layout as the PTX ISA gives it, products summed
// in f32), bf16 rounding to nearest even. Compares out, dq, dk and dv with
// a float64 reference and fails over 3e-2 of the absmax. Not a model of
// timing, of the hardware's accumulation order or of memory faults. Run
// with `bash gpu/kernels/emu/run.sh` (g++ 12, C++20; ~30 s on 2 cores).
#include "emu.h"
#include "flash_body.inc"


template <int D, int BQ>
double run(int T, int seqs, int H, int KV, float scale0, unsigned seed, bool det = false) {
  std::mt19937 r(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  int N = seqs * T;
  std::vector<float> q(N * H * D), k(N * KV * D), v(N * KV * D), dout(N * H * D);
  for (auto* x : {&q, &k, &v, &dout}) for (auto& e : *x) e = u(r);
  std::vector<float> out(N * H * D, NAN), dq(N * H * D, NAN), dk(N * KV * D, NAN), dv(N * KV * D, NAN), lse(seqs * H * T), drow(seqs * H * T);
  float scale = scale0 == 0 ? 1 / sqrtf(D) : scale0;
  int tiles = (T + 63) / 64;
  grid(tiles, H, seqs, [&] { flashFwd<D>(out.data(), nullptr, nullptr, nullptr, nullptr, q.data(), k.data(), v.data(), T, H, KV, scale); });
  grid(tiles, H, seqs, [&] { flashFwd<D>(nullptr, lse.data(), drow.data(), det ? nullptr : dq.data(), dout.data(), q.data(), k.data(), v.data(), T, H, KV, scale); });
  if (!det) {
    grid(tiles, KV, seqs, [&] { flashBwd<D, BQ>(dq.data(), dk.data(), dv.data(), lse.data(), drow.data(), dout.data(), q.data(), k.data(), v.data(), T, H, KV, scale); });
  } else {
    grid(tiles, KV, seqs, [&] { flashBwd<D, BQ>(nullptr, dk.data(), dv.data(), lse.data(), drow.data(), dout.data(), q.data(), k.data(), v.data(), T, H, KV, scale); });
    grid(tiles, H, seqs, [&] { flashBwdQ<D, (D == 128 ? 32 : 64)>(dq.data(), lse.data(), drow.data(), dout.data(), q.data(), k.data(), v.data(), T, H, KV, scale); });
  }
  // reference in double
  std::vector<double> ro(N * H * D, 0), rdq(N * H * D, 0), rdk(N * KV * D, 0), rdv(N * KV * D, 0);
  int G = H / KV;
  for (int s = 0; s < seqs; s++)
    for (int h = 0; h < H; h++) {
      int kh = h / G;
      auto Q = [&](int i, int d) { return (double)q[((s * T + i) * H + h) * D + d]; };
      auto O = [&](int i, int d) { return (double)dout[((s * T + i) * H + h) * D + d]; };
      auto K = [&](int j, int d) { return (double)k[((s * T + j) * KV + kh) * D + d]; };
      auto V = [&](int j, int d) { return (double)v[((s * T + j) * KV + kh) * D + d]; };
      for (int i = 0; i < T; i++) {
        std::vector<double> p(i + 1), dp(i + 1);
        double m = -1e300;
        for (int j = 0; j <= i; j++) { double x = 0; for (int d = 0; d < D; d++) x += Q(i, d) * K(j, d); p[j] = x * scale; m = std::max(m, p[j]); }
        double l = 0;
        for (int j = 0; j <= i; j++) { p[j] = exp(p[j] - m); l += p[j]; }
        for (int j = 0; j <= i; j++) p[j] /= l;
        double dr = 0;
        for (int j = 0; j <= i; j++) { double x = 0; for (int d = 0; d < D; d++) x += O(i, d) * V(j, d); dp[j] = x; dr += p[j] * x; }
        for (int j = 0; j <= i; j++) {
          double ds = p[j] * (dp[j] - dr) * scale;
          for (int d = 0; d < D; d++) {
            ro[((s * T + i) * H + h) * D + d] += p[j] * V(j, d);
            rdq[((s * T + i) * H + h) * D + d] += ds * K(j, d);
            rdk[((s * T + j) * KV + kh) * D + d] += ds * Q(i, d);
            rdv[((s * T + j) * KV + kh) * D + d] += p[j] * O(i, d);
          }
        }
      }
    }
  double worst = 0;
  const char* names[4] = {"out", "dq", "dk", "dv"};
  std::vector<float>* got[4] = {&out, &dq, &dk, &dv};
  std::vector<double>* want[4] = {&ro, &rdq, &rdk, &rdv};
  printf("%sD%d T%d seqs%d H%d KV%d scale%g:", det ? "det " : "", D, T, seqs, H, KV, scale0);
  for (int o = 0; o < 4; o++) {
    double am = 0, e = 0;
    for (size_t i = 0; i < want[o]->size(); i++) {
      am = std::max(am, fabs((*want[o])[i]));
      double d = fabs((*got[o])[i] - (*want[o])[i]);
      if (std::isnan(d)) d = INFINITY;
      e = std::max(e, d);
    }
    double rel = e / std::max(am, 1e-2);
    worst = std::max(worst, rel);
    printf(" %s %.3g (absmax %.3g)", names[o], rel, am);
  }
  printf("\n");
  return worst;
}

int main() {
  double w = 0;
  w = std::max(w, run<16, 64>(17, 2, 4, 2, 0, 1));
  w = std::max(w, run<64, 64>(1, 1, 2, 1, 0, 2));
  w = std::max(w, run<64, 64>(100, 2, 4, 2, 0, 3));
  w = std::max(w, run<32, 64>(70, 1, 4, 1, 0.3f, 4));
  w = std::max(w, run<128, 32>(100, 1, 4, 2, 0, 5));
  w = std::max(w, run<64, 64>(130, 1, 8, 2, 0.3f, 6));
  w = std::max(w, run<16, 64>(17, 2, 4, 2, 0, 1, true));
  w = std::max(w, run<64, 64>(1, 1, 2, 1, 0, 2, true));
  w = std::max(w, run<64, 64>(130, 1, 8, 2, 0.3f, 6, true));
  w = std::max(w, run<32, 64>(70, 1, 4, 1, 0.3f, 4, true));
  w = std::max(w, run<128, 32>(100, 1, 4, 2, 0, 5, true));
  printf("worst %.3g\n", w);
  return w <= 3e-2 ? 0 : 1;
}
