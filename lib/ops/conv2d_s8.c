/*
 * conv2d_s8.c - INT8 2-D convolution, NHWC activations, OHWI weights, groups.
 *
 *   acc[b,oy,ox,oc] = bias[oc] + sum over in-range taps (ky,kx) and ci < c/groups
 *                     of (x[b,iy,ix,g*cg+ci] - in_zp) * w[oc,ky,kx,ci]
 *   y = clamp(requantize(acc, mult[oc], shift[oc]) + out_zp, act_min, act_max)
 *
 * Out-of-range taps contribute 0: padding reads the input zero point. The
 * accumulator is int32; it is exact while kh*kw*cg * 255 * 128 + |bias| < 2^31
 * (kh*kw*cg up to ~65000), which every supported model satisfies.
 *
 * Fast kernel: the output rows (b, oy, ox) are cut into chunks, and each chunk
 * is one GEMM per group against the weights packed once per call (gemm_s8.c),
 * with the requantization fused into the GEMM's epilogue.
 *   VNNI: indirect GEMM. The reduction is cut into the kh kernel rows; for
 *     each output pixel and kernel row a pointer goes straight into the input
 *     when the kw taps are one contiguous in-image run (no im2col at all for
 *     interior pixels), to a shared run of zero points when the row is in the
 *     padding, and to a copy (with zero points for the padded taps) otherwise.
 *     On one thread, an image with borders of at most 16 KiB padded is first
 *     copied with its padding into scratch, so every pointer goes into it.
 *   AVX2: im2col into int16 (x - in_zp).
 *   generic: im2col of int8; a 1x1, stride-1, unpadded conv reads x in place.
 * Chunks keep the buffers ~128 KiB per thread whatever the batch; OpenMP
 * threads take chunks when the call is large enough.
 */
#include <string.h>

#include "ops_s8_internal.h"

#ifdef TML_S8_X86
#include <immintrin.h>
#endif

#ifdef TML_S8_OMP
#include <omp.h>
#endif

/* ---- reference ------------------------------------------------------------------------ */

/* The reference for int8 (wbits 8) and packed low-bit weights: inlined into
 * both entry points, so the int8 one keeps plain byte loads. */
static inline __attribute__((always_inline)) void conv_ref(const tml_window *p, const tml_qparams *q, const int8_t *x,
                                                           const void *w, int wbits, const int32_t *bias, int8_t *y)
{
    const int cg = p->c / p->groups, og = p->o / p->groups;
    for (int b = 0; b < p->n; b++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int oc = 0; oc < p->o; oc++) {
                    const int g = oc / og;
                    int32_t acc = bias ? bias[oc] : 0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            const int8_t *xp = x + (((int64_t)b * p->h + iy) * p->w + ix) * p->c + g * cg;
                            const int64_t wi = (((int64_t)oc * p->kh + ky) * p->kw + kx) * cg;
                            for (int ci = 0; ci < cg; ci++) acc += (xp[ci] - q->in_zp) * tml_s8w_get(w, wbits, wi + ci);
                        }
                    }
                    int64_t v = (int64_t)tml_requantize_mode(acc, q->mult[oc], q->shift[oc], q->rounding) + q->out_zp;
                    if (v < q->act_min) v = q->act_min;
                    if (v > q->act_max) v = q->act_max;
                    y[(((int64_t)b * p->oh + oy) * p->ow + ox) * p->o + oc] = (int8_t)v;
                }
}

void tml_conv2d_s8_ref(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                       const int32_t *bias, int8_t *y)
{
    conv_ref(p, q, x, w, 8, bias, y);
}

void tml_conv2d_s8w_ref(const tml_window *p, const tml_qparams *q, int wbits, const int8_t *x, const uint8_t *w,
                        const int32_t *bias, int8_t *y)
{
    conv_ref(p, q, x, w, wbits, bias, y);
}

/* ---- plan: chunking and the scratch layout ---------------------------------------------- */

