/*
 * bench_ort.c - tinyml's engine against ONNX Runtime on the same model, in one
 * interleaved run: rounds of (R tinyml runs, R ORT runs), every run timed on
 * its own; prints min and median per engine and their ratio, and the largest
 * output difference (both engines are fed the same input).
 *
 *   bench_ort LIBONNXRUNTIME.so MODEL.tmf MODEL.onnx [batch=1] [rounds=20] [runs=50]
 *
 * Output, one CSV line:
 *   batch,tinyml_min_us,tinyml_med_us,ort_min_us,ort_med_us,ratio_min,ratio_med,max_abs_diff,ort_version,cpu_ratio_med
 * (ratio = tinyml / ORT wall time; below 1 tinyml is faster). cpu_ratio_med is
 * the ratio of the median thread CPU times: on a shared machine a run longer
 * than a scheduler slice (batch 256) is often preempted, which inflates wall
 * times but not the CPU time. Both engines run on this thread.
 *
 * Both engines run on the calling thread: ORT with intra- and inter-op
 * threads 1, sequential execution and all graph optimisations
 * (ORT_ENABLE_ALL); tinyml with whatever OMP_NUM_THREADS says (scripts/
 * bench-ort.sh sets 1). ORT gets its best case: input and output tensors wrap
 * preallocated buffers once, so a run is one OrtApi::Run call. The timed
 * region of tinyml is one tml_engine_run (which copies the input in and the
 * output out).
 *
 * ONNX Runtime is loaded with dlopen, so nothing is needed at build time. Its C
 * API is a table of function pointers (struct OrtApi) obtained from the one
 * exported symbol OrtGetApiBase; the table only ever grows at the end (the
 * first version's entries, all we use, are frozen), so this file declares the
 * slots it needs by index (the ABI fact) instead of including ORT's header.
 * The slot numbers are checked at start-up (CreateStatus / GetErrorCode /
 * GetErrorMessage round-trip) and by the output comparison.
 *
 * tinyml activations are NHWC, ONNX's NCHW: a (h, w, c) input is transposed
 * for ORT (nothing to do when c == 1); outputs are (batch, classes) in both.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"

/* ---- the part of ONNX Runtime's C API used here --------------------------------- */

typedef struct OrtStatus OrtStatus;
typedef void *(*ort_fn)(void);

/* OrtApiBase: { const OrtApi *(*GetApi)(uint32_t version); const char *(*GetVersionString)(void); } */
typedef struct ort_api_base {
    const ort_fn *(*get_api)(uint32_t version);
    const char *(*get_version_string)(void);
} ort_api_base;

/* Slots of struct OrtApi (API version 1, frozen). */
enum {
    ORT_CREATE_STATUS = 0,
    ORT_GET_ERROR_CODE = 1,
    ORT_GET_ERROR_MESSAGE = 2,
    ORT_CREATE_ENV = 3,
    ORT_CREATE_SESSION = 7,
    ORT_RUN = 9,
    ORT_CREATE_SESSION_OPTIONS = 10,
    ORT_SET_SESSION_EXECUTION_MODE = 13,
    ORT_SET_SESSION_GRAPH_OPTIMIZATION_LEVEL = 23,
    ORT_SET_INTRA_OP_NUM_THREADS = 24,
    ORT_SET_INTER_OP_NUM_THREADS = 25,
    ORT_SESSION_GET_INPUT_NAME = 36,
    ORT_SESSION_GET_OUTPUT_NAME = 37,
    ORT_CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE = 49,
    ORT_CREATE_CPU_MEMORY_INFO = 69,
    ORT_ALLOCATOR_FREE = 76,
    ORT_GET_ALLOCATOR_WITH_DEFAULT_OPTIONS = 78,
    ORT_RELEASE_ENV = 92,
    ORT_RELEASE_STATUS = 93,
    ORT_RELEASE_MEMORY_INFO = 94,
    ORT_RELEASE_SESSION = 95,
    ORT_RELEASE_VALUE = 96,
    ORT_RELEASE_SESSION_OPTIONS = 100
};

enum { ORT_LOGGING_LEVEL_WARNING = 2, ORT_FAIL_CODE = 1, ORT_ENABLE_ALL = 99, ORT_SEQUENTIAL = 0 };
enum { ORT_DEVICE_ALLOCATOR = 0, ORT_MEM_TYPE_DEFAULT = 0, ONNX_FLOAT = 1 };

