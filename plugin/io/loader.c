/* Training images: decoding with stb_image (never OpenCV, never a shell), and a background
 * thread that loads the next batch (augmented by augment.c) while the current one trains. */
#define _POSIX_C_SOURCE 200809L
#include "io/io.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stb/stb_image.h>

/* Refuse images whose decoded size would be absurd (a forged header); the fuzz build
 * lowers it so a small file cannot take seconds to decode there. */
#ifndef LWF_MAX_PIXELS
#define LWF_MAX_PIXELS (1LL << 26)
#endif
/* Largest image file read (bytes). */
#define LWF_MAX_IMAGE_FILE (1LL << 28)

/* Debian's stb_image (2.27) writes past its Huffman tables when a JPEG DHT segment
 * declares more than 256 codes (stb issue #1289, fixed upstream in 2.28; found by
 * tests/fuzz/fuzz_image).  Whether the DHT segment whose length field is at b[at] is
 * safe: its tables are read the way stb reads them, until its length is used up. */
static int jpeg_dht_ok(const unsigned char *b, size_t n, size_t at)
{
    if (at + 2 > n) return 1;
    long left = ((long)b[at] << 8 | b[at + 1]) - 2;
    at += 2;
    while (left > 0 && at < n) {
        long codes = 0;
        for (size_t i = at + 1; i < at + 17 && i < n; ++i) codes += b[i];
        if (codes > 256) return 0;
        left -= 17 + codes;
        at += 17 + (size_t)codes;
    }
    return 1; /* past the end stb reads zeros: empty tables */
}

/* Whether every DHT segment stb could reach in this JPEG is safe.  Up to the frame
 * header, segments are walked as stb walks them (it skips bytes between segments);
 * after it, stb finds markers inside and after entropy-coded data, so every FF C4 there
 * is checked (valid entropy-coded data never holds one). */
static int jpeg_tables_ok(const unsigned char *b, size_t n)
{
    size_t at = 0;
    while (at < n && b[at] == 0xFF) ++at;
    ++at; /* SOI */
    for (;;) {
        while (at < n && b[at] != 0xFF) ++at;
        while (at < n && b[at] == 0xFF) ++at;
        if (at + 2 >= n) return 1;
        int m = b[at++];
        if (m == 0xC4 && !jpeg_dht_ok(b, n, at)) return 0;
        int segment = m == 0xC4 || m == 0xDB || m == 0xDD || (m >= 0xE0 && m <= 0xEF) || m == 0xFE;
        int frame = m == 0xC0 || m == 0xC1 || m == 0xC2;
        if (!segment && !frame) return 1; /* stb refuses any other marker here */
        at += (size_t)b[at] << 8 | b[at + 1];
        if (frame) break;
    }
    for (size_t i = at; i + 1 < n; ++i)
        if (b[i] == 0xFF && b[i + 1] == 0xC4 && !jpeg_dht_ok(b, n, i + 2)) return 0;
    return 1;
}

/* Debian's stb_image also reads far out of bounds when a scan uses a Huffman table the
 * file never defined (found by tests/fuzz/fuzz_image).  A copy of the file with a DHT
 * segment right after SOI giving all eight tables a one-code default: a valid file
 * redefines every table before using it, so it decodes exactly as before; a file that
 * does not gets "bad huffman code" instead.  NULL if out of memory. */
static unsigned char *jpeg_with_default_tables(const unsigned char *b, size_t n, size_t *out_len)
{
    size_t soi = 0;
    while (soi < n && b[soi] == 0xFF) ++soi;
    ++soi; /* past D8: image_format checked it */
    enum { TABLES = 8, TABLE_BYTES = 1 + 16 + 1, SEGMENT = 4 + TABLES * TABLE_BYTES };
    unsigned char *o = malloc(n + SEGMENT);
    if (!o) return NULL;
    memcpy(o, b, soi);
    unsigned char *d = o + soi;
    d[0] = 0xFF;
    d[1] = 0xC4;
    d[2] = (SEGMENT - 2) >> 8;
    d[3] = (SEGMENT - 2) & 0xFF;
    for (int t = 0; t < TABLES; ++t) {
        unsigned char *tab = d + 4 + t * TABLE_BYTES;
        memset(tab, 0, TABLE_BYTES);
        tab[0] = (unsigned char)((t / 4) << 4 | (t % 4)); /* class (DC, AC) and id */
        tab[1] = 1;                                       /* one code of length 1, symbol 0 */
    }
    memcpy(d + SEGMENT, b + soi, n - soi);
    *out_len = n + SEGMENT;
    return o;
}

