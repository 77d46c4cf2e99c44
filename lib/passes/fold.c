/*
 * fold.c - graph preparation for deployment: batch norm folded into the
 * producing conv / depthwise / dense, standalone ReLU / ReLU6 fused into their
 * producer's clamp, dropout removed. The function of the model is unchanged up
 * to float rounding.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_quant.h"

/* Is tensor t read by exactly one node input and not the graph output? */
static int single_reader(const tml_model *m, int t) { return t != m->output && tml_model_consumers(m, t) == 1; }

/* Index of the output channel that element `i` of weight tensor `w` belongs to
 * for op `op`: conv (O,KH,KW,I) and dense (O,I): dim 0; depthwise (1,KH,KW,C*M): last dim. */
static int64_t out_channel(tml_op op, const tml_tensor *w, int64_t i)
{
    if (op == TML_OP_DEPTHWISE_CONV2D) return i % w->dims[3];
    return i / (tml_tensor_numel(w) / w->dims[0]);
}

static int64_t n_out_channels(tml_op op, const tml_tensor *w)
{
    return op == TML_OP_DEPTHWISE_CONV2D ? w->dims[3] : w->dims[0];
}

/* Scales output channel oc of weights by f[oc]. A clustered tensor keeps its
 * sharing: per-channel scaling needs a codebook per output channel, so a
 * per-tensor codebook is expanded into one book per channel (exact). Only
 * conv / dense have their output channel on dim 0, which is where books live;
 * a clustered depthwise weight loses its codebook (the values stay exact). */
static tml_status scale_weights(tml_op op, tml_tensor *w, const double *f)
{
    int64_t n = tml_tensor_numel(w);
    float *p = w->data;
    for (int64_t i = 0; i < n; i++) p[i] = (float)((double)p[i] * f[out_channel(op, w, i)]);
    if (!w->cb) return TML_OK;
    tml_codebook *cb = w->cb;
    if (op == TML_OP_DEPTHWISE_CONV2D) {
        tml_codebook_free(cb);
        w->cb = NULL;
        return TML_OK;
    }
    int oc = w->dims[0];
    if (cb->n_books == 1 && oc > 1) {
        float *c = malloc(sizeof(float) * (size_t)oc * (size_t)cb->k);
        if (!c) return tml_error(TML_ERR_NOMEM, "out of memory");
        for (int b = 0; b < oc; b++) memcpy(c + (size_t)b * (size_t)cb->k, cb->centroids, sizeof(float) * (size_t)cb->k);
        free(cb->centroids);
        cb->centroids = c;
        cb->n_books = oc;
    }
    for (int b = 0; b < cb->n_books; b++)
        for (int j = 0; j < cb->k; j++) {
            float *v = &cb->centroids[(size_t)b * (size_t)cb->k + (size_t)j];
            *v = (float)((double)*v * f[cb->n_books == 1 ? 0 : b]);
        }
    return TML_OK;
}

