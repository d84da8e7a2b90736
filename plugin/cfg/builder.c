/* The cfg front end: builds one Darknet network (trunk, then one head per [task]) from
 * an LwF cfg.  Stock sections are validated here, then built by libdarknet's own
 * parse_<section> functions; [task] and [lwf_distill] are ours.  Weights: weights.c. */
#define _POSIX_C_SOURCE 200809L
#include "cfg/cfg.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* T_UNSUPPORTED: a key stock Darknet reads that an LwF cfg refuses (see check_value) */
typedef enum { T_INT, T_FLOAT, T_POS, T_STR, T_ACT, T_INTLIST, T_FLOATLIST, T_POLICY, T_UNSUPPORTED } ktype;

typedef struct {
    const char *key;
    ktype type;
    double lo, hi;
} keyspec;

typedef enum {
    S_NET, S_CONV, S_CONN, S_MAXPOOL, S_AVGPOOL, S_DROPOUT, S_BATCHNORM, S_SOFTMAX, S_ACTIVATION,
    S_CROP, S_NORM, S_REORG, S_ROUTE, S_SHORTCUT, S_UPSAMPLE, S_TASK, S_DISTILL
} skind;

#define BIG 1e9
static const keyspec net_keys[] = {
    {"batch", T_INT, 1, 1 << 20}, {"subdivisions", T_INT, 1, 1 << 20}, {"learning_rate", T_FLOAT, 0, BIG},
    {"momentum", T_FLOAT, 0, 0.9999999}, {"decay", T_FLOAT, 0, BIG}, {"time_steps", T_INT, 1, 1},
    {"notruth", T_INT, 0, 0}, {"random", T_INT, 0, 0}, {"adam", T_INT, 0, 1}, {"B1", T_FLOAT, 0, 1},
    {"B2", T_FLOAT, 0, 1}, {"eps", T_FLOAT, 0, 1}, {"height", T_INT, 1, 1 << 16}, {"width", T_INT, 1, 1 << 16},
    {"channels", T_INT, 1, 1 << 16}, {"max_crop", T_INT, 1, 1 << 16},
    {"min_crop", T_INT, 1, 1 << 16}, {"max_ratio", T_FLOAT, 0.01, 100}, {"min_ratio", T_FLOAT, 0.01, 100},
    {"center", T_INT, 0, 1}, {"angle", T_FLOAT, 0, 360}, {"aspect", T_FLOAT, 0.01, 100},
    {"saturation", T_FLOAT, 0.01, 100}, {"exposure", T_FLOAT, 0.01, 100}, {"hue", T_FLOAT, 0, 1},
    {"policy", T_POLICY, 0, 0}, {"burn_in", T_INT, 0, INT_MAX}, {"power", T_FLOAT, -BIG, BIG},
    {"step", T_INT, 1, INT_MAX}, {"scale", T_FLOAT, -BIG, BIG}, {"steps", T_INTLIST, 0, INT_MAX},
    {"scales", T_FLOATLIST, -BIG, BIG}, {"gamma", T_FLOAT, -BIG, BIG}, {"max_batches", T_INT, 0, INT_MAX},
    /* ours */
    {"warmup_batches", T_INT, 0, INT_MAX}, {"warmup_learning_rate", T_FLOAT, 0, BIG}, {"flip", T_INT, 0, 1},
    /* no effect here: the input size is height x width x channels (all three required),
     * and only libdarknet's GPU updates clip weights */
    {"inputs", T_UNSUPPORTED, 0, 0}, {"clip", T_UNSUPPORTED, 0, 0},
    {0, 0, 0, 0}};
/* keys parse_network_cfg reads for every layer section */
static const keyspec layer_keys[] = {
    {"stopbackward", T_INT, 0, 1}, {"learning_rate", T_FLOAT, 0, BIG},
    /* no effect in the CPU build: no forward, backward or update reads them */
    {"onlyforward", T_UNSUPPORTED, 0, 0}, {"smooth", T_UNSUPPORTED, 0, 0},
    /* our weights, backups and teacher files hold every layer, or lwf train could not read
     * back what it wrote; truth= feeds a detector's truth to a layer */
    {"numload", T_UNSUPPORTED, 0, 0}, {"dontloadscales", T_UNSUPPORTED, 0, 0}, {"dontsave", T_UNSUPPORTED, 0, 0},
    {"dontload", T_UNSUPPORTED, 0, 0}, {"truth", T_UNSUPPORTED, 0, 0}, {0, 0, 0, 0}};
static const keyspec conv_keys[] = {
    {"filters", T_INT, 1, 1 << 16}, {"size", T_INT, 1, 64}, {"stride", T_INT, 1, 64}, {"pad", T_INT, 0, 1},
    {"padding", T_INT, 0, 64}, {"groups", T_INT, 1, 1 << 16}, {"activation", T_ACT, 0, 0},
    {"batch_normalize", T_INT, 0, 1}, {"binary", T_INT, 0, 1}, {"xnor", T_INT, 0, 1}, {"flipped", T_INT, 0, 1},
    {"dot", T_FLOAT, -BIG, BIG}, {0, 0, 0, 0}};
static const keyspec conn_keys[] = {
    {"output", T_INT, 1, 1 << 24}, {"activation", T_ACT, 0, 0}, {"batch_normalize", T_INT, 0, 1}, {0, 0, 0, 0}};
static const keyspec maxpool_keys[] = {
    {"stride", T_INT, 1, 1024}, {"size", T_INT, 1, 1024}, {"padding", T_INT, 0, 1024}, {0, 0, 0, 0}};
static const keyspec none_keys[] = {{0, 0, 0, 0}};
static const keyspec dropout_keys[] = {{"probability", T_FLOAT, 0, 0.999999}, {0, 0, 0, 0}};
static const keyspec softmax_keys[] = {
    {"groups", T_INT, 1, 1 << 24}, {"temperature", T_FLOAT, 1e-6, BIG}, {"spatial", T_FLOAT, 0, 0},
    {"noloss", T_INT, 0, 0}, {"tree", T_UNSUPPORTED, 0, 0} /* a hierarchical softmax */, {0, 0, 0, 0}};
