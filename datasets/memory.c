/*
 * memory.c - datasets over samples already in memory: a tml_dataset view of
 * (a selection of) a tml_samples, so that the streaming consumers
 * (calibration, evaluation) run on a held-out part of loaded data without
 * reading the files again, and a copying subset for training on a part.
 */
#include <stdlib.h>
#include <string.h>

#include "ds_internal.h"

typedef struct mem_impl {
    const tml_samples *s;
    int64_t *idx; /* (count) selected sample indices, owned */
    int64_t pos;
} mem_impl;

static tml_status mem_read(tml_dataset *ds, int n, float *x, int32_t *y)
{
    mem_impl *im = ds->impl;
    tml_samples_gather(im->s, im->idx + im->pos, n, x, y);
    im->pos += n;
    return TML_OK;
}

static tml_status mem_rewind(tml_dataset *ds)
{
    ((mem_impl *)ds->impl)->pos = 0;
    return TML_OK;
}

static void mem_destroy(void *impl)
{
    mem_impl *im = impl;
    if (!im) return;
    free(im->idx);
    free(im);
}

static const tml_ds_vtable mem_vt = {mem_read, mem_rewind, mem_destroy};

tml_status tml_dataset_from_samples(const tml_samples *s, const int64_t *idx, int64_t n, const char *name,
                                    tml_dataset **out)
{
    if (!out) return tml_error(TML_ERR_INVALID, "tml_dataset_from_samples: out is NULL");
    *out = NULL;
    if (!s) return tml_error(TML_ERR_INVALID, "tml_dataset_from_samples: samples are NULL");
    if (n < 0 || n > s->n) n = s->n;
    if (n <= 0) return tml_error(TML_ERR_INVALID, "tml_dataset_from_samples: no samples");
    for (int64_t i = 0; idx && i < n; i++)
        if (idx[i] < 0 || idx[i] >= s->n)
            return tml_error(TML_ERR_INVALID, "tml_dataset_from_samples: index %lld outside [0, %lld)",
                             (long long)idx[i], (long long)s->n);
    mem_impl *im = calloc(1, sizeof *im);
    tml_dataset *ds = tml_ds_new(&mem_vt);
    if (im) im->idx = malloc(sizeof(int64_t) * (size_t)n);
    if (!im || !ds || !im->idx) {
        mem_destroy(im);
        tml_dataset_free(ds);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    im->s = s;
    for (int64_t i = 0; i < n; i++) im->idx[i] = idx ? idx[i] : i;
    ds->impl = im;
    ds->info.count = n;
    ds->info.h = s->h;
    ds->info.w = s->w;
    ds->info.c = s->c;
    ds->info.n_classes = s->n_classes;
    ds->info.raw_max = s->u8 ? 255.0f : 0.0f;
    ds->values_u8 = s->u8 != NULL;
    tml_ds_set_name(ds, "", name ? name : "in-memory samples");
    *out = ds;
    return TML_OK;
}

tml_status tml_samples_subset(const tml_samples *s, const int64_t *idx, int64_t n, tml_samples **out)
{
    if (!out) return tml_error(TML_ERR_INVALID, "tml_samples_subset: out is NULL");
    *out = NULL;
    if (!s || !idx || n < 0 || n > s->n) return tml_error(TML_ERR_INVALID, "tml_samples_subset: bad arguments");
    const int64_t sv = (int64_t)s->h * s->w * s->c;
    tml_samples *r = calloc(1, sizeof *r);
    if (!r) return tml_error(TML_ERR_NOMEM, "out of memory");
    *r = *s;
    r->n = n;
    r->u8 = NULL;
    r->f32 = NULL;
    r->labels = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    const size_t values = (size_t)(n * sv > 0 ? n * sv : 1);
    if (s->u8)
        r->u8 = malloc(values);
    else
        r->f32 = malloc(sizeof(float) * values);
    if (!r->labels || (!r->u8 && !r->f32)) {
        tml_samples_free(r);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= s->n) {
            tml_samples_free(r);
            return tml_error(TML_ERR_INVALID, "tml_samples_subset: index %lld outside [0, %lld)", (long long)idx[i],
                             (long long)s->n);
        }
        if (s->u8)
            memcpy(r->u8 + i * sv, s->u8 + idx[i] * sv, (size_t)sv);
        else
            memcpy(r->f32 + i * sv, s->f32 + idx[i] * sv, sizeof(float) * (size_t)sv);
        r->labels[i] = s->labels[idx[i]];
    }
    *out = r;
    return TML_OK;
}
