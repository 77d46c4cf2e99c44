/*
 * pool_s8.c - INT8 max / average / global average pooling. Pools keep the
 * input's scale and zero point, so they need no requantization: max is exact,
 * the average is the integer mean of the in-range taps rounded half away from
 * zero. Padded taps are skipped (not counted in the average), as in the float
 * kernels. A window with no in-range tap (impossible for shapes accepted by
 * tml_model_finalize) gives act_min for max and clamp(0) for the averages.
 */
#include "ops_s8_internal.h"

/* n / d rounded half away from zero, d > 0: (|n| + d/2) / d with n's sign.
 * For odd d, d/2 rounds down, which is exactly right: a remainder r rounds up
 * iff r >= (d+1)/2. */
static int32_t div_round_away(int64_t n, int64_t d)
{
    return (int32_t)(n >= 0 ? (n + d / 2) / d : -((-n + d / 2) / d));
}

static int8_t clamp8(int32_t v, int32_t lo, int32_t hi)
{
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int8_t)v;
}

void tml_maxpool_s8_ref(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y)
{
    for (int b = 0; b < p->n; b++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int c = 0; c < p->c; c++) {
                    int32_t m = act_min;
                    int any = 0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            const int32_t v = x[(((int64_t)b * p->h + iy) * p->w + ix) * p->c + c];
                            if (!any || v > m) m = v;
                            any = 1;
                        }
                    }
                    y[(((int64_t)b * p->oh + oy) * p->ow + ox) * p->c + c] = clamp8(m, act_min, act_max);
                }
}

void tml_avgpool_s8_ref(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y)
{
    for (int b = 0; b < p->n; b++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int c = 0; c < p->c; c++) {
                    int64_t sum = 0, count = 0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            sum += x[(((int64_t)b * p->h + iy) * p->w + ix) * p->c + c];
                            count++;
                        }
                    }
                    const int32_t v = count ? div_round_away(sum, count) : 0;
                    y[(((int64_t)b * p->oh + oy) * p->ow + ox) * p->c + c] = clamp8(v, act_min, act_max);
                }
}

void tml_global_avgpool_s8_ref(int n, int hw, int c, const int8_t *x, int8_t *y)
{
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            int64_t sum = 0;
            for (int i = 0; i < hw; i++) sum += x[((int64_t)b * hw + i) * c + ch];
            const int32_t v = hw > 0 ? div_round_away(sum, hw) : 0;
            y[(int64_t)b * c + ch] = clamp8(v, -128, 127);
        }
}
