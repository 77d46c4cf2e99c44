/*
 * prune.c - magnitude pruning, unstructured (per layer or global) and
 * structured (whole filters / neurons removed, downstream layers rewritten).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_prune.h"

void tml_prune_report_free(tml_prune_report *r)
{
    if (!r) return;
    free(r->layers);
    r->layers = NULL;
    r->n_layers = 0;
}

static int is_prunable(const tml_model *m, const tml_node *n)
{
    if (!tml_node_has_weights(n)) return 0;
    tml_dtype d = m->tensors[n->in[1]].dtype;
    return d == TML_DTYPE_F32 || d == TML_DTYPE_INT8;
}

const char **tml_prunable_layers(const tml_model *m, int *count)
{
    const char **names = calloc((size_t)m->n_nodes + 1, sizeof(char *));
    int k = 0;
    if (!names) return NULL;
    for (int i = 0; i < m->n_nodes; i++)
        if (is_prunable(m, &m->nodes[i])) names[k++] = m->nodes[i].name;
    if (count) *count = k;
    return names;
}

double tml_agp_sparsity(double s0, double s1, int r, int n)
{
    if (n <= 0 || r >= n) return s1;
    double f = 1.0 - (double)r / (double)n;
    return s1 + (s0 - s1) * f * f * f;
}

/* Number of elements to prune: round(s * n), halves up. */
static int64_t prune_count(double s, int64_t n) { return (int64_t)floor(s * (double)n + 0.5); }

/* |real value| of element i of a weight tensor (int8: q * per-channel scale). */
static double magnitude(const tml_tensor *w, int axis, int64_t i)
{
    if (w->dtype == TML_DTYPE_F32) return fabs((double)((const float *)w->data)[i]);
    int8_t q = ((const int8_t *)w->data)[i];
    double s = 1.0;
    if (w->q.n > 1) {
        int64_t c = axis == 3 ? i % w->dims[3] : i / (tml_tensor_numel(w) / w->dims[0]);
        s = w->q.scale[c];
    } else if (w->q.n == 1) {
        s = w->q.scale[0];
    }
    return fabs((double)q) * s;
}

static void set_zero(tml_tensor *w, int64_t i)
{
    if (w->dtype == TML_DTYPE_F32) ((float *)w->data)[i] = 0.0f;
    else ((int8_t *)w->data)[i] = 0;
}

typedef struct rank_item {
    double mag;
    int layer;
    int64_t idx;
} rank_item;

static int by_mag(const void *a, const void *b)
{
    const rank_item *x = a, *y = b;
    if (x->mag != y->mag) return x->mag < y->mag ? -1 : 1;
    if (x->layer != y->layer) return x->layer - y->layer;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static int in_list(const char *const *list, const char *name)
{
    if (!list) return 0;
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return 1;
    return 0;
}

/* Validates the names in a spec and resolves each prunable node's target
 * (negative = skipped). */
static tml_status resolve_targets(const tml_model *m, const tml_prune_spec *s, double *target)
{
    if (!(s->sparsity >= 0 && s->sparsity < 1))
        return tml_error(TML_ERR_INVALID, "sparsity must be in [0, 1) (got %g)", s->sparsity);
    for (int i = 0; i < s->n_targets; i++) {
        int ni = tml_model_find_node(m, s->targets[i].name);
        if (ni < 0) return tml_error(TML_ERR_INVALID, "no layer named '%s'", s->targets[i].name);
        if (!is_prunable(m, &m->nodes[ni]))
            return tml_error(TML_ERR_INVALID, "layer '%s' (%s) has no weights to prune", s->targets[i].name,
                             tml_op_name(m->nodes[ni].op));
        if (!(s->targets[i].sparsity >= 0 && s->targets[i].sparsity < 1))
            return tml_error(TML_ERR_INVALID, "sparsity of layer '%s' must be in [0, 1) (got %g)", s->targets[i].name,
                             s->targets[i].sparsity);
    }
    if (s->skip)
        for (const char *const *k = s->skip; *k; k++) {
            int ni = tml_model_find_node(m, *k);
            if (ni < 0) return tml_error(TML_ERR_INVALID, "--skip: no layer named '%s'", *k);
            if (!is_prunable(m, &m->nodes[ni]))
                return tml_error(TML_ERR_INVALID, "--skip: layer '%s' has no weights", *k);
        }
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        target[i] = -1;
        if (!is_prunable(m, n) || in_list(s->skip, n->name)) continue;
        target[i] = s->sparsity;
        for (int j = 0; j < s->n_targets; j++)
            if (strcmp(s->targets[j].name, n->name) == 0) target[i] = s->targets[j].sparsity;
    }
    return TML_OK;
}

