/* The one table of the sections an LwF cfg may hold: names and Darknet's aliases, keys
 * (ours, refused, required, layer references), the check of each stock section against
 * what libdarknet would trip over, and the makers of every layer.  Read by builder.c (the
 * order of sections, heads and tasks) and by lwf init / lwf export (plugin/tools/). */
#define _POSIX_C_SOURCE 200809L
#include "cfg/cfg.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define BIG 1e9
#define I LWF_KEY_INT
#define F LWF_KEY_FLOAT
#define REFUSED(k) {k, LWF_KEY_STR, 0, 0, LWF_KEY_REFUSED}

static const lwf_keydef net_keys[] = {
    {"batch", I, 1, 1 << 20, 0}, {"subdivisions", I, 1, 1 << 20, 0}, {"learning_rate", F, 0, BIG, 0},
    {"momentum", F, 0, 0.9999999, 0}, {"decay", F, 0, BIG, 0}, {"time_steps", I, 1, 1, 0},
    {"notruth", I, 0, 0, 0}, {"random", I, 0, 0, 0}, {"adam", I, 0, 1, 0}, {"B1", F, 0, 1, 0},
    {"B2", F, 0, 1, 0}, {"eps", F, 0, 1, 0}, {"height", I, 1, 1 << 16, LWF_KEY_REQUIRED},
    {"width", I, 1, 1 << 16, LWF_KEY_REQUIRED}, {"channels", I, 1, 1 << 16, LWF_KEY_REQUIRED},
    {"max_crop", I, 1, 1 << 16, 0}, {"min_crop", I, 1, 1 << 16, 0}, {"max_ratio", F, 0.01, 100, 0},
    {"min_ratio", F, 0.01, 100, 0}, {"center", I, 0, 1, 0}, {"angle", F, 0, 360, 0}, {"aspect", F, 0.01, 100, 0},
    {"saturation", F, 0.01, 100, 0}, {"exposure", F, 0.01, 100, 0}, {"hue", F, 0, 1, 0},
    {"policy", LWF_KEY_POLICY, 0, 0, 0}, {"burn_in", I, 0, INT_MAX, 0}, {"power", F, -BIG, BIG, 0},
    {"step", I, 1, INT_MAX, 0}, {"scale", F, -BIG, BIG, 0}, {"steps", LWF_KEY_INTLIST, 0, INT_MAX, 0},
    {"scales", LWF_KEY_FLOATLIST, -BIG, BIG, 0}, {"gamma", F, -BIG, BIG, 0}, {"max_batches", I, 0, INT_MAX, 0},
    /* ours */
    {"warmup_batches", I, 0, INT_MAX, LWF_KEY_OURS}, {"warmup_learning_rate", F, 0, BIG, LWF_KEY_OURS},
    {"flip", I, 0, 1, LWF_KEY_OURS}, {"precise_bn", I, 0, 1 << 20, LWF_KEY_OURS},
    /* no effect here: the input size is height x width x channels (all three required),
     * and only libdarknet's GPU updates clip weights */
    REFUSED("inputs"), REFUSED("clip"), {0, 0, 0, 0, 0}};
/* keys parse_network_cfg reads for every layer section */
static const lwf_keydef layer_keys[] = {
    {"stopbackward", I, 0, 1, 0}, {"learning_rate", F, 0, BIG, 0},
    /* no effect in the CPU build: no forward, backward or update reads them */
    REFUSED("onlyforward"), REFUSED("smooth"),
    /* our weights, backups and teacher files hold every layer, or lwf train could not read
     * back what it wrote; truth= feeds a detector's truth to a layer */
    REFUSED("numload"), REFUSED("dontloadscales"), REFUSED("dontsave"), REFUSED("dontload"), REFUSED("truth"),
    {0, 0, 0, 0, 0}};
static const lwf_keydef conv_keys[] = {
    {"filters", I, 1, 1 << 16, 0}, {"size", I, 1, 64, 0}, {"stride", I, 1, 64, 0}, {"pad", I, 0, 1, 0},
    {"padding", I, 0, 64, 0}, {"groups", I, 1, 1 << 16, 0}, {"activation", LWF_KEY_ACT, 0, 0, 0},
    {"batch_normalize", I, 0, 1, 0}, {"binary", I, 0, 1, 0}, {"xnor", I, 0, 1, 0}, {"flipped", I, 0, 1, 0},
    {"dot", F, -BIG, BIG, 0}, {0, 0, 0, 0, 0}};
static const lwf_keydef conn_keys[] = {
    {"output", I, 1, 1 << 24, 0}, {"activation", LWF_KEY_ACT, 0, 0, 0}, {"batch_normalize", I, 0, 1, 0},
    {0, 0, 0, 0, 0}};
static const lwf_keydef maxpool_keys[] = {
    {"stride", I, 1, 1024, 0}, {"size", I, 1, 1024, 0}, {"padding", I, 0, 1024, 0}, {0, 0, 0, 0, 0}};
static const lwf_keydef none_keys[] = {{0, 0, 0, 0, 0}};
static const lwf_keydef dropout_keys[] = {{"probability", F, 0, 0.999999, 0}, {0, 0, 0, 0, 0}};
static const lwf_keydef softmax_keys[] = {
    {"groups", I, 1, 1 << 24, 0}, {"temperature", F, 1e-6, BIG, 0}, {"spatial", F, 0, 0, 0},
    {"noloss", I, 0, 0, 0}, REFUSED("tree") /* a hierarchical softmax */, {0, 0, 0, 0, 0}};
