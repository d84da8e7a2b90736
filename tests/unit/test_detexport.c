/* Detectors that grow and their export: lwf init -grow on stock YOLOv3-style cfgs (Debian's
 * yolov3-tiny.cfg and yolov3.cfg, a cfg with one [yolo]) writes the grown cfg, <stem>.names and
 * <stem>.data; the old detector's weights load into it (lwf_weights_load_model, per anchor) and
 * its old classes' outputs and boxes are the old detector's.  lwf export of a grown detector
 * is a stock cfg + weights that libdarknet and stock `/usr/bin/darknet detector test` run:
 * every [yolo] output within 1e-5 of our forward pass, the boxes after NMS the same. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "cfg/cfg.h"
#include "run/run.h"
#include "io/io.h"

#define NEW 3 /* new classes of the grow tests */

/* Writes "<prefix>0" .. "<prefix>n-1", one a line, to dir/name; returns the path. */
static char *write_names(const char *dir, const char *name, const char *prefix, int n)
{
    size_t cap = (size_t)n * 16 + 1;
    char *t = calloc(cap, 1);
    assert_non_null(t);
    for (int i = 0; i < n; ++i) snprintf(t + strlen(t), cap - strlen(t), "%s%d\n", prefix, i);
    char *p = tu_write(dir, name, t);
    free(t);
    return p;
}

/* The old task's .data (classes, names) and the new task's (classes, train, names, backup). */
static void write_datas(const char *dir, int K, int M, char *olddata, char *newdata, size_t cap)
{
    char *on = write_names(dir, "old.names", "old", K), *nn = write_names(dir, "new.names", "new", M);
    char *tl = tu_write(dir, "new-train.list", "img/x.png\n"), text[8192];
    snprintf(text, sizeof text, "classes=%d\nnames=%s\n", K, on);
    char *od = tu_write(dir, "old.data", text);
    snprintf(text, sizeof text, "classes=%d\ntrain=%s\nnames=%s\nbackup=%s/bk\n", M, tl, nn, dir);
    char *nd = tu_write(dir, "new.data", text);
    snprintf(olddata, cap, "%s", od);
    snprintf(newdata, cap, "%s", nd);
    free(on), free(nn), free(tl), free(od), free(nd);
}

static int count_lines_starting(const char *text, const char *start)
{
    int n = 0;
    for (const char *p = text; p; p = strchr(p, '\n')) {
        if (*p == '\n') ++p;
        if (strncmp(p, start, strlen(start)) == 0) ++n;
    }
    return n;
}

/* Runs net (m) forward in inference on x. */
static void forward(lwf_model *m, const float *x)
{
    lwf_plan p;
    assert_int_equal(lwf_plan_make(m, LWF_PASS_EVAL, &p), 0);
    memcpy(m->net->input, x, (size_t)m->net->inputs * sizeof(float));
    lwf_forward(m->net, &p);
    lwf_plan_free(&p);
}

/* Detections of the network just run, relative to a w x h image, after NMS over C classes. */
static detection *boxes(network *net, int C, float thresh, int *n)
{
    detection *d = get_network_boxes(net, net->w, net->h, thresh, .5f, 0, 1, n);
    do_nms_sort(d, *n, C, .45f);
    return d;
}

static int by_place(const void *a, const void *b)
{
    const detection *x = a, *y = b;
    const float kx[4] = {x->bbox.x, x->bbox.y, x->bbox.w, x->bbox.h}, ky[4] = {y->bbox.x, y->bbox.y, y->bbox.w, y->bbox.h};
    for (int i = 0; i < 4; ++i)
        if (kx[i] != ky[i]) return kx[i] < ky[i] ? -1 : 1;
    return (x->objectness > y->objectness) - (x->objectness < y->objectness);
}

/* The grown detector g (old weights loaded) against the old one o on input x: for every
 * [yolo] layer, anchor and cell, the box, objectness and K old class outputs equal (within
 * tol: the grown convolution has more filters, and OpenBLAS may round another number of rows
 * otherwise); then the boxes after NMS: the same boxes, their old classes' probabilities equal.
 * Returns the old-class probabilities above thresh compared. */
