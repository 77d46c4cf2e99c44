/*
 * ops_s8_simd.h - x86 vector forms of the requantization epilogue, bit-exact
 * with tml_requantize() for every int32 accumulator, multiplier and shift
 * (including the INT32_MIN saturation). Included by the INT8 kernels; every
 * function carries the target attribute of the instruction set it needs, so
 * it inlines into kernels compiled for that target and the file builds with
 * baseline flags. Only for x86 (TML_S8_X86).
 *
 * Per lane, with per-lane mult, lsh = max(shift, 0), rsh = max(-shift, 0):
 *   1. x = saturate_int32(acc * 2^lsh): shift left, shift back; if that does
 *      not give acc, the shift overflowed and x is INT32_MAX / INT32_MIN.
 *   2. high multiply, rounded half away from zero, in sign-magnitude form:
 *      |x| and |mult| as unsigned 32-bit (|INT32_MIN| = 2^31 is representable
 *      unsigned), 64-bit product (<= 2^62), + 2^30, logical >> 31, giving a
 *      magnitude <= 2^31; positive results are capped at INT32_MAX (the only
 *      case reaching 2^31 is INT32_MIN * INT32_MIN), negative ones negated.
 *   3. rounding divide by 2^rsh: mask / remainder / threshold as in
 *      tml_rounding_divide_by_pot.
 *
 * One-step form, when every mult >= 0 and every shift <= 0 (the usual case,
 * tml_s8_gemm_b.simple): both roundings are "half up" on the magnitude |acc| *
 * mult = P, and floor((floor((P + 2^30) / 2^31) + 2^(rsh-1)) / 2^rsh) equals
 * floor((P + 2^30 + 2^(30+rsh)) / 2^(31+rsh)) (nested floor division by
 * integers; the 2^(30+rsh) term only for rsh > 0), so one 64-bit add and one
 * variable shift give the magnitude; P + addend < 2^63 and the magnitude is
 * <= 2^31 - 1. Same result as the general form, in about half the operations.
 *
 * TFLite rounding (tfl != 0, TML_ROUNDING_TFLITE): gemmlowp's high multiply
 * nudges negative products by 1 - 2^30, i.e. rounds ties toward +infinity,
 * which on the magnitude of a negative product is "half down": the addend
 * is one less in the lanes whose product is negative (a 64-bit 0 / -1 per
 * lane from the 32-bit sign, added to the addend). The rounding divide is
 * the same in both modes. The ReLU form needs no change: negative
 * accumulators clamp to the lower bound whatever their rounding.
 */
#ifndef TML_OPS_S8_SIMD_H
#define TML_OPS_S8_SIMD_H

#include "ops_s8_internal.h"

#ifdef TML_S8_X86
#include <immintrin.h>

#define TML_S8_TGT_AVX2 __attribute__((target("avx2")))
#define TML_S8_TGT_VNNI __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))
#define TML_S8_INLINE static inline __attribute__((always_inline))

/* ---- AVX-512 (16 lanes) ---- */

/* 64-bit lanes holding -1 where the even (low) / odd (high) 32-bit lane of
 * `neg32` (0 or -1 per 32-bit lane) is -1, else 0. */
TML_S8_INLINE TML_S8_TGT_VNNI __m512i tml_s8_neg_even512(__m512i neg32)
{
    return _mm512_srai_epi64(_mm512_slli_epi64(neg32, 32), 32);
}
TML_S8_INLINE TML_S8_TGT_VNNI __m512i tml_s8_neg_odd512(__m512i neg32) { return _mm512_srai_epi64(neg32, 32); }

