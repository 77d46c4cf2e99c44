/*
 * cmd_train.c - `tinyml train` and `tinyml finetune`: (re)training on a
 * dataset with checkpoints, resume, distillation; masks and codebooks of a
 * compressed model are kept.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_train.h"

static const char help_train[] =
    "Usage: tinyml train [options] [MODEL] --data SPEC [-o OUT]\n"
    "\n"
    "Train a model on the CPU. A seeded validation split is held out of the\n"
    "training data and evaluated after every epoch; with -o FILE, checkpoints\n"
    "FILE.last.tmf (with optimizer state, for --resume) and FILE.best.tmf (best\n"
    "validation accuracy) are written atomically after every epoch, so Ctrl-C\n"
    "leaves the last good checkpoint. Pruned weights stay zero, clustered\n"
    "weights train their centroids only.\n"
    "\n"
    "Data:\n"
    "  -d, --data SPEC        training data (default split: train); see 'tinyml eval --help'\n"
    "  --limit N              use only the first N samples\n"
    "  --val N                hold out N samples for validation (default 5000, 0 = none)\n"
    "  --val-split F          hold out the fraction F instead (seeded)\n"
    "  --normalize M          auto: per-feature (vectors) or per-channel (images) mean/std\n"
    "                         of the training data become the model's preprocessing;\n"
    "                         none: drop mean/std; keep (default): as the model has them\n"
    "  --crop-pad P           augmentation: random crop after zero padding by P pixels\n"
    "  --flip                 augmentation: random horizontal flip\n"
    "Optimization (defaults reach the documented Fashion-MNIST baselines):\n"
    "  --epochs N             (default 12)\n"
    "  --batch N              (default 64)\n"
    "  --optimizer adam|sgd   (default adam; AdamW-style decoupled weight decay)\n"
    "  --lr X                 (default 1e-3 for adam, 0.05 for sgd)\n"
    "  --momentum X           SGD momentum (default 0.9); --nesterov\n"
    "  --weight-decay X       (default 0; conv/dense weights only)\n"
    "  --lr-schedule S        learning rate: cosine (default), step, constant\n"
    "                         (--schedule is the old spelling)\n"
    "  --step-epochs N        step schedule period; --gamma X its factor (default 0.1)\n"
    "  --warmup E             linear warm-up over E epochs (default 0)\n"
    "  --label-smoothing X    (default 0.1)\n"
    "  --freeze-bn            keep batch-norm statistics fixed\n"
    CLI_WAVG_HELP
    "Distillation:\n"
    "  --teacher MODEL        loss = a*T^2*KL(teacher||student at T) + (1-a)*CE\n"
    "  --kd-temperature T     (default 4)\n"
    "  --kd-alpha A           (default 0.9)\n"
    "Output:\n"
    "  -o, --output FILE      the trained model ('-' = stdout; default stdout if not a terminal)\n"
    "  --checkpoint PREFIX    checkpoint names (default: FILE without .tmf); --no-checkpoint\n"
    "  --resume CKPT          continue from PREFIX.last.tmf (same options as the first run)\n"
    "  --keep-best            output the best-validation model instead of the last\n"
    "  --seed N               shuffling, validation split, augmentation, dropout (default 1)\n"
    "  --format F             format of the per-epoch table (table, md, csv, json)\n"
    "  -q, --quiet            no progress bar or per-epoch log\n"
    "\n"
    "Examples:\n"
    "  tinyml create lenet5 | tinyml train --data fashion-mnist -o lenet5.tmf\n"
    "  tinyml train lenet300.tmf --data fashion-mnist --optimizer sgd --lr 0.05 --epochs 20 -o l300.tmf\n"
    "  tinyml train --resume lenet5.last.tmf --data fashion-mnist -o lenet5.tmf\n"
    "  tinyml train small.tmf --teacher lenet5.tmf --data fashion-mnist --epochs 5 -o small-kd.tmf\n"
    "  tinyml create lenet300 --input 8 --classes 3 | tinyml train --data csv:my.csv --normalize auto --val-split 0.2 -o mlp.tmf\n";

static const char help_finetune[] =
    "Usage: tinyml finetune [options] [MODEL] --data SPEC [-o OUT]\n"
    "\n"
    "Fine-tune an already trained or compressed model: 'tinyml train' with\n"
    "gentler defaults (2 epochs, Adam lr 1e-4, cosine). Masks of pruned weights,\n"
    "codebooks of clustered weights and any quantization parameters on float\n"
    "tensors are kept; int8 models are refused (fine-tune before quantizing).\n"
    "All 'tinyml train' options apply (see 'tinyml train --help').\n"
    "\n"
    "Examples:\n"
    "  tinyml finetune pruned.tmf --data fashion-mnist -o pruned-ft.tmf\n"
    "  tinyml prune --sparsity 0.8 --global lenet5.tmf | tinyml finetune --data fashion-mnist --epochs 3 -o p.tmf\n";

typedef struct run_ctx {
    cli *c;
    cli_progress bar;
    const char *prefix; /* checkpoint prefix or NULL */
    tml_table *epochs;
    int keep_best;
    tml_model *best;    /* in-memory copy of the best model (keep_best) */
    tml_model *m;
    int last_done;      /* epochs finished with a checkpoint written */
    double last_val, best_val;
    int n_epochs, first_epoch; /* for the ETA: all epochs, and the first one this run trains */
    double t_start;            /* when this run's first step was reported */
} run_ctx;

