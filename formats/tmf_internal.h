/*
 * tmf_internal.h - pieces shared by the .tmf reader/writer (formats/tmf*.c)
 * and its unit tests. Not part of the public API: cli/ and other modules use
 * tml_format.h only.
 *
 *   tmf_huff.c    growable byte buffer, LSB-first bit packing, canonical
 *                 length-limited Huffman coding of symbol streams
 *   tmf_tensor.c  the TNSR chunk payload: encoding choice, encoder, decoder
 *   tmf_json.c    the META and GRPH chunks (JSON via cJSON)
 *   tmf.c         signature, chunk framing, load/save, the byte-layout summary
 */
#ifndef TML_TMF_INTERNAL_H
#define TML_TMF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tinyml/tml_format.h"

/* CRC comparison of the reader. Fuzz builds (tests/fuzz, TML_FUZZ) accept any
 * CRC, as libpng and zlib do under the same macro, so that mutated inputs reach
 * the parsers behind the checks instead of all stopping at the CRC. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define TMF_CRC_OK(got, want) ((void)(got), (void)(want), 1)
#else
#define TMF_CRC_OK(got, want) ((got) == (want))
#endif

/* ---- growable output buffer ------------------------------------------------------
 * Appends never fail loudly: the first failed allocation sets `oom` and later
 * appends do nothing, so a writer checks `oom` once at the end. */
typedef struct tml_buf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} tml_buf;

void tml_buf_free(tml_buf *b);
/* Makes room for `extra` more bytes; returns 0 (and sets oom) on failure. */
int tml_buf_reserve(tml_buf *b, size_t extra);
void tml_buf_put(tml_buf *b, const void *src, size_t n);
/* Appends n zero bytes and returns a pointer to them (NULL on OOM). */
uint8_t *tml_buf_zeros(tml_buf *b, size_t n);
void tml_buf_u8(tml_buf *b, uint8_t v);
void tml_buf_u16(tml_buf *b, uint16_t v); /* little-endian */
void tml_buf_u32(tml_buf *b, uint32_t v); /* little-endian */

/* ---- bounds-checked little-endian reader ------------------------------------------- */
typedef struct tml_rd {
    const uint8_t *p;
    size_t len, pos;
} tml_rd;

static inline size_t tml_rd_left(const tml_rd *r) { return r->len - r->pos; }
static inline uint16_t tml_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t tml_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void tml_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
/* Each returns 1 and advances, or 0 (position unchanged) when too few bytes remain. */
static inline int tml_rd_u8(tml_rd *r, uint8_t *v)
{
    if (tml_rd_left(r) < 1) return 0;
    *v = r->p[r->pos++];
    return 1;
}
static inline int tml_rd_u16(tml_rd *r, uint16_t *v)
{
    if (tml_rd_left(r) < 2) return 0;
    *v = tml_le16(r->p + r->pos);
    r->pos += 2;
    return 1;
}
static inline int tml_rd_u32(tml_rd *r, uint32_t *v)
{
    if (tml_rd_left(r) < 4) return 0;
    *v = tml_le32(r->p + r->pos);
    r->pos += 4;
    return 1;
}
static inline int tml_rd_bytes(tml_rd *r, size_t n, const uint8_t **out)
{
    if (tml_rd_left(r) < n) return 0;
    *out = r->p + r->pos;
    r->pos += n;
    return 1;
}

/* ---- bit packing (LSB-first) ----------------------------------------------------------
 * Entry j of width w (1..8) occupies stream bits j*w .. j*w+w-1, where stream
 * bit b is bit (b % 8) of byte b / 8, and the entry's least significant bit
 * comes first. Unused high bits of the last byte are zero. */
size_t tml_bits_bytes(size_t n, int w);
/* out must hold tml_bits_bytes(n, w) bytes; it is fully written (padding zeroed).
 * Only the low w bits of each value are used. */
