/*
 * cmd_fit.c - `tinyml fit`: give it a device budget (flash, RAM, latency),
 * get the most accurate compressed INT8 model that fits, verified on the
 * emulated core; the Pareto front as a table and a PNG. The search is
 * lib/passes/fit.c; this file parses, keeps the resumable state directory,
 * verifies the answer with tml_device_run and prints.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_device.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_fit.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_plot.h"
#include "tinyml/tml_schedule.h"

static const char help[] =
    "Usage: tinyml fit MODEL --data D --flash BYTES --ram BYTES [options] -o OUT\n"
    "\n"
    "Finds the most accurate compressed INT8 version of a float model that fits a\n"
    "device: a greedy descent over per-layer filter removal, sparsity, weight\n"
    "sharing bits, packed int4 / int2 weights and the weight forms (the smallest:\n"
    "also the least code, compiled -Os), each plan measured exactly (flash and RAM\n"
    "from the C exporter, the fitting ones also compiled; validation loss without\n"
    "fine-tuning, or, once that is 3 points down, from a short distilled fine-tune\n"
    "of the plan so far; a last move that would leave over 3% of the flash unused\n"
    "is tried again with finer moves), also from starts with the biggest layers'\n"
    "filters partly removed, picks candidate plans; a short distilled fine-tune of\n"
    "each ranks them, the best are fine-tuned in parallel (AGP pruning distilled\n"
    "from the original, centroid fine-tuning, INT8 or QAT) and the best that fits\n"
    "is verified on the emulated core: exported, run, bit-exact with the int8\n"
    "engine, within budget.\n"
    "Validation is a seeded held-out part of the training split: its first half\n"
    "ranks the plans, its second half (pick_top1%) picks the answer; the test\n"
    "split is only reported. docs/fit.md has a worked example (LeNet-5 into 32K\n"
    "flash and 8K RAM) and the search's cost.\n"
    "\n"
    "Budget:\n"
    "  --flash BYTES          flash for the model (const data + code); 32K, 32KB, 0.5M accepted\n"
    "  --ram BYTES            RAM for the model: its static arena, run with the memory\n"
    "                         schedule (tinyml schedule) with the fewest extra MACs that fits\n"
    "  --no-schedule          layer by layer only (the tensor-by-tensor arena)\n"
    "  --latency MS           time per inference at --mhz (instructions counted on the\n"
    "                         emulator, one per cycle: a stand-in for cycles, not a timing)\n"
    "  --mhz F                core clock for --latency (default 80)\n"
    "  --target CORE          cortex-m4 (default; what the verification runs on)\n"
    "  --max-drop P           also require at most P points of top-1 lost vs the INT8 baseline\n"
    "Search:\n"
    "  -d, --data SPEC        training data (split train; test split for the report)\n"
    "  --val-split F          hold out a seeded fraction F of --data for the report (the test\n"
    "                         column): for a CSV file or PNG folder, which has no test split\n"
    "  --eval-data E          report on E instead (default split test)\n"
    "  --epochs N             fine-tuning epochs per candidate (filters + AGP; default 4)\n"
    "  --cluster-epochs N     centroid fine-tuning epochs (default 1)\n"
    "  --qat-epochs N         quantization-aware training epochs as the last step of\n"
    "                         each candidate, instead of post-training INT8 (default 0)\n"
    "  --candidates N         candidates fully fine-tuned: finalists + front points (default 6)\n"
    "  --finalists N          fitting plans fully fine-tuned, the best screened (default 2)\n"
    "  --screen-samples N     training samples of the short distilled fine-tune (one AGP\n"
    "                         epoch) that ranks the fitting plans; 0: no screening, every\n"
    "                         fitting plan is fine-tuned (default 8000)\n"
    "  --jobs N               candidates fine-tuned at once (default 2)\n"
    "  --time-budget MIN      start no optional candidate expected to end later\n"
    "  --train-limit N        use only the first N training samples (quick trials)\n"
    "  --quick-samples N      validation samples of the descent's quick measure (default 1000)\n"
    "  --no-distill           fine-tune without distillation from MODEL\n"
    "  --lr LR                learning rate of the candidates' fine-tuning (Adam; default 1e-3)\n"
    "  --lr-schedule S        cosine (default) or constant (e.g. with --weight-avg mean: SWA)\n"
    "  --weight-avg ema[:D]|mean|none  the fine-tuned weights are the average over the last\n"
    "                         part of the filter removal + AGP fine-tuning (default none);\n"
    "                         pruned zeros stay zero\n"
    "  --weight-avg-from F    averaging starts after the fraction F of the steps (default\n"
    "                         0.667: where AGP reaches the final sparsity)\n"
    "  --state DIR            resumable state: the search and the fine-tuned candidates (default\n"
    "                         OUT.fit); a run with the same model, data and options resumes it\n"
    "  --seed N               every random choice (default 1)\n"
    "Output:\n"
    "  -o, --output FILE      the fitted INT8 model (required)\n"
    "  --c DIR                also write its verified C source (model.c, model.h)\n"
    "  --plot FILE.png        Pareto plot: top-1 vs flash of the candidates\n"
    "  --no-verify            skip the emulator run (no cross compiler / QEMU)\n"
    "  --format F; -q, --quiet\n"
    "\n"
    "Exit status: 0 a model fits (written to OUT); 1 nothing fits (the closest\n"
    "candidate and its miss are printed, nothing is written) or an error.\n"
    "\n"
    "Examples:\n"
    "  tinyml fit lenet5.tmf --data fashion-mnist --flash 128K --ram 16K --epochs 1 --candidates 2 --train-limit 12000 \\\n    --time-budget 1 -o fit.tmf\n"
    "  tinyml fit lenet5.tmf --data fashion-mnist --flash 160K --ram 16K --latency 100 --mhz 80 --epochs 1 --candidates 1 \\\n"
    "    --train-limit 12000 --time-budget 1 --plot front.png -o fit.tmf\n";

/* "32768", "32K", "32KB", "32KiB", "0.5M": bytes (K = 1024). */
static int parse_bytes(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v > 0)) return -1;
    double mul = 1;
    if (*end == 'k' || *end == 'K') {
        mul = 1024;
        end++;
    } else if (*end == 'm' || *end == 'M') {
        mul = 1024.0 * 1024.0;
        end++;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end || v * mul > 1e12) return -1;
    *out = (int64_t)llround(v * mul);
    return *out > 0 ? 0 : -1;
}

