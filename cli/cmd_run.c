/*
 * cmd_run.c - `tinyml run MODEL --in IN.bin --out OUT.bin [--dump DIR]`: runs
 * a model on raw tensor records in its own boundary type.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "tinyml/tml_engine.h"

static const char help[] =
    "Usage: tinyml run MODEL --in IN.bin --out OUT.bin [options]\n"
    "\n"
    "Run a model on your own input vectors. IN.bin holds records one after the\n"
    "other, each one input tensor as raw little-endian bytes in the model's own\n"
    "boundary type: int8 for integer models (the quantized values, NHWC), float32\n"
    "for float models and for int8 models with a float boundary (a .tflite with\n"
    "QUANTIZE / DEQUANTIZE at its ends). OUT.bin gets one output record per input\n"
    "record, in the same type. No preprocessing is applied: the records are what\n"
    "the model's input tensor sees. 'tinyml info MODEL' shows the shapes.\n"
    "\n"
    "--dump DIR also writes every intermediate tensor: DIR/t<id>.bin holds that\n"
    "tensor for every record, and DIR/tensors.txt lists id, name, type, shape,\n"
    "scale and zero point, so the first layer that differs from another\n"
    "runtime can be found.\n"
    "\n"
    "Options:\n"
    "  --in FILE         input records ('-' = stdin)\n"
    "  --out FILE        output records ('-' = stdout; refused on a terminal)\n"
    "  --dump DIR        also write every activation tensor (DIR is created)\n"
    "  --float           int8 model: read float32 records (quantized with the\n"
    "                    input's scale and zero point, as `tinyml eval` does) and\n"
    "                    write the outputs dequantized to float32\n"
    "  --ref             run the scalar reference kernels (same results, slower)\n"
    "  --batch N         records per engine call (default 64)\n"
    "  -q, --quiet       no log on stderr\n"
    "\n"
    "Examples:\n"
    "  tinyml run kws.tmf --in in.bin --out out.bin\n"
    "  tinyml run kws.tmf --in in.bin --out out.bin --dump layers/\n";


static void dims_str(const tml_tensor *t, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int i = 0; i < t->ndim; i++) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%d", i ? "x" : "", t->dims[i]);
}

/* Per-tensor dump buffers: every activation, all records. */
typedef struct dump {
    const char *dir;
    uint8_t **buf; /* (n_tensors) or NULL for params */
    size_t *per;   /* bytes per record */
} dump;

static void write_dump(const cli *c, const tml_model *m, const dump *d, int64_t records)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tensors.txt", d->dir);
    size_t cap = 1 << 16, len = 0;
    char *txt = malloc(cap);
    if (!txt) cli_fail(c, "out of memory");
    len += (size_t)snprintf(txt, cap, "# id dtype shape bytes_per_record scale zero_point name (file: t<id>.bin, %lld records)\n",
                            (long long)records);
    for (int i = 0; i < m->n_tensors; i++) {
        if (!d->buf[i]) continue;
        const tml_tensor *t = &m->tensors[i];
        char ds[64];
        dims_str(t, ds, sizeof ds);
        char line[8192];
        const int q = t->q.n > 0;
        int l = snprintf(line, sizeof line, "%d %s %s %zu %.9g %d %s%s\n", i, tml_dtype_name(t->dtype), ds, d->per[i],
                         q ? (double)t->q.scale[0] : 0.0, q ? t->q.zero_point[0] : 0, t->name,
                         i == m->input ? " (input)" : i == m->output ? " (output)" : "");
        if (l < 0) continue;
        if (len + (size_t)l + 1 > cap) {
            cap = (cap + (size_t)l) * 2;
            char *p = realloc(txt, cap);
            if (!p) cli_fail(c, "out of memory");
            txt = p;
        }
        memcpy(txt + len, line, (size_t)l + 1);
        len += (size_t)l;
        char fp[4096];
        snprintf(fp, sizeof fp, "%s/t%d.bin", d->dir, i);
        tml_status st = tml_write_file_atomic(fp, d->buf[i], d->per[i] * (size_t)records);
        if (st) cli_fail_status(c, st);
    }
    tml_status st = tml_write_file_atomic(path, txt, len);
    free(txt);
    if (st) cli_fail_status(c, st);
}

