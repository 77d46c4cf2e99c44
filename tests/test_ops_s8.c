/*
 * test_ops_s8.c - the INT8 kernels (lib/ops/<op>_s8.c, quant_math.c):
 *   - fixed-point helpers on hand-computed cases (ties of both signs, large
 *     shifts, multipliers near 2^31, the INT32_MIN saturation, shift > 0) and
 *     on random inputs against an independent 128-bit formulation;
 *   - every `_ref` kernel on small hand-worked examples;
 *   - every int8 kernel against the float reference kernels within one
 *     quantization step;
 *   - every fast kernel against its `_ref` twin, bit for bit, on odd sizes,
 *     for every instruction set this CPU has and 1 and 2 OpenMP threads;
 *   - packed low-bit weights: pack / unpack (every width, odd counts, every
 *     instruction set) against a bit-by-bit reading, a hand-worked W4A8
 *     layer, and the packed-weight references against the int8 ones.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_s8_internal.h"
#include "testutil.h"
#include "tinyml/tml_ops.h"
#include "tinyml/tml_ops_s8.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define Q30 ((int32_t)1 << 30)

/* ---- helpers ------------------------------------------------------------------------------ */

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* Window with output size from (h + pads - dilated kernel) / stride + 1. */
static tml_window make_win(int n, int h, int w, int c, int o, int kh, int kw, int sh, int sw, int dh, int dw, int pt,
                           int pl, int pb, int pr, int groups, int dm)
{
    tml_window p;
    memset(&p, 0, sizeof(p));
    p.n = n;
    p.h = h;
    p.w = w;
    p.c = c;
    p.o = o;
    p.kh = kh;
    p.kw = kw;
    p.sh = sh;
    p.sw = sw;
    p.dh = dh;
    p.dw = dw;
    p.pad_t = pt;
    p.pad_l = pl;
    p.oh = (h + pt + pb - dh * (kh - 1) - 1) / sh + 1;
    p.ow = (w + pl + pr - dw * (kw - 1) - 1) / sw + 1;
    p.groups = groups;
    p.depth_mult = dm;
    p.act = TML_ACT_NONE;
    return p;
}

static int32_t rnd_range(tu_rng *r, int32_t lo, int32_t hi)
{
    return lo + (int32_t)(tu_rng_u32(r) % (uint32_t)((int64_t)hi - lo + 1));
}

static int32_t rnd_i32(tu_rng *r) { return (int32_t)tu_rng_u32(r); }

/* Per-channel requantization for accumulators of about sqrt(k) * 74^2
 * (random int8 data): a multiplier that maps them to about +-64, varied by a
 * factor of up to 4 per channel. */
static void rand_requant(tu_rng *r, int n, int k, int32_t *mult, int32_t *shift)
{
    const double typical = sqrt((double)(k > 0 ? k : 1)) * 74.0 * 74.0;
    for (int i = 0; i < n; i++) {
        const double m = 64.0 / typical * pow(2.0, tu_rng_uniform(r, -1.0f, 1.0f));
        int sh;
        tml_quantize_multiplier(m, &mult[i], &sh);
        mult[i] = rnd_range(r, Q30, INT32_MAX); /* random Q31 mantissa, same exponent */
        shift[i] = sh;
    }
}

static void rand_bias(tu_rng *r, int n, int32_t *b)
{
    for (int i = 0; i < n; i++) b[i] = rnd_range(r, -40000, 40000);
}

static const int32_t ZPS[4] = {-128, 127, 0, 37};

static void act_bounds(int a, int32_t out_zp, int32_t *lo, int32_t *hi)
{
    /* 0: none, 1: relu, 2: relu6 with a scale that puts 6.0 at zp + 100 */
    tml_act_bounds_s8(a == 0 ? TML_ACT_NONE : a == 1 ? TML_ACT_RELU : TML_ACT_RELU6, 0.06f, out_zp, lo, hi);
}

static int n_isas(void) { return (int)tml_s8_cpu_isa() + 1; }

/* ---- fixed point ------------------------------------------------------------------------ */

static void test_quantize_multiplier(void **state)
{
    (void)state;
    const double ms[] = {1e-9, 0.25, 0.5, 0.999999, 1.0, 1.5, 1234.5, 3.0517578125e-05, 0.7071067811865476};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        int32_t m;
        int s;
        tml_quantize_multiplier(ms[i], &m, &s);
        assert_true(m >= Q30);
        assert_true(s >= -31 && s <= 30);
        const double back = (double)m * ldexp(1.0, s - 31);
        const double rel = fabs(back - ms[i]) / ms[i];
        if (!(rel < ldexp(1.0, -30))) fprintf(stderr, "  M=%.17g -> mult %d shift %d = %.17g (rel %.3g)\n", ms[i], m, s, back, rel);
        assert_true(rel < ldexp(1.0, -30));
    }
    int32_t m;
    int s;
    tml_quantize_multiplier(0.5, &m, &s); /* 0.5 = 2^30 * 2^(0-31) */
    assert_int_equal(m, Q30);
    assert_int_equal(s, 0);
    tml_quantize_multiplier(1.0, &m, &s);
    assert_int_equal(m, Q30);
    assert_int_equal(s, 1);
    tml_quantize_multiplier(0.75, &m, &s);
    assert_int_equal(m, 3 * (Q30 / 2));
    assert_int_equal(s, 0);
    /* frac = 1 - 2^-33 rounds to 2^31: carried into mult 2^30, shift + 1 */
    tml_quantize_multiplier(1.0 - ldexp(1.0, -33), &m, &s);
    assert_int_equal(m, Q30);
    assert_int_equal(s, 1);
    tml_quantize_multiplier(0.0, &m, &s);
    assert_int_equal(m, 0);
    assert_int_equal(s, 0);
    tml_quantize_multiplier(-1.0, &m, &s);
    assert_int_equal(m, 0);
    tml_quantize_multiplier(ldexp(1.0, -32), &m, &s); /* smallest representable: shift -31 */
    assert_int_equal(m, Q30);
    assert_int_equal(s, -31);
    tml_quantize_multiplier(1e-12, &m, &s); /* below 2^-32: underflow */
    assert_int_equal(m, 0);
    assert_int_equal(s, 0);
    tml_quantize_multiplier(ldexp(1.0, 31), &m, &s); /* too large: clamped */
    assert_int_equal(m, INT32_MAX);
    assert_int_equal(s, 30);
}

static void test_high_mul_cases(void **state)
{
    (void)state;
    /* saturation: INT32_MIN * INT32_MIN * 2 / 2^32 = 2^31 does not fit */
    assert_int_equal(tml_sat_rounding_doubling_high_mul(INT32_MIN, INT32_MIN), INT32_MAX);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(Q30, Q30), (int32_t)1 << 29);
    /* exact halves: 1 * 2^30 / 2^31 = 0.5 -> 1; -0.5 -> -1 (away from zero) */
    assert_int_equal(tml_sat_rounding_doubling_high_mul(1, Q30), 1);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(-1, Q30), -1);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(Q30, -1), -1);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(3, Q30), 2);   /* 1.5 */
    assert_int_equal(tml_sat_rounding_doubling_high_mul(-3, Q30), -2); /* -1.5 */
    assert_int_equal(tml_sat_rounding_doubling_high_mul(5, Q30 - 1), 2); /* 2.4999999977 */
    assert_int_equal(tml_sat_rounding_doubling_high_mul(-5, Q30 - 1), -2);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(5, Q30 + 1), 3); /* 2.5000000023 */
    assert_int_equal(tml_sat_rounding_doubling_high_mul(INT32_MIN, Q30), -Q30);
    /* (2^31-1)^2 / 2^31 = 2^31 - 2 + 2^-31 */
    assert_int_equal(tml_sat_rounding_doubling_high_mul(INT32_MAX, INT32_MAX), INT32_MAX - 1);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(INT32_MIN, INT32_MAX), -INT32_MAX);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(0, INT32_MIN), 0);
    assert_int_equal(tml_sat_rounding_doubling_high_mul(-7, 0), 0);
}

static void test_rounding_divide_cases(void **state)
{
    (void)state;
    assert_int_equal(tml_rounding_divide_by_pot(5, 1), 3);   /* 2.5 */
    assert_int_equal(tml_rounding_divide_by_pot(-5, 1), -3); /* -2.5 */
    assert_int_equal(tml_rounding_divide_by_pot(4, 1), 2);
    assert_int_equal(tml_rounding_divide_by_pot(-4, 1), -2);
    assert_int_equal(tml_rounding_divide_by_pot(3, 2), 1);  /* 0.75 */
    assert_int_equal(tml_rounding_divide_by_pot(-3, 2), -1);
    assert_int_equal(tml_rounding_divide_by_pot(2, 2), 1);  /* 0.5 */
    assert_int_equal(tml_rounding_divide_by_pot(-2, 2), -1); /* -0.5 */
    assert_int_equal(tml_rounding_divide_by_pot(1, 2), 0);  /* 0.25 */
    assert_int_equal(tml_rounding_divide_by_pot(-1, 2), 0);
    assert_int_equal(tml_rounding_divide_by_pot(-6, 2), -2); /* -1.5 */
    assert_int_equal(tml_rounding_divide_by_pot(-7, 2), -2); /* -1.75 */
    assert_int_equal(tml_rounding_divide_by_pot(-123, 0), -123);
    assert_int_equal(tml_rounding_divide_by_pot(INT32_MAX, 31), 1); /* 0.99999 */
    assert_int_equal(tml_rounding_divide_by_pot(INT32_MIN, 31), -1);
    assert_int_equal(tml_rounding_divide_by_pot(Q30, 31), 1);  /* 0.5 */
    assert_int_equal(tml_rounding_divide_by_pot(-Q30, 31), -1);
    assert_int_equal(tml_rounding_divide_by_pot(Q30 - 1, 31), 0);
    assert_int_equal(tml_rounding_divide_by_pot(-Q30 + 1, 31), 0);
    assert_int_equal(tml_rounding_divide_by_pot(INT32_MIN, 30), -2);
}

static void test_requantize_cases(void **state)
{
    (void)state;
    /* M = 0.5 (2^30, shift 0) */
    assert_int_equal(tml_requantize(100, Q30, 0), 50);
    assert_int_equal(tml_requantize(101, Q30, 0), 51);   /* 50.5 -> 51 */
    assert_int_equal(tml_requantize(-101, Q30, 0), -51); /* -50.5 -> -51 */
    /* M = 0.25 = 2^30 * 2^(-1-31): two roundings. 101 * 0.5 = 50.5 -> 51 in the
     * high multiply, then 51 / 2 = 25.5 -> 26 (one rounding of 25.25 gives 25). */
    assert_int_equal(tml_requantize(101, Q30, -1), 26);
    assert_int_equal(tml_requantize(-101, Q30, -1), -26);
    assert_int_equal(tml_requantize(102, Q30, -1), 26);  /* 25.5 exactly -> 26 */
    assert_int_equal(tml_requantize(-102, Q30, -1), -26);
    assert_int_equal(tml_requantize(98, Q30, -1), 25);   /* 24.5 -> 25 */
    /* the largest right shift */
    assert_int_equal(tml_requantize(INT32_MAX, INT32_MAX, -31), 1);
    assert_int_equal(tml_requantize(INT32_MIN, INT32_MAX, -31), -1);
    assert_int_equal(tml_requantize(Q30, Q30, -31), 0); /* 2^29 / 2^31 = 0.25 */
    /* multipliers near 2^31 (M ~ 1 - 2^-31): values stay */
    assert_int_equal(tml_requantize(12345, INT32_MAX, 0), 12345);
    assert_int_equal(tml_requantize(-12345, INT32_MAX, 0), -12345);
    assert_int_equal(tml_requantize(INT32_MIN, INT32_MIN, 0), INT32_MAX); /* saturating case */
    /* shift > 0: M = 0.5 * 2^2 = 2 */
    assert_int_equal(tml_requantize(1000, Q30, 2), 2000);
    assert_int_equal(tml_requantize(-1001, Q30, 2), -2002);
    assert_int_equal(tml_requantize(3, 3 * (Q30 / 2), 1), 5); /* 3 * 1.5 = 4.5 -> 5 */
    /* the left shift saturates: 2^30 * 4 -> INT32_MAX, * 0.5 = 2^30 - 0.5 -> 2^30 */
    assert_int_equal(tml_requantize(Q30, Q30, 2), Q30);
    assert_int_equal(tml_requantize(-Q30, Q30, 2), -Q30);
    /* the worked example of docs/numerics.md */
    int32_t m;
    int s;
    tml_quantize_multiplier(0.02 * 0.004 / 0.05, &m, &s); /* M = 0.0016 */
    assert_int_equal(m, 1759218604);
    assert_int_equal(s, -9);
    assert_int_equal(tml_requantize(18467, m, s), 30); /* 18467 * 0.0016 = 29.547 */
    assert_int_equal(tml_sat_rounding_doubling_high_mul(18467, m), 15128);
}

