#!/bin/sh
# sweep.sh - batch evaluation: run a grid of compression settings over a base
# model, one pipeline per point (prune | cluster | quantize), and write one CSV
# row per point: settings, file size, ratio, top-1, drop, seconds.
#
#   scripts/sweep.sh BASE.tmf --data fashion-mnist [grid] [options]
#
# Grid (space-separated lists; 0 / none skips that stage):
#   --sparsity "0 0.5 0.8 0.9"   global magnitude pruning target
#   --bits "0 4 5"               clustering bits
#   --method "none minmax entropy"  quantization calibration (none = stay float)
# Options:
#   --epochs N            masked fine-tuning epochs after pruning (default 0;
#                         --finetune-epochs is the old spelling)
#   --prune-args "..."    more options for every prune stage, e.g.
#                         "--prune-schedule agp --teacher base.tmf" (no quotes inside)
#   --cluster-args "..."  more options for every cluster stage, e.g.
#                         "--epochs 1 --lr 1e-4 --data fashion-mnist"
#   --calib-samples N     (default 256)   --limit N  evaluate N test samples only
#   --out DIR             results (default out/sweep): DIR/sweep.csv (top1% in percent,
#                         drop in points, like the tables), DIR/points/*.tmf, DIR/sweep.png
#   -j N                  run N points at once on this machine
#   --list                print the point ids
#   --jobs                print one shell command per point (for GNU parallel,
#                         e.g. `scripts/sweep.sh ... --jobs | parallel --sshlogin h1,h2`;
#                         the hosts need this checkout and DIR on a shared path)
#   --slurm               print a Slurm job-array script (sbatch it)
#   --point ID            run one point (what -j, --jobs and --slurm call)
#   --no-plot             skip the plot
# A sweep resumes: points already in DIR/sweep.csv are not run again. Points
# that share a prefix share its work: the prune stage (with its fine-tuning) of
# a sparsity runs once for all its points, the cluster stage once per
# (sparsity, bits); the stages are kept in DIR/stages/. Progress: "N/M done,
# ETA" on stderr after every point.
# The program: $TINYML, else the tinyml on PATH, else this checkout's build/tinyml.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${TINYML:-}" ]; then T=$TINYML
elif command -v tinyml >/dev/null 2>&1; then T=$(command -v tinyml)
else T=$ROOT/build/tinyml
fi
SELF="$ROOT/scripts/sweep.sh"

BASE=""; DATA=""; SPARS="0 0.5 0.8 0.9"; BITS="0 5"; METHODS="none minmax"
FT=0; CALIB_N=256; LIMIT=""; OUT=out/sweep; JOBS=1; MODE=run; POINT=""; PLOT=1
PARGS=""; CARGS=""
usage() { sed -n '2,36p' "$0"; }
die() { echo "sweep.sh: error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift ;;
    --sparsity) SPARS=$2; shift ;;
    --bits) BITS=$2; shift ;;
    --method) METHODS=$2; shift ;;
    --epochs|--finetune-epochs) FT=$2; shift ;;
    --prune-args) PARGS=$2; shift ;;
    --cluster-args) CARGS=$2; shift ;;
    --calib-samples) CALIB_N=$2; shift ;;
    --limit) LIMIT=$2; shift ;;
    --out) OUT=$2; shift ;;
    -j) JOBS=$2; shift ;;
    --list) MODE=list ;;
    --jobs) MODE=jobs ;;
    --slurm) MODE=slurm ;;
    --point) MODE=point; POINT=$2; shift ;;
    --no-plot) PLOT=0 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option '$1'" ;;
    *) [ -z "$BASE" ] || die "one base model only"; BASE=$1 ;;
  esac
  shift
done
[ -n "$BASE" ] || die "give the base model (see --help)"
[ -n "$DATA" ] || die "--data is required"
[ -f "$BASE" ] || { echo "sweep.sh: error: cannot open '$BASE'" >&2; exit 1; }
[ -x "$T" ] || { echo "sweep.sh: error: no tinyml: set TINYML, put tinyml on PATH or build this checkout ($T)" >&2; exit 1; }
case "$JOBS" in ''|*[!0-9]*) die "-j expects a number" ;; esac
case "$FT" in ''|*[!0-9]*) die "--epochs expects a number" ;; esac
case "$PARGS$CARGS" in *\'*|*\"*) die "--prune-args / --cluster-args: no quotes inside" ;; esac
BASE=$(cd "$(dirname "$BASE")" && pwd)/$(basename "$BASE")
mkdir -p "$OUT/points"
OUT=$(cd "$OUT" && pwd)
CSV=$OUT/sweep.csv
LIMIT_OPT=""; [ -n "$LIMIT" ] && LIMIT_OPT="--limit $LIMIT"

