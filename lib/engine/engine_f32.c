/*
 * engine_f32.c - the float path of the engine.
 *
 * At creation, for the fast kernels (not use_ref, not keep_all):
 *  - graph fusion on the engine's own copy of the model (tml_fold: batch norm
 *    folded into the producing conv / depthwise / dense, ReLU / ReLU6 fused
 *    into the producer's store, dropout removed), then a conv whose only
 *    reader is an add runs in the add's place and adds the other input in its
 *    final store (tml_f32_step.res): every intermediate that disappears is a
 *    pass over the activations fewer;
 *  - conv and dense weights packed once for the GEMM of this CPU;
 *  - a micro-batch size: a batch runs through the whole graph in passes of
 *    micro_batch samples, so that one pass's activations stay in the cache
 *    (TML_ENGINE_MB_BYTES) instead of streaming every layer's output of the
 *    whole batch through memory. The buffers are planned for one pass. With
 *    several OpenMP threads, passes run at once on separate lanes (arena +
 *    scratch each) with serial kernels; a batch of one pass keeps the
 *    kernels' own threading.
 * Every sample's result is independent of the batch it came in and of the
 * thread count: the pass boundaries depend on (n, micro_batch) only, and the
 * kernels compute each output row independently of the others (CSR kernels
 * of pruned layers excepted: the engine picks them by pass size).
 *
 * use_ref runs the scalar reference kernels on the model as given, keep_all
 * the fast kernels on every node (no fusion: every activation observable);
 * both in one pass of the whole batch.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "tinyml/tml_ops.h"
#include "tinyml/tml_quant.h"

#if defined(TML_HAVE_OPENMP) && defined(_OPENMP)
#include <omp.h>
#endif

/* Activation bytes one pass may use: a micro-batch is the number of samples
 * whose buffers (planned by liveness) fit in it. */
#ifndef TML_ENGINE_MB_BYTES
#define TML_ENGINE_MB_BYTES ((int64_t)512 << 10)
#endif

static size_t round_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

static size_t node_scratch(const tml_model *m, const tml_node *n, int batch)
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

/* Conv and dense weights packed once for the GEMM of this CPU (the kernels
 * would otherwise repack them on every call), in e->prep. */
static tml_status prepare_packed(tml_engine *e)
{
    const tml_model *m = e->m;
    e->prep = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(void *));
    if (!e->prep) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (e->opts.use_ref) return TML_OK;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (n->op != TML_OP_CONV2D && n->op != TML_OP_DENSE) continue;
        const tml_tensor *w = &m->tensors[n->in[1]];
        tml_window win;
        size_t bytes;
        if (n->op == TML_OP_CONV2D) {
            tml_window_from_node(m, n, 1, &win);
            bytes = tml_conv2d_f32_packed_size(&win);
        } else {
            bytes = tml_dense_f32_packed_size(w->dims[1], w->dims[0]);
        }
        e->prep[i] = aligned_alloc(TML_PLAN_ALIGN_HOST, round_up(bytes, TML_PLAN_ALIGN_HOST));
        if (!e->prep[i]) return tml_error(TML_ERR_NOMEM, "out of memory: %zu bytes of packed weights", bytes);
        if (n->op == TML_OP_CONV2D)
            tml_conv2d_f32_pack(&win, w->data, e->prep[i]);
        else
            tml_dense_f32_pack(w->dims[1], w->dims[0], w->data, e->prep[i]);
    }
    return TML_OK;
}

/* The steps: one per node, except that a conv (no activation, dense kernel)
 * whose output is read only by an add moves into the add's step. */
