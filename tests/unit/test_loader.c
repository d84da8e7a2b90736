/* Training images (plugin/io/loader.c): BMP and JPEG files whose headers claim more pixels
 * than the file holds are refused, top-down BMPs decode, and the augmentation places,
 * flips and distorts crops as Darknet's classifier loader does.  The images are written
 * here, byte by byte or through stb_image_write; the command-line cases are in
 * tests/cli/hostile.bats. */
#include "testutil.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stb/stb_image_write.h>

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmdir(dir);
    free(dir);
    return 0;
}

/* Writes n bytes to dir/name; returns the path (static buffer). */
static const char *put(const char *name, const unsigned char *b, size_t n)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(b, 1, n, fp) != n || fclose(fp) != 0) fail_msg("cannot write %s", path);
    return path;
}

/* Loads path: 0 and the image, or -1 and the error in err. */
static int load(const char *path, image *im, lwf_err *err)
{
    memset(err, 0, sizeof *err);
    return lwf_image_load(path, im, err);
}

/* Asserts path is refused with an error naming it and holding msg. */
static void assert_refused(const char *path, const char *msg)
{
    image im;
    lwf_err err;
    if (load(path, &im, &err) == 0) {
        int w = im.w, h = im.h;
        free_image(im);
        fail_msg("%s: decoded as a %dx%d image, expected '%s'", path, w, h, msg);
    }
    if (!strstr(err.msg, path) || !strstr(err.msg, msg)) fail_msg("error '%s' does not name %s and say '%s'", err.msg, path, msg);
}

static unsigned char pattern(int x, int y, int k)
{
    return (unsigned char)((x * 29 + y * 13 + k * 71) & 0xff);
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, unsigned long v)
{
    put16(p, (unsigned)(v & 0xffff));
    put16(p + 2, (unsigned)(v >> 16));
}

/* An uncompressed 24-bit BMP of w x h showing pattern(), rows padded to 4 bytes, bottom-up
 * (the usual order) or top-down (a negative height in the header); malloc'd, size in *n.
 * claim_w/claim_h (if > 0): the size the header states instead (a forged header). */
static unsigned char *make_bmp(int w, int h, int topdown, int claim_w, int claim_h, size_t *n)
{
    int stride = (w * 3 + 3) / 4 * 4;
    *n = 54 + (size_t)stride * h;
    unsigned char *b = calloc(*n, 1);
    b[0] = 'B';
    b[1] = 'M';
    put32(b + 2, (unsigned long)*n);
    put32(b + 10, 54);                     /* bfOffBits */
    put32(b + 14, 40);                     /* BITMAPINFOHEADER */
    put32(b + 18, (unsigned long)(claim_w > 0 ? claim_w : w));
    long hh = claim_h > 0 ? claim_h : h;
    put32(b + 22, (unsigned long)(topdown ? -hh : hh) & 0xffffffffUL);
    put16(b + 26, 1);                      /* planes */
    put16(b + 28, 24);                     /* bits per pixel */
    put32(b + 34, (unsigned long)stride * h);
    for (int r = 0; r < h; ++r) {
        int y = topdown ? r : h - 1 - r;
        for (int x = 0; x < w; ++x)
            for (int k = 0; k < 3; ++k) b[54 + r * stride + x * 3 + (2 - k)] = pattern(x, y, k); /* BGR */
    }
    return b;
}

/* Asserts im is the w x h pattern(). */
static void assert_pattern(image im, int w, int h, const char *what)
{
    assert_int_equal(im.w, w);
    assert_int_equal(im.h, h);
    for (int k = 0; k < 3; ++k)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                if (im.data[k * w * h + y * w + x] != pattern(x, y, k) / 255.0f)
                    fail_msg("%s: pixel (%d, %d, %d) is %g, expected %g", what, x, y, k, im.data[k * w * h + y * w + x],
                             pattern(x, y, k) / 255.0f);
}

/* A BMP stored top-down (negative height) decodes to the same picture as its bottom-up
 * twin: stbi_info reports the header's negative height, which was once refused as
 * "image size 5x-7 out of range". */
static void test_bmp_top_down(void **state)
{
    (void)state;
    for (int topdown = 0; topdown <= 1; ++topdown) {
        size_t n;
        unsigned char *b = make_bmp(5, 7, topdown, 0, 0, &n);
        const char *path = put(topdown ? "topdown.bmp" : "bottomup.bmp", b, n);
        image im;
        lwf_err err;
        if (load(path, &im, &err)) fail_msg("%s", err.msg);
        assert_pattern(im, 5, 7, path);
        free_image(im);
        free(b);
    }
}

/* A BMP whose pixel rows do not fit in the file: stb_image read zeros past its end, so a
 * file cut after its header decoded as a black image, one cut inside its pixels as a
 * partly black one, and a 64-byte file claiming 8000x8000 as a 192 MB one, all trained
 * on.  Each is refused now; a file missing only its last row's padding is complete. */
