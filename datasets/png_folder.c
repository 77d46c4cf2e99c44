/*
 * png_folder.c - a folder of per-class PNG folders: DIR/<class>/<image>.png.
 *
 * Classes are the non-hidden subdirectories of DIR sorted by name (strcmp), so
 * labels are 0..K-1 in that order and info.labels are the folder names. Files in
 * a class folder are sorted by name too; iteration goes class by class. Plain
 * files at the top of DIR (README, LICENSE, ...) and folders nested inside a
 * class folder are ignored; hidden entries (".*") are ignored everywhere; any
 * other file in a class folder must be named *.png (case-insensitive).
 *
 * open() lists the files and reads the first 33 bytes of each (signature and
 * IHDR), so a non-PNG file or an image whose size differs from the first one is
 * reported before any reading starts. Only the paths and labels stay in memory;
 * next() decodes images one at a time.
 *
 * Decoding (libpng): 8-bit values as stored, no gamma correction; 16-bit samples
 * are scaled to 8 bits (v * 255 / 65535, rounded); 1/2/4-bit gray is expanded to
 * 0..255; palettes are expanded to RGB; alpha (and tRNS transparency) is dropped,
 * not composited. The dataset has c = 3 when any image has colour (RGB, RGBA or a
 * palette), gray images then being replicated to RGB; otherwise c = 1.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <png.h>

#include "ds_internal.h"

typedef struct png_reader {
    char *dir;
    char **paths;    /* (count) */
    int32_t *labels; /* (count) */
    int64_t count, cap;
    int64_t next;    /* index of the next sample */
    uint8_t *pixels; /* (h, w, c) decode buffer */
    png_bytep *rows; /* (h) row pointers into pixels */
} png_reader;

static void png_reader_destroy(void *impl)
{
    png_reader *r = impl;
    if (!r) return;
    for (int64_t i = 0; i < r->count; i++) free(r->paths[i]);
    free(r->paths);
    free(r->labels);
    free(r->pixels);
    free(r->rows);
    free(r->dir);
    free(r);
}

/* ---- listing ------------------------------------------------------------------------ */

typedef struct name_list {
    char **v;
    int n, cap;
} name_list;

static void names_free(name_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int names_add(name_list *l, const char *s)
{
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 32;
        char **p = realloc(l->v, sizeof *p * (size_t)nc);
        if (!p) return 0;
        l->v = p;
        l->cap = nc;
    }
    l->v[l->n] = tml_strdup(s);
    if (!l->v[l->n]) return 0;
    l->n++;
    return 1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *p = malloc(na + nb + 2);
    if (!p) return NULL;
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
    return p;
}

/* Lists the non-hidden entries of `dir` that are directories (want_dirs) or
 * regular files (!want_dirs), sorted. */
static tml_status list_dir(const char *dir, int want_dirs, name_list *out)
{
    DIR *d = opendir(dir);
    if (!d) return tml_error(TML_ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
    tml_status st = TML_OK;
    struct dirent *e;
    while (st == TML_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *full = join(dir, e->d_name);
        if (!full) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            break;
        }
        struct stat sb;
        if (stat(full, &sb) != 0) {
            st = tml_error(TML_ERR_IO, "cannot stat %s: %s", full, strerror(errno));
        } else if (want_dirs ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode)) {
            if (!names_add(out, e->d_name)) st = tml_error(TML_ERR_NOMEM, "out of memory");
        }
        free(full);
    }
    closedir(d);
    if (st == TML_OK && out->n > 1) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_names);
    return st;
}

static int has_png_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

