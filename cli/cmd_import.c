/*
 * cmd_import.c - `tinyml import MODEL.onnx|MODEL.tflite`: an ONNX or TFLite
 * model as a .tmf (the format is told by the file's content).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_onnx.h"
#include "tinyml/tml_tflite.h"

static const char help[] =
    "Usage: tinyml import MODEL.onnx|MODEL.tflite [options] [-o OUT.tmf]\n"
    "\n"
    "Convert an ONNX or a TensorFlow Lite model into a tinyml model; the format\n"
    "is told by the file's content, not its name.\n"
    "\n"
    "ONNX (opsets 1..18; what PyTorch and most exporters write) becomes a float\n"
    "model. NCHW tensors become NHWC, conv weights OHWI, depthwise convs (group =\n"
    "channels) TML depthwise ops; dimension 0 is taken as the batch, so the model\n"
    "runs on any batch size. See docs/onnx.md for the supported ops.\n"
    "\n"
    "TFLite (.tflite, schema 3): float32 and full-int8 models (per-tensor or\n"
    "per-channel weights), and 'hybrid' ones (int8 weights, float activations:\n"
    "imported as float). int8 models keep their scales and zero points exactly\n"
    "and get TFLite rounding, so tinyml's int8 engine computes what TensorFlow\n"
    "Lite Micro computes, bit for bit. See docs/tflite.md for the ops.\n"
    "\n"
    "Anything tinyml cannot represent is an error naming the node or operator:\n"
    "nothing is dropped.\n"
    "\n"
    "The ONNX file does not say how raw data (0..255 pixels) must be scaled: give\n"
    "the preprocessing the model was trained with, x = (raw * scale - mean) / std.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE     write here ('-' = stdout; default stdout if not a terminal)\n"
    "  --input-shape S       per-sample input shape when the file leaves it symbolic:\n"
    "                        HxWxC for (N,C,H,W) images, F for (N,F) vectors\n"
    "  --scale X             preprocessing: multiply raw values by X (default 1/255)\n"
    "  --mean M[,M..]        preprocessing: subtract per-channel mean after scaling\n"
    "  --std S[,S..]         preprocessing: divide by per-channel std\n"
    "  --labels FILE         class names, one per line (as many as model outputs)\n"
    "  --classes-from SPEC   take the class names from a dataset (e.g. fashion-mnist)\n"
    "  --name NAME           model name stored in the file (default: MODEL's base name)\n"
    "  -q, --quiet           no log on stderr\n"
    "\n"
    "Examples:\n"
    "  tinyml import lenet5.onnx -o lenet5.tmf\n"
    "  tinyml import kws_ref_model.tflite --scale 1 -o kws.tmf\n"
    "  tinyml import lenet5.onnx --classes-from fashion-mnist | tinyml eval --data fashion-mnist\n"
    "  tinyml import mobilenet.onnx --input-shape 96x96x3 --scale 0.00392157 \\\n"
    "      --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 -o mobilenet.tmf\n";

/* "HxWxC", "HxW" or "F" into tinyml per-sample dims. */
static int parse_shape(const char *s, tml_onnx_opts *o)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *tok = strtok(buf, "x"); tok; tok = strtok(NULL, "x")) {
        long v;
        if (n >= TML_MAX_DIMS || cli_parse_long(tok, &v) || v < 1 || v > 65536) return -1;
        o->input_dims[n++] = (int32_t)v;
    }
    o->input_ndim = n;
    return n > 0 ? 0 : -1;
}

/* Reads one label per line (trailing CR/LF stripped; empty lines kept as ""). */
static char **read_labels(const cli *c, const char *path, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) cli_fail(c, "cannot open labels file '%s'", path);
    char **l = NULL, line[1024];
    int cap = 0;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        size_t k = strcspn(line, "\r\n");
        line[k] = '\0';
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(l, sizeof *l * (size_t)cap);
            if (!p) cli_fail(c, "out of memory");
            l = p;
        }
        if (!(l[(*n)++] = tml_strdup(line))) cli_fail(c, "out of memory");
    }
    fclose(f);
    while (*n > 0 && l[*n - 1][0] == '\0') free(l[--(*n)]); /* trailing blank lines */
    return l;
}

static const char *base_name(const char *path, char *buf, size_t cap)
{
    const char *b = strrchr(path, '/');
    snprintf(buf, cap, "%s", b ? b + 1 : path);
    size_t l = strlen(buf);
    if (l > 5 && strcmp(buf + l - 5, ".onnx") == 0) buf[l - 5] = '\0';
    if (l > 7 && strcmp(buf + l - 7, ".tflite") == 0) buf[l - 7] = '\0';
    return buf;
}


