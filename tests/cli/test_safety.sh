#!/bin/sh
# Never harmful, never silently wrong (issue 14): what -o may replace, write
# errors on stdout, destinations checked before the work, resource budgets on
# hostile input.
. "$(dirname "$0")/lib.sh"

"$T" create lenet300 -q -o "$W/m.tmf"

# ---- -o never replaces a non-regular file (docs/architecture.md, "Output") ----
# a character device is written through, not replaced (as root the old writer
# turned /dev/null into a regular file; the test makes its own null device)
if mknod "$W/null" c 1 3 2>/dev/null; then
  expect_exit 0 "-o character device" -- "$T" create lenet300 -q -o "$W/null"
  CHECKS=$((CHECKS + 1)); [ -c "$W/null" ] || fail "-o replaced a character device"
else
  echo "skip: mknod not permitted (character device case)"
fi
# a full device (our own /dev/full): the write error is reported, the device stays
if mknod "$W/full" c 1 7 2>/dev/null; then
  expect_exit 1 "-o full device" -- "$T" create lenet300 -q -o "$W/full"
  expect_grep "$W/err" "error:" "-o full device explained"
  CHECKS=$((CHECKS + 1)); [ -c "$W/full" ] || fail "-o replaced a full device"
fi
# a FIFO is written through: the reader gets the model, the FIFO stays
mkfifo "$W/fifo"
timeout 60 cat "$W/fifo" >"$W/fifo.out" &
reader=$!
expect_exit 0 "-o fifo" -- "$T" create lenet300 -q -o "$W/fifo"
wait $reader
CHECKS=$((CHECKS + 1)); [ -p "$W/fifo" ] || fail "-o replaced a FIFO"
expect_exit 0 "model read back from the FIFO" -- "$T" info "$W/fifo.out"
# a symlink is followed: its target is replaced, the link stays a link
cp "$W/m.tmf" "$W/target.tmf"
ln -s target.tmf "$W/link.tmf"
expect_exit 0 "-o symlink" -- "$T" create lenet5 -q -o "$W/link.tmf"
CHECKS=$((CHECKS + 1)); [ -L "$W/link.tmf" ] || fail "-o replaced a symlink"
expect_exit 0 "info through the link" -- "$T" info "$W/target.tmf" --format csv
expect_grep "$W/out" "^conv1," "the link's target received the new model"
# a dangling symlink is refused (like cp): nothing is created
ln -s nowhere/x.tmf "$W/dangling.tmf"
expect_exit 1 "-o dangling symlink" -- "$T" create lenet300 -q -o "$W/dangling.tmf"
expect_grep "$W/err" "symbolic link" "dangling link explained"
CHECKS=$((CHECKS + 1)); [ -L "$W/dangling.tmf" ] && [ ! -e "$W/nowhere" ] || fail "dangling link touched"
# a directory is refused
mkdir -p "$W/adir"
expect_exit 1 "-o directory" -- "$T" create lenet300 -q -o "$W/adir"
expect_grep "$W/err" "directory" "directory explained"
CHECKS=$((CHECKS + 1)); [ -d "$W/adir" ] || fail "-o replaced a directory"
# the other writers share the rule: plots and sensitivity files
expect_exit 1 "plot -o directory" -- "$T" report "$W/m.tmf" --data fashion-mnist --limit 10 --plot "$W/adir" -q
CHECKS=$((CHECKS + 1)); [ -d "$W/adir" ] || fail "report --plot replaced a directory"
# new files get the usual umask-derived mode
(umask 027 && "$T" create lenet300 -q -o "$W/umask.tmf")
CHECKS=$((CHECKS + 1)); [ "$(stat -c %a "$W/umask.tmf")" = 640 ] || fail "umask ignored: mode $(stat -c %a "$W/umask.tmf")"
# no temporary left behind by any of the above
CHECKS=$((CHECKS + 1)); ls -A "$W" | grep -q '^\..*\.[A-Za-z0-9]\{6\}$' && fail "temporaries left: $(ls -A "$W" | grep '^\.')"