int cmd_run(int argc, char **argv)
{
    cli c;
    cli_init(&c, "run", help, argc, argv);
    const char *pos[1] = {NULL}, *in_path = NULL, *out_path = NULL, *dump_dir = NULL;
    int ref = 0, batch = 64, as_float = 0;
    while (cli_next(&c)) {
        if (cli_str(&c, "in", 0, &in_path)) continue;
        if (cli_str(&c, "out", 0, &out_path)) continue;
        if (cli_str(&c, "dump", 0, &dump_dir)) continue;
        if (cli_flag(&c, "float", 0)) {
            as_float = 1;
            continue;
        }
        if (cli_flag(&c, "ref", 0)) {
            ref = 1;
            continue;
        }
        if (cli_int(&c, "batch", 0, 1, 4096, &batch)) continue;
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (!in_path) cli_usage_error(&c, "missing --in IN.bin");
    if (!out_path) cli_usage_error(&c, "missing --out OUT.bin");
    if (pos[0] && strcmp(pos[0], "-") == 0 && strcmp(in_path, "-") == 0)
        cli_usage_error(&c, "the model and the records cannot both come from stdin");
    /* destinations first: a bad one fails before the work */
    if (strcmp(out_path, "-") == 0) {
        if (isatty(fileno(stdout))) cli_usage_error(&c, "refusing to write binary records to a terminal; use --out FILE");
    } else {
        cli_check_output(&c, out_path);
    }
    if (dump_dir) {
        tml_status cst = tml_check_output_dir(dump_dir);
        if (cst) cli_fail_status(&c, cst);
    }
    tml_model *m = cli_load_model(&c, pos[0]);
    const tml_dtype io = as_float ? TML_DTYPE_F32 : tml_model_io_dtype(m);
    const tml_tensor *xin = &m->tensors[m->input], *xout = &m->tensors[m->output];
    const size_t esz = tml_dtype_size(io);
    const size_t in_rec = (size_t)tml_tensor_numel(xin) * esz, out_rec = (size_t)tml_tensor_numel(xout) * esz;
    size_t len = 0;
    /* 256 MiB of records (320k Fashion-MNIST images): an endless input
     * (/dev/zero) fails there instead of taking gigabytes */
    uint8_t *in = cli_read_all(&c, in_path, (size_t)1 << 28, &len);
    if (len == 0) cli_fail(&c, "'%s' is empty: no records", in_path);
    char ds[64];
    dims_str(xin, ds, sizeof ds);
    if (len % in_rec)
        cli_fail(&c, "'%s' has %zu bytes, not a whole number of %zu-byte records (input %s %s)", in_path, len, in_rec, ds,
                 tml_dtype_name(io));
    const int64_t records = (int64_t)(len / in_rec);
    if (records > ((int64_t)1 << 31) / (int64_t)(out_rec ? out_rec : 1))
        cli_fail(&c, "too many records (%lld)", (long long)records);
    uint8_t *out = malloc(out_rec * (size_t)records);
    if (!out) cli_fail(&c, "out of memory");

    const int nb = records < batch ? (int)records : batch;
    tml_engine_opts eo = {.use_ref = ref, .keep_all = dump_dir != NULL};
    tml_engine *e;
    tml_status st = tml_engine_new(m, nb, &eo, &e);
    if (st) cli_fail_status(&c, st);

    dump d = {dump_dir, NULL, NULL};
    if (dump_dir) {
        if (mkdir(dump_dir, 0755) != 0 && errno != EEXIST) cli_fail(&c, "cannot create '%s': %s", dump_dir, strerror(errno));
        struct stat sb;
        if (stat(dump_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) cli_fail(&c, "'%s' is not a directory", dump_dir);
        d.buf = calloc((size_t)m->n_tensors, sizeof *d.buf);
        d.per = calloc((size_t)m->n_tensors, sizeof *d.per);
        if (!d.buf || !d.per) cli_fail(&c, "out of memory");
        for (int i = 0; i < m->n_tensors; i++) {
            const tml_tensor *t = &m->tensors[i];
            if (t->kind != TML_TENSOR_ACT) continue;
            d.per[i] = tml_tensor_nbytes(t);
            d.buf[i] = malloc(d.per[i] * (size_t)records);
            if (!d.buf[i]) cli_fail(&c, "out of memory for the dump of '%s'", t->name);
        }
    }
    for (int64_t r = 0; r < records; r += nb) {
        const int n = records - r < nb ? (int)(records - r) : nb;
        st = as_float ? tml_engine_run(e, (const float *)(const void *)(in + (size_t)r * in_rec), n,
                                       (float *)(void *)(out + (size_t)r * out_rec))
                      : tml_engine_run_raw(e, in + (size_t)r * in_rec, n, out + (size_t)r * out_rec);
        if (st) cli_fail_status(&c, st);
        for (int i = 0; dump_dir && i < m->n_tensors; i++) {
            if (!d.buf[i]) continue;
            const void *a = tml_engine_activation(e, i);
            if (a) memcpy(d.buf[i] + (size_t)r * d.per[i], a, d.per[i] * (size_t)n);
        }
    }
    tml_engine_free(e);
    if (strcmp(out_path, "-") == 0) {
        cli_write_stdout(&c, out, out_rec * (size_t)records);
    } else {
        st = tml_write_file_atomic(out_path, out, out_rec * (size_t)records);
        if (st) cli_fail_status(&c, st);
    }
    if (dump_dir) write_dump(&c, m, &d, records);
    char os[64];
    dims_str(xout, os, sizeof os);
    cli_log(&c, "ran %lld records: input %s %s (%zu bytes each), output %s %s (%zu bytes each)%s%s", (long long)records,
            ds, tml_dtype_name(io), in_rec, os, tml_dtype_name(io), out_rec, dump_dir ? "; tensors in " : "",
            dump_dir ? dump_dir : "");
    if (d.buf)
        for (int i = 0; i < m->n_tensors; i++) free(d.buf[i]);
    free(d.buf);
    free(d.per);
    free(in);
    free(out);
    tml_model_free(m);
    return 0;
}
