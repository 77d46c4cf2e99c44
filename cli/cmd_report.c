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
    "One table, a row per model: file bytes, compression ratio against the\n"
    "baseline, parameters and nonzeros, bits per weight, MACs, peak activation\n"
    "memory, top-1 (and its drop against the baseline), evaluation samples/s.\n"
    "Every number is measured: the files are serialized, the models evaluated.\n"
    "\n"
    "Options:\n"
    "  -d, --data SPEC        evaluation data (default split: test)\n"
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
    double bytes, top1, sps;
    int64_t params, nonzeros, macs, peak;
    double weight_bits; /* bits per weight of the stored weights */
} row;

static void measure(cli *c, const char *path, const char *data, int64_t limit, int batch, row *r)
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
    tml_dataset *ds = cli_open_dataset(c, data, "test");
    cli_progress p;
    cli_progress_start(&p, c, path);
    tml_eval_opts o = {.limit = limit, .batch = batch, .progress = cli_progress_cb, .progress_user = &p, .cancel = &cli_cancel_flag};
    tml_eval_result er;
    st = tml_evaluate(m, ds, &o, &er);
    cli_progress_end(&p);
    if (st) {
        tml_error_context(st, "%s", path);
        cli_fail_status(c, st);
    }
    r->top1 = er.top1;
    r->sps = er.samples_per_s;
    tml_eval_result_free(&er);
    tml_dataset_free(ds);
    tml_model_free(m);
}

int cmd_report(int argc, char **argv)
{
    cli c;
    cli_init(&c, "report", help, argc, argv);
    const char *models[256] = {NULL}, *data = NULL, *baseline = NULL, *plot = NULL;
    int64_t limit = 0;
    int batch = 256;
    while (cli_next(&c)) {
        if (cli_str(&c, "data", 'd', &data) || cli_str(&c, "baseline", 0, &baseline) || cli_str(&c, "plot", 0, &plot)) continue;
        if (cli_i64(&c, "limit", 0, 1, INT64_MAX, &limit) || cli_int(&c, "batch", 0, 1, 65536, &batch)) continue;
        if (cli_positional(&c, models, 255)) continue;
        cli_unknown(&c);
    }
    if (!models[0]) cli_usage_error(&c, "give at least one MODEL");
    if (!data) cli_usage_error(&c, "--data is required");
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
        measure(&c, models[i], data, limit, batch, &rows[i]);
    }
    static const char *const hdr[] = {"model", "bytes", "ratio", "params", "nonzeros", "bits/w", "MACs", "peak act B",
                                      "top1%", "drop", "samples/s"};
    tml_table *t = tml_table_new("models", "Size and accuracy", 11, hdr);
    const row *b = &rows[base];
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        tml_table_add_row(t);
        tml_table_str(t, 0, r->name);
        tml_table_num(t, 1, r->bytes, "%.0f");
        tml_table_num(t, 2, b->bytes / r->bytes, "%.1fx");
        tml_table_int(t, 3, r->params);
        tml_table_int(t, 4, r->nonzeros);
        tml_table_num(t, 5, r->weight_bits, "%.2f");
        tml_table_int(t, 6, r->macs);
        tml_table_int(t, 7, r->peak);
        tml_table_num(t, 8, 100 * r->top1, "%.2f");
        tml_table_num(t, 9, 100 * (b->top1 - r->top1), "%.2f");
        tml_table_num(t, 10, r->sps, "%.0f");
    }
    tml_table_note(t, "baseline %s; top-1 on %s (default split test)%s; batch %d; bits/w = file bits per parameter",
                   b->name, data, limit ? ", limited samples" : "", batch);
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
    free(rows);
    return 0;
}
