/* layers/: the plugin's layers ([task], [lwf_distill], the new task's [softmax] head),
 * their shared softmax cross-entropy, and what the rest of the plugin asks of a layer type. */
#ifndef LWF_LAYERS_H
#define LWF_LAYERS_H

#include "base/base.h"

/* Parameters of a head's loss layer, owned by the layer. */
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
    int bias_correction; /* [lwf_softmax] only: 1 = weight aligning of the new rows after training,
                          * 0 = none, -1 = on without exemplars (see plugin/train/grow.c) */
    int rows;            /* rows the last forward scored (rows with an all-zero slice carry
                          * no label for this task and are skipped) */
} lwf_loss_params;

/* Where a loss layer keeps its lwf_loss_params: l.cweights, and only through these two.
 * Darknet passes layers by value, so the parameters must sit behind a pointer the layer
 * owns and libdarknet's free_layer frees; struct layer has no untyped pointer for that.
 * cweights is the one that fits: free_layer frees it, it is a char * (a byte pointer, so
 * holding a malloc'd struct through it is plain C), and libdarknet allocates and reads it
 * only for binary convolutional layers, never for the layers that carry a loss: BLANK
 * ([lwf_distill], [lwf_softmax]), SOFTMAX and YOLO.  The other owned pointers are typed
 * arrays that libdarknet code reads by their meaning (cost, indexes, input_layers, map,
 * rand, mask: [yolo]'s anchors, ...). */
static inline lwf_loss_params *lwf_loss_params_of(const layer *l)
{
    return (lwf_loss_params *)(void *)l->cweights;
}
/* Gives p (malloc'd, may be NULL) to l, which then owns it. */
static inline void lwf_loss_params_attach(layer *l, lwf_loss_params *p)
{
    l->cweights = (char *)p;
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
/* [lwf_softmax] bias_correction when the cfg does not say: -1, on without [task] exemplars=
 * and off with them (chosen from protocol P3: README, "Class-incremental") */
#define LWF_BIAS_CORRECTION_DEFAULT (-1)
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
    float teacher_new_iou; /* nothing distilled where the teacher's box overlaps a new box more */
    unsigned char *cell;   /* (n, h, w) scratch: each anchor and cell's kind for the image */
} lwf_yolo_params;

/* Kinds of each anchor and cell of l for one image: out (l.outputs) the layer's output, boxes
 * (LWF_YOLO_BOXES, 5) the new boxes; cell (n, h, w) gets 2 where a box is learned (its best
 * anchor of all, in its cell; or an overlap above truth_thresh), 1 where the predicted box
 * overlaps a box by more than ignore_thresh, 0 elsewhere (background). */
void lwf_yolo_cells(const layer *l, const float *out, const float *boxes, int netw, int neth, unsigned char *cell);
/* Marks 3 in cell the anchors and cells not assigned whose teacher box (from t, the teacher's
 * (n, 4 + 1 + K, h, w) output) overlaps one of the new boxes by more than new_iou: the
 * teacher's reading of that new object as an old class (it never saw the new classes), not
 * distilled there (yolo.c). */
void lwf_yolo_teacher_cells(const layer *l, int K, const float *t, const float *boxes, int netw, int neth, float new_iou,
                            unsigned char *cell);
/* Sets the distillation deltas of one image (see yolo.c) from the student's output s and the
 * teacher's t (n, 4 + 1 + K, h, w) into delta (l.outputs), leaving cells of kind 2 and 3 alone. */
void lwf_yolo_distill(const layer *l, const lwf_yolo_params *q, const float *s, const float *t,
                      const unsigned char *cell, float *delta);
/* Stock [yolo]'s forward (libdarknet's forward_yolo_layer: the activations; training: the
 * deltas and the cost, bit for bit), without the "Region ... Avg IOU" line forward_yolo_layer
 * prints on stdout at each training pass. */
void lwf_yolo_stock_forward(layer l, network net);
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

/* ---- One row per layer type (types.c): what it stores, its update buffers, its
 * initialisation and its delta rule.  A new stock layer with weights is one row there. */