# the options a child invocation needs to reproduce this sweep
ARGS="'$BASE' --data '$DATA' --sparsity '$SPARS' --bits '$BITS' --method '$METHODS' --epochs $FT --calib-samples $CALIB_N --out '$OUT'"
[ -n "$LIMIT" ] && ARGS="$ARGS --limit $LIMIT"
[ -n "$PARGS" ] && ARGS="$ARGS --prune-args '$PARGS'"
[ -n "$CARGS" ] && ARGS="$ARGS --cluster-args '$CARGS'"
# shared stages live under a key of everything that shapes them, so a sweep
# with other stage options (or another base or program) never reuses them
SKEY=$( (printf '%s|%s|%s|%s|%s|' "$BASE" "$DATA" "$FT" "$PARGS" "$CARGS"; cksum <"$BASE"; cksum <"$T") | cksum | cut -d' ' -f1)
STAGES=$OUT/stages/$SKEY
mkdir -p "$STAGES"
TOTAL=$(for s in $SPARS; do for b in $BITS; do for m in $METHODS; do echo x; done; done; done | wc -l)
SWEEP_T0=${SWEEP_T0:-$(date +%s)}
export SWEEP_T0

points() {
  for s in $SPARS; do for b in $BITS; do for m in $METHODS; do echo "s${s}_b${b}_${m}"; done; done; done
}

top1_of() { # model -> top-1 % on the test split
  "$T" eval "$1" --data "$DATA" $LIMIT_OPT --no-per-class --format csv -q | awk -F, '!/^#/ && ++n == 2 {print $4}'
}

append() { # row -> CSV, safe under parallel writers
  if command -v flock >/dev/null 2>&1; then
    flock "$CSV.lock" sh -c "printf '%s\n' \"\$1\" >> \"$CSV\"" sh "$1"
  else
    until mkdir "$CSV.lockdir" 2>/dev/null; do sleep 0.1; done
    printf '%s\n' "$1" >>"$CSV"
    rmdir "$CSV.lockdir"
  fi
}

ensure_header_and_base() {
  [ -s "$CSV" ] || append "id,sparsity,bits,method,finetune_epochs,bytes,ratio,top1%,drop,seconds"
  if ! grep -q "^base," "$CSV"; then
    acc=$(top1_of "$BASE") || exit 1
    append "base,0,0,none,0,$(wc -c <"$BASE"),1.000,$acc,0.00,0"
  fi
}

# "N/M done, ETA": from the rows in the CSV, the rows there when this sweep
# started (SWEEP_D0: resumed points cost nothing) and its start time
progress() {
  done_n=$(grep -c '^s' "$CSV" 2>/dev/null || echo 0)
  now=$(date +%s)
  awk -v d="$done_n" -v t="$TOTAL" -v el=$((now - SWEEP_T0)) -v d0="${SWEEP_D0:-}" 'BEGIN{
    eta = "?"; new = d0 == "" ? 0 : d - d0
    if (new > 0) { r = (t - d) * el / new; eta = r >= 60 ? sprintf("%dm%02ds", r / 60, r % 60) : sprintf("%ds", r) }
    if (d >= t) eta = "0s"
    printf "sweep: %d/%d done, %ds elapsed, ETA %s\n", d, t, el, eta }' >&2
}

# stage KEY IN CMD...: DIR/stages/.../KEY.tmf = CMD < IN, made once for every
# point that needs it (under a lock: parallel points wait for the first);
# prints the file's path
stage() {
  key=$1; in=$2; shift 2
  f=$STAGES/$key.tmf
  (
    if command -v flock >/dev/null 2>&1; then exec 9>"$f.lock"; flock 9
    else until mkdir "$f.lockdir" 2>/dev/null; do sleep 0.2; done; trap 'rmdir "$f.lockdir"' EXIT
    fi
    if [ -s "$f" ]; then
      echo "sweep: stage $key reused" >&2
    else
      echo "sweep: stage $key computed once for the points that share it" >&2
      "$@" <"$in" >"$f.part" || { rc=$?; rm -f "$f.part"; exit $rc; }
      mv "$f.part" "$f"
    fi
  ) || return $?
  echo "$f"
}

