/*
 * test_onnx.c - ONNX import (formats/onnx*.c):
 *   - conformance: ONNX's own node / pytorch-converted / pytorch-operator /
 *     simple test cases (Debian's libonnx-testdata) through import and the
 *     float engine, outputs compared with CONF_TOL; cases out of scope must
 *     fail to import with the expected clear message
 *   - fixtures exported from PyTorch (scripts/make-onnx-fixtures.py): tinyml's
 *     outputs vs torch's within FIXTURE_TOL, in batches and one by one, and
 *     after a .tmf round trip
 *   - hand-built protobufs: folding (MatMul+Add, ReLU/Clip fusion), the wire
 *     format (packed / unpacked typed data, int64, double, float16), options
 *   - bad input: truncation at every 7th byte, random bytes, byte flips,
 *     wrong wire types, huge declared sizes, cycles, unsupported ops,
 *     external data: each a clear error, never a crash (run under ASan too).
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tinyml/tml_core.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_onnx.h"

#include "../formats/onnx_internal.h"

/* Absolute per-element tolerance for the ONNX conformance cases (their
 * references come from numpy in float32/float64; our kernels accumulate in
 * double or float in another order). */
#define CONF_TOL 1e-4f
/* tinyml vs torch on the exported fixtures (logits of magnitude ~1..10). */
#define FIXTURE_TOL 1e-4f

static const char *testdata_dir(void)
{
    const char *d = getenv("TML_ONNX_TESTDATA");
    return d && *d ? d : "/usr/share/libonnx-testdata/data";
}

static const char *fixture_dir(void)
{
    static char buf[1024];
    const char *src = getenv("TML_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/tests/fixtures/onnx", src && *src ? src : ".");
    return buf;
}

