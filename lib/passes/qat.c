/*
 * qat.c - the quantization-aware training recipe (tml_qat.h).
 *
 *   1. fold a copy of the model (batch norm into the convs, ReLUs into clamps,
 *      dropout removed): the graph the int8 engine runs, so the training sees
 *      exactly its layers;
 *   2. calibrate it: the initial activation ranges (tml_quant_opts.method);
 *      with adaptive rounding (the default), start the latent weights at the
 *      dequantized weights of the PTQ model that adaptive rounding makes
 *      (GPTQ): QAT then starts where the best post-training model is, not
 *      from round-to-nearest, which at 4 bits loses most of what QAT must win
 *      back (LeNet-5 W4A8: 0.86 points nearest, ~0.1 adaptive);
 *   3. fine-tune it with the fake-quantized forward pass (tml_fakequant), the
 *      ranges following a moving average and then frozen; on the labels, or
 *      distilled from a teacher (train.teacher, or the float model itself
 *      with self_distill);
 *   4. tml_quantize() it with the trained ranges as min/max statistics, nearest
 *      rounding and no bias correction: the same weight grid and activation
 *      parameters the fake quantization used, so the int8 model is the one that
 *      was trained (tests/test_qat: equal to the fake-quantized forward within
 *      one quantization step).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tinyml/tml_qat.h"

void tml_qat_opts_default(tml_qat_opts *o)
{
    memset(o, 0, sizeof *o);
    tml_quant_opts_default(&o->quant);
    o->calib.samples = 512;
    tml_train_opts_default(&o->train);
    o->train.epochs = 2;
    o->train.lr = 1e-4;
    o->quant.weight_rounding = TML_ROUND_ADAPTIVE;
    tml_fq_opts_default(&o->fq);
}

/* Latent weights of f := the dequantized weights of q (f quantized with
 * adaptive rounding), for layers without a codebook. */
static void start_from(tml_model *f, const tml_model *q)
{
    for (int i = 0; i < f->n_nodes; i++) {
        const tml_node *n = &f->nodes[i];
        if (!tml_node_has_weights(n)) continue;
        tml_tensor *w = &f->tensors[n->in[1]];
        const tml_tensor *wq = &q->tensors[q->nodes[i].in[1]];
        if (w->cb || wq->dtype != TML_DTYPE_INT8 || wq->q.n < 1) continue;
        const int dw = n->op == TML_OP_DEPTHWISE_CONV2D, oc = dw ? w->dims[3] : w->dims[0];
        const int64_t cnt = tml_tensor_numel(w), per = cnt / oc;
        float *d = w->data;
        const int8_t *qd = wq->data;
        for (int64_t k = 0; k < cnt; k++) {
            const int64_t c = dw ? k % oc : k / per;
            d[k] = (float)qd[k] * wq->q.scale[wq->q.n == 1 ? 0 : c];
        }
    }
}

/* The per-epoch hook of the fine-tuning: remembers the best epoch's model and
 * ranges (keep_best), then calls the caller's hook. */
typedef struct best_ctx {
    const tml_train_opts *user; /* the caller's on_epoch / user */
    int keep;
    tml_model *f;               /* the model being trained */
    tml_fakequant *fq;
    tml_model *best;            /* keep: a copy of f at the best epoch */
    tml_calib best_cal;         /* keep: the ranges at the best epoch */
    int best_epoch;
} best_ctx;

