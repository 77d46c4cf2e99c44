/*
 * dwconv2d_f32.c - depthwise 2-D convolution, float32, NHWC, weights (1,KH,KW,C*M).
 *
 *   y[b,oy,ox,oc] = act(bias[oc] + sum_{ky,kx} x[b, oy*sh - pad_t + ky*dh,
 *                       ox*sw - pad_l + kx*dw, oc / M] * w[0,ky,kx,oc])
 *   taps outside x are 0.
 *
 * Fast path: for each output pixel, blocks of 16 channels (contiguous in
 * NHWC) accumulate in registers over the in-range taps (vectorized, AVX-512 /
 * AVX2 / portable chosen at run time) and are stored once. Interior pixels of
 * 3x3 / 5x5 kernels with stride 1 or 2 go in strips of 8 (AVX-512) or 4
 * pixels along the row: each input vector is loaded once for the pixels that
 * share it and the kernel row's weights stay in registers. On x86 a*b+c is one
 * fused multiply-add (the same in every path and both instruction sets).
 * Threads take output rows (b, oy).
 */
#include "ops_internal.h"

#ifdef TML_OPS_X86
#include <immintrin.h>
#endif

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

/* Output pixels ox0 .. ox0+S-1 of row (n, oy), channels [c0, c0+16): all
 * their taps inside the image horizontally, kernel rows [ky0, ky1) inside
 * vertically, dilation 1 along x, depth multiplier 1. The KW weights of a
 * kernel row stay in registers for the S pixels (S independent accumulators;
 * the input vectors shared by neighbouring pixels come from L1). Per pixel
 * the operations are those of the one-pixel path (bias, then + x*w for the
 * taps in (ky, kx) order), so the results do not depend on S or on which
 * path computed a pixel. KW, SW and S are constants after inlining. */
TML_OPS_INLINE void dw_strip_body(const int KW, const int SW, const int S, const tml_window *p, const float *x,
                                  const float *w, const float *b, float *y, int64_t n, int oy, int ox0, int c0,
                                  int ky0, int ky1)
{
    const int C = p->c, O = p->o;
    tml_v16f acc[8], wv[5], xv;
    if (b) {
        TML_V16_LOAD(acc[0], b + c0);
    } else {
        acc[0] = (tml_v16f){0};
    }
#pragma GCC unroll 8
    for (int s = 1; s < S; s++) acc[s] = acc[0];
    for (int ky = ky0; ky < ky1; ky++) {
        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
        const float *xr = x + ((n * p->h + iy) * p->w + (int64_t)ox0 * SW - p->pad_l) * C + c0;
        const float *wr = w + (int64_t)ky * KW * O + c0;
#pragma GCC unroll 5
        for (int kx = 0; kx < KW; kx++) TML_V16_LOAD(wv[kx], wr + (int64_t)kx * O);
#pragma GCC unroll 8
        for (int s = 0; s < S; s++)
#pragma GCC unroll 5
            for (int kx = 0; kx < KW; kx++) {
                TML_V16_LOAD(xv, xr + (int64_t)(s * SW + kx) * C);
                acc[s] = acc[s] + xv * wv[kx];
            }
    }
    float *yp = y + ((n * p->oh + oy) * p->ow + ox0) * O + c0;
#pragma GCC unroll 8
    for (int s = 0; s < S; s++) {
        TML_V16_ACT(p->act, acc[s]);
        TML_V16_STORE(yp + (int64_t)s * O, acc[s]);
    }
}

/* The strips of one output row: pixels [ox_lo, ox_hi) (at least S of them),
 * every channel block; the last strip of a row and the last channel block
 * overlap the previous ones (the same values are written again). */
TML_OPS_INLINE void dw_strips_tpl(const int KW, const int SW, const int S, const tml_window *p, const float *x,
                                  const float *w, const float *b, float *y, int64_t n, int oy, int ox_lo, int ox_hi,
                                  int ky0, int ky1)
{
    for (int ox = ox_lo; ox < ox_hi; ox += S)
        for (int cs = 0; cs < p->o; cs += DW_BLOCK) {
            const int c0 = cs + DW_BLOCK > p->o ? p->o - DW_BLOCK : cs;
            dw_strip_body(KW, SW, S, p, x, w, b, y, n, oy, ox + S > ox_hi ? ox_hi - S : ox, c0, ky0, ky1);
        }
}

