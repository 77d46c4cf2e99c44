/*
 * tml_recipe.h - compression recipes as library calls (lib/passes/recipe.c):
 * a pass combined with fine-tuning, so that the CLI commands (`prune`,
 * `cluster`) and the budget search (`fit`, tml_fit.h) run the same code.
 *
 *   tml_finetune_run   masked fine-tuning of a model on in-memory samples
 *                      (optionally distilled from a teacher);
 *   tml_recipe_prune   magnitude / structured pruning with a one-shot,
 *                      iterative or gradual (AGP, Zhu & Gupta) schedule;
 *   tml_plan_apply     a whole compression plan: per-layer filter removal,
 *                      per-layer sparsity (AGP with fine-tuning), per-layer
 *                      weight-sharing bits (with centroid fine-tuning), then
 *                      calibration and INT8 quantization.
 *
 * The model is changed in place; nothing is printed; progress goes through
 * the callbacks of tml_finetune.
 */
#ifndef TML_RECIPE_H
#define TML_RECIPE_H

#include <stdint.h>

#include "tml_cluster.h"
#include "tml_core.h"
#include "tml_dataset.h"
#include "tml_prune.h"
#include "tml_train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fine-tuning settings shared by the recipes. */
typedef struct tml_finetune {
    int epochs;               /* 0: no fine-tuning */
    double lr;                /* Adam */
    int lr_constant;          /* 1: constant learning rate (for weight averaging); 0: cosine to zero */
    int batch;
    uint64_t seed;
    int64_t val_samples;      /* held out of `data` by the trainer (< 0: its default) */
    const tml_samples *data;  /* raw training samples (required when epochs > 0) */
    const tml_model *teacher; /* distill from it when non-NULL */
    int aug_crop_pad;         /* augmentation as tml_train_opts': random crop after zero padding */
    int aug_flip;             /* random horizontal flip */
    tml_avg avg;              /* weight averaging as tml_train_opts' (avg_decay, avg_from); for AGP
                                 avg_from >= 2/3 averages only at the final sparsity */
    double avg_decay, avg_from;
    double kd_temperature;    /* distillation as tml_train_opts' (default 4, 0.9) */
    double kd_alpha;
    tml_train_progress_fn progress;
    /* After every fine-tuning epoch of every recipe phase: the model being
       fine-tuned holds that epoch's weights (masks and shared weights
       applied), so this is where a caller writes its checkpoint. A non-OK
       return stops the recipe with that status. */
    tml_train_epoch_fn on_epoch;
    void *user;               /* for progress / on_epoch */
    /* Checked between steps: once *cancel is non-zero the recipe stops with
       TML_ERR_INTERRUPTED (the model is then mid-epoch: use the last
       checkpoint written by on_epoch). */
    volatile int *cancel;
} tml_finetune;
/* epochs 0, lr 1e-3, batch 64, seed 1, val_samples -1, no augmentation, no weight averaging (decay
   0.999 from 0.75 when set), distillation T 4 alpha 0.9, no data / teacher / callbacks */
void tml_finetune_default(tml_finetune *f);

/* Trains m for ft->epochs on ft->data (pruned zeros stay zero, clustered
 * weights move by centroid). hook / hook_every: tml_train_opts' gradual hook
 * (NULL for none). Does nothing when ft->epochs is 0. */
tml_status tml_finetune_run(tml_model *m, const tml_finetune *ft, tml_train_hook_fn hook, int64_t hook_every,
                            void *hook_user);

typedef enum tml_prune_schedule {
    TML_PRUNE_ONESHOT = 0, /* prune, then fine-tune ft->epochs */
    TML_PRUNE_ITERATIVE,   /* `steps` rounds: prune to k/steps of the targets, fine-tune ft->epochs */
    TML_PRUNE_AGP          /* fine-tune ft->epochs while the targets rise on the cubic AGP curve in
                              `steps` steps over the first 2/3 of the steps; then the exact targets */
} tml_prune_schedule;
const char *tml_prune_schedule_name(tml_prune_schedule s); /* "oneshot", "iterative", "agp" */

/* Called before each fine-tuning round of the iterative schedule (round 1..rounds). */
typedef void (*tml_prune_round_fn)(void *user, int round, int rounds);

