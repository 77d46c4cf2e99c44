/*
 * test_qat.c - below 8 bits: adaptive (GPTQ-style) rounding, the int8 engine
 * on packed low-bit weights, and quantization-aware training:
 *   - adaptive rounding gives a lower layer output error than nearest on a
 *     fixture with correlated inputs (and on a trained model's logits), and
 *     keeps pruned weights at zero;
 *   - the engine's fast path on packed weights equals its reference kernels
 *     (which read the packed stream) for several widths, batch sizes and
 *     thread counts;
 *   - the fake-quantized forward pass of QAT equals the int8 engine running
 *     the model tml_quantize makes of it (at most one quantization step of the
 *     output apart, and identical in >= 99% of the values), on held-out samples (conv, batch norm, residual add, depthwise,
 *     ReLU6, pools: lenet5, resnet8, mobilenet-tiny);
 *   - QAT keeps pruning masks at zero and codebooks shared;
 *   - QAT with keep_best writes the int8 model of the epoch with the best
 *     fake-quantized validation accuracy (its logits are that epoch's
 *     fake-quantized logits), not the last epoch's;
 *   - mixed precision: the knapsack's choice is the best assignment within
 *     the budget (brute force over all of them).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes_internal.h"
#include "testutil.h"
#include "tinyml/tml_cluster.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_prune.h"
#include "tinyml/tml_qat.h"
#include "tinyml/tml_zoo.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static tml_samples *fmnist(const char *split, int64_t n)
{
    tml_dataset *ds = NULL;
    assert_int_equal(tml_dataset_open("fashion-mnist", split, &ds), TML_OK);
    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, n, &s), TML_OK);
    tml_dataset_free(ds);
    return s;
}

static tml_dataset *fmnist_ds(const char *split)
{
    tml_dataset *ds = NULL;
    assert_int_equal(tml_dataset_open("fashion-mnist", split, &ds), TML_OK);
    return ds;
}

static tml_model *zoo(const char *arch, uint64_t seed)
{
    tml_zoo_opts o = {.seed = seed};
    tml_model *m = NULL;
    assert_int_equal(tml_zoo_create(arch, &o, &m), TML_OK);
    return m;
}

static void ok(tml_status st, const char *what)
{
    if (st) fprintf(stderr, "  %s: %s\n", what, tml_last_error());
    assert_int_equal(st, TML_OK);
}

/* Preprocessed inputs (n, numel) of samples [first, first + n) of s. */
static float *inputs(const tml_model *m, const tml_samples *s, int64_t first, int n)
{
    int64_t numel = tml_tensor_numel(&m->tensors[m->input]);
    float *x = malloc(sizeof(float) * (size_t)(n * numel));
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++) idx[i] = first + i;
    tml_samples_gather(s, idx, n, x, NULL);
    tml_preproc_apply(&m->meta.pre, n * numel, s->c, x);
    free(idx);
    return x;
}

/* A lenet300 (seed) trained one epoch on tr, its calibration statistics
 * (co) from the training split in cal. */
static tml_model *trained_lenet300(uint64_t seed, const tml_samples *tr, const tml_calib_opts *co, tml_calib *cal)
{
    tml_model *m = zoo("lenet300", seed);
    tml_train_opts to;
    tml_train_opts_default(&to);
    to.epochs = 1;
    to.val_samples = 0;
    tml_trainer *t = NULL;
    ok(tml_trainer_new(m, tr, &to, &t), "trainer");
    ok(tml_trainer_run(t), "train");
    tml_trainer_free(t);
    tml_dataset *cds = fmnist_ds("train");
    ok(tml_calibrate(m, cds, co, cal), "calibrate");
    tml_dataset_free(cds);
    return m;
}

/* ---- adaptive rounding ------------------------------------------------------------------------ */

/* sum over rows of (w - s q) H (w - s q)^T: the output error on the inputs of H. */
static double out_err(int rows, int k, const float *w, const float *s, const int8_t *q, const double *h)
{
    double e = 0.0;
    double *d = malloc(sizeof(double) * (size_t)k);
    for (int r = 0; r < rows; r++) {
        for (int j = 0; j < k; j++) d[j] = w[r * k + j] - (double)s[r] * q[r * k + j];
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) e += d[a] * h[a * k + b] * d[b];
    }
    free(d);
    return e;
}

