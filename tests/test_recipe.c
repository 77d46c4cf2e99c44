/*
 * test_recipe.c - the recipe layer and what it stands on: datasets over
 * in-memory samples (a view reads what tml_samples_gather gives; a subset
 * copies), evaluation through a dataset view equal to evaluation of the same
 * samples, pruning schedules reaching their exact targets with the masks
 * kept, fine-tuning options reaching the trainer, a whole compression plan (filters, sparsity, sharing, INT8; packed
 * int4 with and without QAT as the last step, QAT's last epoch kept on request; int2 rounded to nearest with
 * every unpruned weight kept nonzero), and the
 * budget miss of the fit search on a hand-worked example.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_fit.h"
#include "tinyml/tml_recipe.h"
#include "tinyml/tml_zoo.h"

static tml_samples *load(int64_t n)
{
    tml_dataset *ds = NULL;
    assert_int_equal(tml_dataset_open("fashion-mnist", "train", &ds), TML_OK);
    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, n, &s), TML_OK);
    tml_dataset_free(ds);
    return s;
}

static void test_memory_dataset(void **state)
{
    (void)state;
    tml_samples *s = load(37);
    const int64_t idx[5] = {36, 0, 7, 7, 21};
    tml_dataset *v = NULL;
    assert_int_equal(tml_dataset_from_samples(s, idx, 5, "view", &v), TML_OK);
    assert_int_equal(tml_dataset_get_info(v)->count, 5);
    float x[5 * 784], want[5 * 784];
    int32_t y[5], wy[5];
    int got = 0;
    /* two reads of 3 + 2, then the end */
    assert_int_equal(tml_dataset_next(v, 3, x, y, &got), TML_OK);
    assert_int_equal(got, 3);
    assert_int_equal(tml_dataset_next(v, 3, x + 3 * 784, y + 3, &got), TML_OK);
    assert_int_equal(got, 2);
    assert_int_equal(tml_dataset_next(v, 3, x, y, &got), TML_OK);
    assert_int_equal(got, 0);
    tml_samples_gather(s, idx, 5, want, wy);
    assert_memory_equal(x + 3 * 784, want + 3 * 784, 2 * 784 * sizeof(float));
    assert_memory_equal(y + 3, wy + 3, 2 * sizeof(int32_t));
    assert_int_equal(tml_dataset_rewind(v), TML_OK);
    assert_int_equal(tml_dataset_next(v, 5, x, y, &got), TML_OK);
    assert_memory_equal(x, want, sizeof x);
    assert_memory_equal(y, wy, sizeof y);
    tml_dataset_free(v);
    /* the first n when idx is NULL; an index outside is refused */
    assert_int_equal(tml_dataset_from_samples(s, NULL, 4, NULL, &v), TML_OK);
    assert_int_equal(tml_dataset_get_info(v)->count, 4);
    tml_dataset_free(v);
    const int64_t bad[1] = {37};
    assert_int_equal(tml_dataset_from_samples(s, bad, 1, NULL, &v), TML_ERR_INVALID);
    /* a subset is a copy */
    tml_samples *sub = NULL;
    assert_int_equal(tml_samples_subset(s, idx, 5, &sub), TML_OK);
    const int64_t all[5] = {0, 1, 2, 3, 4};
    tml_samples_gather(sub, all, 5, x, y);
    assert_memory_equal(x, want, sizeof x);
    assert_memory_equal(y, wy, sizeof y);
    tml_samples_free(sub);
    tml_samples_free(s);
}

