/*
 * model.c - the model graph: building, cloning, validation, topological order
 * and shape inference.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "tinyml/tml_core.h"

static const char *const op_names[TML_OP_COUNT] = {
    "conv2d", "depthwise_conv2d", "dense", "relu", "relu6", "maxpool", "avgpool",
    "global_avgpool", "add", "reshape", "softmax", "batchnorm", "dropout",
};

const char *tml_op_name(tml_op op)
{
    return (op >= 0 && op < TML_OP_COUNT) ? op_names[op] : "?";
}

tml_status tml_op_from_name(const char *name, tml_op *op)
{
    for (int i = 0; i < TML_OP_COUNT; i++) {
        if (strcmp(name, op_names[i]) == 0) {
            *op = (tml_op)i;
            return TML_OK;
        }
    }
    return tml_error(TML_ERR_INVALID, "unknown op '%s'", name);
}

const char *tml_rounding_name(tml_rounding r) { return r == TML_ROUNDING_TFLITE ? "tflite" : "tinyml"; }

const char *tml_act_name(tml_act a)
{
    switch (a) {
    case TML_ACT_RELU: return "relu";
    case TML_ACT_RELU6: return "relu6";
    default: return "none";
    }
}

/* ---- name index -----------------------------------------------------------------
 * Two open-addressing hash tables (tensor names -> id, node names -> index),
 * kept up to date by every function here that adds, removes or reorders, so a
 * lookup on a const model only reads (thread-safe). A lookup trusts the index
 * only while its counts match the model's; a hit is always confirmed with
 * strcmp, and any doubt falls back to a linear scan. Without the index,
 * reading a file was quadratic in its tensors (80k nodes: 50 s). */

typedef struct name_table {
    int *slot; /* (cap) ids, -1 = empty */
    int cap;   /* power of two, >= 2 * count */
    int count;
} name_table;

struct tml_name_index {
    name_table tensors, nodes;
};

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static const char *tensor_name_at(const tml_model *m, int i) { return m->tensors[i].name; }
static const char *node_name_at(const tml_model *m, int i) { return m->nodes[i].name; }

/* Inserts id (whose name is name_at(m, id)) into t, growing it; 0 on OOM. */
static int table_insert(name_table *t, const tml_model *m, const char *(*name_at)(const tml_model *, int), int id)
{
    if (2 * (t->count + 1) > t->cap) {
        int cap = t->cap ? t->cap * 2 : 64;
        int *slot = malloc(sizeof(int) * (size_t)cap);
        if (!slot) return 0;
        for (int i = 0; i < cap; i++) slot[i] = -1;
        for (int i = 0; i < t->cap; i++) {
            if (t->slot[i] < 0) continue;
            uint32_t h = name_hash(name_at(m, t->slot[i])) & (uint32_t)(cap - 1);
            while (slot[h] >= 0) h = (h + 1) & (uint32_t)(cap - 1);
            slot[h] = t->slot[i];
        }
        free(t->slot);
        t->slot = slot;
        t->cap = cap;
    }
    uint32_t h = name_hash(name_at(m, id)) & (uint32_t)(t->cap - 1);
    while (t->slot[h] >= 0) h = (h + 1) & (uint32_t)(t->cap - 1);
    t->slot[h] = id;
    t->count++;
    return 1;
}

/* id of `name` in t: >= 0 found, -1 absent, -2 the table cannot be trusted. */
static int table_find(const name_table *t, int n, const tml_model *m, const char *(*name_at)(const tml_model *, int),
                      const char *name)
{
    if (t->count != n || !t->cap) return -2;
    uint32_t h = name_hash(name) & (uint32_t)(t->cap - 1);
    for (int probes = 0; probes < t->cap; probes++, h = (h + 1) & (uint32_t)(t->cap - 1)) {
        int id = t->slot[h];
        if (id < 0) return -1;
        if (id >= n) return -2;
        if (strcmp(name_at(m, id), name) == 0) return id;
    }
    return -2;
}

static void index_free(tml_model *m)
{
    if (!m->index) return;
    free(m->index->tensors.slot);
    free(m->index->nodes.slot);
    free(m->index);
    m->index = NULL;
}

/* Rebuilds the index from the arrays; on OOM the model simply has none. */
static void index_rebuild(tml_model *m)
{
    index_free(m);
    struct tml_name_index *x = calloc(1, sizeof *x);
    if (!x) return;
    m->index = x;
    for (int i = 0; i < m->n_tensors; i++)
        if (!table_insert(&x->tensors, m, tensor_name_at, i)) goto oom;
    for (int i = 0; i < m->n_nodes; i++)
        if (!table_insert(&x->nodes, m, node_name_at, i)) goto oom;
    return;
oom:
    index_free(m);
}

