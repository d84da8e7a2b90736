/* The new task's [softmax] loss: libdarknet builds the layer (every stock option),
 * this file makes it read its own slice of the truth row.  Loss per image
 * L = -sum_i t_i log p_i; delta = t - p, exactly as stock Darknet's softmax. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

static void forward_softmax_head(layer l, network net)
{
    lwf_loss_params *p = lwf_loss_params_of(&l);
    int n = l.inputs;
    /* the same call stock forward_softmax_layer makes */
    softmax_cpu(net.input, n / l.groups, l.batch, n, l.groups, n / l.groups, 1, l.temperature, l.output);
    if (!net.truth || l.noloss) return;
    double cost = 0;
    p->rows = 0;
    for (int b = 0; b < l.batch; ++b) {
        const float *t = net.truth + b * p->truths + p->offset; /* (n) one-hot labels */
        const float *y = l.output + b * n;                      /* (n) probabilities */
        int labelled = 0;
        for (int i = 0; i < n; ++i) labelled |= t[i] != 0;
        for (int i = 0; i < n; ++i) {
            /* a row without a label for this task (joint training) gets no loss, no delta */
            double term = t[i] != 0 ? -(double)t[i] * log(y[i] > FLT_MIN ? y[i] : FLT_MIN) : 0;
            l.loss[b * n + i] = (float)term;
            cost += term;
            l.delta[b * n + i] = labelled ? p->lambda * (t[i] - y[i]) : 0;
        }
        p->rows += labelled;
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
    const lwf_loss_params *p = lwf_loss_params_of(l);
    if (!l->cost || !p || p->rows <= 0) return 0;
    return l->cost[0] / (float)p->rows;
}

void lwf_layer_free(layer l)
{
    free(l.loss);
    free_layer(l);
}
