/* Winograd F(2x2, 3x3) transforms (wino.c), private to kernels/ (used by conv.c). */
#ifndef LWF_KERNELS_WINO_H
#define LWF_KERNELS_WINO_H

#include "runtime/runtime.h"

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

#endif
