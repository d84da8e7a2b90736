/* The CSV log of a training run, <backup>/<cfg>.log.csv: its columns (iteration, epoch,
 * phase, loss, avg_loss, rate, seconds, images, then <task>_loss per task, then -valid's
 * figures: <task>_top1 per task of a classifier; a detector's <task>_map, and a grown one's
 * <task>_map_old, <task>_map_new), the cut back to the resumed iteration, one write() per line.
 * What goes in a line: train.c; the chart reads these columns: chart.c. */
#define _POSIX_C_SOURCE 200809L
#include "eval/eval.h"
#include "train/train.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A growing text: every piece is sized from what it holds. */
typedef struct {
    char *p;
    size_t len, cap;
} text;

/* Room for n more characters and the NUL. */
static int text_room(text *t, size_t n)
{
    if (t->len + n + 1 <= t->cap) return 0;
    size_t cap = (t->len + n + 1) * 2;
    char *np = realloc(t->p, cap);
    if (!np) return -1;
    t->p = np;
    t->cap = cap;
    return 0;
}

static int text_add(text *t, const char *s, size_t n)
{
    if (text_room(t, n)) return -1;
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return 0;
}

/* Appends printf's text, sized by a first vsnprintf. */
static int text_printf(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || text_room(t, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
    return 0;
}

/* The header: the fixed columns, then a loss column per task, then a top-1 column per task (a task's name holds no ','
 * nor '"': the [task] row's check refuses them at their cfg line). */
static int header(text *t, const lwf_model *m)
{
    static const char fixed[] = "iteration,epoch,phase,loss,avg_loss,rate,seconds,images";
    int rc = text_add(t, fixed, sizeof fixed - 1);
    for (int q = 0; q < m->ntasks && !rc; ++q) {
        const char *name = m->tasks[q].name;
        rc = text_add(t, ",", 1) || text_add(t, name, strlen(name)) || text_add(t, "_loss", 5);
    }
    static const char *const det[] = {"_map", "_map_old", "_map_new"};
    int nvalid = lwf_log_valid_columns(m);
    for (int q = 0; q < nvalid && !rc; ++q) { /* -valid's figures */
        const char *name = m->tasks[m->detector ? 0 : q].name, *what = m->detector ? det[q] : "_top1";
        rc = text_add(t, ",", 1) || text_add(t, name, strlen(name)) || text_add(t, what, strlen(what));
    }
    return rc || text_add(t, "\n", 1) ? -1 : 0;
}

int lwf_log_valid_columns(const lwf_model *m)
{
    return m->detector ? (lwf_det_old_classes(m) > 0 ? 3 : 1) : m->ntasks;
}

/* 1 when the file of fp ends in a newline (or is empty): else its last line was cut short
 * by a killed run. */
static int ends_in_newline(FILE *fp)
{
    struct stat st;
    char c = '\n';
    if (fstat(fileno(fp), &st) != 0 || st.st_size == 0) return 1;
    return pread(fileno(fp), &c, 1, st.st_size - 1) == 1 && c == '\n';
}

/* Appends to t the lines of the old log at path whose iteration is in [1, upto]; a line cut
 * short (a killed run's last) is dropped.  No old log: nothing.  The log is read as a text
 * input: a FIFO or a device is refused without blocking, a line longer than 64 KiB stops it. */
static int keep_lines(const char *path, long long upto, text *t, lwf_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) return 0;
    FILE *old = lwf_open_regular(path, "training log", err);
    if (!old) return -1;
    int whole = ends_in_newline(old), rc = 0, last_kept = 0;
    size_t mark = 0, cap = 0;
    char *line = NULL;
    long got;
    for (int ln = 1; (got = lwf_read_text_line(old, &line, &cap, path, ln, "training log", err)) >= 0; ++ln) {
        long long it;
        last_kept = sscanf(line, "%lld,", &it) == 1 && it >= 1 && it <= upto;
        if (!last_kept) continue;
        mark = t->len;
        if (text_add(t, line, (size_t)got) || text_add(t, "\n", 1)) {
            rc = lwf_fail(err, "%s: out of memory", path);
            break;
        }
    }
    if (got == -2) rc = -1;
    if (!rc && !whole && last_kept) t->len = mark; /* the last line had no end */
    free(line);
    fclose(old);
    return rc;
}

int lwf_log_open(lwf_log *log, const char *path, const lwf_model *m, long long upto, lwf_err *err)
{
    log->path = lwf_strdup(path);
    text t = {0};
    if (!log->path || header(&t, m)) {
        free(t.p);
        return lwf_fail(err, "%s: out of memory", path);
    }
    int rc = upto > 0 ? keep_lines(path, upto, &t, err) : 0;
    if (!rc) rc = lwf_write_file_atomic(path, t.p, t.len, err);
    free(t.p);
    if (rc) return -1;
    log->fd = lwf_open_regular_fd(path, O_WRONLY | O_APPEND, "training log", err);
    return log->fd < 0 ? -1 : 0;
}

int lwf_log_append(lwf_log *log, const lwf_model *m, const lwf_iter_report *r, lwf_err *err)
{
    if (log->fd < 0) return 0;
    text line = {0};
    int rc = text_printf(&line, "%lld,%.4f,%s,%f,%f,%g,%f,%zu", r->it, r->epoch, r->warmup ? "warmup" : "joint",
                         r->loss, r->avg, r->rate, r->seconds, r->images);
    for (int q = 0; q < m->ntasks && !rc; ++q)
        rc = r->scored[q] ? text_printf(&line, ",%f", r->task_loss[q])
                          : text_add(&line, ",", 1); /* not trained in this phase */
    const double *v = m->detector ? r->map : r->top1;
    for (int q = 0; q < lwf_log_valid_columns(m) && !rc; ++q)
        rc = v && !isnan(v[q]) ? text_printf(&line, ",%.6f", v[q]) : text_add(&line, ",", 1); /* not measured */
    if (rc || text_add(&line, "\n", 1)) {
        free(line.p);
        return lwf_fail(err, "%s: out of memory", log->path);
    }
    /* one write() per line: a killed run leaves whole lines only */
    rc = write(log->fd, line.p, line.len) == (ssize_t)line.len
             ? 0
             : lwf_fail(err, "%s: cannot append to the log: %s", log->path, strerror(errno));
    free(line.p);
    return rc;
}

void lwf_log_close(lwf_log *log)
{
    if (log->fd >= 0) close(log->fd);
    log->fd = -1;
    free(log->path);
    log->path = NULL;
}
