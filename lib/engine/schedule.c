/*
 * schedule.c - memory schedules below the tensor-by-tensor bound
 * (tml_schedule.h has the overview; docs/memory.md the user's guide).
 *
 * Time is the node index: a buffer lives over [start, end] (-1 = before the
 * first node, n_nodes = after the last). A whole tensor ("materialized") lives
 * from its producer to its last reader, widened to the segments that contain
 * them (a streamed or tiled segment touches its inputs and outputs until it
 * ends). Segment candidates are evaluated on their own: the bytes live while
 * segment [i, j) runs depend only on i and j (whole tensors crossing it, plus
 * its own rings / tiles / delay rows), so a dynamic program over the node
 * order finds the best cut:
 *
 *   phase 1: Pareto fronts of (peak, extra MACs) over prefixes -> the least
 *            peak within the recomputation budget;
 *   phase 2: at that peak (or under the RAM limit), the fewest extra MACs,
 *            then the fewest steps (plain layers where they do not raise the
 *            peak: fewer, larger kernel calls).
 *
 * The chosen segments then emit their buffers and steps, and the buffers are
 * placed in one arena greedily by decreasing size at the lowest offset free
 * over their lifetime (the liveness planner's heuristic; in-place chains are
 * placed as one group at one offset).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine/engine_internal.h"
#include "tinyml/tml_schedule.h"

#define SA TML_PLAN_ALIGN_DEVICE
#define MAX_SEG 32   /* longest streamed segment considered (nodes) */
#define MAX_PATCH 16 /* longest tiled chain considered (nodes) */

static int64_t al(int64_t v) { return (v + SA - 1) / SA * SA; }

const char *tml_seg_kind_name(tml_seg_kind k)
{
    switch (k) {
    case TML_SEG_PLAIN: return "plain";
    case TML_SEG_INPLACE: return "in-place";
    case TML_SEG_STREAM: return "stream";
    case TML_SEG_PATCH: return "patch";
    }
    return "?";
}

void tml_sched_opts_default(tml_sched_opts *o)
{
    memset(o, 0, sizeof *o);
    o->enabled = 1;
    o->max_recompute = TML_SCHED_DEFAULT_RECOMPUTE;
    o->modes = TML_SCHED_ALL;
}

/* ---- options in the model file ------------------------------------------------------------ */

tml_status tml_sched_opts_from_model(const tml_model *m, tml_sched_opts *o, int *found)
{
    tml_sched_opts_default(o);
    *found = 0;
    if (!m->meta.extra || !m->meta.extra[0]) return TML_OK;
    cJSON *root = cJSON_Parse(m->meta.extra);
    if (!root) return TML_OK; /* the reader checked it; nothing of ours in it */
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "schedule");
    tml_status st = TML_OK;
    if (s) {
        const cJSON *none = cJSON_GetObjectItemCaseSensitive(s, "none");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "max_recompute");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "ram_limit");
        if (!cJSON_IsObject(s) || (none && !cJSON_IsBool(none)) || (p && !cJSON_IsNumber(p)) || (r && !cJSON_IsNumber(r)))
            st = tml_error(TML_ERR_FORMAT, "metadata \"schedule\" must be {\"max_recompute\": P}, {\"ram_limit\": BYTES} "
                                           "or {\"none\": true}");
        else if (p && !(p->valuedouble >= 0.0 && p->valuedouble <= 100.0))
            st = tml_error(TML_ERR_FORMAT, "metadata \"schedule\": max_recompute %g out of range [0, 100]", p->valuedouble);
        else if (r && !(r->valuedouble >= 1.0 && r->valuedouble <= 9.0e15))
            st = tml_error(TML_ERR_FORMAT, "metadata \"schedule\": ram_limit %g out of range", r->valuedouble);
        else {
            *found = 1;
            if (none && cJSON_IsTrue(none)) o->enabled = 0;
            if (p) o->max_recompute = p->valuedouble;
            if (r) o->ram_limit = (int64_t)r->valuedouble;
        }
    }
    cJSON_Delete(root);
    return st;
}

tml_status tml_sched_opts_to_model(tml_model *m, const tml_sched_opts *o)
{
    char v[64];
    if (!o->enabled) snprintf(v, sizeof v, "{\"none\":true}");
    else if (o->ram_limit > 0) snprintf(v, sizeof v, "{\"ram_limit\":%lld}", (long long)o->ram_limit);
    else snprintf(v, sizeof v, "{\"max_recompute\":%.17g}", o->max_recompute);
    return tml_meta_extra_set(&m->meta, "schedule", v);
}

/* ---- graph facts ----------------------------------------------------------------------------- */

typedef struct gfx {
    const tml_model *m;
    int nn, nt;
    int *root;     /* (nt) buffer owner (reshape / dropout alias their input), -1 for params */
    int *prod;     /* (nt) producing node, -1 for the graph input and params */
    int *first;    /* (nt) per root: producer node (-1 for the graph input) */
    int *last;     /* (nt) per root: last reader (nn for the graph output; first if unread) */
    int64_t *bytes;  /* (nt) per root: aligned bytes */
    int *readers;  /* (nt) per tensor: nodes reading it */
    int *aliased;  /* (nt) per tensor: read by a reshape / dropout */
    int64_t *live; /* (nn) bytes live at each node in the plain plan */
    int64_t macs;
    const int64_t *scratch; /* (nn) kernel scratch bytes per node, or NULL */
} gfx;

/* Aligned kernel scratch of node k (0 when none). */
static int64_t scr(const gfx *g, int k) { return g->scratch && g->scratch[k] > 0 ? al(g->scratch[k]) : 0; }

static void gfx_free(gfx *g)
{
    free(g->root);
    free(g->prod);
    free(g->first);
    free(g->last);
    free(g->bytes);
    free(g->readers);
    free(g->aliased);
    free(g->live);
}

/* The distinct activation inputs of a node (at most TML_MAX_NODE_INPUTS). */
static int act_inputs(const tml_model *m, const tml_node *n, int *out)
{
    int k = 0;
    for (int j = 0; j < n->n_in; j++) {
        int t = n->in[j];
        if (t < 0 || m->tensors[t].kind != TML_TENSOR_ACT) continue;
        int dup = 0;
        for (int q = 0; q < k; q++) dup |= out[q] == t;
        if (!dup) out[k++] = t;
    }
    return k;
}

static int64_t tensor_bytes(const tml_model *m, int t)
{
    return tml_tensor_numel(&m->tensors[t]) * (int64_t)tml_dtype_size(m->tensors[t].dtype);
}

static tml_status gfx_build(const tml_model *m, gfx *g)
{
    memset(g, 0, sizeof *g);
    g->m = m;
    g->nn = m->n_nodes;
    g->nt = m->n_tensors;
    size_t nt = (size_t)(g->nt ? g->nt : 1), nn = (size_t)(g->nn ? g->nn : 1);
    g->root = malloc(sizeof(int) * nt);
    g->prod = malloc(sizeof(int) * nt);
    g->first = malloc(sizeof(int) * nt);
    g->last = malloc(sizeof(int) * nt);
    g->bytes = calloc(nt, sizeof(int64_t));
    g->readers = calloc(nt, sizeof(int));
    g->aliased = calloc(nt, sizeof(int));
    g->live = calloc(nn, sizeof(int64_t));
    if (!g->root || !g->prod || !g->first || !g->last || !g->bytes || !g->readers || !g->aliased || !g->live) {
        gfx_free(g);
        return tml_error(TML_ERR_NOMEM, "out of memory scheduling");
    }
    for (int t = 0; t < g->nt; t++) {
        g->root[t] = m->tensors[t].kind == TML_TENSOR_ACT ? t : -1;
        g->prod[t] = -1;
        g->first[t] = g->last[t] = -2;
    }
    for (int i = 0; i < g->nn; i++) {
        const tml_node *n = &m->nodes[i];
        g->prod[n->out] = i;
        if (tml_plan_is_alias(m, i)) {
            g->root[n->out] = g->root[n->in[0]];
            g->aliased[n->in[0]] = 1;
        }
        int in[TML_MAX_NODE_INPUTS];
        int k = act_inputs(m, n, in);
        for (int q = 0; q < k; q++) g->readers[in[q]]++;
        g->macs += tml_node_macs(m, n);
    }
    /* lifetimes per root, as tml_plan_buffers */
    g->first[g->root[m->input]] = -1;
    if (g->last[g->root[m->input]] < -1) g->last[g->root[m->input]] = -1;
    for (int i = 0; i < g->nn; i++) {
        const tml_node *n = &m->nodes[i];
        int r = g->root[n->out];
        if (g->first[r] == -2) g->first[r] = i;
        if (g->last[r] < i) g->last[r] = i;
        for (int j = 0; j < n->n_in; j++) {
            int t = n->in[j];
            if (t < 0 || g->root[t] < 0) continue;
            if (g->last[g->root[t]] < i) g->last[g->root[t]] = i;
        }
    }
    g->last[g->root[m->output]] = g->nn;
    for (int t = 0; t < g->nt; t++) {
        if (g->root[t] != t || g->first[t] == -2) continue;
        g->bytes[t] = al(tensor_bytes(m, t));
        for (int k = g->first[t] < 0 ? 0 : g->first[t]; k <= g->last[t] && k < g->nn; k++) g->live[k] += g->bytes[t];
    }
    return TML_OK;
}

/* ---- geometry ----------------------------------------------------------------------------------- */

enum { GEO_WINDOW, GEO_ELTWISE, GEO_GAP };

typedef struct geo {
    int kind;
    int H, W, C;    /* input */
    int OH, OW, OC; /* output (global average pool: OH, OW = H, W: it "outputs" the rows it sums) */
    int kh, kw, sh, sw, dh, dw, pt, pl;
} geo;

