/*
 * tflite.c - TensorFlow Lite flatbuffer import (tml_tflite.h, docs/tflite.md).
 *
 * Two steps: (1) a bounds-checked reader of the flatbuffer wire format
 * (tflite_internal.h describes it) decodes the model's tables into plain
 * arrays (tfl_tensor, tfl_op), (2) the importer walks subgraph 0's operators
 * in order and builds the tinyml graph. The reader never trusts a number from
 * the file: every position is checked against the buffer length before it is
 * read, every vector's byte size against the bytes left, and counts are
 * capped; the first problem found is the error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tflite_internal.h"
#include "tmf_internal.h"
#include "tinyml/tml_tflite.h"

#define TFL_MAX_TENSORS 100000
#define TFL_MAX_OPS 20000
#define TFL_MAX_OPCODES 4096
#define TFL_MAX_BUFFERS 200000
#define TFL_MAX_RANK 8
#define TFL_MAX_IO 64
#define TFL_MAX_FILE ((size_t)1 << 31)

/* ---- op names ------------------------------------------------------------------------ */

static const char *const op_names[] = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
    "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU",
    "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH",
    "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB",
    "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP",
    "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM",
    "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE",
    "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG", "SUM", "SQRT",
    "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK", "LOGICAL_OR",
    "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY", "SQUARE",
    "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE",
    "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK",
    "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF", "WHILE",
    "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM",
    "BATCH_MATMUL", "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE", "BROADCAST_TO", "RFFT2D",
    "CONV_3D", "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE",
    "REDUCE_ALL", "CONV_3D_TRANSPOSE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "BROADCAST_ARGS",
    "RANDOM_STANDARD_NORMAL", "BUCKETIZE", "RANDOM_UNIFORM", "MULTINOMIAL", "GELU", "DYNAMIC_UPDATE_SLICE",
    "RELU_0_TO_1", "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX", "UNSORTED_SEGMENT_SUM", "ATAN2",
    "UNSORTED_SEGMENT_MIN", "SIGN", "BITCAST", "BITWISE_XOR", "RIGHT_SHIFT"};

const char *tml_tflite_op_name(int code)
{
    if (code < 0 || code >= (int)(sizeof op_names / sizeof op_names[0])) return NULL;
    return op_names[code];
}

static const char *type_name(int t)
{
    static const char *const n[] = {"FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING", "BOOL", "INT16",
                                    "COMPLEX64", "INT8", "FLOAT64", "COMPLEX128", "UINT64", "RESOURCE", "VARIANT",
                                    "UINT32", "UINT16", "INT4"};
    return t >= 0 && t < (int)(sizeof n / sizeof n[0]) ? n[t] : "unknown type";
}

/* ---- flatbuffer reader ------------------------------------------------------------------ */

/* The reader keeps the first error (a sticky flag): getters return defaults
 * once it is set, so the decoding code reads straight through and checks once. */
typedef struct fbr {
    const uint8_t *b;
    size_t len;
    char bad[160];
} fbr;

typedef struct fbt {
    size_t pos;      /* table start */
    size_t vt;       /* vtable start */
    uint16_t nfield; /* field slots in the vtable */
    uint16_t tsize;  /* table bytes */
} fbt;

static void fb_fail(fbr *f, const char *what, size_t pos)
{
    if (!f->bad[0]) snprintf(f->bad, sizeof f->bad, "%s at byte %zu", what, pos);
}

static int fb_has(const fbr *f, size_t pos, size_t n) { return pos <= f->len && f->len - pos >= n; }

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint32_t fb_u32(fbr *f, size_t pos)
{
    if (f->bad[0]) return 0;
    if (!fb_has(f, pos, 4)) {
        fb_fail(f, "offset out of bounds", pos);
        return 0;
    }
    return rd32(f->b + pos);
}

/* The table at `pos`: its vtable must lie in the buffer and cover its own
 * header; the table's declared size must lie in the buffer. */
static int fb_table(fbr *f, size_t pos, fbt *t)
{
    memset(t, 0, sizeof *t);
    if (f->bad[0]) return 0;
    if (!fb_has(f, pos, 4)) {
        fb_fail(f, "table out of bounds", pos);
        return 0;
    }
    const int64_t vt = (int64_t)pos - (int32_t)rd32(f->b + pos);
    if (vt < 0 || !fb_has(f, (size_t)vt, 4)) {
        fb_fail(f, "vtable out of bounds", pos);
        return 0;
    }
    const uint16_t vsize = rd16(f->b + vt), tsize = rd16(f->b + vt + 2);
    if (vsize < 4 || (vsize & 1) || !fb_has(f, (size_t)vt, vsize)) {
        fb_fail(f, "bad vtable", (size_t)vt);
        return 0;
    }
    if (tsize < 4 || !fb_has(f, pos, tsize)) {
        fb_fail(f, "table size out of bounds", pos);
        return 0;
    }
    t->pos = pos;
    t->vt = (size_t)vt;
    t->nfield = (uint16_t)((vsize - 4) / 2);
    t->tsize = tsize;
    return 1;
}

/* Absolute position of field `id` (of `size` bytes), or 0 when absent. A
 * field must lie inside its table, after the soffset. */
static size_t fb_field(fbr *f, const fbt *t, int id, size_t size)
{
    if (f->bad[0] || !t->tsize || id >= t->nfield) return 0;
    const uint16_t off = rd16(f->b + t->vt + 4 + 2 * (size_t)id);
    if (!off) return 0;
    if (off < 4 || (size_t)off + size > t->tsize) {
        fb_fail(f, "field outside its table", t->pos);
        return 0;
    }
    return t->pos + off;
}

static int64_t fb_int(fbr *f, const fbt *t, int id, int size, int sign, int64_t def)
{
    const size_t p = fb_field(f, t, id, (size_t)size);
    if (!p) return def;
    const uint8_t *b = f->b + p;
    switch (size) {
    case 1: return sign ? (int64_t)(int8_t)b[0] : (int64_t)b[0];
    case 2: return sign ? (int64_t)(int16_t)rd16(b) : (int64_t)rd16(b);
    case 4: return sign ? (int64_t)(int32_t)rd32(b) : (int64_t)rd32(b);
    default: return (int64_t)rd64(b);
    }
}

static float fb_f32(fbr *f, const fbt *t, int id, float def)
{
    const size_t p = fb_field(f, t, id, 4);
    if (!p) return def;
    const uint32_t u = rd32(f->b + p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Target of the uoffset in field `id`; 0 when absent. */
static size_t fb_ref(fbr *f, const fbt *t, int id)
{
    const size_t p = fb_field(f, t, id, 4);
    if (!p) return 0;
    const uint32_t o = rd32(f->b + p);
    if (o == 0 || !fb_has(f, p + o, 4)) {
        fb_fail(f, "reference out of bounds", p);
        return 0;
    }
    return p + o;
}

/* Vector in field `id` of `elem`-byte elements: *data = first element, *n =
 * count (0 when absent). The whole vector must lie in the buffer. */
static void fb_vec(fbr *f, const fbt *t, int id, size_t elem, size_t *data, uint32_t *n)
{
    *data = 0;
    *n = 0;
    const size_t v = fb_ref(f, t, id);
    if (!v) return;
    const uint32_t cnt = rd32(f->b + v);
    if ((uint64_t)cnt * elem > (uint64_t)(f->len - v - 4)) {
        fb_fail(f, "vector longer than the file", v);
        return;
    }
    *data = v + 4;
    *n = cnt;
}

/* Element i of a vector of tables. */
static int fb_vec_table(fbr *f, size_t data, uint32_t i, fbt *out)
{
    const size_t p = data + 4 * (size_t)i;
    const uint32_t o = fb_u32(f, p);
    if (f->bad[0]) return 0;
    if (o == 0) {
        fb_fail(f, "null table in vector", p);
        return 0;
    }
    return fb_table(f, p + o, out);
}

/* String in field `id` (not necessarily NUL-terminated in a hostile file). */
static void fb_str(fbr *f, const fbt *t, int id, const char **s, uint32_t *n)
{
    size_t d;
    fb_vec(f, t, id, 1, &d, n);
    *s = *n ? (const char *)(f->b + d) : "";
}

/* ---- decoded model ------------------------------------------------------------------------ */

typedef struct tfl_tensor {
    int ndim;
    int32_t shape[TFL_MAX_RANK];
    int type;
    char *name;
    int nq;         /* quantization entries (0 = none) */
    float *scale;   /* (nq) */
    int64_t *zp;    /* (nq) */
    int qdim;       /* quantized_dimension */
    const uint8_t *data; /* constant bytes, NULL for activations */
    size_t nbytes;
    float *folded;  /* a constant computed at import (DEQUANTIZE of a constant): float32 values */
} tfl_tensor;

typedef struct tfl_op {
    int code, version;
    int n_in, n_out;
    int32_t in[TFL_MAX_IO], out[TFL_MAX_IO];
    int opt_type;
    fbt opt; /* tsize 0 when absent */
} tfl_op;

typedef struct tfl_model {
    fbr f;
    uint32_t version;
    int nt, nops;
    tfl_tensor *t;
    tfl_op *ops;
    int in_t, out_t; /* subgraph input / output tensor */
    char *meta_json, *meta_nodes; /* tinyml metadata (NUL-terminated copies) or NULL */
} tfl_model;

static void tfl_free(tfl_model *d)
{
    for (int i = 0; i < d->nt; i++) {
        free(d->t[i].name);
        free(d->t[i].scale);
        free(d->t[i].zp);
        free(d->t[i].folded);
    }
    free(d->t);
    free(d->ops);
    free(d->meta_json);
    free(d->meta_nodes);
}

static size_t type_size(int type)
{
    switch (type) {
    case TFL_FLOAT32:
    case TFL_INT32: return 4;
    case TFL_FLOAT16:
    case TFL_INT16: return 2;
    case TFL_INT64: return 8;
    case TFL_INT8:
    case TFL_UINT8: return 1;
    default: return 0;
    }
}

static int64_t shape_numel(const tfl_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || (t->shape[i] && n > TML_MAX_NUMEL / t->shape[i])) return -1;
        n *= t->shape[i];
    }
    return n;
}