/* "1h02m", "3m05s", "42s" */
static void fmt_eta(double s, char *buf, size_t n)
{
    long v = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (v >= 3600) snprintf(buf, n, "%ldh%02ldm", v / 3600, v % 3600 / 60);
    else if (v >= 60) snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
    else snprintf(buf, n, "%lds", v);
}

static void on_progress(void *user, int epoch, int64_t step, int64_t steps, double loss, double acc, double sps)
{
    run_ctx *r = user;
    if (!r->bar.active) return;
    double t = cli_now();
    if (step < steps && t - r->bar.last < 0.1) return;
    r->bar.last = t;
    int width = 24, fill = (int)((double)step / (double)steps * width + 0.5);
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    /* ETA from this run's elapsed time and the fraction of its epochs done
     * (validation time included, as it recurs every epoch) */
    if (r->t_start == 0) r->t_start = t;
    const double todo = r->n_epochs - r->first_epoch;
    const double f = todo > 0 ? ((epoch - r->first_epoch) + (double)step / (double)steps) / todo : 1.0;
    char eta[32] = "?";
    if (f > 0.002 && t > r->t_start) fmt_eta((t - r->t_start) * (1.0 - f) / f, eta, sizeof eta);
    fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld loss %.4f acc %.2f%% %.0f/s ETA %s  ", epoch + 1, r->n_epochs, bar,
            (long long)step, (long long)steps, loss, 100.0 * acc, sps, eta);
    fflush(stderr);
}

static tml_status save_checkpoint(run_ctx *r, tml_trainer *t, const char *suffix, int with_state)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s.tmf", r->prefix, suffix);
    tml_model *ck = tml_model_clone(r->m);
    if (!ck) return TML_ERR_NOMEM;
    tml_status st = with_state ? tml_trainer_export_state(t, ck) : TML_OK;
    if (!st) st = tml_model_save(ck, path, NULL);
    tml_model_free(ck);
    return st;
}

