/*
 * tml_cluster.h - weight sharing by k-means (lib/passes/cluster.c), as in
 * Deep Compression (Han et al., 2016): each layer's weights are replaced by
 * the nearest of k shared centroids, stored as a codebook + b-bit indices.
 *
 * Pruned weights stay pruned: zeros are not clustered; centroid 0 of every
 * codebook is the fixed value 0.0 they keep, and the other k-1 centroids are
 * fitted to the nonzero weights. int8 weights (clustering after quantization)
 * are clustered as their integer codes, so centroids are integers and the
 * layer keeps its per-channel scales.
 */
#ifndef TML_CLUSTER_H
#define TML_CLUSTER_H

#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tml_cluster_init {
    TML_INIT_LINEAR = 0,  /* evenly spaced between min and max (Deep Compression's best) */
    TML_INIT_DENSITY,     /* evenly spaced quantiles of the weights' distribution */
    TML_INIT_RANDOM,      /* k distinct weights drawn with the seed (Forgy) */
    TML_INIT_KMEANSPP     /* k-means++: each next centroid drawn by squared distance */
} tml_cluster_init;
const char *tml_cluster_init_name(tml_cluster_init i);
tml_status tml_cluster_init_parse(const char *s, tml_cluster_init *i);

typedef struct tml_cluster_opts {
    int bits;            /* index width 1..8; k = 2^bits unless `clusters` is set */
    int clusters;        /* k (2..256); bits = ceil(log2 k) */
    int per_channel;     /* a codebook per output channel (conv/dense dim 0) */
    tml_cluster_init init;
    uint64_t seed;
    int max_iter;        /* Lloyd iterations (default 50; stops earlier when stable) */
    const char *const *only; /* NULL-terminated layer names, or NULL for all */
    const char *const *skip; /* NULL-terminated layer names to leave alone */
} tml_cluster_opts;
void tml_cluster_opts_default(tml_cluster_opts *o);

typedef struct tml_cluster_layer {
    char name[128];
    int k, bits, books;
    int iters;           /* Lloyd iterations of the slowest book */
    int64_t weights;
    double rmse;         /* sqrt(mean (w - centroid)^2) over the clustered weights */
    double seconds;
} tml_cluster_layer;

typedef struct tml_cluster_report {
    int n_layers;
    tml_cluster_layer *layers;
    double seconds;
} tml_cluster_report;
void tml_cluster_report_free(tml_cluster_report *r);

/* Clusters the weights of conv / depthwise / dense layers in place. A layer
 * that is already clustered is re-clustered from its current values. */
tml_status tml_cluster(tml_model *m, const tml_cluster_opts *o, tml_cluster_report *r);

/* 1-D k-means of x[0..n) into k centroids (sorted ascending). Lloyd's algorithm
 * on sorted data: a cluster is a contiguous run of the sorted values, so an
 * iteration costs O(k log n) with prefix sums. assign (n, may be NULL)
 * receives each value's centroid index; integer != 0 rounds centroids to
 * integers. Returns iterations used in *iters. k <= n distinct values is not
 * required: empty clusters are refilled from the widest cluster. */
tml_status tml_kmeans_1d(const float *x, int64_t n, int k, tml_cluster_init init, uint64_t seed, int max_iter,
                         int integer, float *centroids, uint8_t *assign, int *iters);

#ifdef __cplusplus
}
#endif
#endif
