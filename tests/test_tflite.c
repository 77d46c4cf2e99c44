/*
 * test_tflite.c - TFLite import and TFLite arithmetic.
 *
 *   - conformance: the MLPerf Tiny models in tests/fixtures/tflite imported
 *     and run give TensorFlow Lite Micro's int8 outputs byte for byte on all
 *     100 records (fast and reference kernels); on a mismatch the first
 *     differing layer is found from TFLM's intermediate tensors and printed;
 *     float outputs within 1e-5 of the output range
 *   - hand-computed TFLite rounding: negative ties of the high multiply, the
 *     clamp bounds, the fixed-point exp / reciprocal of the softmax, MEAN
 *   - the reader refuses truncated and damaged files cleanly
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tinyml/tml_device.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_ops_s8.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_tflite.h"
#include "tinyml/tml_zoo.h"

static const char *fixture(const char *model, const char *file)
{
    static char buf[4][1024];
    static int k;
    const char *src = getenv("TML_SOURCE_DIR");
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/tests/fixtures/tflite/%s/%s", src && *src ? src : ".", model, file);
    return buf[k];
}

static tml_model *import_fixture(const char *model)
{
    tml_model *m = NULL;
    tml_tflite_info info;
    tml_status st = tml_tflite_import_file(fixture(model, "model.tflite"), &m, &info);
    if (st) fprintf(stderr, "import %s: %s\n", model, tml_last_error());
    assert_int_equal(st, TML_OK);
    return m;
}

/* Runs all records of in.bin through the model (boundary type), returns the outputs. */
static uint8_t *run_records(const tml_model *m, const uint8_t *in, int64_t records, int use_ref)
{
    const size_t es = tml_dtype_size(tml_model_io_dtype(m));
    const size_t in_rec = (size_t)tml_tensor_numel(&m->tensors[m->input]) * es;
    const size_t out_rec = (size_t)tml_tensor_numel(&m->tensors[m->output]) * es;
    uint8_t *out = malloc(out_rec * (size_t)records);
    tml_engine_opts o = {.use_ref = use_ref};
    tml_engine *e;
    assert_int_equal(tml_engine_new(m, 16, &o, &e), TML_OK);
    for (int64_t r = 0; r < records; r += 16) {
        const int n = records - r < 16 ? (int)(records - r) : 16;
        assert_int_equal(tml_engine_run_raw(e, in + (size_t)r * in_rec, n, out + (size_t)r * out_rec), TML_OK);
    }
    tml_engine_free(e);
    return out;
}

/* On a mismatch: runs the first 10 records keeping every tensor and compares
 * them, in graph order, with TFLM's (tensors/tensors.txt maps names to
 * files), printing the first layer that differs. */
static void report_first_layer(const char *model, const tml_model *m, const uint8_t *in)
{
    size_t tl;
    char *txt = (char *)tu_read_file(fixture(model, "tensors/tensors.txt"), &tl);
    if (!txt) return;
    txt = realloc(txt, tl + 1);
    txt[tl] = '\0';
    tml_engine_opts o = {.use_ref = 1, .keep_all = 1};
    tml_engine *e;
    if (tml_engine_new(m, 10, &o, &e)) return;
    uint8_t *y = malloc(tml_tensor_nbytes(&m->tensors[m->output]) * 10);
    tml_engine_run_raw(e, in, 10, y);
    for (int ni = 0; ni < m->n_nodes; ni++) {
        const tml_tensor *t = &m->tensors[m->nodes[ni].out];
        /* line: index dtype shape bytes scale zp nscales producer name */
        for (char *line = txt; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            if (*line == '#') continue;
            int idx;
            char name[2048] = "";
            if (sscanf(line, "%d %*s %*s %*s %*s %*s %*s %*s %2047[^\n]", &idx, name) != 2) continue;
            if (strcmp(name, t->name) != 0) continue;
            char f[64];
            snprintf(f, sizeof f, "tensors/t%d.bin", idx);
            size_t len;
            uint8_t *ref = tu_read_file(fixture(model, f), &len);
            const size_t nb = tml_tensor_nbytes(t) * 10;
            if (ref && len == nb && memcmp(ref, tml_engine_activation(e, m->nodes[ni].out), nb) != 0) {
                fprintf(stderr, "  first differing layer: node '%s' (%s), tensor '%.80s'\n", m->nodes[ni].name,
                        tml_op_name(m->nodes[ni].op), t->name);
                free(ref);
                goto done;
            }
            free(ref);
        }
    }
    fprintf(stderr, "  (the intermediate tensors of the first 10 records all agree)\n");
done:
    free(y);
    free(txt);
    tml_engine_free(e);
}

