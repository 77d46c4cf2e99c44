/*
 * harness.c - the bare-metal program that runs an exported model on an
 * emulated Cortex-M core (text for device.c to write out): startup code and
 * vector table, semihosting I/O, the measuring main(), the layer-hook header
 * and the linker script of a target.
 *
 * The program reads in.bin (n inputs of INPUT_SIZE int8 bytes) through
 * semihosting, runs the model on each one, and writes out.bin (the outputs)
 * and stack.bin (the deepest stack use and the stack pointer model_run() is
 * called with, two uint32). Markers are assembler
 * labels on a NOP (tml_mark_begin / tml_mark_end around the model_run()
 * call, tml_mark_<i> at the model's LAYER_HOOK(i)); the counting plugin
 * snapshots the instruction count when execution reaches one. The NOP keeps
 * the label off the next instruction, which may be the head of a loop the
 * compiler placed right after the hook (a bare label would then count each
 * pass); it is the only instruction a marker adds (counted in the layer that
 * follows it). With TML_SYSTICK the
 * program also reads SysTick (processor clock, no interrupt) around each
 * inference and writes the elapsed ticks to ticks.bin: the cross-check
 * against QEMU's -icount mode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"

/* @BASE@ = file base name, @P@ = symbol prefix, @PU@ = its upper case */
static const char harness_template[] =
    "/* tinyml device harness (generated): runs @P@run() on the inputs in in.bin. */\n"
    "#include <stdint.h>\n"
    "#include <string.h>\n"
    "\n"
    "#include \"@BASE@.h\"\n"
    "\n"
    "extern uint32_t __stack_top[], __stack_limit[], __data_load[], __data_start[], __data_end[];\n"
    "extern uint32_t __bss_start[], __bss_end[];\n"
    "int main(void);\n"
    "void reset_handler(void);\n"
    "void fault_handler(void);\n"
    "\n"
    "/* ARM semihosting: operation in r0, parameter block in r1, BKPT 0xAB */\n"
    "static int semihost(int op, const void *arg)\n"
    "{\n"
    "    register int r0 __asm__(\"r0\") = op;\n"
    "    register const void *r1 __asm__(\"r1\") = arg;\n"
    "    __asm__ volatile(\"bkpt 0xab\" : \"+r\"(r0) : \"r\"(r1) : \"memory\");\n"
    "    return r0;\n"
    "}\n"
    "\n"
    "static void sh_exit(int ok)\n"
    "{\n"
    "    /* SYS_EXIT: ADP_Stopped_ApplicationExit, or RunTimeErrorUnknown (exit status 1) */\n"
    "    for (;;) semihost(0x18, (const void *)(uintptr_t)(ok ? 0x20026u : 0x20023u));\n"
    "}\n"
    "\n"
    "static void sh_puts(const char *s)\n"
    "{\n"
    "    uint32_t a[3] = {2u, (uint32_t)(uintptr_t)s, (uint32_t)strlen(s)}; /* SYS_WRITE to stderr */\n"
    "    semihost(0x05, a);\n"
    "}\n"
    "\n"
    "static int sh_open(const char *name, uint32_t mode)\n"
    "{\n"
    "    uint32_t a[3] = {(uint32_t)(uintptr_t)name, mode, (uint32_t)strlen(name)};\n"
    "    return semihost(0x01, a);\n"
    "}\n"
    "\n"
    "/* SYS_READ / SYS_WRITE return the number of bytes NOT transferred */\n"
    "static int sh_xfer(int op, int h, const void *buf, uint32_t n)\n"
    "{\n"
    "    uint32_t a[3] = {(uint32_t)h, (uint32_t)(uintptr_t)buf, n};\n"
    "    return semihost(op, a);\n"
    "}\n"
    "\n"
    "static int sh_flen(int h)\n"
    "{\n"
    "    uint32_t a[1] = {(uint32_t)h};\n"
    "    return semihost(0x0C, a);\n"
    "}\n"
    "\n"
    "static void sh_close(int h)\n"
    "{\n"
    "    uint32_t a[1] = {(uint32_t)h};\n"
    "    semihost(0x02, a);\n"
    "}\n"
    "\n"
    "__attribute__((section(\".vectors\"), used)) void (*const tml_vectors[16])(void) = {\n"
    "    (void (*)(void))(uintptr_t)__stack_top, reset_handler, fault_handler, fault_handler,\n"
    "    fault_handler, fault_handler, fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0,\n"
    "    fault_handler, fault_handler};\n"
    "\n"
    "void fault_handler(void)\n"
    "{\n"
    "    sh_puts(\"device: the program faulted (HardFault or another exception)\\n\");\n"
    "    sh_exit(0);\n"
    "}\n"
    "\n"
    "void reset_handler(void)\n"
    "{\n"
    "#if defined(__ARM_FP)\n"
    "    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: enable the FPU */\n"
    "    __asm__ volatile(\"dsb\\n\\tisb\");\n"
    "#endif\n"
    "    for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;) *d++ = *s++;\n"
    "    for (uint32_t *d = __bss_start; d < __bss_end;) *d++ = 0;\n"
    "    sh_exit(main() == 0);\n"
    "}\n"
    "\n"
    "static int8_t in[@PU@INPUT_SIZE], out[@PU@OUTPUT_SIZE];\n"
    "static uint32_t run_sp; /* the stack pointer when model_run() is called */\n"
    "\n"
    "#ifdef TML_SYSTICK\n"
    "#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)\n"
    "#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)\n"
    "#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)\n"
    "static uint32_t ticks;\n"
    "#endif\n"
    "\n"
    "/* One inference between the two markers. The stack below the caller's is\n"
    " * painted first; the lowest word changed afterwards is the deepest use.\n"
    " * Returns the bytes used, or UINT32_MAX when run() failed. */\n"
    "__attribute__((noinline)) static uint32_t run_one(void)\n"
    "{\n"
    "    uint32_t sp, *p, *lo = __stack_limit, *top;\n"
    "    int rc;\n"
    "    __asm__ volatile(\"mov %0, sp\" : \"=r\"(sp));\n"
    "    run_sp = sp;\n"
    "    top = (uint32_t *)(uintptr_t)((sp - 64u) & ~3u);\n"
    "    for (p = lo; p < top; p++) *p = 0xA5A5A5A5u;\n"
    "#ifdef TML_SYSTICK\n"
    "    uint32_t t0 = SYST_CVR;\n"
    "#endif\n"
    "    __asm__ volatile(\"tml_mark_begin:\\n\\tnop\");\n"
    "    rc = @P@run(in, out);\n"
    "    __asm__ volatile(\"tml_mark_end:\\n\\tnop\");\n"
    "#ifdef TML_SYSTICK\n"
    "    ticks = (t0 - SYST_CVR) & 0xFFFFFFu;\n"
    "#endif\n"
    "    for (p = lo; p < top && *p == 0xA5A5A5A5u; p++) {\n"
    "    }\n"
    "    return rc ? 0xFFFFFFFFu : sp - (uint32_t)(uintptr_t)p;\n"
    "}\n"
    "\n"
    "int main(void)\n"
    "{\n"
    "    int fi = sh_open(\"in.bin\", 1u), fo = sh_open(\"out.bin\", 5u), fs = sh_open(\"stack.bin\", 5u);\n"
    "    uint32_t stack = 0;\n"
    "    int n, i;\n"
    "#ifdef TML_SYSTICK\n"
    "    int ft = sh_open(\"ticks.bin\", 5u);\n"
    "    if (ft < 0) return 1;\n"
    "    SYST_RVR = 0xFFFFFFu;\n"
    "    SYST_CVR = 0u;\n"
    "    SYST_CSR = 5u; /* enable, processor clock, no interrupt */\n"
    "#endif\n"
    "    if (fi < 0 || fo < 0 || fs < 0) {\n"
    "        sh_puts(\"device: cannot open in.bin / out.bin / stack.bin\\n\");\n"
    "        return 1;\n"
    "    }\n"
    "    n = sh_flen(fi) / (int)@PU@INPUT_SIZE;\n"
    "    for (i = 0; i < n; i++) {\n"
    "        uint32_t s;\n"
    "        if (sh_xfer(0x06, fi, in, sizeof in) != 0) return 1;\n"
    "        s = run_one();\n"
    "        if (s == 0xFFFFFFFFu) {\n"
    "            sh_puts(\"device: run() returned an error\\n\");\n"
    "            return 1;\n"
    "        }\n"
    "        if (s > stack) stack = s;\n"
    "        if (sh_xfer(0x05, fo, out, sizeof out) != 0) return 1;\n"
    "#ifdef TML_SYSTICK\n"
    "        if (sh_xfer(0x05, ft, &ticks, 4u) != 0) return 1;\n"
    "#endif\n"
    "    }\n"
    "    if (sh_xfer(0x05, fs, &stack, 4u) != 0 || sh_xfer(0x05, fs, &run_sp, 4u) != 0) return 1;\n"
    "    sh_close(fi);\n"
    "    sh_close(fo);\n"
    "    sh_close(fs);\n"
    "    return 0;\n"
    "}\n";

