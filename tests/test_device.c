/*
 * test_device.c - the exported C on emulated Cortex-M cores (lib/device/,
 * tml_device_run): every zoo model, a pruned + clustered LeNet-5 in every
 * weight form and a net with the ops the zoo lacks, each with the DSP and
 * the portable kernels, built with arm-none-eabi-gcc (strict warnings as
 * errors) and run on QEMU's mps2-an386 (Cortex-M4F) with the counting
 * plugin. Every output byte must equal the integer engine's on 20
 * Fashion-MNIST test images, and the counts must be consistent (layers add
 * up to the inference, min <= mean <= max, arena = .bss). Also: the other
 * cores (M3, M7, M33, M55), -Os, the cross-check of the counter against
 * -icount shift=0 + SysTick, the instruction budgets of issue 10 (exact
 * counts, not timings), missing tools and `tinyml profile`.
 *
 * The cases are a table (model x export options x core x -O level), so a
 * new numeric mode or schedule adds rows, not code. Without the tools
 * (Debian: gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm)
 * every test is skipped with a message saying so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tinyml/tml_device.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_quant.h"
#include "tinyml/tml_schedule.h"
#include "tinyml/tml_zoo.h"

#define N_IMAGES 20

/* ---- models, built once ------------------------------------------------------------------ */

enum { M_LENET300, M_LENET5, M_DSCNN, M_MOBILENET, M_RESNET8, M_COMPACT, M_OTHER, M_ODD, M_COUNT };
static const char *const model_names[M_COUNT] = {"lenet300", "lenet5",  "dscnn", "mobilenet-tiny",
                                                 "resnet8",  "compact", "other", "odd"};

/* Sizes the zoo avoids: 7 and 5 filters (an odd row of the interleaved row
 * pairs), 9 taps (padded to 12), depthwise convs on 7 channels (4 at a time
 * and 3 alone; 3x3 with padding, and 7x7: more taps than the tap list
 * holds), a 1x1 conv on 7 channels (gathered, not read in place), a dense
 * layer of 7*7*5 = 245 inputs (a partial group of 4) into 33 outputs, then 10. */
static const char odd_arch[] =
    "{\"name\": \"odd-sizes\", \"layers\": ["
    "{\"type\": \"conv2d\", \"filters\": 7, \"kernel\": 3, \"stride\": 2, \"act\": \"relu\"},"
    "{\"type\": \"depthwise_conv2d\", \"kernel\": 3, \"padding\": \"same\", \"act\": \"relu\"},"
    "{\"type\": \"depthwise_conv2d\", \"kernel\": 7, \"padding\": \"same\"},"
    "{\"type\": \"conv2d\", \"filters\": 5, \"kernel\": 1},"
    "{\"type\": \"maxpool\", \"size\": 2, \"stride\": 2},"
    "{\"type\": \"flatten\"},"
    "{\"type\": \"dense\", \"units\": 33, \"act\": \"relu\"},"
    "{\"type\": \"dense\", \"units\": 10}]}";
static tml_model *models[M_COUNT];
static float *images[M_COUNT];
static int tools_ok = -1;

static int have_tools(void)
{
    if (tools_ok < 0) {
        tools_ok = tml_device_check_tools(NULL) == TML_OK;
        if (!tools_ok)
            fprintf(stderr, "  SKIPPED: the Cortex-M emulator tests need the cross compiler and QEMU: %s\n",
                    tml_last_error());
    }
    return tools_ok;
}

static tml_model *model(int id)
{
    if (!models[id]) {
        if (id == M_COMPACT)
            models[id] = tu_compact_lenet5(3, 96);
        else if (id == M_OTHER) {
            models[id] = tu_other_ops_model();
            tu_quantize(models[id], 96);
        } else if (id == M_ODD) {
            tml_zoo_opts zo = {.seed = 5};
            assert_int_equal(tml_zoo_from_json(odd_arch, &zo, &models[id]), TML_OK);
            tu_quantize(models[id], 96);
        } else {
            models[id] = tu_zoo_model(model_names[id], 3);
            tu_quantize(models[id], 96);
        }
        images[id] = tu_fmnist_test(models[id], N_IMAGES);
    }
    return models[id];
}

