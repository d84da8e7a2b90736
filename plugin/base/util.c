/* Small checked helpers: error formatting, strict number parsing, the text-line reader, a
 * non-finite scan, atomic file writes (their checks are in files.c).  No Darknet calls here. */
#define _POSIX_C_SOURCE 200809L
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Copies the n-byte message m into out (cap bytes): whole when it fits, else its start and
 * its end (where the reason is) around " [...] ", cut between UTF-8 characters. */
static void fit_message(char *out, size_t cap, const char *m, size_t n)
{
    if (n < cap) {
        memcpy(out, m, n + 1);
        return;
    }
    static const char gap[] = " [...] ";
    size_t head = (cap - sizeof gap) / 4, tail = cap - sizeof gap - head;
    while (head > 0 && ((unsigned char)m[head] & 0xC0) == 0x80) --head;
    size_t from = n - tail;
    while (from < n && ((unsigned char)m[from] & 0xC0) == 0x80) ++from;
    memcpy(out, m, head);
    memcpy(out + head, gap, sizeof gap - 1);
    memcpy(out + head + sizeof gap - 1, m + from, n - from + 1);
}

int lwf_fail(lwf_err *err, const char *fmt, ...)
{
    if (!err) return -1;
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    /* formatted apart from err->msg, which may be one of the arguments */
    char *full = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (full) {
        vsnprintf(full, (size_t)n + 1, fmt, aq);
        fit_message(err->msg, sizeof err->msg, full, (size_t)n);
        free(full);
    } else {
        char cut[sizeof err->msg];
        vsnprintf(cut, sizeof cut, fmt, aq);
        memcpy(err->msg, cut, sizeof cut);
    }
    va_end(aq);
    return -1;
}

int lwf_parse_int(const char *s, long lo, long hi, int *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi || v < INT_MIN || v > INT_MAX) return -1;
    *out = (int)v;
    return 0;
}

int lwf_parse_float(const char *s, double lo, double hi, float *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi) return -1;
    *out = (float)v;
    return 0;
}

size_t lwf_first_nonfinite(const float *p, size_t n)
{
    size_t i = 0;
    while (i < n && isfinite(p[i])) ++i;
    return i;
}

char *lwf_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
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

char *lwf_path_stem(const char *path)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    char *b = lwf_strdup(s);
    if (!b) return NULL;
    char *dot = strrchr(b, '.');
    if (dot && dot != b) *dot = '\0';
    return b;
}
