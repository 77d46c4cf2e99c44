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
 * into NR-wide column panels (kc x NR floats each, L2 resident) unless the
 * caller packed B once (tml_sgemm_packed_ex: conv and dense weights); then
 * for each MR-row panel of op(A) (kc x MR, L1 resident; read in place through
 * row / k strides) the micro-kernel runs over the B panels, keeping an MR x NR
 * tile of C in registers for the whole K block. The first K block applies
 * beta, later ones add (C = alpha*acc + C). Fewer K blocks mean fewer passes
 * over C: 512 (two blocks for LeNet-300's K = 784) measured 2-3% faster than
 * 256 on the batch-256 dense layers.
 *
 * Packing buffers live on the stack (GEMM_KC * (GEMM_NC + GEMM_MR_MAX) floats
 * = 224 KiB per thread, plus 32 KiB of K-split partials on the calling
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
 *   acc (mr, nr) = sum over k < kc of a[i*rsa + k*csa] * b[k*rsb + j]
 *   v = alpha * acc + beta * c[i*ldc + j]   (beta 0: c not read)
 *   v = v + bias[j]                         (bias NULL: none)
 *   v = v + res[i*ldr + j]                  (res NULL: none)
 *   c[i*ldc + j] = act(v)
 *   for i < mr, j < nr.
 * The x86 kernels come in one version per row count (fn[m], m <= MR) and read
 * exactly mr rows of `a`; the portable kernel always reads MR rows (the M edge
 * is packed with zero rows). `b` must have NR readable columns unless the
 * kernel family sets b_partial_ok (then only nr columns are read). Every
 * accumulator sums k in increasing order from 0 with one multiply-add per k,
 * so an element's value does not depend on the tile shape that computed it. */
typedef struct ukr_epilogue {
    float alpha, beta;
    const float *bias; /* (nr) for this tile's columns, or NULL */
    const float *res;  /* residual for this tile (row stride ldr), or NULL */
    ptrdiff_t ldr;
    tml_act act;
    int b_padded; /* b is a packed panel, zero beyond nr: loads need no mask */
} ukr_epilogue;

typedef void (*ukr_fn)(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t rsb,
                       float *c, ptrdiff_t ldc, int mr, int nr, const ukr_epilogue *ep);
/* One row of A against np <= wide_p panels of B, panel p at b + p*psb, the
 * last one nr_last columns wide (batch-1 dense: several panels at once give
 * enough independent accumulators to hide the multiply-add latency). */
typedef void (*ukr_wide_fn)(int kc, const float *a, ptrdiff_t csa, const float *b, ptrdiff_t rsb,
                            ptrdiff_t psb, float *c, int np, int nr_last, const ukr_epilogue *ep);

/* Packs one NR-wide panel of a transposed B (see pack_b_panel); NULL: generic. */
typedef void (*pack_bt_fn)(const float *B, ptrdiff_t ldb, int k0, int kc, int j0, int nrr, int nr, float *dst);

#ifndef GEMM_KC
#define GEMM_KC 512 /* K block: a 12x512 A panel is 24 KiB (L1) */
#endif
#ifndef GEMM_NC
#define GEMM_NC 96 /* columns per B block: 512x96 floats = 192 KiB (L2) */
#endif
#define GEMM_MR_MAX 16
/* Most columns per B block (when B was packed once, or short K blocks leave
 * room in the packing buffer): the block stays in L2 while every row panel
 * of A passes over it, so wider blocks mean fewer passes over A. */
#ifndef GEMM_NC_PACKED
#define GEMM_NC_PACKED 384
#endif
/* K block when B was packed once (no packing buffer bounds it): one block
 * for K up to 1024 means one pass over C (LeNet-300's fc1, K = 784: 1.6%
 * faster than two blocks of 392, the 12x784 A panel streaming from L2). */
#ifndef GEMM_KC_PACKED
#define GEMM_KC_PACKED 1024
#endif

typedef struct gemm_kernel {
    int mr, nr;
    int b_partial_ok;            /* reads only nr columns of b (masked loads) */
    ukr_fn fn[GEMM_MR_MAX + 1];  /* fn[m]: an m-row tile; fn[0] NULL: only fn[mr], A edge packed */
    ukr_wide_fn wide;            /* or NULL */
    int wide_p;                  /* panels per wide call */
    pack_bt_fn pack_bt;
} gemm_kernel;

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
        const float *ri = ep->res ? ep->res + i * ep->ldr : NULL;
        for (int j = 0; j < nr; j++) {
            float v = ep->beta == 0.0f ? ep->alpha * acc[i][j] : ep->alpha * acc[i][j] + ep->beta * ci[j];
            if (ep->bias) v += ep->bias[j];
            if (ri) v += ri[j];
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

/* The register-tile kernels are compiled with optimization even in
 * unoptimized (Debug / sanitizer) builds: at -O0 their accumulator arrays live
 * in memory and the test suite's training runs 2.5x slower. */
#ifdef __OPTIMIZE__
#define TML_KERNEL_OPT
#else
#define TML_KERNEL_OPT __attribute__((optimize("O2")))
#endif
#define TML_AVX2_FN __attribute__((target("avx2,fma"))) TML_KERNEL_OPT
#define TML_AVX512_FN __attribute__((target("avx512f"))) TML_KERNEL_OPT
#define TML_KERNEL_INLINE static inline __attribute__((always_inline))

/* AVX2 + FMA: up to 6 x 16 tiles, 12 ymm accumulators. Rows are addressed
 * from two bases (rows 0-2 and 3-5) so the loop needs few general registers
 * whether A is packed (rsa = 1) or read in place (rsa = lda). */
#define AVX2_MR 6
#define AVX2_NR 16

/* Stores one row of 16 (two vectors), lane masks m0/m1 (all lanes when full). */
TML_AVX2_FN TML_KERNEL_INLINE void avx2_store_row(float *p, const float *r, __m256 a0, __m256 a1, int full, __m256i m0,
                                                  __m256i m1, const ukr_epilogue *ep, __m256 vb0, __m256 vb1)
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
    if (r) {
        r0 = _mm256_add_ps(r0, full ? _mm256_loadu_ps(r) : _mm256_maskload_ps(r, m0));
        r1 = _mm256_add_ps(r1, full ? _mm256_loadu_ps(r + 8) : _mm256_maskload_ps(r + 8, m1));
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

/* The MR x 16 AVX2 tile for a constant MR (1..6): the loops over rows are
 * unrolled and the accumulator array lives in registers. */
TML_AVX2_FN TML_KERNEL_INLINE void ukr_avx2_tpl(const int MR, int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                                                const float *b, ptrdiff_t rsb, float *c, ptrdiff_t ldc, int mr,
                                                int nr, const ukr_epilogue *ep)
{
    __m256 acc[AVX2_MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    const float *a0 = a, *a3 = a + 3 * rsa;
    const ptrdiff_t r2 = 2 * rsa;
    if (nr <= 8) {
        /* a panel's last 8 columns or fewer (LeNet-5's 20 and 50 outputs):
         * the first vector only, the same operations on its lanes */
        for (int k = 0; k < kc; k++) {
            const __m256 b0 = _mm256_loadu_ps(b);
#pragma GCC unroll 6
            for (int i = 0; i < MR; i++) {
                const float *ai = (i < 3 ? a0 : a3) + (i % 3 == 0 ? 0 : i % 3 == 1 ? rsa : r2);
                acc[i][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai), b0, acc[i][0]);
            }
            a0 += csa;
            a3 += csa;
            b += rsb;
        }
        kc = 0;
    }
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const float *ai = (i < 3 ? a0 : a3) + (i % 3 == 0 ? 0 : i % 3 == 1 ? rsa : r2);
            const __m256 t = _mm256_broadcast_ss(ai);
            acc[i][0] = _mm256_fmadd_ps(t, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(t, b1, acc[i][1]);
        }
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
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
        if (i < mr)
            avx2_store_row(c + i * ldc, ep->res ? ep->res + i * ep->ldr : NULL, acc[i][0], acc[i][1], full, m0, m1,
                           ep, vb0, vb1);
}

/* One row against NP (1..4) 16-column panels, 2 NP accumulators; the last
 * panel nr_last columns (masked loads and stores beyond). */
#define AVX2_WIDE_P 4
TML_AVX2_FN TML_KERNEL_INLINE void ukr_avx2_wide_tpl(const int NP, int kc, const float *a, ptrdiff_t csa,
                                                     const float *b, ptrdiff_t rsb, ptrdiff_t psb, float *c,
                                                     int nr_last, const ukr_epilogue *ep)
{
    __m256 acc[AVX2_WIDE_P][2];
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), all = _mm256_set1_epi32(-1);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr_last), lanes);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr_last - 8), lanes);
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) acc[p][0] = acc[p][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const __m256 t = _mm256_broadcast_ss(a);
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) {
            const float *bp = b + p * psb;
            const __m256 b0 = p < NP - 1 ? _mm256_loadu_ps(bp) : _mm256_maskload_ps(bp, m0);
            const __m256 b1 = p < NP - 1 ? _mm256_loadu_ps(bp + 8) : _mm256_maskload_ps(bp + 8, m1);
            acc[p][0] = _mm256_fmadd_ps(t, b0, acc[p][0]);
            acc[p][1] = _mm256_fmadd_ps(t, b1, acc[p][1]);
        }
        a += csa;
        b += rsb;
    }
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) {
        ukr_epilogue e = *ep;
        const int last = p == NP - 1, full = !last || nr_last == AVX2_NR;
        const __m256i k0 = last ? m0 : all, k1 = last ? m1 : all;
        if (e.bias) e.bias += p * AVX2_NR;
        if (e.res) e.res += p * AVX2_NR;
        const __m256 vb0 = e.bias ? _mm256_maskload_ps(e.bias, k0) : _mm256_setzero_ps();
        const __m256 vb1 = e.bias ? _mm256_maskload_ps(e.bias + 8, k1) : _mm256_setzero_ps();
        avx2_store_row(c + p * AVX2_NR, e.res, acc[p][0], acc[p][1], full, k0, k1, &e, vb0, vb1);
    }
}

