/* [lwf_distill]: the old-task loss of Learning without Forgetting.  Input: the old
 * head's logits z; truth slice: the teacher's logits t.  Loss per image
 * L = -sum_i y'_i log yhat'_i, y' = softmax(t/T), yhat' = softmax(z/T); delta (= -dL/dz,
 * Darknet's sign) = lambda (y' - yhat') / T, times T^2 with t2_scaling.  The teacher's
 * logits are put into the truth by the training driver (plugin/train/train.c). */
#include "layers/layers.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Softmax of n values at temperature T into out, computed in double for stability;
 * returns the log of its normaliser, with the largest value in *mx (lwf_xent_row's lse and mx). */
static double softmax_t(const float *x, int n, float T, float *out, double *mx)
{
    double sum = lwf_softmax_sum(x, n, T, mx);
    for (int i = 0; i < n; ++i) out[i] = (float)(exp(((double)x[i] - *mx) / T) / sum);
    return log(sum);
}

static int all_zero(const float *x, int n)
{
    for (int i = 0; i < n; ++i)
        if (x[i] != 0) return 0;
    return 1;
}

static void forward_distill(layer l, network net)
{
    lwf_loss_params *p = lwf_loss_params_of(&l);
    int n = l.inputs;
    /* l.output (batch, n): the old task's answer, softmax(z) at T = 1 */
    double mx;
    for (int b = 0; b < l.batch; ++b) softmax_t(net.input + b * n, n, 1.0f, l.output + b * n, &mx);
    if (!net.truth) return;
    float T = p->targets ? 1.0f : p->temperature;
    float scale = p->lambda / T * lwf_t2_factor(p);
    double cost = 0;
    p->rows = 0;
    for (int b = 0; b < l.batch; ++b) {
        const float *z = net.input + b * n;                      /* (n) student logits */
        const float *t = net.truth + b * p->truths + p->offset; /* (n) teacher logits or targets */
        float *ys = l.x + b * n;                                 /* (n) student yhat' */
        float *yt = l.x_norm + b * n;                            /* (n) teacher y' */
        if (p->targets) {
            if (all_zero(t, n)) { /* a row of another task (joint training) */
                for (int i = 0; i < n; ++i) l.delta[b * n + i] = l.loss[b * n + i] = 0;
                continue;
            }
            for (int i = 0; i < n; ++i) yt[i] = t[i];
        } else {
            softmax_t(t, n, T, yt, &mx);
        }
        double lse = softmax_t(z, n, T, ys, &mx);
        ++p->rows;
        cost += lwf_xent_row(n, z, mx, lse, T, yt, ys, scale, l.loss + b * n, l.delta + b * n);
    }
    l.cost[0] = (float)cost; /* sum over the batch, as Darknet's loss layers report it */
}

static void backward_distill(layer l, network net)
{
    /* adds into the logits' delta, as every Darknet loss layer does */
    axpy_cpu(l.inputs * l.batch, 1, l.delta, 1, net.delta, 1);
}

layer lwf_make_distill_layer(int batch, int inputs, float temperature, float lambda, int t2)
{
    layer l = {0};
    l.type = BLANK;
    l.batch = batch;
    l.inputs = l.outputs = inputs;
    l.h = l.w = l.out_h = l.out_w = 1;
    l.c = l.out_c = inputs;
    size_t n = (size_t)inputs * (size_t)batch;
    l.output = calloc(n, sizeof(float)); /* (batch, inputs) softmax(z) */
    l.delta = calloc(n, sizeof(float));  /* (batch, inputs) */
    l.loss = calloc(n, sizeof(float));   /* (batch, inputs) per-class loss terms */
    l.x = calloc(n, sizeof(float));      /* (batch, inputs) student softmax(z/T) */
    l.x_norm = calloc(n, sizeof(float)); /* (batch, inputs) teacher softmax(t/T) */
    l.cost = calloc(1, sizeof(float));
    lwf_loss_params *p = calloc(1, sizeof *p);
    if (p) {
        p->temperature = temperature;
        p->lambda = lambda;
        p->t2_scaling = t2;
    }
    lwf_loss_params_attach(&l, p);
    l.forward = forward_distill;
    l.backward = backward_distill;
    fprintf(stderr, "lwf_distill T=%-5g lambda=%-5g t2=%d                   %4d\n", temperature, lambda, t2,
            inputs);
    return l;
}