static void test_eval_view_equals_samples(void **state)
{
    (void)state;
    tml_samples *s = load(301);
    tml_zoo_opts zo = {.seed = 3};
    tml_model *m = NULL;
    assert_int_equal(tml_zoo_create("lenet300", &zo, &m), TML_OK);
    int64_t idx[101];
    for (int i = 0; i < 101; i++) idx[i] = (i * 7) % 301;
    tml_dataset *v = NULL;
    assert_int_equal(tml_dataset_from_samples(s, idx, 101, NULL, &v), TML_OK);
    tml_eval_opts o = {.batch = 13};
    tml_eval_result a, b;
    assert_int_equal(tml_evaluate(m, v, &o, &a), TML_OK);
    assert_int_equal(tml_evaluate_samples(m, s, idx, 101, &o, &b), TML_OK);
    assert_int_equal(a.n, 101);
    assert_int_equal(a.correct1, b.correct1);
    assert_int_equal(a.correct5, b.correct5);
    assert_true(a.loss == b.loss);
    assert_memory_equal(a.confusion, b.confusion, sizeof(int64_t) * 100);
    tml_eval_result_free(&a);
    tml_eval_result_free(&b);
    tml_dataset_free(v);
    tml_model_free(m);
    tml_samples_free(s);
}

static int64_t zeros(const tml_model *m, const char *t)
{
    const tml_tensor *w = &m->tensors[tml_model_find_tensor(m, t)];
    return tml_tensor_numel(w) - tml_tensor_nonzeros(w);
}

static void test_prune_schedules(void **state)
{
    (void)state;
    tml_samples *s = load(600);
    tml_zoo_opts zo = {.seed = 5};
    tml_model *base = NULL;
    assert_int_equal(tml_zoo_create("lenet300", &zo, &base), TML_OK);
    tml_layer_target tg[2] = {{"fc1", 0.9}, {"fc2", 0.5}};
    tml_prune_spec spec = {.n_targets = 2, .targets = tg};
    tml_finetune ft;
    tml_finetune_default(&ft);
    ft.epochs = 1;
    ft.data = s;
    ft.val_samples = 100;
    const tml_prune_schedule scheds[3] = {TML_PRUNE_ONESHOT, TML_PRUNE_ITERATIVE, TML_PRUNE_AGP};
    for (int k = 0; k < 3; k++) {
        tml_model *m = tml_model_clone(base);
        tml_prune_report rep;
        assert_int_equal(tml_recipe_prune(m, &spec, scheds[k], 3, &ft, NULL, NULL, &rep), TML_OK);
        tml_prune_report_free(&rep);
        /* exact targets (round(s * n)), kept through the fine-tuning */
        assert_int_equal(zeros(m, "fc1.w"), (int64_t)llround(0.9 * 784 * 300));
        assert_int_equal(zeros(m, "fc2.w"), (int64_t)llround(0.5 * 300 * 100));
        assert_int_equal(zeros(m, "fc3.w"), 0);
        tml_model_free(m);
    }
    /* the schedules that fine-tune need epochs; AGP needs unstructured pruning */
    tml_finetune none;
    tml_finetune_default(&none);
    assert_int_equal(tml_recipe_prune(base, &spec, TML_PRUNE_AGP, 3, &none, NULL, NULL, NULL), TML_ERR_INVALID);
    spec.structured = 1;
    assert_int_equal(tml_recipe_prune(base, &spec, TML_PRUNE_AGP, 3, &ft, NULL, NULL, NULL), TML_ERR_INVALID);
    tml_model_free(base);
    tml_samples_free(s);
}

/* Every float parameter of a and b equal (1) or not (0). */
static int same_params(const tml_model *a, const tml_model *b)
{
    for (int i = 0; i < a->n_tensors; i++) {
        const tml_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        if (x->kind != TML_TENSOR_PARAM || x->dtype != TML_DTYPE_F32) continue;
        if (memcmp(x->data, y->data, tml_tensor_nbytes(x)) != 0) return 0;
    }
    return 1;
}

/* The fine-tuning's augmentation and validation split reach the trainer:
 * tml_finetune_run with crop + flip gives the bytes of the trainer run with
 * the same options, and not those of the run without augmentation. */