static void test_gptq_beats_nearest_on_fixture(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 7);
    enum { ROWS = 24, K = 40, N = 600, Z = 12 };
    /* inputs x = A z + noise: strongly correlated, as a layer's inputs are */
    static float a[K * Z], x[N * K], w[ROWS * K];
    static double h[K * K];
    tu_fill_uniform(&r, a, K * Z, -1, 1);
    for (int n = 0; n < N; n++) {
        float z[Z];
        tu_fill_uniform(&r, z, Z, -1, 1);
        for (int i = 0; i < K; i++) {
            float v = 0.1f * tu_rng_uniform(&r, -1, 1);
            for (int j = 0; j < Z; j++) v += a[i * Z + j] * z[j];
            x[n * K + i] = v;
        }
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            double v = 0.0;
            for (int n = 0; n < N; n++) v += (double)x[n * K + i] * x[n * K + j];
            h[i * K + j] = v;
        }
    tu_fill_uniform(&r, w, ROWS * K, -0.5f, 0.5f);
    uint8_t keep[ROWS * K];
    for (int i = 0; i < ROWS * K; i++) keep[i] = (i % 5) != 0; /* every 5th weight pruned */
    for (int i = 0; i < ROWS * K; i++)
        if (!keep[i]) w[i] = 0.0f;
    for (int bits = 2; bits <= 4; bits++) {
        const int qmax = (1 << (bits - 1)) - 1;
        float sn[ROWS], sa[ROWS];
        int8_t qn[ROWS * K], qa[ROWS * K];
        for (int rr = 0; rr < ROWS; rr++) {
            float m = 0;
            for (int j = 0; j < K; j++) m = fmaxf(m, fabsf(w[rr * K + j]));
            sn[rr] = m / (float)qmax;
            for (int j = 0; j < K; j++) qn[rr * K + j] = (int8_t)tml_quant_round(w[rr * K + j], sn[rr], qmax);
        }
        ok(tml_gptq_rows(ROWS, K, w, h, keep, qmax, 0, sa, qa), "gptq");
        const double en = out_err(ROWS, K, w, sn, qn, h), ea = out_err(ROWS, K, w, sa, qa, h);
        fprintf(stderr, "  %d bits: output error nearest %.4g, adaptive %.4g (%.2fx)\n", bits, en, ea, en / ea);
        assert_true(ea < 0.7 * en);
        for (int i = 0; i < ROWS * K; i++) {
            if (!keep[i]) assert_int_equal(qa[i], 0);
            assert_true(qa[i] >= -qmax && qa[i] <= qmax);
        }
    }
}

/* On a (briefly) trained lenet300 at 3 bits: the logits of the adaptive
 * model are closer to the float model's than those of the nearest one. */
static void test_adaptive_rounding_model(void **state)
{
    (void)state;
    tml_samples *s = fmnist("train", 2048), *te = fmnist("test", 512);
    tml_calib cal;
    tml_calib_opts co = {.samples = 256, .seed = 1, .hessians = 1};
    tml_model *m = trained_lenet300(5, s, &co, &cal);
    double err[2];
    float *x = inputs(m, te, 0, 512);
    float *yf = malloc(sizeof(float) * 512 * 10), *yq = malloc(sizeof(float) * 512 * 10);
    tml_engine *ef = NULL;
    ok(tml_engine_new(m, 512, NULL, &ef), "engine");
    ok(tml_engine_run(ef, x, 512, yf), "run");
    for (int a = 0; a < 2; a++) {
        tml_model *q = tml_model_clone(m);
        tml_quant_opts qo;
        tml_quant_opts_default(&qo);
        qo.weight_bits = 3;
        qo.weight_rounding = a ? TML_ROUND_ADAPTIVE : TML_ROUND_NEAREST;
        ok(tml_quantize(q, &cal, &qo), "quantize");
        assert_int_equal(q->tensors[tml_model_find_tensor(q, "fc1.w")].qbits, 3);
        tml_engine *eq = NULL;
        ok(tml_engine_new(q, 512, NULL, &eq), "engine");
        ok(tml_engine_run(eq, x, 512, yq), "run");
        err[a] = 0;
        for (int i = 0; i < 5120; i++) err[a] += (double)(yq[i] - yf[i]) * (yq[i] - yf[i]);
        tml_engine_free(eq);
        tml_model_free(q);
    }
    fprintf(stderr, "  lenet300 W3A8 logit squared error vs float: nearest %.1f, adaptive %.1f\n", err[0], err[1]);
    assert_true(err[1] < 0.8 * err[0]);
    tml_engine_free(ef);
    free(x), free(yf), free(yq);
    tml_calib_free(&cal);
    tml_model_free(m);
    tml_samples_free(s);
    tml_samples_free(te);
}

