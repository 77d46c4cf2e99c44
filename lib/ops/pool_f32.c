/*
 * pool_f32.c - max / average / global average pooling, float32, NHWC.
 *
 * For output pixel (oy, ox) the taps are input rows iy = oy*sh - pad_t + ky*dh
 * and columns ix = ox*sw - pad_l + kx*dw, ky < kh, kx < kw; taps outside the
 * input are skipped (never read as zeros).
 *   max:  y = max over in-range taps, starting from -inf and taking v when
 *         v > current (so NaN taps are ignored); 0 if no tap is in range
 *   avg:  y = (sum over in-range taps, in (ky, kx) order, float) / count
 *         (padding excluded from the count); 0 if no tap is in range
 *   global avg: y[b, c] = (sum over the hw pixels in order, float) / hw
 * The fast versions do the same operations in the same order, vectorized over
 * channels, so they match the references exactly.
 */
#include <math.h>

#include "ops_internal.h"

#ifdef TML_OPS_OMP
#include <omp.h>
#endif

/* ---- reference ------------------------------------------------------------------ */

static void pool_ref(const tml_window *p, const float *x, float *y, int is_max)
{
    for (int n = 0; n < p->n; n++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++)
                for (int c = 0; c < p->c; c++) {
                    float acc = is_max ? -INFINITY : 0.0f;
                    int count = 0;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        if (iy < 0 || iy >= p->h) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                            if (ix < 0 || ix >= p->w) continue;
                            const float v = x[(((int64_t)n * p->h + iy) * p->w + ix) * p->c + c];
                            if (is_max)
                                acc = v > acc ? v : acc;
                            else
                                acc += v;
                            count++;
                        }
                    }
                    float out = 0.0f;
                    if (count > 0) out = is_max ? acc : acc / (float)count;
                    y[(((int64_t)n * p->oh + oy) * p->ow + ox) * p->c + c] = out;
                }
}

void tml_maxpool_f32_ref(const tml_window *p, const float *x, float *y)
{
    pool_ref(p, x, y, 1);
}

void tml_avgpool_f32_ref(const tml_window *p, const float *x, float *y)
{
    pool_ref(p, x, y, 0);
}

void tml_global_avgpool_f32_ref(int n, int hw, int c, const float *x, float *y)
{
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            float acc = 0.0f;
            for (int i = 0; i < hw; i++) acc += x[((int64_t)b * hw + i) * c + ch];
            y[(int64_t)b * c + ch] = hw > 0 ? acc / (float)hw : 0.0f;
        }
}

/* ---- fast ------------------------------------------------------------------------- */

#define POOL_BLOCK 16 /* channels per register block (one tml_v16f) */

/* One block of 16 channels starting at x / y for the taps in [ky0,ky1) x
 * [kx0,kx1), held in a register; same operations in the same order as pool_ref. */
TML_OPS_INLINE void pool_block16(const tml_window *p, const float *x, int64_t n, int oy, int ox, int ky0,
                                 int ky1, int kx0, int kx1, int is_max, float *y)
{
    const int C = p->c;
    const int count = (ky1 - ky0) * (kx1 - kx0);
    const tml_v16f zero = {0};
    tml_v16f acc = is_max ? zero - INFINITY : zero, xv;
    for (int ky = ky0; ky < ky1; ky++) {
        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
        for (int kx = kx0; kx < kx1; kx++) {
            const int ix = ox * p->sw - p->pad_l + kx * p->dw;
            TML_V16_LOAD(xv, x + ((n * p->h + iy) * p->w + ix) * C);
            if (is_max)
                acc = TML_V16_SELECT(xv > acc, xv, acc);
            else
                acc = acc + xv;
        }
    }
    if (count == 0)
        acc = zero;
    else if (!is_max)
        acc = acc / (zero + (float)count);
    TML_V16_STORE(y, acc);
}

