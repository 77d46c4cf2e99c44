/*
 * quant_math.c - fixed-point arithmetic of the INT8 path (docs/numerics.md):
 * splitting a real multiplier into a Q31 multiplier and a shift, the rounding
 * doubling high multiply, the rounding right shift, requantization, and the
 * prepare-time helpers (activation clamp bounds, add multipliers, softmax
 * table). Everything here is written for obviousness: these functions are the
 * definition the fast kernels are tested against.
 */
#include <math.h>

#include "ops_s8_internal.h"

/*
 * real = frac * 2^e with frac in [0.5, 1) (frexp); mult = round(frac * 2^31) in
 * [2^30, 2^31], shift = e. Rounding can carry frac up to exactly 1.0 (mult
 * 2^31 does not fit int32): then mult = 2^30 and shift = e + 1, the same value.
 * So real ~= mult * 2^(shift - 31) with a relative error <= 2^-31.
 *
 * Ranges: tml_requantize accepts shift in [-31, 30]. real < 2^-32 (shift
 * < -31) underflows to mult 0, shift 0 (every accumulator maps to 0); real >=
 * 2^30 (shift > 30) is clamped to mult INT32_MAX, shift 30. Non-positive or
 * NaN reals give mult 0, shift 0.
 */
void tml_quantize_multiplier(double real, int32_t *mult, int *shift)
{
    if (!(real > 0.0)) {
        *mult = 0;
        *shift = 0;
        return;
    }
    if (isinf(real)) {
        *mult = INT32_MAX;
        *shift = 30;
        return;
    }
    int e = 0;
    const double frac = frexp(real, &e);                  /* [0.5, 1) */
    int64_t q = (int64_t)llround(frac * 2147483648.0);     /* [2^30, 2^31] */
    if (q == ((int64_t)1 << 31)) {
        q /= 2;
        e++;
    }
    if (e < -31) {
        *mult = 0;
        *shift = 0;
        return;
    }
    if (e > 30) {
        *mult = INT32_MAX;
        *shift = 30;
        return;
    }
    *mult = (int32_t)q;
    *shift = e;
}

/*
 * round(a * b / 2^31), i.e. the high 32 bits of the doubled 64-bit product,
 * rounded half away from zero. The only result that does not fit int32 is
 * a == b == INT32_MIN (2^62 / 2^31 = 2^31): saturated to INT32_MAX.
 * (C's `/` truncates toward zero, so adding +-2^30 before it rounds half away.)
 */
