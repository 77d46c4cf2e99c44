/*
 * fit.c - the budget search of `tinyml fit` (tml_fit.h has the method):
 * greedy descent over compression plans measured exactly by the exporter,
 * then fine-tuning of the candidate plans in parallel and the choice of the
 * most accurate one that fits.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "tinyml/tml_device.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_fit.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_train.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define FILTER_STEP 0.125 /* of the original filters, per move */
#define FILTER_MAX 0.875
#define SPARSE_KEEP 0.6   /* a sparsity move keeps 60% of the remaining weights */
#define SPARSE_KEEP_FINE 0.775 /* a fine one about the square root of that */
#define FINE_SLACK 0.03   /* a last move that leaves more than this of the flash budget unused is
                             tried again with the fine moves */
#define SPARSE_MAX 0.985
#define GROW_TRIES 3      /* descents (and screenings) per path when growing its fitting plan back */
#define GROW_MARGIN 0.01  /* a grown plan's screened flash (+ the compile gap) must fit with this
                             much of the flash budget to spare: fine-tuning moves it a little */
#define MAX_STEPS 120     /* greedy steps per variant */
#define LOSS_NOISE 0.005  /* validation loss changes smaller than this are noise (1000 samples) */
#define BASE_SAMPLES 4000 /* training samples of the tuned descent's short fine-tune per step */
#define BASE_GAP 0.03     /* the tuned descent takes over this far below the uncompressed quick top-1 */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tml_fit_opts_default(tml_fit_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mhz = 80;
    o->max_drop = -1;
    o->seed = 1;
    o->jobs = 2;
    o->epochs = 4;
    o->cluster_epochs = 1;
    o->max_candidates = 6;
    o->finalists = 2;
    o->screen_samples = 8000;
    o->val_samples = 5000;
    o->quick_samples = 1000;
    o->distill = 1;
    /* cosine from 1e-3, no weight average: SWA (constant 5e-4, the mean from 2/3) lost 0.01
     * and 0.44 test points on LeNet-5's two finalists at 32 KB (docs/fit.md) */
    o->lr = 1e-3;
    o->lr_constant = 0;
    o->avg = TML_AVG_NONE;
    o->avg_decay = 0.999;
    o->avg_from = 2.0 / 3.0;
    tml_export_opts_default(&o->exp);
}

double tml_fit_miss(const tml_fit_opts *o, const tml_fit_cost *c, double miss[3])
{
    double lat = o->latency_ms > 0 ? (double)c->instr / (o->mhz * 1e3) : 0;
    double mf = (double)(c->flash - o->flash), mr = (double)(c->ram - o->ram),
           ml = o->latency_ms > 0 ? lat - o->latency_ms : 0;
    if (miss) {
        miss[0] = mf;
        miss[1] = mr;
        miss[2] = ml;
    }
    double s = 0;
    if (mf > 0) s += mf / (double)o->flash;
    if (mr > 0) s += mr / (double)o->ram;
    if (ml > 0) s += ml / o->latency_ms;
    return s;
}

int tml_fit_grow_back(const tml_fit_opts *o, const tml_fit_cost *steps, int from, int64_t shrink, int64_t margin)
{
    if (!o || !steps || shrink <= 0) return -1;
    int best = -1;
    for (int i = from; i >= 0; i--) {
        tml_fit_cost c = steps[i];
        c.flash -= shrink - margin;
        if (tml_fit_miss(o, &c, NULL) > 0) break;
        best = i;
    }
    return best;
}