TML_S8_INLINE TML_S8_TGT_VNNI __m512i tml_s8_rq512(__m512i acc, __m512i mult, __m512i lsh, __m512i rsh,
                                                    int any_lsh, int tfl)
{
    const __m512i imax = _mm512_set1_epi32(INT32_MAX);
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i half = _mm512_set1_epi64((int64_t)1 << 30);
    __m512i x = acc;
    if (any_lsh) {
        const __m512i xs = _mm512_sllv_epi32(acc, lsh);
        const __mmask16 ovf = _mm512_cmpneq_epi32_mask(_mm512_srav_epi32(xs, lsh), acc);
        x = _mm512_mask_mov_epi32(xs, ovf, _mm512_xor_si512(_mm512_srai_epi32(acc, 31), imax));
    }
    const __mmask16 neg = _mm512_cmplt_epi32_mask(_mm512_xor_si512(x, mult), _mm512_setzero_si512());
    const __m512i ax = _mm512_abs_epi32(x), am = _mm512_abs_epi32(mult);
    __m512i half_e = half, half_o = half;
    if (tfl) {
        /* the product is negative when exactly one factor is (a zero product
         * rounds to 0 either way) */
        const __m512i n32 = _mm512_srai_epi32(_mm512_xor_si512(x, mult), 31);
        half_e = _mm512_add_epi64(half, tml_s8_neg_even512(n32));
        half_o = _mm512_add_epi64(half, tml_s8_neg_odd512(n32));
    }
    const __m512i pe = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epu32(ax, am), half_e), 31);
    const __m512i po = _mm512_srli_epi64(
        _mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(ax, 32), _mm512_srli_epi64(am, 32)), half_o), 31);
    const __m512i mag = _mm512_or_si512(pe, _mm512_slli_epi64(po, 32));
    const __m512i hm = _mm512_mask_sub_epi32(_mm512_min_epu32(mag, imax), neg, _mm512_setzero_si512(), mag);
    const __m512i msk = _mm512_sub_epi32(_mm512_sllv_epi32(one, rsh), one);
    const __m512i rem = _mm512_and_si512(hm, msk);
    const __m512i thr = _mm512_add_epi32(_mm512_srli_epi32(msk, 1), _mm512_srli_epi32(hm, 31));
    const __m512i q = _mm512_srav_epi32(hm, rsh);
    return _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(rem, thr), q, one);
}

/* Per-lane constants of the one-step form from rsh (int32 lanes in [0, 31]):
 * 64-bit shift counts 31 + rsh and addends for the even and odd lanes. */
TML_S8_INLINE TML_S8_TGT_VNNI void tml_s8_simple_consts512(__m512i rsh, __m512i *sh_e, __m512i *sh_o, __m512i *add_e,
                                                            __m512i *add_o)
{
    const __m512i r_e = _mm512_and_si512(rsh, _mm512_set1_epi64(0xFFFFFFFF)), r_o = _mm512_srli_epi64(rsh, 32);
    const __m512i c30 = _mm512_set1_epi64((int64_t)1 << 30), c31 = _mm512_set1_epi64(31);
    *sh_e = _mm512_add_epi64(r_e, c31);
    *sh_o = _mm512_add_epi64(r_o, c31);
    *add_e = _mm512_mask_add_epi64(c30, _mm512_test_epi64_mask(r_e, r_e), c30, _mm512_sllv_epi64(c30, r_e));
    *add_o = _mm512_mask_add_epi64(c30, _mm512_test_epi64_mask(r_o, r_o), c30, _mm512_sllv_epi64(c30, r_o));
}

/* The one-step requantization (mult >= 0, no left shift); mult_o = mult >> 32
 * (64-bit lanes: the odd multipliers moved down). */
TML_S8_INLINE TML_S8_TGT_VNNI __m512i tml_s8_rq512_simple(__m512i acc, __m512i mult, __m512i mult_o, __m512i sh_e,
                                                           __m512i sh_o, __m512i add_e, __m512i add_o, int tfl)
{
    const __mmask16 neg = _mm512_cmplt_epi32_mask(acc, _mm512_setzero_si512());
    const __m512i ax = _mm512_abs_epi32(acc);
    if (tfl) {
        const __m512i n32 = _mm512_srai_epi32(acc, 31);
        add_e = _mm512_add_epi64(add_e, tml_s8_neg_even512(n32));
        add_o = _mm512_add_epi64(add_o, tml_s8_neg_odd512(n32));
    }
    const __m512i pe = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(ax, mult), add_e), sh_e);
    const __m512i po = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(ax, 32), mult_o), add_o), sh_o);
    const __m512i mag = _mm512_or_si512(pe, _mm512_slli_epi64(po, 32));
    return _mm512_mask_sub_epi32(mag, neg, _mm512_setzero_si512(), mag);
}

