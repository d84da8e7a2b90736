/* The new task's [softmax] loss: libdarknet builds the layer (every stock option),
 * this file makes it read its own slice of the truth row.  Loss per image
 * L = -sum_i t_i log p_i; delta = t - p, exactly as stock Darknet's softmax. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

static void forward_softmax_head(layer l, network net)
{
    const lwf_loss_params *p = lwf_loss_params_of(&l);
    int n = l.inputs;
    /* the same call stock forward_softmax_layer makes */
    softmax_cpu(net.input, n / l.groups, l.batch, n, l.groups, n / l.groups, 1, l.temperature, l.output);
    if (!net.truth || l.noloss) return;
    double cost = 0;
    for (int b = 0; b < l.batch; ++b) {
        const float *t = net.truth + b * p->truths + p->offset; /* (n) one-hot labels */
        const float *y = l.output + b * n;                      /* (n) probabilities */
        for (int i = 0; i < n; ++i) {
            double term = t[i] != 0 ? -(double)t[i] * log(y[i] > FLT_MIN ? y[i] : FLT_MIN) : 0;
            l.loss[b * n + i] = (float)term;
            cost += term;
            l.delta[b * n + i] = p->lambda * (t[i] - y[i]);
        }
    }
    l.cost[0] = (float)cost;
}

int lwf_make_softmax_head(layer *l)
{
    if (l->softmax_tree) return -1;
    lwf_loss_params *p = calloc(1, sizeof *p);
    if (!p) return -1;
    p->temperature = 1;
    p->lambda = 1;
    l->cweights = (char *)p;
    l->forward = forward_softmax_head;
    return 0;
}

float lwf_layer_loss(const layer *l)
{
    if (!l->cost || l->batch <= 0) return 0;
    return l->cost[0] / (float)l->batch;
}

void lwf_layer_free(layer l)
{
    free(l.loss);
    free_layer(l);
}