static const lwf_keydef act_keys[] = {{"activation", LWF_KEY_ACT, 0, 0, 0}, {0, 0, 0, 0, 0}};
static const lwf_keydef crop_keys[] = {
    {"crop_height", I, 1, 1 << 16, 0}, {"crop_width", I, 1, 1 << 16, 0}, {"flip", I, 0, 1, 0},
    {"angle", F, 0, 360, 0}, {"saturation", F, 0.01, 100, 0}, {"exposure", F, 0.01, 100, 0},
    {"noadjust", I, 0, 1, 0}, {"shift", F, -BIG, BIG, 0}, {0, 0, 0, 0, 0}};
static const lwf_keydef norm_keys[] = {
    {"alpha", F, -BIG, BIG, 0}, {"beta", F, -BIG, BIG, 0}, {"kappa", F, -BIG, BIG, 0}, {"size", I, 1, 1025, 0},
    {0, 0, 0, 0, 0}};
static const lwf_keydef reorg_keys[] = {{"stride", I, 1, 64, 0}, {"reverse", I, 0, 1, 0}, {0, 0, 0, 0, 0}};
static const lwf_keydef route_keys[] = {
    {"layers", LWF_KEY_INTLIST, -INT_MAX, INT_MAX, LWF_KEY_REQUIRED | LWF_KEY_LAYERREF}, {0, 0, 0, 0, 0}};
static const lwf_keydef shortcut_keys[] = {
    {"from", I, -INT_MAX, INT_MAX, LWF_KEY_REQUIRED | LWF_KEY_LAYERREF}, {"activation", LWF_KEY_ACT, 0, 0, 0},
    {"alpha", F, -BIG, BIG, 0}, {"beta", F, -BIG, BIG, 0}, {0, 0, 0, 0, 0}};
static const lwf_keydef upsample_keys[] = {{"stride", I, -64, 64, 0}, {"scale", F, -BIG, BIG, 0}, {0, 0, 0, 0, 0}};
static const lwf_keydef task_keys[] = {
    {"name", LWF_KEY_STR, 0, 0, LWF_KEY_REQUIRED}, {"data", LWF_KEY_STR, 0, 0, 0},
    /* a grown head: old-class images the user still has (a list), and their share of a batch */
    {"exemplars", LWF_KEY_STR, 0, 0, 0}, {"exemplar_share", F, 0.001, 0.9, 0}, {0, 0, 0, 0, 0}};
/* every key libdarknet's parse_yolo reads; `random` is read (stock multi-scale training) but lwf
 * train refuses random=1; `map` (a class map file, read with exit(0) on a missing file) refused */
#define YOLO_KEYS                                                                                                  \
    {"classes", I, 1, 1 << 16, 0}, {"num", I, 1, 1 << 10, 0}, {"mask", LWF_KEY_INTLIST, 0, (1 << 10) - 1, 0},      \
        {"max", I, 1, LWF_YOLO_BOXES, 0}, {"jitter", F, 0, 0.99, 0}, {"ignore_thresh", F, 0, 1, 0},                \
        {"truth_thresh", F, 0, 1, 0}, {"random", I, 0, 1, 0}, {"anchors", LWF_KEY_FLOATLIST, 0, BIG, 0},          \
        REFUSED("map")
static const lwf_keydef yolo_keys[] = {YOLO_KEYS, {0, 0, 0, 0, 0}};
/* [lwf_yolo]: the stock keys, then ours (defaults in make_yolo, measured on protocol P4) */
static const lwf_keydef lwf_yolo_keys[] = {
    YOLO_KEYS, {"old_classes", I, 1, 1 << 16, LWF_KEY_REQUIRED | LWF_KEY_OURS}, {"lambda", F, 0, BIG, LWF_KEY_OURS},
    {"lambda_obj", F, 0, BIG, LWF_KEY_OURS}, {"lambda_cls", F, 0, BIG, LWF_KEY_OURS},
    {"lambda_box", F, 0, BIG, LWF_KEY_OURS}, {"teacher_thresh", F, 0, 1, LWF_KEY_OURS},
    {"teacher_new_iou", F, 0, 1, LWF_KEY_OURS}, {0, 0, 0, 0, 0}};
#undef YOLO_KEYS
static const lwf_keydef distill_keys[] = {
    {"temperature", LWF_KEY_POS, 0, BIG, 0}, {"lambda", F, 0, BIG, 0}, {"t2_scaling", I, 0, 1, 0}, {0, 0, 0, 0, 0}};
static const lwf_keydef grow_keys[] = {
    {"old_classes", I, 1, 1 << 24, LWF_KEY_REQUIRED}, {"temperature", LWF_KEY_POS, 0, BIG, 0},
    {"lambda", F, 0, BIG, 0}, {"t2_scaling", I, 0, 1, 0}, {"bias_correction", I, 0, 1, 0}, {0, 0, 0, 0, 0}};
#undef I
#undef F
#undef REFUSED

static const char *activations[] = {"logistic", "loggy", "relu", "elu", "selu", "relie", "plse", "hardtan",
                                    "lhtan", "linear", "ramp", "leaky", "tanh", "stair", 0};
static const char *policies[] = {"random", "poly", "constant", "step", "exp", "sigmoid", "steps", 0};

static int in_set(const char *s, const char **set)
{
    for (int i = 0; set[i]; ++i)
        if (strcmp(s, set[i]) == 0) return 1;
    return 0;
}

/* ---- values ---- */

int lwf_check_list(const char *v, int is_float, double lo, double hi)
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