static void test_finetune_augmentation(void **state)
{
    (void)state;
    tml_samples *s = load(300);
    tml_zoo_opts zo = {.seed = 7};
    tml_model *base = NULL;
    assert_int_equal(tml_zoo_create("lenet5", &zo, &base), TML_OK);
    tml_finetune ft;
    tml_finetune_default(&ft);
    ft.epochs = 1;
    ft.data = s;
    ft.val_samples = 50;
    ft.seed = 3;
    ft.aug_crop_pad = 2;
    ft.aug_flip = 1;
    tml_model *a = tml_model_clone(base), *b = tml_model_clone(base), *c = tml_model_clone(base);
    assert_int_equal(tml_finetune_run(a, &ft, NULL, 0, NULL), TML_OK);
    tml_train_opts o;
    tml_train_opts_default(&o);
    o.epochs = 1;
    o.lr = ft.lr;
    o.batch = ft.batch;
    o.seed = 3;
    o.val_samples = 50;
    o.aug_crop_pad = 2;
    o.aug_flip = 1;
    tml_trainer *t = NULL;
    assert_int_equal(tml_trainer_new(b, s, &o, &t), TML_OK);
    assert_int_equal(tml_trainer_run(t), TML_OK);
    tml_trainer_free(t);
    assert_true(same_params(a, b));
    ft.aug_crop_pad = 0;
    ft.aug_flip = 0;
    assert_int_equal(tml_finetune_run(c, &ft, NULL, 0, NULL), TML_OK);
    assert_false(same_params(a, c));
    tml_model_free(a);
    tml_model_free(b);
    tml_model_free(c);
    tml_model_free(base);
    tml_samples_free(s);
}

/* The plan tests' common setup: n training samples (also the calibration
 * data), a fresh zoo LeNet-5 of the seed, its uncompressed plan, fine-tuning
 * on the samples without a validation split. */
typedef struct plan_fixture {
    tml_samples *s;
    tml_dataset *cal;
    tml_model *m;
    tml_plan p;
    tml_finetune ft;
} plan_fixture;

static void fixture_model(plan_fixture *f, uint64_t seed)
{
    tml_zoo_opts zo = {.seed = seed};
    assert_int_equal(tml_zoo_create("lenet5", &zo, &f->m), TML_OK);
    assert_int_equal(tml_plan_init(&f->p, f->m), TML_OK);
}

static void fixture_init(plan_fixture *f, int64_t n, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->s = load(n);
    assert_int_equal(tml_dataset_from_samples(f->s, NULL, -1, NULL, &f->cal), TML_OK);
    tml_finetune_default(&f->ft);
    f->ft.data = f->s;
    f->ft.val_samples = 0;
    fixture_model(f, seed);
}

/* frees the model and plan only (another fixture_model may follow) */
static void fixture_model_free(plan_fixture *f)
{
    tml_plan_free(&f->p);
    tml_model_free(f->m);
    f->m = NULL;
}

static void fixture_free(plan_fixture *f)
{
    fixture_model_free(f);
    tml_dataset_free(f->cal);
    tml_samples_free(f->s);
}

static void test_plan_apply(void **state)
{
    (void)state;
    plan_fixture f;
    fixture_init(&f, 400, 2);
    tml_model *m = f.m;
    tml_plan p = f.p;
    assert_int_equal(p.n_layers, 4);
    tml_plan_find(&p, "conv1")->filters = 0.5;
    tml_plan_find(&p, "fc1")->sparsity = 0.9;
    tml_plan_find(&p, "fc1")->bits = 3;
    assert_null(tml_plan_find(&p, "pool1"));
    p.prune_epochs = 1;
    p.cluster_epochs = 1;
    p.agp_steps = 5;
    assert_int_equal(tml_plan_apply(m, &p, &f.ft, f.cal), TML_OK);
    assert_true(tml_model_is_quantized(m));
    int c1 = tml_model_find_node(m, "conv1");
    assert_true(c1 >= 0);
    assert_int_equal(m->tensors[m->nodes[c1].in[1]].dims[0], 10); /* 20 filters, half removed */
    int f1 = tml_model_find_node(m, "fc1");
    const tml_tensor *w = &m->tensors[m->nodes[f1].in[1]];
    int64_t n = tml_tensor_numel(w), nz = tml_tensor_nonzeros(w);
    assert_int_equal(w->dims[1], 4 * 4 * 50);
    assert_true(n - nz >= (int64_t)llround(0.9 * (double)n));
    /* 3-bit sharing: at most 8 distinct int8 values (one of them the pruned 0) */
    int seen[256] = {0}, distinct = 0;
    const int8_t *q = w->data;
    for (int64_t i = 0; i < n; i++)
        if (!seen[q[i] + 128]++) distinct++;
    assert_true(distinct <= 8);
    fixture_free(&f);
}

