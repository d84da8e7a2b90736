/* <backup>/<cfg>.chart.png: each task's loss and top-1 (a detector's: its loss and mAP) over
 * the iterations, drawn by gnuplot from a copy of the CSV log in a private folder.  gnuplot runs there as a child process
 * with an argument vector (no shell); its command text is fixed here and holds numbers only
 * (column numbers, iterations): task names reach it as the log's header, which is data.
 * The picture is then written atomically.  What the columns are: log.c. */
#define _GNU_SOURCE /* posix_spawn_file_actions_addchdir_np (glibc 2.29), mkdtemp */
#include "train/train.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define LOG_COLS 8                 /* iteration .. images, then nloss losses, nvalid -valid figures */
#define MAX_PNG ((size_t)64 << 20) /* larger than any chart: a bigger file is not ours */

void lwf_chart_init(lwf_chart *c, const char *png)
{
    snprintf(c->png, sizeof c->png, "%s", png);
    c->off = 0;
}

/* A whole file into memory (at most cap bytes); NULL with err. */
static char *slurp(const char *path, size_t cap, size_t *len, lwf_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        lwf_fail(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t n = 0, size = 65536;
    char *buf = malloc(size);
    while (buf) {
        n += fread(buf + n, 1, size - n, fp);
        if (n < size || size >= cap) break;
        char *nb = realloc(buf, size * 2);
        if (!nb) free(buf);
        buf = nb;
        size *= 2;
    }
    int bad = !buf || ferror(fp) || n >= cap;
    fclose(fp);
    if (bad) {
        free(buf);
        lwf_fail(err, "%s: unreadable or larger than %zu bytes", path, cap);
        return NULL;
    }
    *len = n;
    return buf;
}

/* has[c] = 1 for each column c (0-based) of the log's data lines holding a value. */
static void columns_with_values(const char *text, size_t len, int *has, int ncols)
{
    const char *p = memchr(text, '\n', len), *end = text + len;
    while (p && ++p < end) {
        int c = 0;
        for (const char *q = p; q < end && *q != '\n'; ++q) {
            if (*q == ',') ++c;
            else if (c < ncols) has[c] = 1;
        }
        p = memchr(p, '\n', (size_t)(end - p));
    }
}

/* Appends to the script text s (cap bytes, *k used); the text stays terminated, *k >= cap
 * says it did not fit. */
__attribute__((format(printf, 4, 5))) static void add(char *s, size_t cap, size_t *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = *k < cap ? vsnprintf(s + *k, cap - *k, fmt, ap) : 0;
    va_end(ap);
    *k += n > 0 ? (size_t)n : 0;
}

/* One plot command over the columns [from, from + n) that hold values, drawn `with`. */
static void plot_cmd(char *s, size_t cap, size_t *k, const int *has, int from, int n, const char *with)
{
    add(s, cap, k, "plot");
    const char *sep = " ";
    for (int c = from; c < from + n; ++c) {
        if (!has[c]) continue;
        add(s, cap, k, "%s'log.csv' using 1:%d with %s title columnhead(%d)", sep, c + 1, with, c + 1);
        sep = ", ";
    }
    add(s, cap, k, "\n");
}

/* The log's columns after the fixed ones: a loss per task, then -valid's figures (log.c);
 * det: a detector's (one loss, its mAP). */
typedef struct {
    int nloss, nvalid, det;
} columns;

/* The gnuplot script: a loss panel, and a top-1 (a detector's: mAP) panel when one was
 * measured. */
static int script(char *s, size_t cap, const int *has, columns cl, long long warmup, long long total)
{
    int acc = 0, loss = 0;
    for (int q = 0; q < cl.nloss; ++q) loss |= has[LOG_COLS + q];
    for (int q = 0; q < cl.nvalid; ++q) acc |= has[LOG_COLS + cl.nloss + q];
    if (!loss) return -1;
    size_t k = 0;
    add(s, cap, &k,
        "set terminal pngcairo size 900,%d noenhanced\nset output 'chart.png'\n"
        "set datafile separator ','\nset datafile missing ''\nset grid\nset key outside right\n"
        "set xrange [0:%lld]\n%s",
        acc ? 760 : 420, total, acc ? "set multiplot layout 2,1\n" : "");
    if (warmup > 0 && warmup < total)
        add(s, cap, &k,
            "set arrow 1 from %lld, graph 0 to %lld, graph 1 nohead dt 2 lw 2 lc rgb 'gray30'\n"
            "set label 1 'warm-up | joint' at %lld, graph 0.9 center front\n",
            warmup, warmup, warmup);
    add(s, cap, &k, "set title '%s'\nset ylabel 'loss (per image)'\n%s",
        cl.det ? "loss ([yolo] cost per image)" : "loss per task", acc ? "" : "set xlabel 'iteration'\n");
    plot_cmd(s, cap, &k, has, LOG_COLS, cl.nloss, "lines lw 1.5");
    if (acc) {
        add(s, cap, &k, "set title '%s'\nset ylabel '%s'\nset xlabel 'iteration'\nset yrange [0:1]\n",
            cl.det ? "mAP at IoU 0.5 (valid lists)" : "top-1 per task (valid lists)", cl.det ? "mAP" : "top-1");
        plot_cmd(s, cap, &k, has, LOG_COLS + cl.nloss, cl.nvalid, "linespoints lw 2 pt 7");
        add(s, cap, &k, "unset multiplot\n");
    }
    return k < cap ? 0 : -1;
}

/* Runs gnuplot on chart.gp inside dir (its output into gnuplot.out there); 0, or -1 with why. */
static int run_gnuplot(const char *dir, lwf_err *err)
{
    posix_spawn_file_actions_t fa;
    char *argv[] = {"gnuplot", "chart.gp", NULL};
    pid_t pid;
    if (posix_spawn_file_actions_init(&fa)) return lwf_fail(err, "out of memory");
    int rc = posix_spawn_file_actions_addchdir_np(&fa, dir) ||
             posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) ||
             posix_spawn_file_actions_addopen(&fa, 1, "gnuplot.out", O_WRONLY | O_CREAT | O_TRUNC, 0600) ||
             posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int e = rc ? ENOMEM : posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e == ENOENT) return lwf_fail(err, "gnuplot is not installed (Debian: gnuplot-nox)");
    if (e) return lwf_fail(err, "cannot run gnuplot: %s", strerror(e));
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return lwf_fail(err, "waiting for gnuplot: %s", strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) return lwf_fail(err, "gnuplot could not be run (exit 127)");
    return lwf_fail(err, "gnuplot failed (%s %d)", WIFEXITED(st) ? "exit status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* In the private folder dir: the log's copy and the script, gnuplot, the picture onto c->png. */
static int draw_in(lwf_chart *c, const char *dir, const char *logpath, columns cl, long long warmup, long long total,
                   lwf_err *err)
{
    char path[4200], gp[16384];
    size_t len;
    char *text = slurp(logpath, (size_t)1 << 30, &len, err);
    if (!text) return -1;
    int ncols = LOG_COLS + cl.nloss + cl.nvalid, *has = calloc((size_t)ncols, sizeof(int)), rc = 0;
    if (!has) rc = lwf_fail(err, "out of memory");
    if (!rc) columns_with_values(text, len, has, ncols);
    if (!rc && script(gp, sizeof gp, has, cl, warmup, total)) rc = lwf_fail(err, "no loss in the log yet");
    snprintf(path, sizeof path, "%s/log.csv", dir);
    if (!rc) rc = lwf_write_file_atomic(path, text, len, err);
    snprintf(path, sizeof path, "%s/chart.gp", dir);
    if (!rc) rc = lwf_write_file_atomic(path, gp, strlen(gp), err);
    free(text);
    free(has);
    if (!rc && run_gnuplot(dir, err)) {
        rc = -1;
        snprintf(path, sizeof path, "%s/gnuplot.out", dir);
        FILE *fp = fopen(path, "r");
        char line[512] = "";
        while (fp && fgets(line, sizeof line, fp) && strspn(line, " \t\r\n") == strlen(line)) continue;
        if (fp) fclose(fp);
        line[strcspn(line, "\r\n")] = 0;
        if (*line) lwf_fail(err, "%s: %s", err->msg, line);
    }
    snprintf(path, sizeof path, "%s/chart.png", dir);
    char *png = rc ? NULL : slurp(path, MAX_PNG, &len, err);
    if (!rc && !png) rc = -1;
    if (!rc && (len < 8 || memcmp(png, "\x89PNG\r\n\x1a\n", 8) != 0)) rc = lwf_fail(err, "gnuplot wrote no PNG");
    if (!rc) rc = lwf_write_file_atomic(c->png, png, len, err);
    free(png);
    return rc;
}

void lwf_chart_draw(lwf_chart *c, const char *logpath, const lwf_model *m, long long warmup, long long total)
{
    columns cl = {m->ntasks, lwf_log_valid_columns(m), m->detector};
    if (c->off) return;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    char dir[4096];
    lwf_err err;
    int n = snprintf(dir, sizeof dir, "%s/lwf-chart-XXXXXX", tmp), made = 0, rc;
    if (n < 0 || (size_t)n >= sizeof dir) rc = lwf_fail(&err, "TMPDIR is too long");
    else if (!(made = mkdtemp(dir) != NULL)) rc = lwf_fail(&err, "cannot make a folder in %s: %s", tmp, strerror(errno));
    else rc = draw_in(c, dir, logpath, cl, warmup, total, &err);
    if (made) {
        const char *files[] = {"log.csv", "chart.gp", "chart.png", "gnuplot.out"};
        char p[4200];
        for (int k = 0; k < 4; ++k) {
            snprintf(p, sizeof p, "%s/%s", dir, files[k]);
            unlink(p);
        }
        rmdir(dir);
    }
    if (rc) {
        fprintf(stderr, "warning: %s not drawn: %s; training goes on, without a chart\n", c->png, err.msg);
        c->off = 1;
    }
}
