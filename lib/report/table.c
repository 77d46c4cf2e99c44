/*
 * table.c - building and rendering report tables.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tinyml/tml_report.h"

typedef struct cell {
    char *text;   /* display text; NULL = empty */
    int is_num;
    double num;
} cell;

struct tml_table {
    char *key, *title;
    int ncols;
    char **headers;
    int nrows, cap_rows;
    cell *cells;     /* (cap_rows, ncols) */
    int *is_total;   /* (cap_rows) */
    int nnotes;
    char **notes;
};

tml_status tml_fmt_parse(const char *s, tml_fmt *f)
{
    if (strcmp(s, "table") == 0 || strcmp(s, "text") == 0) *f = TML_FMT_TABLE;
    else if (strcmp(s, "md") == 0 || strcmp(s, "markdown") == 0) *f = TML_FMT_MD;
    else if (strcmp(s, "csv") == 0) *f = TML_FMT_CSV;
    else if (strcmp(s, "json") == 0) *f = TML_FMT_JSON;
    else return tml_error(TML_ERR_INVALID, "unknown format '%s' (table, md, csv, json)", s);
    return TML_OK;
}

tml_table *tml_table_new(const char *key, const char *title, int ncols, const char *const *headers)
{
    tml_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->key = tml_strdup(key);
    t->title = tml_strdup(title ? title : "");
    t->ncols = ncols;
    t->headers = calloc((size_t)ncols, sizeof(char *));
    if (!t->key || !t->title || !t->headers) {
        tml_table_free(t);
        return NULL;
    }
    for (int i = 0; i < ncols; i++) {
        t->headers[i] = tml_strdup(headers[i]);
        if (!t->headers[i]) {
            tml_table_free(t);
            return NULL;
        }
    }
    return t;
}

void tml_table_free(tml_table *t)
{
    if (!t) return;
    free(t->key);
    free(t->title);
    if (t->headers)
        for (int i = 0; i < t->ncols; i++) free(t->headers[i]);
    free(t->headers);
    for (int i = 0; i < t->nrows * t->ncols; i++) free(t->cells[i].text);
    free(t->cells);
    free(t->is_total);
    for (int i = 0; i < t->nnotes; i++) free(t->notes[i]);
    free(t->notes);
    free(t);
}

int tml_table_rows(const tml_table *t) { return t->nrows; }

tml_status tml_table_add_row(tml_table *t)
{
    if (t->nrows == t->cap_rows) {
        int cap = t->cap_rows ? t->cap_rows * 2 : 16;
        cell *c = realloc(t->cells, sizeof(cell) * (size_t)cap * (size_t)t->ncols);
        if (!c) return tml_error(TML_ERR_NOMEM, "out of memory");
        t->cells = c;
        int *tot = realloc(t->is_total, sizeof(int) * (size_t)cap);
        if (!tot) return tml_error(TML_ERR_NOMEM, "out of memory");
        t->is_total = tot;
        t->cap_rows = cap;
    }
    memset(&t->cells[(size_t)t->nrows * (size_t)t->ncols], 0, sizeof(cell) * (size_t)t->ncols);
    t->is_total[t->nrows] = 0;
    t->nrows++;
    return TML_OK;
}

void tml_table_mark_total(tml_table *t)
{
    if (t->nrows) t->is_total[t->nrows - 1] = 1;
}

static cell *cur_cell(tml_table *t, int col)
{
    if (t->nrows == 0 || col < 0 || col >= t->ncols) return NULL;
    return &t->cells[(size_t)(t->nrows - 1) * (size_t)t->ncols + (size_t)col];
}

tml_status tml_table_str(tml_table *t, int col, const char *s)
{
    cell *c = cur_cell(t, col);
    TML_ASSERT(c != NULL);
    free(c->text);
    c->text = tml_strdup(s ? s : "");
    c->is_num = 0;
    return c->text ? TML_OK : tml_error(TML_ERR_NOMEM, "out of memory");
}

tml_status tml_table_fmt(tml_table *t, int col, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return tml_table_str(t, col, buf);
}

