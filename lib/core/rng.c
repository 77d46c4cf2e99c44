/*
 * rng.c - xoshiro256** (Blackman & Vigna), seeded with splitmix64. Chosen for
 * speed and a reproducible stream independent of libc's rand().
 */
#include <math.h>

#include "tinyml/tml_core.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tml_rng_seed(tml_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tml_rng_next(tml_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tml_rng_uniform(tml_rng *r) { return (double)(tml_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

uint32_t tml_rng_below(tml_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection: unbiased for every n. */
    uint64_t m = (uint64_t)(uint32_t)(tml_rng_next(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t thresh = (uint32_t)(-n) % n;
        while (lo < thresh) {
            m = (uint64_t)(uint32_t)(tml_rng_next(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double tml_rng_normal(tml_rng *r)
{
    double u1 = tml_rng_uniform(r), u2 = tml_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void tml_rng_shuffle(tml_rng *r, int64_t *idx, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(i < 0xFFFFFFFFll ? tml_rng_below(r, (uint32_t)(i + 1)) : (tml_rng_next(r) % (uint64_t)(i + 1)));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
