/*
 * tml_ops.h - compute kernels (float32). One source file per op and dtype under
 * lib/ops/. Every kernel has a plain scalar `_ref` twin that is the truth the
 * fast kernel is tested against. Kernels never allocate: callers provide
 * scratch whose size comes from the matching `_scratch_size()` call, and never
 * fail (shapes are validated by tml_model_finalize()).
 *
 * All activations are NHWC with the batch dimension first, all buffers dense.
 */
#ifndef TML_OPS_H
#define TML_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Geometry of a 2-D window op (conv, depthwise conv, pools).
 * Input (n, h, w, c), output (n, oh, ow, o). Output pixel (oy, ox) reads input
 * rows oy*sh - pad_t + ky*dh for ky in [0,kh) (likewise columns); taps outside
 * the input are zero (conv) or skipped (pools). */
typedef struct tml_window {
    int n, h, w, c;
    int oh, ow, o;
    int kh, kw, sh, sw, dh, dw;
    int pad_t, pad_l;
    int groups;     /* conv: c % groups == 0 && o % groups == 0 */
    int depth_mult; /* depthwise: o == c * depth_mult */
    tml_act act;
} tml_window;

/* Fills a tml_window from node `n` of finalized model `m` for batch size `batch`. */
void tml_window_from_node(const tml_model *m, const tml_node *n, int batch, tml_window *win);

/* Applies a fused activation to a value. */
static inline float tml_act_apply_f32(tml_act a, float v)
{
    if (a == TML_ACT_RELU) return v > 0.0f ? v : 0.0f;
    if (a == TML_ACT_RELU6) return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
    return v;
}

/* ---- GEMM -----------------------------------------------------------------
 * C (M,N) = alpha * op(A) * op(B) + beta * C, row-major, op(X) = X or X^T.
 * A is (M,K) (or (K,M) when trans_a), B is (K,N) (or (N,K) when trans_b).
 * beta == 0 overwrites C without reading it (NaN-safe). The fast version is
 * cache blocked, vectorized (AVX2/AVX-512 chosen at run time) and uses OpenMP
 * when the problem is large enough (threads start outside parallel regions
 * only); it allocates nothing (about 256 KiB of stack per thread), and its
 * result is bitwise independent of the number of threads. docs/kernels.md. */
void tml_sgemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);
void tml_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);

/* ---- conv2d: x (n,h,w,c), w (o,kh,kw,c/groups), b (o) or NULL, y (n,oh,ow,o)
 * y[b,oy,ox,oc] = act(bias[oc] + sum_{ky,kx,ci} x[b,iy,ix,g*cg+ci] * w[oc,ky,kx,ci]),
 * cg = c/groups, g = oc / (o/groups), taps outside the input count as 0.
 * The scratch (bytes from tml_conv2d_f32_scratch_size, 0 for a 1x1 stride-1
 * unpadded conv) holds an im2col block of at most 2 MiB whatever the batch
 * size (more only when one output pixel has over 8192 taps: then 64 rows). */
void tml_conv2d_f32_ref(const tml_window *p, const float *x, const float *w, const float *b,
                        float *y);
size_t tml_conv2d_f32_scratch_size(const tml_window *p); /* bytes */
void tml_conv2d_f32(const tml_window *p, const float *x, const float *w, const float *b, float *y,
                    void *scratch);
/* The same with the weights packed once for this CPU (for repeated calls, as
 * the engine makes): tml_conv2d_f32_pack fills `packed` (packed_size bytes,
 * 64-byte aligned) from w; tml_conv2d_f32_packed then runs any window with
 * the same weight shape, groups, strides and dilations (any batch / image
 * size). res (n,oh,ow,o) or NULL is a residual added after the bias, before
 * the activation: y = act(conv + bias + res) (res must not alias y). 3x3
 * stride-1 layers with at least 16 input and output channels run Winograd's
 * F(4x4, 3x3) algorithm (a quarter of the multiply-adds; results within float
 * rounding of the direct method); the others the GEMM of tml_conv2d_f32 (bit
 * for bit up to 512 taps per output, kh*kw*c/groups; beyond, the sums are cut
 * into other blocks: within rounding). Scratch as for tml_conv2d_f32 (its
 * size covers both). */
size_t tml_conv2d_f32_packed_size(const tml_window *p);
void tml_conv2d_f32_pack(const tml_window *p, const float *w, void *packed);
void tml_conv2d_f32_packed(const tml_window *p, const void *packed, const float *x, const float *b,
                           const float *res, float *y, void *scratch);

/* ---- depthwise: x (n,h,w,c), w (1,kh,kw,c*m), b (c*m) or NULL, y (n,oh,ow,c*m);
 * output channel oc reads input channel oc / m (m = p->depth_mult). */
void tml_dwconv2d_f32_ref(const tml_window *p, const float *x, const float *w, const float *b,
                          float *y);