typedef OrtStatus *(*create_status_t)(int code, const char *msg);
typedef int (*get_error_code_t)(const OrtStatus *);
typedef const char *(*get_error_message_t)(const OrtStatus *);
typedef OrtStatus *(*create_env_t)(int level, const char *logid, void **out);
typedef OrtStatus *(*create_session_t)(const void *env, const char *path, const void *opts, void **out);
typedef OrtStatus *(*run_t)(void *sess, const void *run_opts, const char *const *in_names, const void *const *in,
                            size_t n_in, const char *const *out_names, size_t n_out, void **out);
typedef OrtStatus *(*create_opts_t)(void **out);
typedef OrtStatus *(*opts_int_t)(void *opts, int v);
typedef OrtStatus *(*get_name_t)(const void *sess, size_t index, void *allocator, char **out);
typedef OrtStatus *(*create_tensor_t)(const void *info, void *data, size_t bytes, const int64_t *shape,
                                      size_t ndim, int type, void **out);
typedef OrtStatus *(*create_cpu_info_t)(int alloc_type, int mem_type, void **out);
typedef OrtStatus *(*allocator_free_t)(void *allocator, void *p);
typedef OrtStatus *(*get_allocator_t)(void **out);
typedef void (*release_t)(void *);

typedef struct ort {
    void *lib;
    const ort_fn *api;
    const char *version;
    void *env, *opts, *sess, *info, *in, *out;
    char *in_name, *out_name;
} ort;

#define ORT_CALL(o, slot, type) ((type)(void *)(o)->api[slot])

static int ort_check(const ort *o, OrtStatus *st, const char *what)
{
    if (!st) return 0;
    fprintf(stderr, "bench_ort: %s: %s\n", what, ORT_CALL(o, ORT_GET_ERROR_MESSAGE, get_error_message_t)(st));
    ORT_CALL(o, ORT_RELEASE_STATUS, release_t)(st);
    return 1;
}

static int ort_open(ort *o, const char *lib)
{
    memset(o, 0, sizeof *o);
    o->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!o->lib) {
        fprintf(stderr, "bench_ort: %s\n", dlerror());
        return 1;
    }
    const ort_api_base *(*get_base)(void);
    *(void **)&get_base = dlsym(o->lib, "OrtGetApiBase");
    if (!get_base) {
        fprintf(stderr, "bench_ort: %s has no OrtGetApiBase\n", lib);
        return 1;
    }
    const ort_api_base *base = get_base();
    o->api = base->get_api(1);
    o->version = base->get_version_string();
    if (!o->api) {
        fprintf(stderr, "bench_ort: ONNX Runtime %s refuses API version 1\n", o->version);
        return 1;
    }
    /* the slot numbers: a status made by slot 0 reads back through slots 1 and 2 */
    OrtStatus *probe = ORT_CALL(o, ORT_CREATE_STATUS, create_status_t)(ORT_FAIL_CODE, "slot probe");
    if (!probe || ORT_CALL(o, ORT_GET_ERROR_CODE, get_error_code_t)(probe) != ORT_FAIL_CODE ||
        strcmp(ORT_CALL(o, ORT_GET_ERROR_MESSAGE, get_error_message_t)(probe), "slot probe") != 0) {
        fprintf(stderr, "bench_ort: ONNX Runtime %s: unexpected OrtApi layout\n", o->version);
        return 1;
    }
    ORT_CALL(o, ORT_RELEASE_STATUS, release_t)(probe);
    return 0;
}

