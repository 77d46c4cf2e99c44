/*
 * recipe.c - compression recipes: pruning schedules with masked fine-tuning
 * (one-shot, iterative, AGP), and whole compression plans (filter removal,
 * sparsity, weight sharing, INT8) with fine-tuning and distillation. The CLI
 * commands and the budget search (fit.c) call these, so they run the same code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_qat.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_recipe.h"

void tml_finetune_default(tml_finetune *f)
{
    memset(f, 0, sizeof *f);
    f->lr = 1e-3;
    f->batch = 64;
    f->seed = 1;
    f->val_samples = -1;
    f->avg_decay = 0.999;
    f->avg_from = 0.75;
    f->kd_temperature = 4.0;
    f->kd_alpha = 0.9;
}

tml_status tml_finetune_run(tml_model *m, const tml_finetune *ft, tml_train_hook_fn hook, int64_t hook_every,
                            void *hook_user)
{
    if (!ft || ft->epochs <= 0) return TML_OK;
    if (!ft->data) return tml_error(TML_ERR_INVALID, "fine-tuning needs training data");
    if (hook && ft->user && hook_user != ft->user)
        return tml_error(TML_ERR_INVALID, "fine-tuning: the hook and the callbacks must share their user pointer");
    tml_train_opts o;
    tml_train_opts_default(&o);
    o.epochs = ft->epochs;
    o.lr = ft->lr;
    if (ft->lr_constant) o.sched = TML_SCHED_CONSTANT;
    o.batch = ft->batch;
    o.seed = ft->seed;
    o.val_samples = ft->val_samples;
    o.teacher = ft->teacher;
    o.aug_crop_pad = ft->aug_crop_pad;
    o.aug_flip = ft->aug_flip;
    o.avg = ft->avg;
    o.avg_decay = ft->avg_decay;
    o.avg_from = ft->avg_from;
    o.kd_temperature = ft->kd_temperature;
    o.kd_alpha = ft->kd_alpha;
    o.cancel = ft->cancel;
    o.progress = ft->progress;
    o.on_epoch = ft->on_epoch;
    o.user = hook ? hook_user : ft->user;
    o.hook = hook;
    o.hook_every = hook_every;
    tml_trainer *t = NULL;
    tml_status st = tml_trainer_new(m, ft->data, &o, &t);
    if (!st) st = tml_trainer_run(t);
    tml_trainer_free(t);
    return st;
}

const char *tml_prune_schedule_name(tml_prune_schedule s)
{
    return s == TML_PRUNE_ITERATIVE ? "iterative" : s == TML_PRUNE_AGP ? "agp" : "oneshot";
}

static tml_status prune_once(tml_model *m, const tml_prune_spec *s, tml_prune_report *r)
{
    return s->structured ? tml_prune_structured(m, s, r) : tml_prune_magnitude(m, s, r);
}

/* Every target of s scaled by f (the rounds of the iterative and AGP schedules). */
static tml_status scaled_spec(const tml_prune_spec *s, double f, tml_prune_spec *out, tml_layer_target **tg)
{
    *out = *s;
    out->sparsity = s->sparsity * f;
    *tg = NULL;
    if (s->n_targets) {
        *tg = malloc(sizeof(tml_layer_target) * (size_t)s->n_targets);
        if (!*tg) return tml_error(TML_ERR_NOMEM, "out of memory");
        for (int i = 0; i < s->n_targets; i++) {
            (*tg)[i] = s->targets[i];
            (*tg)[i].sparsity = s->targets[i].sparsity * f;
        }
    }
    out->targets = *tg;
    return TML_OK;
}

static tml_status prune_scaled(tml_model *m, const tml_prune_spec *s, double f, tml_prune_report *r)
{
    tml_prune_spec sc;
    tml_layer_target *tg;
    tml_status st = scaled_spec(s, f, &sc, &tg);
    if (!st) st = prune_once(m, &sc, r);
    free(tg);
    return st;
}

