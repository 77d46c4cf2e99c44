/*
 * test_datasets.c - dataset readers: IDX (plain and gzip), PNG class folders,
 * CSV, the named fashion-mnist dataset, streaming vs loading, preprocessing, and
 * the errors for broken inputs (each must name the file, never over-allocate).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <png.h>
#include <zlib.h>

#include "testutil.h"
#include "tinyml/tml_dataset.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* Known pixel value of value k of sample i. */
static uint8_t pix(int64_t i, int64_t k)
{
    return (uint8_t)((i * 31 + k * 7 + 3) & 255);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Builds an IDX file in memory: type 0x08, dims[0..nd), then `data_len` bytes of
 * data (which may be fewer than the dims declare). Caller frees. */
static uint8_t *idx_bytes(int type, int nd, const uint32_t *dims, const uint8_t *data, size_t data_len,
                          size_t *len)
{
    size_t hdr = 4 + 4 * (size_t)nd;
    uint8_t *b = malloc(hdr + data_len + 1);
    assert_non_null(b);
    b[0] = 0;
    b[1] = 0;
    b[2] = (uint8_t)type;
    b[3] = (uint8_t)nd;
    for (int i = 0; i < nd; i++) put_be32(b + 4 + 4 * i, dims[i]);
    if (data_len) memcpy(b + hdr, data, data_len);
    *len = hdr + data_len;
    return b;
}

static void write_gz(const char *path, const void *buf, size_t len)
{
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, buf, (unsigned)len), (int)len);
    assert_int_equal(gzclose(f), Z_OK);
}

/* Writes an images file of n samples (h, w, c) with pix() values and a labels file
 * with label(i) = i % n_classes. gz selects gzip. */
static void write_idx_pair(const char *img, const char *lbl, int n, int h, int w, int c, int n_classes,
                           int gz)
{
    size_t sv = (size_t)h * w * c, len;
    uint8_t *data = malloc((size_t)n * sv), *labels = malloc((size_t)n);
    assert_non_null(data);
    assert_non_null(labels);
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < sv; k++) data[(size_t)i * sv + k] = pix(i, (int64_t)k);
        labels[i] = (uint8_t)(i % n_classes);
    }
    uint32_t di[4] = {(uint32_t)n, (uint32_t)h, (uint32_t)w, (uint32_t)c}, dl[1] = {(uint32_t)n};
    uint8_t *b = idx_bytes(0x08, c == 1 ? 3 : 4, di, data, (size_t)n * sv, &len);
    if (gz)
        write_gz(img, b, len);
    else
        assert_int_equal(tu_write_file(img, b, len), 0);
    free(b);
    b = idx_bytes(0x08, 1, dl, labels, (size_t)n, &len);
    if (gz)
        write_gz(lbl, b, len);
    else
        assert_int_equal(tu_write_file(lbl, b, len), 0);
    free(b);
    free(data);
    free(labels);
}

static tml_dataset *open_ok(const char *spec)
{
    tml_dataset *ds = NULL;
    tml_status st = tml_dataset_open(spec, NULL, &ds);
    if (st != TML_OK) fprintf(stderr, "  open '%s' failed: %s\n", spec, tml_last_error());
    assert_int_equal(st, TML_OK);
    assert_non_null(ds);
    return ds;
}

/* Opening must fail with `want` and a message containing each of the strings. */
static void open_fails(const char *spec, tml_status want, const char *m1, const char *m2)
{
    tml_dataset *ds = NULL;
    tml_status st = tml_dataset_open(spec, NULL, &ds);
    const char *msg = tml_last_error();
    if (st != want || (m1 && !strstr(msg, m1)) || (m2 && !strstr(msg, m2)))
        fprintf(stderr, "  open '%s': status %d (want %d), message '%s' (want '%s', '%s')\n", spec, st, want,
                msg, m1 ? m1 : "", m2 ? m2 : "");
    assert_int_equal(st, want);
    assert_null(ds);
    if (m1) assert_non_null(strstr(msg, m1));
    if (m2) assert_non_null(strstr(msg, m2));
}

/* Reads the whole dataset through next() in batches of `batch` and checks each
 * sample against pix() and label i % n_classes. */
static void check_stream(tml_dataset *ds, int batch, int n_classes)
{
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    const int64_t sv = (int64_t)info->h * info->w * info->c;
    float *x = malloc(sizeof(float) * (size_t)(batch * sv));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    assert_non_null(x);
    assert_non_null(y);
    int64_t seen = 0;
    for (;;) {
        int got = -1;
        assert_int_equal(tml_dataset_next(ds, batch, x, y, &got), TML_OK);
        if (got == 0) break;
        assert_true(got <= batch);
        for (int i = 0; i < got; i++) {
            int64_t s = seen + i;
            assert_int_equal(y[i], s % n_classes);
            for (int64_t k = 0; k < sv; k++) {
                if (x[i * sv + k] != (float)pix(s, k)) {
                    fprintf(stderr, "  sample %lld value %lld: %g, expected %d (batch %d)\n", (long long)s,
                            (long long)k, (double)x[i * sv + k], pix(s, k), batch);
                    fail();
                }
            }
        }
        seen += got;
    }
    assert_int_equal(seen, info->count);
    /* at the end, next keeps returning 0 */
    int got = -1;
    assert_int_equal(tml_dataset_next(ds, batch, x, y, &got), TML_OK);
    assert_int_equal(got, 0);
    free(x);
    free(y);
}

static void check_samples(const tml_samples *s, int64_t first, int n_classes)
{
    const int64_t sv = (int64_t)s->h * s->w * s->c;
    assert_non_null(s->u8);
    assert_null(s->f32);
    for (int64_t i = 0; i < s->n; i++) {
        assert_int_equal(s->labels[i], (first + i) % n_classes);
        for (int64_t k = 0; k < sv; k++) assert_int_equal(s->u8[i * sv + k], pix(first + i, k));
    }
}

/* ---- IDX ------------------------------------------------------------------------------ */

