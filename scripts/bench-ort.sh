#!/bin/sh
# bench-ort.sh - tinyml's engine against ONNX Runtime on the zoo models, one
# thread each, in interleaved runs (tests/bench/bench_ort.c: rounds of R
# tinyml runs then R ONNX Runtime runs on the same input, every run timed;
# min and median over all runs of each engine, ratio = tinyml / ORT time).
# Writes the dated table to out/bench/ort.md and into docs/benchmarks.md
# (the section between the bench-ort markers on a CPU with AVX-512 VNNI, the
# bench-ort-avx2 markers on one without). Not part of CI.
#
#   scripts/bench-ort.sh [--no-docs] [models...]   (default: the five zoo models)
#
# ONNX Runtime comes from npm: onnxruntime-node ships libonnxruntime.so, which
# bench_ort loads with dlopen and drives through its C API (no binding).
# ONNXRUNTIME_NODE_INSTALL=skip avoids the package's GPU download. Without
# node / npm the script says so and exits 0.
#
# Models: out/bench/<arch>.tmf (trained by `scripts/bench.sh train`) when
# present, else fresh ones (`tinyml create <arch> --seed 1`: the time does not
# depend on the weights' values; the zoo models are dense).
# Float: `tinyml export --onnx` of the same model. INT8: `tinyml quantize`
# (512 Fashion-MNIST calibration samples) against `tinyml export --onnx` of
# that int8 model (QDQ form, every layer fused into ONNX Runtime's integer
# kernels: docs/onnx.md). Skipped without the dataset.
#
# Environment: ORT_DIR (npm prefix, default out/ort), BUILD_DIR (default
# build), ROUNDS_B1 / RUNS_B1 (default 20 / 100), ROUNDS_B256 / RUNS_B256
# (default 25 / 4).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD_DIR:-$ROOT/build}
T=$B/tinyml
OUT=$ROOT/out/bench
ORT_DIR=${ORT_DIR:-$ROOT/out/ort}
DOCS=1
if [ "${1:-}" = "--no-docs" ]; then DOCS=0; shift; fi
MODELS=${*:-lenet300 lenet5 dscnn mobilenet-tiny resnet8}
R1=${ROUNDS_B1:-20}; N1=${RUNS_B1:-100}; R256=${ROUNDS_B256:-25}; N256=${RUNS_B256:-4}

ORT_DIR="$ORT_DIR" "$ROOT/scripts/install-ort.sh"
if ! command -v node >/dev/null 2>&1; then
  echo "bench-ort.sh: skipped: node and npm are needed for ONNX Runtime (npm's onnxruntime-node)"
  exit 0
