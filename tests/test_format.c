/*
 * test_format.c - the .tmf model file (formats/tmf*.c): exact round trips of
 * every op, attribute, dtype, quantization parameter, codebook and encoding;
 * bit packing and Huffman coding; the sizes sparse and clustered tensors
 * reach; corruption (truncation at every byte, byte flips, random and mutated
 * input, crafted headers); loading from files and stdin, atomic saving.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "testutil.h"
#include "tinyml/tml_core.h"
#include "tinyml/tml_format.h"

#include "../formats/tmf_internal.h"

#define D(...) ((const int32_t[]){__VA_ARGS__})
#define IN(...) ((const int[]){__VA_ARGS__})
#define NIN(...) ((int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int)))

/* ---- model building ------------------------------------------------------------------ */

static int add_param(tml_model *m, tu_rng *r, const char *name, int ndim, const int32_t *dims, float lo, float hi)
{
    int64_t n = tml_dims_numel(ndim, dims);
    float *d = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    assert_non_null(d);
    tu_fill_uniform(r, d, (size_t)n, lo, hi);
    int id = tml_model_add_tensor(m, name, TML_DTYPE_F32, TML_TENSOR_PARAM, ndim, dims, d);
    free(d);
    assert_true(id >= 0);
    return id;
}

static int add_act(tml_model *m, const char *name)
{
    int id = tml_model_add_tensor(m, name, TML_DTYPE_F32, TML_TENSOR_ACT, 0, NULL, NULL);
    assert_true(id >= 0);
    return id;
}

static tml_node *add_node(tml_model *m, const char *name, tml_op op, int n_in, const int *in, int out)
{
    int i = tml_model_add_node(m, name, op, n_in, in, out);
    assert_true(i >= 0);
    return &m->nodes[i];
}

static void set_meta(tml_model *m)
{
    const char *labels[10] = {"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"};
    assert_int_equal(tml_meta_set_labels(&m->meta, 10, labels), TML_OK);
    m->meta.name = tml_strdup("full");
    m->meta.arch = tml_strdup("custom");
    m->meta.pre.scale = 1.0f / 255.0f;
    m->meta.pre.n_ch = 3;
    const float mean[3] = {0.485f, 0.456f, -0.0f}, sd[3] = {0.229f, 0.224f, 0.225f};
    memcpy(m->meta.pre.mean, mean, sizeof mean);
    memcpy(m->meta.pre.std, sd, sizeof sd);
    assert_int_equal(tml_model_add_history(m, "{\"pass\":\"prune\",\"sparsity\":0.9,\"acc\":0.8734}"), TML_OK);
    assert_int_equal(tml_model_add_history(m, "{\"pass\":\"cluster\",\"bits\":5,\"note\":\"caf\xc3\xa9\"}"), TML_OK);
    m->meta.extra = tml_strdup("{\"owner\":\"lab\",\"nested\":{\"a\":[1,2.5,\"x\"],\"b\":null}}");
}

/*
 * Every op and every non-default attribute:
 * x(8,8,3) -conv1 3x3 pad1 relu-> (8,8,8) -bn eps 1e-3-> -relu6-> -dw 3x3 s2
 * pad(0,0,1,1) M2 relu6-> (4,4,16) -conv2 groups2 dil2 pad2 no-bias-> (4,4,16);
 * add(dw, conv2) relu -> maxpool 2 s2 dilation (1,2) -> (2,1,16) -> avgpool 3
 * s1 pad1 -> conv3 1x1 (bias null) -> global_avgpool (16) -> reshape (4,4) ->
 * flatten (16) -> dense 10 relu6 -> dropout 0.25 -> relu -> softmax. Nodes are
 * added in reverse: finalize sorts them.
 */
static tml_model *full_model(uint64_t seed)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    tml_model *m = tml_model_new();
    assert_non_null(m);
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 3, D(8, 8, 3), NULL);
    int c1w = add_param(m, &r, "conv1.w", 4, D(8, 3, 3, 3), -1, 1), c1b = add_param(m, &r, "conv1.b", 1, D(8), -0.1f, 0.1f);
    int g = add_param(m, &r, "bn.gamma", 1, D(8), 0.5f, 1.5f), be = add_param(m, &r, "bn.beta", 1, D(8), -1, 1);
    int mu = add_param(m, &r, "bn.mean", 1, D(8), -1, 1), var = add_param(m, &r, "bn.var", 1, D(8), 0.1f, 2);
    int dww = add_param(m, &r, "dw.w", 4, D(1, 3, 3, 16), -1, 1), dwb = add_param(m, &r, "dw.b", 1, D(16), -0.1f, 0.1f);
    int c2w = add_param(m, &r, "conv2.w", 4, D(16, 3, 3, 8), -1, 1);
    int c3w = add_param(m, &r, "conv3.w", 4, D(16, 1, 1, 16), -1, 1);
    int fw = add_param(m, &r, "fc.w", 2, D(10, 16), -1, 1), fb = add_param(m, &r, "fc.b", 1, D(10), -0.1f, 0.1f);
    int c1 = add_act(m, "conv1"), bn = add_act(m, "bn"), r6 = add_act(m, "relu6"), dw = add_act(m, "dw");
    int c2 = add_act(m, "conv2"), sum = add_act(m, "sum"), mp = add_act(m, "maxpool"), ap = add_act(m, "avgpool");
    int c3 = add_act(m, "conv3"), gap = add_act(m, "gap");
    int rs = tml_model_add_tensor(m, "rs", TML_DTYPE_F32, TML_TENSOR_ACT, 2, D(4, 4), NULL);
    int fl = add_act(m, "flat"), fc = add_act(m, "fc"), dr = add_act(m, "drop"), rl = add_act(m, "relu"), y = add_act(m, "y");
    tml_node *n;
    add_node(m, "softmax", TML_OP_SOFTMAX, 1, IN(rl), y);
    add_node(m, "relu", TML_OP_RELU, 1, IN(dr), rl);
    n = add_node(m, "dropout", TML_OP_DROPOUT, 1, IN(fc), dr);
    n->rate = 0.25f;
    n = add_node(m, "fc", TML_OP_DENSE, 3, IN(fl, fw, fb), fc);
    n->act = TML_ACT_RELU6;
    add_node(m, "flatten", TML_OP_RESHAPE, 1, IN(rs), fl);
    add_node(m, "reshape", TML_OP_RESHAPE, 1, IN(gap), rs);
    add_node(m, "gap", TML_OP_GLOBAL_AVGPOOL, 1, IN(c3), gap);
    add_node(m, "conv3", TML_OP_CONV2D, 3, IN(ap, c3w, -1), c3);
    n = add_node(m, "avgpool", TML_OP_AVGPOOL, 1, IN(mp), ap);
    n->kh = n->kw = 3;
    n->pad[0] = n->pad[1] = n->pad[2] = n->pad[3] = 1;
    n = add_node(m, "maxpool", TML_OP_MAXPOOL, 1, IN(sum), mp);
    n->kh = n->kw = 2;
    n->sh = n->sw = 2;
    n->dw = 2;
    n = add_node(m, "add", TML_OP_ADD, 2, IN(dw, c2), sum);
    n->act = TML_ACT_RELU;
    n = add_node(m, "conv2", TML_OP_CONV2D, 2, IN(dw, c2w), c2);
    n->groups = 2;
    n->dh = n->dw = 2;
    n->pad[0] = n->pad[1] = n->pad[2] = n->pad[3] = 2;
    n = add_node(m, "dw", TML_OP_DEPTHWISE_CONV2D, 3, IN(r6, dww, dwb), dw);
    n->sh = n->sw = 2;
    n->pad[2] = n->pad[3] = 1;
    n->depth_mult = 2;
    n->act = TML_ACT_RELU6;
    add_node(m, "relu6", TML_OP_RELU6, 1, IN(bn), r6);
    n = add_node(m, "bn", TML_OP_BATCHNORM, 5, IN(c1, g, be, mu, var), bn);
    n->eps = 1e-3f;
    n = add_node(m, "conv1", TML_OP_CONV2D, 3, IN(x, c1w, c1b), c1);
    n->pad[0] = n->pad[1] = n->pad[2] = n->pad[3] = 1;
    n->act = TML_ACT_RELU;
    m->input = x;
    m->output = y;
    set_meta(m);
    assert_int_equal(tml_model_finalize(m), TML_OK);
    assert_string_equal(m->nodes[0].name, "conv1");
    return m;
}

/* Zeroes a random fraction of a float tensor and marks it pruned. */
static void prune(tml_tensor *t, tu_rng *r, float sparsity)
{
    int64_t n = tml_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (tu_rng_uniform(r, 0, 1) >= sparsity) continue;
        if (t->dtype == TML_DTYPE_F32) ((float *)t->data)[i] = 0.0f;
        if (t->dtype == TML_DTYPE_INT8) ((int8_t *)t->data)[i] = 0;
        if (t->dtype == TML_DTYPE_INT32) ((int32_t *)t->data)[i] = 0;
    }
    t->pruned = 1;
}

/* Shares the weights of an f32 or int8 tensor: k centroids per book (per
 * tensor or per output channel). Pruned tensors get centroid 0 = 0 and a
 * `sparsity` fraction of index-0 elements. Index choice is skewed (small
 * indices more likely) so entropy coding has something to gain. */
static void cluster(tml_tensor *t, tu_rng *r, int k, int bits, int per_channel, float sparsity)
{
    int64_t n = tml_tensor_numel(t);
    tml_codebook *cb = calloc(1, sizeof *cb);
    assert_non_null(cb);
    cb->k = k;
    cb->bits = bits;
    cb->n_books = per_channel ? t->dims[0] : 1;
    cb->centroids = malloc(sizeof(float) * (size_t)(cb->n_books * k));
    cb->index = malloc((size_t)n);
    assert_true(cb->centroids && cb->index);
    for (int i = 0; i < cb->n_books * k; i++) {
        float c = tu_rng_uniform(r, -1, 1);
        if (t->dtype == TML_DTYPE_INT8) c = (float)((int)(tu_rng_u32(r) % 255) - 127);
        if (t->pruned && i % k == 0) c = 0.0f;
        cb->centroids[i] = c;
    }
    int64_t span = n / cb->n_books;
    for (int64_t i = 0; i < n; i++) {
        int ix;
        if (t->pruned && tu_rng_uniform(r, 0, 1) < sparsity) {
            ix = 0;
        } else {
            int lo = t->pruned ? 1 : 0;
            ix = lo;
            while (ix < k - 1 && (tu_rng_u32(r) & 1)) ix++;
        }
        cb->index[i] = (uint8_t)ix;
        float c = cb->centroids[(i / span) * k + ix];
        if (t->dtype == TML_DTYPE_F32) ((float *)t->data)[i] = c;
        else ((int8_t *)t->data)[i] = (int8_t)(int)c;
    }
    t->cb = cb;
}

/* ---- comparisons ------------------------------------------------------------------------ */

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void assert_same_str(const char *a, const char *b)
{
    if (!a || !b) {
        assert_ptr_equal(a, b);
        return;
    }
    assert_string_equal(a, b);
}

static void assert_same_tensor(const tml_tensor *a, const tml_tensor *b, int expect_cb)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->ndim, b->ndim);
    assert_memory_equal(a->dims, b->dims, sizeof(int32_t) * (size_t)a->ndim);
    assert_int_equal(!!a->pruned, !!b->pruned);
    assert_int_equal(a->store_hint, b->store_hint);
    assert_int_equal(a->qbits, b->qbits);
    assert_int_equal(a->q.n, b->q.n);
    if (a->q.n) {
        assert_int_equal(a->q.axis, b->q.axis);
        assert_memory_equal(a->q.scale, b->q.scale, sizeof(float) * (size_t)a->q.n);
        assert_memory_equal(a->q.zero_point, b->q.zero_point, sizeof(int32_t) * (size_t)a->q.n);
    }
    if (a->kind == TML_TENSOR_PARAM) {
        size_t nb = tml_tensor_nbytes(a);
        if (nb && memcmp(a->data, b->data, nb) != 0) {
            fprintf(stderr, "  tensor '%s': data differs\n", a->name);
            fail();
        }
    } else {
        assert_null(b->data);
    }
    if (!expect_cb || !a->cb) {
        assert_null(b->cb);
        return;
    }
    assert_non_null(b->cb);
    assert_int_equal(a->cb->k, b->cb->k);
    assert_int_equal(a->cb->bits, b->cb->bits);
    assert_int_equal(a->cb->n_books, b->cb->n_books);
    for (int i = 0; i < a->cb->n_books * a->cb->k; i++) {
        if (a->dtype == TML_DTYPE_F32)
            assert_int_equal(fbits(a->cb->centroids[i]), fbits(b->cb->centroids[i]));
        else
            assert_true(a->cb->centroids[i] == b->cb->centroids[i]);
    }
    assert_memory_equal(a->cb->index, b->cb->index, (size_t)tml_tensor_numel(a));
}

static void assert_same_model(const tml_model *a, const tml_model *b)
{
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) assert_same_tensor(&a->tensors[i], &b->tensors[i], 1);
    assert_int_equal(a->n_nodes, b->n_nodes);
    for (int i = 0; i < a->n_nodes; i++) {
        const tml_node *x = &a->nodes[i], *y = &b->nodes[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->op, y->op);
        assert_int_equal(x->n_in, y->n_in);
        assert_memory_equal(x->in, y->in, sizeof x->in);
        assert_int_equal(x->out, y->out);
        assert_int_equal(x->kh, y->kh);
        assert_int_equal(x->kw, y->kw);
        assert_int_equal(x->sh, y->sh);
        assert_int_equal(x->sw, y->sw);
        assert_int_equal(x->dh, y->dh);
        assert_int_equal(x->dw, y->dw);
        assert_memory_equal(x->pad, y->pad, sizeof x->pad);
        assert_int_equal(x->groups, y->groups);
        assert_int_equal(x->depth_mult, y->depth_mult);
        assert_int_equal(x->act, y->act);
        assert_int_equal(fbits(x->eps), fbits(y->eps));
        assert_int_equal(fbits(x->rate), fbits(y->rate));
    }
    assert_int_equal(a->input, b->input);
    assert_int_equal(a->output, b->output);
    const tml_meta *p = &a->meta, *q = &b->meta;
    assert_same_str(p->name, q->name);
    assert_same_str(p->arch, q->arch);
    assert_int_equal(p->n_classes, q->n_classes);
    assert_int_equal(!!p->labels, !!q->labels);
    for (int i = 0; p->labels && i < p->n_classes; i++) assert_string_equal(p->labels[i], q->labels[i]);
    assert_int_equal(fbits(p->pre.scale), fbits(q->pre.scale));
    assert_int_equal(p->pre.n_ch, q->pre.n_ch);
    for (int i = 0; i < p->pre.n_ch; i++) {
        assert_int_equal(fbits(p->pre.mean[i]), fbits(q->pre.mean[i]));
        assert_int_equal(fbits(p->pre.std[i]), fbits(q->pre.std[i]));
    }
    assert_same_str(p->history, q->history);
    assert_same_str(p->extra, q->extra);
}

