#!/bin/sh
# Every example of every `--help` and of the README runs, and every model it
# makes is sane (issue 14 item 8: the help examples pruned every layer to 90%
# and made an 11.44% model with exit 0).
#
# To fit the suite's time budget the examples run as written on a small copy
# of Fashion-MNIST ($TML_DATA_DIR: the first 4000 training and 500 test
# images), on models trained once here. File names in the examples are
# fixtures: lenet5.tmf / base.tmf are a trained LeNet-5, *int8* and small.tmf
# its compressed int8 versions, dscnn/kws names stand for those too (only the
# name matters to the example); train and finetune get a float small.tmf.
# A model an example writes must score within MAX_DROP points of the trained
# baseline on the test images, unless it was freshly created (untrained) or
# is made for other data (then it is evaluated on that data when there is
# some, else only loaded).
. "$(dirname "$0")/lib.sh"
# On 4000 images one epoch of fine-tuning is ~110 steps, a fifteenth of the real
# one: `prune --sparsity 0.9 --global --epochs 1` loses 11-16 points here (two
# builds whose float sums differ in the last bits) but 1.7 on the full data
# (91.87% -> 90.21%, the zoo LeNet-5). The failures this test exists for were
# 60-75 points down (11.44%, 18.1%, 24.6% models).
MAX_DROP=25
# Under ASan (10-20x slower) the examples that train are left out and the
# baseline trains 2 epochs: the rest still runs every other code path.
if [ $ASAN -eq 1 ]; then
  echo "ASan build: the examples that train or fine-tune are skipped (they run in the release suite)"
fi
BASE_MIN=70; [ $ASAN -eq 1 ] && BASE_MIN=40 # the baseline's accuracy (2 epochs under ASan)
FASHION=${TML_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
# TML_EXAMPLES_SHARD=I/N: run only the examples numbered I mod N (ctest runs the
# test as two shards, each with its own fixtures, so that on 2 cores the
# suite's longest test is half as long); the README pipeline runs in the last.
SHARD=${TML_EXAMPLES_SHARD:-0/1}
SHARD_I=${SHARD%/*}
SHARD_N=${SHARD#*/}
case "$SHARD_I/$SHARD_N" in
  *[!0-9/]* | /* | */) echo "bad TML_EXAMPLES_SHARD '$SHARD' (I/N)" >&2; exit 2 ;;
esac
[ "$SHARD_I" -lt "$SHARD_N" ] || { echo "bad TML_EXAMPLES_SHARD '$SHARD' (I < N)" >&2; exit 2; }
[ "$SHARD_N" -gt 1 ] && echo "shard $SHARD_I of $SHARD_N: examples numbered $SHARD_I mod $SHARD_N"

# ---- the small dataset -----------------------------------------------------------
be32() {
  printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"
}
subset() { # SRC.gz DST.gz N HEADER_BYTES BYTES_PER_ITEM
  { gunzip -c "$1" | head -c 4; be32 "$3"; gunzip -c "$1" | tail -c +9 | head -c $(($4 - 8 + $3 * $5)); } | gzip -1 >"$2"
}
D=$W/data/fashion-mnist
mkdir -p "$D"
subset "$FASHION/train-images-idx3-ubyte.gz" "$D/train-images-idx3-ubyte.gz" 4000 16 784
subset "$FASHION/train-labels-idx1-ubyte.gz" "$D/train-labels-idx1-ubyte.gz" 4000 8 1
subset "$FASHION/t10k-images-idx3-ubyte.gz" "$D/t10k-images-idx3-ubyte.gz" 500 16 784
subset "$FASHION/t10k-labels-idx1-ubyte.gz" "$D/t10k-labels-idx1-ubyte.gz" 500 8 1
export TML_DATA_DIR=$W/data

# `tinyml` in the examples is the program under test
mkdir -p "$W/bin"
ln -sf "$T" "$W/bin/tinyml"
PATH=$W/bin:$PATH
export PATH

