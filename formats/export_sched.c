/*
 * export_sched.c - a memory schedule (tml_schedule.h) in the exported C:
 * the run function becomes the schedule's steps, one statement each, with
 * every arena offset, row and stride computed here.
 *
 * The kernels of export_kernels.c run a band of output rows from a buffer
 * holding only some input rows (x_row0, row strides), which is what the
 * streamed and in-place steps need. A tile of a patch segment also has a
 * column range: the step copies the layer's parameters to the stack with the
 * tile's width, output width and left padding (the input view starts at the
 * first column the tile reads, so the padding shrinks by what lies before),
 * the same sub-window the integer engine runs. A streamed global average pool
 * sums rows into int32 (gap_sum / gap_finish).
 *
 * The conv kernels need scratch, which the schedule places in the arena
 * (tml_sched_opts.node_scratch). The DSP conv2d() gets its smallest batch
 * (a pair or quad of pixels widened to int16, with their int8 gathers: 6 or
 * 12 * stride bytes, see plan_schedule); where that would raise the arena, the layer
 * may run conv2d_lean() instead (one pixel from its int8 gather: stride
 * bytes, about one instruction per MAC more): lean wherever it applies, then
 * layer by layer, the most MACs first, back to conv2d when the arena grows by
 * at most a byte per TML_EXPORT_LEAN_INSTR_PER_BYTE instructions saved (or,
 * under a RAM limit, when it still fits).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_ops_s8.h"
#include "tinyml/tml_schedule.h"

/* ---- planning --------------------------------------------------------------------------- */

static tml_status plan_with(const tml_model *m, const tml_sched_opts *o, const int64_t *scratch, tml_schedule *s)
{
    tml_sched_opts o2 = *o;
    o2.node_scratch = scratch;
    return tml_schedule_model(m, &o2, s);
}

/* The lowest offset where `bytes` fit among the buffers live at node k,
 * inside the arena; -1 if none. */
static int64_t free_at(const tml_schedule *s, int k, int64_t bytes)
{
    int64_t best = -1;
    for (int c = -1; c < s->n_buffers; c++) {
        int64_t cand;
        if (c < 0)
            cand = 0;
        else {
            const tml_sched_buffer *b = &s->buffers[c];
            if (b->start > k || b->end < k) continue;
            cand = b->offset + (b->bytes + s->align - 1) / s->align * s->align;
        }
        if (cand + bytes > s->arena_bytes || (best >= 0 && cand >= best)) continue;
        int ok = 1;
        for (int q = 0; q < s->n_buffers && ok; q++) {
            const tml_sched_buffer *b = &s->buffers[q];
            if (b->start > k || b->end < k) continue;
            if (cand < b->offset + b->bytes && b->offset < cand + bytes) ok = 0;
        }
        if (ok) best = cand;
    }
    return best;
}