/* Debian's stb_image grows its PNG data buffer to each IDAT chunk's declared length
 * before finding the data missing: a 200-byte file asked for 2 GiB (found by
 * tests/fuzz/fuzz_image).  Whether every IDAT chunk, walked as stb walks chunks (length,
 * type, data, CRC), fits in the file; stb would refuse the others anyway. */
static int png_chunks_ok(const unsigned char *b, size_t n)
{
    for (size_t at = 8; at + 8 <= n;) {
        size_t len = (size_t)b[at] << 24 | (size_t)b[at + 1] << 16 | (size_t)b[at + 2] << 8 | b[at + 3];
        if (memcmp(b + at + 4, "IDAT", 4) == 0 && len > n - at - 8) return 0;
        at += 12 + len;
    }
    return 1;
}

/* little-endian 32-bit fields of a BMP header, unsigned and two's-complement signed */
static unsigned long le32(const unsigned char *b)
{
    return (unsigned long)b[0] | (unsigned long)b[1] << 8 | (unsigned long)b[2] << 16 | (unsigned long)b[3] << 24;
}

static long long le32s(const unsigned char *b)
{
    unsigned long v = le32(b);
    return v < 0x80000000UL ? (long long)v : (long long)v - 0x100000000LL;
}

/* stb_image reads zeros past the end of a BMP: a file cut after its header, or inside its
 * pixels, decodes as a (partly) black image, and a 64-byte file claiming 8000x8000 as a
 * 192 MB one.  NULL if the BMP's pixel rows fit in the file, else what is wrong.  Only
 * uncompressed BMPs (the core header, or compression 0 or 3: plain rows, as stb reads
 * them) are measured: stb refuses the RLE and embedded-JPEG/PNG kinds, and a header it
 * does not know, itself.  Rows are padded to 4 bytes; the last row's padding holds no
 * pixel and is not required.  A negative height is a top-down BMP. */
static const char *bmp_size_problem(const unsigned char *b, size_t n)
{
    if (n < 18) return "corrupt BMP (cut inside its header)";
    unsigned long off = le32(b + 10), hsz = le32(b + 14);
    if (hsz != 12 && hsz != 40 && hsz != 56 && hsz != 108 && hsz != 124) return NULL; /* stb: "unknown BMP" */
    if (n < 14 + hsz) return "corrupt BMP (cut inside its header)";
    long long w, h;
    unsigned bpp;
    if (hsz == 12) {
        w = b[18] | b[19] << 8;
        h = b[20] | b[21] << 8;
        bpp = b[24] | (unsigned)b[25] << 8;
    } else {
        unsigned long comp = le32(b + 30);
        if (comp != 0 && comp != 3) return NULL; /* stb refuses the compressed kinds */
        w = le32s(b + 18);
        h = le32s(b + 22);
        bpp = b[28] | (unsigned)b[29] << 8;
    }
    if (h < 0) h = -h;
    if (w < 1 || h < 1 || w * h > LWF_MAX_PIXELS) return NULL; /* refused by the size check */
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32) return NULL; /* stb: bad bpp */
    unsigned long long row = ((unsigned long long)w * bpp + 7) / 8, stride = (row + 3) / 4 * 4;
    unsigned long long need = (unsigned long long)off + stride * (unsigned long long)(h - 1) + row;
    return need > n ? "corrupt BMP (pixel data shorter than the header says)" : NULL;
}

