/* The fast CPU kernels against Darknet's own: convolution (with and without batch-norm,
 * training and inference statistics, every activation we inline and one we do not, the
 * im2col and the Winograd ways),
 * maxpool and avgpool on varied shapes, outputs and every gradient; route; the dropout
 * rule and its stream; a whole training step of a small LwF network (one model with the
 * reference switch on, one with it off); the threaded gemm with each transpose; and the
 * reference switch really switching.  Kernels are called with their context (kctx), as
 * the installed layers call them. */
#define _GNU_SOURCE
#include "testutil.h"
#include "train/train.h"
#include "kernels/kernels.h"
#include "kernels/wino.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tolerances.  Our kernels reassociate float sums: sgemm blocks its K-term dot products
 * (K <= 17*9 = 153 here), batch-norm sums in partial sums and double, libdarknet (built
 * with -Ofast) in its own order.  A float sum's rounding error is at most about K*eps
 * ~ 1e-5 of the sum of its terms' magnitudes, typically sqrt(K)*eps ~ 1e-6.  Each array
 * is compared norm-wise: max|fast - ref| <= TOL * max|ref|.  Batch-norm divides by the
 * batch's standard deviation and its backward subtracts nearly equal sums, which can
 * multiply a relative error several times; so can two training steps: TOL_BN.
 * Winograd layers add their transforms' rounding: sums of 3-9 terms of sixteen products,
 * each value rounded a few more times (halvings are exact), so a few eps more per output.
 * Observed with 1-5 threads: <= 2.8e-6 per layer, <= 2.2e-5 after two steps (a Winograd
 * layer's scales under batch-norm), over this branch's builds (LWF_TEST_VERBOSE=1 prints
 * every comparison). */
#define TOL 1e-5
#define TOL_BN 5e-5

static void near(const char *what, const char *where, const float *ref, const float *got, size_t n, double tol,
                 int nonzero)
{
    double scale = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = fabs((double)ref[i] - got[i]);
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
        if (!(d <= worst)) { /* NaN included */
            worst = d;
            at = i;
        }
    }
    if (nonzero && !(scale > 0)) fail_msg("%s %s: the reference is all zeros (vacuous test)", where, what);
    if (getenv("LWF_TEST_VERBOSE")) fprintf(stderr, "%-60s %-30s max|diff|/max|ref| = %.2g\n", where, what, worst / scale);
    if (!(worst <= tol * scale)) {
        fail_msg("%s %s: element %zu of %zu: reference %.9g, fast %.9g (|diff| %.3g > %.1g x max|ref| %.3g)", where, what,
                 at, n, ref[at], got[at], worst, tol, scale);
    }
}

static void same_int(const char *what, const char *where, const int *ref, const int *got, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (ref[i] != got[i]) fail_msg("%s %s: element %zu: reference %d, fast %d", where, what, i, ref[i], got[i]);
}

static float *rnd(size_t n, unsigned *st, float lo, float hi)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(x);
    tu_fill(x, n, st, lo, hi);
    return x;
}

static void copy_into(float *dst, const float *src, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

/* A kernel's context as the installer makes it (the default runtime); split: with
 * min_work 0, so that even these small layers are split over the threads. */
static lwf_kernel_ctx kctx(int split)
{
    lwf_kernel_ctx k = {lwf_runtime_default(), 0, 0, 0, 0, 0, 0};
    if (split) k.rt.min_work = 0;
    return k;
}

/* ---- convolution ---- */

typedef struct {
    int batch, h, w, c, filters, size, stride, pad, bn;
    ACTIVATION act;
} conv_case;

static const conv_case conv_cases[] = {
    {1, 5, 7, 3, 5, 3, 1, 1, 1, LEAKY},     /* batch 1: the products split over threads */
    {3, 5, 7, 3, 5, 3, 1, 1, 1, LEAKY},     /* odd sizes, several images per product */
    {4, 8, 8, 17, 19, 3, 2, 1, 1, LEAKY},   /* stride 2; channels, filters not multiples of 16 */
    {3, 9, 6, 2, 7, 3, 2, 0, 0, LINEAR},    /* pad 0, stride 2, bias without batch-norm */
    {2, 7, 7, 5, 3, 1, 1, 0, 1, RELU},      /* 1x1 */
    {3, 6, 5, 4, 6, 3, 1, 1, 0, LOGISTIC},  /* logistic */
    {2, 33, 33, 3, 4, 1, 1, 0, 1, LEAKY},   /* one image per product, read in place (1x1) */
    {2, 32, 32, 3, 4, 3, 1, 1, 0, LEAKY},   /* one image per product, 3x3 */
    {5, 4, 4, 16, 32, 3, 1, 1, 1, LINEAR},  /* channels a multiple of 16 */
    {2, 6, 6, 3, 2, 5, 1, 2, 1, LEAKY},     /* 5x5, pad 2 */
    {3, 7, 5, 2, 3, 2, 1, 0, 0, TANH},      /* even kernel; an activation we do not inline */
    {3, 11, 13, 3, 4, 3, 3, 1, 1, LEAKY},   /* stride 3 */
    {2, 5, 5, 2, 3, 3, 1, 3, 0, LINEAR},    /* pad 3 > size - 1: the output is larger */
    /* Winograd (3x3, stride 1, >= 64 channels and filters, >= 16 outputs): */
    {2, 7, 9, 64, 65, 3, 1, 1, 1, LEAKY},   /* odd sizes: tiles cut at both edges */
    {1, 6, 6, 72, 64, 3, 1, 0, 0, LINEAR},  /* batch 1, pad 0 */
    {3, 5, 8, 65, 67, 3, 1, 1, 0, LOGISTIC}, /* channels, filters not multiples of 16 */
    {2, 9, 7, 64, 80, 3, 1, 2, 1, RELU},    /* pad 2: the output is larger */
    {2, 3, 7, 64, 64, 3, 1, 1, 1, LEAKY},   /* one tile row, cut */
    {3, 34, 34, 128, 64, 3, 1, 1, 1, LEAKY}, /* one image per chunk: several chunks */
    {2, 3, 3, 64, 64, 3, 1, 1, 1, LEAKY},   /* under 16 outputs: not Winograd */
};
static const int conv_winograd[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0};
/* the direct convolution's (stride 1, small weights): filters 5, 5, 6, 4, 32, 2, 3 make
 * whole groups of 4 (AVX2's block) and filters left over */
static const int conv_direct[] = {1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};

/* The direct convolution's register block meant for this CPU (see conv.c): AVX-512's
 * 16 filters where the CPU has it, else AVX2's 4.  Only the one for this CPU runs here:
 * on a CPU without AVX-512 these tests cannot reach the AVX-512 block. */
static int direct_filters_for_cpu(void)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) return 16;
#endif
    return 4;
}

