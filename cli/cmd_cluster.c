/*
 * cmd_cluster.c - `tinyml cluster`: k-means weight sharing, optional centroid
 * fine-tuning, before/after report.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_cluster.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_recipe.h"
#include "tinyml/tml_train.h"

static const char help[] =
    "Usage: tinyml cluster [options] [MODEL] [-o OUT]\n"
    "\n"
    "Weight sharing (Deep Compression stage 2): each layer's weights are replaced\n"
    "by the nearest of k centroids found by k-means, and stored as a codebook plus\n"
    "b-bit indices (Huffman-coded when that is smaller). Pruned zeros stay zero:\n"
    "centroid 0 is the fixed 0.0. Works on float models (then quantize: centroids\n"
    "map onto the int8 grid) and on int8 models (integer centroids).\n"
    "\n"
    "Options:\n"
    "  --bits B               index bits 1..8, k = 2^B clusters (default 5)\n"
    "  --clusters K           k clusters instead (2..256)\n"
    "  --per-channel          one codebook per output channel\n"
    "  --init I               linear (default), density, random, kmeans++\n"
    "  --max-iter N           Lloyd iterations (default 50)\n"
    "  --layer NAME           cluster only this layer (repeatable)\n"
    "  --skip NAME            leave this layer alone (repeatable)\n"
    "  --finetune-epochs N    retrain the centroids (gradients summed per centroid)\n"
    "  -d, --data SPEC        fine-tuning data (default split train) and report data (split test)\n"
    "  --lr X                 fine-tuning learning rate (Adam; default 1e-4)\n"
    "  --batch N              fine-tuning batch (default 64)\n"
    "  --teacher MODEL        distill from MODEL while fine-tuning the centroids\n"
    "  --limit N              evaluate on N samples only\n"
    "  -o, --output FILE      ('-' = stdout; default stdout if not a terminal)\n"
    "  --seed N; --format F; -q, --quiet\n"
    "\n"
    "Examples:\n"
    "  tinyml cluster pruned.tmf --bits 5 --data fashion-mnist -o clustered.tmf\n"
    "  tinyml cluster lenet5.tmf --bits 4 --per-channel --init kmeans++ -o c.tmf\n"
    "  tinyml prune --sparsity 0.9 --global base.tmf | tinyml cluster --bits 5 | tinyml quantize --calib fashion-mnist -o small.tmf\n";

static tml_status on_epoch(void *user, tml_trainer *t, const tml_epoch_info *e)
{
    (void)t;
    cli_log(user, "centroid fine-tuning epoch %d/%d: loss %.4f | val acc %.2f%% | %.1fs", e->epoch + 1, e->epochs,
            e->train_loss, 100 * e->val_acc, e->seconds);
    return TML_OK;
}

int cmd_cluster(int argc, char **argv)
{
    cli c;
    cli_init(&c, "cluster", help, argc, argv);
    const char *pos[1] = {NULL}, *out = NULL, *data = NULL, *init = "linear", *teacher = NULL;
    const char *only[65] = {NULL}, *skip[65] = {NULL};
    int nonly = 0, nskip = 0, ft = 0, batch = 64;
    double lr = 1e-4;
    int64_t limit = 0;
    tml_cluster_opts o;
    tml_cluster_opts_default(&o);
    int bits_set = 0;
    while (cli_next(&c)) {
        const char *v;
        if (cli_str(&c, "output", 'o', &out) || cli_str(&c, "data", 'd', &data) || cli_str(&c, "init", 0, &init) ||
            cli_str(&c, "teacher", 0, &teacher))
            continue;
        if (cli_int(&c, "bits", 0, 1, 8, &o.bits)) {
            bits_set = 1;
            continue;
        }
        if (cli_int(&c, "clusters", 0, 2, 256, &o.clusters) || cli_int(&c, "max-iter", 0, 1, 10000, &o.max_iter) ||
            cli_int(&c, "finetune-epochs", 0, 0, 10000, &ft) || cli_int(&c, "batch", 0, 1, 65536, &batch) ||
            cli_double(&c, "lr", 0, 1e-12, 10, &lr) || cli_i64(&c, "limit", 0, 1, INT64_MAX, &limit))
            continue;
        if (cli_flag(&c, "per-channel", 0)) {
            o.per_channel = 1;
            continue;
        }
        if (cli_str(&c, "layer", 0, &v)) {
            if (nonly == 64) cli_usage_error(&c, "too many --layer");
            only[nonly++] = v;
            continue;
        }
        if (cli_str(&c, "skip", 0, &v)) {
            if (nskip == 64) cli_usage_error(&c, "too many --skip");
            skip[nskip++] = v;
            continue;
        }
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (bits_set && o.clusters) cli_usage_error(&c, "give --bits or --clusters, not both");
    if (tml_cluster_init_parse(init, &o.init)) cli_usage_error(&c, "%s", tml_last_error());
    if (ft && !data) cli_usage_error(&c, "--finetune-epochs needs --data");
    if (teacher && !ft) cli_usage_error(&c, "--teacher needs --finetune-epochs");
    o.seed = c.seed;
    o.only = nonly ? only : NULL;
    o.skip = nskip ? skip : NULL;

    tml_model *m = cli_load_model(&c, pos[0]);
    tml_model *before = tml_model_clone(m);
    tml_cluster_report rep;
    tml_status st = tml_cluster(m, &o, &rep);
    if (st) cli_fail_status(&c, st);
    double acc_nf = NAN;
    if (ft) {
        if (tml_model_is_quantized(m)) cli_fail(&c, "centroid fine-tuning needs a float model (cluster before quantizing)");
        acc_nf = cli_top1(&c, m, data, limit);
        tml_dataset *ds = cli_open_dataset(&c, data, "train");
        tml_samples *s = NULL;
        if ((st = tml_dataset_load(ds, 0, &s))) cli_fail_status(&c, st);
        tml_model *tm = teacher ? cli_load_model(&c, teacher) : NULL;
        tml_finetune fto;
        tml_finetune_default(&fto);
        fto.epochs = ft;
        fto.lr = lr;
        fto.batch = batch;
        fto.seed = c.seed;
        fto.data = s;
        fto.teacher = tm;
        fto.on_epoch = on_epoch;
        fto.user = &c;
        fto.cancel = &cli_cancel_flag;
        if ((st = tml_finetune_run(m, &fto, NULL, 0, NULL))) cli_fail_status(&c, st);
        tml_model_free(tm);
        tml_samples_free(s);
        tml_dataset_free(ds);
    }
    double acc0 = data ? cli_top1(&c, before, data, limit) : NAN, acc1 = data ? cli_top1(&c, m, data, limit) : NAN;
    double b0 = cli_model_bytes(before), b1 = cli_model_bytes(m);

    static const char *const lh[] = {"layer", "weights", "k", "bits", "books", "iters", "rmse", "ms"};
    tml_table *lt = tml_table_new("layers", "Clustered layers", 8, lh);
    for (int i = 0; i < rep.n_layers; i++) {
        const tml_cluster_layer *l = &rep.layers[i];
        tml_table_add_row(lt);
        tml_table_str(lt, 0, l->name);
        tml_table_int(lt, 1, l->weights);
        tml_table_int(lt, 2, l->k);
        tml_table_int(lt, 3, l->bits);
        tml_table_int(lt, 4, l->books);
        tml_table_int(lt, 5, l->iters);
        tml_table_num(lt, 6, l->rmse, "%.3g");
        tml_table_num(lt, 7, 1000 * l->seconds, "%.1f");
    }
    tml_table_note(lt, "init %s, seed %llu; k-means took %.3fs in all", tml_cluster_init_name(o.init),
                   (unsigned long long)c.seed, rep.seconds);
    static const char *const sh[] = {"model", "bytes", "ratio", "top1%", "drop"};
    tml_table *st_ = tml_table_new("summary", "Before / after", 5, sh);
    const char *names[3] = {"original", "clustered", "fine-tuned"};
    double accs[3] = {acc0, ft ? acc_nf : acc1, acc1};
    int rows = ft ? 3 : 2;
    for (int k = 0; k < rows; k++) {
        tml_table_add_row(st_);
        tml_table_str(st_, 0, names[k]);
        tml_table_num(st_, 1, k ? b1 : b0, "%.0f");
        tml_table_num(st_, 2, b0 / (k ? b1 : b0), "%.2fx");
        tml_table_num(st_, 3, 100 * accs[k], "%.2f");
        tml_table_num(st_, 4, 100 * (acc0 - accs[k]), "%.2f");
    }
    if (data) tml_table_note(st_, "top-1 on %s (default split test%s)", data, limit ? ", limited" : "");

    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "clusters", rep.n_layers ? rep.layers[0].k : 0);
    cJSON_AddNumberToObject(h, "bits", rep.n_layers ? rep.layers[0].bits : 0);
    cJSON_AddStringToObject(h, "init", tml_cluster_init_name(o.init));
    if (o.per_channel) cJSON_AddTrueToObject(h, "per_channel");
    cJSON_AddNumberToObject(h, "seed", (double)c.seed);
    if (ft) cJSON_AddNumberToObject(h, "finetune_epochs", ft);
    if (data) cli_history_eval(h, data, acc0, acc1);
    cli_add_history(&c, m, h);
    cli_save_model(&c, m, out);
    tml_table *ts[2] = {lt, st_};
    cli_print_pass_report(&c, out, ts, 2);
    tml_table_free(lt);
    tml_table_free(st_);
    tml_cluster_report_free(&rep);
    tml_model_free(before);
    tml_model_free(m);
    return 0;
}
