// What an OpenMP region costs with the libomp the generated code uses:
// fork + join of an empty region, a barrier, a work-shared loop inside a
// region (static init + its implicit barrier), and a region that the `if`
// clause serializes (what rwkv-guard-parallel-regions makes of single-tile
// loops). docs/PERFORMANCE.md, "Session 12". Build and run: bench/omp/run.sh.
#include <omp.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static volatile int sink;

int main(void) {
  const int n = 200000;
  for (int round = 0; round < 3; ++round) {
    double t0 = now();
    for (int i = 0; i < n; ++i) {
#pragma omp parallel
      sink = omp_get_thread_num();
    }
    double t1 = now();
#pragma omp parallel
    for (int i = 0; i < n; ++i) {
#pragma omp barrier
    }
    double t2 = now();
#pragma omp parallel
    for (int i = 0; i < n; ++i) {
#pragma omp for
      for (int j = 0; j < 2; ++j)
        sink = j;
    }
    double t3 = now();
    for (int i = 0; i < n; ++i) {
#pragma omp parallel if (0)
      {
#pragma omp for
        for (int j = 0; j < 2; ++j)
          sink = j;
      }
    }
    double t4 = now();
    // The same two loops with the static schedule computed inline, as
    // rwkv-inline-static-schedule generates them (no __kmpc_for_static_init,
    // no implicit barrier before the join).
    for (int i = 0; i < n; ++i) {
#pragma omp parallel
      {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int chunk = (2 + nt - 1) / nt, e = (t + 1) * chunk < 2 ? (t + 1) * chunk : 2;
        for (int j = t * chunk; j < e; ++j)
          sink = j;
      }
    }
    double t5 = now();
    for (int i = 0; i < n; ++i) {
#pragma omp parallel if (0)
      {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int chunk = (2 + nt - 1) / nt, e = (t + 1) * chunk < 2 ? (t + 1) * chunk : 2;
        for (int j = t * chunk; j < e; ++j)
          sink = j;
      }
    }
    double t6 = now();
    printf("%d threads: fork+join %.2f us, barrier %.2f us, omp for in a "
           "region %.2f us, serialized region + for %.2f us; inline "
           "schedule: region + loop %.2f us, serialized %.2f us\n",
           omp_get_max_threads(), (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6,
           (t3 - t2) / n * 1e6, (t4 - t3) / n * 1e6, (t5 - t4) / n * 1e6,
           (t6 - t5) / n * 1e6);
  }
  return 0;
}
