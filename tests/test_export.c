/*
 * test_export.c - C export (formats/export_c.c): every zoo model, quantized,
 * is exported, compiled with the system compiler as strict C99
 * (cc -std=c99 -pedantic -Wall -Wextra -Werror) together with a small main that
 * reads int8 inputs from a file and writes the int8 outputs, run on 100
 * Fashion-MNIST test images, and compared byte for byte with the integer
 * engine. A pruned + clustered LeNet-5 exercises the compact weight forms
 * (sparse rows with filler entries, codebooks per tensor and per channel);
 * models quantized below 8 bits exercise the packed int4 / int2 form.
 * Also: the arena size, what the generated source may include, refusals
 * (float model, bad prefix), file writing, and the `tinyml export` command.
 *
 * When this test is built with AddressSanitizer, the generated code is
 * compiled with -fsanitize=address,undefined too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tinyml/tml_cluster.h"
#include "tinyml/tml_device.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_prune.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_zoo.h"

#define N_IMAGES 100

/* ---- models ----------------------------------------------------------------------------- */

static tml_model *zoo(const char *arch) { return tu_zoo_model(arch, 3); }

/* fold, calibrate (96 training images), quantize: weights at `bits`, or per
 * layer as lb gives (n entries) */
static void quantize_bits(tml_model *m, int bits, const tml_layer_bits *lb, int nlb)
{
    assert_int_equal(tml_fold(m, NULL), TML_OK);
    tml_dataset *ds = tu_fmnist("train");
    tml_calib cal;
    tml_calib_opts co = {.samples = 96, .seed = 5, .batch = 32};
    assert_int_equal(tml_calibrate(m, ds, &co, &cal), TML_OK);
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    qo.weight_bits = bits;
    qo.layer_bits = lb;
    qo.n_layer_bits = nlb;
    tml_status st = tml_quantize(m, &cal, &qo);
    if (st) fprintf(stderr, "quantize: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    tml_calib_free(&cal);
    tml_dataset_free(ds);
}

/* fold, calibrate (96 training images), quantize with default options */
static void quantize(tml_model *m) { tu_quantize(m, 96); }

/* The preprocessed first N_IMAGES test images (shared by every model). */
static float *test_images(const tml_model *m) { return tu_fmnist_test(m, N_IMAGES); }

/* ---- the engine's answer ----------------------------------------------------------------- */

typedef struct engine_io {
    int8_t *in, *out; /* (N_IMAGES, size) int8 input and output tensors */
    float *y;         /* dequantized outputs of a normal (keep_all = 0) run */
    int64_t in_size, out_size;
} engine_io;

static void engine_run(const tml_model *m, const float *x, engine_io *io)
{
    io->in_size = tml_tensor_numel(&m->tensors[m->input]);
    io->out_size = tml_tensor_numel(&m->tensors[m->output]);
    io->in = malloc((size_t)(N_IMAGES * io->in_size));
    io->out = malloc((size_t)(N_IMAGES * io->out_size));
    io->y = malloc(sizeof(float) * (size_t)(N_IMAGES * io->out_size));
    float *y2 = malloc(sizeof(float) * (size_t)(N_IMAGES * io->out_size));
    assert_true(io->in && io->out && io->y && y2);
    /* keep_all: the int8 input and output tensors are readable after the run */
    tml_engine *e = NULL;
    tml_engine_opts eo = {.keep_all = 1};
    assert_int_equal(tml_engine_new(m, N_IMAGES, &eo, &e), TML_OK);
    assert_int_equal(tml_engine_run(e, x, N_IMAGES, y2), TML_OK);
    memcpy(io->in, tml_engine_activation(e, m->input), (size_t)(N_IMAGES * io->in_size));
    memcpy(io->out, tml_engine_activation(e, m->output), (size_t)(N_IMAGES * io->out_size));
    tml_engine_free(e);
    /* the normal path (shared buffers, fast kernels) gives the same outputs */
    assert_int_equal(tml_engine_new(m, N_IMAGES, NULL, &e), TML_OK);
    assert_int_equal(tml_engine_run(e, x, N_IMAGES, io->y), TML_OK);
    tml_engine_free(e);
    TU_ASSERT_CLOSE(io->y, y2, (size_t)(N_IMAGES * io->out_size), 0.0f);
    free(y2);
}

static void engine_io_free(engine_io *io)
{
    free(io->in);
    free(io->out);
    free(io->y);
}

/* ---- export, compile, run, compare ------------------------------------------------------------ */

/* Checks what the generated source may use: its own header, stdint.h and
 * string.h; no floating point, no allocation. */
static void check_source_rules(const char *src)
{
    const char *p = src;
    while ((p = strstr(p, "#include")) != NULL) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        int ok = strncmp(p, "#include <stdint.h>", n) == 0 || strncmp(p, "#include <string.h>", n) == 0 ||
                 (n > 10 && p[9] == '"');
        if (!ok) fprintf(stderr, "unexpected include: %.*s\n", (int)n, p);
        assert_true(ok);
        p += n;
    }
    assert_null(strstr(src, "float "));
    assert_null(strstr(src, "double "));
    assert_null(strstr(src, "malloc("));
    assert_null(strstr(src, "math.h"));
}

