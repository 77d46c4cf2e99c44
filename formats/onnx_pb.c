/*
 * onnx_pb.c - a bounds-checked reader of the protobuf wire format for the
 * ONNX messages the importer needs (ModelProto, GraphProto, NodeProto,
 * AttributeProto, TensorProto, ValueInfoProto, TypeProto). See
 * onnx_internal.h for the rules it enforces. Field numbers from onnx.proto:
 *
 *   ModelProto       1 ir_version  2 producer_name  3 producer_version  7 graph
 *                    8 opset_import (OperatorSetIdProto: 1 domain, 2 version)
 *                    25 functions
 *   GraphProto       1 node  2 name  5 initializer  11 input  12 output
 *                    15 sparse_initializer
 *   NodeProto        1 input  2 output  3 name  4 op_type  5 attribute  7 domain
 *   AttributeProto   1 name  2 f  3 i  4 s  5 t  6 g  7 floats  8 ints
 *                    9 strings  10 tensors  11 graphs  14 tp  15 type_protos
 *                    20 type  21 ref_attr_name  22 sparse_tensor  23 sparse_tensors
 *   TensorProto      1 dims  2 data_type  3 segment  4 float_data  5 int32_data
 *                    6 string_data  7 int64_data  8 name  9 raw_data
 *                    10 double_data  11 uint64_data  13 external_data
 *                    14 data_location
 *   ValueInfoProto   1 name  2 type
 *   TypeProto        1 tensor_type (1 elem_type, 2 shape)  4 sequence_type
 *                    5 map_type  8 sparse_tensor_type  9 optional_type
 *   TensorShapeProto 1 dim (Dimension: 1 dim_value, 2 dim_param)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

/* ---- the wire format ------------------------------------------------------------ */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct pb {
    const uint8_t *base; /* start of the whole buffer: offsets in messages */
    const uint8_t *p, *end;
    int depth;
} pb;

#define OFF(r) ((size_t)((r)->p - (r)->base))

static tml_status bad(const pb *r, const char *what)
{
    return tml_error(TML_ERR_FORMAT, "%s at byte %zu", what, OFF(r));
}

static tml_status rd_varint(pb *r, uint64_t *v)
{
    uint64_t x = 0;
    *v = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) return bad(r, "truncated varint");
        uint8_t b = *r->p++;
        if (i == 9 && b > 1) return bad(r, "varint longer than 64 bits");
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return TML_OK;
        }
    }
    return bad(r, "varint longer than 10 bytes");
}

/* Reads a field key. */
static tml_status rd_key(pb *r, uint32_t *field, int *wire)
{
    uint64_t k;
    *field = 0;
    *wire = 0;
    tml_status st = rd_varint(r, &k);
    if (st) return st;
    uint64_t f = k >> 3;
    int w = (int)(k & 7);
    if (f == 0 || f > 0x1fffffffu) return bad(r, "bad field number");
    if (w == 3 || w == 4) return bad(r, "protobuf groups (wire type 3/4) are not used by ONNX");
    if (w != WT_VARINT && w != WT_I64 && w != WT_LEN && w != WT_I32) return bad(r, "invalid wire type");
    *field = (uint32_t)f;
    *wire = w;
    return TML_OK;
}

/* A length-delimited payload: checked against the bytes left. */
static tml_status rd_len(pb *r, onx_slice *s)
{
    uint64_t n;
    s->p = NULL;
    s->n = 0;
    tml_status st = rd_varint(r, &n);
    if (st) return st;
    if (n > (uint64_t)(r->end - r->p)) {
        return tml_error(TML_ERR_FORMAT, "length %llu at byte %zu exceeds the %zu bytes left",
                         (unsigned long long)n, OFF(r), (size_t)(r->end - r->p));
    }
    s->p = r->p;
    s->n = (size_t)n;
    r->p += n;
    return TML_OK;
}

static tml_status rd_fixed(pb *r, size_t n, const uint8_t **at)
{
    if ((size_t)(r->end - r->p) < n) return bad(r, "truncated fixed-size field");
    *at = r->p;
    r->p += n;
    return TML_OK;
}

static tml_status skip_field(pb *r, int wire)
{
    uint64_t v;
    onx_slice s;
    const uint8_t *at = NULL;
    switch (wire) {
    case WT_VARINT:
        return rd_varint(r, &v);
    case WT_I64:
        return rd_fixed(r, 8, &at);
    case WT_LEN:
        return rd_len(r, &s);
    case WT_I32:
        return rd_fixed(r, 4, &at);
    default:
        return bad(r, "invalid wire type");
    }
}

static tml_status want_wire(const pb *r, uint32_t field, int wire, int want, const char *msg,
                            const char *fname)
{
    if (wire == want) return TML_OK;
    return tml_error(TML_ERR_FORMAT, "%s field %u (%s) has wire type %d, expected %d (byte %zu)", msg, field,
                     fname, wire, want, OFF(r));
}

static pb sub_reader(const pb *r, onx_slice s)
{
    pb q = {r->base, s.p, s.p + s.n, r->depth + 1};
    return q;
}

