/*
 * test_train_ops.c - backward kernels, training-mode forwards and losses
 * (lib/train/train_ops.h).
 *
 * Gradient checks: a random scalar loss L = sum r (.) y (r random) is
 * differentiated numerically by central differences of a DOUBLE forward
 * written here (independent of lib/ops), and compared with the float kernels
 * (both the _ref and the fast version where there is one). Tolerances are
 * absolute + relative to the largest gradient magnitude of the array, named
 * below with their reasons. Then the fast kernels are compared with their
 * _ref twins on odd sizes, the thread count is shown not to change any bit,
 * and a tiny MLP trained with these kernels must overfit its data.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tinyml/tml_ops.h"
#include "train/train_ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Linear ops (conv, dense, pools, add): the central difference of a linear
 * function in double is exact up to double rounding (~1e-13), so the error is
 * the kernels' float arithmetic: output rounding (6e-8 relative) plus, for the
 * fast kernels, float summation over at most a few thousand terms. */
#define LINEAR_GRAD_REL 2e-5
#define LINEAR_GRAD_ABS 1e-6
/* Non-linear (batch norm, losses, softmax): the central difference with
 * h = NONLIN_H has truncation error ~h^2 * |f'''| ~ 1e-8 relative; batch norm's
 * float backward cancels terms (rows*dy - sum dy - xhat*sum dy*xhat), losing a
 * few more digits. */
#define NONLIN_H 1e-4
#define NONLIN_GRAD_REL 2e-4
#define NONLIN_GRAD_ABS 1e-6
/* Step for linear ops (any step is exact; this one keeps max pool's argmax
 * unchanged, whose data is spaced by POOL_GAP). */
#define LIN_H 1e-3
#define POOL_GAP 0.01f
/* Fast vs _ref: inputs in [-1, 1], so every product term has |t| <= 1; a float
 * sum of L such terms (blocked, partial sums combined in order) stays far
 * below L * 1e-6 (realistic error ~ u * sqrt(L) * |partial sums|; the bound
 * keeps a ~30x margin at L ~ 1000). L is the reduction length per output. */
#define FASTREF_TOL_PER_TERM 1e-6f
/* Losses: the returned double loss vs the double recomputation here. */
#define LOSS_VALUE_TOL 1e-9

/* ---- helpers -------------------------------------------------------------------------- */

static float *falloc(size_t n)
{
    float *p = (float *)calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static double *dalloc(size_t n)
{
    double *p = (double *)calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

static double *to_double(const float *x, size_t n)
{
    double *d = dalloc(n);
    for (size_t i = 0; i < n; i++) d[i] = (double)x[i];
    return d;
}

static float *rand_f(tu_rng *r, size_t n, float lo, float hi)
{
    float *p = falloc(n);
    tu_fill_uniform(r, p, n, lo, hi);
    return p;
}

/* Compares a kernel gradient with a numerical one: |got - num| <= abs + rel * max|num|. */
static int grad_close(const char *what, const float *got, const float *num, size_t n, double rel,
                      double abs_tol)
{
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)num[i]) > mx) mx = fabs((double)num[i]);
    return tu_close_f32(what, got, num, n, (float)(abs_tol + rel * mx));
}

typedef double (*loss_fn)(void *ctx);

/* Central differences of f w.r.t. param[0..n), written to g as float. */
static void numgrad(loss_fn f, void *ctx, double *param, size_t n, double h, float *g)
{
    for (size_t i = 0; i < n; i++) {
        const double s = param[i];
        param[i] = s + h;
        const double lp = f(ctx);
        param[i] = s - h;
        const double lm = f(ctx);
        param[i] = s;
        g[i] = (float)((lp - lm) / (2.0 * h));
    }
}

static int out_size(int in, int k, int s, int d, int p0, int p1)
{
    const int span = d * (k - 1) + 1;
    if (in + p0 + p1 < span) return 0;
    return (in + p0 + p1 - span) / s + 1;
}

static tml_window make_win(int n, int h, int w, int c, int o, int kh, int kw, int sh, int sw, int dh, int dw,
                           int pt, int pl, int pb, int pr, int groups, int mult)
{
    tml_window p;
    memset(&p, 0, sizeof(p));
    p.n = n;
    p.h = h;
    p.w = w;
    p.c = c;
    p.o = o;
    p.kh = kh;
    p.kw = kw;
    p.sh = sh;
    p.sw = sw;
    p.dh = dh;
    p.dw = dw;
    p.pad_t = pt;
    p.pad_l = pl;
    p.oh = out_size(h, kh, sh, dh, pt, pb);
    p.ow = out_size(w, kw, sw, dw, pl, pr);
    p.groups = groups;
    p.depth_mult = mult;
    p.act = TML_ACT_NONE;
    return p;
}

static size_t xsz(const tml_window *p)
{
    return (size_t)p->n * p->h * p->w * p->c;
}
static size_t ysz(const tml_window *p)
{
    return (size_t)p->n * p->oh * p->ow * p->o;
}

/* ---- double forwards (the truth for the numerical gradients) ---------------------------- */

static void conv_fwd_d(const tml_window *p, const double *x, const double *w, const double *b, double *y)
{
    const int cg = p->c / p->groups, og = p->o / p->groups;
    for (int n = 0; n < p->n; n++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int oc = 0; oc < p->o; oc++) {
                    const int g = oc / og;
                    double acc = b ? b[oc] : 0.0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            for (int ci = 0; ci < cg; ci++)
                                acc += x[(((size_t)n * p->h + iy) * p->w + ix) * p->c + g * cg + ci] *
                                       w[(((size_t)oc * p->kh + ky) * p->kw + kx) * cg + ci];
                        }
                    }
                    y[(((size_t)n * p->oh + oy) * p->ow + ox) * p->o + oc] = acc;
                }
}

static void dwconv_fwd_d(const tml_window *p, const double *x, const double *w, const double *b, double *y)
{
    const int m = p->depth_mult;
    for (int n = 0; n < p->n; n++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int oc = 0; oc < p->o; oc++) {
                    double acc = b ? b[oc] : 0.0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            acc += x[(((size_t)n * p->h + iy) * p->w + ix) * p->c + oc / m] *
                                   w[((size_t)ky * p->kw + kx) * p->o + oc];
                        }
                    }
                    y[(((size_t)n * p->oh + oy) * p->ow + ox) * p->o + oc] = acc;
                }
}

/* Pools: max (first max in row-major order) or average over in-range taps. */
static void pool_fwd_d(const tml_window *p, int is_max, const double *x, double *y)
{
    for (int n = 0; n < p->n; n++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int ch = 0; ch < p->c; ch++) {
                    double acc = is_max ? -INFINITY : 0.0;
                    int cnt = 0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            const double v = x[(((size_t)n * p->h + iy) * p->w + ix) * p->c + ch];
                            if (is_max) {
                                if (v > acc) acc = v;
                            } else {
                                acc += v;
                            }
                            cnt++;
                        }
                    }
                    y[(((size_t)n * p->oh + oy) * p->ow + ox) * p->c + ch] = is_max ? acc : acc / cnt;
                }
}

