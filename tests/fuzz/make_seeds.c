/* Writes the seed corpus files that cannot be copied from the repository: valid .weights
 * for the weights harness's cfg (old part, whole model, and an old 0.1 header), and small
 * images in each format libdarknet can save, one of them a downscaled real photo.
 * Usage: make_seeds <weights dir> <image dir> [photo.jpg]; a dir given as - is skipped. */
#define _GNU_SOURCE
#include "fuzz_entries.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


static void fill(lwf_model *m)
{
    unsigned st = 1;
    for (int i = 0; i < m->net->n; ++i) {
        layer *l = &m->net->layers[i];
        float *arrays[] = {l->biases, l->weights, l->scales, l->rolling_mean, l->rolling_variance};
        int sizes[] = {l->nbiases, l->nweights, l->nbiases, l->nbiases, l->nbiases};
        if (l->type == CONNECTED) sizes[0] = sizes[2] = sizes[3] = sizes[4] = l->outputs;
        if (l->type == CONNECTED) sizes[1] = l->outputs * l->inputs;
        if (l->type == BATCHNORM) sizes[2] = sizes[3] = sizes[4] = l->c;
        for (int k = 0; k < 5; ++k)
            for (int j = 0; arrays[k] && j < sizes[k]; ++j) {
                st = st * 1103515245u + 12345u;
                arrays[k][j] = (float)((st >> 8) & 0xFFFF) / 65536.0f + (k == 4 ? 0.5f : -0.5f);
            }
    }
}

static int write_weights(const char *dir)
{
    char out[4096];
    lwf_err err;
    lwf_model *m = fz_weights_model(&err);
    if (!m) {
        fprintf(stderr, "make_seeds: %s\n", err.msg);
        return -1;
    }
    fill(m);
    int rc = 0;
    snprintf(out, sizeof out, "%s/old.weights", dir);
    rc |= lwf_weights_save(m->net, out, lwf_old_layers(m), 1280, &err);
    snprintf(out, sizeof out, "%s/whole.weights", dir);
    rc |= lwf_weights_save(m->net, out, m->net->n, 99, &err);
    /* version 0.1: the image counter is an int32 */
    size_t nf = lwf_weights_count(m->net, lwf_old_layers(m));
    snprintf(out, sizeof out, "%s/old-v01.weights", dir);
    FILE *fp = fopen(out, "wb");
    int32_t hdr[4] = {0, 1, 0, 64};
    float *zeros = calloc(nf, sizeof(float));
    if (!fp || !zeros || fwrite(hdr, sizeof hdr, 1, fp) != 1 || fwrite(zeros, sizeof(float), nf, fp) != nf) rc = -1;
    if (fp && fclose(fp)) rc = -1;
    free(zeros);
    lwf_model_free(m);
    if (rc) fprintf(stderr, "make_seeds: cannot write weights in %s: %s\n", dir, err.msg);
    return rc;
}

static void write_images(const char *dir, const char *photo)
{
    char base[4096];
    image im = make_image(8, 6, 3);
    for (int i = 0; i < 8 * 6 * 3; ++i) im.data[i] = (float)((i * 37) % 256) / 255.0f;
    const IMTYPE types[] = {PNG, JPG, BMP, TGA};
    const char *names[] = {"tiny-png", "tiny-jpg", "tiny-bmp", "tiny-tga"};
    for (int k = 0; k < 4; ++k) {
        snprintf(base, sizeof base, "%s/%s", dir, names[k]);
        save_image_options(im, base, types[k], 70);
    }
    free_image(im);
    image big;
    lwf_err err;
    if (photo && lwf_image_load(photo, &big, &err) == 0) {
        image small = resize_image(big, 32, 24);
        snprintf(base, sizeof base, "%s/photo-jpg", dir);
        save_image_options(small, base, JPG, 60);
        snprintf(base, sizeof base, "%s/photo-png", dir);
        save_image_options(small, base, PNG, 0);
        free_image(small);
        free_image(big);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: make_seeds <weights dir|-> <image dir|-> [photo.jpg]\n");
        return 2;
    }
    if (strcmp(argv[1], "-") != 0 && write_weights(argv[1])) return 1;
    if (strcmp(argv[2], "-") != 0) write_images(argv[2], argc > 3 ? argv[3] : NULL);
    return 0;
}
