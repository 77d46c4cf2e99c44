/*
 * conv2d_f32.c - 2-D convolution, float32, NHWC activations, OHWI weights.
 *
 *   y[b,oy,ox,oc] = act(bias[oc] + sum_{ky,kx,ci} x[b, oy*sh - pad_t + ky*dh,
 *                       ox*sw - pad_l + kx*dw, g*cg + ci] * w[oc,ky,kx,ci])
 *   with cg = c/groups, og = o/groups, g = oc / og; taps outside x are 0.
 *
 * Fast path: per group, Y_g (R, og) = cols_g (R, K) * W_g^T with R = n*oh*ow
 * output pixels and K = kh*kw*cg; W_g is the (og, K) row-major slice of the
 * OHWI weights, so tml_sgemm reads it in place (trans_b). The R rows are cut
 * into chunks whose im2col block fits the scratch; threads take contiguous
 * row ranges (whole samples when the batch is large) and each one builds the
 * im2col rows it then multiplies, so the block is consumed while it is in the
 * thread's L2. A pointwise conv (1x1, stride 1, no padding) multiplies x
 * itself. Bias and activation are applied by the GEMM's final store.
 */
#include <string.h>

#include "ops_internal.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#endif

/* im2col block budget (bytes). The scratch is min(R, max(CONV_MIN_ROWS,
 * CONV_SCRATCH_BYTES / (4K))) rows of K floats: at most 2 MiB unless a single
 * row of taps is larger than 2 MiB / 64 (K > 8192), whatever the batch size. */
#define CONV_SCRATCH_BYTES ((int64_t)2 << 20)
#define CONV_MIN_ROWS 64
#define POINTWISE_CHUNK ((int64_t)1 << 20)

/* ---- reference ------------------------------------------------------------------ */

void tml_conv2d_f32_ref(const tml_window *p, const float *x, const float *w, const float *b, float *y)
{
    const int cg = p->c / p->groups, og = p->o / p->groups;
    for (int n = 0; n < p->n; n++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int oc = 0; oc < p->o; oc++) {
                    const int g = oc / og;
                    double acc = b ? (double)b[oc] : 0.0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            const float *xp =
                                x + (((int64_t)n * p->h + iy) * p->w + ix) * p->c + (int64_t)g * cg;
                            const float *wp = w + (((int64_t)oc * p->kh + ky) * p->kw + kx) * cg;
                            for (int ci = 0; ci < cg; ci++) acc += (double)xp[ci] * (double)wp[ci];
                        }
                    }
                    y[(((int64_t)n * p->oh + oy) * p->ow + ox) * p->o + oc] =
                        tml_act_apply_f32(p->act, (float)acc);
                }
}

/* ---- fast ------------------------------------------------------------------------- */

int tml_conv2d_f32_is_pointwise(const tml_window *p)
{
    return p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->pad_t == 0 && p->pad_l == 0 &&
           p->oh == p->h && p->ow == p->w;
}

int64_t tml_conv2d_f32_chunk_rows(const tml_window *p)
{
    const int64_t rows = (int64_t)p->n * p->oh * p->ow;
    const int64_t k = (int64_t)p->kh * p->kw * (p->c / p->groups);
    int64_t chunk = CONV_SCRATCH_BYTES / (k * (int64_t)sizeof(float));
    if (chunk < CONV_MIN_ROWS) chunk = CONV_MIN_ROWS;
    return chunk < rows ? chunk : rows;
}

size_t tml_conv2d_f32_scratch_size(const tml_window *p)
{
    /* the packed kernel may run a 3x3 stride-1 layer by Winograd's algorithm */
    const size_t wg = tml_winograd_f32_applies(p) ? tml_winograd_f32_scratch_size(p) : 0;
    if (tml_conv2d_f32_is_pointwise(p)) return wg;
    const int64_t k = (int64_t)p->kh * p->kw * (p->c / p->groups);
    const size_t cols = (size_t)(tml_conv2d_f32_chunk_rows(p) * k) * sizeof(float);
    return cols > wg ? cols : wg;
}