/* ---- mixed precision ----------------------------------------------------------------------------- */

/* The knapsack's choice against brute force over every assignment of the
 * candidate widths (3 layers, 3 widths: 27): within the budget, and of the
 * least summed cost there is. The front is increasing in bytes and the
 * uniform points are the uniform models. */
static void test_mixed_precision_is_optimal(void **state)
{
    (void)state;
    tml_samples *tr = fmnist("train", 2048), *held = fmnist("test", 300);
    tml_calib cal;
    tml_calib_opts co = {.samples = 128, .seed = 2};
    tml_model *m = trained_lenet300(4, tr, &co, &cal);
    const int64_t budgets[] = {100000, 140000, 160000};
    for (int bi = 0; bi < 3; bi++) {
        tml_mp_opts o;
        tml_mp_opts_default(&o);
        o.n_candidates = 3;
        o.candidates[0] = 2;
        o.candidates[1] = 4;
        o.candidates[2] = 8;
        o.target_bytes = budgets[bi];
        o.front_points = 6;
        tml_mp_result r;
        ok(tml_mixed_precision(m, &cal, held, &o, &r), "mixed precision");
        assert_int_equal(r.n_layers, 3);
        const tml_mp_point *c = &r.points[r.chosen];
        double best = INFINITY;
        const int w[3] = {2, 4, 8};
        for (int a = 0; a < 27; a++) {
            int64_t bytes = 0;
            double cost = 0;
            for (int l = 0, v = a; l < 3; l++, v /= 3) {
                bytes += (r.layers[l].params * w[v % 3] + 7) / 8;
                cost += r.layers[l].dloss[w[v % 3]];
            }
            if (bytes <= budgets[bi] && cost < best) best = cost;
        }
        fprintf(stderr, "  budget %lld: chosen %d,%d,%d, %lld bytes, cost %.6f (brute force best %.6f), top-1 %.2f%%\n",
                (long long)budgets[bi], c->bits[0], c->bits[1], c->bits[2], (long long)c->bytes, c->cost, best,
                100 * c->top1);
        assert_true(c->bytes <= budgets[bi]);
        assert_true(fabs(c->cost - best) < 1e-9);
        for (int i = 1; i < r.n_points && !r.points[i].uniform; i++) assert_true(r.points[i].bytes > r.points[i - 1].bytes);
        for (int i = 0; i < r.n_points; i++)
            if (r.points[i].uniform)
                for (int l = 0; l < 3; l++) assert_int_equal(r.points[i].bits[l], r.points[i].uniform);
        tml_mp_result_free(&r);
    }
    tml_calib_free(&cal);
    tml_model_free(m);
    tml_samples_free(tr);
    tml_samples_free(held);
}

/* ---- the engine on packed weights ---------------------------------------------------------------- */

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static void test_lowbit_engine_fast_equals_ref(void **state)
{
    (void)state;
    tml_samples *te = fmnist("test", 64);
    tml_dataset *cds = fmnist_ds("train");
    const char *archs[] = {"lenet5", "mobilenet-tiny", "resnet8"};
    for (int ai = 0; ai < 3; ai++) {
        tml_model *m = zoo(archs[ai], 11);
        ok(tml_fold(m, NULL), "fold");
        tml_calib cal;
        tml_calib_opts co = {.samples = 64, .seed = 1};
        ok(tml_calibrate(m, cds, &co, &cal), "calibrate");
        tml_quant_opts qo;
        tml_quant_opts_default(&qo);
        qo.weight_bits = 4;
        /* mixed widths: the first weighted layer 2 bits, the second 7 */
        tml_layer_bits lb[2];
        int nl = 0;
        for (int i = 0; i < m->n_nodes && nl < 2; i++)
            if (tml_node_has_weights(&m->nodes[i])) lb[nl] = (tml_layer_bits){m->nodes[i].name, nl ? 7 : 2}, nl++;
        qo.layer_bits = lb;
        qo.n_layer_bits = nl;
        tml_model *q = tml_model_clone(m);
        ok(tml_quantize(q, &cal, &qo), "quantize");
        int64_t numel = tml_tensor_numel(&q->tensors[q->input]), k = tml_tensor_numel(&q->tensors[q->output]);
        float *x = inputs(q, te, 0, 64);
        float *yr = malloc(sizeof(float) * (size_t)(64 * k)), *yf = malloc(sizeof(float) * (size_t)(64 * k));
        tml_engine_opts ro = {.use_ref = 1};
        tml_engine *er = NULL;
        ok(tml_engine_new(q, 64, &ro, &er), "engine ref");
        ok(tml_engine_run(er, x, 64, yr), "run ref");
        const int batches[] = {1, 7, 64};
        for (int bi = 0; bi < 3; bi++)
            for (int th = 1; th <= 2; th++) {
                set_threads(th);
                tml_engine *ef = NULL;
                ok(tml_engine_new(q, batches[bi], NULL, &ef), "engine");
                for (int s0 = 0; s0 < 64; s0 += batches[bi]) {
                    int n = 64 - s0 < batches[bi] ? 64 - s0 : batches[bi];
                    ok(tml_engine_run(ef, x + s0 * numel, n, yf + s0 * k), "run");
                }
                if (!tu_close_f32("packed weights: fast vs ref", yf, yr, (size_t)(64 * k), 0.0f)) {
                    fprintf(stderr, "  %s, batch %d, %d threads\n", archs[ai], batches[bi], th);
                    fail();
                }
                tml_engine_free(ef);
            }
        set_threads(2);
        tml_engine_free(er);
        free(x), free(yr), free(yf);
        tml_model_free(q);
        tml_calib_free(&cal);
        tml_model_free(m);
    }
    tml_dataset_free(cds);
    tml_samples_free(te);
}

