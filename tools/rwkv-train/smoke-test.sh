#!/usr/bin/env bash
# End-to-end check of rwkv-train without the compiled training step
# (--fake-gradient): option errors, a run with periodic saves, a resume, the
# refusal of another model's resume file, SIGINT. Usage:
#   smoke-test.sh BIN_DIR VOCAB WORK_DIR
set -u
bin=$1 vocab=$2 work=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
expect_error() { # expect_error REGEX ARGS...
  local re=$1; shift
  out=$("$bin/rwkv-train" "$@" 2>&1) && fail "succeeded: $*"
  grep -qE -- "$re" <<<"$out" || fail "no '$re' in: $out"
}
small="--n-embd 64 --head-size 64 --vocab 65536 --lora-w 32 --lora-a 32 --lora-v 32 --lora-g 32"
"$bin/rwkv-init" --n-layer 1 $small -o base.pth >/dev/null || fail rwkv-init
"$bin/rwkv-init" --n-layer 2 $small -o other.pth >/dev/null || fail rwkv-init
for i in $(seq 30); do echo "line $i of a tiny corpus"; done >c.txt
echo '{"text": "a"}' >bad.jsonl && echo '{"text": 1}' >>bad.jsonl
run="--model base.pth --vocab $vocab --out t.pth --ctx 8"

expect_error "missing --data" --model base.pth --out t.pth --ctx 8 --steps 1
expect_error "exactly one of --steps and --epochs" $run --data c.txt
expect_error "--batch must be >= 1" $run --data c.txt --steps 1 --batch 0
expect_error "--beta2 must be in" $run --data c.txt --steps 1 --beta2 1
expect_error "bad.jsonl:2: expected an object" $run --data bad.jsonl --steps 1
expect_error "nope: no such file" $run --data nope --steps 1
expect_error "fewer than one window" --model base.pth --vocab "$vocab" \
  --out t.pth --data c.txt --steps 1 --ctx 100000
expect_error "--out must differ" --model base.pth --out base.pth \
  --data c.txt --vocab "$vocab" --ctx 8 --steps 1

"$bin/rwkv-train" $run --data c.txt --steps 4 --save-every 2 --fake-gradient \
  --log loss.jsonl --lr 1e-3 --lr-final 1e-4 --warmup 1 >out.txt 2>&1 ||
  fail "training run: $(cat out.txt)"
grep -q "step 4 loss" out.txt || fail "no step line: $(cat out.txt)"
[ "$(wc -l <loss.jsonl)" = 4 ] || fail "loss log: $(cat loss.jsonl)"
[ -f t.pth.resume ] || fail "no resume file"
ls -a | grep -q tmp && fail "temporary files left: $(ls -a)"
"$bin/rwkv-inspect" t.pth >/dev/null 2>&1 || [ ! -x "$bin/rwkv-inspect" ] ||
  fail "rwkv-inspect t.pth"

"$bin/rwkv-train" $run --data c.txt --steps 6 --fake-gradient \
  --resume t.pth.resume --log loss.jsonl >out.txt 2>&1 || fail "resume: $(cat out.txt)"
grep -q "wrote t.pth (step 6" out.txt || fail "resume: $(cat out.txt)"
# Resumed from the step-2 save: steps 3..6 are appended.
[ "$(wc -l <loss.jsonl)" = 8 ] || fail "resumed loss log: $(cat loss.jsonl)"
tail -1 loss.jsonl | grep -q '"step": 6,' || fail "resumed log: $(cat loss.jsonl)"
expect_error "written for a different model" --model other.pth --out o.pth \
  --data c.txt --vocab "$vocab" --ctx 8 --steps 6 --fake-gradient \
  --resume t.pth.resume

# SIGINT: a resumable save and exit status 130.
rm -f t.pth t.pth.resume
"$bin/rwkv-train" $run --data c.txt --steps 100000 --fake-gradient \
  >out.txt 2>&1 &
pid=$!
for i in $(seq 100); do grep -q "steps of" out.txt && break; sleep 0.1; done
sleep 0.5
kill -INT $pid
wait $pid
rc=$?
[ $rc = 130 ] || fail "SIGINT exit status $rc: $(cat out.txt)"
grep -q "interrupted at step" out.txt || fail "SIGINT: $(cat out.txt)"
[ -f t.pth ] && [ -f t.pth.resume ] || fail "SIGINT: files missing"
echo "rwkv-train smoke test passed"