static int check_value(const char *file, const lwf_section *s, const lwf_opt *o, const lwf_keydef *k, lwf_err *err)
{
    int iv;
    float fv;
    if (k->flags & LWF_KEY_REFUSED)
        return lwf_fail(err, "%s:%d: [%s] %s is not supported in an LwF cfg", file, o->line, s->type, o->key);
    switch (k->type) {
    case LWF_KEY_INT:
        if (lwf_parse_int(o->val, (long)k->lo, (long)k->hi, &iv))
            return lwf_fail(err, "%s:%d: [%s] %s must be an integer in [%ld, %ld], got '%s'", file, o->line, s->type,
                            o->key, (long)k->lo, (long)k->hi, o->val);
        break;
    case LWF_KEY_FLOAT:
        if (lwf_parse_float(o->val, k->lo, k->hi, &fv))
            return lwf_fail(err, "%s:%d: [%s] %s must be a number in [%g, %g], got '%s'", file, o->line, s->type,
                            o->key, k->lo, k->hi, o->val);
        break;
    case LWF_KEY_POS:
        if (lwf_parse_float(o->val, 0, k->hi, &fv) || fv <= 0)
            return lwf_fail(err, "%s:%d: [%s] %s must be > 0, got '%s'", file, o->line, s->type, o->key, o->val);
        break;
    case LWF_KEY_STR:
        if (!o->val[0]) return lwf_fail(err, "%s:%d: [%s] %s is empty", file, o->line, s->type, o->key);
        break;
    case LWF_KEY_ACT:
        if (!in_set(o->val, activations))
            return lwf_fail(err, "%s:%d: [%s] unknown activation '%s'", file, o->line, s->type, o->val);
        break;
    case LWF_KEY_POLICY:
        if (!in_set(o->val, policies))
            return lwf_fail(err, "%s:%d: [%s] unknown learning-rate policy '%s'", file, o->line, s->type, o->val);
        break;
    case LWF_KEY_INTLIST:
    case LWF_KEY_FLOATLIST:
        if (lwf_check_list(o->val, k->type == LWF_KEY_FLOATLIST, k->lo, k->hi) < 0)
            return lwf_fail(err, "%s:%d: [%s] %s must be a comma-separated list of %s, got '%s'", file, o->line,
                            s->type, o->key, k->type == LWF_KEY_FLOATLIST ? "numbers" : "integers", o->val);
        break;
    }
    return 0;
}

static const lwf_keydef *find_key(const lwf_keydef *ks, const char *key)
{
    for (int i = 0; ks[i].key; ++i)
        if (strcmp(ks[i].key, key) == 0) return &ks[i];
    return NULL;
}

const lwf_keydef *lwf_section_key(const lwf_secdef *d, const char *key)
{
    const lwf_keydef *k = find_key(d->keys, key);
    if (!k && d->role != LWF_ROLE_NET && !(d->flags & LWF_SEC_PLUGIN)) k = find_key(layer_keys, key);
    return k;
}

int lwf_section_check_keys(const char *file, const lwf_section *s, const lwf_secdef *d, lwf_err *err)
{
    for (int i = 0; i < s->nopts; ++i) {
        const lwf_opt *o = &s->opts[i];
        const lwf_keydef *k = lwf_section_key(d, o->key);
        if (!k) return lwf_fail(err, "%s:%d: [%s] unknown key '%s'", file, o->line, s->type, o->key);
        if (check_value(file, s, o, k, err)) return -1;
    }
    return 0;
}

const lwf_keydef *lwf_section_missing(const lwf_section *s, const lwf_secdef *d)
{
    for (int i = 0; d->keys[i].key; ++i)
        if ((d->keys[i].flags & LWF_KEY_REQUIRED) && !lwf_cfg_opt(s, d->keys[i].key)) return &d->keys[i];
    return NULL;
}

/* Values of keys check_keys has accepted (so they parse). */
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

/* ---- options handed to libdarknet ---- */

list *lwf_section_opts(const lwf_section *s, dn_kvp **kvps)
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

void lwf_section_opts_free(list *l, dn_kvp *kvps)
{
    free_list(l); /* libdarknet's: the nodes and the list, not what they point to */
    free(kvps);
}

/* A key the stock parser did not read has no effect: say so instead of ignoring it. */
int lwf_section_check_used(const char *file, const lwf_section *s, const dn_kvp *kvps, lwf_err *err)
{
    for (int i = 0; i < s->nopts; ++i)
        if (!kvps[i].used)
            return lwf_fail(err, "%s:%d: [%s] %s has no effect here", file, s->opts[i].line, s->type, s->opts[i].key);
    return 0;
}

/* ---- sizes ---- */

int lwf_build_account(lwf_build *b, const lwf_section *s, long long floats)
{
    b->floats += (size_t)floats;
    if (b->floats > b->budget)
        return lwf_fail(b->err, "%s:%d: [%s] the network would need more than %zu MiB: more than this machine has",
                        b->file, s->line, s->type, b->budget * sizeof(float) >> 20);
    return 0;
}

/* Checks that a layer of this output size (and weight count) can be allocated. */
static int check_size(lwf_build *b, const lwf_section *s, int batch, long long oh, long long ow, long long oc,
                      long long weights)
{
    if (oh < 1 || ow < 1 || oc < 1)
        return lwf_fail(b->err, "%s:%d: [%s] output would be %lldx%lldx%lld: the input is too small for it", b->file,
                        s->line, s->type, ow, oh, oc);
    long long out = oh * ow * oc;
    if (oh > INT_MAX || ow > INT_MAX || oc > INT_MAX || out > INT_MAX / batch || weights > INT_MAX / 2)
        return lwf_fail(b->err, "%s:%d: [%s] layer too large (%lldx%lldx%lld outputs, %lld weights, batch %d)",
                        b->file, s->line, s->type, ow, oh, oc, weights, batch);
    return lwf_build_account(b, s, out * batch * 3 + weights * 3);
}

