#!/usr/bin/env bash
# The long fuzzing run recorded in docs/fuzzing.md. Not part of CI (ctest
# -L fuzz runs each target for 15 s): run it on an idle machine.
#
#   bash bench/fuzz-hour.sh [SECONDS_PER_FUZZER] [OUT_DIR]
#   JOBS=4 FUZZERS="world-tokenizer state-file" bash bench/fuzz-hour.sh 600
#
# Runs every libFuzzer target of unittests/fuzz (built by `ninja -C build`
# when clang++-14 exists) for SECONDS_PER_FUZZER (default 3600) each, JOBS
# (default nproc) at a time, from the same seeds as CI. New inputs go to
# OUT_DIR/<fuzzer>/corpus (default OUT_DIR: build/fuzz-hour), crashes, leaks,
# timeouts and OOMs to OUT_DIR/<fuzzer>/artifacts. A target stops at its first
# finding. Prints, per target, the executions, executions per second, the
# coverage reached and the findings; exits 1 if there is any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-3600}
OUT=${2:-build/fuzz-hour}
BUILD=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
FZ=$BUILD/unittests/fuzz
SEEDS=unittests/fuzz

# name | seed directories | extra flags (the same as the ctest of each).
TARGETS=(
  "checkpoint-pth|$FZ/corpus/pth|"
  "checkpoint-safetensors|$FZ/corpus/safetensors|"
  "bpe-tokenizer|$SEEDS/bpe-seeds|-max_len=4096"
  "world-tokenizer|$SEEDS/world-seeds|-max_len=4096"
  "serve-request|$SEEDS/http-seeds|-max_len=4096 -dict=$SEEDS/http.dict"
  "state-file|$FZ/corpus/state $SEEDS/state-seeds|"
  # Skipped until unittests/fuzz builds it.
  "checkpoint-gguf|$FZ/corpus/gguf|"
)

selected() {
  [ -z "${FUZZERS:-}" ] && return 0
  for f in $FUZZERS; do [ "$f" = "$1" ] && return 0; done
  return 1
}

run_one() {
  local name=$1 seeds=$2 flags=$3
  local dir=$OUT/$name
  mkdir -p "$dir/corpus" "$dir/artifacts"
  # shellcheck disable=SC2086 # seeds and flags are word lists
  "$FZ/fuzzers/fuzz-$name" -max_total_time="$SECONDS_EACH" -timeout=25 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" $flags "$dir/corpus" $seeds \
    >"$dir/log" 2>&1 || true
}

echo "load average: $(cat /proc/loadavg)"
echo "$SECONDS_EACH s per fuzzer, $JOBS at a time, output in $OUT"
mkdir -p "$OUT"
names=()
for t in "${TARGETS[@]}"; do
  IFS='|' read -r name seeds flags <<<"$t"
  selected "$name" || continue
  if [ ! -x "$FZ/fuzzers/fuzz-$name" ]; then
    echo "skipped $name: $FZ/fuzzers/fuzz-$name is not built"
    continue
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  echo "start $name"
  run_one "$name" "$seeds" "$flags" &
  names+=("$name")
done
wait

# stat::NAME of a log, or "-".
final_stat() { grep -a "^stat::$2:" "$1" | awk '{print $2}' | tail -1 || true; }

findings=0
printf '\n%-24s %12s %9s %8s %8s %8s  %s\n' fuzzer executions exec/s cov ft \
  corpus findings
for name in "${names[@]}"; do
  log=$OUT/$name/log
  execs=$(final_stat "$log" number_of_executed_units)
  rate=$(final_stat "$log" average_exec_per_sec)
  # The last status line: "#N  REDUCE cov: C ft: F corp: K/..b ...".
  last=$(grep -a -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -E 's/.*cov: ([0-9]+).*/\1/' <<<"$last")
  ft=$(sed -E 's/.*ft: ([0-9]+).*/\1/' <<<"$last")
  corp=$(sed -E 's/.*corp: ([0-9]+)\/.*/\1/' <<<"$last")
  found=$(find "$OUT/$name/artifacts" -type f | sort)
  n=$(grep -c . <<<"$found" || true)
  findings=$((findings + n))
  printf '%-24s %12s %9s %8s %8s %8s  %s\n' "$name" "${execs:--}" \
    "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}" "$n"
  [ -n "$found" ] && sed 's/^/    /' <<<"$found"
done
echo "findings: $findings"
[ "$findings" -eq 0 ]
