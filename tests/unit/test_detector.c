/* A detector cfg built by the plugin: [yolo] and [lwf_yolo] in the section table, our forward
 * of each [yolo] layer against stock libdarknet's (parse_network_cfg, the same weights), the
 * truth row of a grown detector, the old detector (the teacher) of a grown one, and the
 * errors of a detector cfg. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "cfg/cfg.h"
#include "run/run.h"
#include "io/io.h"
#include "layers/layers.h"
#include "train/train.h"

/* src with every line starting `from` replaced by `to` (first occurrences first), malloc'd. */
static char *edit(const char *src, const char *from, const char *to, int times)
{
    size_t cap = strlen(src) + 64 * (strlen(to) + 1) + 1;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    const char *p = src;
    int done = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (done < times && strncmp(p, from, strlen(from)) == 0) {
            strcat(out, to);
            strcat(out, "\n");
            ++done;
        } else {
            strncat(out, p, len);
        }
        p += len;
    }
    assert_int_equal(done, times); /* the cfg has the lines the test edits */
    return out;
}

static char *read_text(const char *path)
{
    return (char *)tu_slurp(path, NULL);
}

/* Random weights and batch-norm statistics in every convolution of net. */
static void fill_weights(network *net, unsigned seed)
{
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type != CONVOLUTIONAL) continue;
        float scale = sqrtf(2.0f / (l->size * l->size * l->c));
        tu_fill(l->weights, (size_t)l->nweights, &seed, -scale, scale);
        tu_fill(l->biases, (size_t)l->n, &seed, -0.5f, 0.5f);
        if (!l->batch_normalize) continue;
        tu_fill(l->scales, (size_t)l->n, &seed, 0.5f, 1.5f);
        tu_fill(l->rolling_mean, (size_t)l->n, &seed, -0.2f, 0.2f);
        tu_fill(l->rolling_variance, (size_t)l->n, &seed, 0.5f, 2);
    }
}

/* Our build of cfg and stock parse_network_cfg's, the same weights and input: every [yolo]
 * layer's output equal within 1e-5 (relative above 1: the raw w, h planes are unbounded;
 * our fast kernels sum in another order).  Returns the number of [yolo] layers compared. */
static int compare_with_stock(const char *cfg, int expect_layers)
{
    lwf_model *m = tu_load(cfg, 1);
    network *net = m->net;
    assert_int_equal(m->detector, 1);
    assert_int_equal(net->n, expect_layers);
    fill_weights(net, 4242);
    char *dir = tu_tmpdir();
    char wpath[4096];
    snprintf(wpath, sizeof wpath, "%s/w.weights", dir);
    lwf_err err;
    if (lwf_weights_save(net, wpath, net->n, 0, &err)) fail_msg("%s", err.msg);
    network *stock = parse_network_cfg((char *)cfg);
    assert_int_equal(stock->n, net->n);
    load_weights(stock, wpath);
    set_batch_network(stock, 1);
    unsigned s = 9;
    tu_fill(net->input, (size_t)net->inputs, &s, 0, 1);
    float *x = malloc((size_t)net->inputs * sizeof(float));
    memcpy(x, net->input, (size_t)net->inputs * sizeof(float));
    lwf_plan plan;
    assert_int_equal(lwf_plan_make(m, LWF_PASS_EVAL, &plan), 0);
    lwf_forward(net, &plan);
    network_predict(stock, x);
    int compared = 0;
    for (int i = 0; i < net->n; ++i) {
        layer *a = &net->layers[i], *b = &stock->layers[i];
        assert_int_equal(a->type, b->type);
        if (a->type != YOLO) continue;
        assert_int_equal(a->outputs, b->outputs);
        double worst = 0;
        for (int k = 0; k < a->outputs; ++k) {
            double d = fabs((double)a->output[k] - b->output[k]) / fmax(1.0, fabs((double)b->output[k]));
            if (d > worst) worst = d;
        }
        if (worst > 1e-5) fail_msg("%s: [yolo] layer %d differs from stock by %g", cfg, i, worst);
        ++compared;
    }
    lwf_plan_free(&plan);
    free(x);
    free_network(stock);
    lwf_model_free(m);
    tu_rmdir(dir);
    free(dir);
    return compared;
}

