/*
 * bench_ops_s8.c - time per call and GMAC/s of the INT8 kernels: the scalar
 * reference and the fast kernel for each instruction set on one thread, and
 * the best instruction set on all OpenMP threads, on LeNet-5's layers (conv1
 * 28x28x1 -> 24x24x20 5x5, conv2 12x12x20 -> 8x8x50 5x5, fc1 800 -> 500),
 * a 3x3 depthwise on 14x14x64, and the whole LeNet-5 int8 forward pass
 * (conv1+relu, maxpool, conv2+relu, maxpool, fc1+relu, fc2; the reference
 * column uses the _ref kernels throughout, the others tml_maxpool_s8), at
 * batch 1 and 64.
 *
 *   bench_ops_s8 [min_seconds_per_case [case_name_substring]]   (default 0.2, all)
 *
 * Times are the best of 5 rounds (each at least min_seconds / 5), after one
 * warm-up call. Every fast result is checked against the reference first.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops_s8_internal.h"
#include "tinyml/tml_ops_s8.h"

#ifdef TML_S8_OMP
#include <omp.h>
#include "bench_util.h"
#endif

static void fill(int8_t *x, size_t n, unsigned seed)
{
    unsigned s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (int8_t)(s >> 24);
    }
}

typedef enum kind { K_CONV, K_DW, K_DENSE, K_LENET } kind;

typedef struct bcase {
    const char *name;
    kind k;
    tml_window p; /* conv / dw geometry (n filled per batch) */
    int in, out;  /* dense */
} bcase;

/* One layer's data and quantization parameters. */
typedef struct layer {
    tml_window p;
    int in, out, n;
    int8_t *w;
    int32_t *bias, *mult, *shift;
    tml_qparams q;
} layer;

static tml_window win(int h, int w, int c, int o, int k, int pad, int dm)
{
    tml_window p;
    memset(&p, 0, sizeof(p));
    p.n = 1;
    p.h = h;
    p.w = w;
    p.c = c;
    p.o = o;
    p.kh = p.kw = k;
    p.sh = p.sw = p.dh = p.dw = 1;
    p.pad_t = p.pad_l = pad;
    p.oh = h + 2 * pad - k + 1;
    p.ow = w + 2 * pad - k + 1;
    p.groups = 1;
    p.depth_mult = dm;
    return p;
}

static void layer_init(layer *l, int nw, int o, int k, unsigned seed)
{
    l->w = malloc((size_t)nw);
    fill(l->w, (size_t)nw, seed);
    l->bias = malloc(sizeof(int32_t) * (size_t)o);
    l->mult = malloc(sizeof(int32_t) * (size_t)o);
    l->shift = malloc(sizeof(int32_t) * (size_t)o);
    for (int i = 0; i < o; i++) {
        l->bias[i] = (int32_t)(i * 37 % 2001) - 1000;
        int s;
        tml_quantize_multiplier(64.0 / (sqrt((double)k) * 74.0 * 74.0) * (1.0 + 0.01 * (i % 7)), &l->mult[i], &s);
        l->shift[i] = s;
    }
    l->q.in_zp = -128 + (int32_t)(seed % 3) * 50;
    l->q.out_zp = -128;
    l->q.mult = l->mult;
    l->q.shift = l->shift;
    l->q.act_min = -128;
    l->q.act_max = 127;
}

static void layer_free(layer *l) { free(l->w), free(l->bias), free(l->mult), free(l->shift); }

/* ---- LeNet-5 ------------------------------------------------------------------------- */

typedef struct lenet {
    layer c1, c2, f1, f2;
    tml_window p1, p2; /* pools */
    int8_t *a1, *a2, *a3, *a4, *a5; /* activations */
    void *scratch;
} lenet;

