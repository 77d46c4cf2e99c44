/*
 * onnx.c - ONNX model import: ModelProto (decoded by onnx_pb.c) -> tml_model.
 *
 * Steps:
 *   1. checks: one default-domain opset in [TML_ONNX_OPSET_MIN, MAX], one graph
 *      output, one graph input that is not an initializer (or bound to a
 *      constant through opts, for conformance tests)
 *   2. the nodes the output depends on are found by an iterative depth-first
 *      walk from the output's producer, which also orders them and detects
 *      cycles (a node met again while it is still open)
 *   3. each node is converted in that order. Values are constants (decoded
 *      initializers, Constant nodes, folded shape arithmetic) or activations
 *      (a tinyml tensor plus the ONNX shape and how its elements are ordered:
 *      PLAIN, NCHW-stored-as-HWC or flattened-CHW-stored-as-HWC)
 *   4. tml_model_finalize() validates, orders and infers shapes; every
 *      activation's inferred dims are compared with the ONNX shape we computed,
 *      and the graph output with its declared shape.
 *
 * Dimension 0 of activations is the batch: stripped from tinyml tensors and
 * represented in shape constants by BATCH_SYM so `x.view(x.size(0), -1)`
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) folds to a flatten.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"
#include "tinyml/tml_onnx.h"

/* Largest constant computed at import (elements): broadcasting or gathering
 * can make a small file describe a huge tensor. */
#define FOLD_MAX_NUMEL ((int64_t)1 << 24)

/* Entry of an integer shape constant that stands for the (unknown) batch size. */
#define BATCH_SYM (INT64_MIN / 2)

/* batch norm with these statistics is y = x * gamma + beta exactly:
 * sqrtf(BN_VAR + BN_EPS) == 1.0f (both exact binary fractions). */
#define BN_EPS (1.0f / 131072.0f)
#define BN_VAR (1.0f - BN_EPS)

enum { V_NONE = 0, V_LAZY, V_CONST, V_ACT };
enum { L_PLAIN = TML_ONNX_PLAIN, L_NCHW = TML_ONNX_NCHW, L_FLAT = TML_ONNX_FLAT_CHW };

typedef struct oval {
    char *name;
    int kind;
    const onx_tensor *init; /* V_LAZY: initializer not decoded yet */
    int rank;
    int64_t dims[ONX_MAX_RANK]; /* ONNX dims; activations: [0] = declared batch (-1 symbolic) */
    /* V_CONST */
    int is_int;
    float *f;   /* (numel) ONNX order, when !is_int */
    int64_t *i; /* (numel) when is_int */
    int64_t numel;
    /* V_ACT */
    int tid;        /* tinyml tensor */
    int layout;     /* L_* */
    int hw_view;    /* L_NCHW with H = W = 1 stored as a (C) tensor */
    int tid3;       /* cached (H,W,C) view of an hw_view / plain image value, or -1 */
    int prod;       /* tinyml node that writes tid and may absorb a bias/activation, or -1 */
    int64_t src[3]; /* L_FLAT: the (C,H,W) the features were flattened from */
    int uses;       /* readers among the used nodes (+1 for the graph output) */
    int left;       /* readers not converted yet: a constant's data is freed at 0 */
} oval;

/* Open-addressing map from byte strings to ints. */
typedef struct smap {
    char **key;
    size_t *klen;
    int *val;
    size_t cap, n;
} smap;

typedef struct opcount {
    char name[32];
    int n;
} opcount;

typedef struct ctx {
    const onx_model *om;
    const onx_graph *g;
    const tml_onnx_opts *opts;
    int opset;
    tml_model *m;
    oval *v;
    int nv, capv;
    smap vmap;   /* value name -> index into v */
    smap uses;   /* value name -> readers among the used nodes (+1 for the graph output) */
    smap tnames; /* tinyml tensor names taken */
    smap nnames; /* tinyml node names taken */
    int64_t batch;
    const onx_node *node; /* node being converted */
    int node_idx;
    int folded, fused;
    opcount ops[64];
    int n_ops;
} ctx;

/* ---- string map ---------------------------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static size_t smap_slot(const smap *m, const void *k, size_t kl)
{
    size_t i = (size_t)hash_bytes(k, kl) & (m->cap - 1);
    /* an empty key (unnamed value) may come with k == NULL: no memcmp then */
    while (m->key[i] && !(m->klen[i] == kl && (kl == 0 || memcmp(m->key[i], k, kl) == 0))) i = (i + 1) & (m->cap - 1);
    return i;
}

static int smap_get(const smap *m, const void *k, size_t kl)
{
    if (!m->cap) return -1;
    size_t i = smap_slot(m, k, kl);
    return m->key[i] ? m->val[i] : -1;
}

static tml_status smap_put(smap *m, const void *k, size_t kl, int val)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        smap o = *m;
        m->key = calloc(nc, sizeof *m->key);
        m->klen = calloc(nc, sizeof *m->klen);
        m->val = calloc(nc, sizeof *m->val);
        if (!m->key || !m->klen || !m->val) {
            free(m->key);
            free(m->klen);
            free(m->val);
            *m = o;
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
        m->cap = nc;
        for (size_t i = 0; i < o.cap; i++) {
            if (!o.key[i]) continue;
            size_t s = smap_slot(m, o.key[i], o.klen[i]);
            m->key[s] = o.key[i];
            m->klen[s] = o.klen[i];
            m->val[s] = o.val[i];
        }
        free(o.key);
        free(o.klen);
        free(o.val);
    }
    size_t s = smap_slot(m, k, kl);
    if (!m->key[s]) {
        m->key[s] = malloc(kl ? kl : 1);
        if (!m->key[s]) return tml_error(TML_ERR_NOMEM, "out of memory");
        if (kl) memcpy(m->key[s], k, kl);
        m->klen[s] = kl;
        m->n++;
    }
    m->val[s] = val;
    return TML_OK;
}

static void smap_free(smap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->key[i]);
    free(m->key);
    free(m->klen);
    free(m->val);
    memset(m, 0, sizeof *m);
}

/* ---- messages --------------------------------------------------------------------------- */

static void node_desc(const ctx *c, char *buf, size_t cap)
{
    if (!c->node) {
        snprintf(buf, cap, "graph");
        return;
    }
    char nm[96], op[48], out[96];
    onx_slice_print(c->node->name, nm, sizeof nm);
    onx_slice_print(c->node->op_type, op, sizeof op);
    if (*nm) {
        snprintf(buf, cap, "node '%s' (%s, opset %d)", nm, op, c->opset);
        return;
    }
    onx_slice_print(c->node->n_out ? c->node->out[0] : c->node->name, out, sizeof out);
    snprintf(buf, cap, "node #%d writing '%s' (%s, opset %d)", c->node_idx, out, op, c->opset);
}

/* Error about the current node. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static tml_status
nerr(ctx *c, tml_status st, const char *fmt, ...)
{
    char msg[640], d[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_desc(c, d, sizeof d);
    return tml_error(st, "%s: %s", d, msg);
}

/* Adds the current node as context to an error set below. */
static tml_status nctx(ctx *c, tml_status st)
{
    char d[200];
    node_desc(c, d, sizeof d);
    return tml_error_context(st, "%s", d);
}

static void dims_str(int rank, const int64_t *d, char *buf, size_t cap)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "(");
    for (int i = 0; i < rank && o < cap; i++) {
        if (d[i] == -1 || d[i] == BATCH_SYM)
            o += (size_t)snprintf(buf + o, cap - o, "%sN", i ? "," : "");
        else
            o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "", (long long)d[i]);
    }
    if (o < cap) snprintf(buf + o, cap - o, ")");
}

/* ---- values ---------------------------------------------------------------------------------- */

static oval *val_lookup(ctx *c, onx_slice name)
{
    int i = smap_get(&c->vmap, name.p, name.n);
    return i >= 0 ? &c->v[i] : NULL;
}

static int uses_of(const ctx *c, onx_slice name)
{
    int u = smap_get(&c->uses, name.p, name.n);
    return u < 0 ? 0 : u;
}

/* A new value named `name` (which must be new). */
static tml_status val_new(ctx *c, onx_slice name, oval **out)
{
    if (c->nv >= c->capv) return tml_error(TML_ERR_FORMAT, "more values than the graph declares");
    if (smap_get(&c->vmap, name.p, name.n) >= 0) {
        char nm[96];
        onx_slice_print(name, nm, sizeof nm);
        return tml_error(TML_ERR_FORMAT, "value '%s' is defined twice", nm);
    }
    oval *v = &c->v[c->nv];
    memset(v, 0, sizeof *v);
    v->tid = v->tid3 = v->prod = -1;
    v->uses = v->left = uses_of(c, name);
    v->name = onx_slice_dup(name);
    if (!v->name) return TML_ERR_NOMEM;
    tml_status st = smap_put(&c->vmap, name.p, name.n, c->nv);
    if (st) {
        free(v->name);
        return st;
    }
    c->nv++;
    *out = v;
    return TML_OK;
}

static void val_release(oval *v)
{
    free(v->name);
    free(v->f);
    free(v->i);
}

static int64_t sample_numel(const oval *v)
{
    int64_t n = 1;
    for (int i = 1; i < v->rank; i++) n *= v->dims[i];
    return n;
}

/* tinyml dims of an activation value. */
static int tdims_of(const oval *v, int32_t *d)
{
    if (v->layout == L_NCHW) {
        if (v->hw_view) {
            d[0] = (int32_t)v->dims[1];
            return 1;
        }
        d[0] = (int32_t)v->dims[2];
        d[1] = (int32_t)v->dims[3];
        d[2] = (int32_t)v->dims[1];
        return 3;
    }
    if (v->layout == L_FLAT) {
        d[0] = (int32_t)v->dims[1];
        return 1;
    }
    for (int i = 1; i < v->rank; i++) d[i - 1] = (int32_t)v->dims[i];
    return v->rank - 1;
}

/* ---- tinyml tensors and nodes with unique names ----------------------------------------------- */

static int unique_name(smap *taken, const char *base, char *out, size_t cap)
{
    snprintf(out, cap, "%s", base && *base ? base : "t");
    for (int k = 2; smap_get(taken, out, strlen(out)) >= 0; k++) {
        if (k > 1000000) return tml_error(TML_ERR_FORMAT, "too many names like '%s'", base);
        snprintf(out, cap, "%.*s_%d", (int)(cap - 16), base && *base ? base : "t", k);
    }
    return TML_OK;
}

static int add_tensor(ctx *c, const char *base, tml_tensor_kind kind, int ndim, const int32_t *dims,
                      const float *data)
{
    char name[ONX_MAX_NAME + 64];
    tml_status st = unique_name(&c->tnames, base, name, sizeof name);
    if (st) return st;
    for (int i = 0; i < ndim; i++)
        if (dims[i] < 1 || dims[i] > (1 << 24))
            return nerr(c, TML_ERR_UNSUPPORTED, "tensor '%s' would have dimension %d", name, dims[i]);
    int id = tml_model_add_tensor(c->m, name, TML_DTYPE_F32, kind, ndim, dims, data);
    if (id < 0) return id;
    st = smap_put(&c->tnames, name, strlen(name), id);
    return st ? st : id;
}

static int add_node(ctx *c, const char *base, tml_op op, int n_in, const int *in, int out)
{
    char name[ONX_MAX_NAME + 64];
    tml_status st = unique_name(&c->nnames, base, name, sizeof name);
    if (st) return st;
    int id = tml_model_add_node(c->m, name, op, n_in, in, out);
    if (id < 0) return id;
    st = smap_put(&c->nnames, name, strlen(name), id);
    return st ? st : id;
}

/* Name of the current node for tinyml (its ONNX name, else its first output). */
static void node_base(const ctx *c, char *buf, size_t cap)
{
    onx_slice s = c->node->name.n ? c->node->name : (c->node->n_out ? c->node->out[0] : c->node->op_type);
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    if (n && memchr(s.p, 0, n)) n = 0;
    memcpy(buf, s.p, n);
    buf[n] = '\0';
}

/* ---- attributes ---------------------------------------------------------------------------------- */

static const onx_attr *attr_get(const ctx *c, const char *name)
{
    for (int i = 0; i < c->node->n_attr; i++)
        if (onx_slice_eq(c->node->attr[i].name, name)) return &c->node->attr[i];
    return NULL;
}

/* Every attribute must be one the op handler knows: an unknown one could
 * change the semantics. consumed_inputs (opsets < 6) is a legacy hint. */
static tml_status attr_check(ctx *c, const char *const *known)
{
    for (int i = 0; i < c->node->n_attr; i++) {
        const onx_attr *a = &c->node->attr[i];
        if (a->has_ref)
            return nerr(c, TML_ERR_UNSUPPORTED,
                        "attribute references (ref_attr_name) are only valid inside functions");
        if (onx_slice_eq(a->name, "consumed_inputs")) continue;
        int ok = 0;
        for (int k = 0; known[k] && !ok; k++) ok = onx_slice_eq(a->name, known[k]);
        if (!ok) {
            char nm[64];
            onx_slice_print(a->name, nm, sizeof nm);
            return nerr(c, TML_ERR_UNSUPPORTED, "attribute '%s' is not supported", nm);
        }
    }
    return TML_OK;
}

static tml_status attr_i(ctx *c, const char *name, int64_t def, int64_t *out)
{
    const onx_attr *a = attr_get(c, name);
    *out = def;
    if (!a) return TML_OK;
    if (onx_attr_kind(a) != ONX_ATTR_INT)
        return nerr(c, TML_ERR_FORMAT, "attribute '%s' must be an int", name);
    *out = a->i;
    return TML_OK;
}

static tml_status attr_f(ctx *c, const char *name, float def, float *out)
{
    const onx_attr *a = attr_get(c, name);
    *out = def;
    if (!a) return TML_OK;
    if (onx_attr_kind(a) != ONX_ATTR_FLOAT)
        return nerr(c, TML_ERR_FORMAT, "attribute '%s' must be a float", name);
    *out = a->f;
    return TML_OK;
}

/* ints attribute: *n = -1 when absent; more than max values is an error. */
static tml_status attr_is(ctx *c, const char *name, int64_t *out, int max, int *n)
{
    const onx_attr *a = attr_get(c, name);
    *n = -1;
    if (!a) return TML_OK;
    if (onx_attr_kind(a) != ONX_ATTR_INTS)
        return nerr(c, TML_ERR_FORMAT, "attribute '%s' must be a list of ints", name);
    tml_status st = onx_attr_ints(a, out, max, n);
    if (st) return nctx(c, st);
    if (*n > max)
        return nerr(c, TML_ERR_UNSUPPORTED, "attribute '%s' has %d values (at most %d)", name, *n, max);
    return TML_OK;
}

/* string attribute into buf; def when absent. */
static tml_status attr_s(ctx *c, const char *name, const char *def, char *buf, size_t cap)
{
    const onx_attr *a = attr_get(c, name);
    snprintf(buf, cap, "%s", def);
    if (!a) return TML_OK;
    if (onx_attr_kind(a) != ONX_ATTR_STRING)
        return nerr(c, TML_ERR_FORMAT, "attribute '%s' must be a string", name);
    onx_slice_print(a->s, buf, cap);
    return TML_OK;
}

/* ---- constants ----------------------------------------------------------------------------------- */

