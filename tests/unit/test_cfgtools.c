/* lwf init (plugin/tools/cfgtools.c) on cfg/fashion.cfg and on every classifier cfg Debian
 * ships: the old head is found where the cfg's tail says, the written cfg mirrors the stock
 * one key for key, builds, and takes the weights libdarknet saves from the stock cfg as its
 * old part.  Also: init on an LwF cfg (round trip), -split with layer references, errors. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "train/train.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STOCK_DIR "/usr/share/darknet/cfg"

/* libdarknet initialises every weight it allocates with rand_normal()/rand_uniform()
 * (Box-Muller on rand()): 80% of the time spent here, for values no test below reads (the
 * stock-cfg tests compare sizes and structure; the one that compares outputs fills its
 * weights itself).  Defined in this executable, they replace libdarknet's through its PLT
 * (see DARKNET-NOTES.md); the constants keep any use finite. */
float rand_normal(void);
float rand_uniform(float min, float max);
float rand_normal(void) { return 0.01f; }
float rand_uniform(float min, float max) { return 0.5f * (min + max); }
#define NEW_CLASSES 7
/* Same layers, same weights, same input: logits agree up to float rounding. */
#define LOGIT_RTOL 1e-5

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(4096);
    assert_non_null(p);
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

/* ---- the written cfg mirrors the stock one ---- */

static void same_section(const lwf_section *a, const lwf_section *b, const char *what)
{
    if (strcmp(a->type, b->type) || a->nopts != b->nopts)
        fail_msg("%s: [%s] with %d options written for [%s] (line %d) with %d", what, a->type, a->nopts, b->type,
                 b->line, b->nopts);
    for (int i = 0; i < a->nopts; ++i)
        if (strcmp(a->opts[i].key, b->opts[i].key) || strcmp(a->opts[i].val, b->opts[i].val))
            fail_msg("%s: [%s] line %d: wrote %s=%s for %s=%s", what, b->type, b->opts[i].line, a->opts[i].key,
                     a->opts[i].val, b->opts[i].key, b->opts[i].val);
}

/* The value of key in s, or "(none)". */
static const char *val(const lwf_section *s, const char *key)
{
    const lwf_opt *o = lwf_cfg_opt(s, key);
    return o ? o->val : "(none)";
}

/* out = [net]+warm-up keys, trunk, [task] old, head, [lwf_distill], [task] new, head with
 * the class key = new_classes, the stock [softmax]: every stock section and option kept,
 * in order.  head = layer index of the old head's first layer. */
static void check_mirror(const char *stock, const char *out, int head, const char *oldname, const char *newname,
                         const char *newdata, int new_classes)
{
    lwf_cfgfile in, o;
    lwf_err err = {{0}};
    if (lwf_cfg_read(stock, &in, &err)) fail_msg("%s", err.msg);
    if (lwf_cfg_read(out, &o, &err)) fail_msg("%s", err.msg);
    char *text = (char *)tu_slurp(out, NULL);
    if (strchr(text, '#')) fail_msg("%s: the written cfg has a comment", out);
    free(text);
    int hs = head + 1, last = in.nsections - 1, hn = last - hs;
    if (o.nsections != in.nsections + 3 + hn)
        fail_msg("%s: %d sections, want %d", out, o.nsections, in.nsections + 3 + hn);
    /* [net]: the stock options, then the two warm-up keys and precise_bn when absent */
    const lwf_section *n0 = &in.sections[0], *n1 = &o.sections[0];
    int extra = !lwf_cfg_opt(n0, "warmup_batches") + !lwf_cfg_opt(n0, "warmup_learning_rate") +
                !lwf_cfg_opt(n0, "precise_bn");
    if (n1->nopts != n0->nopts + extra) fail_msg("%s: [net] has %d options, want %d", out, n1->nopts, n0->nopts + extra);
    for (int i = 0; i < n0->nopts; ++i)
        if (strcmp(n0->opts[i].key, n1->opts[i].key) || strcmp(n0->opts[i].val, n1->opts[i].val))
            fail_msg("%s: [net] option %d changed", out, i);
    const lwf_opt *mb = lwf_cfg_opt(n0, "max_batches"), *lr = lwf_cfg_opt(n0, "learning_rate");
    char want[64];
    snprintf(want, sizeof want, "%d", mb ? atoi(mb->val) / 2 : 0);
    if (!lwf_cfg_opt(n0, "warmup_batches") && strcmp(val(n1, "warmup_batches"), want))
        fail_msg("%s: warmup_batches=%s, want %s (max_batches / 2)", out, val(n1, "warmup_batches"), want);
    if (!lwf_cfg_opt(n0, "warmup_learning_rate") && strcmp(val(n1, "warmup_learning_rate"), lr ? lr->val : "0.001"))
        fail_msg("%s: warmup_learning_rate=%s, want the learning rate", out, val(n1, "warmup_learning_rate"));
    if (!lwf_cfg_opt(n0, "precise_bn") && strcmp(val(n1, "precise_bn"), "50"))
        fail_msg("%s: precise_bn=%s, want 50 (lwf init's default)", out, val(n1, "precise_bn"));
    for (int i = 1; i < hs; ++i) same_section(&o.sections[i], &in.sections[i], "trunk");
    const lwf_section *t0 = &o.sections[hs];
    if (strcmp(t0->type, "task") || t0->nopts != 1 || strcmp(val(t0, "name"), oldname))
        fail_msg("%s: section %d is not [task] name=%s alone", out, hs, oldname);
    for (int i = 0; i < hn; ++i) same_section(&o.sections[hs + 1 + i], &in.sections[hs + i], "old head");
    const lwf_section *d = &o.sections[hs + 1 + hn];
    if (strcmp(d->type, "lwf_distill") || d->nopts != 2 || strcmp(val(d, "temperature"), "2") ||
        strcmp(val(d, "lambda"), "1"))
        fail_msg("%s: the old head does not end in [lwf_distill] temperature=2 lambda=1", out);
    const lwf_section *t1 = &o.sections[hs + 2 + hn];
    if (strcmp(t1->type, "task") || t1->nopts != 2 || strcmp(val(t1, "name"), newname) ||
        strcmp(val(t1, "data"), newdata))
        fail_msg("%s: no [task] name=%s data=%s for the new head", out, newname, newdata);
    /* the class layer: the last [convolutional]/[connected] of the head */
    int cls = -1;
    for (int i = 0; i < hn; ++i)
        if (!strcmp(in.sections[hs + i].type, "convolutional") || !strcmp(in.sections[hs + i].type, "connected")) cls = i;
    if (cls < 0) fail_msg("%s: the stock head has no class layer", stock);
    for (int i = 0; i < hn; ++i) {
        const lwf_section *a = &o.sections[hs + 3 + hn + i], *b = &in.sections[hs + i];
        if (strcmp(a->type, b->type) || a->nopts != b->nopts) fail_msg("%s: new head section %d differs", out, i);
        for (int k = 0; k < a->nopts; ++k) {
            const char *key = a->opts[k].key;
            if (strcmp(key, b->opts[k].key)) fail_msg("%s: new head key order differs", out);
            if (i == cls && (!strcmp(key, "filters") || !strcmp(key, "output"))) {
                if (atoi(a->opts[k].val) != new_classes)
                    fail_msg("%s: new head %s=%s, want the new class count %d", out, key, a->opts[k].val, new_classes);
            } else if (strcmp(a->opts[k].val, b->opts[k].val)) {
                fail_msg("%s: new head %s=%s, stock %s", out, key, a->opts[k].val, b->opts[k].val);
            }
        }
    }
    same_section(&o.sections[o.nsections - 1], &in.sections[last], "new head's [softmax]");
    lwf_cfg_free(&in);
    lwf_cfg_free(&o);
}

