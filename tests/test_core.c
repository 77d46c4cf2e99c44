/*
 * test_core.c - model graph building, validation, topological order, shape
 * inference and cloning; the file writer's rules (lib/core/fileio.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tinyml/tml_core.h"

/* x(28,28,1) -conv 4@3x3 s1 pad1-> (28,28,4) -maxpool 2-> (14,14,4) -dense 10-> (10) */
static tml_model *small_cnn(void)
{
    tml_model *m = tml_model_new();
    int32_t din[3] = {28, 28, 1}, dw[4] = {4, 3, 3, 1}, db[1] = {4}, dfw[2] = {10, 14 * 14 * 4}, dfb[1] = {10};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 3, din, NULL);
    int w = tml_model_add_tensor(m, "c.w", TML_DTYPE_F32, TML_TENSOR_PARAM, 4, dw, NULL);
    int b = tml_model_add_tensor(m, "c.b", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, db, NULL);
    int c = tml_model_add_tensor(m, "c", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int p = tml_model_add_tensor(m, "p", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int fw = tml_model_add_tensor(m, "fc.w", TML_DTYPE_F32, TML_TENSOR_PARAM, 2, dfw, NULL);
    int fb = tml_model_add_tensor(m, "fc.b", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, dfb, NULL);
    int y = tml_model_add_tensor(m, "y", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    /* add nodes out of order on purpose: finalize must sort them */
    int in_fc[3] = {p, fw, fb};
    int nfc = tml_model_add_node(m, "fc", TML_OP_DENSE, 3, in_fc, y);
    int in_p[1] = {c};
    int np = tml_model_add_node(m, "pool", TML_OP_MAXPOOL, 1, in_p, p);
    m->nodes[np].kh = m->nodes[np].kw = 2;
    m->nodes[np].sh = m->nodes[np].sw = 2;
    int in_c[3] = {x, w, b};
    int nc = tml_model_add_node(m, "conv", TML_OP_CONV2D, 3, in_c, c);
    for (int i = 0; i < 4; i++) m->nodes[nc].pad[i] = 1;
    m->nodes[nc].act = TML_ACT_RELU;
    assert_true(nfc >= 0 && np >= 0 && nc >= 0);
    m->input = x;
    m->output = y;
    return m;
}

static void test_finalize_sorts_and_infers(void **state)
{
    (void)state;
    tml_model *m = small_cnn();
    assert_int_equal(tml_model_finalize(m), TML_OK);
    assert_string_equal(m->nodes[0].name, "conv");
    assert_string_equal(m->nodes[1].name, "pool");
    assert_string_equal(m->nodes[2].name, "fc");
    const tml_tensor *c = &m->tensors[tml_model_find_tensor(m, "c")];
    assert_int_equal(c->ndim, 3);
    assert_int_equal(c->dims[0], 28);
    assert_int_equal(c->dims[1], 28);
    assert_int_equal(c->dims[2], 4);
    const tml_tensor *p = &m->tensors[tml_model_find_tensor(m, "p")];
    assert_int_equal(p->dims[0], 14);
    assert_int_equal(p->dims[2], 4);
    const tml_tensor *y = &m->tensors[m->output];
    assert_int_equal(y->ndim, 1);
    assert_int_equal(y->dims[0], 10);
    /* MACs: conv 28*28*4*9, dense 10*784 */
    assert_int_equal(tml_node_macs(m, &m->nodes[0]), 28 * 28 * 4 * 9);
    assert_int_equal(tml_node_macs(m, &m->nodes[2]), 10 * 784);
    assert_int_equal(tml_node_params(m, &m->nodes[0]), 4 * 9 + 4);
    tml_model_free(m);
}

static void test_cycle_is_error(void **state)
{
    (void)state;
    tml_model *m = small_cnn();
    /* make the conv read the pool output: conv -> pool -> conv is a cycle */
    int ci = tml_model_find_node(m, "conv");
    int32_t d[3] = {28, 28, 1};
    (void)d;
    m->nodes[ci].in[0] = tml_model_find_tensor(m, "p");
    assert_int_equal(tml_model_finalize(m), TML_ERR_FORMAT);
    assert_non_null(strstr(tml_last_error(), "cycle"));
    tml_model_free(m);
}

static void test_shape_mismatch(void **state)
{
    (void)state;
    tml_model *m = small_cnn();
    tml_tensor *fw = &m->tensors[tml_model_find_tensor(m, "fc.w")];
    int32_t d[2] = {10, 100};
    assert_int_equal(tml_tensor_resize(fw, 2, d), TML_OK);
    assert_int_equal(tml_model_finalize(m), TML_ERR_SHAPE);
    assert_non_null(strstr(tml_last_error(), "fc"));
    assert_non_null(strstr(tml_last_error(), "784"));
    tml_model_free(m);
}

static void test_window_too_big(void **state)
{
    (void)state;
    tml_model *m = tml_model_new();
    int32_t din[3] = {2, 2, 1}, dw[4] = {1, 5, 5, 1};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 3, din, NULL);
    int w = tml_model_add_tensor(m, "w", TML_DTYPE_F32, TML_TENSOR_PARAM, 4, dw, NULL);
    int y = tml_model_add_tensor(m, "y", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int in[2] = {x, w};
    tml_model_add_node(m, "conv", TML_OP_CONV2D, 2, in, y);
    m->input = x;
    m->output = y;
    assert_int_equal(tml_model_finalize(m), TML_ERR_SHAPE);
    tml_model_free(m);
}

/* add with a constant operand would read a batch's worth of the constant */
static void test_add_constant_refused(void **state)
{
    (void)state;
    tml_model *m = tml_model_new();
    int32_t d[1] = {4};
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 1, d, NULL);
    int c = tml_model_add_tensor(m, "c", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, d, NULL);
    int y = tml_model_add_tensor(m, "y", TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    int in[2] = {x, c};
    tml_model_add_node(m, "add", TML_OP_ADD, 2, in, y);
    m->input = x;
    m->output = y;
    assert_int_equal(tml_model_finalize(m), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "constant"));
    tml_model_free(m);
}

static void test_clone_is_deep(void **state)
{
    (void)state;
    tml_model *m = small_cnn();
    assert_int_equal(tml_model_finalize(m), TML_OK);
    float *w = m->tensors[tml_model_find_tensor(m, "c.w")].data;
    w[0] = 1.5f;
    const char *labels[2] = {"a", "b"};
    assert_int_equal(tml_meta_set_labels(&m->meta, 2, labels), TML_OK);
    assert_int_equal(tml_model_add_history(m, "{\"pass\":\"create\"}"), TML_OK);
    assert_int_equal(tml_model_add_history(m, "{\"pass\":\"train\"}"), TML_OK);
    assert_string_equal(m->meta.history, "[{\"pass\":\"create\"},{\"pass\":\"train\"}]");
    tml_model *c = tml_model_clone(m);
    assert_non_null(c);
    float *cw = c->tensors[tml_model_find_tensor(c, "c.w")].data;
    assert_true(cw != w);
    assert_true(cw[0] == 1.5f);
    w[0] = 2.0f;
    assert_true(cw[0] == 1.5f);
    assert_string_equal(c->meta.labels[1], "b");
    assert_string_equal(c->meta.history, m->meta.history);
    tml_model_free(m);
    tml_model_free(c);
}

static void test_absurd_dims_refused(void **state)
{
    (void)state;
    tml_model *m = tml_model_new();
    int32_t d[4] = {1 << 14, 1 << 14, 1 << 14, 2};
    int id = tml_model_add_tensor(m, "huge", TML_DTYPE_F32, TML_TENSOR_PARAM, 4, d, NULL);
    assert_true(id < 0);
    int32_t neg[1] = {-3};
    id = tml_model_add_tensor(m, "neg", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, neg, NULL);
    assert_true(id < 0);
    tml_model_free(m);
}

/* A set of files is all-or-nothing while writing: when the second path cannot
 * be written (a directory), the first keeps its old content. */
static void test_write_files_atomic(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("core_write_files");
    char a[512], b[512], lnk[512], tgt[512];
    snprintf(a, sizeof a, "%s", tu_path(dir, "a.h"));
    snprintf(b, sizeof b, "%s", tu_path(dir, "b.c"));
    assert_int_equal(tu_write_file(a, "old", 3), 0);
    assert_int_equal(mkdir(b, 0777), 0);
    const char *paths[2] = {a, b};
    const void *bufs[2] = {"new-a", "new-b"};
    size_t lens[2] = {5, 5};
    assert_int_equal(tml_write_files_atomic(2, paths, bufs, lens), TML_ERR_IO);
    assert_non_null(strstr(tml_last_error(), "directory"));
    size_t n = 0;
    uint8_t *got = tu_read_file(a, &n);
    assert_true(n == 3 && memcmp(got, "old", 3) == 0);
    free(got);
    /* both regular: both replaced */
    assert_int_equal(rmdir(b), 0);
    assert_int_equal(tml_write_files_atomic(2, paths, bufs, lens), TML_OK);
    got = tu_read_file(b, &n);
    assert_true(n == 5 && memcmp(got, "new-b", 5) == 0);
    free(got);
    /* a symlink is followed: the target changes, the link stays */
    snprintf(tgt, sizeof tgt, "%s", tu_path(dir, "target"));
    snprintf(lnk, sizeof lnk, "%s", tu_path(dir, "link"));
    assert_int_equal(tu_write_file(tgt, "t", 1), 0);
    unlink(lnk);
    assert_int_equal(symlink("target", lnk), 0);
    assert_int_equal(tml_write_file_atomic(lnk, "via-link", 8), TML_OK);
    struct stat sb;
    assert_int_equal(lstat(lnk, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    got = tu_read_file(tgt, &n);
    assert_true(n == 8 && memcmp(got, "via-link", 8) == 0);
    free(got);
    /* the destination checks agree with the writer */
    assert_int_equal(tml_check_output_file(a), TML_OK);
    assert_int_equal(tml_check_output_file("/nonexistent-dir/x"), TML_ERR_IO);
    assert_int_equal(tml_check_output_dir(tu_path(dir, "new/sub")), TML_OK);
    assert_int_equal(tml_check_output_dir(a), TML_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finalize_sorts_and_infers),
        cmocka_unit_test(test_cycle_is_error),
        cmocka_unit_test(test_shape_mismatch),
        cmocka_unit_test(test_window_too_big),
        cmocka_unit_test(test_clone_is_deep),
        cmocka_unit_test(test_add_constant_refused),
        cmocka_unit_test(test_absurd_dims_refused),
        cmocka_unit_test(test_write_files_atomic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
