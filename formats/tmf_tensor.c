/*
 * tmf_tensor.c - the TNSR chunk payload: one tensor's header, quantization
 * parameters, codebook and encoded values (byte layout: tmf.c header comment
 * and docs/format.md, "TNSR").
 *
 * Writer: builds every encoding the save options and the tensor's store_hint
 * allow (layout x relidx gap width x entropy coder) and keeps the smallest
 * body; the first candidate in the order DENSE, BITMAP, RELIDX g=1..8, each
 * with NONE, HUFFMAN, DEFLATE, wins ties, so the simpler encoding is kept.
 * Reader: validates every field against the chunk length before allocating,
 * decodes the body to its raw form, checks raw_crc, then rebuilds the dense
 * values (and the codebook index for clustered tensors).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define ZLIB_CONST /* next_in is const */
#include <zlib.h>

#include "tmf_internal.h"

#define FLAG_PRUNED 0x01u
#define FLAG_QUANT 0x02u
#define FLAG_CODEBOOK 0x04u
#define FLAG_ZP_ZERO 0x08u /* quant zero points all 0 and omitted (symmetric weights, int32 biases) */
#define FLAG_LOWBIT 0x10u  /* int8 constant of 2..7-bit values: a width byte follows, RAW values packed */
#define FLAG_KNOWN (FLAG_PRUNED | FLAG_QUANT | FLAG_CODEBOOK | FLAG_ZP_ZERO | FLAG_LOWBIT)

/* zlib's deflate never expands data by more than 1032:1; anything claiming more is corrupt. */
#define DEFLATE_MAX_RATIO 1032u

/* Bit pattern of a stored float (read through memory: NaN payloads survive). */
static uint32_t f32_bits_at(const float *f)
{
    uint32_t u;
    memcpy(&u, f, sizeof u);
    return u;
}


/* Bit pattern of element i in its dtype (int8 as its byte). */
static uint32_t elem_bits(const tml_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case TML_DTYPE_F32: {
        /* memcpy, not a float load: NaN payloads must survive untouched */
        uint32_t u;
        memcpy(&u, (const float *)t->data + i, sizeof u);
        return u;
    }
    case TML_DTYPE_INT8: return (uint8_t)((const int8_t *)t->data)[i];
    default: return (uint32_t)((const int32_t *)t->data)[i];
    }
}

static void set_elem_bits(tml_tensor *t, int64_t i, uint32_t v)
{
    switch (t->dtype) {
    case TML_DTYPE_F32: memcpy((float *)t->data + i, &v, sizeof v); break;
    case TML_DTYPE_INT8: ((int8_t *)t->data)[i] = (int8_t)(uint8_t)v; break;
    default: ((int32_t *)t->data)[i] = (int32_t)v; break;
    }
}

/* Bit pattern a centroid stands for in a tensor of `dtype`. */
static uint32_t centroid_bits(tml_dtype dtype, const float *c)
{
    return dtype == TML_DTYPE_F32 ? f32_bits_at(c) : (uint8_t)(int8_t)(int)*c;
}

/* Elements per codebook: the whole tensor, or one output channel (dim 0). */
static int64_t book_span(int64_t numel, int n_books) { return n_books <= 1 ? numel : numel / n_books; }

/* ---- writer --------------------------------------------------------------------- */

/* Can this tensor be written with CLUSTER values? Only when its codebook is
 * well formed and reproduces the data bit for bit (a stale codebook would
 * silently change the weights, so the data wins and the tensor is written RAW). */
static int cluster_usable(const tml_tensor *t, int64_t numel)
{
    const tml_codebook *cb = t->cb;
    if (!cb || !cb->centroids || !cb->index || t->kind != TML_TENSOR_PARAM) return 0;
    if (t->dtype != TML_DTYPE_F32 && t->dtype != TML_DTYPE_INT8) return 0;
    if (cb->k < 1 || cb->k > 256 || cb->bits < 1 || cb->bits > 8 || cb->k > (1 << cb->bits)) return 0;
    if (!(cb->n_books == 1 || (t->ndim > 0 && cb->n_books == t->dims[0] && cb->n_books >= 1))) return 0;
    int64_t nc = (int64_t)cb->n_books * cb->k;
    if (t->dtype == TML_DTYPE_INT8) {
        for (int64_t i = 0; i < nc; i++) {
            float c = cb->centroids[i];
            if (!(c >= -128.0f && c <= 127.0f) || c != floorf(c)) return 0;
        }
    }
    int64_t span = book_span(numel, cb->n_books);
    for (int64_t i = 0; i < numel; i++) {
        int ix = cb->index[i];
        if (ix >= cb->k) return 0;
        int64_t book = cb->n_books == 1 ? 0 : i / span;
        if (centroid_bits(t->dtype, &cb->centroids[book * cb->k + ix]) != elem_bits(t, i)) return 0;
    }
    return 1;
}

typedef struct enc_ctx {
    const tml_tensor *t;
    int64_t numel;
    size_t esz;           /* bytes per RAW value */
    int cluster;          /* values are written as codebook indices */
    int bits;             /* index width when cluster */
    int lowbits;          /* RAW int8 values packed at this width (2..7), 0 = bytes */
    const uint8_t *idx;   /* (numel) codebook indices when cluster */
    uint8_t *gsym;        /* (numel) relidx gap of each entry */
    uint8_t *vsym;        /* (numel) value symbol of each entry: index, or int8 byte */
    uint8_t *vraw;        /* (numel * esz) RAW values of the entries, little-endian */
    uint8_t *bitmap;      /* (ceil(numel/8)) BITMAP position stream */
} enc_ctx;

/* Elements a sparse layout must store: everything but all-zero-bit values
 * (clustered: index 0 holding an all-zero value). -0.0f is stored. */
static int must_store(const enc_ctx *c, int64_t i)
{
    if (c->cluster && c->idx[i] != 0) return 1;
    return elem_bits(c->t, i) != 0;
}

static void add_entry(enc_ctx *c, size_t j, int64_t i, int64_t gap)
{
    if (c->gsym) c->gsym[j] = (uint8_t)gap;
    if (c->cluster) {
        c->vsym[j] = c->idx[i];
        return;
    }
    uint32_t v = elem_bits(c->t, i);
    uint8_t *d = c->vraw + j * c->esz;
    for (size_t k = 0; k < c->esz; k++) d[k] = (uint8_t)(v >> (8 * k));
    /* low-bit values: the low `lowbits` bits of the two's complement byte */
    if (c->vsym) c->vsym[j] = (uint8_t)(c->lowbits ? v & ((1u << c->lowbits) - 1u) : v);
}