TML_AVX2_FN static void ukr_avx2_wide(int kc, const float *a, ptrdiff_t csa, const float *b, ptrdiff_t rsb,
                                      ptrdiff_t psb, float *c, int np, int nr_last, const ukr_epilogue *ep)
{
    switch (np) {
    case 1: ukr_avx2_wide_tpl(1, kc, a, csa, b, rsb, psb, c, nr_last, ep); break;
    case 2: ukr_avx2_wide_tpl(2, kc, a, csa, b, rsb, psb, c, nr_last, ep); break;
    case 3: ukr_avx2_wide_tpl(3, kc, a, csa, b, rsb, psb, c, nr_last, ep); break;
    default: ukr_avx2_wide_tpl(4, kc, a, csa, b, rsb, psb, c, nr_last, ep); break;
    }
}

#define AVX2_UKR(m)                                                                                          \
    TML_AVX2_FN static void ukr_avx2_m##m(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, \
                                          ptrdiff_t rsb, float *c, ptrdiff_t ldc, int mr, int nr,              \
                                          const ukr_epilogue *ep)                                              \
    {                                                                                                        \
        ukr_avx2_tpl(m, kc, a, rsa, csa, b, rsb, c, ldc, mr, nr, ep);                                        \
    }
AVX2_UKR(1)
AVX2_UKR(2)
AVX2_UKR(3)
AVX2_UKR(4)
AVX2_UKR(5)
AVX2_UKR(6)
#undef AVX2_UKR