/* ---- checks: what libdarknet's parser would assert, divide by or overflow on ---- */

static int check_conv(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    int h = p->h, w = p->w, c = p->c;
    int filters = opt_int(s, "filters", 1), size = opt_int(s, "size", 1), stride = opt_int(s, "stride", 1);
    int groups = opt_int(s, "groups", 1), pad = opt_int(s, "pad", 0), padding = opt_int(s, "padding", 0);
    if (pad) padding = size / 2;
    /* libdarknet's make_convolutional_layer gives a binary layer scales but their
     * updates only with batch_normalize, and update_convolutional_layer then adds
     * through a NULL scale_updates: the first training step crashed */
    const lwf_opt *bin = lwf_cfg_opt(s, "binary");
    if (opt_int(s, "binary", 0) && !opt_int(s, "batch_normalize", 0))
        return lwf_fail(b->err, "%s:%d: [%s] binary=1 needs batch_normalize=1", b->file, bin->line, s->type);
    if (c % groups || filters % groups)
        return lwf_fail(b->err, "%s:%d: [%s] groups=%d must divide the input channels (%d) and filters (%d)", b->file,
                        s->line, s->type, groups, c, filters);
    long long oh = ((long long)h + 2 * padding - size) / stride + 1, ow = ((long long)w + 2 * padding - size) / stride + 1;
    if (h + 2 * padding < size || w + 2 * padding < size) oh = ow = 0;
    if (check_size(b, s, p->batch, oh, ow, filters, (long long)c / groups * filters * size * size)) return -1;
    if (oh * ow * (long long)size * size * c / groups > INT_MAX / 2)
        return lwf_fail(b->err, "%s:%d: [%s] workspace too large", b->file, s->line, s->type);
    return 0;
}

static int check_conn(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    int out = opt_int(s, "output", 1);
    return check_size(b, s, p->batch, 1, 1, out, (long long)p->inputs * out);
}

static int check_maxpool(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    int stride = opt_int(s, "stride", 1), size = opt_int(s, "size", stride);
    int padding = opt_int(s, "padding", size - 1);
    long long oh = ((long long)p->h + padding - size) / stride + 1, ow = ((long long)p->w + padding - size) / stride + 1;
    if (p->h + padding < size || p->w + padding < size) oh = ow = 0;
    return check_size(b, s, p->batch, oh, ow, p->c, 0);
}

static int check_avgpool(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    return lwf_build_account(b, s, (long long)p->c * p->batch * 3); /* output, delta of (batch, c) */
}

static int check_crop(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    int ch = opt_int(s, "crop_height", 1), cw = opt_int(s, "crop_width", 1);
    if (ch > p->h || cw > p->w)
        return lwf_fail(b->err, "%s:%d: [crop] %dx%d crop is larger than its %dx%d input", b->file, s->line, cw, ch,
                        p->w, p->h);
    return 0;
}

static int check_reorg(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    int stride = opt_int(s, "stride", 1), reverse = opt_int(s, "reverse", 0);
    /* both directions index channels in groups of stride^2: with fewer channels
     * libdarknet's reorg_cpu divides by zero, with a remainder it reads past its input
     * (tests/fuzz/regressions/cfg/reorg-few-channels.cfg) */
    if (p->c % (stride * stride) || (!reverse && (p->h % stride || p->w % stride)))
        return lwf_fail(b->err, "%s:%d: [reorg] stride %d does not divide the %dx%dx%d input", b->file, s->line,
                        stride, p->w, p->h, p->c);
    return check_size(b, s, p->batch, 1, 1, (long long)p->h * p->w * p->c, 0);
}

static int check_upsample(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    int stride = opt_int(s, "stride", 2);
    if (stride == 0) return lwf_fail(b->err, "%s:%d: [upsample] stride must not be 0", b->file, s->line);
    if (stride < 0 && (p->h % -stride || p->w % -stride))
        return lwf_fail(b->err, "%s:%d: [upsample] stride %d does not divide the %dx%d input", b->file, s->line,
                        stride, p->w, p->h);
    long long f = stride > 0 ? stride : 1;
    return check_size(b, s, p->batch, p->h * f, p->w * f, p->c, 0);
}

static int check_norm(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    /* libdarknet's forward sums the squares of the first size/2 channels without
     * checking them against c: a wider window reads past its buffer
     * (tests/fuzz/regressions/cfg/lrn-window-too-wide.cfg) */
    int size = opt_int(s, "size", 5);
    if (size / 2 > p->c)
        return lwf_fail(b->err, "%s:%d: [%s] size=%d is more than twice its %d input channels", b->file, s->line,
                        s->type, size, p->c);
    return 0;
}

static int check_dropout(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    /* dropout works in place on the layer before it: as the first layer it would read
     * net->layers[-1] (tests/fuzz/regressions/cfg/dropout-first.cfg) */
    if (p->index == 0)
        return lwf_fail(b->err, "%s:%d: [%s] cannot be the first layer: it works in place on the layer before it",
                        b->file, s->line, s->type);
    return 0;
}

static int check_softmax(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    int groups = opt_int(s, "groups", 1);
    if (p->inputs % groups)
        return lwf_fail(b->err, "%s:%d: [softmax] groups=%d does not divide its %d inputs", b->file, s->line, groups,
                        p->inputs);
    return 0;
}

/* Layer `v` of a [route] or [shortcut] at layer `index` (negative = relative): an earlier
 * layer not in another head, or -1 with err set. */