static tml_status best_on_epoch(void *user, tml_trainer *t, const tml_epoch_info *e)
{
    best_ctx *b = user;
    if (e->is_best && !isnan(e->val_acc)) {
        b->best_epoch = e->epoch + 1;
        if (b->keep) {
            tml_model *c = tml_model_clone(b->f);
            if (!c) return tml_error(TML_ERR_NOMEM, "out of memory");
            tml_calib cal = {0};
            tml_status st = tml_fakequant_calib(b->fq, &cal);
            if (st) {
                tml_model_free(c);
                return st;
            }
            tml_model_free(b->best);
            tml_calib_free(&b->best_cal);
            b->best = c;
            b->best_cal = cal;
        }
    }
    return b->user->on_epoch ? b->user->on_epoch(b->user->user, t, e) : TML_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

tml_status tml_qat(const tml_model *m, const tml_samples *train, tml_dataset *calib, const tml_qat_opts *o,
                   tml_model **out, tml_model **out_float, tml_qat_report *rep)
{
    *out = NULL;
    if (out_float) *out_float = NULL;
    tml_qat_report r = {0};
    r.val_acc = NAN;
    double t0 = now_s();
    if (tml_model_is_quantized(m)) return tml_error(TML_ERR_UNSUPPORTED, "the model is already int8: QAT starts from the float model");
    tml_model *f = tml_model_clone(m);
    if (!f) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_calib cal = {0}, trained = {0};
    tml_fakequant *fq = NULL;
    tml_trainer *t = NULL;
    tml_model *q = NULL;
    best_ctx bc = {0};
    tml_status st = tml_fold(f, &r.fold);
    if (st) goto out;
    if (r.fold.bn_left) {
        st = tml_error(TML_ERR_UNSUPPORTED, "%d batch norm(s) could not be folded into a conv/dense; the int8 engine has none",
                       r.fold.bn_left);
        goto out;
    }
    tml_calib_opts co = o->calib;
    co.hessians = o->quant.weight_rounding == TML_ROUND_ADAPTIVE;
    co.sequential = co.hessians ? &o->quant : NULL;
    if ((st = tml_calibrate(f, calib, &co, &cal))) goto out;
    r.calib_samples = cal.samples;
    if (o->quant.weight_rounding == TML_ROUND_ADAPTIVE) {
        tml_model *a = tml_model_clone(f);
        if (!a) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        tml_quant_opts ao = o->quant;
        ao.bias_correction = 0;
        ao.weight_only = 0;
        ao.only_layers = NULL;
        st = tml_quantize(a, &cal, &ao);
        if (!st) start_from(f, a);
        tml_model_free(a);
        if (st) goto out;
    }
    if ((st = tml_fakequant_new(f, &cal, &o->quant, &o->fq, &fq))) goto out;
    if (o->keep_best && o->train.val_samples == 0) {
        st = tml_error(TML_ERR_INVALID, "keeping the best epoch needs a validation split");
        goto out;
    }
    tml_train_opts to = o->train;
    to.fq = fq;
    if (!to.teacher && o->self_distill) to.teacher = m;
    bc.user = &o->train;
    bc.keep = o->keep_best;
    bc.f = f;
    bc.fq = fq;
    to.on_epoch = best_on_epoch;
    to.user = &bc;
    if ((st = tml_trainer_new(f, train, &to, &t))) goto out;
    if ((st = tml_trainer_run(t))) goto out;
    if (tml_trainer_best_val_acc(t) >= 0) r.val_acc = tml_trainer_best_val_acc(t);
    r.best_epoch = bc.best_epoch;
    r.kept_epoch = to.epochs;
    if (bc.best) {
        /* quantize the best epoch's model with its ranges (the trainer and
         * the fake quantization still point into the last one: freed after them) */
        tml_model *last = f;
        f = bc.best;
        bc.best = last;
        trained = bc.best_cal;
        memset(&bc.best_cal, 0, sizeof bc.best_cal);
        r.kept_epoch = bc.best_epoch;
    } else if ((st = tml_fakequant_calib(fq, &trained))) goto out;
    q = tml_model_clone(f);
    if (!q) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    tml_quant_opts qo = o->quant;
    qo.method = TML_CALIB_MINMAX; /* the statistics hold the trained ranges themselves */
    qo.weight_rounding = TML_ROUND_NEAREST;
    qo.bias_correction = 0;
    qo.weight_only = 0;
    qo.only_layers = NULL;
    if ((st = tml_quantize(q, &trained, &qo))) goto out;
    *out = q;
    q = NULL;
    if (out_float) {
        *out_float = f;
        f = NULL;
    }
out:
    r.seconds = now_s() - t0;
    if (rep) *rep = r;
    tml_trainer_free(t);
    tml_fakequant_free(fq);
    tml_calib_free(&cal);
    tml_calib_free(&trained);
    tml_model_free(bc.best);
    tml_calib_free(&bc.best_cal);
    tml_model_free(q);
    tml_model_free(f);
    return st;
}
