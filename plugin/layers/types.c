/* The per-layer-type table: for each layer type (stock or ours), the arrays a .weights
 * file holds, its update (momentum) buffers, how a new head's layer starts, and its delta
 * rules.  weights.c, state.c, the trainer and the step loops read it; the layers
 * themselves are in their own files. */
#include "layers/layers.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static int conv_units(const layer *l) { return l->n; }
/* one filter: c/groups * size * size (Darknet's nweights / n) */
static int conv_width(const layer *l) { return l->n > 0 ? l->nweights / l->n : 0; }
static float conv_scale(const layer *l) { return sqrtf(2.0f / (l->size * l->size * l->c / l->groups)); }
/* Darknet's 1x1 backward (gemm into the input delta with beta 0) overwrites its input
 * delta instead of adding, as the other sizes do through col2im */
static int conv_overwrites(const layer *l) { return l->size == 1 && l->groups == 1 && !l->stopbackward; }

static int conn_units(const layer *l) { return l->outputs; }
static int conn_width(const layer *l) { return l->inputs; } /* weights (outputs, inputs) */
static float conn_scale(const layer *l) { return sqrtf(2.0f / l->inputs); }

static int bn_units(const layer *l) { return l->c; }

#define A(f, row, init) {#f, offsetof(layer, f), row, init}
#define BIASES A(biases, 0, LWF_INIT_ZERO)
#define SCALES A(scales, 0, LWF_INIT_KEEP)
#define MEAN A(rolling_mean, 0, LWF_INIT_KEEP)
#define VARIANCE A(rolling_variance, 0, LWF_INIT_KEEP)
#define U_BIASES A(bias_updates, 0, LWF_INIT_KEEP)
#define U_SCALES A(scale_updates, 0, LWF_INIT_KEEP)
#define U_WEIGHTS A(weight_updates, 1, LWF_INIT_KEEP)
#define CONV conv_units, conv_width, conv_scale
#define CONN conn_units, conn_width, conn_scale
#define NOTHING NULL, NULL, NULL, 0, {{0}}, 0, {{0}}

/* Darknet's order (DARKNET-NOTES.md): convolutional = biases, [scales, rolling mean,
 * rolling variance], weights; connected = biases, weights, [the batch-norm triple];
 * batchnorm = scales, mean, variance.  The update buffers are those Darknet's update
 * functions scale by the momentum, in the order the .state format has always had. */
static const lwf_layer_kind kinds[] = {
    {"convolutional", CONVOLUTIONAL, 0, CONV,
     2, {BIASES, A(weights, 1, LWF_INIT_NORMAL)},
     2, {U_BIASES, U_WEIGHTS}, 1, conv_overwrites},
    {"convolutional+bn", CONVOLUTIONAL, 1, CONV,
     5, {BIASES, SCALES, MEAN, VARIANCE, A(weights, 1, LWF_INIT_NORMAL)},
     3, {U_BIASES, U_SCALES, U_WEIGHTS}, 1, conv_overwrites},
    {"connected", CONNECTED, 0, CONN,
     2, {BIASES, A(weights, 1, LWF_INIT_UNIFORM)},
     2, {U_BIASES, U_WEIGHTS}, 1, NULL},
    {"connected+bn", CONNECTED, 1, CONN,
     5, {BIASES, A(weights, 1, LWF_INIT_UNIFORM), SCALES, MEAN, VARIANCE},
     3, {U_BIASES, U_SCALES, U_WEIGHTS}, 1, NULL},
    {"batchnorm", BATCHNORM, -1, bn_units, NULL, NULL,
     3, {SCALES, MEAN, VARIANCE},
     2, {U_BIASES, U_SCALES}, 0, NULL},
    /* no weights; dropout checks net.delta before writing it, the others write it */
    {"dropout", DROPOUT, -1, NOTHING, 1, NULL},
    {"maxpool", MAXPOOL, -1, NOTHING, 0, NULL},
    {"avgpool", AVGPOOL, -1, NOTHING, 0, NULL},
    {"softmax", SOFTMAX, -1, NOTHING, 0, NULL},
    {"activation", ACTIVE, -1, NOTHING, 0, NULL},
    {"normalization", NORMALIZATION, -1, NOTHING, 0, NULL},
    {"crop", CROP, -1, NOTHING, 0, NULL},
    {"reorg", REORG, -1, NOTHING, 0, NULL},
    {"route ([task])", ROUTE, -1, NOTHING, 0, NULL},
    {"shortcut", SHORTCUT, -1, NOTHING, 0, NULL},
    {"upsample", UPSAMPLE, -1, NOTHING, 0, NULL},
    {"yolo ([lwf_yolo])", YOLO, -1, NOTHING, 0, NULL},
    {"blank ([lwf_distill], [lwf_softmax])", BLANK, -1, NOTHING, 0, NULL},
    /* last: any other type */
    {"(other)", BLANK, -1, NOTHING, 0, NULL},
};
#define NKINDS ((int)(sizeof kinds / sizeof kinds[0]))

