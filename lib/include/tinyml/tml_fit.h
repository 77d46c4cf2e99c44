/*
 * tml_fit.h - the budget search behind `tinyml fit` (lib/passes/fit.c;
 * docs/fit.md is the user's guide): given a float model, training data and a
 * device budget (flash, RAM, latency), find the most accurate compressed
 * INT8 model that fits.
 *
 * 1. Baselines: the float model and its plain INT8 quantization, on the
 *    held-out validation part of the training data (and the test samples).
 * 2. Greedy descent (the prior): from the uncompressed plan, each step tries
 *    one move per layer and kind (remove 1/8 of the filters; zero 40% of the
 *    remaining weights, once, twice or three times over; weight sharing at 5
 *    bits, then one bit fewer down to 3), measures each moved
 *    plan quickly (applied without fine-tuning, quantized, exported: exact
 *    flash and RAM from the exporter; validation loss of the INT8 model) and
 *    takes the move that removes the most budget miss per unit of loss it
 *    adds. Once the plan's quick top-1 is 3 points below the original's, the
 *    moves are measured from a base instead: the current plan's filter
 *    removal and sparsity with a short distilled fine-tune (one AGP epoch on
 *    4000 samples, float), made again when the moves since have cost another
 *    3 points. It stops when everything fits; a last move that would leave more
 *    than 3% of the flash unused is measured again from the plan before it
 *    with finer moves added (1/16 of the filters, 0.775 of the weights kept,
 *    packed widths 8 -> 6 -> 4 -> 3 -> 2). Several variants of the move set
 *    (all knobs; no weight sharing; no filter removal unless RAM needs it),
 *    and descents that start with the biggest layers' filters partly removed
 *    (the untrained measure alone never takes that path; not from layers
 *    whose filters the graph ties, which get no filter moves either), give
 *    several fitting plans; points of the way give the Pareto front. Packed
 *    int4 / int2 layers are rounded to nearest there without rounding an
 *    unpruned weight to zero, so their flash is an upper bound of the
 *    fine-tuned one's.
 * 3. Screening: each fitting plan gets a short distilled fine-tune (one AGP
 *    epoch on `screen_samples` training samples) and its top-1 on the first
 *    half of the validation part ranks the plans; the best `finalists` go on.
 * 4. Fine-tuning: the finalists (and front points) are applied for real
 *    (filter removal, AGP sparsity with distillation from the original,
 *    centroid fine-tuning, INT8 or QAT keeping its last epoch),
 *    in parallel (OpenMP, `jobs` at a time), measured again (exact flash and
 *    RAM, estimated instructions; validation and test top-1).
 * 5. The candidate that fits every budget with the best top-1 on the second
 *    half of the validation part (which no earlier choice saw) is the answer; the caller verifies it on the emulated core (tml_device_run).
 *
 * Deterministic for a given seed (the thread count changes nothing). The
 * library never prints and never opens a file: progress, and the state that
 * makes a search resumable, go through the callbacks.
 */
#ifndef TML_FIT_H
#define TML_FIT_H

#include <stdint.h>

#include "tml_core.h"
#include "tml_dataset.h"
#include "tml_export.h"
#include "tml_recipe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tml_fit_cand tml_fit_cand;
struct tml_device_opts;

/* Progress: a phase name, done / total of that phase, and a one-line message. */
typedef void (*tml_fit_progress_fn)(void *user, const char *phase, int done, int total, const char *msg);
/* Resumability: before fine-tuning candidate c, lookup may hand back the
 * INT8 model of an earlier run of the same search (*out, owned by the
 * library afterwards; NULL: not stored); after fine-tuning, store gets it. */
typedef tml_status (*tml_fit_lookup_fn)(void *user, const tml_fit_cand *c, tml_model **out);
typedef tml_status (*tml_fit_store_fn)(void *user, const tml_fit_cand *c);
/* The search (descents, screening, ranking) is kept too: search_lookup may hand
 * back the text an earlier run's search_store got (*text malloc'ed, then owned
 * by the library; NULL: none), and the run goes straight to the fine-tuning;
 * search_store gets the text once the search is done. The caller keys them by
 * the model, the data and every search option (not the fine-tuning ones); the
 * library checks that the text is a search of this format for this model's
 * layers, and searches again if not. */
/* The saved search's format: bumped whenever the search itself changes (moves,
 * measures, ranking), so that a state saved by another search is not reused;
 * callers put it in their key (tinyml fit's file name) and the library checks it. */
#define TML_FIT_SEARCH_FORMAT 3
typedef tml_status (*tml_fit_search_lookup_fn)(void *user, char **text);
typedef tml_status (*tml_fit_search_store_fn)(void *user, const char *text);