char *tml_plan_to_json(const tml_plan *p)
{
    cJSON *j = cJSON_CreateObject(), *l = cJSON_AddObjectToObject(j, "layers");
    for (int i = 0; i < p->n_layers; i++) {
        const tml_plan_layer *pl = &p->layers[i];
        cJSON *e = cJSON_AddObjectToObject(l, pl->name);
        cJSON_AddNumberToObject(e, "filters", pl->filters);
        cJSON_AddNumberToObject(e, "sparsity", pl->sparsity);
        cJSON_AddNumberToObject(e, "bits", pl->bits);
        if (pl->qbits) cJSON_AddNumberToObject(e, "qbits", pl->qbits);
    }
    if (p->form_size) cJSON_AddStringToObject(j, "optimize", "size");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static tml_status plan_copy(tml_plan *dst, const tml_plan *src)
{
    *dst = *src;
    dst->layers = malloc(sizeof(tml_plan_layer) * (size_t)(src->n_layers ? src->n_layers : 1));
    if (!dst->layers) return tml_error(TML_ERR_NOMEM, "out of memory");
    memcpy(dst->layers, src->layers, sizeof(tml_plan_layer) * (size_t)src->n_layers);
    return TML_OK;
}

static int plan_equal(const tml_plan *a, const tml_plan *b)
{
    if (a->n_layers != b->n_layers || a->form_size != b->form_size) return 0;
    for (int i = 0; i < a->n_layers; i++)
        if (a->layers[i].filters != b->layers[i].filters || a->layers[i].sparsity != b->layers[i].sparsity ||
            a->layers[i].bits != b->layers[i].bits || a->layers[i].qbits != b->layers[i].qbits)
            return 0;
    return 1;
}

/* ---- the search's shared state ----------------------------------------------------------- */

typedef struct cache_entry {
    tml_plan plan;
    tml_fit_cost cost;
} cache_entry;

typedef struct fit_ctx {
    const tml_model *m;
    const tml_fit_opts *o;
    const tml_samples *all; /* o->train */
    tml_samples *tr;        /* all minus the validation part (fine-tuning) */
    tml_samples *scr;       /* the first screen_samples of tr (screening), NULL without */
    tml_samples *btr;       /* the first BASE_SAMPLES of tr (the tuned descent's bases), NULL without */
    double quick0;          /* quick validation top-1 of the uncompressed plan */
    int64_t *val;           /* (n_val) indices into all */
    int64_t n_val, n_quick;
    int64_t n_rank;         /* the first n_rank of val rank (the quick measure within them, the
                               screening); the rest, which no earlier choice saw, picks the answer */
    cache_entry *cache;
    int n_cache, cap_cache;
    int64_t evals;
    double t0;
    double stop_at;         /* a descent stops at this fraction of the time budget */
    int cut;                /* descents stopped by the time budget */
    int64_t gap[2];         /* per weight-form goal (plan.form_size): the compiled flash's excess
                               over the exporter's estimate, as last measured (+64 B), added to
                               the quick measure's flash from then on */
    unsigned char *fixed;   /* per plan layer: its filters cannot be removed (a residual add
                               or the output ties them): no filter move, no structured start */
} fit_ctx;

static void progress(const fit_ctx *x, const char *phase, int done, int total, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void progress(const fit_ctx *x, const char *phase, int done, int total, const char *fmt, ...)
{
    if (!x->o->progress) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
#ifdef _OPENMP
#pragma omp critical(tml_fit_cb)
#endif
    x->o->progress(x->o->user, phase, done, total, msg);
}

/* Exact costs of an INT8 model: flash and RAM from the C exporter, its
 * instruction estimate (2 per nonzero MAC where the exporter gives none), and
 * validation loss / top-1 on the first n validation samples. */
/* The export options of plan p: the search's, with the plan's weight-form goal. */
static tml_export_opts plan_export(const fit_ctx *x, const tml_plan *p)
{
    tml_export_opts e = x->o->exp;
    if (p && p->form_size) e.optimize = TML_EXPORT_OPT_SIZE;
    return e;
}

static tml_status measure(const fit_ctx *x, const tml_plan *p, const tml_model *q, int64_t n, tml_fit_cost *c)
{
    tml_export_result er;
    tml_export_opts xo = plan_export(x, p);
    tml_status st = tml_export_c(q, &xo, &er);
    if (st) return st;
    c->flash = er.const_bytes + er.code_bytes;
    c->ram = er.arena_bytes;
    int64_t instr = 0;
    for (int i = 0; i < er.n_layers; i++) instr += er.layers[i].est_instr;
    c->instr = instr > 0 ? instr : 2 * er.macs_nz;
    tml_export_result_free(&er);
    tml_eval_result r;
    tml_eval_opts eo = {.cancel = x->o->cancel};
    st = tml_evaluate_samples(q, x->all, x->val, n, &eo, &r);
    if (st) return st;
    c->val_loss = r.loss;
    c->val_acc = r.top1;
    c->test_acc = NAN;
    c->pick_acc = NAN;
    tml_eval_result_free(&r);
    return TML_OK;
}

/* Applies plan p to a copy of the model (fine-tuning epochs from the plan) and
 * quantizes it. */
static tml_status build(const fit_ctx *x, const tml_plan *p, const tml_finetune *ft, tml_model **out)
{
    *out = NULL;
    tml_model *c = tml_model_clone(x->m);
    if (!c) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_dataset *cal = NULL;
    /* calibration draws its seeded subset from the first 4096 training samples
     * (streaming all of them twice per plan would dominate the quick measure) */
    tml_status st = tml_dataset_from_samples(x->tr, NULL, x->tr->n < 4096 ? x->tr->n : 4096, "fit calibration", &cal);
    if (!st) st = tml_plan_apply(c, p, ft, cal);
    tml_dataset_free(cal);
    if (st) {
        tml_model_free(c);
        return st;
    }
    *out = c;
    return TML_OK;
}

/* The plan applied without fine-tuning and quantized (the descent's model). */
static tml_status quick_model(const fit_ctx *x, const tml_plan *p, tml_model **m)
{
    tml_plan q = *p;
    q.prune_epochs = q.cluster_epochs = q.qat_epochs = 0;
    q.nearest = 1; /* GPTQ per plan would slow the descent several times over */
    /* ... but nearest rounding zeroes most small weights of an int4 / int2 layer, which
     * then looks small in a sparse form, while adaptive rounding after fine-tuning keeps
     * them nonzero (LeNet-5's fc1 at int2: 30.5 KB here, 47.2 KB fine-tuned): every
     * unpruned weight stays nonzero, so its flash here is an upper bound */
    q.keep_nonzero = 1;
    q.calib_samples = 256;
    q.cluster_iters = 8; /* the sizes do not depend on it; the quick loss a little */
    tml_finetune ft;
    tml_finetune_default(&ft);
    ft.seed = x->o->seed;
    ft.cancel = x->o->cancel;
    return build(x, &q, &ft, m);
}

/* Flash of the plan's model compiled for the target (text + rodata + data of
 * the model object), from one run on the emulated core. */
static tml_status compiled_flash(const fit_ctx *x, const tml_plan *p, int64_t *flash)
{
    tml_model *m = NULL;
    tml_status st = quick_model(x, p, &m);
    if (st) return st;
    int64_t numel = tml_tensor_numel(&m->tensors[m->input]);
    float *in = malloc(sizeof(float) * (size_t)numel);
    if (!in) {
        tml_model_free(m);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    tml_samples_gather(x->all, x->val, 1, in, NULL);
    tml_preproc_apply(&m->meta.pre, numel, x->all->c, in);
    tml_device_opts d = *x->o->device;
    d.exp = plan_export(x, p);
    if (p->form_size) d.opt = "Os"; /* the least code: compiled for size, as exported for size */
    tml_device_result r;
    st = tml_device_run(m, in, 1, &d, &r);
    if (!st) {
        *flash = r.text_bytes + r.rodata_bytes + r.data_bytes;
        tml_device_result_free(&r);
    }
    free(in);
    tml_model_free(m);
    return st;
}

/* The quick measure's flash: the exporter's, plus the compiler's excess over
 * its code estimate as measured so far for the plan's weight-form goal (the
 * balanced kernels compiled -O2 are further above the estimate than the
 * smallest ones at -Os: 4.3 against 1.9 KB on a small residual net). The
 * cache keeps the exporter's numbers. */
static tml_status with_gap(const fit_ctx *x, const tml_plan *p, tml_fit_cost *c)
{
    c->code_gap = x->gap[p->form_size ? 1 : 0];
    c->flash += c->code_gap;
    return TML_OK;
}

/* The plan measured without fine-tuning (cached: variants share steps). */
static tml_status quick(fit_ctx *x, const tml_plan *p, tml_fit_cost *c)
{
    int hit = 0;
#ifdef _OPENMP
#pragma omp critical(tml_fit_cache)
#endif
    for (int i = 0; i < x->n_cache && !hit; i++)
        if (plan_equal(&x->cache[i].plan, p)) {
            *c = x->cache[i].cost;
            hit = 1;
        }
    if (hit) return with_gap(x, p, c);
    tml_model *m = NULL;
    tml_status st = quick_model(x, p, &m);
    if (!st) st = measure(x, p, m, x->n_quick, c);
    tml_model_free(m);
    if (st) return st;
    tml_status cs = TML_OK;
#ifdef _OPENMP
#pragma omp critical(tml_fit_cache)
#endif
    {
        x->evals++;
        if (x->n_cache == x->cap_cache) {
            int cap = x->cap_cache ? 2 * x->cap_cache : 64;
            cache_entry *ce = realloc(x->cache, sizeof *ce * (size_t)cap);
            if (ce) {
                x->cache = ce;
                x->cap_cache = cap;
            }
        }
        if (x->n_cache < x->cap_cache && !plan_copy(&x->cache[x->n_cache].plan, p)) {
            x->cache[x->n_cache].cost = *c;
            x->n_cache++;
        } else {
            cs = tml_error(TML_ERR_NOMEM, "out of memory");
        }
    }
    return cs ? cs : with_gap(x, p, c);
}

/* The tuned descent. Untrained, the quick measure says little once a plan
 * is far from the original (sparsity looks free, filter removal ruinous, and
 * deep in, every move is at chance). From there on the descent keeps a base:
 * the current plan's filter removal and sparsity given a short distilled
 * fine-tune (one AGP epoch on BASE_SAMPLES training samples, the model kept
 * float, no weight sharing), and every move is measured as the plan with
 * that move applied to the base (its further filters and sparsity on top,
 * its sharing and int widths as in the quick measure): the damage a move
 * does to a model that has recovered from the moves before it. The base is
 * made again once the plan measured from it is BASE_GAP below the base's own
 * top-1 (the moves since have added up), not at every step: its fine-tune
 * costs about as much as measuring every move. */
typedef struct tbase {
    tml_model *m;  /* float: the filters and sparsity of `plan`, with the short fine-tune */
    tml_plan plan;
    double acc;    /* quick top-1 of `plan` measured from the base */
} tbase;

static void tbase_free(tbase *b)
{
    tml_model_free(b->m);
    b->m = NULL;
    tml_plan_free(&b->plan);
}

static tml_status tbase_make(fit_ctx *x, const tml_plan *p, tbase *b)
{
    tbase_free(b);
    tml_plan q;
    tml_status st = plan_copy(&q, p);
    if (st) return st;
    /* weight sharing stays out of the base: a clustered layer cannot be pruned further */
    for (int i = 0; i < q.n_layers; i++) q.layers[i].bits = 0;
    q.prune_epochs = 1;
    q.agp_steps = 20;
    q.cluster_epochs = 0;
    q.qat_epochs = 0;
    q.float_only = 1;
    tml_finetune ft;
    tml_finetune_default(&ft);
    ft.seed = x->o->seed;
    ft.data = x->btr;
    ft.val_samples = 0;
    ft.teacher = x->o->distill ? x->m : NULL;
    ft.cancel = x->o->cancel;
    st = build(x, &q, &ft, &b->m);
    tml_plan_free(&q);
    if (!st) st = plan_copy(&b->plan, p);
    if (st) tbase_free(b);
    return st;
}

/* Plan p (the base's plan and one move) measured from the base: the move's
 * delta applied to the base without fine-tuning, quantized. Flash and RAM
 * are those of this model (filter counts can differ from p applied to the
 * original by a rounding; the compile check measures the final plans afresh). */
static tml_status quick_from(fit_ctx *x, const tbase *b, const tml_plan *p, tml_fit_cost *c)
{
    tml_plan d;
    tml_status st = plan_copy(&d, p);
    if (st) return st;
    for (int i = 0; i < p->n_layers; i++) {
        double f0 = b->plan.layers[i].filters, f1 = p->layers[i].filters;
        d.layers[i].filters = f1 > f0 ? (f1 - f0) / (1.0 - f0) : 0.0;
    }
    d.prune_epochs = d.cluster_epochs = d.qat_epochs = 0;
    d.nearest = 1;
    d.keep_nonzero = 1;
    d.calib_samples = 256;
    d.cluster_iters = 8;
    d.float_only = 0;
    tml_model *m = tml_model_clone(b->m);
    if (!m) st = tml_error(TML_ERR_NOMEM, "out of memory");
    tml_dataset *cal = NULL;
    if (!st) st = tml_dataset_from_samples(x->tr, NULL, x->tr->n < 4096 ? x->tr->n : 4096, "fit calibration", &cal);
    tml_finetune ft;
    tml_finetune_default(&ft);
    ft.seed = x->o->seed;
    ft.cancel = x->o->cancel;
    if (!st) st = tml_plan_apply(m, &d, &ft, cal);
    tml_dataset_free(cal);
    if (!st) st = measure(x, p, m, x->n_quick, c);
    if (!st) st = with_gap(x, p, c);
    tml_model_free(m);
    tml_plan_free(&d);
    if (!st) {
#ifdef _OPENMP
#pragma omp atomic
#endif
        x->evals++;
    }
    return st;
}

/* ---- greedy descent --------------------------------------------------------------------- */

/* Sparsity moves of one, two and three steps: a sparse form pays for its
 * index bytes only past some sparsity (with 3-bit sharing, past ~70%), so a
 * single step can look useless where three are not. */
enum { MOVE_FILTERS = 0, MOVE_SPARSITY, MOVE_SPARSITY2, MOVE_SPARSITY3, MOVE_BITS, MOVE_QBITS, MOVE_FORM, N_MOVES };
static const char *const move_names[N_MOVES] = {"filters", "sparsity", "sparsity x2", "sparsity x3", "bits",
                                                "int weight bits", "weight forms by size"};
#define KINDS_SPARSITY (7u << MOVE_SPARSITY)
#define KIND_FILTERS (1u << MOVE_FILTERS)
#define KIND_BITS (1u << MOVE_BITS)
#define KIND_FORM (1u << MOVE_FORM)
#define KIND_QBITS (1u << MOVE_QBITS)
#define MIN_BITS 3

/* Variant of the move set: which kinds are allowed (filters also when RAM is over). */
typedef struct variant {
    const char *name;
    unsigned kinds;       /* 1 << MOVE_* */
    unsigned ram_kinds;   /* extra kinds allowed while RAM misses */
} variant;

static const variant variants[] = {
    {"greedy all", KIND_FILTERS | KINDS_SPARSITY | KIND_BITS | KIND_QBITS | KIND_FORM, 0u},
    {"greedy no-sharing", KIND_FILTERS | KINDS_SPARSITY | KIND_QBITS | KIND_FORM, 0u},
    {"greedy sparse+sharing", KINDS_SPARSITY | KIND_BITS | KIND_FORM, KIND_FILTERS},
};
#define N_VARIANTS ((int)(sizeof variants / sizeof variants[0]))

/* Applies move (layer li, kind k) to p; 0 if it does not apply. fine: the
 * finer moves of a descent's last step (half the filters, 0.775 of the weights
 * kept, packed widths 8 -> 6 -> 4 -> 3 -> 2), where the whole move would
 * leave much of the flash budget unused. */
static int move(tml_plan *p, int li, int k, int fine)
{
    tml_plan_layer *l = &p->layers[li];
    const double fstep = fine ? FILTER_STEP / 2 : FILTER_STEP, keep = fine ? SPARSE_KEEP_FINE : SPARSE_KEEP;
    if (k == MOVE_FORM) { /* the whole model: every layer's weights in its smallest form */
        if (li != 0 || p->form_size) return 0;
        p->form_size = 1;
        return 1;
    }
    if (k == MOVE_FILTERS) {
        if (l->filters + fstep > FILTER_MAX + 1e-9) return 0;
        l->filters += fstep;
        return 1;
    }
    if (k >= MOVE_SPARSITY && k <= MOVE_SPARSITY3) {
        double s = l->sparsity;
        for (int i = 0; i <= k - MOVE_SPARSITY; i++) s = 1.0 - (1.0 - s) * keep;
        if (s > SPARSE_MAX) return 0;
        l->sparsity = floor(s * 1e4 + 0.5) / 1e4;
        return 1;
    }
    if (k == MOVE_QBITS) { /* packed int weights: 8 -> 4 -> 2 bits, not with sharing */
        if (l->bits || l->qbits == 2) return 0;
        if (fine) /* 3-bit weights take 3-bit indices, 6-bit ones 6 (the identity codebook's forms) */
            l->qbits = l->qbits == 0 ? 6 : l->qbits > 4 ? 4 : l->qbits - 1;
        else
            l->qbits = l->qbits == 0 ? 4 : l->qbits > 2 && l->qbits <= 4 ? 2 : 4;
        return 1;
    }
    if (l->qbits || l->bits == MIN_BITS) return 0;
    l->bits = l->bits == 0 ? 5 : l->bits - 1;
    return 1;
}

typedef struct step {
    tml_plan plan;
    tml_fit_cost cost;
} step;

typedef struct path {
    step *s;
    int n;
    int fits;
    const variant *v;
    char name[80];
    int compiled;           /* its fitting plan was compiled for the target: */
    int64_t compiled_gap;   /* the compiled flash less the exporter's estimate (may be < 0) */
} path;

static void path_free(path *p)
{
    for (int i = 0; i < p->n; i++) tml_plan_free(&p->s[i].plan);
    free(p->s);
    p->s = NULL;
    p->n = 0;
}

static tml_status path_push(path *p, const tml_plan *plan, const tml_fit_cost *c)
{
    step *s = realloc(p->s, sizeof *s * (size_t)(p->n + 1));
    if (!s) return tml_error(TML_ERR_NOMEM, "out of memory");
    p->s = s;
    tml_status st = plan_copy(&p->s[p->n].plan, plan);
    if (st) return st;
    p->s[p->n++].cost = *c;
    return TML_OK;
}

/* The quick measure of every plan tries[j] with ok[j] (from base when it has a
 * model), in parallel; ok[j] cleared where it failed. The first failure, or
 * TML_ERR_INTERRUPTED once cancelled. */
static tml_status measure_all(fit_ctx *x, const tbase *base, tml_plan *tries, tml_fit_cost *tc, int *ok, int n)
{
    const tml_fit_opts *o = x->o;
    tml_status first = TML_OK;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(o->jobs > 0 ? o->jobs : 1)
#endif
    for (int j = 0; j < n; j++) {
        if (!ok[j] || (o->cancel && *o->cancel)) continue;
        tml_status js = base->m ? quick_from(x, base, &tries[j], &tc[j]) : quick(x, &tries[j], &tc[j]);
        if (js) {
#ifdef _OPENMP
#pragma omp critical(tml_fit_err)
#endif
            if (!first) first = js;
            ok[j] = 0;
        }
    }
    if (o->cancel && *o->cancel) return tml_error(TML_ERR_INTERRUPTED, "fit interrupted");
    return first;
}

/* Descends from `start` with the moves of out->v until the plan fits the
 * budgets of o (x->o, or a tighter copy), appending the steps to out. */
static tml_status descend(fit_ctx *x, path *out, const tml_plan *start, int *steps, const tml_fit_opts *o)
{
    const variant *v = out->v;
    out->fits = 0;
    int widened = 0;
    /* the last step: a move that fits but leaves more than FINE_SLACK of the flash unused is
     * kept aside (coarse) and the descent goes on from the plan before it with the fine moves */
    int fine = 0;
    tml_plan coarse = {0};
    tml_fit_cost coarse_c = {0};
    tml_plan cur;
    tml_status st = plan_copy(&cur, start);
    if (st) return st;
    tml_fit_cost cc;
    tbase base = {0};
    st = quick(x, &cur, &cc);
    if (!st) st = path_push(out, &cur, &cc);
    /* moves j < nm: (layer j / N_MOVES, kind j % N_MOVES); in the fine last step also
     * j >= nm: the same kinds' fine moves (layer (j - nm) / N_MOVES) */
    int nl = cur.n_layers, nm = nl * N_MOVES;
    tml_plan *tries = calloc((size_t)(2 * nm), sizeof *tries);
    tml_fit_cost *tc = calloc((size_t)(2 * nm), sizeof *tc);
    int *ok = calloc((size_t)(2 * nm), sizeof *ok);
    if (!st && (!tries || !tc || !ok)) st = tml_error(TML_ERR_NOMEM, "out of memory");
    for (int it = 0; !st && it < MAX_STEPS; it++) {
        double mv[3];
        double miss = tml_fit_miss(o, &cc, mv);
        if (miss <= 0) {
            out->fits = 1;
            break;
        }
        /* a time budget bounds the descent too: it stops at 60% of it (fine-tuning needs the
         * rest), the first one at 80% (without a fitting plan the rest is of no use) */
        if (o->time_budget_s > 0 && now_s() - x->t0 > x->stop_at * o->time_budget_s) {
            progress(x, "search", it + 1, 0, "%s: %.0f%% of the time budget gone: stop", out->name, 100 * x->stop_at);
#ifdef _OPENMP
#pragma omp atomic
#endif
            x->cut++;
            break;
        }
        /* far from the original: the tuned descent (moves measured from a short fine-tune of
         * the current plan, made again when the moves since have cost BASE_GAP) */
        if (x->btr && !fine && cc.val_acc < (base.m ? base.acc : x->quick0) - BASE_GAP) {
            progress(x, "search", it + 1, 0, "%s: quick top-1 %.1f%%: moves measured from a short fine-tune from here",
                     out->name, 100 * cc.val_acc);
            st = tbase_make(x, &cur, &base);
            if (!st) st = quick_from(x, &base, &cur, &cc);
            if (st) break;
            base.acc = cc.val_acc;
            miss = tml_fit_miss(o, &cc, mv);
            if (miss <= 0) {
                out->fits = 1;
                break;
            }
        }
        unsigned kinds = widened ? (1u << N_MOVES) - 1 : v->kinds | (mv[1] > 0 ? v->ram_kinds : 0u);
        tml_status first = TML_OK;
        const int nj = fine ? 2 * nm : nm;
        for (int j = 0; j < nj; j++) {
            ok[j] = 0;
            tml_plan_free(&tries[j]);
            if (!(kinds & (1u << (j % N_MOVES)))) continue;
            /* weight sharing and the weight forms have no finer move */
            if (j >= nm && (j % N_MOVES == MOVE_BITS || j % N_MOVES == MOVE_FORM)) continue;
            if (plan_copy(&tries[j], &cur)) {
                first = TML_ERR_NOMEM;
                continue;
            }
            ok[j] = !(j % N_MOVES == MOVE_FILTERS && x->fixed && x->fixed[(j % nm) / N_MOVES]) &&
                    move(&tries[j], (j % nm) / N_MOVES, j % N_MOVES, j >= nm) &&
                    (j < nm || !plan_equal(&tries[j], &tries[j - nm]) || !ok[j - nm]);
        }
        if (first) {
            st = tml_error(first, "out of memory");
            break;
        }
        if ((st = measure_all(x, &base, tries, tc, ok, nj))) break;
        /* RAM over and no move lowers it: no plan down this path can fit */
        if (mv[1] > 0) {
            int lowers = 0;
            for (int j = 0; j < nj; j++) lowers |= ok[j] && tc[j].ram < cc.ram;
            if (!lowers) {
                progress(x, "search", it + 1, 0, "%s: RAM %lld B over and no move lowers it: stop", out->name,
                         (long long)cc.ram);
                break;
            }
        }
        int best = -1;
        double bv = 0;
        for (int j = 0; j < nj; j++) {
            if (!ok[j]) continue;
            /* a kind allowed only for RAM is judged on the RAM it saves */
            int ram_only = !(v->kinds & (1u << (j % N_MOVES)));
            double gain = ram_only ? (double)(cc.ram - tc[j].ram) / (double)o->ram
                                   : miss - tml_fit_miss(o, &tc[j], NULL);
            if (gain <= 1e-12) continue;
            double dl = tc[j].val_loss - cc.val_loss;
            /* loss changes below the noise of the quick measure count as that noise:
             * among (nearly) free moves the one that saves most wins */
            double val = gain / (dl > LOSS_NOISE ? dl : LOSS_NOISE);
            if (best < 0 || val > bv) {
                best = j;
                bv = val;
            }
        }
        if (best < 0 && !widened && kinds != (1u << N_MOVES) - 1) {
            /* a dead end of this variant's moves: go on with every kind */
            widened = 1;
            progress(x, "search", it + 1, 0, "%s: no move of its kinds helps: every kind from here", out->name);
            continue;
        }
        if (best < 0) break; /* no move helps: nothing more to try */
        if (!fine && tml_fit_miss(o, &tc[best], NULL) <= 0 && (double)(o->flash - tc[best].flash) > FINE_SLACK * (double)o->flash) {
            fine = 1;
            coarse = tries[best];
            coarse_c = tc[best];
            tries[best].layers = NULL;
            tries[best].n_layers = 0;
            progress(x, "search", it + 1, 0,
                     "%s: step %d %s %s fits with %lld B of flash unused: the fine moves from the plan before it",
                     out->name, it + 1, coarse.layers[(best % nm) / N_MOVES].name, move_names[best % N_MOVES],
                     (long long)(o->flash - coarse_c.flash));
            continue;
        }
        tml_plan_free(&cur);
        cur = tries[best];
        tries[best].layers = NULL;
        tries[best].n_layers = 0;
        cc = tc[best];
        (*steps)++;
        st = path_push(out, &cur, &cc);
        progress(x, "search", it + 1, 0, "%s: step %d %s %s%s -> flash %lld RAM %lld, quick val top-1 %.2f%%", out->name,
                 it + 1, cur.layers[(best % nm) / N_MOVES].name, best >= nm ? "fine " : "", move_names[best % N_MOVES], (long long)cc.flash,
                 (long long)cc.ram, 100 * cc.val_acc);
    }
    if (!st && fine) {
        /* the fine moves' plan, unless it does not fit or the whole move's plan lost clearly less
         * on the quick measure (the same base measured both) */
        int fits = tml_fit_miss(o, &cc, NULL) <= 0;
        if (fits && !(coarse_c.val_loss < cc.val_loss - LOSS_NOISE))
            progress(x, "search", 0, 0, "%s: the fine moves' plan: flash %lld, quick val top-1 %.2f%% (the whole move's: %lld, %.2f%%)",
                     out->name, (long long)cc.flash, 100 * cc.val_acc, (long long)coarse_c.flash, 100 * coarse_c.val_acc);
        if (!fits || coarse_c.val_loss < cc.val_loss - LOSS_NOISE) {
            progress(x, "search", 0, 0, "%s: the whole last move instead (%s): flash %lld, quick val top-1 %.2f%%",
                     out->name, fits ? "it lost less" : "the fine moves did not fit", (long long)coarse_c.flash,
                     100 * coarse_c.val_acc);
            tml_plan_free(&cur);
            cur = coarse;
            coarse.layers = NULL;
            cc = coarse_c;
            (*steps)++;
            st = path_push(out, &cur, &cc);
        }
    }
    tml_plan_free(&coarse);
    if (!st && tml_fit_miss(o, &cc, NULL) <= 0) out->fits = 1;
    tbase_free(&base);
    for (int j = 0; tries && j < 2 * nm; j++) tml_plan_free(&tries[j]);
    free(tries);
    free(tc);
    free(ok);
    tml_plan_free(&cur);
    return st;
}

/* Which layers' filters the structured pruner can remove: a dry run per
 * layer on a copy of the model (one filter in eight). A layer whose outputs
 * meet another's in a residual add keeps them all, so its filter moves would
 * be measured to no effect at every step, and a structured start from it
 * would repeat the plain descent (resnet8's res3_conv2, its biggest layer). */
static tml_status fixed_layers(fit_ctx *x, const tml_plan *p)
{
    x->fixed = calloc((size_t)(p->n_layers ? p->n_layers : 1), 1);
    if (!x->fixed) return tml_error(TML_ERR_NOMEM, "out of memory");
    char names[400] = "";
    for (int i = 0; i < p->n_layers; i++) {
        tml_model *c = tml_model_clone(x->m);
        if (!c) return tml_error(TML_ERR_NOMEM, "out of memory");
        tml_layer_target t = {.name = p->layers[i].name, .sparsity = FILTER_STEP};
        tml_prune_spec s = {.n_targets = 1, .targets = &t, .structured = 1, .norm = TML_NORM_L1};
        tml_prune_report rep;
        tml_status st = tml_prune_structured(c, &s, &rep);
        tml_model_free(c);
        if (st) return st;
        int removed = 0;
        for (int j = 0; j < rep.n_layers; j++)
            if (strcmp(rep.layers[j].name, p->layers[i].name) == 0) removed = rep.layers[j].removed;
        tml_prune_report_free(&rep);
        x->fixed[i] = removed <= 0;
        size_t k = strlen(names);
        if (x->fixed[i] && k < sizeof names - 40)
            snprintf(names + k, sizeof names - k, "%s%.32s", k ? ", " : "", p->layers[i].name);
    }
    if (names[0]) progress(x, "search", 0, 0, "filters that cannot be removed (kept by the graph): %s", names);
    return TML_OK;
}

/* Structured starts: untrained, sparsity looks free and filter removal does
 * not, so the descent alone never removes the filters (neurons) of the big
 * layers, although that shrinks the next layer, the per-channel constants
 * and the sparse index bytes at once and training recovers most of it.
 * Descents that start with 1/2 or 3/4 of the filters of the two layers with
 * the most weights removed (and both at once) give the screening those plans
 * to compare. The layer feeding the model output keeps its filters (classes).
 * starts[0] is the uncompressed plan; the names are suffixes of the path names. */
#define MAX_STRUCT_STARTS 5
#define MAX_PATHS (N_VARIANTS + MAX_STRUCT_STARTS)
static tml_status structured_starts(const tml_model *m, const tml_plan *start, int enabled, const unsigned char *fixed,
                                    tml_plan starts[1 + MAX_STRUCT_STARTS], char names[][48], int *n)
{
    *n = 0;
    tml_status st = plan_copy(&starts[0], start);
    if (st) return st;
    names[0][0] = 0;
    *n = 1;
    if (!enabled) return TML_OK;
    int top[2] = {-1, -1};
    int64_t topw[2] = {0, 0};
    for (int i = 0; i < start->n_layers; i++)
        for (int j = 0; j < m->n_nodes; j++) {
            const tml_node *nd = &m->nodes[j];
            if (strcmp(nd->name, start->layers[i].name) != 0 || nd->out == m->output || (fixed && fixed[i])) continue;
            int64_t w = tml_tensor_numel(&m->tensors[nd->in[1]]);
            if (w > topw[0]) {
                top[1] = top[0];
                topw[1] = topw[0];
                top[0] = i;
                topw[0] = w;
            } else if (w > topw[1]) {
                top[1] = i;
                topw[1] = w;
            }
        }
    static const double fr[2] = {0.5, 0.75};
    for (int a = 0; a < 2 && top[a] >= 0; a++)
        for (int f = 0; f < 2; f++) {
            if ((st = plan_copy(&starts[*n], start))) return st;
            starts[*n].layers[top[a]].filters = fr[f];
            snprintf(names[*n], 48, ", %.16s -%.0f%%", start->layers[top[a]].name, 100 * fr[f]);
            (*n)++;
        }
    if (top[1] >= 0) {
        if ((st = plan_copy(&starts[*n], start))) return st;
        starts[*n].layers[top[0]].filters = fr[1];
        starts[*n].layers[top[1]].filters = fr[0];
        snprintf(names[*n], 48, ", %.16s -75%% %.16s -50%%", start->layers[top[0]].name, start->layers[top[1]].name);
        (*n)++;
    }
    return TML_OK;
}

/* The exporter's code size is an estimate: the fitting plan of path v is
 * compiled for the target, and where it is over, the descent goes on with
 * the shortfall as slack (up to three times). Run right after the path's
 * descent, so a path that fits by the estimate but not compiled is finished
 * before the time budget goes to the next descent. */
static tml_status compile_check(fit_ctx *x, path *paths, int v, int *n_steps)
{
    const tml_fit_opts *o = x->o;
    tml_status st = TML_OK;
    for (int k = 0; paths[v].fits && !st; k++) {
        step *last = &paths[v].s[paths[v].n - 1];
        int64_t cf = 0, est = last->cost.flash - last->cost.code_gap;
        /* a plan met before (another path's answer) was compiled then */
        int seen = 0;
        for (int u = 0; u < v && !seen; u++)
            seen = paths[u].fits && plan_equal(&paths[u].s[paths[u].n - 1].plan, &last->plan);
        if (seen) break;
        st = compiled_flash(x, &last->plan, &cf);
        if (st) break;
        progress(x, "search", 0, 0, "%s: compiled for the target: flash %lld B (the exporter's estimate %lld B)",
                 paths[v].name, (long long)cf, (long long)est);
        paths[v].compiled = 1;
        paths[v].compiled_gap = cf - est;
        if (cf <= o->flash) break;
        paths[v].fits = 0;
        /* from here on the quick measure adds this gap to the flash of every plan with the
         * same weight-form goal (the other goal keeps its own: a descent that goes on into
         * the smallest forms is not charged the balanced kernels' gap); it grows each time,
         * as cf > budget >= est + the gap so far */
        int f = last->plan.form_size ? 1 : 0;
        int64_t gap = cf - est + 64;
        x->gap[f] = gap > x->gap[f] ? gap : x->gap[f] + 64;
        if (k == 3) break;
        tml_plan from;
        st = plan_copy(&from, &last->plan);
        if (!st) st = descend(x, &paths[v], &from, n_steps, o);
        tml_plan_free(&from);
    }
    return st;
}

/* ---- candidates ---------------------------------------------------------------------------- */

static tml_status add_cand(tml_fit_result *r, const char *origin, const tml_plan *p, const tml_fit_cost *q, int max)
{
    for (int i = 0; i < r->n_cands; i++)
        if (plan_equal(&r->cands[i].plan, p)) return TML_OK;
    if (r->n_cands >= max) return TML_OK;
    tml_fit_cand *c = realloc(r->cands, sizeof *c * (size_t)(r->n_cands + 1));
    if (!c) return tml_error(TML_ERR_NOMEM, "out of memory");
    r->cands = c;
    c = &r->cands[r->n_cands];
    memset(c, 0, sizeof *c);
    c->id = r->n_cands;
    snprintf(c->origin, sizeof c->origin, "%s", origin);
    tml_status st = plan_copy(&c->plan, p);
    if (st) return st;
    c->quick = *q;
    c->final.test_acc = NAN;
    r->n_cands++;
    return TML_OK;
}

/* ---- the search's result, kept in the state so that a resumed run skips it ----------- */

#define SEARCH_FORMAT TML_FIT_SEARCH_FORMAT

static void json_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* 0: a number (null reads as NaN); -1: missing or not a number */
static int json_get(const cJSON *o, const char *k, double *v)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNull(e)) {
        *v = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(e)) return -1;
    *v = e->valuedouble;
    return 0;
}

static int json_int(const cJSON *o, const char *k, int64_t lo, int64_t hi, int64_t *v)
{
    double d;
    if (json_get(o, k, &d) || !(d >= (double)lo && d <= (double)hi) || d != floor(d)) return -1;
    *v = (int64_t)d;
    return 0;
}

static cJSON *cost_json(const tml_fit_cost *c)
{
    cJSON *o = cJSON_CreateObject();
    json_num(o, "flash", (double)c->flash);
    json_num(o, "ram", (double)c->ram);
    json_num(o, "instr", (double)c->instr);
    json_num(o, "code_gap", (double)c->code_gap);
    json_num(o, "val_loss", c->val_loss);
    json_num(o, "val_acc", c->val_acc);
    json_num(o, "test_acc", c->test_acc);
    json_num(o, "pick_acc", c->pick_acc);
    return o;
}

static int cost_read(const cJSON *o, tml_fit_cost *c)
{
    const int64_t big = (int64_t)1 << 52;
    if (!cJSON_IsObject(o)) return -1;
    memset(c, 0, sizeof *c);
    return json_int(o, "flash", 0, big, &c->flash) || json_int(o, "ram", 0, big, &c->ram) ||
           json_int(o, "instr", 0, big, &c->instr) || json_int(o, "code_gap", -big, big, &c->code_gap) ||
           json_get(o, "val_loss", &c->val_loss) || json_get(o, "val_acc", &c->val_acc) ||
           json_get(o, "test_acc", &c->test_acc) || json_get(o, "pick_acc", &c->pick_acc);
}

static cJSON *plan_json(const tml_plan *p)
{
    cJSON *o = cJSON_CreateObject(), *l = cJSON_AddArrayToObject(o, "layers");
    for (int i = 0; i < p->n_layers; i++) {
        const tml_plan_layer *pl = &p->layers[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", pl->name);
        json_num(e, "filters", pl->filters);
        json_num(e, "sparsity", pl->sparsity);
        json_num(e, "bits", pl->bits);
        json_num(e, "qbits", pl->qbits);
        cJSON_AddItemToArray(l, e);
    }
    json_num(o, "agp_steps", p->agp_steps);
    json_num(o, "prune_epochs", p->prune_epochs);
    json_num(o, "cluster_epochs", p->cluster_epochs);
    json_num(o, "cluster_lr", p->cluster_lr);
    json_num(o, "cluster_iters", p->cluster_iters);
    json_num(o, "form_size", p->form_size);
    json_num(o, "calib_samples", (double)p->calib_samples);
    json_num(o, "nearest", p->nearest);
    json_num(o, "keep_nonzero", p->keep_nonzero);
    json_num(o, "float_only", p->float_only);
    json_num(o, "qat_epochs", p->qat_epochs);
    json_num(o, "qat_keep_last", p->qat_keep_last);
    return o;
}

/* p gets the plan of o, whose layers must be those of ref (the model's, in order). */
static int plan_read(const cJSON *o, const tml_plan *ref, tml_plan *p)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "layers");
    if (!cJSON_IsArray(l) || cJSON_GetArraySize(l) != ref->n_layers) return -1;
    if (plan_copy(p, ref)) return -1;
    int64_t v[12];
    int bad = json_int(o, "agp_steps", 0, 1000000, &v[0]) || json_int(o, "prune_epochs", 0, 1000000, &v[1]) ||
              json_int(o, "cluster_epochs", 0, 1000000, &v[2]) || json_int(o, "cluster_iters", 0, 1000000, &v[3]) ||
              json_int(o, "form_size", 0, 1, &v[4]) || json_int(o, "calib_samples", 0, INT64_C(1) << 40, &v[5]) ||
              json_int(o, "nearest", 0, 1, &v[6]) || json_int(o, "keep_nonzero", 0, 1, &v[7]) ||
              json_int(o, "float_only", 0, 1, &v[8]) || json_int(o, "qat_epochs", 0, 1000000, &v[9]) ||
              json_int(o, "qat_keep_last", 0, 1, &v[10]) || json_get(o, "cluster_lr", &p->cluster_lr) ||
              !(p->cluster_lr >= 0 && p->cluster_lr < 1);
    if (!bad) {
        p->agp_steps = (int)v[0];
        p->prune_epochs = (int)v[1];
        p->cluster_epochs = (int)v[2];
        p->cluster_iters = (int)v[3];
        p->form_size = (int)v[4];
        p->calib_samples = v[5];
        p->nearest = (int)v[6];
        p->keep_nonzero = (int)v[7];
        p->float_only = (int)v[8];
        p->qat_epochs = (int)v[9];
        p->qat_keep_last = (int)v[10];
    }
    for (int i = 0; !bad && i < ref->n_layers; i++) {
        const cJSON *e = cJSON_GetArrayItem(l, i);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        tml_plan_layer *pl = &p->layers[i];
        int64_t b, qb;
        bad = !cJSON_IsString(nm) || strcmp(nm->valuestring, ref->layers[i].name) != 0 ||
              json_get(e, "filters", &pl->filters) || !(pl->filters >= 0 && pl->filters < 1) ||
              json_get(e, "sparsity", &pl->sparsity) || !(pl->sparsity >= 0 && pl->sparsity < 1) ||
              json_int(e, "bits", 0, 8, &b) || json_int(e, "qbits", 0, 8, &qb);
        if (!bad) {
            pl->bits = (int)b;
            pl->qbits = (int)qb;
        }
    }
    if (bad) tml_plan_free(p);
    return bad ? -1 : 0;
}

