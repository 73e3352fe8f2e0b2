#!/usr/bin/env bash
# Sanitizer runs of the test suite:
#   asan  - an ASan+UBSan build of everything (build-asan/) runs the whole
#           ctest suite but the benchmarks; the fuzzers are ASan+UBSan
#           builds of their own and run in the release tree.
#   asan-runtime - the same without the compiler (build-asan-rt/): the
#           runtime, the tools, the server and every test that does not
#           need an instrumented rwkv-compile (the model libraries come
#           from the release compiler). CI runs this one: the compiler's
#           own instrumented build would double CI's build time.
#   tsan  - a TSan build of the runtime, tools and their tests (build-tsan/)
#           runs every test that starts threads: the runtime (kernels on
#           OpenMP threads, the concurrency tests), the server and its
#           clients, the tokenizers, generation.
# Both take the model libraries their tests load from the release tree's
# rwkv-compile and its fixture cache (build/, so scripts/build.sh first):
# the same library is not compiled three times, and the instrumented
# compiler of build-asan/ is still exercised by the lit suite.
#   ci    - asan-runtime + tsan (scripts/test.sh, so .ci/run)
#   all   - asan + tsan
# Usage: scripts/sanitize.sh [asan|asan-runtime|tsan|ci|all]  (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
jobs=${JOBS:-$(nproc)}
bash scripts/setup.sh

# -O1 keeps the build short and the reports exact; -g1 gives line numbers.
common=(-G Ninja -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir
  -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit
  -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -g1 -DNDEBUG"
  "-DCMAKE_C_FLAGS_RELEASE=-O1 -g1 -DNDEBUG")

release=$PWD/${BUILD_DIR:-build}
fixtures=(-DRWKV_FIXTURE_COMPILER="$release/bin/rwkv-compile"
  -DRWKV_FIXTURE_CACHE="$release/fixture-cache")
[ -x "$release/bin/rwkv-compile" ] || bash scripts/build.sh

case "$mode" in
  asan | asan-runtime | tsan | ci | all) ;;
  *) echo "usage: $0 [asan|asan-runtime|tsan|ci|all]" >&2; exit 2 ;;
esac
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The golden suites on emulated GPU kernels (--cuda-emulate) run in the
# release tree only: what they test is generated code, which no sanitizer
# instruments, and the runtime path they take (load a CPU library, call it)
# is the golden CPU suites'. About a quarter of the sanitizer stages' test
# time. (The fake-driver tests of the CUDA runtime, runtime.cuda.*, do run,
# with the real CUDA libraries they load: the tiny-cuda fixtures stay in.)
emulated='^runtime\.(goldengpu|traingpu)\.(Golden|compile\.tiny(2|-v[456]|-b2|-64)?$)'
if [ "$mode" = asan ] || [ "$mode" = all ] || [ "$mode" = asan-runtime ] ||
   [ "$mode" = ci ]; then
  if [ "$mode" = asan ] || [ "$mode" = all ]; then
    dir=${ASAN_BUILD_DIR:-build-asan}
    compiler=ON
  else
    dir=${ASAN_RT_BUILD_DIR:-build-asan-rt}
    compiler=OFF
  fi
  cmake -S . -B "$dir" "${common[@]}" -DRWKV_SANITIZE=address,undefined \
    -DRWKV_BUILD_COMPILER=$compiler -DRWKV_SKIP_DIRS=fuzz "${fixtures[@]}" \
    > /dev/null
  ninja -C "$dir" -j "$jobs"
  # Leak checking is on (the Python tests turn it off for the interpreter).
  # use_tls=0: GCC 12's LeakSanitizer misreads the dynamic TLS of libomp's
  # worker threads (a model library's OpenMP team) and its tracer crashes
  # at exit; without TLS scanning the check runs (objects referenced only
  # from thread-local storage are reported, not missed: OpenSSL's per-thread
  # state is, and scripts/lsan.supp names it).
  ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1 \
    LSAN_OPTIONS=use_tls=0:suppressions=$PWD/scripts/lsan.supp ctest --test-dir "$dir" --output-on-failure -j "$jobs" -LE bench -E "$emulated"
fi

if [ "$mode" = tsan ] || [ "$mode" = all ] || [ "$mode" = ci ]; then
  dir=${TSAN_BUILD_DIR:-build-tsan}
  cmake -S . -B "$dir" "${common[@]}" \
    -DRWKV_SANITIZE=thread -DRWKV_BUILD_COMPILER=OFF "${fixtures[@]}" \
    -DRWKV_SKIP_DIRS="fuzz;python" > /dev/null
  ninja -C "$dir" -j "$jobs"
  # Archer makes OpenMP's synchronisation visible to TSan (scripts/tsan.supp).
  archer=/usr/lib/llvm-22/lib/libarcher.so
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp \
    OMP_TOOL_LIBRARIES=$archer ctest --test-dir "$dir" --output-on-failure -j "$jobs" \
    -L 'runtime|serve|text|concurrency|generate|checkpoint' -LE bench -E "$emulated"
fi
