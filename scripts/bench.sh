#!/bin/sh
# bench.sh - the measurements behind docs/benchmarks.md. Writes Markdown tables
# to out/bench/results.md (and the models to out/bench/); run it on an idle
# machine: timings are wall-clock.
#
#   scripts/bench.sh [sections...]
#
# Sections (default: all but train): machine kernels eval quant prune cluster
#   deep lowbit torch device memory; `train` (re)trains the zoo baselines first (~11
#   min on 2 cores). Models come from out/bench/<arch>.tmf (trained by the
#   train section). `lowbit` (below 8 bits: PTQ, QAT, mixed precision, QAT
#   after Deep Compression; ~1 h on 2 cores) uses deep's clustered models when
#   present. `device` profiles the exported C on an emulated Cortex-M4 (needs
#   scripts/install-deps.sh --mcu; uses the int8 and deep models of the eval
#   and deep sections): exact instruction counts, not timings.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD_DIR:-$ROOT/build}
T=$B/tinyml
OUT=$ROOT/out/bench
mkdir -p "$OUT"
R=$OUT/results.md
SECTIONS=${*:-machine kernels eval quant prune cluster deep lowbit torch device memory}
D=fashion-mnist
PY=/usr/bin/python3
say() { printf '%s\n' "$*" >>"$R"; }
csvrow() { awk -F, '!/^#/ && ++n == 2' ; } # first data row of a tinyml CSV
sub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a - b}'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN{print (a < b) ? a : b}'; }
top1() { "$T" eval "$1" --data $D --format csv --no-per-class -q | csvrow | cut -d, -f4; }
# "mean (min-max)" of the numbers given
stats() { printf '%s\n' "$@" | awk '{s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1}
  END {printf "%.2f (%.2f-%.2f)", s / NR, lo, hi}'; }

"$ROOT/scripts/build.sh" >/dev/null
[ -f "$R" ] || echo "# Benchmark results" >"$R"

for s in $SECTIONS; do
case $s in
machine)
  say ""; say "## Machine ($(date -u +%Y-%m-%d))"; say ""
  say "- CPU: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'), $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  say "- $(gcc --version | head -1); tinyml $("$T" --version | awk '{print $2}'), Release build, OpenMP"
  say "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  ;;
train)
  say ""; say "## Training baselines (defaults: Adam 1e-3, cosine, batch 64, 12 epochs, label smoothing 0.1, seed 1)"; say ""
  say "| model | params | test top-1 % (10,000) | epochs | wall s | samples/s (last epoch) |"
  say "|---|---:|---:|---:|---:|---:|"
  for a in lenet300 lenet5 dscnn mobilenet-tiny resnet8; do
    "$T" create $a -q -o "$OUT/$a-init.tmf"
    t0=$(date +%s.%N)
    "$T" train "$OUT/$a-init.tmf" --data $D --format csv -q -o "$OUT/$a.tmf" >"$OUT/$a.train.csv"
    t1=$(date +%s.%N)
    acc=$("$T" eval "$OUT/$a.tmf" --data $D --format csv --no-per-class -q | csvrow | cut -d, -f4)
    sps=$(grep -E '^[0-9]+,' "$OUT/$a.train.csv" | tail -1 | cut -d, -f8)
    params=$("$T" info "$OUT/$a.tmf" --format csv | awk -F, '$1=="total"{print $4}')
    say "| $a | $params | $acc | 12 | $(sub "$t1" "$t0") | $sps |"
  done
  ;;
kernels)
  say ""; say "## Kernels"; say ""
  say '```'; "$B/tests/bench_gemm" 2>&1 | tail -25 >>"$R"; say '```'
  say ""; say "Sparse (CSR) vs dense float kernels, 1 thread (case,batch,sparsity,dense_us,sparse_us,speedup):"; say ""
  say '```'; OMP_NUM_THREADS=1 "$B/tests/bench_sparse" 20 >>"$R" 2>&1; say '```'
  ;;