/* ---- every stock classifier ---- */

typedef struct {
    const char *name;   /* file in STOCK_DIR, without .cfg */
    int side;           /* input side that the net accepts */
    int classes;        /* old class count */
    const char *head;   /* the head's layer types, read from the cfg's tail by hand */
    const char *error;  /* instead: lwf init must fail with this text */
} stock_case;

/* Every cfg in STOCK_DIR whose last section is [softmax] (checked by test_all_listed). */
static stock_case cases[] = {
    {"alexnet", 96, 1000, "dropout,connected", NULL},
    {"cifar", 64, 10, "dropout,convolutional,avgpool", NULL},
    {"cifar.test", 64, 10, "dropout,convolutional,avgpool", NULL},
    {"darknet", 64, 1000, "avgpool,convolutional", NULL},
    {"darknet19", 64, 1000, "convolutional,avgpool", NULL},
    {"darknet19_448", 64, 1000, "convolutional,avgpool", NULL},
    {"darknet53", 64, 1000, "avgpool,convolutional", NULL},
    {"darknet53_448", 64, 1000, "avgpool,convolutional", NULL},
    {"densenet201", 64, 1000, "convolutional,avgpool", NULL},
    {"extraction", 64, 1000, "convolutional,avgpool", NULL},
    {"extraction.conv", 64, 1000, "avgpool,connected", NULL},
    {"extraction22k", 64, 21842, "avgpool,connected", NULL},
    {"resnet18", 64, 1000, "avgpool,convolutional", NULL},
    {"resnet34", 64, 1000, "avgpool,convolutional", NULL},
    {"resnet50", 64, 1000, "avgpool,convolutional", NULL},
    {"resnet152", 64, 1000, "convolutional,avgpool", NULL},
    {"resnext50", 64, 1000, "avgpool,convolutional", NULL},
    {"resnext101-32x4d", 64, 1000, "avgpool,convolutional", NULL},
    {"resnext152-32x4d", 64, 1000, "avgpool,convolutional", NULL},
    {"strided", 64, 1000, "dropout,connected", NULL},
    {"tiny", 64, 1000, "convolutional,avgpool", NULL},
    {"vgg-16", 64, 1000, "dropout,connected", NULL},
    /* a Go policy net: the 19x19 scores come through a [reorg], not a class layer */
    {"go", 64, 0, NULL, "class count not found"},
    {"go.test", 64, 0, NULL, "class count not found"},
    /* text models: no image input */
    {"gru", 64, 0, NULL, "no height, width or channels"},
    {"rnn", 64, 0, NULL, "no height, width or channels"},
    {"rnn.train", 64, 0, NULL, "no height, width or channels"},
};
#define NCASES (sizeof cases / sizeof cases[0])

typedef struct {
    char *dir;
    char *newdata;      /* classes=NEW_CLASSES */
} group;

static group G;

static int group_setup(void **state)
{
    (void)state;
    if (chdir(tu_root()) != 0) return -1;
    G.dir = tu_tmpdir();
    G.newdata = tu_write(G.dir, "newtask.data", "classes=7\n");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_rmdir(G.dir);
    free(G.dir);
    free(G.newdata);
    return 0;
}

