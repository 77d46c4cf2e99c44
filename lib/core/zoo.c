/*
 * zoo.c - built-in architectures and the sequential JSON layer description.
 *
 * Models are built layer by layer with a small builder that keeps the current
 * activation and infers its shape after each layer, so every layer knows its
 * input shape (needed for "same" padding and weight shapes).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tinyml/tml_zoo.h"

typedef enum pad_mode { PAD_VALID = 0, PAD_SAME = 1 } pad_mode;

typedef struct zb {
    tml_model *m;
    int cur;
    tml_rng rng;
    tml_status st;
    int count[TML_OP_COUNT];
} zb;

static const tml_tensor *cur_t(zb *b) { return &b->m->tensors[b->cur]; }

static void uniquename(zb *b, const char *base, tml_op op, char *out, size_t cap)
{
    if (base && *base) {
        snprintf(out, cap, "%s", base);
        return;
    }
    static const char *const prefix[TML_OP_COUNT] = {"conv", "dwconv", "fc", "relu", "relu6", "pool", "avgpool",
                                                    "gap", "add", "flatten", "softmax", "bn", "dropout"};
    snprintf(out, cap, "%s%d", prefix[op], ++b->count[op]);
}

/* Adds a constant initialized uniformly in [-bound, bound] (bound 0: zeros, or
 * `fill` when non-zero). */
static int add_param(zb *b, const char *node, const char *suffix, int ndim, const int32_t *dims, float bound, float fill)
{
    if (b->st) return -1;
    char name[160];
    snprintf(name, sizeof name, "%s.%s", node, suffix);
    int id = tml_model_add_tensor(b->m, name, TML_DTYPE_F32, TML_TENSOR_PARAM, ndim, dims, NULL);
    if (id < 0) {
        b->st = (tml_status)id;
        return -1;
    }
    tml_tensor *t = &b->m->tensors[id];
    float *p = t->data;
    int64_t n = tml_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        p[i] = bound > 0 ? (float)((2.0 * tml_rng_uniform(&b->rng) - 1.0) * bound) : fill;
    return id;
}

