"""Rebuild a tinyml float model (read with tmf.py) as a PyTorch module with the
same weights, for side-by-side comparisons (scripts/bench-torch-*.py).

Layouts: tinyml is NHWC with OHWI conv weights, depthwise weights (1,KH,KW,C*M)
and dense weights (out, in) whose inputs, after a flatten of an HxWxC tensor,
are in HWC order. PyTorch is NCHW, so conv weights are permuted to OIHW,
depthwise to (C*M,1,KH,KW), and the columns of a dense layer that follows a
flatten are reordered from HWC to CHW. Asymmetric padding ("same" with an even
kernel excess) becomes an explicit F.pad. The forward iterates a static node
list, so torch.fx can trace it (for PyTorch's FX post-training quantization).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Flatten(nn.Module):
    def forward(self, x):
        return torch.flatten(x, 1)


class Pad(nn.Module):
    def __init__(self, pad, value=0.0):
        super().__init__()
        self.pad = pad  # (left, right, top, bottom)
        self.value = value

    def forward(self, x):
        return F.pad(x, self.pad, value=self.value)


class Add(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act = act

    def forward(self, a, b):
        y = a + b
        return F.relu(y) if self.act == "relu" else (F.relu6(y) if self.act == "relu6" else y)


def _act_module(act):
    return {"relu": nn.ReLU(), "relu6": nn.ReLU6()}.get(act)


class TmfNet(nn.Module):
    def __init__(self, model):
        super().__init__()
        g = model.graph
        T = model.tensors
        self.input = g["input"]
        self.output = g["output"]
        self.steps = []  # (module name, input names, output name)
        self.mods = nn.ModuleDict()
        # tensor name -> (H, W, C) for the outputs of flattens of NHWC tensors
        hwc = {}
        for i, n in enumerate(g["nodes"]):
            op = n["op"]
            ins = [x for x in n["in"] if x is not None]
            name = f"n{i}"
            out = n["out"]
            act = n.get("act", "none")
            pad = n.get("pad", [0, 0, 0, 0])  # top, left, bottom, right
            stride = tuple(n.get("stride", [1, 1]))
            dil = tuple(n.get("dilation", [1, 1]))
            seq = []
            if op in ("conv2d", "depthwise_conv2d"):
                w = T[ins[1]]
                b = T[ins[2]] if len(ins) > 2 else None
                if op == "conv2d":
                    O, KH, KW, I = w.shape
                    groups = n.get("groups", 1)
                    wt = np.transpose(w, (0, 3, 1, 2))
                    cin = I * groups
                else:
                    _, KH, KW, CM = w.shape
                    M = n.get("depth_mult", 1)
                    cin = CM // M
                    O, groups = CM, cin
                    wt = np.transpose(w, (3, 0, 1, 2))
                sym = pad[0] == pad[2] and pad[1] == pad[3]
                if not sym and any(pad):
                    seq.append(Pad((pad[1], pad[3], pad[0], pad[2])))
                conv = nn.Conv2d(cin, O, (KH, KW), stride=stride, padding=(pad[0], pad[1]) if sym else 0,
                                 dilation=dil, groups=groups, bias=b is not None)
                conv.weight.data = torch.from_numpy(np.ascontiguousarray(wt))
                if b is not None:
                    conv.bias.data = torch.from_numpy(b.copy())
                seq.append(conv)
            elif op == "dense":
                w = T[ins[1]].copy()
                b = T[ins[2]] if len(ins) > 2 else None
                src = hwc.get(ins[0]) or (model.act_dims.get(ins[0]) if len(model.act_dims.get(ins[0], ())) == 3 else None)
                if src:  # columns are in HWC order of a flattened image: reorder to CHW
                    H, W_, C = src
                    w = w.reshape(w.shape[0], H, W_, C).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
                lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
                lin.weight.data = torch.from_numpy(np.ascontiguousarray(w))
                if b is not None:
                    lin.bias.data = torch.from_numpy(b.copy())
                seq.append(lin)
            elif op in ("relu", "relu6"):
                seq.append(_act_module(op))
            elif op in ("maxpool", "avgpool"):
                k = tuple(n.get("kernel", [1, 1]))
                sym = pad[0] == pad[2] and pad[1] == pad[3]
                if op == "maxpool":
                    if not sym:
                        seq.append(Pad((pad[1], pad[3], pad[0], pad[2]), value=-float("inf")))
                    seq.append(nn.MaxPool2d(k, stride, padding=(pad[0], pad[1]) if sym else 0, dilation=dil))
                else:
                    if any(pad) and not sym:
                        raise NotImplementedError("asymmetric average-pool padding")
                    seq.append(nn.AvgPool2d(k, stride, padding=(pad[0], pad[1]), count_include_pad=False))
            elif op == "global_avgpool":
                seq += [nn.AdaptiveAvgPool2d(1), Flatten()]
            elif op == "reshape":
                seq.append(Flatten())
                if len(model.act_dims.get(ins[0], ())) == 3:
                    hwc[out] = model.act_dims[ins[0]]
            elif op == "batchnorm":
                g_, be, mu, var = (T[x] for x in ins[1:5])
                bn = nn.BatchNorm2d(len(g_), eps=n.get("eps", 1e-5))
                bn.weight.data = torch.from_numpy(g_.copy())
                bn.bias.data = torch.from_numpy(be.copy())
                bn.running_mean.data = torch.from_numpy(mu.copy())
                bn.running_var.data = torch.from_numpy(var.copy())
                seq.append(bn)
            elif op == "dropout":
                seq.append(nn.Dropout(n.get("rate", 0.0)))
            elif op == "softmax":
                seq.append(nn.Softmax(dim=1))
            elif op == "add":
                self.mods[name] = Add(act)
                self.steps.append((name, ins[:2], out))
                continue
            else:
                raise NotImplementedError(op)
            if act != "none" and op in ("conv2d", "depthwise_conv2d", "dense"):
                seq.append(_act_module(act))
            self.mods[name] = seq[0] if len(seq) == 1 else nn.Sequential(*seq)
            self.steps.append((name, ins[:1], out))
    def forward(self, x):
        env = {self.input: x}
        for name, ins, out in self.steps:
            env[out] = self.mods[name](*[env[i] for i in ins])
        return env[self.output]


def build(model):
    """A PyTorch module (eval mode) with the model's weights."""
    return TmfNet(model).eval()


def preprocess(raw_u8, meta):
    """tinyml's stored preprocessing on uint8 NHW[C] images -> NCHW float tensor."""
    p = meta.get("preprocess", {})
    x = raw_u8.astype(np.float32) * p.get("scale", 1.0)
    if x.ndim == 3:
        x = x[..., None]
    mean, std = p.get("mean"), p.get("std")
    if mean:
        x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
