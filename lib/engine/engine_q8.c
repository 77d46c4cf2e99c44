/*
 * engine_q8.c - the integer-only path of the engine. Everything that needs
 * floating point (multipliers from scales, the softmax table) is computed once
 * in prepare; running a node is integer arithmetic only.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "tinyml/tml_ops_s8.h"

typedef struct q8_node {
    tml_qparams q;       /* conv / depthwise / dense */
    int32_t *mult, *shift;
    tml_add_s8_params add;
    uint32_t lut[256];   /* softmax */
    tml_softmax_s8_tfl_params sm; /* softmax, TFLite arithmetic */
    tml_mean_s8_tfl_params mean;  /* global average pool, TFLite arithmetic (MEAN) */
    int32_t lo, hi;      /* clamp bounds (relu, relu6, pools) */
    void *packed;        /* conv: weights packed once for the fast kernel */
    int wbits;           /* 8, or the width of low-bit weights (tml_tensor.qbits) */
    uint8_t *wpk;        /* low-bit weights packed as on the device: what _ref reads */
    int8_t *w8;          /* the same unpacked from wpk: what the fast int8 kernels read */
} q8_node;

static float qscale(const tml_tensor *t) { return t->q.scale[0]; }
static int32_t qzp(const tml_tensor *t) { return t->q.zero_point[0]; }

static tml_status need_qparams(const tml_tensor *t, const tml_node *n)
{
    if (t->q.n < 1 || !t->q.scale || !t->q.zero_point)
        return tml_error(TML_ERR_FORMAT, "node '%s': tensor '%s' has no quantization parameters", n->name, t->name);
    for (int i = 0; i < t->q.n; i++) {
        if (!(t->q.scale[i] > 0.0f) || !isfinite(t->q.scale[i]))
            return tml_error(TML_ERR_FORMAT, "node '%s': tensor '%s' has a bad scale %g", n->name, t->name, t->q.scale[i]);
        if (t->kind == TML_TENSOR_ACT && (t->q.zero_point[i] < -128 || t->q.zero_point[i] > 127))
            return tml_error(TML_ERR_FORMAT, "node '%s': tensor '%s' zero point %d outside int8", n->name, t->name,
                             t->q.zero_point[i]);
    }
    return TML_OK;
}

static tml_status need_dtype(const tml_tensor *t, tml_dtype dt, const tml_node *n)
{
    if (t->dtype != dt)
        return tml_error(TML_ERR_UNSUPPORTED, "node '%s': tensor '%s' is %s, the int8 engine needs %s", n->name, t->name,
                         tml_dtype_name(t->dtype), tml_dtype_name(dt));
    return TML_OK;
}

static tml_status same_params(const tml_tensor *x, const tml_tensor *y, const tml_node *n)
{
    if (qscale(x) != qscale(y) || qzp(x) != qzp(y))
        return tml_error(TML_ERR_UNSUPPORTED, "node '%s' (%s): output must keep the input's scale and zero point", n->name,
                         tml_op_name(n->op));
    return TML_OK;
}

static int is_tfl(const tml_model *m) { return m->meta.rounding == TML_ROUNDING_TFLITE; }

/* Clamp bounds of a fused activation for output y in the model's arithmetic. */
static void act_bounds(const tml_model *m, tml_act act, const tml_tensor *y, int32_t *lo, int32_t *hi)
{
    if (is_tfl(m))
        tml_act_bounds_s8_tfl(act, qscale(y), qzp(y), lo, hi);
    else
        tml_act_bounds_s8(act, qscale(y), qzp(y), lo, hi);
}

