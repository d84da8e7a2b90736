/* Fast [maxpool] and [avgpool] forward and backward, split over the pool's threads by
 * image (each image's planes are independent).  Same window, padding and tie rules as
 * Darknet's maxpool_layer.c (the first maximum wins; indexes into the input batch), and
 * the same sums as avgpool_layer.c.  Installed by kernels.c. */
#include "kernels.h"

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
        if (k == 2 && s == 2 && off == 0 && 2 * oh <= h && 2 * ow <= w) {
            /* every window inside the image: no bounds checks */
            for (int i = 0; i < oh; ++i) {
                const float *r0 = in + (size_t)(2 * i) * w, *r1 = r0 + w;
                for (int j = 0; j < ow; ++j) {
                    float m = -FLT_MAX;
                    int mi = -1, at = 2 * i * w + 2 * j;
                    if (r0[2 * j] > m) m = r0[2 * j], mi = at;
                    if (r0[2 * j + 1] > m) m = r0[2 * j + 1], mi = at + 1;
                    if (r1[2 * j] > m) m = r1[2 * j], mi = at + w;
                    if (r1[2 * j + 1] > m) m = r1[2 * j + 1], mi = at + w + 1;
                    out[i * ow + j] = m;
                    idx[i * ow + j] = mi < 0 ? -1 : base + mi;
                }
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

void lwf_maxpool_forward(layer l, network net)
{
    pctx c = {&l, &net};
    lwf_parallel(maxpool_fwd_part, &c);
}

void lwf_maxpool_backward(layer l, network net)
{
    if (!net.delta) return;
    pctx c = {&l, &net};
    lwf_parallel(maxpool_bwd_part, &c);
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

void lwf_avgpool_forward(layer l, network net)
{
    pctx c = {&l, &net};
    lwf_parallel(avgpool_fwd_part, &c);
}

void lwf_avgpool_backward(layer l, network net)
{
    if (!net.delta) return;
    pctx c = {&l, &net};
    lwf_parallel(avgpool_bwd_part, &c);
}
