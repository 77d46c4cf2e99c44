/*
 * tml_train.h - training and fine-tuning on the CPU (lib/train/train.c).
 *
 * The trainer updates the model's weights in place. It honours compression:
 *   - pruned tensors (tml_tensor.pruned): the zeros captured when training
 *     starts stay exactly zero and get no update (masked gradients);
 *   - clustered tensors (tml_tensor.cb): gradients are summed per centroid and
 *     only the centroids move (Deep Compression's weight-sharing update); the
 *     weights are re-expanded from the codebook after every step; with a pruned
 *     codebook, centroid 0 (the pruned zero) never moves;
 *   - quantization parameters stored on float tensors are left untouched.
 * int8 models cannot be trained (quantize after fine-tuning).
 *
 * Reproducibility: shuffling, validation split, augmentation and dropout draw
 * from `seed` (keyed by epoch / step), and the kernels' results do not depend
 * on the thread count, so the same seed on the same machine gives the same
 * bytes, and a resumed run continues exactly as an uninterrupted one.
 */
#ifndef TML_TRAIN_H
#define TML_TRAIN_H

#include <stdint.h>

#include "tml_core.h"
#include "tml_dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tml_optim { TML_OPTIM_SGD = 0, TML_OPTIM_ADAM = 1 } tml_optim;
typedef enum tml_sched { TML_SCHED_CONSTANT = 0, TML_SCHED_STEP = 1, TML_SCHED_COSINE = 2 } tml_sched;
/* Weight averaging over the last part of training (tml_train_opts.avg): the
 * trainer keeps an average of every trainable value after each optimizer step
 * from avg_from (a fraction of all steps) on, and at the end of the last epoch
 * the model takes the average (before that epoch's validation and on_epoch).
 * Pruned weights stay exactly zero in the average (a weight masked while
 * averaging is zeroed there too); clustered tensors average their centroids. */
typedef enum tml_avg {
    TML_AVG_NONE = 0,
    TML_AVG_EMA = 1, /* exponential moving average, decay avg_decay per step (Polyak) */
    TML_AVG_MEAN = 2 /* equal weight for every step from avg_from on (SWA's tail mean) */
} tml_avg;

typedef struct tml_trainer tml_trainer;

/* ---- quantization-aware training (lib/train/fakequant.c) ---------------------------------
 * A tml_fakequant makes the trainer run the forward pass of the int8 model that
 * tml_quantize() would make of the (folded) float model with the given
 * quantization options: weights fake-quantized per output channel (or per
 * tensor, or on a shared codebook's searched scale) at their bit width,
 * biases on the int32 grid, every activation the int8 engine quantizes on its
 * per-tensor grid (fused ReLU / ReLU6 as its clamp), with straight-through
 * gradients. Afterwards tml_fakequant_calib() gives statistics whose min/max
 * are the final ranges: tml_quantize(m, &that, q with method minmax, nearest
 * rounding, no bias correction) is then the int8 model that was trained.
 * lib/passes/qat.c wraps the whole recipe (tml_qat). */
typedef struct tml_fakequant tml_fakequant;
typedef enum tml_fq_ranges {
    TML_FQ_RANGES_EMA = 0,  /* moving average of each batch's min / max */
    TML_FQ_RANGES_FIXED = 1 /* the calibration ranges, never moved */
} tml_fq_ranges;
typedef struct tml_fq_opts {
    tml_fq_ranges ranges;  /* default EMA */
    double ema_momentum;   /* default 0.99 */
    double freeze;         /* fraction of the steps after which ranges stop moving (default 0.5) */
} tml_fq_opts;
void tml_fq_opts_default(tml_fq_opts *o);
struct tml_calib;
struct tml_quant_opts;
/* m: the folded float model to train (no batch norm or dropout left);
 * calib: tml_calibrate() statistics of m (initial ranges, by q->method). */
tml_status tml_fakequant_new(const tml_model *m, const struct tml_calib *calib, const struct tml_quant_opts *q,
                             const tml_fq_opts *o, tml_fakequant **out);
void tml_fakequant_free(tml_fakequant *f);
/* Statistics (min/max only) holding the current ranges; free with tml_calib_free. */
tml_status tml_fakequant_calib(const tml_fakequant *f, struct tml_calib *out);
/* The current range of an activation (that of its source for pools / reshape). */
tml_status tml_fakequant_range(const tml_fakequant *f, int tensor, double *lo, double *hi);

typedef struct tml_epoch_info {
    int epoch;          /* 0-based, just finished */
    int epochs;
    double train_loss;  /* mean over the epoch's batches */
    double train_acc;   /* fraction, on the augmented training batches */
    double val_loss, val_acc; /* NaN without a validation split */
    double lr;          /* at the end of the epoch */
    double seconds;     /* of training (validation excluded) */
    double samples_per_s;
    int is_best;        /* best validation accuracy so far (or last epoch without validation) */
} tml_epoch_info;