const lwf_layer_kind *lwf_layer_kinds(int *n)
{
    *n = NKINDS;
    return kinds;
}

const lwf_layer_kind *lwf_layer_kind_of(const layer *l)
{
    for (int i = 0; i < NKINDS - 1; ++i)
        if (kinds[i].type == l->type && (kinds[i].bn < 0 || kinds[i].bn == (l->batch_normalize != 0)))
            return &kinds[i];
    return &kinds[NKINDS - 1];
}

float *lwf_array_data(const layer *l, const lwf_array *a)
{
    float *p;
    memcpy(&p, (const char *)l + a->field, sizeof p);
    return p;
}

size_t lwf_array_unit_floats(const layer *l, const lwf_layer_kind *k, const lwf_array *a)
{
    return a->row ? (size_t)k->width(l) : 1;
}

size_t lwf_array_floats(const layer *l, const lwf_layer_kind *k, const lwf_array *a)
{
    return (size_t)k->units(l) * lwf_array_unit_floats(l, k, a);
}

size_t lwf_layer_stored_floats(const layer *l)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    size_t n = 0;
    for (int i = 0; i < k->nstored; ++i) n += lwf_array_floats(l, k, &k->stored[i]);
    return n;
}

size_t lwf_layer_update_floats(const layer *l)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    size_t n = 0;
    for (int i = 0; i < k->nupdates; ++i) n += lwf_array_floats(l, k, &k->updates[i]);
    return n;
}

void lwf_layer_init(layer *l, lwf_rng *r)
{
    lwf_layer_init_from(l, r, 0);
}

void lwf_layer_init_from(layer *l, lwf_rng *r, int from)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    for (int i = 0; i < k->nstored; ++i) {
        const lwf_array *a = &k->stored[i];
        float *p = lwf_array_data(l, a);
        size_t n = lwf_array_floats(l, k, a), keep = (size_t)from * lwf_array_unit_floats(l, k, a);
        float s = a->init == LWF_INIT_NORMAL || a->init == LWF_INIT_UNIFORM ? k->init_scale(l) : 0;
        for (size_t j = 0; j < n && a->init != LWF_INIT_KEEP; ++j) {
            /* every value is drawn, so the new rows are those a whole new layer would get */
            float v = a->init == LWF_INIT_ZERO     ? 0
                      : a->init == LWF_INIT_NORMAL ? s * lwf_rng_normal(r)
                                                   : s * lwf_rng_uniform(r, -1, 1);
            if (j >= keep) p[j] = v;
        }
    }
}

size_t lwf_layer_rows_floats(const layer *l, int units)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    size_t n = 0;
    for (int i = 0; i < k->nstored; ++i) n += (size_t)units * lwf_array_unit_floats(l, k, &k->stored[i]);
    return n;
}

size_t lwf_layer_rows_copy(layer *l, int units, float *buf, int out)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    size_t at = 0;
    for (int i = 0; i < k->nstored; ++i) {
        const lwf_array *a = &k->stored[i];
        size_t n = (size_t)units * lwf_array_unit_floats(l, k, a);
        float *p = lwf_array_data(l, a);
        if (out) memcpy(buf + at, p, n * sizeof(float));
        else memcpy(p, buf + at, n * sizeof(float));
        at += n;
    }
    return at;
}

void lwf_layer_rows_zero_updates(layer *l, int units)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    for (int i = 0; i < k->nupdates; ++i) {
        const lwf_array *a = &k->updates[i];
        float *p = lwf_array_data(l, a);
        if (p) memset(p, 0, (size_t)units * lwf_array_unit_floats(l, k, a) * sizeof(float));
    }
}

int lwf_layer_skips_null_delta(const layer *l)
{
    return lwf_layer_kind_of(l)->skips_null_delta;
}

int lwf_layer_overwrites_input_delta(const layer *l)
{
    const lwf_layer_kind *k = lwf_layer_kind_of(l);
    return k->overwrites_input_delta && k->overwrites_input_delta(l);
}