static tml_status report_init(const tml_model *m, tml_prune_report *r)
{
    memset(r, 0, sizeof *r);
    r->layers = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(tml_prune_layer));
    return r->layers ? TML_OK : tml_error(TML_ERR_NOMEM, "out of memory");
}

static int64_t count_zeros(const tml_tensor *w)
{
    return tml_tensor_numel(w) - tml_tensor_nonzeros(w);
}

tml_status tml_prune_magnitude(tml_model *m, const tml_prune_spec *s, tml_prune_report *r)
{
    tml_prune_report local;
    if (!r) r = &local;
    double *target = malloc(sizeof(double) * (size_t)(m->n_nodes ? m->n_nodes : 1));
    if (!target) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_status st = resolve_targets(m, s, target);
    if (!st && s->global && s->n_targets)
        st = tml_error(TML_ERR_INVALID, "per-layer sparsities and --global exclude each other (use --skip to protect layers)");
    if (!st) st = report_init(m, r);
    if (st) {
        free(target);
        return st;
    }
    /* clustered weights would need a zero centroid: prune before clustering */
    for (int i = 0; i < m->n_nodes; i++)
        if (target[i] > 0 && m->tensors[m->nodes[i].in[1]].cb) {
            st = tml_error(TML_ERR_UNSUPPORTED, "layer '%s' is clustered; prune before clustering", m->nodes[i].name);
            goto out;
        }
    int64_t total = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (!is_prunable(m, n)) continue;
        tml_prune_layer *pl = &r->layers[r->n_layers++];
        const tml_tensor *w = &m->tensors[n->in[1]];
        snprintf(pl->name, sizeof pl->name, "%s", n->name);
        pl->params = tml_tensor_numel(w);
        pl->zeros_before = pl->zeros_after = count_zeros(w);
        pl->skipped = target[i] < 0;
        if (pl->skipped) snprintf(pl->note, sizeof pl->note, "protected");
        if (target[i] >= 0) total += pl->params;
    }
    if (s->global) {
        rank_item *items = malloc(sizeof(rank_item) * (size_t)(total ? total : 1));
        if (!items) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        int64_t k = 0;
        for (int i = 0; i < m->n_nodes; i++) {
            if (target[i] < 0) continue;
            const tml_tensor *w = &m->tensors[m->nodes[i].in[1]];
            int axis = m->nodes[i].op == TML_OP_DEPTHWISE_CONV2D ? 3 : 0;
            for (int64_t j = 0; j < tml_tensor_numel(w); j++) items[k++] = (rank_item){magnitude(w, axis, j), i, j};
        }
        qsort(items, (size_t)total, sizeof(rank_item), by_mag);
        int64_t kp = prune_count(s->sparsity, total);
        /* per layer: how many weights may be zero (the floor keeps the rest),
         * and the layer's row in the report */
        int64_t *room = calloc((size_t)m->n_nodes, sizeof(int64_t));
        int *row = calloc((size_t)m->n_nodes, sizeof(int));
        if (!room || !row) {
            free(room);
            free(row);
            free(items);
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        const double md = s->min_density > 0 && s->min_density < 1 ? s->min_density : 0.0;
        for (int i = 0, l = 0; i < m->n_nodes; i++) {
            if (is_prunable(m, &m->nodes[i])) row[i] = l++;
            if (target[i] < 0) continue;
            int64_t n = tml_tensor_numel(&m->tensors[m->nodes[i].in[1]]), keep = (int64_t)ceil(md * (double)n);
            room[i] = n - (keep > 1 ? keep : 1);
        }
        int64_t done = 0;
        r->threshold = 0.0;
        for (int64_t j = 0; j < total && done < kp; j++) {
            int li = items[j].layer;
            if (room[li] <= 0) {
                r->layers[row[li]].floored = 1;
                continue;
            }
            room[li]--;
            set_zero(&m->tensors[m->nodes[li].in[1]], items[j].idx);
            r->threshold = items[j].mag;
            done++;
        }
        free(room);
        free(row);
        free(items);
        for (int i = 0; i < m->n_nodes; i++)
            if (target[i] >= 0 && s->sparsity > 0) m->tensors[m->nodes[i].in[1]].pruned = 1;
    } else {
        for (int i = 0; i < m->n_nodes; i++) {
            if (target[i] <= 0) continue;
            tml_tensor *w = &m->tensors[m->nodes[i].in[1]];
            int axis = m->nodes[i].op == TML_OP_DEPTHWISE_CONV2D ? 3 : 0;
            int64_t n = tml_tensor_numel(w), kp = prune_count(target[i], n);
            rank_item *items = malloc(sizeof(rank_item) * (size_t)(n ? n : 1));
            if (!items) {
                st = tml_error(TML_ERR_NOMEM, "out of memory");
                goto out;
            }
            for (int64_t j = 0; j < n; j++) items[j] = (rank_item){magnitude(w, axis, j), i, j};
            qsort(items, (size_t)n, sizeof(rank_item), by_mag);
            for (int64_t j = 0; j < kp; j++) set_zero(w, items[j].idx);
            free(items);
            w->pruned = 1;
        }
    }
    for (int i = 0, l = 0; i < m->n_nodes; i++) {
        if (!is_prunable(m, &m->nodes[i])) continue;
        r->layers[l++].zeros_after = count_zeros(&m->tensors[m->nodes[i].in[1]]);
    }
out:
    free(target);
    if (r == &local) tml_prune_report_free(r);
    else if (st) tml_prune_report_free(r);
    return st;
}

