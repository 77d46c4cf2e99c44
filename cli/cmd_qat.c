/*
 * cmd_qat.c - `tinyml qat`: quantization-aware training (tml_qat), and the
 * PTQ-vs-QAT table that says what it bought.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_format.h"
#include "tinyml/tml_qat.h"

static const char help_qat[] =
    "Usage: tinyml qat [options] [MODEL] --data SPEC [-o OUT]\n"
    "\n"
    "Quantization-aware training: fine-tune a float model through the forward\n"
    "pass of the int8 model it becomes (batch norm folded, weights fake-quantized\n"
    "per output channel at --weight-bits, activations on their per-tensor int8\n"
    "grids with fused ReLU clamps, straight-through gradients), then write that\n"
    "int8 model. Pruned weights stay zero and clustered weights keep their\n"
    "shared codebooks. Prints float, post-training (PTQ, nearest and adaptive\n"
    "rounding) and QAT accuracy.\n"
    "\n"
    "Quantization:\n"
    "  --weight-bits B        weight bits 2..8 (default 8; below 8 stored packed)\n"
    "  --per-tensor           one weight scale per layer instead of per channel\n"
    "  --rounding R           integer arithmetic: tinyml (default) or tflite\n"
    "  --calib SPEC           data for the initial ranges (default: --data, train split)\n"
    "  --calib-samples N      (default 512)\n"
    "  --method M             initial ranges: minmax (default), percentile[:P],\n"
    "                         entropy, mse\n"
    "  --init R               adaptive (default: start from the weights of PTQ with\n"
    "                         adaptive rounding) or nearest (round to nearest)\n"
    "  --ranges R             ema (default: moving average of batch min/max, then\n"
    "                         frozen) or fixed (the calibrated ranges)\n"
    "  --ema M                moving-average momentum (default 0.99)\n"
    "  --freeze F             fraction of the steps after which ranges stop moving\n"
    "                         (default 0.5)\n"
    "Training (the fine-tuning defaults of 'tinyml finetune'):\n"
    "  -d, --data SPEC        training data (default split: train)\n"
    "  --limit N              use only the first N training samples\n"
    "  --val N                validation samples held out (default 5000, 0 = none)\n"
    "  --epochs N             (default 2)\n"
    "  --batch N              (default 64)\n"
    "  --lr X                 (default 1e-4, Adam, cosine)\n"
    "  --optimizer adam|sgd   (sgd: default lr 0.005)\n"
    "  --weight-decay X       (default 0)\n"
    "  --label-smoothing X    (default 0.1)\n"
    "  --crop-pad P, --flip   augmentation, as in 'tinyml train'\n"
    "  --teacher MODEL        distill from MODEL (e.g. the unpruned float model)\n"
    "  --self-distill         distill from the float model itself\n"
    "  --kd-temperature T     (default 4); --kd-alpha A (default 0.9)\n"
    CLI_WAVG_HELP
    "  --keep-best            write the epoch with the best fake-quantized validation\n"
    "                         accuracy (its weights and ranges), not the last\n"
    "Report:\n"
    "  --eval SPEC            evaluate on SPEC (default: --data, whose default\n"
    "                         evaluation split is test); --eval none skips it\n"
    "  --eval-limit N         evaluate only N samples\n"
    "  -o, --output FILE      the int8 model ('-' = stdout; default stdout if not a terminal)\n"
    "  --float-out FILE       also write the trained (folded) float model\n"
    "  --seed N               calibration samples, shuffling, validation split (default 1)\n"
    "  --format F             report format; -q, --quiet\n"
    "\n"
    "Examples:\n"
    "  tinyml qat lenet5.tmf --data fashion-mnist --weight-bits 4 --epochs 2 -o lenet5-w4.tmf\n"
    "  tinyml qat clustered.tmf --data fashion-mnist --teacher base.tmf -o small.tmf\n"
    "  tinyml qat clustered.tmf --data fashion-mnist --teacher base.tmf --crop-pad 2 --flip -o small.tmf\n"
    "  tinyml qat lenet5.tmf --data fashion-mnist --keep-best -o lenet5-qat.tmf\n";

/* The per-epoch log of the fine-tuning. */
static tml_status on_epoch(void *user, tml_trainer *t, const tml_epoch_info *e)
{
    (void)t;
    const cli *c = user;
    if (!isnan(e->val_acc))
        cli_log(c, "qat epoch %d/%d: loss %.4f acc %.2f%% | fake-quantized val loss %.4f acc %.2f%% | lr %.2e | %.1fs",
                e->epoch + 1, e->epochs, e->train_loss, 100 * e->train_acc, e->val_loss, 100 * e->val_acc, e->lr, e->seconds);
    else
        cli_log(c, "qat epoch %d/%d: loss %.4f acc %.2f%% | lr %.2e | %.1fs", e->epoch + 1, e->epochs, e->train_loss,
                100 * e->train_acc, e->lr, e->seconds);
    return TML_OK;
}

