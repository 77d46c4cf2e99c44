/*
 * sensitivity.c - how much accuracy each layer loses when it alone is pruned
 * (or quantized) to each point of a scan, and choosing per-layer sparsities
 * from that.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "tinyml/tml_prune.h"
#include "tinyml/tml_quant.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void tml_sens_result_free(tml_sens_result *r)
{
    if (!r) return;
    if (r->layers)
        for (int i = 0; i < r->n_layers; i++) free(r->layers[i]);
    free(r->layers);
    free(r->x);
    free(r->acc);
    free(r->actual);
    memset(r, 0, sizeof *r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Applies point x of the scan to layer `name` of model c; *actual receives the
 * achieved sparsity (fraction of filters removed in filters mode). */
static tml_status apply_point(tml_model *c, const char *name, const tml_sens_opts *o, double x, double *actual)
{
    tml_status st;
    if (o->mode == TML_SENS_QUANT) {
        tml_quant_opts qo;
        tml_quant_opts_default(&qo);
        qo.weight_only = 1;
        qo.weight_bits = (int)x;
        const char *only[2] = {name, NULL};
        qo.only_layers = only;
        *actual = x;
        return tml_quantize(c, NULL, &qo);
    }
    tml_layer_target t = {name, x};
    tml_prune_spec s = {.sparsity = 0, .n_targets = 1, .targets = &t, .norm = TML_NORM_L1};
    tml_prune_report rep;
    if (o->mode == TML_SENS_FILTERS) {
        int ni = tml_model_find_node(c, name);
        int before = c->tensors[c->nodes[ni].in[1]].dims[0];
        st = tml_prune_structured(c, &s, &rep);
        if (st) return st;
        ni = tml_model_find_node(c, name);
        int after = c->tensors[c->nodes[ni].in[1]].dims[0];
        *actual = (double)(before - after) / (double)before;
    } else {
        st = tml_prune_magnitude(c, &s, &rep);
        if (st) return st;
        int ni = tml_model_find_node(c, name);
        const tml_tensor *w = &c->tensors[c->nodes[ni].in[1]];
        *actual = 1.0 - (double)tml_tensor_nonzeros(w) / (double)tml_tensor_numel(w);
    }
    tml_prune_report_free(&rep);
    return TML_OK;
}

tml_status tml_sensitivity(const tml_model *m, const tml_samples *s, const tml_sens_opts *opts, tml_sens_result *r)
{
    memset(r, 0, sizeof *r);
    tml_sens_opts o = *opts;
    if (o.batch <= 0) o.batch = 256;
    int64_t n = (o.limit > 0 && o.limit < s->n) ? o.limit : s->n;
    if (o.mode == TML_SENS_QUANT) {
        if (o.bits_lo < 2 || o.bits_hi > 8 || o.bits_lo > o.bits_hi) return tml_error(TML_ERR_INVALID, "bits range must be within 2..8");
        r->n_points = o.bits_hi - o.bits_lo + 1;
    } else {
        if (!(o.start >= 0 && o.stop < 1 && o.start <= o.stop && o.step > 0))
            return tml_error(TML_ERR_INVALID, "range must satisfy 0 <= start <= stop < 1 and step > 0");
        r->n_points = (int)floor((o.stop - o.start) / o.step + 1e-9) + 1;
        if (r->n_points > 1000) return tml_error(TML_ERR_INVALID, "more than 1000 points in the range");
    }
    int nl = 0;
    const char **names = tml_prunable_layers(m, &nl);
    if (!names) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (nl == 0) {
        free(names);
        return tml_error(TML_ERR_INVALID, "the model has no prunable layers");
    }
    r->n_layers = nl;
    r->layers = calloc((size_t)nl, sizeof(char *));
    r->x = malloc(sizeof(double) * (size_t)r->n_points);
    r->acc = malloc(sizeof(double) * (size_t)(nl * r->n_points));
    r->actual = malloc(sizeof(double) * (size_t)(nl * r->n_points));
    if (!r->layers || !r->x || !r->acc || !r->actual) {
        free(names);
        tml_sens_result_free(r);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < nl; i++) r->layers[i] = tml_strdup(names[i]);
    free(names);
    for (int p = 0; p < r->n_points; p++)
        r->x[p] = o.mode == TML_SENS_QUANT ? (double)(o.bits_hi - p) : o.start + o.step * p;
    r->samples = n;
    double t0 = now_s();
    tml_eval_opts eo = {.batch = o.batch, .cancel = o.cancel};
    tml_eval_result er;
    tml_status st = tml_evaluate_samples(m, s, NULL, n, &eo, &er);
    if (st) {
        tml_sens_result_free(r);
        return st;
    }
    r->base_acc = er.top1;
    tml_eval_result_free(&er);

    int total = nl * r->n_points;
    int done = 0;
    tml_status first = TML_OK;
    char first_msg[1024] = "";
    /* Every evaluation works on its own copy of the model with its own engine;
     * the kernels' own OpenMP regions run single-threaded inside. */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (int job = 0; job < total; job++) {
        int li = job / r->n_points, p = job % r->n_points;
        int failed;
#ifdef _OPENMP
#pragma omp atomic read
#endif
        failed = first;
        if (failed || (o.cancel && *o.cancel)) continue;
        double actual = 0, acc = NAN;
        tml_model *c = tml_model_clone(m);
        tml_status js = c ? apply_point(c, r->layers[li], &o, r->x[p], &actual) : TML_ERR_NOMEM;
        if (!js) {
            tml_eval_result jr;
            tml_eval_opts jo = {.batch = o.batch, .cancel = o.cancel};
            js = tml_evaluate_samples(c, s, NULL, n, &jo, &jr);
            if (!js) {
                acc = jr.top1;
                tml_eval_result_free(&jr);
            }
        }
        tml_model_free(c);
        r->acc[li * r->n_points + p] = acc;
        r->actual[li * r->n_points + p] = actual;
#ifdef _OPENMP
#pragma omp critical(tml_sens)
#endif
        {
            if (js && !first) {
                first = js;
                snprintf(first_msg, sizeof first_msg, "layer '%s' at %g: %s", r->layers[li], r->x[p], tml_last_error());
            }
            done++;
            if (o.progress) o.progress(o.progress_user, done, total);
        }
    }
    r->seconds = now_s() - t0;
    if (!first && o.cancel && *o.cancel) {
        first = TML_ERR_INTERRUPTED;
        snprintf(first_msg, sizeof first_msg, "sensitivity scan interrupted");
    }
    if (first) {
        tml_sens_result_free(r);
        return tml_error(first, "%s", first_msg);
    }
    return TML_OK;
}

