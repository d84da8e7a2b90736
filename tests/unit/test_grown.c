/* Class-incremental heads that grow: lwf init -grow (the cfg and the <stem>.data, .labels and
 * .valid.list beside it, from a stock classifier and again from a grown cfg), and weights that
 * grow: an old model's file fills the trunk and rows 0..K-1 of the class layer, so before
 * training the grown network's first K logits equal the old model's bit for bit (Fashion net,
 * darknet19 and tiny at a small size, an alexnet-style [connected] head), also after the new
 * rows are drawn from the seed. */
#include "testutil.h"
#include "layers/layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIDE 64           /* darknet19 and tiny at 64x64 (total stride 32) */
#define NEW 3             /* new classes of every test */
#define STOCK_DIR "/usr/share/darknet/cfg"

static const char alexnet_cfg[] = "[net]\nbatch=1\nheight=16\nwidth=16\nchannels=3\n\n"
                                  "[convolutional]\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=relu\n\n"
                                  "[maxpool]\nsize=2\nstride=2\n\n"
                                  "[connected]\noutput=12\nactivation=relu\n\n"
                                  "[dropout]\nprobability=.5\n\n"
                                  "[connected]\noutput=6\nactivation=linear\n\n"
                                  "[softmax]\ngroups=1\n";

/* Deterministic values in every stored array of layers [0, n) of net (per the layer table),
 * a positive rolling variance, weights in +-sqrt(3 / width). */
static void fill_all(network *net, unsigned seed)
{
    unsigned st = seed;
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        const lwf_layer_kind *k = lwf_layer_kind_of(l);
        for (int a = 0; a < k->nstored; ++a) {
            const lwf_array *arr = &k->stored[a];
            size_t n = lwf_array_floats(l, k, arr);
            float r = arr->row ? 1.7f / (float)sqrt((double)k->width(l)) : 0.5f;
            tu_fill(lwf_array_data(l, arr), n, &st, strcmp(arr->name, "rolling_variance") == 0 ? 0.5f : -r, r);
        }
    }
}

/* dir/<name> with `lines` labels "<prefix>0..", and a one-line valid list */
static char *write_data(const char *dir, const char *name, const char *prefix, int classes)
{
    size_t cap = (size_t)classes * 32 + 16384;
    char path[4096], *text = malloc(cap);
    assert_non_null(text);
    size_t at = 0;
    for (int i = 0; i < classes; ++i) at += (size_t)sprintf(text + at, "%s%d\n", prefix, i);
    snprintf(path, sizeof path, "%s.labels", name);
    free(tu_write(dir, path, text));
    snprintf(path, sizeof path, "%s.valid.list", name);
    snprintf(text, 64, "img/%s_one.png\n", prefix);
    free(tu_write(dir, path, text));
    snprintf(text, cap, "classes=%d\ntrain=%s/%s.valid.list\nvalid=%s/%s.valid.list\nlabels=%s/%s.labels\n",
             classes, dir, name, dir, name, dir, name);
    snprintf(path, sizeof path, "%s.data", name);
    char *p = tu_write(dir, path, text);
    free(text);
    return p;
}

/* Logits (the loss layer's input) of task k of m on input x, eval mode. */
static const float *logits(lwf_model *m, int k, const float *x)
{
    lwf_plan p;
    assert_int_equal(lwf_plan_make(m, LWF_PASS_EVAL, &p), 0);
    memcpy(m->net->input, x, (size_t)m->net->inputs * sizeof(float));
    lwf_forward(m->net, &p);
    lwf_plan_free(&p);
    return m->net->layers[m->tasks[k].loss - 1].output;
}

/* The stock cfg src (copied small), weights from libdarknet; the old model (lwf init) and the
 * grown one (lwf init -grow) load them; first K logits equal bitwise, before and after the new
 * rows are drawn. */
