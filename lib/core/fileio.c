/*
 * fileio.c - the one file writer everything that writes a file goes through
 * (models, C and ONNX exports, plots, CSV/JSON reports, checkpoints).
 *
 * What a destination path may be, and what happens to it:
 *   - missing, or a regular file: the data goes to a temporary file in the
 *     destination's directory, is flushed to disk, then renamed over the
 *     destination (atomic: a crash or a full disk never leaves a half-written
 *     file, and the old file stays until the new one is complete). A replaced
 *     file keeps its mode; a new one gets 0666 minus the umask.
 *   - a symbolic link: followed. The file it points to is replaced as above
 *     and the link stays a link; a dangling link is refused (as cp does).
 *   - a character device (/dev/null, a serial port) or a FIFO: written
 *     through, as a shell redirection would; it is never replaced.
 *   - anything else (a directory, a block device, a socket): refused.
 *
 * Temporaries: on Linux an unnamed O_TMPFILE file receives the data and is
 * given a name (".NAME.XXXXXX") only for the instant between linkat() and
 * rename(), so a killed run almost never leaves anything behind. Where
 * O_TMPFILE is not available the temporary is named from the start. The
 * first four characters of XXXXXX are the writer's process id (base 62): the
 * next write of the same destination removes a temporary whose writer is gone
 * (or, if the id is reused, that is older than TMP_STALE_SECONDS).
 *
 * Several files (tml_write_files_atomic) are all written and flushed first,
 * then renamed one right after the other, then their directories synced: the
 * window in which a kill leaves some old and some new is a few syscalls.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tinyml/tml_core.h"

/* A named temporary untouched for this long belongs to a run that died. */
#define TMP_STALE_SECONDS 600

static const char *errstr(int e, char *buf, size_t cap)
{
#if defined(__GLIBC__)
    return strerror_r(e, buf, cap); /* the GNU variant under _GNU_SOURCE */
#else
    if (strerror_r(e, buf, cap) != 0) snprintf(buf, cap, "error %d", e);
    return buf;
#endif
}

