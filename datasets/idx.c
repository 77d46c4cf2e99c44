/*
 * idx.c - IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
 *
 * Byte layout of an IDX file (all integers big-endian):
 *   1. bytes 0-1   0x00 0x00
 *   2. byte  2     element type: 0x08 unsigned byte (the only type read here;
 *                  0x09 s8, 0x0B s16, 0x0C s32, 0x0D f32, 0x0E f64 are refused)
 *   3. byte  3     number of dimensions D (1..4 here)
 *   4. 4*D bytes   the dimensions, u32 each; dim 0 is the sample count n
 *   5. the elements, row-major (last dimension fastest), n * prod(dims[1..]) bytes
 *
 * An images file has D = 3 (n, h, w) -> sample shape (h, w, 1), D = 4
 * (n, h, w, c) -> (h, w, c), or D = 2 (n, f) -> (f, 1, 1). A labels file has
 * D = 1 (n). gzip is recognised by zlib from the magic bytes, never from the
 * file name: gzopen/gzread read plain files transparently.
 *
 * Both files are streamed side by side: next() reads only the requested samples
 * through a bounded buffer. The labels file is scanned once at open (it is one
 * byte per sample) to validate it and find n_classes; a plain images file is
 * checked against its size at open, a gzip one can only be found short while
 * reading.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ds_internal.h"

typedef struct idx_reader {
    char *img_path, *lbl_path;
    gzFile img, lbl;
    int64_t img_off, lbl_off; /* header size = offset of the first element */
    size_t sample_bytes;      /* h * w * c */
    int64_t next;             /* index of the next sample to read */
    uint8_t *buf;             /* (buf_samples, sample_bytes) read buffer */
    uint8_t *lbuf;            /* (buf_samples) */
    int buf_samples;
} idx_reader;

