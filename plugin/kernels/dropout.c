/* Fast [dropout] forward and backward, split over the pool's threads.  Darknet draws one
 * rand() per value under libc's lock; here each pass draws one rand() (so srand still
 * seeds it) and each value's uniform comes from a counter-based hash of that draw and
 * the value's position: the same distribution, other values, and repeatable for a seed
 * whatever the thread count.  l.rand holds the uniforms, as Darknet's backward reads
 * them.  Installed by kernels.c; -reference keeps Darknet's own. */
#include "kernels/kernels.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct {
    const layer *l;
    const network *net;
    uint64_t seed;
} dctx;

static void forward_part(void *vc, int t, int nt)
{
    const dctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch * l->inputs, t, nt, &lo, &hi);
    float *x = c->net->input, p = l->probability, sc = l->scale;
    for (int i = lo; i < hi; ++i) {
        uint64_t h = lwf_mix64(c->seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1));
        float r = (float)(h >> 40) * (1.0f / 16777216.0f);
        l->rand[i] = r;
        x[i] = r < p ? 0 : x[i] * sc;
    }
}

static void backward_part(void *vc, int t, int nt)
{
    const dctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch * l->inputs, t, nt, &lo, &hi);
    float *d = c->net->delta, p = l->probability, sc = l->scale;
    for (int i = lo; i < hi; ++i) d[i] = l->rand[i] < p ? 0 : d[i] * sc;
}

void lwf_dropout_forward(layer l, network net)
{
    if (!net.train) return;
    dctx c = {&l, &net, 0};
    c.seed = lwf_mix64((uint64_t)(unsigned)rand() * 0x2545f4914f6cdd1dULL + (uint64_t)l.batch * l.inputs);
    lwf_parallel_if((double)l.batch * l.inputs, forward_part, &c);
}

void lwf_dropout_backward(layer l, network net)
{
    if (!net.delta) return;
    dctx c = {&l, &net, 0};
    lwf_parallel_if((double)l.batch * l.inputs, backward_part, &c);
}
