/* Darknet .weights files, read and written with every size and I/O call checked:
 * header (int32 major, minor, revision; seen as uint64, or int32 before 0.2), then each
 * layer's arrays in cfg order.  The layout is Darknet's; see DARKNET-NOTES.md. */
#define _POSIX_C_SOURCE 200809L
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The arrays a .weights file holds for a layer, in file order, are its row's stored arrays
 * in the per-layer-type table (plugin/layers/types.c). */

/* Copies layer l's stored arrays to the bytes at buf (out = 1) or from them (out = 0);
 * returns the bytes. */
static size_t copy_stored(const layer *l, unsigned char *buf, int out)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    size_t at = 0;
    for (int i = 0; i < k->nstored; ++i) {
        const lwf_array *a = &k->stored[i];
        float *p = lwf_array_data(l, a);
        size_t n = lwf_array_floats(l, k, a) * sizeof(float);
        if (out) memcpy(buf + at, p, n);
        else memcpy(p, buf + at, n);
        at += n;
    }
    return at;
}

size_t lwf_weights_count(const network *net, int upto)
{
    size_t total = 0;
    for (int i = 0; i < upto && i < net->n; ++i)
        total += lwf_layer_stored_floats(&net->layers[i]);
    return total;
}

int lwf_weights_nonfinite(const network *net, int upto)
{
    for (int i = 0; i < upto && i < net->n; ++i) {
        const layer *l = &net->layers[i];
        const lwf_layer_kind *k = lwf_layer_kind_of(l);
        for (int j = 0; j < k->nstored; ++j) {
            size_t n = lwf_array_floats(l, k, &k->stored[j]);
            if (lwf_first_nonfinite(lwf_array_data(l, &k->stored[j]), n) < n) return i;
        }
    }
    return -1;
}

int lwf_weights_copy(network *dst, const network *src, int upto, unsigned char *changed)
{
    for (int i = 0; i < upto && i < src->n; ++i) {
        const layer *d = &dst->layers[i], *l = &src->layers[i];
        if (i >= dst->n || d->type != l->type || lwf_layer_stored_floats(d) != lwf_layer_stored_floats(l)) return -1;
        const lwf_layer_kind *k = lwf_layer_kind_of(l);
        int diff = 0;
        for (int j = 0; j < k->nstored; ++j) {
            float *to = lwf_array_data(d, &k->stored[j]), *from = lwf_array_data(l, &k->stored[j]);
            size_t n = lwf_array_floats(l, k, &k->stored[j]) * sizeof(float);
            if (memcmp(to, from, n) != 0) {
                memcpy(to, from, n);
                diff = 1;
            }
        }
        if (changed) changed[i] = (unsigned char)diff;
    }
    return 0;
}

/* Reads the header; returns its size in bytes or -1. */
static long read_header(FILE *fp, const char *path, size_t *seen, lwf_err *err)
{
    int32_t v[3];
    if (fread(v, sizeof(int32_t), 3, fp) != 3) return lwf_fail(err, "%s: too short for a .weights header", path);
    if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[0] > 1000 || v[1] > 1000)
        return lwf_fail(err, "%s: not a Darknet .weights file (version %d.%d.%d)", path, v[0], v[1], v[2]);
    if (v[0] * 10 + v[1] >= 2) {
        uint64_t s;
        if (fread(&s, sizeof s, 1, fp) != 1) return lwf_fail(err, "%s: too short for a .weights header", path);
        if (seen) *seen = (size_t)s;
        return 20;
    }
    int32_t s;
    if (fread(&s, sizeof s, 1, fp) != 1) return lwf_fail(err, "%s: too short for a .weights header", path);
    if (seen) *seen = s < 0 ? 0 : (size_t)s;
    return 16;
}

/* Opens a regular file for reading and tells its size. */
static FILE *open_regular(const char *path, long long *size, lwf_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        lwf_fail(err, "%s: cannot open weights: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        lwf_fail(err, "%s: not a regular file", path);
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) lwf_fail(err, "%s: cannot open weights: %s", path, strerror(errno));
    *size = (long long)st.st_size;
    return fp;
}

/* The number of floats after the header, or -1 (err set) if not a whole number. */
static long long body_floats(FILE *fp, const char *path, long long size, size_t *seen, lwf_err *err)
{
    long hdr = read_header(fp, path, seen, err);
    if (hdr < 0) return -1;
    long long body = size - hdr;
    if (body % 4)
        return lwf_fail(err, "%s: %lld bytes after the header is not a whole number of floats", path, body);
    return body / 4;
}

/* The body of an open weights file (its header read: `found` floats follow) into layers
 * [0, upto) of net, which need exactly that many: all of it is read and checked before
 * anything is copied, so a failure changes nothing. */
