/* bench/: what bench.c (the classifier rows, the LwF overhead) and det.c (the detector
 * row and its PyTorch counterpart) share: clocks, medians, FLOP counts, the per-layer
 * profile and the table's row format. */
#ifndef LWF_BENCH_H
#define LWF_BENCH_H

#include "lwf.h"

typedef struct {
    double median, best;  /* seconds of one step (wall clock) */
    double cpu;           /* CPU seconds of one step, all threads (process time / steps) */
    int n;                /* steps timed */
} timing;

double bench_now(void);      /* monotonic wall clock, seconds */
double bench_cpu_now(void);  /* CPU time of the process (all threads), seconds */
int bench_cmp_double(const void *a, const void *b);
/* The whole file, NUL-terminated (caller frees), or NULL if it cannot be read. */
char *bench_slurp(const char *path);
/* FLOPs (multiply-adds x 2) of one image's forward pass through the planned
 * convolutional and connected layers. */
double bench_fwd_flops(const network *net, const lwf_plan *p);
/* Per-layer forward and backward times of `reps` planned steps, on stderr. */
void bench_profile_layers(network *net, const lwf_plan *p, int reps);
void bench_print_row(const char *name, int batch, double gf, const timing *tr, const timing *tf, double peak);

/* ---- det.c ---- */

typedef struct {
    const char *cfg;    /* a stock detector cfg ([yolo] heads) */
    int size, batch;    /* input height = width, and batch, written into its [net] */
    int ref_reps, fast_reps;  /* steps to time at most (0: that side not run) */
    int torch;          /* also PyTorch's step (bench/torch_det.py), interleaved with ours */
    int layers;         /* per-layer profile of the fast step on stderr */
    const char *root;   /* the repository (bench/torch_det.py) */
    const char *dir;    /* a scratch directory for the rewritten cfg */
} bench_det_opts;

/* Times the detector's training step with Darknet's reference kernels and with ours,
 * prints its row of the table (peak as in bench_print_row), then the PyTorch comparison.
 * Returns 0, or -1 after a message on stderr. */
int bench_det(const bench_det_opts *o, double peak);

#endif
