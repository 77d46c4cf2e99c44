/*
 * data.c - which samples a command trains, calibrates and evaluates on
 * (--data, --val-split, --eval-data), and how it reports the accuracy it
 * measured: with a confidence interval, and a paired test for a drop.
 *
 * The rule every command follows: evaluation never uses the samples that
 * fine-tuning used, unless the user asked for exactly that, and the table
 * says which samples were used.
 *   --eval-data E   evaluate on E (default split test)
 *   --val-split F   hold out a seeded fraction F of --data (tml_dataset_holdout,
 *                   --seed): fine-tune / calibrate on the rest, evaluate on it
 *   neither         evaluate on --data with the default split test: the test
 *                   split of a named dataset; for a CSV file or PNG folder
 *                   (no splits) that is the fine-tuning data, and the command
 *                   warns when it fine-tuned
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tinyml/tml_engine.h"

/* A drop (points of top-1) that gets a warning on stderr, besides the table. */
#define CLI_LOUD_DROP 5.0

int cli_data_option(cli *c, cli_data *d)
{
    if (cli_str(c, "data", 'd', &d->spec)) return 1;
    if (cli_str(c, "eval-data", 0, &d->eval_spec)) return 1;
    if (cli_double(c, "val-split", 0, 1e-6, 0.999999, &d->val_split)) return 1;
    return 0;
}

/* Opens spec (default split) and, with --val-split, one part of it. */
static tml_dataset *open_part(const cli *c, const char *spec, const char *split, double frac, int held_out)
{
    tml_dataset *ds = cli_open_dataset(c, spec, split);
    if (frac > 0) {
        tml_dataset *part = NULL;
        tml_status st = tml_dataset_holdout(ds, frac, c->seed, held_out, &part);
        if (st) cli_fail_status(c, st);
        ds = part;
    }
    return ds;
}

static void match(const cli *c, tml_dataset *ds, const tml_model *m)
{
    if (!m) return;
    tml_status st = tml_dataset_match(ds, m);
    if (st) cli_fail_status(c, st);
}

tml_dataset *cli_open_train_data(const cli *c, const cli_data *d, const tml_model *m)
{
    tml_dataset *ds = open_part(c, d->spec, "train", d->val_split, 0);
    match(c, ds, m);
    return ds;
}

tml_dataset *cli_open_eval_data(const cli *c, const cli_data *d, const tml_model *m)
{
    tml_dataset *ds = d->eval_spec ? cli_open_dataset(c, d->eval_spec, "test")
                                   : open_part(c, d->spec, "test", d->val_split, 1);
    match(c, ds, m);
    return ds;
}

int cli_has_eval_data(const cli_data *d) { return d->spec || d->eval_spec; }

void cli_eval_data_note(const cli *c, const cli_data *d, int trained, char *buf, size_t cap)
{
    tml_dataset *ev = cli_open_eval_data(c, d, NULL);
    const tml_dataset_info *ei = tml_dataset_get_info(ev);
    if (d->eval_spec)
        snprintf(buf, cap, "%s (--eval-data, %lld samples)", ei->name, (long long)ei->count);
    else if (d->val_split > 0)
        snprintf(buf, cap, "the %lld samples held out of %s (%.3g%%, seed %llu)%s", (long long)ei->count, d->spec,
                 100.0 * d->val_split, (unsigned long long)c->seed, trained ? ", never fine-tuned on" : "");
    else
        snprintf(buf, cap, "%s (%lld samples)", ei->name, (long long)ei->count);
    if (trained && d->spec && !d->eval_spec && d->val_split <= 0) {
        /* the same samples on both sides? (a named dataset's test split is not) */
        tml_dataset *tr = cli_open_dataset(c, d->spec, "train");
        if (strcmp(tml_dataset_get_info(tr)->name, ei->name) == 0) {
            size_t l = strlen(buf);
            snprintf(buf + l, cap - l, "; the SAME samples it was fine-tuned on (no held-out data: use --val-split or --eval-data)");
            cli_warn(c, "%s has no test split: accuracy is measured on the samples used for fine-tuning; "
                        "use --val-split F or --eval-data D for an honest number", d->spec);
        }
        tml_dataset_free(tr);
    }
    tml_dataset_free(ev);
}

