/*
 * conv2d_bwd.c - conv2d backward: x (n,h,w,c), w (o,kh,kw,cg) with cg = c/g,
 * dz (n,oh,ow,o) -> dx (n,h,w,c), dw (o,kh,kw,cg), db (o).
 *
 * With R = n*oh*ow output rows, K = kh*kw*cg taps and og = o/g filters per
 * group, the forward is, per group g, Z_g (R, og) = cols_g(X) (R, K) * W_g^T,
 * where cols_g is the im2col matrix (row r = output pixel (b, oy, ox), column
 * (ky, kx, ci) = x[b, oy*sh - pad_t + ky*dh, ox*sw - pad_l + kx*dw, g*cg + ci],
 * 0 outside the image). Hence
 *   dW_g (og, K) = dZ_g^T (og, R) * cols_g (R, K)
 *   dX           = col2im(dZ_g (R, og) * W_g (og, K))   (scatter-add of taps)
 *   db           = column sums of dZ.
 *
 * Fast path: the R rows are processed in chunks of `chunk` rows whose im2col
 * block (chunk * K floats) is the scratch; for each chunk and group: im2col,
 * dW_g += dZ_g^T * cols (tml_sgemm; beta 0 on the first chunk), then the same
 * buffer receives dZ_g * W_g and is scattered into dx. The chunk length is a
 * function of the shape only (CHUNK_BYTES budget, whole samples when a sample
 * fits), so the summation order, hence every bit of the result, is fixed by
 * the shape. A pointwise conv (1x1, stride 1, no padding) skips im2col: its
 * cols matrix is x itself, so dW and dX are one GEMM each, with strided
 * operands per group.
 *
 * Threads: tml_sgemm parallelizes itself (thread-count independent results);
 * im2col is a copy (any split); col2im runs in parallel over the samples of a
 * chunk (each sample's dx rows are written by one thread, in row order) when
 * the chunk holds whole samples, serially otherwise.
 */
#include <string.h>

#include "train/train_ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* im2col block budget: fits the 2 MiB L2 of one core twice over; large enough
 * that the dW GEMM sees long reductions (few beta=1 passes over dW). */
#define CHUNK_BYTES ((int64_t)4 << 20)
/* Minimum copy volume (floats) before im2col starts threads. */
#define IM2COL_PAR_MIN ((int64_t)1 << 16)

/* Copies / zeroes of the short runs im2col moves (often a few floats, where a
 * libc call costs more than the copy). */
static inline void copy_f(float *dst, const float *src, int n)
{
    if (n <= 16) {
        for (int i = 0; i < n; i++) dst[i] = src[i];
    } else {
        memcpy(dst, src, sizeof(float) * (size_t)n);
    }
}

static inline void zero_f(float *dst, int n)
{
    if (n <= 16) {
        for (int i = 0; i < n; i++) dst[i] = 0.0f;
    } else {
        memset(dst, 0, sizeof(float) * (size_t)n);
    }
}

static int conv_is_pointwise(const tml_window *p)
{
    return p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->pad_t == 0 && p->pad_l == 0 &&
           p->oh == p->h && p->ow == p->w;
}

/* ---- reference ------------------------------------------------------------------ */

void tml_conv2d_f32_bwd_ref(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                            float *dw, float *db)
{
    const int G = p->groups, cg = p->c / G, og = p->o / G;
    const int64_t c = p->c, o = p->o;
    for (int oc = 0; oc < p->o; oc++) {
        const int g = oc / og;
        for (int ky = 0; ky < p->kh; ky++)
            for (int kx = 0; kx < p->kw; kx++)
                for (int ci = 0; ci < cg; ci++) {
                    double acc = 0.0;
                    for (int b = 0; b < p->n; b++)
                        for (int oy = 0; oy < p->oh; oy++) {
                            const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                            if (iy < 0 || iy >= p->h) continue;
                            for (int ox = 0; ox < p->ow; ox++) {
                                const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                                if (ix < 0 || ix >= p->w) continue;
                                const float dzv = dz[(((int64_t)b * p->oh + oy) * p->ow + ox) * o + oc];
                                const float xv = x[(((int64_t)b * p->h + iy) * p->w + ix) * c + g * cg + ci];
                                acc += (double)dzv * (double)xv;
                            }
                        }
                    dw[(((int64_t)oc * p->kh + ky) * p->kw + kx) * cg + ci] = (float)acc;
                }
    }
    if (db) {
        for (int oc = 0; oc < p->o; oc++) {
            double acc = 0.0;
            for (int64_t r = 0; r < (int64_t)p->n * p->oh * p->ow; r++) acc += (double)dz[r * o + oc];
            db[oc] = (float)acc;
        }
    }
    if (!dx) return;
    /* Gather: input pixel (iy, ix) is tap ky of output row oy when
     * iy + pad_t - ky*dh = oy*sh for an oy in [0, oh). */
    for (int b = 0; b < p->n; b++)
        for (int iy = 0; iy < p->h; iy++)
            for (int ix = 0; ix < p->w; ix++)
                for (int ch = 0; ch < p->c; ch++) {
                    const int g = ch / cg, ci = ch % cg;
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
                            const float *dzr = dz + (((int64_t)b * p->oh + oy) * p->ow + ox) * o;
                            for (int oc = g * og; oc < (g + 1) * og; oc++)
                                acc += (double)dzr[oc] *
                                       (double)w[(((int64_t)oc * p->kh + ky) * p->kw + kx) * cg + ci];
                        }
                    }
                    dx[(((int64_t)b * p->h + iy) * p->w + ix) * c + ch] = (float)acc;
                }
}

