#!/usr/bin/env bash
# The ptxas resource report of every kernel that rwkv-compile --target=cuda
# generates, for the golden models and the 0.1B shape, on sm_80 and sm_90:
# one line per kernel (registers, stack, spills, shared memory) in
# $OUT/<model>.<arch>.ptxas, and a summary per library on stdout (the table
# in docs/codegen.md). Needs the CUDA toolkit's ptxas, no GPU.
# Usage: bench/gpu/ptxas-report.sh [OUT]   (default build/ptxas-report)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/bin}
OUT=${1:-build/ptxas-report}
SHARED=${RWKV_SHARED_DIR:-../shared}
PTXAS=${PTXAS:-$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)}
mkdir -p "$OUT"
[ -f "$OUT/rwkv-0.1b.pth" ] ||
  "$BIN/rwkv-init" --preset 0.1b -o "$OUT/rwkv-0.1b.pth" > /dev/null
printf '%-10s %-6s %8s %9s %9s %7s %7s %6s %10s\n' model arch kernels \
  "regs max" "regs avg" spills stack smem "compile s"
for model in tiny tiny2 tiny-v4 tiny-v5 tiny-v6 0.1b; do
  if [ "$model" = 0.1b ]; then ckpt=$OUT/rwkv-0.1b.pth
  else ckpt=$SHARED/golden/$model/model.pth; fi
  for arch in sm_80 sm_90; do
    ptx=$OUT/$model.$arch.ptx
    start=$(date +%s.%N)
    "$BIN/rwkv-compile" "$ckpt" --target=cuda --cuda-arch=$arch --emit=ptx \
      -o "$ptx"
    "$PTXAS" -arch=$arch -O3 -v "$ptx" -o "$OUT/$model.$arch.cubin" 2>&1 |
      awk '/Compiling entry function/ { gsub(/\047/, "", $7); name = $7 }
           /bytes stack frame/ { stack = $1; spill = $5 + $9 }
           /Used [0-9]+ registers/ {
             smem = 0
             for (i = 1; i <= NF; ++i) if ($i == "smem") smem = $(i - 2)
             print name, $5, stack, spill, smem }' > "$OUT/$model.$arch.ptxas"
    end=$(date +%s.%N)
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
    awk -v m="$model" -v a="$arch" -v t="$secs" '
      { n++; r += $2; if ($2 > mr) mr = $2; s += $4; if ($3 > st) st = $3;
        if ($5 > sm) sm = $5 }
      END { printf "%-10s %-6s %8d %9d %9.1f %7d %7d %6d %10.1f\n",
                   m, a, n, mr, r / n, s, st, sm, t }' "$OUT/$model.$arch.ptxas"
  done
done