tml_status tml_table_num(tml_table *t, int col, double v, const char *disp)
{
    char buf[64];
    if (isnan(v)) {
        snprintf(buf, sizeof buf, "-");
    } else {
        /* `disp` is always a literal format from our own callers. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(buf, sizeof buf, disp, v);
#pragma GCC diagnostic pop
    }
    tml_status st = tml_table_str(t, col, buf);
    if (st) return st;
    cell *c = cur_cell(t, col);
    c->is_num = 1;
    c->num = v;
    return TML_OK;
}

tml_status tml_table_int(tml_table *t, int col, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    tml_status st = tml_table_str(t, col, buf);
    if (st) return st;
    cell *c = cur_cell(t, col);
    c->is_num = 1;
    c->num = (double)v;
    return TML_OK;
}

tml_status tml_table_note(tml_table *t, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **n = realloc(t->notes, sizeof(char *) * (size_t)(t->nnotes + 1));
    if (!n) return tml_error(TML_ERR_NOMEM, "out of memory");
    t->notes = n;
    t->notes[t->nnotes] = tml_strdup(buf);
    if (!t->notes[t->nnotes]) return tml_error(TML_ERR_NOMEM, "out of memory");
    t->nnotes++;
    return TML_OK;
}

void tml_format_bytes(char *buf, size_t cap, double bytes)
{
    if (bytes < 1024.0)
        snprintf(buf, cap, "%.0f B", bytes);
    else if (bytes < 1024.0 * 1024.0)
        snprintf(buf, cap, "%.1f KiB", bytes / 1024.0);
    else
        snprintf(buf, cap, "%.2f MiB", bytes / (1024.0 * 1024.0));
}

/* ---- a growable string --------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *s, const char *txt, size_t len)
{
    if (s->oom) return;
    if (s->n + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->n + len + 1) cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, txt, len);
    s->n += len;
    s->p[s->n] = '\0';
}

static void sb_str(sbuf *s, const char *txt) { sb_add(s, txt, strlen(txt)); }

static void sb_pad(sbuf *s, char ch, size_t count)
{
    for (size_t i = 0; i < count; i++) sb_add(s, &ch, 1);
}

static size_t display_width(const char *s)
{
    /* Count UTF-8 code points, not bytes, so labels like "µs" align. */
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

/* A column is right-aligned when all its non-empty cells are numbers. */
static int col_numeric(const tml_table *t, int col)
{
    int any = 0;
    for (int r = 0; r < t->nrows; r++) {
        const cell *c = &t->cells[(size_t)r * (size_t)t->ncols + (size_t)col];
        if (!c->text || !*c->text) continue;
        if (!c->is_num && strcmp(c->text, "-") != 0) return 0;
        any = 1;
    }
    return any;
}

static const char *cell_text(const tml_table *t, int r, int col)
{
    const cell *c = &t->cells[(size_t)r * (size_t)t->ncols + (size_t)col];
    return c->text ? c->text : "";
}

static void render_text(const tml_table *t, sbuf *s)
{
    size_t *w = calloc((size_t)t->ncols, sizeof(size_t));
    int *num = calloc((size_t)t->ncols, sizeof(int));
    if (!w || !num) {
        s->oom = 1;
        free(w);
        free(num);
        return;
    }
    size_t total = 0;
    for (int c = 0; c < t->ncols; c++) {
        w[c] = display_width(t->headers[c]);
        num[c] = col_numeric(t, c);
        for (int r = 0; r < t->nrows; r++) {
            size_t l = display_width(cell_text(t, r, c));
            if (l > w[c]) w[c] = l;
        }
        total += w[c] + (c ? 2 : 0);
    }
    if (*t->title) {
        sb_str(s, t->title);
        sb_str(s, "\n");
    }
    for (int c = 0; c < t->ncols; c++) {
        size_t l = display_width(t->headers[c]);
        if (c) sb_str(s, "  ");
        if (num[c]) sb_pad(s, ' ', w[c] - l);
        sb_str(s, t->headers[c]);
        if (!num[c] && c + 1 < t->ncols) sb_pad(s, ' ', w[c] - l);
    }
    sb_str(s, "\n");
    sb_pad(s, '-', total);
    sb_str(s, "\n");
    for (int r = 0; r < t->nrows; r++) {
        if (t->is_total[r]) {
            sb_pad(s, '-', total);
            sb_str(s, "\n");
        }
        for (int c = 0; c < t->ncols; c++) {
            const char *txt = cell_text(t, r, c);
            size_t l = display_width(txt);
            if (c) sb_str(s, "  ");
            if (num[c]) sb_pad(s, ' ', w[c] - l);
            sb_str(s, txt);
            if (!num[c] && c + 1 < t->ncols) sb_pad(s, ' ', w[c] - l);
        }
        sb_str(s, "\n");
    }
    for (int i = 0; i < t->nnotes; i++) {
        sb_str(s, t->notes[i]);
        sb_str(s, "\n");
    }
    free(w);
    free(num);
}

static void md_escaped(sbuf *s, const char *txt)
{
    for (; *txt; txt++) {
        if (*txt == '|') sb_str(s, "\\|");
        else sb_add(s, txt, 1);
    }
}

static void render_md(const tml_table *t, sbuf *s)
{
    if (*t->title) {
        sb_str(s, "### ");
        sb_str(s, t->title);
        sb_str(s, "\n\n");
    }
    sb_str(s, "|");
    for (int c = 0; c < t->ncols; c++) {
        sb_str(s, " ");
        md_escaped(s, t->headers[c]);
        sb_str(s, " |");
    }
    sb_str(s, "\n|");
    for (int c = 0; c < t->ncols; c++) sb_str(s, col_numeric(t, c) ? "---:|" : "---|");
    sb_str(s, "\n");
    for (int r = 0; r < t->nrows; r++) {
        sb_str(s, "|");
        for (int c = 0; c < t->ncols; c++) {
            sb_str(s, " ");
            if (t->is_total[r] && c == 0) sb_str(s, "**");
            md_escaped(s, cell_text(t, r, c));
            if (t->is_total[r] && c == 0) sb_str(s, "**");
            sb_str(s, " |");
        }
        sb_str(s, "\n");
    }
    if (t->nnotes) sb_str(s, "\n");
    for (int i = 0; i < t->nnotes; i++) {
        sb_str(s, t->notes[i]);
        sb_str(s, "\n");
    }
}

static void csv_field(sbuf *s, const char *txt)
{
    if (strpbrk(txt, ",\"\n\r")) {
        sb_str(s, "\"");
        for (; *txt; txt++) {
            if (*txt == '"') sb_str(s, "\"\"");
            else sb_add(s, txt, 1);
        }
        sb_str(s, "\"");
    } else {
        sb_str(s, txt);
    }
}

static void render_csv(const tml_table *t, sbuf *s, int with_title)
{
    if (with_title && *t->title) {
        sb_str(s, "# ");
        sb_str(s, t->title);
        sb_str(s, "\n");
    }
    for (int i = 0; i < t->nnotes; i++) {
        sb_str(s, "# ");
        sb_str(s, t->notes[i]);
        sb_str(s, "\n");
    }
    for (int c = 0; c < t->ncols; c++) {
        if (c) sb_str(s, ",");
        csv_field(s, t->headers[c]);
    }
    sb_str(s, "\n");
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const cell *cl = &t->cells[(size_t)r * (size_t)t->ncols + (size_t)c];
            if (c) sb_str(s, ",");
            if (cl->is_num && !isnan(cl->num)) {
                /* full precision, not the display rounding */
                char buf[64];
                snprintf(buf, sizeof buf, "%.10g", cl->num);
                sb_str(s, buf);
            } else if (cl->text && strcmp(cl->text, "-") != 0) {
                csv_field(s, cl->text);
            }
        }
        sb_str(s, "\n");
    }
}