static void check_int8_fixture(const char *model)
{
    tml_model *m = import_fixture(model);
    assert_int_equal(m->meta.rounding, TML_ROUNDING_TFLITE);
    assert_int_equal(tml_model_io_dtype(m), TML_DTYPE_INT8);
    size_t in_len, out_len;
    uint8_t *in = tu_read_file(fixture(model, "in.bin"), &in_len);
    uint8_t *want = tu_read_file(fixture(model, "out.bin"), &out_len);
    assert_non_null(in);
    assert_non_null(want);
    const size_t in_rec = tml_tensor_nbytes(&m->tensors[m->input]);
    const int64_t records = (int64_t)(in_len / in_rec);
    assert_int_equal(records, 100);
    assert_int_equal(out_len, tml_tensor_nbytes(&m->tensors[m->output]) * 100);
    for (int ref = 0; ref <= 1; ref++) {
        uint8_t *got = run_records(m, in, records, ref);
        if (!tu_equal_i8(ref ? "reference kernels vs TFLM" : "fast kernels vs TFLM", (const int8_t *)got,
                         (const int8_t *)want, out_len)) {
            fprintf(stderr, "  model %s\n", model);
            report_first_layer(model, m, in);
            fail();
        }
        free(got);
    }
    /* every intermediate tensor of the first 10 records too */
    size_t tl;
    char *txt = (char *)tu_read_file(fixture(model, "tensors/tensors.txt"), &tl);
    assert_non_null(txt);
    txt = realloc(txt, tl + 1);
    txt[tl] = '\0';
    tml_engine_opts o = {.keep_all = 1};
    tml_engine *e;
    assert_int_equal(tml_engine_new(m, 10, &o, &e), TML_OK);
    uint8_t *y = malloc(tml_tensor_nbytes(&m->tensors[m->output]) * 10);
    assert_int_equal(tml_engine_run_raw(e, in, 10, y), TML_OK);
    int compared = 0;
    for (char *line = txt; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        int idx;
        char name[2048] = "";
        if (*line == '#' || sscanf(line, "%d %*s %*s %*s %*s %*s %*s %*s %2047[^\n]", &idx, name) != 2) continue;
        const int t = tml_model_find_tensor(m, name);
        assert_true(t >= 0);
        char f[64];
        snprintf(f, sizeof f, "tensors/t%d.bin", idx);
        size_t len;
        uint8_t *ref = tu_read_file(fixture(model, f), &len);
        assert_non_null(ref);
        assert_int_equal(len, tml_tensor_nbytes(&m->tensors[t]) * 10);
        if (!tu_equal_i8(name, (const int8_t *)tml_engine_activation(e, t), (const int8_t *)ref, len)) fail();
        free(ref);
        compared++;
    }
    assert_true(compared >= 10);
    tml_engine_free(e);
    free(y);
    free(txt);
    free(in);
    free(want);
    tml_model_free(m);
}

static void test_conformance_kws(void **state)
{
    (void)state;
    check_int8_fixture("kws_ref_model");
}

static void test_conformance_ad01_int8(void **state)
{
    (void)state;
    check_int8_fixture("ad01_int8");
}

/* float32: within 1e-5 of the output range (TFLM's float kernels sum in
 * another order than tinyml's blocked GEMM) */
static void test_conformance_ad01_fp32(void **state)
{
    (void)state;
    tml_model *m = import_fixture("ad01_fp32");
    assert_int_equal(tml_model_io_dtype(m), TML_DTYPE_F32);
    size_t in_len, out_len;
    uint8_t *in = tu_read_file(fixture("ad01_fp32", "in.bin"), &in_len);
    float *want = (float *)tu_read_file(fixture("ad01_fp32", "out.bin"), &out_len);
    const int64_t records = (int64_t)(in_len / tml_tensor_nbytes(&m->tensors[m->input]));
    assert_int_equal(records, 100);
    const size_t n = out_len / 4;
    float lo = want[0], hi = want[0];
    for (size_t i = 0; i < n; i++) {
        lo = want[i] < lo ? want[i] : lo;
        hi = want[i] > hi ? want[i] : hi;
    }
    for (int ref = 0; ref <= 1; ref++) {
        float *got = (float *)run_records(m, in, records, ref);
        assert_true(tu_close_f32("ad01_fp32 vs TFLM", got, want, n, 1e-5f * (hi - lo)));
        free(got);
    }
    free(in);
    free(want);
    tml_model_free(m);
}

/* The hybrid DS-CNN (int8 weights, float activations) imports as a float
 * model. TFLM refuses hybrid models, so there is no output oracle; the full
 * int8 model is the same network quantized separately, so every layer's
 * dequantized hybrid weights must match the int8 model's real weights to
 * within 1% of the layer's largest weight (a wrong scale axis or sign would
 * be off by ~100%), and the softmax rows must sum to 1. */
