/*
 * pool_bwd.c - max / average / global average pool backward. Geometry in
 * tml_window (o == c); dx (n,h,w,c) is overwritten. Taps outside the input
 * (padding) are skipped, as in the forward.
 *
 * Max pool routes each output gradient to the FIRST maximal in-range tap of
 * its window in row-major (ky, kx) order, per channel: as the forward
 * (lib/ops/pool_f32.c), the running max starts at -inf and a tap replaces it
 * only when strictly greater, so NaN taps never win; when no tap beats -inf
 * (all NaN / -inf) the gradient goes to the first in-range tap. Average pool
 * spreads dy / count (count = in-range taps) over the in-range taps. Windows
 * may overlap (stride < kernel): contributions add.
 *
 * OpenMP over samples: a sample's dx is written by one thread, outputs in
 * order, so the bits do not depend on the thread count.
 */
#include <math.h>
#include <string.h>

#include "train/train_ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Elements of dy below which the pools stay serial. */
#define POOL_PAR_MIN ((int64_t)1 << 15)

/* In-range tap window of output (oy, ox): ky in [ky0, ky1), kx in [kx0, kx1). */
typedef struct tap_range {
    int ky0, ky1, kx0, kx1;
    int iy0, ix0; /* input position of tap (0, 0) (may be negative) */
} tap_range;

static void window_taps(const tml_window *p, int oy, int ox, tap_range *t)
{
    t->iy0 = oy * p->sh - p->pad_t;
    t->ix0 = ox * p->sw - p->pad_l;
    t->ky0 = 0;
    while (t->ky0 < p->kh && t->iy0 + t->ky0 * p->dh < 0) t->ky0++;
    t->ky1 = p->kh;
    while (t->ky1 > t->ky0 && t->iy0 + (t->ky1 - 1) * p->dh >= p->h) t->ky1--;
    t->kx0 = 0;
    while (t->kx0 < p->kw && t->ix0 + t->kx0 * p->dw < 0) t->kx0++;
    t->kx1 = p->kw;
    while (t->kx1 > t->kx0 && t->ix0 + (t->kx1 - 1) * p->dw >= p->w) t->kx1--;
}

/* Pools have dilation 1 unless the caller sets it; treat 0 as 1. */
static tml_window pool_geom(const tml_window *p)
{
    tml_window q = *p;
    if (q.dh < 1) q.dh = 1;
    if (q.dw < 1) q.dw = 1;
    return q;
}

/* Channels per block of the max pool's running argmax (kept on the stack). */
#define MAX_CH_BLOCK 64

/* bv[j] = max(bv[j], xr[j]) with bp[j] = pix where xr[j] is strictly greater.
 * Branch-free with an integer mask so that it vectorizes at the baseline ISA
 * (random data would defeat a branch predictor). */
static inline void max_update(int nb, const float *restrict xr, float *restrict bv, int32_t *restrict bp,
                              int32_t pix)
{
    for (int j = 0; j < nb; j++) {
        const float v = xr[j], b = bv[j];
        const int32_t m = -(int32_t)(v > b);
        bv[j] = v > b ? v : b;
        bp[j] = (pix & m) | (bp[j] & ~m);
    }
}

static void maxpool_sample(const tml_window *p, const float *x, const float *dy, float *dx)
{
    const int c = p->c;
    memset(dx, 0, sizeof(float) * (size_t)p->h * (size_t)p->w * (size_t)c);
    for (int oy = 0; oy < p->oh; oy++)
        for (int ox = 0; ox < p->ow; ox++) {
            tap_range t;
            window_taps(p, oy, ox, &t);
            if (t.ky0 >= t.ky1 || t.kx0 >= t.kx1) continue;
            const float *dyr = dy + ((int64_t)oy * p->ow + ox) * c;
            const int64_t first = (int64_t)(t.iy0 + t.ky0 * p->dh) * p->w + t.ix0 + t.kx0 * p->dw;
            for (int c0 = 0; c0 < c; c0 += MAX_CH_BLOCK) {
                const int nb = c - c0 < MAX_CH_BLOCK ? c - c0 : MAX_CH_BLOCK;
                /* Running max and its pixel per channel; taps in row-major
                 * order, replaced only by a strictly greater value. */
                float bv[MAX_CH_BLOCK];
                int32_t bp[MAX_CH_BLOCK]; /* pixel within the sample (h*w < 2^31) */
                for (int j = 0; j < nb; j++) {
                    bv[j] = -INFINITY;
                    bp[j] = (int32_t)first;
                }
                for (int ky = t.ky0; ky < t.ky1; ky++) {
                    const int64_t rowb = (int64_t)(t.iy0 + ky * p->dh) * p->w;
                    for (int kx = t.kx0; kx < t.kx1; kx++) {
                        const int64_t pix = rowb + t.ix0 + kx * p->dw;
                        max_update(nb, x + pix * c + c0, bv, bp, (int32_t)pix);
                    }
                }
                for (int j = 0; j < nb; j++) dx[(int64_t)bp[j] * c + c0 + j] += dyr[c0 + j];
            }
        }
}

void tml_maxpool_f32_bwd(const tml_window *p, const float *x, const float *dy, float *dx)
{
    const tml_window q = pool_geom(p);
    const int64_t in_s = (int64_t)q.h * q.w * q.c, out_s = (int64_t)q.oh * q.ow * q.c;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (out_s * q.n >= POOL_PAR_MIN && !omp_in_parallel())
#endif
    for (int b = 0; b < q.n; b++) maxpool_sample(&q, x + b * in_s, dy + b * out_s, dx + b * in_s);
}

static void avgpool_sample(const tml_window *p, const float *dy, float *dx)
{
    const int c = p->c;
    memset(dx, 0, sizeof(float) * (size_t)p->h * (size_t)p->w * (size_t)c);
    for (int oy = 0; oy < p->oh; oy++)
        for (int ox = 0; ox < p->ow; ox++) {
            tap_range t;
            window_taps(p, oy, ox, &t);
            const int count = (t.ky1 - t.ky0) * (t.kx1 - t.kx0);
            if (count <= 0) continue;
            const float fc = (float)count;
            const float *dyr = dy + ((int64_t)oy * p->ow + ox) * c;
            for (int ky = t.ky0; ky < t.ky1; ky++)
                for (int kx = t.kx0; kx < t.kx1; kx++) {
                    float *d = dx + ((int64_t)(t.iy0 + ky * p->dh) * p->w + t.ix0 + kx * p->dw) * c;
                    for (int ch = 0; ch < c; ch++) d[ch] += dyr[ch] / fc;
                }
        }
}

void tml_avgpool_f32_bwd(const tml_window *p, const float *dy, float *dx)
{
    const tml_window q = pool_geom(p);
    const int64_t in_s = (int64_t)q.h * q.w * q.c, out_s = (int64_t)q.oh * q.ow * q.c;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (out_s * q.n >= POOL_PAR_MIN && !omp_in_parallel())
#endif
    for (int b = 0; b < q.n; b++) avgpool_sample(&q, dy + b * out_s, dx + b * in_s);
}

void tml_global_avgpool_f32_bwd(int n, int hw, int c, const float *dy, float *dx)
{
    const float fhw = (float)hw;
    for (int b = 0; b < n; b++) {
        const float *dyr = dy + (int64_t)b * c;
        for (int i = 0; i < hw; i++) {
            float *d = dx + ((int64_t)b * hw + i) * c;
            for (int ch = 0; ch < c; ch++) d[ch] = dyr[ch] / fhw;
        }
    }
}
