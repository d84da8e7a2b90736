/* Installs the fast CPU kernels on a built network: replaces the forward/backward
 * pointers of the layers they handle and grows the network's workspace to what they
 * need.  The kernels themselves: conv_kernels.c, pool_kernels.c, route_kernels.c,
 * dropout_kernels.c;
 * products: blas.c. */
#define _POSIX_C_SOURCE 200809L
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

int lwf_kernels_install(network *net, lwf_err *err)
{
    lwf_blas_init();
    if (lwf_reference()) return 0;
    int nt = lwf_threads();
    size_t need = 0;
    for (int i = 0; i < net->n; ++i) {
        size_t w = lwf_conv_workspace(&net->layers[i], nt);
        if (w > need) need = w;
    }
    if (need) {
        /* Darknet's own kernels index the workspace from its start: it only grows */
        size_t have = 0;
        for (int i = 0; i < net->n; ++i)
            if (net->layers[i].workspace_size > have) have = net->layers[i].workspace_size;
        if (need < have) need = have;
        void *ws = NULL;
        if (posix_memalign(&ws, 64, need) != 0) return lwf_fail(err, "out of memory for a %zu-byte workspace", need);
        memset(ws, 0, need);
        free(net->workspace);
        net->workspace = ws;
    }
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (lwf_conv_workspace(l, nt)) {
            l->forward = lwf_conv_forward;
            l->backward = lwf_conv_backward;
        } else if (lwf_maxpool_supported(l)) {
            l->forward = lwf_maxpool_forward;
            l->backward = lwf_maxpool_backward;
        } else if (l->type == AVGPOOL) {
            l->forward = lwf_avgpool_forward;
            l->backward = lwf_avgpool_backward;
        } else if (l->type == ROUTE && l->input_layers && l->input_sizes &&
                   !(l->n == 1 && l->output == net->layers[l->input_layers[0]].output)) {
            /* (a [task] sharing its source's output keeps its empty forward) */
            l->forward = lwf_route_forward;
            l->backward = lwf_route_backward;
        } else if (l->type == DROPOUT && l->rand) {
            l->forward = lwf_dropout_forward;
            l->backward = lwf_dropout_backward;
        }
    }
    return 0;
}

int lwf_kernels_installed(const layer *l)
{
    return l->forward == lwf_conv_forward || l->forward == lwf_maxpool_forward || l->forward == lwf_avgpool_forward ||
           l->forward == lwf_dropout_forward || l->forward == lwf_route_forward;
}
