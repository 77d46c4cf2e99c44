/*
 * plan.c - liveness-based activation buffer planning.
 *
 * Every activation gets an offset in one arena. Two activations may share
 * bytes when their lifetimes do not overlap: a tensor lives from the node that
 * produces it (the graph input from before the first node) to the last node
 * that reads it (the graph output to the end). Reshape and dropout do not move
 * data, so their output aliases their input's buffer and extends its lifetime.
 * Placement is greedy by decreasing size at the lowest offset that fits
 * (the classic offset-assignment heuristic used by TFLite Micro style planners).
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"

static int64_t align_up(int64_t v, int align) { return (v + align - 1) / align * align; }

int tml_plan_is_alias(const tml_model *m, int node)
{
    tml_op op = m->nodes[node].op;
    return op == TML_OP_RESHAPE || op == TML_OP_DROPOUT;
}

typedef struct item {
    int tensor;
    int64_t size;
    int start, end;
    int64_t offset;
} item;

static int by_size_desc(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->tensor - y->tensor; /* deterministic */
}

tml_status tml_plan_buffers(const tml_model *m, int batch, int separate, int align, int64_t *offsets, int *root,
                            int64_t *arena_bytes)
{
    int nt = m->n_tensors, nn = m->n_nodes;
    int *start = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    int *end = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    item *items = malloc(sizeof(item) * (size_t)(nt ? nt : 1));
    if (!start || !end || !items) {
        free(start);
        free(end);
        free(items);
        return tml_error(TML_ERR_NOMEM, "out of memory planning buffers");
    }
    for (int t = 0; t < nt; t++) {
        root[t] = m->tensors[t].kind == TML_TENSOR_ACT ? t : -1;
        start[t] = end[t] = -2;
        offsets[t] = -1;
    }
    if (!separate) {
        for (int i = 0; i < nn; i++) {
            const tml_node *n = &m->nodes[i];
            if (tml_plan_is_alias(m, i)) root[n->out] = root[n->in[0]];
        }
    }
    /* lifetimes per root, in node indices; graph input starts at -1 */
    start[root[m->input]] = -1;
    if (end[root[m->input]] < -1) end[root[m->input]] = -1;
    for (int i = 0; i < nn; i++) {
        const tml_node *n = &m->nodes[i];
        int r = root[n->out];
        if (start[r] == -2) start[r] = i;
        if (end[r] < i) end[r] = i;
        for (int j = 0; j < n->n_in; j++) {
            int t = n->in[j];
            if (t < 0 || root[t] < 0) continue;
            if (end[root[t]] < i) end[root[t]] = i;
        }
    }
    end[root[m->output]] = nn;

    int ni = 0;
    for (int t = 0; t < nt; t++) {
        if (root[t] != t || start[t] == -2) continue;
        items[ni].tensor = t;
        items[ni].size = align_up((int64_t)batch * tml_tensor_numel(&m->tensors[t]) *
                                      (int64_t)tml_dtype_size(m->tensors[t].dtype),
                                  align);
        items[ni].start = start[t];
        items[ni].end = separate ? nn : end[t];
        if (separate) items[ni].start = -1;
        items[ni].offset = -1;
        ni++;
    }
    qsort(items, (size_t)ni, sizeof(item), by_size_desc);
    int64_t total = 0;
    for (int i = 0; i < ni; i++) {
        /* Try the lowest candidate offset: 0 or the end of any placed item that
         * overlaps in time; accept the first that collides with none. */
        int64_t best = -1;
        for (int c = -1; c < i; c++) {
            int64_t cand;
            if (c < 0)
                cand = 0;
            else {
                if (items[c].start > items[i].end || items[i].start > items[c].end) continue;
                cand = items[c].offset + items[c].size;
            }
            if (best >= 0 && cand >= best) continue;
            int ok = 1;
            for (int j = 0; j < i && ok; j++) {
                if (items[j].start > items[i].end || items[i].start > items[j].end) continue;
                if (cand < items[j].offset + items[j].size && items[j].offset < cand + items[i].size) ok = 0;
            }
            if (ok) best = cand;
        }
        items[i].offset = best;
        if (best + items[i].size > total) total = best + items[i].size;
    }
    for (int i = 0; i < ni; i++) offsets[items[i].tensor] = items[i].offset;
    for (int t = 0; t < nt; t++)
        if (root[t] >= 0) offsets[t] = offsets[root[t]];
    *arena_bytes = total;
    free(start);
    free(end);
    free(items);
    return TML_OK;
}

tml_status tml_plan_activations(const tml_model *m, int batch, int64_t *offsets, int64_t *arena_bytes)
{
    int *root = malloc(sizeof(int) * (size_t)(m->n_tensors ? m->n_tensors : 1));
    if (!root) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_status st = tml_plan_buffers(m, batch, 0, TML_PLAN_ALIGN_DEVICE, offsets, root, arena_bytes);
    free(root);
    return st;
}

tml_status tml_model_peak_activation_bytes(const tml_model *m, int64_t *bytes)
{
    int64_t *off = malloc(sizeof(int64_t) * (size_t)(m->n_tensors ? m->n_tensors : 1));
    if (!off) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_status st = tml_plan_activations(m, 1, off, bytes);
    free(off);
    return st;
}