/* Packed int4 weights with QAT as the last step: the pruned zeros stay zero,
 * the weights stay in the 4-bit range, and the model is int8 (the same plan
 * without QAT, rounded adaptively, too; and with 2 QAT epochs and a
 * validation split, the kept best epoch's model). */
static void test_plan_qbits_qat(void **state)
{
    (void)state;
    plan_fixture f;
    fixture_init(&f, 200, 2);
    for (int qat = 0; qat <= 2; qat++) {
        if (qat) fixture_model(&f, 2);
        tml_model *m = f.m;
        tml_plan p = f.p;
        tml_plan_find(&p, "fc1")->sparsity = 0.8;
        tml_plan_find(&p, "fc1")->qbits = 4;
        p.prune_epochs = 1;
        p.agp_steps = 5;
        p.qat_epochs = qat;
        tml_finetune ft = f.ft;
        ft.val_samples = qat == 2 ? 50 : 0;
        assert_int_equal(tml_plan_apply(m, &p, &ft, f.cal), TML_OK);
        assert_true(tml_model_is_quantized(m));
        const tml_tensor *w = &m->tensors[m->nodes[tml_model_find_node(m, "fc1")].in[1]];
        assert_int_equal(w->qbits, 4);
        int64_t n = tml_tensor_numel(w), nz = tml_tensor_nonzeros(w);
        assert_true(n - nz >= (int64_t)llround(0.8 * (double)n));
        const int8_t *q = w->data;
        for (int64_t i = 0; i < n; i++) assert_true(q[i] >= -7 && q[i] <= 7);
        fixture_model_free(&f);
    }
    fixture_free(&f);
}

/* Every parameter's bytes, whatever its type (int8 weights, int32 biases). */
static int same_bytes(const tml_model *a, const tml_model *b)
{
    if (a->n_tensors != b->n_tensors) return 0;
    for (int i = 0; i < a->n_tensors; i++) {
        const tml_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        if (x->kind != TML_TENSOR_PARAM) continue;
        if (x->dtype != y->dtype || tml_tensor_nbytes(x) != tml_tensor_nbytes(y) ||
            memcmp(x->data, y->data, tml_tensor_nbytes(x)) != 0)
            return 0;
    }
    return 1;
}

static tml_status last_best_epoch(void *user, tml_trainer *t, const tml_epoch_info *e)
{
    (void)t;
    if (e->is_best) *(int *)user = e->epoch + 1;
    return TML_OK;
}

/* plan.qat_keep_last (the fit search: the answer is chosen on validation, so
 * QAT does not also keep its best epoch there): with a validation split, the
 * QAT model is the last epoch's. Both runs train alike (the same best epoch);
 * their models are the same exactly when the best epoch was the last. */
static void test_plan_qat_keep_last(void **state)
{
    (void)state;
    plan_fixture f;
    const int seed = 1; /* its best epoch on these 100 validation samples is the first */
    fixture_init(&f, 200, seed);
    tml_model *got[2] = {NULL, NULL};
    int best[2] = {0, 0};
    for (int keep_last = 0; keep_last <= 1; keep_last++) {
        if (keep_last) fixture_model(&f, seed);
        tml_plan p = f.p;
        tml_plan_find(&p, "fc1")->qbits = 4;
        p.qat_epochs = 3;
        p.qat_keep_last = keep_last;
        tml_finetune ft = f.ft;
        ft.val_samples = 100;
        ft.lr = 1e-2; /* QAT's own lr is 1e-4; this one is the (unused) fine-tuning's */
        ft.on_epoch = last_best_epoch;
        ft.user = &best[keep_last];
        assert_int_equal(tml_plan_apply(f.m, &p, &ft, f.cal), TML_OK);
        assert_true(tml_model_is_quantized(f.m));
        got[keep_last] = f.m;
        f.m = NULL;
        fixture_model_free(&f);
    }
    print_message("QAT best epoch %d of 3\n", best[0]);
    assert_int_equal(best[0], best[1]);
    assert_true(best[0] >= 1 && best[0] <= 3);
    assert_int_equal(same_bytes(got[0], got[1]), best[0] == 3);
    tml_model_free(got[0]);
    tml_model_free(got[1]);
    fixture_free(&f);
}