tml_model *tml_model_new(void)
{
    tml_model *m = calloc(1, sizeof *m);
    if (!m) {
        tml_error(TML_ERR_NOMEM, "out of memory");
        return NULL;
    }
    m->input = -1;
    m->output = -1;
    m->meta.pre.scale = 1.0f;
    m->meta.history = tml_strdup("[]");
    if (!m->meta.history) {
        free(m);
        tml_error(TML_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return m;
}

static void tensor_release(tml_tensor *t)
{
    free(t->name);
    free(t->data);
    tml_tensor_clear_quant(t);
    tml_codebook_free(t->cb);
    memset(t, 0, sizeof *t);
}

static void meta_release(tml_meta *meta)
{
    free(meta->name);
    free(meta->arch);
    if (meta->labels) {
        for (int i = 0; i < meta->n_classes; i++) free(meta->labels[i]);
        free(meta->labels);
    }
    free(meta->history);
    free(meta->extra);
    free(meta->pre.feat_mean);
    free(meta->pre.feat_std);
    memset(meta, 0, sizeof *meta);
}

void tml_model_free(tml_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) tensor_release(&m->tensors[i]);
    free(m->tensors);
    for (int i = 0; i < m->n_nodes; i++) free(m->nodes[i].name);
    free(m->nodes);
    meta_release(&m->meta);
    index_free(m);
    free(m);
}

int tml_model_add_tensor(tml_model *m, const char *name, tml_dtype dtype, tml_tensor_kind kind,
                         int ndim, const int32_t *dims, const void *data)
{
    if (!name || !*name) return tml_error(TML_ERR_INVALID, "tensor needs a name");
    if (dtype < 0 || dtype >= TML_DTYPE_COUNT) return tml_error(TML_ERR_INVALID, "tensor '%s': bad dtype", name);
    if (ndim < 0 || ndim > TML_MAX_DIMS) return tml_error(TML_ERR_INVALID, "tensor '%s': %d dims (max %d)", name, ndim, TML_MAX_DIMS);
    if (m->n_tensors >= TML_MAX_TENSORS)
        return tml_error(TML_ERR_NOMEM, "more than %d tensors: not a model this tool can handle", TML_MAX_TENSORS);
    if (tml_model_find_tensor(m, name) >= 0) return tml_error(TML_ERR_INVALID, "duplicate tensor name '%s'", name);
    int64_t numel = tml_dims_numel(ndim, dims);
    if (numel < 0) return tml_error(TML_ERR_NOMEM, "tensor '%s': dimensions too large or negative", name);
    if (m->n_tensors == m->cap_tensors) {
        int cap = m->cap_tensors ? m->cap_tensors * 2 : 16;
        tml_tensor *p = realloc(m->tensors, sizeof *p * (size_t)cap);
        if (!p) return tml_error(TML_ERR_NOMEM, "out of memory");
        m->tensors = p;
        m->cap_tensors = cap;
    }
    tml_tensor *t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    t->q.axis = -1;
    t->name = tml_strdup(name);
    if (!t->name) return tml_error(TML_ERR_NOMEM, "out of memory");
    t->dtype = dtype;
    t->kind = kind;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->dims[i] = dims[i];
    if (kind == TML_TENSOR_PARAM) {
        size_t nb = (size_t)numel * tml_dtype_size(dtype);
        t->data = calloc(nb ? nb : 1, 1);
        if (!t->data) {
            free(t->name);
            return tml_error(TML_ERR_NOMEM, "out of memory allocating tensor '%s' (%zu bytes)", name, nb);
        }
        if (data && nb) memcpy(t->data, data, nb);
        t->store_hint = TML_STORE_SPARSE | TML_STORE_ENTROPY;
    }
    m->n_tensors++;
    if (!m->index || !table_insert(&m->index->tensors, m, tensor_name_at, m->n_tensors - 1)) index_rebuild(m);
    return m->n_tensors - 1;
}

int tml_model_add_node(tml_model *m, const char *name, tml_op op, int n_in, const int *in, int out)
{
    if (!name || !*name) return tml_error(TML_ERR_INVALID, "node needs a name");
    if (op < 0 || op >= TML_OP_COUNT) return tml_error(TML_ERR_INVALID, "node '%s': bad op", name);
    if (n_in < 0 || n_in > TML_MAX_NODE_INPUTS) return tml_error(TML_ERR_INVALID, "node '%s': %d inputs", name, n_in);
    if (m->n_nodes >= TML_MAX_NODES)
        return tml_error(TML_ERR_NOMEM, "more than %d nodes: not a model this tool can handle", TML_MAX_NODES);
    if (tml_model_find_node(m, name) >= 0) return tml_error(TML_ERR_INVALID, "duplicate node name '%s'", name);
    if (m->n_nodes == m->cap_nodes) {
        int cap = m->cap_nodes ? m->cap_nodes * 2 : 16;
        tml_node *p = realloc(m->nodes, sizeof *p * (size_t)cap);
        if (!p) return tml_error(TML_ERR_NOMEM, "out of memory");
        m->nodes = p;
        m->cap_nodes = cap;
    }
    tml_node *n = &m->nodes[m->n_nodes];
    memset(n, 0, sizeof *n);
    n->name = tml_strdup(name);
    if (!n->name) return tml_error(TML_ERR_NOMEM, "out of memory");
    n->op = op;
    n->n_in = n_in;
    for (int i = 0; i < TML_MAX_NODE_INPUTS; i++) n->in[i] = i < n_in ? in[i] : -1;
    n->out = out;
    n->sh = n->sw = 1;
    n->dh = n->dw = 1;
    n->groups = 1;
    n->depth_mult = 1;
    n->eps = 1e-5f;
    n->beta = 1.0f;
    m->n_nodes++;
    if (!m->index || !table_insert(&m->index->nodes, m, node_name_at, m->n_nodes - 1)) index_rebuild(m);
    return m->n_nodes - 1;
}

int tml_model_find_tensor(const tml_model *m, const char *name)
{
    int id = m->index ? table_find(&m->index->tensors, m->n_tensors, m, tensor_name_at, name) : -2;
    if (id != -2) return id;
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

int tml_model_find_node(const tml_model *m, const char *name)
{
    int id = m->index ? table_find(&m->index->nodes, m->n_nodes, m, node_name_at, name) : -2;
    if (id != -2) return id;
    for (int i = 0; i < m->n_nodes; i++)
        if (strcmp(m->nodes[i].name, name) == 0) return i;
    return -1;
}

int tml_model_producer(const tml_model *m, int t)
{
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].out == t) return i;
    return -1;
}

int tml_model_consumers(const tml_model *m, int t)
{
    int c = (t == m->output);
    for (int i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++) c += m->nodes[i].in[j] == t;
    return c;
}

void tml_model_remove_node(tml_model *m, int idx)
{
    TML_ASSERT(idx >= 0 && idx < m->n_nodes);
    free(m->nodes[idx].name);
    memmove(&m->nodes[idx], &m->nodes[idx + 1], sizeof(tml_node) * (size_t)(m->n_nodes - idx - 1));
    m->n_nodes--;
    index_rebuild(m);
}