typedef struct fit_cli {
    cli *c;
    const char *state;
    uint64_t key; /* hash of what the fine-tuned models depend on besides the plan */
    uint64_t skey; /* hash of what the search depends on */
    double t0;
} fit_cli;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void cand_path(const fit_cli *f, const tml_fit_cand *c, char *buf, size_t n)
{
    char *j = tml_plan_to_json(&c->plan);
    uint64_t h = fnv(f->key, j ? j : "", j ? strlen(j) : 0);
    free(j);
    snprintf(buf, n, "%s/cand-%016llx.tmf", f->state, (unsigned long long)h);
}

static tml_status lookup(void *user, const tml_fit_cand *c, tml_model **out)
{
    fit_cli *f = user;
    char p[1200];
    cand_path(f, c, p, sizeof p);
    struct stat sb;
    *out = NULL;
    if (stat(p, &sb) != 0) return TML_OK;
    if (tml_model_load(p, out)) {
        cli_warn(f->c, "state %s is unreadable (%s): fine-tuning candidate %d again", p, tml_last_error(), c->id);
        *out = NULL;
    }
    return TML_OK;
}

static tml_status store(void *user, const tml_fit_cand *c)
{
    fit_cli *f = user;
    char p[1200];
    cand_path(f, c, p, sizeof p);
    return tml_model_save(c->model, p, NULL);
}

static void search_path(const fit_cli *f, char *buf, size_t n)
{
    snprintf(buf, n, "%s/search-%016llx.json", f->state, (unsigned long long)f->skey);
}

/* The search of an earlier run with the same model, data and search options (the
 * library checks it again); unreadable: a warning, and the search runs. */
