#!/bin/sh
# A user's own data and models (issue 14): ARCH.json descriptions, tabular
# (CSV) data, PNG folders, class names, held-out splits.
. "$(dirname "$0")/lib.sh"

# ---- ARCH.json: unknown keys are refused, with the known ones (item 10) ----
cat >"$W/typo.json" <<'JSON'
{"name": "tiny", "input": [28, 28, 1], "classes": 10,
 "layers": [{"type": "conv2d", "filters": 8, "kernel_size": 5, "activation": "relu"},
            {"type": "flatten"}, {"type": "dense", "units": 10}]}
JSON
expect_exit 2 "ARCH.json with kernel_size" -- "$T" create "$W/typo.json" -o "$W/x.tmf"
expect_grep "$W/err" "kernel_size" "the unknown key is named"
expect_grep "$W/err" "kernel" "the known keys are listed"
sed 's/"kernel_size": 5, //' "$W/typo.json" >"$W/typo2.json"
expect_exit 2 "ARCH.json with activation" -- "$T" create "$W/typo2.json" -o "$W/x.tmf"
expect_grep "$W/err" "'activation'" "activation named"
expect_grep "$W/err" "act" "act listed"
printf '{"input": [28, 28, 1], "clases": 10, "layers": [{"type": "flatten"}, {"type": "dense", "units": 10}]}\n' >"$W/top.json"
expect_exit 2 "ARCH.json with a top-level typo" -- "$T" create "$W/top.json" -o "$W/x.tmf"
expect_grep "$W/err" "clases" "top-level key named"
printf '{"input": [28, 28, 1], "layers": [{"type": "maxpool", "size": 2, "act": "relu"}, {"type": "flatten"}, {"type": "dense", "units": 10}]}\n' >"$W/poolact.json"
expect_exit 2 "act on a pool layer" -- "$T" create "$W/poolact.json" -o "$W/x.tmf"
CHECKS=$((CHECKS + 1)); [ -e "$W/x.tmf" ] && fail "a refused description wrote a model"
# the correct spelling works, and info shows each layer's activation
cat >"$W/ok.json" <<'JSON'
{"name": "tiny", "input": [28, 28, 1], "classes": 10,
 "layers": [{"type": "conv2d", "filters": 8, "kernel": 5, "act": "relu"}, {"type": "maxpool", "size": 2},
            {"type": "flatten"}, {"type": "dense", "units": 32, "act": "relu6"}, {"type": "dense", "units": 10}]}
JSON
expect_exit 0 "ARCH.json" -- "$T" create "$W/ok.json" -q -o "$W/ok.tmf"
expect_exit 0 "info shows activations" -- "$T" info "$W/ok.tmf" --format csv
expect_grep "$W/out" "^layer,op,output,.*,act$" "info has an act column"
expect_grep "$W/out" "^conv1,conv2d,24x24x8,.*,relu$" "conv1 shows relu"
expect_grep "$W/out" "^fc1,dense,32,.*,relu6$" "fc1 shows relu6"
expect_grep "$W/out" "^fc2,dense,10,.*,none$" "fc2 shows no activation"
# the complete examples of docs/arch-json.md build and run
for ex in cnn mlp; do
  awk -v m="<!-- arch-json example: $ex -->" '$0 == m {on = 1; next} on && /^```json/ {next} on && /^```/ {exit} on' \
    "$TML_SOURCE_DIR/docs/arch-json.md" >"$W/$ex.json"
  expect_exit 0 "docs/arch-json.md example $ex" -- "$T" create "$W/$ex.json" -q -o "$W/$ex.tmf"
done
expect_exit 0 "every-layer example runs" -- "$T" eval "$W/cnn.tmf" --data fashion-mnist --limit 50 --format csv
expect_exit 0 "info of the every-layer example" -- "$T" info "$W/cnn.tmf" --format csv
for op in conv2d batchnorm relu maxpool add depthwise_conv2d relu6 avgpool global_avgpool dropout dense softmax; do
  expect_grep "$W/out" "^[^,]*,$op," "every-layer example has a $op layer"