static void idx_stream_case(int gz, int c)
{
    const char *dir = tu_tmpdir(gz ? "ds_idx_gz" : "ds_idx_plain");
    /* names say nothing about compression: detection is by magic */
    const char *img = tu_path(dir, "images.idx"), *lbl = tu_path(dir, "labels.idx");
    write_idx_pair(img, lbl, 10, 4, 3, c, 4, gz);
    char spec[8300];
    snprintf(spec, sizeof spec, "idx:%s,%s", img, lbl);
    tml_dataset *ds = open_ok(spec);
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    assert_int_equal(info->count, 10);
    assert_int_equal(info->h, 4);
    assert_int_equal(info->w, 3);
    assert_int_equal(info->c, c);
    assert_int_equal(info->n_classes, 4);
    assert_null(info->labels);
    assert_true(info->raw_max == 255.0f);
    assert_true(strncmp(info->name, "idx:", 4) == 0);
    const int batches[] = {1, 3, 7, 10, 64};
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        assert_int_equal(tml_dataset_rewind(ds), TML_OK);
        check_stream(ds, batches[b], 4);
    }
    tml_dataset_free(ds);
}

static void test_idx_plain_stream(void **state)
{
    (void)state;
    idx_stream_case(0, 1);
    idx_stream_case(0, 3);
}

static void test_idx_gz_stream(void **state)
{
    (void)state;
    idx_stream_case(1, 1);
    idx_stream_case(1, 3);
}

static void test_idx_load_and_rewind(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_idx_load");
    const char *img = tu_path(dir, "i.gz"), *lbl = tu_path(dir, "l.gz");
    write_idx_pair(img, lbl, 13, 5, 2, 1, 3, 1);
    char spec[8300];
    snprintf(spec, sizeof spec, "idx:%s,%s", img, lbl);
    tml_dataset *ds = open_ok(spec);

    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, 0, &s), TML_OK);
    assert_int_equal(s->n, 13);
    assert_int_equal(s->h, 5);
    assert_int_equal(s->w, 2);
    assert_int_equal(s->c, 1);
    assert_int_equal(s->n_classes, 3);
    check_samples(s, 0, 3);

    /* gather picks samples by index, as float */
    int64_t idx[3] = {12, 0, 7};
    float x[3 * 10];
    int32_t y[3];
    tml_samples_gather(s, idx, 3, x, y);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(y[i], idx[i] % 3);
        for (int k = 0; k < 10; k++) assert_true(x[i * 10 + k] == (float)pix(idx[i], k));
    }
    tml_samples_free(s);

    /* at the end: an empty load */
    assert_int_equal(tml_dataset_load(ds, 0, &s), TML_OK);
    assert_int_equal(s->n, 0);
    tml_samples_free(s);

    /* rewind, skip 3 by streaming, then load 4 and the rest */
    assert_int_equal(tml_dataset_rewind(ds), TML_OK);
    int got;
    float xb[3 * 10];
    int32_t yb[3];
    assert_int_equal(tml_dataset_next(ds, 3, xb, yb, &got), TML_OK);
    assert_int_equal(got, 3);
    assert_int_equal(tml_dataset_load(ds, 4, &s), TML_OK);
    assert_int_equal(s->n, 4);
    check_samples(s, 3, 3);
    tml_samples_free(s);
    assert_int_equal(tml_dataset_load(ds, -1, &s), TML_OK);
    assert_int_equal(s->n, 6);
    check_samples(s, 7, 3);
    tml_samples_free(s);

    /* next without labels */
    assert_int_equal(tml_dataset_rewind(ds), TML_OK);
    assert_int_equal(tml_dataset_next(ds, 2, xb, NULL, &got), TML_OK);
    assert_int_equal(got, 2);
    assert_true(xb[10] == (float)pix(1, 0));
    tml_dataset_free(ds);
}

static void test_idx_truncated(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_idx_trunc");
    const char *img = tu_path(dir, "img"), *lbl = tu_path(dir, "lbl"), *imgz = tu_path(dir, "img.gz");
    write_idx_pair(img, lbl, 6, 4, 4, 1, 2, 0);
    size_t len;
    uint8_t *full = tu_read_file(img, &len);
    assert_non_null(full);
    char spec[8300];

    /* plain, cut in the last image: refused at open */
    assert_int_equal(tu_write_file(img, full, len - 5), 0);
    snprintf(spec, sizeof spec, "idx:%s,%s", img, lbl);
    open_fails(spec, TML_ERR_FORMAT, "truncated", img);

    /* gzip of a short file: found while reading, the message names the file */
    write_gz(imgz, full, len - 5);
    snprintf(spec, sizeof spec, "idx:%s,%s", imgz, lbl);
    tml_dataset *ds = open_ok(spec);
    float x[6 * 16];
    int32_t y[6];
    int got = -1;
    assert_int_equal(tml_dataset_next(ds, 4, x, y, &got), TML_OK);
    assert_int_equal(got, 4);
    assert_int_equal(tml_dataset_next(ds, 4, x, y, &got), TML_ERR_FORMAT);
    assert_int_equal(got, 0);
    assert_non_null(strstr(tml_last_error(), "truncated"));
    assert_non_null(strstr(tml_last_error(), imgz));
    /* broken until rewound */
    assert_int_equal(tml_dataset_next(ds, 1, x, y, &got), TML_ERR_INVALID);
    assert_non_null(strstr(tml_last_error(), "rewind"));
    assert_int_equal(tml_dataset_rewind(ds), TML_OK);
    assert_int_equal(tml_dataset_next(ds, 1, x, y, &got), TML_OK);
    assert_int_equal(got, 1);
    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, 0, &s), TML_ERR_FORMAT);
    assert_null(s);
    tml_dataset_free(ds);

    /* a gzip stream cut short (compressed bytes missing) */
    write_gz(imgz, full, len);
    size_t zlen;
    uint8_t *z = tu_read_file(imgz, &zlen);
    assert_non_null(z);
    assert_int_equal(tu_write_file(imgz, z, zlen / 2), 0);
    tml_status st = tml_dataset_open(spec, NULL, &ds);
    if (st == TML_OK) {
        assert_int_equal(tml_dataset_load(ds, 0, &s), TML_ERR_FORMAT);
        tml_dataset_free(ds);
    }
    assert_non_null(strstr(tml_last_error(), "truncated"));
    assert_non_null(strstr(tml_last_error(), imgz));
    free(z);

    /* labels file short */
    write_idx_pair(img, lbl, 6, 4, 4, 1, 2, 0);
    uint8_t *lb = tu_read_file(lbl, &len);
    assert_non_null(lb);
    assert_int_equal(tu_write_file(lbl, lb, len - 1), 0);
    snprintf(spec, sizeof spec, "idx:%s,%s", img, lbl);
    open_fails(spec, TML_ERR_FORMAT, "truncated", lbl);
    free(lb);
    free(full);
}

