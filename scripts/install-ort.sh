#!/bin/sh
# Installs ONNX Runtime from npm (onnxruntime-node, which ships
# libonnxruntime.so) into ORT_DIR (default out/ort), for the test that runs
# tinyml's int8 ONNX export in ONNX Runtime (tests/cli/test_onnx_qdq.sh) and
# for scripts/bench-ort.sh. Installs Debian's nodejs and npm first when they
# are missing (apt-get; root or sudo).
#
#   scripts/install-ort.sh [--quiet]
#
# Never fails: without apt, npm or a network it says why and exits 0 (the
# test then skips with its own message). Idempotent: once the package loads,
# nothing is downloaded again. ONNXRUNTIME_NODE_INSTALL=skip stops the
# package's install script from fetching its GPU (CUDA) binaries.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORT_DIR=${ORT_DIR:-$ROOT/out/ort}
QUIET=0
[ "${1:-}" = "--quiet" ] && QUIET=1
say() { [ "$QUIET" -eq 1 ] || echo "install-ort: $*"; }

loads() {
  command -v node >/dev/null 2>&1 &&
    NODE_PATH="$ORT_DIR/node_modules" node -e "require('onnxruntime-node')" >/dev/null 2>&1
}

if loads; then
  say "onnxruntime-node present in $ORT_DIR"
  exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO=none; fi
  fi
  if [ "$SUDO" = none ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-ort: node/npm missing and cannot be installed here (needs apt-get as root); ONNX Runtime tests will skip"
    exit 0
  fi
  say "installing nodejs and npm (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -q --no-install-recommends nodejs npm >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null 2>&1
    if ! $SUDO apt-get install -y -q --no-install-recommends nodejs npm >/dev/null 2>&1; then
      echo "install-ort: apt-get could not install nodejs/npm; ONNX Runtime tests will skip"
      exit 0
    fi
  fi
fi

mkdir -p "$ORT_DIR" || exit 0
[ -f "$ORT_DIR/package.json" ] || echo '{"private": true}' >"$ORT_DIR/package.json"
say "installing onnxruntime-node into $ORT_DIR (npm)"
# timeout: an unreachable registry must not hold the test suite
TO=""
command -v timeout >/dev/null 2>&1 && TO="timeout 600"
if ! (cd "$ORT_DIR" && ONNXRUNTIME_NODE_INSTALL=skip $TO npm install --no-audit --no-fund --no-progress \
    --fetch-retries=1 onnxruntime-node >"$ORT_DIR/npm.log" 2>&1); then
  echo "install-ort: npm install onnxruntime-node failed (registry unreachable?), see $ORT_DIR/npm.log; ONNX Runtime tests will skip"
  exit 0
fi
if loads; then
  say "onnxruntime-node installed in $ORT_DIR"
else
  echo "install-ort: onnxruntime-node installed but does not load in node (see $ORT_DIR/npm.log); ONNX Runtime tests will skip"
fi
exit 0
