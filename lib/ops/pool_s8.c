/*
 * pool_s8.c - INT8 max / average / global average pooling. Pools keep the
 * input's scale and zero point, so they need no requantization: max is exact,
 * the average is the integer mean of the in-range taps rounded half away from
 * zero. Padded taps are skipped (not counted in the average), as in the float
 * kernels. A window with no in-range tap (impossible for shapes accepted by
 * tml_model_finalize) gives act_min for max and clamp(0) for the averages.
 */
#include "ops_s8_internal.h"
#include "ops_s8_simd.h"

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

/* A global average pool over a tensor that arrives in parts (a memory
 * schedule streams its rows or tiles): the parts' sums, then the same
 * division and rounding as tml_global_avgpool_s8_ref. */
void tml_global_avgpool_s8_sum_ref(int64_t pixels, int c, const int8_t *x, int32_t *acc)
{
    for (int64_t i = 0; i < pixels; i++)
        for (int ch = 0; ch < c; ch++) acc[ch] += x[i * c + ch];
}

void tml_global_avgpool_s8_finish_ref(int64_t hw, int c, const int32_t *acc, int8_t *y)
{
    for (int ch = 0; ch < c; ch++) y[ch] = clamp8(hw > 0 ? div_round_away(acc[ch], hw) : 0, -128, 127);
}

/* ---- fast pools ----------------------------------------------------------------------------
 * Same results as the _ref kernels. NHWC keeps a pixel's channels contiguous,
 * so the channel loops are innermost (blocks of 64 on the stack) and
 * vectorize; the in-image tap range is computed once per output pixel. The
 * average divides in float: for integers a < 2^24 and b with a + b < 2^24,
 * floor(fl(a / b)) == floor(a / b) (a correctly rounded quotient of such
 * integers never reaches the next integer), which holds for windows of up to
 * 65536 taps (|sum| <= 128 * count); larger windows divide in integers. */

#define POOL_BLOCK 64

/* Kernel taps [k0, k1) of output position o along one axis (input size n). */
static void tap_range(int o, int stride, int pad, int dil, int k, int n, int *k0, int *k1)
{
    const int i0 = o * stride - pad;
    int a = 0, b = k;
    while (a < b && i0 + a * dil < 0) a++;
    while (b > a && i0 + (b - 1) * dil >= n) b--;
    *k0 = a;
    *k1 = b;
}

static inline __attribute__((always_inline)) void maxpool_body(const tml_window *p, int32_t act_min, int32_t act_max,
                                                               const int8_t *x, int8_t *y)
{
    const int H = p->h, W = p->w, C = p->c, OH = p->oh, OW = p->ow;
    const int8_t lo = (int8_t)(act_min < -128 ? -128 : act_min > 127 ? 127 : act_min);
    const int8_t hi = (int8_t)(act_max < -128 ? -128 : act_max > 127 ? 127 : act_max);
    for (int b = 0; b < p->n; b++)
        for (int oy = 0; oy < OH; oy++) {
            int ky0, ky1;
            tap_range(oy, p->sh, p->pad_t, p->dh, p->kh, H, &ky0, &ky1);
            for (int ox = 0; ox < OW; ox++) {
                int kx0, kx1;
                tap_range(ox, p->sw, p->pad_l, p->dw, p->kw, W, &kx0, &kx1);
                int8_t *yp = y + (((ptrdiff_t)b * OH + oy) * OW + ox) * C;
                const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
                for (int c0 = 0; c0 < C; c0 += POOL_BLOCK) {
                    const int nb = C - c0 < POOL_BLOCK ? C - c0 : POOL_BLOCK;
                    int8_t m[POOL_BLOCK];
                    for (int j = 0; j < nb; j++) m[j] = lo; /* empty window: act_min */
                    int first = 1;
                    for (int ky = ky0; ky < ky1; ky++)
                        for (int kx = kx0; kx < kx1; kx++) {
                            const int8_t *xp =
                                x + (((ptrdiff_t)b * H + iy0 + ky * p->dh) * W + ix0 + kx * p->dw) * C + c0;
                            if (first) {
                                for (int j = 0; j < nb; j++) m[j] = xp[j];
                                first = 0;
                            } else {
                                for (int j = 0; j < nb; j++) m[j] = xp[j] > m[j] ? xp[j] : m[j];
                            }
                        }
                    for (int j = 0; j < nb; j++) {
                        const int8_t v = m[j] < lo ? lo : m[j];
                        yp[c0 + j] = v > hi ? hi : v;
                    }
                }
            }
        }
}