/* The AGP schedule's state, seen by the trainer's hook. The hook shares the
 * trainer's user pointer with the progress callbacks, so it leads with them. */
typedef struct agp_ctx {
    void *user; /* the caller's callbacks' user pointer */
    tml_train_progress_fn progress;
    tml_train_epoch_fn on_epoch;
    const tml_prune_spec *spec;
    int steps;
    int64_t every;
} agp_ctx;

static tml_status agp_hook(void *user, tml_model *m, int64_t step, int64_t total)
{
    (void)total;
    agp_ctx *p = user;
    int r = (int)(step / p->every);
    if (r > p->steps) return TML_OK;
    tml_prune_report rep;
    tml_status st = prune_scaled(m, p->spec, tml_agp_sparsity(0.0, 1.0, r, p->steps), &rep);
    if (!st) tml_prune_report_free(&rep);
    return st;
}

static void agp_progress(void *user, int epoch, int64_t step, int64_t steps, double loss, double acc, double sps)
{
    agp_ctx *p = user;
    if (p->progress) p->progress(p->user, epoch, step, steps, loss, acc, sps);
}

static tml_status agp_epoch(void *user, tml_trainer *t, const tml_epoch_info *e)
{
    agp_ctx *p = user;
    return p->on_epoch ? p->on_epoch(p->user, t, e) : TML_OK;
}

/* Fine-tunes ft->epochs while the targets of spec rise on the AGP curve in
 * `steps` steps spread over the first 2/3 of the optimizer steps. */
static tml_status agp_finetune(tml_model *m, const tml_prune_spec *spec, int steps, const tml_finetune *ft)
{
    int64_t n = ft->data->n;
    int64_t nval = ft->val_samples < 0 ? 5000 : ft->val_samples;
    if (nval > n / 2) nval = n / 2;
    int64_t total = (n - nval + ft->batch - 1) / ft->batch * ft->epochs;
    agp_ctx ctx = {.user = ft->user, .progress = ft->progress, .on_epoch = ft->on_epoch, .spec = spec, .steps = steps};
    ctx.every = (int64_t)((2.0 / 3.0) * (double)total / steps);
    if (ctx.every < 1) ctx.every = 1;
    tml_finetune f = *ft;
    f.user = &ctx;
    f.progress = agp_progress;
    f.on_epoch = agp_epoch;
    return tml_finetune_run(m, &f, agp_hook, ctx.every, &ctx);
}

tml_status tml_recipe_prune(tml_model *m, const tml_prune_spec *spec, tml_prune_schedule sched, int steps,
                            const tml_finetune *ft, tml_prune_round_fn on_round, void *round_user,
                            tml_prune_report *rep)
{
    tml_prune_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    int epochs = ft ? ft->epochs : 0;
    if (sched != TML_PRUNE_ONESHOT && epochs <= 0)
        return tml_error(TML_ERR_INVALID, "the %s schedule needs fine-tuning epochs", tml_prune_schedule_name(sched));
    if (sched != TML_PRUNE_ONESHOT && steps < 1)
        return tml_error(TML_ERR_INVALID, "the %s schedule needs at least one step", tml_prune_schedule_name(sched));
    if (sched == TML_PRUNE_AGP && spec->structured)
        return tml_error(TML_ERR_INVALID, "the agp schedule works with unstructured pruning");
    tml_status st = TML_OK;
    if (sched == TML_PRUNE_ONESHOT) {
        st = prune_once(m, spec, rep);
        if (!st) st = tml_finetune_run(m, ft, NULL, 0, NULL);
    } else if (sched == TML_PRUNE_ITERATIVE) {
        for (int r = 1; r <= steps && !st; r++) {
            tml_prune_report_free(rep);
            st = prune_scaled(m, spec, (double)r / steps, rep);
            if (st) break;
            if (on_round) on_round(round_user, r, steps);
            st = tml_finetune_run(m, ft, NULL, 0, NULL);
        }
    } else {
        st = agp_finetune(m, spec, steps, ft);
        if (!st) st = prune_once(m, spec, rep); /* reach the final targets exactly */
    }
    if (rep == &local || st) tml_prune_report_free(rep);
    return st;
}

