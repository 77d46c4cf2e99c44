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
    "}\n\n";

static const char k_clamp8[] =
    "static int8_t clamp8(int64_t v, int32_t lo, int32_t hi)\n"
    "{\n"
    "    return (int8_t)(v < lo ? lo : v > hi ? hi : v);\n"
    "}\n\n";

static const char k_divround[] =
    "/* n / d rounded half away from zero (d > 0): the average pools' mean. */\n"
    "static int32_t div_round(int32_t n, int32_t d)\n"
    "{\n"
    "    return n >= 0 ? (n + d / 2) / d : -((-n + d / 2) / d);\n"
    "}\n\n";

static const char k_wmat[] =
    "/* The weights of one conv / depthwise / dense layer as a matrix: `rows`\n"
    " * output channels by `cols` taps (conv: the (ky, kx, ci) receptive field of\n"
    " * one output pixel and group; depthwise: the kh*kw taps of one channel;\n"
    " * dense: the inputs), stored in one of four forms (the `mv` kernel reads\n"
    " * its form), with the requantization of each row. mv computes outputs\n"
    " * y[r] = out8(bias[r] + sum_k W[r][k] * x[k]) for r in [r0, r1). */\n"
    "typedef struct wmat wmat;\n"
    "struct wmat {\n"
    "    void (*mv)(const wmat *m, int32_t r0, int32_t r1, const int8_t *x, int8_t *y);\n"
    "    int32_t rows, cols;\n"
    "    const int8_t *val;     /* dense: (rows, cols); sparse: value of each stored entry */\n"
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
    "static int8_t out8(const wmat *m, int32_t r, int32_t acc)\n"
    "{\n"
    "    return clamp8((int64_t)requant(acc, m->mult[r], m->shift[r]) + m->out_zp, m->act_min, m->act_max);\n"
    "}\n\n";

static const char k_rowstart[] =
    "static uint32_t row_start(const wmat *m, int32_t r)\n"
    "{\n"
    "    return m->row16 ? m->row16[r] : m->row32[r];\n"
    "}\n\n";

static const char k_unpack[] =
    "/* Element i of an array of `bits`-bit values (bits <= 8) packed LSB first;\n"
    " * the array ends with one padding byte so two bytes can always be read. */\n"
    "static int32_t unpack(const uint8_t *p, uint32_t i, int32_t bits)\n"
    "{\n"
    "    const uint32_t bit = i * (uint32_t)bits;\n"
    "    const uint32_t two = (uint32_t)p[bit >> 3] | (uint32_t)p[(bit >> 3) + 1] << 8;\n"
    "    return (int32_t)((two >> (bit & 7u)) & ((1u << bits) - 1u));\n"
    "}\n\n";

static const char k_mv_dense[] =
    "/* Dense rows: every weight stored, (rows, cols) row-major. */\n"
    "static void mv_dense(const wmat *m, int32_t r0, int32_t r1, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const int8_t *w = m->val + r * m->cols;\n"
    "        int32_t acc = m->bias[r];\n"
    "        for (int32_t k = 0; k < m->cols; k++) acc += (int32_t)x[k] * w[k];\n"
    "        y[r] = out8(m, r, acc);\n"
    "    }\n"
    "}\n\n";

static const char k_mv_sparse[] =
    "/* Sparse rows (relative indices): only nonzero weights are stored; each\n"
    " * entry moves the column forward by its gap, then multiplies. A gap over\n"
    " * 255 is bridged by filler entries of value 0. */\n"
    "static void mv_sparse(const wmat *m, int32_t r0, int32_t r1, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const uint32_t end = row_start(m, r + 1);\n"
    "        const int8_t *xp = x;\n"
    "        int32_t acc = m->bias[r];\n"
    "        for (uint32_t e = row_start(m, r); e < end; e++) {\n"
    "            xp += m->gap[e];\n"
    "            acc += (int32_t)*xp * m->val[e];\n"
    "        }\n"
    "        y[r] = out8(m, r, acc);\n"
    "    }\n"
    "}\n\n";

static const char k_mv_cluster[] =
    "/* Clustered rows: weight k of row r is centroid code[r * cols + k] of the\n"
    " * row's codebook. */\n"
    "static void mv_cluster(const wmat *m, int32_t r0, int32_t r1, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0);\n"
    "        const uint32_t i0 = (uint32_t)r * (uint32_t)m->cols;\n"
    "        int32_t acc = m->bias[r];\n"
    "        for (int32_t k = 0; k < m->cols; k++) acc += (int32_t)x[k] * book[unpack(m->code, i0 + (uint32_t)k, m->bits)];\n"
    "        y[r] = out8(m, r, acc);\n"
    "    }\n"
    "}\n\n";

