/*
 * export_c.c - C source export of an INT8 model (tml_export.h; the user's
 * guide is docs/deploy.md, the kernels are in export_kernels.c).
 *
 * 1. Validate: the model is integer-only and the integer engine's prepare
 *    accepts it (same dtypes, parameters and ops), so the export runs exactly
 *    what `tinyml eval` runs.
 * 2. Plan the arena: tml_plan_activations (liveness, reshape/dropout alias,
 *    16-byte device alignment) gives every activation an offset; each conv's
 *    patch buffer goes to the lowest arena bytes that no tensor live during
 *    that layer occupies (the same lifetimes as the planner), so it usually
 *    costs no RAM at all.
 * 3. Lower every conv / depthwise / dense to a matrix (rows = output channels,
 *    cols = taps; depthwise transposed to (c*mult, kh*kw)) with per-row Q31
 *    multipliers and shifts (tml_quantize_multiplier on the same doubles as
 *    the engine) and the input zero point folded into the bias.
 * 4. Choose each matrix's storage by bytes: dense int8, sparse (relative
 *    8-bit column gaps + int8 values + row pointers), clustered (int8 codebook
 *    + packed b-bit indices), sparse + clustered, or packed low-bit weights
 *    (4 or 2 bits each, for layers quantized below 8 bits). Low-bit layers of
 *    other widths (3, 5..7 bits) take the clustered forms with the identity
 *    codebook of their grid: b bits per weight.
 * 5. Emit <base>.h and <base>.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "export_internal.h"
#include "tinyml/tml_engine.h"
#include "tinyml/tml_export.h"
#include "tinyml/tml_ops_s8.h"
#include "tinyml/tml_schedule.h"

#define EX_ALIGN 16 /* TML_PLAN_ALIGN_DEVICE: what tml_plan_activations uses */
#define EX_NENC 7   /* indices DENSE..PACKED of tml_export_enc, then EX_SC8 */
/* sparse + cluster with one byte per entry (gap in the low 8 - bits bits, the
 * centroid index above): a second encoding of TML_EXPORT_SPARSE_CLUSTER,
 * smaller than gap byte + packed index when the gaps are short, and decoded
 * in two instructions */
#define EX_SC8 6

/* Sizes of the generated parameter structs on a 32-bit target (4-byte ints
 * and pointers): wmat 28 words, conv_t 14 words + a wmat, pool_t and add_t
 * 13 words. Counted as const data. */
#define EX_WMAT_BYTES 112
#define EX_CONV_BYTES (56 + EX_WMAT_BYTES)
#define EX_POOL_BYTES 52
#define EX_ADD_BYTES 52

const char *tml_export_optimize_name(tml_export_optimize o)
{
    switch (o) {
    case TML_EXPORT_OPT_SPEED: return "speed";
    case TML_EXPORT_OPT_SIZE: return "size";
    default: return "balanced";
    }
}

tml_status tml_export_optimize_from_model(const tml_model *m, tml_export_optimize *o, int *found)
{
    *o = TML_EXPORT_OPT_BALANCED;
    *found = 0;
    if (!m->meta.extra || !m->meta.extra[0]) return TML_OK;
    cJSON *root = cJSON_Parse(m->meta.extra);
    if (!root) return TML_OK; /* the reader checked it; nothing of ours in it */
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "export");
    tml_status st = TML_OK;
    if (e) {
        const cJSON *g = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "optimize") : NULL;
        static const tml_export_optimize goals[] = {TML_EXPORT_OPT_BALANCED, TML_EXPORT_OPT_SPEED, TML_EXPORT_OPT_SIZE};
        int ok = 0;
        for (size_t i = 0; cJSON_IsString(g) && i < sizeof goals / sizeof goals[0]; i++)
            if (strcmp(g->valuestring, tml_export_optimize_name(goals[i])) == 0) {
                *o = goals[i];
                ok = 1;
            }
        if (ok) *found = 1;
        else
            st = tml_error(TML_ERR_FORMAT,
                           "metadata \"export\" must be {\"optimize\": \"balanced\" | \"speed\" | \"size\"}");
    }
    cJSON_Delete(root);
    return st;
}

tml_status tml_export_optimize_to_model(tml_model *m, tml_export_optimize o)
{
    char v[48];
    snprintf(v, sizeof v, "{\"optimize\":\"%s\"}", tml_export_optimize_name(o));
    return tml_meta_extra_set(&m->meta, "export", v);
}

const char *tml_export_enc_name(tml_export_enc e)
{
    switch (e) {
    case TML_EXPORT_AUTO: return "auto";
    case TML_EXPORT_DENSE: return "dense";
    case TML_EXPORT_SPARSE: return "sparse";
    case TML_EXPORT_CLUSTER: return "cluster";
    case TML_EXPORT_SPARSE_CLUSTER: return "sparse+cluster";
    case TML_EXPORT_PACKED: return "packed";
    default: return "-";
    }
}

void tml_export_opts_default(tml_export_opts *o)
{
    memset(o, 0, sizeof *o);
    o->prefix = "model_";
    o->weights = TML_EXPORT_AUTO;
}

/* ---- the lowered model ------------------------------------------------------------------ */

/* A conv / depthwise / dense layer as a (rows, cols) matrix. */
typedef struct xmat {
    int rows, cols;
    int stride;         /* cols rounded up to 4: the dense form's row length and the
                           per-pixel input stride of the matrix kernels */
    int depthwise;      /* a depthwise layer: (c*mult, kh*kw) transposed from the model */
    int8_t *w;          /* (rows, cols) */
    uint8_t *idx;       /* (rows, cols) codebook index of each weight, or NULL */
    int8_t *book;       /* (n_books, k) centroids */
    int n_books, k, bits;
    int *zero_idx;      /* (n_books) index of the centroid 0, or -1 */
    int32_t *bias;      /* (rows) folded: bias - in_zp * row sum */
    int32_t *mult;      /* (rows) */
    int8_t *shift;      /* (rows) */
    int32_t out_zp, act_min, act_max;
    int64_t nnz;        /* nonzero weights */
    int64_t entries;    /* sparse entries, fillers included */
    int sparse_cluster_ok; /* every row needing fillers has a zero centroid */
    int synth_cb;       /* the codebook is the identity of a low-bit grid (no clustering) */
    int pbits;          /* packed form: 4 or 2 bits per weight (0: not applicable) */
    int prow;           /* packed form: bytes of a pair of rows (whole 32-bit words) */
    int64_t entries8;   /* entries of the one-byte encoding (gaps up to 2^gbits - 1) */
    int gbits;          /* its gap bits: 8 - bits */
    int sc8_ok;
    int64_t bytes[EX_NENC]; /* bytes of each form, -1 = not applicable */
    int64_t est[EX_NENC];   /* estimated instructions of each form (est_instr), -1 = n/a */
    int dsp_unsafe;     /* some accumulator may reach 2^30: the DSP requantization's
                           32-bit rounding could overflow there, so the model gets the
                           portable kernels only */
    tml_export_enc enc;
} xmat;

typedef struct xnode {
    char id[72];        /* C identifier of the layer's symbols */
    xmat *mat;
    int64_t patch_bytes; /* kernel scratch (conv patch, int16 inputs), 0 = none */
    int64_t patch_off;
    int batch;          /* DSP conv: output pixels per batch (conv_t.batch) */
} xnode;

typedef struct ex {
    const tml_model *m;
    tml_export_opts o;
    int dsp;            /* emit the DSP kernels too (TML_DSP at compile time) */
    char base[64], upper[64]; /* file base name; macro prefix (upper-case prefix) */
    int64_t *off;       /* (n_tensors) arena offsets */
    int *root, *start, *end; /* (n_tensors) buffer owner and its lifetime in node indices */
    xnode *nodes;       /* (n_nodes) */
    int64_t plan_bytes, arena_bytes, pair_bytes;
    tml_schedule *sched; /* opts.schedule: the memory schedule the run function replays */
    tml_exs_node *exs;   /* (n_nodes) how it calls each layer */
} ex;

static int64_t align_up(int64_t v) { return (v + EX_ALIGN - 1) / EX_ALIGN * EX_ALIGN; }

static int is_alias(tml_op op) { return op == TML_OP_RESHAPE || op == TML_OP_DROPOUT; }

static int is_weighted(tml_op op)
{
    return op == TML_OP_CONV2D || op == TML_OP_DEPTHWISE_CONV2D || op == TML_OP_DENSE;
}

static int64_t act_bytes(const tml_model *m, int t) { return tml_tensor_numel(&m->tensors[t]); }

static void xmat_free(xmat *x)
{
    if (!x) return;
    free(x->w);
    free(x->idx);
    free(x->book);
    free(x->zero_idx);
    free(x->bias);
    free(x->mult);
    free(x->shift);
    free(x);
}

static float qscale(const tml_tensor *t) { return t->q.scale[0]; }
static int32_t qzp(const tml_tensor *t) { return t->q.zero_point[0]; }

/* ---- checks --------------------------------------------------------------------------------- */