/* write -> read (from an exact-size copy, so ASan sees any over-read) -> write. */
static tml_model *roundtrip(const tml_model *m, const tml_save_opts *o, uint8_t **file, size_t *len)
{
    uint8_t *buf, *buf2;
    size_t n, n2;
    tml_model *back = NULL;
    assert_int_equal(tml_model_write_mem(m, o, &buf, &n), TML_OK);
    uint8_t *exact = malloc(n);
    assert_non_null(exact);
    memcpy(exact, buf, n);
    tml_status st = tml_model_read_mem(exact, n, &back);
    if (st) fprintf(stderr, "  read failed: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    free(exact);
    assert_int_equal(tml_model_write_mem(back, o, &buf2, &n2), TML_OK);
    assert_int_equal(n, n2);
    assert_memory_equal(buf, buf2, n);
    free(buf2);
    if (file) {
        *file = buf;
        *len = n;
    } else {
        free(buf);
    }
    return back;
}

/* ---- chunk surgery ------------------------------------------------------------------------ */

typedef struct chunk_ref {
    size_t off; /* of the length field */
    uint32_t len;
    char type[5];
} chunk_ref;

static int list_chunks(const uint8_t *b, size_t n, chunk_ref *out, int max)
{
    size_t pos = 8;
    int k = 0;
    while (pos + 12 <= n && k < max) {
        out[k].off = pos;
        out[k].len = tml_le32(b + pos);
        memcpy(out[k].type, b + pos + 4, 4);
        out[k].type[4] = '\0';
        if (out[k].len > n - pos - 12) break;
        pos += 12 + out[k].len;
        k++;
    }
    return k;
}

static int find_chunk(const uint8_t *b, size_t n, const char *type, int nth, chunk_ref *c)
{
    chunk_ref all[256];
    int k = list_chunks(b, n, all, 256);
    for (int i = 0; i < k; i++) {
        if (strcmp(all[i].type, type) == 0 && nth-- == 0) {
            *c = all[i];
            return 1;
        }
    }
    return 0;
}

/* Recomputes every chunk CRC (for mutation fuzzing past the CRC check). */
static void fix_crcs(uint8_t *b, size_t n)
{
    chunk_ref all[256];
    int k = list_chunks(b, n, all, 256);
    for (int i = 0; i < k; i++) tml_put_le32(b + all[i].off + 8 + all[i].len, tml_crc32(0, b + all[i].off + 4, all[i].len + 4));
}

static void put_chunk(tml_buf *f, const char *type, const void *payload, size_t n)
{
    size_t at = f->len;
    tml_buf_u32(f, (uint32_t)n);
    tml_buf_put(f, type, 4);
    tml_buf_put(f, payload, n);
    tml_buf_u32(f, tml_crc32(0, f->p + at + 4, n + 4));
}

static void put_sig_head(tml_buf *f, unsigned major, unsigned minor)
{
    static const uint8_t sig[8] = {0x89, 'T', 'M', 'F', 0x0D, 0x0A, 0x1A, 0x0A};
    uint8_t head[8] = {(uint8_t)major, (uint8_t)(major >> 8), (uint8_t)minor, (uint8_t)(minor >> 8), 0, 0, 0, 0};
    tml_buf_put(f, sig, 8);
    put_chunk(f, "HEAD", head, 8);
}

/* A copy of file `b` with chunk c's payload replaced (or the chunk removed
 * when payload is NULL, or a new chunk inserted before it when insert_type). */
static uint8_t *edit_chunk(const uint8_t *b, size_t n, const chunk_ref *c, const char *insert_type, const void *payload, size_t plen,
                           size_t *out_len)
{
    tml_buf f = {0};
    tml_buf_put(&f, b, c->off);
    if (insert_type) {
        put_chunk(&f, insert_type, payload, plen);
        tml_buf_put(&f, b + c->off, n - c->off);
    } else {
        if (payload) put_chunk(&f, c->type, payload, plen);
        size_t end = c->off + 12 + c->len;
        tml_buf_put(&f, b + end, n - end);
    }
    assert_false(f.oom);
    *out_len = f.len;
    return f.p;
}

/* Reads a buffer through an exact-size copy; returns the status. */
static tml_status read_exact(const uint8_t *b, size_t n, tml_model **out)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n) memcpy(c, b, n);
    tml_model *m = NULL;
    tml_status st = tml_model_read_mem(c, n, &m);
    free(c);
    if (out)
        *out = m;
    else
        tml_model_free(m);
    if (st) assert_null(m);
    return st;
}

static void expect_format_error(const uint8_t *b, size_t n, const char *needle)
{
    tml_status st = read_exact(b, n, NULL);
    if (st != TML_ERR_FORMAT || (needle && !strstr(tml_last_error(), needle)))
        fprintf(stderr, "  status %d, message: %s (expected '%s')\n", st, tml_last_error(), needle ? needle : "");
    assert_int_equal(st, TML_ERR_FORMAT);
    if (needle) assert_non_null(strstr(tml_last_error(), needle));
}

/* ---- bits and Huffman ------------------------------------------------------------------- */

static void test_crc32_known_value(void **state)
{
    (void)state;
    assert_int_equal(tml_crc32(0, "123456789", 9), 0xCBF43926u);
    /* incremental use continues a running CRC */
    assert_int_equal(tml_crc32(tml_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

static void test_bits_pack_every_width(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 3, 7, 33, 127};
    tu_rng r;
    tu_rng_seed(&r, 7);
    for (int w = 1; w <= 8; w++) {
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            size_t n = lens[li], nb = tml_bits_bytes(n, w);
            assert_int_equal(nb, (n * (size_t)w + 7) / 8);
            uint8_t v[127], back[127], noisy[127];
            for (size_t i = 0; i < n; i++) {
                v[i] = (uint8_t)(tu_rng_u32(&r) & ((1u << w) - 1));
                noisy[i] = (uint8_t)(v[i] | (tu_rng_u32(&r) << w)); /* high bits must be ignored */
            }
            uint8_t *packed = malloc(nb); /* exact size: ASan catches overruns */
            assert_non_null(packed);
            tml_bits_pack(noisy, n, w, packed);
            tml_bits_unpack(packed, n, w, back);
            if (memcmp(v, back, n) != 0) fprintf(stderr, "  width %d, n %zu: unpack mismatch\n", w, n);
            assert_memory_equal(v, back, n);
            for (size_t i = 0; i < n; i++) assert_int_equal(tml_bits_get(packed, i, w), v[i]);
            /* explicit LSB-first layout: bit b of the stream is byte b/8, bit b%8 */
            for (size_t i = 0; i < n; i++)
                for (int k = 0; k < w; k++) {
                    size_t b = i * (size_t)w + (size_t)k;
                    assert_int_equal((packed[b / 8] >> (b % 8)) & 1, (v[i] >> k) & 1);
                }
            size_t used = n * (size_t)w;
            if (used % 8) assert_int_equal(packed[nb - 1] >> (used % 8), 0); /* zero padding */
            free(packed);
        }
    }
}

/* Encodes, decodes from an exact-size copy, checks every prefix is refused. */
static size_t huff_roundtrip(const uint8_t *sym, size_t n, int w)
{
    tml_buf b = {0};
    assert_int_equal(tml_huff_encode(sym, n, w, &b), TML_OK);
    uint8_t *copy = malloc(b.len), *out = malloc(n ? n : 1);
    assert_true(copy && out);
    memcpy(copy, b.p, b.len);
    size_t used = 0;
    tml_status st = tml_huff_decode(copy, b.len, n, w, out, &used);
    if (st) fprintf(stderr, "  huffman decode: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    assert_int_equal(used, b.len);
    if (n) assert_memory_equal(out, sym, n);
    for (size_t k = 0; k < b.len; k += 1 + b.len / 64) {
        uint8_t *t = malloc(k ? k : 1);
        memcpy(t, b.p, k);
        assert_int_equal(tml_huff_decode(t, k, n, w, out, &used), TML_ERR_FORMAT);
        free(t);
    }
    size_t len = b.len;
    free(copy);
    free(out);
    tml_buf_free(&b);
    return len;
}

static void test_huffman_skewed_beats_fixed_width(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    enum { N = 5000 };
    static uint8_t sym[N];
    for (int w = 2; w <= 8; w++) {
        for (int i = 0; i < N; i++) { /* geometric: P(s) ~ 2^-(s+1) */
            int s = 0;
            while (s < (1 << w) - 1 && (tu_rng_u32(&r) & 1)) s++;
            sym[i] = (uint8_t)s;
        }
        size_t coded = huff_roundtrip(sym, N, w);
        size_t fixed = tml_bits_bytes(N, w);
        /* ~2 bits/symbol against w bits */
        assert_true(coded < fixed || w == 2);
        assert_true(coded < (size_t)N * 2 / 8 + 200);
    }
    /* odd lengths at every width */
    for (int w = 1; w <= 8; w++) {
        static const size_t lens[] = {0, 1, 3, 7, 33, 127};
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            for (size_t i = 0; i < lens[li]; i++) sym[i] = (uint8_t)(tu_rng_u32(&r) & ((1u << w) - 1));
            huff_roundtrip(sym, lens[li], w);
        }
    }
}

static void test_huffman_one_symbol_and_256_symbols(void **state)
{
    (void)state;
    uint8_t sym[1024];
    /* one-symbol alphabet: the single 1-bit code '0' */
    memset(sym, 5, sizeof sym);
    size_t len = huff_roundtrip(sym, 1000, 3);
    assert_int_equal(len, 4 + 4 + 1000 / 8);
    memset(sym, 255, sizeof sym);
    huff_roundtrip(sym, 1, 8);
    huff_roundtrip(sym, 1023, 8);
    /* a '1' bit is not a code of a one-symbol alphabet */
    tml_buf b = {0};
    assert_int_equal(tml_huff_encode(sym, 8, 3, &b), TML_OK);
    b.p[b.len - 1] = 0x01;
    uint8_t out[8];
    size_t used;
    assert_int_equal(tml_huff_decode(b.p, b.len, 8, 3, out, &used), TML_ERR_FORMAT);
    tml_buf_free(&b);
    /* all 256 symbols, each once (and in random order): every code is 8 bits */
    tu_rng r;
    tu_rng_seed(&r, 3);
    for (int i = 0; i < 256; i++) sym[i] = (uint8_t)i;
    len = huff_roundtrip(sym, 256, 8);
    assert_int_equal(len, 4 + 128 + 256);
    for (int i = 255; i > 0; i--) {
        int j = (int)(tu_rng_u32(&r) % (uint32_t)(i + 1));
        uint8_t t = sym[i];
        sym[i] = sym[j];
        sym[j] = t;
    }
    huff_roundtrip(sym, 256, 8);
}

/* Cost of an optimal (unlimited) Huffman code: sum of all merge weights. */
static uint64_t huffman_cost_ref(const uint64_t *f, int n)
{
    uint64_t w[256], cost = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (f[i]) w[k++] = f[i];
    if (k == 1) return w[0];
    while (k > 1) {
        for (int pass = 0; pass < 2; pass++) { /* move the two smallest to the end */
            int mi = 0;
            for (int i = 1; i < k - pass; i++)
                if (w[i] < w[mi]) mi = i;
            uint64_t t = w[mi];
            w[mi] = w[k - 1 - pass];
            w[k - 1 - pass] = t;
        }
        w[k - 2] += w[k - 1];
        cost += w[k - 2];
        k--;
    }
    return cost;
}

static void check_lengths(const uint64_t *f, int n, int maxlen, uint64_t *cost)
{
    uint8_t len[256];
    assert_int_equal(tml_huff_lengths(f, n, maxlen, len), TML_OK);
    uint64_t kraft = 0, c = 0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(len[i] == 0, f[i] == 0);
        assert_true(len[i] <= maxlen);
        if (len[i]) kraft += (uint64_t)1 << (24 - len[i]);
        c += f[i] * len[i];
        used += f[i] != 0;
    }
    if (used > 1) assert_int_equal(kraft, (uint64_t)1 << 24); /* complete code */
    *cost = c;
}

static void test_huffman_length_limit(void **state)
{
    (void)state;
    /* Fibonacci frequencies: an unlimited Huffman code would be 29 bits deep */
    uint64_t f[256] = {0}, cost;
    f[0] = f[1] = 1;
    for (int i = 2; i < 30; i++) f[i] = f[i - 1] + f[i - 2];
    check_lengths(f, 32, TML_HUFF_MAXLEN, &cost);
    uint64_t opt = huffman_cost_ref(f, 32);
    assert_true(cost >= opt);
    /* with room to spare, package-merge is exactly Huffman-optimal */
    tu_rng r;
    tu_rng_seed(&r, 5);
    for (int trial = 0; trial < 200; trial++) {
        int n = 2 + (int)(tu_rng_u32(&r) % 255);
        for (int i = 0; i < 256; i++) f[i] = i < n && (tu_rng_u32(&r) % 4) ? 1 + tu_rng_u32(&r) % 1000 : 0;
        f[0] = f[0] ? f[0] : 1;
        f[1] = f[1] ? f[1] : 1;
        check_lengths(f, n, 24, &cost);
        assert_int_equal(cost, huffman_cost_ref(f, n));
        uint64_t lim;
        check_lengths(f, n, 9, &lim);
        assert_true(lim >= cost);
    }
    /* a real stream whose natural code is deeper than 15 bits round-trips */
    enum { NF = 22 };
    uint64_t fib[NF];
    fib[0] = fib[1] = 1;
    size_t total = 2;
    for (int i = 2; i < NF; i++) {
        fib[i] = fib[i - 1] + fib[i - 2];
        total += fib[i];
    }
    uint8_t *sym = malloc(total);
    size_t k = 0;
    for (int i = 0; i < NF; i++)
        for (uint64_t j = 0; j < fib[i]; j++) sym[k++] = (uint8_t)i;
    huff_roundtrip(sym, total, 5);
    free(sym);
}

