/*
 * tmf_huff.c - byte buffer, LSB-first bit packing and canonical, length-limited
 * Huffman coding used by the TNSR chunk (docs/format.md, "Entropy coding").
 *
 * Code lengths come from package-merge (Larmore & Hirschberg), which gives the
 * optimal prefix code whose longest code is at most TML_HUFF_MAXLEN bits; with
 * at most 256 symbols that costs at most 15 * 511 list items.
 */
#include <stdlib.h>
#include <string.h>

#include "tmf_internal.h"

/* ---- buffer ----------------------------------------------------------------------- */

void tml_buf_free(tml_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

int tml_buf_reserve(tml_buf *b, size_t extra)
{
    if (b->oom) return 0;
    if (extra <= b->cap - b->len) return 1;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void tml_buf_put(tml_buf *b, const void *src, size_t n)
{
    if (!n || !tml_buf_reserve(b, n)) return;
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

uint8_t *tml_buf_zeros(tml_buf *b, size_t n)
{
    if (!tml_buf_reserve(b, n ? n : 1)) return NULL;
    uint8_t *p = b->p + b->len;
    memset(p, 0, n);
    b->len += n;
    return p;
}

void tml_buf_u8(tml_buf *b, uint8_t v) { tml_buf_put(b, &v, 1); }

void tml_buf_u16(tml_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    tml_buf_put(b, x, 2);
}

void tml_buf_u32(tml_buf *b, uint32_t v)
{
    uint8_t x[4];
    tml_put_le32(x, v);
    tml_buf_put(b, x, 4);
}

/* ---- bit packing -------------------------------------------------------------------- */

size_t tml_bits_bytes(size_t n, int w) { return (n * (size_t)w + 7) / 8; }

void tml_bits_pack(const uint8_t *v, size_t n, int w, uint8_t *out)
{
    unsigned mask = (1u << w) - 1u;
    memset(out, 0, tml_bits_bytes(n, w));
    size_t bit = 0;
    for (size_t i = 0; i < n; i++, bit += (size_t)w) {
        unsigned x = v[i] & mask, sh = (unsigned)(bit & 7);
        out[bit >> 3] |= (uint8_t)(x << sh);
        if (sh + (unsigned)w > 8) out[(bit >> 3) + 1] |= (uint8_t)(x >> (8 - sh));
    }
}

void tml_bits_unpack(const uint8_t *in, size_t n, int w, uint8_t *v)
{
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)tml_bits_get(in, i, w);
}

/* ---- code lengths: package-merge ------------------------------------------------------ */

typedef struct pm_item {
    uint64_t w;
    int sym; /* >= 0: a leaf (symbol); -1: a package of two items of the level below */
} pm_item;

static int leaf_cmp(const void *a, const void *b)
{
    const pm_item *x = a, *y = b;
    if (x->w != y->w) return x->w < y->w ? -1 : 1;
    return x->sym - y->sym; /* ties by symbol: deterministic output */
}

tml_status tml_huff_lengths(const uint64_t *freq, int nsym, int maxlen, uint8_t *len)
{
    pm_item leaves[256];
    int n = 0;
    TML_ASSERT(nsym >= 1 && nsym <= 256 && maxlen >= 1 && maxlen <= 24);
    memset(len, 0, (size_t)nsym);
    for (int s = 0; s < nsym; s++)
        if (freq[s]) leaves[n++] = (pm_item){freq[s], s};
    if (n == 0) return TML_OK;
    if (n == 1) {
        len[leaves[0].sym] = 1;
        return TML_OK;
    }
    TML_ASSERT(maxlen >= 24 || n <= (1 << maxlen));
    qsort(leaves, (size_t)n, sizeof *leaves, leaf_cmp);

    /* list[l] for l = 0 (depth maxlen, leaves only) .. maxlen-1 (depth 1): each
     * is the merge, by weight, of the leaves and the pairwise packages of list[l-1]. */
    size_t per = (size_t)(2 * n);
    pm_item *lists = malloc(sizeof *lists * per * (size_t)maxlen);
    int *cnt = malloc(sizeof *cnt * (size_t)maxlen);
    if (!lists || !cnt) {
        free(lists);
        free(cnt);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    memcpy(lists, leaves, sizeof *leaves * (size_t)n);
    cnt[0] = n;
    for (int l = 1; l < maxlen; l++) {
        const pm_item *prev = lists + per * (size_t)(l - 1);
        pm_item *cur = lists + per * (size_t)l;
        int np = cnt[l - 1] / 2, i = 0, j = 0, k = 0;
        while (i < n || j < np) {
            uint64_t pw = j < np ? prev[2 * j].w + prev[2 * j + 1].w : 0;
            if (i < n && (j >= np || leaves[i].w <= pw)) {
                cur[k++] = leaves[i++];
            } else {
                cur[k++] = (pm_item){pw, -1};
                j++;
            }
        }
        cnt[l] = k;
    }
    /* The first 2n-2 items of the top list form the solution; a selected
     * package selects the first 2*(packages selected) items of the list below. */
    int take = 2 * n - 2;
    for (int l = maxlen - 1; l >= 0 && take > 0; l--) {
        const pm_item *cur = lists + per * (size_t)l;
        int pk = 0;
        TML_ASSERT(take <= cnt[l]);
        for (int i = 0; i < take; i++) {
            if (cur[i].sym >= 0)
                len[cur[i].sym]++;
            else
                pk++;
        }
        take = 2 * pk;
    }
    free(lists);
    free(cnt);
    return TML_OK;
}

/* Canonical codes: shorter codes first, equal lengths by symbol (as deflate). */
static void canonical_codes(const uint8_t *len, int nsym, uint32_t *code)
{
    int count[TML_HUFF_MAXLEN + 1] = {0};
    uint32_t next[TML_HUFF_MAXLEN + 1];
    for (int s = 0; s < nsym; s++) count[len[s]]++;
    count[0] = 0;
    uint32_t c = 0;
    for (int l = 1; l <= TML_HUFF_MAXLEN; l++) {
        c = (c + (uint32_t)count[l - 1]) << 1;
        next[l] = c;
    }
    for (int s = 0; s < nsym; s++) code[s] = len[s] ? next[len[s]]++ : 0;
}

tml_status tml_huff_encode(const uint8_t *sym, size_t n, int w, tml_buf *out)
{
    TML_ASSERT(w >= 1 && w <= 8);
    int nsym = 1 << w;
    unsigned mask = (unsigned)nsym - 1u;
    uint64_t freq[256] = {0};
    uint8_t len[256];
    uint32_t code[256];
    for (size_t i = 0; i < n; i++) freq[sym[i] & mask]++;
    tml_status st = tml_huff_lengths(freq, nsym, TML_HUFF_MAXLEN, len);
    if (st) return st;
    canonical_codes(len, nsym, code);
    uint64_t bits = 0;
    for (int s = 0; s < nsym; s++) bits += freq[s] * len[s];
    size_t tbytes = (size_t)nsym / 2, cbytes = (size_t)((bits + 7) / 8);
    if (tbytes + cbytes > UINT32_MAX) return tml_error(TML_ERR_INVALID, "Huffman stream too large");
    tml_buf_u32(out, (uint32_t)(tbytes + cbytes));
    for (size_t i = 0; i < tbytes; i++) tml_buf_u8(out, (uint8_t)(len[2 * i] | (len[2 * i + 1] << 4)));
    uint8_t *dst = tml_buf_zeros(out, cbytes);
    if (!dst) return tml_error(TML_ERR_NOMEM, "out of memory");
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned s = sym[i] & mask;
        for (int k = len[s] - 1; k >= 0; k--, pos++)
            if ((code[s] >> k) & 1u) dst[pos >> 3] |= (uint8_t)(1u << (pos & 7));
    }
    return TML_OK;
}

tml_status tml_huff_decode(const uint8_t *p, size_t avail, size_t n, int w, uint8_t *sym, size_t *used)
{
    TML_ASSERT(w >= 1 && w <= 8);
    int nsym = 1 << w;
    size_t tbytes = (size_t)nsym / 2;
    if (avail < 4) return tml_error(TML_ERR_FORMAT, "Huffman section truncated (no size field)");
    uint32_t size = tml_le32(p);
    if (size > avail - 4)
        return tml_error(TML_ERR_FORMAT, "Huffman section of %u bytes exceeds the %zu bytes left in the body", size, avail - 4);
    if (size < tbytes) return tml_error(TML_ERR_FORMAT, "Huffman section of %u bytes is smaller than its code table (%zu)", size, tbytes);
    const uint8_t *tab = p + 4, *bits = p + 4 + tbytes;
    size_t nbits = ((size_t)size - tbytes) * 8;

    uint8_t len[256];
    int count[TML_HUFF_MAXLEN + 1] = {0}, used_syms = 0;
    for (int s = 0; s < nsym; s++) {
        len[s] = (uint8_t)((tab[s / 2] >> ((s & 1) * 4)) & 15);
        count[len[s]]++;
        used_syms += len[s] != 0;
    }
    if (n == 0) {
        if (used_syms || size != tbytes) return tml_error(TML_ERR_FORMAT, "Huffman section for an empty stream is not empty");
        *used = 4 + (size_t)size;
        return TML_OK;
    }
    if (used_syms == 0) return tml_error(TML_ERR_FORMAT, "Huffman code table has no symbols");
    if (used_syms == 1) {
        if (count[1] != 1) return tml_error(TML_ERR_FORMAT, "Huffman code of one symbol must have length 1");
    } else {
        uint32_t kraft = 0;
        for (int l = 1; l <= TML_HUFF_MAXLEN; l++) kraft += (uint32_t)count[l] << (TML_HUFF_MAXLEN - l);
        if (kraft != (1u << TML_HUFF_MAXLEN))
            return tml_error(TML_ERR_FORMAT, "Huffman code lengths are %s", kraft > (1u << TML_HUFF_MAXLEN) ? "oversubscribed" : "incomplete");
    }
    if (n > nbits) return tml_error(TML_ERR_FORMAT, "Huffman section too short: %zu symbols in %zu bits", n, nbits);

    /* symbols ordered by (length, symbol): the canonical order */
    int offs[TML_HUFF_MAXLEN + 2], sorted[256];
    offs[1] = 0;
    for (int l = 1; l <= TML_HUFF_MAXLEN; l++) offs[l + 1] = offs[l] + count[l];
    for (int s = 0; s < nsym; s++)
        if (len[s]) sorted[offs[len[s]]++] = s;

    /* Decode bit by bit (as zlib's puff): `code` is the bits read so far,
     * `first` the first code of the current length, `index` the position of
     * that code's symbol in `sorted`. */
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        int code = 0, first = 0, index = 0, l;
        for (l = 1; l <= TML_HUFF_MAXLEN; l++) {
            if (pos >= nbits) return tml_error(TML_ERR_FORMAT, "Huffman stream ends after %zu of %zu symbols", i, n);
            code |= (bits[pos >> 3] >> (pos & 7)) & 1;
            pos++;
            int c = count[l];
            if (code - first < c) {
                sym[i] = (uint8_t)sorted[index + (code - first)];
                break;
            }
            index += c;
            first = (first + c) << 1;
            code <<= 1;
        }
        if (l > TML_HUFF_MAXLEN) return tml_error(TML_ERR_FORMAT, "invalid Huffman code at symbol %zu", i);
    }
    size_t cbytes = (pos + 7) / 8;
    if (cbytes != (size_t)size - tbytes)
        return tml_error(TML_ERR_FORMAT, "Huffman section has %zu unused bytes after its last symbol", (size_t)size - tbytes - cbytes);
    if ((pos & 7) && (bits[pos >> 3] >> (pos & 7)) != 0) return tml_error(TML_ERR_FORMAT, "Huffman section has nonzero padding bits");
    *used = 4 + (size_t)size;
    return TML_OK;
}
