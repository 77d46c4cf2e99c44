/*
 * test_train.c - the training loop: overfitting a small batch, masks of pruned
 * weights, centroid sharing of clustered weights, determinism, resume equals
 * an uninterrupted run, distillation, batch norm statistics, bad options.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tinyml/tml_cluster.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_prune.h"
#include "tinyml/tml_train.h"
#include "tinyml/tml_zoo.h"

static tml_samples *fmnist_train(int64_t n)
{
    tml_dataset *ds = NULL;
    assert_int_equal(tml_dataset_open("fashion-mnist", "train", &ds), TML_OK);
    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, n, &s), TML_OK);
    tml_dataset_free(ds);
    return s;
}

static tml_model *zoo(const char *arch, uint64_t seed)
{
    tml_zoo_opts o = {.seed = seed};
    tml_model *m = NULL;
    assert_int_equal(tml_zoo_create(arch, &o, &m), TML_OK);
    return m;
}

static tml_train_opts quick(int epochs)
{
    tml_train_opts o;
    tml_train_opts_default(&o);
    o.epochs = epochs;
    o.batch = 32;
    o.val_samples = 0;
    o.label_smoothing = 0; /* lets the overfit test drive the loss to ~0 */
    return o;
}

static void train(tml_model *m, const tml_samples *s, const tml_train_opts *o)
{
    tml_trainer *t = NULL;
    tml_status st = tml_trainer_new(m, s, o, &t);
    if (st) fprintf(stderr, "trainer: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    st = tml_trainer_run(t);
    if (st) fprintf(stderr, "run: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    tml_trainer_free(t);
}

static uint8_t *bytes_of(const tml_model *m, size_t *len)
{
    uint8_t *b = NULL;
    tml_save_opts so = {0}; /* dense, no entropy: fast and exact */
    assert_int_equal(tml_model_write_mem(m, &so, &b, len), TML_OK);
    return b;
}

/* Training drives the loss of 32 samples close to zero. */
static void test_overfit_small_batch(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(32);
    tml_model *m = zoo("lenet5", 1);
    tml_train_opts o = quick(60);
    o.sched = TML_SCHED_CONSTANT;
    train(m, s, &o);
    tml_eval_result r;
    assert_int_equal(tml_evaluate_samples(m, s, NULL, 32, NULL, &r), TML_OK);
    fprintf(stderr, "  loss after 60 epochs of 32 samples: %.5f, accuracy %.3f\n", r.loss, r.top1);
    assert_true(r.loss < 0.02);
    assert_true(r.top1 == 1.0);
    tml_eval_result_free(&r);
    tml_model_free(m);
    tml_samples_free(s);
}

/* Pruned weights stay exactly zero and the others do move. */
static void test_masks_stay_zero(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(512);
    tml_model *m = zoo("lenet300", 2);
    tml_prune_spec ps = {.sparsity = 0.7};
    assert_int_equal(tml_prune_magnitude(m, &ps, NULL), TML_OK);
    int wi = tml_model_find_tensor(m, "fc1.w");
    int64_t n = tml_tensor_numel(&m->tensors[wi]);
    float *before = malloc(sizeof(float) * (size_t)n);
    memcpy(before, m->tensors[wi].data, sizeof(float) * (size_t)n);
    tml_train_opts o = quick(2);
    train(m, s, &o);
    const float *after = m->tensors[wi].data;
    int64_t zeros = 0, moved = 0, revived = 0;
    for (int64_t i = 0; i < n; i++) {
        if (before[i] == 0.0f) {
            zeros++;
            revived += after[i] != 0.0f;
        } else {
            moved += after[i] != before[i];
        }
    }
    fprintf(stderr, "  %lld zeros, %lld revived, %lld of %lld others moved\n", (long long)zeros, (long long)revived,
            (long long)moved, (long long)(n - zeros));
    assert_int_equal(revived, 0);
    assert_true(zeros == (int64_t)floor(0.7 * n + 0.5));
    assert_true(moved > (n - zeros) / 2);
    assert_true(m->tensors[wi].pruned);
    free(before);
    tml_model_free(m);
    tml_samples_free(s);
}

/* Clustered weights keep exactly k shared values per book through training;
 * the centroids move; pruned zeros stay on centroid 0. */
static void test_centroid_sharing(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(512);
    tml_model *m = zoo("lenet300", 3);
    tml_prune_spec ps = {.sparsity = 0.5};
    assert_int_equal(tml_prune_magnitude(m, &ps, NULL), TML_OK);
    tml_cluster_opts co;
    tml_cluster_opts_default(&co);
    co.bits = 3;
    assert_int_equal(tml_cluster(m, &co, NULL), TML_OK);
    int wi = tml_model_find_tensor(m, "fc2.w");
    tml_tensor *w = &m->tensors[wi];
    float c0[8];
    memcpy(c0, w->cb->centroids, sizeof c0);
    uint8_t *idx0 = malloc((size_t)tml_tensor_numel(w));
    memcpy(idx0, w->cb->index, (size_t)tml_tensor_numel(w));
    tml_train_opts o = quick(1);
    o.lr = 1e-3;
    train(m, s, &o);
    w = &m->tensors[wi];
    int moved = 0;
    for (int j = 1; j < 8; j++) moved += w->cb->centroids[j] != c0[j];
    assert_true(moved >= 6);
    assert_true(w->cb->centroids[0] == 0.0f);
    const float *d = w->data;
    for (int64_t i = 0; i < tml_tensor_numel(w); i++) {
        assert_int_equal(w->cb->index[i], idx0[i]); /* assignments never change */
        assert_true(d[i] == w->cb->centroids[w->cb->index[i]]);
        if (w->cb->index[i] == 0) assert_true(d[i] == 0.0f);
    }
    free(idx0);
    tml_model_free(m);
    tml_samples_free(s);
}

/* Same seed -> same bytes; another seed -> other bytes. */
static void test_determinism(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(160); /* 5 steps per run: enough to differ, cheap under ASan */
    size_t la, lb, lc;
    uint8_t *a = NULL, *b = NULL, *c = NULL;
    for (int run = 0; run < 3; run++) {
        tml_model *m = zoo("dscnn", 4); /* batch norm + dropout + depthwise */
        tml_train_opts o = quick(1);
        o.seed = run == 2 ? 99 : 7;
        o.aug_crop_pad = 2;
        o.aug_flip = 1;
        train(m, s, &o);
        if (run == 0) a = bytes_of(m, &la);
        else if (run == 1) b = bytes_of(m, &lb);
        else c = bytes_of(m, &lc);
        tml_model_free(m);
    }
    assert_true(la == lb && memcmp(a, b, la) == 0);
    assert_true(la != lc || memcmp(a, c, la) != 0);
    free(a);
    free(b);
    free(c);
    tml_samples_free(s);
}

/* Stops training at the end of the first epoch after exporting a checkpoint
 * of the model being trained, like the CLI's .last.tmf. */
typedef struct stop_ctx {
    tml_model *m;    /* the model the trainer updates */
    tml_model *ckpt; /* the checkpoint taken */
} stop_ctx;

static tml_status stop_after_first(void *user, tml_trainer *tr, const tml_epoch_info *e)
{
    (void)e;
    stop_ctx *c = user;
    c->ckpt = tml_model_clone(c->m);
    if (!c->ckpt) return TML_ERR_NOMEM;
    tml_status st = tml_trainer_export_state(tr, c->ckpt);
    if (st) return st;
    return tml_error(TML_ERR_INTERRUPTED, "stop after the first epoch");
}

/* Two epochs in one go == one epoch, checkpoint (through the file format),
 * resume, one more epoch: the same bytes. */
static void test_resume_equals_uninterrupted(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(232); /* 6 steps per epoch after the validation split */
    tml_train_opts o = quick(2);
    o.val_samples = 40;
    o.aug_crop_pad = 1;
    tml_model *full = zoo("dscnn", 5);
    train(full, s, &o);

    tml_model *part = zoo("dscnn", 5);
    stop_ctx ctx = {.m = part};
    tml_train_opts o1 = o;
    o1.on_epoch = stop_after_first;
    o1.user = &ctx;
    tml_trainer *t = NULL;
    assert_int_equal(tml_trainer_new(part, s, &o1, &t), TML_OK);
    assert_int_equal(tml_trainer_run(t), TML_ERR_INTERRUPTED);
    tml_trainer_free(t);
    assert_non_null(ctx.ckpt);
    assert_true(tml_train_has_state(ctx.ckpt));
    size_t cl;
    uint8_t *cb = NULL;
    assert_int_equal(tml_model_write_mem(ctx.ckpt, NULL, &cb, &cl), TML_OK);
    tml_model *ck2 = NULL;
    assert_int_equal(tml_model_read_mem(cb, cl, &ck2), TML_OK);
    free(cb);

    tml_model *resumed = tml_model_clone(ck2);
    assert_int_equal(tml_train_strip_state(resumed), TML_OK);
    assert_false(tml_train_has_state(resumed));
    assert_int_equal(tml_trainer_new(resumed, s, &o, &t), TML_OK);
    assert_int_equal(tml_trainer_resume(t, ck2), TML_OK);
    assert_int_equal(tml_trainer_epochs_done(t), 1);
    assert_int_equal(tml_trainer_run(t), TML_OK);
    tml_trainer_free(t);
    size_t l1, l2;
    uint8_t *b1 = bytes_of(full, &l1), *b2 = bytes_of(resumed, &l2);
    assert_true(l1 == l2 && memcmp(b1, b2, l1) == 0);
    free(b1);
    free(b2);

    /* resuming with other options is refused */
    tml_train_opts bad = o;
    bad.seed = 12345;
    assert_int_equal(tml_trainer_new(part, s, &bad, &t), TML_OK);
    assert_int_equal(tml_trainer_resume(t, ck2), TML_ERR_INVALID);
    assert_non_null(strstr(tml_last_error(), "same options"));
    tml_trainer_free(t);
    tml_model_free(full);
    tml_model_free(part);
    tml_model_free(ctx.ckpt);
    tml_model_free(ck2);
    tml_model_free(resumed);
    tml_samples_free(s);
}

/* With alpha = 1 and the student as its own teacher the distillation loss is
 * zero and so is its gradient: Adam leaves the weights exactly unchanged. */
static void test_kd_self_teacher_is_fixed_point(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(64);
    tml_model *m = zoo("lenet300", 6);
    tml_model *teacher = tml_model_clone(m);
    tml_train_opts o = quick(1);
    o.teacher = teacher;
    o.kd_alpha = 1.0;
    o.kd_temperature = 3.0;
    size_t l0, l1;
    uint8_t *b0 = bytes_of(m, &l0);
    train(m, s, &o);
    uint8_t *b1 = bytes_of(m, &l1);
    assert_true(l0 == l1 && memcmp(b0, b1, l0) == 0);
    /* with alpha = 0.5 the labels pull the student away */
    o.kd_alpha = 0.5;
    train(m, s, &o);
    free(b1);
    b1 = bytes_of(m, &l1);
    assert_true(memcmp(b0, b1, l0 < l1 ? l0 : l1) != 0);
    free(b0);
    free(b1);
    tml_model_free(teacher);
    tml_model_free(m);
    tml_samples_free(s);
}

/* Training mode updates batch-norm running statistics; frozen mode does not. */
static void test_batchnorm_statistics(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(128);
    tml_model *m = zoo("dscnn", 8);
    int mi = tml_model_find_tensor(m, "conv1_bn.mean"), vi = tml_model_find_tensor(m, "conv1_bn.var");
    tml_train_opts o = quick(1);
    o.freeze_bn = 1;
    train(m, s, &o);
    assert_true(((float *)m->tensors[mi].data)[0] == 0.0f && ((float *)m->tensors[vi].data)[0] == 1.0f);
    o.freeze_bn = 0;
    train(m, s, &o);
    assert_true(((float *)m->tensors[mi].data)[0] != 0.0f);
    assert_true(((float *)m->tensors[vi].data)[0] != 1.0f);
    tml_model_free(m);
    tml_samples_free(s);
}

static void test_bad_options(void **state)
{
    (void)state;
    tml_train_opts o;
    tml_train_opts_default(&o);
    o.lr = -0.1;
    assert_int_equal(tml_train_opts_check(&o), TML_ERR_INVALID);
    assert_non_null(strstr(tml_last_error(), "learning rate"));
    tml_train_opts_default(&o);
    o.batch = 0;
    assert_int_equal(tml_train_opts_check(&o), TML_ERR_INVALID);
    tml_train_opts_default(&o);
    o.epochs = 0;
    assert_int_equal(tml_train_opts_check(&o), TML_ERR_INVALID);
    assert_non_null(strstr(tml_last_error(), "epochs"));
    tml_train_opts_default(&o);
    o.label_smoothing = 1.0;
    assert_int_equal(tml_train_opts_check(&o), TML_ERR_INVALID);
    /* a dataset of another shape, or with more classes than outputs */
    tml_samples *s = fmnist_train(16);
    tml_zoo_opts zo = {.h = 32, .w = 32, .c = 3};
    tml_model *m = NULL;
    assert_int_equal(tml_zoo_create("resnet8", &zo, &m), TML_OK);
    tml_trainer *t = NULL;
    tml_train_opts_default(&o);
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_ERR_SHAPE);
    tml_model_free(m);
    zo = (tml_zoo_opts){.classes = 5};
    assert_int_equal(tml_zoo_create("lenet300", &zo, &m), TML_OK);
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_ERR_SHAPE);
    assert_non_null(strstr(tml_last_error(), "classes"));
    tml_model_free(m);
    tml_samples_free(s);
}

