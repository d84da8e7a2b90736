/* kernels/: the fast CPU layer kernels and their installer (install.c), which puts them
 * on a built network's layers.  Threads and products come from runtime/. */
#ifndef LWF_KERNELS_H
#define LWF_KERNELS_H

#include "runtime/runtime.h"

/* Installs the fast kernels on net (convolutional with batch-norm and activation,
 * maxpool, avgpool; every gemm already goes to OpenBLAS) and grows net->workspace for
 * them.  Does nothing in reference mode.  lwf_model_load calls it on every network it
 * builds.  Returns 0, or -1 with err on out of memory. */
int lwf_kernels_install(network *net, lwf_err *err);

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

#endif