/* ---- fast ---------------------------------------------------------------------------- */

int64_t tml_conv2d_f32_bwd_chunk_rows(const tml_window *p)
{
    const int64_t rows = (int64_t)p->n * p->oh * p->ow;
    if (conv_is_pointwise(p) || rows == 0) return rows;
    const int64_t K = (int64_t)p->kh * p->kw * (p->c / p->groups);
    const int64_t rps = (int64_t)p->oh * p->ow;
    int64_t chunk = CHUNK_BYTES / (K * (int64_t)sizeof(float));
    if (chunk < 1) chunk = 1;
    if (chunk >= rps) chunk -= chunk % rps; /* whole samples */
    return chunk < rows ? chunk : rows;
}

size_t tml_conv2d_f32_bwd_scratch_size(const tml_window *p)
{
    if (conv_is_pointwise(p)) return 0;
    const int64_t K = (int64_t)p->kh * p->kw * (p->c / p->groups);
    return (size_t)(tml_conv2d_f32_bwd_chunk_rows(p) * K) * sizeof(float);
}

/* Rows [r0, r1) of the im2col matrix of group g into cols (row stride K). */
static void im2col_rows(const tml_window *p, const float *x, int g, int64_t r0, int64_t r1, float *cols)
{
    const int cg = p->c / p->groups, kw = p->kw;
    const int64_t K = (int64_t)p->kh * kw * cg, rps = (int64_t)p->oh * p->ow;
    /* With one group and unit column dilation, the kw*c taps of one kernel row
     * are contiguous in x whenever the whole kernel row is inside the image. */
    const int row_contig = p->groups == 1 && p->dw == 1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((r1 - r0) * K >= IM2COL_PAR_MIN && !omp_in_parallel())
#endif
    for (int64_t r = r0; r < r1; r++) {
        const int b = (int)(r / rps), rem = (int)(r % rps);
        const int oy = rem / p->ow, ox = rem % p->ow;
        float *dst = cols + (r - r0) * K;
        const int ix0 = ox * p->sw - p->pad_l;
        for (int ky = 0; ky < p->kh; ky++, dst += (int64_t)kw * cg) {
            const int iy = oy * p->sh - p->pad_t + ky * p->dh;
            if (iy < 0 || iy >= p->h) {
                zero_f(dst, kw * cg);
                continue;
            }
            const float *xrow = x + ((int64_t)b * p->h + iy) * p->w * p->c + (int64_t)g * cg;
            if (row_contig && ix0 >= 0 && ix0 + kw <= p->w) {
                copy_f(dst, xrow + (int64_t)ix0 * p->c, kw * cg);
                continue;
            }
            for (int kx = 0; kx < kw; kx++) {
                const int ix = ix0 + kx * p->dw;
                float *d = dst + (int64_t)kx * cg;
                if (ix < 0 || ix >= p->w)
                    zero_f(d, cg);
                else
                    copy_f(d, xrow + (int64_t)ix * p->c, cg);
            }
        }
    }
}

