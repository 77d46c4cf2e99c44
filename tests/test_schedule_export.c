/*
 * test_schedule_export.c - memory schedules in the exported C
 * (formats/export_sched.c): scheduled exports of the zoo models and of
 * generated graphs compiled as strict C99 with guard bytes after the arena,
 * run, compared byte for byte with the integer engine; an arena 16 bytes too
 * small is caught by the guard; the exported C's arena (its kernels' scratch
 * included) meets the targets; and, when the Cortex-M toolchain and QEMU are
 * installed, the scheduled exports on the emulated Cortex-M4 with the DSP
 * kernels.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_fixtures.h"
#include "tinyml/tml_cluster.h"
#include "tinyml/tml_device.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_schedule.h"

/* ---- the exported C ---------------------------------------------------------------------- */

/* The int8 input and output tensors the engine computes for n inputs. */
static void engine_int8(const tml_model *m, const float *x, int n, int8_t **in8, int8_t **out8)
{
    int64_t is = tml_tensor_numel(&m->tensors[m->input]), os = tml_tensor_numel(&m->tensors[m->output]);
    *in8 = malloc((size_t)(is * n));
    *out8 = malloc((size_t)(os * n));
    assert_true(*in8 && *out8);
    tml_engine *e = NULL;
    tml_engine_opts eo = {.keep_all = 1};
    float *y = malloc(sizeof(float) * (size_t)(os * n));
    assert_non_null(y);
    assert_int_equal(tml_engine_new(m, n, &eo, &e), TML_OK);
    assert_int_equal(tml_engine_run(e, x, n, y), TML_OK);
    memcpy(*in8, tml_engine_activation(e, m->input), (size_t)(is * n));
    memcpy(*out8, tml_engine_activation(e, m->output), (size_t)(os * n));
    tml_engine_free(e);
    free(y);
}

/* Exports m with the schedule options, compiles it (strict C99, 64 guard
 * bytes after the arena: run() fails if one changes), runs the n inputs and
 * compares with the engine. `shrink` > 0 compiles the arena that many bytes
 * too small instead and expects the guard to catch it. Returns the arena. */
static tml_export_enc g_weights = TML_EXPORT_AUTO; /* the weight form the exports use */

