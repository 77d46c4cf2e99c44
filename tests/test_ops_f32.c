/*
 * test_ops_f32.c - float32 kernels: every _ref kernel against values worked by
 * hand, then every fast kernel against its _ref on odd sizes (1, 3, 7, 33,
 * 127 ...), all GEMM transpose modes and instruction sets, alpha/beta, strides,
 * NaN safety of beta = 0 and bitwise run-to-run / thread-count independence.
 *
 * Tolerances: inputs are uniform in [-1, 1]; a dot product of length K then
 * differs between two summation orders by far less than 1e-5 * K (float
 * epsilon 1.2e-7 times K partial sums of magnitude <= K, in practice ~sqrt(K)).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_internal.h"
#include "testutil.h"
#include "tinyml/tml_ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Per-element absolute tolerance of a length-K float dot product of values in [-1, 1]. */
#define DOT_TOL_PER_TERM 1e-5f

static float *falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

static float *frand(tu_rng *r, size_t n)
{
    float *p = falloc(n);
    tu_fill_uniform(r, p, n, -1.0f, 1.0f);
    return p;
}

static tml_window win(int n, int h, int w, int c, int o, int kh, int kw, int s, int d, int pad, int groups,
                      int dm, tml_act act)
{
    tml_window p;
    memset(&p, 0, sizeof(p));
    p.n = n;
    p.h = h;
    p.w = w;
    p.c = c;
    p.kh = kh;
    p.kw = kw;
    p.sh = p.sw = s;
    p.dh = p.dw = d;
    p.pad_t = p.pad_l = pad;
    p.groups = groups;
    p.depth_mult = dm;
    p.o = o;
    p.act = act;
    /* symmetric padding: out = (in + 2 pad - d (k - 1) - 1) / s + 1 */
    p.oh = (h + 2 * pad - d * (kh - 1) - 1) / s + 1;
    p.ow = (w + 2 * pad - d * (kw - 1) - 1) / s + 1;
    return p;
}

static size_t in_numel(const tml_window *p)
{
    return (size_t)p->n * p->h * p->w * p->c;
}
static size_t out_numel(const tml_window *p)
{
    return (size_t)p->n * p->oh * p->ow * p->o;
}

/* ==== reference kernels against hand-computed values ================================= */

static void test_gemm_ref_hand(void **state)
{
    (void)state;
    /* A (2,3) = [1 2 3; 4 5 6], B (3,2) = [1 0; 0 1; 1 1] -> A B = [4 5; 10 11] */
    const float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1};
    const float At[6] = {1, 4, 2, 5, 3, 6}, Bt[6] = {1, 0, 1, 0, 1, 1};
    const float want[4] = {4, 5, 10, 11};
    float C[4];
    tml_sgemm_ref(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
    TU_ASSERT_CLOSE(C, want, 4, 0.0f);
    tml_sgemm_ref(1, 0, 2, 2, 3, 1.0f, At, 2, B, 2, 0.0f, C, 2);
    TU_ASSERT_CLOSE(C, want, 4, 0.0f);
    tml_sgemm_ref(0, 1, 2, 2, 3, 1.0f, A, 3, Bt, 3, 0.0f, C, 2);
    TU_ASSERT_CLOSE(C, want, 4, 0.0f);
    tml_sgemm_ref(1, 1, 2, 2, 3, 1.0f, At, 2, Bt, 3, 0.0f, C, 2);
    TU_ASSERT_CLOSE(C, want, 4, 0.0f);
    /* alpha 2, beta -1 on C = [1 1; 1 1]: 2 A B - 1 = [7 9; 19 21] */
    float C2[4] = {1, 1, 1, 1};
    const float want2[4] = {7, 9, 19, 21};
    tml_sgemm_ref(0, 0, 2, 2, 3, 2.0f, A, 3, B, 2, -1.0f, C2, 2);
    TU_ASSERT_CLOSE(C2, want2, 4, 0.0f);
    /* lda > K: A stored with a junk column */
    const float Apad[8] = {1, 2, 3, 99, 4, 5, 6, 99};
    tml_sgemm_ref(0, 0, 2, 2, 3, 1.0f, Apad, 4, B, 2, 0.0f, C, 2);
    TU_ASSERT_CLOSE(C, want, 4, 0.0f);
}

static void test_conv_ref_hand_valid(void **state)
{
    (void)state;
    /* x 3x3 = [1 2 3; 4 5 6; 7 8 9], w 2x2 = [1 2; 3 4], bias 1:
     * y(0,0) = 1*1 + 2*2 + 4*3 + 5*4 + 1 = 38, y(0,1) = 2+6+15+24 + 1 = 48,
     * y(1,0) = 4+10+21+32 + 1 = 68, y(1,1) = 5+12+24+36 + 1 = 78 */
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 2, 3, 4}, b[1] = {1};
    const float want[4] = {38, 48, 68, 78};
    tml_window p = win(1, 3, 3, 1, 1, 2, 2, 1, 1, 0, 1, 1, TML_ACT_NONE);
    assert_int_equal(p.oh, 2);
    float y[4];
    tml_conv2d_f32_ref(&p, x, w, b, y);
    TU_ASSERT_CLOSE(y, want, 4, 0.0f);
    /* bias -50 with fused relu: [0 0 17 27] (act after bias) */
    const float bneg[1] = {-50}, want_relu[4] = {0, 0, 17, 27};
    p.act = TML_ACT_RELU;
    tml_conv2d_f32_ref(&p, x, w, bneg, y);
    TU_ASSERT_CLOSE(y, want_relu, 4, 0.0f);
}

static void test_conv_ref_hand_stride2(void **state)
{
    (void)state;
    /* x 4x4 = 1..16, w 2x2 = [1 0; 0 1], stride 2: y = x[2i][2j] + x[2i+1][2j+1]
     * = [1+6 3+8; 9+14 11+16] = [7 11; 23 27] */
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    const float w[4] = {1, 0, 0, 1}, want[4] = {7, 11, 23, 27};
    tml_window p = win(1, 4, 4, 1, 1, 2, 2, 2, 1, 0, 1, 1, TML_ACT_NONE);
    assert_int_equal(p.oh, 2);
    float y[4];
    tml_conv2d_f32_ref(&p, x, w, NULL, y);
    TU_ASSERT_CLOSE(y, want, 4, 0.0f);
}