static int is_dir(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

/* ---- layout conversion of test data ------------------------------------------------------ */

/* ONNX-ordered batch data (n samples of an ONNX value with `layout`) into
 * tinyml order. dims: ONNX dims, dims[0] = n. */
static void to_tinyml(tml_onnx_layout layout, int rank, const int64_t *dims, const int64_t *chw,
                      const float *in, float *out)
{
    int64_t n = dims[0], per = 1;
    for (int i = 1; i < rank; i++) per *= dims[i];
    if (layout == TML_ONNX_PLAIN) {
        memcpy(out, in, sizeof(float) * (size_t)(n * per));
        return;
    }
    int64_t C, H, W;
    if (layout == TML_ONNX_NCHW) {
        C = dims[1];
        H = dims[2];
        W = dims[3];
    } else {
        C = chw[0];
        H = chw[1];
        W = chw[2];
    }
    for (int64_t b = 0; b < n; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < H; y++)
                for (int64_t x = 0; x < W; x++)
                    out[b * per + (y * W + x) * C + c] = in[b * per + (c * H + y) * W + x];
}

/* Runs m on n samples with the fast and the reference kernels; both must be
 * within tol of want (tinyml order). */
static int run_and_compare(const char *what, const tml_model *m, const float *x, int n, const float *want,
                           float tol)
{
    int64_t on = tml_tensor_numel(&m->tensors[m->output]);
    float *y = malloc(sizeof(float) * (size_t)(on * n + 1));
    int ok = y != NULL;
    for (int ref = 0; ref < 2 && ok; ref++) {
        tml_engine *e = NULL;
        tml_engine_opts eo = {.use_ref = ref, .keep_all = 0};
        tml_status st = tml_engine_new(m, n, &eo, &e);
        if (!st) st = tml_engine_run(e, x, n, y);
        tml_engine_free(e);
        if (st) {
            printf("  %s: engine error: %s\n", what, tml_last_error());
            ok = 0;
            break;
        }
        char label[256];
        snprintf(label, sizeof label, "%.200s (%s kernels)", what, ref ? "reference" : "fast");
        ok = tu_close_f32(label, y, want, (size_t)(on * n), tol);
    }
    free(y);
    return ok;
}

/* ---- conformance --------------------------------------------------------------------------- */

typedef struct conf_case {
    const char *dir;   /* under data/ */
    const char *error; /* NULL: must pass; else the import fails with a message containing this */
    const char *why;   /* the reason, for the table in docs/onnx.md */
} conf_case;

#define PASS(d)                                                                                              \
    {                                                                                                        \
        d, NULL, NULL                                                                                        \
    }
#define OUT(d, e, w)                                                                                         \
    {                                                                                                        \
        d, e, w                                                                                              \
    }

static const conf_case conf_cases[] = {
    /* ---- convolution */
    PASS("node/test_basic_conv_with_padding"),
    PASS("node/test_basic_conv_without_padding"),
    PASS("node/test_conv_with_autopad_same"),
    PASS("node/test_conv_with_strides_and_asymmetric_padding"),
    PASS("node/test_conv_with_strides_no_padding"),
    PASS("node/test_conv_with_strides_padding"),
    PASS("pytorch-converted/test_Conv2d"),
    PASS("pytorch-converted/test_Conv2d_depthwise"),
    PASS("pytorch-converted/test_Conv2d_depthwise_padded"),
    PASS("pytorch-converted/test_Conv2d_depthwise_strided"),
    PASS("pytorch-converted/test_Conv2d_depthwise_with_multiplier"),
    PASS("pytorch-converted/test_Conv2d_dilated"),
    PASS("pytorch-converted/test_Conv2d_groups"),
    PASS("pytorch-converted/test_Conv2d_groups_thnn"),
    PASS("pytorch-converted/test_Conv2d_no_bias"),
    PASS("pytorch-converted/test_Conv2d_padding"),
    PASS("pytorch-converted/test_Conv2d_strided"),
    PASS("pytorch-operator/test_operator_conv"),
    OUT("pytorch-converted/test_Conv1d", "only 2-D convolution", "1-D convolution"),
    OUT("pytorch-converted/test_Conv1d_dilated", "only 2-D convolution", "1-D convolution"),
    OUT("pytorch-converted/test_Conv1d_groups", "only 2-D convolution", "1-D convolution"),
    OUT("pytorch-converted/test_Conv1d_pad1", "only 2-D convolution", "1-D convolution"),
    OUT("pytorch-converted/test_Conv1d_pad1size1", "only 2-D convolution", "1-D convolution"),
    OUT("pytorch-converted/test_Conv1d_pad2", "only 2-D convolution", "1-D convolution"),
    OUT("pytorch-converted/test_Conv1d_pad2size1", "only 2-D convolution", "1-D convolution"),
    OUT("pytorch-converted/test_Conv1d_stride", "only 2-D convolution", "1-D convolution"),
    OUT("pytorch-converted/test_Conv3d", "rank 5", "3-D convolution"),
    OUT("pytorch-converted/test_Conv3d_dilated", "rank 5", "3-D convolution"),
    OUT("pytorch-converted/test_Conv3d_groups", "rank 5", "3-D convolution"),
    OUT("pytorch-converted/test_Conv3d_no_bias", "rank 5", "3-D convolution"),
    OUT("pytorch-converted/test_Conv3d_stride", "rank 5", "3-D convolution"),
    OUT("pytorch-converted/test_Conv3d_stride_padding", "rank 5", "3-D convolution"),
    OUT("node/test_basic_convinteger", "uint8", "integer convolution (uint8 input)"),
    OUT("pytorch-converted/test_ConvTranspose2d", "op type not supported", "ConvTranspose"),
    /* ---- pooling */
    PASS("node/test_maxpool_2d_default"),
    PASS("node/test_maxpool_2d_dilations"),
    PASS("node/test_maxpool_2d_pads"),
    PASS("node/test_maxpool_2d_precomputed_pads"),
    PASS("node/test_maxpool_2d_precomputed_same_upper"),
    PASS("node/test_maxpool_2d_precomputed_strides"),
    PASS("node/test_maxpool_2d_same_lower"),
    PASS("node/test_maxpool_2d_same_upper"),
    PASS("node/test_maxpool_2d_strides"),
    PASS("node/test_maxpool_2d_ceil"),
    PASS("pytorch-converted/test_MaxPool2d"),
    PASS("pytorch-converted/test_MaxPool2d_stride_padding_dilation"),
    OUT("node/test_maxpool_2d_uint8", "uint8", "uint8 input"),
    OUT("node/test_maxpool_1d_default", "only 2-D pooling", "1-D pooling"),
    OUT("node/test_maxpool_3d_default", "rank 5", "3-D pooling"),
    OUT("node/test_maxpool_with_argmax_2d_precomputed_pads", "2 outputs", "Indices output"),
    OUT("node/test_maxpool_with_argmax_2d_precomputed_strides", "2 outputs", "Indices output"),
    OUT("pytorch-converted/test_MaxPool1d", "only 2-D pooling", "1-D pooling"),
    OUT("pytorch-converted/test_MaxPool1d_stride", "only 2-D pooling", "1-D pooling"),
    OUT("pytorch-converted/test_MaxPool1d_stride_padding_dilation", "too large",
        "1-D pooling over 220000 values"),
    OUT("pytorch-converted/test_MaxPool3d", "rank 5", "3-D pooling"),
    OUT("pytorch-converted/test_MaxPool3d_stride", "rank 5", "3-D pooling"),
    OUT("pytorch-converted/test_MaxPool3d_stride_padding", "rank 5", "3-D pooling"),
    OUT("pytorch-operator/test_operator_maxpool", "only 2-D pooling", "1-D pooling"),
    PASS("node/test_averagepool_2d_default"),
    PASS("node/test_averagepool_2d_pads"),
    PASS("node/test_averagepool_2d_pads_count_include_pad"),
    PASS("node/test_averagepool_2d_precomputed_pads"),
    PASS("node/test_averagepool_2d_precomputed_pads_count_include_pad"),
    PASS("node/test_averagepool_2d_precomputed_same_upper"),
    PASS("node/test_averagepool_2d_precomputed_strides"),
    PASS("node/test_averagepool_2d_same_lower"),
    PASS("node/test_averagepool_2d_same_upper"),
    PASS("node/test_averagepool_2d_strides"),
    PASS("node/test_averagepool_2d_ceil"),
    PASS("pytorch-converted/test_AvgPool2d"),
    PASS("pytorch-converted/test_AvgPool2d_stride"),
    OUT("node/test_averagepool_1d_default", "only 2-D pooling", "1-D pooling"),
    OUT("node/test_averagepool_3d_default", "rank 5", "3-D pooling"),
    OUT("pytorch-converted/test_AvgPool1d", "not in NCHW order", "1-D pooling through Unsqueeze"),
    OUT("pytorch-converted/test_AvgPool1d_stride", "not in NCHW order", "1-D pooling through Unsqueeze"),
    OUT("pytorch-converted/test_AvgPool3d", "rank 5", "3-D pooling"),
    OUT("pytorch-converted/test_AvgPool3d_stride", "rank 5", "3-D pooling"),
    OUT("pytorch-converted/test_AvgPool3d_stride1_pad0_gpu_input", "rank 5", "3-D pooling"),
    PASS("node/test_globalaveragepool"),
    PASS("node/test_globalaveragepool_precomputed"),
    PASS("node/test_globalmaxpool"),
    PASS("node/test_globalmaxpool_precomputed"),
    OUT("pytorch-operator/test_operator_reduced_mean", "spatial axes",
        "mean over one axis (not global pooling)"),
    OUT("pytorch-operator/test_operator_reduced_mean_keepdim", "spatial axes",
        "mean over one axis (not global pooling)"),
    /* ---- dense */
    PASS("node/test_gemm_alpha"),
    PASS("node/test_gemm_beta"),
    PASS("node/test_gemm_default_no_bias"),
    PASS("node/test_gemm_default_scalar_bias"),
    PASS("node/test_gemm_default_single_elem_vector_bias"),
    PASS("node/test_gemm_default_vector_bias"),
    PASS("node/test_gemm_default_zero_bias"),
    PASS("node/test_gemm_transposeB"),
    OUT("node/test_gemm_default_matrix_bias", "varies along the batch", "bias differs per sample"),
    OUT("node/test_gemm_transposeA", "transA=1", "A transposed: the batch on the columns"),
    OUT("node/test_gemm_all_attributes", "transA=1", "A transposed: the batch on the columns"),
    PASS("node/test_matmul_2d"),
    OUT("node/test_matmul_3d", "must be a 2-D constant", "batched (3-D) MatMul"),
    OUT("node/test_matmul_4d", "must be a 2-D constant", "batched (4-D) MatMul"),
    PASS("pytorch-converted/test_Linear"),
    PASS("pytorch-converted/test_Linear_no_bias"),
    PASS("pytorch-operator/test_operator_mm"),
    OUT("pytorch-operator/test_operator_addmm", "must be a constant", "Gemm bias computed at run time"),
    /* ---- element-wise */
    PASS("node/test_relu"),
    PASS("pytorch-converted/test_ReLU"),
    PASS("simple/test_single_relu_model"),
    PASS("node/test_add_bcast"),
    OUT("node/test_add", "does not broadcast per sample", "second operand differs per sample"),
    OUT("node/test_add_uint8", "uint8", "uint8 inputs"),
    OUT("pytorch-operator/test_operator_add_broadcast", "double", "float64 inputs"),
    OUT("pytorch-operator/test_operator_add_size1_broadcast", "double", "float64 inputs"),
    OUT("pytorch-operator/test_operator_add_size1_right_broadcast", "double", "float64 inputs"),
    OUT("pytorch-operator/test_operator_add_size1_singleton_broadcast", "double", "float64 inputs"),
    OUT("pytorch-operator/test_operator_addconstant", "double", "float64 inputs"),
    PASS("node/test_clip_default_min"),
    OUT("node/test_clip_default_inbounds", "rank 1", "rank-1 input (no batch axis)"),
    OUT("node/test_clip", "only ReLU", "bounds other than [0,inf) / [0,6]"),
    OUT("node/test_clip_default_max", "only ReLU", "bounds other than [0,inf) / [0,6]"),
    OUT("node/test_clip_example", "rank 1", "rank-1 input (no batch axis)"),
    OUT("node/test_clip_inbounds", "rank 1", "rank-1 input (no batch axis)"),
    OUT("node/test_clip_outbounds", "rank 1", "rank-1 input (no batch axis)"),
    OUT("node/test_clip_splitbounds", "rank 1", "rank-1 input (no batch axis)"),
    OUT("node/test_clip_default_int8_inbounds", "int8", "int8 input"),
    OUT("node/test_clip_default_int8_max", "int8", "int8 input"),
    OUT("node/test_clip_default_int8_min", "int8", "int8 input"),
    OUT("pytorch-operator/test_operator_clip", "only ReLU", "bounds other than [0,inf) / [0,6]"),
    PASS("node/test_softmax_axis_2"),
    PASS("node/test_softmax_default_axis"),
    PASS("node/test_softmax_example"),
    PASS("node/test_softmax_large_number"),
    PASS("node/test_softmax_negative_axis"),
    PASS("pytorch-converted/test_Softmax"),
    PASS("pytorch-converted/test_softmax_lastdim"),
    OUT("node/test_softmax_axis_0", "batch axis", "softmax over the batch"),
    OUT("node/test_softmax_axis_1", "last (channel) axis only", "softmax over a middle axis"),
    OUT("pytorch-converted/test_softmax_functional_dim3", "last (channel) axis only",
        "softmax over W of NCHW"),
    PASS("node/test_batchnorm_epsilon"),
    PASS("node/test_batchnorm_example"),
    PASS("pytorch-converted/test_BatchNorm2d_eval"),
    PASS("pytorch-converted/test_BatchNorm2d_momentum_eval"),
    OUT("node/test_batchnorm_epsilon_training_mode", "3 outputs",
        "training mode (running statistics as outputs)"),
    OUT("node/test_batchnorm_example_training_mode", "3 outputs",
        "training mode (running statistics as outputs)"),
    OUT("pytorch-converted/test_BatchNorm1d_3d_input_eval", "non-image tensor",
        "channel axis 1 of a (N,C,L) tensor"),
    OUT("pytorch-converted/test_BatchNorm3d_eval", "non-image tensor", "3-D batch norm (N,C,D,H,W)"),
    OUT("pytorch-converted/test_BatchNorm3d_momentum_eval", "non-image tensor", "3-D batch norm (N,C,D,H,W)"),
    PASS("node/test_dropout_default"),
    OUT("node/test_dropout_default_old", "rank 1", "rank-1 input (no batch axis)"),
    PASS("node/test_dropout_default_ratio"),
    PASS("node/test_dropout_random_old"),
    OUT("node/test_dropout_default_mask", "2 outputs", "mask output"),
    OUT("node/test_dropout_default_mask_ratio", "2 outputs", "mask output"),
    PASS("node/test_identity"),
    OUT("node/test_identity_opt", "not a tensor", "optional type"),
    OUT("node/test_identity_sequence", "not a tensor", "sequence type"),
    /* ---- shapes */
    PASS("node/test_flatten_axis1"),
    PASS("node/test_flatten_default_axis"),
    PASS("node/test_flatten_negative_axis3"),
    PASS("pytorch-operator/test_operator_flatten"),
    OUT("node/test_flatten_axis0", "folds the batch", "merges the batch into the features"),
    OUT("node/test_flatten_axis2", "folds the batch", "merges the batch into the features"),
    OUT("node/test_flatten_axis3", "folds the batch", "merges the batch into the features"),
    OUT("node/test_flatten_negative_axis1", "folds the batch", "merges the batch into the features"),
    OUT("node/test_flatten_negative_axis2", "folds the batch", "merges the batch into the features"),
    OUT("node/test_flatten_negative_axis4", "folds the batch", "merges the batch into the features"),
    OUT("pytorch-operator/test_operator_view", "rank 1", "rank-1 input (no batch axis)"),
    PASS("node/test_reshape_extended_dims"),
    PASS("node/test_reshape_negative_dim"),
    PASS("node/test_reshape_reduced_dims"),
    PASS("node/test_reshape_reordered_last_dims"),
    PASS("node/test_reshape_zero_and_negative_dim"),
    PASS("node/test_reshape_zero_dim"),
    OUT("node/test_reshape_negative_extended_dims", "merge samples", "reshape moves data across samples"),
    OUT("node/test_reshape_one_dim", "changes the batch", "reshape to 1-D merges the batch"),
    OUT("node/test_reshape_reordered_all_dims", "changes the batch", "reshape changes the batch dimension"),
    OUT("node/test_reshape_allowzero_reordered", "changes the batch", "empty tensor, batch reordered"),
    OUT("node/test_constant", "does not depend on any graph input", "no graph input"),
};

#define N_CONF ((int)(sizeof conf_cases / sizeof conf_cases[0]))

/* input_K.pb / output_0.pb of one data set. */
static uint8_t *read_pb(const char *dir, const char *set, const char *file, size_t *len)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s/%s", dir, set, file);
    return tu_read_file(p, len);
}

