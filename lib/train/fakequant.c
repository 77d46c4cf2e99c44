/*
 * fakequant.c - the fake-quantized forward pass of quantization-aware training
 * (tml_train.h, "quantization-aware training"; docs/quantization.md).
 *
 * The float trainer runs the folded graph that tml_quantize() turns into the
 * int8 model, with every number that the int8 engine would round rounded the
 * same way in float:
 *   - weights: w_q = s_c * clamp(round(w / s_c), -qmax, qmax) with the scales
 *     tml_quant_weight_scales() gives (per output channel, per tensor, or the
 *     searched scale of a shared codebook), recomputed from the latent float
 *     weights before every step;
 *   - biases: on the int32 grid of scale s_x * s_c (s_x the input's scale);
 *   - activations: every tensor the int8 engine quantizes (the graph input and
 *     each node's output) holds s * (q - zp) for the int8 value q the engine
 *     computes, with (s, zp) = tml_choose_qparams(lo, hi) of its range; pools,
 *     reshape and standalone ReLUs use their input's range, as the int8 engine
 *     does. Not "round(y / s)" but the engine's own integer arithmetic: the
 *     inputs and weights are on their grids, so a conv / depthwise / dense
 *     output computed in float (without its activation) is bias + sum of
 *     grid products, i.e. s_x * s_c * acc for the engine's int32 accumulator
 *     acc, recovered exactly by rounding y / (s_x s_c) (the float sum's error
 *     is far below 0.5 for any realistic layer); acc then goes through
 *     the engine's requantization (multiplier, shift and the model's rounding
 *     mode, tml_quant_opts.rounding), the output zero point and the fused
 *     ReLU / ReLU6 clamp. Adds and average pools recover
 *     their int8 inputs the same way and run the int8 reference kernels. So
 *     the forward pass is the int8 engine's, value for value, and the model
 *     tml_quantize makes of it runs exactly what was trained (rounding half
 *     away from zero twice in requantization would otherwise differ from a
 *     float round in about 1% of the values of each layer).
 * Ranges start from the calibration (tml_calib_range with the quantize
 * method) and then follow an exponential moving average of each batch's
 * min / max (TF-style EMA ranges; the graph input keeps its data range) until
 * `freeze` of the steps, after which the weights adapt to fixed ranges.
 * Backward: straight-through estimator. Weight gradients are taken at the
 * fake-quantized weights and applied to the latent ones (pruning masks and
 * codebooks as in plain training); activation gradients pass where the value
 * was inside the representable range and are 0 where it was clipped.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_ops_s8.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_train.h"
#include "train/fq_internal.h"

struct tml_fakequant {
    int n_tensors, n_nodes;
    tml_fq_opts o;
    tml_quant_opts q;
    tml_layer_bits *layer_bits; /* copy of q.layer_bits (names owned) */
    int *root;       /* (n_tensors) tensor whose range this activation uses; -1 for params */
    int *fixed;      /* (n_tensors) root ranges that never move (input, softmax) */
    double *lo, *hi; /* (n_tensors) ranges of roots */
    float *scale;    /* (n_tensors) of roots, from lo / hi */
    int32_t *zp;
    int frozen;
    int batch;       /* bound batch size (0 = not bound) */
    uint8_t **pass;  /* (n_tensors) per element of the bound batch: 1 = gradient passes */
    float **wq;      /* (n_tensors) fake-quantized weights / biases, NULL for others */
    float **wscale;  /* (n_nodes) weight scale per output channel of weighted nodes */
    int8_t *qa, *qb, *qy; /* (largest activation of the bound batch) int8 staging for add / pools */
};

void tml_fq_opts_default(tml_fq_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ranges = TML_FQ_RANGES_EMA;
    o->ema_momentum = 0.99;
    o->freeze = 0.5;
}

void tml_fakequant_free(tml_fakequant *f)
{
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) {
        if (f->pass) free(f->pass[i]);
        if (f->wq) free(f->wq[i]);
    }
    if (f->layer_bits)
        for (int i = 0; i < f->q.n_layer_bits; i++) free((char *)f->layer_bits[i].layer);
    if (f->wscale)
        for (int i = 0; i < f->n_nodes; i++) free(f->wscale[i]);
    free(f->wscale);
    free(f->qa);
    free(f->qb);
    free(f->qy);
    free(f->layer_bits);
    free(f->pass);
    free(f->wq);
    free(f->root);
    free(f->fixed);
    free(f->lo);
    free(f->hi);
    free(f->scale);
    free(f->zp);
    free(f);
}

