/*
 * export_internal.h - shared by the C exporter's files (formats/export_*.c):
 * a growable text buffer and the kernel source pieces.
 */
#ifndef TML_EXPORT_INTERNAL_H
#define TML_EXPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Growable string. On allocation failure `oom` is set and further appends
 * are ignored; the owner checks it once at the end. */
typedef struct tml_sb {
    char *buf;
    size_t len, cap;
    int oom;
} tml_sb;

void tml_sb_puts(tml_sb *s, const char *text);
void tml_sb_printf(tml_sb *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Takes the text (caller frees) and resets the buffer; NULL after an OOM. */
char *tml_sb_take(tml_sb *s);
void tml_sb_free(tml_sb *s);

/* Kernel pieces of the generated source. A piece is emitted only when some
 * layer needs it (unused static functions would be warnings, and -Werror
 * builds on devices are common); tml_exk_emit adds the pieces they depend on. */
typedef enum tml_exk {
    TML_EXK_MM_DENSE = 0,
    TML_EXK_MM_SPARSE,
    TML_EXK_MM_CLUSTER,
    TML_EXK_MM_SPARSE_CLUSTER,
    TML_EXK_MM_PACKED,   /* follows the other forms: indexed by form - TML_EXPORT_DENSE */
    TML_EXK_MM_SC8,      /* sparse + cluster, one byte per entry */
    TML_EXK_CONV,
    TML_EXK_DWCONV,
    TML_EXK_DENSE,
    TML_EXK_MAXPOOL,
    TML_EXK_AVGPOOL,
    TML_EXK_GAP,
    TML_EXK_ADD,
    TML_EXK_CLAMP,
    TML_EXK_SOFTMAX,
    TML_EXK_SOFTMAX_TFL, /* TFLite rounding: gemmlowp's fixed-point softmax */
    TML_EXK_MEAN_TFL,    /* TFLite rounding: MEAN's requantized global average pool */
    /* helpers, pulled in by the above */
    TML_EXK_REQUANT,
    TML_EXK_DIVROUND,
    TML_EXK_WMAT,
    TML_EXK_CONV_T,
    TML_EXK_ROWSTART,
    TML_EXK_UNPACK,
    TML_EXK_POOL_T,
    TML_EXK_WIDEN,
    TML_EXK_PUT1X4,
    TML_EXK_CONV_LEAN,   /* conv2d_lean: one pixel at a time from an int8 gather (memory schedules) */
    TML_EXK_GAP_PARTS,   /* global average pool fed by rows or tiles (memory schedules) */
    TML_EXK_COUNT
} tml_exk;

/* Appends the pieces marked in used[] (and their dependencies) in a valid
 * declaration order. used[] is updated with the dependencies. dsp: also the
 * Cortex-M DSP versions, selected at compile time by TML_DSP (the macro
 * prefix `upper` names the -D<PREFIX>PORTABLE switch); else portable only.
 * mm_inputs: the kinds of input the DSP mm_dense meets in the model (the
 * other paths compile away).
 * small: TML_SMALL, the DSP kernels without their special-case fast paths
 * (--optimize size). */
void tml_exk_emit(tml_sb *s, int used[TML_EXK_COUNT], int dsp, const char *upper, int mm_inputs, int small);
enum { TML_MM_IN_CONV = 1, TML_MM_IN_X16 = 2, TML_MM_IN_X8 = 4 };
/* Estimated code bytes of the pieces marked in used[] (after tml_exk_emit
 * added the dependencies), for the DSP or the portable flavour; small and
 * mm_inputs as tml_exk_emit. */
int64_t tml_exk_code_bytes(const int used[TML_EXK_COUNT], int dsp, int small, int mm_inputs);

/* ---- memory schedules in the exported C (export_sched.c) ---------------------- */

struct tml_model;
struct tml_schedule;
struct tml_sched_opts;

/* How the scheduled run function calls node i (filled by export_c.c). */
typedef struct tml_exs_node {
    const char *id;          /* C identifier: <id>_p (parameters), <id>_lut (softmax) */
    int conv2d;              /* conv / depthwise run through conv2d() (else dwconv()) */
    int lean_ok;             /* conv2d_lean() applies (DSP kernels, not dense weights with groups) */
    int64_t scratch_fast;    /* conv2d() scratch bytes (0: none) */
    int64_t scratch_lean;    /* conv2d_lean() scratch bytes */
    int64_t dense_scratch;   /* DSP dense layer: its int16 input, taken only where it is free */
    /* chosen by tml_exs_plan */
    int lean;                /* run through conv2d_lean() */
    int64_t dense_off;       /* the dense layer's scratch offset in the arena, or -1 */
} tml_exs_node;

/* The memory schedule of the export: tml_schedule_model with the kernels'
 * scratch in the arena; conv2d() where its scratch does not cost RAM,
 * conv2d_lean() where it would (with the DSP kernels, whose conv2d needs more).
 * Returns a tml_status. */
int tml_exs_plan(const struct tml_model *m, const struct tml_sched_opts *o, int dsp, tml_exs_node *nodes,
                 struct tml_schedule *s);
/* Marks the kernel pieces the scheduled run calls. */
void tml_exs_used(const struct tml_model *m, const struct tml_schedule *sc, const tml_exs_node *nodes,
                  int used[TML_EXK_COUNT]);
/* The schedule's step table and its interpreter run_steps() (file scope,
 * before the run function; nothing when the schedule has few steps, or
 * none of mode's kind). Returns the table's const bytes; *code: the
 * interpreter's estimated code bytes (its kernels not included). */
enum { TML_EXS_TABLE_NONE, TML_EXS_TABLE_SHARED, TML_EXS_TABLE_ALL };
int64_t tml_exs_emit_steps(tml_sb *s, const struct tml_model *m, const struct tml_schedule *sc, const tml_exs_node *nodes,
                           int mode, int64_t *code);
/* The statements of the scheduled <prefix>run after `int8_t *const a =
 * arena.bytes;`: the input copy, the steps with the layer hooks (the caller
 * writes the output copy); table_mode as tml_exs_emit_steps. Returns the
 * run function's estimated code bytes (-Os, Cortex-M4). */
int64_t tml_exs_emit_run(tml_sb *s, const struct tml_model *m, const struct tml_schedule *sc,
                         const tml_exs_node *nodes, int table_mode, const char *upper);
/* Arena offset of the buffer holding a whole tensor (the model's input or output). */
int64_t tml_exs_tensor_offset(const struct tml_model *m, const struct tml_schedule *sc, int tensor);

#endif
