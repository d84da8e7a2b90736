/* scripts/sequence.sh on two small synthetic tasks: it writes a well-formed 2x2 accuracy
 * matrix per method whose values are what `lwf valid` reports, and the summary table; its
 * default schedule is P2's; scripts/seq_summary.sh (its summary row) on a hand-made matrix
 * that forgets.  The -grow sequence is tests/cli/sequence.bats. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *first_cfg =
    "[net]\nbatch=16\nheight=12\nwidth=12\nchannels=3\nlearning_rate=0.1\npolicy=poly\npower=4\nmax_batches=10\n"
    "momentum=0.9\ndecay=0.0005\nwarmup_batches=0\nwarmup_learning_rate=0.01\nmin_crop=12\nmax_crop=12\nflip=0\n"
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[task]\nname=first\ndata=first.data\n"
    "[convolutional]\nfilters=2\nsize=1\nstride=1\npad=1\nactivation=linear\n[avgpool]\n[softmax]\n";

/* Reads the CSV row `row` (0 = header) of path into fields; returns the field count. */
static int csv_row(const char *path, int row, char fields[][64], int max)
{
    FILE *fp = fopen(path, "r");
    if (!fp) fail_msg("cannot open %s", path);
    char line[1024];
    for (int r = 0; r <= row; ++r)
        if (!fgets(line, sizeof line, fp)) fail_msg("%s: no row %d", path, row);
    fclose(fp);
    line[strcspn(line, "\n")] = 0;
    int n = 0;
    char *p = line;
    while (n < max) {
        char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        snprintf(fields[n++], 64, "%.*s", (int)len, p);
        if (!c) break;
        p = c + 1;
    }
    return n;
}

