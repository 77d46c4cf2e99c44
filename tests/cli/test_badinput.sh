#!/bin/sh
# The bad-input matrix (issue 14): every command x every kind of broken input
# (random, empty, truncated, flipped, absurd-size, directory, missing file;
# wrong-shape and broken data; nonsense flags) exits 1 or 2 with a message,
# never crashes, hangs or trips a sanitizer, and writes nothing.
. "$(dirname "$0")/lib.sh"
FX=$TML_SOURCE_DIR/tests/fixtures/onnx
O=$W/out
mkdir -p "$O" "$W/in"

# ---- valid inputs of each kind, and their broken variants -------------------------------------
"$T" create lenet300 -q -o "$W/in/valid.tmf"
"$T" quantize "$W/in/valid.tmf" --calib fashion-mnist --calib-samples 16 -q -o "$W/in/valid8.tmf"
cp "$FX/mlp_b1.onnx" "$W/in/valid.onnx"
printf '{"input": [28, 28, 1], "layers": [{"type": "flatten"}, {"type": "dense", "units": 10}]}\n' >"$W/in/valid.json"
# (12 bytes: cut in half, it ends in "1,": a CSV cut at a line end is a valid CSV)
printf 'a,b\n1,2\n3,4\n' >"$W/in/valid.csv"
head -c $((3 * 784)) /dev/zero >"$W/in/valid.bin" # three int8 records for `run`

flip() { # FILE OFFSET OUT: the byte at OFFSET inverted
  b=$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')
  { head -c "$2" "$1"; printf "\\$(printf %03o $((255 - b)))"; tail -c +$(($2 + 2)) "$1"; } >"$3"
}
# variants KIND VALID FLIP_OFFSET: writes $W/in/KIND.{random,empty,truncated,flipped,absurd}
variants() {
  head -c 4096 /dev/urandom >"$W/in/$1.random"
  : >"$W/in/$1.empty"
  head -c $(($(wc -c <"$2") / 2)) "$2" >"$W/in/$1.truncated"
  flip "$2" "$3" "$W/in/$1.flipped"
}
variants tmf "$W/in/valid.tmf" 100
variants onnx "$W/in/valid.onnx" 0
variants json "$W/in/valid.json" 0
variants csv "$W/in/valid.csv" 4
variants bin "$W/in/valid.bin" 0
rm "$W/in/bin.flipped" # raw records have no structure: a flipped byte is another valid record
# absurd sizes: a chunk claiming 4 GiB; a protobuf field of 2^35 bytes; a layer
# of 2^30 weights; a header of 200000 columns
{ printf '\211TMF\r\n\032\n\360\377\377\377HEAD'; head -c 64 /dev/zero; } >"$W/in/tmf.absurd"
printf '\010\007\072\200\200\200\200\200\001' >"$W/in/onnx.absurd"
printf '{"input": [4096, 4096, 64], "layers": [{"type": "conv2d", "filters": 65536, "kernel": 64}]}\n' >"$W/in/json.absurd"
awk 'BEGIN{for (i = 0; i < 200000; i++) printf "c%d,", i; print "y"; print "1,2"}' >"$W/in/csv.absurd"
ln -s /dev/zero "$W/in/bin.absurd" # endless input
ln -s /dev/zero "$W/in/tmf.endless"
ln -s /dev/zero "$W/in/json.endless"
mkdir -p "$W/in/adir"

