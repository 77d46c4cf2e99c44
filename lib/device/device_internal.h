/*
 * device_internal.h - shared by the lib/device sources: the harness text.
 */
#ifndef TML_DEVICE_INTERNAL_H
#define TML_DEVICE_INTERNAL_H

#include <stdint.h>

#include "../../formats/export_internal.h" /* tml_sb */
#include "tinyml/tml_device.h"

/* The harness program (startup, semihosting, measuring main) for a model
 * exported with file base `base` and symbol prefix `prefix` (`upper` = the
 * macro prefix). Caller frees; NULL on OOM. */
char *tml_dev_harness_source(const char *base, const char *prefix, const char *upper);
/* -include'd when compiling the model: its LAYER_HOOK(i) places marker labels. */
char *tml_dev_hooks_header(const char *upper);
/* Linker script: code and const data in the target's code memory, data,
 * bss and a stack of stack_bytes in its RAM. */
char *tml_dev_linker_script(const tml_device_target *t, uint32_t stack_bytes);

#endif