/* Expected requantization written independently: sign-magnitude 128-bit
 * arithmetic and explicit shifts of the magnitude. */
static int32_t requant_expected(int32_t acc, int32_t mult, int shift)
{
    __extension__ typedef __int128 i128;
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    i128 x = (i128)acc * ((i128)1 << left);
    if (x > INT32_MAX) x = INT32_MAX;
    if (x < INT32_MIN) x = INT32_MIN;
    const i128 prod = x * (i128)mult; /* = (a*b*2) / 2 */
    const int neg = prod < 0;
    const i128 mag = neg ? -prod : prod;
    i128 hm = (mag + ((i128)1 << 30)) >> 31; /* round(|a*b| / 2^31), halves up */
    if (!neg && hm > INT32_MAX) hm = INT32_MAX;
    hm = neg ? -hm : hm;
    if (right == 0) return (int32_t)hm;
    const int hneg = hm < 0;
    const i128 hmag = hneg ? -hm : hm;
    const i128 r = (hmag + ((i128)1 << (right - 1))) >> right;
    return (int32_t)(hneg ? -r : r);
}

static void test_requantize_random(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    const int32_t special[] = {0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MIN + 1, Q30, -Q30, 255 * 127, -255 * 128};
    long double max_err = 0;
    int n_double_round = 0;
    for (int it = 0; it < 400000; it++) {
        int32_t acc, mult;
        const int kind = it % 8;
        if (it < 12 * 12) {
            acc = special[it % 12];
            mult = it / 12 < 12 ? special[it / 12] : Q30;
        } else {
            acc = kind < 3 ? rnd_i32(&r) : kind < 6 ? rnd_range(&r, -70000, 70000) : rnd_range(&r, -300, 300);
            mult = kind == 7 ? rnd_i32(&r) : rnd_range(&r, Q30, INT32_MAX); /* incl. negative ones */
        }
        const int shift = rnd_range(&r, -31, 30);
        const int32_t got = tml_requantize(acc, mult, shift);
        const int32_t exp = requant_expected(acc, mult, shift);
        if (got != exp) {
            fprintf(stderr, "  requantize(%d, %d, %d) = %d, expected %d\n", acc, mult, shift, got, exp);
            fail();
        }
        /* and against the real product, where nothing saturates: the two
         * roundings are together within 1 of acc * M */
        const int left = shift > 0 ? shift : 0;
        const int64_t shifted = (int64_t)acc * ((int64_t)1 << left);
        if (mult >= 0 && shifted >= INT32_MIN && shifted <= INT32_MAX) {
            const long double real = (long double)acc * (long double)mult * powl(2.0L, (long double)shift - 31.0L);
            const long double err = fabsl((long double)got - real);
            if (err > max_err) max_err = err;
            if (err > 0.5000001L) n_double_round++;
            assert_true(err <= 1.0L);
        }
    }
    (void)n_double_round;
    assert_true(max_err <= 1.0L);
}

static void test_act_bounds(void **state)
{
    (void)state;
    int32_t lo, hi;
    tml_act_bounds_s8(TML_ACT_NONE, 0.1f, 3, &lo, &hi);
    assert_int_equal(lo, -128);
    assert_int_equal(hi, 127);
    tml_act_bounds_s8(TML_ACT_RELU, 0.1f, 10, &lo, &hi);
    assert_int_equal(lo, 10);
    assert_int_equal(hi, 127);
    tml_act_bounds_s8(TML_ACT_RELU, 0.1f, -128, &lo, &hi);
    assert_int_equal(lo, -128);
    /* relu6: 6 / 0.05 = 120 steps above zp -100 */
    tml_act_bounds_s8(TML_ACT_RELU6, 0.05f, -100, &lo, &hi);
    assert_int_equal(lo, -100);
    assert_int_equal(hi, 20);
    /* 6 / (6/255) = 255 steps: the whole range above zp -128 */
    tml_act_bounds_s8(TML_ACT_RELU6, 6.0f / 255.0f, -128, &lo, &hi);
    assert_int_equal(lo, -128);
    assert_int_equal(hi, 127);
    /* 6 / 0.01 = 600: beyond 127 */
    tml_act_bounds_s8(TML_ACT_RELU6, 0.01f, 50, &lo, &hi);
    assert_int_equal(lo, 50);
    assert_int_equal(hi, 127);
    /* 6 / 0.048 = 125 */
    tml_act_bounds_s8(TML_ACT_RELU6, 0.048f, 0, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 125);
}

/* ---- reference kernels on hand-worked examples ---------------------------------------------- */

static void test_conv_ref_hand(void **state)
{
    (void)state;
    /* x - zp = [[1,2,3],[4,5,6],[7,8,9]], 3x3 box filter, padding 1: padded taps
     * must read the zero point 5 (contribute 0). acc = neighbourhood sum + 3,
     * out = max(round(acc * 0.5) - 10, 0). */
    const tml_window p = make_win(1, 3, 3, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    const int8_t x[9] = {6, 7, 8, 9, 10, 11, 12, 13, 14};
    int8_t w[9];
    for (int i = 0; i < 9; i++) w[i] = 1;
    const int32_t bias[1] = {3}, mult[1] = {Q30}, shift[1] = {0};
    const tml_qparams q = {5, -10, mult, shift, 0, 127, TML_ROUNDING_TINYML};
    /* sums 12 21 16 / 27 45 33 / 24 39 28; +3: 15 24 19 / 30 48 36 / 27 42 31;
     * *0.5: 7.5->8 12 9.5->10 / 15 24 18 / 13.5->14 21 15.5->16; -10, clamp at 0 */
    const int8_t expect[9] = {0, 2, 0, 5, 14, 8, 4, 11, 6};
    int8_t y[9], y2[9];
    tml_conv2d_s8_ref(&p, &q, x, w, bias, y);
    TU_ASSERT_EQ_I8(y, expect, 9);
    void *scratch = malloc(tml_conv2d_s8_scratch_size(&p));
    tml_conv2d_s8(&p, &q, x, w, bias, y2, scratch);
    TU_ASSERT_EQ_I8(y2, expect, 9);
    free(scratch);
}

static void test_dwconv_ref_hand(void **state)
{
    (void)state;
    /* 2x2x2 input, depth multiplier 2 -> 4 output channels, 2x2 kernel, 1x1 out.
     * Channel c of the input: c0 = 1,3,5,7 and c1 = 2,4,6,8 over the taps. */
    const tml_window p = make_win(1, 2, 2, 2, 4, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 1, 2);
    const int8_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int8_t w[16] = {1, 1, 1, 0, /* tap (0,0): oc0..oc3 */
                          1, -1, 1, 0, /* (0,1) */
                          1, 0, 1, 0,  /* (1,0) */
                          1, 2, 1, -1}; /* (1,1) */
    /* oc0 = 1+3+5+7 = 16; oc1 = 1-3+14 = 12 (+1 bias); oc2 = 2+4+6+8 = 20; oc3 = -8 */
    const int32_t bias[4] = {0, 1, 0, 0};
    const int32_t mult[4] = {Q30, Q30, Q30, Q30}, shift[4] = {0, 0, -1, 0}; /* 0.5 0.5 0.25 0.5 */
    const tml_qparams q = {0, 0, mult, shift, -128, 127, TML_ROUNDING_TINYML};
    const int8_t expect[4] = {8, 7, 5, -4}; /* 6.5 -> 7 */
    int8_t y[4], y2[4];
    tml_dwconv2d_s8_ref(&p, &q, x, w, bias, y);
    TU_ASSERT_EQ_I8(y, expect, 4);
    tml_dwconv2d_s8(&p, &q, x, w, bias, y2);
    TU_ASSERT_EQ_I8(y2, expect, 4);
}

static void test_dense_ref_hand(void **state)
{
    (void)state;
    /* x - zp = [20, -10, 40]; per-channel M = 0.125 and 0.75 */
    const int8_t x[3] = {10, -20, 30};
    const int8_t w[6] = {1, 2, 3, -1, 0, 1};
    const int32_t bias[2] = {4, -4};
    const int32_t mult[2] = {Q30, 3 * (Q30 / 2)}, shift[2] = {-2, 0};
    const tml_qparams q = {-10, 5, mult, shift, -128, 127, TML_ROUNDING_TINYML};
    /* acc 124 and 16: 124 * 0.125 = 15.5 -> 16; 16 * 0.75 = 12; + 5 */
    const int8_t expect[2] = {21, 17};
    int8_t y[2], y2[2];
    tml_dense_s8_ref(1, 3, 2, &q, x, w, bias, y);
    TU_ASSERT_EQ_I8(y, expect, 2);
    tml_dense_s8(1, 3, 2, &q, x, w, bias, y2, NULL);
    TU_ASSERT_EQ_I8(y2, expect, 2);
}

static void test_add_ref_hand(void **state)
{
    (void)state;
    /* s1 = 0.5 (zp 0), s2 = 0.25 (zp 10), so = 1.0 (zp -5) */
    tml_add_s8_params p;
    tml_add_s8_prepare(0.5f, 0, 0.25f, 10, 1.0f, -5, TML_ACT_NONE, &p);
    assert_int_equal(p.left_shift, 20);
    assert_int_equal(p.in1_mult, Q30); /* 0.5 / (2 * 0.5) = 0.5 */
    assert_int_equal(p.in1_shift, 0);
    assert_int_equal(p.in2_mult, Q30); /* 0.25 */
    assert_int_equal(p.in2_shift, -1);
    assert_int_equal(p.out_mult, Q30); /* 1 / 2^20 = 0.5 * 2^-19 */
    assert_int_equal(p.out_shift, -19);
    /* 3.5 + 2.5 = 6; -1.5 + 0.25 = -1.25 -> -1; -0.5 + 0 -> -1 (half away);
     * 0.5 + 0 -> 1; 63.5 + 29.25 = 92.75 -> 93 + (-5) = 88; big: 127 */
    const int8_t a[6] = {7, -3, -1, 1, 127, 127};
    const int8_t b[6] = {20, 11, 10, 10, 127, 127};
    int8_t y[6];
    tml_add_s8_ref(6, &p, a, b, y);
    const int8_t expect[6] = {1, -6, -6, -4, 88, 88};
    TU_ASSERT_EQ_I8(y, expect, 6);
    /* relu: clamp at zp */
    tml_add_s8_prepare(0.5f, 0, 0.25f, 10, 1.0f, -5, TML_ACT_RELU, &p);
    tml_add_s8_ref(6, &p, a, b, y);
    const int8_t expect_relu[6] = {1, -5, -5, -4, 88, 88};
    TU_ASSERT_EQ_I8(y, expect_relu, 6);
}

static void test_pool_ref_hand(void **state)
{
    (void)state;
    /* 2x4 input, 2x2 windows stride 2: [-1,-2 / 0,1] and [-3,0 / 0,-3] */
    const int8_t x[8] = {-1, -2, -3, 0, 0, 1, 0, -3};
    tml_window p = make_win(1, 2, 4, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1);
    int8_t y[4];
    tml_avgpool_s8_ref(&p, -128, 127, x, y);
    const int8_t e_avg[2] = {-1, -2}; /* -0.5 -> -1, -1.5 -> -2 */
    TU_ASSERT_EQ_I8(y, e_avg, 2);
    tml_maxpool_s8_ref(&p, -128, 127, x, y);
    const int8_t e_max[2] = {1, 0};
    TU_ASSERT_EQ_I8(y, e_max, 2);
    tml_maxpool_s8_ref(&p, 0, 127, x, y); /* fused relu clamp */
    const int8_t e_max_relu[2] = {1, 0};
    TU_ASSERT_EQ_I8(y, e_max_relu, 2);
    tml_avgpool_s8_ref(&p, -1, 127, x, y);
    const int8_t e_avg_clamp[2] = {-1, -1};
    TU_ASSERT_EQ_I8(y, e_avg_clamp, 2);
    /* 1x3 row, 1x3 window, padding 1 both sides: counts 2, 3, 2 (padding excluded) */
    const int8_t x2[3] = {-1, -2, 5};
    p = make_win(1, 1, 3, 1, 1, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1);
    assert_int_equal(p.ow, 3);
    tml_avgpool_s8_ref(&p, -128, 127, x2, y);
    const int8_t e_pad[3] = {-2, 1, 2}; /* -1.5 -> -2, 0.67 -> 1, 1.5 -> 2 */
    TU_ASSERT_EQ_I8(y, e_pad, 3);
    /* global: (n=1, hw=2, c=3) */
    const int8_t x3[6] = {-1, 1, 127, -2, 2, 126};
    tml_global_avgpool_s8_ref(1, 2, 3, x3, y);
    const int8_t e_glob[3] = {-2, 2, 127}; /* -1.5, 1.5, 126.5 */
    TU_ASSERT_EQ_I8(y, e_glob, 3);
}

static void test_softmax_ref_hand(void **state)
{
    (void)state;
    uint32_t lut[256];
    tml_softmax_s8_lut(0.1f, lut);
    assert_int_equal(lut[0], 65536);
    assert_int_equal(lut[10], (uint32_t)llround(65536.0 * exp(-1.0)));
    /* equal inputs: p = 1/4 -> 64 - 128 = -64 */
    const int8_t xe[4] = {3, 3, 3, 3};
    int8_t y[8];
    tml_softmax_s8_ref(1, 4, lut, xe, y);
    for (int i = 0; i < 4; i++) assert_int_equal(y[i], -64);
    /* one dominant input: p ~ 1 saturates at 127 */
    const int8_t xd[2] = {127, -128};
    tml_softmax_s8_ref(1, 2, lut, xd, y);
    assert_int_equal(y[0], 127);
    assert_int_equal(y[1], -128);
    /* rows of random values: sum of (y + 128) ~ 256, each within 1 of float */
    tu_rng r;
    tu_rng_seed(&r, 5);
    for (int it = 0; it < 50; it++) {
        const int k = 1 + (int)(tu_rng_u32(&r) % 8);
        int8_t x[8];
        tu_fill_int8(&r, x, (size_t)k, -128, 127);
        const float s = tu_rng_uniform(&r, 0.01f, 0.2f);
        tml_softmax_s8_lut(s, lut);
        tml_softmax_s8_ref(1, k, lut, x, y);
        float xf[8], pf[8];
        for (int i = 0; i < k; i++) xf[i] = s * (float)x[i];
        tml_softmax_f32_ref(1, k, xf, pf);
        int sum = 0;
        for (int i = 0; i < k; i++) {
            sum += y[i] + 128;
            long qf = lround(256.0 * pf[i]) - 128;
            if (qf > 127) qf = 127;
            assert_true(labs((long)y[i] - qf) <= 1);
        }
        assert_true(abs(sum - 256) <= k);
    }
}

/* ---- int8 kernels vs the float reference ------------------------------------------------------ */

/* q = clamp(round(v / scale) + zp, lo, hi) */
static int8_t quant1(float v, float scale, int32_t zp, int32_t lo, int32_t hi)
{
    long q = lround((double)v / scale) + zp;
    if (q < lo) q = lo;
    if (q > hi) q = hi;
    return (int8_t)q;
}

/* Picks an output scale / zero point covering y_f[0..n). */
static void out_qparams(const float *yf, int64_t n, float *scale, int32_t *zp)
{
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (yf[i] < lo) lo = yf[i];
        if (yf[i] > hi) hi = yf[i];
    }
    *scale = (hi - lo) / 255.0f;
    if (*scale <= 0.0f) *scale = 1.0f;
    *zp = (int32_t)lround(-128.0 - lo / *scale);
    if (*zp > 127) *zp = 127;
    if (*zp < -128) *zp = -128;
}

