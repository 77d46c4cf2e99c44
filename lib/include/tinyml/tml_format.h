/*
 * tml_format.h - the .tmf model file (formats/tmf*.c). docs/format.md is the spec.
 *
 * Readers accept a file path, "-" (stdin, also pipes) or a memory buffer and
 * validate everything: signature, chunk lengths against remaining bytes, CRCs,
 * JSON, dims (TML_MAX_NUMEL), encodings; a failure returns TML_ERR_FORMAT (or
 * IO/NOMEM) with a message naming the chunk/tensor. Writers choose the smallest
 * encoding allowed per tensor, write to a temporary file in the destination
 * folder and rename it over the destination, so a failure never leaves a
 * half-written model behind.
 */
#ifndef TML_FORMAT_H
#define TML_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TML_FORMAT_MAJOR 1
#define TML_FORMAT_MINOR 0

/* Payload encodings (docs/format.md, "TNSR"). */
typedef enum tml_layout {
    TML_LAYOUT_DENSE = 0,  /* every element stored */
    TML_LAYOUT_BITMAP = 1, /* 1 bit per element marks the stored (nonzero) ones */
    TML_LAYOUT_RELIDX = 2  /* Deep-Compression relative indices: g-bit gaps + filler zeros */
} tml_layout;

typedef enum tml_valcode {
    TML_VAL_RAW = 0,    /* values in the tensor's dtype */
    TML_VAL_CLUSTER = 1 /* b-bit codebook indices */
} tml_valcode;

typedef enum tml_entropy {
    TML_ENTROPY_NONE = 0,
    TML_ENTROPY_DEFLATE = 1, /* zlib over the whole body */
    TML_ENTROPY_HUFFMAN = 2  /* canonical Huffman over the symbol streams */
} tml_entropy;

/* Which encodings the writer may use (on top of each tensor's store_hint):
 * sparse layouts for pruned tensors, entropy coding. Defaults (NULL opts):
 * everything allowed. */
typedef struct tml_save_opts {
    int allow_sparse;
    int allow_cluster;
    int allow_entropy;
} tml_save_opts;
void tml_save_opts_default(tml_save_opts *o);

/* How one tensor ended up (or would end up) stored. */
typedef struct tml_tensor_storage {
    tml_layout layout;
    tml_valcode valcode;
    tml_entropy entropy;
    int64_t stored_values; /* entries in the value stream (incl. relidx fillers) */
    int64_t bytes;         /* bytes of the whole TNSR chunk, framing included */
} tml_tensor_storage;

tml_status tml_model_read_mem(const void *buf, size_t len, tml_model **out);
/* path "-" or NULL reads stdin to EOF. */
tml_status tml_model_load(const char *path, tml_model **out);

/* Serializes to a malloc'd buffer the caller frees. opts may be NULL. */
tml_status tml_model_write_mem(const tml_model *m, const tml_save_opts *opts, uint8_t **buf,
                               size_t *len);
/* path "-" writes to stdout (the caller decides whether that is allowed). */
tml_status tml_model_save(const tml_model *m, const char *path, const tml_save_opts *opts);

/* The encoding the writer would choose for tensor `t` and its chunk size.
 * Used by `tinyml info` to show bytes after each compression stage. */
tml_status tml_tensor_storage_plan(const tml_tensor *t, const tml_save_opts *opts,
                                   tml_tensor_storage *st);

/* CRC-32 (IEEE 802.3, as zlib/PNG) — exposed for tests and the C exporter. */
uint32_t tml_crc32(uint32_t crc, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
