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
    "  --epochs N             retrain the centroids for N epochs, as in 'tinyml train'\n"
    "                         (gradients summed per centroid; --finetune-epochs is the old spelling)\n"
    "  -d, --data SPEC        fine-tuning data (default split train) and report data (split test)\n"
    "  --val-split F          hold out the fraction F of --data (seeded): fine-tune on the\n"
    "                         rest, report on it (a CSV or PNG folder has no test split)\n"
    "  --eval-data SPEC       report on this data instead (default split test)\n"
    "  --lr X                 fine-tuning learning rate (Adam; default 1e-4)\n"
    "  --batch N              fine-tuning batch (default 64)\n"
    "  --teacher MODEL        distill from MODEL while fine-tuning the centroids\n"
    "  --crop-pad P, --flip   fine-tuning augmentation, as in 'tinyml train'\n"
    "  --val N                hold N samples of --data out of fine-tuning (default 5000; 0 = train on all)\n"
    "  --limit N              evaluate on N samples only\n"
    "  -o, --output FILE      ('-' = stdout; default stdout if not a terminal); while\n"
    "                         fine-tuning, FILE.last.tmf is kept after every epoch (Ctrl-C\n"
    "                         leaves a usable model; --checkpoint PREFIX, --no-checkpoint)\n"
    "  --seed N; --format F; -q, --quiet\n"
    "\n"
    "The report gives top-1 with its 95% interval and, for a drop, the p-value of a\n"
    "paired (McNemar) test on the same samples (p >= 0.05: inside the noise).\n"
    "\n"
    "Examples:\n"
    "  tinyml cluster pruned.tmf --bits 5 --data fashion-mnist -o clustered.tmf\n"
    "  tinyml cluster lenet5.tmf --bits 4 --per-channel --init kmeans++ -o c.tmf\n"
    "  tinyml cluster pruned.tmf --bits 5 --epochs 1 --teacher base.tmf --crop-pad 2 --flip --data fashion-mnist -o c.tmf\n"
    "  tinyml prune --sparsity 0.9 --global --epochs 1 --data fashion-mnist base.tmf \\\n"
    "    | tinyml cluster --bits 5 | tinyml quantize --calib fashion-mnist -o small.tmf\n";

typedef struct cluster_ctx {
    const cli *c;
    const tml_model *m; /* the model being fine-tuned */
    const char *prefix; /* checkpoint prefix or NULL */
    char ckpt[64];      /* what the last checkpoint holds ("" = none yet) */
} cluster_ctx;

static tml_status on_epoch(void *user, tml_trainer *t, const tml_epoch_info *e)
{
    (void)t;
    cluster_ctx *x = user;
    cli_log(x->c, "centroid fine-tuning epoch %d/%d: loss %.4f | val acc %.2f%% | %.1fs", e->epoch + 1, e->epochs,
            e->train_loss, 100 * e->val_acc, e->seconds);
    if (x->prefix) {
        char what[64];
        snprintf(what, sizeof what, "centroid fine-tuning epoch %d/%d", e->epoch + 1, e->epochs);
        tml_status st = cli_write_checkpoint(x->c, x->m, x->prefix, what);
        if (st) return tml_error_context(st, "writing a checkpoint");
        snprintf(x->ckpt, sizeof x->ckpt, "%s", what);
    }
    return TML_OK;
}

