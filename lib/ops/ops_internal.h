/*
 * ops_internal.h - internals shared by the float kernels under lib/ops/ and by
 * the tests and benchmarks that need to reach a specific code path (one
 * instruction set, a serial GEMM). Not part of the public API.
 */
#ifndef TML_OPS_INTERNAL_H
#define TML_OPS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tinyml/tml_ops.h"

/* x86 SIMD kernels (AVX2 / AVX-512, chosen at run time). Define
 * TML_OPS_NO_SIMD to build the portable C kernels only (as on other
 * architectures); the tests then exercise that path on an x86 machine. */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(TML_OPS_NO_SIMD)
#define TML_OPS_X86 1
#endif

#if defined(TML_HAVE_OPENMP) && defined(_OPENMP)
#define TML_OPS_OMP 1
#endif

/* Instruction sets a float kernel can be built for, in increasing order. */
typedef enum tml_isa {
    TML_ISA_GENERIC = 0, /* portable C, any CPU / architecture */
    TML_ISA_AVX2 = 1,    /* x86 AVX2 + FMA */
    TML_ISA_AVX512 = 2   /* x86 AVX-512F */
} tml_isa;

/* Best instruction set this CPU supports (and this build can use). Detected on
 * the first call; the cached value is an atomic, so concurrent first calls are
 * safe (they all compute the same answer). */
tml_isa tml_cpu_isa(void);
const char *tml_isa_name(tml_isa isa);

/* Flags for tml_sgemm_ex. */
#define TML_GEMM_SERIAL 0x1u /* never start OpenMP threads (caller is already parallel) */
#define TML_GEMM_ROW_STABLE                                                                                  \
    0x2u /* row i of C depends only on row i of op(A) and on op(B),                                          \
          * not on M: no K split (see gemm_f32.c) */

/* tml_sgemm with an explicit instruction set (clamped to tml_cpu_isa()) and
 * flags. For a given (isa, shape, flags & TML_GEMM_ROW_STABLE) the result is
 * bitwise identical whatever the thread count and whether TML_GEMM_SERIAL is
 * given; with TML_GEMM_ROW_STABLE, every row of C is also bitwise independent of
 * M (so a caller may split the rows of one product across calls). */
