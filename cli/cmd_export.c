/*
 * cmd_export.c - `tinyml export MODEL --c -o DIR`: C source for a
 * microcontroller (formats/export_c.c, docs/deploy.md); `tinyml export MODEL
 * --onnx -o FILE.onnx`: a float model as ONNX (formats/onnx_export.c,
 * docs/onnx.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_onnx.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_tflite.h"
#include "tinyml/tml_schedule.h"

static const char help[] =
    "Usage: tinyml export [options] [MODEL] --c -o DIR\n"
    "       tinyml export [options] [MODEL] --onnx -o FILE.onnx\n"
    "       tinyml export [options] [MODEL] --tflite -o FILE.tflite\n"
    "\n"
    "One target is required: --c, --onnx or --tflite.\n"
    "\n"
    "--c: write the INT8 model as a self-contained C99 source pair, DIR/model.c and\n"
    "DIR/model.h, for a microcontroller: one function model_run(in, out) over\n"
    "int8 tensors, weights as const arrays (flash), every activation in one\n"
    "static arena sized by liveness (RAM), integer-only kernels that compute\n"
    "bit for bit what `tinyml eval` computes; no malloc, no math library.\n"
    "model.h gives the input/output shapes and quantization (scale, zero point)\n"
    "as macros. Each layer's weights are stored dense or, when pruned and/or\n"
    "clustered, as sparse rows, codebook + packed indices, or both: the form\n"
    "is chosen per layer by bytes against estimated instructions (--optimize).\n"
    "The kernels are portable C99 plus, for cores with the DSP extension\n"
    "(Cortex-M4/M7/M33/M55), SXTB16/SMLAD versions the compiler picks; both\n"
    "give the same bytes. The model must be quantized (tinyml quantize). A\n"
    "table of flash, RAM, MACs and estimated instructions per layer goes to\n"
    "stdout; `tinyml profile` measures them on an emulated core.\n"
    "\n"
    "--onnx: write the FLOAT model as one ONNX file (IR 8, opset 13) for\n"
    "onnxruntime, TensorRT, TFLite converters, ...: input \"input\" (N,C,H,W)\n"
    "(or (N,F)), output \"output\" (N,classes), N symbolic. Weights are converted\n"
    "to ONNX layouts; fused activations become Relu/Clip nodes; pruned weights\n"
    "are stored dense (ONNX has no compact sparse weights), clustered ones as\n"
    "their values. Labels and preprocessing go to metadata_props[\"tinyml\"].\n"
    "An int8 model is written in QDQ form: QuantizeLinear / DequantizeLinear\n"
    "around every layer (per-axis weight scales, int32 biases), which ONNX\n"
    "Runtime runs as int8.\n"
    "\n"
    "--tflite: write the model (int8 or float) as a .tflite flatbuffer for\n"
    "TensorFlow Lite (Micro), Vela, Edge Impulse, STM32Cube.AI: schema 3, batch\n"
    "1, per-channel weight scales with quantized_dimension, 16-byte aligned\n"
    "buffers. Pruned and clustered weights are written dense (TFLite Micro has no\n"
    "compact form for them). Batch norms of float models are folded first. The\n"
    "model's names, labels, preprocessing and history ride along as metadata, so\n"
    "`tinyml import` of the file gives the same model back. TFLite runtimes use\n"
    "TFLite's rounding: quantize with --rounding tflite for outputs identical to\n"
    "`tinyml eval` (a tinyml-rounding model differs by one step on ties).\n"
    "\n"
    "Options:\n"
    "  --c                C source of an int8 model\n"
    "  --onnx             ONNX file (float, or int8 in QDQ form)\n"
    "  --tflite           TFLite flatbuffer (int8 or float)\n"
    "  -o, --output DIR|FILE  --c: directory for the two files (created if\n"
    "                     missing); --onnx: the .onnx file (- = stdout, not a\n"
    "                     terminal). Files are replaced atomically.\n"
    "  --prefix PREFIX    --c: symbol prefix (default model_): kws_ gives\n"
    "                     kws_run(), KWS_INPUT_SCALE, ... and the files kws.c / kws.h\n"
    "                     (--name is the old spelling; elsewhere --name is a model's name)\n"
    "  --optimize G       --c: how each layer's weight form is chosen: balanced\n"
    "                     (default: the fewest instructions + 16 x bytes, so flash\n"
    "                     is saved where it costs few instructions, e.g. on a big\n"
    "                     dense layer, and not on a conv whose weights every pixel\n"
    "                     reads), speed (fewest instructions) or size (fewest bytes,\n"
    "                     and the least code: kernels without their special-case\n"
    "                     fast paths, a memory schedule's steps as a table; about\n"
    "                     2-3x the instructions of balanced)\n"
    "  --form F           --c: the same form for every layer where it applies:\n"
    "                     dense, sparse, cluster, sparse+cluster or packed\n"
    "  --dense            --c: same as --form dense\n"
    "  --portable         --c: the portable C99 kernels only (no DSP versions)\n"
    "  --max-recompute P, --ram-limit BYTES, --no-schedule\n"
    "                     --c: the memory schedule (tinyml schedule): by default the\n"
    "                     one stored in the model, else the least RAM within 5%\n"
    "                     extra MACs; a --ram-limit no schedule meets is an error\n"
    "  --format F         table (default), md, csv or json\n"
    "  -q, --quiet        no log line on stderr\n"
    "\n"
    "Examples:\n"
    "  tinyml export lenet5-int8.tmf --c -o firmware/model\n"
    "  tinyml export kws-int8.tmf --c -o src --prefix kws_    # kws.c, kws_run(), KWS_INPUT_SCALE\n"
    "  tinyml prune --sparsity 0.9 --global --epochs 1 --data fashion-mnist base.tmf \\\n"
    "    | tinyml cluster --bits 4 | tinyml quantize --calib fashion-mnist | tinyml export --c -o out\n"
    "  tinyml export lenet5.tmf --onnx -o lenet5.onnx\n"
    "  tinyml export kws-int8.tmf --tflite -o kws.tflite\n"
    "  tinyml export dscnn-int8.tmf --c -o out --ram-limit 12K\n"
    "\n"
    "docs/deploy.md shows how to call the code from a Cortex-M project;\n"
    "docs/onnx.md describes the ONNX export.\n";

/* also declared in cli.h; repeated so this file stands alone */

