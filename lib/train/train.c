/*
 * train.c - the training loop: mini-batch SGD/Adam over a model graph with
 * every activation kept for the backward pass, masks for pruned weights,
 * centroid updates for clustered weights, knowledge distillation, checkpoints.
 *
 * One step: gather + augment raw samples, preprocess, forward in topological
 * order (training-mode batch norm and dropout), loss on the logits (a trailing
 * softmax is folded into the loss), backward in reverse order, then the
 * optimizer updates every trainable parameter.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "tinyml/tml_engine.h"
#include "tinyml/tml_ops.h"
#include "tinyml/tml_train.h"
#include "train/fq_internal.h"
#include "train/train_ops.h"

#define STATE_PREFIX "__train/"

typedef struct param {
    int tensor;
    int decay;          /* weight decay applies (conv / dense weights) */
    int64_t numel;      /* elements of the tensor */
    float *grad;        /* (numel) gradient of the dense values */
    int64_t n;          /* elements the optimizer updates: numel, or n_books * k centroids */
    float *value;       /* what the optimizer updates (tensor data or centroids) */
    float *cgrad;       /* (n) centroid gradient, clustered only */
    float *m1, *m2;     /* optimizer state (n) */
    float *avg;         /* (n) weight average of value (tml_train_opts.avg), else NULL */
    uint8_t *mask;      /* (numel) 1 = trainable; NULL when not pruned */
    int clustered;
    int zero_centroid;  /* centroid 0 of each book is the fixed pruned zero */
} param;

struct tml_trainer {
    tml_model *m;
    const tml_samples *data;
    tml_train_opts o;
    int n_params;
    param *params;
    int *param_of;      /* (n_tensors) -> param index or -1 */
    float **act;        /* (n_tensors) (batch, numel) activations */
    float **grad;       /* (n_tensors) gradients of activations */
    uint8_t *written;   /* (n_tensors) gradient written in this backward pass */
    float *tmp;         /* (largest activation) for summing gradients */
    float **bn_mean, **bn_inv; /* (n_nodes) saved batch statistics */
    void *scratch;
    void *wpack;        /* dense weights packed for the GEMM, refilled per forward (the engine's kernel) */
    int64_t *train_idx, n_train;
    int64_t *val_idx, n_val;
    int logits;         /* tensor holding the logits */
    int skip_node;      /* trailing softmax node (folded into the loss) or -1 */
    int epoch;          /* next epoch to run */
    int64_t step;       /* optimizer steps done */
    int64_t avg_n;      /* steps averaged so far (tml_train_opts.avg) */
    double best_val;
    float *x, *xt;      /* (batch, in numel) model input, teacher input */
    int32_t *y;
    int64_t *bidx;
    float *dlogits;
    tml_engine *teacher;
    float *tlogits;
};

/* ---- options ------------------------------------------------------------------------ */

void tml_train_opts_default(tml_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 12;
    o->batch = 64;
    o->lr = NAN; /* chosen by the optimizer */
    o->optim = TML_OPTIM_ADAM;
    o->momentum = 0.9;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->adam_eps = 1e-8;
    o->sched = TML_SCHED_COSINE;
    o->step_epochs = 0;
    o->step_gamma = 0.1;
    o->val_samples = -1;
    o->seed = 1;
    o->label_smoothing = 0.1; /* measured: +0.4 points on lenet300, +0.1 on lenet5 (docs/training.md) */
    o->kd_temperature = 4.0;
    o->kd_alpha = 0.9;
    o->avg_decay = 0.999;
    o->avg_from = 0.75;
}

static double effective_lr(const tml_train_opts *o)
{
    if (!isnan(o->lr)) return o->lr;
    return o->optim == TML_OPTIM_ADAM ? 1e-3 : 0.05;
}

tml_status tml_train_opts_check(const tml_train_opts *o)
{
    if (o->epochs < 1 || o->epochs > 100000) return tml_error(TML_ERR_INVALID, "epochs must be at least 1 (got %d)", o->epochs);
    if (o->batch < 1 || o->batch > 65536) return tml_error(TML_ERR_INVALID, "batch size must be in 1..65536 (got %d)", o->batch);
    double lr = effective_lr(o);
    if (!(lr > 0) || !isfinite(lr) || lr > 10) return tml_error(TML_ERR_INVALID, "learning rate must be in (0, 10] (got %g)", lr);
    if (!(o->momentum >= 0 && o->momentum < 1)) return tml_error(TML_ERR_INVALID, "momentum must be in [0, 1)");
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return tml_error(TML_ERR_INVALID, "Adam betas must be in [0, 1)");
    if (!(o->adam_eps > 0)) return tml_error(TML_ERR_INVALID, "Adam epsilon must be > 0");
    if (!(o->weight_decay >= 0 && o->weight_decay < 1)) return tml_error(TML_ERR_INVALID, "weight decay must be in [0, 1)");
    if (!(o->label_smoothing >= 0 && o->label_smoothing < 1)) return tml_error(TML_ERR_INVALID, "label smoothing must be in [0, 1)");
    if (!(o->warmup_epochs >= 0 && o->warmup_epochs <= o->epochs)) return tml_error(TML_ERR_INVALID, "warm-up must be in [0, epochs]");
    if (o->sched == TML_SCHED_STEP && (o->step_epochs < 1 || !(o->step_gamma > 0 && o->step_gamma <= 1)))
        return tml_error(TML_ERR_INVALID, "the step schedule needs step epochs >= 1 and gamma in (0, 1]");
    if (o->aug_crop_pad < 0 || o->aug_crop_pad > 64) return tml_error(TML_ERR_INVALID, "crop padding must be in 0..64");
    if (o->avg != TML_AVG_NONE && o->avg != TML_AVG_EMA && o->avg != TML_AVG_MEAN)
        return tml_error(TML_ERR_INVALID, "unknown weight averaging %d", (int)o->avg);
    if (o->avg == TML_AVG_EMA && !(o->avg_decay > 0 && o->avg_decay < 1))
        return tml_error(TML_ERR_INVALID, "the weight average's decay must be in (0, 1) (got %g)", o->avg_decay);
    if (o->avg && !(o->avg_from >= 0 && o->avg_from < 1))
        return tml_error(TML_ERR_INVALID, "weight averaging must start at a fraction of training in [0, 1) (got %g)", o->avg_from);
    if (o->teacher && (!(o->kd_temperature > 0) || !(o->kd_alpha >= 0 && o->kd_alpha <= 1)))
        return tml_error(TML_ERR_INVALID, "distillation needs temperature > 0 and alpha in [0, 1]");
    return TML_OK;
}

/* ---- setup ----------------------------------------------------------------------------- */

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tml_train_split(int64_t n, uint64_t seed, int64_t *perm)
{
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    tml_rng r;
    tml_rng_seed(&r, mix(seed, 0x76616c));
    tml_rng_shuffle(&r, perm, n);
}