static const char hooks_template[] =
    "/* tinyml device harness: a zero-size marker label at each layer boundary */\n"
    "#define @PU@LAYER_HOOK(i) __asm__ volatile(\"tml_mark_\" #i \":\\n\\tnop\")\n";

/* Replaces @BASE@, @P@, @PU@ in `t`. */
static char *render(const char *t, const char *base, const char *prefix, const char *upper)
{
    tml_sb s = {0};
    while (*t) {
        if (strncmp(t, "@BASE@", 6) == 0) {
            tml_sb_puts(&s, base);
            t += 6;
        } else if (strncmp(t, "@PU@", 4) == 0) {
            tml_sb_puts(&s, upper);
            t += 4;
        } else if (strncmp(t, "@P@", 3) == 0) {
            tml_sb_puts(&s, prefix);
            t += 3;
        } else {
            const char *at = strchr(t + 1, '@');
            size_t n = at ? (size_t)(at - t) : strlen(t);
            char buf[512];
            while (n) {
                size_t k = n < sizeof buf - 1 ? n : sizeof buf - 1;
                memcpy(buf, t, k);
                buf[k] = '\0';
                tml_sb_puts(&s, buf);
                t += k;
                n -= k;
            }
        }
    }
    return tml_sb_take(&s);
}

char *tml_dev_harness_source(const char *base, const char *prefix, const char *upper)
{
    return render(harness_template, base, prefix, upper);
}