static int ort_session(ort *o, const char *path, int64_t *in_shape, int in_ndim, float *x, size_t x_bytes,
                       int64_t *out_shape, float *y, size_t y_bytes)
{
    if (ort_check(o, ORT_CALL(o, ORT_CREATE_ENV, create_env_t)(ORT_LOGGING_LEVEL_WARNING, "bench_ort", &o->env),
                  "CreateEnv") ||
        ort_check(o, ORT_CALL(o, ORT_CREATE_SESSION_OPTIONS, create_opts_t)(&o->opts), "CreateSessionOptions") ||
        ort_check(o, ORT_CALL(o, ORT_SET_INTRA_OP_NUM_THREADS, opts_int_t)(o->opts, 1), "SetIntraOpNumThreads") ||
        ort_check(o, ORT_CALL(o, ORT_SET_INTER_OP_NUM_THREADS, opts_int_t)(o->opts, 1), "SetInterOpNumThreads") ||
        ort_check(o, ORT_CALL(o, ORT_SET_SESSION_EXECUTION_MODE, opts_int_t)(o->opts, ORT_SEQUENTIAL),
                  "SetSessionExecutionMode") ||
        ort_check(o, ORT_CALL(o, ORT_SET_SESSION_GRAPH_OPTIMIZATION_LEVEL, opts_int_t)(o->opts, ORT_ENABLE_ALL),
                  "SetSessionGraphOptimizationLevel") ||
        ort_check(o, ORT_CALL(o, ORT_CREATE_SESSION, create_session_t)(o->env, path, o->opts, &o->sess), path))
        return 1;
    void *alloc = NULL;
    if (ort_check(o, ORT_CALL(o, ORT_GET_ALLOCATOR_WITH_DEFAULT_OPTIONS, get_allocator_t)(&alloc), "allocator") ||
        ort_check(o, ORT_CALL(o, ORT_SESSION_GET_INPUT_NAME, get_name_t)(o->sess, 0, alloc, &o->in_name), "input name") ||
        ort_check(o, ORT_CALL(o, ORT_SESSION_GET_OUTPUT_NAME, get_name_t)(o->sess, 0, alloc, &o->out_name), "output name"))
        return 1;
    if (ort_check(o, ORT_CALL(o, ORT_CREATE_CPU_MEMORY_INFO, create_cpu_info_t)(ORT_DEVICE_ALLOCATOR, ORT_MEM_TYPE_DEFAULT, &o->info),
                  "CreateCpuMemoryInfo") ||
        ort_check(o, ORT_CALL(o, ORT_CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE, create_tensor_t)(o->info, x, x_bytes, in_shape, (size_t)in_ndim, ONNX_FLOAT, &o->in),
                  "input tensor") ||
        ort_check(o, ORT_CALL(o, ORT_CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE, create_tensor_t)(o->info, y, y_bytes, out_shape, 2, ONNX_FLOAT, &o->out),
                  "output tensor"))
        return 1;
    return 0;
}

static int ort_run(ort *o)
{
    const char *in_names[1] = {o->in_name}, *out_names[1] = {o->out_name};
    const void *in[1] = {o->in};
    void *out[1] = {o->out};
    return ort_check(o, ORT_CALL(o, ORT_RUN, run_t)(o->sess, NULL, in_names, in, 1, out_names, 1, out), "Run");
}

static void ort_close(ort *o)
{
    if (!o->api) return;
    void *alloc = NULL;
    OrtStatus *st = ORT_CALL(o, ORT_GET_ALLOCATOR_WITH_DEFAULT_OPTIONS, get_allocator_t)(&alloc);
    if (!st && alloc) {
        if (o->in_name) ort_check(o, ORT_CALL(o, ORT_ALLOCATOR_FREE, allocator_free_t)(alloc, o->in_name), "free");
        if (o->out_name) ort_check(o, ORT_CALL(o, ORT_ALLOCATOR_FREE, allocator_free_t)(alloc, o->out_name), "free");
    } else if (st) {
        ort_check(o, st, "allocator");
    }
    ORT_CALL(o, ORT_RELEASE_VALUE, release_t)(o->in);
    ORT_CALL(o, ORT_RELEASE_VALUE, release_t)(o->out);
    ORT_CALL(o, ORT_RELEASE_MEMORY_INFO, release_t)(o->info);
    ORT_CALL(o, ORT_RELEASE_SESSION, release_t)(o->sess);
    ORT_CALL(o, ORT_RELEASE_SESSION_OPTIONS, release_t)(o->opts);
    ORT_CALL(o, ORT_RELEASE_ENV, release_t)(o->env);
}