/* Lists the entries (stored values) of a layout; returns their count. RELIDX
 * gaps are entry position - previous entry position - 1 (previous = -1 at the
 * start); a gap over 2^g - 1 is bridged by filler entries at distance 2^g,
 * which are unstored elements and so hold zero (index 0). The zero tail after
 * the last stored element is bridged the same way (as if element numel were
 * stored), so a reader can bound numel by (entries + 1) * 2^g before it
 * allocates anything. */
static size_t make_entries(enc_ctx *c, tml_layout layout, int g)
{
    size_t n = 0;
    int64_t prev = -1, maxgap = g ? ((int64_t)1 << g) - 1 : 0;
    if (layout == TML_LAYOUT_BITMAP) memset(c->bitmap, 0, (size_t)((c->numel + 7) / 8));
    for (int64_t i = 0; i < c->numel; i++) {
        if (layout == TML_LAYOUT_DENSE) {
            add_entry(c, n++, i, 0);
            continue;
        }
        if (!must_store(c, i)) continue;
        if (layout == TML_LAYOUT_BITMAP) {
            c->bitmap[i >> 3] |= (uint8_t)(1u << (i & 7));
            add_entry(c, n++, i, 0);
            continue;
        }
        while (i - prev - 1 > maxgap) {
            prev += maxgap + 1;
            add_entry(c, n++, prev, maxgap);
        }
        add_entry(c, n++, i, i - prev - 1);
        prev = i;
    }
    if (layout == TML_LAYOUT_RELIDX) {
        while (c->numel - prev - 1 > maxgap) {
            prev += maxgap + 1;
            add_entry(c, n++, prev, maxgap);
        }
    }
    return n;
}

/* One encoding tried by the writer. Candidates are ranked in the order
 * layouts DENSE, BITMAP, RELIDX g=1..8, each with NONE, HUFFMAN, DEFLATE; the
 * smallest body wins and a tie goes to the lower rank (the simpler encoding). */
typedef struct cand {
    tml_layout layout;
    int g;
    tml_entropy entropy;
    int rank;
    size_t sv;
    size_t raw_len;
    uint32_t raw_crc;
    tml_buf body;
} cand;

static int layout_index(tml_layout layout, int g)
{
    return layout == TML_LAYOUT_DENSE ? 0 : layout == TML_LAYOUT_BITMAP ? 1 : 1 + g;
}

static int cand_rank(tml_layout layout, int g, tml_entropy e)
{
    int ei = e == TML_ENTROPY_NONE ? 0 : e == TML_ENTROPY_HUFFMAN ? 1 : 2;
    return layout_index(layout, g) * 3 + ei;
}

/* Keeps `body` in *best when it beats it (takes ownership of body's memory then). */
static void offer(cand *best, tml_layout layout, int g, tml_entropy e, size_t n, const tml_buf *raw, uint32_t crc, tml_buf *body)
{
    int rank = cand_rank(layout, g, e);
    if (best->sv == SIZE_MAX || body->len < best->body.len || (body->len == best->body.len && rank < best->rank)) {
        tml_buf_free(&best->body);
        *best = (cand){layout, g, e, rank, n, raw->len, crc, *body};
        *body = (tml_buf){0};
    }
}

/* The raw (pre-entropy) body of one layout: position stream, value stream.
 * Also leaves the entries' symbols in c->gsym / c->vsym for Huffman coding. */
static tml_status build_raw(enc_ctx *c, tml_layout layout, int g, tml_buf *raw, size_t *n_out, size_t *pos_out)
{
    size_t n = make_entries(c, layout, g);
    size_t pos_bytes = layout == TML_LAYOUT_BITMAP   ? (size_t)((c->numel + 7) / 8)
                       : layout == TML_LAYOUT_RELIDX ? tml_bits_bytes(n, g)
                                                     : 0;
    size_t val_bytes = c->cluster ? tml_bits_bytes(n, c->bits) : c->lowbits ? tml_bits_bytes(n, c->lowbits) : n * c->esz;
    uint8_t *p = tml_buf_zeros(raw, pos_bytes + val_bytes);
    if (!p) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (layout == TML_LAYOUT_BITMAP) memcpy(p, c->bitmap, pos_bytes);
    if (layout == TML_LAYOUT_RELIDX) tml_bits_pack(c->gsym, n, g, p);
    if (c->cluster)
        tml_bits_pack(c->vsym, n, c->bits, p + pos_bytes);
    else if (c->lowbits)
        tml_bits_pack(c->vsym, n, c->lowbits, p + pos_bytes);
    else if (val_bytes)
        memcpy(p + pos_bytes, c->vraw, val_bytes);
    *n_out = n;
    *pos_out = pos_bytes;
    return TML_OK;
}

static int has_symbol_stream(const enc_ctx *c, tml_layout layout)
{
    return layout == TML_LAYOUT_RELIDX || c->cluster || c->t->dtype == TML_DTYPE_INT8;
}

/* Under HUFFMAN: each symbol stream gets its own code; other streams are copied. */
static tml_status huffman_body(const enc_ctx *c, tml_layout layout, int g, size_t n, const tml_buf *raw, size_t pos_bytes,
                               tml_buf *out)
{
    tml_status st = TML_OK;
    if (layout == TML_LAYOUT_BITMAP)
        tml_buf_put(out, raw->p, pos_bytes);
    else if (layout == TML_LAYOUT_RELIDX)
        st = tml_huff_encode(c->gsym, n, g, out);
    if (st) return st;
    if (c->cluster)
        st = tml_huff_encode(c->vsym, n, c->bits, out);
    else if (c->t->dtype == TML_DTYPE_INT8)
        st = tml_huff_encode(c->vsym, n, c->lowbits ? c->lowbits : 8, out);
    else
        tml_buf_put(out, raw->p + pos_bytes, raw->len - pos_bytes);
    if (!st && out->oom) st = tml_error(TML_ERR_NOMEM, "out of memory");
    return st;
}

/* zlib at level 9 (the stream compress2(..., 9) produces). Stops early, with
 * *done = 0, once the output would exceed `budget` bytes: that candidate
 * cannot win, and level 9 is slow on the zero-heavy bodies of sparse tensors. */