static int close_q(const char *what, const int8_t *a, const int8_t *b, int64_t n)
{
    int64_t bad = 0;
    int maxd = 0;
    for (int64_t i = 0; i < n; i++) {
        const int d = abs(a[i] - b[i]);
        if (d > maxd) maxd = d;
        if (d > 1 && bad++ < 8) fprintf(stderr, "  %s: at %lld int8 %d vs float %d\n", what, (long long)i, a[i], b[i]);
    }
    if (bad) fprintf(stderr, "  %s: %lld of %lld differ by more than 1 (max %d)\n", what, (long long)bad, (long long)n, maxd);
    return bad == 0;
}

/* Conv or depthwise (dw) of random quantized data, int8 kernel vs float. */
static void check_conv_vs_float(tu_rng *r, const tml_window *p0, int dw, tml_act act)
{
    tml_window p = *p0;
    p.act = act;
    const int cg = p.c / p.groups;
    const int64_t nx = (int64_t)p.n * p.h * p.w * p.c, ny = (int64_t)p.n * p.oh * p.ow * p.o;
    const int64_t nw = dw ? (int64_t)p.kh * p.kw * p.o : (int64_t)p.o * p.kh * p.kw * cg;
    const int k = dw ? p.kh * p.kw : p.kh * p.kw * cg;
    int8_t *xq = malloc((size_t)nx), *wq = malloc((size_t)nw), *yq = malloc((size_t)ny), *yr = malloc((size_t)ny);
    float *xf = malloc(sizeof(float) * (size_t)nx), *wf = malloc(sizeof(float) * (size_t)nw);
    float *bf = malloc(sizeof(float) * (size_t)p.o), *yf = malloc(sizeof(float) * (size_t)ny);
    int32_t *bq = malloc(sizeof(int32_t) * (size_t)p.o), *mult = malloc(sizeof(int32_t) * (size_t)p.o);
    int32_t *shift = malloc(sizeof(int32_t) * (size_t)p.o);
    float *sw = malloc(sizeof(float) * (size_t)p.o);
    const float sx = 0.02f;
    const int32_t zx = rnd_range(r, -60, 60);
    tu_fill_int8(r, xq, (size_t)nx, -128, 127);
    tu_fill_int8(r, wq, (size_t)nw, -127, 127);
    for (int64_t i = 0; i < nx; i++) xf[i] = sx * (float)(xq[i] - zx);
    for (int oc = 0; oc < p.o; oc++) {
        sw[oc] = tu_rng_uniform(r, 0.002f, 0.01f);
        bq[oc] = rnd_range(r, -3000, 3000);
        bf[oc] = (float)((double)bq[oc] * sx * sw[oc]);
    }
    for (int64_t i = 0; i < nw; i++) {
        const int oc = dw ? (int)(i % p.o) : (int)(i / (nw / p.o));
        wf[i] = sw[oc] * (float)wq[i];
    }
    if (dw)
        tml_dwconv2d_f32_ref(&p, xf, wf, bf, yf);
    else
        tml_conv2d_f32_ref(&p, xf, wf, bf, yf);
    float sy;
    int32_t zy;
    out_qparams(yf, ny, &sy, &zy);
    for (int oc = 0; oc < p.o; oc++) {
        int s;
        tml_quantize_multiplier((double)sx * sw[oc] / sy, &mult[oc], &s);
        shift[oc] = s;
    }
    tml_qparams q = {zx, zy, mult, shift, 0, 0, TML_ROUNDING_TINYML};
    tml_act_bounds_s8(act, sy, zy, &q.act_min, &q.act_max);
    for (int64_t i = 0; i < ny; i++) yr[i] = quant1(yf[i], sy, zy, q.act_min, q.act_max);
    (void)k;
    if (dw) {
        tml_dwconv2d_s8_ref(&p, &q, xq, wq, bq, yq);
        assert_true(close_q("dwconv ref vs float", yq, yr, ny));
        tml_dwconv2d_s8(&p, &q, xq, wq, bq, yq);
        assert_true(close_q("dwconv fast vs float", yq, yr, ny));
    } else {
        tml_conv2d_s8_ref(&p, &q, xq, wq, bq, yq);
        assert_true(close_q("conv ref vs float", yq, yr, ny));
        void *scratch = malloc(tml_conv2d_s8_scratch_size(&p));
        tml_conv2d_s8(&p, &q, xq, wq, bq, yq, scratch);
        assert_true(close_q("conv fast vs float", yq, yr, ny));
        free(scratch);
    }
    free(xq), free(wq), free(yq), free(yr), free(xf), free(wf), free(bf), free(yf);
    free(bq), free(mult), free(shift), free(sw);
}

static void test_conv_vs_float(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 21);
    tml_window p = make_win(2, 9, 8, 3, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    check_conv_vs_float(&r, &p, 0, TML_ACT_NONE);
    check_conv_vs_float(&r, &p, 0, TML_ACT_RELU);
    p = make_win(1, 28, 28, 1, 20, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1); /* lenet conv1 */
    check_conv_vs_float(&r, &p, 0, TML_ACT_RELU6);
    p = make_win(1, 7, 7, 8, 6, 3, 3, 2, 2, 2, 2, 2, 1, 2, 1, 2, 1); /* groups, dilation, stride */
    check_conv_vs_float(&r, &p, 0, TML_ACT_NONE);
}

static void test_dwconv_vs_float(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 22);
    tml_window p = make_win(2, 14, 14, 33, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    check_conv_vs_float(&r, &p, 1, TML_ACT_RELU);
    p = make_win(1, 7, 9, 5, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2);
    check_conv_vs_float(&r, &p, 1, TML_ACT_NONE);
}

static void test_dense_vs_float(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 23);
    const int shapes[3][3] = {{1, 800, 500}, {3, 33, 7}, {16, 100, 10}};
    for (int t = 0; t < 3; t++) {
        const int n = shapes[t][0], in = shapes[t][1], out = shapes[t][2];
        int8_t *xq = malloc((size_t)n * in), *wq = malloc((size_t)out * in), *yq = malloc((size_t)n * out);
        int8_t *yr = malloc((size_t)n * out);
        float *xf = malloc(sizeof(float) * (size_t)n * in), *wf = malloc(sizeof(float) * (size_t)out * in);
        float *bf = malloc(sizeof(float) * (size_t)out), *yf = malloc(sizeof(float) * (size_t)n * out);
        int32_t *bq = malloc(sizeof(int32_t) * (size_t)out), *mult = malloc(sizeof(int32_t) * (size_t)out);
        int32_t *shift = malloc(sizeof(int32_t) * (size_t)out);
        const float sx = 0.05f, sw = 0.004f; /* per-tensor weights: mult repeats */
        const int32_t zx = -128 + t * 50;
        tu_fill_int8(&r, xq, (size_t)n * in, -128, 127);
        tu_fill_int8(&r, wq, (size_t)out * in, -127, 127);
        for (int i = 0; i < n * in; i++) xf[i] = sx * (float)(xq[i] - zx);
        for (int i = 0; i < out * in; i++) wf[i] = sw * (float)wq[i];
        for (int o = 0; o < out; o++) {
            bq[o] = rnd_range(&r, -5000, 5000);
            bf[o] = (float)((double)bq[o] * sx * sw);
        }
        tml_dense_f32_ref(n, in, out, xf, wf, bf, TML_ACT_RELU, yf);
        float sy;
        int32_t zy;
        out_qparams(yf, (int64_t)n * out, &sy, &zy);
        int32_t m;
        int s;
        tml_quantize_multiplier((double)sx * sw / sy, &m, &s);
        for (int o = 0; o < out; o++) mult[o] = m, shift[o] = s;
        tml_qparams q = {zx, zy, mult, shift, 0, 0, TML_ROUNDING_TINYML};
        tml_act_bounds_s8(TML_ACT_RELU, sy, zy, &q.act_min, &q.act_max);
        for (int i = 0; i < n * out; i++) yr[i] = quant1(yf[i], sy, zy, q.act_min, q.act_max);
        tml_dense_s8_ref(n, in, out, &q, xq, wq, bq, yq);
        assert_true(close_q("dense ref vs float", yq, yr, (int64_t)n * out));
        void *scratch = malloc(tml_dense_s8_scratch_size(n, in, out) + 1);
        tml_dense_s8(n, in, out, &q, xq, wq, bq, yq, scratch);
        assert_true(close_q("dense fast vs float", yq, yr, (int64_t)n * out));
        free(scratch);
        free(xq), free(wq), free(yq), free(yr), free(xf), free(wf), free(bf), free(yf), free(bq), free(mult), free(shift);
    }
}