static void test_hybrid_kws(void **state)
{
    (void)state;
    tml_model *h = NULL, *q = import_fixture("kws_ref_model");
    tml_tflite_info info;
    assert_int_equal(tml_tflite_import_file(fixture("kws_ref_model_float32", "model.tflite"), &h, &info), TML_OK);
    assert_true(info.hybrid);
    assert_false(tml_model_is_quantized(h));
    assert_int_equal(h->n_nodes, q->n_nodes);
    int layers = 0;
    for (int i = 0; i < q->n_nodes; i++) {
        const tml_node *nq = &q->nodes[i], *nh = &h->nodes[i];
        assert_int_equal(nq->op, nh->op);
        if (!tml_node_has_weights(nq)) continue;
        const tml_tensor *wq = &q->tensors[nq->in[1]], *wh = &h->tensors[nh->in[1]];
        const int64_t n = tml_tensor_numel(wq);
        assert_int_equal(n, tml_tensor_numel(wh));
        assert_int_equal(wh->dtype, TML_DTYPE_F32);
        const int axis = wq->q.axis < 0 ? 0 : wq->q.axis;
        int64_t inner = 1;
        for (int d = axis + 1; d < wq->ndim; d++) inner *= wq->dims[d];
        double maxd = 0, maxw = 0;
        for (int64_t k = 0; k < n; k++) {
            const int c = wq->q.n == 1 ? 0 : (int)((k / inner) % wq->dims[axis]);
            const double vq = (double)wq->q.scale[c] * ((const int8_t *)wq->data)[k];
            const double vh = ((const float *)wh->data)[k];
            maxd = fabs(vq - vh) > maxd ? fabs(vq - vh) : maxd;
            maxw = fabs(vh) > maxw ? fabs(vh) : maxw;
        }
        if (!(maxd <= 0.01 * maxw)) fprintf(stderr, "layer %s: max difference %g of %g\n", nq->name, maxd, maxw);
        assert_true(maxd <= 0.01 * maxw);
        layers++;
    }
    assert_int_equal(layers, 10);
    size_t in_len;
    int8_t *in = (int8_t *)tu_read_file(fixture("kws_ref_model", "in.bin"), &in_len);
    const tml_tensor *qi = &q->tensors[q->input];
    float *xf = malloc(sizeof(float) * in_len);
    for (size_t i = 0; i < in_len; i++) xf[i] = qi->q.scale[0] * (float)(in[i] - qi->q.zero_point[0]);
    float *yf = (float *)run_records(h, (const uint8_t *)xf, 100, 0);
    for (int r = 0; r < 100; r++) {
        float s = 0.0f;
        for (int k = 0; k < 12; k++) s += yf[r * 12 + k];
        assert_true(fabsf(s - 1.0f) < 1e-4f);
    }
    free(in), free(xf), free(yf);
    tml_model_free(h);
    tml_model_free(q);
}

/* ---- hand-computed TFLite arithmetic --------------------------------------------------------- */

static void test_tfl_high_mul_ties(void **state)
{
    (void)state;
    const int32_t half = 1 << 30; /* 0.5 in Q0.31 */
    /* -3 * 0.5 = -1.5: gemmlowp rounds the tie toward +inf, tinyml away from zero */
    assert_int_equal(tml_sat_rounding_doubling_high_mul_tfl(-3, half), -1);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(-3, half), -2);
    /* positive ties agree: 3 * 0.5 = 1.5 -> 2 */
    assert_int_equal(tml_sat_rounding_doubling_high_mul_tfl(3, half), 2);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(3, half), 2);
    /* not a tie: -1.4 / -1.6 */
    assert_int_equal(tml_sat_rounding_doubling_high_mul_tfl(-7, (int32_t)(0.2 * 2147483648.0)), -1);
    assert_int_equal(tml_sat_rounding_doubling_high_mul_tfl(-8, (int32_t)(0.2 * 2147483648.0)), -2);
    assert_int_equal(tml_sat_rounding_doubling_high_mul_tfl(INT32_MIN, INT32_MIN), INT32_MAX);
    /* the full requantization: acc -5, M = 0.25 (2^30, shift -1): the high
     * multiply gives -2.5 -> -2 (TFLite) / -3 (tinyml); the rounding shift by
     * one then gives -1 (-2 / 2) and -2 (-1.5 away from zero) */
    assert_int_equal(tml_requantize_tfl(-5, half, -1), -1);
    assert_int_equal(tml_requantize(-5, half, -1), -2);
    assert_int_equal(tml_requantize_mode(-5, half, -1, TML_ROUNDING_TFLITE), -1);
    assert_int_equal(tml_requantize_mode(-5, half, -1, TML_ROUNDING_TINYML), -2);
    /* the worked example of docs/numerics.md agrees in both modes (no tie) */
    assert_int_equal(tml_requantize_tfl(18467, 1759218604, -9), 30);
    assert_int_equal(tml_requantize_tfl(-18467, 1759218604, -9), -30);
}

