/* lwf train on a grown head ([lwf_softmax]) end to end, on the small synthetic tasks of
 * test_train.c: the warm-up changes only the class layer's new rows (every other value bit for
 * bit the old model's), featext too for the whole run; every -method runs and lwf valid gives
 * the TASK, TASK:old and TASK:new rows; both teachers train identically; a resumed run ends as
 * an uninterrupted one; exemplars= mixes old images in (and needs -teacher online); lwf export
 * of the grown task is a stock classifier that stock `classifier valid` scores as we do. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "layers/layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *dir;
    char *old_data, *new_data, *all_data; /* quadrants (old, 4), tints (new, 4), both (lwf init -grow) */
    char old_weights[4096], exemplars[4096];
} fixture;

static const char *net_head =
    "[net]\nbatch=16\nsubdivisions=1\nheight=12\nwidth=12\nchannels=3\nmomentum=0.9\ndecay=0.0005\n"
    "policy=poly\npower=4\nmin_crop=12\nmax_crop=12\n";
static const char *trunk =
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n";

/* The grown cfg: one head of 4 + 4 classes. */
static char *grown_cfg(fixture *f, const char *name, int warmup, int joint, const char *task_extra, int bias)
{
    char text[8192], fname[256];
    snprintf(text, sizeof text,
             "%slearning_rate=0.05\nwarmup_learning_rate=0.05\nmax_batches=%d\nwarmup_batches=%d\nflip=0\n%s"
             "[task]\nname=all\ndata=%s\n%s"
             "[convolutional]\nfilters=8\nsize=1\nstride=1\npad=1\nactivation=linear\n[avgpool]\n"
             "[lwf_softmax]\nold_classes=4\nbias_correction=%d\n",
             net_head, joint, warmup, trunk, f->all_data, task_extra, bias);
    snprintf(fname, sizeof fname, "%s.cfg", name);
    return tu_write(f->dir, fname, text);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->old_data = tu_make_task(f->dir, "quad", 0, 256, 128, 12, 1);
    f->new_data = tu_make_task(f->dir, "tint", 1, 256, 128, 12, 2);
    char text[4096];
    snprintf(text, sizeof text,
             "%slearning_rate=0.1\nmax_batches=300\n%s[task]\nname=quad\n"
             "[convolutional]\nfilters=4\nsize=1\nstride=1\npad=1\nactivation=linear\n[avgpool]\n[softmax]\n",
             net_head, trunk);
    char *cfg = tu_write(f->dir, "quad.cfg", text), grown[4096];
    int rc = tu_sh("'%s' lwf train '%s' '%s' -seed 11 -quiet > '%s/old-train.log' 2>&1", getenv("DARKNET"),
                   f->old_data, cfg, f->dir);
    snprintf(f->old_weights, sizeof f->old_weights, "%s/backup-quad/quad.weights", f->dir);
    /* the grown .data, .labels and .valid.list */
    snprintf(grown, sizeof grown, "%s/all.cfg", f->dir);
    lwf_err err;
    if (!rc && lwf_init_grow(cfg, f->new_data, f->old_data, grown, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        rc = -1;
    }
    f->all_data = malloc(4096);
    snprintf(f->all_data, 4096, "%s/all.data", f->dir);
    /* 8 old images per class, from the old training list */
    snprintf(f->exemplars, sizeof f->exemplars, "%s/exemplars.list", f->dir);
    if (!rc) rc = tu_sh("'%s/scripts/pick_exemplars.sh' '%s' 8 > '%s'", tu_root(), f->old_data, f->exemplars);
    free(cfg);
    if (rc != 0) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmdir(f->dir);
    free(f->dir);
    free(f->old_data);
    free(f->new_data);
    free(f->all_data);
    free(f);
    return 0;
}

static int train(fixture *f, const char *cfg, const char *weights, const char *flags)
{
    return tu_sh("'%s' lwf train '%s' '%s' '%s' -quiet %s >> '%s.log' 2>&1", getenv("DARKNET"), f->all_data, cfg,
                 weights, flags, cfg);
}

static char *out_path(fixture *f, const char *name, const char *suffix)
{
    char *p = malloc(4096);
    assert_non_null(p);
    snprintf(p, 4096, "%s/backup-tint/%s%s", f->dir, name, suffix);
    return p;
}

/* The model of cfg with `weights` loaded (the old model's file or a whole one). */
static lwf_model *loaded(const char *cfg, const char *weights)
{
    lwf_model *m = tu_load(cfg, 1);
    int whole;
    lwf_err err;
    if (lwf_weights_load_model(m, weights, &whole, NULL, &err)) fail_msg("%s", err.msg);
    return m;
}

/* Every stored value of a and b is equal bit for bit except the class layer's rows K.. (which
 * must differ when `new_changed`). */
static void check_only_new_rows(lwf_model *a, lwf_model *b, int new_changed)
{
    const lwf_task *t = &a->tasks[a->new_task];
    for (int i = 0; i < a->net->n; ++i) {
        layer *la = &a->net->layers[i], *lb = &b->net->layers[i];
        const lwf_layer_kind *k = lwf_layer_kind_of(la);
        for (int j = 0; j < k->nstored; ++j) {
            const lwf_array *arr = &k->stored[j];
            size_t n = lwf_array_floats(la, k, arr), keep = n;
            if (i == t->class_layer) keep = (size_t)t->old_classes * lwf_array_unit_floats(la, k, arr);
            if (memcmp(lwf_array_data(la, arr), lwf_array_data(lb, arr), keep * sizeof(float)))
                fail_msg("layer %d %s: an old value changed", i, arr->name);
            if (i == t->class_layer && new_changed && !strcmp(arr->name, "weights") &&
                !memcmp(lwf_array_data(la, arr) + keep, lwf_array_data(lb, arr) + keep, (n - keep) * sizeof(float)))
                fail_msg("layer %d: the new rows did not learn", i);
        }
    }
}

/* The warm-up (and featext all along) changes only the class layer's new rows; joint
 * training then changes the old part. */
static void test_warmup_trains_new_rows_only(void **state)
{
    fixture *f = *state;
    char *cfg = grown_cfg(f, "gwarm", 12, 6, "", 0), *fe = grown_cfg(f, "gfe", 4, 8, "", 0);
    assert_int_equal(train(f, cfg, f->old_weights, "-seed 3 -stop 12"), 0);
    assert_int_equal(train(f, fe, f->old_weights, "-seed 3 -method featext"), 0);
    char *bk = out_path(f, "gwarm", ".backup"), *few = out_path(f, "gfe", ".weights");
    lwf_model *old = loaded(cfg, f->old_weights), *warm = loaded(cfg, bk), *fm = loaded(fe, few);
    check_only_new_rows(old, warm, 1);
    check_only_new_rows(old, fm, 1);
    /* the joint phase changes the old rows */
    assert_int_equal(train(f, cfg, bk, "-seed 3"), 0);
    char *w = out_path(f, "gwarm", ".weights");
    lwf_model *joint = loaded(cfg, w);
    const lwf_task *t = &old->tasks[0];
    layer *lo = &old->net->layers[t->class_layer], *lj = &joint->net->layers[t->class_layer];
    assert_memory_not_equal(lo->weights, lj->weights, (size_t)t->old_classes * lo->nweights / lo->n * sizeof(float));
    lwf_model_free(old);
    lwf_model_free(warm);
    lwf_model_free(fm);
    lwf_model_free(joint);
    free(cfg);
    free(fe);
    free(bk);
    free(few);
    free(w);
}

/* Every method trains a grown head; lwf valid prints all, all:old and all:new, their image
 * counts the valid lists' (128 + 128). */
static void test_every_method(void **state)
{
    fixture *f = *state;
    const char *methods[] = {"lwf", "finetune", "featext", "joint"};
    for (int i = 0; i < 4; ++i) {
        char name[64], flags[128];
        snprintf(name, sizeof name, "gm-%s", methods[i]);
        char *cfg = grown_cfg(f, name, 20, 40, "", 0);
        snprintf(flags, sizeof flags, "-seed 4 -method %s", methods[i]);
        if (train(f, cfg, f->old_weights, flags)) fail_msg("-method %s failed (see %s.log)", methods[i], cfg);
        char *w = out_path(f, name, ".weights");
        tu_valid_row all = tu_valid(cfg, w, "", "all"), o = tu_valid(cfg, w, "", "all:old"),
                     n = tu_valid(cfg, w, "", "all:new");
        print_message("# %-8s all %.4f old %.4f new %.4f\n", methods[i], all.top1, o.top1, n.top1);
        assert_int_equal(all.images, 256);
        assert_int_equal(o.images, 128);
        assert_int_equal(n.images, 128);
        assert_true(fabs(all.top1 - (o.top1 + n.top1) / 2) < 1e-3);
        assert_true(n.top1 > 0.5); /* the new classes were learned */
        free(w);
        free(cfg);
    }
}

/* With augmentation off, -teacher record and online give the same weights; a run stopped and
 * resumed ends with the weights of an uninterrupted one. */
static void test_teachers_and_resume(void **state)
{
    fixture *f = *state;
    char *a = grown_cfg(f, "grec", 6, 10, "", 1), *b = grown_cfg(f, "gonl", 6, 10, "", 1),
         *c = grown_cfg(f, "gres", 6, 10, "", 1);
    assert_int_equal(train(f, a, f->old_weights, "-seed 5 -teacher record"), 0);
    assert_int_equal(train(f, b, f->old_weights, "-seed 5 -teacher online"), 0);
    assert_int_equal(train(f, c, f->old_weights, "-seed 5 -teacher online -stop 9"), 0);
    char *bk = out_path(f, "gres", ".backup");
    assert_int_equal(train(f, c, bk, "-teacher online"), 0);
    size_t na, nb, nc;
    char *wa = out_path(f, "grec", ".weights"), *wb = out_path(f, "gonl", ".weights"), *wc = out_path(f, "gres", ".weights");
    unsigned char *x = tu_slurp(wa, &na), *y = tu_slurp(wb, &nb), *z = tu_slurp(wc, &nc);
    assert_int_equal(na, nb);
    assert_int_equal(na, nc);
    assert_memory_equal(x, y, na);
    assert_memory_equal(x, z, na);
    /* the bias correction wrote the weights before it beside them, and changed the new rows only */
    char *u = out_path(f, "grec", ".uncorrected.weights");
    lwf_model *mu = loaded(a, u), *mw = loaded(a, wa);
    check_only_new_rows(mu, mw, 1);
    lwf_model_free(mu);
    lwf_model_free(mw);
    free(x);
    free(y);
    free(z);
    free(u);
    free(wa);
    free(wb);
    free(wc);
    free(bk);
    free(a);
    free(b);
    free(c);
}

/* exemplars= mixes old-class images into every batch: fine-tuning with them keeps more of the
 * old classes than without; -teacher record is refused with them. */
static void test_exemplars(void **state)
{
    fixture *f = *state;
    char extra[4200];
    snprintf(extra, sizeof extra, "exemplars=%s\nexemplar_share=0.5\n", f->exemplars);
    char *no = grown_cfg(f, "gnoex", 10, 60, "", 0), *ex = grown_cfg(f, "gex", 10, 60, extra, 0);
    assert_int_equal(train(f, no, f->old_weights, "-seed 6 -method finetune"), 0);
    assert_int_equal(train(f, ex, f->old_weights, "-seed 6 -method finetune"), 0);
    char *wn = out_path(f, "gnoex", ".weights"), *we = out_path(f, "gex", ".weights");
    tu_valid_row n = tu_valid(no, wn, "", "all:old"), e = tu_valid(ex, we, "", "all:old");
    print_message("# old classes after fine-tuning: %.4f without exemplars, %.4f with\n", n.top1, e.top1);
    assert_true(e.top1 > n.top1 + 0.25);
    assert_int_not_equal(train(f, ex, f->old_weights, "-seed 6 -method lwf -teacher record -clear"), 0);
    assert_int_equal(train(f, ex, f->old_weights, "-seed 6 -method lwf -teacher online -clear"), 0);
    free(wn);
    free(we);
    free(no);
    free(ex);
}

/* lwf export of the grown task: a stock classifier over 8 classes; stock `classifier valid`
 * on it gives our top-1 and top-2. */
static void test_export_agrees_with_stock(void **state)
{
    fixture *f = *state;
    char *cfg = grown_cfg(f, "gexp", 10, 20, "", 1);
    assert_int_equal(train(f, cfg, f->old_weights, "-seed 7"), 0);
    char *w = out_path(f, "gexp", ".weights"), oc[4096], ow[4096];
    snprintf(oc, sizeof oc, "%s/stock-all.cfg", f->dir);
    snprintf(ow, sizeof ow, "%s/stock-all.weights", f->dir);
    lwf_err err;
    if (lwf_export(cfg, w, "all", oc, ow, &err)) fail_msg("%s", err.msg);
    char *text = (char *)tu_slurp(oc, NULL);
    assert_null(strstr(text, "lwf_"));
    assert_non_null(strstr(text, "[softmax]"));
    tu_stock_row s = tu_stock_valid(f->all_data, oc, ow);
    tu_valid_row ours = tu_valid(cfg, w, "", "all");
    print_message("# stock top-1 %.4f top-%d %.4f; ours %.4f %.4f\n", s.top1, s.k, s.topk, ours.top1, ours.topk);
    assert_int_equal(s.images, 256);
    assert_true(fabs(s.top1 - ours.top1) < 1e-4 && fabs(s.topk - ours.topk) < 1e-4);
    free(text);
    free(w);
    free(cfg);
}

/* A multi-head model answered task-agnostically: lwf valid -merged over both tasks' valid
 * images (the heads calibrated on the new task's training images), and the stock classifier
 * of lwf export ... all (the calibration a [connected] layer), scored by stock `classifier
 * valid`, agree; the calibration changes the answer of the plain more confident head
 * (-calib 0). */
static void test_merged_agrees_with_stock(void **state)
{
    fixture *f = *state;
    char text[8192];
    const char *hd = "[convolutional]\nfilters=4\nsize=1\nstride=1\npad=1\nactivation=linear\n[avgpool]\n";
    snprintf(text, sizeof text,
             "%slearning_rate=0.05\nwarmup_learning_rate=0.05\nmax_batches=20\nwarmup_batches=10\nflip=0\n%s"
             "[task]\nname=quad\ndata=%s\n%s[lwf_distill]\n[task]\nname=tint\ndata=%s\n%s[softmax]\n",
             net_head, trunk, f->old_data, hd, f->new_data, hd);
    char *cfg = tu_write(f->dir, "mh.cfg", text);
    assert_int_equal(tu_sh("'%s' lwf train '%s' '%s' '%s' -seed 8 -quiet >> '%s.log' 2>&1", getenv("DARKNET"),
                           f->new_data, cfg, f->old_weights, cfg),
                     0);
    char *w = out_path(f, "mh", ".weights"), oc[4096], ow[4096], od[4096];
    snprintf(oc, sizeof oc, "%s/merged.cfg", f->dir);
    snprintf(ow, sizeof ow, "%s/merged.weights", f->dir);
    snprintf(od, sizeof od, "%s/merged.data", f->dir);
    lwf_err err;
    if (lwf_export(cfg, w, "all", oc, ow, &err)) fail_msg("%s", err.msg);
    char *exported = (char *)tu_slurp(oc, NULL);
    assert_null(strstr(exported, "lwf_"));
    assert_non_null(strstr(exported, "[connected]\noutput=8\nactivation=linear\n"));
    tu_stock_row s = tu_stock_valid(od, oc, ow);
    tu_valid_row ours = tu_valid(cfg, w, "-merged", "all"), plain = tu_valid(cfg, w, "-merged -calib 0", "all"),
                 q = tu_valid(cfg, w, "", "quad"), t = tu_valid(cfg, w, "", "tint");
    print_message("# merged: stock %.4f (%d images), ours %.4f, uncalibrated %.4f; heads alone %.4f %.4f\n", s.top1,
                  s.images, ours.top1, plain.top1, q.top1, t.top1);
    assert_int_equal(s.images, 256);
    assert_int_equal(ours.images, 256);
    assert_int_equal(plain.images, 256);
    assert_true(fabs(s.top1 - ours.top1) < 1e-4);
    assert_true(fabs(plain.top1 - ours.top1) > 0.01);
    assert_true(ours.top1 > 0.3);
    free(exported);
    free(w);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warmup_trains_new_rows_only), cmocka_unit_test(test_every_method),
        cmocka_unit_test(test_teachers_and_resume), cmocka_unit_test(test_exemplars),
        cmocka_unit_test(test_export_agrees_with_stock), cmocka_unit_test(test_merged_agrees_with_stock),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
