/*
 * tml_zoo.h - model architectures `tinyml create` builds (lib/core/zoo.c), and
 * the sequential-layer JSON description for custom ones. Weights are
 * initialized from `seed` (He-uniform for layers followed by ReLU, LeCun-
 * uniform otherwise, zero biases; batch norm gamma 1, beta 0, mean 0, var 1).
 */
#ifndef TML_ZOO_H
#define TML_ZOO_H

#include <stdint.h>

#include "tml_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tml_zoo_opts {
    int h, w, c;    /* input shape; 0 = 28x28x1 */
    int features;   /* > 0: the input is a vector of this many values (tabular
                       data; preprocessing scale 1, not 1/255) instead of h, w, c */
    int classes;    /* 0 = 10 */
    float width;    /* mobilenet-tiny width multiplier; 0 = 0.5 */
    uint64_t seed;
} tml_zoo_opts;

/* `arch` is a built-in name (see tml_zoo_list) or a path ending in .json. */
tml_status tml_zoo_create(const char *arch, const tml_zoo_opts *opts, tml_model **out);

/* Built-in architectures: name and a one-line description; NULL-terminated. */
typedef struct tml_zoo_entry {
    const char *name;
    const char *summary;
} tml_zoo_entry;
const tml_zoo_entry *tml_zoo_list(void);

/* Builds a model from JSON text (the ARCH.json format, docs/cli.md#create). */
tml_status tml_zoo_from_json(const char *json, const tml_zoo_opts *opts, tml_model **out);

#ifdef __cplusplus
}
#endif
#endif
