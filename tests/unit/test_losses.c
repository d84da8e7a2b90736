/* The two head losses: [lwf_distill] and the new task's slice-aware [softmax].
 * Gradients by central differences in double precision against a double-precision
 * reference loss, the closed form, hand-computed loss values, and truth slices. */
#include "testutil.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define B 3      /* batch */
#define N 5      /* classes of the head under test */
#define TRUTHS 9 /* truth row: 2 columns before the slice, 2 after */
#define OFF 2

/* Reference: L = sum_b -sum_i y'_i log softmax(z/T)_i in double. */
static double ref_distill_loss(const double *z, const float *truth, double T)
{
    double L = 0;
    for (int b = 0; b < B; ++b) {
        const float *t = truth + b * TRUTHS + OFF;
        double mt = -1e300, mz = -1e300, st = 0, sz = 0;
        for (int i = 0; i < N; ++i) {
            if (t[i] > mt) mt = t[i];
            if (z[b * N + i] > mz) mz = z[b * N + i];
        }
        for (int i = 0; i < N; ++i) {
            st += exp((t[i] - mt) / T);
            sz += exp((z[b * N + i] - mz) / T);
        }
        for (int i = 0; i < N; ++i) {
            double y = exp((t[i] - mt) / T) / st;
            double logp = (z[b * N + i] - mz) / T - log(sz);
            L -= y * logp;
        }
    }
    return L;
}

static double ref_softmax_loss(const double *z, const float *truth)
{
    double L = 0;
    for (int b = 0; b < B; ++b) {
        double mz = -1e300, sz = 0;
        for (int i = 0; i < N; ++i) if (z[b * N + i] > mz) mz = z[b * N + i];
        for (int i = 0; i < N; ++i) sz += exp(z[b * N + i] - mz);
        for (int i = 0; i < N; ++i) L -= truth[b * TRUTHS + OFF + i] * ((z[b * N + i] - mz) - log(sz));
    }
    return L;
}

/* Runs the layer's forward on z and truth; returns its l.cost. */
static float run_forward(layer *l, float *z, float *truth, float *netdelta)
{
    network net = {0};
    net.input = z;
    net.truth = truth;
    net.delta = netdelta;
    net.train = 1;
    l->forward(*l, net);
    return l->cost[0];
}

static void fill_case(float *z, float *truth, unsigned seed, int onehot)
{
    unsigned st = seed;
    tu_fill(z, B * N, &st, -3, 3);
    tu_fill(truth, B * TRUTHS, &st, -3, 3); /* columns outside the slice are noise */
    if (onehot)
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < N; ++i) truth[b * TRUTHS + OFF + i] = (i == (b * 2 + 1) % N);
}

/* Checks delta = -weight * dL/dz by central differences of the double reference.
 * Tolerance 2e-5: the layer computes in float (relative error ~1e-7 on softmax values
 * of order 1, times lambda*T), the reference difference is accurate to ~1e-9. */
static void check_gradient(layer *l, int distill, double T, double weight)
{
    float z[B * N], truth[B * TRUTHS], netdelta[B * N];
    fill_case(z, truth, 7u + (unsigned)(T * 10), !distill);
    memset(netdelta, 0, sizeof netdelta);
    run_forward(l, z, truth, netdelta);
    double zd[B * N];
    for (int i = 0; i < B * N; ++i) zd[i] = z[i];
    double maxabs = 0;
    for (int i = 0; i < B * N; ++i) {
        const double h = 1e-5;
        double keep = zd[i];
        zd[i] = keep + h;
        double lp = distill ? ref_distill_loss(zd, truth, T) : ref_softmax_loss(zd, truth);
        zd[i] = keep - h;
        double lm = distill ? ref_distill_loss(zd, truth, T) : ref_softmax_loss(zd, truth);
        zd[i] = keep;
        double numeric = -weight * (lp - lm) / (2 * h);
        if (fabs(l->delta[i] - numeric) > 2e-5)
            fail_msg("delta[%d] = %.8f, central difference gives %.8f (T=%g, weight=%g)", i, l->delta[i], numeric, T,
                     weight);
        if (fabs(numeric) > maxabs) maxabs = fabs(numeric);
    }
    /* guard: the gradient is not vanishing, so the comparison above meant something */
    assert_true(maxabs > 1e-2);
    /* backward adds the delta into the logits' delta */
    for (int i = 0; i < B * N; ++i) netdelta[i] = 1.0f;
    network net = {0};
    net.delta = netdelta;
    l->backward(*l, net);
    for (int i = 0; i < B * N; ++i) assert_true(fabsf(netdelta[i] - (1.0f + l->delta[i])) < 1e-6f);
}

