/* The CSV log of a training run, <backup>/<cfg>.log.csv: its columns (iteration, epoch,
 * phase, loss, avg_loss, rate, seconds, images, then <task>_loss per task, then <task>_top1
 * per task: -valid's figures), the cut back to the resumed iteration, one write() per line.
 * What goes in a line: train.c; the chart reads these columns: chart.c. */
#define _POSIX_C_SOURCE 200809L
#include "train/train.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Appends to *text (grown as needed) the lines of the old log at path whose iteration is in
 * [1, upto]; a line cut short (a killed run's last) is dropped. */
static void keep_lines(const char *path, long long upto, char **text, size_t *len, size_t *cap)
{
    FILE *old = fopen(path, "r");
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    while (old && (got = getline(&line, &lcap, old)) > 0) {
        long long it;
        if (line[got - 1] != '\n' || sscanf(line, "%lld,", &it) != 1 || it < 1 || it > upto) continue;
        if (*len + (size_t)got + 1 > *cap) {
            *cap = (*cap + (size_t)got) * 2;
            char *nt = realloc(*text, *cap);
            if (!nt) break;
            *text = nt;
        }
        memcpy(*text + *len, line, (size_t)got);
        *len += (size_t)got;
    }
    free(line);
    if (old) fclose(old);
}

int lwf_log_open(lwf_log *log, const char *path, const lwf_model *m, long long upto, lwf_err *err)
{
    snprintf(log->path, sizeof log->path, "%s", path);
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    if (!text) return lwf_fail(err, "out of memory");
    len += (size_t)snprintf(text, cap, "iteration,epoch,phase,loss,avg_loss,rate,seconds,images");
    for (int q = 0; q < m->ntasks && len < cap - 200; ++q)
        len += (size_t)snprintf(text + len, cap - len, ",%s_loss", m->tasks[q].name);
    for (int q = 0; q < m->ntasks && len < cap - 200; ++q) /* -valid's figures */
        len += (size_t)snprintf(text + len, cap - len, ",%s_top1", m->tasks[q].name);
    len += (size_t)snprintf(text + len, cap - len, "\n");
    if (upto > 0) keep_lines(path, upto, &text, &len, &cap);
    int rc = lwf_write_file_atomic(path, text, len, err);
    free(text);
    if (rc) return -1;
    log->fd = open(path, O_WRONLY | O_APPEND);
    if (log->fd < 0) return lwf_fail(err, "%s: cannot append to the log: %s", path, strerror(errno));
    return 0;
}

int lwf_log_append(lwf_log *log, const lwf_model *m, const lwf_iter_report *r, lwf_err *err)
{
    if (log->fd < 0) return 0;
    char line[4096];
    int n = snprintf(line, sizeof line, "%lld,%.4f,%s,%f,%f,%g,%f,%zu", r->it, r->epoch,
                     r->warmup ? "warmup" : "joint", r->loss, r->avg, r->rate, r->seconds, r->images);
    for (int q = 0; q < m->ntasks && n < (int)sizeof line - 40; ++q)
        n += r->scored[q] ? snprintf(line + n, sizeof line - (size_t)n, ",%f", r->task_loss[q])
                          : snprintf(line + n, sizeof line - (size_t)n, ","); /* not trained in this phase */
    for (int q = 0; q < m->ntasks && n < (int)sizeof line - 40; ++q)
        n += r->top1 && !isnan(r->top1[q]) ? snprintf(line + n, sizeof line - (size_t)n, ",%.6f", r->top1[q])
                                           : snprintf(line + n, sizeof line - (size_t)n, ","); /* not measured */
    n += snprintf(line + n, sizeof line - (size_t)n, "\n");
    /* one write() per line: a killed run leaves whole lines only */
    if (write(log->fd, line, (size_t)n) != n)
        return lwf_fail(err, "%s: cannot append to the log: %s", log->path, strerror(errno));
    return 0;
}

void lwf_log_close(lwf_log *log)
{
    if (log->fd >= 0) close(log->fd);
    log->fd = -1;
}
