/*
 * test_plot.c - the PNG chart renderer: charts are written, read back with
 * libpng and checked pixel by pixel (size, background, series colours inside
 * the plot area, title ink, coordinate mapping), plus error paths, ticks and
 * the font table.
 *
 * Set TML_PLOT_EXAMPLES=DIR to also write the three example charts
 * (sensitivity.png, report.png, sweep.png) into DIR for a human to look at.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "report/plot_internal.h"
#include "testutil.h"
#include "tinyml/tml_plot.h"

#define W 900
#define H 560

/* ---- reading PNGs back ---------------------------------------------------------- */

typedef struct image {
    int w, h;
    uint8_t *px; /* (h, w, 3) */
} image;

static int read_png(const char *path, image *im)
{
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path)) {
        fprintf(stderr, "  cannot read %s: %s\n", path, pi.message);
        return 0;
    }
    pi.format = PNG_FORMAT_RGB;
    im->w = (int)pi.width;
    im->h = (int)pi.height;
    im->px = malloc(PNG_IMAGE_SIZE(pi));
    if (!im->px || !png_image_finish_read(&pi, NULL, im->px, 0, NULL)) {
        fprintf(stderr, "  cannot decode %s: %s\n", path, pi.message);
        free(im->px);
        png_image_free(&pi);
        return 0;
    }
    return 1;
}

static uint32_t pixel(const image *im, int x, int y)
{
    const uint8_t *q = im->px + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
    return (uint32_t)q[0] << 16 | (uint32_t)q[1] << 8 | q[2];
}

/* Pixels of exactly colour `col` inside [x0, x1) x [y0, y1). */
static int count_color(const image *im, int x0, int y0, int x1, int y1, uint32_t col)
{
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) n += pixel(im, x, y) == col;
    return n;
}

