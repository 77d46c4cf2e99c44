/*
 * add_s8.c - elementwise INT8 add with rescaling (TFLite's method, see
 * tml_add_s8_prepare in quant_math.c and docs/numerics.md) and the standalone
 * clamp used for ReLU / ReLU6 nodes that were not fused.
 *
 * Fast add: the three requantizations of the reference, per element, in
 * vectors (ops_s8_simd.h: exact for every multiplier and shift), 16 elements
 * per step (AVX-512, masked tail) or 8 (AVX2, scalar tail). The multipliers
 * tml_add_s8_prepare makes are all >= 0 with shifts <= 0, where the one-step
 * form applies (about half the operations). Parameters outside what a model
 * can produce (zero points outside int8, left_shift > 22, clamp bounds
 * outside int8) take the scalar reference path, so the result is the
 * reference's whatever the parameters.
 */
#include "ops_s8_internal.h"
#include "ops_s8_simd.h"

#ifdef TML_S8_OMP
#include <omp.h>
#endif

/*
 * For each element: a' = (a - zp1) * 2^20 (|a - zp1| <= 255, so a' < 2^28),
 * scaled1 = requantize(a', m1, sh1) (now at scale 2*max(s1,s2) / 2^20), same
 * for b; out = clamp(requantize(scaled1 + scaled2, mo, sho) + zpo). The sum of
 * two values of magnitude <= 2^27 cannot overflow.
 */
void tml_add_s8_ref(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    for (int64_t i = 0; i < count; i++) {
        const int32_t a1 = (a[i] - p->in1_zp) * (1 << p->left_shift);
        const int32_t b1 = (b[i] - p->in2_zp) * (1 << p->left_shift);
        const int32_t sa = tml_requantize_mode(a1, p->in1_mult, p->in1_shift, p->rounding);
        const int32_t sb = tml_requantize_mode(b1, p->in2_mult, p->in2_shift, p->rounding);
        int64_t v = (int64_t)tml_requantize_mode(sa + sb, p->out_mult, p->out_shift, p->rounding) + p->out_zp;
        if (v < p->act_min) v = p->act_min;
        if (v > p->act_max) v = p->act_max;
        y[i] = (int8_t)v;
    }
}

void tml_clamp_s8_ref(int64_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y)
{
    for (int64_t i = 0; i < count; i++) {
        int32_t v = x[i];
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        y[i] = (int8_t)v;
    }
}

/* ---- fast add ----------------------------------------------------------------------------- */

static int in_i8(int32_t v) { return v >= -128 && v <= 127; }

/* The parameters the vector kernels handle: every intermediate is then the
 * same int32 value as in the reference (|a - zp| <= 255, 255 * 2^22 < 2^30). */
static int add_params_ok(const tml_add_s8_params *p)
{
    return in_i8(p->in1_zp) && in_i8(p->in2_zp) && in_i8(p->out_zp) && in_i8(p->act_min) && in_i8(p->act_max) &&
           p->left_shift >= 0 && p->left_shift <= 22 && p->in1_shift >= -31 && p->in1_shift <= 30 &&
           p->in2_shift >= -31 && p->in2_shift <= 30 && p->out_shift >= -31 && p->out_shift <= 30;
}

static int rq_simple(int32_t mult, int shift) { return mult >= 0 && shift <= 0; }

/* Scalar, the reference's arithmetic with the inlined requantization. */
static void add_generic(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    const int l1 = p->in1_shift > 0 ? p->in1_shift : 0, r1 = p->in1_shift > 0 ? 0 : -p->in1_shift;
    const int l2 = p->in2_shift > 0 ? p->in2_shift : 0, r2 = p->in2_shift > 0 ? 0 : -p->in2_shift;
    const int lo = p->out_shift > 0 ? p->out_shift : 0, ro = p->out_shift > 0 ? 0 : -p->out_shift;
    for (int64_t i = 0; i < count; i++) {
        const int tfl = p->rounding == TML_ROUNDING_TFLITE;
        const int32_t sa = tml_s8_rq_inline((a[i] - p->in1_zp) * (1 << p->left_shift), p->in1_mult, l1, r1, tfl);
        const int32_t sb = tml_s8_rq_inline((b[i] - p->in2_zp) * (1 << p->left_shift), p->in2_mult, l2, r2, tfl);
        y[i] = tml_s8_out_inline((int32_t)((uint32_t)sa + (uint32_t)sb), p->out_mult, lo, ro, p->out_zp, p->act_min,
                                 p->act_max, tfl);
    }
}

#ifdef TML_S8_X86

/* Broadcast requantization constants of one multiplier / shift. */
typedef struct rq_c512 {
    __m512i mult, mult_o, lsh, rsh, sh_e, sh_o, add_e, add_o;
    int any_lsh;
} rq_c512;

static TML_S8_TGT_VNNI void rq_consts512(int32_t mult, int shift, rq_c512 *c)
{
    c->mult = _mm512_set1_epi32(mult);
    c->mult_o = _mm512_srli_epi64(c->mult, 32);
    c->lsh = _mm512_set1_epi32(shift > 0 ? shift : 0);
    c->rsh = _mm512_set1_epi32(shift > 0 ? 0 : -shift);
    c->any_lsh = shift > 0;
    tml_s8_simple_consts512(c->rsh, &c->sh_e, &c->sh_o, &c->add_e, &c->add_o);
}