void tml_model_replace_uses(tml_model *m, int from, int to)
{
    for (int i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++)
            if (m->nodes[i].in[j] == from) m->nodes[i].in[j] = to;
    if (m->output == from) m->output = to;
}

tml_status tml_model_compact(tml_model *m)
{
    int nt = m->n_tensors;
    int *used = calloc((size_t)(nt ? nt : 1), sizeof(int));
    if (!used) return tml_error(TML_ERR_NOMEM, "out of memory");
    used[m->input] = used[m->output] = 1;
    for (int i = 0; i < m->n_nodes; i++) {
        used[m->nodes[i].out] = 1;
        for (int j = 0; j < m->nodes[i].n_in; j++)
            if (m->nodes[i].in[j] >= 0) used[m->nodes[i].in[j]] = 1;
    }
    /* used[] becomes the new id + 1 of kept tensors */
    int k = 0;
    for (int t = 0; t < nt; t++) {
        if (used[t]) {
            if (k != t) m->tensors[k] = m->tensors[t];
            used[t] = ++k;
        } else {
            tensor_release(&m->tensors[t]);
        }
    }
    m->n_tensors = k;
    for (int i = 0; i < m->n_nodes; i++) {
        m->nodes[i].out = used[m->nodes[i].out] - 1;
        for (int j = 0; j < m->nodes[i].n_in; j++)
            if (m->nodes[i].in[j] >= 0) m->nodes[i].in[j] = used[m->nodes[i].in[j]] - 1;
    }
    m->input = used[m->input] - 1;
    m->output = used[m->output] - 1;
    free(used);
    index_rebuild(m);
    return TML_OK;
}

/* ---- clone ------------------------------------------------------------------- */

static tml_status clone_tensor(tml_tensor *dst, const tml_tensor *src)
{
    *dst = *src;
    dst->name = NULL;
    dst->data = NULL;
    dst->q.scale = NULL;
    dst->q.zero_point = NULL;
    dst->cb = NULL;
    dst->name = tml_strdup(src->name);
    if (!dst->name) return TML_ERR_NOMEM;
    if (src->data) {
        size_t nb = tml_tensor_nbytes(src);
        dst->data = malloc(nb ? nb : 1);
        if (!dst->data) return TML_ERR_NOMEM;
        memcpy(dst->data, src->data, nb);
    }
    if (src->q.n > 0) {
        dst->q.scale = malloc(sizeof(float) * (size_t)src->q.n);
        dst->q.zero_point = malloc(sizeof(int32_t) * (size_t)src->q.n);
        if (!dst->q.scale || !dst->q.zero_point) return TML_ERR_NOMEM;
        memcpy(dst->q.scale, src->q.scale, sizeof(float) * (size_t)src->q.n);
        memcpy(dst->q.zero_point, src->q.zero_point, sizeof(int32_t) * (size_t)src->q.n);
    }
    if (src->cb) {
        dst->cb = tml_codebook_clone(src->cb, tml_tensor_numel(src));
        if (!dst->cb) return TML_ERR_NOMEM;
    }
    return TML_OK;
}

tml_model *tml_model_clone(const tml_model *m)
{
    tml_model *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->input = m->input;
    c->output = m->output;
    c->tensors = calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *c->tensors);
    c->nodes = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof *c->nodes);
    if (!c->tensors || !c->nodes) goto oom;
    c->cap_tensors = m->n_tensors ? m->n_tensors : 1;
    c->cap_nodes = m->n_nodes ? m->n_nodes : 1;
    for (int i = 0; i < m->n_tensors; i++) {
        c->n_tensors = i + 1;
        if (clone_tensor(&c->tensors[i], &m->tensors[i]) != TML_OK) goto oom;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        c->nodes[i] = m->nodes[i];
        c->nodes[i].name = tml_strdup(m->nodes[i].name);
        c->n_nodes = i + 1;
        if (!c->nodes[i].name) goto oom;
    }
    c->meta = m->meta;
    c->meta.name = NULL;
    c->meta.arch = NULL;
    c->meta.labels = NULL;
    c->meta.history = NULL;
    c->meta.extra = NULL;
    c->meta.pre.n_feat = 0;
    c->meta.pre.feat_mean = c->meta.pre.feat_std = NULL;
    if (m->meta.pre.n_feat &&
        tml_preproc_set_features(&c->meta.pre, m->meta.pre.n_feat, m->meta.pre.feat_mean, m->meta.pre.feat_std))
        goto oom;
    if (m->meta.name && !(c->meta.name = tml_strdup(m->meta.name))) goto oom;
    if (m->meta.arch && !(c->meta.arch = tml_strdup(m->meta.arch))) goto oom;
    if (m->meta.extra && !(c->meta.extra = tml_strdup(m->meta.extra))) goto oom;
    if (!(c->meta.history = tml_strdup(m->meta.history ? m->meta.history : "[]"))) goto oom;
    if (m->meta.labels) {
        c->meta.n_classes = 0;
        if (tml_meta_set_labels(&c->meta, m->meta.n_classes, (const char *const *)m->meta.labels) != TML_OK) goto oom;
    }
    c->meta.n_classes = m->meta.n_classes;
    index_rebuild(c);
    return c;
oom:
    tml_model_free(c);
    tml_error(TML_ERR_NOMEM, "out of memory copying model");
    return NULL;
}

/* ---- metadata ------------------------------------------------------------------ */

