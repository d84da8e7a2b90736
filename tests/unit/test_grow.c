/* [lwf_softmax], the loss of a head that grows: its delta against central differences of a
 * double-precision reference loss (cross-entropy over all K + M outputs plus lambda times the
 * distillation of the first K at T), the closed form, an unlabelled row, no teacher, and a
 * hand-computed value. */
#include "testutil.h"
#include "layers/layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define B 3           /* batch */
#define N 7           /* outputs: K old + M new */
#define K 4           /* old classes */
#define OFF 2         /* two noise columns before the slice */
#define TRUTHS (OFF + N + K + 2)

/* -sum_i t_i log softmax(z / T)_i over n values, t given as probabilities, in double */
static double xent(const double *z, const double *t, int n, double T)
{
    double mz = -1e300, s = 0, L = 0;
    for (int i = 0; i < n; ++i) mz = fmax(mz, z[i]);
    for (int i = 0; i < n; ++i) s += exp((z[i] - mz) / T);
    for (int i = 0; i < n; ++i) L -= t[i] * ((z[i] - mz) / T - log(s));
    return L;
}

/* The loss of DESIGN.md (Class-incremental) for the batch. */
static double ref_loss(const double *z, const float *truth, double T, double lambda, int t2, int distill)
{
    double L = 0;
    for (int b = 0; b < B; ++b) {
        const float *t = truth + b * TRUTHS + OFF;
        double tt[N], yt[K], mt = -1e300, st = 0;
        for (int i = 0; i < N; ++i) tt[i] = t[i];
        L += xent(z + b * N, tt, N, 1);
        if (!distill) continue;
        for (int i = 0; i < K; ++i) mt = fmax(mt, t[N + i]);
        for (int i = 0; i < K; ++i) st += exp((t[N + i] - mt) / T);
        for (int i = 0; i < K; ++i) yt[i] = exp((t[N + i] - mt) / T) / st;
        L += lambda * (t2 ? T * T : 1) * xent(z + b * N, yt, K, T);
    }
    return L;
}

static layer grown(float T, float lambda, int t2, int distill)
{
    layer l = lwf_make_grow_layer(B, N, K, T, lambda, t2);
    lwf_loss_params *p = lwf_loss_params_of(&l);
    p->offset = OFF;
    p->truths = TRUTHS;
    p->distill = distill;
    return l;
}

/* logits and truth rows: noise outside the slice, a one-hot label per row (row 1
 * unlabelled when `unlabelled`), teacher logits in the last K columns */
static void fill_case(float *z, float *truth, unsigned seed, int unlabelled)
{
    unsigned st = seed;
    tu_fill(z, B * N, &st, -3, 3);
    tu_fill(truth, B * TRUTHS, &st, -3, 3);
    for (int b = 0; b < B; ++b)
        for (int i = 0; i < N; ++i)
            truth[b * TRUTHS + OFF + i] = (!unlabelled || b != 1) && i == (b * 3 + 2) % N;
}

static void forward(layer *l, float *z, float *truth)
{
    network net = {0};
    net.input = z;
    net.truth = truth;
    net.train = 1;
    l->forward(*l, net);
}

/* delta = -dL/dz to 2e-5 (float arithmetic against a double reference with h = 1e-5,
 * accurate to ~1e-9), and not vanishing */
