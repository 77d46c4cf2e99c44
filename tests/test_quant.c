/*
 * test_quant.c - calibration range selection on hand-made histograms,
 * quantization parameters, the quantizer on real models (int8 engine fast ==
 * reference exactly; int8 output agrees with an independent float
 * fake-quantized simulation), and the errors of the quantization API.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tinyml/tml_cluster.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_prune.h"
#include "tinyml/tml_ops.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_zoo.h"

static tml_tensor_stats make_stats(double lo, double hi)
{
    tml_tensor_stats s = {.min = lo, .max = hi, .n_chan = 1};
    s.hist = calloc(TML_CALIB_BINS, sizeof(double));
    return s;
}

static double bin_w(const tml_tensor_stats *s) { return (s->max - s->min) / TML_CALIB_BINS; }

static void test_qparams(void **state)
{
    (void)state;
    float s;
    int32_t zp;
    tml_choose_qparams(0.0, 25.5, &s, &zp);
    assert_true(fabsf(s - 0.1f) < 1e-7f);
    assert_int_equal(zp, -128);
    tml_choose_qparams(-25.5, 0.0, &s, &zp);
    assert_int_equal(zp, 127);
    /* [-1, 1]: zero point -128 + 127.5 = -0.5 rounds away from zero to -1 */
    tml_choose_qparams(-1.0, 1.0, &s, &zp);
    assert_true(fabsf(s - 2.0f / 255.0f) < 1e-7f);
    assert_int_equal(zp, -1);
    /* a positive-only range still includes zero */
    tml_choose_qparams(2.0, 4.0, &s, &zp);
    assert_int_equal(zp, -128);
    assert_true(fabsf(s - 4.0f / 255.0f) < 1e-7f);
    /* an all-zero tensor gets a tiny positive scale, not 0 or NaN */
    tml_choose_qparams(0.0, 0.0, &s, &zp);
    assert_true(s > 0 && isfinite(s));
}

/* Uniform data over [0, 10]: every method keeps (nearly) the full range,
 * because clipping a uniform distribution only adds error. */
static void test_calib_uniform(void **state)
{
    (void)state;
    tml_tensor_stats s = make_stats(0.0, 10.0);
    for (int b = 0; b < TML_CALIB_BINS; b++) s.hist[b] = 1000;
    double lo, hi;
    assert_int_equal(tml_calib_range(&s, TML_CALIB_MINMAX, 0, &lo, &hi), TML_OK);
    assert_true(lo == 0.0 && hi == 10.0);
    assert_int_equal(tml_calib_range(&s, TML_CALIB_PERCENTILE, 99.0, &lo, &hi), TML_OK);
    assert_true(fabs(hi - 9.9) <= bin_w(&s)); /* the 99th percentile of U(0,10) */
    assert_true(lo == 0.0);
    assert_int_equal(tml_calib_range(&s, TML_CALIB_ENTROPY, 0, &lo, &hi), TML_OK);
    assert_true(hi >= 9.5);
    assert_int_equal(tml_calib_range(&s, TML_CALIB_MSE, 0, &lo, &hi), TML_OK);
    assert_true(hi >= 9.5);
    free(s.hist);
}

/* Almost everything (~1e10 values) in [0, 2] plus one outlier at 100: min/max
 * is ruined by the outlier, the other methods clip it away. (With a much
 * smaller bulk, MSE rightly keeps more range: clipping one value costs its
 * squared distance, which then outweighs the rounding error of the bulk.)
 * The narrowest candidate is 256 bins (one per int8 level) = 12.5 here. */
static void test_calib_outlier(void **state)
{
    (void)state;
    tml_tensor_stats s = make_stats(0.0, 100.0);
    int top = (int)(2.0 / bin_w(&s)); /* bins covering [0, 2] */
    for (int b = 0; b < top; b++) s.hist[b] = 1e9 * (top - b) / top; /* decreasing density */
    s.hist[TML_CALIB_BINS - 1] = 1;
    double lo, hi;
    tml_calib_range(&s, TML_CALIB_MINMAX, 0, &lo, &hi);
    assert_true(hi == 100.0);
    tml_calib_range(&s, TML_CALIB_PERCENTILE, 99.99, &lo, &hi);
    assert_true(hi <= 2.0 + bin_w(&s));
    tml_calib_range(&s, TML_CALIB_MSE, 0, &lo, &hi);
    fprintf(stderr, "  mse clip %.3f\n", hi);
    assert_true(hi < 13.0);
    tml_calib_range(&s, TML_CALIB_ENTROPY, 0, &lo, &hi);
    fprintf(stderr, "  entropy clip %.3f\n", hi);
    assert_true(hi < 30.0);
    /* every range keeps zero inside */
    assert_true(lo <= 0.0 && hi >= 0.0);
    free(s.hist);
}

