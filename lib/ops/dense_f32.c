/*
 * dense_f32.c - fully connected layer, float32.
 *
 *   y[i, o] = act(bias[o] + sum_k x[i, k] * w[o, k])     x (n, in), w (out, in)
 *
 * Fast path: Y = act(X * W^T + b), one GEMM (W is the transposed operand,
 * packed by the GEMM) with the bias and activation fused into its store.
 */
#include "ops_internal.h"

void tml_dense_f32_ref(int n, int in, int out, const float *x, const float *w, const float *b, tml_act act,
                       float *y)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double acc = b ? (double)b[o] : 0.0;
            const float *xr = x + (int64_t)i * in, *wr = w + (int64_t)o * in;
            for (int k = 0; k < in; k++) acc += (double)xr[k] * (double)wr[k];
            y[(int64_t)i * out + o] = tml_act_apply_f32(act, (float)acc);
        }
}

void tml_dense_f32(int n, int in, int out, const float *x, const float *w, const float *b, tml_act act,
                   float *y)
{
    if (n <= 0 || out <= 0) return;
    tml_sgemm_bias_act_ex(tml_cpu_isa(), 0, 0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out, b, act);
}

/* ---- weights packed once: W^T as the GEMM's B panels -------------------------------- */

size_t tml_dense_f32_packed_size_ex(int in, int out, tml_isa isa)
{
    return tml_sgemm_packed_b_floats(isa, out, in) * sizeof(float);
}

void tml_dense_f32_pack_ex(int in, int out, const float *w, void *packed, tml_isa isa)
{
    tml_sgemm_pack_b(isa, 1, out, in, w, in, packed);
}

void tml_dense_f32_packed_ex(int n, int in, int out, const void *packed, tml_isa isa, const float *x,
                             const float *b, tml_act act, float *y)
{
    if (n <= 0 || out <= 0) return;
    tml_sgemm_packed_ex(isa, 0, 0, n, out, in, x, in, packed, y, out, b, NULL, 0, act);
}

size_t tml_dense_f32_packed_size(int in, int out)
{
    return tml_dense_f32_packed_size_ex(in, out, tml_cpu_isa());
}

void tml_dense_f32_pack(int in, int out, const float *w, void *packed)
{
    tml_dense_f32_pack_ex(in, out, w, packed, tml_cpu_isa());
}

void tml_dense_f32_packed(int n, int in, int out, const void *packed, const float *x, const float *b, tml_act act,
                          float *y)
{
    tml_dense_f32_packed_ex(n, in, out, packed, tml_cpu_isa(), x, b, act, y);
}