/* History entry, save and summary of a TFLite import. */
static void finish_tflite(cli *c, tml_model *m, const char *path, const char *out, const tml_tflite_info *ti)
{
    char bn[256];
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "source", strcmp(path, "-") == 0 ? "<stdin>" : base_name(path, bn, sizeof bn));
    cJSON_AddStringToObject(h, "format", "tflite");
    cJSON_AddNumberToObject(h, "schema_version", ti->version);
    if (ti->description[0]) cJSON_AddStringToObject(h, "description", ti->description);
    cJSON_AddNumberToObject(h, "tflite_operators", ti->operators);
    cJSON_AddNumberToObject(h, "nodes", m->n_nodes);
    cJSON_AddStringToObject(h, "kind", ti->full_int8 ? "int8" : ti->hybrid ? "hybrid (imported as float)" : "float32");
    if (ti->merged_pads) cJSON_AddNumberToObject(h, "merged_pads", ti->merged_pads);
    cli_add_history(c, m, h);
    cli_save_model(c, m, out);

    int64_t params = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == TML_TENSOR_PARAM) params += tml_tensor_numel(&m->tensors[i]);
    cli_log(c, "imported %s (TFLite schema %u%s%s): %d operators -> %d tinyml nodes, %lld parameters", path,
            ti->version, ti->description[0] ? ", " : "", ti->description, ti->operators, m->n_nodes,
            (long long)params);
    cli_log(c, "  TFLite ops: %s", ti->op_summary);
    cli_log(c, "  %s model%s; arithmetic: %s rounding", ti->full_int8 ? "full-int8" : ti->hybrid ? "hybrid" : "float32",
            ti->full_int8 ? (ti->float_io ? " with a float32 boundary (QUANTIZE / DEQUANTIZE at the ends)"
                                          : " with int8 input and output")
            : ti->hybrid  ? ": its int8 weights were dequantized, it runs as a float model"
                          : "",
            tml_rounding_name(m->meta.rounding));
    if (ti->merged_pads) cli_log(c, "  %d PAD ops merged into the padding of the following convolution", ti->merged_pads);
    if (ti->from_tinyml) cli_log(c, "  written by tinyml: names, labels, preprocessing and history restored");
    tml_model_free(m);
}