/* ---- quantization-aware training ------------------------------------------------------------------ */

static void test_fake_quant_forward_matches_engine(void **state)
{
    (void)state;
    tml_samples *tr = fmnist("train", 192), *te = fmnist("test", 96);
    tml_dataset *cds = fmnist_ds("train");
    const char *archs[] = {"lenet5", "resnet8", "mobilenet-tiny"};
    for (int ai = 0; ai < 3; ai++)
        for (int bits = 4; bits <= 8; bits += 4) {
            tml_model *m = zoo(archs[ai], 21);
            ok(tml_fold(m, NULL), "fold");
            tml_calib cal, trained;
            tml_calib_opts co = {.samples = 128, .seed = 3};
            ok(tml_calibrate(m, cds, &co, &cal), "calibrate");
            tml_quant_opts qo;
            tml_quant_opts_default(&qo);
            qo.weight_bits = bits;
            qo.method = ai == 1 ? TML_CALIB_PERCENTILE : TML_CALIB_MINMAX; /* clipped ranges too */
            /* TFLite's arithmetic at 8 bits, tinyml's at 4 */
            qo.rounding = bits == 8 ? TML_ROUNDING_TFLITE : TML_ROUNDING_TINYML;
            tml_fq_opts fo;
            tml_fq_opts_default(&fo);
            fo.freeze = 0.5;
            tml_fakequant *fq = NULL;
            ok(tml_fakequant_new(m, &cal, &qo, &fo, &fq), "fakequant");
            tml_train_opts to;
            tml_train_opts_default(&to);
            to.epochs = 1;
            to.batch = 32;
            to.val_samples = 0;
            to.lr = 1e-3;
            to.fq = fq;
            tml_trainer *t = NULL;
            ok(tml_trainer_new(m, tr, &to, &t), "trainer");
            ok(tml_trainer_run(t), "qat");
            ok(tml_fakequant_calib(fq, &trained), "ranges");
            tml_model *q = tml_model_clone(m);
            tml_quant_opts co8 = qo;
            co8.method = TML_CALIB_MINMAX;
            ok(tml_quantize(q, &trained, &co8), "quantize");
            const tml_tensor *out = &q->tensors[q->output];
            const int k = (int)tml_tensor_numel(out);
            const float step = out->q.scale[0];
            tml_engine *e = NULL;
            ok(tml_engine_new(q, 32, NULL, &e), "engine");
            double maxd = 0.0;
            int64_t exact = 0, total = 0;
            for (int s0 = 0; s0 < 96; s0 += 32) {
                float *x = inputs(m, te, s0, 32);
                float yq[32 * 10], yf[32 * 10];
                ok(tml_engine_run(e, x, 32, yq), "run");
                ok(tml_trainer_infer(t, x, 32, yf), "infer");
                for (int i = 0; i < 32 * k; i++) {
                    const double d = fabs((double)yq[i] - (double)yf[i]) / step;
                    maxd = fmax(maxd, d);
                    exact += d < 0.01;
                    total++;
                }
                free(x);
            }
            fprintf(stderr, "  %s W%dA8 (%s rounding): fake-quantized vs int8 engine logits: max %.3f steps, %.1f%% identical\n",
                    archs[ai], bits, tml_rounding_name((tml_rounding)qo.rounding), maxd, 100.0 * (double)exact / (double)total);
            /* the fake quantization runs the engine's integer arithmetic: equal
             * but for a float accumulator off by one, which never happens here */
            assert_true(maxd <= 1.0 + 1e-3);
            assert_true(exact >= total * 99 / 100);
            tml_engine_free(e);
            tml_model_free(q);
            tml_calib_free(&trained);
            tml_trainer_free(t);
            tml_fakequant_free(fq);
            tml_calib_free(&cal);
            tml_model_free(m);
        }
    tml_dataset_free(cds);
    tml_samples_free(tr);
    tml_samples_free(te);
}