done
expect_exit 0 "info of the mlp example" -- "$T" info "$W/mlp.tmf" --format csv
expect_grep "$W/out" "input 8 f32, 3 classes" "the mlp takes a vector of 8 features"
expect_grep "$W/out" "x = raw \* 1$" "vectors are not scaled by 1/255"
# ---- tabular data (item 15), its header (item 14), global pruning's floor (item 9) ----
# three noisy blobs in 4 features of very different scales, with a header row
awk 'BEGIN{srand(7); print "f1,f2,f3,f4,label"; for(i=0;i<1500;i++){k=i%3; n1=rand()+rand()+rand()-1.5; n2=rand()+rand()+rand()-1.5;
     printf "%.3f,%.3f,%.3f,%.5f,%d\n", 1000+300*k+n1*250, 50-20*k+n2*25, (rand()-0.5)*40, 0.01*k+(rand()+rand()-1)*0.01, k}}' >"$W/blobs.csv"
expect_exit 0 "eval counts the data lines only" -- "$T" create lenet300 --input 4 --classes 3 -q -o "$W/l3.tmf"
expect_exit 0 "eval on a CSV with a header" -- "$T" eval "$W/l3.tmf" --data "csv:$W/blobs.csv" --format csv
expect_grep "$W/out" ",1500," "1500 samples, the header skipped"
printf '{"name": "mlp", "input": [4], "classes": 3, "layers": [{"type": "dense", "units": 64, "act": "relu"}, {"type": "dense", "units": 3}]}\n' >"$W/mlp4.json"
"$T" create "$W/mlp4.json" -q -o "$W/mlp4.tmf"
expect_exit 0 "train on a CSV, normalized, 20% held out" -- "$T" train "$W/mlp4.tmf" --data "csv:$W/blobs.csv" --normalize auto \
  --val-split 0.2 --epochs 10 --no-checkpoint -q --format csv -o "$W/mlp4-t.tmf"
val=$(awk -F, '$1 == 10 {print $5}' "$W/out")
CHECKS=$((CHECKS + 1)); awk -v a="$val" 'BEGIN{exit !(a > 85)}' || fail "normalized MLP on the blobs: validation top-1 $val%, expected > 85%"
expect_grep "$W/out" "300 of them held out" "the 20% validation split is 300 samples"
expect_exit 0 "info shows the per-feature normalization" -- "$T" info "$W/mlp4-t.tmf"
expect_grep "$W/out" "per feature (4 features" "per-feature mean/std stored"
# the same held-out samples for prune's report: fine-tuned on the rest, said so in the table
expect_exit 0 "prune a CSV model with --val-split" -- "$T" prune "$W/mlp4-t.tmf" --sparsity 0.5 --global --epochs 2 \
  --data "csv:$W/blobs.csv" --val-split 0.2 -o "$W/mlp4-p.tmf" -q --no-checkpoint
expect_grep "$W/out" "held out of csv:" "the report says it used the held-out part"
expect_grep "$W/out" "never fine-tuned on" "the report says fine-tuning did not see it"
expect_exit 0 "eval the same held-out part" -- "$T" eval "$W/mlp4-p.tmf" --data "csv:$W/blobs.csv" --val-split 0.2 --format csv
expect_grep "$W/out" "held-out 20%.*,300," "eval --val-split 0.2 evaluates the 300 held-out samples"
# no held-out data while fine-tuning on a CSV: warned, and the table says so
expect_exit 0 "prune a CSV model without a split" -- "$T" prune "$W/mlp4-t.tmf" --sparsity 0.5 --global --epochs 1 \
  --data "csv:$W/blobs.csv" -o "$W/x2.tmf" --no-checkpoint
