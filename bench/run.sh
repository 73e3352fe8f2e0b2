#!/usr/bin/env bash
# The performance run recorded in docs/PERFORMANCE.md. Not part of CI (no
# timing assertions anywhere): run it on an idle machine.
#
#   bash bench/run.sh [OUT_DIR]
#
# 1. decode / prefill of the 0.1B shape, bf16, fp32, int8 (per row and in
#    groups of 32) and int4 (rwkv-quantize) weights, 1 and 2 threads, against the machine's bandwidth
#    and FMA peak (rwkv-bench), with the cold compile time of each library;
#    on AVX512-BF16 hosts also bf16 through vdpbf16ps (bf16-dot=round|exact)
#    against the bf16 dot-product peak; on VNNI hosts also int8 and int4
#    without the integer dot products (int-dot=off);
#    llama.cpp-style Q4_0 and Q8_0 GGUF files of the same weights
#    (unittests/checkpoint/make_gguf.py, needs Python with torch): Q4_0 runs
#    on the int4 kernels, Q8_0 on the int8 ones (groups of 32);
# 2. batched decode (rwkv-compile --batch N, N = 1, 2, 4, 8, 16), int8 and
#    bf16: aggregate tok/s of N sequences; on VNNI hosts int8 N = 1 and 8
#    with int-dot=vnni8 too, on AVX512-BF16 hosts bf16 N = 1 and 8 with
#    bf16-dot=round;
# 3. peak RSS of opening (parsing, detecting, validating) a large synthetic
#    checkpoint, .pth and safetensors, against its file size.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/bin
OUT=${1:-build/bench}
mkdir -p "$OUT"
echo "load average: $(cat /proc/loadavg)"

# compile WEIGHTS LIB [rwkv-compile options]: prints the cold compile time.
compile() {
  local w=$1 lib=$2
  shift 2
  [ -f "$lib" ] && return
  local t0=$(date +%s%N)
  "$BIN/rwkv-compile" "$w" -o "$lib" "$@"
  local ms=$((($(date +%s%N) - t0) / 1000000))
  echo "compile: $(basename "$lib") in $((ms / 1000)).$(printf %03d $((ms % 1000))) s"
}

PY=${RWKV_PYTHON:-/usr/bin/python3}

for dtype in bf16 fp32; do
  m="$OUT/0.1b-$dtype"
  [ -f "$m.pth" ] || "$BIN/rwkv-init" --preset 0.1b --dtype "$dtype" -o "$m.pth"
done
q="$OUT/0.1b-int8"
[ -f "$q.safetensors" ] ||
  "$BIN/rwkv-quantize" "$OUT/0.1b-bf16.pth" "$q.safetensors"
qg="$OUT/0.1b-int8g32"
[ -f "$qg.safetensors" ] ||
  "$BIN/rwkv-quantize" "$OUT/0.1b-bf16.pth" "$qg.safetensors" --group 32
q4="$OUT/0.1b-int4"
[ -f "$q4.safetensors" ] ||
  "$BIN/rwkv-quantize" "$OUT/0.1b-bf16.pth" "$q4.safetensors" --type int4
ls -l "$OUT/0.1b-bf16.pth" "$OUT/0.1b-fp32.pth" "$q.safetensors" \
  "$qg.safetensors" "$q4.safetensors"

# decode_prefill CKPT LIB LABEL [compile options...]: compiles LIB, then
# decode and prefill on 1 and 2 threads.
decode_prefill() {
  local m=$1 lib=$2 label=$3
  shift 3
  compile "$m" "$lib" "$@"
  for threads in 1 2; do
    echo "== $(basename "$m")$label, $threads thread(s)"
    "$BIN/rwkv-bench" "$lib" --weights "$m" --threads "$threads" \
      --prompt 512 --decode 32
  done
}

for m in "$OUT/0.1b-bf16.pth" "$OUT/0.1b-fp32.pth" "$q.safetensors" \
  "$qg.safetensors" "$q4.safetensors"; do
  decode_prefill "$m" "${m%.*}.so" ""
done

# GGUF files as llama.cpp writes them (the head of a Q4_0 file is Q6_K,
# read as bf16).
g="$OUT/0.1b"
if [ -f "$g-q4_0.gguf" ] ||
  "$PY" unittests/checkpoint/make_gguf.py "$OUT/0.1b-bf16.pth" \
    --types q4_0,q8_0 -o "$g-{type}.gguf"; then
  for m in "$g-q4_0.gguf" "$g-q8_0.gguf"; do
    decode_prefill "$m" "${m%.*}-gguf.so" ""
  done
else
  echo "GGUF: make_gguf.py failed (needs $PY with torch and numpy)"
fi

if grep -qw avx512_bf16 /proc/cpuinfo; then
  m="$OUT/0.1b-bf16.pth"
  for mode in round exact; do
    lib="$OUT/0.1b-bf16-dot-$mode.so"
    compile "$m" "$lib" --pipeline-options "bf16-dot=$mode"
    echo "== 0.1b-bf16.pth, bf16-dot=$mode, 2 threads"
    "$BIN/rwkv-bench" "$lib" --weights "$m" --threads 2 --prompt 512 \
      --decode 32
  done
fi

# int8 / int4 through vpdpbusd is the default on VNNI hosts (int-dot=auto);
# the widening path next to it, in the same run.
if grep -qw avx512_vnni /proc/cpuinfo || grep -qw avx_vnni /proc/cpuinfo; then
  for m in "$q.safetensors" "$q4.safetensors"; do
    decode_prefill "$m" "${m%.*}-widen.so" ", int-dot=off" \
      --pipeline-options int-dot=off
  done
fi

for m in "$q.safetensors" "$OUT/0.1b-bf16.pth"; do
  for n in 1 2 4 8 16; do
    lib="${m%.*}-b$n.so"
    compile "$m" "$lib" --batch "$n"
    echo "== batched decode: $(basename "$m"), N = $n, 2 threads"
    "$BIN/rwkv-bench" "$lib" --weights "$m" --threads 2 --prompt 16 \
      --decode 32 | grep decode
  done
done

# N = 1 and 8 of one weights file and pipeline option, compiled once and
# alternated twice in the same run, since their ratio is the figure.
batched_pair() {
  local m=$1 stem=$2 option=$3
  for n in 1 8; do
    compile "$m" "$stem-b$n.so" --batch "$n" --pipeline-options "$option"
  done
  for round in 1 2; do
    for n in 1 8; do
      echo "== batched decode, $option: N = $n, 2 threads (round $round)"
      "$BIN/rwkv-bench" "$stem-b$n.so" --weights "$m" \
        --threads 2 --prompt 16 --decode 64 | grep decode
    done
  done
}

# Batched int8 decode with x rounded to 8 bits (int-dot=vnni8: one vpdpbusd
# per step instead of two; its own golden bound, docs/codegen.md).
if grep -qw avx512_vnni /proc/cpuinfo || grep -qw avx_vnni /proc/cpuinfo; then
  batched_pair "$q.safetensors" "$q-x8" int-dot=vnni8
fi

# Batched bf16 decode with x rounded to bf16 (bf16-dot=round: vdpbf16ps,
# llama.cpp's BF16 arithmetic; its own golden bound), next to the default
# (f32 FMAs) N = 1 and 8 above.
if grep -qw avx512_bf16 /proc/cpuinfo; then
  batched_pair "$OUT/0.1b-bf16.pth" "$OUT/0.1b-bf16-round" bf16-dot=round
fi

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