/* Two-sided data: symmetric Laplace-like mass around 0 with long tails; the
 * chosen range shrinks both ends and stays around zero. */
static void test_calib_signed(void **state)
{
    (void)state;
    tml_tensor_stats s = make_stats(-50.0, 50.0);
    for (int b = 0; b < TML_CALIB_BINS; b++) {
        double v = s.min + (b + 0.5) * bin_w(&s);
        s.hist[b] = floor(1e6 * exp(-fabs(v)));
    }
    s.hist[0] = s.hist[TML_CALIB_BINS - 1] = 1; /* the extremes were seen once */
    double lo, hi;
    tml_calib_range(&s, TML_CALIB_MINMAX, 0, &lo, &hi);
    assert_true(lo == -50.0 && hi == 50.0);
    const tml_calib_method ms[3] = {TML_CALIB_PERCENTILE, TML_CALIB_ENTROPY, TML_CALIB_MSE};
    for (int i = 0; i < 3; i++) {
        tml_calib_range(&s, ms[i], 99.99, &lo, &hi);
        fprintf(stderr, "  %s: [%.2f, %.2f]\n", tml_calib_method_name(ms[i]), lo, hi);
        assert_true(lo < -2.0 && lo > -30.0);
        assert_true(hi > 2.0 && hi < 30.0);
    }
    free(s.hist);
}

/* Post-ReLU data: half the values exactly 0, the rest decaying over [0, 10].
 * The zeros are exact in any range containing 0, so they must not pull the
 * entropy / MSE range in: with them in the first histogram bin, KL preferred
 * the narrowest candidate (1/8 of the range) and wrecked ReLU networks. */
static void test_calib_relu_zero_spike(void **state)
{
    (void)state;
    tml_tensor_stats s = make_stats(0.0, 10.0);
    double total = 0;
    for (int b = 0; b < TML_CALIB_BINS; b++) {
        double v = (b + 0.5) * bin_w(&s);
        s.hist[b] = floor(1e6 * exp(-v));
        total += s.hist[b];
    }
    s.zeros = total;
    double lo, hi;
    tml_calib_range(&s, TML_CALIB_ENTROPY, 0, &lo, &hi);
    fprintf(stderr, "  entropy with zero spike: [%.3f, %.3f]\n", lo, hi);
    assert_true(hi > 4.0);
    tml_calib_range(&s, TML_CALIB_MSE, 0, &lo, &hi);
    fprintf(stderr, "  mse with zero spike: [%.3f, %.3f]\n", lo, hi);
    assert_true(hi > 4.0);
    /* percentiles do count the zeros: the median of all values is 0 */
    tml_calib_range(&s, TML_CALIB_PERCENTILE, 50.0, &lo, &hi);
    assert_true(hi < 0.01);
    free(s.hist);
}

static void test_method_parse(void **state)
{
    (void)state;
    tml_calib_method m;
    double p;
    assert_int_equal(tml_calib_method_parse("percentile:99.9", &m, &p), TML_OK);
    assert_int_equal(m, TML_CALIB_PERCENTILE);
    assert_true(p == 99.9);
    assert_int_equal(tml_calib_method_parse("entropy", &m, &p), TML_OK);
    assert_int_equal(tml_calib_method_parse("percentile:30", &m, &p), TML_ERR_INVALID);
    assert_int_equal(tml_calib_method_parse("magic", &m, &p), TML_ERR_INVALID);
}

/* ---- whole-model tests --------------------------------------------------------------- */

/* a zoo model whose batch norms have non-trivial statistics, so folding matters */
static tml_model *trained_like(const char *arch) { return tu_zoo_model(arch, 3); }

static tml_model *quantized(const char *arch, tml_calib_method method, int per_tensor, tml_model **folded)
{
    tml_model *m = trained_like(arch);
    assert_int_equal(tml_fold(m, NULL), TML_OK);
    tml_dataset *ds = tu_fmnist("train");
    tml_calib cal;
    tml_calib_opts co = {.samples = 96, .seed = 5, .batch = 32};
    assert_int_equal(tml_calibrate(m, ds, &co, &cal), TML_OK);
    assert_int_equal(cal.samples, 96);
    if (folded) *folded = tml_model_clone(m);
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    qo.method = method;
    qo.per_tensor = per_tensor;
    assert_int_equal(tml_quantize(m, &cal, &qo), TML_OK);
    tml_calib_free(&cal);
    tml_dataset_free(ds);
    return m;
}

