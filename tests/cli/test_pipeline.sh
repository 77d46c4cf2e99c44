#!/bin/sh
# End to end through real processes and pipes: train -> prune (+fine-tune) ->
# cluster -> quantize -> eval / compare / info / report / sensitivity, plus the
# command-line contract of each (bad values exit 2, bad data exit 1, Ctrl-C
# during training leaves the last good checkpoint).
. "$(dirname "$0")/lib.sh"
D=fashion-mnist

# a small but real training run (lenet300: fast)
expect_exit 0 "create" -- "$T" create lenet300 -q -o "$W/init.tmf"
expect_exit 0 "train" -- "$T" train "$W/init.tmf" --data $D --limit 6000 --val 1000 --epochs 2 --batch 64 -o "$W/base.tmf" -q
expect_grep "$W/out" "Training" "train prints its per-epoch table"
CHECKS=$((CHECKS + 1)); [ -f "$W/base.last.tmf" ] && [ -f "$W/base.best.tmf" ] || fail "checkpoints not written"
expect_exit 0 "eval base" -- "$T" eval "$W/base.tmf" --data $D --limit 2000 --format csv --no-per-class
acc=$(awk -F, '/^lenet300,/{print $4}' "$W/out")
CHECKS=$((CHECKS + 1)); awk -v a="$acc" 'BEGIN{exit !(a > 70)}' || fail "2 epochs on 5000 samples should reach > 70% (got $acc)"

# the pipeline as one shell pipe
"$T" prune "$W/base.tmf" --sparsity 0.8 --global -q \
  | "$T" cluster --bits 4 -q \
  | "$T" quantize --calib $D --calib-samples 64 -q -o "$W/small.tmf" 2>"$W/err"
rc=$?
CHECKS=$((CHECKS + 1)); [ $rc -eq 0 ] || { fail "prune | cluster | quantize: exit $rc"; cat "$W/err" >&2; }
expect_exit 0 "info small" -- "$T" info "$W/small.tmf" --history --format md
expect_grep "$W/out" "int8/4bit" "clustered int8 layers shown"
expect_grep "$W/out" "| 5 | quantize |" "history: create, train, prune, cluster, quantize"
expect_exit 0 "eval small" -- "$T" eval "$W/small.tmf" --data $D --limit 2000 --format csv --no-per-class
acc2=$(awk -F, '/^lenet300,/{print $4}' "$W/out")
CHECKS=$((CHECKS + 1)); awk -v a="$acc" -v b="$acc2" 'BEGIN{exit !(b > a - 15)}' || fail "compressed model lost too much: $acc -> $acc2"
bytes0=$(wc -c <"$W/base.tmf"); bytes1=$(wc -c <"$W/small.tmf")
CHECKS=$((CHECKS + 1)); [ $((bytes0 / bytes1)) -ge 10 ] || fail "compressed file only $bytes0 -> $bytes1 bytes"

# prune with AGP fine-tuning, then the before/after report
expect_exit 0 "prune agp" -- "$T" prune "$W/base.tmf" --sparsity 0.9 --global --schedule agp --steps 4 --finetune-epochs 1 --data $D:train --limit 1000 -q -o "$W/agp.tmf"
expect_grep "$W/out" "90.0" "agp reaches 90% sparsity"
expect_exit 0 "structured" -- "$T" prune "$W/base.tmf" --structured filters --sparsity 0.5 -q -o "$W/struct.tmf"
expect_exit 0 "compare" -- "$T" compare "$W/base.tmf" "$W/small.tmf" --data $D --limit 200
expect_grep "$W/out" "SQNR" "compare prints SQNR"
expect_grep "$W/out" "agreement" "compare prints agreement"
expect_exit 0 "report" -- "$T" report "$W/base.tmf" "$W/agp.tmf" "$W/struct.tmf" "$W/small.tmf" --data $D --limit 500 --plot "$W/pareto.png" --format csv
expect_grep "$W/out" "small.tmf" "report row"
CHECKS=$((CHECKS + 1)); head -c 8 "$W/pareto.png" | od -c | grep -q "P   N   G" || fail "report plot is not a PNG"
expect_exit 0 "sensitivity" -- "$T" sensitivity "$W/base.tmf" --data $D --limit 200 --range 0:0.9:0.45 --json "$W/sens.json" --csv "$W/sens.csv" --plot "$W/sens.png" -q
expect_grep "$W/sens.csv" "^fc1,0.45," "sensitivity CSV rows"
expect_exit 0 "prune from sensitivity" -- "$T" prune "$W/base.tmf" --from-sensitivity "$W/sens.json" --max-drop 1 -q -o "$W/fs.tmf"
expect_exit 0 "sensitivity quant" -- "$T" sensitivity "$W/base.tmf" --data $D --limit 200 --mode quant --bits 2:8 -q
expect_exit 0 "finetune" -- "$T" finetune "$W/agp.tmf" --data $D --limit 1000 --val 0 --epochs 1 -q -o "$W/ft.tmf"
expect_exit 0 "weight-only" -- "$T" quantize "$W/base.tmf" --weight-only --bits 4 -q -o "$W/w4.tmf"