eval)
  say ""; say "## Float and int8 inference speed (engine only, fixed random inputs; tests/bench/bench_latency)"; say ""
  say "| model | float batch-1 µs | int8 batch-1 µs | float batch-256 samples/s | int8 batch-256 samples/s | eval (data incl.) float samples/s |"
  say "|---|---:|---:|---:|---:|---:|"
  for a in lenet300 lenet5 dscnn mobilenet-tiny resnet8; do
    [ -f "$OUT/$a.tmf" ] || continue
    "$T" quantize "$OUT/$a.tmf" --calib $D -q -o "$OUT/$a-int8.tmf"
    f1=$("$B/tests/bench_latency" "$OUT/$a.tmf" 1 3000 | sed 's/.*median \([0-9.]*\) us.*/\1/')
    q1=$("$B/tests/bench_latency" "$OUT/$a-int8.tmf" 1 3000 | sed 's/.*median \([0-9.]*\) us.*/\1/')
    fb=$("$B/tests/bench_latency" "$OUT/$a.tmf" 256 100 | sed 's/.*us, \([0-9]*\) samples.*/\1/')
    qb=$("$B/tests/bench_latency" "$OUT/$a-int8.tmf" 256 100 | sed 's/.*us, \([0-9]*\) samples.*/\1/')
    ev=$("$T" eval "$OUT/$a.tmf" --data $D --format csv --no-per-class -q | csvrow | cut -d, -f7)
    say "| $a | $f1 | $q1 | $fb | $qb | $ev |"
  done
  ;;
quant)
  say ""; say "## Post-training quantization: float vs int8 top-1 (test split, 10,000), 512 calibration samples (seed 1)"; say ""
  say "| model | float | minmax | percentile | entropy | mse | minmax per-tensor | percentile per-tensor | entropy per-tensor | mse per-tensor | best drop | quantize s |"
  say "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for a in lenet300 lenet5 dscnn mobilenet-tiny resnet8; do
    [ -f "$OUT/$a.tmf" ] || continue
    f=$("$T" eval "$OUT/$a.tmf" --data $D --format csv --no-per-class -q | csvrow | cut -d, -f4)
    row="| $a | $f"; best=100
    for m in minmax percentile entropy mse minmax-pt percentile-pt entropy-pt mse-pt; do
      opt="--method ${m%-pt}"; [ "$m" != "${m%-pt}" ] && opt="$opt --per-tensor"
      t0=$(date +%s.%N)
      # shellcheck disable=SC2086
      "$T" quantize "$OUT/$a.tmf" --calib $D $opt -q -o "$OUT/$a-$m.tmf"
      t1=$(date +%s.%N)
      q=$("$T" eval "$OUT/$a-$m.tmf" --data $D --format csv --no-per-class -q | csvrow | cut -d, -f4)
      row="$row | $q"
      best=$(min "$(sub "$f" "$q")" "$best")
      [ "$m" = minmax ] && qs=$(sub "$t1" "$t0")
    done
    say "$row | $best | $qs |"
  done
  ;;
prune)
  say ""; say "## Pruning: top-1 vs global sparsity (test split), one-shot and with 1 epoch of masked fine-tuning (defaults: Adam 1e-3, cosine)"; say ""
  say "| model | sparsity | one-shot top-1 | fine-tuned top-1 | drop after fine-tuning | file bytes | ratio |"
  say "|---|---:|---:|---:|---:|---:|---:|"
  for a in lenet300 lenet5; do
    for sp in 0.5 0.7 0.8 0.9 0.92 0.95; do
      one=$("$T" prune "$OUT/$a.tmf" --sparsity $sp --global --data $D --format csv -q -o "$OUT/$a-p$sp.tmf" | awk -F, '$1=="pruned"{print $6}')
      out=$("$T" prune "$OUT/$a.tmf" --sparsity $sp --global --epochs 1 --data $D --format csv -q -o "$OUT/$a-pft$sp.tmf")
      ft=$(echo "$out" | awk -F, '$1=="pruned"{print $6}'); drop=$(echo "$out" | awk -F, '$1=="pruned"{print $7}')
      by=$(echo "$out" | awk -F, '$1=="pruned"{print $4}'); ra=$(echo "$out" | awk -F, '$1=="pruned"{print $5}')
      say "| $a | $sp | $one | $ft | $drop | $by | ${ra}x |"
    done
  done
  t0=$(date +%s.%N)
  "$T" sensitivity "$OUT/lenet5.tmf" --data $D --plot "$OUT/sensitivity-lenet5.png" --json "$OUT/sens-lenet5.json" -q >"$OUT/sens-lenet5.txt"
  t1=$(date +%s.%N)
  say ""; say "Full sensitivity scan of lenet5 (4 layers x 20 sparsities, 10,000 test samples each): $(sub "$t1" "$t0") s wall."
  ;;
