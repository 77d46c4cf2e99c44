#!/bin/sh
# tinyml fit: the answer is within budget (checked again by `tinyml profile`
# on the emulated core when its tools are there), the search is deterministic
# for a seed whatever the thread count, a second run resumes from the state
# directory with the same answer, and an impossible budget says what came
# closest and by how much it misses.
. "$(dirname "$0")/lib.sh"
cd "$W" || exit 1
cat >tiny.json <<'JSON'
{"layers": [
  {"type": "conv2d", "name": "conv1", "filters": 8, "kernel": 3, "act": "relu"},
  {"type": "maxpool", "size": 2},
  {"type": "flatten"},
  {"type": "dense", "name": "fc1", "units": 32, "act": "relu"},
  {"type": "dense", "name": "fc2", "units": 10}
]}
JSON
"$T" create tiny.json -q -o init.tmf || fail "create"
"$T" train init.tmf --data fashion-mnist --limit 3000 --epochs 2 --val 500 -q -o base.tmf >/dev/null || fail "train"
VERIFY=""
if ! "$T" profile base.tmf --help >/dev/null 2>&1 || ! command -v arm-none-eabi-gcc >/dev/null || ! command -v qemu-system-arm >/dev/null; then
  echo "SKIP the emulator checks: arm-none-eabi-gcc / qemu-system-arm missing (scripts/install-deps.sh installs them)"
  VERIFY="--no-verify"
fi
FIT="fit base.tmf --data fashion-mnist --train-limit 3000 --flash 16K --ram 4K --epochs 1 --candidates 2 $VERIFY"

# shellcheck disable=SC2086
expect_exit 0 "fit into 16K / 4K" -- "$T" $FIT --jobs 2 --state s1 --format csv -o a.tmf
cp "$W/err" err1
# the table, with the quoted fields (origins such as "greedy all, fc1 -50%") blanked for awk -F,
sed 's/"[^"]*"/q/g' "$W/out" >table1
expect_grep "$W/out" "conv1" "the answer's plan is printed"
expect_grep err1 "answer: candidate" "the answer is announced"
expect_grep err1 "screen: candidate" "the fitting plans are ranked by a short fine-tune"
expect_grep err1 "greedy all, fc1 -50%" "a descent starts from the biggest layer's neurons half removed"
expect_grep err1 "moves measured from a short fine-tune from here" "far from the original, the descent measures moves from a fine-tuned base"
expect_grep err1 "fits with [0-9]* B of flash unused: the fine moves from the plan before it" \
  "a last move that leaves flash unused is tried again with the fine moves"
# the fine last step's plan (or the whole move's) fits the budget (not the grow descents': a looser one)
CHECKS=$((CHECKS + 1))
awk '/the fine moves. plan: flash/ && !/, grown:/ {for (i = 1; i < NF; i++) if ($i == "flash") v = $(i + 1) + 0; if (v > 16384) bad = 1; n++}
     END {exit !(n > 0 && !bad)}' err1 || fail "no fine last step taken, or its plan is over the flash budget"
# a grown plan (the descent again with the bytes the screening freed) is kept only if its
# screened flash, its path's compile gap and 1% of the budget fit: 16384 - 163
CHECKS=$((CHECKS + 1))
awk '/grow: .*: grown: screened flash/ {for (i = 1; i < NF; i++) {if ($i == "flash") f = $(i + 1) + 0; if ($i == "gap") g = $(i + 1) + 0}
                                         if (f + g > 16384 - 163) bad = 1}
     END {exit bad}' err1 || fail "a grown plan kept over the budget by its screened flash"
# the answer is the fitting candidate best on the validation half that picks (pick_top1%, the 11th column)
CHECKS=$((CHECKS + 1))
awk -F, '$9 == "yes" && $11 != "" {if ($1 ~ /\*/) a = $11 + 0; else if ($11 + 0 > m) m = $11 + 0; n++}
         END {exit !(n >= 1 && a != "" && a >= m)}' table1 || fail "the answer is not the best fitting candidate on the picking half"
