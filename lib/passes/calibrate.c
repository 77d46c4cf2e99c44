/*
 * calibrate.c - activation range statistics for post-training quantization and
 * the clipping range each calibration method chooses.
 *
 * Streaming in two passes over a seeded random subset of the dataset: pass 1
 * finds each tensor's min/max, pass 2 fills a 2048-bin histogram over [min, max]
 * and per-channel means. Memory is one batch of activations plus the
 * histograms, whatever the number of samples.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "passes_internal.h"
#include "tinyml/tml_quant.h"

const char *tml_calib_method_name(tml_calib_method m)
{
    switch (m) {
    case TML_CALIB_MINMAX: return "minmax";
    case TML_CALIB_PERCENTILE: return "percentile";
    case TML_CALIB_ENTROPY: return "entropy";
    case TML_CALIB_MSE: return "mse";
    }
    return "?";
}

tml_status tml_calib_method_parse(const char *s, tml_calib_method *m, double *percentile)
{
    *percentile = 99.99;
    if (strcmp(s, "minmax") == 0) *m = TML_CALIB_MINMAX;
    else if (strcmp(s, "entropy") == 0 || strcmp(s, "kl") == 0) *m = TML_CALIB_ENTROPY;
    else if (strcmp(s, "mse") == 0) *m = TML_CALIB_MSE;
    else if (strncmp(s, "percentile", 10) == 0 && (s[10] == '\0' || s[10] == ':')) {
        *m = TML_CALIB_PERCENTILE;
        if (s[10] == ':') {
            char *end;
            double p = strtod(s + 11, &end);
            if (*end || !(p > 50.0 && p <= 100.0))
                return tml_error(TML_ERR_INVALID, "percentile must be in (50, 100], e.g. percentile:99.9 (got '%s')", s + 11);
            *percentile = p;
        }
    } else {
        return tml_error(TML_ERR_INVALID, "unknown calibration method '%s' (minmax, percentile[:P], entropy, mse)", s);
    }
    return TML_OK;
}

void tml_choose_qparams(double lo, double hi, float *scale, int32_t *zp)
{
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    double s = (hi - lo) / 255.0;
    if (!(s > 1e-12)) s = 1e-12; /* a tensor that is always 0: any scale works */
    double z = -128.0 - lo / s;
    long zi = lround(z);
    if (zi < -128) zi = -128;
    if (zi > 127) zi = 127;
    *scale = (float)s;
    *zp = (int32_t)zi;
}

void tml_calib_free(tml_calib *c)
{
    if (c) tml_hessians_free(c);
    if (!c || !c->stats) return;
    for (int i = 0; i < c->n_tensors; i++) {
        free(c->stats[i].hist);
        free(c->stats[i].chan_mean);
    }
    free(c->stats);
    c->stats = NULL;
}

/* ---- range selection ---------------------------------------------------------------- */

static double bin_width(const tml_tensor_stats *s) { return (s->max - s->min) / TML_CALIB_BINS; }
static double bin_lo(const tml_tensor_stats *s, int b) { return s->min + bin_width(s) * b; }

/* Value at cumulative fraction q of all values (linear inside a bin); the
 * exact zeros kept outside the histogram count as a point mass at 0. */
static double quantile(const tml_tensor_stats *s, double total, double q)
{
    double target = q * total, acc = 0.0;
    int zeros_done = s->zeros <= 0;
    for (int b = 0; b < TML_CALIB_BINS; b++) {
        if (!zeros_done && bin_lo(s, b) + bin_width(s) > 0.0) { /* the zeros come before this bin's positives */
            if (acc + s->zeros >= target) return 0.0;
            acc += s->zeros;
            zeros_done = 1;
        }
        double h = s->hist[b];
        if (acc + h >= target && h > 0) return bin_lo(s, b) + bin_width(s) * ((target - acc) / h);
        acc += h;
    }
    return s->max;
}

/* The bin holding the real value 0 (the zero point must be exact, so every
 * candidate range keeps 0 inside). */
static int zero_bin(const tml_tensor_stats *s)
{
    if (s->min >= 0) return 0;
    if (s->max <= 0) return TML_CALIB_BINS;
    int z = (int)floor(-s->min / bin_width(s));
    return z < 0 ? 0 : (z > TML_CALIB_BINS ? TML_CALIB_BINS : z);
}

/* Candidate range number c of nc: shrink both sides toward the zero bin by the
 * same fraction a = c / nc, at least 256 bins wide in total (one bin per int8
 * level), so one-sided (post-ReLU) tensors get TensorRT's threshold sweep. */
