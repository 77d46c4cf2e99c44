/*
 * tmf.c - the .tmf model file: signature, chunk framing, reading from memory,
 * files and stdin, atomic saving. docs/format.md is the complete spec; this is
 * the byte layout at a glance. All integers are little-endian, written byte
 * by byte (never as structs), so the file is the same on any host.
 *
 * File
 *   1. signature  8 bytes   89 54 4D 46 0D 0A 1A 0A  ("\x89TMF\r\n\x1a\n")
 *   2. chunks     HEAD, META, TNSR (one per tensor, activations included, in
 *                 model tensor order), GRPH, END; nothing may follow END
 *
 * Chunk (12 bytes of framing + payload)
 *   1. length     u32       payload bytes
 *   2. type       4 ASCII   "HEAD" "META" "TNSR" "GRPH" "END " (unknown: skipped)
 *   3. payload    length bytes
 *   4. crc        u32       CRC-32 (zlib, PNG) of type + payload
 *
 * HEAD payload (first chunk; 8 bytes, longer is allowed and the rest ignored)
 *   1. major u16 (TML_FORMAT_MAJOR; a reader refuses a higher major)
 *   2. minor u16 (TML_FORMAT_MINOR; a higher minor is read)
 *   3. flags u32 (0; reserved)
 * META payload: JSON object (name, arch, classes, labels, preprocess, history, ...)
 * GRPH payload: JSON object (input, output, nodes[])
 *   Either payload may instead be a zlib stream of that JSON (first byte 0x78,
 *   which JSON text never starts with); the writer uses it when smaller.
 * END  payload: empty
 *
 * TNSR payload
 *   1. name_len     u16      1..65535
 *   2. name         name_len bytes, UTF-8, no NUL
 *   3. dtype        u8       0 f32, 1 int8, 2 int32
 *   4. kind         u8       0 activation, 1 constant (param)
 *   5. ndim         u8       0..4
 *   6. flags        u8       bit0 pruned, bit1 quant, bit2 codebook, bit3 zero points
 *                            omitted (all 0), bit4 low-bit values; others 0
 *   7. dims         i32[ndim], each >= 0, product <= TML_MAX_NUMEL
 *   8. store_hint   u32      TML_STORE_* bits
 *   9. quant (flags bit1):
 *      9a. axis i32 (-1 per tensor, else 0..ndim-1)   9b. n u32 (1 or dims[axis])
 *      9c. scale f32[n]                                9d. zero_point i32[n] (not with bit3)
 *      9e. qbits u8 (flags bit4; int8 constants only): 2..7, values fit qbits bits
 *  10. codebook (flags bit2; params of dtype f32/int8 only):
 *      10a. k u16 (1..256)   10b. bits u8 (1..8, k <= 2^bits)
 *      10c. n_books u32 (1, or dims[0]: one book per output channel)
 *      10d. centroids[n_books * k]: f32 for f32 tensors, i8 for int8 tensors
 *      (activations end here)
 *  11. layout       u8       0 dense, 1 bitmap, 2 relidx
 *  12. valcode      u8       0 raw, 1 cluster (iff flags bit2)
 *  13. entropy      u8       0 none, 1 deflate, 2 huffman
 *  14. g            u8       relidx gap width 1..8; 0 for other layouts
 *  15. stored_values u32     entries in the value stream (relidx fillers included)
 *  16. raw_len      u32      body bytes before entropy coding
 *  17. raw_crc      u32      CRC-32 of the body before entropy coding
 *  18. body_len     u32      = the bytes left in the payload
 *  19. body         body_len bytes
 *
 * Raw body = position stream, then value stream (each starts on a byte):
 *   position  dense: none; bitmap: ceil(numel/8) bytes, bit i set = element i
 *             stored; relidx: stored_values g-bit gaps (index - previous - 1,
 *             previous starts at -1; longer gaps, and a zero tail longer than
 *             2^g - 1, are bridged by filler entries holding zero / index 0)
 *   values    raw: stored_values values of dtype (low-bit int8: qbits-bit
 *             two's complement fields); cluster: stored_values `bits`-bit
 *             codebook indices
 *   Packed streams are LSB-first; padding bits are zero.
 * Entropy: deflate = zlib stream of the whole raw body; huffman = each symbol
 *   stream (relidx gaps, cluster indices, int8 values) as a Huffman section
 *   (tmf_internal.h), other streams copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tmf_internal.h"

#define BAD(...) tml_error(TML_ERR_FORMAT, __VA_ARGS__)

static const uint8_t tmf_signature[8] = {0x89, 'T', 'M', 'F', 0x0D, 0x0A, 0x1A, 0x0A};

/* Decoding budget of a file of L bytes: FLOOR + RATIO * L bytes of decoded
 * tensors. Dense data never exceeds the file; a pruned or clustered model
 * decodes to tens of times its size (1-bit Huffman-coded cluster indices:
 * 32x), so only inputs built to explode (deflated zeros: up to 1032x per
 * byte, and more through a bitmap of them) reach the limit. */