TML_S8_INLINE TML_S8_TGT_VNNI __m128i tml_s8_out512_simple(__m512i acc, __m512i mult, __m512i mult_o, __m512i sh_e,
                                                            __m512i sh_o, __m512i add_e, __m512i add_o, __m512i lo_zp,
                                                            __m512i hi_zp, __m512i zp, int tfl)
{
    __m512i v = tml_s8_rq512_simple(acc, mult, mult_o, sh_e, sh_o, add_e, add_o, tfl);
    v = _mm512_min_epi32(_mm512_max_epi32(v, lo_zp), hi_zp);
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(v, zp));
}

/* The ReLU form: one-step conditions and act_min >= out_zp (lo_zp >= 0).
 * A negative accumulator requantizes to a value <= 0 <= lo_zp, so it clamps
 * to lo_zp whatever its magnitude; max(acc, 0) gives the same, and for acc >=
 * 0 the sign handling of the one-step form is the identity. */
TML_S8_INLINE TML_S8_TGT_VNNI __m128i tml_s8_out512_relu(__m512i acc, __m512i mult, __m512i mult_o, __m512i sh_e,
                                                          __m512i sh_o, __m512i add_e, __m512i add_o, __m512i lo_zp,
                                                          __m512i hi_zp, __m512i zp)
{
    const __m512i ax = _mm512_max_epi32(acc, _mm512_setzero_si512());
    const __m512i pe = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(ax, mult), add_e), sh_e);
    const __m512i po = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(ax, 32), mult_o), add_o), sh_o);
    __m512i v = _mm512_or_si512(pe, _mm512_slli_epi64(po, 32));
    v = _mm512_min_epi32(_mm512_max_epi32(v, lo_zp), hi_zp);
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(v, zp));
}

/* The ReLU form's requantized value of max(acc, 0), before the zero point
 * and the clamp (as in tml_s8_out512_relu). */
TML_S8_INLINE TML_S8_TGT_VNNI __m512i tml_s8_rq512_relu(__m512i acc, __m512i mult, __m512i mult_o, __m512i sh_e,
                                                         __m512i sh_o, __m512i add_e, __m512i add_o)
{
    const __m512i ax = _mm512_max_epi32(acc, _mm512_setzero_si512());
    const __m512i pe = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(ax, mult), add_e), sh_e);
    const __m512i po = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(ax, 32), mult_o), add_o), sh_o);
    return _mm512_or_si512(pe, _mm512_slli_epi64(po, 32));
}

/*
 * Four vectors of requantized values v (int32, before the zero point and the
 * clamp) to 64 int8 outputs in three saturating packs: int16 (adds the zero
 * point, zp16 = out_zp in every int16 lane), then int8, then the clamp to
 * [act_min, act_max] (lo8 / hi8, int8 lanes). Saturation keeps the sign and
 * a magnitude above 127 (|out_zp| <= 128 moves a saturated int16 by at most
 * 128), so the result is clamp(v + out_zp) as in the one-vector forms, in
 * 7 instructions instead of 4 x 5. Byte order: 128-bit lane L holds lane L's
 * four values of v0, then of v1, v2 and v3.
 */
TML_S8_INLINE TML_S8_TGT_VNNI __m512i tml_s8_pack4_512(__m512i v0, __m512i v1, __m512i v2, __m512i v3, __m512i zp16,
                                                        __m512i lo8, __m512i hi8)
{
    const __m512i a = _mm512_adds_epi16(_mm512_packs_epi32(v0, v1), zp16);
    const __m512i b = _mm512_adds_epi16(_mm512_packs_epi32(v2, v3), zp16);
    return _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(a, b), lo8), hi8);
}

/* tml_s8_pack4_512 for values that hold the zero point already (the signed
 * ReLU form with tml_s8_fold_zp512, |v| <= 2^30 + 129): two saturating packs
 * and the clamp; the upper clamp only when act_max < 127 (the pack saturates
 * at 127). */
TML_S8_INLINE TML_S8_TGT_VNNI __m512i tml_s8_pack4z_512(__m512i v0, __m512i v1, __m512i v2, __m512i v3, __m512i lo8,
                                                         __m512i hi8, int clamp_hi)
{
    const __m512i a = _mm512_packs_epi32(v0, v1), b = _mm512_packs_epi32(v2, v3);
    const __m512i o = _mm512_max_epi8(_mm512_packs_epi16(a, b), lo8);
    return clamp_hi ? _mm512_min_epi8(o, hi8) : o;
}