typedef struct variant {
    const char *tag;
    tml_export_enc weights;
    const char *prefix; /* NULL = default */
    tml_export_optimize optimize;
} variant;

/* Exports `m` (opts from v), compiles it with a main, runs the images the
 * engine saw and compares the int8 outputs. Returns the export result for
 * further checks (caller frees). */
static void export_check(const tml_model *m, const engine_io *io, const variant *v, tml_export_result *r)
{
    char dir[1024], log[8192];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir(v->tag));
    tml_export_opts o;
    tml_export_opts_default(&o);
    o.weights = v->weights;
    o.optimize = v->optimize;
    if (v->prefix) o.prefix = v->prefix;
    tml_status st = tml_export_c(m, &o, r);
    if (st) fprintf(stderr, "%s: export: %s\n", v->tag, tml_last_error());
    assert_int_equal(st, TML_OK);
    assert_int_equal(tml_export_write(r, dir), TML_OK);
    check_source_rules(r->source);

    assert_int_equal(tu_write_file(tu_path(dir, "in.bin"), io->in, (size_t)(N_IMAGES * io->in_size)), 0);
    tu_gen_build(dir, r->base, o.prefix, "", v->tag);
    int rc = tu_gen_run(dir, log, sizeof log);
    if (rc != 0) fprintf(stderr, "%s: run failed (%d): %s\n", v->tag, rc, log);
    assert_int_equal(rc, 0);

    size_t len = 0;
    uint8_t *got = tu_read_file(tu_path(dir, "out.bin"), &len);
    assert_non_null(got);
    assert_int_equal(len, (size_t)(N_IMAGES * io->out_size));
    assert_true(tu_equal_i8(v->tag, (const int8_t *)got, io->out, len));
    /* and the engine's float outputs are these int8 values dequantized */
    const tml_tensor *out = &m->tensors[m->output];
    for (size_t k = 0; k < len; k++) {
        float dq = out->q.scale[0] * (float)((int8_t)got[k] - out->q.zero_point[0]);
        assert_true(dq == io->y[k]);
    }
    free(got);
    fprintf(stderr, "  %-22s flash %7lld B  arena %6lld B (plan %6lld, lower bound %6lld)  MACs %8lld  exact on %d images\n",
            v->tag, (long long)r->const_bytes, (long long)r->arena_bytes, (long long)r->plan_bytes,
            (long long)r->pair_bytes, (long long)r->macs, N_IMAGES);
}

/* ---- tests ------------------------------------------------------------------------------------ */

