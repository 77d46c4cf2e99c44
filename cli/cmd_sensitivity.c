/*
 * cmd_sensitivity.c - `tinyml sensitivity`: accuracy when one layer alone is
 * pruned (or quantized) to each point of a scan; table, CSV, JSON, PNG plot.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tinyml/tml_plot.h"
#include "tinyml/tml_prune.h"

static const char help[] =
    "Usage: tinyml sensitivity [options] [MODEL] --data SPEC\n"
    "\n"
    "For each prunable layer alone, prune it to each sparsity of the range (or\n"
    "quantize its weights to each bit width) and measure top-1 accuracy: the\n"
    "layers whose curve stays flat can be pruned hard. Evaluations run in\n"
    "parallel. The JSON output feeds 'tinyml prune --from-sensitivity'.\n"
    "\n"
    "Options:\n"
    "  -d, --data SPEC        evaluation data (default split: test)\n"
    "  --val-split F          only the fraction F held out of SPEC (seeded by --seed)\n"
    "  --limit N              evaluate N samples per point (default: all; 1000 for a quick scan)\n"
    "  --mode M               element (default: unstructured magnitude), filters\n"
    "                         (structured), quant (weight bits, fake-quantized)\n"
    "  --range A:B:S          sparsities A, A+S, ... <= B (default 0:0.95:0.05)\n"
    "  --bits LO:HI           quant mode: bit widths (default 2:8)\n"
    "  --csv FILE             long-format CSV: layer, point, achieved sparsity, top1, drop\n"
    "  --json FILE            the full result (input of prune --from-sensitivity)\n"
    "  --plot FILE.png        accuracy vs sparsity, one line per layer\n"
    "  --batch N              evaluation batch (default 256)\n"
    "  --format F             table (default), md, csv, json: the drop table on stdout\n"
    "  -q, --quiet            no progress bar\n"
    "\n"
    "Examples:\n"
    "  tinyml sensitivity lenet5.tmf --data fashion-mnist --plot sens.png --json sens.json\n"
    "  tinyml sensitivity lenet5.tmf --data fashion-mnist --limit 1000 --range 0.5:0.95:0.05\n"
    "  tinyml sensitivity dscnn.tmf --data fashion-mnist --mode quant --bits 2:8\n";

static int parse_range(const char *s, double *a, double *b, double *st)
{
    char extra;
    return sscanf(s, "%lf:%lf:%lf%c", a, b, st, &extra) == 3 ? 0 : -1;
}

int cmd_sensitivity(int argc, char **argv)
{
    cli c;
    cli_init(&c, "sensitivity", help, argc, argv);
    const char *pos[1] = {NULL}, *mode = "element", *range = NULL, *bits = NULL, *csv = NULL, *json = NULL,
               *plot = NULL;
    cli_data data = {0};
    tml_sens_opts o = {.start = 0, .stop = 0.95, .step = 0.05, .bits_lo = 2, .bits_hi = 8, .batch = 256};
    while (cli_next(&c)) {
        if (cli_data_option(&c, &data)) continue;
        if (cli_str(&c, "mode", 0, &mode) || cli_str(&c, "range", 0, &range) ||
            cli_str(&c, "bits", 0, &bits) || cli_str(&c, "csv", 0, &csv) || cli_str(&c, "json", 0, &json) ||
            cli_str(&c, "plot", 0, &plot))
            continue;
        if (cli_i64(&c, "limit", 0, 1, INT64_MAX, &o.limit) || cli_int(&c, "batch", 0, 1, 65536, &o.batch)) continue;
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (data.eval_spec && !data.spec) data.spec = data.eval_spec, data.eval_spec = NULL;
    if (!data.spec) cli_usage_error(&c, "--data is required");
    if (strcmp(mode, "element") == 0) o.mode = TML_SENS_ELEMENT;
    else if (strcmp(mode, "filters") == 0) o.mode = TML_SENS_FILTERS;
    else if (strcmp(mode, "quant") == 0) o.mode = TML_SENS_QUANT;
    else cli_usage_error(&c, "--mode must be element, filters or quant");
    if (range && parse_range(range, &o.start, &o.stop, &o.step)) cli_usage_error(&c, "--range expects START:STOP:STEP, e.g. 0:0.95:0.05");
    if (!(o.start >= 0 && o.stop < 1 && o.start <= o.stop && o.step > 0))
        cli_usage_error(&c, "--range needs 0 <= START <= STOP < 1 and STEP > 0");
    if (bits) {
        char extra;
        if (sscanf(bits, "%d:%d%c", &o.bits_lo, &o.bits_hi, &extra) != 2 || o.bits_lo < 2 || o.bits_hi > 8 || o.bits_lo > o.bits_hi)
            cli_usage_error(&c, "--bits expects LO:HI within 2..8");
    }
    cli_check_output(&c, csv);
    cli_check_output(&c, json);
    cli_check_output(&c, plot);
    tml_model *m = cli_load_model(&c, pos[0]);
    tml_dataset *ds = cli_open_eval_data(&c, &data, m);
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    tml_samples *s = NULL;
    tml_status st = tml_dataset_load(ds, o.limit, &s);
    if (st) cli_fail_status(&c, st);
    cli_progress p;
    cli_progress_start(&p, &c, "sensitivity");
    o.progress = cli_progress_cb;
    o.progress_user = &p;
    o.cancel = &cli_cancel_flag;
    tml_sens_result r;
    st = tml_sensitivity(m, s, &o, &r);
    cli_progress_end(&p);
    if (st) cli_fail_status(&c, st);

    /* wide table: one row per layer, a column per point, cells = drop in points */
    int np = r.n_points;
    const char **hdr = calloc((size_t)np + 1, sizeof(char *));
    char (*hn)[16] = calloc((size_t)np, sizeof *hn);
    hdr[0] = "layer";
    for (int j = 0; j < np; j++) {
        if (o.mode == TML_SENS_QUANT) snprintf(hn[j], sizeof hn[j], "%gb", r.x[j]);
        else snprintf(hn[j], sizeof hn[j], "%.2f", r.x[j]);
        hdr[j + 1] = hn[j];
    }
    tml_table *t = tml_table_new("drop", o.mode == TML_SENS_QUANT ? "Top-1 drop (points) by weight bits"
                                                                 : "Top-1 drop (points) by sparsity of one layer",
                                 np + 1, hdr);
    for (int l = 0; l < r.n_layers; l++) {
        tml_table_add_row(t);
        tml_table_str(t, 0, r.layers[l]);
        for (int j = 0; j < np; j++) tml_table_num(t, j + 1, 100.0 * (r.base_acc - r.acc[l * np + j]), "%.2f");
    }
    tml_table_note(t, "baseline top-1 %.2f%% on %s, %lld samples; mode %s; %d evaluations in %.1fs", 100 * r.base_acc,
                   info->name, (long long)r.samples, mode, r.n_layers * np, r.seconds);
    tml_table *ts[1] = {t};
    cli_print_tables(&c, stdout, ts, 1);
    tml_table_free(t);
    free(hdr);
    free(hn);

    if (csv) {
        size_t cap = 256 + strlen(info->name);
        for (int l = 0; l < r.n_layers; l++) cap += (size_t)np * (strlen(r.layers[l]) + 96);
        char *buf = malloc(cap);
        if (!buf) cli_fail(&c, "out of memory");
        size_t n = (size_t)snprintf(buf, cap, "# %s, %lld samples, baseline top1 %.6f\nlayer,%s,actual_sparsity,top1,drop\n",
                                    info->name, (long long)r.samples, r.base_acc, o.mode == TML_SENS_QUANT ? "bits" : "sparsity");
        for (int l = 0; l < r.n_layers; l++)
            for (int j = 0; j < np && n < cap; j++)
                n += (size_t)snprintf(buf + n, cap - n, "%s,%g,%.6f,%.6f,%.6f\n", r.layers[l], r.x[j], r.actual[l * np + j],
                                      r.acc[l * np + j], r.base_acc - r.acc[l * np + j]);
        st = tml_write_file_atomic(csv, buf, strlen(buf));
        free(buf);
        if (st) cli_fail_status(&c, st);
    }
    if (json) {
        char *txt = tml_sens_to_json(&r, m->meta.name, info->name);
        if (!txt) cli_fail(&c, "out of memory");
        st = tml_write_file_atomic(json, txt, strlen(txt));
        free(txt);
        if (st) cli_fail_status(&c, st);
    }
    if (plot) {
        tml_plot *pl = tml_plot_new(960, 600);
        char title[256];
        snprintf(title, sizeof title, "%s sensitivity of %s (%s, %lld samples)", o.mode == TML_SENS_QUANT ? "Quantization" : "Pruning",
                 m->meta.name ? m->meta.name : "model", info->name, (long long)r.samples);
        tml_plot_title(pl, title);
        tml_plot_labels(pl, o.mode == TML_SENS_QUANT ? "weight bits of the layer" : "sparsity of the layer",
                        "top-1 accuracy (%)");
        double *y = malloc(sizeof(double) * (size_t)np);
        for (int l = 0; l < r.n_layers; l++) {
            for (int j = 0; j < np; j++) y[j] = 100.0 * r.acc[l * np + j];
            tml_plot_series(pl, r.layers[l], np, r.x, y, 1);
        }
        double bx[2] = {r.x[0], r.x[np - 1]}, by[2] = {100 * r.base_acc, 100 * r.base_acc};
        tml_plot_series(pl, "unpruned", 2, bx, by, 1);
        free(y);
        st = tml_plot_write_png(pl, plot);
        tml_plot_free(pl);
        if (st) cli_fail_status(&c, st);
    }
    tml_sens_result_free(&r);
    tml_samples_free(s);
    tml_dataset_free(ds);
    tml_model_free(m);
    return 0;
}