static const keyspec act_keys[] = {{"activation", T_ACT, 0, 0}, {0, 0, 0, 0}};
static const keyspec crop_keys[] = {
    {"crop_height", T_INT, 1, 1 << 16}, {"crop_width", T_INT, 1, 1 << 16}, {"flip", T_INT, 0, 1},
    {"angle", T_FLOAT, 0, 360}, {"saturation", T_FLOAT, 0.01, 100}, {"exposure", T_FLOAT, 0.01, 100},
    {"noadjust", T_INT, 0, 1}, {"shift", T_FLOAT, -BIG, BIG}, {0, 0, 0, 0}};
static const keyspec norm_keys[] = {
    {"alpha", T_FLOAT, -BIG, BIG}, {"beta", T_FLOAT, -BIG, BIG}, {"kappa", T_FLOAT, -BIG, BIG},
    {"size", T_INT, 1, 1025}, {0, 0, 0, 0}};
static const keyspec reorg_keys[] = {{"stride", T_INT, 1, 64}, {"reverse", T_INT, 0, 1}, {0, 0, 0, 0}};
static const keyspec route_keys[] = {{"layers", T_INTLIST, -INT_MAX, INT_MAX}, {0, 0, 0, 0}};
static const keyspec shortcut_keys[] = {
    {"from", T_INT, -INT_MAX, INT_MAX}, {"activation", T_ACT, 0, 0}, {"alpha", T_FLOAT, -BIG, BIG},
    {"beta", T_FLOAT, -BIG, BIG}, {0, 0, 0, 0}};
static const keyspec upsample_keys[] = {{"stride", T_INT, -64, 64}, {"scale", T_FLOAT, -BIG, BIG}, {0, 0, 0, 0}};
static const keyspec task_keys[] = {{"name", T_STR, 0, 0}, {"data", T_STR, 0, 0}, {0, 0, 0, 0}};
static const keyspec distill_keys[] = {
    {"temperature", T_POS, 0, BIG}, {"lambda", T_FLOAT, 0, BIG}, {"t2_scaling", T_INT, 0, 1}, {0, 0, 0, 0}};

typedef struct {
    const char *name;
    skind kind;
    const keyspec *keys;
    int plugin;          /* our section: no generic layer keys */
} secspec;

static const secspec sections[] = {
    {"net", S_NET, net_keys, 0}, {"network", S_NET, net_keys, 0},
    {"convolutional", S_CONV, conv_keys, 0}, {"conv", S_CONV, conv_keys, 0},
    {"connected", S_CONN, conn_keys, 0}, {"conn", S_CONN, conn_keys, 0},
    {"maxpool", S_MAXPOOL, maxpool_keys, 0}, {"max", S_MAXPOOL, maxpool_keys, 0},
    {"avgpool", S_AVGPOOL, none_keys, 0}, {"avg", S_AVGPOOL, none_keys, 0},
    {"dropout", S_DROPOUT, dropout_keys, 0}, {"batchnorm", S_BATCHNORM, none_keys, 0},
    {"softmax", S_SOFTMAX, softmax_keys, 0}, {"soft", S_SOFTMAX, softmax_keys, 0},
    {"activation", S_ACTIVATION, act_keys, 0}, {"crop", S_CROP, crop_keys, 0},
    {"normalization", S_NORM, norm_keys, 0}, {"lrn", S_NORM, norm_keys, 0},
    {"reorg", S_REORG, reorg_keys, 0}, {"route", S_ROUTE, route_keys, 0},
    {"shortcut", S_SHORTCUT, shortcut_keys, 0}, {"upsample", S_UPSAMPLE, upsample_keys, 0},
    {"task", S_TASK, task_keys, 1}, {"lwf_distill", S_DISTILL, distill_keys, 1},
    {0, 0, 0, 0}};

/* Darknet sections that exist but make no sense in an LwF classifier cfg. */
static const char *unsupported[] = {"local", "deconvolutional", "deconv", "rnn", "gru", "lstm", "crnn", "cost",
                                    "detection", "region", "yolo", "iseg", "l2norm", "logistic", 0};
static const char *activations[] = {"logistic", "loggy", "relu", "elu", "selu", "relie", "plse", "hardtan",
                                    "lhtan", "linear", "ramp", "leaky", "tanh", "stair", 0};
static const char *policies[] = {"random", "poly", "constant", "step", "exp", "sigmoid", "steps", 0};

static int in_set(const char *s, const char **set)
{
    for (int i = 0; set[i]; ++i)
        if (strcmp(s, set[i]) == 0) return 1;
    return 0;
}

static const secspec *find_section(const char *type)
{
    for (int i = 0; sections[i].name; ++i)
        if (strcmp(sections[i].name, type) == 0) return &sections[i];
    return NULL;
}

static const keyspec *find_key(const keyspec *ks, const char *key)
{
    for (int i = 0; ks[i].key; ++i)
        if (strcmp(ks[i].key, key) == 0) return &ks[i];
    return NULL;
}

/* Number of comma-separated items, each checked; -1 on a malformed one. */
static int check_list(const char *v, int is_float, double lo, double hi)
{
    /* an empty value (e.g. `steps=`) is malformed too; v[strlen(v) - 1] below read before
     * it (tests/fuzz/regressions/cfg/empty-list-value.cfg) */
    if (!*v) return -1;
    char *copy = lwf_strdup(v);
    if (!copy) return -1;
    int n = 0, bad = 0;
    char *save = NULL;
    if (v[0] == ',' || v[strlen(v) - 1] == ',' || strstr(v, ",,")) bad = 1;
    for (char *tok = strtok_r(copy, ",", &save); tok && !bad; tok = strtok_r(NULL, ",", &save)) {
        int iv;
        float fv;
        if (is_float ? lwf_parse_float(tok, lo, hi, &fv) : lwf_parse_int(tok, (long)lo, (long)hi, &iv)) bad = 1;
        ++n;
    }
    free(copy);
    return bad || n == 0 ? -1 : n;
}

