/*
 * dwconv2d_s8.c - INT8 depthwise convolution: x (n,h,w,c), w (1,kh,kw,c*m),
 * bias (c*m), y (n,oh,ow,c*m); output channel oc reads input channel oc / m.
 *
 *   acc = bias[oc] + sum over in-range taps of (x[.., oc / m] - in_zp) * w[ky,kx,oc]
 *   y = clamp(requantize(acc, mult[oc], shift[oc]) + out_zp, act_min, act_max)
 *
 * Fast kernels (depth multiplier 1): NHWC keeps a pixel's channels
 * contiguous, so the channels are the vector lanes. AVX-512 VNNI: row strips
 * of tap-group entries, one vpdpbusd per four taps of 16 channels (see
 * dw_block_vnni; blocks of 64 channels in dw_block64_vnni), the 32-channel
 * pair kernel for 17 to 32 channels, the per-row tap-group kernels where the
 * strips do not fit. AVX2: per tap, 16 int8 inputs and weights are widened to
 * int16, the zero point subtracted (|x - in_zp| <= 255, |w| <= 128: the int16
 * product <= 32640 is exact) and the products widened into int32
 * accumulators; the channel tail uses the portable loop. Depth multiplier > 1,
 * kernels too large for the VNNI strips (they take the AVX2 kernel) and other
 * CPUs use the portable loop, which keeps a block of accumulators per pixel.
 * OpenMP splits images, channel blocks and chunks of output rows.
 */
#include <string.h>

#include "ops_s8_internal.h"
#include "ops_s8_simd.h"

#ifdef TML_S8_OMP
#include <omp.h>
#endif

/* ---- reference ------------------------------------------------------------------------ */

/* int8 (wbits 8) and packed low-bit weights; inlined into both entry points. */
static inline __attribute__((always_inline)) void dw_ref(const tml_window *p, const tml_qparams *q, const int8_t *x,
                                                         const void *w, int wbits, const int32_t *bias, int8_t *y)
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
                            acc += (xv - q->in_zp) * tml_s8w_get(w, wbits, ((int64_t)ky * p->kw + kx) * oc_n + oc);
                        }
                    }
                    int64_t v = (int64_t)tml_requantize_mode(acc, q->mult[oc], q->shift[oc], q->rounding) + q->out_zp;
                    if (v < q->act_min) v = q->act_min;
                    if (v > q->act_max) v = q->act_max;
                    y[(((int64_t)b * p->oh + oy) * p->ow + ox) * oc_n + oc] = (int8_t)v;
                }
}

void tml_dwconv2d_s8_ref(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                         const int32_t *bias, int8_t *y)
{
    dw_ref(p, q, x, w, 8, bias, y);
}

void tml_dwconv2d_s8w_ref(const tml_window *p, const tml_qparams *q, int wbits, const int8_t *x, const uint8_t *w,
                          const int32_t *bias, int8_t *y)
{
    dw_ref(p, q, x, w, wbits, bias, y);
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
                                               q->act_min, q->act_max, q->rounding == TML_ROUNDING_TFLITE);
            }
        }
    }
}

#ifdef TML_S8_X86

/* Geometry in locals: y is int8, so every store could alias *p and force the
 * compiler to reload it. */
#define DW_LOCALS(p)                                                                                           \
    const int H = (p)->h, W = (p)->w, C = (p)->c, KH = (p)->kh, KW = (p)->kw, SH = (p)->sh, SW = (p)->sw;      \
    const int DH = (p)->dh, DW = (p)->dw, PT = (p)->pad_t, PL = (p)->pad_l, OW = (p)->ow, OH = (p)->oh;        \
    (void)KH

/* Taps [t0, t1) of a kernel of k taps (dilation d) whose first tap reads
 * position i0 that fall inside [0, n). */
static inline __attribute__((always_inline)) void dw_tap_range(int i0, int k, int d, int n, int *t0, int *t1)
{
    int a = 0, b = k;
    while (a < b && i0 + a * d < 0) a++;
    while (b > a && i0 + (b - 1) * d >= n) b--;
    *t0 = a;
    *t1 = b;
}

/* Kernel rows [ky0, ky1) of output row oy that fall inside the image. */
static void dw_ky_range(const tml_window *p, int oy, int *ky0, int *ky1)
{
    dw_tap_range(oy * p->sh - p->pad_t, p->kh, p->dh, p->h, ky0, ky1);
}

/*
 * AVX-512 VNNI, depth multiplier 1: row strips of tap-group entries.
 *
 * The taps of one kernel row are taken in groups of four (kx = 4g .. 4g+3,
 * G = ceil(kw / 4) groups; taps past kw have zero weights). An "entry" holds,
 * for one input row iy, one output column ox, one group g and 16 channels,
 * the four taps' inputs of each channel as u8 (x + 128, by flipping the sign
 * bit): byte 4j + t = tap 4g + t of channel c0 + j. One vpdpbusd of an entry
 * with the likewise interleaved weights adds a whole group to the 16
 * channels' int32 accumulators (four exact products per lane, as the conv
 * GEMM). Entries of an input row are built once per 16-channel block and kept
 * in a ring of row slots (slot = iy mod ((kh-1)*dh + 1)) on the stack, so a
 * stride-1 3x3 layer builds each input row once and reads it from three output
 * rows; rows wider than the buffer are cut into column strips. Taps outside
 * the image read in_zp (its +128 share cancels in the correction below);
 * kernel rows outside the image are skipped and their share added back.
 *
 * corr = bias - (in_zp + 128) * sum_t w_t removes the +128 of every tap;
 * rowadd[ky] = (in_zp + 128) * sum_kx w[ky][kx] is the share of a skipped row.
 * Per block of 16 channels: weights, corrections and requantization constants
 * stay in registers across the block's whole image.
 */

/* Stack bytes for the entry rows of one strip. */
#define DW_STRIP_BYTES (32 << 10)
/* Most weight vectors (kh * G) of the VNNI kernel. */
#define DW_MAX_WV 64

/* Ring slots for the kernel rows of one output row. */
static int dw_slots(const tml_window *p) { return (p->kh - 1) * p->dh + 1; }

static int dw_vnni_ok(const tml_window *p)
{
    const int g = (p->kw + 3) / 4;
    return p->depth_mult == 1 && p->kh * g <= DW_MAX_WV && (int64_t)dw_slots(p) * g * 64 <= DW_STRIP_BYTES;
}

/* Byte interleave of four 16-byte vectors: out byte 4j + t = t_t[j], as 64
 * bytes in o[0..3] (channels 0-3, 4-7, 8-11, 12-15). */
TML_S8_INLINE TML_S8_TGT_VNNI void dw_il4(__m128i t0, __m128i t1, __m128i t2, __m128i t3, __m128i *o)
{
    const __m128i a = _mm_unpacklo_epi8(t0, t1), b_ = _mm_unpackhi_epi8(t0, t1);
    const __m128i c = _mm_unpacklo_epi8(t2, t3), d = _mm_unpackhi_epi8(t2, t3);
    o[0] = _mm_unpacklo_epi16(a, c);
    o[1] = _mm_unpackhi_epi16(a, c);
    o[2] = _mm_unpacklo_epi16(b_, d);
    o[3] = _mm_unpackhi_epi16(b_, d);
}

/* Entries of input row iy, output columns [ox0, ox0 + n), all groups, into e
 * (64 bytes per (column, group)). */
static TML_S8_TGT_VNNI void dw_build_row(const tml_window *p, const int8_t *x, int b, int iy, int ox0, int n, int c0,
                                         __mmask16 cm, int32_t in_zp, uint8_t *e)
{
    DW_LOCALS(p);
    (void)OH, (void)SH, (void)PT, (void)DH, (void)KH, (void)OW;
    const int G = (KW + 3) / 4;
    /* the four taps' 16 channels as the 128-bit lanes of one vector, then a
     * 4x4 dword transpose across the lanes (lane q: channels 4q..4q+3 of
     * taps 0..3) and a 4x4 byte transpose inside each dword (byte 4j + t:
     * channel 4q + j of tap t), as dw_il4 but in three shuffles */
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512i tr_d = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512i tr_b = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    const __m128i zpv = _mm_set1_epi8((char)in_zp), zero = _mm_setzero_si128();
    const int8_t *xr = x + ((ptrdiff_t)b * H + iy) * W * C + c0;
    const ptrdiff_t tstep = (ptrdiff_t)DW * C;
    for (int i = 0; i < n; i++) {
        const int ix0 = (ox0 + i) * SW - PL;
        for (int g = 0; g < G; g++, e += 64) {
            __m128i t[4];
            const int kx0 = 4 * g, ixg = ix0 + kx0 * DW;
            const int nt = KW - kx0 < 4 ? KW - kx0 : 4;
            if (ixg >= 0 && ixg + (nt - 1) * DW < W) { /* every real tap inside */
                const int8_t *xp = xr + (ptrdiff_t)ixg * C;
                for (int u = 0; u < 4; u++) t[u] = u < nt ? _mm_maskz_loadu_epi8(cm, xp + u * tstep) : zero;
            } else {
                for (int u = 0; u < 4; u++) {
                    const int ix = ixg + u * DW;
                    t[u] = u >= nt ? zero : ix < 0 || ix >= W ? zpv : _mm_maskz_loadu_epi8(cm, xr + (ptrdiff_t)ix * C);
                }
            }
            __m512i v = _mm512_inserti32x4(_mm512_castsi128_si512(t[0]), t[1], 1);
            v = _mm512_inserti32x4(_mm512_inserti32x4(v, t[2], 2), t[3], 3);
            v = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(tr_d, v), tr_b);
            _mm512_store_si512((void *)e, _mm512_xor_si512(v, flip));
        }
    }
}

/* The output pixels of one row strip: acc0 (corrections incl. skipped rows),
 * nr kernel rows whose entries are rows[r] (weights wr[r] + g), n columns,
 * written to yp (stride C bytes). MODE 3: ReLU (blend form, signed
 * multiplies), 2: ReLU (blend form), 1: one-step, 0: general. */
TML_S8_INLINE TML_S8_TGT_VNNI void dw_strip_pixels(const int MODE, int n, int G, int nr, const uint8_t *const *rows,
                                                   const __m512i *const *wr, __m512i acc0, int8_t *yp, ptrdiff_t ys,
                                                   __mmask16 cm, const __m512i *k, int any_lsh, int tfl)
{
    /* k: mult, mult_o, sh_e, sh_o, add_e, add_o, lsh, rsh, lo, hi, zp */
    const ptrdiff_t es = (ptrdiff_t)G * 64;
    for (int i = 0; i < n; i++) {
        __m512i acc = acc0;
        for (int r = 0; r < nr; r++) {
            const uint8_t *ep = rows[r] + i * es;
            for (int g = 0; g < G; g++)
                acc = _mm512_dpbusd_epi32(acc, _mm512_load_si512((const void *)(ep + 64 * g)), wr[r][g]);
        }
        __m128i o;
        if (MODE >= 2) {
            __m512i v = MODE == 3 ? tml_s8_rq512_relu_blend_s(acc, k[0], k[1], k[2], k[3], k[4], k[5])
                                  : tml_s8_rq512_relu_blend(acc, k[0], k[1], k[2], k[3], k[4], k[5]);
            v = _mm512_min_epi32(_mm512_max_epi32(v, k[8]), k[9]);
            o = _mm512_cvtepi32_epi8(_mm512_add_epi32(v, k[10]));
        } else if (MODE == 1) {
            o = tml_s8_out512_simple(acc, k[0], k[1], k[2], k[3], k[4], k[5], k[8], k[9], k[10], tfl);
        } else {
            o = tml_s8_out512(acc, k[0], k[6], k[7], any_lsh, k[8], k[9], k[10], tfl);
        }
        if (cm == 0xFFFF)
            _mm_storeu_si128((__m128i *)(void *)(yp + i * ys), o);
        else
            _mm_mask_storeu_epi8(yp + i * ys, cm, o);
    }
}