static void test_two_task_sequence(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *a = tu_make_task(dir, "bands", 0, 128, 64, 12, 1);
    char *b = tu_make_task(dir, "tints", 1, 128, 64, 12, 2);
    char *first = tu_write(dir, "first.cfg", first_cfg);
    int rc = tu_sh("cd '%s' && scripts/sequence.sh -o '%s/seq' -m 'lwf joint' -f '%s' -E 30 -e 4 '%s' '%s' > '%s/seq.log' 2>&1",
                   tu_root(), dir, first, a, b, dir);
    if (rc != 0) {
        tu_sh("tail -20 '%s/seq.log'", dir);
        fail_msg("sequence.sh failed (%d)", rc);
    }
    const char *methods[2] = {"lwf", "joint"};
    double R[2][3]; /* per method: bands after step 1, bands and tints after step 2 */
    for (int k = 0; k < 2; ++k) {
        char m[4200], cfg[4200], w[4200], out[4200];
        snprintf(m, sizeof m, "%s/seq/%s/matrix.csv", dir, methods[k]);
        char f[4][64];
        assert_int_equal(csv_row(m, 0, f, 4), 3);
        assert_string_equal(f[0], "after");
        assert_string_equal(f[1], "bands");
        assert_string_equal(f[2], "tints");
        assert_int_equal(csv_row(m, 1, f, 4), 3);
        assert_string_equal(f[0], "bands");
        assert_string_equal(f[2], ""); /* not seen yet */
        assert_true(atof(f[1]) > 0.9); /* the first task was learned */
        R[k][0] = atof(f[1]);
        assert_int_equal(csv_row(m, 2, f, 4), 3);
        assert_string_equal(f[0], "tints");
        R[k][1] = atof(f[1]);
        R[k][2] = atof(f[2]);
        /* the last row is what lwf valid says of the last step's weights */
        snprintf(cfg, sizeof cfg, "%s/seq/%s/step2.cfg", dir, methods[k]);
        snprintf(w, sizeof w, "%s/seq/%s/step2/step2.weights", dir, methods[k]);
        snprintf(out, sizeof out, "%s/valid-%s.csv", dir, methods[k]);
        const char *dn = getenv("DARKNET"); /* the binary under test (tests/run.sh sets it) */
        assert_int_equal(tu_sh("cd '%s' && '%s' lwf valid '%s' '%s' -csv > '%s' 2>/dev/null", tu_root(),
                               dn ? dn : "./darknet", cfg, w, out), 0);
        char v[4][64];
        for (int j = 1; j <= 2; ++j) {
            assert_int_equal(csv_row(out, j, v, 4), 4);
            if (strcmp(v[0], j == 1 ? "bands" : "tints") != 0) fail_msg("lwf valid row %d is task '%s'", j, v[0]);
            if (strcmp(v[2], f[j]) != 0) fail_msg("%s: matrix says %s, lwf valid says %s for %s", methods[k], f[j], v[2], v[0]);
            double x = atof(f[j]);
            assert_true(x >= 0 && x <= 1);
        }
    }
    char sum[4200], f[5][64];
    snprintf(sum, sizeof sum, "%s/seq/summary.csv", dir);
    assert_int_equal(csv_row(sum, 0, f, 5), 4);
    assert_string_equal(f[0], "method");
    assert_int_equal(csv_row(sum, 1, f, 5), 4);
    assert_string_equal(f[0], "lwf");
    /* each method's figures from its matrix: average accuracy after the last step,
     * forgetting (best earlier accuracy minus the last) and backward transfer (the last
     * minus the accuracy just after learning) of the first task; printed to 4 places */
    for (int row = 1; row <= 2; ++row) {
        assert_int_equal(csv_row(sum, row, f, 5), 4);
        int k = strcmp(f[0], "lwf") == 0 ? 0 : 1;
        assert_string_equal(f[0], methods[k]);
        double want[3] = {(R[k][1] + R[k][2]) / 2, R[k][0] - R[k][1], R[k][1] - R[k][0]};
        for (int q = 0; q < 3; ++q)
            if (fabs(atof(f[q + 1]) - want[q]) > 1e-4)
                fail_msg("summary.csv %s column %d: %s, the matrix gives %.4f", f[0], q + 1, f[q + 1], want[q]);
    }
    /* the pictures: each a PNG file (signature checked) */
    const char *plots[3][2] = {{"matrix", "seq/lwf/matrix.csv"}, {"sequence", "seq"},
                               {"log", "seq/lwf/step2/step2.log.csv"}};
    for (int k = 0; k < 3; ++k) {
        char png[4200];
        snprintf(png, sizeof png, "%s/%s.png", dir, plots[k][0]);
        assert_int_equal(tu_sh("cd '%s' && scripts/plots.sh %s '%s/%s' '%s' > /dev/null 2>&1", tu_root(), plots[k][0],
                               dir, plots[k][1], png), 0);
        assert_int_equal(tu_sh("head -c 8 '%s' | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a'", png), 0);
    }
    /* a missing input is an error, and no picture is left */
    assert_int_not_equal(tu_sh("cd '%s' && scripts/plots.sh matrix '%s/none.csv' '%s/x.png' 2>/dev/null", tu_root(), dir, dir), 0);
    assert_int_not_equal(tu_sh("test -e '%s/x.png'", dir), 0);
    free(a);
    free(b);
    free(first);
    if (!getenv("LWF_KEEP_TMP")) tu_rmdir(dir);
    free(dir);
}

/* The schedule a step's cfg gets: warmup_batches and max_batches of dir/seq/METHOD/step2.cfg. */
static void step_schedule(const char *dir, const char *method, int *warmup, int *max)
{
    char out[64];
    assert_int_equal(tu_capture(out, sizeof out, 0, "sed -n 's/^warmup_batches=//p' '%s/seq/%s/step2.cfg'", dir, method), 0);
    *warmup = atoi(out);
    assert_int_equal(tu_capture(out, sizeof out, 0, "sed -n 's/^max_batches=//p' '%s/seq/%s/step2.cfg'", dir, method), 0);
    *max = atoi(out);
}