static int check_value(const char *file, const lwf_section *s, const lwf_opt *o, const keyspec *k, lwf_err *err)
{
    int iv;
    float fv;
    switch (k->type) {
    case T_INT:
        if (lwf_parse_int(o->val, (long)k->lo, (long)k->hi, &iv))
            return lwf_fail(err, "%s:%d: [%s] %s must be an integer in [%ld, %ld], got '%s'", file, o->line, s->type,
                            o->key, (long)k->lo, (long)k->hi, o->val);
        break;
    case T_FLOAT:
        if (lwf_parse_float(o->val, k->lo, k->hi, &fv))
            return lwf_fail(err, "%s:%d: [%s] %s must be a number in [%g, %g], got '%s'", file, o->line, s->type,
                            o->key, k->lo, k->hi, o->val);
        break;
    case T_POS:
        if (lwf_parse_float(o->val, 0, k->hi, &fv) || fv <= 0)
            return lwf_fail(err, "%s:%d: [%s] %s must be > 0, got '%s'", file, o->line, s->type, o->key, o->val);
        break;
    case T_STR:
        if (!o->val[0]) return lwf_fail(err, "%s:%d: [%s] %s is empty", file, o->line, s->type, o->key);
        break;
    case T_ACT:
        if (!in_set(o->val, activations))
            return lwf_fail(err, "%s:%d: [%s] unknown activation '%s'", file, o->line, s->type, o->val);
        break;
    case T_POLICY:
        if (!in_set(o->val, policies))
            return lwf_fail(err, "%s:%d: [%s] unknown learning-rate policy '%s'", file, o->line, s->type, o->val);
        break;
    case T_INTLIST:
    case T_FLOATLIST:
        if (check_list(o->val, k->type == T_FLOATLIST, k->lo, k->hi) < 0)
            return lwf_fail(err, "%s:%d: [%s] %s must be a comma-separated list of %s, got '%s'", file, o->line,
                            s->type, o->key, k->type == T_FLOATLIST ? "numbers" : "integers", o->val);
        break;
    case T_UNSUPPORTED:
        return lwf_fail(err, "%s:%d: [%s] %s is not supported in an LwF cfg", file, o->line, s->type, o->key);
    }
    return 0;
}

/* Every key known to the section (or generic for a stock layer) and well formed. */
static int check_keys(const char *file, const lwf_section *s, const secspec *sp, lwf_err *err)
{
    for (int i = 0; i < s->nopts; ++i) {
        const lwf_opt *o = &s->opts[i];
        const keyspec *k = find_key(sp->keys, o->key);
        if (!k && sp->kind != S_NET && !sp->plugin) k = find_key(layer_keys, o->key);
        if (!k) return lwf_fail(err, "%s:%d: [%s] unknown key '%s'", file, o->line, s->type, o->key);
        if (check_value(file, s, o, k, err)) return -1;
    }
    return 0;
}

static int opt_int(const lwf_section *s, const char *key, int def)
{
    const lwf_opt *o = lwf_cfg_opt(s, key);
    int v = def;
    if (o) lwf_parse_int(o->val, INT_MIN, INT_MAX, &v);
    return v;
}

static float opt_float(const lwf_section *s, const char *key, float def)
{
    const lwf_opt *o = lwf_cfg_opt(s, key);
    float v = def;
    if (o) lwf_parse_float(o->val, -1e30, 1e30, &v);
    return v;
}

/* A Darknet options list (kvp*) over the section's options; the strings stay owned by
 * the section.  Free with free_opts. */
static list *make_opts(const lwf_section *s, dn_kvp **kvps)
{
    list *l = make_list();
    *kvps = calloc((size_t)s->nopts + 1, sizeof **kvps);
    if (!l || !*kvps) {
        free(l);
        free(*kvps);
        return NULL;
    }
    for (int i = 0; i < s->nopts; ++i) {
        (*kvps)[i].key = s->opts[i].key;
        (*kvps)[i].val = s->opts[i].val;
        list_insert(l, &(*kvps)[i]);
    }
    return l;
}

static void free_opts(list *l, dn_kvp *kvps)
{
    free_list(l); /* libdarknet's: the nodes and the list, not what they point to */
    free(kvps);
}

/* A key the stock parser did not read has no effect: say so instead of ignoring it. */
static int check_used(const char *file, const lwf_section *s, const dn_kvp *kvps, lwf_err *err)
{
    for (int i = 0; i < s->nopts; ++i)
        if (!kvps[i].used)
            return lwf_fail(err, "%s:%d: [%s] %s has no effect here", file, s->opts[i].line, s->type, s->opts[i].key);
    return 0;
}

typedef struct {
    const char *file;
    lwf_err *err;
    size_t floats;       /* running estimate of the floats allocated */
    size_t budget;       /* refuse networks larger than this */
    int other_lo, other_hi; /* [other_lo, other_hi): the other heads' layers, which a head's
                             * [route] and [shortcut] may not read (empty in the trunk) */
} build_ctx;

/* Adds `floats` the network will allocate for section s to the running estimate and
 * checks it against the budget. */
static int account(build_ctx *bc, const lwf_section *s, long long floats)
{
    bc->floats += (size_t)floats;
    if (bc->floats > bc->budget)
        return lwf_fail(bc->err, "%s:%d: [%s] the network would need more than %zu MiB: more than this machine has",
                        bc->file, s->line, s->type, bc->budget * sizeof(float) >> 20);
    return 0;
}

