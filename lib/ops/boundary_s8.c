/*
 * boundary_s8.c - float <-> int8 at the edges of an int8 model: the engine
 * quantizes its float input and dequantizes its output. For a small model at a
 * large batch this is a real share of the time (lenet300's input is 784
 * values per sample against 266k MACs), so it is vectorized; the fast
 * versions are exact copies of the scalar semantics:
 *   q = clamp(round_half_even(x * inv_scale) + zp, -128, 127), NaN -> zp
 *   y = scale * (q - zp)
 */
#include <math.h>

#include "ops/ops_internal.h"
#include "tinyml/tml_ops_s8.h"

#if defined(TML_OPS_X86)
#include <immintrin.h>
#endif

void tml_quantize_f32_s8_ref(int64_t count, const float *x, float inv_scale, int32_t zp, int8_t *q)
{
    for (int64_t i = 0; i < count; i++) {
        float v = nearbyintf(x[i] * inv_scale) + (float)zp;
        if (v != v) v = (float)zp; /* NaN has no int8 value: the zero point (real 0) */
        q[i] = (int8_t)(v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v));
    }
}

void tml_dequantize_s8_f32_ref(int64_t count, const int8_t *q, float scale, int32_t zp, float *y)
{
    for (int64_t i = 0; i < count; i++) y[i] = scale * (float)(q[i] - zp);
}

#if defined(TML_OPS_X86)
/* x * inv is clamped to [-512, 512] before rounding: beyond that every value
 * clamps to the same int8 bound after adding a zero point in [-128, 127], and
 * the conversion stays in int32 range. cvtps2dq rounds to nearest even (the
 * default MXCSR mode), like nearbyintf. */
__attribute__((target("avx512f,avx512bw"))) static void quantize_avx512(int64_t count, const float *x, float inv, int32_t zp,
                                                                         int8_t *q)
{
    const __m512 vinv = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-512.0f), hi = _mm512_set1_ps(512.0f);
    const __m512i vzp = _mm512_set1_epi32(zp), qmin = _mm512_set1_epi32(-128), qmax = _mm512_set1_epi32(127);
    int64_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 t = _mm512_mul_ps(_mm512_loadu_ps(x + i), vinv);
        __mmask16 nan = _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q);
        t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
        __m512i r = _mm512_add_epi32(_mm512_cvtps_epi32(t), vzp);
        r = _mm512_min_epi32(_mm512_max_epi32(r, qmin), qmax);
        r = _mm512_mask_mov_epi32(r, nan, vzp);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(r));
    }
    tml_quantize_f32_s8_ref(count - i, x + i, inv, zp, q + i);
}

__attribute__((target("avx2"))) static void quantize_avx2(int64_t count, const float *x, float inv, int32_t zp, int8_t *q)
{
    const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-512.0f), hi = _mm256_set1_ps(512.0f);
    const __m256i vzp = _mm256_set1_epi32(zp), qmin = _mm256_set1_epi32(-128), qmax = _mm256_set1_epi32(127);
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv);
        __m256 nan = _mm256_cmp_ps(t, t, _CMP_UNORD_Q);
        t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
        __m256i r = _mm256_add_epi32(_mm256_cvtps_epi32(t), vzp);
        r = _mm256_min_epi32(_mm256_max_epi32(r, qmin), qmax);
        r = _mm256_blendv_epi8(r, vzp, _mm256_castps_si256(nan));
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, r);
        for (int k = 0; k < 8; k++) q[i + k] = (int8_t)lanes[k];
    }
    tml_quantize_f32_s8_ref(count - i, x + i, inv, zp, q + i);
}

__attribute__((target("avx512f,avx512bw"))) static void dequantize_avx512(int64_t count, const int8_t *q, float scale,
                                                                           int32_t zp, float *y)
{
    const __m512 vs = _mm512_set1_ps(scale);
    const __m512i vzp = _mm512_set1_epi32(zp);
    int64_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + i)));
        _mm512_storeu_ps(y + i, _mm512_mul_ps(vs, _mm512_cvtepi32_ps(_mm512_sub_epi32(v, vzp))));
    }
    tml_dequantize_s8_f32_ref(count - i, q + i, scale, zp, y + i);
}
#endif

void tml_quantize_f32_s8(int64_t count, const float *x, float inv_scale, int32_t zp, int8_t *q)
{
#if defined(TML_OPS_X86)
    tml_isa isa = tml_cpu_isa();
    if (isa == TML_ISA_AVX512 && __builtin_cpu_supports("avx512bw")) {
        quantize_avx512(count, x, inv_scale, zp, q);
        return;
    }
    if (isa >= TML_ISA_AVX2) {
        quantize_avx2(count, x, inv_scale, zp, q);
        return;
    }
#endif
    tml_quantize_f32_s8_ref(count, x, inv_scale, zp, q);
}

void tml_dequantize_s8_f32(int64_t count, const int8_t *q, float scale, int32_t zp, float *y)
{
#if defined(TML_OPS_X86)
    if (tml_cpu_isa() == TML_ISA_AVX512 && __builtin_cpu_supports("avx512bw")) {
        dequantize_avx512(count, q, scale, zp, y);
        return;
    }
#endif
    tml_dequantize_s8_f32_ref(count, q, scale, zp, y);
}

void tml_quantize_f32_s8_tfl(int64_t count, const float *x, float scale, int32_t zp, int8_t *q)
{
    for (int64_t i = 0; i < count; i++) {
        const float t = roundf(x[i] / scale);
        int64_t v;
        if (t != t) v = zp; /* NaN: the zero point */
        else if (t < -1024.0f) v = -1024;
        else if (t > 1024.0f) v = 1024;
        else v = (int64_t)t + zp;
        q[i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
}