static void test_conv_ref_hand_pad(void **state)
{
    (void)state;
    /* x 3x3 = 1..9, w 3x3 of ones, pad 1: each output = sum of the in-range
     * 3x3 neighbourhood (padding reads as 0) */
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float w[9];
    for (int i = 0; i < 9; i++) w[i] = 1.0f;
    const float want[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
    tml_window p = win(1, 3, 3, 1, 1, 3, 3, 1, 1, 1, 1, 1, TML_ACT_NONE);
    assert_int_equal(p.oh, 3);
    float y[9];
    tml_conv2d_f32_ref(&p, x, w, NULL, y);
    TU_ASSERT_CLOSE(y, want, 9, 0.0f);
}

static void test_conv_ref_hand_dilation(void **state)
{
    (void)state;
    /* x 5x5 with x[i][j] = 5i + j + 1, w 2x2 = [1 2; 3 4], dilation 2 (taps 2
     * apart): y(oy,ox) = x[oy][ox] + 2 x[oy][ox+2] + 3 x[oy+2][ox] + 4 x[oy+2][ox+2]
     * = 10 (5 oy + ox + 1) + 2*2 + 3*10 + 4*12 = 10 (5 oy + ox) + 92 */
    float x[25];
    for (int i = 0; i < 25; i++) x[i] = (float)(i + 1);
    const float w[4] = {1, 2, 3, 4};
    tml_window p = win(1, 5, 5, 1, 1, 2, 2, 1, 2, 0, 1, 1, TML_ACT_NONE);
    assert_int_equal(p.oh, 3);
    float y[9], want[9];
    for (int oy = 0; oy < 3; oy++)
        for (int ox = 0; ox < 3; ox++) want[oy * 3 + ox] = (float)(10 * (5 * oy + ox) + 92);
    assert_true(want[0] == 92.0f && want[8] == 212.0f);
    tml_conv2d_f32_ref(&p, x, w, NULL, y);
    TU_ASSERT_CLOSE(y, want, 9, 0.0f);
}

static void test_conv_ref_hand_groups(void **state)
{
    (void)state;
    /* 2 pixels (1x2), c = 4, o = 2, groups 2, 1x1 kernel: filter 0 reads
     * channels 0-1 with w = [1 1], filter 1 reads channels 2-3 with w = [1 -1].
     * pixel 0 x = [1 2 3 4] -> [3, -1]; pixel 1 x = [5 6 7 9] -> [11, -2] */
    const float x[8] = {1, 2, 3, 4, 5, 6, 7, 9}, w[4] = {1, 1, 1, -1};
    const float want[4] = {3, -1, 11, -2};
    tml_window p = win(1, 1, 2, 4, 2, 1, 1, 1, 1, 0, 2, 1, TML_ACT_NONE);
    float y[4];
    tml_conv2d_f32_ref(&p, x, w, NULL, y);
    TU_ASSERT_CLOSE(y, want, 4, 0.0f);
    /* the fast kernel too (pointwise path, no scratch) */
    assert_int_equal(tml_conv2d_f32_scratch_size(&p), 0);
    memset(y, 0, sizeof(y));
    tml_conv2d_f32(&p, x, w, NULL, y, NULL);
    TU_ASSERT_CLOSE(y, want, 4, 0.0f);
}

static void test_dwconv_ref_hand_mult2(void **state)
{
    (void)state;
    /* x 2x2, c = 2: channel 0 = [1 2; 3 4], channel 1 = [10 20; 30 40];
     * depth multiplier 2, 2x2 kernel, w (1,2,2,4) with output channels
     * oc0 (in 0): all ones -> 10; oc1 (in 0): [1 0; 0 0] -> 1;
     * oc2 (in 1): all ones -> 100; oc3 (in 1): [0 0; 0 1] -> 40, bias 1 -> 41 */
    const float x[8] = {1, 10, 2, 20, 3, 30, 4, 40};
    const float w[16] = {1, 1, 1, 0, /* ky0 kx0 */ 1, 0, 1, 0, /* ky0 kx1 */
                         1, 0, 1, 0, /* ky1 kx0 */ 1, 0, 1, 1 /* ky1 kx1 */};
    const float b[4] = {0, 0, 0, 1}, want[4] = {10, 1, 100, 41};
    tml_window p = win(1, 2, 2, 2, 4, 2, 2, 1, 1, 0, 1, 2, TML_ACT_NONE);
    float y[4];
    tml_dwconv2d_f32_ref(&p, x, w, b, y);
    TU_ASSERT_CLOSE(y, want, 4, 0.0f);
    memset(y, 0, sizeof(y));
    tml_dwconv2d_f32(&p, x, w, b, y);
    TU_ASSERT_CLOSE(y, want, 4, 0.0f);
}

static void test_avgpool_ref_hand_pad(void **state)
{
    (void)state;
    /* x 2x2 = [1 2; 3 4], 2x2 window, stride 1, pad 1 on every side: 3x3
     * output, each the mean of the in-range taps only */
    const float x[4] = {1, 2, 3, 4};
    const float want[9] = {1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4};
    tml_window p = win(1, 2, 2, 1, 1, 2, 2, 1, 1, 1, 1, 1, TML_ACT_NONE);
    assert_int_equal(p.oh, 3);
    float y[9];
    tml_avgpool_f32_ref(&p, x, y);
    TU_ASSERT_CLOSE(y, want, 9, 0.0f);
    tml_avgpool_f32(&p, x, y);
    TU_ASSERT_CLOSE(y, want, 9, 0.0f);
}

static void test_maxpool_ref_hand(void **state)
{
    (void)state;
    /* 4x4, 2x2 window stride 2; channel 1 = -channel 0 */
    const float c0[16] = {1, 5, 2, 0, 3, 4, 8, 7, -1, -2, -3, -4, 9, 0, 0, -5};
    float x[32];
    for (int i = 0; i < 16; i++) {
        x[2 * i] = c0[i];
        x[2 * i + 1] = -c0[i];
    }
    const float want[8] = {5, -1, 8, 0, 9, 2, 0, 5};
    tml_window p = win(1, 4, 4, 2, 2, 2, 2, 2, 1, 0, 1, 1, TML_ACT_NONE);
    float y[8];
    tml_maxpool_f32_ref(&p, x, y);
    TU_ASSERT_CLOSE(y, want, 8, 0.0f);
    /* 3x3 window, stride 2, pad 1 on 4x4: padding never wins even if all
     * in-range values are negative */
    float xn[16];
    for (int i = 0; i < 16; i++) xn[i] = -(float)(i + 1);
    const float want2[4] = {-1, -2, -5, -6};
    tml_window q = win(1, 4, 4, 1, 1, 3, 3, 2, 1, 1, 1, 1, TML_ACT_NONE);
    assert_int_equal(q.oh, 2);
    float y2[4];
    tml_maxpool_f32_ref(&q, xn, y2);
    TU_ASSERT_CLOSE(y2, want2, 4, 0.0f);
}

static void test_global_avgpool_ref_hand(void **state)
{
    (void)state;
    const float x[8] = {1, 10, 2, 20, 3, 30, 4, 40}, want[2] = {2.5f, 25.0f};
    float y[2];
    tml_global_avgpool_f32_ref(1, 4, 2, x, y);
    TU_ASSERT_CLOSE(y, want, 2, 0.0f);
}

static void test_softmax_ref_hand(void **state)
{
    (void)state;
    /* softmax([1 2 3]) = [e^-2, e^-1, 1] / (1 + e^-1 + e^-2) */
    const float x[3] = {1, 2, 3}, want[3] = {0.0900305732f, 0.244728471f, 0.665240956f};
    float y[3];
    tml_softmax_f32_ref(1, 3, x, y);
    TU_ASSERT_CLOSE(y, want, 3, 1e-6f);
    /* large logits do not overflow: softmax([1000 1001]) = [1/(1+e), e/(1+e)] */
    const float xl[4] = {1000, 1001, -1000, -1000}, wantl[4] = {0.268941421f, 0.731058579f, 0.5f, 0.5f};
    float yl[4];
    tml_softmax_f32_ref(2, 2, xl, yl);
    TU_ASSERT_CLOSE(yl, wantl, 4, 1e-6f);
    tml_softmax_f32(2, 2, xl, yl);
    TU_ASSERT_CLOSE(yl, wantl, 4, 1e-6f);
}

static void test_batchnorm_ref_hand(void **state)
{
    (void)state;
    /* c0: (1 - 0) / sqrt(3 + 1) * 2 + 0.5 = 1.5;  c1: (2 - 1) / sqrt(0 + 1) * 1 - 1 = 0 */
    const float x[4] = {1, 2, 3, 5}, gamma[2] = {2, 1}, beta[2] = {0.5f, -1}, mean[2] = {0, 1},
                var[2] = {3, 0};
    const float want[4] = {1.5f, 0.0f, 3.5f, 3.0f};
    float y[4];
    tml_batchnorm_f32_ref(2, 2, x, gamma, beta, mean, var, 1.0f, y);
    TU_ASSERT_CLOSE(y, want, 4, 1e-6f);
}

static void test_eltwise_ref_hand(void **state)
{
    (void)state;
    const float x[6] = {-1, 0, 0.5f, 3, 6, 7};
    const float want_relu[6] = {0, 0, 0.5f, 3, 6, 7}, want_relu6[6] = {0, 0, 0.5f, 3, 6, 6};
    float y[6];
    tml_relu_f32_ref(6, x, y);
    TU_ASSERT_CLOSE(y, want_relu, 6, 0.0f);
    tml_relu6_f32_ref(6, x, y);
    TU_ASSERT_CLOSE(y, want_relu6, 6, 0.0f);
    /* add with fused activations */
    const float a[3] = {1, -2, 3}, b[3] = {-2, 1, 4};
    const float want_add[3] = {-1, -1, 7}, want_add_relu[3] = {0, 0, 7}, want_add_relu6[3] = {0, 0, 6};
    tml_add_f32_ref(3, a, b, TML_ACT_NONE, y);
    TU_ASSERT_CLOSE(y, want_add, 3, 0.0f);
    tml_add_f32_ref(3, a, b, TML_ACT_RELU, y);
    TU_ASSERT_CLOSE(y, want_add_relu, 3, 0.0f);
    tml_add_f32_ref(3, a, b, TML_ACT_RELU6, y);
    TU_ASSERT_CLOSE(y, want_add_relu6, 3, 0.0f);
}

static void test_dense_ref_hand(void **state)
{
    (void)state;
    /* x = [1 2 3], w = [1 0 -1; .5 .5 .5], b = [1 0]: [1 + 1 - 3, 3] = [-1, 3] */
    const float x[3] = {1, 2, 3}, w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, b[2] = {1, 0};
    const float want[2] = {-1, 3}, want_relu[2] = {0, 3};
    float y[2];
    tml_dense_f32_ref(1, 3, 2, x, w, b, TML_ACT_NONE, y);
    TU_ASSERT_CLOSE(y, want, 2, 0.0f);
    tml_dense_f32_ref(1, 3, 2, x, w, b, TML_ACT_RELU, y);
    TU_ASSERT_CLOSE(y, want_relu, 2, 0.0f);
    tml_dense_f32(1, 3, 2, x, w, b, TML_ACT_RELU, y);
    TU_ASSERT_CLOSE(y, want_relu, 2, 1e-6f);
}

/* ==== window from a node ================================================================ */

static void test_window_from_node(void **state)
{
    (void)state;
    tml_model *m = tml_model_new();
    assert_non_null(m);
    int32_t din[3] = {9, 8, 4}, dw[4] = {6, 3, 3, 2}, db[1] = {6};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 3, din, NULL);
    int w = tml_model_add_tensor(m, "w", TML_DTYPE_F32, TML_TENSOR_PARAM, 4, dw, NULL);
    int b = tml_model_add_tensor(m, "b", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, db, NULL);
    int c = tml_model_add_tensor(m, "c", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int pl = tml_model_add_tensor(m, "p", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int in_c[3] = {x, w, b}, in_p[1] = {c};
    int nc = tml_model_add_node(m, "conv", TML_OP_CONV2D, 3, in_c, c);
    int np = tml_model_add_node(m, "pool", TML_OP_AVGPOOL, 1, in_p, pl);
    assert_true(nc >= 0 && np >= 0);
    tml_node *cn = &m->nodes[nc];
    cn->sh = 2;
    cn->sw = 1;
    cn->dh = 1;
    cn->dw = 2;
    cn->pad[0] = 1;
    cn->pad[1] = 2;
    cn->pad[2] = 0;
    cn->pad[3] = 1;
    cn->groups = 2;
    cn->act = TML_ACT_RELU6;
    tml_node *pn = &m->nodes[np];
    pn->kh = pn->kw = 2;
    pn->sh = pn->sw = 2;
    m->input = x;
    m->output = pl;
    assert_int_equal(tml_model_finalize(m), TML_OK);
    tml_window p;
    tml_window_from_node(m, &m->nodes[tml_model_find_node(m, "conv")], 5, &p);
    assert_int_equal(p.n, 5);
    assert_int_equal(p.h, 9);
    assert_int_equal(p.w, 8);
    assert_int_equal(p.c, 4);
    /* rows: (9 + 1 + 0 - 3) / 2 + 1 = 4; cols: (8 + 2 + 1 - 5) / 1 + 1 = 7 */
    assert_int_equal(p.oh, 4);
    assert_int_equal(p.ow, 7);
    assert_int_equal(p.o, 6);
    assert_int_equal(p.kh, 3);
    assert_int_equal(p.kw, 3);
    assert_int_equal(p.sh, 2);
    assert_int_equal(p.sw, 1);
    assert_int_equal(p.dh, 1);
    assert_int_equal(p.dw, 2);
    assert_int_equal(p.pad_t, 1);
    assert_int_equal(p.pad_l, 2);
    assert_int_equal(p.groups, 2);
    assert_int_equal(p.act, TML_ACT_RELU6);
    tml_window_from_node(m, &m->nodes[tml_model_find_node(m, "pool")], 3, &p);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.h, 4);
    assert_int_equal(p.w, 7);
    assert_int_equal(p.c, 6);
    assert_int_equal(p.o, 6);
    assert_int_equal(p.oh, 2);
    assert_int_equal(p.ow, 3);
    assert_int_equal(p.groups, 1);
    assert_int_equal(p.kh, 2);
    assert_int_equal(p.sh, 2);
    tml_model_free(m);
}

/* ==== GEMM: fast against reference ========================================================= */

/* One product on random data: every instruction set this CPU has against the
 * reference, with leading dimensions cols + pad. Returns nothing; asserts. */
static void gemm_case(tu_rng *r, int ta, int tb, int M, int N, int K, int pad, float alpha, float beta)
{
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    float *A = frand(r, (size_t)ar * lda), *B = frand(r, (size_t)br * ldb), *C0 = frand(r, (size_t)M * ldc);
    float *want = falloc((size_t)M * ldc), *got = falloc((size_t)M * ldc);
    memcpy(want, C0, sizeof(float) * (size_t)M * ldc);
    tml_sgemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, want, ldc);
    const float tol = DOT_TOL_PER_TERM * (float)(K + 1) * (fabsf(alpha) + fabsf(beta) + 1.0f);
    for (int isa = 0; isa <= (int)tml_cpu_isa(); isa++) {
        memcpy(got, C0, sizeof(float) * (size_t)M * ldc);
        tml_sgemm_ex((tml_isa)isa, 0, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, got, ldc);
        char what[160];
        snprintf(what, sizeof(what), "sgemm %s ta=%d tb=%d M=%d N=%d K=%d pad=%d alpha=%g beta=%g",
                 tml_isa_name((tml_isa)isa), ta, tb, M, N, K, pad, alpha, beta);
        /* the padding columns of C (j >= N) must be untouched: compare whole rows */
        assert_true(tu_close_f32(what, got, want, (size_t)M * ldc, tol));
    }
    free(A);
    free(B);
    free(C0);
    free(want);
    free(got);
}