typedef struct search_state {
    int fitting, cut;
    int64_t evals;
} search_state;

static char *search_save(const tml_fit_result *r, const search_state *s)
{
    cJSON *o = cJSON_CreateObject();
    json_num(o, "format", SEARCH_FORMAT);
    json_num(o, "n_steps", r->n_steps);
    json_num(o, "evals", (double)s->evals);
    json_num(o, "budget_stopped", r->budget_stopped);
    json_num(o, "cut", s->cut);
    json_num(o, "closest", r->closest);
    json_num(o, "fitting", s->fitting);
    cJSON *cs = cJSON_AddArrayToObject(o, "candidates");
    for (int i = 0; i < r->n_cands; i++) {
        const tml_fit_cand *c = &r->cands[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "origin", c->origin);
        json_num(e, "screened", c->screened);
        json_num(e, "grown", c->grown);
        cJSON_AddItemToObject(e, "quick", cost_json(&c->quick));
        cJSON_AddItemToObject(e, "screen", cost_json(&c->screen));
        cJSON_AddItemToObject(e, "plan", plan_json(&c->plan));
        cJSON_AddItemToArray(cs, e);
    }
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    return txt;
}

/* r (empty) gets the candidates of a saved search; -1 (r left empty) when the text is
 * not one for this model and this build's search. */