#define CONV_CHUNK_BYTES ((size_t)128 << 10) /* buffer bytes per chunk (widest layout) */
#define CONV_MIN_CHUNK_ROWS 12                /* one full micro-kernel tile */
#define CONV_MAX_SLOTS 16                     /* chunk buffers = most threads used */
#define CONV_MAX_SLOT_BYTES ((size_t)4 << 20) /* all buffers together (unless one is bigger) */

typedef struct conv_plan {
    int groups, cg, og, k;
    int seglen, seg4;   /* VNNI: a kernel row, kw*cg values, padded to a multiple of 4 */
    int64_t m;          /* output rows n*oh*ow */
    int64_t chunk_rows; /* rows per chunk (at most) */
    int slots;          /* chunk buffers */
    size_t row_bytes;   /* widest per-row buffer need over the instruction sets */
    size_t ptr_bytes;   /* VNNI: the row pointers at the start of a slot */
    size_t off_prep, prep_bytes, off_zp, off_slots, slot_bytes, total;
    int ph, pw;         /* padded copy (VNNI, one thread): rows and columns the windows span */
    size_t off_pad, pad_bytes; /* its buffer; 0 bytes: no copy */
} conv_plan;

/* Images with borders of at most this many bytes padded are copied into a
 * buffer with their padding (in_zp) before the VNNI GEMM: every kernel row is
 * then a pointer into the copy, where the border pixels took copies of their
 * runs one by one (a 28x28 first layer spent a fifth of its time on them). */
#define CONV_PAD_MAX_BYTES ((size_t)16 << 10)

static size_t align64(size_t v) { return (v + 63) & ~(size_t)63; }