/* The same for a tail of cn < 16 channels, one by one. */
TML_OPS_INLINE void pool_tail(const tml_window *p, const float *x, int64_t n, int oy, int ox, int ky0,
                              int ky1, int kx0, int kx1, int is_max, int cn, float *y)
{
    const int C = p->c;
    const int count = (ky1 - ky0) * (kx1 - kx0);
    for (int i = 0; i < cn; i++) {
        float acc = is_max ? -INFINITY : 0.0f;
        for (int ky = ky0; ky < ky1; ky++) {
            const int iy = oy * p->sh - p->pad_t + ky * p->dh;
            for (int kx = kx0; kx < kx1; kx++) {
                const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                const float v = x[((n * p->h + iy) * p->w + ix) * C + i];
                if (is_max)
                    acc = v > acc ? v : acc;
                else
                    acc += v;
            }
        }
        y[i] = count == 0 ? 0.0f : (is_max ? acc : acc / (float)count);
    }
}

/* Output rows [r0, r1) of the (n*oh) rows, in blocks of 16 channels held in
 * registers across the taps (in-range tap ranges computed once per pixel). */
TML_OPS_INLINE void pool_rows_body(const tml_window *p, const float *x, float *y, int is_max, int64_t r0,
                                   int64_t r1)
{
    const int C = p->c;
    for (int64_t row = r0; row < r1; row++) {
        const int oy = (int)(row % p->oh);
        const int64_t n = row / p->oh;
        int ky0 = 0, ky1 = p->kh;
        while (ky0 < ky1 && oy * p->sh - p->pad_t + ky0 * p->dh < 0) ky0++;
        while (ky1 > ky0 && oy * p->sh - p->pad_t + (ky1 - 1) * p->dh >= p->h) ky1--;
        for (int ox = 0; ox < p->ow; ox++) {
            int kx0 = 0, kx1 = p->kw;
            while (kx0 < kx1 && ox * p->sw - p->pad_l + kx0 * p->dw < 0) kx0++;
            while (kx1 > kx0 && ox * p->sw - p->pad_l + (kx1 - 1) * p->dw >= p->w) kx1--;
            float *yp = y + (row * p->ow + ox) * C;
            if (C < POOL_BLOCK) {
                pool_tail(p, x, n, oy, ox, ky0, ky1, kx0, kx1, is_max, C, yp);
                continue;
            }
            /* whole blocks; a tail is done as the block of the last 16
             * channels, overlapping the previous one (same values again) */
            for (int c0 = 0; c0 < C; c0 += POOL_BLOCK) {
                const int cb = c0 + POOL_BLOCK <= C ? c0 : C - POOL_BLOCK;
                pool_block16(p, x + cb, n, oy, ox, ky0, ky1, kx0, kx1, is_max, yp + cb);
            }
        }
    }
}
#ifdef TML_OPS_X86
#include <immintrin.h>

__attribute__((target("avx512f"))) static void pool_rows_avx512(const tml_window *p, const float *x, float *y,
                                                                 int is_max, int64_t r0, int64_t r1)
{
    pool_rows_body(p, x, y, is_max, r0, r1);
}

/* AVX2 with intrinsics on blocks of 8 channels (one ymm; GCC lowered the
 * 16-float vector code of pool_rows_body on AVX2 to lane-by-lane
 * compares through the stack: 21% of LeNet-5's batch-256 time on Zen 3).
 * Same operations in the same order: max is _mm256_max_ps(v, acc), i.e.
 * v > acc ? v : acc (a NaN tap is ignored), from -inf; avg adds in (ky, kx)
 * order then divides by the count. A channel tail is done as the block of
 * the last 8 channels (overlapping: the same values again); fewer than 8
 * channels take the portable tail loop. */