static int search_load(const char *txt, const tml_model *m, tml_fit_result *r, search_state *s)
{
    cJSON *o = cJSON_Parse(txt);
    tml_plan ref = {0};
    int bad = !o || tml_plan_init(&ref, m) != TML_OK;
    int64_t v[7];
    const int maxc = 2 * MAX_PATHS + 2;
    const cJSON *cs = o ? cJSON_GetObjectItemCaseSensitive(o, "candidates") : NULL;
    int nc = cJSON_IsArray(cs) ? cJSON_GetArraySize(cs) : -1;
    bad = bad || json_int(o, "format", SEARCH_FORMAT, SEARCH_FORMAT, &v[0]) || nc < 0 || nc > maxc ||
          json_int(o, "n_steps", 0, INT32_MAX, &v[1]) || json_int(o, "evals", 0, INT64_C(1) << 52, &v[2]) ||
          json_int(o, "budget_stopped", 0, INT32_MAX, &v[3]) || json_int(o, "cut", 0, INT32_MAX, &v[4]) ||
          json_int(o, "closest", -1, nc - 1, &v[5]) || json_int(o, "fitting", 0, nc, &v[6]) ||
          /* as the search leaves it: plans that fit and no closest one, or only the closest */
          !(v[6] > 0 ? v[5] == -1 : v[5] == 0 && nc == 1);
    if (!bad && nc > 0) {
        r->cands = calloc((size_t)nc, sizeof *r->cands);
        bad = !r->cands;
    }
    for (int i = 0; !bad && i < nc; i++) {
        const cJSON *e = cJSON_GetArrayItem(cs, i);
        const cJSON *org = cJSON_GetObjectItemCaseSensitive(e, "origin");
        tml_fit_cand *c = &r->cands[i];
        int64_t f[2];
        bad = !cJSON_IsString(org) || json_int(e, "screened", 0, 1, &f[0]) || json_int(e, "grown", 0, 1, &f[1]) || cost_read(cJSON_GetObjectItemCaseSensitive(e, "quick"), &c->quick) ||
              cost_read(cJSON_GetObjectItemCaseSensitive(e, "screen"), &c->screen) ||
              plan_read(cJSON_GetObjectItemCaseSensitive(e, "plan"), &ref, &c->plan);
        if (bad) break;
        r->n_cands = i + 1;
        c->id = i;
        snprintf(c->origin, sizeof c->origin, "%s", org->valuestring);
        c->screened = (int)f[0];
        c->grown = (int)f[1];
        c->final.test_acc = NAN;
    }
    if (!bad) {
        r->n_steps = (int)v[1];
        s->evals = v[2];
        r->budget_stopped = (int)v[3];
        s->cut = (int)v[4];
        r->closest = (int)v[5];
        s->fitting = (int)v[6];
        if (r->closest >= 0) r->cands[r->closest].final = r->cands[r->closest].quick;
    } else {
        for (int i = 0; i < r->n_cands; i++) tml_plan_free(&r->cands[i].plan);
        free(r->cands);
        r->cands = NULL;
        r->n_cands = 0;
    }
    tml_plan_free(&ref);
    cJSON_Delete(o);
    return bad ? -1 : 0;
}