# temporaries of killed runs are removed by the next write of that file: the
# suffix starts with the writer's pid in base 62 (AAAB = pid 1, alive; 9999 =
# 14776335, beyond any pid_max: its writer is gone)
: >"$W/.stale.tmf.AAABx1"
touch -d '2 hours ago' "$W/.stale.tmf.AAABx1"
: >"$W/.stale.tmf.9999x2"
: >"$W/.stale.tmf.AAABx3"
expect_exit 0 "write next to stale temporaries" -- "$T" create lenet300 -q -o "$W/stale.tmf"
CHECKS=$((CHECKS + 1)); [ -e "$W/.stale.tmf.AAABx1" ] && fail "an old temporary was not cleaned up"
CHECKS=$((CHECKS + 1)); [ -e "$W/.stale.tmf.9999x2" ] && fail "the temporary of a dead writer was not cleaned up"
CHECKS=$((CHECKS + 1)); [ -e "$W/.stale.tmf.AAABx3" ] || fail "a fresh temporary of a live writer was removed"
rm -f "$W/.stale.tmf.AAABx3"

# ---- reports on stdout: every write error is an error (item 4) ----
if [ -c /dev/full ]; then
  for cmd in "info $W/m.tmf" "info $W/m.tmf --format json" "eval $W/m.tmf --data fashion-mnist --limit 20" \
             "info --help" "--help" "--version"; do
    # shellcheck disable=SC2086
    "$T" $cmd >/dev/full 2>"$W/err"
    rc=$?
    CHECKS=$((CHECKS + 1)); [ $rc -eq 1 ] || fail "'$cmd > /dev/full' exited $rc, expected 1"
    expect_grep "$W/err" "error" "'$cmd > /dev/full' explained"
  done
fi
# a closed stdout
"$T" info "$W/m.tmf" >&- 2>"$W/err"
rc=$?
CHECKS=$((CHECKS + 1)); [ $rc -eq 1 ] || fail "info with a closed stdout exited $rc, expected 1"

# ---- the destination is checked before the work (item 6) ----
# (lenet5 with fine-tuning: the work before the old check took 30 s and more)
"$T" create lenet5 -q -o "$W/m5.tmf"
D="--data fashion-mnist"
for cmd in "prune $W/m5.tmf --sparsity 0.5 --finetune-epochs 1 $D" "cluster $W/m5.tmf --finetune-epochs 1 $D" \
           "quantize $W/m5.tmf --calib fashion-mnist $D" "train $W/m5.tmf $D --epochs 1" "create lenet5" \
           "finetune $W/m5.tmf $D --epochs 1" "qat $W/m5.tmf $D --epochs 1"; do
  start=$(date +%s)
  # shellcheck disable=SC2086
  expect_exit 1 "$cmd -o /nonexistent/x" -- "$T" $cmd -o /nonexistent/x.tmf
  expect_grep "$W/err" "/nonexistent" "$cmd: the bad destination is named"
  CHECKS=$((CHECKS + 1)); [ $(($(date +%s) - start)) -le 5 ] || fail "$cmd -o /nonexistent took $(($(date +%s) - start))s: checked after the work"
done
expect_exit 1 "qat --float-out into a missing dir" -- "$T" qat "$W/m5.tmf" $D --epochs 1 --float-out /nonexistent/f.tmf -o "$W/qat.tmf"
expect_grep "$W/err" "/nonexistent" "qat: bad --float-out named"
CHECKS=$((CHECKS + 1)); [ -e "$W/qat.tmf" ] && fail "qat wrote -o although --float-out cannot be written"
expect_exit 1 "sensitivity --json into a missing dir" -- "$T" sensitivity "$W/m.tmf" --data fashion-mnist --json /nonexistent/s.json
expect_grep "$W/err" "/nonexistent" "sensitivity: bad destination named"
CHECKS=$((CHECKS + 1)); grep -q "sensitivity" "$W/out" && fail "sensitivity ran before checking --json"
expect_exit 1 "export --c into a file" -- "$T" export "$W/m.tmf" --c -o "$W/m.tmf"
# ---- export --c: the pair belongs together (item 5) ----
if command -v cc >/dev/null 2>&1; then
  "$T" create lenet300 -q | "$T" quantize --calib fashion-mnist --calib-samples 16 -q -o "$W/q300.tmf"
  "$T" create lenet300 --seed 2 -q | "$T" quantize --calib fashion-mnist --calib-samples 16 -q -o "$W/q300b.tmf"
  expect_exit 0 "export A" -- "$T" export "$W/q300.tmf" --c -o "$W/exA" -q
  expect_exit 0 "export B" -- "$T" export "$W/q300b.tmf" --c -o "$W/exB" -q
  expect_exit 0 "a fresh pair compiles" -- cc -c -o "$W/m.o" "$W/exA/model.c"
  cp "$W/exB/model.h" "$W/exA/model.h"
  expect_exit 1 "a mixed pair does not compile" -- cc -c -o "$W/m.o" "$W/exA/model.c"
  expect_grep "$W/err" "does not belong to this model.c" "the mixed pair is explained"
  # runs killed at random moments: a pair that compiles (old or new), or one
  # the compiler refuses (never a silently mixed one); the next run cleans up
  "$T" export "$W/q300.tmf" --c -o "$W/exK" -q >/dev/null
  i=0
  mixed=0
  while [ $i -lt 12 ]; do
    m=$W/q300.tmf; [ $((i % 2)) -eq 0 ] && m=$W/q300b.tmf
    "$T" export "$m" --c -o "$W/exK" -q >/dev/null 2>&1 &
    pid=$!
    sleep "0.0$((i * 7 % 10))"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    if ! cc -c -o "$W/k.o" "$W/exK/model.c" 2>"$W/err"; then
      mixed=$((mixed + 1))
      expect_grep "$W/err" "does not belong" "kill $i: a mixed pair is refused by the compiler"
    fi
    i=$((i + 1))
  done
  echo "export kill test: $mixed of 12 kills left a (refused) mixed pair"
  "$T" export "$W/q300.tmf" --c -o "$W/exK" -q >/dev/null
  CHECKS=$((CHECKS + 1)); [ -z "$(ls -A "$W/exK" | grep '^\.')" ] || fail "killed exports left temporaries: $(ls -A "$W/exK" | grep '^\.')"
