/*
 * quantize.c - post-training INT8 quantization (TFLite spec, docs/numerics.md).
 *
 * Activations: asymmetric int8 per tensor, range from calibration (the graph
 * input always min/max: clipping the input only loses information). Pools,
 * reshape, dropout and standalone ReLU / ReLU6 keep their input's parameters;
 * softmax outputs scale 1/256, zero point -128.
 * Weights: symmetric int8 in [-qmax, qmax] (qmax = 2^(bits-1) - 1, 127 for 8
 * bits) per output channel (conv dim 0, depthwise dim 3, dense dim 0) or per
 * tensor. Bias: int32 with scale input_scale * weight_scale[oc] (implied, not
 * stored).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes_internal.h"
#include "tinyml/tml_ops_s8.h"
#include "tinyml/tml_quant.h"

void tml_quant_opts_default(tml_quant_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = TML_CALIB_MINMAX;
    o->percentile = 99.99;
    o->weight_bits = 8;
}

int tml_quant_layer_bits(const tml_quant_opts *o, const char *name)
{
    for (int i = 0; i < o->n_layer_bits; i++)
        if (o->layer_bits[i].layer && name && strcmp(o->layer_bits[i].layer, name) == 0) return o->layer_bits[i].bits;
    return o->weight_bits;
}

static int weight_axis(tml_op op) { return op == TML_OP_DEPTHWISE_CONV2D ? 3 : 0; }

static int64_t chan_of(const tml_tensor *w, int axis, int64_t i)
{
    if (axis == 3) return i % w->dims[3];
    return i / (tml_tensor_numel(w) / w->dims[0]);
}

/* Per-channel (or per-tensor: nch == 1) symmetric scales for weights w. */
static void weight_scales(const tml_tensor *w, int axis, int nch, int qmax, float *scale)
{
    int64_t n = tml_tensor_numel(w);
    const float *p = w->data;
    /* scale[] first holds each channel's max |w| (floats are exact for a max) */
    for (int c = 0; c < nch; c++) scale[c] = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        int64_t c = nch == 1 ? 0 : chan_of(w, axis, i);
        float a = fabsf(p[i]);
        if (a > scale[c]) scale[c] = a;
    }
    for (int c = 0; c < nch; c++) scale[c] = scale[c] > 0 ? (float)((double)scale[c] / qmax) : 1.0f;
}

int tml_quant_round(float w, float s, int qmax)
{
    double q = nearbyint((double)w / (double)s);
    if (q > qmax) q = qmax;
    if (q < -qmax) q = -qmax;
    return (int)q;
}

static int8_t quant_w(float v, float s, int qmax) { return (int8_t)tml_quant_round(v, s, qmax); }

/*
 * The int8 scale of a tensor that shares one codebook. Every weight that uses
 * centroid j gets the same rounding error, so the errors do not average out
 * over a dot product as the independent errors of unclustered weights do.
 * Search the scale (from 0.75x to 2x the max-abs scale, 512 steps) that
 * minimizes the rounding error of the centroids weighted by how many weights
 * use each; ties keep the earlier candidate (max-abs first). Measured on a pruned + clustered
 * LeNet-5 (docs/benchmarks.md, Deep Compression): see docs/quantization.md.
 */
static float codebook_scale(const tml_tensor *w, int qmax, float s0)
{
    const tml_codebook *cb = w->cb;
    int64_t cnt = tml_tensor_numel(w);
    double uses[256] = {0};
    for (int64_t i = 0; i < cnt; i++) uses[cb->index[i]] += 1.0;
    float best = s0;
    double best_err = -1.0;
    for (int t = -1; t <= 512; t++) { /* t = -1: the max-abs scale itself */
        float s = t < 0 ? s0 : (float)((double)s0 * (0.75 + 1.25 * t / 512.0));
        double err = 0.0;
        for (int j = 0; j < cb->k; j++) {
            double c = cb->centroids[j], d = c - (double)quant_w(cb->centroids[j], s, qmax) * (double)s;
            err += uses[j] * d * d;
        }
        if (best_err < 0.0 || err < best_err) best_err = err, best = s;
    }
    return best;
}

static int in_list(const char *const *list, const char *name)
{
    if (!list) return 1;
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return 1;
    return 0;
}

/* Replaces a tensor's data with a buffer of another dtype. */
static tml_status retype(tml_tensor *t, tml_dtype dt, void *data)
{
    free(t->data);
    t->data = data;
    t->dtype = dt;
    return TML_OK;
}

/* Weight-only fake quantization: weights snapped to the b-bit symmetric grid,
 * kept in float (the model stays float and runs on the float engine). */