static int check_ref(lwf_build *b, const lwf_section *s, const lwf_opt *o, int v, int index)
{
    int idx = v < 0 ? index + v : v;
    if (idx < 0 || idx >= index)
        return lwf_fail(b->err, "%s:%d: [%s] %s%d is not an earlier layer of the trunk or this head", b->file,
                        o->line, s->type, strcmp(s->type, "route") == 0 ? "layer " : "from=", v);
    if (idx >= b->other_lo && idx < b->other_hi)
        return lwf_fail(b->err, "%s:%d: [%s] reads layer %d of another head", b->file, o->line, s->type, idx);
    return idx;
}

static int check_route(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    const lwf_opt *o = lwf_cfg_opt(s, "layers");
    char *copy = lwf_strdup(o->val);
    if (!copy) return lwf_fail(b->err, "%s:%d: out of memory", b->file, s->line);
    char *save = NULL;
    long long total = 0;
    int rw = -1, rh = -1, rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        int v = 0;
        lwf_parse_int(tok, -INT_MAX, INT_MAX, &v);
        int idx = check_ref(b, s, o, v, p->index);
        if (idx < 0) {
            rc = -1;
            break;
        }
        const layer *src = &b->net->layers[idx];
        if (rw >= 0 && (src->out_w != rw || src->out_h != rh))
            rc = lwf_fail(b->err, "%s:%d: [route] layers of different sizes (%dx%d and %dx%d)", b->file, o->line, rw,
                          rh, src->out_w, src->out_h);
        rw = src->out_w;
        rh = src->out_h;
        total += src->outputs;
    }
    free(copy);
    return rc ? -1 : check_size(b, s, p->batch, 1, 1, total, 0);
}

static int check_shortcut(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    const lwf_opt *o = lwf_cfg_opt(s, "from");
    int v = 0;
    lwf_parse_int(o->val, -INT_MAX, INT_MAX, &v);
    int idx = check_ref(b, s, o, v, p->index);
    if (idx < 0) return -1;
    const layer *src = &b->net->layers[idx];
    int fw = src->out_w, fh = src->out_h, w = p->w, h = p->h;
    if (fw < 1 || fh < 1 || (fw / w != fh / h) || (w / fw != h / fh))
        return lwf_fail(b->err, "%s:%d: [shortcut] from=%d has shape %dx%d, not compatible with %dx%d", b->file,
                        o->line, v, fw, fh, w, h);
    return 0;
}

/* [yolo] and [lwf_yolo]: what parse_yolo would overrun (anchors beyond num, a mask naming no
 * anchor, more boxes than a truth row holds) or assert (its input is not (classes + 5) per
 * mask anchor: then the convolution before it is at fault, named at its line). */
static int check_yolo(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    int classes = opt_int(s, "classes", 20), num = opt_int(s, "num", 1), masks = num;
    const lwf_opt *mask = lwf_cfg_opt(s, "mask"), *anchors = lwf_cfg_opt(s, "anchors");
    if (mask) {
        masks = lwf_check_list(mask->val, 0, 0, num - 1);
        if (masks < 0)
            return lwf_fail(b->err, "%s:%d: [%s] mask must list anchors 0..num-1 = 0..%d, got '%s'", b->file,
                            mask->line, s->type, num - 1, mask->val);
    }
    if (anchors && lwf_check_list(anchors->val, 1, 0, BIG) > 2 * num)
        return lwf_fail(b->err, "%s:%d: [%s] %d anchor values, more than 2 x num=%d", b->file, anchors->line, s->type,
                        lwf_check_list(anchors->val, 1, 0, BIG), num);
    const lwf_opt *old = lwf_cfg_opt(s, "old_classes");
    if (old && opt_int(s, "old_classes", 0) >= classes)
        return lwf_fail(b->err, "%s:%d: [%s] old_classes=%s must be less than classes=%d (the old classes, then at "
                                "least one new one)",
                        b->file, old->line, s->type, old->val, classes);
    long long want = (long long)p->w * p->h * masks * (classes + 5);
    if (p->index == 0 || p->inputs != want) {
        int prev = p->index - 1;
        const layer *pl = prev >= 0 ? &b->net->layers[prev] : NULL;
        if (pl && pl->type == CONVOLUTIONAL)
            return lwf_fail(b->err, "%s:%d: [convolutional] filters=%d, but the [%s] after it (line %d) needs "
                                    "(classes + 5) x masks = (%d + 5) x %d = %d",
                            b->file, b->line ? b->line[prev] : s->line, pl->n, s->type, s->line, classes, masks,
                            (classes + 5) * masks);
        return lwf_fail(b->err, "%s:%d: [%s] needs a convolution before it with filters=(classes + 5) x masks = %d",
                        b->file, s->line, s->type, (classes + 5) * masks);
    }
    return check_size(b, s, p->batch, p->h, p->w, (long long)masks * (classes + 5), 0);
}

/* ---- libdarknet's parsers, and what the plugin adds to their layers ---- */

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

static int parse_conv(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_convolutional(o, p);
    return 0;
}

static int parse_conn(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_connected(o, p);
    return 0;
}

static int parse_max(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_maxpool(o, p);
    l->backward = backward_maxpool_checked;
    return 0;
}

static int parse_avg(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_avgpool(o, p);
    return 0;
}

static int parse_drop(list *o, dn_size_params p, network *net, layer *l)
{
    *l = parse_dropout(o, p);
    /* dropout works in place on its input, as parse_network_cfg arranges */
    l->output = net->layers[p.index - 1].output;
    l->delta = net->layers[p.index - 1].delta;
    return 0;
}

