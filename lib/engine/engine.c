/*
 * engine.c - runs a finalized model on a batch: buffer setup, dispatch of each
 * node to its kernel, input/output conversion.
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

static size_t node_scratch_f32(const tml_model *m, const tml_node *n, int batch)
{
    tml_window w;
    if (n->op == TML_OP_DENSE) {
        const tml_tensor *wt = &m->tensors[n->in[1]];
        return wt->pruned ? tml_dense_f32_csr_scratch_size(batch, wt->dims[1]) : 0;
    }
    if (n->op != TML_OP_CONV2D) return 0;
    tml_window_from_node(m, n, batch, &w);
    size_t s = tml_conv2d_f32_scratch_size(&w), s2 = tml_conv2d_f32_csr_scratch_size(&w);
    return s > s2 ? s : s2;
}

/* CSR copies of pruned dense / conv (groups 1) weights sparse enough to ever
 * beat the dense kernel. */
static tml_status prepare_sparse(tml_engine *e)
{
    const tml_model *m = e->m;
    e->csr = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(tml_csr *));
    e->sparsity = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(double));
    if (!e->csr || !e->sparsity) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (e->opts.use_ref) return TML_OK;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (!(n->op == TML_OP_DENSE || (n->op == TML_OP_CONV2D && n->groups == 1))) continue;
        const tml_tensor *w = &m->tensors[n->in[1]];
        if (!w->pruned) continue;
        int64_t cnt = tml_tensor_numel(w);
        double s = 1.0 - (double)tml_tensor_nonzeros(w) / (double)cnt;
        if (s < TML_SPARSE_DENSE_B1) continue;
        e->csr[i] = calloc(1, sizeof(tml_csr));
        if (!e->csr[i]) return tml_error(TML_ERR_NOMEM, "out of memory");
        tml_status st = tml_csr_from_dense(w->data, w->dims[0], (int)(cnt / w->dims[0]), e->csr[i]);
        if (st) return st;
        e->sparsity[i] = s;
    }
    return TML_OK;
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

tml_status tml_engine_new(const tml_model *m, int max_batch, const tml_engine_opts *opts, tml_engine **out)
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
    int nt = m->n_tensors;
    e->offset = malloc(sizeof(int64_t) * (size_t)(nt ? nt : 1));
    int *root = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    tml_status st = TML_OK;
    if (!e->offset || !root) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int64_t arena = 0;
    st = tml_plan_buffers(m, max_batch, e->opts.keep_all, TML_PLAN_ALIGN_HOST, e->offset, root, &arena);
    if (st) goto fail;
    e->arena_bytes = (size_t)arena;
    e->arena = aligned_alloc(TML_PLAN_ALIGN_HOST, e->arena_bytes ? e->arena_bytes : TML_PLAN_ALIGN_HOST);
    if (!e->arena) {
        st = tml_error(TML_ERR_NOMEM, "out of memory: activations need %zu bytes for batch %d", e->arena_bytes, max_batch);
        goto fail;
    }
    size_t scratch = 0;
    e->quant = quant;
    if (quant) {
        st = tml_engine_q8_prepare(e, &scratch);
        if (st) goto fail;
    } else {
        for (int i = 0; i < m->n_nodes; i++) {
            size_t s = node_scratch_f32(m, &m->nodes[i], max_batch);
            if (s > scratch) scratch = s;
        }
        st = prepare_sparse(e);
        if (st) goto fail;
    }
    e->scratch_bytes = scratch;
    if (scratch) {
        e->scratch = aligned_alloc(TML_PLAN_ALIGN_HOST, (scratch + TML_PLAN_ALIGN_HOST - 1) / TML_PLAN_ALIGN_HOST * TML_PLAN_ALIGN_HOST);
        if (!e->scratch) {
            st = tml_error(TML_ERR_NOMEM, "out of memory: kernel scratch of %zu bytes", scratch);
            goto fail;
        }
    }
    free(root);
    *out = e;
    return TML_OK;
fail:
    free(root);
    tml_engine_free(e);
    return st;
}