tml_status tml_export_check_prefix(const char *p)
{
    if (!p) return tml_error(TML_ERR_INVALID, "no symbol prefix given");
    size_t n = strlen(p);
    if (n == 0 || n > 40)
        return tml_error(TML_ERR_INVALID, "symbol prefix '%s': give 1 to 40 characters (e.g. model_)", p);
    if (!((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')))
        return tml_error(TML_ERR_INVALID, "symbol prefix '%s' must start with a letter", p);
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return tml_error(TML_ERR_INVALID, "symbol prefix '%s' is not a C identifier: use letters, digits and '_'", p);
    }
    return TML_OK;
}

/* Everything the integer engine checks (dtypes, quantization parameters,
 * ops): preparing an engine is the definition of "runs integer-only". */
static tml_status check_model(const tml_model *m)
{
    const char *nm = m->meta.name ? m->meta.name : "model";
    if (!tml_model_is_quantized(m))
        return tml_error(TML_ERR_UNSUPPORTED,
                         "'%s' is a float model: the C export needs an integer-only INT8 model; quantize first: "
                         "tinyml quantize MODEL --calib fashion-mnist -o MODEL-int8.tmf",
                         nm);
    tml_engine *e = NULL;
    tml_status st = tml_engine_new(m, 1, NULL, &e);
    if (st) return tml_error_context(st, "cannot export '%s'", nm);
    tml_engine_free(e);
    for (int t = 0; t < m->n_tensors; t++) {
        const tml_tensor *x = &m->tensors[t];
        if (x->kind == TML_TENSOR_ACT && tml_tensor_numel(x) > INT32_MAX / 2)
            return tml_error(TML_ERR_UNSUPPORTED, "tensor '%s' is too large for a device", x->name);
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        switch (n->op) {
        case TML_OP_CONV2D:
        case TML_OP_DEPTHWISE_CONV2D:
        case TML_OP_DENSE:
        case TML_OP_RELU:
        case TML_OP_RELU6:
        case TML_OP_MAXPOOL:
        case TML_OP_AVGPOOL:
        case TML_OP_GLOBAL_AVGPOOL:
        case TML_OP_ADD:
        case TML_OP_RESHAPE:
        case TML_OP_SOFTMAX:
        case TML_OP_DROPOUT: break;
        default:
            return tml_error(TML_ERR_UNSUPPORTED, "node '%s': op %s has no exported kernel", n->name, tml_op_name(n->op));
        }
    }
    return TML_OK;
}

/* ---- names ------------------------------------------------------------------------------------ */

/* C identifiers for the layers' symbols: the node name with other
 * characters as '_', a leading 'l' when it does not start with a letter,
 * and the node index appended when two names collide. */
static void make_ids(ex *x)
{
    const tml_model *m = x->m;
    for (int i = 0; i < m->n_nodes; i++) {
        char *id = x->nodes[i].id;
        const char *s = m->nodes[i].name ? m->nodes[i].name : "";
        size_t j = 0;
        if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z'))) id[j++] = 'l';
        for (; *s && j < 48; s++) {
            char c = *s;
            id[j++] = ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c : '_';
        }
        id[j] = '\0';
        for (int k = 0; k < i; k++)
            if (strcmp(x->nodes[k].id, id) == 0) {
                snprintf(id + j, sizeof x->nodes[i].id - j, "_%d", i);
                break;
            }
    }
}

/* Text for a C comment: printable ASCII without the characters that could
 * end the comment or form trigraphs. */
static void comment_text(const char *s, char *out, size_t cap)
{
    size_t j = 0;
    for (; s && *s && j + 1 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        out[j++] = (c < 32 || c > 126 || c == '*' || c == '/' || c == '?' || c == '\\') ? '_' : (char)c;
    }
    out[j] = '\0';
}

static void shape_text(const tml_tensor *t, char *out, size_t cap)
{
    size_t j = 0;
    out[0] = '\0';
    for (int d = 0; d < t->ndim && j < cap; d++)
        j += (size_t)snprintf(out + j, cap - j, "%s%d", d ? "x" : "", (int)t->dims[d]);
}

/* ---- arena ------------------------------------------------------------------------------------- */

/* Lifetimes exactly as tml_plan_buffers computes them: a buffer (the root of
 * an alias chain) lives from its producer (-1 for the graph input) to its
 * last reader (n_nodes for the graph output). */
static void lifetimes(ex *x)
{
    const tml_model *m = x->m;
    int nt = m->n_tensors, nn = m->n_nodes;
    for (int t = 0; t < nt; t++) {
        x->root[t] = m->tensors[t].kind == TML_TENSOR_ACT ? t : -1;
        x->start[t] = x->end[t] = -2;
    }
    for (int i = 0; i < nn; i++)
        if (is_alias(m->nodes[i].op)) x->root[m->nodes[i].out] = x->root[m->nodes[i].in[0]];
    x->start[x->root[m->input]] = -1;
    if (x->end[x->root[m->input]] < -1) x->end[x->root[m->input]] = -1;
    for (int i = 0; i < nn; i++) {
        const tml_node *n = &m->nodes[i];
        int r = x->root[n->out];
        if (x->start[r] == -2) x->start[r] = i;
        if (x->end[r] < i) x->end[r] = i;
        for (int j = 0; j < n->n_in; j++) {
            int t = n->in[j];
            if (t < 0 || x->root[t] < 0) continue;
            if (x->end[x->root[t]] < i) x->end[x->root[t]] = i;
        }
    }
    x->end[x->root[m->output]] = nn;
}

/* The lowest 16-byte aligned offset where `bytes` fit beside every buffer
 * live at node i: 0 or the end of a live buffer, the first that collides
 * with none (the planner's own heuristic). */
static int64_t place_patch(const ex *x, int i, int64_t bytes)
{
    const tml_model *m = x->m;
    int64_t best = -1;
    for (int c = -1; c < m->n_tensors; c++) {
        int64_t cand;
        if (c < 0)
            cand = 0;
        else {
            if (x->root[c] != c || x->start[c] == -2 || x->start[c] > i || x->end[c] < i) continue;
            cand = x->off[c] + align_up(act_bytes(m, c));
        }
        if (best >= 0 && cand >= best) continue;
        int ok = 1;
        for (int t = 0; t < m->n_tensors && ok; t++) {
            if (x->root[t] != t || x->start[t] == -2 || x->start[t] > i || x->end[t] < i) continue;
            if (cand < x->off[t] + align_up(act_bytes(m, t)) && x->off[t] < cand + bytes) ok = 0;
        }
        if (ok) best = cand;
    }
    return best;
}

/* Does node i run as conv2d() over a weight matrix (with a patch unless it
 * is a 1x1 conv without padding or groups)? Depthwise layers with dense
 * weights run dwconv(), which reads the input directly. */
static int uses_conv2d(const ex *x, int i)
{
    const tml_node *n = &x->m->nodes[i];
    if (n->op == TML_OP_CONV2D) return 1;
    return n->op == TML_OP_DEPTHWISE_CONV2D && x->nodes[i].mat && x->nodes[i].mat->enc != TML_EXPORT_DENSE;
}

static tml_status plan_arena(ex *x)
{
    const tml_model *m = x->m;
    tml_status st = tml_plan_activations(m, 1, x->off, &x->plan_bytes);
    if (st) return st;
    lifetimes(x);
    x->arena_bytes = x->plan_bytes;
    x->pair_bytes = align_up(act_bytes(m, m->input));
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        x->nodes[i].patch_off = -1;
        if (is_alias(n->op)) continue;
        /* lower bound: this layer's distinct activation buffers, all live at once */
        int seen[TML_MAX_NODE_INPUTS + 1], ns = 0;
        int64_t pair = 0;
        for (int j = 0; j <= n->n_in; j++) {
            int t = j < n->n_in ? n->in[j] : n->out;
            if (t < 0 || x->root[t] < 0) continue;
            int r = x->root[t], dup = 0;
            for (int k = 0; k < ns; k++) dup |= seen[k] == r;
            if (dup) continue;
            seen[ns++] = r;
            pair += align_up(act_bytes(m, r));
        }
        if (pair > x->pair_bytes) x->pair_bytes = pair;
    }
    return TML_OK;
}

/* A 1x1 conv without groups whose every output pixel reads one input pixel
 * inside the input, with channels a multiple of 4: conv2d() (DSP) widens
 * the input pixels in place. */
static int is_direct(const tml_model *m, const tml_node *n)
{
    const tml_tensor *in = &m->tensors[n->in[0]], *y = &m->tensors[n->out];
    if (n->op != TML_OP_CONV2D || n->kh != 1 || n->kw != 1 || n->groups != 1 || in->dims[2] % 4) return 0;
    int last_y = (y->dims[0] - 1) * n->sh - n->pad[0], last_x = (y->dims[1] - 1) * n->sw - n->pad[1];
    return n->pad[0] <= 0 && n->pad[1] <= 0 && last_y < in->dims[0] && last_x < in->dims[1];
}

/* Bytes of the activation buffers live at node i (aliases counted once). */
static int64_t live_bytes(const ex *x, int i)
{
    const tml_model *m = x->m;
    int64_t sum = 0;
    for (int t = 0; t < m->n_tensors; t++)
        if (x->root[t] == t && x->start[t] != -2 && x->start[t] <= i && x->end[t] >= i) sum += align_up(act_bytes(m, t));
    return sum;
}

/* After the weight forms are chosen: the scratch of every conv2d() and
 * (DSP) dense() call, at the lowest arena bytes free during that layer.
 * conv2d gathers the receptive field of one pixel as int8 at the matrix
 * stride (portable) or of two pixels as int16 (DSP); dense widens its input
 * to int16 (DSP). */
static void place_patches(ex *x)
{
    const tml_model *m = x->m;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        xnode *xn = &x->nodes[i];
        xn->batch = 1;
        if (!xn->mat) continue;
        int64_t st = xn->mat->stride;
        if (uses_conv2d(x, i) && x->dsp) {
            /* batches of pixels: pairs (dense) or quads; as many as one
             * output row has (at most 32) while the scratch fits in bytes
             * the arena has free during the layer, else the smallest */
            const int pairs = xn->mat->enc == TML_EXPORT_DENSE || xn->mat->enc == TML_EXPORT_PACKED;
            int G = pairs ? 2 : 4, ow = m->tensors[n->out].dims[1];
            int64_t gathers = is_direct(m, n) ? 0 : G * st;
            int best = G;
            for (int nb = ow < 32 ? ow : 32; nb > G; nb--) {
                if (nb % G && nb != ow) continue; /* whole pairs / quads, or the whole row */
                int64_t bytes = 2 * ((nb + G - 1) / G * G) * st + gathers;
                int64_t off = place_patch(x, i, bytes);
                if (off + align_up(bytes) <= x->arena_bytes) {
                    best = nb;
                    break;
                }
            }
            xn->batch = best;
            xn->patch_bytes = 2 * ((best + G - 1) / G * G) * st + gathers;
        } else if (uses_conv2d(x, i)) {
            xn->patch_bytes = st;
        } else if (n->op == TML_OP_DENSE && x->dsp && xn->mat->enc == TML_EXPORT_DENSE) {
            /* a dense layer's int16 input saves ~0.2 instructions per MAC;
             * not worth RAM beyond the arena (unless optimizing for speed) */
            xn->patch_bytes = 2 * st;
            int64_t off = place_patch(x, i, xn->patch_bytes);
            if (x->o.optimize != TML_EXPORT_OPT_SPEED && off + align_up(xn->patch_bytes) > x->arena_bytes) {
                xn->patch_bytes = 0;
                continue;
            }
        } else if (n->op == TML_OP_DENSE && x->dsp && xn->mat->enc == TML_EXPORT_PACKED) {
            xn->patch_bytes = 2 * st; /* the int16 input mm_packed (DSP) reads */
        } else
            continue;
        xn->patch_off = place_patch(x, i, xn->patch_bytes);
        if (xn->patch_off + align_up(xn->patch_bytes) > x->arena_bytes)
            x->arena_bytes = xn->patch_off + align_up(xn->patch_bytes);
    }
}

/* With a memory schedule: each layer's kernel and scratch (as place_patches
 * sizes them), the schedule with that scratch in its arena (export_sched.c),
 * the arena it needs. */
static tml_status plan_schedule(ex *x)
{
    const tml_model *m = x->m;
    x->exs = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof *x->exs);
    x->sched = calloc(1, sizeof *x->sched);
    if (!x->exs || !x->sched) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        xnode *xn = &x->nodes[i];
        tml_exs_node *e = &x->exs[i];
        e->id = xn->id;
        e->dense_off = -1;
        xn->patch_off = -1;
        xn->patch_bytes = 0;
        xn->batch = 1;
        if (!xn->mat) continue;
        int64_t st = xn->mat->stride;
        if (uses_conv2d(x, i)) {
            /* DSP: the smallest batch of conv2d, one pair (dense, packed) or quad of pixels */
            int G = xn->mat->enc == TML_EXPORT_DENSE || xn->mat->enc == TML_EXPORT_PACKED ? 2 : 4;
            e->conv2d = 1;
            xn->batch = x->dsp ? G : 1;
            e->scratch_fast = !x->dsp ? st : 2 * G * st + (is_direct(m, n) ? 0 : G * st);
            e->scratch_lean = st; /* conv2d_lean (DSP) or the portable conv2d */
            int groups = n->op == TML_OP_CONV2D ? n->groups : m->tensors[n->in[0]].dims[2];
            e->lean_ok = x->dsp && !(xn->mat->enc == TML_EXPORT_DENSE && groups > 1);
        } else if (n->op == TML_OP_DENSE && x->dsp &&
                   (xn->mat->enc == TML_EXPORT_DENSE || xn->mat->enc == TML_EXPORT_PACKED)) {
            /* where bytes are free anyway; else the kernels' int8-vector path */
            e->dense_scratch = 2 * st;
        }
    }
    tml_status st = tml_exs_plan(m, x->o.schedule, x->dsp, x->exs, x->sched);
    if (st) return st;
    x->arena_bytes = x->sched->arena_bytes;
    for (int q = 0; q < x->sched->n_steps; q++) {
        const tml_sched_step *p = &x->sched->steps[q];
        if (p->kind != TML_STEP_RUN || p->scratch < 0) continue;
        xnode *xn = &x->nodes[p->node];
        xn->patch_off = x->sched->buffers[p->scratch].offset;
        xn->patch_bytes = x->sched->buffers[p->scratch].bytes;
    }
    return TML_OK;
}

/* ---- lowering a weighted layer ----------------------------------------------------------------- */

static int bits_for(int k)
{
    int b = 1;
    while ((1 << b) < k) b++;
    return b;
}

/* Sparse entries of row r (fillers included) with gaps up to max_gap, and
 * whether it needs fillers. */
static int64_t row_entries(const xmat *x, int r, int max_gap, int *fillers)
{
    int64_t e = 0;
    int cur = 0;
    *fillers = 0;
    for (int k = 0; k < x->cols; k++) {
        if (!x->w[(int64_t)r * x->cols + k]) continue;
        int g = k - cur;
        while (g > max_gap) {
            e++;
            g -= max_gap;
            *fillers = 1;
        }
        e++;
        cur = k;
    }
    return e;
}

/* The codebook of weight tensor `w` when it reproduces the int8 data
 * exactly (the quantizer guarantees it; anything else is ignored). */
static int codebook_usable(const tml_tensor *w, int depthwise)
{
    const tml_codebook *cb = w->cb;
    if (!cb || !cb->centroids || !cb->index || cb->k < 1 || cb->k > 256) return 0;
    if (cb->n_books != 1 && (depthwise || cb->n_books != w->dims[0])) return 0;
    for (int64_t j = 0; j < (int64_t)cb->n_books * cb->k; j++) {
        float c = cb->centroids[j];
        if (!(c >= -128.0f && c <= 127.0f) || c != floorf(c)) return 0;
    }
    int64_t n = tml_tensor_numel(w), per = n / cb->n_books;
    const int8_t *d = w->data;
    for (int64_t i = 0; i < n; i++) {
        if (cb->index[i] >= cb->k) return 0;
        if ((float)d[i] != cb->centroids[(i / per) * cb->k + cb->index[i]]) return 0;
    }
    return 1;
}

