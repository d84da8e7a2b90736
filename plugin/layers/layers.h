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
/* ---- [lwf_yolo] (yolo.c) ---- */

#define LWF_YOLO_BOXES 90   /* boxes in a truth row: what [yolo] reads (its l.truths / 5) */

/* [lwf_yolo]'s parameters; `loss` first, so lwf_loss_params_of serves it too (offset =
 * the teacher's slice of this layer, truths = the row's width). */
typedef struct lwf_yolo_params {
    lwf_loss_params loss;
    int old_classes;       /* K: outputs 5 .. 5 + K - 1 of each anchor distilled */
    float lambda_obj;      /* weight of objectness distillation at background cells */
    float lambda_cls;      /* weight of the old classes' distillation */
    float lambda_box;      /* weight of the boxes' distillation */
    float teacher_thresh;  /* boxes distilled where the teacher's objectness exceeds this */
    unsigned char *cell;   /* (n, h, w) scratch: each anchor and cell's kind for the image */
} lwf_yolo_params;

/* Kinds of each anchor and cell of l for one image: out (l.outputs) the layer's output, boxes
 * (LWF_YOLO_BOXES, 5) the new boxes; cell (n, h, w) gets 2 where a box is learned (its best
 * anchor of all, in its cell; or an overlap above truth_thresh), 1 where the predicted box
 * overlaps a box by more than ignore_thresh, 0 elsewhere (background). */
void lwf_yolo_cells(const layer *l, const float *out, const float *boxes, int netw, int neth, unsigned char *cell);
/* Sets the distillation deltas of one image (see yolo.c) from the student's output s and the
 * teacher's t (n, 4 + 1 + K, h, w) into delta (l.outputs), leaving assigned cells alone. */
void lwf_yolo_distill(const layer *l, const lwf_yolo_params *q, const float *s, const float *t,
                      const unsigned char *cell, float *delta);
/* Turns a layer libdarknet's parse_yolo built (classes = K + M) into [lwf_yolo] with the
 * distillation keys of `keys`; 0, or -1 when out of memory (the layer unchanged). */
int lwf_make_yolo_head(layer *l, int old_classes, const lwf_yolo_params *keys);
/* Frees what lwf_make_yolo_head added that libdarknet's free_layer does not free. */
void lwf_yolo_free(layer *l);

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