/* ---- one case ------------------------------------------------------------------------------ */

typedef struct dev_case {
    int model;
    tml_export_enc weights;
    tml_export_kernels kernels;
    const char *target, *opt;
} dev_case;

/* Runs the case, checks bit-exactness and the counter's consistency; the
 * result is left in *r (caller frees). */
static void run_case(const dev_case *c, tml_device_result *r)
{
    tml_model *m = model(c->model);
    tml_device_opts o;
    tml_device_opts_default(&o);
    o.target = c->target ? c->target : "cortex-m4";
    o.opt = c->opt ? c->opt : "O2";
    o.exp.weights = c->weights;
    o.exp.kernels = c->kernels;
    o.werror = 1;
    tml_status st = tml_device_run(m, images[c->model], N_IMAGES, &o, r);
    char tag[160];
    snprintf(tag, sizeof tag, "%s %s %s -%s %s", model_names[c->model], tml_export_enc_name(c->weights),
             c->kernels == TML_EXPORT_KERNELS_PORTABLE ? "portable" : "auto", o.opt, o.target);
    if (st) fprintf(stderr, "%s: %s\n", tag, tml_last_error());
    assert_int_equal(st, TML_OK);
    if (r->mismatches)
        fprintf(stderr, "%s: %lld output bytes differ; first: sample %d output %d: device %d, engine %d\n", tag,
                (long long)r->mismatches, r->bad_sample, r->bad_index, r->bad_got, r->bad_want);
    assert_int_equal(r->mismatches, 0);
    assert_int_equal(r->n_samples, N_IMAGES);

    /* the counter: layers add up to the inference (which also copies the
     * input in and the output out), min <= mean <= max */
    double sum = 0;
    for (int i = 0; i < r->exp.n_layers; i++) {
        const tml_device_layer *L = &r->layers[i];
        assert_true(L->instr_min <= L->instr + 1e-9 && L->instr <= L->instr_max + 1e-9);
        if (r->exp.layers[i].macs > 0) assert_true(L->instr >= (double)r->exp.layers[i].macs_nz / 2);
        sum += L->instr;
    }
    assert_true(r->instr_min <= r->instr + 1e-9 && r->instr <= r->instr_max + 1e-9);
    assert_true(sum > 0 && sum <= r->instr);
    assert_true(r->instr - sum < 100 + (double)(r->exp.input_size + r->exp.output_size) * 2);
    /* the compiled model: the arena is model.o's .bss; the stack is small */
    assert_int_equal(r->bss_bytes, r->exp.arena_bytes);
    assert_true(r->text_bytes > 0 && r->rodata_bytes >= r->exp.weight_bytes);
    assert_true(r->stack_bytes > 0 && r->stack_bytes < 1024);
    /* per layer (the emulator's view of the stores) within the painted total */
    int64_t deepest = 0;
    for (int i = 0; i < r->exp.n_layers; i++) {
        assert_true(r->layers[i].stack_bytes >= 0 && r->layers[i].stack_bytes <= r->stack_bytes);
        if (r->layers[i].stack_bytes > deepest) deepest = r->layers[i].stack_bytes;
    }
    assert_true(deepest * 2 >= r->stack_bytes);
    assert_int_equal(r->exp.dsp_kernels, c->kernels == TML_EXPORT_KERNELS_AUTO);
    fprintf(stderr, "  %-44s %10.0f instructions (%5.2f/MAC), code %5lld B, stack %4lld B, exact on %d images\n", tag,
            r->instr, r->instr / (double)(r->exp.macs_nz ? r->exp.macs_nz : 1), (long long)r->text_bytes,
            (long long)r->stack_bytes, r->n_samples);
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* Every zoo model, dense weights, both kernel flavours on the Cortex-M4:
 * bit-exact; the DSP kernels execute fewer instructions; the budgets of
 * issue 10 (dense, -O2; exact emulator counts, independent of the weight
 * values for dense forms). */
static void test_zoo_models(void **state)
{
    (void)state;
    if (!have_tools()) skip();
    static const struct {
        int model;
        double budget; /* instructions per inference at -O2 with DSP, 0 = none */
    } zoo[] = {
        {M_LENET300, 0}, {M_LENET5, 3.9e6}, {M_DSCNN, 37.7e6 / 2.5}, {M_MOBILENET, 9.2e6 / 2.5}, {M_RESNET8, 57.7e6 / 2.5},
    };
    for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++) {
        dev_case dsp = {zoo[i].model, TML_EXPORT_DENSE, TML_EXPORT_KERNELS_AUTO, NULL, NULL};
        dev_case port = dsp;
        port.kernels = TML_EXPORT_KERNELS_PORTABLE;
        tml_device_result a, b;
        run_case(&dsp, &a);
        run_case(&port, &b);
        assert_true(a.instr < b.instr);
        if (zoo[i].budget > 0) {
            if (a.instr > zoo[i].budget)
                fprintf(stderr, "%s: %.0f instructions, budget %.0f\n", model_names[zoo[i].model], a.instr, zoo[i].budget);
            assert_true(a.instr <= zoo[i].budget);
        }
        tml_device_result_free(&a);
        tml_device_result_free(&b);
    }
}