static layer make_conv(const conv_case *k)
{
    return make_convolutional_layer(k->batch, k->h, k->w, k->c, k->filters, 1, k->size, k->stride, k->pad, k->act,
                                    k->bn, 0, 0, 0);
}

/* Forward (train or inference) then backward of one case, reference vs fast. */
static void check_conv_case(const conv_case *k, int train, int with_delta, int split)
{
    lwf_kernel_ctx kc = kctx(split);
    char where[160];
    snprintf(where, sizeof where, "conv b%d %dx%dx%d f%d k%d s%d p%d bn%d act%d train%d delta%d", k->batch, k->h,
             k->w, k->c, k->filters, k->size, k->stride, k->pad, k->bn, (int)k->act, train, with_delta);
    layer r = make_conv(k), f = make_conv(k);
    assert_true(lwf_conv_workspace(&f, lwf_threads()) > 0);
    assert_int_equal(lwf_conv_winograd(&f), conv_winograd[k - conv_cases]); /* the path meant */
    assert_int_equal(lwf_conv_direct(&f), conv_direct[k - conv_cases] ? direct_filters_for_cpu() : 0);
    unsigned st = 1234u + (unsigned)k->h * 7u + (unsigned)k->filters;
    size_t nw = (size_t)r.nweights, nf = (size_t)k->filters, nin = (size_t)r.inputs * k->batch,
           nout = (size_t)r.outputs * k->batch;
    float *w = rnd(nw, &st, -0.5f, 0.5f), *b = rnd(nf, &st, -0.3f, 0.3f), *sc = rnd(nf, &st, 0.5f, 1.5f),
          *rm = rnd(nf, &st, -0.2f, 0.2f), *rv = rnd(nf, &st, 0.5f, 2.0f);
    /* a channel offset, so batch-norm's mean is not near zero */
    float *x = rnd(nin, &st, -1, 1);
    for (size_t i = 0; i < nin; ++i) x[i] += 0.5f;
    layer *ls[2] = {&r, &f};
    for (int q = 0; q < 2; ++q) {
        copy_into(ls[q]->weights, w, nw);
        copy_into(ls[q]->biases, b, nf);
        if (k->bn) {
            copy_into(ls[q]->scales, sc, nf);
            copy_into(ls[q]->rolling_mean, rm, nf);
            copy_into(ls[q]->rolling_variance, rv, nf);
        }
    }
    size_t ws = r.workspace_size > lwf_conv_workspace(&f, lwf_threads()) ? r.workspace_size
                                                                        : lwf_conv_workspace(&f, lwf_threads());
    network nr = {0}, nfst = {0};
    nr.input = x;
    nfst.input = x;
    nr.train = nfst.train = train;
    nr.workspace = malloc(ws);
    nfst.workspace = malloc(ws);
    assert_non_null(nr.workspace);
    assert_non_null(nfst.workspace);

    lwf_set_reference(1);
    forward_convolutional_layer(r, nr);
    lwf_set_reference(0);
    lwf_conv_forward(&kc, f, nfst);
    double tb = k->bn ? TOL_BN : TOL;
    near("output", where, r.output, f.output, nout, tb, 1);
    if (k->bn) {
        if (train) near("x (before batch-norm)", where, r.x, f.x, nout, TOL, 1); /* inference: not kept */
        near("rolling mean", where, r.rolling_mean, f.rolling_mean, nf, TOL, 1);
        near("rolling variance", where, r.rolling_variance, f.rolling_variance, nf, TOL, 1);
        if (train) {
            near("mean", where, r.mean, f.mean, nf, TOL, 1);
            near("variance", where, r.variance, f.variance, nf, TOL, 1);
        }
        /* l.x_norm is not stored: our backward recomputes it from l.x */
    }
    if (!train) {
        /* After an inference-mode forward Darknet's batch-norm backward mixes this pass's
         * l.x with the last training pass's l.x_norm; no training plan runs it (a layer
         * that learns runs in training mode), so only the forward pass is compared. */
        free(w), free(b), free(sc), free(rm), free(rv), free(x);
        free(nr.workspace), free(nfst.workspace);
        free_layer(r);
        free_layer(f);
        return;
    }

    /* backward: the same delta, and updates/input deltas that already hold values (the
     * kernels add into them) */
    float *d = rnd(nout, &st, -1, 1), *wu = rnd(nw, &st, -0.1f, 0.1f), *bu = rnd(nf, &st, -0.1f, 0.1f),
          *su = rnd(nf, &st, -0.1f, 0.1f), *dx0 = rnd(nin, &st, -0.1f, 0.1f);
    float *dxr = malloc(nin * sizeof(float)), *dxf = malloc(nin * sizeof(float));
    copy_into(dxr, dx0, nin);
    copy_into(dxf, dx0, nin);
    for (int q = 0; q < 2; ++q) {
        copy_into(ls[q]->delta, d, nout);
        copy_into(ls[q]->weight_updates, wu, nw);
        copy_into(ls[q]->bias_updates, bu, nf);
        if (k->bn) copy_into(ls[q]->scale_updates, su, nf);
    }
    nr.delta = with_delta ? dxr : NULL;
    nfst.delta = with_delta ? dxf : NULL;
    lwf_set_reference(1);
    backward_convolutional_layer(r, nr);
    lwf_set_reference(0);
    lwf_conv_backward(&kc, f, nfst);
    near("delta (after activation and batch-norm backward)", where, r.delta, f.delta, nout, tb, 1);
    near("bias updates", where, r.bias_updates, f.bias_updates, nf, tb, 1);
    near("weight updates", where, r.weight_updates, f.weight_updates, nw, tb, 1);
    if (k->bn) near("scale updates", where, r.scale_updates, f.scale_updates, nf, tb, 1);
    if (with_delta) near("input delta", where, dxr, dxf, nin, tb, 1);
    /* the gradients are not just the values we started from */
    double moved = 0;
    for (size_t i = 0; i < nw; ++i) moved = fmax(moved, fabs((double)f.weight_updates[i] - wu[i]));
    assert_true(moved > 1e-4);

    free(w), free(b), free(sc), free(rm), free(rv), free(x), free(d), free(wu), free(bu), free(su), free(dx0);
    free(dxr), free(dxf);
    free(nr.workspace), free(nfst.workspace);
    free_layer(r);
    free_layer(f);
}

