/* Detection scoring: VOC all-point average precision of one class over a set of
 * detections and ground-truth boxes (the arithmetic of lwf map).  Running the detector,
 * thresholds and NMS are the caller's; printing is the command's. */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>

/* Whether detection i comes before j: higher score first, equal scores in input order. */
static int before(const lwf_det *d, int i, int j)
{
    return d[i].score != d[j].score ? d[i].score > d[j].score : i < j;
}

/* Sorts idx (n) into that order: a bottom-up merge sort through tmp (n), stable and
 * without qsort's file-scope context. */
static void sort_idx(int *idx, int *tmp, int n, const lwf_det *d)
{
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = before(d, idx[b], idx[a]) ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        for (int i = 0; i < n; ++i) idx[i] = tmp[i];
    }
}

/* Area under the precision envelope: rec and prec (n) as detections are taken in order. */
static double envelope_area(const double *rec, double *prec, int n)
{
    for (int i = n - 2; i >= 0; --i)
        if (prec[i + 1] > prec[i]) prec[i] = prec[i + 1];
    double ap = 0, last = 0;
    for (int i = 0; i < n; ++i) {
        if (rec[i] > last) ap += (rec[i] - last) * prec[i];
        last = rec[i];
    }
    return ap;
}

int lwf_voc_ap(const lwf_det *d, int nd, const lwf_gt *g, int ng, int cls, float iou, double *ap, lwf_err *err)
{
    int npos = 0, n = 0;
    for (int j = 0; j < ng; ++j) npos += g[j].cls == cls;
    for (int i = 0; i < nd; ++i) n += d[i].cls == cls;
    *ap = NAN;
    if (npos == 0) return 0; /* no ground truth: AP undefined, left out of the means */
    *ap = 0;
    if (n == 0) return 0;
    int *idx = malloc(2 * (size_t)n * sizeof(int)); /* (2n): the order, then the sort's scratch */
    unsigned char *used = calloc((size_t)ng, 1);   /* (ng) ground truth taken */
    double *rec = malloc(2 * (size_t)n * sizeof(double)); /* (2n): recall, then precision */
    if (!idx || !used || !rec) {
        free(idx); free(used); free(rec);
        return lwf_fail(err, "out of memory");
    }
    double *prec = rec + n;
    for (int i = 0, k = 0; i < nd; ++i) if (d[i].cls == cls) idx[k++] = i;
    sort_idx(idx, idx + n, n, d);
    long tp = 0, fp = 0;
    for (int r = 0; r < n; ++r) {
        const lwf_det *x = &d[idx[r]];
        int best = -1;
        float bo = -1;
        for (int j = 0; j < ng; ++j) { /* the ground truth of its image and class it overlaps most */
            if (g[j].cls != cls || g[j].image != x->image) continue;
            float o = box_iou(x->bbox, g[j].bbox);
            if (o > bo) { bo = o; best = j; }
        }
        /* VOC: a true positive overlaps more than the threshold with a box not yet taken; a
         * second detection of a taken box is a false positive */
        if (best >= 0 && bo > iou && !used[best]) { used[best] = 1; ++tp; }
        else ++fp;
        rec[r] = (double)tp / npos;
        prec[r] = (double)tp / (double)(tp + fp);
    }
    *ap = envelope_area(rec, prec, n);
    free(idx); free(used); free(rec);
    return 0;
}