/* Pruned + clustered LeNet-5: the chosen forms (against dense: the speed-up
 * of issue 10) and each form forced (sparse rows with filler entries,
 * per-tensor and per-channel codebooks), both flavours. */
static void test_compact_forms(void **state)
{
    (void)state;
    if (!have_tools()) skip();
    /* issue 10: pruned + clustered (default forms) at least 1.5x faster than
     * the same network dense at -O2, and faster at -Os */
    static const char *const levels[] = {"O2", "Os"};
    for (int l = 0; l < 2; l++) {
        dev_case dense = {M_COMPACT, TML_EXPORT_DENSE, TML_EXPORT_KERNELS_AUTO, NULL, levels[l]};
        dev_case chosen = {M_COMPACT, TML_EXPORT_AUTO, TML_EXPORT_KERNELS_AUTO, NULL, levels[l]};
        tml_device_result a, b;
        run_case(&dense, &a);
        run_case(&chosen, &b);
        fprintf(stderr, "  -%s: dense %.0f, pruned + clustered %.0f instructions: %.2fx\n", levels[l], a.instr, b.instr,
                a.instr / b.instr);
        assert_true(a.instr >= (l == 0 ? 1.5 : 1.0) * b.instr);
        tml_device_result_free(&a);
        tml_device_result_free(&b);
    }
    static const tml_export_enc forms[] = {TML_EXPORT_AUTO, TML_EXPORT_SPARSE, TML_EXPORT_CLUSTER,
                                           TML_EXPORT_SPARSE_CLUSTER};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        for (int k = 0; k < 2; k++) {
            dev_case c = {M_COMPACT, forms[i], k ? TML_EXPORT_KERNELS_PORTABLE : TML_EXPORT_KERNELS_AUTO, NULL, NULL};
            if (k == 0 && forms[i] == TML_EXPORT_AUTO) continue; /* ran above */
            tml_device_result r;
            run_case(&c, &r);
            tml_device_result_free(&r);
        }
}

/* Average pool and max pool with padding, ReLU6, depth multiplier 2 (the
 * DSP depthwise falls back to scalar), a 1x3 kernel, dilation, groups, add,
 * softmax; channel counts that are not multiples of 4; odd numbers of rows
 * and columns (odd_arch); dense and sparse. */
static void test_other_ops(void **state)
{
    (void)state;
    if (!have_tools()) skip();
    for (int mdl = M_OTHER; mdl <= M_ODD; mdl++)
        for (int k = 0; k < 2; k++)
            for (int sp = 0; sp < 2; sp++) {
                dev_case c = {mdl, sp ? TML_EXPORT_SPARSE : TML_EXPORT_AUTO,
                              k ? TML_EXPORT_KERNELS_PORTABLE : TML_EXPORT_KERNELS_AUTO, NULL, NULL};
                tml_device_result r;
                run_case(&c, &r);
                tml_device_result_free(&r);
            }
}