int cmd_cluster(int argc, char **argv)
{
    cli c;
    cli_init(&c, "cluster", help, argc, argv);
    const char *pos[1] = {NULL}, *out = NULL, *init = "linear", *teacher = NULL, *ckpt_prefix = NULL;
    const char *only[65] = {NULL}, *skip[65] = {NULL};
    int nonly = 0, nskip = 0, ft = 0, batch = 64, no_ckpt = 0, crop_pad = 0, flip = 0;
    double lr = 1e-4;
    int64_t limit = 0, val = -1;
    cli_data data = {0};
    tml_cluster_opts o;
    tml_cluster_opts_default(&o);
    int bits_set = 0;
    while (cli_next(&c)) {
        const char *v;
        if (cli_data_option(&c, &data)) continue;
        if (cli_str(&c, "output", 'o', &out) || cli_str(&c, "init", 0, &init) || cli_str(&c, "teacher", 0, &teacher) ||
            cli_str(&c, "checkpoint", 0, &ckpt_prefix))
            continue;
        if (cli_int(&c, "bits", 0, 1, 8, &o.bits)) {
            bits_set = 1;
            continue;
        }
        if (cli_int(&c, "clusters", 0, 2, 256, &o.clusters) || cli_int(&c, "max-iter", 0, 1, 10000, &o.max_iter) ||
            cli_int(&c, "epochs", 0, 0, 10000, &ft) || cli_int(&c, "finetune-epochs", 0, 0, 10000, &ft) ||
            cli_int(&c, "batch", 0, 1, 65536, &batch) || cli_double(&c, "lr", 0, 1e-12, 10, &lr) ||
            cli_i64(&c, "limit", 0, 1, INT64_MAX, &limit) || cli_int(&c, "crop-pad", 0, 0, 64, &crop_pad) ||
            cli_i64(&c, "val", 0, 0, INT64_MAX, &val))
            continue;
        if (cli_flag(&c, "flip", 0)) {
            flip = 1;
            continue;
        }
        if (cli_flag(&c, "per-channel", 0)) {
            o.per_channel = 1;
            continue;
        }
        if (cli_flag(&c, "no-checkpoint", 0)) {
            no_ckpt = 1;
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
    if (ft && !data.spec) cli_usage_error(&c, "--epochs needs --data");
    if (data.val_split > 0 && !data.spec) cli_usage_error(&c, "--val-split needs --data");
    if (teacher && !ft) cli_usage_error(&c, "--teacher needs --epochs");
    if ((crop_pad || flip || val >= 0) && !ft) cli_usage_error(&c, "--crop-pad, --flip and --val need --epochs");
    o.seed = c.seed;
    o.only = nonly ? only : NULL;
    o.skip = nskip ? skip : NULL;
    char prefix_buf[4096];
    const char *prefix = ft ? cli_checkpoint_prefix(out, ckpt_prefix, no_ckpt, prefix_buf, sizeof prefix_buf) : NULL;
    cli_check_model_output(&c, out);
    cli_check_checkpoints(&c, prefix, 0);

    tml_model *m = cli_load_model(&c, pos[0]);
    tml_model *before = tml_model_clone(m);
    tml_cluster_report rep;
    tml_status st = tml_cluster(m, &o, &rep);
    if (st) cli_fail_status(&c, st);
    const int evaluate = cli_has_eval_data(&data);
    cli_acc acc0 = {0}, acc_nf = {0}, acc1 = {0};
    if (ft) {
        if (tml_model_is_quantized(m)) cli_fail(&c, "centroid fine-tuning needs a float model (cluster before quantizing)");
        if (evaluate) cli_accuracy(&c, m, &data, limit, &acc_nf);
        tml_dataset *ds = cli_open_train_data(&c, &data, m);
        tml_samples *s = NULL;
        if ((st = tml_dataset_load(ds, 0, &s))) cli_fail_status(&c, st);
        tml_model *tm = teacher ? cli_load_model(&c, teacher) : NULL;
        cluster_ctx x = {.c = &c, .m = m, .prefix = prefix};
        tml_finetune fto;
        tml_finetune_default(&fto);
        fto.epochs = ft;
        fto.lr = lr;
        fto.batch = batch;
        fto.seed = c.seed;
        fto.data = s;
        fto.teacher = tm;
        fto.val_samples = val;
        fto.aug_crop_pad = crop_pad;
        fto.aug_flip = flip;
        fto.on_epoch = on_epoch;
        fto.user = &x;
        fto.cancel = &cli_cancel_flag;
        if ((st = tml_finetune_run(m, &fto, NULL, 0, NULL))) {
            if (st == TML_ERR_INTERRUPTED) cli_interrupted(&c, prefix, x.ckpt[0] ? x.ckpt : NULL);
            cli_fail_status(&c, st);
        }
        tml_model_free(tm);
        tml_samples_free(s);
        tml_dataset_free(ds);
    }
    if (evaluate) {
        cli_accuracy(&c, before, &data, limit, &acc0);
        cli_accuracy(&c, m, &data, limit, &acc1);
    }
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
    static const char *const sh[] = {"model", "bytes", "ratio", "top1%", "drop", "top1 95% CI", "p"};
    tml_table *st_ = tml_table_new("summary", "Before / after", 7, sh);
    const char *names[3] = {"original", "clustered", "fine-tuned"};
    const cli_acc *accs[3] = {&acc0, ft ? &acc_nf : &acc1, &acc1};
    int rows = ft ? 3 : 2;
    for (int k = 0; k < rows; k++) {
        tml_table_add_row(st_);
        tml_table_str(st_, 0, names[k]);
        tml_table_num(st_, 1, k ? b1 : b0, "%.0f");
        tml_table_num(st_, 2, b0 / (k ? b1 : b0), "%.2fx");
        cli_acc_cells(st_, 3, accs[k], &acc0);
    }
    if (evaluate) {
        char dn[600];
        cli_eval_data_note(&c, &data, ft > 0, dn, sizeof dn);
        tml_table_note(st_, "top-1 on %s%s", dn, limit ? ", limited" : "");
        cli_acc_note(&c, st_, &acc0, accs + 1, rows - 1);
    }

    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "clusters", rep.n_layers ? rep.layers[0].k : 0);
    cJSON_AddNumberToObject(h, "bits", rep.n_layers ? rep.layers[0].bits : 0);
    cJSON_AddStringToObject(h, "init", tml_cluster_init_name(o.init));
    if (o.per_channel) cJSON_AddTrueToObject(h, "per_channel");
    cJSON_AddNumberToObject(h, "seed", (double)c.seed);
    if (ft) cJSON_AddNumberToObject(h, "finetune_epochs", ft);
    if (crop_pad) cJSON_AddNumberToObject(h, "crop_pad", crop_pad);
    if (flip) cJSON_AddTrueToObject(h, "flip");
    if (val >= 0) cJSON_AddNumberToObject(h, "val", (double)val);
    if (evaluate) {
        tml_dataset *ev = cli_open_eval_data(&c, &data, NULL);
        cli_history_eval(h, tml_dataset_get_info(ev)->name, acc0.top1, acc1.top1);
        tml_dataset_free(ev);
    }
    cli_add_history(&c, m, h);
    cli_save_model(&c, m, out);
    tml_table *ts[2] = {lt, st_};
    cli_print_pass_report(&c, out, ts, 2);
    tml_table_free(lt);
    tml_table_free(st_);
    tml_cluster_report_free(&rep);
    cli_acc_free(&acc0);
    cli_acc_free(&acc_nf);
    cli_acc_free(&acc1);
    tml_model_free(before);
    tml_model_free(m);
    return 0;
}
