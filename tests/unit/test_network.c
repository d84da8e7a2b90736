/* Whole networks: a gradient check through a two-head network onto trunk weights,
 * interop with stock Darknet (weights trained by /usr/bin/darknet load into the first
 * head and give the stock outputs), and .weights save/load round trips. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *two_head_cfg =
    "[net]\nbatch=2\nheight=6\nwidth=6\nchannels=2\nlearning_rate=0.1\nmomentum=0\ndecay=0\n"
    "[convolutional]\nfilters=3\nsize=3\nstride=1\npad=1\nactivation=logistic\n"
    "[task]\nname=old\n"
    "[convolutional]\nfilters=4\nsize=1\nstride=1\nactivation=linear\n[avgpool]\n"
    "[lwf_distill]\ntemperature=%g\nlambda=%g\nt2_scaling=%d\n"
    "[task]\nname=new\n"
    "[convolutional]\nfilters=3\nsize=1\nstride=1\nactivation=linear\n[avgpool]\n"
    "[softmax]\n";

/* Total LwF loss of the model as the heads define it: L_new + lambda (T^2) L_old, in double. */
static double total_loss(lwf_model *m)
{
    network *net = m->net;
    double L = 0;
    for (int k = 0; k < m->ntasks; ++k) {
        const lwf_task *t = &m->tasks[k];
        const layer *l = &net->layers[t->loss];
        double s = 0;
        for (int i = 0; i < l->batch * l->inputs; ++i) s += l->loss[i];
        lwf_task_loss tl = lwf_task_loss_of(m, k);
        double w = t->is_new ? 1 : tl.lambda * (tl.t2_scaling ? tl.temperature * tl.temperature : 1);
        L += w * s;
    }
    return L;
}

static void setup_truth(lwf_model *m, unsigned seed)
{
    network *net = m->net;
    unsigned st = seed;
    tu_fill(net->input, (size_t)net->inputs * net->batch, &st, -1, 1);
    memset(net->truth, 0, (size_t)net->truths * net->batch * sizeof(float));
    for (int b = 0; b < net->batch; ++b)
        for (int k = 0; k < m->ntasks; ++k) {
            const lwf_task *t = &m->tasks[k];
            float *row = net->truth + b * net->truths + t->offset;
            if (t->is_new) row[(b + 1) % t->classes] = 1;
            else tu_fill(row, (size_t)t->classes, &st, -2, 2); /* teacher logits */
        }
}

/* The trunk's weight gradient (weight_updates after one backward pass, = -dL/dW) equals
 * central differences of the total loss.  Float network: h = 1e-2 (weights of order 0.5,
 * logistic units), tolerance 1e-3 absolute + 1e-2 relative for float rounding of the
 * summed loss (~1e-6 relative) divided by 2h. */
static void check_trunk_gradient(float T, float lambda, int t2)
{
    char *dir = tu_tmpdir();
    char text[2048];
    snprintf(text, sizeof text, two_head_cfg, T, lambda, t2);
    char *cfg = tu_write(dir, "two.cfg", text);
    lwf_model *m = tu_load(cfg, 0);
    network *net = m->net;
    assert_int_equal(m->ntasks, 2);
    layer *trunk = &net->layers[0];
    unsigned st = 11;
    tu_fill(trunk->weights, (size_t)trunk->nweights, &st, -0.5f, 0.5f);
    tu_fill(trunk->biases, (size_t)trunk->n, &st, -0.1f, 0.1f);
    for (int k = 0; k < m->ntasks; ++k) {
        layer *h = &net->layers[m->tasks[k].first + 1];
        tu_fill(h->weights, (size_t)h->nweights, &st, -1, 1);
    }
    setup_truth(m, 5);
    net->train = 1;
    forward_network(net);
    memset(trunk->weight_updates, 0, (size_t)trunk->nweights * sizeof(float));
    backward_network(net);
    double maxabs = 0;
    for (int i = 0; i < trunk->nweights; ++i) {
        const float h = 1e-2f;
        float keep = trunk->weights[i];
        trunk->weights[i] = keep + h;
        forward_network(net);
        double lp = total_loss(m);
        trunk->weights[i] = keep - h;
        forward_network(net);
        double lm = total_loss(m);
        trunk->weights[i] = keep;
        double numeric = -(lp - lm) / (2.0 * h);
        double got = trunk->weight_updates[i];
        if (fabs(got - numeric) > 1e-3 + 1e-2 * fabs(numeric))
            fail_msg("trunk weight %d: gradient %.6f, central difference %.6f (T=%g lambda=%g t2=%d)", i, got, numeric,
                     T, lambda, t2);
        if (fabs(numeric) > maxabs) maxabs = fabs(numeric);
    }
    assert_true(maxabs > 1e-2); /* guard against a vanishing gradient */
    lwf_model_free(m);
    free(cfg);
    tu_rmdir(dir);
    free(dir);
}

