#!/usr/bin/env bash
# The training performance run recorded in docs/PERFORMANCE.md ("Training").
# Not part of CI (no timing assertions anywhere): run it on an idle machine.
#
#   bash bench/train-run.sh [OUT_DIR]
#   BATCH=4 CTX=512 THREADS=2 STEPS=2 DTYPES="fp32 bf16" bash bench/train-run.sh
#
# For each weight dtype: makes the synthetic 0.1B checkpoint if missing,
# compiles the training library for B x T (`rwkv-compile --train`, timed),
# runs rwkv-train-bench (tokens/s, share of the fp32 FMA peak measured in
# the same run, peak RSS), then the plain PyTorch eager fp32 step on the same
# checkpoint, shape, thread count and machine (bench/train_torch.py), and
# prints the ratio of the two tokens/s. TORCH=0 skips PyTorch (its step takes
# minutes at the full shape: Debian's torch uses the reference BLAS).
# MODEL=path.pth runs another checkpoint (e.g. ../shared/golden/tiny/model.pth)
# instead of the synthetic 0.1B ones (DTYPES is then ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/bin
OUT=${1:-build/bench}
B=${BATCH:-4}
T=${CTX:-512}
THREADS=${THREADS:-2}
STEPS=${STEPS:-2}
WARMUP=${WARMUP:-1}
TORCH_STEPS=${TORCH_STEPS:-1}
TORCH_WARMUP=${TORCH_WARMUP:-0}
DTYPES=${DTYPES:-fp32 bf16}
TORCH=${TORCH:-1}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUT"
echo "load average: $(cat /proc/loadavg)"
echo "shape: ${MODEL:-0.1b}, B=$B T=$T, $THREADS thread(s)"
[ -n "${MODEL:-}" ] && DTYPES=model


for dtype in $DTYPES; do
  if [ -n "${MODEL:-}" ]; then
    m="${MODEL%.pth}"
    lib="$OUT/train-$(basename "$(dirname "$MODEL")")-b${B}t$T.so"
  else
    m="$OUT/0.1b-$dtype"
    lib="$OUT/train-0.1b-$dtype-b${B}t$T.so"
    [ -f "$m.pth" ] || "$BIN/rwkv-init" --preset 0.1b --dtype "$dtype" -o "$m.pth"
  fi
  if [ ! -f "$lib" ]; then
    echo "== compile $lib"
    /usr/bin/time -f "compile: %e s wall, peak RSS %M KiB" \
      "$BIN/rwkv-compile" "$m.pth" --train --batch "$B" --ctx "$T" -o "$lib"
  fi
  echo "== rwkv-train-bench $m.pth"
  "$BIN/rwkv-train-bench" "$lib" --weights "$m.pth" --threads "$THREADS" \
    --steps "$STEPS" --warmup "$WARMUP" | tee "$OUT/train-bench-$dtype.log"
  ours=$(sed -n 's/^train: *\([0-9.]*\) tokens.*/\1/p' "$OUT/train-bench-$dtype.log")
  if [ "$TORCH" = 1 ]; then
    echo "== PyTorch eager fp32 (weights of $m.pth upcast)"
    OMP_NUM_THREADS=$THREADS "$PY" bench/train_torch.py "$m.pth" --batch "$B" \
      --ctx "$T" --threads "$THREADS" --steps "$TORCH_STEPS" \
      --warmup "$TORCH_WARMUP" | tee "$OUT/train-torch-$dtype.log"
    theirs=$(sed -n 's/^torch tokens\/s: *\([0-9.]*\).*/\1/p' "$OUT/train-torch-$dtype.log")
    echo "ratio ($dtype): rwkv-mlir $ours tok/s / PyTorch $theirs tok/s = $(
      awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.1fx", a / b }')"
  fi
done
