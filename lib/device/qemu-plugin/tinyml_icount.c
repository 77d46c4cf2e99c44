/*
 * tinyml_icount.c - a QEMU TCG plugin that counts executed guest instructions
 * and snapshots the count at marker addresses (built as tinyml-icount.so;
 * used by lib/device/device.c, docs/deploy.md#measuring-on-the-emulator).
 *
 *   qemu-system-arm ... -plugin tinyml-icount.so,marks=MARKS,out=OUT
 *
 * MARKS is a text file with one guest address per line (hex, as printed by
 * nm); marker k is the k-th line. Every time the instruction at a marker
 * address is about to execute, the plugin appends "k count" to OUT, where
 * count is the number of guest instructions executed before it. At exit it
 * appends "end count". The guest's markers are labels on NOP instructions
 * (the harness removes their count), so they change nothing else that is
 * measured.
 *
 * With stack=LO:HI (hex addresses) it also watches the guest's stores into
 * [LO, HI), the stack region: each marker line gets a third number, the
 * lowest address stored to since the previous marker (HI if none), so the
 * caller can tell how deep the stack went between two markers.
 *
 * With hist=FILE it also writes, at exit, one line per translated block:
 * "address instructions executions" (for finding where the instructions go:
 * map the addresses to functions with nm).
 *
 * Counting: every translated block adds its instruction count to one 64-bit
 * counter when it starts executing (an inline add, cheap); a marker
 * callback subtracts the instructions of its block that have not executed
 * yet (the marker's and the following ones). A block that is left early
 * (an exception in its middle, e.g. a semihosting call) is over-counted by
 * the instructions it skipped; measured code between two markers makes no
 * such calls. Instructions skipped by an IT block's condition count as
 * executed, as on the hardware (they take an issue slot).
 *
 * QEMU 7.2 ships no qemu-plugin.h, so the few declarations used here are
 * written from QEMU's documented plugin API (version 1): opaque handles, the
 * callback types and the functions below. Single vCPU machines only (the
 * counter is not per-CPU).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLUGIN_EXPORT __attribute__((visibility("default")))

/* ---- the plugin API subset (QEMU docs: "QEMU TCG Plugins", API version 1) ---- */

typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t; /* only passed through */

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

PLUGIN_EXPORT int qemu_plugin_version = 1;
PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv);

/* ---- state ---------------------------------------------------------------------- */

#define MAX_MARKS 4096

static uint64_t count;          /* instructions executed so far */
static uint64_t marks[MAX_MARKS]; /* guest addresses */
static int n_marks;
static FILE *out;
static uint64_t stack_lo, stack_hi, stack_low; /* stack=LO:HI; the lowest store since the last marker */
static int watch_stack;

/* hist=FILE: per translated block, its guest address, size and executions
 * (slots in fixed chunks, so the inline counters' addresses never move) */
typedef struct tb_count {
    uint64_t vaddr, n, execs;
} tb_count;
typedef struct tb_chunk {
    struct tb_chunk *next;
    size_t used;
    tb_count c[4096];
} tb_chunk;
static tb_chunk *chunks;
static FILE *hist_out;

/* udata of a marker callback: marker index in the low 16 bits, the
 * instructions of its block from the marker on in the high bits */
static void on_mark(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    uintptr_t u = (uintptr_t)udata;
    uint64_t k = u & 0xffffu, pending = u >> 16;
    if (watch_stack) {
        fprintf(out, "%" PRIu64 " %" PRIu64 " %" PRIx64 "\n", k, count - pending, stack_low);
        stack_low = stack_hi;
    } else
        fprintf(out, "%" PRIu64 " %" PRIu64 "\n", k, count - pending);
}

static void on_store(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    (void)vcpu;
    (void)info;
    (void)udata;
    if (vaddr >= stack_lo && vaddr < stack_low) stack_low = vaddr;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &count, n);
    if (hist_out && n) {
        if (!chunks || chunks->used == sizeof chunks->c / sizeof chunks->c[0]) {
            tb_chunk *k = calloc(1, sizeof *k);
            if (k) {
                k->next = chunks;
                chunks = k;
            }
        }
        if (chunks && chunks->used < sizeof chunks->c / sizeof chunks->c[0]) {
            tb_count *c = &chunks->c[chunks->used++];
            c->vaddr = qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, 0));
            c->n = n;
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &c->execs, 1);
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t a = qemu_plugin_insn_vaddr(insn);
        if (watch_stack) qemu_plugin_register_vcpu_mem_cb(insn, on_store, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_W, NULL);
        for (int k = 0; k < n_marks; k++)
            if (marks[k] == a) {
                uintptr_t u = (uintptr_t)k | (uintptr_t)(n - i) << 16;
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, (void *)u);
            }
    }
}

static void on_atexit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    fprintf(out, "end %" PRIu64 "\n", count);
    fclose(out);
    out = NULL;
    if (hist_out) {
        for (tb_chunk *k = chunks; k; k = k->next)
            for (size_t i = 0; i < k->used; i++)
                fprintf(hist_out, "%" PRIx64 " %" PRIu64 " %" PRIu64 "\n", k->c[i].vaddr, k->c[i].n, k->c[i].execs);
        fclose(hist_out);
        hist_out = NULL;
    }
}

static int fail(const char *msg)
{
    char buf[512];
    snprintf(buf, sizeof buf, "tinyml-icount: %s\n", msg);
    qemu_plugin_outs(buf);
    fputs(buf, stderr);
    return 1;
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    const char *marks_path = NULL, *out_path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "marks=", 6) == 0) marks_path = argv[i] + 6;
        else if (strncmp(argv[i], "out=", 4) == 0) out_path = argv[i] + 4;
        else if (strncmp(argv[i], "stack=", 6) == 0) {
            char *end;
            stack_lo = strtoull(argv[i] + 6, &end, 16);
            if (*end != ':') return fail("stack=LO:HI expected (hex addresses)");
            stack_hi = strtoull(end + 1, &end, 16);
            if (*end || stack_hi <= stack_lo) return fail("stack=LO:HI expected (hex addresses)");
            stack_low = stack_hi;
            watch_stack = 1;
        } else if (strncmp(argv[i], "hist=", 5) == 0) {
            hist_out = fopen(argv[i] + 5, "w");
            if (!hist_out) return fail("cannot write the hist file");
        } else
            return fail("unknown argument (expected marks=FILE,out=FILE[,stack=LO:HI][,hist=FILE])");
    }
    if (!out_path) return fail("out=FILE is required");
    if (marks_path) {
        FILE *f = fopen(marks_path, "r");
        if (!f) return fail("cannot read the marks file");
        char line[128];
        while (fgets(line, sizeof line, f)) {
            char *end;
            unsigned long long a = strtoull(line, &end, 16);
            if (end == line) continue;
            if (n_marks == MAX_MARKS) {
                fclose(f);
                return fail("too many marks");
            }
            marks[n_marks++] = a;
        }
        fclose(f);
    }
    out = fopen(out_path, "w");
    if (!out) return fail("cannot write the output file");
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_atexit, NULL);
    return 0;
}
