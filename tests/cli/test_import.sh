#!/bin/sh
# End-to-end checks of `tinyml import` (ONNX -> .tmf): the committed PyTorch
# fixtures import, chain into info/eval through pipes, keep the preprocessing
# and labels given; bad files exit 1 with a message naming the problem, bad
# flags exit 2.
. "$(dirname "$0")/lib.sh"

FX=${TML_SOURCE_DIR:-.}/tests/fixtures/onnx
if ! "$T" import --help >/dev/null 2>&1; then
  echo "$NAME: 'tinyml import' is not registered in this build: skipped"
  exit 0
fi
[ -f "$FX/lenet5_dyn.onnx" ] || { echo "$NAME: no fixtures at $FX: skipped"; exit 0; }

expect_exit 0 "help" -- "$T" import --help
expect_grep "$W/out" "Examples:" "help has examples"

# every fixture imports and info reads the result
for m in lenet5_dyn lenet5_b1 mlp_dyn mlp_b1 dsnet_dyn dsnet_b1; do
  expect_exit 0 "import $m" -- "$T" import "$FX/$m.onnx" -o "$W/$m.tmf"
  expect_grep "$W/err" "tinyml ops:" "import $m logs a summary"
  expect_exit 0 "info $m" -- "$T" info "$W/$m.tmf"
done
expect_grep "$W/out" "total" "info has a total row"

# lenet5: 61706 parameters, 28x28x1 input, the conv relu fused
expect_exit 0 "info lenet5 csv" -- "$T" info "$W/lenet5_dyn.tmf" --format csv
expect_grep "$W/out" "^total,,,61706," "lenet5 has 61706 parameters"

# preprocessing, name and labels are stored; through a pipe into info
printf 'T-shirt\nTrouser\nPullover\nDress\nCoat\nSandal\nShirt\nSneaker\nBag\nAnkle boot\n' >"$W/labels.txt"
"$T" import "$FX/lenet5_dyn.onnx" --scale 0.00392157 --mean 0.5 --std 0.25 --name mynet --labels "$W/labels.txt" -q \
  | "$T" info --history >"$W/info.txt" 2>"$W/err" || fail "import | info"
expect_grep "$W/info.txt" 'model mynet (onnx)' "name stored"
expect_grep "$W/info.txt" 'then (x - mean) / std' "mean/std stored"
expect_grep "$W/info.txt" '"source":"lenet5_dyn","opset":13' "history records the source and opset"
"$T" import "$FX/lenet5_dyn.onnx" --std 0.25 --labels "$W/labels.txt" -q -o "$W/lab.tmf"
"$T" info "$W/lab.tmf" >"$W/lab.txt" 2>&1
expect_grep "$W/lab.txt" 'Ankle boot' "labels stored in META"
expect_grep "$W/lab.txt" 'std \[0.25\]' "std stored in META"

# eval on the dataset when it is installed (weights are untrained: just runs)
if [ -d /usr/share/datasets/fashion-mnist ] || [ -n "${TML_DATA_DIR:-}" ]; then
  expect_exit 0 "eval imported lenet5" -- "$T" eval "$W/lenet5_dyn.tmf" --data fashion-mnist:test --limit 200 --format csv -q
  expect_grep "$W/out" "200" "eval ran 200 samples"
fi

# --quiet silences the log; stdout refused on a terminal is covered by create tests
expect_exit 0 "quiet" -- "$T" import "$FX/mlp_b1.onnx" -o "$W/q.tmf" -q
CHECKS=$((CHECKS + 1)); [ -s "$W/err" ] && fail "--quiet still logged"

# bad files: exit 1 with a clear message
expect_exit 1 "missing file" -- "$T" import "$W/nope.onnx" -o "$W/x.tmf"
expect_grep "$W/err" "cannot open" "missing file named"
head -c 1000 "$FX/dsnet_dyn.onnx" >"$W/trunc.onnx"
expect_exit 1 "truncated file" -- "$T" import "$W/trunc.onnx" -o "$W/x.tmf"
expect_grep "$W/err" "not a valid ONNX file" "truncation reported"
printf 'this is not a protobuf at all' >"$W/text.onnx"
expect_exit 1 "text file" -- "$T" import "$W/text.onnx" -o "$W/x.tmf"
CHECKS=$((CHECKS + 1)); [ -f "$W/x.tmf" ] && fail "a failed import left an output file"
# a tmf file is not an ONNX file
expect_exit 1 "tmf given" -- "$T" import "$W/mlp_b1.tmf" -o "$W/x.tmf"
expect_grep "$W/err" "not an ONNX file" "a .tmf is recognized"

# bad flags: exit 2
expect_exit 2 "no model" -- "$T" import -o "$W/x.tmf"
expect_exit 2 "unknown flag" -- "$T" import "$FX/mlp_b1.onnx" --bogus
expect_exit 2 "bad input shape" -- "$T" import "$FX/mlp_b1.onnx" --input-shape 3xx4
expect_exit 2 "input shape disagrees" -- "$T" import "$FX/lenet5_dyn.onnx" --input-shape 32x32x1 -o "$W/x.tmf"
expect_grep "$W/err" "does not match" "shape mismatch explained"
expect_exit 2 "mean count" -- "$T" import "$FX/dsnet_dyn.onnx" --mean 1,2 -o "$W/x.tmf"
expect_exit 1 "label count" -- "$T" import "$FX/mlp_b1.onnx" --labels "$W/labels.txt" -o "$W/x.tmf"
expect_grep "$W/err" "10 class names, the model has 5 outputs" "label count explained"

finish