static void check_gradient(float T, float lambda, int t2, int distill, int unlabelled)
{
    layer l = grown(T, lambda, t2, distill);
    float z[B * N], truth[B * TRUTHS];
    fill_case(z, truth, 11u + (unsigned)(10 * T), unlabelled);
    forward(&l, z, truth);
    double zd[B * N], maxabs = 0;
    for (int i = 0; i < B * N; ++i) zd[i] = z[i];
    for (int i = 0; i < B * N; ++i) {
        const double h = 1e-5;
        double keep = zd[i];
        zd[i] = keep + h;
        double lp = ref_loss(zd, truth, T, lambda, t2, distill);
        zd[i] = keep - h;
        double lm = ref_loss(zd, truth, T, lambda, t2, distill);
        zd[i] = keep;
        double numeric = -(lp - lm) / (2 * h);
        if (fabs(l.delta[i] - numeric) > 2e-5)
            fail_msg("delta[%d] = %.8f, central difference %.8f (T=%g lambda=%g t2=%d distill=%d unlabelled=%d)", i,
                     l.delta[i], numeric, T, lambda, t2, distill, unlabelled);
        maxabs = fmax(maxabs, fabs(numeric));
    }
    assert_true(maxabs > 1e-2);
    /* the loss it reports is the reference's (in float) */
    double want = ref_loss(zd, truth, T, lambda, t2, distill);
    assert_true(fabs(l.cost[0] - want) < 1e-4 * fmax(1, fabs(want)));
    /* backward adds its delta into the logits' delta */
    float nd[B * N];
    for (int i = 0; i < B * N; ++i) nd[i] = 1;
    network net = {0};
    net.delta = nd;
    l.backward(l, net);
    for (int i = 0; i < B * N; ++i) assert_true(fabsf(nd[i] - 1 - l.delta[i]) < 1e-6f);
    lwf_layer_free(l);
}

static void test_grow_gradients(void **state)
{
    (void)state;
    const float Ts[] = {1, 2, 4}, lambdas[] = {0.5f, 1};
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 2; ++b)
            for (int t2 = 0; t2 <= 1; ++t2) {
                check_gradient(Ts[a], lambdas[b], t2, 1, 0);
                check_gradient(Ts[a], lambdas[b], t2, 1, 1); /* an unlabelled row: distillation only */
            }
    check_gradient(2, 1, 0, 0, 0); /* no teacher: cross-entropy only */
}

/* delta = (t - p) + lambda / T (y' - yhat') on the first K, (t - p) on the rest */
static void test_grow_closed_form(void **state)
{
    (void)state;
    const float T = 2, lambda = 0.5f;
    layer l = grown(T, lambda, 0, 1);
    float z[B * N], truth[B * TRUTHS];
    fill_case(z, truth, 3, 0);
    forward(&l, z, truth);
    double worst = 0, flat = 0;
    for (int b = 0; b < B; ++b) {
        float p[N], ys[K], yt[K];
        softmax(z + b * N, N, 1, 1, p);
        softmax(z + b * N, K, T, 1, ys);
        softmax(truth + b * TRUTHS + OFF + N, K, T, 1, yt);
        for (int i = 0; i < N; ++i) {
            double ce = truth[b * TRUTHS + OFF + i] - p[i];
            double want = ce + (i < K ? lambda / T * (yt[i] - ys[i]) : 0);
            worst = fmax(worst, fabs(l.delta[b * N + i] - want));
            flat = fmax(flat, fabs(l.delta[b * N + i] - ce)); /* without distillation */
        }
        /* the answer is the softmax over every output */
        for (int i = 0; i < N; ++i) assert_true(fabsf(l.output[b * N + i] - p[i]) < 1e-6f);
    }
    assert_true(worst < 1e-6);
    assert_true(flat > 1e-3); /* guard: the distillation term is really there */
    lwf_layer_free(l);
}

/* Equal logits, a label on class 0, a teacher as unsure as the student: the loss is
 * log(N) + lambda log(K) per image (3 classes, 2 old: ln 3 + ln 2 = ln 6). */
static void test_grow_loss_value(void **state)
{
    (void)state;
    layer l = lwf_make_grow_layer(1, 3, 2, 2, 1, 0);
    lwf_loss_params *p = lwf_loss_params_of(&l);
    p->truths = 5;
    float z[3] = {0.5f, 0.5f, 0.5f}, truth[5] = {1, 0, 0, 7, 7};
    forward(&l, z, truth);
    assert_true(fabs(l.cost[0] - log(6.0)) < 1e-6);
    assert_int_equal(p->rows, 1);
    lwf_layer_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_gradients),
        cmocka_unit_test(test_grow_closed_form),
        cmocka_unit_test(test_grow_loss_value),
    };
    return cmocka_run_group_tests_name("grow", tests, NULL, NULL);
}
