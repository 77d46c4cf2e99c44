/*
 * tml_tflite.h - TensorFlow Lite flatbuffers (schema version 3): import
 * (formats/tflite.c) and export (formats/tflite_export.c). docs/tflite.md
 * lists the ops, the arithmetic and what is kept.
 *
 * The flatbuffer is read directly (no flatbuffers library): every offset,
 * vtable and vector length is checked against the buffer before use. Field
 * ids are those of TFLite's schema.fbs.
 *
 * Import: subgraph 0 of a float32, full-int8 or "hybrid" (float activations,
 * int8 weights: imported as float) model becomes a finalized tinyml model.
 * Ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D,
 * MAX_POOL_2D, ADD, RESHAPE, SOFTMAX, MEAN over (H, W), PAD / PADV2 in front
 * of a convolution (merged into its padding), RELU, RELU6, QUANTIZE /
 * DEQUANTIZE at the model's ends (an int8 model with a float boundary, or
 * constant weights); fused RELU / RELU6. Anything else is TML_ERR_UNSUPPORTED
 * naming the op and its index. Scales and zero points are kept exactly; the
 * model's rounding is TML_ROUNDING_TFLITE so the int8 engine computes what
 * TensorFlow Lite Micro's reference kernels compute, bit for bit.
 *
 * Thread-safe: no globals.
 */
#ifndef TML_TFLITE_H
#define TML_TFLITE_H

#include <stddef.h>
#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What an import found, for logs. */
typedef struct tml_tflite_info {
    uint32_t version;      /* schema version (3) */
    char description[96];  /* Model.description, "" when absent */
    int operators;         /* operators of subgraph 0 */
    int tensors;           /* tensors of subgraph 0 */
    int subgraphs;
    int full_int8;         /* int8 activations */
    int hybrid;            /* float activations with int8 weights (dequantized) */
    int float_io;          /* QUANTIZE / DEQUANTIZE at the ends */
    int merged_pads;       /* PAD ops merged into the following convolution */
    int from_tinyml;       /* written by tinyml: names and metadata restored */
    char op_summary[512];  /* "CONV_2D 5, DEPTHWISE_CONV_2D 4, ..." */
} tml_tflite_info;

/* Does the buffer look like a .tflite file (file identifier "TFL3" at byte 4)? */
int tml_tflite_detect(const void *buf, size_t len);

/* Imports a .tflite held in memory; info may be NULL. On success *out is a
 * finalized model the caller frees (arch "tflite", name from the file's
 * metadata or empty, preprocessing scale 1: the caller sets meta.pre). */
tml_status tml_tflite_import_mem(const void *buf, size_t len, tml_model **out, tml_tflite_info *info);
/* Same from a file; "-" reads stdin. Errors are prefixed with the path. */
tml_status tml_tflite_import_file(const char *path, tml_model **out, tml_tflite_info *info);

/* ---- export (formats/tflite_export.c) ----------------------------------------------------
 * Writes a finalized model (float or int8) as a TFLite flatbuffer that
 * TensorFlow Lite (Micro) runs: file identifier TFL3, schema version 3, the
 * operator codes with the deprecated 8-bit code field set, constant buffers
 * 16-byte aligned, per-channel quantization with quantized_dimension, batch 1
 * as dimension 0 of every activation. Pruned and clustered weights are
 * written dense (their decoded values). Batch norm and dropout must be folded
 * / removed before (the CLI folds). tinyml's names, labels, preprocessing,
 * rounding and history go to Model.metadata "tinyml" (JSON), so an import of
 * the result gives back the same model. float_io int8 models get QUANTIZE /
 * DEQUANTIZE at their ends and float32 boundary tensors.
 *
 * Errors: TML_ERR_UNSUPPORTED for what TFLite cannot express (the message
 * names the node), TML_ERR_NOMEM, TML_ERR_IO. */
tml_status tml_tflite_export_mem(const tml_model *m, uint8_t **buf, size_t *len);
/* Writes through a temporary file renamed over `path`; NULL or "-" = stdout. */
tml_status tml_tflite_export_file(const tml_model *m, const char *path);

#ifdef __cplusplus
}
#endif
#endif