/* Most pixels a JPEG of n bytes can hold.  Every 8x8 block of the fullest-sampled
 * component codes at least its DC difference, one Huffman code of at least 1 bit (a
 * progressive file codes its AC coefficients with end-of-band runs covering up to 32767
 * blocks, nearly free; stb decodes no arithmetic-coded JPEG): at least 1 bit per 64
 * pixels, so at most 512 pixels per byte of the file.  Real files need far more
 * (libjpeg's standard tables: at least 4 bits per luma block).  A larger claim is a
 * forged or cut file, which stb would decode at full size from zero bits. */
#define LWF_JPEG_MAX_PIXELS_PER_BYTE 512LL

/* The format of an image file by its first bytes: JPEG, PNG and BMP, the formats image
 * datasets use, or NULL.  stb_image's other decoders (GIF, PSD, PIC, PNM, HDR, TGA, the
 * last one guessed without a signature) have known memory-safety bugs in Debian's
 * version and are not offered to hostile files. */
static const char *image_format(const unsigned char *b, size_t n)
{
    size_t ff = 0;
    while (ff < n && b[ff] == 0xFF) ++ff;
    if (ff > 0 && ff < n && b[ff] == 0xD8) return "JPEG";
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return "PNG";
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
    return NULL;
}

/* The whole file in memory (malloc'd), or NULL with err set. */
static unsigned char *read_image_file(const char *path, size_t *len, lwf_err *err)
{
    /* a FIFO in a list would block fopen forever, a folder or device reads as garbage */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        lwf_fail(err, "%s: not a regular file", path);
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        lwf_fail(err, "%s: cannot open image: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap) break;
        if ((long long)cap >= LWF_MAX_IMAGE_FILE) {
            lwf_fail(err, "%s: larger than %lld MiB: not read as an image", path, LWF_MAX_IMAGE_FILE >> 20);
            free(buf);
            fclose(fp);
            return NULL;
        }
        unsigned char *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf) lwf_fail(err, "%s: out of memory reading the image", path);
    else if (bad) {
        lwf_fail(err, "%s: read error", path);
        free(buf);
        buf = NULL;
    }
    *len = n;
    return buf;
}

int lwf_image_load(const char *path, image *out, lwf_err *err)
{
    size_t len = 0;
    unsigned char *bytes = read_image_file(path, &len, err);
    if (!bytes) return -1;
    const char *fmt = image_format(bytes, len), *bmp_problem = NULL;
    int jpeg = fmt && strcmp(fmt, "JPEG") == 0, png = fmt && strcmp(fmt, "PNG") == 0;
    int bmp = fmt && strcmp(fmt, "BMP") == 0;
    size_t file_len = len;
    int w = 0, h = 0, c = 0, rc = 0;
    if (!fmt) rc = lwf_fail(err, "%s: not a JPEG, PNG or BMP image", path);
    else if (jpeg && !jpeg_tables_ok(bytes, len))
        rc = lwf_fail(err, "%s: corrupt JPEG (a Huffman table of more than 256 codes)", path);
    else if (png && !png_chunks_ok(bytes, len))
        rc = lwf_fail(err, "%s: corrupt PNG (an IDAT chunk longer than the file)", path);
    else if (bmp && (bmp_problem = bmp_size_problem(bytes, len)))
        rc = lwf_fail(err, "%s: %s", path, bmp_problem);
    else if (jpeg) {
        unsigned char *safe = jpeg_with_default_tables(bytes, len, &len);
        free(bytes);
        bytes = safe;
        if (!bytes) rc = lwf_fail(err, "%s: out of memory reading the image", path);
    }
    if (!rc && (len > INT_MAX || !stbi_info_from_memory(bytes, (int)len, &w, &h, &c)))
        rc = lwf_fail(err, "%s: not a readable %s image (%s)", path, fmt, stbi_failure_reason());
    /* a top-down BMP: stbi_info gives its header's negative height, stbi_load decodes it */
    if (!rc && bmp && h < 0 && h > INT_MIN) h = -h;
    if (!rc && (w < 1 || h < 1 || (long long)w * h > LWF_MAX_PIXELS))
        rc = lwf_fail(err, "%s: image size %dx%d out of range", path, w, h);
    else if (!rc && jpeg && (long long)w * h > LWF_JPEG_MAX_PIXELS_PER_BYTE * (long long)file_len)
        rc = lwf_fail(err, "%s: corrupt JPEG (%dx%d pixels cannot be coded in %zu bytes: a forged size or a cut file)",
                      path, w, h, file_len);
    unsigned char *px = rc ? NULL : stbi_load_from_memory(bytes, (int)len, &w, &h, &c, 3);
    free(bytes);
    if (rc) return -1;
    if (!px) return lwf_fail(err, "%s: cannot decode image (%s)", path, stbi_failure_reason());
    image im = make_image(w, h, 3);
    if (!im.data) {
        stbi_image_free(px);
        return lwf_fail(err, "%s: out of memory for a %dx%d image", path, w, h);
    }
    /* stb: interleaved HWC bytes; Darknet: planar CHW floats in [0, 1] */
    for (int k = 0; k < 3; ++k)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) im.data[k * w * h + y * w + x] = px[(y * w + x) * 3 + k] / 255.0f;
    stbi_image_free(px);
    *out = im;
    return 0;
}