void tml_engine_free(tml_engine *e)
{
    if (!e) return;
    free(e->offset);
    free(e->arena);
    free(e->scratch);
    if (e->quant) tml_engine_q8_release(e);
    free(e->prep);
    if (e->csr)
        for (int i = 0; i < e->m->n_nodes; i++) {
            tml_csr_free(e->csr[i]);
            free(e->csr[i]);
        }
    free(e->csr);
    free(e->sparsity);
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

static const float *opt_f32(const tml_engine *e, const tml_node *n, int j)
{
    return (j < n->n_in && n->in[j] >= 0) ? tml_engine_buf(e, n->in[j]) : NULL;
}

static void run_node_f32(tml_engine *e, int idx, int batch)
{
    const tml_node *n = &e->m->nodes[idx];
    const tml_csr *csr = (e->csr && e->csr[idx] && e->sparsity[idx] >= tml_sparse_crossover(n->op, batch)) ? e->csr[idx] : NULL;
    const tml_model *m = e->m;
    const float *x = tml_engine_buf(e, n->in[0]);
    float *y = tml_engine_buf(e, n->out);
    int64_t count = (int64_t)batch * tml_tensor_numel(&m->tensors[n->out]);
    int ref = e->opts.use_ref;
    tml_window w;
    switch (n->op) {
    case TML_OP_CONV2D:
        tml_window_from_node(m, n, batch, &w);
        if (ref)
            tml_conv2d_f32_ref(&w, x, opt_f32(e, n, 1), opt_f32(e, n, 2), y);
        else if (csr)
            tml_conv2d_f32_csr(&w, csr, x, opt_f32(e, n, 2), y, e->scratch);
        else
            tml_conv2d_f32(&w, x, opt_f32(e, n, 1), opt_f32(e, n, 2), y, e->scratch);
        break;
    case TML_OP_DEPTHWISE_CONV2D:
        tml_window_from_node(m, n, batch, &w);
        if (ref)
            tml_dwconv2d_f32_ref(&w, x, opt_f32(e, n, 1), opt_f32(e, n, 2), y);
        else
            tml_dwconv2d_f32(&w, x, opt_f32(e, n, 1), opt_f32(e, n, 2), y);
        break;
    case TML_OP_DENSE: {
        const tml_tensor *wt = &m->tensors[n->in[1]];
        if (ref)
            tml_dense_f32_ref(batch, wt->dims[1], wt->dims[0], x, wt->data, opt_f32(e, n, 2), n->act, y);
        else if (csr)
            tml_dense_f32_csr(batch, csr, x, opt_f32(e, n, 2), n->act, y, e->scratch);
        else
            tml_dense_f32(batch, wt->dims[1], wt->dims[0], x, wt->data, opt_f32(e, n, 2), n->act, y);
        break;
    }
    case TML_OP_RELU: (ref ? tml_relu_f32_ref : tml_relu_f32)(count, x, y); break;
    case TML_OP_RELU6: (ref ? tml_relu6_f32_ref : tml_relu6_f32)(count, x, y); break;
    case TML_OP_MAXPOOL:
        tml_window_from_node(m, n, batch, &w);
        (ref ? tml_maxpool_f32_ref : tml_maxpool_f32)(&w, x, y);
        break;
    case TML_OP_AVGPOOL:
        tml_window_from_node(m, n, batch, &w);
        (ref ? tml_avgpool_f32_ref : tml_avgpool_f32)(&w, x, y);
        break;
    case TML_OP_GLOBAL_AVGPOOL: {
        const tml_tensor *xt = &m->tensors[n->in[0]];
        (ref ? tml_global_avgpool_f32_ref : tml_global_avgpool_f32)(batch, xt->dims[0] * xt->dims[1], xt->dims[2], x, y);
        break;
    }
    case TML_OP_ADD: (ref ? tml_add_f32_ref : tml_add_f32)(count, x, tml_engine_buf(e, n->in[1]), n->act, y); break;
    case TML_OP_RESHAPE:
    case TML_OP_DROPOUT:
        /* aliases share the buffer; with keep_all they have their own */
        if ((const void *)x != (void *)y) memcpy(y, x, sizeof(float) * (size_t)count);
        break;
    case TML_OP_SOFTMAX: {
        const tml_tensor *yt = &m->tensors[n->out];
        int k = yt->dims[yt->ndim - 1];
        (ref ? tml_softmax_f32_ref : tml_softmax_f32)((int)(count / k), k, x, y);
        break;
    }
    case TML_OP_BATCHNORM: {
        const tml_tensor *yt = &m->tensors[n->out];
        int c = yt->dims[yt->ndim - 1];
        (ref ? tml_batchnorm_f32_ref : tml_batchnorm_f32)(count / c, c, x, tml_engine_buf(e, n->in[1]), tml_engine_buf(e, n->in[2]),
                              tml_engine_buf(e, n->in[3]), tml_engine_buf(e, n->in[4]), n->eps, y);
        break;
    }
    default: TML_ASSERT(0 && "op not handled by the float engine");
    }
}

tml_status tml_engine_run(tml_engine *e, const float *x, int n, float *y)
{
    const tml_model *m = e->m;
    if (n < 1 || n > e->max_batch) return tml_error(TML_ERR_INVALID, "batch of %d samples (engine prepared for 1..%d)", n, e->max_batch);
    int64_t in_numel = tml_tensor_numel(&m->tensors[m->input]);
    int64_t out_numel = tml_tensor_numel(&m->tensors[m->output]);
    if (e->quant) {
        tml_engine_q8_quantize_input(e, x, in_numel * n, tml_engine_buf(e, m->input));
        for (int i = 0; i < m->n_nodes; i++) tml_engine_q8_run_node(e, i, n);
        tml_engine_q8_dequantize_output(e, tml_engine_buf(e, m->output), out_numel * n, y);
    } else {
        memcpy(tml_engine_buf(e, m->input), x, sizeof(float) * (size_t)(in_numel * n));
        for (int i = 0; i < m->n_nodes; i++) run_node_f32(e, i, n);
        memcpy(y, tml_engine_buf(e, m->output), sizeof(float) * (size_t)(out_numel * n));
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
    memcpy(tml_engine_buf(e, m->input), x, (size_t)(in_numel * n));
    for (int i = 0; i < m->n_nodes; i++) tml_engine_q8_run_node(e, i, n);
    memcpy(y, tml_engine_buf(e, m->output), (size_t)(out_numel * n));
    e->last_n = n;
    return TML_OK;
}