/* Pixels darker than `level` in every channel. */
static int count_dark(const image *im, int x0, int y0, int x1, int y1, int level)
{
    int n = 0;
    for (int y = y0; y < y1; y++) {
        for (int x = x0; x < x1; x++) {
            const uint8_t *q = im->px + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
            n += q[0] < level && q[1] < level && q[2] < level;
        }
    }
    return n;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Writes the chart into the test directory (and into $TML_PLOT_EXAMPLES when
 * set), reads it back and runs the checks every chart must pass. */
static void write_and_check(const tml_plot *p, const char *dir, const char *file, image *im)
{
    const char *path = tu_path(dir, file);
    tml_status st = tml_plot_write_png(p, path);
    if (st != TML_OK) fprintf(stderr, "  %s: %s\n", file, tml_last_error());
    assert_int_equal(st, TML_OK);
    const char *ex = getenv("TML_PLOT_EXAMPLES");
    if (ex && *ex) {
        mkdir(ex, 0755);
        assert_int_equal(tml_plot_write_png(p, tu_path(ex, file)), TML_OK);
    }
    assert_true(read_png(path, im));
    assert_int_equal(im->w, W);
    assert_int_equal(im->h, H);
    /* white background at the corners */
    assert_int_equal(pixel(im, 0, 0), 0xffffff);
    assert_int_equal(pixel(im, W - 1, 0), 0xffffff);
    assert_int_equal(pixel(im, 0, H - 1), 0xffffff);
    assert_int_equal(pixel(im, W - 1, H - 1), 0xffffff);
    /* the frame is drawn where tml_plot_area says */
    int l, t, r, b;
    tml_plot_area(p, &l, &t, &r, &b);
    assert_true(l > 0 && t > 0 && r < W - 1 && b < H - 1 && l + 100 < r && t + 100 < b);
    uint32_t f = pixel(im, (l + r) / 2, t);
    assert_true(f != 0xffffff);
    assert_int_equal(pixel(im, l, (t + b) / 2), f);
    /* no leftover temporary files next to the chart */
    char tmpname[256];
    snprintf(tmpname, sizeof tmpname, ".%s.", file);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q -F '%s'", dir, tmpname);
    assert_int_not_equal(system(cmd), 0);
}

static void check_series_colors(const tml_plot *p, const image *im, int nseries, int min_pixels)
{
    int l, t, r, b;
    tml_plot_area(p, &l, &t, &r, &b);
    for (int s = 0; s < nseries; s++) {
        uint32_t col = tml_plot_series_color(p, s);
        int n = count_color(im, l + 1, t + 1, r, b, col);
        if (n < min_pixels) fprintf(stderr, "  series %d (#%06x): only %d pixels in the plot area\n", s, col, n);
        assert_true(n >= min_pixels);
    }
}

static void check_title_ink(const tml_plot *p, const image *im)
{
    int l, t, r, b;
    tml_plot_area(p, &l, &t, &r, &b);
    int n = count_dark(im, 0, 0, W, t - 2, 96);
    assert_true(n > 200);
}

/* ---- the three typical charts ----------------------------------------------------- */

/* (1) per-layer pruning sensitivity of a small CNN: 10 layers, 12 sparsities */
static tml_plot *sensitivity_chart(void)
{
    static const char *layers[10] = {"conv1 (150)", "conv2 (2.4k)", "conv3 (9.2k)", "conv4 (18k)",
                                     "fc1 (48k)",   "fc2 (10k)",    "fc3 (840)",    "dw1 (288)",
                                     "pw1 (4.1k)",  "classifier (1.3k)"};
    static const double sens[10] = {9.0, 3.0, 1.6, 1.2, 0.6, 0.9, 5.0, 12.0, 2.2, 4.0};
    double sp[12], acc[12];
    for (int i = 0; i < 11; i++) sp[i] = 0.1 * i;
    sp[10] = 0.95;
    sp[11] = 0.98;
    tml_plot *p = tml_plot_new(W, H);
    assert_non_null(p);
    tml_plot_title(p, "Pruning sensitivity of lenet5 (fashion-mnist:test, 1000 samples)");
    tml_plot_labels(p, "sparsity (fraction of weights removed)", "top-1 accuracy (%)");
    for (int l = 0; l < 10; l++) {
        for (int i = 0; i < 11; i++) {
            double s = sp[i];
            double drop = sens[l] * pow(s, 6.0) * 10.0 + 0.3 * sin(3.0 * l + 7.0 * s);
            acc[i] = fmax(10.0, 90.4 - drop);
        }
        assert_int_equal(tml_plot_series(p, layers[l], 11, sp, acc, 1), TML_OK);
    }
    return p;
}

/* (2) report: accuracy vs file size of compressed models on a log size axis,
 * a label per model and the Pareto front */
static tml_plot *report_chart(void)
{
    static const char *names[] = {"base f32", "int8", "prune 50%", "prune 80%", "prune 90%", "p90+c5",
                                  "p90+c5+int8", "p95+c4+int8", "p80+int8", "c4"};
    static const double size[] = {246e3, 64e3, 130e3, 52e3, 28e3, 14.5e3, 11.2e3, 9.6e3, 19e3, 33e3};
    static const double top1[] = {90.6, 90.4, 90.5, 89.9, 89.1, 88.6, 88.3, 84.9, 89.7, 87.8};
    tml_plot *p = tml_plot_new(W, H);
    assert_non_null(p);
    tml_plot_title(p, "lenet5 on fashion-mnist:test (10000 samples): accuracy vs size");
    tml_plot_labels(p, "model file size (bytes)", "top-1 accuracy (%)");
    tml_plot_xlog(p, 1);
    double fx[2] = {size[0], 0}, fy[2] = {top1[0], 0};
    assert_int_equal(tml_plot_series(p, "float32", 1, fx, fy, 0), TML_OK);
    double qx[3] = {size[1], size[6], size[7]}, qy[3] = {top1[1], top1[6], top1[7]};
    assert_int_equal(tml_plot_series(p, "int8", 3, qx, qy, 0), TML_OK);
    double px[6] = {size[2], size[3], size[4], size[5], size[8], size[9]};
    double py[6] = {top1[2], top1[3], top1[4], top1[5], top1[8], top1[9]};
    assert_int_equal(tml_plot_series(p, "pruned / clustered f32", 6, px, py, 0), TML_OK);
    for (int i = 0; i < 10; i++) assert_int_equal(tml_plot_annotate(p, size[i], top1[i], names[i]), TML_OK);
    /* Pareto front: no other model is both smaller and more accurate */
    double frx[10], fry[10];
    int nf = 0;
    for (int i = 0; i < 10; i++) {
        int dominated = 0;
        for (int j = 0; j < 10; j++)
            if (j != i && size[j] <= size[i] && top1[j] >= top1[i] && (size[j] < size[i] || top1[j] > top1[i]))
                dominated = 1;
        if (!dominated) {
            frx[nf] = size[i];
            fry[nf] = top1[i];
            nf++;
        }
    }
    assert_true(nf >= 3);
    assert_int_equal(tml_plot_highlight(p, "Pareto front", nf, frx, fry), TML_OK);
    return p;
}

/* (3) sweep: accuracy vs size for several compression recipes */
static tml_plot *sweep_chart(void)
{
    tml_plot *p = tml_plot_new(W, H);
    assert_non_null(p);
    tml_plot_title(p, "Compression sweep: lenet5, fashion-mnist:test");
    tml_plot_labels(p, "model size (bytes)", "top-1 accuracy (%)");
    tml_plot_xlog(p, 1);
    static const char *recipes[5] = {"prune (f32)", "prune + cluster 5 bit", "prune + int8",
                                     "prune + cluster 4 bit + int8", "cluster only"};
    static const double base[5] = {246e3, 120e3, 64e3, 40e3, 160e3};
    for (int r = 0; r < 5; r++) {
        double x[9], y[9];
        for (int i = 0; i < 9; i++) {
            double s = 0.1 * i + (i == 8 ? 0.15 : 0.0); /* sparsity 0 .. 0.95 */
            x[i] = base[r] * (1.0 - 0.85 * s) * (r == 4 ? 1.0 - 0.08 * i : 1.0);
            y[i] = 90.5 - 0.4 * r - 14.0 * pow(s, 5.0) - 0.2 * i * (r == 4);
        }
        assert_int_equal(tml_plot_series(p, recipes[r], 9, x, y, 1), TML_OK);
    }
    return p;
}

static void test_sensitivity_chart(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_sensitivity");
    tml_plot *p = sensitivity_chart();
    image im;
    write_and_check(p, dir, "sensitivity.png", &im);
    check_series_colors(p, &im, 10, 10);
    check_title_ink(p, &im);
    free(im.px);
    tml_plot_free(p);
}

static void test_report_chart(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_report");
    tml_plot *p = report_chart();
    image im;
    write_and_check(p, dir, "report.png", &im);
    check_series_colors(p, &im, 4, 10);
    check_title_ink(p, &im);
    /* x axis is logarithmic: 10k and 100k are one decade apart */
    double x1, y1, x2, y2, x3, y3;
    assert_true(tml_plot_to_pixel(p, 1e4, 90.0, &x1, &y1));
    assert_true(tml_plot_to_pixel(p, 1e5, 90.0, &x2, &y2));
    assert_true(tml_plot_to_pixel(p, 1e6 / 10 * sqrt(10.0), 90.0, &x3, &y3));
    assert_true(fabs((x2 - x1) - 2.0 * (x3 - x2)) < 1e-6);
    assert_false(tml_plot_to_pixel(p, 0.0, 90.0, &x1, &y1)); /* log axis: no zero */
    free(im.px);
    tml_plot_free(p);
}

static void test_sweep_chart(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_sweep");
    tml_plot *p = sweep_chart();
    image im;
    write_and_check(p, dir, "sweep.png", &im);
    check_series_colors(p, &im, 5, 30);
    check_title_ink(p, &im);
    free(im.px);
    tml_plot_free(p);
}

/* ---- mapping, gaps, degenerate ranges, errors ----------------------------------------- */

static void test_line_midpoint(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_midpoint");
    tml_plot *p = tml_plot_new(W, H);
    assert_non_null(p);
    tml_plot_title(p, "one line");
    tml_plot_labels(p, "x", "y");
    double x[2] = {-3.0, 17.0}, y[2] = {2.0, 1002.0};
    assert_int_equal(tml_plot_series(p, "diagonal", 2, x, y, 1), TML_OK);
    image im;
    write_and_check(p, dir, "line.png", &im);
    uint32_t col = tml_plot_series_color(p, 0);
    /* the midpoint and the quarter points of the segment lie on the line */
    for (int k = 1; k <= 3; k++) {
        double f = 0.25 * k, px, py;
        assert_true(tml_plot_to_pixel(p, x[0] + f * (x[1] - x[0]), y[0] + f * (y[1] - y[0]), &px, &py));
        uint32_t got = pixel(&im, (int)floor(px), (int)floor(py));
        if (got != col) fprintf(stderr, "  f=%.2f at (%.2f, %.2f): #%06x, want #%06x\n", f, px, py, got, col);
        assert_int_equal(got, col);
    }
    /* the ends are inside the frame, lower-left and upper-right */
    int l, t, r, b;
    tml_plot_area(p, &l, &t, &r, &b);
    double ax, ay, bx, by;
    assert_true(tml_plot_to_pixel(p, x[0], y[0], &ax, &ay));
    assert_true(tml_plot_to_pixel(p, x[1], y[1], &bx, &by));
    assert_true(ax > l && ax < l + 0.1 * (r - l) && ay < b && ay > b - 0.1 * (b - t));
    assert_true(bx < r && bx > r - 0.1 * (r - l) && by > t && by < t + 0.1 * (b - t));
    /* far away from the line: paper (or grid) */
    uint32_t off = pixel(&im, (int)floor(ax), (int)floor(by) + 40);
    assert_true(off == 0xffffff || (off & 0xff) > 0xd0);
    free(im.px);
    tml_plot_free(p);
}

static void test_nan_points(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_nan");
    tml_plot *p = tml_plot_new(W, H);
    assert_non_null(p);
    double x[7] = {0, 1, 2, NAN, 4, 5, INFINITY}, y[7] = {1, 3, NAN, 2, 4, -INFINITY, 7};
    assert_int_equal(tml_plot_series(p, "gappy", 7, x, y, 1), TML_OK);
    double ax[3] = {NAN, NAN, NAN}, ay[3] = {1, 2, 3};
    assert_int_equal(tml_plot_series(p, "all bad", 3, ax, ay, 1), TML_OK);
    assert_int_equal(tml_plot_annotate(p, NAN, 1.0, "lost"), TML_OK);
    assert_int_equal(tml_plot_highlight(p, "front", 3, ax, ay), TML_OK);
    image im;
    write_and_check(p, dir, "nan.png", &im);
    check_series_colors(p, &im, 1, 10);
    double px, py;
    assert_false(tml_plot_to_pixel(p, NAN, 1.0, &px, &py));
    /* the range follows the finite points only: (0,1) and (5,?)... x in 0..4 */
    int l, t, r, b;
    tml_plot_area(p, &l, &t, &r, &b);
    assert_true(tml_plot_to_pixel(p, 0.0, 1.0, &px, &py));
    assert_true(px > l && px < l + 0.1 * (r - l) && py < b && py > b - 0.1 * (b - t));
    assert_true(tml_plot_to_pixel(p, 4.0, 4.0, &px, &py));
    assert_true(px < r && px > r - 0.1 * (r - l) && py > t && py < t + 0.1 * (b - t));
    free(im.px);
    tml_plot_free(p);
}

static void test_degenerate_ranges(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_degenerate");
    image im;
    /* all y equal */
    tml_plot *p = tml_plot_new(W, H);
    double x[4] = {0, 1, 2, 3}, y[4] = {87.5, 87.5, 87.5, 87.5};
    assert_int_equal(tml_plot_series(p, "flat", 4, x, y, 1), TML_OK);
    write_and_check(p, dir, "flat.png", &im);
    check_series_colors(p, &im, 1, 50);
    double px, py;
    int l, t, r, b;
    tml_plot_area(p, &l, &t, &r, &b);
    assert_true(tml_plot_to_pixel(p, 1.5, 87.5, &px, &py));
    assert_true(fabs(py - 0.5 * (t + b + 1)) < 1.0); /* centred vertically */
    free(im.px);
    tml_plot_free(p);
    /* a single point, on log axes */
    p = tml_plot_new(W, H);
    tml_plot_xlog(p, 1);
    tml_plot_ylog(p, 1);
    double sx = 5e4, sy = 3.0;
    assert_int_equal(tml_plot_series(p, "one", 1, &sx, &sy, 1), TML_OK);
    write_and_check(p, dir, "one.png", &im);
    check_series_colors(p, &im, 1, 10);
    free(im.px);
    tml_plot_free(p);
    /* nothing at all, and zero on both axes */
    p = tml_plot_new(W, H);
    tml_plot_title(p, "empty");
    write_and_check(p, dir, "empty.png", &im);
    free(im.px);
    tml_plot_free(p);
    p = tml_plot_new(W, H);
    double z = 0.0;
    assert_int_equal(tml_plot_series(p, "zero", 1, &z, &z, 0), TML_OK);
    write_and_check(p, dir, "zero.png", &im);
    check_series_colors(p, &im, 1, 10);
    free(im.px);
    tml_plot_free(p);
}

static int l0(const tml_plot *p)
{
    int l, t, r, b;
    tml_plot_area(p, &l, &t, &r, &b);
    return l;
}

static void test_fixed_range_and_clipping(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_fixed");
    tml_plot *p = tml_plot_new(W, H);
    tml_plot_xrange(p, 0.0, 1.0);
    tml_plot_yrange(p, 0.0, 100.0);
    /* points far outside the range: the line is clipped to the plot area */
    double x[3] = {-1e12, 0.5, 1e12}, y[3] = {-1e12, 50.0, 1e300};
    assert_int_equal(tml_plot_series(p, "wild", 3, x, y, 1), TML_OK);
    double hx[3] = {-1e12, 0.25, 1e12}, hy[3] = {1e12, 20.0, -1e12};
    assert_int_equal(tml_plot_highlight(p, "far front", 3, hx, hy), TML_OK);
    assert_int_equal(tml_plot_annotate(p, 1e12, 1e300, "far away"), TML_OK);
    assert_int_equal(tml_plot_annotate(p, 0.25, 20.0, "near"), TML_OK);
    image im;
    write_and_check(p, dir, "fixed.png", &im);
    assert_true(count_color(&im, l0(p), 0, W, H, tml_plot_series_color(p, 1)) > 20); /* dashes */
    int l, t, r, b;
    tml_plot_area(p, &l, &t, &r, &b);
    uint32_t col = tml_plot_series_color(p, 0);
    assert_true(count_color(&im, l + 1, t + 1, r, b, col) > 50);
    assert_int_equal(count_color(&im, 0, 0, W, t, col), 0); /* nothing above the frame */
    assert_int_equal(count_color(&im, 0, b + 1, W, H, col), 0);
    double px, py;
    assert_false(tml_plot_to_pixel(p, 1e12, 1e300, &px, &py)); /* too far to draw: a gap */
    assert_true(tml_plot_to_pixel(p, 0.0, 0.0, &px, &py));
    assert_true(fabs(px - (l + 0.5)) < 1e-9 && fabs(py - (b + 0.5)) < 1e-9);
    assert_true(tml_plot_to_pixel(p, 1.0, 100.0, &px, &py));
    assert_true(fabs(px - (r + 0.5)) < 1e-9 && fabs(py - (t + 0.5)) < 1e-9);
    free(im.px);
    tml_plot_free(p);
}

static void test_many_series_and_long_names(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_many");
    tml_plot *p = tml_plot_new(W, H);
    tml_plot_title(p, "A title that is far too long to fit on one line of this chart, so it must be "
                      "shortened with an ellipsis instead of running off the edge of the image");
    tml_plot_labels(p, "x \xc3\xa9t\xc3\xa9 (UTF-8 shows as ?)", "y");
    double x[5] = {0, 1, 2, 3, 4}, y[5];
    char name[200];
    for (int s = 0; s < 16; s++) {
        for (int i = 0; i < 5; i++) y[i] = s + 0.1 * i * i;
        if (s == 3) snprintf(name, sizeof name, "%s", "a very long layer name: features.backbone.stage3.block2.conv_dw");
        else snprintf(name, sizeof name, "series %d", s);
        assert_int_equal(tml_plot_series(p, name, 5, x, y, s % 3 != 0), TML_OK);
    }
    /* colours of the first 16 series are all different */
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < i; j++) assert_int_not_equal(tml_plot_series_color(p, i), tml_plot_series_color(p, j));
    image im;
    write_and_check(p, dir, "many.png", &im);
    check_series_colors(p, &im, 16, 10);
    int l, t, r, b;
    tml_plot_area(p, &l, &t, &r, &b);
    assert_true(r - l > W / 2); /* the legend did not eat the plot */
    free(im.px);
    tml_plot_free(p);
}

