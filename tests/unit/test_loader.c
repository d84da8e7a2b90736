/* Training images (plugin/loader.c): BMP and JPEG files whose headers claim more pixels
 * than the file holds are refused, and top-down BMPs decode.  The images are written
 * here, byte by byte or through stb_image_write; the command-line cases are in
 * tests/cli/hostile.bats. */
#include "testutil.h"
#include "internal.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bmp_top_down),
        cmocka_unit_test(test_bmp_shorter_than_its_header),
        cmocka_unit_test(test_jpeg_forged_size),
    };
    return cmocka_run_group_tests_name("loader", tests, setup, teardown);
}
