/* The teacher: the original trunk + old heads, frozen and in inference mode, filling the old
 * heads' truth slices of each batch, online (run per batch) or from recorded responses
 * (computed once, cached in <backup>/<cfg>.teacher).  The schedule that uses it: train.c. */
#define _POSIX_C_SOURCE 200809L
#include "train/train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One distillation target: outputs [from, from + count) of a teacher layer, which go to
 * truth columns [column, column + count) of the student. */
typedef struct {
    int layer;         /* teacher layer whose output holds the logits */
    int from, count;
    int column;        /* first truth column of the slice */
} target;

struct lwf_teacher {
    lwf_teacher_mode mode;
    lwf_model *tm;     /* the frozen original network; NULL once recorded */
    lwf_plan plan;     /* LWF_PASS_TEACHER on tm */
    int ntargets;
    target *targets;   /* (ntargets) in truth-column order */
    int width;         /* floats of all targets of one image: a record row */
    int images;        /* record: rows of `record` */
    float *record;     /* (images, width) recorded targets, in target order, or NULL */
};

int lwf_teacher_check(const lwf_model *m, lwf_teacher_mode mode, lwf_err *err)
{
    if (m->detector && mode == LWF_TEACHER_RECORD)
        return lwf_fail(err, "%s: -teacher record is impossible for a detector (its training images are jittered, "
                             "so the teacher must see each augmented image): use -teacher online",
                        m->cfg);
    if (mode == LWF_TEACHER_RECORD && lwf_augment_is_on(&m->aug, m->net->w))
        return lwf_fail(err, "%s: -teacher record needs augmentation off (recorded responses are for the plain "
                             "image): set flip=0, min_crop=max_crop=width, angle=0, aspect=1, hue=0, "
                             "saturation=1, exposure=1 in [net], or use -teacher online",
                        m->cfg);
    return 0;
}

/* Every old task's logits (its loss layer's input), whole, into its own truth slice. */
static int make_targets(lwf_teacher *t, lwf_err *err)
{
    const lwf_model *tm = t->tm;
    t->targets = calloc((size_t)tm->ntasks + 1, sizeof *t->targets);
    if (!t->targets) return lwf_fail(err, "out of memory");
    for (int k = 0; k < tm->ntasks; ++k) {
        if (tm->tasks[k].is_new) continue;
        target *g = &t->targets[t->ntargets++];
        g->layer = tm->tasks[k].loss - 1;
        g->from = 0;
        g->count = tm->tasks[k].classes;
        g->column = tm->tasks[k].offset;
        t->width += g->count;
    }
    const lwf_task *nt = &tm->tasks[tm->new_task];
    if (nt->old_classes) { /* a grown head: the old model's K logits, after its K + M targets */
        target *g = &t->targets[t->ntargets++];
        g->layer = nt->loss - 1;
        g->from = 0;
        g->count = nt->old_classes;
        g->column = nt->offset + nt->classes;
        t->width += g->count;
    }
    return 0;
}

/* Runs the teacher on X (n rows) and writes its targets into rows of out (row r at
 * out + r * stride): at each target's truth column (packed = 0), or one after the other
 * from column 0 (packed = 1: a record row). */
static void run_teacher(lwf_teacher *t, const float *X, int n, float *out, int stride, int packed)
{
    network *net = t->tm->net;
    memcpy(net->input, X, (size_t)n * net->inputs * sizeof(float));
    lwf_forward(net, &t->plan);
    for (int j = 0, col = 0; j < t->ntargets; col += t->targets[j++].count) {
        const target *g = &t->targets[j];
        const layer *l = &net->layers[g->layer];
        int at = packed ? col : g->column;
        for (int b = 0; b < n; ++b)
            memcpy(out + (size_t)b * stride + at, l->output + (size_t)b * l->outputs + g->from,
                   (size_t)g->count * sizeof(float));
    }
}

/* FNV-1a of n bytes folded into *key. */
static void fold(unsigned long long *key, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; ++i) *key = (*key ^ b[i]) * 1099511628211ULL;
}

static void fold_str(unsigned long long *key, const char *s)
{
    fold(key, s, strlen(s) + 1); /* with its NUL: "ab","c" is not "a","bc" */
}

