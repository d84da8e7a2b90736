/* Evaluation: per-task top-1/top-K accuracy over a task's valid list (centre crop, as
 * stock `classifier valid`), through a validation set that can be scored many times
 * (training's -valid), and one-image prediction (letterbox, as stock `classifier
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

void lwf_valset_free(lwf_valset *v)
{
    free(v->pix);
    free(v->label);
    lwf_list_free(&v->paths);
    lwf_datacfg_free(&v->d);
    memset(v, 0, sizeof *v);
}

/* Image i of v, centre-cropped to the network's input (as stock `classifier valid`). */
static int prepare(const lwf_model *m, const lwf_valset *v, int i, image *crop, lwf_err *err)
{
    image im;
    lwf_err ierr;
    if (lwf_image_load(v->paths.items[i], &im, &ierr))
        return lwf_fail(err, "%s:%d: %s", v->d.valid, v->paths.line[i], ierr.msg); /* the list line, too */
    *crop = center_crop_image(im, m->net->w, m->net->h);
    free_image(im);
    return 0;
}

/* Decodes every image once and keeps it as bytes; leaves v->pix NULL (decode at each
 * scoring) if a value is not b / 255 for a byte b (never, with lwf_image_load's decoder). */
static int keep_images(const lwf_model *m, lwf_valset *v, lwf_err *err)
{
    size_t in = (size_t)v->inputs;
    if (!(v->pix = malloc((size_t)v->paths.n * in))) return 0; /* no room: decode each time */
    for (int i = 0; i < v->paths.n; ++i) {
        image crop;
        if (prepare(m, v, i, &crop, err)) return -1;
        unsigned char *b = v->pix + (size_t)i * in;
        int exact = 1;
        for (size_t k = 0; k < in && exact; ++k) {
            float x = crop.data[k];
            b[k] = (unsigned char)(x <= 0 ? 0 : x >= 1 ? 255 : (int)(x * 255.0f + 0.5f));
            exact = b[k] / 255.0f == x;
        }
        free_image(crop);
        if (!exact) {
            free(v->pix);
            v->pix = NULL;
            return 0;
        }
    }
    return 0;
}

int lwf_valset_open(const lwf_model *m, int task, const char *datafile, int topk, size_t budget, lwf_valset *v,
                    lwf_err *err)
{
    memset(v, 0, sizeof *v);
    const lwf_task *t = &m->tasks[task];
    v->task = task;
    v->inputs = m->net->inputs;
    if (lwf_check_image_input(m, err)) return -1;
    const char *dpath = datafile ? datafile : t->data;
    if (!dpath) return lwf_fail(err, "%s:%d: task '%s' has no data= file to validate with", m->cfg, t->line, t->name);
    lwf_list labels = {0, NULL, NULL};
    if (lwf_datacfg_read(dpath, &v->d, err)) return -1;
    lwf_datacfg *d = &v->d;
    int rc = 0;
    if (!d->valid) rc = lwf_fail(err, "%s: no valid= list", dpath);
    else if (!d->labels) rc = lwf_fail(err, "%s: no labels= file", dpath);
    if (!rc && (lwf_datacfg_list(d, "valid", &v->paths, err) || lwf_datacfg_list(d, "labels", &labels, err))) rc = -1;
    if (!rc && labels.n != t->classes)
        rc = lwf_fail(err, "%s: %d labels, but task '%s' has %d classes", d->labels, labels.n, t->name, t->classes);
    if (!rc && !(v->label = malloc((size_t)v->paths.n * sizeof(int)))) rc = lwf_fail(err, "out of memory");
    if (!rc) rc = lwf_labels_of(&v->paths, d->valid, &labels, v->label, err);
    lwf_list_free(&labels);
    v->topk = topk < 1 ? d->top : topk;
    if (v->topk > t->classes) v->topk = t->classes;
    if (!rc && v->paths.n > 0 && (size_t)v->paths.n <= budget / (size_t)v->inputs) rc = keep_images(m, v, err);
    return rc;
}

/* Rows [0, n) of the network's input: images i0.. of v (kept or decoded); the rest zero. */
static int fill_rows(lwf_model *m, const lwf_valset *v, int i0, int n, lwf_err *err)
{
    network *net = m->net;
    size_t in = (size_t)net->inputs;
    for (int r = 0; r < n; ++r) {
        float *x = net->input + (size_t)r * in;
        if (v->pix) {
            const unsigned char *b = v->pix + (size_t)(i0 + r) * in;
            for (size_t k = 0; k < in; ++k) x[k] = b[k] / 255.0f;
            continue;
        }
        image crop;
        if (prepare(m, v, i0 + r, &crop, err)) return -1;
        memcpy(x, crop.data, in * sizeof(float));
        free_image(crop);
    }
    memset(net->input + (size_t)n * in, 0, (size_t)(net->batch - n) * in * sizeof(float));
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

int lwf_valset_score_parts(lwf_model *m, const lwf_plan *eval, const lwf_valset *v, lwf_accuracy *acc, lwf_err *err)
{
    const lwf_task *t = &m->tasks[v->task];
    const layer *loss = &m->net->layers[t->loss];
    int *idx = calloc((size_t)v->topk, sizeof(int)), batch = m->net->batch, rc = 0;
    if (!idx) return lwf_fail(err, "out of memory");
    long hits[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    memset(acc, 0, 3 * sizeof *acc);
    for (int i0 = 0; i0 < v->paths.n && !rc; i0 += batch) {
        int n = v->paths.n - i0 < batch ? v->paths.n - i0 : batch;
        if ((rc = fill_rows(m, v, i0, n, err)) != 0) break;
        lwf_forward(m->net, eval);
        for (int r = 0; r < n; ++r) {
            top_k(loss->output + (size_t)r * loss->outputs, t->classes, v->topk, idx); /* (classes) probabilities */
            score(acc, v->label[i0 + r], t->old_classes, idx, v->topk, hits);
        }
    }
    free(idx);
    if (rc) return -1;
    for (int q = 0; q < 3; ++q) {
        acc[q].topk = v->topk;
        acc[q].top1 = acc[q].images ? (double)hits[q][0] / acc[q].images : 0;
        acc[q].topK = acc[q].images ? (double)hits[q][1] / acc[q].images : 0;
    }
    return 0;
}

int lwf_valset_score(lwf_model *m, const lwf_plan *eval, const lwf_valset *v, lwf_accuracy *acc, lwf_err *err)
{
    lwf_accuracy parts[3];
    if (lwf_valset_score_parts(m, eval, v, parts, err)) return -1;
    *acc = parts[0];
    return 0;
}

int lwf_validate(lwf_model *m, int task, int topk, lwf_accuracy *acc, lwf_err *err)
{
    lwf_accuracy parts[3];
    if (lwf_validate_parts(m, task, topk, parts, err)) return -1;
    *acc = parts[0];
    return 0;
}

int lwf_validate_parts(lwf_model *m, int task, int topk, lwf_accuracy *acc, lwf_err *err)
{
    if (m->detector) return lwf_fail(err, "%s: a detector: score it with lwf map", m->cfg);
    lwf_valset v;
    lwf_plan plan = {0, NULL, NULL, NULL}; /* one for the whole list */
    int rc = lwf_valset_open(m, task, NULL, topk, 0, &v, err);
    if (!rc && lwf_plan_make(m, LWF_PASS_EVAL, &plan)) rc = lwf_fail(err, "out of memory");
    if (!rc) rc = lwf_valset_score_parts(m, &plan, &v, acc, err);
    lwf_plan_free(&plan);
    lwf_valset_free(&v);
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
