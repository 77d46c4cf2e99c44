/*
 * engine.c - runs a finalized model on a batch: checks, the int8 path's buffer
 * setup and dispatch, input/output conversion. The float path (graph fusion,
 * packed weights, micro-batches) is engine_f32.c.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "tinyml/tml_ops.h"

double tml_sparse_crossover(tml_op op, int batch)
{
    if (batch > 1) return TML_SPARSE_BATCHED;
    return op == TML_OP_DENSE ? TML_SPARSE_DENSE_B1 : TML_SPARSE_CONV_B1;
}

static tml_status check_float_node(const tml_model *m, const tml_node *n)
{
    for (int j = 0; j < n->n_in; j++) {
        int t = n->in[j];
        if (t >= 0 && m->tensors[t].dtype != TML_DTYPE_F32)
            return tml_error(TML_ERR_UNSUPPORTED, "node '%s': tensor '%s' is %s; the float engine needs f32", n->name,
                             m->tensors[t].name, tml_dtype_name(m->tensors[t].dtype));
    }
    if (m->tensors[n->out].dtype != TML_DTYPE_F32)
        return tml_error(TML_ERR_UNSUPPORTED, "node '%s': output is %s; the float engine needs f32", n->name,
                         tml_dtype_name(m->tensors[n->out].dtype));
    return TML_OK;
}

/* int8 path: one arena and one scratch for the whole batch; with a memory
 * schedule, the schedule's arena per sample and scratch per thread instead. */
static tml_status prepare_q8(tml_engine *e)
{
    const tml_model *m = e->m;
    const int nt = m->n_tensors;
    tml_status st = TML_OK;
    e->micro_batch = e->max_batch;
    if (e->opts.schedule) {
        size_t unused = 0;
        st = tml_engine_q8_prepare(e, &unused);
        return st ? st : tml_engine_sched_prepare(e);
    }
    e->offset = malloc(sizeof(int64_t) * (size_t)(nt ? nt : 1));
    int *root = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    if (!e->offset || !root) {
        free(root);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    int64_t arena = 0;
    st = tml_plan_buffers(m, e->max_batch, e->opts.keep_all || e->tuning.separate, TML_PLAN_ALIGN_HOST, e->offset,
                          root, &arena);
    free(root);
    if (st) return st;
    e->arena_bytes = (size_t)arena;
    e->arena = aligned_alloc(TML_PLAN_ALIGN_HOST, e->arena_bytes ? e->arena_bytes : TML_PLAN_ALIGN_HOST);
    if (!e->arena)
        return tml_error(TML_ERR_NOMEM, "out of memory: activations need %zu bytes for batch %d", e->arena_bytes,
                         e->max_batch);
    size_t scratch = 0;
    st = tml_engine_q8_prepare(e, &scratch);
    if (st) return st;
    e->scratch_bytes = scratch;
    if (scratch) {
        e->scratch = aligned_alloc(TML_PLAN_ALIGN_HOST,
                                   (scratch + TML_PLAN_ALIGN_HOST - 1) / TML_PLAN_ALIGN_HOST * TML_PLAN_ALIGN_HOST);
        if (!e->scratch) return tml_error(TML_ERR_NOMEM, "out of memory: kernel scratch of %zu bytes", scratch);
    }
    return TML_OK;
}

tml_status tml_engine_new(const tml_model *m, int max_batch, const tml_engine_opts *opts, tml_engine **out)
{
    return tml_engine_new_tuned(m, max_batch, opts, NULL, out);
}

tml_status tml_engine_new_tuned(const tml_model *m, int max_batch, const tml_engine_opts *opts,
                                const tml_engine_tuning *tuning, tml_engine **out)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > (1 << 20)) return tml_error(TML_ERR_INVALID, "batch size %d out of range", max_batch);
    int quant = tml_model_is_quantized(m);
    for (int i = 0; i < m->n_nodes && !quant; i++) {
        tml_status st = check_float_node(m, &m->nodes[i]);
        if (st) return st;
    }
    tml_engine *e = calloc(1, sizeof *e);
    if (!e) return tml_error(TML_ERR_NOMEM, "out of memory");
    e->m = m;
    e->max_batch = max_batch;
    if (opts) e->opts = *opts;
    if (tuning) e->tuning = *tuning;
    e->quant = quant;
    tml_status st = TML_OK;
    if (e->opts.schedule && !quant)
        st = tml_error(TML_ERR_UNSUPPORTED, "memory schedules run int8 models only (quantize first)");
    else if (e->opts.schedule && e->opts.keep_all)
        st = tml_error(TML_ERR_INVALID, "a scheduled run keeps no whole activations (keep_all)");
    else
        st = quant ? prepare_q8(e) : tml_engine_f32_prepare(e);
    if (st) {
        tml_engine_free(e);
        return st;
    }
    *out = e;
    return TML_OK;
}