static void fold_int(unsigned long long *key, long long v)
{
    fold(key, &v, sizeof v);
}

/* What the teacher's network is, as built: every option of every section up to its last
 * old layer (the trunk's activation=, a head's filters=, ...), each old layer's type and
 * output size, how an image becomes its input ([net] size and the crop / colour keys), and
 * the kernels (Darknet's reference or ours: their sums round differently). */
static int fold_network(const lwf_model *tm, unsigned long long *key, lwf_err *err)
{
    lwf_cfgfile cf;
    if (lwf_cfg_read(tm->cfg, &cf, err)) return -1;
    int nold = lwf_teacher_layers(tm);
    for (int i = 1; i < cf.nsections && i <= nold; ++i) { /* section i is layer i - 1 */
        const lwf_section *s = &cf.sections[i];
        fold_str(key, s->type);
        for (int k = 0; k < s->nopts; ++k) {
            fold_str(key, s->opts[k].key);
            fold_str(key, s->opts[k].val);
        }
    }
    lwf_cfg_free(&cf);
    for (int i = 0; i < nold; ++i) {
        fold_int(key, tm->net->layers[i].type);
        fold_int(key, tm->net->layers[i].outputs);
    }
    const lwf_augment *a = &tm->aug;
    long long ints[] = {tm->net->w, tm->net->h, tm->net->c, a->min, a->max, a->flip, a->center, lwf_reference()};
    float floats[] = {a->angle, a->aspect, a->hue, a->saturation, a->exposure};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; ++i) fold_int(key, ints[i]);
    fold(key, floats, sizeof floats);
    return 0;
}

/* The cache key: whatever changes the recorded responses must change it: the list file,
 * every image's path and bytes (an image replaced under its name), the teacher's weights
 * file, and the network as built (fold_network). */
static int cache_key(const lwf_teacher *t, const lwf_teacher_opts *o, unsigned long long *key, lwf_err *err)
{
    *key = 1469598103934665603ULL;
    if (lwf_hash_file(o->list_path, key, err) || lwf_hash_file(o->weights, key, err)) return -1;
    for (int i = 0; i < o->list->n; ++i) {
        fold_str(key, o->list->items[i]);
        lwf_err ierr;
        if (lwf_hash_file(o->list->items[i], key, &ierr))
            return lwf_fail(err, "%s:%d: %s", o->list_path, o->list->line[i], ierr.msg);
    }
    return fold_network(t->tm, key, err);
}

/* 1 if the cache file holds key's responses, all finite (then in t->record); 0 if it is
 * missing, stale or corrupt (said on stderr); -1 with err when it is there but not a
 * regular file (a FIFO is never waited on, nor recorded for: its write would be refused). */
static int read_cache(lwf_teacher *t, const char *path, unsigned long long key, lwf_err *err)
{
    int N = t->images, C = t->width;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) return 0;
    FILE *fp = lwf_open_regular(path, "teacher cache", err);
    if (!fp) return -1;
    unsigned long long k2 = 0;
    int n2 = 0, c2 = 0;
    int ok = fread(&k2, sizeof k2, 1, fp) == 1 && fread(&n2, sizeof n2, 1, fp) == 1 &&
             fread(&c2, sizeof c2, 1, fp) == 1 && k2 == key && n2 == N && c2 == C &&
             fread(t->record, sizeof(float), (size_t)N * C, fp) == (size_t)N * C && fgetc(fp) == EOF;
    fclose(fp);
    /* a finite old network gives finite logits: a NaN or an infinity is a corrupt
     * cache, which would surface later as a NaN loss blamed on the learning rate */
    size_t bad = ok ? lwf_first_nonfinite(t->record, (size_t)N * C) : 0;
    if (ok && bad == (size_t)N * C) {
        fprintf(stderr, "teacher: recorded responses reused from %s\n", path);
        return 1;
    }
    if (ok)
        fprintf(stderr, "teacher: %s is corrupt (value %zu is %g, not finite): recording again\n", path, bad,
                t->record[bad]);
    else
        fprintf(stderr, "teacher: %s is stale (the list, an image, the old weights, the old network's cfg "
                        "sections or the kernels changed): recording again\n",
                path);
    return 0;
}