static tml_status prep_weighted(const tml_model *m, const tml_node *n, q8_node *p)
{
    const tml_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out];
    tml_status st;
    if ((st = need_dtype(w, TML_DTYPE_INT8, n)) || (st = need_qparams(w, n))) return st;
    int oc = n->op == TML_OP_DEPTHWISE_CONV2D ? w->dims[3] : w->dims[0];
    int axis = n->op == TML_OP_DEPTHWISE_CONV2D ? 3 : 0;
    if (w->q.n != 1 && (w->q.n != oc || w->q.axis != axis))
        return tml_error(TML_ERR_FORMAT, "node '%s': weights need 1 or %d scales along axis %d", n->name, oc, axis);
    for (int i = 0; i < w->q.n; i++)
        if (w->q.zero_point[i] != 0) return tml_error(TML_ERR_UNSUPPORTED, "node '%s': weights must be symmetric (zero point 0)", n->name);
    if (n->n_in > 2 && n->in[2] >= 0) {
        const tml_tensor *b = &m->tensors[n->in[2]];
        if ((st = need_dtype(b, TML_DTYPE_INT32, n))) return st;
    }
    p->mult = malloc(sizeof(int32_t) * (size_t)oc);
    p->shift = malloc(sizeof(int32_t) * (size_t)oc);
    if (!p->mult || !p->shift) return tml_error(TML_ERR_NOMEM, "out of memory");
    /* TFLite Micro's fully connected with one weight scale takes the product
     * of the two scales in float (GetQuantizedConvolutionMultipler); convs and
     * per-channel dense layers multiply in double (kernel_util.cc) */
    const int float_product = is_tfl(m) && n->op == TML_OP_DENSE && w->q.n == 1;
    for (int c = 0; c < oc; c++) {
        const float ws = w->q.scale[w->q.n == 1 ? 0 : c];
        double real = float_product ? (double)(qscale(x) * ws) / (double)qscale(y)
                                    : (double)qscale(x) * (double)ws / (double)qscale(y);
        int sh;
        tml_quantize_multiplier(real, &p->mult[c], &sh);
        if (sh > 30 || sh < -31)
            return tml_error(TML_ERR_UNSUPPORTED, "node '%s': requantization multiplier %g out of range", n->name, real);
        p->shift[c] = sh;
    }
    p->q.in_zp = qzp(x);
    p->q.out_zp = qzp(y);
    p->q.mult = p->mult;
    p->q.shift = p->shift;
    p->q.rounding = m->meta.rounding;
    act_bounds(m, n->act, y, &p->q.act_min, &p->q.act_max);
    /* Low-bit weights: the packed stream the device stores, and its unpacked
     * copy for the fast kernels (made from the stream, so the fast path runs
     * exactly what was packed). */
    p->wbits = 8;
    if (w->qbits) {
        int64_t cnt = tml_tensor_numel(w);
        p->wbits = w->qbits;
        p->wpk = malloc(tml_s8w_bytes(cnt, w->qbits) + 1);
        p->w8 = malloc((size_t)(cnt ? cnt : 1));
        if (!p->wpk || !p->w8) return tml_error(TML_ERR_NOMEM, "out of memory");
        tml_s8w_pack(cnt, w->qbits, w->data, p->wpk);
        tml_s8w_unpack(cnt, w->qbits, p->wpk, p->w8);
    }
    return TML_OK;
}

/* The int8 weights the fast kernels read. */
static const int8_t *fast_weights(const tml_model *m, const tml_node *n, const q8_node *p)
{
    return p->w8 ? p->w8 : m->tensors[n->in[1]].data;
}