/* Without -e and -b, every next task gets P2's budget: LwF 1 warm-up + 2 joint epochs,
 * fine-tuning 3 joint epochs, in whole batches (N epochs of 100 images of batch 16 are
 * floor(100 N / 16) iterations: 6, 12, 18; rounded up, -U: 7, 13, 19); -e 1 gives every
 * method 1 + 1. */
static void test_default_schedule_is_p2(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *a = tu_make_task(dir, "bands", 0, 100, 16, 12, 1);
    char *b = tu_make_task(dir, "tints", 1, 100, 16, 12, 2);
    char *first = tu_write(dir, "first.cfg", first_cfg);
    const char *runs[3] = {"", "-U", "-e 1"};
    const int want[3][4] = {{6, 12, 0, 18}, {7, 13, 0, 19}, {6, 6, 6, 6}}; /* lwf warm-up, joint; finetune */
    for (int r = 0; r < 3; ++r) {
        int rc = tu_sh("cd '%s' && rm -rf '%s/seq' && scripts/sequence.sh %s -o '%s/seq' -m 'lwf finetune' -f '%s' -E 1 "
                       "'%s' '%s' > '%s/seq.log' 2>&1",
                       tu_root(), dir, runs[r], dir, first, a, b, dir);
        if (rc != 0) {
            tu_sh("tail -20 '%s/seq.log'", dir);
            fail_msg("sequence.sh %s failed (%d)", runs[r], rc);
        }
        int got[4];
        step_schedule(dir, "lwf", &got[0], &got[1]);
        step_schedule(dir, "finetune", &got[2], &got[3]);
        for (int q = 0; q < 4; ++q)
            if (got[q] != want[r][q])
                fail_msg("sequence.sh '%s': %s %s_batches=%d, want %d", runs[r], q < 2 ? "lwf" : "finetune",
                         q % 2 ? "max" : "warmup", got[q], want[r][q]);
    }
    free(a);
    free(b);
    free(first);
    if (!getenv("LWF_KEEP_TMP")) tu_rmdir(dir);
    free(dir);
}

/* The summary of a 3-task matrix that forgets, worked by hand.  R[i][j], top-1 on task j
 * after task i:
 *        a     b     c
 *   a  0.60
 *   b  0.90  0.80        (a improved after b: its best is not on the diagonal)
 *   c  0.70  0.50  1.00
 * ACC = (0.70 + 0.50 + 1.00) / 3 = 0.7333
 * forgetting = ((max(0.60, 0.90) - 0.70) + (0.80 - 0.50)) / 2 = (0.20 + 0.30) / 2 = 0.2500
 * BWT = ((0.70 - 0.60) + (0.50 - 0.80)) / 2 = (0.10 - 0.30) / 2 = -0.1000
 * Forgetting and BWT differ in size and sign, so a flipped sign, forgetting measured from
 * the diagonal, or a mean over the wrong count each change the row. */
static void test_summary_of_a_forgetting_matrix(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *m = tu_write(dir, "matrix.csv", "after,a,b,c\na,0.6000,,\nb,0.9000,0.8000,\nc,0.7000,0.5000,1.0000\n");
    char out[256];
    assert_int_equal(tu_capture(out, sizeof out, 0, "cd '%s' && scripts/seq_summary.sh lwf '%s'", tu_root(), m), 0);
    assert_string_equal(out, "lwf,0.7333,0.2500,-0.1000\n");
    /* a matrix that is not square (a task's row missing) is refused, with no row printed */
    char *cut = tu_write(dir, "cut.csv", "after,a,b,c\na,0.6000,,\nb,0.9000,0.8000,\n");
    assert_int_not_equal(tu_capture(out, sizeof out, 0, "cd '%s' && scripts/seq_summary.sh lwf '%s'", tu_root(), cut), 0);
    assert_string_equal(out, "");
    free(m);
    free(cut);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_task_sequence),
        cmocka_unit_test(test_default_schedule_is_p2),
        cmocka_unit_test(test_summary_of_a_forgetting_matrix),
    };
    return cmocka_run_group_tests_name("sequence", tests, NULL, NULL);
}