static tml_status deflate_body(const tml_buf *raw, size_t budget, tml_buf *out, int *done)
{
    z_stream z;
    *done = 0;
    if (raw->len > UINT32_MAX / 2) return tml_error(TML_ERR_INVALID, "tensor body too large to deflate");
    size_t bound = (size_t)compressBound((uLong)raw->len);
    size_t cap = budget < bound ? budget + 1 : bound; /* +1: an exact fit still reports the end */
    uint8_t *dst = tml_buf_zeros(out, cap);
    if (!dst) return tml_error(TML_ERR_NOMEM, "out of memory");
    memset(&z, 0, sizeof z);
    int zr = deflateInit(&z, 9);
    if (zr != Z_OK) return tml_error(zr == Z_MEM_ERROR ? TML_ERR_NOMEM : TML_ERR_INVALID, "zlib deflateInit failed (%d)", zr);
    z.next_in = raw->len ? raw->p : (const Bytef *)"";
    z.avail_in = (uInt)raw->len;
    z.next_out = dst;
    z.avail_out = (uInt)cap;
    zr = deflate(&z, Z_FINISH);
    size_t produced = (size_t)z.total_out;
    deflateEnd(&z);
    if (zr == Z_STREAM_END && produced <= budget) {
        *done = 1;
        out->len -= cap - produced;
        return TML_OK;
    }
    if (zr != Z_OK && zr != Z_BUF_ERROR && zr != Z_STREAM_END) return tml_error(TML_ERR_INVALID, "zlib deflate failed (%d)", zr);
    return TML_OK;
}

/* Tries NONE and HUFFMAN (the cheap coders) for one layout; returns its raw size. */
static tml_status try_cheap(enc_ctx *c, tml_layout layout, int g, int entropy_ok, cand *best, size_t *raw_len)
{
    tml_buf raw = {0}, body = {0};
    size_t n, pos_bytes;
    tml_status st = build_raw(c, layout, g, &raw, &n, &pos_bytes);
    if (st) return st;
    uint32_t crc = tml_crc32(0, raw.p, raw.len);
    *raw_len = raw.len;
    tml_buf_put(&body, raw.p, raw.len);
    if (body.oom) st = tml_error(TML_ERR_NOMEM, "out of memory");
    if (!st) offer(best, layout, g, TML_ENTROPY_NONE, n, &raw, crc, &body);
    tml_buf_free(&body);
    if (!st && entropy_ok && has_symbol_stream(c, layout)) {
        st = huffman_body(c, layout, g, n, &raw, pos_bytes, &body);
        if (!st) offer(best, layout, g, TML_ENTROPY_HUFFMAN, n, &raw, crc, &body);
        tml_buf_free(&body);
    }
    tml_buf_free(&raw);
    return st;
}

/* Tries DEFLATE for one layout against the current best. */
static tml_status try_deflate(enc_ctx *c, tml_layout layout, int g, cand *best)
{
    tml_buf raw = {0}, body = {0};
    size_t n, pos_bytes;
    int done = 0;
    tml_status st = build_raw(c, layout, g, &raw, &n, &pos_bytes);
    if (!st) st = deflate_body(&raw, best->sv == SIZE_MAX ? SIZE_MAX - 1 : best->body.len, &body, &done);
    if (!st && done) offer(best, layout, g, TML_ENTROPY_DEFLATE, n, &raw, tml_crc32(0, raw.p, raw.len), &body);
    tml_buf_free(&body);
    tml_buf_free(&raw);
    return st;
}

/* One fixed candidate (the test hook); *best stays empty when it cannot apply. */
static tml_status try_forced(enc_ctx *c, tml_layout layout, int g, tml_entropy e, cand *best)
{
    tml_buf raw = {0}, body = {0};
    size_t n, pos_bytes;
    int done = 1;
    tml_status st = build_raw(c, layout, g, &raw, &n, &pos_bytes);
    if (!st && e == TML_ENTROPY_NONE) tml_buf_put(&body, raw.p, raw.len);
    if (!st && e == TML_ENTROPY_HUFFMAN && has_symbol_stream(c, layout)) st = huffman_body(c, layout, g, n, &raw, pos_bytes, &body);
    if (!st && e == TML_ENTROPY_DEFLATE) st = deflate_body(&raw, SIZE_MAX - 1, &body, &done);
    if (!st && body.oom) st = tml_error(TML_ERR_NOMEM, "out of memory");
    if (!st && done && (e != TML_ENTROPY_HUFFMAN || has_symbol_stream(c, layout)))
        offer(best, layout, g, e, n, &raw, tml_crc32(0, raw.p, raw.len), &body);
    tml_buf_free(&body);
    tml_buf_free(&raw);
    return st;
}

/* The exhaustive search: every layout (and relidx width) with NONE and
 * HUFFMAN, then DEFLATE in order of growing raw size so the budget that
 * abandons hopeless candidates is as small as possible early. The result is
 * the same as trying everything in rank order. */