/* Kernel widths and strides with a strip kernel: 3 and 5, stride 1 and 2. */
static int dw_strip_kind(const tml_window *p)
{
    if (p->depth_mult != 1 || p->o < DW_BLOCK || p->dw != 1 || (p->sw != 1 && p->sw != 2)) return -1;
    if (p->kw != 3 && p->kw != 5) return -1;
    return (p->kw == 5) * 2 + (p->sw == 2);
}

#define DW_STRIPS_ARGS                                                                                       \
    const tml_window *p, const float *x, const float *w, const float *b, float *y, int64_t n, int oy, int ox_lo, \
        int ox_hi, int ky0, int ky1
#define DW_STRIPS_DISPATCH(S)                                                                                \
    switch (dw_strip_kind(p)) {                                                                              \
    case 0: dw_strips_tpl(3, 1, S, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;                     \
    case 1: dw_strips_tpl(3, 2, S, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;                     \
    case 2: dw_strips_tpl(5, 1, S, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;                     \
    default: dw_strips_tpl(5, 2, S, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;                    \
    }
/* AVX2 and portable strips: 4 pixels (two ymm each: AVX2's 16 registers) */
#ifdef TML_OPS_X86
/* AVX-512 strips with intrinsics, over whole rows: S = 8 or 4 pixels, the
 * strips at the left / right border read zeros for the columns outside the
 * input (EDGE; a zero tap adds 0 * w, which leaves the sum as the one-pixel
 * path's skipped tap does). Otherwise the same operations as dw_strip_body
 * (one fused multiply-add per tap, in (ky, kx) order, from the bias). */
__attribute__((target("avx512f"), always_inline)) static inline void
dw_strip512(const int KW, const int SW, const int S, const int EDGE, const tml_window *p, const float *x,
            const float *w, const __m512 bias, float *y, int64_t n, int oy, int ox0, int c0, int ky0, int ky1,
            tml_act act)
{
    const int C = p->c, O = p->o;
    const int ix0 = ox0 * SW - p->pad_l;
    __m512 acc[8];
#pragma GCC unroll 8
    for (int s = 0; s < S; s++) acc[s] = bias;
    for (int ky = ky0; ky < ky1; ky++) {
        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
        const float *xr = x + ((n * p->h + iy) * p->w + ix0) * C + c0;
        const float *wr = w + (int64_t)ky * KW * O + c0;
        __m512 wv[5];
#pragma GCC unroll 5
        for (int kx = 0; kx < KW; kx++) wv[kx] = _mm512_loadu_ps(wr + (int64_t)kx * O);
        /* input column i serves pixel (i - kx) / SW for each matching kx; a
         * running pointer (C is not a constant: constant offsets would each
         * need a register) */
        const float *xp = xr;
#pragma GCC unroll 24
        for (int i = 0; i < (S - 1) * SW + KW; i++, xp += C) {
            const __m512 xv = !EDGE || (ix0 + i >= 0 && ix0 + i < p->w) ? _mm512_loadu_ps(xp) : _mm512_setzero_ps();
#pragma GCC unroll 5
            for (int kx = 0; kx < KW; kx++)
                if ((i - kx) % SW == 0 && i - kx >= 0 && (i - kx) / SW < S)
                    acc[(i - kx) / SW] = _mm512_fmadd_ps(xv, wv[kx], acc[(i - kx) / SW]);
        }
    }
    float *yp = y + ((n * p->oh + oy) * p->ow + ox0) * O + c0;
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
#pragma GCC unroll 8
    for (int s = 0; s < S; s++) {
        __m512 v = acc[s];
        /* as TML_V16_SELECT: relu(NaN) = 0, relu6 passes NaN */
        if (act == TML_ACT_RELU)
            v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), v);
        else if (act == TML_ACT_RELU6) {
            v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, six, _CMP_GT_OQ), six);
            v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
        }
        _mm512_storeu_ps(yp + (int64_t)s * O, v);
    }
}

/* Pixels [ox_lo, ox_hi) of a row (at least 4) in strips of S; the last strip
 * overlaps the previous one (the same values are written again). Channel
 * blocks inner: a strip's pixels are read whole, line after line. */
