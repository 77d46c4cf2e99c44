/*
 * onnx_export.c - writes a float tinyml model as an ONNX model (tml_onnx.h,
 * docs/onnx.md "Export"). The protobuf wire format is written here directly,
 * no protobuf library; nothing is shared with the importer's reader except the
 * TensorProto / AttributeProto type numbers of onnx_internal.h.
 *
 * The file (ONNX IR version 8, default-domain opset 13, producer "tinyml"):
 *   1. ModelProto: ir_version, opset_import {"" 13}, producer_name/version,
 *      doc_string, graph, metadata_props {"tinyml": JSON of name, arch,
 *      labels, preprocessing}
 *   2. GraphProto: nodes in tinyml's topological order, initializers (float32
 *      or int64 raw_data, little-endian), one input "input" and one output
 *      "output", each with a symbolic batch dimension "N"
 *   3. graph input: (N,C,H,W) for a tinyml (H,W,C) input, (N,F) for (F),
 *      (N,A,B[,D]) in tinyml order otherwise; output likewise ((N,K) for a
 *      classifier)
 *
 * Layout conversion (the inverse of the importer's): every tinyml activation
 * gets an ONNX value in one of three layouts -
 *   NCHW   tinyml (H,W,C) is ONNX (N,C,H,W): everything of rank 3
 *   PLAIN  tinyml dims d are ONNX (N,d...) in the same element order
 *   FLAT   tinyml (F) in HWC order is ONNX (N,F) in CHW order: a Flatten of an
 *          NCHW value; the dense layer reading it gets its weight columns
 *          permuted from HWC to CHW, a batch norm its statistics
 * Weights: conv OHWI -> OIHW, depthwise (1,KH,KW,C*M) -> (C*M,1,KH,KW) with
 * group = C, dense (out,in) as Gemm transB=1. tinyml pads (t,l,b,r) are ONNX
 * pads (x1_begin, x2_begin, x1_end, x2_end): the same order. Fused activations
 * become Relu / Clip(0, 6) nodes. Reshapes that change more than a flatten go
 * through NHWC views (Transpose + Reshape), which the importer accepts.
 * Dropout is omitted (identity at inference). Pruned weights are written
 * dense (ONNX has no convenient sparse initializers); clustered weights are
 * written as their decoded values (the model keeps them decoded in memory).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "onnx_internal.h"
#include "tinyml/tml_onnx.h"

#define EXP_IR_VERSION 8
#define EXP_OPSET 13
/* protobuf messages (and so ONNX files without external data) stop at 2 GiB */
#define EXP_MAX_BYTES ((size_t)0x7fffffff)

/* Field numbers of onnx.proto (the same table as onnx_pb.c's reader). */
enum {
    F_MODEL_IR_VERSION = 1,
    F_MODEL_PRODUCER_NAME = 2,
    F_MODEL_PRODUCER_VERSION = 3,
    F_MODEL_DOC_STRING = 6,
    F_MODEL_GRAPH = 7,
    F_MODEL_OPSET_IMPORT = 8,
    F_MODEL_METADATA_PROPS = 14,
    F_OPSET_DOMAIN = 1,
    F_OPSET_VERSION = 2,
    F_ENTRY_KEY = 1, /* StringStringEntryProto */
    F_ENTRY_VALUE = 2,
    F_GRAPH_NODE = 1,
    F_GRAPH_NAME = 2,
    F_GRAPH_INITIALIZER = 5,
    F_GRAPH_DOC_STRING = 10,
    F_GRAPH_INPUT = 11,
    F_GRAPH_OUTPUT = 12,
    F_NODE_INPUT = 1,
    F_NODE_OUTPUT = 2,
    F_NODE_NAME = 3,
    F_NODE_OP_TYPE = 4,
    F_NODE_ATTRIBUTE = 5,
    F_ATTR_NAME = 1,
    F_ATTR_F = 2,
    F_ATTR_I = 3,
    F_ATTR_INTS = 8,
    F_ATTR_TYPE = 20,
    F_TENSOR_DIMS = 1,
    F_TENSOR_DATA_TYPE = 2,
    F_TENSOR_NAME = 8,
    F_TENSOR_RAW_DATA = 9,
    F_VALUE_NAME = 1,
    F_VALUE_TYPE = 2,
    F_TYPE_TENSOR = 1,
    F_TTENSOR_ELEM_TYPE = 1,
    F_TTENSOR_SHAPE = 2,
    F_SHAPE_DIM = 1,
    F_DIM_VALUE = 1,
    F_DIM_PARAM = 2
};

enum { WT_VARINT = 0, WT_LEN = 2, WT_I32 = 5 };

/* ---- output buffer and the wire format ------------------------------------------------ */

typedef struct obuf {
    uint8_t *p;
    size_t n, cap;
    int err; /* OB_NOMEM or OB_TOO_BIG once something failed; later writes are skipped */
} obuf;

enum { OB_NOMEM = 1, OB_TOO_BIG = 2 };