int tml_exs_plan(const tml_model *m, const tml_sched_opts *o, int dsp, tml_exs_node *nodes, tml_schedule *s)
{
    int nn = m->n_nodes;
    int64_t *cur = calloc((size_t)(nn ? nn : 1), sizeof(int64_t));
    int *order = malloc(sizeof(int) * (size_t)(nn ? nn : 1));
    tml_schedule best, t;
    memset(&best, 0, sizeof best);
    memset(&t, 0, sizeof t);
    tml_status st = TML_OK;
    if (!cur || !order) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    int limit = o->enabled && o->ram_limit > 0;
    /* start lean wherever it applies (layer by layer means the exporter's
     * fast kernels), then give each layer, most MACs first, the fast kernel
     * back when that fits the RAM limit, or (no limit) costs at most one byte
     * of RAM per TML_EXPORT_LEAN_INSTR_PER_BYTE instructions it saves */
    int n = 0;
    for (int i = 0; i < nn; i++) {
        nodes[i].lean = 0;
        nodes[i].dense_off = -1;
        int lean = o->enabled && dsp && nodes[i].lean_ok && nodes[i].scratch_lean < nodes[i].scratch_fast;
        cur[i] = lean ? nodes[i].scratch_lean : nodes[i].scratch_fast;
        if (lean) order[n++] = i;
    }
    if ((st = plan_with(m, o, cur, &best))) goto out;
    if (n > 0 && !limit) {
        /* first, at once: the layers of segments that have room below the
         * arena for their fast scratch (no search needed to know it costs
         * nothing); one check that placement agrees */
        int64_t al16 = best.align;
        int moved = 0;
        for (int g = 0; g < best.n_segments; g++) {
            const tml_sched_segment *sg = &best.segments[g];
            int64_t now = 0, fast = 0;
            for (int k = sg->first; k <= sg->last; k++) {
                int64_t c = (cur[k] + al16 - 1) / al16 * al16, f = (nodes[k].scratch_fast + al16 - 1) / al16 * al16;
                if (c > now) now = c;
                if (f > fast) fast = f;
            }
            /* a stream shares one scratch buffer; a plain or in-place layer has its own */
            if (sg->peak_bytes - now + fast > best.arena_bytes) continue;
            for (int k = sg->first; k <= sg->last; k++)
                if (cur[k] != nodes[k].scratch_fast) {
                    cur[k] = nodes[k].scratch_fast;
                    moved = 1;
                }
        }
        if (moved) {
            if ((st = plan_with(m, o, cur, &t))) goto out;
            if (t.arena_bytes <= best.arena_bytes && t.extra_macs <= best.extra_macs) {
                tml_schedule_free(&best);
                best = t;
            } else {
                tml_schedule_free(&t);
                for (int a = 0; a < n; a++) cur[order[a]] = nodes[order[a]].scratch_lean;
            }
            memset(&t, 0, sizeof t);
        }
        /* the rest, one by one */
        int r = 0;
        for (int a = 0; a < n; a++)
            if (cur[order[a]] != nodes[order[a]].scratch_fast) order[r++] = order[a];
        n = r;
    }
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && tml_node_macs(m, &m->nodes[order[b]]) > tml_node_macs(m, &m->nodes[order[b - 1]]); b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    for (int a = 0; a < n; a++) {
        int i = order[a];
        cur[i] = nodes[i].scratch_fast;
        if ((st = plan_with(m, o, cur, &t))) goto out;
        /* the lean kernel costs about one instruction per MAC more (Cortex-M4, measured) */
        int64_t saved = tml_node_macs(m, &m->nodes[i]);
        /* (a limit nothing meets: the least RAM, as without one) */
        int take = limit ? (t.fits ? t.extra_macs <= best.extra_macs || !best.fits
                                   : !best.fits && t.arena_bytes <= best.arena_bytes)
                         : (t.extra_macs <= best.extra_macs &&
                            (t.arena_bytes - best.arena_bytes) * TML_EXPORT_LEAN_INSTR_PER_BYTE <= saved);
        if (take) {
            tml_schedule_free(&best);
            best = t;
        } else {
            tml_schedule_free(&t);
            cur[i] = nodes[i].scratch_lean;
        }
        memset(&t, 0, sizeof t);
    }
    for (int i = 0; i < nn; i++) nodes[i].lean = cur[i] != nodes[i].scratch_fast;
    /* a DSP dense layer's int16 input where bytes are free anyway (a plain step) */
    for (int q = 0; q < best.n_steps; q++) {
        tml_sched_step *p = &best.steps[q];
        if (p->kind != TML_STEP_RUN || !(p->flags & TML_STEP_WHOLE) || m->nodes[p->node].op != TML_OP_DENSE) continue;
        tml_exs_node *xn = &nodes[p->node];
        if (xn->dense_scratch <= 0 || xn->dense_off >= 0) continue;
        int64_t off = free_at(&best, p->node, xn->dense_scratch);
        if (off < 0) continue;
        tml_sched_buffer *nb = realloc(best.buffers, sizeof *nb * (size_t)(best.n_buffers + 1));
        if (!nb) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        best.buffers = nb;
        tml_sched_buffer *b = &best.buffers[best.n_buffers];
        memset(b, 0, sizeof *b);
        b->kind = TML_SBUF_SCRATCH;
        b->tensor = m->nodes[p->node].out;
        b->bytes = xn->dense_scratch;
        b->offset = off;
        b->start = b->end = p->node;
        b->group = best.n_buffers;
        p->scratch = best.n_buffers++;
        xn->dense_off = off;
    }
    *s = best;
    memset(&best, 0, sizeof best);
out:
    tml_schedule_free(&best);
    tml_schedule_free(&t);
    free(cur);
    free(order);
    return st;
}

/* ---- emitting --------------------------------------------------------------------------- */

static int is_window(tml_op op)
{
    return op == TML_OP_CONV2D || op == TML_OP_DEPTHWISE_CONV2D || op == TML_OP_MAXPOOL || op == TML_OP_AVGPOOL;
}

