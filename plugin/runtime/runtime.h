/* runtime/: where the kernels' work runs and with which settings: the process's settings
 * and the reference switch (runtime.c), the thread pool (pool.c), the routing of matrix
 * products to OpenBLAS or to libdarknet's reference gemm (blas.c).  The public switches
 * (reference mode, thread count, BLAS info, call counts) are in lwf.h.
 *
 * State.  Two things are process-wide, and nothing else:
 * - the reference switch (lwf_set_reference, or LWF_REFERENCE=1 read once): libdarknet's
 *   own layers call `gemm` with no context, and our gemm/gemm_cpu (blas.c) can only route
 *   those calls by a process-wide flag.  It is the whole switch: the installed layer
 *   kernels read the same flag at each call and hand the layer to Darknet's own function
 *   when it is on (kernels/install.c), so a network is built the same way in both modes
 *   and the mode can change between passes.  lwf_set_reference is its one setter.
 * - the pool's threads (LWF_THREADS, read once): a process resource, like OpenBLAS's own
 *   pool, started at the first parallel call and never stopped.
 * Every other setting a kernel call depends on is an lwf_runtime passed to it by
 * argument.  libdarknet calls a layer kernel as forward(layer, network), so the installer
 * keeps a copy in each layer it installs a kernel on (kernels/kernels.h: lwf_kernel_ctx,
 * owned by the layer); tests and the bench pass their own. */
#ifndef LWF_RUNTIME_H
#define LWF_RUNTIME_H

#include "base/base.h"

#define LWF_MAX_THREADS 64
#define LWF_MIN_WORK 200000.0

/* ---- settings (runtime.c) ---- */

/* What a kernel call depends on besides its layer and network. */
typedef struct lwf_runtime {
    double min_work;         /* work (floats touched, or multiply-adds) below which a kernel
                              * stays on the calling thread; 0 splits everything (tests) */
    unsigned long long seed; /* seed of the kernels' random streams ([dropout]) */
} lwf_runtime;

/* min_work LWF_MIN_WORK, seed 0. */
lwf_runtime lwf_runtime_default(void);
/* 0 when LWF_THREADS and LWF_REFERENCE are absent or valid (LWF_THREADS a whole number
 * 1..LWF_MAX_THREADS, LWF_REFERENCE 0 or 1); else -1 with err naming the variable and its
 * value.  lwf_kernels_install calls it, so every command that builds a network reports it;
 * until then a refused LWF_THREADS counts as unset (the online CPUs). */
int lwf_runtime_check(lwf_err *err);
/* The pool's size: LWF_THREADS, else the online CPUs (at most LWF_MAX_THREADS).
 * lwf_threads() (lwf.h) is the same number once the pool runs. */
int lwf_runtime_threads(void);

/* ---- threads (pool.c); lwf_threads() is public (lwf.h) ---- */
/* Runs fn(ctx, t, nt) for t = 0..nt-1, one call per thread (t = 0 on the caller), and
 * returns when all are done.  A call made while the pool is busy (from a worker, or
 * from another thread) runs every part on the calling thread, in order. */
void lwf_parallel(void (*fn)(void *ctx, int t, int nt), void *ctx);
/* lwf_parallel when `work` is worth waking the other threads for (rt->min_work), else
 * fn(ctx, 0, 1). */
void lwf_parallel_if(const lwf_runtime *rt, double work, void (*fn)(void *ctx, int t, int nt),
                     void *ctx);
/* The range [lo, hi) of part t of nt over n items (contiguous, sizes differ by <= 1). */
static inline void lwf_split(int n, int t, int nt, int *lo, int *hi)
{
    *lo = (int)((long long)n * t / nt);
    *hi = (int)((long long)n * (t + 1) / nt);
}

/* Sets n floats to zero, split over the kernels' threads when large. */
void lwf_zero(float *x, size_t n);

/* ---- products (blas.c) ---- */

/* Sets up OpenBLAS (core type, one thread per call) and finds libdarknet's gemm_cpu, once. */
void lwf_blas_init(void);
/* Row-major C = alpha op(A) op(B) + beta C on the calling thread (OpenBLAS). */
void lwf_sgemm1(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc);
/* Products of at least this many multiply-adds (and 32 rows or columns) are split over
 * the pool's threads by lwf_sgemm. */
#define LWF_SGEMM_SPLIT_MACS 2e6
/* The same, split over the pool's threads when it is large enough: into blocks of rows
 * of C when m >= n, else of columns. */
void lwf_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
               float beta, float *c, int ldc);

#endif
