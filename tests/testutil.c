/*
 * testutil.c - see testutil.h.
 */
#include "testutil.h"

#include <png.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

void tu_rng_seed(tu_rng *r, uint64_t seed) { r->s = seed ? seed * 0x9E3779B97F4A7C15ull : 0x853c49e6748fea9bull; }

uint32_t tu_rng_u32(tu_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

float tu_rng_uniform(tu_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)(tu_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = tu_rng_uniform(r, lo, hi);
}

void tu_fill_int8(tu_rng *r, int8_t *x, size_t n, int lo, int hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (int8_t)(lo + (int)(tu_rng_u32(r) % (uint32_t)(hi - lo + 1)));
}

int tu_close_f32(const char *what, const float *a, const float *b, size_t n, float tol)
{
    size_t bad = 0, worst = 0;
    double maxd = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= tol)) { /* also catches NaN */
            if (bad < 8) fprintf(stderr, "  %s: mismatch at %zu: %.9g vs %.9g (diff %.3g)\n", what, i, a[i], b[i], d);
            bad++;
        }
        if (d > maxd || d != d) {
            maxd = d;
            worst = i;
        }
    }
    if (bad)
        fprintf(stderr, "  %s: %zu of %zu elements differ by more than %g; max diff %.3g at %zu\n", what, bad, n, tol, maxd, worst);
    return bad == 0;
}

int tu_equal_i8(const char *what, const int8_t *a, const int8_t *b, size_t n)
{
    size_t bad = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            if (bad < 8) fprintf(stderr, "  %s: mismatch at %zu: %d vs %d\n", what, i, a[i], b[i]);
            bad++;
            if (abs(a[i] - b[i]) > maxd) maxd = abs(a[i] - b[i]);
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu elements differ; max diff %d\n", what, bad, n, maxd);
    return bad == 0;
}

int tu_equal_i32(const char *what, const int32_t *a, const int32_t *b, size_t n)
{
    size_t bad = 0;
    long long maxd = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            if (bad < 8) fprintf(stderr, "  %s: mismatch at %zu: %d vs %d\n", what, i, a[i], b[i]);
            bad++;
            long long d = llabs((long long)a[i] - b[i]);
            if (d > maxd) maxd = d;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu elements differ; max diff %lld\n", what, bad, n, maxd);
    return bad == 0;
}

static void mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

const char *tu_tmpdir(const char *test_name)
{
    static char dir[4096];
    const char *base = getenv("TML_TEST_TMPDIR");
    char cmd[4300];
    snprintf(dir, sizeof dir, "%s/%s", base && *base ? base : "/tmp/tinyml-test", test_name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not clean %s\n", dir);
    mkdir_p(dir);
    return dir;
}

const char *tu_path(const char *dir, const char *file)
{
    static char bufs[8][4096];
    static int slot;
    char *b = bufs[slot++ & 7];
    snprintf(b, 4096, "%s/%s", dir, file);
    return b;
}

int tu_write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(buf, 1, len, f);
    int rc = fclose(f);
    return (w == len && rc == 0) ? 0 : -1;
}

int tu_write_png(const char *path, int w, int h, int channels, const uint8_t *px)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    if (png_image_write_to_file(&img, path, 0, px, 0, NULL)) return 0;
    fprintf(stderr, "  png write %s: %s\n", path, img.message);
    return -1;
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        uint8_t *nb = realloc(b, cap * 2);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    fclose(f);
    if (b) *len = n;
    return b;
}

int tu_run(const char *cmd, char *out, size_t cap)
{
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = 0;
    char tmp[4096];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, p)) > 0) {
        if (out && n + 1 < cap) {
            size_t k = r < cap - 1 - n ? r : cap - 1 - n;
            memcpy(out + n, tmp, k);
            n += k;
        }
    }
    if (out && cap) out[n] = '\0';
    int st = pclose(p);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}