/* Every zoo model, quantized, exported dense and checked bit-exact. */
static void test_zoo_models_bit_exact(void **state)
{
    (void)state;
    const char *archs[] = {"lenet300", "lenet5", "dscnn", "mobilenet-tiny", "resnet8"};
    float *x = NULL;
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++) {
        tml_model *m = zoo(archs[a]);
        quantize(m);
        if (!x) x = test_images(m);
        engine_io io;
        engine_run(m, x, &io);
        char tag[64];
        snprintf(tag, sizeof tag, "export_%s", archs[a]);
        variant v = {tag, TML_EXPORT_AUTO, a == 2 ? "kws_" : NULL, TML_EXPORT_OPT_BALANCED};
        tml_export_result r;
        export_check(m, &io, &v, &r);
        /* untrained weights have no zeros to speak of: everything stays dense */
        for (int i = 0; i < r.n_layers; i++)
            assert_true(r.layers[i].enc == TML_EXPORT_NONE || r.layers[i].enc == TML_EXPORT_DENSE);
        assert_true(r.weight_bytes == r.dense_weight_bytes);
        /* the arena is the planner's, plus at most one kernel scratch where
         * no free bytes were left for it (the DSP kernels' int16 receptive
         * fields); the dense layers' optional scratch never adds to it, so an
         * MLP's arena is exactly the largest pair of live tensors */
        int64_t patch = 0;
        for (int i = 0; i < r.n_layers; i++)
            if (r.layers[i].scratch_bytes > patch) patch = r.layers[i].scratch_bytes;
        assert_true(r.arena_bytes >= r.pair_bytes);
        assert_true(r.arena_bytes <= r.plan_bytes + (patch + 15) / 16 * 16);
        if (strcmp(archs[a], "lenet300") == 0 || strcmp(archs[a], "lenet5") == 0)
            assert_int_equal(r.arena_bytes, r.pair_bytes);
        if (a == 2) {
            assert_string_equal(r.base, "kws");
            assert_non_null(strstr(r.header, "#define KWS_INPUT_SCALE"));
            assert_non_null(strstr(r.header, "int kws_run(const int8_t *in, int8_t *out);"));
        } else {
            assert_string_equal(r.base, "model");
            assert_non_null(strstr(r.header, "#define MODEL_INPUT_ZERO_POINT"));
            assert_non_null(strstr(r.header, "#define MODEL_OUTPUT_SCALE"));
        }
        tml_export_result_free(&r);
        if (strcmp(archs[a], "mobilenet-tiny") == 0) {
            /* sparse rows everywhere (few zeros: bigger, but it must run):
             * depthwise as grouped conv2d with patches, 1x1 convs in place */
            variant vs = {"export_mobilenet_sparse", TML_EXPORT_SPARSE, NULL, TML_EXPORT_OPT_BALANCED};
            export_check(m, &io, &vs, &r);
            tml_export_result_free(&r);
        }
        if (strcmp(archs[a], "dscnn") == 0) {
            /* clustering after quantization (codebooks of int8 codes): the
             * small depthwise layers are smallest as one codebook + indices */
            tml_cluster_opts co;
            tml_cluster_opts_default(&co);
            co.bits = 3;
            tml_status st = tml_cluster(m, &co, NULL);
            if (st) fprintf(stderr, "cluster: %s\n", tml_last_error());
            assert_int_equal(st, TML_OK);
            engine_io_free(&io);
            engine_run(m, x, &io);
            variant vc = {"export_dscnn_clustered", TML_EXPORT_AUTO, NULL, TML_EXPORT_OPT_SIZE};
            export_check(m, &io, &vc, &r);
            int dw_clustered = 0;
            for (int i = 0; i < r.n_layers; i++) {
                if (r.layers[i].op == TML_OP_DEPTHWISE_CONV2D) dw_clustered += r.layers[i].enc == TML_EXPORT_CLUSTER;
                if (r.layers[i].enc != TML_EXPORT_NONE) assert_true(r.layers[i].enc != TML_EXPORT_DENSE);
            }
            assert_int_equal(dw_clustered, 4);
            int64_t size_bytes = r.weight_bytes;
            tml_export_result_free(&r);
            /* balanced: a clustered depthwise layer runs as a grouped conv,
             * far slower for the ~100 bytes it saves: it stays dense */
            variant vb = {"export_dscnn_clustered_balanced", TML_EXPORT_AUTO, NULL, TML_EXPORT_OPT_BALANCED};
            export_check(m, &io, &vb, &r);
            for (int i = 0; i < r.n_layers; i++) {
                if (r.layers[i].op == TML_OP_DEPTHWISE_CONV2D) assert_int_equal(r.layers[i].enc, TML_EXPORT_DENSE);
                if (r.layers[i].enc != TML_EXPORT_NONE) assert_true(r.layers[i].est_instr > 0);
            }
            assert_true(r.weight_bytes > size_bytes);
            tml_export_result_free(&r);
        }
        engine_io_free(&io);
        tml_model_free(m);
    }
    free(x);
}