static int ob_reserve(obuf *b, size_t extra)
{
    if (b->err) return 0;
    if (extra > EXP_MAX_BYTES || b->n + extra > EXP_MAX_BYTES) {
        b->err = OB_TOO_BIG;
        return 0;
    }
    if (b->n + extra <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->err = OB_NOMEM;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

static void ob_bytes(obuf *b, const void *p, size_t n)
{
    if (!ob_reserve(b, n)) return;
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}

static size_t varint_enc(uint64_t v, uint8_t *out)
{
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        out[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
    } while (v);
    return n;
}

static void ob_varint(obuf *b, uint64_t v)
{
    uint8_t tmp[10];
    ob_bytes(b, tmp, varint_enc(v, tmp));
}

static void ob_tag(obuf *b, int field, int wt)
{
    ob_varint(b, ((uint64_t)field << 3) | (uint64_t)wt);
}

/* int64 fields: negative values are 10-byte two's complement varints */
static void ob_int(obuf *b, int field, int64_t v)
{
    ob_tag(b, field, WT_VARINT);
    ob_varint(b, (uint64_t)v);
}

static void ob_float(obuf *b, int field, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    ob_tag(b, field, WT_I32);
    ob_bytes(b, le, 4);
}

static void ob_str(obuf *b, int field, const char *s)
{
    size_t n = strlen(s);
    ob_tag(b, field, WT_LEN);
    ob_varint(b, n);
    ob_bytes(b, s, n);
}

/* A nested message: the tag, then 5 bytes reserved for the length (enough for
 * any size below 2^35); ob_end() writes the length and moves the body back so
 * the varint is minimal, as every protobuf writer emits it. */
#define LEN_RESERVE 5
static size_t ob_begin(obuf *b, int field)
{
    ob_tag(b, field, WT_LEN);
    size_t mark = b->n;
    if (ob_reserve(b, LEN_RESERVE)) b->n += LEN_RESERVE;
    return mark;
}

static void ob_end(obuf *b, size_t mark)
{
    if (b->err) return;
    size_t body = b->n - mark - LEN_RESERVE;
    uint8_t tmp[10];
    size_t k = varint_enc(body, tmp);
    memcpy(b->p + mark, tmp, k);
    memmove(b->p + mark + k, b->p + mark + LEN_RESERVE, body);
    b->n -= LEN_RESERVE - k;
}

/* ---- the graph being built ---------------------------------------------------------------- */

enum { LX_PLAIN = 0, LX_NCHW = 1, LX_FLAT = 2 };

#define XN_MAX_IN 5
#define XN_MAX_ATTR 6

typedef struct xattr {
    const char *name;
    int type; /* ONX_ATTR_INT, ONX_ATTR_FLOAT, ONX_ATTR_INTS */
    int64_t i;
    float f;
    int n;
    int64_t ints[4];
} xattr;

typedef struct xnode {
    const char *name, *op;
    int n_in;
    const char *in[XN_MAX_IN]; /* names owned by the value registry */
    const char *out;
    int n_attr;
    xattr attr[XN_MAX_ATTR];
} xnode;

typedef struct xinit {
    const char *name;
    int32_t dtype; /* ONX_FLOAT or ONX_INT64 */
    int ndim;
    int64_t dims[4];
    int64_t numel;
    const void *data; /* float or int64_t values */
    void *owned;      /* data allocated here (converted weights), else NULL */
} xinit;

/* Set of strings (owned), open addressing. */
typedef struct nset {
    char **s;
    size_t cap, n;
} nset;

typedef struct xval {
    const char *name; /* NULL: not produced yet */
    int layout;       /* LX_* */
    int32_t src[3];   /* LX_FLAT: the (H,W,C) the features were flattened from */
} xval;

typedef struct ex {
    const tml_model *m;
    const tml_model *qm; /* QDQ export: the int8 model (m is its dequantized float twin), else NULL */
    xval *val; /* (n_tensors) */
    xnode *node;
    int n_node, cap_node;
    xinit *init;
    int n_init, cap_init;
    nset vnames, nnames;
    const char *clip_min, *clip_max; /* shared Clip bounds, made on first use */
    const char *cur_node;            /* tinyml node being converted (messages) */
    int view_tid; /* QDQ export: the int8 tensor whose data the relayout nodes move (-1: none) */
    char *tmp;                       /* scratch for names */
    size_t tmp_cap;
    tml_status st;
} ex;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int nset_has(const nset *ns, const char *s)
{
    if (!ns->cap) return 0;
    for (size_t i = hash_str(s) & (ns->cap - 1);; i = (i + 1) & (ns->cap - 1)) {
        if (!ns->s[i]) return 0;
        if (strcmp(ns->s[i], s) == 0) return 1;
    }
}

/* Adds a copy of s (not present); returns the stored copy or NULL on OOM. */
static const char *nset_add(nset *ns, const char *s)
{
    if ((ns->n + 1) * 2 > ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 64;
        char **ns2 = calloc(cap, sizeof(char *));
        if (!ns2) return NULL;
        for (size_t i = 0; i < ns->cap; i++) {
            if (!ns->s[i]) continue;
            size_t j = hash_str(ns->s[i]) & (cap - 1);
            while (ns2[j]) j = (j + 1) & (cap - 1);
            ns2[j] = ns->s[i];
        }
        free(ns->s);
        ns->s = ns2;
        ns->cap = cap;
    }
    char *c = tml_strdup(s);
    if (!c) return NULL;
    size_t j = hash_str(c) & (ns->cap - 1);
    while (ns->s[j]) j = (j + 1) & (ns->cap - 1);
    ns->s[j] = c;
    ns->n++;
    return c;
}

static void nset_free(nset *ns)
{
    for (size_t i = 0; i < ns->cap; i++) free(ns->s[i]);
    free(ns->s);
    memset(ns, 0, sizeof *ns);
}

static tml_status ex_oom(ex *e)
{
    if (!e->st) e->st = tml_error(TML_ERR_NOMEM, "out of memory");
    return e->st;
}

static tml_status ex_fail(ex *e, tml_status st, const char *msg)
{
    if (!e->st)
        e->st = e->cur_node ? tml_error(st, "node '%s': %s", e->cur_node, msg) : tml_error(st, "%s", msg);
    return e->st;
}

/* A name not taken yet in `ns`: base, else base_1, base_2, ... (NULL on error,
 * e->st set). "" becomes "v". */
static const char *uniq(ex *e, nset *ns, const char *base, const char *suffix)
{
    if (e->st) return NULL;
    if (!base || !*base) base = "v";
    if (!suffix) suffix = "";
    size_t need = strlen(base) + strlen(suffix) + 24;
    if (need > e->tmp_cap) {
        char *t = realloc(e->tmp, need);
        if (!t) {
            ex_oom(e);
            return NULL;
        }
        e->tmp = t;
        e->tmp_cap = need;
    }
    snprintf(e->tmp, e->tmp_cap, "%s%s", base, suffix);
    for (long k = 1; nset_has(ns, e->tmp); k++) snprintf(e->tmp, e->tmp_cap, "%s%s_%ld", base, suffix, k);
    const char *r = nset_add(ns, e->tmp);
    if (!r) ex_oom(e);
    return r;
}

static const char *vname(ex *e, const char *base, const char *suffix)
{
    return uniq(e, &e->vnames, base, suffix);
}

static xnode *add_node(ex *e, const char *op, const char *base, const char *suffix, int n_in,
                       const char *const *in, const char *out)
{
    if (e->st) return NULL;
    int missing = !out;
    for (int i = 0; i < n_in; i++) missing |= !in[i];
    if (missing) {
        /* only an earlier failure (which set e->st) gives NULL names */
        ex_fail(e, TML_ERR_INVALID, "internal error: a value of the ONNX graph has no name");
        return NULL;
    }
    if (e->n_node == e->cap_node) {
        int cap = e->cap_node ? e->cap_node * 2 : 32;
        xnode *p = realloc(e->node, sizeof(xnode) * (size_t)cap);
        if (!p) {
            ex_oom(e);
            return NULL;
        }
        e->node = p;
        e->cap_node = cap;
    }
    const char *nm = uniq(e, &e->nnames, base, suffix);
    if (!nm) return NULL;
    xnode *n = &e->node[e->n_node++];
    memset(n, 0, sizeof *n);
    n->name = nm;
    n->op = op;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    n->out = out;
    return n;
}

static void attr_int(xnode *n, const char *name, int64_t v)
{
    if (!n) return;
    TML_ASSERT(n->n_attr < XN_MAX_ATTR);
    xattr *a = &n->attr[n->n_attr++];
    a->name = name;
    a->type = ONX_ATTR_INT;
    a->i = v;
}

static void attr_float(xnode *n, const char *name, float v)
{
    if (!n) return;
    TML_ASSERT(n->n_attr < XN_MAX_ATTR);
    xattr *a = &n->attr[n->n_attr++];
    a->name = name;
    a->type = ONX_ATTR_FLOAT;
    a->f = v;
}

static void attr_ints(xnode *n, const char *name, int cnt, const int64_t *v)
{
    if (!n) return;
    TML_ASSERT(n->n_attr < XN_MAX_ATTR && cnt <= 4);
    xattr *a = &n->attr[n->n_attr++];
    a->name = name;
    a->type = ONX_ATTR_INTS;
    a->n = cnt;
    for (int i = 0; i < cnt; i++) a->ints[i] = v[i];
}

/* Adds an initializer; takes ownership of `owned` (freed on error too). */
static const char *add_init(ex *e, const char *base, const char *suffix, int32_t dtype, int ndim,
                            const int64_t *dims, const void *data, void *owned)
{
    if (!e->st && e->n_init == e->cap_init) {
        int cap = e->cap_init ? e->cap_init * 2 : 32;
        xinit *p = realloc(e->init, sizeof(xinit) * (size_t)cap);
        if (!p)
            ex_oom(e);
        else {
            e->init = p;
            e->cap_init = cap;
        }
    }
    const char *nm = e->st ? NULL : vname(e, base, suffix);
    if (!nm) {
        free(owned);
        return NULL;
    }
    xinit *t = &e->init[e->n_init++];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->dtype = dtype;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        t->numel *= dims[i];
    }
    t->data = data;
    t->owned = owned;
    return nm;
}

static float *fbuf(ex *e, int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p) ex_oom(e);
    return p;
}