/* calib_opts.ranges_only: one pass (min/max, no histograms); the same ranges
 * as both passes, and the same INT8 model with min/max ranges. */
static void test_calib_ranges_only(void **state)
{
    (void)state;
    tml_model *m = trained_like("resnet8");
    assert_int_equal(tml_fold(m, NULL), TML_OK);
    tml_model *m2 = tml_model_clone(m);
    assert_non_null(m2);
    tml_dataset *ds = tu_fmnist("train");
    tml_calib a, b;
    tml_calib_opts co = {.samples = 64, .seed = 5, .batch = 32};
    assert_int_equal(tml_calibrate(m, ds, &co, &a), TML_OK);
    co.ranges_only = 1;
    assert_int_equal(tml_calibrate(m, ds, &co, &b), TML_OK);
    int acts = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        if (m->tensors[t].kind != TML_TENSOR_ACT) continue;
        acts++;
        assert_true(a.stats[t].min == b.stats[t].min && a.stats[t].max == b.stats[t].max);
        assert_int_equal(a.stats[t].count, b.stats[t].count);
        double ha = 0, hb = 0;
        for (int k = 0; k < TML_CALIB_BINS; k++) {
            ha += a.stats[t].hist[k];
            hb += b.stats[t].hist[k];
        }
        assert_true(ha + a.stats[t].zeros > 0); /* two passes: a histogram */
        assert_true(hb == 0 && b.stats[t].zeros == 0); /* one: none */
    }
    assert_true(acts > 5);
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    assert_int_equal(tml_quantize(m, &a, &qo), TML_OK);
    assert_int_equal(tml_quantize(m2, &b, &qo), TML_OK);
    assert_int_equal(m->n_tensors, m2->n_tensors);
    for (int t = 0; t < m->n_tensors; t++) {
        const tml_tensor *x = &m->tensors[t], *y = &m2->tensors[t];
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->q.n, y->q.n);
        if (x->q.n) {
            assert_memory_equal(x->q.scale, y->q.scale, sizeof(float) * (size_t)x->q.n);
            assert_memory_equal(x->q.zero_point, y->q.zero_point, sizeof(int32_t) * (size_t)x->q.n);
        }
        if (x->data) assert_memory_equal(x->data, y->data, tml_tensor_nbytes(x));
    }
    tml_calib_free(&a);
    tml_calib_free(&b);
    tml_dataset_free(ds);
    tml_model_free(m);
    tml_model_free(m2);
}

/* The fast int8 kernels give exactly the reference kernels' bytes on every
 * zoo model, for every calibration method. */
static void test_int8_engine_fast_equals_ref(void **state)
{
    (void)state;
    const char *archs[] = {"lenet300", "lenet5", "dscnn", "mobilenet-tiny", "resnet8"};
    const tml_calib_method methods[] = {TML_CALIB_MINMAX, TML_CALIB_ENTROPY, TML_CALIB_MSE, TML_CALIB_PERCENTILE};
    tml_dataset *ds = tu_fmnist("test");
    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, 17, &s), TML_OK);
    float *x = malloc(sizeof(float) * 17 * 784);
    int32_t lab[17];
    int64_t idx[17];
    for (int i = 0; i < 17; i++) idx[i] = i;
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
        tml_model *q = quantized(archs[a], methods[a % 4], a == 1, NULL);
        tml_samples_gather(s, idx, 17, x, lab);
        tml_preproc_apply(&q->meta.pre, 17 * 784, 1, x);
        float yf[170], yr[170];
        tml_engine *ef, *er;
        tml_engine_opts fo = {0}, ro = {.use_ref = 1};
        assert_int_equal(tml_engine_new(q, 17, &fo, &ef), TML_OK);
        assert_int_equal(tml_engine_new(q, 17, &ro, &er), TML_OK);
        assert_int_equal(tml_engine_run(ef, x, 17, yf), TML_OK);
        assert_int_equal(tml_engine_run(er, x, 17, yr), TML_OK);
        fprintf(stderr, "  %s (%s%s)\n", archs[a], tml_calib_method_name(methods[a % 4]), a == 1 ? ", per-tensor" : "");
        TU_ASSERT_CLOSE(yf, yr, 170, 0.0f); /* dequantized from identical int8 */
        tml_engine_free(ef);
        tml_engine_free(er);
        tml_model_free(q);
    }
    free(x);
    tml_samples_free(s);
    tml_dataset_free(ds);
}

