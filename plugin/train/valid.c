/* -valid N: every task's top-1 while training, on a network of its own into which the
 * training network's stored arrays are copied before each scoring (so nothing the training
 * reads is written, batch-norm statistics included).  A task whose layers (the trunk and its
 * head) are bit for bit what they were at its last scoring keeps that figure: the old tasks
 * during the warm-up, all but the new one with -method featext.  The scoring itself is
 * eval's validation set; when to validate and what to print: train.c.  A detector's -valid
 * is lwf map (eval/detect.c) on such a copy; when and what to print: detect.c. */
#include "eval/eval.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define VALID_BATCH 32                     /* images per forward: past ~8 the time per image barely drops */
#define VALID_KEEP_BYTES ((size_t)256 << 20) /* kept images, every task together (Fashion-MNIST: 12 MB a task) */

struct lwf_trainval {
    lwf_model *vm;         /* the validation network: the cfg built at batch VALID_BATCH */
    lwf_plan eval;         /* every layer forward, inference mode */
    int n;
    lwf_valset *set;       /* (n) the open tasks' valid lists */
    double *last;          /* (n) each one's last top-1, or NAN before its first scoring */
    unsigned char *changed; /* (layers) scratch: the layer's stored arrays changed since */
};

void lwf_trainval_close(lwf_trainval *v)
{
    if (!v) return;
    for (int k = 0; k < v->n; ++k) lwf_valset_free(&v->set[k]);
    free(v->set);
    free(v->last);
    free(v->changed);
    lwf_plan_free(&v->eval);
    lwf_model_free(v->vm);
    free(v);
}

/* The .data task q is validated with, or NULL when it has no valid list (or is a
 * detector: no top-1).  An unreadable .data is an error. */
static int valid_data(const lwf_model *m, int q, const char *newdata, const char **dpath, lwf_err *err)
{
    const lwf_task *t = &m->tasks[q];
    *dpath = t->data ? t->data : t->is_new ? newdata : NULL;
    if (!*dpath || m->net->layers[t->loss].type == YOLO) {
        *dpath = NULL;
        return 0;
    }
    lwf_datacfg d;
    if (lwf_datacfg_read(*dpath, &d, err)) return -1;
    if (!d.valid) *dpath = NULL;
    lwf_datacfg_free(&d);
    return 0;
}

lwf_trainval *lwf_trainval_open(const lwf_model *m, const char *newdata, lwf_err *err)
{
    lwf_trainval *v = calloc(1, sizeof *v);
    if (!v || !(v->set = calloc((size_t)m->ntasks, sizeof *v->set)) ||
        !(v->last = malloc((size_t)m->ntasks * sizeof(double))) || !(v->changed = calloc((size_t)m->net->n, 1))) {
        lwf_trainval_close(v);
        lwf_fail(err, "out of memory");
        return NULL;
    }
    for (int q = 0; q < m->ntasks; ++q) v->last[q] = NAN;
    size_t keep = VALID_KEEP_BYTES;
    for (int q = 0; q < m->ntasks; ++q) {
        const char *dpath;
        if (valid_data(m, q, newdata, &dpath, err)) goto fail;
        if (!dpath) continue;
        lwf_valset *s = &v->set[v->n++];
        if (lwf_valset_open(m, q, dpath, 1, keep, s, err)) goto fail;
        if (s->pix) keep -= (size_t)s->paths.n * (size_t)s->inputs;
    }
    if (v->n == 0) {
        lwf_fail(err, "-valid: no task of %s has a data= file with a valid= list (nor has %s)", m->cfg, newdata);
        goto fail;
    }
    /* lwf valid scores one image at a time.  In inference an image's outputs do not depend
     * on the other images of its batch (the convolution kernels make one product per image),
     * except through a [connected] layer: one OpenBLAS product over the whole batch, which
     * rounds differently for another batch size (seen: 77 of 160 outputs differ in their
     * last bits between batch 32 and 1), so a near tie could change a top-1 */
    int batch = m->net->batch < VALID_BATCH ? m->net->batch : VALID_BATCH;
    for (int i = 0; i < m->net->n; ++i)
        if (m->net->layers[i].type == CONNECTED) batch = 1;
    lwf_build_opts bo = {batch, 1};
    if (!(v->vm = lwf_model_load(m->cfg, &bo, err))) goto fail;
    if (lwf_plan_make(v->vm, LWF_PASS_EVAL, &v->eval)) {
        lwf_fail(err, "out of memory");
        goto fail;
    }
    return v;
fail:
    lwf_trainval_close(v);
    return NULL;
}