cluster)
  say ""; say "## Clustering: init methods on lenet5 (5 bits, per layer, no fine-tuning; top-1 on the test split)"; say ""
  say "| init | top-1 | k-means seconds (all layers) |"
  say "|---|---:|---:|"
  for i in linear density random kmeans++; do
    out=$("$T" cluster "$OUT/lenet5.tmf" --bits 5 --init $i --data $D --format csv -q -o "$OUT/lenet5-c5-$i.tmf")
    acc=$(echo "$out" | awk -F, '$1=="clustered"{print $4}')
    secs=$(echo "$out" | sed -n 's/.*k-means took \([0-9.]*\)s.*/\1/p')
    say "| $i | $acc | $secs |"
  done
  ;;
deep)
  say ""; say "## Deep Compression pipeline (top-1 on the 10,000-image test split; sizes are .tmf file bytes)"; say ""
  say "Recipe: global magnitude pruning to 92% with AGP (100 steps) over 12 epochs of masked fine-tuning"
  say "(Adam 1e-3, cosine), k-means clustering (linear init) of fc1 to 3 bits and the other layers to 5 bits,"
  say "1 epoch of centroid fine-tuning (Adam 1e-4) distilled from the unpruned model (--teacher),"
  say "INT8 quantization (minmax, 512 calibration samples); entropy coding by the writer."
  say ""
  say "| model | stage | bytes | ratio vs float32 file | top-1 | drop |"
  say "|---|---|---:|---:|---:|---:|"
  for a in lenet300 lenet5; do
    "$T" prune "$OUT/$a.tmf" --sparsity 0.92 --global --prune-schedule agp --epochs 12 --data $D -q -o "$OUT/$a-deep-pruned.tmf" >/dev/null
    "$T" cluster "$OUT/$a-deep-pruned.tmf" --bits 3 --layer fc1 -q \
      | "$T" cluster --bits 5 --skip fc1 --epochs 1 --lr 1e-4 --teacher "$OUT/$a.tmf" --data $D -q -o "$OUT/$a-deep-clustered.tmf" >/dev/null
    "$T" quantize "$OUT/$a-deep-clustered.tmf" --calib $D -q -o "$OUT/$a-deep-int8.tmf" >/dev/null
    "$T" report "$OUT/$a.tmf" "$OUT/$a-deep-pruned.tmf" "$OUT/$a-deep-clustered.tmf" "$OUT/$a-deep-int8.tmf" --data $D --format csv -q \
      | awk -F, -v a=$a '!/^#/ && $1 != "model" {printf "| %s | %s | %s | %.1fx | %s | %s |\n", a, $1, $2, $5, $11, $12}' >>"$R"
    "$T" info "$OUT/$a-deep-int8.tmf" --stages --format md | sed -n '/Bytes after each/,$p' >>"$R"
  done
  ;;
