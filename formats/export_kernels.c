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
    "    uint32_t w = (uint32_t)a;\n"
    "    __asm__(\"bfi %0, %1, #8, #8\\n\\tbfi %0, %2, #16, #8\\n\\tbfi %0, %3, #24, #8\" : \"+r\"(w) : \"r\"(b), \"r\"(c), \"r\"(d));\n"
    "    return w;\n"
    "}\n"
    "/* a clamp bound in all four bytes */\n"
    "TML_AI uint32_t bytes4(int32_t v) { return ((uint32_t)v & 0xFFu) * 0x01010101u; }\n"
    "\n";

static const char k_requant[] =
    "/* round(a * b / 2^31) half away from zero: the high half of the doubled\n"
    " * 64-bit product (gemmlowp's SaturatingRoundingDoublingHighMul as\n"
    " * documented). The one result that does not fit, a == b == INT32_MIN,\n"
    " * saturates. C99 division truncates toward zero, so adding +-2^30 before\n"
    " * dividing rounds half away from zero. */\n"
    "static int32_t mul_hi(int32_t a, int32_t b)\n"
    "{\n"
    "    int64_t ab;\n"
    "    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;\n"
    "    ab = (int64_t)a * (int64_t)b;\n"
    "    ab += ab >= 0 ? ((int64_t)1 << 30) : -((int64_t)1 << 30);\n"
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
    " * half away from zero, in fewer instructions. The exporter checks that no\n"
    " * accumulator can reach 2^30 (so 2 * acc and the 32-bit sums below cannot\n"
    " * overflow) and that mult >= 0. Right shifts of negative values are\n"
    " * arithmetic (GCC and clang define them so). */\n"
    "\n"
    "/* round(acc * mult / 2^31), half away from zero: with p = (2 acc) * mult,\n"
    " * floor((p + 2^31 - (p < 0)) / 2^32) is the high word of p plus the carry\n"
    " * of its low word + 2^31 - (p < 0). */\n"
    "TML_AI int32_t mulhi_rd(int32_t acc, int32_t mult)\n"
    "{\n"
    "    uint32_t lo, t;\n"
    "    int32_t hi;\n"
    "    __asm__(\"smull %[lo], %[hi], %[a], %[m]\\n\\t\"\n"
    "            \"sub %[t], %[k], %[hi], lsr #31\\n\\t\"\n"
    "            \"adds %[t], %[lo], %[t]\\n\\t\"\n"
    "            \"adc %[hi], %[hi], #0\"\n"
    "            : [lo] \"=&r\"(lo), [hi] \"=&r\"(hi), [t] \"=&r\"(t)\n"
    "            : [a] \"r\"(acc * 2), [m] \"r\"(mult), [k] \"r\"(0x80000000u)\n"
    "            : \"cc\");\n"
    "    return hi;\n"
    "}\n"
    "\n"
    "/* shift < 0: mulhi_rd, then / 2^n rounded half away from zero (n = -shift,\n"
    " * half = 2^(n-1)): floor((r + half - (r < 0)) / 2^n). */\n"
    "TML_AI int32_t requant_n(int32_t acc, int32_t mult, int32_t n, int32_t half)\n"
    "{\n"
    "    const int32_t r = mulhi_rd(acc, mult);\n"
    "    return (r + half - (int32_t)((uint32_t)r >> 31)) >> n;\n"
    "}\n"
    "\n"
    "/* Multipliers >= 0.5 (shift >= 0: a saturating left shift, then no right\n"
    " * shift) are rare: out of line, in 64 bits. */\n"
    "static int32_t requant_slow(int32_t acc, int32_t mult, int32_t shift)\n"
    "{\n"
    "    int64_t p = (int64_t)acc * ((int64_t)1 << shift);\n"
    "    acc = p > INT32_MAX ? INT32_MAX : p < INT32_MIN ? INT32_MIN : (int32_t)p;\n"
    "    p = (int64_t)acc * mult;\n"
    "    p += ((int64_t)1 << 30) - (int64_t)((uint64_t)p >> 63);\n"
    "    return (int32_t)(p >> 31);\n"
    "}\n"
    "\n"
    "TML_AI int32_t requant(int32_t acc, int32_t mult, int32_t shift)\n"
    "{\n"
    "    if (shift >= 0) return requant_slow(acc, mult, shift);\n"
    "    return requant_n(acc, mult, -shift, (int32_t)(((uint32_t)1 << -shift) >> 1));\n"
    "}\n"
    "\n"
    "static int32_t requant_slow_any(int32_t acc, int32_t mult, int32_t shift) { return requant(acc, mult, shift); }\n"
    "\n"
    "TML_AI int8_t clamp8(int32_t v, int32_t lo, int32_t hi)\n"
    "{\n"
    "    v = ssat8(v);\n"
    "    return (int8_t)(v < lo ? lo : v > hi ? hi : v);\n"
    "}\n"
    "\n";

