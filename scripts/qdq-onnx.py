#!/usr/bin/python3
"""Writes an int8 QDQ ONNX model for ONNX Runtime from tinyml's float ONNX
export and the tinyml int8 model made from the same float model, so that
scripts/bench-ort.sh can time both int8 engines on the same network. A
benchmark helper that gives ONNX Runtime its best case: Q/DQ around every
int8 tensor, reshapes included (`tinyml export --onnx` of an int8 model
leaves the Flatten before a dense layer without them, and ONNX Runtime then
runs that layer in float).

    qdq-onnx.py FLOAT.onnx MODEL-int8.tmf OUT.onnx

What it does to the float graph (QDQ format: every int8 tensor appears as a
QuantizeLinear -> DequantizeLinear pair, which ONNX Runtime fuses into its
integer kernels):
  - batch norm is folded into the Conv before it (as tinyml quantize does);
  - every activation that has int8 parameters in the tinyml model (same
    tensor names) gets Q/DQ with that scale and zero point;
  - conv / Gemm weights become int8 initializers with the tinyml model's
    per-channel (or per-tensor) scales, zero point 0, DequantizeLinear axis 0;
    biases int32 with scale = input scale * weight scale.
The int8 weights are requantized from the float export with the int8 model's
scales, so they equal tinyml's int8 weights up to a rounding tie; the graph
computes the same function as `tinyml eval` of the int8 model up to ONNX
Runtime's own integer rounding.
"""
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tmf  # noqa: E402


def fold_batchnorm(g):
    """Conv -> BatchNormalization (the BN its only reader) becomes one Conv."""
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    readers = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    drop = []
    for bn in g.node:
        if bn.op_type != "BatchNormalization":
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or len(readers.get(bn.input[0], [])) != 1:
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        f = gamma / np.sqrt(var + eps)
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        w = w * f.reshape(-1, *([1] * (w.ndim - 1)))
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 else 0.0
        b = (b - mean) * f + beta
        inits[conv.input[1]].CopyFrom(numpy_helper.from_array(w.astype(np.float32), conv.input[1]))
        bname = conv.input[1][:-2] + ".b" if conv.input[1].endswith(".w") else conv.input[1] + "_b"
        if len(conv.input) > 2:
            inits[conv.input[2]].CopyFrom(numpy_helper.from_array(b.astype(np.float32), conv.input[2]))
        else:
            g.initializer.append(numpy_helper.from_array(b.astype(np.float32), bname))
            inits[bname] = g.initializer[-1]
            conv.input.append(bname)
        conv.output[0] = bn.output[0]
        drop.append(bn)
    for n in drop:
        g.node.remove(n)


def load_qparams(path):
    """The int8 model's graph and quantization parameters (tensor bodies are
    not needed: Huffman-coded ones, which tmf.py cannot decode, are skipped)."""
    import json
    import struct
    import zlib
    data = open(path, "rb").read()
    if data[:8] != tmf.SIGNATURE:
        raise SystemExit(f"qdq-onnx: {path}: not a tinyml model")
    m = tmf.Model()
    p = 8
    while p < len(data):
        length, ctype = struct.unpack_from("<I4s", data, p)
        payload = data[p + 8:p + 8 + length]
        p += 12 + length
        if ctype == b"GRPH":
            m.graph = json.loads(zlib.decompress(payload) if payload[:1] == b"\x78" else payload)
        elif ctype == b"TNSR":
            try:
                tmf._tensor(payload, m)
            except NotImplementedError:
                pass  # quantization parameters come before the body
        elif ctype == b"END ":
            break
    return m