/* Fake quantization in float: a value on the int8 grid of tensor t. */
static void fake_quant(const tml_tensor *t, float *v, int64_t n)
{
    float s = t->q.scale[0];
    int32_t zp = t->q.zero_point[0];
    for (int64_t i = 0; i < n; i++) {
        float q = nearbyintf(v[i] / s) + (float)zp;
        q = q < -128 ? -128 : (q > 127 ? 127 : q);
        v[i] = s * (q - (float)zp);
    }
}

/* An independent simulation of an int8 lenet model in float: dequantized
 * weights and biases, float reference kernels, every activation rounded to its
 * int8 grid. The integer engine must agree with it to within a couple of
 * quantization steps (the fixed-point requantization rounds once, the
 * simulation once per op) and on nearly every top-1 decision. */
static void test_int8_agrees_with_fake_quant(void **state)
{
    (void)state;
    const char *archs[] = {"lenet300", "lenet5"};
    for (int a = 0; a < 2; a++) {
        tml_model *q = quantized(archs[a], TML_CALIB_MINMAX, 0, NULL);
        const int n = 64;
        tml_dataset *ds = tu_fmnist("test");
        float *x = malloc(sizeof(float) * n * 784);
        int32_t lab[64];
        int got;
        assert_int_equal(tml_dataset_next(ds, n, x, lab, &got), TML_OK);
        tml_preproc_apply(&q->meta.pre, n * 784, 1, x);
        /* simulation buffers per tensor */
        float **buf = calloc((size_t)q->n_tensors, sizeof(float *));
        for (int t = 0; t < q->n_tensors; t++) {
            const tml_tensor *tt = &q->tensors[t];
            int64_t cnt = tml_tensor_numel(tt) * (tt->kind == TML_TENSOR_ACT ? n : 1);
            buf[t] = malloc(sizeof(float) * (size_t)cnt);
            if (tt->kind != TML_TENSOR_PARAM || tt->dtype == TML_DTYPE_INT32) continue;
            for (int64_t i = 0; i < cnt; i++) {
                int axis = tt->q.axis;
                int64_t ch = axis < 0 ? 0 : (axis == 0 ? i / (cnt / tt->dims[0]) : i % tt->dims[axis]);
                double sc = tt->q.scale[ch];
                double v = tt->dtype == TML_DTYPE_INT8 ? ((int8_t *)tt->data)[i] : ((int32_t *)tt->data)[i];
                buf[t][i] = (float)(sc * v);
            }
        }
        /* int32 biases: scale = input scale x weight scale of their node */
        for (int i = 0; i < q->n_nodes; i++) {
            const tml_node *nd = &q->nodes[i];
            if (nd->n_in < 3 || nd->in[2] < 0) continue;
            const tml_tensor *bt = &q->tensors[nd->in[2]], *wt = &q->tensors[nd->in[1]];
            float sx = q->tensors[nd->in[0]].q.scale[0];
            for (int64_t c = 0; c < tml_tensor_numel(bt); c++)
                buf[nd->in[2]][c] = (float)((double)sx * wt->q.scale[wt->q.n == 1 ? 0 : c] * ((int32_t *)bt->data)[c]);
        }
        memcpy(buf[q->input], x, sizeof(float) * n * 784);
        fake_quant(&q->tensors[q->input], buf[q->input], n * 784);
        for (int i = 0; i < q->n_nodes; i++) {
            const tml_node *nd = &q->nodes[i];
            const float *in = buf[nd->in[0]];
            float *out = buf[nd->out];
            int64_t cnt = n * tml_tensor_numel(&q->tensors[nd->out]);
            tml_window w;
            switch (nd->op) {
            case TML_OP_CONV2D:
                tml_window_from_node(q, nd, n, &w);
                tml_conv2d_f32_ref(&w, in, buf[nd->in[1]], nd->n_in > 2 ? buf[nd->in[2]] : NULL, out);
                break;
            case TML_OP_DENSE: {
                const tml_tensor *wt = &q->tensors[nd->in[1]];
                tml_dense_f32_ref(n, wt->dims[1], wt->dims[0], in, buf[nd->in[1]], buf[nd->in[2]], nd->act, out);
                break;
            }
            case TML_OP_MAXPOOL:
                tml_window_from_node(q, nd, n, &w);
                tml_maxpool_f32_ref(&w, in, out);
                break;
            case TML_OP_RESHAPE: memcpy(out, in, sizeof(float) * (size_t)cnt); break;
            default: fail_msg("unexpected op %s", tml_op_name(nd->op));
            }
            fake_quant(&q->tensors[nd->out], out, cnt);
        }
        float y[640];
        tml_engine *e;
        assert_int_equal(tml_engine_new(q, n, NULL, &e), TML_OK);
        assert_int_equal(tml_engine_run(e, x, n, y), TML_OK);
        const float *ys = buf[q->output];
        float step = q->tensors[q->output].q.scale[0];
        int agree = 0, far = 0;
        for (int i = 0; i < n; i++) {
            int bq = 0, bs = 0;
            for (int j = 0; j < 10; j++) {
                if (y[i * 10 + j] > y[i * 10 + bq]) bq = j;
                if (ys[i * 10 + j] > ys[i * 10 + bs]) bs = j;
                far += fabsf(y[i * 10 + j] - ys[i * 10 + j]) > 3.0f * step;
            }
            agree += bq == bs;
        }
        fprintf(stderr, "  %s: top-1 agreement %d/%d, outputs > 3 steps apart: %d/%d\n", archs[a], agree, n, far, n * 10);
        assert_true(agree >= n - 2);
        assert_true(far <= n * 10 / 50);
        for (int t = 0; t < q->n_tensors; t++) free(buf[t]);
        free(buf);
        free(x);
        tml_engine_free(e);
        tml_dataset_free(ds);
        tml_model_free(q);
    }
}

