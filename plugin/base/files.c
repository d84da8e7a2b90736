/* Checked file access shared by every reader and writer: inputs that must be regular files
 * (never a FIFO, device or folder), read a bounded line at a time or hashed; outputs that
 * must be absent or regular files, not named twice, not one of the command's inputs,
 * written atomically (a symbolic link is written through). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *lwf_file_kind(unsigned mode)
{
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a regular file";
}

int lwf_open_regular_fd(const char *path, int flags, const char *what, lwf_err *err)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (nor a reader); cleared once the
     * file is known to be regular */
    int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC, 0644);
    const char *verb = (flags & O_ACCMODE) == O_RDONLY ? "read" : "write";
    if (fd < 0) {
        int e = errno;
        struct stat ls;
        /* O_NOFOLLOW on a link fails with ELOOP, O_WRONLY | O_NONBLOCK on a FIFO with ENXIO:
         * say what the file is rather than the errno's text */
        if ((e == ELOOP || e == ENXIO) && lstat(path, &ls) == 0 && !S_ISREG(ls.st_mode))
            lwf_fail(err, "%s: cannot %s %s: %s, not a regular file", path, verb, what, lwf_file_kind(ls.st_mode));
        else
            lwf_fail(err, "%s: cannot open %s: %s", path, what, strerror(e));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        lwf_fail(err, "%s: cannot open %s: %s", path, what, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        lwf_fail(err, "%s: cannot %s %s: %s, not a regular file", path, verb, what, lwf_file_kind(st.st_mode));
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        lwf_fail(err, "%s: cannot open %s: %s", path, what, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

FILE *lwf_open_regular(const char *path, const char *what, lwf_err *err)
{
    int fd = lwf_open_regular_fd(path, O_RDONLY, what, err);
    if (fd < 0) return NULL;
    FILE *fp = fdopen(fd, "r");
    if (!fp) {
        lwf_fail(err, "%s: cannot open %s: %s", path, what, strerror(errno));
        close(fd);
    }
    return fp;
}

char *lwf_output_target(const char *path, lwf_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            char *p = lwf_strdup(path);
            if (!p) lwf_fail(err, "%s: out of memory", path);
            return p;
        }
        lwf_fail(err, "%s: cannot write: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISREG(st.st_mode)) {
        char *p = lwf_strdup(path);
        if (!p) lwf_fail(err, "%s: out of memory", path);
        return p;
    }
    if (!S_ISLNK(st.st_mode)) {
        lwf_fail(err, "%s: refusing to write over %s (an output must be absent or a regular file)", path,
                 lwf_file_kind(st.st_mode));
        return NULL;
    }
    /* a symbolic link: write to the file it names, so the link stays and its target is new */
    char *real = realpath(path, NULL);
    if (!real) {
        lwf_fail(err, "%s: refusing to write through a symbolic link that leads nowhere (%s)", path, strerror(errno));
        return NULL;
    }
    int bad = stat(real, &st) != 0;
    if (bad || !S_ISREG(st.st_mode)) {
        lwf_fail(err, "%s: refusing to write through a symbolic link to %s (%s)", path,
                 bad ? strerror(errno) : lwf_file_kind(st.st_mode), real);
        free(real);
        return NULL;
    }
    return real;
}

/* The name path resolves to: realpath when it exists, else its resolved folder and its
 * own name (so "d/x" and "d/./x" are one output before either exists). */
static char *canonical(const char *path)
{
    char *real = realpath(path, NULL);
    if (real) return real;
    char *a = lwf_strdup(path), *b = lwf_strdup(path);
    char *dir = a && b ? realpath(dirname(a), NULL) : NULL;
    const char *base = b ? basename(b) : NULL;
    char *out = NULL;
    if (dir && strcmp(base, ".") != 0 && strcmp(base, "..") != 0 && strcmp(base, "/") != 0) {
        size_t n = strlen(dir) + strlen(base) + 2;
        out = malloc(n);
        if (out) snprintf(out, n, "%s/%s", dir, base);
    }
    free(dir);
    free(a);
    free(b);
    return out ? out : lwf_strdup(path);
}

int lwf_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char *ca = canonical(a), *cb = canonical(b);
    int same = ca && cb ? strcmp(ca, cb) == 0 : strcmp(a, b) == 0;
    free(ca);
    free(cb);
    return same;
}

int lwf_check_outputs(const lwf_file *out, int nout, const lwf_file *in, int nin, lwf_err *err)
{
    for (int i = 0; i < nout; ++i) {
        char *t = lwf_output_target(out[i].path, err);
        if (!t) return -1;
        free(t);
        for (int j = 0; j < i; ++j)
            if (lwf_same_file(out[i].path, out[j].path))
                return lwf_fail(err, "the %s and the %s are one file (%s and %s): give two different outputs",
                                out[j].what, out[i].what, out[j].path, out[i].path);
        for (int j = 0; j < nin; ++j)
            if (in[j].path && lwf_same_file(out[i].path, in[j].path))
                return lwf_fail(err, "the %s would overwrite the %s, an input (%s is %s): write it to another file",
                                out[i].what, in[j].what, out[i].path, in[j].path);
    }
    return 0;
}

/* Creates the temporary file beside the target: never through an existing name (O_EXCL,
 * O_NOFOLLOW); a file of that name left by a killed run with this pid is removed first. */
static int create_temp(const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    return fd;
}

/* Writes all of buf to fd, then fsync and close (fd closed in every case). */
static int write_all(int fd, const char *path, const char *p, size_t left, lwf_err *err)
{
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            lwf_fail(err, "%s: write failed: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        lwf_fail(err, "%s: fsync failed: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (close(fd) != 0) return lwf_fail(err, "%s: close failed: %s", path, strerror(errno));
    return 0;
}

int lwf_write_file_atomic(const char *path, const void *buf, size_t len, lwf_err *err)
{
    char *target = lwf_output_target(path, err);
    if (!target) return -1;
    size_t plen = strlen(target);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        free(target);
        return lwf_fail(err, "%s: out of memory", path);
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", target, (long)getpid());
    int rc = -1, fd = create_temp(tmp);
    if (fd < 0)
        lwf_fail(err, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
    else if (write_all(fd, path, buf, len, err) == 0) {
        if (rename(tmp, target) == 0) rc = 0;
        else lwf_fail(err, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
    }
    if (rc && fd >= 0) unlink(tmp);
    free(tmp);
    free(target);
    return rc;
}

/* Longest line accepted; longer ones are an error, not a silent split. */
#define LWF_MAX_LINE 65536

/* Reads up to the next '\n' (kept) into *buf, stopping after LWF_MAX_LINE + 2 characters:
 * the count read, 0 at the end of the file, -1 on a read error, -2 on a line too long. */
static long read_bounded(FILE *fp, char **buf, size_t *cap)
{
    size_t n = 0;
    int c;
    while ((c = getc(fp)) != EOF) {
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            if (nc > LWF_MAX_LINE + 3) nc = LWF_MAX_LINE + 3;
            char *nb = realloc(*buf, nc);
            if (!nb) return errno = ENOMEM, -1;
            *buf = nb;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
        if (c == '\n') break;
        if (n > LWF_MAX_LINE + 1) return -2; /* room for a '\r' before the '\n', no more */
    }
    if (c == EOF && ferror(fp)) return -1;
    if (n) (*buf)[n] = '\0';
    return (long)n;
}

long lwf_read_text_line(FILE *fp, char **buf, size_t *cap, const char *path, int line, const char *what,
                        lwf_err *err)
{
    long got = read_bounded(fp, buf, cap);
    if (got == -1) return lwf_fail(err, "%s:%d: read error: %s", path, line, strerror(errno)), -2;
    if (got == -2)
        return lwf_fail(err, "%s:%d: line longer than %d characters: not a text %s", path, line, LWF_MAX_LINE,
                        what), -2;
    if (got == 0) return -1;
    size_t n = (size_t)got;
    if (memchr(*buf, '\0', n)) return lwf_fail(err, "%s:%d: NUL byte: not a text %s", path, line, what), -2;
    /* the line end ("\n", "\r\n", or none on the last line) is not part of the line */
    if (n > 0 && (*buf)[n - 1] == '\n') (*buf)[--n] = '\0';
    if (n > 0 && (*buf)[n - 1] == '\r') (*buf)[--n] = '\0';
    if (n > LWF_MAX_LINE)
        return lwf_fail(err, "%s:%d: line longer than %d characters: not a text %s", path, line, LWF_MAX_LINE,
                        what), -2;
    /* a UTF-8 byte order mark (editors on Windows write one) is not part of the first line */
    if (line == 1 && n >= 3 && memcmp(*buf, "\xEF\xBB\xBF", 3) == 0) {
        memmove(*buf, *buf + 3, n - 2);
        n -= 3;
    }
    for (size_t i = 0; i < n; ++i) {
        unsigned char ch = (unsigned char)(*buf)[i];
        if (ch < 0x20 && ch != '\t')
            return lwf_fail(err, "%s:%d: control character 0x%02x: not a text %s", path, line, ch, what), -2;
    }
    return (long)n;
}

int lwf_hash_file(const char *path, unsigned long long *h, lwf_err *err)
{
    FILE *fp = lwf_open_regular(path, "file", err);
    if (!fp) return -1;
    unsigned char buf[65536];
    size_t n;
    unsigned long long x = *h ? *h : 1469598103934665603ULL;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
        for (size_t i = 0; i < n; ++i) x = (x ^ buf[i]) * 1099511628211ULL;
    int bad = ferror(fp);
    fclose(fp);
    if (bad) return lwf_fail(err, "%s: read error", path);
    *h = x;
    return 0;
}