static inline __attribute__((always_inline)) void avgpool_body(const tml_window *p, int32_t act_min, int32_t act_max,
                                                               const int8_t *x, int8_t *y)
{
    const int H = p->h, W = p->w, C = p->c, OH = p->oh, OW = p->ow;
    for (int b = 0; b < p->n; b++)
        for (int oy = 0; oy < OH; oy++) {
            int ky0, ky1;
            tap_range(oy, p->sh, p->pad_t, p->dh, p->kh, H, &ky0, &ky1);
            for (int ox = 0; ox < OW; ox++) {
                int kx0, kx1;
                tap_range(ox, p->sw, p->pad_l, p->dw, p->kw, W, &kx0, &kx1);
                const int count = (ky1 - ky0) * (kx1 - kx0);
                int8_t *yp = y + (((ptrdiff_t)b * OH + oy) * OW + ox) * C;
                const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
                for (int c0 = 0; c0 < C; c0 += POOL_BLOCK) {
                    const int nb = C - c0 < POOL_BLOCK ? C - c0 : POOL_BLOCK;
                    int32_t s[POOL_BLOCK];
                    for (int j = 0; j < nb; j++) s[j] = 0;
                    for (int ky = ky0; ky < ky1; ky++)
                        for (int kx = kx0; kx < kx1; kx++) {
                            const int8_t *xp =
                                x + (((ptrdiff_t)b * H + iy0 + ky * p->dh) * W + ix0 + kx * p->dw) * C + c0;
                            for (int j = 0; j < nb; j++) s[j] += xp[j];
                        }
                    if (count == 0) {
                        for (int j = 0; j < nb; j++) yp[c0 + j] = clamp8(0, act_min, act_max);
                    } else if (count <= 65536) {
                        const float fc = (float)count;
                        const int32_t half = count / 2;
                        for (int j = 0; j < nb; j++) {
                            const int32_t a = (s[j] < 0 ? -s[j] : s[j]) + half;
                            int32_t q = (int32_t)((float)a / fc);
                            q = s[j] < 0 ? -q : q;
                            q = q < act_min ? act_min : q;
                            yp[c0 + j] = (int8_t)(q > act_max ? act_max : q);
                        }
                    } else {
                        for (int j = 0; j < nb; j++) yp[c0 + j] = clamp8(div_round_away(s[j], count), act_min, act_max);
                    }
                }
            }
        }
}

static void maxpool_generic(const tml_window *p, int32_t lo, int32_t hi, const int8_t *x, int8_t *y)
{
    maxpool_body(p, lo, hi, x, y);
}

static void avgpool_generic(const tml_window *p, int32_t lo, int32_t hi, const int8_t *x, int8_t *y)
{
    avgpool_body(p, lo, hi, x, y);
}

/* Global average over hw <= 65536 pixels of channels [c0, c0 + nb) of one
 * sample, nb <= POOL_BLOCK: int32 sums in pixel order (|sum| <= 2^23), then
 * the rounding division in float as in the window average (exact). */
