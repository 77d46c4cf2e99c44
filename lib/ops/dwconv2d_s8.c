/*
 * dwconv2d_s8.c - INT8 depthwise convolution: x (n,h,w,c), w (1,kh,kw,c*m),
 * bias (c*m), y (n,oh,ow,c*m); output channel oc reads input channel oc / m.
 *
 *   acc = bias[oc] + sum over in-range taps of (x[.., oc / m] - in_zp) * w[ky,kx,oc]
 *   y = clamp(requantize(acc, mult[oc], shift[oc]) + out_zp, act_min, act_max)
 *
 * Fast kernel (depth multiplier 1): NHWC keeps a pixel's channels contiguous,
 * so the channels are the vector lanes: per tap, 32 (AVX-512BW) or 16 (AVX2)
 * int8 inputs and weights are widened to int16, the zero point subtracted
 * (|x - in_zp| <= 255, |w| <= 128: the int16 product <= 32640 is exact) and
 * the products widened into int32 accumulators; channel tails use masked
 * loads (AVX-512) or the portable loop. Depth multiplier > 1 and other CPUs
 * use the portable loop, which keeps a block of accumulators per pixel.
 * OpenMP splits output rows when the call is large enough.
 */
#include "ops_s8_internal.h"
#include "ops_s8_simd.h"

#ifdef TML_S8_OMP
#include <omp.h>
#endif

/* ---- reference ------------------------------------------------------------------------ */

void tml_dwconv2d_s8_ref(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                         const int32_t *bias, int8_t *y)
{
    const int m = p->depth_mult, oc_n = p->c * m;
    for (int b = 0; b < p->n; b++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int oc = 0; oc < oc_n; oc++) {
                    const int ic = oc / m;
                    int32_t acc = bias ? bias[oc] : 0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            const int32_t xv = x[(((int64_t)b * p->h + iy) * p->w + ix) * p->c + ic];
                            acc += (xv - q->in_zp) * w[((int64_t)ky * p->kw + kx) * oc_n + oc];
                        }
                    }
                    int64_t v = (int64_t)tml_requantize(acc, q->mult[oc], q->shift[oc]) + q->out_zp;
                    if (v < q->act_min) v = q->act_min;
                    if (v > q->act_max) v = q->act_max;
                    y[(((int64_t)b * p->oh + oy) * p->ow + ox) * oc_n + oc] = (int8_t)v;
                }
}

/* ---- portable ---------------------------------------------------------------------------- */

#define DW_BLOCK 64

/* Output channels [c_lo, oc_n) of output row (b, oy). */
static void dw_row_generic(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                           const int32_t *bias, int8_t *y, int b, int oy, int c_lo)
{
    const int m = p->depth_mult, oc_n = p->c * m;
    int32_t acc[DW_BLOCK];
    for (int ox = 0; ox < p->ow; ox++) {
        int8_t *yp = y + (((int64_t)b * p->oh + oy) * p->ow + ox) * oc_n;
        for (int o0 = c_lo; o0 < oc_n; o0 += DW_BLOCK) {
            const int nb = oc_n - o0 < DW_BLOCK ? oc_n - o0 : DW_BLOCK;
            for (int j = 0; j < nb; j++) acc[j] = bias ? bias[o0 + j] : 0;
            for (int ky = 0; ky < p->kh; ky++) {
                const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                if (iy < 0 || iy >= p->h) continue;
                for (int kx = 0; kx < p->kw; kx++) {
                    const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                    if (ix < 0 || ix >= p->w) continue;
                    const int8_t *xp = x + (((int64_t)b * p->h + iy) * p->w + ix) * p->c;
                    const int8_t *wp = w + ((int64_t)ky * p->kw + kx) * oc_n + o0;
                    if (m == 1) {
                        const int8_t *xc = xp + o0;
                        for (int j = 0; j < nb; j++) acc[j] += (xc[j] - q->in_zp) * wp[j];
                    } else {
                        for (int j = 0; j < nb; j++) acc[j] += (xp[(o0 + j) / m] - q->in_zp) * wp[j];
                    }
                }
            }
            for (int j = 0; j < nb; j++) {
                const int sh = q->shift[o0 + j];
                yp[o0 + j] = tml_s8_out_inline(acc[j], q->mult[o0 + j], sh > 0 ? sh : 0, sh > 0 ? 0 : -sh, q->out_zp,
                                               q->act_min, q->act_max);
            }
        }
    }
}

#ifdef TML_S8_X86

