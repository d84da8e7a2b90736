/* The new task's [softmax] loss: libdarknet builds the layer (every stock option),
 * this file makes it read its own slice of the truth row.  Loss per image
 * L = -sum_i t_i log p_i; delta = t - p, exactly as stock Darknet's softmax.  Also the
 * softmax cross-entropy both heads' losses use (lwf_xent_row). */
#include "layers/layers.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

double lwf_softmax_sum(const float *z, int n, float T, double *mx)
{
    double m = -DBL_MAX, sum = 0;
    for (int i = 0; i < n; ++i)
        if (z[i] > m) m = z[i];
    for (int i = 0; i < n; ++i) sum += exp(((double)z[i] - m) / T);
    *mx = m;
    return sum;
}

double lwf_xent_row(int n, const float *z, double mx, double lse, float T, const float *t, const float *p,
                    float scale, float *loss, float *delta)
{
    double cost = 0;
    for (int i = 0; i < n; ++i) {
        double term = t[i] != 0 ? -(double)t[i] * (((double)z[i] - mx) / T - lse) : 0;
        loss[i] = (float)term;
        cost += term;
        delta[i] = scale * (t[i] - p[i]);
    }
    return cost;
}

static void forward_softmax_head(layer l, network net)
{
    lwf_loss_params *p = lwf_loss_params_of(&l);
    int n = l.inputs, g = n / l.groups;
    /* the same call stock forward_softmax_layer makes: l.groups softmaxes of g values */
    softmax_cpu(net.input, g, l.batch, n, l.groups, g, 1, l.temperature, l.output);
    if (!net.truth || l.noloss) return;
    double cost = 0;
    p->rows = 0;
    for (int b = 0; b < l.batch; ++b) {
        const float *z = net.input + b * n;                     /* (n) logits */
        const float *t = net.truth + b * p->truths + p->offset; /* (n) one-hot labels */
        const float *y = l.output + b * n;                      /* (n) probabilities */
        int labelled = 0;
        for (int i = 0; i < n; ++i) labelled |= t[i] != 0;
        if (!labelled) { /* a row without a label for this task (joint training): no loss, no delta */
            for (int i = 0; i < n; ++i) l.delta[b * n + i] = l.loss[b * n + i] = 0;
            continue;
        }
        for (int k = 0; k < l.groups; ++k) {
            int o = k * g;
            double mx, lse = log(lwf_softmax_sum(z + o, g, l.temperature, &mx));
            cost += lwf_xent_row(g, z + o, mx, lse, l.temperature, t + o, y + o, p->lambda, l.loss + b * n + o,
                                 l.delta + b * n + o);
        }
        ++p->rows;
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
    lwf_loss_params_attach(l, p);
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