top1() { # MODEL [DATA]: top-1 % on the test images (or on DATA)
  tinyml eval "$1" --data "${2:-fashion-mnist}" --format csv --no-per-class -q 2>/dev/null | awk -F, '!/^#/ && ++n == 2 {print $4}'
}

# ---- fixtures, trained once ---------------------------------------------------------
F=$W/fixtures
mkdir -p "$F/out/sweep" "$F/firmware"
cd "$F" || exit 1
# with the train examples' own options, so that --resume lenet5.last.tmf resumes
# it; the examples that run exactly this command reuse it (training is
# deterministic: the same command gives the same model)
TRAIN0="tinyml create lenet5 | tinyml train --data fashion-mnist -o"
EP=""; [ $ASAN -eq 1 ] && EP="--epochs 2"
# shellcheck disable=SC2086
tinyml create lenet5 -q | tinyml train --data fashion-mnist $EP -q -o lenet5.tmf >/dev/null || fail "train the baseline"
mkdir -p "$W/train0"
cp lenet5.tmf lenet5.last.tmf "$W/train0/"
BASE=$(top1 lenet5.tmf)
echo "baseline lenet5 on the small data: $BASE%"
CHECKS=$((CHECKS + 1)); awk -v a="$BASE" -v m="$BASE_MIN" 'BEGIN{exit !(a > m)}' || fail "the baseline only reaches $BASE%"
rm -f lenet5.best.tmf
cp lenet5.tmf base.tmf
cp lenet5.tmf dscnn.tmf
tinyml create lenet300 -q | tinyml train --data fashion-mnist --epochs 3 --val 500 --no-checkpoint -q -o lenet300.tmf >/dev/null
tinyml prune lenet5.tmf --sparsity 0.8 --global --epochs 1 --data fashion-mnist --no-checkpoint -q -o pruned.tmf >/dev/null
tinyml cluster pruned.tmf --bits 5 -q -o clustered.tmf >/dev/null
tinyml quantize clustered.tmf --calib fashion-mnist -q -o small.tmf >/dev/null
tinyml quantize lenet5.tmf --calib fashion-mnist -q -o lenet5-int8.tmf >/dev/null
cp lenet5-int8.tmf dscnn-int8.tmf
cp lenet5-int8.tmf kws-int8.tmf
cp lenet5-int8.tmf kws.tmf
head -c $((2 * 784)) /dev/zero >in.bin # two int8 input records for `run`
tinyml export lenet5-int8.tmf --tflite -o kws_ref_model.tflite -q >/dev/null
cp kws_ref_model.tflite kws.tflite
tinyml sensitivity lenet5.tmf --data fashion-mnist --limit 300 --range 0:0.9:0.3 --json sens.json --csv sens.csv -q >/dev/null
tinyml export lenet5.tmf --onnx -o lenet5.onnx -q
tinyml create mobilenet-tiny --input 96x96x3 -q | tinyml export --onnx -o mobilenet.onnx -q
# the tabular examples (they get these files; the others keep a directory of
# Fashion-MNIST models, as `report *.tmf` expects): 8 features, 3 classes
mkdir -p "$W/tabular"
cd "$W/tabular" || exit 1
awk 'BEGIN{srand(3); print "a,b,c,d,e,f,g,h,label"; for (i = 0; i < 900; i++) { k = i % 3; line = "";
     for (j = 0; j < 8; j++) line = line sprintf("%.3f,", (j < 3 ? 100 * k * (j + 1) : 0) + (rand() - 0.5) * 150 * (j + 1));
     print line k } }' >my.csv
tinyml create lenet300 --input 8 --classes 3 -q | tinyml train --data csv:my.csv --normalize auto --val-split 0.2 --no-checkpoint -q -o mlp.tmf >/dev/null
cd "$F" || exit 1
printf 'id,sparsity,bits,method,finetune_epochs,bytes,ratio,top1%%,drop,seconds\nbase,0,0,none,0,1000,1,90,0,0\ns0.5_b0_none,0.5,0,none,0,500,2,89,1,1\ns0.5_b0_minmax,0.5,0,minmax,0,200,5,88,2,1\n' >out/sweep/sweep.csv
ls >"$W/fixtures.list"
for f in lenet5 lenet300 pruned clustered small ../tabular/mlp; do
  [ -s "$f.tmf" ] || fail "fixture $f.tmf was not made"
