/*
 * tmf_json.c - the META (model metadata) and GRPH (graph) chunks, both UTF-8
 * JSON (schemas: docs/format.md).
 *
 * Floats are written as the shortest decimal (6..9 significant digits, else
 * 17) that converts back to the same binary32 bits through strtod and a float
 * cast, which is exactly what the reader does; -0 keeps its sign. Non-finite
 * floats, which JSON cannot express as numbers, are the strings "NaN",
 * "Infinity" and "-Infinity".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tmf_internal.h"

#define BAD(...) tml_error(TML_ERR_FORMAT, __VA_ARGS__)
#define NOMEM() tml_error(TML_ERR_NOMEM, "out of memory")

/* ---- helpers ------------------------------------------------------------------------ */

static cJSON *json_float(float f)
{
    char buf[64];
    if (isnan(f)) return cJSON_CreateString("NaN");
    if (isinf(f)) return cJSON_CreateString(f > 0 ? "Infinity" : "-Infinity");
    for (int p = 6;; p++) {
        snprintf(buf, sizeof buf, "%.*g", p > 9 ? 17 : p, (double)f);
        float back = (float)strtod(buf, NULL);
        if (p > 9 || memcmp(&back, &f, sizeof f) == 0) break;
    }
    for (char *c = buf; *c; c++)
        if (*c == ',') *c = '.'; /* a locale decimal comma is not JSON */
    return cJSON_CreateRaw(buf);
}

/* Parses one JSON value that must fill the whole text (whitespace aside). */
static cJSON *parse_text(const uint8_t *text, size_t len, const char *what, tml_status *st)
{
    *st = TML_OK;
    if (len == 0) {
        *st = BAD("%s is empty", what);
        return NULL;
    }
    if (memchr(text, 0, len)) {
        *st = BAD("%s contains a NUL byte", what);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)text, len, &end, 0);
    if (!j) {
        long at = end ? (long)(end - (const char *)text) : -1;
        *st = BAD("%s is not valid JSON (error near byte %ld)", what, at);
        return NULL;
    }
    for (const char *c = end; c < (const char *)text + len; c++) {
        if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r') {
            cJSON_Delete(j);
            *st = BAD("%s has trailing data after its JSON value (byte %ld)", what, (long)(c - (const char *)text));
            return NULL;
        }
    }
    return j;
}

/* Largest double that still rounds to a finite float. */
#define FLT_ROUND_LIMIT 0x1.ffffffp+127

static tml_status get_float(const cJSON *it, const char *what, float *out)
{
    if (cJSON_IsNumber(it)) {
        double d = it->valuedouble;
        if (!(fabs(d) < FLT_ROUND_LIMIT)) return BAD("%s: %g is out of float range", what, d);
        *out = (float)d;
        return TML_OK;
    }
    if (cJSON_IsString(it)) {
        const char *s = it->valuestring;
        if (strcmp(s, "NaN") == 0) *out = NAN;
        else if (strcmp(s, "Infinity") == 0) *out = INFINITY;
        else if (strcmp(s, "-Infinity") == 0) *out = -INFINITY;
        else return BAD("%s: expected a number, got the string \"%.40s\"", what, s);
        return TML_OK;
    }
    return BAD("%s must be a number", what);
}

static tml_status get_int(const cJSON *it, const char *what, double lo, double hi, int *out)
{
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
        return BAD("%s must be an integer", what);
    if (it->valuedouble < lo || it->valuedouble > hi) return BAD("%s = %g is out of range [%g, %g]", what, it->valuedouble, lo, hi);
    *out = (int)it->valuedouble;
    return TML_OK;
}

static tml_status get_int_array(const cJSON *it, const char *what, int n, int *out)
{
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != n) return BAD("%s must be an array of %d integers", what, n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, it)
    {
        tml_status st = get_int(e, what, -2147483648.0, 2147483647.0, &out[i++]);
        if (st) return st;
    }
    return TML_OK;
}

