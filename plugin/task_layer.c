/* [task]: opens a head.  It is a libdarknet route layer from the trunk's last layer:
 * forward copies the trunk's output, backward adds the head's delta into the trunk's
 * delta, so the trunk's delta is the sum over heads.  Task metadata lives in lwf_model. */
#include "internal.h"

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