tml_status tml_preproc_set_features(tml_preproc *pre, int n, const float *mean, const float *std)
{
    float *m = NULL, *s = NULL;
    if (n < 0 || n > TML_MAX_NUMEL) return tml_error(TML_ERR_INVALID, "bad feature count %d", n);
    if (n > 0) {
        m = malloc(sizeof(float) * (size_t)n);
        s = malloc(sizeof(float) * (size_t)n);
        if (!m || !s) {
            free(m);
            free(s);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
        memcpy(m, mean, sizeof(float) * (size_t)n);
        memcpy(s, std, sizeof(float) * (size_t)n);
        pre->n_ch = 0;
    }
    free(pre->feat_mean);
    free(pre->feat_std);
    pre->feat_mean = m;
    pre->feat_std = s;
    pre->n_feat = n;
    return TML_OK;
}

tml_status tml_model_check_meta(const tml_model *m)
{
    const tml_meta *meta = &m->meta;
    const tml_tensor *in = &m->tensors[m->input];
    const int64_t outs = tml_tensor_numel(&m->tensors[m->output]), ins = tml_tensor_numel(in);
    const int c = in->ndim == 3 ? in->dims[2] : 1;
    if (meta->labels && meta->n_classes != outs)
        return tml_error(TML_ERR_FORMAT, "META: %d labels, but the graph's output has %lld values", meta->n_classes,
                         (long long)outs);
    if (meta->n_classes != 0 && meta->n_classes != outs)
        return tml_error(TML_ERR_FORMAT, "META: %d classes, but the graph's output '%s' has %lld values", meta->n_classes,
                         m->tensors[m->output].name, (long long)outs);
    const tml_preproc *p = &meta->pre;
    if (!(isfinite(p->scale) && p->scale != 0.0f))
        return tml_error(TML_ERR_FORMAT, "META: preprocessing scale %g must be finite and nonzero", (double)p->scale);
    if (p->n_ch < 0 || p->n_ch > TML_MAX_CHANNELS_PRE || (p->n_ch > 1 && p->n_ch != c))
        return tml_error(TML_ERR_FORMAT, "META: preprocessing has mean/std for %d channels, the input '%s' has %d", p->n_ch,
                         in->name, c);
    for (int i = 0; i < p->n_ch; i++)
        if (!isfinite(p->mean[i]) || !(isfinite(p->std[i]) && p->std[i] > 0.0f))
            return tml_error(TML_ERR_FORMAT, "META: preprocessing channel %d: mean %g, std %g (std must be positive)", i,
                             (double)p->mean[i], (double)p->std[i]);
    if (p->n_feat) {
        if (p->n_feat != ins || p->n_ch || !p->feat_mean || !p->feat_std)
            return tml_error(TML_ERR_FORMAT, "META: per-feature normalization of %d features, the input '%s' has %lld values",
                             p->n_feat, in->name, (long long)ins);
        for (int i = 0; i < p->n_feat; i++)
            if (!isfinite(p->feat_mean[i]) || !(isfinite(p->feat_std[i]) && p->feat_std[i] > 0.0f))
                return tml_error(TML_ERR_FORMAT, "META: feature %d: mean %g, std %g (std must be positive)", i,
                                 (double)p->feat_mean[i], (double)p->feat_std[i]);
    }
    return TML_OK;
}

tml_status tml_meta_extra_set(tml_meta *meta, const char *key, const char *value)
{
    cJSON *root = meta->extra && meta->extra[0] ? cJSON_Parse(meta->extra) : cJSON_CreateObject();
    cJSON *v = cJSON_Parse(value);
    if (!root || !cJSON_IsObject(root) || !v) {
        cJSON_Delete(root);
        cJSON_Delete(v);
        return tml_error(TML_ERR_FORMAT, root && cJSON_IsObject(root) ? "metadata \"%s\": the value is not JSON"
                                                                       : "the model's extra metadata is not a JSON object",
                         key);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    char *txt = cJSON_AddItemToObject(root, key, v) ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    char *copy = txt ? tml_strdup(txt) : NULL;
    cJSON_free(txt);
    if (!copy) return tml_error(TML_ERR_NOMEM, "out of memory");
    free(meta->extra);
    meta->extra = copy;
    return TML_OK;
}

tml_status tml_meta_set_labels(tml_meta *meta, int n, const char *const *labels)
{
    if (n < 0) return tml_error(TML_ERR_INVALID, "negative label count");
    char **l = calloc((size_t)(n ? n : 1), sizeof *l);
    if (!l) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        l[i] = tml_strdup(labels[i] ? labels[i] : "");
        if (!l[i]) {
            for (int j = 0; j < i; j++) free(l[j]);
            free(l);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
    }
    if (meta->labels) {
        for (int i = 0; i < meta->n_classes; i++) free(meta->labels[i]);
        free(meta->labels);
    }
    meta->labels = l;
    meta->n_classes = n;
    return TML_OK;
}

tml_status tml_model_add_history(tml_model *m, const char *entry_json)
{
    /* history is a JSON array text "[...]": splice the entry before the final ']'.
     * The entry is a JSON object produced by our own code (cJSON in cli/passes). */
    const char *h = m->meta.history ? m->meta.history : "[]";
    size_t hl = strlen(h), el = strlen(entry_json);
    while (hl > 0 && (h[hl - 1] == ' ' || h[hl - 1] == '\n')) hl--;
    if (hl < 2 || h[hl - 1] != ']') return tml_error(TML_ERR_FORMAT, "model history is not a JSON array");
    int empty = 1;
    for (size_t i = 1; i + 1 < hl; i++)
        if (h[i] != ' ' && h[i] != '\n' && h[i] != '\t') empty = 0;
    size_t nl = hl + el + 4;
    char *p = malloc(nl);
    if (!p) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (empty)
        snprintf(p, nl, "[%s]", entry_json);
    else
        snprintf(p, nl, "%.*s,%s]", (int)(hl - 1), h, entry_json);
    free(m->meta.history);
    m->meta.history = p;
    return TML_OK;
}

int tml_model_is_quantized(const tml_model *m)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == TML_TENSOR_ACT && m->tensors[i].dtype == TML_DTYPE_INT8) return 1;
    return 0;
}