/* Each case twice: small layers stay on one thread, so also with every layer split over
 * the threads (the images, or the products for a batch smaller than the threads). */
static void test_conv_train(void **state)
{
    (void)state;
    for (int split = 0; split < 2; ++split)
        for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; ++i) check_conv_case(&conv_cases[i], 1, 1, split);
}

static void test_conv_inference_and_first_layer(void **state)
{
    (void)state;
    for (int split = 0; split < 2; ++split)
        for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; ++i) {
            check_conv_case(&conv_cases[i], 0, 1, split);
            check_conv_case(&conv_cases[i], 1, 0, split); /* no layer below: no input delta */
        }
}

/* Inference computes each image on its own, so that a teacher's recorded responses equal
 * its online ones bit for bit: an image's output does not depend on its batch, on both
 * ways (im2col and Winograd), on any number of threads. */
static void test_conv_inference_per_image(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        {5, 9, 7, 64, 66, 3, 1, 1, 1, LEAKY}, /* Winograd */
        {5, 9, 7, 24, 66, 3, 1, 1, 1, LEAKY}, /* im2col */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
        const conv_case *k = &cases[i];
        layer big = make_conv(k), one;
        conv_case k1 = *k;
        k1.batch = 1;
        one = make_conv(&k1);
        assert_int_equal(lwf_conv_winograd(&big), i == 0);
        unsigned st = 4321u + (unsigned)i;
        size_t nw = (size_t)big.nweights, nf = (size_t)k->filters, nin = (size_t)big.inputs * k->batch;
        float *w = rnd(nw, &st, -0.5f, 0.5f), *x = rnd(nin, &st, -1, 1), *rv = rnd(nf, &st, 0.5f, 2.0f);
        layer *ls[2] = {&big, &one};
        for (int q = 0; q < 2; ++q) {
            copy_into(ls[q]->weights, w, nw);
            copy_into(ls[q]->rolling_variance, rv, nf);
        }
        size_t ws = lwf_conv_workspace(&big, lwf_threads());
        network nb = {0}, n1 = {0};
        nb.workspace = malloc(ws);
        n1.workspace = malloc(ws);
        assert_non_null(nb.workspace);
        assert_non_null(n1.workspace);
        nb.input = x;
        for (int split = 0; split < 2; ++split) {
            lwf_kernel_ctx kc = kctx(split);
            lwf_conv_forward(&kc, big, nb);
            for (int j = 0; j < k->batch; ++j) {
                n1.input = x + (size_t)j * big.inputs;
                lwf_conv_forward(&kc, one, n1);
                assert_memory_equal(one.output, big.output + (size_t)j * big.outputs, (size_t)big.outputs * sizeof(float));
            }
        }
        free(w), free(x), free(rv), free(nb.workspace), free(n1.workspace);
        free_layer(big);
        free_layer(one);
    }
}

