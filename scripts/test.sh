#!/usr/bin/env bash
# The whole test suite: set-up, build, then lit + unit + golden + fuzz tests
# through ctest, then the same again under sanitizers (scripts/sanitize.sh
# ci: ASan+UBSan of everything but the compiler, TSan of every threaded
# path; docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# The fixtures' model libraries go through a cache that the sanitizer trees
# share (scripts/sanitize.sh), so each is compiled once.
bash scripts/build.sh -DRWKV_FIXTURE_CACHE="$PWD/$BUILD_DIR/fixture-cache"
(cd "$BUILD_DIR" && ctest --output-on-failure -j "${JOBS:-$(nproc)}")
BUILD_DIR=$BUILD_DIR bash scripts/sanitize.sh ci
