/*
 * test_stats.c - the statistics behind accuracy claims (lib/report/stats.c):
 * Wilson intervals and the exact McNemar test, against values computed
 * independently with exact integer arithmetic (Python's math.comb).
 */
#include <math.h>
#include <stdio.h>

#include "testutil.h"
#include "tinyml/tml_report.h"

static void test_wilson_interval(void **state)
{
    (void)state;
    static const struct {
        int64_t k, n;
        double lo, hi;
    } cases[] = {
        {81, 263, 0.2552885198782742, 0.36620957698280004},
        {9150, 10000, 0.9093733864591546, 0.9203078948931839},
        {0, 10, 0.0, 0.2775327998628892},
        {10, 10, 0.7224672001371107, 1.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double lo, hi;
        tml_wilson_interval(cases[i].k, cases[i].n, &lo, &hi);
        assert_true(fabs(lo - cases[i].lo) < 1e-12 && fabs(hi - cases[i].hi) < 1e-12);
    }
    double lo, hi;
    tml_wilson_interval(0, 0, &lo, &hi);
    assert_true(lo == 0.0 && hi == 1.0);
}

static void test_mcnemar_exact(void **state)
{
    (void)state;
    static const struct {
        int64_t b, c;
        double p;
    } cases[] = {
        {10, 2, 0.03857421875},   /* 2 * 79 / 4096 */
        {2, 10, 0.03857421875},   /* symmetric */
        {5, 5, 1.0},
        {0, 0, 1.0},
        {3, 0, 0.25},
        {40, 60, 0.05688793364098079},
        {1000, 1100, 0.030720707864242296},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double p = tml_mcnemar_p(cases[i].b, cases[i].c);
        if (fabs(p - cases[i].p) > 1e-9 * (cases[i].p > 1e-3 ? 1.0 : 1e-3))
            fprintf(stderr, "  b %lld c %lld: p %.17g, expected %.17g\n", (long long)cases[i].b, (long long)cases[i].c, p,
                    cases[i].p);
        assert_true(fabs(p - cases[i].p) <= 1e-9);
    }
    /* millions of disagreements: no overflow, a tiny but positive p */
    double p = tml_mcnemar_p(1000000, 1010000);
    assert_true(p > 0.0 && p < 1e-8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wilson_interval),
        cmocka_unit_test(test_mcnemar_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
