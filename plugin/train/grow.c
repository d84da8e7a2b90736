/* Training a grown head ([lwf_softmax]): which layers the old model's file and the teacher
 * cover, the warm-up that trains only the class layer's new rows (the old rows and the layers
 * before them restored bit for bit after every update), the distillation switch per phase,
 * and the new-class bias correction (weight aligning).  The loop that calls these: train.c. */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const lwf_task *grown(const lwf_model *m)
{
    const lwf_task *t = &m->tasks[m->new_task];
    return t->old_classes ? t : NULL;
}

int lwf_grow_is(const lwf_model *m)
{
    return grown(m) != NULL;
}

int lwf_teacher_layers(const lwf_model *m)
{
    return grown(m) ? m->net->n : lwf_old_layers(m);
}

void lwf_grow_set_distill(lwf_model *m, int on)
{
    const lwf_task *t = grown(m);
    if (t) lwf_loss_params_of(&m->net->layers[t->loss])->distill = on;
}

void lwf_grow_plan(const lwf_model *m, lwf_plan *p)
{
    const lwf_task *t = grown(m);
    if (!t) return;
    /* the head's layers before its class layer are the old model's: inference mode, no learning */
    for (int i = t->first; i < t->class_layer; ++i) p->train[i] = p->learn[i] = 0;
}

int lwf_grow_freeze_begin(const lwf_model *m, lwf_grow_freeze *f, lwf_err *err)
{
    memset(f, 0, sizeof *f);
    const lwf_task *t = grown(m);
    if (!t) return 0;
    f->layer = t->class_layer;
    f->rows = t->old_classes;
    layer *l = &m->net->layers[f->layer];
    f->saved = malloc(lwf_layer_rows_floats(l, f->rows) * sizeof(float) + 1);
    if (!f->saved) return lwf_fail(err, "out of memory");
    lwf_layer_rows_copy(l, f->rows, f->saved, 1);
    return 0;
}

void lwf_grow_freeze_apply(lwf_model *m, const lwf_grow_freeze *f)
{
    if (!f->saved) return;
    layer *l = &m->net->layers[f->layer];
    lwf_layer_rows_copy(l, f->rows, f->saved, 0);
    lwf_layer_rows_zero_updates(l, f->rows);
}

void lwf_grow_freeze_end(lwf_grow_freeze *f)
{
    free(f->saved);
    f->saved = NULL;
}

/* The gain of output o's logit per unit of its weights row: |w_o| (and, with batch-norm,
 * |scale_o| / sqrt(var_o + .00001), the rolling statistics Darknet infers with). */
static double row_norm(const layer *l, int o)
{
    int width = lwf_layer_kind_of(l)->width(l);
    const float *w = l->weights + (size_t)o * width;
    double s = 0;
    for (int i = 0; i < width; ++i) s += (double)w[i] * w[i];
    s = sqrt(s);
    if (l->batch_normalize) s *= fabs(l->scales[o]) / sqrt(l->rolling_variance[o] + .00001);
    return s;
}

int lwf_grow_corrects(const lwf_model *m)
{
    const lwf_task *t = grown(m);
    if (!t) return 0;
    int bc = lwf_loss_params_of(&m->net->layers[t->loss])->bias_correction;
    /* the default: P3 measured weight aligning helping without old images and costing 1-2
     * points with them (their share of each batch already evens the classes out) */
    return bc < 0 ? t->exemplars == NULL : bc;
}

double lwf_grow_align(lwf_model *m)
{
    const lwf_task *t = grown(m);
    if (!lwf_grow_corrects(m)) return 1;
    layer *l = &m->net->layers[t->class_layer];
    int K = t->old_classes, n = t->classes;
    double old = 0, nw = 0;
    for (int o = 0; o < K; ++o) old += row_norm(l, o) / K;
    for (int o = K; o < n; ++o) nw += row_norm(l, o) / (n - K);
    if (!(nw > 0) || !(old > 0)) return 1;
    double g = old / nw;
    /* the new logits scaled by g: their weights (or batch-norm scales) and their biases */
    int width = lwf_layer_kind_of(l)->width(l);
    for (int o = K; o < n; ++o) {
        if (l->batch_normalize) l->scales[o] = (float)(l->scales[o] * g);
        else
            for (int i = 0; i < width; ++i) l->weights[(size_t)o * width + i] = (float)(l->weights[(size_t)o * width + i] * g);
        l->biases[o] = (float)(l->biases[o] * g);
    }
    return g;
}
