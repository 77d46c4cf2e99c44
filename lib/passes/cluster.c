/*
 * cluster.c - k-means weight sharing.
 *
 * 1-D k-means is cheap when the data is sorted: with sorted centroids, the
 * points nearest to centroid j form one contiguous run of the sorted values,
 * bounded by the midpoints to its neighbours. One Lloyd iteration is then k
 * binary searches plus k means from prefix sums, O(k log n), and the whole fit
 * is dominated by the initial sort.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tinyml/tml_cluster.h"

const char *tml_cluster_init_name(tml_cluster_init i)
{
    switch (i) {
    case TML_INIT_LINEAR: return "linear";
    case TML_INIT_DENSITY: return "density";
    case TML_INIT_RANDOM: return "random";
    case TML_INIT_KMEANSPP: return "kmeans++";
    }
    return "?";
}

tml_status tml_cluster_init_parse(const char *s, tml_cluster_init *i)
{
    if (strcmp(s, "linear") == 0) *i = TML_INIT_LINEAR;
    else if (strcmp(s, "density") == 0) *i = TML_INIT_DENSITY;
    else if (strcmp(s, "random") == 0) *i = TML_INIT_RANDOM;
    else if (strcmp(s, "kmeans++") == 0 || strcmp(s, "kmeanspp") == 0) *i = TML_INIT_KMEANSPP;
    else return tml_error(TML_ERR_INVALID, "unknown init '%s' (linear, density, random, kmeans++)", s);
    return TML_OK;
}

void tml_cluster_opts_default(tml_cluster_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bits = 5;
    o->init = TML_INIT_LINEAR;
    o->seed = 1;
    o->max_iter = 50;
}

void tml_cluster_report_free(tml_cluster_report *r)
{
    if (!r) return;
    free(r->layers);
    r->layers = NULL;
    r->n_layers = 0;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* First index i in s[0..n) with s[i] >= v. */
