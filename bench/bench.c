/* make bench: training-step speed with Darknet's reference kernels and with ours, in the
 * same run, for the Fashion-MNIST net, Darknet's cifar.cfg and a darknet19-style net at
 * a small input; the sgemm peak; the LwF teacher's overhead; peak memory.  Prints one
 * table on stdout (progress on stderr).  Synthetic inputs: this times the step, not
 * image decoding (lwf train loads the next batch in a background thread). */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <cblas.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const lwf_err *err)
{
    fprintf(stderr, "bench: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

/* ---- cfgs: a stock classifier cfg becomes a one-head LwF cfg ---- */

/* Writes `src` to dir/name with: [net] height/width set to `size` (if > 0), and, when
 * `head_task` is set, a [task] before the last [convolutional] or [connected] section
 * (the classifier's head), so the whole stock network is trunk + one new head. */
static char *make_cfg(const char *dir, const char *name, const char *src, int size, int head_task)
{
    char *text = bench_slurp(src);
    if (!text) {
        fprintf(stderr, "bench: cannot read %s\n", src);
        exit(1);
    }
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *o = fopen(path, "w");
    if (!o) die(path, NULL);
    /* find the last head section */
    char *last = NULL;
    for (char *p = text; (p = strchr(p, '[')) != NULL; ++p)
        if ((p == text || p[-1] == '\n') && (strncmp(p, "[convolutional]", 15) == 0 || strncmp(p, "[connected]", 11) == 0))
            last = p;
    int in_net = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (head_task && line == last) fprintf(o, "[task]\nname=bench\n\n");
        const char *p = line;
        while (*p == ' ' || *p == '\t') ++p;
        if (*p == '[') in_net = strncmp(p, "[net]", 5) == 0;
        int skip = in_net && size > 0 && (strncmp(p, "height", 6) == 0 || strncmp(p, "width", 5) == 0);
        if (!skip) fprintf(o, "%.*s\n", (int)len, line);
        if (in_net && *p == '[' && size > 0) fprintf(o, "height=%d\nwidth=%d\n", size, size);
        line = nl ? nl + 1 : NULL;
    }
    fclose(o);
    free(text);
    return path;
}

/* ---- one training step ---- */

static void fill_batch(lwf_model *m, unsigned seed)
{
    network *net = m->net;
    unsigned s = seed;
    for (int i = 0; i < net->inputs * net->batch; ++i) {
        s = s * 1103515245u + 12345u;
        net->input[i] = (float)((s >> 8) & 0xffff) / 65536.0f;
    }
    memset(net->truth, 0, (size_t)net->truths * net->batch * sizeof(float));
    for (int b = 0; b < net->batch; ++b)
        for (int k = 0; k < m->ntasks; ++k) {
            const lwf_task *t = &m->tasks[k];
            float *row = net->truth + (size_t)b * net->truths + t->offset;
            if (t->is_new) row[b % t->classes] = 1;
            else
                for (int c = 0; c < t->classes; ++c) row[c] = (float)((b * 7 + c * 3) % 11) / 5.0f - 1.0f;
        }
}

typedef struct {
    lwf_model *teacher;   /* online teacher, or NULL */
    lwf_plan tplan;
} teacher_ctx;

/* The online teacher's part of a step, as lwf train runs it: trunk + old heads forward
 * in inference mode on the same input, logits copied into the truth rows. */
static void teacher_step(teacher_ctx *tc, lwf_model *m)
{
    network *tn = tc->teacher->net, *net = m->net;
    memcpy(tn->input, net->input, (size_t)net->inputs * net->batch * sizeof(float));
    lwf_forward(tn, &tc->tplan);
    for (int k = 0; k < m->ntasks; ++k) {
        const lwf_task *t = &m->tasks[k];
        if (t->is_new) continue;
        const float *z = tn->layers[t->loss - 1].output;
        for (int b = 0; b < net->batch; ++b)
            memcpy(net->truth + (size_t)b * net->truths + t->offset, z + (size_t)b * t->classes,
                   (size_t)t->classes * sizeof(float));
    }
}

/* Times up to `reps` steps (after one untimed step), stopping early once `budget`
 * seconds are spent (at least 2 timed steps). */
static timing time_steps(lwf_model *m, const lwf_plan *p, teacher_ctx *tc, int reps, double budget)
{
    network *net = m->net;
    double *t = calloc((size_t)reps, sizeof(double));
    int n = 0;
    double start = bench_now(), c0 = 0;
    for (int r = -1; r < reps; ++r) {
        if (r == 0) c0 = bench_cpu_now();
        double t0 = bench_now();
        if (tc) teacher_step(tc, m);
        lwf_forward(net, p);
        lwf_backward(net, p);
        lwf_update(net, p, 0.001f);
        double t1 = bench_now();
        if (r >= 0) t[n++] = t1 - t0;
        if (n >= 2 && t1 - start > budget) break;
    }
    timing tm = {0, 0, (bench_cpu_now() - c0) / n, n};
    qsort(t, (size_t)n, sizeof(double), bench_cmp_double);
    tm.median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    tm.best = t[0];
    free(t);
    return tm;
}

static lwf_model *load(const char *cfg, int batch)
{
    lwf_err err;
    lwf_build_opts o = {batch, 1};
    /* no layer table: libdarknet prints one whatever quiet says, so fd 2 goes to /dev/null */
    fflush(stderr);
    int saved = dup(2), nul = open("/dev/null", O_WRONLY);
    if (saved >= 0 && nul >= 0) dup2(nul, 2);
    if (nul >= 0) close(nul);
    lwf_model *m = lwf_model_load(cfg, &o, &err);
    if (saved >= 0) {
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
    }
    if (!m) die(cfg, &err);
    return m;
}

typedef struct {
    const char *name, *cfg;
    int batch;
    int ref_reps, fast_reps;
} netspec;

static double peak_gflops(void)
{
    int n = 2048, nt = lwf_threads();
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (long i = 0; i < (long)n * n; ++i) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    openblas_set_num_threads(nt);
    double best = 0;
    for (int r = 0; r < 5; ++r) {
        double t0 = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double g = 2.0 * n * n * n / (bench_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    openblas_set_num_threads(1);
    free(a);
    free(b);
    free(c);
    return best;
}

/* LwF overhead on the Fashion net: fine-tuning, joint with recorded responses, joint
 * with the online teacher (fast kernels). */
static void lwf_overhead(const char *fashion_lwf, int layers, int teacher_only)
{
    printf("\nLwF step on cfg/fashion-lwf.cfg, batch 128, fast kernels\n");
    printf("%-40s %9s %9s %6s %9s %6s %4s\n", "step", "ms", "img/s", "ratio", "CPU ms", "ratio", "N");
    lwf_model *m = load(fashion_lwf, 128);
    teacher_ctx tc;
    tc.teacher = load(fashion_lwf, 128);
    lwf_plan_make(tc.teacher, LWF_PASS_TEACHER, &tc.tplan);
    lwf_plan fine, joint;
    lwf_plan_make(m, LWF_PASS_FINETUNE, &fine);
    lwf_plan_make(m, LWF_PASS_JOINT, &joint);
    fill_batch(m, 2);
    for (int r = 0; r < teacher_only; ++r) teacher_step(&tc, m); /* for a profiler */
    if (layers) {
        fprintf(stderr, "teacher (inference, trunk + old head):\n");
        bench_profile_layers(tc.teacher->net, &tc.tplan, 5);
        fprintf(stderr, "fine-tuning step:\n");
        bench_profile_layers(m->net, &fine, 5);
        fprintf(stderr, "joint step:\n");
        bench_profile_layers(m->net, &joint, 5);
    }
    const char *names[4] = {"fine-tuning (trunk + new head)", "joint, recorded teacher responses",
                            "joint, online teacher", "(the teacher's forward pass alone)"};
    /* One step of each kind per round, in a rotating order, for ROUNDS rounds: load from
     * elsewhere hits every kind alike; each kind's median (wall and CPU time) is kept. */
    enum { ROUNDS = 60 };
    double *wt[4], *ct[4];
    for (int i = 0; i < 4; ++i) {
        wt[i] = calloc(ROUNDS, sizeof(double));
        ct[i] = calloc(ROUNDS, sizeof(double));
    }
    for (int i = 0; i < 3; ++i) time_steps(m, i == 0 ? &fine : &joint, i == 2 ? &tc : NULL, 2, 0); /* warm */
    for (int r = 0; r < ROUNDS; ++r)
        for (int k = 0; k < 4; ++k) {
            int i = (k + r) % 4;
            double t0 = bench_now(), c0 = bench_cpu_now();
            if (i == 3) {
                teacher_step(&tc, m);
            } else {
                if (i == 2) teacher_step(&tc, m);
                const lwf_plan *p = i == 0 ? &fine : &joint;
                lwf_forward(m->net, p);
                lwf_backward(m->net, p);
                lwf_update(m->net, p, 0.001f);
            }
            wt[i][r] = bench_now() - t0;
            ct[i][r] = bench_cpu_now() - c0;
        }
    double w[4], c[4];
    for (int i = 0; i < 4; ++i) {
        qsort(wt[i], ROUNDS, sizeof(double), bench_cmp_double);
        qsort(ct[i], ROUNDS, sizeof(double), bench_cmp_double);
        w[i] = 0.5 * (wt[i][ROUNDS / 2 - 1] + wt[i][ROUNDS / 2]);
        c[i] = 0.5 * (ct[i][ROUNDS / 2 - 1] + ct[i][ROUNDS / 2]);
        free(wt[i]);
        free(ct[i]);
    }
    for (int i = 0; i < 4; ++i)
        printf("%-40s %9.2f %9.1f %5.2fx %9.2f %5.2fx %4d\n", names[i], w[i] * 1e3, 128 / w[i], w[i] / w[0], c[i] * 1e3,
               c[i] / c[0], ROUNDS);
    printf("(medians of %d interleaved rounds; CPU ms: CPU time of the process (both threads) per step)\n", (int)ROUNDS);
    lwf_plan_free(&fine);
    lwf_plan_free(&joint);
    lwf_plan_free(&tc.tplan);
    lwf_model_free(tc.teacher);
    lwf_model_free(m);

}

int main(int argc, char **argv)
{
    int quick = 0, no_lwf = 0, want_reps = 0, layers = 0, teacher_only = 0, ref_only = 0, no_peak = 0;
    const char *only = NULL; /* run only the nets whose name contains this */
    bench_det_opts det = {"/usr/share/darknet/cfg/yolov3-tiny.cfg", 160, 8, 2, 10, 1, 0, NULL, NULL};
    int no_det = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "-quick") == 0) quick = 1;            /* no reference kernels */
        else if (strcmp(argv[i], "-refonly") == 0) ref_only = 1;  /* reference kernels only (profiling) */
        else if (strcmp(argv[i], "-nopeak") == 0) no_peak = 1;    /* no sgemm peak (profiling) */
        else if (strcmp(argv[i], "-nolwf") == 0) no_lwf = 1;      /* no LwF overhead table */
        else if (strcmp(argv[i], "-layers") == 0) layers = 1;     /* per-layer times on stderr */
        else if (strcmp(argv[i], "-teacher") == 0 && i + 1 < argc) teacher_only = atoi(argv[++i]); /* profiling */
        else if (strcmp(argv[i], "-net") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "-reps") == 0 && i + 1 < argc) want_reps = atoi(argv[++i]); /* fast steps to time */
        else if (strcmp(argv[i], "-det") == 0 && i + 1 < argc) det.cfg = argv[++i];        /* detector cfg */
        else if (strcmp(argv[i], "-detsize") == 0 && i + 1 < argc) det.size = atoi(argv[++i]);
        else if (strcmp(argv[i], "-detbatch") == 0 && i + 1 < argc) det.batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "-nodet") == 0) no_det = 1;                               /* no detector row */
        else if (strcmp(argv[i], "-notorch") == 0) det.torch = 0;                          /* no PyTorch run */
        else {
            fprintf(stderr, "usage: bench [-quick | -refonly] [-nolwf] [-nopeak] [-layers] [-net NAME] [-reps N] "
                            "[-teacher N] [-det CFG] [-detsize N] [-detbatch N] [-nodet] [-notorch]\n");
            return 2;
        }
    }
    if (det.size < 32 || det.size % 32 || det.batch < 1) {
        fprintf(stderr, "bench: -detsize must be a multiple of 32 (got %d), -detbatch >= 1 (got %d)\n", det.size,
                det.batch);
        return 2;
    }
    const char *root = getenv("LWF_ROOT") ? getenv("LWF_ROOT") : ".";
    char dir[] = "/tmp/lwf-bench-XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    char fashion_src[4096], fashion_lwf[4096];
    snprintf(fashion_src, sizeof fashion_src, "%s/cfg/fashion.cfg", root);
    snprintf(fashion_lwf, sizeof fashion_lwf, "%s/cfg/fashion-lwf.cfg", root);
    char cfgs[3][4096];
    snprintf(cfgs[0], sizeof cfgs[0], "%s", make_cfg(dir, "fashion.cfg", fashion_src, 0, 1));
    snprintf(cfgs[1], sizeof cfgs[1], "%s", make_cfg(dir, "cifar.cfg", "/usr/share/darknet/cfg/cifar.cfg", 0, 1));
    snprintf(cfgs[2], sizeof cfgs[2], "%s",
             make_cfg(dir, "darknet19.cfg", "/usr/share/darknet/cfg/darknet19.cfg", 64, 1));
    netspec nets[3] = {{"fashion.cfg", cfgs[0], 128, 5, 40},
                       {"cifar.cfg (28x28)", cfgs[1], 32, 2, 10},
                       {"darknet19.cfg at 64x64", cfgs[2], 16, 2, 20}};
    double budget_ref = 20, budget_fast = 5;
    for (int i = 0; i < 3; ++i) {
        if (quick) nets[i].ref_reps = 0;
        if (want_reps > 0) nets[i].fast_reps = want_reps, budget_fast = 1e9;
    }

    char host[256] = "?";
    gethostname(host, sizeof host);
    printf("darknet-lwf bench: %d threads, %s\n", lwf_threads(), lwf_blas_info());
    double peak = ref_only || no_peak ? 0 : peak_gflops(); /* (not when profiling) */
    printf("sgemm 2048x2048x2048 (OpenBLAS, %d threads): %.1f GFLOPS (best of 5)\n\n", lwf_threads(), peak);
    printf("training step (forward, backward, update) on synthetic data; img/s from the median step time of N timed\n"
           "steps after 1 untimed, 'best' from the fastest step; CPU = CPU seconds of the process per step\n");
    printf("%-24s %5s %9s | %9s %7s %3s | %9s %9s %7s %7s %3s | %7s %5s\n", "net", "batch", "GFLOP/img", "ref img/s",
           "GFLOPS", "N", "fast img/s", "best", "GFLOPS", "CPU s", "N", "speedup", "%peak");
    for (int k = 0; k < 3; ++k) {
        netspec *ns = &nets[k];
        if (only && !strstr(ns->name, only)) continue;
        timing tr = {0, 0, 0, 0}, tf = {0, 0, 0, 0};
        double gf = 0;
        for (int mode = 0; mode < 2; ++mode) {
            int reps = mode == 0 ? ns->ref_reps : ref_only ? 0 : ns->fast_reps;
            if (reps == 0) continue;
            lwf_set_reference(mode == 0);
            fprintf(stderr, "bench: %s, %s kernels\n", ns->name, mode == 0 ? "reference" : "fast");
            lwf_model *m = load(ns->cfg, ns->batch);
            lwf_plan p;
            lwf_plan_make(m, LWF_PASS_JOINT, &p);
            gf = bench_fwd_flops(m->net, &p) * 3 / 1e9;
            fill_batch(m, 1);
            timing tm = time_steps(m, &p, NULL, reps, mode == 0 ? budget_ref : budget_fast);
            if (layers && mode == 1) bench_profile_layers(m->net, &p, 3);
            if (mode == 0) tr = tm;
            else tf = tm;
            lwf_plan_free(&p);
            lwf_model_free(m);
        }
        lwf_set_reference(0);
        bench_print_row(ns->name, ns->batch, gf, &tr, &tf, peak);
    }

    if (!no_det && (!only || strstr(det.cfg, only))) {
        det.root = root;
        det.dir = dir;
        det.layers = layers;
        if (quick) det.ref_reps = 0;
        if (ref_only) det.fast_reps = 0;
        if (want_reps > 0) det.fast_reps = want_reps;
        if (bench_det(&det, peak) != 0) return 1;
    }

    if (!no_lwf || teacher_only) lwf_overhead(fashion_lwf, layers, teacher_only);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\npeak memory (getrusage ru_maxrss, whole run): %.1f MiB\n", ru.ru_maxrss / 1024.0);
    for (int k = 0; k < 3; ++k) unlink(cfgs[k]);
    rmdir(dir);
    return 0;
}
