/* [lwf_yolo]: a grown YOLO layer (K old + M new classes) that learns the new classes from
 * their boxes as stock [yolo] does, and keeps the old ones by distillation from the frozen
 * old detector's output for the same image.  libdarknet builds the layer (parse_yolo, every
 * stock key) and computes the stock deltas; this file feeds it the boxes and replaces, where
 * no new box is learned, the push of objectness to zero by the teacher's answer.
 *
 * Truth row: the boxes (LWF_YOLO_BOXES x (x, y, w, h, class)) first, shared by all the
 * detector's [yolo] layers, then per layer at its offset the teacher's output for that layer
 * (masks x (4 + 1 + K) planes of w x h, activated as [yolo]'s output is).  Each cell and
 * anchor of the layer is, for the new boxes: assigned (a box's best anchor and cell: stock
 * deltas), ignored (its predicted box overlaps a box by more than ignore_thresh: stock deltas,
 * objectness left alone), the teacher's reading of a new object (the teacher's box there
 * overlaps a new box by more than teacher_new_iou: the old detector never saw the new
 * classes and calls them old ones; stock deltas) or background.  With a teacher, the
 * distillation adds
 *   background: objectness   lambda_obj (t_obj - s_obj)  instead of stock's (0 - s_obj);
 *               where the teacher's objectness > teacher_thresh (an old object):
 *               boxes        lambda_box (t - s) for x, y (logistic) and w, h (raw),
 *               new classes  lambda_cls (0 - s_c), c >= K (stock trains no class there);
 *   background and ignored:  old classes c < K  lambda_cls (t_c - s_c),
 * the gradients (Darknet's sign) of binary cross-entropies on the logistic outputs and of
 * half the squared difference on w and h.  Defaults (measured on protocol P4, README
 * "Detectors"): in plugin/cfg/sections.c, make_yolo. */
#include "layers/layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { CELL_BACKGROUND, CELL_IGNORED, CELL_ASSIGNED, CELL_TEACHER_ON_NEW };

/* index of entry e (0..3 box, 4 objectness, 5.. classes) of anchor n, cell loc, in a block of
 * one image's output with `classes` classes */
static int entry(const layer *l, int classes, int n, int e, int loc)
{
    return n * l->w * l->h * (4 + 1 + classes) + e * l->w * l->h + loc;
}

/* the box anchor n (of the mask) predicts at cell (i, j) from one image's output x, whose
 * anchors have `classes` classes (the student's l->classes, the teacher's K) */
static box predicted(const layer *l, const float *x, int classes, int n, int i, int j, int netw, int neth)
{
    int loc = j * l->w + i, a = l->mask[n];
    box b;
    b.x = (i + x[entry(l, classes, n, 0, loc)]) / l->w;
    b.y = (j + x[entry(l, classes, n, 1, loc)]) / l->h;
    b.w = expf(x[entry(l, classes, n, 2, loc)]) * l->biases[2 * a] / netw;
    b.h = expf(x[entry(l, classes, n, 3, loc)]) * l->biases[2 * a + 1] / neth;
    return b;
}

/* the largest IoU of box p with the boxes (LWF_YOLO_BOXES, 5; the first zero x ends them) */
static float best_iou(box p, const float *boxes)
{
    float best = 0;
    for (int t = 0; t < LWF_YOLO_BOXES && boxes[5 * t] != 0; ++t) {
        box g = {boxes[5 * t], boxes[5 * t + 1], boxes[5 * t + 2], boxes[5 * t + 3]};
        float o = box_iou(p, g);
        if (o > best) best = o;
    }
    return best;
}

/* the anchor (of all l->total) whose shape overlaps the box most */
static int best_anchor(const layer *l, box t, int netw, int neth)
{
    int best = 0;
    float bi = 0;
    for (int a = 0; a < l->total; ++a) {
        box s = {0, 0, l->biases[2 * a] / netw, l->biases[2 * a + 1] / neth}, u = {0, 0, t.w, t.h};
        float o = box_iou(s, u);
        if (o > bi) bi = o, best = a;
    }
    return best;
}

