// Host emulation of a CUDA thread block for gpu/kernels' kernels, shared
// by the emulators in this folder: 128 std::threads per block,
// std::barrier for __syncthreads, warp exchanges for the shuffles and for
// mma.sync m16n8k16 (its fragment layout as the PTX ISA gives it, products
// summed in f32), bf16 rounding to nearest even, and cp.async whose copies
// land when the thread waits for their group (so a read before the wait
// sees stale shared memory) or, with emuEagerCopies, at once (so a copy
// into a slot other threads still read shows). Not a model of timing, of
// the hardware's accumulation order or of memory faults.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>
using std::min;
typedef long long i64;
#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
struct D3 { int x, y, z; };
thread_local D3 threadIdx;
D3 blockIdx, gridDim, blockDim = {128, 1, 1};
static std::barrier<>* blockBar;
static std::barrier<>* warpBar[4];
void __syncthreads() { blockBar->arrive_and_wait(); }
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct uint2 { unsigned x, y; };
struct __align__(16) uint4 { unsigned x, y, z, w; };
float2 make_float2(float a, float b) { return {a, b}; }
float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
struct __nv_bfloat16 { unsigned short x; };
static unsigned short f2bf(float f) {
  unsigned u; memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  u += 0x7fff + ((u >> 16) & 1);
  return u >> 16;
}
static float bf2f(unsigned short h) { unsigned u = (unsigned)h << 16; float f; memcpy(&f, &u, 4); return f; }
__nv_bfloat16 __float2bfloat16_rn(float f) { return {f2bf(f)}; }
float __bfloat162float(__nv_bfloat16 h) { return bf2f(h.x); }
unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
unsigned packBF16(float lo, float hi) { return (unsigned)f2bf(lo) | ((unsigned)f2bf(hi) << 16); }
static float shBuf[4][32];
float __shfl_xor_sync(unsigned, float v, int o) {
  int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  shBuf[w][l] = v;
  warpBar[w]->arrive_and_wait();
  float r = shBuf[w][l ^ o];
  warpBar[w]->arrive_and_wait();
  return r;
}
struct Frag { unsigned a[4], b0, b1; };
static Frag mBuf[4][32];
void mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  for (int i = 0; i < 4; i++) mBuf[w][l].a[i] = a[i];
  mBuf[w][l].b0 = b0, mBuf[w][l].b1 = b1;
  warpBar[w]->arrive_and_wait();
  float A[16][16], B[16][8];
  for (int L = 0; L < 32; L++) {
    int g = L >> 2, t = L & 3;
    const Frag& f = mBuf[w][L];
    for (int h = 0; h < 2; h++) {
      A[g][2 * t + h] = bf2f(f.a[0] >> (16 * h));
      A[g + 8][2 * t + h] = bf2f(f.a[1] >> (16 * h));
      A[g][2 * t + 8 + h] = bf2f(f.a[2] >> (16 * h));
      A[g + 8][2 * t + 8 + h] = bf2f(f.a[3] >> (16 * h));
      B[2 * t + h][g] = bf2f(f.b0 >> (16 * h));
      B[2 * t + 8 + h][g] = bf2f(f.b1 >> (16 * h));
    }
  }
  int g = l >> 2, t = l & 3;
  for (int e = 0; e < 4; e++) {
    int r = g + 8 * (e >> 1), col = 2 * t + (e & 1);
    float s = 0;
    for (int k = 0; k < 16; k++) s += A[r][k] * B[k][col];
    c[e] += s;
  }
  warpBar[w]->arrive_and_wait();
}
static std::mutex amu;
float atomicAdd(float* p, float v) { std::lock_guard<std::mutex> g(amu); float o = *p; *p += v; return o; }

// __byte_perm: byte i of the result is byte (s >> 4i) & 7 of y:x.
unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  unsigned long long v = (unsigned long long)y << 32 | x;
  unsigned r = 0;
  for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
}

// cp.async: a thread's copies are queued per commit group and land when it
// waits for the group (emuEagerCopies: when issued).
static bool emuEagerCopies;
struct emuCopy { void* dst; unsigned char data[16]; };
thread_local std::vector<emuCopy> emuOpen;
thread_local std::vector<std::vector<emuCopy>> emuGroups;
void cpAsync16(void* dst, const void* src, int bytes) {
  emuCopy c{dst, {}};
  memcpy(c.data, src, bytes);
  if (emuEagerCopies) memcpy(dst, c.data, 16);
  else emuOpen.push_back(c);
}
void cpAsyncCommit() { emuGroups.push_back(std::move(emuOpen)); emuOpen.clear(); }
template <int N>
void cpAsyncWait() {
  while ((int)emuGroups.size() > N) {
    for (auto& c : emuGroups.front()) memcpy(c.dst, c.data, 16);
    emuGroups.erase(emuGroups.begin());
  }
}

#define F32 1
#define BF16 2
float ld(const void* p, int dt, i64 i) {
  return dt == F32 ? ((const float*)p)[i] : bf2f(((const unsigned short*)p)[i]);
}
void st(void* p, int dt, i64 i, float v) {
  if (dt == F32) ((float*)p)[i] = v;
  else ((unsigned short*)p)[i] = f2bf(v);
}

// grid runs f as every block of a gx × gy × gz grid, one after another.
template <class F>
void grid(int gx, int gy, int gz, F f) {
  std::barrier<> bb(128), w0(32), w1(32), w2(32), w3(32);
  blockBar = &bb; warpBar[0] = &w0; warpBar[1] = &w1; warpBar[2] = &w2; warpBar[3] = &w3;
  gridDim = {gx, gy, gz};
  for (int z = 0; z < gz; z++)
    for (int y = 0; y < gy; y++)
      for (int x = 0; x < gx; x++) {
        blockIdx = {x, y, z};
        std::vector<std::thread> th;
        for (int t = 0; t < 128; t++) th.emplace_back([&, t] { threadIdx = {t, 0, 0}; emuOpen.clear(); emuGroups.clear(); f(); });
        for (auto& t : th) t.join();
      }
}