else
  echo "skip: no C compiler (export pair check)"
fi
# profile --keep DIR builds only in a new directory or one of its own earlier builds
if command -v arm-none-eabi-gcc >/dev/null 2>&1 && command -v qemu-system-arm >/dev/null 2>&1 && [ -s "$W/q300.tmf" ]; then
  mkdir -p "$W/mine" "$W/mine2"
  echo "my notes" >"$W/mine/notes.txt"
  cp "$W/m.tmf" "$W/m.copy"
  ln -s "$W/m.tmf" "$W/mine2/model.c"
  expect_exit 1 "profile --keep into a directory of other files" -- "$T" profile "$W/q300.tmf" --keep "$W/mine" --limit 2 -q
  expect_grep "$W/err" "notes.txt" "the foreign file is named"
  expect_exit 1 "profile --keep where model.c is a symlink" -- "$T" profile "$W/q300.tmf" --keep "$W/mine2" --limit 2 -q
  expect_grep "$W/err" "not a regular file" "the symlink is refused"
  CHECKS=$((CHECKS + 1)); [ "$(cat "$W/mine/notes.txt")" = "my notes" ] && cmp -s "$W/m.tmf" "$W/m.copy" || fail "profile touched a user's files"
  expect_exit 0 "profile --keep into a new directory" -- "$T" profile "$W/q300.tmf" --keep "$W/kept" --limit 2 -q
  expect_exit 0 "profile --keep again (its own build)" -- "$T" profile "$W/q300.tmf" --keep "$W/kept" --limit 2 -q
else
  echo "skip: arm-none-eabi-gcc / qemu-system-arm missing (profile --keep check)"
fi

# ---- images of another size than the model's input: refused before any
# allocation, by every command; a large input bounds the batch (item 7) ----
if [ -n "${TML_DS2PNG:-}" ] && [ -x "$TML_DS2PNG" ]; then
  mkdir -p "$W/big/a" "$W/big/b"
  for i in 1 2 3; do
    "$TML_DS2PNG" --blank 4096 4096 "$W/big/a/$i.png"
    "$TML_DS2PNG" --blank 4096 4096 "$W/big/b/$i.png"
  done
  P="--data png:$W/big"
  O="-o $W/x.tmf"
  for cmd in "eval $W/m.tmf $P" "train $W/m.tmf $P --epochs 1 $O" "prune $W/m.tmf --sparsity 0.5 --epochs 1 $P $O" \
             "cluster $W/m.tmf --epochs 1 $P $O" "quantize $W/m.tmf --calib png:$W/big $O" "sensitivity $W/m.tmf $P" \
             "report $W/m.tmf $P" "compare $W/m.tmf $W/m.tmf $P" "finetune $W/m.tmf $P $O"; do
    # shellcheck disable=SC2086
    expect_exit 1 "${cmd%% *} on 4096x4096 images" -- "$T" $cmd -q
    expect_grep "$W/err" "4096x4096x1 but the model expects 28x28x1" "${cmd%% *}: the sizes are named"
  done
  # a model made for large images: the evaluation batch shrinks to fit memory
  # (8 images of 1024x1024, 64 MiB of activations each: 512 MiB at once before)
  # (not under ASan, whose shadow memory does not fit a ulimit -v)
  if [ $ASAN -eq 0 ]; then
    mkdir -p "$W/big1k/a" "$W/big1k/b"
    for i in 1 2 3 4; do
      "$TML_DS2PNG" --blank 1024 1024 "$W/big1k/a/$i.png"
      "$TML_DS2PNG" --blank 1024 1024 "$W/big1k/b/$i.png"
    done
    "$T" create mobilenet-tiny --input 1024x1024x1 -q -o "$W/mt1k.tmf"
    (ulimit -v 500000 && "$T" eval "$W/mt1k.tmf" --data "png:$W/big1k" --format csv >"$W/out" 2>"$W/err")
    rc=$?
    CHECKS=$((CHECKS + 1)); [ $rc -eq 0 ] || fail "eval of 1024x1024 images in 500 MB: exit $rc ($(head -1 "$W/err"))"
    expect_grep "$W/out" ",8," "all 8 images evaluated"
  fi
