/*
 * fileio.c - atomic file writes, shared by everything that writes a file
 * (models, C and ONNX exports, plots, CSV/JSON reports): the data goes to a
 * temporary file in the destination's directory (so rename() is atomic), is
 * flushed to disk, then renamed over the destination. On any failure the
 * temporary is removed and the destination is untouched, so a crash or a full
 * disk never leaves a half-written file behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tinyml/tml_core.h"

static const char *errstr(int e, char *buf, size_t cap)
{
    if (strerror_r(e, buf, cap) != 0) snprintf(buf, cap, "error %d", e);
    return buf;
}

static tml_status write_fd(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return TML_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
    }
    return TML_OK;
}

tml_status tml_write_file_atomic(const char *path, const void *buf, size_t len)
{
    char eb[128];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base) return tml_error(TML_ERR_IO, "cannot write '%s': it names a directory, not a file", path);
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    /* "<dir>/.<base>.XXXXXX", base cut to stay within NAME_MAX */
    size_t blen = strlen(base) > 200 ? 200 : strlen(base);
    size_t cap = dlen + blen + 16;
    char *tmp = malloc(cap), *dir = malloc(dlen + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return tml_error(TML_ERR_NOMEM, "out of memory");
    }
    if (slash) {
        memcpy(dir, path, dlen ? dlen : 1); /* "/x" -> dir "/" */
        dir[dlen ? dlen : 1] = '\0';
        snprintf(tmp, cap, "%.*s/.%.*s.XXXXXX", (int)dlen, path, (int)blen, base);
    } else {
        strcpy(dir, ".");
        snprintf(tmp, cap, ".%.*s.XXXXXX", (int)blen, base);
    }
    tml_status st = TML_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        st = tml_error(TML_ERR_IO, "cannot write '%s': cannot create a temporary file in '%s': %s", path, dir, errstr(e, eb, sizeof eb));
        goto out;
    }
    /* mkstemp makes 0600 files; keep the replaced file's mode, else rw-r--r-- */
    struct stat sb;
    mode_t mode = (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) ? (sb.st_mode & 07777) : 0644;
    if (fchmod(fd, mode) != 0 || write_fd(fd, (const uint8_t *)buf, len) != TML_OK || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        st = tml_error(TML_ERR_IO, "cannot write '%s': %s", path, errstr(e, eb, sizeof eb));
        goto out;
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        st = tml_error(TML_ERR_IO, "cannot write '%s': %s", path, errstr(e, eb, sizeof eb));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        st = tml_error(TML_ERR_IO, "cannot replace '%s': %s", path, errstr(e, eb, sizeof eb));
        goto out;
    }
    /* make the rename itself durable; best effort (not all filesystems allow it) */
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
out:
    free(tmp);
    free(dir);
    return st;
}