__attribute__((target("avx512f"), always_inline)) static inline void
dw_strips512_s(const int KW, const int SW, const int S, const tml_window *p, const float *x, const float *w,
               const float *b, float *y, int64_t n, int oy, int ox_lo, int ox_hi, int ky0, int ky1)
{
    const tml_act act = p->act;
    for (int ox = ox_lo; ox < ox_hi; ox += S) {
        const int ox0 = ox + S > ox_hi ? ox_hi - S : ox;
        const int ix0 = ox0 * SW - p->pad_l;
        const int edge = ix0 < 0 || ix0 + (S - 1) * SW + KW > p->w;
        for (int cs = 0; cs < p->o; cs += DW_BLOCK) {
            const int c0 = cs + DW_BLOCK > p->o ? p->o - DW_BLOCK : cs;
            const __m512 bias = b ? _mm512_loadu_ps(b + c0) : _mm512_setzero_ps();
            if (edge)
                dw_strip512(KW, SW, S, 1, p, x, w, bias, y, n, oy, ox0, c0, ky0, ky1, act);
            else
                dw_strip512(KW, SW, S, 0, p, x, w, bias, y, n, oy, ox0, c0, ky0, ky1, act);
        }
    }
}

__attribute__((target("avx512f"), always_inline)) static inline void dw_strips512_tpl(const int KW, const int SW,
                                                                                      DW_STRIPS_ARGS)
{
    if (ox_hi - ox_lo >= 8)
        dw_strips512_s(KW, SW, 8, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1);
    else
        dw_strips512_s(KW, SW, 4, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1);
}