static void test_idx_bad_headers(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_idx_bad");
    const char *img = tu_path(dir, "img"), *lbl = tu_path(dir, "lbl"), *bad = tu_path(dir, "bad");
    write_idx_pair(img, lbl, 5, 2, 2, 1, 5, 0);
    char spec[8300];
    size_t len;
    uint8_t data[64] = {0};

    /* wrong magic */
    uint32_t d3[3] = {5, 2, 2};
    uint8_t *b = idx_bytes(0x08, 3, d3, data, 20, &len);
    b[0] = 0x12;
    assert_int_equal(tu_write_file(bad, b, len), 0);
    snprintf(spec, sizeof spec, "idx:%s,%s", bad, lbl);
    open_fails(spec, TML_ERR_FORMAT, "not an IDX file", bad);
    free(b);

    /* float IDX: refused clearly */
    b = idx_bytes(0x0D, 3, d3, data, 20, &len);
    assert_int_equal(tu_write_file(bad, b, len), 0);
    open_fails(spec, TML_ERR_UNSUPPORTED, "0x0d", "float32");
    free(b);

    /* count mismatch: 4 images, 5 labels */
    uint32_t d4[3] = {4, 2, 2};
    b = idx_bytes(0x08, 3, d4, data, 16, &len);
    assert_int_equal(tu_write_file(bad, b, len), 0);
    open_fails(spec, TML_ERR_FORMAT, "count mismatch", "4 images");
    free(b);

    /* swapped arguments */
    snprintf(spec, sizeof spec, "idx:%s,%s", lbl, img);
    open_fails(spec, TML_ERR_FORMAT, "this one has 1", "labels file?");

    /* zero dimension, too many dimensions, too short for a header */
    uint32_t dz[3] = {5, 0, 2};
    b = idx_bytes(0x08, 3, dz, data, 0, &len);
    assert_int_equal(tu_write_file(bad, b, len), 0);
    snprintf(spec, sizeof spec, "idx:%s,%s", bad, lbl);
    open_fails(spec, TML_ERR_FORMAT, "dimension 1 is 0", bad);
    free(b);
    b = idx_bytes(0x08, 3, d3, data, 0, &len);
    b[3] = 9;
    assert_int_equal(tu_write_file(bad, b, len), 0);
    open_fails(spec, TML_ERR_FORMAT, "9 dimensions", bad);
    free(b);
    assert_int_equal(tu_write_file(bad, "\0\0", 2), 0);
    open_fails(spec, TML_ERR_FORMAT, "truncated", bad);

    /* missing file; bad spec */
    snprintf(spec, sizeof spec, "idx:%s,%s", tu_path(dir, "nope"), lbl);
    open_fails(spec, TML_ERR_IO, "cannot open", "nope");
    open_fails("idx:onlyone", TML_ERR_INVALID, "IMAGES,LABELS", NULL);
}

static void test_idx_absurd_dims(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_idx_absurd");
    const char *img = tu_path(dir, "img"), *lbl = tu_path(dir, "lbl"), *imgz = tu_path(dir, "img.gz"),
               *lblz = tu_path(dir, "lbl.gz");
    uint8_t data[64] = {0};
    char spec[8300];
    size_t len;

    /* n = 2^31-1 declared in tiny files: a short-read error, never an allocation */
    uint32_t di[3] = {0x7fffffffu, 28, 28}, dl[1] = {0x7fffffffu};
    uint8_t *b = idx_bytes(0x08, 3, di, data, 64, &len);
    assert_int_equal(tu_write_file(img, b, len), 0);
    write_gz(imgz, b, len);
    free(b);
    b = idx_bytes(0x08, 1, dl, data, 64, &len);
    assert_int_equal(tu_write_file(lbl, b, len), 0);
    write_gz(lblz, b, len);
    free(b);
    snprintf(spec, sizeof spec, "idx:%s,%s", img, lbl);
    open_fails(spec, TML_ERR_FORMAT, "truncated", img);
    snprintf(spec, sizeof spec, "idx:%s,%s", imgz, lblz);
    open_fails(spec, TML_ERR_FORMAT, "truncated", lblz);

    /* n = 2^31: over the count limit */
    uint32_t dbig[1] = {0x80000000u};
    b = idx_bytes(0x08, 1, dbig, data, 8, &len);
    assert_int_equal(tu_write_file(lbl, b, len), 0);
    free(b);
    snprintf(spec, sizeof spec, "idx:%s,%s", img, lbl);
    open_fails(spec, TML_ERR_FORMAT, "samples", lbl);

    /* a sample of 65536x65536 values */
    uint32_t dhuge[3] = {1, 65536, 65536}, d1[1] = {1};
    b = idx_bytes(0x08, 3, dhuge, data, 64, &len);
    write_gz(imgz, b, len);
    free(b);
    b = idx_bytes(0x08, 1, d1, data, 1, &len);
    write_gz(lblz, b, len);
    free(b);
    snprintf(spec, sizeof spec, "idx:%s,%s", imgz, lblz);
    open_fails(spec, TML_ERR_FORMAT, "too large", imgz);

    /* 4 dims with a huge channel count */
    uint32_t dch[4] = {1, 1, 1, 0xffffffffu};
    b = idx_bytes(0x08, 4, dch, data, 64, &len);
    write_gz(imgz, b, len);
    free(b);
    open_fails(spec, TML_ERR_FORMAT, "too large", imgz);
}

/* A fake named dataset in $TML_DATA_DIR/fashion-mnist. */
static void test_named_data_dir_and_range(void **state)
{
    (void)state;
    const char *root = tu_tmpdir("ds_named");
    char fm[4200];
    snprintf(fm, sizeof fm, "%s/fashion-mnist", root);
    mkdir(fm, 0755);
    setenv("TML_DATA_DIR", root, 1);

    /* test split only, unpacked (no .gz): found; train split missing */
    write_idx_pair(tu_path(fm, "t10k-images-idx3-ubyte"), tu_path(fm, "t10k-labels-idx1-ubyte"), 7, 3, 3, 1,
                   10, 0);
    tml_dataset *ds = NULL;
    assert_int_equal(tml_dataset_open("fashion-mnist", "test", &ds), TML_OK);
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    assert_string_equal(info->name, "fashion-mnist:test");
    assert_int_equal(info->count, 7);
    assert_int_equal(info->n_classes, 10); /* declared, not scanned */
    assert_non_null(info->labels);
    assert_string_equal(info->labels[0], "T-shirt/top");
    assert_string_equal(info->labels[9], "Ankle boot");
    check_stream(ds, 3, 10);
    tml_dataset_free(ds);
    ds = NULL;

    char want[4300];
    snprintf(want, sizeof want, "fashion-mnist not found in %s: install Debian package dataset-fashion-mnist",
             fm);
    open_fails("fashion-mnist:train", TML_ERR_IO, want, "scripts/install-deps.sh");
    open_fails("fashion-mnist", TML_ERR_IO, want, NULL); /* default split: train */
    open_fails("fashion-mnist:valid", TML_ERR_INVALID, "unknown split 'valid'", "train, test");

    /* a label beyond the 10 declared classes */
    write_idx_pair(tu_path(fm, "t10k-images-idx3-ubyte"), tu_path(fm, "t10k-labels-idx1-ubyte"), 13, 3, 3, 1,
                   13, 0);
    open_fails("fashion-mnist:test", TML_ERR_FORMAT, "label 12 is out of range", "t10k-labels-idx1-ubyte");

    /* mnist is looked for in its own folder */
    open_fails("mnist:test", TML_ERR_IO, "mnist not found in", "/mnist");
    unsetenv("TML_DATA_DIR");
}