static tml_status plan_steps(tml_engine *e)
{
    const tml_model *m = e->m;
    const int fuse = !e->opts.use_ref && !e->opts.keep_all;
    int *skip = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(int));
    e->steps = malloc(sizeof(tml_f32_step) * (size_t)(m->n_nodes ? m->n_nodes : 1));
    if (!skip || !e->steps) {
        free(skip);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    tml_f32_step *fused = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(tml_f32_step));
    if (!fused) {
        free(skip);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_nodes; i++) fused[i].node = -1;
    for (int i = 0; i < m->n_nodes && fuse; i++) {
        const tml_node *a = &m->nodes[i];
        if (a->op != TML_OP_ADD || a->n_in != 2) continue;
        for (int j = 0; j < 2; j++) {
            const int t = a->in[j], other = a->in[1 - j];
            const int c = tml_model_producer(m, t);
            if (c < 0 || t == other || t == m->output || tml_model_consumers(m, t) != 1) continue;
            const tml_node *cn = &m->nodes[c];
            if (cn->op != TML_OP_CONV2D || cn->act != TML_ACT_NONE || e->csr[c]) continue;
            skip[c] = 1;
            fused[i] = (tml_f32_step){c, other, a->out, a->act};
            break;
        }
    }
    int k = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        if (skip[i]) continue;
        if (fused[i].node >= 0)
            e->steps[k++] = fused[i];
        else
            e->steps[k++] = (tml_f32_step){i, -1, m->nodes[i].out, m->nodes[i].act};
    }
    e->n_steps = k;
    free(skip);
    free(fused);
    return TML_OK;
}

/* Buffers for `batch` samples, planned on the steps (a fused conv reads its
 * input, weights and the residual, and writes the add's output, at the add's
 * place): the planner sees a copy of the model whose nodes are the steps. */
static tml_status plan(const tml_engine *e, int batch, int64_t *offsets, int64_t *arena, int *root_out)
{
    const tml_model *m = e->m;
    tml_node *nodes = malloc(sizeof(tml_node) * (size_t)(e->n_steps ? e->n_steps : 1));
    int *root = root_out ? root_out : malloc(sizeof(int) * (size_t)(m->n_tensors ? m->n_tensors : 1));
    if (!nodes || !root) {
        free(nodes);
        if (root != root_out) free(root);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < e->n_steps; i++) {
        const tml_f32_step *s = &e->steps[i];
        nodes[i] = m->nodes[s->node];
        nodes[i].out = s->out;
        if (s->res >= 0) {
            nodes[i].in[3] = s->res;
            nodes[i].n_in = 4;
        }
    }
    tml_model shadow = *m;
    shadow.nodes = nodes;
    shadow.n_nodes = e->n_steps;
    tml_status st = tml_plan_buffers(&shadow, batch, e->opts.keep_all || e->tuning.separate, TML_PLAN_ALIGN_HOST,
                                     offsets, root, arena);
    free(nodes);
    if (root != root_out) free(root);
    return st;
}

