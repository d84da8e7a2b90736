/* Checked file access shared by every reader and writer: inputs that must be regular files
 * (never a FIFO, device or folder), and outputs that must be absent or regular files, not
 * named twice, not one of the command's inputs; a symbolic link is written through. */
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
