/*
 * gemm_f32.c - single-precision GEMM: C (M,N) = alpha * op(A) op(B) + beta * C,
 * row-major, op(X) = X or X^T. The reference is three loops; the fast version
 * is a cache-blocked, packed GEMM with register-blocked micro-kernels for
 * AVX-512F, AVX2+FMA and portable C, chosen at run time. docs/kernels.md has
 * the design and the measured speed.
 *
 * Blocking (fast version). K is cut into nkb = ceil(K / GEMM_KC) blocks of
 * equal length kcb = ceil(K / nkb) (a function of K only, so the summation
 * order of every element of C is fixed by the shape). For each block of at
 * most GEMM_NC columns and each K block, the (kc, nc) block of op(B) is packed
 * into NR-wide column panels (kc x NR floats each, L2 resident); then for each
 * MR-row panel of op(A) (kc x MR, L1 resident; read in place through row / k
 * strides, packed only at the M edge) the micro-kernel runs over the B panels, keeping an
 * MR x NR tile of C in registers for the whole K block. The first K block
 * applies beta, later ones add (C = alpha*acc + C).
 *
 * Packing buffers live on the stack (GEMM_KC * (GEMM_NC + GEMM_MR_MAX) floats
 * = 208 KiB per thread, plus 32 KiB of K-split partials on the calling
 * thread); nothing is allocated.
 *
 * Threading: above TML_OPS_PAR_FLOPS, C is cut into a grid of tiles that
 * OpenMP threads take dynamically; every tile runs the serial algorithm, and
 * the value of each element of C does not depend on which tile it falls in,
 * so results are bitwise independent of the thread count. When M*N is tiny
 * and K huge (weight gradients of small layers) K is split into a number of
 * parts fixed by the shape; parts are summed in order afterwards.
 */
#include <stdatomic.h>
#include <string.h>

#include "ops_internal.h"

#ifdef TML_OPS_X86
#include <immintrin.h>
#endif
#ifdef TML_OPS_OMP
#include <omp.h>
#endif

/* ---- reference ------------------------------------------------------------------ */

/* Plain triple loop, accumulating in double. beta == 0 never reads C. */
void tml_sgemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(ptrdiff_t)k * lda + i] : A[(ptrdiff_t)i * lda + k];
                float b = trans_b ? B[(ptrdiff_t)j * ldb + k] : B[(ptrdiff_t)k * ldb + j];
                acc += (double)a * (double)b;
            }
            float *c = &C[(ptrdiff_t)i * ldc + j];
            double v = (double)alpha * acc;
            if (beta != 0.0f) v += (double)beta * (double)*c;
            *c = (float)v;
        }
    }
}

/* ---- CPU dispatch ---------------------------------------------------------------- */

static atomic_int g_isa = -1;

static tml_isa detect_isa(void)
{
#ifdef TML_OPS_X86
    /* __builtin_cpu_supports also checks that the OS saves the vector state. */
    if (__builtin_cpu_supports("avx512f")) return TML_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return TML_ISA_AVX2;
#endif
    return TML_ISA_GENERIC;
}

tml_isa tml_cpu_isa(void)
{
    int v = atomic_load_explicit(&g_isa, memory_order_relaxed);
    if (v < 0) {
        v = (int)detect_isa();
        atomic_store_explicit(&g_isa, v, memory_order_relaxed);
    }
    return (tml_isa)v;
}

const char *tml_isa_name(tml_isa isa)
{
    switch (isa) {
    case TML_ISA_AVX512:
        return "avx512f";
    case TML_ISA_AVX2:
        return "avx2+fma";
    default:
        return "generic";
    }
}

/* ---- micro-kernels -----------------------------------------------------------------
 * ukr(kc, a, rsa, csa, b, rsb, c, ldc, mr, nr, ep):
 *   acc (MR, NR) = sum over k < kc of a[i*rsa + k*csa] * b[k*rsb + j]
 *   v = alpha * acc + beta * c[i*ldc + j]   (beta 0: c not read)
 *   c[i*ldc + j] = act(v + bias[j])         (bias NULL: no bias)
 *   for i < mr, j < nr.
 * `a` always has MR readable rows (packed with zeros at the M edge). `b` must
 * have NR readable columns unless the kernel sets b_partial_ok (then only nr
 * columns are read). Each accumulator sums k in increasing order. */
typedef struct ukr_epilogue {
    float alpha, beta;
    const float *bias; /* (nr) for this tile's columns, or NULL */
    tml_act act;
} ukr_epilogue;