/* Decodes an initializer / tensor attribute into value v (V_CONST). */
static tml_status const_from_tensor(oval *v, const onx_tensor *t)
{
    tml_status st;
    v->rank = t->ndim;
    memcpy(v->dims, t->dims, sizeof(int64_t) * (size_t)t->ndim);
    if (onx_dtype_is_float(t->data_type)) {
        v->is_int = 0;
        st = onx_tensor_f32(t, &v->f, &v->numel);
    } else if (onx_dtype_is_int(t->data_type)) {
        v->is_int = 1;
        st = onx_tensor_i64(t, &v->i, &v->numel);
    } else {
        st = tml_error(TML_ERR_UNSUPPORTED, "constants of type %s are not supported",
                       onx_dtype_name(t->data_type));
    }
    if (st) return tml_error_context(st, "tensor '%s'", v->name);
    v->kind = V_CONST;
    return TML_OK;
}

static tml_status val_ready(oval *v)
{
    if (v->kind != V_LAZY) return TML_OK;
    return const_from_tensor(v, v->init);
}

/* Input k of the current node: NULL (and OK) when absent and optional. */
static tml_status in_val(ctx *c, int k, int optional, oval **out)
{
    *out = NULL;
    if (k >= c->node->n_in || c->node->in[k].n == 0) {
        if (optional) return TML_OK;
        return nerr(c, TML_ERR_FORMAT, "input %d is missing", k);
    }
    oval *v = val_lookup(c, c->node->in[k]);
    if (!v) {
        char nm[96];
        onx_slice_print(c->node->in[k], nm, sizeof nm);
        return nerr(c, TML_ERR_FORMAT,
                    "input %d '%s' is not produced by any node, initializer or graph input", k, nm);
    }
    if (v->kind == V_NONE)
        return nerr(c, TML_ERR_FORMAT, "input %d '%s' was released early (internal error)", k, v->name);
    tml_status st = val_ready(v);
    if (st) return nctx(c, st);
    *out = v;
    return TML_OK;
}

static tml_status in_act(ctx *c, int k, oval **out)
{
    tml_status st = in_val(c, k, 0, out);
    if (st) return st;
    if ((*out)->kind != V_ACT)
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "input %d '%s' must be computed from the model input (it is a constant)", k,
                    (*out)->name);
    return TML_OK;
}

static tml_status in_constf(ctx *c, int k, int optional, oval **out)
{
    tml_status st = in_val(c, k, optional, out);
    if (st || !*out) return st;
    if ((*out)->kind != V_CONST)
        return nerr(
            c, TML_ERR_UNSUPPORTED,
            "input %d '%s' must be a constant (initializer): tinyml ops take their weights from the file", k,
            (*out)->name);
    if ((*out)->is_int)
        return nerr(c, TML_ERR_UNSUPPORTED, "input %d '%s' is an integer tensor, expected float", k,
                    (*out)->name);
    return TML_OK;
}

static tml_status in_consti(ctx *c, int k, int optional, oval **out)
{
    tml_status st = in_val(c, k, optional, out);
    if (st || !*out) return st;
    if ((*out)->kind != V_CONST)
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "input %d '%s' is computed at run time; only constant shapes/axes are supported", k,
                    (*out)->name);
    if (!(*out)->is_int)
        return nerr(c, TML_ERR_FORMAT, "input %d '%s' must be an integer tensor", k, (*out)->name);
    return TML_OK;
}

/* Output value k of the current node (NULL when the output is unnamed). */
static tml_status out_val(ctx *c, int k, oval **out)
{
    *out = NULL;
    if (k >= c->node->n_out || c->node->out[k].n == 0) return TML_OK;
    tml_status st = val_new(c, c->node->out[k], out);
    return st ? nctx(c, st) : TML_OK;
}

static tml_status def_const(ctx *c, int k, int rank, const int64_t *dims, int is_int, void *data,
                            int64_t numel)
{
    oval *o;
    tml_status st = out_val(c, k, &o);
    if (st || !o) {
        free(data);
        return st;
    }
    o->kind = V_CONST;
    o->rank = rank;
    memcpy(o->dims, dims, sizeof(int64_t) * (size_t)rank);
    o->is_int = is_int;
    if (is_int)
        o->i = data;
    else
        o->f = data;
    o->numel = numel;
    return TML_OK;
}

static tml_status def_act(ctx *c, int k, int tid, int layout, int rank, const int64_t *dims, int prod,
                          oval **res)
{
    oval *o;
    tml_status st = out_val(c, k, &o);
    if (res) *res = o;
    if (st || !o) return st;
    o->kind = V_ACT;
    o->tid = tid;
    o->layout = layout;
    o->rank = rank;
    memcpy(o->dims, dims, sizeof(int64_t) * (size_t)rank);
    o->prod = prod;
    return TML_OK;
}

/* Output k is the same tensor as x (identity, fused ops). */
static tml_status def_alias(ctx *c, int k, const oval *x, int keep_prod)
{
    oval *o;
    tml_status st = out_val(c, k, &o);
    if (st || !o) return st;
    char *name = o->name;
    int uses = o->uses;
    *o = *x;
    o->name = name;
    o->uses = o->left = uses;
    o->f = NULL;
    o->i = NULL;
    if (!keep_prod) o->prod = -1;
    if (x->kind == V_CONST) {
        size_t es = x->is_int ? sizeof(int64_t) : sizeof(float);
        void *d = malloc((size_t)(x->numel ? x->numel : 1) * es);
        if (!d) return tml_error(TML_ERR_NOMEM, "out of memory");
        memcpy(d, x->is_int ? (void *)x->i : (void *)x->f, (size_t)x->numel * es);
        if (x->is_int)
            o->i = d;
        else
            o->f = d;
    }
    return TML_OK;
}

static void *xmalloc(int64_t n, size_t es)
{
    if (n < 0 || n > TML_MAX_NUMEL) {
        tml_error(TML_ERR_NOMEM, "%lld elements exceed the limit of %lld", (long long)n,
                  (long long)TML_MAX_NUMEL);
        return NULL;
    }
    void *p = malloc((size_t)(n ? n : 1) * es);
    if (!p) tml_error(TML_ERR_NOMEM, "out of memory");
    return p;
}

static int64_t dims_numel(int rank, const int64_t *d)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (d[i] < 0) return -1;
        if (d[i] && n > TML_MAX_NUMEL / d[i]) return -1;
        n *= d[i];
    }
    return n;
}

/* ---- activation views ------------------------------------------------------------------------------ */

/* The (H,W,C) tinyml tensor of an image value: an NCHW value (a (C) view of
 * a 1x1 image gets a reshape), or a plain rank-4 value whose element order
 * already matches HWC (C == 1 or H == W == 1). */
static tml_status image_tid(ctx *c, oval *x, int *tid)
{
    if (x->rank != 4)
        return nerr(c, TML_ERR_UNSUPPORTED, "input '%s' has rank %d; only 2-D images (N,C,H,W) are supported",
                    x->name, x->rank);
    if (x->layout == L_NCHW && !x->hw_view) {
        *tid = x->tid;
        return TML_OK;
    }
    if (x->layout == L_PLAIN && !(x->dims[1] == 1 || x->dims[2] * x->dims[3] == 1)) {
        char d[96];
        dims_str(x->rank, x->dims, d, sizeof d);
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "input '%s' %s is not in NCHW order (it was reshaped from a non-image tensor)", x->name,
                    d);
    }
    if (x->tid3 < 0) {
        int32_t d[3] = {(int32_t)x->dims[2], (int32_t)x->dims[3], (int32_t)x->dims[1]};
        char nm[ONX_MAX_NAME + 16];
        snprintf(nm, sizeof nm, "%s/hwc", x->name);
        int t = add_tensor(c, nm, TML_TENSOR_ACT, 3, d, NULL);
        if (t < 0) return t;
        int n = add_node(c, nm, TML_OP_RESHAPE, 1, &x->tid, t);
        if (n < 0) return n;
        x->tid3 = t;
    }
    *tid = x->tid3;
    return TML_OK;
}

/* Can node `prod` (writing x) absorb a following per-channel affine / activation? */
static int can_fuse(const ctx *c, const oval *x, int want_weights)
{
    if (x->kind != V_ACT || x->prod < 0 || x->uses != 1) return 0;
    const tml_node *n = &c->m->nodes[x->prod];
    if (n->out != x->tid || n->act != TML_ACT_NONE) return 0;
    if (want_weights) return tml_node_has_weights(n);
    return tml_node_has_weights(n) || n->op == TML_OP_ADD;
}

/* ---- shared op pieces ------------------------------------------------------------------------------- */

/* Copies the ONNX name of output k (or a fallback) for a tinyml tensor name. */
static void out_name(const ctx *c, int k, char *buf, size_t cap)
{
    if (k < c->node->n_out && c->node->out[k].n && !memchr(c->node->out[k].p, 0, c->node->out[k].n)) {
        size_t n = c->node->out[k].n < cap - 1 ? c->node->out[k].n : cap - 1;
        memcpy(buf, c->node->out[k].p, n);
        buf[n] = '\0';
        return;
    }
    node_base(c, buf, cap);
}

/* Output k: an activation with x's ONNX shape and layout, held by tensor tid. */
static tml_status def_like(ctx *c, int k, const oval *x, int tid, int prod)
{
    oval *o;
    tml_status st = def_act(c, k, tid, x->layout, x->rank, x->dims, prod, &o);
    if (st || !o) return st;
    o->hw_view = x->hw_view;
    memcpy(o->src, x->src, sizeof o->src);
    return TML_OK;
}

/* A new activation tensor with x's tinyml shape, named after output k. */
static int act_like(ctx *c, int k, const oval *x)
{
    int32_t d[TML_MAX_DIMS];
    int nd = tdims_of(x, d);
    char nm[ONX_MAX_NAME + 1];
    out_name(c, k, nm, sizeof nm);
    return add_tensor(c, nm, TML_TENSOR_ACT, nd, d, NULL);
}

static int param(ctx *c, const char *base, const char *suffix, int ndim, const int32_t *dims,
                 const float *data)
{
    char nm[ONX_MAX_NAME + 32];
    snprintf(nm, sizeof nm, "%s%s", base, suffix);
    return add_tensor(c, nm, TML_TENSOR_PARAM, ndim, dims, data);
}