static int parse_bn(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_batchnorm(o, p);
    /* libdarknet's CPU build leaves out buffers its forward and backward use: the first
     * forward wrote through NULL (tests/fuzz/regressions/cfg/batchnorm-layer.cfg);
     * free_layer frees them */
    l->x = calloc((size_t)l->outputs * l->batch, sizeof(float));      /* (batch, outputs) */
    l->x_norm = calloc((size_t)l->outputs * l->batch, sizeof(float)); /* (batch, outputs) */
    l->mean_delta = calloc((size_t)l->c, sizeof(float));              /* (c) */
    l->variance_delta = calloc((size_t)l->c, sizeof(float));          /* (c) */
    return !l->x || !l->x_norm || !l->mean_delta || !l->variance_delta ? -1 : 0;
}

static int parse_soft(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_softmax(o, p);
    l->out_w = l->out_h = 1; /* stock leaves the shape unset: a flat vector */
    l->out_c = l->outputs;
    return 0;
}

static int parse_act(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_activation(o, p);
    return 0;
}

static int parse_crop_layer(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_crop(o, p);
    /* libdarknet's crop layer has no delta (its backward does nothing), but the layer
     * after it adds into one; without it every [crop] was refused as "out of memory"
     * (tests/fuzz/regressions/cfg/crop-then-maxpool.cfg); free_layer frees it */
    if (!l->delta) l->delta = calloc((size_t)l->outputs * l->batch, sizeof(float)); /* (batch, outputs) */
    return 0;
}

static int parse_norm(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_normalization(o, p);
    return 0;
}

static int parse_reorg_layer(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_reorg(o, p);
    return 0;
}

static int parse_route_layer(list *o, dn_size_params p, network *net, layer *l)
{
    *l = parse_route(o, p, net);
    return 0;
}

static int parse_shortcut_layer(list *o, dn_size_params p, network *net, layer *l)
{
    *l = parse_shortcut(o, p, net);
    return 0;
}

static int parse_upsample_layer(list *o, dn_size_params p, network *net, layer *l)
{
    *l = parse_upsample(o, p, net);
    return 0;
}

static int parse_yolo_layer(list *o, dn_size_params p, network *net, layer *l)
{
    (void)net;
    *l = parse_yolo(o, p);
    return 0;
}

/* ---- makers ---- */

static const lwf_secdef *def_of(const lwf_section *s)
{
    return lwf_section_def(s->type);
}

/* A stock section: checked, counted, then built by libdarknet's parse_<section>. */
static int make_stock(lwf_build *b, const lwf_section *s, dn_size_params p, layer *out)
{
    const lwf_secdef *d = def_of(s);
    const lwf_keydef *miss = lwf_section_missing(s, d);
    if (miss) return lwf_fail(b->err, "%s:%d: [%s] needs %s=", b->file, s->line, s->type, miss->key);
    if (d->check && d->check(b, s, &p)) return -1;
    /* the layers not counted by their check allocate a few (batch, inputs) arrays each;
     * with them uncounted, sections after a large one could add any multiple of the budget */
    if (lwf_build_account(b, s, (long long)d->arrays * p.h * p.w * p.c * p.batch)) return -1;
    dn_kvp *kvps = NULL;
    list *opts = lwf_section_opts(s, &kvps);
    if (!opts) return lwf_fail(b->err, "%s:%d: out of memory", b->file, s->line);
    layer l = {0};
    int oom = d->parse(opts, p, b->net, &l);
    /* the per-layer keys parse_network_cfg reads (those with an effect: see layer_keys) */
    l.stopbackward = option_find_int_quiet(opts, "stopbackward", 0);
    l.learning_rate_scale = option_find_float_quiet(opts, "learning_rate", 1);
    for (int i = 0; i < s->nopts; ++i) { /* the plugin's keys are its maker's to read ([lwf_yolo]'s) */
        const lwf_keydef *k = lwf_section_key(d, s->opts[i].key);
        if (k && (k->flags & LWF_KEY_OURS)) kvps[i].used = 1;
    }
    int rc = lwf_section_check_used(b->file, s, kvps, b->err);
    lwf_section_opts_free(opts, kvps);
    *out = l;
    if (rc) return -1;
    if (l.out_h < 1 || l.out_w < 1 || l.out_c < 1 || l.outputs < 1 || !l.forward)
        return lwf_fail(b->err, "%s:%d: [%s] gives an empty output (%dx%dx%d)", b->file, s->line, s->type, l.out_w,
                        l.out_h, l.out_c);
    /* dropout shares its input's buffers; softmax has no delta in libdarknet (crop gets one) */
    if (oom || (l.type != DROPOUT && (!l.output || (!(d->flags & LWF_SEC_NO_DELTA) && !l.delta))))
        return lwf_fail(b->err, "%s:%d: [%s] out of memory", b->file, s->line, s->type);
    return 0;
}

/* [softmax], the new task's loss: libdarknet's layer, made slice-aware. */
static int make_softmax_loss(lwf_build *b, const lwf_section *s, dn_size_params p, layer *out)
{
    if (make_stock(b, s, p, out)) return -1;
    if (lwf_make_softmax_head(out)) return lwf_fail(b->err, "%s:%d: out of memory", b->file, s->line);
    return 0;
}

/* [task]: a name goes into CSV text as it is (the training log's header, lwf valid -csv's
 * rows), so it may hold no ',' and no '"' (blanks never reach it: the reader drops them). */