static const char k_widen_dsp[] =
    "/* Receptive fields as int16 for the DSP matrix kernels (n int8 values per\n"
    " * pixel, n a multiple of 4).\n"
    " * I layout (dense weights), two pixels a, b: per 4 columns the pairs\n"
    " * a(k, k+1), b(k, k+1), a(k+2, k+3), b(k+2, k+3): one LDRD feeds SMLAD for\n"
    " * both pixels.\n"
    " * Q layout (sparse and clustered weights), four pixels a..d: per column\n"
    " * the pairs (a_k, b_k), (c_k, d_k): one entry's weight meets four pixels.\n"
    " * N layout (a vector): in order. */\n"
    "static inline void widen_i(const int8_t *a, const int8_t *b, int16_t *d, int32_t n)\n"
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
    "static inline void widen_q(const int8_t *const *s, int16_t *d, int32_t n)\n"
    "{\n"
    "    const int8_t *a = s[0], *b = s[1], *c = s[2], *e = s[3];\n"
    "    for (int32_t k = 0; k < n; k += 4, d += 16) {\n"
    "        const uint32_t ua = ld32(a + k), ub = ld32(b + k), uc = ld32(c + k), ue = ld32(e + k);\n"
    "        const uint32_t a02 = sxtb16(ua), b02 = sxtb16(ub), c02 = sxtb16(uc), e02 = sxtb16(ue);\n"
    "        const uint32_t a13 = sxtb16_r8(ua), b13 = sxtb16_r8(ub), c13 = sxtb16_r8(uc), e13 = sxtb16_r8(ue);\n"
    "        st32(d, pkhbt(a02, b02));\n"
    "        st32(d + 2, pkhbt(c02, e02));\n"
    "        st32(d + 4, pkhbt(a13, b13));\n"
    "        st32(d + 6, pkhbt(c13, e13));\n"
    "        st32(d + 8, pkhtb(a02, b02));\n"
    "        st32(d + 10, pkhtb(c02, e02));\n"
    "        st32(d + 12, pkhtb(a13, b13));\n"
    "        st32(d + 14, pkhtb(c13, e13));\n"
    "    }\n"
    "}\n"
    "\n"
    "static inline void widen_n(const int8_t *a, int16_t *d, int32_t n)\n"
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
    " * requantization of each row. `mm` reads its form and computes, for r in\n"
    " * [r0, r1), y[p * ys + r] = out8(bias[r] + sum_k W[r][k] * x[p][k]):\n"
    " *   np = 0: one int8 input vector x (p = 0), every kernel;\n"
    " *   np = -1: one int16 vector (N layout), DSP dense weights;\n"
    " *   np >= 1: DSP only, np pixels of a conv in the int16 layout of the form\n"
    " *   (dense: pairs, I layout; others: quads, Q layout; see widen_i), the\n"
    " *   last pair or quad padded with copies of the last pixel. */\n"
    "typedef struct wmat wmat;\n"
    "struct wmat {\n"
    "    void (*mm)(const wmat *m, int32_t r0, int32_t r1, const void *x, int32_t np, int8_t *y, int32_t ys);\n"
    "    int32_t form;          /* 1 dense, 2 sparse, 3 clustered, 4 sparse + clustered, 5 sparse +\n"
    "                              clustered with one byte per entry */\n"
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
    "    const uint8_t *ent;    /* form 5: per entry, the columns to move forward in the low\n"
    "                              `gbits` bits and the centroid index above them */\n"
    "    int32_t gbits;\n"
    "    const int8_t *book;    /* clustered: k centroids (int8 codes), one book or one per row */\n"
    "    int32_t bits, k, book_per_row;\n"
    "    const int32_t *bias;   /* (rows) bias - input_zero_point * (sum of the row) */\n"
    "    const int32_t *mult;   /* (rows) Q31 multipliers of in_scale * w_scale[r] / out_scale */\n"
    "    const int8_t *shift;   /* (rows) their power-of-two exponents */\n"
    "    int32_t out_zp, act_min, act_max; /* output zero point; fused ReLU/ReLU6 clamp */\n"
    "    uint32_t act4_min, act4_max;      /* the clamp bounds in all four bytes of a word */\n"
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
    "    (void)np;\n"
    "    (void)ys;\n"
    "    {\n"
    "        const int8_t *x = (const int8_t *)xv;\n"
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
    "/* Columns k..k+3 of an int8 vector with `cols` values as the halfword pairs\n"
    " * (x0, x1), (x2, x3); columns past cols read 0. */\n"
    "TML_AI void pairs_x8(const int8_t *x, int32_t k, int32_t cols, uint32_t *x01, uint32_t *x23)\n"
    "{\n"
    "    uint32_t v = 0, a, b;\n"
    "    if (k + 4 <= cols)\n"
    "        v = ld32(x + k);\n"
    "    else\n"
    "        for (int32_t j = 0; k + j < cols; j++) v |= ((uint32_t)x[k + j] & 0xFFu) << (8 * j);\n"
    "    a = sxtb16(v);\n"
    "    b = sxtb16_r8(v);\n"
    "    *x01 = pkhbt(a, b);\n"
    "    *x23 = pkhtb(a, b);\n"
    "}\n"
    "\n"
    "/* One output of each of np pixels (np as mm) for row r. */\n"
    "static void mm_dense_row(const wmat *m, int32_t r, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    int32_t step;\n"
    "    const int8_t *w0 = row_w(m, r, &step);\n"
    "    for (int32_t p = 0; p < (np > 0 ? np : 1); p += 2) {\n"
    "        const int8_t *w = w0;\n"
    "        const int16_t *x = (const int16_t *)xv + p * m->stride;\n"
    "        int32_t a0 = m->bias[r], a1 = a0;\n"
    "        for (int32_t k = 0; k < m->stride; k += 4, w += step) {\n"
    "            const uint32_t u = ld32(w), w01 = sxtb16(u), w23 = sxtb16_r8(u);\n"
    "            uint32_t x01, x23;\n"
    "            if (np > 0) {\n"
    "                a1 = smlad(w01, ld32(x + 2), a1);\n"
    "                a1 = smlad(w23, ld32(x + 6), a1);\n"
    "                x01 = ld32(x);\n"
    "                x23 = ld32(x + 4);\n"
    "                x += 8;\n"
    "            } else if (np < 0) {\n"
    "                x01 = ld32(x + k);\n"
    "                x23 = ld32(x + k + 2);\n"
    "            } else\n"
    "                pairs_x8((const int8_t *)xv, k, m->cols, &x01, &x23);\n"
    "            a0 = smlad(w01, x01, a0);\n"
    "            a0 = smlad(w23, x23, a0);\n"
    "        }\n"
    "        y[p * ys + r] = OUT8(m, r, a0);\n"
    "        if (p + 1 < np) y[(p + 1) * ys + r] = OUT8(m, r, a1);\n"
    "    }\n"
    "}\n"
    "\n"
    "/* The requantization of rows r and r+1, computed once for all their\n"
    " * outputs; put2x2 then stores the outputs of the two rows for pixel 0 (and\n"
    " * pixel 1 when np >= 2): requantized, saturated, clamped bytewise. */\n"
    "typedef struct rq2 {\n"
    "    int32_t m0, m1, s0, s1, n0, n1, h0, h1, zp;\n"
    "    uint32_t lo4, hi4;\n"
    "} rq2;\n"
    "\n"
    "TML_AI void rq2_init(rq2 *q, const wmat *m, int32_t r)\n"
    "{\n"
    "    q->m0 = m->mult[r];\n"
    "    q->m1 = m->mult[r + 1];\n"
    "    q->s0 = m->shift[r];\n"
    "    q->s1 = m->shift[r + 1];\n"
    "    q->n0 = -q->s0;\n"
    "    q->n1 = -q->s1;\n"
    "    q->h0 = (int32_t)(((uint32_t)1 << (q->n0 & 31)) >> 1);\n"
    "    q->h1 = (int32_t)(((uint32_t)1 << (q->n1 & 31)) >> 1);\n"
    "    q->zp = m->out_zp;\n"
    "    q->lo4 = m->act4_min;\n"
    "    q->hi4 = m->act4_max;\n"
    "}\n"
    "\n"
    "TML_AI void put2x2(const rq2 *q, int8_t *y, int32_t ys, int32_t a00, int32_t a01, int32_t a10, int32_t a11,\n"
    "                   int32_t np)\n"
    "{\n"
    "    uint32_t v;\n"
    "    if ((q->s0 & q->s1) < 0)\n"
    "        v = pack4(ssat8(requant_n(a00, q->m0, q->n0, q->h0) + q->zp), ssat8(requant_n(a10, q->m1, q->n1, q->h1) + q->zp),\n"
    "                  ssat8(requant_n(a01, q->m0, q->n0, q->h0) + q->zp), ssat8(requant_n(a11, q->m1, q->n1, q->h1) + q->zp));\n"
    "    else\n"
    "        v = pack4(ssat8(requant_slow_any(a00, q->m0, q->s0) + q->zp), ssat8(requant_slow_any(a10, q->m1, q->s1) + q->zp),\n"
    "                  ssat8(requant_slow_any(a01, q->m0, q->s0) + q->zp), ssat8(requant_slow_any(a11, q->m1, q->s1) + q->zp));\n"
    "    v = min8x4(max8x4(v, q->lo4), q->hi4);\n"
    "    memcpy(y, &v, 2);\n"
    "    v >>= 16;\n"
    "    if (np >= 2) memcpy(y + ys, &v, 2);\n"
    "}\n"
    "\n"
    "/* Four rows from an int8 vector (np == 0): the word of 4 inputs is widened\n"
    " * once for the two interleaved row pairs w and w2. */\n"
    "TML_AI void mac_x8(uint32_t x01, uint32_t x23, const int8_t *w, int32_t *a0, int32_t *a1)\n"
    "{\n"
    "    const uint32_t u = ld32(w), t = ld32(w + 4);\n"
    "    *a0 = smlad(sxtb16(u), x01, *a0);\n"
    "    *a0 = smlad(sxtb16_r8(u), x23, *a0);\n"
    "    *a1 = smlad(sxtb16(t), x01, *a1);\n"
    "    *a1 = smlad(sxtb16_r8(t), x23, *a1);\n"
    "}\n"
    "\n"
    "/* Dense rows, DSP: pairs of rows through MAC_2X2 (two pixels) or MAC_2X1\n"
    " * (an int16 vector), two steps per loop pass; an int8 vector four rows at a\n"
    " * time. The outputs of a row pair are requantized together (put2x2). */\n"
    "static void mm_dense(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    const int32_t st = m->stride, odd = (st >> 2) & 1;\n"
    "    int32_t r = r0;\n"
    "    rq2 q;\n"
    "    if (r & 1) mm_dense_row(m, r++, xv, np, y, ys);\n"
    "    for (; r + 2 <= r1; r += 2) {\n"
    "        const int8_t *w0 = m->val + r * st, *wend = w0 + 2 * st;\n"
    "        const int32_t b0 = m->bias[r], b1 = m->bias[r + 1];\n"
    "        if (np == 0) {\n"
    "            const int32_t four = r + 4 <= r1;\n"
    "            const int8_t *w = w0;\n"
    "            int32_t a0 = b0, a1 = b1, a2 = four ? m->bias[r + 2] : 0, a3 = four ? m->bias[r + 3] : 0;\n"
    "            for (int32_t k = 0; k < st; k += 4, w += 8) {\n"
    "                uint32_t x01, x23;\n"
    "                pairs_x8((const int8_t *)xv, k, m->cols, &x01, &x23);\n"
    "                mac_x8(x01, x23, w, &a0, &a1);\n"
    "                if (four) mac_x8(x01, x23, w + 2 * st, &a2, &a3);\n"
    "            }\n"
    "            rq2_init(&q, m, r);\n"
    "            put2x2(&q, y + r, 0, a0, a0, a1, a1, 1);\n"
    "            if (four) {\n"
    "                rq2_init(&q, m, r + 2);\n"
    "                put2x2(&q, y + r + 2, 0, a2, a2, a3, a3, 1);\n"
    "                r += 2;\n"
    "            }\n"
    "            continue;\n"
    "        }\n"
    "        rq2_init(&q, m, r);\n"
    "        for (int32_t p = 0; p < (np > 0 ? np : 1); p += 2) {\n"
    "            const int8_t *w = w0;\n"
    "            const int16_t *x = (const int16_t *)xv + (np > 0 ? p * st : 0);\n"
    "            int32_t a00 = b0, a01 = b0, a10 = b1, a11 = b1;\n"
    "            if (np > 0) {\n"
    "                if (odd) MAC_2X2(a00, a01, a10, a11, w, x);\n"
    "                while (w != wend) {\n"
    "                    MAC_2X2(a00, a01, a10, a11, w, x);\n"
    "                    MAC_2X2(a00, a01, a10, a11, w, x);\n"
    "                }\n"
    "            } else {\n"
    "                if (odd) MAC_2X1(a00, a10, w, x);\n"
    "                while (w != wend) {\n"
    "                    MAC_2X1(a00, a10, w, x);\n"
    "                    MAC_2X1(a00, a10, w, x);\n"
    "                }\n"
    "            }\n"
    "            put2x2(&q, y + p * ys + r, ys, a00, a01, a10, a11, np - p);\n"
    "        }\n"
    "    }\n"
    "    if (r < r1) mm_dense_row(m, r, xv, np, y, ys);\n"
    "}\n"
    "\n";