static layer distill(float T, float lambda, int t2)
{
    layer l = lwf_make_distill_layer(B, N, T, lambda, t2);
    lwf_loss_params *p = lwf_loss_params_of(&l);
    p->offset = OFF;
    p->truths = TRUTHS;
    return l;
}

static void test_distill_gradients(void **state)
{
    (void)state;
    const float Ts[] = {1, 2, 4}, lambdas[] = {0.5f, 1};
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 2; ++b)
            for (int t2 = 0; t2 <= 1; ++t2) {
                layer l = distill(Ts[a], lambdas[b], t2);
                double weight = lambdas[b] * (t2 ? Ts[a] * Ts[a] : 1.0);
                check_gradient(&l, 1, Ts[a], weight);
                lwf_layer_free(l);
            }
}

/* delta = lambda (y' - yhat') / T (times T^2): the closed form of DESIGN.md. */
static void test_distill_closed_form(void **state)
{
    (void)state;
    for (int t2 = 0; t2 <= 1; ++t2) {
        const float T = 4, lambda = 0.5f;
        layer l = distill(T, lambda, t2);
        float z[B * N], truth[B * TRUTHS], nd[B * N] = {0};
        fill_case(z, truth, 99, 0);
        run_forward(&l, z, truth, nd);
        double worst = 0, without_t = 0;
        for (int b = 0; b < B; ++b) {
            float ys[N], yt[N];
            softmax(z + b * N, N, T, 1, ys);
            softmax(truth + b * TRUTHS + OFF, N, T, 1, yt);
            for (int i = 0; i < N; ++i) {
                double want = lambda * (yt[i] - ys[i]) / T * (t2 ? T * T : 1);
                worst = fmax(worst, fabs(l.delta[b * N + i] - want));
                without_t = fmax(without_t, fabs(l.delta[b * N + i] - want * T));
            }
        }
        assert_true(worst < 1e-6);
        /* guard: forgetting the 1/T (or T^2) factor would be caught at this tolerance */
        assert_true(without_t > 1e-3);
        lwf_layer_free(l);
    }
}

/* Targets mode (-method joint: the old head learns from its labels): the labels are the
 * probabilities, T = 1 whatever the layer's temperature and no T^2, and a row whose slice
 * is all zero (an image of another task) gives no delta and is not counted. */
static void test_distill_targets_mode(void **state)
{
    (void)state;
    const float T = 4, lambda = 0.5f;
    layer l = distill(T, lambda, 1);
    lwf_loss_params_of(&l)->targets = 1;
    float z[B * N], truth[B * TRUTHS], nd[B * N] = {0};
    fill_case(z, truth, 5, 1);
    for (int i = 0; i < N; ++i) truth[1 * TRUTHS + OFF + i] = 0; /* row 1: another task's image */
    run_forward(&l, z, truth, nd);
    double worst = 0, with_t = 0, cost = 0;
    for (int b = 0; b < B; ++b) {
        float ys[N];
        softmax(z + b * N, N, 1, 1, ys);
        for (int i = 0; i < N; ++i) {
            float t = truth[b * TRUTHS + OFF + i];
            double want = b == 1 ? 0 : lambda * (t - ys[i]);
            worst = fmax(worst, fabs(l.delta[b * N + i] - want));
            with_t = fmax(with_t, fabs(l.delta[b * N + i] - want / T));
            if (b != 1 && t > 0) cost -= log(ys[i]);
        }
    }
    assert_true(worst < 1e-6);
    assert_true(with_t > 1e-3); /* guard: a 1/T factor would be caught */
    assert_int_equal(lwf_loss_params_of(&l)->rows, B - 1);
    assert_true(fabs(lwf_layer_loss(&l) - cost / (B - 1)) < 1e-5);
    lwf_layer_free(l);
}