static void node_geo(const tml_model *m, const tml_node *n, geo *g)
{
    const tml_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out];
    memset(g, 0, sizeof *g);
    g->H = x->dims[0];
    g->W = x->dims[1];
    g->C = x->dims[2];
    g->kh = g->kw = g->sh = g->sw = g->dh = g->dw = 1;
    if (n->op == TML_OP_CONV2D || n->op == TML_OP_DEPTHWISE_CONV2D || n->op == TML_OP_MAXPOOL || n->op == TML_OP_AVGPOOL) {
        tml_window w;
        tml_window_from_node(m, n, 1, &w);
        g->kind = GEO_WINDOW;
        g->kh = w.kh;
        g->kw = w.kw;
        g->sh = w.sh;
        g->sw = w.sw;
        g->dh = w.dh;
        g->dw = w.dw;
        g->pt = w.pad_t;
        g->pl = w.pad_l;
        g->OH = w.oh;
        g->OW = w.ow;
        g->OC = w.o;
    } else if (n->op == TML_OP_GLOBAL_AVGPOOL) {
        g->kind = GEO_GAP;
        g->OH = g->H;
        g->OW = g->W;
        g->OC = g->C;
    } else {
        g->kind = GEO_ELTWISE;
        g->OH = y->dims[0];
        g->OW = y->dims[1];
        g->OC = y->dims[2];
    }
}

/* Along one axis: the input positions [lo, hi) that outputs [a, b) of a
 * window (stride s, padding pad, k taps dilated by d) read, clipped to the
 * input's n; outputs of other layers read their own positions. */
static void span_in(const geo *g, int a, int b, int s, int pad, int k, int d, int n, int *lo, int *hi)
{
    if (b <= a) {
        *lo = *hi = a < n ? a : n;
        return;
    }
    if (g->kind != GEO_WINDOW) {
        *lo = a;
        *hi = b;
        return;
    }
    int l = a * s - pad, h = (b - 1) * s - pad + (k - 1) * d + 1;
    if (l < 0) l = 0;
    if (h > n) h = n;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* Input rows read by output rows [a, b) (clipped to the input; empty when b <= a). */
static void rows_in(const geo *g, int a, int b, int *lo, int *hi) { span_in(g, a, b, g->sh, g->pt, g->kh, g->dh, g->H, lo, hi); }
static void cols_in(const geo *g, int a, int b, int *lo, int *hi) { span_in(g, a, b, g->sw, g->pl, g->kw, g->dw, g->W, lo, hi); }

static int is3d(const tml_tensor *t) { return t->ndim == 3; }

/* Can the node run on a band of rows (stream segments)? */
static int streamable(const tml_model *m, int k)
{
    const tml_node *n = &m->nodes[k];
    const tml_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out];
    if (x->kind != TML_TENSOR_ACT || !is3d(x)) return 0;
    /* bands are sized in the input's elements: one element size along the chain
     * (a fuzzed int8 -> int32 add once got a band smaller than its rows) */
    if (y->dtype != x->dtype) return 0;
    switch (n->op) {
    case TML_OP_CONV2D:
    case TML_OP_DEPTHWISE_CONV2D:
    case TML_OP_MAXPOOL:
    case TML_OP_AVGPOOL:
    case TML_OP_RELU:
    case TML_OP_RELU6: return is3d(y);
    case TML_OP_ADD: {
        const tml_tensor *b = &m->tensors[n->in[1]];
        return is3d(y) && b->kind == TML_TENSOR_ACT && is3d(b) && b->dtype == x->dtype &&
               memcmp(b->dims, x->dims, sizeof x->dims) == 0;
    }
    case TML_OP_GLOBAL_AVGPOOL:
        /* TFLite's MEAN requantizes its sum: run whole (no partial-sum kernel for it) */
        return m->meta.rounding != TML_ROUNDING_TFLITE;
    default: return 0;
    }
}

/* Can the node be one link of a patch chain (one activation input)? */
static int patchable(const tml_model *m, int k)
{
    tml_op op = m->nodes[k].op;
    return op != TML_OP_ADD && streamable(m, k);
}

/* ---- building the result -------------------------------------------------------------------------- */

typedef struct emitter {
    tml_schedule *s;
    int cap_buf, cap_step;
    int *tbuf;     /* (nt) buffer of each whole (materialized) root, -1 */
    int oom;
} emitter;

static int add_buf(emitter *e, tml_sbuf_kind kind, int tensor, int64_t bytes, int start, int end)
{
    tml_schedule *s = e->s;
    if (s->n_buffers == e->cap_buf) {
        int nc = e->cap_buf ? 2 * e->cap_buf : 32;
        tml_sched_buffer *nb = realloc(s->buffers, sizeof *nb * (size_t)nc);
        if (!nb) {
            e->oom = 1;
            return -1;
        }
        s->buffers = nb;
        e->cap_buf = nc;
    }
    tml_sched_buffer *b = &s->buffers[s->n_buffers];
    memset(b, 0, sizeof *b);
    b->kind = kind;
    b->tensor = tensor;
    b->bytes = bytes;
    b->offset = -1;
    b->start = start;
    b->end = end;
    b->group = s->n_buffers;
    return s->n_buffers++;
}

static tml_sched_step *add_step(emitter *e)
{
    tml_schedule *s = e->s;
    if (s->n_steps == e->cap_step) {
        int nc = e->cap_step ? 2 * e->cap_step : 256;
        tml_sched_step *ns = realloc(s->steps, sizeof *ns * (size_t)nc);
        if (!ns) {
            e->oom = 1;
            return NULL;
        }
        s->steps = ns;
        e->cap_step = nc;
    }
    tml_sched_step *p = &s->steps[s->n_steps++];
    memset(p, 0, sizeof *p);
    p->in[0].buf = p->in[1].buf = p->out.buf = p->acc = p->src = p->dst = p->scratch = -1;
    return p;
}

static tml_sched_view whole_view(const gfx *g, const emitter *e, int t)
{
    const tml_tensor *x = &g->m->tensors[t];
    tml_sched_view v = {e->tbuf[g->root[t]], 0, 0, x->ndim == 3 ? x->dims[1] : 1, 0};
    return v;
}

/* Bytes of one row (all columns) of a 3-D activation. */
static int64_t row_bytes(const tml_model *m, int t)
{
    const tml_tensor *x = &m->tensors[t];
    return (int64_t)x->dims[1] * x->dims[2] * (int64_t)tml_dtype_size(x->dtype);
}

static int64_t pix_bytes(const tml_model *m, int t)
{
    const tml_tensor *x = &m->tensors[t];
    return (int64_t)x->dims[2] * (int64_t)tml_dtype_size(x->dtype);
}

/* ---- segment evaluation ------------------------------------------------------------------------------ */

typedef struct segres {
    int ok;
    int64_t peak;     /* whole tensors live during the segment + its own buffers (peak) */
    int64_t extra;    /* extra MACs */
    int64_t steps;
    int tiles_h, tiles_w;
} segres;

/* Whole tensors live while nodes [i, j) run; internal[k] (k = 0..j-i-1) marks
 * outputs of node i+k that never exist whole (NULL: none). */
static int64_t live_whole(const gfx *g, int i, int j, const uint8_t *internal)
{
    int64_t sum = 0;
    for (int t = 0; t < g->nt; t++) {
        if (g->root[t] != t || g->first[t] == -2) continue;
        if (g->first[t] >= j || g->last[t] < i) continue;
        int p = g->prod[t];
        if (internal && p >= i && p < j && internal[p - i]) continue;
        sum += g->bytes[t];
    }
    return sum;
}

/* One step running node k on whole tensors (its scratch buffer added first). */
static void whole_step(const gfx *g, int k, emitter *e)
{
    const tml_node *n = &g->m->nodes[k];
    int sb = scr(g, k) ? add_buf(e, TML_SBUF_SCRATCH, n->out, g->scratch[k], k, k) : -1;
    tml_sched_step *p = add_step(e);
    if (!p) return;
    p->scratch = sb;
    p->kind = TML_STEP_RUN;
    p->flags = TML_STEP_WHOLE;
    p->node = k;
    for (int q = 0; q < 2; q++) {
        int t = q < n->n_in ? n->in[q] : -1;
        if (t >= 0 && g->m->tensors[t].kind == TML_TENSOR_ACT) p->in[q] = whole_view(g, e, t);
    }
    p->out = whole_view(g, e, n->out);
    const tml_tensor *y = &g->m->tensors[n->out];
    p->r0 = 0;
    p->r1 = y->ndim == 3 ? y->dims[0] : 1;
    p->c0 = 0;
    p->c1 = y->ndim == 3 ? y->dims[1] : 1;
}

/* plain: one node on whole tensors */
static void seg_plain(const gfx *g, int k, segres *r, emitter *e)
{
    memset(r, 0, sizeof *r);
    r->ok = 1;
    r->peak = live_whole(g, k, k + 1, NULL) + scr(g, k);
    r->steps = 1;
    r->tiles_h = r->tiles_w = 1;
    if (!e || tml_plan_is_alias(g->m, k)) return; /* aliases share their input's bytes: nothing to run */
    whole_step(g, k, e);
}

/* in-place: which input's bytes the output of node k may take (-1: none) */
static int inplace_input(const gfx *g, int k)
{
    const tml_model *m = g->m;
    const tml_node *n = &m->nodes[k];
    const tml_tensor *y = &m->tensors[n->out];
    int cand[2] = {-1, -1}, nc = 0;
    switch (n->op) {
    case TML_OP_CONV2D:
    case TML_OP_DEPTHWISE_CONV2D:
    case TML_OP_MAXPOOL:
    case TML_OP_AVGPOOL:
        if (!is3d(y) || !is3d(&m->tensors[n->in[0]])) return -1;
        cand[nc++] = n->in[0];
        break;
    case TML_OP_RELU:
    case TML_OP_RELU6: cand[nc++] = n->in[0]; break;
    case TML_OP_ADD:
        if (n->in[0] == n->in[1]) return -1;
        cand[nc++] = n->in[0];
        cand[nc++] = n->in[1];
        break;
    default: return -1;
    }
    for (int q = 0; q < nc; q++) {
        int t = cand[q];
        if (m->tensors[t].kind != TML_TENSOR_ACT) continue;
        int r = g->root[t];
        if (g->last[r] != k || r == g->root[n->out]) continue;
        if (n->op == TML_OP_ADD && tensor_bytes(m, t) != tensor_bytes(m, n->out)) continue;
        return t;
    }
    return -1;
}

