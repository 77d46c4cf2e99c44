/*
 * gemm_s8.c - the int8 GEMM under the fast conv2d / dense kernels:
 *   y[i][j] = clamp(requantize(sum_k A[i][k] * W[j][k] + corr[j]) + out_zp)
 * with operand layouts per instruction set described in ops_s8_internal.h.
 *
 * VNNI micro-kernel: an MR x (16*NV) tile of int32 accumulators stays in zmm
 * registers for the whole reduction; each step broadcasts one 4-byte group of
 * every A row (through the row's segment pointer) and issues MR*NV vpdpbusd
 * against NV packed weight vectors. (MR, NV) = (12, 1..2), (8, 3), (5, 4): at
 * most 30 of the 32 zmm registers (5 x 4, not 6 x 4: measured 5% faster on
 * DS-CNN's 64-channel pointwise and first layers, the smaller tile's epilogue
 * overlapping better with the next tile's MACs). AVX2 micro-kernel: the same
 * with int16 pairs and vpmaddwd on a dense A, 8 channels per ymm, (MR, NV) =
 * (12, 1), (6, 2) within 16 ymm registers. Row remainders use the same kernels with
 * MR = 4, 2, 1. The epilogue (ops_s8_simd.h) requantizes whole vectors and
 * stores with a byte mask (AVX-512) or a short copy (AVX2) at the channel edge.
 *
 * Nothing here allocates; tml_s8_gemm_prepare works in caller memory.
 */
#include <stdatomic.h>
#include <string.h>

#include "ops_s8_internal.h"
#include "ops_s8_simd.h"

/* ---- CPU dispatch ---------------------------------------------------------------- */

static atomic_int g_s8_isa = -1;

static tml_s8_isa detect_s8_isa(void)
{
#ifdef TML_S8_X86
    /* __builtin_cpu_supports also checks that the OS saves the vector state. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        return TML_S8_ISA_VNNI;
    if (__builtin_cpu_supports("avx2")) return TML_S8_ISA_AVX2;
#endif
    return TML_S8_ISA_GENERIC;
}

tml_s8_isa tml_s8_cpu_isa(void)
{
    int v = atomic_load_explicit(&g_s8_isa, memory_order_relaxed);
    if (v < 0) {
        v = (int)detect_s8_isa();
        atomic_store_explicit(&g_s8_isa, v, memory_order_relaxed);
    }
    return (tml_s8_isa)v;
}

const char *tml_s8_isa_name(tml_s8_isa isa)
{
    switch (isa) {
    case TML_S8_ISA_VNNI: return "avx512-vnni";
    case TML_S8_ISA_AVX2: return "avx2";
    default: return "generic";
    }
}

/* ---- preparation ------------------------------------------------------------------ */

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

size_t tml_s8_gemm_prep_size(int n, int nseg, int seglen)
{
    const size_t np16 = round_up((size_t)n, 16), k = (size_t)nseg * seglen;
    const size_t vnni = np16 * (size_t)nseg * round_up((size_t)seglen, 4);
    const size_t avx2 = 2 * round_up((size_t)n, 8) * round_up(k, 2);
    /* alignment slack, 4 per-channel int32 arrays, packed weights, VNNI
     * epilogue constants (6 vectors per 16 channels) */
    return 64 + 4 * np16 * sizeof(int32_t) + (vnni > avx2 ? vnni : avx2) + np16 / 16 * 6 * 64;
}

static void pack_avx2(int n, int k, const int8_t *w, ptrdiff_t ldw, int np8, int16_t *dst)
{
    const int nkb = (k + 1) / 2;
    for (int P = 0; P < np8 / 8; P++)
        for (int kb = 0; kb < nkb; kb++)
            for (int j = 0; j < 8; j++)
                for (int t = 0; t < 2; t++) {
                    const int r = 8 * P + j, kk = 2 * kb + t;
                    *dst++ = (int16_t)(r < n && kk < k ? w[(ptrdiff_t)r * ldw + kk] : 0);
                }
}

#ifdef TML_S8_X86
/* 16 rows x 16 dwords -> 16 vectors of one dword column each (r[j][g] -> o[g][j]). */
TML_S8_INLINE TML_S8_TGT_VNNI void transpose16(__m512i r[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4a + c], 128-bit lane L: rows 4a..4a+3 at column 4L + c */
    for (int a = 0; a < 4; a++) {
        u[4 * a + 0] = _mm512_unpacklo_epi64(t[4 * a], t[4 * a + 2]);
        u[4 * a + 1] = _mm512_unpackhi_epi64(t[4 * a], t[4 * a + 2]);
        u[4 * a + 2] = _mm512_unpacklo_epi64(t[4 * a + 1], t[4 * a + 3]);
        u[4 * a + 3] = _mm512_unpackhi_epi64(t[4 * a + 1], t[4 * a + 3]);
    }
    for (int c = 0; c < 4; c++) {
        const __m512i x0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), x1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xDD);
        const __m512i y0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
        const __m512i y1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xDD);
        r[0 + c] = _mm512_shuffle_i32x4(x0, y0, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(x1, y1, 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(x0, y0, 0xDD);
        r[12 + c] = _mm512_shuffle_i32x4(x1, y1, 0xDD);
    }
}

