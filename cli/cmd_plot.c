/*
 * cmd_plot.c - `tinyml plot FILE.csv`: a chart of two columns of a CSV file
 * (e.g. a sweep: accuracy vs size, one series per calibration method).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tinyml/tml_plot.h"

static const char help[] =
    "Usage: tinyml plot FILE.csv --x COLUMN --y COLUMN [options] -o FILE.png\n"
    "\n"
    "Draw a line/marker chart of two numeric columns of a CSV file with a header\n"
    "row (lines starting with '#' are skipped), one series per distinct value of\n"
    "--series. Used by scripts/sweep.sh; works on any CSV tinyml writes. A cell of\n"
    "--x or --y that is empty or not a number is an error naming its line: no row\n"
    "is left out silently.\n"
    "\n"
    "Options:\n"
    "  --x COLUMN, --y COLUMN   the columns to plot\n"
    "  --series COLUMN          group rows into series by this column\n"
    "  --xlog                   logarithmic x axis\n"
    "  --pareto                 mark the Pareto front (max y for min x)\n"
    "  --lines                  connect the points of a series (sorted by x)\n"
    "  --title T, --xlabel L, --ylabel L\n"
    "  -o, --output FILE.png\n"
    "\n"
    "Examples:\n"
    "  tinyml plot out/sweep/sweep.csv --x bytes --y top1% --series method --xlog --pareto -o sweep.png\n"
    "  tinyml plot sens.csv --x sparsity --y top1 --series layer --lines -o sens.png\n";

#define MAXCOLS 64

/* splits a CSV line in place (no quoted commas in tinyml's CSVs except quoted
 * fields, which are handled for the common case) */
static int split(char *line, char **f)
{
    int n = 0;
    char *p = line;
    while (n < MAXCOLS) {
        if (*p == '"') {
            f[n++] = ++p;
            while (*p && !(*p == '"' && (p[1] == ',' || p[1] == '\0' || p[1] == '\n' || p[1] == '\r'))) p++;
            if (*p) *p++ = '\0';
        } else {
            f[n++] = p;
        }
        while (*p && *p != ',' && *p != '\n' && *p != '\r') p++;
        if (*p != ',') {
            *p = '\0';
            break;
        }
        *p++ = '\0';
    }
    return n;
}

typedef struct series {
    char name[128];
    int n, cap;
    double *x, *y;
} series;