static tml_status prep_node(const tml_model *m, const tml_node *n, q8_node *p, size_t *scratch, int batch)
{
    const tml_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out];
    tml_status st;
    if ((st = need_dtype(x, TML_DTYPE_INT8, n)) || (st = need_dtype(y, TML_DTYPE_INT8, n))) return st;
    if ((st = need_qparams(x, n)) || (st = need_qparams(y, n))) return st;
    p->lo = -128;
    p->hi = 127;
    tml_window w;
    switch (n->op) {
    case TML_OP_CONV2D: {
        tml_window_from_node(m, n, batch, &w);
        if (tml_conv2d_s8_scratch_size(&w) > *scratch) *scratch = tml_conv2d_s8_scratch_size(&w);
        if ((st = prep_weighted(m, n, p))) return st;
        /* the weights are packed here once, not on every run */
        p->packed = malloc(tml_conv2d_s8_packed_size(&w));
        if (!p->packed) return tml_error(TML_ERR_NOMEM, "out of memory");
        const int32_t *bias = (n->n_in > 2 && n->in[2] >= 0) ? m->tensors[n->in[2]].data : NULL;
        tml_conv2d_s8_pack(&w, &p->q, fast_weights(m, n, p), bias, p->packed);
        return TML_OK;
    }
    case TML_OP_DEPTHWISE_CONV2D: return prep_weighted(m, n, p);
    case TML_OP_DENSE: {
        const tml_tensor *wt = &m->tensors[n->in[1]];
        size_t s = tml_dense_s8_scratch_size(batch, wt->dims[1], wt->dims[0]);
        if (s > *scratch) *scratch = s;
        return prep_weighted(m, n, p);
    }
    case TML_OP_RELU:
    case TML_OP_RELU6:
        if ((st = same_params(x, y, n))) return st;
        act_bounds(m, n->op == TML_OP_RELU ? TML_ACT_RELU : TML_ACT_RELU6, y, &p->lo, &p->hi);
        return TML_OK;
    case TML_OP_GLOBAL_AVGPOOL:
        if (is_tfl(m)) { /* TFLite's MEAN requantizes to its own output scale */
            tml_mean_s8_tfl_prepare(qscale(x), qzp(x), qscale(y), qzp(y), x->dims[0] * x->dims[1], &p->mean);
            return TML_OK;
        }
        return same_params(x, y, n);
    case TML_OP_MAXPOOL:
    case TML_OP_AVGPOOL:
    case TML_OP_RESHAPE:
    case TML_OP_DROPOUT:
        /* TFLite's pools and reshape pass the integers through whatever the
         * output's parameters say; tinyml insists they agree */
        return is_tfl(m) ? TML_OK : same_params(x, y, n);
    case TML_OP_ADD: {
        const tml_tensor *b = &m->tensors[n->in[1]];
        if ((st = need_dtype(b, TML_DTYPE_INT8, n)) || (st = need_qparams(b, n))) return st;
        tml_add_s8_prepare_mode(qscale(x), qzp(x), qscale(b), qzp(b), qscale(y), qzp(y), n->act, m->meta.rounding,
                                &p->add);
        return TML_OK;
    }
    case TML_OP_SOFTMAX:
        if (is_tfl(m)) {
            /* TFLite Micro insists on exactly these output parameters */
            if (qscale(y) != 1.0f / 256.0f || qzp(y) != -128)
                return tml_error(TML_ERR_UNSUPPORTED,
                                 "node '%s': TFLite int8 softmax output must have scale 1/256, zero point -128",
                                 n->name);
            tml_softmax_s8_tfl_prepare(qscale(x), n->beta, &p->sm);
            if (p->sm.input_left_shift < 0)
                return tml_error(TML_ERR_UNSUPPORTED,
                                 "node '%s': softmax input scale %g times beta %g is too small for TFLite's "
                                 "fixed-point softmax (needs > 2^-26)",
                                 n->name, (double)qscale(x), (double)n->beta);
            return TML_OK;
        }
        if (fabsf(qscale(y) - 1.0f / 256.0f) > 1e-9f || qzp(y) != -128)
            return tml_error(TML_ERR_UNSUPPORTED, "node '%s': int8 softmax output must have scale 1/256, zero point -128", n->name);
        if (n->beta != 1.0f)
            return tml_error(TML_ERR_UNSUPPORTED,
                             "node '%s': softmax beta %g needs TFLite arithmetic (quantize --rounding tflite)",
                             n->name, (double)n->beta);
        tml_softmax_s8_lut(qscale(x), p->lut);
        return TML_OK;
    case TML_OP_BATCHNORM:
        return tml_error(TML_ERR_UNSUPPORTED, "node '%s': the int8 engine has no batch norm (fold it before quantizing)", n->name);
    default: return tml_error(TML_ERR_UNSUPPORTED, "node '%s': op %s has no int8 kernel", n->name, tml_op_name(n->op));
    }
}