void tml_trainer_free(tml_trainer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_params; i++) {
        param *p = &t->params[i];
        free(p->grad);
        free(p->cgrad);
        free(p->m1);
        free(p->m2);
        free(p->avg);
        free(p->mask);
    }
    free(t->params);
    free(t->param_of);
    if (t->act)
        for (int i = 0; i < t->m->n_tensors; i++) free(t->act[i]);
    if (t->grad)
        for (int i = 0; i < t->m->n_tensors; i++) free(t->grad[i]);
    free(t->act);
    free(t->grad);
    free(t->written);
    free(t->tmp);
    if (t->bn_mean)
        for (int i = 0; i < t->m->n_nodes; i++) {
            free(t->bn_mean[i]);
            free(t->bn_inv[i]);
        }
    free(t->bn_mean);
    free(t->bn_inv);
    free(t->scratch);
    free(t->wpack);
    free(t->train_idx);
    free(t->val_idx);
    free(t->x);
    free(t->xt);
    free(t->y);
    free(t->bidx);
    free(t->dlogits);
    free(t->tlogits);
    tml_engine_free(t->teacher);
    free(t);
}

static tml_status add_param(tml_trainer *t, int tensor, int decay)
{
    if (t->param_of[tensor] >= 0) return tml_error(TML_ERR_UNSUPPORTED, "tensor '%s' is used by several layers; "
                                                   "training shared weights is not supported", t->m->tensors[tensor].name);
    tml_tensor *w = &t->m->tensors[tensor];
    if (w->dtype != TML_DTYPE_F32) return tml_error(TML_ERR_UNSUPPORTED, "tensor '%s' is %s; only float tensors train",
                                                   w->name, tml_dtype_name(w->dtype));
    param *p = &t->params[t->n_params];
    memset(p, 0, sizeof *p);
    p->tensor = tensor;
    p->decay = decay;
    p->numel = tml_tensor_numel(w);
    p->grad = calloc((size_t)p->numel, sizeof(float));
    if (!p->grad) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (w->cb) {
        tml_codebook *cb = w->cb;
        p->clustered = 1;
        p->n = (int64_t)cb->n_books * cb->k;
        p->value = cb->centroids;
        p->cgrad = calloc((size_t)p->n, sizeof(float));
        if (!p->cgrad) return tml_error(TML_ERR_NOMEM, "out of memory");
        /* a pruned clustered tensor keeps its zeros on centroid 0 */
        p->zero_centroid = w->pruned;
        /* the codebook is the truth: make the dense values agree with it */
        tml_cluster_expand_f32(p->numel, cb->index, cb->centroids, cb->n_books, p->numel / cb->n_books, cb->k, w->data);
    } else {
        p->n = p->numel;
        p->value = w->data;
        if (w->pruned) {
            p->mask = malloc((size_t)p->numel);
            if (!p->mask) return tml_error(TML_ERR_NOMEM, "out of memory");
            const float *d = w->data;
            for (int64_t i = 0; i < p->numel; i++) p->mask[i] = d[i] != 0.0f;
        }
    }
    p->m1 = calloc((size_t)p->n, sizeof(float));
    p->m2 = calloc((size_t)p->n, sizeof(float));
    if (!p->m1 || !p->m2) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (t->o.avg) {
        p->avg = calloc((size_t)p->n, sizeof(float));
        if (!p->avg) return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    t->param_of[tensor] = t->n_params++;
    return TML_OK;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

tml_status tml_trainer_new(tml_model *m, const tml_samples *data, const tml_train_opts *o, tml_trainer **out)
{
    *out = NULL;
    tml_status st = tml_train_opts_check(o);
    if (st) return st;
    if (tml_model_is_quantized(m))
        return tml_error(TML_ERR_UNSUPPORTED, "the model is int8: fine-tune the float model, then quantize it");
    tml_dataset_info info = {0};
    snprintf(info.name, sizeof info.name, "training data");
    info.h = data->h;
    info.w = data->w;
    info.c = data->c;
    info.n_classes = data->n_classes;
    st = tml_check_dataset_fits(m, &info);
    if (st) return st;
    if (data->n < 1) return tml_error(TML_ERR_INVALID, "no training samples");

    tml_trainer *t = calloc(1, sizeof *t);
    if (!t) return tml_error(TML_ERR_NOMEM, "out of memory");
    t->m = m;
    t->data = data;
    t->o = *o;
    t->o.lr = effective_lr(o);
    t->best_val = -1;
    int nt = m->n_tensors, nn = m->n_nodes, B = o->batch;
    t->params = calloc((size_t)(nt ? nt : 1), sizeof(param));
    t->param_of = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    t->act = calloc((size_t)(nt ? nt : 1), sizeof(float *));
    t->grad = calloc((size_t)(nt ? nt : 1), sizeof(float *));
    t->written = calloc((size_t)(nt ? nt : 1), 1);
    t->bn_mean = calloc((size_t)(nn ? nn : 1), sizeof(float *));
    t->bn_inv = calloc((size_t)(nn ? nn : 1), sizeof(float *));
    if (!t->params || !t->param_of || !t->act || !t->grad || !t->written || !t->bn_mean || !t->bn_inv) goto oom;
    for (int i = 0; i < nt; i++) t->param_of[i] = -1;

    /* trailing softmax: the loss takes logits */
    t->logits = m->output;
    t->skip_node = -1;
    int pi = tml_model_producer(m, m->output);
    if (pi >= 0 && m->nodes[pi].op == TML_OP_SOFTMAX) {
        t->skip_node = pi;
        t->logits = m->nodes[pi].in[0];
    }
    int k = (int)tml_tensor_numel(&m->tensors[t->logits]);

    /* trainable parameters */
    for (int i = 0; i < nn; i++) {
        const tml_node *n = &m->nodes[i];
        if (tml_node_has_weights(n)) {
            if ((st = add_param(t, n->in[1], 1))) goto fail;
            if (n->n_in > 2 && n->in[2] >= 0 && (st = add_param(t, n->in[2], 0))) goto fail;
        } else if (n->op == TML_OP_BATCHNORM) {
            /* forward and backward read all four as float, trained or not */
            for (int j = 1; j < 5; j++)
                if (m->tensors[n->in[j]].dtype != TML_DTYPE_F32) {
                    st = tml_error(TML_ERR_UNSUPPORTED, "tensor '%s' is %s; only float models train", m->tensors[n->in[j]].name,
                                   tml_dtype_name(m->tensors[n->in[j]].dtype));
                    goto fail;
                }
            if (!o->freeze_bn && ((st = add_param(t, n->in[1], 0)) || (st = add_param(t, n->in[2], 0)))) goto fail;
            if (o->avg && !o->freeze_bn) {
                /* the running statistics would be those of the last weights, not of the average */
                st = tml_error(TML_ERR_UNSUPPORTED, "weight averaging with batch norm '%s' in training mode: freeze batch "
                               "norm (running statistics) or fold it into the weights first", n->name);
                goto fail;
            }
        }
    }
    /* activation and gradient buffers, batch norm statistics, scratch */
    size_t scratch = 0, largest = 0;
    for (int i = 0; i < nt; i++) {
        const tml_tensor *x = &m->tensors[i];
        if (x->kind != TML_TENSOR_ACT) continue;
        size_t cnt = (size_t)B * (size_t)tml_tensor_numel(x);
        t->act[i] = malloc(sizeof(float) * cnt);
        t->grad[i] = malloc(sizeof(float) * cnt);
        if (!t->act[i] || !t->grad[i]) goto oom;
        largest = max_sz(largest, cnt);
    }
    t->tmp = malloc(sizeof(float) * (largest ? largest : 1));
    if (!t->tmp) goto oom;
    for (int i = 0; i < nn; i++) {
        const tml_node *n = &m->nodes[i];
        tml_window w;
        if (n->op == TML_OP_CONV2D) {
            tml_window_from_node(m, n, B, &w);
            scratch = max_sz(scratch, tml_conv2d_f32_scratch_size(&w));
            scratch = max_sz(scratch, tml_conv2d_f32_bwd_scratch_size(&w));
        } else if (n->op == TML_OP_DEPTHWISE_CONV2D) {
            tml_window_from_node(m, n, B, &w);
            scratch = max_sz(scratch, tml_dwconv2d_f32_bwd_scratch_size(&w));
        } else if (n->op == TML_OP_BATCHNORM) {
            const tml_tensor *x = &m->tensors[n->in[0]];
            int c = x->dims[x->ndim - 1];
            t->bn_mean[i] = malloc(sizeof(float) * (size_t)c);
            t->bn_inv[i] = malloc(sizeof(float) * (size_t)c);
            if (!t->bn_mean[i] || !t->bn_inv[i]) goto oom;
        }
    }
    if (scratch && !(t->scratch = aligned_alloc(64, (scratch + 63) / 64 * 64))) goto oom;
    size_t wpack = 0;
    for (int i = 0; i < nn; i++)
        if (m->nodes[i].op == TML_OP_DENSE) {
            const tml_tensor *wt = &m->tensors[m->nodes[i].in[1]];
            wpack = max_sz(wpack, tml_dense_f32_packed_size(wt->dims[1], wt->dims[0]));
        }
    if (wpack && !(t->wpack = aligned_alloc(64, (wpack + 63) / 64 * 64))) goto oom;
    if (o->fq && (st = tml_fq_bind(o->fq, m, B))) goto fail;
    int64_t in_numel = tml_tensor_numel(&m->tensors[m->input]);
    t->x = malloc(sizeof(float) * (size_t)(B * in_numel));
    t->y = malloc(sizeof(int32_t) * (size_t)B);
    t->bidx = malloc(sizeof(int64_t) * (size_t)B);
    t->dlogits = malloc(sizeof(float) * (size_t)B * (size_t)k);
    if (!t->x || !t->y || !t->bidx || !t->dlogits) goto oom;

    /* teacher */
    if (o->teacher) {
        const tml_model *tm = o->teacher;
        if (tml_model_is_quantized(tm)) {
            st = tml_error(TML_ERR_UNSUPPORTED, "the teacher must be a float model");
            goto fail;
        }
        if ((st = tml_check_dataset_fits(tm, &info))) {
            tml_error_context(st, "teacher");
            goto fail;
        }
        int tk = (int)tml_tensor_numel(&tm->tensors[tm->output]);
        if (tk != k) {
            st = tml_error(TML_ERR_SHAPE, "the teacher has %d outputs, the student %d", tk, k);
            goto fail;
        }
        tml_engine_opts eo = {0};
        if ((st = tml_engine_new(tm, B, &eo, &t->teacher))) goto fail;
        t->xt = malloc(sizeof(float) * (size_t)(B * in_numel));
        t->tlogits = malloc(sizeof(float) * (size_t)B * (size_t)k);
        if (!t->xt || !t->tlogits) goto oom;
    }

    /* validation split: a seeded random subset, the rest trains */
    int64_t nval = o->val_samples < 0 ? 5000 : o->val_samples;
    if (nval > data->n / 2) nval = data->n / 2;
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)data->n);
    if (!perm) goto oom;
    tml_train_split(data->n, o->seed, perm);
    t->n_val = nval;
    t->n_train = data->n - nval;
    t->val_idx = malloc(sizeof(int64_t) * (size_t)(nval ? nval : 1));
    t->train_idx = malloc(sizeof(int64_t) * (size_t)t->n_train);
    if (!t->val_idx || !t->train_idx) {
        free(perm);
        goto oom;
    }
    memcpy(t->val_idx, perm, sizeof(int64_t) * (size_t)nval);
    memcpy(t->train_idx, perm + nval, sizeof(int64_t) * (size_t)t->n_train);
    free(perm);
    *out = t;
    return TML_OK;
oom:
    st = tml_error(TML_ERR_NOMEM, "out of memory setting up training");
fail:
    tml_trainer_free(t);
    return st;
}