static void test_huffman_rejects_bad_tables(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t used;
    /* w = 2: size 2, table lengths {1,1,1,0}: oversubscribed */
    uint8_t over[] = {3, 0, 0, 0, 0x11, 0x01, 0x00};
    assert_int_equal(tml_huff_decode(over, sizeof over, 4, 2, out, &used), TML_ERR_FORMAT);
    assert_non_null(strstr(tml_last_error(), "oversubscribed"));
    /* {2,2,2,0}: incomplete */
    uint8_t inc[] = {3, 0, 0, 0, 0x22, 0x02, 0x00};
    assert_int_equal(tml_huff_decode(inc, sizeof inc, 4, 2, out, &used), TML_ERR_FORMAT);
    assert_non_null(strstr(tml_last_error(), "incomplete"));
    /* no symbols for a non-empty stream */
    uint8_t none[] = {3, 0, 0, 0, 0x00, 0x00, 0xff};
    assert_int_equal(tml_huff_decode(none, sizeof none, 4, 2, out, &used), TML_ERR_FORMAT);
    /* size field past the end */
    uint8_t big[] = {0xff, 0xff, 0xff, 0x7f, 0x11};
    assert_int_equal(tml_huff_decode(big, sizeof big, 4, 2, out, &used), TML_ERR_FORMAT);
    /* valid code {1,1} but too few bits for 16 symbols */
    uint8_t shortb[] = {2, 0, 0, 0, 0x11, 0x00};
    assert_int_equal(tml_huff_decode(shortb, sizeof shortb, 16, 2, out, &used), TML_ERR_FORMAT);
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_roundtrip_full_model_exact(void **state)
{
    (void)state;
    tml_model *m = full_model(1);
    uint8_t *file;
    size_t len;
    tml_model *back = roundtrip(m, NULL, &file, &len);
    assert_same_model(m, back);
    /* metadata is kept as written, unknown keys included */
    assert_string_equal(back->meta.extra, "{\"owner\":\"lab\",\"nested\":{\"a\":[1,2.5,\"x\"],\"b\":null}}");
    assert_string_equal(back->meta.history, m->meta.history);
    assert_non_null(strstr(back->meta.history, "\"acc\":0.8734"));
    /* chunk order: HEAD META TNSR... GRPH END, one TNSR per tensor */
    chunk_ref c[64];
    int k = list_chunks(file, len, c, 64);
    assert_int_equal(k, 2 + m->n_tensors + 2);
    assert_string_equal(c[0].type, "HEAD");
    assert_string_equal(c[1].type, "META");
    for (int i = 0; i < m->n_tensors; i++) assert_string_equal(c[2 + i].type, "TNSR");
    assert_string_equal(c[k - 2].type, "GRPH");
    assert_string_equal(c[k - 1].type, "END ");
    assert_int_equal(c[k - 1].off + 12, len);
    /* deterministic: the same model gives the same bytes */
    uint8_t *again;
    size_t alen;
    assert_int_equal(tml_model_write_mem(m, NULL, &again, &alen), TML_OK);
    assert_int_equal(alen, len);
    assert_memory_equal(again, file, len);
    free(again);
    free(file);
    tml_model_free(back);
    /* JSON escapes are read as what they mean; the canonical text is kept */
    free(m->meta.history);
    m->meta.history = tml_strdup("[ {\"note\": \"caf\\u00e9\", \"x\": 1.50} ]");
    back = roundtrip(m, NULL, NULL, NULL);
    assert_string_equal(back->meta.history, "[{\"note\":\"caf\xc3\xa9\",\"x\":1.5}]");
    tml_model_free(back);
    tml_model_free(m);
}

static void test_roundtrip_bare_model(void **state)
{
    (void)state;
    /* a bare model: no name/arch/labels/extra */
    tml_model *m = tml_model_new();
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 1, D(3), NULL);
    int y = add_act(m, "y");
    add_node(m, "sm", TML_OP_SOFTMAX, 1, IN(x), y);
    m->input = x;
    m->output = y;
    m->meta.n_classes = 3;
    assert_int_equal(tml_model_finalize(m), TML_OK);
    tml_model *back = roundtrip(m, NULL, NULL, NULL);
    assert_same_model(m, back);
    assert_null(back->meta.name);
    assert_null(back->meta.labels);
    assert_null(back->meta.extra);
    assert_int_equal(back->meta.n_classes, 3);
    assert_string_equal(back->meta.history, "[]");
    tml_model_free(back);
    tml_model_free(m);
}

/* The JSON text of a node, e.g. node_json(g, "conv1") -> "{\"name\":\"conv1\",...}" (static). */
static const char *node_json(const char *g, const char *name)
{
    static char out[1024];
    char key[80];
    snprintf(key, sizeof key, "{\"name\":\"%s\"", name);
    const char *a = strstr(g, key);
    assert_non_null(a);
    const char *b = strchr(a, '}');
    /* no node JSON nests objects, so the first '}' closes it */
    snprintf(out, sizeof out, "%.*s", (int)(b - a + 1), a);
    return out;
}

static void test_graph_and_meta_json_text(void **state)
{
    (void)state;
    tml_model *m = full_model(12);
    char *g = NULL, *meta = NULL;
    assert_int_equal(tml_graph_to_json(m, &g), TML_OK);
    assert_non_null(strstr(g, "{\"input\":\"x\",\"output\":\"y\",\"nodes\":["));
    assert_string_equal(node_json(g, "conv1"),
                        "{\"name\":\"conv1\",\"op\":\"conv2d\",\"in\":[\"x\",\"conv1.w\",\"conv1.b\"],\"out\":\"conv1\","
                        "\"pad\":[1,1,1,1],\"act\":\"relu\"}");
    assert_string_equal(node_json(g, "conv3"), "{\"name\":\"conv3\",\"op\":\"conv2d\",\"in\":[\"avgpool\",\"conv3.w\",null],\"out\":\"conv3\"}");
    assert_string_equal(node_json(g, "conv2"), "{\"name\":\"conv2\",\"op\":\"conv2d\",\"in\":[\"dw\",\"conv2.w\"],\"out\":\"conv2\","
                                               "\"dilation\":[2,2],\"pad\":[2,2,2,2],\"groups\":2}");
    assert_string_equal(node_json(g, "dw"), "{\"name\":\"dw\",\"op\":\"depthwise_conv2d\",\"in\":[\"relu6\",\"dw.w\",\"dw.b\"],"
                                            "\"out\":\"dw\",\"stride\":[2,2],\"pad\":[0,0,1,1],\"depth_mult\":2,\"act\":\"relu6\"}");
    assert_string_equal(node_json(g, "maxpool"), "{\"name\":\"maxpool\",\"op\":\"maxpool\",\"in\":[\"sum\"],\"out\":\"maxpool\","
                                                 "\"kernel\":[2,2],\"stride\":[2,2],\"dilation\":[1,2]}");
    assert_string_equal(node_json(g, "bn"), "{\"name\":\"bn\",\"op\":\"batchnorm\",\"in\":[\"conv1\",\"bn.gamma\",\"bn.beta\","
                                            "\"bn.mean\",\"bn.var\"],\"out\":\"bn\",\"eps\":0.001}");
    assert_string_equal(node_json(g, "dropout"), "{\"name\":\"dropout\",\"op\":\"dropout\",\"in\":[\"fc\"],\"out\":\"drop\",\"rate\":0.25}");
    assert_string_equal(node_json(g, "flatten"), "{\"name\":\"flatten\",\"op\":\"reshape\",\"in\":[\"rs\"],\"out\":\"flat\"}");
    assert_int_equal(tml_meta_to_json(&m->meta, &meta), TML_OK);
    assert_non_null(strstr(meta, "{\"name\":\"full\",\"arch\":\"custom\",\"classes\":10,\"labels\":[\"t-shirt\","));
    assert_non_null(strstr(meta, "\"preprocess\":{\"scale\":0.003921569,\"mean\":[0.485,0.456,-0],\"std\":[0.229,0.224,0.225]}"));
    assert_non_null(strstr(meta, "\"history\":[{\"pass\":\"prune\""));
    assert_non_null(strstr(meta, "],\"owner\":\"lab\",\"nested\":{"));
    free(g);
    free(meta);
    tml_model_free(m);
}

static void test_float_json_bit_exact(void **state)
{
    (void)state;
    static const float special[] = {1.0f / 255.0f, 0.1f, -0.0f, 0.0f, FLT_MIN, 1e-45f, FLT_MAX, -FLT_MAX, 0.333333343f,
                                    1e-5f, 123456.789f, 16777216.0f, 3.0f, 1e30f, 7.006492e-45f, 2.5f};
    tu_rng r;
    tu_rng_seed(&r, 99);
    tml_model *m = full_model(2);
    for (int trial = 0; trial < 150; trial++) {
        float v[9];
        for (int i = 0; i < 9; i++) {
            if (trial < 2) {
                v[i] = special[(trial * 9 + i) % (int)(sizeof special / sizeof special[0])];
            } else {
                uint32_t u;
                do u = tu_rng_u32(&r);
                while (((u >> 23) & 0xff) == 0xff); /* finite */
                memcpy(&v[i], &u, sizeof u);
            }
        }
        /* the reader refuses a zero scale and stds <= 0 (tml_model_check_meta):
         * keep the bit patterns, drop the sign or the zero */
        m->meta.pre.scale = v[0] != 0.0f ? v[0] : FLT_MIN;
        m->meta.pre.n_ch = 3;
        for (int i = 0; i < 3; i++) {
            m->meta.pre.mean[i] = v[1 + i];
            m->meta.pre.std[i] = fabsf(v[4 + i]) > 0.0f ? fabsf(v[4 + i]) : FLT_MIN;
        }
        /* eps must stay > 0 and rate in [0,1) for finalize */
        m->nodes[tml_model_find_node(m, "bn")].eps = fabsf(v[7]) > 0 ? fabsf(v[7]) : 1e-3f;
        m->nodes[tml_model_find_node(m, "dropout")].rate = fmodf(fabsf(v[8]), 1.0f);
        tml_model *back = roundtrip(m, NULL, NULL, NULL);
        assert_same_model(m, back);
        tml_model_free(back);
    }
    /* non-finite values are written (as "NaN" / "Infinity" strings) but a
     * model whose preprocessing holds them is refused when read */
    m->meta.pre.scale = INFINITY;
    m->meta.pre.mean[0] = -INFINITY;
    m->meta.pre.std[0] = NAN;
    uint8_t *buf;
    size_t n;
    assert_int_equal(tml_model_write_mem(m, NULL, &buf, &n), TML_OK);
    tml_model *back = NULL;
    assert_int_equal(tml_model_read_mem(buf, n, &back), TML_ERR_FORMAT);
    assert_non_null(strstr(tml_last_error(), "scale"));
    assert_null(back);
    free(buf);
    tml_model_free(m);
}

/* int8 activations and weights, per-channel and per-tensor quantization, int32 bias. */
static tml_model *int8_model(uint64_t seed, float sparsity)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    tml_model *m = tml_model_new();
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_INT8, TML_TENSOR_ACT, 3, D(6, 6, 2), NULL);
    int8_t w8[4 * 3 * 3 * 2];
    tu_fill_int8(&r, w8, sizeof w8, -127, 127);
    int w = tml_model_add_tensor(m, "conv.w", TML_DTYPE_INT8, TML_TENSOR_PARAM, 4, D(4, 3, 3, 2), w8);
    int32_t b32[4] = {-100000, 5, 0, 2147483647};
    int b = tml_model_add_tensor(m, "conv.b", TML_DTYPE_INT32, TML_TENSOR_PARAM, 1, D(4), b32);
    int y = tml_model_add_tensor(m, "y", TML_DTYPE_INT8, TML_TENSOR_ACT, 0, NULL, NULL);
    add_node(m, "conv", TML_OP_CONV2D, 3, IN(x, w, b), y);
    m->input = x;
    m->output = y;
    float xs = 0.05f, ys = 0.11f, ws[4] = {0.01f, 0.02f, 0.003f, 1e-7f}, bs[4];
    int32_t xz = -3, yz = 7, zeros[4] = {0};
    for (int i = 0; i < 4; i++) bs[i] = xs * ws[i];
    assert_int_equal(tml_tensor_set_quant(&m->tensors[x], -1, 1, &xs, &xz), TML_OK);
    assert_int_equal(tml_tensor_set_quant(&m->tensors[y], -1, 1, &ys, &yz), TML_OK);
    assert_int_equal(tml_tensor_set_quant(&m->tensors[w], 0, 4, ws, zeros), TML_OK);
    assert_int_equal(tml_tensor_set_quant(&m->tensors[b], 0, 4, bs, zeros), TML_OK);
    if (sparsity > 0) prune(&m->tensors[w], &r, sparsity);
    assert_int_equal(tml_model_finalize(m), TML_OK);
    return m;
}

static void test_roundtrip_quant_int8_int32(void **state)
{
    (void)state;
    for (int s = 0; s < 2; s++) {
        tml_model *m = int8_model(4, s ? 0.7f : 0.0f);
        tml_model *back = roundtrip(m, NULL, NULL, NULL);
        assert_same_model(m, back);
        const tml_tensor *w = &back->tensors[tml_model_find_tensor(back, "conv.w")];
        assert_int_equal(w->q.axis, 0);
        assert_int_equal(w->q.n, 4);
        assert_int_equal(back->tensors[back->input].dtype, TML_DTYPE_INT8);
        assert_int_equal(back->tensors[back->input].q.zero_point[0], -3);
        assert_int_equal(((const int32_t *)back->tensors[tml_model_find_tensor(back, "conv.b")].data)[3], 2147483647);
        tml_tensor_storage st;
        assert_int_equal(tml_tensor_storage_plan(w, NULL, &st), TML_OK);
        if (s) assert_int_not_equal(st.layout, TML_LAYOUT_DENSE);
        tml_model_free(back);
        tml_model_free(m);
    }
}