static const char k_put1x4_dsp[] =
    "/* The four outputs of row r (pixels p..p+3 of a batch, the valid ones):\n"
    " * requantized with the row's constants, saturated, clamped bytewise. */\n"
    "TML_AI void put1x4(const wmat *m, int32_t r, int8_t *y, int32_t ys, int32_t a0, int32_t a1, int32_t a2, int32_t a3,\n"
    "                   int32_t np)\n"
    "{\n"
    "    const int32_t mu = m->mult[r], sh = m->shift[r], zp = m->out_zp;\n"
    "    uint32_t v;\n"
    "    if (sh < 0) {\n"
    "        const int32_t n = -sh, h = (int32_t)(((uint32_t)1 << n) >> 1);\n"
    "        v = pack4(ssat8(requant_n(a0, mu, n, h) + zp), ssat8(requant_n(a1, mu, n, h) + zp),\n"
    "                  ssat8(requant_n(a2, mu, n, h) + zp), ssat8(requant_n(a3, mu, n, h) + zp));\n"
    "    } else\n"
    "        v = pack4(ssat8(requant_slow_any(a0, mu, sh) + zp), ssat8(requant_slow_any(a1, mu, sh) + zp),\n"
    "                  ssat8(requant_slow_any(a2, mu, sh) + zp), ssat8(requant_slow_any(a3, mu, sh) + zp));\n"
    "    v = min8x4(max8x4(v, m->act4_min), m->act4_max);\n"
    "    y[0] = (int8_t)v;\n"
    "    if (np > 1) y[ys] = (int8_t)(v >> 8);\n"
    "    if (np > 2) y[2 * ys] = (int8_t)(v >> 16);\n"
    "    if (np > 3) y[3 * ys] = (int8_t)(v >> 24);\n"
    "}\n"
    "\n";

