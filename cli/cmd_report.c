/*
 * cmd_report.c - `tinyml report MODEL... --data D`: the size / accuracy table
 * that decides which compressed model to ship, and its Pareto plot.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_plot.h"

static const char help[] =
    "Usage: tinyml report MODEL... --data SPEC [options]\n"
    "\n"
    "One table, a row per model: file bytes, device flash and RAM of the C\n"
    "export (int8 models, from the export planner), compression ratio against the\n"
    "baseline, parameters and nonzeros, bits per weight, MACs, peak activation\n"
    "memory, top-1 with its 95% interval, its drop against the baseline with the\n"
    "p-value of a paired (McNemar) test on the same samples (p >= 0.05: the drop is\n"
    "inside the noise), evaluation samples/s.\n"
    "Every number is measured: the files are serialized, the models evaluated.\n"
    "\n"
    "Options:\n"
    "  -d, --data SPEC        evaluation data (default split: test)\n"
    "  --val-split F          only the fraction F held out of SPEC (seeded by --seed): the\n"
    "                         samples 'prune/cluster --val-split F' did not fine-tune on\n"
    "  --baseline MODEL       the reference row (default: the first model)\n"
    "  --limit N              evaluate N samples only\n"
    "  --batch N              evaluation batch (default 256)\n"
    "  --plot FILE.png        accuracy vs file size (log scale), Pareto front marked\n"
    "  --format F             table (default), md, csv, json\n"
    "  -q, --quiet            no progress bar\n"
    "\n"
    "Examples:\n"
    "  tinyml report base.tmf pruned.tmf clustered.tmf small.tmf --data fashion-mnist\n"
    "  tinyml report *.tmf --data fashion-mnist --baseline base.tmf --plot pareto.png --format md\n";

typedef struct row {
    const char *path;
    const char *name;
    double bytes, top1, sps, flash, ram;
    int64_t params, nonzeros, macs, peak;
    double weight_bits; /* bits per weight of the stored weights */
    cli_acc acc;        /* per-sample outcomes, for the paired test */
} row;

static void measure(cli *c, const char *path, const cli_data *data, int64_t limit, int batch, row *r)
{
    tml_model *m = cli_load_model(c, path);
    uint8_t *buf = NULL;
    size_t len = 0;
    tml_status st = tml_model_write_mem(m, NULL, &buf, &len);
    if (st) cli_fail_status(c, st);
    free(buf);
    r->bytes = (double)len;
    r->params = r->nonzeros = r->macs = 0;
    for (int t = 0; t < m->n_tensors; t++)
        if (m->tensors[t].kind == TML_TENSOR_PARAM) {
            r->params += tml_tensor_numel(&m->tensors[t]);
            r->nonzeros += tml_tensor_nonzeros(&m->tensors[t]);
        }
    for (int i = 0; i < m->n_nodes; i++) r->macs += tml_node_macs(m, &m->nodes[i]);
    if ((st = tml_model_peak_activation_bytes(m, &r->peak))) cli_fail_status(c, st);
    r->weight_bits = r->params ? 8.0 * r->bytes / (double)r->params : NAN;
    cli_device_bytes(m, &r->flash, &r->ram);
    tml_dataset *ds = cli_open_eval_data(c, data, m);
    int64_t n = tml_dataset_get_info(ds)->count;
    if (limit > 0 && limit < n) n = limit;
    r->acc.correct = malloc((size_t)(n ? n : 1));
    if (!r->acc.correct) cli_fail(c, "out of memory");
    cli_progress p;
    cli_progress_start(&p, c, path);
    tml_eval_opts o = {.limit = limit, .batch = batch, .progress = cli_progress_cb, .progress_user = &p, .cancel = &cli_cancel_flag,
                       .correct = r->acc.correct};
    tml_eval_result er;
    st = tml_evaluate(m, ds, &o, &er);
    cli_progress_end(&p);
    if (st) {
        tml_error_context(st, "%s", path);
        cli_fail_status(c, st);
    }
    r->top1 = er.top1;
    r->sps = er.samples_per_s;
    r->acc.top1 = er.top1;
    r->acc.n = er.n;
    r->acc.k = er.correct1;
    tml_eval_result_free(&er);
    tml_dataset_free(ds);
    tml_model_free(m);
}