/* Emits one RUN of node k over output rows [r0, r1) into `out` (NULL e: counts only). */
static int ip_run(emitter *e, int k, int r0, int r1, int ow, int w, int in_buf, tml_sched_view out)
{
    if (!e) return 0;
    tml_sched_step *p = add_step(e);
    if (!p) return -1;
    p->kind = TML_STEP_RUN;
    p->node = k;
    p->r0 = r0;
    p->r1 = r1;
    p->c0 = 0;
    p->c1 = ow;
    p->in[0] = (tml_sched_view){in_buf, 0, 0, w, 0};
    p->out = out;
    return 0;
}

/* Emits the copy of output row y from its delay slot to its bytes. */
static int ip_flush(emitter *e, int k, int y, int D, int64_t orow, int delay_buf, int region_buf)
{
    if (!e) return 0;
    tml_sched_step *p = add_step(e);
    if (!p) return -1;
    p->kind = TML_STEP_COPY;
    p->node = k;
    p->src = delay_buf;
    p->dst = region_buf;
    p->src_off = (int64_t)(y % D) * orow;
    p->dst_off = (int64_t)y * orow;
    p->rows = 1;
    p->len = orow;
    return 0;
}

/* Rows an in-place window layer keeps in a delay buffer in one order (dir +1
 * forward, -1 backward), and optionally its steps (D: the slots, known from
 * a first call without e). The output of row y goes straight to its bytes
 * when they hold no input row that it or the rows after it (in this order)
 * read; otherwise it waits in slot y % D until they do not. Returns the
 * slots needed (-1 when out of memory). */
static int inplace_rows(const gfx *g, int k, int dir, emitter *e, int D, int delay_buf, int region_buf, int64_t *steps)
{
    const tml_model *m = g->m;
    const tml_node *n = &m->nodes[k];
    geo G;
    node_geo(m, n, &G);
    int64_t irow = row_bytes(m, n->in[0]), orow = row_bytes(m, n->out);
    int OH = G.OH, need_slots = 0, npend = 0;
    int64_t nsteps = 0;
    tml_sched_view region = {region_buf, 0, 0, G.OW, 0};
    if (dir > 0) {
        int next = 0; /* rows < next are in their bytes */
        for (int y = 0; y < OH;) {
            int lo, hi;
            rows_in(&G, y, OH, &lo, &hi); /* rows y.. read input rows >= lo */
            int b = y;
            while (npend == 0 && b < OH && (int64_t)(b + 1) * orow <= (int64_t)lo * irow) b++;
            if (b > y) {
                if (ip_run(e, k, y, b, G.OW, G.W, region_buf, region)) return -1;
                nsteps++;
                y = next = b;
                continue;
            }
            tml_sched_view slot = {delay_buf, D ? y - y % D : 0, 0, G.OW, 0};
            if (ip_run(e, k, y, y + 1, G.OW, G.W, region_buf, slot)) return -1;
            nsteps++;
            if (++npend > need_slots) need_slots = npend;
            y++;
            int need = OH; /* first input row the rows still to run read */
            if (y < OH) rows_in(&G, y, OH, &need, &hi);
            while (npend > 0 && (y == OH || (int64_t)(next + 1) * orow <= (int64_t)need * irow)) {
                if (ip_flush(e, k, next, D, orow, delay_buf, region_buf)) return -1;
                nsteps++;
                next++;
                npend--;
            }
        }
    } else {
        int next = OH - 1; /* rows > next are in their bytes */
        for (int y = OH - 1; y >= 0;) {
            int lo, hi;
            rows_in(&G, 0, y + 1, &lo, &hi); /* rows ..y read input rows < hi */
            int a = y + 1;
            while (npend == 0 && a > 0 && (int64_t)(a - 1) * orow >= (int64_t)hi * irow) a--;
            if (a <= y) {
                if (ip_run(e, k, a, y + 1, G.OW, G.W, region_buf, region)) return -1;
                nsteps++;
                y = next = a - 1;
                continue;
            }
            tml_sched_view slot = {delay_buf, D ? y - y % D : 0, 0, G.OW, 0};
            if (ip_run(e, k, y, y + 1, G.OW, G.W, region_buf, slot)) return -1;
            nsteps++;
            if (++npend > need_slots) need_slots = npend;
            y--;
            int need = 0; /* input rows [0, need) are still to be read */
            if (y >= 0) rows_in(&G, 0, y + 1, &lo, &need);
            while (npend > 0 && (y < 0 || (int64_t)next * orow >= (int64_t)need * irow)) {
                if (ip_flush(e, k, next, D, orow, delay_buf, region_buf)) return -1;
                nsteps++;
                next--;
                npend--;
            }
        }
    }
    *steps = nsteps;
    return need_slots;
}

/* in-place: node k writes over its dying input */
static void seg_inplace(const gfx *g, int k, segres *r, emitter *e)
{
    memset(r, 0, sizeof *r);
    const tml_model *m = g->m;
    const tml_node *n = &m->nodes[k];
    int x = inplace_input(g, k);
    if (x < 0) return;
    int rx = g->root[x], ry = g->root[n->out];
    int64_t bx = g->bytes[rx], by = g->bytes[ry];
    int64_t region = bx > by ? bx : by;
    int D = 0, dir = 1;
    int64_t steps = 1;
    int window = n->op != TML_OP_ADD && n->op != TML_OP_RELU && n->op != TML_OP_RELU6;
    if (window) {
        int64_t sf = 0, sb = 0;
        int df = inplace_rows(g, k, 1, NULL, 0, -1, -1, &sf);
        int db = inplace_rows(g, k, -1, NULL, 0, -1, -1, &sb);
        if (df < 0 || db < 0) return;
        geo G;
        node_geo(m, n, &G);
        if (db < df || (db == df && sb < sf)) {
            dir = -1;
            D = db;
            steps = sb;
        } else {
            D = df;
            steps = sf;
        }
        if (D >= G.OH) return; /* no better than a second tensor */
    }
    int64_t dbytes = D ? al((int64_t)D * row_bytes(m, n->out)) : 0;
    r->ok = 1;
    r->peak = live_whole(g, k, k + 1, NULL) - bx - by + region + dbytes + scr(g, k);
    r->steps = steps;
    r->tiles_h = r->tiles_w = 1;
    if (!e) return;
    /* the output's buffer takes the input's offset */
    int bxid = e->tbuf[rx], byid = e->tbuf[ry];
    e->s->buffers[byid].group = e->s->buffers[bxid].group;
    if (!window) {
        whole_step(g, k, e);
        return;
    }
    int dbuf = -1;
    if (D) dbuf = add_buf(e, TML_SBUF_DELAY, n->out, (int64_t)D * row_bytes(m, n->out), k, k);
    int sb = scr(g, k) ? add_buf(e, TML_SBUF_SCRATCH, n->out, g->scratch[k], k, k) : -1;
    if (e->oom) return;
    int first = e->s->n_steps;
    int64_t st2 = 0;
    if (inplace_rows(g, k, dir, e, D, dbuf, byid, &st2) < 0) return;
    /* the input the region steps read is the input tensor (the same bytes) */
    for (int q = first; q < e->s->n_steps; q++)
        if (e->s->steps[q].kind == TML_STEP_RUN) {
            e->s->steps[q].in[0] = whole_view(g, e, x);
            e->s->steps[q].scratch = sb;
        }
}

/* A node of a stream segment. */
typedef struct snode {
    int node;
    geo G;
    int nin;
    int in_t[2];
    int in_k[2];    /* producer of each input inside the segment (local index) or -1 */
    int out_rows;   /* rows it produces (global average pool: rows it sums) */
    int internal;   /* its output never exists whole */
    int done, lo;   /* rows [lo, done) of its output are held */
    int cap;        /* most rows held at once */
    int ring;       /* ring buffer (fixed rings) */
    int64_t rowb;
    int64_t base;   /* zone: byte offset of row lo (when rows are held) */
    int nrd;        /* readers of its output inside the segment (local indices) */
    int rd[MAX_SEG];
    int rd_in[MAX_SEG]; /* which of the reader's inputs it is */
} snode;

/* Two layouts of the held rows: fixed rings (one buffer per tensor, sized for
 * its most rows; dropping rows moves the rest to the front) or one zone
 * shared by all (a tensor's rows stay contiguous; dropping rows moves
 * nothing, the block just starts later; a tensor that must grow into bytes
 * another holds moves that one, or itself, the cheapest way). */
typedef struct sstate {
    const gfx *g;
    int i, j, L;
    snode *s;
    emitter *e;
    int acc;        /* ACC buffer of a final global average pool */
    int scratch;    /* the segment's kernel scratch buffer (one for all its nodes) */
    int zone;       /* 1: zone layout */
    int zbuf;       /* its buffer when emitting */
    int64_t zcap;   /* its bytes */
    int64_t held, held_max; /* bytes of rows held now / at most */
    int64_t steps, moved;
    int bad;
} sstate;

static int64_t held_bytes(const snode *q) { return (int64_t)(q->done - q->lo) * q->rowb; }

static tml_sched_view sview(const sstate *S, int t)
{
    const gfx *g = S->g;
    int p = g->prod[t];
    if (p >= S->i && p < S->j && S->s[p - S->i].internal) {
        const snode *q = &S->s[p - S->i];
        tml_sched_view v = {S->zone ? S->zbuf : q->ring, q->lo, 0, g->m->tensors[t].dims[1], S->zone ? q->base : 0};
        return v;
    }
    return whole_view(g, S->e, t);
}

/* A move of len bytes inside buffer buf (a memmove: the ranges may overlap),
 * emitted when emitting, counted always. */
static void s_copy(sstate *S, int node, int buf, int64_t src_off, int64_t dst_off, int64_t len)
{
    if (S->e) {
        tml_sched_step *p = add_step(S->e);
        if (!p) {
            S->bad = 1;
            return;
        }
        p->kind = TML_STEP_COPY;
        p->node = node;
        p->src = p->dst = buf;
        p->src_off = src_off;
        p->dst_off = dst_off;
        p->rows = 1;
        p->len = len;
    }
    S->steps++;
    S->moved += len;
}

