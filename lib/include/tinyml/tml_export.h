/*
 * tml_export.h - C source export of an INT8 model for microcontrollers
 * (formats/export_c.c; docs/deploy.md is the user's guide).
 *
 * tml_export_c() turns a finalized integer-only model into a self-contained
 * C99 source pair, <base>.c and <base>.h (base = the symbol prefix without
 * its trailing '_', "model" by default):
 *
 *   - one entry point  int <prefix>run(const int8_t *in, int8_t *out)
 *     (returns 0; in / out are the quantized input / output tensors, NHWC);
 *   - weights as `const` arrays (flash), each layer in the smallest of four
 *     forms (dense int8; relative-index sparse rows; codebook + packed b-bit
 *     indices; both) unless a form is forced;
 *   - all activations in one static arena laid out by the liveness planner
 *     (tml_plan_activations, 16-byte device alignment); conv patches are
 *     placed in arena bytes that are free while the layer runs;
 *   - plain scalar kernels computing exactly what the integer engine computes
 *     (tml_ops_s8.h), only those the model uses; integer arithmetic only
 *     (int64 for the doubling high multiply), no malloc, no libc beyond
 *     <string.h> (memcpy / memset), no <math.h>: multipliers, shifts, clamp
 *     bounds, folded biases and the softmax table are computed here;
 *   - the header documents the input / output shapes and quantization as
 *     macros (<PREFIX>INPUT_SCALE, <PREFIX>INPUT_ZERO_POINT, <PREFIX>INPUT_SIZE,
 *     ... <PREFIX>ARENA_SIZE).
 *
 * The model is only read. The result owns its strings and layer table.
 */
#ifndef TML_EXPORT_H
#define TML_EXPORT_H

#include <stdint.h>

#include "tml_core.h"

struct tml_sched_opts;
struct tml_schedule;

