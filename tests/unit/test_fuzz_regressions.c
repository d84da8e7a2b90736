/* Replays every reproducer in tests/fuzz/regressions/<harness>/ through the same calls as
 * that libFuzzer harness (tests/fuzz/fuzz_entries.h): none may crash, and the inputs of
 * the bugs fixed are refused with the right message, or now accepted and trained.  The
 * data and weights fuzzers have found nothing to keep so far: a folder for them (or any
 * other) fails until a test here replays it. */
#define _GNU_SOURCE
#include "testutil.h"
#include "../fuzz/fuzz_entries.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a reproducer must give: 1 accepted, 0 refused with `msg` in the error. */
typedef struct {
    const char *harness, *file;
    int accepted;
    const char *msg;
} expectation;

static const expectation expected[] = {
    {"cfg", "dropout-first.cfg", 0, "cannot be the first layer"},
    {"cfg", "reorg-few-channels.cfg", 0, "[reorg] stride 2 does not divide the 4x4x3 input"},
    {"cfg", "lrn-window-too-wide.cfg", 0, "more than twice its 1 input channels"},
    {"cfg", "empty-list-value.cfg", 0, "[net] steps must be a comma-separated list of integers, got ''"},
    {"cfg", "uncounted-layers-memory.cfg", 0, "the network would need more than"},
    {"cfg", "maxpool-first.cfg", 1, NULL},
    {"cfg", "avgpool-first-in-new-head.cfg", 1, NULL},
    {"cfg", "batchnorm-layer.cfg", 1, NULL},
    {"cfg", "crop-then-maxpool.cfg", 1, NULL},
    {"image", "jpeg-dht-over-256-codes.jpg", 0, "Huffman table of more than 256 codes"},
    {"image", "png-idat-longer-than-file.png", 0, "IDAT chunk longer than the file"},
    {"image", "jpeg-undefined-huffman-table.jpg", 0, "bad huffman code"},
    {0, 0, 0, 0}};

static int run_entry(const char *harness, const uint8_t *bytes, size_t size, lwf_err *err)
{
    return strcmp(harness, "cfg") == 0 ? fz_cfg_input(bytes, size, err) : fz_image_input(bytes, size, err);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays the directory of `harness`; returns how many files it held. */
static int replay(const char *harness)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regressions/%s", tu_root(), harness);
    DIR *d = opendir(dir);
    if (!d) return 0;
    char *names[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], by_name);
    for (int i = 0; i < n; ++i) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        uint8_t *bytes = tu_slurp(path, &len);
        lwf_err err = {{0}};
        int got = run_entry(harness, bytes, len, &err);
        free(bytes);
        if (got < 0) fail_msg("%s: memfd_create failed", path);
        printf("# %s/%s: %s%s%s\n", harness, names[i], got ? "accepted" : "refused", got ? "" : ": ", got ? "" : err.msg);
        for (const expectation *x = expected; x->harness; ++x) {
            if (strcmp(x->harness, harness) != 0 || strcmp(x->file, names[i]) != 0) continue;
            if (got != x->accepted)
                fail_msg("%s: %s, expected it %s", path, got ? "accepted" : err.msg, x->accepted ? "accepted" : "refused");
            if (x->msg && !strstr(err.msg, x->msg)) fail_msg("%s: error '%s' does not say '%s'", path, err.msg, x->msg);
        }
        free(names[i]);
    }
    /* every expectation names a file that exists */
    for (const expectation *x = expected; x->harness; ++x) {
        if (strcmp(x->harness, harness) != 0) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, x->file);
        FILE *fp = fopen(path, "rb");
        if (!fp) fail_msg("reproducer %s is missing", path);
        fclose(fp);
    }
    return n;
}

static void test_cfg_regressions(void **state)
{
    (void)state;
    assert_true(replay("cfg") > 0);
}

static void test_image_regressions(void **state)
{
    (void)state;
    assert_true(replay("image") > 0);
}

/* Every folder of reproducers has a test above. */
static void test_every_folder_replayed(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regressions", tu_root());
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && strcmp(e->d_name, "cfg") != 0 && strcmp(e->d_name, "image") != 0)
            fail_msg("%s/%s: no test replays these reproducers (add one with the harness's calls)", dir, e->d_name);
    closedir(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_regressions),
        cmocka_unit_test(test_every_folder_replayed),
        cmocka_unit_test(test_image_regressions),
    };
    return cmocka_run_group_tests_name("fuzz regressions", tests, NULL, NULL);
}
