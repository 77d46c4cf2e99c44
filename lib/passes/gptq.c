/*
 * gptq.c - adaptive weight rounding for low-bit quantization: the input second
 * moments of every weighted layer over the calibration samples (collected by
 * tml_calibrate with opts.hessians) and GPTQ-style rounding against them.
 *
 * Why: rounding each weight to its nearest grid point minimizes the weight
 * error, not the layer's output error. For an output channel with weights w
 * (k taps) and inputs x, the output error of a rounded row q is
 * (w - q) x, whose mean square over the calibration inputs is
 * (w - q) H (w - q)^T with H = sum x x^T. GPTQ (Frantar et al., "GPTQ:
 * Accurate Post-Training Quantization for Generative Pre-trained
 * Transformers", 2022, after Optimal Brain Quantization) rounds one input
 * column at a time and moves the not yet rounded weights of the row to
 * cancel the error just made, using the Cholesky factor of H^-1; columns go
 * in order of decreasing H diagonal (the inputs with the most energy first).
 * The per-channel scale is chosen before, by a search of the clipping factor
 * on the H-diagonal-weighted rounding error (at 4 bits, clipping the few
 * largest weights buys resolution for all the others).
 *
 * Everything here is float64 and plain loops: k is at most a few thousand
 * taps (LeNet-5 fc1: 800), so H is at most a few MB and the O(k^3)
 * factorization takes well under a second.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes_internal.h"
#include "tinyml/tml_ops.h"

#define HESS_ROWS 2048 /* patch rows per GEMM block when accumulating H */

/* ---- collection --------------------------------------------------------------------------- */

void tml_hessians_free(tml_calib *c)
{
    if (!c->hess) return;
    for (int i = 0; i < c->n_nodes; i++) free(c->hess[i].h);
    free(c->hess);
    c->hess = NULL;
}

/* Taps per output channel, and H matrices, of node n (0 taps: no H). */
static void hess_shape(const tml_model *m, const tml_node *n, int *k, int *n_mats)
{
    const tml_tensor *w = &m->tensors[n->in[1]];
    *k = 0;
    *n_mats = 1;
    if (n->op == TML_OP_DENSE) {
        *k = w->dims[1];
    } else if (n->op == TML_OP_CONV2D) {
        if (n->groups == 1) *k = w->dims[1] * w->dims[2] * w->dims[3]; /* grouped convs: nearest rounding */
    } else if (n->op == TML_OP_DEPTHWISE_CONV2D) {
        *k = w->dims[1] * w->dims[2];
        *n_mats = m->tensors[n->in[0]].dims[2];
    }
}

tml_status tml_hessians_alloc(const tml_model *m, tml_calib *c)
{
    c->n_nodes = m->n_nodes;
    c->hess = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(tml_hessian));
    if (!c->hess) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        if (!tml_node_has_weights(n) || m->tensors[n->in[1]].dtype != TML_DTYPE_F32) continue;
        int k, nm;
        hess_shape(m, n, &k, &nm);
        if (k <= 0 || k > 16384) continue; /* beyond that H would not fit: nearest rounding */
        c->hess[i].k = k;
        c->hess[i].n_mats = nm;
        c->hess[i].h = calloc((size_t)nm * (size_t)k * (size_t)k, sizeof(double));
        if (!c->hess[i].h) return tml_error(TML_ERR_NOMEM, "out of memory (input statistics of '%s', %d taps)", n->name, k);
    }
    return TML_OK;
}

/* Rows [r0, r0+cnt) of the patch matrix of a conv (groups 1) into p (cnt, k),
 * taps in the weights' (ky, kx, ci) order, padding 0. */