/* ---- pooling: the same comparisons and tie rules, so results are exactly equal ---- */

typedef struct {
    int batch, h, w, c, size, stride, padding;
} pool_case;

static void check_maxpool(const pool_case *k)
{
    lwf_kernel_ctx kc = kctx(1); /* split even these small layers over the threads */
    char where[128];
    snprintf(where, sizeof where, "maxpool b%d %dx%dx%d size %d stride %d padding %d", k->batch, k->h, k->w, k->c,
             k->size, k->stride, k->padding);
    layer r = make_maxpool_layer(k->batch, k->h, k->w, k->c, k->size, k->stride, k->padding);
    layer f = make_maxpool_layer(k->batch, k->h, k->w, k->c, k->size, k->stride, k->padding);
    assert_true(lwf_maxpool_supported(&f));
    unsigned st = 99u + (unsigned)k->h;
    size_t nin = (size_t)r.inputs * k->batch, nout = (size_t)r.outputs * k->batch;
    float *x = rnd(nin, &st, -1, 1);
    for (size_t i = 0; i < nin; i += 7) x[i] = x[i + (i + 1 < nin)]; /* ties */
    float *d = rnd(nout, &st, -1, 1), *dx0 = rnd(nin, &st, -1, 1);
    float *dxr = malloc(nin * sizeof(float)), *dxf = malloc(nin * sizeof(float));
    copy_into(dxr, dx0, nin);
    copy_into(dxf, dx0, nin);
    network nr = {0}, nf = {0};
    nr.input = nf.input = x;
    nr.train = nf.train = 1;
    nr.delta = dxr;
    nf.delta = dxf;
    forward_maxpool_layer(r, nr);
    lwf_maxpool_forward(&kc, f, nf);
    near("output", where, r.output, f.output, nout, 0, 1);
    same_int("indexes", where, r.indexes, f.indexes, nout);
    /* inference: the same maxima (the indexes are not needed) */
    nf.train = 0;
    memset(f.output, 0, nout * sizeof(float));
    lwf_maxpool_forward(&kc, f, nf);
    near("inference output", where, r.output, f.output, nout, 0, 1);
    nf.train = 1;
    copy_into(r.delta, d, nout);
    copy_into(f.delta, d, nout);
    backward_maxpool_layer(r, nr);
    lwf_maxpool_backward(&kc, f, nf);
    near("input delta", where, dxr, dxf, nin, 0, 1);
    free(x), free(d), free(dx0), free(dxr), free(dxf);
    free_layer(r);
    free_layer(f);
}

static void test_maxpool(void **state)
{
    (void)state;
    static const pool_case cases[] = {
        {3, 28, 28, 5, 2, 2, 1},  /* Darknet's default padding = size - 1 */
        {2, 7, 7, 3, 2, 2, 1},    /* odd side: the last window hangs over the edge */
        {1, 9, 8, 17, 3, 2, 2},   /* 3x3 stride 2 */
        {4, 6, 5, 2, 2, 1, 1},    /* stride 1 */
        {2, 8, 8, 3, 2, 2, 0},    /* no padding */
        {2, 10, 7, 4, 3, 3, 0},   /* size = stride 3, no padding */
        {1, 5, 5, 1, 5, 1, 4},    /* window larger than most of the image */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) check_maxpool(&cases[i]);
}