static tml_status on_epoch(void *user, tml_trainer *t, const tml_epoch_info *e)
{
    run_ctx *r = user;
    cli_progress_end(&r->bar);
    tml_table *tb = r->epochs;
    tml_table_add_row(tb);
    tml_table_int(tb, 0, e->epoch + 1);
    tml_table_num(tb, 1, e->train_loss, "%.4f");
    tml_table_num(tb, 2, 100.0 * e->train_acc, "%.2f");
    tml_table_num(tb, 3, e->val_loss, "%.4f");
    tml_table_num(tb, 4, 100.0 * e->val_acc, "%.2f");
    tml_table_num(tb, 5, e->lr, "%.2e");
    tml_table_num(tb, 6, e->seconds, "%.1f");
    tml_table_num(tb, 7, e->samples_per_s, "%.0f");
    if (!isnan(e->val_acc))
        cli_log(r->c, "epoch %d/%d: loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | lr %.2e | %.1fs %.0f samples/s%s",
                e->epoch + 1, e->epochs, e->train_loss, 100 * e->train_acc, e->val_loss, 100 * e->val_acc, e->lr,
                e->seconds, e->samples_per_s, e->is_best ? " *" : "");
    else
        cli_log(r->c, "epoch %d/%d: loss %.4f acc %.2f%% | lr %.2e | %.1fs %.0f samples/s", e->epoch + 1, e->epochs,
                e->train_loss, 100 * e->train_acc, e->lr, e->seconds, e->samples_per_s);
    r->last_val = e->val_acc;
    if (e->is_best) r->best_val = e->val_acc;
    if (r->keep_best && e->is_best) {
        tml_model_free(r->best);
        r->best = tml_model_clone(r->m);
        if (!r->best) return TML_ERR_NOMEM;
    }
    if (r->prefix) {
        tml_status st = save_checkpoint(r, t, "last", 1);
        if (!st && e->is_best) st = save_checkpoint(r, t, "best", 0);
        if (st) return tml_error_context(st, "writing a checkpoint");
    }
    r->last_done = e->epoch + 1;
    cli_progress_start(&r->bar, r->c, "train");
    return TML_OK;
}

/* --normalize auto: mean and std of the training samples (after the model's
 * scale) become the model's preprocessing, per feature for a vector input,
 * per channel for an image of up to 4 channels (per element otherwise);
 * none: no mean/std. Computed over every loaded sample, in double. */
static void set_normalization(const cli *c, tml_model *m, const tml_samples *s, int on)
{
    tml_preproc *pre = &m->meta.pre;
    if (tml_preproc_set_features(pre, 0, NULL, NULL)) cli_fail(c, "out of memory");
    pre->n_ch = 0;
    if (!on) return;
    const tml_tensor *in = &m->tensors[m->input];
    const int64_t sv = (int64_t)s->h * s->w * s->c;
    const int per_channel = in->ndim == 3 && s->c <= TML_MAX_CHANNELS_PRE;
    const int64_t period = per_channel ? s->c : sv;
    if (period > TML_MAX_NUMEL || s->n < 2) cli_fail(c, "--normalize auto needs at least 2 training samples");
    double *sum = calloc((size_t)period, sizeof(double)), *sq = calloc((size_t)period, sizeof(double));
    float *row = malloc(sizeof(float) * (size_t)sv);
    if (!sum || !sq || !row) cli_fail(c, "out of memory");
    int64_t count = 0;
    for (int64_t i = 0; i < s->n; i++) {
        tml_samples_gather(s, &i, 1, row, NULL);
        for (int64_t j = 0; j < sv; j++) {
            const double v = (double)row[j] * pre->scale;
            sum[j % period] += v;
            sq[j % period] += v * v;
        }
    }
    count = s->n * (sv / period);
    float *mean = malloc(sizeof(float) * (size_t)period), *sd = malloc(sizeof(float) * (size_t)period);
    if (!mean || !sd) cli_fail(c, "out of memory");
    int constant = 0;
    for (int64_t j = 0; j < period; j++) {
        const double mu = sum[j] / (double)count, var = sq[j] / (double)count - mu * mu;
        mean[j] = (float)mu;
        /* a constant feature: std 1 (it becomes 0 after the mean, harmlessly) */
        sd[j] = var > 1e-12 * (1.0 + mu * mu) ? (float)sqrt(var) : 1.0f;
        constant += !(var > 1e-12 * (1.0 + mu * mu));
    }
    if (per_channel) {
        pre->n_ch = (int)period;
        for (int j = 0; j < (int)period; j++) {
            pre->mean[j] = mean[j];
            pre->std[j] = sd[j];
        }
    } else if (tml_preproc_set_features(pre, (int)period, mean, sd)) {
        cli_fail(c, "out of memory");
    }
    cli_log(c, "normalization from %lld training samples: %s mean/std of %lld %s%s", (long long)s->n,
            per_channel ? "per-channel" : "per-feature", (long long)period, per_channel ? "channels" : "features",
            constant ? " (constant features get std 1)" : "");
    free(sum);
    free(sq);
    free(row);
    free(mean);
    free(sd);
}

