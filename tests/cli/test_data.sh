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
finish
