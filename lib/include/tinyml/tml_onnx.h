/*
 * tml_onnx.h - ONNX import (formats/onnx*.c): reads an ONNX model file (the
 * protobuf wire format, decoded by our own bounds-checked reader; no protobuf
 * library) and builds a float tinyml model from it. docs/onnx.md lists the
 * supported ops, opsets and limitations.
 *
 * Layout conversion: ONNX graphs are NCHW with the batch as dimension 0.
 * tinyml tensors are per sample and NHWC, so
 *   graph input (N,C,H,W) -> tinyml input (H,W,C);  (N,F) -> (F);
 *   (N,A,B) -> (A,B) (kept in ONNX order: only element-wise ops, softmax
 *   over the last axis and the like apply to it)
 *   conv weights (M,C/g,KH,KW) -> OHWI; depthwise (C*M,1,KH,KW) -> (1,KH,KW,C*M)
 *   Gemm / MatMul weights -> (out,in); after a Flatten of an NCHW tensor the
 *   input columns are permuted from CHW to HWC order.
 * Dimension 0 of every activation is the batch (symbolic, or fixed as torch
 * writes by default); it is stripped, and the model runs on any batch size.
 *
 * Errors: TML_ERR_FORMAT for malformed files (truncated, wrong wire types,
 * inconsistent sizes, cycles), TML_ERR_UNSUPPORTED for valid models using
 * something tinyml cannot represent (the message names the node, op type and
 * opset), TML_ERR_NOMEM, TML_ERR_IO, and TML_ERR_INVALID only for bad
 * options (opts). Nothing is dropped silently.
 *
 * Thread-safe: no globals; two threads may import two files at once.
 */
#ifndef TML_ONNX_H
#define TML_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opsets of the default ONNX domain the importer knows. Models declaring a
 * newer opset are refused (their op semantics may differ). */
#define TML_ONNX_OPSET_MIN 1
#define TML_ONNX_OPSET_MAX 18

/* Binds one graph input to a constant instead of making it the model input.
 * For the conformance runner (ONNX node tests pass weights as graph inputs);
 * the CLI never binds. `pb` holds a serialized onnx.TensorProto, e.g. the
 * bytes of a test_data_set_N/input_K.pb file (copied during the import). */
typedef struct tml_onnx_binding {
    const char *name; /* graph input name; NULL or "" = by position `index` */
    int index;        /* position among the graph inputs that are not initializers */
    const void *pb;
    size_t pb_len;
} tml_onnx_binding;

typedef struct tml_onnx_opts {
    /* Per-sample input shape in tinyml order for inputs with symbolic (or
     * missing) dimensions: (H,W,C) for NCHW images, (F) for (N,F), else the
     * ONNX dims after the batch. input_ndim 0 = take the shape from the file;
     * given dims must agree with the file's fixed ones. */
    int input_ndim;
    int32_t input_dims[TML_MAX_DIMS];
    const tml_onnx_binding *bind; /* NULL in normal use */
    int n_bind;
} tml_onnx_opts;

/* How the ONNX tensor at a model boundary maps onto the tinyml tensor. */
typedef enum tml_onnx_layout {
    TML_ONNX_PLAIN = 0,   /* same element order (ONNX dims after the batch) */
    TML_ONNX_NCHW = 1,    /* ONNX (N,C,H,W) is tinyml (H,W,C) */
    TML_ONNX_FLAT_CHW = 2 /* ONNX (N,C*H*W) in CHW order is tinyml (F) in HWC order */
} tml_onnx_layout;

#define TML_ONNX_MAX_RANK 8