/* Channels [c0, c0 + 16) of output rows [oy0, oy1) of image b. */
static TML_S8_TGT_VNNI void dw_block_vnni(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                                          const int32_t *bias, int8_t *y, int b, int c0, int oy0, int oy1)
{
    DW_LOCALS(p);
    (void)SW, (void)PL, (void)W, (void)DW;
    const int G = (KW + 3) / 4, NS = dw_slots(p);
    const int nc = C - c0 < 16 ? C - c0 : 16;
    const __mmask16 cm = (__mmask16)((1u << nc) - 1u);
    const __m512i zero = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
    const __m512i off128 = _mm512_set1_epi32(q->in_zp + 128);
    uint8_t buf[DW_STRIP_BYTES] __attribute__((aligned(64)));
    int tag[DW_STRIP_BYTES / 64];
    __m512i wv[DW_MAX_WV], rowadd[DW_MAX_WV];

    /* weights interleaved like the entries; row sums for the corrections */
    __m512i wsum = zero;
    for (int ky = 0; ky < KH; ky++) {
        __m512i rs = zero;
        for (int g = 0; g < G; g++) {
            __m128i t[4], o[4];
            for (int u = 0; u < 4; u++) {
                const int kx = 4 * g + u;
                t[u] = kx < KW ? _mm_maskz_loadu_epi8(cm, w + ((ptrdiff_t)ky * KW + kx) * C + c0) : _mm_setzero_si128();
            }
            dw_il4(t[0], t[1], t[2], t[3], o);
            const __m512i v = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(o[0]), o[1], 1)),
                _mm256_inserti128_si256(_mm256_castsi128_si256(o[2]), o[3], 1), 1);
            wv[ky * G + g] = v;
            rs = _mm512_dpbusd_epi32(rs, ones, v);
        }
        rowadd[ky] = _mm512_mullo_epi32(off128, rs);
        wsum = _mm512_add_epi32(wsum, rs);
    }
    const __m512i b0 = bias ? _mm512_maskz_loadu_epi32(cm, bias + c0) : zero;
    const __m512i corr = _mm512_sub_epi32(b0, _mm512_mullo_epi32(off128, wsum));

    /* requantization constants (lanes >= nc: zero multiplier, their bytes are not stored) */
    __m512i k[11];
    const __m512i mult = _mm512_maskz_loadu_epi32(cm, q->mult + c0), shift = _mm512_maskz_loadu_epi32(cm, q->shift + c0);
    const __m512i rsh = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
    const int any_lsh = _mm512_cmpgt_epi32_mask(shift, zero) != 0;
    const int simple = !any_lsh && _mm512_cmplt_epi32_mask(mult, zero) == 0;
    const int relu = simple && q->act_min >= q->out_zp;
    const int relu_s = relu && tml_s8_relu_signed_ok(mult, rsh);
    const int tfl = q->rounding == TML_ROUNDING_TFLITE;
    k[0] = mult;
    if (relu)
        tml_s8_blend_consts512(mult, rsh, &k[1], &k[2], &k[3], &k[4], &k[5]);
    else {
        tml_s8_simple_consts512(rsh, &k[2], &k[3], &k[4], &k[5]);
        k[1] = _mm512_srli_epi64(mult, 32);
    }
    k[6] = _mm512_max_epi32(shift, zero);
    k[7] = rsh;
    k[8] = _mm512_set1_epi32(q->act_min - q->out_zp);
    k[9] = _mm512_set1_epi32(q->act_max - q->out_zp);
    k[10] = _mm512_set1_epi32(q->out_zp);

    const int strip = DW_STRIP_BYTES / (NS * G * 64);
    const ptrdiff_t slot_bytes = (ptrdiff_t)strip * G * 64;
    for (int sx0 = 0; sx0 < OW; sx0 += strip) {
        const int n = OW - sx0 < strip ? OW - sx0 : strip;
        for (int s = 0; s < NS; s++) tag[s] = -1;
        for (int oy = oy0; oy < oy1; oy++) {
            const uint8_t *rows[DW_MAX_WV];
            const __m512i *wr[DW_MAX_WV];
            __m512i acc0 = corr;
            int nr = 0;
            for (int ky = 0; ky < KH; ky++) {
                const int iy = oy * SH - PT + ky * DH;
                if (iy < 0 || iy >= H) {
                    acc0 = _mm512_add_epi32(acc0, rowadd[ky]);
                    continue;
                }
                const int s = iy % NS;
                if (tag[s] != iy) {
                    dw_build_row(p, x, b, iy, sx0, n, c0, cm, q->in_zp, buf + s * slot_bytes);
                    tag[s] = iy;
                }
                rows[nr] = buf + s * slot_bytes;
                wr[nr] = wv + ky * G;
                nr++;
            }
            int8_t *yp = y + (((ptrdiff_t)b * OH + oy) * OW + sx0) * C + c0;
            if (relu_s)
                dw_strip_pixels(3, n, G, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, tfl);
            else if (relu)
                dw_strip_pixels(2, n, G, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, tfl);
            else if (simple)
                dw_strip_pixels(1, n, G, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, tfl);
            else
                dw_strip_pixels(0, n, G, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, tfl);
        }
    }
}

/* Most taps the AVX-512 kernel handles (weights staged on the stack). */
#define DW_MAX_TAPS 64

/* Byte interleave of four 64-byte vectors t[0..3] (one tap each, channel c
 * at byte c): out[qq] lane 4L + j (int32) = the four taps' bytes of channel
 * 16L + 4qq + j, the operand layout of vpdpbusd. */
TML_S8_INLINE TML_S8_TGT_VNNI void dw_interleave4(__m512i t0, __m512i t1, __m512i t2, __m512i t3, __m512i *o)
{
    const __m512i a = _mm512_unpacklo_epi8(t0, t1), b_ = _mm512_unpackhi_epi8(t0, t1);
    const __m512i c = _mm512_unpacklo_epi8(t2, t3), d = _mm512_unpackhi_epi8(t2, t3);
    o[0] = _mm512_unpacklo_epi16(a, c);
    o[1] = _mm512_unpackhi_epi16(a, c);
    o[2] = _mm512_unpacklo_epi16(b_, d);
    o[3] = _mm512_unpackhi_epi16(b_, d);
}

/* Per-channel int32 constants of channels [c0, c0 + nc) in the lane order of
 * dw_interleave4: out[qq] 128-bit lane L = channels 16L + 4qq .. +3 (a 4x4
 * transpose of 128-bit blocks of the four 16-channel loads). */
TML_S8_INLINE TML_S8_TGT_VNNI void dw_consts4(const int32_t *v, int nc, __m512i *o)
{
    __m512i s[4];
    for (int L = 0; L < 4; L++) {
        const int left = nc - 16 * L;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
        s[L] = _mm512_maskz_loadu_epi32(m, v + 16 * L);
    }
    const __m512i u0 = _mm512_shuffle_i32x4(s[0], s[1], 0x88), u1 = _mm512_shuffle_i32x4(s[0], s[1], 0xDD);
    const __m512i v0 = _mm512_shuffle_i32x4(s[2], s[3], 0x88), v1 = _mm512_shuffle_i32x4(s[2], s[3], 0xDD);
    o[0] = _mm512_shuffle_i32x4(u0, v0, 0x88);
    o[2] = _mm512_shuffle_i32x4(u0, v0, 0xDD);
    o[1] = _mm512_shuffle_i32x4(u1, v1, 0x88);
    o[3] = _mm512_shuffle_i32x4(u1, v1, 0xDD);
}

/*
 * Row strips of 64-channel blocks (C > 32): dw_block_vnni's scheme with the
 * tap groups of dw_row_avx512. An entry (input row, output column, group of
 * four taps) is the four taps' 64 channels interleaved by dw_interleave4 (256
 * bytes: vector qq, lane L = channels 16L + 4qq .. +3), built once per input
 * row and read by the kh output rows whose windows cover it; the epilogue
 * packs the four accumulators (tml_s8_pack4_512), whose lane order is then
 * channel order. Per block: weights, corrections and constants in the lane
 * order of dw_consts4, kept for the block's whole image.
 *
 * 3-wide kernels of stride and dilation 1 along x with at most 3 rows (3x3
 * depthwise layers) take paired entries (dw_build_row64p: one entry serves
 * two output columns) and bands of output rows: the band's input rows are
 * built into the buffer, rows in the padding read a row of in_zp entries,
 * and two passes (accumulators 0-1, then 2-3: dw_band_pass64p) run over the
 * whole band with their weights and constants in registers.
 */
static int dw_vnni64_ok(const tml_window *p)
{
    const int g = (p->kw + 3) / 4;
    return p->depth_mult == 1 && p->kh * g <= DW_MAX_WV && (int64_t)dw_slots(p) * g * 256 <= DW_STRIP_BYTES;
}

static TML_S8_TGT_VNNI void dw_build_row64(const tml_window *p, const int8_t *x, int b, int iy, int ox0, int n,
                                           int c0, __mmask64 cm, int32_t in_zp, uint8_t *e)
{
    DW_LOCALS(p);
    (void)OH, (void)SH, (void)PT, (void)DH, (void)KH, (void)OW;
    const int G = (KW + 3) / 4;
    const __m512i flip = _mm512_set1_epi8((char)0x80), zpv = _mm512_set1_epi8((char)in_zp);
    const __m512i zero = _mm512_setzero_si512();
    const int8_t *xr = x + ((ptrdiff_t)b * H + iy) * W * C + c0;
    const ptrdiff_t tstep = (ptrdiff_t)DW * C;
    for (int i = 0; i < n; i++) {
        const int ix0 = (ox0 + i) * SW - PL;
        for (int g = 0; g < G; g++, e += 256) {
            __m512i t[4], o[4];
            const int kx0 = 4 * g, ixg = ix0 + kx0 * DW;
            const int nt = KW - kx0 < 4 ? KW - kx0 : 4;
            if (ixg >= 0 && ixg + (nt - 1) * DW < W) { /* every real tap inside */
                const int8_t *xp = xr + (ptrdiff_t)ixg * C;
                for (int u = 0; u < 4; u++) t[u] = u < nt ? _mm512_maskz_loadu_epi8(cm, xp + u * tstep) : zero;
            } else {
                for (int u = 0; u < 4; u++) {
                    const int ix = ixg + u * DW;
                    t[u] = u >= nt ? zero : ix < 0 || ix >= W ? zpv : _mm512_maskz_loadu_epi8(cm, xr + (ptrdiff_t)ix * C);
                }
            }
            dw_interleave4(t[0], t[1], t[2], t[3], o);
            for (int u = 0; u < 4; u++) _mm512_store_si512((void *)(e + 64 * u), _mm512_xor_si512(o[u], flip));
        }
    }
}

/*
 * Paired entries (kw = 3, stride and dilation 1 along x): entry i of a row
 * holds the four inputs ix = ox0 + 2i - pad_l + u, u = 0..3, interleaved as
 * in dw_build_row64. Output column ox0 + 2i reads taps 0-2 of it (weights w0,
 * w1, w2, 0: the entry weights), column ox0 + 2i + 1 taps 1-3 (weights 0, w0,
 * w1, w2: the entry weights shifted up a byte in each dword), so a row needs
 * half the entries: half the shuffles and stores of building them. Inputs
 * outside the image read in_zp, as in dw_build_row64.
 */