# ---- the checks -----------------------------------------------------------------------------------
# bad DESCRIPTION CMD...: exit 1 or 2, "error:" on stderr, no sanitizer report,
# no file written
bad() {
  desc=$1
  shift
  CHECKS=$((CHECKS + 1))
  timeout 120 "$@" >"$W/stdout" 2>"$W/stderr"
  rc=$?
  if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then
    fail "$desc: exit $rc (expected 1 or 2)"
    head -3 "$W/stderr" | sed 's/^/    /' >&2
  elif ! grep -q "error:" "$W/stderr"; then
    fail "$desc: exit $rc without an error message"
  fi
  if grep -q "Sanitizer\|runtime error:" "$W/stderr"; then fail "$desc: sanitizer report"; fi
  if [ -n "$(ls -A "$O")" ]; then
    fail "$desc: wrote $(ls -A "$O" | head -3 | tr '\n' ' ')"
    rm -rf "${O:?}"/* "$O"/.[!.]* 2>/dev/null
  fi
}

D="--data fashion-mnist"
V8=$W/in/valid8.tmf
# The commands come from `tinyml --help` (as in test_examples.sh), so a new
# command is covered without editing this list: one with no cases of its own
# below gets the generic ones (its input model alone; with --data and -o).
COMMANDS=$("$T" --help | awk '/^Commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}')
CHECKS=$((CHECKS + 1)); [ -n "$COMMANDS" ] || fail "no commands found in tinyml --help"
# KIND|COMMAND TEMPLATE (I = the input under test, the rest fixed)
cat >"$W/cases" <<EOF
tmf|info I
tmf|eval I $D --limit 20
tmf|train I $D --limit 50 --epochs 1 -o $O/x.tmf
tmf|finetune I $D --limit 50 --epochs 1 -o $O/x.tmf
tmf|prune I --sparsity 0.5 -o $O/x.tmf
tmf|sensitivity I $D --limit 20 --range 0:0.5:0.5
tmf|cluster I --bits 4 -o $O/x.tmf
tmf|quantize I --calib fashion-mnist --calib-samples 16 -o $O/x.tmf
tmf|compare I $V8 $D --limit 20
tmf|compare $W/in/valid.tmf I $D --limit 20
tmf|export I --c -o $O/c
tmf|export I --onnx -o $O/x.onnx
tmf|report I $D --limit 20
onnx|import I -o $O/x.tmf
json|create I -o $O/x.tmf
csv|plot I --x a --y b -o $O/x.png
tmf|run I --in $W/in/valid.bin --out $O/x.bin
tmf|profile I --limit 2
bin|run $V8 --in I --out $O/x.bin
tmf|qat I $D --limit 50 --val 0 --epochs 1 --calib-samples 16 --eval-limit 20 -o $O/x.tmf
tmf|schedule I -o $O/x.tmf
tmf|schedule I --ram-limit 1K
EOF
: >"$W/commands"
for cmd in $COMMANDS; do
  if grep -q "^[a-z]*|$cmd " "$W/cases"; then
    grep "^[a-z]*|$cmd " "$W/cases" >>"$W/commands"
  else
    echo "note: $cmd has no bad-input cases of its own: generic ones"
    printf 'tmf|%s I\ntmf|%s I %s -o %s\n' "$cmd" "$cmd" "$D" "$O/x.tmf" >>"$W/commands"
  fi
done
while IFS='|' read -r kind tmpl; do
  for v in random empty truncated flipped absurd endless; do
    in=$W/in/$kind.$v
    [ -e "$in" ] || continue
    # shellcheck disable=SC2086
    bad "${tmpl%% *} ($v $kind)" "$T" $(echo "$tmpl" | sed "s|\\bI\\b|$in|")
  done
  # shellcheck disable=SC2086
  bad "${tmpl%% *} (a directory)" "$T" $(echo "$tmpl" | sed "s|\\bI\\b|$W/in/adir|")
  # shellcheck disable=SC2086
  bad "${tmpl%% *} (a missing file)" "$T" $(echo "$tmpl" | sed "s|\\bI\\b|$W/in/none.$kind|")
done <"$W/commands"
# a model on stdin: random, empty
for cmd in info "eval $D" "prune --sparsity 0.5" cluster "quantize --calib fashion-mnist" "export --c -o $O/c" \
           "qat $D --epochs 1 --limit 50" schedule; do
  # shellcheck disable=SC2086
  bad "${cmd%% *} (random stdin)" sh -c "\"$T\" $cmd <\"$W/in/tmf.random\""
  # shellcheck disable=SC2086
  bad "${cmd%% *} (empty stdin)" sh -c "\"$T\" $cmd <\"$W/in/tmf.empty\""
done

# ---- broken and wrong-shape data, for every command that reads data -------------------------------
awk 'BEGIN{for (i = 0; i < 30; i++) print i % 7 "," i % 5 "," i % 3 "," i % 2 "," i % 9 "," i % 10}' >"$W/in/shape.csv"
mkdir -p "$W/in/pngdir/a" "$W/in/pngdir/b"
head -c 2000 /dev/urandom >"$W/in/pngdir/a/1.png"
head -c 2000 /dev/urandom >"$W/in/pngdir/b/1.png"
cp "$W/in/csv.flipped" "$W/in/data-flipped.csv"
for spec in "csv:$W/in/csv.random" "csv:$W/in/csv.empty" "csv:$W/in/csv.truncated" "csv:$W/in/data-flipped.csv" \
            "csv:$W/in/adir" "csv:$W/in/none.csv" "idx:$W/in/tmf.random,$W/in/tmf.random" "png:$W/in/pngdir" \
            "csv:$W/in/shape.csv" "csv:$W/in/csv.absurd" "nosuchdataset" "fashion-mnist:nosplit"; do
  S="--data $spec"
  while IFS= read -r tmpl; do
    # shellcheck disable=SC2086
    bad "${tmpl%% *} with --data $spec" "$T" $tmpl
  done <<EOF
eval $W/in/valid.tmf $S
train $W/in/valid.tmf $S --epochs 1 -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --epochs 1 $S -o $O/x.tmf
cluster $W/in/valid.tmf --bits 4 --epochs 1 $S -o $O/x.tmf
quantize $W/in/valid.tmf --calib ${spec} -o $O/x.tmf
sensitivity $W/in/valid.tmf $S --range 0:0.5:0.5
compare $W/in/valid.tmf $V8 $S
report $W/in/valid.tmf $S
qat $W/in/valid.tmf $S --epochs 1 --val 0 --calib-samples 16 --eval-limit 20 -o $O/x.tmf
EOF
done

# ---- nonsense flags: exit 2 ----------------------------------------------------------------------
while IFS= read -r args; do
  # shellcheck disable=SC2086
  bad "flags: $args" "$T" $args
  CHECKS=$((CHECKS + 1)); [ $rc -eq 2 ] || fail "flags: $args: exit $rc, a usage error is 2"
done <<EOF
create lenet5 --bogus -o $O/x.tmf
create lenet5 --input 0x0x0 -o $O/x.tmf
create lenet5 --classes -4 -o $O/x.tmf
info $W/in/valid.tmf --format xml
eval $W/in/valid.tmf $D --limit -5
eval $W/in/valid.tmf $D --batch banana
train $W/in/valid.tmf $D --epochs 0 -o $O/x.tmf
train $W/in/valid.tmf $D --normalize sometimes -o $O/x.tmf
train $W/in/valid.tmf $D --val-split 3 -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 2 -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --min-density 7 -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --prune-schedule cubic --epochs 1 $D -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --val-split 0.2 -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --flip -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --epochs 1 --crop-pad 99 $D -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --epochs 1 --weight-avg sometimes $D -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --epochs 1 --weight-avg ema:1.5 $D -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --epochs 1 --weight-avg-from 0.5 $D -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --weight-avg mean -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --epochs 1 --kd-alpha 0.5 $D -o $O/x.tmf
prune $W/in/valid.tmf --sparsity 0.5 --epochs 1 --lr-schedule cyclic $D -o $O/x.tmf
train $W/in/valid.tmf $D --weight-avg mean --weight-avg-from 1 -o $O/x.tmf
sensitivity $W/in/valid.tmf $D --range 1:0:0.1
cluster $W/in/valid.tmf --bits 99 -o $O/x.tmf
cluster $W/in/valid.tmf --layer nosuch -o $O/x.tmf
cluster $W/in/valid.tmf --bits 4 --val 100 -o $O/x.tmf
quantize $W/in/valid.tmf --calib fashion-mnist --method voodoo -o $O/x.tmf
quantize $W/in/valid.tmf --weight-only --layer nosuch -o $O/x.tmf
compare $W/in/valid.tmf $D
export $W/in/valid8.tmf --c --prefix 9bad -o $O/c
export $W/in/valid8.tmf -o $O/c
report $D
plot $W/in/valid.csv --x a -o $O/x.png
import $W/in/valid.onnx --input-shape -1 -o $O/x.tmf
run $W/in/valid8.tmf --in $W/in/valid.bin --out $O/x.bin --batch 0
run $W/in/valid8.tmf --in $W/in/valid.bin
profile $W/in/valid8.tmf --opt O9
profile $W/in/valid8.tmf --target z80
qat $W/in/valid.tmf $D --weight-bits 1 -o $O/x.tmf
qat $W/in/valid.tmf $D --ranges sometimes -o $O/x.tmf
qat $W/in/valid.tmf $D --crop-pad -1 -o $O/x.tmf
qat $W/in/valid.tmf $D --weight-avg ema:0 -o $O/x.tmf
qat $W/in/valid.tmf -o $O/x.tmf
qat $W/in/valid.tmf $D --teacher $W/in/valid.tmf --self-distill -o $O/x.tmf
schedule $W/in/valid8.tmf --max-recompute -3
schedule $W/in/valid8.tmf --ram-limit banana
EOF
# and an unknown option, for every command
for cmd in $COMMANDS; do
  bad "flags: $cmd --no-such-option" "$T" "$cmd" --no-such-option
  CHECKS=$((CHECKS + 1)); [ $rc -eq 2 ] || fail "flags: $cmd --no-such-option: exit $rc, a usage error is 2"
done
finish
