/*
 * engine_internal.h - engine state shared by the engine's source files.
 */
#ifndef TML_ENGINE_INTERNAL_H
#define TML_ENGINE_INTERNAL_H

#include <stdint.h>

#include "tinyml/tml_engine.h"
#include "tinyml/tml_ops.h"
#include "tinyml/tml_schedule.h"

/* Alignment of every activation buffer: 64 bytes (a cache line, and enough for
 * any vector load) on the host; planners for devices use 16. */
#define TML_PLAN_ALIGN_HOST 64
#define TML_PLAN_ALIGN_DEVICE 16

/* Internal knobs of tml_engine_new (tests and benchmarks reach code paths
 * with them; zero = the default). */
typedef struct tml_engine_tuning {
    int separate;    /* every activation in its own buffer, fusion kept (keep_all disables fusion) */
    int micro_batch; /* float path: samples per pass through the graph (> 0); 0: from the cache budget */
} tml_engine_tuning;
tml_status tml_engine_new_tuned(const tml_model *m, int max_batch, const tml_engine_opts *opts,
                                const tml_engine_tuning *tuning, tml_engine **out);

/* One step of the float path: node `node` of e->m, writing tensor `out` with
 * activation `act`. For a conv whose only reader was an add, `res` is the
 * add's other input: the conv runs in the add's place and adds it before the
 * activation (out and act are the add's). Otherwise res is -1. */
typedef struct tml_f32_step {
    int node, res, out;
    tml_act act;
} tml_f32_step;

/* Activation buffers and kernel scratch for one pass: the float path runs
 * micro-batches on several lanes (one per OpenMP thread) at once. */
typedef struct tml_engine_lane {
    uint8_t *arena;
    void *scratch;
    const float *input; /* the pass's samples, read in place (tensors in in_place) */
} tml_engine_lane;

struct tml_engine {
    const tml_model *m; /* the graph that runs: the caller's, or `own` */
    tml_model *own;     /* float fast path: the engine's folded copy (BN folded, ReLU fused), or NULL */
    int max_batch;
    tml_engine_opts opts;
    tml_engine_tuning tuning;
    int64_t *offset;    /* (n_tensors) arena byte offset of each activation, -1 for params */
    uint8_t *arena;     /* activations, shared by liveness (lane 0's) */
    size_t arena_bytes; /* per lane */
    void *scratch;      /* kernel scratch (im2col, accumulators; lane 0's) */
    size_t scratch_bytes; /* per lane */
    void **prep;        /* (n_nodes) per-node prepared data (int8 multipliers, packed weights) or NULL */
    int last_n;         /* batch size of the last run */
    int quant;          /* int8 model: run the integer path */
    tml_csr **csr;      /* (n_nodes) float path: sparse weights of pruned layers, or NULL */
    double *sparsity;   /* (n_nodes) weight sparsity of those layers */
    tml_f32_step *steps; /* float path: what runs, in order */
    int n_steps;
    int micro_batch;    /* samples per pass (max_batch on the int8 path and with keep_all / use_ref) */
    int n_lanes;
    tml_engine_lane *lanes; /* (n_lanes) float path; lanes[0] is {arena, scratch} */
    uint8_t *in_place;  /* (n_tensors) float fast path: 1 for the graph input and the tensors aliasing
                         * it, read from the caller's samples instead of a copy; or NULL */
    /* memory schedule (int8 models, opts.schedule): each sample runs the
     * schedule's steps in its own copy of the schedule's arena */
    const tml_schedule *sched;
    size_t sched_stride;   /* bytes between two samples' arenas */
    size_t sched_scratch;  /* kernel scratch bytes per thread */
    int sched_threads;     /* samples run side by side */
    int64_t *sched_off;    /* (n_buffers) arena offsets of the schedule's buffers */
    int sched_in, sched_out; /* buffers of the model input / output */
};

/* Sparsity from which the float engine runs a pruned layer's CSR kernel
 * instead of the dense one, measured with tests/bench/bench_sparse on this
 * project's benchmark machine (docs/pruning.md): a dense layer at batch 1 is a
 * matrix-vector product that sparse beats early; batched products and convs
 * run near the GEMM's peak and need far fewer nonzeros to lose. */
#define TML_SPARSE_DENSE_B1 0.60
#define TML_SPARSE_CONV_B1 0.85
#define TML_SPARSE_BATCHED 0.90
double tml_sparse_crossover(tml_op op, int batch);

/* Is node `node` one whose output shares its input's buffer? */
int tml_plan_is_alias(const tml_model *m, int node);

/* Plans buffers for `batch` samples. separate != 0 gives every tensor its own
 * buffer. root (n_tensors) receives each tensor's buffer owner. */
tml_status tml_plan_buffers(const tml_model *m, int batch, int separate, int align, int64_t *offsets, int *root,
                            int64_t *arena_bytes);

/* Pointer to the batch buffer of activation `t` (or the data of a param). */
static inline void *tml_engine_buf(const struct tml_engine *e, int t)
{
    const tml_tensor *x = &e->m->tensors[t];
    if (x->kind == TML_TENSOR_PARAM) return x->data;
    return e->arena + e->offset[t];
}

/* float path (engine_f32.c). prepare, once e->m, opts, tuning and max_batch
 * are set: the fused graph copy, the steps, the micro-batch size, the buffer
 * plan, the lanes, packed and sparse weights. */
tml_status tml_engine_f32_prepare(struct tml_engine *e);
void tml_engine_f32_release(struct tml_engine *e);
void tml_engine_f32_run(struct tml_engine *e, const float *x, int n, float *y);

/* int8 path (engine_q8.c). prepare: checks every node's dtypes and
 * parameters, fills e->prep and returns the scratch the int8 kernels need. */
tml_status tml_engine_q8_prepare(struct tml_engine *e, size_t *scratch_bytes);
void tml_engine_q8_release(struct tml_engine *e);
void tml_engine_q8_run_node(struct tml_engine *e, int node, int n);
/* Runs node `node` on explicit buffers: x (and x2, add's second operand) in, y
 * out; win: the window of conv / depthwise / pools (any sub-window of the
 * node's, e.g. some output rows); count: elements of elementwise ops and
 * softmax; batch: samples of dense / global average pool. */
void tml_engine_q8_exec(struct tml_engine *e, int node, int batch, const tml_window *win, const int8_t *x,
                        const int8_t *x2, int8_t *y, int64_t count, void *scratch);
/* float -> int8 with the input's parameters, int8 -> float with the output's */
void tml_engine_q8_quantize_input(const struct tml_engine *e, const float *x, int64_t count, int8_t *q);
void tml_engine_q8_dequantize_output(const struct tml_engine *e, const int8_t *q, int64_t count, float *y);

/* memory schedules (engine_sched.c): prepare after the int8 prepare (sizes
 * the arena and scratch), run replays the steps sample by sample. */
tml_status tml_engine_sched_prepare(struct tml_engine *e);
/* raw: x and y are the int8 input and output tensors (else floats, quantized
 * and dequantized with the model's parameters) */
void tml_engine_sched_run(struct tml_engine *e, const void *x, int n, void *y, int raw);

#endif