typedef void (*tml_train_progress_fn)(void *user, int epoch, int64_t step, int64_t steps, double loss, double acc,
                                      double samples_per_s);
/* Called after each epoch with the model holding the current weights; return
 * non-zero tml_status to stop (e.g. a failed checkpoint write). */
typedef tml_status (*tml_train_epoch_fn)(void *user, tml_trainer *t, const tml_epoch_info *info);

/* Called after every `hook_every`-th optimizer step (gradual pruning): it may
 * zero more weights and mark tensors pruned; the trainer then narrows its masks
 * (a masked weight never comes back). step counts from 1, of total_steps. */
typedef tml_status (*tml_train_hook_fn)(void *user, tml_model *m, int64_t step, int64_t total_steps);

typedef struct tml_train_opts {
    int epochs;            /* default 12 */
    int batch;             /* default 64 */
    double lr;             /* NaN = by optimizer: 1e-3 for Adam, 0.05 for SGD */
    tml_optim optim;       /* default Adam */
    double momentum;       /* SGD, default 0.9 */
    int nesterov;
    double beta1, beta2, adam_eps; /* defaults 0.9, 0.999, 1e-8 */
    double weight_decay;   /* SGD: L2 added to the gradient; Adam: decoupled (AdamW).
                              Applied to conv/dense weights, not biases or batch norm. */
    tml_sched sched;       /* default cosine */
    int step_epochs;       /* step schedule: multiply by step_gamma every step_epochs */
    double step_gamma;
    double warmup_epochs;  /* linear warm-up from lr/100, may be fractional */
    double label_smoothing; /* default 0.1 */
    int64_t val_samples;   /* held out of the training data (seeded), 0 = none; default 5000;
                              < 0 selects the default */
    uint64_t seed;
    int aug_crop_pad;      /* random crop after zero padding by this many pixels (0 = off) */
    int aug_flip;          /* random horizontal flip */
    const tml_model *teacher; /* knowledge distillation when non-NULL */
    double kd_temperature; /* default 4 */
    double kd_alpha;       /* default 0.9 */
    int freeze_bn;         /* use running statistics, do not update them (fine-tuning) */
    tml_avg avg;           /* weight averaging (see tml_avg); default none */
    double avg_decay;      /* TML_AVG_EMA: per-step decay in (0, 1), default 0.999 */
    double avg_from;       /* averaging starts after this fraction of all steps, in [0, 1); default 0.75 */
    tml_fakequant *fq;     /* quantization-aware training when non-NULL (made for this model;
                              the trainer updates its ranges; validation runs fake-quantized) */
    tml_train_progress_fn progress;
    tml_train_epoch_fn on_epoch;
    tml_train_hook_fn hook;
    int64_t hook_every;
    void *user;
    volatile int *cancel;  /* checked between batches */
} tml_train_opts;

/* Fills the defaults above (optim decides lr). */
void tml_train_opts_default(tml_train_opts *o);
/* Checks ranges; returns TML_ERR_INVALID naming the bad value. */
tml_status tml_train_opts_check(const tml_train_opts *o);

/* Prepares training of `m` (kept by pointer, weights updated in place) on the
 * in-memory samples (raw values; the model's preprocessing is applied). */
tml_status tml_trainer_new(tml_model *m, const tml_samples *data, const tml_train_opts *o, tml_trainer **out);
void tml_trainer_free(tml_trainer *t);

/* Runs the remaining epochs. TML_ERR_INTERRUPTED when cancelled: the model
 * then holds the weights of the last step taken, mid-epoch; the last good
 * state is the checkpoint written by on_epoch at the end of the last epoch. */
tml_status tml_trainer_run(tml_trainer *t);

/* Checkpointing: copies optimizer state and progress into `ckpt` (a clone of
 * the model) as extra tensors named "__train/..." and meta.extra
 * "train_state"; tml_trainer_resume() restores them from such a model and
 * continues with the next epoch. tml_train_strip_state() removes them. */
tml_status tml_trainer_export_state(const tml_trainer *t, tml_model *ckpt);
tml_status tml_trainer_resume(tml_trainer *t, const tml_model *ckpt);
tml_status tml_train_strip_state(tml_model *m);
int tml_train_has_state(const tml_model *m);

/* The trainer's validation split of n samples for `seed`: perm (n) is a
 * permutation of [0, n) whose first val_samples entries are held out, the rest
 * trains. A model trained with that seed never saw perm[0..val_samples). */
void tml_train_split(int64_t n, uint64_t seed, int64_t *perm);

/* The trainer's forward pass (fake-quantized under QAT, nothing updated) on n
 * <= batch preprocessed inputs x: out (n, outputs) are the logits (a trailing
 * softmax is not applied). */
tml_status tml_trainer_infer(tml_trainer *t, const float *x, int n, float *out);

/* Held-out validation indices and the epochs completed (for reports). */
int tml_trainer_epochs_done(const tml_trainer *t);
double tml_trainer_best_val_acc(const tml_trainer *t);

#ifdef __cplusplus
}
#endif
#endif