static void test_tfl_act_bounds(void **state)
{
    (void)state;
    int32_t lo, hi;
    /* 6 / 0.0235294 = 255.0001 -> 255, zp -128: 127 */
    tml_act_bounds_s8_tfl(TML_ACT_RELU6, 6.0f / 255.0f, -128, &lo, &hi);
    assert_int_equal(lo, -128);
    assert_int_equal(hi, 127);
    /* scale 0.05, zp -10: relu6 top = -10 + round(120) = 110 */
    tml_act_bounds_s8_tfl(TML_ACT_RELU6, 0.05f, -10, &lo, &hi);
    assert_int_equal(lo, -10);
    assert_int_equal(hi, 110);
    tml_act_bounds_s8_tfl(TML_ACT_RELU, 0.05f, 200, &lo, &hi); /* zp beyond int8: TFLite's max(qmin, zp) */
    assert_int_equal(lo, 200);
    assert_int_equal(hi, 127);
    tml_act_bounds_s8_tfl(TML_ACT_NONE, 0.05f, 3, &lo, &hi);
    assert_int_equal(lo, -128);
    assert_int_equal(hi, 127);
    /* 6 / 0.048 = 125 exactly in real numbers; in float 6.0f / 0.048f =
     * 124.99999 rounds to 125 either way, zp 2 -> 127 */
    tml_act_bounds_s8_tfl(TML_ACT_RELU6, 0.048f, 2, &lo, &hi);
    assert_int_equal(hi, 127);
}

static void test_tfl_fixed_point_exp(void **state)
{
    (void)state;
    assert_int_equal(tml_fx_exp_on_negative_values_q5(0), INT32_MAX);
    /* exp(-k) for k = 1..8 (Q5.26 input), Q0.31 output: gemmlowp's
     * polynomial is good to ~2^-23 of full scale (exp(-1) comes out 224 units
     * above 2^31 exp(-1): 790015308) */
    assert_int_equal(tml_fx_exp_on_negative_values_q5(-(1 << 26)), 790015308);
    for (int k = 1; k <= 8; k++) {
        const int32_t v = tml_fx_exp_on_negative_values_q5(-(k << 26));
        const double want = exp(-(double)k) * 2147483648.0;
        assert_true(fabs((double)v - want) < 256.0);
    }
    /* exp(-0.3) and exp(-17.6) */
    const int32_t a = tml_fx_exp_on_negative_values_q5((int32_t)lrint(-0.3 * 67108864.0));
    assert_true(fabs((double)a - exp(-0.3) * 2147483648.0) < 512.0);
    const int32_t b = tml_fx_exp_on_negative_values_q5((int32_t)lrint(-17.6 * 67108864.0));
    assert_true(fabs((double)b - exp(-17.6) * 2147483648.0) < 4.0);
    /* 1 / (1 + x) at x = 0, 0.5, 0.999 */
    assert_true(fabs((double)tml_fx_one_over_one_plus_x(0) - 2147483647.0) < 4.0);
    assert_true(fabs((double)tml_fx_one_over_one_plus_x(1 << 30) - 2147483648.0 / 1.5) < 8.0);
    assert_true(fabs((double)tml_fx_one_over_one_plus_x(2145336164) - 2147483648.0 / 1.999) < 8.0);
}

static void test_tfl_softmax_hand(void **state)
{
    (void)state;
    tml_softmax_s8_tfl_params p;
    /* beta 1, input scale 0.1: multiplier of 0.1 * 2^26 */
    tml_softmax_s8_tfl_prepare(0.1f, 1.0f, &p);
    assert_true(p.input_left_shift >= 0);
    /* two equal inputs: 0.5 each = 128 / 256 -> 0 at zero point -128 */
    const int8_t x2[2] = {17, 17};
    int8_t y2[2];
    tml_softmax_s8_tfl_ref(1, 2, &p, x2, y2);
    assert_int_equal(y2[0], 0);
    assert_int_equal(y2[1], 0);
    /* four equal inputs: 0.25 = 64/256 -> -64 */
    const int8_t x4[4] = {-5, -5, -5, -5};
    int8_t y4[4];
    tml_softmax_s8_tfl_ref(1, 4, &p, x4, y4);
    for (int i = 0; i < 4; i++) assert_int_equal(y4[i], -64);
    /* one dominant input: probability ~1 saturates to 127; far inputs -128 */
    const int8_t x3[3] = {127, -128, -128};
    int8_t y3[3];
    tml_softmax_s8_tfl_ref(1, 3, &p, x3, y3);
    assert_int_equal(y3[0], 127);
    assert_int_equal(y3[1], -128);
    /* against exp in double: within one output step */
    tu_rng r;
    tu_rng_seed(&r, 77);
    for (int it = 0; it < 200; it++) {
        int8_t x[10], y[10];
        tu_fill_int8(&r, x, 10, -128, 127);
        const float s = 0.01f + 0.2f * (float)(it % 7);
        tml_softmax_s8_tfl_prepare(s, 1.0f, &p);
        tml_softmax_s8_tfl_ref(1, 10, &p, x, y);
        int mx = -128;
        for (int i = 0; i < 10; i++) mx = x[i] > mx ? x[i] : mx;
        double sum = 0;
        for (int i = 0; i < 10; i++) sum += exp((double)s * (x[i] - mx));
        for (int i = 0; i < 10; i++) {
            const double want = exp((double)s * (x[i] - mx)) / sum * 256.0 - 128.0;
            assert_true(fabs((double)y[i] - (want > 127 ? 127 : want)) <= 1.0);
        }
    }
}