/* PTQ of m with the same calibration: nearest and adaptive rounding (one
 * calibration with input statistics serves both). */
static void ptq_both(const cli *c, const tml_model *m, tml_dataset *calib, const tml_qat_opts *o, tml_model **near,
                     tml_model **adap)
{
    tml_model *f = tml_model_clone(m);
    if (!f) cli_fail(c, "out of memory");
    tml_status st = tml_fold(f, NULL);
    if (st) cli_fail_status(c, st);
    tml_calib_opts co = o->calib;
    tml_quant_opts ao = o->quant;
    ao.weight_rounding = TML_ROUND_ADAPTIVE;
    co.hessians = 1;
    co.sequential = &ao;
    co.progress = NULL;
    tml_calib cal;
    if ((st = tml_calibrate(f, calib, &co, &cal))) cli_fail_status(c, st);
    for (int r = 0; r < 2; r++) {
        tml_model *q = tml_model_clone(f);
        if (!q) cli_fail(c, "out of memory");
        tml_quant_opts qo = o->quant;
        qo.weight_rounding = r ? TML_ROUND_ADAPTIVE : TML_ROUND_NEAREST;
        if ((st = tml_quantize(q, &cal, &qo))) cli_fail_status(c, st);
        *(r ? adap : near) = q;
    }
    tml_calib_free(&cal);
    tml_model_free(f);
}