static void test_special_float_bits_roundtrip(void **state)
{
    (void)state;
    tml_model *m = full_model(3);
    tml_tensor *t = &m->tensors[tml_model_find_tensor(m, "fc.w")];
    float *d = t->data;
    uint32_t pats[] = {0x80000000u /* -0 */, 0x7fc12345u /* quiet NaN, payload */, 0x7f800001u /* signalling NaN */,
                       0xffc00000u, 0x7f800000u /* inf */, 0x00000001u /* smallest denormal */, 0x00000000u};
    for (int i = 0; i < 160; i++) {
        uint32_t u = pats[i % 7];
        if (i % 3 == 0) u = 0; /* mostly zeros: a sparse layout is chosen */
        memcpy(&d[i], &u, sizeof u);
    }
    t->pruned = 1;
    tml_tensor_storage st;
    assert_int_equal(tml_tensor_storage_plan(t, NULL, &st), TML_OK);
    /* -0.0f is not a zero bit pattern: stored explicitly */
    int64_t nz = 0;
    for (int i = 0; i < 160; i++) nz += fbits(d[i]) != 0;
    if (st.layout == TML_LAYOUT_BITMAP) assert_int_equal(st.stored_values, nz);
    tml_model *back = roundtrip(m, NULL, NULL, NULL);
    assert_same_model(m, back);
    tml_model_free(back);
    tml_model_free(m);
}

/* ---- sizes --------------------------------------------------------------------------------------- */

static int64_t chunk_bytes_of(const tml_model *m, const char *name, const tml_save_opts *o, tml_tensor_storage *st)
{
    tml_tensor_storage s;
    assert_int_equal(tml_tensor_storage_plan(&m->tensors[tml_model_find_tensor(m, name)], o, &s), TML_OK);
    if (st) *st = s;
    return s.bytes;
}

static void test_pruned_tensors_shrink_with_sparsity(void **state)
{
    (void)state;
    static const float sp[] = {0.5f, 0.8f, 0.9f, 0.95f, 0.99f};
    for (size_t k = 0; k < sizeof sp / sizeof sp[0]; k++) {
        tu_rng r;
        tu_rng_seed(&r, 100 + k);
        tml_model *m = tml_model_new();
        int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 1, D(256), NULL);
        int w = add_param(m, &r, "w", 2, D(64, 256), -1, 1);
        int y = add_act(m, "y");
        add_node(m, "fc", TML_OP_DENSE, 2, IN(x, w), y);
        m->input = x;
        m->output = y;
        assert_int_equal(tml_model_finalize(m), TML_OK);
        tml_save_opts plain;
        tml_save_opts_default(&plain);
        plain.allow_entropy = 0;
        int64_t dense = chunk_bytes_of(m, "w", &plain, NULL);
        assert_true(dense >= 64 * 256 * 4);
        prune(&m->tensors[w], &r, sp[k]);
        tml_tensor_storage st;
        int64_t sparse = chunk_bytes_of(m, "w", NULL, &st);
        double ratio = (double)sparse / (double)dense, keep = 1.0 - sp[k];
        fprintf(stderr, "  sparsity %.2f: %lld -> %lld bytes (%.3f), layout %d g entropy %d\n", sp[k], (long long)dense,
                (long long)sparse, ratio, st.layout, st.entropy);
        assert_int_not_equal(st.layout, TML_LAYOUT_DENSE);
        assert_true(ratio < keep + 0.08); /* values cost `keep`; positions a few % */
        if (sp[k] == 0.9f) assert_true(ratio < 0.20);
        /* the sparse layouts need leave: pruned flag, allow_sparse, the store hint */
        tml_save_opts o;
        tml_save_opts_default(&o);
        o.allow_sparse = 0;
        chunk_bytes_of(m, "w", &o, &st);
        assert_int_equal(st.layout, TML_LAYOUT_DENSE);
        m->tensors[w].store_hint = TML_STORE_ENTROPY;
        chunk_bytes_of(m, "w", NULL, &st);
        assert_int_equal(st.layout, TML_LAYOUT_DENSE);
        m->tensors[w].store_hint = TML_STORE_SPARSE | TML_STORE_ENTROPY;
        tml_model *back = roundtrip(m, NULL, NULL, NULL);
        assert_same_model(m, back);
        tml_model_free(back);
        tml_model_free(m);
    }
}

static tml_model *cluster_model(uint64_t seed, tml_dtype dt, int k, int bits, int per_channel, float sparsity)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    tml_model *m = tml_model_new();
    int x = tml_model_add_tensor(m, "x", dt, TML_TENSOR_ACT, 1, D(200), NULL);
    int w = tml_model_add_tensor(m, "w", dt, TML_TENSOR_PARAM, 2, D(48, 200), NULL);
    int y = tml_model_add_tensor(m, "y", dt, TML_TENSOR_ACT, 0, NULL, NULL);
    add_node(m, "fc", TML_OP_DENSE, 2, IN(x, w), y);
    m->input = x;
    m->output = y;
    m->tensors[w].pruned = sparsity > 0;
    cluster(&m->tensors[w], &r, k, bits, per_channel, sparsity);
    assert_int_equal(tml_model_finalize(m), TML_OK);
    return m;
}

static void test_clustered_tensors_roundtrip_and_shrink(void **state)
{
    (void)state;
    struct {
        tml_dtype dt;
        int k, bits, per_channel;
        float sparsity;
    } cases[] = {
        {TML_DTYPE_F32, 32, 5, 0, 0.0f}, {TML_DTYPE_F32, 16, 4, 1, 0.0f}, {TML_DTYPE_INT8, 8, 3, 0, 0.0f},
        {TML_DTYPE_INT8, 16, 4, 1, 0.0f}, {TML_DTYPE_F32, 8, 3, 0, 0.8f}, {TML_DTYPE_F32, 5, 3, 1, 0.9f},
        {TML_DTYPE_INT8, 4, 2, 1, 0.6f}, {TML_DTYPE_F32, 256, 8, 0, 0.0f}, {TML_DTYPE_F32, 1, 1, 0, 0.0f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tml_model *m = cluster_model(200 + c, cases[c].dt, cases[c].k, cases[c].bits, cases[c].per_channel, cases[c].sparsity);
        tml_tensor *w = &m->tensors[tml_model_find_tensor(m, "w")];
        tml_tensor_storage st, raw;
        int64_t bytes = chunk_bytes_of(m, "w", NULL, &st);
        tml_save_opts o;
        tml_save_opts_default(&o);
        o.allow_cluster = o.allow_sparse = o.allow_entropy = 0;
        chunk_bytes_of(m, "w", &o, &raw);
        fprintf(stderr, "  case %zu: %s k=%d bits=%d books=%d sparsity %.1f: %lld bytes (raw %lld), layout %d entropy %d\n", c,
                tml_dtype_name(cases[c].dt), cases[c].k, cases[c].bits, w->cb->n_books, cases[c].sparsity, (long long)bytes,
                (long long)raw.bytes, st.layout, st.entropy);
        assert_int_equal(st.valcode, TML_VAL_CLUSTER);
        size_t esz = tml_dtype_size(cases[c].dt);
        /* indices cost `bits` of 8*esz bits, plus the codebook; entropy coding and pruning only help */
        double bound = (double)cases[c].bits / (8.0 * (double)esz) + 0.04 +
                       (double)(w->cb->n_books * cases[c].k * esz + 100) / (double)raw.bytes;
        assert_true((double)bytes / (double)raw.bytes < bound + 0.02);
        if (cases[c].sparsity > 0) {
            /* sparse layouts were tried: never worse than dense-only (which
             * can win: 2-bit indices entropy-coded are cheaper than positions) */
            tml_save_opts nosp;
            tml_save_opts_default(&nosp);
            nosp.allow_sparse = 0;
            assert_true(bytes <= chunk_bytes_of(m, "w", &nosp, NULL));
            if (cases[c].bits >= 3) assert_int_not_equal(st.layout, TML_LAYOUT_DENSE);
        }
        tml_model *back = roundtrip(m, NULL, NULL, NULL);
        assert_same_model(m, back);
        tml_model_free(back);
        /* without clustering the tensor is written RAW and comes back plain */
        o.allow_cluster = 0;
        o.allow_sparse = o.allow_entropy = 1;
        back = roundtrip(m, &o, NULL, NULL);
        const tml_tensor *bw = &back->tensors[tml_model_find_tensor(back, "w")];
        assert_same_tensor(w, bw, 0);
        tml_model_free(back);
        tml_model_free(m);
    }
}

static void test_stale_codebook_written_raw(void **state)
{
    (void)state;
    tml_model *m = cluster_model(300, TML_DTYPE_F32, 8, 3, 0, 0.0f);
    tml_tensor *w = &m->tensors[tml_model_find_tensor(m, "w")];
    ((float *)w->data)[17] += 1.0f; /* the data no longer matches its codebook */
    tml_tensor_storage st;
    chunk_bytes_of(m, "w", NULL, &st);
    assert_int_equal(st.valcode, TML_VAL_RAW);
    tml_model *back = roundtrip(m, NULL, NULL, NULL);
    assert_same_tensor(w, &back->tensors[tml_model_find_tensor(back, "w")], 0);
    tml_model_free(back);
    tml_model_free(m);
}

static void test_deflate_and_huffman_are_chosen(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 400);
    /* f32 values from a small set, not clustered: only deflate can exploit it */
    tml_model *m = cluster_model(401, TML_DTYPE_F32, 4, 2, 0, 0.0f);
    tml_tensor *w = &m->tensors[tml_model_find_tensor(m, "w")];
    tml_codebook_free(w->cb);
    w->cb = NULL;
    tml_tensor_storage st;
    int64_t bytes = chunk_bytes_of(m, "w", NULL, &st);
    assert_int_equal(st.entropy, TML_ENTROPY_DEFLATE);
    assert_true(bytes < 48 * 200 * 4 / 4);
    tml_model *back = roundtrip(m, NULL, NULL, NULL);
    assert_same_model(m, back);
    tml_model_free(back);
    /* no entropy coding when the hint or the options say no */
    w->store_hint = TML_STORE_SPARSE;
    chunk_bytes_of(m, "w", NULL, &st);
    assert_int_equal(st.entropy, TML_ENTROPY_NONE);
    tml_model_free(m);
    /* skewed cluster indices: entropy coding beats fixed width */
    m = cluster_model(402, TML_DTYPE_F32, 16, 4, 0, 0.0f);
    bytes = chunk_bytes_of(m, "w", NULL, &st);
    tml_save_opts o;
    tml_save_opts_default(&o);
    o.allow_entropy = 0;
    int64_t plain = chunk_bytes_of(m, "w", &o, NULL);
    fprintf(stderr, "  skewed 4-bit indices: %lld bytes entropy-coded (%d) vs %lld\n", (long long)bytes, st.entropy, (long long)plain);
    assert_int_not_equal(st.entropy, TML_ENTROPY_NONE);
    assert_true(bytes < plain * 7 / 10);
    tml_model_free(m);
}

static void test_storage_plan_matches_file(void **state)
{
    (void)state;
    tml_model *models[4] = {full_model(5), int8_model(6, 0.6f), cluster_model(7, TML_DTYPE_F32, 8, 3, 1, 0.7f),
                            cluster_model(8, TML_DTYPE_INT8, 16, 4, 0, 0.0f)};
    tu_rng r;
    tu_rng_seed(&r, 9);
    prune(&models[0]->tensors[tml_model_find_tensor(models[0], "conv2.w")], &r, 0.85f);
    for (int i = 0; i < 4; i++) {
        tml_save_opts o;
        tml_save_opts_default(&o);
        for (int variant = 0; variant < 2; variant++) {
            if (variant) o.allow_entropy = o.allow_cluster = 0;
            uint8_t *buf;
            size_t n;
            assert_int_equal(tml_model_write_mem(models[i], &o, &buf, &n), TML_OK);
            for (int t = 0; t < models[i]->n_tensors; t++) {
                chunk_ref c;
                assert_true(find_chunk(buf, n, "TNSR", t, &c));
                tml_tensor_storage st;
                assert_int_equal(tml_tensor_storage_plan(&models[i]->tensors[t], &o, &st), TML_OK);
                assert_int_equal(st.bytes, (int64_t)c.len + 12);
                /* the encoding fields in the file are what the plan said */
                const tml_tensor *tt = &models[i]->tensors[t];
                if (tt->kind != TML_TENSOR_PARAM) continue;
                size_t h = 8 + 2 + strlen(tt->name) + 4 + 4 * (size_t)tt->ndim + 4;
                if (tt->q.n) {
                    int zp_zero = 1; /* all-zero zero points are omitted (flag bit 3) */
                    for (int z = 0; z < tt->q.n; z++) zp_zero &= tt->q.zero_point[z] == 0;
                    h += 8 + (zp_zero ? 4 : 8) * (size_t)tt->q.n;
                    assert_int_equal(!!(buf[c.off + 8 + 2 + strlen(tt->name) + 3] & 0x08), zp_zero);
                }
                if (st.valcode == TML_VAL_CLUSTER)
                    h += 7 + (size_t)(tt->cb->n_books * tt->cb->k) * tml_dtype_size(tt->dtype);
                const uint8_t *enc = buf + c.off + h;
                assert_int_equal(enc[0], st.layout);
                assert_int_equal(enc[1], st.valcode);
                assert_int_equal(enc[2], st.entropy);
                assert_int_equal(tml_le32(enc + 4), st.stored_values);
                assert_int_equal(tml_le32(enc + 16), c.len - (h - 8) - 20); /* body_len */
            }
            free(buf);
        }
        tml_model_free(models[i]);
    }
}

/* ---- every encoding, forced ------------------------------------------------------------------ */

