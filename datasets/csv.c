/*
 * csv.c - CSV datasets: one sample per line, F numeric features then an integer
 * class label, comma-separated.
 *
 * Text layout:
 *   1. optional header: the first non-blank line, when any of its fields is not
 *      a number (it is skipped, whatever its column count)
 *   2. data lines: "v1,v2,...,vF,label"; fields may carry spaces or tabs around
 *      them; LF or CRLF line ends; blank lines are skipped anywhere
 *   3. every data line has the same number of fields (F + 1, F >= 1); values are
 *      finite decimal numbers (strtod syntax, C locale); the label is an integer
 *      value in 0..65535 ("3" or "3.0")
 *
 * The file is read through zlib, so a gzip-compressed CSV works too. open()
 * makes one pass over the file to validate every line and learn the count, the
 * number of features, n_classes (max label + 1) and raw_max (max |value|); next()
 * then streams lines again, keeping only one line in memory.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ds_internal.h"

/* Longest line accepted (bytes): bounds the line buffer on garbage input. */
#define CSV_MAX_LINE ((size_t)1 << 28)

typedef struct csv_reader {
    char *path;
    gzFile f;
    char *line; /* current line, NUL-terminated, without the line end */
    size_t cap;
    int64_t lineno;      /* 1-based number of the current line */
    int64_t header_line; /* line number of the header, 0 when none */
    int ncols;           /* F + 1 */
} csv_reader;

static void csv_destroy(void *impl)
{
    csv_reader *r = impl;
    if (!r) return;
    if (r->f) gzclose(r->f);
    free(r->path);
    free(r->line);
    free(r);
}

/* Reads the next line into r->line. Returns 1 (line), 0 (end of file) or a
 * negative tml_status. */