tml_status tml_engine_q8_prepare(struct tml_engine *e, size_t *scratch_bytes)
{
    const tml_model *m = e->m;
    const tml_tensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
    if (in->dtype != TML_DTYPE_INT8 || out->dtype != TML_DTYPE_INT8)
        return tml_error(TML_ERR_UNSUPPORTED, "an int8 model needs int8 input and output tensors");
    /* run() converts with these even when no node reads them (input == output) */
    const tml_tensor *ends[2] = {in, out};
    for (int i = 0; i < 2; i++) {
        const tml_tensor *t = ends[i];
        if (t->q.n < 1 || !t->q.scale || !t->q.zero_point || !(t->q.scale[0] > 0.0f) || !isfinite(t->q.scale[0]) ||
            t->q.zero_point[0] < -128 || t->q.zero_point[0] > 127)
            return tml_error(TML_ERR_FORMAT, "model %s '%s' has no valid quantization parameters", i ? "output" : "input",
                             t->name);
    }
    e->prep = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(void *));
    if (!e->prep) return tml_error(TML_ERR_NOMEM, "out of memory");
    size_t scratch = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        q8_node *p = calloc(1, sizeof *p);
        if (!p) return tml_error(TML_ERR_NOMEM, "out of memory");
        e->prep[i] = p;
        tml_status st = prep_node(m, &m->nodes[i], p, &scratch, e->max_batch);
        if (st) return st;
    }
    *scratch_bytes = scratch;
    return TML_OK;
}

void tml_engine_q8_release(struct tml_engine *e)
{
    if (!e->prep) return;
    for (int i = 0; i < e->m->n_nodes; i++) {
        q8_node *p = e->prep[i];
        if (!p) continue;
        free(p->mult);
        free(p->shift);
        free(p->packed);
        free(p->wpk);
        free(p->w8);
        free(p);
    }
}

void tml_engine_q8_exec(struct tml_engine *e, int node, int batch, const tml_window *win, const int8_t *x,
                        const int8_t *x2, int8_t *y, int64_t count, void *scratch)
{
    const tml_model *m = e->m;
    const tml_node *n = &m->nodes[node];
    q8_node *p = e->prep[node];
    const int32_t *bias = (n->n_in > 2 && n->in[2] >= 0) ? tml_engine_buf(e, n->in[2]) : NULL;
    int ref = e->opts.use_ref;
    switch (n->op) {
    case TML_OP_CONV2D:
        if (ref && p->wpk) tml_conv2d_s8w_ref(win, &p->q, p->wbits, x, p->wpk, bias, y);
        else if (ref) tml_conv2d_s8_ref(win, &p->q, x, tml_engine_buf(e, n->in[1]), bias, y);
        else tml_conv2d_s8_packed(win, &p->q, x, p->packed, y, scratch);
        break;
    case TML_OP_DEPTHWISE_CONV2D:
        if (ref && p->wpk) tml_dwconv2d_s8w_ref(win, &p->q, p->wbits, x, p->wpk, bias, y);
        else if (ref) tml_dwconv2d_s8_ref(win, &p->q, x, tml_engine_buf(e, n->in[1]), bias, y);
        else tml_dwconv2d_s8(win, &p->q, x, fast_weights(m, n, p), bias, y);
        break;
    case TML_OP_DENSE: {
        const tml_tensor *wt = &m->tensors[n->in[1]];
        if (ref && p->wpk) tml_dense_s8w_ref(batch, wt->dims[1], wt->dims[0], p->wbits, &p->q, x, p->wpk, bias, y);
        else if (ref) tml_dense_s8_ref(batch, wt->dims[1], wt->dims[0], &p->q, x, wt->data, bias, y);
        else tml_dense_s8(batch, wt->dims[1], wt->dims[0], &p->q, x, fast_weights(m, n, p), bias, y, scratch);
        break;
    }
    case TML_OP_RELU:
    case TML_OP_RELU6: (ref ? tml_clamp_s8_ref : tml_clamp_s8)(count, p->lo, p->hi, x, y); break;
    case TML_OP_MAXPOOL:
        if (ref) tml_maxpool_s8_ref(win, p->lo, p->hi, x, y);
        else tml_maxpool_s8(win, p->lo, p->hi, x, y);
        break;
    case TML_OP_AVGPOOL:
        if (ref) tml_avgpool_s8_ref(win, p->lo, p->hi, x, y);
        else tml_avgpool_s8(win, p->lo, p->hi, x, y);
        break;
    case TML_OP_GLOBAL_AVGPOOL: {
        const tml_tensor *xt = &m->tensors[n->in[0]];
        if (is_tfl(m))
            tml_mean_s8_tfl_ref(batch, xt->dims[0] * xt->dims[1], xt->dims[2], &p->mean, x, y);
        else
            (ref ? tml_global_avgpool_s8_ref : tml_global_avgpool_s8)(batch, xt->dims[0] * xt->dims[1], xt->dims[2],
                                                                       x, y);
        break;
    }
    case TML_OP_ADD: (ref ? tml_add_s8_ref : tml_add_s8)(count, &p->add, x, x2, y); break;
    case TML_OP_RESHAPE:
    case TML_OP_DROPOUT:
        if ((const void *)x != (void *)y) memcpy(y, x, (size_t)count);
        break;
    case TML_OP_SOFTMAX: {
        const tml_tensor *yt = &m->tensors[n->out];
        int k = yt->dims[yt->ndim - 1];
        if (is_tfl(m))
            tml_softmax_s8_tfl_ref((int)(count / k), k, &p->sm, x, y);
        else
            tml_softmax_s8_ref((int)(count / k), k, p->lut, x, y);
        break;
    }
    default: TML_ASSERT(0 && "op not prepared for the int8 engine");
    }
}