static void test_avgpool(void **state)
{
    (void)state;
    lwf_kernel_ctx kc = kctx(1); /* split over the threads */
    static const int shapes[][4] = {{3, 7, 7, 5}, {1, 1, 1, 3}, {4, 13, 5, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; ++s) {
        int bt = shapes[s][0], h = shapes[s][1], w = shapes[s][2], c = shapes[s][3];
        char where[64];
        snprintf(where, sizeof where, "avgpool b%d %dx%dx%d", bt, h, w, c);
        layer r = make_avgpool_layer(bt, w, h, c), f = make_avgpool_layer(bt, w, h, c);
        unsigned st = 5;
        size_t nin = (size_t)r.inputs * bt, nout = (size_t)r.outputs * bt;
        float *x = rnd(nin, &st, -1, 1), *d = rnd(nout, &st, -1, 1), *dx0 = rnd(nin, &st, -1, 1);
        float *dxr = malloc(nin * sizeof(float)), *dxf = malloc(nin * sizeof(float));
        copy_into(dxr, dx0, nin);
        copy_into(dxf, dx0, nin);
        network nr = {0}, nf = {0};
        nr.input = nf.input = x;
        nr.delta = dxr;
        nf.delta = dxf;
        forward_avgpool_layer(r, nr);
        lwf_avgpool_forward(&kc, f, nf);
        /* libdarknet is built with -Ofast: its sums may be reassociated too */
        near("output", where, r.output, f.output, nout, TOL, 1);
        copy_into(r.delta, d, nout);
        copy_into(f.delta, d, nout);
        backward_avgpool_layer(r, nr);
        lwf_avgpool_backward(&kc, f, nf);
        near("input delta", where, dxr, dxf, nin, TOL, 1);
        free(x), free(d), free(dx0), free(dxr), free(dxf);
        free_layer(r);
        free_layer(f);
    }
}

/* [route]: the same copies and additions as Darknet's, so exactly equal */
static void test_route(void **state)
{
    (void)state;
    lwf_kernel_ctx kc = kctx(1); /* split over the threads */
    int batch = 3, s0 = 7 * 5 * 2, s1 = 7 * 5 * 3;
    network net = {0};
    layer layers[3];
    memset(layers, 0, sizeof layers);
    unsigned st = 8;
    for (int k = 0; k < 2; ++k) {
        size_t n = (size_t)batch * (k ? s1 : s0);
        layers[k].output = rnd(n, &st, -1, 1);
        layers[k].delta = rnd(n, &st, -1, 1);
    }
    int idx[2] = {0, 1}, sizes[2] = {s0, s1};
    int *i1 = malloc(sizeof idx), *z1 = malloc(sizeof sizes), *i2 = malloc(sizeof idx), *z2 = malloc(sizeof sizes);
    memcpy(i1, idx, sizeof idx), memcpy(z1, sizes, sizeof sizes), memcpy(i2, idx, sizeof idx), memcpy(z2, sizes, sizeof sizes);
    layer r = make_route_layer(batch, 2, i1, z1), f = make_route_layer(batch, 2, i2, z2);
    net.layers = layers;
    net.n = 3;
    forward_route_layer(r, net);
    lwf_route_forward(&kc, f, net);
    near("output", "route", r.output, f.output, (size_t)batch * r.outputs, 0, 1);
    float *d = rnd((size_t)batch * r.outputs, &st, -1, 1);
    float *keep[2];
    for (int k = 0; k < 2; ++k) {
        size_t n = (size_t)batch * (k ? s1 : s0);
        keep[k] = malloc(n * sizeof(float));
        copy_into(keep[k], layers[k].delta, n);
    }
    copy_into(r.delta, d, (size_t)batch * r.outputs);
    copy_into(f.delta, d, (size_t)batch * r.outputs);
    backward_route_layer(r, net);
    float *after[2];
    for (int k = 0; k < 2; ++k) {
        size_t n = (size_t)batch * (k ? s1 : s0);
        after[k] = malloc(n * sizeof(float));
        copy_into(after[k], layers[k].delta, n);
        copy_into(layers[k].delta, keep[k], n);
    }
    lwf_route_backward(&kc, f, net);
    for (int k = 0; k < 2; ++k) near("source delta", "route", after[k], layers[k].delta, (size_t)batch * (k ? s1 : s0), 0, 1);
    for (int k = 0; k < 2; ++k) free(layers[k].output), free(layers[k].delta), free(keep[k]), free(after[k]);
    free(d);
    free_layer(r);
    free_layer(f);
}

/* [dropout]: another random stream than Darknet's (see dropout.c), so the tests are of
 * the rule: a value is dropped exactly when its uniform is below the probability,
 * otherwise scaled; the backward pass follows the same mask; about p of the values go.
 * And of the stream: a function of (seed, layer, images seen, pass at that count) only,
 * the same on one thread or several. */
typedef struct {
    layer l;
    network net;
    float *x0, *d0; /* (batch * inputs) the input and the delta each pass starts from */
    size_t n;
} drop_case;

/* One training pass (forward and backward) with context k at *seen; checks the rule and
 * returns the mask's output in out. */
static void dropout_pass(drop_case *c, lwf_kernel_ctx *k, size_t seen, float *out)
{
    layer *l = &c->l;
    float p = l->probability;
    size_t s = seen;
    c->net.seen = &s;
    copy_into(c->net.input, c->x0, c->n);
    copy_into(c->net.delta, c->d0, c->n);
    lwf_dropout_forward(k, *l, c->net);
    lwf_dropout_backward(k, *l, c->net);
    size_t dropped = 0;
    const float *x = c->net.input, *d = c->net.delta;
    for (size_t i = 0; i < c->n; ++i) {
        int drop = l->rand[i] < p;
        dropped += (size_t)drop;
        if (!(l->rand[i] >= 0 && l->rand[i] < 1)) fail_msg("dropout: uniform %zu is %g", i, l->rand[i]);
        if (x[i] != (drop ? 0 : c->x0[i] * l->scale) || d[i] != (drop ? 0 : c->d0[i] * l->scale))
            fail_msg("dropout: value %zu: uniform %g, in %g out %g, delta %g -> %g", i, l->rand[i], c->x0[i], x[i],
                     c->d0[i], d[i]);
    }
    double frac = (double)dropped / c->n;
    if (fabs(frac - p) > 0.02) fail_msg("dropout: %.4f of the values dropped, expected about %.2f", frac, p);
    copy_into(out, x, c->n);
    c->net.seen = NULL;
}

static void same_or_not(const char *what, const float *a, const float *b, size_t n, int same)
{
    int eq = memcmp(a, b, n * sizeof(float)) == 0;
    if (eq != same) fail_msg("dropout: %s: the masks are %s", what, eq ? "the same" : "different");
}

static void test_dropout(void **state)
{
    (void)state;
    int batch = 4, inputs = 5000;
    drop_case c = {make_dropout_layer(batch, inputs, 0.3f), {0}, NULL, NULL, (size_t)batch * inputs};
    unsigned st = 2;
    size_t n = c.n, bytes = n * sizeof(float);
    c.x0 = rnd(n, &st, 0.5f, 1.5f);
    c.d0 = rnd(n, &st, 0.5f, 1.5f);
    c.net.train = 1;
    c.net.input = malloc(bytes);
    c.net.delta = malloc(bytes);
    float *a = malloc(bytes), *b = malloc(bytes), *e = malloc(bytes);
    lwf_kernel_ctx k1 = kctx(0), ks = kctx(1); /* one thread; split over the threads */
    k1.rt.seed = ks.rt.seed = 7;
    dropout_pass(&c, &k1, 128, a);
    dropout_pass(&c, &ks, 128, b);
    same_or_not("seed 7, 128 images seen, on one thread and on several", a, b, n, 1);
    dropout_pass(&c, &ks, 128, b);
    same_or_not("a second pass at the same count", a, b, n, 0);
    dropout_pass(&c, &ks, 256, b);
    /* a fresh context at 256 (a resumed run) draws what one that went through 128 did */
    lwf_kernel_ctx kr = kctx(1);
    kr.rt.seed = 7;
    dropout_pass(&c, &kr, 256, e);
    same_or_not("256 images seen, resumed there or not", b, e, n, 1);
    same_or_not("128 and 256 images seen", a, b, n, 0);
    lwf_kernel_ctx k8 = kctx(1), kl = kctx(1);
    k8.rt.seed = 8;
    dropout_pass(&c, &k8, 128, b);
    same_or_not("seeds 7 and 8", a, b, n, 0);
    kl.rt.seed = 7;
    kl.index = 1;
    dropout_pass(&c, &kl, 128, b);
    same_or_not("layers 0 and 1", a, b, n, 0);
    /* inference: nothing changes */
    copy_into(c.net.input, c.x0, n);
    c.net.train = 0;
    lwf_dropout_forward(&k1, c.l, c.net);
    near("inference output", "dropout", c.x0, c.net.input, n, 0, 1);
    free(c.x0), free(c.d0), free(c.net.input), free(c.net.delta), free(a), free(b), free(e);
    free_layer(c.l);
}

/* ---- a whole training step ---- */

static const char *step_cfg =
    "[net]\nbatch=6\nheight=13\nwidth=13\nchannels=3\nlearning_rate=0.05\nmomentum=0.9\ndecay=0.0005\n"
    "[convolutional]\nbatch_normalize=1\nfilters=6\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=64\nsize=1\nstride=1\npad=0\nactivation=leaky\n"
    "[convolutional]\nbatch_normalize=1\nfilters=64\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* Winograd */
    "[convolutional]\nbatch_normalize=1\nfilters=9\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=7\nsize=1\nstride=1\npad=0\nactivation=relu\n"
    "[task]\nname=old\n"
    "[convolutional]\nfilters=4\nsize=1\nstride=1\nactivation=linear\n[avgpool]\n"
    "[lwf_distill]\ntemperature=2\nlambda=1\n"
    "[task]\nname=new\n"
    "[connected]\noutput=5\nactivation=linear\n"
    "[softmax]\n";

typedef struct {
    float *p;
    size_t n;
    const char *name;
} param;

/* Every learned or tracked array of the network, in a fixed order. */
static int params_of(network *net, param *out)
{
    int n = 0;
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type != CONVOLUTIONAL && l->type != CONNECTED) continue;
        size_t nb = (size_t)(l->type == CONVOLUTIONAL ? l->n : l->outputs);
        /* Darknet's [connected] leaves nweights at 0 */
        size_t nw = l->type == CONVOLUTIONAL ? (size_t)l->nweights : (size_t)l->inputs * l->outputs;
        out[n++] = (param){l->weights, nw, "weights"};
        out[n++] = (param){l->biases, nb, "biases"};
        if (l->batch_normalize) {
            out[n++] = (param){l->scales, nb, "scales"};
            out[n++] = (param){l->rolling_mean, nb, "rolling mean"};
            out[n++] = (param){l->rolling_variance, nb, "rolling variance"};
        }
    }
    return n;
}