/* ---- structured ---------------------------------------------------------------------------- */

/* Removes the channels with keep[c] == 0 from the activation t (last dim C)
 * in every layer downstream of it. With dry != 0 only checks that it can:
 * returns TML_ERR_UNSUPPORTED with the reason otherwise. */
static tml_status shrink_param_rows(tml_tensor *t, int64_t rows, int64_t row_len, const uint8_t *keep);
static tml_status shrink_last_dim(tml_tensor *t, const uint8_t *keep);

static tml_status propagate(tml_model *m, int t, const uint8_t *keep, int64_t C, int dry, int depth)
{
    if (depth > 64) return tml_error(TML_ERR_UNSUPPORTED, "graph too deep to rewrite");
    if (t == m->output) return tml_error(TML_ERR_UNSUPPORTED, "it feeds the model output");
    tml_status st;
    for (int i = 0; i < m->n_nodes; i++) {
        tml_node *n = &m->nodes[i];
        int reads = 0;
        for (int j = 0; j < n->n_in; j++) reads |= n->in[j] == t;
        if (!reads) continue;
        if (n->in[0] != t) return tml_error(TML_ERR_UNSUPPORTED, "'%s' reads it as a parameter", n->name);
        switch (n->op) {
        case TML_OP_RELU:
        case TML_OP_RELU6:
        case TML_OP_DROPOUT:
        case TML_OP_MAXPOOL:
        case TML_OP_AVGPOOL:
        case TML_OP_GLOBAL_AVGPOOL:
            if ((st = propagate(m, n->out, keep, C, dry, depth + 1))) return st;
            break;
        case TML_OP_BATCHNORM:
            if (!dry)
                for (int j = 1; j < 5; j++)
                    if ((st = shrink_last_dim(&m->tensors[n->in[j]], keep))) return st;
            if ((st = propagate(m, n->out, keep, C, dry, depth + 1))) return st;
            break;
        case TML_OP_DEPTHWISE_CONV2D: {
            int M = n->depth_mult;
            uint8_t *k2 = malloc((size_t)(C * M));
            if (!k2) return tml_error(TML_ERR_NOMEM, "out of memory");
            for (int64_t c = 0; c < C * M; c++) k2[c] = keep[c / M];
            st = TML_OK;
            if (!dry) {
                st = shrink_last_dim(&m->tensors[n->in[1]], k2);
                if (!st && n->n_in > 2 && n->in[2] >= 0) st = shrink_last_dim(&m->tensors[n->in[2]], k2);
            }
            if (!st) st = propagate(m, n->out, k2, C * M, dry, depth + 1);
            free(k2);
            if (st) return st;
            break;
        }
        case TML_OP_RESHAPE: {
            const tml_tensor *y = &m->tensors[n->out];
            if (y->ndim != 1) return tml_error(TML_ERR_UNSUPPORTED, "reshape '%s' is not a flatten", n->name);
            int64_t F = tml_tensor_numel(&m->tensors[t]);
            uint8_t *k2 = malloc((size_t)F);
            if (!k2) return tml_error(TML_ERR_NOMEM, "out of memory");
            for (int64_t f = 0; f < F; f++) k2[f] = keep[f % C];
            st = propagate(m, n->out, k2, F, dry, depth + 1);
            free(k2);
            if (st) return st;
            break;
        }
        case TML_OP_CONV2D:
            if (n->groups != 1) return tml_error(TML_ERR_UNSUPPORTED, "grouped conv '%s' reads it", n->name);
            if (!dry) {
                tml_tensor *w = &m->tensors[n->in[1]];
                if ((st = shrink_last_dim(w, keep))) return st;
            }
            break;
        case TML_OP_DENSE: {
            /* feature f of an HxWxC (or flat) input belongs to channel f % C */
            int64_t F = tml_tensor_numel(&m->tensors[t]);
            if (!dry) {
                uint8_t *k2 = malloc((size_t)F);
                if (!k2) return tml_error(TML_ERR_NOMEM, "out of memory");
                for (int64_t f = 0; f < F; f++) k2[f] = keep[f % C];
                st = shrink_last_dim(&m->tensors[n->in[1]], k2);
                free(k2);
                if (st) return st;
            }
            break;
        }
        default:
            return tml_error(TML_ERR_UNSUPPORTED, "it reaches %s '%s'", tml_op_name(n->op), n->name);
        }
    }
    return TML_OK;
}