/* Moves the held rows of local node k to byte `to` of the zone. */
static void z_move(sstate *S, int k, int64_t to)
{
    snode *q = &S->s[k];
    int64_t len = held_bytes(q);
    if (to == q->base || len == 0) {
        q->base = to;
        return;
    }
    s_copy(S, q->node, S->zbuf, q->base, to, len);
    q->base = to;
}

/* Blocks of held rows sorted by offset (local node indices), count returned. */
static int z_blocks(const sstate *S, int *ord)
{
    int n = 0;
    for (int k = 0; k < S->L; k++)
        if (S->s[k].internal && S->s[k].done > S->s[k].lo) ord[n++] = k;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && S->s[ord[b]].base < S->s[ord[b - 1]].base; b--) {
            int t = ord[b];
            ord[b] = ord[b - 1];
            ord[b - 1] = t;
        }
    return n;
}

/* Packs every block to the bottom of the zone in offset order (each moves
 * down into bytes already vacated) and starts the empty block `k` after them. */
static void z_compact(sstate *S, int k)
{
    int ord[MAX_SEG];
    int n = z_blocks(S, ord);
    int64_t at = 0;
    for (int a = 0; a < n; a++) {
        z_move(S, ord[a], at);
        at += held_bytes(&S->s[ord[a]]);
    }
    S->s[k].base = at;
}

/* Moves block ord[pos] and as many below it as needed down, closing the gaps
 * under them, so that ord[pos] ends `need` bytes lower (lowest first: each
 * moves into bytes already vacated). */
static void z_shift_down(sstate *S, const int *ord, int pos, int64_t need)
{
    if (need <= 0) return;
    int64_t shift[MAX_SEG];
    int first = pos;
    for (int a = pos; a >= 0 && need > 0; a--) {
        shift[a] = need;
        first = a;
        int64_t bottom = a > 0 ? S->s[ord[a - 1]].base + held_bytes(&S->s[ord[a - 1]]) : 0;
        need -= S->s[ord[a]].base - bottom;
    }
    for (int a = first; a <= pos; a++) z_move(S, ord[a], S->s[ord[a]].base - shift[a]);
}

/* Makes room for `r` more bytes at the end of local node k's rows. */
static void z_grow(sstate *S, int k, int64_t r)
{
    snode *q = &S->s[k];
    int ord[MAX_SEG];
    int n = z_blocks(S, ord);
    if (held_bytes(q) == 0) {
        /* a new block: the lowest gap that fits */
        int64_t at = 0;
        for (int a = 0; a <= n; a++) {
            int64_t next = a < n ? S->s[ord[a]].base : S->zcap;
            if (next - at >= r) {
                q->base = at;
                return;
            }
            if (a < n) at = S->s[ord[a]].base + held_bytes(&S->s[ord[a]]);
        }
        z_compact(S, k);
        return;
    }
    int pos = 0;
    while (ord[pos] != k) pos++;
    int64_t end = q->base + held_bytes(q);
    int64_t gap = (pos + 1 < n ? S->s[ord[pos + 1]].base : S->zcap) - end;
    if (gap >= r) return;
    int64_t need = r - gap;
    /* A: push the blocks above up; B: move k (and those below) down; D: move k to a gap */
    int64_t costA = -1, costB = -1, costD = -1, dAt = -1;
    {
        int64_t nd = need, c = 0;
        for (int a = pos + 1; a < n && nd > 0; a++) {
            c += held_bytes(&S->s[ord[a]]);
            int64_t top = a + 1 < n ? S->s[ord[a + 1]].base : S->zcap;
            nd -= top - (S->s[ord[a]].base + held_bytes(&S->s[ord[a]]));
        }
        if (nd <= 0) costA = c;
    }
    {
        int64_t nd = need, c = 0;
        for (int a = pos; a >= 0 && nd > 0; a--) {
            c += held_bytes(&S->s[ord[a]]);
            int64_t bottom = a > 0 ? S->s[ord[a - 1]].base + held_bytes(&S->s[ord[a - 1]]) : 0;
            nd -= S->s[ord[a]].base - bottom;
        }
        if (nd <= 0) costB = c;
    }
    {
        int64_t want = held_bytes(q) + r, at = 0;
        for (int a = 0; a <= n; a++) {
            int64_t next = a < n ? S->s[ord[a]].base : S->zcap;
            if (a < n && ord[a] == k) continue;
            if (next - at >= want) {
                dAt = at;
                costD = held_bytes(q);
                break;
            }
            if (a < n) at = S->s[ord[a]].base + held_bytes(&S->s[ord[a]]);
        }
    }
    if (costA >= 0 && (costB < 0 || costA <= costB) && (costD < 0 || costA <= costD)) {
        /* shift the chain above k up, topmost first */
        int64_t shift[MAX_SEG];
        int last = pos;
        int64_t nd = need;
        for (int a = pos + 1; a < n && nd > 0; a++) {
            shift[a] = nd;
            last = a;
            int64_t top = a + 1 < n ? S->s[ord[a + 1]].base : S->zcap;
            nd -= top - (S->s[ord[a]].base + held_bytes(&S->s[ord[a]]));
        }
        for (int a = last; a > pos; a--) z_move(S, ord[a], S->s[ord[a]].base + shift[a]);
    } else if (costB >= 0 && (costD < 0 || costB <= costD)) {
        z_shift_down(S, ord, pos, need);
    } else if (costD >= 0) {
        z_move(S, k, dAt);
    } else {
        /* free bytes on both sides: pack the blocks above k against the top
         * (topmost first), then move k and those below down by what is
         * still missing; the zone always has room (held + r <= zcap) */
        int64_t top = S->zcap;
        for (int a = n - 1; a > pos; a--) {
            top -= held_bytes(&S->s[ord[a]]);
            z_move(S, ord[a], top);
        }
        z_shift_down(S, ord, pos, r - (top - end));
    }
}

static void s_release(sstate *S, int kp)
{
    snode *p = &S->s[kp];
    if (!p->internal) return;
    int newlo = p->done;
    for (int e = 0; e < p->nrd; e++) {
        const snode *q = &S->s[p->rd[e]];
        if (q->done >= q->out_rows) continue;
        int lo, hi;
        rows_in(&q->G, q->done, q->done + 1, &lo, &hi);
        if (lo < newlo) newlo = lo;
    }
    if (newlo <= p->lo) return;
    S->held -= (int64_t)(newlo - p->lo) * p->rowb;
    if (S->zone) {
        p->base += (int64_t)(newlo - p->lo) * p->rowb; /* the block starts later; nothing moves */
    } else if (p->done > newlo) {
        s_copy(S, p->node, p->ring, (int64_t)(newlo - p->lo) * p->rowb, 0, (int64_t)(p->done - newlo) * p->rowb);
        if (S->bad) return;
    }
    p->lo = newlo;
}

/* Brings node k to e output rows, one row at a time (each row pulls only the
 * input rows it reads, so no tensor holds more than its reader's window). */
static void s_demand(sstate *S, int k, int e)
{
    snode *n = &S->s[k];
    while (n->done < e && !S->bad) {
        int r = n->done;
        for (int a = 0; a < n->nin; a++) {
            if (n->in_k[a] < 0) continue;
            int lo, hi;
            rows_in(&n->G, r, r + 1, &lo, &hi);
            s_demand(S, n->in_k[a], hi);
        }
        if (n->internal && S->zone) z_grow(S, k, n->rowb);
        if (S->e && !S->bad) {
            tml_sched_step *p = add_step(S->e);
            if (!p) {
                S->bad = 1;
                return;
            }
            const tml_node *nd = &S->g->m->nodes[n->node];
            p->kind = TML_STEP_RUN;
            p->node = n->node;
            p->r0 = r;
            p->r1 = r + 1;
            p->c0 = 0;
            p->c1 = n->G.OW;
            if (scr(S->g, n->node)) p->scratch = S->scratch;
            for (int a = 0; a < 2 && a < nd->n_in; a++)
                if (nd->in[a] >= 0 && S->g->m->tensors[nd->in[a]].kind == TML_TENSOR_ACT) p->in[a] = sview(S, nd->in[a]);
            if (nd->op == TML_OP_GLOBAL_AVGPOOL) {
                p->out = whole_view(S->g, S->e, nd->out);
                p->acc = S->acc;
                if (r == 0) p->flags |= TML_STEP_FIRST;
                if (r + 1 == n->out_rows) p->flags |= TML_STEP_LAST;
            } else {
                p->out = sview(S, nd->out);
            }
        }
        S->steps++;
        n->done = r + 1;
        if (n->internal) {
            S->held += n->rowb;
            if (S->held > S->held_max) S->held_max = S->held;
            if (n->done - n->lo > n->cap) n->cap = n->done - n->lo;
        }
        s_release(S, k);
        for (int a = 0; a < n->nin; a++)
            if (n->in_k[a] >= 0) s_release(S, n->in_k[a]);
    }
}

static int s_setup(const gfx *g, int i, int j, sstate *S, snode *s)
{
    const tml_model *m = g->m;
    memset(S, 0, sizeof *S);
    S->g = g;
    S->i = i;
    S->j = j;
    S->L = j - i;
    S->s = s;
    S->acc = S->zbuf = S->scratch = -1;
    int any = 0;
    for (int k = 0; k < S->L; k++) {
        snode *q = &s[k];
        memset(q, 0, sizeof *q);
        q->node = i + k;
        q->ring = -1;
        const tml_node *n = &m->nodes[i + k];
        if (!streamable(m, i + k)) return 0;
        node_geo(m, n, &q->G);
        int in[TML_MAX_NODE_INPUTS];
        q->nin = act_inputs(m, n, in);
        if (q->nin > 2) return 0;
        for (int a = 0; a < q->nin; a++) {
            q->in_t[a] = in[a];
            int p = g->prod[in[a]];
            q->in_k[a] = p >= i && p < j ? p - i : -1;
            if (q->in_k[a] >= 0) {
                snode *pr = &s[q->in_k[a]];
                pr->rd_in[pr->nrd] = a;
                pr->rd[pr->nrd++] = k;
            }
        }
        q->out_rows = q->G.OH;
        int t = n->out;
        /* internal: every reader inside, not the model output, not read by an alias */
        int inside = g->readers[t] > 0 && !g->aliased[t] && g->root[t] == t && t != m->output &&
                     n->op != TML_OP_GLOBAL_AVGPOOL;
        if (inside) {
            int cnt = 0;
            for (int r = i + k + 1; r < j; r++) {
                int in2[TML_MAX_NODE_INPUTS];
                int na = act_inputs(m, &m->nodes[r], in2);
                for (int a = 0; a < na; a++) cnt += in2[a] == t;
            }
            inside = cnt == g->readers[t];
        }
        q->internal = inside;
        any |= inside;
        if (inside) q->rowb = row_bytes(m, t);
    }
    return any;
}