/* plan.keep_nonzero (the fit search's quick measure): a packed int2 layer
 * rounded to nearest keeps every unpruned weight nonzero (its flash then
 * counts them all, as adaptive rounding after fine-tuning does), while plain
 * nearest rounding zeroes many; the pruned zeros stay zero either way. */
static void test_plan_keep_nonzero(void **state)
{
    (void)state;
    plan_fixture f;
    fixture_init(&f, 300, 4);
    int64_t nz[3] = {0, 0, 0}, n = 0;
    for (int k = 0; k < 3; k++) { /* 0: float (the unpruned weights), 1: nearest, 2: nearest nonzero */
        if (k) fixture_model(&f, 4);
        tml_plan p = f.p;
        tml_plan_find(&p, "fc1")->sparsity = 0.2;
        tml_plan_find(&p, "fc1")->qbits = 2;
        p.prune_epochs = 0;
        p.float_only = k == 0;
        p.nearest = k > 0;
        p.keep_nonzero = k == 2;
        assert_int_equal(tml_plan_apply(f.m, &p, &f.ft, f.cal), TML_OK);
        const tml_tensor *w = &f.m->tensors[f.m->nodes[tml_model_find_node(f.m, "fc1")].in[1]];
        n = tml_tensor_numel(w);
        nz[k] = tml_tensor_nonzeros(w);
        if (k) {
            assert_int_equal(w->qbits, 2);
            const int8_t *q = w->data;
            for (int64_t i = 0; i < n; i++) assert_true(q[i] >= -1 && q[i] <= 1);
        }
        fixture_model_free(&f);
    }
    assert_true(nz[0] <= n - (int64_t)llround(0.2 * (double)n));
    assert_true(nz[1] < nz[0] * 9 / 10); /* ternary nearest rounding zeroes many */
    assert_int_equal(nz[2], nz[0]);
    fixture_free(&f);
}

/* plan.float_only: the plan's filters and sparsity, the model left float (the
 * fit search's tuned descent's base); a further plan applied on top of it
 * (more filters out, more sparsity, shared weights) then quantizes. */
static void test_plan_float_only(void **state)
{
    (void)state;
    plan_fixture f;
    fixture_init(&f, 200, 3);
    tml_model *m = f.m;
    tml_plan p = f.p;
    tml_plan_find(&p, "fc1")->filters = 0.5;
    tml_plan_find(&p, "fc1")->sparsity = 0.6;
    p.prune_epochs = 1;
    p.agp_steps = 5;
    p.float_only = 1;
    assert_int_equal(tml_plan_apply(m, &p, &f.ft, f.cal), TML_OK);
    assert_false(tml_model_is_quantized(m));
    const tml_tensor *w = &m->tensors[m->nodes[tml_model_find_node(m, "fc1")].in[1]];
    assert_int_equal(w->dtype, TML_DTYPE_F32);
    assert_int_equal(w->dims[0], 250); /* 500 neurons, half removed */
    int64_t n = tml_tensor_numel(w), nz = tml_tensor_nonzeros(w);
    assert_true(n - nz >= (int64_t)llround(0.6 * (double)n));
    /* on top: half of the remaining neurons, 90% sparse, 4-bit sharing, INT8 */
    tml_plan_find(&p, "fc1")->sparsity = 0.9;
    tml_plan_find(&p, "fc1")->bits = 4;
    p.prune_epochs = 0;
    p.float_only = 0;
    assert_int_equal(tml_plan_apply(m, &p, &f.ft, f.cal), TML_OK);
    assert_true(tml_model_is_quantized(m));
    w = &m->tensors[m->nodes[tml_model_find_node(m, "fc1")].in[1]];
    assert_int_equal(w->dims[0], 125);
    n = tml_tensor_numel(w);
    nz = tml_tensor_nonzeros(w);
    assert_true(n - nz >= (int64_t)llround(0.9 * (double)n));
    int seen[256] = {0}, distinct = 0;
    const int8_t *q = w->data;
    for (int64_t i = 0; i < n; i++)
        if (!seen[q[i] + 128]++) distinct++;
    assert_true(distinct <= 16);
    fixture_free(&f);
}