/* Per-channel weight scales are max|w| / 127 of each output channel, the
 * largest weight of each channel maps to +-127, biases to round(b / (sx sw)). */
static void test_weight_and_bias_quantization(void **state)
{
    (void)state;
    tml_model *fm = NULL;
    tml_model *q = quantized("lenet5", TML_CALIB_MINMAX, 0, &fm);
    int wi = tml_model_find_tensor(q, "conv2.w"), bi = tml_model_find_tensor(q, "conv2.b");
    int fwi = tml_model_find_tensor(fm, "conv2.w"), fbi = tml_model_find_tensor(fm, "conv2.b");
    const tml_tensor *w = &q->tensors[wi], *fw = &fm->tensors[fwi];
    assert_int_equal(w->dtype, TML_DTYPE_INT8);
    assert_int_equal(w->q.n, 50);
    assert_int_equal(w->q.axis, 0);
    int64_t per = tml_tensor_numel(w) / 50;
    for (int c = 0; c < 50; c++) {
        float mx = 0;
        int qmx = 0;
        for (int64_t i = 0; i < per; i++) {
            float v = fabsf(((float *)fw->data)[c * per + i]);
            if (v > mx) mx = v;
            int qa = abs(((int8_t *)w->data)[c * per + i]);
            if (qa > qmx) qmx = qa;
        }
        assert_true(fabsf(w->q.scale[c] - mx / 127.0f) <= 1e-6f * mx);
        assert_int_equal(qmx, 127);
    }
    const tml_tensor *b = &q->tensors[bi];
    float sx = q->tensors[q->nodes[tml_model_find_node(q, "conv2")].in[0]].q.scale[0];
    for (int c = 0; c < 50; c++) {
        double want = nearbyint(((float *)fm->tensors[fbi].data)[c] / ((double)sx * w->q.scale[c]));
        assert_true(((int32_t *)b->data)[c] == (int32_t)want);
    }
    /* the bias scale is implied (input scale x weight scale), not stored */
    assert_int_equal(b->dtype, TML_DTYPE_INT32);
    assert_int_equal(b->q.n, 0);
    tml_model_free(fm);
    tml_model_free(q);
}

/* Count-weighted squared rounding error of a codebook on the int8 grid of
 * scale s (the criterion the quantizer minimizes for shared codebooks). */
static double cb_err(const float *cent, const double *uses, int k, double s)
{
    double e = 0;
    for (int j = 0; j < k; j++) {
        double q = nearbyint(cent[j] / s);
        if (q > 127) q = 127;
        if (q < -127) q = -127;
        e += uses[j] * (cent[j] - q * s) * (cent[j] - q * s);
    }
    return e;
}

