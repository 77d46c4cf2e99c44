/*
 * stats.c - the statistics behind accuracy claims in tables: a confidence
 * interval for an accuracy measured on n samples, and a paired test for the
 * difference between two models evaluated on the same samples.
 */
#include <math.h>

#include "tinyml/tml_report.h"

void tml_wilson_interval(int64_t k, int64_t n, double *lo, double *hi)
{
    /* Wilson score interval, z = 1.959964 (95%): unlike p +- z*sqrt(p(1-p)/n)
     * it stays inside [0, 1] and is sane at p near 0 or 1 and for small n. */
    if (n <= 0) {
        *lo = 0.0;
        *hi = 1.0;
        return;
    }
    const double z = 1.959963984540054, p = (double)k / (double)n, nn = (double)n;
    const double den = 1.0 + z * z / nn, mid = (p + z * z / (2.0 * nn)) / den;
    const double half = z * sqrt(p * (1.0 - p) / nn + z * z / (4.0 * nn * nn)) / den;
    *lo = mid - half < 0.0 ? 0.0 : mid - half;
    *hi = mid + half > 1.0 ? 1.0 : mid + half;
}

/* log of the binomial coefficient C(n, k) */
static double log_choose(int64_t n, int64_t k)
{
    return lgamma((double)n + 1.0) - lgamma((double)k + 1.0) - lgamma((double)(n - k) + 1.0);
}

double tml_mcnemar_p(int64_t b, int64_t c)
{
    /* Exact McNemar test: of the n = b + c samples on which the two models
     * disagree, b went one way; under "no difference" b ~ Binomial(n, 1/2).
     * Two-sided p = min(1, 2 * P(X <= min(b, c))). Exact for any n (no
     * chi-square approximation), summed in log space so n in the millions
     * neither overflows nor underflows to a wrong 0. */
    const int64_t n = b + c, m = b < c ? b : c;
    if (n == 0) return 1.0;
    const double l2 = (double)n * log(0.5);
    double acc = 0.0, top = log_choose(n, m) + l2;
    /* terms grow with i up to m (m <= n/2): scale by the largest, the last */
    for (int64_t i = 0; i <= m; i++) acc += exp(log_choose(n, i) + l2 - top);
    double p = 2.0 * exp(top + log(acc));
    return p > 1.0 ? 1.0 : p;
}
