/*
 * dense_s8.c - INT8 fully connected layer: x (n, in), w (out, in), bias (out)
 *   y[r][o] = clamp(requantize(bias[o] + sum_i (x[r][i] - in_zp) * w[o][i],
 *                              mult[o], shift[o]) + out_zp, act_min, act_max)
 *
 * Fast kernel, by batch size:
 *   n < DENSE_PACK_MIN_N (and every n without VNNI): dot products along `in`
 *     on the weights as stored (nothing packed, no scratch): a tile of up to 4
 *     rows x 4 outputs shares each vector load; 16 outputs are reduced into one
 *     vector and requantized together.
 *     VNNI: u8 (x + 128) * s8 w with vpdpbusd; the +128 is removed with the
 *     weight row sums (computed alongside with a vpdpbusd against ones; skipped
 *     when in_zp == -128, where the two offsets cancel).
 *     AVX2: int16 (x - in_zp) * int16 w with vpmaddwd, no correction needed.
 *   n >= DENSE_PACK_MIN_N with VNNI: the weights are packed once into scratch
 *     and the rows go through the conv GEMM (gemm_s8.c), which reuses each
 *     weight vector for 6-12 rows.
 * Accumulators are exact int32 (see conv2d_s8.c for the range).
 */
#include <string.h>

#include "ops_s8_internal.h"
#include "ops_s8_simd.h"

#ifdef TML_S8_OMP
#include <omp.h>
#endif

#define DENSE_PACK_MIN_N 48 /* below, the dot-product kernels win: packing costs more than it saves */
#define DENSE_PAR_OUT_BLOCK 64 /* outputs per parallel work item */
#define DENSE_ROWS_PER_CALL 240 /* rows per packed GEMM call (row pointers on the stack) */

/* ---- reference ------------------------------------------------------------------------ */

/* int8 (wbits 8) and packed low-bit weights; inlined into both entry points. */
static inline __attribute__((always_inline)) void dense_ref(int n, int in, int out, const tml_qparams *q,
                                                            const int8_t *x, const void *w, int wbits,
                                                            const int32_t *bias, int8_t *y)
{
    for (int r = 0; r < n; r++)
        for (int o = 0; o < out; o++) {
            int32_t acc = bias ? bias[o] : 0;
            for (int i = 0; i < in; i++)
                acc += (x[(int64_t)r * in + i] - q->in_zp) * tml_s8w_get(w, wbits, (int64_t)o * in + i);
            int64_t v = (int64_t)tml_requantize_mode(acc, q->mult[o], q->shift[o], q->rounding) + q->out_zp;
            if (v < q->act_min) v = q->act_min;
            if (v > q->act_max) v = q->act_max;
            y[(int64_t)r * out + o] = (int8_t)v;
        }
}

void tml_dense_s8_ref(int n, int in, int out, const tml_qparams *q, const int8_t *x, const int8_t *w,
                      const int32_t *bias, int8_t *y)
{
    dense_ref(n, in, out, q, x, w, 8, bias, y);
}

void tml_dense_s8w_ref(int n, int in, int out, int wbits, const tml_qparams *q, const int8_t *x, const uint8_t *w,
                       const int32_t *bias, int8_t *y)
{
    dense_ref(n, in, out, q, x, w, wbits, bias, y);
}

size_t tml_dense_s8_scratch_size(int n, int in, int out)
{
    if (n < DENSE_PACK_MIN_N) return 0;
    /* gemm descriptor, packed weights, one padded copy of the last row */
    return 64 + ((sizeof(tml_s8_gemm_b) + 63) & ~(size_t)63) + (((size_t)in + 3 + 63) & ~(size_t)63) +
           tml_s8_gemm_prep_size(out, 1, in);
}

/* ---- generic ---------------------------------------------------------------------------- */