static void test_gemm_odd_sizes(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 1);
    const int sizes[5] = {1, 3, 7, 33, 127};
    int n = 0;
    for (int t = 0; t < 4; t++)
        for (int im = 0; im < 5; im++)
            for (int in = 0; in < 5; in++)
                for (int ik = 0; ik < 5; ik++, n++)
                    gemm_case(&r, t & 1, t >> 1, sizes[im], sizes[in], sizes[ik], (n % 3) * 3, 1.0f, 0.0f);
}

static void test_gemm_alpha_beta_strides(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 2);
    for (int t = 0; t < 4; t++) {
        gemm_case(&r, t & 1, t >> 1, 37, 45, 29, 5, 0.5f, 1.0f);
        gemm_case(&r, t & 1, t >> 1, 13, 70, 300, 1, -2.0f, 0.25f);
        gemm_case(&r, t & 1, t >> 1, 100, 9, 17, 0, 1.0f, -1.0f);
        gemm_case(&r, t & 1, t >> 1, 5, 5, 0, 2, 1.0f, 0.5f); /* K = 0: C = beta C */
        gemm_case(&r, t & 1, t >> 1, 6, 4, 3, 2, 0.0f, 2.0f); /* alpha = 0 */
    }
}

/* Shapes that cross every blocking boundary (several K blocks, several column
 * blocks, row tiles over threads, B read in place and packed) and the K split. */