char *tml_dev_hooks_header(const char *upper)
{
    return render(hooks_template, "", "", upper);
}

char *tml_dev_linker_script(const tml_device_target *t, uint32_t stack_bytes)
{
    tml_sb s = {0};
    tml_sb_printf(&s,
                  "/* tinyml device harness: %s on QEMU %s */\n"
                  "MEMORY {\n"
                  "  CODE (rx) : ORIGIN = 0x%08lx, LENGTH = 0x%08lx\n"
                  "  RAM (rwx) : ORIGIN = 0x%08lx, LENGTH = 0x%08lx\n"
                  "}\n"
                  "ENTRY(reset_handler)\n"
                  "SECTIONS {\n"
                  "  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) . = ALIGN(4); } > CODE\n"
                  "  .ARM.exidx : { *(.ARM.exidx*) } > CODE\n"
                  "  .data : { . = ALIGN(4); __data_start = .; *(.data*) . = ALIGN(4); __data_end = .; } > RAM AT > CODE\n"
                  "  __data_load = LOADADDR(.data);\n"
                  "  .bss (NOLOAD) : { . = ALIGN(16); __bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end = .; } > RAM\n"
                  "  .stack (NOLOAD) : { . = ALIGN(8); __stack_limit = .; . += 0x%lx; __stack_top = .; } > RAM\n"
                  "}\n",
                  t->core, t->machine, (unsigned long)t->code_base, (unsigned long)t->code_size,
                  (unsigned long)t->ram_base, (unsigned long)t->ram_size, (unsigned long)stack_bytes);
    return tml_sb_take(&s);
}