static void dense_generic(int rows, int in, int o0, int o1, int out, const tml_qparams *q, const int8_t *x,
                          const int8_t *w, const int32_t *bias, int8_t *y)
{
    for (int r = 0; r < rows; r++) {
        const int8_t *xr = x + (int64_t)r * in;
        for (int o = o0; o < o1; o++) {
            const int8_t *wo = w + (int64_t)o * in;
            int32_t s = 0;
            for (int i = 0; i < in; i++) s += (xr[i] - q->in_zp) * wo[i];
            const int32_t acc = (int32_t)((uint32_t)s + (uint32_t)(bias ? bias[o] : 0));
            const int sh = q->shift[o];
            y[(int64_t)r * out + o] = tml_s8_out_inline(acc, q->mult[o], sh > 0 ? sh : 0, sh > 0 ? 0 : -sh, q->out_zp,
                                                        q->act_min, q->act_max, q->rounding == TML_ROUNDING_TFLITE);
        }
    }
}

#ifdef TML_S8_X86

/* [sum(a), sum(b), sum(c), sum(d)] of four 16-lane vectors. */
TML_S8_INLINE TML_S8_TGT_VNNI __m128i hsum4_512(__m512i a, __m512i b, __m512i c, __m512i d)
{
    const __m256i a2 = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
    const __m256i b2 = _mm256_add_epi32(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1));
    const __m256i c2 = _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
    const __m256i d2 = _mm256_add_epi32(_mm512_castsi512_si256(d), _mm512_extracti64x4_epi64(d, 1));
    const __m256i ab = _mm256_hadd_epi32(a2, b2); /* a01 a23 b01 b23 | a45 a67 b45 b67 */
    const __m256i cd = _mm256_hadd_epi32(c2, d2);
    const __m256i abcd = _mm256_hadd_epi32(ab, cd); /* a b c d | a' b' c' d' */
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

/* R rows (x, y row strides in / out) x outputs [o0, o1). SUMW: also sum the
 * weight rows (in_zp != -128). */
