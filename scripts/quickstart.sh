#!/bin/sh
# The main job end to end on a fresh Debian machine: installs what is missing,
# builds, trains LeNet-5 on Fashion-MNIST, compresses it (prune -> cluster ->
# quantize, with fine-tuning distilled from the base model: the Deep Compression
# recipe of docs/benchmarks.md), both as post-training quantization (PTQ) and as
# quantization-aware training (QAT), exports the QAT model as C for a
# microcontroller, and prints the size / accuracy table (2026-12-05: 43.9x /
# 43.8x smaller than the float32 file for 0.21 / 0.25 points; a table with
# seeds 1-3 in docs/benchmarks.md). 7 min 44 s measured from a clean clone on 2
# nearly idle cores (load 1-2; 2026-12-06, dependencies installed); 25 minutes on
# 2 cores shared with other jobs.
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

step "1/7 create LeNet-5 and train it on the Fashion-MNIST training split ($EPOCHS epochs, defaults)"
"$T" create lenet5 --seed 1 -q -o "$OUT/lenet5-init.tmf"
"$T" train "$OUT/lenet5-init.tmf" --data $D --epochs "$EPOCHS" -o "$OUT/base.tmf"

step "2/7 prune to 92% of the weights, per layer (conv1 kept dense, conv2 75%, fc1 93.5%, fc2 85%; gradual AGP schedule, $PRUNE_EPOCHS epochs of masked fine-tuning distilled from the base model)"
"$T" prune "$OUT/base.tmf" --skip conv1 --layer conv2=0.75 --layer fc1=0.935 --layer fc2=0.85 --prune-schedule agp \
  --epochs "$PRUNE_EPOCHS" --teacher "$OUT/base.tmf" --data $D -o "$OUT/pruned.tmf"

step "3/7 cluster: fc1 to 8 shared values (3-bit indices), conv2 and fc2 to 32 (5-bit), conv1 left to int8; fine-tune the centroids, distilled from the base model"
"$T" cluster "$OUT/pruned.tmf" --bits 3 --layer fc1 -q \
  | "$T" cluster --bits 5 --skip fc1 --skip conv1 --epochs 1 --lr 1e-4 --teacher "$OUT/base.tmf" --data $D -o "$OUT/clustered.tmf"

step "4/7 post-training quantization (PTQ) to integer-only INT8 (512 calibration images)"
"$T" quantize "$OUT/clustered.tmf" --calib $D -o "$OUT/small-ptq.tmf"

step "5/7 or quantization-aware training (QAT, 2 epochs, distilled from the base model) to the same INT8 form"
"$T" qat "$OUT/clustered.tmf" --data $D --teacher "$OUT/base.tmf" -o "$OUT/small.tmf"

step "6/7 export the QAT model as C for a microcontroller"
"$T" export "$OUT/small.tmf" --c -o "$OUT/c" --format md

step "7/7 what the compression cost: size and accuracy on the 10,000-image test split (small-ptq: PTQ, small: QAT)"
"$T" report "$OUT/base.tmf" "$OUT/pruned.tmf" "$OUT/clustered.tmf" "$OUT/small-ptq.tmf" "$OUT/small.tmf" --data $D \
  --plot "$OUT/report.png"
echo
echo "Models, the C sources and report.png are in $OUT."
