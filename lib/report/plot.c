/*
 * plot.c - line/scatter charts rendered in memory and written as PNG (libpng).
 *
 * Rendering model: an 8-bit RGB canvas (row-major, 3 bytes per pixel, origin
 * top-left) plus a float coverage mask of the same size. Shapes are drawn by
 * coverage computed from signed distances (distance of each pixel centre to a
 * segment or a marker outline), which anti-aliases them without
 * supersampling. A polyline is first accumulated in the mask with max() so
 * its joints are not painted twice, then composited in one pass.
 *
 * Coordinates: pixel (i, j) covers [i, i+1) x [j, j+1); its centre is
 * (i + 0.5, j + 0.5). The plot frame occupies columns L and R and rows T and
 * B; data are mapped so that the lower axis bound falls on the centre of
 * column L (row B) and the upper bound on the centre of column R (row T).
 *
 * Everything is computed from the tml_plot description at render time
 * (compute_layout()), so tml_plot_to_pixel() and tml_plot_area() report
 * exactly what tml_plot_write_png() draws.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "report/plot_internal.h"
#include "tinyml/tml_plot.h"

/* ---- look ------------------------------------------------------------------------ */

#define PAD 14             /* outer margin, pixels */
#define TICK_LEN 5         /* labeled ticks, outside the frame */
#define MINOR_LEN 3
#define LINE_HW 1.25       /* half width of series lines (2.5 px lines) */
#define DASH_HW 0.95       /* half width of highlight (dashed) lines */
#define DASH_ON 7.0        /* dash pattern of highlight lines, pixels */
#define DASH_OFF 4.0
#define MARKER_R 4.0       /* marker "radius" in pixels */
#define RING_R 8.5         /* radius of highlight rings */
#define LEG_ROW 17         /* legend row height */
#define LEG_SWATCH 28      /* legend sample line length */
#define NAME_CHARS 32      /* legend names longer than this are shortened */
#define ANNOT_CHARS 40     /* annotation texts longer than this are shortened */

#define COL_WHITE 0xffffffu
#define COL_TITLE 0x1a1a1au
#define COL_TEXT 0x262626u
#define COL_TICKTEXT 0x3a3a3au
#define COL_FRAME 0x5a5a5au
#define COL_GRID 0xe3e3e3u
#define COL_GRID_MINOR 0xf2f2f2u
#define COL_LEG_BORDER 0xc4c4c4u
#define COL_ANNOT 0x303030u

/* Categorical palette: matplotlib's tab10 (Tableau 10), then six darker hues
 * that stay distinguishable from those ten on white. */
static const uint32_t palette[16] = {
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f,
    0xbcbd22, 0x17becf, 0x393b79, 0x637939, 0x8c6d31, 0x843c39, 0x7b4173, 0x0b6e69,
};
/* Highlights are drawn in near-black first, then dark red. */
static const uint32_t highlight_palette[2] = {0x202020, 0xb2182b};

enum marker { MK_CIRCLE, MK_SQUARE, MK_TRI_UP, MK_DIAMOND, MK_TRI_DOWN, MK_X, MK_PLUS, MK_RING, MK_COUNT };

/* ---- the description ----------------------------------------------------------------- */

typedef struct series {
    char *name; /* sanitized; NULL = no legend entry */
    int highlight;
    int line;
    int n;
    double *x, *y; /* (n) each; y points into the same allocation as x */
    uint32_t color;
    int marker;
} series;

typedef struct annot {
    double x, y;
    char *text; /* sanitized */
} annot;

struct tml_plot {
    int w, h;
    char *title;
    char *label[2]; /* x, y */
    int log[2];
    int fixed[2];
    double flo[2], fhi[2];
    int ns, n_plain, n_high;
    series s[TML_PLOT_MAX_SERIES];
    int na, cap_a;
    annot *a;
    int oom; /* a setter could not copy its text: reported by write/encode */
};

/* Copies `s` as printable ASCII: a UTF-8 sequence becomes one '?', control
 * characters become spaces. NULL or "" gives NULL (and *oom stays). */
static char *sanitize(const char *s, int *oom)
{
    if (!s || !*s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (!d) {
        *oom = 1;
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 && c < 0xc0) continue; /* continuation byte */
        d[j++] = c >= 0x80 ? '?' : (c < 32 || c == 127) ? ' ' : (char)c;
    }
    d[j] = '\0';
    return d;
}