/* Adds the node's output tensor and the node; returns the node index. */
static int add_node(zb *b, const char *name, tml_op op, int n_in, const int *in)
{
    if (b->st) return -1;
    int out = tml_model_add_tensor(b->m, name, TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    if (out < 0) {
        b->st = (tml_status)out;
        return -1;
    }
    int ni = tml_model_add_node(b->m, name, op, n_in, in, out);
    if (ni < 0) {
        b->st = (tml_status)ni;
        return -1;
    }
    return ni;
}

/* Makes the node's output current and infers its shape (the whole graph is
 * finalized once, in zb_end: per layer it made building quadratic). Callers
 * set attributes before committing. */
static void commit(zb *b, int ni)
{
    if (b->st || ni < 0) return;
    int out = b->m->nodes[ni].out;
    b->m->output = out;
    tml_status st = tml_model_infer_node(b->m, ni);
    if (st) {
        b->st = st;
        return;
    }
    b->cur = out;
}

static void same_pad(int in, int k, int s, int d, int *p0, int *p1)
{
    int out = (in + s - 1) / s;
    int total = (out - 1) * s + (k - 1) * d + 1 - in;
    if (total < 0) total = 0;
    *p0 = total / 2;
    *p1 = total - total / 2;
}

static void set_window(zb *b, tml_node *n, int kh, int kw, int sh, int sw, pad_mode pm)
{
    const tml_tensor *x = cur_t(b);
    n->kh = kh;
    n->kw = kw;
    n->sh = sh;
    n->sw = sw;
    if (pm == PAD_SAME) {
        same_pad(x->dims[0], kh, sh, 1, &n->pad[0], &n->pad[2]);
        same_pad(x->dims[1], kw, sw, 1, &n->pad[1], &n->pad[3]);
    }
}

static float he_bound(int64_t fan_in, tml_act act)
{
    /* He-uniform for ReLU-family outputs, LeCun-uniform otherwise. */
    double gain = act != TML_ACT_NONE ? 6.0 : 3.0;
    return (float)sqrt(gain / (double)(fan_in > 0 ? fan_in : 1));
}

static void zb_conv(zb *b, const char *name, int filters, int kh, int kw, int sh, int sw, pad_mode pm, tml_act act,
                    int bias, tml_act init_act)
{
    if (b->st) return;
    if (cur_t(b)->ndim != 3) {
        b->st = tml_error(TML_ERR_SHAPE, "conv2d needs an HxWxC input");
        return;
    }
    char nm[128];
    uniquename(b, name, TML_OP_CONV2D, nm, sizeof nm);
    int c = cur_t(b)->dims[2];
    int32_t wd[4] = {filters, kh, kw, c}, bd[1] = {filters};
    int in[3] = {b->cur, -1, -1};
    in[1] = add_param(b, nm, "w", 4, wd, he_bound((int64_t)kh * kw * c, init_act), 0);
    if (bias) in[2] = add_param(b, nm, "b", 1, bd, 0, 0);
    int ni = add_node(b, nm, TML_OP_CONV2D, bias ? 3 : 2, in);
    if (ni < 0) return;
    tml_node *n = &b->m->nodes[ni];
    set_window(b, n, kh, kw, sh, sw, pm);
    n->act = act;
    commit(b, ni);
}

static void zb_dwconv(zb *b, const char *name, int k, int s, int mult, pad_mode pm, tml_act act, int bias,
                      tml_act init_act)
{
    if (b->st) return;
    if (cur_t(b)->ndim != 3) {
        b->st = tml_error(TML_ERR_SHAPE, "depthwise_conv2d needs an HxWxC input");
        return;
    }
    char nm[128];
    uniquename(b, name, TML_OP_DEPTHWISE_CONV2D, nm, sizeof nm);
    int c = cur_t(b)->dims[2];
    int32_t wd[4] = {1, k, k, c * mult}, bd[1] = {c * mult};
    int in[3] = {b->cur, -1, -1};
    in[1] = add_param(b, nm, "w", 4, wd, he_bound((int64_t)k * k, init_act), 0);
    if (bias) in[2] = add_param(b, nm, "b", 1, bd, 0, 0);
    int ni = add_node(b, nm, TML_OP_DEPTHWISE_CONV2D, bias ? 3 : 2, in);
    if (ni < 0) return;
    tml_node *n = &b->m->nodes[ni];
    set_window(b, n, k, k, s, s, pm);
    n->depth_mult = mult;
    n->act = act;
    commit(b, ni);
}

static void zb_bn(zb *b, const char *name)
{
    if (b->st) return;
    char nm[128];
    uniquename(b, name, TML_OP_BATCHNORM, nm, sizeof nm);
    const tml_tensor *x = cur_t(b);
    int32_t d[1] = {x->dims[x->ndim - 1]};
    int in[5] = {b->cur, -1, -1, -1, -1};
    in[1] = add_param(b, nm, "gamma", 1, d, 0, 1.0f);
    in[2] = add_param(b, nm, "beta", 1, d, 0, 0);
    in[3] = add_param(b, nm, "mean", 1, d, 0, 0);
    in[4] = add_param(b, nm, "var", 1, d, 0, 1.0f);
    commit(b, add_node(b, nm, TML_OP_BATCHNORM, 5, in));
}

static void zb_unary(zb *b, const char *name, tml_op op)
{
    if (b->st) return;
    char nm[128];
    uniquename(b, name, op, nm, sizeof nm);
    int in[1] = {b->cur};
    commit(b, add_node(b, nm, op, 1, in));
}

static void zb_pool(zb *b, const char *name, tml_op op, int k, int s, pad_mode pm)
{
    if (b->st) return;
    if (cur_t(b)->ndim != 3) {
        b->st = tml_error(TML_ERR_SHAPE, "%s needs an HxWxC input", tml_op_name(op));
        return;
    }
    char nm[128];
    uniquename(b, name, op, nm, sizeof nm);
    int in[1] = {b->cur};
    int ni = add_node(b, nm, op, 1, in);
    if (ni < 0) return;
    set_window(b, &b->m->nodes[ni], k, k, s, s, pm);
    commit(b, ni);
}

static void zb_dense(zb *b, const char *name, int units, tml_act act, tml_act init_act)
{
    if (b->st) return;
    char nm[128];
    uniquename(b, name, TML_OP_DENSE, nm, sizeof nm);
    int64_t f = tml_tensor_numel(cur_t(b));
    int32_t wd[2] = {units, (int32_t)f}, bd[1] = {units};
    int in[3] = {b->cur, -1, -1};
    in[1] = add_param(b, nm, "w", 2, wd, he_bound(f, init_act), 0);
    in[2] = add_param(b, nm, "b", 1, bd, 0, 0);
    int ni = add_node(b, nm, TML_OP_DENSE, 3, in);
    if (ni < 0) return;
    b->m->nodes[ni].act = act;
    commit(b, ni);
}

static void zb_dropout(zb *b, const char *name, float rate)
{
    if (b->st) return;
    char nm[128];
    uniquename(b, name, TML_OP_DROPOUT, nm, sizeof nm);
    int in[1] = {b->cur};
    int ni = add_node(b, nm, TML_OP_DROPOUT, 1, in);
    if (ni < 0) return;
    b->m->nodes[ni].rate = rate;
    commit(b, ni);
}

static void zb_add(zb *b, const char *name, int other, tml_act act)
{
    if (b->st) return;
    char nm[128];
    uniquename(b, name, TML_OP_ADD, nm, sizeof nm);
    int in[2] = {b->cur, other};
    int ni = add_node(b, nm, TML_OP_ADD, 2, in);
    if (ni < 0) return;
    b->m->nodes[ni].act = act;
    commit(b, ni);
}

/* Starts a model whose input is an image (h, w, c) or, with w == 0, a vector
 * of h features (tabular data: raw values are used as they are, scale 1). */
static tml_status zb_begin(zb *b, const char *name, const char *arch, const tml_zoo_opts *o, int h, int w, int c)
{
    memset(b, 0, sizeof *b);
    b->m = tml_model_new();
    if (!b->m) return TML_ERR_NOMEM;
    tml_rng_seed(&b->rng, o ? o->seed : 0);
    int32_t d[3] = {h, w, c};
    int x = tml_model_add_tensor(b->m, "input", TML_DTYPE_F32, TML_TENSOR_ACT, w ? 3 : 1, d, NULL);
    if (x < 0) return (tml_status)x;
    b->m->input = x;
    b->m->output = x;
    b->cur = x;
    b->m->meta.name = tml_strdup(name);
    b->m->meta.arch = tml_strdup(arch);
    b->m->meta.pre.scale = w ? 1.0f / 255.0f : 1.0f;
    if (!b->m->meta.name || !b->m->meta.arch) return tml_error(TML_ERR_NOMEM, "out of memory");
    return TML_OK;
}

static tml_status zb_end(zb *b, int classes, tml_model **out)
{
    if (!b->st && tml_tensor_numel(cur_t(b)) != classes)
        b->st = tml_error(TML_ERR_SHAPE, "the last layer has %lld outputs, expected %d classes",
                          (long long)tml_tensor_numel(cur_t(b)), classes);
    if (!b->st) {
        b->m->meta.n_classes = classes;
        b->st = tml_model_finalize(b->m);
    }
    if (b->st) {
        tml_model_free(b->m);
        return b->st;
    }
    *out = b->m;
    return TML_OK;
}

/* ---- built-in architectures ------------------------------------------------------ */

static void build_lenet300(zb *b, int classes)
{
    zb_unary(b, "flatten", TML_OP_RESHAPE);
    zb_dense(b, "fc1", 300, TML_ACT_RELU, TML_ACT_RELU);
    zb_dense(b, "fc2", 100, TML_ACT_RELU, TML_ACT_RELU);
    zb_dense(b, "fc3", classes, TML_ACT_NONE, TML_ACT_NONE);
}

/* LeNet-5 as in Caffe's MNIST example (the model Deep Compression used): conv
 * 20@5x5, max pool 2, conv 50@5x5, max pool 2, fc 500, fc classes; ReLU after
 * each conv and fc1. */
static void build_lenet5(zb *b, int classes)
{
    zb_conv(b, "conv1", 20, 5, 5, 1, 1, PAD_VALID, TML_ACT_RELU, 1, TML_ACT_RELU);
    zb_pool(b, "pool1", TML_OP_MAXPOOL, 2, 2, PAD_VALID);
    zb_conv(b, "conv2", 50, 5, 5, 1, 1, PAD_VALID, TML_ACT_RELU, 1, TML_ACT_RELU);
    zb_pool(b, "pool2", TML_OP_MAXPOOL, 2, 2, PAD_VALID);
    zb_unary(b, "flatten", TML_OP_RESHAPE);
    zb_dense(b, "fc1", 500, TML_ACT_RELU, TML_ACT_RELU);
    zb_dense(b, "fc2", classes, TML_ACT_NONE, TML_ACT_NONE);
}

/* DS-CNN-S (Zhang et al., "Hello Edge", 2017): conv 64 then four depthwise-
 * separable blocks of 64 channels, each conv followed by batch norm + ReLU,
 * global average pool, dropout 0.4, fc. The first conv is 10x4 stride 2 for a
 * 49x10 MFCC input (tall and narrow), else 3x3 stride 2. */
static void build_dscnn(zb *b, int classes)
{
    const tml_tensor *x = cur_t(b);
    int tall = x->dims[0] >= 2 * x->dims[1];
    if (tall)
        zb_conv(b, "conv1", 64, 10, 4, 2, 2, PAD_SAME, TML_ACT_NONE, 0, TML_ACT_RELU);
    else
        zb_conv(b, "conv1", 64, 3, 3, 2, 2, PAD_SAME, TML_ACT_NONE, 0, TML_ACT_RELU);
    zb_bn(b, "conv1_bn");
    zb_unary(b, "conv1_relu", TML_OP_RELU);
    for (int i = 1; i <= 4; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "ds%d_dw", i);
        zb_dwconv(b, nm, 3, 1, 1, PAD_SAME, TML_ACT_NONE, 0, TML_ACT_RELU);
        snprintf(nm, sizeof nm, "ds%d_dw_bn", i);
        zb_bn(b, nm);
        snprintf(nm, sizeof nm, "ds%d_dw_relu", i);
        zb_unary(b, nm, TML_OP_RELU);
        snprintf(nm, sizeof nm, "ds%d_pw", i);
        zb_conv(b, nm, 64, 1, 1, 1, 1, PAD_VALID, TML_ACT_NONE, 0, TML_ACT_RELU);
        snprintf(nm, sizeof nm, "ds%d_pw_bn", i);
        zb_bn(b, nm);
        snprintf(nm, sizeof nm, "ds%d_pw_relu", i);
        zb_unary(b, nm, TML_OP_RELU);
    }
    zb_unary(b, "gap", TML_OP_GLOBAL_AVGPOOL);
    zb_dropout(b, "dropout", 0.4f);
    zb_dense(b, "fc", classes, TML_ACT_NONE, TML_ACT_NONE);
}

