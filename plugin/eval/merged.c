/* A multi-head model's task-agnostic answer (lwf valid -merged): every head's probabilities
 * (softmax of its logits, as a stock [softmax] computes them) side by side in cfg order, each
 * mapped by the calibration measured on the new task's training images (lwf.h), one answer
 * over all the classes.  lwf export ... all writes the same network as a stock classifier
 * (plugin/tools/cfgtools.c: the calibration becomes a [connected] layer). */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lwf_merged_classes(const lwf_model *m)
{
    int n = 0;
    for (int k = 0; k < m->ntasks; ++k) n += m->tasks[k].classes;
    return n;
}

/* ---- the calibration ---- */

int lwf_merged_calib_init(lwf_merged_calib *c, int heads, const int *size, lwf_err *err)
{
    memset(c, 0, sizeof *c);
    for (int h = 0; h < heads; ++h) {
        if (size[h] < 1) return lwf_fail(err, "merged calibration: head %d has %d classes", h, size[h]);
        c->classes += size[h];
    }
    c->heads = heads;
    size_t n = (size_t)(c->classes + heads);
    c->size = malloc((size_t)heads * sizeof(int));
    c->sum = calloc(n, sizeof(double));
    c->sq = calloc(n, sizeof(double));
    c->count = calloc(n, sizeof(long));
    c->scale = malloc((size_t)c->classes * sizeof(float));
    c->bias = malloc((size_t)c->classes * sizeof(float));
    if (!c->size || !c->sum || !c->sq || !c->count || !c->scale || !c->bias) {
        lwf_merged_calib_free(c);
        return lwf_fail(err, "merged calibration: out of memory");
    }
    memcpy(c->size, size, (size_t)heads * sizeof(int));
    for (int j = 0; j < c->classes; ++j) c->scale[j] = 1, c->bias[j] = 0; /* the identity until finish */
    return 0;
}

/* p (classes): each head's answer c adds p_c to its class's moments and to its head's. */
void lwf_merged_calib_add(lwf_merged_calib *c, const float *p)
{
    for (int h = 0, at = 0; h < c->heads; at += c->size[h++]) {
        int best = at;
        for (int j = at + 1; j < at + c->size[h]; ++j)
            if (p[j] > p[best]) best = j;
        int slots[2] = {best, c->classes + h};
        for (int s = 0; s < 2; ++s) {
            c->sum[slots[s]] += p[best];
            c->sq[slots[s]] += (double)p[best] * p[best];
            ++c->count[slots[s]];
        }
    }
    ++c->images;
}

int lwf_merged_calib_finish(lwf_merged_calib *c, lwf_err *err)
{
    if (c->images < 1) return lwf_fail(err, "merged calibration: no image");
    for (int h = 0, at = 0; h < c->heads; at += c->size[h++]) {
        for (int j = at; j < at + c->size[h]; ++j) {
            int s = c->count[j] >= LWF_MERGED_CALIB_MIN ? j : c->classes + h;
            double n = (double)c->count[s], mean = c->sum[s] / n, var = c->sq[s] / n - mean * mean;
            double sd = sqrt(var > 0 ? var : 0);
            if (sd < LWF_MERGED_CALIB_SD_MIN) sd = LWF_MERGED_CALIB_SD_MIN;
            c->scale[j] = (float)(1 / sd);
            c->bias[j] = (float)(-mean / sd);
        }
    }
    return 0;
}

void lwf_merged_calib_free(lwf_merged_calib *c)
{
    free(c->size);
    free(c->sum);
    free(c->sq);
    free(c->count);
    free(c->scale);
    free(c->bias);
    memset(c, 0, sizeof *c);
}

void lwf_merged_scores(const lwf_model *m, const lwf_merged_calib *c, float *out)
{
    for (int k = 0, at = 0; k < m->ntasks; at += m->tasks[k++].classes) {
        const lwf_task *t = &m->tasks[k];
        softmax(m->net->layers[t->loss - 1].output, t->classes, 1, 1, out + at); /* libdarknet's */
    }
    if (c) lwf_merged_calib_apply(c, out);
}

void lwf_merged_calib_apply(const lwf_merged_calib *c, float *p)
{
    /* as a stock [connected] with diagonal weights computes it: the product, then the bias */
    for (int j = 0; j < c->classes; ++j) {
        float s = p[j] * c->scale[j];
        p[j] = s + c->bias[j];
    }
}

/* One image of a list through the network (centre-cropped, as stock `classifier valid`). */
static int forward_image(lwf_model *m, const lwf_plan *plan, const char *path, lwf_err *err)
{
    image im;
    lwf_err ierr;
    if (lwf_image_load(path, &im, &ierr)) return lwf_fail(err, "%s", ierr.msg);
    image crop = center_crop_image(im, m->net->w, m->net->h);
    memcpy(m->net->input, crop.data, (size_t)m->net->inputs * sizeof(float));
    lwf_forward(m->net, plan);
    free_image(crop);
    free_image(im);
    return 0;
}