/* Bytes of buffer `idx` (data vector, or offset/size outside the flatbuffer). */
static tml_status buffer_bytes(fbr *f, size_t bufs, uint32_t nbufs, uint32_t idx, const uint8_t **p, size_t *n)
{
    *p = NULL;
    *n = 0;
    if (idx == 0) return TML_OK; /* buffer 0 is the empty sentinel */
    if (idx >= nbufs) return tml_error(TML_ERR_FORMAT, "tensor refers to buffer %u of %u", idx, nbufs);
    fbt b;
    if (!fb_vec_table(f, bufs, idx, &b)) return tml_error(TML_ERR_FORMAT, "buffer %u: %s", idx, f->bad);
    size_t d;
    uint32_t cnt;
    fb_vec(f, &b, TFL_BUFFER_DATA, 1, &d, &cnt);
    const uint64_t off = (uint64_t)fb_int(f, &b, TFL_BUFFER_OFFSET, 8, 0, 0);
    const uint64_t size = (uint64_t)fb_int(f, &b, TFL_BUFFER_SIZE, 8, 0, 0);
    if (f->bad[0]) return tml_error(TML_ERR_FORMAT, "buffer %u: %s", idx, f->bad);
    if (cnt) {
        *p = f->b + d;
        *n = cnt;
    } else if (off > 1) { /* data stored after the flatbuffer (models over 2 GB) */
        if (off > f->len || size > f->len - off) return tml_error(TML_ERR_FORMAT, "buffer %u lies outside the file", idx);
        *p = f->b + off;
        *n = (size_t)size;
    }
    return TML_OK;
}

static tml_status dup_name(const char *s, uint32_t n, char **out)
{
    if (n > 4096) n = 4096;
    *out = malloc((size_t)n + 1);
    if (!*out) return tml_error(TML_ERR_NOMEM, "out of memory");
    memcpy(*out, s, n);
    (*out)[n] = '\0';
    /* a NUL inside the name would cut it: keep what precedes it */
    return TML_OK;
}

static tml_status decode_tensor(fbr *f, fbt *tt, int i, size_t bufs, uint32_t nbufs, tfl_tensor *t)
{
    size_t d;
    uint32_t n;
    fb_vec(f, tt, TFL_TENSOR_SHAPE, 4, &d, &n);
    if (n > TFL_MAX_RANK) return tml_error(TML_ERR_UNSUPPORTED, "tensor %d has rank %u (at most %d)", i, n, TFL_MAX_RANK);
    t->ndim = (int)n;
    for (uint32_t k = 0; k < n; k++) t->shape[k] = (int32_t)rd32(f->b + d + 4 * k);
    t->type = (int)fb_int(f, tt, TFL_TENSOR_TYPE, 1, 1, 0);
    const uint32_t buf = (uint32_t)fb_int(f, tt, TFL_TENSOR_BUFFER, 4, 0, 0);
    const char *s;
    fb_str(f, tt, TFL_TENSOR_NAME, &s, &n);
    tml_status st = dup_name(s, n, &t->name);
    if (st) return st;
    if (fb_field(f, tt, TFL_TENSOR_SPARSITY, 4))
        return tml_error(TML_ERR_UNSUPPORTED, "tensor %d '%.60s' is stored sparse (densify the model first)", i, t->name);
    const size_t q = fb_ref(f, tt, TFL_TENSOR_QUANTIZATION);
    if (q) {
        fbt qt;
        if (!fb_table(f, q, &qt)) return tml_error(TML_ERR_FORMAT, "tensor %d quantization: %s", i, f->bad);
        size_t ds, dz;
        uint32_t ns, nz;
        fb_vec(f, &qt, TFL_QUANT_SCALE, 4, &ds, &ns);
        fb_vec(f, &qt, TFL_QUANT_ZERO_POINT, 8, &dz, &nz);
        if (fb_int(f, &qt, TFL_QUANT_DETAILS_TYPE, 1, 0, 0) != 0)
            return tml_error(TML_ERR_UNSUPPORTED, "tensor %d '%.60s' uses custom quantization", i, t->name);
        t->qdim = (int)fb_int(f, &qt, TFL_QUANT_DIMENSION, 4, 1, 0);
        if (ns) {
            if (nz && nz != ns)
                return tml_error(TML_ERR_FORMAT, "tensor %d '%.60s': %u scales but %u zero points", i, t->name, ns, nz);
            if (ns > (uint32_t)TML_MAX_NUMEL) return tml_error(TML_ERR_FORMAT, "tensor %d: too many scales", i);
            t->scale = malloc(sizeof(float) * ns);
            t->zp = calloc(ns, sizeof(int64_t));
            if (!t->scale || !t->zp) return tml_error(TML_ERR_NOMEM, "out of memory");
            for (uint32_t k = 0; k < ns; k++) {
                const uint32_t u = rd32(f->b + ds + 4 * k);
                memcpy(&t->scale[k], &u, 4);
                if (nz) t->zp[k] = (int64_t)rd64(f->b + dz + 8 * k);
            }
            t->nq = (int)ns;
        }
    }
    if (f->bad[0]) return tml_error(TML_ERR_FORMAT, "tensor %d: %s", i, f->bad);
    st = buffer_bytes(f, bufs, nbufs, buf, &t->data, &t->nbytes);
    if (st) return tml_error_context(st, "tensor %d '%.60s'", i, t->name);
    if (t->data) {
        const int64_t numel = shape_numel(t);
        const size_t es = type_size(t->type);
        if (numel < 0) return tml_error(TML_ERR_FORMAT, "tensor %d '%.60s' has a bad shape", i, t->name);
        if (es && t->nbytes != (size_t)numel * es)
            return tml_error(TML_ERR_FORMAT, "tensor %d '%.60s': %zu bytes of data for %lld %s values", i, t->name,
                             t->nbytes, (long long)numel, type_name(t->type));
    }
    return TML_OK;
}

static tml_status decode_op(fbr *f, fbt *ot, int i, uint32_t nopcodes, size_t opcodes, tfl_op *op)
{
    const uint32_t oi = (uint32_t)fb_int(f, ot, TFL_OP_OPCODE_INDEX, 4, 0, 0);
    if (oi >= nopcodes) return tml_error(TML_ERR_FORMAT, "operator %d uses opcode %u of %u", i, oi, nopcodes);
    fbt ct;
    if (!fb_vec_table(f, opcodes, oi, &ct)) return tml_error(TML_ERR_FORMAT, "opcode %u: %s", oi, f->bad);
    /* the op is the larger of the 8-bit deprecated code and the 32-bit code
     * (files from before the 32-bit field have only the former) */
    const int dep = (int)fb_int(f, &ct, TFL_OPCODE_DEPRECATED_BUILTIN, 1, 1, 0);
    const int64_t code = fb_int(f, &ct, TFL_OPCODE_BUILTIN, 4, 1, 0);
    op->code = (int)(code > dep ? code : dep);
    op->version = (int)fb_int(f, &ct, TFL_OPCODE_VERSION, 4, 1, 1);
    if (op->code == TFL_CUSTOM) {
        const char *s;
        uint32_t n;
        fb_str(f, &ct, TFL_OPCODE_CUSTOM, &s, &n);
        return tml_error(TML_ERR_UNSUPPORTED, "operator %d is the custom op '%.*s', which tinyml does not implement", i,
                         (int)(n > 60 ? 60 : n), s);
    }
    size_t d;
    uint32_t n;
    fb_vec(f, ot, TFL_OP_INPUTS, 4, &d, &n);
    if (n > TFL_MAX_IO) return tml_error(TML_ERR_UNSUPPORTED, "operator %d has %u inputs", i, n);
    op->n_in = (int)n;
    for (uint32_t k = 0; k < n; k++) op->in[k] = (int32_t)rd32(f->b + d + 4 * k);
    fb_vec(f, ot, TFL_OP_OUTPUTS, 4, &d, &n);
    if (n > TFL_MAX_IO) return tml_error(TML_ERR_UNSUPPORTED, "operator %d has %u outputs", i, n);
    op->n_out = (int)n;
    for (uint32_t k = 0; k < n; k++) op->out[k] = (int32_t)rd32(f->b + d + 4 * k);
    op->opt_type = (int)fb_int(f, ot, TFL_OP_OPTIONS_TYPE, 1, 0, 0);
    const size_t o = fb_ref(f, ot, TFL_OP_OPTIONS);
    if (o && !fb_table(f, o, &op->opt)) return tml_error(TML_ERR_FORMAT, "operator %d options: %s", i, f->bad);
    if (f->bad[0]) return tml_error(TML_ERR_FORMAT, "operator %d: %s", i, f->bad);
    return TML_OK;
}

