/* [lwf_yolo] (plugin/layers/yolo.c): where a new box is learned its deltas are stock
 * [yolo]'s (libdarknet's forward_yolo_layer on the same input); elsewhere the distillation's
 * deltas against central differences of a double-precision reference loss; without a teacher
 * every delta is stock's; the cell kinds on a hand-placed box; and stock deltas where the
 * teacher's box covers a new box. */
#include "testutil.h"
#include "layers/layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define B 2
#define W 4
#define H 4
#define NA 2                          /* anchors of this layer's mask */
#define K 3                           /* old classes */
#define C 5                           /* K + M */
#define OUTS (W * H * NA * (4 + 1 + C))
#define TBLOCK (W * H * NA * (4 + 1 + K))
#define BOXES (LWF_YOLO_BOXES * 5)
#define TRUTHS (BOXES + TBLOCK + 3)   /* boxes, the teacher's block, 3 more columns */
#define NETW 64
#define NETH 64

static const float anchors[6] = {10, 14, 23, 27, 37, 58};

/* libdarknet's free_layer does not free a [yolo] layer's mask: this does */
static void free_yolo(layer l)
{
    free(l.mask);
    free_layer(l);
}

static layer stock_yolo(void)
{
    int *mask = malloc(NA * sizeof(int)); /* freed by free_yolo */
    assert_non_null(mask);
    mask[0] = 1, mask[1] = 2;
    layer l = make_yolo_layer(B, W, H, NA, 3, mask, C);
    memcpy(l.biases, anchors, sizeof anchors);
    l.max_boxes = LWF_YOLO_BOXES;
    l.ignore_thresh = 0.5f;
    l.truth_thresh = 1;
    return l;
}

static const lwf_yolo_params keys = {.lambda_obj = 0.7f, .lambda_cls = 1.3f, .lambda_box = 0.9f,
                                     .teacher_thresh = 0.5f, .teacher_new_iou = 0.5f};

static layer grown(int distill)
{
    layer l = stock_yolo();
    assert_int_equal(lwf_make_yolo_head(&l, K, &keys), 0);
    lwf_loss_params *p = lwf_loss_params_of(&l);
    p->offset = BOXES;
    p->truths = TRUTHS;
    p->distill = distill;
    return l;
}

