/*
 * dataset.c - the dataset front end: spec parsing and the registry of named
 * datasets, the streaming wrapper around the readers (position, end of data,
 * label range check), loading into memory, gathering and preprocessing.
 *
 * The readers live in idx.c, png_folder.c and csv.c; ds_internal.h is the
 * contract between them and this file.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ds_internal.h"

/* ---- shared helpers -------------------------------------------------------------- */

tml_dataset *tml_ds_new(const tml_ds_vtable *vt)
{
    tml_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    ds->vt = vt;
    return ds;
}

void tml_ds_set_name(tml_dataset *ds, const char *prefix, const char *name)
{
    /* Explicit truncation to the fixed buffer (snprintf would warn about it). */
    size_t cap = sizeof ds->info.name - 1, pos = 0;
    for (const char *parts[2] = {prefix, name}, **p = parts; p < parts + 2; p++) {
        if (!*p) continue;
        size_t k = strlen(*p);
        if (k > cap - pos) k = cap - pos;
        memcpy(ds->info.name + pos, *p, k);
        pos += k;
    }
    ds->info.name[pos] = '\0';
}

tml_status tml_ds_gzopen(const char *path, gzFile *out)
{
    *out = NULL;
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        if (errno) return tml_error(TML_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        return tml_error(TML_ERR_NOMEM, "cannot open %s: out of memory", path);
    }
    /* A large zlib buffer: most reads are sequential and big. */
    gzbuffer(f, 1u << 17);
    *out = f;
    return TML_OK;
}

tml_status tml_ds_gzread(gzFile f, const char *path, void *buf, size_t n, size_t *got)
{
    size_t have = 0;
    while (have < n) {
        size_t want = n - have;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(f, (uint8_t *)buf + have, (unsigned)want);
        if (r < 0) {
            int errnum = 0;
            const char *msg = gzerror(f, &errnum);
            *got = have;
            if (errnum == Z_ERRNO) return tml_error(TML_ERR_IO, "%s: read error: %s", path, strerror(errno));
            return tml_error(TML_ERR_FORMAT, "%s: truncated or corrupt gzip data (zlib: %s)", path,
                             msg && *msg ? msg : "error");
        }
        if (r == 0) break;
        have += (size_t)r;
    }
    *got = have;
    return TML_OK;
}

tml_status tml_ds_gzseek(gzFile f, const char *path, int64_t off)
{
    /* gzrewind + forward seek works for plain files (lseek) and gzip streams
     * (re-decompression from the start). */
    if (gzrewind(f) != 0) return tml_error(TML_ERR_IO, "%s: cannot rewind", path);
    if (off > 0 && gzseek(f, (z_off_t)off, SEEK_SET) != (z_off_t)off)
        return tml_error(TML_ERR_FORMAT, "%s: truncated: cannot seek to byte %lld", path, (long long)off);
    return TML_OK;
}

/* ---- named datasets ------------------------------------------------------------------ */