/* Whether a screened plan still fits: packed int4 / int2 layers are rounded
 * to nearest in the descent, which zeroes most small weights (a sparse form
 * then looks tiny), and adaptively after fine-tuning, which keeps them
 * nonzero: such a plan can grow by half. Over the budget, or grown by more
 * than 512 B past the quick measure (that one passed the compile check,
 * with the compiler's slack), it goes after every plan that fits. */
static int screen_fits(const tml_fit_opts *o, const tml_fit_cand *c)
{
    return c->screened && tml_fit_miss(o, &c->screen, NULL) <= 0 &&
           c->screen.flash <= c->quick.flash - c->quick.code_gap + 512;
}

/* The short distilled fine-tune that ranks the fitting plans: the untrained
 * quick measure cannot tell a plan that training recovers from one it does
 * not (sparsity looks free untrained, filter removal does not), this can.
 * One AGP epoch on the screening samples (20 pruning steps), one centroid
 * epoch on them where the plan shares weights, INT8 as in the final recipe
 * (adaptive rounding for packed int4 / int2); top-1 on the whole validation part. */
static tml_status screen(fit_ctx *x, tml_fit_cand *c)
{
    const tml_fit_opts *o = x->o;
    double t0 = now_s();
    tml_finetune ft;
    tml_finetune_default(&ft);
    ft.seed = o->seed;
    ft.data = x->scr;
    ft.val_samples = 0;
    ft.teacher = o->distill ? x->m : NULL;
    ft.cancel = o->cancel;
    tml_plan p = c->plan;
    p.prune_epochs = 1;
    p.agp_steps = 20;
    p.cluster_epochs = o->cluster_epochs > 0 ? 1 : 0;
    p.qat_epochs = 0;
    tml_model *q = NULL;
    tml_status st = build(x, &p, &ft, &q);
    if (!st) st = measure(x, &c->plan, q, x->n_rank, &c->screen);
    tml_model_free(q);
    if (st) return st;
    c->screened = 1;
    progress(x, "screen", 0, 0, "candidate %d (%s): flash %lld RAM %lld, val top-1 %.2f%% after the short fine-tune, %.0fs%s",
             c->id, c->origin, (long long)c->screen.flash, (long long)c->screen.ram, 100 * c->screen.val_acc,
             now_s() - t0, screen_fits(o, c) ? "" : "; over the budget now: after the plans that fit");
    return TML_OK;
}