#ifdef __cplusplus
extern "C" {
#endif

/* How a layer's weights are stored in the generated source. */
typedef enum tml_export_enc {
    TML_EXPORT_AUTO = 0,       /* options only: the smallest applicable form per layer */
    TML_EXPORT_DENSE,          /* (rows, cols) int8 */
    TML_EXPORT_SPARSE,         /* nonzeros only: int8 value + uint8 column gap each
                                  (gaps over 255 take a zero filler entry), and
                                  uint16/uint32 row pointers */
    TML_EXPORT_CLUSTER,        /* int8 codebook(s) + packed b-bit index per weight */
    TML_EXPORT_SPARSE_CLUSTER, /* nonzeros only, each a gap + a packed b-bit index */
    TML_EXPORT_PACKED,         /* low-bit weights (tml_tensor.qbits 2..4) packed 4 or 2 bits
                                  each (3-bit ones in 4), unpacked inside the kernel */
    TML_EXPORT_NONE            /* layer without weights (report only) */
} tml_export_enc;
/* "dense", "sparse", "cluster", "sparse+cluster", "packed", "-" */
const char *tml_export_enc_name(tml_export_enc e);

/* Which kernels the source contains. */
typedef enum tml_export_kernels {
    TML_EXPORT_KERNELS_AUTO = 0, /* the Cortex-M DSP kernels (SXTB16, SMLAD, SSAT...) where the
                                    compiler defines __ARM_FEATURE_DSP (M4, M7, M33, M55), the
                                    portable scalar C everywhere else (M0, M3, RISC-V, a host) */
    TML_EXPORT_KERNELS_PORTABLE  /* the portable scalar C only */
} tml_export_kernels;

/* How the per-layer weight form is chosen (weights = AUTO). */
typedef enum tml_export_optimize {
    TML_EXPORT_OPT_BALANCED = 0, /* the smallest form, unless it costs more than
                                    TML_EXPORT_BALANCED_INSTR_PER_BYTE instructions per inference
                                    for each byte it saves over the fastest form */
    TML_EXPORT_OPT_SPEED,        /* the fewest estimated instructions */
    TML_EXPORT_OPT_SIZE          /* the fewest bytes */
} tml_export_optimize;
const char *tml_export_optimize_name(tml_export_optimize o); /* "balanced", "speed", "size" */

/* The weight-form goal a model file carries (meta key "export":
 * {"optimize": "balanced" | "speed" | "size"}, written by `tinyml fit` for
 * the answer whose budget holds only in that mode). *found = 0 (and *o
 * BALANCED) when the model has none; a malformed entry is TML_ERR_FORMAT. */
tml_status tml_export_optimize_from_model(const tml_model *m, tml_export_optimize *o, int *found);
/* Stores `o` in the model's metadata (replacing an earlier entry). */
tml_status tml_export_optimize_to_model(tml_model *m, tml_export_optimize o);

/* The exchange rate of `balanced`: a form smaller than the fastest one is
 * taken when it costs at most this many extra instructions per inference per
 * byte of flash it saves. */
#define TML_EXPORT_BALANCED_INSTR_PER_BYTE 16

/* The exchange rate of memory schedules between RAM and speed: a conv layer
 * runs the lean kernel (one pixel at a time from its int8 gather: stride
 * bytes of scratch instead of 6 * stride, about one instruction per MAC
 * more on a Cortex-M4) when that saves at least one byte of arena per this
 * many instructions per inference; under a RAM limit, wherever the limit
 * needs it. */
#define TML_EXPORT_LEAN_INSTR_PER_BYTE 1024

typedef struct tml_export_opts {
    const char *prefix;     /* symbol prefix: a C identifier, [A-Za-z_][A-Za-z0-9_]*;
                               NULL = "model_" (model_run, MODEL_INPUT_SCALE, model.c) */
    tml_export_enc weights; /* AUTO (default): per layer, the form with the fewest bytes;
                               DENSE: plain arrays everywhere (fastest kernels); SPARSE /
                               CLUSTER / SPARSE_CLUSTER: that form wherever it applies
                               (clustered forms need a codebook), dense elsewhere */
    tml_export_optimize optimize; /* with AUTO: what the per-layer choice weighs */
    tml_export_kernels kernels;   /* AUTO (default) or PORTABLE */
    const struct tml_sched_opts *schedule; /* NULL (default): layer by layer, the liveness plan;
                                              else run the memory schedule of these options
                                              (tml_schedule.h), the kernels' scratch included */
} tml_export_opts;
void tml_export_opts_default(tml_export_opts *o);
/* TML_OK when `prefix` is a usable symbol prefix, else TML_ERR_INVALID with a
 * message saying why. */
tml_status tml_export_check_prefix(const char *prefix);

/* One row per node of the model, in execution order. */
typedef struct tml_export_layer {
    char name[128];
    char id[72];             /* C identifier: the layer's symbols are <id>_w, <id>_b, <id>_p, ... */
    tml_op op;
    char shape[48];          /* output shape, e.g. "24x24x20" */
    tml_export_enc enc;      /* weights' form; TML_EXPORT_NONE without weights */
    int64_t weight_bytes;    /* const bytes of the weights in that form (values, gaps,
                                row pointers, indices, codebooks) */
    int64_t dense_bytes;     /* the same weights as a plain int8 array */
    int64_t other_bytes;     /* other const data: folded bias, multipliers, shifts, tables,
                                the layer's parameter struct (its size on a 32-bit target) */
    int64_t macs;            /* multiply-accumulates of one inference (tml_node_macs) */
    int64_t macs_nz;         /* those with a nonzero weight: what sparse forms execute */
    int64_t scratch_bytes;   /* conv patch buffer (inside the arena), 0 if none */
    int64_t live_bytes;      /* arena bytes in use while the layer runs: its inputs and output,
                                tensors kept for later layers, its scratch (16-byte aligned) */
    int64_t est_instr;       /* estimated Cortex-M4 instructions of one inference with the
                                kernels chosen (the cost model of the weight-form choice;
                                `tinyml profile` measures them) */
} tml_export_layer;

typedef struct tml_export_result {
    char *base;              /* file base name: "<base>.c", "<base>.h" */
    char *source;            /* text of <base>.c */
    char *header;            /* text of <base>.h */
    int n_layers;
    tml_export_layer *layers;
    int64_t const_bytes;     /* all const data (weights + other + labels), flash */
    int64_t code_bytes;      /* estimate of the code: the emitted kernels and the run
                                function as measured on a Cortex-M4 (Thumb-2, -Os);
                                other targets and compilers differ */
    int64_t weight_bytes, dense_weight_bytes;
    int64_t arena_bytes;     /* the static arena (activations + conv patches): the RAM */
    int64_t plan_bytes;      /* of which the activation plan (tml_plan_activations) */
    int64_t pair_bytes;      /* lower bound: the largest (inputs + output) of one layer,
                                16-byte aligned; an arena cannot be smaller */
    int64_t macs, macs_nz;
    int64_t input_size, output_size; /* int8 elements */
    int dsp_kernels;         /* the source has the Cortex-M DSP kernels (chosen by the compiler);
                                0: portable only (--portable, or an accumulator range the DSP
                                requantization cannot take) */
    float input_scale, output_scale;
    int32_t input_zp, output_zp;
    struct tml_schedule *schedule; /* with opts.schedule: the schedule the code runs (owned; its
                                      arena_bytes is arena_bytes), else NULL */
    int64_t lean_layers;     /* scheduled: conv layers given the lean kernel (less scratch) */
} tml_export_result;

/* Generates the source pair in memory. Refuses a float (or weight-only
 * quantized) model with TML_ERR_UNSUPPORTED ("quantize first: ..."), a model
 * the integer engine cannot run with that engine's message, a bad prefix with
 * TML_ERR_INVALID. On failure *r is left empty (safe to free). */
tml_status tml_export_c(const tml_model *m, const tml_export_opts *opts, tml_export_result *r);

/* Writes <dir>/<base>.h and <dir>/<base>.c, creating `dir` (and missing
 * parents) first. Each file is written to a temporary file in `dir` and
 * renamed over the destination, so a failure never leaves a half-written file. */
tml_status tml_export_write(const tml_export_result *r, const char *dir);

void tml_export_result_free(tml_export_result *r);

/* The memory schedule the C export of m with options o runs (o->schedule set;
 * the kernels' scratch is in its arena): what `tinyml info` and `tinyml eval`
 * report and run, so that they agree with `tinyml export --c`. */
tml_status tml_export_schedule(const tml_model *m, const tml_export_opts *o, struct tml_schedule *s);

#ifdef __cplusplus
}
#endif
#endif