/* Keeps rows r with keep[r] of a (rows, row_len) tensor. */
static tml_status shrink_param_rows(tml_tensor *t, int64_t rows, int64_t row_len, const uint8_t *keep)
{
    size_t es = tml_dtype_size(t->dtype);
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; r++) kept += keep[r] != 0;
    uint8_t *d = malloc((size_t)(kept * row_len) * es + 1);
    if (!d) return tml_error(TML_ERR_NOMEM, "out of memory");
    const uint8_t *s = t->data;
    int64_t o = 0;
    for (int64_t r = 0; r < rows; r++)
        if (keep[r]) memcpy(d + (size_t)(o++ * row_len) * es, s + (size_t)(r * row_len) * es, (size_t)row_len * es);
    free(t->data);
    t->data = d;
    t->dims[0] = (int32_t)kept;
    if (t->ndim == 0) t->ndim = 1;
    return TML_OK;
}

/* Keeps entries j with keep[j] along the last dim. */
static tml_status shrink_last_dim(tml_tensor *t, const uint8_t *keep)
{
    size_t es = tml_dtype_size(t->dtype);
    int last = t->dims[t->ndim - 1];
    int64_t outer = tml_tensor_numel(t) / last, kept = 0;
    for (int j = 0; j < last; j++) kept += keep[j] != 0;
    uint8_t *d = malloc((size_t)(outer * kept) * es + 1);
    if (!d) return tml_error(TML_ERR_NOMEM, "out of memory");
    const uint8_t *s = t->data;
    int64_t o = 0;
    for (int64_t r = 0; r < outer; r++)
        for (int j = 0; j < last; j++)
            if (keep[j]) memcpy(d + (size_t)(o++) * es, s + (size_t)(r * last + j) * es, es);
    free(t->data);
    t->data = d;
    t->dims[t->ndim - 1] = (int32_t)kept;
    return TML_OK;
}

typedef struct norm_item {
    double norm;
    int idx;
} norm_item;

static int by_norm(const void *a, const void *b)
{
    const norm_item *x = a, *y = b;
    if (x->norm != y->norm) return x->norm < y->norm ? -1 : 1;
    return x->idx - y->idx;
}

