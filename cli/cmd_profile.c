/*
 * cmd_profile.c - `tinyml profile MODEL --target cortex-m4`: the exported C
 * built for a Cortex-M core, run on QEMU's model of it with real samples,
 * checked byte for byte against the int8 engine, measured per layer
 * (lib/device/device.c, docs/deploy.md#measuring-on-the-emulator).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tinyml/tml_schedule.h"
#include "tinyml/tml_device.h"
#include "tinyml/tml_engine.h"

static const char help[] =
    "Usage: tinyml profile [options] [MODEL] [--target cortex-m4] [--data D --limit N]\n"
    "\n"
    "Exports an INT8 model as C (as `tinyml export --c` does), builds it for a\n"
    "Cortex-M core with arm-none-eabi-gcc and a bare-metal harness, runs N real\n"
    "samples on QEMU's model of the core, checks every output byte against the\n"
    "int8 engine (`tinyml eval`), and prints per layer: instructions executed,\n"
    "instructions per MAC, flash and the RAM it needs; then the totals, the\n"
    "deepest stack and the latency at --mhz.\n"
    "\n"
    "Instructions are counted exactly by a QEMU plugin (tinyml-icount.so) at\n"
    "marker labels between the layers (one NOP each, not counted): repeatable to\n"
    "the instruction. The latency\n"
    "assumes one instruction per cycle: QEMU models no pipeline, no flash wait\n"
    "states and no caches, so a board is usually somewhat slower (a Cortex-M4\n"
    "at 0 wait states runs these kernels at about 1.1-1.3 cycles per\n"
    "instruction). An output byte that differs from the engine's is an error.\n"
    "\n"
    "Needs the Debian packages gcc-arm-none-eabi, libnewlib-arm-none-eabi and\n"
    "qemu-system-arm (scripts/install-deps.sh --mcu).\n"
    "\n"
    "Options:\n"
    "  --target T         cortex-m4 (default; QEMU mps2-an386), cortex-m3 (mps2-an385,\n"
    "                     no DSP: portable kernels), cortex-m7 (mps2-an500),\n"
    "                     cortex-m33 (mps2-an505), cortex-m55 (mps3-an547)\n"
    "  -d, --data SPEC    samples to run (default fashion-mnist:test), as for eval;\n"
    "                     random: random input codes (for a model without its\n"
    "                     dataset, e.g. an imported .tflite; counts barely change)\n"
    "  --limit N          how many (default 100; the first N in file order)\n"
    "  --opt O            compiler optimization: O2, Os, O3, O1, O0 (default O2; Os\n"
    "                     when the weight forms are chosen for size, by --optimize\n"
    "                     size or by the goal stored in the model, as tinyml fit\n"
    "                     stores it: size mode's least code is meant for -Os)\n"
    "  --mhz F            core clock for the latency column (default 80)\n"
    "  --optimize G       weight forms chosen for: balanced (default), speed or size\n"
    "                     (as tinyml export)\n"
    "  --form F           one form for every layer where it applies: dense, sparse,\n"
    "                     cluster, sparse+cluster or packed (--dense = --form dense)\n"
    "  --portable         the portable scalar kernels even where the core has DSP\n"
    "  --max-recompute P, --ram-limit BYTES, --no-schedule\n"
    "                     the memory schedule, as tinyml export --c (default: the one\n"
    "                     stored in the model, else the least RAM within 5% extra MACs);\n"
    "                     a streamed or tiled segment's instructions are counted at its\n"
    "                     last layer\n"
    "  --keep DIR         build in DIR and keep it (sources, program, logs)\n"
    "  --systick          cross-check the counter: run again under -icount shift=0\n"
    "                     and read SysTick around each inference\n"
    "  --format F         table (default), md, csv or json\n"
    "  -q, --quiet        no log on stderr\n"
    "\n"
    "Examples:\n"
    "  tinyml profile lenet5-int8.tmf --target cortex-m4 --limit 20\n"
    "  tinyml profile small.tmf --opt Os --mhz 168 --format md\n"
    "  tinyml profile kws-int8.tmf --target cortex-m7 --portable --keep build-m7\n"
    "  tinyml import kws.tflite | tinyml profile --data random --limit 10\n";

int cmd_profile(int argc, char **argv)
{
    cli c;
    cli_init(&c, "profile", help, argc, argv);
    const char *pos[1] = {NULL}, *data = "fashion-mnist", *target = "cortex-m4", *opt = NULL, *keep = NULL;
    cli_export_flags ef = {0};
    int limit = 100, systick = 0;
    double mhz = 80;
    cli_sched so;
    cli_sched_init(&so);
    while (cli_next(&c)) {
        if (cli_sched_flag(&c, &so)) continue;
        if (cli_str(&c, "data", 'd', &data)) continue;
        if (cli_int(&c, "limit", 0, 1, 100000, &limit)) continue;
        if (cli_str(&c, "target", 0, &target)) continue;
        if (cli_str(&c, "opt", 0, &opt)) continue;
        if (cli_double(&c, "mhz", 0, 1e-3, 1e5, &mhz)) continue;
        if (cli_str(&c, "keep", 0, &keep)) continue;
        if (cli_export_flag(&c, &ef)) continue;
        if (cli_flag(&c, "systick", 0)) {
            systick = 1;
            continue;
        }
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    tml_device_opts o;
    tml_device_opts_default(&o);
    if (!tml_device_target_find(target)) {
        char names[256] = "";
        for (int i = 0; tml_device_target_at(i); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", tml_device_target_at(i)->name);
        cli_usage_error(&c, "--target: unknown core '%s' (choose %s)", target, names);
    }
    if (opt && strcmp(opt, "O2") && strcmp(opt, "Os") && strcmp(opt, "O3") && strcmp(opt, "O1") && strcmp(opt, "O0"))
        cli_usage_error(&c, "--opt: '%s' is not one of O2, Os, O3, O1, O0", opt);
    o.target = target;
    cli_export_flags_apply(&c, &ef, &o.exp);
    o.workdir = keep;
    o.systick = systick;
    o.cancel = &cli_cancel_flag;
    /* missing tools are found before the model and the data are read */
    tml_status st = tml_device_check_tools(&o);
    if (st) cli_fail_status(&c, st);

    tml_model *m = cli_load_model(&c, pos[0]);
    tml_sched_opts sopt;
    const char *ofrom = cli_export_stored(&c, &ef, m, &o.exp);
    if (strcmp(ofrom, "stored in the model") == 0)
        cli_log(&c, "weight forms: --optimize %s, stored in the model", tml_export_optimize_name(o.exp.optimize));
    /* the size goal's least code is what -Os is for (fit verifies such an answer at -Os) */
    if (!opt) {
        opt = o.exp.optimize == TML_EXPORT_OPT_SIZE ? "Os" : "O2";
        if (o.exp.optimize == TML_EXPORT_OPT_SIZE) cli_log(&c, "compiled -Os: the weight forms are chosen for size (--opt to change)");
    }
    o.opt = opt;
    const char *from = "default";
    if (tml_model_is_quantized(m)) cli_sched_opts(&c, &so, m, &sopt, &from);
    else tml_sched_opts_default(&sopt); /* the export refuses the model */
    o.exp.schedule = &sopt;
    const tml_tensor *it = &m->tensors[m->input];
    const int64_t in_size = tml_tensor_numel(it);
    tml_dataset *ds = NULL;
    tml_samples *s = NULL;
    float *x = NULL;
    int n = limit;
    if (strcmp(data, "random") == 0) {
        /* counts hardly depend on the values (no kernel branches on them), so a
         * model without a dataset here, e.g. an imported one, is profiled on
         * uniformly random input codes: the grid of the input quantization */
        x = malloc(sizeof(float) * (size_t)(in_size * n));
        if (!x) cli_fail(&c, "out of memory");
        tml_rng rng;
        tml_rng_seed(&rng, 1);
        const float sc = it->q.n ? it->q.scale[0] : 1.0f / 128;
        const int32_t zp = it->q.n ? it->q.zero_point[0] : 0;
        for (int64_t i = 0; i < in_size * n; i++) x[i] = sc * (float)((int32_t)tml_rng_below(&rng, 256) - 128 - zp);
    } else {
        ds = cli_open_dataset(&c, data, "test");
        const tml_dataset_info *info = tml_dataset_get_info(ds);
        if ((st = tml_check_dataset_fits(m, info)))
            cli_fail(&c, "%s (--data random runs random inputs)", tml_last_error());
        if ((st = tml_dataset_load(ds, limit, &s))) cli_fail_status(&c, st);
        n = (int)(s->n < limit ? s->n : limit);
        x = malloc(sizeof(float) * (size_t)(in_size * (n ? n : 1)));
        int32_t *lab = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        int64_t *idx = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
        if (!x || !lab || !idx) cli_fail(&c, "out of memory");
        for (int i = 0; i < n; i++) idx[i] = i;
        tml_samples_gather(s, idx, n, x, lab);
        tml_preproc_apply(&m->meta.pre, in_size * n, s->c, x);
        free(lab);
        free(idx);
    }

    const tml_device_target *tg = tml_device_target_find(target);
    cli_log(&c, "building for %s and running %d sample%s on QEMU %s ...", tg->core, n, n == 1 ? "" : "s", tg->machine);
    tml_device_result r;
    st = tml_device_run(m, x, n, &o, &r);
    if (st) cli_fail_status(&c, st);

    /* per layer */
    static const char *const lh[] = {"layer",   "op",      "output", "weights", "instructions", "instr/MAC",
                                     "MACs",    "flash_B", "ram_B",  "stack_B", "latency_ms"};
    tml_table *lt = tml_table_new("layers", "Per layer, one inference", 11, lh);
    int64_t macs_run = 0;
    /* A streamed or tiled segment runs its layers interleaved: the emulator
     * counts them together, at the segment's last layer. The others show "-"
     * (not 0), and the last one's instr/MAC is over the segment's MACs. */
    const tml_schedule *sc = r.exp.schedule;
    int64_t seg_run = 0;
    int n_merged = 0;
    char merged[256] = "";
    for (int i = 0; i < r.exp.n_layers; i++) {
        const tml_export_layer *L = &r.exp.layers[i];
        const tml_device_layer *D = &r.layers[i];
        const tml_sched_segment *g = NULL;
        for (int k = 0; sc && k < sc->n_segments; k++)
            if (sc->segments[k].first <= i && i <= sc->segments[k].last && sc->segments[k].first < sc->segments[k].last)
                g = &sc->segments[k];
        tml_table_add_row(lt);
        tml_table_str(lt, 0, L->name);
        tml_table_str(lt, 1, tml_op_name(L->op));
        tml_table_str(lt, 2, L->shape);
        tml_table_str(lt, 3, L->enc == TML_EXPORT_NONE ? "-" : tml_export_enc_name(L->enc));
        /* the MACs the kernel executes: every weight slot of a dense form, the
         * stored entries of a sparse one */
        const int64_t run = L->enc == TML_EXPORT_DENSE ? L->macs : L->macs_nz;
        macs_run += run;
        if (g && i == g->first) seg_run = 0;
        seg_run += run;
        if (g && i < g->last) {
            tml_table_str(lt, 4, "-");
            tml_table_str(lt, 5, "-");
        } else {
            const int64_t per = g ? seg_run : run;
            tml_table_num(lt, 4, D->instr, "%.0f");
            tml_table_num(lt, 5, per > 0 ? D->instr / (double)per : 0.0 / 0.0, "%.2f");
            if (g && i == g->last && n_merged < 4) {
                size_t u = strlen(merged);
                snprintf(merged + u, sizeof merged - u, "%s%.24s..%.24s at %.24s", n_merged ? ", " : "",
                         r.exp.layers[g->first].name, L->name, L->name);
                n_merged++;
            }
        }
        tml_table_int(lt, 6, run);
        tml_table_int(lt, 7, D->const_bytes);
        tml_table_int(lt, 8, L->live_bytes);
        tml_table_int(lt, 9, D->stack_bytes);
        if (g && i < g->last)
            tml_table_str(lt, 10, "-");
        else
            tml_table_num(lt, 10, D->instr / (mhz * 1e3), "%.3f");
    }
    tml_table_add_row(lt);
    tml_table_mark_total(lt);
    tml_table_str(lt, 0, "model_run");
    tml_table_num(lt, 4, r.instr, "%.0f");
    tml_table_num(lt, 5, macs_run > 0 ? r.instr / (double)macs_run : 0.0 / 0.0, "%.2f");
    tml_table_int(lt, 6, macs_run);
    tml_table_int(lt, 7, r.rodata_bytes + r.text_bytes);
    tml_table_int(lt, 8, r.exp.arena_bytes);
    tml_table_int(lt, 9, r.stack_bytes);
    tml_table_num(lt, 10, r.instr / (mhz * 1e3), "%.3f");
    tml_table_note(lt, "instructions: executed per inference, mean of %d samples (exact counts from the emulator); "
                       "MACs: those the kernel executes (dense forms: all, sparse forms: the stored weights); flash_B: the layer's const data (nm of model.o), the total adds "
                       "the code; ram_B: arena bytes live during the layer; stack_B: deepest stack use during the layer (stores watched by the emulator)",
                   n);
    if (n_merged)
        tml_table_note(lt, "streamed / tiled segments run their layers interleaved: their instructions (and latency) are counted "
                           "together at the last layer, its instr/MAC over the segment's MACs (%s)",
                       merged);

    /* summary */
    static const char *const sh[] = {"what", "value", "note"};
    tml_table *t = tml_table_new("summary", "Cortex-M profile", 3, sh);
    char v[96], note[256];
