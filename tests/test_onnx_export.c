/*
 * test_onnx_export.c - ONNX export (formats/onnx_export.c):
 *   - every zoo model (batch norms with non-trivial statistics, random
 *     biases) exported, imported again with tinyml's own importer and run
 *     with the float engine on the same random inputs: outputs agree within
 *     EXPORT_TOL, and the layer structure survives (same ops, dropout aside)
 *   - hand-built models for what the zoo does not use: asymmetric "same"
 *     padding, groups 2, depth multiplier 2, dilation, avg/max pooling with
 *     padding, softmax, batch norm on a flattened image, reshapes that need
 *     NHWC views, 1-D and 2-D inputs, an add of differently laid out vectors,
 *     a flattened image as the output; pruned + clustered weights
 *   - onnx.checker.check_model(full_check=True) on every exported file when
 *     /usr/bin/python3 has the onnx package (skipped otherwise), and ONNX's
 *     reference evaluator on the same inputs when that onnx has one (>= 1.13)
 *   - the committed PyTorch fixtures: import -> export -> import keeps the
 *     outputs (and still matches torch's)
 *   - refusals (inconsistent int8 models, avgpool with dilation), int8 models
 *     in QDQ form, and `tinyml export --onnx`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tinyml/tml_cluster.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_onnx.h"
#include "tinyml/tml_prune.h"
#include "tinyml/tml_zoo.h"

#include "../formats/onnx_internal.h"

/* tinyml -> ONNX -> tinyml runs the same kernels on the same (permuted back)
 * weights; the only arithmetic the export changes is a batch norm over the
 * last axis of a 2-D tensor (Mul + Add). Outputs are logits of magnitude
 * ~0.1..10 or softmax probabilities. */
#define EXPORT_TOL 1e-4f
/* the re-imported fixtures vs torch's outputs (as test_onnx.c's FIXTURE_TOL) */
#define FIXTURE_TOL 1e-4f
/* ONNX's reference evaluator (numpy, float32) vs tinyml */
#define REFEVAL_TOL 1e-4f
#define BATCH 3

static char g_dir[1024];   /* scratch directory of this suite */
static int g_python = -1;  /* -1 unknown, 0 no python3 with onnx, 1 yes */
static int g_refeval = -1; /* onnx.reference available */

static const char *fixture_dir(void)
{
    static char buf[1024];
    const char *src = getenv("TML_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/tests/fixtures/onnx", src && *src ? src : ".");
    return buf;
}

/* ---- python / onnx ------------------------------------------------------------------------- */

static int have_python_onnx(void)
{
    if (g_python < 0) {
        char out[512];
        struct stat sb;
        g_python = stat("/usr/bin/python3", &sb) == 0 &&
                   tu_run("/usr/bin/python3 -c 'import onnx; print(onnx.__version__)'", out, sizeof out) == 0;
        g_refeval = g_python && tu_run("/usr/bin/python3 -c 'import onnx.reference'", NULL, 0) == 0;
        if (g_python)
            printf("python3 onnx %s", out);
        else
            printf("python3 with the onnx package not found: checker skipped\n");
        if (g_python && !g_refeval)
            printf("onnx has no reference evaluator (onnx.reference, >= 1.13): skipped\n");
    }
    return g_python;
}

/* The checker (full_check: strict shape inference too) and the header fields. */
static const char check_py[] =
    "import sys, onnx\n"
    "m = onnx.load(sys.argv[1])\n"
    "onnx.checker.check_model(m, full_check=True)\n"
    "assert m.ir_version == 8, m.ir_version\n"
    "assert [(o.domain, o.version) for o in m.opset_import] == [('', 13)]\n"
    "assert m.producer_name == 'tinyml'\n"
    "dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]\n"
    "g = m.graph\n"
    "assert [i.name for i in g.input] == ['input'] and [o.name for o in g.output] == ['output']\n"
    "print('checker ok: %d nodes, input %s, output %s' % (len(g.node), dims(g.input[0]), "
    "dims(g.output[0])))\n";

/* Runs the checker on `path`; prints its verdict with `tag`. */
static void python_check(const char *tag, const char *path)
{
    if (!have_python_onnx()) return;
    char script[1200], cmd[4096], out[8192];
    snprintf(script, sizeof script, "%s/check.py", g_dir);
    assert_int_equal(tu_write_file(script, check_py, strlen(check_py)), 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, path);
    int rc = tu_run(cmd, out, sizeof out);
    printf("  %-16s %s", tag, rc == 0 ? out : "CHECKER FAILED\n");
    if (rc) printf("%s\n", out);
    assert_int_equal(rc, 0);
}

/* ONNX's reference evaluator on the ONNX-ordered input; compares with want. */
static const char refeval_py[] =
    "import sys, numpy as np, onnx\n"
    "from onnx.reference import ReferenceEvaluator\n"
    "m = onnx.load(sys.argv[1])\n"
    "shp = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][1:]\n"
    "x = np.fromfile(sys.argv[2], dtype='<f4').reshape([-1] + shp)\n"
    "want = np.fromfile(sys.argv[3], dtype='<f4')\n"
    "y = ReferenceEvaluator(m).run(None, {'input': x})[0].reshape(-1)\n"
    "d = float(np.max(np.abs(y - want)))\n"
    "print('reference evaluator: max |diff| %g' % d)\n"
    "sys.exit(0 if d <= float(sys.argv[4]) else 1)\n";