/* Runs the sinks (outputs that exist whole) to the end, the least advanced first. */
static void s_run(sstate *S)
{
    snode *s = S->s;
    for (;;) {
        int best = -1;
        for (int k = 0; k < S->L; k++) {
            if (s[k].internal || s[k].done >= s[k].out_rows) continue;
            if (best < 0 || (int64_t)s[k].done * s[best].out_rows < (int64_t)s[best].done * s[k].out_rows) best = k;
        }
        if (best < 0 || S->bad) break;
        s_demand(S, best, s[best].done + 1);
    }
}

/* stream: rows through [i, j); tensors used only inside never exist whole.
 * zone < 0: fixed rings; zone >= 0: one zone of the least bytes that ever
 * hold rows at once plus `zone` bytes of slack (fewer moves). */
static void seg_stream(const gfx *g, int i, int j, int64_t zone, segres *r, emitter *e)
{
    memset(r, 0, sizeof *r);
    int L = j - i;
    if (L > MAX_SEG) return;
    snode s[MAX_SEG];
    uint8_t internal[MAX_SEG];
    sstate S;
    if (!s_setup(g, i, j, &S, s)) return;
    int64_t acc_bytes = 0;
    int ngap = 0;
    for (int k = 0; k < L; k++)
        if (g->m->nodes[i + k].op == TML_OP_GLOBAL_AVGPOOL) {
            acc_bytes += al(4 * (int64_t)s[k].G.C);
            ngap++;
        }
    if (ngap > 1) return; /* one ACC buffer per segment */
    /* first pass: rows held per tensor and in all */
    s_run(&S);
    int caps[MAX_SEG];
    int64_t rings = 0, held_max = S.held_max;
    for (int k = 0; k < L; k++) {
        internal[k] = (uint8_t)s[k].internal;
        caps[k] = s[k].cap;
        if (s[k].internal) rings += al((int64_t)s[k].cap * s[k].rowb);
    }
    int64_t zcap = al(held_max + (zone > 0 ? zone : 0));
    int64_t inner = zone < 0 ? rings : zcap;
    if (zone >= 0 && zcap >= rings) return; /* no better than fixed rings */
    int64_t steps = S.steps;
    if (zone >= 0) {
        /* second pass: the zone's moves */
        s_setup(g, i, j, &S, s);
        S.zone = 1;
        S.zcap = zcap;
        s_run(&S);
        steps = S.steps;
    }
    int64_t scratch = 0; /* the nodes interleave: one buffer, the largest */
    for (int k = i; k < j; k++)
        if (scr(g, k) > scratch) scratch = scr(g, k);
    r->ok = 1;
    r->peak = live_whole(g, i, j, internal) + inner + acc_bytes + scratch;
    r->steps = steps;
    r->tiles_h = r->tiles_w = 1;
    if (!e) return;
    /* emit with the buffers */
    s_setup(g, i, j, &S, s);
    S.e = e;
    if (zone >= 0) {
        S.zone = 1;
        S.zcap = zcap;
        S.zbuf = add_buf(e, TML_SBUF_ZONE, -1, zcap, i, j - 1);
    } else {
        for (int k = 0; k < L; k++)
            if (s[k].internal) s[k].ring = add_buf(e, TML_SBUF_RING, g->m->nodes[i + k].out, (int64_t)caps[k] * s[k].rowb, i, j - 1);
    }
    for (int k = 0; k < L; k++)
        if (g->m->nodes[i + k].op == TML_OP_GLOBAL_AVGPOOL)
            S.acc = add_buf(e, TML_SBUF_ACC, g->m->nodes[i + k].out, 4 * (int64_t)s[k].G.C, i, j - 1);
    if (scratch) {
        int64_t raw = 0;
        for (int k = i; k < j; k++)
            if (g->scratch[k] > raw) raw = g->scratch[k];
        S.scratch = add_buf(e, TML_SBUF_SCRATCH, -1, raw, i, j - 1);
    }
    if (e->oom) return;
    s_run(&S);
    if (S.bad) e->oom = 1;
}

/* patch: a chain [i, j) tile by tile */
typedef struct rect {
    int r0, r1, c0, c1;
} rect;

static int chain_ok(const gfx *g, int i, int j)
{
    const tml_model *m = g->m;
    for (int k = i; k < j; k++) {
        if (!patchable(m, k)) return 0;
        const tml_node *n = &m->nodes[k];
        if (n->op == TML_OP_GLOBAL_AVGPOOL && k != j - 1) return 0;
        if (k == i) continue;
        int t = m->nodes[k - 1].out;
        if (n->in[0] != t || g->readers[t] != 1 || g->aliased[t] || t == m->output || g->root[t] != t) return 0;
    }
    return m->nodes[i].op != TML_OP_GLOBAL_AVGPOOL;
}

static void seg_patch(const gfx *g, int i, int j, int gh, int gw, segres *r, emitter *e)
{
    memset(r, 0, sizeof *r);
    const tml_model *m = g->m;
    int L = j - i;
    int gap = m->nodes[j - 1].op == TML_OP_GLOBAL_AVGPOOL;
    int kl = gap ? L - 2 : L - 1; /* local index of the node whose output the tiles cover */
    geo G[MAX_SEG];
    for (int k = 0; k < L; k++) node_geo(m, &m->nodes[i + k], &G[k]);
    int OH = G[kl].OH, OW = G[kl].OW;
    if (gh > OH || gw > OW || (gh == 1 && gw == 1)) return;
    int X = m->nodes[i].in[0], Y = m->nodes[j - 1].out;
    int64_t tile_max[MAX_SEG] = {0}; /* per local node: largest output tile (bytes) */
    int64_t gather_max = 0, extra = 0;
    int need_gather = 0, need_scatter = 0;
    int64_t esize = (int64_t)tml_dtype_size(m->tensors[X].dtype);
    rect rc[MAX_SEG + 1], gin = {0, 0, 0, 0};
    /* pass 1 (and pass 2 when emitting): every tile's rectangles */
    int bufs[MAX_SEG], gbuf = -1, sbuf = -1, abuf = -1, scb[MAX_SEG];
    for (int pass = 0; pass < (e ? 2 : 1); pass++) {
        if (pass == 1) {
            if (need_gather) gbuf = add_buf(e, TML_SBUF_TILE, X, gather_max, i, i);
            for (int k = 0; k < kl; k++) bufs[k] = add_buf(e, TML_SBUF_TILE, m->nodes[i + k].out, tile_max[k], i + k, i + k + 1);
            if (gap) bufs[kl] = add_buf(e, TML_SBUF_TILE, m->nodes[i + kl].out, tile_max[kl], i + kl, i + kl + 1);
            if (!gap && need_scatter) sbuf = add_buf(e, TML_SBUF_TILE, Y, tile_max[kl], j - 1, j - 1);
            if (gap) abuf = add_buf(e, TML_SBUF_ACC, Y, 4 * (int64_t)G[L - 1].C, i, j - 1);
            for (int k = 0; k < L; k++)
                scb[k] = scr(g, i + k) ? add_buf(e, TML_SBUF_SCRATCH, m->nodes[i + k].out, g->scratch[i + k], i + k, i + k) : -1;
            if (e->oom) return;
        }
        int64_t steps = 0;
        for (int ty = 0; ty < gh; ty++)
            for (int tx = 0; tx < gw; tx++) {
                rect t = {(int)((int64_t)ty * OH / gh), (int)((int64_t)(ty + 1) * OH / gh), (int)((int64_t)tx * OW / gw),
                          (int)((int64_t)(tx + 1) * OW / gw)};
                rc[kl + 1] = t; /* what the global average pool sums */
                rc[kl] = t;
                for (int k = kl; k >= 0; k--) {
                    rect in;
                    rows_in(&G[k], rc[k].r0, rc[k].r1, &in.r0, &in.r1);
                    cols_in(&G[k], rc[k].c0, rc[k].c1, &in.c0, &in.c1);
                    if (k > 0) rc[k - 1] = in;
                    else gin = in; /* what node 0 reads */
                }
                int full_in = gin.c0 == 0 && gin.c1 == G[0].W;
                if (pass == 0) {
                    if (!full_in) {
                        need_gather = 1;
                        int64_t b = (int64_t)(gin.r1 - gin.r0) * (gin.c1 - gin.c0) * G[0].C * esize;
                        if (b > gather_max) gather_max = b;
                    }
                    for (int k = 0; k <= kl; k++) {
                        int64_t area = (int64_t)(rc[k].r1 - rc[k].r0) * (rc[k].c1 - rc[k].c0);
                        int64_t b = area * G[k].OC * (int64_t)tml_dtype_size(m->tensors[m->nodes[i + k].out].dtype);
                        if (b > tile_max[k]) tile_max[k] = b;
                        int64_t per = tml_node_macs(m, &m->nodes[i + k]) / ((int64_t)G[k].OH * G[k].OW);
                        extra += area * per;
                    }
                    if (!gap && !(t.c0 == 0 && t.c1 == OW)) need_scatter = 1;
                }
                steps += (full_in ? 0 : 1) + L + (!gap && !(t.c0 == 0 && t.c1 == OW) ? 1 : 0);
                if (pass == 0) continue;
                /* emit the tile */
                tml_sched_view src = whole_view(g, e, X);
                if (!full_in) {
                    tml_sched_step *p = add_step(e);
                    if (!p) return;
                    int64_t pb = (int64_t)G[0].C * esize;
                    p->kind = TML_STEP_COPY;
                    p->node = i;
                    p->src = e->tbuf[g->root[X]];
                    p->dst = gbuf;
                    p->src_off = ((int64_t)gin.r0 * G[0].W + gin.c0) * pb;
                    p->src_stride = (int64_t)G[0].W * pb;
                    p->dst_off = 0;
                    p->dst_stride = (int64_t)(gin.c1 - gin.c0) * pb;
                    p->len = p->dst_stride;
                    p->rows = gin.r1 - gin.r0;
                    src = (tml_sched_view){gbuf, gin.r0, gin.c0, gin.c1 - gin.c0, 0};
                }
                for (int k = 0; k < L; k++) {
                    tml_sched_step *p = add_step(e);
                    if (!p) return;
                    p->kind = TML_STEP_RUN;
                    p->node = i + k;
                    p->in[0] = src;
                    p->scratch = scb[k];
                    if (gap && k == L - 1) {
                        p->r0 = t.r0;
                        p->r1 = t.r1;
                        p->c0 = t.c0;
                        p->c1 = t.c1;
                        p->out = whole_view(g, e, Y);
                        p->acc = abuf;
                        if (ty == 0 && tx == 0) p->flags |= TML_STEP_FIRST;
                        if (ty == gh - 1 && tx == gw - 1) p->flags |= TML_STEP_LAST;
                        break;
                    }
                    p->r0 = rc[k].r0;
                    p->r1 = rc[k].r1;
                    p->c0 = rc[k].c0;
                    p->c1 = rc[k].c1;
                    tml_sched_view o;
                    if (k < kl || gap) o = (tml_sched_view){bufs[k], rc[k].r0, rc[k].c0, rc[k].c1 - rc[k].c0, 0};
                    else if (t.c0 == 0 && t.c1 == OW) o = whole_view(g, e, Y);
                    else o = (tml_sched_view){sbuf, rc[k].r0, rc[k].c0, rc[k].c1 - rc[k].c0, 0};
                    p->out = o;
                    src = o;
                }
                if (!gap && !(t.c0 == 0 && t.c1 == OW)) {
                    tml_sched_step *p = add_step(e);
                    if (!p) return;
                    int64_t pb = pix_bytes(m, Y);
                    p->kind = TML_STEP_COPY;
                    p->node = j - 1;
                    p->src = sbuf;
                    p->dst = e->tbuf[g->root[Y]];
                    p->src_off = 0;
                    p->src_stride = (int64_t)(t.c1 - t.c0) * pb;
                    p->dst_off = ((int64_t)t.r0 * OW + t.c0) * pb;
                    p->dst_stride = (int64_t)OW * pb;
                    p->len = p->src_stride;
                    p->rows = t.r1 - t.r0;
                }
            }
        if (pass == 0) {
            int64_t base = 0;
            for (int k = 0; k < L; k++) base += tml_node_macs(m, &m->nodes[i + k]);
            r->extra = extra - base;
            r->steps = steps;
        }
    }
    /* internal bytes: the most live at one node of the tile sequence */
    uint8_t internal[MAX_SEG] = {0};
    for (int k = 0; k < (gap ? L - 1 : L - 1); k++) internal[k] = 1;
    int64_t inner = 0;
    for (int k = 0; k < L; k++) {
        int64_t at = 0; /* buffers live at local time k */
        if (k == 0 && need_gather) at += al(gather_max);
        if (k < kl || (gap && k <= kl)) at += al(tile_max[k]); /* written at k */
        if (k >= 1 && (k - 1 < kl || (gap && k - 1 <= kl))) at += al(tile_max[k - 1]); /* read at k */
        if (k == L - 1 && !gap && need_scatter) at += al(tile_max[kl]);
        if (gap) at += al(4 * (int64_t)G[L - 1].C);
        at += scr(g, i + k);
        if (at > inner) inner = at;
    }
    r->ok = 1;
    r->peak = live_whole(g, i, j, internal) + inner;
    r->tiles_h = gh;
    r->tiles_w = gw;
}

