/*
 * test_engine.c - the model zoo, buffer planning, the float engine (fast vs
 * reference kernels, shared vs separate buffers), evaluation metrics on data
 * with known answers, and graph folding (batch norm, activation fusion).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "testutil.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_zoo.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static tml_model *zoo(const char *arch, int h, int w, int c, int classes)
{
    tml_zoo_opts o = {.h = h, .w = w, .c = c, .classes = classes, .seed = 7};
    tml_model *m = NULL;
    tml_status st = tml_zoo_create(arch, &o, &m);
    if (st) fprintf(stderr, "zoo %s: %s\n", arch, tml_last_error());
    assert_int_equal(st, TML_OK);
    return m;
}

static int64_t count_params(const tml_model *m)
{
    int64_t p = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == TML_TENSOR_PARAM) p += tml_tensor_numel(&m->tensors[i]);
    return p;
}

/* Gives batch-norm statistics non-trivial values so folding is really tested. */
static void randomize_bn(tml_model *m, uint64_t seed)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int i = 0; i < m->n_nodes; i++) {
        tml_node *n = &m->nodes[i];
        if (n->op != TML_OP_BATCHNORM) continue;
        for (int j = 1; j < 5; j++) {
            tml_tensor *t = &m->tensors[n->in[j]];
            float *p = t->data;
            for (int64_t k = 0; k < tml_tensor_numel(t); k++)
                p[k] = j == 4 ? tu_rng_uniform(&r, 0.5f, 2.0f) : (j == 1 ? tu_rng_uniform(&r, 0.5f, 1.5f) : tu_rng_uniform(&r, -0.3f, 0.3f));
        }
    }
}

static float *run_tuned(const tml_model *m, const float *x, int n, int use_ref, int keep_all,
                        const tml_engine_tuning *tuning)
{
    tml_engine *e = NULL;
    tml_engine_opts o = {.use_ref = use_ref, .keep_all = keep_all};
    assert_int_equal(tml_engine_new_tuned(m, n, &o, tuning, &e), TML_OK);
    int64_t outn = tml_tensor_numel(&m->tensors[m->output]);
    float *y = malloc(sizeof(float) * (size_t)(outn * n));
    assert_int_equal(tml_engine_run(e, x, n, y), TML_OK);
    tml_engine_free(e);
    return y;
}

static float *run(const tml_model *m, const float *x, int n, int use_ref, int keep_all)
{
    return run_tuned(m, x, n, use_ref, keep_all, NULL);
}

static float *random_input(const tml_model *m, int n, uint64_t seed)
{
    int64_t numel = tml_tensor_numel(&m->tensors[m->input]);
    float *x = malloc(sizeof(float) * (size_t)(numel * n));
    tu_rng r;
    tu_rng_seed(&r, seed);
    tu_fill_uniform(&r, x, (size_t)(numel * n), 0.0f, 1.0f);
    return x;
}

static void test_zoo_shapes_and_params(void **state)
{
    (void)state;
    tml_model *m = zoo("lenet300", 0, 0, 0, 0);
    assert_int_equal(count_params(m), 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10);
    assert_int_equal(tml_tensor_numel(&m->tensors[m->output]), 10);
    tml_model_free(m);
    m = zoo("lenet5", 0, 0, 0, 0);
    assert_int_equal(count_params(m), 431080); /* Caffe LeNet-5 */
    int64_t macs = 0;
    for (int i = 0; i < m->n_nodes; i++) macs += tml_node_macs(m, &m->nodes[i]);
    assert_int_equal(macs, 24 * 24 * 20 * 25 + 8 * 8 * 50 * 500 + 800 * 500 + 500 * 10);
    tml_model_free(m);
    /* DS-CNN for 49x10 MFCCs: first conv 10x4 stride 2 same -> 25x5x64 */
    m = zoo("dscnn", 49, 10, 1, 12);
    const tml_tensor *c1 = &m->tensors[tml_model_find_tensor(m, "conv1")];
    assert_int_equal(c1->dims[0], 25);
    assert_int_equal(c1->dims[1], 5);
    assert_int_equal(c1->dims[2], 64);
    assert_int_equal(m->tensors[tml_model_find_tensor(m, "conv1.w")].dims[1], 10);
    assert_int_equal(tml_tensor_numel(&m->tensors[m->output]), 12);
    tml_model_free(m);
    m = zoo("resnet8", 32, 32, 3, 10);
    /* MLPerf Tiny ResNet-8 has 78k parameters (incl. batch-norm statistics) */
    int64_t p = count_params(m);
    assert_true(p > 75000 && p < 82000);
    const tml_tensor *a3 = &m->tensors[tml_model_find_tensor(m, "res3_add")];
    assert_int_equal(a3->dims[0], 8);
    assert_int_equal(a3->dims[2], 64);
    tml_model_free(m);
    m = zoo("mobilenet-tiny", 0, 0, 0, 0);
    assert_int_equal(tml_tensor_numel(&m->tensors[m->output]), 10);
    tml_model_free(m);
}