/* AVX-512F: up to 12 x 32 tiles (24 zmm accumulators, 2 B vectors, 1
 * broadcast), or 12 x 16 for layers whose width is better served by 16-column
 * panels (N = 16, 48, 80 ...). Rows come from four bases (rows 0-2, 3-5, 6-8,
 * 9-11). B columns beyond nr are never read (masked loads), so B may be read
 * in place up to the matrix edge. */
#define AVX512_MR 12
#define AVX512_NR 32

TML_AVX512_FN TML_KERNEL_INLINE void avx512_store_row(float *p, const float *r, const int NV, __m512 a0, __m512 a1,
                                                      int full, __mmask16 m0, __mmask16 m1,
                                                      const ukr_epilogue *ep, __m512 vb0, __m512 vb1)
{
    const __m512 va = _mm512_set1_ps(ep->alpha);
    __m512 r0, r1 = _mm512_setzero_ps();
    if (ep->beta == 0.0f) {
        r0 = _mm512_mul_ps(va, a0);
        if (NV > 1) r1 = _mm512_mul_ps(va, a1);
    } else {
        const __m512 vb = _mm512_set1_ps(ep->beta);
        const __m512 c0 = full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m0, p);
        r0 = _mm512_fmadd_ps(va, a0, _mm512_mul_ps(vb, c0));
        if (NV > 1) {
            const __m512 c1 = full ? _mm512_loadu_ps(p + 16) : _mm512_maskz_loadu_ps(m1, p + 16);
            r1 = _mm512_fmadd_ps(va, a1, _mm512_mul_ps(vb, c1));
        }
    }
    if (ep->bias) {
        r0 = _mm512_add_ps(r0, vb0);
        if (NV > 1) r1 = _mm512_add_ps(r1, vb1);
    }
    if (r) {
        r0 = _mm512_add_ps(r0, full ? _mm512_loadu_ps(r) : _mm512_maskz_loadu_ps(m0, r));
        if (NV > 1) r1 = _mm512_add_ps(r1, full ? _mm512_loadu_ps(r + 16) : _mm512_maskz_loadu_ps(m1, r + 16));
    }
    r0 = ACT512(ep->act, r0);
    if (full)
        _mm512_storeu_ps(p, r0);
    else
        _mm512_mask_storeu_ps(p, m0, r0);
    if (NV > 1) {
        r1 = ACT512(ep->act, r1);
        if (full)
            _mm512_storeu_ps(p + 16, r1);
        else
            _mm512_mask_storeu_ps(p + 16, m1, r1);
    }
}

