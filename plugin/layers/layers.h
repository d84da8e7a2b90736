/* layers/: the plugin's layers ([task], [lwf_distill], the new task's [softmax] head),
 * their shared softmax cross-entropy, and what the rest of the plugin asks of a layer type. */
#ifndef LWF_LAYERS_H
#define LWF_LAYERS_H

#include "base/base.h"

/* Parameters of a head's loss layer, owned by the layer (stored in l.cweights,
 * which libdarknet's free_layer frees and no CPU path of these layer types reads). */
typedef struct lwf_loss_params {
    float temperature;   /* T of [lwf_distill]; 1 for the new task */
    float lambda;        /* loss weight */
    int t2_scaling;      /* multiply the gradient by T^2 */
    int offset;          /* first column of this head's slice in a truth row */
    int truths;          /* width of a truth row (net->truths) */
    int targets;         /* [lwf_distill] only: 1 = the slice holds target probabilities
                          * (joint training on labels, T = 1), 0 = teacher logits */
    int old_classes;     /* [lwf_softmax] only: K, the outputs distilled (the first K) */
    int distill;         /* [lwf_softmax] only: 1 = the slice's last K columns hold teacher
                          * logits to distill from; 0 = no teacher (cross-entropy only) */
    int rows;            /* rows the last forward scored (rows with an all-zero slice carry
                          * no label for this task and are skipped) */
} lwf_loss_params;

static inline lwf_loss_params *lwf_loss_params_of(const layer *l)
{
    return (lwf_loss_params *)(void *)l->cweights;
}

/* T^2 where t2_scaling applies (teacher mode), else 1: the loss's weight is lambda times
 * this, and the gradient's scale lambda / T times this. */
static inline float lwf_t2_factor(const lwf_loss_params *p)
{
    return p->t2_scaling && !p->targets ? p->temperature * p->temperature : 1.0f;
}

/* [lwf_distill]: input logits z (batch, inputs); truth slice = teacher logits. */
layer lwf_make_distill_layer(int batch, int inputs, float temperature, float lambda, int t2);
/* [lwf_softmax]: a grown head's loss over inputs = K + M logits, K = old_classes
 * (1 <= K < inputs); its truth slice is inputs + K wide (targets, then the teacher's K
 * logits).  See grow.c. */
layer lwf_make_grow_layer(int batch, int inputs, int old_classes, float temperature, float lambda, int t2);
/* Turns a libdarknet [softmax] layer into the new task's slice-aware loss. */
int lwf_make_softmax_head(layer *l);
/* [task]: routes layer `src` (its output) to the head that follows. */
layer lwf_make_task_layer(int batch, int src, const layer *srcl);
/* Makes the [task] layer at index i read its source's output in place (its forward does
 * nothing) when the layer after it does not write its input; lwf_task_unshare_output
 * undoes that before the layers are freed. */
void lwf_task_share_output(network *net, int i);
void lwf_task_unshare_output(network *net, int i);

/* Whether l's backward leaves the input delta alone when it is NULL (so a frozen or
 * absent predecessor can be given none); other types need a buffer. */
int lwf_layer_skips_null_delta(const layer *l);

/* libdarknet's free_layer plus the per-class loss buffer it forgets (l.loss). */
void lwf_layer_free(layer l);

/* Loss of one loss layer per scored image (its l.cost / rows scored). */
float lwf_layer_loss(const layer *l);

/* Softmax cross-entropy, the loss of both heads (softmax_head.c).  lwf_softmax_sum: the
 * largest of z (n) into *mx, returns sum_k exp((z_k - mx) / T), in double. */
double lwf_softmax_sum(const float *z, int n, float T, double *mx);
/* One image: loss_i = -t_i log p_i with log p_i = (z_i - mx) / T - lse (in double: no log
 * of a tiny probability; 0 where t_i = 0), delta_i = scale (t_i - p_i) (Darknet's sign:
 * -dL/dz_i = (t_i - p_i) / T; the caller's scale holds 1/T and lambda).  z, t, p, loss,
 * delta (n): logits, target probabilities, the probabilities softmax(z / T) the delta
 * uses, per-class loss terms and delta (written);
 * mx and lse = log of lwf_softmax_sum's sum.  Returns sum_i loss_i. */
double lwf_xent_row(int n, const float *z, double mx, double lse, float T, const float *t, const float *p,
                    float scale, float *loss, float *delta);

#endif