/* ---- models and runs -------------------------------------------------------------------------- */

static void run_model(const tml_model *m, const float *x, int n, float *y)
{
    tml_engine *e = NULL;
    tml_status st = tml_engine_new(m, n, NULL, &e);
    if (st) printf("engine: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    assert_int_equal(tml_engine_run(e, x, n, y), TML_OK);
    tml_engine_free(e);
}

/* tinyml (H,W,C) samples -> ONNX (C,H,W) samples; other shapes unchanged. */
static void to_onnx_order(const tml_tensor *t, const float *x, int n, float *out)
{
    int64_t per = tml_tensor_numel(t);
    if (t->ndim != 3) {
        memcpy(out, x, sizeof(float) * (size_t)(per * n));
        return;
    }
    int64_t H = t->dims[0], W = t->dims[1], C = t->dims[2];
    for (int b = 0; b < n; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < H * W; p++) out[b * per + c * H * W + p] = x[b * per + p * C + c];
}

static void op_counts(const tml_model *m, int *cnt)
{
    memset(cnt, 0, sizeof(int) * TML_OP_COUNT);
    for (int i = 0; i < m->n_nodes; i++) cnt[m->nodes[i].op]++;
}

/*
 * Exports m, writes <tag>.onnx, imports it again and compares both models on
 * BATCH random inputs. same_ops: the re-imported model must have the same
 * number of nodes of every op (dropout aside). Returns the file size.
 */
static size_t roundtrip(const char *tag, const tml_model *m, int same_ops)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    tml_status st = tml_onnx_export_mem(m, &buf, &len);
    if (st) printf("%s: export: %s\n", tag, tml_last_error());
    assert_int_equal(st, TML_OK);
    assert_true(len > 0);
    /* deterministic */
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    assert_int_equal(tml_onnx_export_mem(m, &buf2, &len2), TML_OK);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    free(buf2);

    char path[1200];
    snprintf(path, sizeof path, "%s/%s.onnx", g_dir, tag);
    assert_int_equal(tu_write_file(path, buf, len), 0);

    tml_model *m2 = NULL;
    tml_onnx_info info;
    st = tml_onnx_import_mem(buf, len, NULL, &m2, &info);
    if (st) printf("%s: import of the export: %s\n", tag, tml_last_error());
    assert_int_equal(st, TML_OK);
    free(buf);
    const tml_tensor *i1 = &m->tensors[m->input], *i2 = &m2->tensors[m2->input];
    const tml_tensor *o1 = &m->tensors[m->output], *o2 = &m2->tensors[m2->output];
    assert_int_equal(i1->ndim, i2->ndim);
    assert_memory_equal(i1->dims, i2->dims, sizeof(int32_t) * (size_t)i1->ndim);
    assert_int_equal(o1->ndim, o2->ndim);
    assert_memory_equal(o1->dims, o2->dims, sizeof(int32_t) * (size_t)o1->ndim);
    assert_int_equal(info.batch, -1); /* symbolic */
    assert_int_equal(info.opset, 13);
    assert_string_equal(info.input_name, "input");
    assert_string_equal(info.output_name, "output");
    assert_int_equal(info.out_layout, o1->ndim == 3 ? TML_ONNX_NCHW : TML_ONNX_PLAIN);
    if (same_ops) {
        int c1[TML_OP_COUNT], c2[TML_OP_COUNT];
        op_counts(m, c1);
        op_counts(m2, c2);
        c1[TML_OP_DROPOUT] = c2[TML_OP_DROPOUT] = 0;
        for (int k = 0; k < TML_OP_COUNT; k++) {
            if (c1[k] != c2[k])
                printf("%s: %d %s nodes became %d\n", tag, c1[k], tml_op_name((tml_op)k), c2[k]);
            assert_int_equal(c1[k], c2[k]);
        }
    }

    int64_t in_n = tml_tensor_numel(i1), out_n = tml_tensor_numel(o1);
    float *x = malloc(sizeof(float) * (size_t)(in_n * BATCH));
    float *y1 = malloc(sizeof(float) * (size_t)(out_n * BATCH));
    float *y2 = malloc(sizeof(float) * (size_t)(out_n * BATCH));
    assert_true(x && y1 && y2);
    tu_rng r;
    tu_rng_seed(&r, 77);
    tu_fill_uniform(&r, x, (size_t)(in_n * BATCH), -1.0f, 1.0f);
    run_model(m, x, BATCH, y1);
    run_model(m2, x, BATCH, y2);
    float mx = 0;
    for (int64_t k = 0; k < out_n * BATCH; k++) mx = fmaxf(mx, fabsf(y1[k]));
    assert_true(tu_close_f32(tag, y1, y2, (size_t)(out_n * BATCH), EXPORT_TOL));
    printf("  %-16s %zu bytes, %d -> %d tinyml nodes, outputs agree (max |y| %.3g)\n", tag, len, m->n_nodes,
           m2->n_nodes, (double)mx);

    python_check(tag, path);
    if (have_python_onnx() && g_refeval) {
        /* the same inputs in ONNX order; the output (a vector here) is the same order */
        float *xo = malloc(sizeof(float) * (size_t)(in_n * BATCH));
        assert_non_null(xo);
        to_onnx_order(i1, x, BATCH, xo);
        char xp[1200], yp[1200], sp[1200], cmd[6144], out[4096];
        snprintf(xp, sizeof xp, "%s/%s.x.bin", g_dir, tag);
        snprintf(yp, sizeof yp, "%s/%s.y.bin", g_dir, tag);
        snprintf(sp, sizeof sp, "%s/refeval.py", g_dir);
        assert_int_equal(tu_write_file(xp, xo, sizeof(float) * (size_t)(in_n * BATCH)), 0);
        assert_int_equal(tu_write_file(yp, y1, sizeof(float) * (size_t)(out_n * BATCH)), 0);
        assert_int_equal(tu_write_file(sp, refeval_py, strlen(refeval_py)), 0);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' '%s' '%s' %g", sp, path, xp, yp,
                 (double)REFEVAL_TOL);
        int rc = tu_run(cmd, out, sizeof out);
        printf("  %-16s %s", tag, out);
        if (o1->ndim == 1) assert_int_equal(rc, 0);
        free(xo);
    }
    free(x);
    free(y1);
    free(y2);
    tml_model_free(m2);
    return len;
}