/* ---- the real Fashion-MNIST -------------------------------------------------------------- */

static int have_fashion_mnist(void)
{
    struct stat sb;
    return stat("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", &sb) == 0;
}

static void test_fashion_mnist(void **state)
{
    (void)state;
    unsetenv("TML_DATA_DIR");
    if (!have_fashion_mnist()) skip();
    tml_dataset *ds = NULL;
    assert_int_equal(tml_dataset_open("fashion-mnist:test", NULL, &ds), TML_OK);
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    assert_string_equal(info->name, "fashion-mnist:test");
    assert_int_equal(info->count, 10000);
    assert_int_equal(info->h, 28);
    assert_int_equal(info->w, 28);
    assert_int_equal(info->c, 1);
    assert_int_equal(info->n_classes, 10);
    assert_string_equal(info->labels[9], "Ankle boot");
    tml_preproc pre;
    tml_preproc_default(info, &pre);
    assert_true(pre.scale == 1.0f / 255.0f);

    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, 0, &s), TML_OK);
    assert_int_equal(s->n, 10000);
    assert_non_null(s->u8);
    /* first test labels of Fashion-MNIST: 9 2 1 1 6 (checked with gzip + od) */
    assert_int_equal(s->labels[0], 9);
    assert_int_equal(s->labels[1], 2);
    assert_int_equal(s->labels[4], 6);
    int64_t sum0 = 0;
    for (int k = 0; k < 784; k++) sum0 += s->u8[k];
    assert_int_equal(sum0, 33456);

    /* streaming in batches of 256 gives exactly what load gave */
    assert_int_equal(tml_dataset_rewind(ds), TML_OK);
    float *x = malloc(sizeof(float) * 256 * 784);
    int32_t y[256];
    assert_non_null(x);
    int64_t seen = 0;
    int got;
    do {
        assert_int_equal(tml_dataset_next(ds, 256, x, y, &got), TML_OK);
        for (int i = 0; i < got; i++) {
            assert_int_equal(y[i], s->labels[seen + i]);
            const uint8_t *ref = s->u8 + (seen + i) * 784;
            for (int k = 0; k < 784; k++)
                if (x[i * 784 + k] != (float)ref[k]) {
                    fprintf(stderr, "  sample %lld value %d: %g vs %d\n", (long long)(seen + i), k,
                            (double)x[i * 784 + k], ref[k]);
                    fail();
                }
        }
        seen += got;
    } while (got > 0);
    assert_int_equal(seen, 10000);
    free(x);
    tml_samples_free(s);
    tml_dataset_free(ds);

    /* train split (also the default) */
    assert_int_equal(tml_dataset_open("fashion-mnist", NULL, &ds), TML_OK);
    info = tml_dataset_get_info(ds);
    assert_string_equal(info->name, "fashion-mnist:train");
    assert_int_equal(info->count, 60000);
    assert_int_equal(info->n_classes, 10);
    tml_dataset_free(ds);
    assert_int_equal(tml_dataset_open("fashion-mnist", "test", &ds), TML_OK);
    assert_int_equal(tml_dataset_get_info(ds)->count, 10000);
    tml_dataset_free(ds);
}

/* ---- PNG folders --------------------------------------------------------------------------- */

/* Writes a w x h PNG with `channels` 1 (gray), 3 (RGB) or 4 (RGBA) of 8-bit data. */
static void write_png(const char *path, int w, int h, int channels, const uint8_t *data)
{
    assert_int_equal(tu_write_png(path, w, h, channels, data), 0);
}

/* Gray image of class k, file j: value(y, x) = k * 50 + j * 10 + y * w + x. */
static void gray_image(uint8_t *buf, int w, int h, int k, int j)
{
    for (int i = 0; i < w * h; i++) buf[i] = (uint8_t)(k * 50 + j * 10 + i);
}

