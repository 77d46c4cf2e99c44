#!/usr/bin/env python3
"""Export small PyTorch models to ONNX as test fixtures for `tinyml import`.

Writes into tests/fixtures/onnx/ (or the directory given as the only argument):

  NAME.onnx         the exported model (opset 13)
  NAME.input.bin    float32 little-endian inputs, ONNX order (B, C, H, W) or (B, F)
  NAME.output.bin   float32 little-endian outputs torch computed for them, (B, K)
  MANIFEST          one line per model: NAME BATCH IN_DIMS OUT_DIM DESCRIPTION
                    (IN_DIMS comma-separated, per sample, ONNX order)

Models (each exported with a dynamic batch, *_dyn, and with the fixed batch of 1
that torch.onnx.export writes by default, *_b1; the b1 expected outputs are
computed one sample at a time, so tinyml running them in one batch of B checks
batched evaluation of a fixed-batch model):

  lenet5   LeNet-5 (1x28x28): conv-relu-maxpool x2, x.view(x.size(0), -1)
           (a Shape/Gather/Unsqueeze/Concat/Reshape chain when the batch is
           dynamic, a constant Reshape when fixed), 3 linear layers (Gemm).
           The flatten of an NCHW 16x5x5 tensor exercises the CHW->HWC
           permutation of the first dense layer's weights.
  mlp      20 -> MatMul + Add (x @ W + b) -> ReLU -> Linear -> Softmax
  dsnet    3x16x16 depthwise-separable net: conv 3x3/2 + BatchNorm + ReLU6
           (Clip), depthwise 3x3 + BatchNorm + ReLU6 with a residual Add,
           pointwise 1x1 + BatchNorm + ReLU6, AvgPool 3x3/2 pad 1
           (count_include_pad=False), GlobalAveragePool, Flatten, Linear.
           Exported with training=PRESERVE so BatchNormalization nodes stay.

Requires torch (Debian: python3-torch); without it the script says so and
exits 0. Run: /usr/bin/python3 scripts/make-onnx-fixtures.py
"""
import os
import sys

try:
    import torch
    import torch.nn as nn
except ImportError:
    print("torch not available: skipping the ONNX fixtures")
    sys.exit(0)

import struct

OPSET = 13
BATCH = 4


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(20, 32) * 0.3)
        self.b = nn.Parameter(torch.randn(32) * 0.1)
        self.fc = nn.Linear(32, 5)

    def forward(self, x):
        x = torch.relu(x @ self.w + self.b)
        return torch.softmax(self.fc(x), dim=1)


class DSNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 16, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)
        self.act = nn.ReLU6()

    def forward(self, x):
        x = self.act(self.bn1(self.conv(x)))
        x = self.act(self.bn2(self.dw(x))) + x
        x = self.act(self.bn3(self.pw(x)))
        x = self.gap(self.pool(x))
        return self.fc(torch.flatten(x, 1))


def randomize_bn(m, g):
    # non-trivial running statistics so the batch norms matter
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def write_f32(path, t):
    flat = t.detach().contiguous().view(-1).tolist()
    with open(path, "wb") as f:
        f.write(struct.pack("<%df" % len(flat), *flat))


def export(model, name, sample_shape, dynamic, outdir, manifest, desc, preserve=False):
    g = torch.Generator().manual_seed(1234)
    x = torch.rand((BATCH,) + sample_shape, generator=g)
    if len(sample_shape) == 1:
        x = x * 4 - 2
    with torch.no_grad():
        if dynamic:
            y = model(x)
        else:  # the exported graph is for one sample: compute references one at a time
            y = torch.cat([model(x[i:i + 1]) for i in range(BATCH)])
    kw = {}
    if dynamic:
        kw["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    if preserve:
        kw["training"] = torch.onnx.TrainingMode.PRESERVE
    path = os.path.join(outdir, name + ".onnx")
    torch.onnx.export(model, x[:1] if not dynamic else x, path, input_names=["input"], output_names=["output"],
                      opset_version=OPSET, do_constant_folding=True, **kw)
    write_f32(os.path.join(outdir, name + ".input.bin"), x)
    write_f32(os.path.join(outdir, name + ".output.bin"), y)
    manifest.append("%s %d %s %d %s" % (name, BATCH, ",".join(str(d) for d in sample_shape), y.shape[1], desc))
    try:
        import onnx
        onnx.checker.check_model(onnx.load(path))
        ops = [n.op_type for n in onnx.load(path).graph.node]
        print("%-12s %6d bytes  %s" % (name, os.path.getsize(path), " ".join(ops)))
    except ImportError:
        print("%-12s %6d bytes" % (name, os.path.getsize(path)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures", "onnx")
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(99)
    lenet = LeNet5().eval()
    mlp = MLP().eval()
    dsnet = DSNet()
    randomize_bn(dsnet, g)
    dsnet.eval()
    manifest = []
    for dyn in (True, False):
        sfx = "_dyn" if dyn else "_b1"
        export(lenet, "lenet5" + sfx, (1, 28, 28), dyn, outdir, manifest, "LeNet-5")
        export(mlp, "mlp" + sfx, (20,), dyn, outdir, manifest, "MLP_MatMul+Add_Softmax")
        export(dsnet, "dsnet" + sfx, (3, 16, 16), dyn, outdir, manifest, "depthwise-separable_BN_ReLU6", preserve=True)
    with open(os.path.join(outdir, "MANIFEST"), "w") as f:
        f.write("# name batch input-dims(per sample, ONNX order) outputs description\n")
        f.write("\n".join(manifest) + "\n")
    total = sum(os.path.getsize(os.path.join(outdir, f)) for f in os.listdir(outdir))
    print("wrote %d models to %s (%d bytes in total)" % (len(manifest), outdir, total))


if __name__ == "__main__":
    main()