static TML_S8_TGT_VNNI void dw_build_row64p(const tml_window *p, const int8_t *x, int b, int iy, int ox0, int n,
                                            int c0, __mmask64 cm, int32_t in_zp, uint8_t *e)
{
    const int W = p->w, C = p->c;
    const __m512i flip = _mm512_set1_epi8((char)0x80), zpv = _mm512_set1_epi8((char)in_zp);
    const int8_t *xr = x + ((ptrdiff_t)b * p->h + iy) * W * C + c0;
    for (int i = 0; 2 * i < n; i++, e += 256) {
        const int ix0 = ox0 + 2 * i - p->pad_l;
        __m512i t[4], o[4];
        if (ix0 >= 0 && ix0 + 3 < W) {
            const int8_t *xp = xr + (ptrdiff_t)ix0 * C;
            for (int u = 0; u < 4; u++) t[u] = _mm512_maskz_loadu_epi8(cm, xp + (ptrdiff_t)u * C);
        } else {
            for (int u = 0; u < 4; u++) {
                const int ix = ix0 + u;
                t[u] = ix < 0 || ix >= W ? zpv : _mm512_maskz_loadu_epi8(cm, xr + (ptrdiff_t)ix * C);
            }
        }
        dw_interleave4(t[0], t[1], t[2], t[3], o);
        for (int u = 0; u < 4; u++) _mm512_store_si512((void *)(e + 64 * u), _mm512_xor_si512(o[u], flip));
    }
}

/* k: [qq] mult, mult_o, sh_e, sh_o, add_e, add_o, lsh, rsh at k[8 * qq + ...] */
TML_S8_INLINE TML_S8_TGT_VNNI void dw_strip_pixels64(const int MODE, int n, int G, int nr, const uint8_t *const *rows,
                                                     const __m512i *const *wr, const __m512i *acc0, int8_t *yp,
                                                     ptrdiff_t ys, __mmask64 cm, const __m512i *k, int any_lsh,
                                                     __m512i zp16, __m512i lo8, __m512i hi8, int clamp_hi, int tfl)
{
    const ptrdiff_t es = (ptrdiff_t)G * 256;
    for (int i = 0; i < n; i++) {
        __m512i acc[4] = {acc0[0], acc0[1], acc0[2], acc0[3]};
        for (int r = 0; r < nr; r++) {
            const uint8_t *ep = rows[r] + i * es;
            for (int g = 0; g < G; g++)
                for (int qq = 0; qq < 4; qq++)
                    acc[qq] = _mm512_dpbusd_epi32(acc[qq], _mm512_load_si512((const void *)(ep + 256 * g + 64 * qq)),
                                                  wr[r][4 * g + qq]);
        }
        __m512i v[4];
        for (int qq = 0; qq < 4; qq++) {
            const __m512i *kq = k + 8 * qq;
            v[qq] = MODE == 3   ? tml_s8_rq512_relu_blend_s(acc[qq], kq[0], kq[1], kq[2], kq[3], kq[4], kq[5])
                    : MODE == 2 ? tml_s8_rq512_relu_blend(acc[qq], kq[0], kq[1], kq[2], kq[3], kq[4], kq[5])
                    : MODE == 1 ? tml_s8_rq512_simple(acc[qq], kq[0], kq[1], kq[2], kq[3], kq[4], kq[5], tfl)
                                : tml_s8_rq512(acc[qq], kq[0], kq[6], kq[7], any_lsh, tfl);
        }
        _mm512_mask_storeu_epi8(yp + i * ys, cm,
                                MODE == 3 ? tml_s8_pack4z_512(v[0], v[1], v[2], v[3], lo8, hi8, clamp_hi)
                                          : tml_s8_pack4_512(v[0], v[1], v[2], v[3], zp16, lo8, hi8));
    }
}

/*
 * dw_strip_pixels64 for one group of taps per kernel row (kw <= 4) and NR
 * (2 or 3) kernel rows, in two passes over the strip: accumulators 0-1, then
 * 2-3. Each pass keeps its 2 * NR weight vectors and its two sets of
 * requantization constants in registers (a pixel's four sets do not fit:
 * they were reloaded for every pixel, and L1 loads bounded the kernel). The
 * first pass packs its two requantized vectors to int16 (the first half of
 * tml_s8_pack4_512 / tml_s8_pack4z_512) into t[i]; the second completes the
 * packs with them and stores the int8 outputs, the same bytes as the
 * one-pass form.
 */
TML_S8_INLINE TML_S8_TGT_VNNI void dw_strip_pass64(const int MODE, const int NR, const int SECOND, int n,
                                                   const uint8_t *const *rows, const __m512i *const *wr,
                                                   const __m512i *acc0, __m512i *t, int8_t *yp, ptrdiff_t ys,
                                                   __mmask64 cm, const __m512i *k, int any_lsh, __m512i zp16,
                                                   __m512i lo8, __m512i hi8, int clamp_hi, int tfl)
{
    const int qa = SECOND ? 2 : 0;
    __m512i w0[3], w1[3];
    const uint8_t *rp[3];
    for (int r = 0; r < NR; r++) {
        w0[r] = wr[r][qa];
        w1[r] = wr[r][qa + 1];
        rp[r] = rows[r] + 64 * qa;
    }
    const __m512i a0 = acc0[qa], a1 = acc0[qa + 1];
    /* in locals: the int8 stores could alias k */
    const __m512i *k0 = k + 8 * qa, *k1 = k0 + 8;
    const __m512i m0 = k0[0], mo0 = k0[1], se0 = k0[2], so0 = k0[3], ae0 = k0[4], ao0 = k0[5], l0 = k0[6], r0 = k0[7];
    const __m512i m1 = k1[0], mo1 = k1[1], se1 = k1[2], so1 = k1[3], ae1 = k1[4], ao1 = k1[5], l1 = k1[6], r1 = k1[7];
    for (int i = 0; i < n; i++) {
        __m512i c0 = a0, c1 = a1;
        for (int r = 0; r < NR; r++) {
            const uint8_t *e = rp[r] + (ptrdiff_t)i * 256;
            c0 = _mm512_dpbusd_epi32(c0, _mm512_load_si512((const void *)e), w0[r]);
            c1 = _mm512_dpbusd_epi32(c1, _mm512_load_si512((const void *)(e + 64)), w1[r]);
        }
        __m512i v0, v1;
        if (MODE == 3) {
            v0 = tml_s8_rq512_relu_blend_s(c0, m0, mo0, se0, so0, ae0, ao0);
            v1 = tml_s8_rq512_relu_blend_s(c1, m1, mo1, se1, so1, ae1, ao1);
        } else if (MODE == 2) {
            v0 = tml_s8_rq512_relu_blend(c0, m0, mo0, se0, so0, ae0, ao0);
            v1 = tml_s8_rq512_relu_blend(c1, m1, mo1, se1, so1, ae1, ao1);
        } else if (MODE == 1) {
            v0 = tml_s8_rq512_simple(c0, m0, mo0, se0, so0, ae0, ao0, tfl);
            v1 = tml_s8_rq512_simple(c1, m1, mo1, se1, so1, ae1, ao1, tfl);
        } else {
            v0 = tml_s8_rq512(c0, m0, l0, r0, any_lsh, tfl);
            v1 = tml_s8_rq512(c1, m1, l1, r1, any_lsh, tfl);
        }
        __m512i h = _mm512_packs_epi32(v0, v1);
        if (MODE != 3) h = _mm512_adds_epi16(h, zp16);
        if (!SECOND) {
            t[i] = h;
        } else {
            __m512i o = _mm512_max_epi8(_mm512_packs_epi16(t[i], h), lo8);
            if (MODE != 3 || clamp_hi) o = _mm512_min_epi8(o, hi8);
            _mm512_mask_storeu_epi8(yp + i * ys, cm, o);
        }
    }
}

TML_S8_INLINE TML_S8_TGT_VNNI void dw_strip_2pass64(const int MODE, int n, int nr, const uint8_t *const *rows,
                                                    const __m512i *const *wr, const __m512i *acc0, int8_t *yp,
                                                    ptrdiff_t ys, __mmask64 cm, const __m512i *k, int any_lsh,
                                                    __m512i zp16, __m512i lo8, __m512i hi8, int clamp_hi, int tfl)
{
    __m512i t[DW_STRIP_BYTES / 256];
    if (nr == 3) {
        dw_strip_pass64(MODE, 3, 0, n, rows, wr, acc0, t, yp, ys, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi, tfl);
        dw_strip_pass64(MODE, 3, 1, n, rows, wr, acc0, t, yp, ys, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi, tfl);
    } else {
        dw_strip_pass64(MODE, 2, 0, n, rows, wr, acc0, t, yp, ys, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi, tfl);
        dw_strip_pass64(MODE, 2, 1, n, rows, wr, acc0, t, yp, ys, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi, tfl);
    }
}

/* dw_strip_pass64 on paired entries (dw_build_row64p), for a band of nrows
 * output rows (row j: kernel-row entries rp[NR * j + r], outputs yrow[j]):
 * entry i gives output columns 2i (weights wa) and 2i + 1 (weights wb).
 * Kernel rows outside the image read a row of in_zp entries (their products
 * cancel in the correction, as the padded taps of a row do), so every row
 * starts from the same correction acc0 and has NR rows; the weights and
 * constants stay in registers over the whole band. */
