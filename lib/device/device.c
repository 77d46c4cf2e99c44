/*
 * device.c - export -> build -> run -> compare -> count on an emulated
 * Cortex-M core (tml_device.h; docs/deploy.md#measuring-on-the-emulator).
 *
 * 1. Find the tools: arm-none-eabi-gcc (+ newlib's libc.a), -size, -nm,
 *    qemu-system-arm, and the counting plugin tinyml-icount.so.
 * 2. Run the integer engine on the samples (keep_all): the int8 inputs the
 *    device gets and the int8 outputs it must give.
 * 3. Export the model (tml_export_c) into a work directory with the harness
 *    (harness.c), the layer-hook header and the target's linker script.
 * 4. Compile model.c and the harness, link; sizes of model.o (size -A, nm -S);
 *    the marker labels' addresses (nm of the program).
 * 5. Run QEMU with the plugin; read out.bin (compared byte for byte),
 *    stack.bin and the plugin's counts (per inference and per layer).
 *
 * Tools run as child processes with their output in a log file, an exit
 * code check and a timeout; a failure returns TML_ERR_IO with the end of
 * the log. Nothing is printed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "device_internal.h"
#include "tinyml/tml_engine.h"

#define DEV_STACK_BYTES 16384u /* the harness's stack region (model_run uses a few hundred bytes) */

static const tml_device_target targets[] = {
    {"cortex-m4", "Cortex-M4F", "mps2-an386", "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16", 1,
     0x00000000u, 0x00400000u, 0x20000000u, 0x00400000u, 25000000u},
    {"cortex-m3", "Cortex-M3", "mps2-an385", "-mcpu=cortex-m3 -mthumb -mfloat-abi=soft", 0, 0x00000000u, 0x00400000u,
     0x20000000u, 0x00400000u, 25000000u},
    {"cortex-m7", "Cortex-M7", "mps2-an500", "-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16", 1,
     0x00000000u, 0x00400000u, 0x20000000u, 0x00400000u, 25000000u},
    {"cortex-m33", "Cortex-M33", "mps2-an505", "-mcpu=cortex-m33 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16", 1,
     0x10000000u, 0x00400000u, 0x38000000u, 0x00200000u, 20000000u},
    {"cortex-m55", "Cortex-M55", "mps3-an547", "-mcpu=cortex-m55 -mthumb -mfloat-abi=hard", 1, 0x00000000u,
     0x00080000u, 0x01000000u, 0x00200000u, 32000000u},
};
#define N_TARGETS ((int)(sizeof targets / sizeof targets[0]))

const tml_device_target *tml_device_target_at(int i) { return i >= 0 && i < N_TARGETS ? &targets[i] : NULL; }

const tml_device_target *tml_device_target_find(const char *name)
{
    if (!name) return &targets[0];
    for (int i = 0; i < N_TARGETS; i++) {
        if (strcmp(name, targets[i].name) == 0) return &targets[i];
        /* "m4" for "cortex-m4" */
        if (strcmp(name, targets[i].name + 7) == 0) return &targets[i];
    }
    return NULL;
}

void tml_device_opts_default(tml_device_opts *o)
{
    memset(o, 0, sizeof *o);
    o->target = "cortex-m4";
    o->opt = "O2";
    tml_export_opts_default(&o->exp);
}

void tml_device_result_free(tml_device_result *r)
{
    if (!r) return;
    tml_export_result_free(&r->exp);
    free(r->layers);
    memset(r, 0, sizeof *r);
}

/* dir/name into out[PATH_MAX]; 0 when it does not fit */
static int join(char *out, const char *dir, const char *name)
{
    if (!dir) dir = ".";
    size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b + 1 > PATH_MAX) {
        out[0] = '\0';
        return 0;
    }
    memcpy(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
    return 1;
}

/* ---- tools ---------------------------------------------------------------------------- */

#define PKG_HINT                                                                                                       \
    "install the Debian packages gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm "                         \
    "(scripts/install-deps.sh --mcu does it)"

/* The full path of `prog` found in $PATH, or 0. */
static int find_in_path(const char *prog, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        if (n > 0 && (size_t)snprintf(out, cap, "%.*s/%s", (int)n, path, prog) < cap && access(out, X_OK) == 0)
            return 1;
        path += n;
        if (*path == ':') path++;
    }
    return 0;
}

static int is_file(const char *p)
{
    struct stat sb;
    return p && *p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The plugin: the option, $TINYML_ICOUNT_PLUGIN, next to the running
 * program (build tree or bin/), ../lib/tinyml/ of it, the build tree this
 * library was compiled in. */
static int find_plugin(const tml_device_opts *o, char *out, size_t cap)
{
    if (o->plugin && *o->plugin) {
        snprintf(out, cap, "%s", o->plugin);
        return is_file(out);
    }
    const char *env = getenv("TINYML_ICOUNT_PLUGIN");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return is_file(out);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            static const char *const rel[] = {"tinyml-icount.so", "../tinyml-icount.so", "../lib/tinyml/tinyml-icount.so"};
            for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
                if ((size_t)snprintf(out, cap, "%s/%s", exe, rel[i]) < cap && is_file(out)) return 1;
        }
    }