tml_plot *tml_plot_new(int width, int height)
{
    if (width < TML_PLOT_MIN_SIZE || height < TML_PLOT_MIN_SIZE || width > TML_PLOT_MAX_SIZE ||
        height > TML_PLOT_MAX_SIZE) {
        tml_error(TML_ERR_INVALID, "plot size %dx%d is outside %d..%d pixels", width, height, TML_PLOT_MIN_SIZE,
                  TML_PLOT_MAX_SIZE);
        return NULL;
    }
    tml_plot *p = calloc(1, sizeof *p);
    if (!p) {
        tml_error(TML_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->w = width;
    p->h = height;
    return p;
}

void tml_plot_free(tml_plot *p)
{
    if (!p) return;
    free(p->title);
    free(p->label[0]);
    free(p->label[1]);
    for (int i = 0; i < p->ns; i++) {
        free(p->s[i].name);
        free(p->s[i].x);
    }
    for (int i = 0; i < p->na; i++) free(p->a[i].text);
    free(p->a);
    free(p);
}

void tml_plot_title(tml_plot *p, const char *title)
{
    if (!p) return;
    free(p->title);
    p->title = sanitize(title, &p->oom);
}

void tml_plot_labels(tml_plot *p, const char *xlabel, const char *ylabel)
{
    if (!p) return;
    free(p->label[0]);
    free(p->label[1]);
    p->label[0] = sanitize(xlabel, &p->oom);
    p->label[1] = sanitize(ylabel, &p->oom);
}

void tml_plot_xlog(tml_plot *p, int on)
{
    if (p) p->log[0] = on != 0;
}

void tml_plot_ylog(tml_plot *p, int on)
{
    if (p) p->log[1] = on != 0;
}

static void set_range(tml_plot *p, int axis, double lo, double hi)
{
    if (!p) return;
    p->fixed[axis] = isfinite(lo) && isfinite(hi) && lo < hi;
    p->flo[axis] = lo;
    p->fhi[axis] = hi;
}

void tml_plot_xrange(tml_plot *p, double lo, double hi) { set_range(p, 0, lo, hi); }
void tml_plot_yrange(tml_plot *p, double lo, double hi) { set_range(p, 1, lo, hi); }

static tml_status add_series(tml_plot *p, const char *name, int n, const double *x, const double *y, int line,
                             int highlight)
{
    const char *what = highlight ? "tml_plot_highlight" : "tml_plot_series";
    if (!p) return tml_error(TML_ERR_INVALID, "%s: no plot", what);
    if (n < 0) return tml_error(TML_ERR_INVALID, "%s: negative point count %d", what, n);
    if (n > 0 && (!x || !y)) return tml_error(TML_ERR_INVALID, "%s: %d points but no x or y array", what, n);
    if (p->ns >= TML_PLOT_MAX_SERIES)
        return tml_error(TML_ERR_INVALID, "%s: a plot holds at most %d series", what, TML_PLOT_MAX_SERIES);
    if ((size_t)n > SIZE_MAX / (2 * sizeof(double))) return tml_error(TML_ERR_NOMEM, "%s: %d points", what, n);
    series *s = &p->s[p->ns];
    memset(s, 0, sizeof *s);
    int oom = 0;
    s->name = sanitize(name, &oom);
    if (n > 0) {
        s->x = malloc((size_t)n * 2 * sizeof(double));
        if (!s->x) oom = 1;
    }
    if (oom) {
        free(s->name);
        free(s->x);
        memset(s, 0, sizeof *s);
        return tml_error(TML_ERR_NOMEM, "%s: out of memory", what);
    }
    if (n > 0) {
        s->y = s->x + n;
        memcpy(s->x, x, (size_t)n * sizeof(double));
        memcpy(s->y, y, (size_t)n * sizeof(double));
    }
    s->n = n;
    s->highlight = highlight;
    s->line = highlight ? 1 : line != 0;
    if (highlight) {
        s->color = highlight_palette[p->n_high % 2];
        s->marker = MK_RING;
        p->n_high++;
    } else {
        int k = p->n_plain++;
        s->color = palette[k % 16];
        /* shapes cycle with period 8, shifted every 16 series so that no two
         * of the first 128 series share both colour and shape */
        s->marker = (k + k / 16) % MK_COUNT;
    }
    p->ns++;
    return TML_OK;
}

tml_status tml_plot_series(tml_plot *p, const char *name, int n, const double *x, const double *y, int line)
{
    return add_series(p, name, n, x, y, line, 0);
}

tml_status tml_plot_highlight(tml_plot *p, const char *name, int n, const double *x, const double *y)
{
    return add_series(p, name, n, x, y, 1, 1);
}

tml_status tml_plot_annotate(tml_plot *p, double x, double y, const char *text)
{
    if (!p || !text) return tml_error(TML_ERR_INVALID, "tml_plot_annotate: no %s", p ? "text" : "plot");
    if (p->na >= TML_PLOT_MAX_ANNOTATIONS)
        return tml_error(TML_ERR_INVALID, "tml_plot_annotate: a plot holds at most %d annotations",
                         TML_PLOT_MAX_ANNOTATIONS);
    if (p->na == p->cap_a) {
        int cap = p->cap_a ? 2 * p->cap_a : 16;
        annot *a = realloc(p->a, (size_t)cap * sizeof *a);
        if (!a) return tml_error(TML_ERR_NOMEM, "tml_plot_annotate: out of memory");
        p->a = a;
        p->cap_a = cap;
    }
    int oom = 0;
    char *t = sanitize(text, &oom);
    if (oom) return tml_error(TML_ERR_NOMEM, "tml_plot_annotate: out of memory");
    if (!t) return TML_OK; /* empty text: nothing to show */
    p->a[p->na].x = x;
    p->a[p->na].y = y;
    p->a[p->na].text = t;
    p->na++;
    return TML_OK;
}

uint32_t tml_plot_series_color(const tml_plot *p, int i)
{
    if (!p || i < 0 || i >= p->ns) return 0;
    return p->s[i].color;
}

/* ---- text measuring and shortening ------------------------------------------------ */

int tml_plot_text_width(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) n++;
    return n ? n * TML_FONT_ADV - 1 : 0;
}

/* Copies `src` (sanitized ASCII) into dst (cap bytes), shortened with "..."
 * so it is at most max_chars characters and max_px pixels wide at scale 1. */
static void fit_text(char *dst, size_t cap, const char *src, int max_chars, int max_px)
{
    if (!src) src = "";
    int limit = (max_px + 1) / TML_FONT_ADV;
    if (max_chars < limit) limit = max_chars;
    if ((size_t)limit > cap - 1) limit = (int)cap - 1;
    if (limit < 0) limit = 0;
    size_t n = strlen(src);
    if (n <= (size_t)limit) {
        memcpy(dst, src, n + 1);
        return;
    }
    if (limit < 4) { /* no room for text and an ellipsis */
        memcpy(dst, src, (size_t)limit);
        dst[limit] = '\0';
        return;
    }
    size_t keep = (size_t)limit - 3;
    while (keep > 0 && src[keep - 1] == ' ') keep--; /* no "word ..." */
    memcpy(dst, src, keep);
    memcpy(dst + keep, "...", 4);
}

/* ---- ticks --------------------------------------------------------------------------- */

void tml_plot_fmt_si(char *buf, size_t cap, double v)
{
    double a = fabs(v);
    if (a >= 1e15 || (a > 0 && a < 1e-4)) {
        snprintf(buf, cap, "%.3g", v);
        return;
    }
    const char *suf = "";
    if (a >= 1e12) v /= 1e12, suf = "T";
    else if (a >= 1e9) v /= 1e9, suf = "G";
    else if (a >= 1e6) v /= 1e6, suf = "M";
    else if (a >= 1e3) v /= 1e3, suf = "k";
    snprintf(buf, cap, "%.4g%s", v, suf);
}

/* Label of a linear tick at value v (a multiple of step) on an axis whose
 * largest absolute value is maxabs: decimals follow the step so that labels
 * of one axis share a format (0.0 0.2 0.4, not 0 0.2 0.4). */
static void fmt_linear(char *buf, size_t cap, double v, double step, double maxabs)
{
    if (fabs(v) < step * 1e-6) v = 0.0; /* no "-0" or 1e-17 */
    if (maxabs >= 1e5 && maxabs < 1e15 && step >= 1) {
        double scale = maxabs >= 1e12 ? 1e12 : maxabs >= 1e9 ? 1e9 : maxabs >= 1e6 ? 1e6 : 1e3;
        const char *suf = maxabs >= 1e12 ? "T" : maxabs >= 1e9 ? "G" : maxabs >= 1e6 ? "M" : "k";
        double s = step / scale;
        int dec = s >= 1 ? 0 : (int)ceil(-log10(s) - 1e-9);
        if (v == 0.0) snprintf(buf, cap, "0");
        else snprintf(buf, cap, "%.*f%s", dec, v / scale, suf);
    } else if (maxabs < 1e-3 || maxabs >= 1e15) {
        snprintf(buf, cap, "%.3g", v);
    } else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(buf, cap, "%.*f", dec, v);
    }
}

/* Do the labels of the labeled ticks fit along the axis without touching? */
static int labels_fit(const tml_plot_tick *t, int n, double lo, double hi, int len_px, int horizontal)
{
    double prev_px = 0.0;
    int prev_w = 0, have = 0;
    for (int i = 0; i < n; i++) {
        if (!t[i].labeled) continue;
        double px = (t[i].v - lo) / (hi - lo) * len_px;
        int w = tml_plot_text_width(t[i].label);
        if (have) {
            double need = horizontal ? (prev_w + w) / 2.0 + 14.0 : TML_FONT_H + 8.0;
            if (px - prev_px < need) return 0;
        }
        prev_px = px;
        prev_w = w;
        have = 1;
    }
    return 1;
}

static int make_linear_ticks(double lo, double hi, int len_px, int horizontal, tml_plot_tick *t)
{
    double span = hi - lo;
    double maxabs = fmax(fabs(lo), fabs(hi));
    /* preferred spacing between ticks, pixels: dense enough to read values
     * off the chart, sparse enough to stay calm */
    double min_px = horizontal ? 64.0 : 48.0;
    int e0 = (int)floor(log10(span / 64.0));
    static const double mult[3] = {1.0, 2.0, 5.0};
    int best_n = 0;
    for (int it = 0; it < 60; it++) {
        double step = mult[it % 3] * pow(10.0, e0 + it / 3);
        double k0 = ceil(lo / step - 1e-9), k1 = floor(hi / step + 1e-9);
        double cnt = k1 - k0 + 1;
        if (cnt > TML_PLOT_MAX_TICKS) continue;
        int n = cnt > 0 ? (int)cnt : 0;
        for (int i = 0; i < n; i++) {
            t[i].v = (k0 + i) * step;
            t[i].major = t[i].labeled = 1;
            fmt_linear(t[i].label, sizeof t[i].label, t[i].v, step, maxabs);
        }
        best_n = n;
        if (step / span * len_px >= min_px && labels_fit(t, n, lo, hi, len_px, horizontal)) return n;
        if (n <= 1) return n; /* cannot get sparser */
    }
    return best_n;
}

/* Log axis: candidate label sets from the densest to the sparsest. Tier 0 are
 * decades (1, 10, 100...), tier 1 adds 2 and 5 times a decade, tier 2 adds
 * the remaining 3, 4, 6, 7, 8, 9. */
