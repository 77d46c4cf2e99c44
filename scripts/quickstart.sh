#!/bin/sh
# The main job end to end on a fresh Debian machine: installs what is missing,
# builds, then runs tinyml on Fashion-MNIST and prints the tables.
# Work files go to $OUT (default: out/quickstart).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" >/dev/null
T="${BUILD_DIR:-$ROOT/build}/tinyml"
OUT=${OUT:-$ROOT/out/quickstart}
mkdir -p "$OUT"

echo "== create lenet5 (untrained) and evaluate it on the Fashion-MNIST test split"
"$T" create lenet5 --seed 1 -o "$OUT/lenet5-init.tmf"
"$T" eval "$OUT/lenet5-init.tmf" --data fashion-mnist:test --no-per-class
echo
echo "== what is in the model"
"$T" info "$OUT/lenet5-init.tmf"