static void test_unwritable_path(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_unwritable");
    tml_plot *p = tml_plot_new(320, 200);
    double x[2] = {0, 1}, y[2] = {0, 1};
    assert_int_equal(tml_plot_series(p, "a", 2, x, y, 1), TML_OK);
    const char *path = tu_path(dir, "no/such/dir/chart.png");
    tml_clear_error();
    assert_int_equal(tml_plot_write_png(p, path), TML_ERR_IO);
    assert_non_null(strstr(tml_last_error(), "chart.png"));
    assert_false(file_exists(path));
    assert_false(file_exists(tu_path(dir, "no")));
    /* a path naming a directory */
    assert_int_equal(tml_plot_write_png(p, tu_path(dir, "")), TML_ERR_IO);
    assert_int_equal(tml_plot_write_png(p, dir), TML_ERR_IO);
    /* the directory holds nothing, not even a temporary file */
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", dir);
    assert_int_equal(system(cmd), 0);
    tml_plot_free(p);
}

static void test_replace_existing(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("plot_replace");
    const char *path = tu_path(dir, "chart.png");
    assert_int_equal(tu_write_file(path, "old", 3), 0);
    tml_plot *p = tml_plot_new(300, 200);
    assert_int_equal(tml_plot_write_png(p, path), TML_OK);
    image im;
    assert_true(read_png(path, &im));
    assert_int_equal(im.w, 300);
    assert_int_equal(im.h, 200);
    free(im.px);
    /* the same description gives the same bytes */
    uint8_t *a, *b;
    size_t na, nb;
    assert_int_equal(tml_plot_encode_png(p, &a, &na), TML_OK);
    assert_int_equal(tml_plot_encode_png(p, &b, &nb), TML_OK);
    assert_true(na == nb && memcmp(a, b, na) == 0);
    free(a);
    free(b);
    tml_plot_free(p);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    assert_null(tml_plot_new(10, 10));
    assert_null(tml_plot_new(900, 100000));
    tml_plot *p = tml_plot_new(400, 300);
    double v[2] = {1, 2};
    assert_int_equal(tml_plot_series(p, "x", -1, v, v, 1), TML_ERR_INVALID);
    assert_int_equal(tml_plot_series(p, "x", 2, NULL, v, 1), TML_ERR_INVALID);
    assert_int_equal(tml_plot_series(NULL, "x", 2, v, v, 1), TML_ERR_INVALID);
    assert_int_equal(tml_plot_highlight(p, "x", 2, v, NULL), TML_ERR_INVALID);
    assert_int_equal(tml_plot_annotate(p, 1, 1, NULL), TML_ERR_INVALID);
    assert_int_equal(tml_plot_series(p, NULL, 0, NULL, NULL, 1), TML_OK); /* legend-less, empty */
    for (int i = 1; i < TML_PLOT_MAX_SERIES; i++) assert_int_equal(tml_plot_series(p, "s", 2, v, v, 1), TML_OK);
    assert_int_equal(tml_plot_series(p, "one too many", 2, v, v, 1), TML_ERR_INVALID);
    assert_int_equal(tml_plot_write_png(p, NULL), TML_ERR_INVALID);
    assert_int_equal(tml_plot_series_color(p, -1), 0);
    tml_plot_free(p);
    tml_plot_free(NULL);
}

