/*
 * dropout_train.c - inverted dropout with a counter-based mask.
 *
 * keep(seed, step, i): h = mix(base(seed, step) + (i + 1) * golden), where mix
 * is the splitmix64 finalizer and base = mix(mix(seed) ^ step) mixes the run
 * and the step; element i is kept when the top 32 bits of h are >= the
 * threshold round(rate * 2^32). The mask is a pure function of
 * (seed, step, i), so it is reproducible, independent of how elements are
 * split among threads, and the backward recomputes it instead of storing it.
 */
#include "train/train_ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define DROP_PAR_MIN ((int64_t)1 << 16)
#define GOLDEN 0x9E3779B97F4A7C15ull

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t drop_base(uint64_t seed, uint64_t step)
{
    return mix64(mix64(seed + GOLDEN) ^ step);
}

/* Elements with top-32 hash bits below this are dropped; rate in [0, 1). */
static inline uint64_t drop_threshold(float rate)
{
    if (!(rate > 0.0f)) return 0;
    const double t = (double)rate * 4294967296.0;
    return t >= 4294967295.0 ? 4294967295ull : (uint64_t)(t + 0.5);
}

static inline int keep_h(uint64_t base, int64_t i, uint64_t thr)
{
    return (mix64(base + ((uint64_t)i + 1u) * GOLDEN) >> 32) >= thr;
}

uint64_t tml_dropout_seed(uint64_t run_seed, int node)
{
    return mix64(run_seed ^ mix64((uint64_t)node + 1u));
}

int tml_dropout_keep(uint64_t seed, uint64_t step, int64_t i, float rate)
{
    return keep_h(drop_base(seed, step), i, drop_threshold(rate));
}

/* y = x * keep * scale; shared by the forward and the backward. */
static void apply_mask(int64_t count, float rate, uint64_t seed, uint64_t step, const float *x, float *y)
{
    const uint64_t base = drop_base(seed, step), thr = drop_threshold(rate);
    const float scale = rate > 0.0f ? (float)(1.0 / (1.0 - (double)rate)) : 1.0f;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (count >= DROP_PAR_MIN && !omp_in_parallel())
#endif
    for (int64_t i = 0; i < count; i++) y[i] = keep_h(base, i, thr) ? x[i] * scale : 0.0f;
}

void tml_dropout_f32_train(int64_t count, float rate, uint64_t seed, uint64_t step, const float *x, float *y)
{
    apply_mask(count, rate, seed, step, x, y);
}

void tml_dropout_f32_bwd(int64_t count, float rate, uint64_t seed, uint64_t step, const float *dy, float *dx)
{
    apply_mask(count, rate, seed, step, dy, dx);
}