static tml_status enter(const pb *r, const char *msg)
{
    if (r->depth > ONX_MAX_DEPTH)
        return tml_error(TML_ERR_FORMAT, "%s nested deeper than %d messages", msg, ONX_MAX_DEPTH);
    return TML_OK;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

static float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double f64_of(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* ---- repeated scalars (packed or not) ----------------------------------------------- */

typedef enum { EL_VARINT, EL_F32, EL_F64 } elem_kind;

static int elem_wire(elem_kind k)
{
    return k == EL_VARINT ? WT_VARINT : k == EL_F32 ? WT_I32 : WT_I64;
}

/* Counts the elements one occurrence of a repeated scalar field adds. */
static tml_status rep_count(pb *r, int wire, elem_kind k, const char *msg, uint32_t field, const char *fname,
                            int64_t *count)
{
    if (wire == WT_LEN) {
        onx_slice s;
        tml_status st = rd_len(r, &s);
        if (st) return st;
        if (k == EL_VARINT) {
            pb q = sub_reader(r, s);
            while (q.p < q.end) {
                uint64_t v;
                st = rd_varint(&q, &v);
                if (st) return st;
                (*count)++;
            }
            return TML_OK;
        }
        size_t es = k == EL_F32 ? 4 : 8;
        if (s.n % es) {
            return tml_error(TML_ERR_FORMAT, "%s field %u (%s): packed length %zu is not a multiple of %zu",
                             msg, field, fname, s.n, es);
        }
        *count += (int64_t)(s.n / es);
        return TML_OK;
    }
    tml_status st = want_wire(r, field, wire, elem_wire(k), msg, fname);
    if (st) return st;
    (*count)++;
    return skip_field(r, wire);
}

/* Stores one decoded element. out: int64_t[] (varint), float[] (f32), double[] (f64). */
static void put_elem(elem_kind k, void *out, int64_t idx, const uint8_t *p, uint64_t v)
{
    switch (k) {
    case EL_VARINT:
        ((int64_t *)out)[idx] = (int64_t)v;
        break;
    case EL_F32:
        ((float *)out)[idx] = f32_of(le32(p));
        break;
    case EL_F64:
        ((double *)out)[idx] = f64_of(le64(p));
        break;
    }
}

/* Reads one element of kind k from r and stores it at out[*n] while *n < cap;
 * counts it either way. */
static tml_status take_elem(pb *r, elem_kind k, void *out, int64_t cap, int64_t *n)
{
    uint64_t v = 0;
    const uint8_t *at = NULL;
    tml_status st = k == EL_VARINT ? rd_varint(r, &v) : rd_fixed(r, k == EL_F32 ? 4 : 8, &at);
    if (st) return st;
    if (*n < cap) put_elem(k, out, *n, at, v);
    (*n)++;
    return TML_OK;
}

/* Re-reads message `msg` and collects every element of repeated field
 * `field` into out (capacity cap; stops storing at cap). *n = elements seen. */
static tml_status rep_collect(const uint8_t *base, onx_slice msg, uint32_t field, elem_kind k, void *out,
                              int64_t cap, int64_t *n)
{
    pb r = {base, msg.p, msg.p + msg.n, 0};
    *n = 0;
    while (r.p < r.end) {
        uint32_t f;
        int wire;
        tml_status st = rd_key(&r, &f, &wire);
        if (st) return st;
        if (f != field) {
            st = skip_field(&r, wire);
            if (st) return st;
            continue;
        }
        if (wire == WT_LEN) {
            onx_slice s;
            st = rd_len(&r, &s);
            if (st) return st;
            pb q = sub_reader(&r, s);
            while (q.p < q.end)
                if ((st = take_elem(&q, k, out, cap, n))) return st;
        } else if (wire == elem_wire(k)) {
            if ((st = take_elem(&r, k, out, cap, n))) return st;
        } else {
            return bad(&r, "repeated field with the wrong wire type");
        }
    }
    return TML_OK;
}

/* ---- slices ------------------------------------------------------------------------- */

int onx_slice_eq(onx_slice s, const char *lit)
{
    size_t l = strlen(lit);
    return s.n == l && (l == 0 || memcmp(s.p, lit, l) == 0);
}

char *onx_slice_dup(onx_slice s)
{
    size_t n = s.n > ONX_MAX_NAME ? ONX_MAX_NAME : s.n;
    if (n && memchr(s.p, 0, n)) {
        tml_error(TML_ERR_FORMAT, "a name contains a NUL byte");
        return NULL;
    }
    char *d = malloc(n + 1);
    if (!d) {
        tml_error(TML_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (n) memcpy(d, s.p, n);
    d[n] = '\0';
    return d;
}

void onx_slice_print(onx_slice s, char *buf, size_t cap)
{
    if (!cap) return;
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    for (size_t i = 0; i < n; i++) buf[i] = (s.p[i] < 0x20 || s.p[i] == 0x7f) ? '?' : (char)s.p[i];
    buf[n] = '\0';
}

/* ---- TensorProto -------------------------------------------------------------------- */

tml_status onx_parse_tensor(const uint8_t *base, const uint8_t *p, size_t len, int depth, onx_tensor *t)
{
    static const char M[] = "TensorProto";
    pb r = {base, p, p + len, depth};
    memset(t, 0, sizeof *t);
    t->msg.p = p;
    t->msg.n = len;
    tml_status st = enter(&r, M);
    if (st) return st;
    int64_t ndims = 0;
    while (r.p < r.end) {
        uint32_t f;
        int wire;
        uint64_t v;
        onx_slice s;
        if ((st = rd_key(&r, &f, &wire))) return st;
        switch (f) {
        case 1:
            st = rep_count(&r, wire, EL_VARINT, M, f, "dims", &ndims);
            break;
        case 2:
            if (!(st = want_wire(&r, f, wire, WT_VARINT, M, "data_type")) && !(st = rd_varint(&r, &v)))
                t->data_type = (int32_t)v;
            break;
        case 3:
            t->has_segment = 1;
            st = want_wire(&r, f, wire, WT_LEN, M, "segment");
            if (!st) st = skip_field(&r, wire);
            break;
        case 4:
            st = rep_count(&r, wire, EL_F32, M, f, "float_data", &t->n_float);
            break;
        case 5:
            st = rep_count(&r, wire, EL_VARINT, M, f, "int32_data", &t->n_int32);
            break;
        case 6:
            st = want_wire(&r, f, wire, WT_LEN, M, "string_data");
            if (!st) st = skip_field(&r, wire);
            t->n_string++;
            break;
        case 7:
            st = rep_count(&r, wire, EL_VARINT, M, f, "int64_data", &t->n_int64);
            break;
        case 8:
            if (!(st = want_wire(&r, f, wire, WT_LEN, M, "name"))) st = rd_len(&r, &t->name);
            break;
        case 9:
            if (!(st = want_wire(&r, f, wire, WT_LEN, M, "raw_data"))) st = rd_len(&r, &t->raw);
            t->has_raw = 1;
            break;
        case 10:
            st = rep_count(&r, wire, EL_F64, M, f, "double_data", &t->n_double);
            break;
        case 11:
            st = rep_count(&r, wire, EL_VARINT, M, f, "uint64_data", &t->n_uint64);
            break;
        case 13:
            if (!(st = want_wire(&r, f, wire, WT_LEN, M, "external_data"))) st = rd_len(&r, &s);
            t->external = 1;
            break;
        case 14:
            if (!(st = want_wire(&r, f, wire, WT_VARINT, M, "data_location")) && !(st = rd_varint(&r, &v)) &&
                v == 1)
                t->external = 1;
            break;
        default:
            st = skip_field(&r, wire);
            break;
        }
        if (st) return st;
    }
    if (ndims > ONX_MAX_RANK)
        return tml_error(TML_ERR_UNSUPPORTED, "tensor has %lld dimensions (at most %d supported)",
                         (long long)ndims, ONX_MAX_RANK);
    if (ndims > 0) {
        int64_t n = 0;
        st = rep_collect(base, t->msg, 1, EL_VARINT, t->dims, ONX_MAX_RANK, &n);
        if (st) return st;
        for (int i = 0; i < (int)n; i++)
            if (t->dims[i] < 0)
                return tml_error(TML_ERR_FORMAT, "tensor dimension %d is negative (%lld)", i,
                                 (long long)t->dims[i]);
    }
    t->ndim = (int)ndims;
    return TML_OK;
}

tml_status onx_tensor_numel(const onx_tensor *t, int64_t *numel)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] > TML_MAX_NUMEL || (t->dims[i] && n > TML_MAX_NUMEL / t->dims[i]))
            return tml_error(TML_ERR_NOMEM, "tensor of %d dims is larger than %lld elements", t->ndim,
                             (long long)TML_MAX_NUMEL);
        n *= t->dims[i];
    }
    if (n > TML_MAX_NUMEL)
        return tml_error(TML_ERR_NOMEM, "tensor is larger than %lld elements", (long long)TML_MAX_NUMEL);
    *numel = n;
    return TML_OK;
}