/* Whether task t's layers (the trunk, its head) changed at the last copy. */
static int task_changed(const lwf_trainval *v, const lwf_task *t)
{
    const lwf_model *vm = v->vm;
    for (int i = 0; i < vm->net->n; ++i)
        if ((i < vm->trunk || (i >= t->first && i <= t->loss)) && v->changed[i]) return 1;
    return 0;
}

int lwf_trainval_run(lwf_trainval *v, const network *net, double *top1, long *images, lwf_err *err)
{
    if (lwf_weights_copy(v->vm->net, net, net->n, v->changed))
        return lwf_fail(err, "-valid: the validation network of %s does not match the training one", v->vm->cfg);
    for (int q = 0; q < v->vm->ntasks; ++q) top1[q] = NAN;
    *images = 0;
    for (int k = 0; k < v->n; ++k) {
        const lwf_valset *s = &v->set[k];
        if (isnan(v->last[k]) || task_changed(v, &v->vm->tasks[s->task])) {
            lwf_accuracy acc;
            if (lwf_valset_score(v->vm, &v->eval, s, &acc, err)) return -1;
            v->last[k] = acc.top1;
            *images += acc.images;
        }
        top1[s->task] = v->last[k];
    }
    return 0;
}

/* ---- a detector's -valid: lwf map's figures on a copy of the training weights ---- */

struct lwf_detval {
    lwf_model *vm;         /* the cfg built at batch 1, as lwf map builds it */
    char *data;            /* the .data scored (owned) */
    lwf_map_opts o;        /* lwf map's defaults: IoU .5, thresh .005, nms .45 */
};

void lwf_detval_close(lwf_detval *v)
{
    if (!v) return;
    lwf_model_free(v->vm);
    free(v->data);
    free(v);
}

lwf_detval *lwf_detval_open(const lwf_model *m, const char *newdata, lwf_err *err)
{
    lwf_detval *v = calloc(1, sizeof *v);
    const char *d = m->tasks[0].data ? m->tasks[0].data : newdata;
    if (!v || !(v->data = lwf_strdup(d))) {
        lwf_detval_close(v);
        lwf_fail(err, "out of memory");
        return NULL;
    }
    v->o = (lwf_map_opts){v->data, .5f, .005f, .45f};
    lwf_build_opts bo = {1, 1};
    lwf_datacfg dc;
    int rc = lwf_datacfg_read(d, &dc, err);
    if (!rc) {
        if (!dc.valid && !dc.new_data)
            rc = lwf_fail(err, "-valid: %s has no valid= list (nor old_data= and new_data=) to score %s with", d,
                          m->cfg);
        lwf_datacfg_free(&dc);
    }
    if (!rc && !(v->vm = lwf_model_load(m->cfg, &bo, err))) rc = -1;
    if (!rc && lwf_map_check(v->vm, &v->o, err)) rc = lwf_fail(err, "-valid: %s", err->msg);
    if (rc) {
        lwf_detval_close(v);
        return NULL;
    }
    return v;
}

int lwf_detval_run(lwf_detval *v, const network *net, double *map, int *images, lwf_err *err)
{
    if (lwf_weights_copy(v->vm->net, net, net->n, NULL))
        return lwf_fail(err, "-valid: the validation network of %s does not match the training one", v->vm->cfg);
    lwf_map_result r;
    if (lwf_map(v->vm, &v->o, &r, err)) return -1;
    map[0] = r.mean_all;
    map[1] = r.mean_old;
    map[2] = r.mean_new;
    *images = r.images;
    lwf_map_result_free(&r);
    return 0;
}
