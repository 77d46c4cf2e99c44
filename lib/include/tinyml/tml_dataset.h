/*
 * tml_dataset.h - dataset readers (datasets/). A dataset is a stream of samples
 * (raw values, e.g. 0..255 pixels, in HWC order) with integer class labels.
 *
 * Specs accepted by tml_dataset_open() (docs/datasets.md has the details):
 *   fashion-mnist[:train|:test]   Debian's dataset-fashion-mnist package
 *                                 (directory from $TML_DATA_DIR/fashion-mnist if set,
 *                                 else /usr/share/datasets/fashion-mnist)
 *   mnist[:train|:test]           the same four IDX files under $TML_DATA_DIR/mnist
 *                                 or /usr/share/datasets/mnist
 *   idx:IMAGES,LABELS             IDX files (unsigned byte), plain or gzip-compressed
 *                                 (.gz detected by magic); shape (h,w,1) or (h,w,c)
 *   png:DIR  or a directory       DIR/<class>/<image>.png, classes sorted by name; gray ->
 *                                 c=1, any colour -> c=3 (alpha dropped, 16-bit scaled)
 *   csv:FILE                      one sample per line: features..., label; optional
 *                                 header line; shape (F,1,1) unless `csv:FILE:HxWxC`
 * Named datasets pick `default_split` ("train" or "test"; NULL = "train") when no
 * split is given. Errors return a negative tml_status with a message (tml_last_error())
 * naming the file and, for CSV, the line.
 *
 * Reading is streamed: tml_dataset_next() returns consecutive samples and keeps
 * only one bounded read buffer in memory, so eval never needs the dataset in RAM.
 * tml_dataset_load() reads everything into memory for training.
 *
 * A tml_dataset is not thread-safe; distinct datasets may be used from distinct threads.
 */
#ifndef TML_DATASET_H
#define TML_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tml_dataset tml_dataset;

typedef struct tml_dataset_info {
    char name[64];    /* e.g. "fashion-mnist:test" */
    int64_t count;    /* number of samples */
    int h, w, c;      /* sample shape */
    int n_classes;    /* max label + 1 as declared or scanned */
    const char *const *labels; /* class names or NULL (owned by the dataset) */
    float raw_max;    /* largest raw value possible (255 for 8-bit images) */
} tml_dataset_info;

tml_status tml_dataset_open(const char *spec, const char *default_split, tml_dataset **out);
void tml_dataset_free(tml_dataset *ds);
const tml_dataset_info *tml_dataset_get_info(const tml_dataset *ds);

/* Reads up to `max` next samples: x (got, h, w, c) raw values as float, y (got)
 * (y may be NULL when labels are not wanted). *got == 0 at the end. Labels outside
 * [0, n_classes) are a format error. After an error *got is 0 and further reads
 * fail until tml_dataset_rewind(). */
tml_status tml_dataset_next(tml_dataset *ds, int max, float *x, int32_t *y, int *got);
tml_status tml_dataset_rewind(tml_dataset *ds);
/* Makes a dataset with class names (PNG folders) report its labels in the
 * order of `names` (a model's classes): label = index of the class's name in
 * names. Every class of the dataset must be one of the names (TML_ERR_SHAPE
 * naming it otherwise); afterwards info.n_classes = n and info.labels =
 * names. Classes sorted differently from the model's are thus matched by
 * name, never by position. Call before reading. */
tml_status tml_dataset_map_classes(tml_dataset *ds, int n, const char *const *names);
/* A seeded split of a dataset without one (a CSV file, a PNG folder): exactly
 * round(frac * count) samples, chosen uniformly from `seed`, are held out.
 * *out streams the held-out samples (held_out = 1) or the others (0), in
 * file order; the same base, frac and seed always give the same split, so
 * fine-tuning on part 0 and evaluating on part 1 never share a sample. Takes
 * ownership of `base` (freed with *out, or on failure). frac in (0, 1), and
 * both parts must be non-empty. */
tml_status tml_dataset_holdout(tml_dataset *base, double frac, uint64_t seed, int held_out, tml_dataset **out);

/* All samples in memory (training and fine-tuning). Raw values are kept
 * as bytes when they are all integers in 0..255, else as floats. */
typedef struct tml_samples {
    int64_t n;
    int h, w, c;
    int n_classes;
    uint8_t *u8;     /* (n, h, w, c) or NULL */
    float *f32;      /* (n, h, w, c) or NULL */
    int32_t *labels; /* (n) */
} tml_samples;

/* Reads `limit` samples (<= 0: all remaining) from the current position into
 * memory; the stream position advances past them. Refused (TML_ERR_NOMEM) when
 * n*h*w*c > TML_MAX_NUMEL. With n == 0 (at the end) u8/f32/labels are NULL.
 * Caller frees *out with tml_samples_free(). */
tml_status tml_dataset_load(tml_dataset *ds, int64_t limit, tml_samples **out);
void tml_samples_free(tml_samples *s);
/* Copies samples idx[0..n) (raw) into x as float (n, h, w, c) and their labels
 * into y (y may be NULL). Every idx must be in [0, s->n) (asserted). */
void tml_samples_gather(const tml_samples *s, const int64_t *idx, int n, float *x, int32_t *y);
/* A dataset view of samples idx[0..n) of s (idx NULL: samples 0..n-1; n < 0
 * or n > s->n: s->n): the streaming consumers (calibration, evaluation) then
 * run on a part of loaded data without reading files again. s must outlive
 * the view; name is its info.name (NULL: "in-memory samples"). Free with
 * tml_dataset_free(). */
tml_status tml_dataset_from_samples(const tml_samples *s, const int64_t *idx, int64_t n, const char *name,
                                    tml_dataset **out);
/* A copy of samples idx[0..n) of s (training on a part of loaded data). */
tml_status tml_samples_subset(const tml_samples *s, const int64_t *idx, int64_t n, tml_samples **out);

/* Applies preprocessing in place to n_values floats with c channels last (n_values
 * a multiple of c): x = (x * scale - mean[ch]) / std[ch], ch = i % c; n_ch == 0
 * means mean 0 / std 1, n_ch == 1 uses channel 0's values for every channel.
 * n_ch must be 0, 1 or c (asserted: check untrusted values with tml_preproc_check).
 * With per-feature normalization (n_feat > 0, a multiple of n_values) element
 * i of each sample uses feat_mean[i] / feat_std[i] instead. */
void tml_preproc_apply(const tml_preproc *pre, int64_t n_values, int c, float *x);
/* Validates preprocessing parameters (e.g. read from a model file) for data with
 * c channels: finite nonzero scale, n_ch 0, 1 or c, finite means, positive stds. */
tml_status tml_preproc_check(const tml_preproc *pre, int c);
/* Default preprocessing for a dataset: scale 1/255 when raw_max is 255 (8-bit
 * data), else 1; no mean/std (n_ch = 0). */
void tml_preproc_default(const tml_dataset_info *info, tml_preproc *pre);

#ifdef __cplusplus
}
#endif
#endif
