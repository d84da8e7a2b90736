/* What the rest of the plugin asks of a layer type (stock or ours): for now, whether its
 * backward tolerates a NULL input delta.  The layers themselves are in their own files. */
#include "layers/layers.h"

int lwf_layer_skips_null_delta(const layer *l)
{
    /* these check net.delta before writing it; the others (maxpool, avgpool, activation,
     * batchnorm, normalization, reorg, upsample, shortcut, softmax) write it regardless */
    return l->type == CONVOLUTIONAL || l->type == CONNECTED || l->type == DROPOUT;
}