/* Copies `count` runs of `run` floats, source runs `sstep` apart, destination
 * runs `dstep` apart. Short runs get a constant-size copy per case, which the
 * compiler turns into a few moves (a 5x5 kernel on one channel has 5-float
 * runs, copied ~200 000 times per LeNet batch). */
static void copy_runs(float *d, int64_t dstep, const float *s, int64_t sstep, int count, int run)
{
#define COPY_RUNS_CASE(len)                                                                                  \
    case len:                                                                                                \
        for (int i = 0; i < count; i++) memcpy(d + i * dstep, s + i * sstep, (len) * sizeof(float));         \
        return;
    switch (run) {
        COPY_RUNS_CASE(1)
        COPY_RUNS_CASE(2)
        COPY_RUNS_CASE(3)
        COPY_RUNS_CASE(4)
        COPY_RUNS_CASE(5)
        COPY_RUNS_CASE(6)
        COPY_RUNS_CASE(7)
        COPY_RUNS_CASE(8)
        COPY_RUNS_CASE(9)
        COPY_RUNS_CASE(12)
        COPY_RUNS_CASE(15)
        COPY_RUNS_CASE(16)
    default:
        for (int i = 0; i < count; i++) memcpy(d + i * dstep, s + i * sstep, (size_t)run * sizeof(float));
    }
#undef COPY_RUNS_CASE
}

static void zero_runs(float *d, int64_t dstep, int count, int run)
{
    for (int i = 0; i < count; i++) memset(d + i * dstep, 0, (size_t)run * sizeof(float));
}

void tml_im2col_f32(const tml_window *p, const float *x, int g, int64_t r0, int64_t r1, float *cols)
{
    const int cg = p->c / p->groups;
    const int64_t k = (int64_t)p->kh * p->kw * cg;
    /* a whole kernel row of taps is one contiguous run of x when the taps of
     * neighbouring columns are neighbouring pixels and all channels are used */
    const int row_contig = p->dw == 1 && p->groups == 1;
    const int run = p->kw * cg;
    /* output columns whose taps are all inside the image: [ox_lo, ox_hi) */
    int ox_lo = 0, ox_hi = p->ow;
    while (ox_lo < p->ow && ox_lo * p->sw - p->pad_l < 0) ox_lo++;
    while (ox_hi > ox_lo && (ox_hi - 1) * p->sw - p->pad_l + (p->kw - 1) * p->dw >= p->w) ox_hi--;
    int64_t r = r0;
    while (r < r1) {
        /* one segment [oxa, oxb) of output row (n, oy) */
        const int oxa = (int)(r % p->ow);
        const int oy = (int)((r / p->ow) % p->oh);
        const int64_t n = r / p->ow / p->oh;
        const int oxb = r1 - r < p->ow - oxa ? oxa + (int)(r1 - r) : p->ow;
        float *seg = cols + (r - r0) * k;
        for (int ky = 0; ky < p->kh; ky++) {
            float *dk = seg + (int64_t)ky * run;
            const int iy = oy * p->sh - p->pad_t + ky * p->dh;
            if (iy < 0 || iy >= p->h) {
                zero_runs(dk, k, oxb - oxa, run);
                continue;
            }
            const float *xrow = x + ((n * p->h + iy) * p->w) * p->c + (int64_t)g * cg;
            for (int ox = oxa; ox < oxb;) {
                float *d = dk + (int64_t)(ox - oxa) * k;
                if (row_contig && ox >= ox_lo && ox < ox_hi) {
                    /* interior: one run per output column, all in one call */
                    const int end = oxb < ox_hi ? oxb : ox_hi;
                    copy_runs(d, k, xrow + ((int64_t)ox * p->sw - p->pad_l) * p->c, (int64_t)p->sw * p->c,
                              end - ox, run);
                    ox = end;
                    continue;
                }
                for (int kx = 0; kx < p->kw; kx++) {
                    const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                    if (ix < 0 || ix >= p->w)
                        zero_runs(d + kx * cg, 0, 1, cg);
                    else
                        copy_runs(d + kx * cg, 0, xrow + (int64_t)ix * p->c, 0, 1, cg);
                }
                ox++;
            }
        }
        r += oxb - oxa;
    }
}