static void check_forced(const tml_tensor *t, int cl, tml_layout layout, int g, tml_entropy ent)
{
    tml_buf b = {0};
    tml_status st = tml_tnsr_encode_as(t, cl, layout, g, ent, &b);
    int has_symbols = layout == TML_LAYOUT_RELIDX || cl || t->dtype == TML_DTYPE_INT8;
    if (ent == TML_ENTROPY_HUFFMAN && !has_symbols) {
        assert_int_equal(st, TML_ERR_INVALID);
        tml_buf_free(&b);
        return;
    }
    if (st) fprintf(stderr, "  encode %s: %s\n", t->name, tml_last_error());
    assert_int_equal(st, TML_OK);
    uint8_t *exact = malloc(b.len);
    memcpy(exact, b.p, b.len);
    tml_model *m = tml_model_new();
    int64_t budget = INT64_MAX;
    st = tml_tnsr_decode(m, exact, b.len, &budget);
    if (st) fprintf(stderr, "  decode %s (cluster %d layout %d g %d entropy %d): %s\n", t->name, cl, layout, g, ent, tml_last_error());
    assert_int_equal(st, TML_OK);
    assert_int_equal(m->n_tensors, 1);
    assert_same_tensor(t, &m->tensors[0], cl);
    /* every strict prefix of the payload is refused */
    for (size_t k = 0; k < b.len; k++) {
        tml_model *m2 = tml_model_new();
        uint8_t *pre = malloc(k ? k : 1);
        memcpy(pre, b.p, k);
        assert_int_equal(tml_tnsr_decode(m2, pre, k, &budget), TML_ERR_FORMAT);
        free(pre);
        tml_model_free(m2);
    }
    free(exact);
    tml_model_free(m);
    tml_buf_free(&b);
}

static void check_all_encodings(const tml_tensor *t)
{
    for (int cl = 0; cl <= (t->cb ? 1 : 0); cl++)
        for (int e = 0; e < 3; e++) {
            check_forced(t, cl, TML_LAYOUT_DENSE, 0, (tml_entropy)e);
            if (!t->pruned || tml_tensor_numel(t) == 0) continue;
            check_forced(t, cl, TML_LAYOUT_BITMAP, 0, (tml_entropy)e);
            for (int g = 1; g <= 8; g++) check_forced(t, cl, TML_LAYOUT_RELIDX, g, (tml_entropy)e);
        }
}

static void test_every_encoding_decodes(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 500);
    tml_model *m = tml_model_new();
    /* odd sizes, long zero runs (fillers at every g), a zero tail, all-zero, empty */
    int a = add_param(m, &r, "f32_pruned", 2, D(37, 11), -1, 1);
    prune(&m->tensors[a], &r, 0.85f);
    ((float *)m->tensors[a].data)[5] = -0.0f;
    int b = tml_model_add_tensor(m, "int8_pruned", TML_DTYPE_INT8, TML_TENSOR_PARAM, 2, D(5, 61), NULL);
    tu_fill_int8(&r, m->tensors[b].data, 5 * 61, -127, 127);
    prune(&m->tensors[b], &r, 0.7f);
    int c = tml_model_add_tensor(m, "int32_pruned", TML_DTYPE_INT32, TML_TENSOR_PARAM, 1, D(100), NULL);
    for (int i = 0; i < 100; i++) ((int32_t *)m->tensors[c].data)[i] = (int32_t)tu_rng_u32(&r);
    prune(&m->tensors[c], &r, 0.5f);
    int d = add_param(m, &r, "runs", 2, D(3, 1000), -1, 1);
    float *dd = m->tensors[d].data;
    for (int i = 0; i < 3000; i++)
        if (i != 0 && i != 700 && i != 701 && i != 1999) dd[i] = 0.0f;
    m->tensors[d].pruned = 1;
    int e = add_param(m, &r, "zeros", 1, D(777), 0, 0);
    m->tensors[e].pruned = 1;
    int f = tml_model_add_tensor(m, "empty", TML_DTYPE_F32, TML_TENSOR_PARAM, 2, D(0, 5), NULL);
    m->tensors[f].pruned = 1;
    int g1 = tml_model_add_tensor(m, "cl_f32_books", TML_DTYPE_F32, TML_TENSOR_PARAM, 4, D(5, 3, 3, 7), NULL);
    m->tensors[g1].pruned = 1;
    cluster(&m->tensors[g1], &r, 6, 3, 1, 0.6f);
    int g2 = tml_model_add_tensor(m, "cl_int8", TML_DTYPE_INT8, TML_TENSOR_PARAM, 2, D(9, 13), NULL);
    m->tensors[g2].pruned = 1;
    cluster(&m->tensors[g2], &r, 5, 3, 0, 0.5f);
    int g3 = tml_model_add_tensor(m, "cl_f32_dense", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, D(33), NULL);
    cluster(&m->tensors[g3], &r, 4, 2, 0, 0.0f);
    int g4 = tml_model_add_tensor(m, "cl_int8_8bit", TML_DTYPE_INT8, TML_TENSOR_PARAM, 2, D(2, 127), NULL);
    m->tensors[g4].pruned = 1;
    cluster(&m->tensors[g4], &r, 200, 8, 1, 0.3f);
    int h = tml_model_add_tensor(m, "act", TML_DTYPE_INT8, TML_TENSOR_ACT, 3, D(4, 4, 2), NULL);
    float sc = 0.5f;
    int32_t zp = 3;
    assert_int_equal(tml_tensor_set_quant(&m->tensors[h], -1, 1, &sc, &zp), TML_OK);
    for (int i = 0; i < m->n_tensors; i++) check_all_encodings(&m->tensors[i]);
    tml_model_free(m);
}

/* ---- corruption ------------------------------------------------------------------------------ */

/* x(8) -fc1 (clustered 2-bit, pruned)-> relu -fc2 (pruned f32)-> y, 3 labels. */
static tml_model *small_model(void)
{
    tu_rng r;
    tu_rng_seed(&r, 600);
    tml_model *m = tml_model_new();
    int x = tml_model_add_tensor(m, "x", TML_DTYPE_F32, TML_TENSOR_ACT, 1, D(8), NULL);
    int w1 = add_param(m, &r, "fc1.w", 2, D(6, 8), -1, 1), b1 = add_param(m, &r, "fc1.b", 1, D(6), -1, 1);
    int w2 = add_param(m, &r, "fc2.w", 2, D(3, 6), -1, 1);
    int h = add_act(m, "h"), hr = add_act(m, "hr"), y = add_act(m, "y");
    m->tensors[w1].pruned = 1;
    cluster(&m->tensors[w1], &r, 4, 2, 0, 0.5f);
    prune(&m->tensors[w2], &r, 0.6f);
    add_node(m, "fc1", TML_OP_DENSE, 3, IN(x, w1, b1), h);
    add_node(m, "relu", TML_OP_RELU, 1, IN(h), hr);
    add_node(m, "fc2", TML_OP_DENSE, 2, IN(hr, w2), y);
    m->input = x;
    m->output = y;
    const char *labels[3] = {"a", "b", "c"};
    tml_meta_set_labels(&m->meta, 3, labels);
    m->meta.name = tml_strdup("small");
    assert_int_equal(tml_model_finalize(m), TML_OK);
    return m;
}

static uint8_t *small_file(size_t *len)
{
    tml_model *m = small_model();
    uint8_t *buf;
    assert_int_equal(tml_model_write_mem(m, NULL, &buf, len), TML_OK);
    tml_model_free(m);
    return buf;
}

static void test_truncation_at_every_byte(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = small_file(&len);
    assert_int_equal(read_exact(buf, len, NULL), TML_OK);
    for (size_t k = 0; k < len; k++) {
        tml_status st = read_exact(buf, k, NULL);
        if (st != TML_ERR_FORMAT) fprintf(stderr, "  truncated at %zu: status %d %s\n", k, st, tml_last_error());
        assert_int_equal(st, TML_ERR_FORMAT);
        assert_true(tml_last_error()[0] != '\0');
    }
    expect_format_error(buf, 0, "empty");
    expect_format_error(buf, 5, "truncated");
    expect_format_error(buf, len - 12, "truncated"); /* END cut off */
    expect_format_error(buf, len - 1, "truncated");
    free(buf);
}

static void test_every_byte_flip_is_detected(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = small_file(&len);
    uint8_t *c = malloc(len);
    static const uint8_t masks[] = {0x01, 0x10, 0x80, 0xff};
    int crc_named = 0;
    /* Every byte is covered by the signature, a length (framing), or a CRC:
     * no flip is harmless, so every one must be reported. */
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof masks; k++) {
            memcpy(c, buf, len);
            c[i] ^= masks[k];
            tml_status st = read_exact(c, len, NULL);
            if (st != TML_ERR_FORMAT) fprintf(stderr, "  flip at %zu (^%02x) not detected: %d\n", i, masks[k], st);
            assert_int_equal(st, TML_ERR_FORMAT);
            if (strstr(tml_last_error(), "CRC")) crc_named++;
        }
    }
    assert_true(crc_named > (int)len); /* payload/type flips are reported as CRC errors */
    /* a CRC error in a TNSR names the chunk and the tensor */
    chunk_ref cr;
    assert_true(find_chunk(buf, len, "TNSR", 2, &cr));
    memcpy(c, buf, len);
    c[cr.off + 8 + cr.len - 1] ^= 0x40; /* last body byte */
    expect_format_error(c, len, "CRC");
    assert_non_null(strstr(tml_last_error(), "TNSR"));
    assert_non_null(strstr(tml_last_error(), "fc1.b"));
    free(c);
    free(buf);
}

static void test_signature_version_and_chunk_rules(void **state)
{
    (void)state;
    size_t len, n2;
    uint8_t *buf = small_file(&len), *f;
    tml_model *m;
    /* wrong signature */
    uint8_t *c = malloc(len);
    memcpy(c, buf, len);
    c[1] = 'X';
    expect_format_error(c, len, "signature");
    expect_format_error((const uint8_t *)"hello world, this is not a model", 32, "signature");
    free(c);
    /* a newer major version is refused, a newer minor read */
    chunk_ref head;
    assert_true(find_chunk(buf, len, "HEAD", 0, &head));
    uint8_t hp[12] = {2, 0, 0, 0, 0, 0, 0, 0};
    f = edit_chunk(buf, len, &head, NULL, hp, 8, &n2);
    expect_format_error(f, n2, "newer tinyml");
    free(f);
    uint8_t hminor[12] = {TML_FORMAT_MAJOR, 0, 9, 0, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd}; /* longer HEAD too */
    f = edit_chunk(buf, len, &head, NULL, hminor, 12, &n2);
    assert_int_equal(read_exact(f, n2, NULL), TML_OK);
    free(f);
    hp[0] = 0;
    f = edit_chunk(buf, len, &head, NULL, hp, 8, &n2);
    expect_format_error(f, n2, "version");
    free(f);
    /* unknown chunk types are skipped (but still CRC-checked) */
    chunk_ref meta;
    assert_true(find_chunk(buf, len, "META", 0, &meta));
    f = edit_chunk(buf, len, &meta, "fuTR", "future data", 11, &n2);
    assert_int_equal(read_exact(f, n2, &m), TML_OK);
    tml_model *orig = small_model();
    assert_same_model(orig, m);
    tml_model_free(m);
    f[meta.off + 8 + 3] ^= 1;
    expect_format_error(f, n2, "CRC");
    assert_non_null(strstr(tml_last_error(), "fuTR"));
    free(f);
    /* HEAD must come first */
    f = edit_chunk(buf, len, &head, "META", "{}", 2, &n2);
    expect_format_error(f, n2, "expected HEAD");
    free(f);
    /* duplicates of HEAD / META / GRPH */
    f = edit_chunk(buf, len, &meta, "HEAD", hminor, 8, &n2);
    expect_format_error(f, n2, "duplicate HEAD");
    free(f);
    f = edit_chunk(buf, len, &meta, "META", "{}", 2, &n2);
    expect_format_error(f, n2, "duplicate META");
    free(f);
    chunk_ref grph, end;
    assert_true(find_chunk(buf, len, "GRPH", 0, &grph));
    assert_true(find_chunk(buf, len, "END ", 0, &end));
    f = edit_chunk(buf, len, &end, "GRPH", buf + grph.off + 8, grph.len, &n2);
    expect_format_error(f, n2, "duplicate GRPH");
    free(f);
    /* GRPH missing; END with a payload; bytes after END; no END */
    f = edit_chunk(buf, len, &grph, NULL, NULL, 0, &n2);
    expect_format_error(f, n2, "no GRPH");
    free(f);
    f = edit_chunk(buf, len, &end, NULL, "x", 1, &n2);
    expect_format_error(f, n2, "END");
    free(f);
    c = malloc(len + 1);
    memcpy(c, buf, len);
    c[len] = 0;
    expect_format_error(c, len + 1, "after the END");
    free(c);
    f = edit_chunk(buf, len, &end, NULL, NULL, 0, &n2);
    expect_format_error(f, n2, "END");
    free(f);
    /* huge length fields are checked against the remaining bytes */
    chunk_ref t0;
    assert_true(find_chunk(buf, len, "TNSR", 1, &t0));
    static const uint32_t lens[] = {0xfffffff0u, 0xffffffffu, 0x80000000u};
    c = malloc(len);
    for (int i = 0; i < 3; i++) {
        memcpy(c, buf, len);
        tml_put_le32(c + t0.off, lens[i]);
        expect_format_error(c, len, "exceeds");
    }
    memcpy(c, buf, len);
    tml_put_le32(c + t0.off, (uint32_t)(len - t0.off - 12 + 1));
    expect_format_error(c, len, "exceeds");
    free(c);
    tml_model_free(orig);
    free(buf);
}

/* File = signature, HEAD, one TNSR with `payload`, END. */
static void expect_tnsr_error(const tml_buf *payload, const char *needle)
{
    tml_buf f = {0};
    put_sig_head(&f, TML_FORMAT_MAJOR, TML_FORMAT_MINOR);
    put_chunk(&f, "TNSR", payload->p, payload->len);
    put_chunk(&f, "END ", NULL, 0);
    expect_format_error(f.p, f.len, needle);
    assert_non_null(strstr(tml_last_error(), "TNSR"));
    tml_buf_free(&f);
}

static void tnsr_header(tml_buf *b, const char *name, int dtype, int kind, int ndim, const int32_t *dims, int flags)
{
    b->len = 0;
    tml_buf_u16(b, (uint16_t)strlen(name));
    tml_buf_put(b, name, strlen(name));
    tml_buf_u8(b, (uint8_t)dtype);
    tml_buf_u8(b, (uint8_t)kind);
    tml_buf_u8(b, (uint8_t)ndim);
    tml_buf_u8(b, (uint8_t)flags);
    for (int i = 0; i < ndim; i++) tml_buf_u32(b, (uint32_t)dims[i]);
    tml_buf_u32(b, 3);
}