static int64_t export_run(const tml_model *m, const tml_sched_opts *so, int portable, const int8_t *in8,
                          const int8_t *out8, int n, const char *tag, int shrink)
{
    tml_export_opts eo;
    tml_export_opts_default(&eo);
    eo.schedule = so;
    eo.weights = g_weights;
    if (portable) eo.kernels = TML_EXPORT_KERNELS_PORTABLE;
    tml_export_result r;
    tml_status st = tml_export_c(m, &eo, &r);
    if (st) fprintf(stderr, "%s: export: %s\n", tag, tml_last_error());
    assert_int_equal(st, TML_OK);
    assert_non_null(r.schedule);
    assert_int_equal(r.arena_bytes, r.schedule->arena_bytes);
    assert_int_equal(tml_schedule_check(m, r.schedule), TML_OK);
    /* info and eval compute the same schedule */
    tml_schedule s2;
    assert_int_equal(tml_export_schedule(m, &eo, &s2), TML_OK);
    assert_int_equal(s2.arena_bytes, r.arena_bytes);
    assert_int_equal(s2.n_steps, r.schedule->n_steps);
    tml_schedule_free(&s2);
    const char *dir = tu_tmpdir(tag);
    if (shrink) {
        /* the guard bytes start `shrink` bytes before the arena's end instead */
        char from[2][64], to[2][64];
        snprintf(from[0], sizeof from[0], "memset(a + %lld, 0x5A", (long long)r.arena_bytes);
        snprintf(to[0], sizeof to[0], "memset(a + %lld, 0x5A", (long long)(r.arena_bytes - shrink));
        snprintf(from[1], sizeof from[1], "if (a[%lld + g] != 0x5A)", (long long)r.arena_bytes);
        snprintf(to[1], sizeof to[1], "if (a[%lld + g] != 0x5A)", (long long)(r.arena_bytes - shrink));
        for (int k = 0; k < 2; k++) {
            char *at = strstr(r.source, from[k]);
            assert_non_null(at);
            char *src = malloc(strlen(r.source) + 32);
            assert_non_null(src);
            size_t pre = (size_t)(at - r.source);
            memcpy(src, r.source, pre);
            strcpy(src + pre, to[k]);
            strcat(src, at + strlen(from[k]));
            free(r.source);
            r.source = src;
        }
    }
    assert_int_equal(tml_export_write(&r, dir), TML_OK);
    int64_t is = tml_tensor_numel(&m->tensors[m->input]), os = tml_tensor_numel(&m->tensors[m->output]);
    assert_int_equal(tu_write_file(tu_path(dir, "in.bin"), in8, (size_t)(is * n)), 0);
    char log[8192];
    tu_gen_build(dir, "model", "model_", "-DMODEL_ARENA_GUARD=64", tag);
    int rc = tu_gen_run(dir, log, sizeof log);
    int64_t arena = r.arena_bytes;
    if (shrink) {
        /* the last bytes of the arena are used: the guard must see them change */
        if (rc == 0) fprintf(stderr, "%s: an arena %d bytes too small went unnoticed\n", tag, shrink);
        assert_true(rc != 0);
        tml_export_result_free(&r);
        return arena;
    }
    if (rc != 0) fprintf(stderr, "%s: run failed (%d; 3 = a guard byte after the arena changed): %s\n", tag, rc, log);
    assert_int_equal(rc, 0);
    size_t len = 0;
    uint8_t *got = tu_read_file(tu_path(dir, "out.bin"), &len);
    assert_non_null(got);
    assert_int_equal(len, (size_t)(os * n));
    assert_true(tu_equal_i8(tag, (const int8_t *)got, out8, len));
    free(got);
    tml_export_result_free(&r);
    return arena;
}

/* all: every kind alone too (else the default, portable and patches) */
static void export_variants(const tml_model *m, const float *x, int n, const char *name, int all)
{
    static const struct {
        unsigned modes;
        double recompute;
        int portable;
        const char *what;
    } runs[] = {
        {0, TML_SCHED_DEFAULT_RECOMPUTE, 0, "default"},
        {0, TML_SCHED_DEFAULT_RECOMPUTE, 1, "portable"},
        {TML_SCHED_INPLACE, 0.0, 0, "inplace"},
        {TML_SCHED_STREAM, 0.0, 0, "stream"},
        {TML_SCHED_PATCH, 100.0, 0, "patch"},
    };
    int8_t *in8, *out8;
    engine_int8(m, x, n, &in8, &out8);
    for (size_t q = 0; q < sizeof runs / sizeof runs[0]; q++) {
        if (!all && (runs[q].modes == TML_SCHED_INPLACE || runs[q].modes == TML_SCHED_STREAM)) continue;
        tml_sched_opts o;
        tml_sched_opts_default(&o);
        o.modes = runs[q].modes;
        o.max_recompute = runs[q].recompute;
        o.max_tiles = 3;
        char tag[96];
        snprintf(tag, sizeof tag, "xs_%s_%s", name, runs[q].what);
        for (char *c = tag; *c; c++)
            if (*c == ' ' || *c == '-' || *c == '+') *c = '_';
        int64_t arena = export_run(m, &o, runs[q].portable, in8, out8, n, tag, 0);
        if (getenv("TML_TEST_VERBOSE")) fprintf(stderr, "  %-32s arena %6lld\n", tag, (long long)arena);
        if (runs[q].portable) {
            /* an arena 16 bytes short is caught by the guard bytes (the
             * portable kernels: on this host the DSP kernels' larger scratch
             * at the top of the arena would not be touched) */
            snprintf(tag + strlen(tag), sizeof tag - strlen(tag), "_short");
            export_run(m, &o, 1, in8, out8, n, tag, 16);
        }
    }
    /* the layer-by-layer export (no schedule) is unchanged */
    free(in8);
    free(out8);
}