static int check_task(lwf_build *b, const lwf_section *s, const dn_size_params *p)
{
    (void)p;
    const lwf_opt *name = lwf_cfg_opt(s, "name");
    size_t bad = name ? strcspn(name->val, ",\"") : 0;
    if (name && name->val[bad])
        return lwf_fail(b->err, "%s:%d: [task] name=%s holds '%c': a task name goes into CSV files (the training "
                                "log, lwf valid -csv), so it may not hold ',' or '\"'",
                        b->file, name->line, name->val, name->val[bad]);
    return 0;
}

/* [task]: routes the trunk's last layer to the head. */
static int make_task(lwf_build *b, const lwf_section *s, dn_size_params p, layer *out)
{
    if (check_task(b, s, &p)) return -1;
    const layer *src = &b->net->layers[b->trunk - 1];
    if (lwf_build_account(b, s, 2LL * src->outputs * p.batch)) return -1; /* output, delta */
    *out = lwf_make_task_layer(p.batch, b->trunk - 1, src);
    if (!out->output || !out->delta) return lwf_fail(b->err, "%s:%d: out of memory", b->file, s->line);
    return 0;
}

/* [lwf_distill], an old task's loss: its keys are the layer's loss parameters. */
static int make_distill(lwf_build *b, const lwf_section *s, dn_size_params p, layer *out)
{
    float T = opt_float(s, "temperature", 2); /* > 0: checked as LWF_KEY_POS */
    float lambda = opt_float(s, "lambda", 1);
    int t2 = opt_int(s, "t2_scaling", 0);
    if (lwf_build_account(b, s, 5LL * p.inputs * p.batch)) return -1; /* its five arrays */
    *out = lwf_make_distill_layer(p.batch, p.inputs, T, lambda, t2);
    if (!out->output || !out->delta || !out->loss || !out->x || !out->x_norm || !lwf_loss_params_of(out))
        return lwf_fail(b->err, "%s:%d: out of memory", b->file, s->line);
    return 0;
}

/* [yolo] and [lwf_yolo]: libdarknet's layer (every stock key), with the plugin's parameters.
 * A [yolo] is an [lwf_yolo] with no old classes and no distillation: stock forward on the
 * boxes of its truth row.  [lwf_yolo]'s distillation weights are lambda times lambda_obj,
 * lambda_cls, lambda_box.  Defaults measured on protocol P4 (scripts/p4.sh, 1200 iterations;
 * README "How the defaults were chosen"): lambda .75 (.5 learned the new classes 1.9 points
 * better and kept the old ones 1.6 worse), teacher_new_iou .2 (at lambda .5, .5 left the new
 * classes 4.9 points lower, the old ones .4 higher), the three others 1 and teacher_thresh .5
 * (lambda_obj 2 or teacher_thresh .3 moved neither by more than .3; the ratio of the three
 * is Darknet's own, each a cross-entropy or squared error per output as in stock [yolo]). */
static int make_yolo(lwf_build *b, const lwf_section *s, dn_size_params p, layer *out)
{
    if (make_stock(b, s, p, out)) return -1;
    int K = opt_int(s, "old_classes", 0);
    float lambda = opt_float(s, "lambda", 0.75f);
    lwf_yolo_params keys;
    memset(&keys, 0, sizeof keys);
    keys.loss.lambda = lambda;
    keys.lambda_obj = lambda * opt_float(s, "lambda_obj", 1);
    keys.lambda_cls = lambda * opt_float(s, "lambda_cls", 1);
    keys.lambda_box = lambda * opt_float(s, "lambda_box", 1);
    keys.teacher_thresh = opt_float(s, "teacher_thresh", 0.5f);
    keys.teacher_new_iou = opt_float(s, "teacher_new_iou", 0.2f);
    if (lwf_make_yolo_head(out, K, &keys)) return lwf_fail(b->err, "%s:%d: out of memory", b->file, s->line);
    lwf_loss_params_of(out)->distill = K > 0; /* the trainer turns it off when there is no teacher */
    return 0;
}

/* [lwf_softmax], a grown head's loss: K = old_classes of its inputs are the old model's. */
static int make_grow(lwf_build *b, const lwf_section *s, dn_size_params p, layer *out)
{
    const lwf_keydef *miss = lwf_section_missing(s, def_of(s));
    if (miss) return lwf_fail(b->err, "%s:%d: [%s] needs %s=", b->file, s->line, s->type, miss->key);
    int k = opt_int(s, "old_classes", 0);
    if (k >= p.inputs)
        return lwf_fail(b->err, "%s:%d: [%s] old_classes=%d must be less than its %d inputs (old + new classes)",
                        b->file, lwf_cfg_opt(s, "old_classes")->line, s->type, k, p.inputs);
    float T = opt_float(s, "temperature", 2), lambda = opt_float(s, "lambda", 1);
    if (lwf_build_account(b, s, 4LL * p.inputs * p.batch + 4LL * k * p.batch)) return -1; /* its arrays */
    *out = lwf_make_grow_layer(p.batch, p.inputs, k, T, lambda, opt_int(s, "t2_scaling", 0));
    if (!out->output || !out->delta || !out->loss || !out->x || !out->x_norm || !lwf_loss_params_of(out))
        return lwf_fail(b->err, "%s:%d: out of memory", b->file, s->line);
    lwf_loss_params_of(out)->bias_correction = opt_int(s, "bias_correction", LWF_BIAS_CORRECTION_DEFAULT);
    return 0;
}

/* ---- the table ---- */

#define LAYER LWF_ROLE_LAYER
#define SHAPE LWF_SEC_SHAPE_ONLY
#define ROW(name, a1, kind, role, flags, keys, cls, check, parse, arrays, make) \
    {name, {a1, NULL}, kind, role, flags, keys, cls, check, parse, arrays, make}