static void randomize(tml_model *m, uint64_t seed)
{
    /* batch norms with non-trivial statistics, biases not zero */
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (n->op == TML_OP_BATCHNORM) {
            for (int j = 1; j < 5; j++) {
                tml_tensor *t = &m->tensors[n->in[j]];
                float *p = t->data;
                for (int64_t k = 0; k < tml_tensor_numel(t); k++)
                    p[k] =
                        j == 4 ? tu_rng_uniform(&r, 0.5f, 2.0f) : tu_rng_uniform(&r, -0.3f, 0.3f) + (j == 1);
            }
        } else if (tml_node_has_weights(n) && n->n_in > 2 && n->in[2] >= 0) {
            tml_tensor *t = &m->tensors[n->in[2]];
            tu_fill_uniform(&r, t->data, (size_t)tml_tensor_numel(t), -0.2f, 0.2f);
        }
    }
}

static void test_zoo(void **state)
{
    (void)state;
    static const struct {
        const char *arch;
        int h, w, c;
    } zoo[] = {{"lenet300", 28, 28, 1},
               {"lenet5", 28, 28, 1},
               {"dscnn", 49, 10, 1},
               {"mobilenet-tiny", 32, 32, 3},
               {"resnet8", 32, 32, 3}};
    for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++) {
        tml_zoo_opts o = {.h = zoo[i].h, .w = zoo[i].w, .c = zoo[i].c, .seed = 11 + i};
        tml_model *m = NULL;
        assert_int_equal(tml_zoo_create(zoo[i].arch, &o, &m), TML_OK);
        randomize(m, 100 + i);
        roundtrip(zoo[i].arch, m, 1);
        tml_model_free(m);
    }
}

/* ---- hand-built models -------------------------------------------------------------------------- */

typedef struct mbuild {
    tml_model *m;
    tu_rng r;
} mbuild;

static void mb_begin(mbuild *b, const char *name, int ndim, int32_t d0, int32_t d1, int32_t d2)
{
    b->m = tml_model_new();
    assert_non_null(b->m);
    tu_rng_seed(&b->r, 4242);
    int32_t d[3] = {d0, d1, d2};
    b->m->input = tml_model_add_tensor(b->m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, ndim, d, NULL);
    assert_true(b->m->input >= 0);
    b->m->meta.name = tml_strdup(name);
    b->m->meta.arch = tml_strdup("custom");
    b->m->meta.pre.scale = 1.0f;
}

static int mb_param(mbuild *b, const char *name, int ndim, const int32_t *d, float lo, float hi)
{
    int id = tml_model_add_tensor(b->m, name, TML_DTYPE_F32, TML_TENSOR_PARAM, ndim, d, NULL);
    assert_true(id >= 0);
    tml_tensor *t = &b->m->tensors[id];
    tu_fill_uniform(&b->r, t->data, (size_t)tml_tensor_numel(t), lo, hi);
    return id;
}

/* Adds a node writing a new activation `name` (dims inferred unless out_ndim > 0). */
static tml_node *mb_node(mbuild *b, const char *name, tml_op op, int n_in, const int *in, int out_ndim,
                         const int32_t *out_dims)
{
    int y = tml_model_add_tensor(b->m, name, TML_DTYPE_F32, TML_TENSOR_ACT, out_ndim, out_dims, NULL);
    assert_true(y >= 0);
    int ni = tml_model_add_node(b->m, name, op, n_in, in, y);
    assert_true(ni >= 0);
    b->m->output = y;
    return &b->m->nodes[ni];
}

static int out_of(const mbuild *b)
{
    return b->m->output;
}

static int mb_bn(mbuild *b, const char *name, int x, int c)
{
    char nm[4][64];
    int32_t d[1] = {c};
    int in[5] = {x, 0, 0, 0, 0};
    static const char *suf[4] = {"gamma", "beta", "mean", "var"};
    for (int i = 0; i < 4; i++) {
        snprintf(nm[i], sizeof nm[i], "%s.%s", name, suf[i]);
        in[i + 1] = mb_param(b, nm[i], 1, d, i == 3 ? 0.5f : (i == 0 ? 0.6f : -0.4f),
                             i == 3 ? 2.0f : (i == 0 ? 1.4f : 0.4f));
    }
    tml_node *n = mb_node(b, name, TML_OP_BATCHNORM, 5, in, 0, NULL);
    n->eps = 1e-3f;
    return out_of(b);
}