static tml_status fake_quant_weights(tml_model *m, const tml_quant_opts *o)
{
    /* a name that matches no layer is a mistake, not a no-op */
    for (const char *const *l = o->only_layers; l && *l; l++) {
        int ni = tml_model_find_node(m, *l);
        if (ni < 0 || !tml_node_has_weights(&m->nodes[ni])) {
            char known[512] = "";
            for (int i = 0; i < m->n_nodes; i++) {
                size_t k = strlen(known);
                if (tml_node_has_weights(&m->nodes[i]) && k < sizeof known - 8)
                    snprintf(known + k, sizeof known - k, "%s%s", k ? ", " : "", m->nodes[i].name);
            }
            return tml_error(TML_ERR_INVALID, "--layer '%s': no layer with weights of that name (layers: %s)", *l, known);
        }
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (!tml_node_has_weights(n) || !in_list(o->only_layers, n->name)) continue;
        int qmax = (1 << (tml_quant_layer_bits(o, n->name) - 1)) - 1;
        tml_tensor *w = &m->tensors[n->in[1]];
        if (w->dtype != TML_DTYPE_F32) return tml_error(TML_ERR_UNSUPPORTED, "layer '%s' is not float", n->name);
        int axis = weight_axis(n->op);
        int nch = o->per_tensor ? 1 : w->dims[axis];
        float *s = malloc(sizeof(float) * (size_t)nch);
        if (!s) return tml_error(TML_ERR_NOMEM, "out of memory");
        weight_scales(w, axis, nch, qmax, s);
        float *p = w->data;
        int64_t cnt = tml_tensor_numel(w);
        for (int64_t k = 0; k < cnt; k++) {
            float sc = s[nch == 1 ? 0 : chan_of(w, axis, k)];
            p[k] = (float)quant_w(p[k], sc, qmax) * sc;
        }
        if (w->cb) {
            /* keep sharing consistent: snap the centroids on the same grid */
            for (int b = 0; b < w->cb->n_books; b++)
                for (int j = 0; j < w->cb->k; j++) {
                    float sc = s[(nch == 1 || w->cb->n_books == 1) ? 0 : b];
                    float *c = &w->cb->centroids[(size_t)b * (size_t)w->cb->k + (size_t)j];
                    *c = (float)quant_w(*c, sc, qmax) * sc;
                }
        }
        free(s);
    }
    return TML_OK;
}

static int keeps_input_params(tml_op op)
{
    return op == TML_OP_MAXPOOL || op == TML_OP_AVGPOOL || op == TML_OP_GLOBAL_AVGPOOL || op == TML_OP_RESHAPE ||
           op == TML_OP_DROPOUT || op == TML_OP_RELU || op == TML_OP_RELU6;
}

void tml_quant_weight_scales(const tml_model *m, int node, int bits, int per_tensor_opt, float *scale, int *per_tensor)
{
    const tml_node *n = &m->nodes[node];
    const tml_tensor *w = &m->tensors[n->in[1]];
    int axis = weight_axis(n->op), oc = w->dims[axis], qmax = (1 << (bits - 1)) - 1;
    /* A per-tensor codebook maps to int8 codes only with one scale for the
     * whole tensor; per-channel codebooks allow per-channel scales. */
    int pt = per_tensor_opt || (w->cb && w->cb->n_books == 1) || (w->cb && axis == 3);
    int nch = pt ? 1 : oc;
    weight_scales(w, axis, nch, qmax, scale);
    if (w->cb && w->cb->n_books == 1) scale[0] = codebook_scale(w, qmax, scale[0]);
    for (int c = 1; c < oc && nch == 1; c++) scale[c] = scale[0];
    if (per_tensor) *per_tensor = pt;
}