static int make_divisible(float v)
{
    int r = (int)(v / 8.0f + 0.5f) * 8;
    if (r < 8) r = 8;
    if ((float)r < 0.9f * v) r += 8;
    return r;
}

/* MobileNet-v1 style (Howard et al., 2017) shrunk for 28x28-32x32 inputs:
 * conv 32a s2, then depthwise-separable blocks (64a s1, 128a s2, 128a s1,
 * 256a s2, 256a s1) with batch norm + ReLU6, global average pool, fc.
 * Channel counts are a multiple of 8 (width multiplier a). */
static void build_mobilenet_tiny(zb *b, int classes, float width)
{
    static const int ch[5] = {64, 128, 128, 256, 256}, st[5] = {1, 2, 1, 2, 1};
    zb_conv(b, "conv1", make_divisible(32 * width), 3, 3, 2, 2, PAD_SAME, TML_ACT_NONE, 0, TML_ACT_RELU);
    zb_bn(b, "conv1_bn");
    zb_unary(b, "conv1_relu6", TML_OP_RELU6);
    for (int i = 0; i < 5; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "b%d_dw", i + 1);
        zb_dwconv(b, nm, 3, st[i], 1, PAD_SAME, TML_ACT_NONE, 0, TML_ACT_RELU);
        snprintf(nm, sizeof nm, "b%d_dw_bn", i + 1);
        zb_bn(b, nm);
        snprintf(nm, sizeof nm, "b%d_dw_relu6", i + 1);
        zb_unary(b, nm, TML_OP_RELU6);
        snprintf(nm, sizeof nm, "b%d_pw", i + 1);
        zb_conv(b, nm, make_divisible((float)ch[i] * width), 1, 1, 1, 1, PAD_VALID, TML_ACT_NONE, 0, TML_ACT_RELU);
        snprintf(nm, sizeof nm, "b%d_pw_bn", i + 1);
        zb_bn(b, nm);
        snprintf(nm, sizeof nm, "b%d_pw_relu6", i + 1);
        zb_unary(b, nm, TML_OP_RELU6);
    }
    zb_unary(b, "gap", TML_OP_GLOBAL_AVGPOOL);
    zb_dense(b, "fc", classes, TML_ACT_NONE, TML_ACT_NONE);
}