static void test_eltwise_pool_softmax_vs_float(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 24);
    enum { N = 2, H = 9, W = 7, C = 5 };
    const int64_t cnt = (int64_t)N * H * W * C;
    int8_t a[N * H * W * C], b[N * H * W * C], y[N * H * W * C], yr[N * H * W * C];
    float af[N * H * W * C], bf[N * H * W * C], yf[N * H * W * C];
    tu_fill_int8(&r, a, (size_t)cnt, -128, 127);
    tu_fill_int8(&r, b, (size_t)cnt, -128, 127);
    /* add: different scales, relu */
    const float s1 = 0.03f, s2 = 0.011f;
    const int32_t z1 = 12, z2 = -40;
    for (int64_t i = 0; i < cnt; i++) {
        af[i] = s1 * (float)(a[i] - z1);
        bf[i] = s2 * (float)(b[i] - z2);
    }
    for (int act = 0; act < 3; act++) {
        const tml_act ac = (tml_act)act;
        tml_add_f32_ref(cnt, af, bf, ac, yf);
        float so;
        int32_t zo;
        out_qparams(yf, cnt, &so, &zo);
        tml_add_s8_params ap;
        tml_add_s8_prepare(s1, z1, s2, z2, so, zo, ac, &ap);
        for (int64_t i = 0; i < cnt; i++) yr[i] = quant1(yf[i], so, zo, ap.act_min, ap.act_max);
        tml_add_s8_ref(cnt, &ap, a, b, y);
        assert_true(close_q("add vs float", y, yr, cnt));
    }
    /* pools keep the scale: quantize the float result with (s1, z1) */
    const tml_window pools[3] = {make_win(N, H, W, C, C, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1),
                                 make_win(N, H, W, C, C, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1),
                                 make_win(N, H, W, C, C, 3, 2, 1, 2, 1, 1, 0, 1, 2, 0, 1, 1)};
    for (int t = 0; t < 3; t++) {
        const tml_window *p = &pools[t];
        const int64_t ny = (int64_t)p->n * p->oh * p->ow * p->c;
        tml_avgpool_f32_ref(p, af, yf);
        for (int64_t i = 0; i < ny; i++) yr[i] = quant1(yf[i], s1, z1, -128, 127);
        tml_avgpool_s8_ref(p, -128, 127, a, y);
        assert_true(close_q("avgpool vs float", y, yr, ny));
        tml_maxpool_f32_ref(p, af, yf);
        for (int64_t i = 0; i < ny; i++) yr[i] = quant1(yf[i], s1, z1, z1, 127);
        tml_maxpool_s8_ref(p, z1, 127, a, y); /* fused relu */
        assert_true(close_q("maxpool vs float", y, yr, ny));
        for (int64_t i = 0; i < ny; i++) assert_true(y[i] == yr[i]); /* max is exact */
    }
    tml_global_avgpool_f32_ref(N, H * W, C, af, yf);
    for (int i = 0; i < N * C; i++) yr[i] = quant1(yf[i], s1, z1, -128, 127);
    tml_global_avgpool_s8_ref(N, H * W, C, a, y);
    assert_true(close_q("global avgpool vs float", y, yr, N * C));
    /* softmax over rows of 10 */
    uint32_t lut[256];
    tml_softmax_s8_lut(0.07f, lut);
    for (int64_t i = 0; i < 60; i++) af[i] = 0.07f * (float)a[i];
    tml_softmax_f32_ref(6, 10, af, yf);
    for (int i = 0; i < 60; i++) yr[i] = quant1(yf[i], 1.0f / 256.0f, -128, -128, 127);
    tml_softmax_s8_ref(6, 10, lut, a, y);
    assert_true(close_q("softmax vs float", y, yr, 60));
}

/* ---- fast kernels vs reference, exactly --------------------------------------------------------- */

typedef struct conv_case {
    int n, h, w, c, o, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, groups;
} conv_case;

static const conv_case CONV_CASES[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},       /* the smallest */
    {1, 28, 28, 1, 20, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1},    /* lenet conv1 */
    {3, 12, 12, 20, 50, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1},   /* lenet conv2, batch 3 */
    {1, 7, 7, 3, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {3, 13, 13, 7, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},
    {1, 13, 7, 33, 127, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},   /* pointwise: no im2col */
    {3, 7, 13, 33, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},     /* pointwise, C % 4 = 1 */
    {1, 3, 3, 7, 127, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},     /* pointwise, C % 4 = 3 */
    {1, 7, 7, 8, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2},       /* pointwise, groups */
    {2, 5, 5, 6, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 3},       /* pointwise, groups of 2 channels: the last rows copied */
    {1, 13, 13, 3, 33, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1},    /* 1x1 stride 2: im2col */
    {1, 13, 13, 7, 16, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1},    /* stride 3, pad 2 */
    {1, 13, 13, 6, 10, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 2},    /* dilation 2, groups 2 */
    {3, 7, 7, 4, 14, 3, 3, 2, 1, 2, 1, 1, 0, 2, 1, 2},      /* asymmetric everything */
    {1, 3, 13, 33, 65, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1, 1},    /* 65 channels: 64 + 1 */
    {1, 7, 7, 33, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},     /* 3 panels */
    {3, 13, 13, 64, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* several im2col chunks */
    {1, 7, 3, 1, 1, 7, 3, 1, 1, 1, 1, 3, 1, 3, 1, 1},       /* kernel larger than padded... */
    {1, 3, 7, 2, 4, 3, 3, 1, 1, 1, 1, 5, 5, 5, 5, 1},       /* rows entirely in padding */
    /* VNNI on one thread: images with borders through a padded copy */
    {1, 28, 28, 1, 64, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1},    /* DS-CNN conv1: bottom and right padding */
    {2, 9, 11, 5, 7, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 1},      /* windows end before the last row and column */
};

typedef struct qset {
    int32_t *mult, *shift, *bias;
    tml_qparams q;
} qset;

static void make_qset(tu_rng *r, int o, int k, int32_t in_zp, int act, qset *s)
{
    s->mult = malloc(sizeof(int32_t) * (size_t)o);
    s->shift = malloc(sizeof(int32_t) * (size_t)o);
    s->bias = malloc(sizeof(int32_t) * (size_t)o);
    rand_requant(r, o, k, s->mult, s->shift);
    rand_bias(r, o, s->bias);
    s->q.in_zp = in_zp;
    s->q.out_zp = rnd_range(r, -20, 20);
    s->q.mult = s->mult;
    s->q.shift = s->shift;
    s->q.rounding = TML_ROUNDING_TINYML;
    act_bounds(act, s->q.out_zp, &s->q.act_min, &s->q.act_max);
}

static void free_qset(qset *s) { free(s->mult), free(s->shift), free(s->bias); }

static void test_conv_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 31);
    for (size_t ci = 0; ci < sizeof(CONV_CASES) / sizeof(CONV_CASES[0]); ci++) {
        const conv_case *cc = &CONV_CASES[ci];
        const tml_window p = make_win(cc->n, cc->h, cc->w, cc->c, cc->o, cc->kh, cc->kw, cc->sh, cc->sw, cc->dh, cc->dw,
                                      cc->pt, cc->pl, cc->pb, cc->pr, cc->groups, 1);
        const int cg = p.c / p.groups, k = p.kh * p.kw * cg;
        const size_t nx = (size_t)p.n * p.h * p.w * p.c, ny = (size_t)p.n * p.oh * p.ow * p.o;
        const size_t nw = (size_t)p.o * k;
        int8_t *x = malloc(nx), *w = malloc(nw), *yr = malloc(ny), *yf = malloc(ny);
        tu_fill_int8(&r, x, nx, -128, 127);
        tu_fill_int8(&r, w, nw, -128, 127);
        const size_t ss = tml_conv2d_s8_scratch_size(&p);
        uint8_t *scratch = malloc(ss + 1);
        uint8_t *packed = malloc(tml_conv2d_s8_packed_size(&p) + 1);
        for (int zi = 0; zi < 4; zi++) {
            const int act = zi % 3;
            qset qs;
            make_qset(&r, p.o, k, ZPS[zi], act, &qs);
            const int32_t *bias = zi == 3 ? NULL : qs.bias;
            tml_conv2d_s8_ref(&p, &qs.q, x, w, bias, yr);
            for (int isa = 0; isa < n_isas(); isa++)
                for (int th = 1; th <= 2; th++) {
                    set_threads(th);
                    memset(yf, 0x5A, ny);
                    /* odd scratch address: kernels align it themselves */
                    tml_conv2d_s8_ex(&p, &qs.q, x, w, bias, yf, scratch + (th == 2), (tml_s8_isa)isa, 0);
                    if (!tu_equal_i8("conv fast vs ref", yf, yr, ny)) {
                        fprintf(stderr, "  case %zu (n%d %dx%dx%d -> %d, k%dx%d s%d,%d d%d,%d g%d), in_zp %d, act %d, %s, %d threads\n",
                                ci, p.n, p.h, p.w, p.c, p.o, p.kh, p.kw, p.sh, p.sw, p.dh, p.dw, p.groups, ZPS[zi], act,
                                tml_s8_isa_name((tml_s8_isa)isa), th);
                        fail();
                    }
                    /* weights packed once (odd address), then the packed run */
                    memset(yf, 0x5A, ny);
                    tml_conv2d_s8_pack_ex(&p, &qs.q, w, bias, packed + 1, (tml_s8_isa)isa);
                    tml_conv2d_s8_packed_ex(&p, &qs.q, x, packed + 1, yf, scratch + (th == 1), 0);
                    if (!tu_equal_i8("conv packed vs ref", yf, yr, ny)) {
                        fprintf(stderr, "  case %zu, in_zp %d, act %d, %s, %d threads\n", ci, ZPS[zi], act,
                                tml_s8_isa_name((tml_s8_isa)isa), th);
                        fail();
                    }
                }
            free_qset(&qs);
        }
        set_threads(2);
        free(x), free(w), free(yr), free(yf), free(scratch), free(packed);
    }
}

