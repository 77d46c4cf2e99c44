/*
 * ops_s8_internal.h - internals shared by the INT8 kernels under lib/ops/<op>_s8.c
 * and by the tests and benchmarks that need to reach one code path (one
 * instruction set, forced threading). Not part of the public API.
 *
 * The fast INT8 kernels are built from three pieces:
 *   - an operand layout per instruction set (im2col rows, packed weights),
 *   - an int8 GEMM C (M, N) = A (M, K) * W^T (W is (N, K) row-major, i.e. the
 *     OHWI / (out, in) weights as they are stored) with int32 accumulation,
 *   - a requantization epilogue that is bit-exact with tml_requantize().
 * docs/numerics.md explains the arithmetic; the comments here give layouts.
 */
#ifndef TML_OPS_S8_INTERNAL_H
#define TML_OPS_S8_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tinyml/tml_ops_s8.h"

/* x86 SIMD kernels; -DTML_S8_NO_SIMD builds the portable code only (to test it
 * on x86 as it runs elsewhere). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(TML_S8_NO_SIMD)
#define TML_S8_X86 1
#endif

#if defined(TML_HAVE_OPENMP) && defined(_OPENMP)
#define TML_S8_OMP 1
#endif

/* Instruction sets of the INT8 kernels, in increasing order. */
typedef enum tml_s8_isa {
    TML_S8_ISA_GENERIC = 0, /* portable C */
    TML_S8_ISA_AVX2 = 1,    /* x86 AVX2: int8 -> int16, _mm256_madd_epi16 */
    TML_S8_ISA_VNNI = 2     /* x86 AVX-512F/BW/VL + VNNI: _mm512_dpbusd_epi32 */
} tml_s8_isa;
#define TML_S8_ISA_COUNT 3

/* Best INT8 instruction set of this CPU (and build). Detected once; the cached
 * value is atomic, so concurrent first calls are safe. */
tml_s8_isa tml_s8_cpu_isa(void);
const char *tml_s8_isa_name(tml_s8_isa isa);

/* Multiply-accumulates (per call) above which the fast kernels start OpenMP
 * threads. Below it the fork/join costs more than it saves (a LeNet-5 layer at
 * batch 1 is 0.3-1.6 M MACs and runs in a few microseconds on one core). */
#define TML_S8_PAR_MACS ((int64_t)1 << 22)

/* The fast kernels with an explicit instruction set (clamped to
 * tml_s8_cpu_isa()) and parallel threshold (par_min_macs: start threads when
 * the call has at least this many MACs and more than one thread is available;
 * 0 = whenever possible, INT64_MAX = never). Results are identical for every
 * isa / threshold / thread count. Scratch sizes from the public *_scratch_size
 * functions are enough for every isa. */
void tml_conv2d_s8_ex(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                      const int32_t *bias, int8_t *y, void *scratch, tml_s8_isa isa, int64_t par_min_macs);
/* Packing for `isa` (clamped), and the packed run (the isa is the packing's). */
void tml_conv2d_s8_pack_ex(const tml_window *p, const tml_qparams *q, const int8_t *w, const int32_t *bias,
                           void *packed, tml_s8_isa isa);
void tml_conv2d_s8_packed_ex(const tml_window *p, const tml_qparams *q, const int8_t *x, const void *packed,
                             int8_t *y, void *scratch, int64_t par_min_macs);
void tml_dwconv2d_s8_ex(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                        const int32_t *bias, int8_t *y, tml_s8_isa isa, int64_t par_min_macs);
void tml_dense_s8_ex(int n, int in, int out, const tml_qparams *q, const int8_t *x, const int8_t *w,
                     const int32_t *bias, int8_t *y, void *scratch, tml_s8_isa isa, int64_t par_min_macs);

/* Elements per call above which the elementwise kernels (add, clamp) start
 * OpenMP threads (blocks of 64 Ki elements). */
#define TML_S8_PAR_ELEMS ((int64_t)1 << 18)
void tml_add_s8_ex(int64_t count, const tml_add_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y,
                   tml_s8_isa isa, int64_t par_min_elems);
void tml_clamp_s8_ex(int64_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y, tml_s8_isa isa,
                     int64_t par_min_elems);