/* One residual stack of ResNet-8 (MLPerf Tiny image classification): conv3x3
 * (stride s) BN ReLU, conv3x3 BN, plus the input (a 1x1 stride-s conv when
 * the shape changes), then ReLU fused into the add. */
static void resnet_block(zb *b, int idx, int filters, int stride)
{
    char nm[64];
    int skip = b->cur;
    int cin = cur_t(b)->dims[2];
    snprintf(nm, sizeof nm, "res%d_conv1", idx);
    zb_conv(b, nm, filters, 3, 3, stride, stride, PAD_SAME, TML_ACT_NONE, 0, TML_ACT_RELU);
    snprintf(nm, sizeof nm, "res%d_bn1", idx);
    zb_bn(b, nm);
    snprintf(nm, sizeof nm, "res%d_relu1", idx);
    zb_unary(b, nm, TML_OP_RELU);
    snprintf(nm, sizeof nm, "res%d_conv2", idx);
    zb_conv(b, nm, filters, 3, 3, 1, 1, PAD_SAME, TML_ACT_NONE, 0, TML_ACT_NONE);
    snprintf(nm, sizeof nm, "res%d_bn2", idx);
    zb_bn(b, nm);
    if (b->st) return;
    int main_out = b->cur;
    if (stride != 1 || cin != filters) {
        b->cur = skip;
        snprintf(nm, sizeof nm, "res%d_skip", idx);
        zb_conv(b, nm, filters, 1, 1, stride, stride, PAD_VALID, TML_ACT_NONE, 1, TML_ACT_NONE);
        skip = b->cur;
        b->cur = main_out;
    }
    snprintf(nm, sizeof nm, "res%d_add", idx);
    zb_add(b, nm, skip, TML_ACT_RELU);
}