void tml_exs_used(const tml_model *m, const tml_schedule *sc, const tml_exs_node *nodes, int used[TML_EXK_COUNT])
{
    for (int q = 0; q < sc->n_steps; q++) {
        const tml_sched_step *p = &sc->steps[q];
        if (p->kind != TML_STEP_RUN) continue;
        tml_op op = m->nodes[p->node].op;
        if (op == TML_OP_GLOBAL_AVGPOOL)
            used[!(p->flags & TML_STEP_WHOLE)                    ? TML_EXK_GAP_PARTS
                 : m->meta.rounding == TML_ROUNDING_TFLITE ? TML_EXK_MEAN_TFL
                                                           : TML_EXK_GAP] = 1;
        if ((op == TML_OP_CONV2D || op == TML_OP_DEPTHWISE_CONV2D) && nodes[p->node].conv2d && nodes[p->node].lean)
            used[TML_EXK_CONV_LEAN] = 1;
    }
}

int64_t tml_exs_tensor_offset(const tml_model *m, const tml_schedule *sc, int tensor)
{
    /* an alias (reshape) output lives in its input's buffer */
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        tml_op op = m->nodes[i].op;
        if ((op == TML_OP_RESHAPE || op == TML_OP_DROPOUT) && m->nodes[i].out == tensor) tensor = m->nodes[i].in[0];
    }
    for (int b = 0; b < sc->n_buffers; b++)
        if (sc->buffers[b].kind == TML_SBUF_TENSOR && sc->buffers[b].tensor == tensor) return sc->buffers[b].offset;
    return -1;
}

/* arena offset of (row, col) in a view of a tensor with ch bytes per pixel */
static long long at(const tml_schedule *sc, const tml_sched_view *v, int row, int col, int64_t ch)
{
    return (long long)(sc->buffers[v->buf].offset + v->off + ((int64_t)(row - v->row0) * v->cols + (col - v->col0)) * ch);
}

static void put_scratch(tml_sb *s, const tml_schedule *sc, int buf)
{
    if (buf >= 0) tml_sb_printf(s, "a + %lld", (long long)sc->buffers[buf].offset);
    else tml_sb_puts(s, "0");
}

