#!/usr/bin/python3
"""tinyml INT8 post-training quantization vs PyTorch's static PTQ, on the same
trained weights, side by side in one run.

    scripts/bench-torch-ptq.py MODEL.tmf [MODEL.tmf ...] [--tinyml build/tinyml]
                               [--calib-samples 512] [--threads 2] [--method minmax]

For each float tinyml model: rebuild it in PyTorch (scripts/torch_tmf.py),
quantize it with FX graph-mode post-training static quantization and the
backend's default qconfig (Debian's torch 1.13 ships no fbgemm: the x86 backend
here is 'onednn' — per-channel weight min/max, HistogramObserver activations,
the same defaults fbgemm uses apart from reduce_range), calibrated on the same
number of training images; quantize it with `tinyml quantize`; evaluate both on
the 10,000-image test split; and time batch-1 latency (median over 300 runs,
eager mode for PyTorch, the engine's median run time from tests/bench/bench_latency
for tinyml; data loading excluded for both)
and batch-256 throughput. Prints a Markdown table. Skips cleanly without torch.
"""
import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    import tmf
    import torch_tmf
except ImportError as e:  # pragma: no cover
    print(f"bench-torch-ptq: skipped: PyTorch/numpy not available ({e})")
    sys.exit(0)

DATA = os.environ.get("TML_DATA_DIR", "/usr/share/datasets") + "/fashion-mnist"


def idx(path, offset):
    return np.frombuffer(gzip.open(path).read(), np.uint8, offset=offset)


def top1(net, x, y):
    with torch.no_grad():
        pred = torch.cat([net(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return (pred.numpy() == y).mean() * 100


def latency_us(net, x1, runs=300):
    with torch.no_grad():
        for _ in range(20):
            net(x1)
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            net(x1)
            ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e6


def throughput(net, x):
    with torch.no_grad():
        net(x[:256])
        t0 = time.perf_counter()
        for i in range(0, 2560, 256):
            net(x[i:i + 256])
    return 2560 / (time.perf_counter() - t0)


def tinyml_eval(tinyml, path, batch, limit=None):
    cmd = [tinyml, "eval", path, "--data", "fashion-mnist", "--batch", str(batch), "--format", "csv", "--no-per-class", "-q"]
    if limit:
        cmd += ["--limit", str(limit)]
    row = [r for r in subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
           if not r.startswith("#")][1].split(",")
    return float(row[3]), float(row[6])  # top1 %, samples/s


def tinyml_latency_us(tinyml, path, threads):
    """median engine time of one batch-1 run (tests/bench/bench_latency, data loading excluded)"""
    bench = os.path.join(os.path.dirname(tinyml), "tests", "bench_latency")
    out = subprocess.run([bench, path, "1", "2000"], check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(threads))).stdout
    return float(out.split("median ")[1].split(" us")[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--tinyml", default=os.path.join(os.path.dirname(__file__), "..", "build", "tinyml"))
    ap.add_argument("--calib-samples", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--method", default="minmax")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    engine = "onednn" if "onednn" in torch.backends.quantized.supported_engines else "qnnpack"
    torch.backends.quantized.engine = engine
    xe = idx(f"{DATA}/t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    ye = idx(f"{DATA}/t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    xr = idx(f"{DATA}/train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    rng = np.random.default_rng(1)
    calib = xr[rng.choice(len(xr), a.calib_samples, replace=False)]
    print(f"| model | float top-1 | tinyml int8 ({a.method}) | PyTorch int8 ({engine}) | tinyml drop | PyTorch drop "
          "| tinyml int8 batch-1 µs | PyTorch int8 batch-1 µs | PyTorch float batch-1 µs | tinyml int8 / float samples/s "
          "| PyTorch int8 / float samples/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for path in a.models:
        m = tmf.load(path)
        x = torch_tmf.preprocess(xe, m.meta)
        net = torch_tmf.build(m)
        f_acc = top1(net, x, ye)
        example = (x[:1],)
        prepared = prepare_fx(torch_tmf.build(m), get_default_qconfig_mapping(engine), example)
        with torch.no_grad():
            xc = torch_tmf.preprocess(calib, m.meta)
            for i in range(0, len(xc), 64):
                prepared(xc[i:i + 64])
        qnet = convert_fx(prepared)
        q_acc = top1(qnet, x, ye)
        lat_q, lat_f = latency_us(qnet, x[:1]), latency_us(net, x[:1])
        thr_q, thr_f = throughput(qnet, x), throughput(net, x)
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([a.tinyml, "quantize", path, "--calib", "fashion-mnist", "--calib-samples", str(a.calib_samples),
                            "--method", a.method, "-q", "-o", f"{d}/q.tmf"], check=True)
            t_f, t_fthr = tinyml_eval(a.tinyml, path, 256)
            t_q, t_qthr = tinyml_eval(a.tinyml, f"{d}/q.tmf", 256)
            t_q1 = tinyml_latency_us(a.tinyml, f"{d}/q.tmf", a.threads)
        print(f"| {m.meta.get('name', path)} | {f_acc:.2f} | {t_q:.2f} | {q_acc:.2f} | {t_f - t_q:.2f} | {f_acc - q_acc:.2f} "
              f"| {t_q1:.1f} | {lat_q:.1f} | {lat_f:.1f} | {t_qthr:.0f} / {t_fthr:.0f} | {thr_q:.0f} / {thr_f:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
