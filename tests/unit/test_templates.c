/* The cfg templates cfg/darknet19-lwf.cfg, darknet53-lwf.cfg and tiny-lwf.cfg: each builds, every head
 * gives a probability vector, and the weights stock libdarknet saves for the matching stock cfg load into
 * trunk + old head and reproduce the stock network's output.  Inputs are shrunk to 64x64 to stay fast. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SIDE 64            /* input side: a multiple of 32, the total stride of all three nets */
#define STOCK_DIR "/usr/share/darknet/cfg"
#define OLD_CLASSES 1000   /* the stock ImageNet heads */
#define NEW_CLASSES 10     /* the templates' new head */
/* A softmax of 1000 floats sums to 1 within ~1000 roundings of 6e-8 at worst. */
#define SUM_TOL 1e-4
/* Same logits, softmax in float (stock) vs double (ours): the probabilities agree to ~1e-7. */
#define PROB_TOL 1e-4
/* Logits come from the same libdarknet layers on the same weights: equal up to float rounding. */
#define LOGIT_RTOL 1e-4

/* One image (SIDE, SIDE, 3) in Darknet's planar layout, values in [0, 1). */
static float *make_input(int inputs)
{
    float *x = malloc((size_t)inputs * sizeof *x);
    assert_non_null(x);
    unsigned st = 12345u;
    tu_fill(x, (size_t)inputs, &st, 0, 1);
    return x;
}

static char *template_path(const char *name)
{
    char *p = malloc(4096);
    assert_non_null(p);
    snprintf(p, 4096, "%s/cfg/%s-lwf.cfg", tu_root(), name);
    return p;
}

/* The template's tasks are what the file promises: old 'imagenet' (1000 classes, T=2,
 * lambda=1) then new 'newtask' (10 classes), and the input is SIDE x SIDE. */
static void check_structure(const lwf_model *m, const char *name)
{
    if (m->net->w != SIDE || m->net->h != SIDE || m->net->batch != 1)
        fail_msg("%s: built %dx%d batch %d, want %dx%d batch 1", name, m->net->w, m->net->h, m->net->batch, SIDE,
                 SIDE);
    if (m->ntasks != 2) fail_msg("%s: %d tasks, want 2", name, m->ntasks);
    const lwf_task *o = &m->tasks[0], *n = &m->tasks[1];
    lwf_task_loss ol = lwf_task_loss_of(m, 0);
    if (strcmp(o->name, "imagenet") || o->is_new || o->classes != OLD_CLASSES || ol.temperature != 2 ||
        ol.lambda != 1)
        fail_msg("%s: old task is '%s' (new=%d, %d classes, T=%g, lambda=%g), want 'imagenet', old, %d classes, "
                 "T=2, lambda=1",
                 name, o->name, o->is_new, o->classes, ol.temperature, ol.lambda, OLD_CLASSES);
    if (strcmp(n->name, "newtask") || !n->is_new || n->classes != NEW_CLASSES || m->new_task != 1)
        fail_msg("%s: new task is '%s' (new=%d, %d classes), want 'newtask', new, %d classes", name, n->name,
                 n->is_new, n->classes, NEW_CLASSES);
}

/* Every entry finite and in [0, 1], the sum 1 within SUM_TOL; and not all equal
 * (a constant vector would pass for any network that outputs nothing useful). */
static void check_probabilities(const float *p, int n, const char *name, const char *task)
{
    double sum = 0;
    float lo = p[0], hi = p[0];
    for (int i = 0; i < n; ++i) {
        if (!isfinite(p[i]) || p[i] < 0 || p[i] > 1)
            fail_msg("%s: task %s output[%d] = %g is not a probability", name, task, i, p[i]);
        sum += p[i];
        if (p[i] < lo) lo = p[i];
        if (p[i] > hi) hi = p[i];
    }
    if (fabs(sum - 1) > SUM_TOL) fail_msg("%s: task %s outputs sum to %.8f, not 1", name, task, sum);
    if (hi - lo < 1e-3f / (float)n)
        fail_msg("%s: task %s outputs are all ~%g: a flat vector proves nothing", name, task, lo);
}

