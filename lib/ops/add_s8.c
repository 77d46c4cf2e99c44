/*
 * add_s8.c - elementwise INT8 add with rescaling (TFLite's method, see
 * tml_add_s8_prepare in quant_math.c and docs/numerics.md) and the standalone
 * clamp used for ReLU / ReLU6 nodes that were not fused.
 */
#include "ops_s8_internal.h"

/*
 * For each element: a' = (a - zp1) * 2^20 (|a - zp1| <= 255, so a' < 2^28),
 * scaled1 = requantize(a', m1, sh1) (now at scale 2*max(s1,s2) / 2^20), same
 * for b; out = clamp(requantize(scaled1 + scaled2, mo, sho) + zpo). The sum of
 * two values of magnitude <= 2^27 cannot overflow.
 */
void tml_add_s8_ref(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    for (int64_t i = 0; i < count; i++) {
        const int32_t a1 = (a[i] - p->in1_zp) * (1 << p->left_shift);
        const int32_t b1 = (b[i] - p->in2_zp) * (1 << p->left_shift);
        const int32_t sa = tml_requantize(a1, p->in1_mult, p->in1_shift);
        const int32_t sb = tml_requantize(b1, p->in2_mult, p->in2_shift);
        int64_t v = (int64_t)tml_requantize(sa + sb, p->out_mult, p->out_shift) + p->out_zp;
        if (v < p->act_min) v = p->act_min;
        if (v > p->act_max) v = p->act_max;
        y[i] = (int8_t)v;
    }
}

void tml_clamp_s8_ref(int64_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y)
{
    for (int64_t i = 0; i < count; i++) {
        int32_t v = x[i];
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        y[i] = (int8_t)v;
    }
}
