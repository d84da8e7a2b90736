/* Evaluation: per-task top-1/top-K accuracy over a task's valid list (centre crop, as
 * stock `classifier valid`) and one-image prediction (letterbox, as stock `classifier
 * predict`).  Printing is left to the commands. */
#include "eval/eval.h"

#include <stdlib.h>
#include <string.h>

/* Every layer forward, inference mode, on one input x (inputs). */
static void run_eval(lwf_model *m, const lwf_plan *p, const float *x)
{
    memcpy(m->net->input, x, (size_t)m->net->inputs * sizeof(float));
    lwf_forward(m->net, p);
}

int lwf_validate(lwf_model *m, int task, int topk, lwf_accuracy *acc, lwf_err *err)
{
    lwf_accuracy parts[3];
    if (lwf_validate_parts(m, task, topk, parts, err)) return -1;
    *acc = parts[0];
    return 0;
}

/* acc[part] of one image: part 0 all, 1 an old class of a grown head, 2 a new one */
static void score(lwf_accuracy *acc, int label, int old_classes, const int *idx, int topk, long (*hits)[2])
{
    int h1 = idx[0] == label, hk = 0;
    for (int j = 0; j < topk; ++j) hk |= idx[j] == label;
    int parts[2] = {0, label < old_classes ? 1 : 2};
    for (int q = 0; q < (old_classes ? 2 : 1); ++q) {
        ++acc[parts[q]].images;
        hits[parts[q]][0] += h1;
        hits[parts[q]][1] += hk;
    }
}

int lwf_validate_parts(lwf_model *m, int task, int topk, lwf_accuracy *acc, lwf_err *err)
{
    const lwf_task *t = &m->tasks[task];
    if (lwf_check_image_input(m, err)) return -1;
    if (!t->data) return lwf_fail(err, "%s:%d: task '%s' has no data= file to validate with", m->cfg, t->line, t->name);
    lwf_datacfg d;
    if (lwf_datacfg_read(t->data, &d, err)) return -1;
    lwf_list paths = {0, NULL, NULL}, labels = {0, NULL, NULL};
    int *label = NULL, rc = 0;
    if (!d.valid) rc = lwf_fail(err, "%s: no valid= list", t->data);
    else if (!d.labels) rc = lwf_fail(err, "%s: no labels= file", t->data);
    if (!rc && (lwf_datacfg_list(&d, "valid", &paths, err) || lwf_datacfg_list(&d, "labels", &labels, err))) rc = -1;
    if (!rc && labels.n != t->classes)
        rc = lwf_fail(err, "%s: %d labels, but task '%s' has %d classes", d.labels, labels.n, t->name, t->classes);
    if (!rc && !(label = malloc((size_t)paths.n * sizeof(int)))) rc = lwf_fail(err, "out of memory");
    if (!rc) rc = lwf_labels_of(&paths, d.valid, &labels, label, err);
    if (topk < 1) topk = d.top;
    if (topk > t->classes) topk = t->classes;
    int *idx = calloc((size_t)topk, sizeof(int));
    if (!rc && !idx) rc = lwf_fail(err, "out of memory");
    lwf_plan plan = {0, NULL, NULL, NULL}; /* one for the whole list */
    if (!rc && lwf_plan_make(m, LWF_PASS_EVAL, &plan)) rc = lwf_fail(err, "out of memory");
    long hits[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    memset(acc, 0, 3 * sizeof *acc);
    for (int i = 0; !rc && i < paths.n; ++i) {
        image im;
        lwf_err ierr;
        if (lwf_image_load(paths.items[i], &im, &ierr)) {
            rc = lwf_fail(err, "%s:%d: %s", d.valid, paths.line[i], ierr.msg); /* the list line, too */
            break;
        }
        image crop = center_crop_image(im, m->net->w, m->net->h);
        run_eval(m, &plan, crop.data);
        free_image(crop);
        free_image(im);
        float *pred = m->net->layers[t->loss].output; /* (classes) probabilities */
        top_k(pred, t->classes, topk, idx);
        score(acc, label[i], t->old_classes, idx, topk, hits);
    }
    for (int q = 0; !rc && q < 3; ++q) {
        acc[q].topk = topk;
        acc[q].top1 = acc[q].images ? (double)hits[q][0] / acc[q].images : 0;
        acc[q].topK = acc[q].images ? (double)hits[q][1] / acc[q].images : 0;
    }
    lwf_plan_free(&plan);
    free(idx);
    free(label);
    lwf_list_free(&paths);
    lwf_list_free(&labels);
    lwf_datacfg_free(&d);
    return rc;
}

int lwf_predict(lwf_model *m, const char *imagepath, lwf_err *err)
{
    image im;
    if (lwf_check_image_input(m, err) || lwf_image_load(imagepath, &im, err)) return -1;
    lwf_plan plan;
    if (lwf_plan_make(m, LWF_PASS_EVAL, &plan)) {
        free_image(im);
        return lwf_fail(err, "out of memory");
    }
    image r = letterbox_image(im, m->net->w, m->net->h);
    run_eval(m, &plan, r.data);
    free_image(r);
    free_image(im);
    lwf_plan_free(&plan);
    return 0;
}