def qparams(model, name):
    axis, scales, zps = model.quant[name]
    return scales.astype(np.float32), zps.astype(np.int32)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: qdq-onnx.py FLOAT.onnx MODEL-int8.tmf OUT.onnx")
    om = onnx.load(sys.argv[1])
    q = load_qparams(sys.argv[2])
    g = om.graph
    fold_batchnorm(g)
    inits = {t.name: t for t in g.initializer}
    graph_out = g.output[0].name
    tml_out = q.graph.get("output") if isinstance(q.graph, dict) else None
    acts = {name for name in q.quant if name in q.act_dims}
    if tml_out is None:
        # the tinyml output is the one quantized activation that is not an ONNX tensor
        onnx_tensors = {o for n in g.node for o in n.output} | {g.input[0].name}
        missing = [a for a in acts if a not in onnx_tensors]
        tml_out = missing[0] if len(missing) == 1 else None
    to_onnx = {a: (graph_out if a == tml_out else a) for a in acts}
    from_onnx = {v: k for k, v in to_onnx.items()}

    new_nodes, new_inits = [], []

    def const(name, arr):
        new_inits.append(numpy_helper.from_array(arr, name))
        return name

    def act_scale(tensor):
        """scale of an ONNX tensor: its own, or (through Flatten / Reshape) its source's"""
        producer = {o: n for n in g.node for o in n.output}
        t = tensor
        while t not in from_onnx:
            n = producer.get(t)
            if n is None or n.op_type not in ("Flatten", "Reshape"):
                raise SystemExit(f"qdq-onnx: no int8 parameters for tensor '{tensor}'")
            t = n.input[0]
        return qparams(q, from_onnx[t])

    # weights and biases: int8 / int32 initializers behind DequantizeLinear
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        wname = n.input[1]
        w = numpy_helper.to_array(inits[wname]).astype(np.float64)
        ws, _ = qparams(q, wname)
        per_ch = ws.size > 1
        wsc = ws.reshape(-1, *([1] * (w.ndim - 1))) if per_ch else ws[0]
        wq = np.clip(np.round(w / wsc), -127, 127).astype(np.int8)
        dq_w = wname + "/dq"
        args = dict(axis=0) if per_ch else {}
        new_nodes.append(helper.make_node("DequantizeLinear", [const(wname + "/q", wq), const(wname + "/s", ws if per_ch else ws[0]),
                                                               const(wname + "/zp", np.zeros(ws.size, np.int8) if per_ch else np.int8(0))],
                                          [dq_w], **args))
        n.input[1] = dq_w
        if len(n.input) > 2:
            bname = n.input[2]
            b = numpy_helper.to_array(inits[bname]).astype(np.float64)
            xs, _ = act_scale(n.input[0])
            bs = (xs[0] * ws).astype(np.float32)
            bq = np.round(b / (bs if per_ch else bs[0])).astype(np.int32)
            dq_b = bname + "/dq"
            new_nodes.append(helper.make_node("DequantizeLinear", [const(bname + "/q", bq), const(bname + "/s", bs if per_ch else bs[0]),
                                                                   const(bname + "/zp", np.zeros(bs.size, np.int32) if per_ch else np.int32(0))],
                                              [dq_b], **args))
            n.input[2] = dq_b

    # activations: Q -> DQ after the producer; readers take the DQ output
    for a, t in to_onnx.items():
        s, zp = qparams(q, a)
        qn, dqn = t + "/q", t + "/dq"
        src = t
        if t == graph_out:
            # the graph output keeps its name: the producer writes t/pre
            src = t + "/pre"
            for n in g.node:
                for i, o in enumerate(n.output):
                    if o == t:
                        n.output[i] = src
        for n in g.node:
            for i, inp in enumerate(n.input):
                if inp == t and t != graph_out:
                    n.input[i] = dqn
        new_nodes.append(helper.make_node("QuantizeLinear", [src, const(t + "/s", s[0]), const(t + "/zp", np.int8(zp[0]))], [qn]))
        new_nodes.append(helper.make_node("DequantizeLinear", [qn, t + "/s", t + "/zp"], [dqn if t != graph_out else t]))

    nodes = list(g.node) + new_nodes
    del g.node[:]
    g.initializer.extend(new_inits)
    used = {i for n in nodes for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    # topological order: a node after the producers of its inputs
    ready = {i.name for i in g.input} | {t.name for t in g.initializer}
    ordered = []
    while nodes:
        rest = []
        for n in nodes:
            if all(i in ready or i == "" for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(nodes):
            raise SystemExit("qdq-onnx: graph has a cycle or a missing input")
        nodes = rest
    g.node.extend(ordered)
    onnx.checker.check_model(om)
    onnx.save(om, sys.argv[3])


if __name__ == "__main__":
    main()
