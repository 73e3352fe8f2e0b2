//===- MachineLimits.cpp - measured memory bandwidth and FMA peak ---------===//

#include "bench/MachineLimits.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

/// Horizontal sum through memory: GCC 12's _mm512_reduce_add_ps trips
/// -Wuninitialized inside its own header.
__attribute__((target("avx512f"))) float hsum512(__m512 v) {
  alignas(64) float out[16];
  _mm512_store_ps(out, v);
  float s = 0;
  for (float x : out)
    s += x;
  return s;
}

/// Runs `fn(threadIndex)` on `threads` threads after a common start signal
/// and returns the wall time of the slowest.
template <typename Fn> double timeParallel(int threads, Fn fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  Clock::time_point start;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      fn(t);
    });
  while (ready.load() != threads) {
  }
  start = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto &th : pool)
    th.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

__attribute__((target("avx512f"))) float sumAvx512(const float *p, size_t n) {
  __m512 a0 = _mm512_set1_ps(0.0f), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  return hsum512(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target("avx2"))) float sumAvx2(const float *p, size_t n) {
  __m256 a0 = _mm256_set1_ps(0.0f), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  alignas(32) float out[8];
  _mm256_store_ps(out,
                  _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  float s = 0;
  for (float v : out)
    s += v;
  return s;
}

float sumVector(const float *p, size_t n) {
  if (__builtin_cpu_supports("avx512f"))
    return sumAvx512(p, n);
  return sumAvx2(p, n);
}

constexpr int kChains = 12;
constexpr long kFmaIters = 20'000'000;

/// kChains independent FMA chains hide the FMA latency (4 cycles, 2 pipes).
__attribute__((target("avx512f"))) float fmaAvx512() {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < kFmaIters; ++it)
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i)
    s = _mm512_add_ps(s, acc[i]);
  return hsum512(s);
}

__attribute__((target("avx2,fma"))) float fmaAvx2() {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < kFmaIters; ++it)
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  alignas(32) float out[8];
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i)
    s = _mm256_add_ps(s, acc[i]);
  _mm256_store_ps(out, s);
  return out[0];
}

/// vdpbf16ps: 32 bf16 products (64 FLOP) per instruction and chain.
__attribute__((target("avx512f,avx512bf16"))) float dotBf16Avx512() {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512bh a =
      _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-7f), _mm512_set1_ps(1e-7f));
  const __m512bh b =
      _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.5f));
  for (long it = 0; it < kFmaIters; ++it)
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i)
    s = _mm512_add_ps(s, acc[i]);
  return hsum512(s);
}

} // namespace

double rwkv::bench::measureBf16DotPeak(int threads, int reps) {
  if (!__builtin_cpu_supports("avx512bf16"))
    return 0;
  std::vector<float> sink(threads);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    double s = timeParallel(threads, [&](int t) { sink[t] = dotBf16Avx512(); });
    double flops = 2.0 * 32 * kChains * double(kFmaIters) * threads;
    best = std::max(best, flops / s);
  }
  volatile float keep = sink[0];
  (void)keep;
  return best;
}

const char *rwkv::bench::fmaIsa() {
  if (__builtin_cpu_supports("avx512f"))
    return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return "avx2";
  return "scalar";
}

double rwkv::bench::measureReadBandwidth(int threads, size_t bytesPerThread,
                                         int reps) {
  size_t n = bytesPerThread / sizeof(float);
  std::vector<float *> arrays(threads);
  // First touch by the owning thread places the pages near it.
  timeParallel(threads, [&](int t) {
    arrays[t] = static_cast<float *>(std::aligned_alloc(64, n * 4));
    std::fill(arrays[t], arrays[t] + n, 1.0f);
  });
  std::vector<float> sink(threads);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    double s = timeParallel(threads,
                            [&](int t) { sink[t] += sumVector(arrays[t], n); });
    best = std::max(best, double(n) * 4 * threads / s);
  }
  for (float *a : arrays)
    std::free(a);
  // Keep the sums observable so the loads are not optimised away.
  volatile float keep = sink[0];
  (void)keep;
  return best;
}

double rwkv::bench::measureFmaPeak(int threads, int reps) {
  bool avx512 = __builtin_cpu_supports("avx512f");
  int lanes = avx512 ? 16 : 8;
  std::vector<float> sink(threads);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    double s = timeParallel(
        threads, [&](int t) { sink[t] = avx512 ? fmaAvx512() : fmaAvx2(); });
    double flops = 2.0 * lanes * kChains * double(kFmaIters) * threads;
    best = std::max(best, flops / s);
  }
  volatile float keep = sink[0];
  (void)keep;
  return best;
}
