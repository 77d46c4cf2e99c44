/*
 * mixed.c - per-layer weight widths (mixed precision) from measured
 * sensitivity, chosen by a knapsack (tml_quant.h, "mixed precision").
 *
 *   1. The folded model is quantized once per candidate width with every
 *      layer at that width (tml_quantize: nearest or adaptive rounding). A
 *      layer's quantized weights do not depend on the other layers' widths
 *      (the activation parameters come from the same calibration and adaptive
 *      rounding uses the float model's input statistics), so any assignment of
 *      widths is assembled from these models by copying each layer's weight
 *      and bias tensors: exactly what tml_quantize would make of it.
 *   2. Sensitivity: each layer alone at each width (the rest at 8 bits), the
 *      mean KL divergence of its output distribution from the float model's on
 *      the held-out samples, minus that of the all-8-bit model. KL to the float
 *      model rather than top-1 or the loss on labels: it moves smoothly with
 *      small errors (top-1 on a few thousand samples is mostly noise), needs no
 *      labels, and is not flattered when the samples were trained on (the
 *      calibration data usually is the training split). For small
 *      perturbations it is close to additive over layers, which the knapsack
 *      assumes.
 *   3. Knapsack: g_l(c) = min over widths b of g_{l-1}(c - bytes_l(b)) +
 *      cost_l(b), g_0 = 0, over capacities c in bytes (units of
 *      ceil(8-bit bytes / 10^6) bytes for larger models, sizes rounded down,
 *      and a solution's exact bytes checked against the budget). g_L(c) for
 *      every c is the best assignment for every budget; the capacities where
 *      it drops are the predicted Pareto front.
 *   4. Measure: up to front_points front assignments spread over the sizes
 *      (and the uniform widths, for comparison) are assembled and evaluated.
 *      target_bytes picks the front's assignment at that budget; max_drop
 *      searches the front (by bisection, measured top-1 being close to
 *      monotonic in size along it) for the smallest model within the drop.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_engine.h"
#include "tinyml/tml_quant.h"

#define MP_MAX_UNITS 1000000 /* knapsack capacity units: exact bytes below 1 MB of 8-bit weights */

void tml_mp_opts_default(tml_mp_opts *o)
{
    memset(o, 0, sizeof *o);
    tml_quant_opts_default(&o->quant);
    o->max_drop = -1.0;
    o->front_points = 12;
}

void tml_mp_result_free(tml_mp_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_points; i++) free(r->points[i].bits);
    free(r->points);
    free(r->layers);
    memset(r, 0, sizeof *r);
}

tml_status tml_mp_layer_bits(const tml_mp_result *r, int point, tml_layer_bits **out)
{
    *out = NULL;
    if (point < 0 || point >= r->n_points) return tml_error(TML_ERR_INVALID, "no such point");
    tml_layer_bits *lb = malloc(sizeof *lb * (size_t)(r->n_layers ? r->n_layers : 1));
    if (!lb) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int l = 0; l < r->n_layers; l++) lb[l] = (tml_layer_bits){r->layers[l].name, r->points[point].bits[l]};
    *out = lb;
    return TML_OK;
}

/* Weight bytes of a layer at `bits` as the exported C stores them (up to
 * row padding and the 2^bits-byte identity codebook of the 3, 5..7-bit forms). */
static int64_t wbytes(int64_t params, int bits) { return (params * bits + 7) / 8; }

