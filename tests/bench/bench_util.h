/* Helpers shared by the micro-benchmarks (tests/bench/bench_*.c). */
#ifndef TML_BENCH_UTIL_H
#define TML_BENCH_UTIL_H
#include <time.h>

/* Monotonic wall time in seconds. */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qsort comparator of doubles, ascending. */
static inline int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
#endif
