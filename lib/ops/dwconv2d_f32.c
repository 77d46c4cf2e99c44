/*
 * dwconv2d_f32.c - depthwise 2-D convolution, float32, NHWC, weights (1,KH,KW,C*M).
 *
 *   y[b,oy,ox,oc] = act(bias[oc] + sum_{ky,kx} x[b, oy*sh - pad_t + ky*dh,
 *                       ox*sw - pad_l + kx*dw, oc / M] * w[0,ky,kx,oc])
 *   taps outside x are 0.
 *
 * Fast path: for each output pixel, blocks of 16 channels (contiguous in
 * NHWC) accumulate in registers over the in-range taps (vectorized, AVX-512 /
 * AVX2 / portable chosen at run time) and are stored once. Threads take
 * output rows (b, oy).
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
                    y[(((int64_t)n * p->oh + oy) * p->ow + ox) * p->o + oc] =
                        tml_act_apply_f32(p->act, (float)acc);
                }
}

/* ---- fast ------------------------------------------------------------------------- */

/* Channels per register block (one tml_v16f): the block's accumulators stay
 * in registers across all taps. */
#define DW_BLOCK 16
#define DW_PIX 4 /* interior output pixels computed together */

/* Output rows [r0, r1) of the (n*oh) rows. For every pixel and block of 16
 * output channels: acc = bias; acc += x * w for each in-range tap in (ky, kx)
 * order; activation; one store. Multiplier M > 1 reads input channel oc / M. */