lowbit)
  SEEDS="1 2 3"
  say ""; say "## Below 8 bits (top-1 on the 10,000-image test split; mean (min-max) over seeds $SEEDS)"; say ""
  say "PTQ: the seed picks the 512 calibration samples. W = weight bits, activations int8, weights per channel."
  say ""
  say "| model | float | W8 | W4 nearest | W4 adaptive | W3 nearest | W3 adaptive | W2 nearest | W2 adaptive |"
  say "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for a in lenet300 lenet5 dscnn mobilenet-tiny resnet8; do
    [ -f "$OUT/$a.tmf" ] || continue
    row="| $a | $(top1 "$OUT/$a.tmf")"
    for cfg in 8:nearest 4:nearest 4:adaptive 3:nearest 3:adaptive 2:nearest 2:adaptive; do
      accs=""
      for sd in $SEEDS; do
        "$T" quantize "$OUT/$a.tmf" --calib $D --weight-bits "${cfg%%:*}" --weight-rounding "${cfg##*:}" --seed "$sd" -q -o "$OUT/lb.tmf"
        accs="$accs $(top1 "$OUT/lb.tmf")"
      done
      # shellcheck disable=SC2086
      row="$row | $(stats $accs)"
    done
    say "$row |"
  done
  say ""; say "QAT (tinyml qat, W4A8, defaults: 2 epochs, Adam 1e-4, from the adaptive-rounding weights, EMA ranges frozen at"
  say "half; the seed picks calibration samples, shuffling and the validation split), with PTQ for reference:"; say ""
  say "| model | float | PTQ W4 nearest | PTQ W4 adaptive | QAT W4 | QAT seconds |"
  say "|---|---:|---:|---:|---:|---:|"
  for a in lenet5 resnet8; do
    [ -f "$OUT/$a.tmf" ] || continue
    n=""; ad=""; q=""; secs=""
    for sd in $SEEDS; do
      t0=$(date +%s.%N)
      "$T" qat "$OUT/$a.tmf" --data $D --weight-bits 4 --seed "$sd" --format csv -q -o "$OUT/lb-qat.tmf" >"$OUT/lb-qat.csv"
      secs="$secs $(sub "$(date +%s.%N)" "$t0")"
      f=$(awk -F, '$1=="float"{print $4}' "$OUT/lb-qat.csv")
      n="$n $(awk -F, '$1=="PTQ nearest"{print $4}' "$OUT/lb-qat.csv")"
      ad="$ad $(awk -F, '$1=="PTQ adaptive"{print $4}' "$OUT/lb-qat.csv")"
      q="$q $(awk -F, '$1=="QAT"{print $4}' "$OUT/lb-qat.csv")"
    done
    # shellcheck disable=SC2086
    say "| $a | $f | $(stats $n) | $(stats $ad) | $(stats $q) | $(stats $secs) |"
  done
  say ""; say "Mixed precision (--weight-bits auto, knapsack) at the weight bytes of uniform 4 and 3 bits vs uniform:"; say ""
  say "| model | rounding | budget | uniform | mixed | mixed weight bytes |"
  say "|---|---|---|---:|---:|---:|"
  for a in lenet5 resnet8; do
    [ -f "$OUT/$a.tmf" ] || continue
    for r in nearest adaptive; do
      for b in 4 3; do
        u=""; mx=""; wb=""
        for sd in $SEEDS; do
          "$T" quantize "$OUT/$a.tmf" --calib $D --weight-bits "$b" --weight-rounding $r --seed "$sd" -q -o "$OUT/lb.tmf"
          u="$u $(top1 "$OUT/lb.tmf")"
          "$T" quantize "$OUT/$a.tmf" --calib $D --weight-bits auto --target-size "${b}bit" --weight-rounding $r --seed "$sd" -q -o "$OUT/lb.tmf"
          mx="$mx $(top1 "$OUT/lb.tmf")"
          wb=$("$T" info "$OUT/lb.tmf" --history | tr ',' '\n' | sed -n 's/.*"weight_bytes":\([0-9]*\).*/\1/p' | tail -1)
        done
        # shellcheck disable=SC2086
        say "| $a | $r | ${b}bit | $(stats $u) | $(stats $mx) | $wb |"
      done
    done
  done
  say ""; say "Deep Compression with QAT instead of PTQ (the deep section's clustered models; 2 epochs distilled from the"
  say "unpruned model, lr 1e-4; sizes are .tmf file bytes against the float32 file):"; say ""
  say "| model | int8 | bytes | ratio | top-1 | drop |"
  say "|---|---|---:|---:|---:|---:|"
  for a in lenet300 lenet5; do
    [ -f "$OUT/$a-deep-clustered.tmf" ] || continue
    f=$(top1 "$OUT/$a.tmf"); fb=$(wc -c <"$OUT/$a.tmf")
    for mode in ptq qat; do
      if [ $mode = ptq ]; then
        "$T" quantize "$OUT/$a-deep-clustered.tmf" --calib $D -q -o "$OUT/$a-deep-$mode.tmf"
      else
        "$T" qat "$OUT/$a-deep-clustered.tmf" --data $D --teacher "$OUT/$a.tmf" --eval none -q -o "$OUT/$a-deep-$mode.tmf"
      fi
      acc=$(top1 "$OUT/$a-deep-$mode.tmf"); by=$(wc -c <"$OUT/$a-deep-$mode.tmf")
      say "| $a | $mode | $by | $(awk -v a="$fb" -v b="$by" 'BEGIN{printf "%.1fx", a / b}') | $acc | $(sub "$f" "$acc") |"
    done
  done
  ;;