int onx_dtype_is_float(int32_t dt)
{
    return dt == ONX_FLOAT || dt == ONX_DOUBLE || dt == ONX_FLOAT16 || dt == ONX_BFLOAT16;
}

int onx_dtype_is_int(int32_t dt)
{
    return dt == ONX_INT64 || dt == ONX_INT32 || dt == ONX_INT16 || dt == ONX_INT8 || dt == ONX_UINT8 ||
           dt == ONX_UINT16 || dt == ONX_UINT32 || dt == ONX_UINT64 || dt == ONX_BOOL;
}

const char *onx_dtype_name(int32_t dt)
{
    static const char *const names[] = {"undefined", "float",  "uint8",     "int8",       "uint16",  "int16",
                                        "int32",     "int64",  "string",    "bool",       "float16", "double",
                                        "uint32",    "uint64", "complex64", "complex128", "bfloat16"};
    return (dt >= 0 && dt <= 16) ? names[dt] : "unknown type";
}

static size_t dtype_bytes(int32_t dt)
{
    switch (dt) {
    case ONX_FLOAT:
    case ONX_INT32:
    case ONX_UINT32:
        return 4;
    case ONX_DOUBLE:
    case ONX_INT64:
    case ONX_UINT64:
        return 8;
    case ONX_FLOAT16:
    case ONX_BFLOAT16:
    case ONX_INT16:
    case ONX_UINT16:
        return 2;
    case ONX_INT8:
    case ONX_UINT8:
    case ONX_BOOL:
        return 1;
    default:
        return 0;
    }
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24); /* zero / subnormal */
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(m | 0x400), (int)e - 25);
    return sign ? -v : v;
}