static void emit_run(tml_sb *s, const tml_model *m, const tml_schedule *sc, const tml_sched_step *p, const tml_exs_node *xn)
{
    const tml_node *n = &m->nodes[p->node];
    const tml_tensor *xt = &m->tensors[n->in[0]], *yt = &m->tensors[n->out];
    const char *id = xn->id;
    int whole = (p->flags & TML_STEP_WHOLE) != 0;
    int tfl = m->meta.rounding == TML_ROUNDING_TFLITE;
    int64_t cin = xt->ndim == 3 ? xt->dims[2] : 1, cout = yt->ndim == 3 ? yt->dims[2] : 1;
    if (is_window(n->op)) {
        const tml_sched_view *v = &p->in[0], *o = &p->out;
        const char *fn = n->op == TML_OP_MAXPOOL ? "maxpool"
                         : n->op == TML_OP_AVGPOOL ? "avgpool"
                         : !xn->conv2d          ? "dwconv"
                         : xn->lean             ? "conv2d_lean"
                                                : "conv2d";
        int conv = n->op == TML_OP_CONV2D || n->op == TML_OP_DEPTHWISE_CONV2D;
        int W = xt->dims[1], OW = yt->dims[1];
        int tile = !whole && (v->col0 != 0 || v->cols != W || p->c0 != 0 || p->c1 != OW);
        long long X = at(sc, v, v->row0, v->col0, cin), Y = at(sc, o, p->r0, p->c0, cout);
        if (tile)
            tml_sb_printf(s, "    {\n        %s t = %s_p;\n        t.w = %d;\n        t.ow = %d;\n        t.pad_l = %d;\n    ",
                          conv ? "conv_t" : "pool_t", id, v->cols, p->c1 - p->c0, n->pad[1] + v->col0 - p->c0 * n->sw);
        char par[96];
        if (tile) snprintf(par, sizeof par, "&t");
        else snprintf(par, sizeof par, "&%s_p", id);
        tml_sb_printf(s, "    %s(%s, %d, %d, a + %lld, %d, %lld, a + %lld, %lld", fn, par, p->r0, p->r1, X, v->row0,
                      (long long)v->cols * cin, Y, (long long)o->cols * cout);
        if (conv && xn->conv2d) {
            tml_sb_puts(s, ", ");
            put_scratch(s, sc, p->scratch);
        }
        tml_sb_puts(s, tile ? ");\n    }\n" : ");\n");
        return;
    }
    switch (n->op) {
    case TML_OP_DENSE:
        tml_sb_printf(s, "    dense(&%s_p, a + %lld, a + %lld, ", id, at(sc, &p->in[0], 0, 0, 1), at(sc, &p->out, 0, 0, 1));
        put_scratch(s, sc, p->scratch);
        tml_sb_puts(s, ");\n");
        return;
    case TML_OP_SOFTMAX: {
        int k = (int)yt->dims[yt->ndim - 1];
        if (tfl)
            tml_sb_printf(s, "    softmax_tfl(%lld, %d, &%s_p, a + %lld, a + %lld);\n", (long long)(tml_tensor_numel(yt) / k), k,
                          id, at(sc, &p->in[0], 0, 0, 1), at(sc, &p->out, 0, 0, 1));
        else
            tml_sb_printf(s, "    softmax(%lld, %d, %s_lut, a + %lld, a + %lld);\n", (long long)(tml_tensor_numel(yt) / k), k,
                          id, at(sc, &p->in[0], 0, 0, 1), at(sc, &p->out, 0, 0, 1));
        return;
    }
    case TML_OP_GLOBAL_AVGPOOL: {
        int hw = xt->dims[0] * xt->dims[1];
        if (whole && tfl) { /* TFLite's MEAN (never streamed: it requantizes the sum) */
            tml_mean_s8_tfl_params mp;
            tml_mean_s8_tfl_prepare(xt->q.scale[0], xt->q.zero_point[0], yt->q.scale[0], yt->q.zero_point[0], hw, &mp);
            tml_sb_printf(s, "    {\n        static const mean_t mp = {%d, %d, %d, %d, %d, %d};\n"
                             "        mean_tfl(&mp, a + %lld, a + %lld);\n    }\n",
                          hw, (int)cin, (int)mp.in_zp, (int)mp.out_zp, (int)mp.mult, mp.shift, at(sc, &p->in[0], 0, 0, cin),
                          at(sc, &p->out, 0, 0, 1));
            return;
        }
        if (whole) {
            tml_sb_printf(s, "    global_avgpool(%d, %d, a + %lld, a + %lld);\n", hw, (int)cin, at(sc, &p->in[0], 0, 0, cin),
                          at(sc, &p->out, 0, 0, 1));
            return;
        }
        long long acc = (long long)sc->buffers[p->acc].offset;
        if (p->flags & TML_STEP_FIRST) tml_sb_printf(s, "    memset(a + %lld, 0, %lld);\n", acc, (long long)(4 * cin));
        tml_sb_printf(s, "    gap_sum(%d, %d, a + %lld, (int32_t *)(void *)(a + %lld));\n", (p->r1 - p->r0) * (p->c1 - p->c0),
                      (int)cin, at(sc, &p->in[0], p->r0, p->c0, cin), acc);
        if (p->flags & TML_STEP_LAST)
            tml_sb_printf(s, "    gap_finish(%d, %d, (const int32_t *)(const void *)(a + %lld), a + %lld);\n", hw, (int)cin, acc,
                          at(sc, &p->out, 0, 0, 1));
        return;
    }
    default: break;
    }
    /* elementwise: a band of rows (or the tile) */
    long long count = whole ? (long long)tml_tensor_numel(yt) : (long long)(p->r1 - p->r0) * (p->c1 - p->c0) * cout;
    int r0 = whole ? 0 : p->r0, c0 = whole ? 0 : p->c0;
    long long X = at(sc, &p->in[0], r0, c0, cin), Y = at(sc, &p->out, r0, c0, cout);
    if (n->op == TML_OP_ADD) {
        long long X2 = at(sc, &p->in[1], r0, c0, cin);
        if (count == (long long)tml_tensor_numel(yt))
            tml_sb_printf(s, "    add(&%s_p, a + %lld, a + %lld, a + %lld);\n", id, X, X2, Y);
        else
            tml_sb_printf(s, "    {\n        add_t t = %s_p;\n        t.count = %lld;\n        add(&t, a + %lld, a + %lld, a + %lld);\n    }\n",
                          id, count, X, X2, Y);
        return;
    }
    if (n->op == TML_OP_RELU || n->op == TML_OP_RELU6) {
        int32_t lo, hi;
        tml_act act = n->op == TML_OP_RELU ? TML_ACT_RELU : TML_ACT_RELU6;
        if (tfl) tml_act_bounds_s8_tfl(act, yt->q.scale[0], yt->q.zero_point[0], &lo, &hi);
        else tml_act_bounds_s8(act, yt->q.scale[0], yt->q.zero_point[0], &lo, &hi);
        tml_sb_printf(s, "    clamp_copy(%lld, %d, %d, a + %lld, a + %lld);\n", count, (int)lo, (int)hi, X, Y);
        return;
    }
    /* reshape / dropout share their input's bytes: nothing to run */
}

