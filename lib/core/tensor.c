/*
 * tensor.c - dtype facts, tensor sizes, quantization and codebook helpers.
 */
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_core.h"

size_t tml_dtype_size(tml_dtype t)
{
    switch (t) {
    case TML_DTYPE_F32: return 4;
    case TML_DTYPE_INT8: return 1;
    case TML_DTYPE_INT32: return 4;
    default: return 0;
    }
}

const char *tml_dtype_name(tml_dtype t)
{
    switch (t) {
    case TML_DTYPE_F32: return "f32";
    case TML_DTYPE_INT8: return "int8";
    case TML_DTYPE_INT32: return "int32";
    default: return "?";
    }
}

char *tml_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

int64_t tml_dims_numel(int ndim, const int32_t *dims)
{
    int64_t n = 1;
    int zero = 0;
    if (ndim < 0 || ndim > TML_MAX_DIMS) return -1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] == 0) {
            zero = 1; /* keep checking the other dims for negatives */
            continue;
        }
        if (n > TML_MAX_NUMEL / dims[i]) return -1;
        n *= dims[i];
    }
    return zero ? 0 : n;
}

int64_t tml_tensor_numel(const tml_tensor *t)
{
    int64_t n = tml_dims_numel(t->ndim, t->dims);
    return n < 0 ? 0 : n;
}

size_t tml_tensor_nbytes(const tml_tensor *t)
{
    return (size_t)tml_tensor_numel(t) * tml_dtype_size(t->dtype);
}

int64_t tml_tensor_nonzeros(const tml_tensor *t)
{
    int64_t n = tml_tensor_numel(t), nz = 0;
    if (!t->data) return 0;
    switch (t->dtype) {
    case TML_DTYPE_F32: {
        const float *p = t->data;
        for (int64_t i = 0; i < n; i++) nz += p[i] != 0.0f;
        break;
    }
    case TML_DTYPE_INT8: {
        /* Non-zero means "not the real value 0": for int8 that is q != zero_point.
         * Weights are symmetric (zero point 0), so q != 0. */
        const int8_t *p = t->data;
        for (int64_t i = 0; i < n; i++) nz += p[i] != 0;
        break;
    }
    case TML_DTYPE_INT32: {
        const int32_t *p = t->data;
        for (int64_t i = 0; i < n; i++) nz += p[i] != 0;
        break;
    }
    default: break;
    }
    return nz;
}

void tml_tensor_clear_quant(tml_tensor *t)
{
    free(t->q.scale);
    free(t->q.zero_point);
    t->q.scale = NULL;
    t->q.zero_point = NULL;
    t->q.n = 0;
    t->q.axis = -1;
}

tml_status tml_tensor_set_quant(tml_tensor *t, int axis, int n, const float *scale, const int32_t *zp)
{
    if (n <= 0) return tml_error(TML_ERR_INVALID, "tensor '%s': quantization needs at least one scale", t->name);
    if (axis >= t->ndim) return tml_error(TML_ERR_INVALID, "tensor '%s': quantization axis %d out of range", t->name, axis);
    if (axis < 0 && n != 1) return tml_error(TML_ERR_INVALID, "tensor '%s': per-tensor quantization needs one scale", t->name);
    if (axis >= 0 && n != t->dims[axis])
        return tml_error(TML_ERR_INVALID, "tensor '%s': %d scales for axis %d of size %d", t->name, n, axis, t->dims[axis]);
    float *s = malloc(sizeof(float) * (size_t)n);
    int32_t *z = malloc(sizeof(int32_t) * (size_t)n);
    if (!s || !z) {
        free(s);
        free(z);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    memcpy(s, scale, sizeof(float) * (size_t)n);
    if (zp)
        memcpy(z, zp, sizeof(int32_t) * (size_t)n);
    else
        memset(z, 0, sizeof(int32_t) * (size_t)n);
    tml_tensor_clear_quant(t);
    t->q.axis = axis < 0 ? -1 : axis;
    t->q.n = n;
    t->q.scale = s;
    t->q.zero_point = z;
    return TML_OK;
}

void tml_codebook_free(tml_codebook *cb)
{
    if (!cb) return;
    free(cb->centroids);
    free(cb->index);
    free(cb);
}

tml_codebook *tml_codebook_clone(const tml_codebook *cb, int64_t numel)
{
    if (!cb) return NULL;
    tml_codebook *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    *c = *cb;
    size_t nc = (size_t)cb->n_books * (size_t)cb->k;
    c->centroids = malloc(sizeof(float) * (nc ? nc : 1));
    c->index = malloc((size_t)(numel > 0 ? numel : 1));
    if (!c->centroids || !c->index) {
        tml_codebook_free(c);
        return NULL;
    }
    memcpy(c->centroids, cb->centroids, sizeof(float) * nc);
    if (numel > 0) memcpy(c->index, cb->index, (size_t)numel);
    return c;
}

tml_status tml_tensor_resize(tml_tensor *t, int ndim, const int32_t *dims)
{
    int64_t n = tml_dims_numel(ndim, dims);
    if (n < 0) return tml_error(TML_ERR_NOMEM, "tensor '%s': dimensions too large", t->name);
    void *p = NULL;
    if (t->kind == TML_TENSOR_PARAM) {
        p = calloc((size_t)(n ? n : 1), tml_dtype_size(t->dtype));
        if (!p) return tml_error(TML_ERR_NOMEM, "out of memory resizing '%s'", t->name);
    }
    free(t->data);
    t->data = p;
    t->ndim = ndim;
    for (int i = 0; i < TML_MAX_DIMS; i++) t->dims[i] = i < ndim ? dims[i] : 0;
    if (t->cb) {
        tml_codebook_free(t->cb);
        t->cb = NULL;
    }
    return TML_OK;
}
