/* eval/: validation and prediction of a built model (eval.c; the interface is public:
 * lwf.h, lwf_validate and lwf_predict, plus the validation sets below, which training's
 * -valid scores too) and detection scoring (map.c). */
#ifndef LWF_EVAL_H
#define LWF_EVAL_H

#include "io/io.h"
#include "run/run.h"

/* One detection of an image: its class, score and box (centre and size, relative). */
typedef struct lwf_det {
    int image, cls;
    float score;
    box bbox;
} lwf_det;

/* One ground-truth box of an image. */
typedef struct lwf_gt {
    int image, cls;
    box bbox;
} lwf_gt;

/* VOC all-point average precision of class cls into *ap: detections taken by score,
 * highest first (equal scores in their input order); each is a true positive when its
 * IoU with the ground-truth box of its image and class that it overlaps most exceeds
 * `iou` (VOC's strict >) and that box is not yet taken, else a false positive (so a
 * duplicate is one); AP = area under the precision envelope over recall.  *ap is NAN
 * when cls has no ground truth (a mean leaves it out), 0 with ground truth and no
 * detection.  Returns 0, or -1 with err when out of memory. */
int lwf_voc_ap(const lwf_det *d, int nd, const lwf_gt *g, int ng, int cls, float iou, double *ap, lwf_err *err);

/* ---- detectors (detect.c; lwf_detect, lwf_map and lwf_det_old_classes are public: lwf.h) ---- */

/* What lwf_map reads of o->data, checked without scoring: the .data (classes, names), every
 * valid list, each image's label file and the image itself (decoded once), so a bad one is
 * an error naming its list line.  0, or -1 with err. */
int lwf_map_check(lwf_model *m, const lwf_map_opts *o, lwf_err *err);

/* ---- validation sets (eval.c) ----
 * A task's valid list ready to be scored again and again (lwf_validate scores one once;
 * lwf train -valid every N iterations): the labels, and, when they fit in the budget, the
 * images themselves, centre-cropped to the network's input and kept as the bytes they were
 * decoded from (each value b / 255, exactly), so a scoring decodes nothing. */
typedef struct lwf_valset {
    int task;              /* index of the task it scores */
    int topk;              /* K of top-K */
    int inputs;            /* floats of one prepared image (the network's input) */
    lwf_datacfg d;         /* the .data it came from */
    lwf_list paths;        /* its valid list */
    int *label;            /* (paths.n) each image's class */
    unsigned char *pix;    /* (paths.n, inputs) the prepared images, or NULL: decoded at each scoring */
} lwf_valset;

/* Opens task `task`'s valid list, from `datafile` (a .data path; NULL: the task's data=), with
 * top-K from topk (< 1: the .data's top=), capped at the task's classes.  Keeps the images
 * (decoding each once, so a bad one is an error naming its list line now) when paths.n *
 * inputs bytes fit in `budget`.  0, or -1 with err; free with lwf_valset_free either way. */
int lwf_valset_open(const lwf_model *m, int task, const char *datafile, int topk, size_t budget, lwf_valset *v,
                    lwf_err *err);
/* Top-1 and top-K of m on v: the eval plan (every layer forward, inference mode), the
 * images m->net->batch at a time (in inference an image's outputs are its own, bit for bit
 * at any batch, except through a [connected] layer: see train/valid.c).  m is built from
 * the cfg v was opened with. */
int lwf_valset_score(lwf_model *m, const lwf_plan *eval, const lwf_valset *v, lwf_accuracy *acc, lwf_err *err);
/* The same in parts: acc[0] all images, acc[1] those of a grown head's old classes, acc[2] its new. */
int lwf_valset_score_parts(lwf_model *m, const lwf_plan *eval, const lwf_valset *v, lwf_accuracy *acc,
                           lwf_err *err);
void lwf_valset_free(lwf_valset *v);

#endif