static int write_fd(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- destinations ------------------------------------------------------------------ */

typedef enum dest_kind { DEST_REPLACE, DEST_THROUGH } dest_kind;

typedef struct dest {
    const char *path; /* as given, for messages */
    dest_kind kind;
    char *file;       /* DEST_REPLACE: the file to replace (symlinks resolved) */
    char *dir;        /* its directory */
    const char *base; /* its name inside dir (points into file) */
    int exists;       /* DEST_REPLACE: the file exists (keep its mode) */
    mode_t mode;
} dest;

static void dest_free(dest *d)
{
    free(d->file);
    free(d->dir);
    memset(d, 0, sizeof *d);
}

static const char *kind_name(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

/* Splits `file` into dir and base. */
static tml_status split_path(dest *d)
{
    const char *slash = strrchr(d->file, '/');
    d->base = slash ? slash + 1 : d->file;
    if (!*d->base) return tml_error(TML_ERR_IO, "cannot write '%s': it names a directory, not a file", d->path);
    size_t dlen = slash ? (size_t)(slash - d->file) : 0;
    d->dir = malloc(dlen + 2);
    if (!d->dir) return tml_error(TML_ERR_NOMEM, "out of memory");
    if (!slash) {
        strcpy(d->dir, ".");
    } else {
        memcpy(d->dir, d->file, dlen ? dlen : 1); /* "/x" -> dir "/" */
        d->dir[dlen ? dlen : 1] = '\0';
    }
    return TML_OK;
}

/* Classifies `path` by the rules at the top of this file. */
static tml_status dest_resolve(const char *path, dest *d)
{
    char eb[128];
    memset(d, 0, sizeof *d);
    d->path = path;
    if (!path || !*path) return tml_error(TML_ERR_INVALID, "empty output path");
    struct stat lsb, sb;
    if (lstat(path, &lsb) != 0) {
        int e = errno;
        if (e != ENOENT) return tml_error(TML_ERR_IO, "cannot write '%s': %s", path, errstr(e, eb, sizeof eb));
        d->kind = DEST_REPLACE;
        d->file = tml_strdup(path);
        if (!d->file) return tml_error(TML_ERR_NOMEM, "out of memory");
        return split_path(d);
    }
    sb = lsb;
    if (S_ISLNK(lsb.st_mode)) {
        if (stat(path, &sb) != 0) {
            int e = errno;
            if (e == ENOENT)
                return tml_error(TML_ERR_IO,
                                 "cannot write '%s': it is a symbolic link to a missing file; not followed "
                                 "(remove the link or create its target)",
                                 path);
            return tml_error(TML_ERR_IO, "cannot write '%s': %s", path, errstr(e, eb, sizeof eb));
        }
    }
    if (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode)) {
        d->kind = DEST_THROUGH;
        return TML_OK;
    }
    if (!S_ISREG(sb.st_mode))
        return tml_error(TML_ERR_IO, "cannot write '%s': it is %s, and tinyml only replaces regular files", path,
                         kind_name(sb.st_mode));
    d->kind = DEST_REPLACE;
    d->exists = 1;
    d->mode = sb.st_mode & 07777;
    d->file = S_ISLNK(lsb.st_mode) ? realpath(path, NULL) : tml_strdup(path);
    if (!d->file) {
        int e = errno;
        return tml_error(TML_ERR_IO, "cannot write '%s': cannot resolve the link: %s", path, errstr(e, eb, sizeof eb));
    }
    return split_path(d);
}

/* ---- temporaries ------------------------------------------------------------------- */

static const char b62[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* "<dir>/.<base>.PPPPRR": PPPP the process id in base 62 (pids < 62^4),
 * RR random; base cut to stay within NAME_MAX. */
static char *tmp_name(const dest *d)
{
    size_t blen = strlen(d->base) > 200 ? 200 : strlen(d->base);
    size_t cap = strlen(d->dir) + blen + 16;
    char *t = malloc(cap);
    if (!t) return NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)t;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    uint64_t pid = (uint64_t)getpid() % (62ull * 62 * 62 * 62);
    char sfx[7];
    for (int i = 3; i >= 0; i--, pid /= 62) sfx[i] = b62[pid % 62];
    sfx[4] = b62[(x >> 40) % 62];
    sfx[5] = b62[(x >> 50) % 62];
    sfx[6] = '\0';
    snprintf(t, cap, "%s/.%.*s.%s", d->dir, (int)blen, d->base, sfx);
    return t;
}

/* The writer process id encoded in a temporary's suffix, or -1. */
static long tmp_pid(const char *sfx)
{
    long pid = 0;
    for (int i = 0; i < 4; i++) {
        const char *at = strchr(b62, sfx[i]);
        if (!at || !sfx[i]) return -1;
        pid = pid * 62 + (at - b62);
    }
    return pid;
}

/* Is `name` a temporary of destination `base` (".<base>.XXXXXX")? */
static int is_tmp_of(const char *name, const char *base)
{
    size_t blen = strlen(base) > 200 ? 200 : strlen(base), n = strlen(name);
    if (n != blen + 8 || name[0] != '.' || strncmp(name + 1, base, blen) != 0 || name[blen + 1] != '.') return 0;
    for (size_t i = blen + 2; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) return 0;
    }
    return 1;
}

/* Removes temporaries of this destination that a killed run left behind. */
static void remove_stale(const dest *d)
{
    DIR *dir = opendir(d->dir);
    if (!dir) return;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (!is_tmp_of(e->d_name, d->base)) continue;
        size_t cap = strlen(d->dir) + strlen(e->d_name) + 2;
        char *p = malloc(cap);
        if (!p) break;
        snprintf(p, cap, "%s/%s", d->dir, e->d_name);
        struct stat sb;
        const long pid = tmp_pid(e->d_name + strlen(e->d_name) - 6);
        const int writer_gone = pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() &&
            (writer_gone || now - sb.st_mtime > TMP_STALE_SECONDS))
            (void)unlink(p);
        free(p);
    }
    closedir(dir);
}

/* A file being written: an unnamed O_TMPFILE (tmp == NULL until linked) or a
 * named temporary. */
typedef struct pending {
    dest d;
    int fd;
    char *tmp;
} pending;

