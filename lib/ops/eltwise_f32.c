/*
 * eltwise_f32.c - elementwise float32 ops: relu, relu6, add (with fused
 * activation) and the bias + activation epilogue of the GEMM-based ops.
 *
 *   relu(v)  = v > 0 ? v : 0            (NaN -> 0)
 *   relu6(v) = v < 0 ? 0 : v > 6 ? 6 : v (NaN -> NaN)
 *   add      y = act(a + b)
 *
 * The fast versions compute exactly the same expressions (vectorized over
 * elements, threads over blocks of elements for large counts), so they match
 * the references bit for bit. All of them allow y to alias an input.
 */
#include "ops_internal.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#endif

/* ---- reference ------------------------------------------------------------------ */

void tml_relu_f32_ref(int64_t count, const float *x, float *y)
{
    for (int64_t i = 0; i < count; i++) y[i] = tml_act_apply_f32(TML_ACT_RELU, x[i]);
}

void tml_relu6_f32_ref(int64_t count, const float *x, float *y)
{
    for (int64_t i = 0; i < count; i++) y[i] = tml_act_apply_f32(TML_ACT_RELU6, x[i]);
}

void tml_add_f32_ref(int64_t count, const float *a, const float *b, tml_act act, float *y)
{
    for (int64_t i = 0; i < count; i++) y[i] = tml_act_apply_f32(act, a[i] + b[i]);
}

/* ---- fast ------------------------------------------------------------------------- */

/* y[i] = act(a[i] + (b ? b[i] : 0)) for i < n, with the activation hoisted out
 * of the loop so that each loop vectorizes. */
TML_OPS_INLINE void act_add_body(int64_t n, const float *a, const float *b, tml_act act, float *y)
{
    if (b) {
        if (act == TML_ACT_RELU)
            for (int64_t i = 0; i < n; i++) {
                const float v = a[i] + b[i];
                y[i] = v > 0.0f ? v : 0.0f;
            }
        else if (act == TML_ACT_RELU6)
            for (int64_t i = 0; i < n; i++) {
                const float v = a[i] + b[i];
                y[i] = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
            }
        else
            for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    } else {
        if (act == TML_ACT_RELU)
            for (int64_t i = 0; i < n; i++) {
                const float v = a[i];
                y[i] = v > 0.0f ? v : 0.0f;
            }
        else if (act == TML_ACT_RELU6)
            for (int64_t i = 0; i < n; i++) {
                const float v = a[i];
                y[i] = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
            }
        else if (a != y)
            for (int64_t i = 0; i < n; i++) y[i] = a[i];
    }
}
TML_OPS_MULTIVERSION(act_add, (int64_t n, const float *a, const float *b, tml_act act, float *y),
                     (n, a, b, act, y))

/* Runs act_add over count elements, in parallel blocks when large. */
static void act_add_par(int64_t count, const float *a, const float *b, tml_act act, float *y)
{
#ifdef TML_OPS_OMP
    if (count >= TML_OPS_PAR_ELEMS && !omp_in_parallel() && omp_get_max_threads() > 1) {
        const int64_t block = 1 << 14;
        const int64_t nb = (count + block - 1) / block;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nb; i++) {
            const int64_t o = i * block, n = count - o < block ? count - o : block;
            act_add(n, a + o, b ? b + o : NULL, act, y + o);
        }
        return;
    }
#endif
    act_add(count, a, b, act, y);
}

void tml_relu_f32(int64_t count, const float *x, float *y)
{
    act_add_par(count, x, NULL, TML_ACT_RELU, y);
}

void tml_relu6_f32(int64_t count, const float *x, float *y)
{
    act_add_par(count, x, NULL, TML_ACT_RELU6, y);
}

void tml_add_f32(int64_t count, const float *a, const float *b, tml_act act, float *y)
{
    act_add_par(count, a, b, act, y);
}

/* ---- GEMM epilogue ------------------------------------------------------------------ */

void tml_ops_bias_act_f32(int64_t rows, int cols, int ld, const float *b, tml_act act, float *y)
{
    if (!b && act == TML_ACT_NONE) return;
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + r * ld;
        act_add(cols, yr, b, act, yr);
    }
}