typedef void (*ukr_fn)(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t rsb,
                       float *c, ptrdiff_t ldc, int mr, int nr, const ukr_epilogue *ep);

/* Packs one NR-wide panel of a transposed B (see pack_b_panel); NULL: generic. */
typedef void (*pack_bt_fn)(const float *B, ptrdiff_t ldb, int k0, int kc, int j0, int nrr, float *dst);

typedef struct gemm_kernel {
    int mr, nr;
    int b_partial_ok; /* reads only nr columns of b (masked loads) */
    ukr_fn fn;
    pack_bt_fn pack_bt;
} gemm_kernel;

#ifndef GEMM_KC
#define GEMM_KC 256 /* K block: a 12x256 A panel is 12 KiB (L1) */
#endif
#ifndef GEMM_NC
#define GEMM_NC 192 /* columns per B block: 256x192 floats = 192 KiB (L2) */
#endif
#define GEMM_MR_MAX 16

/* Portable kernel: 4 x 8 tile in 4-float vectors (GCC/Clang vector
 * extensions: SSE2 on any x86-64, NEON on AArch64), 8 accumulators, so it
 * fits the 16 registers of SSE2 without spilling. */
#define GENERIC_MR 4
#define GENERIC_NR 8

typedef float gemm_v4f __attribute__((vector_size(16)));

static void ukr_generic(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t rsb,
                        float *c, ptrdiff_t ldc, int mr, int nr, const ukr_epilogue *ep)
{
    const gemm_v4f zero = {0.0f, 0.0f, 0.0f, 0.0f};
    gemm_v4f c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero, c30 = zero, c31 = zero;
    for (int k = 0; k < kc; k++) {
        gemm_v4f b0, b1;
        memcpy(&b0, b, sizeof(b0));
        memcpy(&b1, b + 4, sizeof(b1));
        const gemm_v4f a0 = zero + a[0], a1 = zero + a[rsa], a2 = zero + a[2 * rsa], a3 = zero + a[3 * rsa];
        c00 += a0 * b0;
        c01 += a0 * b1;
        c10 += a1 * b0;
        c11 += a1 * b1;
        c20 += a2 * b0;
        c21 += a2 * b1;
        c30 += a3 * b0;
        c31 += a3 * b1;
        a += csa;
        b += rsb;
    }
    float acc[GENERIC_MR][GENERIC_NR];
    memcpy(&acc[0][0], &c00, sizeof(c00));
    memcpy(&acc[0][4], &c01, sizeof(c01));
    memcpy(&acc[1][0], &c10, sizeof(c10));
    memcpy(&acc[1][4], &c11, sizeof(c11));
    memcpy(&acc[2][0], &c20, sizeof(c20));
    memcpy(&acc[2][4], &c21, sizeof(c21));
    memcpy(&acc[3][0], &c30, sizeof(c30));
    memcpy(&acc[3][4], &c31, sizeof(c31));
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        for (int j = 0; j < nr; j++) {
            float v = ep->beta == 0.0f ? ep->alpha * acc[i][j] : ep->alpha * acc[i][j] + ep->beta * ci[j];
            if (ep->bias) v += ep->bias[j];
            ci[j] = tml_act_apply_f32(ep->act, v);
        }
    }
}

#ifdef TML_OPS_X86

/* Activations with exactly the semantics of tml_act_apply_f32, NaN included:
 * max(v, 0) returns its second operand when v is NaN (relu: 0), and relu6 as
 * min(6, max(0, v)) passes a NaN v through (as the scalar version does). */
#define ACT256(act, r)                                                                                       \
    ((act) == TML_ACT_RELU    ? _mm256_max_ps((r), _mm256_setzero_ps())                                      \
     : (act) == TML_ACT_RELU6 ? _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(_mm256_setzero_ps(), (r))) \
                              : (r))
#define ACT512(act, r)                                                                                       \
    ((act) == TML_ACT_RELU    ? _mm512_max_ps((r), _mm512_setzero_ps())                                      \
     : (act) == TML_ACT_RELU6 ? _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(_mm512_setzero_ps(), (r))) \
                              : (r))

/* AVX2 + FMA: 6 x 16 tile, 12 ymm accumulators. Rows are addressed from two
 * bases (rows 0-2 and 3-5) so the loop needs few general registers whether A
 * is packed (rsa = 1) or read in place (rsa = lda). */
#define AVX2_MR 6
#define AVX2_NR 16