static void conv_patches(const tml_window *w, const float *x, int64_t r0, int cnt, float *p)
{
    const int k = w->kh * w->kw * w->c;
    for (int r = 0; r < cnt; r++) {
        const int64_t row = r0 + r;
        const int ox = (int)(row % w->ow), oy = (int)((row / w->ow) % w->oh);
        const int64_t b = row / ((int64_t)w->ow * w->oh);
        float *d = p + (size_t)r * (size_t)k;
        for (int ky = 0; ky < w->kh; ky++) {
            const int iy = oy * w->sh - w->pad_t + ky * w->dh;
            for (int kx = 0; kx < w->kw; kx++, d += w->c) {
                const int ix = ox * w->sw - w->pad_l + kx * w->dw;
                if (iy < 0 || iy >= w->h || ix < 0 || ix >= w->w)
                    memset(d, 0, sizeof(float) * (size_t)w->c);
                else
                    memcpy(d, x + ((b * w->h + iy) * w->w + ix) * w->c, sizeof(float) * (size_t)w->c);
            }
        }
    }
}

/* H += P^T P for P (rows, k), through a float GEMM per block (exact enough:
 * each block's sums are added into float64). */
static void add_gram(const float *p, int rows, int k, float *tmp, double *h)
{
    tml_sgemm(1, 0, k, k, rows, 1.0f, p, k, p, k, 0.0f, tmp, k);
    for (size_t i = 0; i < (size_t)k * (size_t)k; i++) h[i] += tmp[i];
}

tml_status tml_hessians_observe(const tml_model *m, const tml_engine *e, int n, tml_calib *c, int only)
{
    for (int i = 0; i < m->n_nodes; i++) {
        tml_hessian *hs = &c->hess[i];
        if (!hs->h || (only >= 0 && i != only)) continue;
        const tml_node *nd = &m->nodes[i];
        const float *x = tml_engine_activation(e, nd->in[0]);
        if (!x) return tml_error(TML_ERR_INVALID, "node '%s': input not kept", nd->name);
        const int k = hs->k;
        if (nd->op == TML_OP_DEPTHWISE_CONV2D) {
            /* one small H per input channel, summed directly */
            tml_window w;
            tml_window_from_node(m, nd, n, &w);
            double *tap = malloc(sizeof(double) * (size_t)k);
            if (!tap) return tml_error(TML_ERR_NOMEM, "out of memory");
            for (int64_t row = 0; row < (int64_t)n * w.oh * w.ow; row++) {
                const int ox = (int)(row % w.ow), oy = (int)((row / w.ow) % w.oh);
                const int64_t b = row / ((int64_t)w.ow * w.oh);
                for (int ch = 0; ch < w.c; ch++) {
                    for (int ky = 0, t = 0; ky < w.kh; ky++)
                        for (int kx = 0; kx < w.kw; kx++, t++) {
                            const int iy = oy * w.sh - w.pad_t + ky * w.dh, ix = ox * w.sw - w.pad_l + kx * w.dw;
                            tap[t] = (iy < 0 || iy >= w.h || ix < 0 || ix >= w.w) ? 0.0
                                                                                  : x[((b * w.h + iy) * w.w + ix) * w.c + ch];
                        }
                    double *h = hs->h + (size_t)ch * (size_t)k * (size_t)k;
                    for (int a = 0; a < k; a++)
                        if (tap[a] != 0.0)
                            for (int bb = 0; bb < k; bb++) h[(size_t)a * (size_t)k + (size_t)bb] += tap[a] * tap[bb];
                }
            }
            hs->rows += (int64_t)n * w.oh * w.ow;
            free(tap);
            continue;
        }
        float *tmp = malloc(sizeof(float) * (size_t)k * (size_t)k);
        if (!tmp) return tml_error(TML_ERR_NOMEM, "out of memory");
        if (nd->op == TML_OP_DENSE) {
            add_gram(x, n, k, tmp, hs->h);
            hs->rows += n;
        } else {
            tml_window w;
            tml_window_from_node(m, nd, n, &w);
            const int64_t total = (int64_t)n * w.oh * w.ow;
            float *p = malloc(sizeof(float) * (size_t)HESS_ROWS * (size_t)k);
            if (!p) {
                free(tmp);
                return tml_error(TML_ERR_NOMEM, "out of memory");
            }
            for (int64_t r0 = 0; r0 < total; r0 += HESS_ROWS) {
                const int cnt = (int)(total - r0 < HESS_ROWS ? total - r0 : HESS_ROWS);
                conv_patches(&w, x, r0, cnt, p);
                add_gram(p, cnt, k, tmp, hs->h);
            }
            hs->rows += total;
            free(p);
        }
        free(tmp);
    }
    return TML_OK;
}

