/*
 * tml_core.h - status codes, tensors, the model graph and its metadata.
 *
 * Ownership: a tml_model owns every tensor, node, string and buffer reachable
 * from it; tml_model_free() releases all of it. Functions that take a
 * `const tml_model *` never keep pointers into it after they return.
 *
 * Layouts (see docs/numerics.md):
 *   activations     NHWC, stored per sample without the batch dimension:
 *                   dims = (H, W, C) for images, (F) after flatten/dense
 *   conv weights    (O, KH, KW, I/groups)                      OHWI
 *   depthwise       (1, KH, KW, C*M) for depth multiplier M    1HWC
 *   dense weights   (O, I)
 *   biases          (O)
 */
#ifndef TML_CORE_H
#define TML_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TML_VERSION_STRING "0.1.0"

/* ---- status --------------------------------------------------------------- */

typedef enum tml_status {
    TML_OK = 0,
    TML_ERR_IO = -1,          /* file missing, unreadable, write failed */
    TML_ERR_FORMAT = -2,      /* malformed / corrupted / truncated input */
    TML_ERR_NOMEM = -3,       /* allocation failed or a size is absurd */
    TML_ERR_INVALID = -4,     /* bad argument: out of range value, unknown name */
    TML_ERR_UNSUPPORTED = -5, /* valid but not handled (op kind, dtype, encoding) */
    TML_ERR_SHAPE = -6,       /* shapes do not fit together */
    TML_ERR_INTERRUPTED = -7  /* a caller-provided cancel flag was raised */
} tml_status;

/* Message of the last error set on the calling thread ("" when none). The
 * buffer is thread-local and valid until the next failing call on this thread. */