/* The training state keeps options as JSON numbers (doubles): a seed above
 * 2^53 does not survive exactly, and resuming with that same --seed must still
 * be accepted (regression: the comparison converted the stored double back to
 * an integer and refused every such checkpoint). */
static void test_resume_large_seed(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(64);
    tml_train_opts o = quick(1);
    o.seed = ((uint64_t)1 << 53) + 1;
    tml_model *m = zoo("lenet300", 3);
    tml_trainer *t = NULL;
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_OK);
    tml_model *ck = tml_model_clone(m);
    assert_int_equal(tml_trainer_export_state(t, ck), TML_OK);
    tml_trainer_free(t);
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_OK);
    tml_status st = tml_trainer_resume(t, ck);
    if (st) fprintf(stderr, "resume: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    tml_trainer_free(t);
    /* a different seed is still refused */
    o.seed = 7;
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_OK);
    assert_int_equal(tml_trainer_resume(t, ck), TML_ERR_INVALID);
    tml_trainer_free(t);
    tml_model_free(ck);
    tml_model_free(m);
    tml_samples_free(s);
}

/* A float model whose batch norm has int8 statistics (a file may say so):
 * training reads them as floats, so the trainer refuses the model instead of
 * reading past the 1-byte buffers. */
static void test_int8_bn_stats_refused(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(16);
    tml_model *m = tml_model_new();
    int32_t xd[1] = {784}, wd[2] = {10, 784}, cd[1] = {10};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 1, xd, NULL);
    int tw = tml_model_add_tensor(m, "fc.w", TML_DTYPE_F32, TML_TENSOR_PARAM, 2, wd, NULL);
    int h = tml_model_add_tensor(m, "h", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int g = tml_model_add_tensor(m, "bn.g", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, cd, NULL);
    int b = tml_model_add_tensor(m, "bn.b", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, cd, NULL);
    int mu = tml_model_add_tensor(m, "bn.m", TML_DTYPE_INT8, TML_TENSOR_PARAM, 1, cd, NULL);
    int v = tml_model_add_tensor(m, "bn.v", TML_DTYPE_INT8, TML_TENSOR_PARAM, 1, cd, NULL);
    int y = tml_model_add_tensor(m, "y", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    assert_true(tml_model_add_node(m, "fc", TML_OP_DENSE, 2, (int[]){x, tw}, h) >= 0);
    assert_true(tml_model_add_node(m, "bn", TML_OP_BATCHNORM, 5, (int[]){h, g, b, mu, v}, y) >= 0);
    m->input = x;
    m->output = y;
    assert_int_equal(tml_model_finalize(m), TML_OK);
    tml_train_opts o = quick(1);
    tml_trainer *t = NULL;
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_ERR_UNSUPPORTED);
    assert_null(t);
    o.freeze_bn = 1;
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_ERR_UNSUPPORTED);
    tml_model_free(m);
    tml_samples_free(s);
}