/* Checks that a layer of this output size (and weight count) can be allocated. */
static int check_size(build_ctx *bc, const lwf_section *s, int batch, long long oh, long long ow, long long oc,
                      long long weights)
{
    if (oh < 1 || ow < 1 || oc < 1)
        return lwf_fail(bc->err, "%s:%d: [%s] output would be %lldx%lldx%lld: the input is too small for it",
                        bc->file, s->line, s->type, ow, oh, oc);
    long long out = oh * ow * oc;
    if (oh > INT_MAX || ow > INT_MAX || oc > INT_MAX || out > INT_MAX / batch || weights > INT_MAX / 2)
        return lwf_fail(bc->err, "%s:%d: [%s] layer too large (%lldx%lldx%lld outputs, %lld weights, batch %d)",
                        bc->file, s->line, s->type, ow, oh, oc, weights, batch);
    return account(bc, s, out * batch * 3 + weights * 3);
}

/* Resolves a Darknet layer reference (negative = relative to `count`). */
static int resolve_ref(int v, int count)
{
    return v < 0 ? count + v : v;
}

/* libdarknet's backward_maxpool_layer, except that it skips an output whose window held no
 * comparable value.  Darknet's forward keeps index -1 when every input of a window is NaN
 * (NaN > max is false), and its backward then adds into net.delta[-1], writing before the
 * buffer: a diverging run (NaN activations) corrupted the heap before its NaN loss or weights
 * could be noticed.  Same sums otherwise. */
static void backward_maxpool_checked(layer l, network net)
{
    int n = l.out_h * l.out_w * l.c * l.batch; /* (batch, c, out_h, out_w) */
    if (!net.delta) return;                    /* lwf_backward: the layer before does not learn */
    for (int i = 0; i < n; ++i)
        if (l.indexes[i] >= 0) net.delta[l.indexes[i]] += l.delta[i];
}