/* ---- the step table ----------------------------------------------------------------------
 * A streamed or patched schedule has hundreds of steps; one call each with
 * its constant arguments is ~30 bytes of code a step (resnet8: 8.5 KB of
 * run function). The windowed-kernel runs, the adds and the plain copies
 * become rows of a const table instead (12 bytes a row with 16-bit fields)
 * and one small interpreter (run_steps) calls the kernels: the arguments
 * that do not change between a node's steps (parameters, row strides,
 * scratch) are stored once per node. About 20 instructions a step more
 * than the direct calls; tiles, dense layers, pools of sums, softmax and
 * row-wise copies stay statements. */

enum { TAB_CONV2D, TAB_LEAN, TAB_DWCONV, TAB_MAXPOOL, TAB_AVGPOOL, TAB_ADD, TAB_COPY, TAB_NFN };
/* below this many rows the interpreter and the rows cost about what the
 * calls do (LeNet-5's 23 shared rows: 28 bytes more flash at -Os): none
 * under balanced; --optimize size takes any saving */
#define TAB_MIN_STEPS 12
#define TAB_MIN_SHARED 48

typedef struct {
    int fn, set, index;
    long long xrs, yrs, scr, count;
} tab_node;

/* Step q as a table row: v[] (windowed kernels: r0, r1, row0 (the bytes
 * of a row), x, y (the words); add: -, -, -, a, b, y; copy: -, -, -, dst,
 * src, len), the kernel and its per-node constants. 0 when it is not one
 * of the tabled kinds. */
static int tab_row(const tml_model *m, const tml_schedule *sc, const tml_exs_node *nodes, int q, long long v[6],
                   tab_node *d)
{
    const tml_sched_step *p = &sc->steps[q];
    memset(v, 0, 6 * sizeof v[0]);
    memset(d, 0, sizeof *d);
    if (p->kind == TML_STEP_COPY) {
        if (p->rows != 1) return 0;
        v[3] = (long long)(sc->buffers[p->dst].offset + p->dst_off);
        v[4] = (long long)(sc->buffers[p->src].offset + p->src_off);
        v[5] = (long long)p->len;
        d->fn = TAB_COPY;
        return 1;
    }
    if (p->kind != TML_STEP_RUN || p->node >= 255) return 0;
    const tml_node *n = &m->nodes[p->node];
    const tml_exs_node *xn = &nodes[p->node];
    const tml_tensor *xt = &m->tensors[n->in[0]], *yt = &m->tensors[n->out];
    int64_t cin = xt->ndim == 3 ? xt->dims[2] : 1, cout = yt->ndim == 3 ? yt->dims[2] : 1;
    int whole = (p->flags & TML_STEP_WHOLE) != 0;
    if (is_window(n->op)) {
        const tml_sched_view *iv = &p->in[0], *o = &p->out;
        int W = xt->dims[1], OW = yt->dims[1];
        if (!whole && (iv->col0 != 0 || iv->cols != W || p->c0 != 0 || p->c1 != OW)) return 0; /* a tile */
        int conv = n->op == TML_OP_CONV2D || n->op == TML_OP_DEPTHWISE_CONV2D;
        d->fn = n->op == TML_OP_MAXPOOL ? TAB_MAXPOOL
                : n->op == TML_OP_AVGPOOL ? TAB_AVGPOOL
                : !xn->conv2d          ? TAB_DWCONV
                : xn->lean             ? TAB_LEAN
                                       : TAB_CONV2D;
        v[0] = p->r0;
        v[1] = p->r1;
        v[2] = iv->row0;
        v[3] = at(sc, iv, iv->row0, iv->col0, cin);
        v[4] = at(sc, o, p->r0, p->c0, cout);
        d->xrs = (long long)iv->cols * cin;
        d->yrs = (long long)o->cols * cout;
        d->scr = conv && xn->conv2d && p->scratch >= 0 ? (long long)sc->buffers[p->scratch].offset + 1 : 0;
        return 1;
    }
    if (n->op == TML_OP_ADD) {
        int r0 = whole ? 0 : p->r0, c0 = whole ? 0 : p->c0;
        d->count = whole ? (long long)tml_tensor_numel(yt) : (long long)(p->r1 - p->r0) * (p->c1 - p->c0) * cout;
        v[3] = at(sc, &p->in[0], r0, c0, cin);
        v[4] = at(sc, &p->in[1], r0, c0, cin);
        v[5] = at(sc, &p->out, r0, c0, cout);
        d->fn = TAB_ADD;
        return 1;
    }
    return 0;
}

