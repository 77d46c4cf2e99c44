/*
 * tml_device.h - the exported C on an emulated Cortex-M core (lib/device/;
 * docs/deploy.md#measuring-on-the-emulator is the user's guide).
 *
 * tml_device_run() is the whole loop in one call: export the model
 * (tml_export_c), build it with a bare-metal harness for the target with
 * arm-none-eabi-gcc, run n samples on QEMU's model of the core with the
 * instruction-counting plugin (tinyml-icount.so), and check every output
 * byte against the integer engine. The result has the instructions executed
 * per inference and per layer (exact and repeatable: an emulator count, not
 * a timing), the flash of the compiled model (arm-none-eabi-size / nm of the
 * object file), the arena and the measured stack depth.
 *
 * Tools (Debian packages): gcc-arm-none-eabi, libnewlib-arm-none-eabi,
 * qemu-system-arm (QEMU >= 7.2, for TCG plugins). When one is missing,
 * tml_device_check_tools() and tml_device_run() fail with
 * TML_ERR_UNSUPPORTED and a message naming the packages.
 *
 * The library spawns the compiler and QEMU (with checked exit codes and a
 * timeout) and writes only inside its work directory; it never prints.
 */
#ifndef TML_DEVICE_H
#define TML_DEVICE_H

#include <stdint.h>

#include "tml_core.h"
#include "tml_export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A core and the QEMU machine that models it. */
typedef struct tml_device_target {
    const char *name;    /* "cortex-m4" (what --target takes) */
    const char *core;    /* "Cortex-M4F" */
    const char *machine; /* QEMU machine: "mps2-an386" */
    const char *cflags;  /* arm-none-eabi-gcc core flags */
    int dsp;             /* has the DSP extension (__ARM_FEATURE_DSP): the fast kernels apply */
    uint32_t code_base, code_size; /* where the harness links code + const data */
    uint32_t ram_base, ram_size;   /* data, arena, stack */
    uint32_t sysclk_hz;  /* the SysTick clock of the machine (for the -icount cross-check) */
} tml_device_target;

/* The targets in a fixed order (index 0 is the default, cortex-m4); NULL past the end. */
const tml_device_target *tml_device_target_at(int i);
/* By name ("cortex-m4", "m4" also accepted); NULL if unknown. */
const tml_device_target *tml_device_target_find(const char *name);

typedef struct tml_device_opts {
    const char *target;   /* NULL = "cortex-m4" */
    const char *opt;      /* compiler optimization level without the dash: "O2" (default), "Os",
                             "O3", "O1", "Oz" is refused (gcc 12 has none) */
    tml_export_opts exp;  /* how the model is exported (forms, --optimize, kernels, prefix) */
    const char *workdir;  /* build and run here (created if missing, kept); NULL = a new
                             temporary directory, removed afterwards unless keep */
    int keep;             /* keep the temporary directory (its path is in the result) */
    int werror;           /* compile the generated code with strict warnings as errors */
    const char *plugin;   /* path of tinyml-icount.so; NULL = $TINYML_ICOUNT_PLUGIN, next to
                             the running program, or the build tree */
    double timeout;       /* seconds for each tool run; <= 0: 300 */
    int systick;          /* cross-check: also run under -icount shift=0 and read SysTick
                             around each inference (fills systick_instr) */
    volatile int *cancel; /* if non-NULL and set, stop with TML_ERR_INTERRUPTED */
    const char *cdefs;    /* one extra compiler argument for the model, e.g. "-DMODEL_ARENA_GUARD=64"
                             (guard bytes after the arena: run() fails if the code writes past it) */
} tml_device_opts;
void tml_device_opts_default(tml_device_opts *o);

typedef struct tml_device_layer {
    int64_t instr_min, instr_max; /* instructions of this layer over the samples */
    double instr;                 /* their mean */
    int64_t const_bytes;          /* flash of the layer's const arrays and parameters, from nm */
    int64_t stack_bytes;          /* deepest stack use while the layer runs, below the stack
                                     pointer model_run() was called with (the emulator watches
                                     the stores; most over the samples) */
} tml_device_layer;

typedef struct tml_device_result {
    tml_export_result exp;        /* the export that was built (per-layer forms, bytes, MACs, arena) */
    tml_device_layer *layers;     /* (exp.n_layers) in execution order */
    const tml_device_target *target;
    char opt[8];                  /* "O2" */
    int n_samples;
    /* bit-exactness: output bytes different from the integer engine's */
    int64_t mismatches;
    int bad_sample, bad_index;    /* the first mismatch (-1 if none) */
    int bad_got, bad_want;
    /* instructions of one model_run() call (hook to hook: the input and
     * output copies included) */
    double instr;
    int64_t instr_min, instr_max;
    /* the compiled model (model.o): code, const data, initialized data, arena */
    int64_t text_bytes, rodata_bytes, data_bytes, bss_bytes;
    int64_t stack_bytes;          /* deepest stack use of model_run(), measured by painting */
    /* -icount shift=0 cross-check (opts.systick): SysTick ticks around each
     * inference times the instructions per tick; -1 when not run */
    double systick_instr, systick_tick_instr;
    char cc_version[96], qemu_version[96];
    char workdir[512];            /* where it was built ("" once removed) */
} tml_device_result;

/* Checks that the cross compiler, its C library, QEMU and the plugin are
 * there. TML_ERR_UNSUPPORTED with a message naming what is missing (and the
 * Debian packages to install) otherwise. */
tml_status tml_device_check_tools(const tml_device_opts *o);

/* Exports m, builds it for o->target, runs the n samples x (n, input numel)
 * preprocessed floats, as tml_engine_run takes them; the integer engine
 * quantizes them) on the emulated core and compares every output byte with
 * the engine. A mismatch is not an error: r->mismatches says it (the caller
 * decides). Errors: tools missing (TML_ERR_UNSUPPORTED), a model the export
 * refuses, a failed build or run (TML_ERR_IO with the tool's output). On
 * failure *r is left empty (safe to free). */
tml_status tml_device_run(const tml_model *m, const float *x, int n, const tml_device_opts *o,
                          tml_device_result *r);
void tml_device_result_free(tml_device_result *r);

#ifdef __cplusplus
}
#endif
#endif