static void candidate(int z, int c, int nc, int *lo_bin, int *hi_bin)
{
    double a = (double)c / nc;
    int lo = z - (int)ceil(a * z);
    int hi = z + (int)ceil(a * (TML_CALIB_BINS - z));
    if (hi - lo < 256) {
        int need = 256 - (hi - lo);
        int grow_hi = (int)ceil(need * (double)(TML_CALIB_BINS - z) / TML_CALIB_BINS);
        hi += grow_hi;
        lo -= need - grow_hi;
        if (hi > TML_CALIB_BINS) {
            lo -= hi - TML_CALIB_BINS;
            hi = TML_CALIB_BINS;
        }
        if (lo < 0) {
            hi += -lo;
            lo = 0;
            if (hi > TML_CALIB_BINS) hi = TML_CALIB_BINS;
        }
    }
    *lo_bin = lo;
    *hi_bin = hi;
}

/* KL(P || Q) of TensorRT's entropy calibration for bins [lo, hi): P is the
 * histogram with the clipped mass folded into the edge bins; Q merges P into
 * 256 levels and spreads each level's mass evenly over its non-empty bins. */
static double kl_cost(const double *hist, int lo, int hi, double *p, double *q)
{
    int n = hi - lo;
    double outside_lo = 0, outside_hi = 0;
    for (int b = 0; b < lo; b++) outside_lo += hist[b];
    for (int b = hi; b < TML_CALIB_BINS; b++) outside_hi += hist[b];
    for (int i = 0; i < n; i++) p[i] = hist[lo + i];
    p[0] += outside_lo;
    p[n - 1] += outside_hi;
    const int levels = 256;
    for (int l = 0; l < levels; l++) {
        int b0 = (int)((int64_t)l * n / levels), b1 = (int)((int64_t)(l + 1) * n / levels);
        double sum = 0;
        int nz = 0;
        for (int i = b0; i < b1; i++) {
            sum += hist[lo + i]; /* the unclipped content of the level */
            nz += hist[lo + i] > 0;
        }
        for (int i = b0; i < b1; i++) q[i] = (hist[lo + i] > 0 && nz) ? sum / nz : 0.0;
    }
    double ps = 0, qs = 0;
    for (int i = 0; i < n; i++) {
        ps += p[i];
        qs += q[i];
    }
    if (ps <= 0) return 0.0;
    if (qs <= 0) return INFINITY;
    double kl = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0) continue;
        double pi = p[i] / ps;
        double qi = q[i] / qs;
        if (qi <= 0) qi = 1e-12 / qs; /* a clipped edge bin with empty Q: heavy penalty */
        kl += pi * log(pi / qi);
    }
    return kl;
}

/* Expected squared error of quantizing the histogram into 256 levels over
 * [vlo, vhi]: uniform rounding noise delta^2/12 inside, clipping distance
 * squared outside (bin centres stand for their contents). */
static double mse_cost(const tml_tensor_stats *s, double vlo, double vhi)
{
    double delta = (vhi - vlo) / 255.0, in_err = delta * delta / 12.0, err = 0;
    for (int b = 0; b < TML_CALIB_BINS; b++) {
        double h = s->hist[b];
        if (h <= 0) continue;
        double v = bin_lo(s, b) + 0.5 * bin_width(s);
        if (v < vlo) err += h * (vlo - v) * (vlo - v);
        else if (v > vhi) err += h * (v - vhi) * (v - vhi);
        else err += h * in_err;
    }
    return err;
}