static void test_zoo_errors(void **state)
{
    (void)state;
    tml_model *m = NULL;
    tml_zoo_opts o = {0};
    assert_int_equal(tml_zoo_create("lenet7", &o, &m), TML_ERR_INVALID);
    assert_non_null(strstr(tml_last_error(), "lenet5"));
    o.h = 4;
    o.w = 4;
    o.c = 1;
    /* 5x5 convs cannot run on a 4x4 input */
    assert_int_not_equal(tml_zoo_create("lenet5", &o, &m), TML_OK);
    assert_null(m);
}

static void test_zoo_json(void **state)
{
    (void)state;
    const char *js = "{\"name\":\"tiny\",\"input\":[12,12,2],\"classes\":3,\"layers\":["
                     "{\"type\":\"conv2d\",\"filters\":4,\"kernel\":3,\"padding\":\"same\",\"act\":\"relu\"},"
                     "{\"type\":\"residual\",\"layers\":[{\"type\":\"conv2d\",\"filters\":8,\"kernel\":3,\"stride\":2,\"padding\":\"same\"}]},"
                     "{\"type\":\"batchnorm\"},{\"type\":\"maxpool\",\"size\":2},{\"type\":\"depthwise_conv2d\",\"kernel\":3,"
                     "\"multiplier\":2,\"padding\":\"same\"},{\"type\":\"global_avgpool\"},{\"type\":\"dropout\",\"rate\":0.2},"
                     "{\"type\":\"dense\",\"units\":3}]}";
    tml_model *m = NULL;
    tml_zoo_opts o = {.seed = 1};
    assert_int_equal(tml_zoo_from_json(js, &o, &m), TML_OK);
    assert_string_equal(m->meta.name, "tiny");
    assert_int_equal(m->tensors[m->input].dims[2], 2);
    assert_int_equal(tml_tensor_numel(&m->tensors[m->output]), 3);
    /* the residual changed 12x12x4 to 6x6x8, so a 1x1 stride-2 projection was added */
    int proj = 0;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op == TML_OP_CONV2D && m->nodes[i].kh == 1 && m->nodes[i].sh == 2) proj = 1;
    assert_true(proj);
    tml_model_free(m);
    /* errors name the layer */
    assert_int_not_equal(tml_zoo_from_json("{\"layers\":[{\"type\":\"conv2d\"}]}", &o, &m), TML_OK);
    assert_non_null(strstr(tml_last_error(), "filters"));
    assert_int_not_equal(tml_zoo_from_json("{\"layers\":[{\"type\":\"warp\"}]}", &o, &m), TML_OK);
    assert_non_null(strstr(tml_last_error(), "warp"));
    assert_int_not_equal(tml_zoo_from_json("[1,2", &o, &m), TML_OK);
    assert_int_not_equal(tml_zoo_from_json("{\"layers\":[{\"type\":\"flatten\"}],\"classes\":10}", &o, &m), TML_OK);
    assert_non_null(strstr(tml_last_error(), "classes"));
}

/* x -> a (100 floats) -> b (10) -> c (1000) -> d (10): lifetimes [x..a], [a..b],
 * [b..c], [c..d]; the plan needs at most the two largest neighbours at once. */