static void test_tfl_mean_hand(void **state)
{
    (void)state;
    tml_mean_s8_tfl_params p;
    /* same scale in and out, 4 pixels: multiplier 1 (2^30, shift 1), fold
     * s = 2: mult = 2^32 / 4 = 2^30, shift -1, i.e. (sum - 4 zp) / 4 rounded */
    tml_mean_s8_tfl_prepare(0.5f, 3, 0.5f, 3, 4, &p);
    assert_int_equal(p.mult, 1 << 30);
    assert_int_equal(p.shift, -1);
    /* one channel: 3+4+5+7 = 19; 19 - 12 = 7; 7 / 4 = 1.75 -> 2; + 3 = 5 */
    const int8_t x[4] = {3, 4, 5, 7};
    int8_t y;
    tml_mean_s8_tfl_ref(1, 4, 1, &p, x, &y);
    assert_int_equal(y, 5);
    /* a negative tie: -10 - 3*4... sum -6 over 4 with zp 0: -1.5: the high
     * multiply is exact (-6 * 2^30 / 2^31 = -3), the rounding shift of -3 by
     * one rounds away from zero: -2 */
    tml_mean_s8_tfl_prepare(0.5f, 0, 0.5f, 0, 4, &p);
    const int8_t xn[4] = {-1, -2, -1, -2};
    tml_mean_s8_tfl_ref(1, 4, 1, &p, xn, &y);
    assert_int_equal(y, -2);
    /* output scale half the input's: the mean doubles */
    tml_mean_s8_tfl_prepare(0.5f, 0, 0.25f, 0, 4, &p);
    tml_mean_s8_tfl_ref(1, 4, 1, &p, x, &y);
    assert_int_equal(y, 10); /* 19 / 4 * 2 = 9.5 -> 10 */
}

static void test_tfl_quantize_boundary(void **state)
{
    (void)state;
    const float x[8] = {0.0f, 0.25f, -0.25f, 0.75f, -0.75f, 100.0f, -100.0f, NAN};
    int8_t q[8];
    tml_quantize_f32_s8_tfl(8, x, 0.5f, 1, q);
    /* x / 0.5 = 0, .5, -.5, 1.5, -1.5 rounded half away from zero */
    const int8_t want[8] = {1, 2, 0, 3, -1, 127, -128, 1};
    TU_ASSERT_EQ_I8(q, want, 8);
}

/* ---- robustness ------------------------------------------------------------------------------ */

static void test_truncated_and_damaged(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = tu_read_file(fixture("kws_ref_model", "model.tflite"), &len);
    assert_non_null(buf);
    tml_model *m;
    /* every prefix length fails cleanly (a step keeps the test fast) */
    for (size_t n = 0; n < len; n += (n < 4096 ? 1 : 97)) {
        m = NULL;
        tml_status st = tml_tflite_import_mem(buf, n, &m, NULL);
        assert_int_not_equal(st, TML_OK);
        assert_null(m);
    }
    /* random byte damage: an error or a valid model, never a crash */
    tu_rng r;
    tu_rng_seed(&r, 5);
    uint8_t *dam = malloc(len);
    for (int it = 0; it < 300; it++) {
        memcpy(dam, buf, len);
        for (int k = 0; k < 4; k++) dam[tu_rng_u32(&r) % (len < 8192 ? len : 8192)] = (uint8_t)tu_rng_u32(&r);
        m = NULL;
        if (tml_tflite_import_mem(dam, len, &m, NULL) == TML_OK) tml_model_free(m);
    }
    free(dam);
    /* inputs the fuzzer found (tests/fuzz/fuzz_tflite.c): an error or a model,
     * and a model the engine and the exporter take without crashing (the
     * sanitizer builds check the rest) */
    const char *found[4] = {"int8-weights-without-scale.tflite", "same-padding-overflow.tflite", "import-leak.tflite",
                            "conv-weights-missing.tflite"};
    for (int k = 0; k < 4; k++) {
        size_t fl;
        uint8_t *fb = tu_read_file(fixture("fuzz", found[k]), &fl);
        assert_non_null(fb);
        m = NULL;
        if (tml_tflite_import_mem(fb, fl, &m, NULL) == TML_OK) {
            tml_engine *e = NULL;
            if (tml_engine_new(m, 1, NULL, &e) == TML_OK) tml_engine_free(e);
            uint8_t *ob;
            size_t ol;
            if (tml_tflite_export_mem(m, &ob, &ol) == TML_OK) free(ob);
            tml_model_free(m);
        }
        free(fb);
    }
    /* a conv whose weights input is -1 (an omitted optional input): read
     * before index -1 of the tensors */
    size_t cl;
    uint8_t *cb = tu_read_file(fixture("fuzz", "conv-weights-missing.tflite"), &cl);
    assert_non_null(cb);
    m = NULL;
    assert_int_equal(tml_tflite_import_mem(cb, cl, &m, NULL), TML_ERR_FORMAT);
    assert_null(m);
    assert_non_null(strstr(tml_last_error(), "weights are missing"));
    free(cb);
    /* not a TFLite file */
    assert_false(tml_tflite_detect("\x89TMF\r\n\x1a\n", 8));
    assert_int_equal(tml_tflite_import_mem("hello world!", 12, &m, NULL), TML_ERR_FORMAT);
    assert_true(strstr(tml_last_error(), "TFL3") != NULL);
    free(buf);
}