/* ---- rounding ------------------------------------------------------------------------------ */

static int round_clamp(double v, int qmax)
{
    double r = nearbyint(v);
    return r > qmax ? qmax : r < -qmax ? -qmax : (int)r;
}

/* In-place lower Cholesky factor of the symmetric a (n, n); -1 if not positive definite. */
static int cholesky(double *a, int n)
{
    for (int j = 0; j < n; j++) {
        double d = a[(size_t)j * n + j];
        for (int t = 0; t < j; t++) d -= a[(size_t)j * n + t] * a[(size_t)j * n + t];
        if (!(d > 0.0)) return -1;
        d = sqrt(d);
        a[(size_t)j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double s = a[(size_t)i * n + j];
            for (int t = 0; t < j; t++) s -= a[(size_t)i * n + t] * a[(size_t)j * n + t];
            a[(size_t)i * n + j] = s / d;
        }
        for (int i = 0; i < j; i++) a[(size_t)i * n + j] = 0.0;
    }
    return 0;
}

/* u (n, n) upper triangular with H^-1 = u^T u, from the lower Cholesky factor l of H:
 * H^-1 = l^-T l^-1; its lower Cholesky factor l2 gives u = l2^T. */
static int inverse_upper_factor(const double *l, int n, double *u, double *tmp)
{
    /* tmp = l^-1 (lower), by forward substitution column by column */
    memset(tmp, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int j = 0; j < n; j++) {
        tmp[(size_t)j * n + j] = 1.0 / l[(size_t)j * n + j];
        for (int i = j + 1; i < n; i++) {
            double s = 0.0;
            for (int t = j; t < i; t++) s += l[(size_t)i * n + t] * tmp[(size_t)t * n + j];
            tmp[(size_t)i * n + j] = -s / l[(size_t)i * n + i];
        }
    }
    /* u = l^-T l^-1 (symmetric), then factor it */
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0.0;
            for (int t = i; t < n; t++) s += tmp[(size_t)t * n + i] * tmp[(size_t)t * n + j];
            u[(size_t)i * n + j] = u[(size_t)j * n + i] = s;
        }
    if (cholesky(u, n)) return -1;
    for (int i = 0; i < n; i++) /* transpose in place: lower -> upper */
        for (int j = 0; j < i; j++) {
            u[(size_t)j * n + i] = u[(size_t)i * n + j];
            u[(size_t)i * n + j] = 0.0;
        }
    return 0;
}

/* Clipping factors tried at 2 and 3 bits: 1.00, 0.99, ..., 0.50 of max |w|. */
#define CLIP_STEPS 51

/* The scale of a row (or of all rows) minimizing the d-weighted rounding
 * error (d: H's diagonal), over the clipping factors above. */
static float clip_scale(int rows, int k, const float *w, const double *d, int qmax)
{
    double amax = 0.0;
    for (int64_t i = 0; i < (int64_t)rows * k; i++) amax = fmax(amax, fabs((double)w[i]));
    if (!(amax > 0.0)) return 1.0f;
    float best = (float)(amax / qmax);
    double best_err = -1.0;
    for (int c = 0; c < CLIP_STEPS; c++) {
        const float s = (float)(amax * (1.0 - 0.01 * c) / qmax);
        double err = 0.0;
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < k; j++) {
                const double v = w[(size_t)r * k + j], e = v - (double)round_clamp(v / s, qmax) * s;
                err += d[j] * e * e;
            }
        if (best_err < 0.0 || err < best_err) best_err = err, best = s;
    }
    return best;
}