static double dot_d(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- conv2d ---------------------------------------------------------------------------------- */

typedef struct conv_ctx {
    const tml_window *p;
    int depthwise;
    double *x, *w, *b, *r, *y;
} conv_ctx;

static double conv_loss(void *vctx)
{
    conv_ctx *c = (conv_ctx *)vctx;
    if (c->depthwise)
        dwconv_fwd_d(c->p, c->x, c->w, c->b, c->y);
    else
        conv_fwd_d(c->p, c->x, c->w, c->b, c->y);
    return dot_d(c->r, c->y, ysz(c->p));
}

static void check_conv_grad(const tml_window *p, int depthwise, uint64_t seed)
{
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    const size_t nx = xsz(p), ny = ysz(p);
    const size_t nw =
        depthwise ? (size_t)p->kh * p->kw * p->o : (size_t)p->o * p->kh * p->kw * (p->c / p->groups);
    float *x = rand_f(&rng, nx, -1, 1), *w = rand_f(&rng, nw, -1, 1), *b = rand_f(&rng, (size_t)p->o, -1, 1);
    float *r = rand_f(&rng, ny, -1, 1);
    conv_ctx ctx = {p,
                    depthwise,
                    to_double(x, nx),
                    to_double(w, nw),
                    to_double(b, (size_t)p->o),
                    to_double(r, ny),
                    dalloc(ny)};
    float *ndx = falloc(nx), *ndw = falloc(nw), *ndb = falloc((size_t)p->o);
    numgrad(conv_loss, &ctx, ctx.x, nx, LIN_H, ndx);
    numgrad(conv_loss, &ctx, ctx.w, nw, LIN_H, ndw);
    numgrad(conv_loss, &ctx, ctx.b, (size_t)p->o, LIN_H, ndb);

    float *dx = falloc(nx), *dw = falloc(nw), *db = falloc((size_t)p->o);
    const size_t ss = depthwise ? tml_dwconv2d_f32_bwd_scratch_size(p) : tml_conv2d_f32_bwd_scratch_size(p);
    void *scratch = malloc(ss ? ss : 1);
    assert_non_null(scratch);
    for (int fast = 0; fast < 2; fast++) {
        /* dz = r: L = sum r * z. NaN poison shows any output left unwritten. */
        for (size_t i = 0; i < nx; i++) dx[i] = NAN;
        for (size_t i = 0; i < nw; i++) dw[i] = NAN;
        for (int i = 0; i < p->o; i++) db[i] = NAN;
        if (depthwise) {
            if (fast)
                tml_dwconv2d_f32_bwd(p, x, w, r, dx, dw, db, scratch);
            else
                tml_dwconv2d_f32_bwd_ref(p, x, w, r, dx, dw, db);
        } else {
            if (fast)
                tml_conv2d_f32_bwd(p, x, w, r, dx, dw, db, scratch);
            else
                tml_conv2d_f32_bwd_ref(p, x, w, r, dx, dw, db);
        }
        fprintf(stderr, "  %s %s\n", depthwise ? "dwconv" : "conv", fast ? "fast" : "ref");
        assert_true(grad_close("dx", dx, ndx, nx, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
        assert_true(grad_close("dw", dw, ndw, nw, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
        assert_true(grad_close("db", db, ndb, (size_t)p->o, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
    }
    free(scratch);
    free(x), free(w), free(b), free(r), free(ndx), free(ndw), free(ndb), free(dx), free(dw), free(db);
    free(ctx.x), free(ctx.w), free(ctx.b), free(ctx.r), free(ctx.y);
}

static void test_conv_grad_stride2_pad(void **state)
{
    (void)state;
    tml_window p = make_win(2, 7, 6, 3, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1);
    check_conv_grad(&p, 0, 11);
}

static void test_conv_grad_dilation2(void **state)
{
    (void)state;
    tml_window p = make_win(1, 8, 7, 2, 3, 3, 3, 1, 1, 2, 2, 2, 1, 0, 1, 1, 1);
    check_conv_grad(&p, 0, 12);
}

static void test_conv_grad_groups2(void **state)
{
    (void)state;
    tml_window p = make_win(2, 5, 5, 4, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1);
    check_conv_grad(&p, 0, 13);
}

static void test_conv_grad_1x1(void **state)
{
    (void)state;
    tml_window p = make_win(3, 4, 5, 5, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1); /* pointwise path */
    check_conv_grad(&p, 0, 14);
    p = make_win(2, 3, 4, 4, 6, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 1); /* pointwise, 2 groups */
    check_conv_grad(&p, 0, 15);
    p = make_win(2, 5, 5, 3, 2, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1); /* 1x1 stride 2: im2col path */
    check_conv_grad(&p, 0, 16);
}

static void test_conv_grad_rect_asym(void **state)
{
    (void)state;
    /* 2x3 kernel, strides (2,1), asymmetric padding, 1 output row only. */
    tml_window p = make_win(2, 4, 6, 3, 5, 2, 3, 2, 1, 1, 1, 0, 2, 1, 0, 1, 1);
    check_conv_grad(&p, 0, 17);
}

static void test_dwconv_grad(void **state)
{
    (void)state;
    tml_window p = make_win(2, 7, 6, 3, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2); /* multiplier 2 */
    check_conv_grad(&p, 1, 21);
    p = make_win(3, 6, 6, 4, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1); /* multiplier 1, dilation 2 */
    check_conv_grad(&p, 1, 22);
}

/* ---- dense ------------------------------------------------------------------------------------ */

typedef struct dense_ctx {
    int n, in, out;
    double *x, *w, *b, *r;
} dense_ctx;

static double dense_loss(void *vctx)
{
    dense_ctx *c = (dense_ctx *)vctx;
    double L = 0.0;
    for (int i = 0; i < c->n; i++)
        for (int o = 0; o < c->out; o++) {
            double z = c->b[o];
            for (int k = 0; k < c->in; k++) z += c->x[i * c->in + k] * c->w[o * c->in + k];
            L += c->r[i * c->out + o] * z;
        }
    return L;
}

static void test_dense_grad(void **state)
{
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 31);
    const int n = 3, in = 7, out = 5;
    float *x = rand_f(&rng, n * in, -1, 1), *w = rand_f(&rng, out * in, -1, 1), *b = rand_f(&rng, out, -1, 1);
    float *r = rand_f(&rng, n * out, -1, 1);
    dense_ctx ctx = {
        n, in, out, to_double(x, n * in), to_double(w, out * in), to_double(b, out), to_double(r, n * out)};
    float ndx[21], ndw[35], ndb[5], dx[21], dw[35], db[5];
    numgrad(dense_loss, &ctx, ctx.x, n * in, LIN_H, ndx);
    numgrad(dense_loss, &ctx, ctx.w, out * in, LIN_H, ndw);
    numgrad(dense_loss, &ctx, ctx.b, out, LIN_H, ndb);
    for (int fast = 0; fast < 2; fast++) {
        if (fast)
            tml_dense_f32_bwd(n, in, out, x, w, r, dx, dw, db);
        else
            tml_dense_f32_bwd_ref(n, in, out, x, w, r, dx, dw, db);
        assert_true(grad_close("dense dx", dx, ndx, n * in, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
        assert_true(grad_close("dense dw", dw, ndw, out * in, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
        assert_true(grad_close("dense db", db, ndb, out, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
    }
    free(x), free(w), free(b), free(r), free(ctx.x), free(ctx.w), free(ctx.b), free(ctx.r);
}

/* ---- pools ---------------------------------------------------------------------------------------- */

typedef struct pool_ctx {
    const tml_window *p;
    int kind; /* 0 max, 1 avg, 2 global avg */
    double *x, *r, *y;
} pool_ctx;

static double pool_loss(void *vctx)
{
    pool_ctx *c = (pool_ctx *)vctx;
    const tml_window *p = c->p;
    if (c->kind == 2) {
        const int hw = p->h * p->w;
        double L = 0.0;
        for (int n = 0; n < p->n; n++)
            for (int ch = 0; ch < p->c; ch++) {
                double s = 0.0;
                for (int i = 0; i < hw; i++) s += c->x[((size_t)n * hw + i) * p->c + ch];
                L += c->r[n * p->c + ch] * s / hw;
            }
        return L;
    }
    pool_fwd_d(p, c->kind == 0, c->x, c->y);
    return dot_d(c->r, c->y, ysz(p));
}

/* x: a shuffled grid of distinct values spaced POOL_GAP apart (no ties, and a
 * perturbation of LIN_H never changes a window's argmax). */
static void fill_distinct(tu_rng *rng, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = ((float)i - (float)n / 2) * POOL_GAP;
    for (size_t i = n; i > 1; i--) {
        const size_t j = tu_rng_u32(rng) % i;
        const float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}

static void check_pool_grad(const tml_window *p, int kind, uint64_t seed)
{
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    const size_t nx = xsz(p), ny = kind == 2 ? (size_t)p->n * p->c : ysz(p);
    float *x = falloc(nx), *r = rand_f(&rng, ny, -1, 1), *dx = falloc(nx), *ndx = falloc(nx);
    fill_distinct(&rng, x, nx);
    pool_ctx ctx = {p, kind, to_double(x, nx), to_double(r, ny), dalloc(ny)};
    numgrad(pool_loss, &ctx, ctx.x, nx, LIN_H, ndx);
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;
    if (kind == 0)
        tml_maxpool_f32_bwd(p, x, r, dx);
    else if (kind == 1)
        tml_avgpool_f32_bwd(p, r, dx);
    else
        tml_global_avgpool_f32_bwd(p->n, p->h * p->w, p->c, r, dx);
    assert_true(grad_close("pool dx", dx, ndx, nx, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
    free(x), free(r), free(dx), free(ndx), free(ctx.x), free(ctx.r), free(ctx.y);
}

static void test_maxpool_grad(void **state)
{
    (void)state;
    tml_window p = make_win(2, 6, 6, 3, 3, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1); /* lenet style */
    check_pool_grad(&p, 0, 41);
    p = make_win(2, 7, 5, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1); /* overlapping, padded */
    check_pool_grad(&p, 0, 42);
}

static void test_maxpool_ties_first(void **state)
{
    (void)state;
    /* One 2x2 window, all four taps equal: the first (row-major) gets it all. */
    tml_window p = make_win(1, 2, 2, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1);
    const float x[4] = {1, 1, 1, 1}, dy[1] = {3};
    float dx[4];
    tml_maxpool_f32_bwd(&p, x, dy, dx);
    const float want[4] = {3, 0, 0, 0};
    TU_ASSERT_CLOSE(dx, want, 4, 0.0f);
    /* Later strictly larger tap wins; a later equal one does not. */
    const float x2[4] = {1, 2, 0, 2};
    tml_maxpool_f32_bwd(&p, x2, dy, dx);
    const float want2[4] = {0, 3, 0, 0};
    TU_ASSERT_CLOSE(dx, want2, 4, 0.0f);
}

static void test_maxpool_nan_and_forward(void **state)
{
    (void)state;
    /* NaN never wins (as the forward, which ignores NaN taps). */
    tml_window p = make_win(1, 2, 2, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1);
    const float x[4] = {NAN, 1, 3, NAN}, dy[1] = {2};
    float dx[4];
    tml_maxpool_f32_bwd(&p, x, dy, dx);
    const float want[4] = {0, 0, 2, 0};
    TU_ASSERT_CLOSE(dx, want, 4, 0.0f);
    /* Against the library's forward on data full of ties (values 0..2),
     * overlapping padded windows: with dy = 1 per output, every output sends
     * exactly one unit to a tap whose value is the forward's max. Checked one
     * output at a time by dy = one-hot. */
    tml_window q = make_win(2, 5, 6, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1);
    tu_rng rng;
    tu_rng_seed(&rng, 46);
    const size_t nx = xsz(&q), ny = ysz(&q);
    float *xx = falloc(nx), *y = falloc(ny), *d = falloc(ny), *g = falloc(nx);
    for (size_t i = 0; i < nx; i++) xx[i] = (float)(tu_rng_u32(&rng) % 3);
    tml_maxpool_f32_ref(&q, xx, y);
    for (size_t o = 0; o < ny; o++) {
        memset(d, 0, ny * sizeof(float));
        d[o] = 1.0f;
        tml_maxpool_f32_bwd(&q, xx, d, g);
        int hits = 0;
        for (size_t i = 0; i < nx; i++)
            if (g[i] != 0.0f) {
                hits++;
                assert_true(g[i] == 1.0f && xx[i] == y[o]);
            }
        assert_int_equal(hits, 1);
    }
    free(xx), free(y), free(d), free(g);
}

static void test_avgpool_grad(void **state)
{
    (void)state;
    tml_window p = make_win(2, 7, 6, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1); /* padding excluded */
    check_pool_grad(&p, 1, 43);
    p = make_win(1, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1);
    check_pool_grad(&p, 1, 44);
    p = make_win(3, 3, 4, 5, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1);
    check_pool_grad(&p, 2, 45); /* global */
}

/* ---- element-wise ---------------------------------------------------------------------------------- */

typedef struct elt_ctx {
    int kind; /* 0 relu, 1 relu6, 2 add+relu, 3 add+relu6, 4 softmax rows of k */
    size_t n;
    int k;
    double *a, *b, *r;
} elt_ctx;

static double act_d(int relu6, double v)
{
    return v < 0 ? 0 : (relu6 && v > 6 ? 6 : v);
}

static double elt_loss(void *vctx)
{
    elt_ctx *c = (elt_ctx *)vctx;
    double L = 0.0;
    if (c->kind == 4) {
        for (size_t r0 = 0; r0 < c->n; r0 += (size_t)c->k) {
            double m = -INFINITY, s = 0.0;
            for (int j = 0; j < c->k; j++) m = fmax(m, c->a[r0 + j]);
            for (int j = 0; j < c->k; j++) s += exp(c->a[r0 + j] - m);
            for (int j = 0; j < c->k; j++) L += c->r[r0 + j] * exp(c->a[r0 + j] - m) / s;
        }
        return L;
    }
    for (size_t i = 0; i < c->n; i++) {
        const double z = c->kind >= 2 ? c->a[i] + c->b[i] : c->a[i];
        L += c->r[i] * act_d(c->kind == 1 || c->kind == 3, z);
    }
    return L;
}

/* Moves v at least `gap` away from the kinks 0 and 6. */
static float away_from_kinks(float v, float gap)
{
    if (fabsf(v) < gap) v = v < 0 ? -gap : gap;
    if (fabsf(v - 6.0f) < gap) v = v < 6.0f ? 6.0f - gap : 6.0f + gap;
    return v;
}

static void test_relu_grad(void **state)
{
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 51);
    enum { N = 200 };
    float x[N], y[N], r[N], dx[N], dx2[N], ndx[N];
    for (int relu6 = 0; relu6 < 2; relu6++) {
        tu_fill_uniform(&rng, x, N, -3, 9);
        tu_fill_uniform(&rng, r, N, -1, 1);
        for (int i = 0; i < N; i++) {
            x[i] = away_from_kinks(x[i], 10 * (float)LIN_H);
            y[i] = (float)act_d(relu6, x[i]);
        }
        elt_ctx ctx = {relu6, N, 0, to_double(x, N), NULL, to_double(r, N)};
        numgrad(elt_loss, &ctx, ctx.a, N, LIN_H, ndx);
        if (relu6) {
            tml_relu6_bwd_f32(N, y, r, dx);
            tml_relu6_bwd_f32(N, x, r, dx2); /* from the input: same mask */
        } else {
            tml_relu_bwd_f32(N, y, r, dx);
            tml_relu_bwd_f32(N, x, r, dx2);
        }
        assert_true(grad_close("relu dx", dx, ndx, N, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
        TU_ASSERT_CLOSE(dx2, dx, N, 0.0f);
        /* Fused-act form, in place (dz aliases dy). */
        memcpy(dx2, r, sizeof(r));
        tml_act_bwd_f32(relu6 ? TML_ACT_RELU6 : TML_ACT_RELU, N, y, dx2, dx2);
        TU_ASSERT_CLOSE(dx2, dx, N, 0.0f);
        free(ctx.a), free(ctx.r);
    }
    /* TML_ACT_NONE copies; kinks give 0. */
    tml_act_bwd_f32(TML_ACT_NONE, N, y, r, dx);
    TU_ASSERT_CLOSE(dx, r, N, 0.0f);
    const float ky[3] = {0.0f, 6.0f, 5.0f}, kdy[3] = {1, 1, 1}, kwant[3] = {0, 0, 1};
    float kdx[3];
    tml_relu6_bwd_f32(3, ky, kdy, kdx);
    TU_ASSERT_CLOSE(kdx, kwant, 3, 0.0f);
}

static void test_add_grad(void **state)
{
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 52);
    enum { N = 150 };
    float a[N], b[N], y[N], r[N], da[N], db[N], nda[N], ndb[N];
    for (int relu6 = 0; relu6 < 2; relu6++) {
        tu_fill_uniform(&rng, a, N, -3, 5);
        tu_fill_uniform(&rng, b, N, -2, 4);
        tu_fill_uniform(&rng, r, N, -1, 1);
        for (int i = 0; i < N; i++) {
            const float s = away_from_kinks(a[i] + b[i], 10 * (float)LIN_H);
            a[i] = s - b[i];
            y[i] = (float)act_d(relu6, (double)a[i] + (double)b[i]);
        }
        elt_ctx ctx = {2 + relu6, N, 0, to_double(a, N), to_double(b, N), to_double(r, N)};
        numgrad(elt_loss, &ctx, ctx.a, N, LIN_H, nda);
        numgrad(elt_loss, &ctx, ctx.b, N, LIN_H, ndb);
        tml_add_bwd_f32(relu6 ? TML_ACT_RELU6 : TML_ACT_RELU, N, y, r, da, db);
        assert_true(grad_close("add da", da, nda, N, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
        assert_true(grad_close("add db", db, ndb, N, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
        /* Only one input needs a gradient, computed in place. */
        memcpy(db, r, sizeof(r));
        tml_add_bwd_f32(relu6 ? TML_ACT_RELU6 : TML_ACT_RELU, N, y, db, NULL, db);
        TU_ASSERT_CLOSE(db, da, N, 0.0f);
        free(ctx.a), free(ctx.b), free(ctx.r);
    }
    /* Accumulation of two consumers' gradients. */
    float acc[4] = {1, 2, 3, 4};
    const float g[4] = {0.5f, -2, 0, 1}, want[4] = {1.5f, 0, 3, 5};
    tml_grad_accumulate_f32(4, g, acc);
    TU_ASSERT_CLOSE(acc, want, 4, 0.0f);
}

static void test_softmax_bwd_grad(void **state)
{
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 53);
    enum { NR = 3, K = 6 };
    float x[NR * K], y[NR * K], r[NR * K], dx[NR * K], ndx[NR * K];
    tu_fill_uniform(&rng, x, NR * K, -3, 3);
    tu_fill_uniform(&rng, r, NR * K, -1, 1);
    for (int i = 0; i < NR; i++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < K; j++) m = fmax(m, x[i * K + j]);
        for (int j = 0; j < K; j++) s += exp(x[i * K + j] - m);
        for (int j = 0; j < K; j++) y[i * K + j] = (float)(exp(x[i * K + j] - m) / s);
    }
    elt_ctx ctx = {4, NR * K, K, to_double(x, NR * K), NULL, to_double(r, NR * K)};
    numgrad(elt_loss, &ctx, ctx.a, NR * K, NONLIN_H, ndx);
    tml_softmax_bwd_f32(NR, K, y, r, dx);
    assert_true(grad_close("softmax dx", dx, ndx, NR * K, NONLIN_GRAD_REL, NONLIN_GRAD_ABS));
    free(ctx.a), free(ctx.r);
}

/* ---- batch norm --------------------------------------------------------------------------------------- */

typedef struct bn_ctx {
    int64_t rows;
    int c;
    double eps;
    double *x, *gamma, *beta, *r;
} bn_ctx;

static double bn_loss(void *vctx)
{
    bn_ctx *b = (bn_ctx *)vctx;
    double L = 0.0;
    for (int ch = 0; ch < b->c; ch++) {
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < b->rows; i++) mean += b->x[i * b->c + ch];
        mean /= (double)b->rows;
        for (int64_t i = 0; i < b->rows; i++)
            var += (b->x[i * b->c + ch] - mean) * (b->x[i * b->c + ch] - mean);
        var /= (double)b->rows;
        const double is = 1.0 / sqrt(var + b->eps);
        for (int64_t i = 0; i < b->rows; i++)
            L += b->r[i * b->c + ch] * ((b->x[i * b->c + ch] - mean) * is * b->gamma[ch] + b->beta[ch]);
    }
    return L;
}

static void check_bn_grad(int64_t rows, int c, uint64_t seed)
{
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    const size_t n = (size_t)rows * (size_t)c;
    const float eps = 1e-3f;
    float *x = rand_f(&rng, n, -2, 2), *r = rand_f(&rng, n, -1, 1);
    float *gamma = rand_f(&rng, (size_t)c, 0.5f, 1.5f), *beta = rand_f(&rng, (size_t)c, -1, 1);
    for (size_t i = 0; i < n; i++) x[i] += (float)(i % (size_t)c) * 0.5f; /* per-channel offsets */
    bn_ctx ctx = {
        rows,           c, eps, to_double(x, n), to_double(gamma, (size_t)c), to_double(beta, (size_t)c),
        to_double(r, n)};
    float *ndx = falloc(n), *ndg = falloc((size_t)c), *ndb = falloc((size_t)c);
    numgrad(bn_loss, &ctx, ctx.x, n, NONLIN_H, ndx);
    numgrad(bn_loss, &ctx, ctx.gamma, (size_t)c, NONLIN_H, ndg);
    numgrad(bn_loss, &ctx, ctx.beta, (size_t)c, NONLIN_H, ndb);

    float *y = falloc(n), *mean = falloc((size_t)c), *istd = falloc((size_t)c);
    float *dx = falloc(n), *dg = falloc((size_t)c), *dbeta = falloc((size_t)c);
    tml_batchnorm_f32_train(rows, c, x, gamma, beta, eps, TML_BN_DEFAULT_MOMENTUM, NULL, NULL, mean, istd, y);
    /* The forward output itself against the double forward. */
    double *yd = dalloc(n);
    for (int ch = 0; ch < c; ch++) {
        double m = 0, v = 0;
        for (int64_t i = 0; i < rows; i++) m += ctx.x[i * c + ch];
        m /= (double)rows;
        for (int64_t i = 0; i < rows; i++) v += (ctx.x[i * c + ch] - m) * (ctx.x[i * c + ch] - m);
        v /= (double)rows;
        for (int64_t i = 0; i < rows; i++)
            yd[i * c + ch] = (ctx.x[i * c + ch] - m) / sqrt(v + eps) * ctx.gamma[ch] + ctx.beta[ch];
    }
    float *yf = falloc(n);
    for (size_t i = 0; i < n; i++) yf[i] = (float)yd[i];
    assert_true(grad_close("bn y", y, yf, n, 1e-6, 1e-6));
    tml_batchnorm_f32_bwd(rows, c, x, gamma, mean, istd, r, dx, dg, dbeta);
    assert_true(grad_close("bn dx", dx, ndx, n, NONLIN_GRAD_REL, NONLIN_GRAD_ABS));
    assert_true(grad_close("bn dgamma", dg, ndg, (size_t)c, NONLIN_GRAD_REL, NONLIN_GRAD_ABS));
    assert_true(grad_close("bn dbeta", dbeta, ndb, (size_t)c, NONLIN_GRAD_REL, NONLIN_GRAD_ABS));
    /* dx in place over dy gives the same. */
    float *dyi = falloc(n);
    memcpy(dyi, r, n * sizeof(float));
    tml_batchnorm_f32_bwd(rows, c, x, gamma, mean, istd, dyi, dyi, dg, dbeta);
    TU_ASSERT_CLOSE(dyi, dx, n, 0.0f);
    free(dyi), free(yd), free(yf);
    free(x), free(r), free(gamma), free(beta), free(ndx), free(ndg), free(ndb), free(y), free(mean),
        free(istd);
    free(dx), free(dg), free(dbeta), free(ctx.x), free(ctx.gamma), free(ctx.beta), free(ctx.r);
}

static void test_batchnorm_grad(void **state)
{
    (void)state;
    check_bn_grad(12, 5, 61);
    check_bn_grad(9, 70, 62); /* two channel blocks */
}

typedef struct bnf_ctx {
    int64_t rows;
    int c;
    double eps;
    const float *mean, *var;
    double *x, *gamma, *beta, *r;
} bnf_ctx;

static double bnf_loss(void *vctx)
{
    bnf_ctx *b = (bnf_ctx *)vctx;
    double L = 0.0;
    for (int64_t i = 0; i < b->rows; i++)
        for (int ch = 0; ch < b->c; ch++) {
            const double xh = (b->x[i * b->c + ch] - b->mean[ch]) / sqrt((double)b->var[ch] + b->eps);
            L += b->r[i * b->c + ch] * (xh * b->gamma[ch] + b->beta[ch]);
        }
    return L;
}

static void test_batchnorm_frozen_grad(void **state)
{
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 63);
    enum { ROWS = 10, C = 67 };
    const float eps = 1e-3f;
    float *x = rand_f(&rng, ROWS * C, -2, 2), *r = rand_f(&rng, ROWS * C, -1, 1);
    float *gamma = rand_f(&rng, C, 0.5f, 1.5f), *beta = rand_f(&rng, C, -1, 1);
    float *mean = rand_f(&rng, C, -0.5f, 0.5f), *var = rand_f(&rng, C, 0.2f, 2.0f);
    bnf_ctx ctx = {ROWS,
                   C,
                   eps,
                   mean,
                   var,
                   to_double(x, ROWS * C),
                   to_double(gamma, C),
                   to_double(beta, C),
                   to_double(r, ROWS * C)};
    float *ndx = falloc(ROWS * C), *ndg = falloc(C), *ndb = falloc(C), *dx = falloc(ROWS * C),
          *dg = falloc(C), *db = falloc(C);
    numgrad(bnf_loss, &ctx, ctx.x, ROWS * C, LIN_H, ndx);
    numgrad(bnf_loss, &ctx, ctx.gamma, C, LIN_H, ndg);
    numgrad(bnf_loss, &ctx, ctx.beta, C, LIN_H, ndb);
    tml_batchnorm_f32_bwd_frozen(ROWS, C, x, gamma, mean, var, eps, r, dx, dg, db);
    assert_true(grad_close("bn frozen dx", dx, ndx, ROWS * C, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
    assert_true(grad_close("bn frozen dgamma", dg, ndg, C, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
    assert_true(grad_close("bn frozen dbeta", db, ndb, C, LINEAR_GRAD_REL, LINEAR_GRAD_ABS));
    free(x), free(r), free(gamma), free(beta), free(mean), free(var), free(ndx), free(ndg), free(ndb),
        free(dx);
    free(dg), free(db), free(ctx.x), free(ctx.gamma), free(ctx.beta), free(ctx.r);
}

static void test_batchnorm_running_stats(void **state)
{
    (void)state;
    /* One channel, x = 1, 2, 3, 4: mean 2.5, biased var 1.25, unbiased 5/3.
     * running (0, 1), momentum 0.1 -> mean 0.25, var 0.9 + 0.1 * 5/3. Second
     * channel: x = 10 constant: var 0. */
    const float x[8] = {1, 10, 2, 10, 3, 10, 4, 10};
    const float gamma[2] = {2, 1}, beta[2] = {0.5f, 0};
    float rm[2] = {0, 5}, rv[2] = {1, 2}, mean[2], istd[2], y[8];
    tml_batchnorm_f32_train(4, 2, x, gamma, beta, 1e-5f, TML_BN_DEFAULT_MOMENTUM, rm, rv, mean, istd, y);
    const float want_rm[2] = {0.25f, 0.9f * 5 + 1.0f}, want_rv[2] = {(float)(0.9 + 0.1 * 5.0 / 3.0), 1.8f};
    TU_ASSERT_CLOSE(rm, want_rm, 2, 1e-6f);
    TU_ASSERT_CLOSE(rv, want_rv, 2, 1e-6f);
    const float want_mean[2] = {2.5f, 10};
    const float want_istd[2] = {(float)(1 / sqrt(1.25 + 1e-5)), (float)(1 / sqrt(1e-5))};
    TU_ASSERT_CLOSE(mean, want_mean, 2, 0.0f);
    TU_ASSERT_CLOSE(istd, want_istd, 2, 1e-6f * want_istd[1]);
    const float want_y0 = (float)((1 - 2.5) / sqrt(1.25 + 1e-5) * 2 + 0.5);
    assert_true(fabsf(y[0] - want_y0) < 1e-6f);
    assert_true(y[1] == 0.0f); /* constant channel: exactly beta */
}

/* ---- losses
 * ------------------------------------------------------------------------------------------------ */

typedef struct loss_ctx {
    int n, k;
    double *s, *t;
    const int32_t *labels;
    double eps, T, alpha;
    int kd;
} loss_ctx;

static double lse_d(const double *v, int k, double scale)
{
    double m = -INFINITY, s = 0.0;
    for (int j = 0; j < k; j++) m = fmax(m, v[j] * scale);
    for (int j = 0; j < k; j++) s += exp(v[j] * scale - m);
    return m + log(s);
}

static double xent_d(const double *v, int k, int label, double eps)
{
    const double lse = lse_d(v, k, 1.0);
    double L = 0.0;
    for (int j = 0; j < k; j++) L -= ((j == label ? 1.0 - eps : 0.0) + eps / k) * (v[j] - lse);
    return L;
}

static double loss_value(void *vctx)
{
    loss_ctx *c = (loss_ctx *)vctx;
    double ce = 0.0, kl = 0.0;
    for (int i = 0; i < c->n; i++) {
        const double *s = c->s + i * c->k;
        ce += xent_d(s, c->k, c->labels[i], c->eps);
        if (c->kd) {
            const double *t = c->t + i * c->k;
            const double ls = lse_d(s, c->k, 1 / c->T), lt = lse_d(t, c->k, 1 / c->T);
            for (int j = 0; j < c->k; j++) {
                const double pt = exp(t[j] / c->T - lt);
                kl += pt * ((t[j] / c->T - lt) - (s[j] / c->T - ls));
            }
        }
    }
    if (!c->kd) return ce / c->n;
    return (c->alpha * c->T * c->T * kl + (1 - c->alpha) * ce) / c->n;
}

static void check_loss(int kd, float eps, float T, float alpha, float spread, uint64_t seed)
{
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    enum { N = 4, K = 5 };
    float s[N * K], t[N * K], g[N * K], ng[N * K];
    const int32_t labels[N] = {0, 3, 4, 3};
    tu_fill_uniform(&rng, s, N * K, -spread, spread);
    tu_fill_uniform(&rng, t, N * K, -spread, spread);
    loss_ctx ctx = {N, K, to_double(s, N * K), to_double(t, N * K), labels, eps, T, alpha, kd};
    const double want = loss_value(&ctx);
    const double got = kd ? tml_kd_loss_f32(N, K, s, t, labels, T, alpha, eps, g)
                          : tml_softmax_xent_f32(N, K, s, labels, eps, g);
    fprintf(stderr, "  loss kd=%d eps=%g: got %.12g want %.12g\n", kd, eps, got, want);
    assert_true(fabs(got - want) <= LOSS_VALUE_TOL * (1.0 + fabs(want)));
    /* The step scales with the logits so the truncation error stays relative. */
    numgrad(loss_value, &ctx, ctx.s, N * K, NONLIN_H * (spread > 10 ? spread / 10 : 1), ng);
    assert_true(grad_close("dlogits", g, ng, N * K, NONLIN_GRAD_REL, NONLIN_GRAD_ABS));
    /* Loss without gradient gives the same value. */
    const double again = kd ? tml_kd_loss_f32(N, K, s, t, labels, T, alpha, eps, NULL)
                            : tml_softmax_xent_f32(N, K, s, labels, eps, NULL);
    assert_true(again == got);
    free(ctx.s), free(ctx.t);
}

static void test_softmax_xent(void **state)
{
    (void)state;
    check_loss(0, 0.0f, 1, 0, 3, 71);
    check_loss(0, 0.1f, 1, 0, 3, 72);
    check_loss(0, 0.1f, 1, 0, 50, 73); /* large logits: stable */
    /* Extreme logits must stay finite. */
    const float big[4] = {1000, -1000, 0, 500};
    const int32_t lab[1] = {1};
    float g[4];
    const double L = tml_softmax_xent_f32(1, 4, big, lab, 0.0f, g);
    assert_true(isfinite(L) && fabs(L - 2000.0) < 1e-9);
    for (int j = 0; j < 4; j++) assert_true(isfinite(g[j]));
}

static void test_kd_loss(void **state)
{
    (void)state;
    check_loss(1, 0.1f, 4.0f, 0.7f, 3, 81);
    check_loss(1, 0.0f, 2.0f, 1.0f, 3, 82);
    check_loss(1, 0.0f, 1.0f, 0.0f, 3, 83); /* alpha 0: plain CE */
    check_loss(1, 0.05f, 3.0f, 0.5f, 40, 84);
}

static void test_count_correct(void **state)
{
    (void)state;
    const float l[6] = {0.1f, 0.9f, 0.0f, 2, 2, 1};
    const int32_t lab[2] = {1, 1};
    assert_int_equal(tml_count_correct_f32(2, 3, l, lab), 1); /* row 2 ties 0/1: first wins */
}

/* ---- fast vs ref on odd sizes
 * ---------------------------------------------------------------------------------------- */

static int gcd_i(int a, int b)
{
    return b ? gcd_i(b, a % b) : a;
}

/* Geometry variants cycled over the shapes: (k, s, d, pad, use groups). */
typedef struct geo {
    int k, s, d, pad, grouped;
} geo;
static const geo GEOS[] = {
    {1, 1, 1, 0, 0}, {3, 1, 1, 1, 0}, {3, 2, 1, 1, 1}, {5, 1, 1, 2, 0},
    {3, 1, 2, 2, 1}, {2, 2, 1, 0, 0}, {1, 2, 1, 0, 1}, {1, 1, 1, 0, 1},
};

/* Fast vs ref for conv (chunk = 0: default) or depthwise. */
static void compare_fast_ref(const tml_window *p, int depthwise, int64_t chunk, uint64_t seed)
{
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    const size_t nx = xsz(p), ny = ysz(p);
    const int cg = depthwise ? 1 : p->c / p->groups, og = depthwise ? 1 : p->o / p->groups;
    const size_t nw = (size_t)p->o * p->kh * p->kw * (size_t)cg;
    float *x = rand_f(&rng, nx, -1, 1), *w = rand_f(&rng, nw, -1, 1), *dz = rand_f(&rng, ny, -1, 1);
    float *dx0 = falloc(nx), *dw0 = falloc(nw), *db0 = falloc((size_t)p->o);
    float *dx1 = falloc(nx), *dw1 = falloc(nw), *db1 = falloc((size_t)p->o);
    for (size_t i = 0; i < nx; i++) dx1[i] = NAN;
    for (size_t i = 0; i < nw; i++) dw1[i] = NAN;
    size_t ss = depthwise ? tml_dwconv2d_f32_bwd_scratch_size(p) : tml_conv2d_f32_bwd_scratch_size(p);
    void *scratch = malloc(ss ? ss : 1);
    assert_non_null(scratch);
    if (depthwise) {
        tml_dwconv2d_f32_bwd_ref(p, x, w, dz, dx0, dw0, db0);
        tml_dwconv2d_f32_bwd(p, x, w, dz, dx1, dw1, db1, scratch);
    } else {
        tml_conv2d_f32_bwd_ref(p, x, w, dz, dx0, dw0, db0);
        if (chunk)
            tml_conv2d_f32_bwd_ex(p, x, w, dz, dx1, dw1, db1, scratch, chunk);
        else
            tml_conv2d_f32_bwd(p, x, w, dz, dx1, dw1, db1, scratch);
    }
    const int64_t rows = (int64_t)p->n * p->oh * p->ow;
    const float tol_w = FASTREF_TOL_PER_TERM * (float)(rows > 0 ? rows : 1);
    const float tol_x = FASTREF_TOL_PER_TERM * (float)(p->kh * p->kw * og * (depthwise ? p->depth_mult : 1));
    int ok = tu_close_f32("fast dw", dw1, dw0, nw, tol_w) &&
             tu_close_f32("fast db", db1, db0, (size_t)p->o, tol_w) &&
             tu_close_f32("fast dx", dx1, dx0, nx, tol_x);
    if (!ok)
        fprintf(stderr,
                "  shape n=%d h=%d w=%d c=%d o=%d k=%dx%d s=%d,%d d=%d,%d pad=%d,%d g=%d m=%d chunk=%lld\n",
                p->n, p->h, p->w, p->c, p->o, p->kh, p->kw, p->sh, p->sw, p->dh, p->dw, p->pad_t, p->pad_l,
                p->groups, p->depth_mult, (long long)chunk);
    assert_true(ok);
    /* dx NULL and db NULL are allowed and leave dw the same. */
    float *dw2 = falloc(nw);
    if (depthwise)
        tml_dwconv2d_f32_bwd(p, x, w, dz, NULL, dw2, NULL, scratch);
    else if (chunk)
        tml_conv2d_f32_bwd_ex(p, x, w, dz, NULL, dw2, NULL, scratch, chunk);
    else
        tml_conv2d_f32_bwd(p, x, w, dz, NULL, dw2, NULL, scratch);
    TU_ASSERT_CLOSE(dw2, dw1, nw, 0.0f);
    free(scratch);
    free(x), free(w), free(dz), free(dx0), free(dw0), free(db0), free(dx1), free(dw1), free(db1), free(dw2);
}

static const int NS[] = {1, 5}, HWS[] = {1, 3, 7, 13}, CS[] = {1, 3, 7, 33}, OS[] = {1, 7, 33};

static void test_conv_fast_vs_ref(void **state)
{
    (void)state;
    int idx = 0, ran = 0;
    for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t c = 0; c < 4; c++)
                for (size_t d = 0; d < 3; d++, idx++) {
                    const geo g = GEOS[idx % (int)(sizeof(GEOS) / sizeof(GEOS[0]))];
                    const int groups = g.grouped ? gcd_i(CS[c], OS[d]) : 1;
                    /* H and W differ (W from the next size) to catch transposed loops. */
                    const int h = HWS[b], w = HWS[(b + 1) % 4];
                    tml_window p = make_win(NS[a], h, w, CS[c], OS[d], g.k, g.k, g.s, g.s, g.d, g.d, g.pad,
                                            g.pad, g.pad, g.pad, groups, 1);
                    if (p.oh <= 0 || p.ow <= 0) continue;
                    compare_fast_ref(&p, 0, 0, 100 + (uint64_t)idx);
                    ran++;
                }
    fprintf(stderr, "  %d conv shapes\n", ran);
    assert_true(ran > 60);
}

static void test_conv_fast_chunks(void **state)
{
    (void)state;
    /* Explicit chunk lengths: inside one sample (7 rows, crossing sample
     * boundaries), exactly one sample, two samples, and a remainder chunk. */
    tml_window p = make_win(5, 7, 6, 3, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    const int64_t rps = (int64_t)p.oh * p.ow;
    const int64_t chunks[] = {1, 7, rps, 2 * rps, 3 * rps};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        assert_true(chunks[i] <= tml_conv2d_f32_bwd_chunk_rows(&p));
        compare_fast_ref(&p, 0, chunks[i], 200 + i);
    }
    tml_window q = make_win(4, 9, 9, 6, 9, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 3, 1); /* groups 3 */
    compare_fast_ref(&q, 0, 5, 210);
    compare_fast_ref(&q, 0, (int64_t)q.oh * q.ow * 2, 211);
    /* A big K makes the default chunk smaller than the batch. */
    tml_window r = make_win(3, 16, 16, 64, 8, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1);
    assert_true(tml_conv2d_f32_bwd_chunk_rows(&r) < (int64_t)r.n * r.oh * r.ow);
    compare_fast_ref(&r, 0, 0, 212);
}

static void test_dwconv_fast_vs_ref(void **state)
{
    (void)state;
    static const int MS[] = {1, 2, 3};
    int idx = 0, ran = 0;
    for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t c = 0; c < 4; c++)
                for (size_t m = 0; m < 3; m++, idx++) {
                    const geo g = GEOS[idx % (int)(sizeof(GEOS) / sizeof(GEOS[0]))];
                    const int h = HWS[b], w = HWS[(b + 1) % 4];
                    tml_window p = make_win(NS[a], h, w, CS[c], CS[c] * MS[m], g.k, g.k, g.s, g.s, g.d, g.d,
                                            g.pad, g.pad, g.pad, g.pad, 1, MS[m]);
                    if (p.oh <= 0 || p.ow <= 0) continue;
                    compare_fast_ref(&p, 1, 0, 300 + (uint64_t)idx);
                    ran++;
                }
    /* More samples than parts. */
    tml_window p = make_win(19, 5, 4, 7, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2);
    compare_fast_ref(&p, 1, 0, 399);
    fprintf(stderr, "  %d dwconv shapes\n", ran + 1);
    assert_true(ran > 60);
}

static void test_dense_fast_vs_ref(void **state)
{
    (void)state;
    static const int DN[] = {1, 5, 64}, DI[] = {1, 3, 7, 33, 127}, DO[] = {1, 7, 33};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t c = 0; c < 3; c++) {
                const int n = DN[a], in = DI[b], out = DO[c];
                tu_rng rng;
                tu_rng_seed(&rng, 400 + a * 100 + b * 10 + c);
                float *x = rand_f(&rng, (size_t)n * in, -1, 1), *w = rand_f(&rng, (size_t)out * in, -1, 1);
                float *dz = rand_f(&rng, (size_t)n * out, -1, 1);
                float *dx0 = falloc((size_t)n * in), *dw0 = falloc((size_t)out * in),
                      *db0 = falloc((size_t)out);
                float *dx1 = falloc((size_t)n * in), *dw1 = falloc((size_t)out * in),
                      *db1 = falloc((size_t)out);
                tml_dense_f32_bwd_ref(n, in, out, x, w, dz, dx0, dw0, db0);
                tml_dense_f32_bwd(n, in, out, x, w, dz, dx1, dw1, db1);
                assert_true(
                    tu_close_f32("dense dw", dw1, dw0, (size_t)out * in, FASTREF_TOL_PER_TERM * (float)n));
                assert_true(tu_close_f32("dense db", db1, db0, (size_t)out, FASTREF_TOL_PER_TERM * (float)n));
                assert_true(
                    tu_close_f32("dense dx", dx1, dx0, (size_t)n * in, FASTREF_TOL_PER_TERM * (float)out));
                free(x), free(w), free(dz), free(dx0), free(dw0), free(db0), free(dx1), free(dw1), free(db1);
            }
}

/* ---- thread-count independence
 * ------------------------------------------------------------------------------------ */

#ifdef _OPENMP
static void run_bwds(const tml_window *pc, const tml_window *pd, const float *x, const float *wc,
                     const float *wd, const float *dzc, const float *dzd, float *out, void *scratch)
{
    const size_t nx = xsz(pc), nwc = (size_t)pc->o * pc->kh * pc->kw * pc->c,
                 nwd = (size_t)pd->kh * pd->kw * pd->o;
    float *p = out;
    tml_conv2d_f32_bwd(pc, x, wc, dzc, p, p + nx, p + nx + nwc, scratch);
    p += nx + nwc + pc->o;
    tml_dwconv2d_f32_bwd(pd, x, wd, dzd, p, p + nx, p + nx + nwd, scratch);
    p += nx + nwd + pd->o;
    /* dense on the same data viewed as (n, h*w*c) -> (n, o) */
    const int in = pc->h * pc->w * pc->c;
    tml_dense_f32_bwd(pc->n, in, 40, x, wc, dzc, p, p + xsz(pc), p + xsz(pc) + (size_t)40 * in);
    p += xsz(pc) + (size_t)40 * in + 40;
    tml_maxpool_f32_bwd(pd, x, dzd, p); /* pd has o == c (m = 1) */
    p += nx;
    float *m = p, *s = p + pc->c;
    tml_batchnorm_f32_train((int64_t)pc->n * pc->h * pc->w, pc->c, x, wc, wd, 1e-5f, 0.1f, NULL, NULL, m, s,
                            p + 2 * pc->c);
    p += 2 * pc->c + nx;
    tml_dropout_f32_train((int64_t)nx, 0.4f, 7, 3, x, p);
}
#endif

static void test_thread_count_independent(void **state)
{
    (void)state;
#ifdef _OPENMP
    tml_window pc = make_win(16, 20, 20, 72, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    tml_window pd = make_win(16, 20, 20, 72, 72, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    const size_t nx = xsz(&pc);
    const int in = pc.h * pc.w * pc.c;
    const size_t nwc = (size_t)pc.o * 9 * pc.c;
    tu_rng rng;
    tu_rng_seed(&rng, 500);
    float *x = rand_f(&rng, nx, -1, 1);
    float *wc = rand_f(&rng, nwc > (size_t)40 * in ? nwc : (size_t)40 * in, -1, 1);
    float *wd = rand_f(&rng, (size_t)9 * pd.o, -1, 1);
    float *dzc = rand_f(&rng, ysz(&pc), -1, 1), *dzd = rand_f(&rng, ysz(&pd), -1, 1);
    size_t ss = tml_conv2d_f32_bwd_scratch_size(&pc);
    if (tml_dwconv2d_f32_bwd_scratch_size(&pd) > ss) ss = tml_dwconv2d_f32_bwd_scratch_size(&pd);
    void *scratch = malloc(ss);
    const size_t nout =
        7 * nx + nwc + 2 * (size_t)pc.o + (size_t)9 * pd.o + (size_t)40 * in + 40 + 4 * (size_t)pc.c;
    float *o1 = falloc(nout), *o2 = falloc(nout);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    run_bwds(&pc, &pd, x, wc, wd, dzc, dzd, o1, scratch);
    omp_set_num_threads(saved > 1 ? saved : 2);
    run_bwds(&pc, &pd, x, wc, wd, dzc, dzd, o2, scratch);
    omp_set_num_threads(saved);
    assert_true(memcmp(o1, o2, nout * sizeof(float)) == 0);
    free(scratch), free(x), free(wc), free(wd), free(dzc), free(dzd), free(o1), free(o2);
#else
    skip();
#endif
}

/* ---- dropout
 * ---------------------------------------------------------------------------------------------------------
 */

static void test_dropout(void **state)
{
    (void)state;
    enum { N = 100000 };
    const float rate = 0.3f;
    float *x = falloc(N), *y1 = falloc(N), *y2 = falloc(N), *y3 = falloc(N), *dx = falloc(N);
    tu_rng rng;
    tu_rng_seed(&rng, 600);
    tu_fill_uniform(&rng, x, N, 0.5f, 1.5f); /* never 0: y == 0 means dropped */
    const uint64_t seed = tml_dropout_seed(42, 3);
    tml_dropout_f32_train(N, rate, seed, 10, x, y1);
    tml_dropout_f32_train(N, rate, seed, 10, x, y2);
    tml_dropout_f32_train(N, rate, seed, 11, x, y3);
    assert_true(memcmp(y1, y2, sizeof(float) * N) == 0); /* same seed / step: same mask */
    int kept = 0, differ = 0;
    const float scale = 1.0f / (1.0f - rate);
    for (int i = 0; i < N; i++) {
        const int k = y1[i] != 0.0f;
        kept += k;
        differ += k != (y3[i] != 0.0f);
        assert_int_equal(k, tml_dropout_keep(seed, 10, i, rate));
        if (k) assert_true(y1[i] == x[i] * scale);
    }
    /* kept ~ Binomial(N, 0.7): sd = sqrt(N * 0.21) = 145; allow 5 sd. */
    fprintf(stderr, "  kept %d of %d, %d differ between steps\n", kept, N, differ);
    assert_true(abs(kept - 70000) <= 725);
    /* Independent masks differ at rate 2 * 0.3 * 0.7 = 0.42 (sd 156). */
    assert_true(abs(differ - 42000) <= 800);
    /* A different node seed changes the mask too. */
    tml_dropout_f32_train(N, rate, tml_dropout_seed(42, 4), 10, x, y3);
    assert_true(memcmp(y1, y3, sizeof(float) * N) != 0);
    /* Backward: same mask, same scale; in place. */
    for (int i = 0; i < N; i++) dx[i] = 2.0f;
    tml_dropout_f32_bwd(N, rate, seed, 10, dx, dx);
    for (int i = 0; i < N; i++) assert_true(dx[i] == (y1[i] != 0.0f ? 2.0f * scale : 0.0f));
    /* rate 0: identity. */
    tml_dropout_f32_train(N, 0.0f, seed, 10, x, y2);
    assert_true(memcmp(x, y2, sizeof(float) * N) == 0);
    free(x), free(y1), free(y2), free(y3), free(dx);
}

/* ---- pruning / clustering helpers
 * --------------------------------------------------------------------------- */

static void test_grad_helpers(void **state)
{
    (void)state;
    const float w[6] = {0, 1, 0, -2, 3, 0};
    float dw[6] = {1, 2, 3, 4, 5, 6};
    tml_grad_mask_zeros_f32(6, w, dw);
    const float want[6] = {0, 2, 0, 4, 5, 0};
    TU_ASSERT_CLOSE(dw, want, 6, 0.0f);
    const uint8_t mask[6] = {1, 0, 1, 1, 0, 1};
    tml_grad_mask_f32(6, mask, dw);
    const float want2[6] = {0, 0, 0, 4, 0, 0};
    TU_ASSERT_CLOSE(dw, want2, 6, 0.0f);

    /* Two books of 4 elements, k = 3. */
    const uint8_t index[8] = {0, 2, 2, 1, 1, 1, 0, 2};
    const float g[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float sums[6];
    tml_cluster_grad_sum(8, index, g, 2, 4, 3, sums);
    const float want_s[6] = {1, 4, 5, 7, 11, 8};
    TU_ASSERT_CLOSE(sums, want_s, 6, 0.0f);
    tml_cluster_grad_sum(8, index, g, 1, 8, 3, sums); /* one book */
    const float want_1[3] = {8, 15, 13};
    TU_ASSERT_CLOSE(sums, want_1, 3, 0.0f);
    const float cent[6] = {0, 0.5f, -1, 0, 2, 3};
    float wx[8];
    tml_cluster_expand_f32(8, index, cent, 2, 4, 3, wx);
    const float want_w[8] = {0, -1, -1, 0.5f, 2, 2, 0, 3};
    TU_ASSERT_CLOSE(wx, want_w, 8, 0.0f);
    float rs[3];
    const float m[6] = {1, 2, 3, 4, 5, 6};
    tml_sum_rows_f32(2, 3, 3, m, rs);
    const float want_r[3] = {5, 7, 9};
    TU_ASSERT_CLOSE(rs, want_r, 3, 0.0f);
}

/* ---- end to end: a 2-layer MLP overfits 16 samples with plain SGD
 * ------------------------------------------------- */

static void test_mlp_overfits(void **state)
{
    (void)state;
    enum { N = 16, IN = 12, HID = 32, OUT = 4, STEPS = 400 };
    const float lr = 0.5f;
    tu_rng rng;
    tu_rng_seed(&rng, 700);
    float x[N * IN], w1[HID * IN], b1[HID] = {0}, w2[OUT * HID], b2[OUT] = {0};
    float h[N * HID], z[N * OUT], dz[N * OUT], dh[N * HID];
    float dw1[HID * IN], db1[HID], dw2[OUT * HID], db2[OUT];
    int32_t labels[N];
    tu_fill_uniform(&rng, x, N * IN, -1, 1);
    const float s1 = sqrtf(6.0f / (IN + HID)), s2 = sqrtf(6.0f / (HID + OUT));
    tu_fill_uniform(&rng, w1, HID * IN, -s1, s1);
    tu_fill_uniform(&rng, w2, OUT * HID, -s2, s2);
    for (int i = 0; i < N; i++) labels[i] = (int32_t)(tu_rng_u32(&rng) % OUT);
    double loss = 0.0, first = 0.0;
    int step = 0;
    for (; step < STEPS; step++) {
        /* forward: the library's dense kernels, ReLU fused into layer 1 */
        tml_dense_f32(N, IN, HID, x, w1, b1, TML_ACT_RELU, h);
        tml_dense_f32(N, HID, OUT, h, w2, b2, TML_ACT_NONE, z);
        loss = tml_softmax_xent_f32(N, OUT, z, labels, 0.0f, dz);
        if (step == 0) first = loss;
        if (loss < 0.05) break;
        tml_dense_f32_bwd(N, HID, OUT, h, w2, dz, dh, dw2, db2);
        tml_act_bwd_f32(TML_ACT_RELU, N * HID, h, dh, dh);
        tml_dense_f32_bwd(N, IN, HID, x, w1, dh, NULL, dw1, db1);
        for (int i = 0; i < HID * IN; i++) w1[i] -= lr * dw1[i];
        for (int i = 0; i < HID; i++) b1[i] -= lr * db1[i];
        for (int i = 0; i < OUT * HID; i++) w2[i] -= lr * dw2[i];
        for (int i = 0; i < OUT; i++) b2[i] -= lr * db2[i];
    }
    fprintf(stderr, "  MLP: loss %.4f -> %.4f after %d steps; %d/%d correct\n", first, loss, step,
            tml_count_correct_f32(N, OUT, z, labels), N);
    assert_true(loss < 0.05);
    assert_int_equal(tml_count_correct_f32(N, OUT, z, labels), N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_grad_stride2_pad),
        cmocka_unit_test(test_conv_grad_dilation2),
        cmocka_unit_test(test_conv_grad_groups2),
        cmocka_unit_test(test_conv_grad_1x1),
        cmocka_unit_test(test_conv_grad_rect_asym),
        cmocka_unit_test(test_dwconv_grad),
        cmocka_unit_test(test_dense_grad),
        cmocka_unit_test(test_maxpool_grad),
        cmocka_unit_test(test_maxpool_ties_first),
        cmocka_unit_test(test_maxpool_nan_and_forward),
        cmocka_unit_test(test_avgpool_grad),
        cmocka_unit_test(test_relu_grad),
        cmocka_unit_test(test_add_grad),
        cmocka_unit_test(test_softmax_bwd_grad),
        cmocka_unit_test(test_batchnorm_grad),
        cmocka_unit_test(test_batchnorm_frozen_grad),
        cmocka_unit_test(test_batchnorm_running_stats),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_kd_loss),
        cmocka_unit_test(test_count_correct),
        cmocka_unit_test(test_conv_fast_vs_ref),
        cmocka_unit_test(test_conv_fast_chunks),
        cmocka_unit_test(test_dwconv_fast_vs_ref),
        cmocka_unit_test(test_dense_fast_vs_ref),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_grad_helpers),
        cmocka_unit_test(test_mlp_overfits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