/* Checks what a tensor can be decoded from and returns its element count
 * and where the values are: raw (1) or which typed field (its count). */
static tml_status tensor_source(const onx_tensor *t, int64_t *numel, int *use_raw)
{
    if (t->external)
        return tml_error(
            TML_ERR_UNSUPPORTED,
            "its data is stored in an external file (external data); save the model "
            "with the weights inside: onnx.save(onnx.load(path), out, save_as_external_data=False)");
    if (t->has_segment) return tml_error(TML_ERR_UNSUPPORTED, "segmented tensors are not supported");
    tml_status st = onx_tensor_numel(t, numel);
    if (st) return st;
    size_t es = dtype_bytes(t->data_type);
    if (!es)
        return tml_error(TML_ERR_UNSUPPORTED, "data type %s (%d) is not supported",
                         onx_dtype_name(t->data_type), (int)t->data_type);
    if (t->has_raw) {
        if ((uint64_t)t->raw.n != (uint64_t)*numel * es)
            return tml_error(TML_ERR_FORMAT, "raw_data has %zu bytes, %lld elements of %s need %llu",
                             t->raw.n, (long long)*numel, onx_dtype_name(t->data_type),
                             (unsigned long long)*numel * es);
        *use_raw = 1;
        return TML_OK;
    }
    int64_t have;
    switch (t->data_type) {
    case ONX_FLOAT:
        have = t->n_float;
        break;
    case ONX_DOUBLE:
        have = t->n_double;
        break;
    case ONX_INT64:
        have = t->n_int64;
        break;
    case ONX_UINT32:
    case ONX_UINT64:
        have = t->n_uint64;
        break;
    default:
        have = t->n_int32;
        break; /* int32, int16, int8, uint8, uint16, bool, float16, bfloat16 */
    }
    if (have != *numel)
        return tml_error(TML_ERR_FORMAT, "has %lld stored values for %lld elements", (long long)have,
                         (long long)*numel);
    *use_raw = 0;
    return TML_OK;
}

static void *alloc_elems(int64_t n, size_t es)
{
    void *p = malloc((size_t)(n > 0 ? n : 1) * es);
    if (!p) tml_error(TML_ERR_NOMEM, "out of memory (%lld values)", (long long)n);
    return p;
}

