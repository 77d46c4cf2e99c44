/*
 * bench_train_ops.c - forward + backward time of LeNet-5's layers at batch 64
 * (one training step's worth of work per layer), reference kernels vs fast.
 *
 *   bench_train_ops [min_seconds_per_case [layer,layer...]]   (default 0.5, all)
 *
 * Layers (NHWC, as tinyml's lenet5): conv1 28x28x1 -> 24x24x20 5x5 + ReLU (no
 * dx: first layer), pool1 2x2, conv2 12x12x20 -> 8x8x50 5x5 + ReLU, pool2,
 * fc1 800 -> 500 + ReLU, fc2 500 -> 10, softmax cross-entropy. Each case runs
 * the forward kernel, the fused-activation backward and the backward kernel,
 * and prints ms per batch (forward, backward, total). The fast column uses all
 * OpenMP threads; the reference kernels are single-threaded scalar loops.
 * Pool backward has one version (both columns); the loss row is the softmax
 * forward (softmax is folded into the loss in training) and the fused
 * softmax cross-entropy with its gradient.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tinyml/tml_ops.h"
#include "train/train_ops.h"

#ifdef _OPENMP
#include <omp.h>
#include "bench_util.h"
#endif

#define BATCH 64

static void fill(float *x, size_t n, unsigned seed)
{
    unsigned s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

static float *alloc_f(size_t n, unsigned seed)
{
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_train_ops: out of memory\n");
        exit(1);
    }
    fill(p, n, seed);
    return p;
}

typedef enum kind { K_CONV, K_POOL, K_DENSE, K_LOSS } kind;

typedef struct layer {
    const char *name;
    kind k;
    tml_window win; /* conv / pool */
    int in, out;    /* dense */
    tml_act act;    /* fused activation (conv, dense) */
    int need_dx;    /* 0: first layer, its input needs no gradient */
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
    int32_t *labels;
    void *scratch;
} layer;

static tml_window win_valid(int h, int w, int c, int o, int k, int s)
{
    tml_window p;
    memset(&p, 0, sizeof(p));
    p.n = BATCH;
    p.h = h;
    p.w = w;
    p.c = c;
    p.o = o;
    p.kh = p.kw = k;
    p.sh = p.sw = s;
    p.dh = p.dw = 1;
    p.oh = (h - k) / s + 1;
    p.ow = (w - k) / s + 1;
    p.groups = 1;
    p.depth_mult = 1;
    return p;
}

static void layer_init(layer *L, unsigned seed)
{
    size_t nx, ny, nw = 0, nb = 0;
    if (L->k == K_CONV || L->k == K_POOL) {
        const tml_window *p = &L->win;
        nx = (size_t)p->n * p->h * p->w * p->c;
        ny = (size_t)p->n * p->oh * p->ow * p->o;
        if (L->k == K_CONV) {
            nw = (size_t)p->o * p->kh * p->kw * p->c;
            nb = (size_t)p->o;
            size_t ss = tml_conv2d_f32_bwd_scratch_size(p);
            const size_t sf = tml_conv2d_f32_scratch_size(p);
            if (sf > ss) ss = sf;
            L->scratch = malloc(ss ? ss : 1);
        }
    } else {
        nx = (size_t)BATCH * L->in;
        ny = (size_t)BATCH * L->out;
        if (L->k == K_DENSE) {
            nw = (size_t)L->out * L->in;
            nb = (size_t)L->out;
        }
    }
    L->x = alloc_f(nx, seed);
    L->dx = alloc_f(nx, seed + 1);
    L->y = alloc_f(ny, seed + 2);
    L->dy = alloc_f(ny, seed + 3);
    L->w = alloc_f(nw, seed + 4);
    L->dw = alloc_f(nw, seed + 5);
    L->b = alloc_f(nb, seed + 6);
    L->db = alloc_f(nb, seed + 7);
    for (size_t i = 0; i < nw; i++) L->w[i] *= 0.1f;
    L->labels = (int32_t *)malloc(sizeof(int32_t) * BATCH);
    for (int i = 0; i < BATCH; i++) L->labels[i] = i % 10;
}

static void layer_free(layer *L)
{
    free(L->x), free(L->dx), free(L->y), free(L->dy), free(L->w), free(L->dw), free(L->b), free(L->db);
    free(L->labels), free(L->scratch);
}

