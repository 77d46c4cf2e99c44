/*
 * dwconv2d_bwd.c - depthwise conv2d backward, multiplier m: x (n,h,w,c),
 * w (1,kh,kw,c*m), dz (n,oh,ow,c*m) -> dx (n,h,w,c), dw (1,kh,kw,c*m), db (c*m).
 * Output channel oc = ic*m + j reads input channel ic:
 *   z[b,oy,ox,oc] = sum_{ky,kx} x[b, oy*sh-pad_t+ky*dh, ox*sw-pad_l+kx*dw, oc/m] * w[ky,kx,oc]
 * so
 *   dw[ky,kx,oc] = sum_{b,oy,ox} dz[b,oy,ox,oc] * x[b,iy,ix,oc/m]
 *   dx[b,iy,ix,ic] = sum over (oy,ox,ky,kx) hitting (iy,ix) and j < m of dz[..,ic*m+j] * w[ky,kx,ic*m+j]
 *
 * Fast path: the batch is cut into `parts` = min(n, DW_PARTS) contiguous
 * ranges of samples (a function of n only). Part q writes dx of its own
 * samples (disjoint) and sums dW / db of its samples into its slice of the
 * scratch, pixels in order; the slices are then added in part order. The parts
 * run on OpenMP threads, so the bits do not depend on the thread count. Inner
 * loops run over contiguous channels (vectorized; m == 1 is the fast case).
 */
#include <string.h>

#include "train/train_ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define DW_PARTS 8
/* Multiply-adds below which the parts run serially. */
#define DW_PAR_MIN ((int64_t)1 << 17)

/* ---- reference ------------------------------------------------------------------ */

void tml_dwconv2d_f32_bwd_ref(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                              float *dw, float *db)
{
    const int m = p->depth_mult, c = p->c;
    const int64_t co = (int64_t)c * m;
    for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++)
            for (int oc = 0; oc < co; oc++) {
                double acc = 0.0;
                for (int b = 0; b < p->n; b++)
                    for (int oy = 0; oy < p->oh; oy++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int ox = 0; ox < p->ow; ox++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            acc += (double)dz[(((int64_t)b * p->oh + oy) * p->ow + ox) * co + oc] *
                                   (double)x[(((int64_t)b * p->h + iy) * p->w + ix) * c + oc / m];
                        }
                    }
                dw[((int64_t)ky * p->kw + kx) * co + oc] = (float)acc;
            }
    if (db) {
        for (int oc = 0; oc < co; oc++) {
            double acc = 0.0;
            for (int64_t r = 0; r < (int64_t)p->n * p->oh * p->ow; r++) acc += (double)dz[r * co + oc];
            db[oc] = (float)acc;
        }
    }
    if (!dx) return;
    for (int b = 0; b < p->n; b++)
        for (int iy = 0; iy < p->h; iy++)
            for (int ix = 0; ix < p->w; ix++)
                for (int ic = 0; ic < c; ic++) {
                    double acc = 0.0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int ty = iy + p->pad_t - ky * p->dh;
                        if (ty < 0 || ty % p->sh) continue;
                        const int oy = ty / p->sh;
                        if (oy >= p->oh) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int tx = ix + p->pad_l - kx * p->dw;
                            if (tx < 0 || tx % p->sw) continue;
                            const int ox = tx / p->sw;
                            if (ox >= p->ow) continue;
                            for (int j = 0; j < m; j++) {
                                const int64_t oc = (int64_t)ic * m + j;
                                acc += (double)dz[(((int64_t)b * p->oh + oy) * p->ow + ox) * co + oc] *
                                       (double)w[((int64_t)ky * p->kw + kx) * co + oc];
                            }
                        }
                    }
                    dx[(((int64_t)b * p->h + iy) * p->w + ix) * c + ic] = (float)acc;
                }
}

/* ---- fast ---------------------------------------------------------------------------- */

static int dw_parts(const tml_window *p)
{
    return p->n < DW_PARTS ? (p->n > 0 ? p->n : 1) : DW_PARTS;
}