static void test_bmp_shorter_than_its_header(void **state)
{
    (void)state;
    const char *msg = "corrupt BMP (pixel data shorter than the header says)";
    size_t n;
    unsigned char *b = make_bmp(5, 7, 0, 0, 0, &n); /* rows of 15 bytes, padded to 16 */
    assert_refused(put("header-only.bmp", b, 54), msg);
    assert_refused(put("cut-in-pixels.bmp", b, 54 + 16 * 3 + 5), msg);
    assert_refused(put("cut-last-pixel.bmp", b, n - 2), msg);
    image im;
    lwf_err err;
    if (load(put("no-last-padding.bmp", b, n - 1), &im, &err)) fail_msg("%s", err.msg);
    assert_pattern(im, 5, 7, "no-last-padding.bmp");
    free_image(im);
    free(b);
    /* top-down: the height's absolute value counts */
    b = make_bmp(5, 7, 1, 0, 0, &n);
    assert_refused(put("topdown-cut.bmp", b, n - 20), msg);
    free(b);
    /* the header of an 8x8 image claiming 8000x8000, cut to 64 bytes */
    b = make_bmp(8, 8, 0, 8000, 8000, &n);
    assert_refused(put("forged.bmp", b, 64), msg);
    free(b);
    b = make_bmp(8, 8, 1, 8000, 8000, &n);
    assert_refused(put("forged-topdown.bmp", b, 64), msg);
    free(b);
    /* cut inside the header itself */
    b = make_bmp(8, 8, 0, 0, 0, &n);
    assert_refused(put("cut-in-header.bmp", b, 30), "corrupt BMP (cut inside its header)");
    free(b);
}

typedef struct {
    unsigned char *b;
    size_t n, cap;
} membuf;

static void mem_write(void *ctx, void *bytes, int size)
{
    membuf *m = ctx;
    if (m->n + (size_t)size > m->cap) {
        m->cap = (m->n + (size_t)size) * 2;
        m->b = realloc(m->b, m->cap);
        assert_non_null(m->b);
    }
    memcpy(m->b + m->n, bytes, (size_t)size);
    m->n += (size_t)size;
}

/* A JPEG of side x side through stb_image_write: the pattern, or one flat grey. */
static membuf make_jpeg(int side, int flat, int quality)
{
    unsigned char *px = malloc((size_t)side * side * 3);
    for (int y = 0; y < side; ++y)
        for (int x = 0; x < side; ++x)
            for (int k = 0; k < 3; ++k) px[(y * side + x) * 3 + k] = flat ? 128 : pattern(x, y, k);
    membuf m = {0};
    assert_true(stbi_write_jpg_to_func(mem_write, &m, side, side, 3, px, quality));
    free(px);
    return m;
}

/* A JPEG whose frame header claims 8000x8000 (the 1.4 KB file of a 32x32 image): stb
 * decoded it at full size from zero bits and it trained.  No Huffman-coded JPEG holds more
 * than 512 pixels per byte (loader.c: LWF_JPEG_MAX_PIXELS_PER_BYTE); real files are far
 * below, even a flat grey one at quality 1. */
static void test_jpeg_forged_size(void **state)
{
    (void)state;
    membuf m = make_jpeg(32, 0, 90);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < m.n && !sof; ++i)
        if (m.b[i] == 0xFF && m.b[i + 1] == 0xC0) sof = i;
    assert_true(sof > 0);
    image im;
    lwf_err err;
    if (load(put("small.jpg", m.b, m.n), &im, &err)) fail_msg("%s", err.msg); /* guard: the file itself is fine */
    assert_int_equal(im.w, 32);
    free_image(im);
    /* SOF0: FF C0, length (2), precision (1), height (2), width (2) */
    m.b[sof + 5] = m.b[sof + 7] = 8000 >> 8;
    m.b[sof + 6] = m.b[sof + 8] = 8000 & 0xFF;
    assert_refused(put("forged.jpg", m.b, m.n), "corrupt JPEG (8000x8000 pixels cannot be coded in");
    free(m.b);
    /* the bound is generous: a flat 1024x1024 grey at quality 1 is accepted */
    m = make_jpeg(1024, 1, 1);
    printf("# a flat 1024x1024 JPEG at quality 1: %zu bytes, %.0f pixels per byte (bound 512)\n", m.n,
           1024.0 * 1024 / (double)m.n);
    if (load(put("flat.jpg", m.b, m.n), &im, &err)) fail_msg("%s", err.msg);
    assert_int_equal(im.w, 1024);
    free_image(im);
    free(m.b);
}

/* A neutral augmentation: no flip, angle, aspect or colour change, crops of min..max. */
static lwf_augment neutral(int min, int max)
{
    lwf_augment a = {0};
    a.min = min;
    a.max = max;
    a.aspect = a.saturation = a.exposure = 1;
    return a;
}

/* Centroid (x, y) of the non-black pixels of channel 0. */
static void centroid(image im, double *cx, double *cy)
{
    double s = 0, sx = 0, sy = 0;
    for (int y = 0; y < im.h; ++y)
        for (int x = 0; x < im.w; ++x) {
            double v = im.data[y * im.w + x];
            s += v;
            sx += v * x;
            sy += v * y;
        }
    assert_true(s > 0);
    *cx = sx / s;
    *cy = sy / s;
}

