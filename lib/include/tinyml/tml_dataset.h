/*
 * tml_dataset.h - dataset readers (datasets/). A dataset is a stream of samples
 * (raw values, e.g. 0..255 pixels, in HWC order) with integer class labels.
 *
 * Specs accepted by tml_dataset_open():
 *   fashion-mnist[:train|:test]   Debian's dataset-fashion-mnist package
 *                                 (directory from $TML_DATA_DIR/fashion-mnist if set,
 *                                 else /usr/share/datasets/fashion-mnist)
 *   idx:IMAGES,LABELS             IDX files, plain or gzip-compressed (.gz detected by magic)
 *   png:DIR  or a directory       DIR/<class>/*.png, classes sorted by name; 8-bit gray/RGB(A)
 *   csv:FILE                      one sample per line: features..., label; optional
 *                                 header line; shape (F,1,1) unless `csv:FILE:HxWxC`
 * Named datasets pick `default_split` ("train" or "test") when no split is given.
 *
 * Reading is streamed: tml_dataset_next() returns consecutive samples and keeps
 * only one read buffer in memory, so eval never needs the dataset in RAM.
 * tml_dataset_load() reads everything into memory for training.
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

/* Reads up to `max` next samples: x (got, h, w, c) raw values as float, y (got).
 * *got == 0 at the end. Labels outside [0, n_classes) are a format error. */
tml_status tml_dataset_next(tml_dataset *ds, int max, float *x, int32_t *y, int *got);
tml_status tml_dataset_rewind(tml_dataset *ds);

/* All samples in memory (training, calibration sampling). Raw values are kept
 * as bytes when they are all integers in 0..255, else as floats. */
typedef struct tml_samples {
    int64_t n;
    int h, w, c;
    int n_classes;
    uint8_t *u8;     /* (n, h, w, c) or NULL */
    float *f32;      /* (n, h, w, c) or NULL */
    int32_t *labels; /* (n) */
} tml_samples;

/* Reads `limit` samples (<= 0: all) from the current position into memory. */
tml_status tml_dataset_load(tml_dataset *ds, int64_t limit, tml_samples **out);
void tml_samples_free(tml_samples *s);
/* Copies samples idx[0..n) (raw) into x as float (n, h, w, c) and their labels into y. */
void tml_samples_gather(const tml_samples *s, const int64_t *idx, int n, float *x, int32_t *y);

/* Applies preprocessing in place: x (n, h*w*c) with c channels last. */
void tml_preproc_apply(const tml_preproc *pre, int64_t n_values, int c, float *x);
/* Default preprocessing for a dataset (scale 1/255 for 8-bit data, no mean/std). */
void tml_preproc_default(const tml_dataset_info *info, tml_preproc *pre);

#ifdef __cplusplus
}
#endif
#endif