/* A custom net with what the zoo does not use (average pool and max pool
 * with padding, standalone ReLU6 / ReLU, depth multiplier 2, a 1x3 kernel,
 * dilation, a grouped conv, an add without activation, softmax) and labels
 * that need escaping. */
static void test_other_ops_bit_exact(void **state)
{
    (void)state;
    tml_model *m = tu_other_ops_model();
    quantize(m);
    int kinds[TML_OP_COUNT] = {0};
    for (int i = 0; i < m->n_nodes; i++) kinds[m->nodes[i].op]++;
    assert_true(kinds[TML_OP_AVGPOOL] && kinds[TML_OP_RELU6] && kinds[TML_OP_RELU] && kinds[TML_OP_SOFTMAX] &&
                kinds[TML_OP_ADD] && kinds[TML_OP_MAXPOOL]);
    float *x = test_images(m);
    engine_io io;
    engine_run(m, x, &io);
    variant v = {"export_other_ops", TML_EXPORT_AUTO, NULL, TML_EXPORT_OPT_BALANCED};
    tml_export_result r;
    export_check(m, &io, &v, &r);
    assert_non_null(strstr(r.header, "#define MODEL_NUM_CLASSES 10"));
    assert_non_null(strstr(r.source, "\"what\\?\\?=\""));
    tml_export_result_free(&r);
    variant v2 = {"export_other_ops_sparse", TML_EXPORT_SPARSE, NULL, TML_EXPORT_OPT_BALANCED};
    export_check(m, &io, &v2, &r);
    tml_export_result_free(&r);
    engine_io_free(&io);
    free(x);
    tml_model_free(m);
}

/* LeNet-5 pruned to 90% and clustered (conv1/fc1 one 4-bit codebook each,
 * conv2/fc2 a 4-bit codebook per output channel), then quantized: every
 * weight form, chosen (for size, speed, balanced) and forced, is bit-exact;
 * size gives the fewest bytes, speed the fewest estimated instructions,
 * balanced lies between. */
static void test_compact_forms_bit_exact(void **state)
{
    (void)state;
    tml_model *m = tu_compact_lenet5(3, 96);
    float *x = test_images(m);
    engine_io io;
    engine_run(m, x, &io);
    const variant vs[] = {
        {"export_compact_size", TML_EXPORT_AUTO, NULL, TML_EXPORT_OPT_SIZE},
        {"export_compact_sparse", TML_EXPORT_SPARSE, "sp_", TML_EXPORT_OPT_BALANCED},
        {"export_compact_cluster", TML_EXPORT_CLUSTER, "cl_", TML_EXPORT_OPT_BALANCED},
        {"export_compact_both", TML_EXPORT_SPARSE_CLUSTER, "Net", TML_EXPORT_OPT_BALANCED},
        {"export_compact_speed", TML_EXPORT_AUTO, NULL, TML_EXPORT_OPT_SPEED},
        {"export_compact_balanced", TML_EXPORT_AUTO, NULL, TML_EXPORT_OPT_BALANCED},
    };
    int64_t dense_bytes = 0, auto_bytes = 0, est_speed = 0, bytes_speed = 0;
    for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) {
        tml_export_result r;
        export_check(m, &io, &vs[i], &r);
        int kinds[TML_EXPORT_NONE + 1] = {0};
        for (int l = 0; l < r.n_layers; l++) {
            kinds[r.layers[l].enc]++;
            if (r.layers[l].enc == TML_EXPORT_NONE) continue;
            fprintf(stderr, "    %-6s %-15s %7lld B (dense %7lld)\n", r.layers[l].name, tml_export_enc_name(r.layers[l].enc),
                    (long long)r.layers[l].weight_bytes, (long long)r.layers[l].dense_bytes);
            /* a forced form is used wherever it applies (all layers here) */
            if (vs[i].weights != TML_EXPORT_AUTO) assert_int_equal(r.layers[l].enc, vs[i].weights);
            assert_true(r.layers[l].macs_nz <= r.layers[l].macs / 5);
        }
        int64_t est = 0;
        for (int l = 0; l < r.n_layers; l++) est += r.layers[l].est_instr;
        if (i == 0) {
            /* the pruned, clustered big layers are smallest as sparse + cluster;
             * nothing is left dense */
            assert_int_equal(kinds[TML_EXPORT_DENSE], 0);
            assert_true(kinds[TML_EXPORT_SPARSE_CLUSTER] >= 2);
            auto_bytes = r.weight_bytes;
            dense_bytes = r.dense_weight_bytes;
        } else {
            assert_true(r.weight_bytes >= auto_bytes);
        }
        if (i == 4) {
            est_speed = est;
            bytes_speed = r.weight_bytes;
        }
        if (i == 5) {
            fprintf(stderr, "  estimated instructions: speed %lld, balanced %lld\n", (long long)est_speed, (long long)est);
            assert_true(est >= est_speed && r.weight_bytes <= bytes_speed);
        }
        if (i >= 4) {
            /* a sparse form executes only the stored entries (plus fillers) */
            int64_t nz = 0, all = 0;
            for (int l = 0; l < r.n_layers; l++) {
                nz += r.layers[l].macs_nz;
                all += r.layers[l].macs;
            }
            assert_true(nz < all);
        }
        if (i == 3) {
            assert_string_equal(r.base, "Net");
            assert_non_null(strstr(r.header, "int Netrun("));
        }
        tml_export_result_free(&r);
    }
    /* compact forms at 90% sparsity and 4 bits: well under a fifth of the bytes */
    fprintf(stderr, "  compact weights %lld B vs dense %lld B\n", (long long)auto_bytes, (long long)dense_bytes);
    assert_true(auto_bytes * 5 < dense_bytes);
    engine_io_free(&io);
    free(x);
    tml_model_free(m);
}