static int make_log_ticks(double lo, double hi, int len_px, int horizontal, tml_plot_tick *t)
{
    int k0 = (int)floor(lo - 1e-9), k1 = (int)ceil(hi + 1e-9);
    int decades = k1 - k0;
    int with_minor = decades <= 8;
    int tier[TML_PLOT_MAX_TICKS], dec[TML_PLOT_MAX_TICKS];
    int n = 0;
    for (int k = k0; k <= k1 && n < TML_PLOT_MAX_TICKS; k++) {
        for (int m = 1; m <= 9 && n < TML_PLOT_MAX_TICKS; m++) {
            if (m > 1 && !with_minor) break;
            double lv = k + log10((double)m);
            if (lv < lo - 1e-9 || lv > hi + 1e-9) continue;
            t[n].v = lv;
            t[n].major = m == 1;
            t[n].labeled = 0;
            tml_plot_fmt_si(t[n].label, sizeof t[n].label, (double)m * pow(10.0, k));
            tier[n] = m == 1 ? 0 : (m == 2 || m == 5) ? 1 : 2;
            dec[n] = k;
            n++;
        }
    }
    int count[3] = {0, 0, 0};
    for (int i = 0; i < n; i++)
        for (int tr = tier[i]; tr < 3; tr++) count[tr]++;
    double span = hi - lo;
    /* attempts: max tier labeled, and a stride over decades for tier 0 */
    struct attempt {
        int max_tier, stride, min_count;
    } tries[] = {
        {1, 1, 2}, {0, 1, 2}, {2, 1, 2}, {1, 1, 1}, {0, 2, 1}, {0, 3, 1}, {0, 5, 1}, {0, 10, 1}, {0, 20, 1},
    };
    for (size_t a = 0; a < sizeof tries / sizeof tries[0]; a++) {
        int mt = tries[a].max_tier, stride = tries[a].stride;
        if (mt == 1 && tries[a].min_count == 2 && span > 3.5) continue; /* too busy over many decades */
        if (count[mt] < tries[a].min_count && stride == 1) continue;
        int labeled = 0;
        for (int i = 0; i < n; i++) {
            int on = tier[i] <= mt && (stride == 1 || (((dec[i] % stride) + stride) % stride) == 0);
            t[i].labeled = on;
            labeled += on;
        }
        if (labeled >= tries[a].min_count && labels_fit(t, n, lo, hi, len_px, horizontal)) break;
        if (a + 1 == sizeof tries / sizeof tries[0]) {
            for (int i = 0; i < n; i++) t[i].labeled = 0; /* give up on labels rather than overlap */
        }
    }
    for (int i = 0; i < n; i++)
        if (t[i].labeled) t[i].major = 1;
    return n;
}

int tml_plot_make_ticks(double lo, double hi, int log, int len_px, int horizontal, tml_plot_tick *t)
{
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi) || len_px <= 0) return 0;
    return log ? make_log_ticks(lo, hi, len_px, horizontal, t) : make_linear_ticks(lo, hi, len_px, horizontal, t);
}

/* ---- layout ---------------------------------------------------------------------- */

typedef struct axis_lay {
    int log;
    double lo, hi; /* axis space: value, or log10(value) */
    int nt;
    tml_plot_tick t[TML_PLOT_MAX_TICKS];
} axis_lay;

typedef struct frect {
    double x0, y0, x1, y1;
} frect;

typedef struct layout {
    int L, T, R, B; /* frame columns / rows */
    axis_lay ax[2];
    char title[512];
    int title_scale;
    /* legend */
    int leg_n;                      /* entries drawn */
    int leg_more;                   /* entries left out ("+N more" row) */
    int leg_idx[TML_PLOT_MAX_SERIES]; /* series index of each entry */
    char leg_text[TML_PLOT_MAX_SERIES][NAME_CHARS + 1];
    int leg_x, leg_y, leg_w, leg_h; /* box; leg_w == 0: no legend */
    int leg_outside;
} layout;

static int axis_value(const axis_lay *a, double v, double *out)
{
    if (!isfinite(v)) return 0;
    if (a->log) {
        if (!(v > 0)) return 0;
        v = log10(v);
    }
    *out = v;
    return 1;
}

/* Data point -> continuous pixel coordinates with the layout's frame. */
static int map_point(const layout *L, double x, double y, double *px, double *py)
{
    double ax, ay;
    if (!axis_value(&L->ax[0], x, &ax) || !axis_value(&L->ax[1], y, &ay)) return 0;
    double fx = (ax - L->ax[0].lo) / (L->ax[0].hi - L->ax[0].lo);
    double fy = (ay - L->ax[1].lo) / (L->ax[1].hi - L->ax[1].lo);
    double X = L->L + 0.5 + fx * (L->R - L->L), Y = L->B + 0.5 - fy * (L->B - L->T);
    /* absurdly far points (1e300 on a fixed 0..100 axis) count as gaps, so
     * differences of pixel coordinates never overflow */
    if (!(fabs(X) < 1e100) || !(fabs(Y) < 1e100)) return 0;
    *px = X;
    *py = Y;
    return 1;
}

static double tick_px(const layout *L, int axis, double v)
{
    const axis_lay *a = &L->ax[axis];
    double f = (v - a->lo) / (a->hi - a->lo);
    return axis == 0 ? L->L + 0.5 + f * (L->R - L->L) : L->B + 0.5 - f * (L->B - L->T);
}

/* Range of one axis (axis space): fixed, or the drawable data padded by 5%. */
static void axis_range(const tml_plot *p, int axis, axis_lay *a)
{
    a->log = p->log[axis];
    if (p->fixed[axis] && (!a->log || p->flo[axis] > 0)) {
        a->lo = a->log ? log10(p->flo[axis]) : p->flo[axis];
        a->hi = a->log ? log10(p->fhi[axis]) : p->fhi[axis];
        return;
    }
    /* a point counts when both of its coordinates are drawable */
    axis_lay ax = {.log = p->log[0]}, ay = {.log = p->log[1]};
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < p->ns; s++) {
        for (int i = 0; i < p->s[s].n; i++) {
            double vx, vy;
            if (!axis_value(&ax, p->s[s].x[i], &vx) || !axis_value(&ay, p->s[s].y[i], &vy)) continue;
            double v = axis ? vy : vx;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
    }
    for (int i = 0; i < p->na; i++) {
        double vx, vy;
        if (!axis_value(&ax, p->a[i].x, &vx) || !axis_value(&ay, p->a[i].y, &vy)) continue;
        double v = axis ? vy : vx;
        lo = fmin(lo, v);
        hi = fmax(hi, v);
    }
    if (!(lo <= hi)) { /* nothing drawable */
        lo = 0.0;
        hi = 1.0;
    }
    double mag = fmax(1.0, fmax(fabs(lo), fabs(hi)));
    if (hi - lo <= 1e-9 * mag) {
        /* one value: a range around it (10% of it, a decade on log axes) */
        double c = 0.5 * (lo + hi);
        double half = a->log ? 0.5 : (c != 0.0 ? 0.1 * fabs(c) : 1.0);
        lo = c - half;
        hi = c + half;
    }
    double padv = 0.05 * (hi - lo);
    a->lo = lo - padv;
    a->hi = hi + padv;
}

static int max_label_width(const axis_lay *a)
{
    int w = 0;
    for (int i = 0; i < a->nt; i++)
        if (a->t[i].labeled) {
            int tw = tml_plot_text_width(a->t[i].label);
            if (tw > w) w = tw;
        }
    return w;
}

/* x ticks, then pull R left until the last label ends inside `limit`. */
static void layout_x_axis(layout *L, int limit)
{
    for (int it = 0; it < 3; it++) {
        L->ax[0].nt = tml_plot_make_ticks(L->ax[0].lo, L->ax[0].hi, L->ax[0].log, L->R - L->L, 1, L->ax[0].t);
        int over = 0;
        for (int i = 0; i < L->ax[0].nt; i++) {
            if (!L->ax[0].t[i].labeled) continue;
            double right = tick_px(L, 0, L->ax[0].t[i].v) + tml_plot_text_width(L->ax[0].t[i].label) / 2.0;
            if (right > limit) over = (int)ceil(right - limit);
        }
        if (over <= 0 || L->R - over - L->L < 40) return;
        L->R -= over;
    }
}

/* Ink (data) density inside rectangle r, used to pick the legend's place:
 * markers count 3, line samples (every 3 px) count 1. */