/* Runs one data set of a case; returns 1 when every output matched. */
static int conf_run_set(const char *name, const char *dir, const char *set, const char *expect_err,
                        const char **err_out)
{
    static char errbuf[1024];
    size_t mlen = 0;
    char mp[2048];
    snprintf(mp, sizeof mp, "%s/model.onnx", dir);
    uint8_t *model = tu_read_file(mp, &mlen);
    if (!model) {
        printf("  %s: cannot read %s\n", name, mp);
        return 0;
    }
    /* bind input_1.. to the graph inputs after the first */
    tml_onnx_binding bind[16];
    uint8_t *bufs[16] = {NULL};
    int nb = 0;
    for (int k = 1; k < 16; k++) {
        char f[32];
        size_t l;
        snprintf(f, sizeof f, "input_%d.pb", k);
        uint8_t *b = read_pb(dir, set, f, &l);
        if (!b) break;
        bufs[nb] = b;
        bind[nb] = (tml_onnx_binding){.name = NULL, .index = k, .pb = b, .pb_len = l};
        nb++;
    }
    tml_onnx_opts o = {.bind = bind, .n_bind = nb};
    tml_model *m = NULL;
    tml_onnx_info info;
    tml_status st = tml_onnx_import_mem(model, mlen, &o, &m, &info);
    int ok = 0;
    *err_out = NULL;
    if (expect_err) {
        snprintf(errbuf, sizeof errbuf, "%s", tml_last_error());
        *err_out = errbuf;
        if (!st) {
            printf("  %s: imported, but expected an error containing '%s'\n", name, expect_err);
        } else if (!strstr(errbuf, expect_err)) {
            printf("  %s: error '%s' does not contain '%s'\n", name, errbuf, expect_err);
        } else {
            ok = 1;
        }
        goto done;
    }
    if (st) {
        printf("  %s: import failed: %s\n", name, tml_last_error());
        goto done;
    }
    size_t il, ol;
    uint8_t *ib = read_pb(dir, set, "input_0.pb", &il), *ob = read_pb(dir, set, "output_0.pb", &ol);
    float *xi = NULL, *yo = NULL, *x = NULL, *y = NULL;
    int xr = 0, yr = 0;
    int64_t xd[TML_ONNX_MAX_RANK], yd[TML_ONNX_MAX_RANK];
    if (!ib || !ob || tml_onnx_read_tensor(ib, il, &xi, &xr, xd) ||
        tml_onnx_read_tensor(ob, ol, &yo, &yr, yd)) {
        printf("  %s: cannot read the test data: %s\n", name, tml_last_error());
        goto data_done;
    }
    int64_t n = xd[0], xn = 1, yn = 1;
    for (int i = 0; i < xr; i++) xn *= xd[i];
    for (int i = 0; i < yr; i++) yn *= yd[i];
    if (xr != info.in_rank || n < 1 || xn / n != tml_tensor_numel(&m->tensors[m->input]) || yr < 1 ||
        yd[0] != n || yn / n != tml_tensor_numel(&m->tensors[m->output])) {
        printf("  %s: test data shapes do not fit the imported model\n", name);
        goto data_done;
    }
    x = malloc(sizeof(float) * (size_t)xn);
    y = malloc(sizeof(float) * (size_t)yn);
    assert_non_null(x);
    assert_non_null(y);
    to_tinyml(info.in_layout, xr, xd, NULL, xi, x);
    to_tinyml(info.out_layout, yr, yd, info.out_chw, yo, y);
    ok = run_and_compare(name, m, x, (int)n, y, CONF_TOL);
data_done:
    free(ib);
    free(ob);
    free(xi);
    free(yo);
    free(x);
    free(y);
done:
    tml_model_free(m);
    for (int k = 0; k < nb; k++) free(bufs[k]);
    free(model);
    return ok;
}

static void test_conformance(void **state)
{
    (void)state;
    const char *root = testdata_dir();
    if (!is_dir(root)) {
        printf("libonnx-testdata not found at %s (set TML_ONNX_TESTDATA): skipped\n", root);
        skip();
    }
    int passed = 0, out = 0, failed = 0, missing = 0;
    printf("| case | result | note |\n|---|---|---|\n");
    for (int i = 0; i < N_CONF; i++) {
        const conf_case *cc = &conf_cases[i];
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, cc->dir);
        if (!is_dir(dir)) {
            printf("| %s | missing | not in this libonnx-testdata |\n", cc->dir);
            missing++;
            continue;
        }
        int sets = 0, ok = 1;
        const char *err = NULL;
        DIR *d = opendir(dir);
        assert_non_null(d);
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strncmp(de->d_name, "test_data_set_", 14) != 0) continue;
            sets++;
            ok &= conf_run_set(cc->dir, dir, de->d_name, cc->error, &err);
        }
        closedir(d);
        if (!sets) ok = 0;
        if (!ok) {
            failed++;
            printf("| %s | **FAILED** | %s |\n", cc->dir, cc->why ? cc->why : "");
        } else if (cc->error) {
            out++;
            printf("| %s | out of scope | %s: \"%s\" |\n", cc->dir, cc->why, err ? err : "");
        } else {
            passed++;
            printf("| %s | pass | |\n", cc->dir);
        }
    }
    printf("conformance: %d passed, %d out of scope (clear import errors checked), %d failed, %d missing\n",
           passed, out, failed, missing);
    assert_int_equal(failed, 0);
}

/* ---- PyTorch fixtures ------------------------------------------------------------------------- */

typedef struct fixture {
    char name[64];
    int batch, in_rank; /* in_rank: ONNX rank with the batch */
    int64_t in_dims[4];
    int64_t outs;
} fixture;

static int read_manifest(fixture *fx, int max)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/MANIFEST", fixture_dir());
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f) && n < max) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char dims[64];
        long long outs;
        fixture *x = &fx[n];
        if (sscanf(line, "%63s %d %63s %lld", x->name, &x->batch, dims, &outs) != 4) continue;
        x->outs = outs;
        x->in_rank = 1;
        for (char *t = strtok(dims, ","); t && x->in_rank < 4; t = strtok(NULL, ","))
            x->in_dims[x->in_rank++] = atoll(t);
        x->in_dims[0] = x->batch;
        n++;
    }
    fclose(f);
    return n;
}

static uint8_t *fixture_file(const char *name, const char *ext, size_t *len)
{
    char p[1200];
    snprintf(p, sizeof p, "%.1000s/%.120s%.16s", fixture_dir(), name, ext);
    return tu_read_file(p, len);
}

