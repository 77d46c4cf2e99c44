/*
 * batchnorm_train.c - batch normalization in training mode over the last dim:
 * x (rows, c), rows = n*h*w. Forward with batch statistics (saving mean and
 * inv_std), running-statistics update (PyTorch convention), and backward.
 *
 * Per-channel sums are exact-order double sums over the rows (rows in order),
 * computed for blocks of BN_BLOCK channels so the accumulators stay on the
 * stack while the rows are streamed. Blocks are independent: they go to
 * OpenMP threads when there are several and the tensor is large, which does
 * not change any bit.
 */
#include <math.h>

#include "train/train_ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define BN_BLOCK 64
#define BN_PAR_MIN ((int64_t)1 << 16)

static void bn_fwd_block(int64_t rows, int c, int c0, int nb, const float *x, const float *gamma,
                         const float *beta, float eps, float momentum, float *running_mean,
                         float *running_var, float *save_mean, float *save_inv_std, float *y)
{
    double sum[BN_BLOCK], sq[BN_BLOCK];
    float mean[BN_BLOCK], scale[BN_BLOCK];
    for (int j = 0; j < nb; j++) sum[j] = sq[j] = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c + c0;
        for (int j = 0; j < nb; j++) sum[j] += (double)xr[j];
    }
    double meand[BN_BLOCK];
    for (int j = 0; j < nb; j++) meand[j] = rows > 0 ? sum[j] / (double)rows : 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c + c0;
        for (int j = 0; j < nb; j++) {
            const double d = (double)xr[j] - meand[j];
            sq[j] += d * d;
        }
    }
    for (int j = 0; j < nb; j++) {
        const double var_b = rows > 0 ? sq[j] / (double)rows : 0.0;
        const double var_u = rows > 1 ? sq[j] / (double)(rows - 1) : var_b;
        const double inv_std = 1.0 / sqrt(var_b + (double)eps);
        const int ch = c0 + j;
        mean[j] = (float)meand[j];
        scale[j] = (float)((double)gamma[ch] * inv_std);
        save_mean[ch] = (float)meand[j];
        save_inv_std[ch] = (float)inv_std;
        if (running_mean)
            running_mean[ch] =
                (float)((1.0 - (double)momentum) * running_mean[ch] + (double)momentum * meand[j]);
        if (running_var)
            running_var[ch] = (float)((1.0 - (double)momentum) * running_var[ch] + (double)momentum * var_u);
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c + c0;
        float *yr = y + r * c + c0;
        for (int j = 0; j < nb; j++) yr[j] = (xr[j] - mean[j]) * scale[j] + beta[c0 + j];
    }
}

void tml_batchnorm_f32_train(int64_t rows, int c, const float *x, const float *gamma, const float *beta,
                             float eps, float momentum, float *running_mean, float *running_var,
                             float *save_mean, float *save_inv_std, float *y)
{
    const int nblk = (c + BN_BLOCK - 1) / BN_BLOCK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nblk > 1 && rows * c >= BN_PAR_MIN && !omp_in_parallel())
#endif
    for (int bi = 0; bi < nblk; bi++) {
        const int c0 = bi * BN_BLOCK, nb = c - c0 < BN_BLOCK ? c - c0 : BN_BLOCK;
        bn_fwd_block(rows, c, c0, nb, x, gamma, beta, eps, momentum, running_mean, running_var, save_mean,
                     save_inv_std, y);
    }
}

/* Channels [c0, c0+nb); bmean / binv_std hold the block's statistics
 * (index j = channel c0 + j). frozen: the statistics are constants (no
 * batch-statistics terms in dx). */
static void bn_bwd_block(int64_t rows, int c, int c0, int nb, const float *x, const float *gamma,
                         const float *bmean, const float *binv_std, const float *dy, float *dx, float *dgamma,
                         float *dbeta, int frozen)
{
    double sdy[BN_BLOCK], sdyx[BN_BLOCK];
    float mean[BN_BLOCK], istd[BN_BLOCK];
    for (int j = 0; j < nb; j++) {
        sdy[j] = sdyx[j] = 0.0;
        mean[j] = bmean[j];
        istd[j] = binv_std[j];
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c + c0, *dyr = dy + r * c + c0;
        for (int j = 0; j < nb; j++) {
            const double xh = ((double)xr[j] - (double)mean[j]) * (double)istd[j];
            sdy[j] += (double)dyr[j];
            sdyx[j] += (double)dyr[j] * xh;
        }
    }
    float k1[BN_BLOCK], a[BN_BLOCK], bco[BN_BLOCK];
    for (int j = 0; j < nb; j++) {
        dbeta[c0 + j] = (float)sdy[j];
        dgamma[c0 + j] = (float)sdyx[j];
        k1[j] = gamma[c0 + j] * istd[j];
        a[j] = rows > 0 && !frozen ? (float)(sdy[j] / (double)rows) : 0.0f;
        bco[j] = rows > 0 && !frozen ? (float)(sdyx[j] / (double)rows) : 0.0f;
    }
    if (!dx) return;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c + c0, *dyr = dy + r * c + c0;
        float *dxr = dx + r * c + c0;
        for (int j = 0; j < nb; j++) {
            const float xh = (xr[j] - mean[j]) * istd[j];
            dxr[j] = k1[j] * (dyr[j] - a[j] - xh * bco[j]);
        }
    }
}

void tml_batchnorm_f32_bwd(int64_t rows, int c, const float *x, const float *gamma, const float *save_mean,
                           const float *save_inv_std, const float *dy, float *dx, float *dgamma, float *dbeta)
{
    const int nblk = (c + BN_BLOCK - 1) / BN_BLOCK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nblk > 1 && rows * c >= BN_PAR_MIN && !omp_in_parallel())
#endif
    for (int bi = 0; bi < nblk; bi++) {
        const int c0 = bi * BN_BLOCK, nb = c - c0 < BN_BLOCK ? c - c0 : BN_BLOCK;
        bn_bwd_block(rows, c, c0, nb, x, gamma, save_mean + c0, save_inv_std + c0, dy, dx, dgamma, dbeta, 0);
    }
}

void tml_batchnorm_f32_bwd_frozen(int64_t rows, int c, const float *x, const float *gamma, const float *mean,
                                  const float *var, float eps, const float *dy, float *dx, float *dgamma,
                                  float *dbeta)
{
    const int nblk = (c + BN_BLOCK - 1) / BN_BLOCK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nblk > 1 && rows * c >= BN_PAR_MIN && !omp_in_parallel())
#endif
    for (int bi = 0; bi < nblk; bi++) {
        const int c0 = bi * BN_BLOCK, nb = c - c0 < BN_BLOCK ? c - c0 : BN_BLOCK;
        float istd[BN_BLOCK];
        for (int j = 0; j < nb; j++) istd[j] = (float)(1.0 / sqrt((double)var[c0 + j] + (double)eps));
        bn_bwd_block(rows, c, c0, nb, x, gamma, mean + c0, istd, dy, dx, dgamma, dbeta, 1);
    }
}