void tml_bits_pack(const uint8_t *v, size_t n, int w, uint8_t *out);
void tml_bits_unpack(const uint8_t *in, size_t n, int w, uint8_t *v);
/* Entry j of a packed stream. */
static inline unsigned tml_bits_get(const uint8_t *in, size_t j, int w)
{
    size_t bit = j * (size_t)w;
    unsigned v = in[bit >> 3] >> (bit & 7);
    if ((bit & 7) + (size_t)w > 8) v |= (unsigned)in[(bit >> 3) + 1] << (8 - (bit & 7));
    return v & ((1u << w) - 1u);
}

/* ---- canonical Huffman over a 2^w-symbol alphabet (w = 1..8) ---------------------------
 * A coded stream ("Huffman section", docs/format.md):
 *   u32  size          bytes that follow (table + code bits)
 *   u8   table[ceil(2^w / 2)]  4-bit code length per symbol, symbol 2i in the low
 *                      nibble of table[i], 2i+1 in the high nibble; 0 = unused
 *   bits               the n codes, LSB-first bit stream, each code MSB first,
 *                      zero-padded to a byte
 * Codes are canonical (ordered by length, then symbol) and at most
 * TML_HUFF_MAXLEN bits. The code is complete (Kraft sum 1) except for a one-symbol
 * alphabet, which uses the single 1-bit code '0'; n = 0 has an all-zero table. */
#define TML_HUFF_MAXLEN 15

/* Optimal code lengths limited to maxlen bits (package-merge) for nsym
 * frequencies; symbols with frequency 0 get length 0. Requires the number of
 * used symbols <= 2^maxlen. A single used symbol gets length 1. NOMEM possible. */
tml_status tml_huff_lengths(const uint64_t *freq, int nsym, int maxlen, uint8_t *len);
/* Appends the section coding sym[0..n) (each < 2^w). */
tml_status tml_huff_encode(const uint8_t *sym, size_t n, int w, tml_buf *out);
/* Decodes exactly n symbols from the section at p (avail bytes available);
 * *used = bytes of the section, size field included. Never reads past
 * p + avail; TML_ERR_FORMAT with a message on any inconsistency. */
tml_status tml_huff_decode(const uint8_t *p, size_t avail, size_t n, int w, uint8_t *sym, size_t *used);

/* ---- TNSR chunk payload (tmf_tensor.c) ----------------------------------------------------- */
/* Appends the payload for tensor t, choosing the smallest encoding `o` and
 * t->store_hint allow; st (may be NULL) receives the choice (bytes = chunk
 * size including the 12 bytes of framing). */
tml_status tml_tnsr_encode(const tml_tensor *t, const tml_save_opts *o, tml_buf *out, tml_tensor_storage *st);
/* Test hook: the payload with one fixed encoding (cluster = CLUSTER values,
 * which needs a usable codebook; a sparse layout needs a pruned tensor).
 * TML_ERR_INVALID when the encoding cannot apply (e.g. HUFFMAN without a
 * symbol stream). */
tml_status tml_tnsr_encode_as(const tml_tensor *t, int cluster, tml_layout layout, int g, tml_entropy entropy, tml_buf *out);
/* Decodes one payload and appends the tensor to m (ids follow file order).
 * *budget is the number of bytes the whole file may still decode to (tensor
 * data, codebook indices, inflated bodies): it is checked against the
 * tensor's header before anything is allocated and decreased on success. */
tml_status tml_tnsr_decode(tml_model *m, const uint8_t *p, size_t len, int64_t *budget);
/* Best-effort tensor name of a (maybe corrupt) payload for error messages:
 * printable ASCII only, "" if none can be read. */
void tml_tnsr_peek_name(const uint8_t *p, size_t len, char *out, size_t cap);

/* ---- META / GRPH JSON (tmf_json.c) ------------------------------------------------------------ */
/* Malloc'd NUL-terminated JSON text; TML_ERR_INVALID when meta.history/extra
 * are not valid JSON of the right kind. */
tml_status tml_meta_to_json(const tml_meta *meta, char **out);
tml_status tml_meta_from_json(tml_meta *meta, const uint8_t *text, size_t len);
tml_status tml_graph_to_json(const tml_model *m, char **out);
/* Adds the nodes and sets input/output; tensors must already be in m. Does
 * not call tml_model_finalize(). */
tml_status tml_graph_from_json(tml_model *m, const uint8_t *text, size_t len);

#endif