/* Quantizes the weights and bias of node `n`. `sx` is the input scale. */
static tml_status quant_node_weights(tml_model *m, tml_node *n, const tml_calib *calib, const tml_quant_opts *o)
{
    tml_tensor *w = &m->tensors[n->in[1]];
    const tml_tensor *x = &m->tensors[n->in[0]];
    float sx = x->q.scale[0];
    int axis = weight_axis(n->op);
    int oc = w->dims[axis];
    int bits = tml_quant_layer_bits(o, n->name);
    if (bits < 2 || bits > 8) return tml_error(TML_ERR_INVALID, "weight bits must be in 2..8 (got %d)", bits);
    int qmax = (1 << (bits - 1)) - 1;
    int per_tensor;
    float *s = malloc(sizeof(float) * (size_t)oc);
    int64_t cnt = tml_tensor_numel(w);
    int8_t *q = malloc((size_t)cnt);
    if (!s || !q) {
        free(s);
        free(q);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    tml_quant_weight_scales(m, (int)(n - m->nodes), bits, o->per_tensor, s, &per_tensor);
    const float *wf = w->data;
    for (int64_t i = 0; i < cnt; i++) q[i] = quant_w(wf[i], s[chan_of(w, axis, i)], qmax);
    if (o->keep_nonzero && bits < 8 && !w->cb && o->weight_rounding != TML_ROUND_ADAPTIVE)
        for (int64_t i = 0; i < cnt; i++)
            if (q[i] == 0 && wf[i] != 0.0f) q[i] = wf[i] > 0.0f ? 1 : -1;
    if (o->weight_rounding == TML_ROUND_ADAPTIVE && calib && calib->hess) {
        tml_status ast;
        tml_gptq_node(m, (int)(n - m->nodes), &calib->hess[n - m->nodes], per_tensor, qmax, s, q, &ast);
        if (ast) {
            free(s);
            free(q);
            return ast;
        }
    }

    /* bias in float, corrected for the mean shift the weight rounding causes:
     * E[y_q - y] = sum over taps (w_q - w) * E[x[input channel of the tap]] */
    int has_b = n->n_in > 2 && n->in[2] >= 0;
    double *bias = calloc((size_t)oc, sizeof(double));
    if (!bias) {
        free(s);
        free(q);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    if (has_b) {
        const float *bf = m->tensors[n->in[2]].data;
        for (int c = 0; c < oc; c++) bias[c] = bf[c];
    }
    if (o->bias_correction && calib && calib->stats[n->in[0]].chan_mean) {
        const double *mx = calib->stats[n->in[0]].chan_mean;
        int xc = calib->stats[n->in[0]].n_chan;
        for (int64_t i = 0; i < cnt; i++) {
            int64_t c = chan_of(w, axis, i);
            int64_t ic;
            if (n->op == TML_OP_DEPTHWISE_CONV2D) ic = c / n->depth_mult;
            else if (n->op == TML_OP_DENSE) ic = (i % w->dims[1]) % xc;
            else ic = (c / (oc / n->groups)) * w->dims[3] + i % w->dims[3];
            double dq = (double)q[i] * s[c] - (double)wf[i];
            bias[c] -= dq * mx[ic];
        }
        has_b = 1;
    }
    /* int32 bias */
    int32_t *bq = NULL;
    if (has_b) {
        bq = malloc(sizeof(int32_t) * (size_t)oc);
        if (!bq) {
            free(s);
            free(q);
            free(bias);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
        for (int c = 0; c < oc; c++) {
            double v = nearbyint(bias[c] / ((double)sx * (double)s[c]));
            if (v > 2147483647.0) v = 2147483647.0;
            if (v < -2147483648.0) v = -2147483648.0;
            bq[c] = (int32_t)v;
        }
    }
    free(bias);

    /* codebook centroids become int8 codes on the same grid */
    if (w->cb) {
        tml_codebook *cb = w->cb;
        for (int b = 0; b < cb->n_books; b++)
            for (int j = 0; j < cb->k; j++) {
                float *c = &cb->centroids[(size_t)b * (size_t)cb->k + (size_t)j];
                *c = (float)quant_w(*c, s[cb->n_books == 1 ? 0 : b], qmax);
            }
        /* the decoded data must equal the codebook lookup exactly */
        for (int64_t i = 0; i < cnt; i++) {
            int64_t b = cb->n_books == 1 ? 0 : i / (cnt / cb->n_books);
            q[i] = (int8_t)cb->centroids[b * cb->k + cb->index[i]];
        }
    }
    tml_status st = tml_tensor_set_quant(w, per_tensor ? -1 : axis, per_tensor ? 1 : oc, s, NULL);
    free(s);
    if (st) {
        free(q);
        free(bq);
        return st;
    }
    retype(w, TML_DTYPE_INT8, q);
    w->qbits = bits < 8 ? bits : 0; /* stored and run packed */
    if (bq) {
        int bid = has_b && n->n_in > 2 ? n->in[2] : -1;
        if (bid < 0) {
            char name[256];
            snprintf(name, sizeof name, "%s.b", n->name);
            for (int k = 2; tml_model_find_tensor(m, name) >= 0; k++) snprintf(name, sizeof name, "%s.b%d", n->name, k);
            int32_t d[1] = {oc};
            bid = tml_model_add_tensor(m, name, TML_DTYPE_INT32, TML_TENSOR_PARAM, 1, d, bq);
            free(bq);
            if (bid < 0) return (tml_status)bid;
            n->n_in = 3;
            n->in[2] = bid;
        } else {
            retype(&m->tensors[bid], TML_DTYPE_INT32, bq);
        }
        /* No quantization parameters are stored on the int32 bias: its scale
         * is input_scale * weight_scale[c] by definition (TFLite spec), so
         * storing it would only repeat the weights' scales (measured: 4 KB of
         * a 45 KB compressed lenet5). */
        tml_tensor_clear_quant(&m->tensors[bid]);
    }
    return TML_OK;
}

tml_status tml_quantize(tml_model *m, const tml_calib *calib, const tml_quant_opts *opts)
{
    tml_quant_opts o;
    if (opts) o = *opts;
    else tml_quant_opts_default(&o);
    if (o.weight_bits < 2 || o.weight_bits > 8) return tml_error(TML_ERR_INVALID, "weight bits must be in 2..8");
    for (int i = 0; i < o.n_layer_bits; i++) {
        if (o.layer_bits[i].bits < 2 || o.layer_bits[i].bits > 8)
            return tml_error(TML_ERR_INVALID, "layer '%s': weight bits must be in 2..8 (got %d)", o.layer_bits[i].layer,
                             o.layer_bits[i].bits);
        int ni = o.layer_bits[i].layer ? tml_model_find_node(m, o.layer_bits[i].layer) : -1;
        if (ni < 0 || !tml_node_has_weights(&m->nodes[ni]))
            return tml_error(TML_ERR_INVALID, "no layer with weights named '%s'", o.layer_bits[i].layer ? o.layer_bits[i].layer : "");
    }
    if (tml_model_is_quantized(m)) return tml_error(TML_ERR_UNSUPPORTED, "the model is already quantized (int8)");
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].dtype != TML_DTYPE_F32)
            return tml_error(TML_ERR_UNSUPPORTED, "tensor '%s' is %s; quantization needs a float model", m->tensors[i].name,
                             tml_dtype_name(m->tensors[i].dtype));
    if (o.weight_only) return fake_quant_weights(m, &o);
    if (!calib || calib->n_tensors != m->n_tensors)
        return tml_error(TML_ERR_INVALID, "calibration statistics do not belong to this model (calibrate the folded model)");
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op == TML_OP_BATCHNORM)
            return tml_error(TML_ERR_UNSUPPORTED, "batch norm '%s' could not be folded into a conv/dense; the int8 engine "
                             "has no batch norm", m->nodes[i].name);

    /* 1. activation parameters, in topological order so copies see their source */
    {
        tml_tensor *in = &m->tensors[m->input];
        const tml_tensor_stats *s = &calib->stats[m->input];
        float sc;
        int32_t zp;
        tml_choose_qparams(s->min, s->max, &sc, &zp);
        tml_status st = tml_tensor_set_quant(in, -1, 1, &sc, &zp);
        if (st) return st;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        tml_tensor *y = &m->tensors[n->out];
        float sc;
        int32_t zp;
        if (keeps_input_params(n->op)) {
            const tml_tensor *x = &m->tensors[n->in[0]];
            sc = x->q.scale[0];
            zp = x->q.zero_point[0];
        } else if (n->op == TML_OP_SOFTMAX) {
            sc = 1.0f / 256.0f;
            zp = -128;
        } else {
            double lo, hi;
            tml_status st = tml_calib_range(&calib->stats[n->out], o.method, o.percentile, &lo, &hi);
            if (st) return st;
            tml_choose_qparams(lo, hi, &sc, &zp);
        }
        tml_status st = tml_tensor_set_quant(y, -1, 1, &sc, &zp);
        if (st) return st;
    }
    /* 2. weights and biases (needs the input scales from step 1) */
    for (int i = 0; i < m->n_nodes; i++) {
        tml_node *n = &m->nodes[i];
        if (!tml_node_has_weights(n)) continue;
        if (tml_model_consumers(m, n->in[1]) != 1)
            return tml_error(TML_ERR_UNSUPPORTED, "weights '%s' are shared by several layers", m->tensors[n->in[1]].name);
        tml_status st = quant_node_weights(m, n, calib, &o);
        if (st) return tml_error_context(st, "layer '%s'", n->name);
    }
    /* 3. activations become int8 */
    for (int t = 0; t < m->n_tensors; t++)
        if (m->tensors[t].kind == TML_TENSOR_ACT) m->tensors[t].dtype = TML_DTYPE_INT8;
    /* any float constant left (e.g. an unused batch-norm parameter) is an error */
    for (int t = 0; t < m->n_tensors; t++)
        if (m->tensors[t].dtype == TML_DTYPE_F32)
            return tml_error(TML_ERR_UNSUPPORTED, "tensor '%s' could not be quantized", m->tensors[t].name);
    m->meta.rounding = o.rounding == TML_ROUNDING_TFLITE ? TML_ROUNDING_TFLITE : TML_ROUNDING_TINYML;
    return tml_model_finalize(m);
}
