/*
 * ds2png.c - test helper: writes samples of a dataset as a PNG folder
 * (DIR/<class>/<index>.png), so the CLI tests can build PNG datasets without
 * Python or ImageMagick.
 *
 *   ds2png SPEC DIR N [NAMES]   the first N samples of SPEC (8-bit, 1 or 3
 *                               channels); NAMES = comma-separated folder name
 *                               per class (default: the dataset's class names,
 *                               else "c<k>"; "-": leave that class out)
 *   ds2png --blank W H FILE     one black W x H gray PNG
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tinyml/tml_dataset.h"


int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--blank") == 0) {
        int w = atoi(argv[2]), h = atoi(argv[3]);
        uint8_t *px = calloc((size_t)w * (size_t)h, 1);
        if (!px || w < 1 || h < 1 || tu_write_png(argv[4], w, h, 1, px)) return fprintf(stderr, "ds2png: cannot write %s\n", argv[4]), 1;
        free(px);
        return 0;
    }
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: ds2png SPEC DIR N [NAMES] | ds2png --blank W H FILE\n");
        return 2;
    }
    tml_dataset *ds = NULL;
    if (tml_dataset_open(argv[1], "test", &ds)) return fprintf(stderr, "ds2png: %s\n", tml_last_error()), 1;
    const tml_dataset_info *in = tml_dataset_get_info(ds);
    int n = atoi(argv[3]);
    char *names[256] = {NULL};
    char *list = argc == 5 ? strdup(argv[4]) : NULL;
    int nn = 0;
    for (char *t = list ? strtok(list, ",") : NULL; t && nn < 256; t = strtok(NULL, ",")) names[nn++] = t;
    mkdir(argv[2], 0777);
    const int64_t sv = (int64_t)in->h * in->w * in->c;
    float *x = malloc(sizeof(float) * (size_t)sv);
    uint8_t *px = malloc((size_t)sv);
    for (int i = 0; i < n; i++) {
        int32_t y;
        int got = 0;
        if (tml_dataset_next(ds, 1, x, &y, &got) || got != 1) break;
        char cls[128], path[4200];
        if (y < nn && strcmp(names[y], "-") == 0) continue;
        if (y < nn) snprintf(cls, sizeof cls, "%s", names[y]);
        else if (in->labels) snprintf(cls, sizeof cls, "%s", in->labels[y]);
        else snprintf(cls, sizeof cls, "c%d", (int)y);
        for (char *p = cls; *p; p++)
            if (*p == '/') *p = '_';
        snprintf(path, sizeof path, "%s/%s", argv[2], cls);
        mkdir(path, 0777);
        snprintf(path, sizeof path, "%s/%s/%05d.png", argv[2], cls, i);
        for (int64_t k = 0; k < sv; k++) px[k] = (uint8_t)(x[k] < 0 ? 0 : x[k] > 255 ? 255 : x[k]);
        if (tu_write_png(path, in->w, in->h, in->c, px)) return fprintf(stderr, "ds2png: cannot write %s\n", path), 1;
    }
    free(x);
    free(px);
    free(list);
    tml_dataset_free(ds);
    return 0;
}
