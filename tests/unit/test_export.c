/* lwf export agrees with stock Darknet: an old model trained by /usr/bin/darknet, an LwF
 * cfg written by `lwf init`, a short `lwf train`; each task exported is a stock classifier
 * whose `classifier valid` top-1 and `classifier predict` answers are lwf valid's and lwf
 * predict's for that task.  Exporting the old task from the old weights gives them back. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_VALID 64

/* tu_make_task's labels: kind 0 (bands), kind 1 (tints) */

typedef struct {
    char *dir;
    char *quad_data, *tint_data; /* old task (bands), new task (tints) */
    char old_cfg[4096], old_weights[4096];
    char lwf_cfg[4096], lwf_weights[4096];
} fixture;

static const char *stock_cfg =
    "[net]\nbatch=16\nsubdivisions=1\nheight=12\nwidth=12\nchannels=3\nmomentum=0.9\ndecay=0.0005\n"
    "policy=poly\npower=4\nmin_crop=12\nmax_crop=12\nlearning_rate=0.1\nmax_batches=300\n"
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=1\nstride=1\npad=1\nactivation=linear\n[avgpool]\n[softmax]\ngroups=1\n";

static const char *darknet(void)
{
    return getenv("DARKNET");
}

/* Setup: the two tasks, the old model (stock trainer), `lwf init` + `lwf train` on the new
 * task (warm-up 20, joint 80 iterations; the old task given its data= for lwf valid). */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->quad_data = tu_make_task(f->dir, "quad", 0, 256, N_VALID, 12, 1);
    f->tint_data = tu_make_task(f->dir, "tint", 1, 256, N_VALID, 12, 2);
    char *cfg = tu_write(f->dir, "quad.cfg", stock_cfg);
    snprintf(f->old_cfg, sizeof f->old_cfg, "%s", cfg);
    free(cfg);
    if (tu_sh("cd '%s' && /usr/bin/darknet classifier train '%s' '%s' > stock-train.log 2>&1", f->dir, f->quad_data,
              f->old_cfg))
        return -1;
    snprintf(f->old_weights, sizeof f->old_weights, "%s/backup-quad/quad.weights", f->dir);
    snprintf(f->lwf_cfg, sizeof f->lwf_cfg, "%s/lwf.cfg", f->dir);
    if (tu_sh("'%s' lwf init '%s' '%s' '%s' > '%s/init.log' 2>&1", darknet(), f->old_cfg, f->tint_data, f->lwf_cfg,
              f->dir))
        return -1;
    if (tu_sh("sed -i 's#^name=quad$#name=quad\\ndata=%s#; s/^max_batches=.*/max_batches=80/; "
              "s/^warmup_batches=.*/warmup_batches=20/' '%s'",
              f->quad_data, f->lwf_cfg))
        return -1;
    if (tu_sh("'%s' lwf train '%s' '%s' '%s' -seed 1 -quiet > '%s/train.log' 2>&1", darknet(), f->tint_data,
              f->lwf_cfg, f->old_weights, f->dir))
        return -1;
    snprintf(f->lwf_weights, sizeof f->lwf_weights, "%s/backup-tint/lwf.weights", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmdir(f->dir);
    free(f->dir);
    free(f->quad_data);
    free(f->tint_data);
    free(f);
    return 0;
}

/* top-1 of `task` from `lwf valid -task NAME -csv`. */
static double lwf_top1(const fixture *f, const char *task)
{
    char cmd[16384], out[4096], name[256];
    snprintf(cmd, sizeof cmd, "'%s' lwf valid '%s' '%s' -task %s -csv", darknet(), f->lwf_cfg, f->lwf_weights, task);
    if (tu_capture(out, sizeof out, 0, "%s", cmd)) fail_msg("lwf valid -task %s failed", task);
    int images;
    double top1, topk;
    const char *row = strchr(out, '\n');
    if (strncmp(out, "task,images,top1,topk\n", 22) || !row ||
        sscanf(row + 1, "%255[^,],%d,%lf,%lf", name, &images, &top1, &topk) != 4 || strcmp(name, task) ||
        images != N_VALID)
        fail_msg("lwf valid -task %s printed '%s'", task, out);
    return top1;
}