static void add_total(tml_table *t, const char *what, int64_t bytes, const char *note)
{
    char h[32];
    tml_table_add_row(t);
    tml_table_str(t, 0, what);
    tml_table_int(t, 1, bytes);
    tml_format_bytes(h, sizeof h, (double)bytes);
    tml_table_str(t, 2, h);
    tml_table_str(t, 3, note);
}

/* "(N,C,H,W)" / "(N,F)" / "(N,A,B)": the ONNX shape of a model boundary tensor. */
static void onnx_shape(const tml_tensor *t, char *buf, size_t cap)
{
    if (t->ndim == 3) {
        snprintf(buf, cap, "(N,%d,%d,%d)", (int)t->dims[2], (int)t->dims[0], (int)t->dims[1]);
        return;
    }
    size_t n = (size_t)snprintf(buf, cap, "(N");
    for (int i = 0; i < t->ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, ",%d", (int)t->dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, ")");
}

static int export_onnx(cli *c, const char *model_path, const char *out)
{
    int to_stdout = strcmp(out, "-") == 0;
    if (to_stdout && isatty(STDOUT_FILENO))
        cli_usage_error(c, "refusing to write a binary ONNX file to a terminal: use -o FILE.onnx or a pipe");
    if (!to_stdout) cli_check_output(c, out);
    tml_model *m = cli_load_model(c, model_path);
    tml_status st = tml_onnx_export_file(m, to_stdout ? "-" : out);
    if (st) {
        /* a model ONNX cannot take (int8, ...) is a data error (exit 1) */
        const char *msg = tml_last_error();
        cli_fail(c, "%s", msg && *msg ? msg : tml_status_name(st));
    }
    int pruned = 0, clustered = 0;
    int64_t params = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const tml_tensor *t = &m->tensors[i];
        if (t->kind != TML_TENSOR_PARAM) continue;
        params += tml_tensor_numel(t);
        pruned += t->pruned != 0;
        clustered += t->cb != NULL;
    }
    char is[64], os[64];
    onnx_shape(&m->tensors[m->input], is, sizeof is);
    onnx_shape(&m->tensors[m->output], os, sizeof os);
    cli_log(c, "wrote %s: ONNX IR 8, opset 13, %d tinyml nodes, %lld parameters (float32), input %s, output %s",
            to_stdout ? "<stdout>" : out, m->n_nodes, (long long)params, is, os);
    if (pruned)
        cli_log(c, "%d pruned tensor%s stored dense: ONNX has no compact sparse weights (the zeros remain zeros)",
                pruned, pruned == 1 ? "" : "s");
    if (clustered)
        cli_log(c, "%d clustered tensor%s stored as their decoded float values", clustered, clustered == 1 ? "" : "s");
    tml_model_free(m);
    return 0;
}