# the budget, from the fit's own table, then measured again independently
FL=$(awk -F, '$1 ~ /^[0-9]+ \*/ {print $3}' table1)
RAM=$(awk -F, '$1 ~ /^[0-9]+ \*/ {print $4}' table1)
CHECKS=$((CHECKS + 1))
[ -n "$FL" ] && [ "$FL" -le 16384 ] && [ "$RAM" -le 4096 ] || fail "answer over budget or not found: flash '$FL' RAM '$RAM'"
if [ -z "$VERIFY" ]; then
  expect_grep err1 "verified bit-exact on the emulator" "the answer is verified on the emulator"
  # built as the answer says, with no options: the weight-form goal is stored
  # in it, and profile compiles a plan in the smallest form -Os by itself
  expect_exit 0 "profile the answer" -- "$T" profile a.tmf --data fashion-mnist --limit 2 --format csv
  if grep -q "compile it with -Os" err1; then
    expect_grep "$W/err" "compiled -Os: the weight forms are chosen for size" "profile compiles a size-mode answer -Os"
    expect_grep "$W/out" "compiler,-Os" "profile's summary says -Os"
  else
    expect_grep "$W/out" "compiler,-O2" "profile's summary says -O2"
  fi
  # a layer run inside a streamed segment is counted at the segment's last
  # layer: its own row says nothing ("-"), never a misleading 0
  CHECKS=$((CHECKS + 1))
  ! awk -F, '($2 == "conv2d" || $2 == "dense") && $5 == "0"' "$W/out" | grep -q . ||
    fail "profile shows 0 instructions for a layer with MACs"
  PF=$(awk -F, '$1 == "flash" {sub(/ B$/, "", $2); print $2; exit}' "$W/out")
  PR=$(awk -F, '$1 == "RAM: arena" {sub(/ B$/, "", $2); print $2; exit}' "$W/out")
  CHECKS=$((CHECKS + 1))
  [ -n "$PF" ] && [ "$PF" -le 16384 ] && [ -n "$PR" ] && [ "$PR" -le 4096 ] ||
    { fail "profile measures flash '$PF' RAM '$PR' (budget 16384 / 4096)"; grep -i "flash\|ram" "$W/out" | head -5 >&2; }
fi
expect_exit 0 "export the answer" -- "$T" export a.tmf --c -o ca -q

# deterministic: one thread, a fresh state directory, the same model
# shellcheck disable=SC2086
expect_exit 0 "fit again with --jobs 1" -- "$T" $FIT --jobs 1 --state s2 -o b.tmf
expect_exit 0 "export the second answer" -- "$T" export b.tmf --c -o cb -q
CHECKS=$((CHECKS + 1))
cmp -s ca/model.c cb/model.c || fail "fit is not deterministic: --jobs 1 and --jobs 2 give different models"

# resumable: the fine-tuned candidates come back from the state directory
# shellcheck disable=SC2086
expect_exit 0 "fit resumed from s1" -- "$T" $FIT --jobs 2 --state s1 -o c.tmf
expect_grep "$W/err" "fine-tune: candidate .* resumed" "the second run resumes the fine-tuned candidates"
# and the search: no descent runs again (it took most of the first run)
expect_grep "$W/err" "search: resumed from the state: [0-9]* candidates" "the second run resumes the search"
CHECKS=$((CHECKS + 1))
! grep -q "search: .*step [0-9]* \|screen: candidate" "$W/err" || fail "the resumed run searched again"
expect_grep "$W/out" "the search .* resumed from the state" "the table says the search was resumed"
expect_exit 0 "export the resumed answer" -- "$T" export c.tmf --c -o cc -q
CHECKS=$((CHECKS + 1))
cmp -s ca/model.c cc/model.c || fail "the resumed run gives a different answer"

# the fine-tuning settings are part of the state's key: SWA is fine-tuned afresh, not resumed,
# and the answer's history records them
# shellcheck disable=SC2086
expect_exit 0 "fit with SWA from the same state" -- "$T" $FIT --candidates 1 --finalists 1 --lr 5e-4 --lr-schedule constant \
  --weight-avg mean --weight-avg-from 0.5 --state s1 -o w.tmf
CHECKS=$((CHECKS + 1))
! grep -q "fine-tune: candidate .* resumed" "$W/err" || fail "a run with other fine-tuning settings resumed a candidate of the first"
expect_grep "$W/err" "search: resumed from the state" "but it resumes the search (not a fine-tuning setting)"
expect_exit 0 "the SWA answer's history" -- "$T" info w.tmf --history
expect_grep "$W/out" '"weight_avg": *"mean"' "the history records the weight average"
expect_grep "$W/out" '"lr_schedule": *"constant"' "the history records the learning-rate schedule"

# quantization-aware training as the candidates' last step: still within budget,
# still bit-exact on the emulator, and the answer's history says so
# (its state holds a damaged copy of s1's search: the same search options, so the same
# name; it is not trusted: the search runs again)
mkdir -p s3
for f in s1/search-*.json; do head -c 300 "$f" >"s3/$(basename "$f")"; done
# shellcheck disable=SC2086
expect_exit 0 "fit with --qat-epochs 1" -- "$T" $FIT --candidates 1 --qat-epochs 1 --state s3 -o q.tmf
expect_grep "$W/err" "the state's search is not one for this model and search: searching again" "a damaged search state is searched again"
expect_grep "$W/err" "screen: candidate" "and the search runs"
if [ -z "$VERIFY" ]; then expect_grep "$W/err" "verified bit-exact on the emulator" "the QAT answer is verified"; fi
expect_exit 0 "the QAT answer's history" -- "$T" info q.tmf --history
expect_grep "$W/out" "qat_epochs" "the history records the QAT epochs"

