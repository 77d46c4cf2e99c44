/*
 * fuzz_util.h - shared by the .tmf fuzz targets (fuzz_tmf.c, fuzz_tmf_export.c):
 * a model's activation elements, and one engine run on zeros.
 */
#ifndef TML_FUZZ_UTIL_H
#define TML_FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>

#include "tinyml/tml_core.h"
#include "tinyml/tml_engine.h"

static inline int64_t fuzz_act_elems(const tml_model *m)
{
    int64_t act = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == TML_TENSOR_ACT) act += tml_tensor_numel(&m->tensors[i]);
    return act;
}

/* Prepares the engine for batch 1 (eo may be NULL) and runs it once on a zero
 * input; a refusal (a status) is fine, a crash is what the fuzzer finds. */
static inline void fuzz_run_zeros(const tml_model *m, const tml_engine_opts *eo)
{
    tml_engine *e = NULL;
    if (tml_engine_new(m, 1, eo, &e) != TML_OK) return;
    float *x = calloc((size_t)tml_tensor_numel(&m->tensors[m->input]), sizeof(float));
    float *y = calloc((size_t)tml_tensor_numel(&m->tensors[m->output]), sizeof(float));
    if (x && y) tml_engine_run(e, x, 1, y);
    free(x);
    free(y);
    tml_engine_free(e);
}

#endif