/* ---- node facts ------------------------------------------------------------------ */

int tml_node_has_weights(const tml_node *n)
{
    return n->op == TML_OP_CONV2D || n->op == TML_OP_DEPTHWISE_CONV2D || n->op == TML_OP_DENSE;
}

int64_t tml_node_macs(const tml_model *m, const tml_node *n)
{
    const tml_tensor *y = &m->tensors[n->out];
    switch (n->op) {
    case TML_OP_CONV2D: {
        const tml_tensor *w = &m->tensors[n->in[1]];
        return (int64_t)y->dims[0] * y->dims[1] * y->dims[2] * w->dims[1] * w->dims[2] * w->dims[3];
    }
    case TML_OP_DEPTHWISE_CONV2D: {
        const tml_tensor *w = &m->tensors[n->in[1]];
        return (int64_t)y->dims[0] * y->dims[1] * y->dims[2] * w->dims[1] * w->dims[2];
    }
    case TML_OP_DENSE: {
        const tml_tensor *w = &m->tensors[n->in[1]];
        return (int64_t)w->dims[0] * w->dims[1];
    }
    default: return 0;
    }
}

int64_t tml_node_params(const tml_model *m, const tml_node *n)
{
    int64_t p = 0;
    for (int i = 0; i < n->n_in; i++) {
        int t = n->in[i];
        if (t >= 0 && m->tensors[t].kind == TML_TENSOR_PARAM) p += tml_tensor_numel(&m->tensors[t]);
    }
    return p;
}

/* ---- finalize: validate, sort, infer shapes ------------------------------------------ */

static int op_min_inputs(tml_op op)
{
    switch (op) {
    case TML_OP_CONV2D:
    case TML_OP_DEPTHWISE_CONV2D:
    case TML_OP_DENSE: return 2;
    case TML_OP_ADD: return 2;
    case TML_OP_BATCHNORM: return 5;
    default: return 1;
    }
}

static int op_max_inputs(tml_op op)
{
    switch (op) {
    case TML_OP_CONV2D:
    case TML_OP_DEPTHWISE_CONV2D:
    case TML_OP_DENSE: return 3;
    case TML_OP_ADD: return 2;
    case TML_OP_BATCHNORM: return 5;
    default: return 1;
    }
}

/* Output size of a window op along one axis; < 1 means the window does not fit. */
static int64_t window_out(int64_t in, int pad0, int pad1, int k, int s, int d)
{
    int64_t ext = (int64_t)d * (k - 1) + 1;
    int64_t span = in + pad0 + pad1 - ext;
    if (span < 0) return 0;
    return span / s + 1;
}

#define NODE_ERR(st, ...) tml_error_context(tml_error(st, __VA_ARGS__), "node '%s' (%s)", n->name, tml_op_name(n->op))

static tml_status set_dims(tml_tensor *y, int ndim, const int64_t *d, const tml_node *n)
{
    int32_t d32[TML_MAX_DIMS] = {0};
    for (int i = 0; i < ndim; i++) {
        if (d[i] < 1 || d[i] > (1 << 24))
            return NODE_ERR(TML_ERR_SHAPE, "output dimension %d is %lld (input too small for the window, or absurd)", i, (long long)d[i]);
        d32[i] = (int32_t)d[i];
    }
    if (tml_dims_numel(ndim, d32) < 0) return NODE_ERR(TML_ERR_SHAPE, "output too large");
    y->ndim = ndim;
    for (int i = 0; i < TML_MAX_DIMS; i++) y->dims[i] = i < ndim ? d32[i] : 0;
    return TML_OK;
}

static tml_status check_window_attrs(const tml_node *n)
{
    if (n->kh < 1 || n->kw < 1 || n->kh > 4096 || n->kw > 4096) return NODE_ERR(TML_ERR_INVALID, "bad window %dx%d", n->kh, n->kw);
    if (n->sh < 1 || n->sw < 1 || n->sh > 4096 || n->sw > 4096) return NODE_ERR(TML_ERR_INVALID, "bad stride %dx%d", n->sh, n->sw);
    if (n->dh < 1 || n->dw < 1 || n->dh > 4096 || n->dw > 4096) return NODE_ERR(TML_ERR_INVALID, "bad dilation %dx%d", n->dh, n->dw);
    for (int i = 0; i < 4; i++)
        if (n->pad[i] < 0 || n->pad[i] > 4096) return NODE_ERR(TML_ERR_INVALID, "bad padding %d", n->pad[i]);
    return TML_OK;
}