static void encoding(tml_buf *b, int layout, int valcode, int entropy, int g, uint32_t sv, uint32_t raw_len, uint32_t crc,
                     uint32_t body_len)
{
    tml_buf_u8(b, (uint8_t)layout);
    tml_buf_u8(b, (uint8_t)valcode);
    tml_buf_u8(b, (uint8_t)entropy);
    tml_buf_u8(b, (uint8_t)g);
    tml_buf_u32(b, sv);
    tml_buf_u32(b, raw_len);
    tml_buf_u32(b, crc);
    tml_buf_u32(b, body_len);
}

static void test_crafted_tensor_headers_refused(void **state)
{
    (void)state;
    tml_buf b = {0};
    /* 2^30 elements: refused on the dims, before any allocation */
    tnsr_header(&b, "w", 0, 1, 2, D(32768, 32768), 0);
    encoding(&b, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_tnsr_error(&b, "limit");
    assert_non_null(strstr(tml_last_error(), "tensor 'w'"));
    /* 2^28 elements (the limit) but a 0-byte body */
    tnsr_header(&b, "w", 0, 1, 2, D(16384, 16384), 0);
    encoding(&b, 0, 0, 0, 0, 1u << 28, 1u << 30, 0, 0);
    expect_tnsr_error(&b, "differs from raw length");
    /* the same with a "deflate" body of 10 bytes claiming 1 GiB */
    tnsr_header(&b, "w", 0, 1, 2, D(16384, 16384), 0);
    encoding(&b, 0, 0, 1, 0, 1u << 28, 1u << 30, 0, 10);
    tml_buf_put(&b, "0123456789", 10);
    expect_tnsr_error(&b, "cannot hold");
    /* a pruned 2^28-element tensor of 2 relidx entries: cannot cover it */
    tnsr_header(&b, "w", 0, 1, 2, D(16384, 16384), 1);
    encoding(&b, 2, 0, 0, 8, 2, 9, 0, 9);
    tml_buf_put(&b, "012345678", 9);
    expect_tnsr_error(&b, "cannot cover");
    /* negative dim, bad dtype, kind, ndim, flags */
    tnsr_header(&b, "w", 0, 1, 1, D(-4), 0);
    expect_tnsr_error(&b, "negative");
    tnsr_header(&b, "w", 7, 1, 1, D(4), 0);
    expect_tnsr_error(&b, "dtype");
    tnsr_header(&b, "w", 0, 5, 1, D(4), 0);
    expect_tnsr_error(&b, "kind");
    tnsr_header(&b, "w", 0, 1, 9, D(1, 1, 1, 1, 1, 1, 1, 1, 1), 0);
    expect_tnsr_error(&b, "dimensions");
    tnsr_header(&b, "w", 0, 1, 1, D(4), 0x40);
    expect_tnsr_error(&b, "flag");
    /* empty name, NUL in name */
    tnsr_header(&b, "", 0, 0, 0, NULL, 0);
    expect_tnsr_error(&b, "empty name");
    b.len = 0;
    tml_buf_u16(&b, 3);
    tml_buf_put(&b, "a\0b", 3);
    expect_tnsr_error(&b, "NUL");
    /* quantization: n inconsistent with the axis; n huge */
    tnsr_header(&b, "w", 0, 1, 2, D(3, 4), 2);
    tml_buf_u32(&b, 1);
    tml_buf_u32(&b, 3);
    expect_tnsr_error(&b, "quantization");
    tnsr_header(&b, "w", 0, 1, 2, D(3, 4), 2);
    tml_buf_u32(&b, 2);
    tml_buf_u32(&b, 1);
    expect_tnsr_error(&b, "axis");
    tnsr_header(&b, "w", 0, 1, 1, D(1 << 20), 2);
    tml_buf_u32(&b, 0);
    tml_buf_u32(&b, 1 << 20);
    expect_tnsr_error(&b, "truncated");
    /* codebook: k > 2^bits, bad books, on an activation, on int32 */
    tnsr_header(&b, "w", 0, 1, 1, D(4), 4);
    tml_buf_u16(&b, 5);
    tml_buf_u8(&b, 2);
    tml_buf_u32(&b, 1);
    expect_tnsr_error(&b, "do not fit");
    tnsr_header(&b, "w", 0, 1, 2, D(3, 4), 4);
    tml_buf_u16(&b, 2);
    tml_buf_u8(&b, 1);
    tml_buf_u32(&b, 4);
    expect_tnsr_error(&b, "codebooks");
    tnsr_header(&b, "w", 0, 0, 1, D(4), 4);
    expect_tnsr_error(&b, "activation");
    tnsr_header(&b, "w", 2, 1, 1, D(4), 4);
    expect_tnsr_error(&b, "codebook");
    /* codebook index out of range: k=3, 2-bit indices, values 3 */
    tnsr_header(&b, "w", 0, 1, 1, D(4), 4);
    tml_buf_u16(&b, 3);
    tml_buf_u8(&b, 2);
    tml_buf_u32(&b, 1);
    for (int i = 0; i < 3; i++) tml_buf_u32(&b, fbits((float)i));
    uint8_t idx = 0xff;
    encoding(&b, 0, 1, 0, 0, 4, 1, tml_crc32(0, &idx, 1), 1);
    tml_buf_u8(&b, idx);
    expect_tnsr_error(&b, "out of range");
    /* sparse layout on a tensor not marked pruned */
    tnsr_header(&b, "w", 0, 1, 1, D(4), 0);
    encoding(&b, 1, 0, 0, 0, 0, 1, 0, 1);
    tml_buf_u8(&b, 0);
    expect_tnsr_error(&b, "pruned");
    /* bitmap popcount disagrees with stored_values */
    uint8_t raw[5] = {0x03, 0, 0, 0x80, 0x3f};
    tnsr_header(&b, "w", 0, 1, 1, D(4), 1);
    encoding(&b, 1, 0, 0, 0, 1, 5, tml_crc32(0, raw, 5), 5);
    tml_buf_put(&b, raw, 5);
    expect_tnsr_error(&b, "bitmap");
    /* relidx running past the end: gaps 3,3 of 2 bits over 4 elements */
    uint8_t rel[9] = {0x0f, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f};
    tnsr_header(&b, "w", 0, 1, 1, D(4), 1);
    encoding(&b, 2, 0, 0, 2, 2, 9, tml_crc32(0, rel, 9), 9);
    tml_buf_put(&b, rel, 9);
    expect_tnsr_error(&b, "past the end");
    /* raw CRC mismatch */
    float four[4] = {1, 2, 3, 4};
    tnsr_header(&b, "w", 0, 1, 1, D(4), 0);
    encoding(&b, 0, 0, 0, 0, 4, 16, 12345, 16);
    for (int i = 0; i < 4; i++) tml_buf_u32(&b, fbits(four[i]));
    expect_tnsr_error(&b, "CRC");
    /* deflate body that is not zlib data */
    tnsr_header(&b, "w", 0, 1, 1, D(4), 0);
    encoding(&b, 0, 0, 1, 0, 4, 16, 0, 16);
    for (int i = 0; i < 4; i++) tml_buf_u32(&b, fbits(four[i]));
    expect_tnsr_error(&b, "deflate");
    /* trailing bytes after an activation */
    tnsr_header(&b, "a", 0, 0, 1, D(4), 0);
    tml_buf_u8(&b, 0);
    expect_tnsr_error(&b, "unexpected");
    tml_buf_free(&b);
}

/* Low-bit int8 weights (qbits 2..7): every encoding round-trips bit for bit,
 * a dense body is exactly ceil(n * b / 8) bytes of values, and the reader and
 * writer refuse what does not fit. */
static void test_lowbit_tensors(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 510);
    for (int qb = 2; qb <= 7; qb++) {
        const int lo = -(1 << (qb - 1)), hi = (1 << (qb - 1)) - 1;
        tml_model *m = tml_model_new();
        int a = tml_model_add_tensor(m, "w", TML_DTYPE_INT8, TML_TENSOR_PARAM, 4, D(7, 3, 3, 5), NULL);
        tu_fill_int8(&r, m->tensors[a].data, 7 * 45, lo, hi);
        int b = tml_model_add_tensor(m, "w_pruned", TML_DTYPE_INT8, TML_TENSOR_PARAM, 2, D(9, 37), NULL);
        tu_fill_int8(&r, m->tensors[b].data, 9 * 37, lo, hi);
        prune(&m->tensors[b], &r, 0.8f);
        int c = tml_model_add_tensor(m, "w_clustered", TML_DTYPE_INT8, TML_TENSOR_PARAM, 2, D(5, 13), NULL);
        m->tensors[c].pruned = 1;
        cluster(&m->tensors[c], &r, 3, 2, 1, 0.4f);
        /* centroids of the helper span int8: bring them into range */
        tml_codebook *cb = m->tensors[c].cb;
        for (int i = 0; i < cb->n_books * cb->k; i++) cb->centroids[i] = (float)((int)cb->centroids[i] % (hi + 1));
        for (int64_t i = 0; i < 65; i++)
            ((int8_t *)m->tensors[c].data)[i] = (int8_t)cb->centroids[(i / 13) * cb->k + cb->index[i]];
        m->tensors[a].qbits = m->tensors[b].qbits = m->tensors[c].qbits = qb;
        for (int i = 0; i < m->n_tensors; i++) check_all_encodings(&m->tensors[i]);
        tml_save_opts raw = {0};
        tml_tensor_storage st;
        assert_int_equal(tml_tensor_storage_plan(&m->tensors[a], &raw, &st), TML_OK);
        assert_int_equal(st.layout, TML_LAYOUT_DENSE);
        tml_buf enc = {0}, enc8 = {0};
        assert_int_equal(tml_tnsr_encode_as(&m->tensors[a], 0, TML_LAYOUT_DENSE, 0, TML_ENTROPY_NONE, &enc), TML_OK);
        m->tensors[a].qbits = 0;
        assert_int_equal(tml_tnsr_encode_as(&m->tensors[a], 0, TML_LAYOUT_DENSE, 0, TML_ENTROPY_NONE, &enc8), TML_OK);
        /* 315 bytes of int8 become ceil(315 b / 8), plus the width byte */
        assert_int_equal((int64_t)enc8.len - (int64_t)enc.len, 315 - (315 * qb + 7) / 8 - 1);
        m->tensors[a].qbits = qb;
        tml_buf_free(&enc);
        tml_buf_free(&enc8);
        /* a value that does not fit the width: refused by the writer and finalize */
        ((int8_t *)m->tensors[a].data)[44] = (int8_t)(hi + 1);
        assert_int_equal(tml_tnsr_encode(&m->tensors[a], &raw, &enc, NULL), TML_ERR_INVALID);
        tml_buf_free(&enc);
        tml_model_free(m);
    }
    /* crafted: the width on a float tensor, widths 1 and 8, nonzero padding */
    tml_buf p = {0};
    tnsr_header(&p, "f", TML_DTYPE_F32, TML_TENSOR_PARAM, 1, D(3), 0x10);
    tml_buf_u8(&p, 4);
    expect_tnsr_error(&p, "not an int8 constant");
    for (int w = 1; w <= 8; w += 7) {
        tnsr_header(&p, "w", TML_DTYPE_INT8, TML_TENSOR_PARAM, 1, D(3), 0x10);
        tml_buf_u8(&p, (uint8_t)w);
        expect_tnsr_error(&p, "value width");
    }
    const uint8_t body[2] = {0x21, 0xF3}; /* 3 values of 4 bits: 1, 2, 3 and a padding nibble of 0xF */
    tnsr_header(&p, "w", TML_DTYPE_INT8, TML_TENSOR_PARAM, 1, D(3), 0x10);
    tml_buf_u8(&p, 4);
    encoding(&p, 0, 0, 0, 0, 3, 2, tml_crc32(0, body, 2), 2);
    tml_buf_put(&p, body, 2);
    expect_tnsr_error(&p, "padding");
    const uint8_t good[2] = {0x21, 0x0D}; /* 1, 2, -3 */
    tnsr_header(&p, "w", TML_DTYPE_INT8, TML_TENSOR_PARAM, 1, D(3), 0x10);
    tml_buf_u8(&p, 4);
    encoding(&p, 0, 0, 0, 0, 3, 2, tml_crc32(0, good, 2), 2);
    tml_buf_put(&p, good, 2);
    tml_model *m = tml_model_new();
    int64_t budget = INT64_MAX;
    assert_int_equal(tml_tnsr_decode(m, p.p, p.len, &budget), TML_OK);
    const int8_t *v = m->tensors[0].data;
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 2);
    assert_int_equal(v[2], -3);
    assert_int_equal(m->tensors[0].qbits, 4);
    tml_model_free(m);
    tml_buf_free(&p);
}

static void test_random_buffers_never_crash(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 700);
    int ok = 0;
    for (int i = 0; i < 1000; i++) {
        tml_buf f = {0};
        int mode = i % 3;
        if (mode > 0) put_sig_head(&f, TML_FORMAT_MAJOR, 0);
        if (mode == 2) {
            /* well-framed chunks with valid CRCs and random payloads */
            static const char *types[] = {"META", "TNSR", "GRPH", "END ", "zzzz"};
            int nc = 1 + (int)(tu_rng_u32(&r) % 5);
            for (int k = 0; k < nc; k++) {
                uint8_t p[96];
                size_t pl = tu_rng_u32(&r) % sizeof p;
                for (size_t j = 0; j < pl; j++) p[j] = (uint8_t)tu_rng_u32(&r);
                if (pl >= 2 && (tu_rng_u32(&r) & 1)) p[0] = (uint8_t)(pl / 3), p[1] = 0; /* plausible name length */
                put_chunk(&f, types[tu_rng_u32(&r) % 5], p, pl);
            }
        } else {
            size_t n = tu_rng_u32(&r) % 600;
            for (size_t j = 0; j < n; j++) tml_buf_u8(&f, (uint8_t)tu_rng_u32(&r));
        }
        tml_status st = read_exact(f.p, f.len, NULL);
        if (st == TML_OK) ok++;
        else assert_true(st == TML_ERR_FORMAT && tml_last_error()[0]);
        tml_buf_free(&f);
    }
    assert_int_equal(ok, 0);
}

