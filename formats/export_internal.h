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
    TML_EXK_COUNT
} tml_exk;

/* Appends the pieces marked in used[] (and their dependencies) in a valid
 * declaration order. used[] is updated with the dependencies. dsp: also the
 * Cortex-M DSP versions, selected at compile time by TML_DSP (the macro
 * prefix `upper` names the -D<PREFIX>PORTABLE switch); else portable only.
 * mm_inputs: the kinds of input the DSP mm_dense meets in the model (the
 * other paths compile away). */
void tml_exk_emit(tml_sb *s, int used[TML_EXK_COUNT], int dsp, const char *upper, int mm_inputs);
enum { TML_MM_IN_CONV = 1, TML_MM_IN_X16 = 2, TML_MM_IN_X8 = 4 };
/* Estimated code bytes of the pieces marked in used[] (after tml_exk_emit
 * added the dependencies), for the DSP or the portable flavour. */
int64_t tml_exk_code_bytes(const int used[TML_EXK_COUNT], int dsp);

#endif