static tml_status infer_node(tml_model *m, tml_node *n)
{
    tml_tensor *x = &m->tensors[n->in[0]];
    tml_tensor *y = &m->tensors[n->out];
    int64_t d[TML_MAX_DIMS];
    int64_t xnumel = tml_tensor_numel(x);
    if (n->act < TML_ACT_NONE || n->act > TML_ACT_RELU6) return NODE_ERR(TML_ERR_INVALID, "bad fused activation");

    switch (n->op) {
    case TML_OP_CONV2D:
    case TML_OP_DEPTHWISE_CONV2D: {
        const tml_tensor *w = &m->tensors[n->in[1]];
        if (x->ndim != 3) return NODE_ERR(TML_ERR_SHAPE, "input '%s' must be HxWxC (has %d dims)", x->name, x->ndim);
        if (w->ndim != 4) return NODE_ERR(TML_ERR_SHAPE, "weights '%s' must have 4 dims", w->name);
        n->kh = w->dims[1];
        n->kw = w->dims[2];
        tml_status st = check_window_attrs(n);
        if (st) return st;
        int64_t oc;
        if (n->op == TML_OP_CONV2D) {
            if (n->groups < 1 || x->dims[2] % n->groups || w->dims[0] % n->groups)
                return NODE_ERR(TML_ERR_SHAPE, "groups %d do not divide input channels %d and filters %d", n->groups, x->dims[2], w->dims[0]);
            if (w->dims[3] * n->groups != x->dims[2])
                return NODE_ERR(TML_ERR_SHAPE, "weights '%s' expect %d input channels, input has %d", w->name, w->dims[3] * n->groups, x->dims[2]);
            oc = w->dims[0];
        } else {
            if (n->depth_mult < 1) return NODE_ERR(TML_ERR_INVALID, "depth multiplier %d", n->depth_mult);
            if (w->dims[0] != 1 || w->dims[3] != (int64_t)x->dims[2] * n->depth_mult)
                return NODE_ERR(TML_ERR_SHAPE, "depthwise weights '%s' must be 1x%dx%dx%lld", w->name, n->kh, n->kw, (long long)x->dims[2] * n->depth_mult);
            oc = w->dims[3];
        }
        if (n->n_in > 2 && n->in[2] >= 0) {
            const tml_tensor *b = &m->tensors[n->in[2]];
            if (tml_tensor_numel(b) != oc || b->ndim != 1) return NODE_ERR(TML_ERR_SHAPE, "bias '%s' must have %lld elements", b->name, (long long)oc);
        }
        d[0] = window_out(x->dims[0], n->pad[0], n->pad[2], n->kh, n->sh, n->dh);
        d[1] = window_out(x->dims[1], n->pad[1], n->pad[3], n->kw, n->sw, n->dw);
        d[2] = oc;
        return set_dims(y, 3, d, n);
    }
    case TML_OP_DENSE: {
        const tml_tensor *w = &m->tensors[n->in[1]];
        if (w->ndim != 2) return NODE_ERR(TML_ERR_SHAPE, "weights '%s' must be (out, in)", w->name);
        if (xnumel != w->dims[1])
            return NODE_ERR(TML_ERR_SHAPE, "input '%s' has %lld features, weights '%s' expect %d", x->name, (long long)xnumel, w->name, w->dims[1]);
        if (n->n_in > 2 && n->in[2] >= 0) {
            const tml_tensor *b = &m->tensors[n->in[2]];
            if (tml_tensor_numel(b) != w->dims[0] || b->ndim != 1) return NODE_ERR(TML_ERR_SHAPE, "bias '%s' must have %d elements", b->name, w->dims[0]);
        }
        d[0] = w->dims[0];
        return set_dims(y, 1, d, n);
    }
    case TML_OP_MAXPOOL:
    case TML_OP_AVGPOOL: {
        if (x->ndim != 3) return NODE_ERR(TML_ERR_SHAPE, "input '%s' must be HxWxC", x->name);
        tml_status st = check_window_attrs(n);
        if (st) return st;
        if (n->pad[0] >= n->kh || n->pad[2] >= n->kh || n->pad[1] >= n->kw || n->pad[3] >= n->kw)
            return NODE_ERR(TML_ERR_INVALID, "pool padding must be smaller than the window");
        d[0] = window_out(x->dims[0], n->pad[0], n->pad[2], n->kh, n->sh, n->dh);
        d[1] = window_out(x->dims[1], n->pad[1], n->pad[3], n->kw, n->sw, n->dw);
        d[2] = x->dims[2];
        return set_dims(y, 3, d, n);
    }
    case TML_OP_GLOBAL_AVGPOOL:
        if (x->ndim != 3) return NODE_ERR(TML_ERR_SHAPE, "input '%s' must be HxWxC", x->name);
        d[0] = x->dims[2];
        return set_dims(y, 1, d, n);
    case TML_OP_ADD: {
        const tml_tensor *b = &m->tensors[n->in[1]];
        /* both operands are per-sample activations (the engine adds batches);
         * a constant operand is a bias and belongs in the producing layer */
        if (b->kind != TML_TENSOR_ACT)
            return NODE_ERR(TML_ERR_UNSUPPORTED, "second input '%s' is a constant; add needs two activations", b->name);
        if (b->ndim != x->ndim || memcmp(b->dims, x->dims, sizeof(int32_t) * (size_t)x->ndim) != 0)
            return NODE_ERR(TML_ERR_SHAPE, "inputs '%s' and '%s' differ in shape", x->name, b->name);
        for (int i = 0; i < x->ndim; i++) d[i] = x->dims[i];
        return set_dims(y, x->ndim, d, n);
    }
    case TML_OP_RESHAPE:
        if (y->ndim == 0) { /* flatten */
            d[0] = xnumel;
            return set_dims(y, 1, d, n);
        }
        if (tml_tensor_numel(y) != xnumel)
            return NODE_ERR(TML_ERR_SHAPE, "reshape from %lld to %lld elements", (long long)xnumel, (long long)tml_tensor_numel(y));
        return TML_OK;
    case TML_OP_BATCHNORM: {
        int c = x->dims[x->ndim - 1];
        for (int i = 1; i < 5; i++) {
            const tml_tensor *p = &m->tensors[n->in[i]];
            if (p->kind != TML_TENSOR_PARAM || tml_tensor_numel(p) != c)
                return NODE_ERR(TML_ERR_SHAPE, "batch-norm parameter '%s' must be a constant of %d elements", p->name, c);
        }
        if (!(n->eps > 0.0f) || !isfinite(n->eps)) return NODE_ERR(TML_ERR_INVALID, "eps must be > 0");
    }
    /* fall through */
    case TML_OP_RELU:
    case TML_OP_RELU6:
    case TML_OP_SOFTMAX:
    case TML_OP_DROPOUT:
        if (n->op == TML_OP_SOFTMAX && !(n->beta > 0.0f && isfinite(n->beta)))
            return NODE_ERR(TML_ERR_INVALID, "softmax beta must be a positive number");
        if (n->op == TML_OP_DROPOUT && !(n->rate >= 0.0f && n->rate < 1.0f)) return NODE_ERR(TML_ERR_INVALID, "dropout rate must be in [0,1)");
        for (int i = 0; i < x->ndim; i++) d[i] = x->dims[i];
        return set_dims(y, x->ndim, d, n);
    default: return NODE_ERR(TML_ERR_INVALID, "unknown op %d", (int)n->op);
    }
}