static int max_threads(void)
{
#if defined(TML_HAVE_OPENMP) && defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

tml_status tml_engine_f32_prepare(tml_engine *e)
{
    tml_status st;
    if (!e->opts.use_ref && !e->opts.keep_all) {
        e->own = tml_model_clone(e->m);
        if (!e->own) return tml_error(TML_ERR_NOMEM, "out of memory");
        if ((st = tml_fold(e->own, NULL))) return st;
        e->m = e->own;
    }
    const tml_model *m = e->m;
    if ((st = prepare_sparse(e)) || (st = plan_steps(e)) || (st = prepare_packed(e))) return st;
    e->offset = malloc(sizeof(int64_t) * (size_t)(m->n_tensors ? m->n_tensors : 1));
    if (!e->offset) return tml_error(TML_ERR_NOMEM, "out of memory");
    /* samples per pass: as many as fit the cache budget, not counting the
     * input (read in place) */
    const int fast = !e->opts.use_ref && !e->opts.keep_all;
    int64_t arena = 0;
    int mb = e->max_batch;
    if (fast) {
        if (e->tuning.micro_batch > 0) {
            mb = e->tuning.micro_batch;
        } else {
            if ((st = plan(e, 1, e->offset, &arena, NULL))) return st;
            const int64_t in_bytes = tml_tensor_numel(&m->tensors[m->input]) * (int64_t)sizeof(float);
            const int64_t per = arena - in_bytes > 0 ? arena - in_bytes : 1;
            mb = (int)(TML_ENGINE_MB_BYTES / per);
        }
        if (mb < 1) mb = 1;
        if (mb > e->max_batch) mb = e->max_batch;
    }
    e->micro_batch = mb;
    int *root = malloc(sizeof(int) * (size_t)(m->n_tensors ? m->n_tensors : 1));
    if (!root) return tml_error(TML_ERR_NOMEM, "out of memory");
    st = plan(e, mb, e->offset, &arena, root);
    if (!st && fast) {
        /* the graph input and its aliases (reshape / dropout) are read from
         * the caller's samples: no copy into the arena */
        e->in_place = calloc((size_t)(m->n_tensors ? m->n_tensors : 1), 1);
        if (!e->in_place)
            st = tml_error(TML_ERR_NOMEM, "out of memory");
        else
            for (int t = 0; t < m->n_tensors; t++) e->in_place[t] = root[t] >= 0 && root[t] == root[m->input];
    }
    free(root);
    if (st) return st;
    e->arena_bytes = (size_t)arena;
    size_t scratch = 0;
    for (int i = 0; i < e->n_steps; i++) {
        size_t s = node_scratch(m, &m->nodes[e->steps[i].node], mb);
        if (s > scratch) scratch = s;
    }
    e->scratch_bytes = scratch;
    /* lanes: passes at once, one per thread */
    const int passes = (e->max_batch + mb - 1) / mb;
    e->n_lanes = passes > 1 ? max_threads() : 1;
    if (e->n_lanes > passes) e->n_lanes = passes;
    if (e->n_lanes < 1) e->n_lanes = 1;
    e->lanes = calloc((size_t)e->n_lanes, sizeof(tml_engine_lane));
    if (!e->lanes) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int l = 0; l < e->n_lanes; l++) {
        tml_engine_lane *ln = &e->lanes[l];
        ln->arena = aligned_alloc(TML_PLAN_ALIGN_HOST, round_up(e->arena_bytes ? e->arena_bytes : 1, TML_PLAN_ALIGN_HOST));
        if (!ln->arena)
            return tml_error(TML_ERR_NOMEM, "out of memory: activations need %zu bytes for batch %d", e->arena_bytes, mb);
        if (scratch) {
            ln->scratch = aligned_alloc(TML_PLAN_ALIGN_HOST, round_up(scratch, TML_PLAN_ALIGN_HOST));
            if (!ln->scratch) return tml_error(TML_ERR_NOMEM, "out of memory: kernel scratch of %zu bytes", scratch);
        }
    }
    /* lane 0 is the engine's arena / scratch (tml_engine_buf, keep_all) */
    e->arena = e->lanes[0].arena;
    e->scratch = e->lanes[0].scratch;
    return TML_OK;
}

void tml_engine_f32_release(tml_engine *e)
{
    const tml_model *m = e->m;
    if (e->prep)
        for (int i = 0; i < m->n_nodes; i++) free(e->prep[i]);
    if (e->csr)
        for (int i = 0; i < m->n_nodes; i++) {
            tml_csr_free(e->csr[i]);
            free(e->csr[i]);
        }
    free(e->csr);
    free(e->sparsity);
    free(e->steps);
    free(e->in_place);
    if (e->lanes) {
        /* lane 0's buffers are e->arena / e->scratch, freed by the caller */
        for (int l = 1; l < e->n_lanes; l++) {
            free(e->lanes[l].arena);
            free(e->lanes[l].scratch);
        }
        if (!e->arena) {
            free(e->lanes[0].arena);
            free(e->lanes[0].scratch);
        }
    }
    free(e->lanes);
    tml_model_free(e->own);
    e->own = NULL;
}

/* ---- running ------------------------------------------------------------------------ */

static void *lane_buf(const tml_engine *e, const tml_engine_lane *ln, int t)
{
    const tml_tensor *x = &e->m->tensors[t];
    if (x->kind == TML_TENSOR_PARAM) return x->data;
    /* never written: the alias ops see x == y and copy nothing */
    if (e->in_place && e->in_place[t]) return (void *)(uintptr_t)ln->input;
    return ln->arena + e->offset[t];
}

static const float *opt_in(const tml_engine *e, const tml_engine_lane *ln, const tml_node *n, int j)
{
    return (j < n->n_in && n->in[j] >= 0) ? lane_buf(e, ln, n->in[j]) : NULL;
}