tml_status onx_tensor_f32(const onx_tensor *t, float **out, int64_t *numel)
{
    *out = NULL;
    if (!onx_dtype_is_float(t->data_type))
        return tml_error(TML_ERR_UNSUPPORTED, "is %s, expected a float type", onx_dtype_name(t->data_type));
    int raw;
    int64_t n;
    tml_status st = tensor_source(t, &n, &raw);
    if (st) return st;
    float *d = alloc_elems(n, sizeof(float));
    if (!d) return TML_ERR_NOMEM;
    const uint8_t *p = t->raw.p;
    if (raw) {
        for (int64_t i = 0; i < n; i++) {
            switch (t->data_type) {
            case ONX_FLOAT:
                d[i] = f32_of(le32(p + 4 * i));
                break;
            case ONX_DOUBLE:
                d[i] = (float)f64_of(le64(p + 8 * i));
                break;
            case ONX_FLOAT16:
                d[i] = half_to_float((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
                break;
            default:
                d[i] = f32_of((uint32_t)(p[2 * i] | (p[2 * i + 1] << 8)) << 16);
                break; /* bfloat16 */
            }
        }
    } else if (n > 0) {
        int64_t got = 0;
        if (t->data_type == ONX_FLOAT) {
            st = rep_collect(t->msg.p, t->msg, 4, EL_F32, d, n, &got);
        } else if (t->data_type == ONX_DOUBLE) {
            double *tmp = alloc_elems(n, sizeof(double));
            if (!tmp)
                st = TML_ERR_NOMEM;
            else
                st = rep_collect(t->msg.p, t->msg, 10, EL_F64, tmp, n, &got);
            if (!st)
                for (int64_t i = 0; i < n; i++) d[i] = (float)tmp[i];
            free(tmp);
        } else { /* float16 / bfloat16 bits in int32_data */
            int64_t *tmp = alloc_elems(n, sizeof(int64_t));
            if (!tmp)
                st = TML_ERR_NOMEM;
            else
                st = rep_collect(t->msg.p, t->msg, 5, EL_VARINT, tmp, n, &got);
            if (!st)
                for (int64_t i = 0; i < n; i++) {
                    uint16_t h = (uint16_t)tmp[i];
                    d[i] = t->data_type == ONX_FLOAT16 ? half_to_float(h) : f32_of((uint32_t)h << 16);
                }
            free(tmp);
        }
        if (!st && got != n) st = tml_error(TML_ERR_FORMAT, "typed data changed between reads");
    }
    if (st) {
        free(d);
        return st;
    }
    *out = d;
    *numel = n;
    return TML_OK;
}

tml_status onx_tensor_i64(const onx_tensor *t, int64_t **out, int64_t *numel)
{
    *out = NULL;
    if (!onx_dtype_is_int(t->data_type))
        return tml_error(TML_ERR_UNSUPPORTED, "is %s, expected an integer type",
                         onx_dtype_name(t->data_type));
    int raw;
    int64_t n;
    tml_status st = tensor_source(t, &n, &raw);
    if (st) return st;
    int64_t *d = alloc_elems(n, sizeof(int64_t));
    if (!d) return TML_ERR_NOMEM;
    if (raw) {
        const uint8_t *p = t->raw.p;
        for (int64_t i = 0; i < n; i++) {
            switch (t->data_type) {
            case ONX_INT64:
            case ONX_UINT64:
                d[i] = (int64_t)le64(p + 8 * i);
                break;
            case ONX_INT32:
                d[i] = (int32_t)le32(p + 4 * i);
                break;
            case ONX_UINT32:
                d[i] = (int64_t)le32(p + 4 * i);
                break;
            case ONX_INT16:
                d[i] = (int16_t)(uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
                break;
            case ONX_UINT16:
                d[i] = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
                break;
            case ONX_INT8:
                d[i] = (int8_t)p[i];
                break;
            default:
                d[i] = p[i];
                break; /* uint8, bool */
            }
        }
    } else if (n > 0) {
        int64_t got = 0;
        uint32_t field = t->data_type == ONX_INT64                                    ? 7
                         : (t->data_type == ONX_UINT32 || t->data_type == ONX_UINT64) ? 11
                                                                                      : 5;
        st = rep_collect(t->msg.p, t->msg, field, EL_VARINT, d, n, &got);
        if (!st && got != n) st = tml_error(TML_ERR_FORMAT, "typed data changed between reads");
        if (!st && field == 5)
            for (int64_t i = 0; i < n; i++) d[i] = (int32_t)d[i];
    }
    if (st) {
        free(d);
        return st;
    }
    *out = d;
    *numel = n;
    return TML_OK;
}

/* ---- AttributeProto --------------------------------------------------------------------- */

static tml_status parse_attr(pb *r, onx_attr *a)
{
    static const char M[] = "AttributeProto";
    memset(a, 0, sizeof *a);
    a->msg.p = r->p;
    a->msg.n = (size_t)(r->end - r->p);
    tml_status st = enter(r, M);
    if (st) return st;
    while (r->p < r->end) {
        uint32_t f;
        int wire;
        uint64_t v;
        onx_slice s;
        const uint8_t *at = NULL;
        if ((st = rd_key(r, &f, &wire))) return st;
        switch (f) {
        case 1:
            if (!(st = want_wire(r, f, wire, WT_LEN, M, "name"))) st = rd_len(r, &a->name);
            break;
        case 2:
            if (!(st = want_wire(r, f, wire, WT_I32, M, "f")) && !(st = rd_fixed(r, 4, &at))) {
                a->f = f32_of(le32(at));
                a->has_f = 1;
            }
            break;
        case 3:
            if (!(st = want_wire(r, f, wire, WT_VARINT, M, "i")) && !(st = rd_varint(r, &v))) {
                a->i = (int64_t)v;
                a->has_i = 1;
            }
            break;
        case 4:
            if (!(st = want_wire(r, f, wire, WT_LEN, M, "s"))) st = rd_len(r, &a->s);
            a->has_s = 1;
            break;
        case 5:
            if (!(st = want_wire(r, f, wire, WT_LEN, M, "t"))) st = rd_len(r, &a->t);
            a->has_t = 1;
            break;
        case 6:
            if (!(st = want_wire(r, f, wire, WT_LEN, M, "g"))) st = rd_len(r, &s);
            a->has_g = 1;
            break;
        case 7:
            st = rep_count(r, wire, EL_F32, M, f, "floats", &a->n_floats);
            break;
        case 8:
            st = rep_count(r, wire, EL_VARINT, M, f, "ints", &a->n_ints);
            break;
        case 9:
        case 10:
        case 11:
        case 14:
        case 15:
        case 22:
        case 23:
            if (!(st = want_wire(r, f, wire, WT_LEN, M, "list")) && !(st = rd_len(r, &s))) {
                if (f == 9)
                    a->n_strings++;
                else if (f == 10)
                    a->n_tensors++;
                else if (f == 11)
                    a->n_graphs++;
                else if (f == 22 || f == 23)
                    a->n_sparse++;
                else
                    a->n_tp++;
            }
            break;
        case 20:
            if (!(st = want_wire(r, f, wire, WT_VARINT, M, "type")) && !(st = rd_varint(r, &v)))
                a->type = (int32_t)v;
            break;
        case 21:
            if (!(st = want_wire(r, f, wire, WT_LEN, M, "ref_attr_name"))) st = rd_len(r, &s);
            a->has_ref = 1;
            break;
        default:
            st = skip_field(r, wire);
            break;
        }
        if (st) return st;
    }
    return TML_OK;
}

int onx_attr_kind(const onx_attr *a)
{
    if (a->type) return a->type;
    if (a->n_floats) return ONX_ATTR_FLOATS;
    if (a->n_ints) return ONX_ATTR_INTS;
    if (a->n_strings) return ONX_ATTR_STRINGS;
    if (a->has_t) return ONX_ATTR_TENSOR;
    if (a->has_g) return ONX_ATTR_GRAPH;
    if (a->has_s) return ONX_ATTR_STRING;
    if (a->has_i) return ONX_ATTR_INT;
    if (a->has_f) return ONX_ATTR_FLOAT;
    return ONX_ATTR_UNDEFINED;
}

tml_status onx_attr_ints(const onx_attr *a, int64_t *out, int max, int *n)
{
    int64_t got;
    tml_status st = rep_collect(a->msg.p, a->msg, 8, EL_VARINT, out, max, &got);
    if (st) return st;
    *n = got > 1 << 30 ? 1 << 30 : (int)got;
    return TML_OK;
}

tml_status onx_attr_floats(const onx_attr *a, float *out, int max, int *n)
{
    int64_t got;
    tml_status st = rep_collect(a->msg.p, a->msg, 7, EL_F32, out, max, &got);
    if (st) return st;
    *n = got > 1 << 30 ? 1 << 30 : (int)got;
    return TML_OK;
}

/* ---- NodeProto --------------------------------------------------------------------------- */

static tml_status parse_node(pb *r, onx_node *n)
{
    static const char M[] = "NodeProto";
    tml_status st = enter(r, M);
    if (st) return st;
    const uint8_t *start = r->p;
    int ni = 0, no = 0, na = 0;
    /* pass 1: count and check wire types */
    while (r->p < r->end) {
        uint32_t f;
        int wire;
        if ((st = rd_key(r, &f, &wire))) return st;
        const char *fname = f == 1   ? "input"
                            : f == 2 ? "output"
                            : f == 3 ? "name"
                            : f == 4 ? "op_type"
                            : f == 5 ? "attribute"
                                     : "domain";
        if (f >= 1 && f <= 5 && (st = want_wire(r, f, wire, WT_LEN, M, fname))) return st;
        if (f == 7 && (st = want_wire(r, f, wire, WT_LEN, M, fname))) return st;
        if (f == 1) ni++;
        if (f == 2) no++;
        if (f == 5) na++;
        if ((st = skip_field(r, wire))) return st;
    }
    if (ni > ONX_MAX_NODE_IO || no > ONX_MAX_NODE_IO)
        return tml_error(TML_ERR_UNSUPPORTED, "node has %d inputs and %d outputs (limit %d)", ni, no,
                         ONX_MAX_NODE_IO);
    if (na > ONX_MAX_ATTRS)
        return tml_error(TML_ERR_UNSUPPORTED, "node has %d attributes (limit %d)", na, ONX_MAX_ATTRS);
    n->in = calloc((size_t)(ni ? ni : 1), sizeof *n->in);
    n->out = calloc((size_t)(no ? no : 1), sizeof *n->out);
    n->attr = calloc((size_t)(na ? na : 1), sizeof *n->attr);
    if (!n->in || !n->out || !n->attr) return tml_error(TML_ERR_NOMEM, "out of memory");
    /* pass 2: fill */
    r->p = start;
    while (r->p < r->end) {
        uint32_t f;
        int wire;
        onx_slice s;
        if ((st = rd_key(r, &f, &wire))) return st;
        if (f == 1 || f == 2 || f == 3 || f == 4 || f == 5 || f == 7) {
            if ((st = rd_len(r, &s))) return st;
            switch (f) {
            case 1:
                n->in[n->n_in++] = s;
                break;
            case 2:
                n->out[n->n_out++] = s;
                break;
            case 3:
                n->name = s;
                break;
            case 4:
                n->op_type = s;
                break;
            case 7:
                n->domain = s;
                break;
            default: {
                pb q = sub_reader(r, s);
                st = parse_attr(&q, &n->attr[n->n_attr]);
                n->n_attr++;
                if (st) return tml_error_context(st, "attribute %d", n->n_attr - 1);
            }
            }
        } else if ((st = skip_field(r, wire))) {
            return st;
        }
    }
    return TML_OK;
}

/* ---- ValueInfoProto ------------------------------------------------------------------------ */

static tml_status parse_shape(pb *r, onx_valinfo *v)
{
    static const char M[] = "TensorShapeProto";
    tml_status st = enter(r, M);
    if (st) return st;
    v->has_shape = 1;
    while (r->p < r->end) {
        uint32_t f;
        int wire;
        onx_slice s;
        if ((st = rd_key(r, &f, &wire))) return st;
        if (f != 1) {
            if ((st = skip_field(r, wire))) return st;
            continue;
        }
        if ((st = want_wire(r, f, wire, WT_LEN, M, "dim")) || (st = rd_len(r, &s))) return st;
        pb q = sub_reader(r, s);
        if ((st = enter(&q, "TensorShapeProto.Dimension"))) return st;
        int64_t dv = -1;
        while (q.p < q.end) {
            uint32_t g;
            int w2;
            uint64_t x;
            if ((st = rd_key(&q, &g, &w2))) return st;
            if (g == 1) {
                if ((st = want_wire(&q, g, w2, WT_VARINT, "Dimension", "dim_value")) ||
                    (st = rd_varint(&q, &x)))
                    return st;
                dv = (int64_t)x;
                if (dv < 0) dv = -1; /* negative = unknown */
            } else if (g == 2) {
                if ((st = want_wire(&q, g, w2, WT_LEN, "Dimension", "dim_param")) ||
                    (st = skip_field(&q, w2)))
                    return st;
                dv = -1;
            } else if ((st = skip_field(&q, w2))) {
                return st;
            }
        }
        if (v->ndim < ONX_MAX_RANK) v->dims[v->ndim] = dv;
        if (v->ndim < 1 << 20) v->ndim++;
    }
    return TML_OK;
}

static tml_status parse_valinfo(pb *r, onx_valinfo *v)
{
    static const char M[] = "ValueInfoProto";
    memset(v, 0, sizeof *v);
    tml_status st = enter(r, M);
    if (st) return st;
    while (r->p < r->end) {
        uint32_t f;
        int wire;
        onx_slice s;
        if ((st = rd_key(r, &f, &wire))) return st;
        if (f == 1) {
            if ((st = want_wire(r, f, wire, WT_LEN, M, "name")) || (st = rd_len(r, &v->name))) return st;
        } else if (f == 2) {
            if ((st = want_wire(r, f, wire, WT_LEN, M, "type")) || (st = rd_len(r, &s))) return st;
            pb tp = sub_reader(r, s);
            if ((st = enter(&tp, "TypeProto"))) return st;
            while (tp.p < tp.end) {
                uint32_t g;
                int w2;
                onx_slice s2;
                if ((st = rd_key(&tp, &g, &w2))) return st;
                if (g == 4 || g == 5 || g == 8 || g == 9) {
                    v->other_type = 1;
                    if ((st = skip_field(&tp, w2))) return st;
                    continue;
                }
                if (g != 1) {
                    if ((st = skip_field(&tp, w2))) return st;
                    continue;
                }
                if ((st = want_wire(&tp, g, w2, WT_LEN, "TypeProto", "tensor_type")) ||
                    (st = rd_len(&tp, &s2)))
                    return st;
                v->is_tensor = 1;
                pb tt = sub_reader(&tp, s2);
                if ((st = enter(&tt, "TypeProto.Tensor"))) return st;
                while (tt.p < tt.end) {
                    uint32_t h;
                    int w3;
                    uint64_t x;
                    onx_slice s3;
                    if ((st = rd_key(&tt, &h, &w3))) return st;
                    if (h == 1) {
                        if ((st = want_wire(&tt, h, w3, WT_VARINT, "TypeProto.Tensor", "elem_type")) ||
                            (st = rd_varint(&tt, &x)))
                            return st;
                        v->elem_type = (int32_t)x;
                    } else if (h == 2) {
                        if ((st = want_wire(&tt, h, w3, WT_LEN, "TypeProto.Tensor", "shape")) ||
                            (st = rd_len(&tt, &s3)))
                            return st;
                        pb sh = sub_reader(&tt, s3);
                        v->ndim = 0;
                        if ((st = parse_shape(&sh, v))) return st;
                    } else if ((st = skip_field(&tt, w3))) {
                        return st;
                    }
                }
            }
        } else if ((st = skip_field(r, wire))) {
            return st;
        }
    }
    return TML_OK;
}

/* ---- GraphProto ------------------------------------------------------------------------------ */

static void graph_free(onx_graph *g)
{
    for (int i = 0; i < g->n_node; i++) {
        free(g->node[i].in);
        free(g->node[i].out);
        free(g->node[i].attr);
    }
    free(g->node);
    free(g->init);
    free(g->input);
    free(g->output);
    memset(g, 0, sizeof *g);
}

static tml_status parse_graph(pb *r, onx_graph *g)
{
    static const char M[] = "GraphProto";
    tml_status st = enter(r, M);
    if (st) return st;
    const uint8_t *start = r->p;
    int64_t nn = 0, ni = 0, nin = 0, nout = 0;
    while (r->p < r->end) {
        uint32_t f;
        int wire;
        if ((st = rd_key(r, &f, &wire))) return st;
        if (f == 1 || f == 2 || f == 5 || f == 11 || f == 12 || f == 15) {
            static const char *const names[] = {"", "node", "name", "", "", "initializer"};
            const char *fname = f < 6     ? names[f]
                                : f == 11 ? "input"
                                : f == 12 ? "output"
                                          : "sparse_initializer";
            if ((st = want_wire(r, f, wire, WT_LEN, M, fname))) return st;
        }
        nn += f == 1;
        ni += f == 5;
        nin += f == 11;
        nout += f == 12;
        g->n_sparse_init += f == 15;
        if ((st = skip_field(r, wire))) return st;
    }
    if (nn > ONX_MAX_NODES)
        return tml_error(TML_ERR_UNSUPPORTED, "graph has %lld nodes (limit %d)", (long long)nn,
                         ONX_MAX_NODES);
    if (ni > ONX_MAX_INITS)
        return tml_error(TML_ERR_UNSUPPORTED, "graph has %lld initializers (limit %d)", (long long)ni,
                         ONX_MAX_INITS);
    if (nin > ONX_MAX_VALUES || nout > ONX_MAX_VALUES)
        return tml_error(TML_ERR_UNSUPPORTED, "graph has too many inputs or outputs");
    g->node = calloc((size_t)(nn ? nn : 1), sizeof *g->node);
    g->init = calloc((size_t)(ni ? ni : 1), sizeof *g->init);
    g->input = calloc((size_t)(nin ? nin : 1), sizeof *g->input);
    g->output = calloc((size_t)(nout ? nout : 1), sizeof *g->output);
    if (!g->node || !g->init || !g->input || !g->output) return tml_error(TML_ERR_NOMEM, "out of memory");
    r->p = start;
    while (r->p < r->end) {
        uint32_t f;
        int wire;
        onx_slice s;
        if ((st = rd_key(r, &f, &wire))) return st;
        if (f != 1 && f != 2 && f != 5 && f != 11 && f != 12) {
            if ((st = skip_field(r, wire))) return st;
            continue;
        }
        if ((st = rd_len(r, &s))) return st;
        pb q = sub_reader(r, s);
        switch (f) {
        case 1:
            st = parse_node(&q, &g->node[g->n_node]);
            g->n_node++;
            if (st) return tml_error_context(st, "node %d", g->n_node - 1);
            break;
        case 2:
            g->name = s;
            break;
        case 5:
            st = onx_parse_tensor(r->base, s.p, s.n, q.depth, &g->init[g->n_init]);
            g->n_init++;
            if (st) return tml_error_context(st, "initializer %d", g->n_init - 1);
            break;
        case 11:
            st = parse_valinfo(&q, &g->input[g->n_input]);
            g->n_input++;
            if (st) return tml_error_context(st, "graph input %d", g->n_input - 1);
            break;
        default:
            st = parse_valinfo(&q, &g->output[g->n_output]);
            g->n_output++;
            if (st) return tml_error_context(st, "graph output %d", g->n_output - 1);
            break;
        }
    }
    return TML_OK;
}

/* ---- ModelProto -------------------------------------------------------------------------------- */

void onx_model_free(onx_model *m)
{
    if (!m) return;
    graph_free(&m->graph);
    memset(m, 0, sizeof *m);
}

static tml_status parse_opset(pb *r, onx_model *m)
{
    tml_status st = enter(r, "OperatorSetIdProto");
    if (st) return st;
    onx_slice domain = {NULL, 0};
    int64_t version = 0;
    int has_version = 0;
    while (r->p < r->end) {
        uint32_t f;
        int wire;
        uint64_t v;
        if ((st = rd_key(r, &f, &wire))) return st;
        if (f == 1) {
            if ((st = want_wire(r, f, wire, WT_LEN, "OperatorSetIdProto", "domain")) ||
                (st = rd_len(r, &domain)))
                return st;
        } else if (f == 2) {
            if ((st = want_wire(r, f, wire, WT_VARINT, "OperatorSetIdProto", "version")) ||
                (st = rd_varint(r, &v)))
                return st;
            version = (int64_t)v;
            has_version = 1;
        } else if ((st = skip_field(r, wire))) {
            return st;
        }
    }
    if (domain.n == 0 || onx_slice_eq(domain, "ai.onnx")) {
        if (!has_version)
            return tml_error(TML_ERR_FORMAT, "opset_import of the default domain has no version");
        if (m->has_opset && m->opset != version)
            return tml_error(TML_ERR_FORMAT, "the default domain is imported twice (opsets %lld and %lld)",
                             (long long)m->opset, (long long)version);
        m->has_opset = 1;
        m->opset = version;
    } else {
        if (!m->n_other_domains) m->other_domain = domain;
        m->n_other_domains++;
    }
    return TML_OK;
}

tml_status onx_parse_model(const uint8_t *buf, size_t len, onx_model *m)
{
    static const char M[] = "ModelProto";
    memset(m, 0, sizeof *m);
    pb r = {buf, buf, buf + len, 0};
    tml_status st = TML_OK;
    onx_slice graph = {NULL, 0};
    while (r.p < r.end && !st) {
        uint32_t f;
        int wire;
        uint64_t v;
        onx_slice s;
        if ((st = rd_key(&r, &f, &wire))) break;
        switch (f) {
        case 1:
            if (!(st = want_wire(&r, f, wire, WT_VARINT, M, "ir_version")) && !(st = rd_varint(&r, &v)))
                m->ir_version = (int64_t)v;
            break;
        case 2:
            if (!(st = want_wire(&r, f, wire, WT_LEN, M, "producer_name")))
                st = rd_len(&r, &m->producer_name);
            break;
        case 3:
            if (!(st = want_wire(&r, f, wire, WT_LEN, M, "producer_version")))
                st = rd_len(&r, &m->producer_version);
            break;
        case 7:
            if (!(st = want_wire(&r, f, wire, WT_LEN, M, "graph")) && !(st = rd_len(&r, &s))) {
                if (m->has_graph) st = tml_error(TML_ERR_FORMAT, "ModelProto has two graphs");
                graph = s;
                m->has_graph = 1;
            }
            break;
        case 8:
            if (!(st = want_wire(&r, f, wire, WT_LEN, M, "opset_import")) && !(st = rd_len(&r, &s))) {
                pb q = sub_reader(&r, s);
                st = parse_opset(&q, m);
            }
            break;
        case 25:
            if (!(st = want_wire(&r, f, wire, WT_LEN, M, "functions")) && !(st = rd_len(&r, &s)))
                m->n_functions++;
            break;
        default:
            st = skip_field(&r, wire);
            break;
        }
    }
    if (!st && m->has_graph) {
        pb q = sub_reader(&r, graph);
        st = parse_graph(&q, &m->graph);
        if (st) tml_error_context(st, "graph");
    }
    if (st) {
        onx_model_free(m);
        return st;
    }
    return TML_OK;
}