/* A pruned model with one shared codebook per layer: the int8 weights are the
 * codebook's codes, zeros stay zero, and the chosen per-tensor scale rounds
 * the centroids (weighted by use) no worse than the max-abs scale, strictly
 * better on most layers (an independent recomputation of the criterion). */
static void test_clustered_scale_search(void **state)
{
    (void)state;
    tml_model *m = trained_like("lenet5");
    tml_prune_spec ps = {.sparsity = 0.8};
    assert_int_equal(tml_prune_magnitude(m, &ps, NULL), TML_OK);
    tml_cluster_opts co;
    tml_cluster_opts_default(&co);
    co.bits = 4;
    tml_cluster_report rep;
    assert_int_equal(tml_cluster(m, &co, &rep), TML_OK);
    tml_cluster_report_free(&rep);
    assert_int_equal(tml_fold(m, NULL), TML_OK);
    tml_model *fm = tml_model_clone(m);
    tml_dataset *ds = tu_fmnist("train");
    tml_calib cal;
    tml_calib_opts cal_o = {.samples = 32, .seed = 5, .batch = 32};
    assert_int_equal(tml_calibrate(m, ds, &cal_o, &cal), TML_OK);
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    assert_int_equal(tml_quantize(m, &cal, &qo), TML_OK);
    const char *names[] = {"conv1.w", "conv2.w", "fc1.w", "fc2.w"};
    int better = 0;
    for (int l = 0; l < 4; l++) {
        const tml_tensor *fw = &fm->tensors[tml_model_find_tensor(fm, names[l])];
        const tml_tensor *w = &m->tensors[tml_model_find_tensor(m, names[l])];
        assert_non_null(fw->cb);
        assert_int_equal(fw->cb->n_books, 1);
        assert_int_equal(w->dtype, TML_DTYPE_INT8);
        assert_int_equal(w->q.n, 1); /* one codebook: one scale */
        const int64_t n = tml_tensor_numel(w);
        double uses[256] = {0};
        float mx = 0;
        for (int64_t i = 0; i < n; i++) {
            const float c = fw->cb->centroids[fw->cb->index[i]];
            uses[fw->cb->index[i]] += 1;
            if (fabsf(c) > mx) mx = fabsf(c);
            /* the int8 weight is the rounded centroid on the chosen grid; zeros stay zero */
            double q = nearbyint(c / w->q.scale[0]);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            assert_int_equal(((int8_t *)w->data)[i], (int)q);
            if (((float *)fw->data)[i] == 0.0f) assert_int_equal(((int8_t *)w->data)[i], 0);
        }
        const double s0 = (double)(mx / 127.0f), s = w->q.scale[0];
        assert_true(s >= 0.749 * s0 && s <= 2.001 * s0);
        const double e = cb_err(fw->cb->centroids, uses, fw->cb->k, s), e0 = cb_err(fw->cb->centroids, uses, fw->cb->k, s0);
        assert_true(e <= e0 * (1 + 1e-9));
        better += e < 0.9 * e0;
    }
    assert_true(better >= 2);
    tml_calib_free(&cal);
    tml_dataset_free(ds);
    tml_model_free(fm);
    tml_model_free(m);
}

static void test_quant_errors(void **state)
{
    (void)state;
    tml_model *m = trained_like("lenet5");
    tml_dataset *ds = tu_fmnist("test");
    tml_calib cal;
    tml_calib_opts co = {.samples = -1};
    assert_int_equal(tml_calibrate(m, ds, &co, &cal), TML_ERR_INVALID);
    /* a dataset of another shape */
    tml_model *k = NULL;
    tml_zoo_opts zo = {.h = 49, .w = 10, .c = 1, .classes = 12};
    assert_int_equal(tml_zoo_create("dscnn", &zo, &k), TML_OK);
    co.samples = 8;
    assert_int_equal(tml_calibrate(k, ds, &co, &cal), TML_ERR_SHAPE);
    tml_model_free(k);
    /* NaN weights make NaN activations: calibration refuses them */
    tml_model *nanm = trained_like("lenet300");
    /* (in fc3: a fused ReLU would map NaN to 0) */
    ((float *)nanm->tensors[tml_model_find_tensor(nanm, "fc3.w")].data)[7] = NAN;
    assert_int_equal(tml_calibrate(nanm, ds, &co, &cal), TML_ERR_FORMAT);
    assert_non_null(strstr(tml_last_error(), "not finite"));
    tml_model_free(nanm);
    /* quantize without calibration */
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    assert_int_equal(tml_quantize(m, NULL, &qo), TML_ERR_INVALID);
    /* batch norm left in the graph (not folded) */
    tml_model *d = trained_like("dscnn");
    assert_int_equal(tml_calibrate(d, ds, &co, &cal), TML_OK);
    assert_int_equal(tml_quantize(d, &cal, &qo), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "batch norm"));
    tml_calib_free(&cal);
    tml_model_free(d);
    /* an int8 model cannot be folded, calibrated or quantized again */
    tml_model *q = quantized("lenet300", TML_CALIB_MINMAX, 0, NULL);
    assert_int_equal(tml_fold(q, NULL), TML_ERR_UNSUPPORTED);
    assert_int_equal(tml_calibrate(q, ds, &co, &cal), TML_ERR_UNSUPPORTED);
    assert_int_equal(tml_quantize(q, NULL, &qo), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "already quantized"));
    tml_model_free(q);
    tml_model_free(m);
    tml_dataset_free(ds);
}

