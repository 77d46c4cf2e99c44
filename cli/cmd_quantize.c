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
#include "tinyml/tml_plot.h"
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
    "  --weight-bits B|auto   the same (W4A8 with 4: weights stored and run packed);\n"
    "                         auto: per-layer widths (mixed precision), chosen by a\n"
    "                         knapsack over each layer's measured sensitivity\n"
    "  --weight-rounding R    nearest (default) or adaptive: GPTQ-style rounding\n"
    "                         that minimizes each layer's output error on the\n"
    "                         calibration data (best below 8 bits)\n"
    "Mixed precision (--weight-bits auto), one of:\n"
    "  --target-size S        largest weight bytes (params * bits / 8 per layer, as\n"
    "                         the exported C stores them), or Nbit: every layer at\n"
    "                         N bits\n"
    "  --max-drop P           smallest model within P points of the float model\n"
    "                         (top-1 on the held-out samples)\n"
    "  --candidate-bits L     widths to choose from (default 2..8; 2,4,8 keeps to the\n"
    "                         widths with the fastest device kernels)\n"
    "  --sens-samples N       held-out samples from --calib's data (default 2000)\n"
    "  --plot FILE            PNG of the size / accuracy Pareto front\n"
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
    "  tinyml quantize lenet5.tmf --calib fashion-mnist --weight-bits 4 --weight-rounding adaptive -o w4.tmf\n"
    "  tinyml quantize lenet5.tmf --calib fashion-mnist --weight-bits auto --target-size 4bit -o mp.tmf\n"
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

/* --candidate-bits 2,4,8 */
static void parse_candidates(const cli *c, const char *s, tml_mp_opts *o)
{
    o->n_candidates = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        long v;
        if (cli_parse_long(tok, &v) || v < 2 || v > 8 || o->n_candidates == 7)
            cli_usage_error(c, "--candidate-bits takes up to 7 widths in 2..8, e.g. 2,4,8 (got '%s')", s);
        o->candidates[o->n_candidates++] = (int)v;
    }
    if (o->n_candidates == 0) cli_usage_error(c, "--candidate-bits needs at least one width");
}

/* --target-size BYTES or Nbit (the weight bytes of every layer at N bits). */
static int64_t parse_target(const cli *c, const char *s, const tml_model *m)
{
    long v;
    size_t n = strlen(s);
    if (n > 3 && strcmp(s + n - 3, "bit") == 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%.*s", (int)(n - 3), s);
        if (cli_parse_long(buf, &v) || v < 2 || v > 8) cli_usage_error(c, "--target-size Nbit needs N in 2..8 (got '%s')", s);
        int64_t total = 0;
        for (int i = 0; i < m->n_nodes; i++)
            if (tml_node_has_weights(&m->nodes[i]))
                total += (tml_tensor_numel(&m->tensors[m->nodes[i].in[1]]) * v + 7) / 8;
        return total;
    }
    if (cli_parse_long(s, &v) || v < 1) cli_usage_error(c, "--target-size must be a byte count or Nbit, e.g. 4bit (got '%s')", s);
    return v;
}

/* The mixed-precision search on the folded model m with its calibration. */
static tml_status run_mixed(const cli *c, const tml_model *m, const tml_calib *cal, const char *calib, int64_t n,
                            tml_mp_opts *o, tml_mp_result *r, const char *plot)
{
    tml_dataset *ds = cli_open_dataset(c, calib, "train");
    tml_samples *held = NULL;
    tml_status st = tml_dataset_load(ds, n, &held);
    tml_dataset_free(ds);
    if (st) return st;
    cli_progress p;
    cli_progress_start(&p, c, "mixed precision");
    o->progress = cli_progress_cb;
    o->progress_user = &p;
    o->cancel = &cli_cancel_flag;
    double t0 = cli_now();
    st = tml_mixed_precision(m, cal, held, o, r);
    cli_progress_end(&p);
    tml_samples_free(held);
    if (st) return st;
    cli_log(c, "mixed precision: %d layers, %d Pareto points measured on %lld held-out samples in %.1fs", r->n_layers,
            r->n_points, (long long)r->samples, cli_now() - t0);
    if (plot) {
        tml_plot *pl = tml_plot_new(900, 560);
        if (!pl) return TML_ERR_NOMEM;
        tml_plot_title(pl, "Mixed precision: weight bytes vs top-1 (held-out samples)");
        tml_plot_labels(pl, "weight bytes (packed)", "top-1 accuracy (%)");
        double *x = malloc(sizeof(double) * (size_t)r->n_points), *y = malloc(sizeof(double) * (size_t)r->n_points);
        double *ux = malloc(sizeof(double) * (size_t)r->n_points), *uy = malloc(sizeof(double) * (size_t)r->n_points);
        int nf = 0, nu = 0;
        for (int i = 0; x && y && ux && uy && i < r->n_points; i++) {
            if (r->points[i].uniform) {
                ux[nu] = (double)r->points[i].bytes;
                uy[nu++] = 100.0 * r->points[i].top1;
            } else {
                x[nf] = (double)r->points[i].bytes;
                y[nf++] = 100.0 * r->points[i].top1;
            }
        }
        if (!x || !y || !ux || !uy) st = TML_ERR_NOMEM;
        if (!st) st = tml_plot_series(pl, "mixed (knapsack front)", nf, x, y, 1);
        if (!st) st = tml_plot_series(pl, "uniform 2..8 bits", nu, ux, uy, 1);
        if (!st) {
            double cx = (double)r->points[r->chosen].bytes, cy = 100.0 * r->points[r->chosen].top1;
            st = tml_plot_highlight(pl, "chosen", 1, &cx, &cy);
        }
        if (!st) st = tml_plot_write_png(pl, plot);
        free(x), free(y), free(ux), free(uy);
        tml_plot_free(pl);
        if (st) return st;
        cli_log(c, "wrote %s", plot);
    }
    return TML_OK;
}