size_t tml_dwconv2d_f32_bwd_scratch_size(const tml_window *p)
{
    const int64_t co = (int64_t)p->c * p->depth_mult;
    return (size_t)dw_parts(p) * (size_t)((int64_t)p->kh * p->kw * co + co) * sizeof(float);
}

/* Samples [b0, b1): dx of those samples (overwritten, if dx) and their dW / db
 * sums into pdw (kh*kw*co) and pdb (co), overwritten. */
static void dw_part(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                    float *pdw, float *pdb, int b0, int b1)
{
    const int m = p->depth_mult, c = p->c, kw = p->kw;
    const int64_t co = (int64_t)c * m;
    memset(pdw, 0, sizeof(float) * (size_t)((int64_t)p->kh * kw * co));
    memset(pdb, 0, sizeof(float) * (size_t)co);
    if (dx)
        memset(dx + (int64_t)b0 * p->h * p->w * c, 0,
               sizeof(float) * (size_t)((int64_t)(b1 - b0) * p->h * p->w * c));
    for (int b = b0; b < b1; b++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                const float *dzr = dz + (((int64_t)b * p->oh + oy) * p->ow + ox) * co;
                for (int64_t oc = 0; oc < co; oc++) pdb[oc] += dzr[oc];
                for (int ky = 0; ky < p->kh; ky++) {
                    const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                    if (iy < 0 || iy >= p->h) continue;
                    for (int kx = 0; kx < kw; kx++) {
                        const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                        if (ix < 0 || ix >= p->w) continue;
                        const int64_t pix = ((int64_t)b * p->h + iy) * p->w + ix;
                        const float *xr = x + pix * c;
                        const float *wr = w + ((int64_t)ky * kw + kx) * co;
                        float *dwr = pdw + ((int64_t)ky * kw + kx) * co;
                        if (m == 1) {
                            for (int ic = 0; ic < c; ic++) dwr[ic] += dzr[ic] * xr[ic];
                            if (dx) {
                                float *dxr = dx + pix * c;
                                for (int ic = 0; ic < c; ic++) dxr[ic] += dzr[ic] * wr[ic];
                            }
                        } else {
                            for (int ic = 0; ic < c; ic++)
                                for (int j = 0; j < m; j++) dwr[ic * m + j] += dzr[ic * m + j] * xr[ic];
                            if (dx) {
                                float *dxr = dx + pix * c;
                                for (int ic = 0; ic < c; ic++) {
                                    float s = 0.0f;
                                    for (int j = 0; j < m; j++) s += dzr[ic * m + j] * wr[ic * m + j];
                                    dxr[ic] += s;
                                }
                            }
                        }
                    }
                }
            }
}

void tml_dwconv2d_f32_bwd(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                          float *dw, float *db, void *scratch)
{
    const int64_t co = (int64_t)p->c * p->depth_mult;
    const int64_t wsz = (int64_t)p->kh * p->kw * co, slice = wsz + co;
    const int parts = dw_parts(p);
    float *part = (float *)scratch;
    const int64_t work = (int64_t)p->n * p->oh * p->ow * p->kh * p->kw * co;
    (void)work;
#ifdef _OPENMP
#pragma omp parallel for schedule(static, 1) if (work >= DW_PAR_MIN && !omp_in_parallel())
#endif
    for (int q = 0; q < parts; q++) {
        const int b0 = (int)((int64_t)p->n * q / parts), b1 = (int)((int64_t)p->n * (q + 1) / parts);
        dw_part(p, x, w, dz, dx, part + q * slice, part + q * slice + wsz, b0, b1);
    }
    /* Partials added in part order. */
    for (int64_t i = 0; i < wsz; i++) {
        float s = part[i];
        for (int q = 1; q < parts; q++) s += part[q * slice + i];
        dw[i] = s;
    }
    if (db) {
        for (int64_t i = 0; i < co; i++) {
            float s = part[wsz + i];
            for (int q = 1; q < parts; q++) s += part[q * slice + wsz + i];
            db[i] = s;
        }
    }
}