static void test_fashion_det_forward_is_stock(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/cfg/fashion-det.cfg", tu_root());
    char *text = read_text(path);
    char *small = edit(text, "batch=32", "batch=1", 1);
    char *dir = tu_tmpdir();
    char *cfg = tu_write(dir, "fashion-det.cfg", small);
    assert_int_equal(compare_with_stock(cfg, 22), 2);
    free(cfg), free(small), free(text);
    tu_rmdir(dir);
    free(dir);
}

/* Debian's yolov3-tiny.cfg, at 128x128 (its route layers=-1,8 and upsample; random=1 builds) */
static void test_yolov3_tiny_forward_is_stock(void **state)
{
    (void)state;
    char *text = read_text("/usr/share/darknet/cfg/yolov3-tiny.cfg");
    char *a = edit(text, "width=416", "width=128", 1);
    char *b = edit(a, "height=416", "height=128", 1);
    char *dir = tu_tmpdir();
    char *cfg = tu_write(dir, "yolov3-tiny.cfg", b);
    assert_int_equal(compare_with_stock(cfg, 24), 2);
    free(cfg), free(b), free(a), free(text);
    tu_rmdir(dir);
    free(dir);
}

/* fashion-det grown to 10 classes, both heads [lwf_yolo] old_classes=5 */
static char *grown_cfg(const char *dir, const char *task)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cfg/fashion-det.cfg", tu_root());
    char *text = read_text(path);
    char *a = edit(text, "classes=5", "classes=10\nold_classes=5\nlambda=2\nlambda_cls=0.5", 2);
    char *b = edit(a, "filters=30", "filters=45", 2);
    char *c = edit(b, "[yolo]", "[lwf_yolo]", 2);
    char *d = edit(c, "batch=32", "batch=2", 1);
    char *e = task ? edit(d, "[convolutional]", task, 1) : lwf_strdup(d);
    char *cfg = tu_write(dir, "grown.cfg", e);
    free(text), free(a), free(b), free(c), free(d), free(e);
    return cfg;
}

static void test_grown_detector_truth_row(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *cfg = grown_cfg(dir, NULL);
    lwf_model *m = tu_load(cfg, 2);
    network *net = m->net;
    assert_int_equal(m->ntasks, 1);
    assert_string_equal(m->tasks[0].name, "grown"); /* named after the cfg file */
    assert_int_equal(m->tasks[0].classes, 10);
    assert_int_equal(m->tasks[0].loss, 21);
    /* boxes, then the teacher's 3 x (4 + 1 + 5) planes of 3x3, then of 6x6 */
    assert_int_equal(net->truths, 450 + 3 * 10 * 9 + 3 * 10 * 36);
    lwf_yolo_params *q1 = (lwf_yolo_params *)lwf_loss_params_of(&net->layers[14]);
    lwf_yolo_params *q2 = (lwf_yolo_params *)lwf_loss_params_of(&net->layers[21]);
    assert_int_equal(q1->loss.offset, 450);
    assert_int_equal(q2->loss.offset, 450 + 270);
    assert_int_equal(q1->loss.truths, net->truths);
    assert_int_equal(q1->old_classes, 5);
    assert_true(q1->loss.distill);
    /* lambda scales each distillation weight */
    assert_true(fabsf(q1->lambda_cls - 1.0f) < 1e-6f && fabsf(q1->lambda_obj - 2.0f) < 1e-6f);
    /* the thresholds' defaults (measured on P4: plugin/cfg/sections.c) */
    assert_true(q1->teacher_thresh == 0.5f && q1->teacher_new_iou == 0.2f);
    lwf_model_free(m);
    /* the old detector: [yolo] over the 5 old classes, 30 filters before each */
    lwf_build_opts bo = {2, 1};
    lwf_err err;
    lwf_model *old = lwf_model_load_old_detector(cfg, &bo, &err);
    if (!old) fail_msg("%s", err.msg);
    assert_int_equal(old->net->layers[13].n, 30);
    assert_int_equal(old->net->layers[21].classes, 5);
    assert_int_equal(old->net->truths, 450);
    assert_false(lwf_loss_params_of(&old->net->layers[21])->distill);
    lwf_model_free(old);
    free(cfg);
    /* a [task] right after [net] names the task and makes no layer */
    cfg = grown_cfg(dir, "[task]\nname=clothes\n\n[convolutional]");
    m = tu_load(cfg, 2);
    assert_int_equal(m->net->n, 22);
    assert_string_equal(m->tasks[0].name, "clothes");
    assert_int_equal(m->net->layers[18].type, ROUTE); /* layers = -1, 8: the same layer 8 */
    assert_int_equal(m->net->layers[18].input_layers[1], 8);
    lwf_model_free(m);
    free(cfg);
    tu_rmdir(dir);
    free(dir);
}