/* ---- one step ------------------------------------------------------------------------------ */

static double lr_at(const tml_trainer *t, int64_t step, int64_t steps_per_epoch)
{
    const tml_train_opts *o = &t->o;
    double base = o->lr;
    int64_t total = steps_per_epoch * o->epochs;
    int64_t warm = (int64_t)(o->warmup_epochs * (double)steps_per_epoch);
    if (step < warm) return base * (0.01 + 0.99 * (double)(step + 1) / (double)warm);
    switch (o->sched) {
    case TML_SCHED_COSINE: {
        double frac = total > warm ? (double)(step - warm) / (double)(total - warm) : 0.0;
        return base * 0.5 * (1.0 + cos(M_PI * frac));
    }
    case TML_SCHED_STEP: return base * pow(o->step_gamma, (double)(step / steps_per_epoch / o->step_epochs));
    default: return base;
    }
}

/* Random crop after zero padding and horizontal flip, on raw (unprocessed)
 * values; randomness keyed by (seed, step, sample) so resumed runs agree. */
static void augment(const tml_trainer *t, float *x, int n)
{
    const tml_samples *s = t->data;
    int pad = t->o.aug_crop_pad, h = s->h, w = s->w, c = s->c;
    size_t img = (size_t)h * (size_t)w * (size_t)c;
    for (int i = 0; i < n; i++) {
        tml_rng r;
        tml_rng_seed(&r, mix(mix(t->o.seed, t->step), (uint64_t)i + 0x617567));
        int dy = pad ? (int)tml_rng_below(&r, (uint32_t)(2 * pad + 1)) - pad : 0;
        int dx = pad ? (int)tml_rng_below(&r, (uint32_t)(2 * pad + 1)) - pad : 0;
        int flip = t->o.aug_flip ? (int)tml_rng_below(&r, 2) : 0;
        if (!dy && !dx && !flip) continue;
        float *p = x + img * (size_t)i;
        memcpy(t->tmp, p, sizeof(float) * img);
        for (int yy = 0; yy < h; yy++)
            for (int xx = 0; xx < w; xx++) {
                int sy = yy + dy, sx = flip ? (w - 1 - xx) + dx : xx + dx;
                for (int ch = 0; ch < c; ch++)
                    p[((size_t)yy * w + xx) * c + ch] = (sy >= 0 && sy < h && sx >= 0 && sx < w)
                                                            ? t->tmp[((size_t)sy * w + sx) * c + ch] : 0.0f;
            }
    }
}