static tml_status search_lookup(void *user, char **text)
{
    fit_cli *f = user;
    char p[1200];
    search_path(f, p, sizeof p);
    *text = NULL;
    FILE *fp = fopen(p, "rb");
    if (!fp) return TML_OK;
    struct stat sb;
    char *buf = NULL;
    if (fstat(fileno(fp), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 && sb.st_size < (64 << 20) &&
        (buf = malloc((size_t)sb.st_size + 1)) != NULL && fread(buf, 1, (size_t)sb.st_size, fp) == (size_t)sb.st_size) {
        buf[sb.st_size] = 0;
        *text = buf;
    } else {
        free(buf);
        cli_warn(f->c, "state %s is unreadable: searching again", p);
    }
    fclose(fp);
    return TML_OK;
}

static tml_status search_store(void *user, const char *text)
{
    fit_cli *f = user;
    char p[1200];
    search_path(f, p, sizeof p);
    return tml_write_file_atomic(p, text, strlen(text));
}

static void on_progress(void *user, const char *phase, int done, int total, const char *msg)
{
    fit_cli *f = user;
    (void)done;
    (void)total;
    cli_log(f->c, "[%5.0fs] %s: %s", cli_now() - f->t0, phase, msg);
}

/* The order of the answer (tml_fit's r.best first): the top-1 on the validation
 * half that picks, then on the whole part, then less flash. */
static int pick_better(const tml_fit_cost *a, const tml_fit_cost *b)
{
    if (a->pick_acc != b->pick_acc) return a->pick_acc > b->pick_acc;
    if (a->val_acc != b->val_acc) return a->val_acc > b->val_acc;
    return a->flash < b->flash;
}

static double latency_ms(double instr, double mhz)
{
    return instr / (mhz * 1e3);
}

/* Pareto: no other tuned candidate is at least as good on all of accuracy,
 * flash, RAM and instructions and better on one. */
static int on_front(const tml_fit_result *r, int i)
{
    const tml_fit_cost *a = &r->cands[i].final;
    for (int j = 0; j < r->n_cands; j++) {
        if (j == i || !r->cands[j].tuned) continue;
        const tml_fit_cost *b = &r->cands[j].final;
        if (b->val_acc >= a->val_acc && b->flash <= a->flash && b->ram <= a->ram && b->instr <= a->instr &&
            (b->val_acc > a->val_acc || b->flash < a->flash || b->ram < a->ram || b->instr < a->instr))
            return 0;
    }
    return 1;
}

int cmd_fit(int argc, char **argv)
{
    cli c;
    cli_init(&c, "fit", help, argc, argv);
    cli_data dd = {0};
    const char *pos[1] = {NULL}, *out = NULL, *data = NULL, *target = "cortex-m4", *state = NULL, *plot = NULL,
               *cdir = NULL, *flash_s = NULL, *ram_s = NULL;
    double max_drop = -1, tbudget = 0;
    int no_verify = 0, no_schedule = 0;
    int64_t train_limit = 0;
    const char *lr_sched = NULL;
    cli_wavg wavg = CLI_WAVG_INIT;
    int wavg_given = 0;
    tml_fit_opts o;
    tml_fit_opts_default(&o);
    while (cli_next(&c)) {
        if (cli_str(&c, "output", 'o', &out) || cli_data_option(&c, &dd) || cli_str(&c, "target", 0, &target) ||
            cli_str(&c, "state", 0, &state) || cli_str(&c, "plot", 0, &plot) || cli_str(&c, "c", 0, &cdir) ||
            cli_str(&c, "flash", 0, &flash_s) || cli_str(&c, "ram", 0, &ram_s) ||
            cli_str(&c, "lr-schedule", 0, &lr_sched) || cli_double(&c, "lr", 0, 1e-9, 10, &o.lr))
            continue;
        if (cli_weight_avg_option(&c, &wavg)) {
            wavg_given = 1;
            continue;
        }
        if (cli_double(&c, "latency", 0, 1e-6, 1e9, &o.latency_ms) || cli_double(&c, "mhz", 0, 1e-3, 1e6, &o.mhz) ||
            cli_double(&c, "max-drop", 0, 0, 100, &max_drop) || cli_double(&c, "time-budget", 0, 1e-3, 1e6, &tbudget))
            continue;
        if (cli_int(&c, "epochs", 0, 0, 1000, &o.epochs) || cli_int(&c, "cluster-epochs", 0, 0, 1000, &o.cluster_epochs) ||
            cli_int(&c, "qat-epochs", 0, 0, 1000, &o.qat_epochs) ||
            cli_int(&c, "candidates", 0, 1, 64, &o.max_candidates) || cli_int(&c, "jobs", 0, 1, 64, &o.jobs) ||
            cli_int(&c, "finalists", 0, 1, 64, &o.finalists) ||
            cli_i64(&c, "screen-samples", 0, 0, INT64_MAX, &o.screen_samples) ||
            cli_i64(&c, "train-limit", 0, 10, INT64_MAX, &train_limit) ||
            cli_i64(&c, "quick-samples", 0, 10, 1000000, &o.quick_samples))
            continue;
        if (cli_flag(&c, "no-verify", 0)) {
            no_verify = 1;
            continue;
        }
        if (cli_flag(&c, "no-schedule", 0)) {
            no_schedule = 1;
            continue;
        }
        if (cli_flag(&c, "no-distill", 0)) {
            o.distill = 0;
            continue;
        }
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (!pos[0]) cli_usage_error(&c, "give the float MODEL to fit");
    data = dd.spec;
    if (!data) cli_usage_error(&c, "--data is required (training data for fine-tuning, e.g. --data fashion-mnist)");
    if (!flash_s || !ram_s) cli_usage_error(&c, "give the budget: --flash BYTES and --ram BYTES (e.g. --flash 32K --ram 8K)");
    if (parse_bytes(flash_s, &o.flash)) cli_usage_error(&c, "--flash: '%s' is not a size (e.g. 32768, 32K, 0.5M)", flash_s);
    if (parse_bytes(ram_s, &o.ram)) cli_usage_error(&c, "--ram: '%s' is not a size (e.g. 8192, 8K)", ram_s);
    if (!out) cli_usage_error(&c, "-o OUT is required (the fitted model)");
    if (strcmp(out, "-") == 0) cli_usage_error(&c, "-o: fit writes a file (its state directory is OUT.fit), not stdout");
    const tml_device_target *tg = tml_device_target_find(target);
    if (!tg) cli_usage_error(&c, "--target: unknown core '%s' (cortex-m4)", target);
    if (no_verify && cdir) cli_usage_error(&c, "--c writes the verified source: it needs the verification (drop --no-verify)");
    if (lr_sched && strcmp(lr_sched, "cosine") && strcmp(lr_sched, "constant"))
        cli_usage_error(&c, "--lr-schedule must be cosine or constant (got '%s')", lr_sched);
    if (lr_sched) o.lr_constant = strcmp(lr_sched, "constant") == 0;
    if (wavg_given) {
        /* given: the pair as the user says (from defaults to fit's 2/3, not the trainer's 0.75) */
        if (wavg.from >= 0 && !wavg.kind) cli_usage_error(&c, "--weight-avg-from needs --weight-avg ema or mean");
        o.avg = (tml_avg)wavg.kind;
        o.avg_decay = wavg.decay;
        if (wavg.from >= 0) o.avg_from = wavg.from;
    }
    o.max_drop = max_drop < 0 ? -1 : max_drop / 100.0;
    o.time_budget_s = tbudget * 60;
    o.seed = c.seed;
    o.cancel = &cli_cancel_flag;

    tml_device_opts dopt;
    tml_device_opts_default(&dopt);
    dopt.target = target;
    dopt.cancel = &cli_cancel_flag;
    tml_status st;
    if (!no_verify && (st = tml_device_check_tools(&dopt))) {
        cli_warn(&c, "the verification on the emulated core needs its tools; or run with --no-verify");
        cli_fail_status(&c, st);
    }

    tml_model *m = cli_load_model(&c, pos[0]);
    if (tml_model_is_quantized(m)) cli_fail(&c, "%s is an INT8 model: fit starts from the float model", pos[0]);
    /* --data / --val-split / --eval-data as every command (cli/data.c): the
     * test part is never fine-tuned on unless the data has no test split and
     * neither option says which samples to hold out (then a loud warning) */
    tml_dataset *tds = cli_open_train_data(&c, &dd, m);
    tml_samples *train = NULL, *test = NULL;
    if ((st = tml_dataset_load(tds, train_limit, &train))) cli_fail_status(&c, st);
    tml_dataset *eds = cli_open_eval_data(&c, &dd, m);
    if ((st = tml_dataset_load(eds, 0, &test))) cli_fail_status(&c, st);
    char test_note[512];
    cli_eval_data_note(&c, &dd, 1, test_note, sizeof test_note);
    o.train = train;
    o.test = test;

    char state_dir[1024];
    snprintf(state_dir, sizeof state_dir, "%s", state ? state : "");
    if (!state) snprintf(state_dir, sizeof state_dir, "%s.fit", out);
    if (mkdir(state_dir, 0777) != 0 && errno != EEXIST) cli_fail(&c, "cannot create the state directory %s: %s", state_dir, strerror(errno));
    struct stat sb;
    if (stat(state_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) cli_fail(&c, "%s is not a directory", state_dir);
    fit_cli f = {.c = &c, .state = state_dir, .t0 = cli_now()};
    {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (tml_model_write_mem(m, NULL, &buf, &len)) cli_fail_status(&c, TML_ERR_NOMEM);
        uint64_t h = fnv(0xcbf29ce484222325ull, buf, len);
        free(buf);
        char k[4096];
        /* r3: fine-tuning holds the validation part out itself, QAT keeps its last epoch; the
         * learning rate, its schedule and the weight average; the held-out report fraction */
        snprintf(k, sizeof k, "r3|%s|%g|%lld|%d|%d|%d|%llu|%lld|q%d|lr%.9g|c%d|a%d:%.9g:%.9g", data, dd.val_split,
                 (long long)train->n, o.epochs, o.cluster_epochs, o.distill, (unsigned long long)o.seed,
                 (long long)o.val_samples, o.qat_epochs, o.lr, o.lr_constant, (int)o.avg,
                 o.avg == TML_AVG_EMA ? o.avg_decay : 0.0, o.avg ? o.avg_from : 0.0);
        f.key = fnv(h, k, strlen(k));
        /* what the search (descents, compile checks, screening, ranking) depends on, apart
         * from the model: its format (checked again on reading), the data and its options */
        snprintf(k, sizeof k, "s%d|%s|%s|%g|%lld|%llu|%lld|%lld|%lld|%d|%d|%.9g|%lld|%lld|%.9g|%.9g|%s|%d|%d",
                 TML_FIT_SEARCH_FORMAT, TML_VERSION_STRING, data, dd.val_split, (long long)train->n,
                 (unsigned long long)o.seed,
                 (long long)o.val_samples, (long long)o.quick_samples, (long long)o.screen_samples,
                 o.distill, o.cluster_epochs > 0, o.time_budget_s, (long long)o.flash,
                 (long long)o.ram, o.latency_ms, o.mhz, tg->name, no_verify, no_schedule);
        f.skey = fnv(h, k, strlen(k));
    }
    o.exp.prefix = NULL;
    /* every plan runs the memory schedule with the fewest extra MACs that fits
     * the RAM budget (the least RAM when none does): the exporter's arena is
     * then the scheduled one, and the answer carries the options so that
     * `tinyml export --c` runs the same schedule */
    tml_sched_opts sched;
    tml_sched_opts_default(&sched);
    sched.ram_limit = o.ram;
    if (!no_schedule) o.exp.schedule = &sched;
    if (!no_verify) o.device = &dopt;
    o.progress = on_progress;
    o.lookup = lookup;
    o.store = store;
    o.search_lookup = search_lookup;
    o.search_store = search_store;
    o.user = &f;
    cli_log(&c, "fit %s into %lld B flash, %lld B RAM%s on %s; %lld training samples (%lld held out), seed %llu",
            pos[0], (long long)o.flash, (long long)o.ram, o.latency_ms > 0 ? " and a latency budget" : "", tg->name,
            (long long)train->n, (long long)(o.val_samples < train->n / 2 ? o.val_samples : train->n / 2),
            (unsigned long long)o.seed);
    tml_fit_result r;
    st = tml_fit(m, &o, &r);
    if (st) cli_fail_status(&c, st);

    /* verification on the emulated core, best first; a failure moves to the next */
    int chosen = -1, failed_id = -1;
    tml_device_result dr = {0};
    int verified = 0;
    char failed_why[256] = "";
    if (r.best >= 0) {
        int order[64], n = 0;
        for (int i = 0; i < r.n_cands && n < 64; i++)
            if (r.cands[i].fits) order[n++] = i;
        for (int a = 1; a < n; a++)
            for (int b = a; b > 0 && pick_better(&r.cands[order[b]].final, &r.cands[order[b - 1]].final); b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        for (int k = 0; k < n && chosen < 0; k++) {
            tml_fit_cand *cd = &r.cands[order[k]];
            if (no_verify) {
                chosen = order[k];
                break;
            }
            int nv = test->n < 8 ? (int)test->n : 8;
            int64_t in_size = tml_tensor_numel(&cd->model->tensors[cd->model->input]);
            float *x = malloc(sizeof(float) * (size_t)(in_size * nv));
            int64_t idx[8];
            for (int i = 0; i < nv; i++) idx[i] = i;
            if (!x) cli_fail(&c, "out of memory");
            tml_samples_gather(test, idx, nv, x, NULL);
            tml_preproc_apply(&cd->model->meta.pre, in_size * nv, test->c, x);
            dopt.exp = o.exp;
            dopt.opt = "O2";
            if (cd->plan.form_size) { /* the least code: exported and compiled for size */
                dopt.exp.optimize = TML_EXPORT_OPT_SIZE;
                dopt.opt = "Os";
            }
            cli_log(&c, "verifying candidate %d on %s (QEMU %s): export, build, run %d test samples", cd->id, tg->core,
                    tg->machine, nv);
            st = tml_device_run(cd->model, x, nv, &dopt, &dr);
            free(x);
            if (st) cli_fail_status(&c, st);
            int64_t fl = dr.text_bytes + dr.rodata_bytes + dr.data_bytes;
            double lat = latency_ms(dr.instr, o.mhz);
            const char *why = dr.mismatches ? "output differs from the int8 engine"
                              : fl > o.flash ? "compiled flash over budget"
                              : dr.exp.arena_bytes > o.ram ? "arena over budget"
                              : (o.latency_ms > 0 && lat > o.latency_ms) ? "measured latency over budget"
                                                                         : NULL;
            if (why) {
                cli_warn(&c, "candidate %d failed verification: %s (flash %lld B, arena %lld B, %.0f instructions, %lld mismatches)",
                         cd->id, why, (long long)fl, (long long)dr.exp.arena_bytes, dr.instr, (long long)dr.mismatches);
                if (failed_id < 0) {
                    failed_id = cd->id;
                    snprintf(failed_why, sizeof failed_why, "%s (flash %lld B, arena %lld B, %.3f ms)", why, (long long)fl,
                             (long long)dr.exp.arena_bytes, lat);
                }
                cd->fits = 0;
                tml_device_result_free(&dr);
                continue;
            }
            chosen = order[k];
            verified = 1;
        }
    }

    /* the table of candidates */
    static const char *const ch[] = {"candidate", "origin", "flash_B", "ram_B", "latency_ms", "val_top1%",
                                     "test_top1%", "drop_pt", "fits", "pareto", "pick_top1%"};
    tml_table *ct = tml_table_new("candidates", "Candidates (fine-tuned unless marked)", 11, ch);
    tml_table_add_row(ct);
    tml_table_str(ct, 0, "float");
    tml_table_str(ct, 1, "original");
    tml_table_num(ct, 5, 100 * r.float_base.val_acc, "%.2f");
    tml_table_num(ct, 6, 100 * r.float_base.test_acc, "%.2f");
    tml_table_add_row(ct);
    tml_table_str(ct, 0, "int8");
    tml_table_str(ct, 1, "original, quantized");
    tml_table_int(ct, 2, r.int8_base.flash);
    tml_table_int(ct, 3, r.int8_base.ram);
    tml_table_num(ct, 4, latency_ms((double)r.int8_base.instr, o.mhz), "%.2f");
    tml_table_num(ct, 5, 100 * r.int8_base.val_acc, "%.2f");
    tml_table_num(ct, 6, 100 * r.int8_base.test_acc, "%.2f");
    tml_table_num(ct, 7, 0.0, "%.2f");
    tml_table_str(ct, 8, tml_fit_miss(&o, &r.int8_base, NULL) <= 0 ? "yes" : "no");
    for (int i = 0; i < r.n_cands; i++) {
        const tml_fit_cand *cd = &r.cands[i];
        const tml_fit_cost *k = cd->tuned ? &cd->final : cd->screened ? &cd->screen : &cd->quick;
        char id[32];
        snprintf(id, sizeof id, "%d%s%s", cd->id, i == chosen ? " *" : "",
                 cd->tuned ? "" : cd->screened ? " (screened)" : " (not tuned)");
        tml_table_add_row(ct);
        tml_table_str(ct, 0, id);
        tml_table_str(ct, 1, cd->origin);
        tml_table_int(ct, 2, i == chosen && verified ? dr.text_bytes + dr.rodata_bytes + dr.data_bytes : k->flash);
        tml_table_int(ct, 3, k->ram);
        tml_table_num(ct, 4, latency_ms(i == chosen && verified ? dr.instr : (double)k->instr, o.mhz), "%.2f");
        tml_table_num(ct, 5, 100 * k->val_acc, "%.2f");
        tml_table_num(ct, 6, 100 * k->test_acc, "%.2f");
        tml_table_num(ct, 7, 100 * (r.int8_base.test_acc - k->test_acc), "%.2f");
        tml_table_str(ct, 8, cd->tuned ? (cd->fits ? "yes" : "no") : "-");
        tml_table_str(ct, 9, cd->tuned && on_front(&r, i) ? "yes" : "");
        if (cd->tuned) tml_table_num(ct, 10, 100 * cd->final.pick_acc, "%.2f");
    }
    tml_table_note(ct, "flash: const data + code as the C exporter counts them (the chosen one: arm-none-eabi-size of "
                       "the compiled model, text + rodata + data); RAM: the static arena; latency: %s at %.0f MHz, one "
                       "instruction per cycle",
                   verified ? "the chosen one's instructions counted on the emulator, the others the exporter's estimate"
                            : "the exporter's instruction estimate",
                   o.mhz);
    tml_table_note(ct, "validation: the %lld samples fit holds out of the %lld fine-tuning samples with seed %llu (as `tinyml train "
                       "--seed %llu` does by default), test: %s; drop: test points vs the int8 baseline; * = the answer; "
                       "(screened): after the short fine-tune only, top-1 on the first half of validation (which ranks the "
                       "plans); pick: top-1 on its second half, which picks the answer among the fine-tuned ones",
                   (long long)(o.val_samples < train->n / 2 ? o.val_samples : train->n / 2), (long long)train->n,
                   (unsigned long long)o.seed, (unsigned long long)o.seed, test_note);
    int tuned = 0;
    for (int i = 0; i < r.n_cands; i++) tuned += r.cands[i].tuned;
    tml_table_note(ct, "search: %d greedy steps, %lld plans measured, %d candidates fine-tuned (%d epochs + %d + QAT %d), "
                       "%.0f s in all%s%s",
                   r.n_steps, (long long)r.quick_evals, tuned, o.epochs, o.cluster_epochs, o.qat_epochs, cli_now() - f.t0,
                   r.budget_stopped ? "; the time budget skipped or stopped some of it" : "",
                   r.search_resumed ? "; the search (steps and plans as counted then) resumed from the state" : "");

    tml_table *pt = NULL;
    int show = chosen >= 0 ? chosen : r.closest;
    if (show >= 0) {
        static const char *const ph[] = {"layer", "filters_removed%", "sparsity%", "weights"};
        pt = tml_table_new("plan", chosen >= 0 ? "The answer's plan" : "The closest candidate's plan", 4, ph);
        const tml_plan *p = &r.cands[show].plan;
        for (int i = 0; i < p->n_layers; i++) {
            tml_table_add_row(pt);
            tml_table_str(pt, 0, p->layers[i].name);
            tml_table_num(pt, 1, 100 * p->layers[i].filters, "%.1f");
            tml_table_num(pt, 2, 100 * p->layers[i].sparsity, "%.1f");
            if (p->layers[i].bits)
                tml_table_int(pt, 3, p->layers[i].bits);
            else
            {
                char w[16];
                snprintf(w, sizeof w, "int%d", p->layers[i].qbits > 0 ? p->layers[i].qbits : 8);
                tml_table_str(pt, 3, w);
            }
        }
    }
    if (pt && r.cands[show].plan.form_size) tml_table_note(pt, "weight forms: the smallest per layer, the least code (export --optimize size, compiled -Os)");
    tml_table *ts[2] = {ct, pt};
    cli_print_tables(&c, stdout, ts, pt ? 2 : 1);

    if (plot) {
        tml_plot *pl = tml_plot_new(900, 560);
        double xs[66], ys[66], hx[1], hy[1];
        int n = 0;
        for (int i = 0; i < r.n_cands && n < 64; i++)
            if (r.cands[i].tuned) {
                xs[n] = (double)r.cands[i].final.flash;
                ys[n++] = 100 * (isnan(r.cands[i].final.test_acc) ? r.cands[i].final.val_acc : r.cands[i].final.test_acc);
            }
        if (!pl) cli_fail_status(&c, TML_ERR_NOMEM);
        char title[160];
        snprintf(title, sizeof title, "tinyml fit: top-1 vs flash (budget %lld B flash, %lld B RAM)", (long long)o.flash,
                 (long long)o.ram);
        tml_plot_title(pl, title);
        tml_plot_labels(pl, "flash (bytes)", "test top-1 (%)");
        tml_plot_xlog(pl, 1);
        st = tml_plot_series(pl, "candidates", n, xs, ys, 0);
        if (!st && chosen >= 0) {
            hx[0] = (double)r.cands[chosen].final.flash;
            hy[0] = 100 * r.cands[chosen].final.test_acc;
            st = tml_plot_highlight(pl, "answer", 1, hx, hy);
        }
        if (!st && r.int8_base.flash > 0) {
            double bx = (double)r.int8_base.flash, by = 100 * r.int8_base.test_acc;
            st = tml_plot_highlight(pl, "int8 baseline", 1, &bx, &by);
        }
        if (!st) st = tml_plot_write_png(pl, plot);
        tml_plot_free(pl);
        if (st) cli_fail_status(&c, st);
        cli_log(&c, "wrote %s", plot);
    }

    int rc = 0;
    if (chosen >= 0) {
        tml_fit_cand *cd = &r.cands[chosen];
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "flash_budget", (double)o.flash);
        cJSON_AddNumberToObject(h, "ram_budget", (double)o.ram);
        if (o.latency_ms > 0) cJSON_AddNumberToObject(h, "latency_ms_budget", o.latency_ms);
        cJSON_AddStringToObject(h, "target", tg->name);
        char *pj = tml_plan_to_json(&cd->plan);
        cJSON_AddItemToObject(h, "plan", cJSON_Parse(pj ? pj : "{}"));
        free(pj);
        cJSON_AddNumberToObject(h, "epochs", o.epochs);
        cJSON_AddNumberToObject(h, "cluster_epochs", o.cluster_epochs);
        if (o.qat_epochs) cJSON_AddNumberToObject(h, "qat_epochs", o.qat_epochs);
        cJSON_AddNumberToObject(h, "lr", o.lr);
        cJSON_AddStringToObject(h, "lr_schedule", o.lr_constant ? "constant" : "cosine");
        cJSON_AddStringToObject(h, "weight_avg", o.avg == TML_AVG_EMA ? "ema" : o.avg == TML_AVG_MEAN ? "mean" : "none");
        if (o.avg) cJSON_AddNumberToObject(h, "weight_avg_from", o.avg_from);
        cJSON_AddNumberToObject(h, "seed", (double)c.seed);
        cJSON_AddNumberToObject(h, "flash", (double)(verified ? dr.text_bytes + dr.rodata_bytes + dr.data_bytes : cd->final.flash));
        cJSON_AddNumberToObject(h, "ram", (double)cd->final.ram);
        if (verified) {
            cJSON_AddNumberToObject(h, "instructions", dr.instr);
            cJSON_AddTrueToObject(h, "bit_exact_on_emulator");
        }
        cli_history_eval(h, data, r.int8_base.test_acc, cd->final.test_acc);
        cJSON_AddStringToObject(h, "export_optimize",
                                tml_export_optimize_name(cd->plan.form_size ? TML_EXPORT_OPT_SIZE : o.exp.optimize));
        if (verified) cJSON_AddStringToObject(h, "compiled_with", cd->plan.form_size ? "-Os" : "-O2");
        cli_add_history(&c, cd->model, h);
        if (o.exp.schedule && (st = tml_sched_opts_to_model(cd->model, &sched))) cli_fail_status(&c, st);
        /* the weight-form goal the budget was met with, so `tinyml export --c` and `profile` use it */
        if ((st = tml_export_optimize_to_model(cd->model, cd->plan.form_size ? TML_EXPORT_OPT_SIZE : o.exp.optimize)))
            cli_fail_status(&c, st);
        cli_save_model(&c, cd->model, out);
        if (cdir) {
            if ((st = tml_export_write(&dr.exp, cdir))) cli_fail_status(&c, st);
            cli_log(&c, "wrote %s/%s.c and %s.h (verified)", cdir, dr.exp.base, dr.exp.base);
        }
        if (cd->plan.form_size)
            cli_log(&c, "the answer's budget holds with every layer in its smallest weight form and the least code "
                        "(--optimize size, stored in %s, so `tinyml export --c` and `tinyml profile` use it): compile "
                        "it with -Os, as the verification did (`tinyml profile` does by itself)",
                    out);
        cli_log(&c, "answer: candidate %d, flash %lld B, RAM %lld B, %s%.3f ms at %.0f MHz, test top-1 %.2f%% (%.2f points "
                    "below int8, %.2f below float)%s",
                cd->id, (long long)(verified ? dr.text_bytes + dr.rodata_bytes + dr.data_bytes : cd->final.flash),
                (long long)cd->final.ram, verified ? "" : "~", latency_ms(verified ? dr.instr : (double)cd->final.instr, o.mhz),
                o.mhz, 100 * cd->final.test_acc, 100 * (r.int8_base.test_acc - cd->final.test_acc),
                100 * (r.float_base.test_acc - cd->final.test_acc), verified ? "; verified bit-exact on the emulator" : "");
    } else {
        rc = 1;
        if (r.closest >= 0) {
            const tml_fit_cand *cd = &r.cands[r.closest];
            const tml_fit_cost *k = cd->tuned ? &cd->final : &cd->quick;
            double miss[3];
            tml_fit_miss(&o, k, miss);
            char what[400] = "";
            if (miss[0] > 0)
                snprintf(what + strlen(what), sizeof what - strlen(what), " flash by %lld B (%lld > %lld)", (long long)miss[0],
                         (long long)k->flash, (long long)o.flash);
            if (miss[1] > 0)
                snprintf(what + strlen(what), sizeof what - strlen(what), "%s RAM by %lld B (%lld > %lld)", *what ? "," : "",
                         (long long)miss[1], (long long)k->ram, (long long)o.ram);
            if (miss[2] > 0)
                snprintf(what + strlen(what), sizeof what - strlen(what), "%s latency by %.3f ms", *what ? "," : "", miss[2]);
            if (!*what && cd->tuned)
                snprintf(what, sizeof what, " accuracy: %.2f points lost on validation (max %.2f)",
                         100 * (r.int8_base.val_acc - k->val_acc), max_drop);
            else if (!*what) /* within budget by the estimate: its compile check was over, and the descent stopped */
                snprintf(what, sizeof what,
                         " flash once compiled for the target (the exporter's estimate, %lld B, is within budget; "
                         "the descent stopped before going on: a larger --time-budget may fit)",
                         (long long)k->flash);
            fprintf(stderr, "tinyml fit: nothing fits: the closest candidate (%d, %s) misses%s\n", cd->id, cd->origin, what);
            if (r.budget_stopped)
                fprintf(stderr, "tinyml fit: the time budget cut the search short (%d descent(s) or candidate(s) "
                                "skipped or stopped): a larger --time-budget may find a plan that fits\n",
                        r.budget_stopped);
        } else if (failed_id >= 0) {
            fprintf(stderr, "tinyml fit: nothing fits once compiled: the best candidate (%d) failed verification: %s\n",
                    failed_id, failed_why);
        } else {
            fprintf(stderr, "tinyml fit: nothing fits and no candidate was measured\n");
        }
    }
    tml_device_result_free(&dr);
    tml_table_free(ct);
    tml_table_free(pt);
    tml_fit_result_free(&r);
    tml_samples_free(train);
    tml_samples_free(test);
    tml_dataset_free(tds);
    tml_dataset_free(eds);
    tml_model_free(m);
    return rc;
}