TML_OPS_INLINE void dw_rows_body(const tml_window *p, const float *x, const float *w, const float *b,
                                 float *y, int64_t r0, int64_t r1)
{
    const int M = p->depth_mult, O = p->o, C = p->c;
    for (int64_t row = r0; row < r1; row++) {
        const int oy = (int)(row % p->oh);
        const int64_t n = row / p->oh;
        /* in-range kernel rows: iy = oy*sh - pad_t + ky*dh in [0, h) */
        int ky0 = 0, ky1 = p->kh;
        while (ky0 < ky1 && oy * p->sh - p->pad_t + ky0 * p->dh < 0) ky0++;
        while (ky1 > ky0 && oy * p->sh - p->pad_t + (ky1 - 1) * p->dh >= p->h) ky1--;
        /* output columns whose taps are all inside the image: [ox_lo, ox_hi) */
        int ox_lo = 0, ox_hi = p->ow;
        while (ox_lo < p->ow && ox_lo * p->sw - p->pad_l < 0) ox_lo++;
        while (ox_hi > ox_lo && (ox_hi - 1) * p->sw - p->pad_l + (p->kw - 1) * p->dw >= p->w) ox_hi--;
        const int vec = M == 1 && O >= DW_BLOCK;
        for (int ox = 0; ox < p->ow; ox++) {
            if (vec && ox >= ox_lo && ox + DW_PIX <= ox_hi) {
                /* DW_PIX interior pixels at once: independent accumulators
                 * (latency hidden) sharing each weight load */
                float *yp = y + (row * p->ow + ox) * O;
                for (int cs = 0; cs < O; cs += DW_BLOCK) {
                    const int c0 = cs + DW_BLOCK > O ? O - DW_BLOCK : cs;
                    tml_v16f acc[DW_PIX], xv, wv;
                    if (b) {
                        TML_V16_LOAD(acc[0], b + c0);
                    } else {
                        acc[0] = (tml_v16f){0};
                    }
                    for (int j = 1; j < DW_PIX; j++) acc[j] = acc[0];
                    for (int ky = ky0; ky < ky1; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        const float *xr =
                            x + ((n * p->h + iy) * p->w + (int64_t)ox * p->sw - p->pad_l) * C + c0;
                        const float *wr = w + (int64_t)ky * p->kw * O + c0;
                        for (int kx = 0; kx < p->kw; kx++) {
                            TML_V16_LOAD(wv, wr + (int64_t)kx * O);
                            const float *xk = xr + (int64_t)kx * p->dw * C;
                            for (int j = 0; j < DW_PIX; j++) {
                                TML_V16_LOAD(xv, xk + (int64_t)j * p->sw * C);
                                acc[j] = acc[j] + xv * wv;
                            }
                        }
                    }
                    const tml_v16f zero = {0}, six = zero + 6.0f;
                    for (int j = 0; j < DW_PIX; j++) {
                        if (p->act == TML_ACT_RELU) {
                            acc[j] = TML_V16_SELECT(acc[j] > zero, acc[j], zero);
                        } else if (p->act == TML_ACT_RELU6) {
                            acc[j] = TML_V16_SELECT(acc[j] > six, six, acc[j]);
                            acc[j] = TML_V16_SELECT(acc[j] < zero, zero, acc[j]);
                        }
                        TML_V16_STORE(yp + (int64_t)j * O + c0, acc[j]);
                    }
                }
                ox += DW_PIX - 1;
                continue;
            }
            int kx0 = 0, kx1 = p->kw;
            while (kx0 < kx1 && ox * p->sw - p->pad_l + kx0 * p->dw < 0) kx0++;
            while (kx1 > kx0 && ox * p->sw - p->pad_l + (kx1 - 1) * p->dw >= p->w) kx1--;
            float *yp = y + (row * p->ow + ox) * O;
            for (int cs = 0; cs < O; cs += DW_BLOCK) {
                /* with vectors, a channel tail is done as the block of the last
                 * 16 channels, overlapping the previous one (same values again) */
                const int c0 = vec && cs + DW_BLOCK > O ? O - DW_BLOCK : cs;
                const int cn = O - c0 < DW_BLOCK ? O - c0 : DW_BLOCK;
                if (vec) {
                    tml_v16f acc, xv, wv;
                    if (b)
                        TML_V16_LOAD(acc, b + c0);
                    else
                        acc = (tml_v16f){0};
                    for (int ky = ky0; ky < ky1; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        const float *xr = x + (n * p->h + iy) * p->w * C + c0;
                        const float *wr = w + (int64_t)ky * p->kw * O + c0;
                        for (int kx = kx0; kx < kx1; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            TML_V16_LOAD(xv, xr + (int64_t)ix * C);
                            TML_V16_LOAD(wv, wr + (int64_t)kx * O);
                            acc = acc + xv * wv;
                        }
                    }
                    const tml_v16f zero = {0}, six = zero + 6.0f;
                    if (p->act == TML_ACT_RELU) {
                        acc = TML_V16_SELECT(acc > zero, acc, zero);
                    } else if (p->act == TML_ACT_RELU6) {
                        acc = TML_V16_SELECT(acc > six, six, acc);
                        acc = TML_V16_SELECT(acc < zero, zero, acc);
                    }
                    TML_V16_STORE(yp + c0, acc);
                } else {
                    /* fewer than 16 channels, or a depth multiplier: same operations, one by one */
                    float acc[DW_BLOCK];
                    for (int i = 0; i < cn; i++) acc[i] = b ? b[c0 + i] : 0.0f;
                    for (int ky = ky0; ky < ky1; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        for (int kx = kx0; kx < kx1; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            const float *xp = x + ((n * p->h + iy) * p->w + ix) * C;
                            const float *wp = w + ((int64_t)ky * p->kw + kx) * O + c0;
                            for (int i = 0; i < cn; i++) acc[i] += xp[(c0 + i) / M] * wp[i];
                        }
                    }
                    for (int i = 0; i < cn; i++) yp[c0 + i] = tml_act_apply_f32(p->act, acc[i]);
                }
            }
        }
    }
}
TML_OPS_MULTIVERSION(dw_rows,
                     (const tml_window *p, const float *x, const float *w, const float *b, float *y,
                      int64_t r0, int64_t r1),
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
