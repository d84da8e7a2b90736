/* Fast [convolutional] forward and backward, batch-norm and activation fused: the
 * threads split the batch; each takes its images a few at a time, unrolls them into one
 * column matrix (im2col over several images) and makes one OpenBLAS product per chunk.
 * Same results as Darknet's convolutional_layer.c/batchnorm_layer.c up to float
 * reassociation (tests/unit/test_kernels.c).  Installed by install.c. */
#include "kernels/kernels.h"
#include "kernels/wino.h"
#include "kernels/clones.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void activate_array(float *x, const int n, const ACTIVATION a);                  /* libdarknet */
void gradient_array(const float *x, const int n, const ACTIVATION a, float *delta); /* libdarknet */

#define TARGET_COLS 1024            /* columns (image pixels) per product, at least */
#define MAX_COL_FLOATS (4u << 20)   /* a chunk's column matrix stays under 16 MB */
#define DIRECT_MAX_WEIGHTS (128u << 10) /* direct convolution when the weights fit in L2 */
#define WINO_MIN 64                 /* Winograd for 3x3 stride 1 with this many channels and filters */
#define WINO_MAX_FLOATS (1u << 20)  /* a chunk's transformed inputs stay under 4 MB (measured best) */

/* How layer l is cut into chunks, and the workspace: a shared part, then one share per
 * thread. */
typedef struct {
    int K;          /* rows of the column matrix: size * size * c */
    int F;          /* filters */
    int HW;         /* output pixels of one image */
    int hw;         /* input pixels of one image */
    int nc;         /* images per chunk */
    int tconv;      /* input delta as a convolution of the delta (stride 1, see grad_part) */
    int direct;     /* inference by direct convolution (small weights, stride 1, see direct_image) */
    int wino;       /* Winograd F(2x2, 3x3) (3x3, stride 1, see wino_kernels.c) */
    lwf_wino g;     /* its tiles (wino) */
    int wp, hp;     /* padded input width and height (direct) */
    const struct direct_block *db; /* its register block, for this CPU (direct) */
    size_t plane;   /* floats of one padded input plane, with slack (direct) */
    size_t q;       /* output positions on the padded grid, rounded up to a multiple of 16
                     * and of the block's positions (direct) */
    size_t wt;      /* floats, shared: (c, F*size*size) the flipped weights of that convolution */
    size_t col;     /* floats: (K, nc * HW) columns, or (F*size*size, nc * hw) */
    size_t tmp;     /* floats: (F, nc * HW) products or gathered deltas, or (c, nc * hw) */
    size_t dw;      /* floats: (F, K) this thread's weight gradient, or (16, F, c) (wino) */
    size_t wm;      /* floats: (16, F, nc * T) products or deltas in the transformed domain (wino) */
    size_t scr;     /* floats: the transforms' scratch (wino) */
    size_t coef;    /* floats: (3, F) per-channel coefficients (thread 0's are used) */
    size_t sums;    /* doubles: (3, F) per-channel sums */
    size_t stride;  /* bytes of one thread's share */
} plan;

static size_t up16(size_t n)
{
    return (n + 15) / 16 * 16;
}

/* The direct convolution's register block: a group of `filters` filters by `positions`
 * positions, kept in registers while the taps stream past (see direct_f16) */
struct direct_block {
    int filters, positions;
    /* G[f][q] for the group's filters and every position q < nq (a multiple of
     * positions); W holds the group's weights tap by tap: W[t*filters + f] */
    void (*group)(const float *restrict P, const int *restrict off, int ntap, const float *restrict W,
                  float *restrict G, size_t gld, size_t nq);
};

/* n rounded up to a multiple of 16 (direct_f1's step) and of the block's positions */
static size_t up_block(size_t n, const struct direct_block *db)
{
    size_t a = (size_t)db->positions, b = 16;
    while (b) {
        size_t r = a % b;
        a = b;
        b = r;
    }
    size_t m = (size_t)db->positions / a * 16; /* their least common multiple */
    return (n + m - 1) / m * m;
}

static size_t maxz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Darknet multiplies a 1x1 convolution's input as it lies (no im2col), whatever its
 * stride and padding: for stride 1 and no padding that is the convolution, otherwise
 * something else, which we leave to Darknet's own kernel. */
static int handled(const layer *l)
{
    return l->type == CONVOLUTIONAL && l->groups == 1 && !l->binary && !l->xnor && l->size >= 1 && l->stride >= 1 &&
           l->out_h > 0 && l->out_w > 0 && l->n > 0 && l->c > 0 && (l->size > 1 || (l->stride == 1 && l->pad == 0));
}

static const struct direct_block *direct_block_of_cpu(void);

static void make_plan(const layer *l, plan *p)
{
    p->K = l->size * l->size * l->c;
    p->F = l->n;
    p->HW = l->out_h * l->out_w;
    p->hw = l->h * l->w;
    p->tconv = l->size > 1 && l->stride == 1 && l->pad <= l->size - 1;
    /* (below 4x4 outputs the transformed filters' size, not the multiplications, sets the
     * time: Darknet's way is faster there) */
    p->wino = l->size == 3 && l->stride == 1 && l->c >= WINO_MIN && l->n >= WINO_MIN && p->HW >= 16;
    if (p->wino) p->tconv = 0;
    p->direct = p->tconv && (size_t)p->F * p->K * sizeof(float) <= DIRECT_MAX_WEIGHTS;
    p->wm = p->scr = 0;
    p->wp = l->w + 2 * l->pad;
    p->hp = l->h + 2 * l->pad;
    p->db = direct_block_of_cpu();
    p->q = up_block((size_t)l->out_h * p->wp, p->db);
    p->plane = up16((size_t)p->hp * p->wp + (size_t)(l->size - 1) * p->wp + l->size + (size_t)p->db->positions);
    size_t kt = (size_t)l->size * l->size * l->n; /* rows of the delta's column matrix */
    /* 1x1: the products read the input where it lies, one image at a time */
    int nc = l->size == 1 && l->stride == 1 && l->pad == 0 ? 1 : (TARGET_COLS + p->HW - 1) / p->HW;
    while (nc > 1 && maxz((size_t)p->K * p->HW, p->tconv ? kt * p->hw : 0) * nc > MAX_COL_FLOATS) --nc;
    p->nc = nc;
    p->wt = p->tconv ? up16(kt * l->c) : 0;
    p->col = up16(maxz((size_t)p->K * nc * p->HW, p->tconv ? kt * nc * p->hw : 0));
    p->tmp = up16(maxz((size_t)p->F * nc * p->HW, p->tconv ? (size_t)l->c * nc * p->hw : 0));
    if (p->direct) {
        p->col = maxz(p->col, (size_t)l->c * p->plane);
        p->tmp = maxz(p->tmp, (size_t)p->F * p->q);
    }
    p->dw = up16((size_t)p->F * p->K);
    if (p->wino) {
        /* (16, c, nc*T) inputs in col, (16, F, nc*T) products in wm, (16, F, c) filters in
         * wt and each thread's filter gradient in dw */
        lwf_wino_geometry(l, &p->g);
        size_t T = (size_t)p->g.T, big = maxz((size_t)l->c, (size_t)p->F);
        nc = (int)maxz(1, WINO_MAX_FLOATS / (16 * big * T));
        p->nc = nc;
        p->wt = 16 * lwf_wino_stream((size_t)p->F * l->c);
        p->col = 16 * lwf_wino_stream((size_t)l->c * nc * T);
        p->tmp = 0;
        p->wm = 16 * lwf_wino_stream((size_t)p->F * nc * T);
        p->dw = p->wt;
        p->scr = up16(lwf_wino_scratch(&p->g));
    }
    p->coef = up16((size_t)3 * p->F);
    p->sums = up16((size_t)3 * p->F);
    p->stride = (p->col + p->tmp + p->dw + p->wm + p->scr + p->coef) * sizeof(float) + p->sums * sizeof(double);
}

