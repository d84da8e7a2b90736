/* [task]: opens a head.  It is a libdarknet route layer from the trunk's last layer:
 * forward copies the trunk's output (or shares it: see lwf_task_share_output), backward
 * adds the head's delta into the trunk's delta, so the trunk's delta is the sum over
 * heads.  Task metadata lives in lwf_model. */
#include "layers/layers.h"

#include <stdlib.h>

layer lwf_make_task_layer(int batch, int src, const layer *srcl)
{
    layer l = {0};
    int *idx = malloc(sizeof *idx);
    int *sizes = malloc(sizeof *sizes);
    if (!idx || !sizes) {
        free(idx);
        free(sizes);
        return l;
    }
    idx[0] = src;
    sizes[0] = srcl->outputs;
    l = make_route_layer(batch, 1, idx, sizes);
    l.w = l.out_w = srcl->out_w;
    l.h = l.out_h = srcl->out_h;
    l.c = l.out_c = srcl->out_c;
    return l;
}

/* forward of a [task] whose output is its source's output: nothing to copy */
static void forward_shared(layer l, network net)
{
    (void)l;
    (void)net;
}

void lwf_task_share_output(network *net, int i)
{
    layer *l = &net->layers[i];
    if (l->type != ROUTE || l->n != 1 || i + 1 >= net->n || net->layers[i + 1].type == DROPOUT) return;
    layer *src = &net->layers[l->input_layers[0]];
    if (l->output == src->output || l->outputs != src->outputs) return;
    free(l->output);
    l->output = src->output;
    l->forward = forward_shared;
}

void lwf_task_unshare_output(network *net, int i)
{
    layer *l = &net->layers[i];
    if (l->type == ROUTE && l->n == 1 && l->output == net->layers[l->input_layers[0]].output) l->output = NULL;
}