static void conv_make_plan(const tml_window *p, conv_plan *pl)
{
    pl->groups = p->groups;
    pl->cg = p->c / p->groups;
    pl->og = p->o / p->groups;
    pl->k = p->kh * p->kw * pl->cg;
    pl->seglen = p->kw * pl->cg;
    pl->seg4 = (pl->seglen + 3) / 4 * 4;
    pl->m = (int64_t)p->n * p->oh * p->ow;
    const size_t vnni = (size_t)p->kh * (sizeof(const int8_t *) + (size_t)pl->seg4);
    const size_t avx2 = 2 * (((size_t)pl->k + 1) & ~(size_t)1);
    pl->row_bytes = vnni > avx2 ? vnni : avx2;
    if (pl->row_bytes < (size_t)pl->k) pl->row_bytes = (size_t)pl->k;
    int64_t cr = (int64_t)(CONV_CHUNK_BYTES / pl->row_bytes);
    if (cr < CONV_MIN_CHUNK_ROWS) cr = CONV_MIN_CHUNK_ROWS;
    if (cr > pl->m) cr = pl->m;
    if (cr < 1) cr = 1;
    pl->chunk_rows = cr;
    pl->ptr_bytes = align64((size_t)cr * p->kh * sizeof(const int8_t *));
    /* a thread is worth it only for >= 16 rows; all buffers within 4 MiB */
    pl->slot_bytes = align64((size_t)cr * pl->row_bytes) + 64;
    int64_t s = (pl->m + 15) / 16;
    const int64_t s_mem = (int64_t)(CONV_MAX_SLOT_BYTES / pl->slot_bytes);
    if (s > s_mem) s = s_mem;
    pl->slots = (int)(s < 1 ? 1 : s > CONV_MAX_SLOTS ? CONV_MAX_SLOTS : s);
    pl->off_prep = align64((size_t)pl->groups * sizeof(tml_s8_gemm_b));
    pl->prep_bytes = align64(tml_s8_gemm_prep_size(pl->og, p->kh, pl->seglen));
    pl->off_zp = pl->off_prep + (size_t)pl->groups * pl->prep_bytes;
    pl->off_slots = pl->off_zp + align64((size_t)pl->seg4);
    pl->total = 64 + pl->off_slots + (size_t)pl->slots * pl->slot_bytes;
    pl->ph = (p->oh - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    pl->pw = (p->ow - 1) * p->sw + (p->kw - 1) * p->dw + 1;
    const int border = p->pad_t > 0 || p->pad_l > 0 || pl->ph - p->pad_t > p->h || pl->pw - p->pad_l > p->w;
    const size_t pb = (size_t)pl->ph * pl->pw * p->c;
    pl->off_pad = pl->total - 64;
    pl->pad_bytes = border && p->oh > 0 && p->ow > 0 && pb <= CONV_PAD_MAX_BYTES ? align64(pb + (size_t)pl->seg4) : 0;
    pl->total += pl->pad_bytes;
}

size_t tml_conv2d_s8_scratch_size(const tml_window *p)
{
    conv_plan pl;
    conv_make_plan(p, &pl);
    return pl.total;
}

/* ---- operand builders ------------------------------------------------------------------------ */

/* Decodes output row r into (b, oy, ox). */
static void row_decode(const tml_window *p, int64_t r, int64_t *b, int *oy, int *ox)
{
    *ox = (int)(r % p->ow);
    *oy = (int)((r / p->ow) % p->oh);
    *b = r / ((int64_t)p->ow * p->oh);
}

static void row_next(const tml_window *p, int64_t *b, int *oy, int *ox)
{
    if (++*ox == p->ow) {
        *ox = 0;
        if (++*oy == p->oh) {
            *oy = 0;
            ++*b;
        }
    }
}

/* VNNI: row / kernel-row pointers for output rows [r0, r1) of group g into
 * arow ((r1-r0) * kh entries); copies of border runs go to mat. Every pointer
 * has seg4 readable bytes (a run that would end past the input is copied). */
static void build_rows_vnni(const tml_window *p, const conv_plan *pl, const int8_t *x, int32_t in_zp,
                            const int8_t *zpseg, int g, int64_t r0, int64_t r1, const int8_t **arow, int8_t *mat)
{
    /* geometry in locals: the pointer stores and copies below would otherwise
     * make the compiler reload *p */
    const int H = p->h, W = p->w, C = p->c, KH = p->kh, KW = p->kw, SH = p->sh, SW = p->sw, DH = p->dh,
              DW = p->dw, PT = p->pad_t, PL = p->pad_l, OH = p->oh, OW = p->ow;
    const int cg = pl->cg, seglen = pl->seglen, seg4 = pl->seg4;
    const ptrdiff_t rs = (ptrdiff_t)W * C, kstep = (ptrdiff_t)DH * rs;
    const ptrdiff_t lim = (ptrdiff_t)p->n * H * rs - seg4; /* last offset with seg4 readable bytes */
    const int runs = (DW == 1 && cg == C) || KW == 1;      /* a kernel row is one run of x */
    if (KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0 && OH == H && OW == W) {
        /* a pointwise layer: output row r reads input pixel r */
        const int8_t *xg = x + (ptrdiff_t)g * cg;
        /* the rows r whose pointer has seg4 readable bytes: r * C + g * cg <= lim;
         * the bound first, then a loop without tests (it vectorizes) */
        const ptrdiff_t avail = lim - (ptrdiff_t)g * cg;
        int64_t re = avail < 0 ? r0 : avail / C + 1;
        if (re > r1) re = r1;
        if (re < r0) re = r0;
        for (int64_t r = r0; r < re; r++) arow[r - r0] = xg + r * C;
        arow += re - r0;
        r0 = re;
        if (r0 == r1) return;
    }
    int ox = (int)(r0 % OW), oy = (int)((r0 / OW) % OH);
    int64_t b = r0 / ((int64_t)OW * OH);
    const ptrdiff_t xstep = (ptrdiff_t)SW * C;
    for (int64_t r = r0; r < r1; r++) {
        const int8_t **pr = arow + (r - r0) * KH;
        const int iy0 = oy * SH - PT, ix0 = ox * SW - PL;
        const int inside = runs && ix0 >= 0 && ix0 + (KW - 1) * DW < W;
        const ptrdiff_t base = ((ptrdiff_t)(b * H + iy0) * W + ix0) * C + (ptrdiff_t)g * cg;
        if (inside && iy0 >= 0 && iy0 + (KH - 1) * DH < H && base + (KH - 1) * kstep <= lim) {
            /* the common case, for the run of pixels of this output row that
             * stay inside: the pointers step by SW pixels (geometry in
             * registers; the general loop spills it) */
            int n = OW - ox;
            if ((int64_t)n > r1 - r) n = (int)(r1 - r);
            const int nin = (W - 1 - (KW - 1) * DW - ix0) / SW + 1; /* pixels from ox whose taps end inside */
            if (n > nin) n = nin;
            const ptrdiff_t nlim = (lim - base - (KH - 1) * kstep) / xstep + 1; /* and whose reads stay in x */
            if (n > nlim) n = (int)nlim;
            const int8_t *q0 = x + base;
            if (KH == 3) /* (3x3 layers: the loop unrolled) */
                for (int i = 0; i < n; i++, q0 += xstep, pr += 3) {
                    pr[0] = q0;
                    pr[1] = q0 + kstep;
                    pr[2] = q0 + 2 * kstep;
                }
            else
                for (int i = 0; i < n; i++, q0 += xstep, pr += KH)
                    for (int ky = 0; ky < KH; ky++) pr[ky] = q0 + ky * kstep;
            r += n - 1;
            ox += n - 1;
        } else {
            for (int ky = 0; ky < KH; ky++) {
                const int iy = iy0 + ky * DH;
                if (iy < 0 || iy >= H) {
                    pr[ky] = zpseg;
                    continue;
                }
                const ptrdiff_t row = (ptrdiff_t)(b * H + iy) * rs + (ptrdiff_t)g * cg;
                if (inside && row + (ptrdiff_t)ix0 * C <= lim) {
                    pr[ky] = x + row + (ptrdiff_t)ix0 * C;
                    continue;
                }
                if (cg <= 8) { /* a few bytes a tap (a first layer): no library calls */
                    for (int kx = 0; kx < KW; kx++) {
                        const int ix = ix0 + kx * DW, in = ix >= 0 && ix < W;
                        for (int ci = 0; ci < cg; ci++)
                            mat[kx * cg + ci] = in ? x[row + (ptrdiff_t)ix * C + ci] : (int8_t)in_zp;
                    }
                    for (int kk = seglen; kk < seg4; kk++) mat[kk] = 0;
                } else {
                    for (int kx = 0; kx < KW; kx++) {
                        const int ix = ix0 + kx * DW;
                        if (ix < 0 || ix >= W)
                            memset(mat + kx * cg, (int)(int8_t)in_zp, (size_t)cg);
                        else
                            memcpy(mat + kx * cg, x + row + (ptrdiff_t)ix * C, (size_t)cg);
                    }
                    memset(mat + seglen, 0, (size_t)(seg4 - seglen));
                }
                pr[ky] = mat;
                mat += seg4;
            }
        }
        if (++ox == OW) {
            ox = 0;
            if (++oy == OH) {
                oy = 0;
                b++;
            }
        }
    }
}

/* Generic: rows [r0, r1) of group g's patch matrix (taps in (ky, kx, ci)
 * order like the weights) into cols, k int8 per row, padding taps in_zp. */
static void im2col_s8(const tml_window *p, const int8_t *x, int32_t in_zp, int g, int64_t r0, int64_t r1,
                      int8_t *cols)
{
    const int cg = p->c / p->groups, kw = p->kw, k = p->kh * kw * cg;
    const int contiguous = p->dw == 1 && cg == p->c; /* a kernel row is one run of kw*c bytes */
    int64_t b;
    int oy, ox;
    row_decode(p, r0, &b, &oy, &ox);
    for (int64_t r = r0; r < r1; r++, row_next(p, &b, &oy, &ox)) {
        int8_t *d = cols + (r - r0) * k;
        const int8_t *xb = x + b * p->h * p->w * p->c + (int64_t)g * cg;
        const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
        for (int ky = 0; ky < p->kh; ky++, d += kw * cg) {
            const int iy = iy0 + ky * p->dh;
            if (iy < 0 || iy >= p->h) {
                memset(d, (int)(int8_t)in_zp, (size_t)kw * cg);
                continue;
            }
            const int8_t *xr = xb + (int64_t)iy * p->w * p->c;
            if (contiguous) {
                int lo = ix0 < 0 ? -ix0 : 0, hi = p->w - ix0;
                if (lo > kw) lo = kw;
                if (hi > kw) hi = kw;
                if (hi < lo) hi = lo;
                if (lo > 0) memset(d, (int)(int8_t)in_zp, (size_t)lo * cg);
                if (hi > lo) memcpy(d + lo * cg, xr + (int64_t)(ix0 + lo) * p->c, (size_t)(hi - lo) * cg);
                if (hi < kw) memset(d + hi * cg, (int)(int8_t)in_zp, (size_t)(kw - hi) * cg);
            } else {
                for (int kx = 0; kx < kw; kx++) {
                    const int ix = ix0 + kx * p->dw;
                    if (ix < 0 || ix >= p->w)
                        memset(d + kx * cg, (int)(int8_t)in_zp, (size_t)cg);
                    else
                        memcpy(d + kx * cg, xr + (int64_t)ix * p->c, (size_t)cg);
                }
            }
        }
    }
}

/* AVX2: as im2col_s8 into int16 (x - in_zp), padding taps 0, rows padded with
 * zeros to `stride` elements. */
/* d[i] = s[i] - zp as int16, i < n (GCC left the plain loop scalar in
 * im2col_i16: 12% of dscnn's INT8 time on Zen 3) */
#ifdef TML_S8_X86
__attribute__((target("avx2")))
#endif
static inline void widen_zp(const int8_t *s, int16_t *d, int64_t n, int32_t zp)
{
    int64_t i = 0;
#ifdef TML_S8_X86
    const __m256i zp16 = _mm256_set1_epi16((short)zp);
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(void *)(d + i),
                            _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(s + i))),
                                             zp16));