static tml_status lower(const ex *x, const tml_node *n, xmat **out)
{
    const tml_model *m = x->m;
    const tml_tensor *in = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out];
    const tml_tensor *b = (n->n_in > 2 && n->in[2] >= 0) ? &m->tensors[n->in[2]] : NULL;
    int dw = n->op == TML_OP_DEPTHWISE_CONV2D;
    xmat *xm = calloc(1, sizeof *xm);
    if (!xm) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (n->op == TML_OP_DENSE) {
        xm->rows = w->dims[0];
        xm->cols = w->dims[1];
    } else if (dw) {
        xm->rows = w->dims[3];
        xm->cols = w->dims[1] * w->dims[2];
    } else {
        xm->rows = w->dims[0];
        xm->cols = w->dims[1] * w->dims[2] * w->dims[3];
    }
    xm->stride = (xm->cols + 3) & ~3;
    xm->depthwise = dw;
    int64_t numel = (int64_t)xm->rows * xm->cols;
    int use_cb = codebook_usable(w, dw);
    /* low-bit weights without a codebook of their own can take the clustered
     * forms with the identity codebook of their grid (index = weight + 2^(b-1)):
     * b-bit indices, any width; the sparse + clustered form for pruned ones */
    const int synth = !use_cb && w->qbits >= 2 && w->qbits <= 7, soff = synth ? 1 << (w->qbits - 1) : 0;
    xm->synth_cb = synth;
    if (synth) use_cb = 1;
    xm->w = malloc((size_t)numel);
    xm->bias = malloc(sizeof(int32_t) * (size_t)xm->rows);
    xm->mult = malloc(sizeof(int32_t) * (size_t)xm->rows);
    xm->shift = malloc((size_t)xm->rows);
    if (use_cb) {
        xm->idx = malloc((size_t)numel);
        xm->n_books = synth ? 1 : w->cb->n_books;
        xm->k = synth ? 1 << w->qbits : w->cb->k;
        xm->bits = bits_for(xm->k);
        xm->book = malloc((size_t)xm->n_books * (size_t)xm->k);
        xm->zero_idx = malloc(sizeof(int) * (size_t)xm->n_books);
    }
    if (!xm->w || !xm->bias || !xm->mult || !xm->shift || (use_cb && (!xm->idx || !xm->book || !xm->zero_idx))) {
        xmat_free(xm);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    /* weights (depthwise transposed from (1, kh, kw, c*m) to (c*m, kh*kw)) */
    const int8_t *wd = w->data;
    for (int r = 0; r < xm->rows; r++)
        for (int k = 0; k < xm->cols; k++) {
            int64_t src = dw ? (int64_t)k * xm->rows + r : (int64_t)r * xm->cols + k;
            xm->w[(int64_t)r * xm->cols + k] = wd[src];
            if (use_cb) xm->idx[(int64_t)r * xm->cols + k] = synth ? (uint8_t)(wd[src] + soff) : w->cb->index[src];
        }
    if (use_cb) {
        for (int bk = 0; bk < xm->n_books; bk++) {
            xm->zero_idx[bk] = -1;
            for (int j = 0; j < xm->k; j++) {
                int8_t v = synth ? (int8_t)(j - soff) : (int8_t)w->cb->centroids[(int64_t)bk * xm->k + j];
                xm->book[(int64_t)bk * xm->k + j] = v;
                if (v == 0 && xm->zero_idx[bk] < 0) xm->zero_idx[bk] = j;
            }
        }
    }
    /* requantization: the engine's multipliers (engine_q8.c prep_weighted) */
    double sx = (double)qscale(in), sy = (double)qscale(y);
    int32_t zx = qzp(in);
    /* TFLite Micro's per-tensor fully connected multiplies the two scales in
     * float (as the engine does under TFLite rounding) */
    const int float_product = m->meta.rounding == TML_ROUNDING_TFLITE && n->op == TML_OP_DENSE && w->q.n == 1;
    for (int r = 0; r < xm->rows; r++) {
        double real = float_product ? (double)(qscale(in) * w->q.scale[0]) / sy
                                    : sx * (double)w->q.scale[w->q.n == 1 ? 0 : r] / sy;
        int32_t mult;
        int sh;
        tml_quantize_multiplier(real, &mult, &sh);
        xm->mult[r] = mult;
        xm->shift[r] = (int8_t)sh;
        int64_t sum = 0, abs_sum = 0;
        for (int k = 0; k < xm->cols; k++) {
            int v = xm->w[(int64_t)r * xm->cols + k];
            sum += v;
            abs_sum += v < 0 ? -v : v;
        }
        int64_t folded = (b ? (int64_t)((const int32_t *)b->data)[r] : 0) - (int64_t)zx * sum;
        /* |acc| <= |bias'| + 128 * sum |w| (inputs in [-128, 127]) */
        int64_t bound = (folded < 0 ? -folded : folded) + 128 * abs_sum;
        if (bound >= ((int64_t)1 << 30) - 1 || mult < 0) xm->dsp_unsafe = 1;
        if (folded < INT32_MIN || folded > INT32_MAX) {
            xmat_free(xm);
            return tml_error(TML_ERR_UNSUPPORTED, "node '%s': the bias with the input zero point folded in overflows int32",
                             n->name);
        }
        xm->bias[r] = (int32_t)folded;
    }
    xm->out_zp = qzp(y);
    if (m->meta.rounding == TML_ROUNDING_TFLITE)
        tml_act_bounds_s8_tfl(n->act, qscale(y), qzp(y), &xm->act_min, &xm->act_max);
    else
        tml_act_bounds_s8(n->act, qscale(y), qzp(y), &xm->act_min, &xm->act_max);

    /* sizes of the four forms */
    int fill_rows_ok = 1, fill8_ok = 1;
    xm->gbits = use_cb ? 8 - xm->bits : 0;
    for (int r = 0; r < xm->rows; r++) {
        int fillers;
        xm->entries += row_entries(xm, r, 255, &fillers);
        if (fillers && use_cb && xm->zero_idx[xm->n_books == 1 ? 0 : r] < 0) fill_rows_ok = 0;
        if (xm->gbits >= 2) {
            xm->entries8 += row_entries(xm, r, (1 << xm->gbits) - 1, &fillers);
            if (fillers && xm->zero_idx[xm->n_books == 1 ? 0 : r] < 0) fill8_ok = 0;
        }
        for (int k = 0; k < xm->cols; k++) xm->nnz += xm->w[(int64_t)r * xm->cols + k] != 0;
    }
    xm->sparse_cluster_ok = use_cb && fill_rows_ok;
    xm->sc8_ok = use_cb && xm->gbits >= 2 && fill8_ok;
    int64_t e1 = xm->entries ? xm->entries : 1;
    int64_t rowptr = (int64_t)(xm->rows + 1) * (xm->entries < 65536 ? 2 : 4);
    xm->bytes[0] = -1;
    xm->bytes[TML_EXPORT_DENSE] = dw ? numel : (int64_t)xm->rows * xm->stride;
    xm->bytes[TML_EXPORT_SPARSE] = 2 * e1 + rowptr;
    xm->bytes[TML_EXPORT_CLUSTER] = use_cb ? (numel * xm->bits + 7) / 8 + 1 + (int64_t)xm->n_books * xm->k : -1;
    xm->bytes[TML_EXPORT_SPARSE_CLUSTER] =
        xm->sparse_cluster_ok ? e1 + (xm->entries * xm->bits + 7) / 8 + 1 + rowptr + (int64_t)xm->n_books * xm->k : -1;
    /* low-bit weights: 2-bit ones in 2 bits, 3- and 4-bit ones in 4 (the
     * kernels unpack whole bytes of 2 or 4 fields); rows of whole words */
    xm->pbits = w->qbits == 2 ? 2 : (w->qbits == 3 || w->qbits == 4) ? 4 : 0;
    if (xm->pbits) {
        const int gpw = 8 / xm->pbits, groups = xm->stride / 4; /* groups of 4 columns per word, per row */
        xm->prow = (2 * groups + gpw - 1) / gpw * 4;
        xm->bytes[TML_EXPORT_PACKED] =
            (int64_t)(xm->rows / 2) * xm->prow + (xm->rows & 1) * (int64_t)((groups + gpw - 1) / gpw * 4);
        /* 2- and 4-bit weights as indices of the identity codebook would take
         * the same bytes with slower kernels: the packed form serves them (a
         * 3-bit layer keeps both: 4-bit packed, or 3-bit indices) */
        if (xm->synth_cb && xm->pbits == w->qbits) xm->bytes[TML_EXPORT_CLUSTER] = -1;
    } else {
        xm->bytes[TML_EXPORT_PACKED] = -1;
    }
    xm->bytes[EX_SC8] = xm->sc8_ok ? (xm->entries8 ? xm->entries8 : 1) +
                                         (int64_t)(xm->rows + 1) * (xm->entries8 < 65536 ? 2 : 4) +
                                         (int64_t)xm->n_books * xm->k
                                   : -1;
    *out = xm;
    return TML_OK;
}

/* Estimated instructions of one inference of a weighted layer in form f,
 * on a Cortex-M4 at -O2: the DSP kernels (dsp) or the portable ones. Rates
 * per multiply-accumulate executed (a dense form executes every weight
 * slot; the sparse forms only the stored entries), per output
 * (requantization) and per input value a conv gathers, fitted to counts of
 * tinyml profile on the zoo models and pruned / clustered LeNet-5s
 * (docs/deploy.md). An estimate for choosing forms; profile measures. */
static int64_t est_instr(const tml_model *m, const tml_node *n, const xmat *xm, tml_export_enc f, int dsp)
{
    const tml_tensor *y = &m->tensors[n->out];
    const int fc = n->op == TML_OP_DENSE;
    const double px = fc ? 1.0 : (double)y->dims[0] * y->dims[1];
    const double slots = px * xm->rows * xm->stride, weights = px * xm->rows * xm->cols, entries = px * xm->entries;
    const double outputs = px * xm->rows;
    int groups = 1;
    if (n->op == TML_OP_CONV2D) groups = n->groups;
    if (n->op == TML_OP_DEPTHWISE_CONV2D) groups = m->tensors[n->in[0]].dims[2];
    /* a conv's receptive fields: widened (DSP) or copied, a kernel row at a time */
    const double field = (double)n->kh * (12 + xm->cols / (4.0 * n->kh) * 2);
    /* grouped convs (and depthwise ones in a compact form) pay a gather and a
     * matrix call per group and pixel: ~300-400 instructions */
    double mac, out = dsp ? 20 : 30,
                gather = fc ? 0
                            : px * groups * ((dsp ? 2.0 * xm->stride : 1.0 * xm->cols) + field + 40 +
                                             (groups > 1 ? (dsp ? 300 : 400) : 0));
    if (xm->depthwise && f == TML_EXPORT_DENSE) { /* dwconv(): reads the input in place */
        mac = weights * (dsp ? 6.0 : 24.0);
        gather = 0;
    } else
        switch (f) {
        case TML_EXPORT_DENSE: /* + the set-up of each 2 x 2 block of rows and pixels */
            mac = slots * (dsp ? (fc ? 1.45 : 1.0) : 5.0) + (dsp && !fc ? outputs / 4 * 50 : 0);
            break;
        case TML_EXPORT_SPARSE: mac = entries * (dsp ? (fc ? 6.0 : 2.8) : 7.0); break;
        case TML_EXPORT_CLUSTER: mac = weights * (dsp ? (fc ? 11.0 : 3.6) : 13.0); break;
        case TML_EXPORT_SPARSE_CLUSTER: mac = entries * (dsp ? (fc ? 11.0 : 4.2) : 13.0); break;
        case TML_EXPORT_PACKED: /* dense's work + unpacking (~1.3x on LeNet-5 W4A8, DSP) */
            mac = slots * (dsp ? (fc ? 1.9 : 1.3) : 8.0) + (dsp && !fc ? outputs / 4 * 60 : 0);
            break;
        default: mac = px * xm->entries8 * (dsp ? (fc ? 8.0 : 3.2) : 9.0); break; /* EX_SC8 */
        }
    return (int64_t)(mac + out * outputs + gather);
}

/* The DSP add takes shifts <= 0, multipliers >= 0 and sums below 2^30
 * (tml_add_s8_prepare makes these for any scales: |a - zp| << 20 < 2^28). */
static int add_dsp_ok(const tml_model *m, const tml_node *n)
{
    if (n->op != TML_OP_ADD) return 1;
    const tml_tensor *a = &m->tensors[n->in[0]], *b = &m->tensors[n->in[1]], *y = &m->tensors[n->out];
    tml_add_s8_params ap;
    tml_add_s8_prepare_mode(qscale(a), qzp(a), qscale(b), qzp(b), qscale(y), qzp(y), n->act, m->meta.rounding, &ap);
    return ap.in1_shift <= 0 && ap.in2_shift <= 0 && ap.out_shift <= 0 && ap.in1_mult >= 0 && ap.in2_mult >= 0 &&
           ap.out_mult >= 0 && ap.left_shift <= 20;
}

