/*
 * cli.h - what every `tinyml` subcommand shares: option parsing, exit codes,
 * model and dataset I/O, report output, progress and Ctrl-C handling.
 *
 * Only cli/ prints to the terminal or exits. Exit codes: 0 success, 1 runtime
 * or data error, 2 usage error. Messages read "tinyml CMD: error: ...".
 */
#ifndef TML_CLI_H
#define TML_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "tinyml/tml_core.h"
#include "tinyml/tml_dataset.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_report.h"

#define EXIT_USAGE 2

typedef struct cli {
    const char *cmd;  /* subcommand name, for messages */
    const char *help; /* full --help text */
    int argc;
    char **argv;
    int i;            /* index of the current argument */
    const char *arg;  /* current argument */
    const char *val;  /* value given inline as --opt=value, or NULL */
    int matched;      /* did an option consume the current argument? */
    int opts_done;    /* saw "--": the rest are positionals */
    int quiet;        /* --quiet: no progress or logs */
    tml_fmt fmt;      /* --format */
    uint64_t seed;    /* --seed */
    int seed_set;
} cli;

void cli_init(cli *c, const char *cmd, const char *help, int argc, char **argv);
/* Advances to the next argument; 0 when done. Handles --help/-h (prints help,
 * exits 0), and the common --quiet, --format, --seed options. */
int cli_next(cli *c);
/* Each matcher returns 1 if the current argument is this option (and consumes
 * its value), else 0. A bad value is a usage error (exit 2). */
int cli_flag(cli *c, const char *name, char short_name);
int cli_str(cli *c, const char *name, char short_name, const char **out);
int cli_int(cli *c, const char *name, char short_name, long lo, long hi, int *out);
int cli_i64(cli *c, const char *name, char short_name, int64_t lo, int64_t hi, int64_t *out);
int cli_double(cli *c, const char *name, char short_name, double lo, double hi, double *out);
/* Weight averaging of fine-tuning (tml_train_opts.avg): --weight-avg ema[:DECAY]|mean|none and
 * --weight-avg-from F match here; cli_weight_avg_check() makes the pair consistent. */
typedef struct cli_wavg {
    int kind;          /* tml_avg */
    double decay;      /* default 0.999 */
    double from;       /* default 0.75; < 0 until given */
} cli_wavg;
#define CLI_WAVG_INIT {0, 0.999, -1}
int cli_weight_avg_option(cli *c, cli_wavg *w);
/* Usage error for --weight-avg-from without --weight-avg; fills the default start. */
void cli_weight_avg_check(cli *c, cli_wavg *w);
#define CLI_WAVG_HELP \
    "  --weight-avg ema[:D]|mean  the result is the average of the weights over the last\n" \
    "                         part of fine-tuning (ema: decay D per step, default 0.999;\n" \
    "                         mean: every step equally); pruned zeros stay zero\n" \
    "  --weight-avg-from F    averaging starts after the fraction F of the steps (default 0.75)\n"
/* A positional argument (anything not starting with '-', or "-" itself).
 * Stores it in the first NULL slot of out[0..max); more is a usage error. */
int cli_positional(cli *c, const char **out, int max);
/* Call when nothing matched: usage error naming the argument. */
void cli_unknown(cli *c);

/* Parses a number strictly (whole string); 0 on success. */
int cli_parse_double(const char *s, double *out);
int cli_parse_long(const char *s, long *out);