#endif
    for (; i < n; i++) d[i] = (int16_t)(s[i] - zp);
}

/* Only the AVX2 kernel reads int16 rows: compiled for AVX2 (the int8 ->
 * int16 widening loops vectorize with vpmovsxbw instead of SSE2 unpacks). */
#ifdef TML_S8_X86
__attribute__((target("avx2")))
#endif
static void im2col_i16(const tml_window *p, const int8_t *x, int32_t in_zp, int g, int64_t r0, int64_t r1,
                       int stride, int16_t *cols)
{
    const int cg = p->c / p->groups, kw = p->kw, k = p->kh * kw * cg;
    const int contiguous = p->dw == 1 && cg == p->c;
    if (contiguous && k == stride && p->kh == 1 && kw == 1 && p->sh == 1 && p->sw == 1 && p->pad_t == 0 &&
        p->pad_l == 0 && p->oh == p->h && p->ow == p->w) {
        /* pointwise, unpadded rows: output row r is input pixel r, the rows
         * one contiguous run */
        widen_zp(x + r0 * p->c, cols, (r1 - r0) * p->c, in_zp);
        return;
    }
    /* bounds of the input and of the rows written (for the short-run copies) */
    const int8_t *xend = x + (int64_t)p->n * p->h * p->w * p->c;
    const int16_t *cend = cols + (r1 - r0) * stride;
    (void)xend, (void)cend;
    int64_t b;
    int oy, ox;
    row_decode(p, r0, &b, &oy, &ox);
    for (int64_t r = r0; r < r1; r++, row_next(p, &b, &oy, &ox)) {
        int16_t *row = cols + (r - r0) * stride, *d = row;
        const int8_t *xb = x + b * p->h * p->w * p->c + (int64_t)g * cg;
        const int iy0 = oy * p->sh - p->pad_t, ix0 = ox * p->sw - p->pad_l;
        for (int ky = 0; ky < p->kh; ky++, d += kw * cg) {
            const int iy = iy0 + ky * p->dh;
            if (iy < 0 || iy >= p->h) {
                memset(d, 0, sizeof(int16_t) * (size_t)kw * cg);
                continue;
            }
            const int8_t *xr = xb + (int64_t)iy * p->w * p->c;
            if (contiguous) {
                int lo = ix0 < 0 ? -ix0 : 0, hi = p->w - ix0;
                if (lo > kw) lo = kw;
                if (hi > kw) hi = kw;
                if (hi < lo) hi = lo;
                if (lo > 0) memset(d, 0, sizeof(int16_t) * (size_t)lo * cg);
                const int8_t *s = xr + (int64_t)(ix0 + lo) * p->c;
                const int run = (hi - lo) * cg;
#ifdef TML_S8_X86
                if (run > 0 && run <= 8 && s + 8 <= xend && d + lo * cg + 8 <= cend) {
                    /* a short run (LeNet's 1-channel conv1: 5 taps): 8
                     * widened at once; the lanes past the run land on
                     * positions this row or the next one writes later */
                    const __m128i v = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(const void *)s));
                    _mm_storeu_si128((__m128i *)(void *)(d + lo * cg), _mm_sub_epi16(v, _mm_set1_epi16((short)in_zp)));
                } else
#endif
                    widen_zp(s, d + lo * cg, run, in_zp);
                if (hi < kw) memset(d + hi * cg, 0, sizeof(int16_t) * (size_t)(kw - hi) * cg);
            } else {
                for (int kx = 0; kx < kw; kx++) {
                    const int ix = ix0 + kx * p->dw;
                    int16_t *dk = d + kx * cg;
                    if (ix < 0 || ix >= p->w) {
                        memset(dk, 0, sizeof(int16_t) * (size_t)cg);
                    } else {
                        const int8_t *s = xr + (int64_t)ix * p->c;
                        widen_zp(s, dk, cg, in_zp);
                    }
                }
            }
        }
        for (int kk = k; kk < stride; kk++) row[kk] = 0;
    }
}