/* ---- accuracy, with its statistics -------------------------------------------------------- */

void cli_accuracy(const cli *c, const tml_model *m, const cli_data *d, int64_t limit, cli_acc *out)
{
    memset(out, 0, sizeof *out);
    tml_dataset *ds = cli_open_eval_data(c, d, m);
    int64_t n = tml_dataset_get_info(ds)->count;
    if (limit > 0 && limit < n) n = limit;
    out->correct = malloc((size_t)(n ? n : 1));
    if (!out->correct) cli_fail(c, "out of memory");
    cli_progress p;
    cli_progress_start(&p, c, "eval");
    tml_eval_opts o = {.limit = limit, .progress = cli_progress_cb, .progress_user = &p, .cancel = &cli_cancel_flag,
                       .correct = out->correct};
    tml_eval_result r;
    tml_status st = tml_evaluate(m, ds, &o, &r);
    cli_progress_end(&p);
    if (st) cli_fail_status(c, st);
    out->top1 = r.top1;
    out->n = r.n;
    out->k = r.correct1;
    tml_eval_result_free(&r);
    tml_dataset_free(ds);
}

void cli_acc_free(cli_acc *a)
{
    free(a->correct);
    memset(a, 0, sizeof *a);
}

double cli_acc_p(const cli_acc *base, const cli_acc *a)
{
    if (!base->correct || !a->correct || base->n != a->n || base == a) return NAN;
    int64_t b = 0, cc = 0;
    for (int64_t i = 0; i < a->n; i++) {
        b += base->correct[i] && !a->correct[i];
        cc += !base->correct[i] && a->correct[i];
    }
    return tml_mcnemar_p(b, cc);
}

void cli_acc_cells(tml_table *t, int col, const cli_acc *a, const cli_acc *base)
{
    if (!a->n) {
        for (int i = 0; i < 4; i++) tml_table_num(t, col + i, NAN, "%.2f");
        return;
    }
    double lo, hi;
    tml_wilson_interval(a->k, a->n, &lo, &hi);
    tml_table_num(t, col, 100.0 * a->top1, "%.2f");
    tml_table_num(t, col + 1, base && base != a ? 100.0 * (base->top1 - a->top1) : 0.0, "%.2f");
    tml_table_fmt(t, col + 2, "%.2f-%.2f", 100.0 * lo, 100.0 * hi);
    double p = base && base != a ? cli_acc_p(base, a) : NAN;
    if (p < 1e-16)
        tml_table_str(t, col + 3, "<1e-16"); /* beyond what a double sum resolves */
    else
        tml_table_num(t, col + 3, p, "%.2g");
}

void cli_acc_note(const cli *c, tml_table *t, const cli_acc *base, const cli_acc *const *others, int n_others)
{
    if (!base || !base->n) return;
    for (int i = 0; i < n_others; i++) {
        /* a model that got much worse is a result to look at, not a footnote */
        double p = cli_acc_p(base, others[i]), drop = 100.0 * (base->top1 - others[i]->top1);
        if (drop >= CLI_LOUD_DROP && !(p >= 0.01))
            cli_warn(c, "top-1 fell by %.2f points (%.2f%% -> %.2f%%, p %s): check the result before using it", drop,
                     100.0 * base->top1, 100.0 * others[i]->top1, p < 1e-16 ? "< 1e-16" : "< 0.01");
    }
    tml_table_note(t, "top1%% with its 95%% Wilson interval on %lld samples; drop in points; p: exact McNemar test of "
                      "the drop on the same samples",
                   (long long)base->n);
    for (int i = 0; i < n_others; i++) {
        const cli_acc *a = others[i];
        double p = cli_acc_p(base, a);
        if (!isnan(p) && p >= 0.05 && a->top1 != base->top1)
            tml_table_note(t, "top-1 %.2f%% against %.2f%% (p = %.2g): the difference is inside the noise of %lld samples",
                           100.0 * a->top1, 100.0 * base->top1, p, (long long)a->n);
    }
}