/* Which steps are table rows (in_tab[q]), the per-node constants (tn, with
 * their index in the node table) and the field width. Returns the number of
 * rows (0: no table). mode TML_EXS_TABLE_ALL: every step that can be a row;
 * TML_EXS_TABLE_SHARED: only those of kernels that two or more nodes call
 * (a kernel with one caller is specialised by the compiler to its constant
 * parameters, which a table row would lose: LeNet-5's conv2 runs 1.2 M
 * instructions faster so); TML_EXS_TABLE_NONE: none. */
static int tab_plan(const tml_model *m, const tml_schedule *sc, const tml_exs_node *nodes, int mode, tab_node *tn,
                    char *in_tab, int *wide, int *n_tnodes)
{
    int callers[TAB_NFN] = {0};
    int rows = 0, runs = 0;
    *wide = 0;
    *n_tnodes = 0;
    for (int i = 0; i < m->n_nodes; i++) memset(&tn[i], 0, sizeof tn[i]);
    for (int q = 0; q < sc->n_steps; q++) {
        long long v[6];
        tab_node d;
        in_tab[q] = 0;
        if (!tab_row(m, sc, nodes, q, v, &d)) continue;
        if (d.fn != TAB_COPY) {
            tab_node *t = &tn[sc->steps[q].node];
            if (!t->set) {
                *t = d;
                t->set = 1;
                t->index = (*n_tnodes)++;
            } else if (t->fn != d.fn || t->xrs != d.xrs || t->yrs != d.yrs || t->scr != d.scr ||
                       t->count != d.count) {
                continue;
            }
            runs++;
        }
        for (int k = 0; k < 6; k++)
            if (v[k] < 0 || v[k] > (k < 3 ? 255 : 65535)) *wide = 1;
        in_tab[q] = 1;
        rows++;
    }
    for (int i = 0; i < m->n_nodes; i++)
        if (tn[i].set) callers[tn[i].fn]++;
    if (mode == TML_EXS_TABLE_SHARED) { /* drop the rows of single-caller kernels, renumber the nodes */
        rows = runs = 0;
        for (int q = 0; q < sc->n_steps; q++) {
            if (!in_tab[q]) continue;
            const tml_sched_step *p = &sc->steps[q];
            if (p->kind == TML_STEP_RUN && callers[tn[p->node].fn] < 2) in_tab[q] = 0;
            else rows++, runs += p->kind == TML_STEP_RUN;
        }
        *n_tnodes = 0;
        for (int i = 0; i < m->n_nodes; i++) {
            if (tn[i].set && callers[tn[i].fn] < 2) tn[i].set = 0;
            if (tn[i].set) tn[i].index = (*n_tnodes)++;
        }
        *wide = 0;
        for (int q = 0; q < sc->n_steps; q++) {
            long long v[6];
            tab_node d;
            if (in_tab[q] && tab_row(m, sc, nodes, q, v, &d))
                for (int k = 0; k < 6; k++)
                    if (v[k] < 0 || v[k] > (k < 3 ? 255 : 65535)) *wide = 1;
        }
    }
    if (mode == TML_EXS_TABLE_NONE || rows < (mode == TML_EXS_TABLE_SHARED ? TAB_MIN_SHARED : TAB_MIN_STEPS) || !runs) {
        memset(in_tab, 0, (size_t)sc->n_steps);
        return 0;
    }
    return rows;
}