static tml_table *mp_layer_table(const tml_mp_result *r)
{
    static const char *const hdr[] = {"layer", "params", "bits", "2", "3", "4", "5", "6", "7"};
    tml_table *t = tml_table_new("sensitivity", "KL divergence from the float model of each layer alone at each width "
                                 "(the rest at 8 bits), minus the all-8-bit model's", 9, hdr);
    for (int l = 0; l < r->n_layers; l++) {
        tml_table_add_row(t);
        tml_table_str(t, 0, r->layers[l].name);
        tml_table_int(t, 1, r->layers[l].params);
        tml_table_int(t, 2, r->points[r->chosen].bits[l]);
        for (int b = 2; b <= 7; b++) tml_table_num(t, b + 1, r->layers[l].dloss[b], "%.5f");
    }
    tml_table_note(t, "%lld held-out samples: float top-1 %.2f%%, all layers 8-bit top-1 %.2f%% and KL %.5f; "
                   "'bits' is the chosen width", (long long)r->samples, 100 * r->float_top1, 100 * r->int8_top1, r->int8_loss);
    return t;
}

static tml_table *mp_front_table(const tml_mp_result *r, const char *calib, int64_t target)
{
    static const char *const hdr[] = {"point", "weight bytes", "predicted KL", "top1%", "KL", "bits per layer"};
    tml_table *t = tml_table_new("front", "Size / accuracy: knapsack Pareto front and uniform widths", 6, hdr);
    for (int i = 0; i < r->n_points; i++) {
        const tml_mp_point *p = &r->points[i];
        char name[32], bits[512];
        if (p->uniform) snprintf(name, sizeof name, "uniform %d", p->uniform);
        else snprintf(name, sizeof name, "%s%d", i == r->chosen ? "* mixed " : "mixed ", i + 1);
        size_t k = 0;
        bits[0] = '\0';
        for (int l = 0; l < r->n_layers && k + 4 < sizeof bits; l++)
            k += (size_t)snprintf(bits + k, sizeof bits - k, "%s%d", l ? "," : "", p->bits[l]);
        tml_table_add_row(t);
        tml_table_str(t, 0, name);
        tml_table_int(t, 1, p->bytes);
        tml_table_num(t, 2, p->cost, "%.5f");
        tml_table_num(t, 3, 100 * p->top1, "%.2f");
        tml_table_num(t, 4, p->loss, "%.5f");
        tml_table_str(t, 5, bits);
    }
    if (target > 0)
        tml_table_note(t, "* chosen: the knapsack's best within %lld weight bytes; measured on %lld held-out samples of %s",
                       (long long)target, (long long)r->samples, calib);
    else
        tml_table_note(t, "* chosen: the smallest front point within the drop; measured on %lld held-out samples of %s",
                       (long long)r->samples, calib);
    return t;
}

