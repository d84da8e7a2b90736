/* Fast [maxpool] and [avgpool] forward and backward, split over the pool's threads by
 * image (each image's planes are independent).  Same window, padding and tie rules as
 * Darknet's maxpool_layer.c (the first maximum wins; indexes into the input batch), and
 * the same sums as avgpool_layer.c.  Installed by install.c. */
#include "kernels/kernels.h"

#include <float.h>
#include <string.h>

typedef struct {
    const layer *l;
    const network *net;
} pctx;

int lwf_maxpool_supported(const layer *l)
{
    return l->type == MAXPOOL && l->size >= 1 && l->stride >= 1 && l->out_w > 0 && l->out_h > 0;
}

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* One output row of 2x2 stride-2 windows lying inside the image: the same comparisons in
 * the same order as Darknet's loop (the first maximum wins), without branches (random
 * data mispredicts every other one): the value by max (v > m ? v : m is what x86's
 * maxss computes), the index by a mask. */
static inline void take(float v, int at, float *m, int *mi)
{
    int gt = v > *m;
    *m = v > *m ? v : *m;
    *mi ^= (*mi ^ at) & -gt;
}

static void max2x2_row(const float *restrict r0, const float *restrict r1, int ow, int w, int at0,
                       float *restrict out, int *restrict idx)
{
    for (int j = 0; j < ow; ++j) {
        int at = at0 + 2 * j, mi = -1;
        float m = -FLT_MAX;
        take(r0[2 * j], at, &m, &mi);
        take(r0[2 * j + 1], at + 1, &m, &mi);
        take(r1[2 * j], at + w, &m, &mi);
        take(r1[2 * j + 1], at + w + 1, &m, &mi);
        out[j] = m;
        idx[j] = mi;
    }
}

/* the same maxima without the indexes */
static void max2x2_values(const float *restrict r0, const float *restrict r1, int ow, float *restrict out)
{
    for (int j = 0; j < ow; ++j) {
        float m = -FLT_MAX, v;
        v = r0[2 * j];
        m = v > m ? v : m;
        v = r0[2 * j + 1];
        m = v > m ? v : m;
        v = r1[2 * j];
        m = v > m ? v : m;
        v = r1[2 * j + 1];
        m = v > m ? v : m;
        out[j] = m;
    }
}

static void maxpool_fwd_part(void *vc, int t, int nt)
{
    const pctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch * l->c, t, nt, &lo, &hi); /* planes (image, channel) */
    int off = -l->pad / 2, oh = l->out_h, ow = l->out_w, h = l->h, w = l->w, s = l->stride, k = l->size;
    for (int p = lo; p < hi; ++p) {
        const float *in = c->net->input + (size_t)p * h * w;
        float *out = l->output + (size_t)p * oh * ow;
        int *idx = l->indexes + (size_t)p * oh * ow;
        int base = p * h * w;
        if (k == 2 && s == 2 && off == 0 && 2 * oh <= h && 2 * ow <= w && !c->net->train) {
            /* inference: the maxima only (the indexes serve the backward pass) */
            for (int i = 0; i < oh; ++i) {
                const float *r0 = in + (size_t)(2 * i) * w;
                max2x2_values(r0, r0 + w, ow, out + i * ow);
            }
            continue;
        }
        if (k == 2 && s == 2 && off == 0 && 2 * oh <= h && 2 * ow <= w) {
            /* every window inside the image: no bounds checks */
            for (int i = 0; i < oh; ++i) {
                const float *r0 = in + (size_t)(2 * i) * w;
                max2x2_row(r0, r0 + w, ow, w, base + 2 * i * w, out + i * ow, idx + i * ow);
            }
            continue;
        }
        for (int i = 0; i < oh; ++i)
            for (int j = 0; j < ow; ++j) {
                float m = -FLT_MAX;
                int mi = -1;
                for (int n = 0; n < k; ++n) {
                    int y = off + i * s + n;
                    for (int q = 0; q < k; ++q) {
                        int x = off + j * s + q;
                        int valid = y >= 0 && y < h && x >= 0 && x < w;
                        float v = valid ? in[y * w + x] : -FLT_MAX;
                        if (v > m) {
                            m = v;
                            mi = base + y * w + x;
                        }
                    }
                }
                out[i * ow + j] = m;
                idx[i * ow + j] = mi;
            }
    }
}

static void maxpool_bwd_part(void *vc, int t, int nt)
{
    const pctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch * l->c, t, nt, &lo, &hi);
    size_t per = (size_t)l->out_h * l->out_w;
    float *d = c->net->delta;
    /* an index always lies in its own plane, so planes of different threads never meet */
    for (size_t i = (size_t)lo * per; i < (size_t)hi * per; ++i) d[l->indexes[i]] += l->delta[i];
}

void lwf_maxpool_forward(lwf_kernel_ctx *k, layer l, network net)
{
    pctx c = {&l, &net};
    lwf_parallel_if(&k->rt, (double)l.batch * l.inputs, maxpool_fwd_part, &c);
}

void lwf_maxpool_backward(lwf_kernel_ctx *k, layer l, network net)
{
    if (!net.delta) return;
    pctx c = {&l, &net};
    lwf_parallel_if(&k->rt, (double)l.batch * l.inputs, maxpool_bwd_part, &c);
}

static void avgpool_fwd_part(void *vc, int t, int nt)
{
    const pctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch * l->c, t, nt, &lo, &hi);
    int n = l->h * l->w;
    for (int p = lo; p < hi; ++p) {
        const float *in = c->net->input + (size_t)p * n;
        float s = 0; /* Darknet sums in float, in order */
        for (int i = 0; i < n; ++i) s += in[i];
        l->output[p] = s / n;
    }
}

static void avgpool_bwd_part(void *vc, int t, int nt)
{
    const pctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch * l->c, t, nt, &lo, &hi);
    int n = l->h * l->w;
    for (int p = lo; p < hi; ++p) {
        float *d = c->net->delta + (size_t)p * n;
        float v = l->delta[p] / n;
        for (int i = 0; i < n; ++i) d[i] += v;
    }
}

void lwf_avgpool_forward(lwf_kernel_ctx *k, layer l, network net)
{
    pctx c = {&l, &net};
    lwf_parallel_if(&k->rt, (double)l.batch * l.inputs, avgpool_fwd_part, &c);
}

void lwf_avgpool_backward(lwf_kernel_ctx *k, layer l, network net)
{
    if (!net.delta) return;
    pctx c = {&l, &net};
    lwf_parallel_if(&k->rt, (double)l.batch * l.inputs, avgpool_bwd_part, &c);
}