/* Growing back. The quick measure counts every unpruned weight of a packed
 * int4 / int2 layer as nonzero (what adaptive rounding keeps at most); after
 * the screening's short fine-tune a plan can come out well under the budget
 * (LeNet-5's run D: the answer 2.6 KB under its quick measure). So where a
 * descent's fitting plan screened `shrink` bytes smaller than its quick
 * measure (less GROW_MARGIN), the descent is run again, with the same moves
 * and the fine last step, from the last of its plans that the flash budget
 * plus that shrink does not hold, to that looser budget: the bytes the
 * fine-tune freed go back to the weights the descent took them from. Its
 * plan is screened too and kept if its screened flash, the compile gap and
 * the margin added, fits the real budget; if not, the descent runs once more
 * to a budget tighter by the overshoot (GROW_TRIES descents at most). Exact
 * as before: the answer is still fine-tuned, compiled and verified. */
static tml_status grow_one(fit_ctx *x, const path *pa, const tml_fit_result *r, int fitting, const tml_fit_cand *fc,
                           tml_fit_cand *g, int *ok, int *n_steps)
{
    const tml_fit_opts *o = x->o;
    *ok = 0;
    const step *last = &pa->s[pa->n - 1];
    int64_t shrink = last->cost.flash - last->cost.code_gap - fc->screen.flash;
    int64_t margin = (int64_t)(GROW_MARGIN * (double)o->flash);
    /* the compile gap of this path's own kernels where its plan was compiled (the quick
     * measure charges every plan the largest gap measured for its weight-form goal) */
    int f = last->plan.form_size ? 1 : 0;
    int64_t gap = pa->compiled ? pa->compiled_gap : x->gap[f];
    /* by how much the quick measure overstates the flash of this path's plans */
    int64_t credit = shrink + x->gap[f] - gap;
    if (credit <= margin || pa->n < 2) return TML_OK;
    tml_fit_cost *cs = malloc(sizeof *cs * (size_t)pa->n);
    if (!cs) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int i = 0; i < pa->n; i++) {
        cs[i] = pa->s[i].cost;
        /* the compile gap as it is now for this plan's weight-form goal */
        cs[i].flash += x->gap[pa->s[i].plan.form_size ? 1 : 0] - cs[i].code_gap;
        cs[i].code_gap = x->gap[pa->s[i].plan.form_size ? 1 : 0];
    }
    /* the earliest of the last steps that the looser budget holds: the descent again from the one before */
    int i0 = tml_fit_grow_back(o, cs, pa->n - 2, credit, margin);
    int from = i0 > 0 ? i0 - 1 : i0 < 0 ? pa->n - 2 : -1;
    free(cs);
    if (from < 0) return TML_OK;
    tml_fit_opts lo = *o;
    lo.flash = o->flash + credit - margin;
    tml_status st = TML_OK;
    for (int t = 0; t < GROW_TRIES && !st && !*ok; t++) {
        path np = {.v = pa->v};
        snprintf(np.name, sizeof np.name, "%.64s, grown", pa->name);
        progress(x, "grow", 0, 0,
                 "%s: screened %lld B under its quick measure, compile gap %lld B (charged %lld): the descent again from its step %d to %lld B",
                 pa->name, (long long)shrink, (long long)gap, (long long)x->gap[f], from, (long long)lo.flash);
        st = descend(x, &np, &pa->s[from].plan, n_steps, &lo);
        const tml_plan *gp = np.n ? &np.s[np.n - 1].plan : NULL;
        int known = !np.fits;
        for (int i = 0; i < fitting && !known; i++) known = plan_equal(&r->cands[i].plan, gp);
        if (!st && known) {
            progress(x, "grow", 0, 0, "%s: no new plan", pa->name);
            path_free(&np);
            break;
        }
        if (!st) {
            memset(g, 0, sizeof *g);
            g->id = -1;
            snprintf(g->origin, sizeof g->origin, "%.64s, grown", pa->name);
            st = plan_copy(&g->plan, gp);
            g->quick = np.s[np.n - 1].cost;
            g->final.test_acc = NAN;
            g->grown = 1;
        }
        path_free(&np);
        if (!st) st = screen(x, g);
        if (st) break;
        tml_fit_cost sc = g->screen;
        sc.flash += gap + margin;
        double mf[3];
        if (tml_fit_miss(o, &sc, mf) <= 0) {
            *ok = 1;
            progress(x, "grow", 0, 0, "%s: grown: screened flash %lld B (+ the compile gap %lld B): a candidate", pa->name,
                     (long long)g->screen.flash, (long long)gap);
        } else {
            progress(x, "grow", 0, 0, "%s: grown plan screened at %lld B (+ the compile gap %lld B): over, not kept",
                     pa->name, (long long)g->screen.flash, (long long)gap);
            tml_plan_free(&g->plan);
            /* once more to a budget tighter by the overshoot (RAM or latency over: no use) */
            if (mf[1] > 0 || mf[2] > 0) break;
            lo.flash -= (int64_t)mf[0] + margin;
            if (lo.flash <= o->flash) break;
        }
    }
    return st;
}

static tml_status tune(fit_ctx *x, tml_fit_cand *c)
{
    const tml_fit_opts *o = x->o;
    double t0 = now_s();
    tml_model *q = NULL;
    tml_status st = TML_OK;
    if (o->lookup) {
#ifdef _OPENMP
#pragma omp critical(tml_fit_cb)
#endif
        st = o->lookup(o->user, c, &q);
        if (st) return st;
    }
    c->resumed = q != NULL;
    if (!q) {
        tml_finetune ft;
        tml_finetune_default(&ft);
        ft.seed = o->seed;
        /* the trainer holds out the same validation part as fit (its split for
         * the same seed): QAT keeps its best epoch on it, never on the test split */
        ft.data = x->all;
        ft.val_samples = x->n_val;
        ft.teacher = o->distill ? x->m : NULL;
        ft.cancel = o->cancel;
        ft.lr = o->lr > 0 ? o->lr : 1e-3;
        ft.lr_constant = o->lr_constant;
        ft.avg = o->avg;
        ft.avg_decay = o->avg_decay;
        ft.avg_from = o->avg_from;
        tml_plan p = c->plan;
        p.prune_epochs = o->epochs;
        p.cluster_epochs = o->cluster_epochs;
        p.qat_epochs = o->qat_epochs;
        /* QAT's last epoch, not the best on validation: the answer is chosen on validation */
        p.qat_keep_last = 1;
        st = build(x, &p, &ft, &q);
        if (st) return st;
    }
    st = measure(x, &c->plan, q, x->n_val, &c->final);
    if (!st && x->n_rank < x->n_val) {
        tml_eval_result er;
        tml_eval_opts eo = {.cancel = o->cancel};
        st = tml_evaluate_samples(q, x->all, x->val + x->n_rank, x->n_val - x->n_rank, &eo, &er);
        if (!st) {
            c->final.pick_acc = er.top1;
            tml_eval_result_free(&er);
        }
    } else if (!st) {
        c->final.pick_acc = c->final.val_acc;
    }
    if (!st && o->test) {
        tml_eval_result er;
        tml_eval_opts eo = {.cancel = o->cancel};
        st = tml_evaluate_samples(q, o->test, NULL, o->test->n, &eo, &er);
        if (!st) {
            c->final.test_acc = er.top1;
            tml_eval_result_free(&er);
        }
    }
    if (st) {
        tml_model_free(q);
        return st;
    }
    c->model = q;
    c->tuned = 1;
    c->seconds = now_s() - t0;
    if (o->store && !c->resumed) {
#ifdef _OPENMP
#pragma omp critical(tml_fit_cb)
#endif
        st = o->store(o->user, c);
    }
    return st;
}