static void idx_destroy(void *impl)
{
    idx_reader *r = impl;
    if (!r) return;
    if (r->img) gzclose(r->img);
    if (r->lbl) gzclose(r->lbl);
    free(r->img_path);
    free(r->lbl_path);
    free(r->buf);
    free(r->lbuf);
    free(r);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static const char *idx_type_name(int t)
{
    switch (t) {
    case 0x08:
        return "unsigned byte";
    case 0x09:
        return "signed byte";
    case 0x0B:
        return "int16";
    case 0x0C:
        return "int32";
    case 0x0D:
        return "float32";
    case 0x0E:
        return "float64";
    default:
        return "unknown";
    }
}

/* Reads and checks the header (items 1-4); fills ndims, dims and *off. */
static tml_status read_header(gzFile f, const char *path, int *ndims, uint32_t dims[4], int64_t *off)
{
    uint8_t m[4], d[16];
    size_t got;
    tml_status st = tml_ds_gzread(f, path, m, 4, &got);
    if (st != TML_OK) return st;
    if (got < 4) return tml_error(TML_ERR_FORMAT, "%s: truncated: file too short for an IDX header", path);
    if (m[0] != 0 || m[1] != 0)
        return tml_error(TML_ERR_FORMAT,
                         "%s: not an IDX file (magic %02x %02x %02x %02x, expected 00 00 08 0N)", path, m[0],
                         m[1], m[2], m[3]);
    if (m[2] != 0x08)
        return tml_error(
            TML_ERR_UNSUPPORTED,
            "%s: IDX element type 0x%02x (%s) is not supported; only 0x08 (unsigned byte) is read", path,
            m[2], idx_type_name(m[2]));
    if (m[3] < 1 || m[3] > 4)
        return tml_error(TML_ERR_FORMAT, "%s: IDX header declares %d dimensions (1..4 expected)", path, m[3]);
    *ndims = m[3];
    st = tml_ds_gzread(f, path, d, (size_t)4 * m[3], &got);
    if (st != TML_OK) return st;
    if (got < (size_t)4 * m[3]) return tml_error(TML_ERR_FORMAT, "%s: truncated IDX header", path);
    for (int i = 0; i < m[3]; i++) {
        dims[i] = be32(d + 4 * i);
        if (dims[i] < 1) return tml_error(TML_ERR_FORMAT, "%s: IDX dimension %d is 0", path, i);
    }
    if (dims[0] > (uint32_t)TML_DS_MAX_COUNT)
        return tml_error(TML_ERR_FORMAT, "%s: IDX header declares %lu samples (at most %lld)", path,
                         (unsigned long)dims[0], (long long)TML_DS_MAX_COUNT);
    *off = 4 + 4 * (int64_t)m[3];
    return TML_OK;
}

/* Scans every label once: checks the count is really there and finds the max. */
static tml_status scan_labels(idx_reader *r, int64_t n, int *max_label)
{
    uint8_t buf[1 << 16];
    int64_t done = 0;
    int mx = 0;
    while (done < n) {
        size_t want = n - done < (int64_t)sizeof buf ? (size_t)(n - done) : sizeof buf, got;
        tml_status st = tml_ds_gzread(r->lbl, r->lbl_path, buf, want, &got);
        if (st != TML_OK) return st;
        for (size_t i = 0; i < got; i++)
            if (buf[i] > mx) mx = buf[i];
        done += (int64_t)got;
        if (got < want)
            return tml_error(TML_ERR_FORMAT,
                             "%s: truncated: header declares %lld labels but the file ends after %lld",
                             r->lbl_path, (long long)n, (long long)done);
    }
    *max_label = mx;
    return tml_ds_gzseek(r->lbl, r->lbl_path, r->lbl_off);
}

static tml_status idx_read(tml_dataset *ds, int n, float *x, int32_t *y)
{
    idx_reader *r = ds->impl;
    const size_t sb = r->sample_bytes;
    for (int done = 0; done < n;) {
        int k = n - done < r->buf_samples ? n - done : r->buf_samples;
        size_t got;
        tml_status st = tml_ds_gzread(r->img, r->img_path, r->buf, (size_t)k * sb, &got);
        if (st != TML_OK) return st;
        if (got < (size_t)k * sb)
            return tml_error(
                TML_ERR_FORMAT, "%s: truncated: header declares %lld images but the data ends in image %lld",
                r->img_path, (long long)ds->info.count, (long long)(r->next + (int64_t)(got / sb)));
        st = tml_ds_gzread(r->lbl, r->lbl_path, r->lbuf, (size_t)k, &got);
        if (st != TML_OK) return st;
        if (got < (size_t)k)
            return tml_error(TML_ERR_FORMAT, "%s: truncated: the labels end at sample %lld (file changed?)",
                             r->lbl_path, (long long)(r->next + (int64_t)got));
        float *dst = x + (size_t)done * sb;
        for (size_t i = 0; i < (size_t)k * sb; i++) dst[i] = (float)r->buf[i];
        for (int i = 0; i < k; i++) y[done + i] = r->lbuf[i];
        done += k;
        r->next += k;
    }
    return TML_OK;
}

static tml_status idx_rewind(tml_dataset *ds)
{
    idx_reader *r = ds->impl;
    tml_status st = tml_ds_gzseek(r->img, r->img_path, r->img_off);
    if (st == TML_OK) st = tml_ds_gzseek(r->lbl, r->lbl_path, r->lbl_off);
    if (st == TML_OK) r->next = 0;
    return st;
}

static const tml_ds_vtable idx_vtable = {idx_read, idx_rewind, idx_destroy};

static tml_status open_files(tml_dataset *ds, idx_reader *r, int declared_classes)
{
    int nd_img, nd_lbl;
    uint32_t di[4], dl[4];
    tml_status st = tml_ds_gzopen(r->img_path, &r->img);
    if (st == TML_OK) st = read_header(r->img, r->img_path, &nd_img, di, &r->img_off);
    if (st != TML_OK) return st;
    if (nd_img == 1)
        return tml_error(TML_ERR_FORMAT,
                         "%s: an IDX images file needs 2-4 dimensions (n,h,w[,c]) but this one has 1 "
                         "(a labels file? the spec is idx:IMAGES,LABELS)",
                         r->img_path);
    st = tml_ds_gzopen(r->lbl_path, &r->lbl);
    if (st == TML_OK) st = read_header(r->lbl, r->lbl_path, &nd_lbl, dl, &r->lbl_off);
    if (st != TML_OK) return st;
    if (nd_lbl != 1)
        return tml_error(TML_ERR_FORMAT, "%s: an IDX labels file has 1 dimension (n) but this one has %d",
                         r->lbl_path, nd_lbl);
    if (di[0] != dl[0])
        return tml_error(TML_ERR_FORMAT, "IDX count mismatch: %s has %lu images but %s has %lu labels",
                         r->img_path, (unsigned long)di[0], r->lbl_path, (unsigned long)dl[0]);

    /* sample shape */
    int64_t h = di[1], w = nd_img >= 3 ? di[2] : 1, c = nd_img == 4 ? di[3] : 1;
    if (h > TML_DS_MAX_SAMPLE_VALUES || w > TML_DS_MAX_SAMPLE_VALUES || c > TML_DS_MAX_SAMPLE_VALUES ||
        h * w > TML_DS_MAX_SAMPLE_VALUES || h * w * c > TML_DS_MAX_SAMPLE_VALUES)
        return tml_error(TML_ERR_FORMAT,
                         "%s: IDX sample of %lldx%lldx%lld values is too large (at most %lld)", r->img_path,
                         (long long)h, (long long)w, (long long)c, (long long)TML_DS_MAX_SAMPLE_VALUES);
    ds->info.count = di[0];
    ds->info.h = (int)h;
    ds->info.w = (int)w;
    ds->info.c = (int)c;
    r->sample_bytes = (size_t)(h * w * c);

    /* A plain file must hold every sample it declares (gzip: checked while reading). */
    if (gzdirect(r->img)) {
        struct stat sb;
        if (stat(r->img_path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            int64_t need = r->img_off + ds->info.count * (int64_t)r->sample_bytes;
            if ((int64_t)sb.st_size < need)
                return tml_error(
                    TML_ERR_FORMAT,
                    "%s: truncated: header declares %lld images of %lldx%lldx%lld bytes (%lld bytes "
                    "with the header) but the file has %lld bytes",
                    r->img_path, (long long)ds->info.count, (long long)h, (long long)w, (long long)c,
                    (long long)need, (long long)sb.st_size);
        }
    }

    int max_label = 0;
    st = scan_labels(r, ds->info.count, &max_label);
    if (st != TML_OK) return st;
    if (declared_classes > 0) {
        if (max_label >= declared_classes)
            return tml_error(TML_ERR_FORMAT, "%s: label %d is out of range: %s has %d classes (0..%d)",
                             r->lbl_path, max_label, ds->info.name, declared_classes, declared_classes - 1);
        ds->info.n_classes = declared_classes;
    } else {
        ds->info.n_classes = max_label + 1;
    }

    /* bounded read buffer: at least one sample, about TML_DS_READ_BUFFER bytes */
    size_t per = TML_DS_READ_BUFFER / r->sample_bytes;
    if (per < 1) per = 1;
    if ((int64_t)per > ds->info.count) per = (size_t)ds->info.count;
    r->buf_samples = (int)per;
    r->buf = malloc(per * r->sample_bytes);
    r->lbuf = malloc(per);
    if (!r->buf || !r->lbuf) return tml_error(TML_ERR_NOMEM, "out of memory");
    return TML_OK;
}

tml_status tml_ds_open_idx(const char *images, const char *labels, int declared_classes,
                           const char *const *class_names, const char *name, tml_dataset **out)
{
    *out = NULL;
    tml_dataset *ds = tml_ds_new(&idx_vtable);
    idx_reader *r = calloc(1, sizeof *r);
    if (!ds || !r) {
        free(ds);
        free(r);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    ds->impl = r;
    ds->values_u8 = 1;
    ds->info.raw_max = 255.0f;
    ds->info.labels = class_names; /* static strings of the registry, or NULL */
    tml_ds_set_name(ds, NULL, name);
    r->img_path = tml_strdup(images);
    r->lbl_path = tml_strdup(labels);
    tml_status st = (r->img_path && r->lbl_path) ? open_files(ds, r, declared_classes)
                                                 : tml_error(TML_ERR_NOMEM, "out of memory");
    if (st != TML_OK) {
        tml_dataset_free(ds);
        return st;
    }
    *out = ds;
    return TML_OK;
}