void tml_dwconv2d_f32(const tml_window *p, const float *x, const float *w, const float *b,
                      float *y);

/* ---- dense: x (n,in), w (out,in), b (out) or NULL, y (n,out) */
void tml_dense_f32_ref(int n, int in, int out, const float *x, const float *w, const float *b,
                       tml_act act, float *y);
void tml_dense_f32(int n, int in, int out, const float *x, const float *w, const float *b,
                   tml_act act, float *y);
/* The same with w packed once for this CPU (packed_size bytes, 64-byte
 * aligned); equal to tml_dense_f32 up to summation order (the unpacked call
 * may split long dot products for tiny outputs), and every row of y is
 * bitwise independent of n. */
size_t tml_dense_f32_packed_size(int in, int out);
void tml_dense_f32_pack(int in, int out, const float *w, void *packed);
void tml_dense_f32_packed(int n, int in, int out, const void *packed, const float *x, const float *b,
                          tml_act act, float *y);

/* ---- elementwise ------------------------------------------------------------ */
void tml_relu_f32_ref(int64_t count, const float *x, float *y);
void tml_relu6_f32_ref(int64_t count, const float *x, float *y);
void tml_add_f32_ref(int64_t count, const float *a, const float *b, tml_act act, float *y);
/* Fast versions (vectorized, threaded for large counts); bitwise equal to the
 * references. y may alias an input. */
void tml_relu_f32(int64_t count, const float *x, float *y);
void tml_relu6_f32(int64_t count, const float *x, float *y);
void tml_add_f32(int64_t count, const float *a, const float *b, tml_act act, float *y);

/* ---- pools: window geometry in p (o == c). Taps outside the input are
 * skipped: max over in-range taps; average = sum of in-range taps / their
 * count (padding excluded); a window with no tap in range gives 0. The fast
 * versions are bitwise equal to the references. */
void tml_maxpool_f32_ref(const tml_window *p, const float *x, float *y);
void tml_avgpool_f32_ref(const tml_window *p, const float *x, float *y);
void tml_maxpool_f32(const tml_window *p, const float *x, float *y);
void tml_avgpool_f32(const tml_window *p, const float *x, float *y);
/* x (n, hw, c) -> y (n, c) */
void tml_global_avgpool_f32_ref(int n, int hw, int c, const float *x, float *y);
void tml_global_avgpool_f32(int n, int hw, int c, const float *x, float *y);

/* ---- softmax over rows: x (n, k) -> y (n, k); numerically stable (max shift) */
void tml_softmax_f32_ref(int n, int k, const float *x, float *y);
void tml_softmax_f32(int n, int k, const float *x, float *y); /* threads over rows; equal to _ref */

/* ---- batch norm (inference) over the last dim: x (rows, c)
 * y = (x - mean[c]) / sqrtf(var[c] + eps) * gamma[c] + beta[c] */
void tml_batchnorm_f32_ref(int64_t rows, int c, const float *x, const float *gamma,
                           const float *beta, const float *mean, const float *var, float eps,
                           float *y);
void tml_batchnorm_f32(int64_t rows, int c, const float *x, const float *gamma, const float *beta,
                       const float *mean, const float *var, float eps, float *y); /* equal to _ref */

/* ---- sparse (pruned) weights, CSR --------------------------------------------
 * A weight matrix W (rows, cols) - dense (out, in) or conv (O, KH*KW*I) - kept
 * as compressed sparse rows: the nonzeros of row r are val[rowptr[r] ..
 * rowptr[r+1]) at columns col[...]. The engine switches a pruned layer to these
 * kernels when its sparsity is above the measured crossover (docs/pruning.md);
 * their results equal the dense kernels' up to summation order. */
typedef struct tml_csr {
    int rows, cols;
    int64_t nnz;
    int32_t *rowptr; /* (rows + 1) */
    int32_t *col;    /* (nnz) */
    float *val;      /* (nnz) */
} tml_csr;

/* Builds the CSR of w (rows, cols) (allocates; not a kernel). */
tml_status tml_csr_from_dense(const float *w, int rows, int cols, tml_csr *out);
void tml_csr_free(tml_csr *c);

/* y (n, rows) = act(x (n, cols) W^T + b). scratch: tml_dense_f32_csr_scratch_size bytes. */
size_t tml_dense_f32_csr_scratch_size(int n, int cols);
void tml_dense_f32_csr(int n, const tml_csr *w, const float *x, const float *b, tml_act act, float *y, void *scratch);
/* conv2d (groups 1) with the weights as CSR of (O, KH*KW*C); scratch of
 * tml_conv2d_f32_csr_scratch_size bytes holds im2col rows. */
size_t tml_conv2d_f32_csr_scratch_size(const tml_window *p);
void tml_conv2d_f32_csr(const tml_window *p, const tml_csr *w, const float *x, const float *b, float *y, void *scratch);

#ifdef __cplusplus
}
#endif
#endif