TML_S8_INLINE TML_S8_TGT_VNNI void dense_vnni_tile(const int R, const int SUMW, int in, int o0, int o1, int out,
                                                   const tml_qparams *q, const int8_t *x, const int8_t *w,
                                                   const int32_t *bias, int8_t *y)
{
    const __m512i flip = _mm512_set1_epi32((int)0x80808080u), ones = _mm512_set1_epi8(1);
    const int nkv = in / 64, ktail = in % 64;
    const __mmask64 kmask = ktail ? (((__mmask64)1 << ktail) - 1) : 0;
    const __m512i zp = _mm512_set1_epi32(q->out_zp);
    const __m512i lo = _mm512_set1_epi32(q->act_min - q->out_zp), hi = _mm512_set1_epi32(q->act_max - q->out_zp);
    const __m512i off = _mm512_set1_epi32(q->in_zp + 128);
    for (int ob = o0; ob < o1; ob += 16) {
        const int nvalid = o1 - ob < 16 ? o1 - ob : 16;
        int32_t res[4][16] __attribute__((aligned(64)));
        int32_t sws[16] __attribute__((aligned(64)));
        for (int grp = 0; grp < 4; grp++) {
            const int oo = ob + 4 * grp;
            if (oo >= o1) {
                for (int r = 0; r < R; r++) memset(res[r] + 4 * grp, 0, 16);
                memset(sws + 4 * grp, 0, 16);
                continue;
            }
            const int8_t *wr0 = w + (int64_t)oo * in;
            const int8_t *wr1 = w + (int64_t)(oo + 1 < out ? oo + 1 : out - 1) * in;
            const int8_t *wr2 = w + (int64_t)(oo + 2 < out ? oo + 2 : out - 1) * in;
            const int8_t *wr3 = w + (int64_t)(oo + 3 < out ? oo + 3 : out - 1) * in;
            /* named accumulators (a<row><output>): GCC keeps an array of
             * vectors in memory */
            const __m512i z = _mm512_setzero_si512();
            __m512i a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
            __m512i a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
            __m512i sw0 = z, sw1 = z, sw2 = z, sw3 = z;
#define D_ROW(r)                                                                                               \
    if (R > r) {                                                                                               \
        const __m512i xv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(km, x + (int64_t)r * in + 64 * kv), flip); \
        a##r##0 = _mm512_dpbusd_epi32(a##r##0, xv, w0);                                                        \
        a##r##1 = _mm512_dpbusd_epi32(a##r##1, xv, w1);                                                        \
        a##r##2 = _mm512_dpbusd_epi32(a##r##2, xv, w2);                                                        \
        a##r##3 = _mm512_dpbusd_epi32(a##r##3, xv, w3);                                                        \
    }
            for (int kv = 0; kv < nkv + (ktail ? 1 : 0); kv++) {
                const __mmask64 km = kv < nkv ? ~(__mmask64)0 : kmask;
                const __m512i w0 = _mm512_maskz_loadu_epi8(km, wr0 + 64 * kv);
                const __m512i w1 = _mm512_maskz_loadu_epi8(km, wr1 + 64 * kv);
                const __m512i w2 = _mm512_maskz_loadu_epi8(km, wr2 + 64 * kv);
                const __m512i w3 = _mm512_maskz_loadu_epi8(km, wr3 + 64 * kv);
                if (SUMW) {
                    sw0 = _mm512_dpbusd_epi32(sw0, ones, w0);
                    sw1 = _mm512_dpbusd_epi32(sw1, ones, w1);
                    sw2 = _mm512_dpbusd_epi32(sw2, ones, w2);
                    sw3 = _mm512_dpbusd_epi32(sw3, ones, w3);
                }
                D_ROW(0)
                D_ROW(1)
                D_ROW(2)
                D_ROW(3)
            }
#undef D_ROW
            _mm_store_si128((__m128i *)(void *)(res[0] + 4 * grp), hsum4_512(a00, a01, a02, a03));
            if (R > 1) _mm_store_si128((__m128i *)(void *)(res[1] + 4 * grp), hsum4_512(a10, a11, a12, a13));
            if (R > 2) _mm_store_si128((__m128i *)(void *)(res[2] + 4 * grp), hsum4_512(a20, a21, a22, a23));
            if (R > 3) _mm_store_si128((__m128i *)(void *)(res[3] + 4 * grp), hsum4_512(a30, a31, a32, a33));
            if (SUMW) _mm_store_si128((__m128i *)(void *)(sws + 4 * grp), hsum4_512(sw0, sw1, sw2, sw3));
        }
        const __mmask16 om = nvalid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nvalid) - 1u);
        __m512i corr = bias ? _mm512_maskz_loadu_epi32(om, bias + ob) : _mm512_setzero_si512();
        if (SUMW) corr = _mm512_sub_epi32(corr, _mm512_mullo_epi32(off, _mm512_load_si512((const void *)sws)));
        const __m512i mult = _mm512_maskz_loadu_epi32(om, q->mult + ob);
        const __m512i sh = _mm512_maskz_loadu_epi32(om, q->shift + ob);
        const __m512i lsh = _mm512_max_epi32(sh, _mm512_setzero_si512());
        const __m512i rsh = _mm512_max_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), sh), _mm512_setzero_si512());
        const int any_lsh = _mm512_cmpgt_epi32_mask(sh, _mm512_setzero_si512()) != 0;
        if (!any_lsh && _mm512_cmplt_epi32_mask(mult, _mm512_setzero_si512()) == 0) { /* the one-step form */
            __m512i sh_e, sh_o, add_e, add_o;
            tml_s8_simple_consts512(rsh, &sh_e, &sh_o, &add_e, &add_o);
            const __m512i mult_o = _mm512_srli_epi64(mult, 32);
            for (int r = 0; r < R; r++) {
                const __m512i acc = _mm512_add_epi32(_mm512_load_si512((const void *)res[r]), corr);
                _mm_mask_storeu_epi8(y + (int64_t)r * out + ob, om,
                                     tml_s8_out512_simple(acc, mult, mult_o, sh_e, sh_o, add_e, add_o, lo, hi, zp,
                                                          q->rounding == TML_ROUNDING_TFLITE));
            }
        } else {
            for (int r = 0; r < R; r++) {
                const __m512i acc = _mm512_add_epi32(_mm512_load_si512((const void *)res[r]), corr);
                _mm_mask_storeu_epi8(y + (int64_t)r * out + ob, om, tml_s8_out512(acc, mult, lsh, rsh, any_lsh, lo, hi, zp,
                                                                   q->rounding == TML_ROUNDING_TFLITE));
            }
        }
    }
}