static double ink_in(const tml_plot *p, const layout *L, frect r)
{
    double score = 0.0;
    for (int s = 0; s < p->ns; s++) {
        const series *se = &p->s[s];
        double lx = 0, ly = 0;
        int have_last = 0;
        for (int i = 0; i < se->n; i++) {
            double x, y;
            if (!map_point(L, se->x[i], se->y[i], &x, &y)) {
                have_last = 0;
                continue;
            }
            if (x >= r.x0 - MARKER_R && x <= r.x1 + MARKER_R && y >= r.y0 - MARKER_R && y <= r.y1 + MARKER_R)
                score += 3.0;
            if (se->line && have_last && !se->highlight) {
                double len = hypot(x - lx, y - ly);
                int steps = (int)fmin(len / 3.0, 4000.0);
                for (int k = 1; k < steps; k++) {
                    double f = (double)k / steps, sx = lx + f * (x - lx), sy = ly + f * (y - ly);
                    if (sx >= r.x0 - 2 && sx <= r.x1 + 2 && sy >= r.y0 - 2 && sy <= r.y1 + 2) score += 1.0;
                }
            }
            lx = x;
            ly = y;
            have_last = 1;
        }
    }
    for (int i = 0; i < p->na; i++) {
        double x, y;
        if (map_point(L, p->a[i].x, p->a[i].y, &x, &y) && x >= r.x0 && x <= r.x1 && y >= r.y0 && y <= r.y1)
            score += 3.0;
    }
    return score;
}

static void layout_legend_size(const tml_plot *p, layout *L)
{
    int n = 0, textw = 0;
    for (int s = 0; s < p->ns; s++) {
        if (!p->s[s].name) continue;
        L->leg_idx[n] = s;
        fit_text(L->leg_text[n], sizeof L->leg_text[n], p->s[s].name, NAME_CHARS, 1 << 20);
        int w = tml_plot_text_width(L->leg_text[n]);
        if (w > textw) textw = w;
        n++;
    }
    L->leg_n = n;
    L->leg_more = 0;
    L->leg_w = 0;
    if (n == 0) return;
    L->leg_w = 8 + LEG_SWATCH + 8 + textw + 10;
}

/* Sets the legend height for the room available (rows beyond it collapse into
 * a "+N more" row). */
static void legend_fit_rows(const tml_plot *p, layout *L, int avail_h)
{
    int total = 0;
    for (int s = 0; s < p->ns; s++) total += p->s[s].name != NULL;
    int rows = (avail_h - 10) / LEG_ROW;
    if (rows < 1) rows = 1;
    L->leg_n = total;
    L->leg_more = 0;
    if (total > rows) {
        L->leg_n = rows - 1;
        L->leg_more = total - L->leg_n;
        int w = 8 + tml_plot_text_width("+9999 more") + 10;
        if (w > L->leg_w) L->leg_w = w;
    }
    L->leg_h = 6 + (L->leg_n + (L->leg_more > 0)) * LEG_ROW + 4;
}

static void compute_layout(const tml_plot *p, layout *L)
{
    memset(L, 0, sizeof *L);
    axis_range(p, 0, &L->ax[0]);
    axis_range(p, 1, &L->ax[1]);
    int W = p->w, H = p->h;

    /* title: twice the font size when it fits, else the plain size */
    int top = PAD + 6;
    if (p->title) {
        int avail = W - 2 * PAD;
        L->title_scale = 2 * tml_plot_text_width(p->title) <= avail ? 2 : 1;
        /* scale 1 is drawn bold: 7 pixels per character instead of 6 */
        fit_text(L->title, sizeof L->title, p->title, 1 << 20,
                 L->title_scale == 2 ? avail / 2 : avail * TML_FONT_ADV / (TML_FONT_ADV + 1));
        top = PAD + (TML_FONT_BASE - TML_FONT_CAP_TOP + 1 + 2) * L->title_scale + 12;
    }
    L->T = top;
    /* under the frame: ticks, tick labels (cap + descender: 11 rows), x label */
    L->B = H - PAD - (TICK_LEN + 4 + 11) - (p->label[0] ? 19 : 0);
    if (L->B - L->T < 40) L->B = L->T + 40;

    L->ax[1].nt = tml_plot_make_ticks(L->ax[1].lo, L->ax[1].hi, L->ax[1].log, L->B - L->T, 0, L->ax[1].t);
    L->L = PAD + (p->label[1] ? TML_FONT_H + 6 : 0) + max_label_width(&L->ax[1]) + TICK_LEN + 4;
    L->R = W - PAD - 2;
    if (L->R - L->L < 40) L->R = L->L + 40;
    layout_x_axis(L, W - PAD);

    layout_legend_size(p, L);
    if (L->leg_w == 0) return;
    legend_fit_rows(p, L, L->B - L->T - 16);

    /* inside, at the corner with the least data under it; ties go to
     * upper right, upper left, lower left, lower right */
    int in = 8;
    int cx[4] = {L->R - in - L->leg_w, L->L + in + 1, L->L + in + 1, L->R - in - L->leg_w};
    int cy[4] = {L->T + in + 1, L->T + in + 1, L->B - in - L->leg_h, L->B - in - L->leg_h};
    int best = 0;
    double best_score = INFINITY;
    for (int c = 0; c < 4; c++) {
        frect r = {cx[c], cy[c], cx[c] + L->leg_w, cy[c] + L->leg_h};
        double sc = ink_in(p, L, r);
        if (sc < best_score) {
            best_score = sc;
            best = c;
        }
    }
    int fits_inside = L->leg_w <= (L->R - L->L) - 2 * in && L->leg_h <= (L->B - L->T) - 2 * in;
    /* every corner covers data: move the legend right of the plot when that
     * costs at most a third of the width */
    if ((best_score > 0 || !fits_inside) && L->leg_w <= W / 3) {
        L->leg_outside = 1;
        L->R = W - PAD - L->leg_w - 14;
        layout_x_axis(L, W - PAD - L->leg_w - 4);
        legend_fit_rows(p, L, H - PAD - L->T);
        L->leg_x = W - PAD - L->leg_w;
        L->leg_y = L->T;
        return;
    }
    L->leg_x = cx[best];
    L->leg_y = cy[best];
}

/* ---- canvas ---------------------------------------------------------------------------- */

typedef struct canvas {
    int w, h;
    uint8_t *px; /* (h, w, 3) RGB */
    float *mask; /* (h, w) coverage scratch for polylines; all zero between uses */
} canvas;

typedef struct irect { /* half-open pixel rectangle */
    int x0, y0, x1, y1;
} irect;

static void blend(canvas *c, int x, int y, uint32_t col, double a)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h || !(a > 0.0)) return;
    uint8_t *q = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    int rgb[3] = {(int)(col >> 16) & 255, (int)(col >> 8) & 255, (int)col & 255};
    if (a >= 1.0) {
        for (int k = 0; k < 3; k++) q[k] = (uint8_t)rgb[k];
        return;
    }
    for (int k = 0; k < 3; k++) q[k] = (uint8_t)(q[k] + (rgb[k] - q[k]) * a + (rgb[k] >= q[k] ? 0.5 : -0.5));
}

static void fill_rect(canvas *c, int x0, int y0, int x1, int y1, uint32_t col)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) blend(c, x, y, col, 1.0);
}

static double clamp01(double v) { return v <= 0.0 ? 0.0 : v >= 1.0 ? 1.0 : v; }

/* Liang-Barsky: clips the segment to r (continuous). 0 when nothing is left. */
static int clip_segment(frect r, double *ax, double *ay, double *bx, double *by)
{
    double dx = *bx - *ax, dy = *by - *ay, t0 = 0.0, t1 = 1.0;
    double pq[4][2] = {{-dx, *ax - r.x0}, {dx, r.x1 - *ax}, {-dy, *ay - r.y0}, {dy, r.y1 - *ay}};
    for (int k = 0; k < 4; k++) {
        double pp = pq[k][0], q = pq[k][1];
        if (pp == 0.0) {
            if (q < 0) return 0;
            continue;
        }
        double t = q / pp;
        if (pp < 0) {
            if (t > t1) return 0;
            if (t > t0) t0 = t;
        } else {
            if (t < t0) return 0;
            if (t < t1) t1 = t;
        }
    }
    double x0 = *ax + t0 * dx, y0 = *ay + t0 * dy, x1 = *ax + t1 * dx, y1 = *ay + t1 * dy;
    *ax = x0, *ay = y0, *bx = x1, *by = y1;
    return 1;
}