static const char k_mv_sparse_cluster[] =
    "/* Sparse and clustered rows: nonzero weights only (gaps as mv_sparse),\n"
    " * each stored as a packed codebook index (fillers use the centroid 0). */\n"
    "static void mv_sparse_cluster(const wmat *m, int32_t r0, int32_t r1, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t r = r0; r < r1; r++) {\n"
    "        const int8_t *book = m->book + (m->book_per_row ? r * m->k : 0);\n"
    "        const uint32_t end = row_start(m, r + 1);\n"
    "        const int8_t *xp = x;\n"
    "        int32_t acc = m->bias[r];\n"
    "        for (uint32_t e = row_start(m, r); e < end; e++) {\n"
    "            xp += m->gap[e];\n"
    "            acc += (int32_t)*xp * book[unpack(m->code, e, m->bits)];\n"
    "        }\n"
    "        y[r] = out8(m, r, acc);\n"
    "    }\n"
    "}\n\n";

static const char k_conv_t[] =
    "/* A layer with a window: conv2d (with groups) or depthwise conv. */\n"
    "typedef struct conv_t {\n"
    "    int32_t h, w, c;  /* input (h, w, c) */\n"
    "    int32_t oh, ow;   /* output (oh, ow, m.rows) */\n"
    "    int32_t kh, kw, sh, sw, dh, dw, pad_t, pad_l;\n"
    "    int32_t groups;   /* depthwise: c (one input channel per group) */\n"
    "    int32_t in_zp;    /* input zero point: the value of padding taps */\n"
    "    wmat m;\n"
    "} conv_t;\n\n";

static const char k_conv[] =
    "/* Conv2d with groups (and depthwise conv in a compact weight form: a group\n"
    " * per input channel). For each output pixel and group the receptive field\n"
    " * is gathered into `patch` (kh*kw*c/groups bytes; taps in the padding read\n"
    " * the input zero point, which the folded bias cancels: real zero padding),\n"
    " * then the group's output channels are dot products with it. patch == 0\n"
    " * (1x1 convs without padding or groups): the input pixel is read in place. */\n"
    "static void conv2d(const conv_t *p, const int8_t *x, int8_t *y, int8_t *patch)\n"
    "{\n"
    "    const int32_t cg = p->c / p->groups, og = p->m.rows / p->groups;\n"
    "    for (int32_t oy = 0; oy < p->oh; oy++)\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++) {\n"
    "            int8_t *yp = y + (oy * p->ow + ox) * p->m.rows;\n"
    "            for (int32_t g = 0; g < p->groups; g++) {\n"
    "                const int8_t *in = patch;\n"
    "                if (!patch) {\n"
    "                    in = x + (oy * p->sh * p->w + ox * p->sw) * p->c;\n"
    "                } else {\n"
    "                    int8_t *d = patch;\n"
    "                    for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                        const int32_t iy = oy * p->sh - p->pad_t + ky * p->dh;\n"
    "                        for (int32_t kx = 0; kx < p->kw; kx++, d += cg) {\n"
    "                            const int32_t ix = ox * p->sw - p->pad_l + kx * p->dw;\n"
    "                            if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w) {\n"
    "                                for (int32_t ci = 0; ci < cg; ci++) d[ci] = (int8_t)p->in_zp;\n"
    "                            } else {\n"
    "                                const int8_t *s = x + (iy * p->w + ix) * p->c + g * cg;\n"
    "                                for (int32_t ci = 0; ci < cg; ci++) d[ci] = s[ci];\n"
    "                            }\n"
    "                        }\n"
    "                    }\n"
    "                }\n"
    "                p->m.mv(&p->m, g * og, (g + 1) * og, in, yp);\n"
    "            }\n"
    "        }\n"
    "}\n\n";

