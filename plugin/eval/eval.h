/* eval/: validation and prediction of a built model (eval.c; the interface is public:
 * lwf.h, lwf_validate and lwf_predict) and detection scoring (map.c). */
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

#endif