static inline __attribute__((always_inline)) void gap_block(int hw, int c, int nb, const int8_t *x, int8_t *y)
{
    int32_t s[POOL_BLOCK];
    for (int j = 0; j < nb; j++) s[j] = 0;
    for (int i = 0; i < hw; i++) {
        const int8_t *xp = x + (ptrdiff_t)i * c;
        for (int j = 0; j < nb; j++) s[j] += xp[j];
    }
    const float fc = (float)hw;
    const int32_t half = hw / 2;
    for (int j = 0; j < nb; j++) {
        const int32_t a = (s[j] < 0 ? -s[j] : s[j]) + half;
        int32_t q = (int32_t)((float)a / fc);
        q = s[j] < 0 ? -q : q;
        y[j] = clamp8(q, -128, 127);
    }
}

static inline __attribute__((always_inline)) void gap_body(int n, int hw, int c, const int8_t *x, int8_t *y)
{
    for (int b = 0; b < n; b++)
        for (int c0 = 0; c0 < c; c0 += POOL_BLOCK)
            gap_block(hw, c, c - c0 < POOL_BLOCK ? c - c0 : POOL_BLOCK, x + (ptrdiff_t)b * hw * c + c0,
                      y + (ptrdiff_t)b * c + c0);
}

static void gap_generic(int n, int hw, int c, const int8_t *x, int8_t *y) { gap_body(n, hw, c, x, y); }

#ifdef TML_S8_X86
static __attribute__((target("avx2"))) void maxpool_avx2(const tml_window *p, int32_t lo, int32_t hi, const int8_t *x,
                                                         int8_t *y)
{
    maxpool_body(p, lo, hi, x, y);
}

static __attribute__((target("avx2"))) void avgpool_avx2(const tml_window *p, int32_t lo, int32_t hi, const int8_t *x,
                                                         int8_t *y)
{
    avgpool_body(p, lo, hi, x, y);
}

static __attribute__((target("avx2"))) void gap_avx2(int n, int hw, int c, const int8_t *x, int8_t *y)
{
    gap_body(n, hw, c, x, y);
}

/* Max pool, AVX-512BW: 64 channels per masked load, the in-image taps of each
 * output pixel only (computed once per pixel), as maxpool_body. */
static TML_S8_TGT_VNNI void maxpool_avx512(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x,
                                           int8_t *y)
{
    const int H = p->h, W = p->w, C = p->c, OH = p->oh, OW = p->ow, SH = p->sh, SW = p->sw, DH = p->dh, DW = p->dw;
    const int PT = p->pad_t, PL = p->pad_l, KH = p->kh, KW = p->kw;
    const int8_t lo8 = (int8_t)(act_min < -128 ? -128 : act_min > 127 ? 127 : act_min);
    const int8_t hi8 = (int8_t)(act_max < -128 ? -128 : act_max > 127 ? 127 : act_max);
    const __m512i vlo = _mm512_set1_epi8(lo8), vhi = _mm512_set1_epi8(hi8);
    for (int b = 0; b < p->n; b++)
        for (int oy = 0; oy < OH; oy++) {
            int ky0, ky1;
            tap_range(oy, SH, PT, DH, KH, H, &ky0, &ky1);
            const int iy0 = oy * SH - PT;
            for (int ox = 0; ox < OW; ox++) {
                int kx0, kx1;
                tap_range(ox, SW, PL, DW, KW, W, &kx0, &kx1);
                const int ix0 = ox * SW - PL;
                int8_t *yp = y + (((ptrdiff_t)b * OH + oy) * OW + ox) * C;
                const int8_t *xw = x + (((ptrdiff_t)b * H + iy0) * W + ix0) * C;
                for (int c0 = 0; c0 < C; c0 += 64) {
                    const __mmask64 km = C - c0 >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (C - c0)) - 1);
                    __m512i m = vlo; /* empty window: act_min */
                    if (ky1 > ky0 && kx1 > kx0) {
                        m = _mm512_maskz_loadu_epi8(km, xw + ((ptrdiff_t)ky0 * DH * W + (ptrdiff_t)kx0 * DW) * C + c0);
                        for (int ky = ky0; ky < ky1; ky++)
                            for (int kx = kx0; kx < kx1; kx++)
                                m = _mm512_max_epi8(
                                    m, _mm512_maskz_loadu_epi8(
                                           km, xw + ((ptrdiff_t)ky * DH * W + (ptrdiff_t)kx * DW) * C + c0));
                    }
                    _mm512_mask_storeu_epi8(yp + c0, km, _mm512_min_epi8(_mm512_max_epi8(m, vlo), vhi));
                }
            }
        }
}

