"""A small reference reader of tinyml's .tmf model files (docs/format.md), for
the Python comparison scripts: it loads the metadata, the graph and the float
/ int8 / int32 tensors of a model (dense, bitmap and relative-index layouts,
raw or clustered values, no entropy coding or deflate). Huffman-coded tensors
raise NotImplementedError: tinyml itself reads them; write the model without
entropy coding for Python (the comparison scripts use `tinyml` to decode).

    import tmf
    model = tmf.load("lenet5.tmf")
    model.tensors["conv1.w"]   # numpy array, OHWI
    model.meta, model.graph    # dicts (JSON)
"""
import json
import struct
import zlib

import numpy as np

SIGNATURE = b"\x89TMF\r\n\x1a\n"
DTYPES = {0: np.float32, 1: np.int8, 2: np.int32}


class Model:
    def __init__(self):
        self.meta = {}
        self.graph = {}
        self.tensors = {}   # name -> numpy array (params only)
        self.quant = {}     # name -> (axis, scales, zero_points)
        self.pruned = set()
        self.act_dims = {}  # activation name -> per-sample dims (H, W, C) or (F,)


def _unpack_bits(buf, count, width):
    """count values of `width` bits, packed LSB-first."""
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")
    need = count * width
    if bits.size < need:
        raise ValueError("packed stream too short")
    bits = bits[:need].reshape(count, width).astype(np.uint32)
    return (bits << np.arange(width, dtype=np.uint32)).sum(axis=1)


def _tensor(payload, model):
    p = 0

    def take(fmt):
        nonlocal p
        v = struct.unpack_from("<" + fmt, payload, p)
        p += struct.calcsize("<" + fmt)
        return v

    (nlen,) = take("H")
    name = payload[p:p + nlen].decode()
    p += nlen
    dtype, kind, ndim, flags = take("BBBB")
    dims = take("i" * ndim) if ndim else ()
    take("I")  # store hint
    if flags & 2:
        axis, n = take("iI")
        scales = np.array(take("f" * n), dtype=np.float32)
        zps = np.zeros(n, np.int32) if flags & 8 else np.array(take("i" * n), dtype=np.int32)
        model.quant[name] = (axis, scales, zps)
    centroids = None
    if flags & 4:
        k, bits, books = take("HBI")
        if dtype == 0:
            centroids = np.array(take("f" * (books * k)), dtype=np.float32).reshape(books, k)
        else:
            centroids = np.array(take("b" * (books * k)), dtype=np.int8).reshape(books, k)
    if kind == 0:
        model.act_dims[name] = tuple(dims)
        return
    if flags & 1:
        model.pruned.add(name)
    layout, valcode, entropy, g, stored, raw_len, raw_crc, body_len = take("BBBBIIII")
    body = payload[p:p + body_len]
    if entropy == 1:
        body = zlib.decompress(body)
    elif entropy == 2:
        raise NotImplementedError(f"tensor {name}: Huffman-coded; decode it with tinyml")
    if len(body) != raw_len or zlib.crc32(body) != raw_crc:
        raise ValueError(f"tensor {name}: corrupted body")
    numel = int(np.prod(dims)) if ndim else 1
    # positions
    if layout == 0:
        pos = np.arange(numel)
        q = 0
    elif layout == 1:
        nb = (numel + 7) // 8
        pos = np.flatnonzero(np.unpackbits(np.frombuffer(body[:nb], np.uint8), bitorder="little")[:numel])
        q = nb
    else:
        nb = (stored * g + 7) // 8
        gaps = _unpack_bits(body[:nb], stored, g).astype(np.int64)
        pos = np.cumsum(gaps + 1) - 1
        q = nb
    # values
    if valcode == 0:
        vals = np.frombuffer(body[q:], dtype=DTYPES[dtype], count=stored)
    else:
        idx = _unpack_bits(body[q:], stored, bits).astype(np.int64)
        book = np.zeros(stored, dtype=np.int64) if centroids.shape[0] == 1 else pos // (numel // centroids.shape[0])
        vals = centroids[book, idx]
    out = np.zeros(numel, dtype=DTYPES[dtype])
    out[pos] = vals
    model.tensors[name] = out.reshape(dims)


def load(path):
    data = open(path, "rb").read()
    if data[:8] != SIGNATURE:
        raise ValueError(f"{path}: not a tinyml model")
    m = Model()
    p = 8
    while p < len(data):
        length, ctype = struct.unpack_from("<I4s", data, p)
        payload = data[p + 8:p + 8 + length]
        (crc,) = struct.unpack_from("<I", data, p + 8 + length)
        if zlib.crc32(ctype + payload) != crc:
            raise ValueError(f"{path}: bad CRC in a {ctype.decode()} chunk")
        p += 12 + length
        if ctype in (b"META", b"GRPH") and payload[:1] == b"\x78":
            payload = zlib.decompress(payload)  # JSON stored as a zlib stream
        if ctype == b"META":
            m.meta = json.loads(payload)
        elif ctype == b"GRPH":
            m.graph = json.loads(payload)
        elif ctype == b"TNSR":
            _tensor(payload, m)
        elif ctype == b"END ":
            break
    return m
