/*
 * cmd_quantize.c - `tinyml quantize`: fold, calibrate, quantize to INT8, and
 * (with --data) measure what it cost. Also `tinyml compare`: per-layer error
 * between a float model and its int8 version.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_quant.h"

static const char help_quantize[] =
    "Usage: tinyml quantize [options] [MODEL] --calib SPEC [-o OUT]\n"
    "\n"
    "Post-training INT8 quantization (TFLite spec): batch norm is folded and\n"
    "ReLU/ReLU6 fused, activation ranges are calibrated on a seeded random subset\n"
    "of SPEC, weights become symmetric int8 per output channel, biases int32, and\n"
    "the model runs integer-only (tinyml eval runs it; tinyml export emits C).\n"
    "\n"
    "Options:\n"
    "  --calib SPEC           calibration data (default split: train)\n"
    "  --calib-samples N      samples drawn with --seed (default 512)\n"
    "  --method M             minmax (default), percentile[:P] (default P 99.99),\n"
    "                         entropy (KL, TensorRT style), mse\n"
    "  --per-tensor           one weight scale per tensor instead of per channel\n"
    "  --bias-correction      correct the mean output shift of rounded weights\n"
    "  --bits B               weight bits 2..8 (default 8)\n"
    "  --weight-only          snap weights to the B-bit grid, keep float activations\n"
    "  --rounding R           integer arithmetic of the model: tinyml (default) or\n"
    "                         tflite (TensorFlow Lite Micro's, bit for bit: for\n"
    "                         models that go to TFLite runtimes). On an int8 model\n"
    "                         (no --calib) it only switches the arithmetic\n"
    "  --layer NAME           with --weight-only: only this layer (repeatable)\n"
    "  -d, --data SPEC        also evaluate float and int8 on SPEC (default split test)\n"
    "                         (--eval-data is another spelling)\n"
    "  --val-split F          hold out the fraction F of the --calib data (seeded):\n"
    "                         calibrate on the rest, evaluate on it when --data is not given\n"
    "  --limit N              evaluate only N samples\n"
    "  -o, --output FILE      ('-' = stdout; default stdout if not a terminal)\n"
    "  --seed N               which calibration samples (default 1)\n"
    "  --format F             report format; -q, --quiet\n"
    "\n"
    "The report gives top-1 with its 95% interval and, for the drop, the p-value of a\n"
    "paired (McNemar) test on the same samples (p >= 0.05: inside the noise).\n"
    "\n"
    "Examples:\n"
    "  tinyml quantize lenet5.tmf --calib fashion-mnist --data fashion-mnist -o lenet5-int8.tmf\n"
    "  tinyml quantize dscnn.tmf --calib fashion-mnist --method entropy --bias-correction -o q.tmf\n"
    "  tinyml prune --sparsity 0.9 --global --epochs 1 --data fashion-mnist base.tmf \\\n"
    "    | tinyml quantize --calib fashion-mnist -o small.tmf\n"
    "  tinyml quantize lenet5.tmf --calib fashion-mnist --rounding tflite -o lenet5-tfl.tmf\n";

static const char help_compare[] =
    "Usage: tinyml compare FLOAT.tmf INT8.tmf --data SPEC [options]\n"
    "\n"
    "Where did quantization hurt? Runs both models on the same samples and, for\n"
    "every layer of the int8 model, compares its dequantized output with the\n"
    "float model's (after the same folding): SQNR in dB (higher is better; each\n"
    "int8 bit is worth ~6 dB), max and mean absolute error, in units of the\n"
    "layer's quantization step too; and how often the two models agree on the\n"
    "top-1 class.\n"
    "\n"
    "Options:\n"
    "  -d, --data SPEC        (default split: test)\n"
    "  --val-split F          only the fraction F held out of SPEC (seeded by --seed)\n"
    "  --limit N              samples (default 1000)\n"
    "  --batch N              (default 64)\n"
    "  --format F             table (default), md, csv, json; -q, --quiet\n"
    "\n"
    "Examples:\n"
    "  tinyml compare lenet5.tmf lenet5-int8.tmf --data fashion-mnist\n"
    "  tinyml compare dscnn.tmf dscnn-int8.tmf --data fashion-mnist --limit 10000 --format csv\n";

int cmd_quantize(int argc, char **argv)
{
    cli c;
    cli_init(&c, "quantize", help_quantize, argc, argv);
    const char *pos[1] = {NULL}, *calib = NULL, *method = "minmax", *data = NULL, *out = NULL, *rounding = NULL;
    const char *layers[65] = {NULL};
    int nlayers = 0;
    double val_split = 0;
    int64_t samples = 512, limit = 0;
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    while (cli_next(&c)) {
        const char *l;
        if (cli_str(&c, "calib", 0, &calib) || cli_str(&c, "method", 0, &method) || cli_str(&c, "data", 'd', &data) ||
            cli_str(&c, "eval-data", 0, &data) || cli_str(&c, "output", 'o', &out) || cli_str(&c, "rounding", 0, &rounding))
            continue;
        if (cli_double(&c, "val-split", 0, 1e-6, 0.999999, &val_split)) continue;
        if (cli_i64(&c, "calib-samples", 0, -1000000000, 1000000000, &samples) || cli_i64(&c, "limit", 0, 1, INT64_MAX, &limit))
            continue;
        if (cli_int(&c, "bits", 0, 2, 8, &qo.weight_bits)) continue;
        if (cli_str(&c, "layer", 0, &l)) {
            if (nlayers == 64) cli_usage_error(&c, "at most 64 --layer options");
            layers[nlayers++] = l;
            continue;
        }
        if (cli_flag(&c, "per-tensor", 0)) {
            qo.per_tensor = 1;
            continue;
        }
        if (cli_flag(&c, "bias-correction", 0)) {
            qo.bias_correction = 1;
            continue;
        }
        if (cli_flag(&c, "weight-only", 0)) {
            qo.weight_only = 1;
            continue;
        }
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (tml_calib_method_parse(method, &qo.method, &qo.percentile)) cli_usage_error(&c, "%s", tml_last_error());
    if (rounding && strcmp(rounding, "tflite") == 0) qo.rounding = TML_ROUNDING_TFLITE;
    else if (rounding && strcmp(rounding, "tinyml") != 0)
        cli_usage_error(&c, "--rounding takes tinyml or tflite, not '%s'", rounding);
    if (rounding && !calib && !qo.weight_only) { /* switch the arithmetic of an int8 model */
        cli_check_model_output(&c, out);
        tml_model *m = cli_load_model(&c, pos[0]);
        if (!tml_model_is_quantized(m))
            cli_usage_error(&c, "--rounding without --calib switches an int8 model's arithmetic; this model is float");
        const tml_rounding was = m->meta.rounding;
        m->meta.rounding = (tml_rounding)qo.rounding;
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "rounding", tml_rounding_name(m->meta.rounding));
        cJSON_AddStringToObject(h, "rounding_before", tml_rounding_name(was));
        cli_add_history(&c, m, h);
        cli_save_model(&c, m, out);
        cli_log(&c, "arithmetic: %s rounding (was %s); scales, zero points and weights unchanged",
                tml_rounding_name(m->meta.rounding), tml_rounding_name(was));
        tml_model_free(m);
        return 0;
    }
    if (nlayers && !qo.weight_only) cli_usage_error(&c, "--layer needs --weight-only (the int8 engine runs whole models)");
    if (nlayers) qo.only_layers = layers;
    if (!qo.weight_only && !calib) cli_usage_error(&c, "--calib is required (e.g. --calib fashion-mnist)");
    if (!qo.weight_only && samples < 1)
        cli_usage_error(&c, "--calib-samples must be at least 1 (got %lld): calibration needs data", (long long)samples);

    if (val_split > 0 && !calib) cli_usage_error(&c, "--val-split holds out part of the --calib data: give --calib");
    /* calibration: --calib minus the held-out part; evaluation: --data, else
     * the held-out part of --calib */
    cli_data cd = {.spec = calib, .eval_spec = data, .val_split = val_split};
    const int evaluate = data || val_split > 0;
    cli_check_model_output(&c, out);
    tml_model *m = cli_load_model(&c, pos[0]);
    tml_model *orig = evaluate ? tml_model_clone(m) : NULL;
    if (tml_model_is_quantized(m)) cli_fail(&c, "the model is already quantized (int8)");
    tml_fold_report fr = {0};
    tml_calib cal = {0};
    double t0 = cli_now();
    tml_status st;
    if (!qo.weight_only) {
        st = tml_fold(m, &fr);
        if (st) cli_fail_status(&c, st);
        tml_dataset *ds = cli_open_train_data(&c, &cd, NULL);
        cli_progress p;
        cli_progress_start(&p, &c, "calibrate");
        tml_calib_opts co = {.samples = samples, .seed = c.seed, .progress = cli_progress_cb, .progress_user = &p,
                             .cancel = &cli_cancel_flag};
        st = tml_calibrate(m, ds, &co, &cal);
        cli_progress_end(&p);
        tml_dataset_free(ds);
        if (st) cli_fail_status(&c, st);
    }
    st = tml_quantize(m, qo.weight_only ? NULL : &cal, &qo);
    if (st) cli_fail_status(&c, st);
    double secs = cli_now() - t0;
    if (!qo.weight_only)
        cli_log(&c, "folded %d batch norms, fused %d activations; calibrated on %lld samples (%s); %.2fs", fr.bn_folded,
                fr.act_fused, (long long)cal.samples, tml_calib_method_name(qo.method), secs);

    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "mode", qo.weight_only ? "weight-only" : "int8");
    if (!qo.weight_only) cJSON_AddStringToObject(h, "rounding", tml_rounding_name((tml_rounding)qo.rounding));
    if (!qo.weight_only) {
        cJSON_AddStringToObject(h, "calib", calib);
        cJSON_AddNumberToObject(h, "calib_samples", (double)cal.samples);
        cJSON_AddStringToObject(h, "method", method);
        cJSON_AddNumberToObject(h, "seed", (double)c.seed);
    }
    cJSON_AddStringToObject(h, "weights", qo.per_tensor ? "per-tensor" : "per-channel");
    cJSON_AddNumberToObject(h, "bits", qo.weight_bits);
    if (qo.bias_correction) cJSON_AddTrueToObject(h, "bias_correction");
    tml_table *t = NULL;
    if (evaluate) {
        cli_acc a0, a1;
        cli_accuracy(&c, orig, &cd, limit, &a0);
        cli_accuracy(&c, m, &cd, limit, &a1);
        double b0 = cli_model_bytes(orig), b1 = cli_model_bytes(m), flash = NAN, ram = NAN;
        cli_device_bytes(m, &flash, &ram);
        static const char *const hdr[] = {"model", "bytes", "flash B", "RAM B", "ratio", "top1%", "drop", "top1 95% CI", "p"};
        t = tml_table_new("quantize", "Quantization", 9, hdr);
        tml_table_add_row(t);
        tml_table_str(t, 0, "float");
        tml_table_num(t, 1, b0, "%.0f");
        tml_table_num(t, 4, 1.0, "%.2fx");
        cli_acc_cells(t, 5, &a0, &a0);
        tml_table_add_row(t);
        tml_table_str(t, 0, qo.weight_only ? "weight-only" : "int8");
        tml_table_num(t, 1, b1, "%.0f");
        tml_table_num(t, 2, flash, "%.0f");
        tml_table_num(t, 3, ram, "%.0f");
        tml_table_num(t, 4, b0 / b1, "%.2fx");
        cli_acc_cells(t, 5, &a1, &a0);
        char dn[600];
        cli_eval_data_note(&c, &cd, 0, dn, sizeof dn);
        tml_table_note(t, "accuracy on %s%s; calibration: %s, %lld samples of %s%s, seed %llu; %s weights", dn,
                       limit ? " (limited)" : "", tml_calib_method_name(qo.method), (long long)cal.samples,
                       calib ? calib : "-", val_split > 0 ? " minus the held-out part" : "", (unsigned long long)c.seed,
                       qo.per_tensor ? "per-tensor" : "per-channel");
        if (!isnan(flash))
            tml_table_note(t, "flash B / RAM B: what 'tinyml export --c' needs on the device (const data + code estimate; "
                              "static arena)");
        const cli_acc *others[1] = {&a1};
        cli_acc_note(&c, t, &a0, others, 1);
        tml_dataset *ev = cli_open_eval_data(&c, &cd, NULL);
        cli_history_eval(h, tml_dataset_get_info(ev)->name, a0.top1, a1.top1);
        tml_dataset_free(ev);
        cli_acc_free(&a0);
        cli_acc_free(&a1);
    }
    cli_add_history(&c, m, h);
    cli_save_model(&c, m, out);
    if (t) {
        tml_table *ts[1] = {t};
        cli_print_pass_report(&c, out, ts, 1);
        tml_table_free(t);
    }
    tml_calib_free(&cal);
    tml_model_free(orig);
    tml_model_free(m);
    return 0;
}