int64_t tml_exs_emit_steps(tml_sb *s, const tml_model *m, const tml_schedule *sc, const tml_exs_node *nodes, int mode,
                           int64_t *code)
{
    *code = 0;
    int nn = m->n_nodes > 0 ? m->n_nodes : 1, wide = 0, ntn = 0;
    tab_node *tn = calloc((size_t)nn, sizeof *tn);
    char *in_tab = calloc((size_t)(sc->n_steps > 0 ? sc->n_steps : 1), 1);
    if (!tn || !in_tab) {
        free(tn);
        free(in_tab);
        s->oom = 1;
        return 0;
    }
    int rows = tab_plan(m, sc, nodes, mode, tn, in_tab, &wide, &ntn);
    if (!rows) {
        free(tn);
        free(in_tab);
        return 0;
    }
    const char *B = wide ? "int32_t" : "uint8_t", *W = wide ? "int32_t" : "uint16_t";
    int used[TAB_NFN] = {0};
    tml_sb_printf(s,
                  "/* The schedule's kernel calls as data (%d rows): a node's parameters,\n"
                  " * row strides, scratch (offset + 1, 0: none) and add count once, then\n"
                  " * per row the node (255: a copy) and its values (windowed kernels:\n"
                  " * output rows [r[0], r[1]), input at a + w[0] holding rows from r[2],\n"
                  " * output at a + w[1]; add: a, b, y; copy: dst, src, len). */\n"
                  "typedef struct {\n    const void *p;\n    int32_t fn, xrs, yrs, scr, count;\n} stepnode_t;\n"
                  "typedef struct {\n    %s n, r[3];\n    %s w[3];\n} step_t;\n"
                  "static const stepnode_t step_nodes[%d] = {\n",
                  rows, B, W, ntn);
    for (int k = 0; k < ntn; k++)
        for (int i = 0; i < m->n_nodes; i++)
            if (tn[i].set && tn[i].index == k) {
                used[tn[i].fn] = 1;
                tml_sb_printf(s, "    {&%s_p, %d, %lld, %lld, %lld, %lld},\n", nodes[i].id, tn[i].fn, tn[i].xrs,
                              tn[i].yrs, tn[i].scr, tn[i].count);
            }
    tml_sb_printf(s, "};\nstatic const step_t steps[%d] = {\n", rows);
    for (int q = 0; q < sc->n_steps; q++) {
        if (!in_tab[q]) continue;
        long long v[6];
        tab_node d;
        tab_row(m, sc, nodes, q, v, &d);
        if (d.fn == TAB_COPY) used[TAB_COPY] = 1;
        tml_sb_printf(s, "    {%d, {%lld, %lld, %lld}, {%lld, %lld, %lld}},\n",
                      d.fn == TAB_COPY ? 255 : tn[sc->steps[q].node].index, v[0], v[1], v[2], v[3], v[4], v[5]);
    }
    tml_sb_puts(s, "};\n\n/* runs k rows of steps[] from s */\n"
                   "static void run_steps(int8_t *a, const step_t *s, int32_t k)\n{\n"
                   "    for (; k > 0; k--, s++) {\n"
                   "        const int32_t r0 = (int32_t)s->r[0], r1 = (int32_t)s->r[1], r2 = (int32_t)s->r[2];\n"
                   "        const int32_t w0 = (int32_t)s->w[0], w1 = (int32_t)s->w[1], w2 = (int32_t)s->w[2];\n");
    if (used[TAB_COPY])
        tml_sb_puts(s, "        if (s->n == 255) {\n            memmove(a + w0, a + w1, (size_t)w2);\n            continue;\n        }\n");
    tml_sb_puts(s, "        const stepnode_t *d = &step_nodes[s->n];\n"
                   "        int8_t *const scr = d->scr ? a + d->scr - 1 : 0;\n"
                   "        (void)scr; (void)r0; (void)r1; (void)r2; (void)w2;\n"
                   "        switch (d->fn) {\n");
    static const char *const calls[TAB_COPY] = {
        "conv2d((const conv_t *)d->p, r0, r1, a + w0, r2, d->xrs, a + w1, d->yrs, scr)",
        "conv2d_lean((const conv_t *)d->p, r0, r1, a + w0, r2, d->xrs, a + w1, d->yrs, scr)",
        "dwconv((const conv_t *)d->p, r0, r1, a + w0, r2, d->xrs, a + w1, d->yrs)",
        "maxpool((const pool_t *)d->p, r0, r1, a + w0, r2, d->xrs, a + w1, d->yrs)",
        "avgpool((const pool_t *)d->p, r0, r1, a + w0, r2, d->xrs, a + w1, d->yrs)",
        NULL,
    };
    for (int f = 0; f < TAB_ADD; f++)
        if (used[f]) tml_sb_printf(s, "        case %d:\n            %s;\n            break;\n", f, calls[f]);
    if (used[TAB_ADD])
        tml_sb_printf(s, "        case %d: {\n            add_t t = *(const add_t *)d->p;\n            t.count = d->count;\n"
                         "            add(&t, a + w0, a + w1, a + w2);\n            break;\n        }\n",
                      TAB_ADD);
    tml_sb_puts(s, "        default:\n            break;\n        }\n    }\n}\n\n");
    /* the interpreter (measured, -Os): ~100 bytes, a case ~25, the copy ~20 */
    *code = 100 + 20 * used[TAB_COPY];
    for (int f = 0; f < TAB_COPY; f++) *code += 25 * used[f];
    free(tn);
    free(in_tab);
    return (int64_t)rows * (wide ? 28 : 10) + (int64_t)ntn * 24;
}