static cJSON *table_json(const tml_table *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "title", t->title);
    cJSON *cols = cJSON_AddArrayToObject(o, "columns");
    for (int c = 0; c < t->ncols; c++) cJSON_AddItemToArray(cols, cJSON_CreateString(t->headers[c]));
    cJSON *rows = cJSON_AddArrayToObject(o, "rows");
    for (int r = 0; r < t->nrows; r++) {
        cJSON *row = cJSON_CreateObject();
        for (int c = 0; c < t->ncols; c++) {
            const cell *cl = &t->cells[(size_t)r * (size_t)t->ncols + (size_t)c];
            if (cl->is_num && !isnan(cl->num))
                cJSON_AddNumberToObject(row, t->headers[c], cl->num);
            else if (cl->text && *cl->text && strcmp(cl->text, "-") != 0)
                cJSON_AddStringToObject(row, t->headers[c], cl->text);
            else
                cJSON_AddNullToObject(row, t->headers[c]);
        }
        if (t->is_total[r]) cJSON_AddTrueToObject(row, "total");
        cJSON_AddItemToArray(rows, row);
    }
    cJSON *notes = cJSON_AddArrayToObject(o, "notes");
    for (int i = 0; i < t->nnotes; i++) cJSON_AddItemToArray(notes, cJSON_CreateString(t->notes[i]));
    return o;
}

char *tml_tables_render(tml_table *const *tables, int n, tml_fmt f)
{
    if (f == TML_FMT_JSON) {
        cJSON *root = cJSON_CreateObject();
        if (!root) return NULL;
        for (int i = 0; i < n; i++) cJSON_AddItemToObject(root, tables[i]->key, table_json(tables[i]));
        char *txt = cJSON_Print(root);
        cJSON_Delete(root);
        if (!txt) return NULL;
        /* return malloc'd memory with a trailing newline */
        size_t l = strlen(txt);
        char *out = malloc(l + 2);
        if (out) {
            memcpy(out, txt, l);
            out[l] = '\n';
            out[l + 1] = '\0';
        }
        cJSON_free(txt);
        return out;
    }
    sbuf s = {0};
    for (int i = 0; i < n; i++) {
        if (i && f != TML_FMT_CSV) sb_str(&s, "\n");
        if (i && f == TML_FMT_CSV) sb_str(&s, "\n");
        if (f == TML_FMT_TABLE) render_text(tables[i], &s);
        else if (f == TML_FMT_MD) render_md(tables[i], &s);
        else render_csv(tables[i], &s, n > 1);
    }
    if (s.oom) {
        free(s.p);
        return NULL;
    }
    if (!s.p) return tml_strdup("");
    return s.p;
}