/* The MR x (16 NV) AVX-512 tile for constant MR (1..12) and NV (1, 2). */
TML_AVX512_FN TML_KERNEL_INLINE void ukr_avx512_tpl(const int MR, const int NV, int kc, const float *a, ptrdiff_t rsa,
                                                    ptrdiff_t csa, const float *b, ptrdiff_t rsb, float *c,
                                                    ptrdiff_t ldc, int mr, int nr, const ukr_epilogue *ep)
{
    __m512 acc[AVX512_MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1u);
    const __mmask16 m1 = nr >= 32   ? (__mmask16)0xFFFF
                         : nr <= 16 ? (__mmask16)0
                                    : (__mmask16)((1u << (nr - 16)) - 1u);
    const float *a0 = a, *a3 = a + 3 * rsa, *a6 = a + 6 * rsa, *a9 = a + 9 * rsa;
    const ptrdiff_t r2 = 2 * rsa;
    const int full = nr == 16 * NV;
#define AVX512_ROWS                                                                                          \
    _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++)                                                   \
    {                                                                                                        \
        const float *ai = (i < 3 ? a0 : i < 6 ? a3 : i < 9 ? a6 : a9) + (i % 3 == 0 ? 0 : i % 3 == 1 ? rsa : r2); \
        const __m512 t = _mm512_set1_ps(*ai);                                                                \
        acc[i][0] = _mm512_fmadd_ps(t, b0, acc[i][0]);                                                      \
        if (NV > 1) acc[i][1] = _mm512_fmadd_ps(t, b1, acc[i][1]);                                          \
    }                                                                                                        \
    a0 += csa;                                                                                               \
    a3 += csa;                                                                                               \
    a6 += csa;                                                                                               \
    a9 += csa;                                                                                               \
    b += rsb;
    /* masked loads only for a partial panel read in place (mask registers
     * in the loop cost a reload each step) */
    if (full || ep->b_padded) {
        for (int k = 0; k < kc; k++) {
            const __m512 b0 = _mm512_loadu_ps(b), b1 = NV > 1 ? _mm512_loadu_ps(b + 16) : b0;
            AVX512_ROWS
        }
    } else {
        for (int k = 0; k < kc; k++) {
            const __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = NV > 1 ? _mm512_maskz_loadu_ps(m1, b + 16) : b0;
            AVX512_ROWS
        }
    }
#undef AVX512_ROWS
    __m512 vb0 = _mm512_setzero_ps(), vb1 = _mm512_setzero_ps();
    if (ep->bias) {
        vb0 = _mm512_maskz_loadu_ps(m0, ep->bias);
        if (NV > 1) vb1 = _mm512_maskz_loadu_ps(m1, ep->bias + 16);
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        if (i < mr)
            avx512_store_row(c + i * ldc, ep->res ? ep->res + i * ep->ldr : NULL, NV, acc[i][0], acc[i][1], full,
                             m0, m1, ep, vb0, vb1);
}

/* One row against NP (1 .. 8 / NV) panels of 16 NV columns: up to 8
 * independent accumulators (the multiply-add latency is 4 cycles, 2 units);
 * the last panel nr_last columns (masked loads and stores beyond). */
#define AVX512_WIDE_ACC 8
TML_AVX512_FN TML_KERNEL_INLINE void ukr_avx512_wide_tpl(const int NV, const int NP, int kc, const float *a,
                                                         ptrdiff_t csa, const float *b, ptrdiff_t rsb, ptrdiff_t psb,
                                                         float *c, int nr_last, const ukr_epilogue *ep)
{
    __m512 acc[AVX512_WIDE_ACC];
    const __mmask16 m0 = nr_last >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr_last) - 1u);
    const __mmask16 m1 = nr_last >= 32   ? (__mmask16)0xFFFF
                         : nr_last <= 16 ? (__mmask16)0
                                         : (__mmask16)((1u << (nr_last - 16)) - 1u);
    /* loads of a zero-padded packed panel need no mask */
    const __mmask16 l0 = ep->b_padded ? (__mmask16)0xFFFF : m0, l1 = ep->b_padded ? (__mmask16)0xFFFF : m1;
#pragma GCC unroll 8
    for (int i = 0; i < NP * NV; i++) acc[i] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const __m512 t = _mm512_set1_ps(*a);
#pragma GCC unroll 8
        for (int p = 0; p < NP; p++)
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) {
                const float *bp = b + p * psb + 16 * v;
                const __m512 bv = p < NP - 1 ? _mm512_loadu_ps(bp) : _mm512_maskz_loadu_ps(v ? l1 : l0, bp);
                acc[p * NV + v] = _mm512_fmadd_ps(t, bv, acc[p * NV + v]);
            }
        a += csa;
        b += rsb;
    }
#pragma GCC unroll 8
    for (int p = 0; p < NP; p++) {
        ukr_epilogue e = *ep;
        const int last = p == NP - 1, full = !last || nr_last == 16 * NV;
        const __mmask16 k0 = last ? m0 : (__mmask16)0xFFFF, k1 = last ? m1 : (__mmask16)0xFFFF;
        if (e.bias) e.bias += p * 16 * NV;
        if (e.res) e.res += p * 16 * NV;
        const __m512 vb0 = e.bias ? _mm512_maskz_loadu_ps(k0, e.bias) : _mm512_setzero_ps();
        const __m512 vb1 = e.bias && NV > 1 ? _mm512_maskz_loadu_ps(k1, e.bias + 16) : _mm512_setzero_ps();
        avx512_store_row(c + p * 16 * NV, e.res, NV, acc[p * NV], NV > 1 ? acc[p * NV + 1] : acc[p * NV], full, k0,
                         k1, &e, vb0, vb1);
    }
}