/* The tinyml metadata a .tflite carries is checked against its graph as the
 * .tmf reader checks it: labels or per-feature normalization that do not fit
 * are a format error, not a model that `tinyml import` writes and every
 * other command then refuses. */
static void test_metadata_must_fit_graph(void **state)
{
    (void)state;
    static const char *const labels[10] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    float mean[5] = {0}, std[5] = {1, 1, 1, 1, 1};
    for (int bad = 0; bad < 3; bad++) {
        tml_zoo_opts zo = {.seed = 1};
        tml_model *m = NULL;
        assert_int_equal(tml_zoo_create("lenet300", &zo, &m), TML_OK);
        /* 0: ten labels (fits); 1: three labels for ten outputs; 2: five
         * features' normalization for 784 inputs */
        assert_int_equal(tml_meta_set_labels(&m->meta, bad == 1 ? 3 : 10, labels), TML_OK);
        if (bad == 2) assert_int_equal(tml_preproc_set_features(&m->meta.pre, 5, mean, std), TML_OK);
        uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(tml_tflite_export_mem(m, &buf, &len), TML_OK);
        tml_model *q = NULL;
        tml_status st = tml_tflite_import_mem(buf, len, &q, NULL);
        if (!bad) {
            assert_int_equal(st, TML_OK);
            assert_int_equal(q->meta.n_classes, 10);
            assert_string_equal(q->meta.labels[9], "j");
            tml_model_free(q);
        } else {
            assert_int_equal(st, TML_ERR_FORMAT);
            assert_null(q);
            assert_non_null(strstr(tml_last_error(), bad == 1 ? "3 labels" : "5 features"));
        }
        free(buf);
        tml_model_free(m);
    }
}

/* ---- export / re-import ------------------------------------------------------------------------ */

static void same_model(const tml_model *a, const tml_model *b)
{
    assert_int_equal(a->n_nodes, b->n_nodes);
    assert_int_equal(a->n_tensors, b->n_tensors);
    assert_int_equal(a->meta.rounding, b->meta.rounding);
    assert_int_equal(a->meta.float_io, b->meta.float_io);
    assert_int_equal(a->meta.n_classes, b->meta.n_classes);
    assert_true(a->meta.pre.scale == b->meta.pre.scale);
    assert_string_equal(a->tensors[a->input].name, b->tensors[b->input].name);
    assert_string_equal(a->tensors[a->output].name, b->tensors[b->output].name);
    for (int i = 0; i < a->n_nodes; i++) {
        const tml_node *x = &a->nodes[i], *y = &b->nodes[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->op, y->op);
        assert_int_equal(x->n_in, y->n_in);
        assert_int_equal(x->sh * 1000 + x->sw, y->sh * 1000 + y->sw);
        assert_int_equal(x->dh * 1000 + x->dw, y->dh * 1000 + y->dw);
        assert_memory_equal(x->pad, y->pad, sizeof x->pad);
        assert_int_equal(x->groups, y->groups);
        assert_int_equal(x->depth_mult, y->depth_mult);
        assert_int_equal(x->act, y->act);
        assert_true(x->beta == y->beta);
        if (x->op == TML_OP_MAXPOOL || x->op == TML_OP_AVGPOOL) assert_int_equal(x->kh * 1000 + x->kw, y->kh * 1000 + y->kw);
        for (int j = 0; j < x->n_in; j++) {
            if (x->in[j] < 0) {
                assert_int_equal(y->in[j], -1);
                continue;
            }
            const tml_tensor *p = &a->tensors[x->in[j]], *q = &b->tensors[y->in[j]];
            assert_string_equal(p->name, q->name);
            assert_int_equal(p->dtype, q->dtype);
            assert_int_equal(p->ndim, q->ndim);
            assert_memory_equal(p->dims, q->dims, sizeof(int32_t) * (size_t)p->ndim);
            assert_int_equal(p->q.n, q->q.n);
            if (p->q.n) {
                assert_int_equal(p->q.axis, q->q.axis);
                assert_memory_equal(p->q.scale, q->q.scale, sizeof(float) * (size_t)p->q.n);
                assert_memory_equal(p->q.zero_point, q->q.zero_point, sizeof(int32_t) * (size_t)p->q.n);
            }
            if (p->data) assert_memory_equal(p->data, q->data, tml_tensor_nbytes(p));
        }
        const tml_tensor *p = &a->tensors[x->out], *q = &b->tensors[y->out];
        assert_string_equal(p->name, q->name);
        assert_int_equal(p->q.n, q->q.n);
        if (p->q.n) assert_memory_equal(p->q.scale, q->q.scale, sizeof(float));
        if (p->q.n) assert_int_equal(p->q.zero_point[0], q->q.zero_point[0]);
    }
}