/* Permutes a feature vector of length c*h*w from CHW order to HWC order. */
static void chw_to_hwc(const float *in, float *out, int64_t ch, int64_t h, int64_t w, int64_t stride_in,
                       int64_t stride_out)
{
    for (int64_t k = 0; k < ch; k++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                out[((y * w + x) * ch + k) * stride_out] = in[((k * h + y) * w + x) * stride_in];
}

/* Per-channel vector (along tinyml's last dim) of a constant broadcasting
 * against activation x; fails when it varies along anything else. */
static tml_status channel_vector(ctx *c, const oval *x, const oval *k, float **vec, int64_t *len)
{
    char dk[96], dx[96];
    dims_str(k->rank, k->dims, dk, sizeof dk);
    dims_str(x->rank, x->dims, dx, sizeof dx);
    if (k->rank > x->rank)
        return nerr(c, TML_ERR_UNSUPPORTED, "constant '%s' %s has more dims than '%s' %s", k->name, dk,
                    x->name, dx);
    int64_t kd[ONX_MAX_RANK];
    for (int i = 0; i < x->rank; i++) kd[i] = 1;
    for (int i = 0; i < k->rank; i++) kd[x->rank - k->rank + i] = k->dims[i];
    int axis = x->layout == L_PLAIN ? x->rank - 1 : 1;
    for (int i = 0; i < x->rank; i++) {
        if (kd[i] != 1 && (i == 0 || kd[i] != x->dims[i]))
            return nerr(c, TML_ERR_UNSUPPORTED,
                        "constant '%s' %s does not broadcast per sample against '%s' %s", k->name, dk,
                        x->name, dx);
        if (kd[i] != 1 && i != axis)
            return nerr(c, TML_ERR_UNSUPPORTED,
                        "constant '%s' %s varies along axis %d of '%s' %s; tinyml applies constants along "
                        "the %s axis only",
                        k->name, dk, i, x->name, dx, x->layout == L_PLAIN ? "last" : "channel");
    }
    int64_t L = x->dims[axis];
    float *v = xmalloc(L, sizeof(float));
    if (!v) return nctx(c, TML_ERR_NOMEM);
    for (int64_t j = 0; j < L; j++) {
        int64_t src = kd[axis] == 1 ? 0 : j;
        v[j] = k->is_int ? (float)k->i[src] : k->f[src];
    }
    if (x->layout == L_FLAT) {
        float *p = xmalloc(L, sizeof(float));
        if (!p) {
            free(v);
            return nctx(c, TML_ERR_NOMEM);
        }
        chw_to_hwc(v, p, x->src[0], x->src[1], x->src[2], 1, 1);
        free(v);
        v = p;
    }
    *vec = v;
    *len = L;
    return TML_OK;
}

/* Output 0 = x * scale[ch] + shift[ch] along tinyml's last dim (scale or
 * shift NULL = 1 / 0). Folded into the producing conv / depthwise / dense
 * when x has no other reader, else a batch norm with unit statistics. */
static tml_status affine(ctx *c, oval *x, const float *scale, const float *shift, int64_t L)
{
    if (can_fuse(c, x, 1)) {
        tml_node *n = &c->m->nodes[x->prod];
        tml_tensor *w = &c->m->tensors[n->in[1]];
        int dw = n->op == TML_OP_DEPTHWISE_CONV2D;
        int64_t oc = dw ? w->dims[3] : w->dims[0];
        if (oc == L) {
            if (shift && !(n->n_in > 2 && n->in[2] >= 0)) {
                char nm[ONX_MAX_NAME + 8];
                snprintf(nm, sizeof nm, "%s.bias", n->name);
                int32_t bd[1] = {(int32_t)L};
                int bt = add_tensor(c, nm, TML_TENSOR_PARAM, 1, bd, NULL);
                if (bt < 0) return bt;
                n = &c->m->nodes[x->prod]; /* tensors may have moved; nodes did not */
                n->in[2] = bt;
                n->n_in = 3;
            }
            w = &c->m->tensors[n->in[1]];
            float *wd = w->data;
            int64_t wn = tml_tensor_numel(w);
            if (scale)
                for (int64_t i = 0; i < wn; i++) wd[i] *= scale[dw ? i % L : i / (wn / L)];
            if (n->n_in > 2 && n->in[2] >= 0) {
                float *bd = c->m->tensors[n->in[2]].data;
                for (int64_t j = 0; j < L; j++)
                    bd[j] = bd[j] * (scale ? scale[j] : 1.0f) + (shift ? shift[j] : 0.0f);
            }
            c->fused++;
            return def_alias(c, 0, x, 1);
        }
    }
    float *ones = xmalloc(L, sizeof(float)), *zeros = xmalloc(L, sizeof(float)),
          *var = xmalloc(L, sizeof(float));
    tml_status st = TML_OK;
    if (!ones || !zeros || !var) {
        st = nctx(c, TML_ERR_NOMEM);
        goto out;
    }
    for (int64_t j = 0; j < L; j++) {
        ones[j] = 1.0f;
        zeros[j] = 0.0f;
        var[j] = BN_VAR;
    }
    char base[ONX_MAX_NAME + 1];
    node_base(c, base, sizeof base);
    int32_t d[1] = {(int32_t)L};
    int in[5] = {x->tid, -1, -1, -1, -1};
    if ((in[1] = param(c, base, ".gamma", 1, d, scale ? scale : ones)) < 0 ||
        (in[2] = param(c, base, ".beta", 1, d, shift ? shift : zeros)) < 0 ||
        (in[3] = param(c, base, ".mean", 1, d, zeros)) < 0 ||
        (in[4] = param(c, base, ".var", 1, d, var)) < 0) {
        st = in[1] < 0 ? in[1] : in[2] < 0 ? in[2] : in[3] < 0 ? in[3] : in[4];
        goto out;
    }
    int y = act_like(c, 0, x);
    if (y < 0) {
        st = y;
        goto out;
    }
    int ni = add_node(c, base, TML_OP_BATCHNORM, 5, in, y);
    if (ni < 0) {
        st = ni;
        goto out;
    }
    c->m->nodes[ni].eps = BN_EPS;
    st = def_like(c, 0, x, y, -1);
out:
    free(ones);
    free(zeros);
    free(var);
    return st;
}

/* Unary op on activation x: fused into its producer's activation when it can be. */
static tml_status unary(ctx *c, oval *x, tml_op op, tml_act act)
{
    if (act != TML_ACT_NONE && can_fuse(c, x, 0)) {
        c->m->nodes[x->prod].act = act;
        c->fused++;
        return def_alias(c, 0, x, 0);
    }
    int y = act_like(c, 0, x);
    if (y < 0) return y;
    char base[ONX_MAX_NAME + 1];
    node_base(c, base, sizeof base);
    int ni = add_node(c, base, op, 1, &x->tid, y);
    if (ni < 0) return ni;
    return def_like(c, 0, x, y, -1);
}

/* A RESHAPE node from tensor `from` to a new tensor of dims d. */
static int reshape_tid(ctx *c, int from, int nd, const int32_t *d, const char *suffix)
{
    char nm[ONX_MAX_NAME + 32], base[ONX_MAX_NAME + 1];
    out_name(c, 0, base, sizeof base);
    snprintf(nm, sizeof nm, "%s%s", base, suffix);
    int t = add_tensor(c, nm, TML_TENSOR_ACT, nd, d, NULL);
    if (t < 0) return t;
    int ni = add_node(c, nm, TML_OP_RESHAPE, 1, &from, t);
    return ni < 0 ? ni : t;
}

/* Output 0 = activation x reshaped to ONNX dims d (rank, d[0] ignored: the batch). */
static tml_status reshape_act(ctx *c, oval *x, int rank, const int64_t *d)
{
    char ds[128], xs[128];
    int64_t nd[ONX_MAX_RANK];
    for (int i = 0; i < rank; i++) nd[i] = d[i];
    nd[0] = x->dims[0];
    dims_str(rank, nd, ds, sizeof ds);
    dims_str(x->rank, x->dims, xs, sizeof xs);
    if (rank < 2)
        return nerr(c, TML_ERR_UNSUPPORTED, "reshaping '%s' %s to rank %d would merge the batch dimension",
                    x->name, xs, rank);
    if (rank - 1 > TML_MAX_DIMS)
        return nerr(c, TML_ERR_UNSUPPORTED, "result %s has more than %d dims per sample", ds, TML_MAX_DIMS);
    int64_t tn = dims_numel(rank - 1, nd + 1);
    if (tn != sample_numel(x))
        return nerr(c, TML_ERR_FORMAT, "reshaping '%s' %s to %s changes the number of elements", x->name, xs,
                    ds);
    int same = rank == x->rank;
    for (int i = 1; i < rank && same; i++) same = nd[i] == x->dims[i];
    if (same) return def_alias(c, 0, x, 0);
    int plain_order =
        x->layout == L_PLAIN || (x->layout == L_NCHW && (x->dims[1] == 1 || x->dims[2] * x->dims[3] == 1));
    int layout, tn_dims;
    int32_t td[TML_MAX_DIMS];
    int64_t src[3] = {0, 0, 0};
    if (x->layout == L_NCHW && rank == 2) {
        layout = plain_order ? L_PLAIN : L_FLAT;
        src[0] = x->dims[1];
        src[1] = x->dims[2];
        src[2] = x->dims[3];
        tn_dims = 1;
        td[0] = (int32_t)nd[1];
    } else if (x->layout == L_FLAT) {
        if (!(rank == 4 && nd[1] == x->src[0] && nd[2] == x->src[1] && nd[3] == x->src[2]))
            return nerr(c, TML_ERR_UNSUPPORTED,
                        "'%s' holds features flattened from NCHW (stored HWC); reshaping it to %s would need "
                        "a transpose",
                        x->name, ds);
        layout = L_NCHW;
        tn_dims = 3;
        td[0] = (int32_t)nd[2];
        td[1] = (int32_t)nd[3];
        td[2] = (int32_t)nd[1];
    } else if (plain_order) {
        if (rank == 4 && (nd[1] == 1 || nd[2] * nd[3] == 1)) {
            layout = L_NCHW;
            tn_dims = 3;
            td[0] = (int32_t)nd[2];
            td[1] = (int32_t)nd[3];
            td[2] = (int32_t)nd[1];
        } else {
            layout = L_PLAIN;
            tn_dims = rank - 1;
            for (int i = 1; i < rank; i++) td[i - 1] = (int32_t)nd[i];
        }
    } else {
        return nerr(
            c, TML_ERR_UNSUPPORTED,
            "reshaping the NCHW tensor '%s' %s to %s would need a transpose (tinyml stores it as HWC)",
            x->name, xs, ds);
    }
    for (int i = 0; i < tn_dims; i++)
        if (td[i] < 1) return nerr(c, TML_ERR_UNSUPPORTED, "result %s has an empty dimension", ds);
    int32_t cur[TML_MAX_DIMS];
    int cn = tdims_of(x, cur);
    int tid = x->tid;
    if (cn != tn_dims || memcmp(cur, td, sizeof(int32_t) * (size_t)tn_dims) != 0) {
        tid = reshape_tid(c, x->tid, tn_dims, td, "");
        if (tid < 0) return tid;
    }
    oval *o;
    tml_status st = def_act(c, 0, tid, layout, rank, nd, -1, &o);
    if (st || !o) return st;
    if (layout == L_FLAT) memcpy(o->src, src, sizeof src);
    return TML_OK;
}

/* Reshapes a constant (same data, new dims). */
static tml_status reshape_const(ctx *c, const oval *x, int rank, const int64_t *d)
{
    if (dims_numel(rank, d) != x->numel)
        return nerr(c, TML_ERR_FORMAT, "reshape of constant '%s' changes its number of elements", x->name);
    size_t es = x->is_int ? sizeof(int64_t) : sizeof(float);
    void *p = xmalloc(x->numel, es);
    if (!p) return nctx(c, TML_ERR_NOMEM);
    memcpy(p, x->is_int ? (void *)x->i : (void *)x->f, (size_t)x->numel * es);
    c->folded++;
    return def_const(c, 0, rank, d, x->is_int, p, x->numel);
}

static int norm_axis(int64_t a, int rank, int *out)
{
    if (a < -rank || a >= rank) return -1;
    *out = (int)(a < 0 ? a + rank : a);
    return 0;
}

/* ---- window geometry (conv, pools) ------------------------------------------------------------------- */

typedef struct geom {
    int kh, kw, sh, sw, dh, dw;
    int pad[4]; /* top, left, bottom, right */
    int64_t oh, ow;
} geom;

/* Strides, dilations, pads / auto_pad and (pools) ceil_mode of the current node
 * for input (H, W) and kernel (kh, kw); output size as ONNX defines it. */
static tml_status window(ctx *c, int64_t H, int64_t W, int64_t kh, int64_t kw, int dil_ok, int ceil_mode,
                         geom *g)
{
    int64_t s[4], d[4], p[8];
    int ns, ndl, np;
    tml_status st;
    if ((st = attr_is(c, "strides", s, 4, &ns)) || (st = attr_is(c, "dilations", d, 4, &ndl)) ||
        (st = attr_is(c, "pads", p, 8, &np)))
        return st;
    if (kh < 1 || kw < 1 || kh > 4096 || kw > 4096)
        return nerr(c, TML_ERR_UNSUPPORTED, "kernel %lldx%lld out of range (1..4096)", (long long)kh,
                    (long long)kw);
    if (ns < 0) s[0] = s[1] = 1, ns = 2;
    if (ndl < 0) d[0] = d[1] = 1, ndl = 2;
    if (ns != 2 || ndl != 2 || (np >= 0 && np != 4))
        return nerr(c, TML_ERR_FORMAT, "strides/dilations/pads do not match a 2-D window");
    if (!dil_ok && (d[0] != 1 || d[1] != 1))
        return nerr(c, TML_ERR_UNSUPPORTED, "dilations are not supported here");
    for (int i = 0; i < 2; i++) {
        if (s[i] < 1 || s[i] > 4096)
            return nerr(c, TML_ERR_UNSUPPORTED, "stride %lld out of range (1..4096)", (long long)s[i]);
        if (d[i] < 1 || d[i] > 4096)
            return nerr(c, TML_ERR_UNSUPPORTED, "dilation %lld out of range (1..4096)", (long long)d[i]);
    }
    char ap[32];
    if ((st = attr_s(c, "auto_pad", "NOTSET", ap, sizeof ap))) return st;
    int64_t in[2] = {H, W}, k[2] = {kh, kw}, pb[2], pe[2];
    for (int i = 0; i < 2; i++) {
        int64_t ext = d[i] * (k[i] - 1) + 1;
        if (strcmp(ap, "NOTSET") == 0) {
            pb[i] = np < 0 ? 0 : p[i];
            pe[i] = np < 0 ? 0 : p[i + 2];
        } else if (strcmp(ap, "VALID") == 0) {
            pb[i] = pe[i] = 0;
        } else if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
            int64_t out = (in[i] + s[i] - 1) / s[i];
            int64_t total = (out - 1) * s[i] + ext - in[i];
            if (total < 0) total = 0;
            int lower = strcmp(ap, "SAME_LOWER") == 0;
            pb[i] = lower ? total - total / 2 : total / 2;
            pe[i] = total - pb[i];
        } else {
            return nerr(c, TML_ERR_UNSUPPORTED, "auto_pad '%s' is not supported", ap);
        }
        if (pb[i] < 0 || pe[i] < 0 || pb[i] > 4096 || pe[i] > 4096)
            return nerr(c, TML_ERR_UNSUPPORTED, "padding %lld/%lld out of range (0..4096)", (long long)pb[i],
                        (long long)pe[i]);
        int64_t span = in[i] + pb[i] + pe[i] - ext;
        if (span < 0)
            return nerr(c, TML_ERR_SHAPE, "the %lld-tap window does not fit the padded input of %lld",
                        (long long)ext, (long long)(in[i] + pb[i] + pe[i]));
        int64_t out = span / s[i] + 1;
        if (ceil_mode && strncmp(ap, "SAME", 4) != 0) {
            int64_t oc = (span + s[i] - 1) / s[i] + 1;
            if (oc > out) {
                if ((oc - 1) * s[i] >= in[i] + pb[i])
                    return nerr(c, TML_ERR_UNSUPPORTED,
                                "ceil_mode: the last window would start in the padding");
                pe[i] += (oc - 1) * s[i] + ext - (in[i] + pb[i] + pe[i]);
                out = oc;
            }
        }
        if (i == 0) {
            g->oh = out;
            g->pad[0] = (int)pb[0];
            g->pad[2] = (int)pe[0];
        } else {
            g->ow = out;
            g->pad[1] = (int)pb[1];
            g->pad[3] = (int)pe[1];
        }
    }
    g->kh = (int)kh;
    g->kw = (int)kw;
    g->sh = (int)s[0];
    g->sw = (int)s[1];
    g->dh = (int)d[0];
    g->dw = (int)d[1];
    return TML_OK;
}

static void set_window(tml_node *n, const geom *g)
{
    n->kh = g->kh;
    n->kw = g->kw;
    n->sh = g->sh;
    n->sw = g->sw;
    n->dh = g->dh;
    n->dw = g->dw;
    memcpy(n->pad, g->pad, sizeof n->pad);
}

/* ---- ops ----------------------------------------------------------------------------------------------- */

static tml_status op_conv(ctx *c)
{
    static const char *const known[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                        "pads",     "strides",   NULL};
    oval *x, *w, *b;
    tml_status st;
    if ((st = attr_check(c, known)) || (st = in_act(c, 0, &x)) || (st = in_constf(c, 1, 0, &w)) ||
        (st = in_constf(c, 2, 1, &b)))
        return st;
    if (x->rank != 4)
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "input '%s' has rank %d: only 2-D convolution on (N,C,H,W) is supported", x->name,
                    x->rank);
    int xt;
    if ((st = image_tid(c, x, &xt))) return st;
    int64_t C = x->dims[1], H = x->dims[2], W = x->dims[3];
    if (w->rank != 4)
        return nerr(c, TML_ERR_FORMAT, "weights '%s' must have 4 dims (M, C/group, KH, KW)", w->name);
    int64_t M = w->dims[0], Cg = w->dims[1], kh = w->dims[2], kw = w->dims[3];
    int64_t group, ks[4];
    int nks;
    if ((st = attr_i(c, "group", 1, &group)) || (st = attr_is(c, "kernel_shape", ks, 4, &nks))) return st;
    if (nks >= 0 && (nks != 2 || ks[0] != kh || ks[1] != kw))
        return nerr(c, TML_ERR_FORMAT, "kernel_shape does not match weights '%s'", w->name);
    if (group < 1 || group > C || C % group || M % group || Cg * group != C || M < 1)
        return nerr(c, TML_ERR_FORMAT,
                    "group %lld does not fit %lld input channels and weights '%s' (%lld,%lld,..)",
                    (long long)group, (long long)C, w->name, (long long)M, (long long)Cg);
    geom g;
    if ((st = window(c, H, W, kh, kw, 1, 0, &g))) return st;
    if (b && (b->numel != M || b->rank != 1))
        return nerr(c, TML_ERR_FORMAT, "bias '%s' must have %lld elements", b->name, (long long)M);
    int depthwise = group == C && Cg == 1 && C > 1;
    float *wt = xmalloc(w->numel, sizeof(float));
    if (!wt) return nctx(c, TML_ERR_NOMEM);
    int32_t wd[4];
    if (depthwise) {
        /* (C*mult, 1, KH, KW) -> (1, KH, KW, C*mult): output channel o reads input o / mult */
        for (int64_t o = 0; o < M; o++)
            for (int64_t i = 0; i < kh * kw; i++) wt[i * M + o] = w->f[o * kh * kw + i];
        wd[0] = 1;
        wd[1] = (int32_t)kh;
        wd[2] = (int32_t)kw;
        wd[3] = (int32_t)M;
    } else {
        /* (M, Cg, KH, KW) -> (M, KH, KW, Cg) */
        for (int64_t o = 0; o < M; o++)
            for (int64_t i = 0; i < Cg; i++)
                for (int64_t k = 0; k < kh * kw; k++)
                    wt[(o * kh * kw + k) * Cg + i] = w->f[(o * Cg + i) * kh * kw + k];
        wd[0] = (int32_t)M;
        wd[1] = (int32_t)kh;
        wd[2] = (int32_t)kw;
        wd[3] = (int32_t)Cg;
    }
    int in[3] = {xt, -1, -1};
    in[1] = add_tensor(c, w->name, TML_TENSOR_PARAM, 4, wd, wt);
    free(wt);
    if (in[1] < 0) return in[1];
    if (b) {
        int32_t bd[1] = {(int32_t)M};
        if ((in[2] = add_tensor(c, b->name, TML_TENSOR_PARAM, 1, bd, b->f)) < 0) return in[2];
    }
    int32_t yd[3] = {(int32_t)g.oh, (int32_t)g.ow, (int32_t)M};
    char nm[ONX_MAX_NAME + 1];
    out_name(c, 0, nm, sizeof nm);
    int y = add_tensor(c, nm, TML_TENSOR_ACT, 3, yd, NULL);
    if (y < 0) return y;
    node_base(c, nm, sizeof nm);
    int ni = add_node(c, nm, depthwise ? TML_OP_DEPTHWISE_CONV2D : TML_OP_CONV2D, b ? 3 : 2, in, y);
    if (ni < 0) return ni;
    tml_node *n = &c->m->nodes[ni];
    set_window(n, &g);
    if (depthwise)
        n->depth_mult = (int)(M / C);
    else
        n->groups = (int)group;
    int64_t od[4] = {x->dims[0], M, g.oh, g.ow};
    return def_act(c, 0, y, L_NCHW, 4, od, ni, NULL);
}