static void build_resnet8(zb *b, int classes)
{
    zb_conv(b, "conv1", 16, 3, 3, 1, 1, PAD_SAME, TML_ACT_NONE, 0, TML_ACT_RELU);
    zb_bn(b, "conv1_bn");
    zb_unary(b, "conv1_relu", TML_OP_RELU);
    resnet_block(b, 1, 16, 1);
    resnet_block(b, 2, 32, 2);
    resnet_block(b, 3, 64, 2);
    zb_unary(b, "gap", TML_OP_GLOBAL_AVGPOOL);
    zb_dense(b, "fc", classes, TML_ACT_NONE, TML_ACT_NONE);
}

static const tml_zoo_entry zoo[] = {
    {"lenet300", "MLP 784-300-100-classes (LeCun et al. 1998), 266k params"},
    {"lenet5", "Caffe LeNet-5: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc; 431k params"},
    {"dscnn", "DS-CNN-S keyword-spotting net (Hello Edge): conv 64 + 4 depthwise-separable blocks"},
    {"mobilenet-tiny", "MobileNet-v1 style, 5 depthwise-separable blocks, --width multiplier (default 0.5)"},
    {"resnet8", "ResNet-8 of MLPerf Tiny image classification: 3 residual stacks 16/32/64"},
    {NULL, NULL},
};

const tml_zoo_entry *tml_zoo_list(void) { return zoo; }

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static tml_status read_text_file(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tml_error(TML_ERR_IO, "cannot open '%s'", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (n + 1 == cap) {
            if (cap > (1u << 24)) {
                free(buf);
                fclose(f);
                return tml_error(TML_ERR_FORMAT, "'%s' is too large for an architecture file", path);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (err) {
        free(buf);
        return tml_error(TML_ERR_IO, "error reading '%s'", path);
    }
    buf[n] = '\0';
    *out = buf;
    return TML_OK;
}

tml_status tml_zoo_create(const char *arch, const tml_zoo_opts *opts, tml_model **out)
{
    *out = NULL;
    tml_zoo_opts o = {0};
    if (opts) o = *opts;
    if (ends_with(arch, ".json")) {
        char *text = NULL;
        tml_status st = read_text_file(arch, &text);
        if (st) return st;
        st = tml_zoo_from_json(text, &o, out);
        free(text);
        return st ? tml_error_context(st, "%s", arch) : TML_OK;
    }
    int h = o.h ? o.h : 28, w = o.w ? o.w : 28, c = o.c ? o.c : 1;
    if (o.features) {
        if (o.features < 1 || o.features > (1 << 24))
            return tml_error(TML_ERR_INVALID, "input of %d features out of range (1..%d)", o.features, 1 << 24);
        h = o.features;
        w = c = 0;
    }
    int classes = o.classes ? o.classes : 10;
    float width = o.width > 0 ? o.width : 0.5f;
    if (!o.features && (h < 1 || w < 1 || c < 1 || h > 4096 || w > 4096 || c > 64))
        return tml_error(TML_ERR_INVALID, "input shape %dx%dx%d out of range", h, w, c);
    if (classes < 2 || classes > 100000) return tml_error(TML_ERR_INVALID, "classes must be in 2..100000 (got %d)", classes);
    if (!(width > 0.0f && width <= 4.0f)) return tml_error(TML_ERR_INVALID, "width multiplier must be in (0, 4]");
    zb b;
    int known = 0;
    for (int i = 0; zoo[i].name; i++) known |= strcmp(zoo[i].name, arch) == 0;
    if (!known) {
        char list[256] = "";
        for (int i = 0; zoo[i].name; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", zoo[i].name);
        }
        return tml_error(TML_ERR_INVALID, "unknown architecture '%s' (built-in: %s; or a path to ARCH.json)", arch, list);
    }
    tml_status st = zb_begin(&b, arch, arch, &o, h, w, c);
    if (st) {
        tml_model_free(b.m);
        return st;
    }
    if (strcmp(arch, "lenet300") == 0) build_lenet300(&b, classes);
    else if (strcmp(arch, "lenet5") == 0) build_lenet5(&b, classes);
    else if (strcmp(arch, "dscnn") == 0) build_dscnn(&b, classes);
    else if (strcmp(arch, "mobilenet-tiny") == 0) build_mobilenet_tiny(&b, classes, width);
    else build_resnet8(&b, classes);
    st = zb_end(&b, classes, out);
    if (st && o.features) return tml_error_context(st, "cannot build %s for a vector of %d features", arch, h);
    if (st) return tml_error_context(st, "cannot build %s for a %dx%dx%d input", arch, h, w, c);
    return TML_OK;
}

/* ---- JSON description -------------------------------------------------------------
 * {"name": "tiny", "input": [28,28,1], "classes": 10,
 *  "layers": [ {"type": "conv2d", "filters": 8, "kernel": 3, "stride": 1,
 *               "padding": "same", "act": "relu"}, {"type": "maxpool", "size": 2},
 *              {"type": "residual", "layers": [ ... ]}, {"type": "flatten"},
 *              {"type": "dense", "units": 10} ] }
 */

static int jint(const cJSON *o, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : def;
}

static double jnum(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static const char *jstr(const cJSON *o, const char *key, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : def;
}

/* kernel/stride may be a number or [h, w] */
static int jpair(const cJSON *o, const char *key, int def, int *a, int *b2)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *a = *b2 = def;
        return 0;
    }
    if (cJSON_IsNumber(v)) {
        *a = *b2 = (int)v->valuedouble;
        return 0;
    }
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(v, 0)) &&
        cJSON_IsNumber(cJSON_GetArrayItem(v, 1))) {
        *a = (int)cJSON_GetArrayItem(v, 0)->valuedouble;
        *b2 = (int)cJSON_GetArrayItem(v, 1)->valuedouble;
        return 0;
    }
    return -1;
}

