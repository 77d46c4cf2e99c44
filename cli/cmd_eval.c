/*
 * cmd_eval.c - `tinyml eval MODEL --data D`: accuracy and throughput.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_schedule.h"

static const char help[] =
    "Usage: tinyml eval [options] [MODEL] --data SPEC\n"
    "\n"
    "Evaluate a model (float or int8) on a dataset, streamed batch by batch:\n"
    "top-1 and top-5 accuracy (top-5 when there are more than 5 classes), mean\n"
    "cross-entropy, per-class accuracy, samples per second; the confusion matrix\n"
    "on request. The model's stored preprocessing is applied to the data.\n"
    "\n"
    "Options:\n"
    "  -d, --data SPEC    fashion-mnist[:test|:train] (default split: test),\n"
    "                     idx:IMAGES,LABELS, png:DIR (DIR/<class>/*.png), csv:FILE\n"
    "  --val-split F      evaluate only the fraction F held out of SPEC (seeded by --seed):\n"
    "                     the samples 'prune/cluster --val-split F' did not fine-tune on\n"
    "  --limit N          evaluate only the first N samples\n"
    "  --batch N          samples per batch (default 256); --batch 1 measures latency\n"
    "  --confusion        print the confusion matrix (rows: true class)\n"
    "  --no-per-class     omit the per-class table\n"
    "  --ref              run the scalar reference kernels (slow; for checking)\n"
    "  --max-recompute P, --ram-limit BYTES, --no-schedule\n"
    "                     int8 models run their memory schedule (tinyml schedule:\n"
    "                     the one stored in the model, else the default), sample by\n"
    "                     sample in the schedule's arena as the exported C does; these\n"
    "                     choose another; --no-schedule runs layer by layer (batched).\n"
    "                     The outputs are the same bits either way.\n"
    "  --check-schedule   also run every batch layer by layer and compare every\n"
    "                     output value with the scheduled run; any difference is an\n"
    "                     error (exit 1). Timings then include both runs.\n"
    "  --format F         table (default), md, csv or json\n"
    "  -q, --quiet        no progress bar or log on stderr\n"
    "\n"
    "Examples:\n"
    "  tinyml eval lenet5.tmf --data fashion-mnist\n"
    "  tinyml create lenet5 | tinyml eval --data fashion-mnist:test\n"
    "  tinyml eval small.tmf --data fashion-mnist --limit 1000 --confusion --format json\n"
    "  tinyml eval lenet5-int8.tmf --data fashion-mnist --ram-limit 5000\n";

int cmd_eval(int argc, char **argv)
{
    cli c;
    cli_init(&c, "eval", help, argc, argv);
    const char *pos[1] = {NULL};
    cli_data data = {0};
    int64_t limit = 0;
    int batch = 256, confusion = 0, per_class = 1, ref = 0, check = 0;
    cli_sched so;
    cli_sched_init(&so);
    while (cli_next(&c)) {
        if (cli_sched_flag(&c, &so)) continue;
        if (cli_data_option(&c, &data)) continue;
        if (cli_i64(&c, "limit", 0, 1, INT64_MAX, &limit)) continue;
        if (cli_int(&c, "batch", 0, 1, 65536, &batch)) continue;
        if (cli_flag(&c, "confusion", 0)) {
            confusion = 1;
            continue;
        }
        if (cli_flag(&c, "no-per-class", 0)) {
            per_class = 0;
            continue;
        }
        if (cli_flag(&c, "check-schedule", 0)) {
            check = 1;
            continue;
        }
        if (cli_flag(&c, "ref", 0)) {
            ref = 1;
            continue;
        }
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (data.eval_spec && !data.spec) data.spec = data.eval_spec, data.eval_spec = NULL;
    if (!data.spec) cli_usage_error(&c, "--data is required (e.g. --data fashion-mnist)");
    tml_model *m = cli_load_model(&c, pos[0]);
    tml_dataset *ds = cli_open_eval_data(&c, &data, m);
    const tml_dataset_info *info = tml_dataset_get_info(ds);

    /* int8: the memory schedule export --c would use (or layer by layer) */
    tml_schedule sc;
    memset(&sc, 0, sizeof sc);
    tml_sched_opts sopt;
    const char *from = NULL;
    int scheduled = 0;
    if (tml_model_is_quantized(m)) {
        cli_sched_opts(&c, &so, m, &sopt, &from);
        if (sopt.enabled) {
            cli_sched_compute(&c, m, &sopt, NULL, &sc);
            scheduled = 1;
            if (sopt.ram_limit > 0 && !sc.fits)
                cli_warn(&c, "no schedule fits %lld bytes: running the least-RAM one (%lld bytes, %lld over)",
                         (long long)sopt.ram_limit, (long long)sc.arena_bytes, (long long)(sc.arena_bytes - sopt.ram_limit));
        }
    } else if (so.none || so.ram_limit > 0 || so.max_recompute >= 0) {
        cli_usage_error(&c, "memory schedules are for int8 models: quantize first");
    }

    cli_progress p;
    cli_progress_start(&p, &c, "eval");
    tml_eval_opts o = {.limit = limit, .batch = batch, .use_ref = ref, .progress = cli_progress_cb,
                       .progress_user = &p, .cancel = &cli_cancel_flag, .schedule = scheduled ? &sc : NULL,
                       .check_schedule = check};
    tml_eval_result r;
    tml_status st = tml_evaluate(m, ds, &o, &r);
    cli_progress_end(&p);
    if (st) cli_fail_status(&c, st);

    int k = r.n_classes;
    int show5 = k > 5;
    static const char *const hdr[] = {"model", "dataset", "samples", "top1%", "top5%", "loss", "samples/s", "seconds",
                                      "top1 95% CI"};
    tml_table *t = tml_table_new("summary", "Evaluation", 9, hdr);
    tml_table_add_row(t);
    tml_table_str(t, 0, m->meta.name ? m->meta.name : (pos[0] ? pos[0] : "<stdin>"));
    tml_table_str(t, 1, info->name);
    tml_table_int(t, 2, r.n);
    tml_table_num(t, 3, 100.0 * r.top1, "%.2f");
    tml_table_num(t, 4, show5 ? 100.0 * r.top5 : 0.0 / 0.0, "%.2f");
    tml_table_num(t, 5, r.loss, "%.4f");
    tml_table_num(t, 6, r.samples_per_s, "%.0f");
    tml_table_num(t, 7, r.seconds, "%.3f");
    double lo, hi;
    tml_wilson_interval(r.correct1, r.n, &lo, &hi);
    tml_table_fmt(t, 8, "%.2f-%.2f", 100.0 * lo, 100.0 * hi);
    tml_table_note(t, "%s: %lld of %lld samples in file order (no sampling), batch %d, %s kernels", info->name,
                   (long long)r.n, (long long)info->count, batch, ref ? "reference" : "fast");
    tml_table_note(t, "top1 95%% CI: Wilson interval of the top-1 on these %lld samples", (long long)r.n);
    if (scheduled) {
        char d[128];
        cli_sched_describe(&sopt, d, sizeof d);
        tml_table_note(t, "memory schedule (%s, %s): %d segments, arena %lld bytes per inference vs the tensor-by-tensor "
                          "bound %lld, %lld extra MACs; run sample by sample as the exported C runs it",
                       d, from, sc.n_segments, (long long)sc.arena_bytes, (long long)sc.bound_bytes, (long long)sc.extra_macs);
    } else if (from) {
        tml_table_note(t, "memory schedule: none (layer by layer, %s)", from);
    }
    if (check && scheduled)
        tml_table_note(t, "schedule check: %lld output values compared with the layer-by-layer run, %lld differ",
                       (long long)r.sched_checked, (long long)r.sched_diffs);

    tml_table *tables[3] = {t, NULL, NULL};
    int nt = 1;
    tml_table *pc = NULL, *cm = NULL;
    if (per_class) {
        static const char *const ph[] = {"class", "label", "samples", "correct", "accuracy%"};
        pc = tml_table_new("per_class", "Per-class accuracy", 5, ph);
        for (int i = 0; i < k; i++) {
            if (!r.class_total[i] && i >= info->n_classes) continue;
            tml_table_add_row(pc);
            tml_table_int(pc, 0, i);
            const char *lab = (info->labels && i < info->n_classes) ? info->labels[i]
                              : (m->meta.labels && i < m->meta.n_classes) ? m->meta.labels[i] : "";
            tml_table_str(pc, 1, lab);
            tml_table_int(pc, 2, r.class_total[i]);
            tml_table_int(pc, 3, r.class_correct[i]);
            tml_table_num(pc, 4, r.class_total[i] ? 100.0 * (double)r.class_correct[i] / (double)r.class_total[i] : 0.0 / 0.0, "%.2f");
        }
        tables[nt++] = pc;
    }
    if (confusion) {
        const char **ch = calloc((size_t)k + 1, sizeof(char *));
        char (*names)[16] = calloc((size_t)k + 1, sizeof *names);
        if (!ch || !names) cli_fail(&c, "out of memory");
        ch[0] = "true\\pred";
        for (int i = 0; i < k; i++) {
            snprintf(names[i], sizeof names[i], "%d", i);
            ch[i + 1] = names[i];
        }
        cm = tml_table_new("confusion", "Confusion matrix (rows: true class, columns: predicted)", k + 1, ch);
        for (int i = 0; i < k; i++) {
            tml_table_add_row(cm);
            tml_table_int(cm, 0, i);
            for (int j = 0; j < k; j++) tml_table_int(cm, j + 1, r.confusion[(size_t)i * (size_t)k + (size_t)j]);
        }
        tables[nt++] = cm;
        free(ch);
        free(names);
    }
    cli_print_tables(&c, stdout, tables, nt);
    int64_t diffs = r.sched_diffs;
    if (check && !scheduled) cli_warn(&c, "--check-schedule: no schedule ran (float model or --no-schedule): nothing compared");
    tml_table_free(t);
    tml_table_free(pc);
    tml_table_free(cm);
    tml_eval_result_free(&r);
    tml_schedule_free(&sc);
    tml_dataset_free(ds);
    tml_model_free(m);
    if (diffs) cli_fail(&c, "the scheduled run differs from the layer-by-layer run in %lld output values", (long long)diffs);
    return 0;
}