/* The VNNI packing (ops_s8_internal.h): blocks of 16 rows x 16 groups of 4
 * bytes are loaded (masked at the segment's end, zero rows past n) and
 * transposed in registers. Also the weight row sums of every channel
 * (sums[np16]), from the packed panels. */
static TML_S8_TGT_VNNI void pack_vnni_avx512(int n, int nseg, int seglen, const int8_t *w, ptrdiff_t ldw, int np16,
                                             int8_t *dst, int32_t *sums)
{
    const int g4 = (seglen + 3) / 4;
    const ptrdiff_t ps = (ptrdiff_t)nseg * g4 * 64;
    const __m512i ones = _mm512_set1_epi8(1);
    for (int P = 0; P < np16 / 16; P++) {
        int8_t *pd = dst + P * ps;
        for (int s = 0; s < nseg; s++)
            for (int g = 0; g < g4; g += 16) {
                const int avail = seglen - 4 * g; /* bytes of this segment from group g on */
                const __mmask64 km = avail >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << avail) - 1);
                __m512i r[16];
                for (int j = 0; j < 16; j++) {
                    const int row = 16 * P + j;
                    r[j] = row < n ? _mm512_maskz_loadu_epi8(km, w + (ptrdiff_t)row * ldw + (ptrdiff_t)s * seglen + 4 * g)
                                   : _mm512_setzero_si512();
                }
                transpose16(r);
                const int ng = g4 - g < 16 ? g4 - g : 16;
                for (int i = 0; i < ng; i++) _mm512_store_si512((void *)(pd + ((ptrdiff_t)s * g4 + g + i) * 64), r[i]);
            }
        __m512i acc = _mm512_setzero_si512();
        for (ptrdiff_t i = 0; i < ps; i += 64)
            acc = _mm512_dpbusd_epi32(acc, ones, _mm512_load_si512((const void *)(pd + i)));
        _mm512_storeu_si512((void *)(sums + 16 * P), acc);
    }
}
#endif

#ifdef TML_S8_X86
/* The epilogue constants of every 16-channel block (tml_s8_gemm_b.ep); for
 * the signed ReLU form (returns 1 when it applies) with the output zero
 * point folded into the addends. */
static TML_S8_TGT_VNNI int ep_consts_vnni(int np16, const int32_t *mult, const int32_t *rsh, int relu, int32_t out_zp,
                                          __m512i *ep)
{
    int signed_ok = relu;
    for (int c = 0; c < np16; c += 16) {
        const __m512i m = _mm512_load_si512((const void *)(mult + c));
        const __m512i r = _mm512_load_si512((const void *)(rsh + c));
        signed_ok &= tml_s8_relu_signed_ok(m, r);
    }
    for (int c = 0; c < np16; c += 16, ep += 6) {
        const __m512i m = _mm512_load_si512((const void *)(mult + c));
        const __m512i r = _mm512_load_si512((const void *)(rsh + c));
        ep[0] = m;
        if (relu) {
            tml_s8_blend_consts512(m, r, &ep[1], &ep[2], &ep[3], &ep[4], &ep[5]);
            if (signed_ok) tml_s8_fold_zp512(out_zp, ep[2], ep[3], &ep[4], &ep[5]);
        } else {
            tml_s8_simple_consts512(r, &ep[2], &ep[3], &ep[4], &ep[5]);
            ep[1] = _mm512_srli_epi64(m, 32);
        }
    }
    return signed_ok;
}
#endif