int lwf_conv_winograd(const layer *l)
{
    if (!handled(l)) return 0;
    plan p;
    make_plan(l, &p);
    return p.wino;
}

size_t lwf_conv_workspace(const layer *l, int nt)
{
    if (!handled(l)) return 0;
    plan p;
    make_plan(l, &p);
    return p.wt * sizeof(float) + p.stride * (size_t)nt;
}

/* Thread t's buffers inside the network workspace (64-byte aligned when it is). */
typedef struct {
    float *col, *tmp, *dw, *wm, *scr, *coef;
    double *sums;
} tbufs;

static tbufs bufs_of(const network *net, const plan *p, int t)
{
    char *base = (char *)net->workspace + p->wt * sizeof(float) + p->stride * (size_t)t;
    tbufs b;
    b.col = (float *)base;
    b.tmp = b.col + p->col;
    b.dw = b.tmp + p->tmp;
    b.wm = b.dw + p->dw;
    b.scr = b.wm + p->wm;
    b.coef = b.scr + p->scr;
    b.sums = (double *)(void *)(b.coef + p->coef);
    return b;
}

/* ---- row kernels: vectorised for the CPU at hand (target_clones picks the version at
 * load time from what the CPU supports), float arithmetic in Darknet's order except for
 * sums, which use 16 partial sums per row (then double across rows) ---- */

/* x = act(x + bias) */
CLONES static void bias_act(float *x, int n, float bias, ACTIVATION a)
{
    for (int i = 0; i < n; ++i) x[i] += bias;
    if (a == LEAKY)
        for (int i = 0; i < n; ++i) x[i] = x[i] > 0 ? x[i] : .1f * x[i];
    else if (a == RELU)
        for (int i = 0; i < n; ++i) x[i] = x[i] > 0 ? x[i] : 0;
    else if (a != LINEAR)
        activate_array(x, n, a);
}

/* o = act((x - m) * inv * sc + bias): Darknet's x_norm, scaled and shifted, activated */
CLONES static void bn_act(const float *restrict x, float *restrict o, int n, float m, float inv, float sc, float bias,
                          ACTIVATION a)
{
    if (a == LEAKY) {
        for (int i = 0; i < n; ++i) {
            float v = (x[i] - m) * inv * sc + bias;
            o[i] = v > 0 ? v : .1f * v;
        }
        return;
    }
    for (int i = 0; i < n; ++i) o[i] = (x[i] - m) * inv * sc + bias;
    if (a == RELU)
        for (int i = 0; i < n; ++i) o[i] = o[i] > 0 ? o[i] : 0;
    else if (a != LINEAR)
        activate_array(o, n, a);
}

/* x = src (unless the same), then the row's sum and its sum of squares about the row's
 * own mean (Chan et al.'s pairwise form, so a large mean does not cancel the variance). */
CLONES static void copy_moments(float *x, const float *src, int n, double *sum, double *m2)
{
    if (src != x)
        for (int i = 0; i < n; ++i) x[i] = src[i];
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; ++k) acc[k] += x[i + k];
    double s = 0;
    for (int k = 0; k < 16; ++k) s += acc[k];
    for (; i < n; ++i) s += x[i];
    float m = (float)(s / n), q[16] = {0};
    for (i = 0; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; ++k) {
            float d = x[i + k] - m;
            q[k] += d * d;
        }
    double qq = 0;
    for (int k = 0; k < 16; ++k) qq += q[k];
    for (; i < n; ++i) qq += (double)(x[i] - m) * (x[i] - m);
    *sum = s;
    *m2 = qq - (double)n * ((double)m - s / n) * ((double)m - s / n); /* about the exact mean */
}

/* d *= act'(o); s[0] += sum d; with x (batch-norm): s[1] += sum d*x_norm, s[2] +=
 * sum d*(x - m), x_norm = (x - m) * inv computed as the forward pass did. */
CLONES static void grad_sums(float *restrict d, const float *restrict o, const float *restrict x, int n, float m,
                             float inv, ACTIVATION a, double s[3])
{
    if (a == LEAKY)
        for (int i = 0; i < n; ++i) d[i] *= o[i] > 0 ? 1.0f : .1f;
    else if (a == RELU)
        for (int i = 0; i < n; ++i) d[i] *= o[i] > 0 ? 1.0f : 0.0f;
    else if (a != LINEAR)
        gradient_array(o, n, a, d);
    float a0[16] = {0}, a1[16] = {0}, a2[16] = {0};
    int i = 0;
    if (x) {
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; ++k) {
                float c = x[i + k] - m;
                a0[k] += d[i + k];
                a1[k] += d[i + k] * (c * inv);
                a2[k] += d[i + k] * c;
            }
    } else {
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; ++k) a0[k] += d[i + k];
    }
    double r0 = 0, r1 = 0, r2 = 0;
    for (int k = 0; k < 16; ++k) {
        r0 += a0[k];
        r1 += a1[k];
        r2 += a2[k];
    }
    for (; i < n; ++i) {
        r0 += d[i];
        if (x) {
            float c = x[i] - m;
            r1 += (double)d[i] * (c * inv);
            r2 += (double)d[i] * c;
        }
    }
    s[0] += r0;
    s[1] += r1;
    s[2] += r2;
}

