/*
 * gen_seeds.c - writes the seed corpora of the fuzz targets (run at build
 * time by the TML_FUZZ build; see docs/fuzzing.md).
 *
 *   gen_seeds OUTDIR   creates OUTDIR/{tmf,idx,csv,png}/ with a few small
 *                      valid inputs each (the ONNX seeds are copied from
 *                      tests/fixtures/onnx by CMake).
 *
 * The .tmf seeds are tiny hand-built models that together use every op and
 * every storage path the reader has: float dense, pruned (sparse layouts),
 * clustered (codebooks), entropy-coded, an int8 model with quantization
 * parameters and int32 biases, its packed 4- and 2-bit weight forms, TFLite
 * rounding, and a model carrying a memory schedule entry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <png.h>

#include "tinyml/tml_cluster.h"
#include "tinyml/tml_core.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_prune.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_schedule.h"

static const char *outdir;

static void die(const char *what)
{
    fprintf(stderr, "gen_seeds: %s: %s\n", what, tml_last_error());
    exit(1);
}

static void sub(const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", outdir, name);
    mkdir(p, 0755);
}

static void put(const char *sub_dir, const char *name, const void *buf, size_t len)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/%s", outdir, sub_dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "gen_seeds: cannot write %s\n", p);
        exit(1);
    }
}

static int act(tml_model *m, const char *name)
{
    int id = tml_model_add_tensor(m, name, TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    if (id < 0) die(name);
    return id;
}

static int param(tml_model *m, const char *name, int ndim, const int32_t *dims, float v0, float step)
{
    int id = tml_model_add_tensor(m, name, TML_DTYPE_F32, TML_TENSOR_PARAM, ndim, dims, NULL);
    if (id < 0) die(name);
    float *d = m->tensors[id].data;
    int64_t n = tml_tensor_numel(&m->tensors[id]);
    for (int64_t i = 0; i < n; i++) d[i] = v0 + step * (float)((i * 7) % 11 - 5);
    return id;
}

static int node(tml_model *m, const char *name, tml_op op, int n_in, const int *in, int out)
{
    int k = tml_model_add_node(m, name, op, n_in, in, out);
    if (k < 0) die(name);
    return k;
}

/* (4,4,1) -> conv 3x3 pad 1 -> relu -> maxpool 2 -> flatten -> dense 3 -> softmax */
static tml_model *conv_model(void)
{
    tml_model *m = tml_model_new();
    int32_t in_dims[3] = {4, 4, 1}, wd[4] = {2, 3, 3, 1}, bd[1] = {2}, fd[2] = {3, 8}, fbd[1] = {3};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 3, in_dims, NULL);
    int w = param(m, "conv.w", 4, wd, 0.0f, 0.1f), b = param(m, "conv.b", 1, bd, 0.01f, 0.01f);
    int c = act(m, "conv"), r = act(m, "relu"), p = act(m, "pool"), f = act(m, "flat"), l = act(m, "logits"),
        s = act(m, "prob");
    int fw = param(m, "fc.w", 2, fd, 0.0f, 0.05f), fb = param(m, "fc.b", 1, fbd, 0.0f, 0.02f);
    int k = node(m, "conv", TML_OP_CONV2D, 3, (int[]){x, w, b}, c);
    for (int i = 0; i < 4; i++) m->nodes[k].pad[i] = 1;
    node(m, "relu", TML_OP_RELU, 1, (int[]){c}, r);
    k = node(m, "pool", TML_OP_MAXPOOL, 1, (int[]){r}, p);
    m->nodes[k].kh = m->nodes[k].kw = m->nodes[k].sh = m->nodes[k].sw = 2;
    node(m, "flat", TML_OP_RESHAPE, 1, (int[]){p}, f);
    node(m, "fc", TML_OP_DENSE, 3, (int[]){f, fw, fb}, l);
    node(m, "prob", TML_OP_SOFTMAX, 1, (int[]){l}, s);
    m->input = x;
    m->output = s;
    m->meta.name = tml_strdup("seed-conv");
    if (tml_model_finalize(m)) die("conv model");
    return m;
}

/* (4,4,2) -> depthwise 3x3 pad 1 -> batchnorm -> add x -> relu6 -> avgpool 2
 * -> global avgpool -> dropout -> dense 3 */