void tml_s8_gemm_prepare(tml_s8_isa isa, int n, int nseg, int seglen, const int8_t *w, ptrdiff_t ldw,
                         const int32_t *bias, int32_t in_zp, int32_t out_zp, const int32_t *mult,
                         const int32_t *shift, int32_t act_min, int32_t act_max, int tfl, void *buf,
                         tml_s8_gemm_b *b)
{
    uint8_t *base = (uint8_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    const int np16 = (int)round_up((size_t)n, 16), k = nseg * seglen;
    int32_t *corr = (int32_t *)(void *)base;
    int32_t *m = corr + np16, *lsh = m + np16, *rsh = lsh + np16;
    void *wp = rsh + np16; /* 64-byte aligned: np16 * 16 bytes per array */

    /* input offset folded into the bias: see ops_s8_internal.h */
    const int64_t off = isa == TML_S8_ISA_VNNI ? (int64_t)in_zp + 128 : isa == TML_S8_ISA_AVX2 ? 0 : in_zp;
    /* VNNI: pack first, the weight sums come from the packed panels (into corr) */
    int have_sums = 0;
#ifdef TML_S8_X86
    if (isa == TML_S8_ISA_VNNI) {
        pack_vnni_avx512(n, nseg, seglen, w, ldw, np16, (int8_t *)wp, corr);
        have_sums = 1;
    }
#endif
    int any = 0, simple = 1;
    for (int j = 0; j < np16; j++) {
        if (j >= n) {
            corr[j] = m[j] = lsh[j] = rsh[j] = 0;
            continue;
        }
        int64_t s = 0;
        if (have_sums) {
            s = corr[j];
        } else if (off != 0) {
            const int8_t *wj = w + (ptrdiff_t)j * ldw;
            int32_t s32 = 0;
            for (int kk = 0; kk < k; kk++) s32 += wj[kk];
            s = s32;
        }
        corr[j] = (int32_t)((bias ? (int64_t)bias[j] : 0) - off * s);
        m[j] = mult[j];
        lsh[j] = shift[j] > 0 ? shift[j] : 0;
        rsh[j] = shift[j] > 0 ? 0 : -shift[j];
        any |= lsh[j] > 0;
        simple &= mult[j] >= 0 && shift[j] <= 0;
    }

    b->isa = isa;
    b->n = n;
    b->k = k;
    b->nseg = nseg;
    b->seglen = seglen;
    b->seg4 = (seglen + 3) / 4 * 4;
    b->corr = corr;
    b->mult = m;
    b->lsh = lsh;
    b->rsh = rsh;
    b->any_lsh = any;
    b->simple = simple;
    b->relu = simple && act_min >= out_zp;
    b->tfl = tfl;
    b->out_zp = out_zp;
    b->act_min = act_min;
    b->act_max = act_max;
    b->ldw = ldw;
    b->ep = NULL;
    b->relu_s = 0;
    if (isa == TML_S8_ISA_VNNI) {
        b->np = np16;
        b->wp = wp; /* packed above */
#ifdef TML_S8_X86
        if (simple) {
            /* after the packed panels (a multiple of 64 bytes) */
            __m512i *ep = (__m512i *)(void *)((int8_t *)wp + (size_t)np16 * nseg * round_up((size_t)seglen, 4));
            b->relu_s = ep_consts_vnni(np16, m, rsh, b->relu, out_zp, ep);
            b->ep = ep;
        }
#endif
    } else if (isa == TML_S8_ISA_AVX2) {
        b->np = (int)round_up((size_t)n, 8);
        b->wp = wp;
        pack_avx2(n, k, w, ldw, b->np, (int16_t *)wp);
    } else {
        b->np = n;
        b->wp = w;
    }
}

/* ---- generic ------------------------------------------------------------------------ */

static void gemm_generic(const tml_s8_gemm_b *b, int m, const int8_t *a, ptrdiff_t lda, int8_t *y, ptrdiff_t ldy)
{
    const int8_t *w = (const int8_t *)b->wp;
    const int k = b->k;
    for (int i = 0; i < m; i++) {
        const int8_t *ai = a + (ptrdiff_t)i * lda;
        int8_t *yi = y + (ptrdiff_t)i * ldy;
        int j = 0;
        for (; j + 4 <= b->n; j += 4) {
            const int8_t *w0 = w + (ptrdiff_t)j * b->ldw, *w1 = w0 + b->ldw, *w2 = w1 + b->ldw, *w3 = w2 + b->ldw;
            int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int kk = 0; kk < k; kk++) {
                const int32_t av = ai[kk];
                s0 += av * w0[kk];
                s1 += av * w1[kk];
                s2 += av * w2[kk];
                s3 += av * w3[kk];
            }
            const int32_t s[4] = {s0, s1, s2, s3};
            for (int t = 0; t < 4; t++) {
                const int32_t acc = (int32_t)((uint32_t)s[t] + (uint32_t)b->corr[j + t]);
                yi[j + t] = tml_s8_out_inline(acc, b->mult[j + t], b->lsh[j + t], b->rsh[j + t], b->out_zp,
                                              b->act_min, b->act_max, b->tfl);
            }
        }
        for (; j < b->n; j++) {
            const int8_t *wj = w + (ptrdiff_t)j * b->ldw;
            int32_t s = 0;
            for (int kk = 0; kk < k; kk++) s += ai[kk] * wj[kk];
            const int32_t acc = (int32_t)((uint32_t)s + (uint32_t)b->corr[j]);
            yi[j] = tml_s8_out_inline(acc, b->mult[j], b->lsh[j], b->rsh[j], b->out_zp, b->act_min, b->act_max,
                                      b->tfl);
        }
    }
}

#ifdef TML_S8_X86

/* ---- AVX-512 VNNI ------------------------------------------------------------------- */

static inline uint32_t load_u32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Expands X(i, ...) for the tile rows 0..11. The accumulators are named
 * variables (c<row>_<vector>), not an array: GCC does not keep a 3 KiB array
 * in registers. Rows >= MR and vectors >= NV are removed as dead code. */