/* batch-norm backward: dst = d*cd + (x - m)*cx + c0 (dst may be d) */
CLONES static void bn_delta(float *dst, const float *d, const float *restrict x, int n, float cd, float cx, float c0,
                            float m)
{
    for (int i = 0; i < n; ++i) dst[i] = d[i] * cd + (x[i] - m) * cx + c0;
}

CLONES static void copy_row(float *restrict dst, const float *restrict src, int n)
{
    for (int i = 0; i < n; ++i) dst[i] = src[i];
}

CLONES static void add_rows(float *restrict dst, const float *restrict src, int n)
{
    for (int i = 0; i < n; ++i) dst[i] += src[i];
}

/* ---- im2col / col2im over n consecutive images ---- */

/* Output columns x whose input column x*s - pad + kx lies inside [0, w). */
static void valid_range(int w, int s, int pad, int k, int ow, int *lo, int *hi)
{
    int a = pad - k; /* x*s >= a */
    int l0 = a > 0 ? (a + s - 1) / s : 0;
    int b = w - 1 + pad - k; /* x*s <= b */
    int h0 = b >= 0 ? b / s + 1 : 0;
    if (h0 > ow) h0 = ow;
    if (l0 > ow) l0 = ow;
    if (h0 < l0) h0 = l0;
    *lo = l0;
    *hi = h0;
}

/* col (K, n * HW): row (ch*ks + ky)*ks + kx, column j*HW + y*ow + x holds pixel
 * (y*s - pad + ky, x*s - pad + kx) of channel ch of image j, or 0 outside it.  Rows are
 * short: plain loops (the kernels are built with -fno-tree-loop-distribute-patterns, so
 * they stay loops rather than memset/memcpy calls). */
CLONES static void im2col_n(const float *in, int c, int h, int w, int ks, int s, int pad, int oh, int ow, int n,
                            float *col)
{
    size_t HW = (size_t)oh * ow, ld = (size_t)n * HW;
    for (int ch = 0; ch < c; ++ch)
        for (int ky = 0; ky < ks; ++ky) {
            int ylo, yhi; /* output rows whose input row is inside the image */
            valid_range(h, s, pad, ky, oh, &ylo, &yhi);
            for (int kx = 0; kx < ks; ++kx) {
                float *row = col + ((size_t)(ch * ks + ky) * ks + kx) * ld;
                int xlo, xhi;
                valid_range(w, s, pad, kx, ow, &xlo, &xhi);
                for (int j = 0; j < n; ++j) {
                    const float *im = in + ((size_t)j * c + ch) * h * w;
                    float *dst = row + (size_t)j * HW;
                    for (size_t i = 0; i < (size_t)ylo * ow; ++i) dst[i] = 0;
                    for (size_t i = (size_t)yhi * ow; i < HW; ++i) dst[i] = 0;
                    if (s == 1 && ow == w && yhi > ylo) {
                        /* one span: output row y, column x is input (y - pad + ky, x + shift),
                         * contiguous across rows; the columns that fall outside are zeroed */
                        int shift = kx - pad;
                        const float *src = im + (size_t)(ylo - pad + ky) * w + shift;
                        float *d = dst + (size_t)ylo * ow;
                        size_t cnt = (size_t)(yhi - ylo) * w;
                        size_t a = shift < 0 ? (size_t)-shift : 0, b = shift > 0 ? (size_t)shift : 0;
                        for (size_t i = a; i < cnt - b; ++i) d[i] = src[i];
                        for (int y = 0; y < yhi - ylo; ++y) {
                            float *r = d + (size_t)y * ow;
                            for (int x = 0; x < xlo; ++x) r[x] = 0;
                            for (int x = xhi; x < ow; ++x) r[x] = 0;
                        }
                        continue;
                    }
                    for (int y = ylo; y < yhi; ++y) {
                        float *d = dst + (size_t)y * ow;
                        const float *src = im + (size_t)(y * s - pad + ky) * w - pad + kx;
                        for (int x = 0; x < xlo; ++x) d[x] = 0;
                        if (s == 1)
                            for (int x = xlo; x < xhi; ++x) d[x] = src[x];
                        else
                            for (int x = xlo; x < xhi; ++x) d[x] = src[x * s];
                        for (int x = xhi; x < ow; ++x) d[x] = 0;
                    }
                }
            }
        }
}

/* Adds col (K, n * HW) back onto the images' deltas: the transpose of im2col_n. */
CLONES static void col2im_n(const float *col, int c, int h, int w, int ks, int s, int pad, int oh, int ow, int n, float *im0)
{
    size_t HW = (size_t)oh * ow, ld = (size_t)n * HW;
    for (int j = 0; j < n; ++j)
        for (int ch = 0; ch < c; ++ch) {
            float *im = im0 + ((size_t)j * c + ch) * h * w;
            for (int ky = 0; ky < ks; ++ky) {
                int ylo, yhi;
                valid_range(h, s, pad, ky, oh, &ylo, &yhi);
                for (int kx = 0; kx < ks; ++kx) {
                    const float *src = col + ((size_t)(ch * ks + ky) * ks + kx) * ld + (size_t)j * HW;
                    int xlo, xhi;
                    valid_range(w, s, pad, kx, ow, &xlo, &xhi);
                    for (int y = ylo; y < yhi; ++y) {
                        float *d = im + (size_t)(y * s - pad + ky) * w - pad + kx;
                        const float *r = src + (size_t)y * ow;
                        if (s == 1)
                            for (int x = xlo; x < xhi; ++x) d[x] += r[x];
                        else
                            for (int x = xlo; x < xhi; ++x) d[x * s] += r[x];
                    }
                }
            }
        }
}

/* ---- forward ---- */

typedef struct {
    const layer *l;
    const network *net;
    const lwf_runtime *rt;
    plan p;
    int nt;               /* parts: the threads, or 1 when the batch is smaller (then the
                           * products themselves are split over the threads) */
    int bn_train;         /* batch-norm with batch statistics */
    const float *inv;     /* (F) 1 / (sqrt(var) + 1e-6), set between the two passes */
    const float *mean;    /* (F) the statistics used */
    const float *wtg;     /* direct: weights of each group of filters (p.db), tap by tap */
    const float *u;       /* wino: (16, F, c) transformed filters */
} fctx;

/* ---- Winograd filters: (16, F, c) in the shared part of the workspace ---- */

typedef struct {
    const layer *l;
    const lwf_runtime *rt;
    float *u;
    int nt; /* threads whose filter gradients are summed (wino_grad_part) */
    const network *net;
    const plan *p;
} wctx;

static void filters_part(void *vc, int t, int nt)
{
    const wctx *w = vc;
    int lo, hi;
    lwf_split(w->l->n, t, nt, &lo, &hi);
    lwf_wino_filters(w->l->weights, w->l->n, w->l->c, lo, hi, w->u);
}