/* ---- plans ------------------------------------------------------------------------- */

tml_status tml_plan_init(tml_plan *p, const tml_model *m)
{
    memset(p, 0, sizeof *p);
    int n = 0;
    const char **names = tml_prunable_layers(m, &n);
    if (!names) return tml_error(TML_ERR_NOMEM, "out of memory");
    p->layers = calloc((size_t)(n ? n : 1), sizeof(tml_plan_layer));
    if (!p->layers) {
        free(names);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    p->n_layers = n;
    for (int i = 0; i < n; i++) snprintf(p->layers[i].name, sizeof p->layers[i].name, "%s", names[i]);
    free(names);
    p->agp_steps = 100;
    p->cluster_lr = 1e-4;
    p->calib_samples = 512;
    return TML_OK;
}

void tml_plan_free(tml_plan *p)
{
    if (!p) return;
    free(p->layers);
    p->layers = NULL;
    p->n_layers = 0;
}

tml_plan_layer *tml_plan_find(tml_plan *p, const char *name)
{
    for (int i = 0; i < p->n_layers; i++)
        if (strcmp(p->layers[i].name, name) == 0) return &p->layers[i];
    return NULL;
}

/* Quantization-aware training as a plan's last step: m (float) is replaced
 * in place by the int8 model tml_qat trains from it. */
static tml_status qat_step(tml_model *m, const tml_plan *p, const tml_finetune *f, tml_dataset *calib,
                           const tml_quant_opts *qo, const tml_calib_opts *co)
{
    if (!f->data) return tml_error(TML_ERR_INVALID, "quantization-aware training needs training data");
    tml_qat_opts o;
    tml_qat_opts_default(&o);
    o.quant = *qo;
    o.quant.weight_rounding = TML_ROUND_ADAPTIVE; /* QAT starts from the best PTQ model */
    o.calib = *co;
    o.train.epochs = p->qat_epochs;
    o.train.batch = f->batch;
    o.train.seed = f->seed;
    if (f->val_samples >= 0) o.train.val_samples = f->val_samples;
    /* an explicit validation split: the epoch best on it (fake-quantized) is the model */
    o.keep_best = f->val_samples > 0 && !p->qat_keep_last;
    o.train.teacher = f->teacher;
    o.train.aug_crop_pad = f->aug_crop_pad;
    o.train.aug_flip = f->aug_flip;
    o.train.cancel = f->cancel;
    o.train.progress = f->progress;
    o.train.on_epoch = f->on_epoch;
    o.train.user = f->user;
    tml_model *q = NULL;
    tml_qat_report rep;
    tml_status st = tml_qat(m, f->data, calib, &o, &q, NULL, &rep);
    if (st) return st;
    tml_model tmp = *m; /* move q into m */
    *m = *q;
    *q = tmp;
    tml_model_free(q);
    return TML_OK;
}

tml_status tml_plan_apply(tml_model *m, const tml_plan *p, const tml_finetune *ft, tml_dataset *calib)
{
    if (tml_model_is_quantized(m)) return tml_error(TML_ERR_UNSUPPORTED, "a plan applies to a float model");
    if (!calib) return tml_error(TML_ERR_INVALID, "a plan needs calibration data");
    int n = p->n_layers;
    tml_layer_target *tg = calloc((size_t)(n ? n : 1), sizeof *tg);
    const char **only = calloc((size_t)n + 1, sizeof *only);
    if (!tg || !only) {
        free(tg);
        free(only);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    tml_finetune f;
    tml_finetune_default(&f);
    if (ft) f = *ft;
    f.epochs = p->prune_epochs;
    tml_status st = TML_OK;
    int any = 0;
    /* 1. filters: every layer at once (each ranks its own filters) */
    for (int i = 0; i < n; i++) {
        tg[i].name = p->layers[i].name;
        tg[i].sparsity = p->layers[i].filters;
        any |= p->layers[i].filters > 0;
    }
    tml_prune_report rep;
    if (any) {
        tml_prune_spec s = {.n_targets = n, .targets = tg, .structured = 1, .norm = TML_NORM_L1};
        st = tml_prune_structured(m, &s, &rep);
        if (st) goto out;
        tml_prune_report_free(&rep);
    }
    /* 2. sparsity on the AGP schedule while fine-tuning (distilled if ft has a teacher) */
    int sparse = 0;
    for (int i = 0; i < n; i++) {
        tg[i].sparsity = p->layers[i].sparsity;
        sparse |= p->layers[i].sparsity > 0;
    }
    if (sparse || (any && f.epochs > 0)) {
        tml_prune_spec s = {.n_targets = n, .targets = tg, .norm = TML_NORM_L1};
        st = tml_recipe_prune(m, &s, f.epochs > 0 && sparse ? TML_PRUNE_AGP : TML_PRUNE_ONESHOT,
                              p->agp_steps > 0 ? p->agp_steps : 100, &f, NULL, NULL, NULL);
        if (st) goto out;
    }
    /* 3. weight sharing, one tml_cluster call per width */
    int clustered = 0;
    for (int b = 1; b <= 8; b++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (p->layers[i].bits == b) only[k++] = p->layers[i].name;
        only[k] = NULL;
        if (!k) continue;
        tml_cluster_opts co;
        tml_cluster_opts_default(&co);
        co.bits = b;
        co.seed = f.seed;
        if (p->cluster_iters > 0) co.max_iter = p->cluster_iters;
        co.only = only;
        tml_cluster_report cr;
        st = tml_cluster(m, &co, &cr);
        if (st) goto out;
        tml_cluster_report_free(&cr);
        clustered = 1;
    }
    if (clustered && p->cluster_epochs > 0) {
        f.epochs = p->cluster_epochs;
        f.lr = p->cluster_lr > 0 ? p->cluster_lr : 1e-4;
        st = tml_finetune_run(m, &f, NULL, 0, NULL);
        if (st) goto out;
    }
    /* 4. INT8: the packed low-bit layers' widths; adaptive rounding (GPTQ)
     * when there are any (round-to-nearest loses most at 4 and 2 bits) */
    if (!p->float_only) {
        tml_layer_bits *lb = calloc((size_t)(n ? n : 1), sizeof *lb);
        if (!lb) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        int nlb = 0;
        for (int i = 0; i < n; i++)
            if (p->layers[i].qbits > 0 && p->layers[i].qbits < 8) {
                lb[nlb].layer = p->layers[i].name;
                lb[nlb++].bits = p->layers[i].qbits;
            }
        tml_quant_opts qo;
        tml_quant_opts_default(&qo);
        qo.layer_bits = lb;
        qo.n_layer_bits = nlb;
        const int adaptive = nlb > 0 && !p->nearest;
        if (adaptive) qo.weight_rounding = TML_ROUND_ADAPTIVE;
        else qo.keep_nonzero = p->keep_nonzero;
        tml_calib_opts co = {.samples = p->calib_samples > 0 ? p->calib_samples : 512, .seed = f.seed, .cancel = f.cancel};
        if (p->qat_epochs > 0) {
            st = qat_step(m, p, &f, calib, &qo, &co);
        } else {
            tml_fold_report fr;
            st = tml_fold(m, &fr);
            tml_calib cal = {0};
            co.hessians = adaptive;
            co.sequential = adaptive ? &qo : NULL;
            /* min/max ranges without bias correction: the histogram pass would go unused */
            co.ranges_only = qo.method == TML_CALIB_MINMAX && !qo.bias_correction;
            if (!st) st = tml_calibrate(m, calib, &co, &cal);
            if (!st) st = tml_quantize(m, &cal, &qo);
            tml_calib_free(&cal);
        }
        free(lb);
    }
out:
    free(tg);
    free(only);
    return st;
}