/* Accumulates a thick anti-aliased segment (round caps) in the mask, inside
 * clip; grows *bb to cover what it touched. */
static void mask_segment(canvas *c, irect clip, irect *bb, double ax, double ay, double bx, double by, double hw)
{
    frect cr = {clip.x0 - hw - 2, clip.y0 - hw - 2, clip.x1 + hw + 2, clip.y1 + hw + 2};
    if (!clip_segment(cr, &ax, &ay, &bx, &by)) return;
    int x0 = (int)floor(fmin(ax, bx) - hw - 1), x1 = (int)ceil(fmax(ax, bx) + hw + 1);
    int y0 = (int)floor(fmin(ay, by) - hw - 1), y1 = (int)ceil(fmax(ay, by) + hw + 1);
    if (x0 < clip.x0) x0 = clip.x0;
    if (y0 < clip.y0) y0 = clip.y0;
    if (x1 > clip.x1) x1 = clip.x1;
    if (y1 > clip.y1) y1 = clip.y1;
    if (x0 >= x1 || y0 >= y1) return;
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = y0; y < y1; y++) {
        for (int x = x0; x < x1; x++) {
            double qx = x + 0.5 - ax, qy = y + 0.5 - ay;
            double t = len2 > 0.0 ? (qx * dx + qy * dy) / len2 : 0.0;
            t = clamp01(t);
            double ex = qx - t * dx, ey = qy - t * dy;
            double cov = clamp01(hw + 0.5 - sqrt(ex * ex + ey * ey));
            float *m = &c->mask[(size_t)y * (size_t)c->w + (size_t)x];
            if (cov > *m) *m = (float)cov;
        }
    }
    if (x0 < bb->x0) bb->x0 = x0;
    if (y0 < bb->y0) bb->y0 = y0;
    if (x1 > bb->x1) bb->x1 = x1;
    if (y1 > bb->y1) bb->y1 = y1;
}

static irect empty_bb(void) { return (irect){INT_MAX, INT_MAX, INT_MIN, INT_MIN}; }

/* Paints the mask inside bb with `col` and clears it. */
static void mask_commit(canvas *c, irect bb, uint32_t col)
{
    for (int y = bb.y0; y < bb.y1; y++) {
        for (int x = bb.x0; x < bb.x1; x++) {
            float *m = &c->mask[(size_t)y * (size_t)c->w + (size_t)x];
            if (*m > 0.0f) blend(c, x, y, col, *m);
            *m = 0.0f;
        }
    }
}

/* Dashed polyline: the dash phase carries over from one segment to the next. */
typedef struct dasher {
    double phase; /* position within DASH_ON + DASH_OFF */
} dasher;

static void mask_dashed(canvas *c, irect clip, irect *bb, dasher *d, double ax, double ay, double bx, double by)
{
    /* only the visible part is dashed; the phase still advances by the
     * whole length so dashes line up across segments */
    double full = hypot(bx - ax, by - ay);
    frect cr = {clip.x0 - 4.0, clip.y0 - 4.0, clip.x1 + 4.0, clip.y1 + 4.0};
    double sx = ax, sy = ay;
    if (!(full > 0.0) || !clip_segment(cr, &ax, &ay, &bx, &by)) {
        if (full > 0.0) d->phase = fmod(d->phase + full, DASH_ON + DASH_OFF);
        return;
    }
    double skipped = hypot(ax - sx, ay - sy);
    d->phase = fmod(d->phase + skipped, DASH_ON + DASH_OFF);
    double len = hypot(bx - ax, by - ay);
    double rest = full - skipped - len;
    if (!(len > 0.0)) {
        d->phase = fmod(d->phase + fmax(rest, 0.0), DASH_ON + DASH_OFF);
        return;
    }
    double period = DASH_ON + DASH_OFF, pos = 0.0;
    while (pos < len) {
        double ph = fmod(d->phase + pos, period);
        double run = ph < DASH_ON ? DASH_ON - ph : period - ph;
        double end = fmin(len, pos + run);
        if (ph < DASH_ON) {
            double f0 = pos / len, f1 = end / len;
            mask_segment(c, clip, bb, ax + f0 * (bx - ax), ay + f0 * (by - ay), ax + f1 * (bx - ax),
                         ay + f1 * (by - ay), DASH_HW);
        }
        pos = end;
    }
    d->phase = fmod(d->phase + len + fmax(rest, 0.0), period);
}

static double seg_dist(double px, double py, double ax, double ay, double bx, double by)
{
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? clamp01(((px - ax) * dx + (py - ay) * dy) / len2) : 0.0;
    return hypot(px - ax - t * dx, py - ay - t * dy);
}

/* Signed distance (pixels, negative inside) from (dx, dy) to a marker of
 * size r centred at the origin; y grows downwards. Sizes are tuned so that
 * the shapes look about equally heavy. */
static double marker_sd(int shape, double dx, double dy, double r)
{
    const double c30 = 0.8660254037844386;
    switch (shape) {
    case MK_SQUARE:
        return fmax(fabs(dx), fabs(dy)) - 0.85 * r;
    case MK_TRI_UP:
    case MK_TRI_DOWN: {
        double R = 1.3 * r; /* circumradius; the centroid sits at the centre */
        if (shape == MK_TRI_DOWN) dy = -dy;
        dy -= 0.12 * r; /* optical centring */
        return fmax(dy, fmax(-c30 * dx - 0.5 * dy, c30 * dx - 0.5 * dy)) - 0.5 * R;
    }
    case MK_DIAMOND:
        return (fabs(dx) + fabs(dy) - 1.25 * r) * 0.7071067811865476;
    case MK_X: {
        double a = 0.95 * r;
        return fmin(seg_dist(dx, dy, -a, -a, a, a), seg_dist(dx, dy, -a, a, a, -a)) - 1.1;
    }
    case MK_PLUS: {
        double a = 1.2 * r;
        return fmin(seg_dist(dx, dy, -a, 0, a, 0), seg_dist(dx, dy, 0, -a, 0, a)) - 1.1;
    }
    case MK_RING:
        return fabs(hypot(dx, dy) - 0.9 * r) - 1.0;
    case MK_CIRCLE:
    default:
        return hypot(dx, dy) - r;
    }
}

/* A marker with an optional white outline (separates it from lines under it). */
static void draw_marker(canvas *c, irect clip, double cx, double cy, int shape, double r, uint32_t col, int outline)
{
    double ext = 1.5 * r + 3.0;
    if (cx < clip.x0 - ext || cx > clip.x1 + ext || cy < clip.y0 - ext || cy > clip.y1 + ext) return;
    int x0 = (int)floor(cx - ext), x1 = (int)ceil(cx + ext), y0 = (int)floor(cy - ext), y1 = (int)ceil(cy + ext);
    if (x0 < clip.x0) x0 = clip.x0;
    if (y0 < clip.y0) y0 = clip.y0;
    if (x1 > clip.x1) x1 = clip.x1;
    if (y1 > clip.y1) y1 = clip.y1;
    for (int y = y0; y < y1; y++) {
        for (int x = x0; x < x1; x++) {
            double sd = marker_sd(shape, x + 0.5 - cx, y + 0.5 - cy, r);
            if (outline) {
                /* rings get a white disc so a line under them does not show as a dot */
                double so = shape == MK_RING ? hypot(x + 0.5 - cx, y + 0.5 - cy) - 0.9 * r - 1.0 : sd;
                blend(c, x, y, COL_WHITE, clamp01(0.5 - (so - 1.2)));
            }
            blend(c, x, y, col, clamp01(0.5 - sd));
        }
    }
}

