#!/usr/bin/env bash
# The OpenMP measurements of docs/PERFORMANCE.md, "Session 12": region
# costs and a model of a decode step's projections under three region
# layouts. Not part of CI (timing). Uses clang-14 and the libomp that
# rwkv-compile's libraries load.
#
#   bash bench/omp/run.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-../../build/bench/omp}
mkdir -p "$OUT"
LIBOMP=$(ldconfig -p | awk '/libomp\.so\.5 /{print $NF; exit}')
[ -n "$LIBOMP" ] || { echo "libomp.so.5 not found" >&2; exit 1; }
LIBDIR=$(dirname "$(readlink -f "$LIBOMP")")
OMPH=$(ls /usr/lib/llvm-*/lib/clang/*/include/omp.h | head -1)
for f in omp-overhead gemv-regions; do
  clang-14 -O3 -march=native -fopenmp=libomp -I"$(dirname "$OMPH")" "$f.c" \
    -o "$OUT/$f" -L"$LIBDIR" -Wl,-rpath,"$LIBDIR"
done
export OMP_NUM_THREADS=${1:-2}
echo "libomp: $(readlink -f "$LIBOMP"), load average: $(cat /proc/loadavg)"
"$OUT/omp-overhead"
if grep -qw avx512f /proc/cpuinfo; then
  "$OUT/gemv-regions"
else
  echo "gemv-regions: needs AVX-512"
fi