/* Output row (b, oy), all channels, depth multiplier 1: 32 channels per step. */
static TML_S8_TGT_VNNI void dw_row_avx512(const tml_window *p, const tml_qparams *q, const int8_t *x,
                                          const int8_t *w, const int32_t *bias, int8_t *y, int b, int oy)
{
    const int C = p->c;
    const __m512i zp16 = _mm512_set1_epi16((short)q->in_zp), zero = _mm512_setzero_si512();
    const __m512i zp = _mm512_set1_epi32(q->out_zp);
    const __m512i lo = _mm512_set1_epi32(q->act_min - q->out_zp), hi = _mm512_set1_epi32(q->act_max - q->out_zp);
    for (int c0 = 0; c0 < C; c0 += 32) {
        const int nc = C - c0 < 32 ? C - c0 : 32;
        const __mmask32 cm = nc == 32 ? ~(__mmask32)0 : (__mmask32)((1u << nc) - 1u);
        const __mmask16 m0 = (__mmask16)(cm & 0xFFFFu), m1 = (__mmask16)(cm >> 16);
        const __m512i b0 = bias ? _mm512_maskz_loadu_epi32(m0, bias + c0) : zero;
        const __m512i b1 = bias ? _mm512_maskz_loadu_epi32(m1, bias + c0 + 16) : zero;
        const __m512i mu0 = _mm512_maskz_loadu_epi32(m0, q->mult + c0);
        const __m512i mu1 = _mm512_maskz_loadu_epi32(m1, q->mult + c0 + 16);
        const __m512i s0 = _mm512_maskz_loadu_epi32(m0, q->shift + c0);
        const __m512i s1 = _mm512_maskz_loadu_epi32(m1, q->shift + c0 + 16);
        const __m512i l0 = _mm512_max_epi32(s0, zero), l1 = _mm512_max_epi32(s1, zero);
        const __m512i r0 = _mm512_max_epi32(_mm512_sub_epi32(zero, s0), zero);
        const __m512i r1 = _mm512_max_epi32(_mm512_sub_epi32(zero, s1), zero);
        const int any_lsh = (_mm512_cmpgt_epi32_mask(s0, zero) | _mm512_cmpgt_epi32_mask(s1, zero)) != 0;
        for (int ox = 0; ox < p->ow; ox++) {
            __m512i acc0 = b0, acc1 = b1;
            for (int ky = 0; ky < p->kh; ky++) {
                const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                if (iy < 0 || iy >= p->h) continue;
                const int8_t *xr = x + ((int64_t)b * p->h + iy) * p->w * C + c0;
                const int8_t *wr = w + (int64_t)ky * p->kw * C + c0;
                for (int kx = 0; kx < p->kw; kx++) {
                    const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                    if (ix < 0 || ix >= p->w) continue;
                    const __m512i xv =
                        _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cm, xr + (int64_t)ix * C)), zp16);
                    const __m512i wv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cm, wr + (int64_t)kx * C));
                    const __m512i pr = _mm512_mullo_epi16(xv, wv);
                    acc0 = _mm512_add_epi32(acc0, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(pr)));
                    acc1 = _mm512_add_epi32(acc1, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(pr, 1)));
                }
            }
            int8_t *yp = y + (((int64_t)b * p->oh + oy) * p->ow + ox) * C + c0;
            _mm_mask_storeu_epi8(yp, m0, tml_s8_out512(acc0, mu0, l0, r0, any_lsh, lo, hi, zp));
            if (nc > 16) _mm_mask_storeu_epi8(yp + 16, m1, tml_s8_out512(acc1, mu1, l1, r1, any_lsh, lo, hi, zp));
        }
    }
}

/* Output row (b, oy), channels [0, C & ~15), depth multiplier 1: 16 per step;
 * the caller finishes the channel tail with the portable loop. */