/* ---- fast kernel -------------------------------------------------------------------------- */

typedef struct conv_ctx {
    const tml_window *p;
    const tml_qparams *q;
    const int8_t *x;
    int8_t *y;
    tml_s8_isa isa;
    const conv_plan *pl;
    const tml_s8_gemm_b *gb; /* (groups) */
    const int8_t *zpseg;     /* VNNI: seg4 bytes of in_zp */
    uint8_t *slots;
} conv_ctx;

/* Output rows [r0, r1) for every group, using chunk buffer `slot`. */
static void conv_chunk(const conv_ctx *cx, int64_t r0, int64_t r1, int slot)
{
    const tml_window *p = cx->p;
    const conv_plan *pl = cx->pl;
    const int m = (int)(r1 - r0);
    uint8_t *buf = cx->slots + (size_t)slot * pl->slot_bytes;
    /* output row r reads input pixel r */
    const int pointwise = p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->pad_t == 0 && p->pad_l == 0 &&
                          p->oh == p->h && p->ow == p->w;
    for (int g = 0; g < pl->groups; g++) {
        int8_t *yo = cx->y + r0 * p->o + (int64_t)g * pl->og;
        if (cx->isa == TML_S8_ISA_VNNI && pointwise &&
            (r1 - 1) * p->c + (int64_t)g * pl->cg + pl->seg4 <= (int64_t)p->n * p->h * p->w * p->c) {
            /* every row's seg4 bytes inside x: rows at a stride, no pointers */
            tml_s8_gemm_run_strided(&cx->gb[g], m, cx->x + r0 * p->c + (int64_t)g * pl->cg, p->c, yo, p->o);
        } else if (cx->isa == TML_S8_ISA_VNNI) {
            const int8_t **arow = (const int8_t **)(void *)buf;
            build_rows_vnni(p, pl, cx->x, cx->q->in_zp, cx->zpseg, g, r0, r1, arow, (int8_t *)buf + pl->ptr_bytes);
            tml_s8_gemm_run_ind(&cx->gb[g], m, arow, yo, p->o);
        } else if (cx->isa == TML_S8_ISA_AVX2) {
            const int stride = (pl->k + 1) / 2 * 2;
            im2col_i16(p, cx->x, cx->q->in_zp, g, r0, r1, stride, (int16_t *)(void *)buf);
            tml_s8_gemm_run(&cx->gb[g], m, buf, stride, yo, p->o);
        } else if (pointwise) {
            tml_s8_gemm_run(&cx->gb[g], m, cx->x + r0 * p->c + (int64_t)g * pl->cg, p->c, yo, p->o);
        } else {
            im2col_s8(p, cx->x, cx->q->in_zp, g, r0, r1, (int8_t *)buf);
            tml_s8_gemm_run(&cx->gb[g], m, buf, pl->k, yo, p->o);
        }
    }
}