/* Fold, calibrate (96 training images) and quantize with weights at `bits`. */
static void quantize_bits(tml_model *m, int bits)
{
    assert_int_equal(tml_fold(m, NULL), TML_OK);
    tml_dataset *ds = tu_fmnist("train");
    tml_calib cal;
    tml_calib_opts co = {.samples = 96, .seed = 5, .batch = 32};
    assert_int_equal(tml_calibrate(m, ds, &co, &cal), TML_OK);
    tml_quant_opts qo;
    tml_quant_opts_default(&qo);
    qo.weight_bits = bits;
    assert_int_equal(tml_quantize(m, &cal, &qo), TML_OK);
    tml_calib_free(&cal);
    tml_dataset_free(ds);
}

/* Packed 2-, 3- and 4-bit weights on the DSP kernels, bit-exact with the
 * engine at -O2 and -Os, layer by layer and under memory schedules (where a
 * dense layer may get no int16 scratch and a conv the lean kernel: the
 * packed kernel's int8-vector path, which read int8 as int16 once): the
 * odd-sizes net (3x3 conv to 7 channels on 13x13 = odd pixel counts, a
 * gathered 1x1 conv on 7 channels, 245 -> 33 -> 10 dense) and
 * mobilenet-tiny at 4 bits (1x1 convs to 64 and 128 channels, dense 128 -> 10). */
static void test_packed_low_bit(void **state)
{
    (void)state;
    if (!have_tools()) skip();
    const struct {
        const char *arch; /* NULL: odd_arch */
        int bits;
    } nets[] = {{NULL, 2}, {NULL, 3}, {NULL, 4}, {"mobilenet-tiny", 4}};
    static const char *const levels[] = {"O2", "Os"};
    for (size_t n = 0; n < sizeof nets / sizeof *nets; n++) {
        tml_model *m = NULL;
        if (nets[n].arch)
            m = tu_zoo_model(nets[n].arch, 3);
        else {
            tml_zoo_opts zo = {.seed = 5};
            assert_int_equal(tml_zoo_from_json(odd_arch, &zo, &m), TML_OK);
        }
        quantize_bits(m, nets[n].bits);
        float *x = tu_fmnist_test(m, N_IMAGES);
        for (int sc = 0; sc < 3; sc++)
            for (int l = 0; l < 2; l++) {
                if (nets[n].arch && l == 1 && sc != 1) continue; /* the big net: fewer builds */
                tml_sched_opts so;
                tml_sched_opts_default(&so);
                so.enabled = 1;
                if (sc == 2) so.ram_limit = 1; /* the least RAM any schedule reaches: lean convs */
                tml_device_opts o;
                tml_device_opts_default(&o);
                o.opt = levels[l];
                o.werror = 1;
                o.exp.weights = TML_EXPORT_PACKED;
                o.exp.schedule = sc ? &so : NULL;
                tml_device_result r;
                tml_status st = tml_device_run(m, x, N_IMAGES, &o, &r);
                if (st) fprintf(stderr, "%s: %s\n", nets[n].arch ? nets[n].arch : "odd", tml_last_error());
                assert_int_equal(st, TML_OK);
                int packed = 0;
                for (int i = 0; i < r.exp.n_layers; i++) packed += r.exp.layers[i].enc == TML_EXPORT_PACKED;
                fprintf(stderr,
                        "  %-14s W%d packed %-9s -%s: %d packed layers, %lld lean, arena %lld B, %.0f instructions, "
                        "%lld differing bytes\n",
                        nets[n].arch ? nets[n].arch : "odd-sizes", nets[n].bits,
                        sc == 0 ? "plain" : sc == 1 ? "scheduled" : "least-RAM", levels[l], packed,
                        (long long)r.exp.lean_layers, (long long)r.exp.arena_bytes, r.instr, (long long)r.mismatches);
                assert_true(r.exp.dsp_kernels);
                assert_true(packed >= 3);
                assert_int_equal(r.mismatches, 0);
                tml_device_result_free(&r);
            }
        free(x);
        tml_model_free(m);
    }
}