static void test_dwconv_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 32);
    /* n h w c m kh kw sh sw dh dw pt pl pb pr */
    const int cases[][15] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},   {1, 14, 14, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {3, 7, 7, 33, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  {1, 13, 13, 7, 1, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2},
        {1, 7, 13, 3, 2, 3, 3, 1, 2, 2, 1, 2, 1, 2, 1},  {3, 3, 7, 33, 2, 3, 3, 3, 1, 1, 2, 1, 2, 1, 2},
        {1, 13, 3, 16, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, {1, 7, 7, 17, 1, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
        {1, 9, 9, 130, 1, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1}, {1, 7, 7, 1, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 3, 3, 5, 1, 3, 3, 1, 1, 1, 1, 4, 4, 4, 4},
        /* AVX-512 tap groups of 4: 9 taps unpadded, 49 (tail of 6 channels), 64 (the most), 2 blocks of 64 */
        {1, 14, 14, 64, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0}, {2, 9, 9, 70, 1, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3},
        {1, 9, 9, 20, 1, 8, 8, 1, 1, 1, 1, 3, 3, 4, 4},   {1, 5, 5, 128, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
        {1, 6, 5, 3, 1, 2, 3, 1, 1, 1, 1, 1, 1, 0, 1},
        /* VNNI row strips (16 channels or fewer): rows cut into column strips (3x3: 170 columns a strip,
         * 7x7: 36), a dilated ring of 9 row slots, a stride-2 5x5; kernels too large for the strips and
         * for the row kernels' 64 taps (AVX2 kernel) */
        {1, 5, 341, 13, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 9, 80, 16, 1, 7, 7, 1, 2, 1, 1, 3, 3, 3, 3},
        {2, 13, 11, 9, 1, 3, 3, 1, 1, 4, 3, 4, 3, 4, 3},  {1, 17, 15, 16, 1, 5, 5, 2, 2, 1, 1, 2, 2, 1, 1},
        {1, 30, 7, 5, 1, 29, 9, 1, 1, 1, 1, 14, 4, 14, 4}, {1, 20, 6, 35, 1, 17, 5, 1, 1, 1, 1, 8, 2, 8, 2},
        /* 64-channel strips: column strips (3x3: 42 columns a strip), a dilated ring; too large for them
         * (AVX2 kernel; a ring of 141 rows: the per-row tap-group kernel) */
        {1, 4, 100, 40, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 11, 9, 48, 1, 3, 3, 1, 1, 3, 2, 3, 2, 3, 2},
        {1, 46, 5, 36, 1, 45, 5, 1, 1, 1, 1, 22, 2, 22, 2}, {1, 150, 4, 40, 1, 3, 3, 1, 1, 70, 1, 70, 1, 70, 1},
        /* paired entries (3 wide, stride and dilation 1 along x, at most 3 rows): an odd width and a
         * 1-channel second block, one input row (one kernel row present) with strips of 42, 42 and 3
         * columns, 2 kernel rows with pad_l 2 and pad_r 0, stride 2 down only with uneven pads */
        {1, 5, 13, 65, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 87, 40, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {2, 6, 7, 48, 1, 2, 3, 1, 1, 1, 1, 0, 2, 1, 0},   {1, 7, 9, 33, 1, 3, 3, 2, 1, 1, 1, 1, 0, 1, 2},
        /* bands of output rows: dilation 2 down, and 20 rows x 50 columns (strips of 42 and 8, bands of 3
         * rows at 42) */
        {1, 9, 11, 40, 1, 3, 3, 1, 1, 2, 1, 2, 1, 2, 1}, {1, 20, 50, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
    };
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const int *c = cases[ci];
        const tml_window p = make_win(c[0], c[1], c[2], c[3], c[3] * c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11],
                                      c[12], c[13], c[14], 1, c[4]);
        const size_t nx = (size_t)p.n * p.h * p.w * p.c, ny = (size_t)p.n * p.oh * p.ow * p.o;
        const size_t nw = (size_t)p.kh * p.kw * p.o;
        int8_t *x = malloc(nx), *w = malloc(nw), *yr = malloc(ny), *yf = malloc(ny);
        tu_fill_int8(&r, x, nx, -128, 127);
        tu_fill_int8(&r, w, nw, -128, 127);
        for (int zi = 0; zi < 4; zi++) {
            const int act = (zi + 1) % 3;
            qset qs;
            make_qset(&r, p.o, p.kh * p.kw, ZPS[zi], act, &qs);
            const int32_t *bias = zi == 2 ? NULL : qs.bias;
            for (int rnd = 0; rnd < 2; rnd++) {
                qs.q.rounding = rnd ? TML_ROUNDING_TFLITE : TML_ROUNDING_TINYML;
                tml_dwconv2d_s8_ref(&p, &qs.q, x, w, bias, yr);
                for (int isa = 0; isa < n_isas(); isa++)
                    for (int th = 1; th <= 2; th++) {
                        set_threads(th);
                        memset(yf, 0x5A, ny);
                        tml_dwconv2d_s8_ex(&p, &qs.q, x, w, bias, yf, (tml_s8_isa)isa, 0);
                        if (!tu_equal_i8("dwconv fast vs ref", yf, yr, ny)) {
                            fprintf(stderr, "  case %zu, in_zp %d, act %d, rounding %d, %s, %d threads\n", ci,
                                    ZPS[zi], act, rnd, tml_s8_isa_name((tml_s8_isa)isa), th);
                            fail();
                        }
                    }
            }
            free_qset(&qs);
        }
        set_threads(2);
        free(x), free(w), free(yr), free(yf);
    }
}

static void test_dense_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 33);
    const int ns[] = {1, 3, 8, 13};
    const int ins[] = {1, 3, 7, 33, 64, 65, 800};
    const int outs[] = {1, 7, 33, 127};
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 7; b++)
            for (size_t c = 0; c < 4; c++) {
                const int n = ns[a], in = ins[b], out = outs[c];
                int8_t *x = malloc((size_t)n * in), *w = malloc((size_t)out * in);
                int8_t *yr = malloc((size_t)n * out), *yf = malloc((size_t)n * out);
                tu_fill_int8(&r, x, (size_t)n * in, -128, 127);
                tu_fill_int8(&r, w, (size_t)out * in, -128, 127);
                const size_t ss = tml_dense_s8_scratch_size(n, in, out);
                uint8_t *scratch = ss ? malloc(ss + 1) : NULL;
                const int zi = (int)((a + b + c) % 4), act = (int)((a + c) % 3);
                qset qs;
                make_qset(&r, out, in, ZPS[zi], act, &qs);
                const int32_t *bias = (b + c) % 5 == 4 ? NULL : qs.bias;
                tml_dense_s8_ref(n, in, out, &qs.q, x, w, bias, yr);
                for (int isa = 0; isa < n_isas(); isa++)
                    for (int th = 1; th <= 2; th++) {
                        set_threads(th);
                        memset(yf, 0x5A, (size_t)n * out);
                        tml_dense_s8_ex(n, in, out, &qs.q, x, w, bias, yf, scratch ? scratch + (th == 2) : NULL,
                                        (tml_s8_isa)isa, 0);
                        if (!tu_equal_i8("dense fast vs ref", yf, yr, (size_t)n * out)) {
                            fprintf(stderr, "  n %d in %d out %d, in_zp %d, act %d, %s, %d threads\n", n, in, out,
                                    ZPS[zi], act, tml_s8_isa_name((tml_s8_isa)isa), th);
                            fail();
                        }
                    }
                free_qset(&qs);
                free(x), free(w), free(yr), free(yf), free(scratch);
            }
    set_threads(2);
}

/* The vector epilogues on arbitrary accumulators: a 1x1 conv of x == in_zp
 * with weight 1 gives acc = bias exactly, so random int32 biases with random
 * multipliers (negative and INT32_MIN too) and shifts in [-31, 30] drive the
 * SIMD requantization through every corner. Dense (in = 1) likewise. */
static void test_epilogue_exact(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 34);
    enum { O = 97, N = 5 };
    const tml_window p = make_win(N, 1, 1, 1, O, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1);
    int8_t x[N], w[O], yr[N * O], yf[N * O];
    int32_t mult[O], shift[O], bias[O];
    void *scratch = malloc(tml_conv2d_s8_scratch_size(&p) + tml_dense_s8_scratch_size(N, 1, O));
    for (int o = 0; o < O; o++) w[o] = 1;
    for (int it = 0; it < 300; it++) {
        const int32_t zp = rnd_range(&r, -128, 127);
        for (int i = 0; i < N; i++) x[i] = (int8_t)zp;
        for (int o = 0; o < O; o++) {
            const int kind = (int)(tu_rng_u32(&r) % 8);
            bias[o] = kind < 4 ? rnd_i32(&r) : kind < 6 ? rnd_range(&r, -100000, 100000) : kind == 6 ? INT32_MIN : INT32_MAX;
            const int mk = (int)(tu_rng_u32(&r) % 8);
            mult[o] = mk < 5 ? rnd_range(&r, Q30, INT32_MAX) : mk == 5 ? rnd_i32(&r) : mk == 6 ? INT32_MIN : Q30;
            shift[o] = (it % 3 == 0) ? rnd_range(&r, -31, 30) : rnd_range(&r, -31, 0);
        }
        /* both roundings: tinyml's, and TFLite's (negative ties toward +inf) */
        tml_qparams q = {zp, rnd_range(&r, -128, 127), mult, shift, -128, 127,
                         (it / 4) % 2 ? TML_ROUNDING_TFLITE : TML_ROUNDING_TINYML};
        if (it % 4 == 1) act_bounds(2, q.out_zp, &q.act_min, &q.act_max);
        tml_conv2d_s8_ref(&p, &q, x, w, bias, yr);
        for (int isa = 0; isa < n_isas(); isa++) {
            tml_conv2d_s8_ex(&p, &q, x, w, bias, yf, scratch, (tml_s8_isa)isa, INT64_MAX);
            if (!tu_equal_i8("conv epilogue", yf, yr, N * O)) {
                fprintf(stderr, "  iteration %d, %s\n", it, tml_s8_isa_name((tml_s8_isa)isa));
                fail();
            }
            tml_dense_s8_ex(N, 1, O, &q, x, w, bias, yf, scratch, (tml_s8_isa)isa, INT64_MAX);
            if (!tu_equal_i8("dense epilogue", yf, yr, N * O)) {
                fprintf(stderr, "  iteration %d, %s\n", it, tml_s8_isa_name((tml_s8_isa)isa));
                fail();
            }
            tml_dense_s8_ex(1, 1, O, &q, x, w, bias, yf, NULL, (tml_s8_isa)isa, INT64_MAX);
            if (!tu_equal_i8("dense n=1 epilogue", yf, yr, O)) {
                fprintf(stderr, "  iteration %d, %s\n", it, tml_s8_isa_name((tml_s8_isa)isa));
                fail();
            }
        }
        /* depthwise: 1x1, multiplier 1, same trick */
        tml_window pd = make_win(N, 1, 1, O, O, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1);
        int8_t xd[N * O];
        for (int i = 0; i < N * O; i++) xd[i] = (int8_t)zp;
        tml_dwconv2d_s8_ref(&pd, &q, xd, w, bias, yr);
        for (int isa = 0; isa < n_isas(); isa++) {
            tml_dwconv2d_s8_ex(&pd, &q, xd, w, bias, yf, (tml_s8_isa)isa, INT64_MAX);
            if (!tu_equal_i8("dwconv epilogue", yf, yr, N * O)) {
                fprintf(stderr, "  iteration %d, %s\n", it, tml_s8_isa_name((tml_s8_isa)isa));
                fail();
            }
        }
        /* the first 13 channels alone: the VNNI row strips (16 channels or fewer) */
        const tml_window p13 = make_win(N, 1, 1, 13, 13, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1);
        tml_dwconv2d_s8_ref(&p13, &q, xd, w, bias, yr);
        for (int isa = 0; isa < n_isas(); isa++) {
            tml_dwconv2d_s8_ex(&p13, &q, xd, w, bias, yf, (tml_s8_isa)isa, INT64_MAX);
            if (!tu_equal_i8("dwconv 13 epilogue", yf, yr, N * 13)) {
                fprintf(stderr, "  iteration %d, %s\n", it, tml_s8_isa_name((tml_s8_isa)isa));
                fail();
            }
        }
    }
    free(scratch);
}

/* The ReLU epilogue's signed-multiply form (ops_s8_simd.h,
 * tml_s8_rq512_relu_blend_s) and its fallback, on the kernels that use it:
 * a 64 -> 64 pointwise conv (full 64-column GEMM tiles), 3x3 depthwise on 64
 * channels (64-channel strips) and on 16 (16-channel strips). Regimes: right
 * shifts >= 1 (the signed form), channels with shift 0 and mult < 2^30 (the
 * signed form with the odd multipliers doubled), a channel with shift 0 and
 * mult >= 2^30 and one with a right shift of 23 (the unsigned form); small
 * weights in the shift-0 regimes so that outputs are not all saturated;
 * output zero points up to -128 (folded into the signed form's addends);
 * ReLU and ReLU6; both roundings, 1 and 2 threads. */