TML_S8_INLINE TML_S8_TGT_VNNI __m512i rq_apply512(const int SIMPLE, __m512i x, const rq_c512 *c, int tfl)
{
    return SIMPLE ? tml_s8_rq512_simple(x, c->mult, c->mult_o, c->sh_e, c->sh_o, c->add_e, c->add_o, tfl)
                  : tml_s8_rq512(x, c->mult, c->lsh, c->rsh, c->any_lsh, tfl);
}

TML_S8_INLINE TML_S8_TGT_VNNI void add_avx512_body(const int SIMPLE, int64_t count, const tml_add_s8_params *p,
                                                   const int8_t *a, const int8_t *b, int8_t *y)
{
    rq_c512 c1, c2, co;
    rq_consts512(p->in1_mult, p->in1_shift, &c1);
    rq_consts512(p->in2_mult, p->in2_shift, &c2);
    rq_consts512(p->out_mult, p->out_shift, &co);
    const __m512i z1 = _mm512_set1_epi32(p->in1_zp), z2 = _mm512_set1_epi32(p->in2_zp);
    const __m512i zp = _mm512_set1_epi32(p->out_zp);
    const __m512i lo = _mm512_set1_epi32(p->act_min - p->out_zp), hi = _mm512_set1_epi32(p->act_max - p->out_zp);
    const __m128i ls = _mm_cvtsi32_si128(p->left_shift);
    const int tfl = p->rounding == TML_ROUNDING_TFLITE;
    for (int64_t i = 0; i < count; i += 16) {
        const __mmask16 km = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1u);
        const __m512i va = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(km, a + i));
        const __m512i vb = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(km, b + i));
        const __m512i sa = rq_apply512(SIMPLE, _mm512_sll_epi32(_mm512_sub_epi32(va, z1), ls), &c1, tfl);
        const __m512i sb = rq_apply512(SIMPLE, _mm512_sll_epi32(_mm512_sub_epi32(vb, z2), ls), &c2, tfl);
        __m512i v = rq_apply512(SIMPLE, _mm512_add_epi32(sa, sb), &co, tfl);
        v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
        _mm_mask_storeu_epi8(y + i, km, _mm512_cvtepi32_epi8(_mm512_add_epi32(v, zp)));
    }
}

static TML_S8_TGT_VNNI void add_avx512(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b,
                                       int8_t *y)
{
    if (rq_simple(p->in1_mult, p->in1_shift) && rq_simple(p->in2_mult, p->in2_shift) &&
        rq_simple(p->out_mult, p->out_shift))
        add_avx512_body(1, count, p, a, b, y);
    else
        add_avx512_body(0, count, p, a, b, y);
}

static TML_S8_TGT_AVX2 void add_avx2(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b,
                                     int8_t *y)
{
    const __m256i m1 = _mm256_set1_epi32(p->in1_mult), m2 = _mm256_set1_epi32(p->in2_mult);
    const __m256i mo = _mm256_set1_epi32(p->out_mult);
#define SH(s, l, r)                                                                                            \
    const __m256i l = _mm256_set1_epi32((s) > 0 ? (s) : 0), r = _mm256_set1_epi32((s) > 0 ? 0 : -(s))
    SH(p->in1_shift, l1, r1);
    SH(p->in2_shift, l2, r2);
    SH(p->out_shift, lo_, ro);
#undef SH
    const __m256i z1 = _mm256_set1_epi32(p->in1_zp), z2 = _mm256_set1_epi32(p->in2_zp);
    const __m256i zp = _mm256_set1_epi32(p->out_zp);
    const __m256i lo = _mm256_set1_epi32(p->act_min - p->out_zp), hi = _mm256_set1_epi32(p->act_max - p->out_zp);
    const __m128i ls = _mm_cvtsi32_si128(p->left_shift);
    const int tfl = p->rounding == TML_ROUNDING_TFLITE;
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m256i va = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(a + i)));
        const __m256i vb = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b + i)));
        const __m256i sa =
            tml_s8_rq256(_mm256_sll_epi32(_mm256_sub_epi32(va, z1), ls), m1, l1, r1, p->in1_shift > 0, tfl);
        const __m256i sb =
            tml_s8_rq256(_mm256_sll_epi32(_mm256_sub_epi32(vb, z2), ls), m2, l2, r2, p->in2_shift > 0, tfl);
        tml_s8_store8(y + i, tml_s8_out256(_mm256_add_epi32(sa, sb), mo, lo_, ro, p->out_shift > 0, lo, hi, zp, tfl),
                      8);
    }
    add_generic(count - i, p, a + i, b + i, y + i);
}

#endif /* TML_S8_X86 */

static void add_range(tml_s8_isa isa, int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b,
                      int8_t *y)
{
#ifdef TML_S8_X86
    if (isa == TML_S8_ISA_VNNI) {
        add_avx512(count, p, a, b, y);
        return;
    }
    if (isa == TML_S8_ISA_AVX2) {
        add_avx2(count, p, a, b, y);
        return;
    }
#endif
    (void)isa;
    add_generic(count, p, a, b, y);
}

