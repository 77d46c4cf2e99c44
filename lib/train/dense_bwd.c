/*
 * dense_bwd.c - dense backward: x (n,in), w (out,in), dz (n,out) ->
 *   dx (n,in)   = dz * W          (GEMM n x in, reduction over out)
 *   dw (out,in) = dz^T * x        (GEMM out x in, reduction over the batch)
 *   db (out)    = sum over rows of dz.
 * The fast version is two tml_sgemm calls (threaded and thread-count
 * independent inside the GEMM) and a double row sum for db.
 */
#include "train/train_ops.h"

void tml_dense_f32_bwd_ref(int n, int in, int out, const float *x, const float *w, const float *dz, float *dx,
                           float *dw, float *db)
{
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < in; i++) {
            double acc = 0.0;
            for (int r = 0; r < n; r++)
                acc += (double)dz[(int64_t)r * out + o] * (double)x[(int64_t)r * in + i];
            dw[(int64_t)o * in + i] = (float)acc;
        }
        if (db) {
            double acc = 0.0;
            for (int r = 0; r < n; r++) acc += (double)dz[(int64_t)r * out + o];
            db[o] = (float)acc;
        }
    }
    if (!dx) return;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < in; i++) {
            double acc = 0.0;
            for (int o = 0; o < out; o++)
                acc += (double)dz[(int64_t)r * out + o] * (double)w[(int64_t)o * in + i];
            dx[(int64_t)r * in + i] = (float)acc;
        }
}

void tml_dense_f32_bwd(int n, int in, int out, const float *x, const float *w, const float *dz, float *dx,
                       float *dw, float *db)
{
    tml_sgemm(1, 0, out, in, n, 1.0f, dz, out, x, in, 0.0f, dw, in);
    if (db) tml_sum_rows_f32(n, out, out, dz, db);
    if (dx) tml_sgemm(0, 0, n, in, out, 1.0f, dz, out, w, in, 0.0f, dx, in);
}
