/* Detection labels (plugin/io/boxes.c): the label path, strict reading of hostile label
 * files, and the boxes' augmentation, against libdarknet's own find_replace, read_boxes and
 * correct_boxes where it has them.  (Not against fill_truth_detection, which chains them:
 * it calls find_replace in place, an overlapping sprintf AddressSanitizer stops.) */
#include "testutil.h"
#include "io/io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* libdarknet's (exported, undeclared) data.c/utils.c functions this test holds ours to */
void find_replace(char *str, char *orig, char *rep, char *output);
void correct_boxes(box_label *boxes, int n, float dx, float dy, float sx, float sy, int flip);

/* Darknet's label path of p (its chain for .png and .jpg files) */
static void darknet_label_path(const char *p, char *out)
{
    /* (Darknet calls it in place; here each step writes another buffer, which its
     * sprintf from the input needs to be defined) */
    char a[4096], b[4096];
    find_replace((char *)p, "images", "labels", a);
    find_replace(a, "JPEGImages", "labels", b);
    find_replace(b, ".jpg", ".txt", a);
    find_replace(a, ".png", ".txt", out);
}

static void test_label_path(void **state)
{
    (void)state;
    const char *paths[] = {"data/det/images/train/a1.png", "VOC2007/JPEGImages/000001.jpg", "images/images/x.png",
                           "/abs/images.v2/b.jpg", "rel/c.png"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; ++i) {
        char want[4096];
        darknet_label_path(paths[i], want);
        char *got = lwf_label_path(paths[i]);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
    }
    char *p = lwf_label_path("dir.v2/images/noext"); /* no extension: .txt added, the folder's dot kept */
    assert_string_equal(p, "dir.v2/labels/noext.txt");
    free(p);
}

/* Reads text as a label file; returns lwf_boxes_read's status, its message in msg. */
static int read_text(const char *text, int classes, lwf_boxes *b, char *msg, size_t cap)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "x.txt", text);
    lwf_err err = {{0}};
    int rc = lwf_boxes_read(path, classes, b, &err);
    snprintf(msg, cap, "%s", err.msg);
    free(path);
    tu_rmdir(dir);
    free(dir);
    return rc;
}

static void test_read_good(void **state)
{
    (void)state;
    lwf_boxes b;
    char msg[sizeof(lwf_err)];
    assert_int_equal(read_text("0 0.5 0.5 0.2 0.4\n\n  4\t0.1 0.9 1 0.05  \r\n", 5, &b, msg, sizeof msg), 0);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.box[0].cls, 0);
    assert_true(b.box[0].b.w == 0.2f && b.box[0].b.h == 0.4f);
    assert_int_equal(b.box[1].cls, 4);
    assert_true(b.box[1].b.x == 0.1f && b.box[1].b.y == 0.9f && b.box[1].b.w == 1.0f);
    assert_int_equal(read_text("", 5, &b, msg, sizeof msg), 0); /* an image with no object */
    assert_int_equal(b.n, 0);
}