int cmd_compare(int argc, char **argv)
{
    cli c;
    cli_init(&c, "compare", help_compare, argc, argv);
    const char *pos[2] = {NULL, NULL};
    cli_data data = {0};
    int64_t limit = 1000;
    int batch = 64;
    while (cli_next(&c)) {
        if (cli_data_option(&c, &data)) continue;
        if (cli_i64(&c, "limit", 0, 1, INT64_MAX, &limit) || cli_int(&c, "batch", 0, 1, 65536, &batch)) continue;
        if (cli_positional(&c, pos, 2)) continue;
        cli_unknown(&c);
    }
    if (!pos[0] || !pos[1]) cli_usage_error(&c, "need two models: FLOAT.tmf INT8.tmf");
    if (data.eval_spec && !data.spec) data.spec = data.eval_spec, data.eval_spec = NULL;
    if (!data.spec) cli_usage_error(&c, "--data is required");
    tml_model *fm = cli_load_model(&c, pos[0]), *qm = cli_load_model(&c, pos[1]);
    tml_dataset *ds = cli_open_eval_data(&c, &data, fm);
    tml_compare_result r;
    tml_status st = tml_compare(fm, qm, ds, limit, batch, &r);
    if (st) cli_fail_status(&c, st);
    static const char *const hdr[] = {"layer", "op", "scale", "SQNR dB", "max abs err", "max err/step", "mean abs err"};
    tml_table *t = tml_table_new("layers", "Per-layer error of the int8 model vs float", 7, hdr);
    for (int i = 0; i < r.n_layers; i++) {
        const tml_layer_error *le = &r.layers[i];
        const tml_node *n = &qm->nodes[le->node_q];
        tml_table_add_row(t);
        tml_table_str(t, 0, n->name);
        tml_table_str(t, 1, tml_op_name(n->op));
        tml_table_num(t, 2, le->scale, "%.3g");
        tml_table_num(t, 3, isinf(le->sqnr_db) ? 999.0 : le->sqnr_db, "%.1f");
        tml_table_num(t, 4, le->max_abs, "%.4g");
        tml_table_num(t, 5, le->max_abs / le->scale, "%.2f");
        tml_table_num(t, 6, le->mean_abs, "%.4g");
    }
    tml_table_note(t, "%s: %lld samples; top-1 agreement %.2f%%; top-1 float %.2f%%, int8 %.2f%%",
                   tml_dataset_get_info(ds)->name, (long long)r.samples, 100.0 * (double)r.agree / (double)r.samples,
                   100.0 * (double)r.correct_f / (double)r.samples, 100.0 * (double)r.correct_q / (double)r.samples);
    tml_table *ts[1] = {t};
    cli_print_tables(&c, stdout, ts, 1);
    tml_table_free(t);
    tml_compare_result_free(&r);
    tml_dataset_free(ds);
    tml_model_free(fm);
    tml_model_free(qm);
    return 0;
}
