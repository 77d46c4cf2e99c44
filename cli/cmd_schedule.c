/*
 * cmd_schedule.c - `tinyml schedule MODEL`: the memory schedule of an int8
 * model (lib/engine/schedule.c, docs/memory.md), stored in the model so that
 * eval, export and info run and report the same one; and the schedule
 * options and table those commands share (cli.h).
 *
 * Which schedule a command uses: its own --max-recompute / --ram-limit /
 * --no-schedule when given, else the options stored in the model by this
 * command, else the defaults (least RAM within 5% extra MACs). The schedule
 * itself is never stored: it is computed from the options, deterministically,
 * so every command that reads the same model with the same options gets the
 * same segments, buffers and arena.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_schedule.h"

static const char help[] =
    "Usage: tinyml schedule [options] [MODEL] [-o OUT]\n"
    "\n"
    "Plan how an int8 model runs in less RAM than one layer at a time on whole\n"
    "tensors (the tensor-by-tensor bound, what `tinyml info` called peak\n"
    "activation memory): segments of layers run in place (a depthwise / conv /\n"
    "pool writes over its dying input), streamed row by row (conv -> pool,\n"
    "conv -> conv, residual blocks, a global average pool: tensors used only\n"
    "inside never exist whole) or tile by tile (patches, recomputing the\n"
    "overlap of receptive fields). Prints each segment's peak RAM beside the\n"
    "bound and its extra MACs.\n"
    "\n"
    "The default is the least RAM whose recomputation stays within\n"
    "--max-recompute percent of the model's MACs; --ram-limit asks instead for\n"
    "the fewest extra MACs that fit, and fails (saying by how much it misses)\n"
    "when nothing does. With -o the options are stored in the model, and\n"
    "`tinyml eval`, `tinyml export --c` and `tinyml info` then use the same\n"
    "schedule (each also takes these options, which override the stored ones).\n"
    "Outputs are bit-identical to the unscheduled model.\n"
    "\n"
    "Options:\n"
    "  --max-recompute P  extra MACs allowed, percent of the model's (default 5)\n"
    "  --ram-limit BYTES  the fewest extra MACs whose arena fits BYTES (suffix K =\n"
    "                     1024: 32K)\n"
    "  --no-schedule      store \"no schedule\": run layer by layer\n"
    "  -o, --output FILE  write the model with the options stored ('-' = stdout;\n"
    "                     default stdout if not a terminal; omit on a terminal to\n"
    "                     only print the table)\n"
    "  --format F         table (default), md, csv or json\n"
    "  -q, --quiet        no log on stderr\n"
    "\n"
    "Examples:\n"
    "  tinyml schedule lenet5-int8.tmf\n"
    "  tinyml schedule dscnn-int8.tmf --ram-limit 12K -o dscnn-sched.tmf\n"
    "  tinyml quantize base.tmf --calib fashion-mnist | tinyml schedule | tinyml export --c -o out\n"
    "\n"
    "docs/memory.md explains the schedules and how to read the table.\n";

void cli_sched_init(cli_sched *s)
{
    memset(s, 0, sizeof *s);
    s->max_recompute = -1.0;
}

int cli_sched_flag(cli *c, cli_sched *s)
{
    if (cli_double(c, "max-recompute", 0, 0.0, 1000.0, &s->max_recompute)) return 1;
    if (cli_flag(c, "no-schedule", 0)) {
        s->none = 1;
        return 1;
    }
    const char *v = NULL;
    if (cli_str(c, "ram-limit", 0, &v)) {
        char buf[64];
        size_t n = strlen(v);
        int64_t mul = 1;
        if (n >= 3 && strcmp(v + n - 3, "KiB") == 0) {
            mul = 1024;
            n -= 3;
        } else if (n >= 1 && (v[n - 1] == 'K' || v[n - 1] == 'k')) {
            mul = 1024;
            n -= 1;
        }
        long x = 0;
        if (n == 0 || n >= sizeof buf) cli_usage_error(c, "--ram-limit expects bytes (e.g. 5000 or 32K), got '%s'", v);
        memcpy(buf, v, n);
        buf[n] = '\0';
        if (cli_parse_long(buf, &x) || x < 1 || x > (1L << 40) / mul)
            cli_usage_error(c, "--ram-limit expects bytes (e.g. 5000 or 32K), got '%s'", v);
        s->ram_limit = (int64_t)x * mul;
        return 1;
    }
    return 0;
}

/* "2.10x less" when the arena is below the bound; above it (a tiny model whose
 * kernel scratch and 16-byte alignment outweigh what a schedule saves: the
 * bound counts neither) the words say so instead of printing "0.75x less". */