static int build_stock(build_ctx *bc, const lwf_section *s, skind kind, dn_size_params p, network *net, layer *out)
{
    const char *file = bc->file;
    lwf_err *err = bc->err;
    int h = p.h, w = p.w, c = p.c;
    layer l = {0};
    /* validate what libdarknet's parser would assert, divide by or overflow on */
    switch (kind) {
    case S_CONV: {
        int filters = opt_int(s, "filters", 1), size = opt_int(s, "size", 1), stride = opt_int(s, "stride", 1);
        int groups = opt_int(s, "groups", 1), pad = opt_int(s, "pad", 0), padding = opt_int(s, "padding", 0);
        if (pad) padding = size / 2;
        /* libdarknet's make_convolutional_layer gives a binary layer scales but their
         * updates only with batch_normalize, and update_convolutional_layer then adds
         * through a NULL scale_updates: the first training step crashed */
        const lwf_opt *bin = lwf_cfg_opt(s, "binary");
        if (opt_int(s, "binary", 0) && !opt_int(s, "batch_normalize", 0))
            return lwf_fail(err, "%s:%d: [%s] binary=1 needs batch_normalize=1", file, bin->line, s->type);
        if (c % groups || filters % groups)
            return lwf_fail(err, "%s:%d: [%s] groups=%d must divide the input channels (%d) and filters (%d)", file,
                            s->line, s->type, groups, c, filters);
        long long oh = ((long long)h + 2 * padding - size) / stride + 1, ow = ((long long)w + 2 * padding - size) / stride + 1;
        if (h + 2 * padding < size || w + 2 * padding < size) oh = ow = 0;
        if (check_size(bc, s, p.batch, oh, ow, filters, (long long)c / groups * filters * size * size)) return -1;
        if (oh * ow * (long long)size * size * c / groups > INT_MAX / 2)
            return lwf_fail(err, "%s:%d: [%s] workspace too large", file, s->line, s->type);
        break;
    }
    case S_CONN:
        if (check_size(bc, s, p.batch, 1, 1, opt_int(s, "output", 1), (long long)p.inputs * opt_int(s, "output", 1)))
            return -1;
        break;
    case S_MAXPOOL: {
        int stride = opt_int(s, "stride", 1), size = opt_int(s, "size", stride);
        int padding = opt_int(s, "padding", size - 1);
        long long oh = ((long long)h + padding - size) / stride + 1, ow = ((long long)w + padding - size) / stride + 1;
        if (h + padding < size || w + padding < size) oh = ow = 0;
        if (check_size(bc, s, p.batch, oh, ow, c, 0)) return -1;
        break;
    }
    case S_CROP: {
        int ch = opt_int(s, "crop_height", 1), cw = opt_int(s, "crop_width", 1);
        if (ch > h || cw > w)
            return lwf_fail(err, "%s:%d: [crop] %dx%d crop is larger than its %dx%d input", file, s->line, cw, ch, w, h);
        break;
    }
    case S_REORG: {
        int stride = opt_int(s, "stride", 1), reverse = opt_int(s, "reverse", 0);
        /* both directions index channels in groups of stride^2: with fewer channels
         * libdarknet's reorg_cpu divides by zero, with a remainder it reads past its input
         * (tests/fuzz/regressions/cfg/reorg-few-channels.cfg) */
        if (c % (stride * stride) || (!reverse && (h % stride || w % stride)))
            return lwf_fail(err, "%s:%d: [reorg] stride %d does not divide the %dx%dx%d input", file, s->line,
                            stride, w, h, c);
        if (check_size(bc, s, p.batch, 1, 1, (long long)h * w * c, 0)) return -1;
        break;
    }
    case S_UPSAMPLE: {
        int stride = opt_int(s, "stride", 2);
        if (stride == 0) return lwf_fail(err, "%s:%d: [upsample] stride must not be 0", file, s->line);
        if (stride < 0 && (h % -stride || w % -stride))
            return lwf_fail(err, "%s:%d: [upsample] stride %d does not divide the %dx%d input", file, s->line, stride,
                            w, h);
        long long f = stride > 0 ? stride : 1;
        if (check_size(bc, s, p.batch, h * f, w * f, c, 0)) return -1;
        break;
    }
    case S_NORM: {
        /* libdarknet's forward sums the squares of the first size/2 channels without
         * checking them against c: a wider window reads past its buffer
         * (tests/fuzz/regressions/cfg/lrn-window-too-wide.cfg) */
        int size = opt_int(s, "size", 5);
        if (size / 2 > c)
            return lwf_fail(err, "%s:%d: [%s] size=%d is more than twice its %d input channels", file, s->line,
                            s->type, size, c);
        break;
    }
    case S_DROPOUT:
        /* dropout works in place on the layer before it: as the first layer it would read
         * net->layers[-1] (tests/fuzz/regressions/cfg/dropout-first.cfg) */
        if (p.index == 0)
            return lwf_fail(err, "%s:%d: [%s] cannot be the first layer: it works in place on the layer before it",
                            file, s->line, s->type);
        break;
    case S_SOFTMAX: {
        int groups = opt_int(s, "groups", 1);
        if (p.inputs % groups)
            return lwf_fail(err, "%s:%d: [softmax] groups=%d does not divide its %d inputs", file, s->line, groups,
                            p.inputs);
        break;
    }
    case S_ROUTE: {
        const lwf_opt *o = lwf_cfg_opt(s, "layers");
        if (!o) return lwf_fail(err, "%s:%d: [route] needs layers=", file, s->line);
        char *copy = lwf_strdup(o->val);
        char *save = NULL;
        long long total = 0;
        int rw = -1, rh = -1;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int v = 0;
            lwf_parse_int(tok, -INT_MAX, INT_MAX, &v);
            int idx = resolve_ref(v, p.index);
            if (idx < 0 || idx >= p.index) {
                free(copy);
                return lwf_fail(err, "%s:%d: [route] layer %d is not an earlier layer of the trunk or this head",
                                file, o->line, v);
            }
            if (idx >= bc->other_lo && idx < bc->other_hi) {
                free(copy);
                return lwf_fail(err, "%s:%d: [route] reads layer %d of another head", file, o->line, idx);
            }
            layer *src = &net->layers[idx];
            if (rw >= 0 && (src->out_w != rw || src->out_h != rh)) {
                free(copy);
                return lwf_fail(err, "%s:%d: [route] layers of different sizes (%dx%d and %dx%d)", file, o->line, rw,
                                rh, src->out_w, src->out_h);
            }
            rw = src->out_w;
            rh = src->out_h;
            total += src->outputs;
        }
        free(copy);
        if (check_size(bc, s, p.batch, 1, 1, total, 0)) return -1;
        break;
    }
    case S_SHORTCUT: {
        const lwf_opt *o = lwf_cfg_opt(s, "from");
        if (!o) return lwf_fail(err, "%s:%d: [shortcut] needs from=", file, s->line);
        int v = 0;
        lwf_parse_int(o->val, -INT_MAX, INT_MAX, &v);
        int idx = resolve_ref(v, p.index);
        if (idx < 0 || idx >= p.index)
            return lwf_fail(err, "%s:%d: [shortcut] from=%d is not an earlier layer of the trunk or this head", file,
                            o->line, v);
        if (idx >= bc->other_lo && idx < bc->other_hi)
            return lwf_fail(err, "%s:%d: [shortcut] reads layer %d of another head", file, o->line, idx);
        layer *src = &net->layers[idx];
        int fw = src->out_w, fh = src->out_h;
        if (fw < 1 || fh < 1 || (fw / w != fh / h) || (w / fw != h / fh))
            return lwf_fail(err, "%s:%d: [shortcut] from=%d has shape %dx%d, not compatible with %dx%d", file,
                            o->line, v, fw, fh, w, h);
        break;
    }
    default:
        break;
    }
    /* the layers not counted above allocate a few (batch, inputs) arrays each; with them
     * uncounted, sections after a large one could add any multiple of the budget */
    long long in = (long long)h * w * c * p.batch;
    long long arrays = kind == S_BATCHNORM || kind == S_NORM ? 4 /* output, delta, 2 more */
                       : kind == S_DROPOUT ? 1 /* rand */
                       : kind == S_ACTIVATION || kind == S_SHORTCUT || kind == S_SOFTMAX || kind == S_CROP ? 3
                       : 0;
    if (kind == S_AVGPOOL) in = (long long)c * p.batch * 3;
    if (account(bc, s, kind == S_AVGPOOL ? in : arrays * in)) return -1;

    dn_kvp *kvps = NULL;
    list *opts = make_opts(s, &kvps);
    if (!opts) return lwf_fail(err, "%s:%d: out of memory", file, s->line);
    int oom = 0;
    switch (kind) {
    case S_CONV: l = parse_convolutional(opts, p); break;
    case S_CONN: l = parse_connected(opts, p); break;
    case S_MAXPOOL:
        l = parse_maxpool(opts, p);
        l.backward = backward_maxpool_checked;
        break;
    case S_AVGPOOL: l = parse_avgpool(opts, p); break;
    case S_DROPOUT:
        l = parse_dropout(opts, p);
        /* dropout works in place on its input, as parse_network_cfg arranges */
        l.output = net->layers[p.index - 1].output;
        l.delta = net->layers[p.index - 1].delta;
        break;
    case S_BATCHNORM:
        l = parse_batchnorm(opts, p);
        /* libdarknet's CPU build leaves out buffers its forward and backward use: the first
         * forward wrote through NULL (tests/fuzz/regressions/cfg/batchnorm-layer.cfg);
         * free_layer frees them */
        l.x = calloc((size_t)l.outputs * l.batch, sizeof(float));      /* (batch, outputs) */
        l.x_norm = calloc((size_t)l.outputs * l.batch, sizeof(float)); /* (batch, outputs) */
        l.mean_delta = calloc((size_t)l.c, sizeof(float));              /* (c) */
        l.variance_delta = calloc((size_t)l.c, sizeof(float));          /* (c) */
        oom = !l.x || !l.x_norm || !l.mean_delta || !l.variance_delta;
        break;
    case S_SOFTMAX:
        l = parse_softmax(opts, p);
        l.out_w = l.out_h = 1; /* stock leaves the shape unset: a flat vector */
        l.out_c = l.outputs;
        break;
    case S_ACTIVATION: l = parse_activation(opts, p); break;
    case S_CROP:
        l = parse_crop(opts, p);
        /* libdarknet's crop layer has no delta (its backward does nothing), but the layer
         * after it adds into one; without it every [crop] was refused as "out of memory"
         * (tests/fuzz/regressions/cfg/crop-then-maxpool.cfg); free_layer frees it */
        if (!l.delta) l.delta = calloc((size_t)l.outputs * l.batch, sizeof(float)); /* (batch, outputs) */
        break;
    case S_NORM: l = parse_normalization(opts, p); break;
    case S_REORG: l = parse_reorg(opts, p); break;
    case S_ROUTE: l = parse_route(opts, p, net); break;
    case S_SHORTCUT: l = parse_shortcut(opts, p, net); break;
    case S_UPSAMPLE: l = parse_upsample(opts, p, net); break;
    default: break;
    }
    /* the per-layer keys parse_network_cfg reads (those with an effect: see layer_keys) */
    l.stopbackward = option_find_int_quiet(opts, "stopbackward", 0);
    l.learning_rate_scale = option_find_float_quiet(opts, "learning_rate", 1);
    int rc = check_used(file, s, kvps, err);
    free_opts(opts, kvps);
    *out = l;
    if (rc) return -1;
    if (l.out_h < 1 || l.out_w < 1 || l.out_c < 1 || l.outputs < 1 || !l.forward)
        return lwf_fail(err, "%s:%d: [%s] gives an empty output (%dx%dx%d)", file, s->line, s->type, l.out_w,
                        l.out_h, l.out_c);
    /* dropout shares its input's buffers; softmax has no delta in libdarknet (crop gets one above) */
    if (oom || (l.type != DROPOUT && (!l.output || (kind != S_SOFTMAX && !l.delta))))
        return lwf_fail(err, "%s:%d: [%s] out of memory", file, s->line, s->type);
    return 0;
}