/* Model.metadata entries tinyml wrote ("tinyml": META JSON, "tinyml_nodes": node names). */
static tml_status decode_metadata(fbr *f, const fbt *mt, size_t bufs, uint32_t nbufs, tfl_model *d)
{
    size_t md;
    uint32_t nm;
    fb_vec(f, mt, TFL_MODEL_METADATA, 4, &md, &nm);
    for (uint32_t i = 0; i < nm && i < 1024; i++) {
        fbt e;
        if (!fb_vec_table(f, md, i, &e)) break;
        const char *s;
        uint32_t n;
        fb_str(f, &e, TFL_METADATA_NAME, &s, &n);
        char **dst = NULL;
        if (n == 6 && memcmp(s, "tinyml", 6) == 0) dst = &d->meta_json;
        else if (n == 12 && memcmp(s, "tinyml_nodes", 12) == 0) dst = &d->meta_nodes;
        if (!dst || *dst) continue;
        const uint8_t *p;
        size_t len;
        tml_status st = buffer_bytes(f, bufs, nbufs, (uint32_t)fb_int(f, &e, TFL_METADATA_BUFFER, 4, 0, 0), &p, &len);
        if (st) return st;
        if (!p || len > ((size_t)1 << 26)) continue;
        *dst = malloc(len + 1);
        if (!*dst) return tml_error(TML_ERR_NOMEM, "out of memory");
        memcpy(*dst, p, len);
        (*dst)[len] = '\0';
    }
    return f->bad[0] ? tml_error(TML_ERR_FORMAT, "metadata: %s", f->bad) : TML_OK;
}

static tml_status decode(const void *buf, size_t len, tfl_model *d, tml_tflite_info *info)
{
    memset(d, 0, sizeof *d);
    fbr *f = &d->f;
    f->b = buf;
    f->len = len;
    if (len < 8) return tml_error(TML_ERR_FORMAT, "not a TFLite file: %zu bytes", len);
    if (len > TFL_MAX_FILE) return tml_error(TML_ERR_FORMAT, "file larger than 2 GiB");
    if (!tml_tflite_detect(buf, len)) return tml_error(TML_ERR_FORMAT, "not a TFLite file (no \"TFL3\" identifier at byte 4)");
    fbt mt;
    if (!fb_table(f, rd32(f->b), &mt)) return tml_error(TML_ERR_FORMAT, "root table: %s", f->bad);
    d->version = (uint32_t)fb_int(f, &mt, TFL_MODEL_VERSION, 4, 0, 0);
    if (d->version != 3)
        return tml_error(TML_ERR_UNSUPPORTED, "TFLite schema version %u (tinyml reads version 3)", d->version);
    size_t opcodes, subgraphs, bufs;
    uint32_t nopcodes, nsub, nbufs;
    fb_vec(f, &mt, TFL_MODEL_OPERATOR_CODES, 4, &opcodes, &nopcodes);
    fb_vec(f, &mt, TFL_MODEL_SUBGRAPHS, 4, &subgraphs, &nsub);
    fb_vec(f, &mt, TFL_MODEL_BUFFERS, 4, &bufs, &nbufs);
    const char *desc;
    uint32_t dn;
    fb_str(f, &mt, TFL_MODEL_DESCRIPTION, &desc, &dn);
    if (f->bad[0]) return tml_error(TML_ERR_FORMAT, "model: %s", f->bad);
    if (nopcodes > TFL_MAX_OPCODES || nbufs > TFL_MAX_BUFFERS) return tml_error(TML_ERR_FORMAT, "absurd table sizes");
    if (nsub < 1) return tml_error(TML_ERR_FORMAT, "the model has no subgraph");
    if (info) {
        info->version = d->version;
        snprintf(info->description, sizeof info->description, "%.*s", (int)(dn > 90 ? 90 : dn), desc);
        info->subgraphs = (int)nsub;
    }
    tml_status st = decode_metadata(f, &mt, bufs, nbufs, d);
    if (st) return st;

    fbt sg;
    if (!fb_vec_table(f, subgraphs, 0, &sg)) return tml_error(TML_ERR_FORMAT, "subgraph 0: %s", f->bad);
    size_t tens, ins, outs, ops;
    uint32_t ntens, nins, nouts, nops;
    fb_vec(f, &sg, TFL_SUBGRAPH_TENSORS, 4, &tens, &ntens);
    fb_vec(f, &sg, TFL_SUBGRAPH_INPUTS, 4, &ins, &nins);
    fb_vec(f, &sg, TFL_SUBGRAPH_OUTPUTS, 4, &outs, &nouts);
    fb_vec(f, &sg, TFL_SUBGRAPH_OPERATORS, 4, &ops, &nops);
    if (f->bad[0]) return tml_error(TML_ERR_FORMAT, "subgraph 0: %s", f->bad);
    if (ntens > TFL_MAX_TENSORS || nops > TFL_MAX_OPS) return tml_error(TML_ERR_FORMAT, "absurd subgraph sizes");
    if (nins != 1 || nouts != 1)
        return tml_error(TML_ERR_UNSUPPORTED, "the model has %u inputs and %u outputs (tinyml models have one of each)",
                         nins, nouts);
    d->in_t = (int32_t)rd32(f->b + ins);
    d->out_t = (int32_t)rd32(f->b + outs);
    if (d->in_t < 0 || d->in_t >= (int)ntens || d->out_t < 0 || d->out_t >= (int)ntens)
        return tml_error(TML_ERR_FORMAT, "subgraph input/output tensor out of range");
    d->t = calloc(ntens ? ntens : 1, sizeof *d->t);
    d->ops = calloc(nops ? nops : 1, sizeof *d->ops);
    if (!d->t || !d->ops) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < ntens; i++) {
        fbt tt;
        d->nt = (int)i + 1;
        if (!fb_vec_table(f, tens, i, &tt)) return tml_error(TML_ERR_FORMAT, "tensor %u: %s", i, f->bad);
        if ((st = decode_tensor(f, &tt, (int)i, bufs, nbufs, &d->t[i]))) return st;
    }
    for (uint32_t i = 0; i < nops; i++) {
        fbt ot;
        d->nops = (int)i + 1;
        if (!fb_vec_table(f, ops, i, &ot)) return tml_error(TML_ERR_FORMAT, "operator %u: %s", i, f->bad);
        if ((st = decode_op(f, &ot, (int)i, nopcodes, opcodes, &d->ops[i]))) return st;
        for (int k = 0; k < d->ops[i].n_in + d->ops[i].n_out; k++) {
            const int32_t ti = k < d->ops[i].n_in ? d->ops[i].in[k] : d->ops[i].out[k - d->ops[i].n_in];
            if (ti < -1 || ti >= (int)ntens || (ti == -1 && k >= d->ops[i].n_in))
                return tml_error(TML_ERR_FORMAT, "operator %u refers to tensor %d of %u", i, ti, ntens);
        }
    }
    if (info) {
        info->operators = (int)nops;
        info->tensors = (int)ntens;
    }
    return TML_OK;
}

/* ---- building the tinyml model ------------------------------------------------------------ */

typedef struct pending_pad {
    int src;    /* tensor the PAD read */
    int pad[4]; /* top, left, bottom, right */
    int op;     /* index of the PAD op */
} pending_pad;

typedef struct imp {
    tfl_model *d;
    tml_model *m;
    int *map;          /* (nt) tflite tensor -> tinyml tensor id, -1 */
    int *consumers;    /* (nt) operators reading each tensor (+1 for the graph output) */
    pending_pad *pad;  /* (nt) for PAD outputs merged into the next conv; src -1 otherwise */
    int int8;          /* the activations are int8 */
    int hybrid;
    int merged_pads;
    int op;            /* index of the op being imported (messages) */
} imp;

#define OPERR(st, ...)                                                                                         \
    tml_error_context(tml_error(st, __VA_ARGS__), "operator %d (%s)", im->op,                                 \
                      tml_tflite_op_name(im->d->ops[im->op].code) ? tml_tflite_op_name(im->d->ops[im->op].code) : "?")

/* Per-sample dims: dimension 0 is the batch, which must be 1. */
static tml_status sample_dims(imp *im, const tfl_tensor *t, int *ndim, int32_t *dims)
{
    if (t->ndim < 2) {
        if (t->ndim == 1 && t->shape[0] >= 1) {
            *ndim = 1;
            dims[0] = t->shape[0];
            return TML_OK;
        }
        return OPERR(TML_ERR_UNSUPPORTED, "tensor '%.60s' has rank %d", t->name, t->ndim);
    }
    if (t->shape[0] != 1)
        return OPERR(TML_ERR_UNSUPPORTED, "tensor '%.60s' has batch %d (tinyml imports batch-1 models)", t->name,
                     t->shape[0]);
    if (t->ndim - 1 > TML_MAX_DIMS)
        return OPERR(TML_ERR_UNSUPPORTED, "tensor '%.60s' has %d dimensions after the batch", t->name, t->ndim - 1);
    *ndim = t->ndim - 1;
    for (int i = 1; i < t->ndim; i++) {
        if (t->shape[i] < 1) return OPERR(TML_ERR_UNSUPPORTED, "tensor '%.60s' has a dynamic or empty shape", t->name);
        dims[i - 1] = t->shape[i];
    }
    return TML_OK;
}

