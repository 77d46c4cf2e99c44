/*
 * tflite_export.c - writes a tinyml model as a TFLite flatbuffer
 * (tml_tflite.h, docs/tflite.md).
 *
 * The builder writes front to back: a table is written with placeholder
 * uoffsets, then its children after it, and each placeholder is patched with
 * the (forward, positive) distance to its child. A table's vtable is written
 * just before it (soffset = table - vtable > 0). Scalars are aligned to their
 * size, vectors so that their elements are (constant buffers to 16 bytes, as
 * the schema's force_align asks), tables to 4 (8 with 64-bit fields).
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

/* ---- builder ---------------------------------------------------------------------------- */

typedef struct fbb {
    uint8_t *b;
    size_t len, cap;
    int oom;
} fbb;

static void fbb_reserve(fbb *w, size_t n)
{
    if (w->oom || w->len + n <= w->cap) return;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + n) {
        if (cap > ((size_t)1 << 31)) {
            w->oom = 1;
            return;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(w->b, cap);
    if (!p) {
        w->oom = 1;
        return;
    }
    w->b = p;
    w->cap = cap;
}

static size_t fbb_pad(fbb *w, size_t align)
{
    const size_t n = (align - w->len % align) % align;
    fbb_reserve(w, n);
    if (w->oom) return 0;
    memset(w->b + w->len, 0, n);
    w->len += n;
    return w->len;
}

static size_t fbb_put(fbb *w, const void *p, size_t n)
{
    fbb_reserve(w, n);
    if (w->oom) return 0;
    const size_t at = w->len;
    if (n) memcpy(w->b + at, p, n);
    w->len += n;
    return at;
}

static void put_le(uint8_t *p, uint64_t v, int size)
{
    for (int i = 0; i < size; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static size_t fbb_u32(fbb *w, uint32_t v)
{
    uint8_t b[4];
    put_le(b, v, 4);
    return fbb_put(w, b, 4);
}

/* points the uoffset at `at` to `target` (which lies after it) */
static void fbb_link(fbb *w, size_t at, size_t target)
{
    if (w->oom) return;
    put_le(w->b + at, (uint32_t)(target - at), 4);
}

/* A table under construction: scalar fields with values, reference fields
 * with the position of their uoffset once written. */
#define TW_MAX 16
typedef struct tw {
    int n;
    struct {
        int id, size, ref;
        uint64_t v;
        size_t pos;
    } f[TW_MAX];
} tw;

static void tw_scalar(tw *t, int id, int size, uint64_t v)
{
    t->f[t->n].id = id;
    t->f[t->n].size = size;
    t->f[t->n].ref = 0;
    t->f[t->n].v = v;
    t->n++;
}
static void tw_ref(tw *t, int id)
{
    tw_scalar(t, id, 4, 0);
    t->f[t->n - 1].ref = 1;
}

/* Writes vtable and table; returns the table position. */
static size_t tw_write(fbb *w, tw *t)
{
    int maxid = -1, big = 0;
    for (int i = 0; i < t->n; i++) {
        maxid = t->f[i].id > maxid ? t->f[i].id : maxid;
        big |= t->f[i].size == 8;
    }
    /* field offsets: larger fields first, each aligned to its size */
    int order[TW_MAX], off[TW_MAX];
    for (int i = 0; i < t->n; i++) order[i] = i;
    for (int i = 1; i < t->n; i++)
        for (int j = i; j > 0 && t->f[order[j]].size > t->f[order[j - 1]].size; j--) {
            const int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    int o = 4;
    if (big) o = 8; /* the 8-byte fields start 8-aligned (table start is 8-aligned, soffset + pad) */
    for (int k = 0; k < t->n; k++) {
        const int i = order[k], s = t->f[i].size;
        o = (o + s - 1) / s * s;
        off[i] = o;
        o += s;
    }
    const int tsize = (o + 3) / 4 * 4;
    const int vsize = 4 + 2 * (maxid + 1);
    /* vtable, then the table aligned (its start is what the soffset measures from) */
    fbb_pad(w, 2);
    uint8_t vt[4 + 2 * 64];
    memset(vt, 0, sizeof vt);
    put_le(vt, (uint64_t)vsize, 2);
    put_le(vt + 2, (uint64_t)tsize, 2);
    for (int i = 0; i < t->n; i++) put_le(vt + 4 + 2 * t->f[i].id, (uint64_t)off[i], 2);
    const size_t vpos = fbb_put(w, vt, (size_t)vsize);
    fbb_pad(w, big ? 8 : 4);
    fbb_reserve(w, (size_t)tsize);
    if (w->oom) return 0;
    const size_t tpos = w->len;
    memset(w->b + tpos, 0, (size_t)tsize);
    put_le(w->b + tpos, (uint64_t)(uint32_t)(int32_t)(tpos - vpos), 4);
    for (int i = 0; i < t->n; i++) {
        put_le(w->b + tpos + off[i], t->f[i].v, t->f[i].size);
        t->f[i].pos = tpos + (size_t)off[i];
    }
    w->len += (size_t)tsize;
    return tpos;
}

static size_t tw_pos(const tw *t, int id)
{
    for (int i = 0; i < t->n; i++)
        if (t->f[i].id == id) return t->f[i].pos;
    return 0;
}

/* A vector of n elements of `elem` bytes whose data starts `align`-aligned;
 * returns the vector's position (its length field). */
static size_t fbb_vec(fbb *w, const void *data, uint32_t n, size_t elem, size_t align)
{
    if (align < 4) align = 4;
    while ((w->len + 4) % align) fbb_put(w, "", 1);
    if (w->oom) return 0;
    const size_t at = fbb_u32(w, n);
    fbb_put(w, data, (size_t)n * elem);
    return at;
}

static size_t fbb_vec_i32(fbb *w, const int32_t *v, int n)
{
    uint8_t *b = malloc((size_t)(n ? n : 1) * 4);
    if (!b) {
        w->oom = 1;
        return 0;
    }
    for (int i = 0; i < n; i++) put_le(b + 4 * i, (uint32_t)v[i], 4);
    const size_t at = fbb_vec(w, b, (uint32_t)n, 4, 4);
    free(b);
    return at;
}

static size_t fbb_string(fbb *w, const char *s)
{
    const size_t n = strlen(s);
    fbb_pad(w, 4);
    const size_t at = fbb_u32(w, (uint32_t)n);
    fbb_put(w, s, n);
    fbb_put(w, "", 1);
    return at;
}

/* vector of n table slots; slot i is at returned + 4 + 4 i */
static size_t fbb_slots(fbb *w, int n)
{
    fbb_pad(w, 4);
    const size_t at = fbb_u32(w, (uint32_t)n);
    for (int i = 0; i < n; i++) fbb_u32(w, 0);
    return at;
}

/* ---- the model as TFLite tensors and operators ----------------------------------------------- */

#define XT_MAX_IN 4

typedef struct xtensor {
    char *name;
    int type;              /* TFL_* */
    int ndim;
    int32_t shape[TML_MAX_DIMS + 1];
    int nq;
    float *scale;
    int64_t *zp;
    int qdim;
    uint8_t *data;         /* constant bytes (owned) or NULL */
    size_t nbytes;
} xtensor;

typedef struct xop {
    int code, version;
    int n_in;
    int in[XT_MAX_IN];
    int out;
    int opt_type;
    tw opt;
} xop;

typedef struct xmodel {
    xtensor *t;
    int nt, cap_t;
    xop *ops;
    int nops, cap_ops;
    int input, output;
} xmodel;

static void xm_free(xmodel *x)
{
    for (int i = 0; i < x->nt; i++) {
        free(x->t[i].name);
        free(x->t[i].scale);
        free(x->t[i].zp);
        free(x->t[i].data);
    }
    free(x->t);
    free(x->ops);
}

static int xm_tensor(xmodel *x, const char *name, int type)
{
    if (x->nt == x->cap_t) {
        const int cap = x->cap_t ? 2 * x->cap_t : 64;
        xtensor *p = realloc(x->t, sizeof *p * (size_t)cap);
        if (!p) return -1;
        x->t = p;
        x->cap_t = cap;
    }
    xtensor *t = &x->t[x->nt];
    memset(t, 0, sizeof *t);
    t->name = tml_strdup(name);
    t->type = type;
    if (!t->name) return -1;
    return x->nt++;
}

static xop *xm_op(xmodel *x, int code, int version)
{
    if (x->nops == x->cap_ops) {
        const int cap = x->cap_ops ? 2 * x->cap_ops : 64;
        xop *p = realloc(x->ops, sizeof *p * (size_t)cap);
        if (!p) return NULL;
        x->ops = p;
        x->cap_ops = cap;
    }
    xop *o = &x->ops[x->nops++];
    memset(o, 0, sizeof *o);
    o->code = code;
    o->version = version;
    return o;
}

static int set_xquant(xtensor *t, int n, const float *scale, const int32_t *zp, const int64_t *zp64, int qdim)
{
    t->scale = malloc(sizeof(float) * (size_t)n);
    t->zp = malloc(sizeof(int64_t) * (size_t)n);
    if (!t->scale || !t->zp) return -1;
    memcpy(t->scale, scale, sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) t->zp[i] = zp64 ? zp64[i] : zp ? zp[i] : 0;
    t->nq = n;
    t->qdim = qdim;
    return 0;
}

/* export state */
typedef struct exp_ctx {
    const tml_model *m;
    xmodel x;
    int *map; /* tinyml tensor -> TFLite tensor, -1 */
    int int8;
} exp_ctx;

#define EXERR(st, n, ...) tml_error_context(tml_error(st, __VA_ARGS__), "node '%s' (%s)", (n)->name, tml_op_name((n)->op))

/* TFLite tensor for tinyml tensor id (created on first use). Activations get
 * the batch dimension 1 in front; constants keep their dims. */
static tml_status xt_of(exp_ctx *c, int id, int *out)
{
    if (c->map[id] >= 0) {
        *out = c->map[id];
        return TML_OK;
    }
    const tml_tensor *t = &c->m->tensors[id];
    const int type = t->dtype == TML_DTYPE_INT8 ? TFL_INT8 : t->dtype == TML_DTYPE_INT32 ? TFL_INT32 : TFL_FLOAT32;
    const int k = xm_tensor(&c->x, t->name, type);
    if (k < 0) return tml_error(TML_ERR_NOMEM, "out of memory");
    xtensor *x = &c->x.t[k];
    const int act = t->kind == TML_TENSOR_ACT;
    x->ndim = t->ndim + act;
    if (act) x->shape[0] = 1;
    for (int i = 0; i < t->ndim; i++) x->shape[i + act] = t->dims[i];
    if (t->q.n > 0 && set_xquant(x, t->q.n, t->q.scale, t->q.zero_point, NULL, t->q.axis < 0 ? 0 : t->q.axis + act))
        return tml_error(TML_ERR_NOMEM, "out of memory");
    if (!act) {
        x->nbytes = tml_tensor_nbytes(t);
        x->data = malloc(x->nbytes ? x->nbytes : 1);
        if (!x->data) return tml_error(TML_ERR_NOMEM, "out of memory");
        /* little-endian bytes whatever the host */
        if (t->dtype == TML_DTYPE_INT8) memcpy(x->data, t->data, x->nbytes);
        else
            for (size_t i = 0; i < x->nbytes / 4; i++) {
                uint32_t u;
                memcpy(&u, (const uint8_t *)t->data + 4 * i, 4);
                put_le(x->data + 4 * i, u, 4);
            }
    }
    c->map[id] = k;
    *out = k;
    return TML_OK;
}

/* A new constant int32 vector tensor (shapes, axes, paddings). */
static tml_status const_i32(exp_ctx *c, const char *name, const int32_t *v, int n, int rows, int *out)
{
    char nm[1100];
    snprintf(nm, sizeof nm, "%.1000s", name);
    const int k = xm_tensor(&c->x, nm, TFL_INT32);
    if (k < 0) return tml_error(TML_ERR_NOMEM, "out of memory");
    xtensor *x = &c->x.t[k];
    x->ndim = rows > 1 ? 2 : 1;
    x->shape[0] = rows > 1 ? rows : n;
    x->shape[1] = rows > 1 ? n / rows : 0;
    x->nbytes = 4 * (size_t)n;
    x->data = malloc(x->nbytes ? x->nbytes : 1);
    if (!x->data) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) put_le(x->data + 4 * i, (uint32_t)v[i], 4);
    *out = k;
    return TML_OK;
}

static int tfl_act(tml_act a) { return a == TML_ACT_RELU ? TFL_ACT_RELU : a == TML_ACT_RELU6 ? TFL_ACT_RELU6 : TFL_ACT_NONE; }

/* SAME when the node's padding is what TFLite's SAME gives, VALID when zero,
 * -1 otherwise. */
static int padding_kind(const tml_node *n, int h, int w, int dil_h, int dil_w)
{
    if (!n->pad[0] && !n->pad[1] && !n->pad[2] && !n->pad[3]) return TFL_PAD_VALID;
    int want[4];
    const int ins[2] = {h, w}, ks[2] = {n->kh, n->kw}, ss[2] = {n->sh, n->sw}, ds[2] = {dil_h, dil_w};
    for (int a = 0; a < 2; a++) {
        const int eff = (ks[a] - 1) * ds[a] + 1, out = (ins[a] + ss[a] - 1) / ss[a];
        int total = (out - 1) * ss[a] + eff - ins[a];
        if (total < 0) total = 0;
        want[a] = total / 2;
        want[a + 2] = total - total / 2;
    }
    return want[0] == n->pad[0] && want[1] == n->pad[1] && want[2] == n->pad[2] && want[3] == n->pad[3] ? TFL_PAD_SAME
                                                                                                         : -1;
}

/* Bias scales of an int8 conv / dense: input scale times each weight scale
 * (the float product, as TFLite's quantizer writes them). */
static tml_status bias_quant(exp_ctx *c, const tml_node *n, int bt)
{
    const tml_tensor *x = &c->m->tensors[n->in[0]], *w = &c->m->tensors[n->in[1]];
    xtensor *b = &c->x.t[bt];
    if (!c->int8 || b->nq) return TML_OK;
    if (x->q.n < 1 || w->q.n < 1 || (w->q.n > 1 && w->q.n < b->shape[0]))
        return EXERR(TML_ERR_UNSUPPORTED, n, "int8 layer without the input or weight scales its bias needs");
    const int nb = b->shape[0];
    float *s = malloc(sizeof(float) * (size_t)nb);
    if (!s) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nb; i++) s[i] = x->q.scale[0] * w->q.scale[w->q.n == 1 ? 0 : i];
    const int r = set_xquant(b, w->q.n == 1 ? 1 : nb, s, NULL, NULL, 0);
    free(s);
    return r ? tml_error(TML_ERR_NOMEM, "out of memory") : TML_OK;
}

/* The node's input 0 as read: its TFLite tensor, through the dropout it may alias. */
static int src_of(const tml_model *m, int id)
{
    for (int guard = 0; guard < m->n_nodes; guard++) {
        const int p = tml_model_producer(m, id);
        if (p < 0 || m->nodes[p].op != TML_OP_DROPOUT) break;
        id = m->nodes[p].in[0];
    }
    return id;
}

static tml_status exp_conv(exp_ctx *c, const tml_node *n, int xin, int y)
{
    const tml_model *m = c->m;
    const tml_tensor *xt = &m->tensors[n->in[0]];
    const int dw = n->op == TML_OP_DEPTHWISE_CONV2D;
    int kind = padding_kind(n, xt->dims[0], xt->dims[1], n->dh, n->dw);
    int w, b = -1;
    tml_status st = xt_of(c, n->in[1], &w);
    if (st) return st;
    if (n->n_in > 2 && n->in[2] >= 0) {
        if ((st = xt_of(c, n->in[2], &b)) || (st = bias_quant(c, n, b))) return st;
    }
    if (kind < 0) { /* explicit PAD, then a VALID convolution */
        char nm[1100];
        snprintf(nm, sizeof nm, "%.1000s.pad", n->name);
        const int32_t pads[8] = {0, 0, n->pad[0], n->pad[2], n->pad[1], n->pad[3], 0, 0};
        int pt = -1, po;
        if ((st = const_i32(c, nm, pads, 8, 4, &pt))) return st;
        snprintf(nm, sizeof nm, "%.1000s.padded", n->name);
        if ((po = xm_tensor(&c->x, nm, c->x.t[xin].type)) < 0) return tml_error(TML_ERR_NOMEM, "out of memory");
        xtensor *p = &c->x.t[po], *src = &c->x.t[xin];
        p->ndim = 4;
        p->shape[0] = 1;
        p->shape[1] = xt->dims[0] + n->pad[0] + n->pad[2];
        p->shape[2] = xt->dims[1] + n->pad[1] + n->pad[3];
        p->shape[3] = xt->dims[2];
        if (src->nq && set_xquant(p, 1, src->scale, NULL, src->zp, 0)) return tml_error(TML_ERR_NOMEM, "out of memory");
        xop *o = xm_op(&c->x, TFL_PAD, c->int8 ? 2 : 1);
        if (!o) return tml_error(TML_ERR_NOMEM, "out of memory");
        o->n_in = 2;
        o->in[0] = xin;
        o->in[1] = pt;
        o->out = po;
        o->opt_type = TFL_OPT_PAD;
        xin = po;
        kind = TFL_PAD_VALID;
    }
    xop *o = xm_op(&c->x, dw ? TFL_DEPTHWISE_CONV_2D : TFL_CONV_2D, c->int8 ? 3 : 1);
    if (!o) return tml_error(TML_ERR_NOMEM, "out of memory");
    o->n_in = 3;
    o->in[0] = xin;
    o->in[1] = w;
    o->in[2] = b;
    o->out = y;
    o->opt_type = dw ? TFL_OPT_DEPTHWISE_CONV2D : TFL_OPT_CONV2D;
    tw *t = &o->opt;
    tw_scalar(t, dw ? TFL_DW_PADDING : TFL_CONV_PADDING, 1, (uint64_t)kind);
    tw_scalar(t, dw ? TFL_DW_STRIDE_W : TFL_CONV_STRIDE_W, 4, (uint64_t)n->sw);
    tw_scalar(t, dw ? TFL_DW_STRIDE_H : TFL_CONV_STRIDE_H, 4, (uint64_t)n->sh);
    if (dw) tw_scalar(t, TFL_DW_DEPTH_MULT, 4, (uint64_t)n->depth_mult);
    tw_scalar(t, dw ? TFL_DW_ACT : TFL_CONV_ACT, 1, (uint64_t)tfl_act(n->act));
    tw_scalar(t, dw ? TFL_DW_DILATION_W : TFL_CONV_DILATION_W, 4, (uint64_t)n->dw);
    tw_scalar(t, dw ? TFL_DW_DILATION_H : TFL_CONV_DILATION_H, 4, (uint64_t)n->dh);
    return TML_OK;
}

static tml_status exp_node(exp_ctx *c, const tml_node *n)
{
    const tml_model *m = c->m;
    if (n->op == TML_OP_DROPOUT) return TML_OK; /* identity: readers use its input */
    if (n->op == TML_OP_BATCHNORM)
        return EXERR(TML_ERR_UNSUPPORTED, n, "TFLite has no batch norm: fold it into the layer before (tinyml's export folds float models)");
    int x, y;
    tml_status st = xt_of(c, src_of(m, n->in[0]), &x);
    if (st || (st = xt_of(c, n->out, &y))) return st;
    xop *o;
    const int q = c->int8;
    switch (n->op) {
    case TML_OP_CONV2D:
    case TML_OP_DEPTHWISE_CONV2D: return exp_conv(c, n, x, y);
    case TML_OP_DENSE: {
        int w, b = -1;
        if ((st = xt_of(c, n->in[1], &w))) return st;
        if (n->n_in > 2 && n->in[2] >= 0 && ((st = xt_of(c, n->in[2], &b)) || (st = bias_quant(c, n, b)))) return st;
        const int perch = m->tensors[n->in[1]].q.n > 1;
        if (!(o = xm_op(&c->x, TFL_FULLY_CONNECTED, q ? (perch ? 12 : 4) : 1))) break;
        o->n_in = 3;
        o->in[0] = x;
        o->in[1] = w;
        o->in[2] = b;
        o->opt_type = TFL_OPT_FULLY_CONNECTED;
        tw_scalar(&o->opt, TFL_FC_ACT, 1, (uint64_t)tfl_act(n->act));
        break;
    }
    case TML_OP_MAXPOOL:
    case TML_OP_AVGPOOL: {
        const tml_tensor *xt = &m->tensors[n->in[0]];
        const int kind = padding_kind(n, xt->dims[0], xt->dims[1], 1, 1);
        if (kind < 0 || n->dh != 1 || n->dw != 1)
            return EXERR(TML_ERR_UNSUPPORTED, n, "TFLite pools take SAME or VALID padding and no dilation; this pool's padding is [%d,%d,%d,%d]",
                         n->pad[0], n->pad[1], n->pad[2], n->pad[3]);
        if (!(o = xm_op(&c->x, n->op == TML_OP_AVGPOOL ? TFL_AVERAGE_POOL_2D : TFL_MAX_POOL_2D, q ? 2 : 1))) break;
        o->n_in = 1;
        o->in[0] = x;
        o->opt_type = TFL_OPT_POOL2D;
        tw_scalar(&o->opt, TFL_POOL_PADDING, 1, (uint64_t)kind);
        tw_scalar(&o->opt, TFL_POOL_STRIDE_W, 4, (uint64_t)n->sw);
        tw_scalar(&o->opt, TFL_POOL_STRIDE_H, 4, (uint64_t)n->sh);
        tw_scalar(&o->opt, TFL_POOL_FILTER_W, 4, (uint64_t)n->kw);
        tw_scalar(&o->opt, TFL_POOL_FILTER_H, 4, (uint64_t)n->kh);
        tw_scalar(&o->opt, TFL_POOL_ACT, 1, TFL_ACT_NONE);
        break;
    }
    case TML_OP_GLOBAL_AVGPOOL: {
        char nm[1100];
        snprintf(nm, sizeof nm, "%.1000s.axes", n->name);
        const int32_t axes[2] = {1, 2};
        int at = -1;
        if ((st = const_i32(c, nm, axes, 2, 1, &at))) return st;
        if (!(o = xm_op(&c->x, TFL_MEAN, q ? 2 : 1))) break;
        o->n_in = 2;
        o->in[0] = x;
        o->in[1] = at;
        o->opt_type = TFL_OPT_REDUCER;
        tw_scalar(&o->opt, TFL_REDUCER_KEEP_DIMS, 1, 0);
        break;
    }
    case TML_OP_ADD: {
        int b;
        if ((st = xt_of(c, src_of(m, n->in[1]), &b))) return st;
        if (!(o = xm_op(&c->x, TFL_ADD, q ? 2 : 1))) break;
        o->n_in = 2;
        o->in[0] = x;
        o->in[1] = b;
        o->opt_type = TFL_OPT_ADD;
        tw_scalar(&o->opt, TFL_ADD_ACT, 1, (uint64_t)tfl_act(n->act));
        break;
    }
    case TML_OP_RESHAPE: {
        char nm[1100];
        snprintf(nm, sizeof nm, "%.1000s.shape", n->name);
        int st_t = -1;
        if ((st = const_i32(c, nm, c->x.t[y].shape, c->x.t[y].ndim, 1, &st_t))) return st;
        if (!(o = xm_op(&c->x, TFL_RESHAPE, 1))) break;
        o->n_in = 2;
        o->in[0] = x;
        o->in[1] = st_t;
        o->opt_type = TFL_OPT_RESHAPE;
        tw_ref(&o->opt, TFL_RESHAPE_NEW_SHAPE);
        break;
    }
    case TML_OP_SOFTMAX: {
        if (!(o = xm_op(&c->x, TFL_SOFTMAX, q ? 2 : 1))) break;
        o->n_in = 1;
        o->in[0] = x;
        o->opt_type = TFL_OPT_SOFTMAX;
        uint32_t u;
        memcpy(&u, &n->beta, 4);
        tw_scalar(&o->opt, TFL_SOFTMAX_BETA, 4, u);
        break;
    }
    case TML_OP_RELU:
    case TML_OP_RELU6:
        if (!(o = xm_op(&c->x, n->op == TML_OP_RELU ? TFL_RELU : TFL_RELU6, q ? 2 : 1))) break;
        o->n_in = 1;
        o->in[0] = x;
        break;
    default: return EXERR(TML_ERR_UNSUPPORTED, n, "no TFLite equivalent");
    }
    if (!o) return tml_error(TML_ERR_NOMEM, "out of memory");
    o->out = y;
    return TML_OK;
}

/* The boundary ops of a float_io model: float32 tensors around the int8 graph. */
static tml_status exp_boundary(exp_ctx *c, int int8_t_idx, int is_input, int *out)
{
    const xtensor *q = &c->x.t[int8_t_idx];
    char nm[1100];
    snprintf(nm, sizeof nm, "%.1000s_float", q->name);
    const int k = xm_tensor(&c->x, nm, TFL_FLOAT32);
    if (k < 0) return tml_error(TML_ERR_NOMEM, "out of memory");
    xtensor *f = &c->x.t[k];
    q = &c->x.t[int8_t_idx];
    f->ndim = q->ndim;
    memcpy(f->shape, q->shape, sizeof f->shape);
    xop *o = xm_op(&c->x, is_input ? TFL_QUANTIZE : TFL_DEQUANTIZE, is_input ? 1 : 2);
    if (!o) return tml_error(TML_ERR_NOMEM, "out of memory");
    o->n_in = 1;
    o->in[0] = is_input ? k : int8_t_idx;
    o->out = is_input ? int8_t_idx : k;
    o->opt_type = is_input ? TFL_OPT_QUANTIZE : TFL_OPT_DEQUANTIZE;
    *out = k;
    return TML_OK;
}

/* ---- serialization -------------------------------------------------------------------------- */

static size_t write_quant(fbb *w, const xtensor *t)
{
    tw q = {0};
    tw_ref(&q, TFL_QUANT_SCALE);
    tw_ref(&q, TFL_QUANT_ZERO_POINT);
    if (t->nq > 1) tw_scalar(&q, TFL_QUANT_DIMENSION, 4, (uint64_t)t->qdim);
    const size_t qp = tw_write(w, &q);
    uint8_t *b = malloc(8 * (size_t)t->nq);
    if (!b) {
        w->oom = 1;
        return qp;
    }
    for (int i = 0; i < t->nq; i++) {
        uint32_t u;
        memcpy(&u, &t->scale[i], 4);
        put_le(b + 4 * i, u, 4);
    }
    fbb_link(w, tw_pos(&q, TFL_QUANT_SCALE), fbb_vec(w, b, (uint32_t)t->nq, 4, 4));
    for (int i = 0; i < t->nq; i++) put_le(b + 8 * i, (uint64_t)t->zp[i], 8);
    fbb_link(w, tw_pos(&q, TFL_QUANT_ZERO_POINT), fbb_vec(w, b, (uint32_t)t->nq, 8, 8));
    free(b);
    return qp;
}

static size_t write_tensor(fbb *w, const xtensor *t, uint32_t buffer)
{
    tw tt = {0};
    tw_ref(&tt, TFL_TENSOR_SHAPE);
    tw_scalar(&tt, TFL_TENSOR_TYPE, 1, (uint64_t)t->type);
    tw_scalar(&tt, TFL_TENSOR_BUFFER, 4, buffer);
    tw_ref(&tt, TFL_TENSOR_NAME);
    if (t->nq) tw_ref(&tt, TFL_TENSOR_QUANTIZATION);
    const size_t at = tw_write(w, &tt);
    fbb_link(w, tw_pos(&tt, TFL_TENSOR_SHAPE), fbb_vec_i32(w, t->shape, t->ndim));
    fbb_link(w, tw_pos(&tt, TFL_TENSOR_NAME), fbb_string(w, t->name));
    if (t->nq) fbb_link(w, tw_pos(&tt, TFL_TENSOR_QUANTIZATION), write_quant(w, t));
    return at;
}

static size_t write_op(fbb *w, xop *o, int opcode, const xmodel *x)
{
    tw ot = {0};
    tw_scalar(&ot, TFL_OP_OPCODE_INDEX, 4, (uint64_t)opcode);
    tw_ref(&ot, TFL_OP_INPUTS);
    tw_ref(&ot, TFL_OP_OUTPUTS);
    if (o->opt_type) {
        tw_scalar(&ot, TFL_OP_OPTIONS_TYPE, 1, (uint64_t)o->opt_type);
        tw_ref(&ot, TFL_OP_OPTIONS);
    }
    const size_t at = tw_write(w, &ot);
    fbb_link(w, tw_pos(&ot, TFL_OP_INPUTS), fbb_vec_i32(w, o->in, o->n_in));
    fbb_link(w, tw_pos(&ot, TFL_OP_OUTPUTS), fbb_vec_i32(w, &o->out, 1));
    if (o->opt_type) {
        const size_t op = tw_write(w, &o->opt);
        fbb_link(w, tw_pos(&ot, TFL_OP_OPTIONS), op);
        if (o->code == TFL_RESHAPE) /* new_shape = the output's shape */
            fbb_link(w, tw_pos(&o->opt, TFL_RESHAPE_NEW_SHAPE), fbb_vec_i32(w, x->t[o->out].shape, x->t[o->out].ndim));
    }
    return at;
}

static tml_status serialize(const xmodel *x, const char *meta_json, const char *nodes_json, uint8_t **buf, size_t *len)
{
    fbb w = {0};
    /* op codes: one per (code, version) */
    int codes[64], versions[64], ncodes = 0;
    int *op_code_idx = malloc(sizeof(int) * (size_t)(x->nops ? x->nops : 1));
    uint32_t *buf_of = malloc(sizeof(uint32_t) * (size_t)(x->nt ? x->nt : 1));
    if (!op_code_idx || !buf_of) {
        free(op_code_idx);
        free(buf_of);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < x->nops; i++) {
        int k = 0;
        while (k < ncodes && !(codes[k] == x->ops[i].code && versions[k] == x->ops[i].version)) k++;
        if (k == ncodes && ncodes < 64) {
            codes[ncodes] = x->ops[i].code;
            versions[ncodes++] = x->ops[i].version;
        }
        op_code_idx[i] = k;
    }
    /* buffers: 0 is the empty sentinel, then one per constant, then metadata */
    uint32_t nbuf = 1;
    for (int i = 0; i < x->nt; i++) buf_of[i] = x->t[i].data ? nbuf++ : 0;
    const uint32_t meta_buf = nbuf++, nodes_buf = nbuf++;

    fbb_u32(&w, 0); /* root offset, patched below */
    fbb_put(&w, "TFL3", 4);
    tw mt = {0};
    tw_scalar(&mt, TFL_MODEL_VERSION, 4, 3);
    tw_ref(&mt, TFL_MODEL_OPERATOR_CODES);
    tw_ref(&mt, TFL_MODEL_SUBGRAPHS);
    tw_ref(&mt, TFL_MODEL_DESCRIPTION);
    tw_ref(&mt, TFL_MODEL_BUFFERS);
    tw_ref(&mt, TFL_MODEL_METADATA);
    const size_t root = tw_write(&w, &mt);
    fbb_link(&w, 0, root);

    size_t v = fbb_slots(&w, ncodes);
    fbb_link(&w, tw_pos(&mt, TFL_MODEL_OPERATOR_CODES), v);
    for (int k = 0; k < ncodes; k++) {
        tw ct = {0};
        tw_scalar(&ct, TFL_OPCODE_DEPRECATED_BUILTIN, 1,
                  (uint64_t)(codes[k] < TFL_PLACEHOLDER_FOR_GREATER_OP_CODES ? codes[k] : TFL_PLACEHOLDER_FOR_GREATER_OP_CODES));
        tw_scalar(&ct, TFL_OPCODE_VERSION, 4, (uint64_t)versions[k]);
        tw_scalar(&ct, TFL_OPCODE_BUILTIN, 4, (uint64_t)codes[k]);
        fbb_link(&w, v + 4 + 4 * (size_t)k, tw_write(&w, &ct));
    }
    v = fbb_slots(&w, 1);
    fbb_link(&w, tw_pos(&mt, TFL_MODEL_SUBGRAPHS), v);
    tw sg = {0};
    tw_ref(&sg, TFL_SUBGRAPH_TENSORS);
    tw_ref(&sg, TFL_SUBGRAPH_INPUTS);
    tw_ref(&sg, TFL_SUBGRAPH_OUTPUTS);
    tw_ref(&sg, TFL_SUBGRAPH_OPERATORS);
    tw_ref(&sg, TFL_SUBGRAPH_NAME);
    const size_t sgp = tw_write(&w, &sg);
    fbb_link(&w, v + 4, sgp);
    size_t tv = fbb_slots(&w, x->nt);
    fbb_link(&w, tw_pos(&sg, TFL_SUBGRAPH_TENSORS), tv);
    for (int i = 0; i < x->nt; i++) fbb_link(&w, tv + 4 + 4 * (size_t)i, write_tensor(&w, &x->t[i], buf_of[i]));
    fbb_link(&w, tw_pos(&sg, TFL_SUBGRAPH_INPUTS), fbb_vec_i32(&w, &x->input, 1));
    fbb_link(&w, tw_pos(&sg, TFL_SUBGRAPH_OUTPUTS), fbb_vec_i32(&w, &x->output, 1));
    size_t ov = fbb_slots(&w, x->nops);
    fbb_link(&w, tw_pos(&sg, TFL_SUBGRAPH_OPERATORS), ov);
    for (int i = 0; i < x->nops; i++) fbb_link(&w, ov + 4 + 4 * (size_t)i, write_op(&w, &x->ops[i], op_code_idx[i], x));
    fbb_link(&w, tw_pos(&sg, TFL_SUBGRAPH_NAME), fbb_string(&w, "main"));
    fbb_link(&w, tw_pos(&mt, TFL_MODEL_DESCRIPTION), fbb_string(&w, "tinyml " TML_VERSION_STRING));

    /* buffers: data 16-byte aligned */
    size_t bv = fbb_slots(&w, (int)nbuf);
    fbb_link(&w, tw_pos(&mt, TFL_MODEL_BUFFERS), bv);
    for (uint32_t b = 0; b < nbuf; b++) {
        const uint8_t *data = NULL;
        size_t n = 0;
        for (int i = 0; i < x->nt && !data; i++)
            if (buf_of[i] == b && x->t[i].data) data = x->t[i].data, n = x->t[i].nbytes;
        if (b == meta_buf) data = (const uint8_t *)meta_json, n = strlen(meta_json);
        if (b == nodes_buf) data = (const uint8_t *)nodes_json, n = strlen(nodes_json);
        tw bt = {0};
        if (data) tw_ref(&bt, TFL_BUFFER_DATA);
        const size_t bp = tw_write(&w, &bt);
        fbb_link(&w, bv + 4 + 4 * (size_t)b, bp);
        if (data) fbb_link(&w, tw_pos(&bt, TFL_BUFFER_DATA), fbb_vec(&w, data, (uint32_t)n, 1, 16));
    }
    size_t mv = fbb_slots(&w, 2);
    fbb_link(&w, tw_pos(&mt, TFL_MODEL_METADATA), mv);
    for (int k = 0; k < 2; k++) {
        tw et = {0};
        tw_ref(&et, TFL_METADATA_NAME);
        tw_scalar(&et, TFL_METADATA_BUFFER, 4, k ? nodes_buf : meta_buf);
        const size_t ep = tw_write(&w, &et);
        fbb_link(&w, mv + 4 + 4 * (size_t)k, ep);
        fbb_link(&w, tw_pos(&et, TFL_METADATA_NAME), fbb_string(&w, k ? "tinyml_nodes" : TML_TFLITE_META_NAME));
    }
    fbb_pad(&w, 16);
    free(op_code_idx);
    free(buf_of);
    if (w.oom) {
        free(w.b);
        return tml_error(TML_ERR_NOMEM, "out of memory writing the TFLite file");
    }
    *buf = w.b;
    *len = w.len;
    return TML_OK;
}

tml_status tml_tflite_export_mem(const tml_model *m, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    exp_ctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.int8 = tml_model_is_quantized(m);
    c.map = malloc(sizeof(int) * (size_t)(m->n_tensors ? m->n_tensors : 1));
    char *meta = NULL, *nodes = NULL;
    cJSON *names = cJSON_CreateArray();
    tml_status st = c.map && names ? TML_OK : tml_error(TML_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < m->n_tensors; i++) c.map[i] = -1;
    for (int i = 0; !st && i < m->n_tensors; i++) {
        const tml_tensor *t = &m->tensors[i];
        if (t->kind == TML_TENSOR_ACT && c.int8 && t->dtype == TML_DTYPE_F32)
            st = tml_error(TML_ERR_UNSUPPORTED, "tensor '%s' is float in an int8 model", t->name);
    }
    int in = -1, out = -1;
    if (!st) st = xt_of(&c, m->input, &in);
    if (!st) c.x.input = in;
    for (int i = 0; !st && i < m->n_nodes; i++) {
        st = exp_node(&c, &m->nodes[i]);
        if (!st && m->nodes[i].op != TML_OP_DROPOUT) {
            cJSON *s = cJSON_CreateString(m->nodes[i].name);
            if (!s || !cJSON_AddItemToArray(names, s)) st = tml_error(TML_ERR_NOMEM, "out of memory");
        }
    }
    if (!st) st = xt_of(&c, src_of(m, m->output), &out);
    if (!st) c.x.output = out;
    if (!st && c.int8 && m->meta.float_io) {
        int fi, fo;
        /* QUANTIZE goes first: rotate it to the front after adding */
        st = exp_boundary(&c, in, 1, &fi);
        if (!st) {
            xop q = c.x.ops[c.x.nops - 1];
            memmove(c.x.ops + 1, c.x.ops, sizeof(xop) * (size_t)(c.x.nops - 1));
            c.x.ops[0] = q;
            st = exp_boundary(&c, out, 0, &fo);
        }
        if (!st) {
            c.x.input = fi;
            c.x.output = fo;
        }
    }
    if (!st) st = tml_meta_to_json(&m->meta, &meta);
    if (!st && !(nodes = cJSON_PrintUnformatted(names))) st = tml_error(TML_ERR_NOMEM, "out of memory");
    if (!st) st = serialize(&c.x, meta, nodes, buf, len);
    free(meta);
    free(nodes);
    cJSON_Delete(names);
    free(c.map);
    xm_free(&c.x);
    return st;
}

tml_status tml_tflite_export_file(const tml_model *m, const char *path)
{
    uint8_t *buf;
    size_t len;
    tml_status st = tml_tflite_export_mem(m, &buf, &len);
    if (st) return st;
    if (!path || strcmp(path, "-") == 0) {
        if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
            st = tml_error(TML_ERR_IO, "cannot write the TFLite model to standard output: %s", strerror(errno ? errno : EIO));
    } else {
        st = tml_write_file_atomic(path, buf, len);
    }
    free(buf);
    return st;
}