static const float *wino_filters(const lwf_runtime *rt, const layer *l, const network *net)
{
    wctx w = {l, rt, (float *)net->workspace, 0, net, NULL};
    lwf_parallel_if(rt, 16.0 * l->n * l->c, filters_part, &w);
    return w.u;
}

/* Runs part t of nt for every t: on the pool, or on this thread when nt is 1. */
static void run(void (*fn)(void *, int, int), void *ctx, int nt)
{
    if (nt == 1) fn(ctx, 0, 1);
    else lwf_parallel(fn, ctx);
}

static void product(int serial, int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                    float beta, float *c, int ldc)
{
    (serial ? lwf_sgemm : lwf_sgemm1)(ta, tb, m, n, k, 1, a, lda, b, ldb, beta, c, ldc);
}

static int direct_input(const layer *l)
{
    return l->size == 1 && l->stride == 1 && l->pad == 0;
}

/* Products of images [a, a + n): (F, n*HW) into b.tmp, or straight into dst1 when the
 * chunk is one image and dst1 is given, or (Winograd) into l.x or l.output as images;
 * returns where they are, and the strides of a filter's rows (fs) and of images (js). */
static const float *chunk_product(const fctx *c, const tbufs *b, int a, int n, float *dst1, size_t *fs, size_t *js)
{
    const layer *l = c->l;
    const plan *p = &c->p;
    const float *in = c->net->input + (size_t)a * l->inputs;
    const float *B = in;
    size_t cols = (size_t)n * p->HW;
    if (p->wino) {
        int F = p->F, C = l->c;
        size_t P = (size_t)n * p->g.T, us = lwf_wino_stream((size_t)F * C), vs = lwf_wino_stream((size_t)C * P),
               ms = lwf_wino_stream((size_t)F * P);
        lwf_wino_in(in, n, C, &p->g, b->col, P, b->scr);
        for (int xi = 0; xi < 16; ++xi)
            product(c->nt == 1, 0, 0, F, (int)P, C, c->u + xi * us, C, b->col + xi * vs, (int)P,
                    0, b->wm + xi * ms, (int)P);
        float *dst = (l->batch_normalize ? l->x : l->output) + (size_t)a * l->outputs;
        lwf_wino_out(b->wm, n, F, &p->g, P, dst, (size_t)l->outputs, (size_t)p->HW, b->scr);
        *fs = (size_t)p->HW;
        *js = (size_t)l->outputs;
        return dst;
    }
    if (!(direct_input(l) && n == 1)) {
        im2col_n(in, l->c, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w, n, b->col);
        B = b->col;
    }
    float *C = n == 1 && dst1 ? dst1 : b->tmp;
    product(c->nt == 1, 0, 0, p->F, (int)cols, p->K, l->weights, p->K, B, (int)cols, 0, C, (int)cols);
    *fs = cols;
    *js = (size_t)p->HW;
    return C;
}

/* ---- direct convolution, for the forward pass of layers with small weights ----
 *
 * Stride 1: the image is copied into zero-padded planes (hp x wp, one per channel), and
 * every output is computed on the padded grid (out_h rows of wp positions, the last
 * size - 1 of each row discarded), so that output q reads plane position
 * q + ky*wp + kx for tap (ky, kx): one contiguous run for all rows.  A block of
 * positions by a group of filters stays in registers while the taps stream past, in
 * Darknet's order (channel, ky, kx), one multiply-add each: the block is chosen at run
 * time from the CPU (direct_blocks). */

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));

/* AVX-512: 16 positions by 16 filters, 16 of its 32 registers of 16 floats */
CLONES static void direct_f16(const float *restrict P, const int *restrict off, int ntap, const float *restrict W,
                              float *restrict G, size_t gld, size_t nq)
{
    for (size_t q0 = 0; q0 < nq; q0 += 16) {
        v16 acc[16];
#pragma GCC unroll 16
        for (int f = 0; f < 16; ++f) acc[f] = (v16){0};
        const float *w = W;
        for (int t = 0; t < ntap; ++t, w += 16) {
            v16 s;
            memcpy(&s, P + q0 + off[t], sizeof s);
#pragma GCC unroll 16
            for (int f = 0; f < 16; ++f) acc[f] += w[f] * s;
        }
#pragma GCC unroll 16
        for (int f = 0; f < 16; ++f) memcpy(G + (size_t)f * gld + q0, &acc[f], sizeof acc[f]);
    }
}

/* AVX2 (16 registers of 8 floats) and others: 24 positions (3 vectors of 8) by 4
 * filters, 12 registers, the 3 position vectors and a broadcast weight in the rest (16
 * by 16 would spill: 32 registers' worth) */
CLONES static void direct_f4(const float *restrict P, const int *restrict off, int ntap, const float *restrict W,
                             float *restrict G, size_t gld, size_t nq)
{
    for (size_t q0 = 0; q0 < nq; q0 += 24) {
        v8 acc[4][3];
#pragma GCC unroll 4
        for (int f = 0; f < 4; ++f)
#pragma GCC unroll 3
            for (int v = 0; v < 3; ++v) acc[f][v] = (v8){0};
        const float *w = W;
        for (int t = 0; t < ntap; ++t, w += 4) {
            v8 s[3];
#pragma GCC unroll 3
            for (int v = 0; v < 3; ++v) memcpy(&s[v], P + q0 + off[t] + 8 * v, sizeof s[v]);
#pragma GCC unroll 4
            for (int f = 0; f < 4; ++f)
#pragma GCC unroll 3
                for (int v = 0; v < 3; ++v) acc[f][v] += w[f] * s[v];
        }
#pragma GCC unroll 4
        for (int f = 0; f < 4; ++f)
#pragma GCC unroll 3
            for (int v = 0; v < 3; ++v) memcpy(G + (size_t)f * gld + q0 + 8 * v, &acc[f][v], sizeof acc[f][v]);
    }
}

/* The blocks: AVX-512's where the CPU has it, otherwise AVX2's, which also suits
 * narrower vector units (SSE: 16 registers of 4 floats) better than 16 x 16 */
static const struct direct_block direct_blocks[] = {
    {16, 16, direct_f16},
    {4, 24, direct_f4},
};

static const struct direct_block *direct_block_of_cpu(void)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) return &direct_blocks[0];
#endif
    return &direct_blocks[1];
}

int lwf_conv_direct(const layer *l)
{
    if (!handled(l)) return 0;
    plan p;
    make_plan(l, &p);
    return p.direct ? p.db->filters : 0;
}