/* Through tml_qat: pruned weights stay zero in the float and int8 models,
 * codebooks keep their assignments and k shared values (int8 codes after). */
static void test_qat_keeps_masks_and_codebooks(void **state)
{
    (void)state;
    tml_samples *tr = fmnist("train", 256);
    tml_dataset *cds = fmnist_ds("train");
    tml_model *m = zoo("lenet300", 9);
    tml_prune_spec ps = {.sparsity = 0.7};
    ok(tml_prune_magnitude(m, &ps, NULL), "prune");
    tml_cluster_opts cl;
    tml_cluster_opts_default(&cl);
    cl.bits = 4;
    ok(tml_cluster(m, &cl, NULL), "cluster");
    int wi = tml_model_find_tensor(m, "fc2.w");
    int64_t n = tml_tensor_numel(&m->tensors[wi]);
    uint8_t *idx0 = malloc((size_t)n);
    memcpy(idx0, m->tensors[wi].cb->index, (size_t)n);
    tml_qat_opts o;
    tml_qat_opts_default(&o);
    o.quant.weight_bits = 4;
    o.calib.samples = 64;
    o.train.epochs = 1;
    o.train.batch = 32;
    o.train.val_samples = 0;
    o.train.lr = 1e-3;
    tml_model *q = NULL, *f = NULL;
    ok(tml_qat(m, tr, cds, &o, &q, &f, NULL), "qat");
    const tml_tensor *wf = &f->tensors[tml_model_find_tensor(f, "fc2.w")];
    const tml_tensor *wq = &q->tensors[tml_model_find_tensor(q, "fc2.w")];
    assert_non_null(wf->cb);
    assert_non_null(wq->cb);
    assert_int_equal(wq->qbits, 4);
    assert_true(wq->pruned);
    int moved = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_int_equal(wf->cb->index[i], idx0[i]);
        assert_int_equal(wq->cb->index[i], idx0[i]);
        assert_true(((const float *)wf->data)[i] == wf->cb->centroids[(i / (n / wf->cb->n_books)) * wf->cb->k + idx0[i]]);
        assert_true(((const int8_t *)wq->data)[i] == (int8_t)wq->cb->centroids[(i / (n / wq->cb->n_books)) * wq->cb->k + idx0[i]]);
        if (idx0[i] == 0) {
            assert_true(((const float *)wf->data)[i] == 0.0f);
            assert_int_equal(((const int8_t *)wq->data)[i], 0);
        }
    }
    /* the centroids did train */
    const tml_tensor *w0 = &m->tensors[wi];
    for (int j = 1; j < w0->cb->k; j++) moved += w0->cb->centroids[j] != wf->cb->centroids[j];
    assert_true(moved > 0);
    /* fc1 (not clustered): the pruned zeros stay */
    const tml_tensor *a = &m->tensors[tml_model_find_tensor(m, "fc1.w")];
    const tml_tensor *b = &q->tensors[tml_model_find_tensor(q, "fc1.w")];
    for (int64_t i = 0; i < tml_tensor_numel(a); i++)
        if (((const float *)a->data)[i] == 0.0f) assert_int_equal(((const int8_t *)b->data)[i], 0);
    free(idx0);
    tml_model_free(q);
    tml_model_free(f);
    tml_model_free(m);
    tml_dataset_free(cds);
    tml_samples_free(tr);
}

/* keep_best: per epoch, the fake-quantized validation accuracy and the
 * fake-quantized logits on fixed test inputs, recorded by the caller's hook. */
#define KB_EPOCHS 5
#define KB_N 32
typedef struct kb_rec {
    const float *x;
    double val[KB_EPOCHS];
    float y[KB_EPOCHS][KB_N * 10];
    int epochs;
} kb_rec;