static void test_plan_chain(void **state)
{
    (void)state;
    tml_model *m = tml_model_new();
    int32_t dx[1] = {10}, wa[2] = {100, 10}, wb[2] = {10, 100}, wc[2] = {1000, 10}, wd[2] = {10, 1000};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 1, dx, NULL);
    const int32_t *wdims[4] = {wa, wb, wc, wd};
    int prev = x;
    for (int i = 0; i < 4; i++) {
        char wn[8], an[8];
        snprintf(wn, sizeof wn, "w%d", i);
        snprintf(an, sizeof an, "a%d", i);
        int w = tml_model_add_tensor(m, wn, TML_DTYPE_F32, TML_TENSOR_PARAM, 2, wdims[i], NULL);
        int a = tml_model_add_tensor(m, an, TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
        int in[2] = {prev, w};
        tml_model_add_node(m, an, TML_OP_DENSE, 2, in, a);
        prev = a;
    }
    m->input = x;
    m->output = prev;
    assert_int_equal(tml_model_finalize(m), TML_OK);
    int64_t off[16], arena;
    assert_int_equal(tml_plan_activations(m, 1, off, &arena), TML_OK);
    /* sizes 40, 400, 40, 4000, 40 bytes; the worst pair is a1+a2 (40+4000) or a2+a3 */
    assert_true(arena <= 4000 + 48 + 48);
    assert_true(arena >= 4040);
    /* a tensor and the tensors live with it never overlap */
    for (int i = 0; i < 4; i++) {
        int in = m->nodes[i].in[0], out = m->nodes[i].out;
        int64_t si = 4 * tml_tensor_numel(&m->tensors[in]), so = 4 * tml_tensor_numel(&m->tensors[out]);
        assert_true(off[in] + si <= off[out] || off[out] + so <= off[in]);
    }
    int64_t peak;
    assert_int_equal(tml_model_peak_activation_bytes(m, &peak), TML_OK);
    assert_int_equal(peak, arena);
    tml_model_free(m);
}

/* Shared buffers give the same outputs as separate ones, and the fast kernels
 * (on the fused graph, or on every node with keep_all) agree with the
 * reference ones, on every zoo model. */
static void test_engine_fast_vs_ref_all_zoo(void **state)
{
    (void)state;
    const char *archs[] = {"lenet300", "lenet5", "dscnn", "mobilenet-tiny", "resnet8"};
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
        tml_model *m = zoo(archs[a], 0, 0, 0, 0);
        randomize_bn(m, 3);
        const int n = 3;
        float *x = random_input(m, n, 11);
        float *yr = run(m, x, n, 1, 1);
        float *yf = run(m, x, n, 0, 0);
        float *yk = run(m, x, n, 0, 1);
        const tml_engine_tuning sep = {.separate = 1};
        float *ys = run_tuned(m, x, n, 0, 0, &sep);
        int64_t outn = tml_tensor_numel(&m->tensors[m->output]) * n;
        /* logits are O(1..10); the fast GEMM sums in another order, folding
         * batch norm rounds the weights differently */
        const float tol = 1e-3f;
        fprintf(stderr, "  %s\n", archs[a]);
        TU_ASSERT_CLOSE(yr, yf, (size_t)outn, tol);
        TU_ASSERT_CLOSE(yr, yk, (size_t)outn, tol);
        /* the same kernels with shared or separate buffers must agree exactly */
        TU_ASSERT_CLOSE(yf, ys, (size_t)outn, 0.0f);
        free(x);
        free(yr);
        free(yf);
        free(yk);
        free(ys);
        tml_model_free(m);
    }
}

/* A batch runs in passes of micro_batch samples on one or several lanes: the
 * outputs do not depend on the pass size or the thread count (bit for bit),
 * and on ResNet-8 each residual add runs inside the conv that feeds it. */
static void test_engine_micro_batches(void **state)
{
    (void)state;
    const char *archs[] = {"lenet300", "lenet5", "dscnn", "mobilenet-tiny", "resnet8"};
#ifdef _OPENMP
    const int saved = omp_get_max_threads();
#endif
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
        tml_model *m = zoo(archs[a], 0, 0, 0, 0);
        randomize_bn(m, 4);
        const int n = 7;
        float *x = random_input(m, n, 12);
        const int64_t outn = tml_tensor_numel(&m->tensors[m->output]) * n;
        const tml_engine_tuning one = {.micro_batch = n};
        float *y1 = run_tuned(m, x, n, 0, 0, &one);
        for (int threads = 1; threads <= 2; threads++) {
#ifdef _OPENMP
            omp_set_num_threads(threads);
#endif
            for (int mb = 1; mb <= 3; mb++) {
                const tml_engine_tuning t = {.micro_batch = mb};
                float *y = run_tuned(m, x, n, 0, 0, &t);
                fprintf(stderr, "  %s: passes of %d, %d thread(s)\n", archs[a], mb, threads);
                TU_ASSERT_CLOSE(y, y1, (size_t)outn, 0.0f);
                free(y);
            }
        }
        if (strcmp(archs[a], "resnet8") == 0) {
            tml_engine *e = NULL;
            assert_int_equal(tml_engine_new(m, 2, NULL, &e), TML_OK);
            int fused = 0;
            for (int i = 0; i < e->n_steps; i++) fused += e->steps[i].res >= 0;
            assert_int_equal(fused, 3);
            tml_engine_free(e);
        }
        free(x);
        free(y1);
        tml_model_free(m);
    }
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