static tml_status op_pool(ctx *c, int is_max)
{
    static const char *const kmax[] = {"auto_pad", "ceil_mode",     "dilations", "kernel_shape",
                                       "pads",     "storage_order", "strides",   NULL};
    static const char *const kavg[] = {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads",
                                       "strides",  NULL};
    oval *x;
    tml_status st;
    if ((st = attr_check(c, is_max ? kmax : kavg)) || (st = in_act(c, 0, &x))) return st;
    int64_t ks[4], ceil_mode, cip = 0;
    int nks;
    if ((st = attr_is(c, "kernel_shape", ks, 4, &nks)) || (st = attr_i(c, "ceil_mode", 0, &ceil_mode)))
        return st;
    if (!is_max && (st = attr_i(c, "count_include_pad", 0, &cip))) return st;
    if (x->rank != 4 || nks != 2)
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "only 2-D pooling on (N,C,H,W) is supported (input rank %d, %d-D kernel)", x->rank, nks);
    int xt;
    if ((st = image_tid(c, x, &xt))) return st;
    int64_t C = x->dims[1], H = x->dims[2], W = x->dims[3];
    geom g;
    if ((st = window(c, H, W, ks[0], ks[1], is_max, ceil_mode != 0, &g))) return st;
    char nm[ONX_MAX_NAME + 1];
    out_name(c, 0, nm, sizeof nm);
    int32_t yd[3] = {(int32_t)g.oh, (int32_t)g.ow, (int32_t)C};
    int64_t od[4] = {x->dims[0], C, g.oh, g.ow};
    int padded = g.pad[0] || g.pad[1] || g.pad[2] || g.pad[3];
    if (!is_max && cip && padded) {
        /* padding counted in the average: a depthwise conv with weights 1/(kh*kw)
         * sees zeros outside the input, which is exactly that */
        if (ceil_mode)
            return nerr(c, TML_ERR_UNSUPPORTED,
                        "count_include_pad=1 together with ceil_mode is not supported");
        int64_t kn = (int64_t)g.kh * g.kw;
        float *wt = xmalloc(kn * C, sizeof(float));
        if (!wt) return nctx(c, TML_ERR_NOMEM);
        for (int64_t i = 0; i < kn * C; i++) wt[i] = 1.0f / (float)kn;
        int32_t wd[4] = {1, g.kh, g.kw, (int32_t)C};
        char base[ONX_MAX_NAME + 1];
        node_base(c, base, sizeof base);
        int in[2] = {xt, param(c, base, ".avg_weights", 4, wd, wt)};
        free(wt);
        if (in[1] < 0) return in[1];
        int y = add_tensor(c, nm, TML_TENSOR_ACT, 3, yd, NULL);
        if (y < 0) return y;
        int ni = add_node(c, base, TML_OP_DEPTHWISE_CONV2D, 2, in, y);
        if (ni < 0) return ni;
        set_window(&c->m->nodes[ni], &g);
        return def_act(c, 0, y, L_NCHW, 4, od, -1, NULL);
    }
    if (g.pad[0] >= g.kh || g.pad[2] >= g.kh || g.pad[1] >= g.kw || g.pad[3] >= g.kw)
        return nerr(c, TML_ERR_UNSUPPORTED, "padding (%d,%d,%d,%d) must be smaller than the %dx%d window",
                    g.pad[0], g.pad[1], g.pad[2], g.pad[3], g.kh, g.kw);
    int y = add_tensor(c, nm, TML_TENSOR_ACT, 3, yd, NULL);
    if (y < 0) return y;
    node_base(c, nm, sizeof nm);
    int ni = add_node(c, nm, is_max ? TML_OP_MAXPOOL : TML_OP_AVGPOOL, 1, &xt, y);
    if (ni < 0) return ni;
    set_window(&c->m->nodes[ni], &g);
    return def_act(c, 0, y, L_NCHW, 4, od, -1, NULL);
}

static tml_status op_maxpool(ctx *c)
{
    return op_pool(c, 1);
}
static tml_status op_avgpool(ctx *c)
{
    return op_pool(c, 0);
}

/* Global pooling of image x over (H, W): output 0 is (N,C,1,1) (keepdims) or
 * (N,C). A global average keeps a (C) tensor (reshaped to 1x1xC only when a
 * window op reads it); a global max is a max pool with the image as window. */
static tml_status global_pool(ctx *c, oval *x, int is_max, int keepdims)
{
    tml_status st;
    if (x->rank != 4)
        return nerr(c, TML_ERR_UNSUPPORTED, "only (N,C,H,W) inputs are supported (rank %d)", x->rank);
    int64_t od[4] = {x->dims[0], x->dims[1], 1, 1};
    if (x->dims[2] * x->dims[3] == 1 && x->layout == L_NCHW)
        return keepdims ? def_alias(c, 0, x, 0) : reshape_act(c, x, 2, od);
    int xt;
    if ((st = image_tid(c, x, &xt))) return st;
    char nm[ONX_MAX_NAME + 1];
    out_name(c, 0, nm, sizeof nm);
    if (is_max) {
        int32_t yd[3] = {1, 1, (int32_t)x->dims[1]};
        if (x->dims[2] > 4096 || x->dims[3] > 4096)
            return nerr(c, TML_ERR_UNSUPPORTED, "window larger than 4096");
        int y = add_tensor(c, nm, TML_TENSOR_ACT, 3, yd, NULL);
        if (y < 0) return y;
        node_base(c, nm, sizeof nm);
        int ni = add_node(c, nm, TML_OP_MAXPOOL, 1, &xt, y);
        if (ni < 0) return ni;
        c->m->nodes[ni].kh = (int)x->dims[2];
        c->m->nodes[ni].kw = (int)x->dims[3];
        return def_act(c, 0, y, L_NCHW, 4, od, -1, NULL);
    }
    int32_t yd[1] = {(int32_t)x->dims[1]};
    int y = add_tensor(c, nm, TML_TENSOR_ACT, 1, yd, NULL);
    if (y < 0) return y;
    node_base(c, nm, sizeof nm);
    int ni = add_node(c, nm, TML_OP_GLOBAL_AVGPOOL, 1, &xt, y);
    if (ni < 0) return ni;
    oval *o;
    if ((st = def_act(c, 0, y, keepdims ? L_NCHW : L_PLAIN, keepdims ? 4 : 2, od, -1, &o)) || !o) return st;
    o->hw_view = keepdims;
    return TML_OK;
}

static tml_status op_global_pool(ctx *c, int is_max)
{
    static const char *const known[] = {NULL};
    oval *x;
    tml_status st;
    if ((st = attr_check(c, known)) || (st = in_act(c, 0, &x))) return st;
    return global_pool(c, x, is_max, 1);
}

static tml_status op_gap(ctx *c)
{
    return op_global_pool(c, 0);
}
static tml_status op_gmp(ctx *c)
{
    return op_global_pool(c, 1);
}

/* ReduceMean over the spatial axes of an image (x.mean([2, 3]) in PyTorch) is
 * a global average pool; other reductions are refused. */
static tml_status op_reduce_mean(ctx *c)
{
    static const char *const known[] = {"axes", "keepdims", "noop_with_empty_axes", NULL};
    oval *x, *ax = NULL;
    tml_status st;
    int64_t axes[ONX_MAX_RANK + 1], keepdims, noop;
    int na = -1;
    if ((st = attr_check(c, known)) || (st = attr_i(c, "keepdims", 1, &keepdims)) ||
        (st = attr_i(c, "noop_with_empty_axes", 0, &noop)) || (st = in_act(c, 0, &x)))
        return st;
    if (c->opset < 18) {
        if ((st = attr_is(c, "axes", axes, ONX_MAX_RANK, &na))) return st;
    } else {
        if ((st = in_consti(c, 1, 1, &ax))) return st;
        if (ax) {
            if (ax->numel > ONX_MAX_RANK) return nerr(c, TML_ERR_UNSUPPORTED, "too many axes");
            na = (int)ax->numel;
            memcpy(axes, ax->i, sizeof(int64_t) * (size_t)na);
        }
    }
    int mark[ONX_MAX_RANK] = {0}, spatial = x->rank == 4 && na == 2;
    for (int i = 0; i < na && spatial; i++) {
        int a;
        if (norm_axis(axes[i], x->rank, &a))
            return nerr(c, TML_ERR_FORMAT, "axis %lld out of range", (long long)axes[i]);
        spatial = (a == 2 || a == 3) && !mark[a];
        mark[a] = 1;
    }
    if (!spatial || noop)
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "only the mean over the spatial axes (2,3) of an (N,C,H,W) tensor is supported "
                    "(global average pooling)");
    return global_pool(c, x, 0, keepdims != 0);
}

/* Dense layer: output 0 = x (N,K) times w^T, w (O,K) in ONNX feature order. */
static tml_status make_dense(ctx *c, oval *x, const char *wname, float *w, int64_t O, int64_t K,
                             const float *bias, const char *bname)
{
    if (x->rank != 2) {
        char d[96];
        dims_str(x->rank, x->dims, d, sizeof d);
        return nerr(c, TML_ERR_UNSUPPORTED, "input '%s' %s must be 2-D (N,K): flatten it first", x->name, d);
    }
    if (x->dims[1] != K)
        return nerr(c, TML_ERR_SHAPE, "input '%s' has %lld features, the weights expect %lld", x->name,
                    (long long)x->dims[1], (long long)K);
    if (O < 1 || K < 1 || O > (1 << 24) || K > (1 << 24))
        return nerr(c, TML_ERR_UNSUPPORTED, "weights of %lldx%lld", (long long)O, (long long)K);
    if (x->layout == L_FLAT) {
        float *p = xmalloc(O * K, sizeof(float));
        if (!p) return nctx(c, TML_ERR_NOMEM);
        for (int64_t o = 0; o < O; o++)
            chw_to_hwc(w + o * K, p + o * K, x->src[0], x->src[1], x->src[2], 1, 1);
        memcpy(w, p, sizeof(float) * (size_t)(O * K));
        free(p);
    }
    int32_t wd[2] = {(int32_t)O, (int32_t)K}, bd[1] = {(int32_t)O};
    int in[3] = {x->tid, add_tensor(c, wname, TML_TENSOR_PARAM, 2, wd, w), -1};
    if (in[1] < 0) return in[1];
    if (bias && (in[2] = add_tensor(c, bname, TML_TENSOR_PARAM, 1, bd, bias)) < 0) return in[2];
    char nm[ONX_MAX_NAME + 1];
    out_name(c, 0, nm, sizeof nm);
    int y = add_tensor(c, nm, TML_TENSOR_ACT, 1, bd, NULL);
    if (y < 0) return y;
    node_base(c, nm, sizeof nm);
    int ni = add_node(c, nm, TML_OP_DENSE, bias ? 3 : 2, in, y);
    if (ni < 0) return ni;
    int64_t od[2] = {x->dims[0], O};
    return def_act(c, 0, y, L_PLAIN, 2, od, ni, NULL);
}

static tml_status op_gemm(ctx *c)
{
    static const char *const known[] = {"alpha", "beta", "transA", "transB", "broadcast", NULL};
    oval *a, *b, *cc;
    tml_status st;
    float alpha, beta;
    int64_t ta, tb;
    if ((st = attr_check(c, known)) || (st = attr_f(c, "alpha", 1.0f, &alpha)) ||
        (st = attr_f(c, "beta", 1.0f, &beta)) || (st = attr_i(c, "transA", 0, &ta)) ||
        (st = attr_i(c, "transB", 0, &tb)))
        return st;
    if ((st = in_act(c, 0, &a)) || (st = in_constf(c, 1, 0, &b)) || (st = in_constf(c, 2, 1, &cc))) return st;
    if (ta) return nerr(c, TML_ERR_UNSUPPORTED, "transA=1 would put the batch on the columns of A");
    if (b->rank != 2) return nerr(c, TML_ERR_FORMAT, "B '%s' must be 2-D", b->name);
    int64_t O = tb ? b->dims[0] : b->dims[1], K = tb ? b->dims[1] : b->dims[0];
    float *w = xmalloc(O * K, sizeof(float));
    if (!w) return nctx(c, TML_ERR_NOMEM);
    for (int64_t o = 0; o < O; o++)
        for (int64_t k = 0; k < K; k++) w[o * K + k] = alpha * (tb ? b->f[o * K + k] : b->f[k * O + o]);
    float *bias = NULL;
    if (cc && beta != 0.0f) {
        int ok = cc->rank <= 2 && (cc->rank < 2 || cc->dims[0] == 1) &&
                 (cc->rank == 0 || cc->dims[cc->rank - 1] == 1 || cc->dims[cc->rank - 1] == O);
        if (!ok) {
            free(w);
            char d[96];
            dims_str(cc->rank, cc->dims, d, sizeof d);
            return nerr(
                c, TML_ERR_UNSUPPORTED,
                "C '%s' %s must be a per-output bias (O), (1,O) or a scalar (it varies along the batch)",
                cc->name, d);
        }
        bias = xmalloc(O, sizeof(float));
        if (!bias) {
            free(w);
            return nctx(c, TML_ERR_NOMEM);
        }
        for (int64_t o = 0; o < O; o++) bias[o] = beta * cc->f[cc->numel == 1 ? 0 : o];
    }
    st = make_dense(c, a, b->name, w, O, K, bias, cc ? cc->name : "bias");
    free(w);
    free(bias);
    return st;
}

static tml_status op_matmul(ctx *c)
{
    static const char *const known[] = {NULL};
    oval *a, *b;
    tml_status st;
    if ((st = attr_check(c, known)) || (st = in_act(c, 0, &a)) || (st = in_constf(c, 1, 0, &b))) return st;
    if (b->rank != 2) return nerr(c, TML_ERR_UNSUPPORTED, "B '%s' must be a 2-D constant (K,O)", b->name);
    int64_t K = b->dims[0], O = b->dims[1];
    float *w = xmalloc(O * K, sizeof(float));
    if (!w) return nctx(c, TML_ERR_NOMEM);
    for (int64_t o = 0; o < O; o++)
        for (int64_t k = 0; k < K; k++) w[o * K + k] = b->f[k * O + o];
    st = make_dense(c, a, b->name, w, O, K, NULL, NULL);
    free(w);
    return st;
}