static LAYER_TYPE type_of(const char *name)
{
    if (strcmp(name, "convolutional") == 0) return CONVOLUTIONAL;
    if (strcmp(name, "connected") == 0) return CONNECTED;
    if (strcmp(name, "avgpool") == 0) return AVGPOOL;
    if (strcmp(name, "dropout") == 0) return DROPOUT;
    fail_msg("unknown type %s in the test table", name);
    return BLANK;
}

/* The layers of task t (between its [task] and its loss) have the types in `types`. */
static void check_head_types(const lwf_model *m, const lwf_task *t, const char *types, const char *name)
{
    char copy[256], *save = NULL;
    snprintf(copy, sizeof copy, "%s", types);
    int i = t->first + 1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save), ++i) {
        if (i >= t->loss) fail_msg("%s: head of %s is shorter than %s", name, t->name, types);
        if (m->net->layers[i].type != type_of(tok))
            fail_msg("%s: head of %s: layer %d has type %d, want %s", name, t->name, i, (int)m->net->layers[i].type,
                     tok);
    }
    if (i != t->loss) fail_msg("%s: head of %s is longer than %s", name, t->name, types);
}

static int count_items(const char *types)
{
    int n = 1;
    for (const char *p = types; *p; ++p) n += *p == ',';
    return n;
}

/* init on the stock cfg: the head the table says, a faithful copy, a cfg that builds, and
 * the stock weights (libdarknet's save_weights) as its old part with exactly matching sizes. */
static void test_stock(void **state)
{
    const stock_case *c = *state;
    double t0 = tu_now();
    char src[4096], file[256], out[4096];
    snprintf(src, sizeof src, "%s/%s.cfg", STOCK_DIR, c->name);
    if (tu_file_size(src) < 0) skip();
    snprintf(file, sizeof file, "%s.cfg", c->name);
    char *small = tu_small_cfg(G.dir, src, file, c->side, c->error == NULL);
    snprintf(out, sizeof out, "%s/%s-lwf.cfg", G.dir, c->name);
    lwf_err err = {{0}};
    lwf_init_info info;
    int rc = lwf_init_cfg(small, G.newdata, out, -1, &info, &err);
    if (c->error) {
        if (rc == 0) fail_msg("%s: lwf init succeeded, want an error '%s'", c->name, c->error);
        if (!strstr(err.msg, c->error) || !strstr(err.msg, small))
            fail_msg("%s: error '%s' should name the cfg and say '%s'", c->name, err.msg, c->error);
        if (tu_file_size(out) >= 0) fail_msg("%s: a failed init wrote %s", c->name, out);
        free(small);
        return;
    }
    if (rc) fail_msg("%s: %s", c->name, err.msg);

    network *net = parse_network_cfg(small);
    if (!net || net->layers[net->n - 1].type != SOFTMAX) fail_msg("libdarknet did not build %s", small);
    int nstock = net->n;
    char weights[4096];
    snprintf(weights, sizeof weights, "%s/%s.weights", G.dir, c->name);
    save_weights(net, weights);
    free_network(net);
    struct stat st;
    assert_int_equal(stat(weights, &st), 0);
    size_t floats = ((size_t)st.st_size - 20) / 4;

    int hn = count_items(c->head);
    if (info.head != nstock - 1 - hn)
        fail_msg("%s: old head starts at layer %d, want %d (%s before the [softmax])", c->name, info.head,
                 nstock - 1 - hn, c->head);
    if (info.old_classes != c->classes || info.new_classes != NEW_CLASSES || info.from_lwf || info.old_heads != 1)
        fail_msg("%s: init says %d old classes, %d new, from_lwf %d, %d old heads", c->name, info.old_classes,
                 info.new_classes, info.from_lwf, info.old_heads);
    if (strcmp(info.old_task, c->name) || strcmp(info.new_task, "newtask"))
        fail_msg("%s: tasks named '%s' and '%s'", c->name, info.old_task, info.new_task);
    check_mirror(small, out, info.head, c->name, "newtask", G.newdata, NEW_CLASSES);

    lwf_model *m = tu_load(out, 1);
    if (m->trunk != info.head || m->ntasks != 2 || m->new_task != 1)
        fail_msg("%s: built trunk %d, %d tasks", c->name, m->trunk, m->ntasks);
    const lwf_task *o = &m->tasks[0], *n = &m->tasks[1];
    lwf_task_loss ol = lwf_task_loss_of(m, 0);
    if (strcmp(o->name, c->name) || o->is_new || o->classes != c->classes || ol.temperature != 2 || ol.lambda != 1 ||
        o->data)
        fail_msg("%s: old task '%s' new=%d %d classes T=%g lambda=%g", c->name, o->name, o->is_new, o->classes,
                 ol.temperature, ol.lambda);
    if (strcmp(n->name, "newtask") || !n->is_new || n->classes != NEW_CLASSES || !n->data ||
        strcmp(n->data, G.newdata))
        fail_msg("%s: new task '%s' new=%d %d classes", c->name, n->name, n->is_new, n->classes);
    check_head_types(m, o, c->head, c->name);
    check_head_types(m, n, c->head, c->name);
    size_t want = lwf_weights_count(m->net, lwf_old_layers(m));
    if (want != floats)
        fail_msg("%s: stock weights hold %zu floats, the old part needs %zu", c->name, floats, want);
    int whole = -1;
    if (lwf_weights_load_model(m, weights, &whole, NULL, &err)) fail_msg("%s: %s", c->name, err.msg);
    assert_int_equal(whole, 0);
    print_message("# %s at %dx%d: head from layer %d (%s), %zu floats, %.2f s\n", c->name, c->side, c->side,
                  info.head, c->head, floats, tu_now() - t0);
    lwf_model_free(m);
    unlink(weights);
    free(small);
}