int cmd_quantize(int argc, char **argv)
{
    cli c;
    cli_init(&c, "quantize", help_quantize, argc, argv);
    const char *pos[1] = {NULL}, *calib = NULL, *method = "minmax", *data = NULL, *out = NULL, *rounding = NULL;
    const char *wround = "nearest", *wbits_s = NULL, *target_s = NULL, *cand_s = NULL, *plot = NULL;
    int auto_bits = 0;
    double max_drop = -1.0;
    int64_t sens_samples = 2000;
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
        if (cli_str(&c, "weight-bits", 0, &wbits_s)) {
            long v;
            if (strcmp(wbits_s, "auto") == 0) auto_bits = 1;
            else if (cli_parse_long(wbits_s, &v) || v < 2 || v > 8)
                cli_usage_error(&c, "--weight-bits must be 2..8 or auto (got '%s')", wbits_s);
            else auto_bits = 0, qo.weight_bits = (int)v;
            continue;
        }
        if (cli_str(&c, "weight-rounding", 0, &wround) || cli_str(&c, "target-size", 0, &target_s) ||
            cli_str(&c, "candidate-bits", 0, &cand_s) || cli_str(&c, "plot", 0, &plot))
            continue;
        if (cli_double(&c, "max-drop", 0, 0.0, 100.0, &max_drop) || cli_i64(&c, "sens-samples", 0, 1, 10000000, &sens_samples))
            continue;
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
    if (strcmp(wround, "adaptive") == 0) qo.weight_rounding = TML_ROUND_ADAPTIVE;
    else if (strcmp(wround, "nearest") != 0)
        cli_usage_error(&c, "--weight-rounding must be nearest or adaptive (got '%s')", wround);
    if (qo.weight_rounding == TML_ROUND_ADAPTIVE && qo.weight_only)
        cli_usage_error(&c, "--weight-rounding adaptive needs calibration data: drop --weight-only");
    tml_mp_opts mpo;
    tml_mp_opts_default(&mpo);
    if (auto_bits) {
        if (qo.weight_only) cli_usage_error(&c, "--weight-bits auto chooses widths for the int8 model: drop --weight-only");
        if (!target_s == !(max_drop >= 0))
            cli_usage_error(&c, "--weight-bits auto needs one of --target-size S or --max-drop P");
        mpo.max_drop = max_drop >= 0 ? max_drop / 100.0 : -1.0;
        if (cand_s) parse_candidates(&c, cand_s, &mpo);
    } else if (target_s || max_drop >= 0 || cand_s || plot) {
        cli_usage_error(&c, "--target-size, --max-drop, --candidate-bits and --plot go with --weight-bits auto");
    }
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
                             .cancel = &cli_cancel_flag, .hessians = qo.weight_rounding == TML_ROUND_ADAPTIVE};
        if (co.hessians && !auto_bits) co.sequential = &qo; /* GPTQ's sequential order */
        st = tml_calibrate(m, ds, &co, &cal);
        cli_progress_end(&p);
        tml_dataset_free(ds);
        if (st) cli_fail_status(&c, st);
    }
    tml_mp_result mp = {0};
    tml_layer_bits *lbits = NULL;
    tml_table *mp_tables[2] = {NULL, NULL};
    if (auto_bits) {
        mpo.target_bytes = target_s ? parse_target(&c, target_s, m) : 0;
        mpo.quant = qo;
        st = run_mixed(&c, m, &cal, calib, sens_samples, &mpo, &mp, plot);
        if (st) cli_fail_status(&c, st);
        if ((st = tml_mp_layer_bits(&mp, mp.chosen, &lbits))) cli_fail_status(&c, st);
        qo.layer_bits = lbits;
        qo.n_layer_bits = mp.n_layers;
        mp_tables[0] = mp_layer_table(&mp);
        mp_tables[1] = mp_front_table(&mp, calib, mpo.target_bytes);
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
    if (auto_bits) {
        cJSON *lb = cJSON_AddObjectToObject(h, "layer_bits");
        for (int l = 0; l < mp.n_layers; l++) cJSON_AddNumberToObject(lb, mp.layers[l].name, mp.points[mp.chosen].bits[l]);
        cJSON_AddNumberToObject(h, "weight_bytes", (double)mp.points[mp.chosen].bytes);
        if (mpo.target_bytes > 0) cJSON_AddNumberToObject(h, "target_bytes", (double)mpo.target_bytes);
        if (mpo.max_drop >= 0) cJSON_AddNumberToObject(h, "max_drop", mpo.max_drop);
    } else {
        cJSON_AddNumberToObject(h, "bits", qo.weight_bits);
    }
    cJSON_AddStringToObject(h, "weight_rounding", wround);
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
        char label[32];
        if (qo.weight_only) snprintf(label, sizeof label, "weight-only");
        else if (auto_bits) snprintf(label, sizeof label, "mixed W-A8");
        else if (qo.weight_bits < 8) snprintf(label, sizeof label, "W%dA8", qo.weight_bits);
        else snprintf(label, sizeof label, "int8");
        tml_table_str(t, 0, label);
        tml_table_num(t, 1, b1, "%.0f");
        tml_table_num(t, 2, flash, "%.0f");
        tml_table_num(t, 3, ram, "%.0f");
        tml_table_num(t, 4, b0 / b1, "%.2fx");
        cli_acc_cells(t, 5, &a1, &a0);
        char dn[600];
        cli_eval_data_note(&c, &cd, 0, dn, sizeof dn);
        tml_table_note(t, "accuracy on %s%s; calibration: %s, %lld samples of %s%s, seed %llu; %s weights%s", dn,
                       limit ? " (limited)" : "", tml_calib_method_name(qo.method), (long long)cal.samples,
                       calib ? calib : "-", val_split > 0 ? " minus the held-out part" : "", (unsigned long long)c.seed,
                       qo.per_tensor ? "per-tensor" : "per-channel",
                       qo.weight_rounding == TML_ROUND_ADAPTIVE ? ", adaptive rounding" : "");
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
    tml_table *ts[3];
    int nts = 0;
    if (mp_tables[0]) ts[nts++] = mp_tables[0];
    if (mp_tables[1]) ts[nts++] = mp_tables[1];
    if (t) ts[nts++] = t;
    if (nts) cli_print_pass_report(&c, out, ts, nts);
    for (int i = 0; i < nts; i++) tml_table_free(ts[i]);
    free(lbits);
    tml_mp_result_free(&mp);
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