static void test_mutations_with_fixed_crcs_never_crash(void **state)
{
    (void)state;
    /* Mutate payload bytes and repair the chunk CRCs, so the tensor, Huffman,
     * deflate and JSON parsers see the damage. Results may be OK (e.g. a
     * changed weight value) or an error; never a crash, leak or hang. */
    tu_rng r;
    tu_rng_seed(&r, 800);
    tml_model *models[3] = {small_model(), int8_model(801, 0.7f), cluster_model(802, TML_DTYPE_INT8, 8, 3, 1, 0.6f)};
    int errors = 0, total = 0;
    for (int mi = 0; mi < 3; mi++) {
        uint8_t *buf;
        size_t len;
        assert_int_equal(tml_model_write_mem(models[mi], NULL, &buf, &len), TML_OK);
        uint8_t *c = malloc(len);
        for (int it = 0; it < 1500; it++) {
            memcpy(c, buf, len);
            int nm = 1 + (int)(tu_rng_u32(&r) % 3);
            for (int k = 0; k < nm; k++) {
                size_t at = 20 + tu_rng_u32(&r) % (uint32_t)(len - 20);
                uint32_t kind = tu_rng_u32(&r) % 4;
                if (kind == 0) c[at] ^= (uint8_t)(1u << (tu_rng_u32(&r) % 8));
                else if (kind == 1) c[at] = (uint8_t)tu_rng_u32(&r);
                else if (kind == 2) c[at] = 0;
                else c[at] = 0xff;
            }
            fix_crcs(c, len);
            tml_model *m = NULL;
            tml_status st = read_exact(c, len, &m);
            total++;
            if (st) {
                errors++;
                assert_true(tml_last_error()[0] != '\0');
            } else {
                assert_non_null(m);
            }
            tml_model_free(m);
        }
        free(c);
        free(buf);
        tml_model_free(models[mi]);
    }
    fprintf(stderr, "  %d of %d mutated files refused\n", errors, total);
    assert_true(errors > total / 2);
}

static void test_bad_json_in_meta_and_grph(void **state)
{
    (void)state;
    size_t len, n2;
    uint8_t *buf = small_file(&len), *f;
    chunk_ref meta, grph;
    assert_true(find_chunk(buf, len, "META", 0, &meta));
    assert_true(find_chunk(buf, len, "GRPH", 0, &grph));
    struct {
        const char *json, *needle;
    } metas[] = {
        {"{\"name\": ", "not valid JSON"},
        {"[1,2]", "not a JSON object"},
        {"{\"classes\":\"ten\"}", "classes"},
        {"{\"classes\":2.5}", "integer"},
        {"{\"classes\":3,\"labels\":[\"a\"]}", "labels"},
        {"{\"labels\":[\"a\",7]}", "label 1"},
        {"{\"name\":5}", "name"},
        {"{\"preprocess\":{\"mean\":[1,2,3,4,5],\"std\":[1,2,3,4,5]}}", "entries"},
        {"{\"preprocess\":{\"mean\":[1],\"std\":[]}}", "std"},
        {"{\"preprocess\":{\"scale\":1e300}}", "range"},
        {"{\"preprocess\":{\"scale\":\"big\"}}", "scale"},
        {"{\"history\":{}}", "history"},
        {"{} trailing", "trailing"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof metas / sizeof metas[0]; i++) {
        f = edit_chunk(buf, len, &meta, NULL, metas[i].json, strlen(metas[i].json), &n2);
        expect_format_error(f, n2, metas[i].needle);
        assert_non_null(strstr(tml_last_error(), "META"));
        free(f);
    }
    /* NUL inside the JSON text */
    f = edit_chunk(buf, len, &meta, NULL, "{\"name\":\"a\0b\"}", 14, &n2);
    expect_format_error(f, n2, "NUL");
    free(f);

    const char *fc1 = "{\"name\":\"fc1\",\"op\":\"dense\",\"in\":[\"x\",\"fc1.w\",\"fc1.b\"],\"out\":\"h\"}";
    const char *rest = "{\"name\":\"relu\",\"op\":\"relu\",\"in\":[\"h\"],\"out\":\"hr\"},"
                       "{\"name\":\"fc2\",\"op\":\"dense\",\"in\":[\"hr\",\"fc2.w\"],\"out\":\"y\"}";
    char g[2048];
    struct {
        const char *node0, *needle;
    } graphs[] = {
        {"{\"name\":\"fc1\",\"op\":\"conv3d\",\"in\":[\"x\",\"fc1.w\"],\"out\":\"h\"}", "unknown op 'conv3d'"},
        {"{\"name\":\"fc1\",\"op\":\"dense\",\"in\":[\"x\",\"nope\"],\"out\":\"h\"}", "'nope' is not a tensor"},
        {"{\"name\":\"fc1\",\"op\":\"dense\",\"in\":[\"x\",\"fc1.w\"],\"out\":\"missing\"}", "'missing' is not a tensor"},
        {"{\"name\":\"fc1\",\"op\":\"dense\",\"in\":\"x\",\"out\":\"h\"}", "\"in\""},
        {"{\"name\":\"fc1\",\"op\":\"dense\",\"in\":[\"x\",\"fc1.w\",1],\"out\":\"h\"}", "input 2"},
        {"{\"name\":\"fc1\",\"op\":\"dense\",\"in\":[\"x\",\"fc1.w\"],\"out\":\"h\",\"act\":\"tanh\"}", "act"},
        {"{\"name\":\"fc1\",\"op\":\"dense\",\"in\":[\"x\",\"fc1.w\"],\"out\":\"h\",\"stride\":\"2\"}", "stride"},
        {"{\"name\":\"fc1\",\"op\":\"dense\",\"in\":[\"x\",\"fc1.w\"],\"out\":\"h\",\"pad\":[1,2,3]}", "pad"},
        {"{\"name\":\"fc1\",\"op\":\"dense\",\"in\":[\"x\",\"fc1.w\"],\"out\":\"h\",\"groups\":1e12}", "groups"},
        {"{\"name\":\"fc1\",\"op\":7,\"in\":[\"x\",\"fc1.w\"],\"out\":\"h\"}", "op"},
        {"{\"op\":\"dense\",\"in\":[\"x\",\"fc1.w\"],\"out\":\"h\"}", "node #0"},
        {"17", "node #0"},
        {"{\"name\":\"fc1\",\"op\":\"dense\",\"in\":[\"x\",\"fc2.w\"],\"out\":\"h\"}", "invalid graph"},
        {"{\"name\":\"relu\",\"op\":\"dense\",\"in\":[\"x\",\"fc1.w\"],\"out\":\"h\"}", "duplicate node"},
    };
    for (size_t i = 0; i < sizeof graphs / sizeof graphs[0]; i++) {
        snprintf(g, sizeof g, "{\"input\":\"x\",\"output\":\"y\",\"nodes\":[%s,%s]}", graphs[i].node0, rest);
        f = edit_chunk(buf, len, &grph, NULL, g, strlen(g), &n2);
        expect_format_error(f, n2, graphs[i].needle);
        free(f);
    }
    static const char *tops[][2] = {
        {"{\"input\":\"x\",\"output\":\"y\",\"nodes\":{}}", "nodes"},
        {"{\"input\":3,\"output\":\"y\",\"nodes\":[]}", "input"},
        {"{\"input\":\"x\",\"output\":\"zz\",\"nodes\":[]}", "graph output 'zz'"},
        {"{\"input\":\"x\",\"output\":\"y\",\"nodes\":[", "not valid JSON"},
        {"[]", "GRPH"},
    };
    for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
        f = edit_chunk(buf, len, &grph, NULL, tops[i][0], strlen(tops[i][0]), &n2);
        expect_format_error(f, n2, tops[i][1]);
        free(f);
    }
    /* unknown keys are ignored: in nodes and at the top level */
    snprintf(g, sizeof g, "{\"input\":\"x\",\"future\":[1,{}],\"output\":\"y\",\"nodes\":[%.*s,\"later\":{\"x\":1}},%s]}",
             (int)strlen(fc1) - 1, fc1, rest);
    f = edit_chunk(buf, len, &grph, NULL, g, strlen(g), &n2);
    tml_model *m;
    assert_int_equal(read_exact(f, n2, &m), TML_OK);
    assert_int_equal(m->n_nodes, 3);
    tml_model_free(m);
    free(f);
    free(buf);
}

static void test_write_refuses_bad_models(void **state)
{
    (void)state;
    tml_model *m = small_model();
    uint8_t *buf = (uint8_t *)1;
    size_t n = 1;
    free(m->meta.history);
    m->meta.history = tml_strdup("not json");
    assert_int_equal(tml_model_write_mem(m, NULL, &buf, &n), TML_ERR_INVALID);
    assert_null(buf);
    assert_non_null(strstr(tml_last_error(), "history"));
    free(m->meta.history);
    m->meta.history = tml_strdup("[]");
    m->meta.extra = tml_strdup("[1]");
    assert_int_equal(tml_model_write_mem(m, NULL, &buf, &n), TML_ERR_INVALID);
    assert_non_null(strstr(tml_last_error(), "extra"));
    /* known keys in extra never override the real fields */
    free(m->meta.extra);
    m->meta.extra = tml_strdup("{\"name\":\"impostor\",\"k\":1}");
    tml_model *back = roundtrip(m, NULL, NULL, NULL);
    assert_string_equal(back->meta.name, "small");
    assert_string_equal(back->meta.extra, "{\"k\":1}");
    tml_model_free(back);
    m->input = -1;
    assert_int_equal(tml_model_write_mem(m, NULL, &buf, &n), TML_ERR_INVALID);
    tml_model_free(m);
}

/* ---- files, stdin, stdout ------------------------------------------------------------------------- */

static int count_entries(const char *dir, const char *must_have)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0, found = must_have == NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (must_have && !strcmp(e->d_name, must_have)) found = 1;
        else if (must_have) fprintf(stderr, "  unexpected entry: %s\n", e->d_name);
    }
    closedir(d);
    assert_true(found);
    return n;
}

static void test_save_and_load_files(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("format_files");
    char path[4200], nodir[4300];
    snprintf(path, sizeof path, "%s", tu_path(dir, "model.tmf"));
    tml_model *m = full_model(10), *back = NULL;
    /* missing file */
    assert_int_equal(tml_model_load(path, &back), TML_ERR_IO);
    assert_null(back);
    char want[4400];
    snprintf(want, sizeof want, "cannot open '%s': No such file or directory", path);
    assert_string_equal(tml_last_error(), want);
    /* save, load */
    assert_int_equal(tml_model_save(m, path, NULL), TML_OK);
    assert_int_equal(tml_model_load(path, &back), TML_OK);
    assert_same_model(m, back);
    tml_model_free(back);
    assert_int_equal(count_entries(dir, "model.tmf"), 1);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    /* replacing an existing file keeps its mode and leaves no temporary behind */
    assert_int_equal(tu_write_file(path, "garbage", 7), 0);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(tml_model_save(m, path, NULL), TML_OK);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    assert_int_equal(tml_model_load(path, &back), TML_OK);
    tml_model_free(back);
    assert_int_equal(count_entries(dir, "model.tmf"), 1);
    /* a directory that does not exist: clean error, nothing created */
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/m.tmf", dir);
    assert_int_equal(tml_model_save(m, nodir, NULL), TML_ERR_IO);
    assert_non_null(strstr(tml_last_error(), "No such file or directory"));
    assert_non_null(strstr(tml_last_error(), "m.tmf"));
    assert_int_equal(count_entries(dir, "model.tmf"), 1);
    /* destination is a directory: the rename fails, the temporary is removed */
    char sub[4300];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(tml_model_save(m, sub, NULL), TML_ERR_IO);
    assert_int_equal(count_entries(dir, NULL), 2);
    assert_int_equal(count_entries(sub, NULL), 0);
    assert_int_equal(tml_model_save(m, "/x/", NULL), TML_ERR_IO);
    /* loading a directory or an empty file */
    assert_int_equal(tml_model_load(sub, &back), TML_ERR_IO);
    assert_non_null(strstr(tml_last_error(), "Is a directory"));
    assert_int_equal(tu_write_file(path, "", 0), 0);
    assert_int_equal(tml_model_load(path, &back), TML_ERR_FORMAT);
    assert_non_null(strstr(tml_last_error(), "empty"));
    /* a corrupt file names itself */
    size_t len;
    uint8_t *buf = small_file(&len);
    buf[len - 20] ^= 1;
    assert_int_equal(tu_write_file(path, buf, len), 0);
    assert_int_equal(tml_model_load(path, &back), TML_ERR_FORMAT);
    assert_non_null(strstr(tml_last_error(), path));
    assert_non_null(strstr(tml_last_error(), "CRC"));
    free(buf);
    tml_model_free(m);
}

/* Runs fn in a child process (stdin/stdout redirection stays out of cmocka's
 * way); returns the child's exit status. */
static int in_child(int (*fn)(const char *), const char *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(fn(arg));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static int child_load_stdin(const char *path)
{
    if (!freopen(path, "rb", stdin)) return 10;
    tml_model *m = NULL;
    tml_status st = tml_model_load("-", &m);
    if (st) {
        fprintf(stderr, "  %s\n", tml_last_error());
        return strstr(tml_last_error(), "empty input: no model on stdin?") ? 20 : 11;
    }
    tml_model *want = full_model(11);
    int same = m->n_tensors == want->n_tensors && !strcmp(m->meta.name, "full");
    tml_model_free(want);
    tml_model_free(m);
    return same ? 0 : 12;
}

static int child_save_stdout(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 1) < 0) return 10;
    close(fd);
    tml_model *m = full_model(11);
    tml_status st = tml_model_save(m, "-", NULL);
    tml_model_free(m);
    return st == TML_OK ? 0 : 11;
}

static int child_save_broken_pipe(const char *unused)
{
    (void)unused;
    int p[2];
    if (pipe(p) != 0) return 10;
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    if (dup2(p[1], 1) < 0) return 10;
    close(p[1]);
    tml_model *m = full_model(11);
    tml_status st = tml_model_save(m, "-", NULL);
    tml_model_free(m);
    if (st != TML_ERR_IO) return 11;
    fprintf(stderr, "  %s\n", tml_last_error());
    return strstr(tml_last_error(), "Broken pipe") ? 0 : 12;
}