#define AVX512_UKR(m, nv)                                                                                    \
    TML_AVX512_FN static void ukr_avx512_m##m##_v##nv(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa,     \
                                                      const float *b, ptrdiff_t rsb, float *c, ptrdiff_t ldc,  \
                                                      int mr, int nr, const ukr_epilogue *ep)                  \
    {                                                                                                        \
        ukr_avx512_tpl(m, nv, kc, a, rsa, csa, b, rsb, c, ldc, mr, nr, ep);                                  \
    }
#define AVX512_UKRS(nv)                                                                                      \
    AVX512_UKR(1, nv)                                                                                        \
    AVX512_UKR(2, nv)                                                                                        \
    AVX512_UKR(3, nv)                                                                                        \
    AVX512_UKR(4, nv)                                                                                        \
    AVX512_UKR(5, nv)                                                                                        \
    AVX512_UKR(6, nv)                                                                                        \
    AVX512_UKR(7, nv)                                                                                        \
    AVX512_UKR(8, nv)                                                                                        \
    AVX512_UKR(9, nv)                                                                                        \
    AVX512_UKR(10, nv)                                                                                       \
    AVX512_UKR(11, nv)                                                                                       \
    AVX512_UKR(12, nv)                                                                                       \
    TML_AVX512_FN static void ukr_avx512_wide_v##nv(int kc, const float *a, ptrdiff_t csa, const float *b,    \
                                                    ptrdiff_t rsb, ptrdiff_t psb, float *c, int np,            \
                                                    int nr_last, const ukr_epilogue *ep)                       \
    {                                                                                                        \
        switch (np) {                                                                                        \
        case 1: ukr_avx512_wide_tpl(nv, 1, kc, a, csa, b, rsb, psb, c, nr_last, ep); break;                  \
        case 2: ukr_avx512_wide_tpl(nv, 2, kc, a, csa, b, rsb, psb, c, nr_last, ep); break;                  \
        case 3: ukr_avx512_wide_tpl(nv, 3, kc, a, csa, b, rsb, psb, c, nr_last, ep); break;                  \
        case 4: ukr_avx512_wide_tpl(nv, 4, kc, a, csa, b, rsb, psb, c, nr_last, ep); break;                  \
        case 5: ukr_avx512_wide_tpl(nv, 5 * (nv == 1), kc, a, csa, b, rsb, psb, c, nr_last, ep); break;      \
        case 6: ukr_avx512_wide_tpl(nv, 6 * (nv == 1), kc, a, csa, b, rsb, psb, c, nr_last, ep); break;      \
        case 7: ukr_avx512_wide_tpl(nv, 7 * (nv == 1), kc, a, csa, b, rsb, psb, c, nr_last, ep); break;      \
        default: ukr_avx512_wide_tpl(nv, 8 * (nv == 1), kc, a, csa, b, rsb, psb, c, nr_last, ep); break;     \
        }                                                                                                    \
    }
AVX512_UKRS(1)
AVX512_UKRS(2)
#undef AVX512_UKRS
#undef AVX512_UKR

/* Transposed-B panel for the AVX-512 kernels (nr = 16 or 32):
 * dst[k*nr + j] = B[(j0+j)*ldb + k0+k] (zero for j >= nrr), by 16x16
 * in-register transposes: 16 rows of B (16 k each) in, 16 vectors of 16 j
 * out, instead of one scalar store per float. */
TML_AVX512_FN static void pack_bt_avx512(const float *B, ptrdiff_t ldb, int k0, int kc, int j0, int nrr, int nr,
                                         float *dst)
{
    for (int jh = 0; jh < nr; jh += 16) {
        const int nj = nrr - jh < 0 ? 0 : (nrr - jh > 16 ? 16 : nrr - jh);
        if (nj == 0) {
            for (int k = 0; k < kc; k++) _mm512_storeu_ps(dst + (ptrdiff_t)k * nr + jh, _mm512_setzero_ps());
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
            float *d = dst + (ptrdiff_t)k * nr + jh;
#pragma GCC unroll 16
            for (int e = 0; e < 16; e++)
                if (e < nk) _mm512_storeu_ps(d + (ptrdiff_t)e * nr, r[e]);
        }
    }
}
/* 16-column panels serve an N better than 32-column ones when they waste
 * fewer lanes: N mod 32 in 1..16 (16, 48, 10, 300 ...). */
static int avx512_nv(int N)
{
    return (N + 15) / 16 * 16 < (N + 31) / 32 * 32 ? 1 : 2;
}
#endif /* TML_OPS_X86 */


/* The kernel family for `isa` on a product with N columns. The choice only
 * groups elements into tiles differently: every element is computed by the
 * same operations whatever the family (see the micro-kernel contract). */
