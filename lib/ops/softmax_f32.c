/*
 * softmax_f32.c - softmax over the last dimension, float32.
 *
 *   y[i, j] = exp(x[i, j] - m_i) / sum_k exp(x[i, k] - m_i),   m_i = max_k x[i, k]
 *
 * Subtracting the row maximum keeps every exponent <= 0, so large logits
 * (1000, 1001) do not overflow; the sum is accumulated in double.
 */
#include <math.h>

#include "ops_internal.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#endif

static void softmax_row(int k, const float *x, float *y)
{
    float m = x[0];
    for (int j = 1; j < k; j++) m = x[j] > m ? x[j] : m;
    double sum = 0.0;
    for (int j = 0; j < k; j++) {
        y[j] = expf(x[j] - m);
        sum += (double)y[j];
    }
    const float inv = (float)(1.0 / sum);
    for (int j = 0; j < k; j++) y[j] *= inv;
}

void tml_softmax_f32_ref(int n, int k, const float *x, float *y)
{
    if (k <= 0) return;
    for (int i = 0; i < n; i++) softmax_row(k, x + (int64_t)i * k, y + (int64_t)i * k);
}

void tml_softmax_f32(int n, int k, const float *x, float *y)
{
    if (k <= 0) return;
#ifdef TML_OPS_OMP
    if ((int64_t)n * k >= TML_OPS_PAR_ELEMS / 4 && n > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) softmax_row(k, x + (int64_t)i * k, y + (int64_t)i * k);
        return;
    }
#endif
    tml_softmax_f32_ref(n, k, x, y);
}
