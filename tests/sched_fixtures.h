/*
 * sched_fixtures.h - models and inputs shared by the memory-schedule tests
 * (test_schedule.c: the scheduler and the engine; test_schedule_export.c: the
 * exported C): quantized zoo models, quantized generated graphs (odd sizes,
 * strides, padding, residual adds), random graphs, test images and random
 * inputs.
 */
#ifndef TML_SCHED_FIXTURES_H
#define TML_SCHED_FIXTURES_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tinyml/tml_dataset.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_zoo.h"

/* Under AddressSanitizer the tests run on fewer images (the kernels are ~10x slower). */
#define SCHED_ASAN TU_ASAN

/* ---- models ---------------------------------------------------------------------------- */

static inline tml_dataset *fmnist(const char *split)
{
    tml_dataset *ds = NULL;
    tml_status st = tml_dataset_open("fashion-mnist", split, &ds);
    if (st) fprintf(stderr, "fashion-mnist: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    return ds;
}

/* a zoo model folded, calibrated on 96 training images and quantized
 * (TFLite's arithmetic when the name ends in "+tfl") */
static inline tml_model *zoo_int8(const char *name)
{
    char arch[64];
    snprintf(arch, sizeof arch, "%s", name);
    char *plus = strchr(arch, '+');
    int tfl = plus != NULL;
    if (plus) *plus = '\0';
    tml_zoo_opts zo = {.seed = 3};
    tml_model *m = NULL;
    assert_int_equal(tml_zoo_create(arch, &zo, &m), TML_OK);
    assert_int_equal(tml_fold(m, NULL), TML_OK);
    tml_dataset *ds = fmnist("train");
    tml_calib cal;
    tml_calib_opts co = {.samples = 96, .seed = 5, .batch = 32};
    assert_int_equal(tml_calibrate(m, ds, &co, &cal), TML_OK);
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    if (tfl) qo.rounding = TML_ROUNDING_TFLITE;
    assert_int_equal(tml_quantize(m, &cal, &qo), TML_OK);
    tml_calib_free(&cal);
    tml_dataset_free(ds);
    return m;
}

/* A float model quantized with ranges observed on random inputs (no dataset
 * needed, any input shape). */
static inline void quantize_random(tml_model *m, uint64_t seed)
{
    assert_int_equal(tml_fold(m, NULL), TML_OK);
    int64_t in = tml_tensor_numel(&m->tensors[m->input]);
    const int N = 8;
    float *x = malloc(sizeof(float) * (size_t)(in * N));
    assert_non_null(x);
    tu_rng r;
    tu_rng_seed(&r, seed);
    tu_fill_uniform(&r, x, (size_t)(in * N), -1.0f, 1.0f);
    tml_engine *e = NULL;
    tml_engine_opts eo = {.keep_all = 1};
    assert_int_equal(tml_engine_new(m, N, &eo, &e), TML_OK);
    int64_t out = tml_tensor_numel(&m->tensors[m->output]);
    float *y = malloc(sizeof(float) * (size_t)(out * N));
    assert_non_null(y);
    assert_int_equal(tml_engine_run(e, x, N, y), TML_OK);
    tml_calib cal = {.n_tensors = m->n_tensors, .samples = N};
    cal.stats = calloc((size_t)m->n_tensors, sizeof(tml_tensor_stats));
    assert_non_null(cal.stats);
    for (int t = 0; t < m->n_tensors; t++) {
        if (m->tensors[t].kind != TML_TENSOR_ACT) continue;
        const float *a = tml_engine_activation(e, t);
        int64_t n = tml_tensor_numel(&m->tensors[t]) * N;
        double lo = 0, hi = 0;
        for (int64_t i = 0; i < n; i++) {
            if (a[i] < lo) lo = a[i];
            if (a[i] > hi) hi = a[i];
        }
        cal.stats[t].min = lo;
        cal.stats[t].max = hi > lo ? hi : lo + 1.0;
        cal.stats[t].count = n;
    }
    tml_engine_free(e);
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    qo.method = TML_CALIB_MINMAX;
    qo.bias_correction = 0;
    tml_status st = tml_quantize(m, &cal, &qo);
    if (st) fprintf(stderr, "quantize: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    free(cal.stats);
    free(x);
    free(y);
}

static inline float *random_inputs(const tml_model *m, int n, uint64_t seed)
{
    int64_t in = tml_tensor_numel(&m->tensors[m->input]);
    float *x = malloc(sizeof(float) * (size_t)(in * n));
    assert_non_null(x);
    tu_rng r;
    tu_rng_seed(&r, seed);
    tu_fill_uniform(&r, x, (size_t)(in * n), -1.5f, 1.5f);
    return x;
}

/* The first n Fashion-MNIST test images, preprocessed for m. */
static inline float *test_images(const tml_model *m, int n)
{
    tml_dataset *ds = fmnist("test");
    tml_samples *smp = NULL;
    assert_int_equal(tml_dataset_load(ds, n, &smp), TML_OK);
    float *x = malloc(sizeof(float) * (size_t)n * 784);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    assert_true(x && lab && idx);
    for (int i = 0; i < n; i++) idx[i] = i;
    tml_samples_gather(smp, idx, n, x, lab);
    tml_preproc_apply(&m->meta.pre, (int64_t)n * 784, 1, x);
    free(lab);
    free(idx);
    tml_samples_free(smp);
    tml_dataset_free(ds);
    return x;
}

/* ---- generated graphs ---------------------------------------------------------------------- */

static const char *const graphs[] = {
    /* odd sizes, non-square kernels and strides, valid/same padding, pools */
    "{\"input\": [13, 11, 3], \"classes\": 6, \"layers\": ["
    " {\"type\": \"conv2d\", \"filters\": 5, \"kernel\": [3, 5], \"stride\": [1, 2], \"padding\": \"same\", \"act\": \"relu\"},"
    " {\"type\": \"maxpool\", \"size\": 3, \"stride\": 2, \"padding\": \"same\"},"
    " {\"type\": \"conv2d\", \"filters\": 7, \"kernel\": 2, \"stride\": 1, \"padding\": \"valid\", \"act\": \"relu6\"},"
    " {\"type\": \"avgpool\", \"size\": 2, \"stride\": 1, \"padding\": \"valid\"},"
    " {\"type\": \"flatten\"}, {\"type\": \"dense\", \"units\": 6}]}",
    /* depthwise with multiplier and stride 3, standalone activations, global pool */
    "{\"input\": [17, 9, 2], \"classes\": 4, \"layers\": ["
    " {\"type\": \"depthwise_conv2d\", \"multiplier\": 3, \"kernel\": 3, \"stride\": 1, \"padding\": \"same\"},"
    " {\"type\": \"relu\"},"
    " {\"type\": \"depthwise_conv2d\", \"kernel\": 5, \"stride\": 3, \"padding\": \"same\", \"act\": \"relu\"},"
    " {\"type\": \"conv2d\", \"filters\": 9, \"kernel\": 1, \"padding\": \"valid\"},"
    " {\"type\": \"relu6\"},"
    " {\"type\": \"depthwise_conv2d\", \"kernel\": 3, \"stride\": 1, \"padding\": \"valid\", \"act\": \"relu\"},"
    " {\"type\": \"global_avgpool\"}, {\"type\": \"dense\", \"units\": 4}]}",
    /* residual blocks: identity and projected (stride 2), nested, a relu after the add */
    "{\"input\": [15, 15, 4], \"classes\": 3, \"layers\": ["
    " {\"type\": \"conv2d\", \"filters\": 6, \"kernel\": 2, \"padding\": \"valid\", \"act\": \"relu\"},"
    " {\"type\": \"residual\", \"act\": \"relu\", \"layers\": ["
    "   {\"type\": \"conv2d\", \"filters\": 6, \"kernel\": 3, \"padding\": \"same\", \"act\": \"relu\"},"
    "   {\"type\": \"residual\", \"layers\": [{\"type\": \"depthwise_conv2d\", \"kernel\": 3, \"padding\": \"same\"}]},"
    "   {\"type\": \"conv2d\", \"filters\": 6, \"kernel\": 3, \"padding\": \"same\"}]},"
    " {\"type\": \"residual\", \"layers\": ["
    "   {\"type\": \"conv2d\", \"filters\": 10, \"kernel\": 3, \"stride\": 2, \"padding\": \"same\", \"act\": \"relu\"},"
    "   {\"type\": \"conv2d\", \"filters\": 10, \"kernel\": 3, \"padding\": \"same\"}]},"
    " {\"type\": \"relu\"},"
    " {\"type\": \"maxpool\", \"size\": 2},"
    " {\"type\": \"flatten\"}, {\"type\": \"dense\", \"units\": 3}]}",
    /* a growing pointwise and a shrinking one (in-place backward / forward), a 1-column image */
    "{\"input\": [21, 1, 3], \"classes\": 2, \"layers\": ["
    " {\"type\": \"conv2d\", \"filters\": 12, \"kernel\": 1, \"padding\": \"valid\", \"act\": \"relu\"},"
    " {\"type\": \"conv2d\", \"filters\": 5, \"kernel\": [3, 1], \"stride\": [2, 1], \"padding\": \"same\", \"act\": \"relu\"},"
    " {\"type\": \"conv2d\", \"filters\": 5, \"kernel\": 1, \"padding\": \"valid\"},"
    " {\"type\": \"avgpool\", \"size\": [3, 1], \"stride\": [1, 1], \"padding\": \"same\"},"
    " {\"type\": \"global_avgpool\"}, {\"type\": \"dense\", \"units\": 2}]}",
};

/* ---- random graphs (a generator: tests draw many) ------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t left;
} jbuf;

static inline void jput(jbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p, b->left, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < b->left);
    b->p += n;
    b->left -= (size_t)n;
}

static const char *const rand_acts[] = {"none", "relu", "relu6"};

/* One window layer (conv, depthwise or pool) of random kernel, stride and
 * padding; *h, *w, *c follow the shape (valid padding only where it fits). */
static inline void rand_window(jbuf *b, tml_rng *r, int *h, int *w, int *c, int in_residual)
{
    int kind = (int)tml_rng_below(r, in_residual ? 2 : 4);
    int kh = 1 + (int)tml_rng_below(r, 4), kw = tml_rng_below(r, 3) ? kh : 1 + (int)tml_rng_below(r, 4);
    int sh = tml_rng_below(r, 3) ? 1 : 2 + (int)tml_rng_below(r, 2), sw = tml_rng_below(r, 2) ? sh : 1 + (int)tml_rng_below(r, 2);
    int same = in_residual || tml_rng_below(r, 2) || kh > *h || kw > *w;
    if (kind == 1) { /* depthwise: square */
        kw = kh;
        sw = sh;
        same = same || kh > *w;
    }
    if (in_residual) sh = sw = 1;
    const char *pad = same ? "same" : "valid";
    if (kind == 0) {
        int f = 1 + (int)tml_rng_below(r, 12);
        jput(b, "{\"type\": \"conv2d\", \"filters\": %d, \"kernel\": [%d, %d], \"stride\": [%d, %d], \"padding\": \"%s\", \"act\": \"%s\"}",
             in_residual ? *c : f, kh, kw, sh, sw, pad, rand_acts[tml_rng_below(r, 3)]);
        if (!in_residual) *c = f;
    } else if (kind == 1) {
        int mult = in_residual || tml_rng_below(r, 3) ? 1 : 2;
        jput(b, "{\"type\": \"depthwise_conv2d\", \"multiplier\": %d, \"kernel\": %d, \"stride\": %d, \"padding\": \"%s\", \"act\": \"%s\"}",
             mult, kh, sh, pad, rand_acts[tml_rng_below(r, 3)]);
        *c *= mult;
        kw = kh;
        sw = sh;
    } else {
        int size = 1 + (int)tml_rng_below(r, 3), st = 1 + (int)tml_rng_below(r, 2);
        same = tml_rng_below(r, 2) || size > *h || size > *w;
        jput(b, "{\"type\": \"%s\", \"size\": %d, \"stride\": %d, \"padding\": \"%s\"}", kind == 2 ? "maxpool" : "avgpool",
             size, st, same ? "same" : "valid");
        kh = kw = size;
        sh = sw = st;
    }
    if (same) {
        *h = (*h + sh - 1) / sh;
        *w = (*w + sw - 1) / sw;
    } else {
        *h = (*h - kh) / sh + 1;
        *w = (*w - kw) / sw + 1;
    }
}

/* A random image graph: window layers, standalone activations, residual
 * blocks (identity, or projected when the first layer has stride 2), then a
 * global average pool or flatten and a dense head. */
static inline void rand_graph(tml_rng *r, char *out, size_t cap)
{
    jbuf b = {out, cap};
    int h = 3 + (int)tml_rng_below(r, 20), w = 1 + (int)tml_rng_below(r, 20), c = 1 + (int)tml_rng_below(r, 5);
    int classes = 2 + (int)tml_rng_below(r, 5);
    jput(&b, "{\"input\": [%d, %d, %d], \"classes\": %d, \"layers\": [", h, w, c, classes);
    int n = 2 + (int)tml_rng_below(r, 6);
    for (int i = 0; i < n && h > 1; i++) {
        int what = (int)tml_rng_below(r, 8);
        if (what == 0) {
            jput(&b, "{\"type\": \"%s\"}, ", tml_rng_below(r, 2) ? "relu" : "relu6");
        } else if (what == 1) {
            /* a residual block: one to three same-shape layers after an optional stride-2 conv */
            jput(&b, "{\"type\": \"residual\", \"act\": \"%s\", \"layers\": [", rand_acts[tml_rng_below(r, 2)]);
            if (tml_rng_below(r, 3) == 0 && h >= 2) {
                int f = 1 + (int)tml_rng_below(r, 10);
                jput(&b, "{\"type\": \"conv2d\", \"filters\": %d, \"kernel\": 3, \"stride\": 2, \"padding\": \"same\", \"act\": \"relu\"}, ", f);
                h = (h + 1) / 2;
                w = (w + 1) / 2;
                c = f;
            }
            int m = 1 + (int)tml_rng_below(r, 3);
            for (int k = 0; k < m; k++) {
                rand_window(&b, r, &h, &w, &c, 1);
                jput(&b, k + 1 < m ? ", " : "");
            }
            jput(&b, "]}, ");
        } else {
            rand_window(&b, r, &h, &w, &c, 0);
            jput(&b, ", ");
        }
    }
    jput(&b, "{\"type\": \"%s\"}, {\"type\": \"dense\", \"units\": %d}]}", tml_rng_below(r, 2) ? "global_avgpool" : "flatten",
         classes);
}

/* The random graph of a seed, built and quantized (NULL: its shapes do not work out). */
static inline tml_model *rand_model(uint64_t seed, char *spec, size_t cap)
{
    tml_rng r;
    tml_rng_seed(&r, seed);
    rand_graph(&r, spec, cap);
    tml_zoo_opts zo = {.seed = seed};
    tml_model *m = NULL;
    if (tml_zoo_from_json(spec, &zo, &m) != TML_OK) return NULL;
    quantize_random(m, 1000 + seed);
    return m;
}

#endif