fi
mkdir -p "$OUT/ort"
ARCH_DIR=$(uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')
LIB=$(find "$ORT_DIR/node_modules/onnxruntime-node/bin" -path "*/linux/$ARCH_DIR/libonnxruntime.so*" 2>/dev/null | head -1)
if [ -z "$LIB" ]; then
  echo "bench-ort.sh: skipped: no libonnxruntime.so for linux/$ARCH_DIR in $ORT_DIR"
  exit 0
fi
ORT_VERSION=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$ORT_DIR/node_modules/onnxruntime-node/package.json" | head -1)

"$ROOT/scripts/build.sh" >/dev/null

have_data=1
[ -d /usr/share/datasets/fashion-mnist ] || have_data=0

# bench_ort prints: batch,tinyml_min,tinyml_med,ort_min,ort_med,ratio_min,ratio_med,max_diff,version,cpu_ratio_med
run() { OMP_NUM_THREADS=1 "$B/tests/bench_ort" "$LIB" "$1" "$2" "$3" "$4" "$5" 2>/dev/null; }
field() { echo "$1" | cut -d, -f"$2"; }
sps() { awk -v b="$1" -v us="$2" 'BEGIN{printf "%.0f", b / us * 1e6}'; }

R=$OUT/ort.md
{
  echo "#### Run of $(date -u +%Y-%m-%d)"
  echo ""
  echo "ONNX Runtime $ORT_VERSION (npm onnxruntime-node, C API, all graph optimisations), one thread each"
  echo "(tinyml: OMP_NUM_THREADS=1; ORT: intra- and inter-op threads 1); $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}')" \
    "(family $(awk -F': ' '/cpu family/{print $2; exit}' /proc/cpuinfo) model $(awk -F': ' '/^model\t/{print $2; exit}' /proc/cpuinfo)), $(nproc) cores,"
  echo "$(gcc --version | head -1 | sed 's/ (.*)//'), load average at start $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Interleaved rounds in one process per row (batch 1: $R1 rounds x $N1 runs of each engine;"
  echo "batch 256: $R256 x $N256); min and median over all runs; ratio = tinyml time / ORT time"
  echo "(below 1: tinyml faster); in brackets the ratio of the median thread CPU times (preemption by other"
  echo "processes excluded: a batch-256 run is longer than a scheduler slice). \`scripts/bench-ort.sh\`."
  echo ""
  echo "| model | float b1 µs tinyml / ORT (min) | ratio min / med | float b256 samples/s tinyml / ORT (best) | ratio min / med | float max abs diff | int8 b1 µs tinyml / ORT QDQ (min) | ratio min / med |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
} >"$R"

for a in $MODELS; do
  f=$OUT/$a.tmf
  if [ ! -f "$f" ]; then
    f=$OUT/ort/$a.tmf
    "$T" create "$a" --seed 1 -q -o "$f"
  fi
  "$T" export "$f" --onnx -q -o "$OUT/ort/$a.onnx"
  l1=$(run "$f" "$OUT/ort/$a.onnx" 1 "$R1" "$N1")
  l2=$(run "$f" "$OUT/ort/$a.onnx" 256 "$R256" "$N256")
  q="n/a | n/a"
  if [ $have_data = 1 ]; then
    "$T" quantize "$f" --calib fashion-mnist -q -o "$OUT/ort/$a-int8.tmf"
    "$T" export "$OUT/ort/$a-int8.tmf" --onnx -q -o "$OUT/ort/$a-qdq.onnx"
    l3=$(run "$OUT/ort/$a-int8.tmf" "$OUT/ort/$a-qdq.onnx" 1 "$R1" "$N1")
    q="$(field "$l3" 2) / $(field "$l3" 4) | $(field "$l3" 6) / $(field "$l3" 7) ($(field "$l3" 10))"
  fi
  echo "| $a | $(field "$l1" 2) / $(field "$l1" 4) | $(field "$l1" 6) / $(field "$l1" 7) ($(field "$l1" 10)) | $(sps 256 "$(field "$l2" 2)") / $(sps 256 "$(field "$l2" 4)") | $(field "$l2" 6) / $(field "$l2" 7) ($(field "$l2" 10)) | $(field "$l1" 8) | $q |" >>"$R"
  echo "bench-ort.sh: $a done" >&2
done
cat "$R"

if [ $DOCS = 1 ]; then
  D=$ROOT/docs/benchmarks.md
  # one table per kind of CPU: AVX-512 VNNI (the engines' widest kernels)
  # between the bench-ort markers, AVX2-only CPUs between bench-ort-avx2
  MARK=bench-ort
  grep -q avx512_vnni /proc/cpuinfo 2>/dev/null || MARK=bench-ort-avx2
  if grep -q "<!-- $MARK:begin -->" "$D"; then
    awk -v f="$R" -v b="<!-- $MARK:begin -->" -v e="<!-- $MARK:end -->" \
      '$0 == b {print; while ((getline l < f) > 0) print l; skip=1; next}
       $0 == e {skip=0} !skip' "$D" >"$D.tmp" && mv "$D.tmp" "$D"
    echo "bench-ort.sh: table written into $D ($MARK)"
  else
    echo "bench-ort.sh: $D has no $MARK markers; table left in $R" >&2
  fi
fi