run_point() {
  id=$1
  grep -q "^$id," "$CSV" 2>/dev/null && { echo "sweep: $id done before, skipped" >&2; return 0; }
  s=${id#s}; s=${s%%_*}; rest=${id#*_b}; b=${rest%%_*}; m=${rest#*_}
  t0=$(date +%s.%N)
  cur=$BASE
  if [ "$s" != 0 ]; then
    FTOPT=""; [ "$FT" -gt 0 ] && FTOPT="--epochs $FT --data $DATA"
    # shellcheck disable=SC2086
    cur=$(stage "s$s" "$cur" "$T" prune --sparsity "$s" --global $FTOPT $PARGS -q)
    rc=$?; [ $rc -eq 0 ] || { echo "sweep: point $id failed: prune $rc" >&2; return 1; }
  fi
  if [ "$b" != 0 ]; then
    # shellcheck disable=SC2086
    cur=$(stage "s${s}_b$b" "$cur" "$T" cluster --bits "$b" $CARGS -q)
    rc=$?; [ $rc -eq 0 ] || { echo "sweep: point $id failed: cluster $rc" >&2; return 1; }
  fi
  tmp=$OUT/points/$id.tmf.part
  if [ "$m" != none ]; then
    "$T" quantize "$cur" --calib "$DATA" --calib-samples "$CALIB_N" --method "$m" -q -o "$tmp" \
      || { echo "sweep: point $id failed: quantize 1" >&2; rm -f "$tmp"; return 1; }
  else
    cp "$cur" "$tmp"
  fi
  mv "$tmp" "$OUT/points/$id.tmf"
  acc=$(top1_of "$OUT/points/$id.tmf") || return 1
  t1=$(date +%s.%N)
  base_bytes=$(awk -F, '$1=="base"{print $6}' "$CSV")
  base_acc=$(awk -F, '$1=="base"{print $8}' "$CSV")
  bytes=$(wc -c <"$OUT/points/$id.tmf")
  row=$(awk -v id="$id" -v s="$s" -v b="$b" -v m="$m" -v ft="$FT" -v by="$bytes" -v bb="$base_bytes" -v a="$acc" \
            -v ba="$base_acc" -v t0="$t0" -v t1="$t1" \
            'BEGIN{printf "%s,%s,%s,%s,%s,%d,%.3f,%.2f,%.2f,%.1f", id, s, b, m, ft, by, bb/by, a, ba-a, t1-t0}')
  append "$row"
  echo "sweep: $row" >&2
  progress
}

case $MODE in
  list) points; exit 0 ;;
  jobs) for p in $(points); do echo "sh '$SELF' $ARGS --point $p"; done; exit 0 ;;
  slurm)
    n=$(points | wc -l)
    cat <<EOF
#!/bin/sh
#SBATCH --job-name=tinyml-sweep
#SBATCH --array=0-$((n - 1))
#SBATCH --cpus-per-task=2
#SBATCH --output=$OUT/slurm-%A_%a.log
# generated by scripts/sweep.sh: one array task per point; rerunning skips finished points
ID=\$(sh '$SELF' $ARGS --list | sed -n "\$((SLURM_ARRAY_TASK_ID + 1))p")
exec sh '$SELF' $ARGS --point "\$ID"
EOF
    exit 0 ;;
  point) ensure_header_and_base; run_point "$POINT"; exit $? ;;
esac

ensure_header_and_base
fails=0
SWEEP_D0=$(grep -c '^s' "$CSV" 2>/dev/null || echo 0)
export SWEEP_D0
echo "sweep: $TOTAL points with $T ($SWEEP_D0 done before)" >&2
if [ "$JOBS" -gt 1 ]; then
  points | xargs -P "$JOBS" -I{} sh -c "sh '$SELF' $ARGS --point {} || exit 255" || fails=1
else
  for p in $(points); do run_point "$p" || fails=1; done
fi
if [ $PLOT -eq 1 ]; then
  Y=top1%; head -1 "$CSV" | grep -q 'top1%' || Y=top1 # a sweep started by an older sweep.sh
  "$T" plot "$CSV" --x bytes --y "$Y" --series method --xlog --pareto \
    --title "Sweep over $(basename "$BASE") ($DATA)" --xlabel "file size (bytes)" --ylabel "top-1 (%)" -o "$OUT/sweep.png" -q
fi
column -s, -t <"$CSV" 2>/dev/null || cat "$CSV"
exit $fails
