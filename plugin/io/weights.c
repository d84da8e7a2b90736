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

/* How an old model's file fills a layer of a grown model: `runs` runs of `rows` outputs,
 * run g into outputs [g * stride, g * stride + rows) of every stored array (the layer
 * table's, layers/types.c).  A grown class layer: one run of its K old outputs; a grown
 * detector's convolution before an [lwf_yolo]: one run of 5 + K (box, objectness, the K old
 * classes) per anchor, stride 5 + C.  runs = 0: the whole layer. */
typedef struct {
    int runs, stride, rows;
} grown_rows;

/* Floats the old model's file holds for l. */
static size_t grown_floats(const layer *l, const grown_rows *g)
{
    if (!g->runs) return lwf_layer_stored_floats(l);
    return (size_t)g->runs * lwf_layer_rows_floats(l, g->rows);
}

/* Copies the runs of g of every stored array of l to buf (out = 1) or from it (out = 0),
 * each array's runs one after another as an old model's file holds them; returns the floats. */
static size_t grown_copy(layer *l, const grown_rows *g, float *buf, int out)
{
    if (!g->runs) return copy_stored(l, (unsigned char *)buf, out) / sizeof(float);
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    size_t at = 0;
    for (int i = 0; i < k->nstored; ++i) {
        const lwf_array *a = &k->stored[i];
        size_t unit = lwf_array_unit_floats(l, k, a), n = (size_t)g->rows * unit;
        for (int r = 0; r < g->runs; ++r) {
            float *p = lwf_array_data(l, a) + (size_t)r * g->stride * unit;
            if (out) memcpy(buf + at, p, n * sizeof(float));
            else memcpy(p, buf + at, n * sizeof(float));
            at += n;
        }
    }
    return at;
}

/* The layers of m an old model's file fills in part (rows (net->n), zeroed by the caller):
 * a grown class layer, or each convolution before a grown detector's [lwf_yolo].  Returns
 * how many. */
static int grown_layers(const lwf_model *m, grown_rows *rows)
{
    int count = 0;
    for (int i = 0; i < m->net->n; ++i) {
        grown_rows g;
        if (!lwf_grown_rows(m, i, &g.runs, &g.stride, &g.rows)) continue;
        rows[i] = g;
        ++count;
    }
    return count;
}

/* The body of an open weights file (its header read: `found` floats follow) into layers
 * [0, upto) of net, which need exactly that many (rows: NULL, or (net->n) how much of each
 * layer the file holds): all of it is read and checked before anything is copied, so a
 * failure changes nothing. */
static int load_body(network *net, FILE *fp, const char *path, long long found, int upto, const grown_rows *rows,
                     lwf_err *err)
{
    static const grown_rows whole = {0, 0, 0};
    size_t want = 0;
    for (int i = 0; i < upto && i < net->n; ++i) want += grown_floats(&net->layers[i], rows ? &rows[i] : &whole);
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
        size_t len = grown_floats(&net->layers[i], rows ? &rows[i] : &whole);
        if (bad < at + len) {
            lwf_fail(err, "%s: float %zu (layer %d) is %g, not finite: a corrupt or diverged weights file", path,
                     bad, i, buf[bad]);
            goto done;
        }
        at += len;
    }
    at = 0;
    for (int i = 0; i < upto && i < net->n; ++i)
        at += grown_copy(&net->layers[i], rows ? &rows[i] : &whole, buf + at, 0);
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
    int rc = found < 0 ? -1 : load_body(net, fp, path, found, upto, NULL, err);
    fclose(fp);
    if (rc == 0 && seen) *seen = s;
    return rc;
}

