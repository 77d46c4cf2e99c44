/*
 * status.c - thread-local error messages. Library functions report failures
 * by returning a negative tml_status and leaving a human-readable message here;
 * only cli/ prints it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml/tml_core.h"

#define TML_ERRBUF 1024

static _Thread_local char errbuf[TML_ERRBUF];

const char *tml_last_error(void) { return errbuf; }

void tml_clear_error(void) { errbuf[0] = '\0'; }

tml_status tml_error(tml_status st, const char *fmt, ...)
{
    /* Format into a local buffer first: the arguments may point into errbuf
     * (e.g. tml_error(st, "%s", tml_last_error())). */
    char tmp[TML_ERRBUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(errbuf, tmp, sizeof errbuf);
    return st;
}

tml_status tml_error_context(tml_status st, const char *fmt, ...)
{
    char prefix[TML_ERRBUF];
    char old[TML_ERRBUF];
    /* copy the old message first: the arguments may point into errbuf */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    /* Build "prefix: old" by hand: the result is deliberately truncated to the
     * buffer, which snprintf's truncation warning would flag. */
    size_t pl = strnlen(prefix, sizeof prefix - 1), ol = strnlen(old, sizeof old - 1), pos = 0;
    memcpy(errbuf, prefix, pl);
    pos = pl;
    if (ol && pos + 2 < sizeof errbuf) {
        errbuf[pos++] = ':';
        errbuf[pos++] = ' ';
        size_t k = ol < sizeof errbuf - 1 - pos ? ol : sizeof errbuf - 1 - pos;
        memcpy(errbuf + pos, old, k);
        pos += k;
    }
    errbuf[pos] = '\0';
    return st;
}

const char *tml_status_name(tml_status st)
{
    switch (st) {
    case TML_OK: return "ok";
    case TML_ERR_IO: return "i/o error";
    case TML_ERR_FORMAT: return "format error";
    case TML_ERR_NOMEM: return "out of memory";
    case TML_ERR_INVALID: return "invalid argument";
    case TML_ERR_UNSUPPORTED: return "unsupported";
    case TML_ERR_SHAPE: return "shape mismatch";
    case TML_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown error";
}

void tml_assert_fail(const char *expr, const char *file, int line)
{
    /* A programming bug, not bad input: there is no sane way to continue. */
    fprintf(stderr, "tinyml: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}