static tml_model *mb_end(mbuild *b)
{
    tml_status st = tml_model_finalize(b->m);
    if (st) printf("finalize: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    return b->m;
}

/* Convolutions of every kind, pools with padding, batch norms on an image and
 * on its flattened features, a residual add, dropout, softmax. */
static tml_model *model_features(void)
{
    mbuild b;
    mb_begin(&b, "features", 3, 9, 11, 4);
    int x = b.m->input;
    /* 4x4 "same" (pads t1 l1 b2 r2), groups 2, fused ReLU */
    int32_t w1[4] = {6, 4, 4, 2}, b1[1] = {6};
    int in1[3] = {x, mb_param(&b, "c1.w", 4, w1, -0.4f, 0.4f), mb_param(&b, "c1.b", 1, b1, -0.2f, 0.2f)};
    tml_node *n = mb_node(&b, "c1", TML_OP_CONV2D, 3, in1, 0, NULL);
    n->groups = 2;
    n->pad[0] = 1, n->pad[1] = 1, n->pad[2] = 2, n->pad[3] = 2;
    n->act = TML_ACT_RELU;
    int bn1 = mb_bn(&b, "bn1", out_of(&b), 6);
    /* depthwise 3x3, multiplier 2, dilation 2, fused ReLU6 */
    int32_t wd[4] = {1, 3, 3, 12}, bd[1] = {12};
    int in2[3] = {bn1, mb_param(&b, "dw.w", 4, wd, -0.6f, 0.6f), mb_param(&b, "dw.b", 1, bd, -0.2f, 0.2f)};
    n = mb_node(&b, "dw", TML_OP_DEPTHWISE_CONV2D, 3, in2, 0, NULL);
    n->depth_mult = 2;
    n->dh = n->dw = 2;
    n->pad[0] = n->pad[1] = n->pad[2] = n->pad[3] = 2;
    n->act = TML_ACT_RELU6;
    int dw = out_of(&b);
    /* 3x3 dilation (2,1), no bias, then a residual add with fused ReLU */
    int32_t w2[4] = {12, 3, 3, 12};
    int in3[2] = {dw, mb_param(&b, "c2.w", 4, w2, -0.2f, 0.2f)};
    n = mb_node(&b, "c2", TML_OP_CONV2D, 2, in3, 0, NULL);
    n->dh = 2;
    n->pad[0] = 2, n->pad[1] = 1, n->pad[2] = 2, n->pad[3] = 1;
    int in4[2] = {out_of(&b), dw};
    n = mb_node(&b, "add", TML_OP_ADD, 2, in4, 0, NULL);
    n->act = TML_ACT_RELU;
    /* average pool 3x3 s2 with padding (excluded from the average), max pool 2x2 s1 padded bottom/right */
    int in5[1] = {out_of(&b)};
    n = mb_node(&b, "ap", TML_OP_AVGPOOL, 1, in5, 0, NULL);
    n->kh = n->kw = 3;
    n->sh = n->sw = 2;
    n->pad[0] = n->pad[1] = n->pad[2] = n->pad[3] = 1;
    int in6[1] = {out_of(&b)};
    n = mb_node(&b, "mp", TML_OP_MAXPOOL, 1, in6, 0, NULL);
    n->kh = n->kw = 2;
    n->pad[2] = n->pad[3] = 1;
    int in7[1] = {out_of(&b)};
    mb_node(&b, "flat", TML_OP_RESHAPE, 1, in7, 0, NULL); /* (5,6,12) -> (360) */
    int bn2 = mb_bn(&b, "bn2", out_of(&b), 360);
    int32_t wf1[2] = {16, 360}, bf1[1] = {16};
    int in8[3] = {bn2, mb_param(&b, "fc1.w", 2, wf1, -0.1f, 0.1f),
                  mb_param(&b, "fc1.b", 1, bf1, -0.1f, 0.1f)};
    n = mb_node(&b, "fc1", TML_OP_DENSE, 3, in8, 0, NULL);
    n->act = TML_ACT_RELU;
    int in9[1] = {out_of(&b)};
    n = mb_node(&b, "drop", TML_OP_DROPOUT, 1, in9, 0, NULL);
    n->rate = 0.3f;
    int32_t wf2[2] = {7, 16}, bf2[1] = {7};
    int in10[3] = {out_of(&b), mb_param(&b, "fc2.w", 2, wf2, -0.5f, 0.5f),
                   mb_param(&b, "fc2.b", 1, bf2, -0.1f, 0.1f)};
    mb_node(&b, "fc2", TML_OP_DENSE, 3, in10, 0, NULL);
    int in11[1] = {out_of(&b)};
    mb_node(&b, "prob", TML_OP_SOFTMAX, 1, in11, 0, NULL);
    return mb_end(&b);
}

/* Reshapes that need NHWC views, a batch norm and a softmax over the last
 * axis of a 2-D tensor, and a flattened image as the model output. */
static tml_model *model_reshapes(void)
{
    mbuild b;
    mb_begin(&b, "reshapes", 3, 6, 5, 3);
    int32_t w[4] = {4, 3, 3, 3};
    int in1[2] = {b.m->input, mb_param(&b, "c.w", 4, w, -0.5f, 0.5f)};
    tml_node *n = mb_node(&b, "c", TML_OP_CONV2D, 2, in1, 0, NULL);
    n->pad[0] = n->pad[1] = n->pad[2] = n->pad[3] = 1;
    int32_t r1[2] = {30, 4};
    int in2[1] = {out_of(&b)};
    mb_node(&b, "rows", TML_OP_RESHAPE, 1, in2, 2, r1);
    int bn = mb_bn(&b, "bn", out_of(&b), 4);
    mb_node(&b, "sm", TML_OP_SOFTMAX, 1, &bn, 0, NULL);
    int32_t r2[3] = {5, 6, 4};
    int in3[1] = {out_of(&b)};
    mb_node(&b, "img", TML_OP_RESHAPE, 1, in3, 3, r2);
    int in4[1] = {out_of(&b)};
    n = mb_node(&b, "mp", TML_OP_MAXPOOL, 1, in4, 0, NULL);
    n->kh = n->kw = n->sh = n->sw = 2;
    int in5[1] = {out_of(&b)};
    mb_node(&b, "flat", TML_OP_RESHAPE, 1, in5, 0, NULL); /* (2,3,4) -> (24): the output */
    return mb_end(&b);
}

/* A 1-D input: batch norm on a vector, dense with ReLU6, relu, softmax. */
static tml_model *model_vector(void)
{
    mbuild b;
    mb_begin(&b, "vector", 1, 20, 0, 0);
    int bn = mb_bn(&b, "bn", b.m->input, 20);
    int32_t w1[2] = {8, 20}, w2[2] = {5, 8}, b2[1] = {5};
    int in1[2] = {bn, mb_param(&b, "fc1.w", 2, w1, -0.6f, 0.6f)};
    tml_node *n = mb_node(&b, "fc1", TML_OP_DENSE, 2, in1, 0, NULL);
    n->act = TML_ACT_RELU6;
    int in2[1] = {out_of(&b)};
    mb_node(&b, "relu", TML_OP_RELU, 1, in2, 0, NULL);
    int in3[3] = {out_of(&b), mb_param(&b, "fc2.w", 2, w2, -0.6f, 0.6f),
                  mb_param(&b, "fc2.b", 1, b2, -0.1f, 0.1f)};
    mb_node(&b, "fc2", TML_OP_DENSE, 3, in3, 0, NULL);
    int in4[1] = {out_of(&b)};
    mb_node(&b, "sm", TML_OP_SOFTMAX, 1, in4, 0, NULL);
    return mb_end(&b);
}

/* A 2-D input: batch norm over its last axis, reshape to an image (NHWC view
 * + transpose), 1x1 conv, global average pool, relu6 node, dense on a plain
 * 2-D tensor; and an add of a flattened image with a dense output (two vector
 * layouts). */
static tml_model *model_plain(void)
{
    mbuild b;
    mb_begin(&b, "plain", 2, 4, 6, 0);
    int bn = mb_bn(&b, "bn", b.m->input, 6);
    int32_t r1[3] = {2, 3, 4};
    mb_node(&b, "img", TML_OP_RESHAPE, 1, &bn, 3, r1);
    int img = out_of(&b);
    int32_t wc[4] = {5, 1, 1, 4};
    int in1[2] = {img, mb_param(&b, "pw.w", 4, wc, -0.7f, 0.7f)};
    mb_node(&b, "pw", TML_OP_CONV2D, 2, in1, 0, NULL);
    int pw = out_of(&b);
    int in2[1] = {pw};
    mb_node(&b, "r6", TML_OP_RELU6, 1, in2, 0, NULL);
    int in3[1] = {out_of(&b)};
    mb_node(&b, "gap", TML_OP_GLOBAL_AVGPOOL, 1, in3, 0, NULL); /* (5) */
    int gap = out_of(&b);
    /* the flattened image (CHW order in ONNX) + a dense output (plain) */
    int in4[1] = {pw};
    mb_node(&b, "flat", TML_OP_RESHAPE, 1, in4, 0, NULL); /* (30) */
    int flat = out_of(&b);
    int32_t wg[2] = {30, 5};
    int in5[2] = {gap, mb_param(&b, "up.w", 2, wg, -0.5f, 0.5f)};
    mb_node(&b, "up", TML_OP_DENSE, 2, in5, 0, NULL);
    int in6[2] = {flat, out_of(&b)};
    mb_node(&b, "mix", TML_OP_ADD, 2, in6, 0, NULL);
    int mix = out_of(&b);
    /* dense reading the 2-D input directly (flattened as is) + the mix */
    int32_t wi[2] = {30, 24};
    int in7[2] = {b.m->input, mb_param(&b, "lin.w", 2, wi, -0.3f, 0.3f)};
    mb_node(&b, "lin", TML_OP_DENSE, 2, in7, 0, NULL);
    int in8[2] = {mix, out_of(&b)};
    mb_node(&b, "sum", TML_OP_ADD, 2, in8, 0, NULL);
    int32_t wo[2] = {3, 30};
    int in9[2] = {out_of(&b), mb_param(&b, "out.w", 2, wo, -0.3f, 0.3f)};
    mb_node(&b, "out", TML_OP_DENSE, 2, in9, 0, NULL);
    return mb_end(&b);
}

static void test_special_models(void **state)
{
    (void)state;
    tml_model *m = model_features();
    roundtrip("features", m, 1);
    tml_model_free(m);
    m = model_reshapes();
    roundtrip("reshapes", m, 0);
    tml_model_free(m);
    m = model_vector();
    roundtrip("vector", m, 1);
    tml_model_free(m);
    m = model_plain();
    roundtrip("plain", m, 0);
    tml_model_free(m);
}

/* Pruned + clustered LeNet-5: exported dense with the decoded values; the
 * zeros stay zeros. */
static void test_pruned_clustered(void **state)
{
    (void)state;
    tml_zoo_opts o = {.seed = 5};
    tml_model *m = NULL;
    assert_int_equal(tml_zoo_create("lenet5", &o, &m), TML_OK);
    randomize(m, 6);
    tml_prune_spec ps = {.sparsity = 0.9};
    tml_prune_report pr;
    assert_int_equal(tml_prune_magnitude(m, &ps, &pr), TML_OK);
    tml_prune_report_free(&pr);
    tml_cluster_opts co;
    tml_cluster_opts_default(&co);
    co.bits = 4;
    assert_int_equal(tml_cluster(m, &co, NULL), TML_OK);
    /* the .tmf round trip gives the model as a pipeline would see it */
    uint8_t *tb;
    size_t tl;
    assert_int_equal(tml_model_write_mem(m, NULL, &tb, &tl), TML_OK);
    tml_model *m1 = NULL;
    assert_int_equal(tml_model_read_mem(tb, tl, &m1), TML_OK);
    free(tb);
    roundtrip("lenet5-pruned", m1, 1);
    /* the imported weights hold the same zeros and values */
    uint8_t *buf;
    size_t len;
    assert_int_equal(tml_onnx_export_mem(m1, &buf, &len), TML_OK);
    tml_model *m2 = NULL;
    assert_int_equal(tml_onnx_import_mem(buf, len, NULL, &m2, NULL), TML_OK);
    free(buf);
    int w1 = m1->nodes[tml_model_find_node(m1, "fc2")].in[1];
    int k = -1;
    for (int i = 0; i < m2->n_nodes; i++)
        if (m2->nodes[i].op == TML_OP_DENSE && m2->tensors[m2->nodes[i].out].dims[0] == 10)
            k = m2->nodes[i].in[1];
    assert_true(k >= 0);
    assert_int_equal(tml_tensor_numel(&m1->tensors[w1]), tml_tensor_numel(&m2->tensors[k]));
    assert_int_equal(tml_tensor_nonzeros(&m1->tensors[w1]), tml_tensor_nonzeros(&m2->tensors[k]));
    TU_ASSERT_CLOSE((const float *)m1->tensors[w1].data, (const float *)m2->tensors[k].data,
                    (size_t)tml_tensor_numel(&m1->tensors[w1]), 0.0f);
    tml_model_free(m2);
    tml_model_free(m1);
    tml_model_free(m);
}

/* ---- fixtures: import -> export -> import ---------------------------------------------------- */

static void test_fixture_roundtrip(void **state)
{
    (void)state;
    char p[1200];
    snprintf(p, sizeof p, "%s/MANIFEST", fixture_dir());
    FILE *f = fopen(p, "r");
    if (!f) {
        printf("no fixtures at %s (set TML_SOURCE_DIR): skipped\n", fixture_dir());
        skip();
    }
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64], dims[64];
        int batch;
        long long outs;
        if (line[0] == '#' || sscanf(line, "%63s %d %63s %lld", name, &batch, dims, &outs) != 4) continue;
        size_t ml, il, ol;
        snprintf(p, sizeof p, "%s/%s.onnx", fixture_dir(), name);
        uint8_t *mbuf = tu_read_file(p, &ml);
        snprintf(p, sizeof p, "%s/%s.input.bin", fixture_dir(), name);
        float *xin = (float *)tu_read_file(p, &il);
        snprintf(p, sizeof p, "%s/%s.output.bin", fixture_dir(), name);
        float *want = (float *)tu_read_file(p, &ol);
        assert_true(mbuf && xin && want);
        tml_model *m1 = NULL, *m2 = NULL;
        tml_onnx_info i1, i2;
        assert_int_equal(tml_onnx_import_mem(mbuf, ml, NULL, &m1, &i1), TML_OK);
        uint8_t *eb;
        size_t el;
        tml_status st = tml_onnx_export_mem(m1, &eb, &el);
        if (st) printf("%s: export: %s\n", name, tml_last_error());
        assert_int_equal(st, TML_OK);
        st = tml_onnx_import_mem(eb, el, NULL, &m2, &i2);
        if (st) printf("%s: re-import: %s\n", name, tml_last_error());
        assert_int_equal(st, TML_OK);
        assert_int_equal(i1.in_layout, i2.in_layout);
        assert_int_equal(i2.batch, -1);
        free(eb);
        /* the fixture's own inputs (ONNX order) into tinyml order, through both models */
        const tml_tensor *it = &m1->tensors[m1->input];
        int64_t per = tml_tensor_numel(it);
        assert_int_equal(il, sizeof(float) * (size_t)(per * batch));
        assert_int_equal(ol, sizeof(float) * (size_t)(outs * batch));
        float *x = malloc(sizeof(float) * (size_t)(per * batch));
        float *y1 = malloc(sizeof(float) * (size_t)(outs * batch)),
              *y2 = malloc(sizeof(float) * (size_t)(outs * batch));
        assert_true(x && y1 && y2);
        if (it->ndim == 3) {
            int64_t H = it->dims[0], W = it->dims[1], C = it->dims[2];
            for (int b = 0; b < batch; b++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t q = 0; q < H * W; q++) x[b * per + q * C + c] = xin[b * per + c * H * W + q];
        } else {
            memcpy(x, xin, il);
        }
        run_model(m1, x, batch, y1);
        run_model(m2, x, batch, y2);
        assert_true(tu_close_f32(name, y1, y2, (size_t)(outs * batch), EXPORT_TOL));
        assert_true(tu_close_f32(name, y2, want, (size_t)(outs * batch), FIXTURE_TOL));
        printf("  %-16s import -> export (%zu bytes) -> import: outputs kept, torch's matched\n", name, el);
        tml_model_free(m1);
        tml_model_free(m2);
        free(x);
        free(y1);
        free(y2);
        free(mbuf);
        free(xin);
        free(want);
        n++;
    }
    fclose(f);
    assert_true(n >= 6);
}