static tml_status parse_act(const char *s, tml_act *a)
{
    if (!s || strcmp(s, "none") == 0 || strcmp(s, "linear") == 0) *a = TML_ACT_NONE;
    else if (strcmp(s, "relu") == 0) *a = TML_ACT_RELU;
    else if (strcmp(s, "relu6") == 0) *a = TML_ACT_RELU6;
    else return tml_error(TML_ERR_INVALID, "unknown activation '%s' (none, relu, relu6)", s);
    return TML_OK;
}

static tml_status json_layers(zb *b, const cJSON *layers, int depth);

/* The keys each layer type reads (docs/arch-json.md); any other key is a
 * mistake ("kernel_size", "activation") that would otherwise be ignored. */
static const struct {
    const char *type, *keys;
} layer_keys[] = {
    {"conv2d", "filters kernel stride padding act bias"},
    {"depthwise_conv2d", "multiplier kernel stride padding act bias"},
    {"dense", "units act"},
    {"maxpool", "size stride padding"},
    {"avgpool", "size stride padding"},
    {"global_avgpool", ""},
    {"flatten", ""},
    {"relu", ""},
    {"relu6", ""},
    {"softmax", ""},
    {"batchnorm", ""},
    {"dropout", "rate"},
    {"residual", "layers act"},
};

/* Is `key` a word of the space-separated list `keys`? */
static int has_word(const char *keys, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = keys; *p;) {
        const char *e = strchr(p, ' ');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncmp(p, key, n) == 0) return 1;
        p += l + (e ? 1 : 0);
    }
    return 0;
}

/* Refuses keys of object `o` other than the words of `keys` (and "type",
 * "name" for a layer of type `type`; type NULL: the top level). */
static tml_status check_keys(const cJSON *o, const char *keys, int idx, const char *type)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, o)
    {
        const char *key = k->string ? k->string : "";
        if ((type && (strcmp(key, "type") == 0 || strcmp(key, "name") == 0)) || has_word(keys, key)) continue;
        char known[200] = "";
        size_t j = type ? (size_t)snprintf(known, sizeof known, "type, name") : 0;
        for (const char *p = keys; *p && j < sizeof known;) {
            const char *e = strchr(p, ' ');
            int l = e ? (int)(e - p) : (int)strlen(p);
            j += (size_t)snprintf(known + j, sizeof known - j, "%s%.*s", j ? ", " : "", l, p);
            p += l + (e ? 1 : 0);
        }
        if (type)
            return tml_error(TML_ERR_INVALID, "layer %d (%s): unknown key '%s' (a %s layer takes: %s; see docs/arch-json.md)",
                             idx, type, key, type, known);
        return tml_error(TML_ERR_INVALID, "unknown key '%s' (an architecture takes: %s; see docs/arch-json.md)", key, known);
    }
    return TML_OK;
}