/* The table covers every cfg Debian ships that ends in [softmax]. */
static void test_all_listed(void **state)
{
    (void)state;
    DIR *d = opendir(STOCK_DIR);
    if (!d) skip();
    struct dirent *e;
    int classifiers = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".cfg")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", STOCK_DIR, e->d_name);
        lwf_cfgfile cf;
        lwf_err err;
        if (lwf_cfg_read(path, &cf, &err)) continue;
        int softmax = strcmp(cf.sections[cf.nsections - 1].type, "softmax") == 0;
        lwf_cfg_free(&cf);
        if (!softmax) continue;
        ++classifiers;
        int listed = 0;
        for (size_t i = 0; i < NCASES; ++i)
            if (strlen(cases[i].name) == len - 4 && strncmp(cases[i].name, e->d_name, len - 4) == 0) listed = 1;
        if (!listed) fail_msg("%s ends in [softmax] but is not in the test table", path);
    }
    closedir(d);
    if (classifiers < 11) fail_msg("only %d classifier cfgs in %s", classifiers, STOCK_DIR);
}

/* ---- cfg/fashion.cfg, -split, round trips ---- */

static void test_fashion(void **state)
{
    (void)state;
    char *out = path_in(G.dir, "fashion-lwf.cfg");
    lwf_err err = {{0}};
    lwf_init_info info;
    if (lwf_init_cfg("cfg/fashion.cfg", "cfg/fashion-b.data", out, -1, &info, &err)) fail_msg("%s", err.msg);
    assert_int_equal(info.head, 5);
    check_mirror("cfg/fashion.cfg", out, 5, "fashion", "fashion-b", "cfg/fashion-b.data", 5);
    lwf_model *m = tu_load(out, 1);
    assert_int_equal(m->trunk, 5);
    assert_string_equal(m->tasks[0].name, "fashion");
    assert_string_equal(m->tasks[1].name, "fashion-b");
    assert_int_equal(m->tasks[1].classes, 5);
    assert_int_equal(m->warmup_batches, 234);
    assert_true(fabsf(m->warmup_learning_rate - 0.1f) < 1e-7f);
    /* stock weights load as the old part */
    network *net = parse_network_cfg("cfg/fashion.cfg");
    char *w = path_in(G.dir, "fashion.weights");
    save_weights(net, w);
    free_network(net);
    int whole = -1;
    if (lwf_weights_load_model(m, w, &whole, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(whole, 0);
    lwf_model_free(m);
    free(w);
    free(out);
}

/* An LwF cfg's heads, in order. */
typedef struct {
    const char *name;
    int classes, is_new;
    float T, lambda;
    const char *data;
} head_want;

static void check_heads(const char *cfg, const head_want *w, int n)
{
    lwf_model *m = tu_load(cfg, 1);
    if (m->ntasks != n) fail_msg("%s: %d tasks, want %d", cfg, m->ntasks, n);
    for (int k = 0; k < n; ++k) {
        const lwf_task *t = &m->tasks[k];
        lwf_task_loss tl = lwf_task_loss_of(m, k);
        if (strcmp(t->name, w[k].name) || t->classes != w[k].classes || t->is_new != w[k].is_new ||
            (!t->is_new && (tl.temperature != w[k].T || tl.lambda != w[k].lambda)) ||
            (w[k].data ? !t->data || strcmp(t->data, w[k].data) : t->data != NULL))
            fail_msg("%s: task %d is '%s' (%d classes, new=%d, T=%g, lambda=%g, data=%s), want '%s' (%d, %d, %g, %g, "
                     "%s)",
                     cfg, k, t->name, t->classes, t->is_new, tl.temperature, tl.lambda, t->data ? t->data : "-",
                     w[k].name, w[k].classes, w[k].is_new, w[k].T, w[k].lambda, w[k].data ? w[k].data : "-");
    }
    lwf_model_free(m);
}

/* init on an LwF cfg: every old head kept in order (names, classes, T, lambda, data), the
 * [softmax] head turned old, one new head; the previous run's whole-model weights are the
 * new cfg's old part; a clashing task name gets a suffix. */
static void test_init_on_lwf_cfg(void **state)
{
    (void)state;
    char *a = path_in(G.dir, "rt-a.cfg"), *b = path_in(G.dir, "rt-b.cfg"), *b2 = path_in(G.dir, "rt-b2.cfg");
    char *c = path_in(G.dir, "rt-c.cfg"), *d = path_in(G.dir, "rt-d.cfg");
    lwf_err err = {{0}};
    lwf_init_info info;
    if (lwf_init_cfg("cfg/fashion.cfg", "cfg/fashion-b.data", a, -1, NULL, &err)) fail_msg("%s", err.msg);
    if (lwf_init_cfg(a, "cfg/fashion-t3.data", b, -1, &info, &err)) fail_msg("%s", err.msg);
    assert_int_equal(info.from_lwf, 1);
    assert_int_equal(info.old_heads, 2);
    assert_string_equal(info.new_task, "fashion-t3");
    head_want wb[] = {{"fashion", 5, 0, 2, 1, NULL},
                      {"fashion-b", 5, 0, 2, 1, "cfg/fashion-b.data"},
                      {"fashion-t3", 2, 1, 0, 0, "cfg/fashion-t3.data"}};
    check_heads(b, wb, 3);
    /* custom T and lambda on the first head, then one more task */
    assert_int_equal(tu_sh("sed '0,/^temperature=2$/s//temperature=4/; 0,/^lambda=1$/s//lambda=0.5/' '%s' > '%s'", b,
                           b2), 0);
    if (lwf_init_cfg(b2, "cfg/fashion-t4.data", c, -1, &info, &err)) fail_msg("%s", err.msg);
    head_want wc[] = {{"fashion", 5, 0, 4, 0.5f, NULL},
                      {"fashion-b", 5, 0, 2, 1, "cfg/fashion-b.data"},
                      {"fashion-t3", 2, 0, 2, 1, "cfg/fashion-t3.data"},
                      {"fashion-t4", 2, 1, 0, 0, "cfg/fashion-t4.data"}};
    check_heads(c, wc, 4);
    /* the sections of b2 come back unchanged, but its [softmax], now [lwf_distill] */
    lwf_cfgfile cb, cc;
    if (lwf_cfg_read(b2, &cb, &err) || lwf_cfg_read(c, &cc, &err)) fail_msg("%s", err.msg);
    assert_true(cc.nsections > cb.nsections);
    for (int i = 1; i < cb.nsections; ++i)
        if (strcmp(cb.sections[i].type, "softmax")) same_section(&cc.sections[i], &cb.sections[i], "kept section");
        else assert_string_equal(cc.sections[i].type, "lwf_distill");
    lwf_cfg_free(&cb);
    lwf_cfg_free(&cc);
    /* a whole-model file of b2 (as lwf train writes) is c's old part */
    lwf_model *mb = tu_load(b2, 1);
    tu_fill_convs(mb->net, 0, 6, 3u);
    char *w = path_in(G.dir, "rt-b2.weights");
    if (lwf_weights_save(mb->net, w, mb->net->n, 0, &err)) fail_msg("%s", err.msg);
    lwf_model *mc = tu_load(c, 1);
    int whole = -1;
    if (lwf_weights_load_model(mc, w, &whole, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(whole, 0);
    for (int i = 0; i < mb->net->n; ++i)
        if (mb->net->layers[i].type == CONVOLUTIONAL &&
            memcmp(mb->net->layers[i].weights, mc->net->layers[i].weights,
                   (size_t)mb->net->layers[i].nweights * sizeof(float)))
            fail_msg("layer %d: weights differ after loading the previous model", i);
    lwf_model_free(mb);
    lwf_model_free(mc);
    /* the same .data again: the new task's name gets a suffix */
    if (lwf_init_cfg(a, "cfg/fashion-b.data", d, -1, &info, &err)) fail_msg("%s", err.msg);
    assert_string_equal(info.new_task, "fashion-b-2");
    free(w);
    free(a);
    free(b);
    free(b2);
    free(c);
    free(d);
}

/* A stock net whose head (from -split 1) reads the trunk through [shortcut] and [route]:
 * init moves the references across the inserted [task] layers, the old head gives the
 * stock logits, and exporting it gives back the stock cfg and the stock weights bytes. */
static const char *refs_cfg =
    "[net]\nbatch=1\nheight=8\nwidth=8\nchannels=3\nlearning_rate=0.1\nmax_batches=10\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[shortcut]\nfrom=-2\nactivation=linear\n"
    "[route]\nlayers=-1,0\n"
    "[convolutional]\nfilters=3\nsize=1\nstride=1\nactivation=linear\n"
    "[avgpool]\n"
    "[softmax]\ngroups=1\n";

static void test_split_with_references(void **state)
{
    (void)state;
    char *stock = tu_write(G.dir, "refs.cfg", refs_cfg), *out = path_in(G.dir, "refs-lwf.cfg");
    char *w = path_in(G.dir, "refs.weights"), *ecfg = path_in(G.dir, "refs-export.cfg");
    char *ew = path_in(G.dir, "refs-export.weights");
    lwf_err err = {{0}};
    lwf_init_info info;
    if (lwf_init_cfg(stock, G.newdata, out, 1, &info, &err)) fail_msg("%s", err.msg);
    assert_int_equal(info.head, 1);
    lwf_model *m = tu_load(out, 1);
    /* 0 conv | 1 task, 2 conv, 3 shortcut, 4 route, 5 conv, 6 avgpool, 7 distill |
     * 8 task, 9 conv, 10 shortcut, 11 route, 12 conv, 13 avgpool, 14 softmax */
    assert_int_equal(m->net->n, 15);
    assert_int_equal(m->net->layers[3].index, 0);
    assert_int_equal(m->net->layers[4].input_layers[0], 3);
    assert_int_equal(m->net->layers[4].input_layers[1], 0);
    assert_int_equal(m->net->layers[10].index, 0);
    assert_int_equal(m->net->layers[11].input_layers[0], 10);
    assert_int_equal(m->net->layers[11].input_layers[1], 0);
    assert_int_equal(m->tasks[1].classes, NEW_CLASSES);

    network *net = parse_network_cfg(stock);
    tu_fill_convs(net, 0, 6, 11u);
    save_weights(net, w);
    int whole = -1;
    if (lwf_weights_load_model(m, w, &whole, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(whole, 0);
    float x[8 * 8 * 3];
    unsigned st = 5u;
    tu_fill(x, sizeof x / sizeof x[0], &st, 0, 1);
    network_predict(net, x);
    network_predict(m->net, x);
    const float *zs = net->layers[net->n - 2].output, *zl = m->net->layers[m->tasks[0].loss - 1].output;
    float spread = 0;
    for (int i = 0; i < 3; ++i) {
        if (fabsf(zs[i] - zl[i]) > LOGIT_RTOL * (1 + fabsf(zs[i])))
            fail_msg("logit %d: old head %.7g, stock %.7g", i, zl[i], zs[i]);
        spread = fmaxf(spread, fabsf(zs[i] - zs[0]));
    }
    assert_true(spread > 1e-3f); /* not a flat answer */
    free_network(net);
    lwf_model_free(m);

    /* export the old task from the stock weights: the stock cfg (normalised) and bytes back */
    if (lwf_export(out, w, "refs", ecfg, ew, &err)) fail_msg("%s", err.msg);
    lwf_cfgfile a, b;
    if (lwf_cfg_read(stock, &a, &err) || lwf_cfg_read(ecfg, &b, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.nsections, b.nsections);
    for (int i = 0; i < a.nsections; ++i) same_section(&b.sections[i], &a.sections[i], "exported cfg");
    lwf_cfg_free(&a);
    lwf_cfg_free(&b);
    size_t la, lb;
    char *ta = (char *)tu_slurp(w, NULL), *tb = (char *)tu_slurp(ew, NULL);
    struct stat sa, sb;
    stat(w, &sa);
    stat(ew, &sb);
    la = (size_t)sa.st_size;
    lb = (size_t)sb.st_size;
    assert_int_equal(la, lb);
    assert_memory_equal(ta, tb, la);
    free(ta);
    free(tb);
    free(stock);
    free(out);
    free(w);
    free(ecfg);
    free(ew);
}

/* -split N on cfg/fashion.cfg: the head starts at layer N; out-of-range N and an N after the
 * class layer are errors that write nothing. */
static void test_split(void **state)
{
    (void)state;
    char *out = path_in(G.dir, "split.cfg");
    lwf_err err = {{0}};
    lwf_init_info info;
    if (lwf_init_cfg("cfg/fashion.cfg", "cfg/fashion-t3.data", out, 4, &info, &err)) fail_msg("%s", err.msg);
    assert_int_equal(info.head, 4);
    check_mirror("cfg/fashion.cfg", out, 4, "fashion", "fashion-t3", "cfg/fashion-t3.data", 2);
    lwf_model *m = tu_load(out, 1);
    assert_int_equal(m->trunk, 4);
    assert_int_equal(m->tasks[0].classes, 5);
    assert_int_equal(m->tasks[1].classes, 2);
    check_head_types(m, &m->tasks[0], "convolutional,convolutional,avgpool", "split");
    assert_int_equal(m->net->layers[m->tasks[1].first + 1].n, 64); /* the mirrored 64-filter conv */
    lwf_model_free(m);
    unlink(out);
    static const struct {
        int n;
        const char *msg;
    } bad[] = {{0, "out of range"}, {6, "after the class-producing layer"}, {7, "out of range"}, {99, "out of range"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        if (lwf_init_cfg("cfg/fashion.cfg", "cfg/fashion-b.data", out, bad[i].n, &info, &err) == 0)
            fail_msg("-split %d accepted", bad[i].n);
        if (!strstr(err.msg, bad[i].msg) || !strstr(err.msg, "-split"))
            fail_msg("-split %d: '%s' should say '%s'", bad[i].n, err.msg, bad[i].msg);
        if (tu_file_size(out) >= 0) fail_msg("-split %d: wrote %s", bad[i].n, out);
    }
    /* -split on an LwF cfg */
    if (lwf_init_cfg("cfg/fashion-lwf.cfg", "cfg/fashion-t3.data", out, 3, &info, &err) == 0)
        fail_msg("-split accepted on an LwF cfg");
    assert_non_null(strstr(err.msg, "-split"));
    free(out);
}

/* Each error names the file at fault and writes nothing. */
static void test_init_errors(void **state)
{
    (void)state;
    char *out = path_in(G.dir, "err-out.cfg");
    static const char *net = "[net]\nheight=8\nwidth=8\nchannels=3\n";
    static const struct {
        const char *name, *text, *msg;
    } bad[] = {
        {"nosoftmax.cfg", "[convolutional]\nfilters=4\nsize=1\n[avgpool]\n", "no final [softmax]"},
        {"nohead.cfg", "[convolutional]\nfilters=4\nsize=1\n[avgpool]\n[softmax]\n", "no head found"},
        {"noclass.cfg", "[convolutional]\nfilters=4\nsize=1\n[maxpool]\nsize=2\nstride=2\n[softmax]\n",
         "class count not found"},
        {"nofilters.cfg", "[convolutional]\nfilters=4\nsize=1\n[convolutional]\nsize=1\n[avgpool]\n[softmax]\n",
         "class count not found"},
        {"twoloss.cfg", "[convolutional]\nfilters=4\nsize=1\n[softmax]\n[convolutional]\nfilters=2\nsize=1\n[softmax]\n",
         "before the final [softmax]"},
        {"groups.cfg", "[convolutional]\nfilters=4\nsize=1\n[convolutional]\nfilters=4\nsize=1\n[softmax]\ngroups=2\n",
         "groups"},
    };
    lwf_err err = {{0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s", net, bad[i].text);
        char *cfg = tu_write(G.dir, bad[i].name, text);
        if (lwf_init_cfg(cfg, G.newdata, out, -1, NULL, &err) == 0) fail_msg("%s accepted", bad[i].name);
        if (!strstr(err.msg, bad[i].msg) || !strstr(err.msg, cfg))
            fail_msg("%s: '%s' should name the cfg and say '%s'", bad[i].name, err.msg, bad[i].msg);
        if (tu_file_size(out) >= 0) fail_msg("%s: wrote %s", bad[i].name, out);
        free(cfg);
    }
    /* unreadable inputs, invalid .data, output = input */
    char *nodata = path_in(G.dir, "missing.data");
    assert_int_not_equal(lwf_init_cfg("cfg/no-such.cfg", G.newdata, out, -1, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "cfg/no-such.cfg"));
    assert_int_not_equal(lwf_init_cfg("cfg/fashion.cfg", nodata, out, -1, NULL, &err), 0);
    assert_non_null(strstr(err.msg, nodata));
    char *noclasses = tu_write(G.dir, "noclasses.data", "train=x.list\n");
    assert_int_not_equal(lwf_init_cfg("cfg/fashion.cfg", noclasses, out, -1, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "classes"));
    char *copy = path_in(G.dir, "self.cfg");
    assert_int_equal(tu_sh("cp cfg/fashion.cfg '%s'", copy), 0);
    assert_int_not_equal(lwf_init_cfg(copy, G.newdata, copy, -1, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "input"));
    if (tu_file_size(out) >= 0) fail_msg("a failed init wrote %s", out);
    /* an existing output is replaced */
    char *old = tu_write(G.dir, "replace.cfg", "old text\n");
    if (lwf_init_cfg("cfg/fashion.cfg", G.newdata, old, -1, NULL, &err)) fail_msg("%s", err.msg);
    char *text = (char *)tu_slurp(old, NULL);
    assert_non_null(strstr(text, "[lwf_distill]"));
    free(text);
    free(old);
    free(copy);
    free(noclasses);
    free(nodata);
    free(out);
}

/* ---- the section table (cfg/sections.c): one list of names for the builder and lwf init ---- */

/* Every name an LwF cfg may use for a section, with the kind it stands for: Darknet's
 * names and aliases (parse_network_cfg's string_to_layer_type) of the supported sections,
 * and the plugin's. */
static const struct {
    const char *name;
    lwf_sec_kind kind;
} section_names[] = {
    {"net", LWF_SEC_NET}, {"network", LWF_SEC_NET}, {"convolutional", LWF_SEC_CONV}, {"conv", LWF_SEC_CONV},
    {"connected", LWF_SEC_CONN}, {"conn", LWF_SEC_CONN}, {"maxpool", LWF_SEC_MAXPOOL}, {"max", LWF_SEC_MAXPOOL},
    {"avgpool", LWF_SEC_AVGPOOL}, {"avg", LWF_SEC_AVGPOOL}, {"dropout", LWF_SEC_DROPOUT},
    {"batchnorm", LWF_SEC_BATCHNORM}, {"softmax", LWF_SEC_SOFTMAX}, {"soft", LWF_SEC_SOFTMAX},
    {"activation", LWF_SEC_ACTIVATION}, {"crop", LWF_SEC_CROP}, {"normalization", LWF_SEC_NORM},
    {"lrn", LWF_SEC_NORM}, {"reorg", LWF_SEC_REORG}, {"route", LWF_SEC_ROUTE}, {"shortcut", LWF_SEC_SHORTCUT},
    {"upsample", LWF_SEC_UPSAMPLE}, {"task", LWF_SEC_TASK}, {"lwf_distill", LWF_SEC_DISTILL},
    {"lwf_softmax", LWF_SEC_GROW}, {"yolo", LWF_SEC_YOLO}, {"lwf_yolo", LWF_SEC_LWF_YOLO}};
#define NNAMES (sizeof section_names / sizeof section_names[0])
/* Darknet sections an LwF cfg refuses as "not supported" (not "unknown"). */
static const char *refused_names[] = {"local", "deconvolutional", "deconv", "rnn", "gru", "lstm", "crnn", "cost",
                                      "detection", "region", "iseg", "l2norm", "logistic"};

/* Each name maps to its kind; each row's names find that row; the rows the builder
 * accepts are exactly the names above, each with a maker. */
static void test_section_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NNAMES; ++i) {
        const lwf_secdef *d = lwf_section_def(section_names[i].name);
        if (!d || d->kind != section_names[i].kind || d->role == LWF_ROLE_NONE)
            fail_msg("[%s]: row %s, kind %d, want kind %d", section_names[i].name, d ? d->name : "(none)",
                     d ? (int)d->kind : -1, (int)section_names[i].kind);
    }
    for (size_t i = 0; i < sizeof refused_names / sizeof refused_names[0]; ++i) {
        const lwf_secdef *d = lwf_section_def(refused_names[i]);
        if (!d || d->role != LWF_ROLE_NONE || d->make) fail_msg("[%s] is not a refused row", refused_names[i]);
    }
    if (lwf_section_def("bogus") || lwf_section_def("Net")) fail_msg("an unknown name has a row");
    int rows = 0;
    for (const lwf_secdef *d = lwf_sections(); d->name; ++d) {
        for (int a = -1; a < 0 || d->aliases[a]; ++a) {
            const char *nm = a < 0 ? d->name : d->aliases[a];
            if (lwf_section_def(nm) != d) fail_msg("[%s] of row %s finds another row", nm, d->name);
            int listed = 0;
            for (size_t i = 0; i < NNAMES; ++i) listed |= strcmp(section_names[i].name, nm) == 0;
            if (d->role != LWF_ROLE_NONE && !listed) fail_msg("[%s] is accepted but not listed in this test", nm);
        }
        if (d->role != LWF_ROLE_NONE && d->role != LWF_ROLE_NET && !d->make) fail_msg("[%s] has no maker", d->name);
        if (!(d->flags & LWF_SEC_PLUGIN) && d->make && !d->parse) fail_msg("stock [%s] has no parser", d->name);
        ++rows;
    }
    if (rows < (int)NNAMES / 2) fail_msg("only %d rows", rows);
}

/* A cfg written with Darknet's aliases builds the same layers as one with the full names. */
static void test_builder_aliases(void **state)
{
    (void)state;
    const char *fmt = "[%s]\nheight=8\nwidth=8\nchannels=3\n[%s]\nfilters=4\nsize=3\npad=1\n[%s]\nsize=2\nstride=2\n"
                      "[%s]\nsize=3\n[task]\nname=a\n[%s]\noutput=3\n[lwf_distill]\n[task]\nname=b\n[%s]\nfilters=2\n"
                      "[%s]\n[%s]\n";
    char text[1024];
    snprintf(text, sizeof text, fmt, "net", "convolutional", "maxpool", "normalization", "connected",
             "convolutional", "avgpool", "softmax");
    char *full = tu_write(G.dir, "names.cfg", text);
    snprintf(text, sizeof text, fmt, "network", "conv", "max", "lrn", "conn", "conv", "avg", "soft");
    char *alias = tu_write(G.dir, "aliases.cfg", text);
    lwf_model *a = tu_load(full, 1), *b = tu_load(alias, 1);
    if (a->net->n != b->net->n || a->trunk != b->trunk || a->ntasks != b->ntasks || a->new_task != b->new_task)
        fail_msg("%s: %d layers, trunk %d; with aliases %d, %d", full, a->net->n, a->trunk, b->net->n, b->trunk);
    for (int i = 0; i < a->net->n; ++i) {
        const layer *x = &a->net->layers[i], *y = &b->net->layers[i];
        if (x->type != y->type || x->outputs != y->outputs)
            fail_msg("layer %d: type %d, %d outputs; with aliases type %d, %d", i, (int)x->type, x->outputs,
                     (int)y->type, y->outputs);
    }
    lwf_model_free(a);
    lwf_model_free(b);
    free(full);
    free(alias);
}

/* lwf init of a stock cfg [net] conv [class] [shape] [softmax] with `name` in one slot. */
static void init_with(const char *slot, const char *name, const lwf_secdef *d)
{
    const char *net = "net", *cls = "connected", *shape = "avgpool", *soft = "softmax", *key = "output";
    if (!strcmp(slot, "net")) net = name;
    if (!strcmp(slot, "class")) cls = name, key = d->class_key;
    if (!strcmp(slot, "shape")) shape = name;
    if (!strcmp(slot, "softmax")) soft = name;
    char text[512];
    snprintf(text, sizeof text, "[%s]\nheight=4\nwidth=4\nchannels=3\n[convolutional]\nfilters=4\nsize=3\npad=1\n"
             "[%s]\n%s=3\n[%s]\n[%s]\n", net, cls, key, shape, soft);
    char *stock = tu_write(G.dir, "slot.cfg", text), *out = path_in(G.dir, "slot-lwf.cfg");
    lwf_init_info info;
    lwf_err err = {{0}};
    if (lwf_init_cfg(stock, G.newdata, out, -1, &info, &err))
        fail_msg("[%s] as the %s: lwf init: %s", name, slot, err.msg);
    if (info.head != 1 || info.old_classes != 3)
        fail_msg("[%s] as the %s: head at %d with %d classes, want 1 and 3", name, slot, info.head, info.old_classes);
    lwf_model *m = tu_load(out, 1);
    LAYER_TYPE want = !strcmp(cls, "connected") ? CONNECTED : CONVOLUTIONAL;
    if (!strcmp(slot, "class")) want = d->kind == LWF_SEC_CONN ? CONNECTED : CONVOLUTIONAL;
    if (m->trunk != 1 || m->net->layers[m->tasks[1].first + 1].type != want || m->tasks[1].classes != NEW_CLASSES)
        fail_msg("[%s] as the %s: the built LwF cfg has trunk %d, new head %d classes", name, slot, m->trunk,
                 m->tasks[1].classes);
    lwf_model_free(m);
    free(stock);
    free(out);
}

/* lwf init knows each section by the table: every name and alias of [net], of a class
 * layer, of a shape-only layer and of [softmax] in its slot of a stock classifier. */
static void test_init_reads_section_table(void **state)
{
    (void)state;
    int tried = 0;
    for (const lwf_secdef *d = lwf_sections(); d->name; ++d) {
        const char *slot = d->role == LWF_ROLE_NET         ? "net"
                           : d->class_key                 ? "class"
                           : d->flags & LWF_SEC_SHAPE_ONLY ? "shape"
                           : d->kind == LWF_SEC_SOFTMAX   ? "softmax"
                                                          : NULL;
        if (!slot) continue;
        for (int a = -1; a < 0 || d->aliases[a]; ++a, ++tried) init_with(slot, a < 0 ? d->name : d->aliases[a], d);
    }
    if (tried < 12) fail_msg("only %d names tried", tried);
}

int main(void)
{
    struct CMUnitTest tests[NCASES + 9];
    size_t n = 0;
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_section_table);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_builder_aliases);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_init_reads_section_table);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_fashion);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_init_on_lwf_cfg);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_split);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_split_with_references);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_init_errors);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_all_listed);
    static char names[NCASES][96];
    for (size_t i = 0; i < NCASES; ++i) {
        snprintf(names[i], sizeof names[i], "lwf init on stock %s.cfg", cases[i].name);
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_stock, &cases[i]);
        tests[n].name = names[i];
        ++n;
    }
    return _cmocka_run_group_tests("cfgtools", tests, n, group_setup, group_teardown);
}