/*
 * The ReLU form with the odd lanes' result left in place ("blend" layout):
 * the odd lane's sum P + A is shifted right by S - 32 instead of S, which
 * leaves floor((P + A) / 2^S) in the high dword of its 64-bit lane, where a
 * blend takes it (no shift back, no or). S - 32 >= 0 needs rsh >= 1; a lane
 * with rsh = 0 (S = 31) instead gets 2 * mult and 2 * A (unsigned: 2 * mult
 * < 2^32 and the product stays below 2^63) and a shift of 0. The even lanes
 * are as in tml_s8_simple_consts512: floor((P + A) / 2^S) < 2^31, so their
 * high dwords are 0. Constants from mult and rsh (int32 lanes, rsh in [0, 31]):
 * mult_o, sh_e, sh_o, add_e, add_o.
 */
TML_S8_INLINE TML_S8_TGT_VNNI void tml_s8_blend_consts512(__m512i mult, __m512i rsh, __m512i *mult_o, __m512i *sh_e,
                                                           __m512i *sh_o, __m512i *add_e, __m512i *add_o)
{
    __m512i she, sho, ade, ado;
    tml_s8_simple_consts512(rsh, &she, &sho, &ade, &ado);
    const __m512i mo = _mm512_srli_epi64(mult, 32), c32 = _mm512_set1_epi64(32);
    const __mmask8 r0 = _mm512_cmplt_epu64_mask(sho, c32); /* odd lanes with rsh = 0 */
    *sh_e = she;
    *add_e = ade;
    *mult_o = _mm512_mask_slli_epi64(mo, r0, mo, 1);
    *add_o = _mm512_mask_slli_epi64(ado, r0, ado, 1);
    *sh_o = _mm512_mask_mov_epi64(_mm512_sub_epi64(sho, c32), r0, _mm512_setzero_si512());
}

/* The ReLU form (mult >= 0, shift <= 0, act_min >= out_zp) in the blend
 * layout: the requantized value of max(acc, 0), before the clamp. */
TML_S8_INLINE TML_S8_TGT_VNNI __m512i tml_s8_rq512_relu_blend(__m512i acc, __m512i mult, __m512i mult_o, __m512i sh_e,
                                                               __m512i sh_o, __m512i add_e, __m512i add_o)
{
    const __m512i ax = _mm512_max_epi32(acc, _mm512_setzero_si512());
    const __m512i pe = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(ax, mult), add_e), sh_e);
    const __m512i po = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(ax, 32), mult_o), add_o), sh_o);
    return _mm512_mask_blend_epi32((__mmask16)0xAAAA, pe, po);
}

/* The blend form with signed multiplies (vpmuldq) and arithmetic shifts:
 * the max(acc, 0) is left out. For acc >= 0 the products, sums and shifts
 * are those of tml_s8_rq512_relu_blend. For acc < 0 the product is negative
 * (>= -2^62, so P + A does not overflow) and the arithmetic shift gives
 * floor((P + A) / 2^S) <= 0 (A < 2^S), which the clamp takes to act_min - out_zp
 * >= 0, as the unsigned form's 0 does; in the odd lanes the high dword of
 * the shifted sum is floor((P + A) / 2^S) for a floor shift. Needs every
 * odd-lane multiplier of the blend constants below 2^31 (vpmuldq reads it
 * signed): no channel with rsh = 0 and mult >= 2^30 (tml_s8_relu_signed_ok). */
TML_S8_INLINE TML_S8_TGT_VNNI __m512i tml_s8_rq512_relu_blend_s(__m512i acc, __m512i mult, __m512i mult_o,
                                                                 __m512i sh_e, __m512i sh_o, __m512i add_e,
                                                                 __m512i add_o)
{
    const __m512i pe = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(acc, mult), add_e), sh_e);
    const __m512i po = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), mult_o), add_o), sh_o);
    return _mm512_mask_blend_epi32((__mmask16)0xAAAA, pe, po);
}

