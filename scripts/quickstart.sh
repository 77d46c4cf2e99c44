#!/bin/sh
# The main job end to end on a fresh Debian machine: installs what is missing,
# builds, trains LeNet-5 on Fashion-MNIST, compresses it (prune -> cluster ->
# quantize, with fine-tuning), exports C for a microcontroller, and prints the
# size / accuracy table. A few minutes on 2 cores.
#
#   scripts/quickstart.sh            # work files in out/quickstart (override with OUT=...)
#   EPOCHS=4 scripts/quickstart.sh   # a quicker, slightly less accurate base model
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" >/dev/null
T="${BUILD_DIR:-$ROOT/build}/tinyml"
OUT=${OUT:-$ROOT/out/quickstart}
EPOCHS=${EPOCHS:-12}
D=fashion-mnist
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1/6 create LeNet-5 and train it on the Fashion-MNIST training split ($EPOCHS epochs, defaults)"
"$T" create lenet5 --seed 1 -q -o "$OUT/lenet5-init.tmf"
"$T" train "$OUT/lenet5-init.tmf" --data $D --epochs "$EPOCHS" -o "$OUT/base.tmf"

step "2/6 prune 92% of the weights (global magnitude, gradual AGP schedule, 3 epochs of masked fine-tuning)"
"$T" prune "$OUT/base.tmf" --sparsity 0.92 --global --schedule agp --finetune-epochs 3 --data $D -o "$OUT/pruned.tmf"

step "3/6 cluster the remaining weights to 32 shared values per layer (5-bit indices), fine-tune the centroids"
"$T" cluster "$OUT/pruned.tmf" --bits 5 --finetune-epochs 1 --data $D -o "$OUT/clustered.tmf"

step "4/6 quantize to integer-only INT8 (512 calibration images)"
"$T" quantize "$OUT/clustered.tmf" --calib $D -o "$OUT/small.tmf"

step "5/6 export C for a microcontroller"
"$T" export "$OUT/small.tmf" --c -o "$OUT/c" --format md

step "6/6 what the compression cost: size and accuracy on the 10,000-image test split"
"$T" report "$OUT/base.tmf" "$OUT/pruned.tmf" "$OUT/clustered.tmf" "$OUT/small.tmf" --data $D \
  --plot "$OUT/report.png"
echo
echo "Models, the C sources and report.png are in $OUT."
