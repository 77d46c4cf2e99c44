/*
 * fq_internal.h - the hooks the training loop (train.c) calls on a
 * tml_fakequant during quantization-aware training (fakequant.c). Internal.
 */
#ifndef TML_FQ_INTERNAL_H
#define TML_FQ_INTERNAL_H

#include <stdint.h>

#include "tinyml/tml_train.h"

/* Allocates the per-element gradient masks for batches of up to `batch`. */
tml_status tml_fq_bind(tml_fakequant *f, const tml_model *m, int batch);
/* Before each step: freezes the ranges once step >= freeze * total_steps. */
void tml_fq_progress(tml_fakequant *f, int64_t step, int64_t total_steps);
/* Fake-quantizes every weighted node's weights and bias from the model's
 * current (latent) values; read them with tml_fq_param. */
void tml_fq_weights(tml_fakequant *f, const tml_model *m);
/* The fake-quantized values of a weight / bias tensor, or NULL. */
const float *tml_fq_param(const tml_fakequant *f, int tensor);
/* Fake-quantizes activation `tensor` in place (count values of the batch): the
 * graph input; with training, updates its range (unless frozen) and records
 * which values were clipped. */
void tml_fq_act(tml_fakequant *f, int tensor, float *y, int64_t count, int training);
/* The output y of node `node` for `batch` samples becomes the int8 engine's
 * value of it. The trainer ran conv / depthwise / dense / add WITHOUT their
 * fused activation (applied here, as the int8 clamp); x0, x1 are the node's
 * input activations (x1: the add's second input, else NULL). */
void tml_fq_node(tml_fakequant *f, const tml_model *m, int node, const float *x0, const float *x1, float *y, int batch,
                 int training);
/* Zeroes the gradient of the values the last training forward clipped. */
void tml_fq_grad(const tml_fakequant *f, int tensor, float *dy, int64_t count);

#endif
