/*
 * lowbit_s8.c - packed low-bit weights (tml_ops_s8.h, "packed low-bit weights"):
 * packing int8 values of width 2..7 into an LSB-first bit stream, and unpacking
 * it back to int8 for the fast int8 kernels.
 *
 *   stream bit k = bit k % 8 of byte k / 8; element i = bits i*b .. i*b+b-1
 *   (its least significant bit first), b-bit two's complement.
 *
 * Unpacking, fast path (x86, 4 and 2 bits): 16 (4-bit) or 8 (2-bit) bytes give
 * 32 values per step: the fields are masked out with shifts, interleaved back
 * into element order with byte / word unpacks, and sign-extended as
 * (v ^ 2^(b-1)) - 2^(b-1). Other widths and the tail use a bit-buffer loop that
 * reads each byte once and never reads past the stream.
 */
#include "ops_s8_internal.h"

#ifdef TML_S8_X86
#include <immintrin.h>
#endif

size_t tml_s8w_bytes(int64_t count, int wbits)
{
    if (count <= 0) return 0;
    return (size_t)(((uint64_t)count * (uint64_t)wbits + 7) / 8);
}

void tml_s8w_pack(int64_t count, int wbits, const int8_t *w, uint8_t *packed)
{
    if (wbits == 8) {
        for (int64_t i = 0; i < count; i++) packed[i] = (uint8_t)w[i];
        return;
    }
    const uint32_t mask = (1u << wbits) - 1u;
    uint32_t acc = 0;
    int nb = 0;
    size_t o = 0;
    for (int64_t i = 0; i < count; i++) {
        acc |= ((uint32_t)(uint8_t)w[i] & mask) << nb;
        nb += wbits;
        while (nb >= 8) {
            packed[o++] = (uint8_t)acc;
            acc >>= 8;
            nb -= 8;
        }
    }
    if (nb > 0) packed[o] = (uint8_t)acc; /* the high bits of acc are zero: padding */
}

void tml_s8w_unpack_ref(int64_t count, int wbits, const uint8_t *packed, int8_t *w)
{
    for (int64_t i = 0; i < count; i++) w[i] = (int8_t)tml_s8w_get(packed, wbits, i);
}

/* Elements [0, count) of a stream that starts on a byte boundary. */
static void unpack_generic(int64_t count, int wbits, const uint8_t *p, int8_t *w)
{
    if (wbits == 8) {
        for (int64_t i = 0; i < count; i++) w[i] = (int8_t)p[i];
        return;
    }
    const uint32_t mask = (1u << wbits) - 1u, sign = 1u << (wbits - 1);
    uint32_t acc = 0;
    int nb = 0;
    for (int64_t i = 0; i < count; i++) {
        if (nb < wbits) { /* wbits <= 7: one byte always suffices */
            acc |= (uint32_t)*p++ << nb;
            nb += 8;
        }
        const uint32_t v = acc & mask;
        acc >>= wbits;
        nb -= wbits;
        w[i] = (int8_t)((int32_t)(v ^ sign) - (int32_t)sign);
    }
}

#ifdef TML_S8_X86

/* 32 values of 4 bits from 16 bytes. */
static __attribute__((target("avx2"))) int64_t unpack4_avx2(int64_t count, const uint8_t *p, int8_t *w)
{
    const __m128i m4 = _mm_set1_epi8(0x0F), s4 = _mm_set1_epi8(8);
    int64_t i = 0;
    for (; i + 32 <= count; i += 32, p += 16) {
        const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)p);
        const __m128i lo = _mm_and_si128(b, m4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4);
        const __m128i e0 = _mm_sub_epi8(_mm_xor_si128(_mm_unpacklo_epi8(lo, hi), s4), s4);
        const __m128i e1 = _mm_sub_epi8(_mm_xor_si128(_mm_unpackhi_epi8(lo, hi), s4), s4);
        _mm_storeu_si128((__m128i *)(void *)(w + i), e0);
        _mm_storeu_si128((__m128i *)(void *)(w + i + 16), e1);
    }
    return i;
}

/* 32 values of 2 bits from 8 bytes. */
static __attribute__((target("avx2"))) int64_t unpack2_avx2(int64_t count, const uint8_t *p, int8_t *w)
{
    const __m128i m2 = _mm_set1_epi8(3), s2 = _mm_set1_epi8(2);
    int64_t i = 0;
    for (; i + 32 <= count; i += 32, p += 8) {
        const __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)p);
        const __m128i f0 = _mm_and_si128(b, m2), f1 = _mm_and_si128(_mm_srli_epi16(b, 2), m2);
        const __m128i f2 = _mm_and_si128(_mm_srli_epi16(b, 4), m2), f3 = _mm_and_si128(_mm_srli_epi16(b, 6), m2);
        const __m128i a = _mm_unpacklo_epi8(f0, f1), c = _mm_unpacklo_epi8(f2, f3); /* (f0 f1) and (f2 f3) pairs */
        const __m128i e0 = _mm_sub_epi8(_mm_xor_si128(_mm_unpacklo_epi16(a, c), s2), s2);
        const __m128i e1 = _mm_sub_epi8(_mm_xor_si128(_mm_unpackhi_epi16(a, c), s2), s2);
        _mm_storeu_si128((__m128i *)(void *)(w + i), e0);
        _mm_storeu_si128((__m128i *)(void *)(w + i + 16), e1);
    }
    return i;
}

#endif

void tml_s8w_unpack_ex(int64_t count, int wbits, const uint8_t *packed, int8_t *w, tml_s8_isa isa)
{
    if (count <= 0) return;
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
    int64_t done = 0;
#ifdef TML_S8_X86
    /* blocks of 32 values end on a byte boundary for both widths */
    if (isa >= TML_S8_ISA_AVX2 && wbits == 4) done = unpack4_avx2(count, packed, w);
    if (isa >= TML_S8_ISA_AVX2 && wbits == 2) done = unpack2_avx2(count, packed, w);
#else
    (void)isa;
#endif
    unpack_generic(count - done, wbits, packed + (size_t)(done * wbits / 8), w + done);
}

void tml_s8w_unpack(int64_t count, int wbits, const uint8_t *packed, int8_t *w)
{
    tml_s8w_unpack_ex(count, wbits, packed, w, tml_s8_cpu_isa());
}