static void test_engine_errors(void **state)
{
    (void)state;
    tml_model *m = zoo("lenet300", 0, 0, 0, 0);
    tml_engine *e = NULL;
    assert_int_equal(tml_engine_new(m, 0, NULL, &e), TML_ERR_INVALID);
    assert_int_equal(tml_engine_new(m, 4, NULL, &e), TML_OK);
    float x[784 * 5] = {0}, y[50];
    assert_int_equal(tml_engine_run(e, x, 5, y), TML_ERR_INVALID);
    assert_null(tml_engine_activation(e, 0)); /* without keep_all */
    tml_engine_free(e);
    tml_model_free(m);

    /* an int8 model whose input is its output (no node checks the input's
     * quantization parameters): refused at prepare, not a crash at run */
    m = tml_model_new();
    int32_t d[1] = {3};
    int xi = tml_model_add_tensor(m, "x", TML_DTYPE_INT8, TML_TENSOR_ACT, 1, d, NULL);
    m->input = m->output = xi;
    assert_int_equal(tml_model_finalize(m), TML_OK);
    assert_int_equal(tml_engine_new(m, 1, NULL, &e), TML_ERR_FORMAT);
    assert_null(e);
    /* with parameters it runs: quantize, then dequantize */
    float sc = 0.5f;
    int32_t zp = 1;
    assert_int_equal(tml_tensor_set_quant(&m->tensors[xi], -1, 1, &sc, &zp), TML_OK);
    assert_int_equal(tml_engine_new(m, 1, NULL, &e), TML_OK);
    float xin[3] = {1.0f, -2.0f, 0.5f}, yout[3];
    assert_int_equal(tml_engine_run(e, xin, 1, yout), TML_OK);
    assert_true(yout[0] == 1.0f && yout[1] == -2.0f && yout[2] == 0.5f);
    tml_engine_free(e);
    /* a denormal input scale (found by fuzz_tmf): 1 / scale is inf and a zero
     * input times inf is NaN, whose conversion to int8 was undefined; zero
     * must still quantize to the zero point */
    sc = 1e-45f;
    zp = 3;
    assert_int_equal(tml_tensor_set_quant(&m->tensors[xi], -1, 1, &sc, &zp), TML_OK);
    assert_int_equal(tml_engine_new(m, 1, NULL, &e), TML_OK);
    xin[0] = 0.0f;
    assert_int_equal(tml_engine_run(e, xin, 1, yout), TML_OK);
    assert_true(yout[0] == 0.0f);
    tml_engine_free(e);
    tml_model_free(m);
}

