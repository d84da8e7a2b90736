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
    const float kx[4] = {x->bbox.x, x->bbox.y, x->bbox.w, x->bbox.h},
                ky[4] = {y->bbox.x, y->bbox.y, y->bbox.w, y->bbox.h};
    for (int i = 0; i < 4; ++i)
        if (kx[i] != ky[i]) return kx[i] < ky[i] ? -1 : 1;
    return (x->objectness > y->objectness) - (x->objectness < y->objectness);
}

/* The grown detector g (old weights loaded) against the old one o on input x: for every
 * [yolo] layer, anchor and cell, the box, objectness and K old class outputs equal bit for bit
 * (the grown convolution computes its old filters as the old one does: kernels.h,
 * lwf_kernels_split_rows); then the boxes after NMS: the same boxes, their old classes'
 * probabilities equal.
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
                    if (d != 0)
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
        if (p.x != q.x || p.y != q.y || p.w != q.w || p.h != q.h || dO[i].objectness != dG[i].objectness)
            fail_msg("%s: box %d: old (%g, %g, obj %g), grown (%g, %g, obj %g)", g->cfg, i, dO[i].bbox.x, dO[i].bbox.w,
                     dO[i].objectness, dG[i].bbox.x, dG[i].bbox.w, dG[i].objectness);
        for (int k = 0; k < K; ++k) {
            if (dO[i].prob[k] != dG[i].prob[k])
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
    /* the old detector of the grown cfg (the trainer's teacher) builds: the grown [task]'s
     * .data, over K + M classes, is not its */
    lwf_build_opts bo = {1, 1};
    lwf_model *t = lwf_model_load_old_detector(grown, &bo, &err);
    if (!t) fail_msg("%s: the old detector of the grown cfg: %s", what, err.msg);
    assert_int_equal(t->tasks[0].classes, K);
    assert_int_equal(lwf_weights_count(t->net, t->net->n), lwf_weights_count(o->net, o->net->n));
    lwf_model_free(t);
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

/* check_grow on Debian's stock cfg `name` (80 classes), at size x size */
static void check_grow_stock(const char *name, int size)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "/usr/share/darknet/cfg/%s", name);
    char *cfg = tu_small_cfg(dir, path, name, size, 1);
    check_grow(cfg, 80, name);
    free(cfg);
    tu_rmdir(dir);
    free(dir);
}

static void test_grow_yolov3_tiny(void **state)
{
    (void)state;
    check_grow_stock("yolov3-tiny.cfg", 128);
}

static void test_grow_yolov3(void **state)
{
    (void)state;
    check_grow_stock("yolov3.cfg", 64);
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

/* ---- lwf export of a grown detector against stock Darknet ---- */

#define IMAGES 20
#define THRESH 0.5f /* random weights: a few boxes per image above it */

/* Stock `detector test`'s lines for dets (libdarknet's draw_detections prints one
 * "name: NN%" per detection and class above thresh) appended to out. */
static void class_lines(const detection *d, int n, int C, const lwf_list *names, char *out, size_t cap)
{
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < C; ++j)
            if (d[i].prob[j] > THRESH)
                snprintf(out + strlen(out), cap - strlen(out), "%s: %.0f%%\n", names->items[j], d[i].prob[j] * 100);
}

/* The "name: NN%" lines of a `detector test` output, appended to out. */
static void keep_class_lines(const char *text, char *out, size_t cap)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 1 && p[len - 1] == '%' && memchr(p, ':', len))
            snprintf(out + strlen(out), cap - strlen(out), "%.*s\n", (int)len, p);
        p += len + (nl != NULL);
    }
}

/* 20 PNG images of several sizes (letterboxed differently): a random background colour, four
 * rectangles of random colours and places, some noise; dir/img<i>.png. */
