/*
 * bench_sparse.c - dense vs CSR (sparse) float kernels as sparsity grows, for
 * lenet5's fc1 (800 -> 500) and conv2 (12x12x20 -> 8x8x50, 5x5) at batch 1 and
 * a large batch: where does sparse execution start to pay? Prints a table and
 * the crossover sparsity per case (the engine's thresholds come from here).
 *
 *   bench_sparse [reps]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tinyml/tml_ops.h"
#include "bench_util.h"

static uint64_t rs = 88172645463325252ull;
static float rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)(rs >> 40) / 16777216.0f * 2.0f - 1.0f;
}

/* Prunes w to sparsity s by zeroing entries whose random rank falls below s. */
static void prune(float *w, int64_t n, double s)
{
    for (int64_t i = 0; i < n; i++)
        if ((rnd() + 1.0f) * 0.5f < s) w[i] = 0.0f;
}

/* best-of-3 seconds per call of fn over reps repetitions */
#define TIME(reps, stmt)                                                                                     \
    ({                                                                                                       \
        double best = 1e30;                                                                                  \
        for (int r_ = 0; r_ < 3; r_++) {                                                                     \
            double t0_ = now();                                                                              \
            for (int i_ = 0; i_ < (reps); i_++) { stmt; }                                                    \
            double t_ = (now() - t0_) / (reps);                                                              \
            if (t_ < best) best = t_;                                                                        \
        }                                                                                                    \
        best;                                                                                                \
    })

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    const double sp[] = {0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98};
    const int nsp = (int)(sizeof sp / sizeof *sp);
    printf("case,batch,sparsity,dense_us,sparse_us,speedup\n");
    /* dense 800 -> 500 */
    for (int bi = 0; bi < 2; bi++) {
        int n = bi ? 256 : 1;
        float *x = malloc(sizeof(float) * 800 * (size_t)n), *y = malloc(sizeof(float) * 500 * (size_t)n);
        float *w = malloc(sizeof(float) * 800 * 500), *b = calloc(500, sizeof(float));
        void *scr = malloc(tml_dense_f32_csr_scratch_size(n, 800));
        for (int i = 0; i < 800 * n; i++) x[i] = rnd();
        double cross = -1;
        for (int k = 0; k < nsp; k++) {
            for (int i = 0; i < 800 * 500; i++) w[i] = rnd();
            prune(w, 800 * 500, sp[k]);
            tml_csr c;
            tml_csr_from_dense(w, 500, 800, &c);
            int rr = n == 1 ? reps * 50 : reps;
            double td = TIME(rr, tml_dense_f32(n, 800, 500, x, w, b, TML_ACT_RELU, y));
            double ts = TIME(rr, tml_dense_f32_csr(n, &c, x, b, TML_ACT_RELU, y, scr));
            printf("fc1_800x500,%d,%.2f,%.2f,%.2f,%.2f\n", n, sp[k], td * 1e6, ts * 1e6, td / ts);
            if (cross < 0 && ts < td) cross = sp[k];
            tml_csr_free(&c);
        }
        fprintf(stderr, "fc1 batch %d: sparse faster from sparsity %.2f\n", n, cross);
        free(x);
        free(y);
        free(w);
        free(b);
        free(scr);
    }
    /* conv 12x12x20 -> 8x8x50, 5x5 */
    for (int bi = 0; bi < 2; bi++) {
        int n = bi ? 64 : 1;
        tml_window p = {.n = n, .h = 12, .w = 12, .c = 20, .oh = 8, .ow = 8, .o = 50, .kh = 5, .kw = 5, .sh = 1, .sw = 1,
                        .dh = 1, .dw = 1, .groups = 1, .depth_mult = 1, .act = TML_ACT_RELU};
        size_t xs = (size_t)n * 12 * 12 * 20, ys = (size_t)n * 8 * 8 * 50, wsz = 50 * 500;
        float *x = malloc(sizeof(float) * xs), *y = malloc(sizeof(float) * ys), *w = malloc(sizeof(float) * wsz);
        float *b = calloc(50, sizeof(float));
        size_t s1 = tml_conv2d_f32_scratch_size(&p), s2 = tml_conv2d_f32_csr_scratch_size(&p);
        void *scr = malloc(s1 > s2 ? s1 : s2);
        for (size_t i = 0; i < xs; i++) x[i] = rnd();
        double cross = -1;
        for (int k = 0; k < nsp; k++) {
            for (size_t i = 0; i < wsz; i++) w[i] = rnd();
            prune(w, (int64_t)wsz, sp[k]);
            tml_csr c;
            tml_csr_from_dense(w, 50, 500, &c);
            int rr = n == 1 ? reps * 50 : reps;
            double td = TIME(rr, tml_conv2d_f32(&p, x, w, b, y, scr));
            double ts = TIME(rr, tml_conv2d_f32_csr(&p, &c, x, b, y, scr));
            printf("conv2_5x5x20x50,%d,%.2f,%.2f,%.2f,%.2f\n", n, sp[k], td * 1e6, ts * 1e6, td / ts);
            if (cross < 0 && ts < td) cross = sp[k];
            tml_csr_free(&c);
        }
        fprintf(stderr, "conv2 batch %d: sparse faster from sparsity %.2f\n", n, cross);
        free(x);
        free(y);
        free(w);
        free(b);
        free(scr);
    }
    return 0;
}