/* One forward (fwd = 1) or backward (fwd = 0) pass of a layer. */
static void layer_run(layer *L, int fast, int fwd)
{
    const tml_window *p = &L->win;
    switch (L->k) {
    case K_CONV:
        if (fwd) {
            if (fast)
                tml_conv2d_f32(p, L->x, L->w, L->b, L->y, L->scratch);
            else
                tml_conv2d_f32_ref(p, L->x, L->w, L->b, L->y);
        } else {
            const int64_t ny = (int64_t)p->n * p->oh * p->ow * p->o;
            tml_act_bwd_f32(L->act, ny, L->y, L->dy, L->dy);
            float *dx = L->need_dx ? L->dx : NULL;
            if (fast)
                tml_conv2d_f32_bwd(p, L->x, L->w, L->dy, dx, L->dw, L->db, L->scratch);
            else
                tml_conv2d_f32_bwd_ref(p, L->x, L->w, L->dy, dx, L->dw, L->db);
        }
        break;
    case K_POOL:
        if (fwd) {
            if (fast)
                tml_maxpool_f32(p, L->x, L->y);
            else
                tml_maxpool_f32_ref(p, L->x, L->y);
        } else
            tml_maxpool_f32_bwd(p, L->x, L->dy, L->dx);
        break;
    case K_DENSE:
        if (fwd) {
            if (fast)
                tml_dense_f32(BATCH, L->in, L->out, L->x, L->w, L->b, L->act, L->y);
            else
                tml_dense_f32_ref(BATCH, L->in, L->out, L->x, L->w, L->b, L->act, L->y);
        } else {
            tml_act_bwd_f32(L->act, (int64_t)BATCH * L->out, L->y, L->dy, L->dy);
            if (fast)
                tml_dense_f32_bwd(BATCH, L->in, L->out, L->x, L->w, L->dy, L->need_dx ? L->dx : NULL, L->dw,
                                  L->db);
            else
                tml_dense_f32_bwd_ref(BATCH, L->in, L->out, L->x, L->w, L->dy, L->need_dx ? L->dx : NULL,
                                      L->dw, L->db);
        }
        break;
    case K_LOSS:
        if (fwd) {
            if (fast)
                tml_softmax_f32(BATCH, L->in, L->x, L->y);
            else
                tml_softmax_f32_ref(BATCH, L->in, L->x, L->y);
        } else
            (void)tml_softmax_xent_f32(BATCH, L->in, L->x, L->labels, 0.0f, L->dx);
        break;
    }
}

/* Seconds per call of the forward and of the backward: after a warm-up call,
 * ROUNDS rounds of at least min_s / (2 * ROUNDS) seconds each; the best
 * round's mean is kept (the machine may be shared: other processes only ever
 * make a round slower). */
#define ROUNDS 5

static void time_layer(layer *L, int fast, double min_s, double *tf, double *tb)
{
    for (int fwd = 1; fwd >= 0; fwd--) {
        layer_run(L, fast, fwd);
        double best = 1e30;
        for (int r = 0; r < ROUNDS; r++) {
            int reps = 0;
            const double t0 = now();
            double t = t0;
            do {
                layer_run(L, fast, fwd);
                reps++;
                t = now();
            } while (t - t0 < min_s / (2 * ROUNDS));
            if ((t - t0) / reps < best) best = (t - t0) / reps;
        }
        *(fwd ? tf : tb) = best;
    }
}

int main(int argc, char **argv)
{
    const double min_s = argc > 1 ? atof(argv[1]) : 0.5;
    layer L[] = {
        {.name = "conv1",
         .k = K_CONV,
         .win = win_valid(28, 28, 1, 20, 5, 1),
         .act = TML_ACT_RELU,
         .need_dx = 0},
        {.name = "pool1", .k = K_POOL, .win = win_valid(24, 24, 20, 20, 2, 2), .need_dx = 1},
        {.name = "conv2",
         .k = K_CONV,
         .win = win_valid(12, 12, 20, 50, 5, 1),
         .act = TML_ACT_RELU,
         .need_dx = 1},
        {.name = "pool2", .k = K_POOL, .win = win_valid(8, 8, 50, 50, 2, 2), .need_dx = 1},
        {.name = "fc1", .k = K_DENSE, .in = 800, .out = 500, .act = TML_ACT_RELU, .need_dx = 1},
        {.name = "fc2", .k = K_DENSE, .in = 500, .out = 10, .act = TML_ACT_NONE, .need_dx = 1},
        {.name = "loss", .k = K_LOSS, .in = 10, .out = 10},
    };
    const int nl = (int)(sizeof(L) / sizeof(L[0]));
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("LeNet-5 layers, batch %d, ms per batch (fast: %d OpenMP thread%s)\n", BATCH, threads,
           threads == 1 ? "" : "s");
    printf("%-6s | %9s %9s %9s | %9s %9s %9s | %7s\n", "layer", "ref fwd", "ref bwd", "ref tot", "fast fwd",
           "fast bwd", "fast tot", "speedup");
    double sum[2] = {0, 0};
    const char *only = argc > 2 ? argv[2] : NULL;
    for (int i = 0; i < nl; i++) {
        if (only && !strstr(only, L[i].name)) continue;
        layer_init(&L[i], 100u * (unsigned)i + 1u);
        double tf[2], tb[2];
        for (int fast = 0; fast < 2; fast++) time_layer(&L[i], fast, min_s, &tf[fast], &tb[fast]);
        printf("%-6s | %9.3f %9.3f %9.3f | %9.3f %9.3f %9.3f | %6.1fx\n", L[i].name, 1e3 * tf[0], 1e3 * tb[0],
               1e3 * (tf[0] + tb[0]), 1e3 * tf[1], 1e3 * tb[1], 1e3 * (tf[1] + tb[1]),
               (tf[0] + tb[0]) / (tf[1] + tb[1]));
        sum[0] += tf[0] + tb[0];
        sum[1] += tf[1] + tb[1];
        layer_free(&L[i]);
    }
    printf("%-6s | %9s %9s %9.3f | %9s %9s %9.3f | %6.1fx\n", "total", "", "", 1e3 * sum[0], "", "",
           1e3 * sum[1], sum[0] / sum[1]);
    return 0;
}