/* ---- placement ----------------------------------------------------------------------------------------- */

static int overlap_t(const tml_sched_buffer *a, const tml_sched_buffer *b) { return !(a->start > b->end || b->start > a->end); }

typedef struct gitem {
    int group;
    int scratch; /* kernel scratch: placed after everything else */
    int64_t size;
} gitem;

static int by_gsize(const void *a, const void *b)
{
    const gitem *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->group - y->group;
}

static int by_gsize_scratch_last(const void *a, const void *b)
{
    const gitem *x = a, *y = b;
    if (x->scratch != y->scratch) return x->scratch - y->scratch;
    return by_gsize(a, b);
}

/* One greedy placement of the groups in the order of it[]: each at the
 * lowest offset that is 0 or the end of a placed buffer and free over every
 * member's lifetime. Returns the arena. */
static int64_t place_once(tml_schedule *s, const gitem *it, int ng, int *placed)
{
    int nb = s->n_buffers, np = 0; /* placed buffers, in placement order */
    int64_t total = 0;
    for (int gi = 0; gi < ng; gi++) {
        int gr = it[gi].group;
        int64_t best = -1;
        for (int c = -1; c < np; c++) {
            int64_t cand;
            if (c < 0)
                cand = 0;
            else {
                const tml_sched_buffer *pb = &s->buffers[placed[c]];
                int touch = 0;
                for (int q = 0; q < nb && !touch; q++)
                    if (s->buffers[q].group == gr && overlap_t(&s->buffers[q], pb)) touch = 1;
                if (!touch) continue;
                cand = pb->offset + al(pb->bytes);
            }
            if (best >= 0 && cand >= best) continue;
            int ok = 1;
            for (int q = 0; q < nb && ok; q++) {
                const tml_sched_buffer *mb = &s->buffers[q];
                if (mb->group != gr) continue;
                for (int c2 = 0; c2 < np && ok; c2++) {
                    const tml_sched_buffer *pb = &s->buffers[placed[c2]];
                    if (!overlap_t(mb, pb)) continue;
                    if (cand < pb->offset + al(pb->bytes) && pb->offset < cand + al(mb->bytes)) ok = 0;
                }
            }
            if (ok) best = cand;
        }
        for (int q = 0; q < nb; q++) {
            tml_sched_buffer *mb = &s->buffers[q];
            if (mb->group != gr) continue;
            mb->offset = best;
            placed[np++] = q;
            if (best + al(mb->bytes) > total) total = best + al(mb->bytes);
        }
    }
    return total;
}

/* Places the buffer groups (in-place chains share one offset) greedily by
 * decreasing size, twice: all together, and with kernel scratch last (into
 * what the data left free, as the exporter's layer-by-layer plan places its
 * patches); the smaller arena wins. */
static tml_status place(tml_schedule *s)
{
    int nb = s->n_buffers;
    gitem *it = malloc(sizeof *it * (size_t)(nb ? nb : 1));
    int *placed = malloc(sizeof(int) * (size_t)(nb ? nb : 1));
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(nb ? nb : 1));
    if (!it || !placed || !first) {
        free(it);
        free(placed);
        free(first);
        return tml_error(TML_ERR_NOMEM, "out of memory placing buffers");
    }
    int ng = 0;
    for (int b = 0; b < nb; b++) {
        /* resolve group chains to their representative */
        int gr = s->buffers[b].group;
        while (s->buffers[gr].group != gr) gr = s->buffers[gr].group;
        s->buffers[b].group = gr;
    }
    for (int b = 0; b < nb; b++) {
        if (s->buffers[b].group != b) continue;
        int64_t mx = 0;
        for (int q = 0; q < nb; q++)
            if (s->buffers[q].group == b && al(s->buffers[q].bytes) > mx) mx = al(s->buffers[q].bytes);
        it[ng].group = b;
        it[ng].scratch = s->buffers[b].kind == TML_SBUF_SCRATCH;
        it[ng].size = mx;
        ng++;
    }
    qsort(it, (size_t)ng, sizeof *it, by_gsize);
    int64_t a = place_once(s, it, ng, placed);
    for (int b = 0; b < nb; b++) first[b] = s->buffers[b].offset;
    qsort(it, (size_t)ng, sizeof *it, by_gsize_scratch_last);
    int64_t b2 = place_once(s, it, ng, placed);
    if (a <= b2)
        for (int b = 0; b < nb; b++) s->buffers[b].offset = first[b];
    s->arena_bytes = a <= b2 ? a : b2;
    free(it);
    free(placed);
    free(first);
    return TML_OK;
}

/* ---- the search ---------------------------------------------------------------------------------------------- */

typedef struct cand {
    tml_seg_kind kind;
    int i, j;
    int gh, gw; /* patch: the tile grid; stream: gh = the layout variant (stream_slack) */
    int64_t peak, extra, steps;
} cand;

typedef struct cands {
    cand *v;
    int n, cap;
} cands;

static int cand_push(cands *c, tml_seg_kind kind, int i, int j, const segres *r)
{
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 64;
        cand *nv = realloc(c->v, sizeof *nv * (size_t)nc);
        if (!nv) return -1;
        c->v = nv;
        c->cap = nc;
    }
    cand *p = &c->v[c->n++];
    p->kind = kind;
    p->i = i;
    p->j = j;
    p->gh = r->tiles_h;
    p->gw = r->tiles_w;
    p->peak = r->peak;
    p->extra = r->extra;
    p->steps = r->steps;
    return 0;
}