TML_S8_INLINE TML_S8_TGT_VNNI void dw_band_pass64p(const int MODE, const int NR, const int SECOND, int nrows, int n,
                                                   const uint8_t *const *rp, int8_t *const *yrow,
                                                   const __m512i *const *wr, const __m512i *const *wrb,
                                                   const __m512i *acc0, __m512i *t, ptrdiff_t ys, __mmask64 cm,
                                                   const __m512i *k, int any_lsh, __m512i zp16, __m512i lo8,
                                                   __m512i hi8, int clamp_hi, int tfl)
{
    const int qa = SECOND ? 2 : 0;
    __m512i wa0[3], wa1[3], wb0[3], wb1[3];
    for (int r = 0; r < NR; r++) {
        wa0[r] = wr[r][qa];
        wa1[r] = wr[r][qa + 1];
        wb0[r] = wrb[r][qa];
        wb1[r] = wrb[r][qa + 1];
    }
    const __m512i a0 = acc0[qa], a1 = acc0[qa + 1];
    /* in locals: the int8 stores could alias k */
    const __m512i *k0 = k + 8 * qa, *k1 = k0 + 8;
    const __m512i m0 = k0[0], mo0 = k0[1], se0 = k0[2], so0 = k0[3], ae0 = k0[4], ao0 = k0[5], l0 = k0[6], r0 = k0[7];
    const __m512i m1 = k1[0], mo1 = k1[1], se1 = k1[2], so1 = k1[3], ae1 = k1[4], ao1 = k1[5], l1 = k1[6], r1 = k1[7];
#define DW_RQ(c0_, c1_, h_)                                                                                     \
    do {                                                                                                        \
        __m512i v0_, v1_;                                                                                       \
        if (MODE == 3) {                                                                                        \
            v0_ = tml_s8_rq512_relu_blend_s(c0_, m0, mo0, se0, so0, ae0, ao0);                                  \
            v1_ = tml_s8_rq512_relu_blend_s(c1_, m1, mo1, se1, so1, ae1, ao1);                                  \
        } else if (MODE == 2) {                                                                                 \
            v0_ = tml_s8_rq512_relu_blend(c0_, m0, mo0, se0, so0, ae0, ao0);                                    \
            v1_ = tml_s8_rq512_relu_blend(c1_, m1, mo1, se1, so1, ae1, ao1);                                    \
        } else if (MODE == 1) {                                                                                 \
            v0_ = tml_s8_rq512_simple(c0_, m0, mo0, se0, so0, ae0, ao0, tfl);                                   \
            v1_ = tml_s8_rq512_simple(c1_, m1, mo1, se1, so1, ae1, ao1, tfl);                                   \
        } else {                                                                                                \
            v0_ = tml_s8_rq512(c0_, m0, l0, r0, any_lsh, tfl);                                                  \
            v1_ = tml_s8_rq512(c1_, m1, l1, r1, any_lsh, tfl);                                                  \
        }                                                                                                       \
        h_ = _mm512_packs_epi32(v0_, v1_);                                                                      \
        if (MODE != 3) h_ = _mm512_adds_epi16(h_, zp16);                                                        \
    } while (0)
#define DW_OUT(tj_, ti_, yp_, h_)                                                                               \
    do {                                                                                                        \
        if (!SECOND) {                                                                                          \
            (tj_)[ti_] = h_;                                                                                    \
        } else {                                                                                                \
            __m512i o_ = _mm512_max_epi8(_mm512_packs_epi16((tj_)[ti_], h_), lo8);                              \
            if (MODE != 3 || clamp_hi) o_ = _mm512_min_epi8(o_, hi8);                                           \
            _mm512_mask_storeu_epi8(yp_, cm, o_);                                                               \
        }                                                                                                       \
    } while (0)
    /* one pair's MACs are issued before the previous pair's epilogue (a
     * pipeline of one step): each has the other's independent work beside it */
#define DW_PREV()                                                                                               \
    do {                                                                                                        \
        __m512i h;                                                                                              \
        DW_RQ(pc0, pc1, h);                                                                                     \
        DW_OUT(ptj, pi, pyp + pi * ys, h);                                                                      \
        if (pi + 1 < n) {                                                                                       \
            DW_RQ(pd0, pd1, h);                                                                                 \
            DW_OUT(ptj, pi + 1, pyp + (pi + 1) * ys, h);                                                        \
        }                                                                                                       \
    } while (0)
    __m512i pc0 = a0, pc1 = a1, pd0 = a0, pd1 = a1;
    int8_t *pyp = NULL;
    __m512i *ptj = t;
    int pi = -1;
    for (int j = 0; j < nrows; j++) {
        const uint8_t *e0 = rp[NR * j] + 64 * qa, *e1 = NR > 1 ? rp[NR * j + 1] + 64 * qa : NULL;
        const uint8_t *e2 = NR > 2 ? rp[NR * j + 2] + 64 * qa : NULL;
        int8_t *yp = yrow[j];
        __m512i *tj = t + (ptrdiff_t)j * n;
        for (int i = 0; i < n; i += 2) {
            const ptrdiff_t eo = (ptrdiff_t)(i >> 1) * 256;
            __m512i c0 = a0, c1 = a1, d0 = a0, d1 = a1;
#define DW_ROW(e_, r_)                                                                                          \
    {                                                                                                           \
        const __m512i x0 = _mm512_load_si512((const void *)((e_) + eo));                                       \
        const __m512i x1 = _mm512_load_si512((const void *)((e_) + eo + 64));                                  \
        c0 = _mm512_dpbusd_epi32(c0, x0, wa0[r_]);                                                              \
        c1 = _mm512_dpbusd_epi32(c1, x1, wa1[r_]);                                                              \
        d0 = _mm512_dpbusd_epi32(d0, x0, wb0[r_]);                                                              \
        d1 = _mm512_dpbusd_epi32(d1, x1, wb1[r_]);                                                              \
    }
            DW_ROW(e0, 0)
            if (NR > 1) DW_ROW(e1, 1)
            if (NR > 2) DW_ROW(e2, 2)
#undef DW_ROW
            if (pi >= 0) DW_PREV();
            pc0 = c0, pc1 = c1, pd0 = d0, pd1 = d1, pyp = yp, ptj = tj, pi = i;
        }
    }
    if (pi >= 0) DW_PREV();
#undef DW_PREV
#undef DW_RQ
#undef DW_OUT
}

TML_S8_INLINE TML_S8_TGT_VNNI void dw_band_2pass64p(const int MODE, int nr, int nrows, int n,
                                                    const uint8_t *const *rp, int8_t *const *yrow,
                                                    const __m512i *const *wr, const __m512i *const *wrb,
                                                    const __m512i *acc0, ptrdiff_t ys, __mmask64 cm, const __m512i *k,
                                                    int any_lsh, __m512i zp16, __m512i lo8, __m512i hi8, int clamp_hi,
                                                    int tfl)
{
    __m512i t[DW_STRIP_BYTES / 128];
#define DW_P(NR_, S_)                                                                                           \
    dw_band_pass64p(MODE, NR_, S_, nrows, n, rp, yrow, wr, wrb, acc0, t, ys, cm, k, any_lsh, zp16, lo8, hi8,   \
                    clamp_hi, tfl)
    if (nr == 3) {
        DW_P(3, 0);
        DW_P(3, 1);
    } else if (nr == 2) {
        DW_P(2, 0);
        DW_P(2, 1);
    } else {
        DW_P(1, 0);
        DW_P(1, 1);
    }
#undef DW_P
}

/*
 * What dw_block64_vnni prepares for a 64-channel block from the weights, the
 * bias and q alone (made on every call, or once by tml_dwconv2d_s8_pack): a
 * 64-byte header, then corr[4], k[32] (requantization constants),
 * wv[4 * kh * G] (weights interleaved like the entries), rowadd[4 * kh] (a
 * kernel row's correction when it lies in the padding) and wvb[4 * kh] (wv
 * shifted up a byte: paired entries, when G == 1).
 */
typedef struct dw64_hdr {
    int any_lsh, simple, relu, relu_s, tfl, clamp_hi;
    int pad_[10];
} dw64_hdr;
#define DW64_HDR_VEC 1
static int dw64_nvec(const tml_window *p)
{
    const int G = (p->kw + 3) / 4;
    return DW64_HDR_VEC + 4 + 32 + 4 * p->kh * G + 8 * p->kh;
}

static TML_S8_TGT_VNNI void dw64_prep(const tml_window *p, const tml_qparams *q, const int8_t *w,
                                      const int32_t *bias, int c0, __m512i *pv)
{
    const int C = p->c, KH = p->kh, KW = p->kw;
    const int G = (KW + 3) / 4;
    const int nc = C - c0 < 64 ? C - c0 : 64;
    const __mmask64 cm = nc == 64 ? ~(__mmask64)0 : (((__mmask64)1 << nc) - 1);
    const __m512i zero = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
    const __m512i off128 = _mm512_set1_epi32(q->in_zp + 128);
    dw64_hdr *hd = (dw64_hdr *)(void *)pv;
    __m512i *corr = pv + DW64_HDR_VEC, *k = corr + 4, *wv = k + 32, *rowadd = wv + 4 * KH * G, *wvb = rowadd + 4 * KH;
    /* weights interleaved like the entries; row sums for the corrections */
    __m512i wsum[4] = {zero, zero, zero, zero};
    for (int ky = 0; ky < KH; ky++) {
        __m512i rs[4] = {zero, zero, zero, zero};
        for (int g = 0; g < G; g++) {
            __m512i t[4];
            for (int u = 0; u < 4; u++) {
                const int kx = 4 * g + u;
                t[u] = kx < KW ? _mm512_maskz_loadu_epi8(cm, w + ((ptrdiff_t)ky * KW + kx) * C + c0) : zero;
            }
            __m512i *wg = wv + 4 * (ky * G + g);
            dw_interleave4(t[0], t[1], t[2], t[3], wg);
            for (int qq = 0; qq < 4; qq++) rs[qq] = _mm512_dpbusd_epi32(rs[qq], ones, wg[qq]);
        }
        for (int qq = 0; qq < 4; qq++) {
            rowadd[4 * ky + qq] = _mm512_mullo_epi32(off128, rs[qq]);
            wsum[qq] = _mm512_add_epi32(wsum[qq], rs[qq]);
        }
    }
    if (G == 1)
        for (int i = 0; i < 4 * KH; i++) wvb[i] = _mm512_slli_epi32(wv[i], 8);
    __m512i mult[4], shift[4];
    if (bias)
        dw_consts4(bias + c0, nc, corr);
    else
        corr[0] = corr[1] = corr[2] = corr[3] = zero;
    dw_consts4(q->mult + c0, nc, mult);
    dw_consts4(q->shift + c0, nc, shift);

    /* requantization constants (lanes past nc: zero multiplier, their bytes are not stored) */
    __mmask16 anyl = 0, mneg = 0;
    for (int qq = 0; qq < 4; qq++) {
        corr[qq] = _mm512_sub_epi32(corr[qq], _mm512_mullo_epi32(off128, wsum[qq]));
        anyl |= _mm512_cmpgt_epi32_mask(shift[qq], zero);
        mneg |= _mm512_cmplt_epi32_mask(mult[qq], zero);
    }
    const int any_lsh = anyl != 0, simple = anyl == 0 && mneg == 0;
    const int relu = simple && q->act_min >= q->out_zp;
    const int tfl = q->rounding == TML_ROUNDING_TFLITE;
    /* the signed ReLU form takes the output zero point in its addends */
    int relu_s = relu;
    for (int qq = 0; qq < 4; qq++)
        relu_s &= tml_s8_relu_signed_ok(mult[qq], _mm512_max_epi32(_mm512_sub_epi32(zero, shift[qq]), zero));
    for (int qq = 0; qq < 4; qq++) {
        __m512i *kq = k + 8 * qq;
        const __m512i rsh = _mm512_max_epi32(_mm512_sub_epi32(zero, shift[qq]), zero);
        kq[0] = mult[qq];
        if (relu) {
            tml_s8_blend_consts512(mult[qq], rsh, &kq[1], &kq[2], &kq[3], &kq[4], &kq[5]);
            if (relu_s) tml_s8_fold_zp512(q->out_zp, kq[2], kq[3], &kq[4], &kq[5]);
        } else {
            tml_s8_simple_consts512(rsh, &kq[2], &kq[3], &kq[4], &kq[5]);
            kq[1] = _mm512_srli_epi64(mult[qq], 32);
        }
        kq[6] = _mm512_max_epi32(shift[qq], zero);
        kq[7] = rsh;
    }
    memset(hd, 0, sizeof *hd);
    hd->any_lsh = any_lsh, hd->simple = simple, hd->relu = relu, hd->relu_s = relu_s, hd->tfl = tfl;
    hd->clamp_hi = q->act_max < 127;
}

/* Channels [c0, c0 + 64) of output rows [oy0, oy1) of image b, with the
 * block's dw64_prep made (pv) or made here (pv NULL). */
