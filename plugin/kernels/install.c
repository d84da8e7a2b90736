/* The kernel table (one row per fast kernel: the layers it takes, what it replaces, the
 * workspace it needs) and the installer, which puts the kernels on a built network's
 * layers.  The kernels themselves: conv.c (wino.c), pool.c, route.c, dropout.c;
 * products and threads: runtime/. */
#define _POSIX_C_SOURCE 200809L
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

void forward_dropout_layer(layer l, network net);  /* libdarknet */
void backward_dropout_layer(layer l, network net); /* libdarknet */

typedef void (*kernel_fn)(lwf_kernel_ctx *k, layer l, network net);
typedef void (*darknet_fn)(layer l, network net);

typedef struct {
    LAYER_TYPE type;
    /* the condition beyond the type: whether this kernel takes layer i of net */
    int (*takes)(const network *net, int i);
    /* bytes of net->workspace it needs with nt threads (NULL: none) */
    size_t (*workspace)(const layer *l, int nt);
    kernel_fn forward, backward;
    darknet_fn darknet_forward, darknet_backward; /* what it replaces; reference mode runs them */
} kernel;

/* not grouped, binary or XNOR; a 1x1 only with stride 1 and no padding (conv.c: handled) */
static int conv_takes(const network *net, int i)
{
    return lwf_conv_workspace(&net->layers[i], 1) > 0;
}

/* any size, stride and padding with an output */
static int maxpool_takes(const network *net, int i)
{
    return lwf_maxpool_supported(&net->layers[i]);
}

static int avgpool_takes(const network *net, int i)
{
    (void)net, (void)i;
    return 1;
}

/* a route or [task] that copies its sources (a [task] that reads its source's output in
 * place keeps its empty forward: layers/task.c) */
static int route_takes(const network *net, int i)
{
    const layer *l = &net->layers[i];
    return l->input_layers && l->input_sizes && !(l->n == 1 && l->output == net->layers[l->input_layers[0]].output);
}

static int dropout_takes(const network *net, int i)
{
    return net->layers[i].rand != NULL;
}

/* The kernel table.  Each kernel replaces Darknet's forward and backward of the layers
 * its condition takes; every such layer runs Darknet's own pair again while
 * lwf_reference() is on.
 * type           condition (beyond the type)                        workspace
 * convolutional  not grouped, binary or XNOR; a 1x1 only with       lwf_conv_workspace: a
 *                stride 1 and pad 0 (conv.c: handled).  Inside:     shared part + columns,
 *                direct, im2col or Winograd (conv.c: make_plan)     products per thread
 * maxpool        an output (out_w, out_h > 0): any size, stride, pad  -
 * avgpool        every one                                           -
 * route/[task]   copies its sources (not a [task] reading its        -
 *                source's output in place)
 * dropout        has its uniforms (l.rand)                           -  (l.rand grows by
 *                                                                       the context) */
static const kernel table[] = {
    {CONVOLUTIONAL, conv_takes, lwf_conv_workspace, lwf_conv_forward, lwf_conv_backward, forward_convolutional_layer,
     backward_convolutional_layer},
    {MAXPOOL, maxpool_takes, NULL, lwf_maxpool_forward, lwf_maxpool_backward, forward_maxpool_layer,
     backward_maxpool_layer},
    {AVGPOOL, avgpool_takes, NULL, lwf_avgpool_forward, lwf_avgpool_backward, forward_avgpool_layer,
     backward_avgpool_layer},
    {ROUTE, route_takes, NULL, lwf_route_forward, lwf_route_backward, forward_route_layer, backward_route_layer},
    {DROPOUT, dropout_takes, NULL, lwf_dropout_forward, lwf_dropout_backward, forward_dropout_layer,
     backward_dropout_layer},
};
#define NKERNELS ((int)(sizeof table / sizeof *table))

/* The row that takes layer i of net, or -1. */
static int row_for(const network *net, int i)
{
    for (int k = 0; k < NKERNELS; ++k)
        if (table[k].type == net->layers[i].type && table[k].takes(net, i)) return k;
    return -1;
}

/* bytes of a dropout layer's uniforms, rounded up to 64 (its context follows) */
static size_t rand_bytes(const layer *l)
{
    return ((size_t)l->batch * l->inputs * sizeof(float) + 63) / 64 * 64;
}