#ifdef TML_ICOUNT_PLUGIN_PATH
    snprintf(out, cap, "%s", TML_ICOUNT_PLUGIN_PATH);
    if (is_file(out)) return 1;
#endif
    return 0;
}

typedef struct tools {
    char gcc[PATH_MAX], size[PATH_MAX], nm[PATH_MAX], qemu[PATH_MAX], plugin[PATH_MAX];
} tools;

static tml_status run_capture(const char *dir, char *const argv[], const char *out_name, double timeout,
                              volatile int *cancel, char *text, size_t cap);

static tml_status find_tools(const tml_device_opts *o, tools *t)
{
    if (!find_in_path("arm-none-eabi-gcc", t->gcc, sizeof t->gcc))
        return tml_error(TML_ERR_UNSUPPORTED, "the Cortex-M cross compiler arm-none-eabi-gcc is not installed: " PKG_HINT);
    if (!find_in_path("arm-none-eabi-size", t->size, sizeof t->size) ||
        !find_in_path("arm-none-eabi-nm", t->nm, sizeof t->nm))
        return tml_error(TML_ERR_UNSUPPORTED, "arm-none-eabi-size / arm-none-eabi-nm (binutils-arm-none-eabi) not found: " PKG_HINT);
    if (!find_in_path("qemu-system-arm", t->qemu, sizeof t->qemu))
        return tml_error(TML_ERR_UNSUPPORTED, "the emulator qemu-system-arm is not installed: " PKG_HINT);
    /* newlib: gcc prints the bare name when it has no such file */
    char libc[PATH_MAX] = "";
    char *const argv[] = {t->gcc, "-print-file-name=libc.a", NULL};
    tml_status st = run_capture(NULL, argv, NULL, 30, NULL, libc, sizeof libc);
    if (st) return st;
    libc[strcspn(libc, "\r\n")] = '\0';
    if (libc[0] != '/' || !is_file(libc))
        return tml_error(TML_ERR_UNSUPPORTED, "the C library for arm-none-eabi-gcc (newlib) is not installed: " PKG_HINT);
    if (!find_plugin(o, t->plugin, sizeof t->plugin))
        return tml_error(TML_ERR_UNSUPPORTED,
                         "the instruction-counting QEMU plugin tinyml-icount.so was not found%s%s (it is built with "
                         "tinyml, next to the tinyml program; or set TINYML_ICOUNT_PLUGIN=/path/to/tinyml-icount.so)",
                         o->plugin && *o->plugin ? ": " : "", o->plugin && *o->plugin ? o->plugin : "");
    return TML_OK;
}

tml_status tml_device_check_tools(const tml_device_opts *o)
{
    tml_device_opts d;
    if (!o) {
        tml_device_opts_default(&d);
        o = &d;
    }
    tools *t = malloc(sizeof *t);
    if (!t) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_status st = find_tools(o, t);
    free(t);
    return st;
}

/* ---- processes ------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The last `cap - 1` bytes of a file (for error messages), trimmed. */
static void file_tail(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        long from = len > (long)cap - 1 ? len - ((long)cap - 1) : 0;
        if (fseek(f, from, SEEK_SET) == 0) {
            size_t n = fread(out, 1, cap - 1, f);
            out[n] = '\0';
        }
    }
    fclose(f);
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
}

static void argv_text(char *const argv[], char *out, size_t cap)
{
    size_t j = 0;
    out[0] = '\0';
    for (int i = 0; argv[i] && j + 1 < cap; i++) {
        const char *a = argv[i];
        const char *slash = i == 0 ? strrchr(a, '/') : NULL;
        j += (size_t)snprintf(out + j, cap - j, "%s%s", i ? " " : "", slash ? slash + 1 : a);
        if (j >= cap) j = cap - 1;
    }
}

/* Runs argv in `dir` (NULL: here) with stdout and stderr to dir/log_name
 * (or /dev/null), waits at most `timeout` seconds. TML_OK iff it exited 0;
 * otherwise TML_ERR_IO with the command and the end of its output. */