torch)
  if ! $PY -c "import torch" 2>/dev/null; then say ""; say "PyTorch comparisons skipped: no python3-torch."; continue; fi
  say ""; say "## Training speed vs PyTorch (1 epoch of 55,000 samples, batch 64, 2 threads)"; say ""
  $PY "$ROOT/scripts/bench-torch-train.py" --tinyml "$T" >>"$R"
  say ""; say "## Pruning vs PyTorch global L1 (same trained weights)"; say ""
  $PY "$ROOT/scripts/bench-torch-prune.py" "$OUT/lenet300.tmf" "$OUT/lenet5.tmf" --tinyml "$T" >>"$R"
  say ""; say "## Post-training quantization vs PyTorch static PTQ (same trained weights)"; say ""
  $PY "$ROOT/scripts/bench-torch-ptq.py" "$OUT/lenet300.tmf" "$OUT/lenet5.tmf" "$OUT/dscnn.tmf" "$OUT/mobilenet-tiny.tmf" \
    --tinyml "$T" >>"$R"
  ;;
device)
  if ! command -v qemu-system-arm >/dev/null || ! command -v arm-none-eabi-gcc >/dev/null; then
    say ""; say "Cortex-M section skipped: no arm-none-eabi-gcc / qemu-system-arm (scripts/install-deps.sh --mcu)."; continue
  fi
  # one profile: MODEL OPTS... -> "instructions code const arena stack"
  prof() {
    "$T" profile "$@" --limit 20 --format csv -q | awk -F, '
      $1 == "instructions" {i = $2} $1 == "RAM: arena" {a = $2 + 0} $1 == "RAM: stack" {st = $2 + 0}
      $1 == "bit-exact" && $2 != "yes" {bad = 1}
      $1 == "flash" {split($3, f, " "); c = f[2]; k = f[6]}
      END {if (bad) {print "MISMATCH"; exit 1} print i, c, k, a, st}'
  }
  cc=$(arm-none-eabi-gcc -dumpfullversion); qv=$(qemu-system-arm --version | head -1 | awk '{print $4}')
  say ""; say "## Cortex-M4: the exported C on QEMU mps2-an386 ($(date -u +%Y-%m-%d), arm-none-eabi-gcc $cc, QEMU $qv)"; say ""
  say "Instructions of one inference (model_run), exact counts of \`tinyml profile\` over 20 test images, every"
  say "output byte equal to the int8 engine's; code and const data from arm-none-eabi-size of model.o (-Os);"
  say "latency at 80 MHz assumes one instruction per cycle."
  say ""
  say "| model | weights | -O2 | -Os | -O2 portable | code B (-Os) | const B | arena B | stack B | ms at 80 MHz |"
  say "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for a in lenet300 lenet5 dscnn mobilenet-tiny resnet8 lenet5-deep; do
    m=$OUT/$a-int8.tmf; w="dense"
    [ "$a" = lenet5-deep ] && { m=$OUT/lenet5-deep-int8.tmf; w="balanced"; }
    [ -f "$m" ] || continue
    set -- $(prof "$m"); i2=$1
    set -- $(prof "$m" --opt Os); is=$1; code=$2; konst=$3; arena=$4; stack=$5
    set -- $(prof "$m" --portable); ip=$1
    say "| $a | $w | $i2 | $is | $ip | $code | $konst | $arena | $stack | $(awk -v i="$i2" 'BEGIN{printf "%.2f", i / 80000}') |"
  done
  for a in lenet5 lenet5-deep; do
    m=$OUT/$a-int8.tmf; [ "$a" = lenet5-deep ] && m=$OUT/lenet5-deep-int8.tmf
    [ -f "$m" ] || continue
    say ""; say "Per layer, $a (-O2):"; say ""
    "$T" profile "$m" --limit 20 --format md -q | sed -n '/Per layer/,$p' | tail -n +3 >>"$R"
  done
  ;;