static const char k_mm_sparse[] =
    "/* Sparse rows (relative indices): only nonzero weights are stored; each\n"
    " * entry moves the column forward by its gap, then multiplies. A gap over\n"
    " * 255 is bridged by filler entries of value 0. */\n"
    "static void mm_sparse(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    (void)np;\n"
    "    (void)ys;\n"
    "    {\n"
    "        const int8_t *x = (const int8_t *)xv;\n"
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
    "/* Sparse rows, DSP: for a conv batch, each entry's gap and value are\n"
    " * decoded once per four pixels (Q layout: SMLABB / SMLATB on halfword\n"
    " * pairs); an int8 vector entry by entry. */\n"
    "static void mm_sparse(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const uint32_t e0 = ROW_START(m, r), e1 = ROW_START(m, r + 1);\n"
    "        if (np <= 0) {\n"
    "            const uint8_t *g = m->gap + e0, *gend = m->gap + e1;\n"
    "            const int8_t *v = m->val + e0, *x8 = (const int8_t *)xv;\n"
    "            int32_t acc = m->bias[r];\n"
    "            for (; g < gend; g++, v++) {\n"
    "                x8 += *g;\n"
    "                acc += *x8 * *v;\n"
    "            }\n"
    "            y[r] = OUT8(m, r, acc);\n"
    "            continue;\n"
    "        }\n"
    "        for (int32_t p = 0; p < np; p += 4) {\n"
    "            const uint8_t *g = m->gap + e0, *gend = m->gap + e1;\n"
    "            const int8_t *v = m->val + e0;\n"
    "            const int16_t *xp = (const int16_t *)xv + p * m->stride;\n"
    "            int32_t a0 = m->bias[r], a1 = a0, a2 = a0, a3 = a0;\n"
    "            for (; g < gend; g++, v++) {\n"
    "                uint32_t w, ab, cd;\n"
    "                xp += 4 * *g;\n"
    "                w = (uint32_t)(int32_t)*v;\n"
    "                ab = ld32(xp);\n"
    "                cd = ld32(xp + 2);\n"
    "                a0 = smlabb(ab, w, a0);\n"
    "                a1 = smlatb(ab, w, a1);\n"
    "                a2 = smlabb(cd, w, a2);\n"
    "                a3 = smlatb(cd, w, a3);\n"
    "            }\n"
    "            put1x4(m, r, y + p * ys + r, ys, a0, a1, a2, a3, np - p);\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_cluster[] =
    "/* Clustered rows: weight k of row r is centroid code[r * cols + k] of the\n"
    " * row's codebook. */\n"
    "static void mm_cluster(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    const uint32_t bits = (uint32_t)m->bits, mask = (1u << bits) - 1u;\n"
    "    (void)np;\n"
    "    (void)ys;\n"
    "    {\n"
    "        const int8_t *x = (const int8_t *)xv;\n"
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
    "/* Clustered rows, DSP: each index is unpacked once per four pixels of a\n"
    " * conv batch (Q layout); an int8 vector weight by weight. */\n"
    "static void mm_cluster(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y, int32_t ys)\n"
    "{\n"
    "    const uint32_t bits = (uint32_t)m->bits, mask = (1u << bits) - 1u;\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0);\n"
    "        const uint32_t i0 = (uint32_t)r * (uint32_t)m->cols;\n"
    "        if (np <= 0) {\n"
    "            const int8_t *x8 = (const int8_t *)xv;\n"
    "            int32_t acc = m->bias[r];\n"
    "            for (uint32_t k = 0; k < (uint32_t)m->cols; k++) acc += x8[k] * book[UNPACK(m->code, i0 + k, bits, mask)];\n"
    "            y[r] = OUT8(m, r, acc);\n"
    "            continue;\n"
    "        }\n"
    "        for (int32_t p = 0; p < np; p += 4) {\n"
    "            const int16_t *xp = (const int16_t *)xv + p * m->stride;\n"
    "            int32_t a0 = m->bias[r], a1 = a0, a2 = a0, a3 = a0;\n"
    "            for (uint32_t k = 0; k < (uint32_t)m->cols; k++, xp += 4) {\n"
    "                const uint32_t w = (uint32_t)(int32_t)book[UNPACK(m->code, i0 + k, bits, mask)];\n"
    "                const uint32_t ab = ld32(xp), cd = ld32(xp + 2);\n"
    "                a0 = smlabb(ab, w, a0);\n"
    "                a1 = smlatb(ab, w, a1);\n"
    "                a2 = smlabb(cd, w, a2);\n"
    "                a3 = smlatb(cd, w, a3);\n"
    "            }\n"
    "            put1x4(m, r, y + p * ys + r, ys, a0, a1, a2, a3, np - p);\n"
    "        }\n"
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
    "    (void)np;\n"
    "    (void)ys;\n"
    "    {\n"
    "        const int8_t *x = (const int8_t *)xv;\n"
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
    "/* Sparse and clustered rows, DSP: each entry's gap and index are decoded\n"
    " * once per four pixels of a conv batch (Q layout); an int8 vector entry by\n"
    " * entry. */\n"
    "static void mm_sparse_cluster(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y,\n"
    "                              int32_t ys)\n"
    "{\n"
    "    const uint32_t bits = (uint32_t)m->bits, mask = (1u << bits) - 1u;\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0);\n"
    "        const uint32_t e0 = ROW_START(m, r), end = ROW_START(m, r + 1);\n"
    "        if (np <= 0) {\n"
    "            const int8_t *x8 = (const int8_t *)xv;\n"
    "            int32_t acc = m->bias[r];\n"
    "            for (uint32_t e = e0; e < end; e++) {\n"
    "                x8 += m->gap[e];\n"
    "                acc += *x8 * book[UNPACK(m->code, e, bits, mask)];\n"
    "            }\n"
    "            y[r] = OUT8(m, r, acc);\n"
    "            continue;\n"
    "        }\n"
    "        for (int32_t p = 0; p < np; p += 4) {\n"
    "            const int16_t *xp = (const int16_t *)xv + p * m->stride;\n"
    "            int32_t a0 = m->bias[r], a1 = a0, a2 = a0, a3 = a0;\n"
    "            for (uint32_t e = e0; e < end; e++) {\n"
    "                uint32_t w, ab, cd;\n"
    "                xp += 4 * m->gap[e];\n"
    "                w = (uint32_t)(int32_t)book[UNPACK(m->code, e, bits, mask)];\n"
    "                ab = ld32(xp);\n"
    "                cd = ld32(xp + 2);\n"
    "                a0 = smlabb(ab, w, a0);\n"
    "                a1 = smlatb(ab, w, a1);\n"
    "                a2 = smlabb(cd, w, a2);\n"
    "                a3 = smlatb(cd, w, a3);\n"
    "            }\n"
    "            put1x4(m, r, y + p * ys + r, ys, a0, a1, a2, a3, np - p);\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_sc8[] =
    "/* Sparse and clustered rows, one byte per entry: the low gbits bits move\n"
    " * the column forward, the bits above index the row's codebook; a longer gap\n"
    " * is bridged by fillers holding the centroid 0. */\n"
    "static void mm_sparse_cluster8(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y,\n"
    "                               int32_t ys)\n"
    "{\n"
    "    const uint32_t gmask = (1u << m->gbits) - 1u;\n"
    "    (void)np;\n"
    "    (void)ys;\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0), *x = (const int8_t *)xv;\n"
    "        const uint8_t *e = m->ent + ROW_START(m, r), *end = m->ent + ROW_START(m, r + 1);\n"
    "        int32_t acc = m->bias[r];\n"
    "        for (; e < end; e++) {\n"
    "            x += *e & gmask;\n"
    "            acc += *x * book[*e >> m->gbits];\n"
    "        }\n"
    "        y[r] = OUT8(m, r, acc);\n"
    "    }\n"
    "}\n"
    "\n";