/* A float constant of tinyml tensor `tid` as it is (biases, statistics). */
static const char *init_param(ex *e, int tid)
{
    const tml_tensor *t = &e->m->tensors[tid];
    int64_t d[TML_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) d[i] = t->dims[i];
    return add_init(e, t->name, NULL, ONX_FLOAT, t->ndim, d, t->data, NULL);
}

/* ---- QDQ form of an int8 model ------------------------------------------------------------
 * Every int8 activation becomes QuantizeLinear -> DequantizeLinear of the
 * float value computed by the float op, with the tensor's scale and zero
 * point; weights are int8 initializers with per-axis scales (axis 0: output
 * channels of Conv OIHW and of Gemm's transposed (O,K)) behind a
 * DequantizeLinear, biases int32 initializers with scale = input scale x
 * weight scale. ONNX Runtime fuses the pattern into integer kernels. */

static const char *scale_init(ex *e, const char *base, const char *suffix, int n, const float *v)
{
    float *s = fbuf(e, n);
    if (!s) return NULL;
    memcpy(s, v, sizeof(float) * (size_t)n);
    int64_t d[1] = {n};
    return add_init(e, base, suffix, ONX_FLOAT, n > 1 ? 1 : 0, d, s, s);
}

static const char *zp_init(ex *e, const char *base, const char *suffix, int32_t dtype, int n, int32_t zp)
{
    void *z = malloc((size_t)(n > 0 ? n : 1) * (dtype == ONX_INT8 ? 1 : 4));
    if (!z) {
        ex_oom(e);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (dtype == ONX_INT8) ((int8_t *)z)[i] = (int8_t)zp;
        else ((int32_t *)z)[i] = zp;
    }
    int64_t d[1] = {n};
    return add_init(e, base, suffix, dtype, n > 1 ? 1 : 0, d, z, z);
}

/* x (float) -> QuantizeLinear -> DequantizeLinear with activation tensor
 * `tid`'s parameters (of the int8 model); returns the dequantized name. */
static const char *qdq_act(ex *e, const char *base, const char *x, int tid)
{
    const tml_tensor *t = &e->qm->tensors[tid];
    const char *sc = scale_init(e, base, "/scale", 1, t->q.scale);
    const char *zp = zp_init(e, base, "/zero_point", ONX_INT8, 1, t->q.zero_point[0]);
    const char *q = vname(e, base, "/q"), *dq = vname(e, base, "/dq");
    const char *in1[3] = {x, sc, zp};
    add_node(e, "QuantizeLinear", base, "/quantize", 3, in1, q);
    const char *in2[3] = {q, sc, zp};
    add_node(e, "DequantizeLinear", base, "/dequantize", 3, in2, dq);
    return dq;
}

/* Weights already in ONNX layout as floats (w = scale[o] * q exactly) back to
 * int8 behind a DequantizeLinear along axis 0; `tid` is the weight tensor. */
static const char *qdq_weight(ex *e, int tid, int ndim, const int64_t *dims, const float *wf)
{
    const tml_tensor *w = &e->qm->tensors[tid];
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    const int64_t O = dims[0], per = O ? n / O : 0;
    int8_t *q = malloc((size_t)(n ? n : 1));
    if (!q) {
        ex_oom(e);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        const float s = w->q.scale[w->q.n == 1 ? 0 : i / per];
        const float v = s > 0.0f ? roundf(wf[i] / s) : 0.0f;
        q[i] = (int8_t)(v < -128.0f ? -128 : v > 127.0f ? 127 : (int)v);
    }
    const char *qi = add_init(e, w->name, "/int8", ONX_INT8, ndim, dims, q, q);
    const char *sc = scale_init(e, w->name, "/scale", w->q.n, w->q.scale);
    const char *zp = zp_init(e, w->name, "/zero_point", ONX_INT8, w->q.n, 0);
    const char *dq = vname(e, w->name, NULL);
    const char *in[3] = {qi, sc, zp};
    xnode *d = add_node(e, "DequantizeLinear", w->name, "/dequantize", 3, in, dq);
    if (d && w->q.n > 1) attr_int(d, "axis", 0);
    return dq;
}

/* The int32 bias of node n behind a DequantizeLinear (scale in_s * w_s[c]). */
static const char *qdq_bias(ex *e, const tml_node *n)
{
    const tml_tensor *b = &e->qm->tensors[n->in[2]], *x = &e->qm->tensors[n->in[0]], *w = &e->qm->tensors[n->in[1]];
    const int nb = (int)tml_tensor_numel(b);
    float *s = fbuf(e, nb);
    if (!s) return NULL;
    for (int i = 0; i < nb; i++) s[i] = x->q.scale[0] * w->q.scale[w->q.n == 1 ? 0 : i];
    const int per_axis = w->q.n > 1;
    int64_t d[1] = {nb}, d1[1] = {1};
    const char *sc = add_init(e, b->name, "/scale", ONX_FLOAT, per_axis ? 1 : 0, per_axis ? d : d1, s, s);
    const char *zp = zp_init(e, b->name, "/zero_point", ONX_INT32, per_axis ? nb : 1, 0);
    const char *bi = add_init(e, b->name, "/int32", ONX_INT32, 1, d, b->data, NULL);
    const char *dq = vname(e, b->name, NULL);
    const char *in[3] = {bi, sc, zp};
    xnode *dn = add_node(e, "DequantizeLinear", b->name, "/dequantize", 3, in, dq);
    if (dn && per_axis) attr_int(dn, "axis", 0);
    return dq;
}

/* Reshape target (0 = copy the batch, then the per-sample dims). */
static const char *init_shape(ex *e, const char *base, int n, const int64_t *dims)
{
    int64_t *s = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!s) {
        ex_oom(e);
        return NULL;
    }
    s[0] = 0;
    for (int i = 0; i < n; i++) s[i + 1] = dims[i];
    int64_t d[1] = {n + 1};
    return add_init(e, base, "/shape", ONX_INT64, 1, d, s, s);
}

/* ---- layout conversion ------------------------------------------------------------------- */

/* ONNX dims after the batch of a value of tinyml tensor t in `layout`. */
static int onnx_dims(const tml_tensor *t, int layout, int64_t *d)
{
    if (layout == LX_NCHW) {
        d[0] = t->dims[2];
        d[1] = t->dims[0];
        d[2] = t->dims[1];
        return 3;
    }
    for (int i = 0; i < t->ndim; i++) d[i] = t->dims[i];
    return t->ndim;
}

/* Is the CHW order of an (H,W,C) image the same as its HWC order? */
static int order_trivial(const int32_t *hwc)
{
    return hwc[2] == 1 || (int64_t)hwc[0] * hwc[1] == 1;
}

/* QDQ export: the output y of a node that only moves int8 data (Flatten,
 * Reshape, Transpose) quantized again with the parameters of the tensor it
 * moves (e->view_tid), so that ONNX Runtime keeps it, and the layer reading
 * it, in int8 (a DequantizeLinear -> Reshape -> QuantizeLinear of the same
 * parameters becomes an int8 Reshape; a float input would leave the next
 * Gemm in float). */
