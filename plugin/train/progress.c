/* What both trainers do after an iteration (train.c for classifiers, detect.c for
 * detectors): the progress line and the CSV log's line, the time left, the backups.  The
 * loops, and what goes in a report, are theirs. */
#include "train/train.h"

#include <stdio.h>

void lwf_fmt_time(double s, char *buf, size_t n)
{
    long v = (long)(s + 0.5);
    if (v >= 3600) snprintf(buf, n, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
}

long long lwf_validations_left(long long every, long long total, long long it)
{
    return every > 0 ? total / every - it / every + (total % every != 0 && it < total) : 0;
}

int lwf_report(lwf_log *log, const lwf_model *m, const lwf_iter_report *r, const char *phase, const char *eta,
               int quiet, lwf_err *err)
{
    if (!quiet) {
        printf("%lld, %.3f: %f, %f avg, %f rate, %lf seconds, %zu images", r->it, r->epoch, r->loss, r->avg, r->rate,
               r->seconds, r->images);
        if (phase) printf(", %s", phase);
        for (int q = 0; q < m->ntasks; ++q)
            if (r->scored[q]) printf(", %s %f", m->tasks[q].name, r->task_loss[q]);
        printf(", %s left\n", eta);
        fflush(stdout);
    }
    return lwf_log_append(log, m, r, err);
}

int lwf_save_backups(lwf_folder *dir, const network *net, const lwf_train_opts *o, const lwf_backup_at *at,
                     long long it, int *stop, lwf_err *err)
{
    long long imgs = (long long)net->batch * net->subdivisions;
    int rc = 0;
    int end_warm = it == at->warmup && it < at->total;
    *stop = o->stop > 0 && it >= o->stop && it < at->total;
    int every = o->backup_every > 0 ? o->backup_every : 100;
    lwf_state st = {it, at->seed, (int)o->method};
    if ((it % every == 0 || end_warm || *stop) && it < at->total) rc = lwf_folder_save(dir, net, ".backup", &st, err);
    long long e0 = (long long)((double)(it - 1) * imgs / at->N), e1 = (long long)((double)it * imgs / at->N);
    if (!rc && e1 > e0) {
        char suf[64];
        snprintf(suf, sizeof suf, "_%lld.weights", e1);
        rc = lwf_folder_save(dir, net, suf, NULL, err);
    }
    if (!rc && *stop)
        fprintf(stderr, "stopped after iteration %lld (-stop); resume with %s\n", it, lwf_folder_path(dir, ".backup"));
    return rc;
}