/* A unique tensor name: the file's, or "t<index>", suffixed when taken. */
static tml_status unique_tensor_name(imp *im, const char *want, int ti, char *out, size_t cap)
{
    char base[1024];
    if (want && want[0]) snprintf(base, sizeof base, "%s", want);
    else snprintf(base, sizeof base, "t%d", ti);
    snprintf(out, cap, "%s", base);
    for (int k = 2; tml_model_find_tensor(im->m, out) >= 0; k++) {
        if (k > 100000) return tml_error(TML_ERR_INVALID, "too many tensors named '%.60s'", base);
        snprintf(out, cap, "%.1000s_%d", base, k);
    }
    return TML_OK;
}

static tml_status set_quant(imp *im, int id, const tfl_tensor *t, int axis_dim_offset)
{
    if (!t->nq) return TML_OK;
    tml_tensor *x = &im->m->tensors[id];
    int32_t *zp = malloc(sizeof(int32_t) * (size_t)t->nq);
    if (!zp) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->nq; i++) {
        if (t->zp[i] < INT32_MIN || t->zp[i] > INT32_MAX) {
            free(zp);
            return OPERR(TML_ERR_FORMAT, "tensor '%.60s': zero point %lld out of range", t->name, (long long)t->zp[i]);
        }
        if (!(t->scale[i] >= 0.0f) || !isfinite(t->scale[i])) {
            free(zp);
            return OPERR(TML_ERR_FORMAT, "tensor '%.60s': bad scale %g", t->name, (double)t->scale[i]);
        }
        zp[i] = (int32_t)t->zp[i];
    }
    int axis = -1;
    if (t->nq > 1) {
        axis = t->qdim - axis_dim_offset;
        if (t->qdim < 0 || t->qdim >= t->ndim || axis < 0 || axis >= x->ndim || x->dims[axis] != t->nq) {
            free(zp);
            return OPERR(TML_ERR_FORMAT, "tensor '%.60s': %d scales along dimension %d do not fit its shape", t->name,
                         t->nq, t->qdim);
        }
    }
    tml_status st = tml_tensor_set_quant(x, axis, t->nq, t->scale, zp);
    free(zp);
    return st;
}

/* Activation tensor for tflite tensor ti (created on first use). */
static tml_status new_act(imp *im, int ti, int *id)
{
    const tfl_tensor *t = &im->d->t[ti];
    if (t->type != TFL_FLOAT32 && t->type != TFL_INT8)
        return OPERR(TML_ERR_UNSUPPORTED, "tensor '%.60s' is %s (tinyml runs float32 and int8 models)", t->name,
                     type_name(t->type));
    int nd;
    int32_t dims[TML_MAX_DIMS];
    tml_status st = sample_dims(im, t, &nd, dims);
    if (st) return st;
    char name[1100];
    if ((st = unique_tensor_name(im, t->name, ti, name, sizeof name))) return st;
    int r = tml_model_add_tensor(im->m, name, t->type == TFL_INT8 ? TML_DTYPE_INT8 : TML_DTYPE_F32, TML_TENSOR_ACT,
                                 nd, dims, NULL);
    if (r < 0) return (tml_status)r;
    if (t->type == TFL_INT8) {
        if (t->nq != 1) return OPERR(TML_ERR_UNSUPPORTED, "int8 activation '%.60s' needs one scale (has %d)", t->name, t->nq);
        if ((st = set_quant(im, r, t, 1))) return st;
    }
    im->map[ti] = r;
    *id = r;
    return TML_OK;
}

/* Input activation ti of the current op (already computed). */
static tml_status act_in(imp *im, int ti, int *id)
{
    if (ti < 0) return OPERR(TML_ERR_FORMAT, "a required input is missing");
    const tfl_tensor *t = &im->d->t[ti];
    if (t->data || t->folded)
        return OPERR(TML_ERR_UNSUPPORTED, "input '%.60s' is a constant; tinyml needs an activation here", t->name);
    if (im->map[ti] < 0) return OPERR(TML_ERR_FORMAT, "reads tensor '%.60s' before any operator computes it", t->name);
    *id = im->map[ti];
    return TML_OK;
}

static float half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023;
    uint32_t u;
    if (exp == 0) {
        const float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (exp == 31) u = sign | 0x7F800000u | (man << 13);
    else u = sign | ((exp + 112) << 23) | (man << 13);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* A constant's values as float (float32, float16, or int8/int32 dequantized
 * with its scales along `qaxis` of its shape); *out malloc'd. */
static tml_status const_as_float(imp *im, const tfl_tensor *t, float **out)
{
    const int64_t n = shape_numel(t);
    *out = NULL;
    if (n < 0) return OPERR(TML_ERR_FORMAT, "constant '%.60s' has a bad shape", t->name);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!v) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (t->folded) {
        memcpy(v, t->folded, sizeof(float) * (size_t)n);
    } else if (t->type == TFL_FLOAT32) {
        memcpy(v, t->data, sizeof(float) * (size_t)n);
    } else if (t->type == TFL_FLOAT16) {
        for (int64_t i = 0; i < n; i++) v[i] = half_to_float(rd16(t->data + 2 * i));
    } else if (t->type == TFL_INT8 || t->type == TFL_INT32) {
        if (!t->nq) {
            free(v);
            return OPERR(TML_ERR_UNSUPPORTED, "constant '%.60s' is %s without a scale", t->name, type_name(t->type));
        }
        /* channel of element i along qdim: (i / inner) % dims[qdim] */
        int64_t inner = 1;
        int dq = t->nq > 1 ? t->qdim : -1;
        if (dq >= t->ndim || (dq >= 0 && t->shape[dq] != t->nq)) {
            free(v);
            return OPERR(TML_ERR_FORMAT, "constant '%.60s': scales do not fit its shape", t->name);
        }
        for (int k = dq + 1; dq >= 0 && k < t->ndim; k++) inner *= t->shape[k];
        for (int64_t i = 0; i < n; i++) {
            const int c = dq >= 0 ? (int)((i / inner) % t->nq) : 0;
            const int32_t q = t->type == TFL_INT8 ? (int8_t)t->data[i] : (int32_t)rd32(t->data + 4 * i);
            v[i] = t->scale[c] * (float)((int64_t)q - t->zp[c]);
        }
    } else {
        free(v);
        return OPERR(TML_ERR_UNSUPPORTED, "constant '%.60s' is %s", t->name, type_name(t->type));
    }
    *out = v;
    return TML_OK;
}

/* A weight / bias constant as a tinyml PARAM named `name`. In an int8 model
 * the values are kept as stored (int8 weights, int32 biases) with their
 * quantization; in a float model they become float (hybrid models'
 * int8 weights are dequantized). */
static tml_status const_param(imp *im, int ti, const char *name, tml_dtype want, int *id)
{
    if (ti < 0) {
        *id = -1;
        return TML_OK;
    }
    const tfl_tensor *t = &im->d->t[ti];
    if (!t->data && !t->folded)
        return OPERR(TML_ERR_UNSUPPORTED, "weights '%.60s' are not constant (computed at run time)", t->name);
    int32_t dims[TML_MAX_DIMS];
    if (t->ndim < 1 || t->ndim > TML_MAX_DIMS) return OPERR(TML_ERR_UNSUPPORTED, "constant '%.60s' has rank %d", t->name, t->ndim);
    for (int i = 0; i < t->ndim; i++) dims[i] = t->shape[i];
    char nm[1100];
    tml_status st = unique_tensor_name(im, t->name[0] ? t->name : name, ti, nm, sizeof nm);
    if (st) return st;
    int r;
    if (want == TML_DTYPE_F32) {
        float *v;
        if ((st = const_as_float(im, t, &v))) return st;
        if (t->type == TFL_INT8) im->hybrid = 1;
        r = tml_model_add_tensor(im->m, nm, TML_DTYPE_F32, TML_TENSOR_PARAM, t->ndim, dims, v);
        free(v);
        if (r < 0) return (tml_status)r;
    } else {
        const int tt = want == TML_DTYPE_INT8 ? TFL_INT8 : TFL_INT32;
        if (t->type != tt || !t->data)
            return OPERR(TML_ERR_UNSUPPORTED, "constant '%.60s' is %s, an int8 model needs %s here", t->name,
                         type_name(t->type), type_name(tt));
        if (want == TML_DTYPE_INT8 && t->nq < 1)
            return OPERR(TML_ERR_FORMAT, "int8 weights '%.60s' have no scale", t->name);
        if (want == TML_DTYPE_INT32) {
            /* int32 from possibly unaligned little-endian bytes */
            const int64_t n = shape_numel(t);
            if (n < 0) return OPERR(TML_ERR_FORMAT, "constant '%.60s' has a bad shape", t->name);
            int32_t *v = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
            if (!v) return tml_error(TML_ERR_NOMEM, "out of memory");
            for (int64_t i = 0; i < n; i++) v[i] = (int32_t)rd32(t->data + 4 * i);
            r = tml_model_add_tensor(im->m, nm, TML_DTYPE_INT32, TML_TENSOR_PARAM, t->ndim, dims, v);
            free(v);
        } else {
            r = tml_model_add_tensor(im->m, nm, TML_DTYPE_INT8, TML_TENSOR_PARAM, t->ndim, dims, t->data);
        }
        if (r < 0) return (tml_status)r;
        /* int32 biases carry no quantization in tinyml: their scale is
         * input scale * weight scale by definition (the exporter writes it) */
        if (want == TML_DTYPE_INT8 && (st = set_quant(im, r, t, 0))) return st;
    }
    *id = r;
    return TML_OK;
}