/* Elements per parallel work item (a multiple of 64). */
#define ELTWISE_BLOCK ((int64_t)1 << 16)

/* Runs fn(ctx, i0, n) over [0, count): in blocks of ELTWISE_BLOCK across
 * OpenMP threads when count >= par_min_elems (and threads are available),
 * else in one call. Every element is computed once, by one call. */
typedef void (*eltwise_fn)(const void *ctx, int64_t i0, int64_t n);
static void eltwise_run(int64_t count, int64_t par_min_elems, eltwise_fn fn, const void *ctx)
{
#ifdef TML_S8_OMP
    if (count >= par_min_elems && count > ELTWISE_BLOCK && !omp_in_parallel() && omp_get_max_threads() > 1) {
        const int64_t nblk = (count + ELTWISE_BLOCK - 1) / ELTWISE_BLOCK;
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < nblk; k++) {
            const int64_t i0 = k * ELTWISE_BLOCK;
            fn(ctx, i0, count - i0 < ELTWISE_BLOCK ? count - i0 : ELTWISE_BLOCK);
        }
        return;
    }
#else
    (void)par_min_elems;
#endif
    fn(ctx, 0, count);
}

typedef struct add_job {
    tml_s8_isa isa;
    const tml_add_s8_params *p;
    const int8_t *a, *b;
    int8_t *y;
} add_job;

static void add_block(const void *ctx, int64_t i0, int64_t n)
{
    const add_job *j = ctx;
    add_range(j->isa, n, j->p, j->a + i0, j->b + i0, j->y + i0);
}

void tml_add_s8_ex(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y,
                   tml_s8_isa isa, int64_t par_min_elems)
{
    if (count <= 0) return;
    if (!add_params_ok(p)) {
        tml_add_s8_ref(count, p, a, b, y);
        return;
    }
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
    const add_job j = {isa, p, a, b, y};
    eltwise_run(count, par_min_elems, add_block, &j);
}

void tml_add_s8(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    tml_add_s8_ex(count, p, a, b, y, tml_s8_cpu_isa(), TML_S8_PAR_ELEMS);
}

/* ---- fast clamp ----------------------------------------------------------------------------- */

#ifdef TML_S8_X86
static TML_S8_TGT_VNNI void clamp_avx512(int64_t count, int8_t lo, int8_t hi, const int8_t *x, int8_t *y)
{
    const __m512i vlo = _mm512_set1_epi8(lo), vhi = _mm512_set1_epi8(hi);
    for (int64_t i = 0; i < count; i += 64) {
        const __mmask64 km = count - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (count - i)) - 1);
        const __m512i v = _mm512_maskz_loadu_epi8(km, x + i);
        _mm512_mask_storeu_epi8(y + i, km, _mm512_min_epi8(_mm512_max_epi8(v, vlo), vhi));
    }
}

static TML_S8_TGT_AVX2 void clamp_avx2(int64_t count, int8_t lo, int8_t hi, const int8_t *x, int8_t *y)
{
    const __m256i vlo = _mm256_set1_epi8(lo), vhi = _mm256_set1_epi8(hi);
    int64_t i = 0;
    for (; i + 32 <= count; i += 32) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(x + i));
        _mm256_storeu_si256((__m256i *)(void *)(y + i), _mm256_min_epi8(_mm256_max_epi8(v, vlo), vhi));
    }
    tml_clamp_s8_ref(count - i, lo, hi, x + i, y + i);
}
#endif

static void clamp_range(tml_s8_isa isa, int64_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y)
{
#ifdef TML_S8_X86
    /* bounds within int8 and lo <= hi: max then min per byte is the reference */
    if (isa >= TML_S8_ISA_AVX2 && lo >= -128 && hi <= 127 && lo <= hi) {
        if (isa == TML_S8_ISA_VNNI)
            clamp_avx512(count, (int8_t)lo, (int8_t)hi, x, y);
        else
            clamp_avx2(count, (int8_t)lo, (int8_t)hi, x, y);
        return;
    }
#endif
    (void)isa;
    tml_clamp_s8_ref(count, lo, hi, x, y);
}

typedef struct clamp_job {
    tml_s8_isa isa;
    int32_t lo, hi;
    const int8_t *x;
    int8_t *y;
} clamp_job;

static void clamp_block(const void *ctx, int64_t i0, int64_t n)
{
    const clamp_job *j = ctx;
    clamp_range(j->isa, n, j->lo, j->hi, j->x + i0, j->y + i0);
}

void tml_clamp_s8_ex(int64_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y, tml_s8_isa isa,
                     int64_t par_min_elems)
{
    if (count <= 0) return;
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
    const clamp_job j = {isa, lo, hi, x, y};
    eltwise_run(count, par_min_elems, clamp_block, &j);
}

void tml_clamp_s8(int64_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y)
{
    tml_clamp_s8_ex(count, lo, hi, x, y, tml_s8_cpu_isa(), TML_S8_PAR_ELEMS);
}
