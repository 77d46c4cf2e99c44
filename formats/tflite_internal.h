/*
 * tflite_internal.h - facts of TFLite's schema.fbs (version 3) shared by the
 * importer (formats/tflite.c) and the exporter (formats/tflite_export.c).
 * Not public API.
 *
 * FlatBuffers wire format, as both sides use it (all little-endian):
 *   1. the buffer starts with a uoffset (u32) to the root table, then the
 *      4-byte file identifier "TFL3";
 *   2. a table at position t starts with an soffset (i32): its vtable is at
 *      t - soffset; the vtable is u16 vtable bytes, u16 table bytes, then one
 *      u16 per field id: the field's offset from t, 0 = absent (default);
 *   3. scalars sit in the table; tables, vectors and strings are referenced by
 *      a uoffset (u32) relative to the referencing field's own position, always
 *      forward (to a higher address);
 *   4. a vector is a u32 element count followed by the elements (scalars, or
 *      uoffsets for vectors of tables / strings); a string is a vector of bytes
 *      followed by a NUL;
 *   5. a union is two fields: a u8 type (its index in the union, 0 = none)
 *      at id k and the table reference at id k + 1.
 */
#ifndef TML_TFLITE_INTERNAL_H
#define TML_TFLITE_INTERNAL_H

/* field ids (declaration order in schema.fbs; a union takes two ids) */
enum {
    TFL_MODEL_VERSION = 0,
    TFL_MODEL_OPERATOR_CODES = 1,
    TFL_MODEL_SUBGRAPHS = 2,
    TFL_MODEL_DESCRIPTION = 3,
    TFL_MODEL_BUFFERS = 4,
    TFL_MODEL_METADATA_BUFFER = 5,
    TFL_MODEL_METADATA = 6,

    TFL_OPCODE_DEPRECATED_BUILTIN = 0,
    TFL_OPCODE_CUSTOM = 1,
    TFL_OPCODE_VERSION = 2,
    TFL_OPCODE_BUILTIN = 3,

    TFL_SUBGRAPH_TENSORS = 0,
    TFL_SUBGRAPH_INPUTS = 1,
    TFL_SUBGRAPH_OUTPUTS = 2,
    TFL_SUBGRAPH_OPERATORS = 3,
    TFL_SUBGRAPH_NAME = 4,

    TFL_BUFFER_DATA = 0,
    TFL_BUFFER_OFFSET = 1,
    TFL_BUFFER_SIZE = 2,

    TFL_METADATA_NAME = 0,
    TFL_METADATA_BUFFER = 1,

    TFL_TENSOR_SHAPE = 0,
    TFL_TENSOR_TYPE = 1,
    TFL_TENSOR_BUFFER = 2,
    TFL_TENSOR_NAME = 3,
    TFL_TENSOR_QUANTIZATION = 4,
    TFL_TENSOR_IS_VARIABLE = 5,
    TFL_TENSOR_SPARSITY = 6,
    TFL_TENSOR_SHAPE_SIGNATURE = 7,

    TFL_QUANT_MIN = 0,
    TFL_QUANT_MAX = 1,
    TFL_QUANT_SCALE = 2,
    TFL_QUANT_ZERO_POINT = 3,
    TFL_QUANT_DETAILS_TYPE = 4,
    TFL_QUANT_DETAILS = 5,
    TFL_QUANT_DIMENSION = 6,

    TFL_OP_OPCODE_INDEX = 0,
    TFL_OP_INPUTS = 1,
    TFL_OP_OUTPUTS = 2,
    TFL_OP_OPTIONS_TYPE = 3,
    TFL_OP_OPTIONS = 4,
    TFL_OP_CUSTOM_OPTIONS = 5,

