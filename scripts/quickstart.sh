#!/bin/sh
# The main job end to end on a fresh Debian machine: installs what is missing,
# builds, trains LeNet-5 on Fashion-MNIST, compresses it (prune -> cluster ->
# quantize, with fine-tuning: the Deep Compression recipe of docs/benchmarks.md),
# exports C for a microcontroller, and prints the size / accuracy table.
# About 5 minutes on 2 cores.
#
#   scripts/quickstart.sh            # work files in out/quickstart (override with OUT=...)
#   EPOCHS=4 PRUNE_EPOCHS=3 scripts/quickstart.sh   # quicker, less accurate
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" >/dev/null
T="${BUILD_DIR:-$ROOT/build}/tinyml"
OUT=${OUT:-$ROOT/out/quickstart}
EPOCHS=${EPOCHS:-12}
PRUNE_EPOCHS=${PRUNE_EPOCHS:-12}
D=fashion-mnist
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1/6 create LeNet-5 and train it on the Fashion-MNIST training split ($EPOCHS epochs, defaults)"
"$T" create lenet5 --seed 1 -q -o "$OUT/lenet5-init.tmf"
"$T" train "$OUT/lenet5-init.tmf" --data $D --epochs "$EPOCHS" -o "$OUT/base.tmf"

step "2/6 prune 92% of the weights (global magnitude, gradual AGP schedule, $PRUNE_EPOCHS epochs of masked fine-tuning)"
"$T" prune "$OUT/base.tmf" --sparsity 0.92 --global --prune-schedule agp --epochs "$PRUNE_EPOCHS" --data $D -o "$OUT/pruned.tmf"

step "3/6 cluster: fc1 to 8 shared values (3-bit indices), the other layers to 32 (5-bit); fine-tune the centroids, distilled from the base model"
"$T" cluster "$OUT/pruned.tmf" --bits 3 --layer fc1 -q \
  | "$T" cluster --bits 5 --skip fc1 --epochs 1 --lr 1e-4 --teacher "$OUT/base.tmf" --data $D -o "$OUT/clustered.tmf"

step "4/6 quantize to integer-only INT8 (512 calibration images)"
"$T" quantize "$OUT/clustered.tmf" --calib $D -o "$OUT/small.tmf"

step "5/6 export C for a microcontroller"
"$T" export "$OUT/small.tmf" --c -o "$OUT/c" --format md

step "6/6 what the compression cost: size and accuracy on the 10,000-image test split"
"$T" report "$OUT/base.tmf" "$OUT/pruned.tmf" "$OUT/clustered.tmf" "$OUT/small.tmf" --data $D \
  --plot "$OUT/report.png"
echo
echo "Models, the C sources and report.png are in $OUT."