/* the same for one filter (those left over after the groups) */
CLONES static void direct_f1(const float *restrict P, const int *restrict off, int ntap, const float *restrict W,
                             float *restrict G, size_t nq)
{
    for (size_t q0 = 0; q0 < nq; q0 += 16) {
        v16 acc = (v16){0};
        for (int t = 0; t < ntap; ++t) {
            v16 s;
            memcpy(&s, P + q0 + off[t], sizeof s);
            acc += W[t] * s;
        }
        memcpy(G + q0, &acc, sizeof acc);
    }
}

/* One filter's output from its padded grid g (oh rows of wp): rolling batch-norm (bn) or
 * bias, then the activation, for the ow valid columns of each row. */
CLONES static void grid_out(const float *restrict g, float *restrict o, int oh, int ow, int wp, int bn, float m,
                            float inv, float sc, float bias, ACTIVATION a)
{
    for (int y = 0; y < oh; ++y) {
        const float *r = g + (size_t)y * wp;
        float *d = o + (size_t)y * ow;
        if (bn)
            for (int x = 0; x < ow; ++x) d[x] = (r[x] - m) * inv * sc + bias;
        else
            for (int x = 0; x < ow; ++x) d[x] = r[x] + bias;
    }
    size_t n = (size_t)oh * ow;
    if (a == LEAKY)
        for (size_t i = 0; i < n; ++i) o[i] = o[i] > 0 ? o[i] : .1f * o[i];
    else if (a == RELU)
        for (size_t i = 0; i < n; ++i) o[i] = o[i] > 0 ? o[i] : 0;
    else if (a != LINEAR)
        activate_array(o, (int)n, a);
}

/* The valid columns of a padded grid g (oh rows of wp) into x (oh rows of ow). */
CLONES static void grid_rows(const float *restrict g, float *restrict x, int oh, int ow, int wp)
{
    for (int y = 0; y < oh; ++y)
        for (int i = 0; i < ow; ++i) x[(size_t)y * ow + i] = g[(size_t)y * wp + i];
}

/* Image `img` of l: products by direct convolution into G (F, q), then into l.output:
 * bias and activation, or rolling batch-norm and activation; or, with batch statistics,
 * into l.x with this thread's sums (s1, s2) for the statistics. */
static void direct_image(const layer *l, const network *net, const plan *p, const tbufs *b, const fctx *c, int img,
                         int *off, double *s1, double *s2)
{
    int C = l->c, F = l->n, h = l->h, w = l->w, pad = l->pad, ks = l->size, wp = p->wp;
    float *P = b->col, *G = b->tmp;
    const float *in = net->input + (size_t)img * l->inputs;
    for (int ch = 0; ch < C; ++ch) {
        float *pl = P + (size_t)ch * p->plane;
        for (size_t i = 0; i < p->plane; ++i) pl[i] = 0;
        for (int y = 0; y < h; ++y) copy_row(pl + (size_t)(y + pad) * wp + pad, in + ((size_t)ch * h + y) * w, w);
    }
    int ntap = C * ks * ks;
    for (int ch = 0, t = 0; ch < C; ++ch)
        for (int ky = 0; ky < ks; ++ky)
            for (int kx = 0; kx < ks; ++kx) off[t++] = (int)(ch * p->plane) + ky * wp + kx;
    int f = 0, gf = p->db->filters;
    for (; f + gf <= F; f += gf) p->db->group(P, off, ntap, c->wtg + (size_t)f * p->K, G + (size_t)f * p->q, p->q, p->q);
    for (; f < F; ++f) direct_f1(P, off, ntap, l->weights + (size_t)f * p->K, G + (size_t)f * p->q, p->q);
    for (f = 0; f < F; ++f) {
        float *o = l->output + ((size_t)img * F + f) * p->HW;
        int bn = l->batch_normalize;
        if (c->bn_train) {
            float *x = l->x + ((size_t)img * F + f) * p->HW;
            double sum, m2;
            grid_rows(G + (size_t)f * p->q, x, l->out_h, l->out_w, wp);
            copy_moments(x, x, p->HW, &sum, &m2);
            s1[f] += sum;
            s2[f] += m2 + sum * (sum / p->HW);
            continue;
        }
        grid_out(G + (size_t)f * p->q, o, l->out_h, l->out_w, wp, bn, bn ? c->mean[f] : 0, bn ? c->inv[f] : 0,
                 bn ? l->scales[f] : 0, l->biases[f], l->activation);
    }
}

static void direct_part(void *vc, int t, int nt)
{
    const fctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch, t, nt, &lo, &hi);
    tbufs b = bufs_of(c->net, &c->p, t);
    int *off = (int *)(void *)b.dw; /* (c * size * size) tap offsets */
    double *s1 = b.sums, *s2 = b.sums + l->n;
    if (c->bn_train) memset(s1, 0, 2 * (size_t)l->n * sizeof(double));
    for (int img = lo; img < hi; ++img) direct_image(l, c->net, &c->p, &b, c, img, off, s1, s2);
}

static void forward_part(void *vc, int t, int nt)
{
    const fctx *c = vc;
    const layer *l = c->l;
    const plan *p = &c->p;
    int lo, hi;
    lwf_split(l->batch, t, nt, &lo, &hi);
    tbufs b = bufs_of(c->net, p, t);
    double *s1 = b.sums, *s2 = b.sums + p->F;
    if (c->bn_train) memset(s1, 0, 2 * (size_t)p->F * sizeof(double));
    int HW = p->HW;
    for (int a = lo; a < hi; a += p->nc) {
        int n = hi - a < p->nc ? hi - a : p->nc;
        /* without batch-norm the product lands in the output; with batch statistics, in
         * l.x (kept for the backward pass); with rolling ones, in this thread's buffer
         * (Winograd: in l.x) */
        int bn_infer = l->batch_normalize && !c->bn_train;
        float *base = l->batch_normalize ? l->x : l->output;
        size_t fs, js;
        const float *C = chunk_product(c, &b, a, n, bn_infer ? NULL : base + (size_t)a * l->outputs, &fs, &js);
        for (int j = 0; j < n; ++j)
            for (int f = 0; f < p->F; ++f) {
                const float *src = C + (size_t)f * fs + (size_t)j * js;
                size_t at = ((size_t)(a + j) * p->F + f) * HW;
                float *x = base + at;
                if (c->bn_train) {
                    double sum, m2;
                    copy_moments(x, src, HW, &sum, &m2);
                    s1[f] += sum;
                    s2[f] += m2 + sum * (sum / HW); /* sum of squares, in double */
                    continue;
                }
                if (bn_infer) {
                    bn_act(src, l->output + at, HW, c->mean[f], c->inv[f], l->scales[f], l->biases[f], l->activation);
                    continue;
                }
                if (src != x) copy_row(x, src, HW);
                bias_act(x, HW, l->biases[f], l->activation);
            }
    }
}