static const char *view_qdq(ex *e, const char *y)
{
    if (!y || !e->qm || e->view_tid < 0 || e->qm->tensors[e->view_tid].q.n <= 0) return y;
    return qdq_act(e, y, y, e->view_tid);
}

static const char *node_transpose(ex *e, const char *base, const char *x, const int64_t *perm)
{
    const char *y = vname(e, base, "/transpose");
    xnode *n = add_node(e, "Transpose", base, "/transpose", 1, &x, y);
    attr_ints(n, "perm", 4, perm);
    return n ? view_qdq(e, y) : NULL;
}

static const char *node_reshape(ex *e, const char *base, const char *x, int nd, const int64_t *d,
                                const char *out)
{
    const char *s = init_shape(e, base, nd, d);
    const char *y = out ? out : vname(e, base, "/reshape");
    const char *in[2] = {x, s};
    return add_node(e, "Reshape", base, "/reshape", 2, in, y) ? view_qdq(e, y) : NULL;
}

static const char *node_flatten(ex *e, const char *base, const char *x, const char *out)
{
    const char *y = out ? out : vname(e, base, "/flatten");
    xnode *n = add_node(e, "Flatten", base, "/flatten", 1, &x, y);
    attr_int(n, "axis", 1);
    return n ? view_qdq(e, y) : NULL;
}

/*
 * Emits the nodes that give the data of value `xv` (tinyml tensor `xt`) the
 * tinyml dims (nd, dd), i.e. a tinyml reshape, in the canonical layout of the
 * result: NCHW for 3 dims; for 1 dim FLAT when `allow_flat` and the source is
 * an image (a plain Flatten), else PLAIN. `out` names the final value (NULL:
 * a new name from `base`). Returns the final value and sets *layout / src.
 */
static const char *relayout(ex *e, const char *base, const xval *xv, const tml_tensor *xt, int nd,
                            const int32_t *dd, int allow_flat, const char *out, xval *res)
{
    static const int64_t to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
    const char *v = xv->name;
    int64_t cur[TML_MAX_DIMS], want[TML_MAX_DIMS];
    int cn = onnx_dims(xt, xv->layout, cur);
    memset(res, 0, sizeof *res);
    for (int i = 0; i < nd; i++) want[i] = dd[i];

    /* the two direct cases: flatten an image, unflatten a flattened image */
    if (xv->layout == LX_NCHW && nd == 1 && (allow_flat || order_trivial(xt->dims))) {
        res->layout = order_trivial(xt->dims) ? LX_PLAIN : LX_FLAT;
        memcpy(res->src, xt->dims, sizeof res->src);
        return res->name = node_flatten(e, base, v, out);
    }
    if (xv->layout == LX_FLAT && nd == 3 && dd[0] == xv->src[0] && dd[1] == xv->src[1] &&
        dd[2] == xv->src[2]) {
        int64_t chw[3] = {dd[2], dd[0], dd[1]};
        res->layout = LX_NCHW;
        return res->name = node_reshape(e, base, v, 3, chw, out);
    }
    /* else: bring the data into tinyml (HWC) element order first */
    if (xv->layout == LX_NCHW && !order_trivial(xt->dims)) {
        v = node_transpose(e, base, v, to_nhwc);
        cn = 3;
        cur[0] = xt->dims[0];
        cur[1] = xt->dims[1];
        cur[2] = xt->dims[2];
    } else if (xv->layout == LX_FLAT && !order_trivial(xv->src)) {
        int64_t chw[3] = {xv->src[2], xv->src[0], xv->src[1]};
        v = node_reshape(e, base, v, 3, chw, NULL);
        v = node_transpose(e, base, v, to_nhwc);
        cn = 3;
        for (int i = 0; i < 3; i++) cur[i] = xv->src[i];
    }
    if (nd == 3) {
        res->layout = LX_NCHW;
        int64_t chw[3] = {dd[2], dd[0], dd[1]};
        if (order_trivial(dd)) return res->name = node_reshape(e, base, v, 3, chw, out);
        v = node_reshape(e, base, v, 3, want, NULL);
        const char *y = out ? out : vname(e, base, "/nchw");
        xnode *n = add_node(e, "Transpose", base, "/nchw", 1, &v, y);
        attr_ints(n, "perm", 4, to_nchw);
        return res->name = n ? y : NULL;
    }
    res->layout = LX_PLAIN;
    int same = cn == nd && v;
    for (int i = 0; same && i < nd; i++) same = cur[i] == want[i];
    if (same && !out) return res->name = v;
    if (same) {
        if (!add_node(e, "Identity", base, "/identity", 1, &v, out)) return NULL;
        return res->name = out;
    }
    return res->name = node_reshape(e, base, v, nd, want, out);
}

/* ---- one tinyml node ---------------------------------------------------------------------- */

static const char *clip_bound(ex *e, int is_max)
{
    const char **slot = is_max ? &e->clip_max : &e->clip_min;
    if (!*slot) {
        static const float lo = 0.0f, hi = 6.0f;
        *slot = add_init(e, is_max ? "relu6_max" : "relu6_min", NULL, ONX_FLOAT, 0, NULL, is_max ? &hi : &lo,
                         NULL);
    }
    return *slot;
}

/* Relu or Clip(0, 6) from value x to value y; node name base + suffix. */
static int act_node(ex *e, const char *base, const char *suffix, tml_act act, const char *x, const char *y)
{
    if (act == TML_ACT_RELU) return add_node(e, "Relu", base, suffix, 1, &x, y) != NULL;
    const char *in[3] = {x, clip_bound(e, 0), clip_bound(e, 1)};
    return add_node(e, "Clip", base, suffix, 3, in, y) != NULL;
}

/* The value a node with fused activation `act` writes: the final value, or an
 * intermediate that the activation node then reads. */
static const char *main_out(ex *e, const char *yname, tml_act act)
{
    return act == TML_ACT_NONE ? yname : vname(e, yname, "/preact");
}

static void finish_act(ex *e, const char *base, tml_act act, const char *pre, const char *yname)
{
    if (act != TML_ACT_NONE && pre)
        act_node(e, base, act == TML_ACT_RELU ? "/relu" : "/relu6", act, pre, yname);
}

static void set_window(xnode *x, const tml_node *n, int dilations)
{
    int64_t k[2] = {n->kh, n->kw}, s[2] = {n->sh, n->sw}, d[2] = {n->dh, n->dw};
    int64_t p[4] = {n->pad[0], n->pad[1], n->pad[2], n->pad[3]};
    attr_ints(x, "kernel_shape", 2, k);
    attr_ints(x, "strides", 2, s);
    attr_ints(x, "pads", 4, p);
    if (dilations) attr_ints(x, "dilations", 2, d);
}