/* The teacher of a grown detector: the old detector with the student's old rows
 * (lwf_detector_old_weights), run on the same rows; each [lwf_yolo] slice then holds, for
 * every anchor, the box, objectness and K old class planes of the student's own output
 * (both in inference mode here). */
static void test_teacher_slices_are_old_rows(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *cfg = grown_cfg(dir, NULL);
    lwf_model *m = tu_load(cfg, 2);
    network *net = m->net;
    fill_weights(net, 77);
    lwf_build_opts bo = {1, 1};
    lwf_err err;
    lwf_model *old = lwf_model_load_old_detector(cfg, &bo, &err);
    if (!old) fail_msg("%s", err.msg);
    if (lwf_detector_old_weights(m, old, &err)) fail_msg("%s", err.msg);
    char w[4096];
    snprintf(w, sizeof w, "%s/old.weights", dir);
    if (lwf_weights_save(old->net, w, old->net->n, 0, &err)) fail_msg("%s", err.msg);
    lwf_model_free(old);
    lwf_teacher *t = lwf_teacher_open_detector(m, w, &err);
    if (!t) fail_msg("%s", err.msg);
    unsigned s = 5;
    tu_fill(net->input, (size_t)net->inputs * net->batch, &s, 0, 1);
    memset(net->truth, 0, (size_t)net->truths * net->batch * sizeof(float));
    if (lwf_teacher_fill(t, NULL, net->input, net->batch, net->truth, net->truths, &err)) fail_msg("%s", err.msg);
    lwf_plan plan;
    assert_int_equal(lwf_plan_make(m, LWF_PASS_EVAL, &plan), 0);
    lwf_forward(net, &plan);
    int checked = 0;
    for (int i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        if (l->type != YOLO) continue;
        const lwf_yolo_params *q = (const lwf_yolo_params *)lwf_loss_params_of(l);
        int K = q->old_classes, C = l->classes, wh = l->w * l->h;
        for (int b = 0; b < net->batch; ++b)
            for (int n = 0; n < l->n; ++n)
                for (int e = 0; e < 5 + K; ++e)
                    for (int loc = 0; loc < wh; ++loc) {
                        float so = l->output[(size_t)b * l->outputs + (n * (5 + C) + e) * wh + loc];
                        float to = net->truth[(size_t)b * net->truths + q->loss.offset + (n * (5 + K) + e) * wh + loc];
                        if (fabsf(so - to) > 1e-5f * fmaxf(1, fabsf(so)))
                            fail_msg("layer %d row %d anchor %d entry %d cell %d: student %g, teacher %g", i, b, n, e,
                                     loc, so, to);
                        ++checked;
                    }
        /* the boxes' columns are not the teacher's */
        for (int c = 0; c < 450; ++c) assert_true(net->truth[c] == 0);
    }
    assert_int_equal(checked, 2 * (3 * 10 * 9 + 3 * 10 * 36));
    lwf_plan_free(&plan);
    lwf_teacher_close(t);
    assert_int_not_equal(lwf_teacher_check(m, LWF_TEACHER_RECORD, &err), 0);
    assert_non_null(strstr(err.msg, "impossible for a detector"));
    lwf_model_free(m);
    free(cfg);
    tu_rmdir(dir);
    free(dir);
}

/* lwf_detect against stock `detector test`'s steps in libdarknet (parse_network_cfg,
 * load_weights, load_image_color, letterbox_image, network_predict, get_network_boxes,
 * do_nms_sort) on a non-square image: the same boxes, objectness and class probabilities
 * (random weights give a few hundred boxes above .25). */