/* Weight-only fake quantization keeps a float model whose weights sit on the
 * b-bit grid: at most 2^b - 1 distinct values per output channel. */
static void test_weight_only_bits(void **state)
{
    (void)state;
    tml_model *m = trained_like("lenet5");
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    qo.weight_only = 1;
    qo.weight_bits = 3;
    const char *only[2] = {"fc1", NULL};
    qo.only_layers = only;
    assert_int_equal(tml_quantize(m, NULL, &qo), TML_OK);
    assert_false(tml_model_is_quantized(m));
    const tml_tensor *w = &m->tensors[tml_model_find_tensor(m, "fc1.w")];
    int64_t per = tml_tensor_numel(w) / w->dims[0];
    for (int c = 0; c < w->dims[0]; c += 97) {
        float vals[16];
        int nv = 0;
        for (int64_t i = 0; i < per; i++) {
            float v = ((float *)w->data)[c * per + i];
            int seen = 0;
            for (int j = 0; j < nv; j++) seen |= vals[j] == v;
            if (!seen) {
                assert_true(nv < 7); /* 3 bits: -3..3 */
                vals[nv++] = v;
            }
        }
    }
    /* conv1 was not in the list: it keeps many distinct values */
    const tml_tensor *c1 = &m->tensors[tml_model_find_tensor(m, "conv1.w")];
    float first = ((float *)c1->data)[0];
    int differ = 0;
    for (int64_t i = 1; i < tml_tensor_numel(c1); i++) differ += ((float *)c1->data)[i] != first;
    assert_true(differ > 400);
    tml_model_free(m);
}

/* Two convs share one bias, each followed by a batch norm: folding the first
 * gives it its own copy of the bias, added while the tensor array is full, so
 * the array moves (regression: the copy read the old bias's dims from the
 * moved array). Folding must keep the function. */