static tml_model *res_model(void)
{
    tml_model *m = tml_model_new();
    int32_t in_dims[3] = {4, 4, 2}, wd[4] = {1, 3, 3, 2}, cd[1] = {2}, fd[2] = {3, 2};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 3, in_dims, NULL);
    int w = param(m, "dw.w", 4, wd, 0.0f, 0.1f);
    int g = param(m, "bn.g", 1, cd, 1.0f, 0.0f), be = param(m, "bn.b", 1, cd, 0.1f, 0.0f),
        mu = param(m, "bn.m", 1, cd, 0.0f, 0.01f), var = param(m, "bn.v", 1, cd, 1.0f, 0.0f);
    int fw = param(m, "fc.w", 2, fd, 0.0f, 0.1f);
    int d = act(m, "dw"), bn = act(m, "bn"), a = act(m, "add"), r6 = act(m, "relu6"), ap = act(m, "avg"),
        gp = act(m, "gap"), dr = act(m, "drop"), y = act(m, "y");
    int k = node(m, "dw", TML_OP_DEPTHWISE_CONV2D, 2, (int[]){x, w}, d);
    for (int i = 0; i < 4; i++) m->nodes[k].pad[i] = 1;
    node(m, "bn", TML_OP_BATCHNORM, 5, (int[]){d, g, be, mu, var}, bn);
    node(m, "add", TML_OP_ADD, 2, (int[]){bn, x}, a);
    node(m, "relu6", TML_OP_RELU6, 1, (int[]){a}, r6);
    k = node(m, "avg", TML_OP_AVGPOOL, 1, (int[]){r6}, ap);
    m->nodes[k].kh = m->nodes[k].kw = m->nodes[k].sh = m->nodes[k].sw = 2;
    node(m, "gap", TML_OP_GLOBAL_AVGPOOL, 1, (int[]){ap}, gp);
    k = node(m, "drop", TML_OP_DROPOUT, 1, (int[]){gp}, dr);
    m->nodes[k].rate = 0.25f;
    node(m, "fc", TML_OP_DENSE, 2, (int[]){dr, fw}, y);
    m->input = x;
    m->output = y;
    m->meta.name = tml_strdup("seed-res");
    const char *labels[3] = {"a", "b", "c"};
    tml_meta_set_labels(&m->meta, 3, labels);
    if (tml_model_finalize(m)) die("res model");
    return m;
}

static void save(const tml_model *m, const char *name, int entropy)
{
    tml_save_opts o;
    tml_save_opts_default(&o);
    o.allow_entropy = entropy;
    uint8_t *buf;
    size_t len;
    if (tml_model_write_mem(m, &o, &buf, &len)) die(name);
    put("tmf", name, buf, len);
    free(buf);
}

/* int8 version: fold, then calibration statistics made up as [-2, 2] for
 * every activation (min/max only: enough for the quantizer). */
static void quantize_with(tml_model *m, int weight_bits, tml_rounding rounding)
{
    if (tml_fold(m, NULL)) die("fold");
    tml_calib cal = {.n_tensors = m->n_tensors, .samples = 1};
    cal.stats = calloc((size_t)m->n_tensors, sizeof *cal.stats);
    for (int i = 0; i < m->n_tensors; i++) {
        cal.stats[i].min = -2.0;
        cal.stats[i].max = 2.0;
    }
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    qo.weight_bits = weight_bits;
    qo.rounding = rounding;
    if (tml_quantize(m, &cal, &qo)) die("quantize");
    free(cal.stats);
}

static void quantize(tml_model *m)
{
    quantize_with(m, 8, TML_ROUNDING_TINYML);
}

