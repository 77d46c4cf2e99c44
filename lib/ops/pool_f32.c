/*
 * pool_f32.c - max / average / global average pooling, float32, NHWC.
 *
 * For output pixel (oy, ox) the taps are input rows iy = oy*sh - pad_t + ky*dh
 * and columns ix = ox*sw - pad_l + kx*dw, ky < kh, kx < kw; taps outside the
 * input are skipped (never read as zeros).
 *   max:  y = max over in-range taps, starting from -inf and taking v when
 *         v > current (so NaN taps are ignored); 0 if no tap is in range
 *   avg:  y = (sum over in-range taps, in (ky, kx) order, float) / count
 *         (padding excluded from the count); 0 if no tap is in range
 *   global avg: y[b, c] = (sum over the hw pixels in order, float) / hw
 * The fast versions do the same operations in the same order, vectorized over
 * channels, so they match the references exactly.
 */
#include <math.h>

#include "ops_internal.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#endif

/* ---- reference ------------------------------------------------------------------ */

static void pool_ref(const tml_window *p, const float *x, float *y, int is_max)
{
    for (int n = 0; n < p->n; n++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int c = 0; c < p->c; c++) {
                    float acc = is_max ? -INFINITY : 0.0f;
                    int count = 0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            const float v = x[(((int64_t)n * p->h + iy) * p->w + ix) * p->c + c];
                            if (is_max)
                                acc = v > acc ? v : acc;
                            else
                                acc += v;
                            count++;
                        }
                    }
                    float out = 0.0f;
                    if (count > 0) out = is_max ? acc : acc / (float)count;
                    y[(((int64_t)n * p->oh + oy) * p->ow + ox) * p->c + c] = out;
                }
}

void tml_maxpool_f32_ref(const tml_window *p, const float *x, float *y) { pool_ref(p, x, y, 1); }

void tml_avgpool_f32_ref(const tml_window *p, const float *x, float *y) { pool_ref(p, x, y, 0); }

void tml_global_avgpool_f32_ref(int n, int hw, int c, const float *x, float *y)
{
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            float acc = 0.0f;
            for (int i = 0; i < hw; i++) acc += x[((int64_t)b * hw + i) * c + ch];
            y[(int64_t)b * c + ch] = hw > 0 ? acc / (float)hw : 0.0f;
        }
}

/* ---- fast ------------------------------------------------------------------------- */

/* Output rows [r0, r1) of the (n*oh) rows. */
TML_OPS_INLINE void pool_rows_body(const tml_window *p, const float *x, float *y, int is_max, int64_t r0,
                                   int64_t r1)
{
    const int C = p->c;
    for (int64_t row = r0; row < r1; row++) {
        const int oy = (int)(row % p->oh);
        const int64_t n = row / p->oh;
        for (int ox = 0; ox < p->ow; ox++) {
            float *restrict yp = y + (row * p->ow + ox) * C;
            const float init = is_max ? -INFINITY : 0.0f;
            for (int c = 0; c < C; c++) yp[c] = init;
            int count = 0;
            for (int ky = 0; ky < p->kh; ky++) {
                const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                if (iy < 0 || iy >= p->h) continue;
                for (int kx = 0; kx < p->kw; kx++) {
                    const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                    if (ix < 0 || ix >= p->w) continue;
                    const float *restrict xp = x + ((n * p->h + iy) * p->w + ix) * C;
                    if (is_max)
                        for (int c = 0; c < C; c++) yp[c] = xp[c] > yp[c] ? xp[c] : yp[c];
                    else
                        for (int c = 0; c < C; c++) yp[c] += xp[c];
                    count++;
                }
            }
            if (count == 0) {
                for (int c = 0; c < C; c++) yp[c] = 0.0f;
            } else if (!is_max) {
                const float fc = (float)count;
                for (int c = 0; c < C; c++) yp[c] = yp[c] / fc;
            }
        }
    }
}
TML_OPS_MULTIVERSION(pool_rows, (const tml_window *p, const float *x, float *y, int is_max, int64_t r0, int64_t r1),
                     (p, x, y, is_max, r0, r1))

static void pool_fast(const tml_window *p, const float *x, float *y, int is_max)
{
    const int64_t rows = (int64_t)p->n * p->oh;
    if (rows <= 0 || p->c <= 0) return;
#ifdef TML_OPS_OMP
    const int64_t work = rows * p->ow * p->c * p->kh * p->kw;
    if (work >= TML_OPS_PAR_ELEMS && rows > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) pool_rows(p, x, y, is_max, r, r + 1);
        return;
    }
#endif
    pool_rows(p, x, y, is_max, 0, rows);
}

void tml_maxpool_f32(const tml_window *p, const float *x, float *y) { pool_fast(p, x, y, 1); }

void tml_avgpool_f32(const tml_window *p, const float *x, float *y) { pool_fast(p, x, y, 0); }

TML_OPS_INLINE void gap_body(int hw, int c, const float *x, float *y)
{
    float *restrict yp = y;
    for (int ch = 0; ch < c; ch++) yp[ch] = 0.0f;
    for (int i = 0; i < hw; i++) {
        const float *restrict xp = x + (int64_t)i * c;
        for (int ch = 0; ch < c; ch++) yp[ch] += xp[ch];
    }
    if (hw > 0) {
        const float fh = (float)hw;
        for (int ch = 0; ch < c; ch++) yp[ch] = yp[ch] / fh;
    }
}
TML_OPS_MULTIVERSION(gap, (int hw, int c, const float *x, float *y), (hw, c, x, y))

void tml_global_avgpool_f32(int n, int hw, int c, const float *x, float *y)
{
#ifdef TML_OPS_OMP
    if ((int64_t)n * hw * c >= TML_OPS_PAR_ELEMS && n > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int b = 0; b < n; b++) gap((int)hw, c, x + (int64_t)b * hw * c, y + (int64_t)b * c);
        return;
    }
#endif
    for (int b = 0; b < n; b++) gap(hw, c, x + (int64_t)b * hw * c, y + (int64_t)b * c);
}