static void test_gemm_large(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 3);
    for (int t = 0; t < 4; t++) {
        gemm_case(&r, t & 1, t >> 1, 301, 411, 600, 3, 1.0f, 0.0f);
        gemm_case(&r, t & 1, t >> 1, 64, 500, 290, 0, 1.0f, 1.0f);
        gemm_case(&r, t & 1, t >> 1, 20, 25, 9001, 1, 1.0f, 0.0f); /* K split */
    }
    gemm_case(&r, 0, 1, 2305, 20, 25, 0, 1.0f, 0.0f);  /* conv1-like */
    gemm_case(&r, 1, 0, 50, 200, 2048, 0, 1.0f, 1.0f); /* dW-like */
}

/* beta = 0 must not read C: C full of NaN gives finite results. */
static void test_gemm_beta0_nan_safe(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 4);
    const int shapes[4][3] = {{7, 33, 5}, {130, 70, 300}, {20, 25, 9001}, {1, 1, 1}};
    for (int s = 0; s < 4; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int t = 0; t < 4; t++) {
            const int ta = t & 1, tb = t >> 1;
            float *A = frand(&r, (size_t)M * K), *B = frand(&r, (size_t)K * N), *C = falloc((size_t)M * N);
            for (int isa = 0; isa <= (int)tml_cpu_isa(); isa++) {
                for (int i = 0; i < M * N; i++) C[i] = NAN;
                tml_sgemm_ex((tml_isa)isa, 0, ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C,
                             N);
                for (int i = 0; i < M * N; i++)
                    if (!isfinite(C[i]))
                        fail_msg("NaN at %d (isa %d, M=%d N=%d K=%d ta=%d tb=%d)", i, isa, M, N, K, ta, tb);
            }
            /* the reference too */
            for (int i = 0; i < M * N; i++) C[i] = NAN;
            tml_sgemm_ref(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
            for (int i = 0; i < M * N; i++) assert_true(isfinite(C[i]));
            free(A);
            free(B);
            free(C);
        }
    }
}

/* The fused epilogue equals GEMM followed by tml_ops_bias_act_f32, for every
 * instruction set, with and without the K split, including NaN handling of
 * the activations (relu(NaN) = 0, relu6(NaN) = NaN, as tml_act_apply_f32). */
static void test_gemm_bias_act_epilogue(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 13);
    const int shapes[5][5] = {
        {0, 1, 37, 45, 29}, {1, 0, 13, 70, 300}, {0, 0, 5, 33, 7}, {1, 1, 20, 25, 9001}, {0, 1, 3, 3, 0}};
    for (int s = 0; s < 5; s++) {
        const int ta = shapes[s][0], tb = shapes[s][1], M = shapes[s][2], N = shapes[s][3], K = shapes[s][4];
        float *A = frand(&r, (size_t)M * K + 1), *B = frand(&r, (size_t)K * N + 1),
              *bias = frand(&r, (size_t)N);
        float *C0 = frand(&r, (size_t)M * N), *want = falloc((size_t)M * N), *got = falloc((size_t)M * N);
        bias[0] = NAN; /* column 0 is NaN before the activation */
        for (int isa = 0; isa <= (int)tml_cpu_isa(); isa++)
            for (int act = 0; act < 3; act++)
                for (int beta_i = 0; beta_i < 2; beta_i++) {
                    const float beta = beta_i ? 0.5f : 0.0f;
                    memcpy(want, C0, sizeof(float) * (size_t)M * N);
                    tml_sgemm_ex((tml_isa)isa, 0, ta, tb, M, N, K, 1.5f, A, ta ? M : K, B, tb ? K : N, beta,
                                 want, N);
                    tml_ops_bias_act_f32(M, N, N, bias, (tml_act)act, want);
                    memcpy(got, C0, sizeof(float) * (size_t)M * N);
                    tml_sgemm_bias_act_ex((tml_isa)isa, 0, ta, tb, M, N, K, 1.5f, A, ta ? M : K, B,
                                          tb ? K : N, beta, got, N, bias, (tml_act)act);
                    for (int i = 0; i < M; i++) {
                        const float w0 = want[(size_t)i * N], g0 = got[(size_t)i * N];
                        assert_true(isnan(w0) == isnan(g0));
                        if (isnan(w0)) got[(size_t)i * N] = want[(size_t)i * N] = 0.0f;
                        assert_true(act != TML_ACT_RELU || w0 == 0.0f);
                    }
                    char what[96];
                    snprintf(what, sizeof(what), "bias_act isa=%d act=%d M=%d N=%d K=%d", isa, act, M, N, K);
                    assert_true(tu_close_f32(what, got, want, (size_t)M * N, 0.0f));
                }
        free(A);
        free(B);
        free(bias);
        free(C0);
        free(want);
        free(got);
    }
}

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Bitwise identical results run to run and for 1 vs 2 (vs 3) threads. */
static void test_gemm_deterministic_threads(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 5);
    const int saved = max_threads();
    const int shapes[5][5] = {{0, 1, 4096, 50, 500},
                              {1, 0, 50, 500, 2048},
                              {0, 0, 64, 800, 500},
                              {1, 0, 20, 25, 36864},
                              {1, 1, 333, 257, 129}};
    for (int s = 0; s < 5; s++) {
        const int ta = shapes[s][0], tb = shapes[s][1], M = shapes[s][2], N = shapes[s][3], K = shapes[s][4];
        float *A = frand(&r, (size_t)M * K), *B = frand(&r, (size_t)K * N);
        float *c1 = falloc((size_t)M * N), *c2 = falloc((size_t)M * N), *c3 = falloc((size_t)M * N);
        set_threads(1);
        tml_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, c1, N);
        set_threads(2);
        tml_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, c2, N);
        tml_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, c3, N);
        assert_memory_equal(c1, c2, sizeof(float) * (size_t)M * N);
        assert_memory_equal(c2, c3, sizeof(float) * (size_t)M * N);
        set_threads(3);
        tml_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, c3, N);
        assert_memory_equal(c1, c3, sizeof(float) * (size_t)M * N);
        /* and close to the reference */
        tml_sgemm_ref(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, c3, N);
        TU_ASSERT_CLOSE(c1, c3, (size_t)M * N, DOT_TOL_PER_TERM * (float)K);
        free(A);
        free(B);
        free(c1);
        free(c2);
        free(c3);
    }
    set_threads(saved);
}

