// A model of one decode step's projections: 12 layers of bf16 matrix-vector
// products of the 0.1B shape (four 768x768, then 3072x768 and 768x3072),
// with the generated kernel's structure (64-row tiles, 4-row register
// blocks, each row prefetched one block ahead within its tile), run three
// ways:
//   0  one parallel region per product (what the compiler emits today),
//   1  one region per layer, a work-shared loop per product (barriers),
//   2  one region per layer, loops without barriers (nowait);
// then one product of the head's shape (65536x768) in one region.
// Prints GB/s of weights streamed, next to one plain streaming read of the
// same bytes. AVX-512 only. docs/PERFORMANCE.md, "Session 12".
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static inline __m512 lo(__m512i w) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline __m512 hi(__m512i w) {
  return _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(0xffff0000)));
}

// One 64-row tile of y = W x (x de-interleaved: even elements, then odd).
static inline void tile(const uint16_t *w, const float *x, float *y, long k,
                        long t0) {
  for (long o = t0; o < t0 + 64; o += 4) {
    __m512 acc[4];
    for (int r = 0; r < 4; ++r)
      acc[r] = _mm512_setzero_ps();
    for (long i = 0; i < k; i += 32) {
      __m512 a = _mm512_loadu_ps(x + i / 2), b = _mm512_loadu_ps(x + k / 2 + i / 2);
      for (int r = 0; r < 4; ++r) {
        long ahead = o + r + 4 > t0 + 63 ? t0 + 63 : o + r + 4;
        _mm_prefetch((const char *)(w + ahead * k + i), _MM_HINT_T0);
        __m512i v = _mm512_loadu_si512(w + (o + r) * k + i);
        acc[r] = _mm512_fmadd_ps(a, lo(v), acc[r]);
        acc[r] = _mm512_fmadd_ps(b, hi(v), acc[r]);
      }
    }
    for (int r = 0; r < 4; ++r)
      y[o + r] = _mm512_reduce_add_ps(acc[r]);
  }
}

enum { C = 768, LAYERS = 12 };
static const long rows[6] = {C, C, C, C, 4 * C, C};
static const long cols[6] = {C, C, C, C, C, 4 * C};

int main(void) {
  size_t perLayer = 12L * C * C, total = perLayer * LAYERS;
  uint16_t *w = aligned_alloc(2 << 20, total * 2);
  for (size_t i = 0; i < total; ++i)
    w[i] = 0x3f80;
  float *x = aligned_alloc(64, 4 * C * 4), *y = aligned_alloc(64, 65536 * 4);
  for (int i = 0; i < 4 * C; ++i)
    x[i] = 1;
  const int reps = 20;
  for (int round = 0; round < 3; ++round) {
    double t = now();
    long sum = 0;
    for (int it = 0; it < reps; ++it) {
#pragma omp parallel for reduction(+ : sum) schedule(static)
      for (long i = 0; i < (long)(total * 2 / 64); ++i)
        sum += _mm512_reduce_add_epi32(_mm512_load_si512((char *)w + i * 64)) & 1;
    }
    t = (now() - t) / reps;
    printf("%d threads: read %.1f GB/s", omp_get_max_threads(), total * 2 / t / 1e9);
    for (int mode = 0; mode < 3; ++mode) {
      t = now();
      for (int it = 0; it < reps; ++it)
        for (int l = 0; l < LAYERS; ++l) {
          const uint16_t *m[6];
          m[0] = w + perLayer * l;
          for (int p = 1; p < 6; ++p)
            m[p] = m[p - 1] + rows[p - 1] * cols[p - 1];
          if (mode == 0) {
            for (int p = 0; p < 6; ++p) {
#pragma omp parallel for schedule(static)
              for (long t0 = 0; t0 < rows[p]; t0 += 64)
                tile(m[p], x, y, cols[p], t0);
            }
            continue;
          }
#pragma omp parallel
          for (int p = 0; p < 6; ++p) {
            if (mode == 1) {
#pragma omp for schedule(static)
              for (long t0 = 0; t0 < rows[p]; t0 += 64)
                tile(m[p], x, y, cols[p], t0);
            } else {
#pragma omp for schedule(static) nowait
              for (long t0 = 0; t0 < rows[p]; t0 += 64)
                tile(m[p], x, y, cols[p], t0);
            }
          }
        }
      t = (now() - t) / reps;
      printf(", mode %d %.1f GB/s", mode, total * 2 / t / 1e9);
    }
    // The head's shape (65536x768, 101 MB, one region) from the same bytes.
    const long headRows = 65536;
    t = now();
    for (int it = 0; it < reps; ++it) {
#pragma omp parallel for schedule(static)
      for (long t0 = 0; t0 < headRows; t0 += 64)
        tile(w, x, y, C, t0);
    }
    t = (now() - t) / reps;
    printf(", head %.1f GB/s", headRows * C * 2 / t / 1e9);
    printf(" (%.0f MB, sum %ld)\n", total * 2 / 1e6, sum);
  }
  return 0;
}