_Noreturn void cli_usage_error(const cli *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
_Noreturn void cli_fail(const cli *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prints tml_last_error() and exits: 2 for TML_ERR_INVALID, else 1. */
_Noreturn void cli_fail_status(const cli *c, tml_status st);
/* A log line on stderr (suppressed by --quiet). */
void cli_log(const cli *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void cli_warn(const cli *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Model input: path, or NULL/"-" for stdin (refused when stdin is a terminal). */
tml_model *cli_load_model(const cli *c, const char *path);
/* A whole input file (path, or "-" for stdin) in memory (malloc'd, *len
 * bytes); exits with an error naming the path when it cannot be read or
 * passes `max` bytes. */
uint8_t *cli_read_all(const cli *c, const char *path, size_t max, size_t *len);
/* Model output: -o path, "-" or NULL = stdout (refused when stdout is a terminal). */
void cli_save_model(const cli *c, const tml_model *m, const char *out);
/* Destinations are checked before any long work (exit 1 naming the path):
 * cli_check_output for a file (NULL: nothing to check), cli_check_model_output
 * for a model's -o (stdout: refused when it is a terminal). The rules for
 * what a path may be are tml_write_file_atomic's (tml_core.h). */
void cli_check_output(const cli *c, const char *path);
void cli_check_model_output(const cli *c, const char *out);
/* Does `out` send the model to stdout? Then reports must go to stderr. */
int cli_model_to_stdout(const char *out);

tml_dataset *cli_open_dataset(const cli *c, const char *spec, const char *default_split);

/* --mean / --std (comma-separated, 1 value or one per input channel, std > 0)
 * into the model's preprocessing; usage error (exit 2) otherwise. */
void cli_set_mean_std(const cli *c, tml_model *m, const char *mean, const char *stdv);

/* stdout: every write is checked (a failure prints "cannot write to standard
 * output" and exits 1); main() calls cli_close_stdout() after the command so
 * the final flush and close are checked too. New commands print through
 * these (or cli_print_tables), never with bare printf/fputs on stdout. */
void cli_write_stdout(const cli *c, const void *buf, size_t len);
void cli_printf(const cli *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Flushes and closes stdout; exits 1 with a message on any error. */
int cli_close_stdout(const cli *c);
/* exit(0) after cli_close_stdout (help texts and other early successes). */
_Noreturn void cli_exit_success(const cli *c);
/* Keeps fds 0-2 occupied (by /dev/null, read-only) when the caller closed
 * them, so no file the command opens takes their place. */
void cli_protect_std_fds(void);
/* The export options `export --c` and `profile` share: --dense, --form F,
 * --optimize G, --portable. cli_export_flag() consumes the current argument
 * when it is one of them (1); cli_export_flags_apply() checks them together
 * (usage error, exit 2) and sets them in *o. */
typedef struct cli_export_flags {
    int dense, portable;
    const char *form, *optimize;
} cli_export_flags;
int cli_export_flag(cli *c, cli_export_flags *f);
void cli_export_flags_apply(const cli *c, const cli_export_flags *f, tml_export_opts *o);
/* Any of them given? */
int cli_export_flags_given(const cli_export_flags *f);
/* Without --optimize, --form or --dense: the weight-form goal stored in the
 * model (`tinyml fit`'s answer), if any, into o->optimize. Returns "stored in
 * the model", "command line" or "default". */
const char *cli_export_stored(const cli *c, const cli_export_flags *f, const struct tml_model *m, tml_export_opts *o);

/* Writes rendered tables to `f` in the chosen --format. */
void cli_print_tables(const cli *c, FILE *f, tml_table *const *tables, int n);
/* The report of a command that writes a model to `out`: on stdout, or on
 * stderr when the model goes to stdout; -q drops it only in that case. */
void cli_print_pass_report(const cli *c, const char *out, tml_table *const *tables, int n);

/* Progress bar on stderr (only on a terminal and without --quiet). */
typedef struct cli_progress {
    const cli *c;
    const char *label;
    double t0;
    double last;
    int active;
} cli_progress;
void cli_progress_start(cli_progress *p, const cli *c, const char *label);
void cli_progress_cb(void *user, int64_t done, int64_t total); /* tml_progress_fn */
void cli_progress_end(cli_progress *p);

/* Ctrl-C sets this flag (library calls poll it through their cancel pointer). */
extern volatile int cli_cancel_flag;
void cli_install_sigint(void);

double cli_now(void);

/* Appends `entry` (a JSON object of the pass's parameters and measured results;
 * ownership taken) to the model's history with "pass" = the command, the
 * tinyml version and the UTC time. */
struct cJSON;
void cli_add_history(const cli *c, tml_model *m, struct cJSON *entry);
/* A wall-clock duration in a history entry, left out when SOURCE_DATE_EPOCH
 * pins the time: then the same command writes the same bytes. */
void cli_history_seconds(struct cJSON *entry, const char *key, double seconds);
/* Adds eval_data, top1_before and top1_after to a history entry. */
void cli_history_eval(struct cJSON *entry, const char *data, double top1_before, double top1_after);

/* ---- checkpoints of long runs (train, and prune / cluster fine-tuning) ----
 * With -o FILE a run keeps FILE.last.tmf (FILE without .tmf; --checkpoint
 * PREFIX picks another prefix, --no-checkpoint none) up to date after every
 * epoch, so Ctrl-C leaves a usable model. */
const char *cli_checkpoint_prefix(const char *out, const char *prefix, int none, char *buf, size_t cap);
/* Checks PREFIX.last.tmf (and PREFIX.best.tmf) can be written, before the work. */
void cli_check_checkpoints(const cli *c, const char *prefix, int best);
/* PREFIX.last.tmf: m with a history entry {"checkpoint": what}. */
tml_status cli_write_checkpoint(const cli *c, const tml_model *m, const char *prefix, const char *what);
/* After Ctrl-C: names the last checkpoint (what: NULL when none) and exits 130. */
_Noreturn void cli_interrupted(const cli *c, const char *prefix, const char *what);

/* Serialized size of a model in bytes (NaN if it cannot be written). */
double cli_model_bytes(const tml_model *m);
/* Top-1 of a model on `data` (default split test; limit <= 0: all), with a
 * progress bar; exits on error. A bare number: new tables use cli_accuracy()
 * and cli_acc_cells() (interval and paired test) instead. */
double cli_top1(const cli *c, const tml_model *m, const char *data, int64_t limit);
/* Device flash (const data + code estimate) and RAM (static arena) of the C
 * export of an int8 model, from the export planner; NaN for float models. */
void cli_device_bytes(const tml_model *m, double *flash, double *ram);

/* ---- data selection and accuracy statistics (cli/data.c) ----
 * --data D, --val-split F, --eval-data E mean the same in every command:
 * fine-tune / calibrate on D (default split train) minus the held-out
 * fraction F (seeded by --seed), evaluate on E, else on the held-out part,
 * else on D's default split test. Classes are matched to the model by name. */
typedef struct cli_data {
    const char *spec;      /* --data */
    const char *eval_spec; /* --eval-data */
    double val_split;      /* --val-split, 0 = none */
} cli_data;
/* Matches --data/-d, --eval-data and --val-split. */
int cli_data_option(cli *c, cli_data *d);
int cli_has_eval_data(const cli_data *d);
/* m (may be NULL) is the model the data must fit. */
tml_dataset *cli_open_train_data(const cli *c, const cli_data *d, const tml_model *m);
tml_dataset *cli_open_eval_data(const cli *c, const cli_data *d, const tml_model *m);
/* What the evaluation ran on, for a table note; with trained set, warns (and
 * says) when those are the samples fine-tuning used. */
void cli_eval_data_note(const cli *c, const cli_data *d, int trained, char *buf, size_t cap);

/* An accuracy with what its statistics need: per-sample outcomes. */
typedef struct cli_acc {
    double top1;
    int64_t n, k;     /* samples, correct */
    uint8_t *correct; /* (n) */
} cli_acc;
/* Evaluates m on the evaluation data of d (progress bar; exits on error). */
void cli_accuracy(const cli *c, const tml_model *m, const cli_data *d, int64_t limit, cli_acc *out);
void cli_acc_free(cli_acc *a);
/* McNemar p-value of a against base (same samples), NaN when not paired. */
double cli_acc_p(const cli_acc *base, const cli_acc *a);
/* Four cells from column col: top1%, drop against base (points), the 95%
 * interval of top1 "lo-hi", McNemar p. base NULL or == a: drop 0, no p. */
void cli_acc_cells(tml_table *t, int col, const cli_acc *a, const cli_acc *base);
/* The table notes that explain those cells (and flag drops inside the
 * noise); a drop of 5 points or more (p < 0.01) is also warned about. */
void cli_acc_note(const cli *c, tml_table *t, const cli_acc *base, const cli_acc *const *others, int n_others);

/* Memory-schedule options shared by schedule, info, eval and export
 * (cmd_schedule.c): --max-recompute P, --ram-limit BYTES, --no-schedule. */
struct tml_schedule;
struct tml_sched_opts;
typedef struct cli_sched {
    double max_recompute; /* percent; < 0: not given */
    int64_t ram_limit;    /* 0: not given */
    int none;             /* --no-schedule */
} cli_sched;
void cli_sched_init(cli_sched *s);
int cli_sched_flag(cli *c, cli_sched *s);
/* The options in force for model m: the command line's, else those stored in
 * the model, else the defaults; *from names which. */
void cli_sched_opts(const cli *c, const cli_sched *s, const tml_model *m, struct tml_sched_opts *o, const char **from);
void cli_sched_describe(const struct tml_sched_opts *o, char *buf, size_t cap);
/* The schedule the C export runs (with export options eo, NULL = defaults):
 * returns 1, or 0 when the export refuses the model (then the schedule of
 * the activations alone, tml_last_error() says why). */
struct tml_export_opts;
int cli_sched_compute(const cli *c, const tml_model *m, const struct tml_sched_opts *o, const struct tml_export_opts *eo,
                      struct tml_schedule *s);
/* Per segment: kind, peak RAM beside the tensor-by-tensor bound, MACs and extra MACs. */
tml_table *cli_sched_table(const tml_model *m, const struct tml_schedule *s, const char *from, int exported);

/* Subcommands. */
int cmd_create(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_qat(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_sensitivity(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_fit(int argc, char **argv);

#endif
