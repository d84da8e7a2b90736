/* Small checked helpers: error formatting, strict number parsing, a non-finite scan, strdup,
 * path stems.  Files (reading, writing, hashing) are files.c's.  No Darknet calls here. */
#define _POSIX_C_SOURCE 200809L
#include "base/base.h"

#include <errno.h>
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