tml_status tml_model_infer_node(tml_model *m, int idx)
{
    if (idx < 0 || idx >= m->n_nodes) return tml_error(TML_ERR_INVALID, "no node %d", idx);
    const tml_node *n = &m->nodes[idx];
    if (n->op < 0 || n->op >= TML_OP_COUNT || n->n_in < op_min_inputs(n->op) || n->n_in > op_max_inputs(n->op))
        return tml_error(TML_ERR_INVALID, "node '%s': bad op or inputs", n->name);
    for (int j = 0; j < n->n_in; j++)
        if (n->in[j] < -1 || n->in[j] >= m->n_tensors || (n->in[j] < 0 && j < 2))
            return tml_error(TML_ERR_INVALID, "node '%s': input %d refers to a missing tensor", n->name, j);
    if (n->out < 0 || n->out >= m->n_tensors) return tml_error(TML_ERR_INVALID, "node '%s': no output tensor", n->name);
    return infer_node(m, &m->nodes[idx]);
}

/* A low-bit tensor is an int8 constant whose every value fits its width:
 * anything else would be silently changed by the packed storage. */
static tml_status check_qbits(const tml_tensor *t)
{
    if (t->qbits < 2 || t->qbits > 7)
        return tml_error(TML_ERR_FORMAT, "tensor '%s': weight width %d bits (low-bit weights are 2..7 bits)", t->name, t->qbits);
    if (t->kind != TML_TENSOR_PARAM || t->dtype != TML_DTYPE_INT8)
        return tml_error(TML_ERR_FORMAT, "tensor '%s': only int8 constants can be %d-bit", t->name, t->qbits);
    const int8_t *d = t->data;
    int64_t n = tml_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        if (d[i] < TML_QBITS_MIN(t->qbits) || d[i] > TML_QBITS_MAX(t->qbits))
            return tml_error(TML_ERR_FORMAT, "tensor '%s': value %d at element %lld does not fit %d bits", t->name, d[i],
                             (long long)i, t->qbits);
    return TML_OK;
}