static void conv_node(ex *e, const tml_node *n, const char *yname)
{
    const tml_model *m = e->m;
    const tml_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]];
    const float *wd = w->data;
    int64_t O, KH = w->dims[1], KW = w->dims[2], I, group;
    float *wo = fbuf(e, tml_tensor_numel(w));
    if (!wo) return;
    if (n->op == TML_OP_CONV2D) {
        /* OHWI -> OIHW */
        O = w->dims[0];
        I = w->dims[3];
        group = n->groups;
        for (int64_t o = 0; o < O; o++)
            for (int64_t ky = 0; ky < KH; ky++)
                for (int64_t kx = 0; kx < KW; kx++)
                    for (int64_t i = 0; i < I; i++)
                        wo[((o * I + i) * KH + ky) * KW + kx] = wd[((o * KH + ky) * KW + kx) * I + i];
    } else {
        /* (1,KH,KW,C*M) -> (C*M,1,KH,KW): output channel o reads input o / M, as ONNX groups do */
        O = w->dims[3];
        I = 1;
        group = x->dims[2];
        for (int64_t o = 0; o < O; o++)
            for (int64_t ky = 0; ky < KH; ky++)
                for (int64_t kx = 0; kx < KW; kx++) wo[(o * KH + ky) * KW + kx] = wd[(ky * KW + kx) * O + o];
    }
    int64_t dims[4] = {O, I, KH, KW};
    const char *wn;
    if (e->qm) {
        wn = qdq_weight(e, n->in[1], 4, dims, wo);
        free(wo);
    } else {
        wn = add_init(e, w->name, NULL, ONX_FLOAT, 4, dims, wo, wo);
    }
    const char *in[3] = {e->val[n->in[0]].name, wn, NULL};
    int n_in = 2;
    if (n->n_in > 2 && n->in[2] >= 0) in[n_in++] = e->qm ? qdq_bias(e, n) : init_param(e, n->in[2]);
    const char *pre = main_out(e, yname, n->act);
    xnode *c = add_node(e, "Conv", n->name, NULL, n_in, in, pre);
    set_window(c, n, 1);
    attr_int(c, "group", group);
    finish_act(e, n->name, n->act, pre, yname);
}

static void dense_node(ex *e, const tml_node *n, const char *yname)
{
    const tml_model *m = e->m;
    const tml_tensor *xt = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]];
    xval xv = e->val[n->in[0]];
    if (xt->ndim != 1) {
        /* Gemm takes (N,K): flatten an image (CHW order) or a plain tensor */
        int32_t f[1] = {(int32_t)tml_tensor_numel(xt)};
        xval r;
        e->view_tid = n->in[0];
        const char *ok = relayout(e, n->name, &xv, xt, 1, f, 1, NULL, &r);
        e->view_tid = -1;
        if (!ok) return;
        xv = r;
    }
    const char *wname;
    int64_t O = w->dims[0], K = w->dims[1], dims[2] = {O, K};
    if (xv.layout == LX_FLAT && !order_trivial(xv.src)) {
        /* columns from HWC to CHW order: ONNX feature c*H*W + y*W + x is tinyml (y*W + x)*C + c */
        int64_t H = xv.src[0], W = xv.src[1], C = xv.src[2];
        float *wo = fbuf(e, O * K);
        if (!wo) return;
        const float *wd = w->data;
        for (int64_t o = 0; o < O; o++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t p = 0; p < H * W; p++) wo[o * K + c * H * W + p] = wd[o * K + p * C + c];
        if (e->qm) {
            wname = qdq_weight(e, n->in[1], 2, dims, wo);
            free(wo);
        } else {
            wname = add_init(e, w->name, NULL, ONX_FLOAT, 2, dims, wo, wo);
        }
    } else {
        wname = e->qm ? qdq_weight(e, n->in[1], 2, dims, w->data) : add_init(e, w->name, NULL, ONX_FLOAT, 2, dims, w->data, NULL);
    }
    const char *in[3] = {xv.name, wname, NULL};
    int n_in = 2;
    if (n->n_in > 2 && n->in[2] >= 0) in[n_in++] = e->qm ? qdq_bias(e, n) : init_param(e, n->in[2]);
    const char *pre = main_out(e, yname, n->act);
    xnode *g = add_node(e, "Gemm", n->name, NULL, n_in, in, pre);
    attr_int(g, "transB", 1);
    finish_act(e, n->name, n->act, pre, yname);
}

static void batchnorm_node(ex *e, const tml_node *n, const char *yname, xval *yv)
{
    const tml_model *m = e->m;
    const tml_tensor *xt = &m->tensors[n->in[0]];
    const xval *xv = &e->val[n->in[0]];
    int64_t C = xt->dims[xt->ndim - 1], d1[1] = {C};
    const float *p[4];
    for (int i = 0; i < 4; i++) p[i] = m->tensors[n->in[i + 1]].data;
    if (xv->layout == LX_PLAIN && xt->ndim > 1) {
        /* ONNX BatchNormalization normalizes axis 1; over the last axis of a
         * plain (N,A,B) tensor it is a per-channel Mul + Add (the importer
         * turns them back into a batch norm) */
        float *sc = fbuf(e, C), *sh = fbuf(e, C);
        if (!sc || !sh) {
            free(sc);
            free(sh);
            return;
        }
        for (int64_t c = 0; c < C; c++) {
            double s = (double)p[0][c] / sqrt((double)p[3][c] + (double)n->eps);
            sc[c] = (float)s;
            sh[c] = (float)((double)p[1][c] - (double)p[2][c] * s);
        }
        const char *mid = vname(e, yname, "/scaled");
        const char *in1[2] = {xv->name, add_init(e, n->name, "/scale", ONX_FLOAT, 1, d1, sc, sc)};
        add_node(e, "Mul", n->name, "/mul", 2, in1, mid);
        const char *in2[2] = {mid, add_init(e, n->name, "/shift", ONX_FLOAT, 1, d1, sh, sh)};
        add_node(e, "Add", n->name, "/add", 2, in2, yname);
        return;
    }
    const char *in[5] = {xv->name, NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        const tml_tensor *t = &m->tensors[n->in[i + 1]];
        if (xv->layout == LX_FLAT && !order_trivial(xv->src)) {
            /* per-feature statistics of a flattened image: HWC -> CHW order */
            int64_t HW = (int64_t)xv->src[0] * xv->src[1], Cc = xv->src[2];
            float *q = fbuf(e, C);
            if (!q) return;
            for (int64_t c = 0; c < Cc; c++)
                for (int64_t s = 0; s < HW; s++) q[c * HW + s] = p[i][s * Cc + c];
            in[i + 1] = add_init(e, t->name, NULL, ONX_FLOAT, 1, d1, q, q);
        } else {
            in[i + 1] = add_init(e, t->name, NULL, ONX_FLOAT, 1, d1, t->data, NULL);
        }
    }
    xnode *b = add_node(e, "BatchNormalization", n->name, NULL, 5, in, yname);
    attr_float(b, "epsilon", n->eps);
    *yv = *xv; /* same layout as the input */
}

