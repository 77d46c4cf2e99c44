/*
 * tml_report.h - tables rendered as aligned text, Markdown, CSV or JSON
 * (lib/report/table.c), and PNG charts (lib/report/plot.c).
 *
 * A table is built row by row; cells are text or numbers (numbers keep their
 * value for JSON/CSV and a printf format for display). Notes are footer lines
 * that say where the numbers come from (split, sample count, seed).
 * Rendering returns a malloc'd string: the library never prints.
 */
#ifndef TML_REPORT_H
#define TML_REPORT_H

#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tml_fmt { TML_FMT_TABLE = 0, TML_FMT_MD, TML_FMT_CSV, TML_FMT_JSON } tml_fmt;
tml_status tml_fmt_parse(const char *s, tml_fmt *f);

typedef struct tml_table tml_table;

/* key: short identifier used as the JSON key ("summary", "layers"). */
tml_table *tml_table_new(const char *key, const char *title, int ncols, const char *const *headers);
void tml_table_free(tml_table *t);
/* Starts a new row; cells not set stay empty (JSON null). */
tml_status tml_table_add_row(tml_table *t);
/* Marks the current row as a summary row (a rule is drawn above it in text). */
void tml_table_mark_total(tml_table *t);
tml_status tml_table_str(tml_table *t, int col, const char *s);
tml_status tml_table_fmt(tml_table *t, int col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Numeric cell shown with printf format `disp` (e.g. "%.2f"); NaN shows as "-". */
tml_status tml_table_num(tml_table *t, int col, double v, const char *disp);
tml_status tml_table_int(tml_table *t, int col, int64_t v);
tml_status tml_table_note(tml_table *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int tml_table_rows(const tml_table *t);

/* Renders tables one after another (text/md: blank line between; CSV: "# title"
 * line before each; JSON: one object keyed by each table's key with
 * {"title", "columns", "rows": [{column: value}], "notes"}). Caller frees. */
char *tml_tables_render(tml_table *const *tables, int n, tml_fmt f);

/* ---- statistics of accuracy claims (lib/report/stats.c) ---- */
/* 95% Wilson score interval of an accuracy of k correct out of n, as
 * fractions in [0, 1] ([0, 1] when n is 0). */
void tml_wilson_interval(int64_t k, int64_t n, double *lo, double *hi);
/* Two-sided exact McNemar test of two models evaluated on the same samples:
 * b = samples only the first got right, c = only the second. The p-value of
 * "the two are equally accurate"; a drop with p >= 0.05 is inside the noise. */
double tml_mcnemar_p(int64_t b, int64_t c);

/* Human-readable byte count: B, KiB, MiB (base 1024). */
void tml_format_bytes(char *buf, size_t cap, double bytes);

#ifdef __cplusplus
}
#endif
#endif
