#!/bin/sh
# Memory schedules through the command line: `tinyml schedule` stores its
# options in the model and info, eval and export then agree on the schedule
# and its arena; --ram-limit that nothing meets is an error for schedule and
# export, a warning for info and eval; eval --check-schedule compares every
# output with the layer-by-layer run; bad options are usage errors.
. "$(dirname "$0")/lib.sh"

# an int8 dscnn (untrained weights do: the schedule depends on shapes only)
"$T" create dscnn --seed 2 -q | "$T" quantize --calib fashion-mnist --calib-samples 64 -q -o "$W/d.tmf" 2>"$W/err" \
  || { fail "create | quantize"; sed 's/^/    /' "$W/err" >&2; }

# the default: least RAM within 5% extra MACs, at least 2x below the bound
expect_exit 0 "schedule (table only)" -- "$T" schedule "$W/d.tmf" -o /dev/null --format csv
expect_grep "$W/out" "^model (arena)," "schedule has the model row"
arena=$(awk -F, '/^model \(arena\),/{print $5}' "$W/out")
bound=$(awk -F, '/^model \(arena\),/{print $6}' "$W/out")
CHECKS=$((CHECKS + 1))
[ -n "$arena" ] && [ $((2 * arena)) -le "$bound" ] || fail "dscnn arena $arena is not 2x below the bound $bound"

# info and export report the same arena (no options stored: the defaults)
expect_exit 0 "info" -- "$T" info "$W/d.tmf" --format csv
expect_grep "$W/out" "^model (arena),,11,,$arena,$bound," "info shows the same schedule"
expect_exit 0 "export" -- "$T" export "$W/d.tmf" --c -o "$W/c" --format csv
expect_grep "$W/out" "^RAM (arena),$arena," "export's arena is the schedule's"
expect_grep "$W/c/model.h" "#define MODEL_ARENA_SIZE $arena" "the header says so too"

# stored options: a RAM limit the default meets; eval, info, export follow it
limit=$((arena + 2048))
expect_exit 0 "schedule --ram-limit stores" -- "$T" schedule "$W/d.tmf" --ram-limit "$limit" -o "$W/d2.tmf"
expect_exit 0 "info of the stored schedule" -- "$T" info "$W/d2.tmf"
expect_grep "$W/out" "within $limit bytes of RAM (stored in the model)" "info uses the stored options"
expect_exit 0 "info --history" -- "$T" info "$W/d2.tmf" --history
expect_grep "$W/out" "ram_limit" "the pass is in the history"
a2=$(awk -F, '/^model \(arena\),/{print $5}' "$W/out")
expect_exit 0 "export of the stored schedule" -- "$T" export "$W/d2.tmf" --c -o "$W/c2" --format csv
expect_grep "$W/out" "stored in the model" "export uses the stored options"
expect_exit 0 "command line beats the model" -- "$T" info "$W/d2.tmf" --no-schedule
expect_grep "$W/out" "none: layer by layer (command line)" "--no-schedule overrides"

# eval runs the schedule and compares with the layer-by-layer run
expect_exit 0 "eval --check-schedule" -- "$T" eval "$W/d2.tmf" --data fashion-mnist --limit 300 --check-schedule
expect_grep "$W/out" "3000 output values compared with the layer-by-layer run, 0 differ" "no difference"
expect_exit 0 "eval of the stored schedule" -- "$T" eval "$W/d2.tmf" --data fashion-mnist --limit 100
expect_grep "$W/out" "memory schedule (fewest extra MACs within $limit bytes" "eval names the schedule it ran"
expect_exit 0 "eval --no-schedule" -- "$T" eval "$W/d2.tmf" --data fashion-mnist --limit 100 --no-schedule
expect_grep "$W/out" "memory schedule: none" "eval says it ran layer by layer"

# a limit nothing meets: schedule and export fail (nothing written), info and eval warn
expect_exit 1 "schedule: impossible limit" -- "$T" schedule "$W/d.tmf" --ram-limit 1000 -o "$W/x.tmf"
expect_grep "$W/err" "no schedule fits 1000 bytes: the least RAM is" "the miss is reported"
CHECKS=$((CHECKS + 1)); [ -e "$W/x.tmf" ] && fail "a failed schedule wrote a model"
expect_exit 1 "export: impossible limit" -- "$T" export "$W/d.tmf" --c -o "$W/x" --ram-limit 1K
expect_grep "$W/err" "no schedule fits --ram-limit 1024 bytes" "export says by how much it misses"
CHECKS=$((CHECKS + 1)); [ -e "$W/x/model.c" ] && fail "a failed export wrote files"
expect_exit 0 "info: impossible limit" -- "$T" info "$W/d.tmf" --ram-limit 1000
expect_grep "$W/out" "NO SCHEDULE FITS 1000 bytes" "info marks the miss"
expect_grep "$W/err" "no schedule fits" "info warns"

# usage errors
expect_exit 2 "two modes" -- "$T" schedule "$W/d.tmf" --ram-limit 9000 --max-recompute 5
expect_grep "$W/err" "exclude each other" "conflicting options named"
expect_exit 2 "bad --ram-limit" -- "$T" schedule "$W/d.tmf" --ram-limit 12Q
expect_exit 2 "bad --max-recompute" -- "$T" schedule "$W/d.tmf" --max-recompute -1
expect_exit 1 "float model" -- "$T" schedule "$W/nope.tmf"
"$T" create lenet5 -q -o "$W/f.tmf"
expect_exit 1 "schedule of a float model" -- "$T" schedule "$W/f.tmf"
expect_grep "$W/err" "quantize first" "float model refused with advice"
expect_exit 2 "eval: schedule options on a float model" -- "$T" eval "$W/f.tmf" --data fashion-mnist --limit 10 --ram-limit 4K
finish