static TML_S8_TGT_AVX2 void dw_row_avx2(const tml_window *p, const tml_qparams *q, const int8_t *x,
                                        const int8_t *w, const int32_t *bias, int8_t *y, int b, int oy)
{
    const int C = p->c, cfull = C & ~15;
    const __m256i zp16 = _mm256_set1_epi16((short)q->in_zp), zero = _mm256_setzero_si256();
    const __m256i zp = _mm256_set1_epi32(q->out_zp);
    const __m256i lo = _mm256_set1_epi32(q->act_min - q->out_zp), hi = _mm256_set1_epi32(q->act_max - q->out_zp);
    for (int c0 = 0; c0 < cfull; c0 += 16) {
        const __m256i b0 = bias ? _mm256_loadu_si256((const __m256i *)(const void *)(bias + c0)) : zero;
        const __m256i b1 = bias ? _mm256_loadu_si256((const __m256i *)(const void *)(bias + c0 + 8)) : zero;
        const __m256i mu0 = _mm256_loadu_si256((const __m256i *)(const void *)(q->mult + c0));
        const __m256i mu1 = _mm256_loadu_si256((const __m256i *)(const void *)(q->mult + c0 + 8));
        const __m256i s0 = _mm256_loadu_si256((const __m256i *)(const void *)(q->shift + c0));
        const __m256i s1 = _mm256_loadu_si256((const __m256i *)(const void *)(q->shift + c0 + 8));
        const __m256i l0 = _mm256_max_epi32(s0, zero), l1 = _mm256_max_epi32(s1, zero);
        const __m256i r0 = _mm256_max_epi32(_mm256_sub_epi32(zero, s0), zero);
        const __m256i r1 = _mm256_max_epi32(_mm256_sub_epi32(zero, s1), zero);
        const int any_lsh = !_mm256_testz_si256(_mm256_or_si256(l0, l1), _mm256_or_si256(l0, l1));
        for (int ox = 0; ox < p->ow; ox++) {
            __m256i acc0 = b0, acc1 = b1;
            for (int ky = 0; ky < p->kh; ky++) {
                const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                if (iy < 0 || iy >= p->h) continue;
                const int8_t *xr = x + ((int64_t)b * p->h + iy) * p->w * C + c0;
                const int8_t *wr = w + (int64_t)ky * p->kw * C + c0;
                for (int kx = 0; kx < p->kw; kx++) {
                    const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                    if (ix < 0 || ix >= p->w) continue;
                    const __m256i xv = _mm256_sub_epi16(
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(xr + (int64_t)ix * C))), zp16);
                    const __m256i wv =
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(wr + (int64_t)kx * C)));
                    const __m256i pr = _mm256_mullo_epi16(xv, wv);
                    acc0 = _mm256_add_epi32(acc0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(pr)));
                    acc1 = _mm256_add_epi32(acc1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(pr, 1)));
                }
            }
            int8_t *yp = y + (((int64_t)b * p->oh + oy) * p->ow + ox) * C + c0;
            tml_s8_store8(yp, tml_s8_out256(acc0, mu0, l0, r0, any_lsh, lo, hi, zp), 8);
            tml_s8_store8(yp + 8, tml_s8_out256(acc1, mu1, l1, r1, any_lsh, lo, hi, zp), 8);
        }
    }
}

#endif /* TML_S8_X86 */

static void dw_row(tml_s8_isa isa, const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                   const int32_t *bias, int8_t *y, int b, int oy)
{
#ifdef TML_S8_X86
    if (p->depth_mult == 1 && isa == TML_S8_ISA_VNNI) {
        dw_row_avx512(p, q, x, w, bias, y, b, oy);
        return;
    }
    if (p->depth_mult == 1 && isa == TML_S8_ISA_AVX2) {
        dw_row_avx2(p, q, x, w, bias, y, b, oy);
        if (p->c & 15) dw_row_generic(p, q, x, w, bias, y, b, oy, p->c & ~15);
        return;
    }
#endif
    (void)isa;
    dw_row_generic(p, q, x, w, bias, y, b, oy, 0);
}

void tml_dwconv2d_s8_ex(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                        const int32_t *bias, int8_t *y, tml_s8_isa isa, int64_t par_min_macs)
{
    const int64_t rows = (int64_t)p->n * p->oh;
    if (rows <= 0 || p->ow <= 0 || p->c <= 0) return;
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
    int nth = 1;
#ifdef TML_S8_OMP
    const int64_t macs = rows * p->ow * (int64_t)p->c * p->depth_mult * p->kh * p->kw;
    if (macs >= par_min_macs && !omp_in_parallel()) nth = omp_get_max_threads();
#else
    (void)par_min_macs;
#endif
    if (nth <= 1) {
        for (int64_t r = 0; r < rows; r++) dw_row(isa, p, q, x, w, bias, y, (int)(r / p->oh), (int)(r % p->oh));
        return;
    }
#ifdef TML_S8_OMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int64_t r = 0; r < rows; r++) dw_row(isa, p, q, x, w, bias, y, (int)(r / p->oh), (int)(r % p->oh));
#endif
}

void tml_dwconv2d_s8(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                     const int32_t *bias, int8_t *y)
{
    tml_dwconv2d_s8_ex(p, q, x, w, bias, y, tml_s8_cpu_isa(), TML_S8_PAR_MACS);
}