/* Stores one row of the tile: the two accumulators of row p, lane masks m0/m1
 * (all lanes when full). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
avx2_store_row(float *p, __m256 a0, __m256 a1, int full, __m256i m0, __m256i m1, const ukr_epilogue *ep,
               __m256 vb0, __m256 vb1)
{
    const __m256 va = _mm256_set1_ps(ep->alpha);
    __m256 r0, r1;
    if (ep->beta == 0.0f) {
        r0 = _mm256_mul_ps(va, a0);
        r1 = _mm256_mul_ps(va, a1);
    } else {
        const __m256 vb = _mm256_set1_ps(ep->beta);
        const __m256 c0 = full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m0);
        const __m256 c1 = full ? _mm256_loadu_ps(p + 8) : _mm256_maskload_ps(p + 8, m1);
        r0 = _mm256_fmadd_ps(va, a0, _mm256_mul_ps(vb, c0));
        r1 = _mm256_fmadd_ps(va, a1, _mm256_mul_ps(vb, c1));
    }
    if (ep->bias) {
        r0 = _mm256_add_ps(r0, vb0);
        r1 = _mm256_add_ps(r1, vb1);
    }
    r0 = ACT256(ep->act, r0);
    r1 = ACT256(ep->act, r1);
    if (full) {
        _mm256_storeu_ps(p, r0);
        _mm256_storeu_ps(p + 8, r1);
    } else {
        _mm256_maskstore_ps(p, m0, r0);
        _mm256_maskstore_ps(p + 8, m1, r1);
    }
}

__attribute__((target("avx2,fma"))) static void ukr_avx2(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                                                         const float *b, ptrdiff_t rsb, float *c,
                                                         ptrdiff_t ldc, int mr, int nr,
                                                         const ukr_epilogue *ep)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
           c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
           c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
           c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    const float *a0 = a, *a3 = a + 3 * rsa;
    const ptrdiff_t r2 = 2 * rsa;
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 t;
#define AVX2_ROW(ci0, ci1, src)                                                                              \
    t = _mm256_broadcast_ss(src);                                                                            \
    ci0 = _mm256_fmadd_ps(t, b0, ci0);                                                                       \
    ci1 = _mm256_fmadd_ps(t, b1, ci1);
        AVX2_ROW(c00, c01, a0)
        AVX2_ROW(c10, c11, a0 + rsa)
        AVX2_ROW(c20, c21, a0 + r2)
        AVX2_ROW(c30, c31, a3)
        AVX2_ROW(c40, c41, a3 + rsa)
        AVX2_ROW(c50, c51, a3 + r2)
#undef AVX2_ROW
        a0 += csa;
        a3 += csa;
        b += rsb;
    }
    /* lane masks (lane < nr) for the two vectors; maskload / maskstore never
     * touch memory of masked-off lanes */
    const int full = nr == AVX2_NR;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lanes);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lanes);
    __m256 vb0 = _mm256_setzero_ps(), vb1 = _mm256_setzero_ps();
    if (ep->bias) {
        vb0 = full ? _mm256_loadu_ps(ep->bias) : _mm256_maskload_ps(ep->bias, m0);
        vb1 = full ? _mm256_loadu_ps(ep->bias + 8) : _mm256_maskload_ps(ep->bias + 8, m1);
    }
#define AVX2_STORE(i, ci0, ci1)                                                                              \
    if (i < mr) avx2_store_row(c + (i)*ldc, ci0, ci1, full, m0, m1, ep, vb0, vb1);
    AVX2_STORE(0, c00, c01)
    AVX2_STORE(1, c10, c11)
    AVX2_STORE(2, c20, c21)
    AVX2_STORE(3, c30, c31)
    AVX2_STORE(4, c40, c41)
    AVX2_STORE(5, c50, c51)
#undef AVX2_STORE
}

/* AVX-512F: 12 x 32 tile, 24 zmm accumulators (+2 for B, 1 broadcast). Rows
 * come from four bases (rows 0-2, 3-5, 6-8, 9-11). B columns beyond nr are
 * never read (masked loads), so B may be read in place up to the matrix edge. */
#define AVX512_MR 12
#define AVX512_NR 32