static tml_status fused_act(imp *im, int a, tml_act *out)
{
    switch (a) {
    case TFL_ACT_NONE: *out = TML_ACT_NONE; return TML_OK;
    case TFL_ACT_RELU: *out = TML_ACT_RELU; return TML_OK;
    case TFL_ACT_RELU6: *out = TML_ACT_RELU6; return TML_OK;
    default:
        return OPERR(TML_ERR_UNSUPPORTED, "fused activation %s is not supported (RELU and RELU6 are)",
                     a == TFL_ACT_RELU_N1_TO_1 ? "RELU_N1_TO_1" : a == TFL_ACT_TANH ? "TANH" : "SIGN_BIT");
    }
}

/* A readable node name from the output tensor's TFLite name
 * ("functional_1/activation/Relu;functional_1/conv2d/BiasAdd;..."): the
 * layer (the path component before the TF op) of the part naming this op
 * kind's TF op, else of the first part; "<op>_<index>" without a name. */
static void node_name(imp *im, const char *full, const char *kind_ops, char *out, size_t cap)
{
    char best[128] = "";
    const char *p = full;
    int pick = 0;
    while (*p && !pick) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char part[256];
        snprintf(part, sizeof part, "%.*s", (int)(len < 255 ? len : 255), p);
        char *last = strrchr(part, '/');
        char layer[128] = "";
        if (last) {
            *last = '\0';
            const char *prev = strrchr(part, '/');
            snprintf(layer, sizeof layer, "%.100s", prev ? prev + 1 : part);
            const char *op = last + 1;
            /* the part whose TF op belongs to this kind of layer (kind_ops is
             * a comma-separated list) */
            const size_t ol = strlen(op);
            for (const char *k = kind_ops; *k && ol;) {
                const char *c = strchr(k, ',');
                const size_t kl = c ? (size_t)(c - k) : strlen(k);
                if (kl == ol && memcmp(k, op, ol) == 0) pick = 1;
                k += kl + (c ? 1 : 0);
            }
        } else {
            snprintf(layer, sizeof layer, "%.100s", part);
        }
        if ((pick || !best[0]) && layer[0]) snprintf(best, sizeof best, "%s", layer);
        p = e ? e + 1 : p + len;
    }
    if (!best[0]) {
        const char *on = tml_tflite_op_name(im->d->ops[im->op].code);
        snprintf(best, sizeof best, "%s_%d", on ? on : "op", im->op);
        for (char *c = best; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    }
    snprintf(out, cap, "%s", best);
    for (int k = 2; tml_model_find_node(im->m, out) >= 0; k++) snprintf(out, cap, "%.100s_%d", best, k);
}

static tml_status add_node(imp *im, tml_op op, const char *kind_ops, int n_in, const int *in, int out, int *idx)
{
    char name[160];
    node_name(im, im->m->tensors[out].name, kind_ops, name, sizeof name);
    int r = tml_model_add_node(im->m, name, op, n_in, in, out);
    if (r < 0) return (tml_status)r;
    *idx = r;
    return TML_OK;
}

/* Output tinyml tensor for the op's output 0. When tinyml's op gives a
 * different per-sample shape than TFLite's (a dense layer's (O) for TFLite's
 * [1, 1, O] with keep_num_dims, a global pool's (C) for MEAN's [1, 1, 1, C]),
 * the op writes a hidden tensor and a reshape produces the TFLite tensor;
 * `natural` holds tinyml's shape (ndim 0 = same as TFLite's). */
static tml_status op_output(imp *im, int ti, int nat_ndim, const int32_t *nat, int *op_out, int *final_out)
{
    tml_status st = new_act(im, ti, final_out);
    if (st) return st;
    const tml_tensor *y = &im->m->tensors[*final_out];
    if (nat_ndim == 0 || (y->ndim == nat_ndim && memcmp(y->dims, nat, sizeof(int32_t) * (size_t)nat_ndim) == 0)) {
        *op_out = *final_out;
        return TML_OK;
    }
    char name[1100];
    snprintf(name, sizeof name, "%.1000s.%s", y->name, "raw");
    char uname[1100];
    if ((st = unique_tensor_name(im, name, ti, uname, sizeof uname))) return st;
    int r = tml_model_add_tensor(im->m, uname, y->dtype, TML_TENSOR_ACT, nat_ndim, nat, NULL);
    if (r < 0) return (tml_status)r;
    y = &im->m->tensors[*final_out];
    if (y->q.n && (st = tml_tensor_set_quant(&im->m->tensors[r], -1, 1, y->q.scale, y->q.zero_point))) return st;
    *op_out = r;
    return TML_OK;
}

static tml_status reshape_to(imp *im, int from, int to)
{
    int idx;
    tml_status st = add_node(im, TML_OP_RESHAPE, "Reshape", 1, &from, to, &idx);
    return st;
}

static int i32_opt(fbr *f, const tfl_op *op, int id, int def) { return (int)fb_int(f, &op->opt, id, 4, 1, def); }
static int u8_opt(fbr *f, const tfl_op *op, int id, int def) { return (int)fb_int(f, &op->opt, id, 1, 1, def); }

/* SAME / VALID padding of a window along one axis of `in` pixels, as TFLite
 * computes it: SAME gives out = ceil(in / s) and puts the odd pixel at the end. */
static void tfl_padding(int padding, int in, int k, int s, int dil, int *before, int *after)
{
    *before = *after = 0;
    if (padding != TFL_PAD_SAME) return;
    /* in 64 bits: the numbers come from the file (absurd pads are refused
     * when the graph is finalized) */
    const int64_t eff = ((int64_t)k - 1) * dil + 1;
    const int64_t out = ((int64_t)in + s - 1) / s;
    int64_t total = (out - 1) * s + eff - in;
    if (total < 0) total = 0;
    if (total > 1 << 20) total = 1 << 20;
    *before = (int)(total / 2);
    *after = (int)(total - total / 2);
}

static tml_status check_options(imp *im, const tfl_op *op, int want)
{
    if (op->opt_type != want || !op->opt.tsize)
        return OPERR(TML_ERR_FORMAT, "options of type %d, expected %d", op->opt_type, want);
    return TML_OK;
}

/* conv and depthwise: input (maybe through a merged PAD), weights, bias, window */
static tml_status imp_conv(imp *im, const tfl_op *op)
{
    fbr *f = &im->d->f;
    const int dw = op->code == TFL_DEPTHWISE_CONV_2D;
    tml_status st = check_options(im, op, dw ? TFL_OPT_DEPTHWISE_CONV2D : TFL_OPT_CONV2D);
    if (st) return st;
    if (op->n_in < 2 || op->n_out != 1) return OPERR(TML_ERR_FORMAT, "needs input, weights (and bias) and one output");
    int xin = op->in[0], extra[4] = {0, 0, 0, 0};
    if (xin >= 0 && im->pad[xin].src >= 0) { /* PAD merged into this conv's padding */
        memcpy(extra, im->pad[xin].pad, sizeof extra);
        xin = im->pad[xin].src;
        im->merged_pads++;
    }
    int x, w, b, y;
    if ((st = act_in(im, xin, &x))) return st;
    const tml_tensor *xt = &im->m->tensors[x];
    if (xt->ndim != 3) return OPERR(TML_ERR_UNSUPPORTED, "input must be an image (batch, H, W, C)");
    /* (tensor pointers move when tensors are added: keep the numbers) */
    const int xh = xt->dims[0], xw = xt->dims[1], c = xt->dims[2];
    const tml_dtype wdt = im->int8 ? TML_DTYPE_INT8 : TML_DTYPE_F32, bdt = im->int8 ? TML_DTYPE_INT32 : TML_DTYPE_F32;
    if (op->in[1] < 0) return OPERR(TML_ERR_FORMAT, "the weights are missing (input 1 is -1)");
    const tfl_tensor *wt = &im->d->t[op->in[1]];
    if (wt->ndim != 4) return OPERR(TML_ERR_FORMAT, "weights '%.60s' must have 4 dimensions", wt->name);
    if ((st = const_param(im, op->in[1], "w", wdt, &w))) return st;
    if ((st = const_param(im, op->n_in > 2 ? op->in[2] : -1, "b", bdt, &b))) return st;
    const int padding = u8_opt(f, op, dw ? TFL_DW_PADDING : TFL_CONV_PADDING, 0);
    const int sw = i32_opt(f, op, dw ? TFL_DW_STRIDE_W : TFL_CONV_STRIDE_W, 1);
    const int sh = i32_opt(f, op, dw ? TFL_DW_STRIDE_H : TFL_CONV_STRIDE_H, 1);
    const int dlw = i32_opt(f, op, dw ? TFL_DW_DILATION_W : TFL_CONV_DILATION_W, 1);
    const int dlh = i32_opt(f, op, dw ? TFL_DW_DILATION_H : TFL_CONV_DILATION_H, 1);
    tml_act act;
    if ((st = fused_act(im, u8_opt(f, op, dw ? TFL_DW_ACT : TFL_CONV_ACT, 0), &act))) return st;
    if (sw < 1 || sh < 1 || dlw < 1 || dlh < 1) return OPERR(TML_ERR_FORMAT, "bad stride or dilation");
    if (padding != TFL_PAD_SAME && padding != TFL_PAD_VALID) return OPERR(TML_ERR_FORMAT, "bad padding %d", padding);
    const int H = xh + extra[0] + extra[2], W = xw + extra[1] + extra[3];
    int pt, pb, pl, pr;
    tfl_padding(padding, H, wt->shape[1], sh, dlh, &pt, &pb);
    tfl_padding(padding, W, wt->shape[2], sw, dlw, &pl, &pr);
    if ((st = op_output(im, op->out[0], 0, NULL, &y, &y))) return st;
    int in[3] = {x, w, b}, idx;
    if ((st = add_node(im, dw ? TML_OP_DEPTHWISE_CONV2D : TML_OP_CONV2D,
                       dw ? "depthwise,BiasAdd,Conv2D" : "Conv2D,BiasAdd,convolution", 3, in, y, &idx)))
        return st;
    tml_node *n = &im->m->nodes[idx];
    n->sh = sh;
    n->sw = sw;
    n->dh = dlh;
    n->dw = dlw;
    n->pad[0] = pt + extra[0];
    n->pad[1] = pl + extra[1];
    n->pad[2] = pb + extra[2];
    n->pad[3] = pr + extra[3];
    n->act = act;
    if (dw) {
        if (c < 1 || wt->shape[3] % c) return OPERR(TML_ERR_SHAPE, "depthwise weights do not fit %d input channels", c);
        n->depth_mult = wt->shape[3] / c;
    } else {
        if (wt->shape[3] < 1 || c % wt->shape[3]) return OPERR(TML_ERR_SHAPE, "weights do not fit %d input channels", c);
        n->groups = c / wt->shape[3];
    }
    return TML_OK;
}