/* Element-wise arithmetic on two constants with numpy broadcasting. */
static tml_status fold_binary(ctx *c, const oval *a, const oval *b, char opch)
{
    if (a->is_int != b->is_int) return nerr(c, TML_ERR_FORMAT, "operands have different types");
    int r = a->rank > b->rank ? a->rank : b->rank;
    int64_t ad[ONX_MAX_RANK], bd[ONX_MAX_RANK], od[ONX_MAX_RANK];
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        ad[i] = ia >= 0 ? a->dims[ia] : 1;
        bd[i] = ib >= 0 ? b->dims[ib] : 1;
        if (ad[i] != bd[i] && ad[i] != 1 && bd[i] != 1)
            return nerr(c, TML_ERR_SHAPE, "constants '%s' and '%s' do not broadcast", a->name, b->name);
        od[i] = ad[i] == 1 ? bd[i] : ad[i];
    }
    int64_t n = dims_numel(r, od);
    if (n < 0 || n > FOLD_MAX_NUMEL) return nerr(c, TML_ERR_NOMEM, "constant result too large");
    void *out = xmalloc(n, a->is_int ? sizeof(int64_t) : sizeof(float));
    if (!out) return nctx(c, TML_ERR_NOMEM);
    for (int64_t e = 0; e < n; e++) {
        int64_t rem = e, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int i = r - 1; i >= 0; i--) {
            int64_t idx = rem % od[i];
            rem /= od[i];
            ia += (ad[i] == 1 ? 0 : idx) * sa;
            ib += (bd[i] == 1 ? 0 : idx) * sb;
            sa *= ad[i];
            sb *= bd[i];
        }
        if (a->is_int) {
            int64_t x = a->i[ia], y = b->i[ib], z = 0;
            if (x == BATCH_SYM || y == BATCH_SYM) {
                free(out);
                return nerr(c, TML_ERR_UNSUPPORTED, "arithmetic on the batch size is not supported");
            }
            if (opch == '/' && y == 0) {
                free(out);
                return nerr(c, TML_ERR_FORMAT, "integer division by zero");
            }
            switch (opch) {
            case '+':
                z = (int64_t)((uint64_t)x + (uint64_t)y);
                break;
            case '-':
                z = (int64_t)((uint64_t)x - (uint64_t)y);
                break;
            case '*':
                z = (int64_t)((uint64_t)x * (uint64_t)y);
                break;
            default:
                z = (y == -1) ? (int64_t)(0 - (uint64_t)x) : x / y;
                break;
            }
            ((int64_t *)out)[e] = z;
        } else {
            float x = a->f[ia], y = b->f[ib];
            ((float *)out)[e] = opch == '+' ? x + y : opch == '-' ? x - y : opch == '*' ? x * y : x / y;
        }
    }
    c->folded++;
    return def_const(c, 0, r, od, a->is_int, out, n);
}

static tml_status op_binary(ctx *c, char opch)
{
    static const char *const known[] = {"broadcast", "axis", NULL};
    oval *a, *b;
    tml_status st;
    if ((st = attr_check(c, known)) || (st = in_val(c, 0, 0, &a)) || (st = in_val(c, 1, 0, &b))) return st;
    /* opsets < 7: broadcast=1 with axis aligns B's dims at A's `axis` */
    oval bview;
    int64_t legacy_bc = 0, axis = 0;
    if ((st = attr_i(c, "broadcast", 0, &legacy_bc))) return st;
    const onx_attr *ax = attr_get(c, "axis");
    if (ax && (st = attr_i(c, "axis", 0, &axis))) return st;
    if (c->opset < 7 && !legacy_bc &&
        (a->rank != b->rank || memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) != 0) &&
        !(a->kind == V_ACT && b->kind == V_ACT))
        return nerr(c, TML_ERR_FORMAT, "operands differ in shape and broadcast=0");
    if (c->opset < 7 && legacy_bc && ax) {
        int ia;
        if (norm_axis(axis, a->rank, &ia) || ia + b->rank > a->rank)
            return nerr(c, TML_ERR_FORMAT, "bad broadcast axis %lld", (long long)axis);
        bview = *b;
        bview.rank = a->rank - ia;
        for (int i = b->rank; i < bview.rank; i++) bview.dims[i] = 1;
        b = &bview;
    }
    if (a->kind == V_CONST && b->kind == V_CONST) return fold_binary(c, a, b, opch);
    if (a->kind == V_ACT && b->kind == V_ACT) {
        if (opch != '+')
            return nerr(c, TML_ERR_UNSUPPORTED,
                        "both operands are computed at run time; tinyml only adds such tensors");
        int same = a->rank == b->rank && a->layout == b->layout;
        for (int i = 1; i < a->rank && same; i++) same = a->dims[i] == b->dims[i];
        if (same && a->layout == L_FLAT) same = memcmp(a->src, b->src, sizeof a->src) == 0;
        if (!same) {
            char da[96], db[96];
            dims_str(a->rank, a->dims, da, sizeof da);
            dims_str(b->rank, b->dims, db, sizeof db);
            return nerr(c, TML_ERR_UNSUPPORTED,
                        "'%s' %s and '%s' %s differ in shape or layout (no broadcasting between activations)",
                        a->name, da, b->name, db);
        }
        int ta = a->tid, tb = b->tid;
        const oval *ref = a;
        if (a->layout == L_NCHW && a->hw_view != b->hw_view) {
            if ((st = image_tid(c, a, &ta)) || (st = image_tid(c, b, &tb))) return st;
            ref = a->hw_view ? b : a;
        }
        char nm[ONX_MAX_NAME + 1];
        out_name(c, 0, nm, sizeof nm);
        int32_t d[TML_MAX_DIMS];
        int nd = tdims_of(ref, d);
        int y = add_tensor(c, nm, TML_TENSOR_ACT, nd, d, NULL);
        if (y < 0) return y;
        node_base(c, nm, sizeof nm);
        int in[2] = {ta, tb};
        int ni = add_node(c, nm, TML_OP_ADD, 2, in, y);
        if (ni < 0) return ni;
        return def_like(c, 0, ref, y, ni);
    }
    int x_first = a->kind == V_ACT;
    oval *x = x_first ? a : b, *k = x_first ? b : a;
    float *vec = NULL;
    int64_t L = 0;
    if ((st = channel_vector(c, x, k, &vec, &L))) return st;
    switch (opch) {
    case '+':
        st = affine(c, x, NULL, vec, L);
        break;
    case '-':
        if (x_first) {
            for (int64_t j = 0; j < L; j++) vec[j] = -vec[j];
            st = affine(c, x, NULL, vec, L);
        } else {
            float *neg = xmalloc(L, sizeof(float));
            if (!neg) {
                st = nctx(c, TML_ERR_NOMEM);
                break;
            }
            for (int64_t j = 0; j < L; j++) neg[j] = -1.0f;
            st = affine(c, x, neg, vec, L);
            free(neg);
        }
        break;
    case '*':
        st = affine(c, x, vec, NULL, L);
        break;
    default:
        if (!x_first) {
            st = nerr(c, TML_ERR_UNSUPPORTED, "dividing a constant by a computed tensor is not supported");
            break;
        }
        for (int64_t j = 0; j < L && !st; j++) {
            if (vec[j] == 0.0f)
                st = nerr(c, TML_ERR_UNSUPPORTED, "division by a zero constant");
            else
                vec[j] = 1.0f / vec[j];
        }
        if (!st) st = affine(c, x, vec, NULL, L);
        break;
    }
    free(vec);
    return st;
}

static tml_status op_add(ctx *c)
{
    return op_binary(c, '+');
}
static tml_status op_sub(ctx *c)
{
    return op_binary(c, '-');
}
static tml_status op_mul(ctx *c)
{
    return op_binary(c, '*');
}
static tml_status op_div(ctx *c)
{
    return op_binary(c, '/');
}

static tml_status op_relu(ctx *c)
{
    static const char *const known[] = {NULL};
    oval *x;
    tml_status st;
    if ((st = attr_check(c, known)) || (st = in_act(c, 0, &x))) return st;
    return unary(c, x, TML_OP_RELU, TML_ACT_RELU);
}

static tml_status op_clip(ctx *c)
{
    static const char *const known[] = {"min", "max", NULL};
    oval *x, *lo = NULL, *hi = NULL;
    tml_status st;
    if ((st = attr_check(c, known)) || (st = in_act(c, 0, &x))) return st;
    float vmin = -INFINITY, vmax = INFINITY;
    if (c->opset < 11) {
        if ((st = attr_f(c, "min", -INFINITY, &vmin)) || (st = attr_f(c, "max", INFINITY, &vmax))) return st;
    } else {
        if (attr_get(c, "min") || attr_get(c, "max"))
            return nerr(c, TML_ERR_FORMAT, "min/max are inputs from opset 11");
        if ((st = in_constf(c, 1, 1, &lo)) || (st = in_constf(c, 2, 1, &hi))) return st;
        if ((lo && lo->numel != 1) || (hi && hi->numel != 1))
            return nerr(c, TML_ERR_FORMAT, "min and max must be scalars");
        if (lo) vmin = lo->f[0];
        if (hi) vmax = hi->f[0];
    }
    if (vmin <= -3.0e38f && vmax >= 3.0e38f) return def_alias(c, 0, x, 0);
    if (vmin == 0.0f && vmax >= 3.0e38f) return unary(c, x, TML_OP_RELU, TML_ACT_RELU);
    if (vmin == 0.0f && vmax == 6.0f) return unary(c, x, TML_OP_RELU6, TML_ACT_RELU6);
    return nerr(c, TML_ERR_UNSUPPORTED,
                "Clip(min=%g, max=%g): only ReLU (min 0, no max) and ReLU6 (0, 6) are supported",
                (double)vmin, (double)vmax);
}

static tml_status op_identity(ctx *c)
{
    static const char *const known[] = {NULL};
    oval *x;
    tml_status st;
    if ((st = attr_check(c, known)) || (st = in_val(c, 0, 0, &x))) return st;
    if (x->kind == V_CONST) c->folded++;
    return def_alias(c, 0, x, 0);
}

static tml_status op_dropout(ctx *c)
{
    static const char *const known[] = {"ratio", "is_test", "seed", NULL};
    oval *x, *r = NULL, *tm = NULL;
    tml_status st;
    if ((st = attr_check(c, known)) || (st = in_val(c, 0, 0, &x))) return st;
    float ratio = 0.5f;
    if (c->opset < 12) {
        if ((st = attr_f(c, "ratio", 0.5f, &ratio))) return st;
    } else {
        if ((st = in_constf(c, 1, 1, &r)) || (st = in_val(c, 2, 1, &tm))) return st;
        if (r) {
            if (r->numel != 1) return nerr(c, TML_ERR_FORMAT, "ratio must be a scalar");
            ratio = r->f[0];
        }
        if (tm) {
            if (tm->kind != V_CONST || !tm->is_int || tm->numel != 1)
                return nerr(c, TML_ERR_UNSUPPORTED, "training_mode must be a constant bool");
            if (tm->i[0])
                return nerr(c, TML_ERR_UNSUPPORTED,
                            "training_mode=true (random dropout at inference) is not supported");
        }
    }
    if (x->kind == V_CONST) {
        c->folded++;
        return def_alias(c, 0, x, 0);
    }
    if (!(ratio >= 0.0f && ratio < 1.0f))
        return nerr(c, TML_ERR_UNSUPPORTED, "ratio %g outside [0, 1)", (double)ratio);
    int y = act_like(c, 0, x);
    if (y < 0) return y;
    char nm[ONX_MAX_NAME + 1];
    node_base(c, nm, sizeof nm);
    int ni = add_node(c, nm, TML_OP_DROPOUT, 1, &x->tid, y);
    if (ni < 0) return ni;
    c->m->nodes[ni].rate = ratio;
    return def_like(c, 0, x, y, -1);
}

static tml_status op_batchnorm(ctx *c)
{
    static const char *const known[] = {"epsilon", "momentum", "spatial", "is_test", "training_mode", NULL};
    oval *x, *p[4];
    tml_status st;
    float eps;
    int64_t spatial, training;
    if ((st = attr_check(c, known)) || (st = attr_f(c, "epsilon", 1e-5f, &eps)) ||
        (st = attr_i(c, "spatial", 1, &spatial)) || (st = attr_i(c, "training_mode", 0, &training)))
        return st;
    if (training) return nerr(c, TML_ERR_UNSUPPORTED, "training_mode=1 (batch statistics) is not supported");
    if (!spatial) return nerr(c, TML_ERR_UNSUPPORTED, "spatial=0 (per-element statistics) is not supported");
    if ((st = in_act(c, 0, &x))) return st;
    for (int i = 0; i < 4; i++)
        if ((st = in_constf(c, i + 1, 0, &p[i]))) return st;
    if (x->rank < 2) return nerr(c, TML_ERR_UNSUPPORTED, "input rank %d", x->rank);
    int64_t C = x->dims[1];
    if (x->layout == L_PLAIN && x->rank > 2 && dims_numel(x->rank - 2, x->dims + 2) != 1) {
        char d[96];
        dims_str(x->rank, x->dims, d, sizeof d);
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "normalizing axis 1 of the non-image tensor '%s' %s (tinyml normalizes the last axis)",
                    x->name, d);
    }
    float *v[4] = {NULL, NULL, NULL, NULL};
    int in[5] = {x->tid, -1, -1, -1, -1};
    char base[ONX_MAX_NAME + 1];
    node_base(c, base, sizeof base);
    int32_t d[1] = {(int32_t)C};
    for (int i = 0; i < 4 && !st; i++) {
        if (p[i]->numel != C) {
            st = nerr(c, TML_ERR_FORMAT, "'%s' has %lld values for %lld channels", p[i]->name,
                      (long long)p[i]->numel, (long long)C);
            break;
        }
        v[i] = xmalloc(C, sizeof(float));
        if (!v[i]) {
            st = nctx(c, TML_ERR_NOMEM);
            break;
        }
        if (x->layout == L_FLAT)
            chw_to_hwc(p[i]->f, v[i], x->src[0], x->src[1], x->src[2], 1, 1);
        else
            memcpy(v[i], p[i]->f, sizeof(float) * (size_t)C);
        int t = add_tensor(c, p[i]->name, TML_TENSOR_PARAM, 1, d, v[i]);
        if (t < 0) st = t;
        in[i + 1] = t;
    }
    for (int i = 0; i < 4; i++) free(v[i]);
    if (st) return st;
    if (!(eps > 0.0f) || !isfinite(eps))
        return nerr(c, TML_ERR_UNSUPPORTED, "epsilon %g must be > 0", (double)eps);
    int y = act_like(c, 0, x);
    if (y < 0) return y;
    int ni = add_node(c, base, TML_OP_BATCHNORM, 5, in, y);
    if (ni < 0) return ni;
    c->m->nodes[ni].eps = eps;
    return def_like(c, 0, x, y, -1);
}

static tml_status op_softmax(ctx *c)
{
    static const char *const known[] = {"axis", NULL};
    oval *x;
    tml_status st;
    int64_t axis;
    if ((st = attr_check(c, known)) || (st = in_act(c, 0, &x))) return st;
    int coerced = c->opset < 13;
    if ((st = attr_i(c, "axis", coerced ? 1 : -1, &axis))) return st;
    int a;
    if (norm_axis(axis, x->rank, &a))
        return nerr(c, TML_ERR_FORMAT, "axis %lld out of range for rank %d", (long long)axis, x->rank);
    if (a == 0) return nerr(c, TML_ERR_UNSUPPORTED, "softmax over the batch axis");
    int32_t cur[TML_MAX_DIMS];
    int cn = tdims_of(x, cur);
    char base[ONX_MAX_NAME + 1];
    node_base(c, base, sizeof base);
    /* groups of `inner` consecutive tinyml elements normalized together */
    int64_t inner = -1;
    if (!coerced || a == x->rank - 1) {
        int last = x->layout == L_PLAIN ? x->rank - 1 : 1;
        if (a == last) inner = cur[cn - 1];
    } else if (a == 1) {
        inner = sample_numel(x); /* the whole sample: any element order */
    } else if (x->layout == L_PLAIN) {
        inner = dims_numel(x->rank - a, x->dims + a);
    }
    if (inner < 0) {
        char d[96];
        dims_str(x->rank, x->dims, d, sizeof d);
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "softmax over axis %d of '%s' %s: tinyml normalizes the last (channel) axis only", a,
                    x->name, d);
    }
    int from = x->tid;
    if (inner != cur[cn - 1]) {
        int32_t d2[2] = {(int32_t)(sample_numel(x) / inner), (int32_t)inner};
        from = reshape_tid(c, x->tid, 2, d2, "/in");
        if (from < 0) return from;
    }
    const tml_tensor *ft = &c->m->tensors[from];
    int32_t fd[TML_MAX_DIMS];
    int fn = ft->ndim;
    memcpy(fd, ft->dims, sizeof fd);
    char nm[ONX_MAX_NAME + 16];
    out_name(c, 0, nm, sizeof nm);
    if (from != x->tid) strcat(nm, "/2d");
    int y = add_tensor(c, nm, TML_TENSOR_ACT, fn, fd, NULL);
    if (y < 0) return y;
    int ni = add_node(c, base, TML_OP_SOFTMAX, 1, &from, y);
    if (ni < 0) return ni;
    if (from != x->tid) {
        y = reshape_tid(c, y, cn, cur, "");
        if (y < 0) return y;
    }
    return def_like(c, 0, x, y, -1);
}