static void test_fixtures(void **state)
{
    (void)state;
    fixture fx[32];
    int n = read_manifest(fx, 32);
    if (n < 0) {
        printf("no fixtures at %s (set TML_SOURCE_DIR): skipped\n", fixture_dir());
        skip();
    }
    assert_true(n >= 6);
    for (int i = 0; i < n; i++) {
        const fixture *f = &fx[i];
        size_t ml, il, ol;
        uint8_t *mb = fixture_file(f->name, ".onnx", &ml);
        float *xin = (float *)fixture_file(f->name, ".input.bin", &il);
        float *want = (float *)fixture_file(f->name, ".output.bin", &ol);
        assert_non_null(mb);
        assert_non_null(xin);
        assert_non_null(want);
        int64_t per = 1;
        for (int k = 1; k < f->in_rank; k++) per *= f->in_dims[k];
        assert_int_equal(il, sizeof(float) * (size_t)(per * f->batch));
        assert_int_equal(ol, sizeof(float) * (size_t)(f->outs * f->batch));
        tml_model *m = NULL;
        tml_onnx_info info;
        tml_status st = tml_onnx_import_mem(mb, ml, NULL, &m, &info);
        if (st) printf("%s: %s\n", f->name, tml_last_error());
        assert_int_equal(st, TML_OK);
        printf("%s: %s -> %d tinyml nodes (%d folded, %d fused), batch %lld\n", f->name, info.op_summary,
               m->n_nodes, info.folded_nodes, info.fused_nodes, (long long)info.batch);
        assert_int_equal(tml_tensor_numel(&m->tensors[m->output]), f->outs);
        assert_int_equal(m->meta.n_classes, f->outs);
        float *x = malloc(sizeof(float) * (size_t)(per * f->batch));
        assert_non_null(x);
        to_tinyml(info.in_layout, f->in_rank, f->in_dims, NULL, xin, x);
        /* the whole batch at once, then one sample at a time */
        assert_true(run_and_compare(f->name, m, x, f->batch, want, FIXTURE_TOL));
        for (int b = 0; b < f->batch; b++)
            assert_true(run_and_compare(f->name, m, x + b * per, 1, want + b * f->outs, FIXTURE_TOL));
        /* survives a .tmf round trip unchanged */
        uint8_t *tb;
        size_t tl;
        assert_int_equal(tml_model_write_mem(m, NULL, &tb, &tl), TML_OK);
        tml_model *m2 = NULL;
        assert_int_equal(tml_model_read_mem(tb, tl, &m2), TML_OK);
        assert_true(run_and_compare(f->name, m2, x, f->batch, want, FIXTURE_TOL));
        free(tb);
        tml_model_free(m2);
        tml_model_free(m);
        free(x);
        free(mb);
        free(xin);
        free(want);
    }
}

/* Structure of the imported fixtures: what was folded and fused. */
static void test_fixture_structure(void **state)
{
    (void)state;
    size_t ml;
    uint8_t *mb = fixture_file("mlp_dyn", ".onnx", &ml);
    if (!mb) skip();
    tml_model *m;
    tml_onnx_info info;
    assert_int_equal(tml_onnx_import_mem(mb, ml, NULL, &m, &info), TML_OK);
    /* MatMul + Add -> one dense with bias and the ReLU fused; Gemm; Softmax */
    assert_int_equal(m->n_nodes, 3);
    assert_int_equal(m->nodes[0].op, TML_OP_DENSE);
    assert_int_equal(m->nodes[0].n_in, 3);
    assert_int_equal(m->nodes[0].act, TML_ACT_RELU);
    assert_int_equal(m->nodes[2].op, TML_OP_SOFTMAX);
    assert_int_equal(info.batch, -1);
    tml_model_free(m);
    free(mb);

    mb = fixture_file("lenet5_dyn", ".onnx", &ml);
    assert_non_null(mb);
    assert_int_equal(tml_onnx_import_mem(mb, ml, NULL, &m, &info), TML_OK);
    /* conv(relu) pool conv(relu) pool reshape dense(relu) dense(relu) dense */
    assert_int_equal(m->n_nodes, 8);
    assert_int_equal(m->nodes[0].op, TML_OP_CONV2D);
    assert_int_equal(m->nodes[0].act, TML_ACT_RELU);
    assert_int_equal(m->nodes[4].op, TML_OP_RESHAPE);
    const tml_tensor *in = &m->tensors[m->input];
    assert_int_equal(in->ndim, 3);
    assert_int_equal(in->dims[0], 28);
    assert_int_equal(in->dims[2], 1);
    assert_true(info.folded_nodes >= 5); /* the Shape/Gather/Unsqueeze/Concat chain */
    tml_model_free(m);
    free(mb);

    mb = fixture_file("dsnet_b1", ".onnx", &ml);
    assert_non_null(mb);
    assert_int_equal(tml_onnx_import_mem(mb, ml, NULL, &m, &info), TML_OK);
    int bn = 0, dw = 0, r6 = 0, add = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        bn += m->nodes[i].op == TML_OP_BATCHNORM;
        dw += m->nodes[i].op == TML_OP_DEPTHWISE_CONV2D;
        r6 += m->nodes[i].op == TML_OP_RELU6;
        add += m->nodes[i].op == TML_OP_ADD;
    }
    assert_int_equal(bn, 3);
    assert_int_equal(dw, 1);
    assert_int_equal(r6, 3);
    assert_int_equal(add, 1);
    assert_int_equal(info.batch, 1);
    tml_model_free(m);
    free(mb);
}

/* ---- a small protobuf writer for hand-built models ---------------------------------------------- */

typedef struct pbw {
    uint8_t *p;
    size_t n, cap;
} pbw;

static void pw_raw(pbw *w, const void *d, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->p = realloc(w->p, w->cap);
        assert_non_null(w->p);
    }
    if (n) memcpy(w->p + w->n, d, n);
    w->n += n;
}

static void pw_varint(pbw *w, uint64_t v)
{
    uint8_t b[10];
    int n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    pw_raw(w, b, (size_t)n);
}

static void pw_key(pbw *w, uint32_t f, int wt)
{
    pw_varint(w, (uint64_t)f << 3 | (uint64_t)wt);
}
static void pw_int(pbw *w, uint32_t f, int64_t v)
{
    pw_key(w, f, 0);
    pw_varint(w, (uint64_t)v);
}
static void pw_bytes(pbw *w, uint32_t f, const void *d, size_t n)
{
    pw_key(w, f, 2);
    pw_varint(w, n);
    pw_raw(w, d, n);
}
static void pw_str(pbw *w, uint32_t f, const char *s)
{
    pw_bytes(w, f, s, strlen(s));
}
/* Appends sub as a nested message and frees it. */
static void pw_msg(pbw *w, uint32_t f, pbw *sub)
{
    pw_bytes(w, f, sub->p, sub->n);
    free(sub->p);
    memset(sub, 0, sizeof *sub);
}
static void pw_f32(pbw *w, uint32_t f, float v)
{
    pw_key(w, f, 5);
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    pw_raw(w, b, 4);
}

/* TensorProto with raw float data. */
static pbw tensor_f(const char *name, int nd, const int64_t *dims, const float *data)
{
    pbw t = {0};
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        pw_int(&t, 1, dims[i]);
        n *= dims[i];
    }
    pw_int(&t, 2, 1);
    pw_str(&t, 8, name);
    pw_bytes(&t, 9, data, sizeof(float) * (size_t)n);
    return t;
}

static pbw tensor_i64(const char *name, int nd, const int64_t *dims, const int64_t *data)
{
    pbw t = {0};
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        pw_int(&t, 1, dims[i]);
        n *= dims[i];
    }
    pw_int(&t, 2, 7);
    pw_str(&t, 8, name);
    pw_bytes(&t, 9, data, sizeof(int64_t) * (size_t)n);
    return t;
}

/* ValueInfoProto of a float tensor; dims < 0 are symbolic. */
static pbw valinfo(const char *name, int nd, const int64_t *dims)
{
    pbw shape = {0}, tt = {0}, tp = {0}, v = {0};
    for (int i = 0; i < nd; i++) {
        pbw d = {0};
        if (dims[i] >= 0)
            pw_int(&d, 1, dims[i]);
        else
            pw_str(&d, 2, "N");
        pw_msg(&shape, 1, &d);
    }
    pw_int(&tt, 1, 1);
    pw_msg(&tt, 2, &shape);
    pw_msg(&tp, 1, &tt);
    pw_str(&v, 1, name);
    pw_msg(&v, 2, &tp);
    return v;
}

typedef struct attrspec {
    const char *name;
    int kind; /* 'i' int, 'f' float, 's' string, 'I' ints */
    int64_t i;
    float f;
    const char *s;
    int n;
    const int64_t *ints;
} attrspec;

static pbw node(const char *op, const char *name, int ni, const char *const *in, int no,
                const char *const *out, int na, const attrspec *attrs)
{
    pbw n = {0};
    for (int i = 0; i < ni; i++) pw_str(&n, 1, in[i]);
    for (int i = 0; i < no; i++) pw_str(&n, 2, out[i]);
    if (name) pw_str(&n, 3, name);
    pw_str(&n, 4, op);
    for (int i = 0; i < na; i++) {
        pbw a = {0};
        pw_str(&a, 1, attrs[i].name);
        switch (attrs[i].kind) {
        case 'i':
            pw_int(&a, 20, 2);
            pw_int(&a, 3, attrs[i].i);
            break;
        case 'f':
            pw_int(&a, 20, 1);
            pw_f32(&a, 2, attrs[i].f);
            break;
        case 's':
            pw_int(&a, 20, 3);
            pw_str(&a, 4, attrs[i].s);
            break;
        default:
            pw_int(&a, 20, 7);
            for (int k = 0; k < attrs[i].n; k++) pw_int(&a, 8, attrs[i].ints[k]);
            break;
        }
        pw_msg(&n, 5, &a);
    }
    return n;
}

/* Model builder: collects graph fields, then wraps them in a ModelProto. */
typedef struct mb {
    pbw g;
    int64_t opset;
} mb;