static tml_status add_sample(png_reader *r, char *path, int32_t label)
{
    if (r->count >= TML_DS_MAX_COUNT) {
        free(path);
        return tml_error(TML_ERR_FORMAT, "%s: more than %lld images", r->dir, (long long)TML_DS_MAX_COUNT);
    }
    if (r->count == r->cap) {
        int64_t nc = r->cap ? r->cap * 2 : 256;
        char **p = realloc(r->paths, sizeof *p * (size_t)nc);
        if (p) r->paths = p;
        int32_t *l = p ? realloc(r->labels, sizeof *l * (size_t)nc) : NULL;
        if (l) r->labels = l;
        if (!p || !l) {
            free(path);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
        r->cap = nc;
    }
    r->paths[r->count] = path;
    r->labels[r->count] = label;
    r->count++;
    return TML_OK;
}

/* ---- header peek ------------------------------------------------------------------------ */

typedef struct png_head {
    uint32_t w, h;
    int bit_depth, color_type;
} png_head;

/* Reads the signature and the IHDR chunk (the first 33 bytes of a PNG). */
static tml_status peek_png(const char *path, png_head *ph)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t b[33];
    FILE *f = fopen(path, "rb");
    if (!f) return tml_error(TML_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    if (got < 8 || memcmp(b, sig, 8) != 0) return tml_error(TML_ERR_FORMAT, "%s: not a PNG file", path);
    if (got < sizeof b || memcmp(b + 12, "IHDR", 4) != 0)
        return tml_error(TML_ERR_FORMAT, "%s: truncated or corrupt PNG (no IHDR chunk)", path);
    ph->w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    ph->h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    ph->bit_depth = b[24];
    ph->color_type = b[25];
    if (ph->w < 1 || ph->h < 1) return tml_error(TML_ERR_FORMAT, "%s: PNG of size %ux%u", path, ph->w, ph->h);
    return TML_OK;
}

/* ---- decoding ---------------------------------------------------------------------------- */

typedef struct png_errctx {
    char msg[200];
} png_errctx;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_errctx *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

/* The library never prints: warnings (bad ancillary chunks...) are ignored. */
static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Sets up the transformations to 8-bit, c channels and checks the result.
 * Returns NULL when fine, else a message. */
static const char *setup_transforms(png_structp png, png_infop info, int w, int h, int c)
{
    png_uint_32 iw, ih;
    int bd, ct, il;
    png_get_IHDR(png, info, &iw, &ih, &bd, &ct, &il, NULL, NULL);
    if ((int64_t)iw != w || (int64_t)ih != h) return "image size differs from the first image";
    if (bd == 16) png_set_scale_16(png);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(png);
    if ((ct & PNG_COLOR_MASK_ALPHA) || ct == PNG_COLOR_TYPE_PALETTE) png_set_strip_alpha(png);
    const int colour = (ct & PNG_COLOR_MASK_COLOR) != 0;
    if (c == 3 && !colour) png_set_gray_to_rgb(png);
    if (c == 1 && colour) return "colour image in a grayscale dataset (file changed since open?)";
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_bit_depth(png, info) != 8 || png_get_channels(png, info) != c ||
        png_get_rowbytes(png, info) != (size_t)w * (size_t)c)
        return "unexpected pixel layout after conversion";
    return NULL;
}

/* Decodes `path` into r->pixels as (h, w, c) bytes. */
static tml_status decode_png(png_reader *r, const char *path, int w, int h, int c)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tml_error(TML_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    png_errctx err = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        fclose(f);
        return tml_error(TML_ERR_NOMEM, "out of memory decoding %s", path);
    }
    /* Nothing assigned between here and a longjmp is read after it except
     * through the error context, so no local needs to be volatile. */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return tml_error(TML_ERR_FORMAT, "%s: cannot decode PNG: %s", path, err.msg);
    }
    png_init_io(png, f);
    png_read_info(png, info);
    const char *bad = setup_transforms(png, info, w, h, c);
    if (!bad) png_read_image(png, r->rows);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    if (bad) return tml_error(TML_ERR_FORMAT, "%s: %s", path, bad);
    return TML_OK;
}

static tml_status png_read(tml_dataset *ds, int n, float *x, int32_t *y)
{
    png_reader *r = ds->impl;
    const int h = ds->info.h, w = ds->info.w, c = ds->info.c;
    const size_t sv = (size_t)h * w * c;
    for (int i = 0; i < n; i++, r->next++) {
        tml_status st = decode_png(r, r->paths[r->next], w, h, c);
        if (st != TML_OK) return st;
        float *dst = x + (size_t)i * sv;
        for (size_t k = 0; k < sv; k++) dst[k] = (float)r->pixels[k];
        y[i] = r->labels[r->next];
    }
    return TML_OK;
}

static tml_status png_rewind(tml_dataset *ds)
{
    png_reader *r = ds->impl;
    r->next = 0;
    return TML_OK;
}

static const tml_ds_vtable png_vtable = {png_read, png_rewind, png_reader_destroy};

/* ---- open --------------------------------------------------------------------------------- */