static void test_relu_signed_epilogue(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 41);
    const tml_window pw = make_win(2, 5, 3, 64, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1);
    const tml_window d64 = make_win(1, 7, 9, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    const tml_window d16 = make_win(1, 6, 5, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    const tml_window *wins[3] = {&pw, &d64, &d16};
    for (int wi = 0; wi < 3; wi++) {
        const tml_window *p = wins[wi];
        const int dw = wi > 0, o = p->o, k = dw ? p->kh * p->kw : p->c;
        const size_t nx = (size_t)p->n * p->h * p->w * p->c, ny = (size_t)p->n * p->oh * p->ow * o;
        const size_t nw = dw ? (size_t)k * o : (size_t)o * k;
        int8_t *x = malloc(nx), *w = malloc(nw), *yr = malloc(ny), *yf = malloc(ny);
        int32_t mult[64], shift[64], bias[64];
        uint8_t *scratch = dw ? NULL : malloc(tml_conv2d_s8_scratch_size(p) + 1);
        for (int it = 0; it < 16; it++) {
            const int regime = it % 4;
            tu_fill_int8(&r, x, nx, -128, 127);
            tu_fill_int8(&r, w, nw, regime == 0 ? -128 : -3, regime == 0 ? 127 : 3);
            if (regime == 0) {
                rand_requant(&r, o, k, mult, shift);
                rand_bias(&r, o, bias);
            } else {
                for (int j = 0; j < o; j++) {
                    shift[j] = j % 3 ? 0 : -rnd_range(&r, 1, 3);
                    mult[j] = rnd_range(&r, Q30 / 2, Q30 - 1);
                    bias[j] = rnd_range(&r, -300, 300);
                }
                if (regime == 2) shift[o - 1] = 0, mult[o - 1] = rnd_range(&r, Q30, INT32_MAX);
                if (regime == 3) shift[1] = -23; /* past the zero-point fold's range */
            }
            const int32_t out_zp = (it / 4) % 2 ? rnd_range(&r, -128, 100) : rnd_range(&r, -20, 20);
            tml_qparams q = {rnd_range(&r, -128, 127), out_zp, mult, shift, 0, 127,
                             (it / 2) % 2 ? TML_ROUNDING_TFLITE : TML_ROUNDING_TINYML};
            act_bounds(it % 2 ? 1 : 2, q.out_zp, &q.act_min, &q.act_max);
            if (dw)
                tml_dwconv2d_s8_ref(p, &q, x, w, bias, yr);
            else
                tml_conv2d_s8_ref(p, &q, x, w, bias, yr);
            for (int isa = 0; isa < n_isas(); isa++)
                for (int th = 1; th <= 2; th++) {
                    set_threads(th);
                    memset(yf, 0x5A, ny);
                    if (dw)
                        tml_dwconv2d_s8_ex(p, &q, x, w, bias, yf, (tml_s8_isa)isa, 0);
                    else
                        tml_conv2d_s8_ex(p, &q, x, w, bias, yf, scratch + 1, (tml_s8_isa)isa, 0);
                    if (!tu_equal_i8("relu epilogue", yf, yr, ny)) {
                        fprintf(stderr, "  %s, regime %d, iteration %d, %s, %d threads\n",
                                wi == 0 ? "pointwise 64" : wi == 1 ? "depthwise 64" : "depthwise 16", regime, it,
                                tml_s8_isa_name((tml_s8_isa)isa), th);
                        fail();
                    }
                }
        }
        set_threads(2);
        free(x), free(w), free(yr), free(yf), free(scratch);
    }
}

/* Exact ties in both roundings: M = 2^30 * 2^(shift-31) with small
 * accumulators makes acc * M land on .5 (in the high multiply and in the
 * right shift) for a large share of the outputs, of both signs. */
static void test_epilogue_ties(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 35);
    enum { O = 37, N = 7 };
    const tml_window p = make_win(N, 1, 1, 1, O, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1);
    int8_t x[N], w[O], yr[N * O], yf[N * O];
    int32_t mult[O], shift[O], bias[O];
    void *scratch = malloc(tml_conv2d_s8_scratch_size(&p) + tml_dense_s8_scratch_size(N, 1, O));
    for (int it = 0; it < 200; it++) {
        const int32_t zp = rnd_range(&r, -128, 127);
        for (int o = 0; o < O; o++) {
            w[o] = (int8_t)rnd_range(&r, -3, 3);
            bias[o] = rnd_range(&r, -600, 600);
            mult[o] = tu_rng_u32(&r) % 4 ? Q30 : 3 * (Q30 / 2);
            shift[o] = rnd_range(&r, -5, it % 2); /* some shift +1 (M = 1 or 1.5) */
        }
        for (int i = 0; i < N; i++) x[i] = (int8_t)rnd_range(&r, -128, 127);
        tml_qparams q = {zp, rnd_range(&r, -10, 10), mult, shift, -128, 127,
                         (it / 2) % 2 ? TML_ROUNDING_TFLITE : TML_ROUNDING_TINYML};
        tml_conv2d_s8_ref(&p, &q, x, w, bias, yr);
        int ties = 0;
        for (int i = 0; i < N; i++)
            for (int o = 0; o < O; o++) {
                const int64_t acc = bias[o] + (int64_t)(x[i] - zp) * w[o];
                ties += shift[o] < 0 && mult[o] == Q30 && (acc & ((2 << -shift[o]) - 1)) == (1 << -shift[o]);
            }
        assert_true(ties > 0 || it % 2);
        for (int isa = 0; isa < n_isas(); isa++) {
            tml_conv2d_s8_ex(&p, &q, x, w, bias, yf, scratch, (tml_s8_isa)isa, INT64_MAX);
            if (!tu_equal_i8("conv ties", yf, yr, N * O)) {
                fprintf(stderr, "  iteration %d, %s\n", it, tml_s8_isa_name((tml_s8_isa)isa));
                fail();
            }
            tml_dense_s8_ex(N, 1, O, &q, x, w, bias, yf, scratch, (tml_s8_isa)isa, INT64_MAX);
            if (!tu_equal_i8("dense ties", yf, yr, N * O)) {
                fprintf(stderr, "  iteration %d, %s\n", it, tml_s8_isa_name((tml_s8_isa)isa));
                fail();
            }
            for (int i = 0; i < N; i++) {
                tml_dense_s8_ex(1, 1, O, &q, x + i, w, bias, yf + i * O, NULL, (tml_s8_isa)isa, INT64_MAX);
            }
            if (!tu_equal_i8("dense n=1 ties", yf, yr, N * O)) {
                fprintf(stderr, "  iteration %d, %s\n", it, tml_s8_isa_name((tml_s8_isa)isa));
                fail();
            }
        }
        /* depthwise 1x1: channel o of pixel i reads x[i*O + o] */
        const tml_window pd = make_win(N, 1, 1, O, O, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1);
        int8_t xd[N * O];
        for (int i = 0; i < N * O; i++) xd[i] = x[i / O];
        tml_dwconv2d_s8_ref(&pd, &q, xd, w, bias, yr);
        for (int isa = 0; isa < n_isas(); isa++) {
            tml_dwconv2d_s8_ex(&pd, &q, xd, w, bias, yf, (tml_s8_isa)isa, INT64_MAX);
            if (!tu_equal_i8("dwconv ties", yf, yr, N * O)) {
                fprintf(stderr, "  iteration %d, %s\n", it, tml_s8_isa_name((tml_s8_isa)isa));
                fail();
            }
        }
    }
    free(scratch);
}

static void test_pool_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 36);
    /* n h w c kh kw sh sw dh dw pt pl pb pr */
    const int cases[][14] = {
        {1, 24, 24, 20, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0}, {3, 7, 13, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
        {1, 13, 7, 130, 3, 2, 1, 2, 1, 1, 0, 1, 2, 0}, {3, 3, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 9, 9, 7, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2},    {1, 1, 1, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 2, 2, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3}, /* windows entirely in the padding */
    };
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const int *c = cases[ci];
        const tml_window p =
            make_win(c[0], c[1], c[2], c[3], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], 1, 1);
        const size_t nx = (size_t)p.n * p.h * p.w * p.c, ny = (size_t)p.n * p.oh * p.ow * p.c;
        int8_t *x = malloc(nx), *yr = malloc(ny), *yf = malloc(ny);
        tu_fill_int8(&r, x, nx, -128, 127);
        const int32_t bounds[3][2] = {{-128, 127}, {-5, 127}, {-20, 40}};
        for (int bi = 0; bi < 3; bi++) {
            tml_maxpool_s8_ref(&p, bounds[bi][0], bounds[bi][1], x, yr);
            for (int isa = 0; isa <= n_isas(); isa++) { /* isa == n_isas(): the public entry point */
                memset(yf, 0x5A, ny);
                if (isa < n_isas()) tml_maxpool_s8_ex(&p, bounds[bi][0], bounds[bi][1], x, yf, (tml_s8_isa)isa);
                else tml_maxpool_s8(&p, bounds[bi][0], bounds[bi][1], x, yf);
                if (!tu_equal_i8("maxpool fast vs ref", yf, yr, ny)) {
                    fprintf(stderr, "  case %zu bounds %d isa %d\n", ci, bi, isa);
                    fail();
                }
            }
            tml_avgpool_s8_ref(&p, bounds[bi][0], bounds[bi][1], x, yr);
            for (int isa = 0; isa <= n_isas(); isa++) {
                memset(yf, 0x5A, ny);
                if (isa < n_isas()) tml_avgpool_s8_ex(&p, bounds[bi][0], bounds[bi][1], x, yf, (tml_s8_isa)isa);
                else tml_avgpool_s8(&p, bounds[bi][0], bounds[bi][1], x, yf);
                if (!tu_equal_i8("avgpool fast vs ref", yf, yr, ny)) {
                    fprintf(stderr, "  case %zu bounds %d isa %d\n", ci, bi, isa);
                    fail();
                }
            }
        }
        free(x), free(yr), free(yf);
    }
    /* negative halves in the fast average: windows of 2 and 4 */
    const int8_t xh[8] = {-1, -2, -3, 0, 0, 1, 0, -3};
    const tml_window p = make_win(1, 2, 4, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1);
    int8_t yh[2];
    tml_avgpool_s8(&p, -128, 127, xh, yh);
    assert_int_equal(yh[0], -1);
    assert_int_equal(yh[1], -2);
}

/* Fast add == reference on odd lengths, every isa, 1 and 2 threads (a count
 * over the parallel block size), in place too; parameters from
 * tml_add_s8_prepare (the one-step requantization) and arbitrary ones
 * (negative and INT32_MIN multipliers, positive output shifts, other left
 * shifts: the general vector form), and parameters outside the vector
 * kernels' range (the reference path). */