static void test_training_step(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *cfg = tu_write(dir, "step.cfg", step_cfg);
    /* built alike (the reference switch is read when the layers run, not when they are
     * installed): mr runs with the switch on, mf with it off */
    lwf_set_reference(1);
    lwf_model *mr = tu_load(cfg, 0);
    lwf_set_reference(0);
    lwf_model *mf = tu_load(cfg, 0);
    int fast = 0, wino = 0;
    for (int i = 0; i < mr->net->n; ++i) {
        assert_int_equal(lwf_kernels_installed(&mr->net->layers[i]), lwf_kernels_installed(&mf->net->layers[i]));
        fast += lwf_kernels_installed(&mf->net->layers[i]);
        wino += lwf_kernels_installed(&mf->net->layers[i]) && lwf_conv_winograd(&mf->net->layers[i]);
    }
    assert_int_equal(fast, 8); /* 6 convolutions, the maxpool, the avgpool ([task]s share the trunk output) */
    assert_int_equal(wino, 1);
    /* the same weights in both */
    lwf_err err;
    char *wpath = tu_write(dir, "w.weights", "");
    assert_int_equal(lwf_weights_save(mr->net, wpath, mr->net->n, 0, &err), 0);
    assert_int_equal(lwf_weights_load(mf->net, wpath, mf->net->n, NULL, &err), 0);
    param pr[64], pf[64];
    int np = params_of(mr->net, pr);
    assert_int_equal(params_of(mf->net, pf), np);
    float *before[64];
    for (int k = 0; k < np; ++k) {
        before[k] = malloc(pr[k].n * sizeof(float));
        copy_into(before[k], pr[k].p, pr[k].n);
    }
    lwf_model *ms[2] = {mr, mf};
    lwf_plan plans[2];
    for (int q = 0; q < 2; ++q) assert_int_equal(lwf_plan_make(ms[q], LWF_PASS_JOINT, &plans[q]), 0);
    for (int step = 0; step < 2; ++step) {
        double loss[2][2];
        for (int q = 0; q < 2; ++q) {
            network *net = ms[q]->net;
            unsigned st = 77u + (unsigned)step;
            tu_fill(net->input, (size_t)net->inputs * net->batch, &st, 0, 1);
            memset(net->truth, 0, (size_t)net->truths * net->batch * sizeof(float));
            for (int b = 0; b < net->batch; ++b) {
                float *row = net->truth + (size_t)b * net->truths;
                tu_fill(row + ms[q]->tasks[0].offset, (size_t)ms[q]->tasks[0].classes, &st, -2, 2);
                row[ms[q]->tasks[1].offset + (b + step) % ms[q]->tasks[1].classes] = 1;
            }
            lwf_set_reference(q == 0);
            lwf_forward(net, &plans[q]);
            lwf_backward(net, &plans[q]);
            lwf_update(net, &plans[q], 0.05f);
            lwf_set_reference(0);
            for (int t = 0; t < 2; ++t) loss[q][t] = lwf_layer_loss(&net->layers[ms[q]->tasks[t].loss]);
        }
        for (int t = 0; t < 2; ++t)
            if (!(fabs(loss[0][t] - loss[1][t]) <= 1e-5 * fabs(loss[0][t])))
                fail_msg("step %d task %d: loss %.9g (reference) vs %.9g (fast)", step, t, loss[0][t], loss[1][t]);
    }
    /* the switch switched: Darknet's batch-norm keeps x_norm, the fast kernel does not
     * (layer 0: a batch-normalised convolution, both kernels installed) */
    size_t n0 = (size_t)mr->net->layers[0].outputs * mr->net->batch;
    double xr = 0, xf = 0;
    for (size_t i = 0; i < n0; ++i) {
        xr = fmax(xr, fabs(mr->net->layers[0].x_norm[i]));
        xf = fmax(xf, fabs(mf->net->layers[0].x_norm[i]));
    }
    if (!(xr > 0) || xf != 0) fail_msg("layer 0's x_norm: max %g with the switch on, %g off", xr, xf);
    /* each parameter's change over the two steps: fast within TOL_BN of the reference */
    for (int k = 0; k < np; ++k) {
        float *dr = malloc(pr[k].n * sizeof(float)), *df = malloc(pr[k].n * sizeof(float));
        for (size_t i = 0; i < pr[k].n; ++i) {
            dr[i] = pr[k].p[i] - before[k][i];
            df[i] = pf[k].p[i] - before[k][i];
        }
        char where[64];
        snprintf(where, sizeof where, "training step, array %d", k);
        near(pr[k].name, where, dr, df, pr[k].n, TOL_BN, 1);
        free(dr), free(df), free(before[k]);
    }
    for (int q = 0; q < 2; ++q) lwf_plan_free(&plans[q]);
    lwf_model_free(mr);
    lwf_model_free(mf);
    free(wpath);
    free(cfg);
    tu_rmdir(dir);
    free(dir);
}

