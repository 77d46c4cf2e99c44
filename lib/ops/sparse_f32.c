/*
 * sparse_f32.c - pruned weights as compressed sparse rows (CSR).
 *
 * Work is proportional to the nonzeros. For one input row (batch 1) each
 * output is a dot product of a weight row's nonzeros with the inputs they
 * select. For many rows, a block of 16 input rows is transposed to (cols, 16)
 * so that every nonzero weight meets 16 contiguous inputs: one broadcast and
 * one 16-wide multiply-add, which the compiler vectorizes. A dense GEMM still
 * runs closer to peak, so sparse execution pays only above a sparsity that
 * depends on the batch: docs/pruning.md has the crossover the engine uses.
 */
#include <stdlib.h>
#include <string.h>

#include "ops/ops_internal.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#endif

#define NB 16 /* input rows per block */

tml_status tml_csr_from_dense(const float *w, int rows, int cols, tml_csr *out)
{
    memset(out, 0, sizeof *out);
    int64_t nnz = 0;
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) nnz += w[i] != 0.0f;
    out->rows = rows;
    out->cols = cols;
    out->nnz = nnz;
    out->rowptr = malloc(sizeof(int32_t) * (size_t)(rows + 1));
    out->col = malloc(sizeof(int32_t) * (size_t)(nnz ? nnz : 1));
    out->val = malloc(sizeof(float) * (size_t)(nnz ? nnz : 1));
    if (!out->rowptr || !out->col || !out->val) {
        tml_csr_free(out);
        return tml_error(TML_ERR_NOMEM, "out of memory building a sparse matrix");
    }
    int64_t k = 0;
    for (int r = 0; r < rows; r++) {
        out->rowptr[r] = (int32_t)k;
        for (int c = 0; c < cols; c++) {
            float v = w[(int64_t)r * cols + c];
            if (v != 0.0f) {
                out->col[k] = c;
                out->val[k++] = v;
            }
        }
    }
    out->rowptr[rows] = (int32_t)k;
    return TML_OK;
}

void tml_csr_free(tml_csr *c)
{
    if (!c) return;
    free(c->rowptr);
    free(c->col);
    free(c->val);
    memset(c, 0, sizeof *c);
}

/* One input row: y[r] = act(b[r] + sum of val * x[col] over row r's nonzeros). */
static void csr_row(const tml_csr *w, const float *x, const float *b, tml_act act, float *y)
{
    for (int r = 0; r < w->rows; r++) {
        float acc0 = 0.0f, acc1 = 0.0f;
        int32_t j = w->rowptr[r], e = w->rowptr[r + 1];
        for (; j + 1 < e; j += 2) { /* two accumulators break the add chain */
            acc0 += w->val[j] * x[w->col[j]];
            acc1 += w->val[j + 1] * x[w->col[j + 1]];
        }
        if (j < e) acc0 += w->val[j] * x[w->col[j]];
        y[r] = tml_act_apply_f32(act, acc0 + acc1 + (b ? b[r] : 0.0f));
    }
}

/* A block of nb <= NB input rows given transposed, xt (cols, NB): writes
 * y[t * ldy + r] for t < nb. The 16 accumulators are one vector (one AVX-512
 * register, two AVX2 ones), built per instruction set. */
TML_OPS_INLINE void csr_block_body(const tml_csr *w, const float *xt, int nb, const float *b, tml_act act, float *y,
                                   int64_t ldy)
{
    for (int r = 0; r < w->rows; r++) {
        tml_v16f acc = {0};
        acc += b ? b[r] : 0.0f;
        for (int32_t j = w->rowptr[r]; j < w->rowptr[r + 1]; j++) {
            tml_v16f xv;
            TML_V16_LOAD(xv, xt + (int64_t)w->col[j] * NB);
            acc += w->val[j] * xv;
        }
        float out[NB];
        TML_V16_STORE(out, acc);
        for (int t = 0; t < nb; t++) y[t * ldy + r] = tml_act_apply_f32(act, out[t]);
    }
}
TML_OPS_MULTIVERSION(csr_block,
                     (const tml_csr *w, const float *xt, int nb, const float *b, tml_act act, float *y, int64_t ldy),
                     (w, xt, nb, b, act, y, ldy))

/* xt (cols, NB) = transpose of rows x[0..nb) (each of `cols`, stride ldx), zero padded */
static void transpose_block(const float *x, int64_t ldx, int nb, int cols, float *xt)
{
    for (int c = 0; c < cols; c++) {
        for (int t = 0; t < nb; t++) xt[(int64_t)c * NB + t] = x[t * ldx + c];
        for (int t = nb; t < NB; t++) xt[(int64_t)c * NB + t] = 0.0f;
    }
}

size_t tml_dense_f32_csr_scratch_size(int n, int cols)
{
    (void)n;
#ifdef TML_OPS_OMP
    int threads = omp_get_max_threads();
#else
    int threads = 1;
#endif
    return sizeof(float) * (size_t)cols * NB * (size_t)threads;
}

void tml_dense_f32_csr(int n, const tml_csr *w, const float *x, const float *b, tml_act act, float *y, void *scratch)
{
    if (n == 1) {
        csr_row(w, x, b, act, y);
        return;
    }
    int blocks = (n + NB - 1) / NB;
#ifdef TML_OPS_OMP
#pragma omp parallel for schedule(static) if (blocks > 1 && (int64_t)n * w->nnz > 400000)
#endif
    for (int bl = 0; bl < blocks; bl++) {
        int tid = 0;
#ifdef TML_OPS_OMP
        tid = omp_get_thread_num();
#endif
        float *xt = (float *)scratch + (size_t)tid * (size_t)w->cols * NB;
        int i0 = bl * NB, nb = n - i0 < NB ? n - i0 : NB;
        transpose_block(x + (int64_t)i0 * w->cols, w->cols, nb, w->cols, xt);
        csr_block(w, xt, nb, b, act, y + (int64_t)i0 * w->rows, w->rows);
    }
}

size_t tml_conv2d_f32_csr_scratch_size(const tml_window *p)
{
    /* an im2col block of NB rows and its transpose */
    return 2 * sizeof(float) * (size_t)p->kh * (size_t)p->kw * (size_t)p->c * NB;
}

void tml_conv2d_f32_csr(const tml_window *p, const tml_csr *w, const float *x, const float *b, float *y, void *scratch)
{
    int64_t rows = (int64_t)p->n * p->oh * p->ow;
    int K = p->kh * p->kw * p->c;
    float *cols = scratch, *xt = cols + (size_t)K * NB;
    for (int64_t r0 = 0; r0 < rows; r0 += NB) {
        int nb = (int)(rows - r0 < NB ? rows - r0 : NB);
        tml_im2col_f32(p, x, 0, r0, r0 + nb, cols);
        transpose_block(cols, K, nb, K, xt);
        csr_block(w, xt, nb, b, p->act, y + r0 * p->o, p->o);
    }
}