__attribute__((target("avx512f"), always_inline)) static inline void
avx512_store_row(float *p, __m512 a0, __m512 a1, int full, __mmask16 m0, __mmask16 m1, const ukr_epilogue *ep,
                 __m512 vb0, __m512 vb1)
{
    const __m512 va = _mm512_set1_ps(ep->alpha);
    __m512 r0, r1;
    if (ep->beta == 0.0f) {
        r0 = _mm512_mul_ps(va, a0);
        r1 = _mm512_mul_ps(va, a1);
    } else {
        const __m512 vb = _mm512_set1_ps(ep->beta);
        const __m512 c0 = full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m0, p);
        const __m512 c1 = full ? _mm512_loadu_ps(p + 16) : _mm512_maskz_loadu_ps(m1, p + 16);
        r0 = _mm512_fmadd_ps(va, a0, _mm512_mul_ps(vb, c0));
        r1 = _mm512_fmadd_ps(va, a1, _mm512_mul_ps(vb, c1));
    }
    if (ep->bias) {
        r0 = _mm512_add_ps(r0, vb0);
        r1 = _mm512_add_ps(r1, vb1);
    }
    r0 = ACT512(ep->act, r0);
    r1 = ACT512(ep->act, r1);
    if (full) {
        _mm512_storeu_ps(p, r0);
        _mm512_storeu_ps(p + 16, r1);
    } else {
        _mm512_mask_storeu_ps(p, m0, r0);
        _mm512_mask_storeu_ps(p + 16, m1, r1);
    }
}

__attribute__((target("avx512f"))) static void ukr_avx512(int kc, const float *a, ptrdiff_t rsa,
                                                          ptrdiff_t csa, const float *b, ptrdiff_t rsb,
                                                          float *c, ptrdiff_t ldc, int mr, int nr,
                                                          const ukr_epilogue *ep)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c10 = _mm512_setzero_ps(),
           c11 = _mm512_setzero_ps(), c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(),
           c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps(), c40 = _mm512_setzero_ps(),
           c41 = _mm512_setzero_ps(), c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps(),
           c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps(), c70 = _mm512_setzero_ps(),
           c71 = _mm512_setzero_ps(), c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps(),
           c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps(), ca0 = _mm512_setzero_ps(),
           ca1 = _mm512_setzero_ps(), cb0 = _mm512_setzero_ps(), cb1 = _mm512_setzero_ps();
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1u);
    const __mmask16 m1 = nr >= 32   ? (__mmask16)0xFFFF
                         : nr <= 16 ? (__mmask16)0
                                    : (__mmask16)((1u << (nr - 16)) - 1u);
    const float *a0 = a, *a3 = a + 3 * rsa, *a6 = a + 6 * rsa, *a9 = a + 9 * rsa;
    const ptrdiff_t r2 = 2 * rsa;
#define AVX512_ROW(ci0, ci1, src)                                                                            \
    t = _mm512_set1_ps(*(src));                                                                              \
    ci0 = _mm512_fmadd_ps(t, b0, ci0);                                                                       \
    ci1 = _mm512_fmadd_ps(t, b1, ci1);
#define AVX512_BODY                                                                                          \
    AVX512_ROW(c00, c01, a0)                                                                                 \
    AVX512_ROW(c10, c11, a0 + rsa)                                                                           \
    AVX512_ROW(c20, c21, a0 + r2)                                                                            \
    AVX512_ROW(c30, c31, a3)                                                                                 \
    AVX512_ROW(c40, c41, a3 + rsa)                                                                           \
    AVX512_ROW(c50, c51, a3 + r2)                                                                            \
    AVX512_ROW(c60, c61, a6)                                                                                 \
    AVX512_ROW(c70, c71, a6 + rsa)                                                                           \
    AVX512_ROW(c80, c81, a6 + r2)                                                                            \
    AVX512_ROW(c90, c91, a9)                                                                                 \
    AVX512_ROW(ca0, ca1, a9 + rsa)                                                                           \
    AVX512_ROW(cb0, cb1, a9 + r2)                                                                            \
    a0 += csa;                                                                                               \
    a3 += csa;                                                                                               \
    a6 += csa;                                                                                               \
    a9 += csa;                                                                                               \
    b += rsb;
    const int full = nr == AVX512_NR;
    if (full) {
        for (int k = 0; k < kc; k++) {
            const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
            __m512 t;
            AVX512_BODY
        }
    } else {
        for (int k = 0; k < kc; k++) {
            const __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
            __m512 t;
            AVX512_BODY
        }
    }
#undef AVX512_BODY
#undef AVX512_ROW
    __m512 vb0 = _mm512_setzero_ps(), vb1 = _mm512_setzero_ps();
    if (ep->bias) {
        vb0 = _mm512_maskz_loadu_ps(m0, ep->bias);
        vb1 = _mm512_maskz_loadu_ps(m1, ep->bias + 16);
    }
