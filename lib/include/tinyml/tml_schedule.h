/*
 * tml_schedule.h - memory schedules: running a model in less RAM than the
 * tensor-by-tensor bound (lib/engine/schedule.c; docs/memory.md is the guide).
 *
 * The tensor-by-tensor bound is the arena of the liveness plan that runs one
 * layer at a time on whole tensors (tml_plan_activations): at least the
 * largest (inputs + output) of any layer. A schedule goes below it by cutting
 * the node sequence into segments, each run one of four ways:
 *
 *   plain     the layer on whole tensors, as the liveness plan does;
 *   in-place  a window layer (depthwise, conv, pool) or an elementwise one
 *             (add, relu) writes its output over its dying input; rows whose
 *             destination is still to be read wait in a small delay buffer
 *             (forward or backward order, whichever needs fewer rows);
 *   stream    a run of window / elementwise layers (conv -> pool, conv ->
 *             conv, residual blocks, a final global average pool) computed
 *             row by row: a tensor used only inside the run never exists
 *             whole, only the rows its readers still need (a ring of rows);
 *             no multiply-accumulate is repeated;
 *   patch     a chain of window layers computed tile by tile over its output
 *             (gh x gw tiles); each tile recomputes the overlap of the
 *             receptive fields (extra MACs) and needs only tile-sized buffers.
 *
 * The scheduler evaluates every segmentation (dynamic programming over the
 * node order) and picks, by default, the least RAM whose recomputation stays
 * within max_recompute of the model's MACs, then the fewest extra MACs and
 * steps at that RAM; with ram_limit it picks the fewest extra MACs whose RAM
 * fits, and when nothing fits it returns the least-RAM schedule and says by
 * how much it misses. Every buffer then gets an arena offset (greedy
 * placement by size over lifetimes, as the liveness planner does).
 *
 * The result is a list of buffers and a list of steps that any executor
 * replays: the int8 engine (tml_engine_opts.schedule) and the exported C.
 * Both compute each output element with the same kernels as the unscheduled
 * model, so the results are bit-identical.
 */
#ifndef TML_SCHEDULE_H
#define TML_SCHEDULE_H

#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Segment kinds the scheduler may use (tml_sched_opts.modes); plain is always allowed. */
#define TML_SCHED_INPLACE 0x1u
#define TML_SCHED_STREAM 0x2u
#define TML_SCHED_PATCH 0x4u
#define TML_SCHED_ALL (TML_SCHED_INPLACE | TML_SCHED_STREAM | TML_SCHED_PATCH)

/* Default recomputation allowance: 5% of the model's MACs. */
#define TML_SCHED_DEFAULT_RECOMPUTE 0.05

typedef struct tml_sched_opts {
    int enabled;          /* 0: the plain layer-by-layer plan (every segment plain) */
    double max_recompute; /* extra MACs allowed, as a fraction of the model's MACs (0.05 = 5%);
                             used when ram_limit is 0 */
    int64_t ram_limit;    /* > 0: the fewest extra MACs whose arena fits in this many bytes */
    unsigned modes;       /* TML_SCHED_* bits (0 = all) */
    int max_tiles;        /* patch grids up to max_tiles x max_tiles (0 = 8) */
    const int64_t *node_scratch; /* (n_nodes) bytes of kernel scratch each node needs while it
                                    runs, placed in the arena too (the exported C's conv
                                    patches); NULL: none (the host engine has its own) */
} tml_sched_opts;

/* enabled, max_recompute = TML_SCHED_DEFAULT_RECOMPUTE, no RAM limit, all modes */
void tml_sched_opts_default(tml_sched_opts *o);

/* The schedule options a model file carries (meta key "schedule", written by
 * `tinyml schedule`): {"max_recompute": P} or {"ram_limit": BYTES} or
 * {"none": true}. *found = 0 (and *o the defaults) when the model has none.
 * A malformed entry is TML_ERR_FORMAT. */
tml_status tml_sched_opts_from_model(const tml_model *m, tml_sched_opts *o, int *found);
/* Stores `o` in the model's metadata (replacing an earlier entry). */
tml_status tml_sched_opts_to_model(tml_model *m, const tml_sched_opts *o);

typedef enum tml_seg_kind {
    TML_SEG_PLAIN = 0,
    TML_SEG_INPLACE,
    TML_SEG_STREAM,
    TML_SEG_PATCH
} tml_seg_kind;
const char *tml_seg_kind_name(tml_seg_kind k); /* "plain", "in-place", "stream", "patch" */

typedef struct tml_sched_segment {
    tml_seg_kind kind;
    int first, last;      /* node indices, inclusive */
    int tiles_h, tiles_w; /* patch grid (1 x 1 otherwise) */
    int64_t peak_bytes;   /* bytes live while the segment runs (whole tensors + its own
                             buffers, each rounded up to the alignment) */
    int64_t bound_bytes;  /* the same nodes run layer by layer: the most bytes live at one of them */
    int64_t macs;         /* multiply-accumulates of its nodes, once each */
    int64_t extra_macs;   /* recomputed by the schedule (patch overlap); negative where tiles
                             skip rows or columns no later layer reads */
    int n_steps;
} tml_sched_segment;

