/*
 * tml_engine.h - the executor (lib/engine/): runs a finalized model on a batch,
 * plans activation buffers by liveness, and evaluates a model on a dataset.
 *
 * An engine borrows the model: the model must outlive the engine and must not
 * be edited while the engine exists. One engine must not be run from two
 * threads at once; two engines on the same model may.
 */
#ifndef TML_ENGINE_H
#define TML_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "tml_core.h"
#include "tml_dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tml_engine tml_engine;
struct tml_schedule;

typedef struct tml_engine_opts {
    int use_ref;  /* run the scalar reference kernels instead of the fast ones */
    int keep_all; /* give every activation its own buffer (for inspection / compare) */
    /* int8 models: run this memory schedule of the model (tml_schedule.h;
     * borrowed, must outlive the engine): every sample replays its steps in
     * its own arena of the schedule's size, exactly as the exported C does.
     * Results are bit-identical to the unscheduled run. Not with keep_all. */
    const struct tml_schedule *schedule;
} tml_engine_opts;

/* Prepares buffers for batches of up to `max_batch` samples. opts may be NULL.
 * The float path works on its own folded copy of the model (batch norm
 * folded, activations and residual adds fused) with weights packed once;
 * outputs equal the model's up to float rounding (docs/kernels.md). */
tml_status tml_engine_new(const tml_model *m, int max_batch, const tml_engine_opts *opts, tml_engine **out);
void tml_engine_free(tml_engine *e);

/* Runs n <= max_batch samples. x: (n, input numel) preprocessed floats; for an
 * int8 model they are quantized with the input tensor's scale/zero point.
 * y: (n, output numel) floats (int8 outputs are dequantized). */
tml_status tml_engine_run(tml_engine *e, const float *x, int n, float *y);

/* Element type of a model's boundary as `tinyml run` sees it: INT8 for an
 * int8 model (its quantized input / output tensors as they are), F32 for a
 * float model and for an int8 model with meta.float_io (the model quantizes
 * its input and dequantizes its output itself, as a .tflite with QUANTIZE /
 * DEQUANTIZE ops at its ends does). */
tml_dtype tml_model_io_dtype(const tml_model *m);

/* Runs n <= max_batch samples given in the boundary type: x (n, input numel)
 * and y (n, output numel) of tml_model_io_dtype(). No preprocessing; int8
 * data goes to the kernels unchanged. For float boundaries of int8 models
 * the conversion is the model's (TFLite's QUANTIZE under TFLite rounding). */
tml_status tml_engine_run_raw(tml_engine *e, const void *x, int n, void *y);

/* After a run with keep_all: the activation of tensor `id` for the last batch,
 * (n, numel) values in the tensor's dtype; NULL for params or without keep_all. */
const void *tml_engine_activation(const tml_engine *e, int id);

/* Bytes of the activation arena (buffers shared by liveness) for one pass:
 * max_batch samples, or on the float path (without keep_all / use_ref) the
 * micro-batch it runs large batches in; one arena per thread lane; with a schedule,
 * max_batch copies of the schedule's arena. */
size_t tml_engine_arena_bytes(const tml_engine *e);
/* Bytes of kernel scratch (per lane, as the arena). */
size_t tml_engine_scratch_bytes(const tml_engine *e);

/* Liveness-based plan for one inference (batch 1): offset of each activation in
 * a single arena. `offsets` has n_tensors entries (-1 for params / not planned).
 * Reshape and dropout share their input's buffer. Returns the arena size. */
tml_status tml_plan_activations(const tml_model *m, int batch, int64_t *offsets, int64_t *arena_bytes);
/* Peak activation memory of a single inference = arena size of the batch-1 plan. */
tml_status tml_model_peak_activation_bytes(const tml_model *m, int64_t *bytes);

/* ---- evaluation ------------------------------------------------------------------ */

typedef void (*tml_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct tml_eval_opts {
    int64_t limit;    /* <= 0: all samples */
    int batch;        /* <= 0: 256 */
    int use_ref;
    tml_progress_fn progress; /* called after each batch, may be NULL */
    void *progress_user;
    volatile int *cancel; /* if non-NULL and set, stop with TML_ERR_INTERRUPTED */
    const struct tml_schedule *schedule; /* int8 models: run this memory schedule (tml_engine_opts) */
    int check_schedule; /* with a schedule: also run every batch layer by layer and count the
                           output values that differ (tml_eval_result.sched_diffs) */
    uint8_t *correct;     /* if non-NULL: per sample, 1 when its top-1 is right (room for
                             every sample evaluated); paired tests compare two models on it */
} tml_eval_opts;

typedef struct tml_eval_result {
    int64_t n;            /* samples evaluated */
    int n_classes;        /* model outputs */
    int64_t correct1, correct5;
    double top1, top5;    /* fractions in [0,1]; top5 only meaningful if n_classes > 5 */
    double loss;          /* mean cross-entropy of softmax(output) (output taken as logits
                             unless the model ends in softmax) */
    int64_t *class_total;   /* (n_classes) samples per true class */
    int64_t *class_correct; /* (n_classes) */
    int64_t *confusion;     /* (n_classes, n_classes): [true][predicted] */
    int64_t sched_checked;  /* check_schedule: output values compared */
    int64_t sched_diffs;    /* of which differed between the scheduled and the layer-by-layer run */
    double seconds;         /* wall time of model execution + data reading */
    double samples_per_s;
} tml_eval_result;

/* Where an evaluation's batches come from: next() fills up to `want`
 * samples, already preprocessed as tml_engine_run takes them (n, input
 * numel), and their labels; *got = 0 at the end. total: the samples there are. */
typedef struct tml_eval_source {
    tml_status (*next)(void *user, int want, float *x, int32_t *labels, int *got);
    void *user;
    int64_t total;
} tml_eval_source;

/* Runs the engine over the source's batches and accumulates the metrics (the
 * engine's own loop: it never reads a dataset itself). */
tml_status tml_evaluate_source(const tml_model *m, const tml_eval_source *src, const tml_eval_opts *opts,
                               tml_eval_result *r);

/* Checks that a dataset's sample shape and labels fit a model; the error says why not. */
tml_status tml_check_dataset_fits(const tml_model *m, const tml_dataset_info *info);
/* What every command does before a model meets a dataset: when both have
 * class names, the dataset's labels are mapped onto the model's by name
 * (tml_dataset_map_classes; a class the model does not know is an error),
 * then tml_check_dataset_fits. tml_evaluate calls it; call it before
 * tml_dataset_load for training and other in-memory uses. */
tml_status tml_dataset_match(tml_dataset *ds, const tml_model *m);

/* Streams the dataset from its current position, applies the model's
 * preprocessing, runs the engine, accumulates metrics (lib/passes/evaluate_data.c,
 * over tml_evaluate_source). */
tml_status tml_evaluate(const tml_model *m, tml_dataset *ds, const tml_eval_opts *opts, tml_eval_result *r);
void tml_eval_result_free(tml_eval_result *r);

/* Evaluates on in-memory samples idx[0..n) (or the first n when idx is NULL);
 * used by passes that evaluate many variants of a model on the same data. */
tml_status tml_evaluate_samples(const tml_model *m, const tml_samples *s, const int64_t *idx, int64_t n,
                                const tml_eval_opts *opts, tml_eval_result *r);

#ifdef __cplusplus
}
#endif
#endif
