#!/bin/sh
# scripts/sweep.sh: a small grid runs, resumes without redoing points, runs
# points in parallel, prints job lists for GNU parallel and Slurm, plots.
. "$(dirname "$0")/lib.sh"
S="sh $TML_SOURCE_DIR/scripts/sweep.sh"
export TINYML="$T"
"$T" create lenet300 --seed 2 -q -o "$W/base.tmf"
GRID="--data fashion-mnist --sparsity '0 0.5' --bits '0 3' --method 'none minmax' --limit 300 --calib-samples 32 --out $W/sw"

# one point first: a half-finished sweep
expect_exit 0 "one point" -- sh -c "$S $W/base.tmf $GRID --point s0.5_b3_minmax"
CHECKS=$((CHECKS + 1)); [ "$(grep -c , "$W/sw/sweep.csv")" -eq 3 ] || fail "header + base + 1 point expected"
row1=$(grep "^s0.5_b3_minmax," "$W/sw/sweep.csv")
# the full sweep resumes: that point is skipped, the others run, two at a time
expect_exit 0 "full sweep -j 2" -- sh -c "$S $W/base.tmf $GRID -j 2"
expect_grep "$W/err" "s0.5_b3_minmax done before, skipped" "finished point not redone"
CHECKS=$((CHECKS + 1)); [ "$(grep -c "^s" "$W/sw/sweep.csv")" -eq 8 ] || fail "8 points expected in the CSV"
CHECKS=$((CHECKS + 1)); [ "$(grep "^s0.5_b3_minmax," "$W/sw/sweep.csv")" = "$row1" ] || fail "the resumed point's row changed"
CHECKS=$((CHECKS + 1)); [ "$(grep -c "^s0.5_b3_minmax," "$W/sw/sweep.csv")" -eq 1 ] || fail "a point appears twice"
CHECKS=$((CHECKS + 1)); head -c 8 "$W/sw/sweep.png" | od -c | grep -q "P   N   G" || fail "no sweep plot"
# sizes shrink with compression: the pruned+clustered+int8 file is the smallest
small=$(awk -F, '$1=="s0.5_b3_minmax"{print $6}' "$W/sw/sweep.csv")
base=$(awk -F, '$1=="base"{print $6}' "$W/sw/sweep.csv")
CHECKS=$((CHECKS + 1)); [ "$small" -lt $((base / 8)) ] || fail "s0.5_b3_minmax is $small bytes, base $base"
# a second run does nothing new
expect_exit 0 "rerun" -- sh -c "$S $W/base.tmf $GRID --no-plot"
CHECKS=$((CHECKS + 1)); [ "$(grep -c "skipped" "$W/err")" -eq 8 ] || fail "a rerun should skip all 8 points"
# job lists
expect_exit 0 "jobs" -- sh -c "$S $W/base.tmf $GRID --jobs"
CHECKS=$((CHECKS + 1)); [ "$(grep -c -- "--point s" "$W/out")" -eq 8 ] || fail "--jobs should print 8 commands"
expect_exit 0 "slurm" -- sh -c "$S $W/base.tmf $GRID --slurm"
expect_grep "$W/out" "#SBATCH --array=0-7" "slurm array over 8 points"
expect_grep "$W/out" "SLURM_ARRAY_TASK_ID" "slurm task picks its point"
# extra stage options reach the stages: only fc1 clustered, fc3 protected from pruning
expect_exit 0 "stage options" -- sh -c "$S $W/base.tmf --data fashion-mnist --sparsity 0.5 --bits 3 --method none --limit 100 --out $W/sw2 --no-plot --prune-args '--skip fc3' --cluster-args '--layer fc1' --point s0.5_b3_none"
expect_exit 0 "info of the point" -- "$T" info "$W/sw2/points/s0.5_b3_none.tmf" --format csv
CHECKS=$((CHECKS + 1)); grep -q "^fc1,dense,.*3bit" "$W/out" || fail "fc1 should be clustered to 3 bits"
CHECKS=$((CHECKS + 1)); grep "^fc2,dense," "$W/out" | grep -q "bit" && fail "fc2 should not be clustered"
CHECKS=$((CHECKS + 1)); [ "$(awk -F, '$1=="fc3"{print $5 "/" $6; exit}' "$W/out")" = 1000/0 ] || fail "fc3 should keep all 1000 weights (sparsity 0)"
expect_exit 1 "a bad stage option fails the point" -- sh -c "$S $W/base.tmf --data fashion-mnist --sparsity 0.5 --bits 0 --method none --limit 100 --out $W/sw3 --no-plot --prune-args '--bogus' --point s0.5_b0_none"
expect_grep "$W/err" "failed: prune 2" "the failing stage is named"
# progress with an ETA, shared prefixes computed once (item 17 of issue 14):
# 4 points share the prune + fine-tune of s0.5, 2 the cluster stage s0.5_b3
expect_exit 0 "shared prefix, -j 2" -- sh -c "$S $W/base.tmf --data fashion-mnist --sparsity 0.5 --bits '0 3' --method 'none minmax' --epochs 1 --limit 200 --calib-samples 16 --out $W/sw4 --no-plot -j 2"
CHECKS=$((CHECKS + 1)); [ "$(grep -c "stage s0.5 computed" "$W/err")" -eq 1 ] || fail "the shared prune stage should run once: $(grep -c "stage s0.5 computed" "$W/err") times"
CHECKS=$((CHECKS + 1)); [ "$(grep -c "stage s0.5 reused" "$W/err")" -eq 3 ] || fail "the shared prune stage should be reused 3 times"
CHECKS=$((CHECKS + 1)); [ "$(grep -c "stage s0.5_b3 computed" "$W/err")" -eq 1 ] || fail "the shared cluster stage should run once"
expect_grep "$W/err" "sweep: 4/4 done" "progress reaches 4/4"
expect_grep "$W/err" "sweep: [123]/4 done, [0-9]*s elapsed, ETA [0-9]" "progress gives an ETA"
CHECKS=$((CHECKS + 1)); [ "$(grep -c "^s0.5_" "$W/sw4/sweep.csv")" -eq 4 ] || fail "4 rows expected"
# the program on PATH when TINYML is not set
mkdir -p "$W/bin"
printf '#!/bin/sh\necho "$*" >>"%s/calls.log"\nexec "%s" "$@"\n' "$W" "$T" >"$W/bin/tinyml"
chmod +x "$W/bin/tinyml"
expect_exit 0 "sweep with tinyml on PATH" -- env -u TINYML PATH="$W/bin:$PATH" sh -c "$S $W/base.tmf --data fashion-mnist --sparsity 0.5 --bits 0 --method none --limit 100 --out $W/sw5 --no-plot"
CHECKS=$((CHECKS + 1)); grep -q "^prune " "$W/calls.log" || fail "the tinyml on PATH was not used"

# errors
expect_exit 2 "no data" -- sh -c "$S $W/base.tmf"
expect_exit 1 "missing base" -- sh -c "$S $W/nope.tmf --data fashion-mnist"
finish