void tml_engine_free(tml_engine *e)
{
    if (!e) return;
    if (e->quant)
        tml_engine_q8_release(e);
    else
        tml_engine_f32_release(e);
    free(e->offset);
    free(e->arena);
    free(e->scratch);
    free(e->prep);
    free(e->sched_off);
    free(e);
}

size_t tml_engine_arena_bytes(const tml_engine *e) { return e->arena_bytes; }
size_t tml_engine_scratch_bytes(const tml_engine *e) { return e->scratch_bytes; }

const void *tml_engine_activation(const tml_engine *e, int id)
{
    if (!e->opts.keep_all || id < 0 || id >= e->m->n_tensors) return NULL;
    if (e->m->tensors[id].kind != TML_TENSOR_ACT) return NULL;
    return tml_engine_buf(e, id);
}

tml_status tml_engine_run(tml_engine *e, const float *x, int n, float *y)
{
    const tml_model *m = e->m;
    if (n < 1 || n > e->max_batch) return tml_error(TML_ERR_INVALID, "batch of %d samples (engine prepared for 1..%d)", n, e->max_batch);
    if (e->sched) {
        tml_engine_sched_run(e, x, n, y, 0);
    } else if (e->quant) {
        int64_t in_numel = tml_tensor_numel(&m->tensors[m->input]);
        int64_t out_numel = tml_tensor_numel(&m->tensors[m->output]);
        tml_engine_q8_quantize_input(e, x, in_numel * n, tml_engine_buf(e, m->input));
        for (int i = 0; i < m->n_nodes; i++) tml_engine_q8_run_node(e, i, n);
        tml_engine_q8_dequantize_output(e, tml_engine_buf(e, m->output), out_numel * n, y);
    } else {
        tml_engine_f32_run(e, x, n, y);
    }
    e->last_n = n;
    return TML_OK;
}

tml_dtype tml_model_io_dtype(const tml_model *m)
{
    return tml_model_is_quantized(m) && !m->meta.float_io ? TML_DTYPE_INT8 : TML_DTYPE_F32;
}

tml_status tml_engine_run_raw(tml_engine *e, const void *x, int n, void *y)
{
    const tml_model *m = e->m;
    if (!e->quant || m->meta.float_io) return tml_engine_run(e, x, n, y);
    if (n < 1 || n > e->max_batch) return tml_error(TML_ERR_INVALID, "batch of %d samples (engine prepared for 1..%d)", n, e->max_batch);
    const int64_t in_numel = tml_tensor_numel(&m->tensors[m->input]);
    const int64_t out_numel = tml_tensor_numel(&m->tensors[m->output]);
    if (e->sched) {
        tml_engine_sched_run(e, x, n, y, 1);
        e->last_n = n;
        return TML_OK;
    }
    memcpy(tml_engine_buf(e, m->input), x, (size_t)(in_numel * n));
    for (int i = 0; i < m->n_nodes; i++) tml_engine_q8_run_node(e, i, n);
    memcpy(y, tml_engine_buf(e, m->output), (size_t)(out_numel * n));
    e->last_n = n;
    return TML_OK;
}