lwf_kernel_ctx *lwf_kernel_ctx_of(const layer *l)
{
    if (l->type == DROPOUT) return (lwf_kernel_ctx *)(void *)((char *)l->rand + rand_bytes(l));
    return (lwf_kernel_ctx *)(void *)l->cweights;
}

/* What the layers' function pointers point to: Darknet's function in reference mode,
 * else the layer's kernel with its context. */
static void kernel_forward(layer l, network net)
{
    lwf_kernel_ctx *k = lwf_kernel_ctx_of(&l);
    if (lwf_reference()) table[k->kernel].darknet_forward(l, net);
    else table[k->kernel].forward(k, l, net);
}

static void kernel_backward(layer l, network net)
{
    lwf_kernel_ctx *k = lwf_kernel_ctx_of(&l);
    if (lwf_reference()) table[k->kernel].darknet_backward(l, net);
    else table[k->kernel].backward(k, l, net);
}

/* Grows net->workspace to what the kernels need (64-byte aligned); Darknet's own kernels
 * index it from its start, so it only grows. */
static int grow_workspace(network *net, lwf_err *err)
{
    int nt = lwf_threads();
    size_t need = 0, have = 0;
    for (int i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        int k = row_for(net, i);
        size_t w = k >= 0 && table[k].workspace ? table[k].workspace(l, nt) : 0;
        if (lwf_kernels_installed(l) && lwf_kernel_ctx_of(l)->old_rows > 0)
            w = lwf_conv_split_workspace(l, lwf_kernel_ctx_of(l), nt);
        if (w > need) need = w;
        if (net->layers[i].workspace_size > have) have = net->layers[i].workspace_size;
    }
    if (!need) return 0;
    if (need < have) need = have;
    void *ws = NULL;
    if (posix_memalign(&ws, 64, need) != 0) return lwf_fail(err, "out of memory for a %zu-byte workspace", need);
    memset(ws, 0, need);
    free(net->workspace);
    net->workspace = ws;
    return 0;
}

/* Gives layer i (taken by row k) its context; 0, or -1 when out of memory. */
static int attach(network *net, int i, int k)
{
    layer *l = &net->layers[i];
    lwf_kernel_ctx c = {lwf_runtime_default(), k, i, 0, 0, 0, 0};
    if (l->type == DROPOUT) {
        void *p = realloc(l->rand, rand_bytes(l) + sizeof c);
        if (!p) return -1;
        l->rand = p;
    } else {
        if (!(l->cweights = malloc(sizeof c))) return -1;
    }
    *lwf_kernel_ctx_of(l) = c;
    return 0;
}

int lwf_kernels_install(network *net, lwf_err *err)
{
    lwf_blas_init();
    if (lwf_runtime_check(err)) return -1;
    if (grow_workspace(net, err)) return -1;
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        int k = row_for(net, i);
        /* (a layer that holds binary weights in cweights is none of ours) */
        if (k < 0 || lwf_kernels_installed(l) || (l->type != DROPOUT && l->cweights)) continue;
        if (attach(net, i, k)) return lwf_fail(err, "out of memory for layer %d's kernel context", i);
        l->forward = kernel_forward;
        l->backward = kernel_backward;
    }
    return 0;
}

int lwf_kernels_split_rows(network *net, int i, int rows, int stride, lwf_err *err)
{
    layer *l = &net->layers[i];
    if (!lwf_kernels_installed(l) || l->type != CONVOLUTIONAL || rows <= 0 || rows >= stride || stride <= 0 ||
        l->n % stride)
        return 0;
    lwf_kernel_ctx_of(l)->old_rows = rows;
    lwf_kernel_ctx_of(l)->old_stride = stride;
    return grow_workspace(net, err);
}

int lwf_kernels_installed(const layer *l)
{
    return l->forward == kernel_forward;
}

void lwf_kernels_seed(network *net, unsigned long long seed)
{
    for (int i = 0; i < net->n; ++i) {
        if (!lwf_kernels_installed(&net->layers[i])) continue;
        lwf_kernel_ctx *k = lwf_kernel_ctx_of(&net->layers[i]);
        k->rt.seed = seed;
        k->seen = 0;
        k->pass = 0;
    }
}
