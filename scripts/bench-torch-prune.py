#!/usr/bin/python3
"""tinyml global magnitude pruning vs PyTorch's torch.nn.utils.prune global L1,
on the same trained weights, side by side in one run.

    scripts/bench-torch-prune.py MODEL.tmf [MODEL.tmf ...] [--tinyml build/tinyml]
                                 [--sparsity 0.5,0.8,0.9] [--threads 2]

For each model (a float tinyml model, read with scripts/tmf.py and rebuilt in
PyTorch with scripts/torch_tmf.py) and each sparsity: prune every conv / dense
weight globally by magnitude, evaluate top-1 on the 10,000-image Fashion-MNIST
test split, then fine-tune one epoch with tinyml's default fine-tuning recipe on both
sides (Adam lr 1e-3 decayed per step by a cosine to 0, batch 64, label
smoothing 0.1, the 55,000 training images tinyml trains on) and evaluate again
— in PyTorch and with `tinyml prune --global [--finetune-epochs 1]`. Prints a
Markdown table. Skips cleanly without torch.
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.utils.prune as tprune
    import tmf
    import torch_tmf
except ImportError as e:  # pragma: no cover
    print(f"bench-torch-prune: skipped: PyTorch/numpy not available ({e})")
    sys.exit(0)

DATA = os.environ.get("TML_DATA_DIR", "/usr/share/datasets") + "/fashion-mnist"


def idx(path, offset):
    return np.frombuffer(gzip.open(path).read(), np.uint8, offset=offset)


def load_split(split):
    pre = "train" if split == "train" else "t10k"
    x = idx(f"{DATA}/{pre}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y = idx(f"{DATA}/{pre}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return x, y


def top1(net, x, y):
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return (pred.numpy() == y).mean() * 100


def prunable(net):
    return [(m, "weight") for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def torch_prune(model, s, x_te, y_te, x_tr, y_tr, finetune):
    torch.manual_seed(1)
    net = torch_tmf.build(model)
    tprune.global_unstructured(prunable(net), pruning_method=tprune.L1Unstructured, amount=s)
    before = top1(net, x_te, y_te)
    if not finetune:
        return before, None
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = (len(x_tr) + 63) // 64
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    net.train()
    perm = torch.randperm(len(x_tr))
    for i in range(0, len(x_tr), 64):
        b = perm[i:i + 64]
        opt.zero_grad(set_to_none=True)
        crit(net(x_tr[b]), y_tr[b]).backward()
        opt.step()
        sched.step()
    return before, top1(net, x_te, y_te)


def tinyml_prune(tinyml, path, s, finetune):
    with tempfile.TemporaryDirectory() as d:
        cmd = [tinyml, "prune", path, "--sparsity", str(s), "--global", "--data", "fashion-mnist", "-o", f"{d}/p.tmf",
               "--format", "csv", "-q"]
        if finetune:
            cmd += ["--finetune-epochs", "1"]  # tinyml's defaults: Adam 1e-3, cosine
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows = {r.split(",")[0]: r.split(",") for r in out.splitlines() if r.startswith(("original,", "pruned,"))}
        return float(rows["original"][5]), float(rows["pruned"][5]), int(rows["original"][3]), int(rows["pruned"][3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--tinyml", default=os.path.join(os.path.dirname(__file__), "..", "build", "tinyml"))
    ap.add_argument("--sparsity", default="0.5,0.8,0.9")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    xr, yr = load_split("train")
    xe, ye = load_split("test")
    print("| model | sparsity | fine-tune | top-1 before | tinyml top-1 | PyTorch top-1 | tinyml drop | PyTorch drop "
          "| tinyml file bytes (dense → pruned) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for path in a.models:
        m = tmf.load(path)
        x_te = torch_tmf.preprocess(xe, m.meta)
        y_te = ye
        x_tr = torch_tmf.preprocess(xr[:55000], m.meta)
        y_tr = torch.from_numpy(yr[:55000])
        base = top1(torch_tmf.build(m), x_te, y_te)
        for s in (float(v) for v in a.sparsity.split(",")):
            pt0, pt1 = torch_prune(m, s, x_te, y_te, x_tr, y_tr, True)
            for ft, pt in ((False, pt0), (True, pt1)):
                t_base, t_acc, b0, b1 = tinyml_prune(a.tinyml, path, s, ft)
                print(f"| {m.meta.get('name', path)} | {s:.2f} | {'1 epoch' if ft else 'none'} | {base:.2f} | "
                      f"{t_acc:.2f} | {pt:.2f} | {t_base - t_acc:.2f} | {base - pt:.2f} | {b0} → {b1} "
                      f"({b0 / b1:.1f}x) |", flush=True)


if __name__ == "__main__":
    main()