static void write_images(const char *dir)
{
    unsigned st = 99;
    for (int i = 0; i < IMAGES; ++i) {
        image im = make_image(72 + 12 * (i % 5), 64 + 16 * (i % 3), 3);
        float v[4 * 7], bg[3];
        tu_fill(bg, 3, &st, 0, 1);
        tu_fill(v, sizeof v / sizeof v[0], &st, 0, 1);
        tu_fill(im.data, (size_t)im.w * im.h * 3, &st, -0.1f, 0.1f);
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < im.h; ++y)
                for (int x = 0; x < im.w; ++x) {
                    float px = bg[c];
                    for (int r = 0; r < 4; ++r) {
                        const float *q = v + 7 * r; /* x0, y0, w, h, colour */
                        if (x >= q[0] * im.w && x < (q[0] + q[2] / 2) * im.w && y >= q[1] * im.h &&
                            y < (q[1] + q[3] / 2) * im.h)
                            px = q[4 + c];
                    }
                    float *p = &im.data[(size_t)c * im.w * im.h + (size_t)y * im.w + x];
                    *p = fminf(1, fmaxf(0, *p + px));
                }
        char base[4200];
        snprintf(base, sizeof base, "%s/img%d", dir, i);
        save_image_options(im, base, PNG, 0);
        free_image(im);
    }
}

static int near(float a, float b)
{
    return fabsf(a - b) <= 1e-5f * fmaxf(1, fabsf(b));
}

/* One image: our detector g (fast kernels) against libdarknet's network sn from the exported
 * files (Darknet's reference kernels) and the stock binary's lines.  *worst: the largest
 * |ours - stock| of a [yolo] output; returns the (box, class) pairs above THRESH compared. */
static int compare_image(lwf_model *g, network *sn, const char *img, const lwf_list *names, const char *cmd,
                         double *worst, int *lines)
{
    lwf_err err;
    image im;
    detection *d = NULL, *sd = NULL;
    int n = 0, sn_n = 0, C = g->tasks[0].classes, pairs = 0;
    if (lwf_detect(g, img, THRESH, .45f, &im, &d, &n, &err)) fail_msg("%s", err.msg);
    image r = letterbox_image(im, sn->w, sn->h);
    lwf_set_reference(1);
    network_predict(sn, r.data);
    lwf_set_reference(0);
    for (int i = 0; i < sn->n; ++i) {
        const layer *a = &g->net->layers[i], *b = &sn->layers[i];
        assert_int_equal(a->type, b->type);
        if (a->type != YOLO) continue;
        assert_int_equal(a->outputs, b->outputs);
        for (int k = 0; k < a->outputs; ++k) {
            double e = fabs((double)a->output[k] - b->output[k]);
            if (e > *worst) *worst = e;
            if (e > 1e-5)
                fail_msg("%s: [yolo] layer %d output %d: ours %g, stock %g", img, i, k, a->output[k], b->output[k]);
        }
    }
    sd = get_network_boxes(sn, im.w, im.h, THRESH, .5f, 0, 1, &sn_n);
    do_nms_sort(sd, sn_n, C, .45f);
    assert_int_equal(n, sn_n);
    for (int i = 0; i < n; ++i) {
        const box p = d[i].bbox, q = sd[i].bbox;
        /* relative above 1: a box's w and h are exp of a raw output, unbounded */
        if (!near(p.x, q.x) || !near(p.y, q.y) || !near(p.w, q.w) || !near(p.h, q.h))
            fail_msg("%s: box %d: ours (%g %g %g %g), stock (%g %g %g %g)", img, i, p.x, p.y, p.w, p.h, q.x, q.y, q.w,
                     q.h);
        for (int j = 0; j < C; ++j) {
            if ((d[i].prob[j] > THRESH) != (sd[i].prob[j] > THRESH) || fabsf(d[i].prob[j] - sd[i].prob[j]) > 1e-5f)
                fail_msg("%s: box %d class %d: ours %g, stock %g", img, i, j, d[i].prob[j], sd[i].prob[j]);
            pairs += d[i].prob[j] > THRESH;
        }
    }
    /* the stock binary on the exported files prints the lines our boxes give */
    static char out[1 << 16], got[1 << 16], want[1 << 16];
    got[0] = want[0] = '\0';
    if (tu_capture(out, sizeof out, 0, "%s '%s' -thresh %g -out pred 2>/dev/null", cmd, img, (double)THRESH) != 0)
        fail_msg("stock detector test failed on %s:\n%s", img, out);
    keep_class_lines(out, got, sizeof got);
    class_lines(d, n, C, names, want, sizeof want);
    assert_string_equal(got, want);
    for (const char *p = want; (p = strchr(p, '\n')); ++p) ++*lines;
    free_detections(d, n);
    free_detections(sd, sn_n);
    free_image(r);
    free_image(im);
    return pairs;
}