static void test_fold_shared_bias(void **state)
{
    (void)state;
    tml_model *m = tml_model_new();
    int32_t xd[3] = {2, 2, 1}, wd[4] = {2, 1, 1, 1}, cd[1] = {2};
    const float w1[2] = {0.5f, -1.0f}, w2[2] = {2.0f, 0.25f}, b[2] = {0.1f, -0.2f};
    const float g[2] = {1.5f, 0.5f}, be[2] = {0.3f, -0.1f}, mu[2] = {0.2f, 0.4f}, var[2] = {2.0f, 0.5f};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 3, xd, NULL);
    int tw1 = tml_model_add_tensor(m, "a.w", TML_DTYPE_F32, TML_TENSOR_PARAM, 4, wd, w1);
    int tw2 = tml_model_add_tensor(m, "b.w", TML_DTYPE_F32, TML_TENSOR_PARAM, 4, wd, w2);
    int tb = tml_model_add_tensor(m, "bias", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, cd, b);
    int tg = tml_model_add_tensor(m, "bn.g", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, cd, g);
    int tbe = tml_model_add_tensor(m, "bn.b", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, cd, be);
    int tmu = tml_model_add_tensor(m, "bn.m", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, cd, mu);
    int tv = tml_model_add_tensor(m, "bn.v", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, cd, var);
    int a = tml_model_add_tensor(m, "a", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int bb = tml_model_add_tensor(m, "b", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int an = tml_model_add_tensor(m, "an", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int bn = tml_model_add_tensor(m, "bn", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int y = tml_model_add_tensor(m, "y", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    /* fill the tensor array to its capacity (unused constants, compacted away) */
    char name[16];
    for (int i = 0; m->n_tensors < m->cap_tensors; i++) {
        snprintf(name, sizeof name, "pad%d", i);
        assert_true(tml_model_add_tensor(m, name, TML_DTYPE_F32, TML_TENSOR_PARAM, 1, cd, NULL) >= 0);
    }
    assert_true(tml_model_add_node(m, "a", TML_OP_CONV2D, 3, (int[]){x, tw1, tb}, a) >= 0);
    assert_true(tml_model_add_node(m, "b", TML_OP_CONV2D, 3, (int[]){x, tw2, tb}, bb) >= 0);
    assert_true(tml_model_add_node(m, "an", TML_OP_BATCHNORM, 5, (int[]){a, tg, tbe, tmu, tv}, an) >= 0);
    assert_true(tml_model_add_node(m, "bn", TML_OP_BATCHNORM, 5, (int[]){bb, tg, tbe, tmu, tv}, bn) >= 0);
    assert_true(tml_model_add_node(m, "y", TML_OP_ADD, 2, (int[]){an, bn}, y) >= 0);
    m->input = x;
    m->output = y;
    assert_int_equal(tml_model_finalize(m), TML_OK);

    const float in[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    float before[8], after[8];
    tml_engine *e = NULL;
    assert_int_equal(tml_engine_new(m, 1, NULL, &e), TML_OK);
    assert_int_equal(tml_engine_run(e, in, 1, before), TML_OK);
    tml_engine_free(e);
    tml_fold_report r;
    assert_int_equal(tml_fold(m, &r), TML_OK);
    assert_int_equal(r.bn_folded, 2);
    assert_int_equal(tml_engine_new(m, 1, NULL, &e), TML_OK);
    assert_int_equal(tml_engine_run(e, in, 1, after), TML_OK);
    tml_engine_free(e);
    assert_true(tu_close_f32("folded", after, before, 8, 1e-5f));
    tml_model_free(m);
}

/* A float model whose batch norm has int8 parameters (a file may say so):
 * folding reads them as floats, so it leaves that batch norm alone
 * (regression: it read the 1-byte buffers as floats, past their end). */
static void test_fold_int8_bn_params(void **state)
{
    (void)state;
    tml_model *m = tml_model_new();
    int32_t xd[1] = {3}, wd[2] = {4, 3}, cd[1] = {4};
    const float w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const int8_t p8[4] = {1, 2, 3, 4};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 1, xd, NULL);
    int tw = tml_model_add_tensor(m, "fc.w", TML_DTYPE_F32, TML_TENSOR_PARAM, 2, wd, w);
    int h = tml_model_add_tensor(m, "h", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int p[4];
    const char *names[4] = {"bn.g", "bn.b", "bn.m", "bn.v"};
    for (int i = 0; i < 4; i++) p[i] = tml_model_add_tensor(m, names[i], TML_DTYPE_INT8, TML_TENSOR_PARAM, 1, cd, p8);
    int y = tml_model_add_tensor(m, "y", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    assert_true(tml_model_add_node(m, "fc", TML_OP_DENSE, 2, (int[]){x, tw}, h) >= 0);
    assert_true(tml_model_add_node(m, "bn", TML_OP_BATCHNORM, 5, (int[]){h, p[0], p[1], p[2], p[3]}, y) >= 0);
    m->input = x;
    m->output = y;
    assert_int_equal(tml_model_finalize(m), TML_OK);
    tml_fold_report r;
    assert_int_equal(tml_fold(m, &r), TML_OK);
    assert_int_equal(r.bn_folded, 0);
    assert_int_equal(r.bn_left, 1);
    tml_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qparams),
        cmocka_unit_test(test_calib_uniform),
        cmocka_unit_test(test_calib_outlier),
        cmocka_unit_test(test_calib_signed),
        cmocka_unit_test(test_calib_relu_zero_spike),
        cmocka_unit_test(test_method_parse),
        cmocka_unit_test(test_int8_engine_fast_equals_ref),
        cmocka_unit_test(test_int8_agrees_with_fake_quant),
        cmocka_unit_test(test_weight_and_bias_quantization),
        cmocka_unit_test(test_clustered_scale_search),
        cmocka_unit_test(test_quant_errors),
        cmocka_unit_test(test_weight_only_bits),
        cmocka_unit_test(test_calib_ranges_only),
        cmocka_unit_test(test_fold_shared_bias),
        cmocka_unit_test(test_fold_int8_bn_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