static tml_status kb_on_epoch(void *user, tml_trainer *t, const tml_epoch_info *e)
{
    kb_rec *r = user;
    assert_true(e->epoch < KB_EPOCHS);
    r->val[e->epoch] = e->val_acc;
    r->epochs = e->epoch + 1;
    return tml_trainer_infer(t, r->x, KB_N, r->y[e->epoch]);
}

/* max |a - b| / step over n values */
static double max_steps(const float *a, const float *b, int n, float step)
{
    double d = 0.0;
    for (int i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]) / step);
    return d;
}

static void test_qat_keep_best(void **state)
{
    (void)state;
    tml_samples *tr = fmnist("train", 1400), *te = fmnist("test", KB_N);
    tml_dataset *cds = fmnist_ds("train");
    /* an untrained model and a large constant learning rate: the validation
     * accuracy jumps around, so the best epoch is not the last one */
    tml_model *m = zoo("lenet300", 4);
    float *x = inputs(m, te, 0, KB_N);
    for (int keep = 0; keep < 2; keep++) {
        kb_rec rec = {.x = x};
        tml_qat_opts o;
        tml_qat_opts_default(&o);
        o.calib.samples = 64;
        o.train.epochs = KB_EPOCHS;
        o.train.batch = 32;
        o.train.val_samples = 400;
        o.train.lr = 0.01;
        o.train.sched = TML_SCHED_CONSTANT;
        o.train.on_epoch = kb_on_epoch;
        o.train.user = &rec;
        o.keep_best = keep;
        tml_model *q = NULL;
        tml_qat_report rep;
        ok(tml_qat(m, tr, cds, &o, &q, NULL, &rep), "qat");
        assert_int_equal(rec.epochs, KB_EPOCHS);
        int best = 0;
        for (int i = 1; i < KB_EPOCHS; i++)
            if (rec.val[i] > rec.val[best]) best = i;
        fprintf(stderr, "  keep_best %d: validation", keep);
        for (int i = 0; i < KB_EPOCHS; i++) fprintf(stderr, " %.4f", rec.val[i]);
        fprintf(stderr, "; best epoch %d, kept %d\n", rep.best_epoch, rep.kept_epoch);
        assert_int_equal(rep.best_epoch, best + 1);
        assert_true(fabs(rep.val_acc - rec.val[best]) < 1e-12);
        assert_true(best + 1 < KB_EPOCHS); /* the fixture exercises a best epoch before the last */
        const int kept = keep ? best : KB_EPOCHS - 1;
        assert_int_equal(rep.kept_epoch, kept + 1);
        /* the int8 model computes the kept epoch's fake-quantized logits (within
         * one output step, as test_fake_quant_forward_matches_engine shows) and
         * not the other epoch's */
        const float step = q->tensors[q->output].q.scale[0];
        tml_engine *e = NULL;
        ok(tml_engine_new(q, KB_N, NULL, &e), "engine");
        float yq[KB_N * 10];
        ok(tml_engine_run(e, x, KB_N, yq), "run");
        const int other = keep ? KB_EPOCHS - 1 : best;
        const double dk = max_steps(yq, rec.y[kept], KB_N * 10, step), dother = max_steps(yq, rec.y[other], KB_N * 10, step);
        fprintf(stderr, "  int8 logits vs epoch %d: max %.3f steps; vs epoch %d: max %.3f steps\n", kept + 1, dk, other + 1,
                dother);
        assert_true(dk <= 1.0 + 1e-3);
        assert_true(dother > 2.0);
        tml_engine_free(e);
        tml_model_free(q);
    }
    /* without a validation split there is no best epoch to keep */
    tml_qat_opts o;
    tml_qat_opts_default(&o);
    o.calib.samples = 64;
    o.train.val_samples = 0;
    o.keep_best = 1;
    tml_model *q = NULL;
    assert_int_equal(tml_qat(m, tr, cds, &o, &q, NULL, NULL), TML_ERR_INVALID);
    assert_null(q);
    free(x);
    tml_model_free(m);
    tml_dataset_free(cds);
    tml_samples_free(tr);
    tml_samples_free(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptq_beats_nearest_on_fixture),
        cmocka_unit_test(test_adaptive_rounding_model),
        cmocka_unit_test(test_mixed_precision_is_optimal),
        cmocka_unit_test(test_lowbit_engine_fast_equals_ref),
        cmocka_unit_test(test_fake_quant_forward_matches_engine),
        cmocka_unit_test(test_qat_keeps_masks_and_codebooks),
        cmocka_unit_test(test_qat_keep_best),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