/* What an import found, for logs and for converting test data. */
typedef struct tml_onnx_info {
    int64_t ir_version;
    int opset;
    char producer[64]; /* producer_name and version, "" when absent */
    char graph_name[64];
    int onnx_nodes;   /* nodes in the graph */
    int used_nodes;   /* nodes the output depends on (the rest are ignored) */
    int folded_nodes; /* nodes evaluated at import (constants, shape arithmetic) */
    int fused_nodes;  /* nodes merged into another (bias Add, ReLU, Clip, ...) */
    int64_t batch;    /* declared batch of the input: > 0 fixed, -1 symbolic */
    char input_name[64], output_name[64];
    tml_onnx_layout in_layout, out_layout;
    int in_rank, out_rank;              /* ONNX ranks, batch included */
    int64_t in_dims[TML_ONNX_MAX_RANK]; /* ONNX dims; [0] = batch as declared (-1 symbolic) */
    int64_t out_dims[TML_ONNX_MAX_RANK];
    int64_t out_chw[3];   /* TML_ONNX_FLAT_CHW output: the (C,H,W) its features were flattened from */
    char op_summary[512]; /* "Conv 2, Relu 3, ..." over the used nodes */
} tml_onnx_info;

/* Imports an ONNX model held in memory. opts and info may be NULL. On success
 * *out is a finalized float model (arch "onnx", name from the graph, n_classes
 * = output size when the output is a vector, preprocessing left at scale 1:
 * the caller sets meta.pre); the caller frees it. */
tml_status tml_onnx_import_mem(const void *buf, size_t len, const tml_onnx_opts *opts, tml_model **out,
                               tml_onnx_info *info);

/* Same from a file; path "-" reads stdin. Errors are prefixed with the path. */
tml_status tml_onnx_import_file(const char *path, const tml_onnx_opts *opts, tml_model **out,
                                tml_onnx_info *info);

/* Decodes a serialized onnx.TensorProto (e.g. a test_data_set .pb file) of a
 * float type (float, double, float16, bfloat16) into *data (numel floats,
 * ONNX row-major order; malloc'd, the caller frees) and its dims. */
tml_status tml_onnx_read_tensor(const void *buf, size_t len, float **data, int *ndim,
                                int64_t dims[TML_ONNX_MAX_RANK]);

/* ---- export (formats/onnx_export.c) --------------------------------------------------
 * Writes a finalized FLOAT model as ONNX (IR version 8, default-domain opset
 * 13, producer "tinyml"; protobuf written directly, no library). The graph
 * input is "input", (N,C,H,W) for an (H,W,C) model input, (N,F) for (F), and
 * the output "output", (N,K) for a classifier; N is symbolic ("N"). Layouts
 * are converted back to ONNX's (the inverse of the import): conv weights
 * OHWI -> OIHW, depthwise (1,KH,KW,C*M) -> (C*M,1,KH,KW) with group = C, dense
 * weights as Gemm(transB=1) with the columns of a flattened image permuted
 * from HWC to CHW. Fused activations become Relu / Clip(0,6) nodes, batch
 * norms BatchNormalization, dropout is omitted. Pruned weights are stored
 * dense, clustered weights as their decoded values. Labels and preprocessing
 * go to metadata_props["tinyml"] (JSON). tml_onnx_import_mem() of the result
 * computes what the model computes.
 *
 * An INT8 model is written in QDQ form: the same graph on float values, each
 * int8 activation as QuantizeLinear -> DequantizeLinear with its scale and
 * zero point (the input included), weights as int8 initializers with
 * per-axis scales (axis 0) behind a DequantizeLinear, biases as int32
 * initializers with scale input scale * weight scale. ONNX Runtime runs it
 * with integer kernels (tinyml's importer does not read QDQ graphs).
 *
 * Errors: TML_ERR_UNSUPPORTED for what opset 13 cannot express (average
 * pooling with dilation), for int8 models that are not wholly int8 with
 * quantization parameters, and for files above 2 GiB (protobuf's limit);
 * TML_ERR_NOMEM; TML_ERR_IO when writing. The model is only read. */

/* The ONNX file in memory: *buf (malloc'd, the caller frees) of *len bytes. */
tml_status tml_onnx_export_mem(const tml_model *m, uint8_t **buf, size_t *len);
/* Writes the ONNX file to `path` through a temporary file renamed over it (a
 * failure never leaves a half-written file); NULL or "-" writes stdout. */
tml_status tml_onnx_export_file(const tml_model *m, const char *path);

#ifdef __cplusplus
}
#endif
#endif