/* The other cores QEMU models, -Os, and the same counts on a second run. */
static void test_cores_and_levels(void **state)
{
    (void)state;
    if (!have_tools()) skip();
    static const char *const cores[] = {"cortex-m3", "cortex-m7", "cortex-m33", "cortex-m55"};
    for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++) {
        /* the M3 has no DSP extension: the same source compiles to the portable kernels */
        dev_case c = {M_OTHER, TML_EXPORT_AUTO, TML_EXPORT_KERNELS_AUTO, cores[i], NULL};
        tml_device_result r;
        run_case(&c, &r);
        tml_device_result_free(&r);
    }
    /* -Os and -O3 inline small kernels into model_run: loops right after a
     * layer hook must not be counted as the hook (the markers sit on NOPs) */
    static const char *const levels[] = {"Os", "O3"};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        dev_case c = {M_OTHER, TML_EXPORT_AUTO, TML_EXPORT_KERNELS_AUTO, NULL, levels[i]};
        tml_device_result r;
        run_case(&c, &r);
        tml_device_result_free(&r);
    }
    dev_case os = {M_LENET5, TML_EXPORT_DENSE, TML_EXPORT_KERNELS_AUTO, NULL, "Os"};
    tml_device_result a, b;
    run_case(&os, &a);
    assert_true(a.instr <= 5.5e6); /* issue 10: dense LeNet-5 at -Os */
    assert_true(a.text_bytes <= 6144); /* and its kernels in at most 6 KB of flash */
    run_case(&os, &b);
    assert_true(a.instr == b.instr && a.instr_min == b.instr_min && a.instr_max == b.instr_max);
    for (int i = 0; i < a.exp.n_layers; i++) assert_true(a.layers[i].instr == b.layers[i].instr);
    tml_device_result_free(&a);
    tml_device_result_free(&b);
}

/* The code size, -Os on the Cortex-M4, every zoo model and the pruned +
 * clustered LeNet-5 in each --optimize mode: bit-exact (TML_SMALL kernels
 * and the step table included); the exporter's estimate (code_bytes, what
 * `tinyml fit` adds to the const data) within 12% + 128 bytes of the
 * compiled .text; --optimize size no larger than balanced, and within the
 * targets of the code-size work (LeNet-5 <= 3.5 KB, resnet8 <= 7 KB). */
static void test_code_size(void **state)
{
    (void)state;
    if (!have_tools()) skip();
    static const int ids[] = {M_LENET300, M_LENET5, M_DSCNN, M_MOBILENET, M_RESNET8, M_COMPACT};
    static const tml_export_optimize modes[] = {TML_EXPORT_OPT_BALANCED, TML_EXPORT_OPT_SIZE, TML_EXPORT_OPT_SPEED};
    static const char *const mode_names[] = {"balanced", "size", "speed"};
    tml_sched_opts so;
    tml_sched_opts_default(&so);
    for (size_t j = 0; j < 2 * sizeof ids / sizeof ids[0]; j++) {
        const size_t i = j / 2;
        const int sched = (int)(j % 2); /* layer by layer, then the memory schedule (the step table) */
        tml_model *m = model(ids[i]);
        int64_t text[3] = {0};
        for (int k = 0; k < 3; k++) {
            tml_device_opts o;
            tml_device_opts_default(&o);
            o.opt = "Os";
            o.exp.optimize = modes[k];
            o.exp.schedule = sched ? &so : NULL;
            o.werror = 1;
            tml_device_result r;
            tml_status st = tml_device_run(m, images[ids[i]], 4, &o, &r);
            if (st) fprintf(stderr, "%s %s: %s\n", model_names[ids[i]], mode_names[k], tml_last_error());
            assert_int_equal(st, TML_OK);
            assert_int_equal(r.mismatches, 0);
            double err = (double)(r.exp.code_bytes - r.text_bytes);
            fprintf(stderr, "  %-16s %-8s %-8s -Os: code %5lld B, estimate %5lld B (%+.1f%%), const %lld B, %.0f instructions\n",
                    model_names[ids[i]], mode_names[k], sched ? "schedule" : "layers", (long long)r.text_bytes,
                    (long long)r.exp.code_bytes,
                    100 * err / (double)r.text_bytes, (long long)r.rodata_bytes, r.instr);
            assert_true(err <= 0.12 * (double)r.text_bytes + 128 && -err <= 0.12 * (double)r.text_bytes + 128);
            text[k] = r.text_bytes;
            tml_device_result_free(&r);
        }
        assert_true(text[1] <= text[0]);
        if (ids[i] == M_LENET5) assert_true(text[1] <= 3584);
        if (ids[i] == M_RESNET8) assert_true(text[1] <= 7168);
    }
}