static tml_status imp_fc(imp *im, const tfl_op *op)
{
    fbr *f = &im->d->f;
    tml_status st = check_options(im, op, TFL_OPT_FULLY_CONNECTED);
    if (st) return st;
    if (op->n_in < 2 || op->n_out != 1) return OPERR(TML_ERR_FORMAT, "needs input, weights (and bias) and one output");
    if (u8_opt(f, op, TFL_FC_WEIGHTS_FORMAT, 0) != 0)
        return OPERR(TML_ERR_UNSUPPORTED, "shuffled weights format is not supported");
    int x, w, b, y, yo;
    if ((st = act_in(im, op->in[0], &x))) return st;
    if (op->in[1] < 0) return OPERR(TML_ERR_FORMAT, "the weights are missing (input 1 is -1)");
    const tfl_tensor *wt = &im->d->t[op->in[1]];
    if (wt->ndim != 2) return OPERR(TML_ERR_FORMAT, "weights '%.60s' must be (out, in)", wt->name);
    if (tml_tensor_numel(&im->m->tensors[x]) != wt->shape[1])
        return OPERR(TML_ERR_UNSUPPORTED, "input of %lld values for weights of %d inputs (batched inputs are not supported)",
                     (long long)tml_tensor_numel(&im->m->tensors[x]), wt->shape[1]);
    if ((st = const_param(im, op->in[1], "w", im->int8 ? TML_DTYPE_INT8 : TML_DTYPE_F32, &w))) return st;
    if ((st = const_param(im, op->n_in > 2 ? op->in[2] : -1, "b", im->int8 ? TML_DTYPE_INT32 : TML_DTYPE_F32, &b)))
        return st;
    tml_act act;
    if ((st = fused_act(im, u8_opt(f, op, TFL_FC_ACT, 0), &act))) return st;
    const int32_t nat[1] = {wt->shape[0]};
    if ((st = op_output(im, op->out[0], 1, nat, &yo, &y))) return st;
    int in[3] = {x, w, b}, idx;
    if ((st = add_node(im, TML_OP_DENSE, "MatMul,BiasAdd,Tensordot,MatMul_1", 3, in, yo, &idx))) return st;
    im->m->nodes[idx].act = act;
    return yo != y ? reshape_to(im, yo, y) : TML_OK;
}

static tml_status imp_pool(imp *im, const tfl_op *op)
{
    fbr *f = &im->d->f;
    tml_status st = check_options(im, op, TFL_OPT_POOL2D);
    if (st) return st;
    if (op->n_in != 1 || op->n_out != 1) return OPERR(TML_ERR_FORMAT, "needs one input and one output");
    int x, y;
    if ((st = act_in(im, op->in[0], &x))) return st;
    const tml_tensor *xt = &im->m->tensors[x];
    if (xt->ndim != 3) return OPERR(TML_ERR_UNSUPPORTED, "input must be an image (batch, H, W, C)");
    const int padding = u8_opt(f, op, TFL_POOL_PADDING, 0);
    const int sw = i32_opt(f, op, TFL_POOL_STRIDE_W, 1), sh = i32_opt(f, op, TFL_POOL_STRIDE_H, 1);
    const int kw = i32_opt(f, op, TFL_POOL_FILTER_W, 1), kh = i32_opt(f, op, TFL_POOL_FILTER_H, 1);
    tml_act act;
    if ((st = fused_act(im, u8_opt(f, op, TFL_POOL_ACT, 0), &act))) return st;
    if (sw < 1 || sh < 1 || kw < 1 || kh < 1) return OPERR(TML_ERR_FORMAT, "bad window or stride");
    int pt, pb, pl, pr;
    tfl_padding(padding, xt->dims[0], kh, sh, 1, &pt, &pb);
    tfl_padding(padding, xt->dims[1], kw, sw, 1, &pl, &pr);
    int yo;
    if ((st = op_output(im, op->out[0], 0, NULL, &y, &y))) return st;
    yo = y;
    if (act != TML_ACT_NONE) { /* the fused clamp becomes a ReLU node after the pool */
        char name[1100], uname[1100];
        snprintf(name, sizeof name, "%.1000s.pool", im->m->tensors[y].name);
        if ((st = unique_tensor_name(im, name, op->out[0], uname, sizeof uname))) return st;
        const tml_tensor *yt = &im->m->tensors[y];
        int r = tml_model_add_tensor(im->m, uname, yt->dtype, TML_TENSOR_ACT, yt->ndim, yt->dims, NULL);
        if (r < 0) return (tml_status)r;
        yt = &im->m->tensors[y];
        if (yt->q.n && (st = tml_tensor_set_quant(&im->m->tensors[r], -1, 1, yt->q.scale, yt->q.zero_point))) return st;
        yo = r;
    }
    int idx;
    const int avg = op->code == TFL_AVERAGE_POOL_2D;
    if ((st = add_node(im, avg ? TML_OP_AVGPOOL : TML_OP_MAXPOOL, avg ? "AvgPool" : "MaxPool", 1, &x, yo, &idx)))
        return st;
    tml_node *n = &im->m->nodes[idx];
    n->kh = kh;
    n->kw = kw;
    n->sh = sh;
    n->sw = sw;
    n->pad[0] = pt;
    n->pad[1] = pl;
    n->pad[2] = pb;
    n->pad[3] = pr;
    if (yo != y) {
        int r = yo;
        if ((st = add_node(im, act == TML_ACT_RELU ? TML_OP_RELU : TML_OP_RELU6, "Relu,Relu6", 1, &r, y, &idx))) return st;
    }
    return TML_OK;
}

static tml_status imp_add(imp *im, const tfl_op *op)
{
    tml_status st = check_options(im, op, TFL_OPT_ADD);
    if (st) return st;
    if (op->n_in != 2 || op->n_out != 1) return OPERR(TML_ERR_FORMAT, "needs two inputs and one output");
    int a, b, y;
    if ((st = act_in(im, op->in[0], &a)) || (st = act_in(im, op->in[1], &b))) return st;
    const tml_tensor *at = &im->m->tensors[a], *bt = &im->m->tensors[b];
    if (at->ndim != bt->ndim || memcmp(at->dims, bt->dims, sizeof(int32_t) * (size_t)at->ndim) != 0)
        return OPERR(TML_ERR_UNSUPPORTED, "inputs of different shapes (broadcasting is not supported)");
    tml_act act;
    if ((st = fused_act(im, u8_opt(&im->d->f, op, TFL_ADD_ACT, 0), &act))) return st;
    if ((st = op_output(im, op->out[0], 0, NULL, &y, &y))) return st;
    int in[2] = {a, b}, idx;
    if ((st = add_node(im, TML_OP_ADD, "add,Add,AddV2", 2, in, y, &idx))) return st;
    im->m->nodes[idx].act = act;
    return TML_OK;
}

static tml_status imp_reshape(imp *im, const tfl_op *op)
{
    if (op->n_in < 1 || op->n_out != 1) return OPERR(TML_ERR_FORMAT, "needs an input and one output");
    int x, y;
    tml_status st = act_in(im, op->in[0], &x);
    if (st || (st = op_output(im, op->out[0], 0, NULL, &y, &y))) return st;
    if (tml_tensor_numel(&im->m->tensors[x]) != tml_tensor_numel(&im->m->tensors[y]))
        return OPERR(TML_ERR_SHAPE, "reshape changes the number of values");
    return reshape_to(im, x, y);
}

static tml_status imp_softmax(imp *im, const tfl_op *op)
{
    tml_status st = check_options(im, op, TFL_OPT_SOFTMAX);
    if (st) return st;
    if (op->n_in != 1 || op->n_out != 1) return OPERR(TML_ERR_FORMAT, "needs one input and one output");
    const float beta = fb_f32(&im->d->f, &op->opt, TFL_SOFTMAX_BETA, 0.0f);
    if (!(beta > 0.0f) || !isfinite(beta)) return OPERR(TML_ERR_UNSUPPORTED, "softmax beta %g", (double)beta);
    if (!im->int8 && beta != 1.0f) return OPERR(TML_ERR_UNSUPPORTED, "float softmax with beta %g (only 1)", (double)beta);
    int x, y, idx;
    if ((st = act_in(im, op->in[0], &x)) || (st = op_output(im, op->out[0], 0, NULL, &y, &y))) return st;
    if ((st = add_node(im, TML_OP_SOFTMAX, "Softmax", 1, &x, y, &idx))) return st;
    im->m->nodes[idx].beta = beta;
    return TML_OK;
}