done

# ---- running an example -----------------------------------------------------------------
# The baseline's own training command, run once above, becomes a copy of its
# result; the pruning stage the quantize, cluster and export examples share runs
# in the first of them and is a copy of its output in the others (both
# deterministic: the same command gives the same bytes).
PRUNE0="tinyml prune --sparsity 0.9 --global --epochs 1 --data fashion-mnist base.tmf"
reuse_runs() { # LINE -> LINE
  case "$1" in
    "$TRAIN0 "*.tmf)
      out=${1#"$TRAIN0 "}
      printf '%s\n' "cp '$W/train0/lenet5.tmf' '$out' && cp '$W/train0/lenet5.last.tmf' '${out%.tmf}.last.tmf'" ;;
    "$PRUNE0 "*"|"*)
      rest=${1#"$PRUNE0"}
      case "${rest%%|*}" in *[![:space:]]*) printf '%s\n' "$1"; return ;; esac
      rest="|${rest#*|}"
      if [ -s "$W/prune0.tmf" ]; then
        printf '%s\n' "cat '$W/prune0.tmf' $rest"
      else
        printf '%s\n' "$PRUNE0 | tee '$W/prune0.part' $rest && mv '$W/prune0.part' '$W/prune0.tmf'"
      fi ;;
    *) printf '%s\n' "$1" ;;
  esac
}
N=0
K=0 # every example, of every shard
run_example() { # WHERE LINE
  K=$((K + 1))
  [ $(((K - 1) % SHARD_N)) -eq "$SHARD_I" ] || return 0
  if [ $ASAN -eq 1 ]; then
    case "$2" in *train* | *finetune* | *--epochs* | *"sensitivity "*) echo "skip under ASan: $2"; return ;; esac
  fi
  N=$((N + 1))
  E=$W/ex$N
  rm -rf "$E"
  cp -rp "$F" "$E"
  cd "$E" || return
  line=$2
  case "$line" in
    "tinyml train "* | "tinyml finetune "*) cp lenet300.tmf small.tmf ;;
  esac
  case "$line" in *my.csv* | *mlp.tmf*) cp -p "$W/tabular/"* . ;; esac
  case "$line" in
    "tinyml profile "*)
      if ! command -v arm-none-eabi-gcc >/dev/null 2>&1 || ! command -v qemu-system-arm >/dev/null 2>&1; then
        echo "skip: '$line' needs arm-none-eabi-gcc and qemu-system-arm (scripts/install-deps.sh --mcu)"
        return
      fi ;;
  esac
  CHECKS=$((CHECKS + 1))
  t0=$(date +%s)
  sh -c "$(reuse_runs "$line")" >"$E.out" 2>"$E.err"
  rc=$?
  if [ $rc -ne 0 ]; then
    fail "$1: '$line' exited $rc"
    sed 's/^/    /' "$E.err" | head -5 >&2
    return
  fi
  echo "$(($(date +%s) - t0))s  $line"
  # every model the example wrote
  for m in $(find . -name '*.tmf' -newer "$W/fixtures.list" | sort); do
    m=${m#./}
    case "$line" in
      "tinyml create "*train*) ;;                       # created and trained: checked below
      "tinyml create "* | *mobilenet*) continue ;;      # untrained
      *"import "*"--scale "*) continue ;;               # preprocessing set for another model's data
    esac
    case "$m" in *.last.tmf | *.best.tmf) continue ;; esac
    acc=$(top1 "$m")
    if [ -z "$acc" ]; then
      # made for other data: the CSV of the tabular examples, else it must load
      acc=$(top1 "$m" csv:my.csv)
      if [ -n "$acc" ]; then
        CHECKS=$((CHECKS + 1)); awk -v a="$acc" 'BEGIN{exit !(a > 60)}' || fail "$1: '$line' wrote $m at $acc% on my.csv"
      else
        expect_exit 0 "$1: $m loads" -- tinyml info "$m"
      fi
      continue
    fi
    CHECKS=$((CHECKS + 1))
    awk -v a="$acc" -v b="$BASE" -v d=$MAX_DROP 'BEGIN{exit !(a >= b - d)}' \
      || fail "$1: '$line' wrote $m with top-1 $acc% (baseline $BASE%, at most $MAX_DROP points below)"
  done
  # a layer of a streamed segment is counted at the segment's last layer: its
  # own row says "-", never a misleading 0 instructions
  case "$line" in
    "tinyml profile "*"--format md"*) ;;
    "tinyml profile "*)
      CHECKS=$((CHECKS + 1))
      ! awk '($2 == "conv2d" || $2 == "dense" || $2 == "depthwise_conv2d") && $5 == "0"' "$E.out" | grep -q . ||
        fail "$1: '$line' shows 0 instructions for a layer with MACs" ;;
  esac
  # exported C compiles (for the host: it is portable C99)
  case "$line" in
    *"export "*"--c "*)
      for c in $(find . -name '*.c' -newer "$W/fixtures.list"); do
        if command -v cc >/dev/null 2>&1; then
          expect_exit 0 "$1: $c compiles" -- cc -c -o /dev/null "$c"
        fi
      done ;;
  esac
}