# a residual block: the filters of the layers the add ties (the block's input
# conv1, its last conv rb) and of the output layer cannot be removed; the
# search says so, and neither moves them nor starts a descent from them
cat >res.json <<'JSON'
{"layers": [
  {"type": "conv2d", "name": "conv1", "filters": 8, "kernel": 3, "padding": "same", "act": "relu"},
  {"type": "maxpool", "size": 2},
  {"type": "residual", "act": "relu", "layers": [
    {"type": "conv2d", "name": "ra", "filters": 8, "kernel": 3, "padding": "same", "act": "relu"},
    {"type": "conv2d", "name": "rb", "filters": 8, "kernel": 3, "padding": "same"}]},
  {"type": "maxpool", "size": 2},
  {"type": "flatten"},
  {"type": "dense", "name": "fc1", "units": 16, "act": "relu"},
  {"type": "dense", "name": "fc2", "units": 10}
]}
JSON
"$T" create res.json -q -o res0.tmf || fail "create res"
"$T" train res0.tmf --data fashion-mnist --limit 2000 --epochs 1 --val 300 -q -o res.tmf >/dev/null || fail "train res"
expect_exit 0 "fit a residual model" -- "$T" fit res.tmf --data fashion-mnist --train-limit 2000 --flash 12K --ram 4K \
  --epochs 1 --candidates 1 --no-verify -o r.tmf
expect_grep "$W/err" "filters that cannot be removed (kept by the graph): conv1, rb, fc2" "the tied layers are named"
expect_grep "$W/err" "greedy all, ra -50%" "a structured start from the biggest layer whose filters can go"
CHECKS=$((CHECKS + 1))
! grep -q "greedy all, \(conv1\|rb\) -\|\(conv1\|rb\) filters ->" "$W/err" || fail "a tied layer's filters were moved"

# data without a test split (a CSV): the report holds out --val-split, never
# fine-tuned on; without it, a loud warning that test = the fine-tuning data
awk 'BEGIN{srand(3); print "a,b,c,d,label"; for (i = 0; i < 600; i++) { k = i % 3; line = "";
     for (j = 0; j < 4; j++) line = line sprintf("%.3f,", (j < 2 ? 100 * k * (j + 1) : 0) + (rand() - 0.5) * 150 * (j + 1));
     print line k } }' >tab.csv
"$T" create lenet300 --input 4 --classes 3 -q | "$T" train --data csv:tab.csv --normalize auto --val-split 0.2 --epochs 3 \
  --no-checkpoint -q -o mlp.tmf >/dev/null || fail "train the tabular model"
expect_exit 0 "fit a CSV model with --val-split" -- "$T" fit mlp.tmf --data csv:tab.csv --val-split 0.25 --flash 8K --ram 2K \
  --epochs 1 --candidates 1 --no-verify --format csv -o t.tmf
expect_grep "$W/out" "test: the 150 samples held out of csv:tab.csv (25%, seed 1), never fine-tuned on" "the test part is held out"
expect_grep "$W/err" "450 training samples (225 held out)" "fit fine-tunes and validates on the rest"
expect_exit 0 "fit a CSV model without held-out data" -- "$T" fit mlp.tmf --data csv:tab.csv --flash 8K --ram 2K \
  --epochs 1 --candidates 1 --no-verify --format csv -o t2.tmf
expect_grep "$W/err" "warning: csv:tab.csv has no test split" "no test split: a loud warning"
expect_grep "$W/out" "the SAME samples it was fine-tuned on" "and the table says so"

# nothing fits: exit 1, the closest candidate and its miss, no model written
# (a quarter-minute time budget: the search is cut short, and says a larger one may fit)
expect_exit 1 "an impossible budget" -- "$T" fit base.tmf --data fashion-mnist --train-limit 3000 --flash 1K --ram 256 \
  --epochs 1 --candidates 2 --no-verify --time-budget 0.25 -o none.tmf
expect_grep "$W/err" "nothing fits: the closest candidate" "nothing fits names the closest candidate"
expect_grep "$W/err" "misses flash by [0-9]* B" "and by how much it misses"
expect_grep "$W/err" "the time budget cut the search short.*a larger --time-budget may" "a cut search says so"
CHECKS=$((CHECKS + 1))
[ ! -e none.tmf ] || fail "nothing fits but a model was written"

# usage errors
expect_exit 2 "a bad size" -- "$T" fit base.tmf --data fashion-mnist --flash 12Q --ram 4K -o x.tmf
expect_exit 2 "no RAM budget" -- "$T" fit base.tmf --data fashion-mnist --flash 16K -o x.tmf
expect_exit 2 "no data" -- "$T" fit base.tmf --flash 16K --ram 4K -o x.tmf
expect_exit 2 "a bad schedule" -- "$T" fit base.tmf --data fashion-mnist --flash 16K --ram 4K --lr-schedule step -o x.tmf
expect_exit 2 "an average start without an average" -- "$T" fit base.tmf --data fashion-mnist --flash 16K --ram 4K \
  --weight-avg-from 0.5 -o x.tmf
expect_exit 2 "a bad average" -- "$T" fit base.tmf --data fashion-mnist --flash 16K --ram 4K --weight-avg median -o x.tmf
finish