/* A parameter as the forward pass sees it: fake-quantized under QAT. */
static const float *pdata(const tml_trainer *t, int id)
{
    const float *q = t->o.fq ? tml_fq_param(t->o.fq, id) : NULL;
    return q ? q : t->m->tensors[id].data;
}

/* The forward pass on t->act[input]; training: update the fake-quantization
 * ranges and record what they clip (QAT). */
static void forward(tml_trainer *t, int B, int training)
{
    tml_model *m = t->m;
    tml_fakequant *fq = t->o.fq;
    if (fq) {
        tml_fq_weights(fq, m);
        tml_fq_act(fq, m->input, t->act[m->input], (int64_t)B * tml_tensor_numel(&m->tensors[m->input]), training);
    }
    for (int i = 0; i < m->n_nodes; i++) {
        if (i == t->skip_node) continue;
        const tml_node *n = &m->nodes[i];
        const float *x = t->act[n->in[0]];
        float *y = t->act[n->out];
        int64_t count = (int64_t)B * tml_tensor_numel(&m->tensors[n->out]);
        const float *b = (n->n_in > 2 && n->in[2] >= 0) ? pdata(t, n->in[2]) : NULL;
        tml_window w;
        switch (n->op) {
        case TML_OP_CONV2D:
            tml_window_from_node(m, n, B, &w);
            if (fq) w.act = TML_ACT_NONE; /* the int8 clamp is applied by the fake quantization */
            tml_conv2d_f32(&w, x, pdata(t, n->in[1]), b, y, t->scratch);
            break;
        case TML_OP_DEPTHWISE_CONV2D:
            tml_window_from_node(m, n, B, &w);
            if (fq) w.act = TML_ACT_NONE;
            tml_dwconv2d_f32(&w, x, pdata(t, n->in[1]), b, y);
            break;
        case TML_OP_DENSE: {
            /* the engine's packed kernel, so that the trained model's outputs
             * equal the engine's bit for bit (a self-distilled model is a
             * fixed point); packing here costs what the unpacked GEMM's own
             * packing did */
            const tml_tensor *wt = &m->tensors[n->in[1]];
            tml_dense_f32_pack(wt->dims[1], wt->dims[0], pdata(t, n->in[1]), t->wpack);
            tml_dense_f32_packed(B, wt->dims[1], wt->dims[0], t->wpack, x, b, fq ? TML_ACT_NONE : n->act, y);
            break;
        }
        case TML_OP_RELU: tml_relu_f32(count, x, y); break;
        case TML_OP_RELU6: tml_relu6_f32(count, x, y); break;
        case TML_OP_MAXPOOL:
            tml_window_from_node(m, n, B, &w);
            tml_maxpool_f32(&w, x, y);
            break;
        case TML_OP_AVGPOOL:
            tml_window_from_node(m, n, B, &w);
            tml_avgpool_f32(&w, x, y);
            break;
        case TML_OP_GLOBAL_AVGPOOL: {
            const tml_tensor *xt = &m->tensors[n->in[0]];
            tml_global_avgpool_f32(B, xt->dims[0] * xt->dims[1], xt->dims[2], x, y);
            break;
        }
        case TML_OP_ADD: tml_add_f32(count, x, t->act[n->in[1]], fq ? TML_ACT_NONE : n->act, y); break;
        case TML_OP_RESHAPE: memcpy(y, x, sizeof(float) * (size_t)count); break;
        case TML_OP_SOFTMAX: {
            const tml_tensor *yt = &m->tensors[n->out];
            int k = yt->dims[yt->ndim - 1];
            tml_softmax_f32((int)(count / k), k, x, y);
            break;
        }
        case TML_OP_BATCHNORM: {
            int c = m->tensors[n->out].dims[m->tensors[n->out].ndim - 1];
            float *g = m->tensors[n->in[1]].data, *be = m->tensors[n->in[2]].data;
            float *rm = m->tensors[n->in[3]].data, *rv = m->tensors[n->in[4]].data;
            if (t->o.freeze_bn) {
                for (int ch = 0; ch < c; ch++) {
                    t->bn_mean[i][ch] = rm[ch];
                    t->bn_inv[i][ch] = (float)(1.0 / sqrt((double)rv[ch] + (double)n->eps));
                }
                tml_batchnorm_f32(count / c, c, x, g, be, rm, rv, n->eps, y);
            } else {
                tml_batchnorm_f32_train(count / c, c, x, g, be, n->eps, TML_BN_DEFAULT_MOMENTUM, rm, rv, t->bn_mean[i],
                                        t->bn_inv[i], y);
            }
            break;
        }
        case TML_OP_DROPOUT:
            tml_dropout_f32_train(count, n->rate, tml_dropout_seed(t->o.seed, i), (uint64_t)t->step, x, y);
            break;
        default: TML_ASSERT(0 && "op not handled by training");
        }
        if (fq) tml_fq_node(fq, m, i, x, n->op == TML_OP_ADD ? t->act[n->in[1]] : NULL, y, B, training);
    }
}

/* Where node input `in` receives its gradient: straight into its buffer the
 * first time in this backward pass, else into tmp to be added (several
 * readers). Returns NULL when no gradient is needed (graph input). */
static float *dest(tml_trainer *t, int in, int *accumulate)
{
    *accumulate = 0;
    if (in == t->m->input || t->m->tensors[in].kind != TML_TENSOR_ACT) return NULL;
    if (!t->written[in]) {
        t->written[in] = 1;
        return t->grad[in];
    }
    *accumulate = 1;
    return t->tmp;
}

static void finish_dest(tml_trainer *t, int in, int accumulate, int64_t count)
{
    if (accumulate) tml_grad_accumulate_f32(count, t->tmp, t->grad[in]);
}