/* What stock libdarknet makes of one stock cfg: its saved weights and its answer. */
typedef struct {
    const char *name;          /* darknet19, darknet53, tiny */
    float gain;                /* tu_fill_convs gain */
    char *weights;             /* dir/<name>.weights, saved by libdarknet's save_weights; owned */
    size_t floats;             /* floats after its 20-byte header */
    float p[OLD_CLASSES];      /* stock network_predict: softmax probabilities */
    float z[OLD_CLASSES];      /* the logits its [softmax] reads */
} stock_ref;

enum { DARKNET19, DARKNET53, TINY, NSTOCK };

/* Group state: the stock references, built once (parsing darknet53 costs over a second). */
typedef struct {
    char *dir;
    stock_ref ref[NSTOCK];
} group;

/* Parses the stock cfg at SIDE x SIDE with libdarknet, fills its convolutions, saves its
 * weights with libdarknet, and records its answer on the test image. */
static void make_stock_ref(const char *dir, stock_ref *r)
{
    char src[4096], file[256];
    snprintf(src, sizeof src, "%s/%s.cfg", STOCK_DIR, r->name);
    snprintf(file, sizeof file, "%s-stock.cfg", r->name);
    char *cfg = tu_small_cfg(dir, src, file, SIDE, 1);
    network *net = parse_network_cfg(cfg);
    if (!net || net->w != SIDE || net->h != SIDE || net->batch != 1)
        fail_msg("libdarknet did not build %s at %dx%d batch 1", cfg, SIDE, SIDE);
    free(cfg);
    tu_fill_convs(net, 0, r->gain, 99u);
    r->weights = malloc(4096);
    assert_non_null(r->weights);
    snprintf(r->weights, 4096, "%s/%s.weights", dir, r->name);
    save_weights(net, r->weights);
    long long size = tu_file_size(r->weights);
    if (size < 20 || (size - 20) % 4) fail_msg("%s: %lld bytes is not a 0.2 header plus floats", r->weights, size);
    r->floats = (size_t)(size - 20) / 4;

    float *x = make_input(net->inputs);
    const float *p = network_predict(net, x);
    const layer *last = &net->layers[net->n - 1];
    if (last->type != SOFTMAX || net->outputs != OLD_CLASSES || net->layers[net->n - 2].outputs != OLD_CLASSES)
        fail_msg("stock %s: expected a %d-way [softmax] last", r->name, OLD_CLASSES);
    memcpy(r->p, p, sizeof r->p);
    memcpy(r->z, net->layers[net->n - 2].output, sizeof r->z);
    free(x);
    free_network(net);
}

static int group_setup(void **state)
{
    double t0 = tu_now();
    group *g = calloc(1, sizeof *g);
    assert_non_null(g);
    g->dir = tu_tmpdir();
    g->ref[DARKNET19] = (stock_ref){.name = "darknet19", .gain = 6};
    g->ref[DARKNET53] = (stock_ref){.name = "darknet53", .gain = 3};
    g->ref[TINY] = (stock_ref){.name = "tiny", .gain = 6};
    for (int i = 0; i < NSTOCK; ++i) make_stock_ref(g->dir, &g->ref[i]);
    printf("# stock references (parse, fill, save, predict): %.2f s\n", tu_now() - t0);
    *state = g;
    return 0;
}

static int group_teardown(void **state)
{
    group *g = *state;
    if (!g) return 0;
    for (int i = 0; i < NSTOCK; ++i) free(g->ref[i].weights);
    tu_rmdir(g->dir);
    free(g->dir);
    free(g);
    return 0;
}

/* Template `name` at SIDE x SIDE: its tasks as promised; the stock weights file fills exactly
 * its old part; one forward pass gives a probability vector on every head, and on the old
 * head the stock network's answer. */