else
  echo "skip: ds2png helper not built (image size cases)"
fi

# ---- Ctrl-C during prune / cluster fine-tuning keeps a usable checkpoint (item 16) ----
# (a small CSV and MLP: epochs short enough under ASan, runs far longer than the test)
awk 'BEGIN{srand(5); for (i = 0; i < 2000; i++) {k = i % 3; printf "%.3f,%.3f,%.3f,%.3f,%d\n", k + rand(), 2 * k - rand(), rand(), k * rand(), k}}' >"$W/ck.csv"
printf '{"input": [4], "classes": 3, "layers": [{"type": "dense", "units": 64, "act": "relu"}, {"type": "dense", "units": 3}]}\n' >"$W/ck.json"
"$T" create "$W/ck.json" -q | "$T" train --data "csv:$W/ck.csv" --epochs 2 --no-checkpoint -q -o "$W/ck.tmf" >/dev/null
for cmd in "prune --sparsity 0.8 --global" "cluster --bits 4"; do
  name=${cmd%% *}
  rm -f "$W/ck-$name.last.tmf"
  # shellcheck disable=SC2086
  "$T" $cmd "$W/ck.tmf" --epochs 10000 --data "csv:$W/ck.csv" -q -o "$W/ck-$name.tmf" >/dev/null 2>"$W/ck.err" &
  pid=$!
  i=0
  while [ ! -f "$W/ck-$name.last.tmf" ] && [ $i -lt 3000 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
  kill -INT $pid
  wait $pid
  rc=$?
  CHECKS=$((CHECKS + 1)); [ $rc -eq 130 ] || fail "$name: Ctrl-C exit $rc, expected 130"
  expect_grep "$W/ck.err" "last good checkpoint is .*ck-$name.last.tmf" "$name: the interrupt names the checkpoint"
  CHECKS=$((CHECKS + 1)); [ -e "$W/ck-$name.tmf" ] && fail "$name: an interrupted run wrote its final output"
  expect_exit 0 "$name: the checkpoint is a usable model" -- "$T" eval "$W/ck-$name.last.tmf" --data "csv:$W/ck.csv" --format csv
  expect_exit 0 "$name: its history says what it is" -- "$T" info "$W/ck-$name.last.tmf" --history
  expect_grep "$W/out" "fine-tuning epoch\|fine-tune epoch" "$name: checkpoint history"
  expect_grep "$W/out" "Bytes after each compression stage" "$name: the checkpoint is compressed"
done

# ---- a name that matches nothing is an error (item 12) ----
expect_exit 2 "quantize --weight-only --layer nosuch" -- "$T" quantize "$W/m.tmf" --weight-only --layer nosuch -q -o "$W/x.tmf"
expect_grep "$W/err" "nosuch" "the unknown layer is named"
expect_grep "$W/err" "fc1" "the known layers are listed"

# ---- the same command writes the same bytes (item 13) ----
for i in 1 2; do
  SOURCE_DATE_EPOCH=1700000000 "$T" train "$W/m.tmf" --data fashion-mnist --limit 1500 --val 300 --epochs 1 \
    --no-checkpoint -q -o "$W/rep$i.tmf" >/dev/null 2>"$W/err" || fail "train for reproducibility"
done
CHECKS=$((CHECKS + 1)); cmp -s "$W/rep1.tmf" "$W/rep2.tmf" || fail "two identical train runs wrote different bytes"
finish