#define AVX512_STORE(i, ci0, ci1)                                                                            \
    if (i < mr) avx512_store_row(c + (i)*ldc, ci0, ci1, full, m0, m1, ep, vb0, vb1);
    AVX512_STORE(0, c00, c01)
    AVX512_STORE(1, c10, c11)
    AVX512_STORE(2, c20, c21)
    AVX512_STORE(3, c30, c31)
    AVX512_STORE(4, c40, c41)
    AVX512_STORE(5, c50, c51)
    AVX512_STORE(6, c60, c61)
    AVX512_STORE(7, c70, c71)
    AVX512_STORE(8, c80, c81)
    AVX512_STORE(9, c90, c91)
    AVX512_STORE(10, ca0, ca1)
    AVX512_STORE(11, cb0, cb1)
#undef AVX512_STORE
}

/* Transposed-B panel for the AVX-512 kernel: dst[k*32 + j] = B[(j0+j)*ldb + k0+k]
 * (zero for j >= nrr), by 16x16 in-register transposes: 16 rows of B (16 k
 * each) in, 16 vectors of 16 j out, instead of one scalar store per float.
 * dst is 64-byte aligned (panels start at multiples of 32*kc floats). */
__attribute__((target("avx512f"))) static void pack_bt_avx512(const float *B, ptrdiff_t ldb, int k0, int kc,
                                                              int j0, int nrr, float *dst)
{
    for (int jh = 0; jh < AVX512_NR; jh += 16) {
        const int nj = nrr - jh < 0 ? 0 : (nrr - jh > 16 ? 16 : nrr - jh);
        if (nj == 0) {
            for (int k = 0; k < kc; k++)
                _mm512_store_ps(dst + (ptrdiff_t)k * AVX512_NR + jh, _mm512_setzero_ps());
            continue;
        }
        const float *src = B + (ptrdiff_t)(j0 + jh) * ldb + k0;
        for (int k = 0; k < kc; k += 16) {
            const int nk = kc - k < 16 ? kc - k : 16;
            const __mmask16 km = nk == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nk) - 1u);
            __m512 r[16], u[16], v[16];
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                r[j] = j < nj ? _mm512_maskz_loadu_ps(km, src + (ptrdiff_t)j * ldb + k) : _mm512_setzero_ps();
                /* r[j][e] -> out[e][j]: pairs, quads, then 128-bit lanes twice */
#pragma GCC unroll 4
            for (int q = 0; q < 16; q += 4) {
                const __m512 t0 = _mm512_unpacklo_ps(r[q], r[q + 1]), t1 = _mm512_unpackhi_ps(r[q], r[q + 1]);
                const __m512 t2 = _mm512_unpacklo_ps(r[q + 2], r[q + 3]),
                             t3 = _mm512_unpackhi_ps(r[q + 2], r[q + 3]);
                u[q] = _mm512_shuffle_ps(t0, t2, 0x44);
                u[q + 1] = _mm512_shuffle_ps(t0, t2, 0xEE);
                u[q + 2] = _mm512_shuffle_ps(t1, t3, 0x44);
                u[q + 3] = _mm512_shuffle_ps(t1, t3, 0xEE);
            }
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                v[q] = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);
                v[4 + q] = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);
                v[8 + q] = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
                v[12 + q] = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
            }
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                r[q] = _mm512_shuffle_f32x4(v[q], v[8 + q], 0x88);
                r[8 + q] = _mm512_shuffle_f32x4(v[q], v[8 + q], 0xDD);
                r[4 + q] = _mm512_shuffle_f32x4(v[4 + q], v[12 + q], 0x88);
                r[12 + q] = _mm512_shuffle_f32x4(v[4 + q], v[12 + q], 0xDD);
            }
            float *d = dst + (ptrdiff_t)k * AVX512_NR + jh;
#pragma GCC unroll 16
            for (int e = 0; e < 16; e++)
                if (e < nk) _mm512_store_ps(d + (ptrdiff_t)e * AVX512_NR, r[e]);
        }
    }
}
#endif /* TML_OPS_X86 */