static void check_template(const group *g, int which)
{
    double t0 = tu_now();
    const stock_ref *r = &g->ref[which];
    const char *name = r->name;
    char *src = template_path(name), file[256];
    snprintf(file, sizeof file, "%s-lwf.cfg", name);
    char *cfg = tu_small_cfg(g->dir, src, file, SIDE, 1);
    lwf_model *m = tu_load(cfg, 1);
    check_structure(m, name);

    size_t want = lwf_weights_count(m->net, lwf_old_layers(m));
    if (want != r->floats)
        fail_msg("%s: stock %s.weights holds %zu floats, the template's old part (layers 0-%d) counts %zu", name,
                 name, r->floats, lwf_old_layers(m) - 1, want);
    lwf_err err = {{0}};
    int whole = -1;
    if (lwf_weights_load_model(m, r->weights, &whole, NULL, &err) != 0)
        fail_msg("%s: stock weights rejected: %s", name, err.msg);
    if (whole != 0) fail_msg("%s: stock weights taken as the whole model (whole=%d), want the old part", name, whole);
    tu_fill_convs(m->net, lwf_old_layers(m), 6, 7u); /* the new head: deterministic too */

    float *x = make_input(m->net->inputs);
    network_predict(m->net, x);
    for (int k = 0; k < m->ntasks; ++k)
        check_probabilities(m->net->layers[m->tasks[k].loss].output, m->tasks[k].classes, name, m->tasks[k].name);

    const lwf_task *old = &m->tasks[0];
    const float *p = m->net->layers[old->loss].output;     /* (OLD_CLASSES) softmax(z) */
    const float *z = m->net->layers[old->loss - 1].output; /* (OLD_CLASSES) logits */
    float zlo = r->z[0], zhi = r->z[0];
    for (int i = 0; i < OLD_CLASSES; ++i) {
        if (!isfinite(r->z[i])) fail_msg("stock %s: logit %d is %g", name, i, r->z[i]);
        if (fabsf(z[i] - r->z[i]) > LOGIT_RTOL * (1 + fabsf(r->z[i])))
            fail_msg("%s: old-head logit %d is %.7g, stock %.7g", name, i, z[i], r->z[i]);
        if (fabsf(p[i] - r->p[i]) > PROB_TOL)
            fail_msg("%s: old-head probability %d is %.7g, stock %.7g", name, i, p[i], r->p[i]);
        if (r->z[i] < zlo) zlo = r->z[i];
        if (r->z[i] > zhi) zhi = r->z[i];
    }
    /* guard: logits spread over more than a unit, so a wrong weight shows in the answer */
    if (zhi - zlo < 1) fail_msg("stock %s: logits span only [%g, %g]: the comparison would be vacuous", name, zlo, zhi);
    printf("# %s: %zu floats, logits in [%.2f, %.2f], %.2f s\n", name, r->floats, zlo, zhi, tu_now() - t0);
    free(x);
    lwf_model_free(m);
    free(src);
    free(cfg);
}

static void test_darknet19(void **state) { check_template(*state, DARKNET19); }
static void test_darknet53(void **state) { check_template(*state, DARKNET53); }
static void test_tiny(void **state) { check_template(*state, TINY); }

/* darknet19's stock weights do not fit the tiny template: an error that counts floats,
 * and the model is left unchanged. */
static void test_wrong_stock_weights(void **state)
{
    double t0 = tu_now();
    const group *g = *state;
    const stock_ref *r = &g->ref[DARKNET19];
    char *src = template_path("tiny");
    char *cfg = tu_small_cfg(g->dir, src, "wrong-tiny-lwf.cfg", SIDE, 1);
    lwf_model *m = tu_load(cfg, 1);
    tu_fill_convs(m->net, 0, 6, 5u);
    const layer *l0 = &m->net->layers[0];
    float *before = malloc((size_t)l0->nweights * sizeof(float));
    assert_non_null(before);
    memcpy(before, l0->weights, (size_t)l0->nweights * sizeof(float));
    lwf_err err = {{0}};
    int whole = -1;
    if (lwf_weights_load_model(m, r->weights, &whole, NULL, &err) == 0)
        fail_msg("darknet19 stock weights (%zu floats) loaded into the tiny template", r->floats);
    char count[32];
    snprintf(count, sizeof count, "%zu", r->floats);
    if (!strstr(err.msg, "floats") || !strstr(err.msg, count))
        fail_msg("the error should name the file's float count %s: '%s'", count, err.msg);
    if (memcmp(before, l0->weights, (size_t)l0->nweights * sizeof(float)))
        fail_msg("a rejected weights file changed layer 0's weights");
    printf("# wrong stock weights: %.2f s\n", tu_now() - t0);
    free(before);
    lwf_model_free(m);
    free(src);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_darknet19),
        cmocka_unit_test(test_darknet53),
        cmocka_unit_test(test_tiny),
        cmocka_unit_test(test_wrong_stock_weights),
    };
    return cmocka_run_group_tests_name("templates", tests, group_setup, group_teardown);
}