memory)
  say ""; say "## Memory schedules ($(date -u +%Y-%m-%d); docs/memory.md)"; say ""
  say "Default schedule (least RAM within 5% extra MACs); arenas of the exported C (DSP kernels' scratch included);"
  say "Cortex-M4 instructions of one model_run on QEMU mps2-an386 (-O2, mean of 20 test images; emulator counts, not cycles);"
  say "bit-exact: every output value of the scheduled engine run against the layer-by-layer run on the whole test split."
  say ""
  say "| model | tensor-by-tensor bound | layer-by-layer arena | scheduled arena | below the bound | extra MACs | M4 instructions layer by layer | M4 instructions scheduled | flash layer by layer | flash scheduled | outputs compared (test split) | differ | eval samples/s layer by layer | eval samples/s scheduled |"
  say "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for a in lenet5 dscnn mobilenet-tiny resnet8; do
    [ -f "$OUT/$a.tmf" ] || continue
    [ -f "$OUT/$a-int8.tmf" ] || "$T" quantize "$OUT/$a.tmf" --calib $D -q -o "$OUT/$a-int8.tmf"
    row=$("$T" schedule "$OUT/$a-int8.tmf" -o /dev/null --format csv -q | awk -F, '/^model \(arena\),/')
    arena=$(echo "$row" | cut -d, -f5); bound=$(echo "$row" | cut -d, -f6); extra=$(echo "$row" | cut -d, -f9)
    ratio=$(awk -v a="$arena" -v b="$bound" 'BEGIN{printf "%.2fx", b / a}')
    ev=$("$T" eval "$OUT/$a-int8.tmf" --data $D --no-per-class --check-schedule -q)
    cmp=$(echo "$ev" | sed -n 's/.*schedule check: \([0-9]*\) output values compared with the layer-by-layer run, \([0-9]*\) differ.*/\1 \2/p')
    sps=$("$T" eval "$OUT/$a-int8.tmf" --data $D --format csv --no-per-class -q | csvrow | cut -d, -f7 | awk '{printf "%.0f", $1}')
    sps0=$("$T" eval "$OUT/$a-int8.tmf" --data $D --format csv --no-per-class -q --no-schedule | csvrow | cut -d, -f7 |
      awk '{printf "%.0f", $1}')
    i0=-; i1=-; f0=-; f1=-; a0=-
    if "$T" profile "$OUT/$a-int8.tmf" --limit 20 -q --format csv --no-schedule >"$OUT/$a.prof0.csv" 2>/dev/null; then
      "$T" profile "$OUT/$a-int8.tmf" --limit 20 -q --format csv >"$OUT/$a.prof1.csv"
      i0=$(awk -F, '$1=="instructions"{print $2}' "$OUT/$a.prof0.csv"); i1=$(awk -F, '$1=="instructions"{print $2}' "$OUT/$a.prof1.csv")
      f0=$(awk -F, '$1=="flash"{print $2+0}' "$OUT/$a.prof0.csv"); f1=$(awk -F, '$1=="flash"{print $2+0}' "$OUT/$a.prof1.csv")
      a0=$(awk -F, '$1=="RAM: arena"{print $2+0}' "$OUT/$a.prof0.csv")
    fi
    say "| $a | $bound | $a0 | $arena | $ratio | $extra | $i0 | $i1 | $f0 | $f1 | ${cmp% *} | ${cmp#* } | $sps0 | $sps |"
  done
  ;;
*) echo "bench.sh: unknown section '$s'" >&2; exit 2 ;;
esac
done
echo "results in $R"