static int keeps_input_range(tml_op op)
{
    return op == TML_OP_MAXPOOL || op == TML_OP_AVGPOOL || op == TML_OP_GLOBAL_AVGPOOL || op == TML_OP_RESHAPE ||
           op == TML_OP_DROPOUT || op == TML_OP_RELU || op == TML_OP_RELU6;
}

static void update_qparams(tml_fakequant *f, int t) { tml_choose_qparams(f->lo[t], f->hi[t], &f->scale[t], &f->zp[t]); }

tml_status tml_fakequant_new(const tml_model *m, const tml_calib *calib, const tml_quant_opts *q, const tml_fq_opts *o,
                             tml_fakequant **out)
{
    *out = NULL;
    if (tml_model_is_quantized(m)) return tml_error(TML_ERR_UNSUPPORTED, "the model is already int8");
    if (!calib || calib->n_tensors != m->n_tensors)
        return tml_error(TML_ERR_INVALID, "calibration statistics do not belong to this model (calibrate the folded model)");
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op == TML_OP_BATCHNORM || m->nodes[i].op == TML_OP_DROPOUT)
            return tml_error(TML_ERR_UNSUPPORTED, "node '%s' (%s): fold the model first (tml_fold): the int8 graph has none",
                             m->nodes[i].name, tml_op_name(m->nodes[i].op));
    tml_fakequant *f = calloc(1, sizeof *f);
    if (!f) return tml_error(TML_ERR_NOMEM, "out of memory");
    int nt = m->n_tensors, n1 = nt ? nt : 1;
    f->n_tensors = nt;
    f->n_nodes = m->n_nodes;
    if (o) f->o = *o;
    else tml_fq_opts_default(&f->o);
    if (q) f->q = *q;
    else tml_quant_opts_default(&f->q);
    f->q.only_layers = NULL;
    f->root = malloc(sizeof(int) * (size_t)n1);
    f->fixed = calloc((size_t)n1, sizeof(int));
    f->lo = calloc((size_t)n1, sizeof(double));
    f->hi = calloc((size_t)n1, sizeof(double));
    f->scale = calloc((size_t)n1, sizeof(float));
    f->zp = calloc((size_t)n1, sizeof(int32_t));
    f->pass = calloc((size_t)n1, sizeof(uint8_t *));
    f->wq = calloc((size_t)n1, sizeof(float *));
    f->wscale = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(float *));
    if (!f->root || !f->fixed || !f->lo || !f->hi || !f->scale || !f->zp || !f->pass || !f->wq || !f->wscale) goto oom;
    if (f->q.n_layer_bits > 0) {
        f->layer_bits = calloc((size_t)f->q.n_layer_bits, sizeof(tml_layer_bits));
        if (!f->layer_bits) goto oom;
        for (int i = 0; i < f->q.n_layer_bits; i++) {
            f->layer_bits[i].bits = q->layer_bits[i].bits;
            f->layer_bits[i].layer = tml_strdup(q->layer_bits[i].layer);
            if (!f->layer_bits[i].layer) goto oom;
        }
        f->q.layer_bits = f->layer_bits;
    }
    tml_status st;
    for (int t = 0; t < nt; t++) f->root[t] = -1;
    f->root[m->input] = m->input;
    f->fixed[m->input] = 1;
    {
        const tml_tensor_stats *s = &calib->stats[m->input];
        f->lo[m->input] = s->min;
        f->hi[m->input] = s->max;
        update_qparams(f, m->input);
    }
    int64_t maxch = 1;
    for (int i = 0; i < m->n_nodes; i++) { /* topological: a copy sees its source */
        const tml_node *n = &m->nodes[i];
        int y = n->out;
        if (keeps_input_range(n->op)) {
            f->root[y] = f->root[n->in[0]];
            continue;
        }
        f->root[y] = y;
        if (n->op == TML_OP_SOFTMAX) { /* the int8 softmax output is fixed: scale 1/256, zero point -128 */
            f->fixed[y] = 1;
            f->lo[y] = 0.0;
            f->hi[y] = 255.0 / 256.0;
            f->scale[y] = 1.0f / 256.0f;
            f->zp[y] = -128;
            continue;
        }
        if ((st = tml_calib_range(&calib->stats[y], f->q.method, f->q.percentile, &f->lo[y], &f->hi[y]))) goto fail;
        update_qparams(f, y);
        if (tml_node_has_weights(n)) {
            const tml_tensor *w = &m->tensors[n->in[1]];
            if (w->dtype != TML_DTYPE_F32) {
                st = tml_error(TML_ERR_UNSUPPORTED, "layer '%s' is not float", n->name);
                goto fail;
            }
            int bits = tml_quant_layer_bits(&f->q, n->name);
            if (bits < 2 || bits > 8) {
                st = tml_error(TML_ERR_INVALID, "layer '%s': weight bits must be in 2..8 (got %d)", n->name, bits);
                goto fail;
            }
            int oc = n->op == TML_OP_DEPTHWISE_CONV2D ? w->dims[3] : w->dims[0];
            if (oc > maxch) maxch = oc;
            f->wscale[i] = malloc(sizeof(float) * (size_t)(oc ? oc : 1));
            if (!f->wscale[i]) goto oom;
            for (int j = 1; j < n->n_in && j < 3; j++) {
                int pid = n->in[j];
                if (pid < 0) continue;
                f->wq[pid] = malloc(sizeof(float) * (size_t)tml_tensor_numel(&m->tensors[pid]) + 1);
                if (!f->wq[pid]) goto oom;
            }
        }
    }
    (void)maxch;
    *out = f;
    return TML_OK;