static void test_stdin_and_stdout(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("format_stdio");
    char path[4200], empty[4200];
    snprintf(path, sizeof path, "%s", tu_path(dir, "out.tmf"));
    snprintf(empty, sizeof empty, "%s", tu_path(dir, "empty"));
    assert_int_equal(tu_write_file(empty, "", 0), 0);
    assert_int_equal(in_child(child_save_stdout, path), 0);
    size_t len;
    uint8_t *got = tu_read_file(path, &len), *want;
    size_t wlen;
    tml_model *m = full_model(11);
    assert_int_equal(tml_model_write_mem(m, NULL, &want, &wlen), TML_OK);
    assert_int_equal(len, wlen);
    assert_memory_equal(got, want, len);
    tml_model_free(m);
    free(got);
    free(want);
    assert_int_equal(in_child(child_load_stdin, path), 0);
    assert_int_equal(in_child(child_load_stdin, empty), 20);
    assert_int_equal(in_child(child_save_broken_pipe, NULL), 0);
}

/* A long history is stored as a zlib stream (first payload byte 0x78) and
 * reads back as the same text; a corrupted stream is an error (CRC repaired). */
static void test_json_chunks_compressed(void **state)
{
    (void)state;
    tml_model *m = full_model(3);
    for (int i = 0; i < 40; i++) assert_int_equal(tml_model_add_history(m, "{\"pass\":\"prune\",\"sparsity\":0.9,\"global\":true}"), TML_OK);
    uint8_t *buf;
    size_t n;
    assert_int_equal(tml_model_write_mem(m, NULL, &buf, &n), TML_OK);
    chunk_ref c;
    assert_true(find_chunk(buf, n, "META", 0, &c));
    assert_int_equal(buf[c.off + 8], 0x78);
    assert_true(c.len < strlen(m->meta.history) / 4);
    tml_model *back = NULL;
    assert_int_equal(tml_model_read_mem(buf, n, &back), TML_OK);
    assert_string_equal(back->meta.history, m->meta.history);
    tml_model_free(back);
    /* damage the stream inside, fix the CRC: a format error, no crash */
    buf[c.off + 8 + c.len / 2] ^= 0x55;
    uint32_t crc = tml_crc32(0, buf + c.off + 4, c.len + 4);
    for (int k = 0; k < 4; k++) buf[c.off + 8 + c.len + k] = (uint8_t)(crc >> (8 * k));
    assert_int_equal(tml_model_read_mem(buf, n, &back), TML_ERR_FORMAT);
    free(buf);
    tml_model_free(m);
}

/* A pruned f32 tensor of 2^28 elements whose bitmap (32 MiB of zeros) is
 * deflated to ~32 KB: a decompression bomb of 1 GiB. Items appended to `f`. */
static void put_bomb_chunk(tml_buf *f, const char *name)
{
    const uint32_t numel = 1u << 28, raw_len = numel / 8;
    uint8_t *zeros = calloc(raw_len, 1);
    uLongf zcap = compressBound(raw_len);
    uint8_t *z = malloc(zcap);
    assert_true(zeros && z);
    assert_int_equal(compress2(z, &zcap, zeros, raw_len, 9), Z_OK);
    tml_buf p = {0};
    tml_buf_u16(&p, (uint16_t)strlen(name));
    tml_buf_put(&p, name, strlen(name));
    tml_buf_u8(&p, 0);            /* f32 */
    tml_buf_u8(&p, 1);            /* param */
    tml_buf_u8(&p, 1);            /* ndim */
    tml_buf_u8(&p, 1);            /* flags: pruned */
    tml_buf_u32(&p, numel);       /* dims[0] */
    tml_buf_u32(&p, 3);           /* store hint */
    tml_buf_u8(&p, 1);            /* layout: bitmap */
    tml_buf_u8(&p, 0);            /* raw values */
    tml_buf_u8(&p, 1);            /* deflate */
    tml_buf_u8(&p, 0);            /* g */
    tml_buf_u32(&p, 0);           /* stored values */
    tml_buf_u32(&p, raw_len);
    tml_buf_u32(&p, tml_crc32(0, zeros, raw_len));
    tml_buf_u32(&p, (uint32_t)zcap);
    tml_buf_put(&p, z, zcap);
    assert_false(p.oom);
    put_chunk(f, "TNSR", p.p, p.len);
    tml_buf_free(&p);
    free(zeros);
    free(z);
}

/* Item 2 of issue 14: unused TNSR chunks of deflated zeros made `info` take
 * 4.5 GB per chunk. The file's decoded size is budgeted from its size. */
static void test_decompression_bomb_refused(void **state)
{
    (void)state;
    tml_model *m = full_model(3);
    uint8_t *file;
    size_t len;
    assert_int_equal(tml_model_write_mem(m, NULL, &file, &len), TML_OK);
    chunk_ref g;
    assert_true(find_chunk(file, len, "GRPH", 0, &g));
    tml_buf f = {0};
    tml_buf_put(&f, file, g.off);
    put_bomb_chunk(&f, "bomb1");
    put_bomb_chunk(&f, "bomb2");
    tml_buf_put(&f, file + g.off, len - g.off);
    assert_false(f.oom);
    assert_true(f.len < 200000); /* two GiB of tensors in a ~70 KB file */
    expect_format_error(f.p, f.len, "budget");
    assert_non_null(strstr(tml_last_error(), "bomb1"));
    tml_buf_free(&f);
    free(file);
    tml_model_free(m);
}

/* A file of one input x (4) and a chain of n ReLU nodes r1..rn writing
 * a1..an, with the nodes listed in reverse order when `reverse`. */
static uint8_t *relu_chain_file(int n, int reverse, size_t *len)
{
    tml_buf f = {0};
    put_sig_head(&f, TML_FORMAT_MAJOR, TML_FORMAT_MINOR);
    const char *meta = "{\"name\":\"chain\",\"classes\":4,\"history\":[]}";
    put_chunk(&f, "META", meta, strlen(meta));
    for (int i = 0; i <= n; i++) {
        char name[32];
        snprintf(name, sizeof name, i ? "a%d" : "x", i);
        tml_buf p = {0};
        tml_buf_u16(&p, (uint16_t)strlen(name));
        tml_buf_put(&p, name, strlen(name));
        tml_buf_u8(&p, 0);
        tml_buf_u8(&p, 0);
        tml_buf_u8(&p, i ? 0 : 1);
        tml_buf_u8(&p, 0);
        if (!i) tml_buf_u32(&p, 4);
        tml_buf_u32(&p, 0);
        put_chunk(&f, "TNSR", p.p, p.len);
        tml_buf_free(&p);
    }
    tml_buf g = {0};
    char hdr[64];
    snprintf(hdr, sizeof hdr, "{\"input\":\"x\",\"output\":\"a%d\",\"nodes\":[", n);
    tml_buf_put(&g, hdr, strlen(hdr));
    for (int k = 0; k < n; k++) {
        int i = reverse ? n - k : k + 1;
        char node[128];
        int l = snprintf(node, sizeof node, "%s{\"name\":\"r%d\",\"op\":\"relu\",\"in\":[\"%s%d\"],\"out\":\"a%d\"}", k ? "," : "", i,
                         i > 1 ? "a" : "x", i > 1 ? i - 1 : 0, i);
        if (i == 1) l = snprintf(node, sizeof node, "%s{\"name\":\"r1\",\"op\":\"relu\",\"in\":[\"x\"],\"out\":\"a1\"}", k ? "," : "");
        tml_buf_put(&g, node, (size_t)l);
    }
    tml_buf_put(&g, "]}", 2);
    put_chunk(&f, "GRPH", g.p, g.len);
    tml_buf_free(&g);
    put_chunk(&f, "END ", "", 0);
    assert_false(f.oom);
    *len = f.len;
    return f.p;
}

/* Item 3 of issue 14: reading was quadratic in the number of tensors (80k
 * nodes: 50 s in `info`). Names are hashed, the topological sort is
 * O(n log n), and a graph has at most TML_MAX_NODES nodes. */
static void test_large_graphs_linear_and_limited(void **state)
{
    (void)state;
    size_t len;
    /* the largest graph allowed, nodes stored backwards: sorted into chain order */
    uint8_t *b = relu_chain_file(TML_MAX_NODES - 1, 1, &len);
    tml_model *m = NULL;
    tml_status st = read_exact(b, len, &m);
    if (st) fprintf(stderr, "  %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    assert_int_equal(m->n_nodes, TML_MAX_NODES - 1);
    for (int i = 0; i < m->n_nodes; i++) {
        char want[32];
        snprintf(want, sizeof want, "r%d", i + 1);
        assert_string_equal(m->nodes[i].name, want);
    }
    assert_int_equal(tml_model_find_tensor(m, "a777"), 777);
    assert_int_equal(tml_model_find_node(m, "r777"), 776);
    assert_int_equal(tml_model_find_node(m, "r0"), -1);
    tml_model_free(m);
    free(b);
    /* 80k nodes: refused, naming the limit */
    b = relu_chain_file(80000, 0, &len);
    assert_int_equal(read_exact(b, len, NULL), TML_ERR_NOMEM);
    assert_non_null(strstr(tml_last_error(), "more than"));
    free(b);
}

/* Item 12 of issue 14: metadata that contradicts the graph was accepted
 * ("classes": 16777216 on a 10-output model, std 0). Validated at load. */
static void test_meta_contradicting_graph_refused(void **state)
{
    (void)state;
    tml_model *m = full_model(5); /* input 8x8x3, 10 outputs */
    uint8_t *file;
    size_t len;
    assert_int_equal(tml_model_write_mem(m, NULL, &file, &len), TML_OK);
    chunk_ref c;
    assert_true(find_chunk(file, len, "META", 0, &c));
    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"classes\":16777216}", "classes"},
        {"{\"classes\":3}", "classes"},
        {"{\"labels\":[\"a\",\"b\",\"c\"]}", "labels"},
        {"{\"classes\":10,\"preprocess\":{\"scale\":1,\"mean\":[0],\"std\":[0]}}", "std"},
        {"{\"classes\":10,\"preprocess\":{\"scale\":0}}", "scale"},
        {"{\"classes\":10,\"preprocess\":{\"scale\":1,\"mean\":[0,0],\"std\":[1,1]}}", "channels"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n;
        uint8_t *b = edit_chunk(file, len, &c, NULL, bad[i].json, strlen(bad[i].json), &n);
        expect_format_error(b, n, bad[i].needle);
        free(b);
    }
    /* consistent metadata loads */
    const char *ok = "{\"classes\":10,\"preprocess\":{\"scale\":1,\"mean\":[0],\"std\":[2]}}";
    size_t n;
    uint8_t *b = edit_chunk(file, len, &c, NULL, ok, strlen(ok), &n);
    assert_int_equal(read_exact(b, n, NULL), TML_OK);
    free(b);
    free(file);
    tml_model_free(m);
}

/* Per-feature normalization (tabular models) round-trips and is deep-copied. */
static void test_feature_normalization_roundtrip(void **state)
{
    (void)state;
    tml_model *m = full_model(6); /* input 8x8x3: 192 features */
    float mean[192], sd[192];
    for (int i = 0; i < 192; i++) {
        mean[i] = 0.5f * (float)i - 3.0f;
        sd[i] = 1.0f + 0.25f * (float)i;
    }
    m->meta.pre.n_ch = 0;
    assert_int_equal(tml_preproc_set_features(&m->meta.pre, 192, mean, sd), TML_OK);
    tml_model *c = tml_model_clone(m);
    assert_true(c->meta.pre.feat_mean != m->meta.pre.feat_mean);
    tml_model *back = roundtrip(c, NULL, NULL, NULL);
    assert_int_equal(back->meta.pre.n_feat, 192);
    assert_memory_equal(back->meta.pre.feat_mean, mean, sizeof mean);
    assert_memory_equal(back->meta.pre.feat_std, sd, sizeof sd);
    tml_model_free(back);
    tml_model_free(c);
    /* as many features as the input has values, or refused */
    assert_int_equal(tml_preproc_set_features(&m->meta.pre, 5, mean, sd), TML_OK);
    uint8_t *file;
    size_t len;
    assert_int_equal(tml_model_write_mem(m, NULL, &file, &len), TML_OK);
    expect_format_error(file, len, "per-feature");
    free(file);
    tml_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_chunks_compressed),
        cmocka_unit_test(test_crc32_known_value),
        cmocka_unit_test(test_bits_pack_every_width),
        cmocka_unit_test(test_huffman_skewed_beats_fixed_width),
        cmocka_unit_test(test_huffman_one_symbol_and_256_symbols),
        cmocka_unit_test(test_huffman_length_limit),
        cmocka_unit_test(test_huffman_rejects_bad_tables),
        cmocka_unit_test(test_roundtrip_full_model_exact),
        cmocka_unit_test(test_roundtrip_bare_model),
        cmocka_unit_test(test_decompression_bomb_refused),
        cmocka_unit_test(test_large_graphs_linear_and_limited),
        cmocka_unit_test(test_meta_contradicting_graph_refused),
        cmocka_unit_test(test_feature_normalization_roundtrip),
        cmocka_unit_test(test_graph_and_meta_json_text),
        cmocka_unit_test(test_float_json_bit_exact),
        cmocka_unit_test(test_roundtrip_quant_int8_int32),
        cmocka_unit_test(test_special_float_bits_roundtrip),
        cmocka_unit_test(test_pruned_tensors_shrink_with_sparsity),
        cmocka_unit_test(test_clustered_tensors_roundtrip_and_shrink),
        cmocka_unit_test(test_stale_codebook_written_raw),
        cmocka_unit_test(test_deflate_and_huffman_are_chosen),
        cmocka_unit_test(test_storage_plan_matches_file),
        cmocka_unit_test(test_every_encoding_decodes),
        cmocka_unit_test(test_lowbit_tensors),
        cmocka_unit_test(test_truncation_at_every_byte),
        cmocka_unit_test(test_every_byte_flip_is_detected),
        cmocka_unit_test(test_signature_version_and_chunk_rules),
        cmocka_unit_test(test_crafted_tensor_headers_refused),
        cmocka_unit_test(test_random_buffers_never_crash),
        cmocka_unit_test(test_mutations_with_fixed_crcs_never_crash),
        cmocka_unit_test(test_bad_json_in_meta_and_grph),
        cmocka_unit_test(test_write_refuses_bad_models),
        cmocka_unit_test(test_save_and_load_files),
        cmocka_unit_test(test_stdin_and_stdout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