static tml_window pool_win(int n, int h, int c)
{
    tml_window p;
    memset(&p, 0, sizeof(p));
    p.n = n;
    p.h = p.w = h;
    p.c = p.o = c;
    p.kh = p.kw = p.sh = p.sw = 2;
    p.dh = p.dw = 1;
    p.oh = p.ow = h / 2;
    p.groups = p.depth_mult = 1;
    return p;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static void lenet_init(lenet *L, int n)
{
    L->c1.p = win(28, 28, 1, 20, 5, 0, 1);
    L->c1.p.n = n;
    layer_init(&L->c1, 20 * 25, 20, 25, 1);
    L->c1.q.act_min = -128; /* relu at zp -128 */
    L->p1 = pool_win(n, 24, 20);
    L->c2.p = win(12, 12, 20, 50, 5, 0, 1);
    L->c2.p.n = n;
    layer_init(&L->c2, 50 * 500, 50, 500, 3);
    L->c2.q.in_zp = -128;
    L->p2 = pool_win(n, 8, 50);
    layer_init(&L->f1, 500 * 800, 500, 800, 6);
    L->f1.q.in_zp = -128;
    layer_init(&L->f2, 10 * 500, 10, 500, 9);
    L->f2.q.in_zp = -128;
    L->a1 = malloc((size_t)n * 24 * 24 * 20);
    L->a2 = malloc((size_t)n * 12 * 12 * 20);
    L->a3 = malloc((size_t)n * 8 * 8 * 50);
    L->a4 = malloc((size_t)n * 800);
    L->a5 = malloc((size_t)n * 500);
    size_t s = max_sz(tml_conv2d_s8_scratch_size(&L->c1.p), tml_conv2d_s8_scratch_size(&L->c2.p));
    s = max_sz(s, tml_dense_s8_scratch_size(n, 800, 500));
    L->scratch = malloc(s + 64);
}

static void lenet_free(lenet *L)
{
    layer_free(&L->c1), layer_free(&L->c2), layer_free(&L->f1), layer_free(&L->f2);
    free(L->a1), free(L->a2), free(L->a3), free(L->a4), free(L->a5), free(L->scratch);
}

/* isa < 0: reference kernels */
static void lenet_run(lenet *L, int n, int isa, int64_t par, const int8_t *x, int8_t *y)
{
    if (isa < 0) {
        tml_conv2d_s8_ref(&L->c1.p, &L->c1.q, x, L->c1.w, L->c1.bias, L->a1);
        tml_maxpool_s8_ref(&L->p1, -128, 127, L->a1, L->a2);
        tml_conv2d_s8_ref(&L->c2.p, &L->c2.q, L->a2, L->c2.w, L->c2.bias, L->a3);
        tml_maxpool_s8_ref(&L->p2, -128, 127, L->a3, L->a4);
        tml_dense_s8_ref(n, 800, 500, &L->f1.q, L->a4, L->f1.w, L->f1.bias, L->a5);
        tml_dense_s8_ref(n, 500, 10, &L->f2.q, L->a5, L->f2.w, L->f2.bias, y);
        return;
    }
    const tml_s8_isa is = (tml_s8_isa)isa;
    tml_conv2d_s8_ex(&L->c1.p, &L->c1.q, x, L->c1.w, L->c1.bias, L->a1, L->scratch, is, par);
    tml_maxpool_s8(&L->p1, -128, 127, L->a1, L->a2);
    tml_conv2d_s8_ex(&L->c2.p, &L->c2.q, L->a2, L->c2.w, L->c2.bias, L->a3, L->scratch, is, par);
    tml_maxpool_s8(&L->p2, -128, 127, L->a3, L->a4);
    tml_dense_s8_ex(n, 800, 500, &L->f1.q, L->a4, L->f1.w, L->f1.bias, L->a5, L->scratch, is, par);
    tml_dense_s8_ex(n, 500, 10, &L->f2.q, L->a5, L->f2.w, L->f2.bias, y, L->scratch, is, par);
}

/* ---- timing --------------------------------------------------------------------------- */

typedef struct runner {
    const bcase *c;
    int n;
    layer l;
    lenet L;
    int8_t *x, *y;
    void *scratch;
} runner;

static void run_once(runner *r, int isa, int64_t par)
{
    const bcase *c = r->c;
    layer *l = &r->l;
    if (c->k == K_LENET) {
        lenet_run(&r->L, r->n, isa, par, r->x, r->y);
    } else if (c->k == K_CONV) {
        if (isa < 0)
            tml_conv2d_s8_ref(&l->p, &l->q, r->x, l->w, l->bias, r->y);
        else
            tml_conv2d_s8_ex(&l->p, &l->q, r->x, l->w, l->bias, r->y, r->scratch, (tml_s8_isa)isa, par);
    } else if (c->k == K_DW) {
        if (isa < 0)
            tml_dwconv2d_s8_ref(&l->p, &l->q, r->x, l->w, l->bias, r->y);
        else
            tml_dwconv2d_s8_ex(&l->p, &l->q, r->x, l->w, l->bias, r->y, (tml_s8_isa)isa, par);
    } else {
        if (isa < 0)
            tml_dense_s8_ref(r->n, c->in, c->out, &l->q, r->x, l->w, l->bias, r->y);
        else
            tml_dense_s8_ex(r->n, c->in, c->out, &l->q, r->x, l->w, l->bias, r->y, r->scratch, (tml_s8_isa)isa, par);
    }
}

/* Seconds per call (best of 5 rounds). */
static double time_it(runner *r, int isa, int threads, double min_s)
{
#ifdef TML_S8_OMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    const int64_t par = threads > 1 ? TML_S8_PAR_MACS : INT64_MAX;
    run_once(r, isa, par); /* warm-up */
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        int reps = 0;
        const double t0 = now();
        double t;
        do {
            run_once(r, isa, par);
            reps++;
            t = now() - t0;
        } while (t < min_s / 5);
        if (t / reps < best) best = t / reps;
    }
    return best;
}

static int64_t case_macs(const bcase *c, int n)
{
    if (c->k == K_LENET) return (int64_t)n * (24 * 24 * 20 * 25 + 8 * 8 * 50 * 500 + 800 * 500 + 500 * 10);
    if (c->k == K_DENSE) return (int64_t)n * c->in * c->out;
    const tml_window *p = &c->p;
    const int64_t per = c->k == K_DW ? (int64_t)p->kh * p->kw : (int64_t)p->kh * p->kw * (p->c / p->groups);
    return (int64_t)n * p->oh * p->ow * p->o * per;
}