static int file_is_readable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

/* Redirects stderr to /dev/null while quiet (libdarknet prints its layer table there). */
static int mute_stderr(void)
{
    fflush(stderr);
    int saved = dup(2);
    int nul = open("/dev/null", O_WRONLY);
    if (saved >= 0 && nul >= 0) dup2(nul, 2);
    if (nul >= 0) close(nul);
    return saved;
}

static void unmute_stderr(int saved)
{
    if (saved < 0) return;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

static size_t memory_budget(void)
{
#ifdef LWF_BUILD_BUDGET_MIB /* a fixed budget (the fuzz build sets one under its RSS limit) */
    return ((size_t)LWF_BUILD_BUDGET_MIB << 20) / sizeof(float);
#else
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psize <= 0) return (size_t)1 << 32;
    return (size_t)pages / 4 * (size_t)psize / sizeof(float) * 3; /* 3/4 of RAM, in floats */
#endif
}

static int build(lwf_model *m, const lwf_cfgfile *cf, const lwf_build_opts *opts, lwf_err *err)
{
    const char *file = cf->path;
    build_ctx bc = {file, err, 0, memory_budget(), 0, 0};
    const lwf_section *ns = &cf->sections[0];
    const secspec *nsp = find_section(ns->type);
    if (!nsp || nsp->kind != S_NET)
        return lwf_fail(err, "%s:%d: the first section must be [net], got [%s]", file, ns->line, ns->type);
    /* check every section's name and keys before building anything */
    int ntasks = 0;
    for (int i = 0; i < cf->nsections; ++i) {
        const lwf_section *s = &cf->sections[i];
        const secspec *sp = find_section(s->type);
        if (!sp) {
            if (in_set(s->type, unsupported))
                return lwf_fail(err, "%s:%d: [%s] is not supported in an LwF cfg (classifier layers only)", file,
                                s->line, s->type);
            return lwf_fail(err, "%s:%d: unknown section [%s]", file, s->line, s->type);
        }
        if (sp->kind == S_NET && i > 0) return lwf_fail(err, "%s:%d: [%s] given twice", file, s->line, s->type);
        if (check_keys(file, s, sp, err)) return -1;
        if (sp->kind == S_TASK) ++ntasks;
    }
    if (cf->nsections < 2) return lwf_fail(err, "%s: no layers after [net]", file);
    if (!lwf_cfg_opt(ns, "height") || !lwf_cfg_opt(ns, "width") || !lwf_cfg_opt(ns, "channels"))
        return lwf_fail(err, "%s:%d: [net] needs height, width and channels", file, ns->line);
    const lwf_opt *pol = lwf_cfg_opt(ns, "policy");
    if (pol && strcmp(pol->val, "steps") == 0) {
        const lwf_opt *st = lwf_cfg_opt(ns, "steps"), *sc = lwf_cfg_opt(ns, "scales");
        if (!st || !sc) return lwf_fail(err, "%s:%d: policy=steps needs steps= and scales=", file, pol->line);
        if (check_list(st->val, 0, 0, INT_MAX) != check_list(sc->val, 1, -BIG, BIG))
            return lwf_fail(err, "%s:%d: steps= and scales= have different lengths", file, sc->line);
    }
    if (ntasks == 0) return lwf_fail(err, "%s: no [task] section: an LwF cfg needs at least the new task's head", file);

    int n = cf->nsections - 1;
    network *net = make_network(n);
    if (!net) return lwf_fail(err, "%s: out of memory", file);
    net->n = 0; /* counts the layers built so far, so a failure frees only those */
    m->net = net;
    m->line = calloc((size_t)n, sizeof *m->line);
    m->tasks = calloc((size_t)ntasks, sizeof *m->tasks);
    if (!m->line || !m->tasks) return lwf_fail(err, "%s: out of memory", file);

    dn_kvp *kvps = NULL;
    list *nopts = make_opts(ns, &kvps);
    if (!nopts) return lwf_fail(err, "%s: out of memory", file);
    parse_net_options(nopts, net);
    int b = option_find_int_quiet(nopts, "batch", 1), sub = option_find_int_quiet(nopts, "subdivisions", 1);
    m->warmup_batches = option_find_int_quiet(nopts, "warmup_batches", 0);
    m->warmup_learning_rate = option_find_float_quiet(nopts, "warmup_learning_rate", net->learning_rate);
    m->aug.flip = option_find_int_quiet(nopts, "flip", 1);
    int rc = check_used(file, ns, kvps, err);
    free_opts(nopts, kvps);
    if (rc) return -1;
    if (b % sub)
        return lwf_fail(err, "%s:%d: [net] subdivisions=%d does not divide batch=%d", file, ns->line, sub, b);
    if (opts && opts->batch > 0) {
        net->batch = opts->batch;
        net->subdivisions = 1;
    }
    if ((long long)net->h * net->w * net->c > INT_MAX / net->batch)
        return lwf_fail(err, "%s:%d: [net] input %dx%dx%d with batch %d is too large", file, ns->line, net->w, net->h,
                        net->c, net->batch);
    net->inputs = net->h * net->w * net->c;
    if (account(&bc, ns, 2LL * net->inputs * net->batch)) return -1; /* input, maybe its delta */
    m->aug.min = (int)(net->min_ratio * net->w);
    m->aug.max = (int)(net->max_ratio * net->w);
    m->aug.angle = net->angle;
    m->aug.aspect = net->aspect;
    m->aug.hue = net->hue;
    m->aug.saturation = net->saturation;
    m->aug.exposure = net->exposure;
    m->aug.center = net->center;
    if (m->aug.min < 1 || m->aug.max < m->aug.min)
        return lwf_fail(err, "%s:%d: [net] crop range %d..%d is empty (min_crop/max_crop)", file, ns->line, m->aug.min,
                        m->aug.max);

    dn_size_params p = {net->batch, net->inputs, net->h, net->w, net->c, 0, 1, net};
    size_t workspace = 0;
    int cur = -1;        /* current task, -1 while in the trunk */
    int closed = 0;      /* the current head has its loss layer */
    int truths = 0;
    int nnew = 0;
    for (int i = 1; i < cf->nsections; ++i) {
        const lwf_section *s = &cf->sections[i];
        const secspec *sp = find_section(s->type);
        int count = i - 1;
        p.index = count;
        m->line[count] = s->line;
        if (!opts || !opts->quiet) fprintf(stderr, "%5d ", count);
        layer l = {0};
        if (sp->kind == S_TASK) {
            if (cur >= 0 && !closed)
                return lwf_fail(err, "%s:%d: the head of task '%s' (line %d) has no loss layer ([lwf_distill] or "
                                     "[softmax]) before this [task]",
                                file, s->line, m->tasks[cur].name, m->tasks[cur].line);
            if (cur < 0) {
                if (count == 0) return lwf_fail(err, "%s:%d: [task] before any trunk layer", file, s->line);
                m->trunk = count;
            }
            cur = m->ntasks++;
            closed = 0;
            lwf_task *t = &m->tasks[cur];
            const lwf_opt *name = lwf_cfg_opt(s, "name"), *dataopt = lwf_cfg_opt(s, "data");
            if (!name) return lwf_fail(err, "%s:%d: [task] needs name=", file, s->line);
            for (int k = 0; k < cur; ++k)
                if (strcmp(m->tasks[k].name, name->val) == 0)
                    return lwf_fail(err, "%s:%d: task name '%s' is already used at line %d", file, name->line,
                                    name->val, m->tasks[k].line);
            t->name = lwf_strdup(name->val);
            t->data = dataopt ? lwf_strdup(dataopt->val) : NULL;
            t->line = s->line;
            t->first = count;
            if (dataopt && !file_is_readable(dataopt->val))
                return lwf_fail(err, "%s:%d: [task] data=%s: no such readable file", file, dataopt->line, dataopt->val);
            const layer *src = &net->layers[m->trunk - 1];
            if (account(&bc, s, 2LL * src->outputs * net->batch)) return -1; /* output, delta */
            l = lwf_make_task_layer(net->batch, m->trunk - 1, src);
            if (!l.output || !l.delta) return lwf_fail(err, "%s:%d: out of memory", file, s->line);
        } else if (cur >= 0 && closed) {
            return lwf_fail(err, "%s:%d: [%s] after the loss layer of task '%s': a head ends with its loss", file,
                            s->line, s->type, m->tasks[cur].name);
        } else if (sp->kind == S_DISTILL || sp->kind == S_SOFTMAX) {
            if (cur < 0)
                return lwf_fail(err, "%s:%d: loss layer [%s] before the first [task]: the trunk cannot end in a loss",
                                file, s->line, s->type);
            lwf_task *t = &m->tasks[cur];
            if (count == t->first)
                return lwf_fail(err, "%s:%d: the head of task '%s' has no layers before its loss", file, s->line,
                                t->name);
            t->loss = count;
            t->classes = p.inputs;
            t->offset = truths;
            truths += p.inputs;
            closed = 1;
            if (sp->kind == S_DISTILL) {
                t->temperature = opt_float(s, "temperature", 2); /* > 0: checked as T_POS */
                t->lambda = opt_float(s, "lambda", 1);
                t->t2_scaling = opt_int(s, "t2_scaling", 0);
                if (account(&bc, s, 5LL * p.inputs * net->batch)) return -1; /* its five arrays */
                l = lwf_make_distill_layer(net->batch, p.inputs, t->temperature, t->lambda, t->t2_scaling);
                if (!l.output || !l.delta || !l.loss || !l.x || !l.x_norm || !l.cweights) {
                    net->layers[net->n++] = l; /* freed with the model */
                    return lwf_fail(err, "%s:%d: out of memory", file, s->line);
                }
            } else {
                t->is_new = 1;
                ++nnew;
                if (nnew > 1)
                    return lwf_fail(err, "%s:%d: a second new head (task '%s' ends in [softmax]); exactly one task "
                                         "is new, old tasks end in [lwf_distill]",
                                    file, s->line, t->name);
                m->new_task = cur;
                if (build_stock(&bc, s, sp->kind, p, net, &l)) {
                    net->layers[net->n++] = l;
                    return -1;
                }
                if (lwf_make_softmax_head(&l)) {
                    net->layers[net->n++] = l;
                    return lwf_fail(err, "%s:%d: out of memory", file, s->line);
                }
            }
        } else {
            /* a head may read the trunk or its own layers, never another head's */
            bc.other_lo = cur < 0 ? 0 : m->trunk;
            bc.other_hi = cur < 0 ? 0 : m->tasks[cur].first;
            if (build_stock(&bc, s, sp->kind, p, net, &l)) {
                net->layers[net->n++] = l;
                return -1;
            }
        }
        net->layers[net->n++] = l;
        if (l.workspace_size > workspace) workspace = l.workspace_size;
        p.h = l.out_h;
        p.w = l.out_w;
        p.c = l.out_c;
        p.inputs = l.outputs;
    }
    if (cur >= 0 && !closed)
        return lwf_fail(err, "%s:%d: the head of task '%s' has no loss layer ([lwf_distill] or [softmax])", file,
                        m->tasks[cur].line, m->tasks[cur].name);
    if (nnew == 0)
        return lwf_fail(err, "%s: no new head: exactly one task must end in [softmax] (the new task)", file);
    if (m->new_task != m->ntasks - 1)
        return lwf_fail(err, "%s:%d: the new task '%s' must be the last head (old heads come first, in the order "
                             "their weights are stored)",
                        file, m->tasks[m->new_task].line, m->tasks[m->new_task].name);
    /* each loss layer reads its slice of a truth row (batch, truths) */
    for (int k = 0; k < m->ntasks; ++k) {
        lwf_loss_params *lp = lwf_loss_params_of(&net->layers[m->tasks[k].loss]);
        lp->offset = m->tasks[k].offset;
        lp->truths = truths;
    }
    /* the truth rows and the shared workspace (bytes) */
    if (account(&bc, ns, (long long)truths * net->batch + (long long)(workspace / sizeof(float)))) return -1;
    layer *last = &net->layers[net->n - 1];
    net->outputs = last->outputs;
    net->output = last->output;
    net->truths = truths;
    net->input = calloc((size_t)net->inputs * net->batch, sizeof(float));
    net->truth = calloc((size_t)truths * net->batch, sizeof(float));
    if (workspace) net->workspace = calloc(1, workspace);
    /* (batch, inputs) delta of the network's input, never read: only for a first layer
     * whose backward writes its input delta unconditionally (see lwf_backward) */
    int need_delta = !lwf_layer_skips_null_delta(&net->layers[0]);
    if (need_delta) net->delta = calloc((size_t)net->inputs * net->batch, sizeof(float));
    if (!net->input || !net->truth || (workspace && !net->workspace) || (need_delta && !net->delta))
        return lwf_fail(err, "%s: out of memory", file);
    /* a task's .data must agree with its head */
    for (int k = 0; k < m->ntasks; ++k) {
        lwf_task *t = &m->tasks[k];
        if (!t->data) continue;
        lwf_datacfg d;
        lwf_err derr;
        if (lwf_datacfg_read(t->data, &d, &derr))
            return lwf_fail(err, "%s:%d: task '%s': %s", file, t->line, t->name, derr.msg);
        int classes = d.classes;
        lwf_datacfg_free(&d);
        if (classes != t->classes)
            return lwf_fail(err, "%s:%d: task '%s': %s has classes=%d but the head outputs %d values", file, t->line,
                            t->name, t->data, classes, t->classes);
    }
    /* each head's [task] reads the trunk's output where it lies instead of copying it,
     * unless the head's first layer works in place on its input ([dropout]) */
    for (int k = 0; k < m->ntasks; ++k) lwf_task_share_output(net, m->tasks[k].first);
    /* the fast CPU kernels, unless Darknet's reference ones were asked for */
    if (lwf_kernels_install(net, err)) return -1;
    return 0;
}