int cmd_import(int argc, char **argv)
{
    cli c;
    cli_init(&c, "import", help, argc, argv);
    const char *pos[1] = {NULL}, *out = NULL, *shape = NULL, *name = NULL, *mean = NULL, *stdv = NULL,
               *labels = NULL, *classes_from = NULL;
    double scale = 1.0 / 255.0;
    int scale_given = 0;
    while (cli_next(&c)) {
        if (cli_str(&c, "output", 'o', &out)) continue;
        if (cli_str(&c, "input-shape", 0, &shape)) continue;
        if (cli_double(&c, "scale", 0, 1e-12, 1e12, &scale)) {
            scale_given = 1;
            continue;
        }
        if (cli_str(&c, "mean", 0, &mean)) continue;
        if (cli_str(&c, "std", 0, &stdv)) continue;
        if (cli_str(&c, "labels", 0, &labels)) continue;
        if (cli_str(&c, "classes-from", 0, &classes_from)) continue;
        if (cli_str(&c, "name", 0, &name)) continue;
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (!pos[0]) cli_usage_error(&c, "missing MODEL.onnx or MODEL.tflite");
    if (labels && classes_from) cli_usage_error(&c, "give --labels or --classes-from, not both");
    tml_onnx_opts o;
    memset(&o, 0, sizeof o);
    if (shape && parse_shape(shape, &o))
        cli_usage_error(&c, "--input-shape expects HxWxC (images) or F (vectors), each 1..65536, got '%s'",
                        shape);

    cli_check_model_output(&c, out);
    tml_model *m = NULL;
    tml_onnx_info info;
    tml_tflite_info tinfo;
    size_t flen = 0;
    uint8_t *fbuf = cli_read_all(&c, pos[0], (size_t)1 << 31, &flen);
    const int is_tflite = tml_tflite_detect(fbuf, flen);
    if (is_tflite && shape) cli_usage_error(&c, "--input-shape is for ONNX models (a .tflite has fixed shapes)");
    tml_status st = is_tflite ? tml_tflite_import_mem(fbuf, flen, &m, &tinfo)
                              : tml_onnx_import_mem(fbuf, flen, &o, &m, &info);
    free(fbuf);
    if (st) {
        tml_error_context(st, "%s", strcmp(pos[0], "-") == 0 ? "<stdin>" : pos[0]);
        cli_fail_status(&c, st);
    }

    /* preprocessing (a tinyml-written .tflite brings its own unless overridden) */
    if (!(is_tflite && tinfo.from_tinyml) || scale_given) m->meta.pre.scale = (float)scale;
    cli_set_mean_std(&c, m, mean, stdv);

    /* class names */
    int64_t outs = tml_tensor_numel(&m->tensors[m->output]);
    if (labels || classes_from) {
        int nl = 0;
        char **l = NULL;
        tml_dataset *ds = NULL;
        if (labels) {
            l = read_labels(&c, labels, &nl);
        } else {
            ds = cli_open_dataset(&c, classes_from, "test");
            const tml_dataset_info *di = tml_dataset_get_info(ds);
            if (!di->labels) cli_fail(&c, "dataset '%s' has no class names", classes_from);
            nl = di->n_classes;
        }
        if (nl != outs)
            cli_fail(&c, "%s has %d class names, the model has %lld outputs", labels ? labels : classes_from,
                     nl, (long long)outs);
        st = tml_meta_set_labels(&m->meta, nl,
                                 labels ? (const char *const *)l : tml_dataset_get_info(ds)->labels);
        if (st) cli_fail_status(&c, st);
        for (int i = 0; i < nl && l; i++) free(l[i]);
        free(l);
        tml_dataset_free(ds);
    }

    char bn[256];
    if (name || !is_tflite || !tinfo.from_tinyml || !m->meta.name) {
        free(m->meta.name);
        m->meta.name = tml_strdup(name                       ? name
                                  : strcmp(pos[0], "-") == 0 ? (is_tflite ? "tflite" : "onnx")
                                                             : base_name(pos[0], bn, sizeof bn));
        if (!m->meta.name) cli_fail(&c, "out of memory");
    }
    if (is_tflite) {
        finish_tflite(&c, m, pos[0], out, &tinfo);
        return 0;
    }

    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "source",
                            strcmp(pos[0], "-") == 0 ? "<stdin>" : base_name(pos[0], bn, sizeof bn));
    cJSON_AddNumberToObject(h, "opset", info.opset);
    cJSON_AddNumberToObject(h, "ir_version", (double)info.ir_version);
    if (info.producer[0]) cJSON_AddStringToObject(h, "producer", info.producer);
    cJSON_AddNumberToObject(h, "onnx_nodes", info.onnx_nodes);
    cJSON_AddNumberToObject(h, "nodes", m->n_nodes);
    cli_add_history(&c, m, h);
    cli_save_model(&c, m, out);

    /* summary on stderr */
    int64_t params = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == TML_TENSOR_PARAM) params += tml_tensor_numel(&m->tensors[i]);
    const tml_tensor *in = &m->tensors[m->input];
    char ins[64] = "", outs_s[64] = "";
    for (int i = 0; i < in->ndim; i++)
        snprintf(ins + strlen(ins), sizeof ins - strlen(ins), "%s%d", i ? "x" : "", in->dims[i]);
    const tml_tensor *ot = &m->tensors[m->output];
    for (int i = 0; i < ot->ndim; i++)
        snprintf(outs_s + strlen(outs_s), sizeof outs_s - strlen(outs_s), "%s%d", i ? "x" : "", ot->dims[i]);
    cli_log(&c, "imported %s (opset %d%s%s): %d ONNX nodes -> %d tinyml nodes, %lld parameters", pos[0],
            info.opset, info.producer[0] ? ", " : "", info.producer, info.used_nodes, m->n_nodes,
            (long long)params);
    cli_log(&c, "  ONNX ops: %s", info.op_summary);
    if (info.folded_nodes || info.fused_nodes)
        cli_log(&c,
                "  %d nodes evaluated at import (constants, shape arithmetic), %d merged into their producer",
                info.folded_nodes, info.fused_nodes);
    if (info.onnx_nodes > info.used_nodes)
        cli_log(&c, "  %d nodes ignored: the output does not depend on them",
                info.onnx_nodes - info.used_nodes);
    char tn[256] = "";
    int cnt[TML_OP_COUNT] = {0};
    for (int i = 0; i < m->n_nodes; i++) cnt[m->nodes[i].op]++;
    for (int k = 0; k < TML_OP_COUNT; k++)
        if (cnt[k])
            snprintf(tn + strlen(tn), sizeof tn - strlen(tn), "%s%s %d", *tn ? ", " : "",
                     tml_op_name((tml_op)k), cnt[k]);
    cli_log(&c, "  tinyml ops: %s", tn);
    cli_log(&c, "  input %s (%s), output %s; batch %s", ins,
            info.in_layout == TML_ONNX_NCHW ? "from NCHW" : "as in ONNX", outs_s,
            info.batch > 0 ? "fixed in the file, any batch works" : "dynamic");
    if (info.out_layout != TML_ONNX_PLAIN)
        cli_warn(&c, "the output '%s' is %s in ONNX; tinyml stores it in HWC order", info.output_name,
                 info.out_layout == TML_ONNX_NCHW ? "an NCHW tensor" : "flattened from NCHW");
    cli_log(&c, "  preprocessing: x = raw * %g%s (set with --scale/--mean/--std)", (double)m->meta.pre.scale,
            m->meta.pre.n_ch ? ", then per-channel (x - mean) / std" : "");
    tml_model_free(m);
    return 0;
}