/* top-1 that stock `classifier valid` prints last ("N: top 1: x, top 2: y"). */
static double stock_top1(const char *datafile, const char *cfg, const char *weights)
{
    char cmd[8192], out[65536];
    snprintf(cmd, sizeof cmd, "/usr/bin/darknet classifier valid '%s' '%s' '%s'", datafile, cfg, weights);
    if (tu_capture(out, sizeof out, 0, "%s", cmd)) fail_msg("stock classifier valid failed on %s", cfg);
    const char *last = out, *p = out;
    while ((p = strstr(p, ": top 1: "))) {
        last = p;
        while (last > out && last[-1] != '\n') --last;
        ++p;
    }
    int n;
    double top1, topk;
    if (sscanf(last, "%d: top 1: %lf, top 2: %lf", &n, &top1, &topk) != 3 || n != N_VALID - 1)
        fail_msg("stock classifier valid printed no final line for %d images:\n%s", N_VALID, out);
    return top1;
}

/* The "pp.pp%: label" lines of a predict output (after `after`, if given), at most 2. */
static int parse_predictions(const char *text, const char *after, double pct[2], char label[2][64])
{
    const char *p = after ? strstr(text, after) : text;
    if (!p) return 0;
    if (after) p += strlen(after);
    int n = 0;
    while (n < 2 && *p) {
        const char *eol = strchr(p, '\n');
        if (sscanf(p, "%lf%%: %63s", &pct[n], label[n]) == 2) ++n;
        else if (n > 0) break;
        if (!eol) break;
        p = eol + 1;
    }
    return n;
}

static char *export_task(const fixture *f, const char *task, const char *weights, const char *tag)
{
    char *cfg = malloc(4096);
    assert_non_null(cfg);
    snprintf(cfg, 4096, "%s/%s-%s.cfg", f->dir, task, tag);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' lwf export '%s' '%s' %s '%s' '%s.weights' > /dev/null 2>&1", darknet(),
             f->lwf_cfg, weights, task, cfg, cfg);
    if (tu_sh("%s", cmd)) fail_msg("lwf export %s failed", task);
    return cfg;
}

/* Every task exported from the trained model: stock valid's top-1 = lwf valid's; stock
 * predict's top-2 lines = lwf predict's on sample images. */
static void test_export_agrees_with_stock(void **state)
{
    fixture *f = *state;
    const char *tasks[2] = {"quad", "tint"}, *datas[2] = {f->quad_data, f->tint_data};
    double top1[2];
    for (int k = 0; k < 2; ++k) {
        char *cfg = export_task(f, tasks[k], f->lwf_weights, "trained");
        char w[4200];
        snprintf(w, sizeof w, "%s.weights", cfg);
        double ours = lwf_top1(f, tasks[k]), theirs = stock_top1(datas[k], cfg, w);
        print_message("# %s: lwf valid top-1 %.4f, stock classifier valid on the export %.4f\n", tasks[k], ours,
                      theirs);
        if (fabs(ours - theirs) > 1e-4) fail_msg("%s: lwf valid %.4f, stock valid %.4f", tasks[k], ours, theirs);
        top1[k] = ours;
        for (int i = 0; i < 3; ++i) {
            char img[4200], cmd[16384], a[65536], b[65536];
            int v = 5 * i + 1; /* valid image v has class v % 4 (tu_make_task) */
            snprintf(img, sizeof img, "%s/img/%sv%04d_%s.png", f->dir, tasks[k], v, tu_labels[k][v % 4]);
            snprintf(cmd, sizeof cmd, "'%s' lwf predict '%s' '%s' '%s' -task %s -top 2", darknet(), f->lwf_cfg,
                     f->lwf_weights, img, tasks[k]);
            if (tu_capture(a, sizeof a, 0, "%s", cmd)) fail_msg("lwf predict failed on %s", img);
            snprintf(cmd, sizeof cmd, "/usr/bin/darknet classifier predict '%s' '%s' '%s' '%s' -top 2", datas[k], cfg,
                     w, img);
            if (tu_capture(b, sizeof b, 0, "%s", cmd)) fail_msg("stock predict failed on %s", img);
            double pa[2], pb[2];
            char la[2][64], lb[2][64];
            char head[64];
            snprintf(head, sizeof head, "%s:\n", tasks[k]);
            if (parse_predictions(a, head, pa, la) != 2 || parse_predictions(b, NULL, pb, lb) != 2)
                fail_msg("cannot read the predictions:\n%s\n---\n%s", a, b);
            for (int j = 0; j < 2; ++j)
                if (strcmp(la[j], lb[j]) || fabs(pa[j] - pb[j]) > 0.011)
                    fail_msg("%s on %s: lwf predict %.2f%% %s, stock predict %.2f%% %s", tasks[k], img, pa[j], la[j],
                             pb[j], lb[j]);
        }
        free(cfg);
    }
    /* guard: both heads answer their task far above chance (0.25), so an export of the
     * wrong head (chance on the other task's labels) could not agree */
    if (top1[0] < 0.5 || top1[1] < 0.5) fail_msg("top-1 quad %.3f, tint %.3f: too low to tell heads apart", top1[0], top1[1]);
}

