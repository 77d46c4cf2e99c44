/*
 * export_kernels.c - the kernels of the generated C source (as text), and the
 * text buffer the exporter writes with.
 *
 * The kernels are plain scalar C99 computing exactly what the integer engine
 * computes (the _ref kernels of lib/ops, docs/numerics.md), rewritten for
 * a device:
 *   - the input zero point is folded into the bias at export time
 *     (bias' = bias - zx * sum(w)), so inner loops multiply the stored int8
 *     values; taps in the padding read zx, which bias' cancels exactly (real
 *     zero padding, as the engine's "skip the tap");
 *   - conv, depthwise and dense share one matrix-vector product per output
 *     pixel (`wmat`, four weight forms); depthwise is a grouped conv with one
 *     input channel per group (its weights are exported transposed);
 *   - right shifts are applied to non-negative values only, and every other
 *     operation is defined by C99 (no implementation-defined behaviour);
 *   - nothing but <stdint.h> types and memcpy/memset is used.
 * The exporter's test compiles the result with -std=c99 -pedantic -Werror and
 * checks it against the engine bit for bit.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"

/* ---- text buffer ------------------------------------------------------------------- */

static int sb_reserve(tml_sb *s, size_t extra)
{
    if (s->oom) return 0;
    if (s->len + extra + 1 <= s->cap) return 1;
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + extra + 1) cap *= 2;
    char *b = realloc(s->buf, cap);
    if (!b) {
        s->oom = 1;
        return 0;
    }
    s->buf = b;
    s->cap = cap;
    return 1;
}

void tml_sb_puts(tml_sb *s, const char *text)
{
    size_t n = strlen(text);
    if (!sb_reserve(s, n)) return;
    memcpy(s->buf + s->len, text, n + 1);
    s->len += n;
}