/* The weights of one call: as stored (OHWI, read by the GEMM as its
 * transposed operand) or packed once per group for tml_sgemm_packed_ex. */
typedef struct conv_weights {
    tml_isa isa;
    const float *w;      /* (o, K) as stored, or NULL */
    const float *packed; /* group g at packed + g * group_floats */
    size_t group_floats;
} conv_weights;

/* Rows [r0, r1) of y: im2col (unless pointwise), one GEMM per group with the
 * bias (+ residual) + activation fused into its final store.
 * `cols` holds at least (r1 - r0) rows of K floats. Serial, and with the
 * K-split disabled so that every row's value is independent of the range. */
static void conv_rows(const tml_window *p, const conv_weights *cw, const float *x, const float *b,
                      const float *res, float *y, float *cols, int64_t r0, int64_t r1, int pointwise)
{
    const int G = p->groups, cg = p->c / G, og = p->o / G;
    const int k = p->kh * p->kw * cg;
    const int m = (int)(r1 - r0);
    for (int g = 0; g < G; g++) {
        const float *a;
        int lda;
        if (pointwise) {
            a = x + r0 * p->c + (int64_t)g * cg;
            lda = p->c;
        } else {
            tml_im2col_f32(p, x, g, r0, r1, cols);
            a = cols;
            lda = k;
        }
        float *yg = y + r0 * p->o + (int64_t)g * og;
        const float *bg = b ? b + (int64_t)g * og : NULL;
        if (cw->packed)
            tml_sgemm_packed_ex(cw->isa, TML_GEMM_SERIAL, 0, m, og, k, a, lda, cw->packed + g * cw->group_floats, yg,
                                p->o, bg, res ? res + r0 * p->o + (int64_t)g * og : NULL, p->o, p->act);
        else
            tml_sgemm_bias_act_ex(cw->isa, TML_GEMM_SERIAL | TML_GEMM_ROW_STABLE, 0, 1, m, og, k, 1.0f, a, lda,
                                  cw->w + (int64_t)g * og * k, k, 0.0f, yg, p->o, bg, p->act);
    }
}

static void conv_run(const tml_window *p, const conv_weights *cw, const float *x, const float *b, const float *res,
                     float *y, void *scratch)
{
    const int64_t rows = (int64_t)p->n * p->oh * p->ow;
    if (rows <= 0 || p->o <= 0) return;
    const int pointwise = tml_conv2d_f32_is_pointwise(p);
    /* pointwise: no scratch; chunks only keep each GEMM's M within int */
    const int64_t chunk =
        pointwise ? (rows < POINTWISE_CHUNK ? rows : POINTWISE_CHUNK) : tml_conv2d_f32_chunk_rows(p);
    float *cols = scratch;
#ifdef TML_OPS_OMP
    const int64_t k = (int64_t)p->kh * p->kw * (p->c / p->groups);
    int nt = 1;
    if (2.0 * (double)rows * (double)k * (double)p->o >= TML_OPS_PAR_FLOPS && !omp_in_parallel())
        nt = omp_get_max_threads();
    if (nt > chunk) nt = (int)chunk;
    if (nt > 1) {
        /* Thread t owns rows [rows*t/T, rows*(t+1)/T) and the scratch slice
         * t of chunk/T rows; it walks its range in slices of that length. */
#pragma omp parallel num_threads(nt)
        {
            const int T = omp_get_num_threads(), t = omp_get_thread_num();
            const int64_t slice = chunk / T;
            float *mine = pointwise ? NULL : cols + (int64_t)t * slice * k;
            const int64_t a0 = rows * t / T, a1 = rows * (t + 1) / T;
            for (int64_t r = a0; r < a1; r += slice)
                conv_rows(p, cw, x, b, res, y, mine, r, r + slice < a1 ? r + slice : a1, pointwise);
        }
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r += chunk)
        conv_rows(p, cw, x, b, res, y, cols, r, r + chunk < rows ? r + chunk : rows, pointwise);
}

void tml_conv2d_f32(const tml_window *p, const float *x, const float *w, const float *b, float *y,
                    void *scratch)
{
    const conv_weights cw = {tml_cpu_isa(), w, NULL, 0};
    conv_run(p, &cw, x, b, NULL, y, scratch);
}