/* The weight-dependent part of the scratch layout (descriptors + packed
 * weights, offsets [0, off_zp) from the aligned base): it only depends on the
 * weights' shape, never on the batch or the image size. */
size_t tml_conv2d_s8_packed_size(const tml_window *p)
{
    conv_plan pl;
    conv_make_plan(p, &pl);
    return 64 + pl.off_zp;
}

void tml_conv2d_s8_pack_ex(const tml_window *p, const tml_qparams *q, const int8_t *w, const int32_t *bias,
                           void *packed, tml_s8_isa isa)
{
    conv_plan pl;
    conv_make_plan(p, &pl);
    if (isa > tml_s8_cpu_isa()) isa = tml_s8_cpu_isa();
    uint8_t *base = (uint8_t *)(((uintptr_t)packed + 63) & ~(uintptr_t)63);
    tml_s8_gemm_b *gb = (tml_s8_gemm_b *)(void *)base;
    for (int g = 0; g < pl.groups; g++)
        tml_s8_gemm_prepare(isa, pl.og, p->kh, pl.seglen, w + (int64_t)g * pl.og * pl.k, pl.k,
                            bias ? bias + g * pl.og : NULL, q->in_zp, q->out_zp, q->mult + g * pl.og,
                            q->shift + g * pl.og, q->act_min, q->act_max, q->rounding == TML_ROUNDING_TFLITE,
                            base + pl.off_prep + (size_t)g * pl.prep_bytes, &gb[g]);
}