/* Prunes m to `spec` on `sched` (see above) with fine-tuning ft (NULL or 0
 * epochs: no fine-tuning; the iterative and AGP schedules need it). rep (may be
 * NULL) gets the last pruning call's report. AGP needs unstructured pruning. */
tml_status tml_recipe_prune(tml_model *m, const tml_prune_spec *spec, tml_prune_schedule sched, int steps,
                            const tml_finetune *ft, tml_prune_round_fn on_round, void *round_user,
                            tml_prune_report *rep);

/* ---- compression plans -------------------------------------------------------------- */

/* What happens to one prunable layer. */
typedef struct tml_plan_layer {
    char name[128];
    double filters;  /* fraction of its filters / neurons removed (structured), [0, 1) */
    double sparsity; /* fraction of its remaining weights zeroed, [0, 1) */
    int bits;        /* weight sharing: 2^bits centroids (1..8); 0 = none (plain int8) */
    int qbits;       /* packed low-bit int weights (2..7, tml_tensor.qbits); 0 = int8; not
                        with sharing */
} tml_plan_layer;

typedef struct tml_plan {
    int n_layers;
    tml_plan_layer *layers;  /* owned (tml_plan_free); layers not named keep everything */
    int agp_steps;           /* AGP pruning steps (default 100) */
    int prune_epochs;        /* fine-tuning epochs of the filter removal + AGP phase */
    int cluster_epochs;      /* centroid fine-tuning epochs after clustering */
    double cluster_lr;       /* default 1e-4 */
    int cluster_iters;       /* k-means (Lloyd) iterations; 0 = tml_cluster's default */
    int form_size;           /* export: every layer's weights in the form with the fewest bytes
                                (--optimize size) instead of the balanced choice; the plan
                                does not change the model for it, the export options do;
                                tinyml fit compiles such a plan at -Os, the least code) */
    int64_t calib_samples;   /* calibration samples for INT8 (default 512) */
    int nearest;             /* packed low-bit layers rounded to nearest, not adaptively (quicker:
                                the budget search's untrained measure) */
    int keep_nonzero;        /* with nearest: a packed layer's nonzero float weights never round
                                to 0 (tml_quant_opts.keep_nonzero): the search's flash counts
                                every unpruned weight, as adaptive rounding keeps most nonzero */
    int float_only;          /* stop before INT8: the model stays float (pruned, shared), as the
                                budget search's fine-tuned starting points */
    int qat_epochs;          /* > 0: quantization-aware training (tml_qat: distilled from ft's
                                teacher, masks and codebooks kept) replaces post-training
                                quantization as the last step */
    int qat_keep_last;       /* with qat_epochs: the last epoch's model, even with a validation
                                split (default 0: the epoch best on it) */
} tml_plan;

/* One entry per prunable layer of m, all zero (keep everything), default schedule. */
tml_status tml_plan_init(tml_plan *p, const tml_model *m);
void tml_plan_free(tml_plan *p);
/* The entry of layer `name`, or NULL. */
tml_plan_layer *tml_plan_find(tml_plan *p, const char *name);

/* Applies plan p to the float model m in place and quantizes it to INT8:
 * 1. filter removal (structured, smallest L1 norm) of every layer with filters > 0;
 * 2. magnitude pruning to each layer's sparsity on the AGP schedule while
 *    fine-tuning p->prune_epochs (one-shot without fine-tuning when 0; plain
 *    fine-tuning when only filters were removed);
 * 3. weight sharing per layer (k-means, linear init, seed ft->seed), then
 *    p->cluster_epochs of centroid fine-tuning at p->cluster_lr;
 * 4. calibration on `calib` (p->calib_samples seeded samples) and INT8
 *    quantization with the default options, each layer with qbits at that
 *    weight width (packed int4 / int2 weights, rounded adaptively: GPTQ,
 *    pruned zeros kept; to nearest with p->nearest); or, with p->qat_epochs, quantization-aware training
 *    for that many epochs at lr 1e-4 (tml_qat) from the same start; with an
 *    explicit validation split (ft->val_samples > 0) the epoch best on it is kept
 *    (the last one with p->qat_keep_last).
 * ft gives the data, seed, teacher and callbacks (its epochs and lr are
 * replaced by the plan's). Deterministic for a given seed. */
tml_status tml_plan_apply(tml_model *m, const tml_plan *p, const tml_finetune *ft, tml_dataset *calib);

#ifdef __cplusplus
}
#endif
#endif