# usage errors: exit 2 with a message
expect_exit 2 "sparsity 1.5" -- "$T" prune "$W/base.tmf" --sparsity 1.5 -o "$W/x.tmf"
expect_grep "$W/err" "sparsity" "sparsity range explained"
expect_exit 2 "unknown layer" -- "$T" prune "$W/base.tmf" --layer fc9=0.5 -o "$W/x.tmf"
expect_grep "$W/err" "fc9" "unknown layer named"
expect_exit 2 "zero calibration samples" -- "$T" quantize "$W/base.tmf" --calib $D --calib-samples 0 -o "$W/x.tmf"
expect_grep "$W/err" "calib" "zero samples explained"
expect_exit 2 "negative lr" -- "$T" train "$W/init.tmf" --data $D --lr -0.1 -o "$W/x.tmf"
expect_exit 2 "zero batch" -- "$T" train "$W/init.tmf" --data $D --batch 0 -o "$W/x.tmf"
expect_exit 2 "zero epochs" -- "$T" train "$W/init.tmf" --data $D --epochs 0 -o "$W/x.tmf"
expect_exit 2 "bad method" -- "$T" quantize "$W/base.tmf" --calib $D --method voodoo -o "$W/x.tmf"
expect_exit 2 "bad bits" -- "$T" cluster "$W/base.tmf" --bits 9 -o "$W/x.tmf"
expect_exit 2 "bad range" -- "$T" sensitivity "$W/base.tmf" --data $D --range 0:1.5:0.1
CHECKS=$((CHECKS + 1)); [ -e "$W/x.tmf" ] && fail "a failed command left an output file"
# data / model errors: exit 1
"$T" create lenet300 --classes 5 -q -o "$W/five.tmf"
expect_exit 1 "more classes than outputs" -- "$T" train "$W/five.tmf" --data $D --limit 100 -o "$W/x.tmf"
expect_grep "$W/err" "classes" "class mismatch explained"
expect_exit 1 "quantize twice" -- "$T" quantize "$W/small.tmf" --calib $D -o "$W/x.tmf"
expect_grep "$W/err" "already quantized" "double quantization explained"
expect_exit 1 "train int8" -- "$T" finetune "$W/small.tmf" --data $D --limit 100 -o "$W/x.tmf"
head -c 3000 /dev/urandom >"$W/rand.tmf"
for cmd in "prune --sparsity 0.5" "cluster" "quantize --calib $D" "train --data $D" "sensitivity --data $D" "report --data $D"; do
  # shellcheck disable=SC2086
  expect_exit 1 "random file to $cmd" -- "$T" $cmd "$W/rand.tmf"
done

# Ctrl-C during training: exit 130, the last checkpoint is a loadable model,
# and --resume finishes the run
# (epochs long enough that Ctrl-C lands mid-run, a few seconds each; ASan is
# 10-20x slower)
LIMIT=40000; [ $ASAN -eq 1 ] && LIMIT=4000
TOPTS="--data $D --limit $LIMIT --val 500 --epochs 3"
# shellcheck disable=SC2086
"$T" train "$W/init.tmf" $TOPTS -q -o "$W/int.tmf" >/dev/null 2>"$W/int.err" &
pid=$!
i=0
while [ ! -f "$W/int.last.tmf" ] && [ $i -lt 3000 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
kill -INT $pid
wait $pid
rc=$?
CHECKS=$((CHECKS + 1)); [ $rc -eq 130 ] || fail "Ctrl-C exit $rc, expected 130"
expect_grep "$W/int.err" "last good checkpoint" "interrupt names the checkpoint"
expect_exit 0 "interrupted checkpoint loads" -- "$T" info "$W/int.last.tmf"
CHECKS=$((CHECKS + 1)); [ -e "$W/int.tmf" ] && fail "an interrupted run wrote its final output"
# shellcheck disable=SC2086
expect_exit 0 "resume" -- "$T" train --resume "$W/int.last.tmf" $TOPTS --no-checkpoint -o "$W/resumed.tmf"
expect_grep "$W/err" "resuming after epoch" "resume reports where it continues"
expect_grep "$W/out" "^    3 " "the resumed run ends with epoch 3"
# shellcheck disable=SC2086
expect_exit 2 "resume with other options" -- "$T" train --resume "$W/int.last.tmf" $TOPTS --seed 9 -o "$W/x.tmf"
finish