void tml_conv2d_s8_pack(const tml_window *p, const tml_qparams *q, const int8_t *w, const int32_t *bias, void *packed)
{
    tml_conv2d_s8_pack_ex(p, q, w, bias, packed, tml_s8_cpu_isa());
}

/* Runs the kernel with the descriptors gb (groups of them) already prepared;
 * scratch is aligned, its first off_zp bytes are not touched. */
static void conv_run(const tml_window *p, const conv_plan *pl, const tml_qparams *q, const int8_t *x,
                     const tml_s8_gemm_b *gb, int8_t *y, uint8_t *base, int64_t par_min_macs)
{
    int8_t *zpseg = (int8_t *)base + pl->off_zp;
    memset(zpseg, (int)(int8_t)q->in_zp, (size_t)pl->seg4);

    conv_ctx cx = {p, q, x, y, gb[0].isa, pl, gb, zpseg, base + pl->off_slots};

    int nth = 1;
#ifdef TML_S8_OMP
    const int64_t macs = pl->m * (int64_t)pl->k * p->o;
    if (macs >= par_min_macs && !omp_in_parallel()) {
        nth = omp_get_max_threads();
        if (nth > pl->slots) nth = pl->slots;
    }
#else
    (void)par_min_macs;
#endif
    if (nth <= 1 && cx.isa == TML_S8_ISA_VNNI && pl->pad_bytes) {
        /* image by image through its padded copy: a window without padding,
         * the same output geometry */
        tml_window pp = *p;
        pp.n = 1, pp.h = pl->ph, pp.w = pl->pw, pp.pad_t = 0, pp.pad_l = 0;
        conv_plan plp = *pl;
        plp.m = (int64_t)p->oh * p->ow;
        int8_t *xp = (int8_t *)base + pl->off_pad;
        const size_t rowb = (size_t)pl->pw * p->c, xrow = (size_t)p->w * p->c;
        const int ncol = p->w < pl->pw - p->pad_l ? p->w : pl->pw - p->pad_l; /* image columns the copy takes */
        /* the padding once (the same for every image), then each image's rows */
        memset(xp, (int)(int8_t)q->in_zp, (size_t)pl->ph * rowb);
        memset(xp + (size_t)pl->ph * rowb, 0, (size_t)pl->seg4); /* read past the last run, by zero weights */
        const int py0 = p->pad_t, py1 = p->h + p->pad_t < pl->ph ? p->h + p->pad_t : pl->ph;
        for (int b = 0; b < p->n; b++) {
            const int8_t *xb = x + (size_t)b * p->h * xrow;
            if (ncol > 0)
                for (int py = py0; py < py1; py++)
                    memcpy(xp + (size_t)py * rowb + (size_t)p->pad_l * p->c, xb + (size_t)(py - p->pad_t) * xrow,
                           (size_t)ncol * p->c);
            conv_ctx cb = cx;
            cb.p = &pp, cb.pl = &plp, cb.x = xp, cb.y = y + (size_t)b * plp.m * p->o;
            for (int64_t r0 = 0; r0 < plp.m; r0 += plp.chunk_rows)
                conv_chunk(&cb, r0, r0 + plp.chunk_rows < plp.m ? r0 + plp.chunk_rows : plp.m, 0);
        }
        return;
    }
    if (nth <= 1) {
        for (int64_t r0 = 0; r0 < pl->m; r0 += pl->chunk_rows)
            conv_chunk(&cx, r0, r0 + pl->chunk_rows < pl->m ? r0 + pl->chunk_rows : pl->m, 0);
        return;
    }
#ifdef TML_S8_OMP
    /* About 4 chunks per thread for balance, never above the buffer size. */
    int64_t cr = (pl->m + 4 * nth - 1) / (4 * nth);
    if (cr < 8) cr = 8;
    if (cr > pl->chunk_rows) cr = pl->chunk_rows;
    const int64_t nchunks = (pl->m + cr - 1) / cr;
    const int64_t m = pl->m;
#pragma omp parallel num_threads(nth)
    {
        const int slot = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < nchunks; c++) {
            const int64_t r0 = c * cr;
            conv_chunk(&cx, r0, r0 + cr < m ? r0 + cr : m, slot);
        }
    }
