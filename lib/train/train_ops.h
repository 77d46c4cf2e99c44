/*
 * train_ops.h - backward (gradient) kernels, training-mode forward kernels and
 * losses for the float32 training loop. Internal header: the training loop
 * includes it as "train/train_ops.h"; it is not part of the public API.
 *
 * Conventions (as tml_ops.h):
 *   - activations NHWC with the batch first, conv weights OHWI, depthwise
 *     weights 1HWC (= (kh, kw, c*m)), dense weights (out, in), all dense float32;
 *   - `dz` is the gradient of the loss w.r.t. a node's pre-activation output z
 *     (y = act(z)); run tml_act_bwd_f32() first for nodes with a fused act;
 *   - every gradient output is OVERWRITTEN (never accumulated into); weight and
 *     bias gradients are sums over the batch (the loss already carries the 1/n
 *     of a mean). When a tensor feeds several nodes (residual connections) the
 *     loop sums the per-consumer gradients with tml_grad_accumulate_f32();
 *   - kernels never allocate, never print and never fail (shapes are the
 *     caller's business, as for the forward kernels); the fast versions that
 *     need memory take scratch sized by the matching `_scratch_size()` call;
 *   - every `_ref` kernel is a plain scalar loop accumulating in double, the
 *     truth the fast twin is tested against;
 *   - results never depend on the number of OpenMP threads: parallel loops only
 *     split independent outputs, and the order of every reduction is fixed by
 *     the shape alone (see each .c file).
 *
 * Ops whose backward is the identity (no kernel): RESHAPE (the gradient buffer
 * is reinterpreted with the input's dims), DROPOUT at inference. A trailing
 * SOFTMAX node is skipped by the loop: the losses below take logits.
 */
#ifndef TML_TRAIN_OPS_H
#define TML_TRAIN_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "tinyml/tml_core.h"
#include "tinyml/tml_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- activations and element-wise ops (eltwise_bwd.c) ----------------------
 * The masks are computed from the post-activation output y; they are the same
 * when computed from the input x, because relu(x) > 0 <=> x > 0 and
 * 0 < relu6(x) < 6 <=> 0 < x < 6, so the loop may pass whichever it keeps. At
 * the kinks (x == 0, x == 6) the gradient is 0 (as PyTorch). */

/* dz[i] = dy[i] * act'(z[i]) from y = act(z): relu: y > 0; relu6: 0 < y < 6;
 * none: copy. count elements; dz may alias dy. */
void tml_act_bwd_f32(tml_act act, int64_t count, const float *y, const float *dy, float *dz);
/* Standalone RELU / RELU6 nodes: dx = dy * mask(y) (y may equally be x). dx may alias dy. */
void tml_relu_bwd_f32(int64_t count, const float *y, const float *dy, float *dx);
void tml_relu6_bwd_f32(int64_t count, const float *y, const float *dy, float *dx);

/* ADD node y = act(a + b): da = db = act_bwd(y, dy). da and/or db may be NULL
 * (input needs no gradient) and either may alias dy; when both are NULL nothing
 * is written. When a and b are the same tensor the loop adds the two. */
void tml_add_bwd_f32(tml_act act, int64_t count, const float *y, const float *dy, float *da, float *db);

/* dst[i] += src[i]: sums the gradients of a tensor read by several nodes. */
void tml_grad_accumulate_f32(int64_t count, const float *src, float *dst);

/* SOFTMAX over the last dim (when not folded into the loss): y (n, k) the
 * forward output; dx = y * (dy - sum_j dy_j y_j) per row. dx may alias dy. */
void tml_softmax_bwd_f32(int n, int k, const float *y, const float *dy, float *dx);

/* out[j] = sum over r < rows of x[r * ld + j], j < cols: the bias gradient of
 * conv / dense (x = dz, ld = cols = o). Summed in double over a fixed split of
 * the rows (partials added in order), so independent of the thread count. */
void tml_sum_rows_f32(int64_t rows, int cols, int ld, const float *x, float *out);

/* ---- conv2d (conv2d_bwd.c): geometry in p (tml_ops.h; p->act is ignored) -----
 * x (n,h,w,c), w (o,kh,kw,c/g), dz (n,oh,ow,o) ->
 *   dx (n,h,w,c) or NULL (input needs no gradient, e.g. the first layer),
 *   dw (o,kh,kw,c/g), db (o) or NULL (no bias).
 * The fast version computes per group dW = dZ^T * im2col(X) and
 * dX = col2im(dZ * W) with tml_sgemm, over chunks of output rows whose im2col
 * buffer lives in the scratch. A 1x1 / stride 1 / no padding conv needs no
 * im2col at all (scratch size 0). */