/* Estimated instructions of a layer without weights (the same rates' kind). */
static int64_t est_op_instr(const tml_model *m, const tml_node *n, int dsp)
{
    const tml_tensor *y = &m->tensors[n->out];
    const double out = (double)tml_tensor_numel(y), taps = (double)n->kh * n->kw;
    switch (n->op) {
    case TML_OP_MAXPOOL:
        if (!dsp) return (int64_t)(out * taps * 7);
        return (int64_t)(n->kh == 2 && n->kw == 2 ? out / 4 * 11 + out / y->dims[2] * 8 : out / 4 * taps * 5 + out * 2);
    case TML_OP_AVGPOOL: return (int64_t)(out * (taps * 7 + 20));
    case TML_OP_GLOBAL_AVGPOOL: return (int64_t)(tml_tensor_numel(&m->tensors[n->in[0]]) * 4.0 + out * 20);
    case TML_OP_ADD: return (int64_t)(out * (dsp ? 40 : 140));
    case TML_OP_RELU:
    case TML_OP_RELU6: return (int64_t)(out * 6);
    case TML_OP_SOFTMAX: return (int64_t)(out * 60);
    default: return 0;
    }
}

/* The form of a matrix: forced (`want`, where it applies), or by the goal:
 * size: fewest bytes; speed: fewest estimated instructions; balanced: the
 * fewest instructions + TML_EXPORT_BALANCED_INSTR_PER_BYTE * bytes (a byte
 * of flash is worth that many instructions of one inference). code[f]: the
 * code bytes form f would add (its kernel, when no other layer uses it). */
static void choose(xmat *xm, tml_export_enc want, tml_export_optimize goal, const tml_model *m, const tml_node *n,
                   int dsp, const int64_t code[EX_NENC])
{
    for (int f = TML_EXPORT_DENSE; f < EX_NENC; f++)
        xm->est[f] = xm->bytes[f] >= 0 ? est_instr(m, n, xm, (tml_export_enc)f, dsp) : -1;
    if (want != TML_EXPORT_AUTO) {
        xm->enc = (want >= TML_EXPORT_DENSE && want < TML_EXPORT_NONE && xm->bytes[want] >= 0) ? want : TML_EXPORT_DENSE;
        /* sparse + cluster: the smaller of its two encodings */
        if (want == TML_EXPORT_SPARSE_CLUSTER && xm->bytes[EX_SC8] >= 0 &&
            (xm->bytes[want] < 0 || xm->bytes[EX_SC8] <= xm->bytes[want]))
            xm->enc = (tml_export_enc)EX_SC8;
        return;
    }
    xm->enc = TML_EXPORT_DENSE;
    for (int f = TML_EXPORT_SPARSE; f < EX_NENC; f++) {
        if (xm->bytes[f] < 0) continue;
        const int64_t b = xm->bytes[f] + code[f], i = xm->est[f], bb = xm->bytes[xm->enc] + code[xm->enc],
                      bi = xm->est[xm->enc];
        int better;
        if (goal == TML_EXPORT_OPT_SIZE)
            better = b < bb || (b == bb && i < bi);
        else if (goal == TML_EXPORT_OPT_SPEED)
            better = i < bi || (i == bi && b < bb);
        else
            better = i + TML_EXPORT_BALANCED_INSTR_PER_BYTE * b < bi + TML_EXPORT_BALANCED_INSTR_PER_BYTE * bb;
        if (better) xm->enc = (tml_export_enc)f;
    }
}

/* ---- emitting ------------------------------------------------------------------------------------ */

static void put_i32(tml_sb *s, int64_t v)
{
    if (v == INT32_MIN)
        tml_sb_puts(s, "(-2147483647 - 1)");
    else
        tml_sb_printf(s, "%lld", (long long)v);
}

typedef enum { A_I8, A_U8, A_U16, A_U32, A_I32 } atype;

/* `static const T name[n] = {...};` with 16 values per line; an empty array
 * is emitted with one 0 (C has no empty arrays). Returns its bytes. */
static int64_t put_array_a(tml_sb *s, atype t, const char *name, const char *suffix, const void *data, int64_t n,
                           const char *comment, int aligned);

static int64_t put_array(tml_sb *s, atype t, const char *name, const char *suffix, const void *data, int64_t n,
                         const char *comment)
{
    return put_array_a(s, t, name, suffix, data, n, comment, 0);
}

/* aligned: with TML_WALIGN (8-byte alignment where the compiler has it: the
 * DSP kernels load dense weights with LDRD) */
static int64_t put_array_a(tml_sb *s, atype t, const char *name, const char *suffix, const void *data, int64_t n,
                           const char *comment, int aligned)
{
    static const char *const ctype[] = {"int8_t", "uint8_t", "uint16_t", "uint32_t", "int32_t"};
    static const int size[] = {1, 1, 2, 4, 4};
    int64_t len = n > 0 ? n : 1;
    if (comment) tml_sb_printf(s, "/* %s */\n", comment);
    tml_sb_printf(s, "static const %s %s_%s[%lld]%s = {", ctype[t], name, suffix, (long long)len,
                  aligned ? " TML_WALIGN" : "");
    for (int64_t i = 0; i < len; i++) {
        int64_t v = 0;
        if (n > 0) switch (t) {
            case A_I8: v = ((const int8_t *)data)[i]; break;
            case A_U8: v = ((const uint8_t *)data)[i]; break;
            case A_U16: v = ((const uint16_t *)data)[i]; break;
            case A_U32: v = ((const uint32_t *)data)[i]; break;
            case A_I32: v = ((const int32_t *)data)[i]; break;
            }
        tml_sb_puts(s, i % 16 ? ", " : (i ? ",\n    " : "\n    "));
        if (t == A_I32) put_i32(s, v);
        else if (t == A_U32) tml_sb_printf(s, "%lluu", (unsigned long long)v);
        else tml_sb_printf(s, "%lld", (long long)v);
    }
    tml_sb_puts(s, "\n};\n");
    return len * size[t];
}

/* Row pointers (rows + 1 values): uint16 when they fit, else uint32. Returns
 * the bytes. row16 is scratch of rows + 1 values. */
static int64_t put_rows(tml_sb *s, const char *id, const uint32_t *row, uint16_t *row16, int rows, int wide,
                        const char *comment)
{
    if (wide) return put_array(s, A_U32, id, "row", row, rows + 1, comment);
    for (int r = 0; r <= rows; r++) row16[r] = (uint16_t)row[r];
    return put_array(s, A_U16, id, "row", row16, rows + 1, comment);
}

/* The arrays of a weighted layer and the wmat initializer fields; returns
 * the const bytes of the weights (form) in *wbytes and of the rest in *obytes. */
