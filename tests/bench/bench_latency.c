/*
 * bench_latency.c - engine latency of a model: median and mean time of one
 * tml_engine_run at a given batch size, on fixed random inputs (data loading
 * and preprocessing excluded), and the resulting samples/s.
 *
 *   bench_latency MODEL.tmf [batch=1] [runs=2000] [micro_batch=auto]
 *
 * micro_batch: samples per pass of the float engine (tuning; 0 = its choice).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/engine_internal.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "bench_util.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_latency MODEL.tmf [batch] [runs]\n");
        return 2;
    }
    int batch = argc > 2 ? atoi(argv[2]) : 1, runs = argc > 3 ? atoi(argv[3]) : 2000;
    tml_engine_tuning tuning = {.micro_batch = argc > 4 ? atoi(argv[4]) : 0};
    tml_model *m = NULL;
    if (tml_model_load(argv[1], &m)) {
        fprintf(stderr, "%s\n", tml_last_error());
        return 1;
    }
    int64_t in = tml_tensor_numel(&m->tensors[m->input]), out = tml_tensor_numel(&m->tensors[m->output]);
    float *x = malloc(sizeof(float) * (size_t)(in * batch)), *y = malloc(sizeof(float) * (size_t)(out * batch));
    uint64_t s = 12345;
    for (int64_t i = 0; i < in * batch; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(s >> 40) / 16777216.0f;
    }
    tml_engine *e = NULL;
    if (tml_engine_new_tuned(m, batch, NULL, &tuning, &e)) {
        fprintf(stderr, "%s\n", tml_last_error());
        return 1;
    }
    double *t = malloc(sizeof(double) * (size_t)runs), sum = 0;
    for (int i = 0; i < 50; i++) tml_engine_run(e, x, batch, y);
    for (int i = 0; i < runs; i++) {
        double t0 = now();
        tml_engine_run(e, x, batch, y);
        t[i] = now() - t0;
        sum += t[i];
    }
    qsort(t, (size_t)runs, sizeof(double), cmp);
    printf("%s batch %d (passes of %d): median %.2f us, mean %.2f us, %.0f samples/s\n", argv[1], batch,
           e->micro_batch, t[runs / 2] * 1e6, sum / runs * 1e6, batch / t[runs / 2]);
    tml_engine_free(e);
    tml_model_free(m);
    free(x);
    free(y);
    free(t);
    return 0;
}