static TML_S8_TGT_VNNI void dw_block64_vnni(const tml_window *p, const tml_qparams *q, const int8_t *x,
                                            const int8_t *w, const int32_t *bias, int8_t *y, int b, int c0, int oy0,
                                            int oy1, const __m512i *pv)
{
    DW_LOCALS(p);
    (void)SW, (void)PL, (void)W, (void)DW;
    const int G = (KW + 3) / 4, NS = dw_slots(p);
    const int nc = C - c0 < 64 ? C - c0 : 64;
    const __mmask64 cm = nc == 64 ? ~(__mmask64)0 : (((__mmask64)1 << nc) - 1);
    uint8_t buf[DW_STRIP_BYTES] __attribute__((aligned(64)));
    int tag[DW_STRIP_BYTES / 256];
    __m512i own[DW64_HDR_VEC + 4 + 32 + 12 * DW_MAX_WV];
    if (!pv) {
        dw64_prep(p, q, w, bias, c0, own);
        pv = own;
    }
    const dw64_hdr *hd = (const dw64_hdr *)(const void *)pv;
    const __m512i *corr = pv + DW64_HDR_VEC, *k = corr + 4, *wv = k + 32, *rowadd = wv + 4 * KH * G,
                  *wvb = rowadd + 4 * KH;
    const int any_lsh = hd->any_lsh, simple = hd->simple, relu = hd->relu, relu_s = hd->relu_s, tfl = hd->tfl;
    /* paired entries (dw_build_row64p) for 3-wide kernels of stride and
     * dilation 1 along x with at most 3 rows (the two-pass kernels) */
    const int strip = DW_STRIP_BYTES / (NS * G * 256);
    /* with pairs: input rows of paired entries the buffer holds, besides a row of in_zp entries */
    const ptrdiff_t prow = (ptrdiff_t)(strip + 1) / 2 * 256;
    const int pcap = (int)(DW_STRIP_BYTES / prow) - 1;
    const int pairs = KW == 3 && SW == 1 && DW == 1 && KH <= 3 && pcap >= (KH - 1) * DH + 1;
    const __m512i zp16 = _mm512_set1_epi16((short)q->out_zp);
    const __m512i lo8 = _mm512_set1_epi8((char)q->act_min), hi8 = _mm512_set1_epi8((char)q->act_max);
    const int clamp_hi = q->act_max < 127;

    if (pairs) {
        /* bands of output rows whose input rows all fit in the buffer: the
         * rows' paired entries built once, then both passes over the band */
        const __m512i *wr[3] = {wv, wv + 4, wv + 8}, *wrb[3] = {wvb, wvb + 4, wvb + 8};
        for (int sx0 = 0; sx0 < OW; sx0 += strip) {
            const int n = OW - sx0 < strip ? OW - sx0 : strip;
            /* rows of this strip's width (at least pcap of them) */
            const ptrdiff_t rb = (ptrdiff_t)(n + 1) / 2 * 256;
            const int cap = (int)(DW_STRIP_BYTES / rb) - 1;
            uint8_t *zrow = buf + (ptrdiff_t)cap * rb;
            memset(zrow, (int)(((unsigned)q->in_zp & 0xFFu) ^ 0x80u), (size_t)rb);
            int nbo = (cap - (KH - 1) * DH - 1) / SH + 1;
            if (nbo * n > DW_STRIP_BYTES / 128) nbo = DW_STRIP_BYTES / 128 / n; /* the int16 halves */
            for (int ob0 = oy0; ob0 < oy1; ob0 += nbo) {
                const int ob1 = oy1 - ob0 < nbo ? oy1 : ob0 + nbo;
                const int iyf = ob0 * SH - PT, iyl = (ob1 - 1) * SH - PT + (KH - 1) * DH;
                for (int iy = iyf < 0 ? 0 : iyf; iy <= iyl && iy < H; iy++)
                    dw_build_row64p(p, x, b, iy, sx0, n, c0, cm, q->in_zp, buf + (ptrdiff_t)(iy - iyf) * rb);
                const uint8_t *rp[3 * (DW_STRIP_BYTES / 256)];
                int8_t *yrow[DW_STRIP_BYTES / 256];
                for (int j = 0; j < ob1 - ob0; j++) {
                    const int oy = ob0 + j;
                    for (int ky = 0; ky < KH; ky++) {
                        const int iy = oy * SH - PT + ky * DH;
                        rp[KH * j + ky] = iy < 0 || iy >= H ? zrow : buf + (ptrdiff_t)(iy - iyf) * rb;
                    }
                    yrow[j] = y + (((ptrdiff_t)b * OH + oy) * OW + sx0) * C + c0;
                }
#define DW_BAND(MODE_)                                                                                          \
    dw_band_2pass64p(MODE_, KH, ob1 - ob0, n, rp, yrow, wr, wrb, corr, C, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi, tfl)
                if (relu_s)
                    DW_BAND(3);
                else if (relu)
                    DW_BAND(2);
                else if (simple)
                    DW_BAND(1);
                else
                    DW_BAND(0);
#undef DW_BAND
            }
        }
        return;
    }
    const ptrdiff_t slot_bytes = (ptrdiff_t)strip * G * 256;
    for (int sx0 = 0; sx0 < OW; sx0 += strip) {
        const int n = OW - sx0 < strip ? OW - sx0 : strip;
        for (int s = 0; s < NS; s++) tag[s] = -1;
        for (int oy = oy0; oy < oy1; oy++) {
            const uint8_t *rows[DW_MAX_WV];
            const __m512i *wr[DW_MAX_WV];
            __m512i acc0[4] = {corr[0], corr[1], corr[2], corr[3]};
            int nr = 0;
            for (int ky = 0; ky < KH; ky++) {
                const int iy = oy * SH - PT + ky * DH;
                if (iy < 0 || iy >= H) {
                    for (int qq = 0; qq < 4; qq++) acc0[qq] = _mm512_add_epi32(acc0[qq], rowadd[4 * ky + qq]);
                    continue;
                }
                const int s = iy % NS;
                if (tag[s] != iy) {
                    dw_build_row64(p, x, b, iy, sx0, n, c0, cm, q->in_zp, buf + s * slot_bytes);
                    tag[s] = iy;
                }
                rows[nr] = buf + s * slot_bytes;
                wr[nr] = wv + 4 * ky * G;
                nr++;
            }
            int8_t *yp = y + (((ptrdiff_t)b * OH + oy) * OW + sx0) * C + c0;
            if (G == 1 && (nr == 2 || nr == 3)) {
                if (relu_s)
                    dw_strip_2pass64(3, n, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi, tfl);
                else if (relu)
                    dw_strip_2pass64(2, n, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi, tfl);
                else if (simple)
                    dw_strip_2pass64(1, n, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi, tfl);
                else
                    dw_strip_2pass64(0, n, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi, tfl);
            } else if (relu_s)
                dw_strip_pixels64(3, n, G, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi,
                                  tfl);
            else if (relu)
                dw_strip_pixels64(2, n, G, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi,
                                  tfl);
            else if (simple)
                dw_strip_pixels64(1, n, G, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi,
                                  tfl);
            else
                dw_strip_pixels64(0, n, G, nr, rows, wr, acc0, yp, C, cm, k, any_lsh, zp16, lo8, hi8, clamp_hi,
                                  tfl);
        }
    }
}

/* The pixels of one output row and 64-channel block of dw_row_avx512 (MODE 0:
 * general epilogue, 1: one-step, 2: ReLU form), one copy per mode. */
TML_S8_INLINE TML_S8_TGT_VNNI void dw_pixels_avx512(const int MODE, const tml_window *p, const int8_t *x, int8_t *yrow,
                                                    const int8_t *zpbuf, int b, int iy0, int ky0, int ky1, int c0,
                                                    __mmask64 cm, int ngrp, const int *ky_of, const int *kx_of,
                                                    const ptrdiff_t *off, const __m512i *wv, const __m512i *corr,
                                                    const __m512i *mult, const __m512i *lsh, const __m512i *rsh,
                                                    const __m512i *mo, const __m512i *she, const __m512i *sho,
                                                    const __m512i *ade, const __m512i *ado, int any_lsh, __m512i lo8,
                                                    __m512i hi8, __m512i zp16, int tfl)
{
    DW_LOCALS(p);
    (void)OH, (void)SH, (void)PT;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int ox = 0; ox < OW; ox++) {
        const int ix0 = ox * SW - PL;
        int kx0, kx1;
        dw_tap_range(ix0, KW, DW, W, &kx0, &kx1);
        const int interior = ky0 == 0 && ky1 == KH && kx0 == 0 && kx1 == KW;
        /* tap (ky, kx) reads x at offset ((b*H + iy0 + ky*DH)*W + ix0 + kx*DW)*C + c0 */
        const ptrdiff_t base = (((ptrdiff_t)b * H + iy0) * W + ix0) * C + c0;
        __m512i acc[4] = {corr[0], corr[1], corr[2], corr[3]};
        for (int g = 0; g < ngrp; g++) {
            __m512i t[4], a[4];
            for (int u = 0; u < 4; u++) {
                const int tp = 4 * g + u;
                const int8_t *xp;
                if (interior) {
                    xp = x + base + off[tp]; /* the pad taps (zero weights) read tap 0 */
                } else {
                    const int ky = ky_of[tp], kx = kx_of[tp];
                    /* only formed for taps inside the image */
                    xp = ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1
                             ? x + base + ((ptrdiff_t)ky * DH * W + (ptrdiff_t)kx * DW) * C
                             : zpbuf;
                }
                t[u] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(cm, xp), flip);
            }
            dw_interleave4(t[0], t[1], t[2], t[3], a);
            for (int qq = 0; qq < 4; qq++) acc[qq] = _mm512_dpbusd_epi32(acc[qq], a[qq], wv[4 * g + qq]);
        }
        __m512i v[4];
        for (int qq = 0; qq < 4; qq++)
            v[qq] = MODE == 2 ? tml_s8_rq512_relu(acc[qq], mult[qq], mo[qq], she[qq], sho[qq], ade[qq], ado[qq])
                    : MODE == 1 ? tml_s8_rq512_simple(acc[qq], mult[qq], mo[qq], she[qq], sho[qq], ade[qq], ado[qq], tfl)
                                : tml_s8_rq512(acc[qq], mult[qq], lsh[qq], rsh[qq], any_lsh, tfl);
        /* v[qq] lane L = channels 16L + 4qq .. +3: the packs put them in order */
        const __m512i r = tml_s8_pack4_512(v[0], v[1], v[2], v[3], zp16, lo8, hi8);
        _mm512_mask_storeu_epi8(yrow + (ptrdiff_t)ox * C + c0, cm, r);
    }
}

/*
 * Output row (b, oy), all channels, depth multiplier 1, 64 channels per step,
 * taps in groups of four: the four taps' inputs are byte-interleaved
 * (dw_interleave4) into u8 (x + 128) and multiplied with the likewise
 * interleaved weights by vpdpbusd, four products per int32 lane and
 * instruction (as the conv GEMM: exact). The +128 is removed with the
 * weights' per-channel sum: corr = bias - (in_zp + 128) * sum_t w_t, the same
 * for every pixel because taps outside the image read a run of in_zp (whose
 * u8 value times w cancels its share of the correction). Taps past kh*kw in
 * the last group have zero weights. Accumulator qq holds channels 16L + 4qq +
 * j (lane 4L + j); the int8 results are put back in order by a 4x4 dword
 * transpose. kh*kw <= 64.
 */