/* The plugin's count against QEMU's -icount shift=0 (one instruction per ns
 * of virtual time) read through SysTick around each inference: they agree
 * to a tick (40 instructions on the 25 MHz mps2-an386) plus the few
 * instructions that read SysTick. */
static void test_systick_cross_check(void **state)
{
    (void)state;
    if (!have_tools()) skip();
    tml_model *m = model(M_MOBILENET);
    tml_device_opts o;
    tml_device_opts_default(&o);
    o.systick = 1;
    tml_device_result r;
    tml_status st = tml_device_run(m, images[M_MOBILENET], 4, &o, &r);
    if (st) fprintf(stderr, "systick: %s\n", tml_last_error());
    assert_int_equal(st, TML_OK);
    assert_int_equal(r.mismatches, 0);
    fprintf(stderr, "  counter %.0f, SysTick %.0f (%.0f instructions a tick)\n", r.instr, r.systick_instr,
            r.systick_tick_instr);
    assert_true(r.systick_tick_instr == 40.0);
    double d = r.systick_instr - r.instr;
    assert_true(d > -r.systick_tick_instr - 16 && d < r.systick_tick_instr + 16);
    tml_device_result_free(&r);
}

/* Bad options and missing tools are errors that say what to do. */
static void test_refusals(void **state)
{
    (void)state;
    tml_model *m = tu_zoo_model("lenet300", 3);
    float x[784] = {0};
    tml_device_opts o;
    tml_device_opts_default(&o);
    tml_device_result r;
    /* a float model */
    if (have_tools()) {
        assert_int_equal(tml_device_run(m, x, 1, &o, &r), TML_ERR_UNSUPPORTED);
        assert_non_null(strstr(tml_last_error(), "quantize first"));
    }
    o.target = "cortex-a53";
    assert_int_equal(tml_device_run(m, x, 1, &o, &r), TML_ERR_INVALID);
    assert_non_null(strstr(tml_last_error(), "cortex-m4"));
    o.target = "m4";
    o.opt = "O9";
    assert_int_equal(tml_device_run(m, x, 1, &o, &r), TML_ERR_INVALID);
    /* a plugin that is not there */
    o.opt = "O2";
    o.plugin = "/nonexistent/tinyml-icount.so";
    if (have_tools()) {
        assert_int_equal(tml_device_check_tools(&o), TML_ERR_UNSUPPORTED);
        assert_non_null(strstr(tml_last_error(), "tinyml-icount.so"));
    }
    /* no cross compiler on the PATH: the message names the Debian packages */
    const char *path = getenv("PATH");
    char *saved = path ? strdup(path) : NULL;
    setenv("PATH", "/nonexistent", 1);
    o.plugin = NULL;
    tml_status st = tml_device_check_tools(&o);
    if (saved) setenv("PATH", saved, 1);
    free(saved);
    assert_int_equal(st, TML_ERR_UNSUPPORTED);
    assert_non_null(strstr(tml_last_error(), "gcc-arm-none-eabi"));
    assert_non_null(strstr(tml_last_error(), "qemu-system-arm"));
    assert_int_equal(r.n_samples, 0);
    tml_model_free(m);
}