/* Optional string field: absent or null leaves *out NULL. */
static tml_status get_opt_string(const cJSON *it, const char *what, char **out)
{
    *out = NULL;
    if (!it || cJSON_IsNull(it)) return TML_OK;
    if (!cJSON_IsString(it)) return BAD("%s must be a string", what);
    *out = tml_strdup(it->valuestring);
    return *out ? TML_OK : NOMEM();
}

static int add_int_pair(cJSON *o, const char *key, int a, int b)
{
    int v[2] = {a, b};
    cJSON *arr = cJSON_CreateIntArray(v, 2);
    return arr && cJSON_AddItemToObject(o, key, arr);
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---- META ------------------------------------------------------------------------------- */

static const char *const meta_keys[] = {"name", "arch", "classes", "labels", "preprocess", "history", "rounding", "io"};

static int is_meta_key(const char *k)
{
    for (size_t i = 0; i < sizeof meta_keys / sizeof meta_keys[0]; i++)
        if (strcmp(k, meta_keys[i]) == 0) return 1;
    return 0;
}

static cJSON *float_array(const float *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = json_float(v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* obj[key] = the n floats of v; 0 on OOM. */
static int add_float_array(cJSON *obj, const char *key, const float *v, int n)
{
    cJSON *a = float_array(v, n);
    if (a && cJSON_AddItemToObject(obj, key, a)) return 1;
    cJSON_Delete(a);
    return 0;
}

tml_status tml_meta_to_json(const tml_meta *meta, char **out)
{
    tml_status st = TML_OK;
    cJSON *root = cJSON_CreateObject(), *hist = NULL, *extra = NULL, *pre = NULL;
    *out = NULL;
    if (!root) return NOMEM();
    hist = cJSON_Parse(meta->history ? meta->history : "[]");
    if (!cJSON_IsArray(hist)) {
        st = tml_error(TML_ERR_INVALID, "cannot save: the model history is not a JSON array");
        goto out;
    }
    if (meta->extra && meta->extra[0]) {
        extra = cJSON_Parse(meta->extra);
        if (!cJSON_IsObject(extra)) {
            st = tml_error(TML_ERR_INVALID, "cannot save: the extra metadata is not a JSON object");
            goto out;
        }
    }
    if (meta->pre.n_ch < 0 || meta->pre.n_ch > TML_MAX_CHANNELS_PRE) {
        st = tml_error(TML_ERR_INVALID, "cannot save: preprocessing has %d channels", meta->pre.n_ch);
        goto out;
    }
    if (meta->name && !cJSON_AddStringToObject(root, "name", meta->name)) goto oom;
    if (meta->arch && !cJSON_AddStringToObject(root, "arch", meta->arch)) goto oom;
    if (!cJSON_AddNumberToObject(root, "classes", meta->n_classes)) goto oom;
    if (meta->labels) {
        cJSON *l = cJSON_AddArrayToObject(root, "labels");
        if (!l) goto oom;
        for (int i = 0; i < meta->n_classes; i++) {
            cJSON *s = cJSON_CreateString(meta->labels[i] ? meta->labels[i] : "");
            if (!s || !cJSON_AddItemToArray(l, s)) {
                cJSON_Delete(s);
                goto oom;
            }
        }
    }
    pre = cJSON_AddObjectToObject(root, "preprocess");
    cJSON *sc = json_float(meta->pre.scale);
    if (!pre || !sc || !cJSON_AddItemToObject(pre, "scale", sc)) {
        cJSON_Delete(sc);
        goto oom;
    }
    if (!add_float_array(pre, "mean", meta->pre.mean, meta->pre.n_ch) ||
        !add_float_array(pre, "std", meta->pre.std, meta->pre.n_ch))
        goto oom;
    if (meta->pre.n_feat > 0 && (!add_float_array(pre, "feature_mean", meta->pre.feat_mean, meta->pre.n_feat) ||
                                 !add_float_array(pre, "feature_std", meta->pre.feat_std, meta->pre.n_feat)))
        goto oom;
    if (!cJSON_AddItemToObject(root, "history", hist)) goto oom;
    hist = NULL;
    /* written only when not the default, so older files keep their bytes */
    if (meta->rounding != TML_ROUNDING_TINYML &&
        !cJSON_AddStringToObject(root, "rounding", tml_rounding_name(meta->rounding)))
        goto oom;
    if (meta->float_io && !cJSON_AddStringToObject(root, "io", "float")) goto oom;
    /* unknown keys go back verbatim, after ours; a key we own is never overridden */
    if (extra) {
        cJSON *c = extra->child;
        while (c) {
            cJSON *next = c->next;
            if (c->string && !is_meta_key(c->string)) {
                cJSON_DetachItemViaPointer(extra, c);
                if (!cJSON_AddItemToObject(root, c->string, c)) {
                    cJSON_Delete(c);
                    goto oom;
                }
            }
            c = next;
        }
    }
    *out = cJSON_PrintUnformatted(root);
    if (!*out) goto oom;
    goto out;
oom:
    st = NOMEM();
out:
    cJSON_Delete(root);
    cJSON_Delete(hist);
    cJSON_Delete(extra);
    return st;
}

static tml_status read_float_list(const cJSON *it, const char *what, float *v, int *n, int max)
{
    if (!cJSON_IsArray(it)) return BAD("%s must be an array of numbers", what);
    int k = cJSON_GetArraySize(it);
    if (k > max) return BAD("%s has %d entries (max %d)", what, k, max);
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, it)
    {
        tml_status st = get_float(e, what, &v[i++]);
        if (st) return st;
    }
    *n = k;
    return TML_OK;
}

/* Reads "preprocess" into *pre (whose feature arrays the caller owns and
 * frees, also on failure). */
static tml_status read_preprocess(const cJSON *it, tml_preproc *pre)
{
    if (!cJSON_IsObject(it)) return BAD("META: \"preprocess\" must be an object");
    tml_status st;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(it, "scale");
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(it, "mean");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(it, "std");
    const cJSON *fmean = cJSON_GetObjectItemCaseSensitive(it, "feature_mean");
    const cJSON *fsd = cJSON_GetObjectItemCaseSensitive(it, "feature_std");
    if (sc && (st = get_float(sc, "META: preprocess.scale", &pre->scale))) return st;
    int nm = 0, ns = 0;
    if (mean && (st = read_float_list(mean, "META: preprocess.mean", pre->mean, &nm, TML_MAX_CHANNELS_PRE))) return st;
    if (sd && (st = read_float_list(sd, "META: preprocess.std", pre->std, &ns, TML_MAX_CHANNELS_PRE))) return st;
    if (nm != ns) return BAD("META: preprocess.mean has %d entries but preprocess.std has %d", nm, ns);
    pre->n_ch = nm;
    if (!fmean && !fsd) return TML_OK;
    if (!cJSON_IsArray(fmean) || !cJSON_IsArray(fsd) || cJSON_GetArraySize(fmean) != cJSON_GetArraySize(fsd))
        return BAD("META: preprocess.feature_mean and feature_std must be arrays of the same length");
    int nf = cJSON_GetArraySize(fmean), got = 0;
    if (nf < 1 || nf > TML_MAX_NUMEL) return BAD("META: preprocess.feature_mean has %d entries", nf);
    /* each entry costs at least two bytes of JSON, so nf is bounded by the text */
    pre->feat_mean = malloc(sizeof(float) * (size_t)nf);
    pre->feat_std = malloc(sizeof(float) * (size_t)nf);
    if (!pre->feat_mean || !pre->feat_std) return NOMEM();
    if ((st = read_float_list(fmean, "META: preprocess.feature_mean", pre->feat_mean, &got, nf)) ||
        (st = read_float_list(fsd, "META: preprocess.feature_std", pre->feat_std, &got, nf)))
        return st;
    pre->n_feat = nf;
    if (nm) return BAD("META: preprocessing has both per-channel and per-feature mean/std");
    return TML_OK;
}

tml_status tml_meta_from_json(tml_meta *meta, const uint8_t *text, size_t len)
{
    tml_status st;
    cJSON *root = parse_text(text, len, "META", &st), *extra = NULL;
    char *name = NULL, *arch = NULL, *history = NULL, *extra_text = NULL;
    char **labels = NULL;
    int n_labels = -1, classes = -1, float_io = 0;
    tml_rounding rounding = TML_ROUNDING_TINYML;
    tml_preproc pre = {.scale = 1.0f};
    if (!root) return st;
    if (!cJSON_IsObject(root)) {
        st = BAD("META is not a JSON object");
        goto out;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, root)
    {
        const char *k = c->string ? c->string : "";
        if (strcmp(k, "name") == 0) {
            free(name);
            if ((st = get_opt_string(c, "META: \"name\"", &name))) goto out;
        } else if (strcmp(k, "arch") == 0) {
            free(arch);
            if ((st = get_opt_string(c, "META: \"arch\"", &arch))) goto out;
        } else if (strcmp(k, "rounding") == 0) {
            const char *r = cJSON_IsString(c) ? c->valuestring : "";
            if (strcmp(r, "tinyml") == 0) rounding = TML_ROUNDING_TINYML;
            else if (strcmp(r, "tflite") == 0) rounding = TML_ROUNDING_TFLITE;
            else {
                st = BAD("META: \"rounding\" must be \"tinyml\" or \"tflite\"");
                goto out;
            }
        } else if (strcmp(k, "io") == 0) {
            const char *r = cJSON_IsString(c) ? c->valuestring : "";
            if (strcmp(r, "float") == 0) float_io = 1;
            else if (strcmp(r, "native") == 0) float_io = 0;
            else {
                st = BAD("META: \"io\" must be \"float\" or \"native\"");
                goto out;
            }
        } else if (strcmp(k, "classes") == 0) {
            if ((st = get_int(c, "META: \"classes\"", 0, 1 << 24, &classes))) goto out;
        } else if (strcmp(k, "labels") == 0) {
            if (!cJSON_IsArray(c) || labels) {
                st = BAD("META: \"labels\" must be one array of strings");
                goto out;
            }
            int n = cJSON_GetArraySize(c), i = 0;
            labels = calloc((size_t)(n ? n : 1), sizeof *labels);
            if (!labels) goto oom;
            n_labels = n;
            const cJSON *l;
            cJSON_ArrayForEach(l, c)
            {
                if (!cJSON_IsString(l)) {
                    st = BAD("META: label %d is not a string", i);
                    goto out;
                }
                if (!(labels[i++] = tml_strdup(l->valuestring))) goto oom;
            }
        } else if (strcmp(k, "preprocess") == 0) {
            free(pre.feat_mean);
            free(pre.feat_std);
            pre = (tml_preproc){.scale = 1.0f};
            if ((st = read_preprocess(c, &pre))) goto out;
        } else if (strcmp(k, "history") == 0) {
            if (!cJSON_IsArray(c)) {
                st = BAD("META: \"history\" must be an array");
                goto out;
            }
            free(history);
            if (!(history = cJSON_PrintUnformatted(c))) goto oom;
        } else {
            if (!extra && !(extra = cJSON_CreateObject())) goto oom;
            cJSON *dup = cJSON_Duplicate(c, 1);
            if (!dup || !cJSON_AddItemToObject(extra, k, dup)) {
                cJSON_Delete(dup);
                goto oom;
            }
        }
    }
    if (labels && classes >= 0 && classes != n_labels) {
        st = BAD("META: %d labels for %d classes", n_labels, classes);
        goto out;
    }
    if (extra && !(extra_text = cJSON_PrintUnformatted(extra))) goto oom;
    if (!history && !(history = tml_strdup("[]"))) goto oom;
    if (labels) {
        if ((st = tml_meta_set_labels(meta, n_labels, (const char *const *)labels))) goto out;
    } else {
        if (meta->labels) {
            for (int i = 0; i < meta->n_classes; i++) free(meta->labels[i]);
            free(meta->labels);
            meta->labels = NULL;
        }
        meta->n_classes = classes >= 0 ? classes : 0;
    }
    free(meta->name);
    free(meta->arch);
    free(meta->history);
    free(meta->extra);
    meta->name = name;
    meta->arch = arch;
    meta->history = history;
    meta->extra = extra_text;
    free(meta->pre.feat_mean);
    free(meta->pre.feat_std);
    meta->pre = pre;
    pre.feat_mean = pre.feat_std = NULL;
    meta->rounding = rounding;
    meta->float_io = float_io;
    name = arch = history = extra_text = NULL;
    goto out;
oom:
    st = NOMEM();
out:
    if (labels) {
        for (int i = 0; i < n_labels; i++) free(labels[i]);
        free(labels);
    }
    free(name);
    free(arch);
    free(history);
    free(extra_text);
    free(pre.feat_mean);
    free(pre.feat_std);
    cJSON_Delete(extra);
    cJSON_Delete(root);
    return st;
}

/* ---- GRPH --------------------------------------------------------------------------------- */

/* Attributes that differ from tml_model_add_node()'s defaults, for the ops
 * that use them. Conv kernels are not written: finalize takes them from the
 * weight dims. */
static int add_node_attrs(cJSON *o, const tml_node *n)
{
    int ok = 1;
    int window = n->op == TML_OP_CONV2D || n->op == TML_OP_DEPTHWISE_CONV2D || n->op == TML_OP_MAXPOOL || n->op == TML_OP_AVGPOOL;
    if (n->op == TML_OP_MAXPOOL || n->op == TML_OP_AVGPOOL) ok &= add_int_pair(o, "kernel", n->kh, n->kw);
    if (window) {
        if (n->sh != 1 || n->sw != 1) ok &= add_int_pair(o, "stride", n->sh, n->sw);
        if (n->dh != 1 || n->dw != 1) ok &= add_int_pair(o, "dilation", n->dh, n->dw);
        if (n->pad[0] || n->pad[1] || n->pad[2] || n->pad[3]) {
            cJSON *p = cJSON_CreateIntArray(n->pad, 4);
            ok &= p && cJSON_AddItemToObject(o, "pad", p);
        }
    }
    if (n->op == TML_OP_CONV2D && n->groups != 1) ok &= cJSON_AddNumberToObject(o, "groups", n->groups) != NULL;
    if (n->op == TML_OP_DEPTHWISE_CONV2D && n->depth_mult != 1)
        ok &= cJSON_AddNumberToObject(o, "depth_mult", n->depth_mult) != NULL;
    if ((n->op == TML_OP_CONV2D || n->op == TML_OP_DEPTHWISE_CONV2D || n->op == TML_OP_DENSE || n->op == TML_OP_ADD) &&
        n->act != TML_ACT_NONE)
        ok &= cJSON_AddStringToObject(o, "act", tml_act_name(n->act)) != NULL;
    if (n->op == TML_OP_BATCHNORM && float_bits(n->eps) != float_bits(1e-5f)) {
        cJSON *x = json_float(n->eps);
        ok &= x && cJSON_AddItemToObject(o, "eps", x);
    }
    if (n->op == TML_OP_DROPOUT && float_bits(n->rate) != 0) {
        cJSON *x = json_float(n->rate);
        ok &= x && cJSON_AddItemToObject(o, "rate", x);
    }
    if (n->op == TML_OP_SOFTMAX && float_bits(n->beta) != float_bits(1.0f)) {
        cJSON *x = json_float(n->beta);
        ok &= x && cJSON_AddItemToObject(o, "beta", x);
    }
    return ok;
}

tml_status tml_graph_to_json(const tml_model *m, char **out)
{
    *out = NULL;
    if (m->input < 0 || m->input >= m->n_tensors) return tml_error(TML_ERR_INVALID, "cannot save: the model has no input tensor");
    if (m->output < 0 || m->output >= m->n_tensors) return tml_error(TML_ERR_INVALID, "cannot save: the model has no output tensor");
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (!n->name || !n->name[0]) return tml_error(TML_ERR_INVALID, "cannot save: node %d has no name", i);
        if (n->op < 0 || n->op >= TML_OP_COUNT) return tml_error(TML_ERR_INVALID, "cannot save: node '%s' has a bad op", n->name);
        if (n->n_in < 0 || n->n_in > TML_MAX_NODE_INPUTS || n->out < 0 || n->out >= m->n_tensors)
            return tml_error(TML_ERR_INVALID, "cannot save: node '%s' has bad inputs or output", n->name);
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] < -1 || n->in[j] >= m->n_tensors)
                return tml_error(TML_ERR_INVALID, "cannot save: node '%s' input %d refers to tensor id %d", n->name, j, n->in[j]);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *nodes = NULL;
    if (!root || !cJSON_AddStringToObject(root, "input", m->tensors[m->input].name) ||
        !cJSON_AddStringToObject(root, "output", m->tensors[m->output].name) || !(nodes = cJSON_AddArrayToObject(root, "nodes")))
        goto oom;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(nodes, o)) {
            cJSON_Delete(o);
            goto oom;
        }
        cJSON *in;
        if (!cJSON_AddStringToObject(o, "name", n->name) || !cJSON_AddStringToObject(o, "op", tml_op_name(n->op)) ||
            !(in = cJSON_AddArrayToObject(o, "in")))
            goto oom;
        for (int j = 0; j < n->n_in; j++) {
            cJSON *s = n->in[j] < 0 ? cJSON_CreateNull() : cJSON_CreateString(m->tensors[n->in[j]].name);
            if (!s || !cJSON_AddItemToArray(in, s)) {
                cJSON_Delete(s);
                goto oom;
            }
        }
        if (!cJSON_AddStringToObject(o, "out", m->tensors[n->out].name) || !add_node_attrs(o, n)) goto oom;
    }
    *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return *out ? TML_OK : NOMEM();