/* All rows for outputs [o0, o1). */
TML_S8_INLINE TML_S8_TGT_VNNI void dense_vnni_body(const int SUMW, int n, int in, int o0, int o1, int out,
                                                   const tml_qparams *q, const int8_t *x, const int8_t *w,
                                                   const int32_t *bias, int8_t *y)
{
    int r = 0;
    for (; r + 4 <= n; r += 4)
        dense_vnni_tile(4, SUMW, in, o0, o1, out, q, x + (int64_t)r * in, w, bias, y + (int64_t)r * out);
    switch (n - r) {
    case 3: dense_vnni_tile(3, SUMW, in, o0, o1, out, q, x + (int64_t)r * in, w, bias, y + (int64_t)r * out); break;
    case 2: dense_vnni_tile(2, SUMW, in, o0, o1, out, q, x + (int64_t)r * in, w, bias, y + (int64_t)r * out); break;
    case 1: dense_vnni_tile(1, SUMW, in, o0, o1, out, q, x + (int64_t)r * in, w, bias, y + (int64_t)r * out); break;
    default: break;
    }
}

static TML_S8_TGT_VNNI void dense_vnni(int n, int in, int o0, int o1, int out, const tml_qparams *q,
                                       const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y)
{
    if (q->in_zp == -128)
        dense_vnni_body(0, n, in, o0, o1, out, q, x, w, bias, y);
    else
        dense_vnni_body(1, n, in, o0, o1, out, q, x, w, bias, y);
}