static const char k_dwconv[] =
    "/* Depthwise conv, dense weights (c*mult, kh*kw) (transposed at export):\n"
    " * output channel oc reads input channel oc / mult. Taps in the padding read\n"
    " * the input zero point, which the folded bias cancels (real zero padding). */\n"
    "static void dwconv(const conv_t *p, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    const int32_t mult = p->m.rows / p->c, taps = p->kh * p->kw;\n"
    "    for (int32_t oy = 0; oy < p->oh; oy++)\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++)\n"
    "            for (int32_t oc = 0; oc < p->m.rows; oc++) {\n"
    "                const int8_t *w = p->m.val + oc * taps;\n"
    "                const int32_t ic = oc / mult;\n"
    "                int32_t acc = p->m.bias[oc];\n"
    "                for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                    const int32_t iy = oy * p->sh - p->pad_t + ky * p->dh;\n"
    "                    for (int32_t kx = 0; kx < p->kw; kx++) {\n"
    "                        const int32_t ix = ox * p->sw - p->pad_l + kx * p->dw;\n"
    "                        const int32_t xv = (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)\n"
    "                                               ? p->in_zp\n"
    "                                               : x[(iy * p->w + ix) * p->c + ic];\n"
    "                        acc += xv * w[ky * p->kw + kx];\n"
    "                    }\n"
    "                }\n"
    "                *y++ = out8(&p->m, oc, acc);\n"
    "            }\n"
    "}\n\n";

static const char k_dense[] =
    "/* Fully connected: one matrix-vector product. */\n"
    "static void dense(const wmat *m, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    m->mv(m, 0, m->rows, x, y);\n"
    "}\n\n";

static const char k_pool_t[] =
    "/* Pool window geometry: input (h, w, c), output (oh, ow, c). Taps outside\n"
    " * the input are skipped. Pools keep the input's scale and zero point. */\n"
    "typedef struct pool_t {\n"
    "    int32_t h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pad_t, pad_l;\n"
    "} pool_t;\n\n";

static const char k_maxpool[] =
    "static void maxpool(const pool_t *p, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t oy = 0; oy < p->oh; oy++)\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++)\n"
    "            for (int32_t ch = 0; ch < p->c; ch++) {\n"
    "                int32_t m = -128;\n"
    "                for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                    const int32_t iy = oy * p->sh - p->pad_t + ky * p->dh;\n"
    "                    if (iy < 0 || iy >= p->h) continue;\n"
    "                    for (int32_t kx = 0; kx < p->kw; kx++) {\n"
    "                        const int32_t ix = ox * p->sw - p->pad_l + kx * p->dw;\n"
    "                        if (ix < 0 || ix >= p->w) continue;\n"
    "                        if (x[(iy * p->w + ix) * p->c + ch] > m) m = x[(iy * p->w + ix) * p->c + ch];\n"
    "                    }\n"
    "                }\n"
    "                *y++ = (int8_t)m;\n"
    "            }\n"
    "}\n\n";

static const char k_avgpool[] =
    "/* Average of the in-range taps (padding is not counted), rounded half away\n"
    " * from zero. */\n"
    "static void avgpool(const pool_t *p, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t oy = 0; oy < p->oh; oy++)\n"
    "        for (int32_t ox = 0; ox < p->ow; ox++)\n"
    "            for (int32_t ch = 0; ch < p->c; ch++) {\n"
    "                int32_t sum = 0, count = 0;\n"
    "                for (int32_t ky = 0; ky < p->kh; ky++) {\n"
    "                    const int32_t iy = oy * p->sh - p->pad_t + ky * p->dh;\n"
    "                    if (iy < 0 || iy >= p->h) continue;\n"
    "                    for (int32_t kx = 0; kx < p->kw; kx++) {\n"
    "                        const int32_t ix = ox * p->sw - p->pad_l + kx * p->dw;\n"
    "                        if (ix < 0 || ix >= p->w) continue;\n"
    "                        sum += x[(iy * p->w + ix) * p->c + ch];\n"
    "                        count++;\n"
    "                    }\n"
    "                }\n"
    "                *y++ = (int8_t)(count ? div_round(sum, count) : 0);\n"
    "            }\n"
    "}\n\n";

static const char k_gap[] =
    "/* Global average pool: (hw, c) -> (c), mean rounded half away from zero. */\n"
    "static void global_avgpool(int32_t hw, int32_t c, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t ch = 0; ch < c; ch++) {\n"
    "        int32_t sum = 0;\n"
    "        for (int32_t i = 0; i < hw; i++) sum += x[i * c + ch];\n"
    "        y[ch] = (int8_t)div_round(sum, hw);\n"
    "    }\n"
    "}\n\n";

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
    "        y[i] = clamp8((int64_t)requant(sum, p->mo, p->so) + p->zpo, p->act_min, p->act_max);\n"
    "    }\n"
    "}\n\n";