tml_status tml_sens_choose(const tml_sens_result *r, double max_drop, tml_layer_target *targets)
{
    if (!(max_drop >= 0)) return tml_error(TML_ERR_INVALID, "max drop must be >= 0");
    for (int l = 0; l < r->n_layers; l++) {
        double best = 0;
        for (int p = 0; p < r->n_points; p++) {
            double drop = r->base_acc - r->acc[l * r->n_points + p];
            if (!(drop <= max_drop)) break; /* this and everything sparser is out */
            if (r->x[p] > best) best = r->x[p];
        }
        targets[l].name = r->layers[l];
        targets[l].sparsity = best;
    }
    return TML_OK;
}

char *tml_sens_to_json(const tml_sens_result *r, const char *model_name, const char *data_name)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model_name ? model_name : "");
    cJSON_AddStringToObject(o, "data", data_name ? data_name : "");
    cJSON_AddNumberToObject(o, "samples", (double)r->samples);
    cJSON_AddNumberToObject(o, "base_top1", r->base_acc);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON *xs = cJSON_AddArrayToObject(o, "points");
    for (int p = 0; p < r->n_points; p++) cJSON_AddItemToArray(xs, cJSON_CreateNumber(r->x[p]));
    cJSON *ls = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; l < r->n_layers; l++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", r->layers[l]);
        cJSON *a = cJSON_AddArrayToObject(e, "top1"), *d = cJSON_AddArrayToObject(e, "drop"),
              *s = cJSON_AddArrayToObject(e, "actual");
        for (int p = 0; p < r->n_points; p++) {
            double acc = r->acc[l * r->n_points + p];
            cJSON_AddItemToArray(a, cJSON_CreateNumber(acc));
            cJSON_AddItemToArray(d, cJSON_CreateNumber(r->base_acc - acc));
            cJSON_AddItemToArray(s, cJSON_CreateNumber(r->actual[l * r->n_points + p]));
        }
        cJSON_AddItemToArray(ls, e);
    }
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    if (!txt) return NULL;
    char *out = tml_strdup(txt);
    cJSON_free(txt);
    return out;
}

tml_status tml_sens_from_json(const char *json, tml_sens_result *r)
{
    memset(r, 0, sizeof *r);
    cJSON *o = cJSON_Parse(json);
    tml_status st = TML_OK;
    if (!cJSON_IsObject(o)) {
        st = tml_error(TML_ERR_FORMAT, "not a sensitivity JSON object");
        goto out;
    }
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(o, "base_top1");
    const cJSON *xs = cJSON_GetObjectItemCaseSensitive(o, "points");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(o, "layers");
    if (!cJSON_IsNumber(base) || !cJSON_IsArray(xs) || !cJSON_IsArray(ls) || cJSON_GetArraySize(xs) < 1 ||
        cJSON_GetArraySize(ls) < 1 || cJSON_GetArraySize(xs) > 1000 || cJSON_GetArraySize(ls) > 10000) {
        st = tml_error(TML_ERR_FORMAT, "sensitivity JSON needs base_top1, points and layers (from 'tinyml sensitivity --json')");
        goto out;
    }
    r->base_acc = base->valuedouble;
    r->n_points = cJSON_GetArraySize(xs);
    r->n_layers = cJSON_GetArraySize(ls);
    r->x = malloc(sizeof(double) * (size_t)r->n_points);
    r->layers = calloc((size_t)r->n_layers, sizeof(char *));
    r->acc = malloc(sizeof(double) * (size_t)(r->n_points * r->n_layers));
    r->actual = calloc((size_t)(r->n_points * r->n_layers), sizeof(double));
    if (!r->x || !r->layers || !r->acc || !r->actual) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int p = 0; p < r->n_points; p++) {
        const cJSON *v = cJSON_GetArrayItem(xs, p);
        if (!cJSON_IsNumber(v)) {
            st = tml_error(TML_ERR_FORMAT, "sensitivity JSON: points must be numbers");
            goto out;
        }
        r->x[p] = v->valuedouble;
    }
    for (int l = 0; l < r->n_layers; l++) {
        const cJSON *e = cJSON_GetArrayItem(ls, l);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "top1");
        if (!cJSON_IsString(nm) || !cJSON_IsArray(a) || cJSON_GetArraySize(a) != r->n_points) {
            st = tml_error(TML_ERR_FORMAT, "sensitivity JSON: layer %d needs a name and %d top1 values", l, r->n_points);
            goto out;
        }
        r->layers[l] = tml_strdup(nm->valuestring);
        if (!r->layers[l]) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (int p = 0; p < r->n_points; p++) {
            const cJSON *v = cJSON_GetArrayItem(a, p);
            r->acc[l * r->n_points + p] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
    }
out:
    cJSON_Delete(o);
    if (st) tml_sens_result_free(r);
    return st;
}