    /* Conv2DOptions */
    TFL_CONV_PADDING = 0,
    TFL_CONV_STRIDE_W = 1,
    TFL_CONV_STRIDE_H = 2,
    TFL_CONV_ACT = 3,
    TFL_CONV_DILATION_W = 4,
    TFL_CONV_DILATION_H = 5,
    /* DepthwiseConv2DOptions */
    TFL_DW_PADDING = 0,
    TFL_DW_STRIDE_W = 1,
    TFL_DW_STRIDE_H = 2,
    TFL_DW_DEPTH_MULT = 3,
    TFL_DW_ACT = 4,
    TFL_DW_DILATION_W = 5,
    TFL_DW_DILATION_H = 6,
    /* Pool2DOptions */
    TFL_POOL_PADDING = 0,
    TFL_POOL_STRIDE_W = 1,
    TFL_POOL_STRIDE_H = 2,
    TFL_POOL_FILTER_W = 3,
    TFL_POOL_FILTER_H = 4,
    TFL_POOL_ACT = 5,
    /* FullyConnectedOptions */
    TFL_FC_ACT = 0,
    TFL_FC_WEIGHTS_FORMAT = 1,
    TFL_FC_KEEP_NUM_DIMS = 2,
    TFL_FC_ASYMMETRIC_QUANTIZE_INPUTS = 3,
    /* SoftmaxOptions */
    TFL_SOFTMAX_BETA = 0,
    /* AddOptions */
    TFL_ADD_ACT = 0,
    /* ReshapeOptions */
    TFL_RESHAPE_NEW_SHAPE = 0,
    /* ReducerOptions */
    TFL_REDUCER_KEEP_DIMS = 0,
};

/* BuiltinOperator */
enum {
    TFL_ADD = 0,
    TFL_AVERAGE_POOL_2D = 1,
    TFL_CONV_2D = 3,
    TFL_DEPTHWISE_CONV_2D = 4,
    TFL_DEQUANTIZE = 6,
    TFL_FULLY_CONNECTED = 9,
    TFL_MAX_POOL_2D = 17,
    TFL_RELU = 19,
    TFL_RELU6 = 21,
    TFL_RESHAPE = 22,
    TFL_SOFTMAX = 25,
    TFL_CUSTOM = 32,
    TFL_PAD = 34,
    TFL_MEAN = 40,
    TFL_PADV2 = 60,
    TFL_QUANTIZE = 114,
    TFL_PLACEHOLDER_FOR_GREATER_OP_CODES = 127,
};

/* BuiltinOptions union indices */
enum {
    TFL_OPT_NONE = 0,
    TFL_OPT_CONV2D = 1,
    TFL_OPT_DEPTHWISE_CONV2D = 2,
    TFL_OPT_POOL2D = 5,
    TFL_OPT_FULLY_CONNECTED = 8,
    TFL_OPT_SOFTMAX = 9,
    TFL_OPT_ADD = 11,
    TFL_OPT_RESHAPE = 17,
    TFL_OPT_PAD = 22,
    TFL_OPT_REDUCER = 27,
    TFL_OPT_DEQUANTIZE = 38,
    TFL_OPT_PADV2 = 43,
    TFL_OPT_QUANTIZE = 89,
};

/* TensorType */
enum {
    TFL_FLOAT32 = 0,
    TFL_FLOAT16 = 1,
    TFL_INT32 = 2,
    TFL_UINT8 = 3,
    TFL_INT64 = 4,
    TFL_INT16 = 7,
    TFL_INT8 = 9,
};

/* Padding, ActivationFunctionType */
enum { TFL_PAD_SAME = 0, TFL_PAD_VALID = 1 };
enum { TFL_ACT_NONE = 0, TFL_ACT_RELU = 1, TFL_ACT_RELU_N1_TO_1 = 2, TFL_ACT_RELU6 = 3, TFL_ACT_TANH = 4 };

/* Name of a builtin op code ("CONV_2D"), or NULL for codes this file does not list. */
const char *tml_tflite_op_name(int code);

/* Name under which tinyml keeps its own metadata in Model.metadata. */
#define TML_TFLITE_META_NAME "tinyml"

#endif