/* Records fc3.w after every optimizer step (the hook runs after the update). */
typedef struct snap_ctx {
    tml_model *m;
    int wi;
    int64_t n, steps;
    float *w; /* (max steps, n) */
    int64_t cap;
} snap_ctx;

static tml_status snap_hook(void *user, tml_model *m, int64_t step, int64_t total)
{
    (void)total;
    snap_ctx *c = user;
    if (step > c->cap) return TML_ERR_INVALID;
    memcpy(c->w + (step - 1) * c->n, m->tensors[c->wi].data, sizeof(float) * (size_t)c->n);
    c->steps = step;
    return TML_OK;
}

/* Weight averaging: the model ends as the mean (or EMA) of the weights after
 * each step from avg_from on, computed here from snapshots; pruned zeros stay
 * zero; the result differs from the last weights; same seed -> same bytes;
 * resume across the averaging equals an uninterrupted run; bad options fail. */
static void test_weight_avg(void **state)
{
    (void)state;
    tml_samples *s = fmnist_train(320); /* 10 steps per epoch at batch 32 */
    for (int kind = TML_AVG_EMA; kind <= TML_AVG_MEAN; kind++) {
        tml_model *plain = zoo("lenet300", 6), *avg = zoo("lenet300", 6);
        tml_prune_spec ps = {.sparsity = 0.6};
        assert_int_equal(tml_prune_magnitude(plain, &ps, NULL), TML_OK);
        assert_int_equal(tml_prune_magnitude(avg, &ps, NULL), TML_OK);
        int wi = tml_model_find_tensor(avg, "fc3.w"), w1 = tml_model_find_tensor(avg, "fc1.w");
        int64_t n = tml_tensor_numel(&avg->tensors[wi]), n1 = tml_tensor_numel(&avg->tensors[w1]);
        uint8_t *zero1 = malloc((size_t)n1);
        for (int64_t i = 0; i < n1; i++) zero1[i] = ((const float *)avg->tensors[w1].data)[i] == 0.0f;
        tml_train_opts o = quick(3);
        o.lr = 3e-3;
        train(plain, s, &o);
        snap_ctx sc = {.m = avg, .wi = wi, .n = n, .cap = 30};
        sc.w = malloc(sizeof(float) * (size_t)(n * sc.cap));
        tml_train_opts oa = o;
        oa.avg = (tml_avg)kind;
        oa.avg_decay = 0.8;
        oa.avg_from = 0.5; /* steps 16..30 (1-based) of 30 */
        oa.hook = snap_hook;
        oa.hook_every = 1;
        oa.user = &sc;
        train(avg, s, &oa);
        assert_int_equal(sc.steps, 30);
        /* the trajectory is that of the plain run: its last step is the last snapshot */
        const float *last = plain->tensors[wi].data, *got = avg->tensors[wi].data;
        assert_memory_equal(last, sc.w + 29 * n, sizeof(float) * (size_t)n);
        double maxerr = 0, maxdiff = 0;
        for (int64_t j = 0; j < n; j++) {
            double a = sc.w[15 * n + j];
            for (int k = 16; k < 30; k++)
                a = kind == TML_AVG_MEAN ? a + (sc.w[k * n + j] - a) / (double)(k - 14) : 0.8 * a + 0.2 * sc.w[k * n + j];
            maxerr = fmax(maxerr, fabs(a - got[j]));
            maxdiff = fmax(maxdiff, fabs((double)last[j] - got[j]));
        }
        fprintf(stderr, "  %s: |average - expected| <= %.2g, |average - last| up to %.3g\n",
                kind == TML_AVG_EMA ? "ema" : "mean", maxerr, maxdiff);
        assert_true(maxerr < 1e-6);
        assert_true(maxdiff > 1e-4);
        int64_t revived = 0;
        for (int64_t i = 0; i < n1; i++) revived += zero1[i] && ((const float *)avg->tensors[w1].data)[i] != 0.0f;
        assert_int_equal(revived, 0);
        assert_true(avg->tensors[w1].pruned);
        /* same seed, same bytes */
        tml_model *again = zoo("lenet300", 6);
        assert_int_equal(tml_prune_magnitude(again, &ps, NULL), TML_OK);
        tml_train_opts ob = oa;
        ob.hook = NULL;
        ob.hook_every = 0;
        ob.user = NULL;
        train(again, s, &ob);
        size_t la, lb;
        uint8_t *ba = bytes_of(avg, &la), *bb = bytes_of(again, &lb);
        assert_true(la == lb && memcmp(ba, bb, la) == 0);
        free(ba);
        free(bb);
        /* resume in the middle of the averaging (after epoch 2 of 3, from 0.5) == uninterrupted */
        if (kind == TML_AVG_EMA) {
            tml_model *part = zoo("lenet300", 6);
            assert_int_equal(tml_prune_magnitude(part, &ps, NULL), TML_OK);
            tml_train_opts o2 = ob;
            o2.epochs = 3;
            stop_ctx ctx = {.m = part};
            tml_trainer *t = NULL;
            o2.on_epoch = stop_after_first;
            o2.user = &ctx;
            /* first epoch: checkpoint; resume, stop again after the second: checkpoint 2 */
            assert_int_equal(tml_trainer_new(part, s, &o2, &t), TML_OK);
            assert_int_equal(tml_trainer_run(t), TML_ERR_INTERRUPTED);
            tml_trainer_free(t);
            tml_model *ck1 = ctx.ckpt;
            tml_model *p2 = tml_model_clone(ck1);
            assert_int_equal(tml_train_strip_state(p2), TML_OK);
            stop_ctx ctx2 = {.m = p2};
            o2.user = &ctx2;
            assert_int_equal(tml_trainer_new(p2, s, &o2, &t), TML_OK);
            assert_int_equal(tml_trainer_resume(t, ck1), TML_OK);
            assert_int_equal(tml_trainer_run(t), TML_ERR_INTERRUPTED);
            tml_trainer_free(t);
            size_t cl;
            uint8_t *cb = NULL;
            assert_int_equal(tml_model_write_mem(ctx2.ckpt, NULL, &cb, &cl), TML_OK);
            tml_model *ck2 = NULL;
            assert_int_equal(tml_model_read_mem(cb, cl, &ck2), TML_OK);
            free(cb);
            tml_model *p3 = tml_model_clone(ck2);
            assert_int_equal(tml_train_strip_state(p3), TML_OK);
            assert_int_equal(tml_trainer_new(p3, s, &ob, &t), TML_OK);
            assert_int_equal(tml_trainer_resume(t, ck2), TML_OK);
            assert_int_equal(tml_trainer_epochs_done(t), 2);
            assert_int_equal(tml_trainer_run(t), TML_OK);
            tml_trainer_free(t);
            uint8_t *b3 = bytes_of(p3, &lb), *b0 = bytes_of(again, &la);
            assert_true(la == lb && memcmp(b0, b3, la) == 0);
            free(b3);
            free(b0);
            /* a checkpoint taken while averaging but without its average is refused */
            tml_model *noavg = tml_model_clone(ck2);
            int ai = tml_model_find_tensor(noavg, "__train/fc3.w/avg");
            assert_true(ai >= 0);
            snprintf(noavg->tensors[ai].name, 8, "__gone");
            tml_model *p4 = tml_model_clone(ck2);
            assert_int_equal(tml_train_strip_state(p4), TML_OK);
            assert_int_equal(tml_trainer_new(p4, s, &ob, &t), TML_OK);
            assert_int_equal(tml_trainer_resume(t, noavg), TML_ERR_FORMAT);
            tml_trainer_free(t);
            /* nor one without an average (ck1: step 10, averaging from 15) resumed by a run that averages from step 6 */
            tml_train_opts oc = ob;
            oc.avg_from = 0.2;
            assert_int_equal(tml_trainer_new(p4, s, &oc, &t), TML_OK);
            assert_int_equal(tml_trainer_resume(t, ck1), TML_ERR_INVALID);
            assert_non_null(strstr(tml_last_error(), "holds no average"));
            tml_trainer_free(t);
            tml_model_free(p4);
            tml_model_free(noavg);
            tml_model_free(p3);
            tml_model_free(ck2);
            tml_model_free(ctx2.ckpt);
            tml_model_free(p2);
            tml_model_free(ck1);
            tml_model_free(part);
        }
        tml_model_free(again);
        free(sc.w);
        free(zero1);
        tml_model_free(plain);
        tml_model_free(avg);
    }
    /* bad options */
    tml_model *m = zoo("lenet300", 6);
    tml_trainer *t = NULL;
    tml_train_opts o = quick(1);
    o.avg = TML_AVG_EMA;
    o.avg_decay = 1.0;
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_ERR_INVALID);
    o.avg_decay = 0.9;
    o.avg_from = 1.0;
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_ERR_INVALID);
    o.avg = (tml_avg)7;
    o.avg_from = 0.5;
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_ERR_INVALID);
    tml_model_free(m);
    /* batch norm in training mode: its statistics would not match the average */
    m = zoo("dscnn", 6);
    o.avg = TML_AVG_MEAN;
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "batch norm"));
    o.freeze_bn = 1;
    assert_int_equal(tml_trainer_new(m, s, &o, &t), TML_OK);
    tml_trainer_free(t);
    tml_model_free(m);
    tml_samples_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overfit_small_batch),
        cmocka_unit_test(test_masks_stay_zero),
        cmocka_unit_test(test_centroid_sharing),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_resume_equals_uninterrupted),
        cmocka_unit_test(test_resume_large_seed),
        cmocka_unit_test(test_int8_bn_stats_refused),
        cmocka_unit_test(test_kd_self_teacher_is_fixed_point),
        cmocka_unit_test(test_batchnorm_statistics),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_weight_avg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