static int compare_grown(lwf_model *o, lwf_model *g, int K, const float *x, float thresh, double *worst)
{
    forward(o, x);
    forward(g, x);
    network *on = o->net, *gn = g->net;
    assert_int_equal(on->n, gn->n);
    int layers = 0;
    for (int i = 0; i < on->n; ++i) {
        const layer *a = &on->layers[i], *b = &gn->layers[i];
        if (a->type != YOLO) continue;
        assert_int_equal(b->type, YOLO);
        assert_int_equal(a->classes, K);
        assert_int_equal(b->classes, K + NEW);
        int wh = a->w * a->h;
        for (int n = 0; n < a->n; ++n)
            for (int e = 0; e < 5 + K; ++e)
                for (int c = 0; c < wh; ++c) {
                    double d = fabs((double)a->output[(n * (5 + K) + e) * wh + c] -
                                    b->output[(n * (5 + K + NEW) + e) * wh + c]);
                    if (d > *worst) *worst = d;
                    if (d > 1e-5)
                        fail_msg("%s: layer %d anchor %d entry %d cell %d: old %g, grown %g", g->cfg, i, n, e, c,
                                 a->output[(n * (5 + K) + e) * wh + c], b->output[(n * (5 + K + NEW) + e) * wh + c]);
                }
        ++layers;
    }
    assert_true(layers > 0);
    int no = 0, ng = 0, compared = 0;
    detection *dO = boxes(on, K, thresh, &no), *dG = boxes(gn, K + NEW, thresh, &ng);
    assert_int_equal(no, ng);
    qsort(dO, (size_t)no, sizeof *dO, by_place);
    qsort(dG, (size_t)ng, sizeof *dG, by_place);
    for (int i = 0; i < no; ++i) {
        const box p = dO[i].bbox, q = dG[i].bbox;
        if (fabsf(p.x - q.x) > 1e-5f || fabsf(p.y - q.y) > 1e-5f || fabsf(p.w - q.w) > 1e-5f ||
            fabsf(p.h - q.h) > 1e-5f || fabsf(dO[i].objectness - dG[i].objectness) > 1e-5f)
            fail_msg("%s: box %d: old (%g, %g, obj %g), grown (%g, %g, obj %g)", g->cfg, i, dO[i].bbox.x, dO[i].bbox.w,
                     dO[i].objectness, dG[i].bbox.x, dG[i].bbox.w, dG[i].objectness);
        for (int k = 0; k < K; ++k) {
            if ((dO[i].prob[k] > thresh) != (dG[i].prob[k] > thresh) || fabsf(dO[i].prob[k] - dG[i].prob[k]) > 1e-5f)
                fail_msg("%s: box %d class %d: old %g, grown %g", g->cfg, i, k, dO[i].prob[k], dG[i].prob[k]);
            compared += dO[i].prob[k] > thresh;
        }
    }
    free_detections(dO, no);
    free_detections(dG, ng);
    return compared;
}

/* lwf init -grow on cfg (K classes per [yolo]): the files it writes, and the old detector's
 * weights (random, seed) loaded into the grown one giving the old outputs and boxes. */