/* Converts node n; sets e->val[n->out]. */
static void convert_node(ex *e, const tml_node *n)
{
    const tml_model *m = e->m;
    const tml_tensor *y = &m->tensors[n->out], *xt = &m->tensors[n->in[0]];
    const xval *xv = &e->val[n->in[0]];
    xval yv = {NULL, y->ndim == 3 ? LX_NCHW : LX_PLAIN, {0, 0, 0}};
    e->cur_node = n->name;
    for (int i = 0; i < n->n_in; i++) {
        int t = n->in[i];
        if (t >= 0 && m->tensors[t].kind == TML_TENSOR_ACT && !e->val[t].name) {
            ex_fail(e, TML_ERR_FORMAT, "reads an activation no earlier node produced (model not finalized?)");
            return;
        }
    }
    /* nodes that only re-describe their input make no value of their own */
    if (n->op == TML_OP_DROPOUT) {
        e->val[n->out] = *xv;
        return;
    }
    if (n->op == TML_OP_RESHAPE) {
        if (y->ndim == xt->ndim && memcmp(y->dims, xt->dims, sizeof(int32_t) * (size_t)y->ndim) == 0) {
            e->val[n->out] = *xv;
            return;
        }
        e->view_tid = n->in[0];
        relayout(e, n->name, xv, xt, y->ndim, y->dims, 1, vname(e, y->name, NULL), &yv);
        e->view_tid = -1;
        e->val[n->out] = yv;
        return;
    }
    const char *yname = vname(e, y->name, NULL);
    if (!yname) return;
    yv.name = yname;
    const char *x = xv->name;
    switch (n->op) {
    case TML_OP_CONV2D:
    case TML_OP_DEPTHWISE_CONV2D:
        conv_node(e, n, yname);
        break;
    case TML_OP_DENSE:
        dense_node(e, n, yname);
        break;
    case TML_OP_RELU:
        act_node(e, n->name, NULL, TML_ACT_RELU, x, yname);
        yv = *xv;
        break;
    case TML_OP_RELU6:
        act_node(e, n->name, NULL, TML_ACT_RELU6, x, yname);
        yv = *xv;
        break;
    case TML_OP_MAXPOOL: {
        xnode *p = add_node(e, "MaxPool", n->name, NULL, 1, &x, yname);
        set_window(p, n, n->dh != 1 || n->dw != 1);
        break;
    }
    case TML_OP_AVGPOOL: {
        if (n->dh != 1 || n->dw != 1) {
            ex_fail(e, TML_ERR_UNSUPPORTED,
                    "average pooling with dilation has no ONNX form before AveragePool-19 (the export writes "
                    "opset 13)");
            return;
        }
        xnode *p = add_node(e, "AveragePool", n->name, NULL, 1, &x, yname);
        set_window(p, n, 0);
        attr_int(p, "count_include_pad", 0); /* tinyml averages over the taps inside the input */
        break;
    }
    case TML_OP_GLOBAL_AVGPOOL: {
        /* (N,C,H,W) -> (N,C,1,1) -> (N,C): tinyml's (C) */
        const char *g = vname(e, yname, "/gap");
        add_node(e, "GlobalAveragePool", n->name, NULL, 1, &x, g);
        /* QDQ export: quantized right after the pool too (ONNX Runtime's
         * integer global pool needs its QuantizeLinear there) */
        if (g && e->qm && e->qm->tensors[n->out].q.n > 0) g = qdq_act(e, g, g, n->out);
        if (g) node_flatten(e, n->name, g, yname);
        break;
    }
    case TML_OP_ADD: {
        const tml_tensor *bt = &m->tensors[n->in[1]];
        xval a = *xv, b = e->val[n->in[1]];
        int differ = a.layout != b.layout || (a.layout == LX_FLAT && memcmp(a.src, b.src, sizeof a.src) != 0);
        if (differ) {
            /* both in tinyml element order (same dims: finalize checked) */
            xval r;
            e->view_tid = n->in[0];
            const char *ok = relayout(e, n->name, &a, xt, xt->ndim, xt->dims, 0, NULL, &r);
            a = r;
            e->view_tid = n->in[1];
            if (ok) ok = relayout(e, n->name, &b, bt, bt->ndim, bt->dims, 0, NULL, &r);
            b = r;
            e->view_tid = -1;
            if (!ok) return;
        }
        const char *in[2] = {a.name, b.name};
        const char *pre = main_out(e, yname, n->act);
        add_node(e, "Add", n->name, NULL, 2, in, pre);
        finish_act(e, n->name, n->act, pre, yname);
        yv = a;
        yv.name = yname;
        break;
    }
    case TML_OP_SOFTMAX: {
        /* tinyml normalizes the last dim: ONNX axis 1 of images (channels) and
         * vectors (a flattened image's features in any order), else the last */
        xnode *s = add_node(e, "Softmax", n->name, NULL, 1, &x, yname);
        attr_int(s, "axis", xv->layout == LX_PLAIN ? xt->ndim : 1);
        yv = *xv;
        break;
    }
    case TML_OP_BATCHNORM:
        batchnorm_node(e, n, yname, &yv);
        break;
    default:
        ex_fail(e, TML_ERR_UNSUPPORTED, "op not supported by the ONNX export");
        return;
    }
    yv.name = yname;
    /* QDQ export: the int8 tensor this op writes, as quantize + dequantize */
    if (e->qm && !e->st && e->qm->tensors[n->out].q.n > 0) yv.name = qdq_act(e, yname, yname, n->out);
    e->val[n->out] = yv;
}

/* ---- serialization ------------------------------------------------------------------------ */

static void put_value_info(obuf *b, int field, const char *name, int nd, const int64_t *d)
{
    size_t vi = ob_begin(b, field);
    ob_str(b, F_VALUE_NAME, name);
    size_t tp = ob_begin(b, F_VALUE_TYPE);
    size_t tt = ob_begin(b, F_TYPE_TENSOR);
    ob_int(b, F_TTENSOR_ELEM_TYPE, ONX_FLOAT);
    size_t sh = ob_begin(b, F_TTENSOR_SHAPE);
    size_t dm = ob_begin(b, F_SHAPE_DIM);
    ob_str(b, F_DIM_PARAM, "N");
    ob_end(b, dm);
    for (int i = 0; i < nd; i++) {
        dm = ob_begin(b, F_SHAPE_DIM);
        ob_int(b, F_DIM_VALUE, d[i]);
        ob_end(b, dm);
    }
    ob_end(b, sh);
    ob_end(b, tt);
    ob_end(b, tp);
    ob_end(b, vi);
}

static void put_node(obuf *b, const xnode *n)
{
    size_t mk = ob_begin(b, F_GRAPH_NODE);
    for (int i = 0; i < n->n_in; i++) ob_str(b, F_NODE_INPUT, n->in[i]);
    ob_str(b, F_NODE_OUTPUT, n->out);
    ob_str(b, F_NODE_NAME, n->name);
    ob_str(b, F_NODE_OP_TYPE, n->op);
    for (int i = 0; i < n->n_attr; i++) {
        const xattr *a = &n->attr[i];
        size_t am = ob_begin(b, F_NODE_ATTRIBUTE);
        ob_str(b, F_ATTR_NAME, a->name);
        if (a->type == ONX_ATTR_INT)
            ob_int(b, F_ATTR_I, a->i);
        else if (a->type == ONX_ATTR_FLOAT)
            ob_float(b, F_ATTR_F, a->f);
        else
            for (int k = 0; k < a->n; k++) ob_int(b, F_ATTR_INTS, a->ints[k]); /* proto2: unpacked */
        ob_int(b, F_ATTR_TYPE, a->type);
        ob_end(b, am);
    }
    ob_end(b, mk);
}

static void put_init(obuf *b, const xinit *t)
{
    size_t mk = ob_begin(b, F_GRAPH_INITIALIZER);
    for (int i = 0; i < t->ndim; i++) ob_int(b, F_TENSOR_DIMS, t->dims[i]);
    ob_int(b, F_TENSOR_DATA_TYPE, t->dtype);
    ob_str(b, F_TENSOR_NAME, t->name);
    size_t es = t->dtype == ONX_INT64 ? 8 : t->dtype == ONX_INT8 ? 1 : 4;
    size_t nbytes = (size_t)t->numel * es;
    ob_tag(b, F_TENSOR_RAW_DATA, WT_LEN);
    ob_varint(b, nbytes);
    if (ob_reserve(b, nbytes)) {
        /* little-endian whatever the host */
        const uint8_t *src = t->data;
        uint8_t *dst = b->p + b->n;
        const uint16_t probe = 1;
        uint8_t host_le;
        memcpy(&host_le, &probe, 1);
        if (host_le) {
            memcpy(dst, src, nbytes);
        } else {
            for (size_t i = 0; i < nbytes; i += es)
                for (size_t k = 0; k < es; k++) dst[i + k] = src[i + es - 1 - k];
        }
        b->n += nbytes;
    }
    ob_end(b, mk);
}