static void check_grows(const char *src, const char *name, int side)
{
    char *dir = tu_tmpdir(), file[256], w[4096], lwfcfg[4096], grown[4096];
    snprintf(file, sizeof file, "%s.cfg", name);
    char *cfg = side ? tu_small_cfg(dir, src, file, side, 1) : tu_write(dir, file, src);
    network *net = parse_network_cfg(cfg);
    assert_non_null(net);
    int K = net->layers[net->n - 1].outputs;
    fill_all(net, 7u);
    snprintf(w, sizeof w, "%s/old.weights", dir);
    save_weights(net, w);
    free_network(net);
    char *od = write_data(dir, "old", "o", K), *nd = write_data(dir, "new", "n", NEW);
    snprintf(lwfcfg, sizeof lwfcfg, "%s/lwf.cfg", dir);
    snprintf(grown, sizeof grown, "%s/all.cfg", dir);
    lwf_err err;
    if (lwf_init_cfg(cfg, nd, lwfcfg, -1, NULL, &err) || lwf_init_grow(cfg, nd, od, grown, NULL, &err))
        fail_msg("%s: %s", name, err.msg);
    lwf_model *old = tu_load(lwfcfg, 1), *g = tu_load(grown, 1);
    int whole = 1;
    if (lwf_weights_load_model(old, w, &whole, NULL, &err) || lwf_weights_load_model(g, w, &whole, NULL, &err))
        fail_msg("%s: %s", name, err.msg);
    assert_int_equal(whole, 0);
    const lwf_task *t = &g->tasks[g->new_task];
    assert_int_equal(t->old_classes, K);
    assert_int_equal(t->classes, K + NEW);
    float *x = malloc((size_t)g->net->inputs * sizeof *x), *zo = malloc((size_t)K * sizeof *zo);
    assert_true(x && zo);
    unsigned st = 3u;
    tu_fill(x, (size_t)g->net->inputs, &st, 0, 1);
    memcpy(zo, logits(old, 0, x), (size_t)K * sizeof *zo);
    int nonzero = 0;
    for (int i = 0; i < K; ++i) nonzero += zo[i] != 0;
    assert_true(nonzero > K / 2); /* not a vacuous comparison of zeros */
    if (memcmp(zo, logits(g, g->new_task, x), (size_t)K * sizeof *zo))
        fail_msg("%s: the grown head's first %d logits differ from the old model's", name, K);
    /* the new rows from the seed; the old ones stay */
    lwf_rng r = lwf_rng_make(5, 6, 7);
    layer *cl = &g->net->layers[t->class_layer];
    lwf_layer_init_from(cl, &r, K);
    const float *zg = logits(g, g->new_task, x);
    if (memcmp(zo, zg, (size_t)K * sizeof *zo)) fail_msg("%s: drawing the new rows changed the old ones", name);
    float nb = 0;
    for (int i = K; i < K + NEW; ++i) nb += zg[i] != 0;
    assert_true(nb > 0);
    free(x);
    free(zo);
    lwf_model_free(old);
    lwf_model_free(g);
    free(cfg);
    free(od);
    free(nd);
    tu_rmdir(dir);
    free(dir);
}

static void test_fashion(void **state)
{
    (void)state;
    char src[4096];
    snprintf(src, sizeof src, "%s/cfg/fashion.cfg", tu_root());
    check_grows(src, "fashion", 28);
}
static void test_darknet19(void **state)
{
    (void)state;
    check_grows(STOCK_DIR "/darknet19.cfg", "darknet19", SIDE);
}
static void test_tiny(void **state)
{
    (void)state;
    check_grows(STOCK_DIR "/tiny.cfg", "tiny", SIDE);
}
static void test_alexnet_connected(void **state)
{
    (void)state;
    check_grows(alexnet_cfg, "alexnet", 0);
}

/* The files of lwf init -grow, from a stock cfg and then from the grown cfg. */
static void test_init_files(void **state)
{
    (void)state;
    char *dir = tu_tmpdir(), src[4096], out[4096], p[4096];
    snprintf(src, sizeof src, "%s/cfg/fashion.cfg", tu_root());
    char *od = write_data(dir, "a", "a", 5), *nd = write_data(dir, "b", "b", NEW);
    snprintf(out, sizeof out, "%s/all.cfg", dir);
    lwf_err err;
    if (lwf_init_grow(src, nd, od, out, NULL, &err)) fail_msg("%s", err.msg);
    snprintf(p, sizeof p, "%s/all.data", dir);
    char *dtext = (char *)tu_slurp(p, NULL), want[8192];
    snprintf(want, sizeof want, "classes=8\ntrain=%s/b.valid.list\nvalid=%s/all.valid.list\nlabels=%s/all.labels\n"
                                "backup=backup\ntop=1\n", dir, dir, dir);
    assert_string_equal(dtext, want);
    snprintf(p, sizeof p, "%s/all.labels", dir);
    char *labels = (char *)tu_slurp(p, NULL);
    assert_string_equal(labels, "a0\na1\na2\na3\na4\nb0\nb1\nb2\n");
    snprintf(p, sizeof p, "%s/all.valid.list", dir);
    char *valid = (char *)tu_slurp(p, NULL);
    assert_string_equal(valid, "img/a_one.png\nimg/b_one.png\n");
    lwf_model *m = tu_load(out, 1);
    assert_int_equal(m->ntasks, 1);
    assert_string_equal(m->tasks[0].name, "all");
    assert_int_equal(m->tasks[0].old_classes, 5);
    assert_int_equal(m->tasks[0].classes, 8);
    assert_int_equal(m->net->truths, 8 + 5); /* targets, then the teacher's K logits */
    lwf_model_free(m);
    /* the next step: grow the grown cfg by 3 more */
    char *nd2 = write_data(dir, "c", "c", NEW), out2[4096];
    snprintf(out2, sizeof out2, "%s/all2.cfg", dir);
    snprintf(p, sizeof p, "%s/all.data", dir);
    if (lwf_init_grow(out, nd2, p, out2, NULL, &err)) fail_msg("%s", err.msg);
    m = tu_load(out2, 1);
    assert_int_equal(m->tasks[0].old_classes, 8);
    assert_int_equal(m->tasks[0].classes, 11);
    lwf_model_free(m);
    /* refused: an old .data whose classes are not the head's */
    char *bad = write_data(dir, "bad", "x", 4);
    assert_int_equal(lwf_init_grow(src, nd, bad, out, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "classes=4"));
    free(bad);
    free(dtext);
    free(labels);
    free(valid);
    free(od);
    free(nd);
    free(nd2);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fashion),        cmocka_unit_test(test_darknet19), cmocka_unit_test(test_tiny),
        cmocka_unit_test(test_alexnet_connected), cmocka_unit_test(test_init_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