static void test_export_zoo(void **state)
{
    (void)state;
    static const char *const archs[] = {"lenet5", "dscnn", "mobilenet-tiny", "resnet8", "lenet300", "resnet8+tfl"};
    enum { N = SCHED_ASAN ? 4 : 16 };
    for (size_t z = 0; z < sizeof archs / sizeof archs[0]; z++) {
        tml_model *m = zoo_int8(archs[z]);
        float *x = test_images(m, N);
        export_variants(m, x, N, archs[z], 0);
        /* the targets hold for the exported C too (its kernels' scratch included) */
        tml_sched_opts o;
        tml_sched_opts_default(&o);
        tml_export_opts eo;
        tml_export_opts_default(&eo);
        eo.schedule = &o;
        tml_schedule s;
        assert_int_equal(tml_export_schedule(m, &eo, &s), TML_OK);
        fprintf(stderr, "%-15s exported arena %6lld (DSP kernels' scratch included), bound %6lld, extra %lld MACs\n",
                archs[z], (long long)s.arena_bytes, (long long)s.bound_bytes, (long long)s.extra_macs);
        if (z == 0) assert_true(s.arena_bytes <= 5000 && (double)s.extra_macs <= 0.05 * (double)s.macs);
        else if (z < 4) assert_true(2 * s.arena_bytes <= s.bound_bytes && (double)s.extra_macs <= 0.15 * (double)s.macs);
        tml_schedule_free(&s);
        free(x);
        tml_model_free(m);
    }
}

static void test_export_graphs(void **state)
{
    (void)state;
    for (size_t g = 0; g < sizeof graphs / sizeof graphs[0]; g++) {
        tml_zoo_opts zo = {.seed = 11 + g};
        tml_model *m = NULL;
        assert_int_equal(tml_zoo_from_json(graphs[g], &zo, &m), TML_OK);
        quantize_random(m, 100 + g);
        float *x = random_inputs(m, 5, 300 + g);
        char name[32];
        snprintf(name, sizeof name, "graph%zu", g);
        export_variants(m, x, 5, name, 1);
        free(x);
        tml_model_free(m);
    }
}

/* Random graphs (tests/sched_fixtures.h), every kind alone and the default,
 * exported and run (TML_SCHED_RANDOM_EXPORT=N for more). */
static void test_export_random(void **state)
{
    (void)state;
    int count = SCHED_ASAN ? 2 : 6;
    const char *env = getenv("TML_SCHED_RANDOM_EXPORT");
    if (env) count = atoi(env);
    int made = 0;
    for (uint64_t seed = 1; made < count && seed < (uint64_t)count * 20; seed++) {
        char spec[8192];
        tml_model *m = rand_model(seed, spec, sizeof spec);
        if (!m) continue;
        made++;
        float *x = random_inputs(m, 3, 2000 + seed);
        char name[32];
        snprintf(name, sizeof name, "random%llu", (unsigned long long)seed);
        if (getenv("TML_TEST_VERBOSE")) fprintf(stderr, "%s: %s\n", name, spec);
        export_variants(m, x, 3, name, 1);
        free(x);
        tml_model_free(m);
    }
    assert_int_equal(made, count);
}

/* Compact weight forms under a schedule: depthwise layers with sparse or
 * clustered weights run through conv2d (grouped), and the lean kernel reads
 * int8 inputs through their matrix kernels. */
static void test_export_compact(void **state)
{
    (void)state;
    enum { N = 8 };
    tml_model *m = zoo_int8("mobilenet-tiny");
    float *x = test_images(m, N);
    g_weights = TML_EXPORT_SPARSE;
    export_variants(m, x, N, "mobilenet_sparse", 0);
    free(x);
    tml_model_free(m);
    m = zoo_int8("dscnn");
    tml_cluster_opts co;
    tml_cluster_opts_default(&co);
    co.bits = 3;
    assert_int_equal(tml_cluster(m, &co, NULL), TML_OK);
    x = test_images(m, N);
    g_weights = TML_EXPORT_AUTO;
    export_variants(m, x, N, "dscnn_clustered", 0);
    free(x);
    tml_model_free(m);
}