/* B packed once (tml_sgemm_pack_b / tml_sgemm_packed_ex), every instruction
 * set: against the reference plus bias and residual, bitwise equal (K <= 512)
 * or close (longer K: other K blocks) to the unpacked row-stable GEMM
 * followed by the same residual add and activation, and every row bitwise
 * independent of the rows computed with it (one row at a time takes the
 * one-row kernels) and of the thread count. */
static void test_gemm_packed(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 21);
    /* M, N, K: every row count of a tile, 16- and 32-column panels (N = 16, 48,
     * 300, 100), several K blocks, one-row products over many panels */
    const int shapes[][3] = {{1, 1, 1},    {3, 16, 9},    {13, 48, 144},  {25, 33, 7},   {1, 300, 784},
                             {2, 100, 300}, {12, 64, 576}, {37, 10, 100}, {1, 500, 800}, {49, 64, 1153},
                             {7, 257, 65}, {1, 129, 33},  {196, 64, 64}};
    const int saved = max_threads();
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        for (int ta = 0; ta < 2; ta++) {
            const int lda = (ta ? M : K) + 3, ldc = N + 2, ldr = N + 5;
            float *A = frand(&r, (size_t)(ta ? K : M) * lda), *W = frand(&r, (size_t)N * K);
            float *bias = frand(&r, (size_t)N), *res = frand(&r, (size_t)M * ldr);
            float *want = falloc((size_t)M * ldc), *got = falloc((size_t)M * ldc), *row = falloc((size_t)ldc);
            for (int isa = 0; isa <= (int)tml_cpu_isa(); isa++) {
                float *pk = falloc(tml_sgemm_packed_b_floats((tml_isa)isa, N, K));
                tml_sgemm_pack_b((tml_isa)isa, 1, N, K, W, K, pk);
                for (int v = 0; v < 4; v++) {
                    const tml_act act = (tml_act)(v % 3);
                    const float *bv = v & 1 ? bias : NULL, *rv = v >= 2 ? res : NULL;
                    /* unpacked, row-stable, then residual and activation in the same order */
                    tml_sgemm_bias_act_ex((tml_isa)isa, TML_GEMM_ROW_STABLE, ta, 1, M, N, K, 1.0f, A, lda, W, K,
                                          0.0f, want, ldc, bv, rv ? TML_ACT_NONE : act);
                    for (int i = 0; i < M && rv; i++)
                        for (int j = 0; j < N; j++) {
                            float *c = &want[(size_t)i * ldc + j];
                            *c = tml_act_apply_f32(act, *c + rv[(size_t)i * ldr + j]);
                        }
                    for (size_t i = 0; i < (size_t)M * ldc; i++) got[i] = NAN;
                    set_threads(1 + (v & 1));
                    tml_sgemm_packed_ex((tml_isa)isa, 0, ta, M, N, K, A, lda, pk, got, ldc, bv, rv, ldr, act);
                    char what[128];
                    snprintf(what, sizeof what, "packed %s M=%d N=%d K=%d ta=%d v=%d", tml_isa_name((tml_isa)isa),
                             M, N, K, ta, v);
                    /* the same K blocks up to 512: bitwise; longer ones are one block packed */
                    const float tol = K <= 512 ? 0.0f : DOT_TOL_PER_TERM * (float)(K + 2);
                    for (int i = 0; i < M; i++)
                        assert_true(tu_close_f32(what, got + (size_t)i * ldc, want + (size_t)i * ldc, (size_t)N, tol));
                    /* each row alone */
                    for (int i = 0; i < M; i += 1 + M / 5) {
                        const float *ai = ta ? A + i : A + (size_t)i * lda;
                        tml_sgemm_packed_ex((tml_isa)isa, 0, ta, 1, N, K, ai, lda, pk, row, ldc, bv,
                                            rv ? rv + (size_t)i * ldr : NULL, ldr, act);
                        assert_true(tu_close_f32(what, row, got + (size_t)i * ldc, (size_t)N, 0.0f));
                    }
                }
                /* against the reference (plus bias and residual, ReLU) */
                tml_sgemm_ref(ta, 1, M, N, K, 1.0f, A, lda, W, K, 0.0f, want, ldc);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        float *c = &want[(size_t)i * ldc + j];
                        *c = tml_act_apply_f32(TML_ACT_RELU, *c + bias[j] + res[(size_t)i * ldr + j]);
                    }
                tml_sgemm_packed_ex((tml_isa)isa, 0, ta, M, N, K, A, lda, pk, got, ldc, bias, res, ldr, TML_ACT_RELU);
                for (int i = 0; i < M; i++)
                    assert_true(tu_close_f32("packed vs ref", got + (size_t)i * ldc, want + (size_t)i * ldc, (size_t)N,
                                             DOT_TOL_PER_TERM * (float)(K + 2)));
                free(pk);
            }
            free(A);
            free(W);
            free(bias);
            free(res);
            free(want);
            free(got);
            free(row);
        }
    }
    set_threads(saved);
}

/* ==== conv / depthwise / dense: fast against reference ===================================== */

typedef struct conv_shape {
    int n, h, w, c, o, k, s, d, pad, groups;
    tml_act act;
} conv_shape;