/* Whether tml_s8_rq512_relu_blend_s applies to 16 channels of multipliers
 * mult (>= 0) and right shifts rsh (>= 0): none with rsh = 0 and mult >=
 * 2^30, and none with rsh > 22 (for tml_s8_fold_zp512). Then |result| <=
 * 2^30 + 1 for every int32 accumulator (|P| <= 2^62 over 2^S >= 2^32, or
 * 2^31 * 2^30 over 2^31), so the output zero point can be added inside. */
TML_S8_INLINE TML_S8_TGT_VNNI int tml_s8_relu_signed_ok(__m512i mult, __m512i rsh)
{
    const __mmask16 r0 = _mm512_cmpeq_epi32_mask(rsh, _mm512_setzero_si512());
    return _mm512_mask_cmpge_epi32_mask(r0, mult, _mm512_set1_epi32(1 << 30)) == 0 &&
           _mm512_cmpgt_epi32_mask(rsh, _mm512_set1_epi32(22)) == 0;
}

/* The output zero point folded into the signed blend form's addends:
 * floor((P + A) / 2^S) + zp = floor((P + A + zp * 2^S) / 2^S). Even lanes
 * shift by S = sh_e; odd lanes keep their result in the high dword, S =
 * sh_o + 32 (sh_o = 0 with doubled P and A where rsh = 0: 2 * zp * 2^31). With
 * S <= 53 (rsh <= 22), |A + zp * 2^S| < 2^61 and |P| <= 2^62: no overflow. */
TML_S8_INLINE TML_S8_TGT_VNNI void tml_s8_fold_zp512(int32_t zp, __m512i sh_e, __m512i sh_o, __m512i *add_e,
                                                      __m512i *add_o)
{
    const __m512i z = _mm512_set1_epi64(zp);
    *add_e = _mm512_add_epi64(*add_e, _mm512_sllv_epi64(z, sh_e));
    *add_o = _mm512_add_epi64(*add_o, _mm512_sllv_epi64(z, _mm512_add_epi64(sh_o, _mm512_set1_epi64(32))));
}

/* 8-lane (ymm, AVX-512VL) forms of the three epilogues, for channel edges of
 * at most 8: the 8 int8 results are in the low 64 bits. */
TML_S8_INLINE TML_S8_TGT_VNNI __m128i tml_s8_out256vl_simple(__m256i acc, __m256i mult, __m256i mult_o, __m256i sh_e,
                                                              __m256i sh_o, __m256i add_e, __m256i add_o,
                                                              __m256i lo_zp, __m256i hi_zp, __m256i zp, int relu,
                                                              int tfl)
{
    __m256i v;
    if (relu) {
        const __m256i ax = _mm256_max_epi32(acc, _mm256_setzero_si256());
        const __m256i pe = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(ax, mult), add_e), sh_e);
        const __m256i po =
            _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(ax, 32), mult_o), add_o), sh_o);
        v = _mm256_or_si256(pe, _mm256_slli_epi64(po, 32));
    } else {
        const __mmask8 neg = _mm256_cmplt_epi32_mask(acc, _mm256_setzero_si256());
        const __m256i ax = _mm256_abs_epi32(acc);
        if (tfl) {
            const __m256i n32 = _mm256_srai_epi32(acc, 31);
            add_e = _mm256_add_epi64(add_e, _mm256_srai_epi64(_mm256_slli_epi64(n32, 32), 32));
            add_o = _mm256_add_epi64(add_o, _mm256_srai_epi64(n32, 32));
        }
        const __m256i pe = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(ax, mult), add_e), sh_e);
        const __m256i po =
            _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(ax, 32), mult_o), add_o), sh_o);
        const __m256i mag = _mm256_or_si256(pe, _mm256_slli_epi64(po, 32));
        v = _mm256_mask_sub_epi32(mag, neg, _mm256_setzero_si256(), mag);
    }
    v = _mm256_min_epi32(_mm256_max_epi32(v, lo_zp), hi_zp);
    return _mm256_cvtepi32_epi8(_mm256_add_epi32(v, zp));
}

/* Requantize, clamp to [lo - zp, hi - zp] (lo/hi/zp broadcast), add zp, narrow
 * to 16 int8 (values are in range, the narrowing is exact). */
