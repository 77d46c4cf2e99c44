/*
 * ds_internal.h - what the dataset readers (idx.c, png_folder.c, csv.c) share
 * with the front end (dataset.c). Not a public header.
 *
 * A reader fills a tml_dataset through tml_ds_new() and a vtable. The front end
 * owns the position, the end-of-data logic, the label range check and the
 * "broken after an error" state, so a reader's read() only has to produce
 * exactly the number of samples it is asked for.
 */
#ifndef TML_DS_INTERNAL_H
#define TML_DS_INTERNAL_H

#include <stdint.h>

#include <zlib.h>

#include "tinyml/tml_dataset.h"

/* Bounds applied to every header / scan before anything is allocated. */
#define TML_DS_MAX_SAMPLE_VALUES ((int64_t)1 << 24) /* h*w*c of one sample */
#define TML_DS_MAX_COUNT ((int64_t)INT32_MAX)       /* samples per dataset */
#define TML_DS_MAX_CLASSES 65536                    /* n_classes */
/* Size of the bounded read buffer a streaming reader keeps (bytes, at least one sample). */
#define TML_DS_READ_BUFFER ((size_t)1 << 18)

typedef struct tml_ds_vtable {
    /* Reads exactly n (1..count-pos) next samples: x (n, h, w, c) raw values,
     * y (n). Any shortfall is an error with a message naming the file. The
     * reader keeps its own cursor (ds->pos is only updated after a full call). */
    tml_status (*read)(tml_dataset *ds, int n, float *x, int32_t *y);
    /* Goes back to the first sample. */
    tml_status (*rewind)(tml_dataset *ds);
    /* Releases the reader's state (ds->impl); may be called on a half-opened reader. */
    void (*destroy)(void *impl);
} tml_ds_vtable;

struct tml_dataset {
    tml_dataset_info info;
    const tml_ds_vtable *vt;
    void *impl;
    int64_t pos;         /* samples returned since open / rewind, 0..info.count */
    int values_u8;       /* every raw value is an integer in 0..255 (load keeps bytes) */
    int broken;          /* a read failed: further reads refused until rewind */
    char **owned_labels; /* (n_owned_labels) class names owned by the dataset, or NULL */
    int n_owned_labels;
    int32_t *class_map;  /* (map_from) reader label -> reported label (tml_dataset_map_classes), or NULL */
    int map_from;        /* the reader's number of classes */
};

/* Allocates an empty dataset bound to `vt` (impl set by the caller); NULL on OOM. */
tml_dataset *tml_ds_new(const tml_ds_vtable *vt);
/* Sets info.name, truncating to its buffer. */
void tml_ds_set_name(tml_dataset *ds, const char *prefix, const char *name);

/* Readers. `name` is the info.name to report. */
/* IDX pair; declared_classes > 0 (with optional class names) for named datasets,
 * whose labels must then lie in [0, declared_classes); 0 = scan (max + 1). */
tml_status tml_ds_open_idx(const char *images, const char *labels, int declared_classes,
                           const char *const *class_names, const char *name, tml_dataset **out);
tml_status tml_ds_open_png(const char *dir, tml_dataset **out);
/* shape: NULL for (F, 1, 1), else {H, W, C} whose product must equal F. */
tml_status tml_ds_open_csv(const char *file, const int *shape, tml_dataset **out);

/* zlib helpers shared by the IDX and CSV readers (plain files read transparently). */
/* Opens `path` for reading with a large buffer; error message names the file. */
tml_status tml_ds_gzopen(const char *path, gzFile *out);
/* Reads up to n bytes, looping over gzread's int-sized calls; *got < n at end of
 * data. Returns TML_ERR_FORMAT (truncated/corrupt gzip stream) or TML_ERR_IO
 * with a message naming `path`. */
tml_status tml_ds_gzread(gzFile f, const char *path, void *buf, size_t n, size_t *got);
/* Positions the stream at byte `off` of the uncompressed data. */
tml_status tml_ds_gzseek(gzFile f, const char *path, int64_t off);

#endif