#define ROW(what, val, ...)                                                                                            \
    do {                                                                                                               \
        tml_table_add_row(t);                                                                                          \
        tml_table_str(t, 0, what);                                                                                     \
        tml_table_str(t, 1, val);                                                                                      \
        snprintf(note, sizeof note, __VA_ARGS__);                                                                      \
        tml_table_str(t, 2, note);                                                                                     \
    } while (0)
    snprintf(v, sizeof v, "%s", tg->core);
    ROW("target", v, "QEMU %s, %s", tg->machine, r.qemu_version);
    snprintf(v, sizeof v, "-%s", r.opt);
    ROW("compiler", v, "%s %s", r.cc_version, tg->cflags);
    const int dsp_run = r.exp.dsp_kernels && tg->dsp;
    snprintf(v, sizeof v, "%s", dsp_run ? "DSP" : "portable");
    ROW("kernels", v, "%s",
        dsp_run        ? "__ARM_FEATURE_DSP: SXTB16/SMLAD/SSAT"
        : ef.portable  ? "--portable: scalar C"
        : !tg->dsp     ? "no DSP extension on this core: scalar C"
                       : "scalar C: an accumulator range the DSP requantization cannot take");
    snprintf(v, sizeof v, "%.0f", r.instr);
    ROW("instructions", v, "per inference (model_run), min %lld, max %lld over %d samples", (long long)r.instr_min,
        (long long)r.instr_max, n);
    snprintf(v, sizeof v, "%.3f ms", r.instr / (mhz * 1e3));
    ROW("latency", v, "at %g MHz, assuming 1 instruction per cycle (QEMU models no pipeline or wait states)", mhz);
    snprintf(v, sizeof v, "%.2f", macs_run > 0 ? r.instr / (double)macs_run : 0.0);
    ROW("instr/MAC", v, "%lld MACs executed (%lld in the model, %lld with a nonzero weight)", (long long)macs_run,
        (long long)r.exp.macs, (long long)r.exp.macs_nz);
    snprintf(v, sizeof v, "%lld B", (long long)(r.text_bytes + r.rodata_bytes + r.data_bytes));
    ROW("flash", v, "code %lld + const data %lld (arm-none-eabi-size of model.o)", (long long)r.text_bytes,
        (long long)(r.rodata_bytes + r.data_bytes));
    snprintf(v, sizeof v, "%lld B", (long long)r.bss_bytes);
    if (r.exp.schedule && sopt.enabled)
        ROW("RAM: arena", v, "static, memory schedule (%s; layer by layer %lld bytes of activations)", from,
            (long long)r.exp.schedule->bound_bytes);
    else
        ROW("RAM: arena", v, "static, activations by liveness (lower bound for this graph %lld)", (long long)r.exp.pair_bytes);
    snprintf(v, sizeof v, "%lld B", (long long)r.stack_bytes);
    ROW("RAM: stack", v, "deepest use of model_run(), measured (painted stack)");
    snprintf(v, sizeof v, "%s", r.mismatches ? "NO" : "yes");
    ROW("bit-exact", v, "%d samples x %lld output bytes compared with the int8 engine: %lld differ", n,
        (long long)r.exp.output_size, (long long)r.mismatches);
    if (r.systick_instr >= 0) {
        snprintf(v, sizeof v, "%.0f", r.systick_instr);
        ROW("SysTick check", v, "-icount shift=0: ticks x %.0f instructions per tick; differs from the counter by %.0f",
            r.systick_tick_instr, r.systick_instr - r.instr);
    }
#undef ROW
    if (r.workdir[0]) tml_table_note(t, "sources, program and logs kept in %s", r.workdir);

    tml_table *tables[2] = {t, lt};
    cli_print_tables(&c, stdout, tables, 2);
    tml_table_free(t);
    tml_table_free(lt);
    int64_t bad = r.mismatches;
    int bs = r.bad_sample, bi = r.bad_index, bg = r.bad_got, bw = r.bad_want;
    tml_device_result_free(&r);
    free(x);
    if (s) tml_samples_free(s);
    if (ds) tml_dataset_free(ds);
    tml_model_free(m);
    if (bad)
        cli_fail(&c, "%lld output bytes differ from the int8 engine (first: sample %d, output %d: device %d, engine %d)",
                 (long long)bad, bs, bi, bg, bw);
    return 0;
}