static float *pgrad(tml_trainer *t, int tensor)
{
    if (tensor < 0 || t->param_of[tensor] < 0) return NULL;
    return t->params[t->param_of[tensor]].grad;
}

static void backward(tml_trainer *t, int B)
{
    tml_model *m = t->m;
    memset(t->written, 0, (size_t)m->n_tensors);
    t->written[t->logits] = 1; /* filled by the loss */
    /* parameters of nodes that do not reach the loss get no stale gradient */
    for (int i = 0; i < t->n_params; i++) memset(t->params[i].grad, 0, sizeof(float) * (size_t)t->params[i].numel);
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        if (i == t->skip_node) continue;
        const tml_node *n = &m->nodes[i];
        if (!t->written[n->out]) continue; /* does not reach the loss */
        float *dy = t->grad[n->out];
        /* straight-through: no gradient where the fake quantization clipped */
        if (t->o.fq) tml_fq_grad(t->o.fq, n->out, dy, (int64_t)B * tml_tensor_numel(&m->tensors[n->out]));
        const float *y = t->act[n->out];
        const float *x = t->act[n->in[0]];
        const tml_tensor *xt = &m->tensors[n->in[0]];
        int64_t count = (int64_t)B * tml_tensor_numel(&m->tensors[n->out]);
        int64_t xcount = (int64_t)B * tml_tensor_numel(xt);
        int acc;
        float *dx;
        tml_window w;
        switch (n->op) {
        case TML_OP_CONV2D:
        case TML_OP_DEPTHWISE_CONV2D:
        case TML_OP_DENSE: {
            tml_act_bwd_f32(n->act, count, y, dy, dy);
            const tml_tensor *wt = &m->tensors[n->in[1]];
            float *dw = pgrad(t, n->in[1]);
            float *db = (n->n_in > 2) ? pgrad(t, n->in[2]) : NULL;
            dx = dest(t, n->in[0], &acc);
            const float *wd = pdata(t, n->in[1]); /* the weights the forward used */
            if (n->op == TML_OP_DENSE) {
                tml_dense_f32_bwd(B, wt->dims[1], wt->dims[0], x, wd, dy, dx, dw, db);
            } else {
                tml_window_from_node(m, n, B, &w);
                if (n->op == TML_OP_CONV2D)
                    tml_conv2d_f32_bwd(&w, x, wd, dy, dx, dw, db, t->scratch);
                else
                    tml_dwconv2d_f32_bwd(&w, x, wd, dy, dx, dw, db, t->scratch);
            }
            if (dx) finish_dest(t, n->in[0], acc, xcount);
            break;
        }
        case TML_OP_RELU:
        case TML_OP_RELU6:
            if ((dx = dest(t, n->in[0], &acc))) {
                if (n->op == TML_OP_RELU) tml_relu_bwd_f32(count, y, dy, dx);
                else tml_relu6_bwd_f32(count, y, dy, dx);
                finish_dest(t, n->in[0], acc, xcount);
            }
            break;
        case TML_OP_MAXPOOL:
            if ((dx = dest(t, n->in[0], &acc))) {
                tml_window_from_node(m, n, B, &w);
                tml_maxpool_f32_bwd(&w, x, dy, dx);
                finish_dest(t, n->in[0], acc, xcount);
            }
            break;
        case TML_OP_AVGPOOL:
            if ((dx = dest(t, n->in[0], &acc))) {
                tml_window_from_node(m, n, B, &w);
                tml_avgpool_f32_bwd(&w, dy, dx);
                finish_dest(t, n->in[0], acc, xcount);
            }
            break;
        case TML_OP_GLOBAL_AVGPOOL:
            if ((dx = dest(t, n->in[0], &acc))) {
                tml_global_avgpool_f32_bwd(B, xt->dims[0] * xt->dims[1], xt->dims[2], dy, dx);
                finish_dest(t, n->in[0], acc, xcount);
            }
            break;
        case TML_OP_ADD:
            tml_act_bwd_f32(n->act, count, y, dy, dy);
            for (int j = 0; j < 2; j++) {
                if ((dx = dest(t, n->in[j], &acc))) {
                    memcpy(dx, dy, sizeof(float) * (size_t)count);
                    finish_dest(t, n->in[j], acc, count);
                }
            }
            break;
        case TML_OP_RESHAPE:
            if ((dx = dest(t, n->in[0], &acc))) {
                memcpy(dx, dy, sizeof(float) * (size_t)count);
                finish_dest(t, n->in[0], acc, xcount);
            }
            break;
        case TML_OP_SOFTMAX: {
            const tml_tensor *yt = &m->tensors[n->out];
            int k = yt->dims[yt->ndim - 1];
            if ((dx = dest(t, n->in[0], &acc))) {
                tml_softmax_bwd_f32((int)(count / k), k, y, dy, dx);
                finish_dest(t, n->in[0], acc, xcount);
            }
            break;
        }
        case TML_OP_BATCHNORM: {
            int c = m->tensors[n->out].dims[m->tensors[n->out].ndim - 1];
            const float *g = m->tensors[n->in[1]].data;
            float *dg = pgrad(t, n->in[1]), *dbeta = pgrad(t, n->in[2]);
            dx = dest(t, n->in[0], &acc);
            if (t->o.freeze_bn) {
                /* fixed statistics: a per-channel affine map */
                if (dx)
                    for (int64_t r = 0; r < count; r++) dx[r] = dy[r] * g[r % c] * t->bn_inv[i][r % c];
            } else {
                tml_batchnorm_f32_bwd(count / c, c, x, g, t->bn_mean[i], t->bn_inv[i], dy, dx, dg, dbeta);
            }
            if (dx) finish_dest(t, n->in[0], acc, xcount);
            break;
        }
        case TML_OP_DROPOUT:
            if ((dx = dest(t, n->in[0], &acc))) {
                tml_dropout_f32_bwd(count, n->rate, tml_dropout_seed(t->o.seed, i), (uint64_t)t->step, dy, dx);
                finish_dest(t, n->in[0], acc, xcount);
            }
            break;
        default: TML_ASSERT(0 && "op not handled by training");
        }
    }
}

/* The tensor's weights from the trained values: a clustered layer's shared
 * values expanded, a pruned one's masked weights kept exactly zero. */
static void weights_from_value(const param *p, tml_tensor *w)
{
    if (p->clustered) {
        tml_codebook *cb = w->cb;
        tml_cluster_expand_f32(p->numel, cb->index, cb->centroids, cb->n_books, p->numel / cb->n_books, cb->k, w->data);
    } else if (p->mask) {
        float *d = w->data;
        for (int64_t j = 0; j < p->numel; j++)
            if (!p->mask[j]) d[j] = 0.0f;
    }
}

