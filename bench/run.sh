#!/usr/bin/env bash
# The performance run recorded in docs/PERFORMANCE.md. Not part of CI (no
# timing assertions anywhere): run it on an idle machine.
#
#   bash bench/run.sh [OUT_DIR]
#
# 1. decode / prefill of the 0.1B shape, bf16 and fp32 weights, 1 and 2
#    threads, against the machine's bandwidth and FMA peak (rwkv-bench);
# 2. peak RSS of opening (parsing, detecting, validating) a large synthetic
#    checkpoint, .pth and safetensors, against its file size.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/bin
OUT=${1:-build/bench}
mkdir -p "$OUT"
echo "load average: $(cat /proc/loadavg)"

for dtype in bf16 fp32; do
  m="$OUT/0.1b-$dtype"
  [ -f "$m.pth" ] || "$BIN/rwkv-init" --preset 0.1b --dtype "$dtype" -o "$m.pth"
  [ -f "$m.so" ] || "$BIN/rwkv-compile" "$m.pth" -o "$m.so"
  for threads in 1 2; do
    echo "== 0.1b $dtype, $threads thread(s)"
    "$BIN/rwkv-bench" "$m.so" --weights "$m.pth" --threads "$threads" \
      --prompt 512 --decode 32
  done
done

echo "== peak RSS when opening a large checkpoint"
big="$OUT/1.5b"
[ -f "$big.pth" ] || "$BIN/rwkv-init" --preset 1.5b -o "$big.pth"
[ -f "$big.safetensors" ] ||
  "$BIN/rwkv-init" --preset 1.5b --format safetensors -o "$big.safetensors"
for f in "$big.pth" "$big.safetensors"; do
  rss=$( { /usr/bin/time -f "%M" "$BIN/rwkv-inspect" "$f" > /dev/null; } 2>&1 | tail -1)
  size=$(stat -c %s "$f")
  echo "$(basename "$f"): file $((size / 1048576)) MiB, rwkv-inspect peak RSS $((rss / 1024)) MiB"
done