static tml_status list_classes(tml_dataset *ds, png_reader *r)
{
    name_list classes = {0};
    tml_status st = list_dir(r->dir, 1, &classes);
    if (st == TML_OK && classes.n == 0)
        st = tml_error(TML_ERR_FORMAT, "%s: no class folders: expected %s/<class>/*.png", r->dir, r->dir);
    if (st == TML_OK && classes.n > TML_DS_MAX_CLASSES)
        st = tml_error(TML_ERR_FORMAT, "%s: %d class folders (at most %d)", r->dir, classes.n,
                       TML_DS_MAX_CLASSES);
    for (int k = 0; st == TML_OK && k < classes.n; k++) {
        char *cdir = join(r->dir, classes.v[k]);
        name_list files = {0};
        st = cdir ? list_dir(cdir, 0, &files) : tml_error(TML_ERR_NOMEM, "out of memory");
        for (int i = 0; st == TML_OK && i < files.n; i++) {
            char *path = join(cdir, files.v[i]);
            if (!path)
                st = tml_error(TML_ERR_NOMEM, "out of memory");
            else if (!has_png_suffix(files.v[i])) {
                st = tml_error(
                    TML_ERR_FORMAT,
                    "%s: not a .png file (class folders hold PNG images only; remove or convert it)", path);
                free(path);
            } else
                st = add_sample(r, path, k);
        }
        names_free(&files);
        free(cdir);
    }
    if (st == TML_OK && r->count == 0)
        st = tml_error(TML_ERR_FORMAT, "%s: no .png images in its class folders", r->dir);
    if (st == TML_OK) {
        /* the class names become the dataset's labels */
        ds->owned_labels = classes.v;
        ds->n_owned_labels = classes.n;
        ds->info.labels = (const char *const *)classes.v;
        ds->info.n_classes = classes.n;
        classes.v = NULL;
        classes.n = 0;
    }
    names_free(&classes);
    return st;
}

/* Checks every file's header; sets the shape from the first image. */
static tml_status check_headers(tml_dataset *ds, png_reader *r)
{
    png_head first = {0, 0, 0, 0};
    int colour = 0;
    for (int64_t i = 0; i < r->count; i++) {
        png_head ph = {0, 0, 0, 0};
        tml_status st = peek_png(r->paths[i], &ph);
        if (st != TML_OK) return st;
        if (i == 0)
            first = ph;
        else if (ph.w != first.w || ph.h != first.h)
            return tml_error(TML_ERR_SHAPE,
                             "%s: image is %ux%u but %s is %ux%u; all images must have the same size",
                             r->paths[i], ph.w, ph.h, r->paths[0], first.w, first.h);
        if (ph.color_type & (PNG_COLOR_MASK_COLOR | PNG_COLOR_MASK_PALETTE)) colour = 1;
    }
    const int c = colour ? 3 : 1;
    /* in uint64_t: two u32 header fields multiply without overflow there */
    if ((uint64_t)first.w * first.h > (uint64_t)TML_DS_MAX_SAMPLE_VALUES / (uint64_t)c)
        return tml_error(TML_ERR_FORMAT, "%s: %ux%u images are too large (at most %lld values)", r->paths[0],
                         first.w, first.h, (long long)TML_DS_MAX_SAMPLE_VALUES);
    ds->info.h = (int)first.h;
    ds->info.w = (int)first.w;
    ds->info.c = c;
    return TML_OK;
}

tml_status tml_ds_open_png(const char *dir, tml_dataset **out)
{
    *out = NULL;
    tml_dataset *ds = tml_ds_new(&png_vtable);
    png_reader *r = calloc(1, sizeof *r);
    if (!ds || !r) {
        free(ds);
        free(r);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    ds->impl = r;
    ds->values_u8 = 1;
    ds->info.raw_max = 255.0f;
    tml_ds_set_name(ds, "png:", dir);
    /* strip trailing slashes so messages read DIR/class/file.png */
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    r->dir = malloc(n + 1);
    tml_status st = TML_OK;
    if (!r->dir) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
    } else {
        memcpy(r->dir, dir, n);
        r->dir[n] = '\0';
        st = list_classes(ds, r);
    }
    if (st == TML_OK) st = check_headers(ds, r);
    if (st == TML_OK) {
        ds->info.count = r->count;
        const size_t row = (size_t)ds->info.w * (size_t)ds->info.c;
        r->pixels = malloc(row * (size_t)ds->info.h);
        r->rows = malloc(sizeof *r->rows * (size_t)ds->info.h);
        if (!r->pixels || !r->rows) st = tml_error(TML_ERR_NOMEM, "out of memory");
        for (int y = 0; st == TML_OK && y < ds->info.h; y++) r->rows[y] = r->pixels + (size_t)y * row;
    }
    if (st != TML_OK) {
        tml_dataset_free(ds);
        return st;
    }
    *out = ds;
    return TML_OK;
}