tml_status tml_prune_structured(tml_model *m, const tml_prune_spec *s, tml_prune_report *r)
{
    tml_prune_report local;
    if (!r) r = &local;
    if (tml_model_is_quantized(m)) return tml_error(TML_ERR_UNSUPPORTED, "structured pruning needs a float model (prune before quantizing)");
    double *target = malloc(sizeof(double) * (size_t)(m->n_nodes ? m->n_nodes : 1));
    if (!target) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_status st = resolve_targets(m, s, target);
    if (!st && s->global) st = tml_error(TML_ERR_INVALID, "structured pruning is per layer (no --global)");
    if (!st) st = report_init(m, r);
    if (st) {
        free(target);
        return st;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        tml_node *n = &m->nodes[i];
        if (!is_prunable(m, n)) continue;
        tml_prune_layer *pl = &r->layers[r->n_layers++];
        tml_tensor *w = &m->tensors[n->in[1]];
        snprintf(pl->name, sizeof pl->name, "%s", n->name);
        pl->params = tml_tensor_numel(w);
        pl->zeros_before = pl->zeros_after = count_zeros(w);
        if (target[i] < 0) {
            pl->skipped = 1;
            snprintf(pl->note, sizeof pl->note, "protected");
            continue;
        }
        if (n->op == TML_OP_DEPTHWISE_CONV2D || (n->op == TML_OP_CONV2D && n->groups != 1)) {
            pl->skipped = 1;
            snprintf(pl->note, sizeof pl->note, "depthwise/grouped: follows its input layer");
            continue;
        }
        if (w->cb) {
            st = tml_error(TML_ERR_UNSUPPORTED, "layer '%s' is clustered; prune before clustering", n->name);
            goto out;
        }
        /* filters are ranked by their float values below; a file may still
         * give a float model int8 weights */
        if (w->dtype != TML_DTYPE_F32) {
            pl->skipped = 1;
            snprintf(pl->note, sizeof pl->note, "%s weights: structured pruning needs float", tml_dtype_name(w->dtype));
            continue;
        }
        int O = w->dims[0];
        int64_t row = tml_tensor_numel(w) / O;
        int rm = (int)prune_count(target[i], O);
        if (rm >= O) rm = O - 1; /* keep at least one filter */
        if (rm <= 0) continue;
        /* can every reader be rewritten? (dry run) */
        uint8_t *keep = malloc((size_t)O);
        norm_item *items = malloc(sizeof(norm_item) * (size_t)O);
        if (!keep || !items) {
            free(keep);
            free(items);
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        memset(keep, 1, (size_t)O);
        if (propagate(m, n->out, keep, O, 1, 0)) {
            pl->skipped = 1;
            snprintf(pl->note, sizeof pl->note, "kept: %.80s", tml_last_error());
            free(keep);
            free(items);
            continue;
        }
        const float *wd = w->data;
        for (int o = 0; o < O; o++) {
            double acc = 0;
            for (int64_t j = 0; j < row; j++) {
                double v = wd[(int64_t)o * row + j];
                acc += s->norm == TML_NORM_L2 ? v * v : fabs(v);
            }
            items[o] = (norm_item){s->norm == TML_NORM_L2 ? sqrt(acc) : acc, o};
        }
        qsort(items, (size_t)O, sizeof(norm_item), by_norm);
        for (int j = 0; j < rm; j++) keep[items[j].idx] = 0;
        free(items);
        st = shrink_param_rows(w, O, row, keep);
        if (!st && n->n_in > 2 && n->in[2] >= 0) st = shrink_param_rows(&m->tensors[n->in[2]], O, 1, keep);
        if (!st) st = propagate(m, n->out, keep, O, 0, 0);
        free(keep);
        if (st) goto out;
        pl->removed = rm;
        pl->params = tml_tensor_numel(&m->tensors[n->in[1]]);
        pl->zeros_after = count_zeros(&m->tensors[n->in[1]]);
        /* flatten outputs are re-inferred from their (smaller) input */
        for (int j = 0; j < m->n_nodes; j++)
            if (m->nodes[j].op == TML_OP_RESHAPE && m->tensors[m->nodes[j].out].ndim == 1) m->tensors[m->nodes[j].out].ndim = 0;
        if ((st = tml_model_finalize(m))) {
            tml_error_context(st, "after removing filters of '%s'", n->name);
            goto out;
        }
    }
out:
    free(target);
    if (r == &local || st) tml_prune_report_free(r);
    return st;
}