static void test_add_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 41);
    const int64_t counts[] = {1, 3, 7, 15, 16, 17, 33, 127, 1000, 200003};
    const int64_t maxc = 200003;
    int8_t *a = malloc(maxc), *b = malloc(maxc), *yr = malloc(maxc), *yf = malloc(maxc), *ip = malloc(maxc);
    for (int pi = 0; pi < 24; pi++) {
        tml_add_s8_params p;
        if (pi < 12) {
            const float s1 = 0.001f + tu_rng_uniform(&r, 0.0f, 0.2f), s2 = 0.001f + tu_rng_uniform(&r, 0.0f, 0.2f);
            const float so = (pi % 3 == 0 ? 0.5f : 1.5f) * (s1 + s2) * tu_rng_uniform(&r, 0.5f, 1.5f);
            tml_add_s8_prepare(s1, rnd_range(&r, -128, 127), pi == 5 ? s1 : s2, rnd_range(&r, -128, 127), so,
                               rnd_range(&r, -128, 127), (tml_act)(pi % 3), &p);
        } else {
            p.in1_zp = rnd_range(&r, -128, 127);
            p.in2_zp = rnd_range(&r, -128, 127);
            p.out_zp = rnd_range(&r, -128, 127);
            p.left_shift = rnd_range(&r, 0, 22);
            p.in1_mult = pi == 12 ? INT32_MIN : rnd_i32(&r);
            p.in2_mult = rnd_i32(&r);
            p.out_mult = pi == 13 ? INT32_MIN : rnd_i32(&r);
            p.in1_shift = rnd_range(&r, -31, 0); /* input shifts <= 0: the reference's sum cannot overflow */
            p.in2_shift = rnd_range(&r, -31, 0);
            p.out_shift = pi % 4 == 0 ? rnd_range(&r, 1, 30) : rnd_range(&r, -31 + p.left_shift, 0);
            p.act_min = rnd_range(&r, -128, 0);
            p.act_max = rnd_range(&r, 0, 127);
            if (pi == 22) p.left_shift = 23; /* outside the vector range: reference path */
            if (pi == 23) p.act_min = -300;
        }
        p.rounding = pi % 2 ? TML_ROUNDING_TFLITE : TML_ROUNDING_TINYML;
        for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
            const int64_t n = counts[ci];
            if (n > 1000 && pi % 6 != 0) continue;
            tu_fill_int8(&r, a, (size_t)n, -128, 127);
            tu_fill_int8(&r, b, (size_t)n, -128, 127);
            tml_add_s8_ref(n, &p, a, b, yr);
            for (int isa = 0; isa < n_isas(); isa++)
                for (int th = 1; th <= 2; th++) {
                    set_threads(th);
                    memset(yf, 0x5A, (size_t)n);
                    tml_add_s8_ex(n, &p, a, b, yf, (tml_s8_isa)isa, 0);
                    memcpy(ip, a, (size_t)n);
                    tml_add_s8_ex(n, &p, ip, b, ip, (tml_s8_isa)isa, 0); /* in place */
                    if (!tu_equal_i8("add fast vs ref", yf, yr, (size_t)n) ||
                        !tu_equal_i8("add fast in place vs ref", ip, yr, (size_t)n)) {
                        fprintf(stderr, "  params %d, count %lld, %s, %d threads\n", pi, (long long)n,
                                tml_s8_isa_name((tml_s8_isa)isa), th);
                        fail();
                    }
                }
        }
    }
    set_threads(2);
    /* the public entry point */
    tml_add_s8_params p;
    tml_add_s8_prepare(0.05f, 3, 0.02f, -7, 0.06f, 1, TML_ACT_RELU, &p);
    tu_fill_int8(&r, a, 1001, -128, 127);
    tu_fill_int8(&r, b, 1001, -128, 127);
    tml_add_s8_ref(1001, &p, a, b, yr);
    tml_add_s8(1001, &p, a, b, yf);
    assert_true(tu_equal_i8("tml_add_s8 vs ref", yf, yr, 1001));
    free(a), free(b), free(yr), free(yf), free(ip);
}

/* Fast clamp and global average pool == reference: odd sizes, every isa,
 * 1 and 2 threads, bounds inside and outside int8. */
static void test_clamp_gap_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 42);
    const int64_t maxc = 300007;
    int8_t *x = malloc(maxc), *yr = malloc(maxc), *yf = malloc(maxc);
    tu_fill_int8(&r, x, (size_t)maxc, -128, 127);
    const int64_t counts[] = {1, 7, 31, 32, 33, 63, 64, 65, 1001, 300007};
    const int32_t bounds[][2] = {{-128, 127}, {-5, 127}, {-20, 40}, {-300, 300}, {7, 7}, {10, -10}};
    for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++)
        for (size_t bi = 0; bi < sizeof(bounds) / sizeof(bounds[0]); bi++) {
            const int64_t n = counts[ci];
            tml_clamp_s8_ref(n, bounds[bi][0], bounds[bi][1], x, yr);
            for (int isa = 0; isa < n_isas(); isa++)
                for (int th = 1; th <= 2; th++) {
                    set_threads(th);
                    memset(yf, 0x5A, (size_t)n);
                    tml_clamp_s8_ex(n, bounds[bi][0], bounds[bi][1], x, yf, (tml_s8_isa)isa, 0);
                    if (!tu_equal_i8("clamp fast vs ref", yf, yr, (size_t)n)) {
                        fprintf(stderr, "  count %lld bounds %zu, %s, %d threads\n", (long long)n, bi,
                                tml_s8_isa_name((tml_s8_isa)isa), th);
                        fail();
                    }
                }
        }
    set_threads(2);
    tml_clamp_s8(1001, -3, 50, x, yf);
    tml_clamp_s8_ref(1001, -3, 50, x, yr);
    assert_true(tu_equal_i8("tml_clamp_s8 vs ref", yf, yr, 1001));
    /* n hw c */
    /* (AVX-512: int16 runs of 256 pixels; 300 = a full run and a partial one) */
    const int gcases[][3] = {{1, 1, 1}, {3, 196, 64}, {2, 49, 65}, {1, 7, 130}, {5, 16, 3}, {1, 2, 17}, {2, 1024, 33},
                             {1, 300, 64}};
    for (size_t ci = 0; ci < sizeof(gcases) / sizeof(gcases[0]); ci++) {
        const int n = gcases[ci][0], hw = gcases[ci][1], c = gcases[ci][2];
        for (int fill = 0; fill < 3; fill++) {
            /* random; all -128 (negative exact halves at even hw); all 127 */
            if (fill == 0) tu_fill_int8(&r, x, (size_t)n * hw * c, -128, 127);
            else memset(x, fill == 1 ? 0x80 : 0x7F, (size_t)n * hw * c);
            if (fill == 0 && hw % 2 == 0) x[0] = (int8_t)(x[0] | 1); /* an odd sum somewhere */
            tml_global_avgpool_s8_ref(n, hw, c, x, yr);
            for (int isa = 0; isa < n_isas(); isa++) {
                memset(yf, 0x5A, (size_t)n * c);
                tml_global_avgpool_s8_ex(n, hw, c, x, yf, (tml_s8_isa)isa);
                if (!tu_equal_i8("global avgpool fast vs ref", yf, yr, (size_t)n * c)) {
                    fprintf(stderr, "  n %d hw %d c %d fill %d, %s\n", n, hw, c, fill, tml_s8_isa_name((tml_s8_isa)isa));
                    fail();
                }
            }
        }
    }
    /* exact halves: mean of {-1, -2} = -1.5 -> -2, of {1, 2} = 1.5 -> 2 */
    const int8_t xh[4] = {-1, 1, -2, 2};
    int8_t yh[2];
    tml_global_avgpool_s8(1, 2, 2, xh, yh);
    assert_int_equal(yh[0], -2);
    assert_int_equal(yh[1], 2);
    tu_fill_int8(&r, x, 196 * 64, -128, 127);
    tml_global_avgpool_s8_ref(1, 196, 64, x, yr);
    tml_global_avgpool_s8(1, 196, 64, x, yf);
    assert_true(tu_equal_i8("tml_global_avgpool_s8 vs ref", yf, yr, 64));
    free(x), free(yr), free(yf);
}

/* Scratch stays bounded whatever the batch; the size never shrinks with it. */
static void test_scratch_bounded(void **state)
{
    (void)state;
    size_t prev = 0;
    for (int n = 1; n <= 4096; n *= 4) {
        const tml_window p = make_win(n, 28, 28, 1, 20, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1);
        const size_t s = tml_conv2d_s8_scratch_size(&p);
        assert_true(s >= prev);
        assert_true(s <= ((size_t)6 << 20));
        prev = s;
    }
    const tml_window big = make_win(256, 32, 32, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    assert_true(tml_conv2d_s8_scratch_size(&big) <= ((size_t)6 << 20));
    assert_int_equal(tml_dense_s8_scratch_size(1, 800, 500), 0);
}

/* float <-> int8 at the model boundary: fast == reference exactly, on odd
 * lengths, with exact halves (ties to even), NaN, infinities and huge values. */
/* ---- packed low-bit weights ----------------------------------------------------------------- */

/* Element i of a stream of width w, bit by bit (independent of tml_s8w_get). */
static int bitwise_get(const uint8_t *p, int w, int64_t i)
{
    int v = 0;
    for (int b = 0; b < w; b++) {
        const int64_t bit = i * w + b;
        v |= ((p[bit / 8] >> (bit % 8)) & 1) << b;
    }
    return v >= (1 << (w - 1)) ? v - (1 << w) : v;
}

static void test_lowbit_pack_unpack(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 41);
    const int64_t counts[] = {0, 1, 3, 7, 31, 32, 33, 63, 64, 65, 127, 1001};
    for (int wb = 2; wb <= 8; wb++)
        for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
            const int64_t n = counts[ci];
            int8_t *w = malloc((size_t)n + 1), *u = malloc((size_t)n + 1);
            const size_t nb = tml_s8w_bytes(n, wb);
            assert_int_equal(nb, (size_t)((n * wb + 7) / 8));
            uint8_t *p = malloc(nb + 1);
            tu_fill_int8(&r, w, (size_t)n, -(1 << (wb - 1)), (1 << (wb - 1)) - 1);
            memset(p, 0xA5, nb + 1);
            tml_s8w_pack(n, wb, w, p);
            assert_int_equal(p[nb], 0xA5); /* nothing written past the stream */
            if ((n * wb) % 8) assert_int_equal(p[nb - 1] >> ((n * wb) % 8), 0); /* zero padding */
            for (int64_t i = 0; i < n; i++) {
                if (bitwise_get(p, wb, i) != w[i] || tml_s8w_get(p, wb, i) != w[i]) {
                    fprintf(stderr, "  %d bits, count %lld, element %lld: %d / %d, expected %d\n", wb, (long long)n,
                            (long long)i, bitwise_get(p, wb, i), tml_s8w_get(p, wb, i), w[i]);
                    fail();
                }
            }
            memset(u, 0x5A, (size_t)n + 1);
            tml_s8w_unpack_ref(n, wb, p, u);
            assert_true(tu_equal_i8("unpack ref", u, w, (size_t)n));
            for (int isa = 0; isa < n_isas(); isa++) {
                memset(u, 0x5A, (size_t)n + 1);
                tml_s8w_unpack_ex(n, wb, p, u, (tml_s8_isa)isa);
                if (!tu_equal_i8("unpack fast", u, w, (size_t)n)) {
                    fprintf(stderr, "  %d bits, count %lld, %s\n", wb, (long long)n, tml_s8_isa_name((tml_s8_isa)isa));
                    fail();
                }
                assert_int_equal((uint8_t)u[n], 0x5A);
            }
            free(w), free(u), free(p);
        }
}

/* A hand-worked W4A8 dense layer: weights -8, 7, 1 pack to bytes 0x78 0x01;
 * x = 1, 2, 3 with in_zp -1 gives acc = 2*-8 + 3*7 + 4*1 + bias 5 = 14. */
static void test_lowbit_dense_hand(void **state)
{
    (void)state;
    const int8_t w[3] = {-8, 7, 1}, x[3] = {1, 2, 3};
    uint8_t p[2];
    tml_s8w_pack(3, 4, w, p);
    assert_int_equal(p[0], 0x78);
    assert_int_equal(p[1], 0x01);
    int32_t mult, shift, bias = 5;
    int sh;
    tml_quantize_multiplier(1.0, &mult, &sh);
    shift = sh;
    tml_qparams q = {.in_zp = -1, .out_zp = 0, .mult = &mult, .shift = &shift, .act_min = -128, .act_max = 127};
    int8_t y = 0;
    tml_dense_s8w_ref(1, 3, 1, 4, &q, x, p, &bias, &y);
    assert_int_equal(y, 14);
}

/* The packed-weight reference kernels compute exactly what the int8 ones do
 * on the unpacked weights, for every width, on odd sizes (rows that start
 * inside a byte); the fast path (unpack, then the int8 fast kernels, as the
 * engine runs it) matches them for every instruction set and 1 / 2 threads. */
