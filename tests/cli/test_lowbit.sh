#!/bin/sh
# Below 8 bits through the real program: packed W4A8 / W2A8 models (smaller
# files, fast == reference kernels), adaptive rounding, mixed precision with a
# byte budget, quantization-aware training, and their command-line contract.
. "$(dirname "$0")/lib.sh"
D=fashion-mnist

expect_exit 0 "create" -- "$T" create lenet300 -q -o "$W/init.tmf"
expect_exit 0 "train" -- "$T" train "$W/init.tmf" --data $D --limit 6000 --val 0 --epochs 1 -q --no-checkpoint -o "$W/base.tmf"

# uniform widths: the file shrinks with the width, the engine's two paths agree
expect_exit 0 "int8" -- "$T" quantize "$W/base.tmf" --calib $D --calib-samples 128 -q -o "$W/w8.tmf"
expect_exit 0 "w4 nearest" -- "$T" quantize "$W/base.tmf" --calib $D --calib-samples 128 --weight-bits 4 -q -o "$W/w4.tmf"
expect_exit 0 "w4 adaptive" -- "$T" quantize "$W/base.tmf" --calib $D --calib-samples 128 --weight-bits 4 --weight-rounding adaptive \
  --data $D --limit 500 -o "$W/w4a.tmf"
expect_grep "$W/out" "W4A8" "the report names the width"
expect_grep "$W/out" "adaptive rounding" "the report names the rounding"
expect_exit 0 "w2" -- "$T" quantize "$W/base.tmf" --calib $D --calib-samples 128 --bits 2 -q -o "$W/w2.tmf"
b8=$(wc -c <"$W/w8.tmf"); b4=$(wc -c <"$W/w4.tmf"); b2=$(wc -c <"$W/w2.tmf")
CHECKS=$((CHECKS + 1)); [ "$b4" -lt $((b8 * 6 / 10)) ] && [ "$b2" -lt "$b4" ] || fail "packed files: 8-bit $b8, 4-bit $b4, 2-bit $b2 bytes"
expect_exit 0 "info w4" -- "$T" info "$W/w4.tmf"
expect_grep "$W/out" "int4" "info shows the packed width"
expect_exit 0 "eval fast" -- "$T" eval "$W/w4a.tmf" --data $D --limit 300 --format csv --no-per-class -q
sed 1d "$W/out" | cut -d, -f1-6 >"$W/fast.csv"
expect_exit 0 "eval ref" -- "$T" eval "$W/w4a.tmf" --data $D --limit 300 --format csv --no-per-class --ref -q
sed 1d "$W/out" | cut -d, -f1-6 >"$W/ref.csv"
CHECKS=$((CHECKS + 1)); cmp -s "$W/fast.csv" "$W/ref.csv" || fail "W4A8: fast and reference kernels disagree: $(cat "$W/fast.csv" "$W/ref.csv")"

# mixed precision at the size of uniform 4 bits
expect_exit 0 "mixed" -- "$T" quantize "$W/base.tmf" --calib $D --calib-samples 128 --weight-bits auto --target-size 4bit \
  --sens-samples 300 --candidate-bits 2,4,8 --plot "$W/front.png" -o "$W/mp.tmf"
expect_grep "$W/out" "Pareto front" "front table"
expect_grep "$W/out" "\* mixed" "the chosen point is marked"
CHECKS=$((CHECKS + 1)); head -c 8 "$W/front.png" | od -c | grep -q "P   N   G" || fail "front plot is not a PNG"
expect_exit 0 "info mixed" -- "$T" info "$W/mp.tmf" --history
wb=$(tr ',' '\n' <"$W/out" | sed -n 's/.*"weight_bytes":\([0-9]*\).*/\1/p' | head -1)
# 266,200 weights at 4 bits = 133,100 bytes
CHECKS=$((CHECKS + 1)); [ -n "$wb" ] && [ "$wb" -le 133100 ] || fail "mixed precision over budget: '$wb' > 133100 weight bytes"
expect_exit 0 "max drop" -- "$T" quantize "$W/base.tmf" --calib $D --calib-samples 128 --weight-bits auto --max-drop 3 \
  --sens-samples 300 --candidate-bits 2,4,8 -q -o "$W/mpd.tmf"

# quantization-aware training
expect_exit 0 "qat" -- "$T" qat "$W/base.tmf" --data $D --limit 2000 --val 200 --epochs 1 --weight-bits 4 --calib-samples 128 \
  --eval-limit 500 --float-out "$W/qat-float.tmf" -o "$W/qat.tmf"
expect_grep "$W/out" "PTQ adaptive" "qat reports PTQ"
expect_grep "$W/out" "QAT" "qat reports QAT"
expect_exit 0 "info qat" -- "$T" info "$W/qat.tmf" --history
expect_grep "$W/out" "int4" "qat output is packed 4-bit"
expect_grep "$W/out" "qat" "qat recorded in the history"
expect_exit 0 "eval qat" -- "$T" eval "$W/qat.tmf" --data $D --limit 300 -q
CHECKS=$((CHECKS + 1)); [ -s "$W/qat-float.tmf" ] || fail "--float-out not written"
# a pruned model keeps its zeros through qat
"$T" prune "$W/base.tmf" --sparsity 0.8 -q | "$T" qat --data $D --limit 1000 --val 0 --epochs 1 --calib-samples 64 \
  --eval none -q -o "$W/pq.tmf" 2>"$W/err"
rc=$?
CHECKS=$((CHECKS + 1)); [ $rc -eq 0 ] || { fail "prune | qat: exit $rc"; cat "$W/err" >&2; }
expect_exit 0 "info pruned qat" -- "$T" info "$W/pq.tmf" --format csv
sp=$(awk -F, '/^fc1,dense,/{print $6}' "$W/out")
CHECKS=$((CHECKS + 1)); awk -v s="$sp" 'BEGIN{exit !(s >= 80)}' || fail "fc1 of the pruned model lost zeros in qat: sparsity '$sp'"

# contract
expect_exit 2 "width 9" -- "$T" quantize "$W/base.tmf" --calib $D --weight-bits 9 -o "$W/x.tmf"
expect_exit 2 "auto without a budget" -- "$T" quantize "$W/base.tmf" --calib $D --weight-bits auto -o "$W/x.tmf"
expect_grep "$W/err" "target-size" "the budget options are named"
expect_exit 2 "budget without auto" -- "$T" quantize "$W/base.tmf" --calib $D --target-size 1000 -o "$W/x.tmf"
expect_exit 2 "impossible budget" -- "$T" quantize "$W/base.tmf" --calib $D --calib-samples 64 --weight-bits auto --target-size 100 \
  --sens-samples 100 -o "$W/x.tmf"
expect_grep "$W/err" "smallest model" "impossible budget explained"
expect_exit 2 "bad rounding" -- "$T" quantize "$W/base.tmf" --calib $D --weight-rounding up -o "$W/x.tmf"
expect_exit 2 "qat without data" -- "$T" qat "$W/base.tmf" -o "$W/x.tmf"
expect_exit 2 "qat bad ranges" -- "$T" qat "$W/base.tmf" --data $D --ranges learned -o "$W/x.tmf"
expect_exit 1 "qat of an int8 model" -- "$T" qat "$W/w8.tmf" --data $D -o "$W/x.tmf"
expect_grep "$W/err" "already int8" "int8 input explained"
CHECKS=$((CHECKS + 1)); [ ! -e "$W/x.tmf" ] || fail "a failed command left $W/x.tmf"
finish
