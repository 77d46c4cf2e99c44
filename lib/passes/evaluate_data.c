/*
 * evaluate_data.c - evaluation of a model on a dataset or on in-memory
 * samples: checks that the data fits the model, reads raw batches, applies the
 * model's preprocessing and hands them to the engine's loop
 * (tml_evaluate_source), which never opens a dataset itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_dataset.h"
#include "tinyml/tml_engine.h"

tml_status tml_check_dataset_fits(const tml_model *m, const tml_dataset_info *info)
{
    const tml_tensor *in = &m->tensors[m->input];
    int64_t dnumel = (int64_t)info->h * info->w * info->c;
    int ok;
    if (in->ndim == 3)
        ok = in->dims[0] == info->h && in->dims[1] == info->w && in->dims[2] == info->c;
    else
        ok = tml_tensor_numel(in) == dnumel;
    if (!ok) {
        char ms[64] = "", ds[64];
        for (int i = 0; i < in->ndim; i++) {
            size_t l = strlen(ms);
            snprintf(ms + l, sizeof ms - l, "%s%d", i ? "x" : "", in->dims[i]);
        }
        snprintf(ds, sizeof ds, "%dx%dx%d", info->h, info->w, info->c);
        return tml_error(TML_ERR_SHAPE, "dataset '%s' has samples of shape %s but the model expects %s", info->name, ds, ms);
    }
    int64_t classes = tml_tensor_numel(&m->tensors[m->output]);
    if (info->n_classes > classes)
        return tml_error(TML_ERR_SHAPE, "dataset '%s' has %d classes but the model has only %lld outputs", info->name,
                         info->n_classes, (long long)classes);
    tml_status st = tml_preproc_check(&m->meta.pre, info->c);
    if (st) return tml_error_context(st, "model preprocessing does not fit dataset '%s'", info->name);
    return TML_OK;
}

tml_status tml_dataset_match(tml_dataset *ds, const tml_model *m)
{
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    if (m->meta.labels && info->labels && m->meta.n_classes > 0) {
        tml_status st = tml_dataset_map_classes(ds, m->meta.n_classes, (const char *const *)m->meta.labels);
        if (st && st != TML_ERR_INVALID) return st; /* INVALID: mapped before */
    }
    return tml_check_dataset_fits(m, info);
}

/* A dataset stream or in-memory samples selected by index, preprocessed for m. */
typedef struct feed {
    const tml_model *m;
    int c;
    tml_dataset *ds;
    const tml_samples *s;
    const int64_t *idx;
    int64_t pos;
    int64_t *bidx; /* (batch) */
    int cap;
} feed;

static tml_status feed_next(void *user, int want, float *x, int32_t *lab, int *got)
{
    feed *f = user;
    tml_status st = TML_OK;
    if (f->ds) {
        st = tml_dataset_next(f->ds, want, x, lab, got);
    } else {
        if (want > f->cap) {
            int64_t *b = realloc(f->bidx, sizeof(int64_t) * (size_t)want);
            if (!b) return tml_error(TML_ERR_NOMEM, "out of memory");
            f->bidx = b;
            f->cap = want;
        }
        for (int i = 0; i < want; i++) f->bidx[i] = f->idx ? f->idx[f->pos + i] : f->pos + i;
        tml_samples_gather(f->s, f->bidx, want, x, lab);
        f->pos += want;
        *got = want;
    }
    if (!st && *got)
        tml_preproc_apply(&f->m->meta.pre, (int64_t)*got * tml_tensor_numel(&f->m->tensors[f->m->input]), f->c, x);
    return st;
}

static tml_status run(const tml_model *m, feed *f, const tml_dataset_info *info, int64_t total,
                      const tml_eval_opts *opts, tml_eval_result *r)
{
    tml_status st = tml_check_dataset_fits(m, info);
    if (st) return st;
    f->m = m;
    f->c = info->c;
    tml_eval_source src = {.next = feed_next, .user = f, .total = total};
    st = tml_evaluate_source(m, &src, opts, r);
    free(f->bidx);
    f->bidx = NULL;
    return st;
}

tml_status tml_evaluate(const tml_model *m, tml_dataset *ds, const tml_eval_opts *opts, tml_eval_result *r)
{
    tml_status st = tml_dataset_match(ds, m);
    if (st) return st;
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    feed f = {.ds = ds};
    return run(m, &f, info, info->count, opts, r);
}

tml_status tml_evaluate_samples(const tml_model *m, const tml_samples *s, const int64_t *idx, int64_t n,
                                const tml_eval_opts *opts, tml_eval_result *r)
{
    tml_dataset_info info = {0};
    snprintf(info.name, sizeof info.name, "in-memory samples");
    info.h = s->h;
    info.w = s->w;
    info.c = s->c;
    info.n_classes = s->n_classes;
    if (n > s->n || n < 0) n = s->n;
    feed f = {.s = s, .idx = idx};
    return run(m, &f, &info, n, opts, r);
}