/* Reads a small int32 / int64 constant (axes, paddings) into v. */
static tml_status small_ints(imp *im, int ti, int64_t *v, int cap, int *n)
{
    if (ti < 0) return OPERR(TML_ERR_FORMAT, "missing constant input");
    const tfl_tensor *t = &im->d->t[ti];
    if (!t->data || (t->type != TFL_INT32 && t->type != TFL_INT64))
        return OPERR(TML_ERR_UNSUPPORTED, "'%.60s' must be a constant int32 tensor", t->name);
    const int64_t cnt = shape_numel(t);
    if (cnt < 0 || cnt > cap) return OPERR(TML_ERR_UNSUPPORTED, "'%.60s' has %lld values", t->name, (long long)cnt);
    for (int64_t i = 0; i < cnt; i++)
        v[i] = t->type == TFL_INT32 ? (int64_t)(int32_t)rd32(t->data + 4 * i) : (int64_t)rd64(t->data + 8 * i);
    *n = (int)cnt;
    return TML_OK;
}

static tml_status imp_mean(imp *im, const tfl_op *op)
{
    if (op->n_in != 2 || op->n_out != 1) return OPERR(TML_ERR_FORMAT, "needs an input, the axes and one output");
    int x, y, yo, n;
    int64_t ax[8];
    tml_status st = act_in(im, op->in[0], &x);
    if (st || (st = small_ints(im, op->in[1], ax, 8, &n))) return st;
    const tml_tensor *xt = &im->m->tensors[x];
    int h = 0, w = 0;
    for (int i = 0; i < n; i++) {
        const int64_t a = ax[i] < 0 ? ax[i] + 4 : ax[i];
        if (a == 1) h = 1;
        else if (a == 2) w = 1;
        else h = w = -100;
    }
    if (xt->ndim != 3 || h != 1 || w != 1)
        return OPERR(TML_ERR_UNSUPPORTED, "MEAN is supported over the height and width of an image only");
    const int32_t nat[1] = {xt->dims[2]};
    if ((st = op_output(im, op->out[0], 1, nat, &yo, &y))) return st;
    int idx;
    if ((st = add_node(im, TML_OP_GLOBAL_AVGPOOL, "Mean,mean", 1, &x, yo, &idx))) return st;
    return yo != y ? reshape_to(im, yo, y) : TML_OK;
}

/* PAD / PADV2: remembered, then merged into the padding of the convolution
 * that reads it (the only form tinyml has: a conv treats out-of-image taps as
 * the input's zero point, which is exactly the value PAD writes). */
static tml_status imp_pad(imp *im, const tfl_op *op, int k)
{
    if (op->n_in < 2 || op->n_out != 1) return OPERR(TML_ERR_FORMAT, "needs an input, the paddings and one output");
    int x, n;
    int64_t p[16];
    tml_status st = act_in(im, op->in[0], &x);
    if (st || (st = small_ints(im, op->in[1], p, 16, &n))) return st;
    const tfl_tensor *in = &im->d->t[op->in[0]], *out = &im->d->t[op->out[0]];
    if (n != 8 || im->m->tensors[x].ndim != 3)
        return OPERR(TML_ERR_UNSUPPORTED, "PAD is supported on images (4-D tensors) only");
    if (p[0] || p[1] || p[6] || p[7]) return OPERR(TML_ERR_UNSUPPORTED, "PAD of the batch or channel dimension");
    for (int i = 2; i < 6; i++)
        if (p[i] < 0 || p[i] > 1024) return OPERR(TML_ERR_UNSUPPORTED, "padding %lld", (long long)p[i]);
    if (in->type != out->type || in->nq != out->nq || (in->nq && (in->scale[0] != out->scale[0] || in->zp[0] != out->zp[0])))
        return OPERR(TML_ERR_UNSUPPORTED, "PAD changes the quantization");
    if (op->code == TFL_PADV2 && op->n_in > 2 && op->in[2] >= 0) {
        const tfl_tensor *cv = &im->d->t[op->in[2]];
        int ok = cv->data && shape_numel(cv) == 1;
        if (ok && cv->type == TFL_INT8) ok = out->nq && (int8_t)cv->data[0] == out->zp[0];
        else if (ok && cv->type == TFL_FLOAT32) {
            float v;
            memcpy(&v, cv->data, 4);
            ok = v == 0.0f;
        } else ok = 0;
        if (!ok) return OPERR(TML_ERR_UNSUPPORTED, "PADV2 with a value other than zero (the zero point)");
    }
    /* the only reader must be a convolution, as its input */
    int reader = -1, readers = 0;
    for (int j = k + 1; j < im->d->nops; j++)
        for (int q = 0; q < im->d->ops[j].n_in; q++)
            if (im->d->ops[j].in[q] == op->out[0]) {
                readers++;
                reader = (q == 0 && (im->d->ops[j].code == TFL_CONV_2D || im->d->ops[j].code == TFL_DEPTHWISE_CONV_2D)) ? j : -2;
            }
    if (readers != 1 || reader < 0 || op->out[0] == im->d->out_t)
        return OPERR(TML_ERR_UNSUPPORTED,
                     "tinyml has no PAD op: it merges PAD into the padding of the one convolution that reads it, and "
                     "this PAD feeds something else");
    pending_pad *pp = &im->pad[op->out[0]];
    pp->src = op->in[0];
    pp->pad[0] = (int)p[2];
    pp->pad[2] = (int)p[3];
    pp->pad[1] = (int)p[4];
    pp->pad[3] = (int)p[5];
    pp->op = k;
    return TML_OK;
}

static tml_status imp_relu(imp *im, const tfl_op *op)
{
    if (op->n_in != 1 || op->n_out != 1) return OPERR(TML_ERR_FORMAT, "needs one input and one output");
    int x, y, idx;
    tml_status st = act_in(im, op->in[0], &x);
    if (st || (st = op_output(im, op->out[0], 0, NULL, &y, &y))) return st;
    const tml_tensor *xt = &im->m->tensors[x], *yt = &im->m->tensors[y];
    if (xt->q.n && (yt->q.scale[0] != xt->q.scale[0] || yt->q.zero_point[0] != xt->q.zero_point[0]))
        return OPERR(TML_ERR_UNSUPPORTED, "a standalone RELU that requantizes (input and output scales differ)");
    return add_node(im, op->code == TFL_RELU ? TML_OP_RELU : TML_OP_RELU6, "Relu,Relu6", 1, &x, y, &idx);
}

/* DEQUANTIZE of a constant (float16 or int8 weights) is evaluated now. */
static tml_status imp_dequantize_const(imp *im, const tfl_op *op)
{
    tfl_tensor *in = &im->d->t[op->in[0]], *out = &im->d->t[op->out[0]];
    if (out->type != TFL_FLOAT32 || shape_numel(in) != shape_numel(out) || shape_numel(out) < 0)
        return OPERR(TML_ERR_UNSUPPORTED, "DEQUANTIZE of a constant to %s", type_name(out->type));
    free(out->folded);
    out->folded = NULL;
    return const_as_float(im, in, &out->folded);
}

static tml_status import_op(imp *im, int k)
{
    const tfl_op *op = &im->d->ops[k];
    im->op = k;
    for (int i = 0; i < op->n_out; i++)
        if (i > 0 || op->n_out != 1) return OPERR(TML_ERR_UNSUPPORTED, "%d outputs", op->n_out);
    switch (op->code) {
    case TFL_CONV_2D:
    case TFL_DEPTHWISE_CONV_2D: return imp_conv(im, op);
    case TFL_FULLY_CONNECTED: return imp_fc(im, op);
    case TFL_AVERAGE_POOL_2D:
    case TFL_MAX_POOL_2D: return imp_pool(im, op);
    case TFL_ADD: return imp_add(im, op);
    case TFL_RESHAPE: return imp_reshape(im, op);
    case TFL_SOFTMAX: return imp_softmax(im, op);
    case TFL_MEAN: return imp_mean(im, op);
    case TFL_PAD:
    case TFL_PADV2: return imp_pad(im, op, k);
    case TFL_RELU:
    case TFL_RELU6: return imp_relu(im, op);
    case TFL_DEQUANTIZE:
        if (op->n_in == 1 && op->in[0] >= 0 && (im->d->t[op->in[0]].data || im->d->t[op->in[0]].folded))
            return imp_dequantize_const(im, op);
        return OPERR(TML_ERR_UNSUPPORTED, "DEQUANTIZE inside the model (tinyml supports it at the model's output)");
    case TFL_QUANTIZE:
        return OPERR(TML_ERR_UNSUPPORTED, "QUANTIZE inside the model (a requantization; tinyml supports QUANTIZE "
                                          "only at the model's input)");
    default: break;
    }
    const char *name = tml_tflite_op_name(op->code);
    if (name) return OPERR(TML_ERR_UNSUPPORTED, "op %s is not supported (docs/tflite.md lists the supported ops)", name);
    return tml_error(TML_ERR_UNSUPPORTED, "operator %d: unknown builtin op code %d", k, op->code);
}