tml_status tml_model_finalize(tml_model *m)
{
    if (m->input < 0 || m->input >= m->n_tensors) return tml_error(TML_ERR_FORMAT, "model has no valid input tensor");
    if (m->output < 0 || m->output >= m->n_tensors) return tml_error(TML_ERR_FORMAT, "model has no valid output tensor");
    tml_tensor *in = &m->tensors[m->input];
    if (in->kind != TML_TENSOR_ACT) return tml_error(TML_ERR_FORMAT, "input '%s' is not an activation", in->name);
    if (in->ndim < 1) return tml_error(TML_ERR_FORMAT, "input '%s' has no shape", in->name);
    for (int i = 0; i < in->ndim; i++)
        if (in->dims[i] < 1 || in->dims[i] > (1 << 16)) return tml_error(TML_ERR_FORMAT, "input '%s' has a bad dimension %d", in->name, in->dims[i]);
    if (tml_tensor_numel(in) <= 0) return tml_error(TML_ERR_FORMAT, "input '%s' is too large", in->name);

    int nt = m->n_tensors, nn = m->n_nodes;
    int *producer = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    int *ready = calloc((size_t)(nt ? nt : 1), sizeof(int));
    int *done = calloc((size_t)(nn ? nn : 1), sizeof(int));
    tml_node *sorted = malloc(sizeof(tml_node) * (size_t)(nn ? nn : 1));
    tml_status st = TML_OK;
    if (!producer || !ready || !done || !sorted) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < nt; i++) {
        producer[i] = -1;
        tml_tensor *t = &m->tensors[i];
        if (t->kind == TML_TENSOR_PARAM) {
            if (!t->data) {
                st = tml_error(TML_ERR_FORMAT, "constant tensor '%s' has no data", t->name);
                goto out;
            }
            ready[i] = 1;
        }
        if (t->cb) {
            const tml_codebook *cb = t->cb;
            if (cb->k < 1 || cb->k > 256 || cb->bits < 1 || cb->bits > 8 || cb->k > (1 << cb->bits) ||
                !(cb->n_books == 1 || (t->ndim > 0 && cb->n_books == t->dims[0]))) {
                st = tml_error(TML_ERR_FORMAT, "tensor '%s': bad codebook", t->name);
                goto out;
            }
        }
        if (t->qbits && (st = check_qbits(t))) goto out;
    }
    ready[m->input] = 1;
    for (int i = 0; i < nn; i++) {
        tml_node *n = &m->nodes[i];
        if (n->op < 0 || n->op >= TML_OP_COUNT) {
            st = tml_error(TML_ERR_FORMAT, "node '%s': unknown op", n->name);
            goto out;
        }
        if (n->n_in < op_min_inputs(n->op) || n->n_in > op_max_inputs(n->op)) {
            st = NODE_ERR(TML_ERR_FORMAT, "has %d inputs, expects %d..%d", n->n_in, op_min_inputs(n->op), op_max_inputs(n->op));
            goto out;
        }
        for (int j = 0; j < n->n_in; j++) {
            int optional = (j == 2 && tml_node_has_weights(n));
            if (n->in[j] < (optional ? -1 : 0) || n->in[j] >= nt) {
                st = NODE_ERR(TML_ERR_FORMAT, "input %d refers to a missing tensor", j);
                goto out;
            }
        }
        if (n->out < 0 || n->out >= nt) {
            st = NODE_ERR(TML_ERR_FORMAT, "output refers to a missing tensor");
            goto out;
        }
        tml_tensor *y = &m->tensors[n->out];
        if (y->kind != TML_TENSOR_ACT || n->out == m->input) {
            st = NODE_ERR(TML_ERR_FORMAT, "writes to '%s', which is not a free activation", y->name);
            goto out;
        }
        if (producer[n->out] >= 0) {
            st = NODE_ERR(TML_ERR_FORMAT, "tensor '%s' is written by two nodes", y->name);
            goto out;
        }
        producer[n->out] = i;
        if (tml_node_has_weights(n)) {
            tml_tensor *w = &m->tensors[n->in[1]];
            if (w->kind != TML_TENSOR_PARAM || (n->n_in > 2 && n->in[2] >= 0 && m->tensors[n->in[2]].kind != TML_TENSOR_PARAM)) {
                st = NODE_ERR(TML_ERR_UNSUPPORTED, "weights and bias must be constants");
                goto out;
            }
        }
        if (m->tensors[n->in[0]].kind != TML_TENSOR_ACT) {
            st = NODE_ERR(TML_ERR_UNSUPPORTED, "first input '%s' must be an activation", m->tensors[n->in[0]].name);
            goto out;
        }
    }
    /* Topological order: the order of repeated sweeps over the nodes in index
     * order, each emitting every node whose inputs are ready (a file already
     * in order comes out unchanged), computed in O(n log n): a node that
     * becomes ready when node i is emitted in sweep s is emitted in sweep s if
     * it comes after i, else in sweep s + 1; a heap orders (sweep, index). */
    {
        int *pending = calloc((size_t)(nn ? nn : 1), sizeof(int));
        int *first = calloc((size_t)nt + 1, sizeof(int)); /* CSR: readers of each tensor */
        int *readers = malloc(sizeof(int) * (size_t)(nn * TML_MAX_NODE_INPUTS + 1));
        int64_t *heap = malloc(sizeof(int64_t) * (size_t)(nn ? nn : 1));
        int *cur = malloc(sizeof(int) * (size_t)(nt ? nt : 1)); /* fill position per tensor */
        if (!pending || !first || !readers || !heap || !cur) {
            free(pending);
            free(first);
            free(readers);
            free(heap);
            free(cur);
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (int i = 0; i < nn; i++)
            for (int j = 0; j < m->nodes[i].n_in; j++) {
                int t = m->nodes[i].in[j];
                if (t >= 0 && !ready[t]) {
                    pending[i]++;
                    first[t + 1]++;
                }
            }
        for (int t = 0; t < nt; t++) first[t + 1] += first[t];
        memcpy(cur, first, sizeof(int) * (size_t)nt);
        for (int i = 0; i < nn; i++)
            for (int j = 0; j < m->nodes[i].n_in; j++) {
                int t = m->nodes[i].in[j];
                if (t >= 0 && !ready[t]) readers[cur[t]++] = i;
            }
        free(cur);
        /* min-heap of keys sweep * 2^32 + index */
        int hn = 0;
#define HEAP_PUSH(key)                                                                                                 \
    do {                                                                                                               \
        int64_t k_ = (key);                                                                                            \
        int c_ = hn++;                                                                                                 \
        while (c_ > 0 && heap[(c_ - 1) / 2] > k_) {                                                                    \
            heap[c_] = heap[(c_ - 1) / 2];                                                                             \
            c_ = (c_ - 1) / 2;                                                                                         \
        }                                                                                                              \
        heap[c_] = k_;                                                                                                 \
    } while (0)
        for (int i = 0; i < nn; i++)
            if (!pending[i]) HEAP_PUSH((int64_t)i);
        int emitted = 0;
        while (hn > 0 && !st) {
            int64_t top = heap[0], last = heap[--hn];
            int c = 0;
            for (;;) {
                int l = 2 * c + 1;
                if (l >= hn) break;
                if (l + 1 < hn && heap[l + 1] < heap[l]) l++;
                if (heap[l] >= last) break;
                heap[c] = heap[l];
                c = l;
            }
            if (hn > 0) heap[c] = last;
            const int i = (int)(top & 0xffffffff);
            const int64_t sweep = top >> 32;
            tml_node *n = &m->nodes[i];
            st = infer_node(m, n);
            if (st) break;
            done[i] = 1;
            sorted[emitted++] = *n;
            if (!ready[n->out]) {
                ready[n->out] = 1;
                for (int r = first[n->out]; r < first[n->out + 1]; r++) {
                    int j = readers[r];
                    if (--pending[j] == 0) HEAP_PUSH(((sweep + (j < i)) << 32) | j);
                }
            }
        }
#undef HEAP_PUSH
        free(pending);
        free(first);
        free(readers);
        free(heap);
        if (st) goto out;
        if (emitted < nn) {
            for (int i = 0; i < nn; i++) {
                if (done[i]) continue;
                tml_node *n = &m->nodes[i];
                for (int j = 0; j < n->n_in; j++) {
                    int t = n->in[j];
                    if (t >= 0 && !ready[t]) {
                        st = tml_error(TML_ERR_FORMAT, "node '%s' can never run: its input '%s' %s", n->name, m->tensors[t].name,
                                       producer[t] < 0 ? "is not produced by any node" : "depends on a cycle");
                        goto out;
                    }
                }
            }
            st = tml_error(TML_ERR_FORMAT, "graph has a cycle");
            goto out;
        }
    }
    if (!ready[m->output]) {
        st = tml_error(TML_ERR_FORMAT, "output '%s' is not produced by any node", m->tensors[m->output].name);
        goto out;
    }
    if (m->tensors[m->output].kind != TML_TENSOR_ACT) {
        st = tml_error(TML_ERR_FORMAT, "output '%s' is not an activation", m->tensors[m->output].name);
        goto out;
    }
    if (nn) memcpy(m->nodes, sorted, sizeof(tml_node) * (size_t)nn);
    index_rebuild(m);
out:
    free(producer);
    free(ready);
    free(done);
    free(sorted);
    return st;
}
