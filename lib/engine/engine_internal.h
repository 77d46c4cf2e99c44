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

struct tml_engine {
    const tml_model *m;
    int max_batch;
    tml_engine_opts opts;
    int64_t *offset;    /* (n_tensors) arena byte offset of each activation, -1 for params */
    uint8_t *arena;     /* activations, shared by liveness */
    size_t arena_bytes;
    void *scratch;      /* kernel scratch (im2col, accumulators) */
    size_t scratch_bytes;
    void **prep;        /* (n_nodes) per-node prepared data (int8 multipliers ...) or NULL */
    int last_n;         /* batch size of the last run */
    int quant;          /* int8 model: run the integer path */
    tml_csr **csr;      /* (n_nodes) float path: sparse weights of pruned layers, or NULL */
    double *sparsity;   /* (n_nodes) weight sparsity of those layers */
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
