/* make bench's detector row: a stock YOLOv3-tiny-style cfg parsed by libdarknet itself
 * (parse_network_cfg: stock [yolo] layers, as Darknet trains them), synthetic images and
 * boxes, one training step timed with Darknet's reference kernels and after installing
 * ours; then the same convolution stack in PyTorch (bench/torch_det.py), when installed.
 * The plugin's cfg builder is not used: this row times the kernels, not the plugin. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { DET_MAX_BOXES = 90, DET_BOX = 5 }; /* [yolo]'s truth: 90 x (x, y, w, h, class) */

/* The key of a "key = value" line ("" for none), into key[n]. */
static void line_key(const char *line, size_t len, char *key, size_t n)
{
    size_t i = 0, k = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) ++i;
    while (i < len && line[i] != '=' && line[i] != ' ' && line[i] != '\t' && k + 1 < n) key[k++] = line[i++];
    key[k] = '\0';
}

/* Writes src to `out` with [net]'s height, width, batch and subdivisions replaced by
 * size, size, batch, 1 (one step = one batch, as the other rows).  Returns 0 or -1. */
static int det_cfg(const char *src, const char *out, int size, int batch)
{
    char *text = bench_slurp(src);
    if (!text) {
        fprintf(stderr, "bench: cannot read %s: %s\n", src, strerror(errno));
        return -1;
    }
    FILE *o = fopen(out, "w");
    if (!o) {
        fprintf(stderr, "bench: cannot write %s: %s\n", out, strerror(errno));
        free(text);
        return -1;
    }
    int in_net = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char key[32];
        line_key(line, len, key, sizeof key);
        if (key[0] == '[') in_net = strncmp(key, "[net]", 5) == 0;
        int skip = in_net && (strcmp(key, "height") == 0 || strcmp(key, "width") == 0 || strcmp(key, "batch") == 0 ||
                              strcmp(key, "subdivisions") == 0);
        if (!skip) fprintf(o, "%.*s\n", (int)len, line);
        if (in_net && key[0] == '[') fprintf(o, "height=%d\nwidth=%d\nbatch=%d\nsubdivisions=1\n", size, size, batch);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return fclose(o) == 0 ? 0 : -1;
}

/* Synthetic inputs in [0, 1) and 1-4 boxes per image, relative to the image, 10-70 % of
 * its width, classes taken in turn (the classes of the first [yolo] layer). */
static void det_fill(network *net, unsigned seed)
{
    unsigned s = seed;
    for (size_t i = 0; i < (size_t)net->inputs * net->batch; ++i) {
        s = s * 1103515245u + 12345u;
        net->input[i] = (float)((s >> 8) & 0xffff) / 65536.0f;
    }
    int classes = 1;
    for (int i = 0; i < net->n; ++i)
        if (net->layers[i].type == YOLO) {
            classes = net->layers[i].classes;
            break;
        }
    memset(net->truth, 0, (size_t)net->truths * net->batch * sizeof(float));
    for (int b = 0; b < net->batch; ++b) {
        float *row = net->truth + (size_t)b * net->truths; /* (90, 5) */
        int boxes = 1 + b % 4;
        for (int j = 0; j < boxes && (j + 1) * DET_BOX <= net->truths; ++j) {
            float *t = row + j * DET_BOX;
            t[0] = 0.15f + 0.7f * (float)((b * 37 + j * 11) % 97) / 97.0f; /* x, y: centre */
            t[1] = 0.15f + 0.7f * (float)((b * 53 + j * 29) % 89) / 89.0f;
            t[2] = 0.1f + 0.6f * (float)((b * 7 + j * 13) % 31) / 31.0f; /* w, h: both heads' anchors */
            t[3] = t[2] * (0.7f + 0.6f * (float)((b * 17 + j * 5) % 29) / 29.0f);
            t[4] = (float)((b + j) % classes);
        }
    }
}

/* Every layer forward in training mode, backward and updated: Darknet's training step. */
static int det_plan(const network *net, lwf_plan *p)
{
    memset(p, 0, sizeof *p);
    p->n = net->n;
    p->fwd = malloc((size_t)net->n);
    p->train = malloc((size_t)net->n);
    p->learn = malloc((size_t)net->n);
    if (!p->fwd || !p->train || !p->learn) {
        lwf_plan_free(p);
        return -1;
    }
    memset(p->fwd, 1, (size_t)net->n);
    memset(p->train, 1, (size_t)net->n);
    memset(p->learn, 1, (size_t)net->n);
    return 0;
}

/* ---- PyTorch: bench/torch_det.py --serve, one step per request ---- */

typedef struct {
    pid_t pid;
    FILE *to, *from;   /* its stdin, its stdout */
    double gf;         /* its step's GFLOP per image (the same stack: the same count) */
    char version[64];  /* torch.__version__ */
} torch_proc;

/* Starts torch_det.py on the rewritten cfg with Debian's python3 (python3-torch's), no
 * shell, and waits for its "ready" line (after its untimed steps).  Returns 0, 1 when
 * PyTorch is not installed, -1 on failure. */