static tml_status search(enc_ctx *c, int sparse_ok, int entropy_ok, cand *best)
{
    tml_layout lay[10];
    int gs[10], nl = 0;
    size_t raw_len[10];
    lay[nl] = TML_LAYOUT_DENSE;
    gs[nl++] = 0;
    if (sparse_ok) {
        lay[nl] = TML_LAYOUT_BITMAP;
        gs[nl++] = 0;
        for (int g = 1; g <= 8; g++) {
            lay[nl] = TML_LAYOUT_RELIDX;
            gs[nl++] = g;
        }
    }
    tml_status st = TML_OK;
    for (int i = 0; i < nl && !st; i++) st = try_cheap(c, lay[i], gs[i], entropy_ok, best, &raw_len[i]);
    if (st || !entropy_ok) return st;
    int order[10];
    for (int i = 0; i < nl; i++) { /* insertion sort by raw size, stable */
        int j = i;
        while (j > 0 && raw_len[order[j - 1]] > raw_len[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (int k = 0; k < nl && !st; k++) {
        int i = order[k];
        /* deflate cannot shrink data more than DEFLATE_MAX_RATIO:1 */
        if ((uint64_t)raw_len[i] > ((uint64_t)best->body.len + 64) * DEFLATE_MAX_RATIO) continue;
        st = try_deflate(c, lay[i], gs[i], best);
    }
    return st;
}

static tml_status check_writable(const tml_tensor *t, int64_t *numel)
{
    const char *nm = t->name ? t->name : "";
    if (!*nm) return tml_error(TML_ERR_INVALID, "cannot save a tensor without a name");
    if (strlen(nm) > 65535) return tml_error(TML_ERR_INVALID, "tensor name '%.40s...' is longer than 65535 bytes", nm);
    if (t->dtype < 0 || t->dtype >= TML_DTYPE_COUNT) return tml_error(TML_ERR_INVALID, "tensor '%s': bad dtype %d", nm, (int)t->dtype);
    if (t->kind != TML_TENSOR_ACT && t->kind != TML_TENSOR_PARAM) return tml_error(TML_ERR_INVALID, "tensor '%s': bad kind %d", nm, (int)t->kind);
    if (t->ndim < 0 || t->ndim > TML_MAX_DIMS) return tml_error(TML_ERR_INVALID, "tensor '%s': %d dims", nm, t->ndim);
    *numel = tml_dims_numel(t->ndim, t->dims);
    if (*numel < 0) return tml_error(TML_ERR_INVALID, "tensor '%s': dimensions negative or too large", nm);
    if (t->kind == TML_TENSOR_PARAM && !t->data) return tml_error(TML_ERR_INVALID, "tensor '%s': constant without data", nm);
    if (t->q.n > 0) {
        int ok = t->q.scale && t->q.zero_point &&
                 ((t->q.axis == -1 && t->q.n == 1) || (t->q.axis >= 0 && t->q.axis < t->ndim && t->q.n == t->dims[t->q.axis]));
        if (!ok) return tml_error(TML_ERR_INVALID, "tensor '%s': inconsistent quantization (axis %d, %d scales)", nm, t->q.axis, t->q.n);
    }
    if (t->qbits) {
        if (t->qbits < 2 || t->qbits > 7 || t->dtype != TML_DTYPE_INT8 || t->kind != TML_TENSOR_PARAM)
            return tml_error(TML_ERR_INVALID, "tensor '%s': %d-bit values need an int8 constant and 2..7 bits", nm, t->qbits);
        const int8_t *d = t->data;
        for (int64_t i = 0; i < *numel; i++)
            if (d[i] < TML_QBITS_MIN(t->qbits) || d[i] > TML_QBITS_MAX(t->qbits))
                return tml_error(TML_ERR_INVALID, "tensor '%s': value %d does not fit %d bits", nm, d[i], t->qbits);
    }
    return TML_OK;
}

/* One fixed encoding (tml_tnsr_encode_as), or NULL: the smallest allowed. */
typedef struct forced_enc {
    int cluster;
    tml_layout layout;
    int g;
    tml_entropy entropy;
} forced_enc;

static tml_status encode_impl(const tml_tensor *t, const tml_save_opts *o, const forced_enc *f, tml_buf *out,
                              tml_tensor_storage *st_out)
{
    int64_t numel = 0;
    tml_status st = check_writable(t, &numel);
    if (st) return st;
    size_t start = out->len;
    int param = t->kind == TML_TENSOR_PARAM;
    int cluster = param && (f ? f->cluster : o->allow_cluster) && cluster_usable(t, numel);
    if (f && f->cluster && !cluster) return tml_error(TML_ERR_INVALID, "tensor '%s': no usable codebook", t->name);
    uint8_t flags = (uint8_t)((t->pruned ? FLAG_PRUNED : 0) | (t->q.n > 0 ? FLAG_QUANT : 0) | (cluster ? FLAG_CODEBOOK : 0) |
                              (t->qbits ? FLAG_LOWBIT : 0));
    if (t->q.n > 0) {
        int all_zero = 1;
        for (int i = 0; i < t->q.n; i++) all_zero &= t->q.zero_point[i] == 0;
        if (all_zero) flags |= FLAG_ZP_ZERO;
    }

    size_t nl = strlen(t->name);
    tml_buf_u16(out, (uint16_t)nl);
    tml_buf_put(out, t->name, nl);
    tml_buf_u8(out, (uint8_t)t->dtype);
    tml_buf_u8(out, (uint8_t)t->kind);
    tml_buf_u8(out, (uint8_t)t->ndim);
    tml_buf_u8(out, flags);
    for (int i = 0; i < t->ndim; i++) tml_buf_u32(out, (uint32_t)t->dims[i]);
    tml_buf_u32(out, t->store_hint);
    if (flags & FLAG_QUANT) {
        tml_buf_u32(out, (uint32_t)t->q.axis);
        tml_buf_u32(out, (uint32_t)t->q.n);
        for (int i = 0; i < t->q.n; i++) tml_buf_u32(out, f32_bits_at(&t->q.scale[i]));
        if (!(flags & FLAG_ZP_ZERO))
            for (int i = 0; i < t->q.n; i++) tml_buf_u32(out, (uint32_t)t->q.zero_point[i]);
    }
    if (flags & FLAG_LOWBIT) tml_buf_u8(out, (uint8_t)t->qbits);
    if (cluster) {
        const tml_codebook *cb = t->cb;
        tml_buf_u16(out, (uint16_t)cb->k);
        tml_buf_u8(out, (uint8_t)cb->bits);
        tml_buf_u32(out, (uint32_t)cb->n_books);
        int64_t nc = (int64_t)cb->n_books * cb->k;
        for (int64_t i = 0; i < nc; i++) {
            if (t->dtype == TML_DTYPE_F32)
                tml_buf_u32(out, f32_bits_at(&cb->centroids[i]));
            else
                tml_buf_u8(out, (uint8_t)(int8_t)(int)cb->centroids[i]);
        }
    }
    tml_tensor_storage info = {TML_LAYOUT_DENSE, TML_VAL_RAW, TML_ENTROPY_NONE, 0, 0};
    if (!param) {
        if (out->oom) return tml_error(TML_ERR_NOMEM, "out of memory");
        info.bytes = (int64_t)(out->len - start) + 12;
        if (st_out) *st_out = info;
        return TML_OK;
    }

    enc_ctx c = {0};
    c.t = t;
    c.numel = numel;
    c.esz = tml_dtype_size(t->dtype);
    c.cluster = cluster;
    c.bits = cluster ? t->cb->bits : 0;
    c.lowbits = cluster ? 0 : t->qbits;
    c.idx = cluster ? t->cb->index : NULL;
    int sparse_ok = t->pruned && o->allow_sparse && (t->store_hint & TML_STORE_SPARSE) && numel > 0;
    if (f && f->layout != TML_LAYOUT_DENSE) {
        if (!t->pruned || numel == 0) return tml_error(TML_ERR_INVALID, "tensor '%s': sparse layout needs a pruned tensor", t->name);
        sparse_ok = 1;
    }
    int entropy_ok = o->allow_entropy && (t->store_hint & TML_STORE_ENTROPY);
    size_t un = (size_t)(numel ? numel : 1);
    if (sparse_ok) {
        c.gsym = malloc(un);
        c.bitmap = malloc((un + 7) / 8);
    }
    if (cluster || t->dtype == TML_DTYPE_INT8) c.vsym = malloc(un);
    if (!cluster) c.vraw = malloc(un * c.esz);
    cand best = {0};
    best.sv = SIZE_MAX;
    if ((sparse_ok && (!c.gsym || !c.bitmap)) || ((cluster || t->dtype == TML_DTYPE_INT8) && !c.vsym) || (!cluster && !c.vraw)) {
        st = tml_error(TML_ERR_NOMEM, "out of memory encoding tensor '%s'", t->name);
        goto done;
    }
    if (f) {
        st = try_forced(&c, f->layout, f->g, f->entropy, &best);
        if (!st && best.sv == SIZE_MAX)
            st = tml_error(TML_ERR_INVALID, "tensor '%s': entropy coder %d not applicable", t->name, (int)f->entropy);
    } else {
        st = search(&c, sparse_ok, entropy_ok, &best);
    }
    if (st) goto done;
    if (best.raw_len > UINT32_MAX || best.body.len > UINT32_MAX) {
        st = tml_error(TML_ERR_INVALID, "tensor '%s' is too large for one chunk", t->name);
        goto done;
    }
    tml_buf_u8(out, (uint8_t)best.layout);
    tml_buf_u8(out, (uint8_t)(cluster ? TML_VAL_CLUSTER : TML_VAL_RAW));
    tml_buf_u8(out, (uint8_t)best.entropy);
    tml_buf_u8(out, (uint8_t)best.g);
    tml_buf_u32(out, (uint32_t)best.sv);
    tml_buf_u32(out, (uint32_t)best.raw_len);
    tml_buf_u32(out, best.raw_crc);
    tml_buf_u32(out, (uint32_t)best.body.len);
    tml_buf_put(out, best.body.p, best.body.len);
    if (out->oom) {
        st = tml_error(TML_ERR_NOMEM, "out of memory");
        goto done;
    }
    info.layout = best.layout;
    info.valcode = cluster ? TML_VAL_CLUSTER : TML_VAL_RAW;
    info.entropy = best.entropy;
    info.stored_values = (int64_t)best.sv;
    info.bytes = (int64_t)(out->len - start) + 12;
    if (st_out) *st_out = info;
done:
    tml_buf_free(&best.body);
    free(c.gsym);
    free(c.bitmap);
    free(c.vsym);
    free(c.vraw);
    return st;
}

tml_status tml_tnsr_encode(const tml_tensor *t, const tml_save_opts *o, tml_buf *out, tml_tensor_storage *st)
{
    return encode_impl(t, o, NULL, out, st);
}

tml_status tml_tnsr_encode_as(const tml_tensor *t, int cluster, tml_layout layout, int g, tml_entropy entropy, tml_buf *out)
{
    tml_save_opts all;
    forced_enc f = {cluster, layout, layout == TML_LAYOUT_RELIDX ? g : 0, entropy};
    tml_save_opts_default(&all);
    return encode_impl(t, &all, &f, out, NULL);
}

tml_status tml_tensor_storage_plan(const tml_tensor *t, const tml_save_opts *opts, tml_tensor_storage *st)
{
    tml_save_opts def;
    if (!opts) {
        tml_save_opts_default(&def);
        opts = &def;
    }
    tml_buf tmp = {0};
    tml_status s = tml_tnsr_encode(t, opts, &tmp, st);
    tml_buf_free(&tmp);
    return s;
}

/* ---- reader -------------------------------------------------------------------- */

void tml_tnsr_peek_name(const uint8_t *p, size_t len, char *out, size_t cap)
{
    size_t k = 0;
    if (cap == 0) return;
    if (len >= 2) {
        size_t nl = tml_le16(p);
        if (nl > len - 2) nl = len - 2;
        for (size_t i = 0; i < nl && k + 1 < cap; i++) {
            uint8_t ch = p[2 + i];
            out[k++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
        }
    }
    out[k] = '\0';
}

#define BAD(...) tml_error(TML_ERR_FORMAT, __VA_ARGS__)

typedef struct dec_hdr {
    tml_dtype dtype;
    tml_tensor_kind kind;
    int ndim;
    uint8_t flags;
    int32_t dims[TML_MAX_DIMS];
    int64_t numel;
    uint32_t store_hint;
    int q_axis, q_n;
    float *q_scale;   /* (q_n) */
    int32_t *q_zp;    /* (q_n) */
    int cb_k, cb_bits, cb_books;
    float *centroids; /* (cb_books, cb_k) */
    int qbits;        /* FLAG_LOWBIT: value width 2..7, else 0 */
} dec_hdr;

static tml_status read_quant(tml_rd *r, dec_hdr *h)
{
    uint32_t axis, n;
    if (!tml_rd_u32(r, &axis) || !tml_rd_u32(r, &n)) return BAD("quantization header truncated");
    int32_t ax = (int32_t)axis;
    if (ax < -1 || ax >= h->ndim) return BAD("quantization axis %d out of range for %d dims", ax, h->ndim);
    if (ax == -1 ? n != 1 : (n < 1 || n != (uint32_t)h->dims[ax]))
        return BAD("%u quantization scales for axis %d (expected %d)", n, ax, ax == -1 ? 1 : h->dims[ax]);
    int zp_zero = (h->flags & FLAG_ZP_ZERO) != 0;
    if ((uint64_t)n * (zp_zero ? 4 : 8) > tml_rd_left(r)) return BAD("quantization parameters truncated (%u scales)", n);
    h->q_axis = ax;
    h->q_n = (int)n;
    h->q_scale = malloc(sizeof(float) * n);
    h->q_zp = malloc(sizeof(int32_t) * n);
    if (!h->q_scale || !h->q_zp) return tml_error(TML_ERR_NOMEM, "out of memory");
    uint32_t v = 0;
    for (uint32_t i = 0; i < n; i++) {
        tml_rd_u32(r, &v);
        memcpy(&h->q_scale[i], &v, sizeof v);
    }
    for (uint32_t i = 0; i < n; i++) {
        v = 0;
        if (!zp_zero) tml_rd_u32(r, &v);
        h->q_zp[i] = (int32_t)v;
    }
    return TML_OK;
}

static tml_status read_codebook(tml_rd *r, dec_hdr *h)
{
    uint16_t k;
    uint8_t bits;
    uint32_t books;
    if (h->kind != TML_TENSOR_PARAM) return BAD("an activation cannot have a codebook");
    if (h->dtype != TML_DTYPE_F32 && h->dtype != TML_DTYPE_INT8) return BAD("codebook on a %s tensor", tml_dtype_name(h->dtype));
    if (!tml_rd_u16(r, &k) || !tml_rd_u8(r, &bits) || !tml_rd_u32(r, &books)) return BAD("codebook header truncated");
    if (k < 1 || k > 256) return BAD("codebook has %u centroids (1..256)", k);
    if (bits < 1 || bits > 8) return BAD("codebook index width %u bits (1..8)", bits);
    if (k > (1u << bits)) return BAD("%u centroids do not fit %u-bit indices", k, bits);
    if (!(books == 1 || (h->ndim > 0 && books == (uint32_t)h->dims[0] && books >= 1)))
        return BAD("%u codebooks (must be 1 or dims[0] = %d)", books, h->ndim > 0 ? h->dims[0] : 0);
    uint64_t nc = (uint64_t)books * k, esz = h->dtype == TML_DTYPE_F32 ? 4 : 1;
    if (nc * esz > tml_rd_left(r)) return BAD("codebook centroids truncated (%llu centroids)", (unsigned long long)nc);
    h->cb_k = k;
    h->cb_bits = bits;
    h->cb_books = (int)books;
    h->centroids = malloc(sizeof(float) * (size_t)nc);
    if (!h->centroids) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < nc; i++) {
        if (esz == 4) {
            uint32_t v = 0;
            tml_rd_u32(r, &v);
            memcpy(&h->centroids[i], &v, sizeof v);
        } else {
            uint8_t v = 0;
            tml_rd_u8(r, &v);
            h->centroids[i] = (float)(int8_t)v;
        }
    }
    return TML_OK;
}

static tml_status read_header(tml_rd *r, dec_hdr *h, char **name)
{
    uint16_t nl;
    const uint8_t *np;
    uint8_t dtype, kind, ndim;
    if (!tml_rd_u16(r, &nl) || !tml_rd_bytes(r, nl, &np)) return BAD("tensor name truncated");
    if (nl == 0) return BAD("tensor has an empty name");
    if (memchr(np, 0, nl)) return BAD("tensor name contains a NUL byte");
    *name = malloc((size_t)nl + 1);
    if (!*name) return tml_error(TML_ERR_NOMEM, "out of memory");
    memcpy(*name, np, nl);
    (*name)[nl] = '\0';
    if (!tml_rd_u8(r, &dtype) || !tml_rd_u8(r, &kind) || !tml_rd_u8(r, &ndim) || !tml_rd_u8(r, &h->flags))
        return BAD("tensor header truncated");
    if (dtype >= TML_DTYPE_COUNT) return BAD("unknown dtype %u", dtype);
    if (kind > TML_TENSOR_PARAM) return BAD("unknown tensor kind %u", kind);
    if (ndim > TML_MAX_DIMS) return BAD("%u dimensions (max %d)", ndim, TML_MAX_DIMS);
    if (h->flags & ~FLAG_KNOWN) return BAD("unknown flag bits 0x%02x", h->flags & ~FLAG_KNOWN);
    if ((h->flags & FLAG_ZP_ZERO) && !(h->flags & FLAG_QUANT)) return BAD("zero-point flag without quantization parameters");
    h->dtype = (tml_dtype)dtype;
    h->kind = (tml_tensor_kind)kind;
    h->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        uint32_t d;
        if (!tml_rd_u32(r, &d)) return BAD("dimensions truncated");
        if ((int32_t)d < 0) return BAD("negative dimension %d", (int32_t)d);
        h->dims[i] = (int32_t)d;
    }
    h->numel = tml_dims_numel(h->ndim, h->dims);
    if (h->numel < 0) return BAD("dimensions exceed the limit of %lld elements", (long long)TML_MAX_NUMEL);
    if (!tml_rd_u32(r, &h->store_hint)) return BAD("store hint truncated");
    tml_status st;
    if ((h->flags & FLAG_QUANT) && (st = read_quant(r, h))) return st;
    if (h->flags & FLAG_LOWBIT) {
        uint8_t qb;
        if (h->kind != TML_TENSOR_PARAM || h->dtype != TML_DTYPE_INT8) return BAD("low-bit flag on a tensor that is not an int8 constant");
        if (!tml_rd_u8(r, &qb)) return BAD("value width truncated");
        if (qb < 2 || qb > 7) return BAD("value width %u bits (low-bit values are 2..7 bits)", qb);
        h->qbits = qb;
    }
    if ((h->flags & FLAG_CODEBOOK) && (st = read_codebook(r, h))) return st;
    if (h->qbits && h->centroids) {
        for (int64_t i = 0; i < (int64_t)h->cb_books * h->cb_k; i++)
            if (h->centroids[i] < TML_QBITS_MIN(h->qbits) || h->centroids[i] > TML_QBITS_MAX(h->qbits))
                return BAD("centroid %g does not fit %d bits", (double)h->centroids[i], h->qbits);
    }
    return TML_OK;
}

/* Encoding fields of a PARAM tensor, checked for consistency. */
typedef struct dec_enc {
    uint8_t layout, valcode, entropy, g;
    uint32_t sv, raw_len, raw_crc, body_len;
    const uint8_t *body;
    uint64_t pos_bytes, val_bytes;
} dec_enc;

static tml_status read_encoding(tml_rd *r, const dec_hdr *h, dec_enc *e)
{
    if (!tml_rd_u8(r, &e->layout) || !tml_rd_u8(r, &e->valcode) || !tml_rd_u8(r, &e->entropy) || !tml_rd_u8(r, &e->g) ||
        !tml_rd_u32(r, &e->sv) || !tml_rd_u32(r, &e->raw_len) || !tml_rd_u32(r, &e->raw_crc) || !tml_rd_u32(r, &e->body_len))
        return BAD("encoding header truncated");
    if (e->layout > TML_LAYOUT_RELIDX) return BAD("unknown layout %u", e->layout);
    if (e->valcode > TML_VAL_CLUSTER) return BAD("unknown value coding %u", e->valcode);
    if (e->entropy > TML_ENTROPY_HUFFMAN) return BAD("unknown entropy coding %u", e->entropy);
    if ((e->valcode == TML_VAL_CLUSTER) != !!(h->flags & FLAG_CODEBOOK))
        return BAD("%s", e->valcode == TML_VAL_CLUSTER ? "clustered values without a codebook" : "codebook without clustered values");
    if (e->layout != TML_LAYOUT_DENSE && !(h->flags & FLAG_PRUNED)) return BAD("sparse layout on a tensor not marked pruned");
    if (e->layout == TML_LAYOUT_RELIDX ? (e->g < 1 || e->g > 8) : e->g != 0)
        return BAD("bad layout parameter %u for layout %u", e->g, e->layout);
    if ((int64_t)e->sv > h->numel) return BAD("%u stored values for %lld elements", e->sv, (long long)h->numel);
    if (e->layout == TML_LAYOUT_DENSE && (int64_t)e->sv != h->numel)
        return BAD("dense layout stores %u values for %lld elements", e->sv, (long long)h->numel);
    if (e->layout == TML_LAYOUT_RELIDX && (uint64_t)h->numel > ((uint64_t)e->sv + 1) << e->g)
        return BAD("relative indices: %u entries of %u bits cannot cover %lld elements", e->sv, e->g, (long long)h->numel);
    if (e->body_len != tml_rd_left(r))
        return BAD("body length %u does not match the %zu bytes left in the chunk", e->body_len, tml_rd_left(r));
    tml_rd_bytes(r, e->body_len, &e->body);
    e->pos_bytes = e->layout == TML_LAYOUT_BITMAP   ? ((uint64_t)h->numel + 7) / 8
                   : e->layout == TML_LAYOUT_RELIDX ? ((uint64_t)e->sv * e->g + 7) / 8
                                                    : 0;
    e->val_bytes = e->valcode == TML_VAL_CLUSTER ? ((uint64_t)e->sv * (uint64_t)h->cb_bits + 7) / 8
                   : h->qbits                    ? ((uint64_t)e->sv * (uint64_t)h->qbits + 7) / 8
                                                 : (uint64_t)e->sv * tml_dtype_size(h->dtype);
    if (e->pos_bytes + e->val_bytes != e->raw_len)
        return BAD("raw body length %u, expected %llu for this layout", e->raw_len, (unsigned long long)(e->pos_bytes + e->val_bytes));
    switch (e->entropy) {
    case TML_ENTROPY_NONE:
        if (e->body_len != e->raw_len) return BAD("body length %u differs from raw length %u", e->body_len, e->raw_len);
        break;
    case TML_ENTROPY_DEFLATE:
        if ((uint64_t)e->raw_len > (uint64_t)e->body_len * DEFLATE_MAX_RATIO + 64)
            return BAD("deflate body of %u bytes cannot hold %u raw bytes", e->body_len, e->raw_len);
        break;
    default:
        /* every Huffman symbol costs >= 1 bit and stands for <= 8 raw bits */
        if ((uint64_t)e->raw_len > (uint64_t)e->body_len * 8 + 64 || (uint64_t)e->sv > (uint64_t)e->body_len * 8 + 64)
            return BAD("Huffman body of %u bytes cannot hold %u raw bytes", e->body_len, e->raw_len);
        break;
    }
    return TML_OK;
}

/* Decodes a HUFFMAN body into its raw form (raw_len bytes). */
static tml_status huffman_to_raw(const dec_hdr *h, const dec_enc *e, uint8_t *raw)
{
    const uint8_t *p = e->body;
    size_t left = e->body_len, used;
    uint8_t *sym = malloc(e->sv ? e->sv : 1);
    tml_status st = TML_OK;
    if (!sym) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (e->layout == TML_LAYOUT_BITMAP) {
        if (left < e->pos_bytes) {
            st = BAD("Huffman body too short for its bitmap");
            goto out;
        }
        memcpy(raw, p, (size_t)e->pos_bytes);
        p += e->pos_bytes;
        left -= (size_t)e->pos_bytes;
    } else if (e->layout == TML_LAYOUT_RELIDX) {
        if ((st = tml_huff_decode(p, left, e->sv, e->g, sym, &used))) {
            tml_error_context(st, "relative-index stream");
            goto out;
        }
        tml_bits_pack(sym, e->sv, e->g, raw);
        p += used;
        left -= used;
    }
    uint8_t *vraw = raw + e->pos_bytes;
    int w = e->valcode == TML_VAL_CLUSTER ? h->cb_bits : h->qbits ? h->qbits : h->dtype == TML_DTYPE_INT8 ? 8 : 0;
    if (w) {
        if ((st = tml_huff_decode(p, left, e->sv, w, sym, &used))) {
            tml_error_context(st, "value stream");
            goto out;
        }
        if (w < 8)
            tml_bits_pack(sym, e->sv, w, vraw);
        else
            memcpy(vraw, sym, e->sv);
        left -= used;
    } else {
        if (left < e->val_bytes) {
            st = BAD("Huffman body too short for its values");
            goto out;
        }
        memcpy(vraw, p, (size_t)e->val_bytes);
        left -= (size_t)e->val_bytes;
    }
    if (left) st = BAD("%zu unused bytes after the Huffman streams", left);
out:
    free(sym);
    return st;
}

/* Nonzero bits past `nbits` in the last byte of a packed stream? */
static int bad_padding(const uint8_t *p, uint64_t nbits)
{
    return (nbits & 7) && (p[nbits >> 3] >> (nbits & 7)) != 0;
}

/* Fills t (and its codebook) from a verified raw body. */
static tml_status raw_to_tensor(const dec_hdr *h, const dec_enc *e, const uint8_t *raw, tml_tensor *t)
{
    const uint8_t *ps = raw, *vs = raw + e->pos_bytes;
    int cluster = e->valcode == TML_VAL_CLUSTER;
    size_t esz = tml_dtype_size(h->dtype);
    int64_t numel = h->numel, span = book_span(numel, h->cb_books);
    uint8_t *index = cluster ? t->cb->index : NULL;
    const float *cent = cluster ? t->cb->centroids : NULL; /* (n_books, k) */

    if (e->layout == TML_LAYOUT_BITMAP) {
        uint64_t pop = 0;
        static const uint8_t nib[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};
        for (uint64_t i = 0; i < e->pos_bytes; i++) pop += (uint64_t)(nib[ps[i] & 15] + nib[ps[i] >> 4]);
        if (bad_padding(ps, (uint64_t)numel)) return BAD("bitmap has bits set past the last element");
        if (pop != e->sv) return BAD("bitmap marks %llu elements but %u values are stored", (unsigned long long)pop, e->sv);
    }
    if (e->layout == TML_LAYOUT_RELIDX && bad_padding(ps, (uint64_t)e->sv * e->g)) return BAD("relative-index stream has nonzero padding bits");
    if (cluster && bad_padding(vs, (uint64_t)e->sv * (uint64_t)h->cb_bits)) return BAD("index stream has nonzero padding bits");
    if (!cluster && h->qbits && bad_padding(vs, (uint64_t)e->sv * (uint64_t)h->qbits)) return BAD("value stream has nonzero padding bits");

    int64_t prev = -1, bi = 0;
    for (uint64_t j = 0; j < e->sv; j++) {
        int64_t i;
        if (e->layout == TML_LAYOUT_DENSE) {
            i = (int64_t)j;
        } else if (e->layout == TML_LAYOUT_BITMAP) {
            while (!((ps[bi >> 3] >> (bi & 7)) & 1)) bi++; /* popcount == sv: a set bit remains */
            i = bi++;
        } else {
            i = prev + (int64_t)tml_bits_get(ps, j, e->g) + 1;
            if (i >= numel) return BAD("relative index %llu runs past the end (element %lld of %lld)", (unsigned long long)j, (long long)i, (long long)numel);
            prev = i;
        }
        if (cluster) {
            unsigned ix = tml_bits_get(vs, j, h->cb_bits);
            if (ix >= (unsigned)h->cb_k) return BAD("codebook index %u out of range (k = %d) at element %lld", ix, h->cb_k, (long long)i);
            index[i] = (uint8_t)ix;
            int64_t book = h->cb_books == 1 ? 0 : i / span;
            set_elem_bits(t, i, centroid_bits(h->dtype, &cent[book * h->cb_k + ix]));
        } else if (h->qbits) {
            /* sign-extend the b-bit field: every pattern is a valid value */
            int v = (int)tml_bits_get(vs, j, h->qbits);
            if (v > TML_QBITS_MAX(h->qbits)) v -= 1 << h->qbits;
            ((int8_t *)t->data)[i] = (int8_t)v;
        } else {
            const uint8_t *d = vs + j * esz;
            uint32_t v = 0;
            for (size_t k = 0; k < esz; k++) v |= (uint32_t)d[k] << (8 * k);
            set_elem_bits(t, i, v);
        }
    }
    if (e->layout == TML_LAYOUT_RELIDX && numel - 1 - prev > ((int64_t)1 << e->g) - 1)
        return BAD("relative indices end %lld elements before the end (at most %d allowed)", (long long)(numel - 1 - prev), (1 << e->g) - 1);
    /* Unstored elements of a clustered tensor are index 0 holding 0: the
     * book's centroid 0 must then be zero, or the data and codebook disagree. */
    if (cluster && e->layout != TML_LAYOUT_DENSE) {
        for (int64_t i = 0; i < numel; i++) {
            if (index[i] != 0) continue;
            int64_t book = h->cb_books == 1 ? 0 : i / span;
            uint32_t c0 = centroid_bits(h->dtype, &cent[book * h->cb_k]);
            if (c0 != elem_bits(t, i)) return BAD("element %lld is not stored but centroid 0 of codebook %lld is not zero", (long long)i, (long long)book);
        }
    }
    return TML_OK;
}

tml_status tml_tnsr_decode(tml_model *m, const uint8_t *p, size_t len, int64_t *budget)
{
    tml_rd r = {p, len, 0};
    dec_hdr h;
    dec_enc e;
    char *name = NULL;
    uint8_t *raw_buf = NULL;
    memset(&h, 0, sizeof h);
    memset(&e, 0, sizeof e);
    h.q_axis = -1;
    tml_status st = read_header(&r, &h, &name);
    if (st) goto out;

    if (h.kind == TML_TENSOR_PARAM) {
        if ((st = read_encoding(&r, &h, &e))) goto out;
    } else if (tml_rd_left(&r)) {
        st = BAD("%zu unexpected bytes after an activation's header", tml_rd_left(&r));
        goto out;
    }

    /* What this tensor decodes to, against what the file may still decode to
     * (a few KB of deflated zeros must not become gigabytes in memory). */
    if (h.kind == TML_TENSOR_PARAM) {
        int64_t need = h.numel * (int64_t)tml_dtype_size(h.dtype) + ((h.flags & FLAG_CODEBOOK) ? h.numel : 0) +
                       (e.entropy != TML_ENTROPY_NONE ? (int64_t)e.raw_len : 0);
        if (need > *budget) {
            st = tml_error(TML_ERR_FORMAT,
                           "decodes to %lld bytes, more than the %lld left of this file's budget (64 MiB + 1024 "
                           "x the file size): a decompression bomb or a corrupt file",
                           (long long)need, (long long)(*budget > 0 ? *budget : 0));
            goto out;
        }
        *budget -= need;
    }

    /* Raw body: decoded (and CRC-checked) before the tensor is allocated. */
    const uint8_t *raw = e.body;
    if (h.kind == TML_TENSOR_PARAM) {
        if (e.entropy != TML_ENTROPY_NONE) {
            raw_buf = malloc(e.raw_len ? e.raw_len : 1);
            if (!raw_buf) {
                st = tml_error(TML_ERR_NOMEM, "out of memory (%u bytes)", e.raw_len);
                goto out;
            }
            raw = raw_buf;
        }
        if (e.entropy == TML_ENTROPY_DEFLATE) {
            uLongf dl = e.raw_len;
            uLong sl = e.body_len;
            int zr = uncompress2(raw_buf, &dl, e.body_len ? e.body : (const Bytef *)"", &sl);
            if (zr == Z_MEM_ERROR) {
                st = tml_error(TML_ERR_NOMEM, "out of memory inflating");
                goto out;
            }
            if (zr != Z_OK || dl != e.raw_len || sl != e.body_len) {
                st = BAD("deflate body is corrupt (zlib %d: %lu of %u raw bytes, %lu of %u body bytes used)", zr, (unsigned long)dl,
                         e.raw_len, (unsigned long)sl, e.body_len);
                goto out;
            }
        } else if (e.entropy == TML_ENTROPY_HUFFMAN) {
            if ((st = huffman_to_raw(&h, &e, raw_buf))) goto out;
        }
        uint32_t crc = tml_crc32(0, raw, e.raw_len);
        if (!TMF_CRC_OK(crc, e.raw_crc)) {
            st = BAD("decoded body fails its CRC (0x%08x, expected 0x%08x)", crc, e.raw_crc);
            goto out;
        }
    }

    int id = tml_model_add_tensor(m, name, h.dtype, h.kind, h.ndim, h.dims, NULL);
    if (id < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", tml_last_error());
        st = id == TML_ERR_NOMEM ? (tml_status)id : tml_error(TML_ERR_FORMAT, "%s", msg);
        goto out;
    }
    tml_tensor *t = &m->tensors[id];
    t->pruned = (h.flags & FLAG_PRUNED) ? 1 : 0;
    t->store_hint = h.store_hint;
    t->qbits = h.qbits;
    if (h.q_n > 0 && (st = tml_tensor_set_quant(t, h.q_axis, h.q_n, h.q_scale, h.q_zp))) goto out;
    if (h.kind == TML_TENSOR_PARAM) {
        if (h.flags & FLAG_CODEBOOK) {
            tml_codebook *cb = calloc(1, sizeof *cb);
            uint8_t *index = calloc((size_t)(h.numel ? h.numel : 1), 1);
            if (!cb || !index) {
                free(cb);
                free(index);
                st = tml_error(TML_ERR_NOMEM, "out of memory");
                goto out;
            }
            cb->k = h.cb_k;
            cb->bits = h.cb_bits;
            cb->n_books = h.cb_books;
            cb->centroids = h.centroids;
            cb->index = index;
            h.centroids = NULL;
            t->cb = cb;
        }
        st = raw_to_tensor(&h, &e, raw, t);
    }
out:
    free(name);
    free(raw_buf);
    free(h.q_scale);
    free(h.q_zp);
    free(h.centroids);
    return st;
}