static gemm_kernel kernel_for(tml_isa isa, int N)
{
    gemm_kernel k;
    memset(&k, 0, sizeof k);
    k.mr = GENERIC_MR;
    k.nr = GENERIC_NR;
    k.fn[GENERIC_MR] = ukr_generic;
#ifdef TML_OPS_X86
    if (isa == TML_ISA_AVX512) {
        static const ukr_fn v1[AVX512_MR + 1] = {NULL,
                                                 ukr_avx512_m1_v1,
                                                 ukr_avx512_m2_v1,
                                                 ukr_avx512_m3_v1,
                                                 ukr_avx512_m4_v1,
                                                 ukr_avx512_m5_v1,
                                                 ukr_avx512_m6_v1,
                                                 ukr_avx512_m7_v1,
                                                 ukr_avx512_m8_v1,
                                                 ukr_avx512_m9_v1,
                                                 ukr_avx512_m10_v1,
                                                 ukr_avx512_m11_v1,
                                                 ukr_avx512_m12_v1};
        static const ukr_fn v2[AVX512_MR + 1] = {NULL,
                                                 ukr_avx512_m1_v2,
                                                 ukr_avx512_m2_v2,
                                                 ukr_avx512_m3_v2,
                                                 ukr_avx512_m4_v2,
                                                 ukr_avx512_m5_v2,
                                                 ukr_avx512_m6_v2,
                                                 ukr_avx512_m7_v2,
                                                 ukr_avx512_m8_v2,
                                                 ukr_avx512_m9_v2,
                                                 ukr_avx512_m10_v2,
                                                 ukr_avx512_m11_v2,
                                                 ukr_avx512_m12_v2};
        const int nv = avx512_nv(N);
        k.mr = AVX512_MR;
        k.nr = 16 * nv;
        k.b_partial_ok = 1;
        memcpy(k.fn, nv == 1 ? v1 : v2, sizeof v1);
        k.wide = nv == 1 ? ukr_avx512_wide_v1 : ukr_avx512_wide_v2;
        k.wide_p = AVX512_WIDE_ACC / nv;
        k.pack_bt = pack_bt_avx512;
    } else if (isa == TML_ISA_AVX2) {
        static const ukr_fn f[AVX2_MR + 1] = {NULL,          ukr_avx2_m1, ukr_avx2_m2, ukr_avx2_m3,
                                              ukr_avx2_m4, ukr_avx2_m5, ukr_avx2_m6};
        k.fn[GENERIC_MR] = NULL;
        k.mr = AVX2_MR;
        k.nr = AVX2_NR;
        memcpy(k.fn, f, sizeof f);
        k.wide = ukr_avx2_wide;
        k.wide_p = AVX2_WIDE_P;
    }
#else
    (void)isa;
    (void)N;
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
    const float *packed_b; /* B packed once (tml_sgemm_pack_b: full-K panels), or NULL */
    float *C;
    ptrdiff_t lda, ldb, ldc;
    const float *bias; /* (N) added after the last K block, or NULL */
    const float *res;  /* (M, N) at row stride ldr, added after the bias, or NULL */
    ptrdiff_t ldr;
    tml_act act; /* applied last */
} gemm_args;

static int imin(int a, int b)
{
    return a < b ? a : b;
}

/* Length of the K blocks: equal blocks of at most kc_max, from K alone. */
static int k_block(int K, int kc_max)
{
    int nkb = (K + kc_max - 1) / kc_max;
    return (K + nkb - 1) / nkb;
}

/* Computes rows [m0, m1) x columns [n0, n1) of C. A is read in place (the
 * kernels take row and k strides); the portable kernel packs a partial panel
 * at the M edge with zero rows, the x86 ones have a kernel per row count. B
 * comes packed once by the caller (packed_b), or is read in place when it is
 * not transposed and at most 8 row panels share each B block, or is packed
 * here into a stack buffer. A single row runs the wide kernel across groups
 * of full panels (batch-1 dense). */