static int torch_start(const bench_det_opts *o, const char *cfg, torch_proc *tp)
{
    char script[4096], threads[16];
    snprintf(script, sizeof script, "%s/bench/torch_det.py", o->root);
    snprintf(threads, sizeof threads, "%d", lwf_threads());
    int in[2], out[2];
    if (pipe(in) != 0) return -1;
    if (pipe(out) != 0) {
        close(in[0]), close(in[1]);
        return -1;
    }
    signal(SIGPIPE, SIG_IGN); /* a dead child is seen as a failed read or write */
    /* OpenMP threads that wait without spinning, as our pool's do after a brief spin:
     * with libgomp's default spinning, a 2-thread PyTorch ran 4x slower than itself
     * passive while other jobs shared the cores (measured here); kept if already set */
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    fflush(NULL);
    tp->pid = fork();
    if (tp->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        char *argv[] = {"/usr/bin/python3", script, "--cfg", (char *)cfg, "--threads", threads, "--serve", NULL};
        execv(argv[0], argv);
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(3);
    }
    close(in[0]), close(out[1]);
    tp->to = tp->pid > 0 ? fdopen(in[1], "w") : NULL;
    tp->from = tp->pid > 0 ? fdopen(out[0], "r") : NULL;
    char line[256];
    if (tp->to && tp->from && fgets(line, sizeof line, tp->from) &&
        sscanf(line, "ready gflop %lf torch %63s", &tp->gf, tp->version) == 2)
        return 0;
    int st = 0;
    if (tp->to) fclose(tp->to);
    else close(in[1]);
    if (tp->from) fclose(tp->from);
    else close(out[0]);
    if (tp->pid > 0) waitpid(tp->pid, &st, 0);
    return tp->pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 3 ? 1 : -1;
}

/* One PyTorch step, timed inside the child: wall and CPU seconds.  Returns 0 or -1. */
static int torch_step(torch_proc *tp, double *wall, double *cpu)
{
    char line[256];
    if (fputs("step\n", tp->to) == EOF || fflush(tp->to) != 0 || !fgets(line, sizeof line, tp->from)) return -1;
    return sscanf(line, "t %lf %lf", wall, cpu) == 2 ? 0 : -1;
}

