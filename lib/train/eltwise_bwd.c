/*
 * eltwise_bwd.c - backward of the fused activations, RELU / RELU6 / ADD /
 * SOFTMAX nodes, gradient accumulation, bias-gradient row sums and the
 * pruning / clustering gradient helpers. See train_ops.h for the contracts.
 *
 * Element-wise loops are memory bound: OpenMP only starts for large arrays
 * (ELT_PAR_MIN elements), and any split gives the same bits (no reductions).
 */
#include <string.h>

#include "train/train_ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define ELT_PAR_MIN ((int64_t)1 << 18)

void tml_act_bwd_f32(tml_act act, int64_t count, const float *y, const float *dy, float *dz)
{
    if (act == TML_ACT_RELU) {
        tml_relu_bwd_f32(count, y, dy, dz);
    } else if (act == TML_ACT_RELU6) {
        tml_relu6_bwd_f32(count, y, dy, dz);
    } else if (dz != dy) {
        memcpy(dz, dy, sizeof(float) * (size_t)count);
    }
}

void tml_relu_bwd_f32(int64_t count, const float *y, const float *dy, float *dx)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (count >= ELT_PAR_MIN)
#endif
    for (int64_t i = 0; i < count; i++) {
        const float g = dy[i]; /* loaded unconditionally so the select vectorizes */
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

void tml_relu6_bwd_f32(int64_t count, const float *y, const float *dy, float *dx)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (count >= ELT_PAR_MIN)
#endif
    for (int64_t i = 0; i < count; i++) {
        const float g = dy[i], v = y[i];
        dx[i] = ((v > 0.0f) & (v < 6.0f)) ? g : 0.0f;
    }
}

void tml_add_bwd_f32(tml_act act, int64_t count, const float *y, const float *dy, float *da, float *db)
{
    if (!da && !db) return;
    float *first = da ? da : db;
    float *second = da ? db : NULL;
    tml_act_bwd_f32(act, count, y, dy, first);
    if (second && second != first) memcpy(second, first, sizeof(float) * (size_t)count);
}

void tml_grad_accumulate_f32(int64_t count, const float *src, float *dst)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (count >= ELT_PAR_MIN)
#endif
    for (int64_t i = 0; i < count; i++) dst[i] += src[i];
}

void tml_softmax_bwd_f32(int n, int k, const float *y, const float *dy, float *dx)
{
    for (int r = 0; r < n; r++) {
        const float *yr = y + (size_t)r * (size_t)k, *dyr = dy + (size_t)r * (size_t)k;
        float *dxr = dx + (size_t)r * (size_t)k;
        double dot = 0.0;
        for (int j = 0; j < k; j++) dot += (double)dyr[j] * (double)yr[j];
        for (int j = 0; j < k; j++) dxr[j] = (float)((double)yr[j] * ((double)dyr[j] - dot));
    }
}

/* Column sums in blocks of SUM_BLOCK columns so the double accumulators stay
 * on the stack. Long inputs are cut into SUM_PARTS row ranges (a number fixed
 * by `rows` alone) summed on threads into their own partials, which are then
 * added in part order: the result does not depend on the thread count. */
#define SUM_BLOCK 256
#define SUM_PARTS 8
#define SUM_PAR_ROWS 4096

static void sum_rows_part(int64_t r0, int64_t r1, int nb, int ld, const float *x, double *acc)
{
    for (int j = 0; j < nb; j++) acc[j] = 0.0;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * (int64_t)ld;
        for (int j = 0; j < nb; j++) acc[j] += (double)xr[j];
    }
}

void tml_sum_rows_f32(int64_t rows, int cols, int ld, const float *x, float *out)
{
    const int parts = rows >= SUM_PAR_ROWS ? SUM_PARTS : 1;
    for (int j0 = 0; j0 < cols; j0 += SUM_BLOCK) {
        const int nb = cols - j0 < SUM_BLOCK ? cols - j0 : SUM_BLOCK;
        double acc[SUM_PARTS][SUM_BLOCK];
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (parts > 1 && (int64_t)nb * rows >= ELT_PAR_MIN &&              \
                                              !omp_in_parallel())
#endif
        for (int q = 0; q < parts; q++)
            sum_rows_part(rows * q / parts, rows * (q + 1) / parts, nb, ld, x + j0, acc[q]);
        for (int j = 0; j < nb; j++) {
            double s = acc[0][j];
            for (int q = 1; q < parts; q++) s += acc[q][j];
            out[j0 + j] = (float)s;
        }
    }
}

void tml_grad_mask_zeros_f32(int64_t numel, const float *w, float *dw)
{
    for (int64_t i = 0; i < numel; i++)
        if (w[i] == 0.0f) dw[i] = 0.0f;
}

void tml_grad_mask_f32(int64_t numel, const uint8_t *mask, float *dw)
{
    for (int64_t i = 0; i < numel; i++)
        if (!mask[i]) dw[i] = 0.0f;
}

void tml_cluster_grad_sum(int64_t numel, const uint8_t *index, const float *dw, int n_books,
                          int64_t book_size_elems, int k, float *out)
{
    double acc[256];
    for (int b = 0; b < n_books; b++) {
        const int64_t i0 = (int64_t)b * book_size_elems;
        int64_t i1 = i0 + book_size_elems;
        if (i1 > numel) i1 = numel;
        for (int j = 0; j < k; j++) acc[j] = 0.0;
        for (int64_t i = i0; i < i1; i++) acc[index[i]] += (double)dw[i];
        for (int j = 0; j < k; j++) out[(int64_t)b * k + j] = (float)acc[j];
    }
}

void tml_cluster_expand_f32(int64_t numel, const uint8_t *index, const float *centroids, int n_books,
                            int64_t book_size_elems, int k, float *w)
{
    for (int b = 0; b < n_books; b++) {
        const int64_t i0 = (int64_t)b * book_size_elems;
        int64_t i1 = i0 + book_size_elems;
        if (i1 > numel) i1 = numel;
        const float *c = centroids + (int64_t)b * k;
        for (int64_t i = i0; i < i1; i++) w[i] = c[index[i]];
    }
}