/* A 4-class "model" that outputs its input: evaluation must count exactly. */
static void test_evaluate_known_answer(void **state)
{
    (void)state;
    tml_model *m = tml_model_new();
    int32_t d[1] = {4}, wd[2] = {4, 4};
    float eye[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 1, d, NULL);
    int w = tml_model_add_tensor(m, "w", TML_DTYPE_F32, TML_TENSOR_PARAM, 2, wd, eye);
    int y = tml_model_add_tensor(m, "y", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int in[2] = {x, w};
    tml_model_add_node(m, "id", TML_OP_DENSE, 2, in, y);
    m->input = x;
    m->output = y;
    m->meta.pre.scale = 1.0f;
    assert_int_equal(tml_model_finalize(m), TML_OK);
    /* 6 samples: features one-hot-ish; labels chosen so 4 of 6 are right */
    float feats[6][4] = {{9, 1, 0, 0}, {0, 9, 1, 0}, {0, 0, 9, 1}, {1, 0, 0, 9}, {9, 0, 0, 1}, {0, 9, 0, 0}};
    int32_t labels[6] = {0, 1, 2, 3, 1, 0};
    tml_samples s = {.n = 6, .h = 4, .w = 1, .c = 1, .n_classes = 4};
    s.f32 = &feats[0][0];
    s.labels = labels;
    tml_eval_result r;
    tml_eval_opts o = {.batch = 4}; /* 4 + 2: exercises the partial last batch */
    assert_int_equal(tml_evaluate_samples(m, &s, NULL, 6, &o, &r), TML_OK);
    assert_int_equal(r.n, 6);
    assert_int_equal(r.correct1, 4);
    assert_int_equal(r.confusion[1 * 4 + 0], 1); /* sample 4: true 1, predicted 0 */
    assert_int_equal(r.confusion[0 * 4 + 1], 1); /* sample 5: true 0, predicted 1 */
    assert_int_equal(r.class_total[0], 2);
    assert_int_equal(r.class_correct[0], 1);
    /* cross-entropy of sample 0: logsumexp(9,1,0,0) - 9 */
    double l0 = log(exp(9.0) + exp(1.0) + 2.0) - 9.0;
    assert_true(r.loss > l0); /* the wrong ones cost more */
    tml_eval_result_free(&r);
    /* index selection: only samples 0 and 4 */
    int64_t idx[2] = {0, 4};
    assert_int_equal(tml_evaluate_samples(m, &s, idx, 2, &o, &r), TML_OK);
    assert_int_equal(r.correct1, 1);
    assert_true(fabs(r.top1 - 0.5) < 1e-12);
    tml_eval_result_free(&r);
    /* more classes in the data than outputs is refused */
    s.n_classes = 5;
    assert_int_equal(tml_evaluate_samples(m, &s, NULL, 6, &o, &r), TML_ERR_SHAPE);
    assert_non_null(strstr(tml_last_error(), "classes"));
    tml_model_free(m);
}

static int count_op(const tml_model *m, tml_op op)
{
    int c = 0;
    for (int i = 0; i < m->n_nodes; i++) c += m->nodes[i].op == op;
    return c;
}

/* Folding batch norm and fusing activations keeps the function (float
 * rounding only) and leaves no batch norm, standalone ReLU or dropout. */
static void test_fold_preserves_function(void **state)
{
    (void)state;
    const char *archs[] = {"dscnn", "mobilenet-tiny", "resnet8", "lenet5"};
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
        tml_model *m = zoo(archs[a], 0, 0, 0, 0);
        randomize_bn(m, 5);
        const int n = 2;
        float *x = random_input(m, n, 13);
        float *y0 = run(m, x, n, 1, 0);
        tml_model *f = tml_model_clone(m);
        tml_fold_report rep;
        assert_int_equal(tml_fold(f, &rep), TML_OK);
        assert_int_equal(count_op(f, TML_OP_BATCHNORM), 0);
        assert_int_equal(count_op(f, TML_OP_DROPOUT), 0);
        assert_int_equal(rep.bn_folded, count_op(m, TML_OP_BATCHNORM));
        assert_int_equal(rep.bn_left, 0);
        assert_true(f->n_nodes < m->n_nodes || count_op(m, TML_OP_BATCHNORM) == 0);
        float *y1 = run(f, x, n, 1, 0);
        int64_t outn = tml_tensor_numel(&m->tensors[m->output]) * n;
        fprintf(stderr, "  %s: %d bn folded, %d act fused\n", archs[a], rep.bn_folded, rep.act_fused);
        /* folding reassociates w*g/sqrt(v+eps): a few ulps per layer */
        TU_ASSERT_CLOSE(y0, y1, (size_t)outn, 1e-3f);
        /* every tensor left is used */
        for (int t = 0; t < f->n_tensors; t++) assert_true(tml_model_consumers(f, t) > 0 || tml_model_producer(f, t) >= 0);
        free(x);
        free(y0);
        free(y1);
        tml_model_free(f);
        tml_model_free(m);
    }
}

/* CSR kernels give the dense reference results on odd sizes (batch 1 takes
 * the row path, larger batches the 16-row blocks, with a partial block). */
