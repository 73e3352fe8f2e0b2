#!/usr/bin/env bash
# The GPU check of the CUDA target (issue 11), one script for a machine with
# an NVIDIA GPU and driver. Build (if needed), then:
#  1. compile the golden models with rwkv-compile --target=cuda;
#  2. run the golden suite on the GPU (RWKVGoldenTests: logits within the
#     golden tolerance of float64, RNN == GPT, batch 2 rows == batch 1);
#  2b. the training step: golden tiny's loss and gradients against float64
#     on the GPU, and one 0.1B-shape step timed on the GPU and the CPU;
#  3. GPU == CPU: the logits of both libraries on the same tokens;
#  4. decode and prefill speed of the 0.1B and 1.5B shapes (rwkv-run
#     --bench), decode as a share of the GPU's HBM bandwidth; 0.1B prefill
#     also with gpu-mma=off (no tensor cores) and gpu-mma=bf16;
#  5. the WKV7 recurrence alone, forward + backward, at peers.md §2b's
#     shape (B=8, T=4096, C=4096), GPU and CPU.
# Without a usable driver it stops after step 1 with the runtime's reason.
# Usage: bench/gpu/device-run.sh [sm_90]     (OUT=dir for the artifacts)
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=${1:-sm_90}
SHARED=${RWKV_SHARED_DIR:-../shared}
OUT=${OUT:-build/gpu-run}
BIN=build/bin
[ -x $BIN/rwkv-compile ] || bash scripts/build.sh
mkdir -p "$OUT"
command -v nvidia-smi > /dev/null &&
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true

echo "== 1. compile (--target=cuda --cuda-arch=$ARCH)"
for m in tiny tiny2 tiny-v4 tiny-v5 tiny-v6; do
  /usr/bin/time -f "$m: %e s" $BIN/rwkv-compile "$SHARED/golden/$m/model.pth" \
    --target=cuda --cuda-arch="$ARCH" -o "$OUT/$m.so"
done
$BIN/rwkv-compile "$SHARED/golden/tiny/model.pth" --batch 2 --target=cuda \
  --cuda-arch="$ARCH" -o "$OUT/tiny-b2.so"
if ! $BIN/rwkv-run "$OUT/tiny.so" --weights "$SHARED/golden/tiny/model.pth" \
    --tokens 1 > "$OUT/probe.txt" 2>&1; then
  cat "$OUT/probe.txt"
  echo "device-run: no usable GPU here; stopping after the compile step"
  exit 2
fi

echo "== 2. golden suite on the GPU"
$BIN/RWKVGoldenTests --golden-dir="$SHARED/golden" --lib-dir="$OUT" \
  --gtest_filter='Goldens/*:GoldenBatch.*' 2>&1 | grep -E '^\[ .*\]|FAIL|PASS'

echo "== 2b. training step on the GPU (rwkv-compile --train --target=cuda)"
# The loss, every weight gradient and the initial-state gradient of golden
# tiny (B = 2, T = 64) against float64, as runtime.traingpu.* checks the
# emulated kernels; then the time of one 0.1B-shape step, GPU and CPU.
mkdir -p "$OUT/train"
$BIN/rwkv-compile "$SHARED/golden/tiny/model.pth" --train --batch 2 --ctx 64 \
  --target=cuda --cuda-arch="$ARCH" -o "$OUT/train/tiny-train64.so"
$BIN/RWKVTrainGoldenTests --golden-dir="$SHARED/golden" \
  --lib-dir="$OUT/train" --gtest_filter='Goldens/TrainGoldenTest.*/0' 2>&1 |
  grep -E '^\[ .*\]|FAIL|PASS'
[ -f "$OUT/rwkv-0.1b.pth" ] ||
  $BIN/rwkv-init --preset 0.1b -o "$OUT/rwkv-0.1b.pth" > /dev/null
for dev in gpu cpu; do
  opts=(--target=cuda --cuda-arch="$ARCH"); [ $dev = cpu ] && opts=()
  $BIN/rwkv-compile "$OUT/rwkv-0.1b.pth" --train --batch 4 --ctx 256 \
    "${opts[@]}" -o "$OUT/train/0.1b-train-$dev.so"
  echo "0.1B train step B=4 T=256 ($dev):"
  $BIN/rwkv-train-bench "$OUT/train/0.1b-train-$dev.so" \
    --weights "$OUT/rwkv-0.1b.pth" --steps 3 --warmup 1 || true
done

