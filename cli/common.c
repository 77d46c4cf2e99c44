/*
 * common.c - option parsing, errors, model/dataset I/O and progress for every
 * subcommand.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_train.h"

volatile int cli_cancel_flag = 0;

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_sigint(int sig)
{
    (void)sig;
    if (cli_cancel_flag) _exit(130); /* second Ctrl-C: stop now */
    cli_cancel_flag = 1;
}

void cli_install_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- messages ------------------------------------------------------------------- */

static void vmsg(const cli *c, const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "tinyml%s%s: %s", c && c->cmd ? " " : "", c && c->cmd ? c->cmd : "", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_usage_error(const cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(c, "error: ", fmt, ap);
    va_end(ap);
    if (c && c->cmd) fprintf(stderr, "Try 'tinyml %s --help' for the options and examples.\n", c->cmd);
    exit(EXIT_USAGE);
}

void cli_fail(const cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(c, "error: ", fmt, ap);
    va_end(ap);
    exit(1);
}

void cli_fail_status(const cli *c, tml_status st)
{
    const char *msg = tml_last_error();
    fprintf(stderr, "tinyml%s%s: error: %s\n", c && c->cmd ? " " : "", c && c->cmd ? c->cmd : "",
            msg && *msg ? msg : tml_status_name(st));
    if (st == TML_ERR_INTERRUPTED) exit(130);
    exit(st == TML_ERR_INVALID ? EXIT_USAGE : 1);
}

void cli_log(const cli *c, const char *fmt, ...)
{
    if (c && c->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vmsg(c, "", fmt, ap);
    va_end(ap);
}

void cli_warn(const cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(c, "warning: ", fmt, ap);
    va_end(ap);
}

/* ---- parsing ---------------------------------------------------------------------- */

int cli_parse_double(const char *s, double *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int cli_parse_long(const char *s, long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

void cli_init(cli *c, const char *cmd, const char *help, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    c->help = help;
    c->argc = argc;
    c->argv = argv;
    c->i = 0; /* argv[0] is the command name */
    c->fmt = TML_FMT_TABLE;
    c->seed = 1;
}

/* Matches the current argument against --name / -s; sets c->val for inline
 * values. Returns 1 on a match. */
static int match(cli *c, const char *name, char short_name)
{
    if (c->matched || c->opts_done) return 0;
    const char *a = c->arg;
    c->val = NULL;
    if (a[0] == '-' && a[1] == '-' && name) {
        size_t l = strlen(name);
        if (strncmp(a + 2, name, l) == 0 && (a[2 + l] == '\0' || a[2 + l] == '=')) {
            if (a[2 + l] == '=') c->val = a + 3 + l;
            return 1;
        }
        return 0;
    }
    if (short_name && a[0] == '-' && a[1] == short_name) {
        if (a[2]) c->val = a + 2;
        return 1;
    }
    return 0;
}

static const char *take_value(cli *c, const char *name)
{
    if (c->val) return c->val;
    if (c->i + 1 >= c->argc) cli_usage_error(c, "option --%s needs a value", name);
    c->i++;
    return c->argv[c->i];
}

int cli_flag(cli *c, const char *name, char short_name)
{
    if (!match(c, name, short_name)) return 0;
    if (c->val) cli_usage_error(c, "option --%s takes no value", name);
    c->matched = 1;
    return 1;
}

int cli_str(cli *c, const char *name, char short_name, const char **out)
{
    if (!match(c, name, short_name)) return 0;
    *out = take_value(c, name);
    c->matched = 1;
    return 1;
}

int cli_i64(cli *c, const char *name, char short_name, int64_t lo, int64_t hi, int64_t *out)
{
    if (!match(c, name, short_name)) return 0;
    const char *v = take_value(c, name);
    long x;
    if (cli_parse_long(v, &x)) cli_usage_error(c, "--%s expects an integer, got '%s'", name, v);
    if (x < lo || x > hi) cli_usage_error(c, "--%s must be between %lld and %lld (got %ld)", name, (long long)lo, (long long)hi, x);
    *out = x;
    c->matched = 1;
    return 1;
}

int cli_int(cli *c, const char *name, char short_name, long lo, long hi, int *out)
{
    int64_t x;
    if (!cli_i64(c, name, short_name, lo, hi, &x)) return 0;
    *out = (int)x; /* callers' bounds are within int */
    return 1;
}

int cli_double(cli *c, const char *name, char short_name, double lo, double hi, double *out)
{
    if (!match(c, name, short_name)) return 0;
    const char *v = take_value(c, name);
    double x;
    if (cli_parse_double(v, &x)) cli_usage_error(c, "--%s expects a number, got '%s'", name, v);
    if (x < lo || x > hi) cli_usage_error(c, "--%s must be between %g and %g (got %g)", name, lo, hi, x);
    *out = x;
    c->matched = 1;
    return 1;
}

int cli_weight_avg_option(cli *c, cli_wavg *w)
{
    const char *v;
    if (cli_double(c, "weight-avg-from", 0, 0, 0.999999, &w->from)) return 1;
    if (!cli_str(c, "weight-avg", 0, &v)) return 0;
    if (strcmp(v, "none") == 0) {
        w->kind = TML_AVG_NONE;
    } else if (strcmp(v, "mean") == 0) {
        w->kind = TML_AVG_MEAN;
    } else if (strncmp(v, "ema", 3) == 0 && (v[3] == '\0' || v[3] == ':')) {
        w->kind = TML_AVG_EMA;
        w->decay = 0.999;
        if (v[3] == ':' && (cli_parse_double(v + 4, &w->decay) || !(w->decay > 0 && w->decay < 1)))
            cli_usage_error(c, "--weight-avg ema:D needs a decay D in (0, 1), got '%s'", v + 4);
    } else {
        cli_usage_error(c, "--weight-avg must be ema, ema:DECAY, mean or none (got '%s')", v);
    }
    return 1;
}

void cli_weight_avg_check(cli *c, cli_wavg *w)
{
    if (w->from >= 0 && !w->kind) cli_usage_error(c, "--weight-avg-from needs --weight-avg ema or mean");
    if (w->from < 0) w->from = 0.75;
}

int cli_positional(cli *c, const char **out, int max)
{
    if (c->matched) return 0;
    const char *a = c->arg;
    if (!c->opts_done && a[0] == '-' && a[1] != '\0') return 0;
    for (int k = 0; k < max; k++) {
        if (!out[k]) {
            out[k] = a;
            c->matched = 1;
            return 1;
        }
    }
    cli_usage_error(c, "unexpected argument '%s'", a);
}

void cli_unknown(cli *c)
{
    if (c->matched) return;
    cli_usage_error(c, "unknown option '%s'", c->arg);
}

int cli_next(cli *c)
{
    for (;;) {
        c->i++;
        if (c->i >= c->argc) return 0;
        c->arg = c->argv[c->i];
        c->matched = 0;
        c->val = NULL;
        if (!c->opts_done && strcmp(c->arg, "--") == 0) {
            c->opts_done = 1;
            continue;
        }
        if (!c->opts_done && (strcmp(c->arg, "--help") == 0 || strcmp(c->arg, "-h") == 0)) {
            cli_write_stdout(c, c->help, strlen(c->help));
            cli_exit_success(c);
        }
        const char *f;
        int64_t seed;
        if (cli_flag(c, "quiet", 'q')) {
            c->quiet = 1;
            continue;
        }
        if (cli_str(c, "format", 0, &f)) {
            if (tml_fmt_parse(f, &c->fmt)) cli_usage_error(c, "%s", tml_last_error());
            continue;
        }
        if (cli_i64(c, "seed", 0, 0, INT64_MAX, &seed)) {
            c->seed = (uint64_t)seed;
            c->seed_set = 1;
            continue;
        }
        return 1;
    }
}

/* ---- models and datasets ------------------------------------------------------------ */

tml_model *cli_load_model(const cli *c, const char *path)
{
    int from_stdin = !path || strcmp(path, "-") == 0;
    if (from_stdin && isatty(STDIN_FILENO))
        cli_usage_error(c, "no model given: pass MODEL.tmf, or pipe a model into stdin");
    tml_model *m = NULL;
    tml_status st = tml_model_load(from_stdin ? "-" : path, &m);
    if (st) cli_fail_status(c, st); /* the reader's message names the file */
    return m;
}

int cli_model_to_stdout(const char *out) { return !out || strcmp(out, "-") == 0; }

void cli_save_model(const cli *c, const tml_model *m, const char *out)
{
    if (cli_model_to_stdout(out) && isatty(STDOUT_FILENO))
        cli_usage_error(c, "refusing to write a binary model to a terminal: use -o FILE or a pipe");
    tml_status st = tml_model_save(m, cli_model_to_stdout(out) ? "-" : out, NULL);
    if (st) cli_fail_status(c, st);
}

void cli_check_output(const cli *c, const char *path)
{
    if (!path) return;
    tml_status st = tml_check_output_file(path);
    if (st) cli_fail_status(c, st);
}

void cli_check_model_output(const cli *c, const char *out)
{
    if (cli_model_to_stdout(out)) {
        if (isatty(STDOUT_FILENO))
            cli_usage_error(c, "refusing to write a binary model to a terminal: use -o FILE or a pipe");
        return;
    }
    cli_check_output(c, out);
}

tml_dataset *cli_open_dataset(const cli *c, const char *spec, const char *default_split)
{
    if (!spec) cli_usage_error(c, "--data is required (e.g. --data fashion-mnist)");
    tml_dataset *ds = NULL;
    tml_status st = tml_dataset_open(spec, default_split, &ds);
    if (st) cli_fail_status(c, st);
    return ds;
}

/* ---- output on stdout ------------------------------------------------------------------
 * Every write to stdout goes through cli_write_stdout and main() checks the
 * final flush and close (cli_close_stdout), so a full disk, a closed pipe or a
 * closed stdout is an error (exit 1), never a silent exit 0. Writes to stderr
 * are diagnostics and not checked (there is nowhere left to report to). */

static void stdout_failed(const cli *c, int e)
{
    char eb[128];
    if (strerror_r(e, eb, sizeof eb) != 0) snprintf(eb, sizeof eb, "error %d", e);
    fprintf(stderr, "tinyml%s%s: error: cannot write to standard output: %s\n", c && c->cmd ? " " : "",
            c && c->cmd ? c->cmd : "", eb);
    exit(1);
}

void cli_write_stdout(const cli *c, const void *buf, size_t len)
{
    errno = 0;
    if (len && fwrite(buf, 1, len, stdout) != len) stdout_failed(c, errno ? errno : EIO);
    if (ferror(stdout)) stdout_failed(c, errno ? errno : EIO);
}

void cli_printf(const cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    int r = vfprintf(stdout, fmt, ap);
    va_end(ap);
    if (r < 0 || ferror(stdout)) stdout_failed(c, errno ? errno : EIO);
}

int cli_close_stdout(const cli *c)
{
    errno = 0;
    int bad = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    /* EBADF on a stdout that was never open (>&-) is a failure too: the
     * command's output went nowhere */
    if (bad) stdout_failed(c, e ? e : EIO);
    return 0;
}

_Noreturn void cli_exit_success(const cli *c)
{
    cli_close_stdout(c);
    exit(0);
}

void cli_protect_std_fds(void)
{
    /* A closed 0, 1 or 2 would be handed to the next open() (a model's
     * temporary file would then receive the report). Park /dev/null there,
     * read-only, so that writes to a closed stdout still fail (EBADF). */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        int n = open("/dev/null", O_RDONLY);
        if (n >= 0 && n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
}

void cli_print_tables(const cli *c, FILE *f, tml_table *const *tables, int n)
{
    char *txt = tml_tables_render(tables, n, c->fmt);
    if (!txt) cli_fail(c, "out of memory rendering the report");
    if (f == stdout) {
        cli_write_stdout(c, txt, strlen(txt));
        if (fflush(stdout) != 0) stdout_failed(c, errno ? errno : EIO);
    } else {
        fputs(txt, f);
        fflush(f);
    }
    free(txt);
}

static int parse_floats(const char *s, float *out, int max)
{
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        double v;
        if (n >= max || cli_parse_double(tok, &v)) return -1;
        out[n++] = (float)v;
    }
    return n;
}

void cli_set_mean_std(const cli *c, tml_model *m, const char *mean, const char *stdv)
{
    if (!mean && !stdv) return;
    const tml_tensor *in = &m->tensors[m->input];
    const int in_c = in->ndim == 3 ? in->dims[2] : 1;
    float mv[TML_MAX_CHANNELS_PRE] = {0}, sv[TML_MAX_CHANNELS_PRE] = {1, 1, 1, 1};
    int nm = mean ? parse_floats(mean, mv, TML_MAX_CHANNELS_PRE) : 1;
    int ns = stdv ? parse_floats(stdv, sv, TML_MAX_CHANNELS_PRE) : 1;
    if (nm < 0 || ns < 0)
        cli_usage_error(c, "--mean/--std expect comma-separated numbers (up to %d)",
                        TML_MAX_CHANNELS_PRE);
    if (in_c > TML_MAX_CHANNELS_PRE)
        cli_usage_error(c, "--mean/--std support up to %d input channels (the model has %d)",
                        TML_MAX_CHANNELS_PRE, in_c);
    if ((nm != 1 && nm != in_c) || (ns != 1 && ns != in_c))
        cli_usage_error(c, in_c == 1 ? "--mean/--std need 1 value (the input has 1 channel)"
                                     : "--mean/--std need 1 or %d values (one per input channel)", in_c);
    if (nm == 1)
        for (int i = 1; i < in_c; i++) mv[i] = mv[0];
    if (ns == 1)
        for (int i = 1; i < in_c; i++) sv[i] = sv[0];
    for (int i = 0; i < in_c; i++)
        if (!(sv[i] > 0)) cli_usage_error(c, "--std values must be > 0");
    m->meta.pre.n_ch = in_c;
    memcpy(m->meta.pre.mean, mv, sizeof mv);
    memcpy(m->meta.pre.std, sv, sizeof sv);
}

void cli_print_pass_report(const cli *c, const char *out, tml_table *const *tables, int n)
{
    const int to_stdout = cli_model_to_stdout(out);
    if (!c->quiet || !to_stdout) cli_print_tables(c, to_stdout ? stderr : stdout, tables, n);
}

void cli_history_eval(cJSON *entry, const char *data, double top1_before, double top1_after)
{
    cJSON_AddStringToObject(entry, "eval_data", data);
    cJSON_AddNumberToObject(entry, "top1_before", top1_before);
    cJSON_AddNumberToObject(entry, "top1_after", top1_after);
}

/* SOURCE_DATE_EPOCH as a time, or -1 when unset / invalid. */
static long pinned_time(void)
{
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    long v;
    return sde && cli_parse_long(sde, &v) == 0 && v >= 0 ? v : -1;
}

void cli_history_seconds(cJSON *entry, const char *key, double seconds)
{
    if (pinned_time() < 0) cJSON_AddNumberToObject(entry, key, seconds);
}

void cli_add_history(const cli *c, tml_model *m, cJSON *entry)
{
    cJSON *e = cJSON_CreateObject();
    char when[32];
    /* SOURCE_DATE_EPOCH (reproducible-builds.org) pins the time, so the same
     * command with the same seed writes the same bytes */
    time_t now = time(NULL);
    if (pinned_time() >= 0) now = (time_t)pinned_time();
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    cJSON_AddStringToObject(e, "pass", c->cmd);
    cJSON_AddStringToObject(e, "time", when);
    cJSON_AddStringToObject(e, "tinyml", TML_VERSION_STRING);
    if (entry) {
        cJSON *it = entry->child;
        while (it) {
            cJSON *next = it->next;
            cJSON_DetachItemViaPointer(entry, it);
            cJSON_AddItemToObject(e, it->string, it);
            it = next;
        }
        cJSON_Delete(entry);
    }
    char *txt = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    if (!txt) cli_fail(c, "out of memory");
    tml_status st = tml_model_add_history(m, txt);
    cJSON_free(txt);
    if (st) cli_fail_status(c, st);
}

/* ---- checkpoints ------------------------------------------------------------------------ */

const char *cli_checkpoint_prefix(const char *out, const char *prefix, int none, char *buf, size_t cap)
{
    if (none) return NULL;
    if (prefix) return prefix;
    if (cli_model_to_stdout(out)) return NULL;
    snprintf(buf, cap, "%s", out);
    size_t l = strlen(buf);
    if (l > 4 && strcmp(buf + l - 4, ".tmf") == 0) buf[l - 4] = '\0';
    return buf;
}

void cli_check_checkpoints(const cli *c, const char *prefix, int best)
{
    if (!prefix) return;
    char ck[4200];
    snprintf(ck, sizeof ck, "%s.last.tmf", prefix);
    cli_check_output(c, ck);
    if (best) {
        snprintf(ck, sizeof ck, "%s.best.tmf", prefix);
        cli_check_output(c, ck);
    }
}

tml_status cli_write_checkpoint(const cli *c, const tml_model *m, const char *prefix, const char *what)
{
    char path[4200];
    snprintf(path, sizeof path, "%s.last.tmf", prefix);
    tml_model *ck = tml_model_clone(m);
    if (!ck) return TML_ERR_NOMEM;
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "checkpoint", what);
    cli_add_history(c, ck, h);
    tml_status st = tml_model_save(ck, path, NULL);
    tml_model_free(ck);
    return st;
}

_Noreturn void cli_interrupted(const cli *c, const char *prefix, const char *what)
{
    if (prefix && what)
        cli_warn(c, "interrupted; the last good checkpoint is %s.last.tmf (%s)", prefix, what);
    else
        cli_warn(c, "interrupted before a checkpoint was written; nothing was written");
    exit(130);
}

/* ---- progress -------------------------------------------------------------------------- */

void cli_progress_start(cli_progress *p, const cli *c, const char *label)
{
    memset(p, 0, sizeof *p);
    p->c = c;
    p->label = label;
    p->t0 = cli_now();
    p->active = !c->quiet && isatty(STDERR_FILENO);
}

void cli_progress_cb(void *user, int64_t done, int64_t total)
{
    cli_progress *p = user;
    if (!p->active) return;
    double t = cli_now();
    if (done < total && t - p->last < 0.1) return; /* redraw at most 10x per second */
    p->last = t;
    double frac = total > 0 ? (double)done / (double)total : 0.0;
    int width = 30, fill = (int)(frac * width + 0.5);
    double el = t - p->t0, rate = el > 0 ? (double)done / el : 0.0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0.0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%s [%s] %lld/%lld  %.0f/s  ETA %.0fs ", p->label, bar, (long long)done, (long long)total, rate, eta);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (p->active) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

/* ---- measurements shared by the pass commands --------------------------------------------- */

double cli_top1(const cli *c, const tml_model *m, const char *data, int64_t limit)
{
    tml_dataset *ds = cli_open_dataset(c, data, "test");
    cli_progress p;
    cli_progress_start(&p, c, "eval");
    tml_eval_opts o = {.limit = limit, .progress = cli_progress_cb, .progress_user = &p, .cancel = &cli_cancel_flag};
    tml_eval_result r;
    tml_status st = tml_evaluate(m, ds, &o, &r);
    cli_progress_end(&p);
    if (st) cli_fail_status(c, st);
    double top1 = r.top1;
    tml_eval_result_free(&r);
    tml_dataset_free(ds);
    return top1;
}

double cli_model_bytes(const tml_model *m)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (tml_model_write_mem(m, NULL, &buf, &len)) return NAN;
    free(buf);
    return (double)len;
}

void cli_device_bytes(const tml_model *m, double *flash, double *ram)
{
    *flash = *ram = NAN;
    if (!tml_model_is_quantized(m)) return;
    tml_export_opts o;
    tml_export_opts_default(&o);
    tml_export_result r;
    if (tml_export_c(m, &o, &r) != TML_OK) return;
    *flash = (double)(r.const_bytes + r.code_bytes);
    *ram = (double)r.arena_bytes;
    tml_export_result_free(&r);
}

static int parse_form(const char *s, tml_export_enc *out)
{
    static const tml_export_enc forms[] = {TML_EXPORT_DENSE, TML_EXPORT_SPARSE, TML_EXPORT_CLUSTER,
                                           TML_EXPORT_SPARSE_CLUSTER, TML_EXPORT_PACKED};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        if (strcmp(s, tml_export_enc_name(forms[i])) == 0) {
            *out = forms[i];
            return 0;
        }
    return -1;
}

static int parse_optimize(const char *s, tml_export_optimize *out)
{
    static const tml_export_optimize goals[] = {TML_EXPORT_OPT_BALANCED, TML_EXPORT_OPT_SPEED, TML_EXPORT_OPT_SIZE};
    for (size_t i = 0; i < sizeof goals / sizeof goals[0]; i++)
        if (strcmp(s, tml_export_optimize_name(goals[i])) == 0) {
            *out = goals[i];
            return 0;
        }
    return -1;
}

int cli_export_flag(cli *c, cli_export_flags *f)
{
    if (cli_flag(c, "dense", 0)) {
        f->dense = 1;
        return 1;
    }
    if (cli_flag(c, "portable", 0)) {
        f->portable = 1;
        return 1;
    }
    return cli_str(c, "form", 0, &f->form) || cli_str(c, "optimize", 0, &f->optimize);
}

int cli_export_flags_given(const cli_export_flags *f) { return f->dense || f->portable || f->form || f->optimize; }

void cli_export_flags_apply(const cli *c, const cli_export_flags *f, tml_export_opts *o)
{
    if ((f->optimize != NULL) + (f->form != NULL) + f->dense > 1)
        cli_usage_error(c, "--optimize, --form and --dense exclude each other (--optimize chooses the forms)");
    o->weights = f->dense ? TML_EXPORT_DENSE : TML_EXPORT_AUTO;
    if (f->form && parse_form(f->form, &o->weights))
        cli_usage_error(c, "--form: '%s' is not one of dense, sparse, cluster, sparse+cluster, packed", f->form);
    if (f->optimize && parse_optimize(f->optimize, &o->optimize))
        cli_usage_error(c, "--optimize: '%s' is not one of balanced, speed, size", f->optimize);
    o->kernels = f->portable ? TML_EXPORT_KERNELS_PORTABLE : TML_EXPORT_KERNELS_AUTO;
}

const char *cli_export_stored(const cli *c, const cli_export_flags *f, const tml_model *m, tml_export_opts *o)
{
    if (f->optimize || f->form || f->dense) return "command line";
    int found = 0;
    tml_export_optimize g;
    tml_status st = tml_export_optimize_from_model(m, &g, &found);
    if (st) cli_fail_status(c, st);
    if (!found) return "default";
    o->optimize = g;
    return "stored in the model";
}

uint8_t *cli_read_all(const cli *c, const char *path, size_t max, size_t *len)
{
    const int use_stdin = strcmp(path, "-") == 0;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f) cli_fail(c, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    if (!b) cli_fail(c, "out of memory");
    for (;;) {
        if (n == cap) {
            if (cap >= max) cli_fail(c, "'%s' is larger than %zu MiB", path, max >> 20);
            uint8_t *p = realloc(b, cap * 2);
            if (!p) cli_fail(c, "out of memory reading '%s'", path);
            b = p;
            cap *= 2;
        }
        const size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) cli_fail(c, "cannot read '%s'", path);
    if (!use_stdin) fclose(f);
    *len = n;
    return b;
}