static TML_S8_TGT_VNNI void dw_row_avx512(const tml_window *p, const tml_qparams *q, const int8_t *x,
                                          const int8_t *w, const int32_t *bias, int8_t *y, int b, int oy)
{
    DW_LOCALS(p);
    (void)H, (void)SW, (void)PL;
    const int ntap = KH * KW, ngrp = (ntap + 3) / 4;
    int ky0, ky1;
    dw_ky_range(p, oy, &ky0, &ky1);
    const int iy0 = oy * SH - PT;
    int8_t *yrow = y + ((ptrdiff_t)b * OH + oy) * OW * C;
    int8_t zpbuf[64] __attribute__((aligned(64)));
    for (int i = 0; i < 64; i++) zpbuf[i] = (int8_t)q->in_zp;
    const __m512i zero = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
    /* the epilogue's saturating packs (tml_s8_pack4_512) */
    const __m512i zp = _mm512_set1_epi16((short)q->out_zp);
    const __m512i lo = _mm512_set1_epi8((char)q->act_min), hi = _mm512_set1_epi8((char)q->act_max);
    const __m512i off128 = _mm512_set1_epi32(q->in_zp + 128);
    __m512i wv[DW_MAX_TAPS]; /* [group][qq] */
    int ky_of[DW_MAX_TAPS], kx_of[DW_MAX_TAPS];
    ptrdiff_t off[DW_MAX_TAPS]; /* x offset of each tap from the window's corner; pad taps reuse tap 0 */
    for (int t = 0; t < 4 * ngrp; t++) {
        ky_of[t] = t < ntap ? t / KW : -1;
        kx_of[t] = t < ntap ? t % KW : -1;
        off[t] = t < ntap ? ((ptrdiff_t)(t / KW) * DH * W + (ptrdiff_t)(t % KW) * DW) * C : 0;
    }
    for (int c0 = 0; c0 < C; c0 += 64) {
        const int nc = C - c0 < 64 ? C - c0 : 64;
        const __mmask64 cm = nc == 64 ? ~(__mmask64)0 : (((__mmask64)1 << nc) - 1);
        __m512i sw[4] = {zero, zero, zero, zero};
        for (int g = 0; g < ngrp; g++) {
            __m512i t[4];
            for (int u = 0; u < 4; u++)
                t[u] = 4 * g + u < ntap ? _mm512_maskz_loadu_epi8(cm, w + (ptrdiff_t)(4 * g + u) * C + c0) : zero;
            dw_interleave4(t[0], t[1], t[2], t[3], wv + 4 * g);
            for (int qq = 0; qq < 4; qq++) sw[qq] = _mm512_dpbusd_epi32(sw[qq], ones, wv[4 * g + qq]);
        }
        __m512i corr[4], mult[4], shift[4];
        if (bias)
            dw_consts4(bias + c0, nc, corr);
        else
            corr[0] = corr[1] = corr[2] = corr[3] = zero;
        dw_consts4(q->mult + c0, nc, mult);
        dw_consts4(q->shift + c0, nc, shift);
        __m512i lsh[4], rsh[4], mo[4], she[4], sho[4], ade[4], ado[4];
        __mmask16 anyl = 0, mneg = 0;
        for (int qq = 0; qq < 4; qq++) {
            corr[qq] = _mm512_sub_epi32(corr[qq], _mm512_mullo_epi32(off128, sw[qq]));
            lsh[qq] = _mm512_max_epi32(shift[qq], zero);
            rsh[qq] = _mm512_max_epi32(_mm512_sub_epi32(zero, shift[qq]), zero);
            anyl |= _mm512_cmpgt_epi32_mask(shift[qq], zero);
            mneg |= _mm512_cmplt_epi32_mask(mult[qq], zero);
            tml_s8_simple_consts512(rsh[qq], &she[qq], &sho[qq], &ade[qq], &ado[qq]);
            mo[qq] = _mm512_srli_epi64(mult[qq], 32);
        }
        const int any_lsh = anyl != 0, simple = anyl == 0 && mneg == 0;
        const int relu = simple && q->act_min >= q->out_zp;

        if (relu)
            dw_pixels_avx512(2, p, x, yrow, zpbuf, b, iy0, ky0, ky1, c0, cm, ngrp, ky_of, kx_of, off, wv, corr, mult,
                             lsh, rsh, mo, she, sho, ade, ado, any_lsh, lo, hi, zp, q->rounding == TML_ROUNDING_TFLITE);
        else if (simple)
            dw_pixels_avx512(1, p, x, yrow, zpbuf, b, iy0, ky0, ky1, c0, cm, ngrp, ky_of, kx_of, off, wv, corr, mult,
                             lsh, rsh, mo, she, sho, ade, ado, any_lsh, lo, hi, zp, q->rounding == TML_ROUNDING_TFLITE);
        else
            dw_pixels_avx512(0, p, x, yrow, zpbuf, b, iy0, ky0, ky1, c0, cm, ngrp, ky_of, kx_of, off, wv, corr, mult,
                             lsh, rsh, mo, she, sho, ade, ado, any_lsh, lo, hi, zp, q->rounding == TML_ROUNDING_TFLITE);
    }
}

/*
 * (Used for C <= 32, where the 64-channel blocks of dw_row_avx512 would be
 * mostly empty lanes.) Output row (b, oy), all channels, depth multiplier 1, 32 channels per step,
 * taps in pairs: the int16 (x - in_zp) of taps t and t+1 are interleaved
 * (unpacklo/hi_epi16) and multiplied with the likewise interleaved weights by
 * vpdpwssd, two products per int32 lane and instruction. The interleave works
 * within 128-bit lanes, so accumulator `lo` holds channels {0-3, 8-11, 16-19,
 * 24-27} and `hi` the other 16; the per-channel constants are permuted the
 * same way and the int8 results put back in order with unpack*_epi32. Taps
 * outside the image contribute a zero vector (x - in_zp = 0). kh*kw <= 64.
 */
static TML_S8_TGT_VNNI void dw_row_avx512_pairs(const tml_window *p, const tml_qparams *q, const int8_t *x,
                                                const int8_t *w, const int32_t *bias, int8_t *y, int b, int oy)
{
    DW_LOCALS(p);
    const int ntap = KH * KW, npair = (ntap + 1) / 2;
    int ky0, ky1;
    dw_ky_range(p, oy, &ky0, &ky1);
    const int iy0 = oy * SH - PT;
    int8_t *yrow = y + ((ptrdiff_t)b * OH + oy) * OW * C;
    const __m512i zp16 = _mm512_set1_epi16((short)q->in_zp), zero = _mm512_setzero_si512();
    const __m512i zp = _mm512_set1_epi32(q->out_zp);
    const __m512i lo = _mm512_set1_epi32(q->act_min - q->out_zp), hi = _mm512_set1_epi32(q->act_max - q->out_zp);
    /* lane order of the lo / hi accumulators, as indices into channels 0..31 */
    const __m512i perm_lo = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    const __m512i perm_hi = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    __m512i wpair[DW_MAX_TAPS]; /* [pair][lo, hi] */
    int ky_of[DW_MAX_TAPS], kx_of[DW_MAX_TAPS];
    ptrdiff_t off[DW_MAX_TAPS]; /* x offset of each tap from the window's corner; the pad tap reuses tap 0 */
    for (int t = 0; t < 2 * npair; t++) {
        ky_of[t] = t < ntap ? t / KW : -1;
        kx_of[t] = t < ntap ? t % KW : -1;
        off[t] = t < ntap ? ((ptrdiff_t)(t / KW) * DH * W + (ptrdiff_t)(t % KW) * DW) * C : 0;
    }
    for (int c0 = 0; c0 < C; c0 += 32) {
        const int nc = C - c0 < 32 ? C - c0 : 32;
        const __mmask32 cm = nc == 32 ? ~(__mmask32)0 : (__mmask32)((1u << nc) - 1u);
        const __mmask16 m0 = (__mmask16)(cm & 0xFFFFu), m1 = (__mmask16)(cm >> 16);
        for (int j = 0; j < npair; j++) {
            const int t0 = 2 * j, t1 = 2 * j + 1;
            const __m512i w0 = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cm, w + (ptrdiff_t)t0 * C + c0));
            const __m512i w1 =
                t1 < ntap ? _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cm, w + (ptrdiff_t)t1 * C + c0)) : zero;
            wpair[2 * j] = _mm512_unpacklo_epi16(w0, w1);
            wpair[2 * j + 1] = _mm512_unpackhi_epi16(w0, w1);
        }
        /* per-channel constants in the accumulators' lane orders */
#define DW_LOAD2(ptr, a, b_)                                                                                   \
    const __m512i a##_0 = _mm512_maskz_loadu_epi32(m0, (ptr) + c0), a##_1 = _mm512_maskz_loadu_epi32(m1, (ptr) + c0 + 16); \
    const __m512i b_##_lo = _mm512_permutex2var_epi32(a##_0, perm_lo, a##_1);                                  \
    const __m512i b_##_hi = _mm512_permutex2var_epi32(a##_0, perm_hi, a##_1)
        DW_LOAD2(q->mult, mu, mult);
        DW_LOAD2(q->shift, sh, shift);
#undef DW_LOAD2
        const __m512i bias_0 = bias ? _mm512_maskz_loadu_epi32(m0, bias + c0) : zero;
        const __m512i bias_1 = bias ? _mm512_maskz_loadu_epi32(m1, bias + c0 + 16) : zero;
        const __m512i bias_lo = _mm512_permutex2var_epi32(bias_0, perm_lo, bias_1);
        const __m512i bias_hi = _mm512_permutex2var_epi32(bias_0, perm_hi, bias_1);
        const __m512i lsh_lo = _mm512_max_epi32(shift_lo, zero), lsh_hi = _mm512_max_epi32(shift_hi, zero);
        const __m512i rsh_lo = _mm512_max_epi32(_mm512_sub_epi32(zero, shift_lo), zero);
        const __m512i rsh_hi = _mm512_max_epi32(_mm512_sub_epi32(zero, shift_hi), zero);
        const int any_lsh = (_mm512_cmpgt_epi32_mask(sh_0, zero) | _mm512_cmpgt_epi32_mask(sh_1, zero)) != 0;
        const int simple =
            !any_lsh && (_mm512_cmplt_epi32_mask(mu_0, zero) | _mm512_cmplt_epi32_mask(mu_1, zero)) == 0;
        const int tfl = q->rounding == TML_ROUNDING_TFLITE;
        __m512i she_lo, sho_lo, ade_lo, ado_lo, she_hi, sho_hi, ade_hi, ado_hi;
        tml_s8_simple_consts512(rsh_lo, &she_lo, &sho_lo, &ade_lo, &ado_lo);
        tml_s8_simple_consts512(rsh_hi, &she_hi, &sho_hi, &ade_hi, &ado_hi);
        const __m512i mo_lo = _mm512_srli_epi64(mult_lo, 32), mo_hi = _mm512_srli_epi64(mult_hi, 32);

        for (int ox = 0; ox < OW; ox++) {
            const int ix0 = ox * SW - PL;
            int kx0, kx1;
            dw_tap_range(ix0, KW, DW, W, &kx0, &kx1);
            const int interior = ky0 == 0 && ky1 == KH && kx0 == 0 && kx1 == KW;
            /* tap (ky, kx) reads x at offset ((b*H + iy0 + ky*DH)*W + ix0 + kx*DW)*C + c0 */
            const ptrdiff_t base = (((ptrdiff_t)b * H + iy0) * W + ix0) * C + c0;
            __m512i acc_lo = bias_lo, acc_hi = bias_hi;
            if (interior) { /* every tap inside: no checks (the pad tap has zero weights) */
                const int8_t *xb = x + base;
                for (int j = 0; j < npair; j++) {
                    const __m512i x0 =
                        _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cm, xb + off[2 * j])), zp16);
                    const __m512i x1 =
                        _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cm, xb + off[2 * j + 1])), zp16);
                    acc_lo = _mm512_dpwssd_epi32(acc_lo, _mm512_unpacklo_epi16(x0, x1), wpair[2 * j]);
                    acc_hi = _mm512_dpwssd_epi32(acc_hi, _mm512_unpackhi_epi16(x0, x1), wpair[2 * j + 1]);
                }
            } else
            for (int j = 0; j < npair; j++) {
                __m512i xv[2];
                for (int u = 0; u < 2; u++) {
                    const int ky = ky_of[2 * j + u], kx = kx_of[2 * j + u];
                    if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) {
                        /* only formed for taps inside the image */
                        const int8_t *xp = x + base + ((ptrdiff_t)ky * DH * W + (ptrdiff_t)kx * DW) * C;
                        xv[u] = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(cm, xp)), zp16);
                    } else {
                        xv[u] = zero;
                    }
                }
                acc_lo = _mm512_dpwssd_epi32(acc_lo, _mm512_unpacklo_epi16(xv[0], xv[1]), wpair[2 * j]);
                acc_hi = _mm512_dpwssd_epi32(acc_hi, _mm512_unpackhi_epi16(xv[0], xv[1]), wpair[2 * j + 1]);
            }
            __m128i o_lo, o_hi;
            if (simple) {
                o_lo = tml_s8_out512_simple(acc_lo, mult_lo, mo_lo, she_lo, sho_lo, ade_lo, ado_lo, lo, hi, zp, tfl);
                o_hi = tml_s8_out512_simple(acc_hi, mult_hi, mo_hi, she_hi, sho_hi, ade_hi, ado_hi, lo, hi, zp, tfl);
            } else {
                o_lo = tml_s8_out512(acc_lo, mult_lo, lsh_lo, rsh_lo, any_lsh, lo, hi, zp, tfl);
                o_hi = tml_s8_out512(acc_hi, mult_hi, lsh_hi, rsh_hi, any_lsh, lo, hi, zp, tfl);
            }
            int8_t *yp = yrow + (ptrdiff_t)ox * C + c0;
            _mm_mask_storeu_epi8(yp, m0, _mm_unpacklo_epi32(o_lo, o_hi));
            if (nc > 16) _mm_mask_storeu_epi8(yp + 16, m1, _mm_unpackhi_epi32(o_lo, o_hi));
        }
    }
}