static tml_status json_layer(zb *b, const cJSON *l, int idx, int depth)
{
    if (!cJSON_IsObject(l)) return tml_error(TML_ERR_FORMAT, "layer %d is not an object", idx);
    const char *type = jstr(l, "type", NULL);
    if (!type) return tml_error(TML_ERR_FORMAT, "layer %d has no \"type\"", idx);
    for (size_t i = 0; i < sizeof layer_keys / sizeof layer_keys[0]; i++)
        if (strcmp(layer_keys[i].type, type) == 0) {
            tml_status kst = check_keys(l, layer_keys[i].keys, idx, type);
            if (kst) return kst;
        }
    const char *name = jstr(l, "name", NULL);
    tml_act act = TML_ACT_NONE;
    tml_status st = parse_act(jstr(l, "act", NULL), &act);
    if (st) return tml_error_context(st, "layer %d (%s)", idx, type);
    const char *pad = jstr(l, "padding", "valid");
    pad_mode pm;
    if (strcmp(pad, "same") == 0) pm = PAD_SAME;
    else if (strcmp(pad, "valid") == 0) pm = PAD_VALID;
    else return tml_error(TML_ERR_INVALID, "layer %d (%s): padding must be \"same\" or \"valid\"", idx, type);
    int kh, kw, sh, sw;
    if (jpair(l, "kernel", 3, &kh, &kw) || jpair(l, "stride", 1, &sh, &sw))
        return tml_error(TML_ERR_FORMAT, "layer %d (%s): kernel/stride must be a number or [h, w]", idx, type);
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || kh > 64 || kw > 64 || sh > 64 || sw > 64)
        return tml_error(TML_ERR_INVALID, "layer %d (%s): kernel and stride must be in 1..64", idx, type);
    if (strcmp(type, "conv2d") == 0) {
        int f = jint(l, "filters", 0);
        if (f < 1 || f > 65536) return tml_error(TML_ERR_INVALID, "layer %d (conv2d): \"filters\" must be in 1..65536", idx);
        zb_conv(b, name, f, kh, kw, sh, sw, pm, act, !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(l, "bias")), act);
    } else if (strcmp(type, "depthwise_conv2d") == 0) {
        int mult = jint(l, "multiplier", 1);
        if (mult < 1 || mult > 64) return tml_error(TML_ERR_INVALID, "layer %d: multiplier must be in 1..64", idx);
        if (kh != kw || sh != sw) return tml_error(TML_ERR_INVALID, "layer %d: depthwise kernel/stride must be square", idx);
        zb_dwconv(b, name, kh, sh, mult, pm, act, !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(l, "bias")), act);
    } else if (strcmp(type, "dense") == 0) {
        int u = jint(l, "units", 0);
        if (u < 1 || u > 1000000) return tml_error(TML_ERR_INVALID, "layer %d (dense): \"units\" must be in 1..1000000", idx);
        zb_dense(b, name, u, act, act);
    } else if (strcmp(type, "maxpool") == 0 || strcmp(type, "avgpool") == 0) {
        int size = jint(l, "size", 2);
        int stride = jint(l, "stride", size);
        if (size < 1 || size > 64 || stride < 1 || stride > 64) return tml_error(TML_ERR_INVALID, "layer %d: pool size/stride in 1..64", idx);
        zb_pool(b, name, type[0] == 'm' ? TML_OP_MAXPOOL : TML_OP_AVGPOOL, size, stride, pm);
    } else if (strcmp(type, "global_avgpool") == 0) {
        zb_unary(b, name, TML_OP_GLOBAL_AVGPOOL);
    } else if (strcmp(type, "flatten") == 0) {
        zb_unary(b, name, TML_OP_RESHAPE);
    } else if (strcmp(type, "relu") == 0) {
        zb_unary(b, name, TML_OP_RELU);
    } else if (strcmp(type, "relu6") == 0) {
        zb_unary(b, name, TML_OP_RELU6);
    } else if (strcmp(type, "softmax") == 0) {
        zb_unary(b, name, TML_OP_SOFTMAX);
    } else if (strcmp(type, "batchnorm") == 0) {
        zb_bn(b, name);
    } else if (strcmp(type, "dropout") == 0) {
        double r = jnum(l, "rate", 0.5);
        if (!(r >= 0 && r < 1)) return tml_error(TML_ERR_INVALID, "layer %d (dropout): rate must be in [0,1)", idx);
        zb_dropout(b, name, (float)r);
    } else if (strcmp(type, "residual") == 0) {
        if (depth > 8) return tml_error(TML_ERR_INVALID, "residual blocks nested too deeply");
        int skip = b->cur;
        const tml_tensor *x = cur_t(b);
        int in_ndim = x->ndim;
        int32_t in_dims[TML_MAX_DIMS];
        memcpy(in_dims, x->dims, sizeof in_dims);
        st = json_layers(b, cJSON_GetObjectItemCaseSensitive(l, "layers"), depth + 1);
        if (st) return tml_error_context(st, "layer %d (residual)", idx);
        if (b->st) return b->st;
        const tml_tensor *y = cur_t(b);
        if (y->ndim != in_ndim || memcmp(y->dims, in_dims, sizeof(int32_t) * (size_t)in_ndim) != 0) {
            /* project the skip path with a 1x1 conv of the block's stride */
            if (y->ndim != 3 || in_ndim != 3)
                return tml_error(TML_ERR_SHAPE, "layer %d (residual): block changes a non-image shape", idx);
            int stride = in_dims[0] / y->dims[0];
            if (stride < 1 || (in_dims[0] + stride - 1) / stride != y->dims[0])
                return tml_error(TML_ERR_SHAPE, "layer %d (residual): cannot project the skip path", idx);
            int main_out = b->cur;
            b->cur = skip;
            zb_conv(b, NULL, y->dims[2], 1, 1, stride, stride, PAD_VALID, TML_ACT_NONE, 1, TML_ACT_NONE);
            skip = b->cur;
            b->cur = main_out;
        }
        zb_add(b, name, skip, act);
    } else {
        return tml_error(TML_ERR_INVALID,
                         "layer %d: unknown type '%s' (conv2d, depthwise_conv2d, dense, maxpool, avgpool, "
                         "global_avgpool, flatten, relu, relu6, softmax, batchnorm, dropout, residual)",
                         idx, type);
    }
    if (b->st) return tml_error_context(b->st, "layer %d (%s)", idx, type);
    return TML_OK;
}