static void gemm_tile(const gemm_kernel *kr, const gemm_args *g, int m0, int m1, int n0, int n1)
{
    _Alignas(64) float bbuf[GEMM_KC * GEMM_NC];
    _Alignas(64) float abuf[GEMM_KC * GEMM_MR_MAX];
    const int mr = kr->mr, nr = kr->nr, K = g->K;
    const int prepacked = g->packed_b != NULL;
    const int kcb = k_block(K, prepacked ? GEMM_KC_PACKED : GEMM_KC);
    const int b_direct = !prepacked && !g->trans_b && (m1 - m0) <= 8 * mr;
    const int one_row = m1 - m0 == 1 && kr->wide;
    /* columns per B block: as many as the packing buffer holds at this K
     * block (GEMM_NC at the longest one; wider blocks mean fewer passes over
     * A), at most GEMM_NC_PACKED */
    int ncb = GEMM_NC_PACKED;
    if (!prepacked) {
        const int fit = GEMM_KC * GEMM_NC / kcb / nr * nr;
        if (fit < ncb) ncb = fit;
    }
    for (int jc = n0; jc < n1; jc += ncb) {
        const int nc = imin(ncb, n1 - jc);
        for (int pc = 0; pc < K; pc += kcb) {
            const int kc = imin(kcb, K - pc);
            /* first K block: beta; later ones accumulate; the last adds bias, residual, act */
            const int last = pc + kc == K;
            ukr_epilogue ep = {g->alpha, pc == 0 ? g->beta : 1.0f, NULL, NULL, g->ldr, last ? g->act : TML_ACT_NONE, 0};
            /* B panels for this (jc, pc) block: prepacked, packed into bbuf or in place */
            if (!prepacked)
                for (int jr = 0; jr < nc; jr += nr) {
                    const int nrr = imin(nr, nc - jr);
                    if (g->trans_b && kr->pack_bt)
                        kr->pack_bt(g->B, g->ldb, pc, kc, jc + jr, nrr, nr, bbuf + (ptrdiff_t)jr * kc);
                    else if (!b_direct || (nrr < nr && !kr->b_partial_ok))
                        pack_b_panel(g->trans_b, g->B, g->ldb, pc, kc, jc + jr, nrr, nr,
                                     bbuf + (ptrdiff_t)jr * kc);
                }
            for (int ic = m0; ic < m1; ic += mr) {
                const int mrr = imin(mr, m1 - ic);
                const float *ap;
                ptrdiff_t rsa, csa;
                ukr_fn fn = kr->fn[mrr];
                if (fn || mrr == mr) { /* read A in place, either layout */
                    ap = g->trans_a ? g->A + (ptrdiff_t)pc * g->lda + ic : g->A + (ptrdiff_t)ic * g->lda + pc;
                    rsa = g->trans_a ? 1 : g->lda;
                    csa = g->trans_a ? g->lda : 1;
                    if (!fn) fn = kr->fn[mr];
                } else {
                    pack_a(g->trans_a, g->A, g->lda, ic, mrr, pc, kc, mr, abuf);
                    ap = abuf;
                    rsa = 1;
                    csa = mr;
                    fn = kr->fn[mr];
                }
                float *crow = g->C + (ptrdiff_t)ic * g->ldc + jc;
                const float *rrow = g->res ? g->res + (ptrdiff_t)ic * g->ldr + jc : NULL;
                for (int jr = 0; jr < nc;) {
                    const int nrr = imin(nr, nc - jr);
                    const float *bp;
                    ptrdiff_t rsb, psb;
                    if (prepacked) {
                        bp = g->packed_b + (ptrdiff_t)((jc + jr) / nr) * K * nr + (ptrdiff_t)pc * nr;
                        rsb = nr;
                        psb = (ptrdiff_t)K * nr;
                        ep.b_padded = 1;
                    } else if (!b_direct || (nrr < nr && !kr->b_partial_ok)) {
                        bp = bbuf + (ptrdiff_t)jr * kc;
                        rsb = nr;
                        psb = (ptrdiff_t)kc * nr;
                        ep.b_padded = 1;
                    } else {
                        bp = g->B + (ptrdiff_t)pc * g->ldb + jc + jr;
                        rsb = g->ldb;
                        psb = nr;
                        ep.b_padded = 0;
                    }
                    ep.bias = last && g->bias ? g->bias + jc + jr : NULL;
                    ep.res = last && rrow ? rrow + jr : NULL;
                    if (one_row) {
                        /* up to wide_p panels at once, the last possibly partial */
                        const int rest = (nc - jr + nr - 1) / nr, np = rest < kr->wide_p ? rest : kr->wide_p;
                        const int last_w = imin(nr, nc - jr - (np - 1) * nr);
                        kr->wide(kc, ap, csa, bp, rsb, psb, crow + jr, np, last_w, &ep);
                        jr += np * nr;
                        continue;
                    }
                    fn(kc, ap, rsa, csa, bp, rsb, crow + jr, g->ldc, mrr, nrr, &ep);
                    jr += nr;
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
    p.res = NULL;
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
        const float *r = g->res ? g->res + (ptrdiff_t)i * g->ldr : NULL;
        for (int j = 0; j < g->N; j++) {
            const float *p = partial + (ptrdiff_t)i * g->N + j;
            float acc = p[0];
            for (int s = 1; s < parts; s++) acc += p[s * mn];
            float v = g->beta == 0.0f ? g->alpha * acc : g->alpha * acc + g->beta * c[j];
            if (g->bias) v += g->bias[j];
            if (r) v += r[j];
            c[j] = tml_act_apply_f32(g->act, v);
        }
    }
}

/* ---- entry points ---------------------------------------------------------------------- */

/* Runs g: serially, split along K, or over a grid of tiles on OpenMP threads. */
static void gemm_run(const gemm_kernel *kr, const gemm_args *g, unsigned flags)
{
    const int M = g->M, N = g->N, K = g->K;
    int nt = 1;
#ifdef TML_OPS_OMP
    if (!(flags & TML_GEMM_SERIAL) && 2.0 * M * N * K >= TML_OPS_PAR_FLOPS && !omp_in_parallel())
        nt = omp_get_max_threads();
#endif
    const int parts = (flags & TML_GEMM_ROW_STABLE) || g->packed_b ? 1 : ksplit_parts(M, N, K);
    if (parts > 1) {
        gemm_ksplit(kr, g, parts, nt);
        return;
    }
    if (nt <= 1) {
        gemm_tile(kr, g, 0, M, 0, N);
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
        mt = ROUND_UP((M + want - 1) / want, kr->mr);
        if (mt < 4 * kr->mr) mt = 4 * kr->mr;
        ntile = ROUND_UP(N, kr->nr) >= GEMM_NC ? GEMM_NC : N;
    } else {
        ntile = ROUND_UP((N + want - 1) / want, kr->nr);
        if (ntile < 2 * kr->nr) ntile = 2 * kr->nr;
        if (ntile > GEMM_NC) ntile = GEMM_NC;
        mt = M;
    }
    const int tm = (M + mt - 1) / mt, tn = (N + ntile - 1) / ntile;
    const int tiles = tm * tn;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int t = 0; t < tiles; t++) {
        const int bi = t / tn, bj = t % tn;
        const int m0 = bi * mt, n0 = bj * ntile;
        gemm_tile(kr, g, m0, imin(M, m0 + mt), n0, imin(N, n0 + ntile));
    }
#undef ROUND_UP
#endif
}

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
    const gemm_kernel kr = kernel_for(isa, N);
    const gemm_args g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, NULL, C, lda, ldb, ldc, bias, NULL, 0, act};
    gemm_run(&kr, &g, flags);
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

/* ---- B packed once ------------------------------------------------------------------ */

tml_isa tml_sgemm_pack_isa(tml_isa isa)
{
    return isa > tml_cpu_isa() ? tml_cpu_isa() : isa;
}

int tml_sgemm_pack_nr(tml_isa isa, int N)
{
    return kernel_for(tml_sgemm_pack_isa(isa), N).nr;
}

size_t tml_sgemm_packed_b_floats(tml_isa isa, int N, int K)
{
    const gemm_kernel kr = kernel_for(tml_sgemm_pack_isa(isa), N);
    return (size_t)((N + kr.nr - 1) / kr.nr) * (size_t)kr.nr * (size_t)K;
}

static void pack_b_panels(const gemm_kernel *kr, int trans_b, int N, int K, const float *B, int ldb, float *dst,
                          int p0, int p1)
{
    for (int p = p0; p < p1; p++) {
        const int j = p * kr->nr;
        float *d = dst + (ptrdiff_t)p * K * kr->nr;
        if (trans_b && kr->pack_bt)
            kr->pack_bt(B, ldb, 0, K, j, imin(kr->nr, N - j), kr->nr, d);
        else
            pack_b_panel(trans_b, B, ldb, 0, K, j, imin(kr->nr, N - j), kr->nr, d);
    }
}

void tml_sgemm_pack_b(tml_isa isa, int trans_b, int N, int K, const float *B, int ldb, float *dst)
{
    const gemm_kernel kr = kernel_for(tml_sgemm_pack_isa(isa), N);
    const int panels = (N + kr.nr - 1) / kr.nr;
#ifdef TML_OPS_OMP
    /* training repacks its dense weights every step: large ones on threads
     * (panels are independent) */
    if ((int64_t)N * K >= TML_OPS_PAR_ELEMS && panels > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
        for (int p = 0; p < panels; p++) pack_b_panels(&kr, trans_b, N, K, B, ldb, dst, p, p + 1);
        return;
    }
#endif
    pack_b_panels(&kr, trans_b, N, K, B, ldb, dst, 0, panels);
}

void tml_sgemm_packed_ex(tml_isa isa, unsigned flags, int trans_a, int M, int N, int K, const float *A, int lda,
                         const float *packed_b, float *C, int ldc, const float *bias, const float *res, int ldr,
                         tml_act act)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, 0.0f, C, ldc);
        for (int i = 0; i < M && res; i++)
            for (int j = 0; j < N; j++) C[(ptrdiff_t)i * ldc + j] = res[(ptrdiff_t)i * ldr + j];
        tml_ops_bias_act_f32(M, N, ldc, bias, act, C);
        return;
    }
    const gemm_kernel kr = kernel_for(tml_sgemm_pack_isa(isa), N);
    const gemm_args g = {trans_a, 1,        M,   N,    K,   1.0f, 0.0f, A,   NULL, packed_b,
                         C,       lda,      0,   ldc,  bias, res, ldr,  act};
    gemm_run(&kr, &g, flags);
}

void tml_sgemm_packed_batch_ex(tml_isa isa, int count, int M, int N, int K, const float *A, ptrdiff_t stride_a,
                               int lda, const float *packed_b, ptrdiff_t stride_b, float *C, ptrdiff_t stride_c,
                               int ldc)
{
    if (M <= 0 || N <= 0 || K <= 0) return;
    const gemm_kernel kr = kernel_for(tml_sgemm_pack_isa(isa), N);
    for (int i = 0; i < count; i++) {
        const gemm_args g = {0,    1,   M,   N,   K,   1.0f, 0.0f, A + i * stride_a, NULL, packed_b + i * stride_b,
                             C + i * stride_c, lda, 0, ldc, NULL, NULL, 0, TML_ACT_NONE};
        gemm_tile(&kr, &g, 0, M, 0, N);
    }
}