static gemm_kernel kernel_for(tml_isa isa)
{
    gemm_kernel k = {GENERIC_MR, GENERIC_NR, 0, ukr_generic, NULL};
#ifdef TML_OPS_X86
    if (isa == TML_ISA_AVX512) {
        k.mr = AVX512_MR;
        k.nr = AVX512_NR;
        k.b_partial_ok = 1;
        k.fn = ukr_avx512;
        k.pack_bt = pack_bt_avx512;
    } else if (isa == TML_ISA_AVX2) {
        k.mr = AVX2_MR;
        k.nr = AVX2_NR;
        k.fn = ukr_avx2;
    }
#else
    (void)isa;
#endif
    return k;
}

/* ---- packing -----------------------------------------------------------------------
 * A panel: dst[k*mr + i] = op(A)(i0+i, k0+k) for i < mrr, 0 for mrr <= i < mr.
 * B panels: for each NR-wide panel p of the nc columns starting at j0,
 * dst[p*kc*nr + k*nr + j] = op(B)(k0+k, j0+p*nr+j), 0 beyond the last column. */
static void pack_a(int trans_a, const float *A, ptrdiff_t lda, int i0, int mrr, int k0, int kc, int mr,
                   float *dst)
{
    if (trans_a) {
        for (int k = 0; k < kc; k++) {
            const float *s = A + (ptrdiff_t)(k0 + k) * lda + i0;
            float *d = dst + (ptrdiff_t)k * mr;
            int i = 0;
            for (; i < mrr; i++) d[i] = s[i];
            for (; i < mr; i++) d[i] = 0.0f;
        }
    } else {
        for (int i = 0; i < mrr; i++) {
            const float *s = A + (ptrdiff_t)(i0 + i) * lda + k0;
            for (int k = 0; k < kc; k++) dst[(ptrdiff_t)k * mr + i] = s[k];
        }
        for (int i = mrr; i < mr; i++)
            for (int k = 0; k < kc; k++) dst[(ptrdiff_t)k * mr + i] = 0.0f;
    }
}

static void pack_b_panel(int trans_b, const float *B, ptrdiff_t ldb, int k0, int kc, int j0, int nrr, int nr,
                         float *dst)
{
    if (!trans_b) {
        for (int k = 0; k < kc; k++) {
            const float *s = B + (ptrdiff_t)(k0 + k) * ldb + j0;
            float *d = dst + (ptrdiff_t)k * nr;
            int j = 0;
            for (; j < nrr; j++) d[j] = s[j];
            for (; j < nr; j++) d[j] = 0.0f;
        }
    } else {
        for (int j = 0; j < nrr; j++) {
            const float *s = B + (ptrdiff_t)(j0 + j) * ldb + k0;
            for (int k = 0; k < kc; k++) dst[(ptrdiff_t)k * nr + j] = s[k];
        }
        for (int j = nrr; j < nr; j++)
            for (int k = 0; k < kc; k++) dst[(ptrdiff_t)k * nr + j] = 0.0f;
    }
}

/* ---- the serial algorithm on one tile of C -------------------------------------------- */

typedef struct gemm_args {
    int trans_a, trans_b, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    ptrdiff_t lda, ldb, ldc;
    const float *bias; /* (N) added after the last K block, or NULL */
    tml_act act;       /* applied after the bias */
} gemm_args;

static int imin(int a, int b)
{
    return a < b ? a : b;
}

/* Length of the K blocks: equal blocks of at most GEMM_KC, from K alone. */
static int k_block(int K)
{
    int nkb = (K + GEMM_KC - 1) / GEMM_KC;
    return (K + nkb - 1) / nkb;
}

/* Computes rows [m0, m1) x columns [n0, n1) of C. A is read in place (the
 * kernel takes row and k strides) except for a partial panel at the M edge,
 * which is packed with zero rows; measured faster than packing on Zen 5 for
 * every shape of the benchmark. B is read in place when it is not transposed
 * and at most 8 row panels share each B block; otherwise it is packed. */
