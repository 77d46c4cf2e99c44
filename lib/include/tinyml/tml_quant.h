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

/* Second moments of one weighted layer's inputs over the calibration samples,
 * H = sum over input rows x of x x^T (x: a dense layer's input vector, a conv's
 * patch in the weights' (ky, kx, ci) order, one channel's kh*kw taps for a
 * depthwise conv), with padding taps 0. The layer's output error of a weight
 * change dW (rows = output channels) is sum_r dW_r H dW_r^T: what adaptive
 * rounding minimizes. */
typedef struct tml_hessian {
    int k;         /* taps per output channel */
    int n_mats;    /* 1; depthwise: one per input channel */
    double *h;     /* (n_mats, k, k) */
    int64_t rows;  /* input rows summed */
} tml_hessian;

typedef struct tml_calib {
    int n_tensors;
    tml_tensor_stats *stats; /* (n_tensors); entries for params are empty */
    int64_t samples;
    int n_nodes;
    tml_hessian *hess;       /* (n_nodes) with tml_calib_opts.hessians, else NULL;
                                empty (h NULL) for nodes without weights */
} tml_calib;

typedef struct tml_calib_opts {
    int64_t samples;   /* number of samples to draw (default 512) */
    uint64_t seed;     /* which samples: a seeded random subset of the dataset */
    int batch;         /* default 64 */
    tml_progress_fn progress; /* done/total counts samples over both passes */
    void *progress_user;
    volatile int *cancel;
    int hessians;      /* also collect every weighted layer's tml_hessian (pass 2) */
    const struct tml_quant_opts *sequential; /* with hessians: the adaptive quantization that
                          will follow; each layer's statistics are then gathered with the
                          layers before it already rounded as it will round them (GPTQ's
                          sequential order: one more pass over the samples per layer) */
    int ranges_only;   /* min/max only (pass 1; without hessians): the histograms and
                          channel means stay empty, which is all TML_CALIB_MINMAX without
                          bias correction needs, in half the time */
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

typedef enum tml_weight_rounding {
    TML_ROUND_NEAREST = 0, /* max-abs scale per channel, round to nearest */
    TML_ROUND_ADAPTIVE     /* GPTQ-style (docs/quantization.md): per-channel clipping
                              scale and sequential rounding with error feedback,
                              minimizing each layer's output error on the
                              calibration inputs (needs tml_calib.hess) */
} tml_weight_rounding;

/* One layer's weight width, overriding tml_quant_opts.weight_bits. */
typedef struct tml_layer_bits {
    const char *layer; /* node name */
    int bits;          /* 2..8 */
} tml_layer_bits;

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
    tml_weight_rounding weight_rounding; /* default nearest */
    const tml_layer_bits *layer_bits; /* (n_layer_bits) per-layer widths (mixed precision) */
    int n_layer_bits;
    int keep_nonzero;   /* nearest rounding of a layer narrower than 8 bits: a nonzero
                           float weight never rounds to 0 (to +-1 instead), so its
                           nonzeros (what a sparse export pays for) are the float
                           model's: the budget search's honest flash count for packed
                           int4 / int2 layers, whose adaptive rounding keeps most
                           small weights nonzero */
} tml_quant_opts;
void tml_quant_opts_default(tml_quant_opts *o);
/* The weight width of node `name` under `o` (its tml_layer_bits entry, else weight_bits). */
int tml_quant_layer_bits(const tml_quant_opts *o, const char *name);

/* Quantizes `m` in place to an integer-only INT8 model using calibration
 * statistics gathered on the same model. The order is: tml_fold(), then
 * tml_calibrate() on the folded model, then tml_quantize() (the CLI does all
 * three); a batch norm left in the graph is an error. With weight_only the
 * calibration may be NULL. */
tml_status tml_quantize(tml_model *m, const tml_calib *calib, const tml_quant_opts *opts);