/* ---- the switch ---- */

typedef void (*gemm_fn)(int, int, int, int, int, float, float *, int, float *, int, float, float *, int);

/* libdarknet's own `gemm` (its call to gemm_cpu goes through the PLT, to ours) */
static gemm_fn darknet_gemm(void)
{
    Dl_info info;
    assert_true(dladdr((void *)fill_cpu, &info) && info.dli_fname);
    void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    assert_non_null(h);
    void *f = dlsym(h, "gemm");
    dlclose(h);
    assert_non_null(f);
    assert_true(f != (void *)gemm); /* the library's, not the one in this binary */
    return (gemm_fn)f;
}

static void test_reference_switch(void **state)
{
    (void)state;
    lwf_kernel_stats s0, s1, s2;
    lwf_kernel_stats_get(&s0);
    assert_true(s0.darknet_gemm_found);
    int M = 7, N = 9, K = 11;
    unsigned st = 3;
    float *A = rnd((size_t)M * K, &st, -1, 1), *B = rnd((size_t)K * N, &st, -1, 1), *C0 = rnd((size_t)M * N, &st, -1, 1);
    float *Cf = malloc(sizeof(float) * M * N), *Cr = malloc(sizeof(float) * M * N), *Cn = malloc(sizeof(float) * M * N);
    copy_into(Cf, C0, (size_t)M * N);
    copy_into(Cr, C0, (size_t)M * N);
    gemm_fn dg = darknet_gemm();
    lwf_set_reference(0);
    dg(0, 0, M, N, K, 0.5f, A, K, B, N, 0.25f, Cf, N);
    lwf_kernel_stats_get(&s1);
    assert_int_equal(s1.fast_gemm, s0.fast_gemm + 1);
    assert_int_equal(s1.ref_gemm, s0.ref_gemm);
    lwf_set_reference(1);
    assert_int_equal(lwf_reference(), 1);
    dg(0, 0, M, N, K, 0.5f, A, K, B, N, 0.25f, Cr, N);
    lwf_set_reference(0);
    lwf_kernel_stats_get(&s2);
    assert_int_equal(s2.ref_gemm, s1.ref_gemm + 1);
    assert_int_equal(s2.fast_gemm, s1.fast_gemm);
    /* the reference is Darknet's loop exactly: C *= BETA, then C += (ALPHA*A[i][k]) * B[k][j] in k order */
    for (int i = 0; i < M; ++i) {
        for (int j = 0; j < N; ++j) Cn[i * N + j] = C0[i * N + j] * 0.25f;
        for (int k = 0; k < K; ++k) {
            float a = 0.5f * A[i * K + k];
            for (int j = 0; j < N; ++j) Cn[i * N + j] += a * B[k * N + j];
        }
    }
    for (int i = 0; i < M * N; ++i)
        if (Cr[i] != Cn[i]) fail_msg("reference gemm element %d: %.9g, Darknet's loop %.9g", i, Cr[i], Cn[i]);
    near("gemm", "fast vs reference", Cr, Cf, (size_t)M * N, TOL, 1);
    /* every transpose combination through libdarknet's entry point, against the reference */
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            copy_into(Cf, C0, (size_t)M * N);
            copy_into(Cr, C0, (size_t)M * N);
            int lda = ta ? M : K, ldb = tb ? K : N;
            dg(ta, tb, M, N, K, 1.5f, A, lda, B, ldb, 1, Cf, N);
            lwf_set_reference(1);
            dg(ta, tb, M, N, K, 1.5f, A, lda, B, ldb, 1, Cr, N);
            lwf_set_reference(0);
            char where[32];
            snprintf(where, sizeof where, "TA=%d TB=%d", ta, tb);
            near("gemm", where, Cr, Cf, (size_t)M * N, TOL, 1);
        }
    free(A), free(B), free(C0), free(Cf), free(Cr), free(Cn);
}