/* Second pass with batch statistics: normalise, scale, shift, activate.  x_norm is not
 * stored: the backward pass recomputes it from l.x. */
static void normalize_part(void *vc, int t, int nt)
{
    const fctx *c = vc;
    const layer *l = c->l;
    int lo, hi;
    lwf_split(l->batch, t, nt, &lo, &hi);
    int HW = c->p.HW;
    for (int bi = lo; bi < hi; ++bi)
        for (int f = 0; f < l->n; ++f) {
            size_t at = ((size_t)bi * l->n + f) * HW;
            bn_act(l->x + at, l->output + at, HW, c->mean[f], c->inv[f], l->scales[f], l->biases[f], l->activation);
        }
}

/* Parts for layer l: the threads, or 1 for a batch smaller than the threads (then the
 * products are split instead) or a layer too small to be worth splitting. */
static int parts_of(const lwf_runtime *rt, const layer *l)
{
    int nt = lwf_threads();
    double macs = (double)l->batch * l->n * l->size * l->size * l->c * l->out_h * l->out_w;
    return l->batch < nt || macs < 20 * rt->min_work ? 1 : nt;
}

static void forward_all(lwf_kernel_ctx *k, layer l, network net)
{
    int nt = parts_of(&k->rt, &l);
    fctx c = {&l, &net, &k->rt, {0}, nt, l.batch_normalize && net.train, NULL, NULL, NULL, NULL};
    make_plan(&l, &c.p);
    /* Inference: one product per image, all of one shape, so an image's output does not
     * depend on the other images of its batch (OpenBLAS rounds differently for different
     * product shapes): a teacher's recorded responses equal its online ones bit for bit. */
    if (!net.train) c.p.nc = 1;
    int F = l.n;
    float *inv = bufs_of(&net, &c.p, 0).coef; /* (F) */
    if (l.batch_normalize && !net.train) {
        for (int f = 0; f < F; ++f) inv[f] = (float)(1. / (sqrt(l.rolling_variance[f]) + .000001f));
        c.inv = inv;
        c.mean = l.rolling_mean;
    }
    if (c.p.wino) c.u = wino_filters(&k->rt, &l, &net);
    if (c.p.direct) {
        /* (F/G, K, G) in the shared part of the workspace, G filters per group */
        float *wg = (float *)net.workspace;
        int K = c.p.K, G = c.p.db->filters;
        for (int g = 0; g + G <= F; g += G)
            for (int t = 0; t < K; ++t)
                for (int f = 0; f < G; ++f) wg[(size_t)g * K + (size_t)t * G + f] = l.weights[(size_t)(g + f) * K + t];
        c.wtg = wg;
        run(direct_part, &c, nt);
    } else {
        run(forward_part, &c, nt);
    }
    if (!c.bn_train) return;
    /* batch statistics (Darknet: mean, unbiased variance), rolling averages */
    double N = (double)l.batch * c.p.HW;
    for (int f = 0; f < F; ++f) {
        double sa = 0, sb = 0;
        for (int t = 0; t < nt; ++t) {
            tbufs b = bufs_of(&net, &c.p, t);
            sa += b.sums[f];
            sb += b.sums[F + f];
        }
        double m = sa / N;
        double v = N > 1 ? (sb - sa * m) / (N - 1) : 0;
        if (v < 0) v = 0;
        l.mean[f] = (float)m;
        l.variance[f] = (float)v;
        l.rolling_mean[f] *= .99f;
        l.rolling_mean[f] += .01f * l.mean[f];
        l.rolling_variance[f] *= .99f;
        l.rolling_variance[f] += .01f * l.variance[f];
    }
    for (int f = 0; f < F; ++f) inv[f] = (float)(1. / (sqrt(l.variance[f]) + .000001f));
    c.inv = inv;
    c.mean = l.mean;
    run(normalize_part, &c, nt);
}

/* A grown layer's old filters (part 0: the first k->old_rows of every k->old_stride) or its
 * new ones (part 1), in order; returns how many, their indices in f. */
static int part_rows(const layer *l, const lwf_kernel_ctx *k, int part, int *f)
{
    int n = 0;
    for (int r = 0; r < l->n; ++r)
        if ((r % k->old_stride >= k->old_rows) == part) f[n++] = r;
    return n;
}

/* The filters f[0..n) of l gathered as a layer of their own, its arrays in buf (n * (size *
 * size * c + 4) floats), its output out (batch, n, HW). */
static layer gather_rows(const layer *l, const int *f, int n, float *buf, float *out)
{
    layer s = *l;
    size_t K = (size_t)l->size * l->size * l->c;
    s.n = s.out_c = n;
    s.outputs = n * l->out_h * l->out_w;
    s.weights = buf;
    s.biases = buf + (size_t)n * K;
    s.scales = s.biases + n;
    s.rolling_mean = s.scales + n;
    s.rolling_variance = s.rolling_mean + n;
    for (int j = 0; j < n; ++j) {
        memcpy(s.weights + (size_t)j * K, l->weights + (size_t)f[j] * K, K * sizeof(float));
        s.biases[j] = l->biases[f[j]];
        if (!l->batch_normalize) continue;
        s.scales[j] = l->scales[f[j]];
        s.rolling_mean[j] = l->rolling_mean[f[j]];
        s.rolling_variance[j] = l->rolling_variance[f[j]];
    }
    if (!l->batch_normalize) s.scales = s.rolling_mean = s.rolling_variance = NULL;
    s.output = out;
    return s;
}

/* The split layer's workspace: what the parts' own kernels use, then their output, their
 * gathered arrays and the filter indices. */
static size_t split_scratch_at(const layer *l, const lwf_kernel_ctx *k, int nt)
{
    size_t most = 0;
    for (int part = 0; part < 2; ++part) {
        layer s = *l;
        s.n = s.out_c = 0;
        for (int r = 0; r < l->n; ++r) s.n += (r % k->old_stride >= k->old_rows) == part;
        s.outputs = s.n * l->out_h * l->out_w;
        size_t w = lwf_conv_workspace(&s, nt);
        if (w > most) most = w;
    }
    return (most + 63) / 64 * 64;
}

size_t lwf_conv_split_workspace(const layer *l, const lwf_kernel_ctx *k, int nt)
{
    size_t all = lwf_conv_workspace(l, nt),
           split = split_scratch_at(l, k, nt) +
                   ((size_t)l->batch * l->outputs + (size_t)l->n * (l->size * l->size * l->c + 4)) * sizeof(float) +
                   (size_t)l->n * sizeof(int);
    return all > split ? all : split;
}

