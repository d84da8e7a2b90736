/* [lwf_softmax]: the loss of a head that grows (class-incremental LwF).  Input: logits z of
 * K + M classes, the first K the old model's.  Truth slice: K + M target probabilities (the
 * one-hot label), then K teacher logits.  Loss per image
 *   L = -sum_i t_i log softmax(z)_i                               (all K + M outputs)
 *     + lambda * f * (-sum_{i<K} y'_i log softmax(z_0..K-1 / T)_i)  (distillation)
 * with y' = softmax(teacher / T) and f = T^2 under t2_scaling (else 1); delta (-dL/dz) =
 * (t - p) + lambda / T * f * (y' - yhat') on the first K.  A row without a label (all-zero
 * targets) has no cross-entropy; distillation is off when the trainer gives no teacher
 * (distill = 0: fine-tuning, feature extraction, joint). */
#include "layers/layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int any_nonzero(const float *x, int n)
{
    for (int i = 0; i < n; ++i)
        if (x[i] != 0) return 1;
    return 0;
}

/* softmax(x / T) of n values into out; returns log of its normaliser, max in *mx */
static double softmax_t(const float *x, int n, float T, float *out, double *mx)
{
    double sum = lwf_softmax_sum(x, n, T, mx);
    for (int i = 0; i < n; ++i) out[i] = (float)(exp(((double)x[i] - *mx) / T) / sum);
    return log(sum);
}

/* One image's loss terms into delta (n) and loss (n); returns its loss.  p_all (n): the
 * softmax of every output; w (4 K): yhat', y', and the distillation's delta and loss. */
static double grow_row(const layer *l, const lwf_loss_params *p, const float *z, const float *t, float *p_all,
                       float *w, float *delta, float *loss)
{
    int n = l->inputs, k = p->old_classes;
    double mx, cost = 0;
    double lse = softmax_t(z, n, 1, p_all, &mx);
    if (any_nonzero(t, n)) cost += lwf_xent_row(n, z, mx, lse, 1, t, p_all, 1, loss, delta);
    else
        for (int i = 0; i < n; ++i) delta[i] = loss[i] = 0;
    if (!p->distill || p->lambda == 0) return cost;
    float T = p->temperature, f = lwf_t2_factor(p);
    float *ys = w, *yt = w + k, *dk = w + 2 * k, *lk = w + 3 * k;
    softmax_t(t + n, k, T, yt, &mx);               /* y' from the teacher's K logits */
    lse = softmax_t(z, k, T, ys, &mx);             /* yhat' from the first K outputs */
    double d = lwf_xent_row(k, z, mx, lse, T, yt, ys, p->lambda / T * f, lk, dk);
    for (int i = 0; i < k; ++i) {
        delta[i] += dk[i];
        loss[i] += p->lambda * f * lk[i];
    }
    return cost + p->lambda * f * d;
}

static void forward_grow(layer l, network net)
{
    lwf_loss_params *p = lwf_loss_params_of(&l);
    int n = l.inputs, k = p->old_classes;
    double mx;
    /* l.output (batch, n): the answer, softmax(z) over every class */
    for (int b = 0; b < l.batch; ++b) softmax_t(net.input + b * n, n, 1, l.output + b * n, &mx);
    if (!net.truth) return;
    double cost = 0;
    p->rows = 0;
    for (int b = 0; b < l.batch; ++b) {
        const float *t = net.truth + b * p->truths + p->offset; /* (n + k) targets, teacher logits */
        cost += grow_row(&l, p, net.input + b * n, t, l.x + b * n, l.x_norm + 4 * (size_t)b * k, l.delta + b * n,
                         l.loss + b * n);
        ++p->rows;
    }
    l.cost[0] = (float)cost;
}

static void backward_grow(layer l, network net)
{
    axpy_cpu(l.inputs * l.batch, 1, l.delta, 1, net.delta, 1);
}

layer lwf_make_grow_layer(int batch, int inputs, int old_classes, float temperature, float lambda, int t2)
{
    layer l = {0};
    l.type = BLANK;
    l.batch = batch;
    l.inputs = l.outputs = inputs;
    l.h = l.w = l.out_h = l.out_w = 1;
    l.c = l.out_c = inputs;
    size_t n = (size_t)inputs * (size_t)batch;
    l.output = calloc(n, sizeof(float));     /* (batch, inputs) softmax(z) */
    l.delta = calloc(n, sizeof(float));      /* (batch, inputs) */
    l.loss = calloc(n, sizeof(float));       /* (batch, inputs) per-class loss terms */
    l.x = calloc(n, sizeof(float));          /* (batch, inputs) softmax(z), for the cross-entropy */
    l.x_norm = calloc(4 * (size_t)old_classes * (size_t)batch, sizeof(float)); /* (batch, 4, K) yhat', y',
                                                                               * distillation delta, loss */
    l.cost = calloc(1, sizeof(float));
    lwf_loss_params *p = calloc(1, sizeof *p);
    if (p) {
        p->temperature = temperature;
        p->lambda = lambda;
        p->t2_scaling = t2;
        p->old_classes = old_classes;
        p->distill = 1;
    }
    lwf_loss_params_attach(&l, p);
    l.forward = forward_grow;
    l.backward = backward_grow;
    fprintf(stderr, "lwf_softmax old=%-4d T=%-5g lambda=%-5g t2=%d       %4d\n", old_classes, temperature, lambda,
            t2, inputs);
    return l;
}