/* ---- refusals, files ----------------------------------------------------------------------------- */

static void test_refusals_and_files(void **state)
{
    (void)state;
    tml_zoo_opts o = {.seed = 1};
    tml_model *m = NULL;
    assert_int_equal(tml_zoo_create("lenet300", &o, &m), TML_OK);
    /* an int8 activation in a float model: the model counts as quantized, and
     * the QDQ export needs a whole int8 model */
    tml_model *q = tml_model_clone(m);
    assert_non_null(q);
    q->tensors[q->output].dtype = TML_DTYPE_INT8;
    uint8_t *buf = (uint8_t *)1;
    size_t len = 7;
    assert_int_equal(tml_onnx_export_mem(q, &buf, &len), TML_ERR_UNSUPPORTED);
    assert_null(buf);
    assert_int_equal(len, 0);
    assert_non_null(strstr(tml_last_error(), "the QDQ export needs a fully int8 model"));
    tml_model_free(q);
    /* average pooling with dilation has no opset-13 form */
    mbuild b;
    mb_begin(&b, "avgdil", 3, 8, 8, 2);
    int in[1] = {b.m->input};
    tml_node *n = mb_node(&b, "ap", TML_OP_AVGPOOL, 1, in, 0, NULL);
    n->kh = n->kw = 2;
    n->dh = 2;
    tml_model *ad = mb_end(&b);
    assert_int_equal(tml_onnx_export_mem(ad, &buf, &len), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "'ap'"));
    tml_model_free(ad);
    /* the file variant writes the same bytes; a missing directory is an IO error */
    assert_int_equal(tml_onnx_export_mem(m, &buf, &len), TML_OK);
    char path[1200];
    snprintf(path, sizeof path, "%s/file.onnx", g_dir);
    assert_int_equal(tml_onnx_export_file(m, path), TML_OK);
    size_t fl;
    uint8_t *fb = tu_read_file(path, &fl);
    assert_non_null(fb);
    assert_int_equal(fl, len);
    assert_memory_equal(fb, buf, len);
    free(fb);
    free(buf);
    snprintf(path, sizeof path, "%s/no/such/dir/file.onnx", g_dir);
    assert_int_equal(tml_onnx_export_file(m, path), TML_ERR_IO);
    tml_model_free(m);
}

