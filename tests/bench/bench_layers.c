/*
 * bench_layers.c - where an int8 model's time goes: each node of the int8
 * engine timed on its own (tml_engine_q8_run_node), min and median over the
 * runs, and the node's share of the summed minimums. The whole graph runs
 * once per round (the buffers hold real activations), each node timed alone.
 * Min times are the ones to read on this shared machine (a node takes a few
 * microseconds: most runs are not preempted).
 *
 *   bench_layers MODEL-int8.tmf [batch=1] [runs=3000] [node]
 *
 * With a node name, only that node runs in the timed loop (after one pass of
 * the whole graph): a steady profile of one layer for perf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_internal.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "bench_util.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_layers MODEL-int8.tmf [batch] [runs]\n");
        return 2;
    }
    const int batch = argc > 2 ? atoi(argv[2]) : 1, runs = argc > 3 ? atoi(argv[3]) : 3000;
    if (batch < 1 || runs < 1) {
        fprintf(stderr, "bench_layers: batch and runs must be positive\n");
        return 2;
    }
    tml_model *m = NULL;
    if (tml_model_load(argv[1], &m)) {
        fprintf(stderr, "%s\n", tml_last_error());
        return 1;
    }
    if (!tml_model_is_quantized(m)) {
        fprintf(stderr, "bench_layers: %s is not an int8 model\n", argv[1]);
        return 2;
    }
    const int64_t in = tml_tensor_numel(&m->tensors[m->input]);
    float *x = malloc(sizeof(float) * (size_t)(in * batch));
    uint64_t s = 12345;
    for (int64_t i = 0; i < in * batch; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(s >> 40) / 16777216.0f;
    }
    tml_engine *e = NULL;
    if (tml_engine_new(m, batch, NULL, &e)) {
        fprintf(stderr, "%s\n", tml_last_error());
        return 1;
    }
    const int nn = m->n_nodes;
    int only = -1;
    for (int i = 0; argc > 4 && i < nn; i++)
        if (strcmp(m->nodes[i].name, argv[4]) == 0) only = i;
    if (argc > 4 && only < 0) {
        fprintf(stderr, "bench_layers: no node %s\n", argv[4]);
        return 2;
    }
    double *t = malloc(sizeof(double) * (size_t)runs * (size_t)nn);
    tml_engine_q8_quantize_input(e, x, in * batch, tml_engine_buf(e, m->input));
    for (int r = 0; r < 50; r++)
        for (int i = 0; i < nn; i++) tml_engine_q8_run_node(e, i, batch);
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < nn; i++) {
            if (only >= 0 && i != only) {
                t[(size_t)i * runs + r] = 0;
                continue;
            }
            const double t0 = now();
            tml_engine_q8_run_node(e, i, batch);
            t[(size_t)i * runs + r] = now() - t0;
        }
    double total = 0;
    for (int i = 0; i < nn; i++) {
        qsort(t + (size_t)i * runs, (size_t)runs, sizeof(double), cmp);
        total += t[(size_t)i * runs];
    }
    printf("%s batch %d, %d runs: per node min / median us, share of the summed minimums\n", argv[1], batch, runs);
    for (int i = 0; i < nn; i++) {
        const double *ti = t + (size_t)i * runs;
        const tml_node *n = &m->nodes[i];
        printf("%-12s %-18s %9.2f %9.2f %6.1f%%\n", n->name, tml_op_name(n->op), ti[0] * 1e6, ti[runs / 2] * 1e6,
               100.0 * ti[0] / total);
    }
    printf("%-31s %9.2f\n", "sum of minimums", total * 1e6);
    tml_engine_free(e);
    tml_model_free(m);
    free(x);
    free(t);
    return 0;
}