int lwf_check_image_input(const lwf_model *m, lwf_err *err)
{
    if (m->net->c == 3) return 0;
    return lwf_fail(err, "%s: [net] channels=%d, but images are decoded as RGB (3 channels): a cfg that trains or "
                         "runs on images needs channels=3",
                    m->cfg, m->net->c);
}

struct lwf_loader {
    const lwf_list *paths;
    lwf_augment aug;
    int on, w, h, n;
    int det;              /* 1: a detector's batches (boxes, Darknet's detection jitter) */
    float jitter;         /* detection: [yolo] jitter */
    int classes, shift;   /* detection: the list's class count, added to its ids */
    unsigned long long seed;
    long long next;       /* batch id loaded (or being loaded) into buf[1 - cur] */
    lwf_batch buf[2];
    int cur;
    pthread_t th;
    int running;
    int fail;             /* set by the thread */
    lwf_err err;
    int *perm;            /* (N) order of perm_epoch */
    long long perm_epoch;
};

static void make_perm(lwf_loader *ld, long long epoch)
{
    int N = ld->paths->n;
    for (int i = 0; i < N; ++i) ld->perm[i] = i;
    lwf_rng r = lwf_rng_make(ld->seed, 0x5045524dULL, (unsigned long long)epoch);
    for (int i = N - 1; i > 0; --i) {
        int j = (int)(lwf_rng_next(&r) % (unsigned long long)(i + 1));
        int t = ld->perm[i];
        ld->perm[i] = ld->perm[j];
        ld->perm[j] = t;
    }
    ld->perm_epoch = epoch;
}

/* A detector's input from image idx: its boxes read (ids shifted) and the image and boxes
 * augmented together into truth (LWF_MAX_BOXES, 5); an empty image and ld->err on a bad
 * label file. */
static image prepare_det(lwf_loader *ld, image im, int idx, lwf_rng *rng, float *truth)
{
    image none = {0, 0, 0, NULL};
    const char *path = ld->paths->items[idx];
    char *lp = lwf_label_path(path);
    if (!lp) return lwf_fail(&ld->err, "out of memory"), none;
    lwf_boxes bs;
    lwf_err e;
    int rc = lwf_boxes_read(lp, ld->classes, &bs, &e);
    free(lp);
    if (rc) return lwf_fail(&ld->err, "%s (the boxes of %s)", e.msg, path), none;
    image x = lwf_det_image_prepare(im, &ld->aug, ld->jitter, ld->w, ld->h, rng, &bs);
    lwf_boxes_truth(&bs, ld->shift, truth);
    return x;
}