int cmd_plot(int argc, char **argv)
{
    cli c;
    cli_init(&c, "plot", help, argc, argv);
    const char *pos[1] = {NULL}, *xc = NULL, *yc = NULL, *sc = NULL, *out = NULL, *title = NULL, *xl = NULL, *yl = NULL;
    int xlog = 0, pareto = 0, lines = 0;
    while (cli_next(&c)) {
        if (cli_str(&c, "x", 0, &xc) || cli_str(&c, "y", 0, &yc) || cli_str(&c, "series", 0, &sc) ||
            cli_str(&c, "output", 'o', &out) || cli_str(&c, "title", 0, &title) || cli_str(&c, "xlabel", 0, &xl) ||
            cli_str(&c, "ylabel", 0, &yl))
            continue;
        if (cli_flag(&c, "xlog", 0)) {
            xlog = 1;
            continue;
        }
        if (cli_flag(&c, "pareto", 0)) {
            pareto = 1;
            continue;
        }
        if (cli_flag(&c, "lines", 0)) {
            lines = 1;
            continue;
        }
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (!pos[0] || !xc || !yc || !out) cli_usage_error(&c, "need FILE.csv, --x, --y and -o FILE.png");
    cli_check_output(&c, out);
    FILE *f = fopen(pos[0], "r");
    if (!f) cli_fail(&c, "cannot open '%s'", pos[0]);
    char line[8192], *fields[MAXCOLS];
    int ix = -1, iy = -1, is = -1, header = 0, lineno = 0;
    series *ss = NULL;
    int ns = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n' || line[0] == '\r') continue;
        int nf = split(line, fields);
        if (!header) {
            for (int i = 0; i < nf; i++) {
                if (strcmp(fields[i], xc) == 0) ix = i;
                if (strcmp(fields[i], yc) == 0) iy = i;
                if (sc && strcmp(fields[i], sc) == 0) is = i;
            }
            if (ix < 0 || iy < 0 || (sc && is < 0))
                cli_fail(&c, "%s: column '%s' not in the header", pos[0], ix < 0 ? xc : iy < 0 ? yc : sc);
            header = 1;
            continue;
        }
        if (nf <= ix || nf <= iy || (is >= 0 && nf <= is)) cli_fail(&c, "%s:%d: too few columns", pos[0], lineno);
        double x, y;
        /* a value that is not a number is an error, not a point silently left out */
        if (cli_parse_double(fields[ix], &x))
            cli_fail(&c, "%s:%d: column '%s' is '%s', not a number", pos[0], lineno, xc, fields[ix]);
        if (cli_parse_double(fields[iy], &y))
            cli_fail(&c, "%s:%d: column '%s' is '%s', not a number", pos[0], lineno, yc, fields[iy]);
        const char *name = is >= 0 ? fields[is] : yc;
        int k;
        for (k = 0; k < ns && strcmp(ss[k].name, name) != 0; k++) {}
        if (k == ns) {
            ss = realloc(ss, sizeof(series) * (size_t)(ns + 1));
            if (!ss) cli_fail(&c, "out of memory");
            memset(&ss[ns], 0, sizeof(series));
            snprintf(ss[ns].name, sizeof ss[ns].name, "%s", name);
            ns++;
        }
        series *s = &ss[k];
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 16;
            s->x = realloc(s->x, sizeof(double) * (size_t)s->cap);
            s->y = realloc(s->y, sizeof(double) * (size_t)s->cap);
            if (!s->x || !s->y) cli_fail(&c, "out of memory");
        }
        s->x[s->n] = x;
        s->y[s->n++] = y;
    }
    fclose(f);
    if (!header) cli_fail(&c, "%s: no header row", pos[0]);
    if (!ns) cli_fail(&c, "%s: no numeric rows for %s / %s", pos[0], xc, yc);
    tml_plot *p = tml_plot_new(960, 600);
    if (!p) cli_fail(&c, "out of memory");
    tml_plot_title(p, title ? title : pos[0]);
    tml_plot_labels(p, xl ? xl : xc, yl ? yl : yc);
    tml_plot_xlog(p, xlog);
    int total = 0;
    for (int k = 0; k < ns; k++) {
        series *s = &ss[k];
        /* insertion sort by x so lines read left to right */
        for (int i = 1; i < s->n; i++)
            for (int j = i; j > 0 && s->x[j] < s->x[j - 1]; j--) {
                double t = s->x[j];
                s->x[j] = s->x[j - 1];
                s->x[j - 1] = t;
                t = s->y[j];
                s->y[j] = s->y[j - 1];
                s->y[j - 1] = t;
            }
        tml_status st = tml_plot_series(p, s->name, s->n, s->x, s->y, lines);
        if (st) cli_fail_status(&c, st);
        total += s->n;
    }
    if (pareto) {
        double *ax = malloc(sizeof(double) * (size_t)total), *ay = malloc(sizeof(double) * (size_t)total);
        int n = 0;
        for (int k = 0; k < ns; k++)
            for (int i = 0; i < ss[k].n; i++) {
                ax[n] = ss[k].x[i];
                ay[n++] = ss[k].y[i];
            }
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && ax[j] < ax[j - 1]; j--) {
                double t = ax[j];
                ax[j] = ax[j - 1];
                ax[j - 1] = t;
                t = ay[j];
                ay[j] = ay[j - 1];
                ay[j - 1] = t;
            }
        int m = 0;
        double best = -INFINITY;
        for (int i = 0; i < n; i++)
            if (ay[i] > best) {
                best = ay[i];
                ax[m] = ax[i];
                ay[m++] = ay[i];
            }
        tml_plot_highlight(p, "Pareto front", m, ax, ay);
        free(ax);
        free(ay);
    }
    tml_status st = tml_plot_write_png(p, out);
    tml_plot_free(p);
    for (int k = 0; k < ns; k++) {
        free(ss[k].x);
        free(ss[k].y);
    }
    free(ss);
    if (st) cli_fail_status(&c, st);
    cli_log(&c, "%d points in %d series -> %s", total, ns, out);
    return 0;
}