static void test_fit_miss(void **state)
{
    (void)state;
    tml_fit_opts o;
    tml_fit_opts_default(&o);
    o.flash = 1000;
    o.ram = 200;
    tml_fit_cost c = {.flash = 1500, .ram = 100, .instr = 80000};
    double miss[3];
    /* flash 50% over, RAM within, no latency budget */
    assert_true(fabs(tml_fit_miss(&o, &c, miss) - 0.5) < 1e-12);
    assert_true(miss[0] == 500 && miss[1] == -100 && miss[2] == 0);
    /* 80000 instructions at 80 MHz = 1 ms: 100% over a 0.5 ms budget */
    o.latency_ms = 0.5;
    assert_true(fabs(tml_fit_miss(&o, &c, miss) - 1.5) < 1e-12);
    assert_true(fabs(miss[2] - 0.5) < 1e-12);
    c.flash = 1000;
    o.latency_ms = 1;
    assert_true(tml_fit_miss(&o, &c, NULL) == 0);
}

/* Growing back (fit): the earliest step of the run from `from` backwards whose
 * flash, less what the screening showed the fitting plan saved (plus a
 * margin), fits every budget. */
static void test_fit_grow_back(void **state)
{
    (void)state;
    tml_fit_opts o;
    tml_fit_opts_default(&o);
    o.flash = 1000;
    o.ram = 200;
    /* a descent: 1600, 1300, 1150, 1080, 990 (the fitting plan) bytes */
    tml_fit_cost s[5] = {{.flash = 1600, .ram = 150}, {.flash = 1300, .ram = 150}, {.flash = 1150, .ram = 150},
                         {.flash = 1080, .ram = 150}, {.flash = 990, .ram = 150}};
    /* the fitting plan screened 200 B smaller: 1150 - 200 fits, 1300 - 200 does not */
    assert_int_equal(tml_fit_grow_back(&o, s, 3, 200, 0), 2);
    /* with a 60 B margin 1150 - 200 + 60 is over: only 1080 */
    assert_int_equal(tml_fit_grow_back(&o, s, 3, 200, 60), 3);
    /* 310 B: 1300 - 310 fits, 1600 - 310 does not */
    assert_int_equal(tml_fit_grow_back(&o, s, 3, 310, 0), 1);
    /* nothing saved, or not even the step before fits: none */
    assert_int_equal(tml_fit_grow_back(&o, s, 3, 0, 0), -1);
    assert_int_equal(tml_fit_grow_back(&o, s, 3, 50, 0), -1);
    /* a run: a step over the RAM budget ends it even if an earlier one would fit */
    s[2].ram = 250;
    assert_int_equal(tml_fit_grow_back(&o, s, 3, 310, 0), 3);
    s[2].ram = 150;
    /* the latency budget counts too */
    o.latency_ms = 1;
    o.mhz = 80;
    s[3].instr = 90000; /* 1.125 ms */
    assert_int_equal(tml_fit_grow_back(&o, s, 3, 200, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_dataset),
        cmocka_unit_test(test_eval_view_equals_samples),
        cmocka_unit_test(test_prune_schedules),
        cmocka_unit_test(test_finetune_augmentation),
        cmocka_unit_test(test_plan_apply),
        cmocka_unit_test(test_plan_qbits_qat),
        cmocka_unit_test(test_plan_qat_keep_last),
        cmocka_unit_test(test_plan_keep_nonzero),
        cmocka_unit_test(test_plan_float_only),
        cmocka_unit_test(test_fit_miss),
        cmocka_unit_test(test_fit_grow_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