static void run_step(const tml_engine *e, const tml_engine_lane *ln, const tml_f32_step *s, int batch)
{
    const tml_model *m = e->m;
    const int idx = s->node;
    const tml_node *n = &m->nodes[idx];
    const tml_csr *csr =
        (e->csr[idx] && e->sparsity[idx] >= tml_sparse_crossover(n->op, batch)) ? e->csr[idx] : NULL;
    const float *x = lane_buf(e, ln, n->in[0]);
    float *y = lane_buf(e, ln, s->out);
    const int64_t count = (int64_t)batch * tml_tensor_numel(&m->tensors[s->out]);
    const int ref = e->opts.use_ref;
    tml_window w;
    switch (n->op) {
    case TML_OP_CONV2D:
        tml_window_from_node(m, n, batch, &w);
        w.act = s->act;
        if (ref)
            tml_conv2d_f32_ref(&w, x, opt_in(e, ln, n, 1), opt_in(e, ln, n, 2), y);
        else if (csr)
            tml_conv2d_f32_csr(&w, csr, x, opt_in(e, ln, n, 2), y, ln->scratch);
        else
            tml_conv2d_f32_packed(&w, e->prep[idx], x, opt_in(e, ln, n, 2), s->res >= 0 ? lane_buf(e, ln, s->res) : NULL,
                                  y, ln->scratch);
        break;
    case TML_OP_DEPTHWISE_CONV2D:
        tml_window_from_node(m, n, batch, &w);
        if (ref)
            tml_dwconv2d_f32_ref(&w, x, opt_in(e, ln, n, 1), opt_in(e, ln, n, 2), y);
        else
            tml_dwconv2d_f32(&w, x, opt_in(e, ln, n, 1), opt_in(e, ln, n, 2), y);
        break;
    case TML_OP_DENSE: {
        const tml_tensor *wt = &m->tensors[n->in[1]];
        if (ref)
            tml_dense_f32_ref(batch, wt->dims[1], wt->dims[0], x, wt->data, opt_in(e, ln, n, 2), n->act, y);
        else if (csr)
            tml_dense_f32_csr(batch, csr, x, opt_in(e, ln, n, 2), n->act, y, ln->scratch);
        else
            tml_dense_f32_packed(batch, wt->dims[1], wt->dims[0], e->prep[idx], x, opt_in(e, ln, n, 2), n->act, y);
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
    case TML_OP_ADD: (ref ? tml_add_f32_ref : tml_add_f32)(count, x, lane_buf(e, ln, n->in[1]), n->act, y); break;
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
        (ref ? tml_batchnorm_f32_ref : tml_batchnorm_f32)(count / c, c, x, lane_buf(e, ln, n->in[1]), lane_buf(e, ln, n->in[2]),
                              lane_buf(e, ln, n->in[3]), lane_buf(e, ln, n->in[4]), n->eps, y);
        break;
    }
    default: TML_ASSERT(0 && "op not handled by the float engine");
    }
}

/* One pass of `batch` samples on lane ln. */
static void run_pass(const tml_engine *e, tml_engine_lane *ln, const float *x, int batch, float *y)
{
    const tml_model *m = e->m;
    const int64_t in = tml_tensor_numel(&m->tensors[m->input]), out = tml_tensor_numel(&m->tensors[m->output]);
    ln->input = x;
    if (!e->in_place) memcpy(lane_buf(e, ln, m->input), x, sizeof(float) * (size_t)(in * batch));
    for (int i = 0; i < e->n_steps; i++) run_step(e, ln, &e->steps[i], batch);
    memcpy(y, lane_buf(e, ln, m->output), sizeof(float) * (size_t)(out * batch));
}

void tml_engine_f32_run(tml_engine *e, const float *x, int n, float *y)
{
    const tml_model *m = e->m;
    const int mb = e->micro_batch;
    const int passes = (n + mb - 1) / mb;
    const int64_t in = tml_tensor_numel(&m->tensors[m->input]), out = tml_tensor_numel(&m->tensors[m->output]);
    if (passes == 1) {
        run_pass(e, &e->lanes[0], x, n, y);
        return;
    }
#if defined(TML_HAVE_OPENMP) && defined(_OPENMP)
    if (e->n_lanes > 1 && !omp_in_parallel()) {
#pragma omp parallel for num_threads(e->n_lanes) schedule(dynamic, 1)
        for (int p = 0; p < passes; p++) {
            const int s = p * mb, cnt = n - s < mb ? n - s : mb;
            run_pass(e, &e->lanes[omp_get_thread_num()], x + (int64_t)s * in, cnt, y + (int64_t)s * out);
        }
        return;
    }
#endif
    for (int p = 0; p < passes; p++) {
        const int s = p * mb, cnt = n - s < mb ? n - s : mb;
        run_pass(e, &e->lanes[0], x + (int64_t)s * in, cnt, y + (int64_t)s * out);
    }
}