static const char *const fashion_labels[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
static const char *const digit_labels[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

typedef struct named_dataset {
    const char *name;
    const char *default_dir; /* used when $TML_DATA_DIR is not set */
    const char *install_hint;
    int n_classes;
    const char *const *labels;
    /* IDX file names per split (without ".gz": both forms are looked for) */
    const char *train_images, *train_labels, *test_images, *test_labels;
} named_dataset;

static const named_dataset named_datasets[] = {
    {"fashion-mnist", "/usr/share/datasets/fashion-mnist",
     "install Debian package dataset-fashion-mnist (scripts/install-deps.sh)", 10, fashion_labels,
     "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
     "t10k-labels-idx1-ubyte"},
    {"mnist", "/usr/share/datasets/mnist",
     "put the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
     "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) there, or set TML_DATA_DIR",
     10, digit_labels, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
     "t10k-labels-idx1-ubyte"},
};
#define N_NAMED ((int)(sizeof named_datasets / sizeof named_datasets[0]))

static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Finds DIR/BASE.gz or DIR/BASE (unpacked); 0 when neither exists. */
static int find_idx_file(const char *dir, const char *base, char *out, size_t cap)
{
    int k = snprintf(out, cap, "%s/%s.gz", dir, base);
    if (k > 0 && (size_t)k < cap && path_exists(out)) return 1;
    k = snprintf(out, cap, "%s/%s", dir, base);
    return k > 0 && (size_t)k < cap && path_exists(out);
}

static tml_status open_named(const named_dataset *nd, const char *split, tml_dataset **out)
{
    int test;
    if (strcmp(split, "train") == 0)
        test = 0;
    else if (strcmp(split, "test") == 0)
        test = 1;
    else
        return tml_error(TML_ERR_INVALID, "unknown split '%s' for %s: valid splits are train, test", split,
                         nd->name);

    char dir[4096];
    const char *root = getenv("TML_DATA_DIR");
    int k = root && *root ? snprintf(dir, sizeof dir, "%s/%s", root, nd->name)
                          : snprintf(dir, sizeof dir, "%s", nd->default_dir);
    if (k < 0 || (size_t)k >= sizeof dir) return tml_error(TML_ERR_INVALID, "TML_DATA_DIR is too long");

    char images[4200], labels[4200];
    if (!find_idx_file(dir, test ? nd->test_images : nd->train_images, images, sizeof images) ||
        !find_idx_file(dir, test ? nd->test_labels : nd->train_labels, labels, sizeof labels))
        return tml_error(TML_ERR_IO, "%s not found in %s: %s", nd->name, dir, nd->install_hint);

    char name[64];
    snprintf(name, sizeof name, "%s:%s", nd->name, test ? "test" : "train");
    return tml_ds_open_idx(images, labels, nd->n_classes, nd->labels, name, out);
}

/* ---- spec parsing -------------------------------------------------------------------- */

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Parses "HxWxC" (each 1..2^24). Returns 1 on success. */
static int parse_shape(const char *s, int shape[3])
{
    for (int i = 0; i < 3; i++) {
        char *end;
        if (*s < '0' || *s > '9') return 0;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || v < 1 || v > TML_DS_MAX_SAMPLE_VALUES) return 0;
        shape[i] = (int)v;
        s = end;
        if (i < 2) {
            if (*s != 'x') return 0;
            s++;
        }
    }
    return *s == '\0';
}

static tml_status open_csv_spec(const char *rest, tml_dataset **out)
{
    /* csv:FILE or csv:FILE:HxWxC. The suffix after the last ':' is a shape when it
     * is made of digits and 'x' only (a file name rarely is). */
    const char *colon = strrchr(rest, ':');
    if (colon && colon[1] && strspn(colon + 1, "0123456789x") == strlen(colon + 1) &&
        strchr(colon + 1, 'x')) {
        int shape[3];
        if (!parse_shape(colon + 1, shape))
            return tml_error(TML_ERR_INVALID,
                             "csv:%s: bad shape '%s': expected HxWxC with each >= 1, e.g. 28x28x1", rest,
                             colon + 1);
        size_t n = (size_t)(colon - rest);
        char *file = malloc(n + 1);
        if (!file) return tml_error(TML_ERR_NOMEM, "out of memory");
        memcpy(file, rest, n);
        file[n] = '\0';
        tml_status st = n ? tml_ds_open_csv(file, shape, out)
                          : tml_error(TML_ERR_INVALID, "csv: expects csv:FILE or csv:FILE:HxWxC");
        free(file);
        return st;
    }
    if (!*rest) return tml_error(TML_ERR_INVALID, "csv: expects csv:FILE or csv:FILE:HxWxC");
    return tml_ds_open_csv(rest, NULL, out);
}

static tml_status open_idx_spec(const char *rest, tml_dataset **out)
{
    const char *comma = strrchr(rest, ',');
    if (!comma || comma == rest || !comma[1])
        return tml_error(TML_ERR_INVALID,
                         "idx:%s: expected idx:IMAGES,LABELS (two files separated by a comma)", rest);
    size_t n = (size_t)(comma - rest);
    char *images = malloc(n + 1);
    if (!images) return tml_error(TML_ERR_NOMEM, "out of memory");
    memcpy(images, rest, n);
    images[n] = '\0';
    char name[64];
    snprintf(name, sizeof name, "idx:%.59s", rest);
    tml_status st = tml_ds_open_idx(images, comma + 1, 0, NULL, name, out);
    free(images);
    return st;
}

tml_status tml_dataset_open(const char *spec, const char *default_split, tml_dataset **out)
{
    if (!out) return tml_error(TML_ERR_INVALID, "tml_dataset_open: out is NULL");
    *out = NULL;
    if (!spec || !*spec) return tml_error(TML_ERR_INVALID, "empty dataset spec");

    if (starts_with(spec, "idx:")) return open_idx_spec(spec + 4, out);
    if (starts_with(spec, "png:")) {
        if (!spec[4]) return tml_error(TML_ERR_INVALID, "png: expects png:DIR");
        return tml_ds_open_png(spec + 4, out);
    }
    if (starts_with(spec, "csv:")) return open_csv_spec(spec + 4, out);

    for (int i = 0; i < N_NAMED; i++) {
        const named_dataset *nd = &named_datasets[i];
        size_t k = strlen(nd->name);
        if (strncmp(spec, nd->name, k) != 0 || (spec[k] != '\0' && spec[k] != ':')) continue;
        const char *split =
            spec[k] == ':' ? spec + k + 1 : (default_split && *default_split ? default_split : "train");
        return open_named(nd, split, out);
    }

    if (is_directory(spec)) return tml_ds_open_png(spec, out);
    if ((ends_with(spec, ".csv") || ends_with(spec, ".csv.gz")) && path_exists(spec))
        return tml_ds_open_csv(spec, NULL, out);
    return tml_error(TML_ERR_INVALID,
                     "unknown dataset '%s': use fashion-mnist[:train|:test], mnist[:train|:test], "
                     "idx:IMAGES,LABELS, png:DIR (or an existing directory) or csv:FILE[:HxWxC]",
                     spec);
}

void tml_dataset_free(tml_dataset *ds)
{
    if (!ds) return;
    if (ds->vt && ds->vt->destroy) ds->vt->destroy(ds->impl);
    for (int i = 0; i < ds->n_owned_labels; i++) free(ds->owned_labels[i]);
    free(ds->owned_labels);
    free(ds->class_map);
    free(ds);
}

const tml_dataset_info *tml_dataset_get_info(const tml_dataset *ds)
{
    return &ds->info;
}

/* ---- streaming ------------------------------------------------------------------------- */

static int64_t sample_values(const tml_dataset *ds)
{
    return (int64_t)ds->info.h * ds->info.w * ds->info.c;
}

/* Reads n samples and checks their labels; `first` is the index of the first one
 * (for messages). */
static tml_status read_checked(tml_dataset *ds, int n, float *x, int32_t *y, int64_t first)
{
    tml_status st = ds->vt->read(ds, n, x, y);
    if (st != TML_OK) return st;
    const int from = ds->class_map ? ds->map_from : ds->info.n_classes;
    for (int i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= from)
            return tml_error(TML_ERR_FORMAT, "%s: label %d of sample %lld is outside [0, %d)", ds->info.name,
                             (int)y[i], (long long)(first + i), from);
        if (ds->class_map) y[i] = ds->class_map[y[i]];
    }
    return TML_OK;
}