/* Hand-computed values: equal logits give log(n); p = (3/4, 1/4) gives
 * -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.5623351446. */
static void test_distill_loss_values(void **state)
{
    (void)state;
    layer l = lwf_make_distill_layer(1, 2, 2, 1, 0);
    lwf_loss_params *p = lwf_loss_params_of(&l);
    p->truths = 2;
    float z[2] = {0, 0}, t[2] = {0, 0}, nd[2] = {0};
    network net = {0};
    net.input = z;
    net.truth = t;
    net.delta = nd;
    l.forward(l, net);
    assert_true(fabs(l.cost[0] - log(2.0)) < 1e-6);
    assert_true(fabsf(l.delta[0]) < 1e-7f);
    /* T = 2: logits 2 ln 3 and 0 soften to 3/4, 1/4 for both teacher and student */
    z[0] = t[0] = (float)(2 * log(3.0));
    l.forward(l, net);
    assert_true(fabs(l.cost[0] - 0.5623351446) < 1e-6);
    assert_true(fabsf(l.delta[0]) < 1e-6f && fabsf(l.delta[1]) < 1e-6f);
    /* the layer's output is the old task's answer at T = 1: softmax(2 ln 3, 0) = (0.9, 0.1) */
    assert_true(fabsf(l.output[0] - 0.9f) < 1e-6f);
    assert_true(fabs(lwf_layer_loss(&l) - 0.5623351446) < 1e-6);
    lwf_layer_free(l);
}

/* The loss reads only its own slice: changing columns outside it changes nothing. */
static void test_distill_reads_its_slice(void **state)
{
    (void)state;
    layer l = distill(2, 1, 0);
    float z[B * N], truth[B * TRUTHS], nd[B * N] = {0};
    fill_case(z, truth, 5, 0);
    float c1 = run_forward(&l, z, truth, nd);
    float d1 = l.delta[3];
    for (int b = 0; b < B; ++b) {
        truth[b * TRUTHS + 0] += 5;
        truth[b * TRUTHS + OFF + N] -= 5;
    }
    float c2 = run_forward(&l, z, truth, nd);
    assert_true(c1 == c2 && d1 == l.delta[3]);
    truth[OFF] += 1; /* inside the slice: must change */
    float c3 = run_forward(&l, z, truth, nd);
    assert_true(c3 != c1);
    lwf_layer_free(l);
}

static layer softmax_head(void)
{
    layer l = make_softmax_layer(B, N, 1);
    l.temperature = 1; /* parse_softmax's default; make_softmax_layer leaves 0 */
    assert_int_equal(lwf_make_softmax_head(&l), 0);
    lwf_loss_params *p = lwf_loss_params_of(&l);
    p->offset = OFF;
    p->truths = TRUTHS;
    return l;
}

static void test_softmax_head_gradient(void **state)
{
    (void)state;
    layer l = softmax_head();
    check_gradient(&l, 0, 1, 1);
    lwf_layer_free(l);
}

/* Same probabilities, delta and per-image loss as stock Darknet's softmax layer on a
 * one-hot truth that is not sliced. */
static void test_softmax_head_matches_stock(void **state)
{
    (void)state;
    layer ours = make_softmax_layer(B, N, 1);
    layer stock = make_softmax_layer(B, N, 1);
    ours.temperature = stock.temperature = 1; /* parse_softmax's default */
    assert_int_equal(lwf_make_softmax_head(&ours), 0);
    lwf_loss_params *p = lwf_loss_params_of(&ours);
    p->offset = 0;
    p->truths = N;
    float z[B * N], truth[B * N], nd[B * N] = {0};
    unsigned st = 3;
    tu_fill(z, B * N, &st, -2, 2);
    memset(truth, 0, sizeof truth);
    for (int b = 0; b < B; ++b) truth[b * N + b] = 1;
    network net = {0};
    net.input = z;
    net.truth = truth;
    net.delta = nd;
    ours.forward(ours, net);
    stock.forward(stock, net);
    for (int i = 0; i < B * N; ++i) {
        assert_true(fabsf(ours.output[i] - stock.output[i]) < 1e-7f);
        assert_true(fabsf(ours.delta[i] - stock.delta[i]) < 1e-7f);
    }
    assert_true(fabsf(ours.cost[0] - stock.cost[0]) < 1e-5f);
    lwf_layer_free(ours);
    lwf_layer_free(stock);
}

