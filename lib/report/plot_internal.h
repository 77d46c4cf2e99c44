/*
 * plot_internal.h - pieces of the chart renderer shared between lib/report/plot.c,
 * lib/report/font.c and tests/test_plot.c. Not part of the public API.
 */
#ifndef TML_PLOT_INTERNAL_H
#define TML_PLOT_INTERNAL_H

#include <stddef.h>

/* ---- bitmap font (font.c) ------------------------------------------------------
 * 5x13 glyph cells advanced by 6 pixels; codes 32..126 (others draw as '?').
 * Capitals occupy rows 2..10; the baseline is under row 10. */
#define TML_FONT_W 5
#define TML_FONT_H 13
#define TML_FONT_ADV 6
#define TML_FONT_CAP_TOP 2
#define TML_FONT_BASE 10 /* last row of a capital */
#define TML_FONT_FIRST 32
#define TML_FONT_LAST 126

/* 1 when glyph `ch` has ink at (col, row); 0 outside the cell. */
int tml_font_pixel(int ch, int col, int row);
/* 1 when the glyph table is well formed (used by the tests). */
int tml_font_check(void);

/* ---- axis ticks (plot.c) -------------------------------------------------------- */

#define TML_PLOT_MAX_TICKS 96

typedef struct tml_plot_tick {
    double v;       /* position in axis space: the value, or log10(value) on a log axis */
    int major;      /* 1: full-length tick (and decade on log axes); 0: minor tick */
    int labeled;    /* 1: has a label and a grid line */
    char label[24];
} tml_plot_tick;

/* Ticks for an axis showing [lo, hi] (axis space) over `len_px` pixels. Linear
 * axes get 1-2-5 steps spaced so labels never collide; log axes get decades,
 * with 2 and 5 labeled when there is room, and unlabeled minor ticks at 2..9.
 * `horizontal`: labels sit side by side (x axis) rather than stacked (y axis).
 * Returns the number of ticks written to t (at most TML_PLOT_MAX_TICKS). */
int tml_plot_make_ticks(double lo, double hi, int log, int len_px, int horizontal, tml_plot_tick *t);

/* Compact number with an SI suffix: 1000 -> "1k", 25000 -> "25k", 2e6 -> "2M", 0.5 -> "0.5". */
void tml_plot_fmt_si(char *buf, size_t cap, double v);

/* Pixel width of `s` drawn at scale 1 (UTF-8 continuation bytes take no room). */
int tml_plot_text_width(const char *s);

#endif
