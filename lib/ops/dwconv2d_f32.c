/*
 * dwconv2d_f32.c - depthwise 2-D convolution, float32, NHWC, weights (1,KH,KW,C*M).
 *
 *   y[b,oy,ox,oc] = act(bias[oc] + sum_{ky,kx} x[b, oy*sh - pad_t + ky*dh,
 *                       ox*sw - pad_l + kx*dw, oc / M] * w[0,ky,kx,oc])
 *   taps outside x are 0.
 *
 * Fast path: for each output pixel, the o = C*M accumulators are the output
 * row itself; every in-range tap adds x[pixel, :] * w[ky, kx, :] with a loop
 * over channels, which are contiguous in NHWC (vectorized, AVX-512/AVX2
 * chosen at run time). Threads take output rows (b, oy).
 */
#include "ops_internal.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#endif

/* ---- reference ------------------------------------------------------------------ */

void tml_dwconv2d_f32_ref(const tml_window *p, const float *x, const float *w, const float *b, float *y)
{
    const int M = p->depth_mult;
    for (int n = 0; n < p->n; n++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int oc = 0; oc < p->o; oc++) {
                    const int ci = oc / M;
                    double acc = b ? (double)b[oc] : 0.0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            const float xv = x[(((int64_t)n * p->h + iy) * p->w + ix) * p->c + ci];
                            const float wv = w[((int64_t)ky * p->kw + kx) * p->o + oc];
                            acc += (double)xv * (double)wv;
                        }
                    }
                    y[(((int64_t)n * p->oh + oy) * p->ow + ox) * p->o + oc] = tml_act_apply_f32(p->act, (float)acc);
                }
}

/* ---- fast ------------------------------------------------------------------------- */

/* Output rows [r0, r1) of the (n*oh) rows. */
TML_OPS_INLINE void dw_rows_body(const tml_window *p, const float *x, const float *w, const float *b, float *y,
                                 int64_t r0, int64_t r1)
{
    const int M = p->depth_mult, O = p->o, C = p->c;
    for (int64_t row = r0; row < r1; row++) {
        const int oy = (int)(row % p->oh);
        const int64_t n = row / p->oh;
        for (int ox = 0; ox < p->ow; ox++) {
            float *restrict yp = y + (row * p->ow + ox) * O;
            if (b)
                for (int oc = 0; oc < O; oc++) yp[oc] = b[oc];
            else
                for (int oc = 0; oc < O; oc++) yp[oc] = 0.0f;
            for (int ky = 0; ky < p->kh; ky++) {
                const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                if (iy < 0 || iy >= p->h) continue;
                for (int kx = 0; kx < p->kw; kx++) {
                    const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                    if (ix < 0 || ix >= p->w) continue;
                    const float *restrict xp = x + ((n * p->h + iy) * p->w + ix) * C;
                    const float *restrict wp = w + ((int64_t)ky * p->kw + kx) * O;
                    if (M == 1) {
                        for (int c = 0; c < C; c++) yp[c] += xp[c] * wp[c];
                    } else {
                        for (int c = 0; c < C; c++) {
                            const float xv = xp[c];
                            for (int m = 0; m < M; m++) yp[c * M + m] += xv * wp[c * M + m];
                        }
                    }
                }
            }
            if (p->act == TML_ACT_RELU)
                for (int oc = 0; oc < O; oc++) yp[oc] = yp[oc] > 0.0f ? yp[oc] : 0.0f;
            else if (p->act == TML_ACT_RELU6)
                for (int oc = 0; oc < O; oc++) yp[oc] = yp[oc] < 0.0f ? 0.0f : (yp[oc] > 6.0f ? 6.0f : yp[oc]);
        }
    }
}
TML_OPS_MULTIVERSION(dw_rows,
                     (const tml_window *p, const float *x, const float *w, const float *b, float *y, int64_t r0,
                      int64_t r1),
                     (p, x, w, b, y, r0, r1))

void tml_dwconv2d_f32(const tml_window *p, const float *x, const float *w, const float *b, float *y)
{
    const int64_t rows = (int64_t)p->n * p->oh;
    if (rows <= 0 || p->o <= 0) return;
#ifdef TML_OPS_OMP
    const double flops = 2.0 * (double)rows * p->ow * p->o * p->kh * p->kw;
    if (flops >= TML_OPS_PAR_FLOPS && rows > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) dw_rows(p, x, w, b, y, r, r + 1);
        return;
    }
#endif
    dw_rows(p, x, w, b, y, 0, rows);
}