void tml_sgemm_ex(tml_isa isa, unsigned flags, int trans_a, int trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* C = act(alpha * op(A) op(B) + beta * C + bias) with bias (N) broadcast over
 * rows (NULL: none), fused into the GEMM's final store. Same guarantees as
 * tml_sgemm_ex; equal to tml_sgemm_ex followed by tml_ops_bias_act_f32. */
void tml_sgemm_bias_act_ex(tml_isa isa, unsigned flags, int trans_a, int trans_b, int M, int N, int K,
                           float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                           float *C, int ldc, const float *bias, tml_act act);

/* B packed once (conv and dense weights, at engine creation) for the GEMM of
 * one instruction set: op(B) (K, N) as column panels of the kernel's width NR
 * (chosen from isa and N), each holding all K rows: dst[p*K*NR + k*NR + j] =
 * op(B)(k, p*NR + j), zero beyond column N. tml_sgemm_packed_b_floats gives
 * the size in floats; the isa is clamped to the CPU's (tml_sgemm_pack_isa), and
 * the same isa must be given to tml_sgemm_packed_ex. */
tml_isa tml_sgemm_pack_isa(tml_isa isa);
int tml_sgemm_pack_nr(tml_isa isa, int N); /* NR of the packing */
size_t tml_sgemm_packed_b_floats(tml_isa isa, int N, int K);
void tml_sgemm_pack_b(tml_isa isa, int trans_b, int N, int K, const float *B, int ldb, float *dst);

/* C (M, N) = act(op(A) B + bias + res) with B packed by tml_sgemm_pack_b for the
 * same isa, N and K; bias (N) or NULL, res (M, N) at row stride ldr or NULL (a
 * residual input added before the activation; may not alias C). Every row of
 * C is bitwise independent of M and of the thread count. K is cut into
 * blocks of up to 1024 (512 unpacked): for K <= 512 the result equals, bit
 * for bit, tml_sgemm_bias_act_ex(isa, flags | TML_GEMM_ROW_STABLE, ...) on the
 * unpacked B followed by adding res and applying act; above, it differs by
 * the rounding of the block sums. */
void tml_sgemm_packed_ex(tml_isa isa, unsigned flags, int trans_a, int M, int N, int K, const float *A, int lda,
                         const float *packed_b, float *C, int ldc, const float *bias, const float *res, int ldr,
                         tml_act act);

/* `count` products C_i (M, N) = A_i (M, K) B_i, serial, no epilogue: A_i at
 * A + i*stride_a (row stride lda), B_i packed (tml_sgemm_pack_b) at
 * packed_b + i*stride_b, C_i at C + i*stride_c (row stride ldc). The
 * Winograd convolution's per-position products. */
void tml_sgemm_packed_batch_ex(tml_isa isa, int count, int M, int N, int K, const float *A, ptrdiff_t stride_a,
                               int lda, const float *packed_b, ptrdiff_t stride_b, float *C, ptrdiff_t stride_c,
                               int ldc);

/* Winograd F(4x4, 3x3) convolution (winograd_f32.c) for 3x3, stride 1,
 * dilation 1, ungrouped convs with at least 16 input and output channels
 * (tml_winograd_f32_applies): weights transformed and packed once (per the
 * 36 tile positions, a (c, o) GEMM operand), then per 4x4 output tile the
 * input transform, 36 GEMMs over the channels, the output transform with
 * bias, residual and activation. Scratch: tml_winograd_f32_scratch_size
 * bytes (at most ~1 MiB, whatever the batch). */
int tml_winograd_f32_applies(const tml_window *p);
size_t tml_winograd_f32_packed_floats(tml_isa isa, int c, int o);
void tml_winograd_f32_pack(tml_isa isa, const float *w, int c, int o, float *dst);
size_t tml_winograd_f32_scratch_size(const tml_window *p);
void tml_winograd_f32(const tml_window *p, tml_isa isa, const float *packed, const float *x, const float *b,
                      const float *res, float *y, void *scratch);

/* tml_dwconv2d_f32 with the kernels of an explicit instruction set (clamped). */
void tml_dwconv2d_f32_ex(const tml_window *p, const float *x, const float *w, const float *b, float *y, tml_isa isa);

/* Packed conv / dense weights for an explicit instruction set (clamped to the
 * CPU's); the conv records it in its packing, the dense call takes it again. */
size_t tml_conv2d_f32_packed_size_ex(const tml_window *p, tml_isa isa);
void tml_conv2d_f32_pack_ex(const tml_window *p, const float *w, void *packed, tml_isa isa);
size_t tml_dense_f32_packed_size_ex(int in, int out, tml_isa isa);
void tml_dense_f32_pack_ex(int in, int out, const float *w, void *packed, tml_isa isa);
void tml_dense_f32_packed_ex(int n, int in, int out, const void *packed, tml_isa isa, const float *x,
                             const float *b, tml_act act, float *y);

/* Builds one function three times - for AVX-512F, for AVX2 and portable -
 * from an always-inline body `name##_body` (plain C that the compiler
 * vectorizes), and a dispatcher `name` that picks one by tml_cpu_isa(). All
 * three do the same float operations in the same order (the build does not
 * contract a*b+c into FMA: ISO C mode), so their results are identical.
 * `params` is the parenthesized parameter list, `args` the argument list. */
#define TML_OPS_INLINE static inline __attribute__((always_inline))
#ifdef TML_OPS_X86
#define TML_OPS_MULTIVERSION_(name, params, args, opt, avx2)                                                 \
    __attribute__((target("avx512f"))) opt static void name##_avx512 params                                  \
    {                                                                                                        \
        name##_body args;                                                                                    \
    }                                                                                                        \
    __attribute__((target(avx2))) opt static void name##_avx2 params                                         \
    {                                                                                                        \
        name##_body args;                                                                                    \
    }                                                                                                        \
    static void name##_generic params                                                                        \
    {                                                                                                        \
        name##_body args;                                                                                    \
    }                                                                                                        \
    static void name params                                                                                  \
    {                                                                                                        \
        const tml_isa isa_ = tml_cpu_isa();                                                                  \
        if (isa_ == TML_ISA_AVX512)                                                                          \
            name##_avx512 args;                                                                              \
        else if (isa_ == TML_ISA_AVX2)                                                                       \
            name##_avx2 args;                                                                                \
        else                                                                                                 \
            name##_generic args;                                                                             \
    }
#define TML_OPS_MULTIVERSION(name, params, args) TML_OPS_MULTIVERSION_(name, params, args, , "avx2")
/* GCC's per-function fp-contract; clang has no optimize attribute (it warns
 * and ignores it) and contracts within an expression by default. */
#if defined(__clang__)
#define TML_FP_CONTRACT_FAST
#else
#define TML_FP_CONTRACT_FAST __attribute__((optimize("fp-contract=fast")))
#endif
/* The same for kernels whose x86 versions contract a*b+c into one fused
 * multiply-add (one rounding; the portable version rounds twice): AVX-512 and
 * AVX2+FMA then give identical results, the portable build slightly
 * different ones (within the kernels' tolerance against _ref). */
#define TML_OPS_MULTIVERSION_FMA(name, params, args)                                                         \
    TML_OPS_MULTIVERSION_(name, params, args, TML_FP_CONTRACT_FAST, "avx2,fma")
#else
#define TML_OPS_MULTIVERSION(name, params, args)                                                             \
    static void name params                                                                                  \
    {                                                                                                        \
        name##_body args;                                                                                    \
    }
#define TML_OPS_MULTIVERSION_FMA(name, params, args) TML_OPS_MULTIVERSION(name, params, args)
#endif

/* 16-float vectors (GCC/Clang vector extensions): one AVX-512 register, two
 * AVX2 ones or four SSE ones depending on the target of the function using
 * them. Loads / stores go through memcpy (unaligned, no aliasing issue);
 * comparisons give all-ones / zero lanes for blends. Used by the per-channel
 * kernels (depthwise conv, pools) to keep a block of channels in registers. */
typedef float tml_v16f __attribute__((vector_size(64)));
typedef int32_t tml_v16i __attribute__((vector_size(64)));
#define TML_V16_LOAD(v, p) memcpy(&(v), (p), sizeof(tml_v16f))
#define TML_V16_STORE(p, v) memcpy((p), &(v), sizeof(tml_v16f))
/* lane-wise c ? a : b for a mask c from a comparison */
#define TML_V16_SELECT(c, a, b) ((tml_v16f)(((tml_v16i)(a) & (c)) | ((tml_v16i)(b) & ~(c))))

/* v = act(v) on 16 lanes, as tml_act_apply_f32 (relu(NaN) = 0, relu6 passes
 * NaN). A macro: a function returning a 64-byte vector would change the ABI
 * of the non-AVX-512 builds of the kernels using it. */
#define TML_V16_ACT(act, v)                                                                                  \
    do {                                                                                                     \
        const tml_v16f zero_ = {0}, six_ = zero_ + 6.0f;                                                     \
        if ((act) == TML_ACT_RELU) {                                                                         \
            (v) = TML_V16_SELECT((v) > zero_, (v), zero_);                                                   \
        } else if ((act) == TML_ACT_RELU6) {                                                                 \
            (v) = TML_V16_SELECT((v) > six_, six_, (v));                                                     \
            (v) = TML_V16_SELECT((v) < zero_, zero_, (v));                                                   \
        }                                                                                                    \
    } while (0)

/* TML_V16_ACT as two 8-float halves, for the AVX2 builds of the kernels:
 * GCC (12) lowers comparisons of 64-byte float vectors lane by lane through
 * scalar compares when the target has only 32-byte registers; 32-byte
 * comparisons are single instructions. The same operations per lane. */
typedef float tml_v8f __attribute__((vector_size(32)));
typedef int32_t tml_v8i __attribute__((vector_size(32)));
#define TML_V8_SELECT(c, a, b) ((tml_v8f)(((tml_v8i)(a) & (c)) | ((tml_v8i)(b) & ~(c))))
#define TML_V16_ACT_HALVES(act, v)                                                                           \
    do {                                                                                                     \
        if ((act) == TML_ACT_RELU || (act) == TML_ACT_RELU6) {                                               \
            const tml_v8f zero8_ = {0}, six8_ = zero8_ + 6.0f;                                               \
            tml_v8f h_[2];                                                                                   \
            memcpy(h_, &(v), sizeof h_);                                                                     \
            for (int i_ = 0; i_ < 2; i_++) {                                                                 \
                if ((act) == TML_ACT_RELU) {                                                                 \
                    h_[i_] = TML_V8_SELECT(h_[i_] > zero8_, h_[i_], zero8_);                                 \
                } else {                                                                                     \
                    h_[i_] = TML_V8_SELECT(h_[i_] > six8_, six8_, h_[i_]);                                   \
                    h_[i_] = TML_V8_SELECT(h_[i_] < zero8_, zero8_, h_[i_]);                                 \
                }                                                                                            \
            }                                                                                                \
            memcpy(&(v), h_, sizeof h_);                                                                     \
        }                                                                                                    \
    } while (0)

/* Threshold (2*M*N*K flops) above which kernels start OpenMP threads. */
#ifndef TML_OPS_PAR_FLOPS
#define TML_OPS_PAR_FLOPS 2000000.0
#endif
/* Threshold (elements) above which memory-bound elementwise kernels start threads. */
#define TML_OPS_PAR_ELEMS ((int64_t)1 << 17)

/* y[r, :] = act(y[r, :] + b) for r in [0, rows), rows of `cols` floats at stride ld.
 * b (cols) may be NULL. Used as the epilogue of GEMM-based ops. */
void tml_ops_bias_act_f32(int64_t rows, int cols, int ld, const float *b, tml_act act, float *y);

/* Number of rows of the (n*oh*ow, kh*kw*c/groups) im2col matrix that
 * tml_conv2d_f32 processes at once, and whether it needs im2col at all. */
int64_t tml_conv2d_f32_chunk_rows(const tml_window *p);
int tml_conv2d_f32_is_pointwise(const tml_window *p);

/* Writes rows [r0, r1) of the im2col matrix of group g into cols (row stride
 * kh*kw*cg floats, cg = c/groups): row r = (b, oy, ox) in output order holds the
 * taps (ky, kx, ci) of input channel g*cg + ci, zero outside the image. */
void tml_im2col_f32(const tml_window *p, const float *x, int g, int64_t r0, int64_t r1, float *cols);

#endif