void tml_fit_result_free(tml_fit_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_cands; i++) {
        tml_plan_free(&r->cands[i].plan);
        tml_model_free(r->cands[i].model);
    }
    free(r->cands);
    memset(r, 0, sizeof *r);
}

static tml_status baselines(fit_ctx *x, tml_fit_result *r)
{
    const tml_fit_opts *o = x->o;
    tml_eval_result er;
    tml_eval_opts eo = {.cancel = o->cancel};
    tml_status st = tml_evaluate_samples(x->m, x->all, x->val, x->n_val, &eo, &er);
    if (st) return st;
    r->float_base.val_acc = er.top1;
    r->float_base.val_loss = er.loss;
    tml_eval_result_free(&er);
    r->float_base.test_acc = NAN;
    if (o->test) {
        if ((st = tml_evaluate_samples(x->m, o->test, NULL, o->test->n, &eo, &er))) return st;
        r->float_base.test_acc = er.top1;
        tml_eval_result_free(&er);
    }
    tml_plan p;
    if ((st = tml_plan_init(&p, x->m))) return st;
    tml_finetune ft;
    tml_finetune_default(&ft);
    ft.seed = o->seed;
    tml_model *q = NULL;
    st = build(x, &p, &ft, &q);
    if (!st) st = measure(x, &p, q, x->n_val, &r->int8_base);
    r->int8_base.test_acc = NAN;
    if (!st && o->test) {
        if (!(st = tml_evaluate_samples(q, o->test, NULL, o->test->n, &eo, &er))) {
            r->int8_base.test_acc = er.top1;
            tml_eval_result_free(&er);
        }
    }
    tml_model_free(q);
    tml_plan_free(&p);
    return st;
}

/* Picks the trajectory step whose flash is nearest (in ratio) to `flash`. */
static int nearest_step(const path *p, double flash)
{
    int b = -1;
    double bd = 0;
    for (int i = 0; i < p->n; i++) {
        double d = fabs(log((double)p->s[i].cost.flash / flash));
        if (b < 0 || d < bd) {
            b = i;
            bd = d;
        }
    }
    return b;
}