static int parse_optim(const char *s, tml_optim *o)
{
    if (strcmp(s, "adam") == 0 || strcmp(s, "adamw") == 0) *o = TML_OPTIM_ADAM;
    else if (strcmp(s, "sgd") == 0) *o = TML_OPTIM_SGD;
    else return -1;
    return 0;
}

static int parse_sched(const char *s, tml_sched *o)
{
    if (strcmp(s, "cosine") == 0) *o = TML_SCHED_COSINE;
    else if (strcmp(s, "step") == 0) *o = TML_SCHED_STEP;
    else if (strcmp(s, "constant") == 0) *o = TML_SCHED_CONSTANT;
    else return -1;
    return 0;
}

static int run_train(int argc, char **argv, int finetune)
{
    cli c;
    cli_init(&c, finetune ? "finetune" : "train", finetune ? help_finetune : help_train, argc, argv);
    tml_train_opts o;
    tml_train_opts_default(&o);
    if (finetune) {
        o.epochs = 2;
        o.lr = 1e-4;
    }
    const char *pos[1] = {NULL}, *data = NULL, *out = NULL, *optim = NULL, *sched = NULL, *teacher = NULL,
               *prefix = NULL, *resume = NULL, *normalize = NULL;
    int64_t limit = 0, val = -1;
    double lr = -1, kd_t = 4.0, kd_a = 0.9, val_split = 0;
    int no_ckpt = 0, keep_best = 0, lr_set = 0;
    cli_wavg wavg = CLI_WAVG_INIT;
    while (cli_next(&c)) {
        if (cli_weight_avg_option(&c, &wavg)) continue;
        if (cli_str(&c, "data", 'd', &data) || cli_str(&c, "output", 'o', &out) || cli_str(&c, "optimizer", 0, &optim) ||
            cli_str(&c, "lr-schedule", 0, &sched) || cli_str(&c, "schedule", 0, &sched) ||
            cli_str(&c, "teacher", 0, &teacher) || cli_str(&c, "checkpoint", 0, &prefix) ||
            cli_str(&c, "resume", 0, &resume) || cli_str(&c, "normalize", 0, &normalize))
            continue;
        if (cli_double(&c, "val-split", 0, 1e-6, 0.5, &val_split)) continue;
        if (cli_i64(&c, "limit", 0, 1, INT64_MAX, &limit) || cli_i64(&c, "val", 0, 0, INT64_MAX, &val)) continue;
        if (cli_int(&c, "epochs", 0, 1, 100000, &o.epochs) || cli_int(&c, "batch", 0, 1, 65536, &o.batch) ||
            cli_int(&c, "step-epochs", 0, 1, 100000, &o.step_epochs) || cli_int(&c, "crop-pad", 0, 0, 64, &o.aug_crop_pad))
            continue;
        if (cli_double(&c, "lr", 0, -1e300, 1e300, &lr)) {
            lr_set = 1;
            continue;
        }
        if (cli_double(&c, "momentum", 0, -1e300, 1e300, &o.momentum) ||
            cli_double(&c, "weight-decay", 0, -1e300, 1e300, &o.weight_decay) ||
            cli_double(&c, "gamma", 0, -1e300, 1e300, &o.step_gamma) ||
            cli_double(&c, "warmup", 0, -1e300, 1e300, &o.warmup_epochs) ||
            cli_double(&c, "label-smoothing", 0, -1e300, 1e300, &o.label_smoothing) ||
            cli_double(&c, "kd-temperature", 0, -1e300, 1e300, &kd_t) || cli_double(&c, "kd-alpha", 0, -1e300, 1e300, &kd_a))
            continue;
        if (cli_flag(&c, "nesterov", 0)) {
            o.nesterov = 1;
            continue;
        }
        if (cli_flag(&c, "flip", 0)) {
            o.aug_flip = 1;
            continue;
        }
        if (cli_flag(&c, "freeze-bn", 0)) {
            o.freeze_bn = 1;
            continue;
        }
        if (cli_flag(&c, "no-checkpoint", 0)) {
            no_ckpt = 1;
            continue;
        }
        if (cli_flag(&c, "keep-best", 0)) {
            keep_best = 1;
            continue;
        }
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (optim && parse_optim(optim, &o.optim)) cli_usage_error(&c, "--optimizer must be adam or sgd (got '%s')", optim);
    if (sched && parse_sched(sched, &o.sched))
        cli_usage_error(&c, "--lr-schedule must be cosine, step or constant (got '%s')", sched);
    if (normalize && strcmp(normalize, "auto") && strcmp(normalize, "none") && strcmp(normalize, "keep"))
        cli_usage_error(&c, "--normalize must be auto, none or keep (got '%s')", normalize);
    if (val_split > 0 && val >= 0) cli_usage_error(&c, "give --val N or --val-split F, not both");
    if (resume && normalize) cli_usage_error(&c, "--normalize applies to a new run, not to --resume");
    if (o.sched == TML_SCHED_STEP && !o.step_epochs) o.step_epochs = o.epochs / 3 > 0 ? o.epochs / 3 : 1;
    if (lr_set) o.lr = lr;
    else if (finetune && o.optim == TML_OPTIM_SGD) o.lr = 0.005;
    o.seed = c.seed;
    o.val_samples = val;
    cli_weight_avg_check(&c, &wavg);
    o.avg = (tml_avg)wavg.kind;
    o.avg_decay = wavg.decay;
    o.avg_from = wavg.from;
    o.kd_temperature = kd_t;
    o.kd_alpha = kd_a;
    if (tml_train_opts_check(&o)) cli_usage_error(&c, "%s", tml_last_error());
    if (!data) cli_usage_error(&c, "--data is required (e.g. --data fashion-mnist)");
    if (resume && pos[0]) cli_usage_error(&c, "give either MODEL or --resume CKPT, not both");
    static char prefix_buf[4096];
    prefix = cli_checkpoint_prefix(out, prefix, no_ckpt, prefix_buf, sizeof prefix_buf);
    cli_check_model_output(&c, out);
    cli_check_checkpoints(&c, prefix, 1);

    tml_model *ckpt = NULL, *m;
    if (resume) {
        ckpt = cli_load_model(&c, resume);
        m = tml_model_clone(ckpt);
        if (!m || tml_train_strip_state(m)) cli_fail(&c, "out of memory");
    } else {
        m = cli_load_model(&c, pos[0]);
        if (tml_train_has_state(m) && tml_train_strip_state(m)) cli_fail(&c, "out of memory");
    }
    tml_model *tm = teacher ? cli_load_model(&c, teacher) : NULL;
    o.teacher = tm;

    cli_data dd = {.spec = data};
    tml_dataset *ds = cli_open_train_data(&c, &dd, m); /* classes matched by name */
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    tml_samples *s = NULL;
    double t0 = cli_now();
    tml_status st = tml_dataset_load(ds, limit, &s);
    if (st) cli_fail_status(&c, st);
    cli_log(&c, "loaded %lld samples of %s in %.1fs", (long long)s->n, info->name, cli_now() - t0);
    if (!m->meta.labels && info->labels && info->n_classes == tml_tensor_numel(&m->tensors[m->output]))
        tml_meta_set_labels(&m->meta, info->n_classes, info->labels);
    if (val_split > 0) {
        o.val_samples = (int64_t)(val_split * (double)s->n + 0.5);
        if (o.val_samples < 1) cli_fail(&c, "--val-split %g of %lld samples holds out nothing", val_split, (long long)s->n);
    }
    if (normalize && strcmp(normalize, "keep") != 0) set_normalization(&c, m, s, strcmp(normalize, "auto") == 0);
    else if (info->raw_max != 255.0f && fabsf(m->meta.pre.scale - 1.0f / 255.0f) < 1e-9f && !m->meta.pre.n_ch &&
             !m->meta.pre.n_feat)
        cli_warn(&c, "the model scales raw values by 1/255 (8-bit images) but %s holds values up to %g: "
                     "use --normalize auto (or create the model with --scale)", info->name, (double)info->raw_max);

    static const char *const hdr[] = {"epoch", "train loss", "train acc%", "val loss", "val acc%", "lr", "seconds", "samples/s"};
    run_ctx r = {.c = &c, .prefix = prefix, .keep_best = keep_best, .m = m, .last_val = NAN, .best_val = NAN};
    r.epochs = tml_table_new("epochs", "Training", 8, hdr);
    o.progress = on_progress;
    o.on_epoch = on_epoch;
    o.user = &r;
    o.cancel = &cli_cancel_flag;
    tml_trainer *t = NULL;
    st = tml_trainer_new(m, s, &o, &t);
    if (st) cli_fail_status(&c, st);
    if (ckpt) {
        st = tml_trainer_resume(t, ckpt);
        if (st) cli_fail_status(&c, st);
        cli_log(&c, "resuming after epoch %d of %d", tml_trainer_epochs_done(t), o.epochs);
        tml_model_free(ckpt);
    }
    r.n_epochs = o.epochs;
    r.first_epoch = tml_trainer_epochs_done(t);
    cli_progress_start(&r.bar, &c, "train");
    double t1 = cli_now();
    st = tml_trainer_run(t);
    cli_progress_end(&r.bar);
    if (st == TML_ERR_INTERRUPTED) {
        if (r.prefix && r.last_done)
            cli_warn(&c, "interrupted; the last good checkpoint is %s.last.tmf (epoch %d)", r.prefix, r.last_done);
        else
            cli_warn(&c, "interrupted before the first epoch finished; nothing was written");
        exit(130);
    }
    if (st) cli_fail_status(&c, st);
    double secs = cli_now() - t1;

    tml_model *final = keep_best && r.best ? r.best : m;
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "data", info->name);
    cJSON_AddNumberToObject(h, "samples", (double)s->n);
    cJSON_AddNumberToObject(h, "epochs", o.epochs);
    cJSON_AddNumberToObject(h, "batch", o.batch);
    cJSON_AddStringToObject(h, "optimizer", o.optim == TML_OPTIM_ADAM ? "adam" : "sgd");
    cJSON_AddNumberToObject(h, "lr", o.lr);
    if (normalize) cJSON_AddStringToObject(h, "normalize", normalize);
    cJSON_AddStringToObject(h, "lr_schedule", o.sched == TML_SCHED_COSINE ? "cosine" : o.sched == TML_SCHED_STEP ? "step" : "constant");
    if (o.weight_decay > 0) cJSON_AddNumberToObject(h, "weight_decay", o.weight_decay);
    if (o.label_smoothing > 0) cJSON_AddNumberToObject(h, "label_smoothing", o.label_smoothing);
    if (o.avg) {
        cJSON_AddStringToObject(h, "weight_avg", o.avg == TML_AVG_EMA ? "ema" : "mean");
        if (o.avg == TML_AVG_EMA) cJSON_AddNumberToObject(h, "weight_avg_decay", o.avg_decay);
        cJSON_AddNumberToObject(h, "weight_avg_from", o.avg_from);
    }
    if (tm) cJSON_AddStringToObject(h, "teacher", teacher);
    cJSON_AddNumberToObject(h, "seed", (double)o.seed);
    cJSON_AddNumberToObject(h, "val_samples", o.val_samples < 0 ? 5000 : (double)o.val_samples);
    if (!isnan(r.last_val)) cJSON_AddNumberToObject(h, "val_top1", keep_best ? r.best_val : r.last_val);
    cli_history_seconds(h, "seconds", secs);
    cli_add_history(&c, final, h);
    cli_save_model(&c, final, out);
    int64_t nval = o.val_samples < 0 ? 5000 : o.val_samples;
    if (nval > s->n / 2) nval = s->n / 2;
    tml_table_note(r.epochs, "%s: %lld samples, %lld of them held out for validation (seed %llu); batch %d; %.1fs in all",
                   info->name, (long long)s->n, (long long)nval, (unsigned long long)o.seed, o.batch, secs);
    tml_table *tables[1] = {r.epochs};
    cli_print_pass_report(&c, out, tables, 1);
    tml_table_free(r.epochs);
    tml_trainer_free(t);
    tml_model_free(r.best);
    tml_model_free(m);
    tml_model_free(tm);
    tml_samples_free(s);
    tml_dataset_free(ds);
    return 0;
}

int cmd_train(int argc, char **argv) { return run_train(argc, argv, 0); }
int cmd_finetune(int argc, char **argv) { return run_train(argc, argv, 1); }
