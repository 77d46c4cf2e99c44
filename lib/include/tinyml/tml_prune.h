/*
 * tml_prune.h - magnitude pruning (lib/passes/prune.c) and sensitivity
 * analysis (lib/passes/sensitivity.c).
 *
 * Prunable layers: conv2d, depthwise_conv2d and dense weights (biases and
 * batch-norm parameters are never pruned). A pruned weight is exactly zero and
 * its tensor is marked `pruned`: the zeros stay zero through fine-tuning, are
 * stored sparse in the file, and pruning again never revives them.
 */
#ifndef TML_PRUNE_H
#define TML_PRUNE_H

#include <stdint.h>

#include "tml_core.h"
#include "tml_dataset.h"
#include "tml_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tml_norm { TML_NORM_L1 = 1, TML_NORM_L2 = 2 } tml_norm;

typedef struct tml_layer_target {
    const char *name; /* node name */
    double sparsity;  /* in [0, 1) */
} tml_layer_target;

typedef struct tml_prune_spec {
    double sparsity;                 /* default target of every prunable layer, [0, 1) */
    int n_targets;                   /* per-layer overrides */
    const tml_layer_target *targets;
    int global;                      /* one magnitude threshold across the layers */
    const char *const *skip;         /* NULL-terminated names of protected layers, or NULL */
    int structured;                  /* remove whole filters / neurons instead of weights */
    tml_norm norm;                   /* structured: rank filters by L1 (default) or L2 norm */
    double min_density;              /* global: every layer keeps at least this fraction of its
                                        weights (and always at least one), [0, 1) */
} tml_prune_spec;

/* What the CLI uses for min_density: global pruning never takes a layer
 * below 2% of its weights (a 4-64-3 MLP at 80% global lost all of fc2). */
#define TML_PRUNE_MIN_DENSITY_DEFAULT 0.02

typedef struct tml_prune_layer {
    char name[128];
    int64_t params;        /* weights of the layer (after pruning for structured) */
    int64_t zeros_before, zeros_after;
    int removed;           /* structured: filters / neurons removed */
    int skipped;           /* protected or not prunable in this mode (reason in note) */
    int floored;           /* global: stopped at the min_density floor */
    char note[96];
} tml_prune_layer;

typedef struct tml_prune_report {
    int n_layers;
    tml_prune_layer *layers; /* prunable layers in node order */
    double threshold;        /* global mode: the magnitude below which weights went */
} tml_prune_report;
void tml_prune_report_free(tml_prune_report *r);

/* Unstructured magnitude pruning. Per layer, the k = round(s * n) weights of
 * smallest magnitude become zero (ties broken by element order, so the count is
 * exact); weights that are already zero count toward k and are never revived,
 * so a layer already sparser than its target keeps its zeros. Global mode ranks
 * all weights of the prunable, non-skipped layers together (int8 weights by
 * their real value q * scale) and prunes round(s * N) of them, except that no
 * layer goes below min_density of its weights (nor loses its last weight):
 * the next smallest weights elsewhere are pruned instead, and the layer is
 * marked `floored`; per-layer overrides are then not allowed. Clustered
 * layers cannot be pruned (prune before clustering). */
tml_status tml_prune_magnitude(tml_model *m, const tml_prune_spec *spec, tml_prune_report *r);

/* Structured pruning: removes the round(s * O) output channels (conv filters,
 * dense neurons) of smallest norm and rewrites every layer that reads them
 * (conv / depthwise / dense input channels or features, batch norm, pools,
 * reshape) so the model really gets smaller and faster. Layers whose output
 * reaches a residual add or the model output are skipped (noted in the report).
 * Float models only. */
tml_status tml_prune_structured(tml_model *m, const tml_prune_spec *spec, tml_prune_report *r);

/* Names of the prunable layers (NULL-terminated array the caller frees, the
 * strings point into the model). */
const char **tml_prunable_layers(const tml_model *m, int *count);

/* Sparsity of a prune schedule at round r of n (r = 1..n), from s0 to s1:
 * the cubic schedule of Zhu & Gupta (2017), s1 + (s0 - s1) (1 - r/n)^3. */
double tml_agp_sparsity(double s0, double s1, int r, int n);

/* ---- sensitivity ------------------------------------------------------------------------- */

typedef enum tml_sens_mode {
    TML_SENS_ELEMENT = 0, /* unstructured magnitude pruning of one layer */
    TML_SENS_FILTERS = 1, /* structured pruning of one layer's filters */
    TML_SENS_QUANT = 2    /* one layer's weights on the int grid of `bits` (fake-quantized) */
} tml_sens_mode;

typedef struct tml_sens_opts {
    tml_sens_mode mode;
    double start, stop, step; /* sparsities scanned (element / filters) */
    int bits_lo, bits_hi;     /* quant mode: weight bits scanned (e.g. 2..8) */
    int64_t limit;            /* samples evaluated (<= 0: all loaded) */
    int batch;
    tml_progress_fn progress; /* counts evaluations */
    void *progress_user;
    volatile int *cancel;
} tml_sens_opts;

typedef struct tml_sens_result {
    int n_layers, n_points;
    char **layers;      /* (n_layers) */
    double *x;          /* (n_points) sparsity, or bits in quant mode */
    double *acc;        /* (n_layers, n_points) top-1 */
    double *actual;     /* (n_layers, n_points) achieved sparsity (filters: fraction removed) */
    double base_acc;    /* unpruned model */
    int64_t samples;
    double seconds;
} tml_sens_result;
void tml_sens_result_free(tml_sens_result *r);

/* Evaluates the model with each prunable layer alone pruned (or quantized) to
 * each scanned point, on in-memory samples; evaluations run in parallel
 * (OpenMP over layer x point). */
tml_status tml_sensitivity(const tml_model *m, const tml_samples *s, const tml_sens_opts *o, tml_sens_result *r);

/* Per-layer sparsities from a sensitivity result: for each layer the largest
 * scanned sparsity whose drop (base - acc) stays <= max_drop, and so do all the
 * smaller ones. Fills targets[0..n_layers) (names point into r). */
tml_status tml_sens_choose(const tml_sens_result *r, double max_drop, tml_layer_target *targets);

/* JSON text of a sensitivity result (the --json output, also the input of
 * `tinyml prune --from-sensitivity`); caller frees. And its parser. */
char *tml_sens_to_json(const tml_sens_result *r, const char *model_name, const char *data_name);
tml_status tml_sens_from_json(const char *json, tml_sens_result *r);

#ifdef __cplusplus
}
#endif
#endif