static tml_status put_matrix(tml_sb *s, const xmat *xm, const char *id, int64_t *wbytes, int64_t *obytes)
{
    int64_t wb = 0, ob = 0;
    int sparse = xm->enc == TML_EXPORT_SPARSE || xm->enc == TML_EXPORT_SPARSE_CLUSTER;
    int clustered = xm->enc == TML_EXPORT_CLUSTER || xm->enc == TML_EXPORT_SPARSE_CLUSTER;
    int row32 = xm->entries >= 65536;
    int64_t numel = (int64_t)xm->rows * xm->cols;
    if (xm->enc == (tml_export_enc)EX_SC8) {
        /* one byte per entry: gap | index << gbits; gaps past 2^gbits - 1 are
         * bridged by fillers holding the row's zero centroid */
        const int max_gap = (1 << xm->gbits) - 1, row32_8 = xm->entries8 >= 65536;
        uint8_t *ent = malloc((size_t)(xm->entries8 ? xm->entries8 : 1));
        uint32_t *row = malloc(sizeof(uint32_t) * (size_t)(xm->rows + 1));
        uint16_t *row16 = malloc(sizeof(uint16_t) * (size_t)(xm->rows + 1));
        if (!ent || !row || !row16) {
            free(ent);
            free(row);
            free(row16);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
        int64_t e = 0;
        for (int r = 0; r < xm->rows; r++) {
            const int zi = xm->zero_idx[xm->n_books == 1 ? 0 : r];
            int cur = 0;
            row[r] = (uint32_t)e;
            for (int k = 0; k < xm->cols; k++) {
                int64_t i = (int64_t)r * xm->cols + k;
                if (!xm->w[i]) continue;
                int g = k - cur;
                for (; g > max_gap; g -= max_gap) ent[e++] = (uint8_t)(max_gap | zi << xm->gbits);
                ent[e++] = (uint8_t)(g | xm->idx[i] << xm->gbits);
                cur = k;
            }
        }
        row[xm->rows] = (uint32_t)e;
        TML_ASSERT(e == xm->entries8);
        char c[128];
        snprintf(c, sizeof c, "entries: columns to move forward (low %d bits) | centroid index << %d", xm->gbits, xm->gbits);
        wb += put_array(s, A_U8, id, "e", ent, e, c);
        wb += put_rows(s, id, row, row16, xm->rows, row32_8, "first entry of each row");
        snprintf(c, sizeof c, "codebook%s: %d int8 centroids%s", xm->n_books > 1 ? "s" : "", xm->k,
                 xm->n_books > 1 ? " per output channel" : "");
        wb += put_array(s, A_I8, id, "book", xm->book, (int64_t)xm->n_books * xm->k, c);
        free(ent);
        free(row);
        free(row16);
    } else if (xm->enc == TML_EXPORT_DENSE) {
        /* depthwise: the model's (kh, kw, c*mult) layout, what dwconv() reads;
         * else (rows, stride) rows, each group of 4 columns in the order 0 2 1
         * 3 (SXTB16 then yields the pairs (w0, w1), (w2, w3)), zeros past cols */
        int64_t n = xm->depthwise ? numel : (int64_t)xm->rows * xm->stride;
        int8_t *d = calloc((size_t)(n ? n : 1), 1);
        if (!d) return tml_error(TML_ERR_NOMEM, "out of memory");
        static const int perm4[4] = {0, 2, 1, 3};
        const int paired_rows = xm->rows & ~1;
        for (int r = 0; r < xm->rows; r++)
            for (int k = 0; k < xm->cols; k++) {
                int8_t v = xm->w[(int64_t)r * xm->cols + k];
                int64_t at;
                if (xm->depthwise)
                    at = (int64_t)k * xm->rows + r;
                else if (r < paired_rows) /* pairs of rows, interleaved per group of 4 columns */
                    at = (int64_t)(r & ~1) * xm->stride + (k & ~3) * 2 + (r & 1) * 4 + perm4[k & 3];
                else
                    at = (int64_t)r * xm->stride + (k & ~3) + perm4[k & 3];
                d[at] = v;
            }
        wb += put_array_a(s, A_I8, id, "w", d, n,
                          xm->depthwise ? "weights (kh, kw, channels)"
                                        : "weights: rows = output channels in interleaved pairs, per 4 columns "
                                          "(taps) stored 0 2 1 3",
                          !xm->depthwise);
        free(d);
    } else if (xm->enc == TML_EXPORT_PACKED) {
        /* The dense form's order (rows in interleaved pairs, per 4 columns; a
         * last odd row alone; each group of 4 in the order 0 2 1 3), cut into
         * "quads" (one row's 4 columns): quad q of a pair of rows is its group
         * q / 2 of row q % 2. 8 / pbits quads share a 32-bit word, quad g of a
         * word in bit field g of each byte; each pair of rows starts a word.
         * A weight is stored + 2^(pbits-1), so fields are never negative;
         * columns past cols hold weight 0. */
        const int b = xm->pbits, gpw = 8 / b, off = 1 << (b - 1), paired = xm->rows & ~1;
        const int64_t n = xm->bytes[TML_EXPORT_PACKED];
        uint8_t *d = malloc((size_t)(n ? n : 1));
        if (!d) return tml_error(TML_ERR_NOMEM, "out of memory");
        memset(d, b == 4 ? 0x88 : 0xAA, (size_t)n); /* every field the offset: weight 0 */
        static const int perm4[4] = {0, 2, 1, 3};
        for (int r = 0; r < xm->rows; r++)
            for (int k = 0; k < xm->cols; k++) {
                const int quad = r < paired ? (k / 4) * 2 + (r & 1) : k / 4;
                uint8_t *byte = d + (int64_t)(r / 2) * xm->prow + 4 * (quad / gpw) + perm4[k & 3];
                const int sh = b * (quad % gpw);
                const unsigned field = (unsigned)(xm->w[(int64_t)r * xm->cols + k] + off);
                *byte = (uint8_t)((*byte & ~(((1u << b) - 1u) << sh)) | field << sh);
            }
        char c[200];
        snprintf(c, sizeof c, "weights + %d, %d bits each in 32-bit words of %d quads (4 columns of a row, stored "
                 "0 2 1 3); pairs of rows of %d bytes, quads alternating between the two rows", off, b, gpw, xm->prow);
        wb += put_array_a(s, A_U8, id, "pw", d, n, c, 1);
        free(d);
    } else {
        /* packed streams */
        int64_t n_vals = sparse ? xm->entries : numel;
        int8_t *val = sparse && !clustered ? malloc((size_t)(n_vals ? n_vals : 1)) : NULL;
        uint8_t *gap = sparse ? malloc((size_t)(n_vals ? n_vals : 1)) : NULL;
        uint32_t *row = sparse ? malloc(sizeof(uint32_t) * (size_t)(xm->rows + 1)) : NULL;
        uint16_t *row16 = sparse && !row32 ? malloc(sizeof(uint16_t) * (size_t)(xm->rows + 1)) : NULL;
        int64_t code_bytes = clustered ? (n_vals * xm->bits + 7) / 8 + 1 : 0;
        uint8_t *code = clustered ? calloc((size_t)code_bytes, 1) : NULL;
        if ((sparse && (!gap || !row || (!row32 && !row16) || (!clustered && !val))) || (clustered && !code)) {
            free(val);
            free(gap);
            free(row);
            free(row16);
            free(code);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
        int64_t e = 0;
        for (int r = 0; r < xm->rows; r++) {
            int zi = clustered ? xm->zero_idx[xm->n_books == 1 ? 0 : r] : 0;
            if (sparse) row[r] = (uint32_t)e;
            int cur = 0;
            for (int k = 0; k < xm->cols; k++) {
                int64_t i = (int64_t)r * xm->cols + k;
                int idx = clustered ? xm->idx[i] : 0;
                if (!sparse) {
                    for (int bit = 0; bit < xm->bits; bit++)
                        if (idx >> bit & 1) code[(i * xm->bits + bit) >> 3] |= (uint8_t)(1u << ((i * xm->bits + bit) & 7));
                    continue;
                }
                if (!xm->w[i]) continue;
                int g = k - cur;
                for (;;) {
                    int step = g > 255 ? 255 : g;
                    int last = g <= 255;
                    gap[e] = (uint8_t)step;
                    if (clustered) {
                        int v = last ? idx : zi;
                        for (int bit = 0; bit < xm->bits; bit++)
                            if (v >> bit & 1) code[(e * xm->bits + bit) >> 3] |= (uint8_t)(1u << ((e * xm->bits + bit) & 7));
                    } else {
                        val[e] = last ? xm->w[i] : 0;
                    }
                    e++;
                    g -= step;
                    if (last) break;
                }
                cur = k;
            }
        }
        if (sparse) {
            row[xm->rows] = (uint32_t)e;
            TML_ASSERT(e == xm->entries);
            if (!clustered) wb += put_array(s, A_I8, id, "w", val, e, "value of each stored (nonzero) weight");
            wb += put_array(s, A_U8, id, "gap", gap, e, "columns to move forward before each stored weight");
            wb += put_rows(s, id, row, row16, xm->rows, row32, "first stored weight of each row");
        }
        if (clustered) {
            char c[96];
            snprintf(c, sizeof c, "%d-bit codebook indices, packed LSB first (+1 padding byte)", xm->bits);
            wb += put_array(s, A_U8, id, "code", code, code_bytes, c);
            snprintf(c, sizeof c, "codebook%s: %d int8 centroids%s", xm->n_books > 1 ? "s" : "", xm->k,
                     xm->n_books > 1 ? " per output channel" : "");
            wb += put_array(s, A_I8, id, "book", xm->book, (int64_t)xm->n_books * xm->k, c);
        }
        free(val);
        free(gap);
        free(row);
        free(row16);
        free(code);
    }
    ob += put_array(s, A_I32, id, "b", xm->bias, xm->rows, "bias - input zero point * row sum (int32)");
    ob += put_array(s, A_I32, id, "m", xm->mult, xm->rows, "requantization multipliers (Q31)");
    ob += put_array(s, A_I8, id, "s", xm->shift, xm->rows, "requantization shifts");
    *wbytes = wb;
    *obytes = ob;
    return TML_OK;
}

/* The requantization fields of a wmat initializer and its closing brace. */
static void put_wmat_tail(tml_sb *s, const xmat *xm, const char *indent)
{
    const uint32_t lo4 = ((uint32_t)xm->act_min & 0xFFu) * 0x01010101u, hi4 = ((uint32_t)xm->act_max & 0xFFu) * 0x01010101u;
    tml_sb_printf(s, "%s    .out_zp = %d, .act_min = %d, .act_max = %d, .act4_min = 0x%08lxu, .act4_max = 0x%08lxu\n%s}",
                  indent, (int)xm->out_zp, (int)xm->act_min, (int)xm->act_max, (unsigned long)lo4, (unsigned long)hi4, indent);
}

/* The wmat initializer (after the arrays). */
static void put_wmat_init(tml_sb *s, const xmat *xm, const char *id, const char *indent, int no_mm)
{
    static const char *const mm[] = {"", "mm_dense", "mm_sparse", "mm_cluster", "mm_sparse_cluster", "mm_packed",
                                     "mm_sparse_cluster8"};
    if (xm->enc == (tml_export_enc)EX_SC8) {
        tml_sb_printf(s, "{\n%s    .mm = %s, .form = %d, .rows = %d, .cols = %d, .stride = %d,\n", indent,
                      no_mm ? "0" : mm[EX_SC8], EX_SC8, xm->rows, xm->cols, xm->stride);
        tml_sb_printf(s, "%s    .ent = %s_e, .gbits = %d, .%s = %s_row,\n", indent, id, xm->gbits,
                      xm->entries8 >= 65536 ? "row32" : "row16", id);
        tml_sb_printf(s, "%s    .book = %s_book, .k = %d, .book_per_row = %d,\n", indent, id, xm->k, xm->n_books > 1);
        tml_sb_printf(s, "%s    .bias = %s_b, .mult = %s_m, .shift = %s_s,\n", indent, id, id, id);
        put_wmat_tail(s, xm, indent);
        return;
    }
    int sparse = xm->enc == TML_EXPORT_SPARSE || xm->enc == TML_EXPORT_SPARSE_CLUSTER;
    int clustered = xm->enc == TML_EXPORT_CLUSTER || xm->enc == TML_EXPORT_SPARSE_CLUSTER;
    tml_sb_printf(s, "{\n%s    .mm = %s, .form = %d, .rows = %d, .cols = %d, .stride = %d,\n", indent,
                  no_mm ? "0" : mm[xm->enc], (int)xm->enc, xm->rows, xm->cols, xm->stride);
    if (xm->enc == TML_EXPORT_PACKED)
        tml_sb_printf(s, "%s    .pw = %s_pw, .pbits = %d, .prow = %d,\n", indent, id, xm->pbits, xm->prow);
    else if (!clustered)
        tml_sb_printf(s, "%s    .val = %s_w,\n", indent, id);
    if (sparse)
        tml_sb_printf(s, "%s    .gap = %s_gap, .%s = %s_row,\n", indent, id, xm->entries >= 65536 ? "row32" : "row16", id);
    if (clustered)
        tml_sb_printf(s, "%s    .code = %s_code, .book = %s_book, .bits = %d, .k = %d, .book_per_row = %d,\n", indent, id,
                      id, xm->bits, xm->k, xm->n_books > 1);
    tml_sb_printf(s, "%s    .bias = %s_b, .mult = %s_m, .shift = %s_s,\n", indent, id, id, id);
    put_wmat_tail(s, xm, indent);
}

static void put_float(tml_sb *s, float v) { tml_sb_printf(s, "%.9ef", (double)v); }

static void put_c_string(tml_sb *s, const char *str)
{
    tml_sb_puts(s, "\"");
    for (; str && *str; str++) {
        unsigned char c = (unsigned char)*str;
        if (c == '"' || c == '\\' || c == '?') tml_sb_printf(s, "\\%c", c);
        else if (c < 32 || c > 126) tml_sb_printf(s, "\\%03o", c);
        else tml_sb_printf(s, "%c", c);
    }
    tml_sb_puts(s, "\"");
}

static int has_labels(const tml_model *m, int64_t out_size)
{
    if (!m->meta.labels || m->meta.n_classes != out_size || out_size < 1) return 0;
    for (int i = 0; i < m->meta.n_classes; i++)
        if (!m->meta.labels[i]) return 0;
    return 1;
}

static void put_header(tml_sb *s, const ex *x, const tml_export_result *r)
{
    const tml_model *m = x->m;
    const tml_tensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
    const char *P = x->upper, *p = x->o.prefix;
    char name[128], shp_in[48], shp_out[48];
    comment_text(m->meta.name ? m->meta.name : "model", name, sizeof name);
    shape_text(in, shp_in, sizeof shp_in);
    shape_text(out, shp_out, sizeof shp_out);
    tml_sb_printf(s,
                  "/*\n"
                  " * %s.h - INT8 inference of the model \"%s\", generated by tinyml %s\n"
                  " * (tinyml export --c). Do not edit: export the model again instead.\n"
                  " *\n"
                  " * Usage (docs/deploy.md of tinyml):\n"
                  " *\n"
                  " *     static int8_t in[%sINPUT_SIZE], out[%sOUTPUT_SIZE];\n"
                  " *     // quantize each real input value x (after the preprocessing below):\n"
                  " *     //   q = round(x / %sINPUT_SCALE) + %sINPUT_ZERO_POINT, clamped to [-128, 127]\n"
                  " *     %srun(in, out);\n"
                  " *     // real output value i: %sOUTPUT_SCALE * (out[i] - %sOUTPUT_ZERO_POINT)\n"
                  " *\n"
                  " * Tensors are one sample, NHWC (channels last), int8. %srun keeps every\n"
                  " * activation in one static arena of %sARENA_SIZE bytes, so it is not\n"
                  " * reentrant: one call at a time. It returns 0.\n"
                  " */\n",
                  x->base, name, TML_VERSION_STRING, P, P, P, P, p, P, P, p, P);
    tml_sb_printf(s, "#ifndef %sH\n#define %sH\n\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", P, P);
    tml_sb_printf(s, "/* input: %s int8 values (NHWC); real = %sINPUT_SCALE * (q - %sINPUT_ZERO_POINT) */\n", shp_in, P, P);
    tml_sb_printf(s, "#define %sINPUT_SIZE %lld\n", P, (long long)r->input_size);
    if (in->ndim == 3)
        tml_sb_printf(s, "#define %sINPUT_H %d\n#define %sINPUT_W %d\n#define %sINPUT_C %d\n", P, (int)in->dims[0], P,
                      (int)in->dims[1], P, (int)in->dims[2]);
    tml_sb_printf(s, "#define %sINPUT_SCALE ", P);
    put_float(s, r->input_scale);
    tml_sb_printf(s, "\n#define %sINPUT_ZERO_POINT (%d)\n\n", P, (int)r->input_zp);
    tml_sb_printf(s, "/* output: %s int8 values; real = %sOUTPUT_SCALE * (q - %sOUTPUT_ZERO_POINT) */\n", shp_out, P, P);
    tml_sb_printf(s, "#define %sOUTPUT_SIZE %lld\n#define %sOUTPUT_SCALE ", P, (long long)r->output_size, P);
    put_float(s, r->output_scale);
    tml_sb_printf(s, "\n#define %sOUTPUT_ZERO_POINT (%d)\n\n", P, (int)r->output_zp);

    const tml_preproc *pre = &m->meta.pre;
    tml_sb_printf(s,
                  "/* the preprocessing the model was trained with, per channel c:\n"
                  " *   x = (raw * %sPRE_SCALE - mean[c]) / std[c]   (raw: 0..255 for images) */\n"
                  "#define %sPRE_SCALE ",
                  P, P);
    put_float(s, pre->scale);
    tml_sb_printf(s, "\n#define %sPRE_MEAN {", P);
    for (int c = 0; c < (pre->n_ch ? pre->n_ch : 1); c++) {
        if (c) tml_sb_puts(s, ", ");
        put_float(s, pre->n_ch ? pre->mean[c] : 0.0f);
    }
    tml_sb_printf(s, "}\n#define %sPRE_STD {", P);
    for (int c = 0; c < (pre->n_ch ? pre->n_ch : 1); c++) {
        if (c) tml_sb_puts(s, ", ");
        put_float(s, pre->n_ch ? pre->std[c] : 1.0f);
    }
    tml_sb_puts(s, "}\n");
    if (pre->n_feat > 0) {
        /* tabular models: per-feature normalization replaces the channel one */
        tml_sb_printf(s,
                      "/* per-feature normalization (replaces PRE_MEAN / PRE_STD), element i:\n"
                      " *   x[i] = (raw[i] * %sPRE_SCALE - mean[i]) / std[i] */\n"
                      "#define %sPRE_FEATURES %d\n#define %sPRE_FEATURE_MEAN {",
                      P, P, pre->n_feat, P);
        for (int i = 0; i < pre->n_feat; i++) {
            if (i) tml_sb_puts(s, ", ");
            put_float(s, pre->feat_mean[i]);
        }
        tml_sb_printf(s, "}\n#define %sPRE_FEATURE_STD {", P);
        for (int i = 0; i < pre->n_feat; i++) {
            if (i) tml_sb_puts(s, ", ");
            put_float(s, pre->feat_std[i]);
        }
        tml_sb_puts(s, "}\n");
    }
    tml_sb_puts(s, "\n");

    tml_sb_printf(s,
                  "/* resources of %s.c */\n"
                  "#define %sARENA_SIZE %lld /* bytes of static RAM: %s */\n"
                  "#define %sCONST_BYTES %lld /* bytes of const data (flash): weights, biases, multipliers, tables */\n"
                  "#define %sCODE_BYTES %lld /* bytes of code, an estimate (Cortex-M4, -Os) */\n"
                  "#define %sMACS %lld /* multiply-accumulates of one inference (%lld with a nonzero weight) */\n\n",
                  x->base, P, (long long)r->arena_bytes,
                  x->sched ? "the memory schedule's buffers (whole tensors, rows, tiles, kernel scratch)"
                           : "every activation, shared by liveness",
                  P, (long long)r->const_bytes, P, (long long)r->code_bytes, P,
                  (long long)r->macs,
                  (long long)r->macs_nz);
    if (has_labels(m, r->output_size))
        tml_sb_printf(s, "#define %sNUM_CLASSES %d\nextern const char *const %slabels[%sNUM_CLASSES];\n\n", P,
                      m->meta.n_classes, p, P);
    tml_sb_printf(s,
                  "/* Runs one inference: in (%sINPUT_SIZE int8) -> out (%sOUTPUT_SIZE int8).\n"
                  " * Returns 0. in and out may be the same buffer. */\n"
                  "int %srun(const int8_t *in, int8_t *out);\n\n"
                  "#ifdef __cplusplus\n}\n#endif\n#endif\n",
                  P, P, p);
}

static const char *op_text(tml_op op) { return tml_op_name(op); }

/* The source file. Fills the per-layer byte counts of r. */
static tml_status put_source(tml_sb *s, ex *x, tml_export_result *r)
{
    const tml_model *m = x->m;
    const char *P = x->upper, *p = x->o.prefix;
    int used[TML_EXK_COUNT] = {0};
    const int tfl = m->meta.rounding == TML_ROUNDING_TFLITE;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        const xmat *xm = x->nodes[i].mat;
        int direct_dw = n->op == TML_OP_DEPTHWISE_CONV2D && !uses_conv2d(x, i);
        if (xm && !direct_dw) used[TML_EXK_MM_DENSE + (xm->enc - TML_EXPORT_DENSE)] = 1;
        switch (n->op) {
        case TML_OP_CONV2D: used[TML_EXK_CONV] = 1; break;
        case TML_OP_DEPTHWISE_CONV2D: used[direct_dw ? TML_EXK_DWCONV : TML_EXK_CONV] = 1; break;
        case TML_OP_DENSE: used[TML_EXK_DENSE] = 1; break;
        case TML_OP_MAXPOOL: used[TML_EXK_MAXPOOL] = 1; break;
        case TML_OP_AVGPOOL: used[TML_EXK_AVGPOOL] = 1; break;
        case TML_OP_GLOBAL_AVGPOOL: used[tfl ? TML_EXK_MEAN_TFL : TML_EXK_GAP] = !x->sched; break; /* scheduled: tml_exs_used */
        case TML_OP_ADD: used[TML_EXK_ADD] = 1; break;
        case TML_OP_RELU:
        case TML_OP_RELU6: used[TML_EXK_CLAMP] = 1; break;
        case TML_OP_SOFTMAX: used[tfl ? TML_EXK_SOFTMAX_TFL : TML_EXK_SOFTMAX] = 1; break;
        default: break;
        }
    }

    if (x->sched) tml_exs_used(m, x->sched, x->exs, used);

    /* the file comment with the layer table is written last into its own
     * buffer (it needs the byte counts); everything else goes to `body` */
    tml_sb body = {0};
    tml_sb_puts(&body, "#include <stdint.h>\n#include <string.h>\n\n");
    tml_sb_printf(&body, "#include \"%s.h\"\n\n", x->base);
    tml_sb_printf(&body,
                  "/* Attributes of the activation arena, e.g. a linker section for fast RAM:\n"
                  " * -D'%sARENA_ATTR=__attribute__((section(\".dtcm\"), aligned(16)))'.\n"
                  " * Buffers in the arena start at multiples of 16 bytes from its start. */\n"
                  "#ifndef %sARENA_ATTR\n#if defined(__GNUC__)\n#define %sARENA_ATTR __attribute__((aligned(16)))\n"
                  "#else\n#define %sARENA_ATTR\n#endif\n#endif\n\n",
                  P, P, P, P);
    int aligned_arrays = 0;
    for (int i = 0; i < m->n_nodes; i++)
        aligned_arrays |= x->nodes[i].mat && ((x->nodes[i].mat->enc == TML_EXPORT_DENSE && !x->nodes[i].mat->depthwise) ||
                                              x->nodes[i].mat->enc == TML_EXPORT_PACKED);
    if (aligned_arrays)
        tml_sb_puts(&body, "/* Dense and packed weight arrays are 8-byte aligned where the compiler can say so. */\n"
                           "#if defined(__GNUC__)\n#define TML_WALIGN __attribute__((aligned(8)))\n"
                           "#else\n#define TML_WALIGN\n#endif\n\n");
    tml_sb_printf(&body,
                  "/* The model's integer arithmetic: %s rounding. 1 = TensorFlow Lite's (the\n"
                  " * doubling high multiply rounds ties of negative products toward\n"
                  " * +infinity), 0 = tinyml's (away from zero). */\n"
                  "#define TML_TFL_ROUND %d\n\n",
                  tml_rounding_name(m->meta.rounding), m->meta.rounding == TML_ROUNDING_TFLITE);
    tml_sb_puts(&body, "/* ---- kernels ------------------------------------------------------------ */\n\n");
    int mm_inputs = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const xmat *xm = x->nodes[i].mat;
        if (!xm || xm->enc != TML_EXPORT_DENSE) continue;
        if (m->nodes[i].op != TML_OP_DENSE)
            mm_inputs |= !uses_conv2d(x, i) ? 0 : x->exs && x->exs[i].lean ? TML_MM_IN_CONV | TML_MM_IN_X8 : TML_MM_IN_CONV;
        else mm_inputs |= x->nodes[i].patch_off >= 0 ? TML_MM_IN_X16 : TML_MM_IN_X8;
    }
    const int small = x->o.optimize == TML_EXPORT_OPT_SIZE;
    tml_exk_emit(&body, used, x->dsp, P, mm_inputs, small);
    /* the kernels, then the run function (a scheduled one: its estimate as emitted) */
    r->code_bytes = tml_exk_code_bytes(used, x->dsp, small, mm_inputs);
    if (!x->sched) r->code_bytes += 60 + 24 * (int64_t)m->n_nodes; /* + model_run: ~24 B a call */
    tml_sb_puts(&body, "/* ---- layers ------------------------------------------------------------- */\n\n");

    int64_t const_bytes = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        const xnode *xn = &x->nodes[i];
        tml_export_layer *L = &r->layers[i];
        const tml_tensor *in = &m->tensors[n->in[0]], *y = &m->tensors[n->out];
        const char *id = xn->id;
        char cname[128];
        comment_text(n->name, cname, sizeof cname);
        switch (n->op) {
        case TML_OP_CONV2D:
        case TML_OP_DEPTHWISE_CONV2D:
        case TML_OP_DENSE: {
            const xmat *xm = xn->mat;
            if (n->op == TML_OP_DENSE)
                tml_sb_printf(&body, "/* %s: dense %d -> %d, weights %s */\n", cname, xm->cols, xm->rows,
                              tml_export_enc_name(xm->enc));
            else
                tml_sb_printf(&body, "/* %s: %s %dx%d stride %dx%d, -> %s, weights %s */\n", cname, op_text(n->op), n->kh,
                              n->kw, n->sh, n->sw, L->shape, tml_export_enc_name(xm->enc));
            tml_status st = put_matrix(&body, xm, id, &L->weight_bytes, &L->other_bytes);
            if (st) {
                tml_sb_free(&body);
                return st;
            }
            L->other_bytes += n->op == TML_OP_DENSE ? EX_WMAT_BYTES : EX_CONV_BYTES;
            if (n->op == TML_OP_DENSE) {
                tml_sb_printf(&body, "static const wmat %s_p = ", id);
                put_wmat_init(&body, xm, id, "", 0);
                tml_sb_puts(&body, ";\n\n");
            } else {
                int groups = n->op == TML_OP_CONV2D ? n->groups : in->dims[2];
                tml_sb_printf(&body,
                              "static const conv_t %s_p = {\n"
                              "    .h = %d, .w = %d, .c = %d, .oh = %d, .ow = %d,\n"
                              "    .kh = %d, .kw = %d, .sh = %d, .sw = %d, .dh = %d, .dw = %d, .pad_t = %d, .pad_l = %d,\n"
                              "    .groups = %d, .in_zp = %d, .direct = %d, .batch = %d,\n    .m = ",
                              id, (int)in->dims[0], (int)in->dims[1], (int)in->dims[2], (int)y->dims[0],
                              (int)y->dims[1], n->kh, n->kw, n->sh, n->sw, n->dh > 0 ? n->dh : 1, n->dw > 0 ? n->dw : 1,
                              n->pad[0], n->pad[1], groups, (int)qzp(in), is_direct(m, n), xn->batch);
                put_wmat_init(&body, xm, id, "    ", !uses_conv2d(x, i));
                tml_sb_puts(&body, "\n};\n\n");
            }
            break;
        }
        case TML_OP_MAXPOOL:
        case TML_OP_AVGPOOL:
            L->other_bytes = EX_POOL_BYTES;
            tml_sb_printf(&body,
                          "/* %s: %s %dx%d, %s */\n"
                          "static const pool_t %s_p = {.h = %d, .w = %d, .c = %d, .oh = %d, .ow = %d, .kh = %d, .kw = %d,\n"
                          "    .sh = %d, .sw = %d, .dh = %d, .dw = %d, .pad_t = %d, .pad_l = %d};\n\n",
                          cname, op_text(n->op), n->kh, n->kw, L->shape, id, (int)in->dims[0], (int)in->dims[1],
                          (int)in->dims[2], (int)y->dims[0], (int)y->dims[1], n->kh, n->kw, n->sh, n->sw,
                          n->dh > 0 ? n->dh : 1, n->dw > 0 ? n->dw : 1, n->pad[0], n->pad[1]);
            break;
        case TML_OP_ADD: {
            const tml_tensor *b = &m->tensors[n->in[1]];
            tml_add_s8_params ap;
            tml_add_s8_prepare_mode(qscale(in), qzp(in), qscale(b), qzp(b), qscale(y), qzp(y), n->act, m->meta.rounding,
                                    &ap);
            L->other_bytes = EX_ADD_BYTES;
            tml_sb_printf(&body,
                          "/* %s: add, %s */\n"
                          "static const add_t %s_p = {.count = %lld, .zp1 = %d, .zp2 = %d, .zpo = %d, .left_shift = %d,\n"
                          "    .m1 = %d, .s1 = %d, .m2 = %d, .s2 = %d, .mo = %d, .so = %d, .act_min = %d, .act_max = %d};\n\n",
                          cname, L->shape, id, (long long)tml_tensor_numel(y), (int)ap.in1_zp, (int)ap.in2_zp,
                          (int)ap.out_zp, ap.left_shift, (int)ap.in1_mult, ap.in1_shift, (int)ap.in2_mult, ap.in2_shift,
                          (int)ap.out_mult, ap.out_shift, (int)ap.act_min, (int)ap.act_max);
            break;
        }
        case TML_OP_SOFTMAX: {
            if (m->meta.rounding == TML_ROUNDING_TFLITE) {
                tml_softmax_s8_tfl_params sp;
                tml_softmax_s8_tfl_prepare(qscale(in), n->beta, &sp);
                L->other_bytes = 12;
                tml_sb_printf(&body, "/* %s: TFLite softmax, beta %.9g, input scale %.9g */\n"
                                     "static const smx_t %s_p = {%d, %d, %d};\n\n",
                              cname, (double)n->beta, (double)qscale(in), id, (int)sp.input_multiplier,
                              sp.input_left_shift, (int)sp.diff_min);
                break;
            }
            uint32_t lut[256];
            tml_softmax_s8_lut(qscale(in), lut);
            char c[256];
            snprintf(c, sizeof c, "%s: softmax table, lut[d] = round(2^16 * exp(-%.9g * d))", cname, (double)qscale(in));
            L->other_bytes = put_array(&body, A_U32, id, "lut", lut, 256, c);
            tml_sb_puts(&body, "\n");
            break;
        }
        default: break;
        }
        const_bytes += L->weight_bytes + L->other_bytes;
    }

    int labels = has_labels(m, r->output_size);
    if (labels) {
        tml_sb_printf(&body, "const char *const %slabels[%sNUM_CLASSES] = {", p, P);
        for (int i = 0; i < m->meta.n_classes; i++) {
            tml_sb_puts(&body, i ? ", " : "");
            put_c_string(&body, m->meta.labels[i]);
            const_bytes += (int64_t)strlen(m->meta.labels[i]) + 1 + 4;
        }
        tml_sb_puts(&body, "};\n\n");
    }

    /* arena and run */
    tml_sb_printf(&body,
                  "/* ---- run ---------------------------------------------------------------- */\n\n"
                  "/* Every activation lives in this arena at an offset chosen by liveness\n"
                  " * (tensors whose lifetimes do not overlap share bytes); conv patches use\n"
                  " * bytes that are free while their layer runs. */\n"
                  "/* %sARENA_GUARD (bytes, default 0): guard bytes after the arena, set at the\n"
                  " * first run and checked after each (run() returns -1 if one changed): a\n"
                  " * check that the code stays inside %sARENA_SIZE. */\n"
                  "#ifndef %sARENA_GUARD\n#define %sARENA_GUARD 0\n#endif\n"
                  "static union {\n    int8_t bytes[%lld + %sARENA_GUARD];\n    int64_t align;\n} arena %sARENA_ATTR;\n\n",
                  P, P, P, P, (long long)(x->arena_bytes ? x->arena_bytes : EX_ALIGN), P, P);
    tml_sb_printf(&body,
                  "/* %sLAYER_HOOK(i) runs before layer i and, with i = the number of layers,\n"
                  " * after the last one: empty unless defined when compiling this file (a\n"
                  " * profiler's marker, a GPIO toggle, a cycle counter read). */\n"
                  "#ifndef %sLAYER_HOOK\n#define %sLAYER_HOOK(i)\n#endif\n\n",
                  P, P, P);
    int table_mode = x->o.optimize == TML_EXPORT_OPT_SIZE    ? TML_EXS_TABLE_ALL
                     : x->o.optimize == TML_EXPORT_OPT_SPEED ? TML_EXS_TABLE_NONE
                                                             : TML_EXS_TABLE_SHARED;
    int64_t table_bytes = 0, interp_code = 0;
    if (x->sched) table_bytes = tml_exs_emit_steps(&body, m, x->sched, x->exs, table_mode, &interp_code);
    r->code_bytes += interp_code;
    tml_sb_printf(&body, "int %srun(const int8_t *in, int8_t *out)\n{\n    int8_t *const a = arena.bytes;\n", p);
    long long guard_at = (long long)(x->arena_bytes ? x->arena_bytes : EX_ALIGN);
    tml_sb_printf(&body,
                  "#if %sARENA_GUARD > 0\n    static int guard_set;\n    if (!guard_set) {\n"
                  "        memset(a + %lld, 0x5A, %sARENA_GUARD);\n        guard_set = 1;\n    }\n#endif\n",
                  P, guard_at, P);
    if (x->sched) {
        r->code_bytes += tml_exs_emit_run(&body, m, x->sched, x->exs, table_mode, P);
        goto run_tail;
    }
    char shp[48];
    shape_text(&m->tensors[m->input], shp, sizeof shp);
    tml_sb_printf(&body, "    memcpy(a + %lld, in, %lld); /* input %s */\n", (long long)x->off[m->input],
                  (long long)r->input_size, shp);
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        const xnode *xn = &x->nodes[i];
        const tml_tensor *in = &m->tensors[n->in[0]], *y = &m->tensors[n->out];
        long long xo = (long long)x->off[n->in[0]], yo = (long long)x->off[n->out];
        const char *id = xn->id;
        char cname[128];
        comment_text(n->name, cname, sizeof cname);
        tml_sb_printf(&body, "    %sLAYER_HOOK(%d);\n", P, i);
        /* windowed kernels: all output rows; input rows from row 0 with the
         * tensor's row stride, output rows likewise */
        char rows[160];
        if (n->op == TML_OP_CONV2D || n->op == TML_OP_DEPTHWISE_CONV2D || n->op == TML_OP_MAXPOOL ||
            n->op == TML_OP_AVGPOOL)
            snprintf(rows, sizeof rows, "0, %d, a + %lld, 0, %d, a + %lld, %d", (int)y->dims[0], xo,
                     (int)(in->dims[1] * in->dims[2]), yo, (int)(y->dims[1] * y->dims[2]));
        else
            rows[0] = '\0';
        switch (n->op) {
        case TML_OP_CONV2D:
        case TML_OP_DEPTHWISE_CONV2D:
            if (!uses_conv2d(x, i))
                tml_sb_printf(&body, "    dwconv(&%s_p, %s);\n", id, rows);
            else
                tml_sb_printf(&body, "    conv2d(&%s_p, %s, a + %lld);\n", id, rows, (long long)xn->patch_off);
            break;
        case TML_OP_DENSE:
            if (xn->patch_off >= 0)
                tml_sb_printf(&body, "    dense(&%s_p, a + %lld, a + %lld, a + %lld);\n", id, xo, yo,
                              (long long)xn->patch_off);
            else
                tml_sb_printf(&body, "    dense(&%s_p, a + %lld, a + %lld, 0);\n", id, xo, yo);
            break;
        case TML_OP_MAXPOOL: tml_sb_printf(&body, "    maxpool(&%s_p, %s);\n", id, rows); break;
        case TML_OP_AVGPOOL: tml_sb_printf(&body, "    avgpool(&%s_p, %s);\n", id, rows); break;
        case TML_OP_GLOBAL_AVGPOOL:
            if (m->meta.rounding == TML_ROUNDING_TFLITE) {
                tml_mean_s8_tfl_params mp;
                tml_mean_s8_tfl_prepare(qscale(in), qzp(in), qscale(y), qzp(y), (int)(in->dims[0] * in->dims[1]), &mp);
                tml_sb_printf(&body,
                              "    { static const mean_t p = {%d, %d, %d, %d, %d, %d}; mean_tfl(&p, a + %lld, a + %lld); } "
                              "/* %s: TFLite MEAN */\n",
                              (int)(in->dims[0] * in->dims[1]), (int)in->dims[2], (int)mp.in_zp, (int)mp.out_zp,
                              (int)mp.mult, mp.shift, xo, yo, cname);
                break;
            }
            tml_sb_printf(&body, "    global_avgpool(%d, %d, a + %lld, a + %lld); /* %s */\n", (int)(in->dims[0] * in->dims[1]),
                          (int)in->dims[2], xo, yo, cname);
            break;
        case TML_OP_ADD:
            tml_sb_printf(&body, "    add(&%s_p, a + %lld, a + %lld, a + %lld);\n", id, xo, (long long)x->off[n->in[1]], yo);
            break;
        case TML_OP_RELU:
        case TML_OP_RELU6: {
            int32_t lo, hi;
            if (m->meta.rounding == TML_ROUNDING_TFLITE)
                tml_act_bounds_s8_tfl(n->op == TML_OP_RELU ? TML_ACT_RELU : TML_ACT_RELU6, qscale(y), qzp(y), &lo, &hi);
            else
                tml_act_bounds_s8(n->op == TML_OP_RELU ? TML_ACT_RELU : TML_ACT_RELU6, qscale(y), qzp(y), &lo, &hi);
            tml_sb_printf(&body, "    clamp_copy(%lld, %d, %d, a + %lld, a + %lld); /* %s: %s */\n",
                          (long long)tml_tensor_numel(y), (int)lo, (int)hi, xo, yo, cname, op_text(n->op));
            break;
        }
        case TML_OP_SOFTMAX: {
            int k = (int)y->dims[y->ndim - 1];
            if (m->meta.rounding == TML_ROUNDING_TFLITE)
                tml_sb_printf(&body, "    softmax_tfl(%lld, %d, &%s_p, a + %lld, a + %lld); /* %s */\n",
                              (long long)(tml_tensor_numel(y) / k), k, id, xo, yo, cname);
            else
                tml_sb_printf(&body, "    softmax(%lld, %d, %s_lut, a + %lld, a + %lld); /* %s */\n",
                              (long long)(tml_tensor_numel(y) / k), k, id, xo, yo, cname);
            break;
        }
        case TML_OP_RESHAPE:
        case TML_OP_DROPOUT:
            if (xo == yo)
                tml_sb_printf(&body, "    /* %s: %s, shares its input's bytes */\n", cname, op_text(n->op));
            else
                tml_sb_printf(&body, "    memcpy(a + %lld, a + %lld, %lld); /* %s */\n", yo, xo, (long long)tml_tensor_numel(y),
                              cname);
            break;
        default: break;
        }
    }
    tml_sb_printf(&body, "    %sLAYER_HOOK(%d);\n", P, m->n_nodes);