/* Highlight ring: a plain circle outline of radius rr. */
static void draw_ring(canvas *c, irect clip, double cx, double cy, double rr, double hw, uint32_t col)
{
    if (cx < clip.x0 - rr - 3 || cx > clip.x1 + rr + 3 || cy < clip.y0 - rr - 3 || cy > clip.y1 + rr + 3) return;
    int x0 = (int)floor(cx - rr - 3), x1 = (int)ceil(cx + rr + 3), y0 = (int)floor(cy - rr - 3),
        y1 = (int)ceil(cy + rr + 3);
    if (x0 < clip.x0) x0 = clip.x0;
    if (y0 < clip.y0) y0 = clip.y0;
    if (x1 > clip.x1) x1 = clip.x1;
    if (y1 > clip.y1) y1 = clip.y1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            blend(c, x, y, col, clamp01(hw + 0.5 - fabs(hypot(x + 0.5 - cx, y + 0.5 - cy) - rr)));
}

/* ---- text -------------------------------------------------------------------------------- */

/* Sets one text-space pixel: rot 0 is left to right from (x, y) = top-left of
 * the first cell; rot 1 reads upwards, (x, y) = left edge and bottom end. */
static void text_put(canvas *c, irect clip, int x, int y, int rot, int tx, int ty, uint32_t col)
{
    int X = rot ? x + ty : x + tx, Y = rot ? y - tx : y + ty;
    if (X < clip.x0 || X >= clip.x1 || Y < clip.y0 || Y >= clip.y1) return;
    blend(c, X, Y, col, 1.0);
}

/* Draws s (ASCII) at scale 1 (optionally bold: each column doubled) or 2
 * (Scale2x-smoothed, so diagonals stay diagonal instead of turning into
 * staircases). */
static void draw_text(canvas *c, irect clip, int x, int y, const char *s, uint32_t col, int scale, int bold,
                      int rot)
{
    int pen = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch & 0xc0) == 0x80) continue;
        for (int r = 0; r < TML_FONT_H; r++) {
            for (int k = 0; k < TML_FONT_W; k++) {
                int P = tml_font_pixel(ch, k, r);
                if (scale == 1) {
                    if (!P) continue;
                    text_put(c, clip, x, y, rot, pen + k, r, col);
                    if (bold) text_put(c, clip, x, y, rot, pen + k + 1, r, col);
                    continue;
                }
                int A = tml_font_pixel(ch, k, r - 1), B = tml_font_pixel(ch, k + 1, r);
                int C = tml_font_pixel(ch, k - 1, r), D = tml_font_pixel(ch, k, r + 1);
                int e[4] = {P, P, P, P};
                if (C == A && C != D && A != B) e[0] = A;
                if (A == B && A != C && B != D) e[1] = B;
                if (D == C && D != B && C != A) e[2] = C;
                if (B == D && B != A && D != C) e[3] = D;
                for (int q = 0; q < 4; q++)
                    if (e[q]) text_put(c, clip, x, y, rot, pen + 2 * k + (q & 1), 2 * r + (q >> 1), col);
            }
        }
        pen += TML_FONT_ADV * scale + (bold ? 1 : 0);
    }
}

/* Text with a 1-pixel white halo, readable on top of lines and grid. */
static void draw_text_halo(canvas *c, irect clip, int x, int y, const char *s, uint32_t col)
{
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++)
            if (dx || dy) draw_text(c, clip, x + dx, y + dy, s, COL_WHITE, 1, 0, 0);
    draw_text(c, clip, x, y, s, col, 1, 0, 0);
}

/* ---- rendering ---------------------------------------------------------------------------- */

typedef struct pt {
    double x, y;
} pt;

static int cmp_pt_x(const void *a, const void *b)
{
    double xa = ((const pt *)a)->x, xb = ((const pt *)b)->x;
    return (xa > xb) - (xa < xb);
}

static void draw_grid_and_axes(canvas *c, const layout *L, irect inner, irect full)
{
    /* grid: labeled ticks; minor ticks of log axes get a fainter line */
    for (int a = 0; a < 2; a++) {
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < L->ax[a].nt; i++) {
                const tml_plot_tick *t = &L->ax[a].t[i];
                if (t->labeled != pass || (!t->labeled && !L->ax[a].log)) continue;
                uint32_t col = t->labeled ? COL_GRID : COL_GRID_MINOR;
                int q = (int)floor(tick_px(L, a, t->v));
                if (a == 0 && q > L->L && q < L->R)
                    for (int y = inner.y0; y < inner.y1; y++) blend(c, q, y, col, 1.0);
                if (a == 1 && q > L->T && q < L->B)
                    for (int x = inner.x0; x < inner.x1; x++) blend(c, x, q, col, 1.0);
            }
        }
    }
    (void)full;
}

static void draw_frame_and_ticks(canvas *c, const layout *L, irect full)
{
    for (int x = L->L; x <= L->R; x++) {
        blend(c, x, L->T, COL_FRAME, 1.0);
        blend(c, x, L->B, COL_FRAME, 1.0);
    }
    for (int y = L->T; y <= L->B; y++) {
        blend(c, L->L, y, COL_FRAME, 1.0);
        blend(c, L->R, y, COL_FRAME, 1.0);
    }
    /* x ticks and labels (caps start 4 px under the tick) */
    for (int i = 0; i < L->ax[0].nt; i++) {
        const tml_plot_tick *t = &L->ax[0].t[i];
        int q = (int)floor(tick_px(L, 0, t->v));
        if (q < L->L || q > L->R) continue;
        int len = t->labeled ? TICK_LEN : MINOR_LEN;
        for (int k = 1; k <= len; k++) blend(c, q, L->B + k, COL_FRAME, 1.0);
        if (!t->labeled) continue;
        int w = tml_plot_text_width(t->label);
        draw_text(c, full, q - w / 2, L->B + TICK_LEN + 4 - TML_FONT_CAP_TOP, t->label, COL_TICKTEXT, 1, 0, 0);
    }
    /* y ticks and labels, right-aligned, caps centred on the tick */
    for (int i = 0; i < L->ax[1].nt; i++) {
        const tml_plot_tick *t = &L->ax[1].t[i];
        int q = (int)floor(tick_px(L, 1, t->v));
        if (q < L->T || q > L->B) continue;
        int len = t->labeled ? TICK_LEN : MINOR_LEN;
        for (int k = 1; k <= len; k++) blend(c, L->L - k, q, COL_FRAME, 1.0);
        if (!t->labeled) continue;
        int w = tml_plot_text_width(t->label);
        int cap_mid = (TML_FONT_CAP_TOP + TML_FONT_BASE) / 2;
        draw_text(c, full, L->L - TICK_LEN - 4 - w, q - cap_mid, t->label, COL_TICKTEXT, 1, 0, 0);
    }
}

static void draw_series_lines(canvas *c, const tml_plot *p, const layout *L, irect inner, int highlight)
{
    for (int s = 0; s < p->ns; s++) {
        const series *se = &p->s[s];
        if (se->highlight != highlight || !se->line || se->n < 2) continue;
        irect bb = empty_bb();
        if (!highlight) {
            double lx = 0, ly = 0;
            int have = 0;
            for (int i = 0; i < se->n; i++) {
                double x, y;
                if (!map_point(L, se->x[i], se->y[i], &x, &y)) { /* a gap: break the line */
                    have = 0;
                    continue;
                }
                if (have) mask_segment(c, inner, &bb, lx, ly, x, y, LINE_HW);
                lx = x, ly = y, have = 1;
            }
        } else {
            pt *v = malloc((size_t)se->n * sizeof *v);
            if (!v) continue; /* the rings still show the points */
            int m = 0;
            for (int i = 0; i < se->n; i++)
                if (map_point(L, se->x[i], se->y[i], &v[m].x, &v[m].y)) m++;
            qsort(v, (size_t)m, sizeof *v, cmp_pt_x);
            dasher d = {0.0};
            for (int i = 1; i < m; i++) mask_dashed(c, inner, &bb, &d, v[i - 1].x, v[i - 1].y, v[i].x, v[i].y);
            free(v);
        }
        if (bb.x0 < bb.x1) mask_commit(c, bb, se->color);
    }
}