/* A crop smaller than the input (cfg/darknet19-lwf.cfg: min_crop=128 for a 256 input): the
 * scaled image is placed anywhere in the input, as Darknet's random_augment_args draws
 * rand_uniform(-dx, dx) whatever dx's sign.  It was pinned to one corner: every seed gave
 * the same crop. */
static void test_small_crop_placement_varies(void **state)
{
    (void)state;
    image im = make_image(64, 64, 3);
    for (int i = 0; i < 64 * 64 * 3; ++i) im.data[i] = 1; /* white: the crop outside it is black */
    lwf_augment a = neutral(16, 16); /* scaled to 16x16 inside a 32x32 input */
    assert_true(lwf_augment_is_on(&a, 32));
    double lo_x = 1e9, hi_x = -1e9, lo_y = 1e9, hi_y = -1e9;
    for (unsigned long long seed = 1; seed <= 16; ++seed) {
        lwf_rng rng = lwf_rng_make(seed, 1, 2);
        image c = lwf_image_prepare(im, &a, 1, 32, 32, &rng);
        double cx, cy;
        centroid(c, &cx, &cy);
        lo_x = fmin(lo_x, cx);
        hi_x = fmax(hi_x, cx);
        lo_y = fmin(lo_y, cy);
        hi_y = fmax(hi_y, cy);
        free_image(c);
    }
    printf("# 16 seeds: the 16x16 image's centre spans x %.1f..%.1f, y %.1f..%.1f in the 32x32 input\n", lo_x, hi_x,
           lo_y, hi_y);
    /* the centre moves by up to +-8 pixels around 15.5: over 16 seeds it spans well over 4 */
    assert_true(hi_x - lo_x > 4 && hi_y - lo_y > 4);
    assert_true(lo_x > 7 - 1e-3 && hi_x < 24 + 1e-3 && lo_y > 7 - 1e-3 && hi_y < 24 + 1e-3);
    free_image(im);
}

/* 1 if a and b hold the same floats. */
static int same(image a, image b)
{
    return a.w == b.w && a.h == b.h && a.c == b.c && memcmp(a.data, b.data, (size_t)a.w * a.h * a.c * sizeof(float)) == 0;
}

/* center=1: Darknet centre-crops, then flips, then distorts hue/saturation/exposure as
 * with a random crop.  The distortion was skipped: every seed gave the plain centre crop. */
static void test_center_crop_flips_and_distorts(void **state)
{
    (void)state;
    image im = make_image(40, 30, 3);
    unsigned st = 3;
    tu_fill(im.data, (size_t)40 * 30 * 3, &st, 0.1f, 0.9f);
    image plain = center_crop_image(im, 16, 16);
    /* off: the plain centre crop, whatever the options */
    lwf_augment a = neutral(16, 16);
    a.center = 1;
    a.exposure = 2;
    lwf_rng rng = lwf_rng_make(1, 0, 0);
    image c = lwf_image_prepare(im, &a, 0, 16, 16, &rng);
    assert_true(same(c, plain));
    free_image(c);
    /* exposure=2: distorted for every seed, differently across seeds */
    assert_true(lwf_augment_is_on(&a, 16));
    rng = lwf_rng_make(1, 0, 0);
    image first = lwf_image_prepare(im, &a, 1, 16, 16, &rng);
    int differ_from_first = 0;
    for (unsigned long long seed = 1; seed <= 8; ++seed) {
        rng = lwf_rng_make(seed, 0, 0);
        c = lwf_image_prepare(im, &a, 1, 16, 16, &rng);
        if (same(c, plain)) fail_msg("seed %llu: center=1 with exposure=2 gave the undistorted centre crop", seed);
        differ_from_first += !same(c, first);
        free_image(c);
    }
    assert_true(differ_from_first >= 6);
    free_image(first);
    /* flip=1 and no colour change: each crop is the centre crop or its mirror, both occur */
    a = neutral(16, 16);
    a.center = a.flip = 1;
    image mirror = center_crop_image(im, 16, 16);
    flip_image(mirror);
    int plain_n = 0, mirror_n = 0;
    for (unsigned long long seed = 1; seed <= 16; ++seed) {
        rng = lwf_rng_make(seed, 0, 0);
        c = lwf_image_prepare(im, &a, 1, 16, 16, &rng);
        plain_n += same(c, plain);
        mirror_n += same(c, mirror);
        free_image(c);
    }
    assert_int_equal(plain_n + mirror_n, 16);
    assert_true(plain_n > 0 && mirror_n > 0);
    free_image(mirror);
    free_image(plain);
    free_image(im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bmp_top_down),
        cmocka_unit_test(test_bmp_shorter_than_its_header),
        cmocka_unit_test(test_jpeg_forged_size),
        cmocka_unit_test(test_small_crop_placement_varies),
        cmocka_unit_test(test_center_crop_flips_and_distorts),
    };
    return cmocka_run_group_tests_name("loader", tests, setup, teardown);
}
