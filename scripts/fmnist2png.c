/* fmnist2png: converts one Fashion-MNIST idx image/label pair (.gz) into one
 * grayscale 28x28 PNG per image, named <outdir>/<prefix><index>_<label>.png,
 * the layout Darknet's classifier expects (label found by strstr on path). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define STBI_WRITE_NO_STDIO /* we do our own checked fwrite via a callback */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#define IMAGES_MAGIC 2051u
#define LABELS_MAGIC 2049u
#define SIDE 28u
#define MAX_COUNT 100000u /* index is written with 5 digits */

/* No name is a substring of another: Darknet matches labels with strstr. */
static const char *const label_names[10] = {
    "tee", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "boot",
};

static const char *prog = "fmnist2png";

/* gzerror's text, without the "<path>: " prefix zlib puts in front of it. */
static const char *gz_msg(gzFile g, const char *path, int *zerr)
{
    const char *m = gzerror(g, zerr);
    size_t n = strlen(path);
    if (strncmp(m, path, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
        m += n + 2;
    return *zerr == Z_ERRNO ? strerror(errno) : m;
}

/* Reads exactly len bytes; on failure prints what was being read and why. */
static int read_exact(gzFile g, const char *path, void *buf, unsigned len,
                      const char *what)
{
    int n = gzread(g, buf, len);
    if (n == (int)len)
        return 0;
    int zerr = Z_OK;
    const char *zmsg = gz_msg(g, path, &zerr);
    if (n < 0 || zerr != Z_OK)
        fprintf(stderr, "%s: %s: cannot read %s: %s\n", prog, path, what,
                zmsg);
    else
        fprintf(stderr, "%s: %s: truncated: wanted %u bytes of %s, got %d\n",
                prog, path, len, what, n);
    return -1;
}

/* Checks the stream is at its end (this also makes zlib verify the CRC). */
static int expect_eof(gzFile g, const char *path)
{
    unsigned char extra;
    int n = gzread(g, &extra, 1);
    if (n == 0) {
        int zerr = Z_OK;
        const char *zmsg = gz_msg(g, path, &zerr);
        if (zerr == Z_OK)
            return 0;
        fprintf(stderr, "%s: %s: bad end of file: %s\n", prog, path, zmsg);
        return -1;
    }
    if (n > 0) {
        fprintf(stderr, "%s: %s: unexpected trailing data after last item\n",
                prog, path);
        return -1;
    }
    int zerr = Z_OK;
    const char *zmsg = gz_msg(g, path, &zerr);
    fprintf(stderr, "%s: %s: read error at end: %s\n", prog, path, zmsg);
    return -1;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static gzFile open_gz(const char *path)
{
    gzFile g = gzopen(path, "rb");
    if (!g)
        fprintf(stderr, "%s: %s: cannot open: %s\n", prog, path,
                errno ? strerror(errno) : "out of memory");
    return g;
}

static int close_gz(gzFile g, const char *path)
{
    int rc = gzclose(g);
    if (rc == Z_OK)
        return 0;
    fprintf(stderr, "%s: %s: error on close (zlib code %d)\n", prog, path, rc);
    return -1;
}

struct sink {
    FILE *f;
    int err;
};

static void sink_write(void *ctx, void *data, int size)
{
    struct sink *s = ctx;
    if (s->err || size <= 0)
        return;
    errno = 0;
    if (fwrite(data, 1, (size_t)size, s->f) != (size_t)size)
        s->err = errno ? errno : EIO;
}

/* Writes pixels as PNG to <path>.tmp, then renames it to path. */
static int write_png(const char *path, char *tmp, const unsigned char *pixels)
{
    sprintf(tmp, "%s.tmp", path); /* tmp sized by caller */
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "%s: %s: cannot create: %s\n", prog, tmp,
                strerror(errno));
        return -1;
    }
    struct sink s = {f, 0};
    int ok = stbi_write_png_to_func(sink_write, &s, (int)SIDE, (int)SIDE, 1,
                                    pixels, (int)SIDE);
    if (!ok && !s.err) {
        fprintf(stderr, "%s: %s: PNG encoder failed\n", prog, tmp);
        s.err = -1;
    }
    errno = 0;
    if (fclose(f) != 0 && !s.err)
        s.err = errno ? errno : EIO;
    if (s.err) {
        if (s.err > 0)
            fprintf(stderr, "%s: %s: write failed: %s\n", prog, tmp,
                    strerror(s.err));
        remove(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "%s: cannot rename %s to %s: %s\n", prog, tmp, path,
                strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* Reads the whole label file into a fresh buffer; sets *count. */
static unsigned char *read_labels(const char *path, uint32_t *count)
{
    gzFile g = open_gz(path);
    if (!g)
        return NULL;
    unsigned char hdr[8];
    unsigned char *labels = NULL;
    if (read_exact(g, path, hdr, sizeof hdr, "label header") != 0)
        goto fail;
    if (be32(hdr) != LABELS_MAGIC) {
        fprintf(stderr, "%s: %s: bad magic %u, expected %u (idx1 labels)\n",
                prog, path, (unsigned)be32(hdr), LABELS_MAGIC);
        goto fail;
    }
    *count = be32(hdr + 4);
    if (*count == 0 || *count > MAX_COUNT) {
        fprintf(stderr, "%s: %s: label count %u outside 1..%u\n", prog, path,
                (unsigned)*count, MAX_COUNT);
        goto fail;
    }
    labels = malloc(*count);
    if (!labels) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto fail;
    }
    if (read_exact(g, path, labels, *count, "labels") != 0)
        goto fail;
    for (uint32_t i = 0; i < *count; i++) {
        if (labels[i] > 9) {
            fprintf(stderr, "%s: %s: label %u of item %u is not in 0..9\n",
                    prog, path, labels[i], (unsigned)i);
            goto fail;
        }
    }
    if (expect_eof(g, path) != 0)
        goto fail;
    if (close_gz(g, path) != 0) {
        free(labels);
        return NULL;
    }
    return labels;
fail:
    free(labels);
    gzclose(g);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s <images.gz> <labels.gz> <outdir> <prefix>\n",
                prog);
        return 2;
    }
    const char *img_path = argv[1], *lab_path = argv[2];
    const char *outdir = argv[3], *prefix = argv[4];

    uint32_t nlabels = 0;
    unsigned char *labels = read_labels(lab_path, &nlabels);
    if (!labels)
        return 1;

    gzFile g = open_gz(img_path);
    if (!g) {
        free(labels);
        return 1;
    }
    int rc = 1;
    char *path = NULL, *tmp = NULL;
    unsigned char hdr[16], pixels[SIDE * SIDE];
    if (read_exact(g, img_path, hdr, sizeof hdr, "image header") != 0)
        goto out;
    if (be32(hdr) != IMAGES_MAGIC) {
        fprintf(stderr, "%s: %s: bad magic %u, expected %u (idx3 images)\n",
                prog, img_path, (unsigned)be32(hdr), IMAGES_MAGIC);
        goto out;
    }
    uint32_t nimages = be32(hdr + 4), rows = be32(hdr + 8), cols = be32(hdr + 12);
    if (nimages != nlabels) {
        fprintf(stderr, "%s: %s: %u images but %s has %u labels\n", prog,
                img_path, (unsigned)nimages, lab_path, (unsigned)nlabels);
        goto out;
    }
    if (rows != SIDE || cols != SIDE) {
        fprintf(stderr, "%s: %s: images are %ux%u, expected %ux%u\n", prog,
                img_path, (unsigned)rows, (unsigned)cols, SIDE, SIDE);
        goto out;
    }

    size_t dlen = strlen(outdir);
    const char *sep = (dlen > 0 && outdir[dlen - 1] == '/') ? "" : "/";
    size_t cap = dlen + strlen(prefix) + 64;
    path = malloc(cap);
    tmp = malloc(cap + 8);
    if (!path || !tmp) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    for (uint32_t i = 0; i < nimages; i++) {
        char what[48];
        snprintf(what, sizeof what, "image %u", (unsigned)i);
        if (read_exact(g, img_path, pixels, sizeof pixels, what) != 0)
            goto out;
        snprintf(path, cap, "%s%s%s%05u_%s.png", outdir, sep, prefix,
                 (unsigned)i, label_names[labels[i]]);
        if (write_png(path, tmp, pixels) != 0)
            goto out;
    }
    if (expect_eof(g, img_path) != 0)
        goto out;
    rc = 0;
out:
    if (rc == 0) {
        if (close_gz(g, img_path) != 0)
            rc = 1;
    } else {
        gzclose(g);
    }
    if (rc == 0)
        fprintf(stderr, "%s: wrote %u images to %s\n", prog, (unsigned)nimages,
                outdir);
    free(path);
    free(tmp);
    free(labels);
    return rc;
}