static void update(tml_trainer *t, double lr)
{
    const tml_train_opts *o = &t->o;
    double b1 = o->beta1, b2 = o->beta2;
    double bc1 = 1.0 - pow(b1, (double)(t->step + 1)), bc2 = 1.0 - pow(b2, (double)(t->step + 1));
    for (int i = 0; i < t->n_params; i++) {
        param *p = &t->params[i];
        tml_tensor *w = &t->m->tensors[p->tensor];
        const float *g = p->grad;
        if (p->mask) tml_grad_mask_f32(p->numel, p->mask, p->grad);
        if (p->clustered) {
            tml_codebook *cb = w->cb;
            tml_cluster_grad_sum(p->numel, cb->index, p->grad, cb->n_books, p->numel / cb->n_books, cb->k, p->cgrad);
            if (p->zero_centroid)
                for (int b = 0; b < cb->n_books; b++) p->cgrad[(size_t)b * (size_t)cb->k] = 0.0f;
            g = p->cgrad;
        }
        float *v = p->value;
        double wd = p->decay ? o->weight_decay : 0.0;
        /* a pruned weight stays zero (masks only narrow): no update, and its
         * moments stay zero instead of decaying into denormals (about 800
         * steps of beta1 = 0.9 from a typical gradient), which cost x86 a
         * microcode assist per operation. The model is bit-identical; a
         * 5-epoch 92% AGP prune of LeNet-5 took 166 -> 152 s of CPU */
        const uint8_t *live = p->clustered ? NULL : p->mask;
        for (int64_t j = 0; j < p->n; j++) {
            if (p->zero_centroid && j % w->cb->k == 0) continue;
            if (live && !live[j]) {
                p->m1[j] = 0.0f;
                if (p->m2) p->m2[j] = 0.0f;
                continue;
            }
            double gj = g[j];
            if (o->optim == TML_OPTIM_SGD) {
                gj += wd * v[j];
                double mom = o->momentum * p->m1[j] + gj;
                p->m1[j] = (float)mom;
                double step = o->nesterov ? gj + o->momentum * mom : mom;
                v[j] = (float)(v[j] - lr * step);
            } else {
                double m1 = b1 * p->m1[j] + (1 - b1) * gj;
                double m2 = b2 * p->m2[j] + (1 - b2) * gj * gj;
                p->m1[j] = (float)m1;
                p->m2[j] = (float)m2;
                double upd = (m1 / bc1) / (sqrt(m2 / bc2) + o->adam_eps);
                v[j] = (float)(v[j] - lr * (upd + wd * v[j]));
            }
        }
        weights_from_value(p, w);
    }
}

/* After a hook changed weights: pruned tensors get (narrower) masks. */
static tml_status refresh_masks(tml_trainer *t)
{
    for (int i = 0; i < t->n_params; i++) {
        param *p = &t->params[i];
        const tml_tensor *w = &t->m->tensors[p->tensor];
        if (p->clustered || !w->pruned) continue;
        if (!p->mask) {
            p->mask = malloc((size_t)p->numel);
            if (!p->mask) return tml_error(TML_ERR_NOMEM, "out of memory");
            memset(p->mask, 1, (size_t)p->numel);
        }
        const float *d = w->data;
        for (int64_t j = 0; j < p->numel; j++) p->mask[j] &= d[j] != 0.0f;
        /* moments of newly masked weights restart from zero */
        for (int64_t j = 0; j < p->numel; j++)
            if (!p->mask[j]) p->m1[j] = p->m2[j] = 0.0f;
        /* a weight pruned while averaging is zero in the average too */
        if (p->avg)
            for (int64_t j = 0; j < p->numel; j++)
                if (!p->mask[j]) p->avg[j] = 0.0f;
    }
    return TML_OK;
}

/* The first optimizer step (counting from 0) whose result is averaged. */
static int64_t avg_first_step(const tml_trainer *t, int64_t total)
{
    int64_t s = (int64_t)ceil(t->o.avg_from * (double)total);
    return s < total ? s : total - 1;
}

/* After optimizer step t->step (just counted): fold the values into the average. */
static void avg_accumulate(tml_trainer *t, int64_t total)
{
    if (!t->o.avg || t->step - 1 < avg_first_step(t, total)) return;
    t->avg_n++;
    double a = t->o.avg == TML_AVG_EMA ? 1.0 - t->o.avg_decay : 1.0 / (double)t->avg_n;
    if (t->avg_n == 1) a = 1.0; /* the average starts from the weights themselves */
    for (int i = 0; i < t->n_params; i++) {
        param *p = &t->params[i];
        const float *v = p->value;
        for (int64_t j = 0; j < p->n; j++) p->avg[j] = (float)(p->avg[j] + a * ((double)v[j] - p->avg[j]));
    }
}

/* The model takes the average (end of training). */
static void avg_apply(tml_trainer *t)
{
    if (!t->o.avg || !t->avg_n) return;
    for (int i = 0; i < t->n_params; i++) {
        param *p = &t->params[i];
        tml_tensor *w = &t->m->tensors[p->tensor];
        memcpy(p->value, p->avg, sizeof(float) * (size_t)p->n);
        weights_from_value(p, w);
    }
}

/* One optimizer step on samples idx[0..n); returns the batch loss, adds correct predictions. */
static double train_step(tml_trainer *t, const int64_t *idx, int n, double lr, int64_t *correct)
{
    tml_model *m = t->m;
    int64_t in_numel = tml_tensor_numel(&m->tensors[m->input]);
    int k = (int)tml_tensor_numel(&m->tensors[t->logits]);
    tml_samples_gather(t->data, idx, n, t->x, t->y);
    if (t->o.aug_crop_pad || t->o.aug_flip) augment(t, t->x, n);
    if (t->teacher) {
        memcpy(t->xt, t->x, sizeof(float) * (size_t)(n * in_numel));
        tml_preproc_apply(&t->o.teacher->meta.pre, n * in_numel, t->data->c, t->xt);
        tml_engine_run(t->teacher, t->xt, n, t->tlogits);
    }
    tml_preproc_apply(&m->meta.pre, n * in_numel, t->data->c, t->x);
    memcpy(t->act[m->input], t->x, sizeof(float) * (size_t)(n * in_numel));
    forward(t, n, 1);
    const float *logits = t->act[t->logits];
    double loss;
    if (t->teacher)
        loss = tml_kd_loss_f32(n, k, logits, t->tlogits, t->y, (float)t->o.kd_temperature, (float)t->o.kd_alpha,
                               (float)t->o.label_smoothing, t->grad[t->logits]);
    else
        loss = tml_softmax_xent_f32(n, k, logits, t->y, (float)t->o.label_smoothing, t->grad[t->logits]);
    *correct += tml_count_correct_f32(n, k, logits, t->y);
    backward(t, n);
    update(t, lr);
    t->step++;
    return loss;
}

