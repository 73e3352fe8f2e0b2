#!/usr/bin/env bash
# The main job on the built-in default: a synthetic RWKV-7 checkpoint is
# made with rwkv-init, compiled ahead of time with rwkv-compile, and run with
# rwkv-run, which prints the top tokens and tok/s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BIN=${BUILD_DIR:-build}/bin
OUT=${OUT_DIR:-build/demo}
PRESET=${PRESET:-tiny}
mkdir -p "$OUT"

echo "== rwkv-opt: the registered CPU pipeline's front half on the example model"
"$BIN/rwkv-opt" --rwkv-cpu-pipeline="to-llvm=false" \
  models/rwkv7/example-2layer.mlir | head -n 40
echo "   ..."

echo "== rwkv-init --preset $PRESET"
"$BIN/rwkv-init" --preset "$PRESET" -o "$OUT/model.pth"
"$BIN/rwkv-inspect" "$OUT/model.pth"

echo "== rwkv-compile"
time "$BIN/rwkv-compile" "$OUT/model.pth" -o "$OUT/model.so"

if [ -x "$BIN/rwkv-run" ]; then
  echo "== rwkv-run"
  "$BIN/rwkv-run" "$OUT/model.so" --weights "$OUT/model.pth" \
    --tokens 187,510,1563,310,247 --bench
fi