void lwf_conv_forward(lwf_kernel_ctx *k, layer l, network net)
{
    if (net.train || k->old_rows <= 0) {
        forward_all(k, l, net);
        return;
    }
    /* inference of a grown layer: its old filters gathered, then its new ones, each as a layer */
    float *out = (float *)(void *)((char *)net.workspace + split_scratch_at(&l, k, lwf_threads()));
    float *buf = out + (size_t)l.batch * l.outputs;
    int *f = (int *)(void *)(buf + (size_t)l.n * (l.size * l.size * l.c + 4));
    int HW = l.out_h * l.out_w;
    for (int part = 0; part < 2; ++part) {
        int n = part_rows(&l, k, part, f);
        forward_all(k, gather_rows(&l, f, n, buf, out), net);
        for (int b = 0; b < l.batch; ++b)
            for (int j = 0; j < n; ++j)
                memcpy(l.output + ((size_t)b * l.n + f[j]) * HW, out + ((size_t)b * n + j) * HW,
                       (size_t)HW * sizeof(float));
    }
}

/* ---- backward ---- */

typedef struct {
    const layer *l;
    const network *net;
    const lwf_runtime *rt;
    plan p;
    int nt;                   /* parts (see fctx) */
    const float *mean, *var;  /* (F) statistics of the forward pass */
    const float *inv;         /* (F) 1 / (sqrt(var) + 1e-6): x_norm = (x - mean) * inv */
    const float *cd, *cx, *c0; /* (F) new delta = d*cd + (x - mean)*cx + c0 (batch-norm) */
    const float *wt;          /* (c, F*size*size) flipped weights, when p.tconv */
    const float *u;           /* (16, F, c) transformed filters, when p.wino */
} bctx;

/* Pass 1: delta *= activation gradient; per-channel sums of d, d*x_norm, d*(x - mean). */
static void reduce_part(void *vc, int t, int nt)
{
    const bctx *c = vc;
    const layer *l = c->l;
    int F = c->p.F, HW = c->p.HW;
    int lo, hi;
    lwf_split(l->batch, t, nt, &lo, &hi);
    double *s = bufs_of(c->net, &c->p, t).sums;
    memset(s, 0, 3 * (size_t)F * sizeof(double));
    for (int bi = lo; bi < hi; ++bi)
        for (int f = 0; f < F; ++f) {
            size_t at = ((size_t)bi * F + f) * HW;
            double r[3] = {0, 0, 0};
            if (l->batch_normalize)
                grad_sums(l->delta + at, l->output + at, l->x + at, HW, c->mean[f], c->inv[f], l->activation, r);
            else
                grad_sums(l->delta + at, l->output + at, NULL, HW, 0, 0, l->activation, r);
            s[f] += r[0];
            s[F + f] += r[1];
            s[2 * F + f] += r[2];
        }
}

/* The input delta of images [a, a + n) from their final delta D (F, n*HW), im2col'ed
 * inputs no longer needed in b's buffers. */
static void input_delta(const bctx *c, const tbufs *b, int a, int n, const float *D)
{
    const layer *l = c->l;
    const plan *p = &c->p;
    int F = p->F, HW = p->HW, K = p->K, C = l->c, hw = p->hw, serial = c->nt == 1;
    size_t cols = (size_t)n * HW;
    float *imd = c->net->delta + (size_t)a * l->inputs;
    if (direct_input(l)) {
        /* Darknet writes a 1x1 convolution's input delta (beta 0) instead of adding
         * to it, dropping what a [shortcut] or [route] put there: kept as it is */
        if (n == 1) {
            product(serial, 1, 0, K, (int)cols, F, l->weights, K, D, (int)cols, 0, imd, (int)cols);
        } else {
            product(serial, 1, 0, K, (int)cols, F, l->weights, K, D, (int)cols, 0, b->col, (int)cols);
            for (int j = 0; j < n; ++j)
                for (int ch = 0; ch < K; ++ch)
                    copy_row(imd + ((size_t)j * K + ch) * HW, b->col + (size_t)ch * cols + (size_t)j * HW, HW);
        }
    } else if (p->tconv) {
        int kt = l->size * l->size * F, pt = l->size - 1 - l->pad;
        size_t icols = (size_t)n * hw;
        im2col_n(l->delta + (size_t)a * l->outputs, F, l->out_h, l->out_w, l->size, 1, pt, l->h, l->w, n, b->col);
        if (n == 1) {
            product(serial, 0, 0, C, (int)icols, kt, c->wt, kt, b->col, (int)icols, 1, imd, (int)icols);
        } else {
            product(serial, 0, 0, C, (int)icols, kt, c->wt, kt, b->col, (int)icols, 0, b->tmp, (int)icols);
            for (int j = 0; j < n; ++j)
                for (int ch = 0; ch < C; ++ch)
                    add_rows(imd + ((size_t)j * C + ch) * hw, b->tmp + (size_t)ch * icols + (size_t)j * hw, hw);
        }
    } else {
        product(serial, 1, 0, K, (int)cols, F, l->weights, K, D, (int)cols, 0, b->col, (int)cols);
        col2im_n(b->col, l->c, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w, n, imd);
    }
}

/* Pass 2: per chunk, the delta at the product (batch-norm backward applied), then the
 * weight gradient and the input's delta.
 *
 * The input's delta of a stride-1 convolution is itself a convolution: of the delta
 * (F channels) with the weights flipped in space and transposed (c x F), padded by
 * size - 1 - pad.  As one product with F*size*size terms per sum and no col2im, it
 * replaces Darknet's product with F terms followed by col2im.  Strided convolutions
 * keep that way. */