/* Packed low-bit weights: LeNet-5 with its layers at 2, 3, 4 and 4 bits (3
 * bits as indices of the identity codebook), mobilenet-tiny (depthwise and 1x1 convs) and
 * resnet8 (odd channel counts per pair of rows, adds) at 4 and 2 bits: the
 * packed form is chosen by bytes (--optimize size) and bit-exact; LeNet-5's
 * weights at 4 bits take at most 0.55x the bytes of its int8 export, also
 * with the default (balanced) choice. */
static void test_packed_forms_bit_exact(void **state)
{
    (void)state;
    static const tml_layer_bits lenet_bits[] = {{"conv1", 2}, {"conv2", 3}, {"fc1", 4}, {"fc2", 4}};
    const struct {
        const char *arch, *tag;
        int bits;
        const tml_layer_bits *lb;
        int nlb;
    } cases[] = {
        {"lenet5", "export_packed_lenet5_w4", 4, NULL, 0},
        {"lenet5", "export_packed_lenet5_mixed", 8, lenet_bits, 4},
        {"mobilenet-tiny", "export_packed_mobilenet_w4", 4, NULL, 0},
        {"resnet8", "export_packed_resnet8_w2", 2, NULL, 0},
    };
    int64_t w8_bytes = 0;
    {
        tml_model *m = zoo("lenet5");
        quantize(m);
        tml_export_result r;
        tml_export_opts o;
        tml_export_opts_default(&o);
        assert_int_equal(tml_export_c(m, &o, &r), TML_OK);
        w8_bytes = r.weight_bytes;
        tml_export_result_free(&r);
        tml_model_free(m);
    }
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        tml_model *m = zoo(cases[c].arch);
        quantize_bits(m, cases[c].bits, cases[c].lb, cases[c].nlb);
        float *x = test_images(m);
        engine_io io;
        engine_run(m, x, &io);
        const variant v = {cases[c].tag, TML_EXPORT_AUTO, NULL, TML_EXPORT_OPT_SIZE};
        tml_export_result r;
        export_check(m, &io, &v, &r);
        for (int l = 0; l < r.n_layers; l++) {
            if (r.layers[l].enc == TML_EXPORT_NONE) continue;
            /* every 2- and 4-bit layer is packed: half or a quarter of its int8
             * bytes, up to the padding of rows to whole words; a 3-bit one takes
             * 3-bit indices of its grid's identity codebook */
            const tml_tensor *w = &m->tensors[m->nodes[l].in[1]];
            assert_int_equal(r.layers[l].enc, w->qbits == 3 ? TML_EXPORT_CLUSTER : TML_EXPORT_PACKED);
            assert_true(r.layers[l].weight_bytes * 10 < r.layers[l].dense_bytes * 7);
        }
        if (c == 0) {
            tml_export_result rb;
            tml_export_opts ob;
            tml_export_opts_default(&ob);
            assert_int_equal(tml_export_c(m, &ob, &rb), TML_OK);
            fprintf(stderr, "  lenet5 W4A8 weights %lld B (size), %lld B (balanced) vs int8 %lld B (%.3fx, %.3fx)\n",
                    (long long)r.weight_bytes, (long long)rb.weight_bytes, (long long)w8_bytes,
                    (double)r.weight_bytes / (double)w8_bytes, (double)rb.weight_bytes / (double)w8_bytes);
            assert_true(r.weight_bytes * 100 <= w8_bytes * 55);
            assert_true(rb.weight_bytes * 100 <= w8_bytes * 55);
            tml_export_result_free(&rb);
        }
        tml_export_result_free(&r);
        engine_io_free(&io);
        free(x);
        tml_model_free(m);
    }
}