/* ---- weights packed once ---------------------------------------------------------
 * Layout: a 64-byte header (the isa, the algorithm and the shape the packing
 * was made for), then either per group the (og, K) weights packed by
 * tml_sgemm_pack_b (im2col + GEMM), or the Winograd-transformed weights
 * (tml_winograd_f32_pack) for the layers where that algorithm applies:
 * 3x3, stride 1, dilation 1, one group, at least 16 input and output
 * channels (a quarter of the multiply-adds). */
typedef struct conv_pack_header {
    int32_t magic, isa, groups, og, k, algo;
    int32_t reserved[10];
} conv_pack_header;
#define CONV_PACK_MAGIC 0x6B435046 /* "FPCk" */
enum { CONV_ALGO_GEMM = 0, CONV_ALGO_WINOGRAD = 1 };

static size_t conv_group_floats(tml_isa isa, const tml_window *p)
{
    const int og = p->o / p->groups, k = p->kh * p->kw * (p->c / p->groups);
    return (tml_sgemm_packed_b_floats(isa, og, k) + 15) / 16 * 16; /* groups stay 64-byte aligned */
}

size_t tml_conv2d_f32_packed_size_ex(const tml_window *p, tml_isa isa)
{
    isa = tml_sgemm_pack_isa(isa);
    if (tml_winograd_f32_applies(p))
        return sizeof(conv_pack_header) + tml_winograd_f32_packed_floats(isa, p->c, p->o) * sizeof(float);
    return sizeof(conv_pack_header) + (size_t)p->groups * conv_group_floats(isa, p) * sizeof(float);
}

void tml_conv2d_f32_pack_ex(const tml_window *p, const float *w, void *packed, tml_isa isa)
{
    isa = tml_sgemm_pack_isa(isa);
    conv_pack_header h;
    memset(&h, 0, sizeof h);
    h.magic = CONV_PACK_MAGIC;
    h.isa = (int32_t)isa;
    h.groups = p->groups;
    h.og = p->o / p->groups;
    h.k = p->kh * p->kw * (p->c / p->groups);
    h.algo = tml_winograd_f32_applies(p) ? CONV_ALGO_WINOGRAD : CONV_ALGO_GEMM;
    memcpy(packed, &h, sizeof h);
    float *dst = (float *)((char *)packed + sizeof h);
    if (h.algo == CONV_ALGO_WINOGRAD) {
        tml_winograd_f32_pack(isa, w, p->c, p->o, dst);
        return;
    }
    const size_t gf = conv_group_floats(isa, p);
    for (int g = 0; g < p->groups; g++)
        tml_sgemm_pack_b(isa, 1, h.og, h.k, w + (int64_t)g * h.og * h.k, h.k, dst + g * gf);
}

size_t tml_conv2d_f32_packed_size(const tml_window *p)
{
    return tml_conv2d_f32_packed_size_ex(p, tml_cpu_isa());
}

void tml_conv2d_f32_pack(const tml_window *p, const float *w, void *packed)
{
    tml_conv2d_f32_pack_ex(p, w, packed, tml_cpu_isa());
}

void tml_conv2d_f32_packed(const tml_window *p, const void *packed, const float *x, const float *b,
                           const float *res, float *y, void *scratch)
{
    conv_pack_header h;
    memcpy(&h, packed, sizeof h);
    TML_ASSERT(h.magic == CONV_PACK_MAGIC && h.groups == p->groups && h.og == p->o / p->groups &&
               h.k == p->kh * p->kw * (p->c / p->groups));
    if (h.algo == CONV_ALGO_WINOGRAD) {
        TML_ASSERT(tml_winograd_f32_applies(p));
        if ((int64_t)p->n * p->oh * p->ow > 0)
            tml_winograd_f32(p, (tml_isa)h.isa, (const float *)((const char *)packed + sizeof h), x, b, res, y,
                             scratch);
        return;
    }
    const conv_weights cw = {(tml_isa)h.isa, NULL, (const float *)((const char *)packed + sizeof h),
                             conv_group_floats((tml_isa)h.isa, p)};
    conv_run(p, &cw, x, b, res, y, scratch);
}