#define REFUSED_SECTION(name, a1) {name, {a1, NULL}, LWF_SEC_REFUSED, LWF_ROLE_NONE, 0, none_keys, NULL, NULL, NULL, 0, NULL}

static const lwf_secdef table[] = {
    ROW("net", "network", LWF_SEC_NET, LWF_ROLE_NET, 0, net_keys, NULL, NULL, NULL, 0, NULL),
    ROW("convolutional", "conv", LWF_SEC_CONV, LAYER, 0, conv_keys, "filters", check_conv, parse_conv, 0, make_stock),
    ROW("connected", "conn", LWF_SEC_CONN, LAYER, 0, conn_keys, "output", check_conn, parse_conn, 0, make_stock),
    ROW("maxpool", "max", LWF_SEC_MAXPOOL, LAYER, 0, maxpool_keys, NULL, check_maxpool, parse_max, 0, make_stock),
    ROW("avgpool", "avg", LWF_SEC_AVGPOOL, LAYER, SHAPE, none_keys, NULL, check_avgpool, parse_avg, 0, make_stock),
    /* arrays: rand */
    ROW("dropout", NULL, LWF_SEC_DROPOUT, LAYER, SHAPE, dropout_keys, NULL, check_dropout, parse_drop, 1, make_stock),
    /* arrays: output, delta, x, x_norm */
    ROW("batchnorm", NULL, LWF_SEC_BATCHNORM, LAYER, 0, none_keys, NULL, NULL, parse_bn, 4, make_stock),
    ROW("softmax", "soft", LWF_SEC_SOFTMAX, LWF_ROLE_NEW_LOSS, LWF_SEC_NO_DELTA, softmax_keys, NULL, check_softmax,
          parse_soft, 3, make_softmax_loss),
    ROW("activation", NULL, LWF_SEC_ACTIVATION, LAYER, SHAPE, act_keys, NULL, NULL, parse_act, 3, make_stock),
    ROW("crop", NULL, LWF_SEC_CROP, LAYER, 0, crop_keys, NULL, check_crop, parse_crop_layer, 3, make_stock),
    ROW("normalization", "lrn", LWF_SEC_NORM, LAYER, 0, norm_keys, NULL, check_norm, parse_norm, 4, make_stock),
    ROW("reorg", NULL, LWF_SEC_REORG, LAYER, 0, reorg_keys, NULL, check_reorg, parse_reorg_layer, 0, make_stock),
    ROW("route", NULL, LWF_SEC_ROUTE, LAYER, 0, route_keys, NULL, check_route, parse_route_layer, 0, make_stock),
    ROW("shortcut", NULL, LWF_SEC_SHORTCUT, LAYER, 0, shortcut_keys, NULL, check_shortcut, parse_shortcut_layer, 3,
          make_stock),
    ROW("upsample", NULL, LWF_SEC_UPSAMPLE, LAYER, 0, upsample_keys, NULL, check_upsample, parse_upsample_layer, 0,
          make_stock),
    /* arrays: output, delta, the boxes' scratch */
    ROW("yolo", NULL, LWF_SEC_YOLO, LWF_ROLE_DET_LOSS, 0, yolo_keys, NULL, check_yolo, parse_yolo_layer, 0,
          make_yolo),
    /* ours */
    ROW("lwf_yolo", NULL, LWF_SEC_LWF_YOLO, LWF_ROLE_DET_LOSS, LWF_SEC_PLUGIN, lwf_yolo_keys, NULL, check_yolo,
          parse_yolo_layer, 0, make_yolo),
    ROW("task", NULL, LWF_SEC_TASK, LWF_ROLE_TASK, LWF_SEC_PLUGIN, task_keys, NULL, check_task, NULL, 0, make_task),
    ROW("lwf_distill", NULL, LWF_SEC_DISTILL, LWF_ROLE_OLD_LOSS, LWF_SEC_PLUGIN, distill_keys, NULL, NULL, NULL, 0,
          make_distill),
    /* a grown head's loss: the new task's, with distillation of its first old_classes outputs */
    ROW("lwf_softmax", NULL, LWF_SEC_GROW, LWF_ROLE_NEW_LOSS, LWF_SEC_PLUGIN, grow_keys, NULL, NULL, NULL, 0,
          make_grow),
    /* Darknet sections that exist but make no sense in an LwF classifier cfg */
    REFUSED_SECTION("local", NULL), REFUSED_SECTION("deconvolutional", "deconv"), REFUSED_SECTION("rnn", NULL),
    REFUSED_SECTION("gru", NULL), REFUSED_SECTION("lstm", NULL), REFUSED_SECTION("crnn", NULL),
    REFUSED_SECTION("cost", NULL), REFUSED_SECTION("detection", NULL), REFUSED_SECTION("region", NULL),
    REFUSED_SECTION("iseg", NULL), REFUSED_SECTION("l2norm", NULL),
    REFUSED_SECTION("logistic", NULL),
    {0}};

const lwf_secdef *lwf_sections(void)
{
    return table;
}

const lwf_secdef *lwf_section_def(const char *type)
{
    for (const lwf_secdef *d = table; d->name; ++d) {
        if (strcmp(d->name, type) == 0) return d;
        for (int a = 0; d->aliases[a]; ++a)
            if (strcmp(d->aliases[a], type) == 0) return d;
    }
    return NULL;
}

int lwf_section_is(const lwf_section *s, lwf_sec_kind kind)
{
    const lwf_secdef *d = def_of(s);
    return d && d->kind == kind;
}

lwf_sec_role lwf_section_role(const lwf_section *s)
{
    const lwf_secdef *d = def_of(s);
    return d ? d->role : LWF_ROLE_NONE;
}