/* Global average pool, AVX-512BW: 64 channels per step, hw <= 65536. The
 * pixels are summed in int16 lanes, even channels (a byte shifted up and
 * arithmetically back) and odd channels (an arithmetic shift) apart, three
 * shifts and two adds a pixel instead of four widenings; at most 256 pixels
 * a run (|sum| <= 256 * 128 = 32768, in [-32768, 32512]: no overflow), whose
 * sums are put back in channel order (vpermt2w) and added into int32. */
static TML_S8_TGT_VNNI void gap_avx512(int n, int hw, int c, const int8_t *x, int8_t *y)
{
    const __m512 fc = _mm512_set1_ps((float)hw);
    const __m512i half = _mm512_set1_epi32(hw / 2), qlo = _mm512_set1_epi32(-128), qhi = _mm512_set1_epi32(127);
    /* int16 lane i of channels 0-31 / 32-63: even channel 2j is lane j of the
     * even sums (index j), odd channel 2j + 1 lane j of the odd ones (32 + j) */
    uint16_t ilo[32], ihi[32];
    for (int i = 0; i < 32; i++) {
        ilo[i] = (uint16_t)((i & 1) * 32 + i / 2);
        ihi[i] = (uint16_t)((i & 1) * 32 + 16 + i / 2);
    }
    const __m512i idx_lo = _mm512_loadu_si512((const void *)ilo), idx_hi = _mm512_loadu_si512((const void *)ihi);
    for (int b = 0; b < n; b++) {
        const int8_t *xb = x + (ptrdiff_t)b * hw * c;
        for (int c0 = 0; c0 < c; c0 += 64) {
            const int nb = c - c0 < 64 ? c - c0 : 64;
            const __mmask64 km = nb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << nb) - 1);
            __m512i s[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                            _mm512_setzero_si512()};
            for (int i0 = 0; i0 < hw; i0 += 256) {
                const int i1 = hw - i0 < 256 ? hw : i0 + 256;
                __m512i se = _mm512_setzero_si512(), so = se;
                for (int i = i0; i < i1; i++) {
                    const __m512i v = _mm512_maskz_loadu_epi8(km, xb + (ptrdiff_t)i * c + c0);
                    se = _mm512_add_epi16(se, _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8));
                    so = _mm512_add_epi16(so, _mm512_srai_epi16(v, 8));
                }
                const __m512i lo = _mm512_permutex2var_epi16(se, idx_lo, so);
                const __m512i hi = _mm512_permutex2var_epi16(se, idx_hi, so);
                s[0] = _mm512_add_epi32(s[0], _mm512_cvtepi16_epi32(_mm512_castsi512_si256(lo)));
                s[1] = _mm512_add_epi32(s[1], _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(lo, 1)));
                s[2] = _mm512_add_epi32(s[2], _mm512_cvtepi16_epi32(_mm512_castsi512_si256(hi)));
                s[3] = _mm512_add_epi32(s[3], _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(hi, 1)));
            }
            for (int k = 0; k < 4 && 16 * k < nb; k++) {
                const __mmask16 neg = _mm512_cmplt_epi32_mask(s[k], _mm512_setzero_si512());
                const __m512i a = _mm512_add_epi32(_mm512_abs_epi32(s[k]), half);
                __m512i q = _mm512_cvttps_epi32(_mm512_div_ps(_mm512_cvtepi32_ps(a), fc));
                q = _mm512_mask_sub_epi32(q, neg, _mm512_setzero_si512(), q);
                q = _mm512_min_epi32(_mm512_max_epi32(q, qlo), qhi);
                const int left = nb - 16 * k;
                const __mmask16 om = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
                _mm_mask_storeu_epi8(y + (ptrdiff_t)b * c + c0 + 16 * k, om, _mm512_cvtepi32_epi8(q));
            }
        }
    }
}
#endif