void tml_maxpool_s8_ex(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y,
                       tml_s8_isa isa);
void tml_avgpool_s8_ex(const tml_window *p, int32_t act_min, int32_t act_max, const int8_t *x, int8_t *y,
                       tml_s8_isa isa);
void tml_global_avgpool_s8_ex(int n, int hw, int c, const int8_t *x, int8_t *y, tml_s8_isa isa);

/* ---- the int8 GEMM (gemm_s8.c) ------------------------------------------------------
 *
 * C[m][j] = requant(sum_k A[m][k] * W[j][k] + corr[j]) for j < n, where W (n, k)
 * is row-major with row stride ldw (the caller's weights, not copied for the
 * generic isa) and k = nseg * seglen: the reduction is cut into nseg segments
 * of seglen (a conv's kernel rows: kw * c/groups values each). The A operand
 * depends on the isa:
 *
 *   GENERIC  int8 x as stored, rows of k at stride lda bytes (>= k);
 *            corr[j] = bias[j] - in_zp * sum_k W[j][k]
 *   AVX2     int16 (x - in_zp), rows padded with zeros to k2 = roundup(k, 2),
 *            stride lda int16 elements; corr[j] = bias[j]
 *   VNNI     indirect: row i, segment s is the int8 run arow[i*nseg + s][0..seg4)
 *            with seg4 = roundup(seglen, 4); bytes past seglen are read but
 *            meet zero weights (so the pointer must have seg4 readable bytes).
 *            A conv points the rows straight into its input (no im2col) and
 *            only copies the segments that cross the image border. The kernel
 *            flips the sign bits (u8 = x + 128) after each broadcast;
 *            corr[j] = bias[j] - (in_zp + 128) * sum_k W[j][k]
 *
 * Packed weights (VNNI): panels of 16 output channels; panel P holds, for each
 * segment s and group g < seg4/4, 64 bytes: byte j*4 + t = W[16P + j][s*seglen
 * + 4g + t] (0 beyond n or seglen). One _mm512_dpbusd_epi32 of a broadcast
 * 4-byte group of A with those 64 bytes adds four products to each of 16
 * channel accumulators.
 * Packed weights (AVX2): panels of 8 channels of int16; panel P is k2*8
 * elements, element (kb*16 + j*2 + t) = W[8P + j][2kb + t]; one
 * _mm256_madd_epi16 of a broadcast int16 pair adds two products per channel.
 *
 * Every layout is exact: int8*int8 products and their int32 sums never
 * saturate (dpbusd and madd_epi16 do not saturate; int32 additions wrap, so the
 * result is the true accumulator whenever that fits in int32). */
typedef struct tml_s8_gemm_b {
    tml_s8_isa isa;
    int n, k;            /* output channels, reduction length */
    int nseg, seglen, seg4; /* k = nseg * seglen; VNNI segments padded to seg4 */
    int np;              /* n rounded up to the panel width (16 / 8 / 1) */
    const void *wp;      /* packed weights (VNNI, AVX2) or the caller's W (generic) */
    ptrdiff_t ldw;       /* generic: row stride of W */
    const int32_t *corr, *mult, *lsh, *rsh; /* (np) per channel; lsh/rsh = max(+-shift, 0) */
    int any_lsh;         /* some channel has shift > 0 */
    int simple;          /* every mult >= 0 and shift <= 0: one-step epilogue */
    int relu;            /* simple and act_min >= out_zp: the ReLU form of it (ops_s8_simd.h) */
    int relu_s;          /* VNNI, relu: its signed-multiply form applies (tml_s8_relu_signed_ok);
                          * ep's addends then hold the output zero point */
    int tfl;             /* TML_ROUNDING_TFLITE arithmetic (ops_s8_simd.h) */
    int32_t out_zp, act_min, act_max;
    /* VNNI, simple: per 16-channel block, the epilogue's six vectors (mult,
     * mult_o, sh_e, sh_o, add_e, add_o: ops_s8_simd.h; the blend form when
     * relu), computed once here instead of in every tile */
    const void *ep;
} tml_s8_gemm_b;