tml_status tml_dataset_map_classes(tml_dataset *ds, int n, const char *const *names)
{
    if (!ds || n < 1 || !names) return tml_error(TML_ERR_INVALID, "tml_dataset_map_classes: bad arguments");
    if (!ds->info.labels) return tml_error(TML_ERR_INVALID, "%s has no class names to map", ds->info.name);
    if (ds->class_map) return tml_error(TML_ERR_INVALID, "%s: classes already mapped", ds->info.name);
    const int k = ds->info.n_classes;
    int32_t *map = malloc(sizeof(int32_t) * (size_t)(k ? k : 1));
    char **own = calloc((size_t)n, sizeof(char *));
    if (!map || !own) {
        free(map);
        free(own);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    int identity = k == n;
    for (int i = 0; i < k; i++) {
        map[i] = -1;
        for (int j = 0; j < n && map[i] < 0; j++)
            if (names[j] && strcmp(ds->info.labels[i], names[j]) == 0) map[i] = j;
        if (map[i] < 0) {
            char known[400] = "";
            for (int j = 0, l = 0; j < n && l < (int)sizeof known - 8; j++)
                l += snprintf(known + l, sizeof known - (size_t)l, "%s'%s'", j ? ", " : "", names[j] ? names[j] : "");
            tml_status st = tml_error(TML_ERR_SHAPE,
                                      "%s: class '%s' is not one of the model's classes (%s): rename the class "
                                      "folder or use a model trained on these classes",
                                      ds->info.name, ds->info.labels[i], known);
            free(map);
            free(own);
            return st;
        }
        identity &= map[i] == i;
    }
    if (identity) { /* same names in the same order: nothing to do */
        free(map);
        free(own);
        return TML_OK;
    }
    for (int j = 0; j < n; j++) {
        if (!(own[j] = tml_strdup(names[j] ? names[j] : ""))) {
            for (int q = 0; q < j; q++) free(own[q]);
            free(own);
            free(map);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
    }
    for (int i = 0; i < ds->n_owned_labels; i++) free(ds->owned_labels[i]);
    free(ds->owned_labels);
    ds->owned_labels = own;
    ds->n_owned_labels = n;
    ds->info.labels = (const char *const *)own;
    ds->map_from = k;
    ds->info.n_classes = n;
    ds->class_map = map;
    return TML_OK;
}

tml_status tml_dataset_next(tml_dataset *ds, int max, float *x, int32_t *y, int *got)
{
    if (!got) return tml_error(TML_ERR_INVALID, "tml_dataset_next: got is NULL");
    *got = 0;
    if (!ds || max < 0 || (max > 0 && !x))
        return tml_error(TML_ERR_INVALID, "tml_dataset_next: bad arguments");
    if (ds->broken)
        return tml_error(TML_ERR_INVALID,
                         "%s: a previous read failed; rewind the dataset before reading again",
                         ds->info.name);
    int64_t left = ds->info.count - ds->pos;
    int n = (int64_t)max < left ? max : (int)left;
    if (n <= 0) return TML_OK;

    tml_status st = TML_OK;
    if (y) {
        st = read_checked(ds, n, x, y, ds->pos);
    } else {
        /* Caller does not want labels: read in chunks through a small local buffer. */
        int32_t tmp[256];
        const int64_t sv = sample_values(ds);
        for (int done = 0; done < n && st == TML_OK; done += 256) {
            int k = n - done < 256 ? n - done : 256;
            st = read_checked(ds, k, x + (int64_t)done * sv, tmp, ds->pos + done);
        }
    }
    if (st != TML_OK) {
        ds->broken = 1;
        return st;
    }
    ds->pos += n;
    *got = n;
    return TML_OK;
}

tml_status tml_dataset_rewind(tml_dataset *ds)
{
    if (!ds) return tml_error(TML_ERR_INVALID, "tml_dataset_rewind: dataset is NULL");
    tml_status st = ds->vt->rewind(ds);
    if (st != TML_OK) {
        ds->broken = 1;
        return st;
    }
    ds->pos = 0;
    ds->broken = 0;
    return TML_OK;
}

/* ---- held-out splits ------------------------------------------------------------------- */

/* A view of `base` that returns only the samples of one part of a seeded
 * split: round(frac * count) samples chosen uniformly (Floyd's algorithm
 * over a bitmap) are the held-out part, the others the training part. The
 * view streams the base in order and keeps one scratch batch. */
typedef struct holdout {
    tml_dataset *base;
    uint8_t *held;    /* (ceil(count / 8)) bit i: sample i is held out */
    int part;         /* 1: the held-out samples, 0: the rest */
    int64_t next;     /* index in the base of the next sample to look at */
    float *sx;        /* scratch batch (cap samples) */
    int32_t *sy;
    int cap;
} holdout;

static void holdout_destroy(void *impl)
{
    holdout *h = impl;
    if (!h) return;
    tml_dataset_free(h->base);
    free(h->held);
    free(h->sx);
    free(h->sy);
    free(h);
}

static int is_held(const holdout *h, int64_t i) { return (h->held[i >> 3] >> (i & 7)) & 1; }

static tml_status holdout_read(tml_dataset *ds, int n, float *x, int32_t *y)
{
    holdout *h = ds->impl;
    const int64_t sv = sample_values(ds), total = h->base->info.count;
    int done = 0;
    while (done < n) {
        /* the base's next chunk, cut to the scratch size */
        int want = h->cap;
        if ((int64_t)want > total - h->next) want = (int)(total - h->next);
        if (want <= 0)
            return tml_error(TML_ERR_FORMAT, "%s: ended after %d of %d samples", ds->info.name, done, n);
        /* never read past the last sample this call needs: the base position
         * must stay where the next call continues */
        int64_t need = n - done, j = h->next, k = 0;
        while (k < want && need > 0) {
            need -= is_held(h, j) == h->part;
            j++;
            k++;
        }
        int got = 0;
        tml_status st = tml_dataset_next(h->base, (int)k, h->sx, h->sy, &got);
        if (st) return st;
        if (got != k) return tml_error(TML_ERR_FORMAT, "%s: the data ended early", ds->info.name);
        for (int i = 0; i < got; i++, h->next++) {
            if (is_held(h, h->next) != h->part) continue;
            memcpy(x + (int64_t)done * sv, h->sx + (int64_t)i * sv, sizeof(float) * (size_t)sv);
            y[done++] = h->sy[i];
        }
    }
    return TML_OK;
}

static tml_status holdout_rewind(tml_dataset *ds)
{
    holdout *h = ds->impl;
    h->next = 0;
    return tml_dataset_rewind(h->base);
}

static const tml_ds_vtable holdout_vtable = {holdout_read, holdout_rewind, holdout_destroy};

tml_status tml_dataset_holdout(tml_dataset *base, double frac, uint64_t seed, int held_out, tml_dataset **out)
{
    *out = NULL;
    if (!base) return tml_error(TML_ERR_INVALID, "tml_dataset_holdout: no dataset");
    const int64_t n = base->info.count, k = (int64_t)(frac * (double)n + 0.5);
    if (!(frac > 0.0 && frac < 1.0) || k < 1 || k >= n) {
        tml_status st = tml_error(TML_ERR_INVALID,
                                  "%s: a held-out fraction of %g of its %lld samples leaves %s part empty", base->info.name,
                                  frac, (long long)n, k < 1 ? "the held-out" : "the other");
        tml_dataset_free(base);
        return st;
    }
    tml_dataset *ds = tml_ds_new(&holdout_vtable);
    holdout *h = calloc(1, sizeof *h);
    const int64_t sv = sample_values(base);
    int cap = (int)((int64_t)(TML_DS_READ_BUFFER / sizeof(float)) / sv);
    if (cap < 1) cap = 1;
    if (h) {
        h->base = base;
        h->part = held_out ? 1 : 0;
        h->cap = cap;
        h->held = calloc((size_t)(n / 8 + 1), 1);
        h->sx = malloc(sizeof(float) * (size_t)(cap * sv));
        h->sy = malloc(sizeof(int32_t) * (size_t)cap);
    }
    if (!ds || !h || !h->held || !h->sx || !h->sy) {
        if (h) holdout_destroy(h);
        else tml_dataset_free(base);
        free(ds);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    ds->impl = h;
    /* Floyd: k distinct indices of [0, n), each subset equally likely */
    tml_rng r;
    tml_rng_seed(&r, seed ^ 0x686f6c646f7574ull); /* "holdout": independent of other seeded choices */
    for (int64_t j = n - k; j < n; j++) {
        int64_t t = (int64_t)(tml_rng_uniform(&r) * (double)(j + 1));
        if (t > j) t = j;
        if (h->held[t >> 3] >> (t & 7) & 1) t = j;
        h->held[t >> 3] |= (uint8_t)(1u << (t & 7));
    }
    ds->info = base->info;
    ds->info.count = held_out ? k : n - k;
    ds->values_u8 = base->values_u8;
    char name[64];
    snprintf(name, sizeof name, "%.40s[%s %.0f%%]", base->info.name, held_out ? "held-out" : "rest",
             100.0 * (held_out ? frac : 1.0 - frac));
    tml_ds_set_name(ds, NULL, name);
    *out = ds;
    return TML_OK;
}

/* ---- loading into memory ------------------------------------------------------------- */

void tml_samples_free(tml_samples *s)
{
    if (!s) return;
    free(s->u8);
    free(s->f32);
    free(s->labels);
    free(s);
}

/* Grows *p (elements of `elem` bytes) to hold at least `need` of them, doubling
 * but never beyond `most` (the final size). */
static int grow(void **p, int64_t *cap, int64_t need, int64_t most, size_t elem)
{
    if (need <= *cap) return 1;
    int64_t c = *cap ? *cap : 1;
    while (c < need) c *= 2;
    if (c > most) c = most;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

tml_status tml_dataset_load(tml_dataset *ds, int64_t limit, tml_samples **out)
{
    if (!out) return tml_error(TML_ERR_INVALID, "tml_dataset_load: out is NULL");
    *out = NULL;
    if (!ds) return tml_error(TML_ERR_INVALID, "tml_dataset_load: dataset is NULL");
    const int64_t sv = sample_values(ds);
    int64_t n = ds->info.count - ds->pos;
    if (limit > 0 && limit < n) n = limit;
    if (n < 0) n = 0;
    if (n > 0 && n > TML_MAX_NUMEL / sv)
        return tml_error(
            TML_ERR_NOMEM,
            "%s: %lld samples of %lld values are too many to load into memory (limit %lld values); "
            "load fewer samples or stream the dataset",
            ds->info.name, (long long)n, (long long)sv, (long long)TML_MAX_NUMEL);

    tml_samples *s = calloc(1, sizeof *s);
    if (!s) return tml_error(TML_ERR_NOMEM, "out of memory");
    s->h = ds->info.h;
    s->w = ds->info.w;
    s->c = ds->info.c;
    s->n_classes = ds->info.n_classes;
    const int as_u8 = ds->values_u8;

    /* Read through a bounded float batch and grow the result as data really
     * arrives: a header that lies about the count fails on the short read
     * before a huge allocation is attempted. */
    int64_t batch = (int64_t)(TML_DS_READ_BUFFER / sizeof(float)) / sv;
    if (batch < 1) batch = 1;
    if (batch > n) batch = n;
    float *tmp = n ? malloc((size_t)(batch * sv) * sizeof(float)) : NULL;
    int64_t cap_data = 0, cap_lab = 0;
    tml_status st = TML_OK;
    if (n && !tmp) st = tml_error(TML_ERR_NOMEM, "out of memory");

    while (st == TML_OK && s->n < n) {
        int want = (int)(n - s->n < batch ? n - s->n : batch), got = 0;
        if (!grow((void **)&s->labels, &cap_lab, s->n + want, n, sizeof(int32_t)) ||
            !grow(as_u8 ? (void **)&s->u8 : (void **)&s->f32, &cap_data, (s->n + want) * sv, n * sv,
                  as_u8 ? sizeof(uint8_t) : sizeof(float))) {
            st = tml_error(TML_ERR_NOMEM, "%s: out of memory loading %lld samples", ds->info.name,
                           (long long)n);
            break;
        }
        st = tml_dataset_next(ds, want, tmp, s->labels + s->n, &got);
        if (st != TML_OK) break;
        if (got == 0) {
            st = tml_error(TML_ERR_FORMAT, "%s: ended after %lld of %lld samples", ds->info.name,
                           (long long)s->n, (long long)n);
            break;
        }
        const int64_t k = (int64_t)got * sv;
        if (as_u8) {
            uint8_t *dst = s->u8 + s->n * sv;
            for (int64_t i = 0; i < k; i++) {
                float v = tmp[i];
                if (!(v >= 0.0f && v <= 255.0f) || v != (float)(int)v) {
                    st =
                        tml_error(TML_ERR_FORMAT, "%s: value %g of sample %lld is not a byte (file changed?)",
                                  ds->info.name, (double)v, (long long)(s->n + i / sv));
                    break;
                }
                dst[i] = (uint8_t)v;
            }
        } else {
            memcpy(s->f32 + s->n * sv, tmp, (size_t)k * sizeof(float));
        }
        s->n += got;
    }
    free(tmp);
    if (st != TML_OK) {
        tml_samples_free(s);
        return st;
    }
    *out = s;
    return TML_OK;
}

void tml_samples_gather(const tml_samples *s, const int64_t *idx, int n, float *x, int32_t *y)
{
    const int64_t sv = (int64_t)s->h * s->w * s->c;
    for (int i = 0; i < n; i++) {
        const int64_t j = idx[i];
        TML_ASSERT(j >= 0 && j < s->n);
        float *dst = x + (int64_t)i * sv;
        if (s->u8) {
            const uint8_t *src = s->u8 + j * sv;
            for (int64_t k = 0; k < sv; k++) dst[k] = (float)src[k];
        } else {
            memcpy(dst, s->f32 + j * sv, (size_t)sv * sizeof(float));
        }
        if (y) y[i] = s->labels[j];
    }
}

/* ---- preprocessing ----------------------------------------------------------------------- */

tml_status tml_preproc_check(const tml_preproc *pre, int c)
{
    if (!(isfinite(pre->scale) && pre->scale != 0.0f))
        return tml_error(TML_ERR_INVALID, "preprocessing: scale %g must be finite and nonzero",
                         (double)pre->scale);
    if (pre->n_ch < 0 || pre->n_ch > TML_MAX_CHANNELS_PRE)
        return tml_error(TML_ERR_INVALID, "preprocessing: %d channels (at most %d)", pre->n_ch,
                         TML_MAX_CHANNELS_PRE);
    if (pre->n_ch > 1 && pre->n_ch != c)
        return tml_error(TML_ERR_SHAPE, "preprocessing has mean/std for %d channels but the data has %d",
                         pre->n_ch, c);
    for (int i = 0; i < pre->n_ch; i++) {
        if (!isfinite(pre->mean[i]))
            return tml_error(TML_ERR_INVALID, "preprocessing: mean[%d] is not finite", i);
        if (!(isfinite(pre->std[i]) && pre->std[i] > 0.0f))
            return tml_error(TML_ERR_INVALID, "preprocessing: std[%d] = %g must be positive", i,
                             (double)pre->std[i]);
    }
    if (pre->n_feat < 0 || (pre->n_feat > 0 && (!pre->feat_mean || !pre->feat_std || pre->n_ch)))
        return tml_error(TML_ERR_INVALID, "preprocessing: bad per-feature normalization");
    for (int i = 0; i < pre->n_feat; i++)
        if (!isfinite(pre->feat_mean[i]) || !(isfinite(pre->feat_std[i]) && pre->feat_std[i] > 0.0f))
            return tml_error(TML_ERR_INVALID, "preprocessing: feature %d: mean %g, std %g (std must be positive)", i,
                             (double)pre->feat_mean[i], (double)pre->feat_std[i]);
    return TML_OK;
}

void tml_preproc_apply(const tml_preproc *pre, int64_t n_values, int c, float *x)
{
    TML_ASSERT(c >= 1 && n_values % c == 0);
    TML_ASSERT(pre->n_ch == 0 || pre->n_ch == 1 || pre->n_ch == c);
    const float scale = pre->scale;
    if (pre->n_feat > 0) {
        TML_ASSERT(n_values % pre->n_feat == 0);
        const int nf = pre->n_feat;
        for (int64_t i = 0; i < n_values; i += nf)
            for (int f = 0; f < nf; f++) x[i + f] = (x[i + f] * scale - pre->feat_mean[f]) / pre->feat_std[f];
        return;
    }
    if (pre->n_ch == 0) {
        for (int64_t i = 0; i < n_values; i++) x[i] = x[i] * scale;
        return;
    }
    if (pre->n_ch == 1) {
        const float m = pre->mean[0], s = pre->std[0];
        for (int64_t i = 0; i < n_values; i++) x[i] = (x[i] * scale - m) / s;
        return;
    }
    for (int64_t i = 0; i < n_values; i += c)
        for (int ch = 0; ch < c; ch++) x[i + ch] = (x[i + ch] * scale - pre->mean[ch]) / pre->std[ch];
}

void tml_preproc_default(const tml_dataset_info *info, tml_preproc *pre)
{
    memset(pre, 0, sizeof *pre);
    pre->scale = info->raw_max == 255.0f ? 1.0f / 255.0f : 1.0f;
    pre->n_ch = 0;
}