void tml_conv2d_f32_bwd_ref(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                            float *dw, float *db);
size_t tml_conv2d_f32_bwd_scratch_size(const tml_window *p); /* bytes */
void tml_conv2d_f32_bwd(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                        float *dw, float *db, void *scratch);
/* Rows of the im2col matrix (of n*oh*ow) processed per chunk by tml_conv2d_f32_bwd. */
int64_t tml_conv2d_f32_bwd_chunk_rows(const tml_window *p);
/* tml_conv2d_f32_bwd with an explicit chunk (1 <= chunk_rows <= the value
 * above, so the scratch suffices): lets tests reach the chunking paths. */
void tml_conv2d_f32_bwd_ex(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                           float *dw, float *db, void *scratch, int64_t chunk_rows);

/* ---- depthwise conv2d (dwconv2d_bwd.c): multiplier m = p->depth_mult --------
 * x (n,h,w,c), w (1,kh,kw,c*m), dz (n,oh,ow,c*m) -> dx (n,h,w,c) or NULL,
 * dw (1,kh,kw,c*m), db (c*m) or NULL. Output channel oc reads input channel oc/m.
 * The fast version splits the batch into a fixed number of parts (a function
 * of n only); each part sums its dW/db into its own slice of the scratch, and
 * the parts are added in order. Inner loops run over contiguous channels. */
void tml_dwconv2d_f32_bwd_ref(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                              float *dw, float *db);
size_t tml_dwconv2d_f32_bwd_scratch_size(const tml_window *p); /* bytes */
void tml_dwconv2d_f32_bwd(const tml_window *p, const float *x, const float *w, const float *dz, float *dx,
                          float *dw, float *db, void *scratch);

/* ---- dense (dense_bwd.c): x (n,in), w (out,in), dz (n,out) ->
 * dx (n,in) = dz * W (or NULL), dw (out,in) = dz^T * x, db (out) = sum_n dz (or NULL).
 * The fast version is two tml_sgemm calls (no scratch). */
void tml_dense_f32_bwd_ref(int n, int in, int out, const float *x, const float *w, const float *dz, float *dx,
                           float *dw, float *db);
void tml_dense_f32_bwd(int n, int in, int out, const float *x, const float *w, const float *dz, float *dx,
                       float *dw, float *db);

/* ---- pools (pool_bwd.c): geometry in p (o == c); dx (n,h,w,c) overwritten ---
 * One version each (plain loops, OpenMP over samples: each sample's dx is
 * written by one thread only, so results do not depend on the thread count).
 *
 * MAXPOOL: the gradient of each output goes to the FIRST maximal in-range tap
 * of its window, in row-major (ky, kx) order: as the forward
 * (tml_maxpool_f32), the running max starts at -inf and a tap replaces it
 * only when strictly greater, so NaN taps and padding never win (all-NaN /
 * -inf windows send their gradient to the first in-range tap). Overlapping
 * windows accumulate. x is the pool's input (the argmax is recomputed, no
 * index buffer is kept). The forward value is the same whichever maximal tap
 * is chosen; this is the tie policy of the backward (as PyTorch's CPU kernel). */
void tml_maxpool_f32_bwd(const tml_window *p, const float *x, const float *dy, float *dx);
/* AVGPOOL (padding excluded from the average): each in-range tap gets
 * dy / (number of in-range taps of the window). */
void tml_avgpool_f32_bwd(const tml_window *p, const float *dy, float *dx);
/* GLOBAL_AVGPOOL: dy (n, c) -> dx (n, hw, c) = dy / hw. */
void tml_global_avgpool_f32_bwd(int n, int hw, int c, const float *dy, float *dx);

/* ---- batch norm, training mode (batchnorm_train.c), over the last dim --------
 * x (rows, c) with rows = n*h*w (or n). Normalizes with the batch statistics:
 * mean and the BIASED variance (divide by rows); saves mean and
 * inv_std = 1/sqrt(var + eps) per channel for the backward. Updates the
 * running statistics when running_mean / running_var are non-NULL:
 *   running = (1 - momentum) * running + momentum * stat
 * with the UNBIASED variance (divide by rows - 1; the biased one when rows == 1)
 * for running_var, as PyTorch (momentum 0.1 by default,
 * TML_BN_DEFAULT_MOMENTUM). Statistics are exact per-channel double sums in row
 * order (two passes: mean, then squared deviations). y may alias x. */
#define TML_BN_DEFAULT_MOMENTUM 0.1f
void tml_batchnorm_f32_train(int64_t rows, int c, const float *x, const float *gamma, const float *beta,
                             float eps, float momentum, float *running_mean, float *running_var,
                             float *save_mean, float *save_inv_std, float *y);
/* Backward: with xhat = (x - mean) * inv_std,
 *   dbeta = sum_r dy,  dgamma = sum_r dy * xhat,
 *   dx = gamma * inv_std / rows * (rows * dy - dbeta - xhat * dgamma).
 * dx may be NULL; dx may alias dy. Sums in double, in row order. */
