/*
 * bench_gemm.c - GFLOP/s of tml_sgemm_ref and tml_sgemm on the products LeNet-5
 * training produces at batch 64 (forward, dX and dW) and on square matrices.
 *
 *   bench_gemm [min_seconds_per_case]     (default 0.3)
 *
 * GFLOP/s of the median call. Columns: reference (one thread), fast kernel with the best instruction set
 * on 1 thread and on all OpenMP threads, and the AVX2 kernel on all threads
 * (when the CPU has it), for comparison.
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

typedef struct bcase {
    const char *name;
    int ta, tb, M, N, K;
} bcase;

static const bcase CASES[] = {
    {"conv1 fwd  cols*W^T", 0, 1, 64 * 576, 20, 25},
    {"conv2 fwd  cols*W^T", 0, 1, 64 * 64, 50, 500},
    {"fc1 fwd    x*W^T", 0, 1, 64, 500, 800},
    {"conv1 dX   dY*W", 0, 0, 64 * 576, 25, 20},
    {"conv2 dX   dY*W", 0, 0, 64 * 64, 500, 50},
    {"fc1 dX     dY*W", 0, 0, 64, 800, 500},
    {"conv1 dW   dY^T*cols", 1, 0, 20, 25, 64 * 576},
    {"conv2 dW   dY^T*cols", 1, 0, 50, 500, 64 * 64},
    {"fc1 dW     dY^T*x", 1, 0, 500, 800, 64},
    {"square 256", 0, 0, 256, 256, 256},
    {"square 512", 0, 0, 512, 512, 512},
    {"square 1024", 0, 0, 1024, 1024, 1024},
};

static void fill(float *x, size_t n, unsigned seed)
{
    unsigned s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define MAX_SAMPLES 20000

/* Runs one configuration repeatedly for at least min_s seconds after one
 * warm-up call and returns the GFLOP/s of the median call (robust against
 * other processes taking the CPU now and then). isa < 0: the reference. */
static double run(const bcase *c, int isa, int threads, double min_s, const float *A, const float *B,
                  float *C)
{
    static double samples[MAX_SAMPLES];
    const int lda = c->ta ? c->M : c->K, ldb = c->tb ? c->K : c->N, ldc = c->N;
    const double flops = 2.0 * c->M * c->N * c->K;
#ifdef TML_OPS_OMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    int n = 0;
    double start = now();
    for (int call = 0;; call++) {
        double t0 = now();
        if (isa < 0)
            tml_sgemm_ref(c->ta, c->tb, c->M, c->N, c->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        else
            tml_sgemm_ex((tml_isa)isa, 0, c->ta, c->tb, c->M, c->N, c->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        double t1 = now();
        if (call > 0 || isa < 0) samples[n++] = t1 - t0;
        if (n >= MAX_SAMPLES || (n > 0 && t1 - start >= min_s)) break;
    }
    qsort(samples, (size_t)n, sizeof(double), cmp_double);
    return flops / samples[n / 2] * 1e-9;
}

int main(int argc, char **argv)
{
    double min_s = argc > 1 ? atof(argv[1]) : 0.3;
    if (!(min_s > 0.0)) min_s = 0.3;
    int maxt = 1;
#ifdef TML_OPS_OMP
    maxt = omp_get_max_threads();
#endif
    const tml_isa best = tml_cpu_isa();
    printf("tml_sgemm benchmark: best ISA %s, %d OpenMP thread(s), >= %.2f s per cell\n", tml_isa_name(best),
           maxt, min_s);
    printf("%-22s %2s %2s %6s %5s %6s | %8s %9s %9s %9s\n", "case", "tA", "tB", "M", "N", "K", "ref",
           "fast 1T", "fast", "avx2");
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const bcase *c = &CASES[i];
        size_t na = (size_t)c->M * c->K, nb = (size_t)c->K * c->N, nc = (size_t)c->M * c->N;
        float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float)),
              *C = malloc(nc * sizeof(float));
        if (!A || !B || !C) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            return 1;
        }
        fill(A, na, 1);
        fill(B, nb, 2);
        double ref = run(c, -1, 1, min_s < 0.5 ? min_s : 0.5, A, B, C);
        double f1 = run(c, (int)best, 1, min_s, A, B, C);
        double fn = run(c, (int)best, maxt, min_s, A, B, C);
        double a2 = best >= TML_ISA_AVX2 ? run(c, TML_ISA_AVX2, maxt, min_s, A, B, C) : 0.0;
        printf("%-22s %2d %2d %6d %5d %6d | %8.2f %9.2f %9.2f %9.2f\n", c->name, c->ta, c->tb, c->M, c->N,
               c->K, ref, f1, fn, a2);
        fflush(stdout);
        free(A);
        free(B);
        free(C);
    }
    printf("(GFLOP/s = 2*M*N*K / time; beta = 0)\n");
    return 0;
}