/* The same low-bit models built for an emulated Cortex-M4 (DSP kernels, -O2
 * and -Os) and a Cortex-M3 (portable kernels): every output byte equals the
 * engine's. Skipped, saying so, without the cross compiler and QEMU. */
static void test_packed_forms_on_device(void **state)
{
    (void)state;
    tml_device_opts dopt;
    tml_device_opts_default(&dopt);
    if (tml_device_check_tools(&dopt) != TML_OK) {
        fprintf(stderr, "  SKIPPED (no Cortex-M toolchain / QEMU: scripts/install-deps.sh --mcu): %s\n", tml_last_error());
        skip();
    }
    static const tml_layer_bits lenet_bits[] = {{"conv1", 2}, {"conv2", 3}, {"fc1", 4}, {"fc2", 4}};
    const struct {
        const char *arch;
        int bits;
        const tml_layer_bits *lb;
        int nlb;
    } cases[] = {{"lenet5", 8, lenet_bits, 4}, {"mobilenet-tiny", 4, NULL, 0}, {"resnet8", 2, NULL, 0}};
    const struct {
        const char *target, *opt;
    } builds[] = {{"cortex-m4", "O2"}, {"cortex-m4", "Os"}, {"cortex-m3", "O2"}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        tml_model *m = zoo(cases[c].arch);
        quantize_bits(m, cases[c].bits, cases[c].lb, cases[c].nlb);
        float *x = test_images(m);
        for (size_t b = 0; b < sizeof builds / sizeof *builds; b++) {
            tml_device_opts o;
            tml_device_opts_default(&o);
            o.target = builds[b].target;
            o.opt = builds[b].opt;
            o.werror = 1;
            o.exp.optimize = TML_EXPORT_OPT_SIZE; /* the packed form wherever it is smallest */
            tml_device_result r;
            tml_status st = tml_device_run(m, x, 8, &o, &r);
            if (st) fprintf(stderr, "  %s on %s -%s: %s\n", cases[c].arch, builds[b].target, builds[b].opt, tml_last_error());
            assert_int_equal(st, TML_OK);
            int packed = 0;
            for (int l = 0; l < r.exp.n_layers; l++) packed += r.exp.layers[l].enc == TML_EXPORT_PACKED;
            fprintf(stderr, "  %-14s %-9s -%s: %s kernels, %d packed layers, %.0f instructions, %lld differing bytes\n",
                    cases[c].arch, builds[b].target, builds[b].opt, r.exp.dsp_kernels && r.target->dsp ? "DSP" : "portable",
                    packed, r.instr, (long long)r.mismatches);
            assert_true(packed > 0);
            assert_int_equal(r.mismatches, 0);
            tml_device_result_free(&r);
        }
        free(x);
        tml_model_free(m);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    tml_model *m = zoo("lenet300");
    tml_export_result r;
    /* a float model: "quantize first" */
    assert_int_equal(tml_export_c(m, NULL, &r), TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "quantize first"));
    assert_null(r.source);
    tml_export_result_free(&r);
    quantize(m);
    tml_export_opts o;
    tml_export_opts_default(&o);
    const char *bad[] = {"", "9lives_", "my-model", "_x", "a b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o.prefix = bad[i];
        assert_int_equal(tml_export_c(m, &o, &r), TML_ERR_INVALID);
    }
    o.prefix = "model_";
    o.weights = (tml_export_enc)42;
    assert_int_equal(tml_export_c(m, &o, &r), TML_ERR_INVALID);

    /* files: the directory and its parents are created; a file in the way of
     * the directory is an I/O error */
    o.weights = TML_EXPORT_DENSE;
    assert_int_equal(tml_export_c(m, &o, &r), TML_OK);
    const char *dir = tu_tmpdir("export_files");
    char sub[1200];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    assert_int_equal(tml_export_write(&r, sub), TML_OK);
    struct stat sb;
    assert_int_equal(stat(tu_path(sub, "model.c"), &sb), 0);
    assert_int_equal((size_t)sb.st_size, strlen(r.source));
    assert_int_equal(stat(tu_path(sub, "model.h"), &sb), 0);
    /* writing again replaces the files (and leaves no temporary behind) */
    assert_int_equal(tml_export_write(&r, sub), TML_OK);
    char cmd[1400], out[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", sub);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    assert_int_equal(atoi(out), 2);
    assert_int_equal(tu_write_file(tu_path(dir, "file"), "x", 1), 0);
    snprintf(sub, sizeof sub, "%s/file/c", dir);
    assert_int_equal(tml_export_write(&r, sub), TML_ERR_IO);
    tml_export_result_free(&r);
    tml_model_free(m);
}

/* `tinyml export` through the real program (skipped when the command is not
 * registered in this build). */
static void test_cli(void **state)
{
    (void)state;
    const char *t = getenv("TINYML");
    char cmd[4096], out[16384];
    if (!t || !*t) {
        fprintf(stderr, "  TINYML not set: CLI checks skipped\n");
        return;
    }
    snprintf(cmd, sizeof cmd, "'%s' export --help", t);
    if (tu_run(cmd, out, sizeof out) != 0) {
        fprintf(stderr, "  `tinyml export` is not registered in this build: CLI checks skipped\n");
        return;
    }
    assert_non_null(strstr(out, "Examples:"));
    const char *dir = tu_tmpdir("export_cli");
    char fm[1200], qm[1200], od[1200];
    snprintf(fm, sizeof fm, "%s/f.tmf", dir);
    snprintf(qm, sizeof qm, "%s/q.tmf", dir);
    snprintf(od, sizeof od, "%s/out/fw", dir);
    snprintf(cmd, sizeof cmd, "'%s' create lenet300 -q -o '%s' && '%s' quantize '%s' --calib fashion-mnist --calib-samples 64 -q -o '%s'",
             t, fm, t, fm, qm);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    /* success: the files, and a summary with flash / RAM / MACs */
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --c -o '%s' --format csv", t, qm, od);
    int rc = tu_run(cmd, out, sizeof out);
    if (rc) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "RAM (arena)"));
    assert_non_null(strstr(out, "flash"));
    assert_non_null(strstr(out, "fc1,dense,300,dense,235200,"));
    struct stat sb;
    assert_int_equal(stat(tu_path(od, "model.c"), &sb), 0);
    assert_int_equal(stat(tu_path(od, "model.h"), &sb), 0);
    /* from a pipe, with a prefix, forced dense */
    snprintf(cmd, sizeof cmd, "cat '%s' | '%s' export --c -o '%s' --prefix tiny_ --dense -q", qm, t, od);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    assert_int_equal(stat(tu_path(od, "tiny.c"), &sb), 0);
    /* a float model is a data error (1) that says what to do */
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --c -o '%s'", t, fm, od);
    assert_int_equal(tu_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "quantize first"));
    /* usage errors (2) */
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --c", t, qm);
    assert_int_equal(tu_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "-o DIR is required"));
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --c -o '%s' --prefix 1x", t, qm, od);
    assert_int_equal(tu_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' export '%s' --c -o '%s' --bogus", t, qm, od);
    assert_int_equal(tu_run(cmd, out, sizeof out), 2);
    /* a missing model file (1) */
    snprintf(cmd, sizeof cmd, "'%s' export '%s/none.tmf' --c -o '%s'", t, dir, od);
    assert_int_equal(tu_run(cmd, out, sizeof out), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_zoo_models_bit_exact),
        cmocka_unit_test(test_compact_forms_bit_exact),
        cmocka_unit_test(test_packed_forms_bit_exact),
        cmocka_unit_test(test_packed_forms_on_device),
        cmocka_unit_test(test_other_ops_bit_exact),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
