/*
 * engine_sched.c - the int8 engine running a memory schedule
 * (tml_schedule.h): each sample replays the schedule's steps in its own copy
 * of the schedule's arena, exactly as the exported C does on a device. A
 * step runs a node over a band of output rows (or a tile) by handing the
 * int8 kernel a sub-window: the input rows it reads, clipped to the tensor,
 * start at the view's first row, and the padding shrinks by what lies before
 * them, so every output element sees the same taps (and padding) as in the
 * whole layer. Samples run in parallel (OpenMP), each thread with its own
 * kernel scratch; the results do not depend on the number of threads.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "tinyml/tml_ops_s8.h"

#if defined(TML_HAVE_OPENMP) && defined(_OPENMP)
#include <omp.h>
#define SCHED_OMP 1
#endif

#define HOST_ALIGN TML_PLAN_ALIGN_HOST

static size_t up(size_t v) { return (v + HOST_ALIGN - 1) / HOST_ALIGN * HOST_ALIGN; }

static int is_window(tml_op op)
{
    return op == TML_OP_CONV2D || op == TML_OP_DEPTHWISE_CONV2D || op == TML_OP_MAXPOOL || op == TML_OP_AVGPOOL;
}

/* The sub-window of a RUN step (batch 1) and its input offset in bytes from
 * the start of the input view's buffer. */
static void step_window(const tml_model *m, const tml_sched_step *p, tml_window *w, int64_t *in_off)
{
    const tml_node *n = &m->nodes[p->node];
    tml_window_from_node(m, n, 1, w);
    int H = w->h;
    int lo = p->r0 * w->sh - w->pad_t;
    int hi = (p->r1 - 1) * w->sh - w->pad_t + (w->kh - 1) * w->dh + 1;
    if (lo < 0) lo = 0;
    if (hi > H) hi = H;
    if (hi < lo) hi = lo;
    const tml_sched_view *v = &p->in[0];
    w->pad_t = w->pad_t + lo - p->r0 * w->sh;
    w->pad_l = w->pad_l + v->col0 - p->c0 * w->sw;
    w->h = hi - lo;
    w->w = v->cols;
    w->oh = p->r1 - p->r0;
    w->ow = p->c1 - p->c0;
    *in_off = v->off + (int64_t)(lo - v->row0) * v->cols * w->c;
}

/* Byte offset of (row, col) of a view whose rows have `ch` channels. */
static int64_t at(const tml_sched_view *v, int row, int col, int64_t ch)
{
    return v->off + ((int64_t)(row - v->row0) * v->cols + (col - v->col0)) * ch;
}

tml_status tml_engine_sched_prepare(struct tml_engine *e)
{
    const tml_model *m = e->m;
    const tml_schedule *s = e->opts.schedule;
    tml_status st = tml_schedule_check(m, s);
    if (st) return tml_error_context(st, "memory schedule");
    e->sched_off = malloc(sizeof(int64_t) * (size_t)(s->n_buffers ? s->n_buffers : 1));
    if (!e->sched_off) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int b = 0; b < s->n_buffers; b++) e->sched_off[b] = s->buffers[b].offset;
    /* the buffers of the model's input and output (a reshape output is its input's buffer) */
    int rin = m->input, rout = m->output;
    for (int i = m->n_nodes - 1; i >= 0; i--)
        if (tml_plan_is_alias(m, i) && m->nodes[i].out == rout) rout = m->nodes[i].in[0];
    e->sched_in = e->sched_out = -1;
    for (int b = 0; b < s->n_buffers; b++) {
        if (s->buffers[b].kind != TML_SBUF_TENSOR) continue;
        if (s->buffers[b].tensor == rin) e->sched_in = b;
        if (s->buffers[b].tensor == rout) e->sched_out = b;
    }
    if (e->sched_in < 0 || e->sched_out < 0)
        return tml_error(TML_ERR_INVALID, "memory schedule has no buffer for the model's input or output");
    /* kernel scratch of the largest step */
    size_t scratch = 0;
    for (int q = 0; q < s->n_steps; q++) {
        const tml_sched_step *p = &s->steps[q];
        if (p->kind != TML_STEP_RUN) continue;
        const tml_node *n = &m->nodes[p->node];
        size_t need = 0;
        if (n->op == TML_OP_CONV2D) {
            tml_window w;
            int64_t off;
            if (p->flags & TML_STEP_WHOLE) tml_window_from_node(m, n, 1, &w);
            else step_window(m, p, &w, &off);
            need = tml_conv2d_s8_scratch_size(&w);
        } else if (n->op == TML_OP_DENSE) {
            const tml_tensor *wt = &m->tensors[n->in[1]];
            need = tml_dense_s8_scratch_size(1, wt->dims[1], wt->dims[0]);
        }
        if (need > scratch) scratch = need;
    }
    int threads = 1;
#ifdef SCHED_OMP
    threads = omp_get_max_threads();
    if (threads > e->max_batch) threads = e->max_batch;
    if (threads < 1) threads = 1;
