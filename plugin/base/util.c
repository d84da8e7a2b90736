/* Small checked helpers: error formatting, strict number parsing, the text-line reader, a
 * non-finite scan, atomic file writes.  No Darknet calls here. */
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

int lwf_fail(lwf_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
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

int lwf_write_file_atomic(const char *path, const void *buf, size_t len, lwf_err *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return lwf_fail(err, "%s: out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        lwf_fail(err, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            lwf_fail(err, "%s: write failed: %s", path, strerror(errno));
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        lwf_fail(err, "%s: fsync failed: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        lwf_fail(err, "%s: close failed: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        lwf_fail(err, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

/* Longest line accepted; longer ones are an error, not a silent split. */
#define LWF_MAX_LINE 65536

long lwf_read_text_line(FILE *fp, char **buf, size_t *cap, const char *path, int line, const char *what,
                        lwf_err *err)
{
    ssize_t got = getline(buf, cap, fp);
    if (got < 0) return ferror(fp) ? (lwf_fail(err, "%s: read error: %s", path, strerror(errno)), -2) : -1;
    size_t n = (size_t)got;
    if (n > LWF_MAX_LINE)
        return lwf_fail(err, "%s:%d: line longer than %d characters", path, line, LWF_MAX_LINE), -2;
    if (memchr(*buf, '\0', n)) return lwf_fail(err, "%s:%d: NUL byte: not a text %s", path, line, what), -2;
    /* the line end ("\n", "\r\n", or none on the last line) is not part of the line */
    if (n > 0 && (*buf)[n - 1] == '\n') (*buf)[--n] = '\0';
    if (n > 0 && (*buf)[n - 1] == '\r') (*buf)[--n] = '\0';
    for (size_t i = 0; i < n; ++i) {
        unsigned char ch = (unsigned char)(*buf)[i];
        if (ch < 0x20 && ch != '\t')
            return lwf_fail(err, "%s:%d: control character 0x%02x: not a text %s", path, line, ch, what), -2;
    }
    return (long)n;
}

int lwf_hash_file(const char *path, unsigned long long *h, lwf_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return lwf_fail(err, "%s: cannot open: %s", path, strerror(errno));
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