void tml_sb_printf(tml_sb *s, const char *fmt, ...)
{
    if (s->oom) return;
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->cap > s->len ? s->cap - s->len : 0;
    int n = vsnprintf(room ? s->buf + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s->oom = 1;
        return;
    }
    if ((size_t)n < room) {
        s->len += (size_t)n;
        return;
    }
    if (!sb_reserve(s, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

char *tml_sb_take(tml_sb *s)
{
    char *b = s->oom ? NULL : s->buf;
    if (s->oom) free(s->buf);
    if (b && !s->len) {
        free(b);
        b = calloc(1, 1);
    }
    s->buf = NULL;
    s->len = s->cap = 0;
    s->oom = 0;
    return b;
}

void tml_sb_free(tml_sb *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}

/* ---- the kernel pieces ------------------------------------------------------------- */

/* Each piece is the portable C99 text and, for the kernels that have one, the
 * Cortex-M DSP text (k_*_dsp): the same function names and results, chosen
 * by the compiler through TML_DSP (see tml_exk_emit). */

static const char k_dsp_prelude_dsp[] =
    "/* The Cortex-M DSP extension through GCC / clang inline assembly: each\n"
    " * helper is one instruction. Word loads and stores go through memcpy (one\n"
    " * LDR / STR: unaligned word access is allowed on the cores with DSP). */\n"
    "#define TML_AI static inline __attribute__((always_inline))\n"
    "TML_AI uint32_t ld32(const void *p)\n"
    "{\n"
    "    uint32_t v;\n"
    "    memcpy(&v, p, 4);\n"
    "    return v;\n"
    "}\n"
    "TML_AI void st32(void *p, uint32_t v) { memcpy(p, &v, 4); }\n"
    "/* bytes 0 and 2 of x sign-extended into two halfwords */\n"
    "TML_AI uint32_t sxtb16(uint32_t x)\n"
    "{\n"
    "    uint32_t r;\n"
    "    __asm__(\"sxtb16 %0, %1\" : \"=r\"(r) : \"r\"(x));\n"
    "    return r;\n"
    "}\n"
    "/* bytes 1 and 3 */\n"
    "TML_AI uint32_t sxtb16_r8(uint32_t x)\n"
    "{\n"
    "    uint32_t r;\n"
    "    __asm__(\"sxtb16 %0, %1, ror #8\" : \"=r\"(r) : \"r\"(x));\n"
    "    return r;\n"
    "}\n"
    "/* acc + a.lo * b.lo + a.hi * b.hi (signed halfwords) */\n"
    "TML_AI int32_t smlad(uint32_t a, uint32_t b, int32_t acc)\n"
    "{\n"
    "    int32_t r;\n"
    "    __asm__(\"smlad %0, %1, %2, %3\" : \"=r\"(r) : \"r\"(a), \"r\"(b), \"r\"(acc));\n"
    "    return r;\n"
    "}\n"
    "TML_AI int32_t smlabb(uint32_t a, uint32_t b, int32_t acc)\n"
    "{\n"
    "    int32_t r;\n"
    "    __asm__(\"smlabb %0, %1, %2, %3\" : \"=r\"(r) : \"r\"(a), \"r\"(b), \"r\"(acc));\n"
    "    return r;\n"
    "}\n"
    "TML_AI int32_t smlatt(uint32_t a, uint32_t b, int32_t acc)\n"
    "{\n"
    "    int32_t r;\n"
    "    __asm__(\"smlatt %0, %1, %2, %3\" : \"=r\"(r) : \"r\"(a), \"r\"(b), \"r\"(acc));\n"
    "    return r;\n"
    "}\n"
    "TML_AI int32_t smlatb(uint32_t a, uint32_t b, int32_t acc)\n"
    "{\n"
    "    int32_t r;\n"
    "    __asm__(\"smlatb %0, %1, %2, %3\" : \"=r\"(r) : \"r\"(a), \"r\"(b), \"r\"(acc));\n"
    "    return r;\n"
    "}\n"
    "/* (a.lo, b.lo) and (a.hi, b.hi) as halfword pairs */\n"
    "TML_AI uint32_t pkhbt(uint32_t a, uint32_t b)\n"
    "{\n"
    "    uint32_t r;\n"
    "    __asm__(\"pkhbt %0, %1, %2, lsl #16\" : \"=r\"(r) : \"r\"(a), \"r\"(b));\n"
    "    return r;\n"
    "}\n"
    "TML_AI uint32_t pkhtb(uint32_t a, uint32_t b)\n"
    "{\n"
    "    uint32_t r;\n"
    "    __asm__(\"pkhtb %0, %1, %2, asr #16\" : \"=r\"(r) : \"r\"(b), \"r\"(a));\n"
    "    return r;\n"
    "}\n"
    "/* x saturated to [-128, 127] */\n"
    "TML_AI int32_t ssat8(int32_t x)\n"
    "{\n"
    "    int32_t r;\n"
    "    __asm__(\"ssat %0, #8, %1\" : \"=r\"(r) : \"r\"(x));\n"
    "    return r;\n"
    "}\n"
    "/* bytewise signed max / min of four int8 lanes (SSUB8 sets the GE flags, SEL picks) */\n"
    "TML_AI uint32_t max8x4(uint32_t a, uint32_t b)\n"
    "{\n"
    "    uint32_t r;\n"
    "    __asm__(\"ssub8 %0, %1, %2\\n\\tsel %0, %1, %2\" : \"=&r\"(r) : \"r\"(a), \"r\"(b) : \"cc\");\n"
    "    return r;\n"
    "}\n"
    "TML_AI uint32_t min8x4(uint32_t a, uint32_t b)\n"
    "{\n"
    "    uint32_t r;\n"
    "    __asm__(\"ssub8 %0, %1, %2\\n\\tsel %0, %2, %1\" : \"=&r\"(r) : \"r\"(a), \"r\"(b) : \"cc\");\n"
    "    return r;\n"
    "}\n"
    "/* four int32 values already in [-128, 127] as the bytes of one word */\n"
    "TML_AI uint32_t pack4(int32_t a, int32_t b, int32_t c, int32_t d)\n"
    "{\n"
    "    uint32_t w = (uint32_t)a & 0xFFu;\n"
    "    w |= ((uint32_t)b & 0xFFu) << 8;\n"
    "    w |= ((uint32_t)c & 0xFFu) << 16;\n"
    "    return w | (uint32_t)d << 24;\n"
    "}\n"
    "/* a clamp bound in all four bytes */\n"
    "TML_AI uint32_t bytes4(int32_t v) { return ((uint32_t)v & 0xFFu) * 0x01010101u; }\n"
    "\n";

static const char k_requant[] =
    "/* round(a * b / 2^31): the high half of the doubled 64-bit product\n"
    " * (gemmlowp's SaturatingRoundingDoublingHighMul). The one result that does\n"
    " * not fit, a == b == INT32_MIN, saturates. C99 division truncates toward\n"
    " * zero, so adding +-2^30 before dividing rounds half away from zero\n"
    " * (tinyml's rounding); TFLite's (TML_TFL_ROUND 1) nudges negative products\n"
    " * by 1 - 2^30, rounding their ties toward +infinity. */\n"
    "static int32_t mul_hi(int32_t a, int32_t b)\n"
    "{\n"
    "    int64_t ab;\n"
    "    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;\n"
    "    ab = (int64_t)a * (int64_t)b;\n"
    "    ab += ab >= 0 ? ((int64_t)1 << 30) : TML_TFL_ROUND - ((int64_t)1 << 30);\n"
    "    return (int32_t)(ab / ((int64_t)1 << 31));\n"
    "}\n"
    "\n"
    "/* x / 2^n rounded half away from zero, n in [0, 31]. Only non-negative\n"
    " * values are shifted (a right shift of a negative value is\n"
    " * implementation-defined in C). */\n"
    "static int32_t div_pot(int32_t x, int32_t n)\n"
    "{\n"
    "    const int64_t half = n > 0 ? (int64_t)1 << (n - 1) : 0;\n"
    "    if (x >= 0) return (int32_t)(((int64_t)x + half) >> n);\n"
    "    return (int32_t)-((-(int64_t)x + half) >> n);\n"
    "}\n"
    "\n"
    "/* acc * mult * 2^(shift - 31) in two roundings: a saturating left shift\n"
    " * (shift > 0), the rounding doubling high multiply, the rounding right\n"
    " * shift (shift < 0). mult = round(M * 2^31 / 2^shift) for the real\n"
    " * multiplier M = in_scale * w_scale / out_scale, computed at export. */\n"
    "static int32_t requant(int32_t acc, int32_t mult, int32_t shift)\n"
    "{\n"
    "    int64_t v = acc;\n"
    "    if (shift > 0) {\n"
    "        v *= (int64_t)1 << shift;\n"
    "        if (v > INT32_MAX) v = INT32_MAX;\n"
    "        if (v < INT32_MIN) v = INT32_MIN;\n"
    "    }\n"
    "    return div_pot(mul_hi((int32_t)v, mult), shift > 0 ? 0 : -shift);\n"
    "}\n"
    "\n"
    "static int8_t clamp8(int32_t v, int32_t lo, int32_t hi)\n"
    "{\n"
    "    return (int8_t)(v < lo ? lo : v > hi ? hi : v);\n"
    "}\n"
    "\n";

static const char k_requant_dsp[] =
    "/* The same requantization as the portable requant(): the two roundings,\n"
    " * half away from zero, in fewer instructions. SMULL, then floor(v / 2^k)\n"
    " * of v + 2^(k-1) - (v < 0) with arithmetic right shifts (GCC and clang\n"
    " * define >> of a negative value so). The exporter checks that no\n"
    " * accumulator can reach 2^30, so the 32-bit sums cannot overflow, and that\n"
    " * mult >= 0 (the doubling high multiply cannot saturate). The rare\n"
    " * multipliers >= 0.5 (shift >= 0) take the out-of-line requant_slow().\n"
    " * TFLite rounding (TML_TFL_ROUND 1) drops the - (v < 0) of the high\n"
    " * multiply: floor((p + 2^30) / 2^31), ties toward +infinity. */\n"
    "static int32_t requant_slow(int32_t acc, int32_t mult, int32_t shift)\n"
    "{\n"
    "    int64_t p = (int64_t)acc * ((int64_t)1 << shift);\n"
    "    acc = p > INT32_MAX ? INT32_MAX : p < INT32_MIN ? INT32_MIN : (int32_t)p;\n"
    "    p = (int64_t)acc * mult;\n"
    "    p += ((int64_t)1 << 30) - (TML_TFL_ROUND ? 0 : (int64_t)((uint64_t)p >> 63));\n"
    "    return (int32_t)(p >> 31);\n"
    "}\n"
    "\n"
    "TML_AI int32_t requant(int32_t acc, int32_t mult, int32_t shift)\n"
    "{\n"
    "    int64_t p;\n"
    "    int32_t r, n = -shift;\n"
    "    if (shift >= 0) return requant_slow(acc, mult, shift);\n"
    "    p = (int64_t)acc * mult;\n"
    "    p += ((int64_t)1 << 30) - (TML_TFL_ROUND ? 0 : (int64_t)((uint64_t)p >> 63));\n"
    "    r = (int32_t)(p >> 31);\n"
    "    return (r + (int32_t)(((uint32_t)1 << n) >> 1) - (int32_t)((uint32_t)r >> 31)) >> n;\n"
    "}\n"
    "\n"
    "TML_AI int8_t clamp8(int32_t v, int32_t lo, int32_t hi)\n"
    "{\n"
    "    v = ssat8(v);\n"
    "    return (int8_t)(v < lo ? lo : v > hi ? hi : v);\n"
    "}\n"
    "\n";

static const char k_widen_dsp[] =
    "/* Receptive fields as int16 for the DSP matrix kernels. a and b are the\n"
    " * int8 inputs of two pixels (n values, n a multiple of 4; b may equal a).\n"
    " * I layout (dense weights): per 4 columns the pairs a(k, k+1), b(k, k+1),\n"
    " * a(k+2, k+3), b(k+2, k+3), so one LDRD feeds SMLAD for both pixels.\n"
    " * P layout (sparse and clustered weights): per column the pair (a_k, b_k).\n"
    " * N layout (one pixel): a in order. */\n"
    "static void widen_i(const int8_t *a, const int8_t *b, int16_t *d, int32_t n)\n"
    "{\n"
    "    for (; n > 0; n -= 4, a += 4, b += 4, d += 8) {\n"
    "        const uint32_t u = ld32(a), v = ld32(b);\n"
    "        const uint32_t a02 = sxtb16(u), a13 = sxtb16_r8(u), b02 = sxtb16(v), b13 = sxtb16_r8(v);\n"
    "        st32(d, pkhbt(a02, a13));\n"
    "        st32(d + 2, pkhbt(b02, b13));\n"
    "        st32(d + 4, pkhtb(a02, a13));\n"
    "        st32(d + 6, pkhtb(b02, b13));\n"
    "    }\n"
    "}\n"
    "\n"
    "static void widen_p(const int8_t *a, const int8_t *b, int16_t *d, int32_t n)\n"
    "{\n"
    "    for (; n > 0; n -= 4, a += 4, b += 4, d += 8) {\n"
    "        const uint32_t u = ld32(a), v = ld32(b);\n"
    "        const uint32_t a02 = sxtb16(u), a13 = sxtb16_r8(u), b02 = sxtb16(v), b13 = sxtb16_r8(v);\n"
    "        st32(d, pkhbt(a02, b02));\n"
    "        st32(d + 2, pkhbt(a13, b13));\n"
    "        st32(d + 4, pkhtb(a02, b02));\n"
    "        st32(d + 6, pkhtb(a13, b13));\n"
    "    }\n"
    "}\n"
    "\n"
    "static void widen_n(const int8_t *a, int16_t *d, int32_t n)\n"
    "{\n"
    "    for (; n > 0; n -= 4, a += 4, d += 4) {\n"
    "        const uint32_t u = ld32(a), a02 = sxtb16(u), a13 = sxtb16_r8(u);\n"
    "        st32(d, pkhbt(a02, a13));\n"
    "        st32(d + 2, pkhtb(a02, a13));\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_wmat[] =
    "/* The weights of one conv / depthwise / dense layer as a matrix: `rows`\n"
    " * output channels by `cols` taps (conv: the (ky, kx, ci) receptive field of\n"
    " * one output pixel and group; depthwise in a compact form: the kh*kw taps of\n"
    " * one channel; dense: the inputs), stored in one of four forms, with the\n"
    " * requantization of each row. `mm` reads its form: for np pixels it\n"
    " * computes y[p * ys + r] = out8(bias[r] + sum_k W[r][k] * x[p][k]) for r in\n"
    " * [r0, r1). The portable kernels take int8 inputs `stride` apart, the DSP\n"
    " * ones int16 inputs in the layout of their form (see widen_i). */\n"
    "typedef struct wmat wmat;\n"
    "struct wmat {\n"
    "    void (*mm)(const wmat *m, int32_t r0, int32_t r1, const void *x, int32_t np, int8_t *y, int32_t ys);\n"
    "    int32_t form;          /* 1 dense, 2 sparse, 3 clustered, 4 sparse + clustered */\n"
    "    int32_t rows, cols;\n"
    "    int32_t stride;        /* cols rounded up to a multiple of 4 */\n"
    "    const int8_t *val;     /* dense: rows in interleaved pairs (per 4 columns: row r's 4\n"
    "                              weights, row r+1's 4; a last odd row alone), each group of 4\n"
    "                              stored in the order 0 2 1 3, zeros past cols; sparse: the value\n"
    "                              of each stored entry */\n"
    "    const uint8_t *gap;    /* sparse: columns to move forward before each entry */\n"
    "    const uint16_t *row16; /* sparse: first entry of each row (rows + 1 values), */\n"
    "    const uint32_t *row32; /*   16-bit when there are fewer than 2^16 entries */\n"
    "    const uint8_t *code;   /* clustered: `bits`-bit centroid indices, packed LSB first */\n"
    "    const int8_t *book;    /* clustered: k centroids (int8 codes), one book or one per row */\n"
    "    int32_t bits, k, book_per_row;\n"
    "    const int32_t *bias;   /* (rows) bias - input_zero_point * (sum of the row) */\n"
    "    const int32_t *mult;   /* (rows) Q31 multipliers of in_scale * w_scale[r] / out_scale */\n"
    "    const int8_t *shift;   /* (rows) their power-of-two exponents */\n"
    "    int32_t out_zp, act_min, act_max; /* output zero point; fused ReLU/ReLU6 clamp */\n"
    "};\n"
    "\n"
    "/* Output r from its int32 accumulator: requantize, add the output zero\n"
    " * point, clamp to the fused activation's bounds. */\n"
    "#define OUT8(m, r, acc) clamp8(requant((acc), (m)->mult[r], (m)->shift[r]) + (m)->out_zp, (m)->act_min, (m)->act_max)\n"
    "\n";

static const char k_rowstart[] =
    "#define ROW_START(m, r) ((m)->row16 ? (uint32_t)(m)->row16[r] : (m)->row32[r])\n"
    "\n";

static const char k_unpack[] =
    "/* Element i of an array of `bits`-bit values (bits <= 8) packed LSB first;\n"
    " * the array ends with one padding byte so two bytes can always be read. A\n"
    " * macro, so that it is inlined at every optimization level. */\n"
    "#define UNPACK(p, i, bits, mask)                                                                        \\\n"
    "    ((int32_t)((((uint32_t)(p)[(i) * (uint32_t)(bits) >> 3] | (uint32_t)(p)[((i) * (uint32_t)(bits) >> 3) + 1] << 8) >> \\\n"
    "                ((i) * (uint32_t)(bits) & 7u)) & (mask)))\n"
    "\n";

static const char k_mm_dense[] =
    "/* Dense rows (layout: see wmat.val). */\n"
    "static const uint8_t perm4[4] = {0, 2, 1, 3};\n"
    "static void mm_dense(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    const int32_t full = m->cols & ~3;\n"
    "    for (int32_t p = 0; p < np; p++, y += ys) {\n"
    "        const int8_t *x = (const int8_t *)xv + p * m->stride;\n"
    "        for (int32_t r = r0; r < r1; r++) {\n"
    "            const int32_t paired = r < (m->rows & ~1), step = paired ? 8 : 4;\n"
    "            const int8_t *w = m->val + (r & ~1) * m->stride + (paired ? (r & 1) * 4 : 0);\n"
    "            int32_t acc = m->bias[r], k;\n"
    "            for (k = 0; k < full; k += 4, w += step)\n"
    "                acc += x[k] * w[0] + x[k + 1] * w[2] + x[k + 2] * w[1] + x[k + 3] * w[3];\n"
    "            for (; k < m->cols; k++) acc += x[k] * w[perm4[k & 3]];\n"
    "            y[r] = OUT8(m, r, acc);\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_dense_dsp[] =
    "/* Two rows by two pixels, 4 columns: w at the two rows' interleaved weights\n"
    " * (8 bytes), x at the pixels' I-layout inputs (16 bytes); both advance.\n"
    " * SXTB16 of a weight word stored 0 2 1 3 gives the pairs (w0, w1), (w2, w3). */\n"
    "#define MAC_2X2(a00, a01, a10, a11, w, x)                                                                              \\\n"
    "    do {                                                                                                               \\\n"
    "        uint32_t p_, q_, u_, t_, s_;                                                                                   \\\n"
    "        __asm__(\"ldrd %[P], %[Q], [%[X]], #8\\n\\t\"                                                                      \\\n"
    "                \"ldrd %[U], %[T], [%[W]], #8\\n\\t\"                                                                      \\\n"
    "                \"sxtb16 %[S], %[U]\\n\\t\"                                                                                \\\n"
    "                \"smlad %[A00], %[S], %[P], %[A00]\\n\\t\"                                                                 \\\n"
    "                \"smlad %[A01], %[S], %[Q], %[A01]\\n\\t\"                                                                 \\\n"
    "                \"sxtb16 %[S], %[T]\\n\\t\"                                                                                \\\n"
    "                \"smlad %[A10], %[S], %[P], %[A10]\\n\\t\"                                                                 \\\n"
    "                \"smlad %[A11], %[S], %[Q], %[A11]\\n\\t\"                                                                 \\\n"
    "                \"ldrd %[P], %[Q], [%[X]], #8\\n\\t\"                                                                      \\\n"
    "                \"sxtb16 %[U], %[U], ror #8\\n\\t\"                                                                        \\\n"
    "                \"smlad %[A00], %[U], %[P], %[A00]\\n\\t\"                                                                 \\\n"
    "                \"smlad %[A01], %[U], %[Q], %[A01]\\n\\t\"                                                                 \\\n"
    "                \"sxtb16 %[T], %[T], ror #8\\n\\t\"                                                                        \\\n"
    "                \"smlad %[A10], %[T], %[P], %[A10]\\n\\t\"                                                                 \\\n"
    "                \"smlad %[A11], %[T], %[Q], %[A11]\"                                                                     \\\n"
    "                : [A00] \"+r\"(a00), [A01] \"+r\"(a01), [A10] \"+r\"(a10), [A11] \"+r\"(a11), [W] \"+r\"(w), [X] \"+r\"(x),         \\\n"
    "                  [P] \"=&r\"(p_), [Q] \"=&r\"(q_), [U] \"=&r\"(u_), [T] \"=&r\"(t_), [S] \"=&r\"(s_)                            \\\n"
    "                :                                                                                                      \\\n"
    "                : \"memory\");                                                                                           \\\n"
    "    } while (0)\n"
    "\n"
    "/* Two rows, one pixel (N layout), 4 columns. */\n"
    "#define MAC_2X1(a0, a1, w, x)                                                                                          \\\n"
    "    do {                                                                                                               \\\n"
    "        uint32_t p_, q_, u_, t_, s_;                                                                                   \\\n"
    "        __asm__(\"ldrd %[P], %[Q], [%[X]], #8\\n\\t\"                                                                      \\\n"
    "                \"ldrd %[U], %[T], [%[W]], #8\\n\\t\"                                                                      \\\n"
    "                \"sxtb16 %[S], %[U]\\n\\t\"                                                                                \\\n"
    "                \"smlad %[A0], %[S], %[P], %[A0]\\n\\t\"                                                                   \\\n"
    "                \"sxtb16 %[U], %[U], ror #8\\n\\t\"                                                                        \\\n"
    "                \"smlad %[A0], %[U], %[Q], %[A0]\\n\\t\"                                                                   \\\n"
    "                \"sxtb16 %[S], %[T]\\n\\t\"                                                                                \\\n"
    "                \"smlad %[A1], %[S], %[P], %[A1]\\n\\t\"                                                                   \\\n"
    "                \"sxtb16 %[T], %[T], ror #8\\n\\t\"                                                                        \\\n"
    "                \"smlad %[A1], %[T], %[Q], %[A1]\"                                                                       \\\n"
    "                : [A0] \"+r\"(a0), [A1] \"+r\"(a1), [W] \"+r\"(w), [X] \"+r\"(x), [P] \"=&r\"(p_), [Q] \"=&r\"(q_),                \\\n"
    "                  [U] \"=&r\"(u_), [T] \"=&r\"(t_), [S] \"=&r\"(s_)                                                          \\\n"
    "                :                                                                                                      \\\n"
    "                : \"memory\");                                                                                           \\\n"
    "    } while (0)\n"
    "\n"
    "/* The weights of row r: its first group and the step between groups. */\n"
    "TML_AI const int8_t *row_w(const wmat *m, int32_t r, int32_t *step)\n"
    "{\n"
    "    const int32_t paired = r < (m->rows & ~1);\n"
    "    *step = paired ? 8 : 4;\n"
    "    return m->val + (r & ~1) * m->stride + (paired ? (r & 1) * 4 : 0);\n"
    "}\n"
    "\n"
    "/* One row, np pixels (np 1: N layout; 2: I layout). */\n"
    "static void mm_dense_row(const wmat *m, int32_t r, const int16_t *x, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    int32_t step, a0 = m->bias[r], a1 = a0;\n"
    "    const int8_t *w = row_w(m, r, &step);\n"
    "    for (int32_t k = 0; k < m->stride; k += 4, w += step) {\n"
    "        const uint32_t u = ld32(w), w01 = sxtb16(u), w23 = sxtb16_r8(u);\n"
    "        if (np == 2) {\n"
    "            a0 = smlad(w01, ld32(x), a0);\n"
    "            a1 = smlad(w01, ld32(x + 2), a1);\n"
    "            a0 = smlad(w23, ld32(x + 4), a0);\n"
    "            a1 = smlad(w23, ld32(x + 6), a1);\n"
    "            x += 8;\n"
    "        } else {\n"
    "            a0 = smlad(w01, ld32(x), a0);\n"
    "            a0 = smlad(w23, ld32(x + 2), a0);\n"
    "            x += 4;\n"
    "        }\n"
    "    }\n"
    "    y[r] = OUT8(m, r, a0);\n"
    "    if (np == 2) y[ys + r] = OUT8(m, r, a1);\n"
    "}\n"
    "\n"
    "/* Dense rows, DSP: pairs of rows through MAC_2X2 / MAC_2X1 (two loop steps\n"
    " * per pass), four outputs requantized together and clamped bytewise. */\n"
    "static void mm_dense(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    const int16_t *x0 = (const int16_t *)xv;\n"
    "    const int32_t zp = m->out_zp, odd = (m->stride >> 2) & 1;\n"
    "    const uint32_t lo4 = bytes4(m->act_min), hi4 = bytes4(m->act_max);\n"
    "    int32_t r = r0;\n"
    "    if (r & 1) mm_dense_row(m, r++, x0, np, y, ys);\n"
    "    for (; r + 2 <= r1; r += 2) {\n"
    "        const int8_t *w = m->val + r * m->stride, *wend = w + 2 * m->stride;\n"
    "        const int16_t *x = x0;\n"
    "        int32_t a00 = m->bias[r], a01 = a00, a10 = m->bias[r + 1], a11 = a10;\n"
    "        const int32_t m0 = m->mult[r], s0 = m->shift[r], m1 = m->mult[r + 1], s1 = m->shift[r + 1];\n"
    "        uint32_t v;\n"
    "        if (np == 2) {\n"
    "            if (odd) MAC_2X2(a00, a01, a10, a11, w, x);\n"
    "            while (w != wend) {\n"
    "                MAC_2X2(a00, a01, a10, a11, w, x);\n"
    "                MAC_2X2(a00, a01, a10, a11, w, x);\n"
    "            }\n"
    "            v = pack4(ssat8(requant(a00, m0, s0) + zp), ssat8(requant(a10, m1, s1) + zp),\n"
    "                      ssat8(requant(a01, m0, s0) + zp), ssat8(requant(a11, m1, s1) + zp));\n"
    "            v = min8x4(max8x4(v, lo4), hi4);\n"
    "            memcpy(y + r, &v, 2);\n"
    "            v >>= 16;\n"
    "            memcpy(y + ys + r, &v, 2);\n"
    "        } else {\n"
    "            if (odd) MAC_2X1(a00, a10, w, x);\n"
    "            while (w != wend) {\n"
    "                MAC_2X1(a00, a10, w, x);\n"
    "                MAC_2X1(a00, a10, w, x);\n"
    "            }\n"
    "            v = pack4(ssat8(requant(a00, m0, s0) + zp), ssat8(requant(a10, m1, s1) + zp), 0, 0);\n"
    "            v = min8x4(max8x4(v, lo4), hi4);\n"
    "            memcpy(y + r, &v, 2);\n"
    "        }\n"
    "    }\n"
    "    if (r < r1) mm_dense_row(m, r, x0, np, y, ys);\n"
    "}\n"
    "\n";

static const char k_mm_sparse[] =
    "/* Sparse rows (relative indices): only nonzero weights are stored; each\n"
    " * entry moves the column forward by its gap, then multiplies. A gap over\n"
    " * 255 is bridged by filler entries of value 0. */\n"
    "static void mm_sparse(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    for (int32_t p = 0; p < np; p++, y += ys) {\n"
    "        const int8_t *x = (const int8_t *)xv + p * m->stride;\n"
    "        for (int32_t r = r0; r < r1; r++) {\n"
    "            const uint32_t end = ROW_START(m, r + 1);\n"
    "            const int8_t *xp = x;\n"
    "            int32_t acc = m->bias[r];\n"
    "            for (uint32_t e = ROW_START(m, r); e < end; e++) {\n"
    "                xp += m->gap[e];\n"
    "                acc += *xp * m->val[e];\n"
    "            }\n"
    "            y[r] = OUT8(m, r, acc);\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_sparse_dsp[] =
    "/* Sparse rows, DSP: one gap decode serves both pixels, whose inputs are\n"
    " * halfword pairs (P layout); one pixel: its int8 inputs. */\n"
    "static void mm_sparse(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const uint8_t *g = m->gap + ROW_START(m, r), *gend = m->gap + ROW_START(m, r + 1);\n"
    "        const int8_t *v = m->val + ROW_START(m, r);\n"
    "        const int16_t *xp = (const int16_t *)xv;\n"
    "        int32_t a0 = m->bias[r], a1 = a0;\n"
    "        if (np == 2) {\n"
    "            for (; g < gend; g++, v++) {\n"
    "                uint32_t pr;\n"
    "                xp += 2 * *g;\n"
    "                pr = ld32(xp);\n"
    "                a0 = smlabb(pr, (uint32_t)(int32_t)*v, a0);\n"
    "                a1 = smlatb(pr, (uint32_t)(int32_t)*v, a1);\n"
    "            }\n"
    "            y[ys + r] = OUT8(m, r, a1);\n"
    "        } else {\n"
    "            const int8_t *x8 = (const int8_t *)xv;\n"
    "            for (; g < gend; g++, v++) {\n"
    "                x8 += *g;\n"
    "                a0 += *x8 * *v;\n"
    "            }\n"
    "        }\n"
    "        y[r] = OUT8(m, r, a0);\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_cluster[] =
    "/* Clustered rows: weight k of row r is centroid code[r * cols + k] of the\n"
    " * row's codebook. */\n"
    "static void mm_cluster(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    const uint32_t bits = (uint32_t)m->bits, mask = (1u << bits) - 1u;\n"
    "    for (int32_t p = 0; p < np; p++, y += ys) {\n"
    "        const int8_t *x = (const int8_t *)xv + p * m->stride;\n"
    "        for (int32_t r = r0; r < r1; r++) {\n"
    "            const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0);\n"
    "            const uint32_t i0 = (uint32_t)r * (uint32_t)m->cols;\n"
    "            int32_t acc = m->bias[r];\n"
    "            for (uint32_t k = 0; k < (uint32_t)m->cols; k++) acc += x[k] * book[UNPACK(m->code, i0 + k, bits, mask)];\n"
    "            y[r] = OUT8(m, r, acc);\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_cluster_dsp[] =
    "/* Clustered rows, DSP: each index is unpacked once for both pixels (P\n"
    " * layout); one pixel: its int8 inputs. */\n"
    "static void mm_cluster(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    const uint32_t bits = (uint32_t)m->bits, mask = (1u << bits) - 1u;\n"
    "    const int16_t *x = (const int16_t *)xv;\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0);\n"
    "        const uint32_t i0 = (uint32_t)r * (uint32_t)m->cols;\n"
    "        int32_t a0 = m->bias[r], a1 = a0;\n"
    "        if (np == 2) {\n"
    "            for (uint32_t k = 0; k < (uint32_t)m->cols; k++) {\n"
    "                const uint32_t w = (uint32_t)(int32_t)book[UNPACK(m->code, i0 + k, bits, mask)], pr = ld32(x + 2 * k);\n"
    "                a0 = smlabb(pr, w, a0);\n"
    "                a1 = smlatb(pr, w, a1);\n"
    "            }\n"
    "            y[ys + r] = OUT8(m, r, a1);\n"
    "        } else {\n"
    "            const int8_t *x8 = (const int8_t *)xv;\n"
    "            for (uint32_t k = 0; k < (uint32_t)m->cols; k++) a0 += x8[k] * book[UNPACK(m->code, i0 + k, bits, mask)];\n"
    "        }\n"
    "        y[r] = OUT8(m, r, a0);\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_sparse_cluster[] =
    "/* Sparse and clustered rows: nonzero weights only (gaps as mm_sparse),\n"
    " * each stored as a packed codebook index (fillers use the centroid 0). */\n"
    "static void mm_sparse_cluster(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y,\n"
    "                              int32_t ys)\n"
    "{\n"
    "    const uint32_t bits = (uint32_t)m->bits, mask = (1u << bits) - 1u;\n"
    "    for (int32_t p = 0; p < np; p++, y += ys) {\n"
    "        const int8_t *x = (const int8_t *)xv + p * m->stride;\n"
    "        for (int32_t r = r0; r < r1; r++) {\n"
    "            const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0);\n"
    "            const uint32_t end = ROW_START(m, r + 1);\n"
    "            const int8_t *xp = x;\n"
    "            int32_t acc = m->bias[r];\n"
    "            for (uint32_t e = ROW_START(m, r); e < end; e++) {\n"
    "                xp += m->gap[e];\n"
    "                acc += *xp * book[UNPACK(m->code, e, bits, mask)];\n"
    "            }\n"
    "            y[r] = OUT8(m, r, acc);\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_sparse_cluster_dsp[] =
    "/* Sparse and clustered rows, DSP: one gap and index decode for both pixels\n"
    " * (P layout); one pixel: its int8 inputs. */\n"
    "static void mm_sparse_cluster(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y,\n"
    "                              int32_t ys)\n"
    "{\n"
    "    const uint32_t bits = (uint32_t)m->bits, mask = (1u << bits) - 1u;\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0);\n"
    "        const uint32_t end = ROW_START(m, r + 1);\n"
    "        const int16_t *xp = (const int16_t *)xv;\n"
    "        int32_t a0 = m->bias[r], a1 = a0;\n"
    "        uint32_t e = ROW_START(m, r);\n"
    "        if (np == 2) {\n"
    "            for (; e < end; e++) {\n"
    "                uint32_t w, pr;\n"
    "                xp += 2 * m->gap[e];\n"
    "                w = (uint32_t)(int32_t)book[UNPACK(m->code, e, bits, mask)];\n"
    "                pr = ld32(xp);\n"
    "                a0 = smlabb(pr, w, a0);\n"
    "                a1 = smlatb(pr, w, a1);\n"
    "            }\n"
    "            y[ys + r] = OUT8(m, r, a1);\n"
    "        } else {\n"
    "            const int8_t *x8 = (const int8_t *)xv;\n"
    "            for (; e < end; e++) {\n"
    "                x8 += m->gap[e];\n"
    "                a0 += *x8 * book[UNPACK(m->code, e, bits, mask)];\n"
    "            }\n"
    "        }\n"
    "        y[r] = OUT8(m, r, a0);\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_conv_t[] =
    "/* A layer with a window: conv2d (with groups) or depthwise conv. */\n"
    "typedef struct conv_t {\n"
    "    int32_t h, w, c;  /* input (h, w, c) */\n"
    "    int32_t oh, ow;   /* output (oh, ow, m.rows) */\n"
    "    int32_t kh, kw, sh, sw, dh, dw, pad_t, pad_l;\n"
    "    int32_t groups;   /* depthwise: c (one input channel per group) */\n"
    "    int32_t in_zp;    /* input zero point: the value of padding taps */\n"
    "    int32_t direct;   /* 1x1, no groups, never in the padding, c a multiple of 4: the\n"
    "                         receptive field is the input pixel itself */\n"
    "    wmat m;\n"
    "} conv_t;\n"
    "\n";

static const char k_conv[] =
    "/* Conv2d with groups (and depthwise conv in a compact weight form: a group\n"
    " * per input channel), output rows [oy0, oy1). Input row iy is at\n"
    " * x + (iy - x_row0) * x_rs, output row oy at y + (oy - oy0) * y_rs, so a\n"
    " * caller can run a band of rows from a buffer holding only the rows it needs.\n"
    " * For each output pixel and group the receptive field is gathered into\n"
    " * `patch` (kh*kw*c/groups bytes; taps in the padding read the input zero\n"
    " * point, which the folded bias cancels: real zero padding), then the group's\n"
    " * output channels are dot products with it. */\n"
    "static void conv2d(const conv_t *p, int32_t oy0, int32_t oy1, const int8_t *x, int32_t x_row0, int32_t x_rs,\n"
    "                   int8_t *y, int32_t y_rs, void *scratch)\n"
    "{\n"
    "    const int32_t cg = p->c / p->groups, og = p->m.rows / p->groups;\n"
    "    int8_t *patch = (int8_t *)scratch;\n"
    "    for (int32_t oy = oy0; oy < oy1; oy++)\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++) {\n"
    "            int8_t *yp = y + (oy - oy0) * y_rs + ox * p->m.rows;\n"
    "            for (int32_t g = 0; g < p->groups; g++) {\n"
    "                int8_t *d = patch;\n"
    "                for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                    const int32_t iy = oy * p->sh - p->pad_t + ky * p->dh;\n"
    "                    for (int32_t kx = 0; kx < p->kw; kx++, d += cg) {\n"
    "                        const int32_t ix = ox * p->sw - p->pad_l + kx * p->dw;\n"
    "                        if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w) {\n"
    "                            for (int32_t ci = 0; ci < cg; ci++) d[ci] = (int8_t)p->in_zp;\n"
    "                        } else {\n"
    "                            const int8_t *s = x + (iy - x_row0) * x_rs + ix * p->c + g * cg;\n"
    "                            for (int32_t ci = 0; ci < cg; ci++) d[ci] = s[ci];\n"
    "                        }\n"
    "                    }\n"
    "                }\n"
    "                p->m.mm(&p->m, g * og, (g + 1) * og, patch, 1, yp, 0);\n"
    "            }\n"
    "        }\n"
    "}\n"
    "\n";

static const char k_conv_dsp[] =
    "/* The receptive field of output pixel (oy, ox), group g, as int8 at d:\n"
    " * kh*kw*cg values (padding taps read the input zero point), then zeros up\n"
    " * to the matrix stride. Taps inside the input are copied a row at a time. */\n"
    "TML_AI void copy8(int8_t *d, const int8_t *s, int32_t n)\n"
    "{\n"
    "    for (; n >= 4; n -= 4, d += 4, s += 4) st32(d, ld32(s));\n"
    "    for (; n > 0; n--) *d++ = *s++;\n"
    "}\n"
    "\n"
    "static void gather8(const conv_t *p, const int8_t *x, int32_t x_row0, int32_t x_rs, int32_t oy, int32_t ox,\n"
    "                    int32_t g, int8_t *d)\n"
    "{\n"
    "    const int32_t cg = p->c / p->groups, x0 = ox * p->sw - p->pad_l, row = p->kw * cg;\n"
    "    int32_t k0 = 0, k1 = p->kw;\n"
    "    while (k0 < k1 && x0 + k0 * p->dw < 0) k0++;\n"
    "    while (k1 > k0 && x0 + (k1 - 1) * p->dw >= p->w) k1--;\n"
    "    for (int32_t ky = 0; ky < p->kh; ky++, d += row) {\n"
    "        const int32_t iy = oy * p->sh - p->pad_t + ky * p->dh;\n"
    "        if (iy < 0 || iy >= p->h) {\n"
    "            memset(d, p->in_zp, (size_t)row);\n"
    "            continue;\n"
    "        }\n"
    "        const int8_t *s = x + (iy - x_row0) * x_rs + g * cg;\n"
    "        if (k0 > 0) memset(d, p->in_zp, (size_t)(k0 * cg));\n"
    "        if (p->dw == 1 && p->groups == 1)\n"
    "            copy8(d + k0 * cg, s + (x0 + k0) * p->c, (k1 - k0) * cg);\n"
    "        else\n"
    "            for (int32_t kx = k0; kx < k1; kx++) copy8(d + kx * cg, s + (x0 + kx * p->dw) * p->c, cg);\n"
    "        if (k1 < p->kw) memset(d + k1 * cg, p->in_zp, (size_t)((p->kw - k1) * cg));\n"
    "    }\n"
    "    if (p->m.stride > p->kh * row) memset(d, 0, (size_t)(p->m.stride - p->kh * row));\n"
    "}\n"
    "\n"
    "/* Conv2d, DSP: two output pixels at a time. Their receptive fields (int8:\n"
    " * gathered into `scratch`, or the input pixels themselves for a direct 1x1\n"
    " * conv) are widened to int16 in the layout of the weight form, then the\n"
    " * matrix kernel runs. Rows and strides as the portable conv2d. scratch:\n"
    " * 6 * stride bytes (int16 inputs of two pixels, then two int8 gathers). */\n"
    "static void conv2d(const conv_t *p, int32_t oy0, int32_t oy1, const int8_t *x, int32_t x_row0, int32_t x_rs,\n"
    "                   int8_t *y, int32_t y_rs, void *scratch)\n"
    "{\n"
    "    const int32_t st = p->m.stride, og = p->m.rows / p->groups;\n"
    "    int16_t *col = (int16_t *)scratch;\n"
    "    int8_t *g0 = (int8_t *)scratch + 4 * st, *g1 = g0 + st;\n"
    "    for (int32_t oy = oy0; oy < oy1; oy++)\n"
    "        for (int32_t ox = 0; ox < p->ow; ox += 2) {\n"
    "            const int32_t np = p->ow - ox >= 2 ? 2 : 1;\n"
    "            int8_t *yp = y + (oy - oy0) * y_rs + ox * p->m.rows;\n"
    "            for (int32_t g = 0; g < p->groups; g++) {\n"
    "                const int8_t *a = g0, *b = g1;\n"
    "                if (p->direct) {\n"
    "                    a = x + (oy * p->sh - p->pad_t - x_row0) * x_rs + (ox * p->sw - p->pad_l) * p->c;\n"
    "                    b = a + p->sw * p->c;\n"
    "                } else {\n"
    "                    gather8(p, x, x_row0, x_rs, oy, ox, g, g0);\n"
    "                    if (np == 2) gather8(p, x, x_row0, x_rs, oy, ox + 1, g, g1);\n"
    "                }\n"
    "                if (p->m.form != 1 && np == 1) {\n"
    "                    p->m.mm(&p->m, g * og, (g + 1) * og, a, 1, yp, 0);\n"
    "                    continue;\n"
    "                }\n"
    "                if (np == 1)\n"
    "                    widen_n(a, col, st);\n"
    "                else if (p->m.form == 1)\n"
    "                    widen_i(a, b, col, st);\n"
    "                else\n"
    "                    widen_p(a, b, col, st);\n"
    "                p->m.mm(&p->m, g * og, (g + 1) * og, col, np, yp, p->m.rows);\n"
    "            }\n"
    "        }\n"
    "}\n"
    "\n";

static const char k_dwconv[] =
    "/* Depthwise conv, dense weights in the model's (kh, kw, c*mult) layout:\n"
    " * output channel oc reads input channel oc / mult. Output rows [oy0, oy1),\n"
    " * rows and strides as conv2d. Taps in the padding read the input zero\n"
    " * point, which the folded bias cancels (real zero padding). */\n"
    "static void dwconv(const conv_t *p, int32_t oy0, int32_t oy1, const int8_t *x, int32_t x_row0, int32_t x_rs,\n"
    "                   int8_t *y, int32_t y_rs)\n"
    "{\n"
    "    const int32_t oc_n = p->m.rows, mult = oc_n / p->c;\n"
    "    for (int32_t oy = oy0; oy < oy1; oy++) {\n"
    "        int8_t *yr = y + (oy - oy0) * y_rs;\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++)\n"
    "            for (int32_t oc = 0; oc < oc_n; oc++) {\n"
    "                const int32_t ic = oc / mult;\n"
    "                int32_t acc = p->m.bias[oc];\n"
    "                for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                    const int32_t iy = oy * p->sh - p->pad_t + ky * p->dh;\n"
    "                    for (int32_t kx = 0; kx < p->kw; kx++) {\n"
    "                        const int32_t ix = ox * p->sw - p->pad_l + kx * p->dw;\n"
    "                        const int32_t xv = (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)\n"
    "                                               ? p->in_zp\n"
    "                                               : x[(iy - x_row0) * x_rs + ix * p->c + ic];\n"
    "                        acc += xv * p->m.val[(ky * p->kw + kx) * oc_n + oc];\n"
    "                    }\n"
    "                }\n"
    "                yr[ox * oc_n + oc] = OUT8(&p->m, oc, acc);\n"
    "            }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_dwconv_dsp[] =
    "/* Depthwise conv, DSP: four channels at a time (multiplier 1): one word of\n"
    " * inputs and one of weights per tap, SXTB16 into halfword pairs, SMLABB /\n"
    " * SMLATT per channel; the four outputs requantized together, clamped\n"
    " * bytewise, stored as one word. Pixels whose window lies inside the input\n"
    " * skip the bounds checks. Channels past a multiple of 4 and multipliers > 1\n"
    " * run the scalar loop. Rows and strides as conv2d. */\n"
    "#define DW_TAP(xv, wv)                                                                                                 \\\n"
    "    do {                                                                                                               \\\n"
    "        const uint32_t x02_ = sxtb16(xv), x13_ = sxtb16_r8(xv), w02_ = sxtb16(wv), w13_ = sxtb16_r8(wv);              \\\n"
    "        a0 = smlabb(x02_, w02_, a0);                                                                                   \\\n"
    "        a2 = smlatt(x02_, w02_, a2);                                                                                   \\\n"
    "        a1 = smlabb(x13_, w13_, a1);                                                                                   \\\n"
    "        a3 = smlatt(x13_, w13_, a3);                                                                                   \\\n"
    "    } while (0)\n"
    "\n"
    "static void dwconv(const conv_t *p, int32_t oy0, int32_t oy1, const int8_t *x, int32_t x_row0, int32_t x_rs,\n"
    "                   int8_t *y, int32_t y_rs)\n"
    "{\n"
    "    const int32_t oc_n = p->m.rows, mult = oc_n / p->c, c4 = mult == 1 ? p->c & ~3 : 0, zp = p->m.out_zp;\n"
    "    const uint32_t zpx = ((uint32_t)p->in_zp & 0xFFu) * 0x01010101u;\n"
    "    const uint32_t lo4 = bytes4(p->m.act_min), hi4 = bytes4(p->m.act_max);\n"
    "    for (int32_t oy = oy0; oy < oy1; oy++) {\n"
    "        int8_t *yr = y + (oy - oy0) * y_rs;\n"
    "        const int32_t y0 = oy * p->sh - p->pad_t;\n"
    "        const int32_t rows_in = y0 >= 0 && y0 + (p->kh - 1) * p->dh < p->h;\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++) {\n"
    "            int8_t *yp = yr + ox * oc_n;\n"
    "            const int32_t x0 = ox * p->sw - p->pad_l;\n"
    "            const int32_t inside = rows_in && x0 >= 0 && x0 + (p->kw - 1) * p->dw < p->w;\n"
    "            int32_t oc = 0;\n"
    "            for (; oc < c4; oc += 4) {\n"
    "                int32_t a0 = p->m.bias[oc], a1 = p->m.bias[oc + 1], a2 = p->m.bias[oc + 2], a3 = p->m.bias[oc + 3];\n"
    "                const int8_t *wp = p->m.val + oc;\n"
    "                uint32_t v;\n"
    "                if (inside) {\n"
    "                    const int8_t *s = x + (y0 - x_row0) * x_rs + x0 * p->c + oc;\n"
    "                    for (int32_t ky = 0; ky < p->kh; ky++, s += p->dh * x_rs) {\n"
    "                        const int8_t *sp = s;\n"
    "                        for (int32_t kx = 0; kx < p->kw; kx++, wp += oc_n, sp += p->dw * p->c) DW_TAP(ld32(sp), ld32(wp));\n"
    "                    }\n"
    "                } else\n"
    "                    for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                        const int32_t iy = y0 + ky * p->dh;\n"
    "                        for (int32_t kx = 0; kx < p->kw; kx++, wp += oc_n) {\n"
    "                            const int32_t ix = x0 + kx * p->dw;\n"
    "                            const uint32_t xv = iy >= 0 && iy < p->h && ix >= 0 && ix < p->w\n"
    "                                                    ? ld32(x + (iy - x_row0) * x_rs + ix * p->c + oc)\n"
    "                                                    : zpx;\n"
    "                            DW_TAP(xv, ld32(wp));\n"
    "                        }\n"
    "                    }\n"
    "                v = pack4(ssat8(requant(a0, p->m.mult[oc], p->m.shift[oc]) + zp),\n"
    "                          ssat8(requant(a1, p->m.mult[oc + 1], p->m.shift[oc + 1]) + zp),\n"
    "                          ssat8(requant(a2, p->m.mult[oc + 2], p->m.shift[oc + 2]) + zp),\n"
    "                          ssat8(requant(a3, p->m.mult[oc + 3], p->m.shift[oc + 3]) + zp));\n"
    "                st32(yp + oc, min8x4(max8x4(v, lo4), hi4));\n"
    "            }\n"
    "            for (; oc < oc_n; oc++) {\n"
    "                const int32_t ic = oc / mult;\n"
    "                int32_t acc = p->m.bias[oc];\n"
    "                for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                    const int32_t iy = y0 + ky * p->dh;\n"
    "                    for (int32_t kx = 0; kx < p->kw; kx++) {\n"
    "                        const int32_t ix = x0 + kx * p->dw;\n"
    "                        const int32_t xv = (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)\n"
    "                                               ? p->in_zp\n"
    "                                               : x[(iy - x_row0) * x_rs + ix * p->c + ic];\n"
    "                        acc += xv * p->m.val[(ky * p->kw + kx) * oc_n + oc];\n"
    "                    }\n"
    "                }\n"
    "                yp[oc] = OUT8(&p->m, oc, acc);\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_dense_x8_dsp[] =
    "/* Dense rows from int8 inputs, no buffer: each word of 4 inputs is widened\n"
    " * and put in pair order (x0, x1), (x2, x3) once for four rows (two\n"
    " * interleaved pairs), whose weights give the matching pairs through SXTB16. */\n"
    "TML_AI void mac4_x8(uint32_t x01, uint32_t x23, const int8_t *w, int32_t *a0, int32_t *a1)\n"
    "{\n"
    "    uint32_t u, t;\n"
    "    memcpy(&u, w, 4);\n"
    "    memcpy(&t, w + 4, 4);\n"
    "    *a0 = smlad(sxtb16(u), x01, *a0);\n"
    "    *a0 = smlad(sxtb16_r8(u), x23, *a0);\n"
    "    *a1 = smlad(sxtb16(t), x01, *a1);\n"
    "    *a1 = smlad(sxtb16_r8(t), x23, *a1);\n"
    "}\n"
    "\n"
    "static void mm_dense_x8(const wmat *m, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    const int32_t st = m->stride, full = m->cols & ~3;\n"
    "    int32_t r = 0;\n"
    "    for (; r + 2 <= m->rows; r += 2) {\n"
    "        const int8_t *w = m->val + r * st, *w2 = w + 2 * st;\n"
    "        const int32_t four = r + 4 <= m->rows;\n"
    "        int32_t a0 = m->bias[r], a1 = m->bias[r + 1], a2 = four ? m->bias[r + 2] : 0, a3 = four ? m->bias[r + 3] : 0;\n"
    "        int32_t k = 0;\n"
    "        for (; k < full; k += 4, w += 8, w2 += 8) {\n"
    "            const uint32_t v = ld32(x + k), x02 = sxtb16(v), x13 = sxtb16_r8(v);\n"
    "            const uint32_t x01 = pkhbt(x02, x13), x23 = pkhtb(x02, x13);\n"
    "            mac4_x8(x01, x23, w, &a0, &a1);\n"
    "            if (four) mac4_x8(x01, x23, w2, &a2, &a3);\n"
    "        }\n"
    "        if (k < m->cols) {\n"
    "            /* the last, partial group: its inputs one by one */\n"
    "            uint32_t v = 0;\n"
    "            for (int32_t j = 0; k + j < m->cols; j++) v |= ((uint32_t)x[k + j] & 0xFFu) << (8 * j);\n"
    "            const uint32_t x02 = sxtb16(v), x13 = sxtb16_r8(v), x01 = pkhbt(x02, x13), x23 = pkhtb(x02, x13);\n"
    "            mac4_x8(x01, x23, w, &a0, &a1);\n"
    "            if (four) mac4_x8(x01, x23, w2, &a2, &a3);\n"
    "        }\n"
    "        y[r] = OUT8(m, r, a0);\n"
    "        y[r + 1] = OUT8(m, r + 1, a1);\n"
    "        if (four) {\n"
    "            y[r + 2] = OUT8(m, r + 2, a2);\n"
    "            y[r + 3] = OUT8(m, r + 3, a3);\n"
    "            r += 2;\n"
    "        }\n"
    "    }\n"
    "    for (; r < m->rows; r++) {\n"
    "        const int8_t *w = m->val + r * st;\n"
    "        int32_t acc = m->bias[r], k;\n"
    "        for (k = 0; k < full; k += 4, w += 4) acc += x[k] * w[0] + x[k + 1] * w[2] + x[k + 2] * w[1] + x[k + 3] * w[3];\n"
    "        for (; k < m->cols; k++) acc += x[k] * w[(k & 3) == 1 ? 2 : (k & 3) == 2 ? 1 : (k & 3)];\n"
    "        y[r] = OUT8(m, r, acc);\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_dense[] =
    "/* Fully connected: one matrix-vector product. */\n"
    "static void dense(const wmat *m, const int8_t *x, int8_t *y, void *scratch)\n"
    "{\n"
    "    (void)scratch;\n"
    "    m->mm(m, 0, m->rows, x, 1, y, 0);\n"
    "}\n"
    "\n";

static const char k_dense_dsp[] =
    "/* Fully connected, DSP. Dense weights: the input widened to int16 once\n"
    " * (in `scratch`: stride values, zeros past cols) for mm_dense, or, without\n"
    " * scratch (the exporter gives none when it would enlarge the arena),\n"
    " * mm_dense_x8 straight from the int8 input. Other forms read int8 inputs. */\n"
    "static void dense(const wmat *m, const int8_t *x, int8_t *y, void *scratch)\n"
    "{\n"
    "    int16_t *x16 = (int16_t *)scratch;\n"
    "    const int32_t full = m->cols & ~3;\n"
    "    if (m->form != 1) {\n"
    "        m->mm(m, 0, m->rows, x, 1, y, 0);\n"
    "        return;\n"
    "    }\n"
    "#ifdef TML_DENSE_X8\n"
    "    if (!x16) {\n"
    "        mm_dense_x8(m, x, y);\n"
    "        return;\n"
    "    }\n"
    "#endif\n"
    "    widen_n(x, x16, full);\n"
    "    for (int32_t k = full; k < m->stride; k++) x16[k] = (int16_t)(k < m->cols ? x[k] : 0);\n"
    "    m->mm(m, 0, m->rows, x16, 1, y, 0);\n"
    "}\n"
    "\n";

static const char k_pool_t[] =
    "/* Pool window geometry: input (h, w, c), output (oh, ow, c). Taps outside\n"
    " * the input are skipped. Pools keep the input's scale and zero point. */\n"
    "typedef struct pool_t {\n"
    "    int32_t h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pad_t, pad_l;\n"
    "} pool_t;\n"
    "\n";

static const char k_maxpool[] =
    "/* Max pool, output rows [oy0, oy1); rows and strides as conv2d. */\n"
    "static void maxpool(const pool_t *p, int32_t oy0, int32_t oy1, const int8_t *x, int32_t x_row0, int32_t x_rs,\n"
    "                    int8_t *y, int32_t y_rs)\n"
    "{\n"
    "    for (int32_t oy = oy0; oy < oy1; oy++) {\n"
    "        int8_t *yp = y + (oy - oy0) * y_rs;\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++)\n"
    "            for (int32_t ch = 0; ch < p->c; ch++) {\n"
    "                int32_t m = -128;\n"
    "                for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                    const int32_t iy = oy * p->sh - p->pad_t + ky * p->dh;\n"
    "                    if (iy < 0 || iy >= p->h) continue;\n"
    "                    for (int32_t kx = 0; kx < p->kw; kx++) {\n"
    "                        const int32_t ix = ox * p->sw - p->pad_l + kx * p->dw;\n"
    "                        if (ix < 0 || ix >= p->w) continue;\n"
    "                        if (x[(iy - x_row0) * x_rs + ix * p->c + ch] > m) m = x[(iy - x_row0) * x_rs + ix * p->c + ch];\n"
    "                    }\n"
    "                }\n"
    "                *yp++ = (int8_t)m;\n"
    "            }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_maxpool_dsp[] =
    "/* Max pool, DSP: four channels per word (SSUB8 + SEL is a bytewise signed\n"
    " * max), the scalar loop for the channels past a multiple of 4. */\n"
    "static void maxpool(const pool_t *p, int32_t oy0, int32_t oy1, const int8_t *x, int32_t x_row0, int32_t x_rs,\n"
    "                    int8_t *y, int32_t y_rs)\n"
    "{\n"
    "    const int32_t c4 = p->c & ~3;\n"
    "    for (int32_t oy = oy0; oy < oy1; oy++) {\n"
    "        int8_t *yp = y + (oy - oy0) * y_rs;\n"
    "        int32_t ky0 = 0, ky1 = p->kh;\n"
    "        const int32_t y0 = oy * p->sh - p->pad_t;\n"
    "        while (ky0 < ky1 && y0 + ky0 * p->dh < 0) ky0++;\n"
    "        while (ky1 > ky0 && y0 + (ky1 - 1) * p->dh >= p->h) ky1--;\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++, yp += p->c) {\n"
    "            int32_t kx0 = 0, kx1 = p->kw, ch;\n"
    "            const int32_t x0 = ox * p->sw - p->pad_l;\n"
    "            while (kx0 < kx1 && x0 + kx0 * p->dw < 0) kx0++;\n"
    "            while (kx1 > kx0 && x0 + (kx1 - 1) * p->dw >= p->w) kx1--;\n"
    "            for (ch = 0; ch < c4; ch += 4) {\n"
    "                uint32_t m = 0x80808080u;\n"
    "                for (int32_t ky = ky0; ky < ky1; ky++) {\n"
    "                    const int8_t *s = x + (y0 + ky * p->dh - x_row0) * x_rs + (x0 + kx0 * p->dw) * p->c + ch;\n"
    "                    for (int32_t kx = kx0; kx < kx1; kx++, s += p->dw * p->c) m = max8x4(m, ld32(s));\n"
    "                }\n"
    "                st32(yp + ch, m);\n"
    "            }\n"
    "            for (; ch < p->c; ch++) {\n"
    "                int32_t m = -128;\n"
    "                for (int32_t ky = ky0; ky < ky1; ky++)\n"
    "                    for (int32_t kx = kx0; kx < kx1; kx++) {\n"
    "                        const int32_t v = x[(y0 + ky * p->dh - x_row0) * x_rs + (x0 + kx * p->dw) * p->c + ch];\n"
    "                        if (v > m) m = v;\n"
    "                    }\n"
    "                yp[ch] = (int8_t)m;\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_divround[] =
    "/* n / d rounded half away from zero (d > 0): the average pools' mean. */\n"
    "static int32_t div_round(int32_t n, int32_t d)\n"
    "{\n"
    "    return n >= 0 ? (n + d / 2) / d : -((-n + d / 2) / d);\n"
    "}\n"
    "\n";

static const char k_avgpool[] =
    "/* Average of the in-range taps (padding is not counted), rounded half away\n"
    " * from zero. Output rows [oy0, oy1); rows and strides as conv2d. */\n"
    "static void avgpool(const pool_t *p, int32_t oy0, int32_t oy1, const int8_t *x, int32_t x_row0, int32_t x_rs,\n"
    "                    int8_t *y, int32_t y_rs)\n"
    "{\n"
    "    for (int32_t oy = oy0; oy < oy1; oy++) {\n"
    "        int8_t *yp = y + (oy - oy0) * y_rs;\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++)\n"
    "            for (int32_t ch = 0; ch < p->c; ch++) {\n"
    "                int32_t sum = 0, count = 0;\n"
    "                for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                    const int32_t iy = oy * p->sh - p->pad_t + ky * p->dh;\n"
    "                    if (iy < 0 || iy >= p->h) continue;\n"
    "                    for (int32_t kx = 0; kx < p->kw; kx++) {\n"
    "                        const int32_t ix = ox * p->sw - p->pad_l + kx * p->dw;\n"
    "                        if (ix < 0 || ix >= p->w) continue;\n"
    "                        sum += x[(iy - x_row0) * x_rs + ix * p->c + ch];\n"
    "                        count++;\n"
    "                    }\n"
    "                }\n"
    "                *yp++ = (int8_t)(count ? div_round(sum, count) : 0);\n"
    "            }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_gap[] =
    "/* Global average pool: (hw, c) -> (c), mean rounded half away from zero. */\n"
    "static void global_avgpool(int32_t hw, int32_t c, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t ch = 0; ch < c; ch++) {\n"
    "        int32_t sum = 0;\n"
    "        for (int32_t i = 0; i < hw; i++) sum += x[i * c + ch];\n"
    "        y[ch] = (int8_t)div_round(sum, hw);\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_add[] =
    "/* Elementwise add of two tensors with different scales (TFLite's method):\n"
    " * both are shifted left by 20 bits, rescaled to the common scale\n"
    " * 2 * max(s1, s2), summed, requantized to the output, clamped. */\n"
    "typedef struct add_t {\n"
    "    int32_t count;\n"
    "    int32_t zp1, zp2, zpo, left_shift;\n"
    "    int32_t m1, s1, m2, s2, mo, so;\n"
    "    int32_t act_min, act_max;\n"
    "} add_t;\n"
    "\n"
    "static void add(const add_t *p, const int8_t *a, const int8_t *b, int8_t *y)\n"
    "{\n"
    "    for (int32_t i = 0; i < p->count; i++) {\n"
    "        const int32_t a1 = (a[i] - p->zp1) * ((int32_t)1 << p->left_shift);\n"
    "        const int32_t b1 = (b[i] - p->zp2) * ((int32_t)1 << p->left_shift);\n"
    "        const int32_t sum = requant(a1, p->m1, p->s1) + requant(b1, p->m2, p->s2);\n"
    "        y[i] = clamp8(requant(sum, p->mo, p->so) + p->zpo, p->act_min, p->act_max);\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_clamp[] =
    "/* Standalone ReLU / ReLU6: a clamp (the output keeps the input's scale). */\n"
    "static void clamp_copy(int32_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t i = 0; i < count; i++) y[i] = clamp8(x[i], lo, hi);\n"
    "}\n"
    "\n";

static const char k_softmax[] =
    "/* Softmax over rows of k values; output scale 1/256, zero point -128.\n"
    " * lut[d] = round(2^16 * exp(-in_scale * d)) was tabulated at export, so\n"
    " * y = round(256 * lut[max - x] / sum) - 128 is integer arithmetic:\n"
    " * floor((512 * lut + sum) / (2 * sum)) - 128, saturated to 127. */\n"
    "static void softmax(int32_t n, int32_t k, const uint32_t *lut, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t r = 0; r < n; r++, x += k, y += k) {\n"
    "        int32_t mx = -128;\n"
    "        uint64_t sum = 0;\n"
    "        for (int32_t i = 0; i < k; i++)\n"
    "            if (x[i] > mx) mx = x[i];\n"
    "        for (int32_t i = 0; i < k; i++) sum += lut[mx - x[i]];\n"
    "        for (int32_t i = 0; i < k; i++) {\n"
    "            const int64_t v = (int64_t)((512u * (uint64_t)lut[mx - x[i]] + sum) / (2u * sum)) - 128;\n"
    "            y[i] = (int8_t)(v > 127 ? 127 : v);\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_softmax_tfl[] =
    "/* TFLite's int8 softmax (TFLite Micro's reference kernel, bit for bit):\n"
    " * differences to the row maximum scaled by beta * in_scale into Q5.26\n"
    " * (mult, shift: computed at export), gemmlowp's fixed-point exp of\n"
    " * negative values, the sum in Q12.19, its reciprocal by Newton-Raphson,\n"
    " * output scale 1/256, zero point -128. Differences below diff_min count 0. */\n"
    "typedef struct {\n"
    "    int32_t mult, shift, diff_min;\n"
    "} smx_t;\n"
    "static int32_t fx_mul(int32_t a, int32_t b)\n"
    "{\n"
    "    int64_t ab;\n"
    "    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;\n"
    "    ab = (int64_t)a * (int64_t)b;\n"
    "    ab += ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);\n"
    "    return (int32_t)(ab / ((int64_t)1 << 31));\n"
    "}\n"
    "static int32_t fx_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }\n"
    "/* x / 2^n rounded half away from zero */\n"
    "static int32_t fx_rdiv(int32_t x, int32_t n)\n"
    "{\n"
    "    const int64_t half = n > 0 ? (int64_t)1 << (n - 1) : 0;\n"
    "    if (x >= 0) return (int32_t)(((int64_t)x + half) >> n);\n"
    "    return (int32_t)-((-(int64_t)x + half) >> n);\n"
    "}\n"
    "/* x * 2^e saturated, e in 1..30 */\n"
    "static int32_t fx_shl(int32_t x, int32_t e)\n"
    "{\n"
    "    const int32_t t = (int32_t)(((int64_t)1 << (31 - e)) - 1);\n"
    "    return x > t ? INT32_MAX : x < -t ? INT32_MIN : (int32_t)((int64_t)x * ((int64_t)1 << e));\n"
    "}\n"
    "/* exp(a) for a in Q5.26, a <= 0; result Q0.31 */\n"
    "static int32_t fx_exp(int32_t a)\n"
    "{\n"
    "    static const int32_t f[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};\n"
    "    const int32_t am = fx_add(a & ((1 << 24) - 1), -(1 << 24));\n"
    "    const int32_t x = fx_add(fx_shl(am, 5), 1 << 28);\n"
    "    const int32_t x2 = fx_mul(x, x), x3 = fx_mul(x2, x), x4 = fx_mul(x2, x2);\n"
    "    const int32_t poly = fx_rdiv(fx_add(fx_mul(fx_add(fx_rdiv(x4, 2), x3), 715827883), x2), 1);\n"
    "    const int32_t rem = (int32_t)((uint32_t)am - (uint32_t)a);\n"
    "    int32_t r = fx_add(1895147668, fx_mul(1895147668, fx_add(x, poly)));\n"
    "    for (int32_t k = 0; k < 7; k++)\n"
    "        if (rem & (int32_t)((uint32_t)1 << (24 + k))) r = fx_mul(r, f[k]);\n"
    "    return a == 0 ? INT32_MAX : r;\n"
    "}\n"
    "/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out */\n"
    "static int32_t fx_recip(int32_t a)\n"
    "{\n"
    "    const int64_t s = (int64_t)a + INT32_MAX;\n"
    "    const int32_t h = (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);\n"
    "    int32_t x = fx_add(1515870810, fx_mul(h, -1010580540));\n"
    "    for (int32_t i = 0; i < 3; i++) x = fx_add(x, fx_shl(fx_mul(x, fx_add(1 << 29, -fx_mul(h, x))), 2));\n"
    "    return fx_shl(x, 1);\n"
    "}\n"
    "static void softmax_tfl(int32_t n, int32_t k, const smx_t *p, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t r = 0; r < n; r++, x += k, y += k) {\n"
    "        int32_t mx = -128, sum = 0, hr = 0, e;\n"
    "        uint32_t u;\n"
    "        for (int32_t i = 0; i < k; i++)\n"
    "            if (x[i] > mx) mx = x[i];\n"
    "        for (int32_t i = 0; i < k; i++)\n"
    "            if (x[i] - mx >= p->diff_min)\n"
    "                sum = fx_add(sum, fx_rdiv(fx_exp(fx_mul((int32_t)((int64_t)(x[i] - mx) * ((int64_t)1 << p->shift)), p->mult)), 12));\n"
    "        for (u = (uint32_t)sum; hr < 32 && !(u & 0x80000000u); u <<= 1) hr++;\n"
    "        e = 12 - hr + 23;\n"
    "        e = e < 0 ? 0 : e > 31 ? 31 : e;\n"
    "        u = fx_recip((int32_t)(((uint32_t)sum << hr) - 0x80000000u));\n"
    "        for (int32_t i = 0; i < k; i++) {\n"
    "            int32_t v = -128;\n"
    "            if (x[i] - mx >= p->diff_min) {\n"
    "                v = fx_rdiv(fx_mul((int32_t)u, fx_exp(fx_mul((int32_t)((int64_t)(x[i] - mx) * ((int64_t)1 << p->shift)), p->mult))), e) - 128;\n"
    "                v = v > 127 ? 127 : v < -128 ? -128 : v;\n"
    "            }\n"
    "            y[i] = (int8_t)v;\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mean_tfl[] =
    "/* TFLite's MEAN over the pixels (TFLite Micro's reference kernel): per\n"
    " * channel the sum minus hw input zero points, requantized with the\n"
    " * multiplier of in_scale / (hw * out_scale) folded at export. */\n"
    "typedef struct {\n"
    "    int32_t hw, c, zpi, zpo, mult, shift;\n"
    "} mean_t;\n"
    "static void mean_tfl(const mean_t *p, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t ch = 0; ch < p->c; ch++) {\n"
    "        int32_t sum = 0;\n"
    "        for (int32_t i = 0; i < p->hw; i++) sum += x[i * p->c + ch];\n"
    "        y[ch] = clamp8(requant((int32_t)((uint32_t)sum - (uint32_t)(p->hw * p->zpi)), p->mult, p->shift) + p->zpo,\n"
    "                       -128, 127);\n"
    "    }\n"
    "}\n"
    "\n";

/* Approximate code bytes of each piece on a Cortex-M4 (arm-none-eabi-gcc 12,
 * -mcpu=cortex-m4 -Os, from arm-none-eabi-nm sizes of exported zoo models):
 * {portable, DSP}. The requantization is inlined into its callers; its
 * share is in theirs. */
int64_t tml_exk_code_bytes(const int used[TML_EXK_COUNT], int dsp)
{
    static const struct {
        tml_exk k;
        int bytes[2];
    } est[] = {
        {TML_EXK_REQUANT, {260, 0}},        {TML_EXK_MM_DENSE, {180, 700}},    {TML_EXK_MM_SPARSE, {170, 260}},
        {TML_EXK_MM_CLUSTER, {230, 300}},   {TML_EXK_MM_SPARSE_CLUSTER, {270, 330}},
        {TML_EXK_CONV, {300, 420}},         {TML_EXK_DWCONV, {330, 700}},      {TML_EXK_DENSE, {10, 40}},
        {TML_EXK_MAXPOOL, {246, 330}},      {TML_EXK_AVGPOOL, {300, 300}},     {TML_EXK_GAP, {90, 90}},
        {TML_EXK_ADD, {150, 300}},          {TML_EXK_CLAMP, {40, 40}},         {TML_EXK_SOFTMAX, {220, 220}},
        {TML_EXK_WIDEN, {0, 90}},           {TML_EXK_MM_DENSE_X8, {0, 300}},
        {TML_EXK_SOFTMAX_TFL, {700, 700}},  {TML_EXK_MEAN_TFL, {90, 90}},
    };
    int64_t n = 0;
    for (size_t i = 0; i < sizeof est / sizeof est[0]; i++)
        if (used[est[i].k]) n += est[i].bytes[dsp ? 1 : 0];
    return n;
}

void tml_exk_emit(tml_sb *s, int used[TML_EXK_COUNT], int dsp, const char *upper)
{
    /* dependencies */
    for (int k = TML_EXK_MM_DENSE; k <= TML_EXK_MM_SPARSE_CLUSTER; k++)
        if (used[k]) used[TML_EXK_WMAT] = 1;
    if (used[TML_EXK_CONV] || used[TML_EXK_DWCONV]) used[TML_EXK_CONV_T] = 1;
    if (used[TML_EXK_CONV_T] || used[TML_EXK_DENSE]) used[TML_EXK_WMAT] = 1;
    if (used[TML_EXK_MM_SPARSE] || used[TML_EXK_MM_SPARSE_CLUSTER]) used[TML_EXK_ROWSTART] = 1;
    if (used[TML_EXK_MM_CLUSTER] || used[TML_EXK_MM_SPARSE_CLUSTER]) used[TML_EXK_UNPACK] = 1;
    if (used[TML_EXK_WMAT] || used[TML_EXK_ADD] || used[TML_EXK_CLAMP] || used[TML_EXK_MEAN_TFL])
        used[TML_EXK_REQUANT] = 1;
    if (used[TML_EXK_AVGPOOL] || used[TML_EXK_GAP]) used[TML_EXK_DIVROUND] = 1;
    if (used[TML_EXK_MAXPOOL] || used[TML_EXK_AVGPOOL]) used[TML_EXK_POOL_T] = 1;
    used[TML_EXK_WIDEN] = dsp && (used[TML_EXK_CONV] || used[TML_EXK_DENSE]);
    used[TML_EXK_MM_DENSE_X8] = dsp && used[TML_EXK_DENSE] && used[TML_EXK_MM_DENSE_X8];

    /* declaration order: helpers, the matrix type, its kernels, then ops */
    static const struct {
        tml_exk k;
        const char *text, *dsp_text;
    } order[] = {
        {TML_EXK_REQUANT, k_requant, k_requant_dsp},
        {TML_EXK_WIDEN, "", k_widen_dsp},
        {TML_EXK_DIVROUND, k_divround, NULL},
        {TML_EXK_WMAT, k_wmat, NULL},
        {TML_EXK_ROWSTART, k_rowstart, NULL},
        {TML_EXK_UNPACK, k_unpack, NULL},
        {TML_EXK_MM_DENSE, k_mm_dense, k_mm_dense_dsp},
        {TML_EXK_MM_SPARSE, k_mm_sparse, k_mm_sparse_dsp},
        {TML_EXK_MM_CLUSTER, k_mm_cluster, k_mm_cluster_dsp},
        {TML_EXK_MM_SPARSE_CLUSTER, k_mm_sparse_cluster, k_mm_sparse_cluster_dsp},
        {TML_EXK_MM_DENSE_X8, "", k_mm_dense_x8_dsp},
        {TML_EXK_CONV_T, k_conv_t, NULL},
        {TML_EXK_CONV, k_conv, k_conv_dsp},
        {TML_EXK_DWCONV, k_dwconv, k_dwconv_dsp},
        {TML_EXK_DENSE, k_dense, k_dense_dsp},
        {TML_EXK_POOL_T, k_pool_t, NULL},
        {TML_EXK_MAXPOOL, k_maxpool, k_maxpool_dsp},
        {TML_EXK_AVGPOOL, k_avgpool, NULL},
        {TML_EXK_GAP, k_gap, NULL},
        {TML_EXK_ADD, k_add, NULL},
        {TML_EXK_CLAMP, k_clamp, NULL},
        {TML_EXK_SOFTMAX, k_softmax, NULL},
        {TML_EXK_SOFTMAX_TFL, k_softmax_tfl, NULL},
        {TML_EXK_MEAN_TFL, k_mean_tfl, NULL},
    };
    if (dsp) {
        tml_sb_printf(s,
                      "/* Kernel flavour: the Cortex-M DSP extension (SXTB16, SMLAD, SSAT, ...)\n"
                      " * where the compiler targets it (M4, M7, M33, M55) and is GCC-compatible\n"
                      " * (gcc, clang, armclang), else portable C99 (M0, M3, RISC-V, a host).\n"
                      " * -D%sPORTABLE forces the portable kernels. Both compute the same bytes. */\n"
                      "#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(%sPORTABLE)\n"
                      "#define TML_DSP 1\n#else\n#define TML_DSP 0\n#endif\n\n"
                      "#if TML_DSP\n",
                      upper, upper);
        tml_sb_puts(s, k_dsp_prelude_dsp);
        tml_sb_puts(s, "#endif\n\n");
    }
    if (used[TML_EXK_MM_DENSE_X8]) tml_sb_puts(s, "#define TML_DENSE_X8 1\n\n");
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (!used[order[i].k]) continue;
        if (!order[i].dsp_text) {
            tml_sb_puts(s, order[i].text);
        } else if (!dsp) {
            tml_sb_puts(s, order[i].text);
        } else if (!*order[i].text) {
            tml_sb_puts(s, "#if TML_DSP\n");
            tml_sb_puts(s, order[i].dsp_text);
            tml_sb_puts(s, "#endif\n\n");
        } else {
            tml_sb_puts(s, "#if TML_DSP\n");
            tml_sb_puts(s, order[i].dsp_text);
            tml_sb_puts(s, "#else\n");
            tml_sb_puts(s, order[i].text);
            tml_sb_puts(s, "#endif\n\n");
        }
    }
}