void tml_engine_q8_run_node(struct tml_engine *e, int node, int batch)
{
    const tml_model *m = e->m;
    const tml_node *n = &m->nodes[node];
    tml_window w;
    const tml_window *wp = NULL;
    if (n->op == TML_OP_CONV2D || n->op == TML_OP_DEPTHWISE_CONV2D || n->op == TML_OP_MAXPOOL || n->op == TML_OP_AVGPOOL) {
        tml_window_from_node(m, n, batch, &w);
        wp = &w;
    }
    const int8_t *x2 = n->op == TML_OP_ADD ? tml_engine_buf(e, n->in[1]) : NULL;
    tml_engine_q8_exec(e, node, batch, wp, tml_engine_buf(e, n->in[0]), x2, tml_engine_buf(e, n->out),
                       (int64_t)batch * tml_tensor_numel(&m->tensors[n->out]), e->scratch);
}

void tml_engine_q8_quantize_input(const struct tml_engine *e, const float *x, int64_t count, int8_t *q)
{
    const tml_tensor *in = &e->m->tensors[e->m->input];
    /* TFLite's QUANTIZE divides and rounds half away from zero */
    if (is_tfl(e->m)) {
        tml_quantize_f32_s8_tfl(count, x, qscale(in), qzp(in), q);
        return;
    }
    /* NaN (0 * inf under a denormal scale, or a NaN input) becomes the zero point */
    if (e->opts.use_ref)
        tml_quantize_f32_s8_ref(count, x, 1.0f / qscale(in), qzp(in), q);
    else
        tml_quantize_f32_s8(count, x, 1.0f / qscale(in), qzp(in), q);
}

void tml_engine_q8_dequantize_output(const struct tml_engine *e, const int8_t *q, int64_t count, float *y)
{
    const tml_tensor *out = &e->m->tensors[e->m->output];
    if (e->opts.use_ref)
        tml_dequantize_s8_f32_ref(count, q, qscale(out), qzp(out), y);
    else
        tml_dequantize_s8_f32(count, q, qscale(out), qzp(out), y);
}