static void test_detect_is_stock(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/cfg/fashion-det.cfg", tu_root());
    char *text = read_text(path);
    char *small = edit(text, "batch=32", "batch=1", 1);
    char *dir = tu_tmpdir();
    char *cfg = tu_write(dir, "det.cfg", small);
    lwf_model *m = tu_load(cfg, 1);
    fill_weights(m->net, 31);
    char w[4096], img[4096], stem[4096];
    snprintf(w, sizeof w, "%s/w.weights", dir);
    snprintf(stem, sizeof stem, "%s/im", dir);
    snprintf(img, sizeof img, "%s/im.png", dir);
    lwf_err err;
    if (lwf_weights_save(m->net, w, m->net->n, 0, &err)) fail_msg("%s", err.msg);
    image pic = make_image(120, 80, 3);
    unsigned s = 12;
    tu_fill(pic.data, (size_t)120 * 80 * 3, &s, 0, 1);
    save_image_options(pic, stem, PNG, 0);
    free_image(pic);
    image im;
    detection *ours = NULL;
    int n = 0;
    if (lwf_detect(m, img, .25f, .45f, &im, &ours, &n, &err)) fail_msg("%s", err.msg);
    network *net = parse_network_cfg(cfg);
    load_weights(net, w);
    set_batch_network(net, 1);
    image sim = load_image_color(img, 0, 0);
    image sized = letterbox_image(sim, net->w, net->h);
    network_predict(net, sized.data);
    int sn = 0;
    detection *theirs = get_network_boxes(net, sim.w, sim.h, .25f, .5f, 0, 1, &sn);
    do_nms_sort(theirs, sn, 5, .45f);
    assert_int_equal(im.w, 120);
    assert_int_equal(sim.w, 120);
    assert_int_equal(n, sn);
    assert_true(n > 10); /* not a vacuous comparison */
    int above = 0;
    for (int i = 0; i < n; ++i) {
        const detection *a = &ours[i], *b = &theirs[i];
        float d = fabsf(a->bbox.x - b->bbox.x) + fabsf(a->bbox.y - b->bbox.y) + fabsf(a->bbox.w - b->bbox.w) +
                  fabsf(a->bbox.h - b->bbox.h) + fabsf(a->objectness - b->objectness);
        for (int j = 0; j < 5; ++j) d += fabsf(a->prob[j] - b->prob[j]), above += a->prob[j] > 0;
        if (d > 1e-5f) fail_msg("box %d of %d differs from stock's by %g", i, n, d);
    }
    assert_true(above > 0);
    free_detections(ours, n);
    free_detections(theirs, sn);
    free_image(im), free_image(sim), free_image(sized);
    free_network(net);
    lwf_model_free(m);
    free(cfg), free(small), free(text);
    tu_rmdir(dir);
    free(dir);
}

/* One training forward of a [yolo] layer of 6x6 cells over 2 images and 7 boxes each, by
 * lwf_yolo_stock_forward and by libdarknet's forward_yolo_layer, on the same input: the same
 * output, deltas and cost, bit for bit.  thresholds: ignore_thresh, truth_thresh (low ones
 * reach the branches where a cell's box overlaps a truth box). */
static void compare_training_forward(float ignore, float truth_thresh)
{
    int mask[3] = {3, 4, 5}, B = 2, W = 6;
    float anchors[12] = {10, 14, 23, 27, 37, 58, 51, 42, 70, 85, 90, 60};
    layer l = make_yolo_layer(B, W, W, 3, 6, mask, 5);
    l.max_boxes = 90;
    l.ignore_thresh = ignore;
    l.truth_thresh = truth_thresh;
    memcpy(l.biases, anchors, sizeof anchors);
    float *x = malloc((size_t)B * l.outputs * sizeof(float)), *truth = calloc((size_t)B * l.truths, sizeof(float));
    float *ours = malloc((size_t)B * l.outputs * sizeof(float)), *out = malloc((size_t)B * l.outputs * sizeof(float));
    unsigned s = 17;
    tu_fill(x, (size_t)B * l.outputs, &s, -2, 2);
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < 7; ++t) {
            float *g = truth + (size_t)b * l.truths + 5 * t;
            tu_fill(g, 2, &s, 0.05f, 0.95f);     /* centre */
            tu_fill(g + 2, 2, &s, 0.1f, 0.9f);   /* size: every anchor is some box's best */
            g[4] = (float)(t % 5);
        }
    network net;
    memset(&net, 0, sizeof net);
    net.w = net.h = 96;
    net.input = x;
    net.truth = truth;
    net.train = 1;
    lwf_yolo_stock_forward(l, net);
    float cost = *l.cost;
    memcpy(ours, l.delta, (size_t)B * l.outputs * sizeof(float));
    memcpy(out, l.output, (size_t)B * l.outputs * sizeof(float));
    forward_yolo_layer(l, net);
    assert_memory_equal(out, l.output, (size_t)B * l.outputs * sizeof(float));
    assert_memory_equal(ours, l.delta, (size_t)B * l.outputs * sizeof(float));
    assert_memory_equal(&cost, l.cost, sizeof cost);
    /* not vacuous: boxes learned (x deltas), objectness pushed up and down */
    int wh = W * W, boxes = 0, up = 0, down = 0;
    for (int b = 0; b < B; ++b)
        for (int n = 0; n < 3; ++n)
            for (int loc = 0; loc < wh; ++loc) {
                size_t at = (size_t)b * l.outputs + (size_t)n * wh * 10;
                boxes += ours[at + loc] != 0;
                up += ours[at + 4 * wh + loc] > 0;
                down += ours[at + 4 * wh + loc] < 0;
            }
    assert_true(boxes > 0 && up > 0 && down > 0);
    assert_true(cost > 0);
    /* inference: nothing but the activations, the deltas zero */
    net.train = 0;
    lwf_yolo_stock_forward(l, net);
    for (int i = 0; i < B * l.outputs; ++i) assert_true(l.delta[i] == 0);
    free(x), free(truth), free(ours), free(out);
    free_layer(l);
}