/* `tinyml export --onnx` through the real program. */

/* An int8 model's QDQ export keeps ONNX Runtime in int8 everywhere: every
 * data input of a layer or of a node that moves data (Flatten, Reshape,
 * Transpose, pools, Add) comes out of a DequantizeLinear, and what a moving
 * node or a global pool writes goes into a QuantizeLinear (ORT fuses
 * DequantizeLinear -> op -> QuantizeLinear; a float value in between leaves
 * the next layer in float). Returns the number of such nodes checked. */
static int check_qdq_graph(const char *path)
{
    size_t len;
    uint8_t *buf = tu_read_file(path, &len);
    assert_non_null(buf);
    onx_model om;
    assert_int_equal(onx_parse_model(buf, len, &om), TML_OK);
    const onx_graph *g = &om.graph;
    static const char *const layers[] = {"Conv", "Gemm", "Flatten", "Reshape", "Transpose", "GlobalAveragePool",
                                         "MaxPool", "AveragePool", "Add"};
    static const char *const moves[] = {"Flatten", "Reshape", "Transpose", "GlobalAveragePool"};
    int checked = 0;
    for (int i = 0; i < g->n_node; i++) {
        const onx_node *n = &g->node[i];
        int is_layer = 0, is_move = 0;
        for (size_t k = 0; k < sizeof layers / sizeof layers[0]; k++) is_layer |= onx_slice_eq(n->op_type, layers[k]);
        for (size_t k = 0; k < sizeof moves / sizeof moves[0]; k++) is_move |= onx_slice_eq(n->op_type, moves[k]);
        if (!is_layer) continue;
        checked++;
        char name[256];
        onx_slice_print(n->name, name, sizeof name);
        /* data inputs: the first (Reshape's second is its shape), both of an Add */
        const int n_data = onx_slice_eq(n->op_type, "Add") ? 2 : 1;
        for (int a = 0; a < n_data && a < n->n_in; a++) {
            const char *producer = NULL;
            for (int j = 0; j < g->n_node; j++)
                if (g->node[j].n_out > 0 && g->node[j].out[0].n == n->in[a].n &&
                    memcmp(g->node[j].out[0].p, n->in[a].p, n->in[a].n) == 0)
                    producer = onx_slice_eq(g->node[j].op_type, "DequantizeLinear") ? "dq" : "other";
            if (!producer || strcmp(producer, "dq") != 0) fprintf(stderr, "%s: %s: input %d not dequantized\n", path, name, a);
            assert_true(producer && strcmp(producer, "dq") == 0);
        }
        if (!is_move) continue;
        int readers = 0, quantizers = 0;
        for (int j = 0; j < g->n_node; j++)
            for (int a = 0; a < g->node[j].n_in; a++)
                if (g->node[j].in[a].n == n->out[0].n && memcmp(g->node[j].in[a].p, n->out[0].p, n->out[0].n) == 0) {
                    readers++;
                    quantizers += onx_slice_eq(g->node[j].op_type, "QuantizeLinear");
                }
        if (readers == 0 || quantizers != readers) fprintf(stderr, "%s: %s: output not quantized\n", path, name);
        assert_true(readers > 0 && quantizers == readers);
    }
    onx_model_free(&om);
    free(buf);
    return checked;
}

