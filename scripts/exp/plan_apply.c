/*
 * plan-apply: an experiment tool (built as build/plan-apply, not installed):
 * applies one compression plan to a float model exactly as `tinyml fit`
 * fine-tunes a finalist (tml_plan_apply: filter removal, AGP pruning with
 * distillation from the model, weight sharing, INT8 or QAT), then prints the
 * test top-1 and loss. It measures what one knob of the fine-tuning recipe or
 * of a plan is worth without running the search (docs/fit.md, "What limits
 * LeNet-5's answer").
 *
 *   plan-apply MODEL DATA OUT.tmf [key=value ...]
 *     plan:   LAYER.filters=F LAYER.sparsity=S LAYER.bits=B LAYER.qbits=Q
 *     recipe: epochs=N (8) qat=N (1) cluster=N (1) lr=X (1e-3) seed=N (1)
 *             alpha=A temp=T agp=STEPS batch=N crop=P flip=0|1 float=1 (stop before INT8)
 *             noteacher=1 val=N (5000)
 *   Unnamed layers keep everything. Example (run D's answer, docs/fit.md):
 *     build/plan-apply lenet5.tmf fashion-mnist d.tmf conv1.filters=0.3125 conv2.filters=0.5 \
 *       conv2.qbits=6 fc1.filters=0.5 fc1.sparsity=0.87 fc1.qbits=2 fc2.qbits=4
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_dataset.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_recipe.h"

static int fail(const char *what)
{
    fprintf(stderr, "plan-apply: %s: %s\n", what, tml_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: plan-apply MODEL DATA OUT.tmf [key=value ...] (see the source's header)\n");
        return 2;
    }
    tml_model *m = NULL;
    tml_dataset *dtr = NULL, *dte = NULL, *cal = NULL;
    tml_samples *tr = NULL, *te = NULL;
    if (tml_model_load(argv[1], &m)) return fail(argv[1]);
    if (tml_dataset_open(argv[2], "train", &dtr) || tml_dataset_load(dtr, 0, &tr)) return fail("training data");
    if (tml_dataset_open(argv[2], "test", &dte) || tml_dataset_load(dte, 0, &te)) return fail("test data");
    tml_plan p;
    if (tml_plan_init(&p, m)) return fail("plan");
    tml_finetune ft;
    tml_finetune_default(&ft);
    ft.seed = 1;
    ft.data = tr;
    ft.val_samples = 5000;
    ft.teacher = m;
    /* as tinyml fit's finalists: 8 + 1 + QAT 1, its last epoch, the smallest forms */
    p.prune_epochs = 8;
    p.cluster_epochs = 1;
    p.qat_epochs = 1;
    p.qat_keep_last = 1;
    p.form_size = 1;
    for (int i = 4; i < argc; i++) {
        char ly[128], k[64];
        double v;
        tml_plan_layer *l;
        if (sscanf(argv[i], "%127[^.=].%63[^=]=%lf", ly, k, &v) == 3 && (l = tml_plan_find(&p, ly)) != NULL) {
            if (!strcmp(k, "filters")) l->filters = v;
            else if (!strcmp(k, "sparsity")) l->sparsity = v;
            else if (!strcmp(k, "bits")) l->bits = (int)v;
            else if (!strcmp(k, "qbits")) l->qbits = (int)v;
            else goto bad;
            continue;
        }
        if (sscanf(argv[i], "%63[^=]=%lf", k, &v) != 2) goto bad;
        if (!strcmp(k, "epochs")) p.prune_epochs = (int)v;
        else if (!strcmp(k, "qat")) p.qat_epochs = (int)v;
        else if (!strcmp(k, "cluster")) p.cluster_epochs = (int)v;
        else if (!strcmp(k, "float")) p.float_only = (int)v;
        else if (!strcmp(k, "agp")) p.agp_steps = (int)v;
        else if (!strcmp(k, "lr")) ft.lr = v;
        else if (!strcmp(k, "seed")) ft.seed = (uint64_t)v;
        else if (!strcmp(k, "alpha")) ft.kd_alpha = v;
        else if (!strcmp(k, "temp")) ft.kd_temperature = v;
        else if (!strcmp(k, "val")) ft.val_samples = (int64_t)v;
        else if (!strcmp(k, "batch")) ft.batch = (int)v;
        else if (!strcmp(k, "crop")) ft.aug_crop_pad = (int)v;
        else if (!strcmp(k, "flip")) ft.aug_flip = (int)v;
        else if (!strcmp(k, "noteacher")) ft.teacher = v ? NULL : m;
        else goto bad;
        continue;
    bad:
        fprintf(stderr, "plan-apply: unknown or malformed '%s' (see the source's header)\n", argv[i]);
        return 2;
    }
    /* calibration as fit's: a seeded subset of the first 4096 training samples */
    if (tml_dataset_from_samples(tr, NULL, tr->n < 4096 ? tr->n : 4096, "calibration", &cal)) return fail("calibration");
    tml_model *c = tml_model_clone(m);
    if (!c) return fail("clone");
    if (tml_plan_apply(c, &p, &ft, cal)) return fail("plan apply");
    tml_eval_result er;
    tml_eval_opts eo = {0};
    if (tml_evaluate_samples(c, te, NULL, te->n, &eo, &er)) return fail("evaluate");
    printf("test_top1 %.2f loss %.4f (%lld test samples)\n", 100.0 * er.top1, er.loss, (long long)te->n);
    tml_eval_result_free(&er);
    if (tml_model_save(c, argv[3], NULL)) return fail(argv[3]);
    tml_model_free(c);
    tml_model_free(m);
    tml_plan_free(&p);
    tml_dataset_free(cal);
    tml_dataset_free(dtr);
    tml_dataset_free(dte);
    tml_samples_free(tr);
    tml_samples_free(te);
    return 0;
}
