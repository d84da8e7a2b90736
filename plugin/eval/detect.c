/* A detector's answers: one image's boxes (letterboxed as stock `detector test` and `detector
 * valid` do, libdarknet's get_network_boxes and do_nms_sort), and per-class VOC AP over a
 * .data's validation images (lwf map; a grown detector's old and new lists, the new ids
 * shifted by K).  The AP arithmetic is map.c's; printing is the command's. */
#define _POSIX_C_SOURCE 200809L
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lwf_detect(lwf_model *m, const char *imagepath, float thresh, float nms, image *im, detection **dets, int *n,
               lwf_err *err)
{
    *dets = NULL;
    *n = 0;
    if (!m->detector) return lwf_fail(err, "%s: not a detector (no [yolo] layer)", m->cfg);
    if (lwf_check_image_input(m, err) || lwf_image_load(imagepath, im, err)) return -1;
    network *net = m->net;
    lwf_plan plan;
    if (lwf_plan_make(m, LWF_PASS_EVAL, &plan)) {
        free_image(*im);
        return lwf_fail(err, "out of memory");
    }
    image r = letterbox_image(*im, net->w, net->h);
    memcpy(net->input, r.data, (size_t)net->inputs * sizeof(float));
    free_image(r);
    lwf_forward(net, &plan);
    lwf_plan_free(&plan);
    *dets = get_network_boxes(net, im->w, im->h, thresh, .5f, 0, 1, n);
    if (nms > 0) do_nms_sort(*dets, *n, m->tasks[0].classes, nms);
    return 0;
}

/* The detections and ground truth gathered over the images. */
typedef struct {
    lwf_det *det;
    int nd, capd;
    lwf_gt *gt;
    int ng, capg;
    int images;
} pool;

