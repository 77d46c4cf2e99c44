#!/bin/sh
# TFLite in and out through the command line: import + run of the MLPerf Tiny
# fixtures (byte-identical to TFLite Micro), --dump, export --tflite checked
# by flatc against a schema written from TFLite's field ids (skipped when flatc
# is absent), re-import, quantize --rounding, and clean refusals.
. "$(dirname "$0")/lib.sh"
FX=${TML_SOURCE_DIR:-.}/tests/fixtures/tflite

# import + run: TFLite Micro's bytes
for m in kws_ref_model ad01_int8; do
  expect_exit 0 "import $m" -- "$T" import "$FX/$m/model.tflite" -o "$W/$m.tmf"
  expect_grep "$W/err" "full-int8" "$m imported as int8"
  expect_exit 0 "run $m" -- "$T" run "$W/$m.tmf" --in "$FX/$m/in.bin" --out "$W/$m.out"
  CHECKS=$((CHECKS + 1))
  cmp -s "$W/$m.out" "$FX/$m/out.bin" || fail "$m: outputs differ from TFLite Micro's"
done
expect_exit 0 "info shows the rounding" -- "$T" info "$W/kws_ref_model.tmf"
expect_grep "$W/out" "tflite rounding" "info: tflite rounding"

# --dump: one file per activation, the output among them
head -c 980 "$FX/kws_ref_model/in.bin" >"$W/in2.bin"
expect_exit 0 "run --dump" -- "$T" run "$W/kws_ref_model.tmf" --in "$W/in2.bin" --out "$W/o2.bin" --dump "$W/dump"
expect_grep "$W/dump/tensors.txt" "(output)" "dump lists the output"
CHECKS=$((CHECKS + 1))
[ "$(grep -c '^[0-9]' "$W/dump/tensors.txt")" -eq 14 ] || fail "dump: 14 activations expected"
out_id=$(grep '(output)' "$W/dump/tensors.txt" | cut -d' ' -f1)
CHECKS=$((CHECKS + 1))
cmp -s "$W/dump/t$out_id.bin" "$W/o2.bin" || fail "dump of the output differs from --out"

# bad records
head -c 491 "$FX/kws_ref_model/in.bin" >"$W/bad.bin"
expect_exit 1 "partial record refused" -- "$T" run "$W/kws_ref_model.tmf" --in "$W/bad.bin" --out "$W/x.bin"
expect_grep "$W/err" "whole number of 490-byte records" "record size explained"
expect_exit 2 "run without --out" -- "$T" run "$W/kws_ref_model.tmf" --in "$W/bad.bin"

# export --tflite, re-import, same bytes out
expect_exit 0 "export --tflite" -- "$T" export "$W/kws_ref_model.tmf" --tflite -o "$W/kws.tflite"
expect_exit 0 "re-import" -- "$T" import "$W/kws.tflite" -o "$W/kws2.tmf"
expect_grep "$W/err" "written by tinyml" "metadata restored"
expect_exit 0 "run re-imported" -- "$T" run "$W/kws2.tmf" --in "$FX/kws_ref_model/in.bin" --out "$W/kws2.out"
CHECKS=$((CHECKS + 1))
cmp -s "$W/kws2.out" "$FX/kws_ref_model/out.bin" || fail "exported and re-imported kws differs from TFLite Micro"

# a zoo model: quantize with TFLite rounding, export, check with flatc
"$T" create dscnn --seed 3 -o "$W/dscnn.tmf" 2>/dev/null
expect_exit 0 "quantize --rounding tflite" -- "$T" quantize "$W/dscnn.tmf" --calib fashion-mnist --calib-samples 32 --rounding tflite -o "$W/dscnn-q.tmf"
expect_exit 0 "export zoo int8" -- "$T" export "$W/dscnn-q.tmf" --tflite -o "$W/dscnn.tflite"
expect_exit 0 "switch rounding" -- "$T" quantize "$W/dscnn-q.tmf" --rounding tinyml -o "$W/dscnn-t.tmf"
expect_exit 0 "export tinyml rounding" -- "$T" export "$W/dscnn-t.tmf" --tflite -o "$W/dscnn-t.tflite"
expect_grep "$W/err" "warning" "tinyml rounding exports with a warning"
if command -v flatc >/dev/null 2>&1; then
  for f in kws dscnn; do
    expect_exit 0 "flatc reads $f.tflite" -- flatc --json --strict-json --raw-binary -o "$W/json" "$FX/tflite_subset.fbs" -- "$W/$f.tflite"
    expect_grep "$W/json/$f.json" '"version": 3' "$f: schema version 3"
    expect_grep "$W/json/$f.json" '"deprecated_builtin_code": 3' "$f: deprecated 8-bit op code written"
    expect_grep "$W/json/$f.json" '"quantized_dimension": 3' "$f: depthwise per-channel along dimension 3"
  done
  # flatc's own writer rebuilds the file from that JSON (its JSON prints
  # floats to 6 digits, so the scales are not exact): tinyml reads the
  # independently built flatbuffer to the same graph
  expect_exit 0 "flatc rebuilds kws.tflite" -- flatc --binary -o "$W/fb" "$FX/tflite_subset.fbs" "$W/json/kws.json"
  expect_exit 0 "import flatc's file" -- "$T" import "$W/fb/kws.bin" -o "$W/kws3.tmf"
  expect_exit 0 "info of flatc's file" -- "$T" info "$W/kws3.tmf"
  expect_grep "$W/out" "depthwise_conv2d_3" "flatc's file has the same layers"
else
  echo "SKIP: flatc not installed (apt-get install flatbuffers-compiler): exported files not schema-checked"
fi

# refusals: an unsupported TFLite file, a truncated one
head -c 3000 "$FX/kws_ref_model/model.tflite" >"$W/trunc.tflite"
expect_exit 1 "truncated .tflite refused" -- "$T" import "$W/trunc.tflite" -o "$W/t.tmf"
CHECKS=$((CHECKS + 1))
[ ! -e "$W/t.tmf" ] || fail "a failed import left a file"
finish