run_tail:
    tml_sb_printf(&body,
                  "#if %sARENA_GUARD > 0\n    for (int32_t g = 0; g < %sARENA_GUARD; g++)\n"
                  "        if (a[%lld + g] != 0x5A) return -1;\n#endif\n",
                  P, P, guard_at);
    tml_sb_printf(&body, "    memcpy(out, a + %lld, %lld);\n    return 0;\n}\n",
                  (long long)(x->sched ? tml_exs_tensor_offset(m, x->sched, m->output) : x->off[m->output]),
                  (long long)r->output_size);

    r->const_bytes = const_bytes + table_bytes; /* the step table is const data too */
    for (int i = 0; i < m->n_nodes; i++) {
        r->weight_bytes += r->layers[i].weight_bytes;
        r->dense_weight_bytes += r->layers[i].dense_bytes;
    }

    /* file comment */
    char name[128], arch[64];
    comment_text(m->meta.name ? m->meta.name : "model", name, sizeof name);
    comment_text(m->meta.arch ? m->meta.arch : "custom", arch, sizeof arch);
    tml_sb_printf(s,
                  "/*\n"
                  " * %s.c - INT8 inference of the model \"%s\" (%s), generated by tinyml %s\n"
                  " * (tinyml export --c). Do not edit: export the model again instead.\n"
                  " *\n"
                  " * Integer only (TFLite quantization scheme, real = scale * (q - zero_point)),\n"
                  " * bit-exact with tinyml's integer engine. Portable C99: <stdint.h> and\n"
                  " * memcpy from <string.h>; no malloc, no floating point.\n"
                  " *\n"
                  " * Memory: %lld bytes of const data (flash) + about %lld bytes of code, one\n"
                  " * static arena of %lld bytes (RAM); the kernels use a few dozen bytes of stack.\n"
                  " * %lld multiply-accumulates per inference (%lld with a nonzero weight).\n"
                  " *\n"
                  " * %-20s %-18s %-12s %-15s %10s %12s\n",
                  x->base, name, arch, TML_VERSION_STRING, (long long)r->const_bytes, (long long)r->code_bytes,
                  (long long)x->arena_bytes,
                  (long long)r->macs, (long long)r->macs_nz, "layer", "op", "output", "weights", "const B", "MACs");
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_export_layer *L = &r->layers[i];
        char cname[128];
        comment_text(L->name, cname, sizeof cname);
        tml_sb_printf(s, " * %-20.20s %-18s %-12s %-15s %10lld %12lld\n", cname, op_text(L->op), L->shape,
                      L->enc == TML_EXPORT_NONE ? "-" : tml_export_enc_name(L->enc),
                      (long long)(L->weight_bytes + L->other_bytes), (long long)L->macs);
    }
    tml_sb_puts(s, " */\n");
    tml_sb_puts(s, body.buf ? body.buf : "");
    if (body.oom) s->oom = 1;
    tml_sb_free(&body);
    return TML_OK;
}