static int export_tflite(cli *c, const char *model_path, const char *out)
{
    const int to_stdout = strcmp(out, "-") == 0;
    if (to_stdout && isatty(STDOUT_FILENO))
        cli_usage_error(c, "refusing to write a binary TFLite file to a terminal: use -o FILE.tflite or a pipe");
    if (!to_stdout) cli_check_output(c, out);
    tml_model *m = cli_load_model(c, model_path);
    int has_bn = 0, pruned = 0, clustered = 0;
    for (int i = 0; i < m->n_nodes; i++) has_bn |= m->nodes[i].op == TML_OP_BATCHNORM;
    if (has_bn) { /* TFLite has no batch norm: fold (float models only have them) */
        tml_fold_report fr;
        tml_status st = tml_fold(m, &fr);
        if (st) cli_fail_status(c, st);
        if (fr.bn_left) cli_fail(c, "%d batch norm%s cannot be folded into a layer: TFLite has no batch norm op",
                                 fr.bn_left, fr.bn_left == 1 ? "" : "s");
        cli_log(c, "folded %d batch norm%s into the layers before them (TFLite has no batch norm op)", fr.bn_folded,
                fr.bn_folded == 1 ? "" : "s");
    }
    tml_status st = tml_tflite_export_file(m, to_stdout ? "-" : out);
    if (st) {
        const char *msg = tml_last_error();
        cli_fail(c, "%s", msg && *msg ? msg : tml_status_name(st));
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const tml_tensor *t = &m->tensors[i];
        if (t->kind != TML_TENSOR_PARAM) continue;
        pruned += t->pruned != 0;
        clustered += t->cb != NULL;
    }
    const int q = tml_model_is_quantized(m);
    cli_log(c, "wrote %s: TFLite schema 3, %s, %d tinyml nodes%s", to_stdout ? "<stdout>" : out,
            q ? (m->meta.float_io ? "int8 with a float32 boundary" : "full int8") : "float32", m->n_nodes,
            q ? (m->meta.rounding == TML_ROUNDING_TFLITE ? ", TFLite rounding" : ", tinyml rounding") : "");
    if (pruned)
        cli_log(c, "%d pruned tensor%s written dense: TFLite Micro has no compact sparse weights (the zeros stay zeros)",
                pruned, pruned == 1 ? "" : "s");
    if (clustered)
        cli_log(c, "%d clustered tensor%s written dense as their decoded values", clustered, clustered == 1 ? "" : "s");
    if (q && m->meta.rounding != TML_ROUNDING_TFLITE)
        cli_warn(c, "the model uses tinyml rounding; TFLite runtimes round ties of negative values differently and "
                    "derive some multipliers in float, so outputs can differ by one step from `tinyml eval`. "
                    "Quantize with --rounding tflite for identical results");
    tml_model_free(m);
    return 0;
}

