/*
 * onnx_internal.h - the ONNX protobuf reader (formats/onnx_pb.c) shared with
 * the importer (formats/onnx.c) and its tests. Not public API.
 *
 * The reader decodes the protobuf wire format directly:
 *   1. a message is a sequence of fields: key = varint (field << 3 | wire type),
 *      then by wire type: 0 varint, 1 8 bytes, 2 varint length + bytes,
 *      5 4 bytes (3/4, deprecated groups, are refused; 6/7 do not exist)
 *   2. every varint is at most 10 bytes; every length is checked against the
 *      bytes left in the enclosing message before use
 *   3. known fields must have the wire type onnx.proto gives them (repeated
 *      numbers may be packed or not); unknown fields are skipped
 *   4. nested messages are decoded to a fixed depth (ONX_MAX_DEPTH)
 * Field numbers are those of onnx.proto (ONNX 1.12). Decoded structures point
 * into the caller's buffer (onx_slice): the buffer must outlive them. Array
 * sizes are counted from the bytes present, never from a declared count, and
 * capped (ONX_MAX_*).
 */
#ifndef TML_ONNX_INTERNAL_H
#define TML_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tinyml/tml_onnx.h"

#define ONX_MAX_RANK TML_ONNX_MAX_RANK
#define ONX_MAX_DEPTH 16
#define ONX_MAX_NODES 20000   /* nodes in a graph */
#define ONX_MAX_INITS 100000  /* initializers in a graph */
#define ONX_MAX_VALUES 100000 /* graph inputs / outputs */
#define ONX_MAX_NODE_IO 4096  /* inputs or outputs of one node */
#define ONX_MAX_ATTRS 1024    /* attributes of one node */
#define ONX_MAX_NAME 4096     /* bytes of a name we copy */

/* TensorProto.DataType */
enum {
    ONX_UNDEFINED = 0,
    ONX_FLOAT = 1,
    ONX_UINT8 = 2,
    ONX_INT8 = 3,
    ONX_UINT16 = 4,
    ONX_INT16 = 5,
    ONX_INT32 = 6,
    ONX_INT64 = 7,
    ONX_STRING = 8,
    ONX_BOOL = 9,
    ONX_FLOAT16 = 10,
    ONX_DOUBLE = 11,
    ONX_UINT32 = 12,
    ONX_UINT64 = 13,
    ONX_COMPLEX64 = 14,
    ONX_COMPLEX128 = 15,
    ONX_BFLOAT16 = 16
};

/* AttributeProto.AttributeType */
enum {
    ONX_ATTR_UNDEFINED = 0,
    ONX_ATTR_FLOAT = 1,
    ONX_ATTR_INT = 2,
    ONX_ATTR_STRING = 3,
    ONX_ATTR_TENSOR = 4,
    ONX_ATTR_GRAPH = 5,
    ONX_ATTR_FLOATS = 6,
    ONX_ATTR_INTS = 7,
    ONX_ATTR_STRINGS = 8,
    ONX_ATTR_TENSORS = 9,
    ONX_ATTR_GRAPHS = 10,
    ONX_ATTR_SPARSE_TENSOR = 11,
    ONX_ATTR_SPARSE_TENSORS = 12,
    ONX_ATTR_TYPE_PROTO = 13,
    ONX_ATTR_TYPE_PROTOS = 14
};

typedef struct onx_slice {
    const uint8_t *p;
    size_t n;
} onx_slice;

typedef struct onx_tensor {
    onx_slice msg; /* the whole TensorProto (typed fields are re-read from it) */
    onx_slice name;
    int32_t data_type;
    int ndim;
    int64_t dims[ONX_MAX_RANK]; /* each >= 0 */
    int has_raw;
    onx_slice raw;
    /* elements present in the typed fields (packed or not), counted from bytes */
    int64_t n_float, n_int32, n_int64, n_double, n_uint64, n_string;
    int external; /* data_location EXTERNAL or external_data entries */
    int has_segment;
} onx_tensor;

typedef struct onx_attr {
    onx_slice msg;
    onx_slice name;
    int32_t type; /* ONX_ATTR_*; 0 when the file omits it (inferred by onx_attr_kind) */
    int has_f, has_i, has_s, has_t, has_g, has_ref;
    float f;
    int64_t i;
    onx_slice s;
    onx_slice t; /* TensorProto bytes */
    int64_t n_floats, n_ints, n_strings, n_tensors, n_graphs, n_sparse, n_tp;
} onx_attr;

typedef struct onx_node {
    onx_slice name, op_type, domain;
    int n_in, n_out, n_attr;
    onx_slice *in, *out;
    onx_attr *attr;
} onx_node;

typedef struct onx_valinfo {
    onx_slice name;
    int is_tensor;  /* has a tensor_type */
    int other_type; /* sequence / map / optional / sparse */
    int32_t elem_type;
    int has_shape;
    int ndim;                   /* may exceed ONX_MAX_RANK: then only the first dims are kept */
    int64_t dims[ONX_MAX_RANK]; /* -1 = symbolic (dim_param) or unknown */
} onx_valinfo;

typedef struct onx_graph {
    onx_slice name;
    int n_node, n_init, n_input, n_output, n_sparse_init;
    onx_node *node;
    onx_tensor *init;
    onx_valinfo *input, *output;
} onx_graph;

typedef struct onx_model {
    int64_t ir_version;
    int has_opset;
    int64_t opset; /* of the default domain ("" or "ai.onnx") */
    int n_other_domains;
    onx_slice other_domain; /* the first non-default domain imported */
    onx_slice producer_name, producer_version;
    int has_graph;
    onx_graph graph;
    int n_functions;
} onx_model;

/* Parses a ModelProto. On failure everything allocated is released. */
tml_status onx_parse_model(const uint8_t *buf, size_t len, onx_model *m);
void onx_model_free(onx_model *m);
/* Parses one TensorProto message (a standalone .pb file has depth 0). */
tml_status onx_parse_tensor(const uint8_t *base, const uint8_t *p, size_t len, int depth, onx_tensor *t);

/* Elements of a tensor from its dims (TML_ERR_NOMEM above TML_MAX_NUMEL). */
tml_status onx_tensor_numel(const onx_tensor *t, int64_t *numel);
int onx_dtype_is_float(int32_t dt); /* float, double, float16, bfloat16 */
int onx_dtype_is_int(int32_t dt);   /* (u)int8..64, bool */
const char *onx_dtype_name(int32_t dt);
/* Decoded data as float (float types) or int64 (integer types), ONNX order.
 * Sizes are checked against the bytes present before allocating; external
 * data, segments and other types are refused. The caller frees *out. */
tml_status onx_tensor_f32(const onx_tensor *t, float **out, int64_t *numel);
tml_status onx_tensor_i64(const onx_tensor *t, int64_t **out, int64_t *numel);

/* The attribute's type: its `type` field, or inferred from the fields set. */
int onx_attr_kind(const onx_attr *a);
/* Repeated ints / floats of an attribute (packed or not): up to `max` values
 * into out, *n = total count present. */
tml_status onx_attr_ints(const onx_attr *a, int64_t *out, int max, int *n);
tml_status onx_attr_floats(const onx_attr *a, float *out, int max, int *n);

int onx_slice_eq(onx_slice s, const char *lit);
/* NUL-terminated copy (truncated to ONX_MAX_NAME bytes, NUL bytes refused):
 * NULL on OOM or embedded NUL (error set). */
char *onx_slice_dup(onx_slice s);
/* Copies at most cap-1 bytes for messages, replacing control bytes. */
void onx_slice_print(onx_slice s, char *buf, size_t cap);

#endif
