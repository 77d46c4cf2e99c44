/*
 * tml_quant.h - graph preparation, calibration and post-training INT8
 * quantization (lib/passes/fold.c, calibrate.c, quantize.c), and the
 * float-vs-int8 error analysis behind `tinyml compare`.
 */
#ifndef TML_QUANT_H
#define TML_QUANT_H

#include <stdint.h>

#include "tml_core.h"
#include "tml_dataset.h"
#include "tml_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- graph preparation ---------------------------------------------------------------
 * Rewrites a float model into what a device runs, without changing its function
 * (up to float rounding): batch norm folded into the preceding conv /
 * depthwise / dense (w' = w * g / sqrt(v + eps), b' = (b - mean) * g / sqrt(v + eps)
 * + beta; a bias is created when missing), standalone ReLU / ReLU6 fused into
 * the producing conv / depthwise / dense / add as its clamp, dropout removed.
 * A rewrite only happens when the intermediate tensor has no other reader. */
typedef struct tml_fold_report {
    int bn_folded;
    int act_fused;
    int dropout_removed;
    int bn_left; /* batch norms that could not be folded (no foldable producer) */
} tml_fold_report;
tml_status tml_fold(tml_model *m, tml_fold_report *r);

/* ---- calibration ------------------------------------------------------------------------ */

typedef enum tml_calib_method {
    TML_CALIB_MINMAX = 0,
    TML_CALIB_PERCENTILE, /* clip at the P-th / (100-P)-th percentiles */
    TML_CALIB_ENTROPY,    /* min KL divergence over a 2048-bin histogram (TensorRT) */
    TML_CALIB_MSE         /* min expected quantization + clipping error */
} tml_calib_method;
const char *tml_calib_method_name(tml_calib_method m);
/* "minmax", "percentile", "percentile:99.9", "entropy", "mse" */
tml_status tml_calib_method_parse(const char *s, tml_calib_method *m, double *percentile);

#define TML_CALIB_BINS 2048

/* Range statistics of one activation tensor over the calibration samples. */
typedef struct tml_tensor_stats {
    double min, max;              /* observed */
    int64_t count;                /* values seen */
    double *hist;                 /* (TML_CALIB_BINS) counts over [min, max], exact zeros excluded */
    double zeros;                 /* values exactly 0 (post-ReLU spikes): represented exactly by
                                     any range, so only percentiles count them */
    double *chan_mean;            /* (C) per-channel mean (last dim), for bias correction */
    int n_chan;
} tml_tensor_stats;

typedef struct tml_calib {
    int n_tensors;
    tml_tensor_stats *stats; /* (n_tensors); entries for params are empty */
    int64_t samples;
} tml_calib;

typedef struct tml_calib_opts {
    int64_t samples;   /* number of samples to draw (default 512) */
    uint64_t seed;     /* which samples: a seeded random subset of the dataset */
    int batch;         /* default 64 */
    tml_progress_fn progress; /* done/total counts samples over both passes */
    void *progress_user;
    volatile int *cancel;
} tml_calib_opts;

/* Runs the float model over a seeded random subset of the dataset, streaming:
 * pass 1 records min/max, pass 2 fills histograms and channel means, so memory
 * does not grow with the number of samples. The dataset is rewound first. */
tml_status tml_calibrate(const tml_model *m, tml_dataset *ds, const tml_calib_opts *opts, tml_calib *out);
void tml_calib_free(tml_calib *c);

/* The clipping range [lo, hi] the method chooses for one tensor's statistics.
 * Always contains 0. Exposed for tests on hand-made histograms. */
tml_status tml_calib_range(const tml_tensor_stats *s, tml_calib_method method, double percentile, double *lo,
                           double *hi);

/* Asymmetric int8 parameters for [lo, hi] (lo <= 0 <= hi): scale = (hi - lo) / 255,
 * zero point = round(-128 - lo / scale) clamped to [-128, 127]. */
void tml_choose_qparams(double lo, double hi, float *scale, int32_t *zp);

/* ---- quantization --------------------------------------------------------------------------- */

typedef struct tml_quant_opts {
    tml_calib_method method;
    double percentile;  /* for TML_CALIB_PERCENTILE, default 99.99 */
    int per_tensor;     /* weights per tensor instead of per output channel */
    int bias_correction; /* correct the mean output shift caused by weight rounding */
    int weight_bits;    /* 2..8; < 8 restricts weights to +-(2^(b-1)-1) levels */
    int weight_only;    /* keep float activations: weights snapped to the int grid
                           (fake-quantized), the model stays float */
    const char *const *only_layers; /* NULL-terminated; quantize only these nodes'
                                       weights (weight_only mode; sensitivity) */
    int rounding;       /* tml_rounding of the int8 model (default tinyml's) */
} tml_quant_opts;
void tml_quant_opts_default(tml_quant_opts *o);

/* Quantizes `m` in place to an integer-only INT8 model using calibration
 * statistics gathered on the same model. The order is: tml_fold(), then
 * tml_calibrate() on the folded model, then tml_quantize() (the CLI does all
 * three); a batch norm left in the graph is an error. With weight_only the
 * calibration may be NULL. */
tml_status tml_quantize(tml_model *m, const tml_calib *calib, const tml_quant_opts *opts);

/* ---- error analysis ------------------------------------------------------------------------------ */

typedef struct tml_layer_error {
    int node_f, node_q;  /* node indices in the float / int8 model */
    double sqnr_db;      /* 10 log10(sum f^2 / sum (f - dq)^2); +inf when exact */
    double max_abs;      /* max |f - dq| */
    double mean_abs;
    double scale;        /* the int8 tensor's scale (one step) */
} tml_layer_error;

typedef struct tml_compare_result {
    int n_layers;
    tml_layer_error *layers; /* in the int8 model's node order */
    int64_t samples;
    int64_t agree;           /* top-1 predictions equal */
    int64_t correct_f, correct_q;
} tml_compare_result;

/* Runs both models on the same samples (dataset from its current position,
 * `limit` samples) and compares every activation the two share by name. The
 * float model is folded internally so names line up with the int8 model. */
tml_status tml_compare(const tml_model *fm, const tml_model *qm, tml_dataset *ds, int64_t limit, int batch,
                       tml_compare_result *r);
void tml_compare_result_free(tml_compare_result *r);

#ifdef __cplusplus
}
#endif
#endif
