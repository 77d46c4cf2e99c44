/*
 * softmax_s8.c - INT8 softmax over rows, integer only at run time.
 *
 * exp(s * (x - max)) only depends on d = max - x in [0, 255], so the
 * prepare step tabulates lut[d] = round(2^16 * exp(-s * d)) (tml_softmax_s8_lut).
 * The kernel sums the row's table entries (uint64: k * 2^16 never overflows)
 * and emits the probability at output scale 1/256, zero point -128:
 *   y = clamp(round_half_away(256 * lut[d] / sum) - 128, -128, 127)
 * computed exactly as floor((512 * lut[d] + sum) / (2 * sum)) (all positive).
 * A probability of 1 would be 256 - 128 = 128 and saturates to 127.
 */
#include "ops_s8_internal.h"

void tml_softmax_s8_ref(int n, int k, const uint32_t lut[256], const int8_t *x, int8_t *y)
{
    for (int r = 0; r < n; r++) {
        const int8_t *xr = x + (int64_t)r * k;
        int8_t *yr = y + (int64_t)r * k;
        int32_t mx = -128;
        for (int i = 0; i < k; i++)
            if (xr[i] > mx) mx = xr[i];
        uint64_t sum = 0;
        for (int i = 0; i < k; i++) sum += lut[mx - xr[i]];
        for (int i = 0; i < k; i++) {
            const uint64_t num = 512u * (uint64_t)lut[mx - xr[i]] + sum;
            int64_t v = (int64_t)(num / (2u * sum)) - 128;
            if (v > 127) v = 127;
            yr[i] = (int8_t)v;
        }
    }
}