tml_status tml_calib_range(const tml_tensor_stats *s, tml_calib_method method, double percentile, double *lo,
                           double *hi)
{
    double total = 0;
    if (s->hist)
        for (int b = 0; b < TML_CALIB_BINS; b++) total += s->hist[b];
    *lo = s->min;
    *hi = s->max;
    if (method == TML_CALIB_MINMAX || !s->hist || total <= 0 || !(s->max > s->min)) goto done;
    if (method == TML_CALIB_PERCENTILE) {
        double q = percentile / 100.0;
        *hi = s->max > 0 ? quantile(s, total + s->zeros, q) : s->max;
        *lo = s->min < 0 ? quantile(s, total + s->zeros, 1.0 - q) : s->min;
        goto done;
    }
    /* entropy / mse: sweep candidate ranges */
    int z = zero_bin(s);
    const int nc = 512;
    double best = INFINITY;
    int best_lo = 0, best_hi = TML_CALIB_BINS;
    double *p = NULL, *q = NULL;
    if (method == TML_CALIB_ENTROPY) {
        p = malloc(sizeof(double) * TML_CALIB_BINS);
        q = malloc(sizeof(double) * TML_CALIB_BINS);
        if (!p || !q) {
            free(p);
            free(q);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
    }
    int prev_lo = -1, prev_hi = -1;
    for (int c = 1; c <= nc; c++) {
        int lb, hb;
        candidate(z, c, nc, &lb, &hb);
        if (lb == prev_lo && hb == prev_hi) continue;
        prev_lo = lb;
        prev_hi = hb;
        double cost = method == TML_CALIB_ENTROPY ? kl_cost(s->hist, lb, hb, p, q)
                                                  : mse_cost(s, bin_lo(s, lb), bin_lo(s, hb));
        /* strict '<' keeps the narrowest of equal-cost ranges: ties favour resolution */
        if (cost < best) {
            best = cost;
            best_lo = lb;
            best_hi = hb;
        }
    }
    free(p);
    free(q);
    *lo = best_lo == 0 ? s->min : bin_lo(s, best_lo);
    *hi = best_hi == TML_CALIB_BINS ? s->max : bin_lo(s, best_hi);
done:
    if (*lo > 0) *lo = 0;
    if (*hi < 0) *hi = 0;
    return TML_OK;
}

/* ---- collection -------------------------------------------------------------------------- */

typedef struct pass_ctx {
    const tml_model *m;
    tml_engine *e;
    tml_calib *c;
    int pass; /* 1: min/max, 2: histograms, 3: input statistics of node `only` */
    int only;
} pass_ctx;

static void observe(pass_ctx *ctx, int n)
{
    const tml_model *m = ctx->m;
    for (int t = 0; t < m->n_tensors; t++) {
        if (m->tensors[t].kind != TML_TENSOR_ACT) continue;
        const float *v = tml_engine_activation(ctx->e, t);
        if (!v) continue;
        tml_tensor_stats *s = &ctx->c->stats[t];
        int64_t cnt = (int64_t)n * tml_tensor_numel(&m->tensors[t]);
        if (ctx->pass == 1) {
            double lo = s->min, hi = s->max;
            for (int64_t i = 0; i < cnt; i++) {
                if (v[i] != v[i]) { /* NaN: poison the range, refused after pass 1 */
                    lo = NAN;
                    break;
                }
                if (v[i] < lo) lo = v[i];
                if (v[i] > hi) hi = v[i];
            }
            s->min = lo;
            s->max = hi;
            s->count += cnt;
        } else {
            double w = s->max - s->min;
            double inv = w > 0 ? TML_CALIB_BINS / w : 0.0;
            int nc = s->n_chan;
            for (int64_t i = 0; i < cnt; i++) {
                if (!isfinite(v[i])) continue; /* pass 1 already refused non-finite ranges */
                if (v[i] == 0.0f) { /* exact zeros: counted apart from the histogram */
                    s->zeros += 1.0;
                    continue;
                }
                int b = (int)(((double)v[i] - s->min) * inv);
                if (b < 0) b = 0;
                if (b >= TML_CALIB_BINS) b = TML_CALIB_BINS - 1;
                s->hist[b] += 1.0;
                s->chan_mean[i % nc] += v[i];
            }
        }
    }
}

/* Floyd's algorithm: a uniformly random subset of k indices of [0, n) as a
 * bitmap; the selection depends only on the seed. */
static uint8_t *choose_subset(int64_t n, int64_t k, uint64_t seed)
{
    uint8_t *bits = calloc((size_t)(n / 8 + 1), 1);
    if (!bits) return NULL;
    tml_rng r;
    tml_rng_seed(&r, seed);
    for (int64_t j = n - k; j < n; j++) {
        int64_t t = (int64_t)(tml_rng_next(&r) % (uint64_t)(j + 1));
        if (bits[t >> 3] & (1u << (t & 7))) t = j;
        bits[t >> 3] |= (uint8_t)(1u << (t & 7));
    }
    return bits;
}

static tml_status run_pass(pass_ctx *ctx, tml_dataset *ds, const uint8_t *sel, int64_t k, int batch, float *raw,
                           float *x, int32_t *lab, const tml_calib_opts *o, int64_t done_before, int64_t total_work)
{
    const tml_model *m = ctx->m;
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    int64_t numel = tml_tensor_numel(&m->tensors[m->input]);
    tml_status st = tml_dataset_rewind(ds);
    if (st) return st;
    int64_t pos = 0, used = 0;
    int fill = 0;
    for (;;) {
        if (o->cancel && *o->cancel) return tml_error(TML_ERR_INTERRUPTED, "calibration interrupted");
        int got = 0;
        st = tml_dataset_next(ds, batch, raw, lab, &got);
        if (st) return st;
        for (int i = 0; i < got; i++, pos++) {
            if (!(sel[pos >> 3] & (1u << (pos & 7)))) continue;
            memcpy(x + (size_t)fill * (size_t)numel, raw + (size_t)i * (size_t)numel, sizeof(float) * (size_t)numel);
            if (++fill == batch) {
                tml_preproc_apply(&m->meta.pre, (int64_t)fill * numel, info->c, x);
                st = tml_engine_run(ctx->e, x, fill, x + (size_t)batch * (size_t)numel);
                if (st) return st;
                if (ctx->pass < 3) observe(ctx, fill);
                if (ctx->pass >= 2 && ctx->c->hess &&
                    (st = tml_hessians_observe(m, ctx->e, fill, ctx->c, ctx->pass == 3 ? ctx->only : -1)))
                    return st;
                used += fill;
                fill = 0;
                if (o->progress) o->progress(o->progress_user, done_before + used, total_work);
            }
        }
        if (got == 0 || used + fill >= k) break;
    }
    if (fill) {
        tml_preproc_apply(&m->meta.pre, (int64_t)fill * numel, info->c, x);
        st = tml_engine_run(ctx->e, x, fill, x + (size_t)batch * (size_t)numel);
        if (st) return st;
        if (ctx->pass < 3) observe(ctx, fill);
        if (ctx->pass >= 2 && ctx->c->hess &&
            (st = tml_hessians_observe(m, ctx->e, fill, ctx->c, ctx->pass == 3 ? ctx->only : -1)))
            return st;
        used += fill;
        if (o->progress) o->progress(o->progress_user, done_before + used, total_work);
    }
    return TML_OK;
}

/*
 * GPTQ's sequential order: each weighted layer's input statistics gathered
 * on a copy of the model whose earlier layers already hold their adaptively
 * rounded weights (dequantized), so a layer's rounding compensates the
 * errors it will really see, not those of the float model (which matters in
 * deep nets: on mobilenet-tiny at 4 bits the float-input statistics made the
 * int8 model lose ~1 point more than round-to-nearest). One pass over the
 * samples per layer after the first; activations stay float here.
 */
static tml_status sequential_hessians(const tml_model *m, tml_dataset *ds, const uint8_t *sel, int64_t k,
                                      const tml_calib_opts *o, tml_calib *c, float *raw, float *x, int32_t *lab)
{
    const tml_quant_opts *qo = o->sequential;
    tml_model *work = tml_model_clone(m);
    if (!work) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_calib_opts po = *o;
    po.progress = NULL;
    tml_status st = TML_OK;
    int first = 1;
    for (int i = 0; i < work->n_nodes && !st; i++) {
        tml_hessian *hs = &c->hess[i];
        if (!hs->h) continue;
        const tml_node *n = &work->nodes[i];
        if (!first) {
            memset(hs->h, 0, sizeof(double) * (size_t)hs->n_mats * (size_t)hs->k * (size_t)hs->k);
            hs->rows = 0;
            tml_engine *e = NULL;
            tml_engine_opts eo = {.keep_all = 1};
            if ((st = tml_engine_new(work, o->batch, &eo, &e))) break;
            pass_ctx ctx = {.m = work, .e = e, .c = c, .pass = 3, .only = i};
            st = run_pass(&ctx, ds, sel, k, o->batch, raw, x, lab, &po, 0, 0);
            tml_engine_free(e);
            if (st) break;
        }
        first = 0;
        tml_tensor *w = &work->tensors[n->in[1]];
        if (w->cb || w->dtype != TML_DTYPE_F32) continue;
        const int dw = n->op == TML_OP_DEPTHWISE_CONV2D, oc = dw ? w->dims[3] : w->dims[0];
        const int bits = tml_quant_layer_bits(qo, n->name), qmax = (1 << (bits - 1)) - 1;
        const int64_t cnt = tml_tensor_numel(w), per = cnt / oc;
        float *s = malloc(sizeof(float) * (size_t)oc);
        int8_t *q = malloc((size_t)cnt);
        if (!s || !q) {
            free(s);
            free(q);
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            break;
        }
        int pt;
        tml_quant_weight_scales(work, i, bits, qo->per_tensor, s, &pt);
        if (tml_gptq_node(work, i, hs, pt, qmax, s, q, &st)) {
            float *d = w->data;
            for (int64_t j = 0; j < cnt; j++) d[j] = (float)q[j] * s[dw ? j % oc : j / per];
        }
        free(s);
        free(q);
    }
    tml_model_free(work);
    return st;
}

tml_status tml_calibrate(const tml_model *m, tml_dataset *ds, const tml_calib_opts *opts, tml_calib *out)
{
    memset(out, 0, sizeof *out);
    tml_calib_opts o = {0};
    if (opts) o = *opts;
    if (o.samples == 0) o.samples = 512;
    if (o.samples < 0) return tml_error(TML_ERR_INVALID, "calibration needs at least one sample");
    if (o.batch <= 0) o.batch = 64;
    if (tml_model_is_quantized(m)) return tml_error(TML_ERR_UNSUPPORTED, "the model is already quantized");
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    tml_status st = tml_check_dataset_fits(m, info);
    if (st) return st;
    if (info->count <= 0) return tml_error(TML_ERR_INVALID, "calibration dataset '%s' has no samples", info->name);
    int64_t k = o.samples < info->count ? o.samples : info->count;
    if (o.batch > k) o.batch = (int)k;

    int64_t numel = tml_tensor_numel(&m->tensors[m->input]);
    int64_t outn = tml_tensor_numel(&m->tensors[m->output]);
    uint8_t *sel = choose_subset(info->count, k, o.seed);
    float *raw = malloc(sizeof(float) * (size_t)numel * (size_t)o.batch);
    /* x holds the batch input, then the output */
    float *x = malloc(sizeof(float) * ((size_t)numel + (size_t)outn) * (size_t)o.batch);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)o.batch);
    out->n_tensors = m->n_tensors;
    out->stats = calloc((size_t)m->n_tensors, sizeof(tml_tensor_stats));
    tml_engine *e = NULL;
    if (!sel || !raw || !x || !lab || !out->stats) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int t = 0; t < m->n_tensors; t++) {
        const tml_tensor *tt = &m->tensors[t];
        if (tt->kind != TML_TENSOR_ACT) continue;
        tml_tensor_stats *s = &out->stats[t];
        s->min = INFINITY;
        s->max = -INFINITY;
        s->n_chan = tt->dims[tt->ndim - 1];
        s->hist = calloc(TML_CALIB_BINS, sizeof(double));
        s->chan_mean = calloc((size_t)s->n_chan, sizeof(double));
        if (!s->hist || !s->chan_mean) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if (o.hessians && (st = tml_hessians_alloc(m, out))) goto out;
    tml_engine_opts eo = {.keep_all = 1};
    st = tml_engine_new(m, o.batch, &eo, &e);
    if (st) goto out;
    pass_ctx ctx = {.m = m, .e = e, .c = out, .pass = 1};
    const int64_t work = o.ranges_only && !o.hessians ? k : 2 * k;
    st = run_pass(&ctx, ds, sel, k, o.batch, raw, x, lab, &o, 0, work);
    if (st) goto out;
    for (int t = 0; t < m->n_tensors; t++) {
        tml_tensor_stats *s = &out->stats[t];
        if (m->tensors[t].kind == TML_TENSOR_ACT && !(isfinite(s->min) && isfinite(s->max))) {
            st = tml_error(TML_ERR_FORMAT, "activation '%s' is not finite on the calibration data (NaN/Inf weights?)",
                           m->tensors[t].name);
            goto out;
        }
    }
    ctx.pass = 2;
    if (!o.ranges_only || o.hessians) st = run_pass(&ctx, ds, sel, k, o.batch, raw, x, lab, &o, k, work);
    if (st) goto out;
    if (out->hess && o.sequential && (st = sequential_hessians(m, ds, sel, k, &o, out, raw, x, lab))) goto out;
    for (int t = 0; t < m->n_tensors; t++) {
        tml_tensor_stats *s = &out->stats[t];
        if (m->tensors[t].kind != TML_TENSOR_ACT || !s->count) continue;
        double per_chan = (double)s->count / s->n_chan;
        for (int ch = 0; ch < s->n_chan; ch++) s->chan_mean[ch] /= per_chan;
    }
    out->samples = k;
out:
    if (st) tml_calib_free(out);
    tml_engine_free(e);
    free(sel);
    free(raw);
    free(x);
    free(lab);
    return st;
}