/* Output row (b, oy), channels [0, C & ~15), depth multiplier 1: 16 per step;
 * the caller finishes the channel tail with the portable loop. */
static TML_S8_TGT_AVX2 void dw_row_avx2(const tml_window *p, const tml_qparams *q, const int8_t *x,
                                        const int8_t *w, const int32_t *bias, int8_t *y, int b, int oy)
{
    DW_LOCALS(p);
    const int cfull = C & ~15;
    int ky0, ky1;
    dw_ky_range(p, oy, &ky0, &ky1);
    const int iy0 = oy * SH - PT;
    int8_t *yrow = y + ((ptrdiff_t)b * OH + oy) * OW * C;
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
        const __m256i mneg = _mm256_or_si256(mu0, mu1); /* sign bit set if some mult < 0 */
        const int simple = !any_lsh && _mm256_movemask_ps(_mm256_castsi256_ps(mneg)) == 0;
        const int tfl = q->rounding == TML_ROUNDING_TFLITE;
        __m256i she0, sho0, ade0, ado0, she1, sho1, ade1, ado1;
        tml_s8_simple_consts256(r0, &she0, &sho0, &ade0, &ado0);
        tml_s8_simple_consts256(r1, &she1, &sho1, &ade1, &ado1);
        const __m256i mo0 = _mm256_srli_epi64(mu0, 32), mo1 = _mm256_srli_epi64(mu1, 32);
        for (int ox = 0; ox < OW; ox++) {
            __m256i acc0 = b0, acc1 = b1;
            const int ix0 = ox * SW - PL;
            int kx0, kx1;
            dw_tap_range(ix0, KW, DW, W, &kx0, &kx1);
            for (int ky = ky0; ky < ky1; ky++) {
                const int8_t *xp = x + (((ptrdiff_t)b * H + iy0 + ky * DH) * W + ix0 + kx0 * DW) * C + c0;
                const int8_t *wp = w + ((ptrdiff_t)ky * KW + kx0) * C + c0;
                for (int kx = kx0; kx < kx1; kx++, xp += (ptrdiff_t)DW * C, wp += C) {
                    const __m256i xv =
                        _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)xp)), zp16);
                    const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)wp));
                    const __m256i pr = _mm256_mullo_epi16(xv, wv);
                    acc0 = _mm256_add_epi32(acc0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(pr)));
                    acc1 = _mm256_add_epi32(acc1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(pr, 1)));
                }
            }
            int8_t *yp = yrow + (ptrdiff_t)ox * C + c0;
            if (simple) {
                tml_s8_store8(yp, tml_s8_out256_simple(acc0, mu0, mo0, she0, sho0, ade0, ado0, lo, hi, zp, tfl), 8);
                tml_s8_store8(yp + 8, tml_s8_out256_simple(acc1, mu1, mo1, she1, sho1, ade1, ado1, lo, hi, zp, tfl), 8);
            } else {
                tml_s8_store8(yp, tml_s8_out256(acc0, mu0, l0, r0, any_lsh, lo, hi, zp, tfl), 8);
                tml_s8_store8(yp + 8, tml_s8_out256(acc1, mu1, l1, r1, any_lsh, lo, hi, zp, tfl), 8);
            }
        }
    }
}

/* AVX2 row strips, depth multiplier 1, at least 16 channels, kernel width 3
 * or 5, stride 1 or 2 and dilation 1 along x, rows of at least 4 pixels.
 * Kernel rows go in pairs (ky, ky+1; the last one alone pairs with a zero
 * row): for one input column, the 16 channels of both rows, widened to int16
 * with the zero point subtracted (|x - in_zp| <= 255), are interleaved, and
 * one vpmaddwd against the interleaved weights (|w| <= 128) gives
 * x0*w0 + x1*w1 per channel in int32, exactly (|sum| <= 65280). Each input
 * column is widened once per row pair for the S = 4 pixels of a strip that
 * read it. Columns outside the input are skipped (their taps are absent);
 * integer sums, so the order does not matter: the same as the reference.
 * The interleaved (unpacklo / unpackhi) lanes hold channels {0-3, 8-11} and
 * {4-7, 12-15}; the bias goes in and the sums come out through the same
 * 128-bit permutation. The last strip of a row and the last channel block
 * overlap the previous ones (the same values are written again). */
static int dw_avx2_strip_ok(const tml_window *p)
{
    return p->depth_mult == 1 && p->c >= 16 && (p->kw == 3 || p->kw == 5) && (p->sw == 1 || p->sw == 2) &&
           p->dw == 1 && p->ow >= 4 && p->kh <= 16;
}

TML_S8_INLINE TML_S8_TGT_AVX2 void dw_strip_avx2_tpl(const int KW_, const int SW_, const tml_window *p,
                                                     const tml_qparams *q, const int8_t *x, const int8_t *w,
                                                     const int32_t *bias, int8_t *y, int b, int oy)
{
    DW_LOCALS(p);
    (void)KW, (void)SW, (void)DW;
    enum { S = 4 };
    int ky0, ky1;
    dw_ky_range(p, oy, &ky0, &ky1);
    const int iy0 = oy * SH - PT;
    const int npair = (ky1 - ky0 + 1) / 2;
    int8_t *yrow = y + ((ptrdiff_t)b * OH + oy) * OW * C;
    const __m256i zp16 = _mm256_set1_epi16((short)q->in_zp), zero = _mm256_setzero_si256();
    const int tfl = q->rounding == TML_ROUNDING_TFLITE;
    __m256i wp[8][5][2]; /* interleaved weights of each row pair and kx */
    for (int cs = 0; cs < C; cs += 16) {
        const int c0 = cs + 16 > C ? C - 16 : cs;
        for (int pr = 0; pr < npair; pr++) {
            const int ky = ky0 + 2 * pr;
            for (int kx = 0; kx < KW_; kx++) {
                const __m256i w0 =
                    _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w + ((ptrdiff_t)ky * KW_ + kx) * C + c0)));
                const __m256i w1 =
                    ky + 1 < ky1 ? _mm256_cvtepi8_epi16(_mm_loadu_si128(
                                       (const __m128i *)(const void *)(w + ((ptrdiff_t)(ky + 1) * KW_ + kx) * C + c0)))
                                 : zero;
                wp[pr][kx][0] = _mm256_unpacklo_epi16(w0, w1);
                wp[pr][kx][1] = _mm256_unpackhi_epi16(w0, w1);
            }
        }
        const __m256i b0 = bias ? _mm256_loadu_si256((const __m256i *)(const void *)(bias + c0)) : zero;
        const __m256i b1 = bias ? _mm256_loadu_si256((const __m256i *)(const void *)(bias + c0 + 8)) : zero;
        const __m256i ba = _mm256_permute2x128_si256(b0, b1, 0x20), bb = _mm256_permute2x128_si256(b0, b1, 0x31);
        /* per-channel constants in the accumulators' lane order: "0" the
         * lanes of channels {0-3, 8-11}, "1" those of {4-7, 12-15} */
        const __m256i mq0 = _mm256_loadu_si256((const __m256i *)(const void *)(q->mult + c0));
        const __m256i mq1 = _mm256_loadu_si256((const __m256i *)(const void *)(q->mult + c0 + 8));
        const __m256i sq0 = _mm256_loadu_si256((const __m256i *)(const void *)(q->shift + c0));
        const __m256i sq1 = _mm256_loadu_si256((const __m256i *)(const void *)(q->shift + c0 + 8));
        const __m256i mu0 = _mm256_permute2x128_si256(mq0, mq1, 0x20), mu1 = _mm256_permute2x128_si256(mq0, mq1, 0x31);
        const __m256i s0 = _mm256_permute2x128_si256(sq0, sq1, 0x20), s1 = _mm256_permute2x128_si256(sq0, sq1, 0x31);
        const __m256i l0 = _mm256_max_epi32(s0, zero), l1 = _mm256_max_epi32(s1, zero);
        const __m256i r0 = _mm256_max_epi32(_mm256_sub_epi32(zero, s0), zero);
        const __m256i r1 = _mm256_max_epi32(_mm256_sub_epi32(zero, s1), zero);
        const int any_lsh = !_mm256_testz_si256(_mm256_or_si256(l0, l1), _mm256_or_si256(l0, l1));
        const __m256i mneg = _mm256_or_si256(mu0, mu1);
        const int simple = !any_lsh && _mm256_movemask_ps(_mm256_castsi256_ps(mneg)) == 0;
        const __m256i lo16 = _mm256_set1_epi16((short)(q->act_min - q->out_zp));
        const __m256i hi16 = _mm256_set1_epi16((short)(q->act_max - q->out_zp));
        const __m256i zp16o = _mm256_set1_epi16((short)q->out_zp);
        __m256i she0, sho0, ade0, ado0, she1, sho1, ade1, ado1;
        tml_s8_simple_consts256(r0, &she0, &sho0, &ade0, &ado0);
        tml_s8_simple_consts256(r1, &she1, &sho1, &ade1, &ado1);
        const __m256i mo0 = _mm256_srli_epi64(mu0, 32), mo1 = _mm256_srli_epi64(mu1, 32);
        for (int ox = 0; ox < OW; ox += S) {
            const int ox0 = ox + S > OW ? OW - S : ox;
            const int ix0 = ox0 * SW_ - PL;
            __m256i acca[S], accb[S];
#pragma GCC unroll 4
            for (int s_ = 0; s_ < S; s_++) acca[s_] = ba, accb[s_] = bb;
            for (int pr = 0; pr < npair; pr++) {
                const int ky = ky0 + 2 * pr;
                const int two = ky + 1 < ky1;
                const int8_t *xr0 = x + (((ptrdiff_t)b * H + iy0 + ky * DH) * W + ix0) * C + c0;
                const int8_t *xr1 = two ? xr0 + (ptrdiff_t)DH * W * C : xr0;
#pragma GCC unroll 16
                for (int i = 0; i < (S - 1) * SW_ + KW_; i++) {
                    if (ix0 + i < 0 || ix0 + i >= W) continue;
                    const __m256i x0 = _mm256_sub_epi16(
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(xr0 + (ptrdiff_t)i * C))), zp16);
                    const __m256i x1 =
                        two ? _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(
                                                   (const __m128i *)(const void *)(xr1 + (ptrdiff_t)i * C))),
                                               zp16)
                            : zero;
                    const __m256i xa = _mm256_unpacklo_epi16(x0, x1), xb = _mm256_unpackhi_epi16(x0, x1);