/* Whole output rows (ow >= 4), borders included. */
__attribute__((target("avx512f"))) static void dw_strips_avx512(DW_STRIPS_ARGS)
{
    switch (dw_strip_kind(p)) {
    case 0: dw_strips512_tpl(3, 1, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;
    case 1: dw_strips512_tpl(3, 2, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;
    case 2: dw_strips512_tpl(5, 1, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;
    default: dw_strips512_tpl(5, 2, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;
    }
}

__attribute__((target("avx2,fma"))) TML_FP_CONTRACT_FAST static void dw_strips_avx2(DW_STRIPS_ARGS)
{
    DW_STRIPS_DISPATCH(4)
}

/* AVX2 strips with intrinsics over whole rows, as dw_strip512 on 8-channel
 * blocks (one ymm): S = 8 or 4 pixels (S accumulators + KW weights + one
 * input vector fit AVX2's 16 registers), each input column loaded once per
 * kernel row for the pixels that share it; the strips at the left / right
 * border read zeros for the columns outside the input (a zero tap adds
 * 0 * w, which leaves the sum as the one-pixel path's skipped tap does).
 * One fused multiply-add per tap, in (ky, kx) order, from the bias. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
dw_strip256(const int KW, const int SW, const int S, const int EDGE, const tml_window *p, const float *x,
            const float *w, const __m256 bias, float *y, int64_t n, int oy, int ox0, int c0, int ky0, int ky1,
            tml_act act)
{
    const int C = p->c, O = p->o;
    const int ix0 = ox0 * SW - p->pad_l;
    __m256 acc[8];
#pragma GCC unroll 8
    for (int s = 0; s < S; s++) acc[s] = bias;
    for (int ky = ky0; ky < ky1; ky++) {
        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
        const float *xr = x + ((n * p->h + iy) * p->w + ix0) * C + c0;
        const float *wr = w + (int64_t)ky * KW * O + c0;
        __m256 wv[5];
#pragma GCC unroll 5
        for (int kx = 0; kx < KW; kx++) wv[kx] = _mm256_loadu_ps(wr + (int64_t)kx * O);
        const float *xp = xr;
#pragma GCC unroll 24
        for (int i = 0; i < (S - 1) * SW + KW; i++, xp += C) {
            const __m256 xv = !EDGE || (ix0 + i >= 0 && ix0 + i < p->w) ? _mm256_loadu_ps(xp) : _mm256_setzero_ps();
#pragma GCC unroll 5
            for (int kx = 0; kx < KW; kx++)
                if ((i - kx) % SW == 0 && i - kx >= 0 && (i - kx) / SW < S)
                    acc[(i - kx) / SW] = _mm256_fmadd_ps(xv, wv[kx], acc[(i - kx) / SW]);
        }
    }
    float *yp = y + ((n * p->oh + oy) * p->ow + ox0) * O + c0;
    const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);
#pragma GCC unroll 8
    for (int s = 0; s < S; s++) {
        __m256 v = acc[s];
        /* as TML_V16_SELECT: relu(NaN) = 0, relu6 passes NaN */
        if (act == TML_ACT_RELU)
            v = _mm256_and_ps(v, _mm256_cmp_ps(v, zero, _CMP_GT_OQ));
        else if (act == TML_ACT_RELU6) {
            v = _mm256_blendv_ps(v, six, _mm256_cmp_ps(v, six, _CMP_GT_OQ));
            v = _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
        }
        _mm256_storeu_ps(yp + (int64_t)s * O, v);
    }
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
dw_strips256_s(const int KW, const int SW, const int S, const tml_window *p, const float *x, const float *w,
               const float *b, float *y, int64_t n, int oy, int ox_lo, int ox_hi, int ky0, int ky1)
{
    const tml_act act = p->act;
    for (int ox = ox_lo; ox < ox_hi; ox += S) {
        const int ox0 = ox + S > ox_hi ? ox_hi - S : ox;
        const int ix0 = ox0 * SW - p->pad_l;
        const int edge = ix0 < 0 || ix0 + (S - 1) * SW + KW > p->w;
        for (int cs = 0; cs < p->o; cs += 8) {
            const int c0 = cs + 8 > p->o ? p->o - 8 : cs;
            const __m256 bias = b ? _mm256_loadu_ps(b + c0) : _mm256_setzero_ps();
            if (edge)
                dw_strip256(KW, SW, S, 1, p, x, w, bias, y, n, oy, ox0, c0, ky0, ky1, act);
            else
                dw_strip256(KW, SW, S, 0, p, x, w, bias, y, n, oy, ox0, c0, ky0, ky1, act);
        }
    }
}

__attribute__((target("avx2,fma"), always_inline)) static inline void dw_strips256_tpl(const int KW, const int SW,
                                                                                      DW_STRIPS_ARGS)
{
    if (ox_hi - ox_lo >= 8)
        dw_strips256_s(KW, SW, 8, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1);
    else
        dw_strips256_s(KW, SW, 4, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1);
}

/* Whole output rows (ow >= 4), borders included. */
__attribute__((target("avx2,fma"))) static void dw_strips_avx2_rows(DW_STRIPS_ARGS)
{
    switch (dw_strip_kind(p)) {
    case 0: dw_strips256_tpl(3, 1, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;
    case 1: dw_strips256_tpl(3, 2, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;
    case 2: dw_strips256_tpl(5, 1, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;
    default: dw_strips256_tpl(5, 2, p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1); break;
    }
}
#endif
static void dw_strips_generic(DW_STRIPS_ARGS) { DW_STRIPS_DISPATCH(4) }

/* Strip mode of a call: -1 whole rows by the AVX-512 strips, -2 whole rows
 * by the AVX2 intrinsic strips (rows of at least 4 pixels), 4 interior strips
 * of 4 (portable), 0 none. */
static int dw_strip_mode(const tml_window *p, tml_isa isa)
{
    if (dw_strip_kind(p) < 0) return 0;
#ifdef TML_OPS_X86
    if (isa == TML_ISA_AVX512) return p->ow >= 4 ? -1 : 0;
    if (isa == TML_ISA_AVX2 && p->ow >= 4) return -2;
#else
    (void)isa;
#endif
    return 4;
}

/* interior strips of 4: AVX2 (strip 4 on an AVX2 or AVX-512 CPU ran the
 * AVX2 rows) or portable */
static void dw_strips(DW_STRIPS_ARGS, tml_isa isa)
{
#ifdef TML_OPS_X86
    if (isa >= TML_ISA_AVX2) {
        dw_strips_avx2(p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1);
        return;
    }
#else
    (void)isa;
#endif
    dw_strips_generic(p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1);
}

/* Output rows [r0, r1) of the (n*oh) rows. For every pixel and block of 16
 * output channels: acc = bias; acc += x * w for each in-range tap in (ky, kx)
 * order; activation; one store. Multiplier M > 1 reads input channel oc / M. */
TML_OPS_INLINE void dw_rows_body(const int HALVES, const tml_window *p, const float *x, const float *w,
                                 const float *b, float *y, int64_t r0, int64_t r1, int strip, tml_isa isa)
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
#ifdef TML_OPS_X86
            if (strip == -1) {
                dw_strips_avx512(p, x, w, b, y, n, oy, 0, p->ow, ky0, ky1);
                break;
            }
            if (strip == -2) {
                dw_strips_avx2_rows(p, x, w, b, y, n, oy, 0, p->ow, ky0, ky1);
                break;
            }
#endif
            if (strip > 0 && ox == ox_lo && ox_hi - ox_lo >= strip) {
                dw_strips(p, x, w, b, y, n, oy, ox_lo, ox_hi, ky0, ky1, isa);
                ox = ox_hi - 1;
                continue;
            }
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
                    for (int j = 0; j < DW_PIX; j++) {
                        if (HALVES)
                            TML_V16_ACT_HALVES(p->act, acc[j]);
                        else
                            TML_V16_ACT(p->act, acc[j]);
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
                    if (HALVES)
                        TML_V16_ACT_HALVES(p->act, acc);
                    else
                        TML_V16_ACT(p->act, acc);
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
/* rows [r0, r1) with the kernels of `isa`: the body compiled three times as
 * TML_OPS_MULTIVERSION_FMA does, dispatched on the isa given */
#define DW_ROWS_PARAMS                                                                                       \
    (const tml_window *p, const float *x, const float *w, const float *b, float *y, int64_t r0, int64_t r1,   \
     int strip, tml_isa isa)
#ifdef TML_OPS_X86
__attribute__((target("avx512f"))) TML_FP_CONTRACT_FAST static void dw_rows_avx512 DW_ROWS_PARAMS
{
    dw_rows_body(0, p, x, w, b, y, r0, r1, strip, isa);
}
/* the activation in 8-float halves on AVX2 (TML_V16_ACT_HALVES) */
__attribute__((target("avx2,fma"))) TML_FP_CONTRACT_FAST static void dw_rows_avx2 DW_ROWS_PARAMS
{
    dw_rows_body(1, p, x, w, b, y, r0, r1, strip, isa);
}
#endif
static void dw_rows_generic DW_ROWS_PARAMS
{
    dw_rows_body(0, p, x, w, b, y, r0, r1, strip, isa);
}

static void dw_rows_isa(tml_isa isa, const tml_window *p, const float *x, const float *w, const float *b, float *y,
                        int64_t r0, int64_t r1, int strip)
{
#ifdef TML_OPS_X86
    if (isa == TML_ISA_AVX512) {
        dw_rows_avx512(p, x, w, b, y, r0, r1, strip, isa);
        return;
    }
    if (isa == TML_ISA_AVX2) {
        dw_rows_avx2(p, x, w, b, y, r0, r1, strip, isa);
        return;
    }
#endif
    dw_rows_generic(p, x, w, b, y, r0, r1, strip, isa);
}

void tml_dwconv2d_f32_ex(const tml_window *p, const float *x, const float *w, const float *b, float *y, tml_isa isa)
{
    const int64_t rows = (int64_t)p->n * p->oh;
    if (rows <= 0 || p->o <= 0) return;
    if (isa > tml_cpu_isa()) isa = tml_cpu_isa();
    /* strips when a strip kernel fits the shape (0: none) */
    const int strip = dw_strip_mode(p, isa);
#ifdef TML_OPS_OMP
    const double flops = 2.0 * (double)rows * p->ow * p->o * p->kh * p->kw;
    if (flops >= TML_OPS_PAR_FLOPS && rows > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) dw_rows_isa(isa, p, x, w, b, y, r, r + 1, strip);
        return;
    }
#endif
    dw_rows_isa(isa, p, x, w, b, y, 0, rows, strip);
}

void tml_dwconv2d_f32(const tml_window *p, const float *x, const float *w, const float *b, float *y)
{
    tml_dwconv2d_f32_ex(p, x, w, b, y, tml_cpu_isa());
}
