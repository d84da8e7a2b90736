/* The bench's shared helpers (clocks, files, FLOP counts, the per-layer profile, a table
 * row), used by bench.c (the classifier rows, LwF overhead) and det.c (the detector row). */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

char *bench_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(s);
        return NULL;
    }
    s[n] = '\0';
    fclose(f);
    return s;
}

double bench_fwd_flops(const network *net, const lwf_plan *p)
{
    double f = 0;
    for (int i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        if (!p->fwd[i]) continue;
        if (l->type == CONVOLUTIONAL)
            f += 2.0 * l->out_h * l->out_w * l->n * l->size * l->size * (double)l->c / l->groups;
        else if (l->type == CONNECTED)
            f += 2.0 * l->inputs * (double)l->outputs;
    }
    return f;
}

double bench_cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Per-layer times of the fast step (the loops of step.c, timed layer by layer). */
static const char *type_name(LAYER_TYPE t)
{
    switch (t) {
    case CONVOLUTIONAL: return "convolutional";
    case CONNECTED: return "connected";
    case MAXPOOL: return "maxpool";
    case AVGPOOL: return "avgpool";
    case DROPOUT: return "dropout";
    case SOFTMAX: return "softmax";
    case ROUTE: return "route/task";
    case UPSAMPLE: return "upsample";
    case YOLO: return "yolo";
    default: return "other";
    }
}

void bench_profile_layers(network *netp, const lwf_plan *p, int reps)
{
    int n = netp->n;
    /* wall and process CPU seconds summed over the reps: forward, backward */
    double *tf = calloc(4 * (size_t)n, sizeof(double)), *tb = tf + n, *cf = tf + 2 * n, *cb = tf + 3 * n;
    for (int r = 0; r < reps; ++r) {
        network net = *netp;
        for (int i = 0; i < n; ++i) {
            if (!p->fwd[i]) continue;
            double t0 = bench_now(), c0 = bench_cpu_now();
            net.index = i;
            net.train = p->train[i];
            layer l = net.layers[i];
            if (l.delta) fill_cpu(l.outputs * l.batch, 0, l.delta, 1);
            l.forward(l, net);
            net.input = l.output;
            tf[i] += bench_now() - t0;
            cf[i] += bench_cpu_now() - c0;
        }
        net = *netp;
        network orig = net;
        for (int i = n - 1; i >= 0; --i) {
            if (!p->learn[i]) continue;
            double t0 = bench_now(), c0 = bench_cpu_now();
            layer l = net.layers[i];
            if (i == 0) {
                net = orig;
            } else {
                layer prev = net.layers[i - 1];
                net.input = prev.output;
                net.delta = p->learn[i - 1] ? prev.delta : NULL;
                if (l.type == ROUTE || l.type == SHORTCUT) net.delta = prev.delta;
            }
            net.index = i;
            net.train = p->train[i];
            l.backward(l, net);
            tb[i] += bench_now() - t0;
            cb[i] += bench_cpu_now() - c0;
        }
        lwf_update(netp, p, 0.001f);
    }
    fprintf(stderr, "%5s %-14s %9s %9s %8s %8s %9s %9s\n", "layer", "type", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s",
            "fwd CPUms", "bwd CPUms");
    for (int i = 0; i < n; ++i) {
        const layer *l = &netp->layers[i];
        double f = 0;
        if (l->type == CONVOLUTIONAL)
            f = 2.0 * l->out_h * l->out_w * l->n * l->size * l->size * (double)l->c / l->groups * l->batch;
        fprintf(stderr, "%5d %-14s %9.2f %9.2f %8.1f %8.1f %9.2f %9.2f\n", i, type_name(l->type), tf[i] / reps * 1e3,
                tb[i] / reps * 1e3, f ? f / (tf[i] / reps) / 1e9 : 0, f ? 2 * f / (tb[i] / reps) / 1e9 : 0,
                cf[i] / reps * 1e3, cb[i] / reps * 1e3);
    }
    free(tf);
}

/* One row of the training-step table: reference (tr) and fast (tf) timings of a net whose
 * training step costs gf GFLOP per image; peak = the sgemm rate (0: not measured). */
void bench_print_row(const char *name, int batch, double gf, const timing *tr, const timing *tf, double peak)
{
    double ref_ips = tr->n ? batch / tr->median : 0, fast_ips = tf->n ? batch / tf->median : 0;
    printf("%-24s %5d %9.3f | %9.1f %7.1f %3d | %9.1f %9.1f %7.1f %7.3f %3d | %6.1fx %4.0f%%\n", name, batch, gf,
           ref_ips, ref_ips * gf, tr->n, fast_ips, tf->n ? batch / tf->best : 0, fast_ips * gf, tf->cpu, tf->n,
           ref_ips > 0 ? fast_ips / ref_ips : 0, peak > 0 ? 100 * fast_ips * gf / peak : 0);
    fflush(stdout);
}