/* ---- ticks and font -------------------------------------------------------------------- */

static int labels_of(const tml_plot_tick *t, int n, char *out, size_t cap)
{
    out[0] = '\0';
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!t[i].labeled) continue;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", k ? " " : "", t[i].label);
        k++;
    }
    return k;
}

static void test_ticks(void **state)
{
    (void)state;
    tml_plot_tick t[TML_PLOT_MAX_TICKS];
    char s[512];
    /* linear, 1-2-5 steps with shared decimals */
    int n = tml_plot_make_ticks(-0.0475, 0.9975, 0, 760, 1, t);
    labels_of(t, n, s, sizeof s);
    assert_string_equal(s, "0.0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9");
    n = tml_plot_make_ticks(85.0, 95.0, 0, 420, 0, t);
    labels_of(t, n, s, sizeof s);
    assert_string_equal(s, "86 88 90 92 94");
    n = tml_plot_make_ticks(0.0, 2.5e6, 0, 760, 1, t);
    labels_of(t, n, s, sizeof s);
    assert_string_equal(s, "0 0.5M 1.0M 1.5M 2.0M 2.5M");
    n = tml_plot_make_ticks(-1.0, 1.0, 0, 400, 0, t);
    labels_of(t, n, s, sizeof s);
    assert_string_equal(s, "-1.0 -0.5 0.0 0.5 1.0");
    /* log: 10 KB .. 2 MB labels decades with 2 and 5 */
    n = tml_plot_make_ticks(log10(9e3), log10(2.2e6), 1, 760, 1, t);
    labels_of(t, n, s, sizeof s);
    assert_string_equal(s, "10k 20k 50k 100k 200k 500k 1M 2M");
    int minor = 0;
    for (int i = 0; i < n; i++) minor += !t[i].labeled;
    assert_true(minor >= 10);
    /* many decades: decades only, thinned when crowded */
    n = tml_plot_make_ticks(0.0, 9.0, 1, 760, 1, t);
    labels_of(t, n, s, sizeof s);
    assert_string_equal(s, "1 10 100 1k 10k 100k 1M 10M 100M 1G");
    n = tml_plot_make_ticks(-30.0, 30.0, 1, 300, 1, t);
    assert_true(labels_of(t, n, s, sizeof s) >= 2);
    /* within one decade: more than one label */
    n = tml_plot_make_ticks(log10(25e3), log10(80e3), 1, 760, 1, t);
    assert_true(labels_of(t, n, s, sizeof s) >= 2);
    char b[32];
    tml_plot_fmt_si(b, sizeof b, 1e6);
    assert_string_equal(b, "1M");
    tml_plot_fmt_si(b, sizeof b, 25000);
    assert_string_equal(b, "25k");
    tml_plot_fmt_si(b, sizeof b, 0.5);
    assert_string_equal(b, "0.5");
    /* bad ranges give no ticks instead of looping */
    assert_int_equal(tml_plot_make_ticks(1.0, 1.0, 0, 500, 1, t), 0);
    assert_int_equal(tml_plot_make_ticks(0.0, NAN, 0, 500, 1, t), 0);
}