/* The old task exported from the old (stock-trained) weights is the stock model: the same
 * weights file, byte for byte, and the stock cfg key for key (but max_batches, which the
 * setup changed in the LwF cfg). */
static void test_export_of_old_weights_is_the_stock_model(void **state)
{
    fixture *f = *state;
    char *cfg = export_task(f, "quad", f->old_weights, "old");
    char w[4200];
    snprintf(w, sizeof w, "%s.weights", cfg);
    size_t na, nb;
    unsigned char *a = tu_slurp(f->old_weights, &na), *b = tu_slurp(w, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
    lwf_cfgfile x, y;
    lwf_err err = {{0}};
    if (lwf_cfg_read(f->old_cfg, &x, &err) || lwf_cfg_read(cfg, &y, &err)) fail_msg("%s", err.msg);
    assert_int_equal(x.nsections, y.nsections);
    for (int i = 0; i < x.nsections; ++i) {
        const lwf_section *s = &x.sections[i], *t = &y.sections[i];
        assert_string_equal(s->type, t->type);
        assert_int_equal(s->nopts, t->nopts);
        for (int k = 0; k < s->nopts; ++k) {
            assert_string_equal(s->opts[k].key, t->opts[k].key);
            if (i == 0 && strcmp(s->opts[k].key, "max_batches") == 0) assert_string_equal(t->opts[k].val, "80");
            else assert_string_equal(s->opts[k].val, t->opts[k].val);
        }
    }
    lwf_cfg_free(&x);
    lwf_cfg_free(&y);
    /* the new task's export from the trained model differs from its old-task export */
    char *tcfg = export_task(f, "tint", f->lwf_weights, "check");
    char tw[4200];
    snprintf(tw, sizeof tw, "%s.weights", tcfg);
    a = tu_slurp(w, &na);
    b = tu_slurp(tw, &nb);
    assert_int_equal(na, nb);
    assert_memory_not_equal(a, b, na);
    free(a);
    free(b);
    free(tcfg);
    free(cfg);
}

/* Errors: unknown task (the message lists the tasks), the new task from old-only weights,
 * a weights file of the wrong size, an output that is an input; nothing written. */
static void test_export_errors(void **state)
{
    fixture *f = *state;
    char oc[4200], ow[4200];
    snprintf(oc, sizeof oc, "%s/err.cfg", f->dir);
    snprintf(ow, sizeof ow, "%s/err.weights", f->dir);
    lwf_err err = {{0}};
    assert_int_not_equal(lwf_export(f->lwf_cfg, f->lwf_weights, "nosuch", oc, ow, &err), 0);
    assert_non_null(strstr(err.msg, "nosuch"));
    assert_non_null(strstr(err.msg, "quad"));
    assert_non_null(strstr(err.msg, "tint"));
    assert_int_not_equal(lwf_export(f->lwf_cfg, f->old_weights, "tint", oc, ow, &err), 0);
    assert_non_null(strstr(err.msg, "old network only"));
    /* a 0.2.0 header (20 bytes) and one float */
    char shortw[4200];
    snprintf(shortw, sizeof shortw, "%s/short.weights", f->dir);
    FILE *fp = fopen(shortw, "wb");
    int hdr[5] = {0, 2, 0, 0, 0};
    float one = 1;
    assert_non_null(fp);
    assert_int_equal(fwrite(hdr, sizeof hdr, 1, fp), 1);
    assert_int_equal(fwrite(&one, sizeof one, 1, fp), 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_not_equal(lwf_export(f->lwf_cfg, shortw, "quad", oc, ow, &err), 0);
    assert_non_null(strstr(err.msg, "floats"));
    assert_int_not_equal(lwf_export(f->lwf_cfg, f->lwf_weights, "quad", oc, f->lwf_weights, &err), 0);
    assert_non_null(strstr(err.msg, "input"));
    assert_int_not_equal(lwf_export(f->lwf_cfg, f->lwf_weights, "quad", f->lwf_cfg, ow, &err), 0);
    if (tu_file_size(oc) >= 0 || tu_file_size(ow) >= 0) fail_msg("a failed export wrote %s or %s", oc, ow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_agrees_with_stock),
        cmocka_unit_test(test_export_of_old_weights_is_the_stock_model),
        cmocka_unit_test(test_export_errors),
    };
    return cmocka_run_group_tests_name("export", tests, setup, teardown);
}