/* Bytes of `buf` tml_s8_gemm_prepare needs, for any isa. */
size_t tml_s8_gemm_prep_size(int n, int nseg, int seglen);
/* Packs W (n, nseg*seglen) (row stride ldw) for `isa` into buf (aligned
 * internally), and computes the per-channel corrections and requantization
 * constants. bias, mult, shift point at this GEMM's n channels (bias may be
 * NULL). */
void tml_s8_gemm_prepare(tml_s8_isa isa, int n, int nseg, int seglen, const int8_t *w, ptrdiff_t ldw,
                         const int32_t *bias, int32_t in_zp, int32_t out_zp, const int32_t *mult,
                         const int32_t *shift, int32_t act_min, int32_t act_max, int tfl, void *buf,
                         tml_s8_gemm_b *b);
/* GENERIC / AVX2: y[i*ldy + j] = C[i][j] for i < m, j < b->n, A dense. */
void tml_s8_gemm_run(const tml_s8_gemm_b *b, int m, const void *a, ptrdiff_t lda, int8_t *y, ptrdiff_t ldy);
/* VNNI: the same with A given by row / segment pointers (see above). */
void tml_s8_gemm_run_ind(const tml_s8_gemm_b *b, int m, const int8_t *const *arow, int8_t *y, ptrdiff_t ldy);

/* Unpacking with an explicit instruction set (clamped to tml_s8_cpu_isa()). */
void tml_s8w_unpack_ex(int64_t count, int wbits, const uint8_t *packed, int8_t *w, tml_s8_isa isa);

/* Weight i of a packed stream of width wbits (2..7), or of an int8 array (wbits
 * 8): what the reference kernels read. A field of b <= 7 bits spans at most two
 * bytes; the second is read only when the field reaches into it, so nothing
 * past the stream is touched. */
static inline int32_t tml_s8w_get(const void *w, int wbits, int64_t i)
{
    if (wbits == 8) return ((const int8_t *)w)[i];
    const uint8_t *p = (const uint8_t *)w;
    const uint64_t bit = (uint64_t)i * (uint64_t)wbits;
    const int off = (int)(bit & 7);
    unsigned v = (unsigned)p[bit >> 3] >> off;
    if (off + wbits > 8) v |= (unsigned)p[(bit >> 3) + 1] << (8 - off);
    v &= (1u << wbits) - 1u;
    return (int32_t)v - (int32_t)((v >> (wbits - 1)) << wbits);
}

/* ---- scalar requantization used by the fast kernels ----------------------------------
 * Same arithmetic as tml_requantize() (quant_math.c), inlined. */
static inline int32_t tml_s8_rq_inline(int32_t acc, int32_t mult, int lsh, int rsh, int tfl)
{
    int64_t v = (int64_t)acc * ((int64_t)1 << lsh);
    int32_t a = v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
    int32_t hm;
    if (a == INT32_MIN && mult == INT32_MIN) {
        hm = INT32_MAX;
    } else {
        /* tinyml: negative ties away from zero; TFLite: toward +inf (1 - 2^30) */
        int64_t prod = (int64_t)a * mult;
        int64_t nudge = prod >= 0 ? ((int64_t)1 << 30) : (tfl ? 1 : 0) - ((int64_t)1 << 30);
        hm = (int32_t)((prod + nudge) / ((int64_t)1 << 31));
    }
    const int32_t mask = (int32_t)(((int64_t)1 << rsh) - 1);
    const int32_t rem = hm & mask;
    const int32_t thr = (mask >> 1) + (hm < 0 ? 1 : 0);
    return (hm >> rsh) + (rem > thr ? 1 : 0);
}

/* Full epilogue: requantize, add the output zero point, clamp. The clamp is
 * applied before adding out_zp (to [act_min - out_zp, act_max - out_zp]), which
 * equals clamp(v + out_zp, act_min, act_max) and cannot overflow int32. */
static inline int8_t tml_s8_out_inline(int32_t acc, int32_t mult, int lsh, int rsh, int32_t out_zp,
                                       int32_t act_min, int32_t act_max, int tfl)
{
    int32_t v = tml_s8_rq_inline(acc, mult, lsh, rsh, tfl);
    v = v < act_min - out_zp ? act_min - out_zp : v;
    v = v > act_max - out_zp ? act_max - out_zp : v;
    return (int8_t)(v + out_zp);
}

#endif
