#!/bin/sh
# int8 ONNX export (QDQ form) run by ONNX Runtime (npm onnxruntime-node, found
# through NODE_PATH, $TML_SOURCE_DIR/out/ort/node_modules where
# scripts/install-ort.sh puts it, or $TML_BUILD_DIR/node_modules) on 500 Fashion-MNIST test
# images against tinyml's int8 engine: LeNet-5 the same top-1 on every image
# (but for ties: top-2 within the allowed output difference) and every output
# within one quantization step; DS-CNN (9 layers, where ORT's integer kernels,
# which requantize with a float multiplier, drift from the fixed-point ones a
# step at a time) the same top-1 but for ties and outputs within 6 steps.
# Twice: the graph as written (graph optimisations off) on every CPU, and
# fused into ORT's integer kernels (its default) where the CPU has VNNI (x86
# without it: ORT's AVX2 kernels saturate, measured 30 / 64 steps off, so that
# comparison is printed and skipped). Skips cleanly without node or onnxruntime-node. (Debian's
# python3-onnx 1.12 has no reference evaluator, which came in ONNX 1.13.)
. "$(dirname "$0")/lib.sh"
JS=$(dirname "$0")/onnx_qdq.js
export NODE_PATH="${NODE_PATH:-}:${TML_SOURCE_DIR:-.}/out/ort/node_modules:${TML_BUILD_DIR:-.}/node_modules"
IMG=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
[ -f "$IMG" ] || IMG=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: needs node (scripts/install-ort.sh installs it with npm's onnxruntime-node)"
  finish
  exit 0
fi
if ! node -e "require('onnxruntime-node')" >/dev/null 2>&1; then
  echo "SKIP: npm's onnxruntime-node not found (NODE_PATH, out/ort/node_modules): run scripts/install-ort.sh (npm registry unreachable?)"
  finish
  exit 0
fi
if [ ! -f "$IMG" ]; then
  echo "SKIP: needs the Fashion-MNIST test images (Debian's dataset-fashion-mnist)"
  finish
  exit 0
fi
N=500
for spec in "lenet5 500 1" "dscnn 500 6"; do
  set -- $spec
  arch=$1 min_same=$2 max_steps=$3
  "$T" create $arch --seed 2 -o "$W/$arch.tmf" 2>/dev/null
  expect_exit 0 "train $arch briefly" -- "$T" train "$W/$arch.tmf" --data fashion-mnist --epochs 1 --limit 3000 -o "$W/$arch.tmf"
  expect_exit 0 "quantize $arch" -- "$T" quantize "$W/$arch.tmf" --calib fashion-mnist --calib-samples 128 -o "$W/$arch-q.tmf"
  expect_exit 0 "export $arch QDQ" -- "$T" export "$W/$arch-q.tmf" --onnx -o "$W/$arch-q.onnx"
  # the model's own preprocessing, as info prints it
  "$T" info "$W/$arch-q.tmf" >"$W/info.txt"
  sc=$(sed -n 's/.*x = raw \* \([0-9.e+-]*\).*/\1/p' "$W/info.txt" | head -1)
  mean=$(sed -n 's/.*mean \[\([0-9.e+-]*\)\].*/\1/p' "$W/info.txt" | head -1)
  sd=$(sed -n 's/.*std \[\([0-9.e+-]*\)\].*/\1/p' "$W/info.txt" | head -1)
  expect_exit 0 "prepare images" -- node "$JS" prep "$IMG" $N "$sc" "${mean:-0}" "${sd:-1}" "$W/x.f32"
  expect_exit 0 "tinyml int8 engine" -- "$T" run "$W/$arch-q.tmf" --float --in "$W/x.f32" --out "$W/y_tinyml.f32"
  # the graph as written (no fusion): every CPU
  expect_exit 0 "ONNX Runtime, graph as written" -- env TML_ORT_OPT=disabled node "$JS" ort "$W/$arch-q.onnx" "$W/x.f32" $N 28 28 1 "$W/y_ort0.f32"
  expect_exit 0 "$arch, graph as written: same top-1, within $max_steps step(s)" -- node "$JS" compare "$W/y_tinyml.f32" "$W/y_ort0.f32" $N 10 $min_same $max_steps
  cat "$W/out"
  # fused into ORT's integer kernels (its default): exact pairs of u8 x s8
  # products only with VNNI; AVX2's VPMADDUBSW saturates them at int16
  expect_exit 0 "ONNX Runtime, fused integer kernels" -- node "$JS" ort "$W/$arch-q.onnx" "$W/x.f32" $N 28 28 1 "$W/y_ort.f32"
  if [ "$(uname -m)" != x86_64 ] || grep -qw -e avx512_vnni -e avx_vnni /proc/cpuinfo 2>/dev/null; then
    expect_exit 0 "$arch, fused: same top-1, within $max_steps step(s)" -- node "$JS" compare "$W/y_tinyml.f32" "$W/y_ort.f32" $N 10 $min_same $max_steps
    cat "$W/out"
  else
    node "$JS" compare "$W/y_tinyml.f32" "$W/y_ort.f32" $N 10 $min_same $max_steps >"$W/out" 2>&1 || true
    echo "SKIP: $arch, fused: this x86 CPU has no VNNI, and ONNX Runtime's AVX2 u8s8 kernels saturate pairs of products at int16 (VPMADDUBSW), so its fused result is not the graph's: $(cat "$W/out")"
  fi
done
finish