/* Every zoo model, quantized (per channel and per tensor, both roundings),
 * exported to .tflite and imported back: the same model, and the same
 * outputs from the int8 engine. */
static void test_zoo_roundtrip(void **state)
{
    (void)state;
    tml_dataset *ds = NULL;
    assert_int_equal(tml_dataset_open("fashion-mnist", "train", &ds), TML_OK);
    int checked = 0;
    for (const tml_zoo_entry *z = tml_zoo_list(); z->name; z++) {
        for (int variant = 0; variant < 2; variant++) {
            tml_zoo_opts zo = {.seed = 7};
            tml_model *m = NULL;
            assert_int_equal(tml_zoo_create(z->name, &zo, &m), TML_OK);
            tml_model *f = tml_model_clone(m);
            assert_int_equal(tml_fold(m, NULL), TML_OK);
            tml_calib cal;
            tml_calib_opts co = {.samples = 32, .seed = 5, .batch = 32};
            assert_int_equal(tml_calibrate(m, ds, &co, &cal), TML_OK);
            tml_quant_opts qo;
            tml_quant_opts_default(&qo);
            qo.per_tensor = variant;
            qo.rounding = variant ? TML_ROUNDING_TINYML : TML_ROUNDING_TFLITE;
            assert_int_equal(tml_quantize(m, &cal, &qo), TML_OK);
            tml_calib_free(&cal);
            /* the first model also with a float boundary: QUANTIZE / DEQUANTIZE in the file */
            if (variant == 0 && z == tml_zoo_list()) m->meta.float_io = 1;
            uint8_t *buf;
            size_t len;
            tml_status st = tml_tflite_export_mem(m, &buf, &len);
            if (st) fprintf(stderr, "%s: %s\n", z->name, tml_last_error());
            assert_int_equal(st, TML_OK);
            tml_model *r = NULL;
            tml_tflite_info info;
            st = tml_tflite_import_mem(buf, len, &r, &info);
            if (st) fprintf(stderr, "%s: %s\n", z->name, tml_last_error());
            assert_int_equal(st, TML_OK);
            assert_true(info.from_tinyml);
            same_model(m, r);
            /* and the outputs of the int8 engine */
            const int64_t in_n = tml_tensor_numel(&m->tensors[m->input]);
            const size_t es = tml_dtype_size(tml_model_io_dtype(m));
            int8_t *x = malloc((size_t)in_n * 4 * es);
            tu_rng rg;
            tu_rng_seed(&rg, 11);
            if (es == 1) {
                tu_fill_int8(&rg, x, (size_t)in_n * 4, -128, 127);
            } else {
                assert_true(r->meta.float_io);
                tu_fill_uniform(&rg, (float *)(void *)x, (size_t)in_n * 4, -2.0f, 2.0f);
            }
            uint8_t *ya = run_records(m, (const uint8_t *)x, 4, 0), *yb = run_records(r, (const uint8_t *)x, 4, 0);
            TU_ASSERT_EQ_I8((const int8_t *)ya, (const int8_t *)yb,
                            (size_t)tml_tensor_numel(&m->tensors[m->output]) * 4 * es);
            free(x), free(ya), free(yb);
            tml_model_free(r);
            free(buf);
            if (variant == 0) { /* the float model too (batch norms folded by the caller, as the CLI does) */
                assert_int_equal(tml_fold(f, NULL), TML_OK);
                assert_int_equal(tml_tflite_export_mem(f, &buf, &len), TML_OK);
                assert_int_equal(tml_tflite_import_mem(buf, len, &r, NULL), TML_OK);
                same_model(f, r);
                tml_model_free(r);
                free(buf);
            }
            tml_model_free(f);
            tml_model_free(m);
            checked++;
        }
    }
    assert_true(checked >= 8);
    tml_dataset_free(ds);
}