/* dx += scatter of rows [r0, r1) of dcols (group g). Serial, rows in order. */
static void col2im_rows(const tml_window *p, const float *dcols, int g, int64_t r0, int64_t r1, float *dx)
{
    const int cg = p->c / p->groups, kw = p->kw;
    const int64_t K = (int64_t)p->kh * kw * cg, rps = (int64_t)p->oh * p->ow;
    const int row_contig = p->groups == 1 && p->dw == 1;
    for (int64_t r = r0; r < r1; r++) {
        const int b = (int)(r / rps), rem = (int)(r % rps);
        const int oy = rem / p->ow, ox = rem % p->ow;
        const float *src = dcols + (r - r0) * K;
        const int ix0 = ox * p->sw - p->pad_l;
        for (int ky = 0; ky < p->kh; ky++, src += (int64_t)kw * cg) {
            const int iy = oy * p->sh - p->pad_t + ky * p->dh;
            if (iy < 0 || iy >= p->h) continue;
            float *xrow = dx + ((int64_t)b * p->h + iy) * p->w * p->c + (int64_t)g * cg;
            if (row_contig && ix0 >= 0 && ix0 + kw <= p->w) {
                float *d = xrow + (int64_t)ix0 * p->c;
                const int len = kw * cg;
                for (int i = 0; i < len; i++) d[i] += src[i];
                continue;
            }
            for (int kx = 0; kx < kw; kx++) {
                const int ix = ix0 + kx * p->dw;
                if (ix < 0 || ix >= p->w) continue;
                float *d = xrow + (int64_t)ix * p->c;
                const float *s = src + (int64_t)kx * cg;
                for (int ci = 0; ci < cg; ci++) d[ci] += s[ci];
            }
        }
    }
}

/* Scatter of a chunk [r0, r1). When it holds whole samples they are
 * independent (disjoint dx), so they go to threads; the rows of each sample
 * are still added in order, so the bits do not depend on the split. */
static void col2im_chunk(const tml_window *p, const float *dcols, int g, int64_t r0, int64_t r1, float *dx)
{
    const int64_t rps = (int64_t)p->oh * p->ow;
    if (r0 % rps != 0 || (r1 - r0) % rps != 0 || (r1 - r0) == rps) {
        col2im_rows(p, dcols, g, r0, r1, dx);
        return;
    }
    const int64_t b0 = r0 / rps, nb = (r1 - r0) / rps;
    const int64_t K = (int64_t)p->kh * p->kw * (p->c / p->groups);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nb * rps * K >= IM2COL_PAR_MIN && !omp_in_parallel())
#endif
    for (int64_t i = 0; i < nb; i++) {
        const int64_t s0 = (b0 + i) * rps;
        col2im_rows(p, dcols + (s0 - r0) * K, g, s0, s0 + rps, dx);
    }
}

void tml_conv2d_f32_bwd_ex(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                           float *dw, float *db, void *scratch, int64_t chunk_rows)
{
    const int G = p->groups, cg = p->c / G, og = p->o / G;
    const int64_t rows = (int64_t)p->n * p->oh * p->ow;
    const int K = p->kh * p->kw * cg;
    const int o = p->o, c = p->c;
    if (db) tml_sum_rows_f32(rows, o, o, dz, db);
    if (conv_is_pointwise(p)) {
        /* cols(X) = X: dW_g = dZ_g^T X_g, dX_g = dZ_g W_g, strided per group. */
        for (int g = 0; g < G; g++) {
            tml_sgemm(1, 0, og, cg, (int)rows, 1.0f, dz + (int64_t)g * og, o, x + (int64_t)g * cg, c, 0.0f,
                      dw + (int64_t)g * og * cg, cg);
            if (dx)
                tml_sgemm(0, 0, (int)rows, cg, og, 1.0f, dz + (int64_t)g * og, o, w + (int64_t)g * og * cg,
                          cg, 0.0f, dx + (int64_t)g * cg, c);
        }
        return;
    }
    float *cols = (float *)scratch;
    if (dx) memset(dx, 0, sizeof(float) * (size_t)p->n * (size_t)p->h * (size_t)p->w * (size_t)c);
    if (rows == 0) {
        memset(dw, 0, sizeof(float) * (size_t)o * (size_t)K);
        return;
    }
    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
        const int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
        const int m = (int)(r1 - r0);
        for (int g = 0; g < G; g++) {
            const float *dzg = dz + r0 * o + (int64_t)g * og;
            im2col_rows(p, x, g, r0, r1, cols);
            tml_sgemm(1, 0, og, K, m, 1.0f, dzg, o, cols, K, r0 == 0 ? 0.0f : 1.0f, dw + (int64_t)g * og * K,
                      K);
            if (dx) {
                tml_sgemm(0, 0, m, K, og, 1.0f, dzg, o, w + (int64_t)g * og * K, K, 0.0f, cols, K);
                col2im_chunk(p, cols, g, r0, r1, dx);
            }
        }
    }
}

void tml_conv2d_f32_bwd(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                        float *dw, float *db, void *scratch)
{
    tml_conv2d_f32_bwd_ex(p, x, w, dz, dx, dw, db, scratch, tml_conv2d_f32_bwd_chunk_rows(p));
}