static void gemm_tile(const gemm_kernel *kr, const gemm_args *g, int m0, int m1, int n0, int n1)
{
    _Alignas(64) float bbuf[GEMM_KC * GEMM_NC];
    _Alignas(64) float abuf[GEMM_KC * GEMM_MR_MAX];
    const int mr = kr->mr, nr = kr->nr, K = g->K;
    const int kcb = k_block(K);
    const int b_direct = !g->trans_b && (m1 - m0) <= 8 * mr;
    for (int jc = n0; jc < n1; jc += GEMM_NC) {
        const int nc = imin(GEMM_NC, n1 - jc);
        for (int pc = 0; pc < K; pc += kcb) {
            const int kc = imin(kcb, K - pc);
            /* first K block: beta; later ones accumulate; the last adds bias + act */
            const int last = pc + kc == K;
            ukr_epilogue ep = {g->alpha, pc == 0 ? g->beta : 1.0f, NULL, last ? g->act : TML_ACT_NONE};
            /* B panels for this (jc, pc) block: packed into bbuf or in place */
            for (int jr = 0; jr < nc; jr += nr) {
                const int nrr = imin(nr, nc - jr);
                if (g->trans_b && kr->pack_bt)
                    kr->pack_bt(g->B, g->ldb, pc, kc, jc + jr, nrr, bbuf + (ptrdiff_t)jr * kc);
                else if (!b_direct || (nrr < nr && !kr->b_partial_ok))
                    pack_b_panel(g->trans_b, g->B, g->ldb, pc, kc, jc + jr, nrr, nr,
                                 bbuf + (ptrdiff_t)jr * kc);
            }
            for (int ic = m0; ic < m1; ic += mr) {
                const int mrr = imin(mr, m1 - ic);
                const float *ap;
                ptrdiff_t rsa, csa;
                if (mrr == mr) { /* full panel: read A in place, either layout */
                    ap = g->trans_a ? g->A + (ptrdiff_t)pc * g->lda + ic : g->A + (ptrdiff_t)ic * g->lda + pc;
                    rsa = g->trans_a ? 1 : g->lda;
                    csa = g->trans_a ? g->lda : 1;
                } else {
                    pack_a(g->trans_a, g->A, g->lda, ic, mrr, pc, kc, mr, abuf);
                    ap = abuf;
                    rsa = 1;
                    csa = mr;
                }
                float *crow = g->C + (ptrdiff_t)ic * g->ldc + jc;
                for (int jr = 0; jr < nc; jr += nr) {
                    const int nrr = imin(nr, nc - jr);
                    const float *bp;
                    ptrdiff_t rsb;
                    if (!b_direct || (nrr < nr && !kr->b_partial_ok)) {
                        bp = bbuf + (ptrdiff_t)jr * kc;
                        rsb = nr;
                    } else {
                        bp = g->B + (ptrdiff_t)pc * g->ldb + jc + jr;
                        rsb = g->ldb;
                    }
                    ep.bias = last && g->bias ? g->bias + jc + jr : NULL;
                    kr->fn(kc, ap, rsa, csa, bp, rsb, crow + jr, g->ldc, mrr, nrr, &ep);
                }
            }
        }
    }
}

/* C = beta * C (beta 0: zero without reading). */
static void scale_c(int M, int N, float beta, float *C, ptrdiff_t ldc)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (ptrdiff_t)i * ldc;
        if (beta == 0.0f)
            memset(c, 0, sizeof(float) * (size_t)N);
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++) c[j] *= beta;
    }
}

/* ---- K split -------------------------------------------------------------------------
 * For products whose C is tiny but whose K is huge (dW of a small conv layer:
 * M = 20 filters, N = 25 taps, K = batch * pixels) the tile grid has one tile,
 * so K is split into `parts` slices (a function of the shape only), each
 * computed into its own partial C on the stack; the partials are then added in
 * slice order. */
#define KSPLIT_MAX_MN 1024    /* partial C (floats) */
#define KSPLIT_MAX_PARTS 8    /* 8 * 1024 floats = 32 KiB of partials (+ 208 KiB in gemm_tile) */
#define KSPLIT_MIN_SLICE 2048 /* K per slice */

static int ksplit_parts(int M, int N, int K)
{
    if ((int64_t)M * N > KSPLIT_MAX_MN || K < 2 * KSPLIT_MIN_SLICE) return 1;
    int parts = K / KSPLIT_MIN_SLICE;
    return parts > KSPLIT_MAX_PARTS ? KSPLIT_MAX_PARTS : parts;
}

static void gemm_ksplit_part(const gemm_kernel *kr, const gemm_args *g, int parts, int s, float *partial)
{
    const int slice = (g->K + parts - 1) / parts;
    const int k0 = s * slice, k1 = imin(g->K, k0 + slice);
    gemm_args p = *g;
    p.K = k1 - k0;
    p.alpha = 1.0f;
    p.beta = 0.0f;
    p.bias = NULL;
    p.act = TML_ACT_NONE;
    p.A = g->trans_a ? g->A + (ptrdiff_t)k0 * g->lda : g->A + k0;
    p.B = g->trans_b ? g->B + k0 : g->B + (ptrdiff_t)k0 * g->ldb;
    p.C = partial + (ptrdiff_t)s * g->M * g->N;
    p.ldc = g->N;
    if (p.K > 0)
        gemm_tile(kr, &p, 0, p.M, 0, p.N);
    else
        memset(p.C, 0, sizeof(float) * (size_t)g->M * (size_t)g->N);
}