static void test_png_gray_classes(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_png_gray");
    /* classes created out of order, with 2, 3 and 1 images; a README at the top */
    const char *cls[3] = {"sneaker", "boot", "coat"};
    const int count[3] = {2, 3, 1};
    const int w = 5, h = 4;
    uint8_t buf[20];
    for (int k = 0; k < 3; k++) {
        mkdir(tu_path(dir, cls[k]), 0755);
        for (int j = count[k] - 1; j >= 0; j--) {
            char name[64];
            snprintf(name, sizeof name, "%s/img%d.png", cls[k], j);
            gray_image(buf, w, h, k, j);
            write_png(tu_path(dir, name), w, h, 1, buf);
        }
    }
    assert_int_equal(tu_write_file(tu_path(dir, "README"), "hi\n", 3), 0);
    assert_int_equal(tu_write_file(tu_path(dir, "boot/.hidden"), "x", 1), 0);

    tml_dataset *ds = open_ok(dir); /* a plain directory path works */
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    assert_int_equal(info->count, 6);
    assert_int_equal(info->h, h);
    assert_int_equal(info->w, w);
    assert_int_equal(info->c, 1);
    assert_int_equal(info->n_classes, 3);
    assert_true(info->raw_max == 255.0f);
    assert_string_equal(info->labels[0], "boot");
    assert_string_equal(info->labels[1], "coat");
    assert_string_equal(info->labels[2], "sneaker");

    /* expected order: boot img0..2, coat img0, sneaker img0..1 */
    const int exp_src[6] = {1, 1, 1, 2, 0, 0}, exp_j[6] = {0, 1, 2, 0, 0, 1},
              exp_label[6] = {0, 0, 0, 1, 2, 2};
    const int batches[3] = {1, 4, 7};
    for (int bi = 0; bi < 3; bi++) {
        assert_int_equal(tml_dataset_rewind(ds), TML_OK);
        float x[7 * 20];
        int32_t y[7];
        int seen = 0, got;
        do {
            assert_int_equal(tml_dataset_next(ds, batches[bi], x, y, &got), TML_OK);
            for (int i = 0; i < got; i++) {
                int s = seen + i;
                assert_int_equal(y[i], exp_label[s]);
                gray_image(buf, w, h, exp_src[s], exp_j[s]);
                for (int v = 0; v < 20; v++) assert_true(x[i * 20 + v] == (float)buf[v]);
            }
            seen += got;
        } while (got > 0);
        assert_int_equal(seen, 6);
    }

    assert_int_equal(tml_dataset_rewind(ds), TML_OK);
    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, 0, &s), TML_OK);
    assert_int_equal(s->n, 6);
    assert_non_null(s->u8);
    gray_image(buf, w, h, 2, 0);
    assert_memory_equal(s->u8 + 3 * 20, buf, 20);
    tml_samples_free(s);
    tml_dataset_free(ds);

    /* png: prefix and a trailing slash */
    char spec[8300];
    snprintf(spec, sizeof spec, "png:%s/", dir);
    ds = open_ok(spec);
    assert_int_equal(tml_dataset_get_info(ds)->count, 6);
    tml_dataset_free(ds);

    /* class names map onto a model's by name, not by sort order (issue 14
     * item 11): model classes {sneaker, coat, bag, boot} */
    const char *model_names[4] = {"sneaker", "coat", "bag", "boot"};
    ds = open_ok(dir);
    assert_int_equal(tml_dataset_map_classes(ds, 4, model_names), TML_OK);
    info = tml_dataset_get_info(ds);
    assert_int_equal(info->n_classes, 4);
    assert_string_equal(info->labels[2], "bag");
    {
        float x[6 * 20];
        int32_t y[6];
        int got;
        assert_int_equal(tml_dataset_next(ds, 6, x, y, &got), TML_OK);
        assert_int_equal(got, 6);
        const int32_t want[6] = {3, 3, 3, 1, 0, 0}; /* boot x3, coat, sneaker x2 */
        TU_ASSERT_EQ_I32(y, want, 6);
    }
    tml_dataset_free(ds);
    /* a folder the model does not know is refused, naming it */
    const char *other[3] = {"sneaker", "coat", "sandal"};
    ds = open_ok(dir);
    assert_int_equal(tml_dataset_map_classes(ds, 3, other), TML_ERR_SHAPE);
    assert_non_null(strstr(tml_last_error(), "'boot'"));
    tml_dataset_free(ds);
}

static void test_png_colour(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_png_rgb");
    mkdir(tu_path(dir, "a"), 0755);
    mkdir(tu_path(dir, "b"), 0755);
    const int w = 3, h = 2;
    uint8_t rgb[18], rgba[24], gray[6];
    for (int i = 0; i < 18; i++) rgb[i] = (uint8_t)(i * 13 + 1);
    for (int i = 0; i < 6; i++) {
        gray[i] = (uint8_t)(200 + i);
        rgba[4 * i + 0] = (uint8_t)(10 + i);
        rgba[4 * i + 1] = (uint8_t)(20 + i);
        rgba[4 * i + 2] = (uint8_t)(30 + i);
        rgba[4 * i + 3] = (uint8_t)(i * 40); /* alpha, dropped */
    }
    write_png(tu_path(dir, "a/1.png"), w, h, 3, rgb);
    write_png(tu_path(dir, "a/2.PNG"), w, h, 4, rgba);
    write_png(tu_path(dir, "b/gray.png"), w, h, 1, gray);

    /* a 16-bit gray image: values scaled to 8 bits */
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_LINEAR_Y;
    const uint16_t g16[6] = {0, 65535, 257 * 100, 257 * 7, 32768, 257 * 255};
    assert_true(png_image_write_to_file(&img, tu_path(dir, "b/deep.png"), 0, g16, 0, NULL));

    char spec[8300];
    snprintf(spec, sizeof spec, "png:%s", dir);
    tml_dataset *ds = open_ok(spec);
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    assert_int_equal(info->count, 4);
    assert_int_equal(info->c, 3);
    assert_int_equal(info->h, h);
    assert_int_equal(info->w, w);
    float x[4 * 18];
    int32_t y[4];
    int got;
    assert_int_equal(tml_dataset_next(ds, 4, x, y, &got), TML_OK);
    assert_int_equal(got, 4);
    const int32_t ylab[4] = {0, 0, 1, 1};
    TU_ASSERT_EQ_I32(y, ylab, 4);
    /* sample 0: RGB as stored */
    for (int i = 0; i < 18; i++) assert_true(x[i] == (float)rgb[i]);
    /* sample 1: RGBA with alpha dropped (not composited) */
    for (int i = 0; i < 6; i++) {
        assert_true(x[18 + 3 * i + 0] == (float)(10 + i));
        assert_true(x[18 + 3 * i + 1] == (float)(20 + i));
        assert_true(x[18 + 3 * i + 2] == (float)(30 + i));
    }
    /* sample 2: b/deep.png sorts before b/gray.png; gray replicated to RGB */
    const float d8[6] = {0, 255, 100, 7, 128, 255};
    for (int i = 0; i < 6; i++)
        for (int ch = 0; ch < 3; ch++) {
            if (fabsf(x[2 * 18 + 3 * i + ch] - d8[i]) > 0.0f)
                fprintf(stderr, "  16-bit pixel %d: %g, expected %g\n", i, (double)x[2 * 18 + 3 * i + ch],
                        (double)d8[i]);
            assert_true(x[2 * 18 + 3 * i + ch] == d8[i]);
        }
    for (int i = 0; i < 6; i++)
        for (int ch = 0; ch < 3; ch++) assert_true(x[3 * 18 + 3 * i + ch] == (float)gray[i]);
    tml_dataset_free(ds);
}