int32_t tml_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : -((int64_t)1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/*
 * x / 2^exponent rounded half away from zero, exponent in [0, 31]. The
 * arithmetic shift floors; the remainder (the low bits) then decides whether
 * to step up by one: above half for x >= 0, at or above half for x < 0 (the
 * threshold is one larger because floor already moved negative values down).
 * Relies on >> of a negative int being arithmetic (true for every compiler
 * this builds with; C leaves it implementation-defined).
 */
int32_t tml_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/*
 * acc * mult * 2^(shift - 31), in two roundings (both half away from zero):
 * a left shift (for shift > 0, multipliers >= 1), the doubling high multiply,
 * then the rounding right shift (for shift < 0). The left shift saturates to
 * int32 instead of overflowing; callers keep acc * 2^shift in range (it is:
 * shift > 0 only comes from real multipliers >= 1, which accumulators of a
 * sane model never need with large values).
 */
int32_t tml_requantize(int32_t acc, int32_t mult, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    int64_t shifted = (int64_t)acc * ((int64_t)1 << left);
    if (shifted > INT32_MAX) shifted = INT32_MAX;
    if (shifted < INT32_MIN) shifted = INT32_MIN;
    return tml_rounding_divide_by_pot(tml_sat_rounding_doubling_high_mul((int32_t)shifted, mult), right);
}

/*
 * NONE: the whole int8 range. RELU: real 0 is q = zp. RELU6: real 6 is
 * q = zp + round(6 / scale). Bounds are clipped to [-128, 127]; a scale so small
 * that 6 does not fit simply leaves 127.
 */
void tml_act_bounds_s8(tml_act act, float scale, int32_t zp, int32_t *act_min, int32_t *act_max)
{
    int32_t lo = -128, hi = 127;
    if (act == TML_ACT_RELU || act == TML_ACT_RELU6) lo = zp > -128 ? zp : -128;
    if (act == TML_ACT_RELU6 && scale > 0.0f) {
        const double top = (double)zp + round(6.0 / (double)scale);
        if (top < 127.0) hi = (int32_t)top;
    }
    if (lo > 127) lo = 127;
    if (hi < lo) hi = lo;
    *act_min = lo;
    *act_max = hi;
}

/*
 * TFLite's add: inputs are moved to a common scale 2*max(s1, s2) with 20 extra
 * bits of headroom, so their multipliers s_i / (2*max) are <= 0.5 and the
 * rescaled values keep ~20 fractional bits; the sum is then scaled to the
 * output by 2*max / (2^20 * so).
 */
void tml_add_s8_prepare(float s1, int32_t zp1, float s2, int32_t zp2, float so, int32_t zpo, tml_act act,
                        tml_add_s8_params *p)
{
    const int left_shift = 20;
    const double twice_max = 2.0 * ((double)s1 > (double)s2 ? (double)s1 : (double)s2);
    p->in1_zp = zp1;
    p->in2_zp = zp2;
    p->out_zp = zpo;
    p->left_shift = left_shift;
    p->rounding = TML_ROUNDING_TINYML;
    tml_quantize_multiplier((double)s1 / twice_max, &p->in1_mult, &p->in1_shift);
    tml_quantize_multiplier((double)s2 / twice_max, &p->in2_mult, &p->in2_shift);
    tml_quantize_multiplier(twice_max / ((double)(1 << left_shift) * (double)so), &p->out_mult, &p->out_shift);
    tml_act_bounds_s8(act, so, zpo, &p->act_min, &p->act_max);
}

/* lut[d] = round(2^16 * exp(-in_scale * d)): the unnormalized probability of an
 * input d steps below the row maximum (lut[0] = 65536). Float math, once, at
 * prepare time; the kernel is integer only. */
void tml_softmax_s8_lut(float in_scale, uint32_t lut[256])
{
    for (int d = 0; d < 256; d++) lut[d] = (uint32_t)llround(65536.0 * exp(-(double)in_scale * d));
}

/* ---- TFLite arithmetic (TML_ROUNDING_TFLITE) ----------------------------------------------- */

/*
 * gemmlowp's SaturatingRoundingDoublingHighMul: (ab + nudge) / 2^31 with C's
 * truncating division and nudge 2^30 for ab >= 0, 1 - 2^30 for ab < 0. For
 * ab < 0 that is -floor((|ab| + 2^30 - 1) / 2^31): a tie (|ab| = k 2^31 +
 * 2^30) goes to -k, toward +infinity; over both signs the result is
 * floor((ab + 2^30) / 2^31), round half up.
 */
int32_t tml_sat_rounding_doubling_high_mul_tfl(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

int32_t tml_requantize_tfl(int32_t acc, int32_t mult, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    int64_t shifted = (int64_t)acc * ((int64_t)1 << left);
    if (shifted > INT32_MAX) shifted = INT32_MAX;
    if (shifted < INT32_MIN) shifted = INT32_MIN;
    return tml_rounding_divide_by_pot(tml_sat_rounding_doubling_high_mul_tfl((int32_t)shifted, mult), right);
}

int32_t tml_requantize_mode(int32_t acc, int32_t mult, int shift, int rounding)
{
    return rounding == TML_ROUNDING_TFLITE ? tml_requantize_tfl(acc, mult, shift) : tml_requantize(acc, mult, shift);
}

/* zp + round(f / scale) as TFLite's Quantize() in kernel_util.cc: a float
 * division, roundf (half away from zero), then the int32 cast; values beyond
 * int32 (TFLite refuses the model) are clamped so the cast stays defined. */
static int32_t tfl_quantize_value(float f, float scale, int32_t zp)
{
    const float t = roundf(f / scale);
    if (!(t > -2147483648.0f)) return INT32_MIN / 2;
    if (!(t < 2147483648.0f)) return INT32_MAX / 2;
    return zp + (int32_t)t;
}

void tml_act_bounds_s8_tfl(tml_act act, float scale, int32_t zp, int32_t *act_min, int32_t *act_max)
{
    int32_t lo = -128, hi = 127;
    if (act == TML_ACT_RELU || act == TML_ACT_RELU6) {
        const int32_t q0 = tfl_quantize_value(0.0f, scale, zp);
        lo = q0 > lo ? q0 : lo;
    }
    if (act == TML_ACT_RELU6) {
        const int32_t q6 = tfl_quantize_value(6.0f, scale, zp);
        hi = q6 < hi ? q6 : hi;
    }
    *act_min = lo;
    *act_max = hi;
}

void tml_add_s8_prepare_mode(float s1, int32_t zp1, float s2, int32_t zp2, float so, int32_t zpo, tml_act act,
                             int rounding, tml_add_s8_params *p)
{
    tml_add_s8_prepare(s1, zp1, s2, zp2, so, zpo, act, p);
    p->rounding = rounding;
    if (rounding == TML_ROUNDING_TFLITE) tml_act_bounds_s8_tfl(act, so, zpo, &p->act_min, &p->act_max);
}
