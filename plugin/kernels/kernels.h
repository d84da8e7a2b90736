/* kernels/: the fast CPU layer kernels, their table and their installer (install.c),
 * which puts them on a built network's layers.  Threads, products and settings come from
 * runtime/. */
#ifndef LWF_KERNELS_H
#define LWF_KERNELS_H

#include "runtime/runtime.h"

/* Installs the fast kernels on net (the kernel table in install.c: every layer that a
 * row's condition accepts; every gemm already goes to OpenBLAS), gives each such layer
 * its lwf_kernel_ctx (the runtime lwf_runtime_default()) and grows net->workspace for
 * them.  The layers run Darknet's own functions while lwf_reference() is on.
 * lwf_model_load calls it on every network it builds.  Returns 0, or -1 with err on out
 * of memory or a refused LWF_THREADS/LWF_REFERENCE (lwf_runtime_check). */
int lwf_kernels_install(network *net, lwf_err *err);

/* What an installed layer owns besides Darknet's buffers: its copy of the network's
 * runtime, and where its random stream stands.  Reached from the layer by
 * lwf_kernel_ctx_of:
 * - every kernel's layer type but [dropout]: l->cweights, which holds binary weights and
 *   which no layer we install on has (the conv row excludes binary convolutions) and
 *   libdarknet's free_layer frees;
 * - [dropout]: after the layer's batch*inputs uniforms in l->rand, which the installer
 *   enlarges (libdarknet's free_layer frees only l.rand of a dropout layer). */
typedef struct lwf_kernel_ctx {
    lwf_runtime rt;
    int kernel;          /* its row of the kernel table */
    int index;           /* the layer's index in its network ([dropout]'s stream) */
    size_t seen;         /* [dropout]: *net.seen at the last training pass */
    unsigned pass;       /* [dropout]: training passes made at that count */
    int old_rows;        /* [convolutional] of a grown model: > 0, its old filters are the first */
    int old_stride;      /* old_rows of every old_stride (lwf_kernels_split_rows) */
} lwf_kernel_ctx;

/* Layer i of net, a convolution of a grown model whose old filters are the first `rows` of
 * every `stride` (a grown class layer: the first K of all; a grown detector's convolution
 * before an [lwf_yolo]: each anchor's box, objectness and K old classes of its 5 + K + M): in
 * inference its fast convolution computes the old filters, gathered, and the new ones as two
 * convolutions of their own, so the old filters' outputs are the old model's bit for bit
 * (OpenBLAS and the kernel blocks round differently for different numbers of filters).
 * Grows net->workspace for it.  A layer without the fast kernel is left as it is (Darknet's
 * gemm computes each output from its own row).  0, or -1 with err on out of memory. */
int lwf_kernels_split_rows(network *net, int i, int rows, int stride, lwf_err *err);

/* The context of layer l (which must have one: lwf_kernels_installed(l)). */
lwf_kernel_ctx *lwf_kernel_ctx_of(const layer *l);

/* ---- layer kernels: each takes the context first, then Darknet's (layer, network) ---- */

/* Bytes of network workspace the fast convolution needs for layer l with nt threads;
 * 0 if it does not handle this layer (then Darknet's kernel stays). */
size_t lwf_conv_workspace(const layer *l, int nt);
/* The same for a layer whose inference runs its old and new filters apart (k->old_rows). */
size_t lwf_conv_split_workspace(const layer *l, const lwf_kernel_ctx *k, int nt);
/* Whether that fast convolution of l is the Winograd one (3x3, stride 1, enough channels
 * and filters, see conv.c) */
int lwf_conv_winograd(const layer *l);
/* Whether it is the direct convolution (stride 1, small weights, see conv.c): 0 if not,
 * else the filters of the register block chosen for this CPU: 16 with AVX-512, 4 without */
int lwf_conv_direct(const layer *l);
void lwf_conv_forward(lwf_kernel_ctx *k, layer l, network net);
void lwf_conv_backward(lwf_kernel_ctx *k, layer l, network net);
int lwf_maxpool_supported(const layer *l);
void lwf_maxpool_forward(lwf_kernel_ctx *k, layer l, network net);
void lwf_maxpool_backward(lwf_kernel_ctx *k, layer l, network net);
void lwf_avgpool_forward(lwf_kernel_ctx *k, layer l, network net);
void lwf_avgpool_backward(lwf_kernel_ctx *k, layer l, network net);
void lwf_route_forward(lwf_kernel_ctx *k, layer l, network net);
void lwf_route_backward(lwf_kernel_ctx *k, layer l, network net);
void lwf_dropout_forward(lwf_kernel_ctx *k, layer l, network net);
void lwf_dropout_backward(lwf_kernel_ctx *k, layer l, network net);

#endif