/* Palette images expand to RGB; gray+alpha stays gray with alpha dropped. */
static void test_png_palette_and_gray_alpha(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_png_pal");
    mkdir(tu_path(dir, "pal"), 0755);
    mkdir(tu_path(dir, "ga"), 0755);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = 2;
    img.height = 2;
    img.format = PNG_FORMAT_RGB_COLORMAP;
    img.colormap_entries = 3;
    const uint8_t cmap[9] = {10, 20, 30, 40, 50, 60, 70, 80, 90};
    const uint8_t index[4] = {2, 0, 1, 2};
    assert_true(png_image_write_to_file(&img, tu_path(dir, "pal/p.png"), 0, index, 0, cmap));

    char spec[8300];
    snprintf(spec, sizeof spec, "png:%s/pal/..", dir);
    tml_dataset *ds = open_ok(spec);
    assert_int_equal(tml_dataset_get_info(ds)->c, 3);
    float x[12];
    int32_t y[1];
    int got;
    assert_int_equal(tml_dataset_next(ds, 1, x, y, &got), TML_OK);
    assert_int_equal(got, 1);
    assert_int_equal(y[0], 1); /* "ga" < "pal"; ga is empty but still a class */
    for (int i = 0; i < 4; i++)
        for (int ch = 0; ch < 3; ch++) assert_true(x[3 * i + ch] == (float)cmap[3 * index[i] + ch]);
    tml_dataset_free(ds);

    /* gray + alpha only: c = 1 */
    remove(tu_path(dir, "pal/p.png"));
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = 2;
    img.height = 1;
    img.format = PNG_FORMAT_GA;
    const uint8_t ga[4] = {77, 255, 99, 0};
    assert_true(png_image_write_to_file(&img, tu_path(dir, "ga/g.png"), 0, ga, 0, NULL));
    ds = open_ok(spec);
    assert_int_equal(tml_dataset_get_info(ds)->c, 1);
    assert_int_equal(tml_dataset_next(ds, 1, x, y, &got), TML_OK);
    assert_int_equal(y[0], 0);
    assert_true(x[0] == 77.0f && x[1] == 99.0f);
    tml_dataset_free(ds);
}

/* An IHDR declaring a 4294934271 x 2761910066 image (found by fuzz_png): the
 * size check multiplied width and height in int64_t and overflowed (undefined;
 * fatal under UBSan, and a wrapped product could pass the check). Refused. */
static void test_png_absurd_size(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_png_absurd");
    char cls[1024], spec[1100];
    snprintf(cls, sizeof cls, "%s/a", dir);
    mkdir(cls, 0755);
    static const uint8_t head[36] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                     0xff, 0xff, 0x7e, 0xff, 0xa4, 0x9f, 0x67, 0x32, 8, 0, 0, 0, 0,
                                     0xb8, 0x1f, 0x39, 0x00, 0xc6, 0xb8, 0x1f};
    assert_int_equal(tu_write_file(tu_path(cls, "0.png"), head, sizeof head), 0);
    snprintf(spec, sizeof spec, "png:%s", dir);
    open_fails(spec, TML_ERR_FORMAT, "too large", NULL);
}

static void test_png_errors(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_png_err");
    char spec[8300];
    snprintf(spec, sizeof spec, "png:%s", dir);
    open_fails(spec, TML_ERR_FORMAT, "no class folders", NULL);
    mkdir(tu_path(dir, "a"), 0755);
    mkdir(tu_path(dir, "b"), 0755);
    open_fails(spec, TML_ERR_FORMAT, "no .png images", NULL);

    uint8_t buf[64] = {0};
    write_png(tu_path(dir, "a/0.png"), 4, 4, 1, buf);
    write_png(tu_path(dir, "b/0.png"), 4, 5, 1, buf);
    open_fails(spec, TML_ERR_SHAPE, "b/0.png", "same size");
    write_png(tu_path(dir, "b/0.png"), 4, 4, 1, buf);

    /* a non-PNG file in a class folder */
    assert_int_equal(tu_write_file(tu_path(dir, "b/notes.txt"), "x", 1), 0);
    open_fails(spec, TML_ERR_FORMAT, "b/notes.txt", "not a .png file");
    remove(tu_path(dir, "b/notes.txt"));
    /* a .png that is not one */
    assert_int_equal(tu_write_file(tu_path(dir, "b/1.png"), "GIF89a not really a png at all, no", 34), 0);
    open_fails(spec, TML_ERR_FORMAT, "b/1.png", "not a PNG file");

    /* valid header, corrupt image data: found when decoding, named */
    size_t len;
    uint8_t *good = tu_read_file(tu_path(dir, "a/0.png"), &len);
    assert_non_null(good);
    assert_true(len > 45);
    assert_int_equal(tu_write_file(tu_path(dir, "b/1.png"), good, 45), 0);
    tml_dataset *ds = open_ok(spec);
    float x[3 * 16];
    int32_t y[3];
    int got = -1;
    assert_int_equal(tml_dataset_next(ds, 3, x, y, &got), TML_ERR_FORMAT);
    assert_int_equal(got, 0);
    assert_non_null(strstr(tml_last_error(), "b/1.png"));
    tml_dataset_free(ds);
    free(good);

    open_fails("png:/nonexistent/dir", TML_ERR_IO, "/nonexistent/dir", NULL);
}

/* ---- CSV ------------------------------------------------------------------------------------ */

static const char *write_text(const char *dir, const char *name, const char *text)
{
    const char *p = tu_path(dir, name);
    assert_int_equal(tu_write_file(p, text, strlen(text)), 0);
    return p;
}