/* One row rounded with error feedback at scale s: q (natural order) from w
 * (natural order); u, perm as tml_gptq_rows sets them up; wr: k doubles. */
static void gptq_row(int k, const float *w, const uint8_t *keep, const int *perm, const double *u, float s, int qmax,
                     double *wr, int8_t *q)
{
    for (int j = 0; j < k; j++) wr[j] = w[perm[j]];
    for (int j = 0; j < k; j++) {
        const int col = perm[j];
        const int qi = (!keep || keep[col]) ? round_clamp(wr[j] / s, qmax) : 0;
        q[col] = (int8_t)qi;
        const double err = (wr[j] - (double)qi * s) / u[(size_t)j * k + j];
        const double *ur = u + (size_t)j * k;
        for (int t = j + 1; t < k; t++) wr[t] -= err * ur[t];
    }
}

tml_status tml_gptq_rows(int rows, int k, const float *w, const double *h, const uint8_t *keep, int qmax, int per_tensor,
                         float *scale, int8_t *q)
{
    size_t kk = (size_t)k * (size_t)k;
    double *hp = malloc(sizeof(double) * kk), *u = malloc(sizeof(double) * kk), *tmp = malloc(sizeof(double) * kk);
    double *wr = malloc(sizeof(double) * (size_t)k);
    int *perm = malloc(sizeof(int) * (size_t)k);
    tml_status st = TML_OK;
    if (!hp || !u || !tmp || !wr || !perm) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* act order: columns by decreasing H diagonal (ties by index: deterministic) */
    for (int j = 0; j < k; j++) perm[j] = j;
    for (int j = 1; j < k; j++) {
        int v = perm[j], t = j;
        while (t > 0 && h[(size_t)perm[t - 1] * k + perm[t - 1]] < h[(size_t)v * k + v]) {
            perm[t] = perm[t - 1];
            t--;
        }
        perm[t] = v;
    }
    double mean_d = 0.0;
    for (int j = 0; j < k; j++) mean_d += h[(size_t)j * k + j];
    mean_d = mean_d > 0.0 ? mean_d / k : 1.0;

    /* permuted H, dampened by 1% of its mean diagonal (more if needed), with
     * dead inputs (never nonzero on the calibration data) made harmless */
    for (double damp = 0.01;; damp *= 10.0) {
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) hp[(size_t)a * k + b] = h[(size_t)perm[a] * k + perm[b]];
        for (int a = 0; a < k; a++) {
            if (!(hp[(size_t)a * k + a] > 0.0)) hp[(size_t)a * k + a] = mean_d;
            hp[(size_t)a * k + a] += damp * mean_d;
        }
        if (cholesky(hp, k) == 0 && inverse_upper_factor(hp, k, u, tmp) == 0) break;
        if (damp > 1e3) {
            st = tml_error(TML_ERR_INVALID, "input statistics are not positive definite (k = %d)", k);
            goto out;
        }
    }

    /* The scale: at 4 bits and more, nearest rounding's max-abs one, so
     * adaptive rounding only changes which grid point each weight takes; at
     * 2 and 3 bits, the clipping (1.00 .. 0.50 of max |w|) of least
     * H-diagonal-weighted rounding error, since with 3 or 7 levels the few
     * largest weights cost every other one its resolution. Measured (test
     * split, 3 seeds): clipping at 4 bits gained ~0.1 point on LeNet-5 but
     * lost 0.6-0.8 on mobilenet-tiny (its 3x3 depthwise channels over-clip);
     * at 3 and 2 bits it is worth 0.6 and 4.7 points on LeNet-5. */
    {
        double *d = tmp; /* H's diagonal, natural order */
        for (int j = 0; j < k; j++) d[j] = h[(size_t)j * k + j] > 0.0 ? h[(size_t)j * k + j] : 0.0;
        const int clip = qmax <= 3;
        double amax_all = 0.0;
        for (int64_t i = 0; i < (int64_t)rows * k; i++) amax_all = fmax(amax_all, fabs((double)w[i]));
        const float s_all = clip ? clip_scale(rows, k, w, d, qmax) : amax_all > 0.0 ? (float)(amax_all / qmax) : 1.0f;
        for (int r = 0; r < rows; r++) {
            const float *wrow = w + (size_t)r * k;
            if (per_tensor) {
                scale[r] = s_all;
            } else if (clip) {
                scale[r] = clip_scale(1, k, wrow, d, qmax);
            } else {
                double amax = 0.0;
                for (int j = 0; j < k; j++) amax = fmax(amax, fabs((double)wrow[j]));
                scale[r] = amax > 0.0 ? (float)(amax / qmax) : 1.0f;
            }
        }
        for (int r = 0; r < rows; r++)
            gptq_row(k, w + (size_t)r * k, keep ? keep + (size_t)r * k : NULL, perm, u, scale[r], qmax, wr, q + (size_t)r * k);
    }
