/* Internal interface of the fast CPU kernels: the thread pool (pool.c), the OpenBLAS
 * products (blas.c) and the layer kernels (conv_kernels.c, pool_kernels.c), installed
 * on a network by kernels.c.  The public switches are in lwf.h. */
#ifndef LWF_KERNELS_H
#define LWF_KERNELS_H

#include "internal.h"

/* ---- threads (pool.c) ---- */

/* Threads the kernels use: LWF_THREADS if set (1..64), else the online CPUs. */
int lwf_threads(void);
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

/* ---- products (blas.c) ---- */

/* Sets up OpenBLAS (core type, one thread per call) and the reference switch, once. */
void lwf_blas_init(void);
/* Row-major C = alpha op(A) op(B) + beta C on the calling thread (OpenBLAS). */
void lwf_sgemm1(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc);
/* The same, split over the pool's threads when it is large enough. */
void lwf_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
               float beta, float *c, int ldc);

/* ---- layer kernels ---- */

/* Bytes of network workspace the fast convolution needs for layer l with nt threads;
 * 0 if it does not handle this layer (then Darknet's kernel stays). */
size_t lwf_conv_workspace(const layer *l, int nt);
/* Whether that fast convolution of l is the Winograd one (3x3, stride 1, enough channels
 * and filters, see conv_kernels.c) */
int lwf_conv_winograd(const layer *l);
void lwf_conv_forward(layer l, network net);
void lwf_conv_backward(layer l, network net);
int lwf_maxpool_supported(const layer *l);
void lwf_maxpool_forward(layer l, network net);
void lwf_maxpool_backward(layer l, network net);
void lwf_avgpool_forward(layer l, network net);
void lwf_avgpool_backward(layer l, network net);
void lwf_route_forward(layer l, network net);
void lwf_route_backward(layer l, network net);
void lwf_dropout_forward(layer l, network net);
void lwf_dropout_backward(layer l, network net);

/* ---- Winograd F(2x2, 3x3) transforms (wino_kernels.c), for conv_kernels.c ---- */

typedef struct {
    int h, w, pad, oh, ow; /* the layer's input and output sizes, its padding */
    int th, tw, T;         /* tiles (2x2 outputs): rows, columns, per image */
    int H2, W2;            /* the padded plane the tiles' 4x4 patches lie in */
} lwf_wino;

/* Floats between the 16 matrices (streams) of a transformed array of n floats each: n
 * rounded up to 16 plus 16, so that the streams do not fall on the same cache sets */
static inline size_t lwf_wino_stream(size_t n)
{
    return (n + 15) / 16 * 16 + 16;
}
void lwf_wino_geometry(const layer *l, lwf_wino *g);
/* floats of scratch the transforms below need */
size_t lwf_wino_scratch(const lwf_wino *g);
/* (The arrays (16, X, Y) below hold their 16 matrices lwf_wino_stream(X*Y) apart.)
 * U (16, F, C) of filters [f0, f1) from Darknet's weights (F, C, 3, 3) */
void lwf_wino_filters(const float *w, int F, int C, int f0, int f1, float *U);
/* weight gradient (F, C, 3, 3) += the transpose of lwf_wino_filters applied to dU */
void lwf_wino_filters_grad(const float *dU, int F, int C, int f0, int f1, float *dw);
/* V (16, C, P) of n images (C, h, w) */
void lwf_wino_in(const float *in, int n, int C, const lwf_wino *g, float *V, size_t P, float *scratch);
/* outputs of n images from M (16, F, P): image j, filter f at dst + j*img_stride + f*f_stride */
void lwf_wino_out(const float *M, int n, int F, const lwf_wino *g, size_t P, float *dst, size_t img_stride,
                  size_t f_stride, float *scratch);
/* dM (16, F, P) from the output deltas, laid out as lwf_wino_out writes outputs */
void lwf_wino_dout(const float *D, size_t img_stride, size_t f_stride, int n, int F, const lwf_wino *g, float *dM,
                   size_t P, float *scratch);
/* adds the input deltas of n images (C, h, w) from dV (16, C, P) into dx */
void lwf_wino_din(const float *dV, int n, int C, const lwf_wino *g, size_t P, float *dx, float *scratch);

/* Darknet's activation of one value and its gradient from the activated output, with
 * the same float/double arithmetic as activations.h, for the types we inline. */
static inline int lwf_act_inline(ACTIVATION a)
{
    return a == LINEAR || a == LEAKY || a == RELU || a == LOGISTIC;
}

#endif
