/* A multi-head model's task-agnostic answer (lwf valid -merged): every head's probabilities
 * (softmax of its logits, as a stock [softmax] computes them) side by side in cfg order, one
 * answer over all the classes: the class of the more confident head.  lwf export ... all writes
 * the same network as a stock classifier (plugin/tools/cfgtools.c). */
#include "eval/eval.h"

#include <stdlib.h>
#include <string.h>

int lwf_merged_classes(const lwf_model *m)
{
    int n = 0;
    for (int k = 0; k < m->ntasks; ++k) n += m->tasks[k].classes;
    return n;
}

void lwf_merged_scores(const lwf_model *m, float *out)
{
    for (int k = 0, at = 0; k < m->ntasks; at += m->tasks[k++].classes) {
        const lwf_task *t = &m->tasks[k];
        softmax(m->net->layers[t->loss - 1].output, t->classes, 1, 1, out + at); /* libdarknet's */
    }
}

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
static int score_task(lwf_model *m, int k, int offset, const lwf_plan *plan, float *scores, int *idx, int topk,
                      long *hits, int *images, lwf_err *err)
{
    lwf_list paths = {0, NULL, NULL};
    int *label = NULL, rc = task_images(m, k, offset, &paths, &label, err), n = lwf_merged_classes(m);
    for (int i = 0; !rc && i < paths.n; ++i) {
        image im;
        lwf_err ierr;
        if (lwf_image_load(paths.items[i], &im, &ierr)) {
            rc = lwf_fail(err, "%s", ierr.msg);
            break;
        }
        image crop = center_crop_image(im, m->net->w, m->net->h);
        memcpy(m->net->input, crop.data, (size_t)m->net->inputs * sizeof(float));
        lwf_forward(m->net, plan);
        free_image(crop);
        free_image(im);
        lwf_merged_scores(m, scores);
        top_k(scores, n, topk, idx);
        hits[0] += idx[0] == label[i];
        for (int j = 0; j < topk; ++j) hits[1] += idx[j] == label[i];
        ++*images;
    }
    free(label);
    lwf_list_free(&paths);
    return rc;
}

int lwf_validate_merged(lwf_model *m, int topk, lwf_accuracy *acc, lwf_err *err)
{
    if (lwf_check_image_input(m, err)) return -1;
    int n = lwf_merged_classes(m), rc = 0, images = 0;
    if (topk < 1) topk = 1;
    if (topk > n) topk = n;
    float *scores = malloc((size_t)n * sizeof(float));
    int *idx = malloc((size_t)topk * sizeof(int));
    lwf_plan plan = {0, NULL, NULL, NULL};
    if (!scores || !idx || lwf_plan_make(m, LWF_PASS_EVAL, &plan)) rc = lwf_fail(err, "out of memory");
    long hits[2] = {0, 0};
    for (int k = 0, at = 0; !rc && k < m->ntasks; at += m->tasks[k++].classes)
        rc = score_task(m, k, at, &plan, scores, idx, topk, hits, &images, err);
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