static tml_status enumerate(const gfx *g, const tml_sched_opts *o, cands *c)
{
    unsigned modes = o->modes ? o->modes : TML_SCHED_ALL;
    int maxt = o->max_tiles > 0 ? o->max_tiles : 8;
    segres r;
    for (int i = 0; i < g->nn; i++) {
        seg_plain(g, i, &r, NULL);
        if (cand_push(c, TML_SEG_PLAIN, i, i + 1, &r)) goto oom;
        if (!o->enabled) continue;
        if (modes & TML_SCHED_INPLACE) {
            seg_inplace(g, i, &r, NULL);
            if (r.ok && cand_push(c, TML_SEG_INPLACE, i, i + 1, &r)) goto oom;
        }
        if (modes & TML_SCHED_STREAM) {
            for (int j = i + 2; j <= g->nn && j - i <= MAX_SEG; j++) {
                if (!streamable(g->m, i) || !streamable(g->m, j - 1)) break;
                /* fixed rings, then zones with 0, 1 and 2 rows of slack */
                int64_t slack[4] = {-1, 0, 0, 0};
                int64_t rowmax = 0;
                for (int k = i; k < j; k++) {
                    const tml_tensor *y = &g->m->tensors[g->m->nodes[k].out];
                    if (y->ndim == 3 && row_bytes(g->m, g->m->nodes[k].out) > rowmax) rowmax = row_bytes(g->m, g->m->nodes[k].out);
                }
                slack[2] = rowmax;
                slack[3] = 2 * rowmax;
                for (int v = 0; v < 4; v++) {
                    seg_stream(g, i, j, slack[v], &r, NULL);
                    r.tiles_h = v; /* which variant (see emit_all) */
                    if (r.ok && cand_push(c, TML_SEG_STREAM, i, j, &r)) goto oom;
                }
            }
        }
        if (modes & TML_SCHED_PATCH) {
            for (int j = i + 2; j <= g->nn && j - i <= MAX_PATCH; j++) {
                if (!chain_ok(g, i, j)) break;
                for (int gh = 1; gh <= maxt; gh++)
                    for (int gw = 1; gw <= maxt; gw++) {
                        seg_patch(g, i, j, gh, gw, &r, NULL);
                        if (r.ok && cand_push(c, TML_SEG_PATCH, i, j, &r)) goto oom;
                    }
            }
        }
    }
    return TML_OK;
oom:
    return tml_error(TML_ERR_NOMEM, "out of memory scheduling");
}

typedef struct fent {
    int64_t peak, extra;
} fent;

/* Phase 1: the least peak over all segmentations with extra MACs <= budget. */
static tml_status least_peak(const gfx *g, const cands *c, int64_t budget, int64_t *peak)
{
    int nn = g->nn;
    fent **fr = calloc((size_t)nn + 1, sizeof *fr);
    int *fn = calloc((size_t)nn + 1, sizeof(int)), *fc = calloc((size_t)nn + 1, sizeof(int));
    tml_status st = TML_OK;
    if (!fr || !fn || !fc) {
        st = tml_error(TML_ERR_NOMEM, "out of memory scheduling");
        goto out;
    }
    fr[0] = malloc(sizeof(fent));
    if (!fr[0]) {
        st = tml_error(TML_ERR_NOMEM, "out of memory scheduling");
        goto out;
    }
    fr[0][0] = (fent){0, 0};
    fn[0] = fc[0] = 1;
    /* candidates are pushed in order of i; process by increasing end j */
    for (int j = 1; j <= nn; j++) {
        for (int ci = 0; ci < c->n; ci++) {
            const cand *cd = &c->v[ci];
            if (cd->j != j) continue;
            for (int q = 0; q < fn[cd->i]; q++) {
                fent ne = {fr[cd->i][q].peak > cd->peak ? fr[cd->i][q].peak : cd->peak, fr[cd->i][q].extra + cd->extra};
                if (ne.extra > budget) continue;
                int dom = 0;
                for (int z = 0; z < fn[j] && !dom; z++) dom = fr[j][z].peak <= ne.peak && fr[j][z].extra <= ne.extra;
                if (dom) continue;
                int w = 0;
                for (int z = 0; z < fn[j]; z++)
                    if (!(ne.peak <= fr[j][z].peak && ne.extra <= fr[j][z].extra)) fr[j][w++] = fr[j][z];
                fn[j] = w;
                if (fn[j] == fc[j]) {
                    int nc = fc[j] ? 2 * fc[j] : 8;
                    fent *nf = realloc(fr[j], sizeof *nf * (size_t)nc);
                    if (!nf) {
                        st = tml_error(TML_ERR_NOMEM, "out of memory scheduling");
                        goto out;
                    }
                    fr[j] = nf;
                    fc[j] = nc;
                }
                fr[j][fn[j]++] = ne;
            }
        }
    }
    *peak = -1;
    for (int z = 0; z < fn[nn]; z++)
        if (*peak < 0 || fr[nn][z].peak < *peak) *peak = fr[nn][z].peak;
out:
    if (fr)
        for (int j = 0; j <= nn; j++) free(fr[j]);
    free(fr);
    free(fn);
    free(fc);
    return st;
}

/* Phase 2: segments with peak <= bound, fewest extra MACs then steps.
 * chosen[] receives candidate indices in order; returns the count or -1. */
static int fewest_extra(const gfx *g, const cands *c, int64_t bound, int *chosen)
{
    int nn = g->nn;
    int64_t *bx = malloc(sizeof(int64_t) * (size_t)(nn + 1)), *bs = malloc(sizeof(int64_t) * (size_t)(nn + 1));
    int *from = malloc(sizeof(int) * (size_t)(nn + 1));
    int cnt = -1;
    if (!bx || !bs || !from) goto out;
    /* from[j] < 0: node j not reached yet (bx can be negative: a patch that
     * skips rows no later layer reads computes fewer MACs than layer by layer) */
    for (int j = 0; j <= nn; j++) {
        bx[j] = 0;
        bs[j] = 0;
        from[j] = -1;
    }
    for (int j = 1; j <= nn; j++)
        for (int ci = 0; ci < c->n; ci++) {
            const cand *cd = &c->v[ci];
            if (cd->j != j || cd->peak > bound || (cd->i > 0 && from[cd->i] < 0)) continue;
            int64_t x = bx[cd->i] + cd->extra, s = bs[cd->i] + cd->steps;
            if (from[j] < 0 || x < bx[j] || (x == bx[j] && s < bs[j])) {
                bx[j] = x;
                bs[j] = s;
                from[j] = ci;
            }
        }
    if (nn > 0 && from[nn] < 0) goto out;
    int n = 0;
    for (int j = nn; j > 0; j = c->v[from[j]].i) n++;
    cnt = n;
    for (int j = nn; j > 0; j = c->v[from[j]].i) chosen[--n] = from[j];
out:
    free(bx);
    free(bs);
    free(from);
    return cnt;
}

/* ---- emitting a chosen segmentation --------------------------------------------------------------------------- */

void tml_schedule_free(tml_schedule *s)
{
    if (!s) return;
    free(s->segments);
    free(s->buffers);
    free(s->steps);
    memset(s, 0, sizeof *s);
}

/* Which outputs of segment `cd` never exist whole (internal[k] for node cd->i + k). */
static void seg_internal(const gfx *g, const cand *cd, uint8_t *internal)
{
    int L = cd->j - cd->i;
    memset(internal, 0, (size_t)L);
    if (cd->kind == TML_SEG_STREAM) {
        snode s[MAX_SEG];
        sstate S;
        s_setup(g, cd->i, cd->j, &S, s);
        for (int k = 0; k < L; k++) internal[k] = (uint8_t)s[k].internal;
    } else if (cd->kind == TML_SEG_PATCH) {
        for (int k = 0; k < L - 1; k++) internal[k] = 1;
    }
}

/* The zone slack of a stream candidate (its variant is kept in gh). */
static int64_t stream_slack(const gfx *g, const cand *cd)
{
    if (cd->gh == 0) return -1;
    int64_t rowmax = 0;
    for (int k = cd->i; k < cd->j; k++) {
        const tml_tensor *y = &g->m->tensors[g->m->nodes[k].out];
        if (y->ndim == 3 && row_bytes(g->m, g->m->nodes[k].out) > rowmax) rowmax = row_bytes(g->m, g->m->nodes[k].out);
    }
    return cd->gh == 1 ? 0 : (cd->gh == 2 ? rowmax : 2 * rowmax);
}

static tml_status emit_all(const gfx *g, const cands *c, const int *chosen, int nseg, tml_schedule *s)
{
    const tml_model *m = g->m;
    emitter e = {0};
    e.s = s;
    tml_status st = TML_OK;
    int nn = g->nn;
    int *seg_of = malloc(sizeof(int) * (size_t)(nn ? nn : 1));
    uint8_t *inner = calloc((size_t)(g->nt ? g->nt : 1), 1);
    e.tbuf = malloc(sizeof(int) * (size_t)(g->nt ? g->nt : 1));
    s->segments = calloc((size_t)(nseg ? nseg : 1), sizeof *s->segments);
    if (!seg_of || !inner || !e.tbuf || !s->segments) {
        st = tml_error(TML_ERR_NOMEM, "out of memory scheduling");
        goto out;
    }
    s->n_segments = nseg;
    for (int q = 0; q < nseg; q++) {
        const cand *cd = &c->v[chosen[q]];
        for (int k = cd->i; k < cd->j; k++) seg_of[k] = q;
        uint8_t internal[MAX_SEG];
        seg_internal(g, cd, internal);
        for (int k = 0; k < cd->j - cd->i; k++)
            if (internal[k]) inner[m->nodes[cd->i + k].out] = 1;
    }
    /* whole tensors: from the segment of the producer to that of the last reader */
    for (int t = 0; t < g->nt; t++) {
        e.tbuf[t] = -1;
        if (g->root[t] != t || g->first[t] == -2 || inner[t]) continue;
        int a = g->first[t] < 0 ? -1 : c->v[chosen[seg_of[g->first[t]]]].i;
        int b = g->last[t] >= nn ? nn : c->v[chosen[seg_of[g->last[t]]]].j - 1;
        if (b < a) b = a;
        e.tbuf[t] = add_buf(&e, TML_SBUF_TENSOR, t, tensor_bytes(m, t), a, b);
    }
    if (e.oom) goto nomem;
    for (int q = 0; q < nseg; q++) {
        const cand *cd = &c->v[chosen[q]];
        int before = s->n_steps;
        segres r;
        switch (cd->kind) {
        case TML_SEG_PLAIN: seg_plain(g, cd->i, &r, &e); break;
        case TML_SEG_INPLACE: seg_inplace(g, cd->i, &r, &e); break;
        case TML_SEG_STREAM: seg_stream(g, cd->i, cd->j, stream_slack(g, cd), &r, &e); break;
        case TML_SEG_PATCH: seg_patch(g, cd->i, cd->j, cd->gh, cd->gw, &r, &e); break;
        }
        if (e.oom) goto nomem;
        tml_sched_segment *sg = &s->segments[q];
        sg->kind = cd->kind;
        sg->first = cd->i;
        sg->last = cd->j - 1;
        sg->tiles_h = cd->kind == TML_SEG_PATCH ? cd->gh : 1;
        sg->tiles_w = cd->kind == TML_SEG_PATCH ? cd->gw : 1;
        sg->peak_bytes = cd->peak;
        sg->extra_macs = cd->extra;
        sg->n_steps = s->n_steps - before;
        for (int k = cd->i; k < cd->j; k++) {
            sg->macs += tml_node_macs(m, &m->nodes[k]);
            if (g->live[k] > sg->bound_bytes) sg->bound_bytes = g->live[k];
        }
        s->extra_macs += cd->extra;
    }
    st = place(s);
    goto out;
nomem:
    st = tml_error(TML_ERR_NOMEM, "out of memory scheduling");
out:
    free(seg_of);
    free(inner);
    free(e.tbuf);
    return st;
}