static void test_cli(void **state)
{
    (void)state;
    const char *t = getenv("TINYML");
    if (!t || !*t) {
        printf("TINYML not set: CLI checks skipped\n");
        skip();
    }
    char cmd[4096], out[16384], fm[1200], qm[1200], om[1200], om2[1200];
    snprintf(fm, sizeof fm, "%s/f.tmf", g_dir);
    snprintf(qm, sizeof qm, "%s/q.tmf", g_dir);
    snprintf(om, sizeof om, "%s/f.onnx", g_dir);
    snprintf(om2, sizeof om2, "%s/f2.onnx", g_dir);
    snprintf(cmd, sizeof cmd, "'%s' create lenet300 -q -o '%s'", t, fm);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --onnx -o '%s'", t, fm, om);
    int rc = tu_run(cmd, out, sizeof out);
    if (rc) printf("%s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "opset 13"));
    assert_non_null(strstr(out, "input (N,1,28,28), output (N,10)"));
    tml_model *m = NULL;
    assert_int_equal(tml_onnx_import_file(om, NULL, &m, NULL), TML_OK);
    tml_model_free(m);
    /* from a pipe to stdout: the same bytes */
    snprintf(cmd, sizeof cmd, "cat '%s' | '%s' export --onnx -o - -q > '%s'", fm, t, om2);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    size_t l1, l2;
    uint8_t *b1 = tu_read_file(om, &l1), *b2 = tu_read_file(om2, &l2);
    assert_true(b1 && b2);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    free(b1);
    free(b2);
    /* an int8 model is written in QDQ form (tests/cli/test_onnx_qdq.sh runs it) */
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' --calib fashion-mnist --calib-samples 64 -q -o '%s'", t, fm,
             qm);
    rc = tu_run(cmd, out, sizeof out);
    if (rc) printf("%s\n", out);
    assert_int_equal(rc, 0);
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --onnx -o '%s/q.onnx'", t, qm, g_dir);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    struct stat sb;
    assert_int_equal(stat(tu_path(g_dir, "q.onnx"), &sb), 0);
    size_t ql;
    uint8_t *qb = tu_read_file(tu_path(g_dir, "q.onnx"), &ql);
    assert_non_null(qb);
    int has_q = 0, has_dq = 0;
    for (size_t i = 0; i + 16 <= ql; i++) {
        has_q |= memcmp(qb + i, "QuantizeLinear", 14) == 0;
        has_dq |= memcmp(qb + i, "DequantizeLinear", 16) == 0;
    }
    assert_true(has_q && has_dq);
    free(qb);
    assert_true(check_qdq_graph(tu_path(g_dir, "q.onnx")) >= 3);
    /* the Flatten before LeNet-5's fc1, DS-CNN's global pool and its Flatten */
    const char *archs[] = {"lenet5", "dscnn"};
    for (int a = 0; a < 2; a++) {
        snprintf(cmd, sizeof cmd,
                 "'%s' create %s -q | '%s' quantize --calib fashion-mnist --calib-samples 32 -q | '%s' export --onnx "
                 "-q -o '%s/q2.onnx'",
                 t, archs[a], t, t, g_dir);
        rc = tu_run(cmd, out, sizeof out);
        if (rc) printf("%s\n", out);
        assert_int_equal(rc, 0);
        assert_true(check_qdq_graph(tu_path(g_dir, "q2.onnx")) >= 5);
    }
    /* usage errors (2): no -o, both targets, no target, --c options with --onnx */
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --onnx", t, fm);
    assert_int_equal(tu_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "-o FILE.onnx is required"));
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --c --onnx -o '%s'", t, fm, om);
    assert_int_equal(tu_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "exclude each other"));
    snprintf(cmd, sizeof cmd, "'%s' export '%s' -o '%s'", t, fm, om);
    assert_int_equal(tu_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "choose a target"));
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --onnx --dense -o '%s'", t, fm, om);
    assert_int_equal(tu_run(cmd, out, sizeof out), 2);
    /* --c still takes the int8 model */
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --c -o '%s/c' -q --format csv", t, qm, g_dir);
    rc = tu_run(cmd, out, sizeof out);
    if (rc) printf("%s\n", out);
    assert_int_equal(rc, 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s", tu_tmpdir("onnx_export"));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zoo),
        cmocka_unit_test(test_special_models),
        cmocka_unit_test(test_pruned_clustered),
        cmocka_unit_test(test_fixture_roundtrip),
        cmocka_unit_test(test_refusals_and_files),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