expect_grep "$W/err" "no test split" "fine-tuning and evaluating on the same CSV is warned about"
expect_grep "$W/out" "SAME samples" "the table says the samples are the fine-tuning ones"
# global pruning never empties a layer (the 4-64-3 MLP at 80% lost all of fc2)
expect_exit 0 "global 80% on the 4-64-3 MLP" -- "$T" prune "$W/mlp4-t.tmf" --sparsity 0.8 --global --format csv -o "$W/g80.tmf"
zeros=$(awk -F, '$1 == "fc2" {print $4}' "$W/out")
CHECKS=$((CHECKS + 1)); [ -n "$zeros" ] && [ "$zeros" -lt 192 ] || fail "fc2 pruned to $zeros of 192 weights"
CHECKS=$((CHECKS + 1)); [ "$zeros" -le 188 ] || fail "fc2 should keep its 2% floor (4 weights): $zeros zeros"
expect_grep "$W/err" "layer 'fc2'" "the floored layer is warned about"
expect_exit 0 "no floor: --min-density 0 keeps one weight" -- "$T" prune "$W/mlp4-t.tmf" --sparsity 0.8 --global --min-density 0 --format csv -o "$W/g80b.tmf"
zeros=$(awk -F, '$1 == "fc2" {print $4}' "$W/out")
CHECKS=$((CHECKS + 1)); [ "$zeros" -eq 191 ] || fail "with --min-density 0 fc2 keeps exactly its last weight ($zeros zeros)"
# a per-layer target below the floor is warned about
expect_exit 0 "per-layer 99%" -- "$T" prune "$W/mlp4-t.tmf" --layer fc1=0.99 -o "$W/x3.tmf"
expect_grep "$W/err" "layer 'fc1' keeps only" "a layer left below --min-density is warned about"

# ---- one flag, one meaning (item 18): new spellings and old ones give the same bytes ----
export SOURCE_DATE_EPOCH=1700000000
C="csv:$W/blobs.csv"
"$T" prune "$W/mlp4-t.tmf" --sparsity 0.5 --global --epochs 1 --data "$C" --val-split 0.2 --no-checkpoint -q -o "$W/e1.tmf" >/dev/null
"$T" prune "$W/mlp4-t.tmf" --sparsity 0.5 --global --finetune-epochs 1 --data "$C" --val-split 0.2 --no-checkpoint -q -o "$W/e2.tmf" >/dev/null
CHECKS=$((CHECKS + 1)); cmp -s "$W/e1.tmf" "$W/e2.tmf" || fail "prune --epochs and --finetune-epochs differ"
"$T" prune "$W/mlp4-t.tmf" --sparsity 0.5 --global --prune-schedule agp --steps 4 --epochs 1 --data "$C" --no-checkpoint -q -o "$W/a1.tmf" >/dev/null 2>&1
"$T" prune "$W/mlp4-t.tmf" --sparsity 0.5 --global --schedule agp --steps 4 --epochs 1 --data "$C" --no-checkpoint -q -o "$W/a2.tmf" >/dev/null 2>&1
CHECKS=$((CHECKS + 1)); cmp -s "$W/a1.tmf" "$W/a2.tmf" || fail "prune --prune-schedule and --schedule differ"
"$T" cluster "$W/mlp4-t.tmf" --bits 3 --epochs 1 --data "$C" --no-checkpoint -q -o "$W/c1.tmf" >/dev/null 2>&1
"$T" cluster "$W/mlp4-t.tmf" --bits 3 --finetune-epochs 1 --data "$C" --no-checkpoint -q -o "$W/c2.tmf" >/dev/null 2>&1
CHECKS=$((CHECKS + 1)); cmp -s "$W/c1.tmf" "$W/c2.tmf" || fail "cluster --epochs and --finetune-epochs differ"
"$T" train "$W/mlp4.tmf" --data "$C" --epochs 2 --lr-schedule step --no-checkpoint -q -o "$W/t1.tmf" >/dev/null
"$T" train "$W/mlp4.tmf" --data "$C" --epochs 2 --schedule step --no-checkpoint -q -o "$W/t2.tmf" >/dev/null
CHECKS=$((CHECKS + 1)); cmp -s "$W/t1.tmf" "$W/t2.tmf" || fail "train --lr-schedule and --schedule differ"
unset SOURCE_DATE_EPOCH
# prune's fine-tuning takes cosine or constant (SWA-style averaging), nothing else,
# and only with fine-tuning epochs
expect_exit 2 "prune's learning-rate schedule is cosine or constant" -- "$T" prune "$W/mlp4-t.tmf" --sparsity 0.5 --lr-schedule step -o "$W/x.tmf"
expect_grep "$W/err" "must be cosine or constant" "prune names its learning-rate schedules"
expect_exit 2 "prune's learning-rate schedule needs fine-tuning" -- "$T" prune "$W/mlp4-t.tmf" --sparsity 0.5 --lr-schedule constant -o "$W/x.tmf"
expect_grep "$W/err" "needs --epochs" "prune says the schedule needs epochs"
expect_exit 2 "train has no pruning schedule" -- "$T" train "$W/mlp4.tmf" --data "$C" --prune-schedule agp -o "$W/x.tmf"
expect_grep "$W/err" "unknown option '--prune-schedule'" "the pruning schedule is prune's"