int cmd_report(int argc, char **argv)
{
    cli c;
    cli_init(&c, "report", help, argc, argv);
    const char *models[256] = {NULL}, *baseline = NULL, *plot = NULL;
    cli_data data = {0};
    int64_t limit = 0;
    int batch = 256;
    while (cli_next(&c)) {
        if (cli_data_option(&c, &data)) continue;
        if (cli_str(&c, "baseline", 0, &baseline) || cli_str(&c, "plot", 0, &plot)) continue;
        if (cli_i64(&c, "limit", 0, 1, INT64_MAX, &limit) || cli_int(&c, "batch", 0, 1, 65536, &batch)) continue;
        if (cli_positional(&c, models, 255)) continue;
        cli_unknown(&c);
    }
    if (!models[0]) cli_usage_error(&c, "give at least one MODEL");
    if (data.eval_spec && !data.spec) data.spec = data.eval_spec, data.eval_spec = NULL;
    if (!data.spec) cli_usage_error(&c, "--data is required");
    int n = 0;
    while (models[n]) n++;
    int base = 0;
    if (baseline) {
        base = -1;
        for (int i = 0; i < n; i++)
            if (strcmp(models[i], baseline) == 0) base = i;
        if (base < 0) {
            models[n] = baseline;
            base = n++;
        }
    }
    cli_check_output(&c, plot);
    row *rows = calloc((size_t)n, sizeof(row));
    if (!rows) cli_fail(&c, "out of memory");
    for (int i = 0; i < n; i++) {
        rows[i].path = models[i];
        const char *slash = strrchr(models[i], '/');
        rows[i].name = slash ? slash + 1 : models[i];
        measure(&c, models[i], &data, limit, batch, &rows[i]);
    }
    static const char *const hdr[] = {"model", "bytes", "flash B", "RAM B", "ratio", "params", "nonzeros", "bits/w", "MACs",
                                      "peak act B", "top1%", "drop", "top1 95% CI", "p", "samples/s"};
    tml_table *t = tml_table_new("models", "Size and accuracy", 15, hdr);
    const row *b = &rows[base];
    int any_device = 0;
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        tml_table_add_row(t);
        tml_table_str(t, 0, r->name);
        tml_table_num(t, 1, r->bytes, "%.0f");
        tml_table_num(t, 2, r->flash, "%.0f");
        tml_table_num(t, 3, r->ram, "%.0f");
        any_device |= !isnan(r->flash);
        tml_table_num(t, 4, b->bytes / r->bytes, "%.1fx");
        tml_table_int(t, 5, r->params);
        tml_table_int(t, 6, r->nonzeros);
        tml_table_num(t, 7, r->weight_bits, "%.2f");
        tml_table_int(t, 8, r->macs);
        tml_table_int(t, 9, r->peak);
        cli_acc_cells(t, 10, &r->acc, &b->acc);
        tml_table_num(t, 14, r->sps, "%.0f");
    }
    char dn[600];
    cli_eval_data_note(&c, &data, 0, dn, sizeof dn);
    tml_table_note(t, "baseline %s; top-1 on %s%s; batch %d; bits/w = file bits per parameter", b->name, dn,
                   limit ? ", limited samples" : "", batch);
    if (any_device)
        tml_table_note(t, "flash B / RAM B: what 'tinyml export --c' needs on the device for the int8 models (const data "
                          "+ code estimate; static arena); '-' for float models");
    {
        const cli_acc **others = malloc(sizeof(cli_acc *) * (size_t)n);
        int no = 0;
        for (int i = 0; others && i < n; i++)
            if (i != base) others[no++] = &rows[i].acc;
        cli_acc_note(&c, t, &b->acc, others, no);
        free(others);
    }
    tml_table *ts[1] = {t};
    cli_print_tables(&c, stdout, ts, 1);
    if (plot) {
        tml_plot *pl = tml_plot_new(960, 600);
        tml_plot_title(pl, "Accuracy vs model size");
        tml_plot_labels(pl, "file size (bytes, log scale)", "top-1 accuracy (%)");
        tml_plot_xlog(pl, 1);
        double *x = malloc(sizeof(double) * (size_t)n), *y = malloc(sizeof(double) * (size_t)n);
        double *px = malloc(sizeof(double) * (size_t)n), *py = malloc(sizeof(double) * (size_t)n);
        int *order = malloc(sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            x[i] = rows[i].bytes;
            y[i] = 100 * rows[i].top1;
            order[i] = i;
        }
        tml_plot_series(pl, "models", n, x, y, 0);
        /* Pareto front: by size ascending, keep a model when it beats every smaller one */
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && x[order[j]] < x[order[j - 1]]; j--) {
                int tmp = order[j];
                order[j] = order[j - 1];
                order[j - 1] = tmp;
            }
        int np = 0;
        double best = -INFINITY;
        for (int k = 0; k < n; k++) {
            int i = order[k];
            if (y[i] > best) {
                best = y[i];
                px[np] = x[i];
                py[np++] = y[i];
            }
        }
        tml_plot_highlight(pl, "Pareto front", np, px, py);
        for (int i = 0; i < n; i++) tml_plot_annotate(pl, x[i], y[i], rows[i].name);
        tml_status st = tml_plot_write_png(pl, plot);
        tml_plot_free(pl);
        free(x);
        free(y);
        free(px);
        free(py);
        free(order);
        if (st) cli_fail_status(&c, st);
    }
    tml_table_free(t);
    for (int i = 0; i < n; i++) cli_acc_free(&rows[i].acc);
    free(rows);
    return 0;
}
