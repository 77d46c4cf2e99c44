/*
 * bench_ops_f32.c - time of the float32 layer kernels, reference against
 * fast (1 thread and all OpenMP threads), on LeNet-5 layers at batch 64 and a
 * MobileNet-style depthwise-separable block.
 *
 *   bench_ops_f32 [min_seconds_per_case]     (default 0.3)
 *
 * Prints the median time per call in milliseconds and the fast kernel's
 * GFLOP/s on all threads (2 * MACs / time; none for pooling).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops_internal.h"
#include "tinyml/tml_ops.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#include "bench_util.h"
#endif

typedef enum kind { K_CONV, K_DW, K_DENSE, K_MAXPOOL } kind;

typedef struct ocase {
    const char *name;
    kind k;
    int n, h, w, c, o, ks, s, pad, groups, dm;
} ocase;

static const ocase CASES[] = {
    {"lenet conv1 5x5 1->20", K_CONV, 64, 28, 28, 1, 20, 5, 1, 0, 1, 1},
    {"lenet pool1 2x2", K_MAXPOOL, 64, 24, 24, 20, 20, 2, 2, 0, 1, 1},
    {"lenet conv2 5x5 20->50", K_CONV, 64, 12, 12, 20, 50, 5, 1, 0, 1, 1},
    {"lenet fc1 800->500", K_DENSE, 64, 1, 1, 800, 500, 1, 1, 0, 1, 1},
    {"dw 3x3 56x56x64", K_DW, 8, 56, 56, 64, 64, 3, 1, 1, 1, 1},
    {"pw 1x1 56x56 64->128", K_CONV, 8, 56, 56, 64, 128, 1, 1, 0, 1, 1},
    {"conv 3x3 28x28 64->64", K_CONV, 8, 28, 28, 64, 64, 3, 1, 1, 1, 1},
};

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fill(float *x, size_t n, unsigned seed)
{
    unsigned s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

typedef struct bufs {
    tml_window p;
    float *x, *w, *b, *y;
    void *scratch;
} bufs;

static void call(const ocase *c, bufs *d, int ref)
{
    switch (c->k) {
    case K_CONV:
        if (ref)
            tml_conv2d_f32_ref(&d->p, d->x, d->w, d->b, d->y);
        else
            tml_conv2d_f32(&d->p, d->x, d->w, d->b, d->y, d->scratch);
        break;
    case K_DW:
        if (ref)
            tml_dwconv2d_f32_ref(&d->p, d->x, d->w, d->b, d->y);
        else
            tml_dwconv2d_f32(&d->p, d->x, d->w, d->b, d->y);
        break;
    case K_DENSE:
        if (ref)
            tml_dense_f32_ref(c->n, c->c, c->o, d->x, d->w, d->b, TML_ACT_RELU, d->y);
        else
            tml_dense_f32(c->n, c->c, c->o, d->x, d->w, d->b, TML_ACT_RELU, d->y);
        break;
    case K_MAXPOOL:
        if (ref)
            tml_maxpool_f32_ref(&d->p, d->x, d->y);
        else
            tml_maxpool_f32(&d->p, d->x, d->y);
        break;
    }
}

#define MAX_SAMPLES 20000

/* Median seconds per call over at least min_s seconds (after one warm-up). */
static double run(const ocase *c, bufs *d, int ref, int threads, double min_s)
{
    static double samples[MAX_SAMPLES];
#ifdef TML_OPS_OMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    int n = 0;
    double start = now();
    for (int k = 0;; k++) {
        double t0 = now();
        call(c, d, ref);
        double t1 = now();
        if (k > 0 || ref) samples[n++] = t1 - t0;
        if (n >= MAX_SAMPLES || (n > 0 && t1 - start >= min_s)) break;
    }
    qsort(samples, (size_t)n, sizeof(double), cmp_double);
    return samples[n / 2];
}

int main(int argc, char **argv)
{
    double min_s = argc > 1 ? atof(argv[1]) : 0.3;
    if (!(min_s > 0.0)) min_s = 0.3;
    int maxt = 1;
#ifdef TML_OPS_OMP
    maxt = omp_get_max_threads();
#endif
    printf("float32 kernels: ISA %s, %d OpenMP thread(s); median ms per call\n", tml_isa_name(tml_cpu_isa()),
           maxt);
    printf("%-24s %5s | %9s %9s %9s | %8s\n", "layer", "batch", "ref ms", "fast 1T", "fast", "GFLOP/s");
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const ocase *c = &CASES[i];
        bufs d;
        memset(&d, 0, sizeof(d));
        tml_window *p = &d.p;
        p->n = c->n;
        p->h = c->h;
        p->w = c->w;
        p->c = c->c;
        p->o = c->k == K_DW ? c->c * c->dm : c->o;
        p->kh = p->kw = c->ks;
        p->sh = p->sw = c->s;
        p->dh = p->dw = 1;
        p->pad_t = p->pad_l = c->pad;
        p->groups = c->groups;
        p->depth_mult = c->dm;
        p->act = TML_ACT_RELU;
        p->oh = (c->h + 2 * c->pad - c->ks) / c->s + 1;
        p->ow = (c->w + 2 * c->pad - c->ks) / c->s + 1;
        size_t nx = (size_t)c->n * c->h * c->w * c->c, ny = (size_t)c->n * p->oh * p->ow * p->o;
        size_t nw =
            c->k == K_DW ? (size_t)c->ks * c->ks * p->o : (size_t)p->o * c->ks * c->ks * (c->c / c->groups);
        double macs =
            (double)ny * (c->k == K_DW ? (double)c->ks * c->ks : (double)c->ks * c->ks * (c->c / c->groups));
        d.x = malloc(nx * sizeof(float));
        d.w = malloc(nw * sizeof(float));
        d.b = malloc((size_t)p->o * sizeof(float));
        d.y = malloc(ny * sizeof(float));
        size_t sb = c->k == K_CONV ? tml_conv2d_f32_scratch_size(p) : 0;
        d.scratch = sb ? malloc(sb) : NULL;
        if (!d.x || !d.w || !d.b || !d.y || (sb && !d.scratch)) {
            fprintf(stderr, "bench_ops_f32: out of memory\n");
            return 1;
        }
        fill(d.x, nx, 1);
        fill(d.w, nw, 2);
        fill(d.b, (size_t)p->o, 3);
        double tr = run(c, &d, 1, 1, min_s < 0.5 ? min_s : 0.5);
        double t1 = run(c, &d, 0, 1, min_s);
        double tn = run(c, &d, 0, maxt, min_s);
        if (c->k == K_MAXPOOL)
            printf("%-24s %5d | %9.3f %9.3f %9.3f | %8s\n", c->name, c->n, tr * 1e3, t1 * 1e3, tn * 1e3, "-");
        else
            printf("%-24s %5d | %9.3f %9.3f %9.3f | %8.1f\n", c->name, c->n, tr * 1e3, t1 * 1e3, tn * 1e3,
                   2.0 * macs / tn * 1e-9);
        fflush(stdout);
        free(d.x);
        free(d.w);
        free(d.b);
        free(d.y);
        free(d.scratch);
    }
    return 0;
}