static void compare_words(int64_t arena, int64_t bound, char *buf, size_t n)
{
    if (arena <= 0) snprintf(buf, n, "no arena");
    else if (arena <= bound) snprintf(buf, n, "%.2fx less", (double)bound / (double)arena);
    else
        snprintf(buf, n, "%lld bytes more: kernel scratch and alignment, which the bound does not count",
                 (long long)(arena - bound));
}

static void check_combination(const cli *c, const cli_sched *s)
{
    int n = (s->max_recompute >= 0) + (s->ram_limit > 0) + s->none;
    if (n > 1) cli_usage_error(c, "--max-recompute, --ram-limit and --no-schedule exclude each other: give one");
}

void cli_sched_opts(const cli *c, const cli_sched *s, const tml_model *m, tml_sched_opts *o, const char **from)
{
    check_combination(c, s);
    tml_sched_opts_default(o);
    if (s->none || s->max_recompute >= 0 || s->ram_limit > 0) {
        if (s->none) o->enabled = 0;
        if (s->max_recompute >= 0) o->max_recompute = s->max_recompute / 100.0;
        if (s->ram_limit > 0) o->ram_limit = s->ram_limit;
        *from = "command line";
        return;
    }
    int found = 0;
    tml_status st = tml_sched_opts_from_model(m, o, &found);
    if (st) cli_fail_status(c, st);
    *from = found ? "stored in the model" : "default";
}

void cli_sched_describe(const tml_sched_opts *o, char *buf, size_t cap)
{
    if (!o->enabled) snprintf(buf, cap, "none: layer by layer");
    else if (o->ram_limit > 0) snprintf(buf, cap, "fewest extra MACs within %lld bytes of RAM", (long long)o->ram_limit);
    else snprintf(buf, cap, "least RAM within %g%% extra MACs", 100.0 * o->max_recompute);
}

int cli_sched_compute(const cli *c, const tml_model *m, const tml_sched_opts *o, const tml_export_opts *eo,
                      tml_schedule *s)
{
    /* the schedule of the C export (its kernels' scratch in the arena), so
     * that info, eval and export agree; a model the export refuses gets the
     * activations-only schedule */
    tml_export_opts d;
    tml_export_opts_default(&d);
    if (eo) d = *eo;
    d.schedule = o;
    tml_status st = tml_export_schedule(m, &d, s);
    if (st == TML_OK) return 1;
    if (st == TML_ERR_NOMEM || st == TML_ERR_INTERRUPTED) cli_fail_status(c, st);
    st = tml_schedule_model(m, o, s);
    if (st) cli_fail_status(c, st);
    return 0;
}

tml_table *cli_sched_table(const tml_model *m, const tml_schedule *s, const char *from, int exported)
{
    static const char *const hdr[] = {"segment", "kind", "layers", "tiles", "peak_bytes", "bound_bytes", "ratio", "macs",
                                      "extra_macs", "extra%"};
    tml_table *t = tml_table_new("schedule", "Memory schedule (RAM of one inference, int8)", 10, hdr);
    if (!t) return NULL;
    for (int i = 0; i < s->n_segments; i++) {
        const tml_sched_segment *g = &s->segments[i];
        char name[300], tiles[32];
        if (g->first == g->last) snprintf(name, sizeof name, "%s", m->nodes[g->first].name);
        else snprintf(name, sizeof name, "%s..%s", m->nodes[g->first].name, m->nodes[g->last].name);
        if (g->kind == TML_SEG_PATCH) snprintf(tiles, sizeof tiles, "%dx%d", g->tiles_h, g->tiles_w);
        else snprintf(tiles, sizeof tiles, "-");
        tml_table_add_row(t);
        tml_table_str(t, 0, name);
        tml_table_str(t, 1, tml_seg_kind_name(g->kind));
        tml_table_int(t, 2, g->last - g->first + 1);
        tml_table_str(t, 3, tiles);
        tml_table_int(t, 4, g->peak_bytes);
        tml_table_int(t, 5, g->bound_bytes);
        tml_table_num(t, 6, g->peak_bytes > 0 ? (double)g->bound_bytes / (double)g->peak_bytes : 0.0 / 0.0, "%.2fx");
        tml_table_int(t, 7, g->macs);
        tml_table_int(t, 8, g->extra_macs);
        tml_table_num(t, 9, g->macs > 0 ? 100.0 * (double)g->extra_macs / (double)g->macs : 0.0, "%.1f");
    }
    tml_table_add_row(t);
    tml_table_mark_total(t);
    tml_table_str(t, 0, "model (arena)");
    tml_table_int(t, 2, m->n_nodes);
    tml_table_int(t, 4, s->arena_bytes);
    tml_table_int(t, 5, s->bound_bytes);
    tml_table_num(t, 6, s->arena_bytes > 0 ? (double)s->bound_bytes / (double)s->arena_bytes : 0.0 / 0.0, "%.2fx");
    tml_table_int(t, 7, s->macs);
    tml_table_int(t, 8, s->extra_macs);
    tml_table_num(t, 9, s->macs > 0 ? 100.0 * (double)s->extra_macs / (double)s->macs : 0.0, "%.2f");
    char opt[128];
    cli_sched_describe(&s->opts, opt, sizeof opt);
    char cmp[160];
    compare_words(s->arena_bytes, s->bound_bytes, cmp, sizeof cmp);
    tml_table_note(t, "schedule: %s (%s); peak RAM %lld bytes vs the tensor-by-tensor bound %lld (%s), "
                      "%lld extra MACs (%.2f%%)",
                   opt, from, (long long)s->arena_bytes, (long long)s->bound_bytes, cmp, (long long)s->extra_macs,
                   s->macs > 0 ? 100.0 * (double)s->extra_macs / (double)s->macs : 0.0);
    if (s->opts.enabled && s->opts.ram_limit > 0 && !s->fits)
        tml_table_note(t, "NO SCHEDULE FITS %lld bytes: this is the least RAM found, %lld bytes over", (long long)s->opts.ram_limit,
                       (long long)(s->arena_bytes - s->opts.ram_limit));
    tml_table_note(t, "peak: bytes live while the segment runs (whole tensors crossing it + its rows / tiles / delay "
                      "rows%s, 16-byte aligned); bound: activations live at one of its layers run layer by layer; "
                      "the model row is the arena (its buffers placed by lifetime)",
                   exported ? " + the exported kernels' scratch" : "");
    if (!exported)
        tml_table_note(t, "the C export refuses this model (%s): kernel scratch not included", tml_last_error());
    return t;
}