static void check_grow(const char *cfg, int K, const char *what)
{
    char *dir = tu_tmpdir(), od[4096], nd[4096], grown[4096], w[4096];
    write_datas(dir, K, NEW, od, nd, sizeof od);
    snprintf(grown, sizeof grown, "%s/grown.cfg", dir);
    lwf_err err;
    lwf_init_info info;
    if (lwf_init_grow(cfg, nd, od, grown, &info, &err)) fail_msg("%s: %s", what, err.msg);
    assert_int_equal(info.detector, 1);
    assert_int_equal(info.old_classes, K);
    assert_int_equal(info.new_classes, NEW);
    /* <stem>.names: old then new; <stem>.data: classes, names, backup, old_data, new_data */
    char path[4200], want[16384];
    snprintf(path, sizeof path, "%s/grown.names", dir);
    char *names = (char *)tu_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/old.names", dir);
    char *a = (char *)tu_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/new.names", dir);
    char *b = (char *)tu_slurp(path, NULL);
    snprintf(want, sizeof want, "%s%s", a, b);
    assert_string_equal(names, want);
    snprintf(path, sizeof path, "%s/grown.data", dir);
    char *dtext = (char *)tu_slurp(path, NULL);
    snprintf(want, sizeof want, "classes=%d\nnames=%s/grown.names\nbackup=%s/bk\nold_data=%s\nnew_data=%s\n", K + NEW,
             dir, dir, od, nd);
    assert_string_equal(dtext, want);
    free(names), free(a), free(b), free(dtext);
    /* the grown cfg: as many [lwf_yolo] as the stock one has [yolo], its [task] named after it */
    char *src = (char *)tu_slurp(cfg, NULL), *out = (char *)tu_slurp(grown, NULL);
    assert_int_equal(count_lines_starting(out, "[lwf_yolo]"), count_lines_starting(src, "[yolo]"));
    assert_int_equal(count_lines_starting(out, "[yolo]"), 0);
    assert_int_equal(count_lines_starting(out, "old_classes="), count_lines_starting(src, "[yolo]"));
    free(src), free(out);
    lwf_model *o = tu_load(cfg, 1), *g = tu_load(grown, 1);
    assert_string_equal(g->tasks[0].name, "grown");
    assert_int_equal(g->tasks[0].classes, K + NEW);
    snprintf(path, sizeof path, "%s/grown.data", dir);
    assert_string_equal(g->tasks[0].data, path);
    /* the old detector's weights: random, moderate (He-uniform / 4: raw w, h stay small) */
    tu_fill_convs(o->net, 0, 1.5f, 17u);
    snprintf(w, sizeof w, "%s/old.weights", dir);
    if (lwf_weights_save(o->net, w, o->net->n, 0, &err)) fail_msg("%s", err.msg);
    int whole = 1;
    if (lwf_weights_load_model(g, w, &whole, NULL, &err)) fail_msg("%s: %s", what, err.msg);
    assert_int_equal(whole, 0);
    float *x = malloc((size_t)o->net->inputs * sizeof *x);
    assert_non_null(x);
    double worst = 0;
    int compared = 0;
    for (unsigned s = 1; s <= 2; ++s) {
        unsigned st = s;
        tu_fill(x, (size_t)o->net->inputs, &st, 0, 1);
        compared += compare_grown(o, g, K, x, .2f, &worst);
    }
    printf("%s: %d old-class probabilities of the boxes after NMS compared, max |old - grown| output %g\n", what,
           compared, worst);
    assert_true(compared > 0); /* not a comparison of no boxes */
    /* a file of neither size names both */
    snprintf(w, sizeof w, "%s/short.weights", dir);
    if (lwf_weights_save(o->net, w, o->net->n - 2, 0, &err)) fail_msg("%s", err.msg);
    assert_int_not_equal(lwf_weights_load_model(g, w, &whole, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "for the old detector"));
    free(x);
    lwf_model_free(o);
    lwf_model_free(g);
    tu_rmdir(dir);
    free(dir);
}

static void test_grow_yolov3_tiny(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *cfg = tu_small_cfg(dir, "/usr/share/darknet/cfg/yolov3-tiny.cfg", "yolov3-tiny.cfg", 128, 1);
    check_grow(cfg, 80, "yolov3-tiny.cfg");
    free(cfg);
    tu_rmdir(dir);
    free(dir);
}

static void test_grow_yolov3(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *cfg = tu_small_cfg(dir, "/usr/share/darknet/cfg/yolov3.cfg", "yolov3.cfg", 64, 1);
    check_grow(cfg, 80, "yolov3.cfg");
    free(cfg);
    tu_rmdir(dir);
    free(dir);
}

/* cfg/fashion-det.cfg up to its first [yolo] (the 3x3 head): a detector with one [yolo] */
static char *one_yolo_cfg(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cfg/fashion-det.cfg", tu_root());
    char *text = (char *)tu_slurp(path, NULL), *cut = strstr(text, "[route]"), *b = strstr(text, "batch=32");
    assert_true(cut && b);
    *cut = '\0';
    memcpy(b, "batch=01", 8);
    char *cfg = tu_write(dir, "one.cfg", text);
    free(text);
    return cfg;
}

static void test_grow_one_yolo(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), *cfg = one_yolo_cfg(dir);
    char *text = (char *)tu_slurp(cfg, NULL);
    assert_int_equal(count_lines_starting(text, "[yolo]"), 1);
    free(text);
    check_grow(cfg, 5, "one [yolo]");
    free(cfg);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_one_yolo),
        cmocka_unit_test(test_grow_yolov3_tiny),
        cmocka_unit_test(test_grow_yolov3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