static void test_sparse_kernels_match_dense_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 21);
    const int outs[3] = {1, 7, 33}, ins[3] = {3, 33, 127}, ns[3] = {1, 5, 37};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 3; c++) {
                int O = outs[a], I = ins[b], N = ns[c];
                float *w = malloc(sizeof(float) * (size_t)(O * I)), *x = malloc(sizeof(float) * (size_t)(N * I));
                float *bias = malloc(sizeof(float) * (size_t)O);
                float *y0 = malloc(sizeof(float) * (size_t)(N * O)), *y1 = malloc(sizeof(float) * (size_t)(N * O));
                tu_fill_uniform(&r, w, (size_t)(O * I), -1, 1);
                for (int i = 0; i < O * I; i++)
                    if (tu_rng_uniform(&r, 0, 1) < 0.8f) w[i] = 0.0f;
                tu_fill_uniform(&r, x, (size_t)(N * I), -1, 1);
                tu_fill_uniform(&r, bias, (size_t)O, -1, 1);
                tml_csr csr;
                assert_int_equal(tml_csr_from_dense(w, O, I, &csr), TML_OK);
                void *scr = malloc(tml_dense_f32_csr_scratch_size(N, I));
                tml_dense_f32_ref(N, I, O, x, w, bias, TML_ACT_RELU, y0);
                tml_dense_f32_csr(N, &csr, x, bias, TML_ACT_RELU, y1, scr);
                /* only the summation order differs: |terms| <= 1, I of them */
                TU_ASSERT_CLOSE(y0, y1, (size_t)(N * O), 1e-6f * (float)I);
                tml_csr_free(&csr);
                free(scr);
                free(w);
                free(x);
                free(bias);
                free(y0);
                free(y1);
            }
    /* conv: 3x3 stride 2 with padding, odd sizes */
    tml_window p = {.n = 3, .h = 9, .w = 7, .c = 5, .oh = 5, .ow = 4, .o = 7, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
                    .dh = 1, .dw = 1, .pad_t = 1, .pad_l = 1, .groups = 1, .depth_mult = 1, .act = TML_ACT_RELU6};
    size_t xs = 3 * 9 * 7 * 5, ws = 7 * 9 * 5, ys = 3 * 5 * 4 * 7;
    float *x = malloc(sizeof(float) * xs), *w = malloc(sizeof(float) * ws), *b = malloc(sizeof(float) * 7);
    float *y0 = malloc(sizeof(float) * ys), *y1 = malloc(sizeof(float) * ys);
    tu_fill_uniform(&r, x, xs, -1, 1);
    tu_fill_uniform(&r, w, ws, -1, 1);
    tu_fill_uniform(&r, b, 7, -1, 1);
    for (size_t i = 0; i < ws; i++)
        if (i % 3) w[i] = 0.0f;
    tml_csr csr;
    assert_int_equal(tml_csr_from_dense(w, 7, 45, &csr), TML_OK);
    void *scr = malloc(tml_conv2d_f32_csr_scratch_size(&p));
    tml_conv2d_f32_ref(&p, x, w, b, y0);
    tml_conv2d_f32_csr(&p, &csr, x, b, y1, scr);
    TU_ASSERT_CLOSE(y0, y1, ys, 1e-6f * 45);
    tml_csr_free(&csr);
    free(scr);
    free(x);
    free(w);
    free(b);
    free(y0);
    free(y1);
}

/* The engine switches a 95%-pruned lenet5 to the sparse kernels (batch 1 and
 * batched) and still agrees with the reference kernels. */
static void test_engine_sparse_path(void **state)
{
    (void)state;
    tml_model *m = zoo("lenet5", 0, 0, 0, 0);
    for (int t = 0; t < m->n_tensors; t++) {
        tml_tensor *w = &m->tensors[t];
        if (w->kind != TML_TENSOR_PARAM || w->ndim < 2) continue;
        float *d = w->data;
        for (int64_t i = 0; i < tml_tensor_numel(w); i++)
            if (i % 20) d[i] = 0.0f;
        w->pruned = 1;
    }
    for (int n = 1; n <= 40; n += 39) {
        float *x = random_input(m, n, 3);
        tml_engine *e = NULL;
        assert_int_equal(tml_engine_new(m, n, NULL, &e), TML_OK);
        int sparse_layers = 0;
        for (int i = 0; i < m->n_nodes; i++)
            sparse_layers += e->csr[i] && e->sparsity[i] >= tml_sparse_crossover(m->nodes[i].op, n);
        assert_true(sparse_layers >= 3);
        float y[400];
        assert_int_equal(tml_engine_run(e, x, n, y), TML_OK);
        float *yr = run(m, x, n, 1, 0);
        TU_ASSERT_CLOSE(y, yr, (size_t)(n * 10), 1e-4f);
        tml_engine_free(e);
        free(yr);
        free(x);
    }
    tml_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zoo_shapes_and_params),
        cmocka_unit_test(test_zoo_errors),
        cmocka_unit_test(test_zoo_json),
        cmocka_unit_test(test_plan_chain),
        cmocka_unit_test(test_engine_fast_vs_ref_all_zoo),
        cmocka_unit_test(test_engine_micro_batches),
        cmocka_unit_test(test_engine_errors),
        cmocka_unit_test(test_evaluate_known_answer),
        cmocka_unit_test(test_fold_preserves_function),
        cmocka_unit_test(test_sparse_kernels_match_dense_ref),
        cmocka_unit_test(test_engine_sparse_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