tml_status tml_trainer_infer(tml_trainer *t, const float *x, int n, float *out)
{
    if (n < 0 || n > t->o.batch) return tml_error(TML_ERR_INVALID, "batch of %d for a trainer of batch %d", n, t->o.batch);
    tml_model *m = t->m;
    int64_t in_numel = tml_tensor_numel(&m->tensors[m->input]);
    int64_t k = tml_tensor_numel(&m->tensors[t->logits]);
    memcpy(t->act[m->input], x, sizeof(float) * (size_t)(n * in_numel));
    forward(t, n, 0);
    memcpy(out, t->act[t->logits], sizeof(float) * (size_t)(n * k));
    return TML_OK;
}

/* Mean cross-entropy (no smoothing) and top-1 of the trainer's own forward
 * pass over the validation split. */
static tml_status validate_fq(tml_trainer *t, double *loss, double *acc)
{
    tml_model *m = t->m;
    int B = t->o.batch;
    int64_t in_numel = tml_tensor_numel(&m->tensors[m->input]);
    int k = (int)tml_tensor_numel(&m->tensors[t->logits]);
    double lsum = 0.0;
    int64_t correct = 0;
    for (int64_t s = 0; s < t->n_val; s += B) {
        if (t->o.cancel && *t->o.cancel) return tml_error(TML_ERR_INTERRUPTED, "validation interrupted");
        int n = (int)(t->n_val - s < B ? t->n_val - s : B);
        tml_samples_gather(t->data, t->val_idx + s, n, t->x, t->y);
        tml_preproc_apply(&m->meta.pre, n * in_numel, t->data->c, t->x);
        memcpy(t->act[m->input], t->x, sizeof(float) * (size_t)(n * in_numel));
        forward(t, n, 0);
        const float *lg = t->act[t->logits];
        lsum += tml_softmax_xent_f32(n, k, lg, t->y, 0.0f, t->dlogits) * n;
        correct += tml_count_correct_f32(n, k, lg, t->y);
    }
    *loss = lsum / (double)t->n_val;
    *acc = (double)correct / (double)t->n_val;
    return TML_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

tml_status tml_trainer_run(tml_trainer *t)
{
    const tml_train_opts *o = &t->o;
    int B = o->batch;
    int64_t steps = (t->n_train + B - 1) / B;
    for (; t->epoch < o->epochs; t->epoch++) {
        tml_rng r;
        tml_rng_seed(&r, mix(o->seed, (uint64_t)t->epoch + 1));
        /* shuffle a copy that starts from the same order every epoch, so an
         * epoch's order depends only on (seed, epoch) and resume is exact */
        int64_t *order = malloc(sizeof(int64_t) * (size_t)t->n_train);
        if (!order) return tml_error(TML_ERR_NOMEM, "out of memory");
        memcpy(order, t->train_idx, sizeof(int64_t) * (size_t)t->n_train);
        tml_rng_shuffle(&r, order, t->n_train);
        double loss_sum = 0, t0 = now_s(), lr = o->lr;
        int64_t correct = 0, seen = 0;
        for (int64_t s = 0; s < steps; s++) {
            if (o->cancel && *o->cancel) {
                free(order);
                return tml_error(TML_ERR_INTERRUPTED, "training interrupted in epoch %d", t->epoch + 1);
            }
            int n = (int)((t->n_train - s * B) < B ? (t->n_train - s * B) : B);
            lr = lr_at(t, t->step, steps);
            if (o->fq) tml_fq_progress(o->fq, t->step, steps * o->epochs);
            double l = train_step(t, order + s * B, n, lr, &correct);
            if (!isfinite(l)) {
                free(order);
                return tml_error(TML_ERR_INVALID, "the loss diverged (%g) at epoch %d step %lld: lower the learning rate",
                                 l, t->epoch + 1, (long long)s + 1);
            }
            loss_sum += l * n;
            seen += n;
            avg_accumulate(t, steps * o->epochs);
            if (o->hook && o->hook_every > 0 && t->step % o->hook_every == 0) {
                tml_status hs = o->hook(o->user, t->m, t->step, steps * o->epochs);
                if (!hs) hs = refresh_masks(t);
                if (hs) {
                    free(order);
                    return hs;
                }
            }
            if (o->progress)
                o->progress(o->user, t->epoch, s + 1, steps, loss_sum / (double)seen, (double)correct / (double)seen,
                            (double)seen / (now_s() - t0));
        }
        free(order);
        double secs = now_s() - t0;
        if (t->epoch == o->epochs - 1) avg_apply(t); /* validated and checkpointed as the result */
        tml_epoch_info info = {.epoch = t->epoch, .epochs = o->epochs, .lr = lr, .seconds = secs,
                               .train_loss = loss_sum / (double)(seen ? seen : 1),
                               .train_acc = (double)correct / (double)(seen ? seen : 1),
                               .samples_per_s = (double)seen / secs, .val_loss = NAN, .val_acc = NAN};
        if (t->n_val && o->fq) {
            /* the fake-quantized model is what is being trained: validate it */
            tml_status st = validate_fq(t, &info.val_loss, &info.val_acc);
            if (st) return st;
            info.is_best = info.val_acc > t->best_val;
            if (info.is_best) t->best_val = info.val_acc;
        } else if (t->n_val) {
            tml_eval_result er;
            tml_eval_opts eo = {.batch = 256, .cancel = o->cancel};
            tml_status st = tml_evaluate_samples(t->m, t->data, t->val_idx, t->n_val, &eo, &er);
            if (st) return st;
            info.val_loss = er.loss;
            info.val_acc = er.top1;
            tml_eval_result_free(&er);
            info.is_best = er.top1 > t->best_val;
            if (info.is_best) t->best_val = er.top1;
        } else {
            info.is_best = 1;
        }
        if (o->on_epoch) {
            t->epoch++; /* the state exported by the callback resumes after this epoch */
            tml_status st = o->on_epoch(o->user, t, &info);
            t->epoch--;
            if (st) return st;
        }
    }
    return TML_OK;
}

int tml_trainer_epochs_done(const tml_trainer *t) { return t->epoch; }
double tml_trainer_best_val_acc(const tml_trainer *t) { return t->best_val; }

/* ---- checkpoint state ------------------------------------------------------------------------ */

int tml_train_has_state(const tml_model *m)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strncmp(m->tensors[i].name, STATE_PREFIX, strlen(STATE_PREFIX)) == 0) return 1;
    return 0;
}

static cJSON *extra_object(const tml_model *m)
{
    cJSON *o = m->meta.extra ? cJSON_Parse(m->meta.extra) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    return o;
}