static void grad_part(void *vc, int t, int nt)
{
    const bctx *c = vc;
    const layer *l = c->l;
    const network *net = c->net;
    const plan *p = &c->p;
    int F = p->F, HW = p->HW, K = p->K, C = l->c;
    int lo, hi;
    lwf_split(l->batch, t, nt, &lo, &hi);
    tbufs b = bufs_of(net, p, t);
    float *dw = t == 0 && !p->wino ? l->weight_updates : b.dw;
    float beta = t == 0 && !p->wino ? 1 : 0;
    int serial = c->nt == 1;
    if (lo == hi && p->wino) memset(b.dw, 0, p->dw * sizeof(float));
    for (int a = lo; a < hi; a += p->nc) {
        int n = hi - a < p->nc ? hi - a : p->nc;
        size_t cols = (size_t)n * HW;
        int gather = n > 1 && !p->wino;
        /* the final delta, in place (l.delta, image layout) and gathered (b.tmp, (F, cols)) */
        for (int j = 0; j < n; ++j)
            for (int f = 0; f < F; ++f) {
                size_t at = ((size_t)(a + j) * F + f) * HW;
                float *d = l->delta + at;
                if (l->batch_normalize) bn_delta(d, d, l->x + at, HW, c->cd[f], c->cx[f], c->c0[f], c->mean[f]);
                if (gather) copy_row(b.tmp + (size_t)f * cols + (size_t)j * HW, d, HW);
            }
        if (p->wino) {
            /* dM from the delta; the filters' gradient dw (16, F, C) += dM V^T; the input
             * delta from dV = U^T dM */
            size_t P = (size_t)n * p->g.T, us = lwf_wino_stream((size_t)F * C), vs = lwf_wino_stream((size_t)C * P),
                   ms = lwf_wino_stream((size_t)F * P);
            const float *in = net->input + (size_t)a * l->inputs;
            lwf_wino_dout(l->delta + (size_t)a * l->outputs, l->outputs, HW, n, F, &p->g, b.wm, P, b.scr);
            lwf_wino_in(in, n, C, &p->g, b.col, P, b.scr);
            for (int xi = 0; xi < 16; ++xi)
                product(serial, 0, 1, F, C, (int)P, b.wm + xi * ms, (int)P, b.col + xi * vs,
                        (int)P, beta, dw + xi * us, C);
            beta = 1;
            if (!net->delta) continue;
            for (int xi = 0; xi < 16; ++xi)
                product(serial, 1, 0, C, (int)P, F, c->u + xi * us, C, b.wm + xi * ms, (int)P, 0,
                        b.col + xi * vs, (int)P);
            lwf_wino_din(b.col, n, C, &p->g, P, net->delta + (size_t)a * l->inputs, b.scr);
            continue;
        }
        const float *D = n > 1 ? b.tmp : l->delta + (size_t)a * l->outputs; /* (F, cols) */
        const float *in = net->input + (size_t)a * l->inputs;
        const float *B = in;
        if (!(direct_input(l) && n == 1)) {
            im2col_n(in, l->c, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w, n, b.col);
            B = b.col;
        }
        product(serial, 0, 1, F, K, (int)cols, D, (int)cols, B, (int)cols, beta, dw, K);
        beta = 1;
        if (net->delta) input_delta(c, &b, a, n, D);
    }
}

/* Pass 3: the other threads' weight gradients added in, split over the weights. */
static void sum_part(void *vc, int t, int nt)
{
    const bctx *c = vc;
    int lo, hi;
    lwf_split(c->l->nweights, t, nt, &lo, &hi);
    float *w = c->l->weight_updates;
    for (int u = 1; u < nt; ++u) add_rows(w + lo, bufs_of(c->net, &c->p, u).dw + lo, hi - lo);
}

/* Winograd: the threads' filter gradients summed (into thread 0's) and transformed back
 * onto l.weight_updates, split over the filters. */
static void wino_grad_part(void *vc, int t, int nt)
{
    const wctx *w = vc;
    const layer *l = w->l;
    int lo, hi, F = l->n, C = l->c;
    lwf_split(F, t, nt, &lo, &hi);
    float *d0 = bufs_of(w->net, w->p, 0).dw;
    for (int u = 1; u < w->nt; ++u) {
        const float *du = bufs_of(w->net, w->p, u).dw;
        for (int xi = 0; xi < 16; ++xi) {
            size_t at = xi * lwf_wino_stream((size_t)F * C) + (size_t)lo * C;
            add_rows(d0 + at, du + at, (hi - lo) * C);
        }
    }
    lwf_wino_filters_grad(d0, F, C, lo, hi, l->weight_updates);
}

/* wt[ch][(f*ks + ky)*ks + kx] = weights[f][ch][ks-1-ky][ks-1-kx] */
static void flip_weights(const layer *l, float *wt)
{
    int ks = l->size, F = l->n, C = l->c, kk = ks * ks;
    for (int f = 0; f < F; ++f)
        for (int ch = 0; ch < C; ++ch) {
            const float *src = l->weights + ((size_t)f * C + ch) * kk;
            float *dst = wt + (size_t)ch * F * kk + (size_t)f * kk;
            for (int k = 0; k < kk; ++k) dst[k] = src[kk - 1 - k];
        }
}

void lwf_conv_backward(lwf_kernel_ctx *k, layer l, network net)
{
    int nt = parts_of(&k->rt, &l);
    bctx c = {&l, &net, &k->rt, {0}, nt, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    make_plan(&l, &c.p);
    int F = l.n;
    tbufs b0 = bufs_of(&net, &c.p, 0);
    float *cd = b0.coef, *cx = cd + F, *c0 = cx + F; /* (F) each */
    if (l.batch_normalize) {
        c.mean = net.train ? l.mean : l.rolling_mean;
        c.var = net.train ? l.variance : l.rolling_variance;
        for (int f = 0; f < F; ++f) cd[f] = (float)(1. / (sqrt(c.var[f]) + .000001f));
        c.inv = cd;
    }
    run(reduce_part, &c, nt);
    double *s = b0.sums;
    for (int t = 1; t < nt; ++t) {
        const double *o = bufs_of(&net, &c.p, t).sums;
        for (int i = 0; i < 3 * F; ++i) s[i] += o[i];
    }
    double N = (double)l.batch * c.p.HW;
    for (int f = 0; f < F; ++f) {
        l.bias_updates[f] += (float)s[f];
        if (!l.batch_normalize) continue;
        l.scale_updates[f] += (float)s[F + f];
        double var = c.var[f];
        double sc = l.scales[f];
        double mean_delta = sc * s[f] * (-1. / sqrt(var + .00001f));
        double var_delta = sc * s[2 * F + f] * (-.5 * pow(var + .00001f, -1.5));
        cd[f] = (float)(sc / sqrt(var + .00001f));
        cx[f] = (float)(var_delta * 2. / N);
        c0[f] = (float)(mean_delta / N);
        l.mean_delta[f] = (float)mean_delta;
        l.variance_delta[f] = (float)var_delta;
    }
    c.cd = cd;
    c.cx = cx;
    c.c0 = c0;
    if (c.p.tconv && net.delta) {
        float *wt = (float *)net.workspace;
        flip_weights(&l, wt);
        c.wt = wt;
    }
    if (c.p.wino && net.delta) c.u = wino_filters(&k->rt, &l, &net);
    run(grad_part, &c, nt);
    if (c.p.wino) {
        wctx w = {&l, &k->rt, NULL, nt, &net, &c.p};
        lwf_parallel_if(&k->rt, 16.0 * F * l.c * nt, wino_grad_part, &w);
    } else if (nt > 1) {
        lwf_parallel(sum_part, &c);
    }
}