oom:
    st = tml_error(TML_ERR_NOMEM, "out of memory");
fail:
    tml_fakequant_free(f);
    return st;
}

tml_status tml_fakequant_calib(const tml_fakequant *f, tml_calib *out)
{
    memset(out, 0, sizeof *out);
    out->n_tensors = f->n_tensors;
    out->stats = calloc((size_t)(f->n_tensors ? f->n_tensors : 1), sizeof(tml_tensor_stats));
    if (!out->stats) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int t = 0; t < f->n_tensors; t++) {
        int r = f->root[t];
        if (r < 0) continue;
        out->stats[t].min = f->lo[r];
        out->stats[t].max = f->hi[r];
    }
    out->samples = 1;
    return TML_OK;
}

tml_status tml_fakequant_range(const tml_fakequant *f, int tensor, double *lo, double *hi)
{
    if (tensor < 0 || tensor >= f->n_tensors || f->root[tensor] < 0)
        return tml_error(TML_ERR_INVALID, "tensor %d has no fake-quantization range", tensor);
    *lo = f->lo[f->root[tensor]];
    *hi = f->hi[f->root[tensor]];
    return TML_OK;
}

/* ---- the trainer's hooks (fq_internal.h) ------------------------------------------------ */

tml_status tml_fq_bind(tml_fakequant *f, const tml_model *m, int batch)
{
    if (m->n_tensors != f->n_tensors || m->n_nodes != f->n_nodes)
        return tml_error(TML_ERR_INVALID, "the fake quantization was made for another model");
    size_t largest = 1;
    for (int t = 0; t < f->n_tensors; t++) {
        free(f->pass[t]);
        f->pass[t] = NULL;
        if (f->root[t] < 0) continue;
        size_t cnt = (size_t)batch * (size_t)tml_tensor_numel(&m->tensors[t]);
        if (cnt > largest) largest = cnt;
        f->pass[t] = malloc(cnt + 1);
        if (!f->pass[t]) return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    free(f->qa);
    free(f->qb);
    free(f->qy);
    f->qa = malloc(largest);
    f->qb = malloc(largest);
    f->qy = malloc(largest);
    if (!f->qa || !f->qb || !f->qy) return tml_error(TML_ERR_NOMEM, "out of memory");
    f->batch = batch;
    return TML_OK;
}

void tml_fq_progress(tml_fakequant *f, int64_t step, int64_t total_steps)
{
    f->frozen = f->o.ranges == TML_FQ_RANGES_FIXED || (double)step >= f->o.freeze * (double)total_steps;
}

void tml_fq_weights(tml_fakequant *f, const tml_model *m)
{
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (!tml_node_has_weights(n)) continue;
        const tml_tensor *w = &m->tensors[n->in[1]];
        const int bits = tml_quant_layer_bits(&f->q, n->name), qmax = (1 << (bits - 1)) - 1;
        const int dw = n->op == TML_OP_DEPTHWISE_CONV2D;
        const int oc = dw ? w->dims[3] : w->dims[0];
        const int64_t cnt = tml_tensor_numel(w), per = cnt / (oc ? oc : 1);
        float *s = f->wscale[i];
        tml_quant_weight_scales(m, i, bits, f->q.per_tensor, s, NULL);
        const float *wf = w->data;
        float *wq = f->wq[n->in[1]];
        for (int64_t k = 0; k < cnt; k++) {
            const float sc = s[dw ? k % oc : k / per];
            wq[k] = (float)tml_quant_round(wf[k], sc, qmax) * sc;
        }
        if (n->n_in > 2 && n->in[2] >= 0) {
            /* the int32 bias grid: scale s_x * s_c, as tml_quantize rounds it */
            const double sx = f->scale[f->root[n->in[0]]];
            const float *bf = m->tensors[n->in[2]].data;
            float *bq = f->wq[n->in[2]];
            for (int c = 0; c < oc; c++) {
                const double sb = sx * (double)s[c];
                double v = nearbyint((double)bf[c] / sb);
                if (v > 2147483647.0) v = 2147483647.0;
                if (v < -2147483648.0) v = -2147483648.0;
                bq[c] = (float)(v * sb);
            }
        }
    }
}