static void tmf_seeds(void)
{
    sub("tmf");
    tml_model *m = conv_model();
    save(m, "conv.tmf", 0);
    tml_prune_spec ps = {.sparsity = 0.6, .norm = TML_NORM_L1};
    if (tml_prune_magnitude(m, &ps, NULL)) die("prune");
    save(m, "conv-pruned.tmf", 0);
    save(m, "conv-pruned-entropy.tmf", 1);
    tml_cluster_opts co;
    tml_cluster_opts_default(&co);
    co.bits = 2;
    if (tml_cluster(m, &co, NULL)) die("cluster");
    save(m, "conv-clustered.tmf", 1);
    quantize(m);
    save(m, "conv-int8.tmf", 1);
    tml_model_free(m);

    m = res_model();
    save(m, "res.tmf", 0);
    quantize(m);
    save(m, "res-int8.tmf", 0);
    tml_model_free(m);

    /* packed low-bit weights (4 and 2 bits), TFLite rounding */
    static const struct {
        const char *name;
        int bits;
        tml_rounding rounding;
    } low[] = {{"conv-w4.tmf", 4, TML_ROUNDING_TINYML},
               {"conv-w2-tflite.tmf", 2, TML_ROUNDING_TFLITE},
               {"res-w4-tflite.tmf", 4, TML_ROUNDING_TFLITE}};
    for (size_t i = 0; i < sizeof low / sizeof low[0]; i++) {
        m = low[i].name[0] == 'c' ? conv_model() : res_model();
        quantize_with(m, low[i].bits, low[i].rounding);
        save(m, low[i].name, 1);
        tml_model_free(m);
    }

    /* an int8 model carrying a memory schedule entry (`tinyml schedule`) */
    m = conv_model();
    quantize(m);
    tml_sched_opts so;
    tml_sched_opts_default(&so);
    so.ram_limit = 64;
    if (tml_sched_opts_to_model(m, &so)) die("schedule entry");
    save(m, "conv-int8-sched.tmf", 0);
    tml_model_free(m);
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* u16 length of the images file, the images file (n,h,w), the labels file (n). */
static void idx_seed(const char *name, int n, int h, int w, int gzip_like)
{
    uint8_t buf[512];
    size_t img = 4 + 12 + (size_t)(n * h * w);
    uint8_t *p = buf + 2;
    p[0] = p[1] = 0;
    p[2] = 0x08;
    p[3] = 3;
    be32(p + 4, (uint32_t)n);
    be32(p + 8, (uint32_t)h);
    be32(p + 12, (uint32_t)w);
    for (int i = 0; i < n * h * w; i++) p[16 + i] = (uint8_t)(i * 37);
    buf[0] = (uint8_t)img;
    buf[1] = (uint8_t)(img >> 8);
    uint8_t *l = p + img;
    l[0] = l[1] = 0;
    l[2] = 0x08;
    l[3] = 1;
    be32(l + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) l[8 + i] = (uint8_t)(i % 3);
    (void)gzip_like;
    put("idx", name, buf, 2 + img + 8 + (size_t)n);
}

static void png_seed(const char *name, int w, int h, int color_type, int depth)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/png/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "gen_seeds: cannot write %s\n", path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[2] = {{0, 0, 0}, {255, 128, 0}};
        png_set_PLTE(png, info, pal, 2);
    }
    png_write_info(png, info);
    int ch = color_type == PNG_COLOR_TYPE_RGB ? 3 : color_type == PNG_COLOR_TYPE_RGBA ? 4 : 1;
    size_t rowbytes = ((size_t)w * (size_t)ch * (size_t)depth + 7) / 8;
    uint8_t row[64];
    for (int y = 0; y < h; y++) {
        for (size_t i = 0; i < rowbytes; i++) row[i] = (uint8_t)((size_t)y * 31 + i * 17);
        if (color_type == PNG_COLOR_TYPE_PALETTE) memset(row, 0x55, rowbytes);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    mkdir(outdir, 0755);
    tmf_seeds();

    sub("idx");
    idx_seed("3x3.idx", 2, 3, 3, 0);
    idx_seed("1x5.idx", 4, 1, 5, 0);

    sub("csv");
    static const char csv1[] = "a,b,label\n0.5,1,0\n2,3.5,1\n-1e3, 4 ,2\n";
    static const char csv2[] = "1,2,3,4,0\r\n\r\n5,6,7,8,1.0\r\n";
    put("csv", "header.csv", csv1, sizeof csv1 - 1);
    put("csv", "crlf.csv", csv2, sizeof csv2 - 1);

    sub("png");
    png_seed("gray.png", 3, 2, PNG_COLOR_TYPE_GRAY, 8);
    png_seed("gray2bit.png", 5, 3, PNG_COLOR_TYPE_GRAY, 2);
    png_seed("rgba.png", 2, 2, PNG_COLOR_TYPE_RGBA, 8);
    png_seed("rgb16.png", 2, 1, PNG_COLOR_TYPE_RGB, 16);
    png_seed("palette.png", 4, 2, PNG_COLOR_TYPE_PALETTE, 1);
    return 0;
}