oom:
    cJSON_Delete(root);
    return NOMEM();
}

/* Resolves a tensor name; `what` names the reference in messages ("node 'c1': input"). */
static tml_status find_named(const tml_model *m, const cJSON *it, const char *what, int *id)
{
    if (!cJSON_IsString(it)) return BAD("%s must be a tensor name", what);
    *id = tml_model_find_tensor(m, it->valuestring);
    if (*id < 0) return BAD("%s '%.80s' is not a tensor in this file", what, it->valuestring);
    return TML_OK;
}

static tml_status read_node_attrs(const cJSON *o, tml_node *n)
{
    tml_status st = TML_OK;
    char what[96];
    const cJSON *c;
    cJSON_ArrayForEach(c, o)
    {
        const char *k = c->string ? c->string : "";
        int v[4];
        snprintf(what, sizeof what, "node '%.40s': \"%.20s\"", n->name, k);
        if (strcmp(k, "kernel") == 0) {
            if (!(st = get_int_array(c, what, 2, v))) n->kh = v[0], n->kw = v[1];
        } else if (strcmp(k, "stride") == 0) {
            if (!(st = get_int_array(c, what, 2, v))) n->sh = v[0], n->sw = v[1];
        } else if (strcmp(k, "dilation") == 0) {
            if (!(st = get_int_array(c, what, 2, v))) n->dh = v[0], n->dw = v[1];
        } else if (strcmp(k, "pad") == 0) {
            if (!(st = get_int_array(c, what, 4, v))) memcpy(n->pad, v, sizeof n->pad);
        } else if (strcmp(k, "groups") == 0) {
            st = get_int(c, what, -2147483648.0, 2147483647.0, &n->groups);
        } else if (strcmp(k, "depth_mult") == 0) {
            st = get_int(c, what, -2147483648.0, 2147483647.0, &n->depth_mult);
        } else if (strcmp(k, "act") == 0) {
            const char *a = cJSON_IsString(c) ? c->valuestring : NULL;
            if (a && strcmp(a, "relu") == 0) n->act = TML_ACT_RELU;
            else if (a && strcmp(a, "relu6") == 0) n->act = TML_ACT_RELU6;
            else if (a && strcmp(a, "none") == 0) n->act = TML_ACT_NONE;
            else st = BAD("%s must be \"relu\", \"relu6\" or \"none\"", what);
        } else if (strcmp(k, "eps") == 0) {
            st = get_float(c, what, &n->eps);
        } else if (strcmp(k, "rate") == 0) {
            st = get_float(c, what, &n->rate);
        } else if (strcmp(k, "beta") == 0) {
            st = get_float(c, what, &n->beta);
        }
        /* other keys: written by a newer tinyml; ignored */
        if (st) return st;
    }
    return TML_OK;
}