tml_status tml_fit(const tml_model *m, const tml_fit_opts *o, tml_fit_result *r)
{
    memset(r, 0, sizeof *r);
    r->best = r->closest = -1;
    if (!o || !o->train) return tml_error(TML_ERR_INVALID, "fit needs training data");
    if (o->flash <= 0 || o->ram <= 0) return tml_error(TML_ERR_INVALID, "fit needs a flash and a RAM budget (> 0 bytes)");
    if (o->latency_ms > 0 && !(o->mhz > 0)) return tml_error(TML_ERR_INVALID, "a latency budget needs the clock (MHz > 0)");
    if (tml_model_is_quantized(m)) return tml_error(TML_ERR_UNSUPPORTED, "fit starts from a float model (it quantizes itself)");
    fit_ctx x = {.m = m, .o = o, .all = o->train, .t0 = now_s()};
    int64_t n = o->train->n;
    x.n_val = o->val_samples > 0 ? o->val_samples : 5000;
    if (x.n_val > n / 2) x.n_val = n / 2;
    if (x.n_val < 1) return tml_error(TML_ERR_INVALID, "fit needs more training samples (got %lld)", (long long)n);
    /* two halves: the first ranks (the descent's quick measure, the screening), the second
     * picks the answer among the fine-tuned candidates (chosen on the data that ranked them,
     * the answer's validation top-1 was optimistic: 0.24 points below int8 there, 0.95 on test) */
    x.n_rank = x.n_val >= 2 ? x.n_val / 2 : x.n_val;
    x.n_quick = o->quick_samples > 0 && o->quick_samples < x.n_rank ? o->quick_samples : x.n_rank;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    if (!idx) return tml_error(TML_ERR_NOMEM, "out of memory");
    /* the trainer's own split for this seed: a model trained with it never saw the validation part */
    tml_train_split(n, o->seed, idx);
    x.val = idx;
    tml_status st = tml_samples_subset(o->train, idx + x.n_val, n - x.n_val, &x.tr);
    path paths[MAX_PATHS];
    memset(paths, 0, sizeof paths);
    int n_paths = 0;
    tml_plan start = {0};
    if (!st && o->screen_samples > 0) {
        int64_t ns = o->screen_samples < x.tr->n ? o->screen_samples : x.tr->n;
        st = tml_samples_subset(o->train, idx + x.n_val, ns, &x.scr);
    }
    if (!st) st = baselines(&x, r);
    if (!st)
        progress(&x, "baseline", 1, 1, "float val top-1 %.2f%%; int8 val top-1 %.2f%%, flash %lld B, RAM %lld B",
                 100 * r->float_base.val_acc, 100 * r->int8_base.val_acc, (long long)r->int8_base.flash,
                 (long long)r->int8_base.ram);
    if (!st) st = tml_plan_init(&start, m);
    if (!st && x.scr) {
        /* the tuned descent: its short fine-tunes' samples, and where it takes over */
        int64_t nb = BASE_SAMPLES < x.tr->n ? BASE_SAMPLES : x.tr->n;
        st = tml_samples_subset(o->train, idx + x.n_val, nb, &x.btr);
        tml_fit_cost c0 = {0};
        if (!st) st = quick(&x, &start, &c0);
        x.quick0 = c0.val_acc;
    }
    tml_plan starts[1 + MAX_STRUCT_STARTS];
    char start_names[1 + MAX_STRUCT_STARTS][48];
    int n_starts = 0;
    memset(starts, 0, sizeof starts);
    int order[2 * MAX_PATHS + 2], n_order = 0, n_required = 0, fitting = 0;
    const int maxc = o->max_candidates > 0 ? o->max_candidates : 6;
    /* a search this state already ran (the same model, data and search options): its
     * candidates, measured and screened, and on to choosing the finalists */
    if (!st && o->search_lookup) {
        char *txt = NULL;
        search_state ss = {0};
        st = o->search_lookup(o->user, &txt);
        if (!st && txt) {
            if (search_load(txt, m, r, &ss) == 0) {
                fitting = ss.fitting;
                x.evals = ss.evals;
                x.cut = ss.cut;
                r->search_resumed = 1;
                progress(&x, "search", 1, 1, "resumed from the state: %d candidates, %d of them fitting (%d steps then)",
                         r->n_cands, fitting, r->n_steps);
            } else {
                progress(&x, "search", 0, 0, "the state's search is not one for this model and search: searching again");
            }
        }
        free(txt);
        if (r->search_resumed) goto searched;
    }
    /* 2. the descents: each variant from the uncompressed plan; "greedy all"
     * also from the structured starts */
    if (!st) st = fixed_layers(&x, &start);
    if (!st) st = structured_starts(m, &start, o->screen_samples > 0, x.fixed, starts, start_names, &n_starts);
    double first_s = 0; /* the first descent's wall time, compile checks included */
    for (int k = 0; !st && k < N_VARIANTS + n_starts - 1; k++) {
        /* order: greedy all, the structured starts, then the other variants */
        int vi = k < n_starts ? 0 : k - n_starts + 1;
        const tml_plan *sp = k < n_starts ? &starts[k] : &start;
        /* with a time budget, the others only while half of it is left, and only if one
         * as long as the first would end before 60% of it (where a descent stops: an
         * unfinished one gives nothing; resnet8's take 8-15 minutes) */
        double t = now_s() - x.t0;
        if (k > 0 && o->time_budget_s > 0 && (t > 0.5 * o->time_budget_s || t + first_s > 0.6 * o->time_budget_s)) {
            r->budget_stopped++;
            progress(&x, "search", 0, 0, "time budget: no more descents (%d of %d; the first took %.0fs)", k,
                     N_VARIANTS + n_starts - 1, first_s);
            break;
        }
        x.stop_at = k == 0 ? 0.8 : 0.6;
        double t0 = now_s();
        path *pa = &paths[n_paths++];
        pa->v = &variants[vi];
        snprintf(pa->name, sizeof pa->name, "%s%s", variants[vi].name, k < n_starts ? start_names[k] : "");
        st = descend(&x, pa, sp, &r->n_steps, o);
        /* the exporter's code size is an estimate: the plan compiled, and on if it is over */
        if (!st && o->device) st = compile_check(&x, paths, n_paths - 1, &r->n_steps);
        if (k == 0) first_s = now_s() - t0;
    }
    for (int k = 0; k < n_starts; k++) tml_plan_free(&starts[k]);
    /* candidates: each path's fitting plan, then points on the way (the front) */
    for (int v = 0; !st && v < n_paths; v++)
        if (paths[v].fits)
            st = add_cand(r, paths[v].name, &paths[v].s[paths[v].n - 1].plan, &paths[v].s[paths[v].n - 1].cost, MAX_PATHS);
    fitting = r->n_cands;
    if (!st && !fitting) {
        /* nothing fits: the plan that came nearest, by the quick measure */
        double bm = INFINITY;
        int bv = -1, bi = -1;
        for (int v = 0; v < n_paths; v++)
            for (int i = 0; i < paths[v].n; i++) {
                double mm = tml_fit_miss(o, &paths[v].s[i].cost, NULL);
                if (mm < bm) {
                    bm = mm;
                    bv = v;
                    bi = i;
                }
            }
        if (bv >= 0) st = add_cand(r, "closest", &paths[bv].s[bi].plan, &paths[bv].s[bi].cost, 1);
        if (!st && r->n_cands) {
            r->closest = 0;
            r->cands[0].final = r->cands[0].quick;
        }
    }
    /* 3. screening: a short distilled fine-tune of every fitting plan ranks them */
    if (!st && fitting && x.scr && fitting > 1) {
        tml_status first = TML_OK;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(o->jobs > 0 ? o->jobs : 1)
#endif
        for (int i = 0; i < fitting; i++) {
            if (o->cancel && *o->cancel) continue;
            tml_status js = screen(&x, &r->cands[i]);
            if (js) {
#ifdef _OPENMP
#pragma omp critical(tml_fit_err)
#endif
                if (!first) first = js;
            }
        }
        st = first;
        if (!st && o->cancel && *o->cancel) st = tml_error(TML_ERR_INTERRUPTED, "fit interrupted");
    }
    /* 3b. growing back: the descents' plans that screened smaller than their quick measure
     * give their earlier, bigger plans the bytes they freed (screened too; kept if they fit) */
    if (!st && fitting && x.scr && r->cands[0].screened) {
        tml_fit_cand *gs = calloc((size_t)n_paths, sizeof *gs);
        int *gok = calloc((size_t)n_paths, sizeof *gok);
        tml_status first = gs && gok ? TML_OK : tml_error(TML_ERR_NOMEM, "out of memory");
        x.stop_at = 0.6; /* the descents again stop where the others did */
        /* one path at a time (the descent measures its moves in parallel), the best screened
         * first: with a time budget the descents stop at 60% of it */
        int po[MAX_PATHS];
        double pv[MAX_PATHS];
        for (int v = 0; v < n_paths; v++) {
            pv[v] = -1;
            for (int i = 0; paths[v].fits && i < fitting; i++)
                if (plan_equal(&r->cands[i].plan, &paths[v].s[paths[v].n - 1].plan)) pv[v] = r->cands[i].screen.val_acc;
            int k = v;
            while (k > 0 && pv[po[k - 1]] < pv[v]) {
                po[k] = po[k - 1];
                k--;
            }
            po[k] = v;
        }
        for (int pi = 0; pi < n_paths; pi++) {
            int v = po[pi];
            if (first || (o->cancel && *o->cancel) || !paths[v].fits) continue;
            if (o->time_budget_s > 0 && now_s() - x.t0 > x.stop_at * o->time_budget_s) break;
            const tml_plan *lp = &paths[v].s[paths[v].n - 1].plan;
            int ci = -1, dup = 0;
            for (int u = 0; u < v && !dup; u++)
                dup = paths[u].fits && plan_equal(&paths[u].s[paths[u].n - 1].plan, lp);
            for (int i = 0; i < fitting && ci < 0; i++)
                if (plan_equal(&r->cands[i].plan, lp)) ci = i;
            if (dup || ci < 0 || !screen_fits(o, &r->cands[ci])) continue;
            tml_status js = grow_one(&x, &paths[v], r, fitting, &r->cands[ci], &gs[v], &gok[v], &r->n_steps);
            if (js && !first) first = js;
        }
        st = first;
        if (!st && o->cancel && *o->cancel) st = tml_error(TML_ERR_INTERRUPTED, "fit interrupted");
        for (int v = 0; gs && gok && v < n_paths; v++) {
            if (!gok[v]) continue;
            if (!st) {
                int before = r->n_cands;
                st = add_cand(r, gs[v].origin, &gs[v].plan, &gs[v].quick, 2 * MAX_PATHS);
                if (!st && r->n_cands > before) {
                    tml_fit_cand *c = &r->cands[r->n_cands - 1];
                    c->screen = gs[v].screen;
                    c->screened = 1;
                    c->grown = 1;
                }
            }
            tml_plan_free(&gs[v].plan);
        }
        free(gs);
        free(gok);
        if (!st) fitting = r->n_cands;
    }
    if (!st && fitting && paths[0].n > 2) {
        const double mult[2] = {2.0, 4.0};
        for (int k = 0; k < 2 && !st; k++) {
            int i = nearest_step(&paths[0], (double)o->flash * mult[k]);
            char name[48];
            snprintf(name, sizeof name, "front %.0fx flash", mult[k]);
            if (i >= 0 && i < paths[0].n - 1)
                st = add_cand(r, name, &paths[0].s[i].plan, &paths[0].s[i].cost, fitting + 2);
        }
    }
    /* the search done: kept, so that a resumed run goes straight to choosing the finalists
     * (their number and the candidates' are not part of the search) and fine-tuning them */
    if (!st && o->search_store && !(o->cancel && *o->cancel)) {
        search_state ss = {.fitting = fitting, .cut = x.cut, .evals = x.evals};
        char *txt = search_save(r, &ss);
        st = txt ? o->search_store(o->user, txt) : tml_error(TML_ERR_NOMEM, "out of memory");
        free(txt);
    }
searched:
    if (!st && fitting) {
        /* the finalists: the best screened (ties: less flash, then the earlier), else every fitting plan */
        for (int i = 0; i < fitting; i++) order[n_order++] = i;
        for (int a = 1; a < n_order; a++)
            for (int b = a; b > 0; b--) {
                const tml_fit_cand *p = &r->cands[order[b - 1]], *q = &r->cands[order[b]];
                if (!p->screened || !q->screened) break;
                int pf = screen_fits(o, p), qf = screen_fits(o, q);
                int better = qf > pf || (qf == pf && (q->screen.val_acc > p->screen.val_acc ||
                                                      (q->screen.val_acc == p->screen.val_acc && q->quick.flash < p->quick.flash)));
                if (!better) break;
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        int nf = r->cands[0].screened ? (o->finalists > 0 ? o->finalists : 2) : fitting;
        if (nf > fitting) nf = fitting;
        if (nf > maxc) nf = maxc;
        /* grown plans fit by the screening's flash, not the descent's compile check: when
         * they are all the finalists, the best plan of a descent takes the last place */
        int plain = 0;
        for (int i = 0; i < nf; i++) plain |= !r->cands[order[i]].grown;
        for (int i = nf; !plain && nf > 0 && i < fitting; i++)
            if (!r->cands[order[i]].grown) {
                int t = order[nf - 1];
                order[nf - 1] = order[i];
                order[i] = t;
                plain = 1;
            }
        n_order = n_required = nf;
        for (int i = fitting; i < r->n_cands && n_order < maxc; i++) order[n_order++] = i;
        for (int i = 0; i < n_required; i++) r->cands[order[i]].finalist = 1;
    }
    /* 4. fine-tuning, `jobs` at a time: the finalists, then the front as time allows */
    if (!st && fitting) {
        tml_status first = TML_OK;
        int done = 0, nt = n_order;
        double tstart = now_s(), per = 0, tuned_s = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(o->jobs > 0 ? o->jobs : 1)
#endif
        for (int k = 0; k < nt; k++) {
            int i = order[k], skip;
#ifdef _OPENMP
#pragma omp critical(tml_fit_err)
#endif
            {
                skip = first != TML_OK || (o->cancel && *o->cancel);
                /* expected end of this one: now + the mean so far (none known yet: go) */
                if (!skip && o->time_budget_s > 0 && k >= n_required && done > 0 &&
                    now_s() - x.t0 + per > o->time_budget_s) {
                    skip = 1;
                    r->budget_stopped++;
                }
            }
            if (skip) continue;
            progress(&x, "fine-tune", done, nt, "candidate %d (%s): fine-tuning %d + %d + QAT %d epochs", i,
                     r->cands[i].origin, o->epochs, o->cluster_epochs, o->qat_epochs);
            tml_status js = tune(&x, &r->cands[i]);
#ifdef _OPENMP
#pragma omp critical(tml_fit_err)
#endif
            {
                if (js && !first) first = js;
                done++;
                tuned_s += r->cands[i].seconds;
                per = tuned_s / done; /* mean wall time of one candidate */
            }
            if (!js) {
                const tml_fit_cand *c = &r->cands[i];
                double eta = (now_s() - tstart) / done * (double)(nt - done) / (o->jobs > 0 ? o->jobs : 1);
                progress(&x, "fine-tune", done, nt,
                         "candidate %d (%s)%s: flash %lld RAM %lld, val top-1 %.2f%%, %.0fs; ETA %.0fs", i, c->origin,
                         c->resumed ? " resumed" : "", (long long)c->final.flash, (long long)c->final.ram,
                         100 * c->final.val_acc, c->seconds, eta);
            }
        }
        st = first;
        if (!st && o->cancel && *o->cancel) st = tml_error(TML_ERR_INTERRUPTED, "fit interrupted");
    }
    /* 5. the answer */
    if (!st) {
        for (int i = 0; i < r->n_cands; i++) {
            tml_fit_cand *c = &r->cands[i];
            if (!c->tuned) continue;
            double mm = tml_fit_miss(o, &c->final, NULL);
            int drop_ok = o->max_drop < 0 || r->int8_base.val_acc - c->final.val_acc <= o->max_drop + 1e-12;
            c->fits = mm <= 0 && drop_ok;
            /* the best on the validation half that no earlier choice saw; ties: the whole part, less flash */
            const tml_fit_cost *b = r->best >= 0 ? &r->cands[r->best].final : NULL;
            if (c->fits && (!b || c->final.pick_acc > b->pick_acc ||
                            (c->final.pick_acc == b->pick_acc &&
                             (c->final.val_acc > b->val_acc || (c->final.val_acc == b->val_acc && c->final.flash < b->flash)))))
                r->best = i;
        }
        if (r->best < 0 && r->closest < 0) {
            double bm = INFINITY;
            for (int i = 0; i < r->n_cands; i++) {
                tml_fit_cand *c = &r->cands[i];
                if (!c->tuned) continue;
                double score = tml_fit_miss(o, &c->final, NULL) +
                               fmax(0.0, r->int8_base.val_acc - c->final.val_acc - (o->max_drop < 0 ? 1.0 : o->max_drop));
                if (score < bm) {
                    bm = score;
                    r->closest = i;
                }
            }
        }
    }
    r->budget_stopped += x.cut;
    r->quick_evals = x.evals;
    r->seconds = now_s() - x.t0;
    for (int v = 0; v < n_paths; v++) path_free(&paths[v]);
    tml_samples_free(x.scr);
    tml_samples_free(x.btr);
    tml_plan_free(&start);
    for (int i = 0; i < x.n_cache; i++) tml_plan_free(&x.cache[i].plan);
    free(x.cache);
    tml_samples_free(x.tr);
    free(x.fixed);
    free(idx);
    if (st) tml_fit_result_free(r);
    return st;
}