int cmd_schedule(int argc, char **argv)
{
    cli c;
    cli_init(&c, "schedule", help, argc, argv);
    const char *pos[1] = {NULL}, *out = NULL;
    cli_sched so;
    cli_sched_init(&so);
    while (cli_next(&c)) {
        if (cli_sched_flag(&c, &so)) continue;
        if (cli_str(&c, "output", 'o', &out)) continue;
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    tml_model *m = cli_load_model(&c, pos[0]);
    if (!tml_model_is_quantized(m))
        cli_fail(&c, "'%s' is a float model: memory schedules are for int8 models; quantize first: "
                     "tinyml quantize MODEL --calib fashion-mnist -o MODEL-int8.tmf",
                 m->meta.name ? m->meta.name : "model");
    tml_sched_opts o;
    const char *from;
    cli_sched_opts(&c, &so, m, &o, &from);
    tml_schedule s;
    int exported = cli_sched_compute(&c, m, &o, NULL, &s);
    tml_table *t = cli_sched_table(m, &s, from, exported);
    if (!t) cli_fail(&c, "out of memory");
    /* write the model when asked or when stdout is a pipe; on a terminal only the table */
    int write = out != NULL || !isatty(STDOUT_FILENO);
    cli_print_pass_report(&c, write ? out : "", &t, 1);
    if (o.enabled && o.ram_limit > 0 && !s.fits) {
        tml_table_free(t);
        int64_t least = s.arena_bytes;
        tml_schedule_free(&s);
        cli_fail(&c, "no schedule fits %lld bytes: the least RAM is %lld bytes (%lld over); the model was not written",
                 (long long)o.ram_limit, (long long)least, (long long)(least - o.ram_limit));
    }
    if (write) {
        tml_status st = tml_sched_opts_to_model(m, &o);
        if (st) cli_fail_status(&c, st);
        cJSON *h = cJSON_CreateObject();
        if (!o.enabled) cJSON_AddBoolToObject(h, "none", 1);
        else if (o.ram_limit > 0) cJSON_AddNumberToObject(h, "ram_limit", (double)o.ram_limit);
        else cJSON_AddNumberToObject(h, "max_recompute", o.max_recompute);
        cJSON_AddNumberToObject(h, "arena_bytes", (double)s.arena_bytes);
        cJSON_AddNumberToObject(h, "bound_bytes", (double)s.bound_bytes);
        cJSON_AddNumberToObject(h, "extra_macs", (double)s.extra_macs);
        cli_add_history(&c, m, h);
        cli_save_model(&c, m, out);
    }
    char cmp[160];
    compare_words(s.arena_bytes, s.bound_bytes, cmp, sizeof cmp);
    cli_log(&c, "peak RAM %lld bytes (tensor-by-tensor bound %lld, %s), %lld extra MACs", (long long)s.arena_bytes,
            (long long)s.bound_bytes, cmp, (long long)s.extra_macs);
    tml_table_free(t);
    tml_schedule_free(&s);
    tml_model_free(m);
    return 0;
}