#define TILE_ROWS(X, ...)                                                                                     \
    X(0, __VA_ARGS__) X(1, __VA_ARGS__) X(2, __VA_ARGS__) X(3, __VA_ARGS__) X(4, __VA_ARGS__)                \
    X(5, __VA_ARGS__) X(6, __VA_ARGS__) X(7, __VA_ARGS__) X(8, __VA_ARGS__) X(9, __VA_ARGS__)                \
    X(10, __VA_ARGS__) X(11, __VA_ARGS__)

/* Accumulators of one MR x 16*NV tile into acc[i*4 + v]: the corrections
 * corr[16v ..] plus rows arow[i*nseg + s] (or, when lda > 0, one segment per
 * row at a + i*lda) times the packed panels bp + v*ps (g4 groups of 4 per
 * segment). Starting from the correction saves the epilogue an add per
 * vector. */
TML_S8_INLINE TML_S8_TGT_VNNI void vnni_tile(const int MR, const int NV, const int STR, const int8_t *const *arow,
                                             const int8_t *a,
                                             ptrdiff_t lda, int nseg, int g4, const int8_t *bp, ptrdiff_t ps,
                                             const int32_t *corr, __m512i *acc)
{
    const __m512i z = _mm512_setzero_si512();
    const __m512i flip = _mm512_set1_epi32((int)0x80808080u);
    const __m512i k0 = _mm512_load_si512((const void *)corr);
    const __m512i k1 = NV > 1 ? _mm512_load_si512((const void *)(corr + 16)) : z;
    const __m512i k2 = NV > 2 ? _mm512_load_si512((const void *)(corr + 32)) : z;
    const __m512i k3 = NV > 3 ? _mm512_load_si512((const void *)(corr + 48)) : z;
#define V_DECL(i, _) __m512i c##i##_0 = k0, c##i##_1 = k1, c##i##_2 = k2, c##i##_3 = k3;
    TILE_ROWS(V_DECL, 0)
#undef V_DECL
    const int8_t *bk = bp;
    for (int s = 0; s < nseg; s++) {
#define V_PTR(i, _) const int8_t *p##i = MR > i ? (STR ? a + i * lda : arow[i * nseg + s]) : NULL;
        TILE_ROWS(V_PTR, 0)
#undef V_PTR
        for (int g = 0; g < g4; g++, bk += 64) {
            const __m512i w0 = _mm512_load_si512((const void *)bk);
            const __m512i w1 = NV > 1 ? _mm512_load_si512((const void *)(bk + ps)) : z;
            const __m512i w2 = NV > 2 ? _mm512_load_si512((const void *)(bk + 2 * ps)) : z;
            const __m512i w3 = NV > 3 ? _mm512_load_si512((const void *)(bk + 3 * ps)) : z;
#define V_STEP(i, _)                                                                                           \
    if (MR > i) {                                                                                              \
        const __m512i av = _mm512_xor_si512(_mm512_set1_epi32((int)load_u32(p##i + 4 * g)), flip);             \
        c##i##_0 = _mm512_dpbusd_epi32(c##i##_0, av, w0);                                                      \
        if (NV > 1) c##i##_1 = _mm512_dpbusd_epi32(c##i##_1, av, w1);                                          \
        if (NV > 2) c##i##_2 = _mm512_dpbusd_epi32(c##i##_2, av, w2);                                          \
        if (NV > 3) c##i##_3 = _mm512_dpbusd_epi32(c##i##_3, av, w3);                                          \
    }
            TILE_ROWS(V_STEP, 0)
#undef V_STEP
        }
    }
#define V_STORE(i, _)                                                                                          \
    if (MR > i) {                                                                                              \
        acc[i * 4 + 0] = c##i##_0;                                                                             \
        if (NV > 1) acc[i * 4 + 1] = c##i##_1;                                                                 \
        if (NV > 2) acc[i * 4 + 2] = c##i##_2;                                                                 \
        if (NV > 3) acc[i * 4 + 3] = c##i##_3;                                                                 \
    }
    TILE_ROWS(V_STORE, 0)
#undef V_STORE
}

TML_S8_INLINE TML_S8_TGT_VNNI void vnni_epilogue64_m(const int MODE, int mr, const __m512i *acc,
                                                      const tml_s8_gemm_b *b, int c0, int8_t *y, ptrdiff_t ldy)
{
    __m512i r[12 * 4];
    for (int v = 0; v < 4; v++) { /* per vector: its constants stay in registers over the rows */
        const int c = c0 + 16 * v;
        if (MODE != 0) { /* precomputed at preparation (b->ep) */
            const __m512i *k = (const __m512i *)b->ep + (c / 16) * 6;
            const __m512i mult = k[0], mult_o = k[1], sh_e = k[2], sh_o = k[3], add_e = k[4], add_o = k[5];
            if (MODE == 3)
                for (int i = 0; i < mr; i++)
                    r[i * 4 + v] = tml_s8_rq512_relu_blend_s(acc[i * 4 + v], mult, mult_o, sh_e, sh_o,
                                                             add_e, add_o);
            else if (MODE == 2)
                for (int i = 0; i < mr; i++)
                    r[i * 4 + v] = tml_s8_rq512_relu_blend(acc[i * 4 + v], mult, mult_o, sh_e, sh_o,
                                                           add_e, add_o);
            else
                for (int i = 0; i < mr; i++)
                    r[i * 4 + v] = tml_s8_rq512_simple(acc[i * 4 + v], mult, mult_o, sh_e, sh_o,
                                                       add_e, add_o, b->tfl);
        } else {
            const __m512i mult = _mm512_load_si512((const void *)(b->mult + c));
            const __m512i rsh = _mm512_load_si512((const void *)(b->rsh + c));
            const __m512i lsh = _mm512_load_si512((const void *)(b->lsh + c));
            for (int i = 0; i < mr; i++)
                r[i * 4 + v] = tml_s8_rq512(acc[i * 4 + v], mult, lsh, rsh, b->any_lsh, b->tfl);
        }
    }
    const __m512i zp16 = _mm512_set1_epi16((short)b->out_zp);
    const __m512i lo8 = _mm512_set1_epi8((char)b->act_min), hi8 = _mm512_set1_epi8((char)b->act_max);
    /* lane L of vector v (channels 16v + 4L .. +3) is dword 4L + v of the packs */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int i = 0; i < mr; i++) {
        const __m512i o = MODE == 3 ? tml_s8_pack4z_512(r[i * 4], r[i * 4 + 1], r[i * 4 + 2], r[i * 4 + 3], lo8, hi8,
                                                        b->act_max < 127)
                                    : tml_s8_pack4_512(r[i * 4], r[i * 4 + 1], r[i * 4 + 2], r[i * 4 + 3], zp16, lo8, hi8);
        _mm512_storeu_si512((void *)(y + i * ldy + c0), _mm512_permutexvar_epi32(order, o));
    }
}

/* The epilogue of an mr x 64 tile whose 64 columns are all present: the four
 * vectors of a row requantized, packed to int8 with the zero point and the
 * clamp in three saturating packs (tml_s8_pack4_512) and put back in channel
 * order by one dword permute (the packs interleave the vectors by 128-bit
 * lane): 8 instructions for 64 outputs instead of 20. (Measured: no gain at
 * 2 or 3 vectors, slower when the tile shapes share one function.) */
TML_S8_INLINE TML_S8_TGT_VNNI void vnni_epilogue64(int mr, const __m512i *acc, const tml_s8_gemm_b *b, int c0, int8_t *y,
                                            ptrdiff_t ldy)
{
    if (b->relu_s)
        vnni_epilogue64_m(3, mr, acc, b, c0, y, ldy);
    else if (b->relu)
        vnni_epilogue64_m(2, mr, acc, b, c0, y, ldy);
    else if (b->simple)
        vnni_epilogue64_m(1, mr, acc, b, c0, y, ldy);
    else
        vnni_epilogue64_m(0, mr, acc, b, c0, y, ldy);
}

/* Requantizes and stores an mr x 16*nv tile of accumulators acc[i*4 + v]
 * (corrections included). */
TML_S8_INLINE TML_S8_TGT_VNNI void vnni_epilogue(int mr, int nv, const __m512i *acc, const tml_s8_gemm_b *b, int c0,
                                          int ncols, int8_t *y, ptrdiff_t ldy)
{
    if (nv == 4 && ncols == 64) {
        vnni_epilogue64(mr, acc, b, c0, y, ldy);
        return;
    }
    const __m512i zp = _mm512_set1_epi32(b->out_zp);
    const __m512i lo = _mm512_set1_epi32(b->act_min - b->out_zp), hi = _mm512_set1_epi32(b->act_max - b->out_zp);
    for (int v = 0; v < nv; v++) {
        const int c = c0 + 16 * v;
        const __m512i mult = _mm512_load_si512((const void *)(b->mult + c));
        const __m512i rsh = _mm512_load_si512((const void *)(b->rsh + c));
        const int left = ncols - 16 * v;
        const __mmask16 km = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        if (b->simple) {
            /* the one-step constants (b->ep holds the blend form when relu) */
            __m512i sh_e, sh_o, add_e, add_o;
            tml_s8_simple_consts512(rsh, &sh_e, &sh_o, &add_e, &add_o);
            const __m512i mult_o = _mm512_srli_epi64(mult, 32);
            if (left <= 8) { /* a narrow channel edge: 8 lanes cost half */
#define LO256(v_) _mm512_castsi512_si256(v_)
                for (int i = 0; i < mr; i++)
                    _mm_mask_storeu_epi8(y + i * ldy + c, km,
                                         tml_s8_out256vl_simple(LO256(acc[i * 4 + v]),
                                                                LO256(mult), LO256(mult_o), LO256(sh_e), LO256(sh_o),
                                                                LO256(add_e), LO256(add_o), LO256(lo), LO256(hi),
                                                                LO256(zp), b->relu, b->tfl));
#undef LO256
            } else if (b->relu) {
                for (int i = 0; i < mr; i++)
                    _mm_mask_storeu_epi8(y + i * ldy + c, km,
                                         tml_s8_out512_relu(acc[i * 4 + v], mult, mult_o, sh_e,
                                                            sh_o, add_e, add_o, lo, hi, zp));
            } else {
                for (int i = 0; i < mr; i++)
                    _mm_mask_storeu_epi8(y + i * ldy + c, km,
                                         tml_s8_out512_simple(acc[i * 4 + v], mult, mult_o,
                                                              sh_e, sh_o, add_e, add_o, lo, hi, zp, b->tfl));
            }
        } else {
            const __m512i lsh = _mm512_load_si512((const void *)(b->lsh + c));
            for (int i = 0; i < mr; i++)
                _mm_mask_storeu_epi8(y + i * ldy + c, km,
                                     tml_s8_out512(acc[i * 4 + v], mult, lsh, rsh, b->any_lsh,
                                                   lo, hi, zp, b->tfl));
        }
    }
}

/* Each tile shape is its own small function: inlined all into one driver,
 * GCC's register allocator surrounds every vpdpbusd with register copies. */
typedef void (*vnni_tile_fn)(const int8_t *const *arow, const int8_t *a, ptrdiff_t lda, int nseg, int g4,
                             const int8_t *bp, ptrdiff_t ps, const tml_s8_gemm_b *b, int c0, int ncols, int8_t *y,
                             ptrdiff_t ldy);
#define VNNI_FN1(MR, NV, STR, NAME)                                                                            \
    static __attribute__((noinline)) TML_S8_TGT_VNNI void NAME(                                                \
        const int8_t *const *arow, const int8_t *a, ptrdiff_t lda, int nseg, int g4, const int8_t *bp,         \
        ptrdiff_t ps, const tml_s8_gemm_b *b, int c0, int ncols, int8_t *y, ptrdiff_t ldy)                     \
    {                                                                                                          \
        __m512i acc[(MR)*4];                                                                                   \
        vnni_tile(MR, NV, STR, arow, a, lda, nseg, g4, bp, ps, b->corr + c0, acc);                             \
        vnni_epilogue(MR, NV, acc, b, c0, ncols, y, ldy);                                                      \
    }
/* each shape twice: rows by pointers, and rows at a stride (pointwise) */
#define VNNI_FN(MR, NV) VNNI_FN1(MR, NV, 0, vnni_tile_##MR##_##NV) VNNI_FN1(MR, NV, 1, vnni_tile_s##MR##_##NV)
#define VNNI_FNS(NV, MRBIG) VNNI_FN(MRBIG, NV) VNNI_FN(4, NV) VNNI_FN(2, NV) VNNI_FN(1, NV)
VNNI_FNS(1, 12)
VNNI_FNS(2, 12)
VNNI_FNS(3, 8)
VNNI_FNS(4, 5)
#undef VNNI_FNS
#undef VNNI_FN
#undef VNNI_FN1

/* [nv - 1]: the tile functions for MR = big, 4, 2, 1. */
typedef struct vnni_shape {
    int mr_big;
    vnni_tile_fn fn[4], fs[4]; /* fs: rows at a stride */
} vnni_shape;
static const vnni_shape VNNI_SHAPES[4] = {
    {12,
     {vnni_tile_12_1, vnni_tile_4_1, vnni_tile_2_1, vnni_tile_1_1},
     {vnni_tile_s12_1, vnni_tile_s4_1, vnni_tile_s2_1, vnni_tile_s1_1}},
    {12,
     {vnni_tile_12_2, vnni_tile_4_2, vnni_tile_2_2, vnni_tile_1_2},
     {vnni_tile_s12_2, vnni_tile_s4_2, vnni_tile_s2_2, vnni_tile_s1_2}},
    {8,
     {vnni_tile_8_3, vnni_tile_4_3, vnni_tile_2_3, vnni_tile_1_3},
     {vnni_tile_s8_3, vnni_tile_s4_3, vnni_tile_s2_3, vnni_tile_s1_3}},
    {5,
     {vnni_tile_5_4, vnni_tile_4_4, vnni_tile_2_4, vnni_tile_1_4},
     {vnni_tile_s5_4, vnni_tile_s4_4, vnni_tile_s2_4, vnni_tile_s1_4}},
};

/* For each block of up to 4 panels (64 channels): all rows in tiles of
 * mr_big rows, then 4, 2, 1. A is arow (row / segment pointers) when lda is
 * 0, else one segment per row at a + i*lda. */
static void gemm_vnni(const tml_s8_gemm_b *b, int m, const int8_t *const *arow, const int8_t *a, ptrdiff_t lda,
                      int8_t *y, ptrdiff_t ldy)
{
    const int nseg = b->nseg, g4 = b->seg4 / 4;
    const ptrdiff_t ps = (ptrdiff_t)nseg * b->seg4 * 16; /* bytes per panel */
    for (int c0 = 0; c0 < b->n; c0 += 64) {
        const int ncols = b->n - c0 < 64 ? b->n - c0 : 64;
        const vnni_shape *sh = &VNNI_SHAPES[(ncols + 15) / 16 - 1];
        const vnni_tile_fn *fn = lda ? sh->fs : sh->fn;
        const int8_t *bp = (const int8_t *)b->wp + (ptrdiff_t)(c0 / 16) * ps;
        int i = 0;
#define VNNI_A(i_) lda ? NULL : arow + (i_) * nseg, lda ? a + (i_) * lda : NULL
        for (; i + sh->mr_big <= m; i += sh->mr_big)
            fn[0](VNNI_A(i), lda, nseg, g4, bp, ps, b, c0, ncols, y + i * ldy, ldy);
        for (; i + 4 <= m; i += 4) fn[1](VNNI_A(i), lda, nseg, g4, bp, ps, b, c0, ncols, y + i * ldy, ldy);
        for (; i + 2 <= m; i += 2) fn[2](VNNI_A(i), lda, nseg, g4, bp, ps, b, c0, ncols, y + i * ldy, ldy);
        for (; i < m; i++) fn[3](VNNI_A(i), lda, nseg, g4, bp, ps, b, c0, ncols, y + i * ldy, ldy);
#undef VNNI_A
    }
}

/* ---- AVX2 ------------------------------------------------------------------------------ */

TML_S8_INLINE TML_S8_TGT_AVX2 void avx2_tile(const int MR, const int NV, const int16_t *a, ptrdiff_t lda, int k2,
                                             const int16_t *bp, ptrdiff_t ps, const tml_s8_gemm_b *b, int c0,
                                             int ncols, int8_t *y, ptrdiff_t ldy)
{
    const __m256i z = _mm256_setzero_si256();
#define A_DECL(i, _) __m256i c##i##_0 = z, c##i##_1 = z;
    TILE_ROWS(A_DECL, 0)
#undef A_DECL
#define A_STEP(i, _)                                                                                           \
    if (MR > i) {                                                                                              \
        int32_t u;                                                                                             \
        memcpy(&u, a + i * lda + 2 * kb, 4);                                                                   \
        const __m256i av = _mm256_set1_epi32(u);                                                               \
        c##i##_0 = _mm256_add_epi32(c##i##_0, _mm256_madd_epi16(av, w0));                                      \
        if (NV > 1) c##i##_1 = _mm256_add_epi32(c##i##_1, _mm256_madd_epi16(av, w1));                          \
    }
    for (int kb = 0; kb < k2 / 2; kb++) {
        const __m256i w0 = _mm256_load_si256((const __m256i *)(const void *)(bp + kb * 16));
        const __m256i w1 = NV > 1 ? _mm256_load_si256((const __m256i *)(const void *)(bp + ps + kb * 16)) : z;
        TILE_ROWS(A_STEP, 0)
    }
#undef A_STEP
    /* the sums go through memory to the epilogue: with the epilogue's
     * constants live in the same scope, GCC kept some accumulators on the
     * stack inside the k loop (measured on Zen 3) */
    __m256i acc_[12][2];
#define A_SAVE(i, _)                                                                                               if (MR > i) {                                                                                                      acc_[i][0] = c##i##_0;                                                                                         if (NV > 1) acc_[i][1] = c##i##_1;                                                                         }
    TILE_ROWS(A_SAVE, 0)
#undef A_SAVE
    __asm__ volatile("" : : "r"(acc_) : "memory");
    const __m256i zp = _mm256_set1_epi32(b->out_zp);
    const __m256i lo = _mm256_set1_epi32(b->act_min - b->out_zp), hi = _mm256_set1_epi32(b->act_max - b->out_zp);
#define A_OUT(i, v)                                                                                            \
    if (MR > i)                                                                                                \
        tml_s8_store8(y + i * ldy + c,                                                                         \
                      tml_s8_out256(_mm256_add_epi32(acc_[i][v], corr), mult, lsh, rsh, b->any_lsh, lo, hi, zp, b->tfl), \
                      left);
#define A_OUT_S(i, v)                                                                                          \
    if (MR > i)                                                                                                \
        tml_s8_store8(y + i * ldy + c,                                                                         \
                      tml_s8_out256_simple(_mm256_add_epi32(acc_[i][v], corr), mult, mult_o, sh_e, sh_o, add_e, add_o, \
                                           lo, hi, zp, b->tfl),                                                \
                      left);
#define A_EPI(v)                                                                                               \
    if (NV > v) {                                                                                              \
        const int c = c0 + 8 * v;                                                                              \
        const __m256i corr = _mm256_loadu_si256((const __m256i *)(const void *)(b->corr + c));                 \
        const __m256i mult = _mm256_loadu_si256((const __m256i *)(const void *)(b->mult + c));                 \
        const __m256i rsh = _mm256_loadu_si256((const __m256i *)(const void *)(b->rsh + c));                   \
        const int left = ncols - 8 * v;                                                                        \
        if (b->simple) {                                                                                       \
            __m256i sh_e, sh_o, add_e, add_o;                                                                  \
            tml_s8_simple_consts256(rsh, &sh_e, &sh_o, &add_e, &add_o);                                        \
            const __m256i mult_o = _mm256_srli_epi64(mult, 32);                                                \
            TILE_ROWS(A_OUT_S, v)                                                                              \
        } else {                                                                                               \
            const __m256i lsh = _mm256_loadu_si256((const __m256i *)(const void *)(b->lsh + c));               \
            TILE_ROWS(A_OUT, v)                                                                                \
        }                                                                                                      \
    }
    A_EPI(0)
    A_EPI(1)
#undef A_EPI
#undef A_OUT
#undef A_OUT_S
}

typedef void (*avx2_tile_fn)(const int16_t *a, ptrdiff_t lda, int k2, const int16_t *bp, ptrdiff_t ps,
                             const tml_s8_gemm_b *b, int c0, int ncols, int8_t *y, ptrdiff_t ldy);
#define AVX2_FN(MR, NV)                                                                                        \
    static __attribute__((noinline)) TML_S8_TGT_AVX2 void avx2_tile_##MR##_##NV(                               \
        const int16_t *a, ptrdiff_t lda, int k2, const int16_t *bp, ptrdiff_t ps, const tml_s8_gemm_b *b, int c0, \
        int ncols, int8_t *y, ptrdiff_t ldy)                                                                   \
    {                                                                                                          \
        avx2_tile(MR, NV, a, lda, k2, bp, ps, b, c0, ncols, y, ldy);                                           \
    }
AVX2_FN(12, 1)
AVX2_FN(4, 1)
AVX2_FN(2, 1)
AVX2_FN(1, 1)
AVX2_FN(6, 2)
AVX2_FN(4, 2)
AVX2_FN(2, 2)
AVX2_FN(1, 2)
#undef AVX2_FN

typedef struct avx2_shape {
    int mr_big;
    avx2_tile_fn fn[4];
} avx2_shape;
static const avx2_shape AVX2_SHAPES[2] = {
    {12, {avx2_tile_12_1, avx2_tile_4_1, avx2_tile_2_1, avx2_tile_1_1}},
    {6, {avx2_tile_6_2, avx2_tile_4_2, avx2_tile_2_2, avx2_tile_1_2}},
};

static void gemm_avx2(const tml_s8_gemm_b *b, int m, const int16_t *a, ptrdiff_t lda, int8_t *y, ptrdiff_t ldy)
{
    const int k2 = (b->k + 1) / 2 * 2;
    const ptrdiff_t ps = (ptrdiff_t)k2 * 8; /* int16 per panel */
    for (int c0 = 0; c0 < b->n; c0 += 16) {
        const int ncols = b->n - c0 < 16 ? b->n - c0 : 16;
        const avx2_shape *sh = &AVX2_SHAPES[ncols > 8 ? 1 : 0];
        const int16_t *bp = (const int16_t *)b->wp + (ptrdiff_t)(c0 / 8) * ps;
        int i = 0;
        for (; i + sh->mr_big <= m; i += sh->mr_big)
            sh->fn[0](a + i * lda, lda, k2, bp, ps, b, c0, ncols, y + i * ldy, ldy);
        for (; i + 4 <= m; i += 4) sh->fn[1](a + i * lda, lda, k2, bp, ps, b, c0, ncols, y + i * ldy, ldy);
        for (; i + 2 <= m; i += 2) sh->fn[2](a + i * lda, lda, k2, bp, ps, b, c0, ncols, y + i * ldy, ldy);
        for (; i < m; i++) sh->fn[3](a + i * lda, lda, k2, bp, ps, b, c0, ncols, y + i * ldy, ldy);
    }
}

#endif /* TML_S8_X86 */

void tml_s8_gemm_run(const tml_s8_gemm_b *b, int m, const void *a, ptrdiff_t lda, int8_t *y, ptrdiff_t ldy)
{
    if (m <= 0 || b->n <= 0) return;
#ifdef TML_S8_X86
    if (b->isa == TML_S8_ISA_AVX2) {
        gemm_avx2(b, m, (const int16_t *)a, lda, y, ldy);
        return;
    }
#endif
    gemm_generic(b, m, (const int8_t *)a, lda, y, ldy);
}

void tml_s8_gemm_run_ind(const tml_s8_gemm_b *b, int m, const int8_t *const *arow, int8_t *y, ptrdiff_t ldy)
{
    if (m <= 0 || b->n <= 0) return;
#ifdef TML_S8_X86
    gemm_vnni(b, m, arow, NULL, 0, y, ldy);
#else
    (void)arow, (void)y, (void)ldy;
#endif
}

void tml_s8_gemm_run_strided(const tml_s8_gemm_b *b, int m, const int8_t *a, ptrdiff_t lda, int8_t *y, ptrdiff_t ldy)
{
    if (m <= 0 || b->n <= 0) return;
#ifdef TML_S8_X86
    TML_ASSERT(b->nseg == 1 && lda > 0);
    gemm_vnni(b, m, NULL, a, lda, y, ldy);
#else
    (void)a, (void)lda, (void)y, (void)ldy;
#endif
}
