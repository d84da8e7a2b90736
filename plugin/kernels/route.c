/* Fast [route] forward and backward (the [task] layers are routes too): the same copies
 * and additions as Darknet's route_layer.c, split over the pool's threads by image, so
 * bit for bit the same results.  Installed by install.c. */
#include "kernels/kernels.h"

typedef struct {
    const layer *l;
    const network *net;
} rctx;

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

CLONES static void copy_n(float *restrict d, const float *restrict s, int n)
{
    for (int i = 0; i < n; ++i) d[i] = s[i];
}

CLONES static void add_n(float *restrict d, const float *restrict s, int n)
{
    for (int i = 0; i < n; ++i) d[i] += s[i];
}

static void forward_part(void *vc, int t, int nt)
{
    const rctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch, t, nt, &lo, &hi);
    for (int j = lo; j < hi; ++j) {
        int offset = 0;
        for (int i = 0; i < l->n; ++i) {
            int size = l->input_sizes[i];
            const float *in = c->net->layers[l->input_layers[i]].output + (size_t)j * size;
            copy_n(l->output + (size_t)j * l->outputs + offset, in, size);
            offset += size;
        }
    }
}

static void backward_part(void *vc, int t, int nt)
{
    const rctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch, t, nt, &lo, &hi);
    for (int j = lo; j < hi; ++j) {
        int offset = 0;
        for (int i = 0; i < l->n; ++i) {
            int size = l->input_sizes[i];
            float *d = c->net->layers[l->input_layers[i]].delta;
            if (d) add_n(d + (size_t)j * size, l->delta + (size_t)j * l->outputs + offset, size);
            offset += size;
        }
    }
}

void lwf_route_forward(lwf_kernel_ctx *k, layer l, network net)
{
    rctx c = {&l, &net};
    lwf_parallel_if(&k->rt, (double)l.batch * l.outputs, forward_part, &c);
}

void lwf_route_backward(lwf_kernel_ctx *k, layer l, network net)
{
    rctx c = {&l, &net};
    lwf_parallel_if(&k->rt, (double)l.batch * l.outputs, backward_part, &c);
}