#endif
}

void tml_conv2d_s8_ex(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                      const int32_t *bias, int8_t *y, void *scratch, tml_s8_isa isa, int64_t par_min_macs)
{
    conv_plan pl;
    conv_make_plan(p, &pl);
    if (pl.m <= 0 || p->o <= 0) return;
    tml_conv2d_s8_pack_ex(p, q, w, bias, scratch, isa);
    uint8_t *base = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    conv_run(p, &pl, q, x, (const tml_s8_gemm_b *)(const void *)base, y, base, par_min_macs);
}

void tml_conv2d_s8_packed_ex(const tml_window *p, const tml_qparams *q, const int8_t *x, const void *packed,
                             int8_t *y, void *scratch, int64_t par_min_macs)
{
    conv_plan pl;
    conv_make_plan(p, &pl);
    if (pl.m <= 0 || p->o <= 0) return;
    const tml_s8_gemm_b *gb = (const tml_s8_gemm_b *)(const void *)(((uintptr_t)packed + 63) & ~(uintptr_t)63);
    uint8_t *base = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    conv_run(p, &pl, q, x, gb, y, base, par_min_macs);
}

void tml_conv2d_s8_packed(const tml_window *p, const tml_qparams *q, const int8_t *x, const void *packed, int8_t *y,
                          void *scratch)
{
    tml_conv2d_s8_packed_ex(p, q, x, packed, y, scratch, TML_S8_PAR_MACS);
}

void tml_conv2d_s8(const tml_window *p, const tml_qparams *q, const int8_t *x, const int8_t *w,
                   const int32_t *bias, int8_t *y, void *scratch)
{
    tml_conv2d_s8_ex(p, q, x, w, bias, y, scratch, tml_s8_cpu_isa(), TML_S8_PAR_MACS);
}