lwf_model *lwf_model_load(const char *cfgpath, const lwf_build_opts *opts, lwf_err *err)
{
    lwf_cfgfile cf;
    if (lwf_cfg_read(cfgpath, &cf, err)) return NULL;
    lwf_model *m = calloc(1, sizeof *m);
    if (!m) {
        lwf_cfg_free(&cf);
        lwf_fail(err, "%s: out of memory", cfgpath);
        return NULL;
    }
    m->cfg = lwf_strdup(cfgpath);
    int saved = -1;
    if (opts && opts->quiet) saved = mute_stderr();
    else fprintf(stderr, "layer     filters    size              input                output\n");
    int rc = build(m, &cf, opts, err);
    if (rc && saved < 0) fputc('\n', stderr); /* end the layer table's half-written line */
    unmute_stderr(saved);
    lwf_cfg_free(&cf);
    if (rc) {
        lwf_model_free(m);
        return NULL;
    }
    return m;
}

void lwf_model_free(lwf_model *m)
{
    if (!m) return;
    network *net = m->net;
    if (net) {
        for (int k = 0; k < m->ntasks; ++k)
            if (m->tasks[k].first > 0 && m->tasks[k].first < net->n) lwf_task_unshare_output(net, m->tasks[k].first);
        for (int i = 0; i < net->n; ++i) lwf_layer_free(net->layers[i]);
        free(net->layers);
        free(net->input);
        free(net->delta);
        free(net->truth);
        free(net->workspace);
        free(net->seen);
        free(net->t);
        free(net->cost);
        free(net->scales);
        free(net->steps);
        free(net);
    }
    for (int k = 0; k < m->ntasks; ++k) {
        free(m->tasks[k].name);
        free(m->tasks[k].data);
    }
    free(m->tasks);
    free(m->line);
    free(m->cfg);
    free(m);
}

int lwf_task_find(const lwf_model *m, const char *name)
{
    for (int k = 0; k < m->ntasks; ++k)
        if (strcmp(m->tasks[k].name, name) == 0) return k;
    return -1;
}

int lwf_old_layers(const lwf_model *m)
{
    return m->tasks[m->new_task].first;
}