static void gemm_ksplit(const gemm_kernel *kr, const gemm_args *g, int parts, int nt)
{
    _Alignas(64) float partial[KSPLIT_MAX_PARTS * KSPLIT_MAX_MN];
#ifdef TML_OPS_OMP
    if (nt > 1) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int s = 0; s < parts; s++) gemm_ksplit_part(kr, g, parts, s, partial);
    } else
#endif
    {
        (void)nt;
        for (int s = 0; s < parts; s++) gemm_ksplit_part(kr, g, parts, s, partial);
    }
    const ptrdiff_t mn = (ptrdiff_t)g->M * g->N;
    for (int i = 0; i < g->M; i++) {
        float *c = g->C + (ptrdiff_t)i * g->ldc;
        for (int j = 0; j < g->N; j++) {
            const float *p = partial + (ptrdiff_t)i * g->N + j;
            float acc = p[0];
            for (int s = 1; s < parts; s++) acc += p[s * mn];
            float v = g->beta == 0.0f ? g->alpha * acc : g->alpha * acc + g->beta * c[j];
            if (g->bias) v += g->bias[j];
            c[j] = tml_act_apply_f32(g->act, v);
        }
    }
}

/* ---- entry points ---------------------------------------------------------------------- */

void tml_sgemm_bias_act_ex(tml_isa isa, unsigned flags, int trans_a, int trans_b, int M, int N, int K,
                           float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                           float *C, int ldc, const float *bias, tml_act act)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        tml_ops_bias_act_f32(M, N, ldc, bias, act, C);
        return;
    }
    if (isa > tml_cpu_isa()) isa = tml_cpu_isa(); /* never run instructions the CPU lacks */
    const gemm_kernel kr = kernel_for(isa);
    const gemm_args g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, bias, act};
    int nt = 1;
#ifdef TML_OPS_OMP
    if (!(flags & TML_GEMM_SERIAL) && 2.0 * M * N * K >= TML_OPS_PAR_FLOPS && !omp_in_parallel())
        nt = omp_get_max_threads();
#endif
    const int parts = (flags & TML_GEMM_ROW_STABLE) ? 1 : ksplit_parts(M, N, K);
    if (parts > 1) {
        gemm_ksplit(&kr, &g, parts, nt);
        return;
    }
    if (nt <= 1) {
        gemm_tile(&kr, &g, 0, M, 0, N);
        return;
    }
#ifdef TML_OPS_OMP
#define ROUND_UP(x, m) (((x) + (m)-1) / (m) * (m))
    /* Tile grid with about 4 tiles per thread (dynamic schedule: balance).
     * Cut the longer side: every row tile reads (and when needed packs) the
     * whole of op(B), every column tile the whole of op(A). */
    int mt = M, ntile = N;
    const int want = 4 * nt;
    if (M >= N) {
        mt = ROUND_UP((M + want - 1) / want, kr.mr);
        if (mt < 4 * kr.mr) mt = 4 * kr.mr;
        ntile = ROUND_UP(N, kr.nr) >= GEMM_NC ? GEMM_NC : N;
    } else {
        ntile = ROUND_UP((N + want - 1) / want, kr.nr);
        if (ntile < 2 * kr.nr) ntile = 2 * kr.nr;
        if (ntile > GEMM_NC) ntile = GEMM_NC;
        mt = M;
    }
    const int tm = (M + mt - 1) / mt, tn = (N + ntile - 1) / ntile;
    const int tiles = tm * tn;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int t = 0; t < tiles; t++) {
        const int bi = t / tn, bj = t % tn;
        const int m0 = bi * mt, n0 = bj * ntile;
        gemm_tile(&kr, &g, m0, imin(M, m0 + mt), n0, imin(N, n0 + ntile));
    }
#undef ROUND_UP
#endif
}

void tml_sgemm_ex(tml_isa isa, unsigned flags, int trans_a, int trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    tml_sgemm_bias_act_ex(isa, flags, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL,
                          TML_ACT_NONE);
}

void tml_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    tml_sgemm_ex(tml_cpu_isa(), 0, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