static void mb_node(mb *b, pbw n)
{
    pw_msg(&b->g, 1, &n);
}
static void mb_init(mb *b, pbw t)
{
    pw_msg(&b->g, 5, &t);
}
static void mb_input(mb *b, pbw v)
{
    pw_msg(&b->g, 11, &v);
}
static void mb_output(mb *b, pbw v)
{
    pw_msg(&b->g, 12, &v);
}

static pbw mb_finish(mb *b)
{
    pbw m = {0}, os = {0};
    pw_int(&m, 1, 8);
    pw_str(&m, 2, "tinyml-test");
    pw_str(&os, 1, "");
    pw_int(&os, 2, b->opset);
    pw_msg(&m, 8, &os);
    pw_str(&b->g, 2, "g");
    pw_msg(&m, 7, &b->g);
    return m;
}

static tml_status import_pb(const pbw *p, tml_model **m)
{
    tml_onnx_info info;
    return tml_onnx_import_mem(p->p, p->n, NULL, m, &info);
}

#define S(...) ((const char *const[]){__VA_ARGS__})
#define I64(...) ((const int64_t[]){__VA_ARGS__})

/* x (N,4) -> MatMul W (4,3) -> Add b (3) -> Relu -> y */
static pbw mlp_model(int64_t opset, const char *relu_op, int na, const attrspec *attrs)
{
    static const float W[12] = {1, -2, 0.5f, 0, 1, 1, -1, 0.25f, 2, 3, -1, 0};
    static const float B[3] = {0.5f, -1, 2};
    mb b = {{0}, opset};
    mb_input(&b, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b, valinfo("y", 2, I64(-1, 3)));
    mb_init(&b, tensor_f("W", 2, I64(4, 3), W));
    mb_init(&b, tensor_f("b", 1, I64(3), B));
    mb_node(&b, node("MatMul", "mm", 2, S("x", "W"), 1, S("h"), 0, NULL));
    mb_node(&b, node("Add", "add", 2, S("h", "b"), 1, S("h2"), 0, NULL));
    mb_node(&b, node(relu_op, "act", 1, S("h2"), 1, S("y"), na, attrs));
    return mb_finish(&b);
}

static void mlp_reference(const float *x, int n, float lo, float hi, float *y)
{
    static const float W[12] = {1, -2, 0.5f, 0, 1, 1, -1, 0.25f, 2, 3, -1, 0};
    static const float B[3] = {0.5f, -1, 2};
    for (int s = 0; s < n; s++)
        for (int o = 0; o < 3; o++) {
            float a = B[o];
            for (int k = 0; k < 4; k++) a += x[s * 4 + k] * W[k * 3 + o];
            y[s * 3 + o] = a < lo ? lo : a > hi ? hi : a;
        }
}

static void test_matmul_add_relu_fold(void **state)
{
    (void)state;
    float x[5 * 4], want[5 * 3];
    tu_rng r;
    tu_rng_seed(&r, 5);
    tu_fill_uniform(&r, x, 20, -3, 3);
    pbw p = mlp_model(13, "Relu", 0, NULL);
    tml_model *m = NULL;
    assert_int_equal(import_pb(&p, &m), TML_OK);
    assert_int_equal(m->n_nodes, 1);
    assert_int_equal(m->nodes[0].op, TML_OP_DENSE);
    assert_int_equal(m->nodes[0].act, TML_ACT_RELU);
    mlp_reference(x, 5, 0, INFINITY, want);
    assert_true(run_and_compare("matmul+add+relu", m, x, 5, want, 1e-5f));
    tml_model_free(m);
    free(p.p);

    /* Clip as ReLU6: attributes before opset 11 */
    attrspec a6[2] = {{.name = "min", .kind = 'f', .f = 0}, {.name = "max", .kind = 'f', .f = 6}};
    p = mlp_model(9, "Clip", 2, a6);
    assert_int_equal(import_pb(&p, &m), TML_OK);
    assert_int_equal(m->nodes[0].act, TML_ACT_RELU6);
    mlp_reference(x, 5, 0, 6, want);
    assert_true(run_and_compare("clip(0,6) opset 9", m, x, 5, want, 1e-5f));
    tml_model_free(m);
    free(p.p);

    /* other bounds are a clear error naming the node, op and opset */
    attrspec a1[2] = {{.name = "min", .kind = 'f', .f = -1}, {.name = "max", .kind = 'f', .f = 1}};
    p = mlp_model(9, "Clip", 2, a1);
    assert_int_equal(import_pb(&p, &m), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "node 'act' (Clip, opset 9)"));
    free(p.p);

    /* an unknown attribute is refused, not ignored */
    attrspec bad[1] = {{.name = "alpha", .kind = 'f', .f = 0.1f}};
    p = mlp_model(13, "Relu", 1, bad);
    assert_int_equal(import_pb(&p, &m), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "attribute 'alpha'"));
    free(p.p);

    /* an op tinyml lacks */
    p = mlp_model(13, "LeakyRelu", 0, NULL);
    assert_int_equal(import_pb(&p, &m), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "node 'act' (LeakyRelu, opset 13): op type not supported"));
    free(p.p);

    /* opsets outside 1..18 */
    p = mlp_model(19, "Relu", 0, NULL);
    assert_int_equal(import_pb(&p, &m), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "opset 19"));
    free(p.p);
}

/* Flatten of an NCHW tensor: the dense weights' columns are permuted from CHW
 * to HWC; after an explicit NCHW->NHWC Transpose they are not. */
static void test_flatten_permutation(void **state)
{
    (void)state;
    enum { N = 3, C = 2, H = 2, W = 3, F = C * H * W, O = 4 };
    float wm[F * O], xn[N * F], x[N * F], want[N * O];
    tu_rng r;
    tu_rng_seed(&r, 9);
    tu_fill_uniform(&r, wm, F * O, -1, 1);
    tu_fill_uniform(&r, xn, N * F, -1, 1);
    int64_t xd[4] = {N, C, H, W};
    to_tinyml(TML_ONNX_NCHW, 4, xd, NULL, xn, x);
    for (int transpose = 0; transpose < 2; transpose++) {
        mb b = {{0}, 13};
        mb_input(&b, valinfo("x", 4, I64(-1, C, H, W)));
        mb_output(&b, valinfo("y", 2, I64(-1, O)));
        mb_init(&b, tensor_f("W", 2, I64(F, O), wm));
        mb_init(&b, tensor_i64("shape", 1, I64(2), I64(0, -1)));
        if (transpose) {
            int64_t perm[4] = {0, 2, 3, 1};
            attrspec a = {.name = "perm", .kind = 'I', .n = 4, .ints = perm};
            mb_node(&b, node("Transpose", "t", 1, S("x"), 1, S("xt"), 1, &a));
            mb_node(&b, node("Reshape", "r", 2, S("xt", "shape"), 1, S("f"), 0, NULL));
        } else {
            mb_node(&b, node("Reshape", "r", 2, S("x", "shape"), 1, S("f"), 0, NULL));
        }
        mb_node(&b, node("MatMul", "mm", 2, S("f", "W"), 1, S("y"), 0, NULL));
        pbw p = mb_finish(&b);
        tml_model *m = NULL;
        assert_int_equal(import_pb(&p, &m), TML_OK);
        /* feature k of the flattened ONNX tensor: CHW order, or HWC after the transpose */
        for (int s = 0; s < N; s++)
            for (int o = 0; o < O; o++) {
                double acc = 0;
                for (int k = 0; k < F; k++) acc += (double)(transpose ? x : xn)[s * F + k] * wm[k * O + o];
                want[s * O + o] = (float)acc;
            }
        assert_true(
            run_and_compare(transpose ? "transpose+reshape+matmul" : "reshape+matmul", m, x, N, want, 1e-5f));
        tml_model_free(m);
        free(p.p);
    }
}

/* Per-channel Mul / Sub / Div by constants: on the graph input they become
 * batch norms with unit statistics; after a conv, Add and Mul fold into its
 * bias and weights. Then GlobalAveragePool, Squeeze(axes 2,3) and Gemm. */