static const char k_clamp[] =
    "/* Standalone ReLU / ReLU6: a clamp (the output keeps the input's scale). */\n"
    "static void clamp_copy(int32_t count, int32_t lo, int32_t hi, const int8_t *x, int8_t *y)\n"
    "{\n"
    "    for (int32_t i = 0; i < count; i++) y[i] = clamp8(x[i], lo, hi);\n"
    "}\n\n";

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
    "}\n\n";

/* Approximate code bytes of each piece on a Cortex-M4 (clang 14,
 * --target=thumbv7em-none-eabi -Os, from llvm-nm sizes of exported zoo
 * models; the requantization helpers include out8, often inlined). */
int64_t tml_exk_code_bytes(const int used[TML_EXK_COUNT])
{
    static const struct {
        tml_exk k;
        int bytes;
    } est[] = {
        {TML_EXK_REQUANT, 260}, {TML_EXK_MV_DENSE, 100}, {TML_EXK_MV_SPARSE, 170}, {TML_EXK_MV_CLUSTER, 230},
        {TML_EXK_MV_SPARSE_CLUSTER, 270}, {TML_EXK_CONV, 410}, {TML_EXK_DWCONV, 330}, {TML_EXK_DENSE, 10},
        {TML_EXK_MAXPOOL, 246}, {TML_EXK_AVGPOOL, 300}, {TML_EXK_GAP, 90}, {TML_EXK_ADD, 150},
        {TML_EXK_CLAMP, 40}, {TML_EXK_SOFTMAX, 220},
    };
    int64_t n = 0;
    for (size_t i = 0; i < sizeof est / sizeof est[0]; i++)
        if (used[est[i].k]) n += est[i].bytes;
    return n;
}

void tml_exk_emit(tml_sb *s, int used[TML_EXK_COUNT])
{
    /* dependencies */
    for (int k = TML_EXK_MV_DENSE; k <= TML_EXK_MV_SPARSE_CLUSTER; k++)
        if (used[k]) used[TML_EXK_WMAT] = 1;
    if (used[TML_EXK_CONV] || used[TML_EXK_DWCONV]) used[TML_EXK_CONV_T] = 1;
    if (used[TML_EXK_CONV_T] || used[TML_EXK_DENSE]) used[TML_EXK_WMAT] = 1;
    if (used[TML_EXK_MV_SPARSE] || used[TML_EXK_MV_SPARSE_CLUSTER]) used[TML_EXK_ROWSTART] = 1;
    if (used[TML_EXK_MV_CLUSTER] || used[TML_EXK_MV_SPARSE_CLUSTER]) used[TML_EXK_UNPACK] = 1;
    if (used[TML_EXK_WMAT] || used[TML_EXK_ADD]) used[TML_EXK_REQUANT] = used[TML_EXK_CLAMP8] = 1;
    if (used[TML_EXK_CLAMP]) used[TML_EXK_CLAMP8] = 1;
    if (used[TML_EXK_AVGPOOL] || used[TML_EXK_GAP]) used[TML_EXK_DIVROUND] = 1;
    if (used[TML_EXK_MAXPOOL] || used[TML_EXK_AVGPOOL]) used[TML_EXK_POOL_T] = 1;

    /* declaration order: helpers, the matrix type, its kernels, then ops */
    static const struct {
        tml_exk k;
        const char *text;
    } order[] = {
        {TML_EXK_REQUANT, k_requant},
        {TML_EXK_CLAMP8, k_clamp8},
        {TML_EXK_DIVROUND, k_divround},
        {TML_EXK_WMAT, k_wmat},
        {TML_EXK_ROWSTART, k_rowstart},
        {TML_EXK_UNPACK, k_unpack},
        {TML_EXK_MV_DENSE, k_mv_dense},
        {TML_EXK_MV_SPARSE, k_mv_sparse},
        {TML_EXK_MV_CLUSTER, k_mv_cluster},
        {TML_EXK_MV_SPARSE_CLUSTER, k_mv_sparse_cluster},
        {TML_EXK_CONV_T, k_conv_t},
        {TML_EXK_CONV, k_conv},
        {TML_EXK_DWCONV, k_dwconv},
        {TML_EXK_DENSE, k_dense},
        {TML_EXK_POOL_T, k_pool_t},
        {TML_EXK_MAXPOOL, k_maxpool},
        {TML_EXK_AVGPOOL, k_avgpool},
        {TML_EXK_GAP, k_gap},
        {TML_EXK_ADD, k_add},
        {TML_EXK_CLAMP, k_clamp},
        {TML_EXK_SOFTMAX, k_softmax},
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (used[order[i].k]) tml_sb_puts(s, order[i].text);
}