# ---- honest statistics (item 19) ----
"$T" quantize "$W/mlp4-t.tmf" --calib "$C" --calib-samples 200 -q -o "$W/mlp4-q.tmf"
expect_exit 0 "report float vs int8" -- "$T" report "$W/mlp4-t.tmf" "$W/mlp4-q.tmf" --data "$C" --val-split 0.2 --format csv
expect_grep "$W/out" "^model,bytes,flash B,RAM B,ratio,.*,top1%,drop,top1 95% CI,p," "report columns: device bytes beside the file bytes, interval and p"
expect_grep "$W/out" "^mlp4-t.tmf,[0-9]*,,,1" "no device bytes for a float model"
expect_grep "$W/out" "^mlp4-q.tmf,[0-9]*,[0-9][0-9]*,[0-9][0-9]*," "flash and RAM of the int8 model"
expect_grep "$W/out" "McNemar" "the p column is explained"
# the interval contains the accuracy, and 300 samples give a few points of width
row=$(grep "^mlp4-t.tmf," "$W/out")
CHECKS=$((CHECKS + 1))
echo "$row" | awk -F, '{split($13, ci, "-"); exit !(ci[1] < $11 && $11 < ci[2] && ci[2] - ci[1] > 2 && ci[2] - ci[1] < 10)}' \
  || fail "95% interval of 300 samples: $row"
expect_exit 0 "eval json has the interval" -- "$T" eval "$W/mlp4-q.tmf" --data "$C" --format json
expect_grep "$W/out" '"top1 95% CI"' "eval reports the interval"
# a difference inside the noise says so
"$T" report "$W/mlp4-t.tmf" "$W/e1.tmf" --data "$C" --val-split 0.2 >"$W/out" 2>&1
CHECKS=$((CHECKS + 1))
if grep -q "^e1.tmf .* 0.00 " "$W/out"; then :; else
  grep -q "inside the noise\|p: exact McNemar" "$W/out" || fail "report explains its p column"
fi

# ---- PNG folders: classes matched by name (item 11) ----
if [ -n "${TML_DS2PNG:-}" ] && [ -x "$TML_DS2PNG" ]; then
  NAMES=top,trouser,pullover,dress,coat,sandal,shirt,sneaker,bag,boot
  "$TML_DS2PNG" fashion-mnist:train "$W/pngA" 3000 "$NAMES"
  "$T" create lenet300 -q -o "$W/l300.tmf"
  expect_exit 0 "train on a PNG folder" -- "$T" train "$W/l300.tmf" --data "png:$W/pngA" --epochs 3 --val 300 --no-checkpoint -q -o "$W/png.tmf"
  # a test folder with 4 of the 10 classes: its labels 0..3 are not the model's 0..3
  "$TML_DS2PNG" fashion-mnist:test "$W/pngB" 600 "-,trouser,-,-,coat,-,-,sneaker,-,boot"
  expect_exit 0 "eval on a folder whose classes sort differently" -- "$T" eval "$W/png.tmf" --data "png:$W/pngB" --format csv
  acc=$(awk -F, 'NR > 1 && $3 > 0 && !/^#/ {print $4; exit}' "$W/out")
  CHECKS=$((CHECKS + 1)); awk -v a="$acc" 'BEGIN{exit !(a > 70)}' || fail "classes matched by name should give > 70% (got $acc%)"
  expect_grep "$W/out" "sneaker" "per-class table uses the model's class names"
  # a class the model does not know is refused
  "$TML_DS2PNG" fashion-mnist:test "$W/pngC" 60 "frog,trouser,-,-,-,-,-,-,-,-"
  expect_exit 1 "a class folder the model does not know" -- "$T" eval "$W/png.tmf" --data "png:$W/pngC"
  expect_grep "$W/err" "'frog'" "the unknown class is named"
else
  echo "skip: ds2png helper not built (PNG class mapping)"
fi
finish