static void test_lowbit_kernels_vs_int8(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 42);
    const int widths[] = {2, 3, 4, 5, 7};
    for (size_t wi = 0; wi < sizeof(widths) / sizeof(widths[0]); wi++) {
        const int wb = widths[wi], lo = -(1 << (wb - 1)), hi = (1 << (wb - 1)) - 1;
        for (size_t ci = 0; ci < sizeof(CONV_CASES) / sizeof(CONV_CASES[0]); ci++) {
            const conv_case *cc = &CONV_CASES[ci];
            const tml_window p = make_win(cc->n, cc->h, cc->w, cc->c, cc->o, cc->kh, cc->kw, cc->sh, cc->sw, cc->dh, cc->dw,
                                          cc->pt, cc->pl, cc->pb, cc->pr, cc->groups, 1);
            const size_t nx = (size_t)p.n * p.h * p.w * p.c, ny = (size_t)p.n * p.oh * p.ow * p.o;
            const size_t nw = (size_t)p.o * p.kh * p.kw * (p.c / p.groups);
            int8_t *x = malloc(nx), *w = malloc(nw), *y8 = malloc(ny), *yw = malloc(ny);
            uint8_t *pk = malloc(tml_s8w_bytes((int64_t)nw, wb) + 1);
            tu_fill_int8(&r, x, nx, -128, 127);
            tu_fill_int8(&r, w, nw, lo, hi);
            tml_s8w_pack((int64_t)nw, wb, w, pk);
            qset qs;
            make_qset(&r, p.o, (int)(nw / p.o), ZPS[ci % 4], (int)(ci % 3), &qs);
            tml_conv2d_s8_ref(&p, &qs.q, x, w, qs.bias, y8);
            tml_conv2d_s8w_ref(&p, &qs.q, wb, x, pk, qs.bias, yw);
            if (!tu_equal_i8("conv packed ref vs int8 ref", yw, y8, ny)) {
                fprintf(stderr, "  %d bits, conv case %zu\n", wb, ci);
                fail();
            }
            /* the fast path: unpack, pack for the instruction set, run; every
             * isa and 1 / 2 threads against the packed reference */
            int8_t *wu = malloc(nw), *yf = malloc(ny);
            uint8_t *scratch = malloc(tml_conv2d_s8_scratch_size(&p) + 1), *packed = malloc(tml_conv2d_s8_packed_size(&p) + 1);
            for (int isa = 0; isa < n_isas(); isa++)
                for (int th = 1; th <= 2; th++) {
                    set_threads(th);
                    tml_s8w_unpack_ex((int64_t)nw, wb, pk, wu, (tml_s8_isa)isa);
                    tml_conv2d_s8_pack_ex(&p, &qs.q, wu, qs.bias, packed, (tml_s8_isa)isa);
                    memset(yf, 0x5A, ny);
                    tml_conv2d_s8_packed_ex(&p, &qs.q, x, packed, yf, scratch, 0);
                    if (!tu_equal_i8("conv packed weights: fast vs packed ref", yf, yw, ny)) {
                        fprintf(stderr, "  %d bits, conv case %zu, %s, %d threads\n", wb, ci, tml_s8_isa_name((tml_s8_isa)isa), th);
                        fail();
                    }
                }
            set_threads(2);
            free(wu), free(yf), free(scratch), free(packed);
            free_qset(&qs);
            free(x), free(w), free(y8), free(yw), free(pk);
        }
        /* depthwise, depth multiplier 1 and 3, odd channel counts */
        const int dwc[][5] = {{1, 7, 7, 7, 1}, {2, 9, 5, 33, 1}, {1, 5, 5, 3, 3}, {1, 6, 6, 13, 1}};
        for (size_t ci = 0; ci < 4; ci++) {
            const tml_window p = make_win(dwc[ci][0], dwc[ci][1], dwc[ci][2], dwc[ci][3], dwc[ci][3] * dwc[ci][4], 3, 3,
                                          1 + (int)(ci & 1), 1, 1, 1, 1, 1, 1, 1, 1, dwc[ci][4]);
            const size_t nx = (size_t)p.n * p.h * p.w * p.c, ny = (size_t)p.n * p.oh * p.ow * p.o, nw = (size_t)9 * p.o;
            int8_t *x = malloc(nx), *w = malloc(nw), *y8 = malloc(ny), *yw = malloc(ny);
            uint8_t *pk = malloc(tml_s8w_bytes((int64_t)nw, wb) + 1);
            tu_fill_int8(&r, x, nx, -128, 127);
            tu_fill_int8(&r, w, nw, lo, hi);
            tml_s8w_pack((int64_t)nw, wb, w, pk);
            qset qs;
            make_qset(&r, p.o, 9, ZPS[ci], (int)(ci % 3), &qs);
            tml_dwconv2d_s8_ref(&p, &qs.q, x, w, qs.bias, y8);
            tml_dwconv2d_s8w_ref(&p, &qs.q, wb, x, pk, qs.bias, yw);
            if (!tu_equal_i8("depthwise packed ref vs int8 ref", yw, y8, ny)) {
                fprintf(stderr, "  %d bits, depthwise case %zu\n", wb, ci);
                fail();
            }
            int8_t *wu = malloc(nw), *yf = malloc(ny);
            for (int isa = 0; isa < n_isas(); isa++)
                for (int th = 1; th <= 2; th++) {
                    set_threads(th);
                    tml_s8w_unpack_ex((int64_t)nw, wb, pk, wu, (tml_s8_isa)isa);
                    memset(yf, 0x5A, ny);
                    tml_dwconv2d_s8_ex(&p, &qs.q, x, wu, qs.bias, yf, (tml_s8_isa)isa, 0);
                    if (!tu_equal_i8("depthwise packed weights: fast vs packed ref", yf, yw, ny)) {
                        fprintf(stderr, "  %d bits, depthwise case %zu, %s, %d threads\n", wb, ci,
                                tml_s8_isa_name((tml_s8_isa)isa), th);
                        fail();
                    }
                }
            set_threads(2);
            free(wu), free(yf);
            free_qset(&qs);
            free(x), free(w), free(y8), free(yw), free(pk);
        }
        const int dn[][3] = {{1, 1, 1}, {3, 7, 33}, {13, 33, 7}, {2, 800, 127}};
        for (size_t ci = 0; ci < 4; ci++) {
            const int n = dn[ci][0], in = dn[ci][1], out = dn[ci][2];
            int8_t *x = malloc((size_t)n * in), *w = malloc((size_t)in * out), *y8 = malloc((size_t)n * out),
                   *yw = malloc((size_t)n * out);
            uint8_t *pk = malloc(tml_s8w_bytes((int64_t)in * out, wb) + 1);
            tu_fill_int8(&r, x, (size_t)n * in, -128, 127);
            tu_fill_int8(&r, w, (size_t)in * out, lo, hi);
            tml_s8w_pack((int64_t)in * out, wb, w, pk);
            qset qs;
            make_qset(&r, out, in, ZPS[(ci + 1) % 4], (int)(ci % 3), &qs);
            tml_dense_s8_ref(n, in, out, &qs.q, x, w, qs.bias, y8);
            tml_dense_s8w_ref(n, in, out, wb, &qs.q, x, pk, qs.bias, yw);
            if (!tu_equal_i8("dense packed ref vs int8 ref", yw, y8, (size_t)n * out)) {
                fprintf(stderr, "  %d bits, dense %d x %d -> %d\n", wb, n, in, out);
                fail();
            }
            int8_t *wu = malloc((size_t)in * out), *yf = malloc((size_t)n * out);
            const size_t ss = tml_dense_s8_scratch_size(n, in, out);
            uint8_t *scratch = ss ? malloc(ss) : NULL;
            for (int isa = 0; isa < n_isas(); isa++)
                for (int th = 1; th <= 2; th++) {
                    set_threads(th);
                    tml_s8w_unpack_ex((int64_t)in * out, wb, pk, wu, (tml_s8_isa)isa);
                    memset(yf, 0x5A, (size_t)n * out);
                    tml_dense_s8_ex(n, in, out, &qs.q, x, wu, qs.bias, yf, scratch, (tml_s8_isa)isa, 0);
                    if (!tu_equal_i8("dense packed weights: fast vs packed ref", yf, yw, (size_t)n * out)) {
                        fprintf(stderr, "  %d bits, dense %d x %d -> %d, %s, %d threads\n", wb, n, in, out,
                                tml_s8_isa_name((tml_s8_isa)isa), th);
                        fail();
                    }
                }
            set_threads(2);
            free(wu), free(yf), free(scratch);
            free_qset(&qs);
            free(x), free(w), free(y8), free(yw), free(pk);
        }
    }
}

static void test_boundary_quantize_exact(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 77);
    const int lens[6] = {1, 7, 15, 16, 33, 1027};
    const float invs[3] = {1.0f, 255.0f, 0.37f};
    const int32_t zps[4] = {-128, -1, 0, 127};
    for (int li = 0; li < 6; li++)
        for (int ii = 0; ii < 3; ii++)
            for (int zi = 0; zi < 4; zi++) {
                int n = lens[li];
                float *x = malloc(sizeof(float) * (size_t)n);
                int8_t *a = malloc((size_t)n), *b = malloc((size_t)n);
                for (int i = 0; i < n; i++) {
                    switch (i % 8) {
                    case 0: x[i] = (float)((int)tu_rng_u32(&r) % 300 - 150) / invs[ii] * 0.5f; break; /* halves */
                    case 1: x[i] = NAN; break;
                    case 2: x[i] = (i & 16) ? INFINITY : -INFINITY; break;
                    case 3: x[i] = tu_rng_uniform(&r, -1e30f, 1e30f); break;
                    default: x[i] = tu_rng_uniform(&r, -2.0f, 2.0f); break;
                    }
                }
                tml_quantize_f32_s8_ref(n, x, invs[ii], zps[zi], a);
                tml_quantize_f32_s8(n, x, invs[ii], zps[zi], b);
                TU_ASSERT_EQ_I8(a, b, (size_t)n);
                for (int i = 1; i < n; i += 8) assert_int_equal(a[i], zps[zi]); /* NaN -> zero point */
                float *ya = malloc(sizeof(float) * (size_t)n), *yb = malloc(sizeof(float) * (size_t)n);
                tml_dequantize_s8_f32_ref(n, a, 0.0123f, zps[zi], ya);
                tml_dequantize_s8_f32(n, a, 0.0123f, zps[zi], yb);
                TU_ASSERT_CLOSE(ya, yb, (size_t)n, 0.0f);
                free(x);
                free(a);
                free(b);
                free(ya);
                free(yb);
            }
    /* ties go to even: 0.5 -> 0, 1.5 -> 2, -2.5 -> -2 */
    float t[3] = {0.5f, 1.5f, -2.5f};
    int8_t qt[3];
    tml_quantize_f32_s8(3, t, 1.0f, 0, qt);
    assert_int_equal(qt[0], 0);
    assert_int_equal(qt[1], 2);
    assert_int_equal(qt[2], -2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary_quantize_exact),
        cmocka_unit_test(test_quantize_multiplier),
        cmocka_unit_test(test_high_mul_cases),
        cmocka_unit_test(test_rounding_divide_cases),
        cmocka_unit_test(test_requantize_cases),
        cmocka_unit_test(test_requantize_random),
        cmocka_unit_test(test_act_bounds),
        cmocka_unit_test(test_conv_ref_hand),
        cmocka_unit_test(test_dwconv_ref_hand),
        cmocka_unit_test(test_dense_ref_hand),
        cmocka_unit_test(test_add_ref_hand),
        cmocka_unit_test(test_pool_ref_hand),
        cmocka_unit_test(test_softmax_ref_hand),
        cmocka_unit_test(test_conv_vs_float),
        cmocka_unit_test(test_dwconv_vs_float),
        cmocka_unit_test(test_dense_vs_float),
        cmocka_unit_test(test_eltwise_pool_softmax_vs_float),
        cmocka_unit_test(test_conv_fast_vs_ref),
        cmocka_unit_test(test_dwconv_fast_vs_ref),
        cmocka_unit_test(test_dense_fast_vs_ref),
        cmocka_unit_test(test_epilogue_exact),
        cmocka_unit_test(test_epilogue_ties),
        cmocka_unit_test(test_relu_signed_epilogue),
        cmocka_unit_test(test_pool_fast_vs_ref),
        cmocka_unit_test(test_add_fast_vs_ref),
        cmocka_unit_test(test_clamp_gap_fast_vs_ref),
        cmocka_unit_test(test_scratch_bounded),
        cmocka_unit_test(test_lowbit_pack_unpack),
        cmocka_unit_test(test_lowbit_dense_hand),
        cmocka_unit_test(test_lowbit_kernels_vs_int8),
    };
    fprintf(stderr, "INT8 instruction set: %s\n", tml_s8_isa_name(tml_s8_cpu_isa()));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
