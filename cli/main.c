/*
 * main.c - `tinyml <command> [options]`: dispatches to one cmd_<name>.c per
 * subcommand.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"create", cmd_create, "build a model from the zoo or an ARCH.json description"},
    {"import", cmd_import, "convert an ONNX or TFLite model into a .tmf (TFLite int8 stays int8, bit-exact)"},
    {"info", cmd_info, "per-layer table: shapes, params, nonzeros, bits, bytes, MACs, peak memory"},
    {"run", cmd_run, "run a model on raw input records (its own int8 / float32 type), dump every layer"},
    {"eval", cmd_eval, "accuracy (top-1/top-5, per class, confusion) and speed on a dataset"},
    {"train", cmd_train, "train on a dataset (SGD/Adam, schedules, checkpoints, resume, distillation)"},
    {"prune", cmd_prune, "magnitude pruning: per layer, global, structured; one-shot/iterative/AGP + fine-tuning"},
    {"sensitivity", cmd_sensitivity, "accuracy vs sparsity (or bits) of each layer alone: table, CSV, JSON, PNG"},
    {"cluster", cmd_cluster, "k-means weight sharing (codebook + b-bit indices), optional centroid fine-tuning"},
    {"quantize", cmd_quantize, "post-training INT8 quantization with calibration (integer-only model)"},
    {"qat", cmd_qat, "quantization-aware training: fine-tune through the int8 (or W4A8...) forward pass"},
    {"compare", cmd_compare, "per-layer error (SQNR) between a float model and its int8 version"},
    {"schedule", cmd_schedule, "memory schedule of an int8 model: in-place, streamed, patch-based; RAM vs bound"},
    {"export", cmd_export, "C source for a microcontroller (static arena, bit-exact int8 kernels), or ONNX"},
    {"fit", cmd_fit, "the most accurate compressed model that fits a flash / RAM / latency budget, verified on the emulator"},
    {"profile", cmd_profile, "run the exported C on an emulated Cortex-M: instructions per layer, flash, RAM, bit-exact check"},
    {"report", cmd_report, "size / accuracy table of several models (ratio, bits/weight, MACs, memory, drop), Pareto plot"},
    {"plot", cmd_plot, "chart two columns of a CSV (sweeps, sensitivity) as a PNG"},
    {"finetune", cmd_finetune, "fine-tune a trained or compressed model, keeping masks and codebooks"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    if (f == stdout) {
        /* through the checked writer: a failed write is an error */
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        if (m) {
            usage(m);
            fclose(m);
            cli_write_stdout(NULL, buf, len);
            free(buf);
        }
        return;
    }
    fprintf(f, "Usage: tinyml <command> [options] [MODEL]\n\n"
               "tinyml compresses small neural networks for microcontrollers and measures\n"
               "what the compression cost. Every command reads and writes one .tmf model\n"
               "file, so commands chain in pipelines (MODEL '-' or omitted = stdin; with\n"
               "no -o the model goes to stdout when it is not a terminal).\n\n"
               "Commands:\n");
    for (int i = 0; commands[i].name; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nCommon options: --help, --quiet, --format table|md|csv|json, --seed N\n"
               "Exit status: 0 success, 1 runtime or data error, 2 usage error.\n\n"
               "Example:\n"
               "  tinyml create lenet5 | tinyml eval --data fashion-mnist:test\n\n"
               "Run 'tinyml <command> --help' for a command's options and examples.\n");
}

#ifdef _OPENMP
/* On a busy machine a parallel region waits for a thread that another process
 * holds off its core: milliseconds per region, 3-60x slower training measured
 * on 2 cores. So, unless the user chose (OMP_NUM_THREADS / OMP_DYNAMIC), start
 * with one thread per core that no other process is using right now: the
 * running-task count in /proc/loadavg (which includes this process). Not
 * libgomp's dynamic mode: it follows the 15-minute load average, to which a
 * long tinyml run itself contributes until it drops to one thread. Results do
 * not depend on the thread count, only the speed does. */
static void pick_threads(void)
{
    if (getenv("OMP_NUM_THREADS") || getenv("OMP_DYNAMIC")) return;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    double a1, a5, a15;
    int running = 0, total = 0;
    int ok = fscanf(f, "%lf %lf %lf %d/%d", &a1, &a5, &a15, &running, &total) == 5;
    fclose(f);
    int cores = omp_get_num_procs(), others = running - 1;
    if (!ok || others <= 0) return;
    omp_set_num_threads(others >= cores ? 1 : cores - others);
}
#endif

int main(int argc, char **argv)
{
    /* Writing to a closed pipe must be an error we report, not a silent death. */
    signal(SIGPIPE, SIG_IGN);
    cli_protect_std_fds();
#ifdef _OPENMP
    pick_threads();
#endif
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (strcmp(cmd, "help") == 0 && argc > 2) {
            for (int i = 0; commands[i].name; i++) {
                if (strcmp(commands[i].name, argv[2]) == 0) {
                    char *hargv[3] = {argv[2], "--help", NULL};
                    return commands[i].run(2, hargv);
                }
            }
        }
        usage(stdout);
        return cli_close_stdout(NULL);
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        cli_printf(NULL, "tinyml %s\n", TML_VERSION_STRING);
        return cli_close_stdout(NULL);
    }
    for (int i = 0; commands[i].name; i++)
        if (strcmp(commands[i].name, cmd) == 0) {
            cli_install_sigint();
            int rc = commands[i].run(argc - 1, argv + 1);
            if (rc == 0) {
                /* the report's last bytes may still be buffered: a failed
                 * flush or close is the command's failure */
                cli cc;
                cli_init(&cc, commands[i].name, "", 0, NULL);
                cli_close_stdout(&cc);
            }
            return rc;
        }
    fprintf(stderr, "tinyml: error: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