/* [sum(a), sum(b), sum(c), sum(d)] of four 8-lane vectors. */
TML_S8_INLINE TML_S8_TGT_AVX2 __m128i hsum4_256(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_hadd_epi32(a, b);
    const __m256i cd = _mm256_hadd_epi32(c, d);
    const __m256i abcd = _mm256_hadd_epi32(ab, cd);
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

/* R (1 or 2) rows x outputs [o0, o1): int16 (x - in_zp) * int16 w, 16 per step,
 * scalar tail; 8 outputs requantized together. */
TML_S8_INLINE TML_S8_TGT_AVX2 void dense_avx2_tile(const int R, int in, int o0, int o1, int out,
                                                   const tml_qparams *q, const int8_t *x, const int8_t *w,
                                                   const int32_t *bias, int8_t *y)
{
    const int nkv = in / 16, k0 = nkv * 16;
    const __m256i zp16 = _mm256_set1_epi16((int16_t)q->in_zp);
    const __m256i zp = _mm256_set1_epi32(q->out_zp);
    const __m256i lo = _mm256_set1_epi32(q->act_min - q->out_zp), hi = _mm256_set1_epi32(q->act_max - q->out_zp);
    for (int ob = o0; ob < o1; ob += 8) {
        const int nvalid = o1 - ob < 8 ? o1 - ob : 8;
        int32_t res[2][8] __attribute__((aligned(32)));
        int32_t cm[4][8] __attribute__((aligned(32))); /* corr, mult, lsh, rsh */
        for (int grp = 0; grp < 2; grp++) {
            const int oo = ob + 4 * grp;
            const int8_t *wr[4];
            for (int j = 0; j < 4; j++) wr[j] = w + (int64_t)(oo + j < out ? oo + j : out - 1) * in;
            const __m256i z = _mm256_setzero_si256();
            __m256i a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
            for (int kv = 0; kv < nkv; kv++) {
                const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(wr[0] + 16 * kv)));
                const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(wr[1] + 16 * kv)));
                const __m256i w2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(wr[2] + 16 * kv)));
                const __m256i w3 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(wr[3] + 16 * kv)));
                const __m256i x0 = _mm256_sub_epi16(
                    _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(x + 16 * kv))), zp16);
                a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x0, w0));
                a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(x0, w1));
                a02 = _mm256_add_epi32(a02, _mm256_madd_epi16(x0, w2));
                a03 = _mm256_add_epi32(a03, _mm256_madd_epi16(x0, w3));
                if (R > 1) {
                    const __m256i x1 = _mm256_sub_epi16(
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(x + in + 16 * kv))), zp16);
                    a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x1, w0));
                    a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(x1, w1));
                    a12 = _mm256_add_epi32(a12, _mm256_madd_epi16(x1, w2));
                    a13 = _mm256_add_epi32(a13, _mm256_madd_epi16(x1, w3));
                }
            }
            _mm_store_si128((__m128i *)(void *)(res[0] + 4 * grp), hsum4_256(a00, a01, a02, a03));
            if (R > 1) _mm_store_si128((__m128i *)(void *)(res[1] + 4 * grp), hsum4_256(a10, a11, a12, a13));
            for (int r = 0; r < R; r++)
                for (int j = 0; j < 4; j++) {
                    int32_t s = 0;
                    for (int i = k0; i < in; i++) s += (x[(int64_t)r * in + i] - q->in_zp) * wr[j][i];
                    res[r][4 * grp + j] += s;
                }
        }
        for (int j = 0; j < 8; j++) {
            const int o = ob + j < out ? ob + j : out - 1;
            const int sh = q->shift[o];
            cm[0][j] = bias ? bias[o] : 0;
            cm[1][j] = q->mult[o];
            cm[2][j] = sh > 0 ? sh : 0;
            cm[3][j] = sh > 0 ? 0 : -sh;
        }
        const __m256i corr = _mm256_load_si256((const __m256i *)(const void *)cm[0]);
        const __m256i mult = _mm256_load_si256((const __m256i *)(const void *)cm[1]);
        const __m256i lsh = _mm256_load_si256((const __m256i *)(const void *)cm[2]);
        const __m256i rsh = _mm256_load_si256((const __m256i *)(const void *)cm[3]);
        const int any_lsh = !_mm256_testz_si256(lsh, lsh);
        if (!any_lsh && _mm256_movemask_ps(_mm256_castsi256_ps(mult)) == 0) { /* the one-step form */
            __m256i sh_e, sh_o, add_e, add_o;
            tml_s8_simple_consts256(rsh, &sh_e, &sh_o, &add_e, &add_o);
            const __m256i mult_o = _mm256_srli_epi64(mult, 32);
            for (int r = 0; r < R; r++) {
                const __m256i acc = _mm256_add_epi32(_mm256_load_si256((const __m256i *)(const void *)res[r]), corr);
                tml_s8_store8(y + (int64_t)r * out + ob,
                              tml_s8_out256_simple(acc, mult, mult_o, sh_e, sh_o, add_e, add_o, lo, hi, zp,
                                                   q->rounding == TML_ROUNDING_TFLITE),
                              nvalid);
            }
        } else {
            for (int r = 0; r < R; r++) {
                const __m256i acc = _mm256_add_epi32(_mm256_load_si256((const __m256i *)(const void *)res[r]), corr);
                tml_s8_store8(y + (int64_t)r * out + ob, tml_s8_out256(acc, mult, lsh, rsh, any_lsh, lo, hi, zp,
                                                                            q->rounding == TML_ROUNDING_TFLITE),
                              nvalid);
            }
        }
    }
}

static TML_S8_TGT_AVX2 void dense_avx2(int n, int in, int o0, int o1, int out, const tml_qparams *q,
                                       const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y)
{
    int r = 0;
    for (; r + 2 <= n; r += 2)
        dense_avx2_tile(2, in, o0, o1, out, q, x + (int64_t)r * in, w, bias, y + (int64_t)r * out);
    if (r < n) dense_avx2_tile(1, in, o0, o1, out, q, x + (int64_t)r * in, w, bias, y + (int64_t)r * out);
}

#endif /* TML_S8_X86 */

