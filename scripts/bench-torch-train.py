#!/usr/bin/python3
"""Epoch time of tinyml vs PyTorch on the same model, batch size, data and machine.

    scripts/bench-torch-train.py [--tinyml build/tinyml] [--models lenet5,lenet300]
                                 [--epochs 1] [--batch 64] [--threads 2]

Trains each model for --epochs epochs on Fashion-MNIST's training split (55,000
samples: the 5,000 tinyml holds out for validation are left out of both) with
Adam lr 1e-3, label smoothing 0.1, batch --batch, in PyTorch (Debian's
python3-torch, eager mode, float32, --threads threads) and in tinyml
(`tinyml train`, OMP_NUM_THREADS=--threads), and prints a Markdown table of
seconds per epoch, samples/s and the tinyml/PyTorch ratio. Exits 0 with a note
when torch is not installed. Needs only numpy besides torch: the IDX files are
read directly.
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"bench-torch-train: skipped: PyTorch/numpy not available ({e}); "
          "install Debian's python3-torch (scripts/install-deps.sh --bench)")
    sys.exit(0)

DATA = os.environ.get("TML_DATA_DIR", "/usr/share/datasets") + "/fashion-mnist"


def idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class LeNet5(nn.Module):
    """Caffe LeNet-5 as tinyml's zoo builds it: conv 20@5x5, pool, conv 50@5x5,
    pool, fc 500, fc 10, ReLU after convs and fc1."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class LeNet300(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def torch_epoch_seconds(name, x, y, epochs, batch, threads):
    torch.manual_seed(1)
    torch.set_num_threads(threads)
    model = {"lenet5": LeNet5, "lenet300": LeNet300}[name]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    xt = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    yt = torch.from_numpy(y.astype(np.int64))
    n = xt.shape[0]
    times = []
    for _ in range(epochs):
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            idx_ = perm[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss = crit(model(xt[idx_]), yt[idx_])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return min(times)


def tinyml_epoch_seconds(tinyml, name, epochs, batch, threads):
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        subprocess.run([tinyml, "create", name, "-q", "-o", f"{d}/init.tmf"], check=True, env=env)
        r = subprocess.run([tinyml, "train", f"{d}/init.tmf", "--data", "fashion-mnist", "--epochs", str(epochs),
                            "--batch", str(batch), "--no-checkpoint", "--format", "csv", "-o", f"{d}/out.tmf"],
                           check=True, env=env, capture_output=True, text=True)
        # per-epoch table rows: epoch,train loss,train acc%,val loss,val acc%,lr,seconds,samples/s
        secs = [float(row.split(",")[6]) for row in r.stdout.splitlines() if re.match(r"^\d+,", row)]
        return min(secs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tinyml", default=os.path.join(os.path.dirname(__file__), "..", "build", "tinyml"))
    ap.add_argument("--models", default="lenet5,lenet300")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    x = idx(f"{DATA}/train-images-idx3-ubyte.gz")
    y = idx(f"{DATA}/train-labels-idx1-ubyte.gz")
    x, y = x[:55000], y[:55000]  # tinyml trains on 55,000 (5,000 held out)
    print(f"| model | batch | threads | PyTorch {torch.__version__} s/epoch | tinyml s/epoch | "
          f"PyTorch samples/s | tinyml samples/s | tinyml / PyTorch time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in a.models.split(","):
        tt = torch_epoch_seconds(name, x, y, a.epochs, a.batch, a.threads)
        tm = tinyml_epoch_seconds(a.tinyml, name, a.epochs, a.batch, a.threads)
        print(f"| {name} | {a.batch} | {a.threads} | {tt:.2f} | {tm:.2f} | {55000 / tt:.0f} | {55000 / tm:.0f} | "
              f"{tm / tt:.2f} |", flush=True)


if __name__ == "__main__":
    main()