static const conv_shape CONV_SHAPES[] = {
    /* 3x3 stride 1, >= 16 channels: the packed kernel runs Winograd F(4x4, 3x3):
     * partial tiles at every edge, channel counts off the 16-lane blocks */
    {1, 1, 1, 16, 16, 3, 1, 1, 1, 1, TML_ACT_NONE},   /* one pixel */
    {3, 5, 7, 17, 19, 3, 1, 1, 1, 1, TML_ACT_RELU},   /* odd sizes */
    {2, 9, 13, 33, 16, 3, 1, 1, 0, 1, TML_ACT_RELU6}, /* valid padding */
    {1, 28, 28, 16, 16, 3, 1, 1, 1, 1, TML_ACT_RELU}, /* ResNet-8 res1 */
    {2, 7, 7, 64, 64, 3, 1, 1, 1, 1, TML_ACT_NONE},   /* ResNet-8 res3 */
    {1, 6, 5, 16, 48, 3, 1, 1, 2, 1, TML_ACT_NONE},   /* wide padding */
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, TML_ACT_NONE},     /* everything 1 */
    {1, 7, 5, 3, 7, 3, 1, 1, 1, 1, TML_ACT_RELU},     /* odd H/W/C/O, pad */
    {5, 9, 11, 3, 5, 3, 2, 1, 1, 1, TML_ACT_NONE},    /* batch 5, stride 2 */
    {5, 13, 13, 7, 33, 5, 3, 1, 2, 1, TML_ACT_RELU6}, /* 5x5, stride 3 */
    {1, 12, 10, 4, 6, 3, 1, 2, 2, 2, TML_ACT_NONE},   /* dilation 2, groups 2 */
    {5, 7, 7, 6, 9, 3, 2, 1, 1, 3, TML_ACT_RELU},     /* groups 3, stride 2 */
    {5, 8, 9, 33, 17, 1, 1, 1, 0, 1, TML_ACT_NONE},   /* pointwise: no im2col */
    {1, 6, 6, 8, 12, 1, 1, 1, 0, 4, TML_ACT_RELU},    /* grouped pointwise */
    {5, 9, 7, 5, 3, 1, 2, 1, 0, 1, TML_ACT_NONE},     /* 1x1 stride 2: im2col */
    {3, 28, 28, 1, 20, 5, 1, 1, 0, 1, TML_ACT_RELU},  /* LeNet conv1 */
    {5, 12, 12, 20, 50, 5, 1, 1, 0, 1, TML_ACT_NONE}, /* LeNet conv2 */
    {5, 22, 21, 64, 31, 3, 1, 1, 1, 1, TML_ACT_NONE}, /* several im2col chunks, threads */
    {2, 5, 5, 127, 3, 3, 1, 3, 3, 1, TML_ACT_NONE},   /* dilation 3, wide pad */
};

static void test_conv_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 6);
    for (size_t i = 0; i < sizeof(CONV_SHAPES) / sizeof(CONV_SHAPES[0]); i++) {
        const conv_shape *s = &CONV_SHAPES[i];
        tml_window p =
            win(s->n, s->h, s->w, s->c, s->o, s->k, s->k, s->s, s->d, s->pad, s->groups, 1, s->act);
        assert_true(p.oh >= 1 && p.ow >= 1);
        const int kdim = s->k * s->k * (s->c / s->groups);
        float *x = frand(&r, in_numel(&p)), *w = frand(&r, (size_t)s->o * kdim), *b = frand(&r, (size_t)s->o);
        float *want = falloc(out_numel(&p)), *got = falloc(out_numel(&p));
        const size_t scratch_bytes = tml_conv2d_f32_scratch_size(&p);
        assert_true(scratch_bytes <= ((size_t)2 << 20) || kdim > 8192);
        void *scratch = scratch_bytes ? malloc(scratch_bytes) : NULL;
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            tml_conv2d_f32_ref(&p, x, w, with_bias ? b : NULL, want);
            for (size_t j = 0; j < out_numel(&p); j++) got[j] = NAN;
            tml_conv2d_f32(&p, x, w, with_bias ? b : NULL, got, scratch);
            char what[96];
            snprintf(what, sizeof(what), "conv shape %zu bias %d", i, with_bias);
            assert_true(tu_close_f32(what, got, want, out_numel(&p), DOT_TOL_PER_TERM * (float)(kdim + 1)));
        }
        free(scratch);
        free(x);
        free(w);
        free(b);
        free(want);
        free(got);
    }
}

/* Weights packed once, every instruction set: without a residual bitwise
 * equal to tml_conv2d_f32 (on the CPU's isa; GEMM layers of up to 512 taps,
 * where both cut K alike), with one equal to the reference plus the residual
 * before the activation. */
static void test_conv_packed_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 22);
    for (size_t i = 0; i < sizeof(CONV_SHAPES) / sizeof(CONV_SHAPES[0]); i++) {
        const conv_shape *s = &CONV_SHAPES[i];
        tml_window p =
            win(s->n, s->h, s->w, s->c, s->o, s->k, s->k, s->s, s->d, s->pad, s->groups, 1, s->act);
        const int kdim = s->k * s->k * (s->c / s->groups);
        float *x = frand(&r, in_numel(&p)), *w = frand(&r, (size_t)s->o * kdim), *b = frand(&r, (size_t)s->o);
        float *res = frand(&r, out_numel(&p));
        float *want = falloc(out_numel(&p)), *got = falloc(out_numel(&p));
        const size_t scratch_bytes = tml_conv2d_f32_scratch_size(&p);
        void *scratch = scratch_bytes ? malloc(scratch_bytes) : NULL;
        for (int isa = 0; isa <= (int)tml_cpu_isa(); isa++) {
            void *packed = aligned_alloc(64, (tml_conv2d_f32_packed_size_ex(&p, (tml_isa)isa) + 63) / 64 * 64);
            assert_non_null(packed);
            tml_conv2d_f32_pack_ex(&p, w, packed, (tml_isa)isa);
            char what[96];
            if (isa == (int)tml_cpu_isa() && !tml_winograd_f32_applies(&p) && kdim <= 512) {
                tml_conv2d_f32(&p, x, w, b, want, scratch);
                tml_conv2d_f32_packed(&p, packed, x, b, NULL, got, scratch);
                snprintf(what, sizeof(what), "conv packed shape %zu", i);
                assert_true(tu_close_f32(what, got, want, out_numel(&p), 0.0f));
            }
            tml_window q = p;
            q.act = TML_ACT_NONE;
            tml_conv2d_f32_ref(&q, x, w, b, want);
            for (size_t j = 0; j < out_numel(&p); j++) want[j] = tml_act_apply_f32(p.act, want[j] + res[j]);
            tml_conv2d_f32_packed(&p, packed, x, b, res, got, scratch);
            snprintf(what, sizeof(what), "conv packed+res shape %zu %s", i, tml_isa_name((tml_isa)isa));
            assert_true(tu_close_f32(what, got, want, out_numel(&p), DOT_TOL_PER_TERM * (float)(kdim + 2)));
            free(packed);
        }
        free(scratch);
        free(x);
        free(w);
        free(b);
        free(res);
        free(want);
        free(got);
    }
}

static void test_conv_scratch_bound(void **state)
{
    (void)state;
    /* the scratch does not grow with the batch */
    tml_window p = win(1, 28, 28, 16, 32, 3, 3, 1, 1, 1, 1, 1, TML_ACT_NONE);
    tml_window q = p;
    q.n = 4096;
    assert_true(tml_conv2d_f32_scratch_size(&q) <= ((size_t)2 << 20));
    assert_true(tml_conv2d_f32_scratch_size(&p) <= tml_conv2d_f32_scratch_size(&q));
}