# ---- every command's --help examples ----------------------------------------------------------
for cmd in $(tinyml --help | awk '/^Commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}'); do
  tinyml "$cmd" --help | awk '/^Examples?:/{on=1; next} on && /^$/{on=0} on' \
    | sed 's/[[:space:]]*#.*$//' \
    | awk '{ if (sub(/\\$/, "")) { held = held $0; next } print held $0; held = "" }' \
    | sed 's/^[[:space:]]*//' >"$W/examples.$cmd"
  CHECKS=$((CHECKS + 1)); [ -s "$W/examples.$cmd" ] || fail "$cmd --help has no example"
  while IFS= read -r line; do
    [ -n "$line" ] && run_example "$cmd --help" "$line"
  done <"$W/examples.$cmd"
done

# ---- the README's pipeline, as one script in an empty directory -------------------------------
if [ "$SHARD_I" -ne $((SHARD_N - 1)) ]; then
  echo "ran $N of $K help examples (the README pipeline runs in shard $((SHARD_N - 1)))"
  finish
fi
if [ $ASAN -eq 1 ]; then
  echo "skip under ASan: the README pipeline (it trains)"
  echo "ran $N of $K help examples"
  finish
fi
R=$W/readme
mkdir -p "$R"
awk '/^    tinyml create lenet5 \| tinyml train/{on=1} on && /^    [^ ]/ && !/^    tinyml/{on=0} on && /^    /' \
  "$TML_SOURCE_DIR/README.md" | sed 's/^    //' >"$R/pipeline.sh"
CHECKS=$((CHECKS + 1)); [ "$(grep -c 'tinyml' "$R/pipeline.sh")" -ge 5 ] || fail "README pipeline not found"
cd "$R" || exit 1
while IFS= read -r line; do reuse_runs "$line"; done <"$R/pipeline.sh" >"$R/run.sh"
expect_exit 0 "README pipeline" -- sh "$R/run.sh"
for m in base small; do
  acc=$(top1 "$R/$m.tmf")
  CHECKS=$((CHECKS + 1)); awk -v a="$acc" 'BEGIN{exit !(a > 70)}' || fail "README pipeline: $m.tmf at $acc%"
done
CHECKS=$((CHECKS + 1)); [ -s "$R/firmware/model/model.c" ] || fail "README pipeline: no firmware/model/model.c"
echo "ran $N of $K help examples"
finish
