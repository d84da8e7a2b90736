/* "Precise BN": at the end of a training phase, the rolling mean and variance of every
 * batch-norm layer that phase trained are re-estimated from N batches of the phase's
 * training images with the final weights ([net] precise_bn=N).  Which layers and images:
 * the trainer (train.c); the layers' own forward passes (stock or fast) give the batch
 * statistics. */
#define _XOPEN_SOURCE 700 /* initstate, setstate */
#include "train/train.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether l keeps rolling batch-norm statistics (its row of the layer table stores them). */
static int has_rolling(const layer *l)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    for (int a = 0; a < k->nstored; ++a)
        if (k->stored[a].field == offsetof(layer, rolling_mean)) return 1;
    return 0;
}

int lwf_precise_bn_layer(const network *net, const lwf_plan *plan, int i)
{
    const layer *l = &net->layers[i];
    return plan->fwd[i] && plan->train[i] && has_rolling(l) && l->mean && l->variance;
}

/* The pass's plan: plan's layers up to the last one re-estimated, in plan's modes, none
 * learning (so no delta is touched and no loss layer runs).  Returns the number of layers
 * re-estimated (0: nothing to do), -1 when out of memory. */
static int pass_plan(const network *net, const lwf_plan *plan, lwf_plan *p)
{
    int last = -1, n = 0;
    for (int i = 0; i < net->n; ++i)
        if (lwf_precise_bn_layer(net, plan, i)) last = i, ++n;
    memset(p, 0, sizeof *p);
    if (!n) return 0;
    p->n = net->n;
    p->fwd = calloc((size_t)net->n, 1);
    p->train = calloc((size_t)net->n, 1);
    p->learn = calloc((size_t)net->n, 1);
    if (!p->fwd || !p->train || !p->learn) {
        lwf_plan_free(p);
        return -1;
    }
    for (int i = 0; i <= last; ++i) {
        p->fwd[i] = plan->fwd[i];
        p->train[i] = plan->train[i];
    }
    return n;
}

/* One double per output of every re-estimated layer: sums[i] (units of layer i), or NULL. */
static double **alloc_sums(const network *net, const lwf_plan *plan)
{
    double **s = calloc((size_t)net->n, sizeof *s);
    for (int i = 0; s && i < net->n; ++i) {
        if (!lwf_precise_bn_layer(net, plan, i)) continue;
        if (!(s[i] = calloc((size_t)lwf_layer_kind_of(&net->layers[i])->units(&net->layers[i]), sizeof(double)))) {
            for (int j = 0; j < i; ++j) free(s[j]);
            free(s);
            return NULL;
        }
    }
    return s;
}

static void free_sums(double **s, int n)
{
    for (int i = 0; s && i < n; ++i) free(s[i]);
    free(s);
}

/* The batches: the sources' rows of each batch into the input (the truth is not read: no
 * loss layer runs), then the forward pass, then each layer's batch statistics summed. */
static int accumulate(network *net, const lwf_plan *p, const lwf_bn_source *src, int nsrc, lwf_loader **ld,
                      int batches, double **sm, double **sv, lwf_err *err)
{
    for (int b = 0; b < batches; ++b) {
        for (int q = 0; q < nsrc; ++q) {
            const lwf_batch *bt = lwf_loader_next(ld[q], err);
            if (!bt) return -1;
            memcpy(net->input + (size_t)src[q].row0 * net->inputs, bt->X,
                   (size_t)src[q].rows * net->inputs * sizeof(float));
        }
        lwf_forward(net, p);
        for (int i = 0; i < net->n; ++i) {
            const layer *l = &net->layers[i];
            if (!sm[i]) continue;
            int u = lwf_layer_kind_of(l)->units(l);
            for (int f = 0; f < u; ++f) {
                sm[i][f] += l->mean[f];
                sv[i][f] += l->variance[f];
            }
        }
    }
    return 0;
}

/* The loaders and the forward passes, with libc's random() state (libdarknet's rand():
 * [crop], and [dropout] under -reference) swapped for a scratch one and put back after, so
 * the training's own stream goes on as if the pass had not run. */
static int run_pass(lwf_model *m, const lwf_plan *p, const lwf_bn_source *src, int nsrc, int batches,
                    unsigned long long seed, double **sm, double **sv, lwf_err *err)
{
    network *net = m->net;
    lwf_loader *ld[LWF_PRECISE_BN_MAX_SOURCES] = {0};
    int rc = 0;
    for (int q = 0; q < nsrc && !rc; ++q) {
        /* a stream of its own per source and phase, from batch 0: the same whether the run
         * was resumed or not, and no batch taken from the training's stream */
        unsigned long long s = seed + 7919ULL * (unsigned)q;
        if (!(ld[q] = lwf_loader_start(src[q].paths, &m->aug, net->w, net->h, src[q].rows, s, 0, err))) rc = -1;
    }
    char scratch[256]; /* glibc's largest random() state */
    char *keep = rc ? NULL : initstate((unsigned)seed, scratch, sizeof scratch);
    if (!rc) rc = accumulate(net, p, src, nsrc, ld, batches, sm, sv, err);
    if (keep) setstate(keep);
    for (int q = 0; q < nsrc; ++q) lwf_loader_stop(ld[q]);
    return rc;
}

int lwf_precise_bn(lwf_model *m, const lwf_plan *plan, int batches, const lwf_bn_source *src, int nsrc,
                   unsigned long long seed, lwf_err *err)
{
    network *net = m->net;
    if (batches <= 0) return 0;
    if (nsrc < 1 || nsrc > LWF_PRECISE_BN_MAX_SOURCES)
        return lwf_fail(err, "precise_bn: %d training sources (1 to %d)", nsrc, LWF_PRECISE_BN_MAX_SOURCES);
    lwf_plan p;
    int n = pass_plan(net, plan, &p);
    if (n <= 0) return n < 0 ? lwf_fail(err, "out of memory") : 0;
    double **sm = alloc_sums(net, plan), **sv = alloc_sums(net, plan);
    int rc = sm && sv ? run_pass(m, &p, src, nsrc, batches, seed, sm, sv, err) : lwf_fail(err, "out of memory");
    for (int i = 0; !rc && i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (!sm[i]) continue;
        int u = lwf_layer_kind_of(l)->units(l);
        for (int f = 0; f < u; ++f) {
            l->rolling_mean[f] = (float)(sm[i][f] / batches);
            l->rolling_variance[f] = (float)(sv[i][f] / batches);
        }
    }
    if (!rc) fprintf(stderr, "precise_bn: the rolling statistics of %d batch-norm layer(s) from %d batches\n", n, batches);
    free_sums(sm, net->n);
    free_sums(sv, net->n);
    lwf_plan_free(&p);
    return rc;
}