const float *tml_fq_param(const tml_fakequant *f, int tensor) { return f->wq[tensor]; }

/* Moves the range of root tensor r toward the batch's min / max of y (act applied). */
static void track_range(tml_fakequant *f, int r, tml_act act, const float *y, int64_t count)
{
    if (f->frozen || f->fixed[r] || count <= 0) return;
    float mn = tml_act_apply_f32(act, y[0]), mx = mn;
    for (int64_t i = 1; i < count; i++) {
        const float v = tml_act_apply_f32(act, y[i]);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    if (!isfinite(mn) || !isfinite(mx)) return; /* the loss reports the divergence */
    const double mo = f->o.ema_momentum;
    f->lo[r] = mo * f->lo[r] + (1.0 - mo) * fmin((double)mn, 0.0);
    f->hi[r] = mo * f->hi[r] + (1.0 - mo) * fmax((double)mx, 0.0);
    update_qparams(f, r);
}

/* The int8 value the engine holds for real x on the grid (s, zp) of a tensor
 * whose values are already on it (exact: |x / s| <= 255 is far from ties). */
static int8_t on_grid(float x, float inv, int32_t zp)
{
    const float v = nearbyintf(x * inv) + (float)zp;
    return (int8_t)(v < -128.0f ? -128 : v > 127.0f ? 127 : (int)v);
}

void tml_fq_act(tml_fakequant *f, int tensor, float *y, int64_t count, int training)
{
    const int r = f->root[tensor];
    if (r < 0) return;
    if (training && r == tensor) track_range(f, r, TML_ACT_NONE, y, count);
    /* the engine quantizes its input as x * (1 / s) rounded half to even */
    const float s = f->scale[r], inv = 1.0f / s;
    const int32_t zp = f->zp[r];
    uint8_t *pass = training ? f->pass[tensor] : NULL;
    for (int64_t i = 0; i < count; i++) {
        const float v = nearbyintf(y[i] * inv) + (float)zp;
        const int clipped = !(v >= -128.0f && v <= 127.0f);
        const float qv = v < -128.0f ? -128.0f : v > 127.0f ? 127.0f : v;
        if (pass) pass[i] = (uint8_t)!clipped;
        y[i] = s * (qv - (float)zp);
    }
}

/* conv / depthwise / dense: y (count values, output channel = index % oc)
 * holds the float output without its activation. */
static void fq_weighted(tml_fakequant *f, const tml_model *m, int node, float *y, int64_t count, int training)
{
    const tml_node *n = &m->nodes[node];
    const int t = n->out, r = f->root[t];
    const tml_tensor *w = &m->tensors[n->in[1]];
    const int oc = n->op == TML_OP_DEPTHWISE_CONV2D ? w->dims[3] : w->dims[0];
    if (training && r == t) track_range(f, r, n->act, y, count);
    const float sx = f->scale[f->root[n->in[0]]], sy = f->scale[r];
    const int32_t zy = f->zp[r];
    const int tfl = f->q.rounding == TML_ROUNDING_TFLITE;
    /* TFLite Micro's dense layer with one weight scale multiplies the scales
     * in float (engine_q8.c does the same) */
    const int float_product = tfl && n->op == TML_OP_DENSE && f->q.per_tensor;
    int32_t lo, hi;
    if (tfl)
        tml_act_bounds_s8_tfl(n->act, sy, zy, &lo, &hi);
    else
        tml_act_bounds_s8(n->act, sy, zy, &lo, &hi);
    uint8_t *pass = training ? f->pass[t] : NULL;
    for (int c = 0; c < oc; c++) {
        const float sc = f->wscale[node][c];
        /* the engine's multiplier (engine_q8.c computes it from the same floats) */
        int32_t mult;
        int shift;
        tml_quantize_multiplier(float_product ? (double)(sx * sc) / (double)sy : (double)sx * (double)sc / (double)sy,
                                &mult, &shift);
        const double inv = 1.0 / ((double)sx * (double)sc);
        for (int64_t i = c; i < count; i += oc) {
            double a = nearbyint((double)y[i] * inv);
            a = a > 2147483647.0 ? 2147483647.0 : a < -2147483648.0 ? -2147483648.0 : a;
            const int64_t v = (int64_t)tml_requantize_mode((int32_t)a, mult, shift, f->q.rounding) + zy;
            if (pass) pass[i] = (uint8_t)(v >= -128 && v <= 127);
            const int64_t q = v < lo ? lo : v > hi ? hi : v;
            y[i] = sy * (float)(q - zy);
        }
    }
}

void tml_fq_node(tml_fakequant *f, const tml_model *m, int node, const float *x0, const float *x1, float *y, int batch,
                 int training)
{
    const tml_node *n = &m->nodes[node];
    const int t = n->out, r = f->root[t];
    const int64_t count = (int64_t)batch * tml_tensor_numel(&m->tensors[t]);
    if (r < 0) return;
    switch (n->op) {
    case TML_OP_CONV2D:
    case TML_OP_DEPTHWISE_CONV2D:
    case TML_OP_DENSE: fq_weighted(f, m, node, y, count, training); return;
    case TML_OP_ADD: {
        /* y holds x0 + x1 (no activation) for the range; the value is the int8 add's */
        if (training && r == t) track_range(f, r, n->act, y, count);
        const int ra = f->root[n->in[0]], rb = f->root[n->in[1]];
        tml_add_s8_params ap;
        tml_add_s8_prepare_mode(f->scale[ra], f->zp[ra], f->scale[rb], f->zp[rb], f->scale[r], f->zp[r], n->act,
                                f->q.rounding, &ap);
        const float ia = 1.0f / f->scale[ra], ib = 1.0f / f->scale[rb], sy = f->scale[r], iy = 1.0f / sy;
        uint8_t *pass = training ? f->pass[t] : NULL;
        for (int64_t i = 0; i < count; i++) {
            f->qa[i] = on_grid(x0[i], ia, f->zp[ra]);
            f->qb[i] = on_grid(x1[i], ib, f->zp[rb]);
            if (pass) {
                const float v = nearbyintf(y[i] * iy) + (float)f->zp[r];
                pass[i] = (uint8_t)(v >= -128.0f && v <= 127.0f);
            }
        }
        tml_add_s8_ref(count, &ap, f->qa, f->qb, f->qy);
        for (int64_t i = 0; i < count; i++) y[i] = sy * (float)(f->qy[i] - f->zp[r]);
        return;
    }
    case TML_OP_AVGPOOL:
    case TML_OP_GLOBAL_AVGPOOL: {
        /* the int8 pools round their averages half away from zero */
        const tml_tensor *xt = &m->tensors[n->in[0]];
        const int64_t xc = (int64_t)batch * tml_tensor_numel(xt);
        const float s = f->scale[r], inv = 1.0f / s;
        for (int64_t i = 0; i < xc; i++) f->qa[i] = on_grid(x0[i], inv, f->zp[r]);
        if (n->op == TML_OP_AVGPOOL) {
            tml_window w;
            tml_window_from_node(m, n, batch, &w);
            tml_avgpool_s8_ref(&w, -128, 127, f->qa, f->qy);
        } else if (f->q.rounding == TML_ROUNDING_TFLITE) { /* TFLite's MEAN, as the engine runs it */
            tml_mean_s8_tfl_params mp;
            tml_mean_s8_tfl_prepare(s, f->zp[r], s, f->zp[r], xt->dims[0] * xt->dims[1], &mp);
            tml_mean_s8_tfl_ref(batch, xt->dims[0] * xt->dims[1], xt->dims[2], &mp, f->qa, f->qy);
        } else {
            tml_global_avgpool_s8_ref(batch, xt->dims[0] * xt->dims[1], xt->dims[2], f->qa, f->qy);
        }
        for (int64_t i = 0; i < count; i++) {
            y[i] = s * (float)(f->qy[i] - f->zp[r]);
            if (training) f->pass[t][i] = 1;
        }
        return;
    }
    default: tml_fq_act(f, t, y, count, training); return; /* max pool, reshape, relu: already on the grid */
    }
}

void tml_fq_grad(const tml_fakequant *f, int tensor, float *dy, int64_t count)
{
    const uint8_t *pass = f->pass[tensor];
    if (!pass) return;
    for (int64_t i = 0; i < count; i++)
        if (!pass[i]) dy[i] = 0.0f;
}
