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
#include <sys/stat.h>

#define MAGIC "LWFSTAT1"
/* version 2: the teacher mode is no longer stored (version 1 had it after the method):
 * -teacher record and online train identically (record is refused with augmentation on),
 * so a run may resume with either and nothing reads it */
#define VERSION 2u

/* A layer's update buffers, in .state order, are its row's update arrays in the
 * per-layer-type table (plugin/layers/types.c). */

/* Copies layer l's update buffers to the bytes at buf (out = 1) or from them (out = 0);
 * returns the bytes. */
static size_t copy_updates(const layer *l, unsigned char *buf, int out)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    size_t at = 0;
    for (int i = 0; i < k->nupdates; ++i) {
        const lwf_array *a = &k->updates[i];
        float *p = lwf_array_data(l, a);
        size_t n = lwf_array_floats(l, k, a) * sizeof(float);
        if (out) memcpy(buf + at, p, n);
        else memcpy(p, buf + at, n);
        at += n;
    }
    return at;
}

/* Floats in every layer's update buffers: the body of a .state file. */
static size_t update_floats(const network *net)
{
    size_t floats = 0;
    for (int i = 0; i < net->n; ++i) floats += lwf_layer_update_floats(&net->layers[i]);
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
    for (int i = 0; i < net->n; ++i) p += copy_updates(&net->layers[i], p, 1);
    int rc = lwf_write_file_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

/* The 48-byte header (magic, version, counters), checked against net: fills f's counters;
 * 0, or -1 and err. */
static int read_header(FILE *fp, const network *net, const char *path, lwf_state_file *f, lwf_err *err)
{
    char magic[8];
    uint32_t version;
    int64_t it;
    uint64_t seed, nf;
    int32_t method, t, nl;
    int ok = fread(magic, 8, 1, fp) == 1 && memcmp(magic, MAGIC, 8) == 0 && fread(&version, 4, 1, fp) == 1;
    if (ok && version != VERSION)
        return lwf_fail(err, "%s: training-state format version %u, this lwf reads version %u (remove it to resume "
                             "without momentum)",
                        path, (unsigned)version, VERSION);
    ok = ok && fread(&it, 8, 1, fp) == 1 && fread(&seed, 8, 1, fp) == 1 && fread(&method, 4, 1, fp) == 1 &&
         fread(&t, 4, 1, fp) == 1 && fread(&nl, 4, 1, fp) == 1 && fread(&nf, 8, 1, fp) == 1;
    if (!ok) return lwf_fail(err, "%s: not an lwf training-state file (or a corrupt one)", path);
    size_t floats = update_floats(net);
    if (nl != net->n || nf != floats || it < 0)
        return lwf_fail(err, "%s: state for %d layers / %llu floats, the cfg has %d / %zu", path, nl,
                        (unsigned long long)nf, net->n, floats);
    f->st.iteration = it;
    f->st.seed = seed;
    f->st.method = method;
    f->t = t;
    f->n = floats;
    return 0;
}

int lwf_state_read(const network *net, const char *path, lwf_state_file *f, lwf_err *err)
{
    memset(f, 0, sizeof *f);
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) return 1;
    FILE *fp = lwf_open_regular(path, "training state", err); /* a FIFO is refused, never waited on */
    if (!fp) return -1;
    if (read_header(fp, net, path, f, err)) {
        fclose(fp);
        return -1;
    }
    f->momentum = malloc(f->n ? f->n * sizeof(float) : 1);
    int ok = f->momentum && fread(f->momentum, sizeof(float), f->n, fp) == f->n && fgetc(fp) == EOF;
    fclose(fp);
    if (!ok) {
        lwf_state_file_free(f);
        return lwf_fail(err, "%s: truncated or too long", path);
    }
    /* momentum from a corrupt file would make the first update NaN, reported later as a
     * diverged run: say what is wrong instead */
    size_t bad = lwf_first_nonfinite(f->momentum, f->n);
    if (bad < f->n) {
        lwf_fail(err, "%s: float %zu is %g, not finite: a corrupt state file", path, bad, f->momentum[bad]);
        lwf_state_file_free(f);
        return -1;
    }
    return 0;
}

void lwf_state_apply(network *net, const lwf_state_file *f)
{
    unsigned char *p = (unsigned char *)f->momentum;
    for (int i = 0; i < net->n; ++i) p += copy_updates(&net->layers[i], p, 0);
    *net->t = f->t;
}

void lwf_state_file_free(lwf_state_file *f)
{
    free(f->momentum);
    memset(f, 0, sizeof *f);
}