static float sigm(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* input logits, and truth rows: new boxes (classes K..C-1) and an activated teacher block */
static void fill_case(float *z, float *truth)
{
    unsigned st = 5;
    tu_fill(z, B * OUTS, &st, -2, 2);
    memset(truth, 0, B * TRUTHS * sizeof(float));
    static const float boxes[B][2][5] = {{{0.3f, 0.4f, 0.35f, 0.45f, 3}, {0}},
                                         {{0.7f, 0.2f, 0.6f, 0.8f, 4}, {0.15f, 0.8f, 0.3f, 0.25f, 3}}};
    for (int b = 0; b < B; ++b) {
        memcpy(truth + b * TRUTHS, boxes[b], sizeof boxes[b]);
        float *t = truth + b * TRUTHS + BOXES;
        tu_fill(t, TBLOCK, &st, -3, 3);
        for (int n = 0; n < NA; ++n)
            for (int e = 0; e < 4 + 1 + K; ++e)
                for (int loc = 0; loc < W * H; ++loc) {
                    float *v = t + n * W * H * (4 + 1 + K) + e * W * H + loc;
                    if (e != 2 && e != 3) *v = sigm(*v); /* x, y, objectness, classes: logistic */
                }
    }
}

static void forward(layer *l, float *z, float *truth, int train)
{
    network net = {0};
    net.input = z;
    net.truth = truth;
    net.train = train;
    net.w = NETW, net.h = NETH;
    l->forward(*l, net);
}

static double bce(double t, double zl)
{
    double s = 1 / (1 + exp(-zl));
    return -(t * log(s) + (1 - t) * log(1 - s));
}

/* the distillation's loss of image b over the entries `which` marks, cells fixed */
static double ref_loss(const double *z, const float *t, const unsigned char *cell)
{
    double L = 0;
    for (int n = 0; n < NA; ++n)
        for (int loc = 0; loc < W * H; ++loc) {
            int c = cell[n * W * H + loc];
            if (c >= 2) continue; /* assigned, or the teacher's box on a new one */
            const double *zs = z + n * W * H * (4 + 1 + C);
            const float *ts = t + n * W * H * (4 + 1 + K);
            for (int k = 0; k < K; ++k) L += keys.lambda_cls * bce(ts[(5 + k) * W * H + loc], zs[(5 + k) * W * H + loc]);
            if (c == 1) continue;
            double tobj = ts[4 * W * H + loc];
            L += keys.lambda_obj * bce(tobj, zs[4 * W * H + loc]);
            if (tobj <= keys.teacher_thresh) continue;
            for (int e = 0; e < 2; ++e) L += keys.lambda_box * bce(ts[e * W * H + loc], zs[e * W * H + loc]);
            for (int e = 2; e < 4; ++e) {
                double d = ts[e * W * H + loc] - zs[e * W * H + loc];
                L += keys.lambda_box * 0.5 * d * d;
            }
            for (int k = K; k < C; ++k) L += keys.lambda_cls * bce(0, zs[(5 + k) * W * H + loc]); /* not new */
        }
    return L;
}

/* whether entry i of one image's output is one the distillation sets for these cells */
static int distilled(int i, const unsigned char *cell, const float *t)
{
    int per = W * H * (4 + 1 + C), n = i / per, e = (i % per) / (W * H), loc = i % (W * H);
    int c = cell[n * W * H + loc];
    if (c >= 2) return 0;
    if (e >= 5 && e - 5 < K) return 1;
    if (c == 1) return 0;
    if (e == 4) return 1;
    return t[n * W * H * (4 + 1 + K) + 4 * W * H + loc] > keys.teacher_thresh; /* box, new classes */
}

static void test_yolo_distillation_gradients(void **state)
{
    (void)state;
    float z[B * OUTS], truth[B * TRUTHS];
    fill_case(z, truth);
    layer l = grown(1), s = stock_yolo();
    forward(&l, z, truth, 1);
    float compact[B * BOXES];
    for (int b = 0; b < B; ++b) memcpy(compact + b * BOXES, truth + b * TRUTHS, BOXES * sizeof(float));
    forward(&s, z, compact, 1);
    int kinds[4] = {0}, confident = 0, checked = 0;
    double maxabs = 0;
    unsigned char cell[NA * W * H];
    for (int b = 0; b < B; ++b) {
        const float *t = truth + b * TRUTHS + BOXES;
        lwf_yolo_cells(&l, l.output + b * OUTS, compact + b * BOXES, NETW, NETH, cell);
        lwf_yolo_teacher_cells(&l, K, t, compact + b * BOXES, NETW, NETH, keys.teacher_new_iou, cell);
        for (int i = 0; i < NA * W * H; ++i) {
            kinds[cell[i]]++;
            confident += cell[i] == 0 && t[(i / (W * H)) * W * H * (4 + 1 + K) + 4 * W * H + i % (W * H)] > 0.5f;
        }
        double zd[OUTS];
        for (int i = 0; i < OUTS; ++i) zd[i] = z[b * OUTS + i];
        for (int i = 0; i < OUTS; ++i) {
            float got = l.delta[b * OUTS + i];
            if (!distilled(i, cell, t)) { /* stock's delta, bit for bit */
                if (got != s.delta[b * OUTS + i])
                    fail_msg("image %d entry %d: %g, stock [yolo] gives %g", b, i, got, s.delta[b * OUTS + i]);
                continue;
            }
            const double h = 1e-5;
            double keep = zd[i];
            zd[i] = keep + h;
            double lp = ref_loss(zd, t, cell);
            zd[i] = keep - h;
            double lm = ref_loss(zd, t, cell);
            zd[i] = keep;
            double numeric = -(lp - lm) / (2 * h);
            /* 2e-5: float logistic outputs against a double reference */
            if (fabs(got - numeric) > 2e-5) fail_msg("image %d entry %d: delta %.7f, central difference %.7f", b, i, got, numeric);
            maxabs = fmax(maxabs, fabs(numeric));
            ++checked;
        }
    }
    /* guards: every kind of cell occurs, some background cells have a confident teacher, and
     * the gradients are not vanishing */
    assert_true(kinds[0] > 0 && kinds[1] > 0 && kinds[2] > 0);
    assert_true(confident > 0);
    assert_true(checked > 100 && maxabs > 1e-2);
    free_yolo(s);
    lwf_yolo_free(&l);
    free_yolo(l);
}

static void test_yolo_without_teacher_is_stock(void **state)
{
    (void)state;
    float z[B * OUTS], truth[B * TRUTHS], compact[B * BOXES];
    fill_case(z, truth);
    for (int b = 0; b < B; ++b) memcpy(compact + b * BOXES, truth + b * TRUTHS, BOXES * sizeof(float));
    layer l = grown(0), s = stock_yolo();
    forward(&l, z, truth, 1);
    forward(&s, z, compact, 1);
    assert_memory_equal(l.output, s.output, sizeof(float) * B * OUTS);
    assert_memory_equal(l.delta, s.delta, sizeof(float) * B * OUTS);
    assert_true(l.cost[0] == s.cost[0]);
    /* inference: the output only, as stock */
    forward(&l, z, NULL, 0);
    assert_memory_equal(l.output, s.output, sizeof(float) * B * OUTS);
    free_yolo(s);
    lwf_yolo_free(&l);
    free_yolo(l);
}

static void test_yolo_cells_by_hand(void **state)
{
    (void)state;
    layer l = stock_yolo();
    float out[OUTS];
    for (int i = 0; i < OUTS; ++i) out[i] = -20; /* tiny predicted boxes: no overlap with anything */
    float boxes[BOXES] = {0};
    /* a 24x28-pixel box centred in cell (2, 1) of 4x4: its best anchor of all three is 23x27,
     * anchor 1, the mask's first */
    float g[5] = {(2 + 0.5f) / 4, (1 + 0.5f) / 4, 24.0f / NETW, 28.0f / NETH, 3};
    memcpy(boxes, g, sizeof g);
    unsigned char cell[NA * W * H];
    lwf_yolo_cells(&l, out, boxes, NETW, NETH, cell);
    for (int i = 0; i < NA * W * H; ++i) assert_int_equal(cell[i], i == 0 * W * H + 1 * W + 2 ? 2 : 0);
    free_yolo(l);
}

/* where the teacher's box covers a new box (IoU > teacher_new_iou) at an anchor that does
 * not learn it, the cell is not distilled: its deltas are stock's */
static void test_yolo_teacher_on_new_box(void **state)
{
    (void)state;
    float z[B * OUTS], truth[B * TRUTHS], compact[B * BOXES];
    fill_case(z, truth);
    /* image 0's new box (0.3, 0.4, 0.35, 0.45) lies in cell (1, 1); the teacher's second anchor
     * (mask 2: 37x58) there predicts it: x, y offsets .2 and .6, w and h from the anchor */
    float *t = truth + BOXES;
    int loc = 1 * W + 1, n = 1, per = W * H * (4 + 1 + K);
    t[n * per + 0 * W * H + loc] = 0.3f * W - 1;
    t[n * per + 1 * W * H + loc] = 0.4f * H - 1;
    t[n * per + 2 * W * H + loc] = logf(0.35f * NETW / 37);
    t[n * per + 3 * W * H + loc] = logf(0.45f * NETH / 58);
    t[n * per + 4 * W * H + loc] = 0.95f; /* a confident teacher: distilled, this would be kept */
    for (int b = 0; b < B; ++b) memcpy(compact + b * BOXES, truth + b * TRUTHS, BOXES * sizeof(float));
    layer l = grown(1), s = stock_yolo();
    forward(&l, z, truth, 1);
    forward(&s, z, compact, 1);
    unsigned char cell[NA * W * H];
    lwf_yolo_cells(&l, l.output, compact, NETW, NETH, cell);
    assert_int_not_equal(cell[n * W * H + loc], 2); /* the box's best anchor is the first */
    lwf_yolo_teacher_cells(&l, K, t, compact, NETW, NETH, keys.teacher_new_iou, cell);
    assert_int_equal(cell[n * W * H + loc], 3);
    for (int e = 0; e < 4 + 1 + C; ++e) {
        int i = n * W * H * (4 + 1 + C) + e * W * H + loc;
        if (l.delta[i] != s.delta[i]) fail_msg("entry %d: %g, stock [yolo] gives %g", e, l.delta[i], s.delta[i]);
    }
    /* and stock pushes its objectness to zero there (background), where the teacher said .95 */
    assert_true(s.delta[n * W * H * (4 + 1 + C) + 4 * W * H + loc] < 0);
    free_yolo(s);
    lwf_yolo_free(&l);
    free_yolo(l);
}

/* teacher_new_iou decides which overlap is the teacher reading a new object: its box at cell
 * (1, 1) shifted right of the new box (IoU .35) is that reading at .2, not at .5 */
static void test_yolo_teacher_new_iou(void **state)
{
    (void)state;
    float z[B * OUTS], truth[B * TRUTHS], compact[BOXES];
    fill_case(z, truth);
    float *t = truth + BOXES;
    int loc = 1 * W + 1, n = 1, per = W * H * (4 + 1 + K);
    float dx = 0.35f * 0.65f / 1.35f; /* equal boxes shifted by dx: IoU (w - dx) / (w + dx) = .35 */
    t[n * per + 0 * W * H + loc] = (0.3f + dx) * W - 1;
    t[n * per + 1 * W * H + loc] = 0.4f * H - 1;
    t[n * per + 2 * W * H + loc] = logf(0.35f * NETW / 37);
    t[n * per + 3 * W * H + loc] = logf(0.45f * NETH / 58);
    memcpy(compact, truth, BOXES * sizeof(float));
    layer l = grown(1);
    forward(&l, z, truth, 1);
    unsigned char cell[NA * W * H], at_half[NA * W * H];
    lwf_yolo_cells(&l, l.output, compact, NETW, NETH, cell);
    assert_int_not_equal(cell[n * W * H + loc], 2);
    memcpy(at_half, cell, sizeof cell);
    lwf_yolo_teacher_cells(&l, K, t, compact, NETW, NETH, 0.5f, at_half);
    assert_int_not_equal(at_half[n * W * H + loc], 3);
    lwf_yolo_teacher_cells(&l, K, t, compact, NETW, NETH, 0.2f, cell);
    assert_int_equal(cell[n * W * H + loc], 3);
    lwf_yolo_free(&l);
    free_yolo(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yolo_distillation_gradients),
        cmocka_unit_test(test_yolo_without_teacher_is_stock),
        cmocka_unit_test(test_yolo_cells_by_hand),
        cmocka_unit_test(test_yolo_teacher_on_new_box),
        cmocka_unit_test(test_yolo_teacher_new_iou),
    };
    return cmocka_run_group_tests_name("yolo", tests, NULL, NULL);
}
