/* The calibration of lwf valid -merged (plugin/eval/merged.c) on constructed probability
 * vectors: each class's mean and standard deviation over the images its head answers it,
 * the head's own when fewer than LWF_MERGED_CALIB_MIN answer it, the floor on the deviation,
 * and an answer that the calibration turns from the more confident head to the other. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* scale and bias of class j against 1/sd and -mean/sd, mean and sd those of the decimal
 * values (the probabilities are floats, 0.95f = 0.95 - 1.2e-8: relative errors up to ~1e-6 in
 * sd; a relative 1e-5) */
static void check_class(const lwf_merged_calib *c, int j, double mean, double sd)
{
    double s = 1 / sd, b = -mean / sd;
    if (fabs(c->scale[j] - s) > 1e-5 * fabs(s) || fabs(c->bias[j] - b) > 1e-5 * fabs(b))
        fail_msg("class %d: scale %g bias %g, want %g %g", j, c->scale[j], c->bias[j], s, b);
}

/* Two heads of two classes.  Head 0 answers class 0 on every image, with p 0.6 and 0.8 in
 * turn (mean 0.7, sd 0.1), never class 1 (so class 1 takes the head's: the same).  Head 1
 * answers class 2 on 20 images with 0.95 and 0.99 in turn (mean 0.97, sd 0.02) and class 3 on
 * 20 with 0.9 each (sd 0: the floor); then one more image of class 3 at 0.5, where class 3 has
 * 21 (its own: mean and sd of 20 x 0.9 and 0.5). */
static void test_calibration_constructed(void **state)
{
    (void)state;
    int size[2] = {2, 2};
    lwf_merged_calib c;
    lwf_err err;
    assert_int_equal(lwf_merged_calib_init(&c, 2, size, &err), 0);
    assert_int_equal(c.classes, 4);
    for (int i = 0; i < 40; ++i) {
        float a = i % 2 ? 0.8f : 0.6f, p[4] = {a, 1 - a, 0, 0};
        if (i < 20) p[2] = i % 2 ? 0.99f : 0.95f, p[3] = 1 - p[2];
        else p[3] = 0.9f, p[2] = 0.1f;
        lwf_merged_calib_add(&c, p);
    }
    assert_int_equal(lwf_merged_calib_finish(&c, &err), 0);
    assert_int_equal(c.images, 40);
    check_class(&c, 0, 0.7, 0.1);
    check_class(&c, 1, 0.7, 0.1); /* nobody answered it: head 0's */
    check_class(&c, 2, 0.97, 0.02);
    check_class(&c, 3, 0.9, LWF_MERGED_CALIB_SD_MIN);

    /* head 0 at 0.85 is 1.5 sd above its usual, head 1 at 0.99 only 1 sd: plain, head 1 wins
     * (0.99 > 0.85); calibrated, head 0 does */
    float p[4] = {0.85f, 0.15f, 0.99f, 0.01f}, q[4];
    memcpy(q, p, sizeof p);
    lwf_merged_calib_apply(&c, q);
    assert_true(fabs(q[0] - 1.5) < 1e-4 && fabs(q[2] - 1.0) < 1e-3);
    assert_true(q[0] > q[2] && q[0] > q[1] && q[0] > q[3]);
    assert_true(p[2] > p[0]);

    /* a 21st image of class 3: now its own moments (the floor no longer applies) */
    float r[4] = {0.6f, 0.4f, 0.5f, 0.5f + 1e-3f};
    lwf_merged_calib_add(&c, r);
    assert_int_equal(lwf_merged_calib_finish(&c, &err), 0);
    double m3 = (20 * 0.9 + (double)r[3]) / 21, v3 = (20 * 0.81 + (double)r[3] * r[3]) / 21 - m3 * m3;
    check_class(&c, 3, m3, sqrt(v3));
    lwf_merged_calib_free(&c);
    assert_null(c.scale);
}

/* Without an image the calibration is refused; init refuses an empty head. */
static void test_calibration_refusals(void **state)
{
    (void)state;
    int size[2] = {3, 0}, one[1] = {3};
    lwf_merged_calib c;
    lwf_err err;
    assert_int_equal(lwf_merged_calib_init(&c, 2, size, &err), -1);
    assert_non_null(strstr(err.msg, "head 1"));
    assert_int_equal(lwf_merged_calib_init(&c, 1, one, &err), 0);
    assert_int_equal(lwf_merged_calib_finish(&c, &err), -1);
    assert_non_null(strstr(err.msg, "no image"));
    /* the identity until finished: scale 1, bias 0 */
    float p[3] = {0.2f, 0.3f, 0.5f};
    lwf_merged_calib_apply(&c, p);
    assert_true(p[0] == 0.2f && p[1] == 0.3f && p[2] == 0.5f);
    lwf_merged_calib_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calibration_constructed),
        cmocka_unit_test(test_calibration_refusals),
    };
    return cmocka_run_group_tests_name("merged", tests, NULL, NULL);
}