__attribute__((target("avx2"))) static void pool_rows_avx2(const tml_window *p, const float *x, float *y,
                                                           int is_max, int64_t r0, int64_t r1)
{
    const int C = p->c;
    for (int64_t row = r0; row < r1; row++) {
        const int oy = (int)(row % p->oh);
        const int64_t n = row / p->oh;
        int ky0 = 0, ky1 = p->kh;
        while (ky0 < ky1 && oy * p->sh - p->pad_t + ky0 * p->dh < 0) ky0++;
        while (ky1 > ky0 && oy * p->sh - p->pad_t + (ky1 - 1) * p->dh >= p->h) ky1--;
        for (int ox = 0; ox < p->ow; ox++) {
            int kx0 = 0, kx1 = p->kw;
            while (kx0 < kx1 && ox * p->sw - p->pad_l + kx0 * p->dw < 0) kx0++;
            while (kx1 > kx0 && ox * p->sw - p->pad_l + (kx1 - 1) * p->dw >= p->w) kx1--;
            float *yp = y + (row * p->ow + ox) * C;
            if (C < 8) {
                pool_tail(p, x, n, oy, ox, ky0, ky1, kx0, kx1, is_max, C, yp);
                continue;
            }
            const int count = (ky1 - ky0) * (kx1 - kx0);
            const __m256 init = is_max ? _mm256_set1_ps(-INFINITY) : _mm256_setzero_ps();
            const __m256 fc = _mm256_set1_ps((float)count);
            for (int c0 = 0; c0 < C; c0 += 8) {
                const int cb = c0 + 8 <= C ? c0 : C - 8;
                __m256 acc = init;
                for (int ky = ky0; ky < ky1; ky++) {
                    const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                    const float *xr = x + (n * p->h + iy) * p->w * C + cb;
                    for (int kx = kx0; kx < kx1; kx++) {
                        const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                        const __m256 v = _mm256_loadu_ps(xr + (int64_t)ix * C);
                        acc = is_max ? _mm256_max_ps(v, acc) : _mm256_add_ps(acc, v);
                    }
                }
                if (count == 0)
                    acc = _mm256_setzero_ps();
                else if (!is_max)
                    acc = _mm256_div_ps(acc, fc);
                _mm256_storeu_ps(yp + cb, acc);
            }
        }
    }
}

static void pool_rows_generic(const tml_window *p, const float *x, float *y, int is_max, int64_t r0, int64_t r1)
{
    pool_rows_body(p, x, y, is_max, r0, r1);
}

static void pool_rows(const tml_window *p, const float *x, float *y, int is_max, int64_t r0, int64_t r1)
{
    const tml_isa isa = tml_cpu_isa();
    if (isa == TML_ISA_AVX512)
        pool_rows_avx512(p, x, y, is_max, r0, r1);
    else if (isa == TML_ISA_AVX2)
        pool_rows_avx2(p, x, y, is_max, r0, r1);
    else
        pool_rows_generic(p, x, y, is_max, r0, r1);
}
#else
TML_OPS_MULTIVERSION(pool_rows,
                     (const tml_window *p, const float *x, float *y, int is_max, int64_t r0, int64_t r1),
                     (p, x, y, is_max, r0, r1))
#endif

static void pool_fast(const tml_window *p, const float *x, float *y, int is_max)
{
    const int64_t rows = (int64_t)p->n * p->oh;
    if (rows <= 0 || p->c <= 0) return;
#ifdef TML_OPS_OMP
    const int64_t work = rows * p->ow * p->c * p->kh * p->kw;
    if (work >= TML_OPS_PAR_ELEMS && rows > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) pool_rows(p, x, y, is_max, r, r + 1);
        return;
    }
#endif
    pool_rows(p, x, y, is_max, 0, rows);
}

void tml_maxpool_f32(const tml_window *p, const float *x, float *y)
{
    pool_fast(p, x, y, 1);
}

void tml_avgpool_f32(const tml_window *p, const float *x, float *y)
{
    pool_fast(p, x, y, 0);
}

TML_OPS_INLINE void gap_body(int hw, int c, const float *x, float *y)
{
    float *restrict yp = y;
    for (int ch = 0; ch < c; ch++) yp[ch] = 0.0f;
    for (int i = 0; i < hw; i++) {
        const float *restrict xp = x + (int64_t)i * c;
        for (int ch = 0; ch < c; ch++) yp[ch] += xp[ch];
    }
    if (hw > 0) {
        const float fh = (float)hw;
        for (int ch = 0; ch < c; ch++) yp[ch] = yp[ch] / fh;
    }
}
TML_OPS_MULTIVERSION(gap, (int hw, int c, const float *x, float *y), (hw, c, x, y))

void tml_global_avgpool_f32(int n, int hw, int c, const float *x, float *y)
{
#ifdef TML_OPS_OMP
    if ((int64_t)n * hw * c >= TML_OPS_PAR_ELEMS && n > 1 && !omp_in_parallel() &&
        omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int b = 0; b < n; b++) gap((int)hw, c, x + (int64_t)b * hw * c, y + (int64_t)b * c);
        return;
    }
#endif
    for (int b = 0; b < n; b++) gap(hw, c, x + (int64_t)b * hw * c, y + (int64_t)b * c);
}