static void test_conv_deterministic_threads(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 7);
    const int saved = max_threads();
    const conv_shape shapes[2] = {{7, 22, 21, 64, 31, 3, 1, 1, 1, 1, TML_ACT_NONE},
                                  {9, 12, 12, 20, 50, 5, 1, 1, 0, 1, TML_ACT_RELU}};
    for (int i = 0; i < 2; i++) {
        const conv_shape *s = &shapes[i];
        tml_window p =
            win(s->n, s->h, s->w, s->c, s->o, s->k, s->k, s->s, s->d, s->pad, s->groups, 1, s->act);
        const int kdim = s->k * s->k * (s->c / s->groups);
        float *x = frand(&r, in_numel(&p)), *w = frand(&r, (size_t)s->o * kdim), *b = frand(&r, (size_t)s->o);
        float *y1 = falloc(out_numel(&p)), *y2 = falloc(out_numel(&p));
        void *scratch = malloc(tml_conv2d_f32_scratch_size(&p));
        set_threads(1);
        tml_conv2d_f32(&p, x, w, b, y1, scratch);
        for (int t = 2; t <= 3; t++) {
            set_threads(t);
            tml_conv2d_f32(&p, x, w, b, y2, scratch);
            assert_memory_equal(y1, y2, sizeof(float) * out_numel(&p));
        }
        tml_conv2d_f32(&p, x, w, b, y2, scratch);
        assert_memory_equal(y1, y2, sizeof(float) * out_numel(&p));
        /* packed weights with a residual (shape 0 runs Winograd: threads split its tiles) */
        void *packed = aligned_alloc(64, (tml_conv2d_f32_packed_size(&p) + 63) / 64 * 64);
        assert_non_null(packed);
        tml_conv2d_f32_pack(&p, w, packed);
        set_threads(1);
        tml_conv2d_f32_packed(&p, packed, x, b, y1, y2, scratch);
        for (int t = 2; t <= 3; t++) {
            float *y3 = falloc(out_numel(&p));
            set_threads(t);
            tml_conv2d_f32_packed(&p, packed, x, b, y1, y3, scratch);
            assert_memory_equal(y2, y3, sizeof(float) * out_numel(&p));
            free(y3);
        }
        free(packed);
        free(scratch);
        free(x);
        free(w);
        free(b);
        free(y1);
        free(y2);
    }
    set_threads(saved);
}

/* Depthwise: bitwise the same for 1, 2 and 3 threads (rows split over threads). */
static void test_dwconv_deterministic_threads(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 23);
    const int saved = max_threads();
    const tml_window p = win(8, 28, 27, 64, 64, 3, 3, 1, 1, 1, 1, 1, TML_ACT_RELU6);
    float *x = frand(&r, in_numel(&p)), *w = frand(&r, 9 * (size_t)p.o), *b = frand(&r, (size_t)p.o);
    float *y1 = falloc(out_numel(&p)), *y2 = falloc(out_numel(&p));
    set_threads(1);
    tml_dwconv2d_f32(&p, x, w, b, y1);
    for (int t = 2; t <= 3; t++) {
        set_threads(t);
        tml_dwconv2d_f32(&p, x, w, b, y2);
        assert_memory_equal(y1, y2, sizeof(float) * out_numel(&p));
    }
    set_threads(saved);
    free(x);
    free(w);
    free(b);
    free(y1);
    free(y2);
}

static void test_dwconv_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 8);
    /* n, h, w, c, m, k, s, d, pad, act */
    const int shapes[][10] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 0, TML_ACT_NONE},    {1, 7, 5, 3, 1, 3, 1, 1, 1, TML_ACT_RELU},
        {5, 9, 11, 33, 1, 3, 2, 1, 1, TML_ACT_RELU6}, {5, 13, 13, 7, 2, 5, 3, 1, 2, TML_ACT_NONE},
        {1, 12, 10, 5, 3, 3, 1, 2, 2, TML_ACT_RELU},  {3, 16, 16, 127, 1, 3, 1, 1, 1, TML_ACT_NONE},
        {2, 6, 6, 4, 2, 1, 1, 1, 0, TML_ACT_NONE},    {2, 15, 17, 20, 1, 3, 2, 2, 2, TML_ACT_RELU6},
        {1, 9, 23, 48, 1, 5, 1, 1, 2, TML_ACT_RELU},
        /* strips: rows of exactly 4, of 5 (overlapping strips), stride 2 with
         * borders, valid padding, 5x5 stride 2, 8-wide rows */
        {2, 6, 4, 16, 1, 3, 1, 1, 1, TML_ACT_RELU6},  {1, 5, 5, 17, 1, 3, 1, 1, 1, TML_ACT_NONE},
        {3, 14, 14, 32, 1, 3, 2, 1, 1, TML_ACT_RELU}, {1, 7, 9, 64, 1, 3, 1, 1, 0, TML_ACT_NONE},
        {1, 11, 13, 24, 1, 5, 2, 1, 2, TML_ACT_RELU}, {1, 8, 8, 16, 1, 3, 1, 1, 1, TML_ACT_NONE},
        {2, 4, 4, 128, 1, 3, 1, 1, 1, TML_ACT_RELU6},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        const int *s = shapes[i];
        tml_window p =
            win(s[0], s[1], s[2], s[3], s[3] * s[4], s[5], s[5], s[6], s[7], s[8], 1, s[4], (tml_act)s[9]);
        float *x = frand(&r, in_numel(&p)), *w = frand(&r, (size_t)s[5] * s[5] * p.o),
              *b = frand(&r, (size_t)p.o);
        float *want = falloc(out_numel(&p)), *got = falloc(out_numel(&p));
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            tml_dwconv2d_f32_ref(&p, x, w, with_bias ? b : NULL, want);
            for (int isa = 0; isa <= (int)tml_cpu_isa(); isa++) {
                for (size_t j = 0; j < out_numel(&p); j++) got[j] = NAN;
                tml_dwconv2d_f32_ex(&p, x, w, with_bias ? b : NULL, got, (tml_isa)isa);
                char what[96];
                snprintf(what, sizeof(what), "dwconv shape %zu bias %d %s", i, with_bias, tml_isa_name((tml_isa)isa));
                assert_true(
                    tu_close_f32(what, got, want, out_numel(&p), DOT_TOL_PER_TERM * (float)(s[5] * s[5] + 1)));
            }
        }
        free(x);
        free(w);
        free(b);
        free(want);
        free(got);
    }
}

static void test_dense_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 9);
    const int ns[3] = {1, 3, 64}, ins[4] = {1, 7, 127, 800}, outs[3] = {1, 10, 33};
    for (int a = 0; a < 3; a++)
        for (int bi = 0; bi < 4; bi++)
            for (int c = 0; c < 3; c++) {
                const int n = ns[a], in = ins[bi], out = outs[c];
                const tml_act act = (tml_act)((a + bi + c) % 3);
                float *x = frand(&r, (size_t)n * in), *w = frand(&r, (size_t)out * in),
                      *b = frand(&r, (size_t)out);
                float *want = falloc((size_t)n * out), *got = falloc((size_t)n * out);
                tml_dense_f32_ref(n, in, out, x, w, (c & 1) ? NULL : b, act, want);
                tml_dense_f32(n, in, out, x, w, (c & 1) ? NULL : b, act, got);
                char what[96];
                snprintf(what, sizeof(what), "dense n=%d in=%d out=%d act=%d", n, in, out, (int)act);
                assert_true(
                    tu_close_f32(what, got, want, (size_t)n * out, DOT_TOL_PER_TERM * (float)(in + 1)));
                /* packed once, every isa; each row equal to the same row run alone */
                for (int isa = 0; isa <= (int)tml_cpu_isa(); isa++) {
                    void *pk = aligned_alloc(64, (tml_dense_f32_packed_size_ex(in, out, (tml_isa)isa) + 63) / 64 * 64);
                    assert_non_null(pk);
                    tml_dense_f32_pack_ex(in, out, w, pk, (tml_isa)isa);
                    tml_dense_f32_packed_ex(n, in, out, pk, (tml_isa)isa, x, (c & 1) ? NULL : b, act, got);
                    snprintf(what, sizeof(what), "dense packed %s n=%d in=%d out=%d", tml_isa_name((tml_isa)isa), n,
                             in, out);
                    assert_true(
                        tu_close_f32(what, got, want, (size_t)n * out, DOT_TOL_PER_TERM * (float)(in + 1)));
                    float *one = falloc((size_t)out);
                    tml_dense_f32_packed_ex(1, in, out, pk, (tml_isa)isa, x + (size_t)(n - 1) * in, (c & 1) ? NULL : b,
                                            act, one);
                    assert_true(tu_close_f32(what, one, got + (size_t)(n - 1) * out, (size_t)out, 0.0f));
                    free(one);
                    free(pk);
                }
                free(x);
                free(w);
                free(b);
                free(want);
                free(got);
            }
}