/* JSON of what ONNX cannot say about the model (labels, preprocessing). */
static char *meta_json(const tml_model *m)
{
    const tml_meta *mt = &m->meta;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", mt->name ? mt->name : "");
    cJSON_AddStringToObject(o, "arch", mt->arch ? mt->arch : "");
    cJSON_AddNumberToObject(o, "classes", mt->n_classes);
    if (mt->labels) {
        cJSON *l = cJSON_AddArrayToObject(o, "labels");
        for (int i = 0; l && i < mt->n_classes; i++)
            cJSON_AddItemToArray(l, cJSON_CreateString(mt->labels[i] ? mt->labels[i] : ""));
    }
    cJSON *p = cJSON_AddObjectToObject(o, "preprocessing");
    if (p) {
        cJSON_AddStringToObject(p, "formula", "x = (raw * scale - mean[c]) / std[c]");
        cJSON_AddNumberToObject(p, "scale", mt->pre.scale);
        cJSON *mean = cJSON_AddArrayToObject(p, "mean"), *sd = cJSON_AddArrayToObject(p, "std");
        /* n_ch 0: mean 0 and std 1 for every channel */
        int nc = mt->pre.n_ch < TML_MAX_CHANNELS_PRE ? mt->pre.n_ch : TML_MAX_CHANNELS_PRE;
        for (int c = 0; c < (nc > 0 ? nc : 1); c++) {
            if (mean) cJSON_AddItemToArray(mean, cJSON_CreateNumber(nc > 0 ? mt->pre.mean[c] : 0.0));
            if (sd) cJSON_AddItemToArray(sd, cJSON_CreateNumber(nc > 0 ? mt->pre.std[c] : 1.0));
        }
        if (mt->pre.n_feat > 0) {
            /* per-feature normalization (tabular models) replaces mean/std */
            cJSON_AddStringToObject(p, "feature_formula", "x[i] = (raw[i] * scale - feature_mean[i]) / feature_std[i]");
            cJSON *fm = cJSON_AddArrayToObject(p, "feature_mean"), *fs = cJSON_AddArrayToObject(p, "feature_std");
            for (int i = 0; i < mt->pre.n_feat; i++) {
                if (fm) cJSON_AddItemToArray(fm, cJSON_CreateNumber(mt->pre.feat_mean[i]));
                if (fs) cJSON_AddItemToArray(fs, cJSON_CreateNumber(mt->pre.feat_std[i]));
            }
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static tml_status serialize(ex *e, const int64_t *in_d, int in_nd, const int64_t *out_d, int out_nd,
                            uint8_t **buf, size_t *len)
{
    const tml_model *m = e->m;
    obuf b = {0};
    char doc[512];
    ob_int(&b, F_MODEL_IR_VERSION, EXP_IR_VERSION);
    size_t op = ob_begin(&b, F_MODEL_OPSET_IMPORT);
    ob_str(&b, F_OPSET_DOMAIN, "");
    ob_int(&b, F_OPSET_VERSION, EXP_OPSET);
    ob_end(&b, op);
    ob_str(&b, F_MODEL_PRODUCER_NAME, "tinyml");
    ob_str(&b, F_MODEL_PRODUCER_VERSION, TML_VERSION_STRING);
    snprintf(
        doc, sizeof doc,
        "tinyml model '%s' (%s). Input NCHW float32 after the preprocessing in metadata_props[\"tinyml\"].",
        m->meta.name ? m->meta.name : "", m->meta.arch ? m->meta.arch : "");
    ob_str(&b, F_MODEL_DOC_STRING, doc);

    size_t g = ob_begin(&b, F_MODEL_GRAPH);
    for (int i = 0; i < e->n_node; i++) put_node(&b, &e->node[i]);
    ob_str(&b, F_GRAPH_NAME, m->meta.name && *m->meta.name ? m->meta.name : "tinyml");
    for (int i = 0; i < e->n_init; i++) put_init(&b, &e->init[i]);
    put_value_info(&b, F_GRAPH_INPUT, "input", in_nd, in_d);
    put_value_info(&b, F_GRAPH_OUTPUT, "output", out_nd, out_d);
    ob_end(&b, g);

    char *js = meta_json(m);
    if (js) {
        size_t mp = ob_begin(&b, F_MODEL_METADATA_PROPS);
        ob_str(&b, F_ENTRY_KEY, "tinyml");
        ob_str(&b, F_ENTRY_VALUE, js);
        ob_end(&b, mp);
        free(js);
    } else if (!b.err) {
        b.err = OB_NOMEM;
    }
    if (b.err) {
        free(b.p);
        if (b.err == OB_TOO_BIG)
            return tml_error(
                TML_ERR_UNSUPPORTED,
                "the ONNX file would exceed 2 GiB, the protobuf limit (external weight files are not "
                "written by tinyml)");
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    *buf = b.p;
    *len = b.n;
    return TML_OK;
}

/* ---- the whole model ---------------------------------------------------------------------- */

static void ex_free(ex *e)
{
    for (int i = 0; i < e->n_init; i++) free(e->init[i].owned);
    free(e->init);
    free(e->node);
    free(e->val);
    free(e->tmp);
    nset_free(&e->vnames);
    nset_free(&e->nnames);
}

/* Renames value `from` to `to` in every node (the graph output must be "output"). */
static void rename_value(ex *e, const char *from, const char *to)
{
    for (int i = 0; i < e->n_node; i++) {
        xnode *n = &e->node[i];
        for (int k = 0; k < n->n_in; k++)
            if (strcmp(n->in[k], from) == 0) n->in[k] = to;
        if (strcmp(n->out, from) == 0) n->out = to;
    }
}

/* The float twin of an int8 model for the QDQ export: weights and biases
 * dequantized (w = s[c] q, b = in_s w_s[c] b), int8 activations float with
 * their quantization kept (the QDQ nodes read it from the int8 model). */
static tml_status float_twin(const tml_model *m, tml_model **out)
{
    /* the QDQ form needs a whole int8 model: every activation int8 with its
     * scale and zero point, every weight int8 with its scales */
    for (int i = 0; i < m->n_tensors; i++) {
        const tml_tensor *t = &m->tensors[i];
        if (t->dtype == TML_DTYPE_F32)
            return tml_error(TML_ERR_UNSUPPORTED,
                             "tensor '%s' is float in an int8 model: the QDQ export needs a fully int8 model", t->name);
        if (t->dtype == TML_DTYPE_INT8 && (t->q.n < 1 || !t->q.scale || !t->q.zero_point))
            return tml_error(TML_ERR_UNSUPPORTED,
                             "int8 tensor '%s' has no quantization parameters: the QDQ export needs them", t->name);
    }
    tml_model *f = tml_model_clone(m);
    if (!f) return tml_error(TML_ERR_NOMEM, "out of memory");
    /* biases first: they need their node's input and weight scales */
    for (int i = 0; i < f->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (!(n->op == TML_OP_CONV2D || n->op == TML_OP_DEPTHWISE_CONV2D || n->op == TML_OP_DENSE)) continue;
        if (n->n_in < 3 || n->in[2] < 0) continue;
        tml_tensor *b = &f->tensors[n->in[2]];
        const tml_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]];
        if (b->dtype != TML_DTYPE_INT32 || x->q.n < 1 || w->q.n < 1) continue;
        const int64_t nb = tml_tensor_numel(b);
        float *v = malloc(sizeof(float) * (size_t)(nb ? nb : 1));
        if (!v) {
            tml_model_free(f);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
        for (int64_t k = 0; k < nb; k++)
            v[k] = (float)((double)x->q.scale[0] * (double)w->q.scale[w->q.n == 1 ? 0 : k] * ((const int32_t *)b->data)[k]);
        free(b->data);
        b->data = v;
        b->dtype = TML_DTYPE_F32;
    }
    for (int i = 0; i < f->n_tensors; i++) {
        tml_tensor *t = &f->tensors[i];
        if (t->dtype == TML_DTYPE_INT8 && t->kind == TML_TENSOR_PARAM) {
            const int64_t n = tml_tensor_numel(t);
            float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
            if (!v) {
                tml_model_free(f);
                return tml_error(TML_ERR_NOMEM, "out of memory");
            }
            const int axis = t->q.n > 1 ? t->q.axis : -1;
            int64_t inner = 1;
            for (int d = axis + 1; axis >= 0 && d < t->ndim; d++) inner *= t->dims[d];
            for (int64_t k = 0; k < n; k++) {
                const int c = axis >= 0 ? (int)((k / inner) % t->dims[axis]) : 0;
                const float s = t->q.n ? t->q.scale[c] : 1.0f;
                const int32_t z = t->q.n ? t->q.zero_point[c] : 0;
                v[k] = s * (float)(((const int8_t *)t->data)[k] - z);
            }
            free(t->data);
            t->data = v;
            t->dtype = TML_DTYPE_F32;
            tml_codebook_free(t->cb); /* the codebook of int8 codes means nothing for the float values */
            t->cb = NULL;
        } else if (t->dtype == TML_DTYPE_INT8) {
            t->dtype = TML_DTYPE_F32;
        } else if (t->dtype == TML_DTYPE_INT32) {
            tml_model_free(f);
            return tml_error(TML_ERR_UNSUPPORTED, "int32 tensor '%s' is not a layer's bias", t->name);
        }
    }
    *out = f;
    return TML_OK;
}

static tml_status check_model(const tml_model *m)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const tml_tensor *t = &m->tensors[i];
        if (t->dtype != TML_DTYPE_F32)
            return tml_error(TML_ERR_UNSUPPORTED,
                             "ONNX export covers float models; export the float model before quantizing "
                             "(tensor '%s' is %s)",
                             t->name, tml_dtype_name(t->dtype));
        if (t->kind == TML_TENSOR_PARAM && !t->data)
            return tml_error(TML_ERR_INVALID, "constant '%s' has no data", t->name);
    }
    if (m->input < 0 || m->input >= m->n_tensors || m->output < 0 || m->output >= m->n_tensors)
        return tml_error(TML_ERR_INVALID, "the model has no valid input/output (not finalized?)");
    const tml_tensor *in = &m->tensors[m->input];
    if (in->ndim < 1 || in->ndim > 4)
        return tml_error(TML_ERR_INVALID, "input '%s' has %d dims", in->name, in->ndim);
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (n->out < 0 || n->out >= m->n_tensors)
            return tml_error(TML_ERR_INVALID, "node '%s': bad output", n->name);
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] < -1 || n->in[k] >= m->n_tensors || (k < 2 && n->in[k] < 0))
                return tml_error(TML_ERR_INVALID, "node '%s': bad input %d", n->name, k);
    }
    return TML_OK;
}