typedef enum tml_sbuf_kind {
    TML_SBUF_TENSOR = 0, /* a whole activation */
    TML_SBUF_RING,       /* the rows of a streamed activation its readers still need */
    TML_SBUF_TILE,       /* one tile of an activation (patch segments) */
    TML_SBUF_DELAY,      /* output rows of an in-place layer waiting for their bytes */
    TML_SBUF_ACC,        /* int32 channel sums of a streamed global average pool */
    TML_SBUF_ZONE,       /* the rows of every streamed activation of a segment, together:
                            each tensor's rows stay contiguous and move only when a
                            growing tensor meets another (tensor = -1) */
    TML_SBUF_SCRATCH     /* kernel scratch of the steps that name it (node_scratch) */
} tml_sbuf_kind;

typedef struct tml_sched_buffer {
    tml_sbuf_kind kind;
    int tensor;     /* the activation it holds (all of it or some rows / a tile) */
    int64_t bytes;  /* per inference */
    int64_t offset; /* in the arena, a multiple of the alignment */
    int start, end; /* lifetime, node indices (-1: before the first, n_nodes: after the last) */
    int group;      /* buffers with the same group share their offset (in-place chains) */
} tml_sched_buffer;

/* Where a step finds a tensor: from byte `off` of buffer `buf` on, rows
 * [row0, ...) and columns [col0, col0 + cols) of it, densely ((rows, cols, C)
 * per inference). */
typedef struct tml_sched_view {
    int buf; /* -1: none */
    int row0, col0, cols;
    int64_t off;
} tml_sched_view;

typedef enum tml_step_kind {
    TML_STEP_RUN = 0, /* node `node` over output rows [r0, r1) x columns [c0, c1) */
    TML_STEP_COPY     /* rows x len bytes, buffer to buffer (memmove semantics) */
} tml_step_kind;

#define TML_STEP_WHOLE 0x1u /* RUN: the whole node on whole tensors (any op) */
#define TML_STEP_FIRST 0x2u /* RUN of a global average pool: clear the sums first */
#define TML_STEP_LAST 0x4u  /* RUN of a global average pool: write the averages after */

typedef struct tml_sched_step {
    tml_step_kind kind;
    unsigned flags;
    int node;
    /* RUN: output region; for a global average pool the input region summed.
     * The input rows a window layer reads are those of the output rows,
     * clipped to the tensor: [max(0, r0*sh - pad_t), min(H, (r1-1)*sh - pad_t + (kh-1)*dh + 1)),
     * likewise the columns; in[k].col0 is the first of those columns. */
    int r0, r1, c0, c1;
    tml_sched_view in[2]; /* the node's activation inputs (in[1]: add's second operand) */
    tml_sched_view out;
    int acc;              /* global average pool: the ACC buffer, else -1 */
    int scratch;          /* the node's kernel scratch buffer (node_scratch), else -1 */
    /* COPY */
    int src, dst;
    int64_t src_off, dst_off, src_stride, dst_stride, len;
    int rows;
} tml_sched_step;

typedef struct tml_schedule {
    int n_segments;
    tml_sched_segment *segments;
    int n_buffers;
    tml_sched_buffer *buffers;
    int n_steps;
    tml_sched_step *steps;
    int align;            /* buffer alignment in the arena (16, as on a device) */
    int64_t arena_bytes;  /* the RAM of the schedule: one arena holding every buffer */
    int64_t bound_bytes;  /* the tensor-by-tensor bound: arena of tml_plan_activations */
    int64_t macs;         /* the model's MACs */
    int64_t extra_macs;   /* recomputed (the segments' sum; may be negative) */
    /* the request and how it was met */
    tml_sched_opts opts;
    int fits;             /* ram_limit given: 1 if arena_bytes <= ram_limit (else this is the
                             least-RAM schedule found and ram_limit is missed by
                             arena_bytes - ram_limit) */
} tml_schedule;

/* Schedules a finalized model for one inference. Any model the engine runs
 * can be scheduled; layers that cannot stream (dense, softmax, reshape...)
 * run plain. On failure *s is left empty (safe to free). */
tml_status tml_schedule_model(const tml_model *m, const tml_sched_opts *o, tml_schedule *s);
void tml_schedule_free(tml_schedule *s);

/* Checks a schedule against its model: every buffer inside the arena, no two
 * buffers that live at the same time overlapping (unless they share a group),
 * every step's views inside their buffers. TML_OK or TML_ERR_INVALID with the
 * first problem. The tests call it; it is cheap. */
tml_status tml_schedule_check(const tml_model *m, const tml_schedule *s);

#ifdef __cplusplus
}
#endif
#endif