static tml_status json_layers(zb *b, const cJSON *layers, int depth)
{
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0)
        return tml_error(TML_ERR_FORMAT, "\"layers\" must be a non-empty array");
    int i = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, layers)
    {
        tml_status st = json_layer(b, l, i++, depth);
        if (st) return st;
    }
    return TML_OK;
}

tml_status tml_zoo_from_json(const char *json, const tml_zoo_opts *opts, tml_model **out)
{
    *out = NULL;
    cJSON *root = cJSON_Parse(json);
    if (!root) return tml_error(TML_ERR_FORMAT, "not valid JSON (near: %.40s)", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "?");
    tml_status st = TML_OK;
    zb b = {0};
    if (!cJSON_IsObject(root)) {
        st = tml_error(TML_ERR_FORMAT, "the architecture must be a JSON object");
        goto out;
    }
    if ((st = check_keys(root, "name input classes layers", 0, NULL))) goto out;
    int h = 28, w = 28, c = 1;
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    int vec = 0; /* a vector input of h features */
    if (in) {
        int n = cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 0;
        for (int i = 0; i < n; i++)
            if (!cJSON_IsNumber(cJSON_GetArrayItem(in, i))) n = 0;
        if (n != 3 && n != 1) {
            st = tml_error(TML_ERR_FORMAT, "\"input\" must be [H, W, C] (images) or [N] (vectors of N features)");
            goto out;
        }
        h = (int)cJSON_GetArrayItem(in, 0)->valuedouble;
        w = n == 3 ? (int)cJSON_GetArrayItem(in, 1)->valuedouble : 1;
        c = n == 3 ? (int)cJSON_GetArrayItem(in, 2)->valuedouble : 1;
        vec = n == 1;
    }
    if (opts && opts->features) {
        h = opts->features;
        w = c = 1;
        vec = 1;
    } else if (opts && opts->h) {
        h = opts->h;
        w = opts->w;
        c = opts->c;
        vec = 0;
    }
    int classes = jint(root, "classes", 10);
    if (opts && opts->classes) classes = opts->classes;
    if (h < 1 || w < 1 || c < 1 || (!vec && (h > 4096 || w > 4096 || c > 64))) {
        st = tml_error(TML_ERR_INVALID, "input shape %dx%dx%d out of range", h, w, c);
        goto out;
    }
    if (classes < 2 || classes > 100000) {
        st = tml_error(TML_ERR_INVALID, "classes must be in 2..100000");
        goto out;
    }
    if (vec && h > (1 << 24)) {
        st = tml_error(TML_ERR_INVALID, "input of %d features out of range", h);
        goto out;
    }
    st = zb_begin(&b, jstr(root, "name", "custom"), "custom", opts, h, vec ? 0 : w, vec ? 0 : c);
    if (st) {
        tml_model_free(b.m);
        goto out;
    }
    st = json_layers(&b, cJSON_GetObjectItemCaseSensitive(root, "layers"), 0);
    if (st) {
        tml_model_free(b.m);
        goto out;
    }
    st = zb_end(&b, classes, out);
out:
    cJSON_Delete(root);
    return st;
}