/* `tinyml profile` through the real program. */
static void test_cli(void **state)
{
    (void)state;
    const char *t = getenv("TINYML");
    char cmd[4096], out[32768];
    if (!t || !*t) {
        fprintf(stderr, "  TINYML not set: CLI checks skipped\n");
        return;
    }
    snprintf(cmd, sizeof cmd, "'%s' profile --help", t);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "Examples:"));
    const char *dir = tu_tmpdir("device_cli");
    char fm[1200], qm[1200];
    snprintf(fm, sizeof fm, "%s/f.tmf", dir);
    snprintf(qm, sizeof qm, "%s/q.tmf", dir);
    snprintf(cmd, sizeof cmd, "'%s' create lenet300 -q -o '%s' && '%s' quantize '%s' --calib fashion-mnist --calib-samples 64 -q -o '%s'",
             t, fm, t, fm, qm);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    /* without the tools: exit 1, the packages named */
    snprintf(cmd, sizeof cmd, "PATH=/nonexistent '%s' profile '%s' --limit 2", t, qm);
    assert_int_equal(tu_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "libnewlib-arm-none-eabi"));
    /* usage errors */
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --target cortex-a9", t, qm);
    assert_int_equal(tu_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --opt O7", t, qm);
    assert_int_equal(tu_run(cmd, out, sizeof out), 2);
    if (!have_tools()) return;
    /* a float model is refused (1) */
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --limit 2", t, fm);
    assert_int_equal(tu_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "quantize first"));
    /* a run: the table in CSV with the per-layer rows and the bit-exact line */
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --limit 3 --format csv --mhz 100 -q", t, qm);
    int rc = tu_run(cmd, out, sizeof out);
    if (rc) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "bit-exact,yes"));
    assert_non_null(strstr(out, "fc1,dense,300,dense,"));
    assert_non_null(strstr(out, "at 100 MHz"));
    /* the first example of --help, as written */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' create lenet5 -q -o lenet5.tmf && '%s' quantize lenet5.tmf --calib fashion-mnist "
             "--calib-samples 64 -q -o lenet5-int8.tmf && '%s' profile lenet5-int8.tmf --target cortex-m4 --limit 20",
             dir, t, t, t);
    rc = tu_run(cmd, out, sizeof out);
    if (rc) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "Cortex-M4F"));
    /* JSON too, and a kept work directory with the sources and the program */
    snprintf(cmd, sizeof cmd, "'%s' profile '%s' --limit 2 --format json --portable --opt Os --keep '%s/work' -q", t, qm,
             dir);
    assert_int_equal(tu_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"layers\""));
    size_t len;
    uint8_t *elf = tu_read_file(tu_path(dir, "work/prog.elf"), &len);
    assert_non_null(elf);
    free(elf);
    /* a model without its dataset (the imported MLPerf Tiny KWS): refused with
     * fashion-mnist, pointing at --data random, which runs it */
    const char *src = getenv("TML_SOURCE_DIR");
    if (!src || !*src) return;
    char kws[1200];
    snprintf(kws, sizeof kws, "%s/tests/fixtures/tflite/kws_ref_model/model.tflite", src);
    snprintf(cmd, sizeof cmd, "'%s' import '%s' -q | '%s' profile --limit 2", t, kws, t);
    assert_int_equal(tu_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "--data random"));
    snprintf(cmd, sizeof cmd, "'%s' import '%s' -q | '%s' profile --data random --limit 2 --format csv -q", t, kws, t);
    rc = tu_run(cmd, out, sizeof out);
    if (rc) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "bit-exact,yes"));
    assert_non_null(strstr(out, "depthwise_conv2d_3,depthwise_conv2d,"));
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < M_COUNT; i++) {
        tml_model_free(models[i]);
        free(images[i]);
        models[i] = NULL;
        images[i] = NULL;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_zoo_models),
        cmocka_unit_test(test_compact_forms),
        cmocka_unit_test(test_other_ops),
        cmocka_unit_test(test_packed_low_bit),
        cmocka_unit_test(test_cores_and_levels),
        cmocka_unit_test(test_code_size),
        cmocka_unit_test(test_systick_cross_check),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