static int csv_getline(csv_reader *r)
{
    size_t len = 0;
    for (;;) {
        if (r->cap - len < 2) {
            if (r->cap >= CSV_MAX_LINE)
                return tml_error(TML_ERR_FORMAT, "%s:%lld: line longer than %zu bytes", r->path,
                                 (long long)r->lineno + 1, CSV_MAX_LINE);
            size_t nc = r->cap ? r->cap * 2 : 4096;
            char *p = realloc(r->line, nc);
            if (!p) return tml_error(TML_ERR_NOMEM, "out of memory");
            r->line = p;
            r->cap = nc;
        }
        size_t room = r->cap - len;
        if (room > INT32_MAX) room = INT32_MAX;
        if (!gzgets(r->f, r->line + len, (int)room)) {
            int errnum = 0;
            const char *msg = gzerror(r->f, &errnum);
            if (errnum == Z_ERRNO)
                return tml_error(TML_ERR_IO, "%s: read error: %s", r->path, strerror(errno));
            if (errnum != Z_OK && errnum != Z_STREAM_END)
                return tml_error(TML_ERR_FORMAT, "%s: truncated or corrupt gzip data (zlib: %s)", r->path,
                                 msg);
            if (len == 0) return 0;
            break;
        }
        len += strlen(r->line + len);
        if (len && r->line[len - 1] == '\n') break;
        if (gzeof(r->f)) break;
    }
    r->lineno++;
    while (len && (r->line[len - 1] == '\n' || r->line[len - 1] == '\r')) r->line[--len] = '\0';
    return 1;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

static int is_blank(const char *s)
{
    while (is_space(*s)) s++;
    return *s == '\0';
}

/* Parses the field starting at *s (up to the next ',' or the end; blanks around
 * it allowed) as a number and advances *s to the ',' or the end. Returns 1 when
 * the whole field is a number (possibly inf/nan: callers check finiteness). */
static int scan_number(const char **s, double *v)
{
    const char *p = *s;
    char *end;
    *v = strtod(p, &end);
    int ok = end != p;
    for (p = end; is_space(*p); p++) {
    }
    if (*p != ',' && *p != '\0') ok = 0;
    while (*p && *p != ',') p++;
    *s = p;
    return ok;
}

static int count_fields(const char *s)
{
    int n = 1;
    for (; *s; s++) n += *s == ',';
    return n;
}

/* Is every field of the line a number? Used for header detection. */
static int all_numeric(const char *line)
{
    const char *s = line;
    for (;;) {
        double v;
        if (!scan_number(&s, &v)) return 0;
        if (!*s) return 1;
        s++;
    }
}

/* Copies field text (up to the next ',') into buf for messages, blanks trimmed. */
static const char *field_text(const char *s, char *buf, size_t cap)
{
    while (is_space(*s)) s++;
    size_t n = 0;
    while (s[n] && s[n] != ',') n++;
    while (n && is_space(s[n - 1])) n--;
    if (n >= cap) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

typedef struct csv_stats {
    double raw_max;
    int all_u8;
    int max_label;
} csv_stats;

/* Parses a data line (already known not to be blank or the header): x (F) gets
 * the features when non-NULL, *label the class. Updates stats when non-NULL. */
static tml_status parse_data_line(csv_reader *r, float *x, int32_t *label, csv_stats *stats)
{
    const int ncols = r->ncols;
    const int nf = count_fields(r->line);
    if (nf != ncols)
        return tml_error(TML_ERR_FORMAT, "%s:%lld: %d columns, expected %d (as on the first data line)",
                         r->path, (long long)r->lineno, nf, ncols);
    const char *s = r->line;
    char text[48];
    for (int col = 0; col < ncols; col++) {
        const char *start = s;
        double v;
        if (!scan_number(&s, &v))
            return tml_error(TML_ERR_FORMAT, "%s:%lld: column %d: '%s' is not a number", r->path,
                             (long long)r->lineno, col + 1, field_text(start, text, sizeof text));
        if (*s == ',') s++;
        if (col < ncols - 1) {
            float fv = (float)v;
            if (!isfinite(fv))
                return tml_error(TML_ERR_FORMAT, "%s:%lld: column %d: value '%s' is not a finite float",
                                 r->path, (long long)r->lineno, col + 1,
                                 field_text(start, text, sizeof text));
            if (x) x[col] = fv;
            if (stats) {
                double a = fabs((double)fv);
                if (a > stats->raw_max) stats->raw_max = a;
                if (!(fv >= 0.0f && fv <= 255.0f && fv == floorf(fv))) stats->all_u8 = 0;
            }
        } else {
            if (!(v >= 0 && v == floor(v) && v < TML_DS_MAX_CLASSES))
                return tml_error(
                    TML_ERR_FORMAT, "%s:%lld: label '%s' (last column) must be an integer in 0..%d", r->path,
                    (long long)r->lineno, field_text(start, text, sizeof text), TML_DS_MAX_CLASSES - 1);
            *label = (int32_t)v;
            if (stats && *label > stats->max_label) stats->max_label = *label;
        }
    }
    return TML_OK;
}

/* Reads lines until the next data line. Returns 1 (data line in r->line), 0 (end)
 * or a negative status. */
static int next_data_line(csv_reader *r)
{
    for (;;) {
        int k = csv_getline(r);
        if (k <= 0) return k;
        if (r->lineno == r->header_line || is_blank(r->line)) continue;
        return 1;
    }
}

static tml_status csv_read(tml_dataset *ds, int n, float *x, int32_t *y)
{
    csv_reader *r = ds->impl;
    const int64_t f = r->ncols - 1;
    for (int i = 0; i < n; i++) {
        int k = next_data_line(r);
        if (k < 0) return (tml_status)k;
        if (k == 0)
            return tml_error(TML_ERR_FORMAT, "%s: ended after %lld samples, %lld expected (file changed?)",
                             r->path, (long long)(ds->pos + i), (long long)ds->info.count);
        tml_status st = parse_data_line(r, x + (int64_t)i * f, &y[i], NULL);
        if (st != TML_OK) return st;
    }
    return TML_OK;
}

static tml_status csv_rewind(tml_dataset *ds)
{
    csv_reader *r = ds->impl;
    tml_status st = tml_ds_gzseek(r->f, r->path, 0);
    if (st == TML_OK) r->lineno = 0;
    return st;
}

static const tml_ds_vtable csv_vtable = {csv_read, csv_rewind, csv_destroy};

/* The validating pass of open(). */
static tml_status scan(tml_dataset *ds, csv_reader *r)
{
    csv_stats stats = {0.0, 1, 0};
    int64_t count = 0;
    int seen_nonblank = 0;
    for (;;) {
        int k = csv_getline(r);
        if (k < 0) return (tml_status)k;
        if (k == 0) break;
        if (is_blank(r->line)) continue;
        if (!seen_nonblank) {
            seen_nonblank = 1;
            if (!all_numeric(r->line)) {
                r->header_line = r->lineno;
                continue;
            }
        }
        if (r->ncols == 0) {
            int nf = count_fields(r->line);
            if (nf < 2)
                return tml_error(TML_ERR_FORMAT,
                                 "%s:%lld: 1 column: a line needs at least one feature and a label", r->path,
                                 (long long)r->lineno);
            if (nf - 1 > TML_DS_MAX_SAMPLE_VALUES)
                return tml_error(TML_ERR_FORMAT, "%s:%lld: %d features per line (at most %lld)", r->path,
                                 (long long)r->lineno, nf - 1, (long long)TML_DS_MAX_SAMPLE_VALUES);
            r->ncols = nf;
        }
        int32_t label;
        tml_status st = parse_data_line(r, NULL, &label, &stats);
        if (st != TML_OK) return st;
        if (++count > TML_DS_MAX_COUNT)
            return tml_error(TML_ERR_FORMAT, "%s: more than %lld samples", r->path,
                             (long long)TML_DS_MAX_COUNT);
    }
    if (count == 0)
        return tml_error(TML_ERR_FORMAT, "%s: empty file: no data lines%s", r->path,
                         r->header_line ? " after the header" : "");
    ds->info.count = count;
    ds->info.n_classes = stats.max_label + 1;
    ds->info.raw_max = (float)stats.raw_max;
    ds->values_u8 = stats.all_u8;
    /* back to the first line, as csv_rewind does: the header is recognised by
     * its line number */
    tml_status st = tml_ds_gzseek(r->f, r->path, 0);
    if (st == TML_OK) r->lineno = 0;
    return st;
}

tml_status tml_ds_open_csv(const char *file, const int *shape, tml_dataset **out)
{
    *out = NULL;
    tml_dataset *ds = tml_ds_new(&csv_vtable);
    csv_reader *r = calloc(1, sizeof *r);
    if (!ds || !r) {
        free(ds);
        free(r);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    ds->impl = r;
    tml_ds_set_name(ds, "csv:", file);
    r->path = tml_strdup(file);
    tml_status st = r->path ? tml_ds_gzopen(file, &r->f) : tml_error(TML_ERR_NOMEM, "out of memory");
    if (st == TML_OK) st = scan(ds, r);
    if (st == TML_OK) {
        const int f = r->ncols - 1;
        if (shape) {
            if ((int64_t)shape[0] * shape[1] * shape[2] != f)
                st = tml_error(TML_ERR_SHAPE, "%s: %d features per line but shape %dx%dx%d needs %lld", file,
                               f, shape[0], shape[1], shape[2], (long long)shape[0] * shape[1] * shape[2]);
            ds->info.h = shape[0];
            ds->info.w = shape[1];
            ds->info.c = shape[2];
        } else {
            ds->info.h = f;
            ds->info.w = 1;
            ds->info.c = 1;
        }
    }
    if (st != TML_OK) {
        tml_dataset_free(ds);
        return st;
    }
    *out = ds;
    return TML_OK;
}
