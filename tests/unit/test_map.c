/* VOC all-point average precision (plugin/eval/map.c) on hand-computed cases: a perfect
 * set, a false positive ranked first, duplicates, ties, the IoU threshold's edge, other
 * images and classes, no detections, no ground truth, and a five-detection ranking. */
#include "testutil.h"
#include "eval/eval.h"

#include <math.h>

/* Boxes on a 10-wide grid: cell k of row 0, half a cell wide (disjoint from each other). */
static box cell(int k)
{
    box b = {0.05f + 0.1f * (float)k, 0.05f, 0.05f, 0.05f};
    return b;
}

static double ap_of(const lwf_det *d, int nd, const lwf_gt *g, int ng, int cls)
{
    lwf_err err;
    double ap = -1;
    assert_int_equal(lwf_voc_ap(d, nd, g, ng, cls, 0.5f, &ap, &err), 0);
    return ap;
}

static void test_perfect_and_false_positive_first(void **state)
{
    (void)state;
    lwf_gt g[2] = {{0, 0, cell(0)}, {1, 0, cell(1)}};
    lwf_det d[2] = {{0, 0, 0.9f, cell(0)}, {1, 0, 0.8f, cell(1)}};
    assert_true(ap_of(d, 2, g, 2, 0) == 1.0);
    /* one box; a miss ranked above the hit: recall (0, 1), precision (0, 1/2): AP 1/2 */
    lwf_det e[2] = {{0, 0, 0.9f, cell(5)}, {0, 0, 0.8f, cell(0)}};
    assert_true(fabs(ap_of(e, 2, g, 1, 0) - 0.5) < 1e-12);
}

static void test_duplicates_and_ties(void **state)
{
    (void)state;
    lwf_gt g[1] = {{0, 0, cell(0)}};
    /* the second detection of a taken box is a false positive, after the hit: AP 1 */
    lwf_det dup[2] = {{0, 0, 0.9f, cell(0)}, {0, 0, 0.8f, cell(0)}};
    assert_true(ap_of(dup, 2, g, 1, 0) == 1.0);
    /* the duplicate ranked first takes the box; the lower one is the false positive: AP 1 */
    lwf_det dup2[2] = {{0, 0, 0.7f, cell(0)}, {0, 0, 0.8f, cell(0)}};
    assert_true(ap_of(dup2, 2, g, 1, 0) == 1.0);
    /* equal scores keep the input order: miss then hit is 1/2, hit then miss is 1 */
    lwf_det tie1[2] = {{0, 0, 0.5f, cell(3)}, {0, 0, 0.5f, cell(0)}};
    lwf_det tie2[2] = {{0, 0, 0.5f, cell(0)}, {0, 0, 0.5f, cell(3)}};
    assert_true(fabs(ap_of(tie1, 2, g, 1, 0) - 0.5) < 1e-12);
    assert_true(ap_of(tie2, 2, g, 1, 0) == 1.0);
}

static void test_threshold_images_and_classes(void **state)
{
    (void)state;
    /* (dyadic sizes: every IoU below is exact in float) */
    box gt = {0.5f, 0.5f, 0.5f, 0.5f};
    box half = {0.375f, 0.5f, 0.25f, 0.5f}; /* the left half of gt: IoU exactly 1/2 */
    box more = {0.4375f, 0.5f, 0.375f, 0.5f}; /* three quarters of gt: IoU 3/4 */
    assert_true(box_iou(half, gt) == 0.5f);
    assert_true(box_iou(more, gt) == 0.75f);
    lwf_gt g[1] = {{0, 0, gt}};
    lwf_det at[1] = {{0, 0, 0.9f, half}}, over[1] = {{0, 0, 0.9f, more}};
    /* VOC counts an overlap above the threshold, not at it */
    lwf_err err;
    double ap = -1;
    assert_int_equal(lwf_voc_ap(at, 1, g, 1, 0, 0.5f - 1e-4f, &ap, &err), 0);
    assert_true(ap == 1.0);
    assert_true(ap_of(at, 1, g, 1, 0) == 0.0); /* IoU 1/2 at threshold 1/2 */
    assert_true(ap_of(over, 1, g, 1, 0) == 1.0);
    /* the right box in another image, or of another class, is no hit */
    lwf_det other_image[1] = {{1, 0, 0.9f, gt}}, other_class[1] = {{0, 1, 0.9f, gt}};
    assert_true(ap_of(other_image, 1, g, 1, 0) == 0.0);
    assert_true(ap_of(other_class, 1, g, 1, 0) == 0.0); /* class 0 has no detection left */
    assert_true(isnan(ap_of(other_class, 1, g, 1, 1))); /* class 1 has no ground truth */
    assert_true(ap_of(NULL, 0, g, 1, 0) == 0.0);
}

static void test_five_detections(void **state)
{
    (void)state;
    /* three boxes; ranked: hit, miss, miss, hit, hit.  Recall 1/3 1/3 1/3 2/3 1, precision
     * 1 1/2 1/3 1/2 3/5; envelope 1 3/5 3/5 3/5 3/5: AP = (1 + 3/5 + 3/5) / 3 = 11/15
     * (without the envelope, the precision where recall rises would give 7/10) */
    lwf_gt g[3] = {{0, 2, cell(0)}, {0, 2, cell(1)}, {0, 2, cell(2)}};
    lwf_det d[6] = {
        {0, 2, 0.3f, cell(2)}, {0, 2, 0.95f, cell(0)}, {0, 2, 0.75f, cell(7)},
        {0, 2, 0.8f, cell(8)}, {0, 2, 0.7f, cell(1)}, {0, 1, 0.99f, cell(1)}, /* another class */
    };
    assert_true(fabs(ap_of(d, 6, g, 3, 2) - 11.0 / 15.0) < 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfect_and_false_positive_first),
        cmocka_unit_test(test_duplicates_and_ties),
        cmocka_unit_test(test_threshold_images_and_classes),
        cmocka_unit_test(test_five_detections),
    };
    return cmocka_run_group_tests_name("map", tests, NULL, NULL);
}