int cmd_qat(int argc, char **argv)
{
    cli c;
    cli_init(&c, "qat", help_qat, argc, argv);
    tml_qat_opts o;
    tml_qat_opts_default(&o);
    const char *pos[1] = {NULL}, *data = NULL, *calib = NULL, *method = "minmax", *out = NULL, *float_out = NULL,
               *ranges = "ema", *teacher = NULL, *optim = NULL, *eval = NULL, *init = "adaptive", *rounding = "tinyml";
    int64_t limit = 0, val = -1, eval_limit = 0;
    double lr = NAN, kd_t = 4.0, kd_a = 0.9;
    cli_wavg wavg = CLI_WAVG_INIT;
    while (cli_next(&c)) {
        if (cli_str(&c, "data", 'd', &data) || cli_str(&c, "calib", 0, &calib) || cli_str(&c, "method", 0, &method) ||
            cli_str(&c, "output", 'o', &out) || cli_str(&c, "float-out", 0, &float_out) ||
            cli_str(&c, "ranges", 0, &ranges) || cli_str(&c, "teacher", 0, &teacher) ||
            cli_str(&c, "optimizer", 0, &optim) || cli_str(&c, "eval", 0, &eval) || cli_str(&c, "init", 0, &init) ||
            cli_str(&c, "rounding", 0, &rounding))
            continue;
        if (cli_weight_avg_option(&c, &wavg)) continue;
        if (cli_int(&c, "weight-bits", 0, 2, 8, &o.quant.weight_bits) || cli_int(&c, "epochs", 0, 1, 100000, &o.train.epochs) ||
            cli_int(&c, "batch", 0, 1, 65536, &o.train.batch) || cli_int(&c, "crop-pad", 0, 0, 64, &o.train.aug_crop_pad))
            continue;
        if (cli_flag(&c, "flip", 0)) {
            o.train.aug_flip = 1;
            continue;
        }
        if (cli_i64(&c, "calib-samples", 0, 1, 1000000000, &o.calib.samples) || cli_i64(&c, "limit", 0, 1, INT64_MAX, &limit) ||
            cli_i64(&c, "val", 0, 0, INT64_MAX, &val) || cli_i64(&c, "eval-limit", 0, 1, INT64_MAX, &eval_limit))
            continue;
        if (cli_double(&c, "lr", 0, -1e300, 1e300, &lr) || cli_double(&c, "ema", 0, 0.0, 0.999999, &o.fq.ema_momentum) ||
            cli_double(&c, "freeze", 0, 0.0, 1.0, &o.fq.freeze) ||
            cli_double(&c, "weight-decay", 0, -1e300, 1e300, &o.train.weight_decay) ||
            cli_double(&c, "label-smoothing", 0, -1e300, 1e300, &o.train.label_smoothing) ||
            cli_double(&c, "kd-temperature", 0, -1e300, 1e300, &kd_t) || cli_double(&c, "kd-alpha", 0, -1e300, 1e300, &kd_a))
            continue;
        if (cli_flag(&c, "per-tensor", 0)) {
            o.quant.per_tensor = 1;
            continue;
        }
        if (cli_flag(&c, "self-distill", 0)) {
            o.self_distill = 1;
            continue;
        }
        if (cli_flag(&c, "keep-best", 0)) {
            o.keep_best = 1;
            continue;
        }
        if (cli_positional(&c, pos, 1)) continue;
        cli_unknown(&c);
    }
    if (!data) cli_usage_error(&c, "--data is required (e.g. --data fashion-mnist)");
    if (tml_calib_method_parse(method, &o.quant.method, &o.quant.percentile)) cli_usage_error(&c, "%s", tml_last_error());
    if (strcmp(rounding, "tflite") == 0) o.quant.rounding = TML_ROUNDING_TFLITE;
    else if (strcmp(rounding, "tinyml") != 0) cli_usage_error(&c, "--rounding takes tinyml or tflite, not '%s'", rounding);
    if (strcmp(init, "adaptive") == 0) o.quant.weight_rounding = TML_ROUND_ADAPTIVE;
    else if (strcmp(init, "nearest") == 0) o.quant.weight_rounding = TML_ROUND_NEAREST;
    else cli_usage_error(&c, "--init must be adaptive or nearest (got '%s')", init);
    if (o.keep_best && val == 0) cli_usage_error(&c, "--keep-best needs a validation split (--val N with N > 0)");
    if (teacher && o.self_distill) cli_usage_error(&c, "--teacher and --self-distill: choose one teacher");
    if (strcmp(ranges, "ema") == 0) o.fq.ranges = TML_FQ_RANGES_EMA;
    else if (strcmp(ranges, "fixed") == 0) o.fq.ranges = TML_FQ_RANGES_FIXED;
    else cli_usage_error(&c, "--ranges must be ema or fixed (got '%s')", ranges);
    if (optim) {
        if (strcmp(optim, "adam") == 0 || strcmp(optim, "adamw") == 0) o.train.optim = TML_OPTIM_ADAM;
        else if (strcmp(optim, "sgd") == 0) o.train.optim = TML_OPTIM_SGD;
        else cli_usage_error(&c, "--optimizer must be adam or sgd (got '%s')", optim);
    }
    o.train.lr = !isnan(lr) ? lr : o.train.optim == TML_OPTIM_SGD ? 0.005 : 1e-4;
    o.train.seed = c.seed;
    o.train.val_samples = val;
    cli_weight_avg_check(&c, &wavg);
    o.train.avg = (tml_avg)wavg.kind;
    o.train.avg_decay = wavg.decay;
    o.train.avg_from = wavg.from;
    o.train.kd_temperature = kd_t;
    o.train.kd_alpha = kd_a;
    if (tml_train_opts_check(&o.train)) cli_usage_error(&c, "%s", tml_last_error());
    o.calib.seed = c.seed;
    if (!eval) eval = data;
    int do_eval = strcmp(eval, "none") != 0;
    /* the destinations, before the training (issue 14) */
    cli_check_model_output(&c, out);
    cli_check_output(&c, float_out);

    tml_model *m = cli_load_model(&c, pos[0]);
    if (tml_model_is_quantized(m)) cli_fail(&c, "the model is already int8: QAT starts from the float model");
    tml_model *tm = teacher ? cli_load_model(&c, teacher) : NULL;
    o.train.teacher = tm;
    tml_dataset *ds = cli_open_dataset(&c, data, "train");
    const tml_dataset_info *info = tml_dataset_get_info(ds);
    tml_status st = tml_check_dataset_fits(m, info);
    if (st) cli_fail_status(&c, st);
    tml_samples *s = NULL;
    if ((st = tml_dataset_load(ds, limit, &s))) cli_fail_status(&c, st);
    tml_dataset *cds = cli_open_dataset(&c, calib ? calib : data, "train");

    o.train.on_epoch = on_epoch;
    o.train.user = &c;
    o.train.cancel = &cli_cancel_flag;
    o.calib.cancel = &cli_cancel_flag;
    tml_model *q = NULL, *qf = NULL;
    tml_qat_report rep;
    double t0 = cli_now();
    st = tml_qat(m, s, cds, &o, &q, float_out ? &qf : NULL, &rep);
    if (st == TML_ERR_INTERRUPTED) {
        cli_warn(&c, "interrupted; nothing was written");
        exit(130);
    }
    if (st) cli_fail_status(&c, st);
    cli_log(&c, "qat: folded %d batch norms, fused %d activations; %lld calibration samples; %d epochs; %.1fs",
            rep.fold.bn_folded, rep.fold.act_fused, (long long)rep.calib_samples, o.train.epochs, cli_now() - t0);
    if (o.keep_best) {
        if (rep.best_epoch) cli_log(&c, "qat: kept epoch %d of %d (best fake-quantized validation accuracy %.2f%%)",
                                    rep.kept_epoch, o.train.epochs, 100 * rep.val_acc);
        else cli_warn(&c, "--keep-best: no validation accuracy was measured; the last epoch is written");
    }

    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "data", info->name);
    cJSON_AddNumberToObject(h, "weight_bits", o.quant.weight_bits);
    cJSON_AddStringToObject(h, "weights", o.quant.per_tensor ? "per-tensor" : "per-channel");
    cJSON_AddStringToObject(h, "method", method);
    cJSON_AddStringToObject(h, "ranges", ranges);
    if (o.fq.ranges == TML_FQ_RANGES_EMA) {
        cJSON_AddNumberToObject(h, "ema", o.fq.ema_momentum);
        cJSON_AddNumberToObject(h, "freeze", o.fq.freeze);
    }
    cJSON_AddNumberToObject(h, "epochs", o.train.epochs);
    cJSON_AddNumberToObject(h, "lr", o.train.lr);
    cJSON_AddStringToObject(h, "optimizer", o.train.optim == TML_OPTIM_ADAM ? "adam" : "sgd");
    if (o.train.aug_crop_pad) cJSON_AddNumberToObject(h, "crop_pad", o.train.aug_crop_pad);
    if (o.train.aug_flip) cJSON_AddTrueToObject(h, "flip");
    if (o.train.avg) {
        cJSON_AddStringToObject(h, "weight_avg", o.train.avg == TML_AVG_EMA ? "ema" : "mean");
        if (o.train.avg == TML_AVG_EMA) cJSON_AddNumberToObject(h, "weight_avg_decay", o.train.avg_decay);
        cJSON_AddNumberToObject(h, "weight_avg_from", o.train.avg_from);
    }
    cJSON_AddStringToObject(h, "init", init);
    cJSON_AddStringToObject(h, "rounding", rounding);
    if (tm) cJSON_AddStringToObject(h, "teacher", teacher);
    else if (o.self_distill) cJSON_AddStringToObject(h, "teacher", "self");
    cJSON_AddNumberToObject(h, "seed", (double)c.seed);
    if (!isnan(rep.val_acc)) cJSON_AddNumberToObject(h, "val_top1_fake_quant", rep.val_acc);
    if (o.keep_best) cJSON_AddNumberToObject(h, "kept_epoch", rep.kept_epoch);
    cJSON_AddNumberToObject(h, "seconds", rep.seconds);

    tml_table *t = NULL;
    if (do_eval) {
        tml_model *pn = NULL, *pa = NULL;
        ptq_both(&c, m, cds, &o, &pn, &pa);
        const tml_model *ms[4] = {m, pn, pa, q};
        static const char *const names[4] = {"float", "PTQ nearest", "PTQ adaptive", "QAT"};
        cli_data ed = {.spec = eval, .eval_spec = NULL, .val_split = 0};
        cli_acc acc[4];
        for (int i = 0; i < 4; i++) cli_accuracy(&c, ms[i], &ed, eval_limit, &acc[i]);
        static const char *const hdr[] = {"model", "bytes", "ratio", "top1%", "drop", "top1 95% CI", "p"};
        t = tml_table_new("qat", "Quantization-aware training", 7, hdr);
        double b0 = cli_model_bytes(m);
        for (int i = 0; i < 4; i++) {
            double b = cli_model_bytes(ms[i]);
            tml_table_add_row(t);
            tml_table_str(t, 0, names[i]);
            tml_table_num(t, 1, b, "%.0f");
            tml_table_num(t, 2, b0 / b, "%.2fx");
            cli_acc_cells(t, 3, &acc[i], &acc[0]);
        }
        char dn[600], kept[64] = "";
        if (o.keep_best && rep.best_epoch) snprintf(kept, sizeof kept, " (kept epoch %d, best on validation)", rep.kept_epoch);
        cli_eval_data_note(&c, &ed, strcmp(eval, data) == 0, dn, sizeof dn);
        tml_table_note(t, "accuracy on %s%s; W%dA8 %s weights; calibration %lld samples (%s), seed %llu; "
                       "QAT: %d epochs%s, lr %g, %s ranges",
                       dn, eval_limit ? " (limited)" : "", o.quant.weight_bits,
                       o.quant.per_tensor ? "per-tensor" : "per-channel", (long long)rep.calib_samples, method,
                       (unsigned long long)c.seed, o.train.epochs, kept, o.train.lr, ranges);
        const cli_acc *others[3] = {&acc[1], &acc[2], &acc[3]};
        cli_acc_note(&c, t, &acc[0], others, 3);
        cli_history_eval(h, eval, acc[0].top1, acc[3].top1);
        cJSON_AddNumberToObject(h, "top1_ptq_nearest", acc[1].top1);
        cJSON_AddNumberToObject(h, "top1_ptq_adaptive", acc[2].top1);
        for (int i = 0; i < 4; i++) cli_acc_free(&acc[i]);
        tml_model_free(pn);
        tml_model_free(pa);
    }
    cli_add_history(&c, q, h);
    if (float_out) cli_save_model(&c, qf, float_out);
    cli_save_model(&c, q, out);
    if (t) {
        tml_table *ts[1] = {t};
        cli_print_pass_report(&c, out, ts, 1);
        tml_table_free(t);
    }
    tml_model_free(q);
    tml_model_free(qf);
    tml_model_free(m);
    tml_model_free(tm);
    tml_samples_free(s);
    tml_dataset_free(ds);
    tml_dataset_free(cds);
    return 0;
}