typedef struct tml_fit_opts {
    int64_t flash;          /* bytes of flash (const data + code), > 0 */
    int64_t ram;            /* bytes of RAM (the static arena), > 0 */
    double latency_ms;      /* <= 0: no latency budget */
    double mhz;             /* clock for the latency budget (default 80) */
    double max_drop;        /* < 0: none; else a candidate must lose at most this fraction of
                               top-1 against the INT8 baseline on validation */
    uint64_t seed;
    int jobs;               /* candidates fine-tuned at once (default 2) */
    int epochs;             /* fine-tuning epochs of filter removal + AGP (default 4) */
    int cluster_epochs;     /* centroid fine-tuning epochs (default 1) */
    int qat_epochs;         /* > 0: each candidate ends with that many epochs of quantization-aware
                               training instead of post-training INT8 (tml_plan.qat_epochs) */
    int max_candidates;     /* fully fine-tuned candidates: finalists + Pareto-front points (default 6) */
    int finalists;          /* of the fitting plans, how many (the best screened) get the full
                               fine-tuning (default 2) */
    int64_t screen_samples; /* training samples of each fitting plan's short distilled fine-tune
                               (one AGP epoch on them) that ranks the plans; 0 = no screening:
                               every fitting plan is a finalist (default 8000) */
    double time_budget_s;   /* > 0: start no fine-tuning expected to end after this */
    int64_t val_samples;    /* validation samples held out of the training data (default 5000) */
    int64_t quick_samples;  /* of them, used by the greedy descent's quick measure (default 1000) */
    int distill;            /* distill fine-tuning from the original model (default 1) */
    /* the finalists' filter removal + AGP fine-tuning (tml_finetune's): Adam at lr, cosine to
       zero or constant (lr_constant), the result the average of the weights from the fraction
       avg_from of the steps on (avg; AGP reaches the final sparsity at 2/3). Default: 1e-3,
       cosine, no average (avg_from 2/3 when one is set) */
    double lr;
    int lr_constant;
    tml_avg avg;
    double avg_decay, avg_from;
    tml_export_opts exp;    /* how the candidates are exported (and measured) */
    const struct tml_device_opts *device; /* non-NULL: each descent's fitting plan is also
                               compiled for this target (one run on the emulated core) and the
                               descent goes on where the compiled flash is over the budget, the
                               compiler's excess over the code estimate added to the flash of
                               the plans with the same weight-form goal from then on */
    const tml_samples *train; /* raw training samples (required) */
    const tml_samples *test;  /* raw test samples for the report (may be NULL) */
    tml_fit_progress_fn progress;
    tml_fit_lookup_fn lookup;
    tml_fit_store_fn store;
    tml_fit_search_lookup_fn search_lookup; /* NULL: the search always runs */
    tml_fit_search_store_fn search_store;
    void *user;
    volatile int *cancel;
} tml_fit_opts;
void tml_fit_opts_default(tml_fit_opts *o);

/* What one plan costs and scores. */
typedef struct tml_fit_cost {
    int64_t flash;          /* exporter: const bytes + code estimate */
    int64_t ram;            /* exporter: arena bytes */
    int64_t instr;          /* exporter's estimated Cortex-M4 instructions per inference */
    double val_loss, val_acc; /* validation (quick subset during the descent) */
    double test_acc;        /* NaN when not measured */
    double pick_acc;        /* fine-tuned candidates: top-1 on the second half of the validation
                               part, which no earlier choice saw (the answer is chosen on it);
                               NaN elsewhere */
    int64_t code_gap;       /* the search's quick measure only: the compiler's excess over the
                               code estimate measured for the plan's weight-form goal so far,
                               included in flash (0 for exact measures) */
} tml_fit_cost;

struct tml_fit_cand {
    int id;
    char origin[80];        /* "greedy all", "greedy no-sharing", "front 1/3" ... */
    tml_plan plan;
    tml_fit_cost quick;     /* the plan without fine-tuning (descent measure) */
    tml_fit_cost screen;    /* after the short fine-tune (valid when screened; full validation) */
    int screened;
    int finalist;           /* chosen for the full fine-tuning by its screened top-1 */
    int grown;              /* an earlier step of a descent whose fitting plan screened smaller
                               than its quick measure: grown back into the bytes it freed */
    tml_fit_cost final;     /* after fine-tuning (valid when tuned) */
    int tuned;              /* fine-tuned and measured */
    int resumed;            /* its model came from lookup */
    int fits;               /* final costs within every budget (and max_drop) */
    double seconds;         /* fine-tuning wall time */
    tml_model *model;       /* the INT8 model (tuned candidates), owned */
};

typedef struct tml_fit_result {
    tml_fit_cost float_base, int8_base; /* the original model (float: no flash / RAM) */
    int n_cands;
    tml_fit_cand *cands;
    int best;               /* index of the answer in cands, -1 if nothing fits */
    int closest;            /* nothing fits: the candidate missing least (-1 if none) */
    int n_steps;            /* greedy steps taken over all variants */
    int64_t quick_evals;    /* plans measured without fine-tuning */
    double seconds;
    int search_resumed;     /* the search came from search_lookup (not run again) */
    int budget_stopped;     /* parts of the search the time budget skipped or stopped: descents
                               not run or stopped early, fine-tuning candidates not started */
} tml_fit_result;

/* Runs the search on the float model m. On success r->best is the answer
 * (or -1: nothing fits; r->closest then says what came nearest). */
tml_status tml_fit(const tml_model *m, const tml_fit_opts *o, tml_fit_result *r);
void tml_fit_result_free(tml_fit_result *r);

/* By how much c misses the budgets of o, as a sum of relative overshoots
 * (0 = fits); miss[3] (may be NULL) gets flash, RAM and latency overshoots in
 * bytes / bytes / ms (<= 0 where within). */
double tml_fit_miss(const tml_fit_opts *o, const tml_fit_cost *c, double miss[3]);
/* Growing back: steps[0..from] are the costs of a descent's earlier plans
 * (quick measure, the current compile gap included), the later ones bigger
 * models; `shrink` is by how much the descent's fitting plan came out smaller
 * after the screening's short fine-tune than by its quick measure. Returns
 * the earliest step of the run from `from` backwards whose flash less
 * `shrink` (and less `margin`) fits the budgets of o with its RAM and
 * latency, or -1 (shrink <= 0, or steps[from] does not fit so). */
int tml_fit_grow_back(const tml_fit_opts *o, const tml_fit_cost *steps, int from, int64_t shrink, int64_t margin);
/* JSON text of a plan ({"layers": {"conv1": {"filters": .., "sparsity": .., "bits": ..}}}); caller frees. */
char *tml_plan_to_json(const tml_plan *p);

#ifdef __cplusplus
}
#endif
#endif