static void test_font(void **state)
{
    (void)state;
    assert_true(tml_font_check());
    /* every printable glyph but the space has ink; the space has none */
    for (int ch = TML_FONT_FIRST; ch <= TML_FONT_LAST; ch++) {
        int ink = 0;
        for (int r = 0; r < TML_FONT_H; r++)
            for (int c = 0; c < TML_FONT_W; c++) ink += tml_font_pixel(ch, c, r);
        if (ch == ' ') assert_int_equal(ink, 0);
        else assert_true(ink > 0);
        for (int c = 0; c < TML_FONT_W; c++) assert_int_equal(tml_font_pixel(ch, c, 0), 0);
    }
    /* capitals stand on the baseline; descenders go below it */
    assert_true(tml_font_pixel('H', 0, TML_FONT_BASE) && !tml_font_pixel('H', 0, TML_FONT_BASE + 1));
    assert_true(tml_font_pixel('H', 0, TML_FONT_CAP_TOP) && !tml_font_pixel('H', 0, TML_FONT_CAP_TOP - 1));
    int desc = 0;
    for (int c = 0; c < TML_FONT_W; c++) desc += tml_font_pixel('g', c, TML_FONT_BASE + 2);
    assert_true(desc > 0);
    assert_int_equal(tml_plot_text_width("abc"), 17);
    assert_int_equal(tml_plot_text_width(""), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sensitivity_chart),
        cmocka_unit_test(test_report_chart),
        cmocka_unit_test(test_sweep_chart),
        cmocka_unit_test(test_line_midpoint),
        cmocka_unit_test(test_nan_points),
        cmocka_unit_test(test_degenerate_ranges),
        cmocka_unit_test(test_fixed_range_and_clipping),
        cmocka_unit_test(test_many_series_and_long_names),
        cmocka_unit_test(test_unwritable_path),
        cmocka_unit_test(test_replace_existing),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_ticks),
        cmocka_unit_test(test_font),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
