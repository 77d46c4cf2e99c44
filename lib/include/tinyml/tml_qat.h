/*
 * tml_qat.h - quantization-aware training as one library call (lib/passes/qat.c):
 * fold, calibrate, fine-tune with the fake-quantized forward pass of the int8
 * model (tml_train.h, "quantization-aware training"), then quantize with the
 * trained ranges. The CLI's `tinyml qat` and budget searches call this.
 */
#ifndef TML_QAT_H
#define TML_QAT_H

#include "tml_quant.h"
#include "tml_train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tml_qat_opts {
    tml_quant_opts quant; /* weight bits (uniform / per layer), per-tensor, calibration method of
                             the initial ranges, and the rounding of the initial weights:
                             adaptive (default) starts from the PTQ solution of adaptive
                             rounding (latent weights = its dequantized weights; layers with
                             codebooks keep theirs); bias correction does not apply */
    tml_calib_opts calib; /* the initial ranges (default 512 samples) */
    tml_train_opts train; /* the fine-tuning (defaults: 2 epochs, Adam lr 1e-4, cosine, label
                             smoothing 0.1, 5000 validation samples); teacher, callbacks */
    int self_distill;     /* without train.teacher: distill from the float model itself
                             (default 0: on LeNet-5 W4A8 it did not beat the labels) */
    tml_fq_opts fq;       /* range tracking */
    int keep_best;        /* write the model of the epoch with the best fake-quantized
                             validation accuracy (weights and ranges as they were then)
                             instead of the last one; needs train.val_samples > 0 */
} tml_qat_opts;
void tml_qat_opts_default(tml_qat_opts *o);

typedef struct tml_qat_report {
    tml_fold_report fold;
    int64_t calib_samples;
    double val_acc;       /* fake-quantized, best epoch (NaN without a validation split) */
    int best_epoch;       /* 1-based epoch of val_acc (0 without a validation split) */
    int kept_epoch;       /* 1-based epoch whose model *out is: best_epoch with keep_best,
                             else the last */
    double seconds;       /* calibration + training */
} tml_qat_report;

/* Quantization-aware training of the float model m on `train` (raw samples;
 * the model's preprocessing is applied), initial ranges calibrated on
 * `calib`. m is not modified. *out: the int8 model (what `tinyml eval` and the
 * exported C run). out_float (may be NULL): the trained, folded float model
 * whose fake-quantized forward *out reproduces. Pruned weights stay zero and
 * clustered weights keep their codebooks throughout. */
tml_status tml_qat(const tml_model *m, const tml_samples *train, tml_dataset *calib, const tml_qat_opts *o,
                   tml_model **out, tml_model **out_float, tml_qat_report *rep);

#ifdef __cplusplus
}
#endif
#endif