out:
    free(hp);
    free(u);
    free(tmp);
    free(wr);
    free(perm);
    return st;
}

/*
 * Adaptive rounding of node n's weights (GPTQ on the calibration inputs'
 * second moments, gptq.c): fills s (oc) and q. Returns 0 when the layer has
 * no statistics (grouped conv, too many taps) or the form does not allow it
 * (a codebook keeps its shared values; a per-tensor depthwise scale), and the
 * nearest rounding already in s / q stays.
 */
int tml_gptq_node(const tml_model *m, int node, const tml_hessian *hs, int per_tensor, int qmax, float *s, int8_t *q,
                  tml_status *st)
{
    const tml_node *n = &m->nodes[node];
    const tml_tensor *w = &m->tensors[n->in[1]];
    *st = TML_OK;
    if (!hs || !hs->h || w->cb) return 0;
    const float *wf = w->data;
    int64_t cnt = tml_tensor_numel(w);
    uint8_t *keep = NULL;
    if (w->pruned) {
        keep = malloc((size_t)cnt);
        if (!keep) {
            *st = tml_error(TML_ERR_NOMEM, "out of memory");
            return 0;
        }
    }
    if (n->op != TML_OP_DEPTHWISE_CONV2D) {
        int oc = w->dims[0], k = (int)(cnt / oc);
        if (k != hs->k) {
            free(keep);
            return 0;
        }
        for (int64_t i = 0; keep && i < cnt; i++) keep[i] = wf[i] != 0.0f;
        *st = tml_gptq_rows(oc, k, wf, hs->h, keep, qmax, per_tensor, s, q);
        free(keep);
        return *st == TML_OK;
    }
    /* depthwise (1, kh, kw, C*M): output channel c is the strided column c, with
     * the statistics of its input channel c / M */
    int oc = w->dims[3], k = hs->k, mult = oc / hs->n_mats;
    float *row = malloc(sizeof(float) * (size_t)k);
    int8_t *qr = malloc((size_t)k);
    uint8_t kr[4096];
    if (per_tensor || k != w->dims[1] * w->dims[2] || k > 4096 || !row || !qr) {
        *st = (!row || !qr) ? tml_error(TML_ERR_NOMEM, "out of memory") : TML_OK;
        free(row);
        free(qr);
        free(keep);
        return 0;
    }
    for (int c = 0; c < oc && !*st; c++) {
        for (int t = 0; t < k; t++) {
            row[t] = wf[(int64_t)t * oc + c];
            kr[t] = row[t] != 0.0f;
        }
        *st = tml_gptq_rows(1, k, row, hs->h + (size_t)(c / mult) * (size_t)k * (size_t)k, w->pruned ? kr : NULL, qmax, 0,
                            &s[c], qr);
        for (int t = 0; t < k; t++) q[(int64_t)t * oc + c] = qr[t];
    }
    free(row);
    free(qr);
    free(keep);
    return *st == TML_OK;
}