static int grow(void **p, int *cap, int need, size_t size)
{
    if (need <= *cap) return 0;
    int c = *cap ? *cap * 2 : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* One validation image: its label boxes (ids < classes, + shift) and every detection of
 * each class with a non-zero probability (as stock `detector valid` writes them). */
static int score_image(lwf_model *m, const char *path, int classes, int shift, const lwf_map_opts *o, pool *pl,
                       lwf_err *err)
{
    char *lp = lwf_label_path(path);
    if (!lp) return lwf_fail(err, "out of memory");
    lwf_boxes bs;
    int rc = lwf_boxes_read(lp, classes, &bs, err);
    free(lp);
    if (rc) return -1;
    image im;
    detection *dets = NULL;
    int n = 0, C = m->tasks[0].classes;
    if (lwf_detect(m, path, o->thresh, o->nms, &im, &dets, &n, err)) return -1;
    free_image(im);
    int img = pl->images++;
    rc = grow((void **)&pl->gt, &pl->capg, pl->ng + bs.n, sizeof *pl->gt) ? lwf_fail(err, "out of memory") : 0;
    for (int i = 0; !rc && i < bs.n; ++i) pl->gt[pl->ng++] = (lwf_gt){img, bs.box[i].cls + shift, bs.box[i].b};
    for (int i = 0; !rc && i < n; ++i)
        for (int j = 0; j < C && !rc; ++j) {
            if (dets[i].prob[j] <= 0) continue;
            if (grow((void **)&pl->det, &pl->capd, pl->nd + 1, sizeof *pl->det)) rc = lwf_fail(err, "out of memory");
            else pl->det[pl->nd++] = (lwf_det){img, j, dets[i].prob[j], dets[i].bbox};
        }
    free_detections(dets, n);
    return rc;
}

/* One validation image checked, not scored: its label file read, the image decoded. */
static int check_image(const char *path, int classes, lwf_err *err)
{
    char *lp = lwf_label_path(path);
    if (!lp) return lwf_fail(err, "out of memory");
    lwf_boxes bs;
    image im;
    int rc = lwf_boxes_read(lp, classes, &bs, err);
    free(lp);
    if (!rc && (rc = lwf_image_load(path, &im, err)) == 0) free_image(im);
    return rc;
}

/* Every image of the valid= list of .data dpath (classes ids, + shift); pl NULL: each only
 * checked (check_image). */
static int score_list(lwf_model *m, const char *dpath, int classes, int shift, const lwf_map_opts *o, pool *pl,
                      lwf_err *err)
{
    lwf_datacfg d;
    lwf_list l = {0, NULL, NULL};
    int rc = lwf_datacfg_read(dpath, &d, err);
    if (!rc && d.classes != classes)
        rc = lwf_fail(err, "%s: classes=%d, but the detector expects %d here", dpath, d.classes, classes);
    if (!rc && !d.valid) rc = lwf_fail(err, "%s: no valid= list", dpath);
    if (!rc) rc = lwf_datacfg_list(&d, "valid", &l, err);
    for (int i = 0; !rc && i < l.n; ++i)
        if (pl ? score_image(m, l.items[i], classes, shift, o, pl, err) : check_image(l.items[i], classes, err))
            rc = lwf_fail(err, "%s:%d: %s", d.valid, l.line[i], err->msg);
    lwf_list_free(&l);
    lwf_datacfg_free(&d);
    return rc;
}

static double mean_of(const double *ap, int lo, int hi)
{
    double s = 0;
    int n = 0;
    for (int c = lo; c < hi; ++c)
        if (!isnan(ap[c])) s += ap[c], ++n;
    return n ? s / n : NAN;
}

/* The class names of .data d (names=), one per class. */
static int read_names(const lwf_datacfg *d, int classes, lwf_list *names, lwf_err *err)
{
    if (!d->labels) return lwf_fail(err, "%s: no names= file", d->path);
    if (lwf_datacfg_list(d, "labels", names, err)) return -1;
    if (names->n != classes)
        return lwf_fail(err, "%s: %d names, but the detector has %d classes", d->labels, names->n, classes);
    return 0;
}

/* The valid lists of .data d (o->data): a plain detector's valid=, a grown one's old_data=
 * and new_data= valid lists (the new ids after the K old); pl NULL: only checked. */
static int score_lists(lwf_model *m, const lwf_datacfg *d, const lwf_map_opts *o, pool *pl, lwf_err *err)
{
    int C = m->tasks[0].classes, K = lwf_det_old_classes(m);
    if (!d->new_data) return score_list(m, o->data, C, 0, o, pl, err);
    if (!d->old_data || K <= 0) return lwf_fail(err, "%s: new_data= needs old_data= and [lwf_yolo] layers", o->data);
    if (score_list(m, d->old_data, K, 0, o, pl, err)) return -1;
    return score_list(m, d->new_data, C - K, K, o, pl, err);
}

int lwf_map_check(lwf_model *m, const lwf_map_opts *o, lwf_err *err)
{
    if (!m->detector) return lwf_fail(err, "%s: not a detector (no [yolo] layer)", m->cfg);
    int C = m->tasks[0].classes;
    lwf_datacfg d;
    if (lwf_datacfg_read(o->data, &d, err)) return -1;
    lwf_list names = {0, NULL, NULL};
    int rc = d.classes != C ? lwf_fail(err, "%s: classes=%d, but %s has %d", o->data, d.classes, m->cfg, C) : 0;
    if (!rc) rc = read_names(&d, C, &names, err);
    if (!rc) rc = score_lists(m, &d, o, NULL, err);
    lwf_list_free(&names);
    lwf_datacfg_free(&d);
    return rc;
}

int lwf_map(lwf_model *m, const lwf_map_opts *o, lwf_map_result *r, lwf_err *err)
{
    memset(r, 0, sizeof *r);
    if (!m->detector) return lwf_fail(err, "%s: not a detector (no [yolo] layer)", m->cfg);
    int C = m->tasks[0].classes, K = lwf_det_old_classes(m);
    r->classes = C;
    r->old_classes = K;
    lwf_datacfg d;
    if (lwf_datacfg_read(o->data, &d, err)) return -1;
    pool pl;
    memset(&pl, 0, sizeof pl);
    int rc = d.classes != C ? lwf_fail(err, "%s: classes=%d, but %s has %d", o->data, d.classes, m->cfg, C) : 0;
    if (!rc) rc = read_names(&d, C, &r->names, err);
    if (!rc) rc = score_lists(m, &d, o, &pl, err);
    r->ap = rc ? NULL : malloc((size_t)C * sizeof *r->ap);
    if (!rc && !r->ap) rc = lwf_fail(err, "out of memory");
    for (int c = 0; !rc && c < C; ++c) rc = lwf_voc_ap(pl.det, pl.nd, pl.gt, pl.ng, c, o->iou, &r->ap[c], err);
    if (!rc) {
        r->images = pl.images;
        r->mean_old = mean_of(r->ap, 0, K);
        r->mean_new = mean_of(r->ap, K, C);
        r->mean_all = mean_of(r->ap, 0, C);
    }
    free(pl.det);
    free(pl.gt);
    lwf_datacfg_free(&d);
    if (rc) lwf_map_result_free(r);
    return rc;
}

void lwf_map_result_free(lwf_map_result *r)
{
    free(r->ap);
    lwf_list_free(&r->names);
    memset(r, 0, sizeof *r);
}