/* Scales the weights of each convolution before a [yolo] by 12, its biases spread over +-2. */
static void spread_outputs(network *net)
{
    unsigned st = 31;
    for (int i = 0; i + 1 < net->n; ++i) {
        layer *l = &net->layers[i];
        if (net->layers[i + 1].type != YOLO) continue;
        for (int k = 0; k < l->nweights; ++k) l->weights[k] *= 12;
        tu_fill(l->biases, (size_t)l->n, &st, -2, 2);
    }
}

static void test_export_against_stock(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), od[4096], nd[4096], grown[4096], w[4096], ocfg[4096], ow[4096], path[4200];
    char src[4096];
    snprintf(src, sizeof src, "%s/cfg/fashion-det.cfg", tu_root());
    char *text = (char *)tu_slurp(src, NULL), *b = strstr(text, "batch=32");
    memcpy(b, "batch=01", 8);
    char *cfg = tu_write(dir, "det.cfg", text);
    free(text);
    write_datas(dir, 5, NEW, od, nd, sizeof od);
    snprintf(grown, sizeof grown, "%s/grown.cfg", dir);
    lwf_err err;
    if (lwf_init_grow(cfg, nd, od, grown, NULL, &err)) fail_msg("%s", err.msg);
    /* a "trained" grown detector: every layer random, the convolutions before the [yolo]
     * layers scaled up so that the probabilities spread over (0, 1) */
    lwf_model *g = tu_load(grown, 1);
    tu_fill_convs(g->net, 0, 1.5f, 23u);
    spread_outputs(g->net);
    snprintf(w, sizeof w, "%s/trained.weights", dir);
    if (lwf_weights_save(g->net, w, g->net->n, 0, &err)) fail_msg("%s", err.msg);
    snprintf(ocfg, sizeof ocfg, "%s/stock.cfg", dir);
    snprintf(ow, sizeof ow, "%s/stock.weights", dir);
    if (lwf_export(grown, w, "grown", ocfg, ow, &err)) fail_msg("%s", err.msg);
    char *out = (char *)tu_slurp(ocfg, NULL);
    assert_int_equal(count_lines_starting(out, "[yolo]"), 2);
    assert_int_equal(count_lines_starting(out, "classes=8"), 2);
    assert_null(strstr(out, "[task]"));
    assert_null(strstr(out, "lwf_yolo"));
    assert_null(strstr(out, "old_classes"));
    assert_null(strstr(out, "lambda"));
    free(out);
    /* the old detector's file is not a model to export: its new rows are untrained */
    snprintf(path, sizeof path, "%s/old.weights", dir);
    lwf_model *o = tu_load(cfg, 1);
    tu_fill_convs(o->net, 0, 1.5f, 5u);
    if (lwf_weights_save(o->net, path, o->net->n, 0, &err)) fail_msg("%s", err.msg);
    lwf_model_free(o);
    assert_int_not_equal(lwf_export(grown, path, "grown", ocfg, ow, &err), 0);
    assert_non_null(strstr(err.msg, "holds the old detector only"));
    assert_int_not_equal(lwf_export(grown, w, "nosuch", ocfg, ow, &err), 0);
    assert_non_null(strstr(err.msg, "a detector is one task: 'grown'"));

    write_images(dir);
    lwf_list names;
    snprintf(path, sizeof path, "%s/grown.names", dir);
    if (lwf_list_read(path, &names, &err)) fail_msg("%s", err.msg);
    network *sn = load_network(ocfg, ow, 0);
    set_batch_network(sn, 1);
    /* stock in a folder of its own (it writes pred.jpg there), its label glyphs linked in */
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/run' && cd '%s/run' && ln -sfn /usr/share/darknet/data data && /usr/bin/darknet detector "
             "test '%s/grown.data' '%s' '%s'",
             dir, dir, dir, ocfg, ow);
    double worst = 0;
    int pairs = 0, lines = 0;
    for (int i = 0; i < IMAGES; ++i) {
        char img[4200];
        snprintf(img, sizeof img, "%s/img%d.png", dir, i);
        pairs += compare_image(g, sn, img, &names, cmd, &worst, &lines);
    }
    printf("export: %d images, max |ours - stock| of a [yolo] output %g, %d boxes x classes after NMS compared, "
           "%d lines of stock detector test equal\n",
           IMAGES, worst, pairs, lines);
    assert_true(pairs >= IMAGES); /* not a comparison of no boxes */
    free_network(sn);
    lwf_list_free(&names);
    lwf_model_free(g);
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
        cmocka_unit_test(test_export_against_stock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
