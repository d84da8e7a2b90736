/* The test helpers that parse output (testutil.c): asked for a task's row of `lwf valid
 * -csv`, they give that row or an error, never another task's row or a default. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <string.h>

static const char *csv = "task,images,top1,topk\n"
                         "quad,128,0.2500,0.5000\n"
                         "tint,64,1.0000,1.0000\n"
                         "tint:old,32,0.7500,0.8750\n";

/* Each task gets its own row's values, the last row included. */
static void test_valid_find_gives_the_row_asked_for(void **state)
{
    (void)state;
    char msg[256];
    tu_valid_row r;
    assert_int_equal(tu_valid_find(csv, "quad", &r, msg, sizeof msg), 0);
    assert_int_equal(r.images, 128);
    assert_true(r.top1 == 0.25 && r.topk == 0.5);
    assert_int_equal(tu_valid_find(csv, "tint", &r, msg, sizeof msg), 0);
    assert_int_equal(r.images, 64);
    assert_true(r.top1 == 1 && r.topk == 1);
    assert_int_equal(tu_valid_find(csv, "tint:old", &r, msg, sizeof msg), 0);
    assert_int_equal(r.images, 32);
    assert_true(r.top1 == 0.75 && r.topk == 0.875);
}

/* A task without a row is an error that names it, and *row is left as it was: not the
 * last row read, not a row whose name merely starts or ends like it. */
static void test_valid_find_refuses_a_missing_task(void **state)
{
    (void)state;
    const char *asked[] = {"none", "qua", "quadx", "old", "tint:", ""};
    for (size_t i = 0; i < sizeof asked / sizeof *asked; ++i) {
        char msg[256] = "";
        tu_valid_row r = {-7, -7, -7};
        if (tu_valid_find(csv, asked[i], &r, msg, sizeof msg) == 0)
            fail_msg("task '%s' has no row, but a row was found (%d images)", asked[i], r.images);
        assert_int_equal(r.images, -7);
        assert_true(r.top1 == -7 && r.topk == -7);
        if (!strstr(msg, "no row")) fail_msg("task '%s': message '%s'", asked[i], msg);
    }
    /* header only */
    char msg[256];
    tu_valid_row r = {-7, -7, -7};
    assert_int_not_equal(tu_valid_find("task,images,top1,topk\n", "quad", &r, msg, sizeof msg), 0);
    assert_int_equal(r.images, -7);
}

/* No header, a malformed line, or the task twice: an error, not a guess. */
static void test_valid_find_refuses_bad_output(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "quad,128,0.2500,0.5000\n",                                   /* no header */
        "task,images,top1\nquad,128,0.2500\n",                            /* another header */
        "task,images,top1,topk\nquad,128,0.2500\n",                       /* a field short */
        "task,images,top1,topk\nquad,12x,0.2500,0.5000\n",                /* not a number */
        "task,images,top1,topk\nquad,128,0.2500,0.5000,9\n",              /* a field more */
        "task,images,top1,topk\nlwf valid: cannot open x.weights\n",      /* a message on stdout */
        "task,images,top1,topk\nquad,128,0.2500,0.5000\nquad,1,0,0\n",    /* twice */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i) {
        char msg[256] = "";
        tu_valid_row r = {-7, -7, -7};
        if (tu_valid_find(bad[i], "quad", &r, msg, sizeof msg) == 0)
            fail_msg("accepted '%s' (%d images)", bad[i], r.images);
        assert_int_equal(r.images, -7);
        assert_true(msg[0] != 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_find_gives_the_row_asked_for),
        cmocka_unit_test(test_valid_find_refuses_a_missing_task),
        cmocka_unit_test(test_valid_find_refuses_bad_output),
    };
    return cmocka_run_group_tests_name("testutil", tests, NULL, NULL);
}
