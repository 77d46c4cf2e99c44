/*
 * testutil.c - see testutil.h.
 */
#include "testutil.h"

#include <png.h>

#include "tinyml/tml_cluster.h"
#include "tinyml/tml_dataset.h"
#include "tinyml/tml_prune.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_zoo.h"

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

/* ---- models and data ---------------------------------------------------------------------- */

const char *tu_gen_cflags(void)
{
    return "-std=c99 -pedantic -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla "
           "-Wconversion -Wsign-conversion -Wcast-qual -Wundef -O1"
#if TU_ASAN
           " -fsanitize=address,undefined -fno-sanitize-recover=all"
#endif
        ;
}

static const char gen_main[] =
    "#include <stdio.h>\n"
    "#include \"%s.h\"\n"
    "\n"
    "/* in.bin -> out.bin: one %srun per sample */\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    static int8_t in[%sINPUT_SIZE], out[%sOUTPUT_SIZE];\n"
    "    FILE *fi, *fo;\n"
    "    if (argc < 3) return 2;\n"
    "    fi = fopen(argv[1], \"rb\");\n"
    "    fo = fopen(argv[2], \"wb\");\n"
    "    if (!fi || !fo) return 2;\n"
    "    while (fread(in, 1, sizeof in, fi) == sizeof in) {\n"
    "        if (%srun(in, out) != 0) return 3;\n"
    "        if (fwrite(out, 1, sizeof out, fo) != sizeof out) return 4;\n"
    "    }\n"
    "    fclose(fi);\n"
    "    return fclose(fo) == 0 ? 0 : 5;\n"
    "}\n";

void tu_gen_build(const char *dir, const char *base, const char *prefix, const char *extra, const char *tag)
{
    char upper[64];
    size_t i = 0;
    for (; prefix[i] && i + 1 < sizeof upper; i++)
        upper[i] = (char)(prefix[i] >= 'a' && prefix[i] <= 'z' ? prefix[i] - 32 : prefix[i]);
    upper[i] = '\0';
    char mainc[2048];
    snprintf(mainc, sizeof mainc, gen_main, base, prefix, upper, upper, prefix);
    assert_int_equal(tu_write_file(tu_path(dir, "main.c"), mainc, strlen(mainc)), 0);
    const char *cc = getenv("CC");
    char cmd[4096], log[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s %s %s -o prog %s.c main.c", dir, cc && *cc ? cc : "cc", tu_gen_cflags(),
             extra, base);
    int rc = tu_run(cmd, log, sizeof log);
    if (rc != 0) fprintf(stderr, "%s: compile failed (%d): %s\n%s\n", tag, rc, cmd, log);
    assert_int_equal(rc, 0);
}

int tu_gen_run(const char *dir, char *log, size_t cap)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && ./prog in.bin out.bin", dir);
    return tu_run(cmd, log, cap);
}

tml_model *tu_zoo_model(const char *arch, uint64_t seed)
{
    tml_zoo_opts o = {.seed = seed};
    tml_model *m = NULL;
    tml_status st = tml_zoo_create(arch, &o, &m);
    if (st) fprintf(stderr, "zoo %s: %s\n", arch, tml_last_error());
    assert_int_equal(st, TML_OK);
    tu_rng r;
    tu_rng_seed(&r, 9);
    for (int i = 0; i < m->n_nodes; i++) {
        if (m->nodes[i].op != TML_OP_BATCHNORM) continue;
        for (int j = 1; j < 5; j++) {
            tml_tensor *t = &m->tensors[m->nodes[i].in[j]];
            float *p = t->data;
            for (int64_t k = 0; k < tml_tensor_numel(t); k++)
                p[k] = j == 4 ? tu_rng_uniform(&r, 0.5f, 2.0f) : tu_rng_uniform(&r, -0.2f, 0.4f) + (j == 1);
        }
    }
    return m;
}

tml_dataset *tu_fmnist(const char *split)
{
    tml_dataset *ds = NULL;
    tml_status st = tml_dataset_open("fashion-mnist", split, &ds);
    if (st) fprintf(stderr, "fashion-mnist: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    return ds;
}

void tu_quantize(tml_model *m, int samples)
{
    assert_int_equal(tml_fold(m, NULL), TML_OK);
    tml_dataset *ds = tu_fmnist("train");
    tml_calib cal;
    tml_calib_opts co = {.samples = samples, .seed = 5, .batch = 32};
    assert_int_equal(tml_calibrate(m, ds, &co, &cal), TML_OK);
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    tml_status st = tml_quantize(m, &cal, &qo);
    if (st) fprintf(stderr, "quantize: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    tml_calib_free(&cal);
    tml_dataset_free(ds);
}

float *tu_fmnist_test(const tml_model *m, int n)
{
    tml_dataset *ds = tu_fmnist("test");
    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, n, &s), TML_OK);
    assert_true(s->n == n && s->h * s->w * s->c == 784);
    float *x = malloc(sizeof(float) * (size_t)n * 784);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    assert_true(x && idx);
    for (int i = 0; i < n; i++) idx[i] = i;
    tml_samples_gather(s, idx, n, x, NULL);
    tml_preproc_apply(&m->meta.pre, (int64_t)n * 784, s->c, x);
    free(idx);
    tml_samples_free(s);
    tml_dataset_free(ds);
    return x;
}