#endif
    e->sched_threads = threads;
    e->sched_scratch = up(scratch);
    e->scratch_bytes = e->sched_scratch * (size_t)threads;
    if (e->scratch_bytes) {
        e->scratch = aligned_alloc(HOST_ALIGN, e->scratch_bytes);
        if (!e->scratch) return tml_error(TML_ERR_NOMEM, "out of memory: kernel scratch of %zu bytes", e->scratch_bytes);
    }
    e->sched_stride = up((size_t)(s->arena_bytes > 0 ? s->arena_bytes : 1));
    e->arena_bytes = e->sched_stride * (size_t)e->max_batch;
    e->arena = aligned_alloc(HOST_ALIGN, e->arena_bytes);
    if (!e->arena)
        return tml_error(TML_ERR_NOMEM, "out of memory: the schedule's arena for batch %d needs %zu bytes", e->max_batch,
                         e->arena_bytes);
    e->sched = s;
    return TML_OK;
}

static void run_step(struct tml_engine *e, uint8_t *A, void *scratch, const tml_sched_step *p)
{
    const tml_model *m = e->m;
    const int64_t *off = e->sched_off;
    if (p->kind == TML_STEP_COPY) {
        for (int r = 0; r < p->rows; r++)
            memmove(A + off[p->dst] + p->dst_off + (int64_t)r * p->dst_stride,
                    A + off[p->src] + p->src_off + (int64_t)r * p->src_stride, (size_t)p->len);
        return;
    }
    const tml_node *n = &m->nodes[p->node];
    int8_t *x = (int8_t *)(A + off[p->in[0].buf]);
    int8_t *x2 = p->in[1].buf >= 0 ? (int8_t *)(A + off[p->in[1].buf]) : NULL;
    int8_t *y = (int8_t *)(A + off[p->out.buf]);
    if (p->flags & TML_STEP_WHOLE) {
        tml_window w;
        const tml_window *wp = NULL;
        if (is_window(n->op)) {
            tml_window_from_node(m, n, 1, &w);
            wp = &w;
        }
        tml_engine_q8_exec(e, p->node, 1, wp, x, x2, y, tml_tensor_numel(&m->tensors[n->out]), scratch);
        return;
    }
    const tml_tensor *xt = &m->tensors[n->in[0]], *yt = &m->tensors[n->out];
    int64_t cin = xt->dims[2], cout = yt->ndim == 3 ? yt->dims[2] : yt->dims[0];
    if (is_window(n->op)) {
        tml_window w;
        int64_t xo;
        step_window(m, p, &w, &xo);
        tml_engine_q8_exec(e, p->node, 1, &w, x + xo, NULL, y + at(&p->out, p->r0, p->c0, cout), 0, scratch);
    } else if (n->op == TML_OP_GLOBAL_AVGPOOL) {
        int32_t *acc = (int32_t *)(A + off[p->acc]);
        if (p->flags & TML_STEP_FIRST) memset(acc, 0, sizeof(int32_t) * (size_t)cin);
        tml_global_avgpool_s8_sum_ref((int64_t)(p->r1 - p->r0) * (p->c1 - p->c0), (int)cin, x + at(&p->in[0], p->r0, p->c0, cin), acc);
        if (p->flags & TML_STEP_LAST) tml_global_avgpool_s8_finish_ref((int64_t)xt->dims[0] * xt->dims[1], (int)cin, acc, y);
    } else {
        /* elementwise over the rows (views hold whole rows or exactly the tile) */
        int64_t count = (int64_t)(p->r1 - p->r0) * (p->c1 - p->c0) * cout;
        tml_engine_q8_exec(e, p->node, 1, NULL, x + at(&p->in[0], p->r0, p->c0, cin),
                           x2 ? x2 + at(&p->in[1], p->r0, p->c0, cin) : NULL, y + at(&p->out, p->r0, p->c0, cout), count,
                           scratch);
    }
}

void tml_engine_sched_run(struct tml_engine *e, const void *x, int n, void *y, int raw)
{
    const tml_model *m = e->m;
    const tml_schedule *s = e->sched;
    int64_t in_numel = tml_tensor_numel(&m->tensors[m->input]);
    int64_t out_numel = tml_tensor_numel(&m->tensors[m->output]);
#ifdef SCHED_OMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(e->sched_threads) if (n > 1 && e->sched_threads > 1)
#endif
    for (int b = 0; b < n; b++) {
        int tid = 0;
#ifdef SCHED_OMP
        tid = omp_get_thread_num();
#endif
        uint8_t *A = e->arena + (size_t)b * e->sched_stride;
        void *scratch = e->scratch ? (uint8_t *)e->scratch + (size_t)tid * e->sched_scratch : NULL;
        int8_t *ain = (int8_t *)(A + e->sched_off[e->sched_in]), *aout = (int8_t *)(A + e->sched_off[e->sched_out]);
        if (raw) memcpy(ain, (const int8_t *)x + (int64_t)b * in_numel, (size_t)in_numel);
        else tml_engine_q8_quantize_input(e, (const float *)x + (int64_t)b * in_numel, in_numel, ain);
        for (int q = 0; q < s->n_steps; q++) run_step(e, A, scratch, &s->steps[q]);
        if (raw) memcpy((int8_t *)y + (int64_t)b * out_numel, aout, (size_t)out_numel);
        else tml_engine_q8_dequantize_output(e, aout, out_numel, (float *)y + (int64_t)b * out_numel);
    }
}
