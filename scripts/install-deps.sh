#!/bin/sh
# Installs the Debian packages tinyml needs, skipping those already present.
#
#   scripts/install-deps.sh            build + test + data (what CI and quickstart need)
#   scripts/install-deps.sh --bench    also PyTorch/ONNX/hyperfine for the comparison benchmarks
#   scripts/install-deps.sh --mcu      also the Cortex-M cross compiler, its C library and QEMU
#                                      (tinyml profile and the emulator tests)
#
# Needs root (or sudo) only when something is missing.
set -eu

PKGS="gcc make cmake pkg-config libpng-dev zlib1g-dev libcjson-dev libcmocka-dev \
dataset-fashion-mnist libonnx-testdata flatbuffers-compiler python3-onnx"
for arg in "$@"; do
  case "$arg" in
    --bench) PKGS="$PKGS python3 python3-torch python3-onnx python3-numpy hyperfine" ;;
    --mcu) PKGS="$PKGS gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm" ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "install-deps: missing packages:$missing; run as root to install them" >&2
  exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists once if an install fails because they are stale.
if ! $SUDO apt-get install -y -q --no-install-recommends $missing; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends $missing
fi