/* The threaded product (lwf_sgemm: at least LWF_SGEMM_SPLIT_MACS multiply-adds, split into
 * blocks of rows of C when m >= n, of columns otherwise), reached through libdarknet's
 * `gemm`, with each transpose, against a double-precision product.  Strides larger than
 * the matrices, sizes not multiples of the 16-wide blocks.  Tolerance: 200-term float sums
 * err by at most about 200 eps ~ 1.2e-5 of the sum of their terms' magnitudes, typically
 * sqrt(200) eps ~ 1e-6; compared norm-wise as everywhere here (TOL). */
static void test_threaded_gemm(void **state)
{
    (void)state;
    if (lwf_threads() < 2) skip(); /* one thread: no split to test */
    static const int shapes[][3] = {{150, 70, 200}, {70, 150, 200}}; /* rows split; columns split */
    gemm_fn dg = darknet_gemm();
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; ++s)
        for (int ta = 0; ta < 2; ++ta)
            for (int tb = 0; tb < 2; ++tb) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                assert_true((double)M * N * K >= LWF_SGEMM_SPLIT_MACS);
                int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
                size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
                unsigned st = 11u + (unsigned)(s * 4 + ta * 2 + tb);
                float *A = rnd(na, &st, -1, 1), *B = rnd(nb, &st, -1, 1), *C = rnd(nc, &st, -1, 1);
                float *want = malloc(nc * sizeof(float));
                assert_non_null(want);
                float alpha = 0.75f, beta = 0.5f;
                for (int i = 0; i < M; ++i)
                    for (int j = 0; j < ldc; ++j) {
                        if (j >= N) { /* beyond the matrix: untouched */
                            want[(size_t)i * ldc + j] = C[(size_t)i * ldc + j];
                            continue;
                        }
                        double sum = 0;
                        for (int q = 0; q < K; ++q)
                            sum += (double)(ta ? A[(size_t)q * lda + i] : A[(size_t)i * lda + q]) *
                                   (tb ? B[(size_t)j * ldb + q] : B[(size_t)q * ldb + j]);
                        want[(size_t)i * ldc + j] = (float)(alpha * sum + beta * C[(size_t)i * ldc + j]);
                    }
                lwf_kernel_stats s0, s1;
                lwf_kernel_stats_get(&s0);
                dg(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
                lwf_kernel_stats_get(&s1);
                assert_int_equal(s1.fast_gemm, s0.fast_gemm + 1); /* ours, not Darknet's loop */
                char where[64];
                snprintf(where, sizeof where, "threaded gemm %dx%dx%d TA=%d TB=%d", M, N, K, ta, tb);
                near("C", where, want, C, nc, TOL, 1);
                free(A), free(B), free(C), free(want);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_switch),
        cmocka_unit_test(test_threaded_gemm),
        cmocka_unit_test(test_conv_train),
        cmocka_unit_test(test_conv_inference_and_first_layer),
        cmocka_unit_test(test_conv_inference_per_image),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_training_step),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
