/*
 * batchnorm_f32.c - inference batch normalization over the last dimension.
 *
 *   y[r, c] = (x[r, c] - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c]
 *
 * computed in float in exactly that order (sqrtf, divide, multiply, add).
 */
#include <math.h>

#include "ops_internal.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#endif

void tml_batchnorm_f32_ref(int64_t rows, int c, const float *x, const float *gamma, const float *beta,
                           const float *mean, const float *var, float eps, float *y)
{
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < c; j++) {
            const int64_t i = r * c + j;
            y[i] = (x[i] - mean[j]) / sqrtf(var[j] + eps) * gamma[j] + beta[j];
        }
}

TML_OPS_INLINE void bn_rows_body(int64_t rows, int c, const float *x, const float *gamma, const float *beta,
                                 const float *mean, const float *var, float eps, float *y)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *yr = y + r * c;
        for (int j = 0; j < c; j++) yr[j] = (xr[j] - mean[j]) / sqrtf(var[j] + eps) * gamma[j] + beta[j];
    }
}
TML_OPS_MULTIVERSION(bn_rows,
                     (int64_t rows, int c, const float *x, const float *gamma, const float *beta,
                      const float *mean, const float *var, float eps, float *y),
                     (rows, c, x, gamma, beta, mean, var, eps, y))

void tml_batchnorm_f32(int64_t rows, int c, const float *x, const float *gamma, const float *beta,
                       const float *mean, const float *var, float eps, float *y)
{
    if (rows <= 0 || c <= 0) return;
#ifdef TML_OPS_OMP
    if (rows * c >= TML_OPS_PAR_ELEMS && rows > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
        const int64_t block = 256;
        const int64_t nb = (rows + block - 1) / block;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nb; i++) {
            const int64_t r0 = i * block, n = rows - r0 < block ? rows - r0 : block;
            bn_rows(n, c, x + r0 * c, gamma, beta, mean, var, eps, y + r0 * c);
        }
        return;
    }
#endif
    bn_rows(rows, c, x, gamma, beta, mean, var, eps, y);
}