/* ---- the exported C in the emulator ------------------------------------------------------------ */

/* Runs n records of an int8 model through tml_device_run (export --c, build,
 * QEMU Cortex-M4 with the DSP kernels and Cortex-M3 with the portable ones)
 * and expects every output byte to equal the engine's. */
static void device_exact(const tml_model *m, const int8_t *q, int n)
{
    const tml_tensor *it = &m->tensors[m->input];
    const int64_t in_n = tml_tensor_numel(it);
    float *x = malloc(sizeof(float) * (size_t)(in_n * n));
    for (int64_t i = 0; i < in_n * n; i++) x[i] = it->q.scale[0] * (float)(q[i] - it->q.zero_point[0]);
    for (int t = 0; t < 2; t++) {
        tml_device_opts o;
        memset(&o, 0, sizeof o);
        tml_export_opts_default(&o.exp);
        o.target = t ? "cortex-m3" : "cortex-m4";
        tml_device_result r;
        tml_status st = tml_device_run(m, x, n, &o, &r);
        if (st) fprintf(stderr, "device run (%s): %s\n", o.target, tml_last_error());
        assert_int_equal(st, TML_OK);
        if (r.mismatches)
            fprintf(stderr, "%s on %s: %lld output bytes differ (sample %d, byte %d: %d, engine %d)\n",
                    m->meta.name ? m->meta.name : "model", o.target, (long long)r.mismatches, r.bad_sample,
                    r.bad_index, r.bad_got, r.bad_want);
        assert_int_equal(r.mismatches, 0);
        tml_device_result_free(&r);
    }
    free(x);
}

/* TFLite-rounding models exported as C are bit-exact with the engine (and so
 * with TFLite Micro) on the emulated cores: the two imported MLPerf Tiny
 * models, and a zoo ResNet-8 quantized with --rounding tflite (add, mean). */
static void test_device_tflite_rounding(void **state)
{
    (void)state;
    tml_device_opts chk;
    memset(&chk, 0, sizeof chk);
    if (tml_device_check_tools(&chk) != TML_OK) {
        fprintf(stderr, "SKIP: %s\n", tml_last_error());
        skip();
    }
    const char *fx[2] = {"kws_ref_model", "ad01_int8"};
    for (int k = 0; k < 2; k++) {
        tml_model *m = import_fixture(fx[k]);
        size_t len;
        int8_t *in = (int8_t *)tu_read_file(fixture(fx[k], "in.bin"), &len);
        device_exact(m, in, 3);
        free(in);
        tml_model_free(m);
    }
    tml_zoo_opts zo = {.seed = 4};
    tml_model *m = NULL;
    assert_int_equal(tml_zoo_create("resnet8", &zo, &m), TML_OK);
    assert_int_equal(tml_fold(m, NULL), TML_OK);
    tml_dataset *ds = NULL;
    assert_int_equal(tml_dataset_open("fashion-mnist", "train", &ds), TML_OK);
    tml_calib cal;
    tml_calib_opts co = {.samples = 32, .seed = 5, .batch = 32};
    assert_int_equal(tml_calibrate(m, ds, &co, &cal), TML_OK);
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    qo.rounding = TML_ROUNDING_TFLITE;
    assert_int_equal(tml_quantize(m, &cal, &qo), TML_OK);
    tml_calib_free(&cal);
    tml_dataset_free(ds);
    int8_t q[3 * 784];
    tu_rng r;
    tu_rng_seed(&r, 8);
    tu_fill_int8(&r, q, sizeof q, -128, 127);
    device_exact(m, q, 3);
    tml_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tfl_high_mul_ties),
        cmocka_unit_test(test_tfl_act_bounds),
        cmocka_unit_test(test_tfl_fixed_point_exp),
        cmocka_unit_test(test_tfl_softmax_hand),
        cmocka_unit_test(test_tfl_mean_hand),
        cmocka_unit_test(test_tfl_quantize_boundary),
        cmocka_unit_test(test_conformance_kws),
        cmocka_unit_test(test_conformance_ad01_int8),
        cmocka_unit_test(test_conformance_ad01_fp32),
        cmocka_unit_test(test_hybrid_kws),
        cmocka_unit_test(test_truncated_and_damaged),
        cmocka_unit_test(test_metadata_must_fit_graph),
        cmocka_unit_test(test_zoo_roundtrip),
        cmocka_unit_test(test_device_tflite_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
