/* runtime/: where the kernels' work runs: the thread pool (pool.c) and the routing of
 * matrix products to OpenBLAS or to libdarknet's reference gemm (blas.c).  The public
 * switches (reference mode, thread count, BLAS info, call counts) are in lwf.h. */
#ifndef LWF_RUNTIME_H
#define LWF_RUNTIME_H

#include "base/base.h"

/* ---- threads (pool.c); lwf_threads() is public (lwf.h) ---- */
/* Runs fn(ctx, t, nt) for t = 0..nt-1, one call per thread (t = 0 on the caller), and
 * returns when all are done.  A call made while the pool is busy (from a worker, or
 * from another thread) runs every part on the calling thread, in order. */
void lwf_parallel(void (*fn)(void *ctx, int t, int nt), void *ctx);
/* Work (about the floats touched or multiply-adds made) below which a kernel stays on
 * the calling thread: 200000 unless set (tests set 0 to split everything). */
double lwf_min_work(void);
void lwf_set_min_work(double w);
/* lwf_parallel when `work` is worth waking the other threads for, else fn(ctx, 0, 1). */
static inline void lwf_parallel_if(double work, void (*fn)(void *ctx, int t, int nt), void *ctx)
{
    if (work < lwf_min_work()) fn(ctx, 0, 1);
    else lwf_parallel(fn, ctx);
}
/* The range [lo, hi) of part t of nt over n items (contiguous, sizes differ by <= 1). */
static inline void lwf_split(int n, int t, int nt, int *lo, int *hi)
{
    *lo = (int)((long long)n * t / nt);
    *hi = (int)((long long)n * (t + 1) / nt);
}

/* Sets n floats to zero, split over the kernels' threads when large. */
void lwf_zero(float *x, size_t n);

/* ---- products (blas.c) ---- */

/* Sets up OpenBLAS (core type, one thread per call) and the reference switch, once. */
void lwf_blas_init(void);
/* Row-major C = alpha op(A) op(B) + beta C on the calling thread (OpenBLAS). */
void lwf_sgemm1(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc);
/* The same, split over the pool's threads when it is large enough. */
void lwf_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
               float beta, float *c, int ldc);

#endif