#define TMF_DECODE_FLOOR ((int64_t)64 << 20)
#define TMF_DECODE_RATIO ((int64_t)1024)

/* Largest input tml_model_load() accepts. */
#define TMF_MAX_INPUT ((size_t)1 << 31)

uint32_t tml_crc32(uint32_t crc, const void *buf, size_t len)
{
    const Bytef *p = buf;
    uLong c = crc;
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

void tml_save_opts_default(tml_save_opts *o)
{
    o->allow_sparse = 1;
    o->allow_cluster = 1;
    o->allow_entropy = 1;
}

/* Thread-safe strerror (XSI strerror_r: _POSIX_C_SOURCE without _GNU_SOURCE). */
static const char *errstr(int e, char *buf, size_t cap)
{
    if (strerror_r(e, buf, cap) != 0) snprintf(buf, cap, "error %d", e);
    return buf;
}

/* ---- writing -------------------------------------------------------------------------- */

/* A JSON chunk payload: the text, or its zlib stream when that is smaller
 * (a model's history grows with every pass; compressed it costs a third). */
static tml_status put_json(tml_buf *b, const char *text)
{
    size_t n = strlen(text);
    uLongf cap = compressBound((uLong)n);
    Bytef *z = malloc(cap ? cap : 1);
    if (!z) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (compress2(z, &cap, (const Bytef *)text, (uLong)n, 9) == Z_OK && cap < n)
        tml_buf_put(b, z, cap);
    else
        tml_buf_put(b, text, n);
    free(z);
    return TML_OK;
}

static size_t chunk_begin(tml_buf *b, const char *type)
{
    size_t at = b->len;
    tml_buf_u32(b, 0); /* length, patched by chunk_end */
    tml_buf_put(b, type, 4);
    return at;
}

static tml_status chunk_end(tml_buf *b, size_t at)
{
    if (b->oom) return tml_error(TML_ERR_NOMEM, "out of memory writing the model");
    size_t plen = b->len - at - 8;
    if (plen > UINT32_MAX) return tml_error(TML_ERR_INVALID, "chunk of %zu bytes is too large for the format", plen);
    tml_put_le32(b->p + at, (uint32_t)plen);
    tml_buf_u32(b, tml_crc32(0, b->p + at + 4, plen + 4));
    return b->oom ? tml_error(TML_ERR_NOMEM, "out of memory writing the model") : TML_OK;
}

tml_status tml_model_write_mem(const tml_model *m, const tml_save_opts *opts, uint8_t **buf, size_t *len)
{
    tml_save_opts def;
    tml_buf b = {0};
    char *meta = NULL, *graph = NULL;
    *buf = NULL;
    *len = 0;
    if (!opts) {
        tml_save_opts_default(&def);
        opts = &def;
    }
    tml_status st = tml_meta_to_json(&m->meta, &meta);
    if (!st) st = tml_graph_to_json(m, &graph);
    if (st) goto out;

    tml_buf_put(&b, tmf_signature, sizeof tmf_signature);
    size_t at = chunk_begin(&b, "HEAD");
    tml_buf_u16(&b, TML_FORMAT_MAJOR);
    tml_buf_u16(&b, TML_FORMAT_MINOR);
    tml_buf_u32(&b, 0);
    if ((st = chunk_end(&b, at))) goto out;

    at = chunk_begin(&b, "META");
    if ((st = put_json(&b, meta)) || (st = chunk_end(&b, at))) goto out;

    for (int i = 0; i < m->n_tensors; i++) {
        at = chunk_begin(&b, "TNSR");
        if ((st = tml_tnsr_encode(&m->tensors[i], opts, &b, NULL))) goto out;
        if ((st = chunk_end(&b, at))) goto out;
    }

    at = chunk_begin(&b, "GRPH");
    if ((st = put_json(&b, graph)) || (st = chunk_end(&b, at))) goto out;

    at = chunk_begin(&b, "END ");
    if ((st = chunk_end(&b, at))) goto out;
    *buf = b.p;
    *len = b.len;
    b.p = NULL;
out:
    tml_buf_free(&b);
    free(meta);
    free(graph);
    return st;
}

/* ---- reading ------------------------------------------------------------------------------- */

static void printable_type(const uint8_t *t, char out[5])
{
    for (int i = 0; i < 4; i++) out[i] = (t[i] >= 0x20 && t[i] < 0x7f) ? (char)t[i] : '?';
    out[4] = '\0';
}

/* " (tensor 'name')" for TNSR chunks whose name can be read, else "". */
static void tensor_label(const uint8_t *type, const uint8_t *pl, size_t plen, char *out, size_t cap)
{
    char name[80];
    out[0] = '\0';
    if (memcmp(type, "TNSR", 4) != 0) return;
    tml_tnsr_peek_name(pl, plen, name, sizeof name);
    if (name[0]) snprintf(out, cap, " (tensor '%s')", name);
}

/* The JSON text of a META / GRPH payload: as is, or inflated when it is a
 * zlib stream. *owned receives a buffer the caller frees (NULL when the text
 * is the payload itself). Inflation is bounded by deflate's maximum ratio. */
static tml_status get_json(const uint8_t *pl, uint32_t plen, const uint8_t **text, size_t *tlen, uint8_t **owned)
{
    *owned = NULL;
    *text = pl;
    *tlen = plen;
    if (plen == 0 || pl[0] != 0x78) return TML_OK;
    size_t cap = (size_t)plen * 4 + 256, max = (size_t)plen * 1032u + 64;
    uint8_t *out = NULL;
    for (;;) {
        uint8_t *nb = realloc(out, cap);
        if (!nb) {
            free(out);
            return tml_error(TML_ERR_NOMEM, "out of memory");
        }
        out = nb;
        uLongf got = (uLongf)cap;
        uLong used = plen;
        int zr = uncompress2(out, &got, pl, &used);
        if (zr == Z_OK && used == plen) {
            *owned = out;
            *text = out;
            *tlen = got;
            return TML_OK;
        }
        if (zr != Z_BUF_ERROR || cap >= max) {
            free(out);
            return BAD("compressed JSON payload is corrupt");
        }
        cap = cap * 4 > max ? max : cap * 4;
    }
}

static tml_status read_head(const uint8_t *pl, uint32_t plen)
{
    if (plen < 8) return BAD("HEAD is %u bytes (expected 8)", plen);
    unsigned major = tml_le16(pl), minor = tml_le16(pl + 2);
    if (major > TML_FORMAT_MAJOR)
        return BAD("written by a newer tinyml (format version %u.%u; this tinyml reads %d.x): upgrade tinyml to read it", major,
                   minor, TML_FORMAT_MAJOR);
    if (major < 1) return BAD("unsupported format version %u.%u", major, minor);
    return TML_OK;
}

tml_status tml_model_read_mem(const void *buf, size_t len, tml_model **out)
{
    const uint8_t *p = buf;
    *out = NULL;
    if (len == 0) return BAD("empty input: no model data");
    if (len < sizeof tmf_signature || memcmp(p, tmf_signature, sizeof tmf_signature) != 0) {
        size_t k = len < sizeof tmf_signature ? len : sizeof tmf_signature;
        if (len < sizeof tmf_signature && memcmp(p, tmf_signature, k) == 0)
            return BAD("truncated file: %zu bytes, shorter than the signature", len);
        return BAD("not a tinyml model file (bad signature)");
    }
    tml_model *m = tml_model_new();
    if (!m) return TML_ERR_NOMEM;

    tml_status st = TML_OK;
    /* everything the tensors decode to, bounded relative to the file size */
    int64_t budget = TMF_DECODE_FLOOR + TMF_DECODE_RATIO * (int64_t)len;
    size_t pos = sizeof tmf_signature, grph_len = 0, grph_off = 0;
    const uint8_t *grph = NULL;
    int idx = 0, grph_idx = -1, have_head = 0, have_meta = 0, done = 0;
    char tname[5], label[128];
    while (!done) {
        size_t left = len - pos;
        if (left == 0) {
            st = BAD("truncated file: it ends after %d chunks without an END chunk", idx);
            goto fail;
        }
        if (left < 12) {
            st = BAD("truncated file: %zu bytes at offset %zu are too few for a chunk", left, pos);
            goto fail;
        }
        uint32_t plen = tml_le32(p + pos);
        const uint8_t *type = p + pos + 4, *pl = p + pos + 8;
        printable_type(type, tname);
        if (plen > left - 12) {
            st = BAD("chunk %d '%s' at offset %zu: length %u exceeds the %zu bytes left (truncated or corrupt file)", idx, tname, pos,
                     plen, left - 12);
            goto fail;
        }
        label[0] = '\0';
        uint32_t crc = tml_le32(pl + plen);
        if (!TMF_CRC_OK(tml_crc32(0, type, (size_t)plen + 4), crc)) {
            tensor_label(type, pl, plen, label, sizeof label);
            st = BAD("chunk %d '%s'%s at offset %zu: CRC mismatch (the file is corrupted)", idx, tname, label, pos);
            goto fail;
        }
        if (idx == 0 && memcmp(type, "HEAD", 4) != 0) {
            st = BAD("first chunk is '%s', expected HEAD", tname);
            goto fail;
        }
        int dup = 0;
        if (memcmp(type, "HEAD", 4) == 0) {
            dup = have_head++;
            if (!dup) st = read_head(pl, plen);
        } else if (memcmp(type, "META", 4) == 0) {
            dup = have_meta++;
            if (!dup) {
                const uint8_t *jt;
                size_t jl;
                uint8_t *own;
                st = get_json(pl, plen, &jt, &jl, &own);
                if (!st) st = tml_meta_from_json(&m->meta, jt, jl);
                free(own);
            }
        } else if (memcmp(type, "TNSR", 4) == 0) {
            st = tml_tnsr_decode(m, pl, plen, &budget);
            if (st) tensor_label(type, pl, plen, label, sizeof label);
        } else if (memcmp(type, "GRPH", 4) == 0) {
            /* built after END, when every tensor is known */
            dup = grph != NULL;
            grph = pl;
            grph_len = plen;
            grph_idx = idx;
            grph_off = pos;
        } else if (memcmp(type, "END ", 4) == 0) {
            if (plen != 0) st = BAD("END chunk has a %u-byte payload", plen);
            done = 1;
        } /* else: unknown chunk type, from a newer writer: skipped */
        if (dup) st = BAD("duplicate %s chunk", tname);
        if (st) {
            tml_error_context(st, "chunk %d '%s'%s at offset %zu", idx, tname, label, pos);
            goto fail;
        }
        pos += 12 + (size_t)plen;
        idx++;
    }
    if (pos != len) {
        st = BAD("%zu bytes of unexpected data after the END chunk", len - pos);
        goto fail;
    }
    if (!grph) {
        st = BAD("no GRPH chunk: the file has no graph");
        goto fail;
    }
    const uint8_t *gjt;
    size_t gjl;
    uint8_t *gown = NULL;
    st = get_json(grph, grph_len, &gjt, &gjl, &gown);
    if (!st) st = tml_graph_from_json(m, gjt, gjl);
    free(gown);
    if (st) {
        tml_error_context(st, "chunk %d 'GRPH' at offset %zu", grph_idx, grph_off);
        goto fail;
    }
    if ((st = tml_model_finalize(m))) {
        st = tml_error_context(st == TML_ERR_NOMEM ? st : TML_ERR_FORMAT, "invalid graph");
        goto fail;
    }
    if ((st = tml_model_check_meta(m))) goto fail;
    *out = m;
    return TML_OK;
fail:
    tml_model_free(m);
    return st;
}

/* Reads a whole stream into memory (pipes included), up to TMF_MAX_INPUT. */
static tml_status read_all(FILE *f, const char *what, uint8_t **buf, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    char eb[128];
    *buf = NULL;
    *len = 0;
    if (!b) return tml_error(TML_ERR_NOMEM, "out of memory");
    for (;;) {
        if (n == cap) {
            /* one byte past the limit is enough to know the input is too large */
            if (cap > TMF_MAX_INPUT) {
                free(b);
                return tml_error(TML_ERR_IO, "%s is larger than %zu MiB: not a model this tool can handle", what, TMF_MAX_INPUT >> 20);
            }
            size_t ncap = cap * 2 > TMF_MAX_INPUT ? TMF_MAX_INPUT + 1 : cap * 2;
            uint8_t *nb = realloc(b, ncap);
            if (!nb) {
                free(b);
                return tml_error(TML_ERR_NOMEM, "out of memory reading %s", what);
            }
            b = nb;
            cap = ncap;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        /* not a model from its first bytes on (/dev/zero, a wrong file): stop
         * now rather than after reading up to the size limit */
        if (n < sizeof tmf_signature && n + r >= sizeof tmf_signature && memcmp(b, tmf_signature, sizeof tmf_signature) != 0) {
            free(b);
            return BAD("not a tinyml model file (bad signature)");
        }
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                int e = errno;
                free(b);
                return tml_error(TML_ERR_IO, "cannot read %s: %s", what, errstr(e, eb, sizeof eb));
            }
            break;
        }
    }
    if (n > TMF_MAX_INPUT) {
        free(b);
        return tml_error(TML_ERR_IO, "%s is larger than %zu MiB: not a model this tool can handle", what, TMF_MAX_INPUT >> 20);
    }
    *buf = b;
    *len = n;
    return TML_OK;
}