static tml_status set_extra(tml_model *m, cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    if (!txt) return tml_error(TML_ERR_NOMEM, "out of memory");
    free(m->meta.extra);
    m->meta.extra = tml_strdup(txt);
    cJSON_free(txt);
    return m->meta.extra ? TML_OK : tml_error(TML_ERR_NOMEM, "out of memory");
}

tml_status tml_train_strip_state(tml_model *m)
{
    /* the "__train/" tensors are read by no node: compaction drops them */
    tml_status st = tml_model_compact(m);
    if (st) return st;
    cJSON *o = extra_object(m);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "train_state");
    st = cJSON_GetArraySize(o) ? set_extra(m, o) : TML_OK;
    if (!cJSON_GetArraySize(o)) {
        free(m->meta.extra);
        m->meta.extra = NULL;
    }
    cJSON_Delete(o);
    return st;
}

tml_status tml_trainer_export_state(const tml_trainer *t, tml_model *ckpt)
{
    for (int i = 0; i < t->n_params; i++) {
        const param *p = &t->params[i];
        const char *pname = t->m->tensors[p->tensor].name;
        for (int j = 0; j < 2; j++) {
            char name[512];
            snprintf(name, sizeof name, STATE_PREFIX "%s/%s", pname, j ? "m2" : "m1");
            int32_t d[1] = {(int32_t)p->n};
            int id = tml_model_add_tensor(ckpt, name, TML_DTYPE_F32, TML_TENSOR_PARAM, 1, d, j ? p->m2 : p->m1);
            if (id < 0) return (tml_status)id;
            ckpt->tensors[id].store_hint = 0; /* exact and fast to write */
        }
        if (p->avg && t->avg_n) {
            char name[512];
            snprintf(name, sizeof name, STATE_PREFIX "%s/avg", pname);
            int32_t d[1] = {(int32_t)p->n};
            int id = tml_model_add_tensor(ckpt, name, TML_DTYPE_F32, TML_TENSOR_PARAM, 1, d, p->avg);
            if (id < 0) return (tml_status)id;
            ckpt->tensors[id].store_hint = 0;
        }
    }
    cJSON *o = extra_object(ckpt);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "train_state");
    cJSON *s = cJSON_AddObjectToObject(o, "train_state");
    cJSON_AddNumberToObject(s, "epoch", t->epoch);
    cJSON_AddNumberToObject(s, "step", (double)t->step);
    cJSON_AddNumberToObject(s, "best_val", t->best_val);
    if (t->avg_n) cJSON_AddNumberToObject(s, "avg_n", (double)t->avg_n);
    cJSON_AddNumberToObject(s, "seed", (double)t->o.seed);
    cJSON_AddNumberToObject(s, "batch", t->o.batch);
    cJSON_AddNumberToObject(s, "epochs", t->o.epochs);
    cJSON_AddNumberToObject(s, "lr", t->o.lr);
    cJSON_AddStringToObject(s, "optimizer", t->o.optim == TML_OPTIM_ADAM ? "adam" : "sgd");
    tml_status st = set_extra(ckpt, o);
    cJSON_Delete(o);
    return st;
}

tml_status tml_trainer_resume(tml_trainer *t, const tml_model *ckpt)
{
    cJSON *o = extra_object(ckpt);
    cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "train_state");
    tml_status st = TML_OK;
    if (!cJSON_IsObject(s)) {
        st = tml_error(TML_ERR_INVALID, "the checkpoint has no training state (use the .last.tmf checkpoint)");
        goto out;
    }
#define NUM(key) (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, key)) ? cJSON_GetObjectItemCaseSensitive(s, key)->valuedouble : -1)
    /* Compared as doubles: the state is JSON, whose numbers come back as doubles
     * with ~15 significant digits (cJSON), so a seed above that is rounded and,
     * like the learning rate, matches within a relative tolerance; converting an
     * arbitrary stored double to an integer type would be undefined. */
    if (fabs(NUM("seed") - (double)t->o.seed) > 1e-15 * (double)t->o.seed || NUM("batch") != (double)t->o.batch ||
        fabs(NUM("lr") - t->o.lr) > 1e-12 * t->o.lr || NUM("epochs") != (double)t->o.epochs) {
        st = tml_error(TML_ERR_INVALID, "the checkpoint was trained with --seed %.0f --batch %.0f --lr %g --epochs %.0f; "
                       "resume with the same options", NUM("seed"), NUM("batch"), NUM("lr"), NUM("epochs"));
        goto out;
    }
    double epoch = NUM("epoch"), step = NUM("step");
    if (!(epoch >= 0 && epoch <= t->o.epochs) || !(step >= 0 && step < 9e18)) {
        st = tml_error(TML_ERR_FORMAT, "bad training state in the checkpoint");
        goto out;
    }
    t->epoch = (int)epoch;
    t->step = (int64_t)step;
    t->best_val = NUM("best_val");
    double avg_n = NUM("avg_n");
    t->avg_n = t->o.avg && avg_n > 0 && avg_n < 9e18 ? (int64_t)avg_n : 0;
    if (t->o.avg && !t->avg_n &&
        t->step > avg_first_step(t, (t->n_train + t->o.batch - 1) / t->o.batch * t->o.epochs)) {
        st = tml_error(TML_ERR_INVALID, "the checkpoint is past the start of weight averaging but holds no average: "
                       "resume with the same options");
        goto out;
    }
#undef NUM
    for (int i = 0; i < t->n_params; i++) {
        param *p = &t->params[i];
        const char *pname = t->m->tensors[p->tensor].name;
        for (int j = 0; j < 2; j++) {
            char name[512];
            snprintf(name, sizeof name, STATE_PREFIX "%s/%s", pname, j ? "m2" : "m1");
            int id = tml_model_find_tensor(ckpt, name);
            if (id < 0 || tml_tensor_numel(&ckpt->tensors[id]) != p->n || ckpt->tensors[id].dtype != TML_DTYPE_F32) {
                st = tml_error(TML_ERR_FORMAT, "checkpoint optimizer state '%s' is missing or has the wrong size", name);
                goto out;
            }
            memcpy(j ? p->m2 : p->m1, ckpt->tensors[id].data, sizeof(float) * (size_t)p->n);
        }
        if (t->avg_n) {
            char name[512];
            snprintf(name, sizeof name, STATE_PREFIX "%s/avg", pname);
            int id = tml_model_find_tensor(ckpt, name);
            if (id < 0 || tml_tensor_numel(&ckpt->tensors[id]) != p->n || ckpt->tensors[id].dtype != TML_DTYPE_F32) {
                st = tml_error(TML_ERR_FORMAT, "checkpoint weight average '%s' is missing or has the wrong size", name);
                goto out;
            }
            memcpy(p->avg, ckpt->tensors[id].data, sizeof(float) * (size_t)p->n);
        }
    }
out:
    cJSON_Delete(o);
    return st;
}