static tml_status fold_bn(tml_model *m, int bi, int *done)
{
    *done = 0;
    tml_node *bn = &m->nodes[bi];
    int x = bn->in[0];
    int pi = tml_model_producer(m, x);
    if (pi < 0) return TML_OK;
    tml_node *p = &m->nodes[pi];
    if (!tml_node_has_weights(p) || p->act != TML_ACT_NONE || !single_reader(m, x)) return TML_OK;
    tml_tensor *w = &m->tensors[p->in[1]];
    if (w->dtype != TML_DTYPE_F32) return TML_OK;
    /* everything below is read and written as float; a file may say otherwise */
    for (int j = 1; j < 5; j++)
        if (m->tensors[bn->in[j]].dtype != TML_DTYPE_F32) return TML_OK;
    if (p->n_in > 2 && p->in[2] >= 0 && m->tensors[p->in[2]].dtype != TML_DTYPE_F32) return TML_OK;
    /* Weights shared with another node cannot be rescaled for this one alone. */
    if (tml_model_consumers(m, p->in[1]) != 1) return TML_OK;
    int64_t oc = n_out_channels(p->op, w);
    const float *g = m->tensors[bn->in[1]].data, *beta = m->tensors[bn->in[2]].data;
    const float *mean = m->tensors[bn->in[3]].data, *var = m->tensors[bn->in[4]].data;
    if (tml_tensor_numel(&m->tensors[bn->in[1]]) != oc) return TML_OK;
    double *f = malloc(sizeof(double) * (size_t)oc);
    if (!f) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int64_t c = 0; c < oc; c++) f[c] = (double)g[c] / sqrt((double)var[c] + (double)bn->eps);
    tml_status st = scale_weights(p->op, w, f);
    if (st) {
        free(f);
        return st;
    }
    int bias = (p->n_in > 2) ? p->in[2] : -1;
    if (bias < 0) {
        char name[256];
        snprintf(name, sizeof name, "%s.b", p->name);
        for (int k = 2; tml_model_find_tensor(m, name) >= 0; k++) snprintf(name, sizeof name, "%s.b%d", p->name, k);
        int32_t d[1] = {(int32_t)oc};
        bias = tml_model_add_tensor(m, name, TML_DTYPE_F32, TML_TENSOR_PARAM, 1, d, NULL);
        if (bias < 0) {
            free(f);
            return (tml_status)bias;
        }
        /* m->tensors may have moved; p and bn are node pointers, still valid */
        p->n_in = 3;
        p->in[2] = bias;
    } else if (tml_model_consumers(m, bias) != 1) {
        /* a shared bias: give this node its own copy */
        char name[256];
        snprintf(name, sizeof name, "%s.b_folded", p->name);
        for (int k = 2; tml_model_find_tensor(m, name) >= 0; k++) snprintf(name, sizeof name, "%s.b_folded%d", p->name, k);
        /* add_tensor may move m->tensors: pass dims from a copy, not from the array */
        int32_t bd[1] = {m->tensors[bias].dims[0]};
        int nb = tml_model_add_tensor(m, name, TML_DTYPE_F32, TML_TENSOR_PARAM, 1, bd, m->tensors[bias].data);
        if (nb < 0) {
            free(f);
            return (tml_status)nb;
        }
        p->in[2] = bias = nb;
    }
    float *b = m->tensors[bias].data;
    g = m->tensors[bn->in[1]].data;
    beta = m->tensors[bn->in[2]].data;
    mean = m->tensors[bn->in[3]].data;
    for (int64_t c = 0; c < oc; c++) b[c] = (float)(((double)b[c] - (double)mean[c]) * f[c] + (double)beta[c]);
    free(f);
    /* the producer now writes the batch norm's output */
    p->out = bn->out;
    tml_model_remove_node(m, bi);
    *done = 1;
    return TML_OK;
}

static int fuse_act(tml_model *m, int ri)
{
    tml_node *r = &m->nodes[ri];
    int x = r->in[0];
    int pi = tml_model_producer(m, x);
    if (pi < 0) return 0;
    tml_node *p = &m->nodes[pi];
    int fusable = tml_node_has_weights(p) || p->op == TML_OP_ADD;
    if (!fusable || p->act != TML_ACT_NONE || !single_reader(m, x)) return 0;
    p->act = r->op == TML_OP_RELU ? TML_ACT_RELU : TML_ACT_RELU6;
    p->out = r->out;
    tml_model_remove_node(m, ri);
    return 1;
}

static void remove_dropout(tml_model *m, int di)
{
    tml_node *d = &m->nodes[di];
    int in = d->in[0], out = d->out;
    tml_model_remove_node(m, di);
    tml_model_replace_uses(m, out, in);
}

tml_status tml_fold(tml_model *m, tml_fold_report *r)
{
    tml_fold_report rep = {0};
    if (tml_model_is_quantized(m)) return tml_error(TML_ERR_UNSUPPORTED, "the model is already quantized");
    /* Node indices shift on removal, so restart the scan after each rewrite. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < m->n_nodes && !changed; i++) {
            tml_node *n = &m->nodes[i];
            if (n->op == TML_OP_BATCHNORM) {
                int done = 0;
                tml_status st = fold_bn(m, i, &done);
                if (st) return st;
                if (done) rep.bn_folded++, changed = 1;
            } else if (n->op == TML_OP_DROPOUT) {
                remove_dropout(m, i);
                rep.dropout_removed++;
                changed = 1;
            }
        }
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < m->n_nodes && !changed; i++) {
            tml_op op = m->nodes[i].op;
            if ((op == TML_OP_RELU || op == TML_OP_RELU6) && fuse_act(m, i)) {
                rep.act_fused++;
                changed = 1;
            }
        }
    }
    for (int i = 0; i < m->n_nodes; i++) rep.bn_left += m->nodes[i].op == TML_OP_BATCHNORM;
    tml_status st = tml_model_compact(m);
    if (st) return st;
    st = tml_model_finalize(m);
    if (st) return tml_error_context(st, "after folding");
    if (r) *r = rep;
    return TML_OK;
}
