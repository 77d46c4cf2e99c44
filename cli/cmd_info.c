/*
 * cmd_info.c - `tinyml info MODEL`: what is in a model file, layer by layer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_schedule.h"

static const char help[] =
    "Usage: tinyml info [options] [MODEL]\n"
    "\n"
    "Show a model layer by layer: op, output shape, parameters, nonzeros,\n"
    "sparsity of the weights, storage dtype and bits per weight, bytes in the file, MACs,\n"
    "activation (fused or the op's own; '-' for ops without one); with\n"
    "totals, the file size and the peak activation memory of one inference.\n"
    "With compressed weights (pruned / clustered) a second table shows the bytes\n"
    "after each compression stage. For an int8 model a table shows its memory\n"
    "schedule (tinyml schedule): per segment of layers, the peak RAM beside the\n"
    "tensor-by-tensor bound and the extra MACs; the schedule is the one stored\n"
    "in the model (or the default), as `tinyml eval` and `tinyml export --c` use.\n"
    "\n"
    "Options:\n"
    "  --stages           always show the compression-stage table\n"
    "  --history          also list the passes applied to the model\n"
    "  --max-recompute P, --ram-limit BYTES, --no-schedule\n"
    "                     another memory schedule than the stored one (tinyml schedule)\n"
    "  --format F         table (default), md, csv or json\n"
    "  -q, --quiet        no log on stderr\n"
    "\n"
    "Examples:\n"
    "  tinyml info lenet5.tmf\n"
    "  tinyml create resnet8 | tinyml info --format md\n"
    "  tinyml info small.tmf --history --format json\n"
    "  tinyml info dscnn-int8.tmf --ram-limit 12K\n";

static void shape_str(const tml_tensor *t, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int i = 0; i < t->ndim; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%d", i ? "x" : "", t->dims[i]);
    }
}

/* dtype of the node's weights as stored: "f32", "int8", "int4" (packed low-bit
 * weights), "f32/3bit" (codebook indices of 3 bits) */
static void weight_kind(const tml_model *m, const tml_node *n, char *buf, size_t cap)
{
    if (!tml_node_has_weights(n)) {
        snprintf(buf, cap, "%s", tml_dtype_name(m->tensors[n->out].dtype));
        return;
    }
    const tml_tensor *w = &m->tensors[n->in[1]];
    char dt[16];
    if (w->qbits) snprintf(dt, sizeof dt, "int%d", w->qbits);
    else snprintf(dt, sizeof dt, "%s", tml_dtype_name(w->dtype));
    if (w->cb)
        snprintf(buf, cap, "%s/%dbit", dt, w->cb->bits);
    else
        snprintf(buf, cap, "%s", dt);
}

/* The activation a layer applies: its fused one (conv, depthwise, dense, add),
 * the op itself for relu/relu6, "-" for ops without one. */
static const char *layer_act(const tml_node *n)
{
    switch (n->op) {
    case TML_OP_CONV2D:
    case TML_OP_DEPTHWISE_CONV2D:
    case TML_OP_DENSE:
    case TML_OP_ADD: return tml_act_name(n->act);
    case TML_OP_RELU: return "relu";
    case TML_OP_RELU6: return "relu6";
    default: return "-";
    }
}

typedef struct node_bytes {
    int64_t params, nonzeros, file, f32, pruned, clustered, entropy;
    int64_t weights, weight_nz; /* the weight tensor alone: sparsity is a property of weights */
} node_bytes;

static void plan_bytes(const tml_tensor *t, int sparse, int cluster, int entropy, int64_t *acc)
{
    tml_save_opts o;
    tml_save_opts_default(&o);
    o.allow_sparse = sparse;
    o.allow_cluster = cluster;
    o.allow_entropy = entropy;
    tml_tensor_storage st;
    if (tml_tensor_storage_plan(t, &o, &st) == TML_OK) *acc += st.bytes;
}