static tml_status op_flatten(ctx *c)
{
    static const char *const known[] = {"axis", NULL};
    oval *x;
    tml_status st;
    int64_t axis;
    if ((st = attr_check(c, known)) || (st = in_val(c, 0, 0, &x)) || (st = attr_i(c, "axis", 1, &axis)))
        return st;
    int a;
    if (axis < -x->rank || axis > x->rank)
        return nerr(c, TML_ERR_FORMAT, "axis %lld out of range for rank %d", (long long)axis, x->rank);
    a = (int)(axis < 0 ? axis + x->rank : axis);
    int64_t d[2] = {dims_numel(a, x->dims), dims_numel(x->rank - a, x->dims + a)};
    if (x->kind == V_CONST) return reshape_const(c, x, 2, d);
    if (a != 1)
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "axis %d folds the batch dimension into the features (only axis 1 keeps it)", a);
    return reshape_act(c, x, 2, d);
}

/* Resolves a Reshape target (0 = copy, -1 = infer, BATCH_SYM = batch) for x. */
static tml_status reshape_target(ctx *c, const oval *x, int n, const int64_t *s, int allowzero, int64_t *d)
{
    int act = x->kind == V_ACT, infer = -1;
    int64_t known = 1, total = act ? sample_numel(x) : x->numel;
    if (n > ONX_MAX_RANK) return nerr(c, TML_ERR_UNSUPPORTED, "target has %d dims", n);
    for (int i = 0; i < n; i++) {
        int64_t v = s[i];
        if (v == BATCH_SYM) {
            if (!act || i != 0)
                return nerr(c, TML_ERR_UNSUPPORTED, "the batch size is used at position %d of a shape", i);
            d[i] = -1;
            continue;
        }
        if (v == 0 && !allowzero) {
            if (i >= x->rank)
                return nerr(c, TML_ERR_FORMAT, "shape entry %d is 0 (copy) but the input has rank %d", i,
                            x->rank);
            v = x->dims[i];
        }
        if (act && i == 0) {
            /* the batch: kept as N, 0, the declared batch, 1 (taken as "per sample"), or -1 when the rest is
             * one sample */
            int keeps = v == -1 || v == x->dims[0] || (c->batch < 0 && v == 1);
            if (!keeps)
                return nerr(c, TML_ERR_UNSUPPORTED, "the target shape changes the batch dimension to %lld",
                            (long long)v);
            d[0] = -1;
            continue;
        }
        if (v == -1) {
            if (infer >= 0) return nerr(c, TML_ERR_FORMAT, "two -1 entries in the target shape");
            infer = i;
            continue;
        }
        if (v < 0) return nerr(c, TML_ERR_FORMAT, "shape entry %lld", (long long)v);
        d[i] = v;
        if (v && known > TML_MAX_NUMEL / v) return nerr(c, TML_ERR_NOMEM, "target shape too large");
        known *= v;
    }
    if (infer >= 0 && act && s[0] == -1) return nerr(c, TML_ERR_FORMAT, "two -1 entries in the target shape");
    if (infer >= 0) {
        if (known == 0 || total % known)
            return nerr(c, TML_ERR_FORMAT, "cannot infer the -1 dimension of the target shape");
        d[infer] = total / known;
    } else if (act && n >= 1 && s[0] == -1 && known != total) {
        return nerr(c, TML_ERR_UNSUPPORTED, "-1 in the batch position would merge samples");
    }
    return TML_OK;
}

static tml_status op_reshape(ctx *c)
{
    static const char *const known[] = {"allowzero", "shape", NULL};
    oval *x, *sh = NULL;
    tml_status st;
    int64_t allowzero, s[ONX_MAX_RANK + 1], d[ONX_MAX_RANK];
    int n;
    if ((st = attr_check(c, known)) || (st = attr_i(c, "allowzero", 0, &allowzero)) ||
        (st = in_val(c, 0, 0, &x)))
        return st;
    if (c->opset < 5) {
        if ((st = attr_is(c, "shape", s, ONX_MAX_RANK, &n))) return st;
        if (n < 0) return nerr(c, TML_ERR_FORMAT, "no shape attribute");
    } else {
        if ((st = in_consti(c, 1, 0, &sh))) return st;
        if (sh->rank != 1 || sh->numel > ONX_MAX_RANK)
            return nerr(c, TML_ERR_UNSUPPORTED, "shape '%s' must be a 1-D constant of at most %d values",
                        sh->name, ONX_MAX_RANK);
        n = (int)sh->numel;
        memcpy(s, sh->i, sizeof(int64_t) * (size_t)n);
    }
    if ((st = reshape_target(c, x, n, s, allowzero != 0, d))) return st;
    if (x->kind == V_CONST) return reshape_const(c, x, n, d);
    return reshape_act(c, x, n, d);
}

/* Unsqueeze / Squeeze: axes from the attribute (opset < 13) or input 1. */
static tml_status squeeze_common(ctx *c, int unsq)
{
    static const char *const known[] = {"axes", NULL};
    oval *x, *ax = NULL;
    tml_status st;
    int64_t axes[ONX_MAX_RANK + 1];
    int na = -1;
    if ((st = attr_check(c, known)) || (st = in_val(c, 0, 0, &x))) return st;
    if (c->opset < 13) {
        if ((st = attr_is(c, "axes", axes, ONX_MAX_RANK, &na))) return st;
    } else {
        if ((st = in_consti(c, 1, 1, &ax))) return st;
        if (ax) {
            if (ax->numel > ONX_MAX_RANK) return nerr(c, TML_ERR_UNSUPPORTED, "too many axes");
            na = (int)ax->numel;
            memcpy(axes, ax->i, sizeof(int64_t) * (size_t)na);
        }
    }
    int r = x->rank, orank = unsq ? r + (na < 0 ? 0 : na) : r;
    if (unsq && na < 0) return nerr(c, TML_ERR_FORMAT, "axes are required");
    if (orank > ONX_MAX_RANK) return nerr(c, TML_ERR_UNSUPPORTED, "result rank %d", orank);
    int mark[ONX_MAX_RANK + 1] = {0};
    for (int i = 0; i < na; i++) {
        int a;
        if (norm_axis(axes[i], orank, &a) || mark[a])
            return nerr(c, TML_ERR_FORMAT, "bad axis %lld", (long long)axes[i]);
        if (!unsq && x->dims[a] != 1)
            return nerr(c, TML_ERR_FORMAT, "axis %d has size %lld, not 1", a, (long long)x->dims[a]);
        mark[a] = 1;
    }
    int64_t d[ONX_MAX_RANK];
    int n = 0;
    if (unsq) {
        for (int i = 0, j = 0; i < orank; i++) d[n++] = mark[i] ? 1 : x->dims[j++];
    } else {
        for (int i = 0; i < r; i++)
            if (!(na < 0 ? x->dims[i] == 1 && !(x->kind == V_ACT && i == 0) : mark[i])) d[n++] = x->dims[i];
    }
    if (x->kind == V_CONST) return reshape_const(c, x, n, d);
    if (mark[0]) return nerr(c, TML_ERR_UNSUPPORTED, "axis 0 is the batch dimension");
    return reshape_act(c, x, n, d);
}

static tml_status op_unsqueeze(ctx *c)
{
    return squeeze_common(c, 1);
}
static tml_status op_squeeze(ctx *c)
{
    return squeeze_common(c, 0);
}

static tml_status op_constant(ctx *c)
{
    static const char *const known[] = {"value",     "value_float", "value_floats",
                                        "value_int", "value_ints",  NULL};
    tml_status st;
    if ((st = attr_check(c, known))) return st;
    if (c->node->n_attr != 1) return nerr(c, TML_ERR_FORMAT, "needs exactly one value attribute");
    const onx_attr *a = &c->node->attr[0];
    int kind = onx_attr_kind(a);
    c->folded++;
    if (onx_slice_eq(a->name, "value")) {
        if (kind != ONX_ATTR_TENSOR || !a->has_t) return nerr(c, TML_ERR_FORMAT, "value must be a tensor");
        onx_tensor t;
        oval tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.name = "value";
        if ((st = onx_parse_tensor(a->t.p, a->t.p, a->t.n, 5, &t)) || (st = const_from_tensor(&tmp, &t)))
            return nctx(c, st);
        return def_const(c, 0, tmp.rank, tmp.dims, tmp.is_int, tmp.is_int ? (void *)tmp.i : (void *)tmp.f,
                         tmp.numel);
    }
    int is_list = onx_slice_eq(a->name, "value_floats") || onx_slice_eq(a->name, "value_ints");
    int is_int = onx_slice_eq(a->name, "value_int") || onx_slice_eq(a->name, "value_ints");
    int64_t n = 1;
    if (is_list) n = is_int ? a->n_ints : a->n_floats;
    if (n > TML_MAX_NUMEL) return nerr(c, TML_ERR_NOMEM, "too many values");
    void *d = xmalloc(n, is_int ? sizeof(int64_t) : sizeof(float));
    if (!d) return nctx(c, TML_ERR_NOMEM);
    int got = 0;
    if (is_list) {
        st = is_int ? onx_attr_ints(a, d, (int)n, &got) : onx_attr_floats(a, d, (int)n, &got);
        if (st) {
            free(d);
            return nctx(c, st);
        }
    } else if (is_int) {
        if (kind != ONX_ATTR_INT) st = nerr(c, TML_ERR_FORMAT, "value_int must be an int");
        ((int64_t *)d)[0] = a->i;
    } else {
        if (kind != ONX_ATTR_FLOAT) st = nerr(c, TML_ERR_FORMAT, "value_float must be a float");
        ((float *)d)[0] = a->f;
    }
    if (st) {
        free(d);
        return st;
    }
    int64_t dims[1] = {n};
    return def_const(c, 0, is_list ? 1 : 0, dims, is_int, d, n);
}

static tml_status op_shape(ctx *c)
{
    static const char *const known[] = {"start", "end", NULL};
    oval *x;
    tml_status st;
    int64_t start, end;
    if ((st = attr_check(c, known)) || (st = in_val(c, 0, 0, &x)) || (st = attr_i(c, "start", 0, &start)) ||
        (st = attr_i(c, "end", x->rank, &end)))
        return st;
    if (start < 0) start += x->rank;
    if (end < 0) end += x->rank;
    if (start < 0) start = 0;
    if (end > x->rank) end = x->rank;
    int64_t n = end > start ? end - start : 0;
    int64_t *d = xmalloc(n, sizeof(int64_t));
    if (!d) return nctx(c, TML_ERR_NOMEM);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = x->dims[start + i];
        if (x->kind == V_ACT && start + i == 0) v = c->batch > 0 ? c->batch : BATCH_SYM;
        d[i] = v;
    }
    c->folded++;
    int64_t dims[1] = {n};
    return def_const(c, 0, 1, dims, 1, d, n);
}

static tml_status op_gather(ctx *c)
{
    static const char *const known[] = {"axis", NULL};
    oval *x, *ix;
    tml_status st;
    int64_t axis;
    if ((st = attr_check(c, known)) || (st = in_val(c, 0, 0, &x)) || (st = in_consti(c, 1, 0, &ix)) ||
        (st = attr_i(c, "axis", 0, &axis)))
        return st;
    if (x->kind != V_CONST)
        return nerr(c, TML_ERR_UNSUPPORTED, "gathering from a computed tensor ('%s') is not supported",
                    x->name);
    int a;
    if (norm_axis(axis, x->rank, &a))
        return nerr(c, TML_ERR_FORMAT, "axis %lld out of range", (long long)axis);
    int orank = x->rank - 1 + ix->rank;
    if (orank > ONX_MAX_RANK) return nerr(c, TML_ERR_UNSUPPORTED, "result rank %d", orank);
    int64_t od[ONX_MAX_RANK], outer = dims_numel(a, x->dims),
                              inner = dims_numel(x->rank - a - 1, x->dims + a + 1), ax = x->dims[a];
    int k = 0;
    for (int i = 0; i < a; i++) od[k++] = x->dims[i];
    for (int i = 0; i < ix->rank; i++) od[k++] = ix->dims[i];
    for (int i = a + 1; i < x->rank; i++) od[k++] = x->dims[i];
    int64_t n = dims_numel(orank, od);
    if (n < 0 || n > FOLD_MAX_NUMEL) return nerr(c, TML_ERR_NOMEM, "constant result too large");
    size_t es = x->is_int ? sizeof(int64_t) : sizeof(float);
    uint8_t *out = xmalloc(n, es);
    if (!out) return nctx(c, TML_ERR_NOMEM);
    const uint8_t *src = x->is_int ? (const uint8_t *)x->i : (const uint8_t *)x->f;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ix->numel; j++) {
            int64_t idx = ix->i[j] < 0 ? ix->i[j] + ax : ix->i[j];
            if (idx < 0 || idx >= ax) {
                free(out);
                return nerr(c, TML_ERR_FORMAT, "index %lld out of range", (long long)ix->i[j]);
            }
            memcpy(out + ((o * ix->numel + j) * inner) * es, src + ((o * ax + idx) * inner) * es,
                   (size_t)inner * es);
        }
    c->folded++;
    return def_const(c, 0, orank, od, x->is_int, out, n);
}