/* The teacher's targets for every image of the list, plain (centre crop), in list order. */
static int record_all(lwf_teacher *t, const lwf_teacher_opts *o, lwf_err *err)
{
    lwf_model *tm = t->tm;
    int N = t->images, C = t->width, bs = tm->net->batch, inputs = tm->net->inputs;
    fprintf(stderr, "teacher: recording the old network's responses on %d images\n", N);
    float *X = calloc((size_t)bs * inputs, sizeof(float));
    float *rows = calloc((size_t)bs * C, sizeof(float));
    int rc = X && rows ? 0 : lwf_fail(err, "out of memory");
    for (int start = 0; !rc && start < N; start += bs) {
        int n = N - start < bs ? N - start : bs;
        for (int r = 0; r < n && !rc; ++r) {
            image im;
            if (lwf_image_load(o->list->items[start + r], &im, err)) {
                rc = -1;
                break;
            }
            image x = lwf_image_prepare(im, &tm->aug, 0, tm->net->w, tm->net->h, NULL);
            memcpy(X + (size_t)r * inputs, x.data, (size_t)inputs * sizeof(float));
            free_image(x);
            free_image(im);
        }
        if (rc) break;
        run_teacher(t, X, bs, rows, C, 1);
        memcpy(t->record + (size_t)start * C, rows, (size_t)n * C * sizeof(float));
    }
    free(X);
    free(rows);
    if (rc) return -1;
    size_t bad = lwf_first_nonfinite(t->record, (size_t)N * C), img = bad / (size_t)C;
    if (bad < (size_t)N * C)
        return lwf_fail(err, "%s:%d: the old network (%s) answers image '%s' with %g, not a finite value",
                        o->list_path, o->list->line[img], o->weights, o->list->items[img], t->record[bad]);
    return 0;
}