/* ==== pools / elementwise / softmax / batchnorm: fast equals reference ===================== */

static void test_pools_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 10);
    /* n, h, w, c, k, s, d, pad */
    const int shapes[][8] = {{1, 1, 1, 1, 1, 1, 1, 0},   {1, 7, 5, 3, 2, 2, 1, 1},
                             {5, 9, 11, 33, 3, 2, 1, 1}, {5, 13, 13, 7, 5, 3, 1, 2},
                             {2, 12, 10, 5, 3, 1, 2, 2}, {64, 24, 24, 20, 2, 2, 1, 0},
                             /* AVX2 blocks of 8: 12 channels (one block and an overlapping tail), 50 */
                             {2, 8, 8, 12, 2, 2, 1, 0},  {1, 9, 9, 50, 3, 2, 1, 1}};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        const int *s = shapes[i];
        tml_window p = win(s[0], s[1], s[2], s[3], s[3], s[4], s[4], s[5], s[6], s[7], 1, 1, TML_ACT_NONE);
        float *x = frand(&r, in_numel(&p)), *want = falloc(out_numel(&p)), *got = falloc(out_numel(&p));
        tml_maxpool_f32_ref(&p, x, want);
        tml_maxpool_f32(&p, x, got);
        TU_ASSERT_CLOSE(got, want, out_numel(&p), 0.0f);
        tml_avgpool_f32_ref(&p, x, want);
        tml_avgpool_f32(&p, x, got);
        TU_ASSERT_CLOSE(got, want, out_numel(&p), 0.0f);
        tml_global_avgpool_f32_ref(p.n, p.h * p.w, p.c, x, want);
        tml_global_avgpool_f32(p.n, p.h * p.w, p.c, x, got);
        TU_ASSERT_CLOSE(got, want, (size_t)p.n * p.c, 0.0f);
        free(x);
        free(want);
        free(got);
    }
}

static void test_eltwise_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    const int64_t counts[5] = {1, 7, 33, 1001, 300007};
    for (int i = 0; i < 5; i++) {
        const int64_t n = counts[i];
        float *a = falloc((size_t)n), *b = falloc((size_t)n), *want = falloc((size_t)n),
              *got = falloc((size_t)n);
        tu_fill_uniform(&r, a, (size_t)n, -8.0f, 8.0f);
        tu_fill_uniform(&r, b, (size_t)n, -8.0f, 8.0f);
        tml_relu_f32_ref(n, a, want);
        tml_relu_f32(n, a, got);
        TU_ASSERT_CLOSE(got, want, (size_t)n, 0.0f);
        tml_relu6_f32_ref(n, a, want);
        tml_relu6_f32(n, a, got);
        TU_ASSERT_CLOSE(got, want, (size_t)n, 0.0f);
        for (int act = 0; act < 3; act++) {
            tml_add_f32_ref(n, a, b, (tml_act)act, want);
            tml_add_f32(n, a, b, (tml_act)act, got);
            TU_ASSERT_CLOSE(got, want, (size_t)n, 0.0f);
        }
        /* in place */
        memcpy(got, a, sizeof(float) * (size_t)n);
        tml_add_f32(n, got, b, TML_ACT_RELU, got);
        tml_add_f32_ref(n, a, b, TML_ACT_RELU, want);
        TU_ASSERT_CLOSE(got, want, (size_t)n, 0.0f);
        free(a);
        free(b);
        free(want);
        free(got);
    }
}

static void test_softmax_batchnorm_fast_vs_ref(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 12);
    const int rows = 333, c = 37;
    float *x = falloc((size_t)rows * c), *want = falloc((size_t)rows * c), *got = falloc((size_t)rows * c);
    tu_fill_uniform(&r, x, (size_t)rows * c, -30.0f, 30.0f);
    tml_softmax_f32_ref(rows, c, x, want);
    tml_softmax_f32(rows, c, x, got);
    TU_ASSERT_CLOSE(got, want, (size_t)rows * c, 0.0f);
    for (int i = 0; i < rows; i++) {
        double s = 0.0;
        for (int j = 0; j < c; j++) s += want[i * c + j];
        assert_true(fabs(s - 1.0) < 1e-5);
    }
    float *g = frand(&r, c), *be = frand(&r, c), *mu = frand(&r, c), *var = falloc(c);
    tu_fill_uniform(&r, var, c, 0.0f, 2.0f);
    tml_batchnorm_f32_ref(rows, c, x, g, be, mu, var, 1e-5f, want);
    tml_batchnorm_f32(rows, c, x, g, be, mu, var, 1e-5f, got);
    TU_ASSERT_CLOSE(got, want, (size_t)rows * c, 0.0f);
    free(x);
    free(want);
    free(got);
    free(g);
    free(be);
    free(mu);
    free(var);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_ref_hand),
        cmocka_unit_test(test_conv_ref_hand_valid),
        cmocka_unit_test(test_conv_ref_hand_stride2),
        cmocka_unit_test(test_conv_ref_hand_pad),
        cmocka_unit_test(test_conv_ref_hand_dilation),
        cmocka_unit_test(test_conv_ref_hand_groups),
        cmocka_unit_test(test_dwconv_ref_hand_mult2),
        cmocka_unit_test(test_avgpool_ref_hand_pad),
        cmocka_unit_test(test_maxpool_ref_hand),
        cmocka_unit_test(test_global_avgpool_ref_hand),
        cmocka_unit_test(test_softmax_ref_hand),
        cmocka_unit_test(test_batchnorm_ref_hand),
        cmocka_unit_test(test_eltwise_ref_hand),
        cmocka_unit_test(test_dense_ref_hand),
        cmocka_unit_test(test_window_from_node),
        cmocka_unit_test(test_gemm_odd_sizes),
        cmocka_unit_test(test_gemm_alpha_beta_strides),
        cmocka_unit_test(test_gemm_large),
        cmocka_unit_test(test_gemm_beta0_nan_safe),
        cmocka_unit_test(test_gemm_deterministic_threads),
        cmocka_unit_test(test_gemm_bias_act_epilogue),
        cmocka_unit_test(test_gemm_packed),
        cmocka_unit_test(test_conv_fast_vs_ref),
        cmocka_unit_test(test_conv_packed_vs_ref),
        cmocka_unit_test(test_conv_scratch_bound),
        cmocka_unit_test(test_conv_deterministic_threads),
        cmocka_unit_test(test_dwconv_fast_vs_ref),
        cmocka_unit_test(test_dwconv_deterministic_threads),
        cmocka_unit_test(test_dense_fast_vs_ref),
        cmocka_unit_test(test_pools_fast_vs_ref),
        cmocka_unit_test(test_eltwise_fast_vs_ref),
        cmocka_unit_test(test_softmax_batchnorm_fast_vs_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