void tml_maxpool_s8(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y)
{
    tml_maxpool_s8_ex(p, act_min, act_max, x, y, tml_s8_cpu_isa());
}

void tml_maxpool_s8_ex(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y,
                       tml_s8_isa isa)
{
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
#ifdef TML_S8_X86
    if (isa == TML_S8_ISA_VNNI) {
        maxpool_avx512(p, act_min, act_max, x, y);
        return;
    }
    if (isa == TML_S8_ISA_AVX2) {
        maxpool_avx2(p, act_min, act_max, x, y);
        return;
    }
#endif
    maxpool_generic(p, act_min, act_max, x, y);
}

void tml_avgpool_s8(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y)
{
    tml_avgpool_s8_ex(p, act_min, act_max, x, y, tml_s8_cpu_isa());
}

void tml_avgpool_s8_ex(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y,
                       tml_s8_isa isa)
{
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
#ifdef TML_S8_X86
    if (isa >= TML_S8_ISA_AVX2) {
        avgpool_avx2(p, act_min, act_max, x, y);
        return;
    }
#endif
    avgpool_generic(p, act_min, act_max, x, y);
}

void tml_global_avgpool_s8_ex(int n, int hw, int c, const int8_t *x, int8_t *y, tml_s8_isa isa)
{
    if (n <= 0 || c <= 0) return;
    if (hw <= 0 || hw > 65536) { /* (no such model) the float division is exact up to 65536 */
        tml_global_avgpool_s8_ref(n, hw, c, x, y);
        return;
    }
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
#ifdef TML_S8_X86
    if (isa == TML_S8_ISA_VNNI) {
        gap_avx512(n, hw, c, x, y);
        return;
    }
    if (isa == TML_S8_ISA_AVX2) {
        gap_avx2(n, hw, c, x, y);
        return;
    }
#endif
    gap_generic(n, hw, c, x, y);
}

void tml_global_avgpool_s8(int n, int hw, int c, const int8_t *x, int8_t *y)
{
    tml_global_avgpool_s8_ex(n, hw, c, x, y, tml_s8_cpu_isa());
}

/* ---- TFLite's MEAN (TML_ROUNDING_TFLITE) ------------------------------------------------------ */

void tml_mean_s8_tfl_prepare(float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, int hw,
                             tml_mean_s8_tfl_params *p)
{
    int32_t mult;
    int shift;
    tml_quantize_multiplier((double)in_scale / (double)out_scale, &mult, &shift);
    /* fold 1/hw into the multiplier: s = floor(log2(hw)), at most 32 (the
     * int64 shift) and at most 31 + shift (the final shift stays >= -31) */
    int s = 0;
    while (s < 62 && ((int64_t)1 << (s + 1)) <= (int64_t)hw) s++;
    if (s > 32) s = 32;
    if (s > 31 + shift) s = 31 + shift;
    if (s < 0) s = 0;
    p->mult = hw > 0 ? (int32_t)(((int64_t)mult * ((int64_t)1 << s)) / hw) : 0;
    p->shift = shift - s;
    p->in_zp = in_zp;
    p->out_zp = out_zp;
}

void tml_mean_s8_tfl_ref(int n, int hw, int c, const tml_mean_s8_tfl_params *p, const int8_t *x, int8_t *y)
{
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            int32_t sum = 0;
            for (int i = 0; i < hw; i++) sum += x[((int64_t)b * hw + i) * c + ch];
            /* TFLite subtracts in int64 and truncates to the int32 accumulator type */
            const int32_t shifted = (int32_t)(uint32_t)((int64_t)sum - (int64_t)p->in_zp * hw);
            const int32_t v = tml_requantize_tfl(shifted, p->mult, p->shift) + p->out_zp;
            y[(int64_t)b * c + ch] = clamp8(v, -128, 127);
        }
}