tml_model *tu_other_ops_model(void)
{
    static const char arch[] =
        "{\"name\": \"odd\", \"layers\": ["
        "{\"type\": \"conv2d\", \"filters\": 6, \"kernel\": 3, \"stride\": 2, \"padding\": \"same\"},"
        "{\"type\": \"avgpool\", \"size\": 3, \"stride\": 2, \"padding\": \"same\"},"
        "{\"type\": \"relu6\"},"
        "{\"type\": \"depthwise_conv2d\", \"kernel\": 3, \"multiplier\": 2, \"padding\": \"same\", \"act\": \"relu\"},"
        "{\"type\": \"maxpool\", \"size\": 3, \"stride\": 2, \"padding\": \"same\"},"
        "{\"type\": \"relu\"},"
        "{\"type\": \"residual\", \"layers\": [{\"type\": \"conv2d\", \"filters\": 12, \"kernel\": [1, 3], \"padding\": \"same\"}]},"
        "{\"type\": \"residual\", \"layers\": [{\"type\": \"relu\"}]},"
        "{\"type\": \"conv2d\", \"filters\": 8, \"kernel\": 1},"
        "{\"type\": \"global_avgpool\"},"
        "{\"type\": \"dense\", \"units\": 10},"
        "{\"type\": \"softmax\"}]}";
    tml_zoo_opts zo = {.seed = 11};
    tml_model *m = NULL;
    tml_status st = tml_zoo_from_json(arch, &zo, &m);
    if (st) fprintf(stderr, "arch: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    /* dilation 2 on the first conv and 4 groups on the last conv (the JSON
     * format has neither); shapes are inferred again */
    int first = -1, last = -1;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op == TML_OP_CONV2D) {
            if (first < 0) first = i;
            last = i;
        }
    m->nodes[first].dh = m->nodes[first].dw = 2;
    tml_node *g = &m->nodes[last];
    tml_tensor *gw = &m->tensors[g->in[1]];
    const int groups = 4;
    int32_t gd[4] = {gw->dims[0], gw->dims[1], gw->dims[2], gw->dims[3] / groups};
    assert_int_equal(tml_tensor_resize(gw, 4, gd), TML_OK);
    tu_rng rng;
    tu_rng_seed(&rng, 4);
    tu_fill_uniform(&rng, gw->data, (size_t)tml_tensor_numel(gw), -0.5f, 0.5f);
    g->groups = groups;
    st = tml_model_finalize(m);
    if (st) fprintf(stderr, "finalize: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    const char *labels[10] = {"T-shirt/top", "say \"hi\"", "back\\slash", "what?\?=", "*/ end", "tab\there",
                              "caf\xc3\xa9", "7", "", "9"};
    assert_int_equal(tml_meta_set_labels(&m->meta, 10, labels), TML_OK);
    return m;
}

/* Zeros row 0 of a clustered int8 weight except its first and last column,
 * so its sparse form needs filler entries (gaps > 255). */
static void force_long_gap(tml_tensor *w)
{
    tml_codebook *cb = w->cb;
    assert_non_null(cb);
    int64_t cols = tml_tensor_numel(w) / w->dims[0];
    assert_true(cols > 600);
    int zero = -1, nonzero = -1;
    for (int j = 0; j < cb->k; j++) {
        if (cb->centroids[j] == 0.0f && zero < 0) zero = j;
        if (cb->centroids[j] != 0.0f && nonzero < 0) nonzero = j;
    }
    assert_true(zero >= 0 && nonzero >= 0);
    int8_t *d = w->data;
    for (int64_t k = 0; k < cols; k++) {
        int edge = k == 0 || k == cols - 1;
        cb->index[k] = (uint8_t)(edge ? nonzero : zero);
        d[k] = (int8_t)cb->centroids[edge ? nonzero : zero];
    }
}

tml_model *tu_compact_lenet5(uint64_t seed, int calib_samples)
{
    tml_model *m = tu_zoo_model("lenet5", seed);
    tml_prune_spec ps = {.sparsity = 0.9};
    tml_prune_report pr;
    tml_status st = tml_prune_magnitude(m, &ps, &pr);
    if (st) fprintf(stderr, "prune: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    tml_prune_report_free(&pr);
    const char *per_tensor[] = {"conv1", "fc1", NULL}, *per_channel[] = {"conv2", "fc2", NULL};
    tml_cluster_opts co;
    tml_cluster_opts_default(&co);
    co.bits = 4;
    co.only = per_tensor;
    st = tml_cluster(m, &co, NULL);
    if (st) fprintf(stderr, "cluster: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    co.only = per_channel;
    co.per_channel = 1;
    assert_int_equal(tml_cluster(m, &co, NULL), TML_OK);
    tu_quantize(m, calib_samples);
    int fc1 = tml_model_find_node(m, "fc1");
    assert_true(fc1 >= 0);
    force_long_gap(&m->tensors[m->nodes[fc1].in[1]]);
    return m;
}