/* ---- the entry points ----------------------------------------------------------------------------- */

void tml_export_result_free(tml_export_result *r)
{
    if (!r) return;
    free(r->base);
    free(r->source);
    free(r->header);
    free(r->layers);
    tml_schedule_free(r->schedule);
    free(r->schedule);
    memset(r, 0, sizeof *r);
}

static void ex_free(ex *x)
{
    if (x->nodes)
        for (int i = 0; i < x->m->n_nodes; i++) xmat_free(x->nodes[i].mat);
    free(x->nodes);
    free(x->off);
    free(x->root);
    free(x->start);
    free(x->end);
    tml_schedule_free(x->sched);
    free(x->sched);
    free(x->exs);
}

static tml_status bind_pair(tml_export_result *r, const char *P);

tml_status tml_export_c(const tml_model *m, const tml_export_opts *opts, tml_export_result *r)
{
    memset(r, 0, sizeof *r);
    ex x;
    memset(&x, 0, sizeof x);
    x.m = m;
    tml_export_opts_default(&x.o);
    if (opts) {
        x.o = *opts;
        if (!x.o.prefix) x.o.prefix = "model_";
    }
    tml_status st = tml_export_check_prefix(x.o.prefix);
    if (st) return st;
    if (x.o.weights < TML_EXPORT_AUTO || x.o.weights >= TML_EXPORT_NONE)
        return tml_error(TML_ERR_INVALID, "unknown weight form %d", (int)x.o.weights);
    if (x.o.optimize < TML_EXPORT_OPT_BALANCED || x.o.optimize > TML_EXPORT_OPT_SIZE)
        return tml_error(TML_ERR_INVALID, "unknown --optimize goal %d", (int)x.o.optimize);
    if (x.o.kernels < TML_EXPORT_KERNELS_AUTO || x.o.kernels > TML_EXPORT_KERNELS_PORTABLE)
        return tml_error(TML_ERR_INVALID, "unknown kernel choice %d", (int)x.o.kernels);
    if ((st = check_model(m))) return st;

    /* names: "model_" -> model.c / MODEL_INPUT_SIZE / model_run */
    size_t pl = strlen(x.o.prefix);
    snprintf(x.base, sizeof x.base, "%.*s", (int)(pl > 1 && x.o.prefix[pl - 1] == '_' ? pl - 1 : pl), x.o.prefix);
    for (size_t i = 0; i <= pl; i++) {
        char c = x.o.prefix[i];
        x.upper[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }

    int nt = m->n_tensors ? m->n_tensors : 1, nn = m->n_nodes ? m->n_nodes : 1;
    x.off = malloc(sizeof(int64_t) * (size_t)nt);
    x.root = malloc(sizeof(int) * (size_t)nt);
    x.start = malloc(sizeof(int) * (size_t)nt);
    x.end = malloc(sizeof(int) * (size_t)nt);
    x.nodes = calloc((size_t)nn, sizeof(xnode));
    r->layers = calloc((size_t)nn, sizeof(tml_export_layer));
    if (!x.off || !x.root || !x.start || !x.end || !x.nodes || !r->layers) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto fail;
    }
    make_ids(&x);
    if ((st = plan_arena(&x))) goto fail;

    r->n_layers = m->n_nodes;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        tml_export_layer *L = &r->layers[i];
        snprintf(L->name, sizeof L->name, "%s", n->name ? n->name : "");
        snprintf(L->id, sizeof L->id, "%s", x.nodes[i].id);
        L->op = n->op;
        shape_text(&m->tensors[n->out], L->shape, sizeof L->shape);
        L->enc = TML_EXPORT_NONE;
        L->macs = L->macs_nz = tml_node_macs(m, n);
        if (!is_weighted(n->op)) continue;
        if ((st = lower(&x, n, &x.nodes[i].mat))) goto fail;
    }
    x.dsp = x.o.kernels == TML_EXPORT_KERNELS_AUTO;
    for (int i = 0; i < m->n_nodes; i++)
        if ((x.nodes[i].mat && x.nodes[i].mat->dsp_unsafe) || !add_dsp_ok(m, &m->nodes[i])) x.dsp = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        tml_export_layer *L = &r->layers[i];
        xmat *xm = x.nodes[i].mat;
        if (!xm) {
            L->est_instr = est_op_instr(m, n, x.dsp);
            continue;
        }
        static const int64_t no_code[EX_NENC] = {0};
        choose(xm, x.o.weights, x.o.optimize, m, n, x.dsp, no_code);
    }
    /* a form whose kernel no other layer needs also costs that kernel's
     * code: choose again with it (twice: choices move together) */
    for (int pass = 0; pass < 2 && x.o.weights == TML_EXPORT_AUTO && x.o.optimize != TML_EXPORT_OPT_SPEED; pass++)
        for (int i = 0; i < m->n_nodes; i++) {
            xmat *xm = x.nodes[i].mat;
            if (!xm) continue;
            int others[EX_NENC] = {0};
            for (int j = 0; j < m->n_nodes; j++) {
                const xmat *o = x.nodes[j].mat;
                if (j != i && o && !(o->depthwise && o->enc == TML_EXPORT_DENSE)) others[o->enc] = 1;
            }
            int64_t code[EX_NENC] = {0};
            for (int f = TML_EXPORT_DENSE; f < EX_NENC; f++) {
                if (others[f] || (xm->depthwise && f == TML_EXPORT_DENSE)) continue;
                int used[TML_EXK_COUNT] = {0};
                used[TML_EXK_MM_DENSE + (f - TML_EXPORT_DENSE)] = 1;
                code[f] = tml_exk_code_bytes(used, x.dsp, x.o.optimize == TML_EXPORT_OPT_SIZE, 0);
            }
            choose(xm, x.o.weights, x.o.optimize, m, &m->nodes[i], x.dsp, code);
        }
    for (int i = 0; i < m->n_nodes; i++) {
        const tml_node *n = &m->nodes[i];
        tml_export_layer *L = &r->layers[i];
        xmat *xm = x.nodes[i].mat;
        if (!xm) continue;
        L->enc = xm->enc == (tml_export_enc)EX_SC8 ? TML_EXPORT_SPARSE_CLUSTER : xm->enc;
        L->dense_bytes = xm->bytes[TML_EXPORT_DENSE];
        L->est_instr = xm->est[xm->enc];
        int64_t pixels = n->op == TML_OP_DENSE ? 1 : (int64_t)m->tensors[n->out].dims[0] * m->tensors[n->out].dims[1];
        L->macs_nz = xm->nnz * pixels;
    }
    r->dsp_kernels = x.dsp;
    if (x.o.schedule) {
        if ((st = plan_schedule(&x))) goto fail;
        r->lean_layers = 0;
        for (int i = 0; i < m->n_nodes; i++) r->lean_layers += x.exs[i].lean;
    } else {
        place_patches(&x);
    }
    for (int i = 0; i < m->n_nodes; i++) {
        r->layers[i].scratch_bytes = x.nodes[i].patch_off >= 0 ? x.nodes[i].patch_bytes : 0;
        r->layers[i].live_bytes = live_bytes(&x, i) + align_up(r->layers[i].scratch_bytes);
        r->macs += r->layers[i].macs;
        r->macs_nz += r->layers[i].macs_nz;
    }
    if (x.sched)
        for (int g = 0; g < x.sched->n_segments; g++)
            for (int i = x.sched->segments[g].first; i <= x.sched->segments[g].last; i++)
                r->layers[i].live_bytes = x.sched->segments[g].peak_bytes;
    const tml_tensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
    r->input_size = tml_tensor_numel(in);
    r->output_size = tml_tensor_numel(out);
    r->input_scale = qscale(in);
    r->input_zp = qzp(in);
    r->output_scale = qscale(out);
    r->output_zp = qzp(out);
    r->arena_bytes = x.arena_bytes;
    r->plan_bytes = x.plan_bytes;
    r->pair_bytes = x.pair_bytes;

    tml_sb src = {0}, hdr = {0};
    if ((st = put_source(&src, &x, r))) {
        tml_sb_free(&src);
        goto fail;
    }
    put_header(&hdr, &x, r);
    r->source = tml_sb_take(&src);
    r->header = tml_sb_take(&hdr);
    r->base = tml_strdup(x.base);
    if (r->source && r->header && r->base && (st = bind_pair(r, x.upper))) goto fail;
    if (!r->source || !r->header || !r->base) {
        st = tml_error(TML_ERR_NOMEM, "out of memory writing the C source");
        goto fail;
    }
    r->schedule = x.sched;
    x.sched = NULL;
    ex_free(&x);
    return TML_OK;
