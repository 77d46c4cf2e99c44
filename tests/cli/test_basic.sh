#!/bin/sh
# End-to-end checks of create / info / eval through real processes and pipes,
# plus the command-line contract: exit codes, messages, refusals.
. "$(dirname "$0")/lib.sh"

# every zoo architecture builds, round-trips through a file and a pipe, and info works
for arch in lenet300 lenet5 dscnn mobilenet-tiny resnet8; do
  expect_exit 0 "create $arch" -- "$T" create "$arch" -o "$W/$arch.tmf" -q
  expect_exit 0 "info $arch" -- "$T" info "$W/$arch.tmf"
  expect_grep "$W/out" "total" "info $arch has a total row"
  "$T" create "$arch" -q | "$T" info --format json >"$W/$arch.json" 2>"$W/err" || fail "create $arch | info"
  expect_grep "$W/$arch.json" '"layers"' "info json of $arch"
done
expect_exit 0 "dscnn for 49x10" -- "$T" create dscnn --input 49x10x1 --classes 12 -o "$W/kws.tmf" -q
expect_exit 0 "info kws" -- "$T" info "$W/kws.tmf"
expect_grep "$W/out" "49x10x1" "kws input shape shown"

# the same seed gives the same bytes (the history's time pinned by
# SOURCE_DATE_EPOCH); another seed gives other bytes
SOURCE_DATE_EPOCH=1700000000 "$T" create lenet5 --seed 3 -q -o "$W/a.tmf"
sleep 1
SOURCE_DATE_EPOCH=1700000000 "$T" create lenet5 --seed 3 -q -o "$W/b.tmf"
SOURCE_DATE_EPOCH=1700000000 "$T" create lenet5 --seed 4 -q -o "$W/c.tmf"
CHECKS=$((CHECKS + 1)); cmp -s "$W/a.tmf" "$W/b.tmf" || fail "same seed gives different files"
CHECKS=$((CHECKS + 1)); cmp -s "$W/a.tmf" "$W/c.tmf" && fail "different seeds give the same file"

# lenet5 info: known parameter count (Caffe LeNet: 431,080) and MACs
expect_exit 0 "info lenet5 csv" -- "$T" info "$W/lenet5.tmf" --format csv
expect_grep "$W/out" "^total,,,431080," "lenet5 has 431080 parameters"

# eval through a pipe on the whole test split: an untrained model is near chance
"$T" create lenet5 -q | "$T" eval --data fashion-mnist:test --format csv -q >"$W/eval.csv" 2>"$W/err"
rc=$?
CHECKS=$((CHECKS + 1))
[ $rc -eq 0 ] || fail "create | eval: exit $rc"
expect_grep "$W/eval.csv" "fashion-mnist:test,10000," "eval covers all 10000 test samples"
top1=$(awk -F, '/^lenet5,/{print $4}' "$W/eval.csv")
CHECKS=$((CHECKS + 1))
awk -v a="$top1" 'BEGIN{exit !(a > 2 && a < 25)}' || fail "untrained top1 $top1% is not near chance"

# json, md, limit, batch 1, confusion
expect_exit 0 "eval json" -- "$T" eval "$W/lenet300.tmf" --data fashion-mnist --limit 300 --format json --confusion
expect_grep "$W/out" '"confusion"' "json has a confusion table"
expect_grep "$W/out" '"samples":[[:space:]]*300' "limit 300 respected"
expect_exit 0 "eval batch 1" -- "$T" eval "$W/lenet300.tmf" --data fashion-mnist --limit 50 --batch 1 --format md
expect_grep "$W/out" "| lenet300 |" "markdown row"

# usage errors exit 2 with a message naming the problem
expect_exit 2 "unknown option" -- "$T" eval "$W/lenet5.tmf" --data fashion-mnist --bogus
expect_grep "$W/err" "unknown option '--bogus'" "unknown option named"
expect_exit 2 "missing --data" -- "$T" eval "$W/lenet5.tmf"
expect_grep "$W/err" "data is required" "missing data explained"
expect_exit 2 "bad --limit" -- "$T" eval "$W/lenet5.tmf" --data fashion-mnist --limit abc
expect_exit 2 "bad --batch" -- "$T" eval "$W/lenet5.tmf" --data fashion-mnist --batch 0
expect_exit 2 "unknown arch" -- "$T" create lenet6 -o "$W/x.tmf"
expect_grep "$W/err" "unknown architecture" "unknown arch named"
expect_exit 2 "bad input shape" -- "$T" create lenet5 --input 28x28 -o "$W/x.tmf"
expect_exit 2 "unknown command" -- "$T" frobnicate
expect_exit 2 "bad format" -- "$T" info "$W/lenet5.tmf" --format xml
CHECKS=$((CHECKS + 1)); [ -e "$W/x.tmf" ] && fail "a failed create left a file behind"

# runtime / data errors exit 1
expect_exit 1 "missing model file" -- "$T" info "$W/nope.tmf"
expect_grep "$W/err" "nope.tmf" "missing file named"
head -c 4096 /dev/urandom >"$W/random.tmf"
for cmd in info "eval --data fashion-mnist"; do
  # shellcheck disable=SC2086
  expect_exit 1 "random bytes to $cmd" -- "$T" $cmd "$W/random.tmf"
  expect_grep "$W/err" "error:" "random bytes message"
done
"$T" eval --data fashion-mnist <"$W/random.tmf" >"$W/out" 2>"$W/err"
rc=$?
CHECKS=$((CHECKS + 1)); [ $rc -eq 1 ] || fail "random bytes on stdin: exit $rc"
expect_grep "$W/err" "not a tinyml model" "random stdin explained"
: >"$W/empty.tmf"
expect_exit 1 "empty file" -- "$T" info "$W/empty.tmf"
size=$(wc -c <"$W/lenet5.tmf")
head -c $((size / 2)) "$W/lenet5.tmf" >"$W/half.tmf"
expect_exit 1 "truncated model" -- "$T" info "$W/half.tmf"
expect_exit 1 "dataset of another shape" -- "$T" eval "$W/kws.tmf" --data fashion-mnist
expect_grep "$W/err" "shape" "shape mismatch explained"
expect_exit 1 "missing dataset" -- "$T" eval "$W/lenet5.tmf" --data idx:/nonexistent/a,/nonexistent/b

# --config and --from-sensitivity together may name more layers than prune
# holds (256): refused with a message (regression: the sensitivity targets
# were written past the end of the table)
{
  printf '{'
  i=0; while [ $i -lt 100 ]; do printf '"c%d": 0.5,' $i; i=$((i + 1)); done
  printf '"c100": 0.5}\n'
} >"$W/many.json"
{
  printf '{"base_top1": 0.9, "points": [0, 0.5], "layers": ['
  i=0; while [ $i -lt 200 ]; do printf '{"name": "s%d", "top1": [0.9, 0.9]},' $i; i=$((i + 1)); done
  printf '{"name": "s200", "top1": [0.9, 0.9]}]}\n'
} >"$W/many-sens.json"
expect_exit 1 "too many layer targets" -- "$T" prune "$W/lenet5.tmf" --config "$W/many.json" --from-sensitivity "$W/many-sens.json" --max-drop 1 -o "$W/x.tmf"
expect_grep "$W/err" "too many layers" "too many layer targets explained"

# help and version
for cmd in create info eval; do
  expect_exit 0 "$cmd --help" -- "$T" "$cmd" --help
  expect_grep "$W/out" "Example" "$cmd help has examples"
done
expect_exit 0 "--version" -- "$T" --version
expect_grep "$W/out" "tinyml" "version printed"
finish
