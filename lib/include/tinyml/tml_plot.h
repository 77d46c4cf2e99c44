/*
 * tml_plot.h - line and scatter charts written as PNG files (lib/report/plot.c).
 *
 * A chart is described first (title, axis labels, scales, series, highlighted
 * points, annotations) and rendered only when written, so the layout can
 * account for everything on it: axes get "nice" ticks (1-2-5 steps; decades
 * labeled 1k, 10k, 100k, 1M on log axes), the legend goes to the corner of the
 * plot area with the least data under it (or to the right of the plot when
 * every corner is crowded), annotations are placed so they do not collide.
 *
 *     tml_plot *p = tml_plot_new(900, 560);
 *     tml_plot_title(p, "Pruning sensitivity of lenet5");
 *     tml_plot_labels(p, "sparsity", "top-1 accuracy (%)");
 *     tml_plot_series(p, "conv1", n, sparsity, acc, 1);
 *     st = tml_plot_write_png(p, "sens.png");
 *     tml_plot_free(p);
 *
 * Ownership: every string and array passed in is copied; the caller keeps its
 * own. Non-finite points (and points <= 0 on a log axis) are skipped and break
 * the line they are on. Text is printable ASCII; other characters show as '?'.
 * Long texts are shortened with "...". Series get distinct colours (a
 * 16-colour categorical palette) and marker shapes (8) in the order added.
 *
 * Rendering is deterministic: the same calls give the same bytes. A tml_plot
 * may be used by one thread at a time; distinct plots are independent.
 */
#ifndef TML_PLOT_H
#define TML_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tml_plot tml_plot;

#define TML_PLOT_MIN_SIZE 160     /* pixels, each side */
#define TML_PLOT_MAX_SIZE 8192
#define TML_PLOT_MAX_SERIES 64    /* series + highlights */
#define TML_PLOT_MAX_ANNOTATIONS 4096

/* A blank chart of width x height pixels (e.g. 900 x 560). Returns NULL with
 * the error set when a size is outside [TML_PLOT_MIN_SIZE, TML_PLOT_MAX_SIZE]
 * or memory runs out. Free with tml_plot_free(). */
tml_plot *tml_plot_new(int width, int height);
void tml_plot_free(tml_plot *p); /* NULL is fine */

/* Texts are copied (NULL or "" removes them). The title is centred above the
 * plot; the x label goes under the x axis, the y label reads upwards along the
 * y axis. */
void tml_plot_title(tml_plot *p, const char *title);
void tml_plot_labels(tml_plot *p, const char *xlabel, const char *ylabel);

/* Logarithmic (base 10) axes; off by default. */
void tml_plot_xlog(tml_plot *p, int on);
void tml_plot_ylog(tml_plot *p, int on);

/* Fixed axis ranges in data units. Without one (or when lo < hi does not hold,
 * a bound is not finite, or lo <= 0 on a log axis at render time) the range
 * follows the data with 5% padding; a degenerate range (one point, all values
 * equal) is widened around the value. */
void tml_plot_xrange(tml_plot *p, double lo, double hi);
void tml_plot_yrange(tml_plot *p, double lo, double hi);

/* Adds a series of n points (x[i], y[i]): a polyline with a marker on every
 * point, or markers only when line == 0. `name` labels it in the legend
 * (NULL or "": no legend entry). n == 0 adds only the legend entry.
 * TML_ERR_INVALID: p NULL, n < 0, x or y NULL with n > 0, or more than
 * TML_PLOT_MAX_SERIES series; TML_ERR_NOMEM. */
tml_status tml_plot_series(tml_plot *p, const char *name, int n, const double *x, const double *y, int line);

/* Highlights points (e.g. a Pareto front): a large dark ring around each point
 * and a dashed line through them in order of increasing x. Drawn above the
 * series; `name` labels it in the legend. Errors as tml_plot_series(). */
tml_status tml_plot_highlight(tml_plot *p, const char *name, int n, const double *x, const double *y);

/* A short text label next to the point (x, y) (at most 40 characters shown),
 * placed on whichever side collides least with other labels, the legend and
 * the plot frame. TML_ERR_INVALID: p or text NULL, too many annotations. */
tml_status tml_plot_annotate(tml_plot *p, double x, double y, const char *text);

/* Renders the chart and writes it as an 8-bit RGB PNG. The file is written to
 * a temporary file in the destination directory and renamed over `path`, so a
 * failure never leaves a partial file behind. TML_ERR_IO when the directory
 * does not exist or is not writable; TML_ERR_NOMEM. */
tml_status tml_plot_write_png(const tml_plot *p, const char *path);

/* Renders the chart into a malloc'd PNG image in memory (*buf, *len; caller
 * frees *buf). */
tml_status tml_plot_encode_png(const tml_plot *p, uint8_t **buf, size_t *len);

/* Where the data point (x, y) lands in the rendered image: continuous pixel
 * coordinates, origin at the top-left corner, pixel (i, j) covering
 * [i, i+1) x [j, j+1). Returns 1, or 0 (and leaves *px, *py alone) when the
 * point is not drawable (non-finite, or <= 0 on a log axis). Points outside
 * the axis ranges map outside the plot area. */
int tml_plot_to_pixel(const tml_plot *p, double x, double y, double *px, double *py);

/* The frame of the plot area in the rendered image: columns left and right,
 * rows top and bottom (inclusive); data are drawn strictly inside it. */
void tml_plot_area(const tml_plot *p, int *left, int *top, int *right, int *bottom);

/* Colour of the i-th series added (highlights included, in call order) as
 * 0xRRGGBB; 0 when i is out of range. */
uint32_t tml_plot_series_color(const tml_plot *p, int i);

#ifdef __cplusplus
}
#endif
#endif
