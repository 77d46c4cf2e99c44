/*
 * passes_internal.h - helpers shared by the files of lib/passes (not public).
 */
#ifndef TML_PASSES_INTERNAL_H
#define TML_PASSES_INTERNAL_H

#include <stdint.h>

#include "tinyml/tml_engine.h"
#include "tinyml/tml_quant.h"

/* ---- adaptive rounding (gptq.c) ---- */

/* Allocates c->hess for the weighted nodes of m (zeroed). */
tml_status tml_hessians_alloc(const tml_model *m, tml_calib *c);
/* Adds the inputs of every weighted node (only node `only` when >= 0) of the
 * last run of `e` (keep_all, n samples) to c->hess. */
tml_status tml_hessians_observe(const tml_model *m, const tml_engine *e, int n, tml_calib *c, int only);
void tml_hessians_free(tml_calib *c);

/* Quantizes `rows` weight rows of k taps, w (rows, k), to integers in
 * [-qmax, qmax] with scales (rows) minimizing sum_r (w_r - s_r q_r) H (w_r - s_r q_r)^T
 * approximately: each row's clipping scale is searched on the H-diagonal-weighted
 * rounding error, then columns are rounded in order of decreasing H diagonal
 * with the error of each pushed onto the not yet rounded ones through the
 * inverse Hessian (GPTQ, Frantar et al. 2022). keep (rows, k) or NULL: 0 marks
 * pruned weights, which are rounded to 0 (their error is compensated too).
 * per_tensor: one scale for all rows. h: (k, k), not modified. */
tml_status tml_gptq_rows(int rows, int k, const float *w, const double *h, const uint8_t *keep, int qmax, int per_tensor,
                         float *scale, int8_t *q);

/* Adaptive rounding of node `node`'s float weights with statistics hs: fills
 * s (one scale per output channel) and q (the weights' integers). Returns 0,
 * leaving s and q alone, when the layer has no statistics (grouped conv, too
 * many taps) or its form does not allow it (a codebook keeps its shared
 * values; a per-tensor depthwise scale); *st reports errors. */
int tml_gptq_node(const tml_model *m, int node, const tml_hessian *hs, int per_tensor, int qmax, float *s, int8_t *q,
                  tml_status *st);

#endif
