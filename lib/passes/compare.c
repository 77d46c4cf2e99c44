/*
 * compare.c - per-layer error between a float model and its int8 version: the
 * two run on the same samples with every activation kept, and each int8
 * activation (dequantized) is compared with the float activation of the same
 * name. The float model is folded first, as quantization does, so that the
 * names line up.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_quant.h"

typedef struct acc {
    double sig, noise, max_abs, sum_abs;
    int64_t count;
} acc;

void tml_compare_result_free(tml_compare_result *r)
{
    if (!r) return;
    free(r->layers);
    r->layers = NULL;
}

static int argmax(const float *v, int k)
{
    int b = 0;
    for (int j = 1; j < k; j++)
        if (v[j] > v[b]) b = j;
    return b;
}

tml_status tml_compare(const tml_model *fm_in, const tml_model *qm, tml_dataset *ds, int64_t limit, int batch,
                       tml_compare_result *r)
{
    memset(r, 0, sizeof *r);
    if (tml_model_is_quantized(fm_in)) return tml_error(TML_ERR_INVALID, "the first model must be the float one");
    if (!tml_model_is_quantized(qm)) return tml_error(TML_ERR_INVALID, "the second model must be int8");
    if (batch <= 0) batch = 64;
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    tml_status st;
    if ((st = tml_check_dataset_fits(fm_in, info)) || (st = tml_check_dataset_fits(qm, info))) return st;
    int k = (int)tml_tensor_numel(&qm->tensors[qm->output]);
    if (tml_tensor_numel(&fm_in->tensors[fm_in->output]) != k)
        return tml_error(TML_ERR_SHAPE, "the models have different numbers of outputs");
    tml_model *fm = tml_model_clone(fm_in);
    if (!fm) return TML_ERR_NOMEM;
    int *pair = NULL; /* int8 node -> float tensor id */
    acc *a = NULL;
    float *raw = NULL, *xf = NULL, *yf = NULL, *yq = NULL;
    int32_t *lab = NULL;
    tml_engine *ef = NULL, *eq = NULL;
    if ((st = tml_fold(fm, NULL))) goto out;
    pair = malloc(sizeof(int) * (size_t)(qm->n_nodes ? qm->n_nodes : 1));
    a = calloc((size_t)(qm->n_nodes ? qm->n_nodes : 1), sizeof(acc));
    int64_t numel = tml_tensor_numel(&qm->tensors[qm->input]);
    raw = malloc(sizeof(float) * (size_t)(numel * batch));
    xf = malloc(sizeof(float) * (size_t)(numel * batch));
    yf = malloc(sizeof(float) * (size_t)(k * batch));
    yq = malloc(sizeof(float) * (size_t)(k * batch));
    lab = malloc(sizeof(int32_t) * (size_t)batch);
    if (!pair || !a || !raw || !xf || !yf || !yq || !lab) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < qm->n_nodes; i++) {
        const tml_tensor *qt = &qm->tensors[qm->nodes[i].out];
        int f = tml_model_find_tensor(fm, qt->name);
        pair[i] = (f >= 0 && tml_tensor_numel(&fm->tensors[f]) == tml_tensor_numel(qt)) ? f : -1;
    }
    tml_engine_opts eo = {.keep_all = 1};
    if ((st = tml_engine_new(fm, batch, &eo, &ef)) || (st = tml_engine_new(qm, batch, &eo, &eq))) goto out;
    int64_t total = info->count;
    if (limit > 0 && limit < total) total = limit;
    while (r->samples < total) {
        int want = (int)((total - r->samples) < batch ? (total - r->samples) : batch), got = 0;
        if ((st = tml_dataset_next(ds, want, raw, lab, &got))) goto out;
        if (!got) break;
        memcpy(xf, raw, sizeof(float) * (size_t)(numel * got));
        tml_preproc_apply(&fm->meta.pre, numel * got, info->c, xf);
        if ((st = tml_engine_run(ef, xf, got, yf))) goto out;
        memcpy(xf, raw, sizeof(float) * (size_t)(numel * got));
        tml_preproc_apply(&qm->meta.pre, numel * got, info->c, xf);
        if ((st = tml_engine_run(eq, xf, got, yq))) goto out;
        for (int i = 0; i < qm->n_nodes; i++) {
            if (pair[i] < 0) continue;
            const tml_tensor *qt = &qm->tensors[qm->nodes[i].out];
            const int8_t *q = tml_engine_activation(eq, qm->nodes[i].out);
            const float *f = tml_engine_activation(ef, pair[i]);
            float s = qt->q.scale[0];
            int32_t zp = qt->q.zero_point[0];
            int64_t cnt = (int64_t)got * tml_tensor_numel(qt);
            acc *ac = &a[i];
            for (int64_t j = 0; j < cnt; j++) {
                double fv = f[j], dq = (double)s * (q[j] - zp), d = fabs(fv - dq);
                ac->sig += fv * fv;
                ac->noise += d * d;
                ac->sum_abs += d;
                if (d > ac->max_abs) ac->max_abs = d;
            }
            ac->count += cnt;
        }
        for (int j = 0; j < got; j++) {
            int pf = argmax(yf + (size_t)j * k, k), pq = argmax(yq + (size_t)j * k, k);
            r->agree += pf == pq;
            r->correct_f += pf == lab[j];
            r->correct_q += pq == lab[j];
        }
        r->samples += got;
    }
    r->layers = calloc((size_t)(qm->n_nodes ? qm->n_nodes : 1), sizeof(tml_layer_error));
    if (!r->layers) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < qm->n_nodes; i++) {
        if (pair[i] < 0 || !a[i].count) continue;
        tml_layer_error *le = &r->layers[r->n_layers++];
        le->node_q = i;
        le->node_f = tml_model_producer(fm, pair[i]);
        le->sqnr_db = a[i].noise > 0 ? 10.0 * log10(a[i].sig / a[i].noise) : INFINITY;
        le->max_abs = a[i].max_abs;
        le->mean_abs = a[i].sum_abs / (double)a[i].count;
        le->scale = qm->tensors[qm->nodes[i].out].q.scale[0];
    }
out:
    tml_engine_free(ef);
    tml_engine_free(eq);
    tml_model_free(fm);
    free(pair);
    free(a);
    free(raw);
    free(xf);
    free(yf);
    free(yq);
    free(lab);
    if (st) tml_compare_result_free(r);
    return st;
}
