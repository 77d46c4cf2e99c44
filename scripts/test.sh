#!/bin/sh
# The test command: installs what is missing, builds, runs the whole suite.
#   scripts/test.sh           release build in build/
#   scripts/test.sh --asan    AddressSanitizer + UBSan build in build-asan/
# The Cortex-M toolchain and QEMU are installed too (--mcu), so the emulator
# tests (tests/test_device.c) run rather than skip, and ONNX Runtime from npm
# (scripts/install-ort.sh, into out/ort; never fatal: without a network the
# ONNX Runtime test skips), so tests/cli/test_onnx_qdq.sh runs.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh" --mcu
"$ROOT/scripts/install-ort.sh"
"$ROOT/scripts/build.sh" "$@"
case " $* " in
  *" --asan "*) BUILD_DIR=${BUILD_DIR:-$ROOT/build-asan} ;;
  *) BUILD_DIR=${BUILD_DIR:-$ROOT/build} ;;
esac
cd "$BUILD_DIR"
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)"