static void *load_batch(void *arg)
{
    lwf_loader *ld = arg;
    lwf_batch *b = &ld->buf[1 - ld->cur];
    int N = ld->paths->n, inputs = ld->w * ld->h * 3;
    for (int r = 0; r < ld->n; ++r) {
        long long g = ld->next * ld->n + r;
        long long e = g / N;
        if (e != ld->perm_epoch) make_perm(ld, e);
        int idx = ld->perm[g % N];
        b->index[r] = idx;
        image im;
        if (lwf_image_load(ld->paths->items[idx], &im, &ld->err)) {
            ld->fail = 1;
            return NULL;
        }
        lwf_rng rng = lwf_rng_make(ld->seed, 0x41554721ULL, (unsigned long long)g);
        image x = ld->det ? prepare_det(ld, im, idx, &rng, b->boxes + (size_t)r * LWF_MAX_BOXES * 5)
                          : lwf_image_prepare(im, &ld->aug, ld->on, ld->w, ld->h, &rng);
        free_image(im);
        if (!x.data) {
            ld->fail = 1;
            return NULL;
        }
        memcpy(b->X + (size_t)r * inputs, x.data, (size_t)inputs * sizeof(float));
        free_image(x);
    }
    return NULL;
}

static int launch(lwf_loader *ld, lwf_err *err)
{
    ld->fail = 0;
    if (pthread_create(&ld->th, NULL, load_batch, ld) != 0) return lwf_fail(err, "cannot start a loader thread");
    ld->running = 1;
    return 0;
}

/* The loader of either kind: det = NULL for a classifier's. */
static lwf_loader *start(const lwf_list *paths, const lwf_augment *aug, const lwf_det_data *det, int w, int h,
                         int batch, unsigned long long seed, long long first, lwf_err *err)
{
    lwf_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return lwf_fail(err, "out of memory"), NULL;
    if (det) {
        ld->det = 1;
        ld->jitter = det->jitter;
        ld->classes = det->classes;
        ld->shift = det->shift;
    }
    ld->paths = paths;
    ld->aug = *aug;
    ld->on = lwf_augment_is_on(aug, w);
    ld->w = w;
    ld->h = h;
    ld->n = batch;
    ld->seed = seed;
    ld->next = first;
    ld->perm_epoch = -1;
    ld->perm = malloc((size_t)paths->n * sizeof(int));
    for (int i = 0; i < 2; ++i) {
        ld->buf[i].n = batch;
        ld->buf[i].index = calloc((size_t)batch, sizeof(int));
        ld->buf[i].X = calloc((size_t)batch * w * h * 3, sizeof(float));
        if (det) ld->buf[i].boxes = calloc((size_t)batch * LWF_MAX_BOXES * 5, sizeof(float));
    }
    int boxes_ok = !det || (ld->buf[0].boxes && ld->buf[1].boxes);
    if (!ld->perm || !ld->buf[0].index || !ld->buf[1].index || !ld->buf[0].X || !ld->buf[1].X || !boxes_ok ||
        launch(ld, err)) {
        lwf_loader_stop(ld);
        if (!err || !err->msg[0]) lwf_fail(err, "out of memory for the loader");
        return NULL;
    }
    return ld;
}

lwf_loader *lwf_loader_start(const lwf_list *paths, const lwf_augment *aug, int w, int h, int batch,
                             unsigned long long seed, long long first, lwf_err *err)
{
    return start(paths, aug, NULL, w, h, batch, seed, first, err);
}

lwf_loader *lwf_loader_start_det(const lwf_list *paths, const lwf_augment *aug, const lwf_det_data *det, int w, int h,
                                 int batch, unsigned long long seed, long long first, lwf_err *err)
{
    return start(paths, aug, det, w, h, batch, seed, first, err);
}

const lwf_batch *lwf_loader_next(lwf_loader *ld, lwf_err *err)
{
    if (ld->running) {
        pthread_join(ld->th, NULL);
        ld->running = 0;
    }
    if (ld->fail) {
        if (err) *err = ld->err;
        return NULL;
    }
    ld->cur = 1 - ld->cur;
    ld->next++;
    if (launch(ld, err)) return NULL;
    return &ld->buf[ld->cur];
}

void lwf_loader_stop(lwf_loader *ld)
{
    if (!ld) return;
    if (ld->running) pthread_join(ld->th, NULL);
    for (int i = 0; i < 2; ++i) {
        free(ld->buf[i].index);
        free(ld->buf[i].X);
        free(ld->buf[i].boxes);
    }
    free(ld->perm);
    free(ld);
}
