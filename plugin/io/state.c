/* Training state beside a backup: counters and every layer's update (momentum) buffers,
 * in a versioned binary file (magic "LWFSTAT1"), so a resumed run repeats exactly.
 * The weights themselves stay in Darknet's .weights (weights.c). */
#define _POSIX_C_SOURCE 200809L
#include "io/io.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "LWFSTAT1"
/* version 2: the teacher mode is no longer stored (version 1 had it after the method):
 * -teacher record and online train identically (record is refused with augmentation on),
 * so a run may resume with either and nothing reads it */
#define VERSION 2u

typedef struct {
    float *p;
    size_t n;
} ubuf;

/* The update buffers of layer l; returns how many. */
static int update_bufs(const layer *l, ubuf out[3])
{
    int n = 0;
    if (l->type == CONVOLUTIONAL) {
        out[n++] = (ubuf){l->bias_updates, (size_t)l->n};
        if (l->batch_normalize) out[n++] = (ubuf){l->scale_updates, (size_t)l->n};
        out[n++] = (ubuf){l->weight_updates, (size_t)l->nweights};
    } else if (l->type == CONNECTED) {
        out[n++] = (ubuf){l->bias_updates, (size_t)l->outputs};
        if (l->batch_normalize) out[n++] = (ubuf){l->scale_updates, (size_t)l->outputs};
        out[n++] = (ubuf){l->weight_updates, (size_t)l->outputs * (size_t)l->inputs};
    } else if (l->type == BATCHNORM) {
        out[n++] = (ubuf){l->bias_updates, (size_t)l->c};
        out[n++] = (ubuf){l->scale_updates, (size_t)l->c};
    }
    return n;
}

/* Floats in every layer's update buffers: the body of a .state file. */
static size_t update_floats(const network *net)
{
    size_t floats = 0;
    for (int i = 0; i < net->n; ++i) {
        ubuf b[3];
        int k = update_bufs(&net->layers[i], b);
        for (int j = 0; j < k; ++j) floats += b[j].n;
    }
    return floats;
}

int lwf_state_save(const network *net, const lwf_state *st, const char *path, lwf_err *err)
{
    size_t floats = update_floats(net);
    size_t len = 8 + 4 + 8 + 8 + 3 * 4 + 8 + floats * sizeof(float); /* a 48-byte header */
    unsigned char *buf = malloc(len), *p = buf;
    if (!buf) return lwf_fail(err, "%s: out of memory", path);
#define PUT(v) (memcpy(p, &(v), sizeof(v)), p += sizeof(v))
    memcpy(p, MAGIC, 8);
    p += 8;
    uint32_t version = VERSION;
    int64_t it = st->iteration;
    uint64_t seed = st->seed, nf = floats;
    int32_t method = st->method, t = *net->t, nl = net->n;
    PUT(version);
    PUT(it);
    PUT(seed);
    PUT(method);
    PUT(t);
    PUT(nl);
    PUT(nf);
#undef PUT
    for (int i = 0; i < net->n; ++i) {
        ubuf b[3];
        int k = update_bufs(&net->layers[i], b);
        for (int j = 0; j < k; ++j) {
            memcpy(p, b[j].p, b[j].n * sizeof(float));
            p += b[j].n * sizeof(float);
        }
    }
    int rc = lwf_write_file_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

int lwf_state_load(network *net, lwf_state *st, const char *path, lwf_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) return 1;
        return lwf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    }
    char magic[8];
    uint32_t version;
    int64_t it;
    uint64_t seed, nf;
    int32_t method, t, nl;
    int ok = fread(magic, 8, 1, fp) == 1 && memcmp(magic, MAGIC, 8) == 0 && fread(&version, 4, 1, fp) == 1;
    if (ok && version != VERSION) {
        fclose(fp);
        return lwf_fail(err, "%s: training-state format version %u, this lwf reads version %u (remove it to resume "
                             "without momentum)",
                        path, (unsigned)version, VERSION);
    }
    ok = ok && fread(&it, 8, 1, fp) == 1 && fread(&seed, 8, 1, fp) == 1 && fread(&method, 4, 1, fp) == 1 &&
         fread(&t, 4, 1, fp) == 1 && fread(&nl, 4, 1, fp) == 1 && fread(&nf, 8, 1, fp) == 1;
    if (!ok) {
        fclose(fp);
        return lwf_fail(err, "%s: not an lwf training-state file (or a corrupt one)", path);
    }
    size_t floats = update_floats(net);
    if (nl != net->n || nf != floats || it < 0) {
        fclose(fp);
        return lwf_fail(err, "%s: state for %d layers / %llu floats, the cfg has %d / %zu", path, nl,
                        (unsigned long long)nf, net->n, floats);
    }
    float *all = malloc(floats ? floats * sizeof(float) : 1);
    if (!all || fread(all, sizeof(float), floats, fp) != floats || fgetc(fp) != EOF) {
        free(all);
        fclose(fp);
        return lwf_fail(err, "%s: truncated or too long", path);
    }
    fclose(fp);
    /* momentum from a corrupt file would make the first update NaN, reported later as a
     * diverged run: say what is wrong instead */
    size_t bad = lwf_first_nonfinite(all, floats);
    if (bad < floats) {
        lwf_fail(err, "%s: float %zu is %g, not finite: a corrupt state file", path, bad, all[bad]);
        free(all);
        return -1;
    }
    size_t at = 0;
    for (int i = 0; i < net->n; ++i) {
        ubuf b[3];
        int k = update_bufs(&net->layers[i], b);
        for (int j = 0; j < k; ++j) {
            memcpy(b[j].p, all + at, b[j].n * sizeof(float));
            at += b[j].n;
        }
    }
    free(all);
    *net->t = t;
    st->iteration = it;
    st->seed = seed;
    st->method = method;
    return 0;
}