/* The error of lwf_weights_load_model for a file of `found` floats that fits none of the counts. */
static int misfit(const lwf_model *m, const char *path, long long found, size_t want_old, size_t want_grown,
                  size_t want_all, int grown, lwf_err *err)
{
    const lwf_task *nt = &m->tasks[m->new_task];
    const char *why = (size_t)found > want_all                          ? "file too long"
                      : (size_t)found < (grown ? want_grown : want_old) ? "file too short"
                      : grown                                           ? "between the two"
                              : "between the two: not a weights file for this cfg";
    if (grown && m->detector)
        return lwf_fail(err, "%s: holds %lld floats; %s needs %zu for the old detector (every layer, the box, "
                             "objectness and %d old class rows of each anchor before each [lwf_yolo]) or %zu for the "
                             "whole model (%s)",
                        path, found, m->cfg, want_grown, lwf_det_old_classes(m), want_all, why);
    if (grown)
        return lwf_fail(err, "%s: holds %lld floats; %s needs %zu for the old model (every layer, %d outputs of the "
                             "grown class layer %d) or %zu for the whole model (%s)",
                        path, found, m->cfg, want_grown, nt->old_classes, nt->class_layer, want_all, why);
    return lwf_fail(err, "%s: holds %lld floats; %s needs %zu for the old network (trunk + old heads, layers 0-%d) "
                         "or %zu for the whole model (%s)",
                    path, found, m->cfg, want_old, lwf_old_layers(m) - 1, want_all, why);
}

int lwf_weights_load_model(lwf_model *m, const char *path, int *whole, size_t *seen, lwf_err *err)
{
    long long size;
    FILE *fp = open_regular(path, &size, err);
    if (!fp) return -1;
    size_t s = 0;
    long long found = body_floats(fp, path, size, &s, err);
    int old = lwf_old_layers(m), all = m->net->n, rc = -1;
    size_t want_old = lwf_weights_count(m->net, old), want_all = lwf_weights_count(m->net, all), want_grown = 0;
    /* a grown head or detector: the old model's file fills every layer, and of each grown
     * layer its old rows (grown_layers) */
    grown_rows *rows = calloc(all > 0 ? (size_t)all : 1, sizeof *rows);
    int grown = rows ? grown_layers(m, rows) : 0;
    for (int i = 0; grown && i < all; ++i) want_grown += grown_floats(&m->net->layers[i], &rows[i]);
    if (!rows) {
        lwf_fail(err, "%s: out of memory", path);
    } else if (found < 0) {
        rc = -1;
    } else if ((size_t)found == want_all || (size_t)found == want_old) {
        *whole = (size_t)found == want_all;
        rc = load_body(m->net, fp, path, found, *whole ? all : old, NULL, err);
    } else if (grown && (size_t)found == want_grown) {
        *whole = 0;
        rc = load_body(m->net, fp, path, found, all, rows, err);
    } else {
        misfit(m, path, found, want_old, want_grown, want_all, grown, err);
    }
    free(rows);
    fclose(fp);
    if (rc == 0 && seen) *seen = s;
    return rc;
}

int lwf_detector_copy(lwf_model *student, network *old, int to_old, lwf_err *err)
{
    network *s = student->net;
    if (s->n != old->n) return lwf_fail(err, "%s: the old detector has %d layers, not %d", student->cfg, old->n, s->n);
    grown_rows *rows = calloc(s->n > 0 ? (size_t)s->n : 1, sizeof *rows);
    size_t most = 0;
    for (int i = 0; i < s->n; ++i)
        if (lwf_layer_stored_floats(&old->layers[i]) > most) most = lwf_layer_stored_floats(&old->layers[i]);
    float *buf = malloc(most ? most * sizeof(float) : 1);
    int rc = !rows || !buf ? lwf_fail(err, "%s: out of memory", student->cfg) : 0;
    if (!rc) grown_layers(student, rows);
    for (int i = 0; !rc && i < s->n; ++i) {
        layer *a = &s->layers[i], *b = &old->layers[i];
        if (a->type != b->type || grown_floats(a, &rows[i]) != lwf_layer_stored_floats(b)) {
            rc = lwf_fail(err, "%s:%d: layer %d does not match the old detector's", student->cfg, student->line[i], i);
            break;
        }
        if (to_old) { /* the student's old rows, as the old detector's file would hold them */
            grown_copy(a, &rows[i], buf, 1);
            copy_stored(b, (unsigned char *)buf, 0);
        } else {
            copy_stored(b, (unsigned char *)buf, 1);
            grown_copy(a, &rows[i], buf, 0);
        }
    }
    free(rows);
    free(buf);
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