static void node_sizes(const tml_model *m, const tml_node *n, node_bytes *b)
{
    memset(b, 0, sizeof *b);
    for (int j = 0; j < n->n_in; j++) {
        int id = n->in[j];
        if (id < 0 || m->tensors[id].kind != TML_TENSOR_PARAM) continue;
        const tml_tensor *t = &m->tensors[id];
        b->params += tml_tensor_numel(t);
        b->nonzeros += tml_tensor_nonzeros(t);
        if (j == 1 && tml_node_has_weights(n)) {
            b->weights = tml_tensor_numel(t);
            b->weight_nz = tml_tensor_nonzeros(t);
        }
        b->f32 += 4 * tml_tensor_numel(t);
        plan_bytes(t, 1, 1, 1, &b->file);
        plan_bytes(t, 1, 0, 0, &b->pruned);
        plan_bytes(t, 1, 1, 0, &b->clustered);
        plan_bytes(t, 1, 1, 1, &b->entropy);
    }
}

int cmd_info(int argc, char **argv)
{
    cli c;
    cli_init(&c, "info", help, argc, argv);
    const char *pos[1] = {NULL};
    int stages = 0, history = 0;
    cli_sched so;
    cli_sched_init(&so);
    while (cli_next(&c)) {
        if (cli_sched_flag(&c, &so)) continue;
        if (cli_flag(&c, "stages", 0)) {
            stages = 1;
            continue;
        }
        if (cli_flag(&c, "history", 0)) {
            history = 1;
            continue;
        }
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    tml_model *m = cli_load_model(&c, pos[0]);

    static const char *const hdr[] = {"layer", "op", "output", "params", "nonzeros", "sparsity%", "dtype", "bits/w", "bytes", "MACs", "act"};
    tml_table *t = tml_table_new("layers", "Layers", 11, hdr);
    static const char *const shdr[] = {"layer", "params", "f32 bytes", "pruned", "+clustered", "+entropy", "bits/w", "ratio"};
    tml_table *s = tml_table_new("stages", "Bytes after each compression stage (TNSR chunks, framing included)", 8, shdr);
    if (!t || !s) cli_fail(&c, "out of memory");
    node_bytes tot = {0};
    int64_t macs = 0;
    int compressed = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].pruned || m->tensors[i].cb) compressed = 1;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        node_bytes b;
        node_sizes(m, n, &b);
        char shp[64], kind[32];
        shape_str(&m->tensors[n->out], shp, sizeof shp);
        weight_kind(m, n, kind, sizeof kind);
        int64_t mac = tml_node_macs(m, n);
        tml_table_add_row(t);
        tml_table_str(t, 0, n->name);
        tml_table_str(t, 1, tml_op_name(n->op));
        tml_table_str(t, 2, shp);
        tml_table_int(t, 3, b.params);
        tml_table_int(t, 4, b.nonzeros);
        tml_table_num(t, 5, b.weights ? 100.0 * (double)(b.weights - b.weight_nz) / (double)b.weights : 0.0 / 0.0, "%.1f");
        tml_table_str(t, 6, kind);
        tml_table_num(t, 7, b.params ? 8.0 * (double)b.file / (double)b.params : 0.0 / 0.0, "%.2f");
        tml_table_int(t, 8, b.file);
        tml_table_int(t, 9, mac);
        tml_table_str(t, 10, layer_act(n));
        if (b.params) {
            tml_table_add_row(s);
            tml_table_str(s, 0, n->name);
            tml_table_int(s, 1, b.params);
            tml_table_int(s, 2, b.f32);
            tml_table_int(s, 3, b.pruned);
            tml_table_int(s, 4, b.clustered);
            tml_table_int(s, 5, b.entropy);
            tml_table_num(s, 6, 8.0 * (double)b.entropy / (double)b.params, "%.2f");
            tml_table_num(s, 7, (double)b.f32 / (double)(b.entropy ? b.entropy : 1), "%.1fx");
        }
        tot.params += b.params;
        tot.weights += b.weights;
        tot.weight_nz += b.weight_nz;
        tot.nonzeros += b.nonzeros;
        tot.file += b.file;
        tot.f32 += b.f32;
        tot.pruned += b.pruned;
        tot.clustered += b.clustered;
        tot.entropy += b.entropy;
        macs += mac;
    }
    tml_table_add_row(t);
    tml_table_mark_total(t);
    tml_table_str(t, 0, "total");
    tml_table_int(t, 3, tot.params);
    tml_table_int(t, 4, tot.nonzeros);
    tml_table_num(t, 5, tot.weights ? 100.0 * (double)(tot.weights - tot.weight_nz) / (double)tot.weights : 0.0, "%.1f");
    tml_table_num(t, 7, tot.params ? 8.0 * (double)tot.file / (double)tot.params : 0.0, "%.2f");
    tml_table_int(t, 8, tot.file);
    tml_table_int(t, 9, macs);
    tml_table_add_row(s);
    tml_table_mark_total(s);
    tml_table_str(s, 0, "total");
    tml_table_int(s, 1, tot.params);
    tml_table_int(s, 2, tot.f32);
    tml_table_int(s, 3, tot.pruned);
    tml_table_int(s, 4, tot.clustered);
    tml_table_int(s, 5, tot.entropy);
    tml_table_num(s, 6, tot.params ? 8.0 * (double)tot.entropy / (double)tot.params : 0.0, "%.2f");
    tml_table_num(s, 7, (double)tot.f32 / (double)(tot.entropy ? tot.entropy : 1), "%.1fx");

    uint8_t *buf = NULL;
    size_t file_bytes = 0;
    tml_status st = tml_model_write_mem(m, NULL, &buf, &file_bytes);
    if (st) cli_fail_status(&c, st);
    free(buf);
    int64_t peak = 0;
    st = tml_model_peak_activation_bytes(m, &peak);
    if (st) cli_fail_status(&c, st);
    const tml_tensor *in = &m->tensors[m->input];
    char ishape[64], fb[32], pb[32];
    shape_str(in, ishape, sizeof ishape);
    tml_format_bytes(fb, sizeof fb, (double)file_bytes);
    tml_format_bytes(pb, sizeof pb, (double)peak);
    tml_table_note(t, "model %s (%s): input %s %s, %d classes", m->meta.name ? m->meta.name : "?",
                   m->meta.arch ? m->meta.arch : "?", ishape, tml_dtype_name(in->dtype), m->meta.n_classes);
    if (tml_model_is_quantized(m))
        tml_table_note(t, "int8 arithmetic: %s rounding%s", tml_rounding_name(m->meta.rounding),
                       m->meta.float_io ? "; float32 boundary (the model quantizes its input and dequantizes its output)"
                                        : "");
    tml_table_note(t, "file size %zu bytes (%s); peak activation memory of one inference %lld bytes (%s, batch 1, "
                   "layer by layer, buffers shared by liveness: the tensor-by-tensor bound)", file_bytes, fb, (long long)peak, pb);
    {
        char pre[512];
        int pl = snprintf(pre, sizeof pre, "preprocessing: x = raw * %g", m->meta.pre.scale);
        if (m->meta.pre.n_ch) {
            pl += snprintf(pre + pl, sizeof pre - (size_t)pl, ", then (x - mean) / std per channel: mean [");
            for (int i = 0; i < m->meta.pre.n_ch && pl < (int)sizeof pre - 32; i++)
                pl += snprintf(pre + pl, sizeof pre - (size_t)pl, "%s%g", i ? ", " : "", m->meta.pre.mean[i]);
            pl += snprintf(pre + pl, sizeof pre - (size_t)pl, "], std [");
            for (int i = 0; i < m->meta.pre.n_ch && pl < (int)sizeof pre - 8; i++)
                pl += snprintf(pre + pl, sizeof pre - (size_t)pl, "%s%g", i ? ", " : "", m->meta.pre.std[i]);
            snprintf(pre + pl, sizeof pre - (size_t)pl, "]");
        }
        if (m->meta.pre.n_feat > 0) {
            float lo = INFINITY, hi = -INFINITY;
            for (int i = 0; i < m->meta.pre.n_feat; i++) {
                lo = fminf(lo, m->meta.pre.feat_std[i]);
                hi = fmaxf(hi, m->meta.pre.feat_std[i]);
            }
            pl += snprintf(pre + pl, sizeof pre - (size_t)pl,
                           ", then (x[i] - mean[i]) / std[i] per feature (%d features, std %g..%g)",
                           m->meta.pre.n_feat, (double)lo, (double)hi);
        }
        tml_table_note(t, "%s", pre);
    }
    if (m->meta.labels && m->meta.n_classes > 0) {
        char lab[900];
        int ll = snprintf(lab, sizeof lab, "class labels:");
        for (int i = 0; i < m->meta.n_classes && ll < (int)sizeof lab - 40; i++)
            ll += snprintf(lab + ll, sizeof lab - (size_t)ll, "%s %d %s", i ? "," : "", i, m->meta.labels[i]);
        if (ll >= (int)sizeof lab - 40) snprintf(lab + sizeof lab - 5, 5, "...");
        tml_table_note(t, "%s", lab);
    }

    tml_table *tables[4] = {t, NULL, NULL, NULL};
    int nt = 1;
    if (stages || compressed) tables[nt++] = s;
    tml_table *sched = NULL;
    if (tml_model_is_quantized(m)) {
        tml_sched_opts so2;
        const char *from;
        cli_sched_opts(&c, &so, m, &so2, &from);
        tml_schedule sc;
        int exported = cli_sched_compute(&c, m, &so2, NULL, &sc);
        sched = cli_sched_table(m, &sc, from, exported);
        if (!sched) cli_fail(&c, "out of memory");
        if (so2.enabled && so2.ram_limit > 0 && !sc.fits)
            cli_warn(&c, "no schedule fits %lld bytes: the least RAM is %lld bytes (%lld over)", (long long)so2.ram_limit,
                     (long long)sc.arena_bytes, (long long)(sc.arena_bytes - so2.ram_limit));
        tml_schedule_free(&sc);
        tables[nt++] = sched;
    } else if (so.none || so.ram_limit > 0 || so.max_recompute >= 0) {
        cli_usage_error(&c, "memory schedules are for int8 models: quantize first");
    }
    tml_table *h = NULL;
    if (history) {
        static const char *const hh[] = {"#", "pass", "time", "details"};
        h = tml_table_new("history", "History", 4, hh);
        cJSON *arr = cJSON_Parse(m->meta.history ? m->meta.history : "[]");
        int k = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
            tml_table_add_row(h);
            tml_table_int(h, 0, ++k);
            cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pass");
            cJSON *tm = cJSON_GetObjectItemCaseSensitive(e, "time");
            tml_table_str(h, 1, cJSON_IsString(p) ? p->valuestring : "?");
            tml_table_str(h, 2, cJSON_IsString(tm) ? tm->valuestring : "");
            cJSON *copy = cJSON_Duplicate(e, 1);
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "pass");
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "time");
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "tinyml");
            char *txt = cJSON_PrintUnformatted(copy);
            tml_table_str(h, 3, txt ? txt : "");
            cJSON_free(txt);
            cJSON_Delete(copy);
        }
        cJSON_Delete(arr);
        tables[nt++] = h;
    }
    cli_print_tables(&c, stdout, tables, nt);
    tml_table_free(t);
    tml_table_free(s);
    tml_table_free(h);
    tml_table_free(sched);
    tml_model_free(m);
    return 0;
}