static const char k_mm_sc8_dsp[] =
    "/* Sparse and clustered rows, one byte per entry (see the portable\n"
    " * version), DSP: each entry decoded once per four pixels of a conv batch\n"
    " * (Q layout); an int8 vector entry by entry. */\n"
    "static void mm_sparse_cluster8(const wmat *m, int32_t r0, int32_t r1, const void *xv, int32_t np, int8_t *y,\n"
    "                               int32_t ys)\n"
    "{\n"
    "    const uint32_t gmask = (1u << m->gbits) - 1u, gb = (uint32_t)m->gbits;\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0);\n"
    "        const uint8_t *e0 = m->ent + ROW_START(m, r), *end = m->ent + ROW_START(m, r + 1);\n"
    "        if (np <= 0) {\n"
    "            const int8_t *x8 = (const int8_t *)xv;\n"
    "            int32_t acc = m->bias[r];\n"
    "            for (const uint8_t *e = e0; e < end; e++) {\n"
    "                x8 += *e & gmask;\n"
    "                acc += *x8 * book[*e >> gb];\n"
    "            }\n"
    "            y[r] = OUT8(m, r, acc);\n"
    "            continue;\n"
    "        }\n"
    "        for (int32_t p = 0; p < np; p += 4) {\n"
    "            const int16_t *xp = (const int16_t *)xv + p * m->stride;\n"
    "            int32_t a0 = m->bias[r], a1 = a0, a2 = a0, a3 = a0;\n"
    "            for (const uint8_t *e = e0; e < end; e++) {\n"
    "                uint32_t w, ab, cd;\n"
    "                xp += 4 * (*e & gmask);\n"
    "                w = (uint32_t)(int32_t)book[*e >> gb];\n"
    "                ab = ld32(xp);\n"
    "                cd = ld32(xp + 2);\n"
    "                a0 = smlabb(ab, w, a0);\n"
    "                a1 = smlatb(ab, w, a1);\n"
    "                a2 = smlabb(cd, w, a2);\n"
    "                a3 = smlatb(cd, w, a3);\n"
    "            }\n"
    "            put1x4(m, r, y + p * ys + r, ys, a0, a1, a2, a3, np - p);\n"
    "        }\n"
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
    "    int32_t batch;    /* DSP: output pixels whose receptive fields are widened together */\n"
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
    "                p->m.mm(&p->m, g * og, (g + 1) * og, patch, 0, yp, 0);\n"
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
    "    const int32_t cg = p->c / p->groups, x0 = ox * p->sw - p->pad_l, row = p->kw * cg, y0 = oy * p->sh - p->pad_t;\n"
    "    int32_t k0 = 0, k1 = p->kw;\n"
    "    if (p->dw == 1 && p->groups == 1 && x0 >= 0 && x0 + p->kw <= p->w && y0 >= 0 &&\n"
    "        y0 + (p->kh - 1) * p->dh < p->h) {\n"
    "        /* inside the input: kh runs of kw * c bytes */\n"
    "        const int8_t *s = x + (y0 - x_row0) * x_rs + x0 * p->c;\n"
    "        for (int32_t ky = 0; ky < p->kh; ky++, d += row, s += p->dh * x_rs) copy8(d, s, row);\n"
    "        return;\n"
    "    }\n"
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
    "}\n"
    "\n"
    "/* Conv2d, DSP: the output pixels of a row in batches of `batch`. Their\n"
    " * receptive fields (int8: gathered, or the input pixels themselves for a\n"
    " * direct 1x1 conv) are widened to int16 in `scratch` in the layout of the\n"
    " * weight form: pairs (dense weights) or quads (others), the last one padded\n"
    " * with the last pixel; then the matrix kernel runs once for the batch, so\n"
    " * each row's constants and sparse entries are decoded once per batch.\n"
    " * The gathers' bytes past the receptive field (up to the stride) are zeroed\n"
    " * once per call.\n"
    " * scratch: batch (rounded up to 2 or 4) * stride int16, then 2 or 4 int8\n"
    " * gathers of stride bytes. Rows and strides as the portable conv2d. */\n"
    "static void conv2d(const conv_t *p, int32_t oy0, int32_t oy1, const int8_t *x, int32_t x_row0, int32_t x_rs,\n"
    "                   int8_t *y, int32_t y_rs, void *scratch)\n"
    "{\n"
    "    const int32_t st = p->m.stride, og = p->m.rows / p->groups, G = p->m.form == 1 ? 2 : 4;\n"
    "    const int32_t nb = p->batch, nbp = (nb + G - 1) / G * G;\n"
    "    int16_t *buf = (int16_t *)scratch;\n"
    "    int8_t *g8 = (int8_t *)scratch + 2 * nbp * st;\n"
    "    const int32_t field = p->kh * p->kw * (p->c / p->groups);\n"
    "    if (!p->direct && st > field)\n"
    "        for (int32_t i = 0; i < G; i++) memset(g8 + i * st + field, 0, (size_t)(st - field));\n"
    "    for (int32_t oy = oy0; oy < oy1; oy++)\n"
    "        for (int32_t ox = 0; ox < p->ow; ox += nb) {\n"
    "            const int32_t np = p->ow - ox < nb ? p->ow - ox : nb;\n"
    "            int8_t *yp = y + (oy - oy0) * y_rs + ox * p->m.rows;\n"
    "            for (int32_t g = 0; g < p->groups; g++) {\n"
    "                for (int32_t j = 0; j < np; j += G) {\n"
    "                    const int8_t *src[4];\n"
    "                    for (int32_t i = 0; i < G; i++) {\n"
    "                        const int32_t px = ox + j + i;\n"
    "                        if (j + i >= np)\n"
    "                            src[i] = src[i - 1];\n"
    "                        else if (p->direct)\n"
    "                            src[i] = x + (oy * p->sh - p->pad_t - x_row0) * x_rs + (px * p->sw - p->pad_l) * p->c;\n"
    "                        else {\n"
    "                            gather8(p, x, x_row0, x_rs, oy, px, g, g8 + i * st);\n"
    "                            src[i] = g8 + i * st;\n"
    "                        }\n"
    "                    }\n"
    "                    if (G == 2)\n"
    "                        widen_i(src[0], src[1], buf + j * st, st);\n"
    "                    else\n"
    "                        widen_q(src, buf + j * st, st);\n"
    "                }\n"
    "                p->m.mm(&p->m, g * og, (g + 1) * og, buf, np, yp, p->m.rows);\n"
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
    "    const uint32_t lo4 = p->m.act4_min, hi4 = p->m.act4_max;\n"
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