static tml_status run_tool(const char *dir, char *const argv[], const char *log_path, double timeout,
                           volatile int *cancel)
{
    pid_t pid = fork();
    if (pid < 0) return tml_error(TML_ERR_IO, "cannot start %s: %s", argv[0], strerror(errno));
    if (pid == 0) {
        /* the log path is relative to where we are, not to dir: open it first
         * (a relative --keep DIR sent the output to the terminal before) */
        int fd = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (dir && chdir(dir) != 0) _exit(126);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, 0);
            close(nul);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    double t0 = now_s();
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) return tml_error(TML_ERR_IO, "waiting for %s: %s", argv[0], strerror(errno));
        int interrupted = cancel && *cancel;
        if (interrupted || now_s() - t0 > timeout) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            char cmd[512];
            argv_text(argv, cmd, sizeof cmd);
            if (interrupted) return tml_error(TML_ERR_INTERRUPTED, "interrupted");
            return tml_error(TML_ERR_IO, "%s: no result after %.0f s (stopped)", cmd, timeout);
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return TML_OK;
    char cmd[512], tail[1200] = "";
    argv_text(argv, cmd, sizeof cmd);
    if (log_path) file_tail(log_path, tail, sizeof tail);
    if (WIFEXITED(status))
        return tml_error(TML_ERR_IO, "%s failed (exit status %d)%s%s", cmd, WEXITSTATUS(status), *tail ? ":\n" : "",
                         tail);
    return tml_error(TML_ERR_IO, "%s was killed by signal %d%s%s", cmd, WTERMSIG(status), *tail ? ":\n" : "", tail);
}

/* run_tool with the output in dir/out_name (or a temporary file) read into text. */
static tml_status run_capture(const char *dir, char *const argv[], const char *out_name, double timeout,
                              volatile int *cancel, char *text, size_t cap)
{
    char path[PATH_MAX];
    if (out_name)
        join(path, dir, out_name);
    else {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/tinyml-capture-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        int fd = mkstemp(path);
        if (fd < 0) return tml_error(TML_ERR_IO, "cannot create a temporary file: %s", strerror(errno));
        close(fd);
    }
    tml_status st = run_tool(dir, argv, path, timeout, cancel);
    text[0] = '\0';
    if (!st) {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t n = fread(text, 1, cap - 1, f);
            text[n] = '\0';
            fclose(f);
        }
    }
    if (!out_name) unlink(path);
    return st;
}

/* ---- files ------------------------------------------------------------------------------- */