void tml_batchnorm_f32_bwd(int64_t rows, int c, const float *x, const float *gamma, const float *save_mean,
                           const float *save_inv_std, const float *dy, float *dx, float *dgamma,
                           float *dbeta);

/* Backward of batch norm in inference mode (frozen statistics: fine-tuning
 * with tml_train_opts.freeze_bn): y = (x - mean) * gamma / sqrt(var + eps) + beta
 * with the running mean / var as constants:
 *   dx = dy * gamma / sqrt(var + eps), dgamma = sum_r dy * xhat, dbeta = sum_r dy.
 * dx may be NULL or alias dy. The forward is tml_batchnorm_f32. */
void tml_batchnorm_f32_bwd_frozen(int64_t rows, int c, const float *x, const float *gamma, const float *mean,
                                  const float *var, float eps, const float *dy, float *dx, float *dgamma,
                                  float *dbeta);

/* ---- dropout, training mode (dropout_train.c) ------------------------------
 * Inverted dropout: y = x * keep / (1 - rate). keep(i) is a pure function of
 * (seed, step, i) for element index i of the (batch-first) tensor: a
 * splitmix64-style hash, kept when its top 32 bits >= rate * 2^32. Masks are
 * therefore reproducible, independent of the thread count, and the backward
 * recomputes them (nothing stored). Give each dropout node its own seed (e.g.
 * the run's seed mixed with the node index: tml_dropout_seed()); step counts
 * the optimizer steps. rate in [0, 1); rate 0 copies. y may alias x. */
uint64_t tml_dropout_seed(uint64_t run_seed, int node);
int tml_dropout_keep(uint64_t seed, uint64_t step, int64_t i, float rate);
void tml_dropout_f32_train(int64_t count, float rate, uint64_t seed, uint64_t step, const float *x, float *y);
/* dx = dy * keep / (1 - rate) with the same mask; dx may alias dy. */
void tml_dropout_f32_bwd(int64_t count, float rate, uint64_t seed, uint64_t step, const float *dy, float *dx);

/* ---- losses (loss.c) ----------------------------------------------------------
 * Softmax cross-entropy over logits (n, k) with labels in [0, k) and label
 * smoothing eps in [0, 1): target = (1 - eps) * onehot + eps / k. Returns the
 * mean loss over the n rows (double); dlogits (n, k) = (softmax - target) / n
 * (may be NULL). Stable: max shift and log-sum-exp, in double. */
double tml_softmax_xent_f32(int n, int k, const float *logits, const int32_t *labels, float eps,
                            float *dlogits);
/* Knowledge distillation, T > 0, alpha in [0, 1] (labels may be NULL when alpha == 1):
 *   loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels, eps)
 * (both means over the rows) and
 *   dstudent = alpha * T * (softmax(s/T) - softmax(t/T)) / n + (1 - alpha) * (softmax(s) - target) / n
 * (may be NULL). s = student logits, t = teacher logits, both (n, k). */
double tml_kd_loss_f32(int n, int k, const float *student, const float *teacher, const int32_t *labels,
                       float T, float alpha, float eps, float *dstudent);
/* Number of rows whose largest logit (first on ties) is the label. */
int tml_count_correct_f32(int n, int k, const float *logits, const int32_t *labels);

/* ---- compression-aware gradient helpers (eltwise_bwd.c) -----------------------
 * Pruning: pruned weights are exactly zero and must stay zero, so their
 * gradient is dropped. tml_grad_mask_zeros_f32 zeroes dw[i] where w[i] == 0;
 * tml_grad_mask_f32 zeroes dw[i] where mask[i] == 0 (explicit mask). */
void tml_grad_mask_zeros_f32(int64_t numel, const float *w, float *dw);
void tml_grad_mask_f32(int64_t numel, const uint8_t *mask, float *dw);

/* Clustering (weight sharing, tml_codebook): element i belongs to book
 * i / book_size_elems (book_size_elems = numel / n_books: one book per output
 * channel or one for the tensor) and centroid index[i] < k. Writes
 *   out[b * k + j] = sum of dw[i] over elements i of book b with index[i] == j
 * (out is (n_books, k), overwritten; summed in double in element order), the
 * gradient of the loss w.r.t. the centroids. For a pruned tensor, centroid 0
 * of every book is the fixed 0.0: the caller ignores (or zeroes) out[b*k].
 * k <= 256. */
void tml_cluster_grad_sum(int64_t numel, const uint8_t *index, const float *dw, int n_books,
                          int64_t book_size_elems, int k, float *out);
/* The inverse: w[i] = centroids[book(i) * k + index[i]] (re-expands the weights
 * after a centroid update). */
void tml_cluster_expand_f32(int64_t numel, const uint8_t *index, const float *centroids, int n_books,
                            int64_t book_size_elems, int k, float *w);

#ifdef __cplusplus
}
#endif
#endif
