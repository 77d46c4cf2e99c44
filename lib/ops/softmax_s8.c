/*
 * softmax_s8.c - INT8 softmax over rows, integer only at run time.
 *
 * exp(s * (x - max)) only depends on d = max - x in [0, 255], so the
 * prepare step tabulates lut[d] = round(2^16 * exp(-s * d)) (tml_softmax_s8_lut).
 * The kernel sums the row's table entries (uint64: k * 2^16 never overflows)
 * and emits the probability at output scale 1/256, zero point -128:
 *   y = clamp(round_half_away(256 * lut[d] / sum) - 128, -128, 127)
 * computed exactly as floor((512 * lut[d] + sum) / (2 * sum)) (all positive).
 * A probability of 1 would be 256 - 128 = 128 and saturates to 127.
 */
#include <math.h>

#include "ops_s8_internal.h"

void tml_softmax_s8_ref(int n, int k, const uint32_t lut[256], const int8_t *x, int8_t *y)
{
    for (int r = 0; r < n; r++) {
        const int8_t *xr = x + (int64_t)r * k;
        int8_t *yr = y + (int64_t)r * k;
        int32_t mx = -128;
        for (int i = 0; i < k; i++)
            if (xr[i] > mx) mx = xr[i];
        uint64_t sum = 0;
        for (int i = 0; i < k; i++) sum += lut[mx - xr[i]];
        for (int i = 0; i < k; i++) {
            const uint64_t num = 512u * (uint64_t)lut[mx - xr[i]] + sum;
            int64_t v = (int64_t)(num / (2u * sum)) - 128;
            if (v > 127) v = 127;
            yr[i] = (int8_t)v;
        }
    }
}

/* ---- TFLite's softmax (TML_ROUNDING_TFLITE) ---------------------------------------------------
 * gemmlowp fixed point: a Qm.n value is an int32 raw r meaning r / 2^n with m
 * integer bits, n = 31 - m. A product of Qa and Qb is the rounding doubling
 * high multiply of the raws, in Q(a+b). Additions are plain int32 additions
 * (written on uint32: gemmlowp's wrap, without C's signed overflow). */

static int32_t fx_mul(int32_t a, int32_t b) { return tml_sat_rounding_doubling_high_mul_tfl(a, b); }
static int32_t fx_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static int32_t fx_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* x * 2^e for e in 1..30, saturating to the int32 range (SaturatingRoundingMultiplyByPOT, e > 0). */
static int32_t fx_sat_shl(int32_t x, int e)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((int64_t)x * ((int64_t)1 << e));
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor around -1/8,
 * exp(-1/8) (1 + x + x^2/2 + x^3/6 + x^4/24) with x = a + 1/8. */
static int32_t fx_exp_quarter(int32_t a)
{
    const int32_t exp_m1_8 = 1895147668;  /* exp(-1/8) in Q0.31 */
    const int32_t one_third = 715827883;  /* 1/3 in Q0.31 */
    const int32_t x = fx_add(a, 1 << 28); /* + 1/8 */
    const int32_t x2 = fx_mul(x, x), x3 = fx_mul(x2, x), x4 = fx_mul(x2, x2);
    const int32_t x4_4 = tml_rounding_divide_by_pot(x4, 2);
    const int32_t poly = tml_rounding_divide_by_pot(fx_add(fx_mul(fx_add(x4_4, x3), one_third), x2), 1);
    return fx_add(exp_m1_8, fx_mul(exp_m1_8, fx_add(x, poly)));
}

/*
 * exp(a) for a <= 0 given in Q5.26, result Q0.31. a = q + r with r in
 * [-1/4, 0) the low bits shifted (a mod 1/4 - 1/4) and q = a - r a
 * non-positive multiple of 1/4; exp(r) by the polynomial, then one factor
 * exp(-2^k) (k = -2..4, Q0.31 constants round(exp(-2^k) 2^31)) for each bit
 * of -q. Inputs below -32 cannot occur (5 integer bits); exp(0) is exactly
 * the largest Q0.31 value.
 */