static void test_two_head_gradient(void **state)
{
    (void)state;
    check_trunk_gradient(2, 1, 0);
    check_trunk_gradient(4, 0.5f, 1);
}

/* The trunk's delta is the sum over heads: with the old head's lambda at 0 the trunk
 * gradient is the new head's alone, and with it on, it differs. */
static void test_trunk_delta_is_sum_over_heads(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    float *grads[2];
    for (int run = 0; run < 2; ++run) {
        char text[2048];
        snprintf(text, sizeof text, two_head_cfg, 2.0, run ? 1.0 : 0.0, 0);
        char *cfg = tu_write(dir, "two.cfg", text);
        lwf_model *m = tu_load(cfg, 0);
        network *net = m->net;
        unsigned st = 3;
        for (int i = 0; i < net->n; ++i)
            if (net->layers[i].type == CONVOLUTIONAL)
                tu_fill(net->layers[i].weights, (size_t)net->layers[i].nweights, &st, -1, 1);
        setup_truth(m, 9);
        net->train = 1;
        forward_network(net);
        backward_network(net);
        /* trunk delta = task-1 route delta + task-2 route delta */
        const layer *t0 = &net->layers[0];
        const layer *r1 = &net->layers[m->tasks[0].first], *r2 = &net->layers[m->tasks[1].first];
        /* the trunk conv's backward multiplied the summed delta by its logistic
         * gradient out (1 - out) in place: undo that to compare */
        double worst = 0, mag = 0;
        for (int i = 0; i < t0->outputs * t0->batch; ++i) {
            double o = t0->output[i];
            double sum = ((double)r1->delta[i] + r2->delta[i]) * o * (1 - o);
            worst = fmax(worst, fabs(sum - t0->delta[i]));
            mag = fmax(mag, fabs(r2->delta[i]));
        }
        assert_true(worst < 1e-6);
        assert_true(mag > 1e-4);
        grads[run] = malloc((size_t)t0->nweights * sizeof(float));
        memcpy(grads[run], t0->weight_updates, (size_t)t0->nweights * sizeof(float));
        lwf_model_free(m);
        free(cfg);
    }
    double diff = 0;
    for (int i = 0; i < 18; ++i) diff += fabs(grads[0][i] - grads[1][i]);
    assert_true(diff > 1e-4);
    free(grads[0]);
    free(grads[1]);
    tu_rmdir(dir);
    free(dir);
}

/* ---- interop with stock Darknet ---- */

static const char *stock_cfg =
    "[net]\nbatch=8\nsubdivisions=1\nheight=12\nwidth=12\nchannels=3\nlearning_rate=0.05\n"
    "momentum=0.9\ndecay=0.0005\nmax_batches=6\npolicy=constant\nmin_crop=12\nmax_crop=12\n"
    "%s"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=1\nstride=1\npad=1\nactivation=linear\n"
    "[avgpool]\n"
    "%s";
static const char *trunk_text =
    "[convolutional]\nbatch_normalize=1\nfilters=6\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n";

/* 4 classes of 12x12 images: a bright square in one quadrant, plus noise. */
static void make_images(const char *dir, int n, char *out, size_t cap)
{
    static const char *names[4] = {"north", "east", "south", "west"};
    unsigned st = 17;
    out[0] = '\0';
    for (int i = 0; i < n; ++i) {
        int cls = i % 4;
        image im = make_image(12, 12, 3);
        tu_fill(im.data, 12 * 12 * 3, &st, 0, 0.3f);
        int ox = (cls == 1 || cls == 2) ? 6 : 0, oy = (cls >= 2) ? 6 : 0;
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < 6; ++y)
                for (int x = 0; x < 6; ++x) im.data[c * 144 + (oy + y) * 12 + ox + x] = 0.9f;
        char base[4096];
        snprintf(base, sizeof base, "%s/img/%03d_%s", dir, i, names[cls]);
        save_image_options(im, base, PNG, 0);
        free_image(im);
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s.png\n", base);
    }
}