/* Both heads score with one cross-entropy (lwf_xent_row), log p from the logits in double:
 * a confident wrong answer costs its full margin (200 here), not -log(FLT_MIN) = 87.3 as a
 * log of the float probability (0 after underflow, then clamped) would; and with
 * [softmax] groups=2 each group is its own softmax: the loss of each half equals the
 * double reference on that half, the delta stays stock Darknet's t - p. */
static void test_softmax_head_log_from_logits(void **state)
{
    (void)state;
    layer l = make_softmax_layer(1, 4, 1);
    l.temperature = 1;
    assert_int_equal(lwf_make_softmax_head(&l), 0);
    lwf_loss_params_of(&l)->truths = 4;
    float z[4] = {0, 200, 0, 0}, t[4] = {1, 0, 0, 0}, nd[4] = {0};
    run_forward(&l, z, t, nd);
    double want = 200 + log(1 + 2 * exp(-200.0) + exp(-200.0)); /* -log softmax(z)_0 */
    if (fabs(l.cost[0] - want) > 1e-3) fail_msg("loss %.6f, want %.6f", l.cost[0], want);
    assert_true(fabsf(l.delta[0] - 1.0f) < 1e-7f); /* t - p with p_0 = 0 */
    lwf_layer_free(l);

    layer g = make_softmax_layer(B, 2 * N, 2);
    g.temperature = 1;
    assert_int_equal(lwf_make_softmax_head(&g), 0);
    lwf_loss_params *p = lwf_loss_params_of(&g);
    p->truths = 2 * N;
    float zg[B * 2 * N], tg[B * 2 * N], ndg[B * 2 * N];
    unsigned st = 11;
    tu_fill(zg, B * 2 * N, &st, -3, 3);
    memset(tg, 0, sizeof tg);
    for (int b = 0; b < B; ++b) {
        tg[b * 2 * N + b % N] = 1;          /* a label in the first group */
        tg[b * 2 * N + N + (b + 2) % N] = 1; /* and one in the second */
    }
    memset(ndg, 0, sizeof ndg);
    run_forward(&g, zg, tg, ndg);
    double ref = 0, worst = 0;
    for (int b = 0; b < B; ++b)
        for (int k = 0; k < 2; ++k) {
            const float *zz = zg + b * 2 * N + k * N, *tt = tg + b * 2 * N + k * N;
            double mz = -1e300, sz = 0;
            for (int i = 0; i < N; ++i) if (zz[i] > mz) mz = zz[i];
            for (int i = 0; i < N; ++i) sz += exp(zz[i] - mz);
            for (int i = 0; i < N; ++i) {
                double pi = exp(zz[i] - mz) / sz;
                ref -= tt[i] * ((zz[i] - mz) - log(sz));
                worst = fmax(worst, fabs(g.delta[b * 2 * N + k * N + i] - (tt[i] - pi)));
            }
        }
    if (fabs(g.cost[0] - ref) > 1e-5 * ref) fail_msg("groups=2: loss %.7f, reference %.7f", g.cost[0], ref);
    assert_true(worst < 1e-6);
    assert_true(ref > 1); /* guard: a loss that was not computed would not pass */
    lwf_layer_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distill_gradients),
        cmocka_unit_test(test_distill_closed_form),
        cmocka_unit_test(test_distill_loss_values),
        cmocka_unit_test(test_distill_targets_mode),
        cmocka_unit_test(test_distill_reads_its_slice),
        cmocka_unit_test(test_softmax_head_gradient),
        cmocka_unit_test(test_softmax_head_matches_stock),
        cmocka_unit_test(test_softmax_head_log_from_logits),
    };
    return cmocka_run_group_tests_name("losses", tests, NULL, NULL);
}
