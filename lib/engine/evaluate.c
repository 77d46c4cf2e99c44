/*
 * evaluate.c - accuracy of a model on batches: top-1, top-5, per-class
 * accuracy, confusion matrix, mean cross-entropy and throughput. The batches
 * come from a caller's source (tml_eval_source): the engine never opens or
 * reads a dataset (lib/passes/evaluate_data.c feeds it datasets and
 * in-memory samples).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_internal.h"

/* Bytes the evaluation batch (inputs + activations) may take. */
#define EVAL_MEMORY_BUDGET ((int64_t)256 << 20)

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ends_in_softmax(const tml_model *m)
{
    int p = tml_model_producer(m, m->output);
    return p >= 0 && m->nodes[p].op == TML_OP_SOFTMAX;
}

static tml_status result_init(tml_eval_result *r, int k)
{
    memset(r, 0, sizeof *r);
    r->n_classes = k;
    r->class_total = calloc((size_t)k, sizeof(int64_t));
    r->class_correct = calloc((size_t)k, sizeof(int64_t));
    r->confusion = calloc((size_t)k * (size_t)k, sizeof(int64_t));
    if (!r->class_total || !r->class_correct || !r->confusion) {
        tml_eval_result_free(r);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    return TML_OK;
}

void tml_eval_result_free(tml_eval_result *r)
{
    if (!r) return;
    free(r->class_total);
    free(r->class_correct);
    free(r->confusion);
    r->class_total = r->class_correct = r->confusion = NULL;
}

/* Adds one batch of outputs (n, k) with true labels to the running totals
 * (and each sample's top-1 outcome to correct[], when given). */
static void accumulate(tml_eval_result *r, const float *y, const int32_t *labels, int n, int k, int probs, double *loss_sum,
                       uint8_t *correct)
{
    for (int i = 0; i < n; i++) {
        const float *row = y + (size_t)i * (size_t)k;
        int lab = labels[i];
        int best = 0;
        for (int j = 1; j < k; j++)
            if (row[j] > row[best]) best = j;
        /* rank of the true class: number of classes scoring strictly higher
         * (ties resolved in favour of the true class, as argmax picks the first) */
        int higher = 0;
        for (int j = 0; j < k; j++)
            if (row[j] > row[lab] || (row[j] == row[lab] && j < lab)) higher++;
        r->correct1 += best == lab;
        if (correct) correct[r->n + i] = best == lab;
        r->correct5 += higher < 5;
        r->class_total[lab]++;
        r->class_correct[lab] += best == lab;
        r->confusion[(size_t)lab * (size_t)k + (size_t)best]++;
        double l;
        if (probs) {
            l = -log(row[lab] > 1e-30f ? (double)row[lab] : 1e-30);
        } else {
            double mx = row[0];
            for (int j = 1; j < k; j++)
                if (row[j] > mx) mx = row[j];
            double s = 0.0;
            for (int j = 0; j < k; j++) s += exp((double)row[j] - mx);
            l = mx + log(s) - (double)row[lab];
        }
        *loss_sum += l;
    }
    r->n += n;
}

static void finish(tml_eval_result *r, double loss_sum, double seconds)
{
    r->top1 = r->n ? (double)r->correct1 / (double)r->n : 0.0;
    r->top5 = r->n ? (double)r->correct5 / (double)r->n : 0.0;
    r->loss = r->n ? loss_sum / (double)r->n : 0.0;
    r->seconds = seconds;
    r->samples_per_s = seconds > 0 ? (double)r->n / seconds : 0.0;
}

tml_status tml_evaluate_source(const tml_model *m, const tml_eval_source *src, const tml_eval_opts *opts,
                               tml_eval_result *r)
{
    int64_t total = src->total;
    tml_eval_opts o = {0};
    if (opts) o = *opts;
    if (o.batch <= 0) o.batch = 256;
    int k = (int)tml_tensor_numel(&m->tensors[m->output]);
    tml_status st = result_init(r, k);
    if (st) return st;
    if (o.limit > 0 && o.limit < total) total = o.limit;
    if ((int64_t)o.batch > total && total > 0) o.batch = (int)total;
    int64_t in_numel = tml_tensor_numel(&m->tensors[m->input]);
    /* Never a huge allocation for a large input (a 4096x4096 image): the
     * batch shrinks until its input buffer and activation arena fit
     * EVAL_MEMORY_BUDGET; results do not depend on the batch size. */
    {
        int64_t peak = 0;
        if (tml_model_peak_activation_bytes(m, &peak) == TML_OK) {
            int64_t per = peak + in_numel * (int64_t)sizeof(float), fit = EVAL_MEMORY_BUDGET / (per > 0 ? per : 1);
            if (fit < 1) fit = 1;
            if (fit < o.batch) o.batch = (int)fit;
        }
    }
    float *x = malloc(sizeof(float) * (size_t)in_numel * (size_t)o.batch);
    float *y = malloc(sizeof(float) * (size_t)k * (size_t)o.batch);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)o.batch);
    tml_engine *e = NULL, *plain = NULL;
    int check = o.check_schedule && o.schedule;
    float *y2 = check ? malloc(sizeof(float) * (size_t)k * (size_t)o.batch) : NULL;
    if (!x || !y || !lab || (check && !y2)) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    tml_engine_opts eo = {.use_ref = o.use_ref, .schedule = o.schedule};
    st = tml_engine_new(m, o.batch, &eo, &e);
    if (st) goto out;
    if (check) {
        tml_engine_opts po = {.use_ref = o.use_ref};
        st = tml_engine_new(m, o.batch, &po, &plain);
        if (st) goto out;
    }
    int probs = ends_in_softmax(m);
    double loss_sum = 0.0, t0 = now_seconds();
    while (r->n < total) {
        if (o.cancel && *o.cancel) {
            st = tml_error(TML_ERR_INTERRUPTED, "interrupted after %lld samples", (long long)r->n);
            goto out;
        }
        int want = (int)((total - r->n) < o.batch ? (total - r->n) : o.batch), got = 0;
        st = src->next(src->user, want, x, lab, &got);
        if (st) goto out;
        if (got == 0) break;
        for (int i = 0; i < got; i++)
            if (lab[i] < 0 || lab[i] >= k) {
                st = tml_error(TML_ERR_FORMAT, "label %d of sample %lld is outside the model's %d classes", lab[i],
                               (long long)(r->n + i), k);
                goto out;
            }
        st = tml_engine_run(e, x, got, y);
        if (st) goto out;
        if (check) {
            st = tml_engine_run(plain, x, got, y2);
            if (st) goto out;
            /* dequantized int8 values: equal floats <=> equal bytes */
            for (int64_t q = 0; q < (int64_t)got * k; q++) r->sched_diffs += memcmp(&y[q], &y2[q], sizeof(float)) != 0;
            r->sched_checked += (int64_t)got * k;
        }
        accumulate(r, y, lab, got, k, probs, &loss_sum, o.correct);
        if (o.progress) o.progress(o.progress_user, r->n, total);
    }
    finish(r, loss_sum, now_seconds() - t0);
out:
    if (st) tml_eval_result_free(r);
    tml_engine_free(e);
    tml_engine_free(plain);
    free(y2);
    free(x);
    free(y);
    free(lab);
    return st;
}