TML_S8_INLINE TML_S8_TGT_VNNI __m128i tml_s8_out512(__m512i acc, __m512i mult, __m512i lsh, __m512i rsh,
                                                     int any_lsh, __m512i lo_zp, __m512i hi_zp, __m512i zp, int tfl)
{
    __m512i v = tml_s8_rq512(acc, mult, lsh, rsh, any_lsh, tfl);
    v = _mm512_min_epi32(_mm512_max_epi32(v, lo_zp), hi_zp);
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(v, zp));
}

/* ---- AVX2 (8 lanes) ---- */

/* AVX2 has no 64-bit arithmetic shift: 1 in the 64-bit lanes whose even /
 * odd 32-bit lane of neg32 is -1, to subtract from the addend. */
TML_S8_INLINE TML_S8_TGT_AVX2 __m256i tml_s8_neg1_even256(__m256i neg32)
{
    return _mm256_srli_epi64(_mm256_slli_epi64(neg32, 32), 63);
}
TML_S8_INLINE TML_S8_TGT_AVX2 __m256i tml_s8_neg1_odd256(__m256i neg32) { return _mm256_srli_epi64(neg32, 63); }

TML_S8_INLINE TML_S8_TGT_AVX2 __m256i tml_s8_rq256(__m256i acc, __m256i mult, __m256i lsh, __m256i rsh,
                                                    int any_lsh, int tfl)
{
    const __m256i imax = _mm256_set1_epi32(INT32_MAX);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i half = _mm256_set1_epi64x((int64_t)1 << 30);
    __m256i x = acc;
    if (any_lsh) {
        const __m256i xs = _mm256_sllv_epi32(acc, lsh);
        const __m256i ok = _mm256_cmpeq_epi32(_mm256_srav_epi32(xs, lsh), acc);
        x = _mm256_blendv_epi8(_mm256_xor_si256(_mm256_srai_epi32(acc, 31), imax), xs, ok);
    }
    const __m256i neg = _mm256_srai_epi32(_mm256_xor_si256(x, mult), 31);
    const __m256i ax = _mm256_abs_epi32(x), am = _mm256_abs_epi32(mult);
    __m256i half_e = half, half_o = half;
    if (tfl) {
        half_e = _mm256_sub_epi64(half, tml_s8_neg1_even256(neg));
        half_o = _mm256_sub_epi64(half, tml_s8_neg1_odd256(neg));
    }
    const __m256i pe = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epu32(ax, am), half_e), 31);
    const __m256i po = _mm256_srli_epi64(
        _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(ax, 32), _mm256_srli_epi64(am, 32)), half_o), 31);
    const __m256i mag = _mm256_or_si256(pe, _mm256_slli_epi64(po, 32));
    const __m256i hm = _mm256_blendv_epi8(_mm256_min_epu32(mag, imax), _mm256_sub_epi32(_mm256_setzero_si256(), mag),
                                          neg);
    const __m256i msk = _mm256_sub_epi32(_mm256_sllv_epi32(one, rsh), one);
    const __m256i rem = _mm256_and_si256(hm, msk);
    const __m256i thr = _mm256_add_epi32(_mm256_srli_epi32(msk, 1), _mm256_srli_epi32(hm, 31));
    const __m256i q = _mm256_srav_epi32(hm, rsh);
    return _mm256_sub_epi32(q, _mm256_cmpgt_epi32(rem, thr));
}

/* As tml_s8_out512 for 8 lanes; the 8 int8 results are in the low 64 bits. */
TML_S8_INLINE TML_S8_TGT_AVX2 __m128i tml_s8_out256(__m256i acc, __m256i mult, __m256i lsh, __m256i rsh,
                                                     int any_lsh, __m256i lo_zp, __m256i hi_zp, __m256i zp, int tfl)
{
    __m256i v = tml_s8_rq256(acc, mult, lsh, rsh, any_lsh, tfl);
    v = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(v, lo_zp), hi_zp), zp);
    /* bytes 0,4,8,12 of each 128-bit lane, then the two lanes' dwords 0 and 4 */
    const __m256i sel = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12,
                                         -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    v = _mm256_shuffle_epi8(v, sel);
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    return _mm256_castsi256_si128(v);
}