static void test_stock_weights_give_stock_outputs(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char path[4096], text[8192];
    snprintf(path, sizeof path, "%s/img", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/backup", dir);
    mkdir(path, 0755);
    size_t cap = 64 * 4096;
    char *names = malloc(cap);
    make_images(dir, 32, names, cap);
    char *listpath = tu_write(dir, "train.list", names);
    char *labels = tu_write(dir, "labels.txt", "north\neast\nsouth\nwest\n");
    snprintf(text, sizeof text, "classes=4\ntrain=%s\nvalid=%s\nlabels=%s\nbackup=%s/backup\n", listpath, listpath,
             labels, dir);
    char *datafile = tu_write(dir, "quad.data", text);
    snprintf(text, sizeof text, stock_cfg, trunk_text, "[softmax]\ngroups=1\n");
    char *scfg = tu_write(dir, "quad.cfg", text);
    /* the stock trainer, for a few iterations */
    int rc = tu_sh("cd '%s' && /usr/bin/darknet classifier train '%s' '%s' >train.log 2>&1", dir, datafile, scfg);
    assert_int_equal(rc, 0);
    char weights[4096];
    snprintf(weights, sizeof weights, "%s/backup/quad.weights", dir);
    struct stat sb;
    if (stat(weights, &sb) != 0) fail_msg("stock darknet wrote no %s", weights);

    /* the LwF cfg: same trunk, first head mirrors the stock head */
    char lwf[8192];
    snprintf(lwf, sizeof lwf, stock_cfg, trunk_text, "[lwf_distill]\n[task]\nname=new\n"
             "[convolutional]\nfilters=3\nsize=1\nstride=1\nactivation=linear\n[avgpool]\n[softmax]\n");
    /* insert "[task] name=quad" before the old head: after the trunk text */
    char *at = strstr(lwf, trunk_text) + strlen(trunk_text);
    char full[8192];
    snprintf(full, sizeof full, "%.*s[task]\nname=quad\n%s", (int)(at - lwf), lwf, at);
    char *lcfg = tu_write(dir, "quad-lwf.cfg", full);
    lwf_model *m = tu_load(lcfg, 1);
    /* a bare [lwf_distill]: DESIGN.md's defaults, temperature 2, lambda 1, no T^2 scaling */
    lwf_task_loss d = lwf_task_loss_of(m, 0);
    assert_true(d.temperature == 2 && d.lambda == 1 && d.t2_scaling == 0);
    lwf_err err = {{0}};
    int whole = -1;
    size_t seen = 0;
    if (lwf_weights_load_model(m, weights, &whole, &seen, &err)) fail_msg("%s", err.msg);
    assert_int_equal(whole, 0);
    assert_true(seen > 0);

    network *stock = load_network(scfg, weights, 0);
    set_batch_network(stock, 1);
    float worst = 0;
    unsigned st = 23;
    for (int i = 0; i < 24; ++i) {
        float x[12 * 12 * 3];
        if (i < 16) {
            char img[4096];
            snprintf(img, sizeof img, "%s/img/%03d_%s.png", dir, i, (const char *[]){"north", "east", "south", "west"}[i % 4]);
            image im = load_image_color(img, 0, 0);
            memcpy(x, im.data, sizeof x);
            free_image(im);
        } else {
            tu_fill(x, 12 * 12 * 3, &st, 0, 1);
        }
        float *want = network_predict(stock, x);
        network_predict(m->net, x);
        const float *got = m->net->layers[m->tasks[0].loss].output;
        for (int k = 0; k < 4; ++k) worst = fmaxf(worst, fabsf(got[k] - want[k]));
    }
    if (worst > 1e-5f) fail_msg("old head differs from stock network_predict by %g", worst);
    free_network(stock);
    lwf_model_free(m);
    free(names);
    free(listpath);
    free(labels);
    free(datafile);
    free(scfg);
    free(lcfg);
    tu_rmdir(dir);
    free(dir);
}

/* Our writer produces the same bytes as libdarknet's save_weights, and loading what
 * we wrote restores every value. */
static void test_weights_round_trip_matches_libdarknet(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char text[8192];
    snprintf(text, sizeof text, stock_cfg, trunk_text, "[softmax]\ngroups=1\n");
    char *scfg = tu_write(dir, "s.cfg", text);
    network *stock = parse_network_cfg(scfg);
    unsigned st = 77;
    for (int i = 0; i < stock->n; ++i) {
        layer *l = &stock->layers[i];
        if (l->type != CONVOLUTIONAL) continue;
        tu_fill(l->weights, (size_t)l->nweights, &st, -1, 1);
        tu_fill(l->biases, (size_t)l->n, &st, -1, 1);
        tu_fill(l->scales, (size_t)l->n, &st, 0.5f, 1.5f);
        tu_fill(l->rolling_mean, (size_t)l->n, &st, -1, 1);
        tu_fill(l->rolling_variance, (size_t)l->n, &st, 0.5f, 2);
    }
    *stock->seen = 12345;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/dn.weights", dir);
    snprintf(b, sizeof b, "%s/ours.weights", dir);
    save_weights(stock, a);
    lwf_err err = {{0}};
    if (lwf_weights_save(stock, b, stock->n, 12345, &err)) fail_msg("%s", err.msg);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", a, b), 0);
    /* load into a fresh network and compare every float */
    network *fresh = parse_network_cfg(scfg);
    size_t seen = 0;
    if (lwf_weights_load(fresh, b, fresh->n, &seen, &err)) fail_msg("%s", err.msg);
    assert_int_equal(seen, 12345);
    for (int i = 0; i < stock->n; ++i) {
        layer *x = &stock->layers[i], *y = &fresh->layers[i];
        if (x->type != CONVOLUTIONAL) continue;
        assert_memory_equal(x->weights, y->weights, (size_t)x->nweights * sizeof(float));
        assert_memory_equal(x->rolling_variance, y->rolling_variance, (size_t)x->n * sizeof(float));
    }
    /* a file one float short changes nothing and names both counts */
    float before = fresh->layers[0].weights[0];
    assert_int_equal(tu_sh("head -c -4 '%s' > '%s.short'", b, b), 0);
    char sh[4200];
    snprintf(sh, sizeof sh, "%s.short", b);
    fresh->layers[0].weights[0] = before + 1;
    assert_int_not_equal(lwf_weights_load(fresh, sh, fresh->n, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "too short"));
    char want[64];
    snprintf(want, sizeof want, "%zu", lwf_weights_count(fresh, fresh->n));
    assert_non_null(strstr(err.msg, want));
    assert_true(fresh->layers[0].weights[0] == before + 1);
    free_network(stock);
    free_network(fresh);
    free(scfg);
    tu_rmdir(dir);
    free(dir);
}

/* One training step through our plan-restricted loops (joint plan) on a single-task
 * LwF cfg equals libdarknet's own train_network_datum on the stock cfg, with Darknet's
 * reference kernels: same loss, same updated weights, batch-norm statistics included. */
static void test_one_step_equals_stock(void **state)
{
    (void)state;
    /* Darknet's own kernels on both sides (our fast kernels agree within tolerance:
     * test_kernels.c); the stock network's gemm goes through the same switch */
    int was = lwf_reference();
    lwf_set_reference(1);
    char *dir = tu_tmpdir();
    char text[8192];
    snprintf(text, sizeof text, stock_cfg, trunk_text, "[softmax]\ngroups=1\n");
    char *scfg = tu_write(dir, "s.cfg", text);
    /* the same network as an LwF cfg: [task] before the head, no old head */
    char *at = strstr(text, trunk_text) + strlen(trunk_text);
    char full[8192];
    snprintf(full, sizeof full, "%.*s[task]\nname=one\n%s", (int)(at - text), text, at);
    char *lcfg = tu_write(dir, "l.cfg", full);
    network *stock = parse_network_cfg(scfg);
    lwf_model *m = tu_load(lcfg, 0);
    network *net = m->net;
    assert_int_equal(stock->batch, net->batch);
    /* same weights in both */
    char w[4200];
    snprintf(w, sizeof w, "%s/w.weights", dir);
    unsigned st = 5;
    for (int i = 0; i < stock->n; ++i) {
        layer *l = &stock->layers[i];
        if (l->type != CONVOLUTIONAL) continue;
        tu_fill(l->weights, (size_t)l->nweights, &st, -0.5f, 0.5f);
        tu_fill(l->biases, (size_t)l->n, &st, -0.1f, 0.1f);
    }
    save_weights(stock, w);
    lwf_err err = {{0}};
    int whole;
    if (lwf_weights_load_model(m, w, &whole, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(whole, 1);
    /* same batch: inputs and one-hot labels */
    tu_fill(stock->input, (size_t)stock->inputs * stock->batch, &st, 0, 1);
    memcpy(net->input, stock->input, (size_t)net->inputs * net->batch * sizeof(float));
    memset(stock->truth, 0, (size_t)stock->truths * stock->batch * sizeof(float));
    memset(net->truth, 0, (size_t)net->truths * net->batch * sizeof(float));
    for (int b = 0; b < net->batch; ++b) {
        stock->truth[b * stock->truths + b % 4] = 1;
        net->truth[b * net->truths + b % 4] = 1;
    }
    float stock_loss = train_network_datum(stock) / stock->batch;
    lwf_plan plan;
    assert_int_equal(lwf_plan_make(m, LWF_PASS_JOINT, &plan), 0);
    *net->seen += (size_t)net->batch;
    lwf_forward(net, &plan);
    lwf_backward(net, &plan);
    lwf_update(net, &plan, get_current_rate(net));
    float ours = lwf_layer_loss(&net->layers[m->tasks[0].loss]);
    if (fabsf(ours - stock_loss) > 1e-5f * fabsf(stock_loss)) fail_msg("loss %.7f, stock %.7f", ours, stock_loss);
    /* layer i of the stock net is layer i (trunk) or i + 1 (after [task]) of ours */
    int compared = 0;
    for (int i = 0; i < stock->n; ++i) {
        layer *a = &stock->layers[i];
        if (a->type != CONVOLUTIONAL) continue;
        layer *b = &net->layers[i < m->trunk ? i : i + 1];
        assert_int_equal(a->nweights, b->nweights);
        assert_memory_equal(a->weights, b->weights, (size_t)a->nweights * sizeof(float));
        assert_memory_equal(a->biases, b->biases, (size_t)a->n * sizeof(float));
        if (a->batch_normalize) {
            assert_memory_equal(a->scales, b->scales, (size_t)a->n * sizeof(float));
            assert_memory_equal(a->rolling_mean, b->rolling_mean, (size_t)a->n * sizeof(float));
        }
        ++compared;
    }
    assert_int_equal(compared, 3);
    lwf_set_reference(was);
    lwf_plan_free(&plan);
    free_network(stock);
    lwf_model_free(m);
    free(scfg);
    free(lcfg);
    tu_rmdir(dir);
    free(dir);
}

/* ---- The per-layer-type table (plugin/layers/types.c) against libdarknet itself ---- */

/* Index of the first non-zero float of p (n), or -1. */
static long first_nonzero(const float *p, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (p[i] != 0) return (long)i;
    return -1;
}

/* A stock cfg with a layer of every row that has weights, and some without. */
static const char *every_kind_cfg =
    "[net]\nbatch=2\nheight=6\nwidth=6\nchannels=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=1\ngroups=2\nstride=1\nactivation=linear\n"
    "[batchnorm]\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[connected]\noutput=5\nbatch_normalize=1\nactivation=leaky\n"
    "[dropout]\nprobability=0.5\n"
    "[connected]\noutput=3\nactivation=linear\n"
    "[softmax]\ngroups=1\n";

/* libdarknet's own network of every_kind_cfg (in dir), after checking that it has a layer
 * of every table row with weights. */
static network *every_kind_network(const char *dir)
{
    char *cfg = tu_write(dir, "every.cfg", every_kind_cfg);
    network *net = parse_network_cfg(cfg);
    free(cfg);
    assert_non_null(net);
    int nk;
    const lwf_layer_kind *kinds = lwf_layer_kinds(&nk);
    for (int r = 0; r < nk; ++r) {
        int found = 0;
        for (int i = 0; i < net->n; ++i) found += lwf_layer_kind_of(&net->layers[i]) == &kinds[r];
        if (kinds[r].nstored > 0 && !found) fail_msg("no layer of row '%s' in the test cfg", kinds[r].name);
    }
    return net;
}

/* Fills the arrays (stored or update) of every layer with distinct values, as the table
 * names them. */
static void fill_arrays(network *net, int updates, unsigned seed)
{
    for (int i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        const lwf_layer_kind *k = lwf_layer_kind_of(l);
        const lwf_array *a = updates ? k->updates : k->stored;
        for (int j = 0; j < (updates ? k->nupdates : k->nstored); ++j) {
            float *p = lwf_array_data(l, &a[j]);
            if (!p) fail_msg("layer %d (%s): %s is NULL", i, k->name, a[j].name);
            tu_fill(p, lwf_array_floats(l, k, &a[j]), &seed, 0.25f, 2);
        }
    }
}

/* What a .weights file holds: our writer gives the bytes of libdarknet's save_weights for a
 * layer of every row (so each row's arrays, their order and their lengths are Darknet's),
 * lwf_weights_count is the file's length, and what we load from Darknet's file we write
 * back unchanged. */
static void test_layer_table_weights_match_libdarknet(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    network *net = every_kind_network(dir);
    fill_arrays(net, 0, 5);
    char a[4096], b[4096], c[4096];
    snprintf(a, sizeof a, "%s/dn.weights", dir);
    snprintf(b, sizeof b, "%s/ours.weights", dir);
    snprintf(c, sizeof c, "%s/again.weights", dir);
    save_weights(net, a);
    lwf_err err = {{0}};
    if (lwf_weights_save(net, b, net->n, 0, &err)) fail_msg("%s", err.msg);
    assert_int_equal(tu_file_size(a), 20 + 4 * (long long)lwf_weights_count(net, net->n));
    assert_int_equal(tu_sh("cmp '%s' '%s'", a, b), 0);
    char *cfg = tu_write(dir, "every2.cfg", every_kind_cfg);
    network *fresh = parse_network_cfg(cfg);
    free(cfg);
    if (lwf_weights_load(fresh, a, fresh->n, NULL, &err)) fail_msg("%s", err.msg);
    if (lwf_weights_save(fresh, c, fresh->n, 0, &err)) fail_msg("%s", err.msg);
    assert_int_equal(tu_sh("cmp '%s' '%s'", a, c), 0);
    /* a non-finite value in any stored array is found, in its layer */
    for (int i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        const lwf_layer_kind *k = lwf_layer_kind_of(l);
        for (int j = 0; j < k->nstored; ++j) {
            float *p = lwf_array_data(l, &k->stored[j]), keep = p[0];
            p[0] = NAN;
            assert_int_equal(lwf_weights_nonfinite(net, net->n), i);
            p[0] = keep;
        }
    }
    assert_int_equal(lwf_weights_nonfinite(net, net->n), -1);
    free_network(net);
    free_network(fresh);
    tu_rmdir(dir);
    free(dir);
}

/* The update buffers: exactly the ones libdarknet allocated among bias_updates,
 * scale_updates and weight_updates, each as long as its array (per output, and
 * weights rows as Darknet sizes them); a .state written and read back restores them, and
 * reading alone changes nothing. */
static void test_layer_table_update_buffers(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    network *net = every_kind_network(dir);
    static const size_t fields[3] = {offsetof(layer, bias_updates), offsetof(layer, scale_updates),
                                     offsetof(layer, weight_updates)};
    size_t total = 0;
    for (int i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        const lwf_layer_kind *k = lwf_layer_kind_of(l);
        for (int f = 0; f < 3; ++f) {
            float *p;
            memcpy(&p, (const char *)l + fields[f], sizeof p);
            int listed = 0;
            for (int j = 0; j < k->nupdates; ++j) listed += k->updates[j].field == fields[f];
            if (listed != (p != NULL)) fail_msg("layer %d (%s): update buffer %d %s", i, k->name, f,
                                                p ? "allocated but not in the row" : "in the row but NULL");
        }
        for (int j = 0; j < k->nupdates; ++j) {
            size_t n = lwf_array_floats(l, k, &k->updates[j]);
            size_t want = k->updates[j].field != offsetof(layer, weight_updates) ? (size_t)k->units(l)
                          : l->type == CONVOLUTIONAL                           ? (size_t)l->nweights
                                                                               : (size_t)l->inputs * l->outputs;
            assert_int_equal(n, want);
            total += n;
        }
    }
    fill_arrays(net, 1, 9);
    *net->t = 17;
    char sp[4096];
    snprintf(sp, sizeof sp, "%s/every.state", dir);
    lwf_err err = {{0}};
    lwf_state st = {3, 42, 1};
    if (lwf_state_save(net, &st, sp, &err)) fail_msg("%s", err.msg);
    assert_int_equal(tu_file_size(sp), 48 + 4 * (long long)total);
    char *cfg = tu_write(dir, "every2.cfg", every_kind_cfg);
    network *fresh = parse_network_cfg(cfg);
    free(cfg);
    lwf_state_file f;
    assert_int_equal(lwf_state_read(fresh, sp, &f, &err), 0);
    assert_int_equal(f.st.iteration, 3);
    assert_int_equal(f.st.seed, 42);
    assert_int_equal(f.st.method, 1);
    assert_int_equal(f.n, total);
    for (int i = 0; i < fresh->n; ++i) { /* read, not applied: still the parser's zeros */
        const layer *l = &fresh->layers[i];
        const lwf_layer_kind *k = lwf_layer_kind_of(l);
        for (int j = 0; j < k->nupdates; ++j)
            assert_int_equal(first_nonzero(lwf_array_data(l, &k->updates[j]), lwf_array_floats(l, k, &k->updates[j])), -1);
    }
    assert_int_equal(*fresh->t, 0);
    lwf_state_apply(fresh, &f);
    lwf_state_file_free(&f);
    assert_int_equal(*fresh->t, 17);
    for (int i = 0; i < net->n; ++i) {
        const layer *x = &net->layers[i], *y = &fresh->layers[i];
        const lwf_layer_kind *k = lwf_layer_kind_of(x);
        for (int j = 0; j < k->nupdates; ++j)
            assert_memory_equal(lwf_array_data(x, &k->updates[j]), lwf_array_data(y, &k->updates[j]),
                                lwf_array_floats(x, k, &k->updates[j]) * sizeof(float));
    }
    free_network(net);
    free_network(fresh);
    tu_rmdir(dir);
    free(dir);
}

/* A new head's initialisation: Darknet's distributions, drawn in the order the trainer
 * always drew them (so a seed gives the same head as before the table): convolutional
 * weights sqrt(2 / (size^2 c / groups)) N(0, 1), connected sqrt(2 / inputs) U(-1, 1),
 * biases zero, batch-norm scales and statistics as built. */
static void test_layer_table_init(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    network *net = every_kind_network(dir);
    fill_arrays(net, 0, 3);
    int checked = 0;
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type != CONVOLUTIONAL && l->type != CONNECTED && l->type != BATCHNORM) continue;
        size_t nw = l->type == CONVOLUTIONAL ? (size_t)l->nweights : (size_t)l->inputs * l->outputs;
        size_t nb = (size_t)(l->type == BATCHNORM ? l->c : l->type == CONVOLUTIONAL ? l->n : l->outputs);
        float *want = malloc(nw * sizeof(float)), *scales = malloc(nb * sizeof(float));
        if (l->scales) memcpy(scales, l->scales, nb * sizeof(float));
        lwf_rng r = lwf_rng_make(7, 1, (unsigned long long)i), r2 = r;
        float s = l->type == CONVOLUTIONAL ? sqrtf(2.0f / (l->size * l->size * l->c / l->groups)) : sqrtf(2.0f / l->inputs);
        for (size_t k = 0; l->type != BATCHNORM && k < nw; ++k)
            want[k] = l->type == CONVOLUTIONAL ? s * lwf_rng_normal(&r2) : s * lwf_rng_uniform(&r2, -1, 1);
        float w0 = l->weights ? l->weights[0] : 0, b0 = l->biases[0];
        lwf_layer_init(l, &r);
        if (l->type == BATCHNORM) { /* nothing it stores is drawn */
            assert_true(l->biases[0] == b0);
        } else {
            assert_memory_equal(l->weights, want, nw * sizeof(float));
            assert_true(l->weights[0] != w0);
            for (size_t k = 0; k < nb; ++k) assert_true(l->biases[k] == 0);
        }
        if (l->scales) assert_memory_equal(l->scales, scales, nb * sizeof(float));
        free(want);
        free(scales);
        ++checked;
    }
    assert_int_equal(checked, 5);
    free_network(net);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_head_gradient),
        cmocka_unit_test(test_trunk_delta_is_sum_over_heads),
        cmocka_unit_test(test_stock_weights_give_stock_outputs),
        cmocka_unit_test(test_weights_round_trip_matches_libdarknet),
        cmocka_unit_test(test_one_step_equals_stock),
        cmocka_unit_test(test_layer_table_weights_match_libdarknet),
        cmocka_unit_test(test_layer_table_update_buffers),
        cmocka_unit_test(test_layer_table_init),
    };
    return cmocka_run_group_tests_name("network", tests, NULL, NULL);
}
