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

/* Times up to `reps` steps after 2 untimed ones (as torch_det.py does), stopping once
 * `budget` seconds are spent (at least 2 timed steps). */
static timing det_time(network *net, const lwf_plan *p, int reps, double budget)
{
    double *t = calloc((size_t)reps, sizeof(double));
    timing tm = {0, 0, 0, 0};
    if (!t) return tm;
    double start = 0, c0 = 0;
    for (int r = -2; r < reps; ++r) {
        if (r == 0) start = bench_now(), c0 = bench_cpu_now();
        double t0 = bench_now();
        lwf_forward(net, p);
        lwf_backward(net, p);
        lwf_update(net, p, 0.0001f);
        double t1 = bench_now();
        if (r >= 0) t[tm.n++] = t1 - t0;
        if (tm.n >= 2 && t1 - start > budget) break;
    }
    tm.cpu = (bench_cpu_now() - c0) / tm.n;
    qsort(t, (size_t)tm.n, sizeof(double), bench_cmp_double);
    tm.median = tm.n % 2 ? t[tm.n / 2] : 0.5 * (t[tm.n / 2 - 1] + t[tm.n / 2]);
    tm.best = t[0];
    free(t);
    return tm;
}

/* One side of the row: parse the cfg (with the kernels of `reference`), time its steps.
 * Sets *gf to the step's GFLOP per image and *fast_layers to the layers ours run. */
static int det_side(const bench_det_opts *o, const char *cfg, int reference, int reps, double budget, timing *tm,
                    double *gf, int *fast_layers)
{
    lwf_set_reference(reference);
    fprintf(stderr, "bench: %s, %s kernels\n", o->cfg, reference ? "reference" : "fast");
    network *net = parse_network_cfg((char *)cfg);
    lwf_err err;
    if (!net || lwf_kernels_install(net, &err) != 0) {
        fprintf(stderr, "bench: %s: %s\n", o->cfg, net ? err.msg : "libdarknet could not build it");
        lwf_set_reference(0);
        return -1;
    }
    lwf_plan p;
    if (det_plan(net, &p) != 0) {
        free_network(net);
        lwf_set_reference(0);
        return -1;
    }
    *gf = bench_fwd_flops(net, &p) * 3 / 1e9;
    *fast_layers = 0;
    for (int i = 0; i < net->n; ++i) *fast_layers += lwf_kernels_installed(&net->layers[i]);
    det_fill(net, 1);
    /* forward_yolo_layer prints a line per pass on stdout: to stderr with the progress */
    fflush(stdout);
    int out = dup(1);
    if (out >= 0) dup2(2, 1);
    *tm = det_time(net, &p, reps, budget);
    if (o->layers && !reference) bench_profile_layers(net, &p, 3);
    fflush(stdout);
    if (out >= 0) dup2(out, 1), close(out);
    lwf_plan_free(&p);
    free_network(net);
    lwf_set_reference(0);
    return tm->n > 0 ? 0 : -1;
}

/* Runs bench/torch_det.py on the rewritten cfg with Debian's python3 (python3-torch's),
 * no shell; reads its result line.  Returns 0 with *tm, *gf (its step's GFLOP per image)
 * and version[], 1 when PyTorch is not installed, -1 on failure. */
static int det_torch(const bench_det_opts *o, const char *cfg, timing *tm, double *gf, char *version, size_t vn)
{
    char script[4096], threads[16], reps[16];
    snprintf(script, sizeof script, "%s/bench/torch_det.py", o->root);
    snprintf(threads, sizeof threads, "%d", lwf_threads());
    snprintf(reps, sizeof reps, "%d", o->torch_reps);
    int fd[2];
    if (pipe(fd) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        char *argv[] = {"/usr/bin/python3", script, "--cfg", (char *)cfg, "--threads", threads, "--reps", reps, NULL};
        execv(argv[0], argv);
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(3);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    char line[512];
    int got = 0;
    while (in && fgets(line, sizeof line, in))
        if (sscanf(line, "torch_det: median %lf best %lf cpu %lf n %d gflop %lf torch %63s", &tm->median, &tm->best,
                   &tm->cpu, &tm->n, gf, version) == 6)
            got = 1;
        else
            fputs(line, stderr);
    if (in) fclose(in);
    int st = 0;
    waitpid(pid, &st, 0);
    version[vn - 1] = '\0';
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3) return 1;
    return got && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void det_compare(const bench_det_opts *o, const char *cfg, const timing *tr, const timing *tf, double gf)
{
    printf("\ndetector training step, same batch and input: Darknet's kernels, ours, PyTorch (%d threads, float32;\n"
           "PyTorch runs the cfg's convolution stack with a squared-error loss on the [yolo] inputs instead of\n"
           "[yolo]'s loss; medians of N steps after 2 untimed)\n", lwf_threads());
    printf("%-36s %9s %9s %9s %4s\n", "kernels", "img/s", "best", "CPU s", "N");
    if (tr->n) printf("%-36s %9.1f %9.1f %9.3f %4d\n", "Darknet reference (1 thread)", o->batch / tr->median,
                      o->batch / tr->best, tr->cpu, tr->n);
    printf("%-36s %9.1f %9.1f %9.3f %4d\n", "darknet-lwf", o->batch / tf->median, o->batch / tf->best, tf->cpu, tf->n);
    if (o->torch_reps <= 0) return;
    timing tt = {0, 0, 0, 0};
    char version[64] = "?";
    double tgf = 0;
    int rc = det_torch(o, cfg, &tt, &tgf, version, sizeof version);
    if (rc == 1) {
        printf("%-36s skipped: python3-torch not installed (make bench-deps)\n", "PyTorch");
        return;
    }
    if (rc != 0) {
        printf("%-36s failed (bench/torch_det.py; see stderr)\n", "PyTorch");
        return;
    }
    char name[64];
    snprintf(name, sizeof name, "PyTorch %s", version);
    printf("%-36s %9.1f %9.1f %9.3f %4d\n", name, o->batch / tt.median, o->batch / tt.best, tt.cpu, tt.n);
    printf("ours / PyTorch: %.2fx (img/s of the medians)\n", tt.median / tf->median);
    if (fabs(tgf - gf) > 1e-6 * gf) /* the stacks differ: the comparison is void */
        printf("WARNING: PyTorch's stack counts %.6f GFLOP/img per step, Darknet's %.6f\n", tgf, gf);
}

int bench_det(const bench_det_opts *o, double peak)
{
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/det.cfg", o->dir);
    if (det_cfg(o->cfg, cfg, o->size, o->batch) != 0) return -1;
    timing tr = {0, 0, 0, 0}, tf = {0, 0, 0, 0};
    double gf = 0;
    int fast = 0, ref_fast = 0;
    int rc = 0;
    if (o->ref_reps > 0) rc = det_side(o, cfg, 1, o->ref_reps, 20, &tr, &gf, &ref_fast);
    if (rc == 0 && o->fast_reps > 0) rc = det_side(o, cfg, 0, o->fast_reps, 5, &tf, &gf, &fast);
    if (rc == 0) {
        const char *base = strrchr(o->cfg, '/') ? strrchr(o->cfg, '/') + 1 : o->cfg;
        char name[64];
        snprintf(name, sizeof name, "%.40s at %dx%d", base, o->size, o->size);
        bench_print_row(name, o->batch, gf, &tr, &tf, peak);
        if (tf.n) {
            printf("(%s: stock [yolo] layers from libdarknet's parser; our kernels on %d of its layers)\n", base, fast);
            det_compare(o, cfg, &tr, &tf, gf);
        }
    }
    unlink(cfg);
    return rc;
}