/* Our [yolo] training forward is stock's (without its "Region" line on stdout) */
static void test_yolo_training_forward_is_stock(void **state)
{
    (void)state;
    compare_training_forward(0.7f, 1);    /* fashion-det's and stock's thresholds */
    compare_training_forward(0.05f, 1);   /* cells that overlap a box are ignored */
    compare_training_forward(0.05f, 0.1f); /* ... or learned as that box */
}

static void expect_error(const char *text, const char *want)
{
    char *dir = tu_tmpdir();
    char *cfg = tu_write(dir, "bad.cfg", text);
    lwf_err err;
    lwf_build_opts bo = {1, 1};
    lwf_model *m = lwf_model_load(cfg, &bo, &err);
    if (m) fail_msg("built, expected an error with '%s'", want);
    if (!strstr(err.msg, want)) fail_msg("error '%s' does not say '%s'", err.msg, want);
    free(cfg);
    tu_rmdir(dir);
    free(dir);
}

static void test_detector_errors(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/cfg/fashion-det.cfg", tu_root());
    char *text = read_text(path);
    char *t;
    /* filters of the convolution before the first [yolo]: named at its line (119) */
    t = edit(text, "filters=30", "filters=31", 1);
    expect_error(t, "bad.cfg:122: [convolutional] filters=31, but the [yolo] after it (line 129) needs (classes + 5) x masks = (5 + 5) x 3 = 30");
    free(t);
    t = edit(text, "mask = 3,4,5", "mask=3,4,6", 1);
    expect_error(t, "mask must list anchors 0..num-1 = 0..5");
    free(t);
    t = edit(text, "[yolo]", "[lwf_yolo]\nold_classes=5", 1);
    expect_error(t, "old_classes=5 must be less than classes=5");
    free(t);
    t = edit(text, "[yolo]", "[lwf_yolo]", 1);
    expect_error(t, "[lwf_yolo] needs old_classes=");
    free(t);
    t = edit(text, "[yolo]", "[yolo]\nmap=x.map", 1);
    expect_error(t, "[yolo] map is not supported");
    free(t);
    t = edit(text, "[yolo]", "[yolo]\nlambda=1", 1);
    expect_error(t, "[yolo] unknown key 'lambda'");
    free(t);
    t = edit(text, "[yolo]", "[lwf_yolo]\nold_classes=2\nteacher_new_iou=1.5", 1);
    expect_error(t, "[lwf_yolo] teacher_new_iou must be a number in [0, 1], got '1.5'");
    free(t);
    t = edit(text, "[route]", "[task]\nname=x\n[route]", 1);
    expect_error(t, "a detector is one task: its [task] (optional) comes right after [net]");
    free(t);
    t = edit(text, "random=0", "random=0\nmax=91", 1);
    expect_error(t, "max must be an integer in [1, 90]");
    free(t);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fashion_det_forward_is_stock),
        cmocka_unit_test(test_yolov3_tiny_forward_is_stock),
        cmocka_unit_test(test_grown_detector_truth_row),
        cmocka_unit_test(test_teacher_slices_are_old_rows),
        cmocka_unit_test(test_detect_is_stock),
        cmocka_unit_test(test_yolo_training_forward_is_stock),
        cmocka_unit_test(test_detector_errors),
    };
    return cmocka_run_group_tests_name("detector", tests, NULL, NULL);
}