static void test_csv_basic(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_csv");
    const char *f = write_text(dir, "a.csv",
                               "f1,f2,f3,label\r\n"
                               "1, 2.5 ,-3,0\r\n"
                               "\r\n"
                               "4,5,6e1,2\r\n"
                               "  \n"
                               "7,8,9,1\n"
                               "0.5,0,0,2"); /* no final newline */
    char spec[8300];
    snprintf(spec, sizeof spec, "csv:%s", f);
    tml_dataset *ds = open_ok(spec);
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    assert_int_equal(info->count, 4);
    assert_int_equal(info->h, 3);
    assert_int_equal(info->w, 1);
    assert_int_equal(info->c, 1);
    assert_int_equal(info->n_classes, 3);
    assert_true(info->raw_max == 60.0f);
    assert_null(info->labels);
    tml_preproc pre;
    tml_preproc_default(info, &pre);
    assert_true(pre.scale == 1.0f);

    const float want_x[12] = {1, 2.5f, -3, 4, 5, 60, 7, 8, 9, 0.5f, 0, 0};
    const int32_t want_y[4] = {0, 2, 1, 2};
    {
        /* straight after open, without a rewind: the header is skipped too
         * (issue 14 item 14: it was read as data) */
        tml_dataset *fresh = open_ok(spec);
        tml_samples *s0 = NULL;
        tml_status st = tml_dataset_load(fresh, 0, &s0);
        if (st) fprintf(stderr, "  %s\n", tml_last_error());
        assert_int_equal(st, TML_OK);
        assert_int_equal(s0->n, 4);
        TU_ASSERT_CLOSE(s0->f32, want_x, 12, 0.0f);
        TU_ASSERT_EQ_I32(s0->labels, want_y, 4);
        tml_samples_free(s0);
        tml_dataset_free(fresh);
    }
    for (int batch = 1; batch <= 5; batch += 2) {
        assert_int_equal(tml_dataset_rewind(ds), TML_OK);
        float x[12];
        int32_t y[4];
        int seen = 0, got;
        do {
            assert_int_equal(tml_dataset_next(ds, batch, x + seen * 3, y + seen, &got), TML_OK);
            seen += got;
        } while (got > 0);
        assert_int_equal(seen, 4);
        TU_ASSERT_CLOSE(x, want_x, 12, 0.0f);
        TU_ASSERT_EQ_I32(y, want_y, 4);
    }
    assert_int_equal(tml_dataset_rewind(ds), TML_OK);
    tml_samples *s = NULL;
    assert_int_equal(tml_dataset_load(ds, 0, &s), TML_OK);
    assert_null(s->u8); /* not all bytes: kept as floats */
    assert_non_null(s->f32);
    TU_ASSERT_CLOSE(s->f32, want_x, 12, 0.0f);
    TU_ASSERT_EQ_I32(s->labels, want_y, 4);
    tml_samples_free(s);
    tml_dataset_free(ds);

    /* byte-valued CSV, no header, shape given: loaded as bytes */
    f = write_text(dir, "b.csv", "0,1,2,3,4,5,0\n255,254,253,252,251,250,1.0\n");
    snprintf(spec, sizeof spec, "csv:%s:1x2x3", f);
    ds = open_ok(spec);
    info = tml_dataset_get_info(ds);
    assert_int_equal(info->count, 2);
    assert_int_equal(info->h, 1);
    assert_int_equal(info->w, 2);
    assert_int_equal(info->c, 3);
    assert_true(info->raw_max == 255.0f);
    assert_int_equal(tml_dataset_load(ds, 0, &s), TML_OK);
    assert_non_null(s->u8);
    assert_int_equal(s->u8[6], 255);
    assert_int_equal(s->u8[11], 250);
    assert_int_equal(s->labels[1], 1);
    tml_samples_free(s);
    tml_dataset_free(ds);

    snprintf(spec, sizeof spec, "csv:%s:2x2x2", f);
    open_fails(spec, TML_ERR_SHAPE, "6 features", "2x2x2");
    snprintf(spec, sizeof spec, "csv:%s:2x3", f);
    open_fails(spec, TML_ERR_INVALID, "bad shape '2x3'", NULL);

    /* gzip-compressed CSV, detected by magic */
    const char *gz = tu_path(dir, "c.csv.gz");
    write_gz(gz, "1,2,0\n3,4,1\n", 12);
    snprintf(spec, sizeof spec, "csv:%s", gz);
    ds = open_ok(spec);
    assert_int_equal(tml_dataset_get_info(ds)->count, 2);
    tml_dataset_free(ds);
}

static void test_csv_errors(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_csv_err");
    char spec[8300], want[8400];
    const char *f;

    f = write_text(dir, "cols.csv", "a,b,label\n1,2,0\n3,4,1\n5,6\n7,8,0\n");
    snprintf(spec, sizeof spec, "csv:%s", f);
    snprintf(want, sizeof want, "%s:4:", f);
    open_fails(spec, TML_ERR_FORMAT, want, "2 columns, expected 3");

    f = write_text(dir, "nan.csv", "1,2,0\r\n3,x4,1\r\n");
    snprintf(spec, sizeof spec, "csv:%s", f);
    snprintf(want, sizeof want, "%s:2:", f);
    open_fails(spec, TML_ERR_FORMAT, want, "'x4' is not a number");

    f = write_text(dir, "empty_field.csv", "1,,0\n");
    snprintf(spec, sizeof spec, "csv:%s", f);
    open_fails(spec, TML_ERR_FORMAT, "header", NULL); /* a lone header line: no data */

    f = write_text(dir, "neg.csv", "1,2,0\n1,2,-1\n");
    snprintf(spec, sizeof spec, "csv:%s", f);
    snprintf(want, sizeof want, "%s:2:", f);
    open_fails(spec, TML_ERR_FORMAT, want, "label '-1'");

    f = write_text(dir, "frac.csv", "1,2,0\n\n1,2,1.5\n");
    snprintf(spec, sizeof spec, "csv:%s", f);
    snprintf(want, sizeof want, "%s:3:", f);
    open_fails(spec, TML_ERR_FORMAT, want, "must be an integer");

    f = write_text(dir, "inf.csv", "1,2,0\n1e999,2,1\n");
    snprintf(spec, sizeof spec, "csv:%s", f);
    open_fails(spec, TML_ERR_FORMAT, "not a finite", NULL);

    f = write_text(dir, "empty.csv", "");
    snprintf(spec, sizeof spec, "csv:%s", f);
    open_fails(spec, TML_ERR_FORMAT, "empty file", f);

    f = write_text(dir, "blank.csv", "\n\r\n  \n");
    snprintf(spec, sizeof spec, "csv:%s", f);
    open_fails(spec, TML_ERR_FORMAT, "empty file", NULL);

    f = write_text(dir, "onecol.csv", "1\n2\n");
    snprintf(spec, sizeof spec, "csv:%s", f);
    open_fails(spec, TML_ERR_FORMAT, "at least one feature", NULL);

    open_fails("csv:/nonexistent/file.csv", TML_ERR_IO, "/nonexistent/file.csv", NULL);
    open_fails("csv:", TML_ERR_INVALID, "csv:FILE", NULL);
}

/* ---- specs, preprocessing --------------------------------------------------------------- */

static void test_spec_errors(void **state)
{
    (void)state;
    open_fails("", TML_ERR_INVALID, "empty", NULL);
    open_fails("cifar-10", TML_ERR_INVALID, "unknown dataset 'cifar-10'", "fashion-mnist[:train|:test]");
    open_fails("fashion-mnistx", TML_ERR_INVALID, "unknown dataset", NULL);
    open_fails("png:", TML_ERR_INVALID, "png:DIR", NULL);
}