static void test_channel_arithmetic(void **state)
{
    (void)state;
    enum { N = 2, C = 2, H = 3, W = 3, M = 3, O = 2 };
    const float s[C] = {2.0f, -0.5f}, mu[C] = {0.25f, 1.0f}, dv[C] = {4.0f, 0.5f};
    const float wc[M * C] = {1, 2, -1, 0.5f, 0.25f, -2}; /* (M, C, 1, 1) */
    const float bb[M] = {0.1f, -0.2f, 0.3f}, kk[M] = {2, 3, -1};
    const float wg[O * M] = {1, -1, 0.5f, 2, 0, 1}; /* Gemm B (O, M) with transB = 1 */
    float xn[N * C * H * W], x[N * C * H * W], want[N * O];
    tu_rng r;
    tu_rng_seed(&r, 21);
    tu_fill_uniform(&r, xn, N * C * H * W, -2, 2);
    int64_t xd[4] = {N, C, H, W};
    to_tinyml(TML_ONNX_NCHW, 4, xd, NULL, xn, x);
    mb b = {{0}, 13};
    mb_input(&b, valinfo("x", 4, I64(-1, C, H, W)));
    mb_output(&b, valinfo("y", 2, I64(-1, O)));
    mb_init(&b, tensor_f("s", 3, I64(C, 1, 1), s));
    mb_init(&b, tensor_f("mu", 4, I64(1, C, 1, 1), mu));
    mb_init(&b, tensor_f("dv", 3, I64(C, 1, 1), dv));
    mb_init(&b, tensor_f("wc", 4, I64(M, C, 1, 1), wc));
    mb_init(&b, tensor_f("bb", 4, I64(1, M, 1, 1), bb));
    mb_init(&b, tensor_f("kk", 3, I64(M, 1, 1), kk));
    mb_init(&b, tensor_f("wg", 2, I64(O, M), wg));
    mb_init(&b, tensor_i64("axes", 1, I64(2), I64(2, 3)));
    int64_t tb = 1;
    attrspec trans = {.name = "transB", .kind = 'i', .i = tb};
    mb_node(&b, node("Mul", "mul", 2, S("x", "s"), 1, S("a1"), 0, NULL));
    mb_node(&b, node("Sub", "sub", 2, S("a1", "mu"), 1, S("a2"), 0, NULL));
    mb_node(&b, node("Div", "div", 2, S("a2", "dv"), 1, S("a3"), 0, NULL));
    mb_node(&b, node("Conv", "conv", 2, S("a3", "wc"), 1, S("c1"), 0, NULL));
    mb_node(&b, node("Add", "bias", 2, S("c1", "bb"), 1, S("c2"), 0, NULL));
    mb_node(&b, node("Mul", "scale", 2, S("kk", "c2"), 1, S("c3"), 0, NULL));
    mb_node(&b, node("GlobalAveragePool", "gap", 1, S("c3"), 1, S("g"), 0, NULL));
    mb_node(&b, node("Squeeze", "sq", 2, S("g", "axes"), 1, S("v"), 0, NULL));
    mb_node(&b, node("Gemm", "fc", 2, S("v", "wg"), 1, S("y"), 1, &trans));
    pbw p = mb_finish(&b);
    tml_model *m = NULL;
    tml_status st = import_pb(&p, &m);
    if (st) printf("%s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    /* 3 batch norms, conv (bias and scale folded), global pool, dense */
    assert_int_equal(m->n_nodes, 6);
    assert_int_equal(m->nodes[3].op, TML_OP_CONV2D);
    assert_int_equal(m->nodes[3].n_in, 3);
    for (int n = 0; n < N; n++) {
        double g[M] = {0};
        for (int p2 = 0; p2 < H * W; p2++)
            for (int o = 0; o < M; o++) {
                double acc = bb[o];
                for (int c = 0; c < C; c++)
                    acc += (double)wc[o * C + c] * ((xn[(n * C + c) * H * W + p2] * s[c] - mu[c]) / dv[c]);
                g[o] += kk[o] * acc / (H * W);
            }
        for (int o = 0; o < O; o++) {
            double acc = 0;
            for (int k = 0; k < M; k++) acc += g[k] * wg[o * M + k];
            want[n * O + o] = (float)acc;
        }
    }
    assert_true(run_and_compare("mul/sub/div/conv/add/mul/gap/squeeze/gemm", m, x, N, want, 1e-5f));
    tml_model_free(m);
    free(p.p);
}

/* ReduceMean over (H, W) = global average pooling, with and without keepdims. */
static void test_reduce_mean(void **state)
{
    (void)state;
    enum { N = 2, C = 3, H = 2, W = 4, O = 2 };
    const float wg[C * O] = {1, -1, 0.5f, 2, -3, 1}; /* MatMul B (C, O) */
    float xn[N * C * H * W], x[N * C * H * W], want[N * O];
    tu_rng r;
    tu_rng_seed(&r, 33);
    tu_fill_uniform(&r, xn, N * C * H * W, -2, 2);
    int64_t xd[4] = {N, C, H, W};
    to_tinyml(TML_ONNX_NCHW, 4, xd, NULL, xn, x);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double acc = 0;
            for (int c = 0; c < C; c++) {
                double mean = 0;
                for (int k = 0; k < H * W; k++) mean += xn[(n * C + c) * H * W + k];
                acc += mean / (H * W) * wg[c * O + o];
            }
            want[n * O + o] = (float)acc;
        }
    for (int keep = 0; keep < 3; keep++) {
        int64_t axes[2] = {-1, 2}, bad[1] = {1};
        attrspec a[2] = {
            {.name = "axes", .kind = 'I', .n = keep == 2 ? 1 : 2, .ints = keep == 2 ? bad : axes},
            {.name = "keepdims", .kind = 'i', .i = keep == 1}};
        mb b = {{0}, 13};
        mb_input(&b, valinfo("x", 4, I64(-1, C, H, W)));
        mb_output(&b, valinfo("y", 2, I64(-1, O)));
        mb_init(&b, tensor_f("wg", 2, I64(C, O), wg));
        mb_node(&b, node("ReduceMean", "mean", 1, S("x"), 1, S("g"), 2, a));
        if (keep == 1) mb_node(&b, node("Flatten", "f", 1, S("g"), 1, S("g2"), 0, NULL));
        mb_node(&b, node("MatMul", "fc", 2, S(keep == 1 ? "g2" : "g", "wg"), 1, S("y"), 0, NULL));
        pbw p = mb_finish(&b);
        tml_model *m = NULL;
        if (keep == 2) {
            assert_int_equal(import_pb(&p, &m), TML_ERR_UNSUPPORTED);
            assert_non_null(strstr(tml_last_error(), "spatial axes"));
        } else {
            assert_int_equal(import_pb(&p, &m), TML_OK);
            assert_int_equal(m->n_nodes, 2); /* global_avgpool, dense: the flatten is free */
            assert_int_equal(m->nodes[0].op, TML_OP_GLOBAL_AVGPOOL);
            assert_true(run_and_compare("reducemean+matmul", m, x, N, want, 1e-5f));
            tml_model_free(m);
        }
        free(p.p);
    }
}

/* Clip with min/max inputs (opset >= 11) and a bound input through opts. */
static void test_clip_inputs_and_binding(void **state)
{
    (void)state;
    mb b = {{0}, 13};
    mb_input(&b, valinfo("x", 4, I64(-1, 2, 3, 3)));
    mb_input(&b, valinfo("hi", 0, NULL));
    mb_output(&b, valinfo("y", 4, I64(-1, 2, 3, 3)));
    float zero = 0;
    mb_init(&b, tensor_f("lo", 0, NULL, &zero));
    mb_node(&b, node("Clip", "c", 3, S("x", "lo", "hi"), 1, S("y"), 0, NULL));
    pbw p = mb_finish(&b);
    tml_model *m = NULL;
    /* without a binding: two graph inputs */
    assert_int_equal(import_pb(&p, &m), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "2 inputs (x, hi)"));
    float six = 6;
    pbw hi = tensor_f("hi", 0, NULL, &six);
    tml_onnx_binding bind = {.name = "hi", .pb = hi.p, .pb_len = hi.n};
    tml_onnx_opts o = {.bind = &bind, .n_bind = 1};
    assert_int_equal(tml_onnx_import_mem(p.p, p.n, &o, &m, NULL), TML_OK);
    assert_int_equal(m->n_nodes, 1);
    assert_int_equal(m->nodes[0].op, TML_OP_RELU6);
    tml_model_free(m);
    /* a binding that matches nothing is an option error */
    bind.name = "nope";
    assert_int_equal(tml_onnx_import_mem(p.p, p.n, &o, &m, NULL), TML_ERR_INVALID);
    free(hi.p);
    free(p.p);
}

/* Symbolic image dims need the shape from the caller. */
static void test_input_shape_option(void **state)
{
    (void)state;
    mb b = {{0}, 13};
    mb_input(&b, valinfo("x", 4, I64(-1, 3, -1, -1)));
    mb_output(&b, valinfo("y", 2, I64(-1, 3)));
    mb_node(&b, node("GlobalAveragePool", "gap", 1, S("x"), 1, S("g"), 0, NULL));
    mb_node(&b, node("Flatten", "f", 1, S("g"), 1, S("y"), 0, NULL));
    pbw p = mb_finish(&b);
    tml_model *m = NULL;
    assert_int_equal(import_pb(&p, &m), TML_ERR_INVALID);
    assert_non_null(strstr(tml_last_error(), "--input-shape HxWxC"));
    tml_onnx_opts o = {.input_ndim = 3, .input_dims = {8, 6, 3}};
    tml_onnx_info info;
    assert_int_equal(tml_onnx_import_mem(p.p, p.n, &o, &m, &info), TML_OK);
    assert_int_equal(m->tensors[m->input].dims[0], 8);
    assert_int_equal(m->tensors[m->input].dims[1], 6);
    assert_int_equal(m->tensors[m->input].dims[2], 3);
    assert_int_equal(m->n_nodes, 1); /* the flatten of a 1x1 image is free */
    tml_model_free(m);
    o.input_dims[2] = 4; /* the file says 3 channels */
    assert_int_equal(tml_onnx_import_mem(p.p, p.n, &o, &m, &info), TML_ERR_INVALID);
    free(p.p);
}