static void print_time(double s, int64_t macs)
{
    if (s < 0)
        printf(" %20s", "-");
    else if (s < 1e-3)
        printf(" %9.2f us %6.1f G", s * 1e6, (double)macs / s * 1e-9);
    else
        printf(" %9.3f ms %6.1f G", s * 1e3, (double)macs / s * 1e-9);
}

int main(int argc, char **argv)
{
    const double min_s = argc > 1 ? atof(argv[1]) : 0.2;
    const char *only = argc > 2 ? argv[2] : NULL;
    const bcase cases[] = {
        {"conv1 28x28x1->20 5x5", K_CONV, win(28, 28, 1, 20, 5, 0, 1), 0, 0},
        {"conv2 12x12x20->50 5x5", K_CONV, win(12, 12, 20, 50, 5, 0, 1), 0, 0},
        {"fc1 800->500", K_DENSE, win(1, 1, 1, 1, 1, 0, 1), 800, 500},
        {"dw3x3 14x14x64 pad1", K_DW, win(14, 14, 64, 64, 3, 1, 1), 0, 0},
        {"lenet5 forward", K_LENET, win(1, 1, 1, 1, 1, 0, 1), 0, 0},
    };
    const int batches[2] = {1, 64};
    const int nisa = (int)tml_s8_cpu_isa() + 1;
    int max_threads = 1;
#ifdef TML_S8_OMP
    max_threads = omp_get_max_threads();
#endif
    printf("INT8 kernels: time per call and GMAC/s (best of 5 rounds, >= %.2f s per case)\n", min_s);
    printf("best instruction set: %s; OpenMP threads: %d\n\n", tml_s8_isa_name(tml_s8_cpu_isa()), max_threads);
    printf("%-24s %5s %20s %20s %20s %20s %20s %8s\n", "case", "batch", "reference", "generic 1T", "avx2 1T",
           "avx512-vnni 1T", "best, all threads", "speedup");
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++)
        for (int bi = 0; bi < 2; bi++) {
            const bcase *c = &cases[ci];
            const int n = batches[bi];
            if (only && !strstr(c->name, only)) continue;
            runner r;
            memset(&r, 0, sizeof(r));
            r.c = c;
            r.n = n;
            size_t nx = 0, ny = 0;
            if (c->k == K_LENET) {
                lenet_init(&r.L, n);
                nx = (size_t)n * 28 * 28;
                ny = (size_t)n * 10;
            } else if (c->k == K_DENSE) {
                layer_init(&r.l, c->in * c->out, c->out, c->in, 2);
                nx = (size_t)n * c->in;
                ny = (size_t)n * c->out;
                r.scratch = malloc(tml_dense_s8_scratch_size(n, c->in, c->out) + 1);
            } else {
                r.l.p = c->p;
                r.l.p.n = n;
                const int k = c->k == K_DW ? c->p.kh * c->p.kw : c->p.kh * c->p.kw * c->p.c;
                layer_init(&r.l, c->k == K_DW ? c->p.kh * c->p.kw * c->p.o : c->p.o * k, c->p.o, k, 4);
                nx = (size_t)n * c->p.h * c->p.w * c->p.c;
                ny = (size_t)n * c->p.oh * c->p.ow * c->p.o;
                if (c->k == K_CONV) r.scratch = malloc(tml_conv2d_s8_scratch_size(&r.l.p));
            }
            r.x = malloc(nx);
            r.y = malloc(ny);
            int8_t *yref = malloc(ny);
            fill(r.x, nx, 7);
            run_once(&r, -1, INT64_MAX);
            memcpy(yref, r.y, ny);
            for (int isa = 0; isa < nisa; isa++) {
                memset(r.y, 0, ny);
                run_once(&r, isa, 0);
                if (memcmp(r.y, yref, ny) != 0) {
                    fprintf(stderr, "%s batch %d: %s result differs from the reference\n", c->name, n,
                            tml_s8_isa_name((tml_s8_isa)isa));
                    return 1;
                }
            }
            const int64_t macs = case_macs(c, n);
            const double t_ref = time_it(&r, -1, 1, min_s);
            double t_isa[TML_S8_ISA_COUNT] = {-1, -1, -1};
            for (int isa = 0; isa < nisa; isa++) t_isa[isa] = time_it(&r, isa, 1, min_s);
            const double t_all = time_it(&r, nisa - 1, max_threads, min_s);
            const double best = t_all < t_isa[nisa - 1] ? t_all : t_isa[nisa - 1];
            printf("%-24s %5d", c->name, n);
            print_time(t_ref, macs);
            for (int isa = 0; isa < TML_S8_ISA_COUNT; isa++) print_time(t_isa[isa], macs);
            print_time(t_all, macs);
            printf(" %7.1fx\n", t_ref / best);
            fflush(stdout);
            if (c->k == K_LENET) lenet_free(&r.L);
            else layer_free(&r.l);
            free(r.x), free(r.y), free(yref), free(r.scratch);
        }
    return 0;
}