/* Creates the temporary of a DEST_REPLACE destination. */
static tml_status tmp_open(pending *p)
{
    char eb[128];
    const mode_t mode = p->d.exists ? p->d.mode : 0666;
    p->fd = -1;
    remove_stale(&p->d);
#ifdef O_TMPFILE
    p->fd = open(p->d.dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
    if (p->fd >= 0) return TML_OK;
    /* EOPNOTSUPP / EISDIR / EINVAL: the filesystem or kernel lacks it; other
     * errors (EACCES, ENOENT, EROFS) are reported by the named path below */
#endif
    for (int attempt = 0; attempt < 100; attempt++) {
        p->tmp = tmp_name(&p->d);
        if (!p->tmp) return tml_error(TML_ERR_NOMEM, "out of memory");
        p->fd = open(p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (p->fd >= 0) return TML_OK;
        int e = errno;
        free(p->tmp);
        p->tmp = NULL;
        if (e != EEXIST)
            return tml_error(TML_ERR_IO, "cannot write '%s': cannot create a file in '%s': %s", p->d.path, p->d.dir,
                             errstr(e, eb, sizeof eb));
    }
    return tml_error(TML_ERR_IO, "cannot write '%s': no free temporary name in '%s'", p->d.path, p->d.dir);
}

static void pending_abort(pending *p)
{
    if (p->fd >= 0) close(p->fd);
    if (p->tmp) unlink(p->tmp);
    free(p->tmp);
    dest_free(&p->d);
    p->fd = -1;
    p->tmp = NULL;
}

/* Phase 1: resolve the destination and, for a file to replace, write the data
 * to its temporary and flush it to disk. */
static tml_status pending_write(pending *p, const char *path, const void *buf, size_t len)
{
    char eb[128];
    memset(p, 0, sizeof *p);
    p->fd = -1;
    tml_status st = dest_resolve(path, &p->d);
    if (st || p->d.kind == DEST_THROUGH) return st;
    if ((st = tmp_open(p))) return st;
    /* an existing file's mode exactly (open() applied the umask to it) */
    if ((p->d.exists && fchmod(p->fd, p->d.mode) != 0) || write_fd(p->fd, buf, len) != 0 || fsync(p->fd) != 0) {
        int e = errno;
        return tml_error(TML_ERR_IO, "cannot write '%s': %s", path, errstr(e, eb, sizeof eb));
    }
    return TML_OK;
}

/* Phase 2: write through, or give an O_TMPFILE a (temporary) name and close it. */
static tml_status pending_link(pending *p, const void *buf, size_t len)
{
    char eb[128];
    if (p->d.kind == DEST_THROUGH) {
        int fd = open(p->d.path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 || write_fd(fd, buf, len) != 0) {
            int e = errno;
            if (fd >= 0) close(fd);
            return tml_error(TML_ERR_IO, "cannot write '%s': %s", p->d.path, errstr(e, eb, sizeof eb));
        }
        if (close(fd) != 0) {
            int e = errno;
            return tml_error(TML_ERR_IO, "cannot write '%s': %s", p->d.path, errstr(e, eb, sizeof eb));
        }
        return TML_OK;
    }
    if (!p->tmp) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", p->fd);
        for (int attempt = 0; attempt < 100 && !p->tmp; attempt++) {
            p->tmp = tmp_name(&p->d);
            if (!p->tmp) return tml_error(TML_ERR_NOMEM, "out of memory");
            if (linkat(AT_FDCWD, proc, AT_FDCWD, p->tmp, AT_SYMLINK_FOLLOW) == 0) break;
            int e = errno;
            free(p->tmp);
            p->tmp = NULL;
            if (e != EEXIST)
                return tml_error(TML_ERR_IO, "cannot write '%s': cannot link the new file: %s", p->d.path,
                                 errstr(e, eb, sizeof eb));
        }
        if (!p->tmp) return tml_error(TML_ERR_IO, "cannot write '%s': no free temporary name", p->d.path);
    }
    int r = close(p->fd);
    p->fd = -1;
    if (r != 0) {
        int e = errno;
        return tml_error(TML_ERR_IO, "cannot write '%s': %s", p->d.path, errstr(e, eb, sizeof eb));
    }
    return TML_OK;
}

/* Phase 3: the rename itself. */
static tml_status pending_rename(pending *p)
{
    char eb[128];
    if (p->d.kind == DEST_THROUGH) return TML_OK;
    if (rename(p->tmp, p->d.file) != 0) {
        int e = errno;
        return tml_error(TML_ERR_IO, "cannot replace '%s': %s", p->d.path, errstr(e, eb, sizeof eb));
    }
    free(p->tmp);
    p->tmp = NULL;
    return TML_OK;
}

/* Phase 4: make the renames durable; best effort (not all filesystems allow it). */
static void pending_sync_dir(const pending *p)
{
    if (p->d.kind == DEST_THROUGH) return;
    int dfd = open(p->d.dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

tml_status tml_write_files_atomic(int n, const char *const *paths, const void *const *bufs, const size_t *lens)
{
    if (n < 1 || n > 16) return tml_error(TML_ERR_INVALID, "tml_write_files_atomic: %d files (1..16)", n);
    pending p[16];
    tml_status st = TML_OK;
    int done = 0;
    for (; done < n && !st; done++) st = pending_write(&p[done], paths[done], bufs[done], lens[done]);
    for (int i = 0; i < n && !st; i++) st = pending_link(&p[i], bufs[i], lens[i]);
    /* the renames back to back: what a kill can split is as small as it gets */
    for (int i = 0; i < n && !st; i++) st = pending_rename(&p[i]);
    if (!st)
        for (int i = 0; i < n; i++) pending_sync_dir(&p[i]);
    for (int i = 0; i < done; i++) pending_abort(&p[i]);
    return st;
}

tml_status tml_write_file_atomic(const char *path, const void *buf, size_t len)
{
    const char *paths[1] = {path};
    const void *bufs[1] = {buf};
    size_t lens[1] = {len};
    return tml_write_files_atomic(1, paths, bufs, lens);
}

tml_status tml_check_output_file(const char *path)
{
    char eb[128];
    pending p;
    memset(&p, 0, sizeof p);
    p.fd = -1;
    tml_status st = dest_resolve(path, &p.d);
    if (!st && p.d.kind == DEST_THROUGH && access(path, W_OK) != 0) {
        int e = errno;
        st = tml_error(TML_ERR_IO, "cannot write '%s': %s", path, errstr(e, eb, sizeof eb));
    }
    /* creating (and dropping) the temporary proves the directory exists and
     * takes new files: permissions, a read-only filesystem, ... */
    if (!st && p.d.kind == DEST_REPLACE) st = tmp_open(&p);
    pending_abort(&p);
    return st;
}

tml_status tml_check_output_dir(const char *dir)
{
    char eb[128];
    if (!dir || !*dir) dir = ".";
    size_t n = strlen(dir);
    char *p = malloc(n + 16);
    if (!p) return tml_error(TML_ERR_NOMEM, "out of memory");
    memcpy(p, dir, n + 1);
    /* the nearest existing ancestor must be a directory we can create in */
    tml_status st = TML_OK;
    for (;;) {
        while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
        struct stat sb;
        if (stat(p, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode)) {
                st = tml_error(TML_ERR_IO, "cannot write into '%s': '%s' exists and is not a directory", dir, p);
            } else {
                memcpy(p + n, "/.tml-check", 12);
                st = tml_check_output_file(p);
                if (st) st = tml_error(TML_ERR_IO, "cannot write into '%s': %s", dir, tml_last_error());
            }
            break;
        }
        int e = errno;
        if (e != ENOENT) {
            st = tml_error(TML_ERR_IO, "cannot write into '%s': %s: %s", dir, p, errstr(e, eb, sizeof eb));
            break;
        }
        char *slash = strrchr(p, '/');
        if (!slash) {
            strcpy(p, ".");
            n = 1;
        } else if (slash == p) {
            p[1] = '\0';
            n = 1;
        } else {
            *slash = '\0';
            n = (size_t)(slash - p);
        }
    }
    free(p);
    return st;
}