/* The cache file: key, images, width, then the (images, width) floats. */
static int write_cache(const lwf_teacher *t, const char *path, unsigned long long key, lwf_err *err)
{
    int N = t->images, C = t->width;
    size_t len = 16 + (size_t)N * C * sizeof(float);
    unsigned char *buf = malloc(len);
    if (!buf) return lwf_fail(err, "out of memory");
    memcpy(buf, &key, 8);
    memcpy(buf + 8, &N, 4);
    memcpy(buf + 12, &C, 4);
    memcpy(buf + 16, t->record, (size_t)N * C * sizeof(float));
    int rc = lwf_write_file_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

/* Record mode: the recorded responses from the cache, or recorded now and cached. */
static int record_responses(lwf_teacher *t, const lwf_teacher_opts *o, lwf_err *err)
{
    unsigned long long key = 0;
    if (cache_key(t, o, &key, err)) return -1;
    t->images = o->list->n;
    t->record = malloc((size_t)t->images * t->width * sizeof(float));
    if (!t->record) return lwf_fail(err, "out of memory for %d x %d recorded responses", t->images, t->width);
    int got = read_cache(t, o->cache, key, err);
    if (got) return got < 0 ? -1 : 0;
    if (record_all(t, o, err)) return -1;
    return write_cache(t, o->cache, key, err);
}

lwf_teacher *lwf_teacher_open(const lwf_model *m, const lwf_teacher_opts *o, lwf_err *err)
{
    lwf_teacher *t = calloc(1, sizeof *t);
    if (!t) {
        lwf_fail(err, "out of memory");
        return NULL;
    }
    t->mode = o->mode;
    /* its layer table follows the student's, under a line that says what it is */
    fprintf(stderr, "teacher: the original old network (%s), frozen; it runs layers 0-%d of this table:\n",
            o->weights, lwf_old_layers(m) - 1);
    lwf_build_opts bo = {m->net->batch, 0};
    int rc = (t->tm = lwf_model_load(m->cfg, &bo, err)) ? 0 : -1;
    if (!rc) rc = lwf_weights_load(t->tm->net, o->weights, lwf_teacher_layers(t->tm), NULL, err);
    if (!rc && lwf_plan_make(t->tm, LWF_PASS_TEACHER, &t->plan)) rc = lwf_fail(err, "out of memory");
    /* a grown head's logits (not its loss) are the old model's first K */
    const lwf_task *nt = rc ? NULL : &t->tm->tasks[t->tm->new_task];
    for (int i = nt && nt->old_classes ? nt->first : 0; nt && nt->old_classes && i < nt->loss; ++i) t->plan.fwd[i] = 1;
    if (!rc) rc = make_targets(t, err);
    if (!rc && o->mode == LWF_TEACHER_RECORD && (rc = record_responses(t, o, err)) == 0) {
        /* the responses are all it is needed for */
        lwf_plan_free(&t->plan);
        lwf_model_free(t->tm);
        t->tm = NULL;
    }
    if (rc) {
        lwf_teacher_close(t);
        return NULL;
    }
    return t;
}

int lwf_teacher_fill(lwf_teacher *t, const int *index, const float *X, int n, float *truth, int stride,
                     lwf_err *err)
{
    if (!t->record) {
        if (n > t->tm->net->batch)
            return lwf_fail(err, "teacher: %d rows, more than its batch of %d", n, t->tm->net->batch);
        run_teacher(t, X, n, truth, stride, 0);
        return 0;
    }
    for (int r = 0; r < n; ++r) {
        if (index[r] < 0 || index[r] >= t->images)
            return lwf_fail(err, "teacher: image %d is not one of the %d recorded", index[r], t->images);
        const float *rec = t->record + (size_t)index[r] * t->width;
        for (int j = 0; j < t->ntargets; rec += t->targets[j++].count)
            memcpy(truth + (size_t)r * stride + t->targets[j].column, rec, (size_t)t->targets[j].count * sizeof(float));
    }
    return 0;
}

/* A detector's targets: each [lwf_yolo] layer's slice gets the old detector's [yolo] output
 * at the same layer (masks x (4 + 1 + K) planes of w x h, activated). */
static int make_det_targets(lwf_teacher *t, const lwf_model *m, lwf_err *err)
{
    const network *tn = t->tm->net;
    t->targets = calloc((size_t)m->net->n, sizeof *t->targets);
    if (!t->targets) return lwf_fail(err, "out of memory");
    for (int i = 0; i < m->net->n; ++i) {
        const layer *l = &m->net->layers[i];
        if (l->type != YOLO || ((const lwf_yolo_params *)lwf_loss_params_of(l))->old_classes <= 0) continue;
        const lwf_yolo_params *q = (const lwf_yolo_params *)lwf_loss_params_of(l);
        if (tn->layers[i].type != YOLO || tn->layers[i].outputs != l->n * (5 + q->old_classes) * l->w * l->h)
            return lwf_fail(err, "%s: layer %d of the old detector is not the [yolo] its [lwf_yolo] grew from", m->cfg,
                            i);
        target *g = &t->targets[t->ntargets++];
        g->layer = i;
        g->from = 0;
        g->count = tn->layers[i].outputs;
        g->column = q->loss.offset;
        t->width += g->count;
    }
    return 0;
}

lwf_teacher *lwf_teacher_open_detector(const lwf_model *m, const char *weights, lwf_err *err)
{
    lwf_teacher *t = calloc(1, sizeof *t);
    if (!t) {
        lwf_fail(err, "out of memory");
        return NULL;
    }
    t->mode = LWF_TEACHER_ONLINE;
    lwf_build_opts bo = {m->net->batch, 1};
    int rc = (t->tm = lwf_model_load_old_detector(m->cfg, &bo, err)) ? 0 : -1;
    if (!rc) rc = lwf_weights_load(t->tm->net, weights, t->tm->net->n, NULL, err);
    if (!rc && lwf_plan_make(t->tm, LWF_PASS_EVAL, &t->plan)) rc = lwf_fail(err, "out of memory");
    if (!rc) rc = make_det_targets(t, m, err);
    if (rc) {
        lwf_teacher_close(t);
        return NULL;
    }
    return t;
}

void lwf_teacher_close(lwf_teacher *t)
{
    if (!t) return;
    lwf_plan_free(&t->plan);
    lwf_model_free(t->tm);
    free(t->targets);
    free(t->record);
    free(t);
}