void lwf_yolo_cells(const layer *l, const float *out, const float *boxes, int netw, int neth, unsigned char *cell)
{
    int wh = l->w * l->h;
    for (int n = 0; n < l->n; ++n)
        for (int loc = 0; loc < wh; ++loc) {
            float best = best_iou(predicted(l, out, l->classes, n, loc % l->w, loc / l->w, netw, neth), boxes);
            cell[n * wh + loc] = best > l->truth_thresh ? CELL_ASSIGNED : best > l->ignore_thresh ? CELL_IGNORED
                                                                                              : CELL_BACKGROUND;
        }
    for (int t = 0; t < LWF_YOLO_BOXES && boxes[5 * t] != 0; ++t) {
        box g = {boxes[5 * t], boxes[5 * t + 1], boxes[5 * t + 2], boxes[5 * t + 3]};
        int a = best_anchor(l, g, netw, neth);
        for (int n = 0; n < l->n; ++n)
            if (l->mask[n] == a) cell[n * wh + (int)(g.y * l->h) * l->w + (int)(g.x * l->w)] = CELL_ASSIGNED;
    }
}

void lwf_yolo_teacher_cells(const layer *l, int K, const float *t, const float *boxes, int netw, int neth,
                            float new_iou, unsigned char *cell)
{
    int wh = l->w * l->h;
    for (int n = 0; n < l->n; ++n)
        for (int loc = 0; loc < wh; ++loc)
            if (cell[n * wh + loc] != CELL_ASSIGNED &&
                best_iou(predicted(l, t, K, n, loc % l->w, loc / l->w, netw, neth), boxes) > new_iou)
                cell[n * wh + loc] = CELL_TEACHER_ON_NEW;
}

void lwf_yolo_distill(const layer *l, const lwf_yolo_params *q, const float *s, const float *t,
                      const unsigned char *cell, float *delta)
{
    int wh = l->w * l->h, K = q->old_classes;
    for (int n = 0; n < l->n; ++n)
        for (int loc = 0; loc < wh; ++loc) {
            int c = cell[n * wh + loc];
            if (c == CELL_ASSIGNED || c == CELL_TEACHER_ON_NEW) continue;
            for (int k = 0; k < K; ++k) {
                int i = entry(l, l->classes, n, 5 + k, loc);
                delta[i] = q->lambda_cls * (t[entry(l, K, n, 5 + k, loc)] - s[i]);
            }
            if (c == CELL_IGNORED) continue;
            int o = entry(l, l->classes, n, 4, loc);
            float tobj = t[entry(l, K, n, 4, loc)];
            delta[o] = q->lambda_obj * (tobj - s[o]);
            if (tobj <= q->teacher_thresh) continue;
            for (int e = 0; e < 4; ++e) {
                int i = entry(l, l->classes, n, e, loc);
                /* (x, y are logistic outputs; w, h the raw values, as [yolo] keeps them) */
                delta[i] = q->lambda_box * (t[entry(l, K, n, e, loc)] - s[i]);
            }
            /* an old object: none of the new classes (stock trains no class at background) */
            for (int k = K; k < l->classes; ++k) {
                int i = entry(l, l->classes, n, 5 + k, loc);
                delta[i] = q->lambda_cls * (0 - s[i]);
            }
        }
}

/* The mask index of anchor a, or -1 when this layer does not predict it. */
static int mask_of(const layer *l, int a)
{
    for (int n = 0; n < l->n; ++n)
        if (l->mask[n] == a) return n;
    return -1;
}

/* Stock [yolo] training deltas of image b (truth: its LWF_YOLO_BOXES x 5 boxes) into
 * l.delta, in forward_yolo_layer's order and with libdarknet's own helpers: every cell and
 * anchor pushes objectness to 0 unless its box overlaps a truth box by more than
 * ignore_thresh (more than truth_thresh: learned as that box), then each box is learned at
 * its cell by its best anchor, when this layer has that anchor. */