tml_status tml_graph_from_json(tml_model *m, const uint8_t *text, size_t len)
{
    tml_status st;
    cJSON *root = parse_text(text, len, "GRPH", &st);
    if (!root) return st;
    const cJSON *jin = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *jout = cJSON_GetObjectItemCaseSensitive(root, "output");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    const cJSON *o;
    int idx = 0;
    if (!cJSON_IsObject(root)) {
        st = BAD("GRPH is not a JSON object");
        goto out;
    }
    if (!cJSON_IsString(jin) || !cJSON_IsString(jout)) {
        st = BAD("GRPH: \"input\" and \"output\" must be tensor names");
        goto out;
    }
    if (!cJSON_IsArray(nodes)) {
        st = BAD("GRPH: \"nodes\" must be an array");
        goto out;
    }
    cJSON_ArrayForEach(o, nodes)
    {
        const cJSON *jn = cJSON_GetObjectItemCaseSensitive(o, "name");
        const cJSON *jop = cJSON_GetObjectItemCaseSensitive(o, "op");
        const cJSON *jins = cJSON_GetObjectItemCaseSensitive(o, "in");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(o, "out");
        if (!cJSON_IsObject(o) || !cJSON_IsString(jn) || !jn->valuestring[0]) {
            st = BAD("GRPH: node #%d is not an object with a \"name\"", idx);
            goto out;
        }
        const char *nm = jn->valuestring;
        tml_op op;
        if (!cJSON_IsString(jop)) {
            st = BAD("node '%s': \"op\" must be a string", nm);
            goto out;
        }
        if (tml_op_from_name(jop->valuestring, &op) != TML_OK) {
            st = BAD("node '%s': unknown op '%.40s'", nm, jop->valuestring);
            goto out;
        }
        if (!cJSON_IsArray(jins) || cJSON_GetArraySize(jins) > TML_MAX_NODE_INPUTS) {
            st = BAD("node '%s': \"in\" must be an array of at most %d tensor names", nm, TML_MAX_NODE_INPUTS);
            goto out;
        }
        int in[TML_MAX_NODE_INPUTS], n_in = 0, out_id = -1;
        char what[128];
        const cJSON *e;
        cJSON_ArrayForEach(e, jins)
        {
            if (cJSON_IsNull(e))
                in[n_in] = -1;
            else {
                snprintf(what, sizeof what, "node '%.80s': input %d", nm, n_in);
                if ((st = find_named(m, e, what, &in[n_in]))) goto out;
            }
            n_in++;
        }
        snprintf(what, sizeof what, "node '%.80s': output", nm);
        if ((st = find_named(m, jo, what, &out_id))) goto out;
        int ni = tml_model_add_node(m, nm, op, n_in, in, out_id);
        if (ni < 0) {
            /* keep add_node's message ("duplicate node name ..."), as a format error */
            char msg[256];
            snprintf(msg, sizeof msg, "%s", tml_last_error());
            st = ni == TML_ERR_NOMEM ? TML_ERR_NOMEM : BAD("%s", msg);
            goto out;
        }
        if ((st = read_node_attrs(o, &m->nodes[ni]))) goto out;
        idx++;
    }
    int xi = -1, yi = -1;
    if ((st = find_named(m, jin, "GRPH: graph input", &xi)) || (st = find_named(m, jout, "GRPH: graph output", &yi))) goto out;
    m->input = xi;
    m->output = yi;
out:
    cJSON_Delete(root);
    return st;
}