/* Rows [0, n) x outputs [o0, o1) with the dot-product kernels. */
static void dense_dot(tml_s8_isa isa, int n, int in, int o0, int o1, int out, const tml_qparams *q,
                      const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y)
{
#ifdef TML_S8_X86
    if (isa == TML_S8_ISA_VNNI) {
        dense_vnni(n, in, o0, o1, out, q, x, w, bias, y);
        return;
    }
    if (isa == TML_S8_ISA_AVX2) {
        dense_avx2(n, in, o0, o1, out, q, x, w, bias, y);
        return;
    }
#endif
    (void)isa;
    dense_generic(n, in, o0, o1, out, q, x, w, bias, y);
}

void tml_dense_s8_ex(int n, int in, int out, const tml_qparams *q, const int8_t *x, const int8_t *w,
                     const int32_t *bias, int8_t *y, void *scratch, tml_s8_isa isa, int64_t par_min_macs)
{
    if (n <= 0 || out <= 0) return;
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
    int nth = 1;
#ifdef TML_S8_OMP
    if ((int64_t)n * in * out >= par_min_macs && !omp_in_parallel()) nth = omp_get_max_threads();
#else
    (void)par_min_macs;
#endif

    if (isa == TML_S8_ISA_VNNI && n >= DENSE_PACK_MIN_N && scratch != NULL && in > 0) {
        uint8_t *base = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
        tml_s8_gemm_b *b = (tml_s8_gemm_b *)(void *)base;
        int8_t *last = (int8_t *)base + ((sizeof(tml_s8_gemm_b) + 63) & ~(size_t)63);
        uint8_t *prep = (uint8_t *)last + (((size_t)in + 3 + 63) & ~(size_t)63);
        tml_s8_gemm_prepare(isa, out, 1, in, w, in, bias, q->in_zp, q->out_zp, q->mult, q->shift, q->act_min,
                            q->act_max, q->rounding == TML_ROUNDING_TFLITE, prep, b);
        /* the kernel reads rows in groups of 4 bytes: the last row, when `in`
         * is not a multiple of 4, is read from a padded copy */
        memcpy(last, x + (int64_t)(n - 1) * in, (size_t)in);
        memset(last + in, 0, (size_t)(b->seg4 - in));
        int rows = n;
#ifdef TML_S8_OMP
        if (nth > 1) {
            rows = (n + 4 * nth - 1) / (4 * nth);
            if (rows < 12) rows = 12;
        }
#endif
        if (rows > DENSE_ROWS_PER_CALL) rows = DENSE_ROWS_PER_CALL;
        const int nchunks = (n + rows - 1) / rows;
#ifdef TML_S8_OMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth) if (nth > 1)
#endif
        for (int c = 0; c < nchunks; c++) {
            const int r0 = c * rows, m = n - r0 < rows ? n - r0 : rows;
            const int8_t *arow[DENSE_ROWS_PER_CALL];
            for (int i = 0; i < m; i++) arow[i] = x + (int64_t)(r0 + i) * in;
            if (r0 + m == n && b->seg4 != in) arow[m - 1] = last;
            tml_s8_gemm_run_ind(b, m, arow, y + (int64_t)r0 * out, out);
        }
        return;
    }

    if (in <= 0) { /* no products: y = requantized bias */
        dense_generic(n, 0, 0, out, out, q, x, w, bias, y);
        return;
    }
    if (nth <= 1) {
        dense_dot(isa, n, in, 0, out, out, q, x, w, bias, y);
        return;
    }
#ifdef TML_S8_OMP
    const int nblk = (out + DENSE_PAR_OUT_BLOCK - 1) / DENSE_PAR_OUT_BLOCK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int c = 0; c < nblk; c++) {
        const int o0 = c * DENSE_PAR_OUT_BLOCK, o1 = o0 + DENSE_PAR_OUT_BLOCK < out ? o0 + DENSE_PAR_OUT_BLOCK : out;
        dense_dot(isa, n, in, o0, o1, out, q, x, w, bias, y);
    }
#endif
}

void tml_dense_s8(int n, int in, int out, const tml_qparams *q, const int8_t *x, const int8_t *w,
                  const int32_t *bias, int8_t *y, void *scratch)
{
    tml_dense_s8_ex(n, in, out, q, x, w, bias, y, scratch, tml_s8_cpu_isa(), TML_S8_PAR_MACS);
}