/* The weight scales tml_quantize gives node `node` of the float model m at
 * `bits` with nearest rounding: per output channel (scale has one entry per
 * channel: conv / dense dim 0, depthwise dim 3), all equal when the layer is
 * per tensor (per_tensor_opt, a per-tensor codebook, or a clustered depthwise;
 * *per_tensor says which, may be NULL). Max |w| / (2^(bits-1) - 1), or for a
 * per-tensor codebook the searched scale. Quantization-aware training uses it
 * so that its fake-quantized weights are exactly the int8 weights. */
void tml_quant_weight_scales(const tml_model *m, int node, int bits, int per_tensor_opt, float *scale, int *per_tensor);
/* w quantized to the symmetric grid of scale s: clamp(round(w / s), -qmax, qmax)
 * (round half to even, in double), as tml_quantize rounds to nearest. */
int tml_quant_round(float w, float s, int qmax);

/* ---- mixed precision (lib/passes/mixed.c) ------------------------------------------------------------
 * Per-layer weight widths from measured sensitivity: every weighted layer is
 * quantized alone at each candidate width (the rest at 8 bits) and the increase
 * of the mean KL divergence of the output from the float model's on held-out
 * samples is its cost at that width. The
 * widths are then chosen by a knapsack (exact dynamic program over the weight
 * bytes) minimizing the summed cost under a byte budget: with the costs taken
 * as additive, this is the best assignment for every budget at once, so the
 * same table gives the size / accuracy Pareto front, whose points are then
 * measured for real. Weight bytes: params * bits / 8 per layer, as the
 * exported C stores them (packed 2 and 4 bits; 3 and 5..7 bits as indices of
 * the identity codebook, whose kernels are slower) up to row padding. */
typedef struct tml_mp_opts {
    tml_quant_opts quant;   /* rounding, per-tensor, calibration method (weight_bits ignored) */
    int candidates[7];      /* widths to choose from (2..8); n_candidates 0 = all of 2..8 */
    int n_candidates;
    int64_t target_bytes;   /* > 0: largest weight bytes allowed */
    double max_drop;        /* >= 0 (and target_bytes 0): smallest model whose measured top-1 on the
                               held-out samples is at most this fraction below the float model's */
    int front_points;       /* Pareto points measured (default 12) */
    tml_progress_fn progress; /* done / total model evaluations */
    void *progress_user;
    volatile int *cancel;
} tml_mp_opts;
void tml_mp_opts_default(tml_mp_opts *o);

typedef struct tml_mp_layer {
    int node;               /* in the folded model */
    const char *name;       /* the node's name (points into the folded model) */
    int64_t params;
    double dloss[9];        /* [bits] KL increase alone at that width (NaN: not a candidate) */
    double top1[9];         /* [bits] top-1 alone at that width */
} tml_mp_layer;

typedef struct tml_mp_point {
    int64_t bytes;          /* weight bytes */
    double cost;            /* summed per-layer KL increases (the knapsack's objective) */
    double top1, loss;      /* measured on the held-out samples: top-1, and loss = KL to the float model */
    int *bits;              /* (n_layers) */
    int uniform;            /* 0, or the width when every layer has it */
} tml_mp_point;

typedef struct tml_mp_result {
    int n_layers;
    tml_mp_layer *layers;
    double float_top1, float_loss, int8_top1, int8_loss; /* held-out, float and all-8-bit; the
                                                            "loss" is the KL to the float model */
    int n_points;           /* the measured Pareto front (increasing bytes), then the uniform widths */
    tml_mp_point *points;
    int chosen;             /* index into points */
    int64_t samples;
} tml_mp_result;

/* folded: the folded float model; calib: its tml_calibrate statistics (with
 * hessians for adaptive rounding); held: held-out samples (raw) for the
 * measurements. On success r->points[r->chosen].bits are the widths; pass them
 * to tml_quantize as tml_quant_opts.layer_bits (tml_mp_layer_bits). */
tml_status tml_mixed_precision(const tml_model *folded, const tml_calib *calib, const tml_samples *held,
                               const tml_mp_opts *o, tml_mp_result *r);
/* The chosen widths as tml_layer_bits (n_layers entries; names point into the folded model). */
tml_status tml_mp_layer_bits(const tml_mp_result *r, int point, tml_layer_bits **out);
void tml_mp_result_free(tml_mp_result *r);

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