static void draw_series_markers(canvas *c, const tml_plot *p, const layout *L, irect inner, int highlight)
{
    for (int s = 0; s < p->ns; s++) {
        const series *se = &p->s[s];
        if (se->highlight != highlight) continue;
        for (int i = 0; i < se->n; i++) {
            double x, y;
            if (!map_point(L, se->x[i], se->y[i], &x, &y)) continue;
            if (highlight) draw_ring(c, inner, x, y, RING_R, 0.9, se->color);
            else draw_marker(c, inner, x, y, se->marker, MARKER_R, se->color, 1);
        }
    }
}

static double overlap(frect a, frect b)
{
    double w = fmin(a.x1, b.x1) - fmax(a.x0, b.x0), h = fmin(a.y1, b.y1) - fmax(a.y0, b.y0);
    return (w > 0 && h > 0) ? w * h : 0.0;
}

/* Things annotations should not cover, as boxes with a weight per pixel of
 * overlap: markers and highlight rings, and samples along every line. */
typedef struct obstacles {
    int n, cap;
    frect *box;
    double *weight;
} obstacles;

static void obst_add(obstacles *o, double x, double y, double r, double weight)
{
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 256;
        frect *b = realloc(o->box, (size_t)cap * sizeof *b);
        if (!b) return; /* placement gets worse, nothing breaks */
        o->box = b;
        double *w = realloc(o->weight, (size_t)cap * sizeof *w);
        if (!w) return;
        o->weight = w;
        o->cap = cap;
    }
    o->box[o->n] = (frect){x - r, y - r, x + r, y + r};
    o->weight[o->n] = weight;
    o->n++;
}

static void collect_obstacles(const tml_plot *p, const layout *L, obstacles *o)
{
    frect area = {L->L, L->T, L->R + 1, L->B + 1};
    for (int s = 0; s < p->ns; s++) {
        const series *se = &p->s[s];
        pt *v = malloc(((size_t)se->n + 1) * sizeof *v);
        if (!v) continue;
        int m = 0;
        for (int i = 0; i < se->n; i++) {
            double x, y;
            int ok = map_point(L, se->x[i], se->y[i], &x, &y);
            if (ok) {
                obst_add(o, x, y, (se->highlight ? RING_R : MARKER_R) + 1.5, 3.0);
                v[m++] = (pt){x, y};
            } else if (!se->highlight) {
                v[m++] = (pt){NAN, NAN}; /* a gap */
            }
        }
        if (se->highlight) qsort(v, (size_t)m, sizeof *v, cmp_pt_x);
        for (int i = 1; se->line && i < m; i++) {
            double ax = v[i - 1].x, ay = v[i - 1].y, bx = v[i].x, by = v[i].y;
            if (isnan(ax) || isnan(bx) || !clip_segment(area, &ax, &ay, &bx, &by)) continue;
            int steps = (int)ceil(hypot(bx - ax, by - ay) / 4.0);
            for (int k = 0; k <= steps; k++) {
                double f = steps ? (double)k / steps : 0.0;
                obst_add(o, ax + f * (bx - ax), ay + f * (by - ay), 2.0, 2.0);
            }
        }
        free(v);
    }
}

/* Annotations: each label goes to the candidate position (around its point)
 * that overlaps least with labels placed before it, the legend, data (points,
 * rings, lines) and the outside of the plot area. */
static void draw_annotations(canvas *c, const tml_plot *p, const layout *L, irect inner)
{
    if (p->na == 0) return;
    frect *placed = malloc((size_t)p->na * sizeof *placed);
    if (!placed) return;
    obstacles ob = {0, 0, NULL, NULL};
    collect_obstacles(p, L, &ob);
    frect area = {L->L + 2, L->T + 2, L->R - 1, L->B - 1};
    frect leg = {L->leg_x - 2, L->leg_y - 2, L->leg_x + L->leg_w + 2, L->leg_y + L->leg_h + 2};
    int nplaced = 0;
    for (int i = 0; i < p->na; i++) {
        double ax, ay;
        if (!map_point(L, p->a[i].x, p->a[i].y, &ax, &ay)) continue;
        if (ax < L->L || ax > L->R + 1 || ay < L->T || ay > L->B + 1) continue;
        char text[ANNOT_CHARS + 1];
        fit_text(text, sizeof text, p->a[i].text, ANNOT_CHARS, L->R - L->L - 20);
        double w = tml_plot_text_width(text), h = 11.0; /* ink: cap top .. descender */
        /* right, upper right, lower right, left, upper left, lower left, above, below;
         * then the same farther out (clear of a highlight ring) */
        double cand[16][2];
        for (int far = 0; far < 2; far++) {
            double d = far ? RING_R + 3.0 : 0.0;
            double (*cd)[2] = cand + 8 * far;
            cd[0][0] = ax + 8 + d, cd[0][1] = ay - 5.5;
            cd[1][0] = ax + 5 + d * 0.7, cd[1][1] = ay - 5 - h - d * 0.7;
            cd[2][0] = ax + 5 + d * 0.7, cd[2][1] = ay + 5 + d * 0.7;
            cd[3][0] = ax - 8 - w - d, cd[3][1] = ay - 5.5;
            cd[4][0] = ax - 5 - w - d * 0.7, cd[4][1] = ay - 5 - h - d * 0.7;
            cd[5][0] = ax - 5 - w - d * 0.7, cd[5][1] = ay + 5 + d * 0.7;
            cd[6][0] = ax - w / 2, cd[6][1] = ay - 9 - h - d;
            cd[7][0] = ax - w / 2, cd[7][1] = ay + 9 + d;
        }
        int best = 0;
        double best_score = INFINITY;
        for (int k = 0; k < 16; k++) {
            frect r = {cand[k][0], cand[k][1], cand[k][0] + w, cand[k][1] + h};
            double sc = (k % 8) * 0.5 + (k >= 8) * 8.0; /* prefer near, then right */
            sc += (w * h - overlap(r, area)) * 50.0;
            sc += overlap(r, leg) * 20.0;
            for (int j = 0; j < nplaced; j++) {
                frect o = placed[j];
                o.x0 -= 3, o.y0 -= 2, o.x1 += 3, o.y1 += 2;
                sc += overlap(r, o) * 10.0;
            }
            /* includes the label's own point and ring: near candidates overlap a
             * ring, so labels of highlighted points move out past it */
            for (int j = 0; j < ob.n; j++) sc += overlap(r, ob.box[j]) * ob.weight[j];
            if (sc < best_score) {
                best_score = sc;
                best = k;
            }
        }
        frect r = {cand[best][0], cand[best][1], cand[best][0] + w, cand[best][1] + h};
        placed[nplaced++] = r;
        draw_text_halo(c, inner, (int)lround(r.x0), (int)lround(r.y0) - TML_FONT_CAP_TOP, text, COL_ANNOT);
    }
    free(placed);
    free(ob.box);
    free(ob.weight);
}

static void draw_legend(canvas *c, const tml_plot *p, const layout *L, irect full)
{
    if (L->leg_w == 0) return;
    int x0 = L->leg_x, y0 = L->leg_y, x1 = x0 + L->leg_w, y1 = y0 + L->leg_h;
    fill_rect(c, x0, y0, x1, y1, COL_WHITE);
    for (int x = x0; x < x1; x++) {
        blend(c, x, y0, COL_LEG_BORDER, 1.0);
        blend(c, x, y1 - 1, COL_LEG_BORDER, 1.0);
    }
    for (int y = y0; y < y1; y++) {
        blend(c, x0, y, COL_LEG_BORDER, 1.0);
        blend(c, x1 - 1, y, COL_LEG_BORDER, 1.0);
    }
    irect box = {x0 + 1, y0 + 1, x1 - 1, y1 - 1};
    for (int e = 0; e < L->leg_n; e++) {
        const series *se = &p->s[L->leg_idx[e]];
        double cy = y0 + 6 + e * LEG_ROW + LEG_ROW / 2.0;
        double sx0 = x0 + 8, sx1 = x0 + 8 + LEG_SWATCH;
        irect bb = empty_bb();
        if (se->highlight) {
            dasher d = {0.0};
            mask_dashed(c, box, &bb, &d, sx0, cy, sx1, cy);
        } else if (se->line) {
            mask_segment(c, box, &bb, sx0 + 1, cy, sx1 - 1, cy, LINE_HW);
        }
        if (bb.x0 < bb.x1) mask_commit(c, bb, se->color);
        if (se->highlight) draw_ring(c, box, 0.5 * (sx0 + sx1), cy, RING_R - 2.5, 0.9, se->color);
        else draw_marker(c, box, 0.5 * (sx0 + sx1), cy, se->marker, MARKER_R, se->color, 1);
        int cap_mid = (TML_FONT_CAP_TOP + TML_FONT_BASE) / 2;
        draw_text(c, full, (int)sx1 + 8, (int)floor(cy) - cap_mid, L->leg_text[e], COL_TEXT, 1, 0, 0);
    }
    if (L->leg_more > 0) {
        char more[32];
        snprintf(more, sizeof more, "+%d more", L->leg_more);
        double cy = y0 + 6 + L->leg_n * LEG_ROW + LEG_ROW / 2.0;
        draw_text(c, full, x0 + 8, (int)floor(cy) - 6, more, COL_TICKTEXT, 1, 0, 0);
    }
}