/* TensorProto encodings: raw, packed / unpacked float_data, int64, double, float16. */
static void test_tensor_encodings(void **state)
{
    (void)state;
    const float want[3] = {1.5f, -2.0f, 0.25f};
    float *d;
    int nd;
    int64_t dims[TML_ONNX_MAX_RANK];
    /* packed float_data */
    pbw t = {0};
    pw_int(&t, 1, 3);
    pw_int(&t, 2, 1);
    pw_bytes(&t, 4, want, sizeof want);
    assert_int_equal(tml_onnx_read_tensor(t.p, t.n, &d, &nd, dims), TML_OK);
    assert_int_equal(nd, 1);
    assert_int_equal(dims[0], 3);
    TU_ASSERT_CLOSE(d, want, 3, 0.0f);
    free(d);
    free(t.p);
    /* unpacked float_data, dims unpacked too, fields in any order */
    memset(&t, 0, sizeof t);
    for (int i = 0; i < 3; i++) pw_f32(&t, 4, want[i]);
    pw_int(&t, 2, 1);
    pw_int(&t, 1, 3);
    assert_int_equal(tml_onnx_read_tensor(t.p, t.n, &d, &nd, dims), TML_OK);
    TU_ASSERT_CLOSE(d, want, 3, 0.0f);
    free(d);
    free(t.p);
    /* double_data packed */
    memset(&t, 0, sizeof t);
    const double dd[3] = {1.5, -2.0, 0.25};
    pw_int(&t, 1, 3);
    pw_int(&t, 2, 11);
    pw_bytes(&t, 10, dd, sizeof dd);
    assert_int_equal(tml_onnx_read_tensor(t.p, t.n, &d, &nd, dims), TML_OK);
    TU_ASSERT_CLOSE(d, want, 3, 0.0f);
    free(d);
    free(t.p);
    /* float16 in int32_data: 1.5 = 0x3e00, -2 = 0xc000, 0.25 = 0x3400 */
    memset(&t, 0, sizeof t);
    pw_int(&t, 1, 3);
    pw_int(&t, 2, 10);
    pw_int(&t, 5, 0x3e00);
    pw_int(&t, 5, 0xc000);
    pw_int(&t, 5, 0x3400);
    assert_int_equal(tml_onnx_read_tensor(t.p, t.n, &d, &nd, dims), TML_OK);
    TU_ASSERT_CLOSE(d, want, 3, 0.0f);
    free(d);
    free(t.p);
    /* int64_data (negative varints) through the internal decoder */
    memset(&t, 0, sizeof t);
    pw_int(&t, 1, 2);
    pw_int(&t, 2, 7);
    pw_int(&t, 7, -1);
    pw_int(&t, 7, 1LL << 40);
    onx_tensor ot;
    assert_int_equal(onx_parse_tensor(t.p, t.p, t.n, 0, &ot), TML_OK);
    int64_t *iv, n;
    assert_int_equal(onx_tensor_i64(&ot, &iv, &n), TML_OK);
    assert_int_equal(n, 2);
    assert_int_equal(iv[0], -1);
    assert_int_equal(iv[1], 1LL << 40);
    free(iv);
    free(t.p);
    /* count mismatch: 2 dims worth of elements, 3 values */
    memset(&t, 0, sizeof t);
    pw_int(&t, 1, 2);
    pw_int(&t, 2, 1);
    pw_bytes(&t, 4, want, sizeof want);
    assert_int_equal(tml_onnx_read_tensor(t.p, t.n, &d, &nd, dims), TML_ERR_FORMAT);
    free(t.p);
    /* int types are not floats */
    memset(&t, 0, sizeof t);
    pw_int(&t, 2, 7);
    assert_int_equal(tml_onnx_read_tensor(t.p, t.n, &d, &nd, dims), TML_ERR_UNSUPPORTED);
    free(t.p);
}

/* ---- bad input ------------------------------------------------------------------------------------- */

/* Import must fail with `want` (or any error when want == 0) and a message. */
static void expect_fail(const uint8_t *p, size_t n, tml_status want, const char *substr)
{
    tml_model *m = NULL;
    tml_status st = tml_onnx_import_mem(p, n, NULL, &m, NULL);
    if (st == TML_OK || (want && st != want) || (substr && !strstr(tml_last_error(), substr)))
        printf("got status %d: %s (wanted %d, '%s')\n", st, tml_last_error(), want, substr ? substr : "");
    assert_int_not_equal(st, TML_OK);
    if (want) assert_int_equal(st, want);
    assert_true(strlen(tml_last_error()) > 0);
    if (substr) assert_non_null(strstr(tml_last_error(), substr));
    assert_null(m);
}

static void test_cycle(void **state)
{
    (void)state;
    mb b = {{0}, 13};
    mb_input(&b, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b, valinfo("y", 2, I64(-1, 4)));
    mb_node(&b, node("Add", "a", 2, S("x", "t2"), 1, S("t1"), 0, NULL));
    mb_node(&b, node("Relu", "r", 1, S("t1"), 1, S("t2"), 0, NULL));
    mb_node(&b, node("Relu", "out", 1, S("t1"), 1, S("y"), 0, NULL));
    pbw p = mb_finish(&b);
    expect_fail(p.p, p.n, TML_ERR_FORMAT, "cycle");
    free(p.p);
    /* a node reading its own output */
    mb b2 = {{0}, 13};
    mb_input(&b2, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b2, valinfo("y", 2, I64(-1, 4)));
    mb_node(&b2, node("Add", "self", 2, S("x", "y"), 1, S("y"), 0, NULL));
    p = mb_finish(&b2);
    expect_fail(p.p, p.n, TML_ERR_FORMAT, "cycle");
    free(p.p);
    /* two producers of one value */
    mb b3 = {{0}, 13};
    mb_input(&b3, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b3, valinfo("y", 2, I64(-1, 4)));
    mb_node(&b3, node("Relu", "r1", 1, S("x"), 1, S("y"), 0, NULL));
    mb_node(&b3, node("Relu", "r2", 1, S("x"), 1, S("y"), 0, NULL));
    p = mb_finish(&b3);
    expect_fail(p.p, p.n, TML_ERR_FORMAT, "two nodes");
    free(p.p);
    /* an input nobody produces */
    mb b4 = {{0}, 13};
    mb_input(&b4, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b4, valinfo("y", 2, I64(-1, 4)));
    mb_node(&b4, node("Add", "a", 2, S("x", "ghost"), 1, S("y"), 0, NULL));
    p = mb_finish(&b4);
    expect_fail(p.p, p.n, TML_ERR_FORMAT, "'ghost' is not produced");
    free(p.p);
}

static void test_bad_tensors(void **state)
{
    (void)state;
    /* huge declared dims with 4 bytes of data: refused before allocating */
    float w = 1;
    mb b = {{0}, 13};
    mb_input(&b, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b, valinfo("y", 2, I64(-1, 3)));
    pbw t = {0};
    pw_int(&t, 1, 1LL << 40);
    pw_int(&t, 1, 1LL << 40);
    pw_int(&t, 2, 1);
    pw_str(&t, 8, "W");
    pw_bytes(&t, 9, &w, 4);
    mb_init(&b, t);
    mb_node(&b, node("MatMul", "mm", 2, S("x", "W"), 1, S("y"), 0, NULL));
    pbw p = mb_finish(&b);
    expect_fail(p.p, p.n, TML_ERR_NOMEM, "larger than");
    free(p.p);
    /* plausible dims (4x3) but only 4 bytes present */
    mb b2 = {{0}, 13};
    mb_input(&b2, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b2, valinfo("y", 2, I64(-1, 3)));
    pbw t2 = {0};
    pw_int(&t2, 1, 4);
    pw_int(&t2, 1, 3);
    pw_int(&t2, 2, 1);
    pw_str(&t2, 8, "W");
    pw_bytes(&t2, 9, &w, 4);
    mb_init(&b2, t2);
    mb_node(&b2, node("MatMul", "mm", 2, S("x", "W"), 1, S("y"), 0, NULL));
    p = mb_finish(&b2);
    expect_fail(p.p, p.n, TML_ERR_FORMAT, "raw_data has 4 bytes");
    free(p.p);
    /* external data */
    mb b3 = {{0}, 13};
    mb_input(&b3, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b3, valinfo("y", 2, I64(-1, 3)));
    pbw t3 = {0}, kv = {0};
    pw_int(&t3, 1, 4);
    pw_int(&t3, 1, 3);
    pw_int(&t3, 2, 1);
    pw_str(&t3, 8, "W");
    pw_str(&kv, 1, "location");
    pw_str(&kv, 2, "weights.bin");
    pw_msg(&t3, 13, &kv);
    pw_int(&t3, 14, 1);
    mb_init(&b3, t3);
    mb_node(&b3, node("MatMul", "mm", 2, S("x", "W"), 1, S("y"), 0, NULL));
    p = mb_finish(&b3);
    expect_fail(p.p, p.n, TML_ERR_UNSUPPORTED, "external");
    free(p.p);
    /* a negative dim */
    mb b4 = {{0}, 13};
    mb_input(&b4, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b4, valinfo("y", 2, I64(-1, 3)));
    pbw t4 = {0};
    pw_int(&t4, 1, -3);
    pw_int(&t4, 2, 1);
    mb_init(&b4, t4);
    p = mb_finish(&b4);
    expect_fail(p.p, p.n, TML_ERR_FORMAT, "negative");
    free(p.p);
    /* a reshape whose shape is computed at run time */
    mb b5 = {{0}, 13};
    mb_input(&b5, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b5, valinfo("y", 2, I64(-1, 4)));
    mb_node(&b5, node("Relu", "r", 1, S("x"), 1, S("s"), 0, NULL));
    mb_node(&b5, node("Reshape", "rs", 2, S("x", "s"), 1, S("y"), 0, NULL));
    p = mb_finish(&b5);
    expect_fail(p.p, p.n, TML_ERR_UNSUPPORTED, "computed at run time");
    free(p.p);
}