int32_t tml_fx_exp_on_negative_values_q5(int32_t a)
{
    static const int32_t factor[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t quarter = 1 << 24; /* 1/4 in Q5.26 */
    const int32_t a_mod = fx_sub(a & (quarter - 1), quarter);
    int32_t result = fx_exp_quarter(fx_sat_shl(a_mod, 5)); /* Q5.26 -> Q0.31 */
    const int32_t remainder = fx_sub(a_mod, a);
    for (int k = 0; k < 7; k++) /* bit 26 + (k - 2) of -q */
        if (remainder & (int32_t)((uint32_t)1 << (24 + k))) result = fx_mul(result, factor[k]);
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out: Newton-Raphson on the half
 * denominator d = (1 + a) / 2 from 48/17 - 32/17 d, three steps, in Q2.29. */
int32_t tml_fx_one_over_one_plus_x(int32_t a)
{
    const int64_t s = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)((s + (s >= 0 ? 1 : -1)) / 2); /* RoundingHalfSum(a, 1) */
    const int32_t c48_17 = 1515870810, c_neg32_17 = -1010580540;     /* Q2.29 */
    const int32_t one_q2 = 1 << 29;
    int32_t x = fx_add(c48_17, fx_mul(half_den, c_neg32_17));
    for (int i = 0; i < 3; i++) {
        const int32_t e = fx_sub(one_q2, fx_mul(half_den, x)); /* Q2.29 */
        x = fx_add(x, fx_sat_shl(fx_mul(x, e), 2));            /* Q4.27 -> Q2.29 */
    }
    return fx_sat_shl(x, 1); /* x / 2 read as Q1.30, to Q0.31 */
}

static int clz32(uint32_t v)
{
    int n = 0;
    if (!v) return 32;
    while (!(v & 0x80000000u)) {
        v <<= 1;
        n++;
    }
    return n;
}

void tml_softmax_s8_tfl_prepare(float in_scale, float beta, tml_softmax_s8_tfl_params *p)
{
    /* PreprocessSoftmaxScaling with 5 integer bits for the scaled difference */
    double real = (double)beta * (double)in_scale * (double)(1 << 26);
    if (real > 2147483647.0) real = 2147483647.0;
    int32_t mult;
    int shift;
    tml_quantize_multiplier(real, &mult, &shift);
    p->input_multiplier = mult;
    p->input_left_shift = shift;
    /* CalculateInputRadius(5, shift): floor(31 * 2^26 / 2^shift) */
    const double radius = floor(31.0 * (double)((int64_t)1 << 26) / (double)((int64_t)1 << (shift > 0 ? shift : 0)));
    p->diff_min = (int32_t)(-radius);
}

/* the scaled difference of one input, Q5.26 (MultiplyByQuantizedMultiplierGreaterThanOne) */
static int32_t sm_scaled(int32_t diff, const tml_softmax_s8_tfl_params *p)
{
    const int64_t v = (int64_t)diff * ((int64_t)1 << p->input_left_shift);
    return fx_mul((int32_t)v, p->input_multiplier);
}

void tml_softmax_s8_tfl_ref(int n, int k, const tml_softmax_s8_tfl_params *p, const int8_t *x, int8_t *y)
{
    for (int r = 0; r < n; r++) {
        const int8_t *xr = x + (int64_t)r * k;
        int8_t *yr = y + (int64_t)r * k;
        int32_t mx = -128;
        for (int i = 0; i < k; i++)
            if (xr[i] > mx) mx = xr[i];
        /* sum of exps in Q12.19 */
        int32_t sum = 0;
        for (int i = 0; i < k; i++) {
            const int32_t d = xr[i] - mx;
            if (d >= p->diff_min)
                sum = fx_add(sum, tml_rounding_divide_by_pot(tml_fx_exp_on_negative_values_q5(sm_scaled(d, p)), 12));
        }
        /* 1 / sum: sum = 2^(bits over unit) (1 + f), f in [0, 1) */
        const int headroom = clz32((uint32_t)sum);
        const int bits_over_unit = 12 - headroom;
        const int32_t f = (int32_t)(((uint32_t)sum << headroom) - 0x80000000u);
        const int32_t scale = tml_fx_one_over_one_plus_x(f);
        int exponent = bits_over_unit + 31 - 8;
        if (exponent < 0) exponent = 0;
        if (exponent > 31) exponent = 31;
        for (int i = 0; i < k; i++) {
            const int32_t d = xr[i] - mx;
            int32_t v = -128;
            if (d >= p->diff_min) {
                v = tml_rounding_divide_by_pot(fx_mul(scale, tml_fx_exp_on_negative_values_q5(sm_scaled(d, p))),
                                               exponent) -
                    128;
                if (v > 127) v = 127;
                if (v < -128) v = -128;
            }
            yr[i] = (int8_t)v;
        }
    }
}
