/*
 * cmd_create.c - `tinyml create ARCH`: a new model with initialized weights.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_zoo.h"

static const char help[] =
    "Usage: tinyml create ARCH [options] [-o OUT]\n"
    "\n"
    "Build a model with freshly initialized weights (He-uniform, seeded) from a\n"
    "built-in architecture or an ARCH.json description, and write it as .tmf.\n"
    "\n"
    "Architectures:\n"
    "  lenet300        MLP 784-300-100-N (266k params)\n"
    "  lenet5          conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc N (431k)\n"
    "  dscnn           depthwise-separable keyword-spotting CNN (DS-CNN-S); 28x28 or 49x10\n"
    "  mobilenet-tiny  MobileNet-v1 style; --width sets the width multiplier\n"
    "  resnet8         ResNet-8 of MLPerf Tiny (3 residual stacks 16/32/64)\n"
    "  FILE.json       sequential layers, see docs/arch-json.md\n"
    "\n"
    "Options:\n"
    "  --input HxWxC      input shape (default 28x28x1, Fashion-MNIST); --input N: a vector\n"
    "                     of N features (tabular data, e.g. a CSV; preprocessing scale 1)\n"
    "  --classes N        number of classes (default 10)\n"
    "  --width A          mobilenet-tiny width multiplier (default 0.5)\n"
    "  --scale X          preprocessing: multiply raw values by X (default 1/255 for\n"
    "                     images, 1 for vectors)\n"
    "  --mean M[,M..]     preprocessing: subtract per-channel mean after scaling\n"
    "  --std S[,S..]      preprocessing: divide by per-channel std\n"
    "  --name NAME        model name stored in the file (default: ARCH)\n"
    "  --seed N           weight initialization seed (default 1)\n"
    "  -o, --output FILE  write here ('-' = stdout; default stdout if not a terminal)\n"
    "  -q, --quiet        no log on stderr\n"
    "\n"
    "Examples:\n"
    "  tinyml create lenet5 -o lenet5.tmf\n"
    "  tinyml create dscnn --input 49x10x1 --classes 12 -o kws.tmf\n"
    "  tinyml create lenet300 --input 20 --classes 3 -o tabular.tmf     # MLP 20-300-100-3\n"
    "  tinyml create mobilenet-tiny --width 0.25 --seed 7 | tinyml info\n";

/* "HxWxC" (an image) or "N" (a vector of N features: *w = 0). */
static int parse_shape(const char *s, int *h, int *w, int *c)
{
    char tail;
    long n;
    if (cli_parse_long(s, &n) == 0) {
        *h = (int)n;
        *w = *c = 0;
        return n < 1 || n > (1 << 24) ? -1 : 0;
    }
    if (sscanf(s, "%dx%dx%d%c", h, w, c, &tail) != 3) return -1;
    return (*h < 1 || *w < 1 || *c < 1 || *h > 4096 || *w > 4096 || *c > 64) ? -1 : 0;
}

int cmd_create(int argc, char **argv)
{
    cli c;
    cli_init(&c, "create", help, argc, argv);
    const char *pos[1] = {NULL}, *out = NULL, *shape = NULL, *name = NULL, *mean = NULL, *stdv = NULL;
    int classes = 0;
    double width = 0, scale = -1;
    while (cli_next(&c)) {
        if (cli_str(&c, "output", 'o', &out)) continue;
        if (cli_str(&c, "input", 0, &shape)) continue;
        if (cli_int(&c, "classes", 0, 2, 100000, &classes)) continue;
        if (cli_double(&c, "width", 0, 1e-3, 4.0, &width)) continue;
        if (cli_double(&c, "scale", 0, 1e-12, 1e12, &scale)) continue;
        if (cli_str(&c, "mean", 0, &mean)) continue;
        if (cli_str(&c, "std", 0, &stdv)) continue;
        if (cli_str(&c, "name", 0, &name)) continue;
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (!pos[0]) cli_usage_error(&c, "missing ARCH (e.g. lenet5)");
    cli_check_model_output(&c, out);
    tml_zoo_opts o = {0};
    o.classes = classes;
    o.width = (float)width;
    o.seed = c.seed;
    if (shape && parse_shape(shape, &o.h, &o.w, &o.c))
        cli_usage_error(&c, "--input expects HxWxC (each in 1..4096, C up to 64) or N (a vector of N features), got '%s'",
                        shape);
    if (shape && !o.w) {
        o.features = o.h;
        o.h = 0;
    }
    tml_model *m = NULL;
    tml_status st = tml_zoo_create(pos[0], &o, &m);
    if (st) cli_fail_status(&c, st);
    if (scale > 0) m->meta.pre.scale = (float)scale;
    cli_set_mean_std(&c, m, mean, stdv);
    if (name) {
        free(m->meta.name);
        m->meta.name = tml_strdup(name);
    }
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "arch", pos[0]);
    cJSON_AddNumberToObject(h, "seed", (double)c.seed);
    const tml_tensor *in = &m->tensors[m->input];
    char sh[64];
    if (in->ndim == 3)
        snprintf(sh, sizeof sh, "%dx%dx%d", in->dims[0], in->dims[1], in->dims[2]);
    else
        snprintf(sh, sizeof sh, "%d", in->dims[0]);
    cJSON_AddStringToObject(h, "input", sh);
    cJSON_AddNumberToObject(h, "classes", m->meta.n_classes);
    if (strcmp(pos[0], "mobilenet-tiny") == 0) cJSON_AddNumberToObject(h, "width", width > 0 ? width : 0.5);
    cli_add_history(&c, m, h);
    cli_save_model(&c, m, out);
    int64_t params = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == TML_TENSOR_PARAM) params += tml_tensor_numel(&m->tensors[i]);
    cli_log(&c, "created %s: %s input, %d classes, %lld parameters, seed %llu", pos[0], sh, m->meta.n_classes,
            (long long)params, (unsigned long long)c.seed);
    tml_model_free(m);
    return 0;
}