static void stock_deltas(const layer *l, const network *net, int b, const float *truth)
{
    int wh = l->w * l->h, base = b * l->outputs;
    for (int j = 0; j < l->h; ++j)
        for (int i = 0; i < l->w; ++i)
            for (int n = 0; n < l->n; ++n) {
                int loc = j * l->w + i, bi = base + entry(l, l->classes, n, 0, loc);
                int oi = base + entry(l, l->classes, n, 4, loc), bt = 0;
                box pred = get_yolo_box(l->output, l->biases, l->mask[n], bi, i, j, l->w, l->h, net->w, net->h, wh);
                float best = 0;
                for (int t = 0; t < l->max_boxes; ++t) {
                    box g = float_to_box((float *)truth + 5 * t, 1);
                    if (!g.x) break;
                    float o = box_iou(pred, g);
                    if (o > best) best = o, bt = t;
                }
                l->delta[oi] = best > l->ignore_thresh ? 0 : 0 - l->output[oi];
                if (best <= l->truth_thresh) continue;
                l->delta[oi] = 1 - l->output[oi];
                int cls = (int)truth[5 * bt + 4];
                if (l->map) cls = l->map[cls];
                delta_yolo_class(l->output, l->delta, base + entry(l, l->classes, n, 5, loc), cls, l->classes, wh, NULL);
                box g = float_to_box((float *)truth + 5 * bt, 1);
                delta_yolo_box(g, l->output, l->biases, l->mask[n], bi, i, j, l->w, l->h, net->w, net->h, l->delta,
                               2 - g.w * g.h, wh);
            }
    for (int t = 0; t < l->max_boxes; ++t) {
        box g = float_to_box((float *)truth + 5 * t, 1);
        if (!g.x) break;
        int a = best_anchor(l, g, net->w, net->h), n = mask_of(l, a);
        if (n < 0) continue;
        int i = (int)(g.x * l->w), j = (int)(g.y * l->h), loc = j * l->w + i;
        int bi = base + entry(l, l->classes, n, 0, loc), oi = base + entry(l, l->classes, n, 4, loc);
        delta_yolo_box(g, l->output, l->biases, a, bi, i, j, l->w, l->h, net->w, net->h, l->delta, 2 - g.w * g.h, wh);
        l->delta[oi] = 1 - l->output[oi];
        int cls = (int)truth[5 * t + 4];
        if (l->map) cls = l->map[cls];
        delta_yolo_class(l->output, l->delta, base + entry(l, l->classes, n, 5, loc), cls, l->classes, wh, NULL);
    }
}

void lwf_yolo_stock_forward(layer l, network net)
{
    int train = net.train;
    net.train = 0; /* libdarknet's forward: the activations, the deltas zeroed, no training part */
    forward_yolo_layer(l, net);
    if (!train || !net.truth) return;
    for (int b = 0; b < l.batch; ++b) stock_deltas(&l, &net, b, net.truth + (size_t)b * l.truths);
    double mag = mag_array(l.delta, l.outputs * l.batch);
    *l.cost = (float)(mag * mag); /* stock's cost, pow(|delta|, 2): the square of a float is exact in double */
}

static void forward_lwf_yolo(layer l, network net)
{
    lwf_yolo_params *q = (lwf_yolo_params *)lwf_loss_params_of(&l);
    lwf_loss_params *p = &q->loss;
    network stock = net;
    if (net.truth && p->truths != l.truths) { /* the boxes, rows l.truths wide, as [yolo] reads them */
        for (int b = 0; b < l.batch; ++b)
            memcpy(l.x + (size_t)b * l.truths, net.truth + (size_t)b * p->truths, (size_t)l.truths * sizeof(float));
        stock.truth = l.x;
    }
    lwf_yolo_stock_forward(l, stock); /* forward_yolo_layer's, without its "Region" line on stdout */
    if (!net.truth || !net.train) return;
    p->rows = l.batch;
    if (p->distill) {
        for (int b = 0; b < l.batch; ++b) {
            const float *out = l.output + (size_t)b * l.outputs;
            const float *boxes = stock.truth + (size_t)b * l.truths, *t = net.truth + (size_t)b * p->truths + p->offset;
            lwf_yolo_cells(&l, out, boxes, net.w, net.h, q->cell);
            lwf_yolo_teacher_cells(&l, q->old_classes, t, boxes, net.w, net.h, q->teacher_new_iou, q->cell);
            lwf_yolo_distill(&l, q, out, t, q->cell, l.delta + (size_t)b * l.outputs);
        }
        float c = 0;
        for (int i = 0; i < l.batch * l.outputs; ++i) c += l.delta[i] * l.delta[i];
        l.cost[0] = c; /* Darknet's [yolo] cost: the squared magnitude of its delta */
    }
}

int lwf_make_yolo_head(layer *l, int old_classes, const lwf_yolo_params *keys)
{
    lwf_yolo_params *q = calloc(1, sizeof *q);
    float *scratch = calloc((size_t)l->batch * (size_t)l->truths, sizeof(float)); /* (batch, l.truths) boxes */
    unsigned char *cell = calloc((size_t)l->n * (size_t)(l->w * l->h), 1);       /* (n, h, w) cell kinds */
    if (!q || !scratch || !cell) {
        free(q), free(scratch), free(cell);
        return -1;
    }
    *q = *keys;
    q->loss.old_classes = q->old_classes = old_classes;
    q->loss.distill = 1;
    q->loss.temperature = 1;
    q->cell = cell;
    lwf_loss_params_attach(l, &q->loss);
    l->x = scratch;
    l->forward = forward_lwf_yolo;
    return 0;
}

void lwf_yolo_free(layer *l)
{
    lwf_yolo_params *q = (lwf_yolo_params *)lwf_loss_params_of(l);
    if (q) free(q->cell);
}