static tml_status write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[PATH_MAX];
    if (!join(path, dir, name)) return tml_error(TML_ERR_IO, "path too long: %s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return tml_error(TML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    int bad = w != n;
    if (fclose(f) != 0) bad = 1;
    if (bad) return tml_error(TML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    return TML_OK;
}

/* The whole file (NUL-terminated; *len without the NUL), or NULL. */
static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[PATH_MAX];
    if (!join(path, dir, name)) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 65536 * 2;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t k = fread(buf + n, 1, 65536, f);
        n += k;
        if (k < 65536) break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* Files this module writes into a work directory (removed with a temporary one). */
static const char *const work_files[] = {
    "model.c", "model.h", "harness.c", "hooks.h", "link.ld", "model.o", "harness.o", "prog.elf", "in.bin",
    "out.bin", "stack.bin", "ticks.bin", "marks.txt", "counts.txt", "build.log", "run.log", "size.txt", "nm.txt",
    "marks-nm.txt", "version.txt", NULL};

/* A --keep directory may be new, or hold only this module's own work files
 * (a rerun), each a regular file: the build never writes over someone else's
 * file, nor through a symlink or into a FIFO. */
static tml_status check_workdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return TML_OK; /* created next */
    struct dirent *e;
    tml_status st = TML_OK;
    while (!st && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        /* ours: a work file, or an exported source pair (its name follows the prefix) */
        size_t l = strlen(e->d_name);
        int ours = l > 2 && e->d_name[l - 2] == '.' && (e->d_name[l - 1] == 'c' || e->d_name[l - 1] == 'h');
        for (int i = 0; work_files[i] && !ours; i++) ours = strcmp(e->d_name, work_files[i]) == 0;
        char path[PATH_MAX];
        struct stat sb;
        if (!ours)
            st = tml_error(TML_ERR_IO, "the work directory '%s' holds '%s', which is not a file of a previous build: give a "
                                       "new or empty directory",
                           dir, e->d_name);
        else if (!join(path, dir, e->d_name) || lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            st = tml_error(TML_ERR_IO, "the work directory '%s': '%s' is not a regular file", dir, e->d_name);
    }
    closedir(d);
    return st;
}

static void remove_workdir(const char *dir, const char *base)
{
    char path[PATH_MAX];
    for (int i = 0; work_files[i]; i++)
        if (join(path, dir, work_files[i])) unlink(path);
    if (base) {
        char name[96];
        snprintf(name, sizeof name, "%.80s.c", base);
        if (join(path, dir, name)) unlink(path);
        snprintf(name, sizeof name, "%.80s.h", base);
        if (join(path, dir, name)) unlink(path);
    }
    rmdir(dir);
}

/* ---- parsing tool output ------------------------------------------------------------------ */

/* size -A: "section size addr" lines; sums by section kind. */
static void parse_size(const char *text, tml_device_result *r)
{
    const char *p = text;
    while (*p) {
        char name[256];
        long long size, addr;
        if (sscanf(p, "%255s %lld %lld", name, &size, &addr) == 3) {
            if (strncmp(name, ".text", 5) == 0) r->text_bytes += size;
            else if (strncmp(name, ".rodata", 7) == 0) r->rodata_bytes += size;
            else if (strncmp(name, ".data", 5) == 0) r->data_bytes += size;
            else if (strncmp(name, ".bss", 4) == 0) r->bss_bytes += size;
        }
        const char *eol = strchr(p, '\n');
        if (!eol) break;
        p = eol + 1;
    }
}

/* nm -S: "addr size type name": each data symbol goes to the layer with the
 * longest C identifier that prefixes it as "<id>_". */
static void parse_nm_layers(const char *text, tml_device_result *r)
{
    const char *p = text;
    while (*p) {
        char addr[32], size[32], type[8], name[256];
        if (sscanf(p, "%31s %31s %7s %255s", addr, size, type, name) == 4 && (type[0] == 'r' || type[0] == 'R' ||
                                                                              type[0] == 'd' || type[0] == 'D')) {
            long long sz = strtoll(size, NULL, 16);
            int best = -1;
            size_t best_len = 0;
            for (int i = 0; i < r->exp.n_layers; i++) {
                const char *id = r->exp.layers[i].id;
                size_t n = strlen(id);
                if (n && n > best_len && strncmp(name, id, n) == 0 && name[n] == '_') {
                    best = i;
                    best_len = n;
                }
            }
            if (best >= 0) r->layers[best].const_bytes += sz;
        }
        const char *eol = strchr(p, '\n');
        if (!eol) break;
        p = eol + 1;
    }
}

/* Marker order in marks.txt: 0..n_layers (the hooks), then begin, end. Also
 * the stack region [*stack_lo, *stack_hi) of the program. */
static tml_status write_marks(const char *dir, const char *nm_text, int n_layers, unsigned long *stack_lo,
                              unsigned long *stack_hi)
{
    int n_marks = n_layers + 3;
    unsigned long *addr = malloc(sizeof(unsigned long) * (size_t)n_marks);
    char *found = calloc((size_t)n_marks, 1);
    if (!addr || !found) {
        free(addr);
        free(found);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    const char *p = nm_text;
    while (*p) {
        char a[32], type[8], name[256];
        if (sscanf(p, "%31s %7s %255s", a, type, name) == 3 && strcmp(name, "__stack_limit") == 0)
            *stack_lo = strtoul(a, NULL, 16);
        if (sscanf(p, "%31s %7s %255s", a, type, name) == 3 && strcmp(name, "__stack_top") == 0)
            *stack_hi = strtoul(a, NULL, 16);
        if (sscanf(p, "%31s %7s %255s", a, type, name) == 3 && strncmp(name, "tml_mark_", 9) == 0) {
            const char *tag = name + 9;
            int k = -1;
            if (strcmp(tag, "begin") == 0) k = n_layers + 1;
            else if (strcmp(tag, "end") == 0) k = n_layers + 2;
            else {
                char *end;
                long v = strtol(tag, &end, 10);
                if (*end == '\0' && v >= 0 && v <= n_layers) k = (int)v;
            }
            if (k >= 0) {
                addr[k] = strtoul(a, NULL, 16);
                found[k] = 1;
            }
        }
        const char *eol = strchr(p, '\n');
        if (!eol) break;
        p = eol + 1;
    }
    tml_sb s = {0};
    tml_status st = TML_OK;
    for (int k = 0; k < n_marks; k++) {
        if (!found[k]) {
            st = tml_error(TML_ERR_IO, "the program has no marker tml_mark_%d (the layer hooks of the export are missing)",
                           k);
            break;
        }
        tml_sb_printf(&s, "%lx\n", addr[k]);
    }
    char *text = tml_sb_take(&s);
    if (!st && !text) st = tml_error(TML_ERR_NOMEM, "out of memory");
    if (!st) st = write_file(dir, "marks.txt", text, strlen(text));
    free(text);
    free(addr);
    free(found);
    return st;
}

/* counts.txt: "k count" per marker hit, "end count" at exit. Per sample:
 * begin, hooks 0..n_layers, end. Each marker is one NOP (harness.c),
 * counted in what follows it: removed here, so the counts are those of the
 * code without hooks (one per layer, n_layers + 2 per inference). */
static tml_status parse_counts(const char *text, int n_samples, uint32_t run_sp, tml_device_result *r)
{
    int nl = r->exp.n_layers, n_marks = nl + 3;
    int64_t *snap = malloc(sizeof(int64_t) * (size_t)n_marks);
    if (!snap) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nl; i++) {
        r->layers[i].instr_min = INT64_MAX;
        r->layers[i].instr_max = 0;
        r->layers[i].instr = 0;
    }
    r->instr_min = INT64_MAX;
    r->instr_max = 0;
    double total = 0;
    int sample = 0, next = nl + 1; /* expected marker */
    const char *p = text;
    tml_status st = TML_OK;
    while (*p && !st) {
        unsigned long long k, c, low = 0;
        int got = strncmp(p, "end ", 4) != 0 ? sscanf(p, "%llu %llu %llx", &k, &c, &low) : 0;
        if (got >= 2) {
            if ((int)k != next) {
                st = tml_error(TML_ERR_IO, "instruction counter: marker %llu where %d was expected (sample %d)", k,
                               next, sample);
                break;
            }
            snap[k] = (int64_t)c;
            /* the lowest stack store between hook k-1 and hook k is layer k-1's */
            if (got == 3 && k >= 1 && (int)k <= nl && run_sp && low < run_sp) {
                int64_t depth = (int64_t)run_sp - (int64_t)low;
                if (depth > r->layers[k - 1].stack_bytes) r->layers[k - 1].stack_bytes = depth;
            }
            if ((int)k == nl + 1) next = 0;
            else if ((int)k == nl) next = nl + 2;
            else if ((int)k == nl + 2) {
                int64_t t = snap[nl + 2] - snap[nl + 1] - (nl + 2);
                total += (double)t;
                if (t < r->instr_min) r->instr_min = t;
                if (t > r->instr_max) r->instr_max = t;
                for (int i = 0; i < nl; i++) {
                    int64_t d = snap[i + 1] - snap[i] - 1;
                    tml_device_layer *L = &r->layers[i];
                    L->instr += (double)d;
                    if (d < L->instr_min) L->instr_min = d;
                    if (d > L->instr_max) L->instr_max = d;
                }
                sample++;
                next = nl + 1;
            } else
                next = (int)k + 1;
        }
        const char *eol = strchr(p, '\n');
        if (!eol) break;
        p = eol + 1;
    }
    free(snap);
    if (st) return st;
    if (sample != n_samples)
        return tml_error(TML_ERR_IO, "instruction counter: %d complete inferences recorded, %d expected", sample,
                         n_samples);
    r->instr = n_samples ? total / n_samples : 0;
    for (int i = 0; i < nl; i++) r->layers[i].instr /= n_samples ? n_samples : 1;
    if (!n_samples) {
        r->instr_min = 0;
        for (int i = 0; i < nl; i++) r->layers[i].instr_min = 0;
    }
    return TML_OK;
}

/* ---- the engine's answer ----------------------------------------------------------------- */

/* int8 inputs and outputs of the integer engine for the n samples */
static tml_status engine_io(const tml_model *m, const float *x, int n, int8_t *in8, int8_t *out8)
{
    int64_t in_size = tml_tensor_numel(&m->tensors[m->input]);
    int64_t out_size = tml_tensor_numel(&m->tensors[m->output]);
    const int chunk = 32;
    tml_engine *e = NULL;
    tml_engine_opts eo = {.keep_all = 1};
    tml_status st = tml_engine_new(m, n < chunk ? (n ? n : 1) : chunk, &eo, &e);
    if (st) return st;
    float *y = malloc(sizeof(float) * (size_t)out_size * (size_t)chunk);
    if (!y) {
        tml_engine_free(e);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n && !st; i += chunk) {
        int b = n - i < chunk ? n - i : chunk;
        st = tml_engine_run(e, x + (size_t)i * (size_t)in_size, b, y);
        if (st) break;
        memcpy(in8 + (size_t)i * (size_t)in_size, tml_engine_activation(e, m->input), (size_t)(b * in_size));
        memcpy(out8 + (size_t)i * (size_t)out_size, tml_engine_activation(e, m->output), (size_t)(b * out_size));
    }
    free(y);
    tml_engine_free(e);
    return st;
}

/* ---- the pipeline ------------------------------------------------------------------------- */

#define MAX_ARGS 48

/* Splits a flags string into argv slots (no quoting: the flags are ours). */
static int add_flags(char **argv, int argc, char *buf, size_t cap, const char *flags)
{
    snprintf(buf, cap, "%s", flags);
    for (char *tok = strtok(buf, " "); tok && argc < MAX_ARGS - 1; tok = strtok(NULL, " ")) argv[argc++] = tok;
    return argc;
}

static const char *const strict_flags[] = {"-Wall",     "-Wextra",          "-Werror",          "-Wshadow",
                                           "-Wundef",   "-Wconversion",     "-Wsign-conversion", "-Wcast-qual",
                                           "-pedantic", "-Wstrict-prototypes", "-Wmissing-prototypes", NULL};

/* Compiles model.c (with the hooks) and harness.c, links prog.elf. */
static tml_status build(const char *dir, const tools *t, const tml_device_target *tg, const tml_device_opts *o,
                        const char *base)
{
    char opt[16], cflags[256], model_c[96], log[PATH_MAX];
    snprintf(opt, sizeof opt, "-%s", o->opt);
    snprintf(model_c, sizeof model_c, "%s.c", base);
    join(log, dir, "build.log");
    double to = o->timeout > 0 ? o->timeout : 300;
    char *argv[MAX_ARGS];
    int a = 0;
    argv[a++] = (char *)t->gcc;
    a = add_flags(argv, a, cflags, sizeof cflags, tg->cflags);
    argv[a++] = opt;
    argv[a++] = "-std=c99";
    argv[a++] = "-ffunction-sections";
    argv[a++] = "-fdata-sections";
    if (o->werror)
        for (int i = 0; strict_flags[i]; i++) argv[a++] = (char *)strict_flags[i];
    if (o->cdefs && *o->cdefs) argv[a++] = (char *)o->cdefs;
    argv[a++] = "-include";
    argv[a++] = "hooks.h";
    argv[a++] = "-c";
    argv[a++] = model_c;
    argv[a++] = "-o";
    argv[a++] = "model.o";
    argv[a] = NULL;
    tml_status st = run_tool(dir, argv, log, to, o->cancel);
    if (st) return tml_error_context(st, "compiling the exported model for %s", tg->core);

    a = 0;
    argv[a++] = (char *)t->gcc;
    a = add_flags(argv, a, cflags, sizeof cflags, tg->cflags);
    argv[a++] = "-O2";
    argv[a++] = "-std=gnu99";
    if (o->systick) argv[a++] = "-DTML_SYSTICK";
    argv[a++] = "-c";
    argv[a++] = "harness.c";
    argv[a++] = "-o";
    argv[a++] = "harness.o";
    argv[a] = NULL;
    if ((st = run_tool(dir, argv, log, to, o->cancel))) return tml_error_context(st, "compiling the device harness");

    a = 0;
    argv[a++] = (char *)t->gcc;
    a = add_flags(argv, a, cflags, sizeof cflags, tg->cflags);
    argv[a++] = "-nostartfiles";
    argv[a++] = "-T";
    argv[a++] = "link.ld";
    argv[a++] = "-Wl,--gc-sections";
    argv[a++] = "harness.o";
    argv[a++] = "model.o";
    argv[a++] = "-o";
    argv[a++] = "prog.elf";
    argv[a] = NULL;
    if ((st = run_tool(dir, argv, log, to, o->cancel)))
        return tml_error_context(st, "linking for %s (does the model fit in %lu KB of code memory?)", tg->core,
                                 (unsigned long)(tg->code_size / 1024));
    return TML_OK;
}

static tml_status run_qemu(const char *dir, const tools *t, const tml_device_target *tg, const tml_device_opts *o,
                           int icount, unsigned long stack_lo, unsigned long stack_hi)
{
    char plugin_arg[PATH_MAX + 128], log[PATH_MAX];
    if (strchr(t->plugin, ','))
        return tml_error(TML_ERR_INVALID, "the plugin path '%s' has a comma, which QEMU's -plugin cannot take", t->plugin);
    if (stack_hi > stack_lo)
        snprintf(plugin_arg, sizeof plugin_arg, "%s,marks=marks.txt,out=counts.txt,stack=%lx:%lx", t->plugin, stack_lo,
                 stack_hi);
    else
        snprintf(plugin_arg, sizeof plugin_arg, "%s,marks=marks.txt,out=counts.txt", t->plugin);
    join(log, dir, "run.log");
    char *argv[MAX_ARGS];
    int a = 0;
    argv[a++] = (char *)t->qemu;
    argv[a++] = "-M";
    argv[a++] = (char *)tg->machine;
    argv[a++] = "-nographic";
    argv[a++] = "-monitor";
    argv[a++] = "none";
    argv[a++] = "-serial";
    argv[a++] = "none";
    argv[a++] = "-semihosting-config";
    argv[a++] = "enable=on,target=native";
    if (icount) {
        argv[a++] = "-icount";
        argv[a++] = "shift=0";
    }
    argv[a++] = "-kernel";
    argv[a++] = "prog.elf";
    argv[a++] = "-plugin";
    argv[a++] = plugin_arg;
    argv[a] = NULL;
    tml_status st = run_tool(dir, argv, log, o->timeout > 0 ? o->timeout : 300, o->cancel);
    if (st) return tml_error_context(st, "running the model on QEMU %s (%s)", tg->machine, tg->core);
    return TML_OK;
}

static void first_line(const char *text, char *out, size_t cap)
{
    size_t n = strcspn(text, "\r\n");
    snprintf(out, cap, "%.*s", (int)n, text);
}

/* The per-layer symbol prefixes are the export's layer ids. */
static tml_status device_run(const tml_model *m, const float *x, int n, const tml_device_opts *o, const char *dir,
                             const tools *t, const tml_device_target *tg, tml_device_result *r)
{
    tml_status st = tml_export_c(m, &o->exp, &r->exp);
    if (st) return st;
    r->layers = calloc((size_t)(r->exp.n_layers ? r->exp.n_layers : 1), sizeof *r->layers);
    if (!r->layers) return tml_error(TML_ERR_NOMEM, "out of memory");

    /* the engine's int8 inputs and outputs */
    int64_t in_size = r->exp.input_size, out_size = r->exp.output_size;
    int8_t *in8 = malloc((size_t)(in_size * (n ? n : 1))), *want = malloc((size_t)(out_size * (n ? n : 1)));
    if (!in8 || !want) {
        free(in8);
        free(want);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    st = engine_io(m, x, n, in8, want);

    /* sources */
    char upper[64];
    const char *prefix = o->exp.prefix ? o->exp.prefix : "model_";
    size_t pl = strlen(prefix);
    for (size_t i = 0; i <= pl && i < sizeof upper; i++)
        upper[i] = (char)(prefix[i] >= 'a' && prefix[i] <= 'z' ? prefix[i] - 'a' + 'A' : prefix[i]);
    upper[sizeof upper - 1] = '\0';
    char *harness = NULL, *hooks = NULL, *ld = NULL;
    if (!st) st = tml_export_write(&r->exp, dir);
    if (!st) {
        harness = tml_dev_harness_source(r->exp.base, prefix, upper);
        hooks = tml_dev_hooks_header(upper);
        ld = tml_dev_linker_script(tg, DEV_STACK_BYTES);
        if (!harness || !hooks || !ld) st = tml_error(TML_ERR_NOMEM, "out of memory");
    }
    if (!st) st = write_file(dir, "harness.c", harness, strlen(harness));
    if (!st) st = write_file(dir, "hooks.h", hooks, strlen(hooks));
    if (!st) st = write_file(dir, "link.ld", ld, strlen(ld));
    if (!st) st = write_file(dir, "in.bin", in8, (size_t)(in_size * n));
    free(harness);
    free(hooks);
    free(ld);
    free(in8);
    tml_device_opts plain = *o;
    plain.systick = 0;
    if (!st) st = build(dir, t, tg, &plain, r->exp.base);

    /* sizes, markers */
    char *text = NULL;
    unsigned long stack_lo = 0, stack_hi = 0;
    if (!st) {
        char *argv[] = {(char *)t->size, "-A", "model.o", NULL};
        char path[PATH_MAX];
        join(path, dir, "size.txt");
        st = run_tool(dir, argv, path, 60, o->cancel);
        if (!st && !(text = read_file(dir, "size.txt", NULL))) st = tml_error(TML_ERR_IO, "cannot read size.txt");
        if (!st) parse_size(text, r);
        free(text);
        text = NULL;
    }
    if (!st) {
        char path[PATH_MAX];
        join(path, dir, "nm.txt");
        char *argv[] = {(char *)t->nm, "-S", "model.o", NULL};
        st = run_tool(dir, argv, path, 60, o->cancel);
        if (!st && !(text = read_file(dir, "nm.txt", NULL))) st = tml_error(TML_ERR_IO, "cannot read nm.txt");
        if (!st) parse_nm_layers(text, r);
        free(text);
        text = NULL;
    }
    if (!st) {
        char path[PATH_MAX];
        join(path, dir, "marks-nm.txt");
        char *argv[] = {(char *)t->nm, "prog.elf", NULL};
        st = run_tool(dir, argv, path, 60, o->cancel);
        if (!st && !(text = read_file(dir, "marks-nm.txt", NULL))) st = tml_error(TML_ERR_IO, "cannot read marks-nm.txt");
        if (!st) st = write_marks(dir, text, r->exp.n_layers, &stack_lo, &stack_hi);
        free(text);
        text = NULL;
    }

    /* run, compare, count */
    if (!st) st = run_qemu(dir, t, tg, o, 0, stack_lo, stack_hi);
    size_t len = 0;
    char *got = NULL;
    if (!st) {
        got = read_file(dir, "out.bin", &len);
        if (!got || len != (size_t)(out_size * n))
            st = tml_error(TML_ERR_IO, "the device wrote %zu output bytes, %lld expected", got ? len : (size_t)0,
                           (long long)(out_size * n));
    }
    if (!st) {
        r->bad_sample = r->bad_index = -1;
        for (size_t i = 0; i < len; i++)
            if ((int8_t)got[i] != want[i]) {
                if (!r->mismatches++) {
                    r->bad_sample = (int)(i / (size_t)out_size);
                    r->bad_index = (int)(i % (size_t)out_size);
                    r->bad_got = (int8_t)got[i];
                    r->bad_want = want[i];
                }
            }
        char *sb = read_file(dir, "stack.bin", &len);
        uint32_t run_sp = 0;
        if (sb && len == 8) {
            uint32_t v;
            memcpy(&v, sb, 4);
            r->stack_bytes = v;
            memcpy(&run_sp, sb + 4, 4);
        }
        free(sb);
        if (!(text = read_file(dir, "counts.txt", NULL)))
            st = tml_error(TML_ERR_IO, "the instruction counter wrote nothing (counts.txt)");
        if (!st) st = parse_counts(text, n, run_sp, r);
        free(text);
        text = NULL;
    }
    free(got);
    free(want);

    /* the -icount + SysTick cross-check: a second build and run */
    r->systick_instr = r->systick_tick_instr = -1;
    if (!st && o->systick) {
        st = build(dir, t, tg, o, r->exp.base);
        if (!st) st = run_qemu(dir, t, tg, o, 1, 0, 0);
        char *ticks = NULL;
        if (!st && (!(ticks = read_file(dir, "ticks.bin", &len)) || len != (size_t)n * 4))
            st = tml_error(TML_ERR_IO, "the SysTick cross-check wrote no ticks.bin");
        if (!st) {
            /* -icount shift=0: one instruction per ns of virtual time */
            double per_tick = 1e9 / (double)tg->sysclk_hz, sum = 0;
            for (int i = 0; i < n; i++) {
                uint32_t v;
                memcpy(&v, ticks + 4 * i, 4);
                sum += v;
            }
            r->systick_tick_instr = per_tick;
            /* less the marker NOPs, as the counter's figure */
            r->systick_instr = n ? sum / n * per_tick - (r->exp.n_layers + 2) : 0;
        }
        free(ticks);
    }

    /* versions */
    if (!st) {
        char *argv[] = {(char *)t->gcc, "-dumpfullversion", NULL};
        char v[256];
        if (run_capture(dir, argv, "version.txt", 30, NULL, v, sizeof v) == TML_OK) {
            char line[96];
            first_line(v, line, sizeof line);
            snprintf(r->cc_version, sizeof r->cc_version, "arm-none-eabi-gcc %.60s", line);
        }
        char *argv2[] = {(char *)t->qemu, "--version", NULL};
        if (run_capture(dir, argv2, "version.txt", 30, NULL, v, sizeof v) == TML_OK)
            first_line(v, r->qemu_version, sizeof r->qemu_version);
    }
    return st;
}

tml_status tml_device_run(const tml_model *m, const float *x, int n, const tml_device_opts *o, tml_device_result *r)
{
    memset(r, 0, sizeof *r);
    tml_device_opts d;
    if (!o) {
        tml_device_opts_default(&d);
        o = &d;
    }
    if (n < 0 || (n > 0 && !x)) return tml_error(TML_ERR_INVALID, "no samples to run");
    const tml_device_target *tg = tml_device_target_find(o->target);
    if (!tg) {
        tml_sb s = {0};
        for (int i = 0; i < N_TARGETS; i++) tml_sb_printf(&s, "%s%s", i ? ", " : "", targets[i].name);
        char *names = tml_sb_take(&s);
        tml_status st = tml_error(TML_ERR_INVALID, "unknown target '%s': choose one of %s", o->target,
                                  names ? names : "cortex-m4");
        free(names);
        return st;
    }
    const char *opt = o->opt && *o->opt ? o->opt : "O2";
    if (strcmp(opt, "O0") && strcmp(opt, "O1") && strcmp(opt, "O2") && strcmp(opt, "O3") && strcmp(opt, "Os"))
        return tml_error(TML_ERR_INVALID, "unknown optimization level '%s': use O2, Os, O3, O1 or O0", opt);
    tml_device_opts oo = *o;
    oo.opt = opt;

    tools *t = malloc(sizeof *t);
    if (!t) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_status st = find_tools(&oo, t);
    if (st) {
        free(t);
        return st;
    }
    char dir[PATH_MAX];
    int temp = !(o->workdir && *o->workdir);
    if (temp) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/tinyml-device-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            st = tml_error(TML_ERR_IO, "cannot create a work directory in %s: %s", tmp && *tmp ? tmp : "/tmp",
                           strerror(errno));
            free(t);
            return st;
        }
    } else {
        snprintf(dir, sizeof dir, "%s", o->workdir);
        if ((st = check_workdir(dir))) {
            free(t);
            return st;
        }
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            st = tml_error(TML_ERR_IO, "cannot create the work directory '%s': %s", dir, strerror(errno));
            free(t);
            return st;
        }
    }
    r->target = tg;
    snprintf(r->opt, sizeof r->opt, "%s", opt);
    r->n_samples = n;
    st = device_run(m, x, n, &oo, dir, t, tg, r);
    if (temp && !o->keep) {
        remove_workdir(dir, r->exp.base);
        r->workdir[0] = '\0';
    } else {
        snprintf(r->workdir, sizeof r->workdir, "%.511s", dir);
    }
    free(t);
    if (st) {
        char keep[sizeof r->workdir];
        memcpy(keep, r->workdir, sizeof keep);
        tml_device_result_free(r);
        snprintf(r->workdir, sizeof r->workdir, "%.511s", keep);
    }
    return st;
}
