#!/bin/sh
# Configures and builds tinyml.
#   scripts/build.sh [--asan] [extra cmake -D options...]
# Build directory: $BUILD_DIR, default build/ (build-asan/ with --asan).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TYPE=Release
EXTRA=""
ASAN=0
for arg in "$@"; do
  case "$arg" in
    --asan) ASAN=1; EXTRA="$EXTRA -DTML_SANITIZE=ON"; TYPE=Debug ;;
    *) EXTRA="$EXTRA $arg" ;;
  esac
done
if [ $ASAN -eq 1 ]; then DEFAULT_DIR=$ROOT/build-asan; else DEFAULT_DIR=$ROOT/build; fi
BUILD_DIR=${BUILD_DIR:-$DEFAULT_DIR}
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=$TYPE $EXTRA >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc 2>/dev/null || echo 2)"
