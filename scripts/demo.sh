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
  models/rwkv7/example-2layer.mlir -o "$OUT/example-front-half.mlir"
# The first layer function, as far as its WKV recurrence.
sed -n '/func.func private @forward_layer0/,/rwkv.wkv/p' \
  "$OUT/example-front-half.mlir"
echo "   ... (whole module: $OUT/example-front-half.mlir)"

# The tiny shape with the real 65536-token World vocabulary, so that text
# generation works with the shipped tokenizer.
echo "== rwkv-init --preset $PRESET --vocab 65536"
"$BIN/rwkv-init" --preset "$PRESET" --vocab 65536 -o "$OUT/model.pth"
"$BIN/rwkv-inspect" "$OUT/model.pth"

echo "== rwkv-compile"
time "$BIN/rwkv-compile" "$OUT/model.pth" -o "$OUT/model.so"

echo "== rwkv-run: top tokens after a prompt, then decode/prefill tok/s"
"$BIN/rwkv-run" "$OUT/model.so" --weights "$OUT/model.pth" \
  --tokens 187,510,1563,310,247 --bench

VOCAB=${VOCAB:-../shared/tokenizer/rwkv_vocab_v20230424.txt}
if [ -f "$VOCAB" ]; then
  echo "== rwkv-run generate (random weights: the text is noise, the pipeline is real)"
  "$BIN/rwkv-run" generate "$OUT/model.so" --weights "$OUT/model.pth" \
    --vocab "$VOCAB" --prompt "The Eiffel tower is in the city of" \
    --max-tokens 32 --seed 7
  echo
fi

# Fine-tuning on the built-in default: rwkv-train compiles the training step
# (forward + generated backward) once into its cache, trains on a small text
# with AdamW, and writes the tuned checkpoint; rwkv-run generates from it
# with the library compiled above (same shapes and dtypes).
if [ -f "$VOCAB" ] && [ "${FINETUNE:-1}" = 1 ]; then
  echo "== rwkv-train: fine-tune on models/data/tiny-corpus.txt (the loss goes down)"
  "$BIN/rwkv-train" --model "$OUT/model.pth" --data models/data/tiny-corpus.txt \
    --vocab "$VOCAB" --out "$OUT/tuned.pth" --ctx 64 --batch 4 \
    --steps "${STEPS:-24}" --lr 2e-3 --warmup 3 --print-every 4 \
    --log "$OUT/loss.csv" --cache-dir "$OUT/train-cache"
  echo "== rwkv-run generate with the tuned weights"
  "$BIN/rwkv-run" generate "$OUT/model.so" --weights "$OUT/tuned.pth" \
    --vocab "$VOCAB" --prompt "The state of each layer" \
    --max-tokens 32 --seed 7 --temperature 0.5
  echo
fi