/* ---- timing ------------------------------------------------------------------------ */

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }
/* CPU time of this thread: excludes the time another process had the core */
static double cpu_now(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); }

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_ort LIBONNXRUNTIME.so MODEL.tmf MODEL.onnx [batch=1] [rounds=20] [runs=50]\n");
        return 2;
    }
    const int batch = argc > 4 ? atoi(argv[4]) : 1, rounds = argc > 5 ? atoi(argv[5]) : 20,
              runs = argc > 6 ? atoi(argv[6]) : 50;
    if (batch < 1 || rounds < 1 || runs < 1) {
        fprintf(stderr, "bench_ort: batch, rounds and runs must be positive\n");
        return 2;
    }
    tml_model *m = NULL;
    if (tml_model_load(argv[2], &m)) {
        fprintf(stderr, "bench_ort: %s\n", tml_last_error());
        return 1;
    }
    const tml_tensor *it = &m->tensors[m->input];
    const int64_t in = tml_tensor_numel(it), out = tml_tensor_numel(&m->tensors[m->output]);
    float *x = malloc(sizeof(float) * (size_t)(in * batch)), *xo = malloc(sizeof(float) * (size_t)(in * batch));
    float *y = malloc(sizeof(float) * (size_t)(out * batch)), *yo = malloc(sizeof(float) * (size_t)(out * batch));
    if (!x || !xo || !y || !yo) return 1;
    uint64_t s = 12345;
    for (int64_t i = 0; i < in * batch; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(s >> 40) / 16777216.0f;
    }
    /* ORT's input: NCHW for an (h, w, c) tensor, as is otherwise */
    int64_t shape[4] = {batch, in, 0, 0};
    int ndim = 2;
    if (it->ndim == 3) {
        const int h = it->dims[0], w = it->dims[1], c = it->dims[2];
        shape[1] = c, shape[2] = h, shape[3] = w, ndim = 4;
        for (int b = 0; b < batch; b++)
            for (int yy = 0; yy < h; yy++)
                for (int xx = 0; xx < w; xx++)
                    for (int ch = 0; ch < c; ch++)
                        xo[(((int64_t)b * c + ch) * h + yy) * w + xx] = x[(((int64_t)b * h + yy) * w + xx) * c + ch];
    } else {
        memcpy(xo, x, sizeof(float) * (size_t)(in * batch));
    }
    int64_t oshape[2] = {batch, out};
    ort o;
    if (ort_open(&o, argv[1]) ||
        ort_session(&o, argv[3], shape, ndim, xo, sizeof(float) * (size_t)(in * batch), oshape, yo,
                    sizeof(float) * (size_t)(out * batch))) {
        ort_close(&o);
        return 1;
    }
    tml_engine *e = NULL;
    if (tml_engine_new(m, batch, NULL, &e)) {
        fprintf(stderr, "bench_ort: %s\n", tml_last_error());
        return 1;
    }
    /* warm-up, and the outputs of both */
    for (int i = 0; i < 20; i++) {
        tml_engine_run(e, x, batch, y);
        if (ort_run(&o)) return 1;
    }
    double diff = 0;
    for (int64_t i = 0; i < out * batch; i++) {
        double d = fabs((double)y[i] - (double)yo[i]);
        if (!(d <= diff)) diff = d; /* NaN propagates */
    }
    const size_t total = (size_t)rounds * (size_t)runs;
    double *tt = malloc(sizeof(double) * total), *to = malloc(sizeof(double) * total);
    double *ct = malloc(sizeof(double) * total), *co = malloc(sizeof(double) * total);
    if (!tt || !to || !ct || !co) return 1;
    /* the cost of reading the CPU-time clock (a system call), subtracted */
    double clk = 1.0;
    for (int i = 0; i < 200; i++) {
        const double c0 = cpu_now(), c1 = cpu_now();
        if (c1 - c0 < clk) clk = c1 - c0;
    }
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < runs; i++) {
            const double c0 = cpu_now(), t0 = now();
            tml_engine_run(e, x, batch, y);
            const double t1 = now(), c1 = cpu_now();
            tt[(size_t)r * runs + i] = t1 - t0;
            ct[(size_t)r * runs + i] = c1 - c0 - clk;
        }
        for (int i = 0; i < runs; i++) {
            const double c0 = cpu_now(), t0 = now();
            ort_run(&o);
            const double t1 = now(), c1 = cpu_now();
            to[(size_t)r * runs + i] = t1 - t0;
            co[(size_t)r * runs + i] = c1 - c0 - clk;
        }
    }
    qsort(tt, total, sizeof(double), cmp);
    qsort(to, total, sizeof(double), cmp);
    qsort(ct, total, sizeof(double), cmp);
    qsort(co, total, sizeof(double), cmp);
    const double tmin = tt[0] * 1e6, tmed = tt[total / 2] * 1e6, omin = to[0] * 1e6, omed = to[total / 2] * 1e6;
    printf("%d,%.2f,%.2f,%.2f,%.2f,%.3f,%.3f,%.3g,%s,%.3f\n", batch, tmin, tmed, omin, omed, tmin / omin, tmed / omed,
           diff, o.version, ct[total / 2] / co[total / 2]);
    tml_engine_free(e);
    ort_close(&o);
    tml_model_free(m);
    free(x);
    free(xo);
    free(y);
    free(yo);
    free(tt);
    free(to);
    free(ct);
    free(co);
    return 0;
}