static const char k_dense[] =
    "/* Fully connected: one matrix-vector product. */\n"
    "static void dense(const wmat *m, const int8_t *x, int8_t *y, void *scratch)\n"
    "{\n"
    "    (void)scratch;\n"
    "    m->mm(m, 0, m->rows, x, 0, y, 0);\n"
    "}\n"
    "\n";

static const char k_dense_dsp[] =
    "/* Fully connected, DSP. Dense weights with `scratch`: the input widened to\n"
    " * int16 once (stride values, zeros past cols); without (the exporter gives\n"
    " * none when it would enlarge the arena), and for the other forms, the int8\n"
    " * input as it is. */\n"
    "static void dense(const wmat *m, const int8_t *x, int8_t *y, void *scratch)\n"
    "{\n"
    "    int16_t *x16 = (int16_t *)scratch;\n"
    "    const int32_t full = m->cols & ~3;\n"
    "    if (m->form != 1 || !x16) {\n"
    "        m->mm(m, 0, m->rows, x, 0, y, 0);\n"
    "        return;\n"
    "    }\n"
    "    widen_n(x, x16, full);\n"
    "    for (int32_t k = full; k < m->stride; k++) x16[k] = (int16_t)(k < m->cols ? x[k] : 0);\n"
    "    m->mm(m, 0, m->rows, x16, -1, y, 0);\n"
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
    "        if (p->kh == 2 && p->kw == 2 && p->dh == 1 && p->dw == 1 && ky0 == 0 && ky1 == 2 && p->pad_l == 0 &&\n"
    "            (p->ow - 1) * p->sw + 1 < p->w) {\n"
    "            /* 2x2 windows inside the input: four words and three maxima per\n"
    "             * four channels */\n"
    "            const int8_t *r0 = x + (y0 - x_row0) * x_rs, *r1 = r0 + x_rs;\n"
    "            for (int32_t ox = 0; ox < p->ow; ox++, yp += p->c) {\n"
    "                const int8_t *a = r0 + ox * p->sw * p->c, *b = r1 + ox * p->sw * p->c;\n"
    "                int32_t ch = 0;\n"
    "                for (; ch < c4; ch += 4)\n"
    "                    st32(yp + ch, max8x4(max8x4(ld32(a + ch), ld32(a + p->c + ch)),\n"
    "                                         max8x4(ld32(b + ch), ld32(b + p->c + ch))));\n"
    "                for (; ch < p->c; ch++) {\n"
    "                    int32_t m = a[ch] > a[p->c + ch] ? a[ch] : a[p->c + ch];\n"
    "                    m = b[ch] > m ? b[ch] : m;\n"
    "                    yp[ch] = (int8_t)(b[p->c + ch] > m ? b[p->c + ch] : m);\n"
    "                }\n"
    "            }\n"
    "            continue;\n"
    "        }\n"
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
        {TML_EXK_MM_CLUSTER, {230, 300}},   {TML_EXK_MM_SPARSE_CLUSTER, {270, 330}}, {TML_EXK_MM_SC8, {120, 260}},
        {TML_EXK_CONV, {300, 420}},         {TML_EXK_DWCONV, {330, 700}},      {TML_EXK_DENSE, {10, 40}},
        {TML_EXK_MAXPOOL, {246, 330}},      {TML_EXK_AVGPOOL, {300, 300}},     {TML_EXK_GAP, {90, 90}},
        {TML_EXK_ADD, {150, 300}},          {TML_EXK_CLAMP, {40, 40}},         {TML_EXK_SOFTMAX, {220, 220}},
        {TML_EXK_WIDEN, {0, 90}},           {TML_EXK_PUT1X4, {0, 120}},
    };
    int64_t n = 0;
    for (size_t i = 0; i < sizeof est / sizeof est[0]; i++)
        if (used[est[i].k]) n += est[i].bytes[dsp ? 1 : 0];
    return n;
}