/* dst takes a deep copy of src's data, quantization, width and codebook. */
static tml_status copy_tensor(tml_tensor *dst, const tml_tensor *src)
{
    size_t nb = tml_tensor_nbytes(src);
    void *d = malloc(nb ? nb : 1);
    tml_codebook *cb = src->cb ? tml_codebook_clone(src->cb, tml_tensor_numel(src)) : NULL;
    if (!d || (src->cb && !cb)) {
        free(d);
        tml_codebook_free(cb);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    memcpy(d, src->data, nb);
    free(dst->data);
    dst->data = d;
    dst->dtype = src->dtype;
    tml_codebook_free(dst->cb);
    dst->cb = cb;
    dst->qbits = src->qbits;
    tml_tensor_clear_quant(dst);
    if (src->q.n > 0) return tml_tensor_set_quant(dst, src->q.axis, src->q.n, src->q.scale, src->q.zero_point);
    return TML_OK;
}

typedef struct mp_ctx {
    const tml_samples *held;
    float *x;             /* (held->n, input numel) preprocessed inputs */
    double *pf;           /* (held->n, k) the float model's output distribution */
    float *y;             /* (batch, k) */
    int k;
    int n_layers;
    const tml_mp_layer *layers;
    tml_model *qm[9];     /* [bits] the model quantized at that width, or NULL */
    const tml_mp_opts *o;
    int64_t done, total;  /* evaluations, for progress */
} mp_ctx;

#define MP_BATCH 256

/* Probabilities of one output row: softmax of logits, or the row itself when
 * the model ends in a softmax. */
static void probs(const float *y, int k, int is_prob, double *p)
{
    if (is_prob) {
        for (int j = 0; j < k; j++) p[j] = y[j] > 0.0f ? (double)y[j] : 0.0;
        return;
    }
    double mx = y[0], sum = 0.0;
    for (int j = 1; j < k; j++) mx = y[j] > mx ? y[j] : mx;
    for (int j = 0; j < k; j++) sum += (p[j] = exp((double)y[j] - mx));
    for (int j = 0; j < k; j++) p[j] /= sum;
}

static int ends_in_softmax(const tml_model *m)
{
    int pi = tml_model_producer(m, m->output);
    return pi >= 0 && m->nodes[pi].op == TML_OP_SOFTMAX;
}

/* Runs m over the held-out samples: top-1 on the labels and the mean KL
 * divergence from the float model's distribution cx->pf; with `store`, m is
 * the float model and its distribution is stored into cx->pf instead. */
static tml_status assess(mp_ctx *cx, const tml_model *m, double *top1, double *kl, int store)
{
    const int64_t n = cx->held->n, numel = tml_tensor_numel(&m->tensors[m->input]);
    const int k = cx->k, sm = ends_in_softmax(m);
    tml_engine *e = NULL;
    tml_status st = tml_engine_new(m, MP_BATCH, NULL, &e);
    if (st) return st;
    int64_t correct = 0;
    double ksum = 0.0, q[256];
    for (int64_t s0 = 0; s0 < n && !st; s0 += MP_BATCH) {
        const int b = (int)(n - s0 < MP_BATCH ? n - s0 : MP_BATCH);
        if ((st = tml_engine_run(e, cx->x + s0 * numel, b, cx->y))) break;
        for (int i = 0; i < b; i++) {
            double *pf = cx->pf + (s0 + i) * k;
            probs(cx->y + (int64_t)i * k, k, sm, store ? pf : q);
            const double *pq = store ? pf : q;
            int arg = 0;
            for (int j = 1; j < k; j++) arg = pq[j] > pq[arg] ? j : arg;
            correct += arg == cx->held->labels[s0 + i];
            for (int j = 0; !store && j < k; j++)
                if (pf[j] > 0.0) ksum += pf[j] * (log(pf[j]) - log(q[j] > 1e-30 ? q[j] : 1e-30));
        }
    }
    tml_engine_free(e);
    if (st) return st;
    *top1 = (double)correct / (double)n;
    *kl = ksum / (double)n;
    return TML_OK;
}

/* Top-1 and KL to the float model of the assignment `bits` (n_layers widths). */
static tml_status measure(mp_ctx *cx, const int *bits, double *top1, double *loss)
{
    if (cx->o->cancel && *cx->o->cancel) return tml_error(TML_ERR_INTERRUPTED, "mixed-precision search interrupted");
    tml_model *m = tml_model_clone(cx->qm[8]);
    if (!m) return tml_error(TML_ERR_NOMEM, "out of memory");
    tml_status st = TML_OK;
    for (int l = 0; l < cx->n_layers && !st; l++) {
        if (bits[l] == 8) continue;
        const tml_node *n = &m->nodes[cx->layers[l].node], *src = &cx->qm[bits[l]]->nodes[cx->layers[l].node];
        st = copy_tensor(&m->tensors[n->in[1]], &cx->qm[bits[l]]->tensors[src->in[1]]);
        if (!st && n->n_in > 2 && n->in[2] >= 0) st = copy_tensor(&m->tensors[n->in[2]], &cx->qm[bits[l]]->tensors[src->in[2]]);
    }
    if (!st) st = assess(cx, m, top1, loss, 0);
    tml_model_free(m);
    cx->done++;
    if (!st && cx->o->progress) cx->o->progress(cx->o->progress_user, cx->done, cx->total);
    return st;
}

static tml_status add_point(tml_mp_result *r, const int *bits, int64_t bytes, double cost, int uniform)
{
    tml_mp_point *p = realloc(r->points, sizeof *p * (size_t)(r->n_points + 1));
    if (!p) return tml_error(TML_ERR_NOMEM, "out of memory");
    r->points = p;
    p = &r->points[r->n_points];
    memset(p, 0, sizeof *p);
    p->bits = malloc(sizeof(int) * (size_t)(r->n_layers ? r->n_layers : 1));
    if (!p->bits) return tml_error(TML_ERR_NOMEM, "out of memory");
    memcpy(p->bits, bits, sizeof(int) * (size_t)r->n_layers);
    p->bytes = bytes;
    p->cost = cost;
    p->uniform = uniform;
    p->top1 = p->loss = NAN;
    r->n_points++;
    return TML_OK;
}

/* The knapsack's tables: g (C+1) best cost within c units over all layers,
 * choice (L, C+1) the candidate index layer l takes at capacity c. */
typedef struct knap {
    int L, nc, C;
    int64_t unit;
    int64_t *size;  /* (L, nc) units */
    double *cost;   /* (L, nc) */
    double *g;      /* (C + 1) */
    uint8_t *choice;
} knap;

static void knap_free(knap *k)
{
    free(k->size);
    free(k->cost);
    free(k->g);
    free(k->choice);
}

static tml_status knap_solve(knap *k)
{
    const int L = k->L, nc = k->nc;
    const size_t C1 = (size_t)k->C + 1;
    double *prev = malloc(sizeof(double) * C1), *cur = malloc(sizeof(double) * C1);
    k->choice = malloc((size_t)L * C1);
    if (!prev || !cur || !k->choice) {
        free(prev);
        free(cur);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    for (size_t c = 0; c < C1; c++) prev[c] = 0.0;
    for (int l = 0; l < L; l++) {
        for (size_t c = 0; c < C1; c++) {
            double best = INFINITY;
            int bi = 0;
            for (int j = 0; j < nc; j++) {
                const int64_t sz = k->size[l * nc + j];
                if ((int64_t)c < sz || isnan(k->cost[l * nc + j])) continue;
                const double v = prev[c - (size_t)sz] + k->cost[l * nc + j];
                if (v < best) best = v, bi = j;
            }
            cur[c] = best;
            k->choice[(size_t)l * C1 + c] = (uint8_t)bi;
        }
        double *t = prev;
        prev = cur;
        cur = t;
    }
    free(cur);
    k->g = prev;
    return TML_OK;
}

/* The assignment (candidate indices) of the best solution within c units. */
static void knap_trace(const knap *k, int64_t c, int *idx)
{
    const size_t C1 = (size_t)k->C + 1;
    for (int l = k->L - 1; l >= 0; l--) {
        idx[l] = k->choice[(size_t)l * C1 + (size_t)c];
        c -= k->size[l * k->nc + idx[l]];
    }
}

tml_status tml_mixed_precision(const tml_model *folded, const tml_calib *calib, const tml_samples *held,
                               const tml_mp_opts *o, tml_mp_result *r)
{
    memset(r, 0, sizeof *r);
    mp_ctx cx = {.held = held, .o = o};
    knap k = {0};
    int cand[7], nc = 0;
    if (o->n_candidates <= 0) {
        for (int b = 2; b <= 8; b++) cand[nc++] = b;
    } else {
        for (int i = 0; i < o->n_candidates && i < 7; i++) {
            int b = o->candidates[i];
            if (b < 2 || b > 8) return tml_error(TML_ERR_INVALID, "candidate width %d bits (2..8)", b);
            int dup = 0;
            for (int j = 0; j < nc; j++) dup |= cand[j] == b;
            if (!dup) cand[nc++] = b;
        }
    }
    if (o->target_bytes <= 0 && !(o->max_drop >= 0)) return tml_error(TML_ERR_INVALID, "give a target size or a maximum drop");
    if (!held || held->n < 1) return tml_error(TML_ERR_INVALID, "mixed precision needs held-out samples");
    int *bits = NULL, *idx = NULL;
    tml_status st = TML_OK;
    int L = 0;
    for (int i = 0; i < folded->n_nodes; i++) L += tml_node_has_weights(&folded->nodes[i]);
    if (L == 0) return tml_error(TML_ERR_INVALID, "the model has no layers with weights");
    r->layers = calloc((size_t)L, sizeof(tml_mp_layer));
    bits = malloc(sizeof(int) * (size_t)L);
    idx = malloc(sizeof(int) * (size_t)L);
    if (!r->layers || !bits || !idx) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    r->n_layers = L;
    for (int i = 0, l = 0; i < folded->n_nodes; i++) {
        const tml_node *n = &folded->nodes[i];
        if (!tml_node_has_weights(n)) continue;
        tml_mp_layer *ly = &r->layers[l++];
        ly->node = i;
        ly->name = n->name;
        ly->params = tml_tensor_numel(&folded->tensors[n->in[1]]);
        for (int b = 0; b < 9; b++) ly->dloss[b] = ly->top1[b] = NAN;
    }
    cx.n_layers = L;
    cx.layers = r->layers;
    cx.total = 2 + (int64_t)L * (nc - 1) + o->front_points + nc + 20;

    /* 1. one model per width */
    int have8 = 0;
    for (int j = 0; j < nc; j++) have8 |= cand[j] == 8;
    for (int j = 0; j <= nc; j++) {
        int b = j < nc ? cand[j] : 8;
        if (j == nc && have8) break;
        tml_model *q = tml_model_clone(folded);
        if (!q) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        tml_quant_opts qo = o->quant;
        qo.weight_bits = b;
        qo.layer_bits = NULL;
        qo.n_layer_bits = 0;
        qo.weight_only = 0;
        qo.only_layers = NULL;
        cx.qm[b] = q;
        if ((st = tml_quantize(q, calib, &qo))) {
            tml_error_context(st, "%d-bit weights", b);
            goto out;
        }
    }

    /* 2. reference points and the sensitivity table */
    {
        const int64_t numel = tml_tensor_numel(&folded->tensors[folded->input]);
        cx.k = (int)tml_tensor_numel(&folded->tensors[folded->output]);
        if (cx.k < 1 || cx.k > 256) {
            st = tml_error(TML_ERR_UNSUPPORTED, "mixed precision needs a classifier with 1..256 outputs (got %d)", cx.k);
            goto out;
        }
        cx.x = malloc(sizeof(float) * (size_t)(held->n * numel));
        cx.pf = malloc(sizeof(double) * (size_t)(held->n * cx.k));
        cx.y = malloc(sizeof(float) * (size_t)MP_BATCH * (size_t)cx.k);
        if (!cx.x || !cx.pf || !cx.y) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (int64_t s0 = 0; s0 < held->n; s0 += MP_BATCH) {
            int64_t ids[MP_BATCH];
            const int b = (int)(held->n - s0 < MP_BATCH ? held->n - s0 : MP_BATCH);
            for (int i = 0; i < b; i++) ids[i] = s0 + i;
            tml_samples_gather(held, ids, b, cx.x + s0 * numel, NULL);
        }
        tml_preproc_apply(&folded->meta.pre, held->n * numel, held->c, cx.x);
        double kl0;
        if ((st = assess(&cx, folded, &r->float_top1, &kl0, 1))) goto out;
        r->float_loss = 0.0;
    }
    for (int l = 0; l < L; l++) bits[l] = 8;
    if ((st = measure(&cx, bits, &r->int8_top1, &r->int8_loss))) goto out;
    r->samples = held->n;
    for (int l = 0; l < L; l++) {
        r->layers[l].dloss[8] = 0.0;
        r->layers[l].top1[8] = r->int8_top1;
        for (int j = 0; j < nc; j++) {
            if (cand[j] == 8) continue;
            bits[l] = cand[j];
            double t1, lo;
            if ((st = measure(&cx, bits, &t1, &lo))) goto out;
            r->layers[l].top1[cand[j]] = t1;
            r->layers[l].dloss[cand[j]] = lo - r->int8_loss;
        }
        bits[l] = 8;
    }

    /* 3. knapsack over the candidates that were measured (8 included) */
    {
        int kc[8], nk = 0;
        for (int j = 0; j < nc; j++) kc[nk++] = cand[j];
        if (!have8) kc[nk++] = 8;
        int64_t total8 = 0, smallest = 0;
        for (int l = 0; l < L; l++) total8 += wbytes(r->layers[l].params, 8);
        k.L = L;
        k.nc = nk;
        k.unit = (total8 + MP_MAX_UNITS - 1) / MP_MAX_UNITS;
        if (k.unit < 1) k.unit = 1;
        k.size = malloc(sizeof(int64_t) * (size_t)(L * nk));
        k.cost = malloc(sizeof(double) * (size_t)(L * nk));
        if (!k.size || !k.cost) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        int bmin = 8;
        for (int j = 0; j < nc; j++) bmin = cand[j] < bmin ? cand[j] : bmin;
        for (int l = 0; l < L; l++) {
            smallest += wbytes(r->layers[l].params, bmin);
            for (int j = 0; j < nk; j++) {
                k.size[l * nk + j] = wbytes(r->layers[l].params, kc[j]) / k.unit;
                /* 8 bits takes part only when it is a candidate */
                k.cost[l * nk + j] = (kc[j] == 8 && !have8) ? NAN : r->layers[l].dloss[kc[j]];
            }
        }
        int64_t cmax = 0;
        for (int l = 0; l < L; l++) {
            int64_t mx = 0;
            for (int j = 0; j < nk; j++)
                if (!isnan(k.cost[l * nk + j]) && k.size[l * nk + j] > mx) mx = k.size[l * nk + j];
            cmax += mx;
        }
        k.C = (int)cmax;
        if ((st = knap_solve(&k))) goto out;
        if (o->target_bytes > 0 && o->target_bytes < smallest) {
            st = tml_error(TML_ERR_INVALID, "the target of %lld weight bytes is below the smallest model (every layer at %d bits: %lld bytes)",
                           (long long)o->target_bytes, bmin, (long long)smallest);
            goto out;
        }
        /* the front: capacities where the best cost drops */
        int64_t *fc = malloc(sizeof(int64_t) * (size_t)(k.C + 1));
        int nf = 0;
        if (!fc) {
            st = tml_error(TML_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (int64_t c = 0; c <= k.C; c++)
            if (isfinite(k.g[c]) && (nf == 0 || k.g[c] < k.g[fc[nf - 1]])) fc[nf++] = c;
        /* 4. measure: spread points, the target's, the max-drop search */
        int want = o->front_points > 1 ? o->front_points : 2;
        int last = -1;
        for (int i = 0; i < want && nf > 0; i++) {
            int fi = (int)((int64_t)i * (nf - 1) / (want - 1));
            if (fi == last) continue;
            last = fi;
            knap_trace(&k, fc[fi], idx);
            int64_t by = 0;
            for (int l = 0; l < L; l++) {
                bits[l] = kc[idx[l]];
                by += wbytes(r->layers[l].params, bits[l]);
            }
            if ((st = add_point(r, bits, by, k.g[fc[fi]], 0))) break;
        }
        int target_point = -1;
        if (!st && o->target_bytes > 0) {
            /* the best solution whose exact bytes fit (sizes in units were
             * rounded down: step the capacity down until one does) */
            int64_t c = o->target_bytes / k.unit, by = 0;
            if (c > k.C) c = k.C;
            for (;; c--) {
                knap_trace(&k, c, idx);
                by = 0;
                for (int l = 0; l < L; l++) {
                    bits[l] = kc[idx[l]];
                    by += wbytes(r->layers[l].params, bits[l]);
                }
                if (by <= o->target_bytes || c == 0) break;
            }
            for (int p = 0; p < r->n_points && target_point < 0; p++)
                if (!memcmp(r->points[p].bits, bits, sizeof(int) * (size_t)L)) target_point = p;
            if (target_point < 0 && !(st = add_point(r, bits, by, k.g[c], 0))) target_point = r->n_points - 1;
        }
        for (int p = 0; p < r->n_points && !st; p++) st = measure(&cx, r->points[p].bits, &r->points[p].top1, &r->points[p].loss);
        if (!st && o->target_bytes <= 0) {
            /* bisection over the whole front for the smallest within the drop */
            int lo = 0, hi = nf - 1, found = -1;
            while (!st && lo <= hi) {
                int mid = (lo + hi) / 2;
                knap_trace(&k, fc[mid], idx);
                int64_t by = 0;
                for (int l = 0; l < L; l++) {
                    bits[l] = kc[idx[l]];
                    by += wbytes(r->layers[l].params, bits[l]);
                }
                int pi = -1;
                for (int p = 0; p < r->n_points && pi < 0; p++)
                    if (!memcmp(r->points[p].bits, bits, sizeof(int) * (size_t)L)) pi = p;
                if (pi < 0) {
                    if ((st = add_point(r, bits, by, k.g[fc[mid]], 0))) break;
                    pi = r->n_points - 1;
                    st = measure(&cx, bits, &r->points[pi].top1, &r->points[pi].loss);
                }
                if (st) break;
                if (r->float_top1 - r->points[pi].top1 <= o->max_drop) {
                    found = pi;
                    hi = mid - 1;
                } else {
                    lo = mid + 1;
                }
            }
            if (!st && found < 0) {
                st = tml_error(TML_ERR_INVALID, "no assignment of widths stays within a drop of %.2f points on the held-out samples "
                               "(all at 8 bits: %.2f points)", 100.0 * o->max_drop, 100.0 * (r->float_top1 - r->int8_top1));
            }
            target_point = found;
        }
        free(fc);
        if (st) goto out;
        /* sort the front by bytes (the chosen point follows its entry) */
        for (int i = 1; i < r->n_points; i++)
            for (int j = i; j > 0 && r->points[j - 1].bytes > r->points[j].bytes; j--) {
                tml_mp_point t = r->points[j];
                r->points[j] = r->points[j - 1];
                r->points[j - 1] = t;
                if (target_point == j) target_point = j - 1;
                else if (target_point == j - 1) target_point = j;
            }
        r->chosen = target_point;
        /* uniform widths, for comparison */
        for (int j = 0; j < nc && !st; j++) {
            int64_t by = 0;
            double cost = 0;
            for (int l = 0; l < L; l++) {
                bits[l] = cand[j];
                by += wbytes(r->layers[l].params, cand[j]);
                cost += r->layers[l].dloss[cand[j]];
            }
            if (!(st = add_point(r, bits, by, cost, cand[j])))
                st = measure(&cx, bits, &r->points[r->n_points - 1].top1, &r->points[r->n_points - 1].loss);
        }
    }
out:
    free(cx.x);
    free(cx.pf);
    free(cx.y);
    knap_free(&k);
    for (int b = 0; b < 9; b++) tml_model_free(cx.qm[b]);
    free(bits);
    free(idx);
    if (st) tml_mp_result_free(r);
    return st;
}