static tml_status op_concat(ctx *c)
{
    static const char *const known[] = {"axis", NULL};
    tml_status st;
    int64_t axis;
    if ((st = attr_check(c, known)) || (st = attr_i(c, "axis", 0, &axis))) return st;
    int nin = c->node->n_in;
    if (nin < 1) return nerr(c, TML_ERR_FORMAT, "no inputs");
    oval *first;
    if ((st = in_val(c, 0, 0, &first))) return st;
    int a;
    if (norm_axis(axis, first->rank, &a))
        return nerr(c, TML_ERR_FORMAT, "axis %lld out of range", (long long)axis);
    int64_t od[ONX_MAX_RANK];
    memcpy(od, first->dims, sizeof od);
    od[a] = 0;
    for (int k = 0; k < nin; k++) {
        oval *x;
        if ((st = in_val(c, k, 0, &x))) return st;
        if (x->kind != V_CONST)
            return nerr(c, TML_ERR_UNSUPPORTED, "concatenating computed tensors ('%s') is not supported",
                        x->name);
        if (x->is_int != first->is_int || x->rank != first->rank)
            return nerr(c, TML_ERR_FORMAT, "inputs differ in type or rank");
        for (int i = 0; i < x->rank; i++)
            if (i != a && x->dims[i] != first->dims[i])
                return nerr(c, TML_ERR_SHAPE, "inputs differ in shape");
        od[a] += x->dims[a];
        if (od[a] > TML_MAX_NUMEL) return nerr(c, TML_ERR_NOMEM, "result too large");
    }
    int64_t n = dims_numel(first->rank, od), outer = dims_numel(a, od),
            inner = dims_numel(first->rank - a - 1, od + a + 1);
    if (n < 0) return nerr(c, TML_ERR_NOMEM, "result too large");
    size_t es = first->is_int ? sizeof(int64_t) : sizeof(float);
    uint8_t *out = xmalloc(n, es);
    if (!out) return nctx(c, TML_ERR_NOMEM);
    int64_t off = 0;
    for (int k = 0; k < nin; k++) {
        oval *x = val_lookup(c, c->node->in[k]);
        const uint8_t *src = x->is_int ? (const uint8_t *)x->i : (const uint8_t *)x->f;
        int64_t blk = x->dims[a] * inner;
        for (int64_t o = 0; o < outer; o++)
            memcpy(out + (o * od[a] * inner + off) * es, src + o * blk * es, (size_t)blk * es);
        off += blk;
    }
    c->folded++;
    return def_const(c, 0, first->rank, od, first->is_int, out, n);
}

static tml_status op_cast(ctx *c)
{
    static const char *const known[] = {"to", "saturate", NULL};
    oval *x;
    tml_status st;
    int64_t to;
    if ((st = attr_check(c, known)) || (st = in_val(c, 0, 0, &x)) || (st = attr_i(c, "to", 0, &to)))
        return st;
    int to_float = onx_dtype_is_float((int32_t)to), to_int = onx_dtype_is_int((int32_t)to);
    if (!to_float && !to_int) return nerr(c, TML_ERR_UNSUPPORTED, "cast to %s", onx_dtype_name((int32_t)to));
    if (x->kind == V_ACT) {
        if (to != ONX_FLOAT)
            return nerr(c, TML_ERR_UNSUPPORTED, "casting activations to %s (tinyml computes in float)",
                        onx_dtype_name((int32_t)to));
        return def_alias(c, 0, x, 0);
    }
    void *d = xmalloc(x->numel, to_int ? sizeof(int64_t) : sizeof(float));
    if (!d) return nctx(c, TML_ERR_NOMEM);
    for (int64_t i = 0; i < x->numel; i++) {
        if (to_int) {
            if (x->is_int) {
                ((int64_t *)d)[i] = x->i[i];
            } else {
                float v = x->f[i];
                if (!(v > -9.2e18f && v < 9.2e18f)) {
                    free(d);
                    return nerr(c, TML_ERR_UNSUPPORTED, "value %g does not fit an integer", (double)v);
                }
                ((int64_t *)d)[i] = (int64_t)v;
            }
        } else {
            if (x->is_int && x->i[i] == BATCH_SYM) {
                free(d);
                return nerr(c, TML_ERR_UNSUPPORTED, "casting the batch size");
            }
            ((float *)d)[i] = x->is_int ? (float)x->i[i] : x->f[i];
        }
    }
    c->folded++;
    return def_const(c, 0, x->rank, x->dims, to_int, d, x->numel);
}

static tml_status op_transpose(ctx *c)
{
    static const char *const known[] = {"perm", NULL};
    oval *x;
    tml_status st;
    int64_t perm[ONX_MAX_RANK + 1];
    int np;
    if ((st = attr_check(c, known)) || (st = in_val(c, 0, 0, &x)) ||
        (st = attr_is(c, "perm", perm, ONX_MAX_RANK, &np)))
        return st;
    int r = x->rank;
    if (np < 0) {
        np = r;
        for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
    }
    int seen[ONX_MAX_RANK] = {0};
    if (np != r) return nerr(c, TML_ERR_FORMAT, "perm has %d entries for rank %d", np, r);
    for (int i = 0; i < r; i++) {
        if (perm[i] < 0 || perm[i] >= r || seen[perm[i]])
            return nerr(c, TML_ERR_FORMAT, "perm is not a permutation");
        seen[perm[i]] = 1;
    }
    int64_t od[ONX_MAX_RANK];
    for (int i = 0; i < r; i++) od[i] = x->dims[perm[i]];
    int ident = 1;
    for (int i = 0; i < r; i++) ident &= perm[i] == i;
    if (ident) return def_alias(c, 0, x, 0);
    if (x->kind == V_ACT) {
        /* NCHW <-> NHWC only changes how the same HWC data is described */
        static const int64_t to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
        if (r == 4 && memcmp(perm, to_nhwc, sizeof to_nhwc) == 0 && x->layout == L_NCHW) {
            int t;
            if ((st = image_tid(c, x, &t))) return st;
            return def_act(c, 0, t, L_PLAIN, 4, od, -1, NULL);
        }
        if (r == 4 && memcmp(perm, to_nchw, sizeof to_nchw) == 0 && x->layout == L_PLAIN)
            return def_act(c, 0, x->tid, L_NCHW, 4, od, -1, NULL);
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "transposing the computed tensor '%s' (only NCHW<->NHWC is supported)", x->name);
    }
    size_t es = x->is_int ? sizeof(int64_t) : sizeof(float);
    uint8_t *out = xmalloc(x->numel, es);
    if (!out) return nctx(c, TML_ERR_NOMEM);
    int64_t istride[ONX_MAX_RANK];
    istride[r - 1] = 1;
    for (int i = r - 2; i >= 0; i--) istride[i] = istride[i + 1] * x->dims[i + 1];
    const uint8_t *src = x->is_int ? (const uint8_t *)x->i : (const uint8_t *)x->f;
    for (int64_t e = 0; e < x->numel; e++) {
        int64_t rem = e, si = 0;
        for (int i = r - 1; i >= 0; i--) {
            int64_t idx = rem % od[i];
            rem /= od[i];
            si += idx * istride[perm[i]];
        }
        memcpy(out + e * (int64_t)es, src + si * (int64_t)es, es);
    }
    c->folded++;
    return def_const(c, 0, r, od, x->is_int, out, x->numel);
}

typedef tml_status (*op_fn)(ctx *c);
typedef struct op_entry {
    const char *name;
    op_fn fn;
} op_entry;

static const op_entry op_table[] = {
    {"Add", op_add},
    {"AveragePool", op_avgpool},
    {"BatchNormalization", op_batchnorm},
    {"Cast", op_cast},
    {"Clip", op_clip},
    {"Concat", op_concat},
    {"Constant", op_constant},
    {"Conv", op_conv},
    {"Div", op_div},
    {"Dropout", op_dropout},
    {"Flatten", op_flatten},
    {"Gather", op_gather},
    {"Gemm", op_gemm},
    {"GlobalAveragePool", op_gap},
    {"GlobalMaxPool", op_gmp},
    {"Identity", op_identity},
    {"MatMul", op_matmul},
    {"MaxPool", op_maxpool},
    {"Mul", op_mul},
    {"Relu", op_relu},
    {"ReduceMean", op_reduce_mean},
    {"Reshape", op_reshape},
    {"Shape", op_shape},
    {"Softmax", op_softmax},
    {"Squeeze", op_squeeze},
    {"Sub", op_sub},
    {"Transpose", op_transpose},
    {"Unsqueeze", op_unsqueeze},
};

#define N_OPS ((int)(sizeof op_table / sizeof op_table[0]))

/* ---- the graph --------------------------------------------------------------------------------------- */

static void count_op(ctx *c, onx_slice op)
{
    char nm[32];
    onx_slice_print(op, nm, sizeof nm);
    for (int i = 0; i < c->n_ops; i++)
        if (strcmp(c->ops[i].name, nm) == 0) {
            c->ops[i].n++;
            return;
        }
    if (c->n_ops < (int)(sizeof c->ops / sizeof c->ops[0])) {
        snprintf(c->ops[c->n_ops].name, sizeof c->ops[0].name, "%s", nm);
        c->ops[c->n_ops++].n = 1;
    }
}

/* After a node is converted: constants it read for the last time are freed
 * (a model's weights then exist twice at most: file buffer and tinyml tensors). */
static void release_inputs(ctx *c)
{
    for (int k = 0; k < c->node->n_in; k++) {
        if (!c->node->in[k].n) continue;
        oval *v = val_lookup(c, c->node->in[k]);
        if (!v || --v->left > 0 || v->kind != V_CONST) continue;
        free(v->f);
        free(v->i);
        v->f = NULL;
        v->i = NULL;
        v->kind = V_NONE;
    }
}

static tml_status convert_node(ctx *c)
{
    const onx_node *n = c->node;
    if (n->domain.n && !onx_slice_eq(n->domain, "ai.onnx")) {
        char dm[64];
        onx_slice_print(n->domain, dm, sizeof dm);
        return nerr(c, TML_ERR_UNSUPPORTED,
                    "op of domain '%s' is not supported (only the default ONNX domain)", dm);
    }
    count_op(c, n->op_type);
    tml_status st = TML_ERR_UNSUPPORTED;
    int found = 0;
    for (int i = 0; i < N_OPS; i++)
        if (onx_slice_eq(n->op_type, op_table[i].name)) {
            found = 1;
            st = op_table[i].fn(c);
            break;
        }
    if (!found)
        return nerr(
            c, TML_ERR_UNSUPPORTED,
            "op type not supported by tinyml (supported: Add, AveragePool, BatchNormalization, Clip, Conv, "
            "Dropout, Flatten, Gemm, GlobalAveragePool, GlobalMaxPool, Identity, MatMul, MaxPool, "
            "ReduceMean over H,W, Relu, Reshape, Softmax, "
            "Sub/Mul/Div by constants, and Constant/Shape/Gather/Concat/Cast/Squeeze/Unsqueeze/Transpose on "
            "constants)");
    if (st) return st;
    /* every output something reads must have been produced */
    for (int k = 0; k < n->n_out; k++) {
        if (!n->out[k].n || uses_of(c, n->out[k]) == 0) continue;
        if (!val_lookup(c, n->out[k])) {
            char nm[96];
            onx_slice_print(n->out[k], nm, sizeof nm);
            return nerr(c, TML_ERR_UNSUPPORTED, "output %d ('%s') is used but not supported", k, nm);
        }
    }
    return TML_OK;
}

/* Orders the nodes the output depends on (depth-first, iterative) and
 * detects cycles. order receives node indices, producers first. */
static tml_status order_nodes(ctx *c, const smap *producer, int root, int *order, int *n_order)
{
    const onx_graph *g = c->g;
    int *state = calloc((size_t)g->n_node + 1, sizeof(int));
    int *stk = malloc(sizeof(int) * ((size_t)g->n_node + 1));
    int *pos = malloc(sizeof(int) * ((size_t)g->n_node + 1));
    tml_status st = TML_OK;
    if (!state || !stk || !pos) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    int sp = 0;
    *n_order = 0;
    stk[sp] = root;
    pos[sp++] = 0;
    state[root] = 1;
    while (sp > 0) {
        int i = stk[sp - 1];
        const onx_node *n = &g->node[i];
        if (pos[sp - 1] < n->n_in) {
            onx_slice in = n->in[pos[sp - 1]++];
            if (!in.n) continue;
            int p = smap_get(producer, in.p, in.n);
            if (p < 0 || state[p] == 2) continue;
            if (state[p] == 1) {
                char a[96], b[96];
                onx_slice_print(g->node[p].name, a, sizeof a);
                onx_slice_print(in, b, sizeof b);
                st = tml_error(
                    TML_ERR_FORMAT,
                    "graph has a cycle: node '%s' needs '%s', which depends on the node's own output", a, b);
                goto out;
            }
            state[p] = 1;
            stk[sp] = p;
            pos[sp++] = 0;
        } else {
            state[i] = 2;
            order[(*n_order)++] = i;
            sp--;
        }
    }
out:
    free(state);
    free(stk);
    free(pos);
    return st;
}

/* Creates the model input from graph input `vi`. */
static tml_status make_input(ctx *c, const onx_valinfo *vi, tml_onnx_info *info)
{
    char nm[96];
    onx_slice_print(vi->name, nm, sizeof nm);
    if (vi->other_type || (vi->is_tensor && vi->elem_type != ONX_FLOAT && vi->elem_type != ONX_UNDEFINED))
        return tml_error(TML_ERR_UNSUPPORTED, "graph input '%s' is %s; tinyml models take one float tensor",
                         nm, vi->other_type ? "not a tensor" : onx_dtype_name(vi->elem_type));
    const tml_onnx_opts *o = c->opts;
    int rank;
    int64_t d[ONX_MAX_RANK];
    if (vi->has_shape) {
        rank = vi->ndim;
        if (rank > ONX_MAX_RANK)
            return tml_error(TML_ERR_UNSUPPORTED, "graph input '%s' has rank %d", nm, rank);
        memcpy(d, vi->dims, sizeof(int64_t) * (size_t)rank);
    } else {
        if (!o || o->input_ndim < 1)
            return tml_error(TML_ERR_INVALID,
                             "graph input '%s' declares no shape: give it (--input-shape HxWxC or F)", nm);
        rank = o->input_ndim == 3 ? 4 : o->input_ndim + 1;
        for (int i = 0; i < rank; i++) d[i] = -1;
    }
    if (rank < 2)
        return tml_error(
            TML_ERR_UNSUPPORTED,
            "graph input '%s' has rank %d; tinyml needs a batch dimension plus the sample's dims", nm, rank);
    if (rank > TML_MAX_DIMS + 1)
        return tml_error(TML_ERR_UNSUPPORTED, "graph input '%s' has rank %d (at most %d)", nm, rank,
                         TML_MAX_DIMS + 1);
    /* tinyml order of the per-sample dims: (H,W,C) for images */
    int map[ONX_MAX_RANK], tn = rank - 1;
    for (int i = 0; i < tn; i++) map[i] = i + 1;
    if (rank == 4) {
        map[0] = 2;
        map[1] = 3;
        map[2] = 1;
    }
    if (o && o->input_ndim > 0) {
        if (o->input_ndim != tn)
            return tml_error(TML_ERR_INVALID, "the input shape given has %d dims; graph input '%s' needs %d",
                             o->input_ndim, nm, tn);
        for (int i = 0; i < tn; i++) {
            int64_t fd = d[map[i]];
            if (o->input_dims[i] < 1)
                return tml_error(TML_ERR_INVALID, "input shape dimension %d is %d", i, o->input_dims[i]);
            if (fd >= 0 && fd != o->input_dims[i])
                return tml_error(TML_ERR_INVALID,
                                 "the input shape given does not match graph input '%s' (dimension %d is "
                                 "%lld in the file, %d given)",
                                 nm, map[i], (long long)fd, o->input_dims[i]);
            d[map[i]] = o->input_dims[i];
        }
    }
    char ds[96];
    dims_str(rank, d, ds, sizeof ds);
    for (int i = 1; i < rank; i++) {
        if (d[i] < 0)
            return tml_error(
                TML_ERR_INVALID,
                "graph input '%s' %s has a symbolic dimension %d: give the shape (--input-shape %s)", nm, ds,
                i,
                rank == 4   ? "HxWxC"
                : rank == 2 ? "F"
                            : "with one value per dimension after the batch");
        if (d[i] < 1 || d[i] > (1 << 16))
            return tml_error(TML_ERR_UNSUPPORTED,
                             "graph input '%s' %s: dimension %d is %s (tinyml allows 1..65536)", nm, ds, i,
                             d[i] < 1 ? "empty" : "too large");
    }
    c->batch = d[0] > 0 ? d[0] : -1;
    d[0] = c->batch;
    oval *v;
    tml_status st = val_new(c, vi->name, &v);
    if (st) return st;
    v->kind = V_ACT;
    v->rank = rank;
    memcpy(v->dims, d, sizeof(int64_t) * (size_t)rank);
    v->layout = rank == 4 ? L_NCHW : L_PLAIN;
    int32_t td[TML_MAX_DIMS];
    int nd = tdims_of(v, td);
    int t = add_tensor(c, v->name, TML_TENSOR_ACT, nd, td, NULL);
    if (t < 0) return t;
    v->tid = t;
    c->m->input = t;
    if (info) {
        snprintf(info->input_name, sizeof info->input_name, "%s", v->name);
        info->in_layout = (tml_onnx_layout)v->layout;
        info->in_rank = rank;
        memcpy(info->in_dims, d, sizeof(int64_t) * (size_t)rank);
    }
    return TML_OK;
}