/* The scheduled exports on the emulated Cortex-M4 (DSP kernels, 64 guard
 * bytes after the arena), bit-exact with the engine; skipped without the
 * toolchain or QEMU. */
static void test_export_emulator(void **state)
{
    (void)state;
    tml_device_opts d;
    tml_device_opts_default(&d);
    if (tml_device_check_tools(&d) != TML_OK) {
        fprintf(stderr, "SKIPPED: emulator runs of scheduled exports: %s\n", tml_last_error());
        skip();
    }
    static const char *const archs[] = {"lenet5", "dscnn", "mobilenet-tiny", "resnet8"};
    enum { N = 4 };
    for (size_t z = 0; z < sizeof archs / sizeof archs[0]; z++) {
        tml_model *m = zoo_int8(archs[z]);
        float *x = test_images(m, N);
        /* mobilenet-tiny (the quickest) also with patches, and with sparse weights
         * under a RAM limit that needs every lean conv kernel */
        for (int v = 0; v < (z == 2 ? 3 : 1); v++) {
            tml_sched_opts o;
            tml_sched_opts_default(&o);
            if (v == 1) {
                o.modes = TML_SCHED_PATCH | TML_SCHED_INPLACE;
                o.max_recompute = 100.0;
                o.max_tiles = 3;
            }
            if (v == 2) o.ram_limit = 1024;
            tml_device_opts dv;
            tml_device_opts_default(&dv);
            dv.exp.schedule = &o;
            if (v == 2) dv.exp.weights = TML_EXPORT_SPARSE;
            dv.cdefs = "-DMODEL_ARENA_GUARD=64";
            tml_device_result r;
            tml_status st = tml_device_run(m, x, N, &dv, &r);
            if (st) fprintf(stderr, "%s: device: %s\n", archs[z], tml_last_error());
            assert_int_equal(st, TML_OK);
            fprintf(stderr, "%-15s %s on %s: arena %6lld, %.0f instructions per inference, %lld mismatches\n", archs[z],
                    v == 2 ? "sparse, lean" : v ? "patch/in-place" : "default", r.target->name, (long long)r.exp.arena_bytes,
                    r.instr, (long long)r.mismatches);
            if (v == 2) assert_true(r.exp.lean_layers > 0);
            assert_int_equal(r.mismatches, 0);
            assert_true(r.exp.schedule != NULL);
            tml_device_result_free(&r);
        }
        free(x);
        tml_model_free(m);
    }
    /* two random graphs, default and patch schedules */
    int made = 0;
    for (uint64_t seed = 1; made < 2 && seed < 40; seed++) {
        char spec[8192];
        tml_model *m = rand_model(seed, spec, sizeof spec);
        if (!m) continue;
        made++;
        float *x = random_inputs(m, N, 2000 + seed);
        for (int v = 0; v < 2; v++) {
            tml_sched_opts o;
            tml_sched_opts_default(&o);
            if (v) {
                o.modes = TML_SCHED_PATCH;
                o.max_recompute = 100.0;
                o.max_tiles = 3;
            }
            tml_device_opts dv;
            tml_device_opts_default(&dv);
            dv.exp.schedule = &o;
            dv.cdefs = "-DMODEL_ARENA_GUARD=64";
            tml_device_result r;
            tml_status st = tml_device_run(m, x, N, &dv, &r);
            if (st) fprintf(stderr, "random graph %llu: device: %s\n%s\n", (unsigned long long)seed, tml_last_error(), spec);
            assert_int_equal(st, TML_OK);
            if (r.mismatches) fprintf(stderr, "random graph %llu (%s): %s\n", (unsigned long long)seed, v ? "patch" : "default", spec);
            assert_int_equal(r.mismatches, 0);
            tml_device_result_free(&r);
        }
        free(x);
        tml_model_free(m);
    }
    assert_int_equal(made, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_graphs),
        cmocka_unit_test(test_export_random),
        cmocka_unit_test(test_export_zoo),
        cmocka_unit_test(test_export_compact),
        cmocka_unit_test(test_export_emulator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