static int load_body(network *net, FILE *fp, const char *path, long long found, int upto, int rows_layer, int rows,
                     lwf_err *err)
{
    size_t want = lwf_weights_count(net, upto);
    if (rows_layer >= 0) /* only outputs [0, rows) of that layer are in the file */
        want -= lwf_layer_stored_floats(&net->layers[rows_layer]) - lwf_layer_rows_floats(&net->layers[rows_layer], rows);
    if ((size_t)found != want)
        return lwf_fail(err, "%s: holds %lld floats, but layers 0-%d of the cfg need %zu (%s)", path, found, upto - 1,
                        want, (size_t)found < want ? "file too short" : "file too long");
    float *buf = malloc(want ? want * sizeof(float) : 1);
    if (!buf) return lwf_fail(err, "%s: out of memory for %zu floats", path, want);
    int rc = -1;
    if (fread(buf, sizeof(float), want, fp) != want) {
        lwf_fail(err, "%s: read error: %s", path, ferror(fp) ? strerror(errno) : "unexpected end of file");
        goto done;
    }
    /* Darknet never writes a NaN or an infinity into a weights file that trained well; such
     * a value is a corrupt (or diverged) file, and NaN activations make libdarknet's maxpool
     * index outside its buffers.  Refuse it, saying which layer, before loading anything. */
    size_t at = 0, bad = lwf_first_nonfinite(buf, want);
    for (int i = 0; bad < want && i < upto && i < net->n; ++i) {
        size_t len = i == rows_layer ? lwf_layer_rows_floats(&net->layers[i], rows) : lwf_layer_stored_floats(&net->layers[i]);
        if (bad < at + len) {
            lwf_fail(err, "%s: float %zu (layer %d) is %g, not finite: a corrupt or diverged weights file", path,
                     bad, i, buf[bad]);
            goto done;
        }
        at += len;
    }
    at = 0;
    for (int i = 0; i < upto && i < net->n; ++i) {
        if (i == rows_layer) at += lwf_layer_rows_copy(&net->layers[i], rows, (float *)((unsigned char *)buf + at), 0) * sizeof(float);
        else at += copy_stored(&net->layers[i], (unsigned char *)buf + at, 0);
    }
    rc = 0;
done:
    free(buf);
    return rc;
}

int lwf_weights_load(network *net, const char *path, int upto, size_t *seen, lwf_err *err)
{
    long long size;
    FILE *fp = open_regular(path, &size, err);
    if (!fp) return -1;
    size_t s = 0;
    long long found = body_floats(fp, path, size, &s, err);
    int rc = found < 0 ? -1 : load_body(net, fp, path, found, upto, -1, 0, err);
    fclose(fp);
    if (rc == 0 && seen) *seen = s;
    return rc;
}

int lwf_weights_load_model(lwf_model *m, const char *path, int *whole, size_t *seen, lwf_err *err)
{
    long long size;
    FILE *fp = open_regular(path, &size, err);
    if (!fp) return -1;
    size_t s = 0;
    long long found = body_floats(fp, path, size, &s, err);
    int old = lwf_old_layers(m), all = m->net->n, rc = -1;
    size_t want_old = lwf_weights_count(m->net, old), want_all = lwf_weights_count(m->net, all);
    /* a grown head: the old model's file fills every layer, its class layer's first K rows */
    const lwf_task *nt = &m->tasks[m->new_task];
    int cls = nt->old_classes ? nt->class_layer : -1;
    size_t want_grown = cls < 0 ? 0
                                : want_all - lwf_layer_stored_floats(&m->net->layers[cls]) +
                                      lwf_layer_rows_floats(&m->net->layers[cls], nt->old_classes);
    if (found < 0) {
        rc = -1;
    } else if ((size_t)found == want_all || (size_t)found == want_old) {
        *whole = (size_t)found == want_all;
        rc = load_body(m->net, fp, path, found, *whole ? all : old, -1, 0, err);
    } else if (cls >= 0 && (size_t)found == want_grown) {
        *whole = 0;
        rc = load_body(m->net, fp, path, found, all, cls, nt->old_classes, err);
    } else if (cls >= 0) {
        lwf_fail(err, "%s: holds %lld floats; %s needs %zu for the old model (every layer, %d outputs of the grown "
                      "class layer %d) or %zu for the whole model (%s)",
                 path, found, m->cfg, want_grown, nt->old_classes, cls, want_all,
                 (size_t)found < want_grown ? "file too short" : (size_t)found > want_all ? "file too long"
                                                                                        : "between the two");
    } else {
        lwf_fail(err, "%s: holds %lld floats; %s needs %zu for the old network (trunk + old heads, layers 0-%d) "
                      "or %zu for the whole model (%s)",
                 path, found, m->cfg, want_old, old - 1, want_all,
                 (size_t)found < want_old   ? "file too short"
                 : (size_t)found > want_all ? "file too long"
                                            : "between the two: not a weights file for this cfg");
    }
    fclose(fp);
    if (rc == 0 && seen) *seen = s;
    return rc;
}

int lwf_weights_save_layers(const network *net, const int *layers, int nl, const char *path, size_t seen,
                            lwf_err *err)
{
    size_t floats = 0;
    for (int i = 0; i < nl; ++i) {
        int li = layers ? layers[i] : i;
        if (li < 0 || li >= net->n)
            return lwf_fail(err, "%s: layer %d is not in the network (%d layers)", path, li, net->n);
        floats += lwf_layer_stored_floats(&net->layers[li]);
    }
    size_t len = 20 + floats * sizeof(float);
    unsigned char *buf = malloc(len);
    if (!buf) return lwf_fail(err, "%s: out of memory for %zu bytes", path, len);
    int32_t v[3] = {0, 2, 0};
    uint64_t s = seen;
    memcpy(buf, v, 12);
    memcpy(buf + 12, &s, 8);
    size_t at = 20;
    for (int i = 0; i < nl; ++i) at += copy_stored(&net->layers[layers ? layers[i] : i], buf + at, 1);
    int rc = lwf_write_file_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

int lwf_weights_save(const network *net, const char *path, int upto, size_t seen, lwf_err *err)
{
    int n = upto < net->n ? upto : net->n;
    return lwf_weights_save_layers(net, NULL, n < 0 ? 0 : n, path, seen, err);
}