/* The subgraph's float input quantized by its first op (and its output
 * dequantized by its last): the model is int8 with a float boundary. */
static int boundary_op(const tfl_model *d, int code, int want_in, int want_out)
{
    for (int k = 0; k < d->nops; k++) {
        const tfl_op *op = &d->ops[k];
        /* in[0] may be -1 (an omitted optional input) in a hostile file */
        if (op->code == code && op->n_in == 1 && op->n_out == 1 && op->in[0] >= 0 &&
            (want_in < 0 || op->in[0] == want_in) && (want_out < 0 || op->out[0] == want_out))
            return k;
    }
    return -1;
}

static tml_status check_shapes(imp *im)
{
    for (int ti = 0; ti < im->d->nt; ti++) {
        const int id = im->map[ti];
        if (id < 0) continue;
        const tfl_tensor *t = &im->d->t[ti];
        const tml_tensor *x = &im->m->tensors[id];
        int nd;
        int32_t dims[TML_MAX_DIMS];
        im->op = 0;
        if (sample_dims(im, t, &nd, dims)) continue;
        if (nd != x->ndim || memcmp(dims, x->dims, sizeof(int32_t) * (size_t)nd) != 0) {
            char a[64] = "", b[64] = "";
            for (int i = 0; i < nd; i++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%d", i ? "x" : "", dims[i]);
            for (int i = 0; i < x->ndim; i++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%d", i ? "x" : "", x->dims[i]);
            return tml_error(TML_ERR_UNSUPPORTED, "tensor '%.60s': TFLite gives shape %s, tinyml computes %s", t->name, a, b);
        }
    }
    return TML_OK;
}

/* Names and metadata a tinyml export stored: the node names (when the graph
 * has as many nodes) and the META fields. */
static tml_status restore_tinyml(imp *im, tml_tflite_info *info)
{
    tfl_model *d = im->d;
    if (d->meta_json) {
        tml_status st = tml_meta_from_json(&im->m->meta, (const uint8_t *)d->meta_json, strlen(d->meta_json));
        /* as the .tmf reader does: labels, classes and preprocessing must fit
         * the graph, else the model written from this one is refused later */
        if (!st) st = tml_model_check_meta(im->m);
        if (st) return tml_error_context(st, "tinyml metadata");
        if (info) info->from_tinyml = 1;
    }
    if (d->meta_nodes) {
        cJSON *a = cJSON_Parse(d->meta_nodes);
        if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == im->m->n_nodes) {
            int i = 0, ok = 1;
            const cJSON *e;
            cJSON_ArrayForEach(e, a) ok &= cJSON_IsString(e) && e->valuestring[0] != '\0';
            for (int j = 0; ok && j < im->m->n_nodes; j++)
                for (int k2 = j + 1; ok && k2 < im->m->n_nodes; k2++)
                    ok = strcmp(cJSON_GetArrayItem(a, j)->valuestring, cJSON_GetArrayItem(a, k2)->valuestring) != 0;
            cJSON_ArrayForEach(e, a)
            {
                if (!ok) break;
                char *nm = tml_strdup(e->valuestring);
                if (!nm) {
                    cJSON_Delete(a);
                    return tml_error(TML_ERR_NOMEM, "out of memory");
                }
                free(im->m->nodes[i].name);
                im->m->nodes[i++].name = nm;
            }
        }
        cJSON_Delete(a);
    }
    return TML_OK;
}

static tml_status build(tfl_model *d, tml_model *m, tml_tflite_info *info)
{
    imp im0, *im = &im0;
    memset(im, 0, sizeof *im);
    im->d = d;
    im->m = m;
    im->map = malloc(sizeof(int) * (size_t)(d->nt ? d->nt : 1));
    im->pad = malloc(sizeof(pending_pad) * (size_t)(d->nt ? d->nt : 1));
    tml_status st = TML_OK;
    if (!im->map || !im->pad) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < d->nt; i++) {
        im->map[i] = -1;
        im->pad[i].src = -1;
    }
    /* the kind of model: int8 activations, or float (maybe hybrid) */
    for (int k = 0; k < d->nops; k++)
        for (int j = 0; j < d->ops[k].n_out; j++)
            if (d->t[d->ops[k].out[j]].type == TFL_INT8 && !d->t[d->ops[k].out[j]].data) im->int8 = 1;
    if (d->t[d->in_t].type == TFL_INT8) im->int8 = 1;

    int skip_in = -1, skip_out = -1, in_t = d->in_t, out_t = d->out_t;
    const int fin = d->t[d->in_t].type == TFL_FLOAT32, fout = d->t[d->out_t].type == TFL_FLOAT32;
    if (im->int8 && (fin || fout)) {
        skip_in = fin ? boundary_op(d, TFL_QUANTIZE, d->in_t, -1) : -1;
        skip_out = fout ? boundary_op(d, TFL_DEQUANTIZE, -1, d->out_t) : -1;
        if ((fin && skip_in < 0) || (fout && skip_out < 0) || fin != fout) {
            st = tml_error(TML_ERR_UNSUPPORTED, "an int8 model with a %s input and a %s output: tinyml needs both ends "
                                                "int8, or both float with QUANTIZE / DEQUANTIZE at the ends",
                           fin ? "float" : "int8", fout ? "float" : "int8");
            goto out;
        }
        if (fin) {
            in_t = d->ops[skip_in].out[0];
            out_t = d->ops[skip_out].in[0];
            m->meta.float_io = 1;
            if (info) info->float_io = 1;
        }
    }
    im->op = 0;
    int xin;
    if ((st = new_act(im, in_t, &xin))) goto out;
    m->input = xin;
    for (int k = 0; k < d->nops; k++) {
        if (k == skip_in || k == skip_out) continue;
        if ((st = import_op(im, k))) goto out;
    }
    if (im->map[out_t] < 0) {
        st = tml_error(TML_ERR_FORMAT, "no operator computes the output tensor '%.60s'", d->t[out_t].name);
        goto out;
    }
    m->output = im->map[out_t];
    m->meta.rounding = TML_ROUNDING_TFLITE;
    if ((st = tml_model_finalize(m))) {
        tml_error_context(st, "the imported graph");
        goto out;
    }
    if ((st = check_shapes(im))) goto out;
    if ((st = tml_model_compact(m))) goto out;
    if ((st = restore_tinyml(im, info))) goto out;
    if (info) {
        info->full_int8 = im->int8;
        info->hybrid = im->hybrid;
        info->merged_pads = im->merged_pads;
    }
out:
    free(im->map);
    free(im->pad);
    return st;
}

int tml_tflite_detect(const void *buf, size_t len)
{
    const uint8_t *b = buf;
    return len >= 8 && memcmp(b + 4, "TFL3", 4) == 0;
}

static void op_summary(const tfl_model *d, char *out, size_t cap)
{
    out[0] = '\0';
    int seen[256] = {0};
    for (int k = 0; k < d->nops; k++) {
        const int c = d->ops[k].code;
        if (c < 0 || c >= 256 || seen[c]++) continue;
        int cnt = 0;
        for (int j = 0; j < d->nops; j++) cnt += d->ops[j].code == c;
        const char *n = tml_tflite_op_name(c);
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s %d", l ? ", " : "", n ? n : "?", cnt);
    }
}

tml_status tml_tflite_import_mem(const void *buf, size_t len, tml_model **out, tml_tflite_info *info)
{
    *out = NULL;
    if (info) memset(info, 0, sizeof *info);
    tfl_model d;
    tml_status st = decode(buf, len, &d, info);
    tml_model *m = NULL;
    if (!st && info) op_summary(&d, info->op_summary, sizeof info->op_summary);
    if (!st && !(m = tml_model_new())) st = tml_error(TML_ERR_NOMEM, "out of memory");
    if (!st) {
        free(m->meta.arch);
        m->meta.arch = tml_strdup("tflite");
        if (!m->meta.arch) st = tml_error(TML_ERR_NOMEM, "out of memory");
    }
    if (!st) st = build(&d, m, info);
    if (!st) {
        const tml_tensor *y = &m->tensors[m->output];
        if (y->ndim == 1 && m->meta.n_classes == 0 && !m->meta.labels) m->meta.n_classes = y->dims[0];
    }
    tfl_free(&d);
    if (st) {
        tml_model_free(m);
        return st;
    }
    *out = m;
    return TML_OK;
}

tml_status tml_tflite_import_file(const char *path, tml_model **out, tml_tflite_info *info)
{
    *out = NULL;
    const int use_stdin = !path || strcmp(path, "-") == 0;
    const char *what = use_stdin ? "<stdin>" : path;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f) return tml_error(TML_ERR_IO, "%s: cannot open: %s", what, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    tml_status st = b ? TML_OK : tml_error(TML_ERR_NOMEM, "out of memory");
    while (!st) {
        if (n == cap) {
            uint8_t *p = cap < TFL_MAX_FILE ? realloc(b, cap * 2) : NULL;
            if (!p) {
                st = tml_error(TML_ERR_NOMEM, "file too large");
                break;
            }
            b = p;
            cap *= 2;
        }
        const size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (!st && ferror(f)) st = tml_error(TML_ERR_IO, "read error");
    if (!use_stdin) fclose(f);
    if (!st) st = tml_tflite_import_mem(b, n, out, info);
    free(b);
    if (st) tml_error_context(st, "%s", what);
    return st;
}
