/*
 * fuzz_dataset.c - libFuzzer targets for the dataset readers. One source,
 * three executables, chosen at compile time by FUZZ_KIND:
 *
 *   1 idx   the input is split in two: bytes 0-1 (u16, little-endian) give
 *           the length of the images file, which follows; the rest is the
 *           labels file. Opened as "idx:DIR/images,DIR/labels".
 *   2 csv   the input is the file; opened as "csv:DIR/data.csv".
 *   3 png   the input is the one image of a PNG folder: DIR/png/a/0.png,
 *           opened as "png:DIR/png". The CRCs of its chunks are recomputed
 *           first (the system libpng checks them), so mutations reach the
 *           decoder instead of stopping at the CRC.
 *
 * Files go to a private temporary directory made once per process (removed
 * at exit). After a
 * successful open every sample is read (in batches of 7, a size that leaves a
 * remainder), the dataset is rewound and read once more, and then loaded into
 * memory with a limit, which covers next(), rewind() and load() on whatever
 * open() accepted. Datasets whose samples exceed FUZZ_MAX_SAMPLE values are
 * only opened (a header may legitimately declare huge images).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tinyml/tml_dataset.h"

#ifndef FUZZ_KIND
#define FUZZ_KIND 1
#endif

#define FUZZ_MAX_SAMPLE ((int64_t)1 << 20)
#define FUZZ_MAX_READ 4096 /* samples read per pass */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if FUZZ_KIND == 3
#include <zlib.h>

/* Rewrites the CRC of every complete chunk after the 8-byte signature. */
static void fix_png_crcs(uint8_t *p, size_t n)
{
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t len = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 | (uint32_t)p[pos + 2] << 8 | p[pos + 3];
        if (len > n - pos - 12) break;
        uint32_t crc = (uint32_t)crc32(0, p + pos + 4, len + 4);
        uint8_t *c = p + pos + 8 + len;
        c[0] = (uint8_t)(crc >> 24);
        c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8);
        c[3] = (uint8_t)crc;
        pos += 12 + (size_t)len;
    }
}
#endif

static char dir[256];

static int write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

/* Removes the temporary directory when the fuzzer exits. */
static void cleanup(void)
{
    static const char *const files[] = {"images", "labels", "data.csv", "png/a/0.png", "png/a", "png", ""};
    char p[512];
    for (int i = 0; files[i][0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        remove(p);
    }
    rmdir(dir);
}

static int setup(void)
{
    if (dir[0]) return 0;
    char tmpl[] = "/tmp/tml-fuzz-ds.XXXXXX";
    if (!mkdtemp(tmpl)) return -1;
    snprintf(dir, sizeof dir, "%s", tmpl);
    atexit(cleanup);
    char p[512];
    snprintf(p, sizeof p, "%s/png", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/png/a", dir);
    mkdir(p, 0700);
    return 0;
}

static void read_all(tml_dataset *ds)
{
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    int64_t numel = (int64_t)info->h * info->w * info->c;
    if (info->h < 1 || info->w < 1 || info->c < 1 || numel > FUZZ_MAX_SAMPLE) return;
    enum { B = 7 };
    float *x = malloc(sizeof(float) * (size_t)numel * B);
    int32_t *y = malloc(sizeof(int32_t) * B);
    if (x && y) {
        for (int pass = 0; pass < 2; pass++) {
            int64_t seen = 0;
            int got = 1;
            while (got > 0 && seen < FUZZ_MAX_READ) {
                if (tml_dataset_next(ds, B, x, y, &got) != TML_OK) break;
                seen += got;
            }
            if (tml_dataset_rewind(ds) != TML_OK) break;
        }
    }
    free(x);
    free(y);
    tml_samples *s = NULL;
    if (tml_dataset_load(ds, 64, &s) == TML_OK && s->n > 0) {
        int64_t idx[2] = {0, s->n - 1};
        float *gx = malloc(sizeof(float) * (size_t)numel * 2);
        int32_t gy[2];
        if (gx) tml_samples_gather(s, idx, 2, gx, gy);
        free(gx);
    }
    tml_samples_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (setup()) return 0;
    char spec[1200], a[512], b[512];
#if FUZZ_KIND == 1
    if (size < 2) return 0;
    size_t n_img = (size_t)data[0] | (size_t)data[1] << 8;
    if (n_img > size - 2) n_img = size - 2;
    snprintf(a, sizeof a, "%s/images", dir);
    snprintf(b, sizeof b, "%s/labels", dir);
    if (write_file(a, data + 2, n_img) || write_file(b, data + 2 + n_img, size - 2 - n_img)) return 0;
    snprintf(spec, sizeof spec, "idx:%s,%s", a, b);
#elif FUZZ_KIND == 2
    snprintf(a, sizeof a, "%s/data.csv", dir);
    (void)b;
    if (write_file(a, data, size)) return 0;
    snprintf(spec, sizeof spec, "csv:%s", a);
#else
    snprintf(a, sizeof a, "%s/png/a/0.png", dir);
    snprintf(b, sizeof b, "%s/png", dir);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    fix_png_crcs(copy, size);
    int werr = write_file(a, copy, size);
    free(copy);
    if (werr) return 0;
    snprintf(spec, sizeof spec, "png:%s", b);
#endif
    tml_dataset *ds = NULL;
    if (tml_dataset_open(spec, NULL, &ds) != TML_OK) return 0;
    read_all(ds);
    tml_dataset_free(ds);
    return 0;
}