int cmd_export(int argc, char **argv)
{
    cli c;
    cli_init(&c, "export", help, argc, argv);
    const char *pos[1] = {NULL}, *out = NULL, *prefix = "model_";
    int to_c = 0, to_onnx = 0, to_tflite = 0, name_set = 0;
    cli_export_flags ef = {0};
    cli_sched so;
    cli_sched_init(&so);
    while (cli_next(&c)) {
        if (cli_sched_flag(&c, &so)) continue;
        if (cli_flag(&c, "c", 0)) {
            to_c = 1;
            continue;
        }
        if (cli_flag(&c, "onnx", 0)) {
            to_onnx = 1;
            continue;
        }
        if (cli_flag(&c, "tflite", 0)) {
            to_tflite = 1;
            continue;
        }
        if (cli_str(&c, "output", 'o', &out)) continue;
        if (cli_str(&c, "prefix", 0, &prefix)) {
            name_set = 1;
            continue;
        }
        if (cli_str(&c, "name", 0, &prefix)) {
            name_set = 1;
            cli_warn(&c, "--name is the old spelling of --prefix (the symbol prefix)");
            continue;
        }
        if (cli_export_flag(&c, &ef)) continue;
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (to_c + to_onnx + to_tflite > 1)
        cli_usage_error(&c, "--c, --onnx and --tflite exclude each other: export one target at a time");
    if (!to_c && !to_onnx && !to_tflite)
        cli_usage_error(&c, "choose a target: --c (C source of an int8 model), --onnx or --tflite");
    if (to_tflite) {
        if (name_set || cli_export_flags_given(&ef))
            cli_usage_error(&c, "--prefix, --dense, --form, --optimize and --portable apply to --c only");
        if (so.none || so.ram_limit > 0 || so.max_recompute >= 0)
            cli_usage_error(&c, "memory schedules apply to --c only");
        if (!out || !*out) cli_usage_error(&c, "-o FILE.tflite is required (- writes to stdout)");
        return export_tflite(&c, pos[0], out);
    }
    if (to_onnx) {
        if (name_set || cli_export_flags_given(&ef))
            cli_usage_error(&c, "--prefix, --dense, --form, --optimize and --portable apply to --c only");
        if (so.none || so.ram_limit > 0 || so.max_recompute >= 0)
            cli_usage_error(&c, "memory schedules apply to --c only");
        if (!out || !*out) cli_usage_error(&c, "-o FILE.onnx is required (- writes to stdout)");
        return export_onnx(&c, pos[0], out);
    }
    if (!out || !*out) cli_usage_error(&c, "-o DIR is required: the directory for model.c and model.h");
    if (strcmp(out, "-") == 0) cli_usage_error(&c, "-o takes a directory here (the export writes two files), not '-'");
    tml_export_opts o;
    tml_export_opts_default(&o);
    o.prefix = prefix;
    cli_export_flags_apply(&c, &ef, &o);
    /* check the prefix before reading a model from a pipe */
    if (tml_export_check_prefix(prefix)) cli_usage_error(&c, "--prefix: %s", tml_last_error());

    tml_status cst = tml_check_output_dir(out);
    if (cst) cli_fail_status(&c, cst);
    tml_model *m = cli_load_model(&c, pos[0]);
    tml_sched_opts sopt;
    const char *ofrom = cli_export_stored(&c, &ef, m, &o);
    const char *from = "default";
    if (tml_model_is_quantized(m)) cli_sched_opts(&c, &so, m, &sopt, &from);
    else tml_sched_opts_default(&sopt); /* the export refuses the model below */
    o.schedule = &sopt;
    tml_export_result r;
    tml_status st = tml_export_c(m, &o, &r);
    if (st) {
        /* a model the export cannot take is a data error (exit 1), whatever the status */
        const char *msg = tml_last_error();
        cli_fail(&c, "%s", msg && *msg ? msg : tml_status_name(st));
    }
    if (sopt.enabled && sopt.ram_limit > 0 && !r.schedule->fits)
        cli_fail(&c, "no schedule fits --ram-limit %lld bytes: the least RAM is %lld bytes (%lld over) with %lld extra "
                     "MACs; nothing written (tinyml schedule shows the segments)",
                 (long long)sopt.ram_limit, (long long)r.arena_bytes, (long long)(r.arena_bytes - sopt.ram_limit),
                 (long long)r.schedule->extra_macs);
    st = tml_export_write(&r, out);
    if (st) cli_fail_status(&c, st);
    cli_log(&c, "wrote %s/%s.c and %s/%s.h", out, r.base, out, r.base);

    static const char *const lh[] = {"layer", "op", "output", "weights", "weight_bytes", "dense_bytes", "other_bytes",
                                     "macs", "macs_nonzero", "est_instr"};
    tml_table *lt = tml_table_new("layers", "Exported layers", 10, lh);
    int64_t est = 0;
    for (int i = 0; i < r.n_layers; i++) {
        const tml_export_layer *L = &r.layers[i];
        tml_table_add_row(lt);
        tml_table_str(lt, 0, L->name);
        tml_table_str(lt, 1, tml_op_name(L->op));
        tml_table_str(lt, 2, L->shape);
        tml_table_str(lt, 3, L->enc == TML_EXPORT_NONE ? "-" : tml_export_enc_name(L->enc));
        tml_table_int(lt, 4, L->weight_bytes);
        tml_table_int(lt, 5, L->dense_bytes);
        tml_table_int(lt, 6, L->other_bytes);
        tml_table_int(lt, 7, L->macs);
        tml_table_int(lt, 8, L->macs_nz);
        tml_table_int(lt, 9, L->est_instr);
        est += L->est_instr;
    }
    tml_table_add_row(lt);
    tml_table_mark_total(lt);
    tml_table_str(lt, 0, "total");
    tml_table_int(lt, 4, r.weight_bytes);
    tml_table_int(lt, 5, r.dense_weight_bytes);
    tml_table_int(lt, 6, r.const_bytes - r.weight_bytes);
    tml_table_int(lt, 7, r.macs);
    tml_table_int(lt, 8, r.macs_nz);
    tml_table_int(lt, 9, est);
    if (o.weights != TML_EXPORT_AUTO)
        tml_table_note(lt, "weights: dense = int8 array; sparse = nonzeros with 8-bit column gaps; cluster = codebook + "
                           "packed indices; packed = low-bit weights, 4 or 2 bits each; forced: %s where it applies",
                       tml_export_enc_name(o.weights));
    else
        tml_table_note(lt, "weights: dense = int8 array; sparse = nonzeros with 8-bit column gaps; cluster = codebook + "
                           "packed indices; packed = low-bit weights, 4 or 2 bits each; chosen per layer, --optimize %s%s%s",
                       tml_export_optimize_name(o.optimize),
                       strcmp(ofrom, "stored in the model") == 0 ? " (stored in the model)" : "",
                       o.optimize == TML_EXPORT_OPT_BALANCED ? " (fewest estimated instructions + 16 x bytes)"
                       : o.optimize == TML_EXPORT_OPT_SPEED  ? " (fewest estimated instructions)"
                                                             : " (fewest bytes)");
    tml_table_note(lt, "est_instr: estimated Cortex-M4 instructions of one inference with the %s kernels at -O2 "
                       "(measure them: tinyml profile)",
                   r.dsp_kernels ? "DSP" : "portable");
    tml_table_note(lt, "other_bytes: folded biases, requantization multipliers and shifts, softmax tables, parameter "
                       "structs (32-bit target)");

    static const char *const sh[] = {"resource", "bytes", "size", "what"};
    tml_table *t = tml_table_new("summary", "Device resources", 4, sh);
    char note[160];
    add_total(t, "flash: const data", r.const_bytes, "weights, biases, multipliers, tables, layer parameters");
    add_total(t, "flash: code", r.code_bytes, "estimate: the emitted kernels on a Cortex-M4 at -Os (compiler-dependent)");
    add_total(t, "flash total", r.const_bytes + r.code_bytes, "estimate");
    if (sopt.enabled)
        snprintf(note, sizeof note, "static arena of the memory schedule (layer by layer: %lld bytes of activations)",
                 (long long)r.schedule->bound_bytes);
    else
        snprintf(note, sizeof note, "static arena: activations layer by layer (lower bound for this graph: %lld)",
                 (long long)r.pair_bytes);
    add_total(t, "RAM (arena)", r.arena_bytes, note);
    tml_table_add_row(t);
    tml_table_str(t, 0, "MACs");
    tml_table_int(t, 1, r.macs);
    snprintf(note, sizeof note, "per inference; %lld with a nonzero weight", (long long)r.macs_nz);
    tml_table_str(t, 3, note);
    tml_table_note(t, "input %lld int8 (scale %.6g, zero point %d), output %lld int8 (scale %.6g, zero point %d)",
                   (long long)r.input_size, (double)r.input_scale, (int)r.input_zp, (long long)r.output_size,
                   (double)r.output_scale, (int)r.output_zp);
    tml_table_note(t, "files: %s/%s.c, %s/%s.h; entry point %srun()", out, r.base, out, r.base, prefix);

    tml_table *st2 = cli_sched_table(m, r.schedule, from, 1);
    if (!st2) cli_fail(&c, "out of memory");
    if (r.lean_layers)
        tml_table_note(st2, "%lld conv layer%s run conv2d_lean (one pixel at a time, int8 inputs) where conv2d's "
                            "scratch would raise the arena",
                       (long long)r.lean_layers, r.lean_layers == 1 ? "" : "s");
    tml_table *tables[3] = {t, st2, lt};
    cli_print_tables(&c, stdout, tables, 3);
    tml_table_free(st2);
    tml_table_free(t);
    tml_table_free(lt);
    tml_export_result_free(&r);
    tml_model_free(m);
    return 0;
}