void tml_exk_emit(tml_sb *s, int used[TML_EXK_COUNT], int dsp, const char *upper)
{
    /* dependencies */
    for (int k = TML_EXK_MM_DENSE; k <= TML_EXK_MM_SC8; k++)
        if (used[k]) used[TML_EXK_WMAT] = 1;
    if (used[TML_EXK_CONV] || used[TML_EXK_DWCONV]) used[TML_EXK_CONV_T] = 1;
    if (used[TML_EXK_CONV_T] || used[TML_EXK_DENSE]) used[TML_EXK_WMAT] = 1;
    if (used[TML_EXK_MM_SPARSE] || used[TML_EXK_MM_SPARSE_CLUSTER] || used[TML_EXK_MM_SC8]) used[TML_EXK_ROWSTART] = 1;
    if (used[TML_EXK_MM_CLUSTER] || used[TML_EXK_MM_SPARSE_CLUSTER]) used[TML_EXK_UNPACK] = 1;
    if (used[TML_EXK_WMAT] || used[TML_EXK_ADD] || used[TML_EXK_CLAMP]) used[TML_EXK_REQUANT] = 1;
    if (used[TML_EXK_AVGPOOL] || used[TML_EXK_GAP]) used[TML_EXK_DIVROUND] = 1;
    if (used[TML_EXK_MAXPOOL] || used[TML_EXK_AVGPOOL]) used[TML_EXK_POOL_T] = 1;
    used[TML_EXK_WIDEN] = dsp && (used[TML_EXK_CONV] || used[TML_EXK_DENSE]);
    used[TML_EXK_PUT1X4] = dsp && (used[TML_EXK_MM_SPARSE] || used[TML_EXK_MM_CLUSTER] ||
                                   used[TML_EXK_MM_SPARSE_CLUSTER] || used[TML_EXK_MM_SC8]);

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
        {TML_EXK_PUT1X4, "", k_put1x4_dsp},
        {TML_EXK_MM_SPARSE, k_mm_sparse, k_mm_sparse_dsp},
        {TML_EXK_MM_CLUSTER, k_mm_cluster, k_mm_cluster_dsp},
        {TML_EXK_MM_SPARSE_CLUSTER, k_mm_sparse_cluster, k_mm_sparse_cluster_dsp},
        {TML_EXK_MM_SC8, k_mm_sc8, k_mm_sc8_dsp},
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