static int torch_stop(torch_proc *tp)
{
    fclose(tp->to); /* end of input: it exits */
    fclose(tp->from);
    int st = 0;
    waitpid(tp->pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* ---- timing ---- */

/* Median and best of t[n] (sorted in place), mean of cpu[n]. */
static timing summarise(double *t, const double *cpu, int n)
{
    timing tm = {0, 0, 0, n};
    if (n == 0) return tm;
    qsort(t, (size_t)n, sizeof(double), bench_cmp_double);
    tm.median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    tm.best = t[0];
    for (int i = 0; i < n; ++i) tm.cpu += cpu[i] / n;
    return tm;
}

static void det_step(network *net, const lwf_plan *p, double *wall, double *cpu)
{
    double t0 = bench_now(), c0 = bench_cpu_now();
    lwf_forward(net, p);
    lwf_backward(net, p);
    lwf_update(net, p, 0.0001f);
    *wall = bench_now() - t0;
    *cpu = bench_cpu_now() - c0;
}

/* Up to `reps` rounds after 2 untimed steps (of each side); a round is one step of ours
 * and, with tp, one of PyTorch's, in alternating order, so that load from elsewhere hits
 * both alike; stops once `budget` seconds are spent (at least 2 rounds).  Returns 0, or
 * -1 if PyTorch failed. */
static int det_time(network *net, const lwf_plan *p, torch_proc *tp, int reps, double budget, timing *ours,
                    timing *theirs)
{
    double *t = calloc(4 * (size_t)reps, sizeof(double)), w, c;
    if (!t) return -1;
    double *cpu = t + reps, *tt = t + 2 * reps, *tc = t + 3 * reps;
    int n = 0, rc = 0;
    for (int r = 0; r < 2; ++r) det_step(net, p, &w, &c);
    double start = bench_now();
    while (n < reps && rc == 0) {
        for (int k = 0; k < 2 && rc == 0; ++k) {
            if ((k + n) % 2 == 0) det_step(net, p, &t[n], &cpu[n]);
            else if (tp) rc = torch_step(tp, &tt[n], &tc[n]);
        }
        ++n;
        if (n >= 2 && bench_now() - start > budget) break;
    }
    *ours = summarise(t, cpu, n);
    if (tp) *theirs = summarise(tt, tc, rc == 0 ? n : 0);
    free(t);
    return rc;
}

/* ---- the row ---- */

typedef struct {
    timing ref, fast, torch;
    double gf;        /* GFLOP per image of a training step */
    int fast_layers;  /* layers running our kernels */
    int n_layers;
    int torch_rc;     /* 0 ran, 1 not installed, -1 failed, 2 not asked */
    char version[64];
} det_result;

/* One side: parse the cfg (with the kernels of `reference`), time its steps (with
 * PyTorch's, interleaved, on the fast side). */
static int det_side(const bench_det_opts *o, const char *cfg, int reference, det_result *res)
{
    lwf_set_reference(reference);
    fprintf(stderr, "bench: %s, %s kernels\n", o->cfg, reference ? "reference" : "fast");
    network *net = parse_network_cfg((char *)cfg);
    lwf_err err;
    lwf_plan p;
    int rc = !net || lwf_kernels_install(net, &err) != 0 ? -1 : det_plan(net, &p);
    if (rc != 0) fprintf(stderr, "bench: %s: %s\n", o->cfg, net ? err.msg : "libdarknet could not build it");
    torch_proc tp;
    if (rc == 0 && !reference) res->torch_rc = o->torch ? torch_start(o, cfg, &tp) : 2;
    if (rc == 0) {
        res->gf = bench_fwd_flops(net, &p) * 3 / 1e9;
        res->n_layers = net->n;
        for (int i = 0; i < net->n; ++i) res->fast_layers += !reference && lwf_kernels_installed(&net->layers[i]);
        det_fill(net, 1);
        /* forward_yolo_layer prints a line per pass on stdout: to stderr with the progress */
        fflush(stdout);
        int out = dup(1);
        if (out >= 0) dup2(2, 1);
        torch_proc *t = !reference && res->torch_rc == 0 ? &tp : NULL;
        int reps = reference ? o->ref_reps : o->fast_reps;
        if (det_time(net, &p, t, reps, reference ? 20 : 30, reference ? &res->ref : &res->fast, &res->torch) != 0)
            res->torch_rc = -1;
        if (t && torch_stop(t) != 0) res->torch_rc = -1;
        if (t) snprintf(res->version, sizeof res->version, "%s", tp.version);
        if (t && fabs(tp.gf - res->gf) > 1e-9 * res->gf) /* the stacks differ: no comparison */
            fprintf(stderr, "bench: PyTorch's stack counts %.9g GFLOP/img per step, Darknet's %.9g\n", tp.gf, res->gf),
                res->torch_rc = -1;
        if (o->layers && !reference) bench_profile_layers(net, &p, 3);
        fflush(stdout);
        if (out >= 0) dup2(out, 1), close(out);
        lwf_plan_free(&p);
    }
    if (net) free_network(net);
    lwf_set_reference(0);
    return rc;
}

static void det_compare(const bench_det_opts *o, const det_result *r)
{
    printf("\ndetector training step, batch %d at %dx%d: Darknet's kernels, ours, PyTorch (%d threads, float32).\n"
           "PyTorch runs the cfg's convolution stack (the same GFLOP) with a squared-error loss on the [yolo]\n"
           "inputs instead of [yolo]'s loss; ours and PyTorch's steps interleaved, one of each per round, after 2\n"
           "untimed each; img/s from the medians; CPU s = CPU seconds of that process per step (mean);\n"
           "PyTorch with OMP_WAIT_POLICY=%s\n",
           o->batch, o->size, o->size, lwf_threads(), getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "-");
    printf("%-36s %9s %9s %9s %4s\n", "kernels", "img/s", "best", "CPU s", "N");
    const timing *t[3] = {&r->ref, &r->fast, &r->torch};
    char torch[80];
    snprintf(torch, sizeof torch, "PyTorch %s", r->version);
    const char *names[3] = {"Darknet reference (1 thread)", "darknet-lwf", torch};
    for (int i = 0; i < 3; ++i)
        if (t[i]->n && (i < 2 || r->torch_rc == 0))
            printf("%-36s %9.1f %9.1f %9.3f %4d\n", names[i], o->batch / t[i]->median, o->batch / t[i]->best, t[i]->cpu,
                   t[i]->n);
    if (r->torch_rc == 1) printf("%-36s skipped: python3-torch not installed (make bench-deps)\n", "PyTorch");
    else if (r->torch_rc == -1) printf("%-36s failed (bench/torch_det.py; see stderr)\n", "PyTorch");
    else if (r->torch_rc == 0 && r->torch.n)
        printf("ours / PyTorch: %.2fx img/s, %.2fx CPU time\n", r->torch.median / r->fast.median,
               r->torch.cpu / r->fast.cpu);
}

int bench_det(const bench_det_opts *o, double peak)
{
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/det.cfg", o->dir);
    if (det_cfg(o->cfg, cfg, o->size, o->batch) != 0) return -1;
    det_result r;
    memset(&r, 0, sizeof r);
    r.torch_rc = 2;
    int rc = 0;
    if (o->ref_reps > 0) rc = det_side(o, cfg, 1, &r);
    if (rc == 0 && o->fast_reps > 0) rc = det_side(o, cfg, 0, &r);
    if (rc == 0) {
        const char *base = strrchr(o->cfg, '/') ? strrchr(o->cfg, '/') + 1 : o->cfg;
        char name[64];
        snprintf(name, sizeof name, "%.16s %dx%d", base, o->size, o->size);
        bench_print_row(name, o->batch, r.gf, &r.ref, &r.fast, peak);
        if (r.fast.n) {
            printf("(%s: stock [yolo] layers from libdarknet's parser; our kernels on %d of its %d layers)\n", base,
                   r.fast_layers, r.n_layers);
            det_compare(o, &r);
        }
    }
    unlink(cfg);
    return rc;
}