tml_status tml_model_load(const char *path, tml_model **out)
{
    int use_stdin = !path || strcmp(path, "-") == 0;
    char what[4200], eb[128];
    uint8_t *buf;
    size_t len;
    *out = NULL;
    if (use_stdin)
        snprintf(what, sizeof what, "standard input");
    else
        snprintf(what, sizeof what, "'%s'", path);
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        int e = errno;
        return tml_error(TML_ERR_IO, "cannot open '%s': %s", path, errstr(e, eb, sizeof eb));
    }
    tml_status st = read_all(f, what, &buf, &len);
    if (!use_stdin) fclose(f);
    if (st) return st;
    if (len == 0) {
        free(buf);
        if (use_stdin) return BAD("empty input: no model on stdin? (pipe a .tmf file or give a path)");
        return BAD("%s is empty (0 bytes): not a model file", what);
    }
    st = tml_model_read_mem(buf, len, out);
    free(buf);
    if (st) tml_error_context(st, "%s", use_stdin ? "<stdin>" : path);
    return st;
}

/* ---- saving -------------------------------------------------------------------------------- */

tml_status tml_model_save(const tml_model *m, const char *path, const tml_save_opts *opts)
{
    uint8_t *buf;
    size_t len;
    char eb[128];
    tml_status st = tml_model_write_mem(m, opts, &buf, &len);
    if (st) return st;
    if (!path || strcmp(path, "-") == 0) {
        errno = 0;
        size_t w = fwrite(buf, 1, len, stdout);
        int e = errno;
        if (w == len && fflush(stdout) != 0) e = errno;
        else if (w == len) e = 0;
        if (w != len || e || ferror(stdout)) {
            if (!e) e = EIO;
            st = tml_error(TML_ERR_IO, "cannot write the model to standard output: %s%s", errstr(e, eb, sizeof eb),
                           e == EPIPE ? " (the reading program exited early?)" : "");
        }
    } else {
        st = tml_write_file_atomic(path, buf, len);
    }
    free(buf);
    return st;
}