static int64_t lower_bound(const float *s, int64_t n, double v)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((double)s[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Index of the centroid for value v given sorted centroids: the number of
 * midpoints <= v (the same rule the runs use: a value on a midpoint goes up). */
static int nearest(const double *c, int k, double v)
{
    int lo = 0, hi = k - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v >= 0.5 * (c[mid] + c[mid + 1])) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void init_centroids(const float *s, int64_t n, int k, tml_cluster_init init, uint64_t seed, double *c)
{
    double lo = s[0], hi = s[n - 1];
    tml_rng r;
    tml_rng_seed(&r, seed);
    switch (init) {
    case TML_INIT_LINEAR:
        for (int j = 0; j < k; j++) c[j] = k > 1 ? lo + (hi - lo) * j / (k - 1) : 0.5 * (lo + hi);
        break;
    case TML_INIT_DENSITY:
        for (int j = 0; j < k; j++) {
            int64_t i = (int64_t)(((double)j + 0.5) / k * (double)n);
            c[j] = s[i < n ? i : n - 1];
        }
        break;
    case TML_INIT_RANDOM:
        for (int j = 0; j < k; j++) c[j] = s[(int64_t)(tml_rng_next(&r) % (uint64_t)n)];
        break;
    case TML_INIT_KMEANSPP: {
        /* D^2 sampling over the sorted values: distance to the nearest chosen
         * centroid, updated incrementally. */
        double *d2 = malloc(sizeof(double) * (size_t)n);
        if (!d2) { /* fall back to linear on OOM: still a valid start */
            for (int j = 0; j < k; j++) c[j] = k > 1 ? lo + (hi - lo) * j / (k - 1) : lo;
            break;
        }
        c[0] = s[(int64_t)(tml_rng_next(&r) % (uint64_t)n)];
        for (int64_t i = 0; i < n; i++) d2[i] = (s[i] - c[0]) * (s[i] - c[0]);
        for (int j = 1; j < k; j++) {
            double tot = 0;
            for (int64_t i = 0; i < n; i++) tot += d2[i];
            int64_t pick = 0;
            if (tot > 0) {
                double t = tml_rng_uniform(&r) * tot, acc = 0;
                for (pick = 0; pick < n - 1; pick++) {
                    acc += d2[pick];
                    if (acc > t) break;
                }
            }
            c[j] = s[pick];
            for (int64_t i = 0; i < n; i++) {
                double d = (s[i] - c[j]) * (s[i] - c[j]);
                if (d < d2[i]) d2[i] = d;
            }
        }
        free(d2);
        break;
    }
    }
    qsort(c, (size_t)k, sizeof(double), cmp_double);
}

tml_status tml_kmeans_1d(const float *x, int64_t n, int k, tml_cluster_init init, uint64_t seed, int max_iter,
                         int integer, float *centroids, uint8_t *assign, int *iters)
{
    if (k < 1 || k > 256) return tml_error(TML_ERR_INVALID, "k must be in 1..256 (got %d)", k);
    if (n < 1) return tml_error(TML_ERR_INVALID, "k-means needs at least one value");
    if (max_iter < 1) max_iter = 50;
    float *s = malloc(sizeof(float) * (size_t)n);
    double *ps = malloc(sizeof(double) * (size_t)(n + 1));
    double *c = malloc(sizeof(double) * (size_t)k);
    int64_t *start = malloc(sizeof(int64_t) * (size_t)(k + 1)), *prev = malloc(sizeof(int64_t) * (size_t)(k + 1));
    if (!s || !ps || !c || !start || !prev) {
        free(s);
        free(ps);
        free(c);
        free(start);
        free(prev);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    memcpy(s, x, sizeof(float) * (size_t)n);
    qsort(s, (size_t)n, sizeof(float), cmp_float);
    ps[0] = 0;
    for (int64_t i = 0; i < n; i++) ps[i + 1] = ps[i] + s[i];
    init_centroids(s, n, k, init, seed, c);
    int it = 0;
    for (int64_t j = 0; j <= k; j++) prev[j] = -1;
    for (it = 1; it <= max_iter; it++) {
        /* runs: cluster j holds s[start[j] .. start[j+1]) */
        start[0] = 0;
        start[k] = n;
        for (int j = 1; j < k; j++) start[j] = lower_bound(s, n, 0.5 * (c[j - 1] + c[j]));
        for (int j = 0; j < k; j++) {
            int64_t a = start[j], b = start[j + 1];
            if (b > a) c[j] = (ps[b] - ps[a]) / (double)(b - a);
        }
        /* an empty cluster takes the value farthest from its centroid */
        for (int j = 0; j < k; j++) {
            if (start[j + 1] > start[j]) continue;
            double worst = -1;
            int64_t wi = 0;
            for (int jj = 0; jj < k; jj++) {
                int64_t a = start[jj], b = start[jj + 1];
                if (b - a < 2) continue;
                double d0 = fabs(s[a] - c[jj]), d1 = fabs(s[b - 1] - c[jj]);
                if (d0 > worst) worst = d0, wi = a;
                if (d1 > worst) worst = d1, wi = b - 1;
            }
            if (worst > 0) c[j] = s[wi];
        }
        if (integer)
            for (int j = 0; j < k; j++) c[j] = nearbyint(c[j]);
        qsort(c, (size_t)k, sizeof(double), cmp_double);
        int same = 1;
        for (int j = 0; j <= k; j++) same &= start[j] == prev[j];
        memcpy(prev, start, sizeof(int64_t) * (size_t)(k + 1));
        if (same) break;
    }
    if (it > max_iter) it = max_iter;
    for (int j = 0; j < k; j++) centroids[j] = (float)c[j];
    if (assign)
        for (int64_t i = 0; i < n; i++) assign[i] = (uint8_t)nearest(c, k, x[i]);
    if (iters) *iters = it;
    free(s);
    free(ps);
    free(c);
    free(start);
    free(prev);
    return TML_OK;
}

static int listed(const char *const *list, const char *name)
{
    if (!list) return 0;
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return 1;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Clusters one weight tensor. */
static tml_status cluster_tensor(tml_tensor *w, int per_channel, int k, int bits, const tml_cluster_opts *o,
                                 tml_cluster_layer *rep)
{
    int64_t n = tml_tensor_numel(w);
    int books = per_channel ? w->dims[0] : 1;
    int64_t span = n / books;
    int integer = w->dtype == TML_DTYPE_INT8;
    int pruned = w->pruned;
    int kfit = pruned ? k - 1 : k; /* centroid 0 is the pruned zero */
    if (kfit < 1) return tml_error(TML_ERR_INVALID, "tensor '%s' is pruned: clustering needs at least 2 clusters", w->name);
    float *vals = malloc(sizeof(float) * (size_t)(span ? span : 1));
    int64_t *pos = malloc(sizeof(int64_t) * (size_t)(span ? span : 1));
    uint8_t *assign = malloc((size_t)(span ? span : 1));
    tml_codebook *cb = calloc(1, sizeof *cb);
    if (cb) {
        cb->centroids = calloc((size_t)books * (size_t)k, sizeof(float));
        cb->index = calloc((size_t)(n ? n : 1), 1);
    }
    if (!vals || !pos || !assign || !cb || !cb->centroids || !cb->index) {
        free(vals);
        free(pos);
        free(assign);
        tml_codebook_free(cb);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    cb->k = k;
    cb->bits = bits;
    cb->n_books = books;
    double sse = 0;
    int64_t clustered = 0;
    int max_it = 0;
    tml_status st = TML_OK;
    for (int b = 0; b < books && !st; b++) {
        int64_t m = 0;
        for (int64_t i = 0; i < span; i++) {
            int64_t gi = (int64_t)b * span + i;
            float v = integer ? (float)((int8_t *)w->data)[gi] : ((float *)w->data)[gi];
            if (pruned && v == 0.0f) continue;
            vals[m] = v;
            pos[m++] = gi;
        }
        float *cent = cb->centroids + (size_t)b * (size_t)k;
        if (m == 0) continue; /* an all-pruned channel: everything stays on centroid 0 */
        int it = 0;
        st = tml_kmeans_1d(vals, m, kfit, o->init, o->seed + (uint64_t)b, o->max_iter, integer, cent + (pruned ? 1 : 0), assign, &it);
        if (st) break;
        if (it > max_it) max_it = it;
        for (int64_t i = 0; i < m; i++) {
            int idx = assign[i] + (pruned ? 1 : 0);
            cb->index[pos[i]] = (uint8_t)idx;
            double d = (double)vals[i] - cent[idx];
            sse += d * d;
        }
        clustered += m;
    }
    free(vals);
    free(pos);
    free(assign);
    if (st) {
        tml_codebook_free(cb);
        return st;
    }
    /* the weights become their centroids */
    for (int64_t i = 0; i < n; i++) {
        float v = cb->centroids[(size_t)(i / span) * (size_t)k + cb->index[i]];
        if (integer) ((int8_t *)w->data)[i] = (int8_t)v;
        else ((float *)w->data)[i] = v;
    }
    tml_codebook_free(w->cb);
    w->cb = cb;
    rep->k = k;
    rep->bits = bits;
    rep->books = books;
    rep->iters = max_it;
    rep->weights = n;
    rep->rmse = clustered ? sqrt(sse / (double)clustered) : 0.0;
    return TML_OK;
}

tml_status tml_cluster(tml_model *m, const tml_cluster_opts *opts, tml_cluster_report *r)
{
    tml_cluster_opts o;
    if (opts) o = *opts;
    else tml_cluster_opts_default(&o);
    tml_cluster_report local;
    if (!r) r = &local;
    memset(r, 0, sizeof *r);
    int k = o.clusters, bits = o.bits;
    if (k) {
        if (k < 2 || k > 256) return tml_error(TML_ERR_INVALID, "clusters must be in 2..256 (got %d)", k);
        for (bits = 1; (1 << bits) < k; bits++) {}
    } else {
        if (bits < 1 || bits > 8) return tml_error(TML_ERR_INVALID, "bits must be in 1..8 (got %d)", bits);
        k = 1 << bits;
    }
    for (const char *const *l = o.only; l && *l; l++) {
        int ni = tml_model_find_node(m, *l);
        if (ni < 0 || !tml_node_has_weights(&m->nodes[ni])) return tml_error(TML_ERR_INVALID, "no layer with weights named '%s'", *l);
    }
    for (const char *const *l = o.skip; l && *l; l++)
        if (tml_model_find_node(m, *l) < 0) return tml_error(TML_ERR_INVALID, "--skip: no layer named '%s'", *l);
    r->layers = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(tml_cluster_layer));
    if (!r->layers) return tml_error(TML_ERR_NOMEM, "out of memory");
    double t0 = now_s();
    tml_status st = TML_OK;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (!tml_node_has_weights(n) || listed(o.skip, n->name) || (o.only && !listed(o.only, n->name))) continue;
        tml_tensor *w = &m->tensors[n->in[1]];
        if (w->dtype != TML_DTYPE_F32 && w->dtype != TML_DTYPE_INT8) continue;
        if (tml_model_consumers(m, n->in[1]) != 1) {
            st = tml_error(TML_ERR_UNSUPPORTED, "weights of '%s' are shared by several layers", n->name);
            break;
        }
        tml_cluster_layer *rep = &r->layers[r->n_layers++];
        snprintf(rep->name, sizeof rep->name, "%s", n->name);
        /* codebooks live on dim 0: a depthwise layer (channels on dim 3) gets one book */
        int per_channel = o.per_channel && n->op != TML_OP_DEPTHWISE_CONV2D;
        double t1 = now_s();
        st = cluster_tensor(w, per_channel, k, bits, &o, rep);
        rep->seconds = now_s() - t1;
        if (st) {
            tml_error_context(st, "layer '%s'", n->name);
            break;
        }
    }
    r->seconds = now_s() - t0;
    if (r == &local || st) tml_cluster_report_free(r);
    return st;
}