static tml_status import_graph(ctx *c, tml_onnx_info *info)
{
    const onx_model *om = c->om;
    const onx_graph *g = &om->graph;
    c->g = g;
    tml_status st;
    if (!om->has_graph) return tml_error(TML_ERR_FORMAT, "the file has no graph (is it an ONNX model?)");
    if (!om->has_opset)
        return tml_error(TML_ERR_FORMAT, "the model imports no opset of the default ONNX domain");
    if (om->opset < TML_ONNX_OPSET_MIN || om->opset > TML_ONNX_OPSET_MAX)
        return tml_error(
            TML_ERR_UNSUPPORTED,
            "opset %lld is not supported (%d..%d); convert the model with onnx.version_converter",
            (long long)om->opset, TML_ONNX_OPSET_MIN, TML_ONNX_OPSET_MAX);
    c->opset = (int)om->opset;
    if (g->n_sparse_init) return tml_error(TML_ERR_UNSUPPORTED, "sparse initializers are not supported");
    if (g->n_output != 1) {
        if (!g->n_output) return tml_error(TML_ERR_FORMAT, "the graph has no output");
        return tml_error(TML_ERR_UNSUPPORTED, "the graph has %d outputs; tinyml models have one",
                         g->n_output);
    }
    int64_t cap = (int64_t)g->n_init + g->n_input + 16;
    for (int i = 0; i < g->n_node; i++) cap += g->node[i].n_out;
    if (cap > INT32_MAX / 2) return tml_error(TML_ERR_UNSUPPORTED, "graph too large");
    c->v = calloc((size_t)cap, sizeof *c->v);
    if (!c->v) return tml_error(TML_ERR_NOMEM, "out of memory");
    c->capv = (int)cap;

    /* producers of node outputs */
    smap producer = {0};
    int *order = NULL;
    for (int i = 0; i < g->n_node; i++)
        for (int k = 0; k < g->node[i].n_out; k++) {
            onx_slice o = g->node[i].out[k];
            if (!o.n) continue;
            if (smap_get(&producer, o.p, o.n) >= 0) {
                char nm[96];
                onx_slice_print(o, nm, sizeof nm);
                st = tml_error(TML_ERR_FORMAT, "value '%s' is produced by two nodes", nm);
                goto out;
            }
            if ((st = smap_put(&producer, o.p, o.n, i))) goto out;
        }
    onx_slice outname = g->output[0].name;
    char outnm[96];
    onx_slice_print(outname, outnm, sizeof outnm);
    int root = smap_get(&producer, outname.p, outname.n);
    order = malloc(sizeof(int) * ((size_t)g->n_node + 1));
    if (!order) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    int n_order = 0;
    if (root >= 0 && (st = order_nodes(c, &producer, root, order, &n_order))) goto out;
    /* readers of each value among the used nodes */
    if ((st = smap_put(&c->uses, outname.p, outname.n, 1))) goto out;
    for (int j = 0; j < n_order; j++) {
        const onx_node *n = &g->node[order[j]];
        for (int k = 0; k < n->n_in; k++) {
            if (!n->in[k].n) continue;
            if ((st = smap_put(&c->uses, n->in[k].p, n->in[k].n, uses_of(c, n->in[k]) + 1))) goto out;
        }
    }
    /* initializers */
    for (int i = 0; i < g->n_init; i++) {
        oval *v;
        if (smap_get(&producer, g->init[i].name.p, g->init[i].name.n) >= 0) {
            st = tml_error(TML_ERR_FORMAT, "initializer %d is also produced by a node", i);
            goto out;
        }
        if ((st = val_new(c, g->init[i].name, &v))) goto out;
        v->kind = V_LAZY;
        v->init = &g->init[i];
    }
    /* graph inputs: bound to constants, or the one model input */
    const tml_onnx_opts *o = c->opts;
    int n_real = 0, chosen = -1, n_used = 0;
    char names[256] = "";
    int *bound = calloc((size_t)(o && o->n_bind > 0 ? o->n_bind : 1), sizeof(int));
    if (!bound) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < g->n_input; i++) {
        const onx_valinfo *vi = &g->input[i];
        if (smap_get(&c->vmap, vi->name.p, vi->name.n) >= 0 && val_lookup(c, vi->name)->kind == V_LAZY)
            continue; /* has an initializer */
        if (smap_get(&producer, vi->name.p, vi->name.n) >= 0) {
            free(bound);
            st = tml_error(TML_ERR_FORMAT, "graph input %d is also produced by a node", i);
            goto out;
        }
        int b = -1;
        for (int k = 0; o && k < o->n_bind && b < 0; k++) {
            const tml_onnx_binding *bd = &o->bind[k];
            if (bd->name && *bd->name ? onx_slice_eq(vi->name, bd->name) : bd->index == n_real) b = k;
        }
        n_real++;
        if (b >= 0) {
            bound[b] = 1;
            oval *v;
            onx_tensor t;
            if ((st = val_new(c, vi->name, &v))) break;
            if ((st = onx_parse_tensor(o->bind[b].pb, o->bind[b].pb, o->bind[b].pb_len, 0, &t)) ||
                (st = const_from_tensor(v, &t))) {
                tml_error_context(st, "binding of graph input %d", i);
                break;
            }
            /* keep the bound bytes out of the value: decoded copies only */
            continue;
        }
        if (uses_of(c, vi->name) == 0) continue;
        n_used++;
        if (chosen < 0) chosen = i;
        char nm[64];
        onx_slice_print(vi->name, nm, sizeof nm);
        if (strlen(names) + strlen(nm) + 4 < sizeof names) {
            if (*names) strcat(names, ", ");
            strcat(names, nm);
        }
    }
    for (int k = 0; !st && o && k < o->n_bind; k++)
        if (!bound[k])
            st = tml_error(TML_ERR_INVALID, "binding %d (%s) matches no graph input", k,
                           o->bind[k].name ? o->bind[k].name : "by index");
    free(bound);
    if (st) goto out;
    if (n_used > 1) {
        st = tml_error(TML_ERR_UNSUPPORTED, "the graph has %d inputs (%s); tinyml models have one", n_used,
                       names);
        goto out;
    }
    if (n_used == 0) {
        st = tml_error(TML_ERR_UNSUPPORTED, "the output '%s' does not depend on any graph input", outnm);
        goto out;
    }
    if ((st = make_input(c, &g->input[chosen], info))) goto out;

    /* nodes */
    for (int j = 0; j < n_order; j++) {
        c->node = &g->node[order[j]];
        c->node_idx = order[j];
        if ((st = convert_node(c))) goto out;
        release_inputs(c);
    }
    oval *out = val_lookup(c, outname);
    if (!out) {
        st = tml_error(TML_ERR_FORMAT, "the graph output '%s' is not produced by any node", outnm);
        goto out;
    }
    if ((st = val_ready(out))) goto out;
    if (out->kind != V_ACT) {
        st = tml_error(TML_ERR_UNSUPPORTED, "the graph output '%s' is a constant", outnm);
        goto out;
    }
    int ot = out->tid;
    if (ot == c->m->input) {
        /* the graph computes nothing: an identity node gives the output its own tensor */
        int32_t d[TML_MAX_DIMS];
        int nd = tdims_of(out, d);
        char nm[ONX_MAX_NAME + 16];
        snprintf(nm, sizeof nm, "%s/out", out->name);
        ot = add_tensor(c, nm, TML_TENSOR_ACT, nd, d, NULL);
        if (ot < 0 || (st = add_node(c, "identity", TML_OP_DROPOUT, 1, &out->tid, ot)) < 0) {
            st = ot < 0 ? ot : st;
            goto out;
        }
        st = TML_OK;
    }
    c->m->output = ot;
    if (info) {
        snprintf(info->output_name, sizeof info->output_name, "%s", out->name);
        info->out_layout = (tml_onnx_layout)out->layout;
        info->out_rank = out->rank;
        memcpy(info->out_dims, out->dims, sizeof(int64_t) * (size_t)out->rank);
        memcpy(info->out_chw, out->src, sizeof info->out_chw);
        info->used_nodes = n_order;
    }
    if ((st = tml_model_finalize(c->m))) {
        tml_error_context(st, "the imported graph is not valid for tinyml");
        goto out;
    }
    /* every activation's inferred shape must be the one computed from ONNX */
    for (int i = 0; i < c->nv; i++) {
        const oval *v = &c->v[i];
        if (v->kind != V_ACT) continue;
        int32_t d[TML_MAX_DIMS];
        int nd = tdims_of(v, d);
        const tml_tensor *t = &c->m->tensors[v->tid];
        if (t->ndim != nd || memcmp(t->dims, d, sizeof(int32_t) * (size_t)nd) != 0) {
            st = tml_error(TML_ERR_FORMAT, "value '%s': tinyml infers a different shape than ONNX", v->name);
            goto out;
        }
    }
    const onx_valinfo *ov = &g->output[0];
    if (ov->has_shape && ov->ndim > 0) {
        int ok = ov->ndim == out->rank;
        for (int i = 1; i < out->rank && ok; i++) ok = ov->dims[i] < 0 || ov->dims[i] == out->dims[i];
        if (!ok) {
            char a[96], b[96];
            dims_str(ov->ndim < ONX_MAX_RANK ? ov->ndim : ONX_MAX_RANK, ov->dims, a, sizeof a);
            dims_str(out->rank, out->dims, b, sizeof b);
            st = tml_error(TML_ERR_FORMAT, "the graph output '%s' is declared %s but computes to %s", outnm,
                           a, b);
            goto out;
        }
    }
out:
    smap_free(&producer);
    free(order);
    return st;
}

tml_status tml_onnx_import_mem(const void *buf, size_t len, const tml_onnx_opts *opts, tml_model **out,
                               tml_onnx_info *info)
{
    *out = NULL;
    if (info) memset(info, 0, sizeof *info);
    if (!buf && len) return tml_error(TML_ERR_INVALID, "no buffer");
    if (opts && (opts->input_ndim < 0 || opts->input_ndim > TML_MAX_DIMS || opts->n_bind < 0 ||
                 (opts->n_bind && !opts->bind)))
        return tml_error(TML_ERR_INVALID, "bad import options");
    if (len == 0) return tml_error(TML_ERR_FORMAT, "empty file");
    if (len >= 4 && memcmp(buf, "\x89TMF", 4) == 0)
        return tml_error(TML_ERR_FORMAT, "this is a tinyml model (.tmf), not an ONNX file: no import needed");
    onx_model om;
    tml_status st = onx_parse_model(buf, len, &om);
    if (st) return tml_error_context(st, "not a valid ONNX file");
    ctx c;
    memset(&c, 0, sizeof c);
    c.om = &om;
    c.opts = opts;
    c.batch = -1;
    c.m = tml_model_new();
    if (!c.m) {
        onx_model_free(&om);
        return TML_ERR_NOMEM;
    }
    st = import_graph(&c, info);
    if (!st) {
        tml_meta *meta = &c.m->meta;
        char gname[128];
        onx_slice_print(om.graph.name, gname, sizeof gname);
        free(meta->name);
        meta->name = tml_strdup(*gname ? gname : "onnx");
        meta->arch = tml_strdup("onnx");
        if (!meta->name || !meta->arch) st = tml_error(TML_ERR_NOMEM, "out of memory");
        const tml_tensor *ot = &c.m->tensors[c.m->output];
        meta->n_classes = ot->ndim == 1 ? ot->dims[0] : 0;
    }
    if (info) {
        info->ir_version = om.ir_version;
        info->opset = (int)om.opset;
        char pn[48], pv[16];
        onx_slice_print(om.producer_name, pn, sizeof pn);
        onx_slice_print(om.producer_version, pv, sizeof pv);
        snprintf(info->producer, sizeof info->producer, "%s%s%s", pn, *pv ? " " : "", pv);
        onx_slice_print(om.graph.name, info->graph_name, sizeof info->graph_name);
        info->onnx_nodes = om.graph.n_node;
        info->folded_nodes = c.folded;
        info->fused_nodes = c.fused;
        info->batch = c.batch;
        size_t o = 0;
        for (int i = 0; i < c.n_ops && o < sizeof info->op_summary; i++)
            o += (size_t)snprintf(info->op_summary + o, sizeof info->op_summary - o, "%s%s %d", i ? ", " : "",
                                  c.ops[i].name, c.ops[i].n);
    }
    for (int i = 0; i < c.nv; i++) val_release(&c.v[i]);
    free(c.v);
    smap_free(&c.vmap);
    smap_free(&c.uses);
    smap_free(&c.tnames);
    smap_free(&c.nnames);
    onx_model_free(&om);
    if (st) {
        tml_model_free(c.m);
        return st;
    }
    *out = c.m;
    return TML_OK;
}

/* Largest file read (bytes). */
#define ONX_MAX_FILE ((size_t)2 << 30)

static tml_status read_stream(FILE *f, uint8_t **buf, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    if (!b) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (;;) {
        if (n == cap) {
            if (cap >= ONX_MAX_FILE) {
                free(b);
                return tml_error(TML_ERR_NOMEM, "file larger than %zu bytes", ONX_MAX_FILE);
            }
            uint8_t *p = realloc(b, cap * 2);
            if (!p) {
                free(b);
                return tml_error(TML_ERR_NOMEM, "out of memory reading the file");
            }
            b = p;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) {
        free(b);
        return tml_error(TML_ERR_IO, "read error");
    }
    *buf = b;
    *len = n;
    return TML_OK;
}

tml_status tml_onnx_import_file(const char *path, const tml_onnx_opts *opts, tml_model **out,
                                tml_onnx_info *info)
{
    *out = NULL;
    int use_stdin = !path || strcmp(path, "-") == 0;
    const char *what = use_stdin ? "<stdin>" : path;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f) return tml_error(TML_ERR_IO, "%s: cannot open: %s", what, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0;
    tml_status st = read_stream(f, &buf, &len);
    if (!use_stdin) fclose(f);
    if (!st) st = tml_onnx_import_mem(buf, len, opts, out, info);
    free(buf);
    if (st) tml_error_context(st, "%s", what);
    return st;
}

tml_status tml_onnx_read_tensor(const void *buf, size_t len, float **data, int *ndim,
                                int64_t dims[TML_ONNX_MAX_RANK])
{
    *data = NULL;
    onx_tensor t;
    tml_status st = onx_parse_tensor(buf, buf, len, 0, &t);
    int64_t n;
    if (!st) st = onx_tensor_f32(&t, data, &n);
    if (st) return tml_error_context(st, "TensorProto");
    *ndim = t.ndim;
    memcpy(dims, t.dims, sizeof(int64_t) * (size_t)t.ndim);
    return TML_OK;
}