static void test_preproc(void **state)
{
    (void)state;
    tml_dataset_info info;
    memset(&info, 0, sizeof info);
    info.raw_max = 255.0f;
    tml_preproc pre;
    tml_preproc_default(&info, &pre);
    assert_true(pre.scale == 1.0f / 255.0f);
    assert_int_equal(pre.n_ch, 0);
    assert_int_equal(tml_preproc_check(&pre, 3), TML_OK);
    float x[6] = {0, 51, 255, 102, 204, 25.5f};
    tml_preproc_apply(&pre, 6, 3, x);
    const float want0[6] = {0, 0.2f, 1, 0.4f, 0.8f, 0.1f};
    TU_ASSERT_CLOSE(x, want0, 6, 1e-6f);
    info.raw_max = 17.0f;
    tml_preproc_default(&info, &pre);
    assert_true(pre.scale == 1.0f);

    /* per channel, channels last: x = (raw * scale - mean[c]) / std[c] */
    pre.scale = 0.5f;
    pre.n_ch = 3;
    pre.mean[0] = 1.0f, pre.mean[1] = -2.0f, pre.mean[2] = 0.0f;
    pre.std[0] = 2.0f, pre.std[1] = 0.5f, pre.std[2] = 4.0f;
    assert_int_equal(tml_preproc_check(&pre, 3), TML_OK);
    float y[6] = {2, 2, 2, 10, -4, 8};
    tml_preproc_apply(&pre, 6, 3, y);
    const float want1[6] = {0.0f, 6.0f, 0.25f, 2.0f, 0.0f, 1.0f};
    TU_ASSERT_CLOSE(y, want1, 6, 1e-6f);

    /* one mean/std for every channel */
    pre.n_ch = 1;
    float z[4] = {2, 4, 6, 8};
    tml_preproc_apply(&pre, 4, 2, z);
    const float want2[4] = {0.0f, 0.5f, 1.0f, 1.5f};
    TU_ASSERT_CLOSE(z, want2, 4, 1e-6f);

    /* validation of untrusted parameters */
    pre.n_ch = 3;
    assert_int_equal(tml_preproc_check(&pre, 1), TML_ERR_SHAPE);
    pre.std[1] = 0.0f;
    assert_int_equal(tml_preproc_check(&pre, 3), TML_ERR_INVALID);
    assert_non_null(strstr(tml_last_error(), "std[1]"));
    pre.std[1] = 1.0f;
    pre.n_ch = 5;
    assert_int_equal(tml_preproc_check(&pre, 3), TML_ERR_INVALID);
    pre.n_ch = 0;
    pre.scale = NAN;
    assert_int_equal(tml_preproc_check(&pre, 3), TML_ERR_INVALID);
}

/* Reads every sample of ds (batches of `batch`): feature 0 of each into f. */
static int read_first_features(tml_dataset *ds, int batch, float *f, int max)
{
    float x[7 * 2];
    int32_t y[7];
    int n = 0, got;
    do {
        assert_int_equal(tml_dataset_next(ds, batch, x, y, &got), TML_OK);
        for (int i = 0; i < got; i++) {
            assert_true(n < max);
            assert_int_equal(y[i], (int)x[2 * i] % 3);
            f[n++] = x[2 * i];
        }
    } while (got > 0);
    return n;
}

/* Seeded held-out splits of a CSV (issue 14 item 15): exact sizes, disjoint,
 * covering, repeatable, in file order. */
static void test_holdout_split(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("ds_holdout");
    char text[4096];
    size_t l = 0;
    for (int i = 0; i < 101; i++) l += (size_t)snprintf(text + l, sizeof text - l, "%d,%d,%d\n", i, -i, i % 3);
    const char *f = write_text(dir, "h.csv", text);
    char spec[8300];
    snprintf(spec, sizeof spec, "csv:%s", f);
    float held[101], rest[101], again[101];
    int nh = 0, nr = 0;
    for (int part = 0; part < 2; part++) {
        tml_dataset *ds = NULL;
        assert_int_equal(tml_dataset_holdout(open_ok(spec), 0.2, 7, part, &ds), TML_OK);
        assert_int_equal(tml_dataset_get_info(ds)->count, part ? 20 : 81);
        int n = read_first_features(ds, part ? 3 : 7, part ? held : rest, 101);
        assert_int_equal(n, part ? 20 : 81);
        /* again after a rewind, another batch size: the same samples */
        assert_int_equal(tml_dataset_rewind(ds), TML_OK);
        assert_int_equal(read_first_features(ds, 1, again, 101), n);
        assert_memory_equal(again, part ? held : rest, sizeof(float) * (size_t)n);
        if (part) nh = n;
        else nr = n;
        tml_dataset_free(ds);
    }
    /* disjoint and covering, each part in file order */
    int seen[101] = {0};
    for (int i = 0; i < nh; i++) seen[(int)held[i]]++;
    for (int i = 0; i < nr; i++) seen[(int)rest[i]]++;
    for (int i = 0; i < 101; i++) assert_int_equal(seen[i], 1);
    for (int i = 1; i < nh; i++) assert_true(held[i] > held[i - 1]);
    /* another seed holds out other samples */
    tml_dataset *ds = NULL;
    assert_int_equal(tml_dataset_holdout(open_ok(spec), 0.2, 8, 1, &ds), TML_OK);
    assert_int_equal(read_first_features(ds, 5, again, 101), 20);
    assert_true(memcmp(again, held, sizeof(float) * 20) != 0);
    tml_dataset_free(ds);
    /* nothing left on one side: refused */
    assert_int_equal(tml_dataset_holdout(open_ok(spec), 0.001, 8, 1, &ds), TML_ERR_INVALID);
    assert_null(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_plain_stream),
        cmocka_unit_test(test_idx_gz_stream),
        cmocka_unit_test(test_idx_load_and_rewind),
        cmocka_unit_test(test_idx_truncated),
        cmocka_unit_test(test_idx_bad_headers),
        cmocka_unit_test(test_idx_absurd_dims),
        cmocka_unit_test(test_named_data_dir_and_range),
        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test(test_png_gray_classes),
        cmocka_unit_test(test_png_colour),
        cmocka_unit_test(test_png_palette_and_gray_alpha),
        cmocka_unit_test(test_png_errors),
        cmocka_unit_test(test_png_absurd_size),
        cmocka_unit_test(test_csv_basic),
        cmocka_unit_test(test_holdout_split),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_preproc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