TML_S8_INLINE TML_S8_TGT_AVX2 void tml_s8_simple_consts256(__m256i rsh, __m256i *sh_e, __m256i *sh_o, __m256i *add_e,
                                                            __m256i *add_o)
{
    const __m256i r_e = _mm256_and_si256(rsh, _mm256_set1_epi64x(0xFFFFFFFF)), r_o = _mm256_srli_epi64(rsh, 32);
    const __m256i c30 = _mm256_set1_epi64x((int64_t)1 << 30), c31 = _mm256_set1_epi64x(31);
    const __m256i zero = _mm256_setzero_si256();
    *sh_e = _mm256_add_epi64(r_e, c31);
    *sh_o = _mm256_add_epi64(r_o, c31);
    /* r == 0: 2^30 only; else 2^30 + 2^(30 + r) */
    *add_e = _mm256_add_epi64(c30, _mm256_andnot_si256(_mm256_cmpeq_epi64(r_e, zero), _mm256_sllv_epi64(c30, r_e)));
    *add_o = _mm256_add_epi64(c30, _mm256_andnot_si256(_mm256_cmpeq_epi64(r_o, zero), _mm256_sllv_epi64(c30, r_o)));
}

TML_S8_INLINE TML_S8_TGT_AVX2 __m128i tml_s8_out256_simple(__m256i acc, __m256i mult, __m256i mult_o, __m256i sh_e,
                                                            __m256i sh_o, __m256i add_e, __m256i add_o, __m256i lo_zp,
                                                            __m256i hi_zp, __m256i zp, int tfl)
{
    const __m256i neg = _mm256_srai_epi32(acc, 31);
    const __m256i ax = _mm256_abs_epi32(acc);
    if (tfl) {
        add_e = _mm256_sub_epi64(add_e, tml_s8_neg1_even256(neg));
        add_o = _mm256_sub_epi64(add_o, tml_s8_neg1_odd256(neg));
    }
    const __m256i pe = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(ax, mult), add_e), sh_e);
    const __m256i po = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(ax, 32), mult_o), add_o), sh_o);
    const __m256i mag = _mm256_or_si256(pe, _mm256_slli_epi64(po, 32));
    /* (mag ^ neg) - neg negates where acc < 0 */
    __m256i v = _mm256_sub_epi32(_mm256_xor_si256(mag, neg), neg);
    v = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(v, lo_zp), hi_zp), zp);
    const __m256i sel = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12,
                                         -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    v = _mm256_shuffle_epi8(v, sel);
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    return _mm256_castsi256_si128(v);
}

/* tml_s8_out256_simple's requantization without the clamp and the packing:
 * the int32 result per lane (for kernels that pack 16 outputs at once) */
TML_S8_INLINE TML_S8_TGT_AVX2 __m256i tml_s8_rq256_simple(__m256i acc, __m256i mult, __m256i mult_o, __m256i sh_e,
                                                           __m256i sh_o, __m256i add_e, __m256i add_o, int tfl)
{
    const __m256i neg = _mm256_srai_epi32(acc, 31);
    const __m256i ax = _mm256_abs_epi32(acc);
    if (tfl) {
        add_e = _mm256_sub_epi64(add_e, tml_s8_neg1_even256(neg));
        add_o = _mm256_sub_epi64(add_o, tml_s8_neg1_odd256(neg));
    }
    const __m256i pe = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(ax, mult), add_e), sh_e);
    const __m256i po =
        _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(ax, 32), mult_o), add_o), sh_o);
    const __m256i mag = _mm256_or_si256(pe, _mm256_slli_epi64(po, 32));
    return _mm256_sub_epi32(_mm256_xor_si256(mag, neg), neg);
}

/* Stores the low `n` (0..8) bytes of v. */
TML_S8_INLINE TML_S8_TGT_AVX2 void tml_s8_store8(int8_t *dst, __m128i v, int n)
{
    if (n >= 8) {
        _mm_storel_epi64((__m128i *)(void *)dst, v);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)(void *)tmp, v);
        for (int i = 0; i < n; i++) dst[i] = tmp[i];
    }
}

#endif /* TML_S8_X86 */
#endif