fail:
    ex_free(&x);
    tml_export_result_free(r);
    return st;
}

/* ---- files ---------------------------------------------------------------------------------------- */

static const char *errstr(int e, char *buf, size_t cap)
{
    if (strerror_r(e, buf, cap) != 0) snprintf(buf, cap, "error %d", e);
    return buf;
}

/* A copy of s with `text` inserted after the first occurrence of `marker`
 * (NULL when the marker is missing or on OOM). */
static char *insert_after(const char *s, const char *marker, const char *text)
{
    const char *at = strstr(s, marker);
    if (!at) return NULL;
    at += strlen(marker);
    size_t a = (size_t)(at - s), t = strlen(text), b = strlen(at);
    char *o = malloc(a + t + b + 1);
    if (!o) return NULL;
    memcpy(o, s, a);
    memcpy(o + a, text, t);
    memcpy(o + a + t, at, b + 1);
    return o;
}

/* The header and the source of one export carry the same id (a hash of
 * both), and the source refuses to compile with any other header: a pair
 * mixed by an interrupted run, or by copying one file, is an error at
 * compile time instead of a model that silently computes garbage. */
static tml_status bind_pair(tml_export_result *r, const char *P)
{
    uint32_t h = 2166136261u; /* FNV-1a over both texts */
    for (const char *s = r->header; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    for (const char *s = r->source; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    char def[160], chk[512], hmark[96], smark[160];
    snprintf(def, sizeof def, "/* %s.c and this header come from one export */\n#define %sEXPORT_ID 0x%08xu\n\n", r->base, P,
             (unsigned)h);
    snprintf(chk, sizeof chk,
             "#if !defined(%sEXPORT_ID) || %sEXPORT_ID != 0x%08xu\n"
             "#error \"%s.h does not belong to this %s.c (another export, or an interrupted one): export both again\"\n"
             "#endif\n\n",
             P, P, (unsigned)h, r->base, r->base);
    snprintf(hmark, sizeof hmark, "#define %sH\n\n", P);
    snprintf(smark, sizeof smark, "#include \"%s.h\"\n\n", r->base);
    char *hh = insert_after(r->header, hmark, def), *ss = insert_after(r->source, smark, chk);
    if (!hh || !ss) {
        free(hh);
        free(ss);
        return tml_error(TML_ERR_NOMEM, "out of memory binding the export");
    }
    free(r->header);
    free(r->source);
    r->header = hh;
    r->source = ss;
    return TML_OK;
}

/* mkdir -p: creates `dir` and its missing parents. */
static tml_status make_dirs(const char *dir)
{
    char eb[128];
    char *p = tml_strdup(dir);
    if (!p) return tml_error(TML_ERR_NOMEM, "out of memory");
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        struct stat sb;
        if (stat(p, &sb) != 0) {
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                tml_status st = tml_error(TML_ERR_IO, "cannot create the directory '%s': %s", p, errstr(e, eb, sizeof eb));
                free(p);
                return st;
            }
        } else if (!S_ISDIR(sb.st_mode)) {
            tml_status st = tml_error(TML_ERR_IO, "'%s' exists and is not a directory", p);
            free(p);
            return st;
        }
        p[i] = c;
    }
    free(p);
    return TML_OK;
}

tml_status tml_export_write(const tml_export_result *r, const char *dir)
{
    if (!r->source || !r->header || !r->base) return tml_error(TML_ERR_INVALID, "nothing to write: export failed");
    if (!dir || !*dir) dir = ".";
    tml_status st = make_dirs(dir);
    if (st) return st;
    /* both files are complete on disk before either is renamed into place */
    size_t cap = strlen(dir) + strlen(r->base) + 4;
    char *h = malloc(cap), *c = malloc(cap);
    if (!h || !c) {
        free(h);
        free(c);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    snprintf(h, cap, "%s/%s.h", dir, r->base);
    snprintf(c, cap, "%s/%s.c", dir, r->base);
    const char *paths[2] = {h, c};
    const void *bufs[2] = {r->header, r->source};
    size_t lens[2] = {strlen(r->header), strlen(r->source)};
    st = tml_write_files_atomic(2, paths, bufs, lens);
    free(h);
    free(c);
    return st;
}

tml_status tml_export_schedule(const tml_model *m, const tml_export_opts *o, tml_schedule *s)
{
    memset(s, 0, sizeof *s);
    if (!o || !o->schedule) return tml_error(TML_ERR_INVALID, "tml_export_schedule: no schedule options");
    tml_export_result r;
    tml_status st = tml_export_c(m, o, &r);
    if (st) return st;
    *s = *r.schedule;
    free(r.schedule);
    r.schedule = NULL;
    tml_export_result_free(&r);
    return TML_OK;
}