static tml_status export_graph(const tml_model *m, const tml_model *qm, uint8_t **buf, size_t *len);

tml_status tml_onnx_export_mem(const tml_model *m, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (tml_model_is_quantized(m)) { /* QDQ form: the float twin's graph with QuantizeLinear / DequantizeLinear */
        tml_model *f = NULL;
        tml_status st = float_twin(m, &f);
        if (!st) st = check_model(f);
        if (!st) st = export_graph(f, m, buf, len);
        tml_model_free(f);
        return st;
    }
    tml_status st = check_model(m);
    if (st) return st;
    return export_graph(m, NULL, buf, len);
}

static tml_status export_graph(const tml_model *m, const tml_model *qm, uint8_t **buf, size_t *len)
{
    tml_status st;
    ex e;
    memset(&e, 0, sizeof e);
    e.m = m;
    e.qm = qm;
    e.view_tid = -1;
    e.val = calloc((size_t)m->n_tensors, sizeof(xval));
    if (!e.val) {
        ex_free(&e);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    /* the boundary names first, so no tinyml tensor takes them */
    const char *in_name = vname(&e, "input", NULL), *out_name = vname(&e, "output", NULL);
    const tml_tensor *it = &m->tensors[m->input], *ot = &m->tensors[m->output];
    e.val[m->input].name = in_name;
    e.val[m->input].layout = it->ndim == 3 ? LX_NCHW : LX_PLAIN;
    if (qm) e.val[m->input].name = qdq_act(&e, "input", in_name, m->input);
    for (int i = 0; i < m->n_nodes && !e.st; i++) convert_node(&e, &m->nodes[i]);
    e.cur_node = NULL;
    if (!e.st && !e.val[m->output].name) ex_fail(&e, TML_ERR_INVALID, "no node produces the graph output");

    /* the output in its canonical layout (a flattened image back in tinyml's
     * HWC order), named "output" */
    if (!e.st) {
        xval ov = e.val[m->output];
        if (ov.layout == LX_FLAT && !order_trivial(ov.src)) {
            xval r;
            relayout(&e, "output", &ov, ot, ot->ndim, ot->dims, 0, out_name, &r);
        } else if (ov.name == in_name) {
            add_node(&e, "Identity", "output", NULL, 1, &ov.name, out_name);
        } else {
            rename_value(&e, ov.name, out_name);
        }
    }
    if (e.st) {
        st = e.st;
        ex_free(&e);
        return st;
    }
    int64_t in_d[TML_MAX_DIMS], out_d[TML_MAX_DIMS];
    int in_nd = onnx_dims(it, e.val[m->input].layout, in_d);
    int out_nd = onnx_dims(ot, ot->ndim == 3 ? LX_NCHW : LX_PLAIN, out_d);
    st = serialize(&e, in_d, in_nd, out_d, out_nd, buf, len);
    ex_free(&e);
    return st;
}

/* ---- writing a file ------------------------------------------------------------------------ */

static const char *errstr(int e, char *buf, size_t cap)
{
    if (strerror_r(e, buf, cap) != 0) snprintf(buf, cap, "error %d", e);
    return buf;
}

tml_status tml_onnx_export_file(const tml_model *m, const char *path)
{
    uint8_t *buf;
    size_t len;
    tml_status st = tml_onnx_export_mem(m, &buf, &len);
    if (st) return st;
    if (!path || strcmp(path, "-") == 0) {
        char eb[128];
        errno = 0;
        size_t w = fwrite(buf, 1, len, stdout);
        if (w != len || fflush(stdout) != 0)
            st = tml_error(TML_ERR_IO, "cannot write the ONNX model to standard output: %s",
                           errstr(errno ? errno : EIO, eb, sizeof eb));
    } else {
        st = tml_write_file_atomic(path, buf, len);
    }
    free(buf);
    return st;
}