static void reset(tml_schedule *s)
{
    tml_sched_opts o = s->opts;
    int64_t bound = s->bound_bytes, macs = s->macs;
    tml_schedule_free(s);
    s->opts = o;
    s->bound_bytes = bound;
    s->macs = macs;
    s->align = SA;
}

tml_status tml_schedule_model(const tml_model *m, const tml_sched_opts *opts, tml_schedule *s)
{
    memset(s, 0, sizeof *s);
    tml_sched_opts o;
    if (opts) o = *opts;
    else tml_sched_opts_default(&o);
    if (!(o.max_recompute >= 0.0) || o.ram_limit < 0)
        return tml_error(TML_ERR_INVALID, "schedule: max_recompute must be >= 0 and ram_limit >= 0");
    s->opts = o;
    s->align = SA;
    gfx g;
    tml_status st = gfx_build(m, &g);
    if (st) return st;
    g.scratch = o.node_scratch;
    st = tml_model_peak_activation_bytes(m, &s->bound_bytes);
    if (st) {
        gfx_free(&g);
        return st;
    }
    s->macs = g.macs;
    cands c = {0};
    int *chosen = malloc(sizeof(int) * (size_t)(g.nn ? g.nn : 1));
    if (!chosen) {
        st = tml_error(TML_ERR_NOMEM, "out of memory scheduling");
        goto out;
    }
    st = enumerate(&g, &o, &c);
    if (st) goto out;
    int64_t budget = (int64_t)(o.max_recompute * (double)g.macs);
    int64_t least = 0;
    int n = -1;
    if (o.enabled && o.ram_limit > 0) {
        int64_t bound = o.ram_limit;
        for (int iter = 0; iter < 8 && bound > 0; iter++) {
            n = fewest_extra(&g, &c, bound, chosen);
            if (n < 0) break;
            reset(s);
            if ((st = emit_all(&g, &c, chosen, n, s))) goto out;
            if (s->arena_bytes <= o.ram_limit) goto done;
            bound -= s->arena_bytes - o.ram_limit; /* fragmentation: ask the estimate for less */
        }
        /* nothing fits: the least RAM at any recomputation */
        if ((st = least_peak(&g, &c, INT64_MAX, &least))) goto out;
    } else {
        if ((st = least_peak(&g, &c, o.enabled ? budget : 0, &least))) goto out;
    }
    n = fewest_extra(&g, &c, least, chosen);
    if (n < 0) {
        st = tml_error(TML_ERR_INVALID, "schedule: internal error (no segmentation at the least peak)");
        goto out;
    }
    reset(s);
    if ((st = emit_all(&g, &c, chosen, n, s))) goto out;
    if (o.enabled) {
        /* placement may lose what the segments won: then run layer by layer */
        int64_t best = s->arena_bytes;
        for (int i = 0; i < g.nn; i++) {
            chosen[i] = -1;
            for (int ci = 0; ci < c.n && chosen[i] < 0; ci++)
                if (c.v[ci].kind == TML_SEG_PLAIN && c.v[ci].i == i) chosen[i] = ci;
        }
        tml_schedule plain = {0};
        plain.opts = s->opts;
        plain.align = SA;
        st = emit_all(&g, &c, chosen, g.nn, &plain);
        if (st) {
            tml_schedule_free(&plain);
            goto out;
        }
        if (plain.arena_bytes < best) {
            plain.bound_bytes = s->bound_bytes;
            plain.macs = s->macs;
            tml_schedule_free(s);
            *s = plain;
        } else {
            tml_schedule_free(&plain);
        }
    }
done:
    s->fits = !(o.enabled && o.ram_limit > 0) || s->arena_bytes <= o.ram_limit;
    st = TML_OK;
out:
    if (st) tml_schedule_free(s);
    free(chosen);
    free(c.v);
    gfx_free(&g);
    return st;
}

/* ---- checking ------------------------------------------------------------------------------------------------ */

static tml_status check_view(const tml_schedule *s, const tml_sched_step *p, const tml_sched_view *v, int64_t first,
                             int64_t last, const char *what)
{
    if (v->buf < 0 || v->buf >= s->n_buffers)
        return tml_error(TML_ERR_INVALID, "step %d: %s has no buffer", (int)(p - s->steps), what);
    const tml_sched_buffer *b = &s->buffers[v->buf];
    first += v->off;
    last += v->off;
    if (first < 0 || last > b->bytes)
        return tml_error(TML_ERR_INVALID, "step %d (node %d): %s bytes [%lld, %lld) outside buffer %d of %lld bytes",
                         (int)(p - s->steps), p->node, what, (long long)first, (long long)last, v->buf, (long long)b->bytes);
    return TML_OK;
}

tml_status tml_schedule_check(const tml_model *m, const tml_schedule *s)
{
    for (int a = 0; a < s->n_buffers; a++) {
        const tml_sched_buffer *x = &s->buffers[a];
        if (x->offset < 0 || x->offset % s->align || x->offset + x->bytes > s->arena_bytes)
            return tml_error(TML_ERR_INVALID, "buffer %d: offset %lld (+%lld) outside the arena of %lld", a,
                             (long long)x->offset, (long long)x->bytes, (long long)s->arena_bytes);
        for (int b = a + 1; b < s->n_buffers; b++) {
            const tml_sched_buffer *y = &s->buffers[b];
            if (x->group == y->group || !overlap_t(x, y)) continue;
            if (x->offset < y->offset + y->bytes && y->offset < x->offset + x->bytes)
                return tml_error(TML_ERR_INVALID, "buffers %d and %d overlap in bytes and lifetime", a, b);
        }
    }
    for (int q = 0; q < s->n_steps; q++) {
        const tml_sched_step *p = &s->steps[q];
        tml_status st;
        if (p->kind == TML_STEP_COPY) {
            if (p->rows < 1 || p->len < 0) return tml_error(TML_ERR_INVALID, "step %d: bad copy", q);
            tml_sched_view vs = {p->src, 0, 0, 0, 0}, vd = {p->dst, 0, 0, 0, 0};
            if ((st = check_view(s, p, &vs, p->src_off, p->src_off + (int64_t)(p->rows - 1) * p->src_stride + p->len, "copy source")) ||
                (st = check_view(s, p, &vd, p->dst_off, p->dst_off + (int64_t)(p->rows - 1) * p->dst_stride + p->len, "copy destination")))
                return st;
            continue;
        }
        const tml_node *n = &m->nodes[p->node];
        if (p->flags & TML_STEP_WHOLE) {
            if ((st = check_view(s, p, &p->out, 0, tensor_bytes(m, n->out), "output"))) return st;
            continue;
        }
        geo G;
        node_geo(m, n, &G);
        int64_t es = (int64_t)tml_dtype_size(m->tensors[n->out].dtype);
        if (p->r0 < 0 || p->r1 > G.OH || p->r0 >= p->r1 || p->c0 < 0 || p->c1 > G.OW || p->c0 >= p->c1)
            return tml_error(TML_ERR_INVALID, "step %d: region outside node %d's output", q, p->node);
        int lo, hi, cl, ch;
        rows_in(&G, p->r0, p->r1, &lo, &hi);
        cols_in(&G, p->c0, p->c1, &cl, &ch);
        for (int a = 0; a < 2; a++) {
            if (p->in[a].buf < 0) continue;
            const tml_sched_view *v = &p->in[a];
            if (hi > lo && (v->col0 != cl || v->cols < ch - cl || lo < v->row0))
                return tml_error(TML_ERR_INVALID, "step %d: input view of node %d does not start at its first column", q, p->node);
            /* in the input's own element size (a node may change it: a plain step) */
            int64_t pb = (int64_t)G.C * (int64_t)tml_dtype_size(m->tensors[n->in[a]].dtype);
            if (hi > lo &&
                (st = check_view(s, p, v, (int64_t)(lo - v->row0) * v->cols * pb, (int64_t)(hi - v->row0) * v->cols * pb, "input")))
                return st;
        }
        if (n->op == TML_OP_GLOBAL_AVGPOOL) continue;
        int64_t pb = (int64_t)G.OC * es;
        const tml_sched_view *v = &p->out;
        int dense = (p->c0 == v->col0 && p->c1 - p->c0 == v->cols) || p->r1 - p->r0 == 1;
        if (!dense || p->r0 < v->row0 || p->c0 < v->col0 || p->c1 > v->col0 + v->cols)
            return tml_error(TML_ERR_INVALID, "step %d: output region of node %d is not dense in its view", q, p->node);
        if ((st = check_view(s, p, v, ((int64_t)(p->r0 - v->row0) * v->cols + (p->c0 - v->col0)) * pb,
                             ((int64_t)(p->r1 - 1 - v->row0) * v->cols + (p->c1 - v->col0)) * pb, "output")))
            return st;
    }
    return TML_OK;
}