int64_t tml_exs_emit_run(tml_sb *s, const tml_model *m, const tml_schedule *sc, const tml_exs_node *nodes, int mode,
                         const char *upper)
{
    int64_t code = 60; /* the input and output copies, the arena, the return */
    char shp[48] = "";
    const tml_tensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
    for (int d = 0, j = 0; d < in->ndim && j < (int)sizeof shp - 12; d++) j += snprintf(shp + j, sizeof shp - (size_t)j, "%s%d", d ? "x" : "", (int)in->dims[d]);
    tml_sb_printf(s, "    memcpy(a + %lld, in, %lld); /* input %s */\n", (long long)tml_exs_tensor_offset(m, sc, m->input),
                  (long long)tml_tensor_numel(in), shp);
    int nn = m->n_nodes > 0 ? m->n_nodes : 1, wide = 0, ntn = 0, row = 0;
    tab_node *tn = calloc((size_t)nn, sizeof *tn);
    char *in_tab = calloc((size_t)(sc->n_steps > 0 ? sc->n_steps : 1), 1);
    if (!tn || !in_tab) {
        free(tn);
        free(in_tab);
        s->oom = 1;
        return 0;
    }
    tab_plan(m, sc, nodes, mode, tn, in_tab, &wide, &ntn);
    int q = 0;
    for (int g = 0; g < sc->n_segments; g++) {
        const tml_sched_segment *sg = &sc->segments[g];
        char names[160];
        const char *a = m->nodes[sg->first].name ? m->nodes[sg->first].name : "";
        const char *b = m->nodes[sg->last].name ? m->nodes[sg->last].name : "";
        /* node names go into a comment: keep printable characters that cannot end it */
        char ca[64], cb[64];
        size_t j = 0;
        for (; *a && j + 1 < sizeof ca; a++) ca[j++] = (*a < 32 || *a > 126 || *a == '*' || *a == '/') ? '_' : *a;
        ca[j] = '\0';
        j = 0;
        for (; *b && j + 1 < sizeof cb; b++) cb[j++] = (*b < 32 || *b > 126 || *b == '*' || *b == '/') ? '_' : *b;
        cb[j] = '\0';
        if (sg->first == sg->last) snprintf(names, sizeof names, "%s", ca);
        else snprintf(names, sizeof names, "%s..%s", ca, cb);
        if (sg->kind == TML_SEG_PATCH)
            tml_sb_printf(s, "    /* %s: patch %dx%d, %lld bytes live (layer by layer: %lld), %lld MACs recomputed */\n", names,
                          sg->tiles_h, sg->tiles_w, (long long)sg->peak_bytes, (long long)sg->bound_bytes,
                          (long long)sg->extra_macs);
        else
            tml_sb_printf(s, "    /* %s: %s, %lld bytes live (layer by layer: %lld) */\n", names, tml_seg_kind_name(sg->kind),
                          (long long)sg->peak_bytes, (long long)sg->bound_bytes);
        /* the layers' hooks in order at the segment's start: a profiler counts
         * a streamed or tiled segment at its last layer */
        for (int k = sg->first; k <= sg->last; k++) tml_sb_printf(s, "    %sLAYER_HOOK(%d);\n", upper, k);
        for (int e = 0; e < sg->n_steps; e++, q++) {
            const tml_sched_step *p = &sc->steps[q];
            if (in_tab[q]) {
                int k = 1;
                while (e + k < sg->n_steps && in_tab[q + k]) k++;
                tml_sb_printf(s, "    run_steps(a, steps + %d, %d);\n", row, k);
                code += 10;
                row += k;
                e += k - 1;
                q += k - 1;
                continue;
            }
            if (p->kind == TML_STEP_COPY) {
                long long src = (long long)(sc->buffers[p->src].offset + p->src_off);
                long long dst = (long long)(sc->buffers[p->dst].offset + p->dst_off);
                code += p->rows == 1 ? 12 : 30;
                if (p->rows == 1)
                    tml_sb_printf(s, "    memmove(a + %lld, a + %lld, %lld);\n", dst, src, (long long)p->len);
                else
                    tml_sb_printf(s,
                                  "    for (int32_t r = 0; r < %d; r++) memmove(a + %lld + r * %lld, a + %lld + r * %lld, %lld);\n",
                                  p->rows, dst, (long long)p->dst_stride, src, (long long)p->src_stride, (long long)p->len);
                continue;
            }
            size_t before = s->len;
            emit_run(s, m, sc, p, &nodes[p->node]);
            /* a call with its arguments ~24 bytes (-Os); one that copies a
             * parameter struct to the stack first (a tile, a band of an add)
             * ~70; reshape and dropout none */
            if (s->len > before) code += strstr(s->buf + before, " t = ") ? 70 : 24;
        }
    }
    tml_sb_printf(s, "    %sLAYER_HOOK(%d);\n", upper, m->n_nodes);
    free(tn);
    free(in_tab);
    (void)out;
    return code;
}