#pragma GCC unroll 5
                    for (int kx = 0; kx < KW_; kx++)
                        if ((i - kx) % SW_ == 0 && i - kx >= 0 && (i - kx) / SW_ < S) {
                            const int s_ = (i - kx) / SW_;
                            acca[s_] = _mm256_add_epi32(acca[s_], _mm256_madd_epi16(xa, wp[pr][kx][0]));
                            accb[s_] = _mm256_add_epi32(accb[s_], _mm256_madd_epi16(xb, wp[pr][kx][1]));
                        }
                }
            }
#pragma GCC unroll 4
            for (int s_ = 0; s_ < S; s_++) {
                /* requantized int32 per lane, then both halves packed at
                 * once: packs_epi32 puts channels 0-7 in the low 128 bits
                 * and 8-15 in the high (the values fit int16 after the
                 * clamp, which runs in int16: saturating first changes
                 * nothing, the bounds being within int16) */
                __m256i va, vb;
                if (simple) {
                    va = tml_s8_rq256_simple(acca[s_], mu0, mo0, she0, sho0, ade0, ado0, tfl);
                    vb = tml_s8_rq256_simple(accb[s_], mu1, mo1, she1, sho1, ade1, ado1, tfl);
                } else {
                    va = tml_s8_rq256(acca[s_], mu0, l0, r0, any_lsh, tfl);
                    vb = tml_s8_rq256(accb[s_], mu1, l1, r1, any_lsh, tfl);
                }
                __m256i v = _mm256_packs_epi32(va, vb);
                v = _mm256_add_epi16(_mm256_min_epi16(_mm256_max_epi16(v, lo16), hi16), zp16o);
                v = _mm256_permute4x64_epi64(_mm256_packs_epi16(v, v), 0x08);
                _mm_storeu_si128((__m128i *)(void *)(yrow + (ptrdiff_t)(ox0 + s_) * C + c0), _mm256_castsi256_si128(v));
            }
        }
    }
}

static TML_S8_TGT_AVX2 void dw_row_avx2_strips(const tml_window *p, const tml_qparams *q, const int8_t *x,
                                               const int8_t *w, const int32_t *bias, int8_t *y, int b, int oy)
{
    if (p->kw == 3 && p->sw == 1)
        dw_strip_avx2_tpl(3, 1, p, q, x, w, bias, y, b, oy);
    else if (p->kw == 3)
        dw_strip_avx2_tpl(3, 2, p, q, x, w, bias, y, b, oy);
    else if (p->sw == 1)
        dw_strip_avx2_tpl(5, 1, p, q, x, w, bias, y, b, oy);
    else
        dw_strip_avx2_tpl(5, 2, p, q, x, w, bias, y, b, oy);
}

#endif /* TML_S8_X86 */

static void dw_row(tml_s8_isa isa, const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                   const int32_t *bias, int8_t *y, int b, int oy)
{
#ifdef TML_S8_X86
    if (p->depth_mult == 1 && isa == TML_S8_ISA_VNNI && p->kh * p->kw <= DW_MAX_TAPS) {
        if (p->c <= 32)
            dw_row_avx512_pairs(p, q, x, w, bias, y, b, oy);
        else
            dw_row_avx512(p, q, x, w, bias, y, b, oy);
        return;
    }
    if (isa == TML_S8_ISA_AVX2 && dw_avx2_strip_ok(p)) {
        dw_row_avx2_strips(p, q, x, w, bias, y, b, oy);
        return;
    }
    if (p->depth_mult == 1 && isa >= TML_S8_ISA_AVX2) { /* VNNI too, for kernels of more than 64 taps */
        dw_row_avx2(p, q, x, w, bias, y, b, oy);
        if (p->c & 15) dw_row_generic(p, q, x, w, bias, y, b, oy, p->c & ~15);
        return;
    }
#endif
    (void)isa;
    dw_row_generic(p, q, x, w, bias, y, b, oy, 0);
}

/* Unit of work t of n_img * nblk * nrc: image, channel block of the VNNI
 * strips (vnni = its width, 16 or 64) and chunk of output rows; without
 * strips (nblk = 1) the whole channel range. */
static void dw_task(tml_s8_isa isa, int vnni, const tml_window *p, const tml_qparams *q, const int8_t *x,
                    const int8_t *w, const int32_t *bias, int8_t *y, int nblk, int nrc, int64_t t, const void *pk)
{
    const int rc = (int)(t % nrc), blk = (int)((t / nrc) % nblk), b = (int)(t / ((int64_t)nrc * nblk));
    const int oy0 = (int)((int64_t)p->oh * rc / nrc), oy1 = (int)((int64_t)p->oh * (rc + 1) / nrc);
#ifdef TML_S8_X86
    if (vnni == 64) {
        dw_block64_vnni(p, q, x, w, bias, y, b, 64 * blk, oy0, oy1,
                        pk ? (const __m512i *)pk + (ptrdiff_t)blk * dw64_nvec(p) : NULL);
        return;
    }
    if (vnni) {
        dw_block_vnni(p, q, x, w, bias, y, b, 16 * blk, oy0, oy1);
        return;
    }
#else
    (void)vnni, (void)pk;
#endif
    for (int oy = oy0; oy < oy1; oy++) dw_row(isa, p, q, x, w, bias, y, b, oy);
}

/* The kernel tml_dwconv2d_s8_ex runs: 16 or 64 (VNNI strips of that many
 * channels) or 0. */
static int dw_kind(const tml_window *p, tml_s8_isa isa)
{
    int vnni = 0;
#ifdef TML_S8_X86
    /* row strips of 16 channels for 16 or fewer, of 64 for more than 32
     * (17 to 32: the 32-channel pair kernel measured as fast) */
    if (isa == TML_S8_ISA_VNNI && p->c <= 16 && dw_vnni_ok(p))
        vnni = 16;
    else if (isa == TML_S8_ISA_VNNI && p->c > 32 && dw_vnni64_ok(p))
        vnni = 64;
#else
    (void)p, (void)isa;
#endif
    return vnni;
}

/* packed: the kind-64 blocks' dw64_prep (64-byte aligned), or NULL */
static void dwconv_run(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                       const int32_t *bias, int8_t *y, tml_s8_isa isa, int64_t par_min_macs, const void *pk)
{
    if (p->n <= 0 || p->oh <= 0 || p->ow <= 0 || p->c <= 0) return;
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
    const int vnni = dw_kind(p, isa);
    if (vnni != 64) pk = NULL;
    const int nblk = vnni ? (p->c + vnni - 1) / vnni : 1;
    int nth = 1;
#ifdef TML_S8_OMP
    const int64_t macs = (int64_t)p->n * p->oh * p->ow * (int64_t)p->c * p->depth_mult * p->kh * p->kw;
    if (macs >= par_min_macs && !omp_in_parallel()) nth = omp_get_max_threads();
#else
    (void)par_min_macs;
#endif
    /* rows in one chunk keep the VNNI kernel's row reuse; more chunks only
     * when images x blocks give the threads too little to share */
    int nrc = vnni ? 1 : p->oh;
    if (nth > 1 && (int64_t)p->n * nblk * nrc < 4 * nth) {
        const int64_t want = (4 * nth + (int64_t)p->n * nblk - 1) / ((int64_t)p->n * nblk);
        nrc = (int)(want < p->oh ? want : p->oh);
    }
    const int64_t ntask = (int64_t)p->n * nblk * nrc;
    if (nth <= 1) {
        for (int64_t t = 0; t < ntask; t++) dw_task(isa, vnni, p, q, x, w, bias, y, nblk, nrc, t, pk);
        return;
    }
#ifdef TML_S8_OMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int64_t t = 0; t < ntask; t++) dw_task(isa, vnni, p, q, x, w, bias, y, nblk, nrc, t, pk);
#endif
}

void tml_dwconv2d_s8_ex(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                        const int32_t *bias, int8_t *y, tml_s8_isa isa, int64_t par_min_macs)
{
    dwconv_run(p, q, x, w, bias, y, isa, par_min_macs, NULL);
}

/* The packed form: a 64-byte header (kind, channels, kernel size: what it was
 * made for) then, for the 64-channel VNNI kernel, each block's dw64_prep. */
typedef struct dw_pack_hdr {
    int kind, c, kh, kw;
    int pad_[12];
} dw_pack_hdr;

size_t tml_dwconv2d_s8_packed_size(const tml_window *p)
{
    size_t s = 128 + sizeof(dw_pack_hdr);
#ifdef TML_S8_X86
    if (dw_kind(p, tml_s8_cpu_isa()) == 64) s += (size_t)((p->c + 63) / 64) * (size_t)dw64_nvec(p) * 64;
#endif
    return s;
}

void tml_dwconv2d_s8_pack(const tml_window *p, const tml_qparams *q, const int8_t *w, const int32_t *bias,
                          void *packed)
{
    dw_pack_hdr *h = (dw_pack_hdr *)(void *)(((uintptr_t)packed + 63) & ~(uintptr_t)63);
    memset(h, 0, sizeof *h);
    h->c = p->c, h->kh = p->kh, h->kw = p->kw;
#ifdef TML_S8_X86
    h->kind = dw_kind(p, tml_s8_cpu_isa());
    if (h->kind == 64) {
        __m512i *pv = (__m512i *)(void *)(h + 1);
        for (int c0 = 0; c0 < p->c; c0 += 64) dw64_prep(p, q, w, bias, c0, pv + (ptrdiff_t)(c0 / 64) * dw64_nvec(p));
    }
#else
    (void)q, (void)w, (void)bias;
#endif
}

void tml_dwconv2d_s8_packed(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                            const int32_t *bias, const void *packed, int8_t *y)
{
    const dw_pack_hdr *h = (const dw_pack_hdr *)(const void *)(((uintptr_t)packed + 63) & ~(uintptr_t)63);
    const int same = h->kind == 64 && h->c == p->c && h->kh == p->kh && h->kw == p->kw;
    dwconv_run(p, q, x, w, bias, y, tml_s8_cpu_isa(), TML_S8_PAR_MACS, same ? (const void *)(h + 1) : NULL);
}

void tml_dwconv2d_s8(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                     const int32_t *bias, int8_t *y)
{
    tml_dwconv2d_s8_ex(p, q, x, w, bias, y, tml_s8_cpu_isa(), TML_S8_PAR_MACS);
}