const char *tml_last_error(void);
/* Sets the calling thread's error message and returns `st` (for `return tml_error(...)`). */
tml_status tml_error(tml_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prefixes the current message with "ctx: " (adds context while unwinding). */
tml_status tml_error_context(tml_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void tml_clear_error(void);
const char *tml_status_name(tml_status st);

/* Programming-bug assertion: never for bad input. */
#define TML_ASSERT(cond)                                                         \
    do {                                                                         \
        if (!(cond)) tml_assert_fail(#cond, __FILE__, __LINE__);                 \
    } while (0)
void tml_assert_fail(const char *expr, const char *file, int line);

/* Upper bound on any single tensor allocation (elements): protects against
 * absurd dimensions in files. 2^28 floats = 1 GiB. */
#define TML_MAX_NUMEL ((int64_t)1 << 28)

/* ---- tensors ---------------------------------------------------------------- */

typedef enum tml_dtype {
    TML_DTYPE_F32 = 0,
    TML_DTYPE_INT8 = 1,
    TML_DTYPE_INT32 = 2,
    TML_DTYPE_COUNT
} tml_dtype;

size_t tml_dtype_size(tml_dtype t);
const char *tml_dtype_name(tml_dtype t);

#define TML_MAX_DIMS 4

typedef enum tml_tensor_kind {
    TML_TENSOR_ACT = 0,  /* activation: computed at run time, no data */
    TML_TENSOR_PARAM = 1 /* constant: weights, biases, batch-norm statistics */
} tml_tensor_kind;

/* Quantization parameters, TFLite convention: real = scale * (q - zero_point).
 * axis = -1: per tensor (n == 1); otherwise per channel along `axis` (n == dims[axis]). */
typedef struct tml_quant {
    int axis;
    int n;              /* 0 = not quantized */
    float *scale;       /* (n) */
    int32_t *zero_point; /* (n) */
} tml_quant;

/* Weight sharing (clustering). Element i has value centroids[book(i) * k + index[i]]
 * where book(i) = 0 for a per-tensor codebook or the output channel (dim 0) when
 * n_books == dims[0]. For a float tensor the centroids are the values; for an int8
 * tensor the centroids are int8 codes (stored as float holding integers). When the
 * tensor is also pruned, index 0 of every book is the fixed centroid 0.0 that
 * pruned elements use and never leave. */
typedef struct tml_codebook {
    int k;          /* centroids per book, 1..256 */
    int bits;       /* index width in the file, 1..8, k <= 2^bits */
    int n_books;    /* 1 or dims[0] */
    float *centroids; /* (n_books, k) */
    uint8_t *index;   /* (numel) */
} tml_codebook;

typedef struct tml_tensor {
    char *name;
    tml_dtype dtype;
    tml_tensor_kind kind;
    int ndim;
    int32_t dims[TML_MAX_DIMS]; /* activations: per-sample dims, no batch */
    void *data;                 /* PARAM: numel values of dtype, dense; ACT: NULL */
    tml_quant q;
    int pruned;          /* zeros are pruned: they stay zero and are stored sparse */
    tml_codebook *cb;    /* non-NULL when the weights are shared (clustered) */
    uint32_t store_hint; /* TML_STORE_* bits: encodings the writer may try */
    int qbits;           /* int8 constants: 0 = full int8; 2..7 = low-bit weights whose
                            values fit b-bit two's complement [-2^(b-1), 2^(b-1)-1]: the
                            file and the exported C store them packed b bits each, and
                            the int8 engine runs them through its packed-weight (W4A8,
                            W2A8, ...) kernels. Data stays decoded int8 in memory. */
} tml_tensor;

/* Writer hints (tml_tensor.store_hint). The writer always picks the smallest
 * encoding among those allowed; dense is always allowed. */
#define TML_STORE_SPARSE 0x1u  /* allow bitmap / relative-index sparse layouts */
#define TML_STORE_ENTROPY 0x2u /* allow Huffman / deflate entropy coding */

/* Range of a b-bit (2..8) two's complement value: [-2^(b-1), 2^(b-1) - 1]. */
#define TML_QBITS_MIN(b) (-(1 << ((b) - 1)))
#define TML_QBITS_MAX(b) ((1 << ((b) - 1)) - 1)

int64_t tml_tensor_numel(const tml_tensor *t);
size_t tml_tensor_nbytes(const tml_tensor *t);
int64_t tml_tensor_nonzeros(const tml_tensor *t);

/* ---- graph -------------------------------------------------------------------- */

typedef enum tml_op {
    TML_OP_CONV2D = 0,       /* in: x, w (O,KH,KW,I/g), b? ; attrs k,s,d,pad,groups,act */
    TML_OP_DEPTHWISE_CONV2D, /* in: x, w (1,KH,KW,C*M), b? ; depth_mult M */
    TML_OP_DENSE,            /* in: x (F), w (O,F), b? ; act */
    TML_OP_RELU,
    TML_OP_RELU6,
    TML_OP_MAXPOOL,          /* k, s, pad */
    TML_OP_AVGPOOL,          /* k, s, pad; padding excluded from the average */
    TML_OP_GLOBAL_AVGPOOL,   /* (H,W,C) -> (C) */
    TML_OP_ADD,              /* in: a, b (same shape); act */
    TML_OP_RESHAPE,          /* out dims given by the output tensor (flatten = (F)) */
    TML_OP_SOFTMAX,          /* over the last dim */
    TML_OP_BATCHNORM,        /* in: x, gamma, beta, mean, var (C); eps; last dim */
    TML_OP_DROPOUT,          /* rate; identity at inference */
    TML_OP_COUNT
} tml_op;

const char *tml_op_name(tml_op op);
/* Returns TML_OK and sets *op when `name` is an op name ("conv2d", ...). */
tml_status tml_op_from_name(const char *name, tml_op *op);

typedef enum tml_act { TML_ACT_NONE = 0, TML_ACT_RELU = 1, TML_ACT_RELU6 = 2 } tml_act;
const char *tml_act_name(tml_act a);

#define TML_MAX_NODE_INPUTS 5

typedef struct tml_node {
    char *name;
    tml_op op;
    int n_in;
    int in[TML_MAX_NODE_INPUTS]; /* tensor ids; -1 = absent optional input (bias) */
    int out;                     /* tensor id */
    /* attributes (only those of the op matter; others stay 0) */
    int kh, kw;       /* kernel / pool window */
    int sh, sw;       /* strides */
    int dh, dw;       /* dilations (conv), >= 1 */
    int pad[4];       /* top, left, bottom, right */
    int groups;       /* conv2d groups, >= 1 */
    int depth_mult;   /* depthwise multiplier, >= 1 */
    tml_act act;      /* fused activation (conv, depthwise, dense, add) */
    float eps;        /* batch norm */
    float rate;       /* dropout */
    float beta;       /* softmax: softmax(beta * x); 1 unless imported (TFLite's option) */
} tml_node;

/* ---- metadata ----------------------------------------------------------------- */

/* Preprocessing applied to raw dataset values (0..255 for images) before the
 * model sees them, per channel c: x = (raw * scale - mean[c]) / std[c]; or,
 * with per-feature normalization (tabular data, any width), per element i of
 * a sample: x[i] = (raw[i] * scale - feat_mean[i]) / feat_std[i]. */
#define TML_MAX_CHANNELS_PRE 4
typedef struct tml_preproc {
    float scale;
    int n_ch;                         /* 0: mean 0 / std 1 for all channels */
    float mean[TML_MAX_CHANNELS_PRE];
    float std[TML_MAX_CHANNELS_PRE];
    int n_feat;       /* 0, or the input's element count: per-feature (then n_ch is 0) */
    float *feat_mean; /* (n_feat), owned by the model's meta (tml_preproc_set_features) */
    float *feat_std;  /* (n_feat) */
} tml_preproc;

/* Integer arithmetic of an int8 model (docs/numerics.md, docs/tflite.md).
 * TINYML: tinyml's own rules (requantization rounding negative ties away from
 * zero, softmax by table, means rounded once). TFLITE: TensorFlow Lite
 * Micro's reference kernels bit for bit (gemmlowp's rounding, TFLite's
 * multiplier derivation per op, fixed-point softmax exp, MEAN's
 * requantization); the default of imported .tflite models. */
typedef enum tml_rounding { TML_ROUNDING_TINYML = 0, TML_ROUNDING_TFLITE = 1 } tml_rounding;
const char *tml_rounding_name(tml_rounding r);

typedef struct tml_meta {
    char *name;          /* model name, e.g. "lenet5" */
    char *arch;          /* zoo architecture it was created from, or "custom"/"onnx" */
    int n_classes;
    char **labels;       /* (n_classes) or NULL */
    tml_preproc pre;
    char *history;       /* JSON array text of passes applied; never NULL once loaded */
    char *extra;         /* JSON object text of other keys, kept on round trip; may be NULL */
    tml_rounding rounding; /* int8 arithmetic (above) */
    int float_io;        /* int8 model with a float boundary: the model itself quantizes its
                            input and dequantizes its output (a .tflite with QUANTIZE /
                            DEQUANTIZE at its ends); `run` then reads and writes float32 */
} tml_meta;

/* Largest graph a model may have (files, ONNX imports and JSON descriptions
 * alike): the models this tool is for have tens to hundreds of nodes. */
#define TML_MAX_NODES 20000
#define TML_MAX_TENSORS (4 * TML_MAX_NODES)

struct tml_name_index; /* private to lib/core/model.c */

typedef struct tml_model {
    int n_tensors, cap_tensors;
    tml_tensor *tensors;
    int n_nodes, cap_nodes;
    tml_node *nodes; /* kept in topological order by tml_model_finalize() */
    int input;       /* tensor id of the graph input (ACT) */
    int output;      /* tensor id of the graph output (ACT) */
    tml_meta meta;
    /* Hash of tensor and node names behind tml_model_find_tensor/_node (a
     * cache: rebuilt when the arrays change under it). Names are never edited
     * in place; tensors and nodes are added and removed through the
     * tml_model_* functions. */
    struct tml_name_index *index;
} tml_model;

tml_model *tml_model_new(void); /* NULL on OOM */
void tml_model_free(tml_model *m);
/* Deep copy; NULL on OOM (error set). */
tml_model *tml_model_clone(const tml_model *m);

/* Adds a tensor and returns its id (>= 0), or a negative tml_status. `name` is
 * copied; `data` (may be NULL) is copied when given, else PARAM data is zeroed. */
int tml_model_add_tensor(tml_model *m, const char *name, tml_dtype dtype, tml_tensor_kind kind,
                         int ndim, const int32_t *dims, const void *data);
/* Adds a node with default attributes (strides/dilations/groups 1) and returns
 * its index or a negative tml_status. Attributes are then set on the node. */
int tml_model_add_node(tml_model *m, const char *name, tml_op op, int n_in, const int *in, int out);
/* Name lookups, O(1) on average (hashed); -1 if absent. */
int tml_model_find_tensor(const tml_model *m, const char *name);
int tml_model_find_node(const tml_model *m, const char *name);
/* Index of the node producing tensor `t`, or -1 (graph input / param). */
int tml_model_producer(const tml_model *m, int t);
/* Number of node inputs that read tensor `t` (plus 1 if it is the graph output). */
int tml_model_consumers(const tml_model *m, int t);

/* Removes node `idx` (its output tensor stays; rewire readers first). */
void tml_model_remove_node(tml_model *m, int idx);
/* Removes tensors no node reads or writes (other than the graph input and
 * output) and renumbers the rest; node references are updated. */
tml_status tml_model_compact(tml_model *m);
/* Replaces every read of tensor `from` by `to` (and the graph output). */
void tml_model_replace_uses(tml_model *m, int from, int to);

/* Checks the graph (ids in range, one producer per activation, no cycles,
 * op arity, attribute ranges, weight shapes), sorts nodes topologically and
 * infers every activation's dims from the input's. Call after building or
 * editing a graph; every reader calls it. */
tml_status tml_model_finalize(tml_model *m);
/* Infers the output dims of node `idx` from its inputs' (which must already
 * have dims): what a builder needs after each layer without re-finalizing
 * the whole graph. tml_model_finalize() still has to run at the end. */
tml_status tml_model_infer_node(tml_model *m, int idx);

/* Tensor-level helpers used by passes. */
tml_status tml_tensor_set_quant(tml_tensor *t, int axis, int n, const float *scale, const int32_t *zp);
void tml_tensor_clear_quant(tml_tensor *t);
void tml_codebook_free(tml_codebook *cb);
/* Deep copy of a codebook whose index has `numel` entries; NULL on OOM. */
tml_codebook *tml_codebook_clone(const tml_codebook *cb, int64_t numel);
/* Reallocates a PARAM tensor to new dims (contents zeroed). */
tml_status tml_tensor_resize(tml_tensor *t, int ndim, const int32_t *dims);

/* Is this node's weight tensor something passes may prune/cluster/quantize? */
int tml_node_has_weights(const tml_node *n);
/* Multiply-accumulates of one inference of the node (per sample). */
int64_t tml_node_macs(const tml_model *m, const tml_node *n);
/* Parameters (elements of PARAM inputs) of the node. */
int64_t tml_node_params(const tml_model *m, const tml_node *n);

/* Metadata helpers. */
tml_status tml_meta_set_labels(tml_meta *meta, int n, const char *const *labels);
/* Sets key `key` of meta->extra (a JSON object text; created when NULL) to
 * the JSON value `value` (text), replacing an earlier entry of that key.
 * TML_ERR_FORMAT when extra is not an object or `value` not JSON. */
tml_status tml_meta_extra_set(tml_meta *meta, const char *key, const char *value);
/* Sets (copies) per-feature normalization of n values; n = 0 removes it.
 * Per-channel mean/std are cleared when n > 0. */
tml_status tml_preproc_set_features(tml_preproc *pre, int n, const float *mean, const float *std);
/* Checks the metadata against the graph (every reader calls it): classes 0
 * or the output's element count, labels as many as classes, preprocessing
 * usable for the input (finite nonzero scale, 0, 1 or C channel means, finite
 * means, positive stds, per-feature arrays as long as the input).
 * TML_ERR_FORMAT naming the contradiction. */
tml_status tml_model_check_meta(const tml_model *m);
/* Appends one JSON object (text, trusted: produced by our own code) to
 * meta.history. The CLI adds "pass", "time" and the tinyml version. */
tml_status tml_model_add_history(tml_model *m, const char *entry_json);
int tml_model_is_quantized(const tml_model *m); /* any INT8 activation */

/* ---- random numbers -------------------------------------------------------------
 * xoshiro256** seeded through splitmix64: the same seed gives the same stream on
 * every platform. Not thread-safe per generator: give each thread its own. */
typedef struct tml_rng {
    uint64_t s[4];
} tml_rng;
void tml_rng_seed(tml_rng *r, uint64_t seed);
uint64_t tml_rng_next(tml_rng *r);
double tml_rng_uniform(tml_rng *r);           /* [0, 1) with 53 random bits */
uint32_t tml_rng_below(tml_rng *r, uint32_t n); /* uniform in [0, n), unbiased; n > 0 */
double tml_rng_normal(tml_rng *r);            /* standard normal (Box-Muller) */
/* Fisher-Yates shuffle of idx[0..n). */
void tml_rng_shuffle(tml_rng *r, int64_t *idx, int64_t n);

/* Small utilities shared by modules. */
/* The one way to write a file (lib/core/fileio.c has the full rules): a
 * missing or regular file is replaced atomically (temporary in the same
 * directory, fsync, rename; an existing file keeps its mode, a new one gets
 * 0666 minus the umask); a symlink is followed (its target replaced, the link
 * kept; a dangling link refused); a character device or FIFO is written
 * through, never replaced; a directory, block device or socket is refused.
 * On failure the destination is untouched, nothing is left behind and the
 * message names the path. */
tml_status tml_write_file_atomic(const char *path, const void *buf, size_t len);
/* Several files that belong together (an export's model.h and model.c): every
 * one is written and flushed to its temporary before the first is renamed, so
 * a failure while writing changes none of them. n in 1..16. */
tml_status tml_write_files_atomic(int n, const char *const *paths, const void *const *bufs, const size_t *lens);
/* Before long work: would tml_write_file_atomic(path) be allowed, and can its
 * directory take a new file? TML_ERR_IO with a message naming the path if not. */
tml_status tml_check_output_file(const char *path);
/* The same for a directory that a writer creates if missing (export --c): it
 * is a directory, or its nearest existing ancestor is one that takes files. */
tml_status tml_check_output_dir(const char *dir);
char *tml_strdup(const char *s); /* NULL on OOM or NULL input */
/* Overflow-checked product of dims; returns -1 when > TML_MAX_NUMEL or any dim < 0. */
int64_t tml_dims_numel(int ndim, const int32_t *dims);

#ifdef __cplusplus
}
#endif
#endif