echo "== 3. GPU == CPU"
tokens=$(/usr/bin/python3 -c "import json; print(','.join(map(str, json.load(open('$SHARED/golden/tiny/seq128/tokens.json'))[:64])))" 2>/dev/null || echo 1,2,3,4,5,6,7,8)
for m in tiny tiny2 tiny-v4 tiny-v5 tiny-v6; do
  $BIN/rwkv-compile "$SHARED/golden/$m/model.pth" -o "$OUT/$m-cpu.so" 2> /dev/null
  for dev in cpu gpu; do
    lib=$OUT/$m.so; [ $dev = cpu ] && lib=$OUT/$m-cpu.so
    $BIN/rwkv-run "$lib" --weights "$SHARED/golden/$m/model.pth" --mode gpt \
      --tokens "$tokens" --logits-out "$OUT/$m-$dev.npy" > /dev/null
  done
  /usr/bin/python3 -c "
import numpy as np
c, g = np.load('$OUT/$m-cpu.npy'), np.load('$OUT/$m-gpu.npy')
d = float(np.abs(c - g).max())
print(f'$m: max |gpu - cpu| = {d:.3g} ->', 'ok' if d < 1e-3 else 'FAIL')"
done

echo "== 4. speed"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
# Peak HBM bandwidth (GB/s) by product name (vendor data sheets).
case "$name" in
  *H200*) hbm=4800 ;; *H100*SXM*|*H100\ 80GB\ HBM3*) hbm=3350 ;;
  *H100*) hbm=2000 ;; *A100*) hbm=2039 ;; *L40S*) hbm=864 ;; *) hbm=0 ;;
esac
for preset in 0.1b 1.5b; do
  [ -f "$OUT/rwkv-$preset.pth" ] ||
    $BIN/rwkv-init --preset $preset -o "$OUT/rwkv-$preset.pth" > /dev/null
  $BIN/rwkv-compile "$OUT/rwkv-$preset.pth" --target=cuda --cuda-arch="$ARCH" \
    -o "$OUT/rwkv-$preset.so"
  echo "-- $preset on $name"
  $BIN/rwkv-run "$OUT/rwkv-$preset.so" --weights "$OUT/rwkv-$preset.pth" \
    --bench | tee "$OUT/bench-$preset.txt"
  gbs=$(awk '/decode bandwidth/ { print $3 }' "$OUT/bench-$preset.txt")
  [ "$hbm" -gt 0 ] && awk -v g="$gbs" -v h="$hbm" \
    'BEGIN { printf "decode: %.1f%% of %d GB/s HBM\n", 100 * g / h, h }'
done
# Prefill with the tensor-core projections (the default gpu-mma=f32) against
# the FMA warps (gpu-mma=off) and the rounded one-mma form, same run.
for mma in off bf16; do
  $BIN/rwkv-compile "$OUT/rwkv-0.1b.pth" --target=cuda --cuda-arch="$ARCH" \
    --pipeline-options gpu-mma=$mma -o "$OUT/rwkv-0.1b-mma-$mma.so"
  echo "-- 0.1b, gpu-mma=$mma"
  $BIN/rwkv-run "$OUT/rwkv-0.1b-mma-$mma.so" --weights "$OUT/rwkv-0.1b.pth" \
    --bench | tee "$OUT/bench-0.1b-mma-$mma.txt"
done
# The WKV7 recurrence alone, forward + backward, at the shape of peers.md
# §2b (B=8, T=4096, C=4096 = 64 heads of 64; the chunked hand-written CUDA
# kernel 8 ms on an H100, fla 64 ms), as a --kernel wkv7 library: the time
# inside the entry points (the kernels, no host copies), and the CPU's.
echo "== 5. WKV7 forward + backward (B=8, T=4096, C=4096)"
$BIN/rwkv-compile --kernel wkv7 --batch 8 --ctx 4096 --heads 64 --head-size 64 \
  --target=cuda --cuda-arch="$ARCH" -o "$OUT/wkv7-b8t4096c4096.so"
$BIN/rwkv-wkv7-bench "$OUT/wkv7-b8t4096c4096.so" --iters 3 --warmup 1
$BIN/rwkv-compile --kernel wkv7 --batch 8 --ctx 4096 --heads 64 --head-size 64 \
  -o "$OUT/wkv7-b8t4096c4096-cpu.so"
$BIN/rwkv-wkv7-bench "$OUT/wkv7-b8t4096c4096-cpu.so" --iters 1 --warmup 0 \
  --threads "$(nproc)"