static void test_read_hostile(void **state)
{
    (void)state;
    static const struct {
        const char *text, *says;
    } bad[] = {
        {"5 0.5 0.5 0.2 0.2\n", "x.txt:1: class '5' is not a whole number from 0 to 4"},
        {"0 0.5 0.5 0.2 0.2\n-1 0.5 0.5 0.2 0.2\n", "x.txt:2: class '-1'"},
        {"1.0 0.5 0.5 0.2 0.2\n", "x.txt:1: class '1.0'"},
        {"0 1.5 0.5 0.2 0.2\n", "x.txt:1: x '1.5' is not a number from 0 to 1"},
        {"0 0.5 -0.1 0.2 0.2\n", "x.txt:1: y '-0.1'"},
        {"0 0.5 0.5 0 0.2\n", "x.txt:1: a box of zero size"},
        {"0 0.5 0.5 0.2 nan\n", "x.txt:1: h 'nan'"},
        {"cat 0.5 0.5 0.2 0.2\n", "x.txt:1: class 'cat'"},
        {"0 0.5 0.5 0.2\n", "x.txt:1: a box is 'class x y w h' (5 values), got 4"},
        {"0 0.5 0.5 0.2 0.2 0.1\n", "got 6"},
        {"0,0.5,0.5,0.2,0.2\n", "got 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i) {
        lwf_boxes b;
        char msg[sizeof(lwf_err)];
        assert_int_equal(read_text(bad[i].text, 5, &b, msg, sizeof msg), -1);
        if (!strstr(msg, bad[i].says)) fail_msg("case %zu: '%s' does not say '%s'", i, msg, bad[i].says);
    }
}

static void test_read_limits(void **state)
{
    (void)state;
    /* 90 boxes are read; the 91st (and a 10,000-line file) is an error at line 91 */
    size_t cap = 10000 * 24 + 1;
    char *text = malloc(cap), *p = text;
    assert_non_null(text);
    for (int i = 0; i < 10000; ++i) p += sprintf(p, "1 0.5 0.5 0.25 0.25\n");
    lwf_boxes b;
    char msg[sizeof(lwf_err)];
    text[90 * 20] = 0;
    assert_int_equal(read_text(text, 2, &b, msg, sizeof msg), 0);
    assert_int_equal(b.n, 90);
    text[90 * 20] = '1';
    assert_int_equal(read_text(text, 2, &b, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "x.txt:91: more than 90 boxes in one image"));
    free(text);
    /* a missing file and a folder are errors naming them */
    lwf_err err = {{0}};
    assert_int_equal(lwf_boxes_read("/nonexistent/labels/a.txt", 2, &b, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/labels/a.txt: cannot open the image's label file"));
    char *dir = tu_tmpdir();
    assert_int_equal(lwf_boxes_read(dir, 2, &b, &err), -1);
    assert_non_null(strstr(err.msg, "not a regular file"));
    tu_rmdir(dir);
    free(dir);
}

/* Sorts truth rows (n, 5) by x then y, so that two orders of the same boxes compare. */
static int cmp_row(const void *a, const void *b)
{
    const float *x = a, *y = b;
    for (int k = 0; k < 5; ++k)
        if (x[k] != y[k]) return x[k] < y[k] ? -1 : 1;
    return 0;
}

static void test_place_matches_darknet(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/labels", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    char *lab = tu_write(sub, "im.txt",
                         "0 0.5 0.5 0.2 0.4\n1 0.1 0.2 0.15 0.1\n2 0.9 0.85 0.3 0.3\n1 0.98 0.5 0.1 0.5\n");
    char img[4096];
    snprintf(img, sizeof img, "%s/images/im.png", dir);
    char *lp = lwf_label_path(img);
    assert_string_equal(lp, lab);
    /* (placement, scale, flip): the identity, shifted right and down, shrunk, flipped, a
     * box pushed off the image and dropped */
    const float cases[][5] = {{0, 0, 1, 1, 0}, {0.1f, 0.05f, 1, 1, 0}, {0.2f, 0.3f, 0.5f, 0.6f, 0},
                              {0.1f, 0, 0.8f, 1, 1},  {-0.3f, 0, 1.2f, 1, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
        const float *k = cases[c];
        lwf_boxes b;
        lwf_err err = {{0}};
        assert_int_equal(lwf_boxes_read(lp, 3, &b, &err), 0);
        lwf_boxes_place(&b, k[0], k[1], k[2], k[3], (int)k[4]);
        float ours[LWF_MAX_BOXES * 5], theirs[LWF_MAX_BOXES * 5] = {0};
        lwf_boxes_truth(&b, 0, ours);
        /* Darknet's fill_truth_detection: read_boxes, correct_boxes (which takes -dx, -dy),
         * then a box narrower or lower than .01 left out */
        int nd = 0, n = 0;
        box_label *bl = read_boxes(lab, &nd);
        correct_boxes(bl, nd, -k[0], -k[1], k[2], k[3], (int)k[4]);
        for (int i = 0; i < nd; ++i) {
            if (bl[i].w < .01f || bl[i].h < .01f) continue;
            float row[5] = {bl[i].x, bl[i].y, bl[i].w, bl[i].h, (float)bl[i].id};
            memcpy(theirs + 5 * n++, row, sizeof row);
        }
        free(bl);
        assert_int_equal(b.n, n);
        qsort(ours, (size_t)n, 5 * sizeof(float), cmp_row);
        qsort(theirs, (size_t)n, 5 * sizeof(float), cmp_row);
        for (int i = 0; i < 5 * n; ++i)
            if (fabsf(ours[i] - theirs[i]) > 1e-6f) /* (float rounding of the same formulas) */
                fail_msg("case %zu value %d: ours %g, Darknet's %g", c, i, ours[i], theirs[i]);
    }
    lwf_boxes b = {1, {{2, {0.5f, 0.5f, 0.2f, 0.2f}}}};
    float t[LWF_MAX_BOXES * 5];
    lwf_boxes_truth(&b, 5, t);
    assert_true(t[4] == 7.0f && t[5] == 0 && t[9] == 0); /* class + shift, then zeros */
    free(lab);
    free(lp);
    tu_rmdir(dir);
    free(dir);
}

static void test_det_augment(void **state)
{
    (void)state;
    /* a 40x20 image, black with a white 10x10 square at (5..15, 5..15): wherever the
     * augmentation puts it, the moved box must frame the white pixels */
    image im = make_image(40, 20, 3);
    for (int c = 0; c < 3; ++c)
        for (int y = 5; y < 15; ++y)
            for (int x = 5; x < 15; ++x) im.data[c * 800 + y * 40 + x] = 1;
    lwf_augment aug = {0};
    aug.saturation = aug.exposure = aug.aspect = 1;
    aug.flip = 1;
    int flips = 0;
    for (unsigned s = 0; s < 20; ++s) {
        lwf_boxes b = {1, {{0, {10.0f / 40, 10.0f / 20, 10.0f / 40, 10.0f / 20}}}};
        lwf_rng r = lwf_rng_make(s, 1, 2);
        image out = lwf_det_image_prepare(im, &aug, 0.2f, 64, 64, &r, &b);
        assert_int_equal(b.n, 1);
        float cx = b.box[0].b.x * 64, cy = b.box[0].b.y * 64, bw = b.box[0].b.w * 64;
        flips += cx > 32;
        /* the centre pixel is white, a pixel two box-widths away along the row is not */
        int ix = (int)cx, iy = (int)cy;
        assert_true(ix >= 0 && ix < 64 && iy >= 0 && iy < 64);
        if (out.data[iy * 64 + ix] < 0.9f) fail_msg("seed %u: box centre (%d, %d) is not on the square", s, ix, iy);
        int ox = cx > 32 ? (int)(cx - 2 * bw) : (int)(cx + 2 * bw);
        if (ox >= 0 && ox < 64) assert_true(out.data[iy * 64 + ox] < 0.6f);
        free_image(out);
    }
    assert_true(flips > 2 && flips < 18); /* flipped about half the time */
    free_image(im);
}

/* Writes n images dir/images/i<k>.png (32x32, a white 8x8 square at a place of its own) and
 * their label files dir/labels/i<k>.txt (class k % 2); returns the list. */
static void write_det_set(const char *dir, int n, lwf_list *paths)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/images", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/labels", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    paths->n = n;
    paths->items = calloc((size_t)n, sizeof(char *));
    paths->line = calloc((size_t)n, sizeof(int));
    for (int k = 0; k < n; ++k) {
        image im = make_image(32, 32, 3);
        int x0 = 2 + 3 * k, y0 = 20 - 2 * k;
        for (int c = 0; c < 3; ++c)
            for (int y = y0; y < y0 + 8; ++y)
                for (int x = x0; x < x0 + 8; ++x) im.data[c * 1024 + y * 32 + x] = 1;
        snprintf(p, sizeof p, "%s/images/i%d", dir, k);
        save_image_options(im, p, PNG, 0);
        free_image(im);
        char lab[256];
        snprintf(lab, sizeof lab, "%d %g %g 0.25 0.25\n", k % 2, (x0 + 4) / 32.0, (y0 + 4) / 32.0);
        snprintf(p, sizeof p, "%s/labels", dir);
        char name[64];
        snprintf(name, sizeof name, "i%d.txt", k);
        free(tu_write(p, name, lab));
        snprintf(p, sizeof p, "%s/images/i%d.png", dir, k);
        paths->items[k] = strdup(p);
        paths->line[k] = k + 1;
    }
}

/* Batches of a detector's loader: each row's boxes frame its square, ids shifted; the same
 * seed repeats; a bad label file stops it with the file and the image named. */
static void test_det_loader(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    lwf_list paths;
    write_det_set(dir, 6, &paths);
    lwf_augment aug = {0};
    aug.saturation = aug.exposure = aug.aspect = 1;
    aug.flip = 1;
    lwf_det_data det = {0.2f, 2, 3};
    float first[4 * LWF_MAX_BOXES * 5];
    for (int run = 0; run < 2; ++run) {
        lwf_err err = {{0}};
        lwf_loader *ld = lwf_loader_start_det(&paths, &aug, &det, 48, 48, 4, 9, 0, &err);
        assert_non_null(ld);
        const lwf_batch *b = lwf_loader_next(ld, &err);
        assert_non_null(b);
        assert_non_null(b->boxes);
        for (int r = 0; r < 4; ++r) {
            const float *t = b->boxes + r * LWF_MAX_BOXES * 5;
            assert_true(t[0] > 0 && t[5] == 0);               /* one box, then zeros */
            assert_true(t[4] == (float)(b->index[r] % 2 + 3)); /* its class, shifted */
            int ix = (int)(t[0] * 48), iy = (int)(t[1] * 48);
            assert_true(b->X[r * 48 * 48 * 3 + iy * 48 + ix] > 0.9f); /* the box centre is on the square */
        }
        if (run == 0) memcpy(first, b->boxes, sizeof first);
        else assert_memory_equal(first, b->boxes, sizeof first); /* same seed, same batch */
        lwf_loader_stop(ld);
    }
    /* a label file with a bad line: the loader's error names it and the image */
    char p[4096];
    snprintf(p, sizeof p, "%s/labels", dir);
    for (int k = 0; k < 6; ++k) {
        char name[64];
        snprintf(name, sizeof name, "i%d.txt", k);
        free(tu_write(p, name, "7 0.5 0.5 0.1 0.1\n"));
    }
    lwf_err err = {{0}};
    lwf_loader *ld = lwf_loader_start_det(&paths, &aug, &det, 48, 48, 4, 9, 0, &err);
    assert_non_null(ld);
    assert_null(lwf_loader_next(ld, &err));
    assert_non_null(strstr(err.msg, ".txt:1: class '7' is not a whole number from 0 to 1"));
    assert_non_null(strstr(err.msg, "(the boxes of "));
    lwf_loader_stop(ld);
    for (int k = 0; k < 6; ++k) free(paths.items[k]);
    free(paths.items);
    free(paths.line);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_path),       cmocka_unit_test(test_read_good),
        cmocka_unit_test(test_read_hostile),     cmocka_unit_test(test_read_limits),
        cmocka_unit_test(test_place_matches_darknet), cmocka_unit_test(test_det_augment),
        cmocka_unit_test(test_det_loader),
    };
    return cmocka_run_group_tests_name("boxes", tests, NULL, NULL);
}