static void test_wire_format_errors(void **state)
{
    (void)state;
    /* op_type as a varint */
    mb b = {{0}, 13};
    mb_input(&b, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b, valinfo("y", 2, I64(-1, 4)));
    pbw n = {0};
    pw_str(&n, 1, "x");
    pw_str(&n, 2, "y");
    pw_int(&n, 4, 7);
    mb_node(&b, n);
    pbw p = mb_finish(&b);
    expect_fail(p.p, p.n, TML_ERR_FORMAT, "op_type) has wire type 0");
    free(p.p);
    /* a group (wire type 3) */
    uint8_t grp[] = {0x0b, 0x0c};
    expect_fail(grp, sizeof grp, TML_ERR_FORMAT, "groups");
    /* a varint of 11 bytes */
    uint8_t longv[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_fail(longv, sizeof longv, TML_ERR_FORMAT, "varint");
    /* a length beyond the end */
    uint8_t longl[] = {0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    expect_fail(longl, sizeof longl, TML_ERR_FORMAT, "exceeds");
    /* field number 0 */
    uint8_t f0[] = {0x00, 0x01};
    expect_fail(f0, sizeof f0, TML_ERR_FORMAT, "field number");
    /* empty, and a model without a graph */
    expect_fail((const uint8_t *)"", 0, TML_ERR_FORMAT, "empty");
    uint8_t nog[] = {0x08, 0x07};
    expect_fail(nog, sizeof nog, TML_ERR_FORMAT, "no graph");
    /* unknown fields of every wire type are skipped */
    pbw q = mlp_model(13, "Relu", 0, NULL);
    pbw extra = {0};
    pw_int(&extra, 100, 5);
    pw_str(&extra, 101, "unknown");
    pw_f32(&extra, 102, 1.0f);
    pw_key(&extra, 103, 1);
    pw_raw(&extra, "\0\0\0\0\0\0\0\0", 8);
    pw_raw(&extra, q.p, q.n);
    tml_model *m = NULL;
    assert_int_equal(tml_onnx_import_mem(extra.p, extra.n, NULL, &m, NULL), TML_OK);
    tml_model_free(m);
    free(extra.p);
    free(q.p);
}

/* Deeply nested / recursive messages do not recurse in the reader. */
static void test_deep_nesting(void **state)
{
    (void)state;
    pbw p = {0};
    pw_raw(&p, "\x08\x01", 2);
    for (int i = 0; i < 200; i++) {
        pbw outer = {0};
        pw_msg(&outer, 7, &p);
        p = outer;
    }
    expect_fail(p.p, p.n, 0, NULL);
    free(p.p);
}

/* Every prefix ending at a multiple of 7 bytes, random bytes, flipped bytes:
 * each either imports (then it must also run) or fails with a message. */
static void fuzz_one(const uint8_t *p, size_t n)
{
    tml_model *m = NULL;
    tml_status st = tml_onnx_import_mem(p, n, NULL, &m, NULL);
    if (st) {
        assert_null(m);
        assert_true(strlen(tml_last_error()) > 0);
        return;
    }
    int64_t in = tml_tensor_numel(&m->tensors[m->input]), on = tml_tensor_numel(&m->tensors[m->output]);
    float *x = calloc((size_t)(in * 2), sizeof(float)), *y = calloc((size_t)(on * 2), sizeof(float));
    tml_engine *e = NULL;
    if (x && y && !tml_engine_new(m, 2, NULL, &e)) tml_engine_run(e, x, 2, y);
    tml_engine_free(e);
    free(x);
    free(y);
    tml_model_free(m);
}

static void test_truncation(void **state)
{
    (void)state;
    static const char *const names[] = {"mlp_dyn", "dsnet_dyn", "dsnet_b1", "lenet5_dyn"};
    for (int k = 0; k < 4; k++) {
        size_t n;
        uint8_t *full = fixture_file(names[k], ".onnx", &n);
        if (!full) skip();
        for (size_t len = 0; len < n; len += 7) {
            uint8_t *p = malloc(len ? len : 1); /* exact size: ASan sees any over-read */
            memcpy(p, full, len);
            tml_model *m = NULL;
            tml_status st = tml_onnx_import_mem(p, len, NULL, &m, NULL);
            if (!st) tml_model_free(m);
            assert_int_not_equal(st, TML_OK);
            free(p);
        }
        free(full);
    }
}

static void test_random_and_flips(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 77);
    for (int i = 0; i < 2000; i++) {
        size_t n = 1 + tu_rng_u32(&r) % 300;
        uint8_t *p = malloc(n);
        for (size_t k = 0; k < n; k++) p[k] = (uint8_t)tu_rng_u32(&r);
        fuzz_one(p, n);
        free(p);
    }
    static const char *const names[] = {"mlp_dyn", "dsnet_b1", "lenet5_b1"};
    for (int k = 0; k < 3; k++) {
        size_t n;
        uint8_t *full = fixture_file(names[k], ".onnx", &n);
        if (!full) skip();
        /* the graph structure sits outside the big raw_data blobs: flip there more often */
        for (int i = 0; i < 1500; i++) {
            uint8_t *p = malloc(n);
            memcpy(p, full, n);
            int flips = 1 + (int)(tu_rng_u32(&r) % 3);
            for (int f = 0; f < flips; f++) {
                size_t at = (i & 1) ? tu_rng_u32(&r) % n : n - 1 - tu_rng_u32(&r) % (n < 4000 ? n : 4000);
                p[at] ^= (uint8_t)(1u << (tu_rng_u32(&r) % 8));
            }
            fuzz_one(p, n);
            free(p);
        }
        free(full);
    }
}

/* Initializers without a name (empty keys in the importer's name maps, with
 * no bytes behind them): found by fuzz_onnx, where looking up the second one
 * passed a NULL pointer to memcmp (undefined even for 0 bytes; fatal under
 * UBSan). Two values with the same (empty) name are a format error. */
static void test_unnamed_initializers(void **state)
{
    (void)state;
    static const float W[12] = {1, -2, 0.5f, 0, 1, 1, -1, 0.25f, 2, 3, -1, 0};
    static const float one = 1.0f;
    mb b = {{0}, 13};
    mb_input(&b, valinfo("x", 2, I64(-1, 4)));
    mb_output(&b, valinfo("y", 2, I64(-1, 3)));
    for (int i = 0; i < 2; i++) {
        pbw t = {0};
        pw_int(&t, 1, 1);
        pw_int(&t, 2, 1);
        pw_bytes(&t, 9, &one, sizeof one);
        mb_init(&b, t);
    }
    mb_init(&b, tensor_f("W", 2, I64(4, 3), W));
    mb_node(&b, node("MatMul", "mm", 2, S("x", "W"), 1, S("y"), 0, NULL));
    pbw p = mb_finish(&b);
    tml_model *m = NULL;
    assert_int_equal(import_pb(&p, &m), TML_ERR_FORMAT);
    assert_non_null(strstr(tml_last_error(), "defined twice"));
    assert_null(m);
    free(p.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_encodings),
        cmocka_unit_test(test_matmul_add_relu_fold),
        cmocka_unit_test(test_flatten_permutation),
        cmocka_unit_test(test_channel_arithmetic),
        cmocka_unit_test(test_reduce_mean),
        cmocka_unit_test(test_clip_inputs_and_binding),
        cmocka_unit_test(test_input_shape_option),
        cmocka_unit_test(test_cycle),
        cmocka_unit_test(test_unnamed_initializers),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_wire_format_errors),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_fixture_structure),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_random_and_flips),
        cmocka_unit_test(test_conformance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
