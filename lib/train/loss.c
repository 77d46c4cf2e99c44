/*
 * loss.c - softmax cross-entropy with label smoothing, knowledge distillation,
 * and accuracy counting over logits (n, k).
 *
 * Every row is computed in double with the max shift: lse(v) = m + log sum
 * exp(v - m), m = max v, so no exp overflows and log p_j = v_j - lse is exact
 * for very negative probabilities. No arrays are needed: probabilities are
 * recomputed from (v_j, lse) where used.
 */
#include <math.h>

#include "train/train_ops.h"

/* Log-sum-exp of scale * v[0..k). */
static double row_lse(int k, const float *v, double scale)
{
    double m = -INFINITY;
    for (int j = 0; j < k; j++)
        if ((double)v[j] * scale > m) m = (double)v[j] * scale;
    double s = 0.0;
    for (int j = 0; j < k; j++) s += exp((double)v[j] * scale - m);
    return m + log(s);
}

/* Cross-entropy of one row against the smoothed target; adds
 * coef * (softmax - target) to g (when g) and returns the row's loss. */
static double row_xent(int k, const float *v, int label, double eps, double coef, float *g)
{
    TML_ASSERT(label >= 0 && label < k);
    const double lse = row_lse(k, v, 1.0);
    const double off = eps / (double)k, on = 1.0 - eps + off;
    double loss = 0.0;
    for (int j = 0; j < k; j++) {
        const double lp = (double)v[j] - lse;
        const double t = j == label ? on : off;
        if (t != 0.0) loss -= t * lp;
        if (g) g[j] += (float)(coef * (exp(lp) - t));
    }
    return loss;
}

double tml_softmax_xent_f32(int n, int k, const float *logits, const int32_t *labels, float eps,
                            float *dlogits)
{
    double total = 0.0;
    const double coef = n > 0 ? 1.0 / (double)n : 0.0;
    for (int r = 0; r < n; r++) {
        const float *v = logits + (int64_t)r * k;
        float *g = dlogits ? dlogits + (int64_t)r * k : NULL;
        if (g)
            for (int j = 0; j < k; j++) g[j] = 0.0f;
        total += row_xent(k, v, labels[r], (double)eps, coef, g);
    }
    return n > 0 ? total / (double)n : 0.0;
}

double tml_kd_loss_f32(int n, int k, const float *student, const float *teacher, const int32_t *labels,
                       float T, float alpha, float eps, float *dstudent)
{
    const double a = (double)alpha, invT = 1.0 / (double)T, coef = n > 0 ? 1.0 / (double)n : 0.0;
    double kd = 0.0, ce = 0.0;
    for (int r = 0; r < n; r++) {
        const float *s = student + (int64_t)r * k, *t = teacher + (int64_t)r * k;
        float *g = dstudent ? dstudent + (int64_t)r * k : NULL;
        if (g)
            for (int j = 0; j < k; j++) g[j] = 0.0f;
        if (a != 0.0) {
            const double lse_s = row_lse(k, s, invT), lse_t = row_lse(k, t, invT);
            double kl = 0.0;
            for (int j = 0; j < k; j++) {
                const double lps = (double)s[j] * invT - lse_s, lpt = (double)t[j] * invT - lse_t;
                const double pt = exp(lpt);
                if (pt > 0.0) kl += pt * (lpt - lps);
                if (g) g[j] += (float)(a * (double)T * coef * (exp(lps) - pt));
            }
            kd += kl;
        }
        if (a != 1.0) ce += row_xent(k, s, labels[r], (double)eps, (1.0 - a) * coef, g);
    }
    if (n <= 0) return 0.0;
    return (a * (double)T * (double)T * kd + (1.0 - a) * ce) / (double)n;
}

int tml_count_correct_f32(int n, int k, const float *logits, const int32_t *labels)
{
    int correct = 0;
    for (int r = 0; r < n; r++) {
        const float *v = logits + (int64_t)r * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (v[j] > v[best]) best = j;
        correct += best == labels[r];
    }
    return correct;
}