/* How an array of a new head's layer starts (lwf_layer_init), with Darknet's
 * distributions: the row's init_scale s is sqrt(2 / fan-in). */
typedef enum lwf_init {
    LWF_INIT_KEEP,       /* as libdarknet built it (scales 1, rolling mean 0, variance 1) */
    LWF_INIT_ZERO,
    LWF_INIT_NORMAL,     /* s * N(0, 1) */
    LWF_INIT_UNIFORM,    /* s * U(-1, 1) */
} lwf_init;

/* One float array of a layer.  Every array here is per output (a filter of a
 * convolution, a neuron of a connected layer, a channel of a batchnorm): units(l) rows,
 * each of 1 float (biases, scales, rolling mean and variance, their updates) or, with
 * row set, of width(l) floats (the weights and their updates, one row per output).  So
 * outputs [0, K) of an array are its first K * lwf_array_unit_floats floats. */
typedef struct lwf_array {
    const char *name;    /* Darknet's field name */
    size_t field;        /* offsetof(layer, <its float *>) */
    int row;             /* 0: one float per output; 1: width(l) floats per output */
    lwf_init init;
} lwf_array;

#define LWF_MAX_STORED 5
#define LWF_MAX_UPDATES 3

typedef struct lwf_layer_kind {
    const char *name;                 /* the section, "+bn" with batch_normalize=1 */
    LAYER_TYPE type;
    int bn;                           /* l.batch_normalize this row is for: 0, 1, -1 = any */
    int (*units)(const layer *l);     /* outputs (NULL for a row without arrays) */
    int (*width)(const layer *l);     /* floats of one output's weights row */
    float (*init_scale)(const layer *l);
    int nstored;
    lwf_array stored[LWF_MAX_STORED]; /* what a .weights file holds, in file order */
    int nupdates;
    lwf_array updates[LWF_MAX_UPDATES]; /* update (momentum) buffers, in .state order */
    /* backward leaves the input delta alone when it is NULL (so a frozen or absent
     * predecessor can be given none); the others write it regardless and need a buffer */
    int skips_null_delta;
    /* whether backward writes its input delta whole instead of adding into it (NULL: adds) */
    int (*overwrites_input_delta)(const layer *l);
} lwf_layer_kind;

/* The table: its n rows (the last one matches any type: stores nothing, needs a delta). */
const lwf_layer_kind *lwf_layer_kinds(int *n);
/* l's row; never NULL. */
const lwf_layer_kind *lwf_layer_kind_of(const layer *l);
/* The array a of l: its data, its floats per output, its floats (units * per output). */
float *lwf_array_data(const layer *l, const lwf_array *a);
size_t lwf_array_unit_floats(const layer *l, const lwf_layer_kind *k, const lwf_array *a);
size_t lwf_array_floats(const layer *l, const lwf_layer_kind *k, const lwf_array *a);
/* Floats l stores in a .weights file; floats in its update buffers. */
size_t lwf_layer_stored_floats(const layer *l);
size_t lwf_layer_update_floats(const layer *l);
/* Re-initialises l's stored arrays as its row says, drawing from r in array order. */
void lwf_layer_init(layer *l, lwf_rng *r);
/* The same draws, written to outputs [from, units) only: outputs [0, from) of every array
 * keep their values (a grown class layer's old rows). */
void lwf_layer_init_from(layer *l, lwf_rng *r, int from);
/* Outputs [0, units) of every stored array of l ("rows 0..units-1"): their floats; copied
 * to buf (out = 1) or from it (out = 0), array after array in .weights order (returns the
 * floats); their update (momentum) buffers zeroed. */
size_t lwf_layer_rows_floats(const layer *l, int units);
size_t lwf_layer_rows_copy(layer *l, int units, float *buf, int out);
void lwf_layer_rows_zero_updates(layer *l, int units);
/* The delta rules of l's row (see lwf_layer_kind). */
int lwf_layer_skips_null_delta(const layer *l);
int lwf_layer_overwrites_input_delta(const layer *l);

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