static void draw_titles(canvas *c, const tml_plot *p, const layout *L, irect full)
{
    if (p->title) {
        int s = L->title_scale;
        int w = tml_plot_text_width(L->title) * s + (s == 1 ? (int)strlen(L->title) : 0);
        int x = (p->w - w) / 2;
        /* centre on the plot area when that keeps the title inside the image */
        int xc = (L->L + L->R) / 2 - w / 2;
        if (xc >= PAD && xc + w <= p->w - PAD) x = xc;
        draw_text(c, full, x, PAD - TML_FONT_CAP_TOP * s, L->title, COL_TITLE, s, s == 1, 0);
    }
    if (p->label[0]) {
        char t[512];
        fit_text(t, sizeof t, p->label[0], 1 << 20, L->R - L->L);
        int w = tml_plot_text_width(t);
        int y = L->B + TICK_LEN + 4 + 11 + 8 - TML_FONT_CAP_TOP;
        draw_text(c, full, (L->L + L->R) / 2 - w / 2, y, t, COL_TEXT, 1, 0, 0);
    }
    if (p->label[1]) {
        char t[512];
        fit_text(t, sizeof t, p->label[1], 1 << 20, L->B - L->T);
        int w = tml_plot_text_width(t);
        /* reads upwards; the cell's top row (blank) is at x = PAD - 1 */
        draw_text(c, full, PAD - 1, (L->T + L->B) / 2 + w / 2, t, COL_TEXT, 1, 0, 1);
    }
}

/* Renders into a malloc'd (h, w, 3) RGB buffer. */
static tml_status render(const tml_plot *p, uint8_t **out)
{
    layout *L = malloc(sizeof *L);
    canvas c = {p->w, p->h, NULL, NULL};
    size_t npx = (size_t)p->w * (size_t)p->h;
    c.px = malloc(npx * 3);
    c.mask = calloc(npx, sizeof *c.mask);
    if (!L || !c.px || !c.mask) {
        free(L);
        free(c.px);
        free(c.mask);
        return tml_error(TML_ERR_NOMEM, "plot: out of memory for a %dx%d image", p->w, p->h);
    }
    memset(c.px, 255, npx * 3);
    compute_layout(p, L);
    irect full = {0, 0, p->w, p->h};
    irect inner = {L->L + 1, L->T + 1, L->R, L->B};

    draw_grid_and_axes(&c, L, inner, full);
    draw_series_lines(&c, p, L, inner, 0);
    draw_series_markers(&c, p, L, inner, 0);
    draw_series_lines(&c, p, L, inner, 1);
    draw_series_markers(&c, p, L, inner, 1);
    draw_frame_and_ticks(&c, L, full);
    draw_annotations(&c, p, L, inner);
    draw_legend(&c, p, L, full);
    draw_titles(&c, p, L, full);

    free(c.mask);
    free(L);
    *out = c.px;
    return TML_OK;
}

int tml_plot_to_pixel(const tml_plot *p, double x, double y, double *px, double *py)
{
    if (!p) return 0;
    layout *L = malloc(sizeof *L);
    if (!L) return 0;
    compute_layout(p, L);
    double X, Y;
    int ok = map_point(L, x, y, &X, &Y);
    if (ok) *px = X, *py = Y;
    free(L);
    return ok;
}

void tml_plot_area(const tml_plot *p, int *left, int *top, int *right, int *bottom)
{
    layout *L = p ? malloc(sizeof *L) : NULL;
    if (!L) {
        *left = *top = *right = *bottom = 0;
        return;
    }
    compute_layout(p, L);
    *left = L->L, *top = L->T, *right = L->R, *bottom = L->B;
    free(L);
}

/* ---- PNG ------------------------------------------------------------------------------------ */

typedef struct png_ctx {
    uint8_t *data;
    size_t len, cap;
    int oom;
    char msg[200];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png; /* the library never prints */
    (void)msg;
}

static void png_on_write(png_structp png, png_bytep data, png_size_t n)
{
    png_ctx *ctx = png_get_io_ptr(png);
    if (n > ctx->cap - ctx->len) {
        size_t cap = ctx->cap ? ctx->cap : 65536;
        while (cap - ctx->len < n) {
            if (cap > SIZE_MAX / 2) {
                cap = 0;
                break;
            }
            cap *= 2;
        }
        uint8_t *d = cap ? realloc(ctx->data, cap) : NULL;
        if (!d) {
            ctx->oom = 1;
            png_error(png, "out of memory");
        }
        ctx->data = d;
        ctx->cap = cap;
    }
    memcpy(ctx->data + ctx->len, data, n);
    ctx->len += n;
}

static void png_on_flush(png_structp png) { (void)png; }

/* Encodes the (h, w, 3) image; errors from libpng come back through longjmp. */
static tml_status encode_rgb(const tml_plot *p, const uint8_t *rgb, uint8_t **buf, size_t *len)
{
    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!png) return tml_error(TML_ERR_NOMEM, "plot: cannot create the PNG writer");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return tml_error(TML_ERR_NOMEM, "plot: cannot create the PNG writer");
    }
    char key_sw[] = "Software", val_sw[] = "tinyml " TML_VERSION_STRING, key_title[] = "Title";
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(ctx.data);
        return tml_error(ctx.oom ? TML_ERR_NOMEM : TML_ERR_IO, "plot: PNG encoding failed: %s", ctx.msg);
    }
    png_set_write_fn(png, &ctx, png_on_write, png_on_flush);
    png_set_IHDR(png, info, (png_uint_32)p->w, (png_uint_32)p->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text[2];
    memset(text, 0, sizeof text);
    text[0].compression = PNG_TEXT_COMPRESSION_NONE;
    text[0].key = key_sw;
    text[0].text = val_sw;
    int ntext = 1;
    if (p->title) {
        text[1].compression = PNG_TEXT_COMPRESSION_NONE;
        text[1].key = key_title;
        text[1].text = p->title;
        ntext = 2;
    }
    png_set_text(png, info, text, ntext);
    png_write_info(png, info);
    for (int y = 0; y < p->h; y++) png_write_row(png, rgb + (size_t)y * (size_t)p->w * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *buf = ctx.data;
    *len = ctx.len;
    return TML_OK;
}

tml_status tml_plot_encode_png(const tml_plot *p, uint8_t **buf, size_t *len)
{
    if (!p || !buf || !len) return tml_error(TML_ERR_INVALID, "tml_plot_encode_png: no plot or output");
    *buf = NULL;
    *len = 0;
    if (p->oom) return tml_error(TML_ERR_NOMEM, "plot: out of memory while setting a text");
    uint8_t *rgb = NULL;
    tml_status st = render(p, &rgb);
    if (st != TML_OK) return st;
    st = encode_rgb(p, rgb, buf, len);
    free(rgb);
    return st;
}

tml_status tml_plot_write_png(const tml_plot *p, const char *path)
{
    if (!p || !path || !*path) return tml_error(TML_ERR_INVALID, "tml_plot_write_png: no plot or path");
    uint8_t *png;
    size_t len;
    tml_status st = tml_plot_encode_png(p, &png, &len);
    if (st != TML_OK) return st;
    st = tml_write_file_atomic(path, png, len);
    free(png);
    return st;
}