/* The first `images` lines of the new task's train= list through the network, into c. */
static int calib_images(lwf_model *m, int images, const lwf_plan *plan, lwf_merged_calib *c, float *p,
                        lwf_err *err)
{
    const lwf_task *t = &m->tasks[m->new_task];
    if (!t->data)
        return lwf_fail(err, "%s:%d: the new task '%s' has no data= file: the merged calibration needs its train= "
                             "list (lwf valid -merged -calib 0 answers without)",
                        m->cfg, t->line, t->name);
    lwf_datacfg d;
    lwf_list paths = {0, NULL, NULL};
    if (lwf_datacfg_read(t->data, &d, err)) return -1;
    int rc = d.train ? lwf_datacfg_list(&d, "train", &paths, err)
                     : lwf_fail(err, "%s: no train= list: the merged calibration needs the new task's training "
                                     "images (lwf valid -merged -calib 0 answers without)",
                                t->data);
    int n = paths.n < images ? paths.n : images;
    for (int i = 0; !rc && i < n; ++i) {
        rc = forward_image(m, plan, paths.items[i], err);
        if (!rc) lwf_merged_scores(m, NULL, p);
        if (!rc) lwf_merged_calib_add(c, p);
    }
    if (!rc) rc = lwf_merged_calib_finish(c, err);
    lwf_list_free(&paths);
    lwf_datacfg_free(&d);
    return rc;
}

int lwf_merged_calibrate(lwf_model *m, int images, lwf_merged_calib *c, lwf_err *err)
{
    if (images < 0) return lwf_fail(err, "merged calibration: %d images", images);
    int *size = malloc((size_t)m->ntasks * sizeof(int));
    if (!size) return lwf_fail(err, "out of memory");
    for (int k = 0; k < m->ntasks; ++k) size[k] = m->tasks[k].classes;
    int rc = lwf_merged_calib_init(c, m->ntasks, size, err);
    free(size);
    if (rc || images == 0) return rc;
    float *p = malloc((size_t)c->classes * sizeof(float));
    lwf_plan plan = {0, NULL, NULL, NULL};
    if (lwf_check_image_input(m, err)) rc = -1;
    else if (!p || lwf_plan_make(m, LWF_PASS_EVAL, &plan)) rc = lwf_fail(err, "out of memory");
    if (!rc) rc = calib_images(m, images, &plan, c, p, err);
    lwf_plan_free(&plan);
    free(p);
    if (rc) lwf_merged_calib_free(c);
    return rc;
}

/* ---- scoring ---- */

/* Task k's valid images and their labels (offset: the task's first merged class). */
static int task_images(const lwf_model *m, int k, int offset, lwf_list *paths, int **label, lwf_err *err)
{
    const lwf_task *t = &m->tasks[k];
    if (!t->data)
        return lwf_fail(err, "%s:%d: task '%s' has no data= file: -merged needs every task's valid list", m->cfg,
                        t->line, t->name);
    lwf_datacfg d;
    lwf_list labels = {0, NULL, NULL};
    int rc = lwf_datacfg_read(t->data, &d, err);
    if (!rc && (!d.valid || !d.labels)) rc = lwf_fail(err, "%s: no valid= list or labels= file", t->data);
    if (!rc) rc = lwf_datacfg_list(&d, "valid", paths, err) || lwf_datacfg_list(&d, "labels", &labels, err) ? -1 : 0;
    if (!rc && labels.n != t->classes)
        rc = lwf_fail(err, "%s: %d labels, but task '%s' has %d classes", d.labels, labels.n, t->name, t->classes);
    if (!rc && !(*label = malloc((size_t)paths->n * sizeof(int) + 1))) rc = lwf_fail(err, "out of memory");
    if (!rc) rc = lwf_labels_of(paths, d.valid, &labels, *label, err);
    for (int i = 0; !rc && i < paths->n; ++i) (*label)[i] += offset;
    lwf_list_free(&labels);
    lwf_datacfg_free(&d);
    return rc;
}

/* Adds the hits of task k's valid images to hits (top-1, top-K). */
static int score_task(lwf_model *m, const lwf_merged_calib *c, int k, int offset, const lwf_plan *plan,
                      float *scores, int *idx, int topk, long *hits, int *images, lwf_err *err)
{
    lwf_list paths = {0, NULL, NULL};
    int *label = NULL, rc = task_images(m, k, offset, &paths, &label, err), n = lwf_merged_classes(m);
    for (int i = 0; !rc && i < paths.n; ++i) {
        if ((rc = forward_image(m, plan, paths.items[i], err))) break;
        lwf_merged_scores(m, c, scores);
        top_k(scores, n, topk, idx);
        hits[0] += idx[0] == label[i];
        for (int j = 0; j < topk; ++j) hits[1] += idx[j] == label[i];
        ++*images;
    }
    free(label);
    lwf_list_free(&paths);
    return rc;
}

int lwf_validate_merged(lwf_model *m, const lwf_merged_calib *c, int topk, lwf_accuracy *acc, lwf_err *err)
{
    if (lwf_check_image_input(m, err)) return -1;
    int n = lwf_merged_classes(m), rc = 0, images = 0;
    if (c && c->classes != n) return lwf_fail(err, "merged calibration of %d classes, the model has %d", c->classes, n);
    if (topk < 1) topk = 1;
    if (topk > n) topk = n;
    float *scores = malloc((size_t)n * sizeof(float));
    int *idx = malloc((size_t)topk * sizeof(int));
    lwf_plan plan = {0, NULL, NULL, NULL};
    if (!scores || !idx || lwf_plan_make(m, LWF_PASS_EVAL, &plan)) rc = lwf_fail(err, "out of memory");
    long hits[2] = {0, 0};
    for (int k = 0, at = 0; !rc && k < m->ntasks; at += m->tasks[k++].classes)
        rc = score_task(m, c, k, at, &plan, scores, idx, topk, hits, &images, err);
    if (!rc) {
        acc->images = images;
        acc->topk = topk;
        acc->top1 = images ? (double)hits[0] / images : 0;
        acc->topK = images ? (double)hits[1] / images : 0;
    }
    lwf_plan_free(&plan);
    free(scores);
    free(idx);
    return rc;
}
