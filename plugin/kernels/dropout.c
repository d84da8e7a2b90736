/* Fast [dropout] forward and backward, split over the pool's threads.  Darknet draws one
 * rand() per value under libc's lock; here each value's uniform is a counter-based hash of
 * the layer's stream (the seed the trainer gives, lwf_kernels_seed; the layer's index; the
 * network's images seen; the passes made at that count) and the value's position: the
 * same distribution, other values, repeatable for a seed whatever the thread count, and
 * the same after a resume (the count of images seen is restored).  l.rand holds the
 * uniforms, as Darknet's backward reads them.  Installed by install.c. */
#include "kernels/kernels.h"

#include <stdint.h>

typedef struct {
    const layer *l;
    const network *net;
    uint64_t key;
} dctx;

static void forward_part(void *vc, int t, int nt)
{
    const dctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch * l->inputs, t, nt, &lo, &hi);
    float *x = c->net->input, p = l->probability, sc = l->scale;
    for (int i = lo; i < hi; ++i) {
        uint64_t h = lwf_mix64(c->key + 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1));
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

void lwf_dropout_forward(lwf_kernel_ctx *k, layer l, network net)
{
    if (!net.train) return;
    size_t seen = net.seen ? *net.seen : 0;
    if (seen != k->seen) {
        k->seen = seen;
        k->pass = 0;
    }
    lwf_rng r = lwf_rng_make(k->rt.seed, (unsigned long long)(unsigned)k->index << 32 | k->pass++, seen);
    dctx c = {&l, &net, lwf_rng_next(&r)};
    lwf_parallel_if(&k->rt, (double)l.batch * l.inputs, forward_part, &c);
}

void lwf_dropout_backward(lwf_kernel_ctx *k, layer l, network net)
{
    if (!net.delta) return;
    dctx c = {&l, &net, 0};
    lwf_parallel_if(&k->rt, (double)l.batch * l.inputs, backward_part, &c);
}
