/* lwf train of a detector ([yolo] / [lwf_yolo] cfg, one task): the detection batches (boxes,
 * Darknet's jitter, colour and flip), the [yolo] cost as stock Darknet reports it, stock's
 * learning-rate policy (burn_in included), backups, resume, the CSV log, -valid (lwf map's
 * figures: valid.c) and the chart; -method lwf with the old detector as online teacher of
 * every [lwf_yolo] (teacher.c), finetune, joint.  The classifier's schedule is train.c's;
 * the folder, log, state, progress line and backups (progress.c) are shared. */
#define _POSIX_C_SOURCE 200809L
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One list of training images and the rows of each batch it fills. */
typedef struct {
    lwf_datacfg data;        /* the .data whose train= list it is */
    lwf_list paths;
    lwf_det_data det;        /* jitter, classes its label files may name, id shift */
    lwf_loader *ld;
    int row0, rows;
} det_source;

typedef struct {
    const lwf_train_opts *o;
    lwf_model *m;
    lwf_teacher *teacher;    /* -method lwf on [lwf_yolo]: the old detector, or NULL */
    lwf_datacfg data;        /* the .data of the command line */
    /* (the whole model filled: by a backup, or grown from the old detector's file) */
    int nsrc;
    det_source src[2];       /* the new (or only) task's images first; joint: the old task's */
    lwf_folder dir;
    lwf_log log;
    lwf_detval *valid;       /* -valid N: lwf map's figures on a copy of the weights, or NULL */
    lwf_chart chart;         /* <cfg>.chart.png */
    int K;                   /* old classes of the [lwf_yolo] layers; 0 for plain [yolo] */
    int resume, distill;
    long long total;
    unsigned long long seed;
} dtrainer;

/* K (every [lwf_yolo] the same, no [yolo] beside them), the jitter of the last [yolo]
 * (stock train_detector's), and random=1 refused. */
static int yolo_info(dtrainer *t, float *jitter, lwf_err *err)
{
    const lwf_model *m = t->m;
    int plain = 0, K = -1;
    for (int i = 0; i < m->net->n; ++i) {
        const layer *l = &m->net->layers[i];
        if (l->type != YOLO) continue;
        int k = ((const lwf_yolo_params *)lwf_loss_params_of(l))->old_classes;
        if (l->random)
            return lwf_fail(err, "%s:%d: random=1 (stock multi-scale training, which resizes the network) is not "
                                 "supported by lwf train: set random=0",
                            m->cfg, m->line[i]);
        if (k == 0) ++plain;
        else if (K >= 0 && k != K)
            return lwf_fail(err, "%s:%d: old_classes=%d, but an earlier [lwf_yolo] has old_classes=%d", m->cfg,
                            m->line[i], k, K);
        else K = k;
        *jitter = l->jitter;
    }
    if (plain && K > 0)
        return lwf_fail(err, "%s: a grown detector has [lwf_yolo] layers only (it has %d [yolo])", m->cfg, plain);
    t->K = K > 0 ? K : 0;
    return 0;
}

/* A source: the train= list of dpath, every label file read (ids < classes) and every image
 * decoded now, so a bad one stops the run before the backup folder is written to. */
static int load_source(det_source *sc, const char *dpath, int classes, int shift, float jitter, lwf_err *err)
{
    if (lwf_datacfg_read(dpath, &sc->data, err)) return -1;
    if (!sc->data.train) return lwf_fail(err, "%s: no train= list", dpath);
    if (sc->data.classes != classes)
        return lwf_fail(err, "%s: classes=%d, but the detector expects %d here", dpath, sc->data.classes, classes);
    if (lwf_list_read(sc->data.train, &sc->paths, err)) return -1;
    if (sc->paths.n == 0) return lwf_fail(err, "%s: no images", sc->data.train);
    sc->det.jitter = jitter;
    sc->det.classes = classes;
    sc->det.shift = shift;
    for (int i = 0; i < sc->paths.n; ++i) {
        lwf_err e;
        image im;
        char *lp = lwf_label_path(sc->paths.items[i]);
        lwf_boxes bs;
        int rc = !lp ? lwf_fail(&e, "out of memory") : lwf_boxes_read(lp, classes, &bs, &e);
        free(lp);
        if (!rc && (rc = lwf_image_load(sc->paths.items[i], &im, &e)) == 0) free_image(im);
        if (rc) return lwf_fail(err, "%s:%d: %s", sc->data.train, sc->paths.line[i], e.msg);
    }
    return 0;
}

/* The sources: a plain .data's train list; a grown detector's (old_data=, new_data=) new
 * list with ids shifted by K, and with -method joint the old list too, half the batch each. */
static int load_sources(dtrainer *t, float jitter, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    lwf_model *m = t->m;
    int classes = m->tasks[0].classes, K = t->K;
    int joint = o->method == LWF_METHOD_JOINT;
    if (t->data.new_data) {
        if (!t->data.old_data) return lwf_fail(err, "%s: new_data= without old_data=", o->datacfg);
        if (K == 0) return lwf_fail(err, "%s: names old_data and new_data, but %s has no [lwf_yolo]", o->datacfg, o->cfg);
        if (load_source(&t->src[t->nsrc++], t->data.new_data, classes - K, K, jitter, err)) return -1;
        if (joint && load_source(&t->src[t->nsrc++], t->data.old_data, K, 0, jitter, err)) return -1;
    } else {
        if (joint)
            return lwf_fail(err, "%s: -method joint on a detector needs old_data= and new_data= (a grown detector's "
                                 ".data)",
                            o->datacfg);
        if (load_source(&t->src[t->nsrc++], o->datacfg, classes, 0, jitter, err)) return -1;
    }
    network *net = m->net;
    for (int q = 0, row = 0; q < t->nsrc; ++q) {
        t->src[q].rows = net->batch / t->nsrc + (q < net->batch % t->nsrc);
        t->src[q].row0 = row;
        row += t->src[q].rows;
    }
    if (net->batch < t->nsrc) return lwf_fail(err, "%s: batch=%d is too small for -method joint", o->cfg, net->batch);
    return 0;
}

static int load(dtrainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    if (lwf_datacfg_read(o->datacfg, &t->data, err)) return -1;
    if (!t->data.backup) t->data.backup = lwf_strdup("backup");
    lwf_model *m = t->m = lwf_model_load(o->cfg, NULL, err);
    if (!m || lwf_check_image_input(m, err)) return -1;
    if (!m->detector) return lwf_fail(err, "%s: not a detector cfg", o->cfg);
    if (o->method == LWF_METHOD_FEATEXT)
        return lwf_fail(err, "%s: -method featext is not supported for a detector (use lwf, finetune or joint)",
                        o->cfg);
    if (m->warmup_batches > 0)
        return lwf_fail(err, "%s: [net] warmup_batches: a detector trains in one phase (stock burn_in= still applies)",
                        o->cfg);
    if (m->net->max_batches <= 0) return lwf_fail(err, "%s: [net] max_batches=0: nothing to train", o->cfg);
    float jitter = .2f;
    if (yolo_info(t, &jitter, err) || load_sources(t, jitter, err)) return -1;
    t->total = m->net->max_batches;
    t->distill = o->method == LWF_METHOD_LWF && t->K > 0;
    if (t->distill && lwf_teacher_check(m, o->teacher, err)) return -1;
    for (int i = 0; i < m->net->n; ++i) /* the distillation reads the teacher's slices: with none, off */
        if (m->net->layers[i].type == YOLO) lwf_loss_params_of(&m->net->layers[i])->distill = t->distill;
    return lwf_folder_init(&t->dir, t->data.backup, o->cfg, err);
}

/* Layers [from, n) initialised from the seed with Darknet's distributions (libdarknet's
 * parser drew them from rand(), which a run cannot repeat). */
static void init_layers(network *net, int from, unsigned long long seed)
{
    for (int i = from; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type != CONVOLUTIONAL) continue;
        lwf_rng r = lwf_rng_make(seed, 0x594f4c4fULL, (unsigned long long)i);
        float scale = sqrtf(2.0f / (l->size * l->size * l->c / l->groups));
        for (int k = 0; k < l->nweights; ++k) l->weights[k] = scale * lwf_rng_normal(&r);
        memset(l->biases, 0, (size_t)l->n * sizeof(float));
    }
}

/* Floats in the body of a .weights file (-1 and err if it is not one). */
static long long file_floats(const char *path, lwf_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return lwf_fail(err, "%s: cannot open", path);
    int v[3] = {0, 0, 0};
    struct stat st;
    int ok = fread(v, sizeof(int), 3, fp) == 3 && fstat(fileno(fp), &st) == 0;
    fclose(fp);
    long long head = v[0] * 10 + v[1] >= 2 ? 20 : 16;
    if (!ok || st.st_size < head || (st.st_size - head) % 4) return lwf_fail(err, "%s: not a .weights file", path);
    return (st.st_size - head) / 4;
}

/* The weights given: a whole-model file (a backup: resumed unless -clear), the first layers
 * of the model (stock partial weights: the rest from the seed), or nothing (all from the
 * seed).  Anything else is an error naming the counts. */
static int load_old_detector(dtrainer *t, const char *w, long long found, unsigned long long seed, lwf_err *err);

static int start_weights(dtrainer *t, size_t *seen, int *whole, unsigned long long seed, lwf_err *err)
{
    network *net = t->m->net;
    const char *w = t->o->weights;
    *whole = 0;
    if (!w) return 0;
    long long found = file_floats(w, err);
    if (found < 0) return -1;
    int grown = t->K > 0 && (size_t)found != lwf_weights_count(net, net->n) ? load_old_detector(t, w, found, seed, err) : 0;
    if (grown) return grown < 0 ? -1 : net->n;
    for (int upto = 1; upto <= net->n; ++upto)
        if (lwf_weights_count(net, upto) == (size_t)found && (upto == net->n || lwf_weights_count(net, upto + 1) > (size_t)found)) {
            *whole = upto == net->n;
            if (lwf_weights_load(net, w, upto, seen, err)) return -1;
            if (!*whole) fprintf(stderr, "lwf train: %s fills layers 0-%d; the rest start from the seed\n", w, upto - 1);
            return upto;
        }
    return lwf_fail(err, "%s: holds %lld floats: neither the whole model (%zu floats) nor its first layers", w, found,
                    lwf_weights_count(net, net->n));
}

/* Weights, resume state, seed; sets t->resume. */
static int resume_or_start(dtrainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    network *net = t->m->net;
    size_t seen = 0;
    int whole = 0;
    /* the seed before the weights: a grown start draws the new rows from it */
    unsigned long long seed0 = o->seed_set ? o->seed : (unsigned long long)time(NULL);
    int filled = start_weights(t, &seen, &whole, seed0, err);
    if (filled < 0) return -1;
    lwf_state st = {0, 0, 0};
    int have_state = 0;
    t->resume = whole && !o->clear;
    if (t->resume) {
        char sp[4200];
        snprintf(sp, sizeof sp, "%s.state", o->weights);
        lwf_state_file f;
        int r = lwf_state_read(net, sp, &f, err);
        if (r < 0) return -1;
        size_t imgs = (size_t)net->batch * (size_t)net->subdivisions;
        int match = r == 0 && seen % imgs == 0 && (unsigned long long)f.st.iteration == seen / imgs;
        if (match) st = f.st;
        if (match && st.method == (int)o->method) lwf_state_apply(net, &f);
        if (r == 0) lwf_state_file_free(&f);
        if ((long long)(seen / imgs) > t->total)
            return lwf_fail(err, "%s: its header counts %zu images seen, beyond this run's %lld iterations (give "
                                 "-clear to start the count again)",
                            o->weights, seen, t->total);
        if (match) {
            have_state = 1;
            if (st.method != (int)o->method)
                return lwf_fail(err, "%s: this run was trained with another -method; resume it with the same one",
                                o->weights);
        } else {
            fprintf(stderr, "resume: no matching %s: momentum starts from zero\n", sp);
        }
        *net->seen = seen;
    } else {
        *net->seen = 0;
    }
    t->seed = o->seed_set ? o->seed : have_state ? st.seed : seed0;
    srand((unsigned)t->seed);
    if (!whole && filled < net->n) init_layers(net, filled, t->seed);
    return 0;
}

int lwf_detector_old_weights(const lwf_model *student, lwf_model *old, lwf_err *err)
{
    return lwf_detector_copy((lwf_model *)student, old->net, 1, err);
}

/* A grown detector started from the old detector's file: every layer, and in each
 * convolution before an [lwf_yolo] each anchor's box, objectness and K class rows; the new
 * class rows from the seed.  1 if w is such a file (loaded), 0 if not, -1 on error. */
static int load_old_detector(dtrainer *t, const char *w, long long found, unsigned long long seed, lwf_err *err)
{
    lwf_build_opts bo = {1, 1};
    lwf_model *old = lwf_model_load_old_detector(t->m->cfg, &bo, err);
    if (!old) return -1;
    int rc = 0;
    if (lwf_weights_count(old->net, old->net->n) == (size_t)found) {
        rc = lwf_weights_load(old->net, w, old->net->n, NULL, err) ? -1 : 1;
        if (rc == 1) {
            init_layers(t->m->net, 0, seed);
            rc = lwf_detector_copy(t->m, old->net, 0, err) ? -1 : 1;
        }
    }
    lwf_model_free(old);
    if (rc == 1) fprintf(stderr, "lwf train: %s is the old detector: grown to %d classes (new rows from the seed)\n", w,
                         t->m->tasks[0].classes);
    return rc;
}

/* The old detector for the teacher, <cfg>.teacher.weights: written from the student's first
 * weights on a fresh run, kept on resume. */
static int open_teacher(dtrainer *t, lwf_err *err)
{
    char tw[4200];
    snprintf(tw, sizeof tw, "%s", lwf_folder_path(&t->dir, ".teacher.weights"));
    if (t->resume && access(tw, R_OK) != 0)
        return lwf_fail(err, "resume: the old detector %s is missing (it is written at the start of a run); start "
                             "again from the old weights",
                        tw);
    if (!t->resume) {
        lwf_build_opts bo = {1, 1};
        lwf_model *old = lwf_model_load_old_detector(t->m->cfg, &bo, err);
        int rc = !old || lwf_detector_old_weights(t->m, old, err) ||
                 lwf_weights_save(old->net, tw, old->net->n, 0, err);
        lwf_model_free(old);
        if (rc) return -1;
    }
    t->teacher = lwf_teacher_open_detector(t->m, tw, err);
    return t->teacher ? 0 : -1;
}

/* The -method's name (train.c has lwf_method_name, but this file may not call back into
 * train.c, which calls lwf_train_detector). */
static const char *method_str(lwf_method m)
{
    return m == LWF_METHOD_FINETUNE ? "finetune" : m == LWF_METHOD_JOINT ? "joint" : "lwf";
}

static int setup(dtrainer *t, lwf_err *err)
{
    if (load(t, err)) return -1;
    /* before resume_or_start's srand: building it draws libdarknet's rand() */
    if (t->o->valid_every > 0 && !(t->valid = lwf_detval_open(t->m, t->o->datacfg, err))) return -1;
    if (resume_or_start(t, err)) return -1;
    lwf_chart_init(&t->chart, lwf_folder_path(&t->dir, ".chart.png"));
    if (lwf_folder_prepare(&t->dir, t->o->cfg, err)) return -1;
    if (t->distill && open_teacher(t, err)) return -1;
    network *net = t->m->net;
    long long upto = t->resume ? (long long)(*net->seen / ((size_t)net->batch * net->subdivisions)) : 0;
    fprintf(stderr, "lwf train: %s, detector, method %s, teacher %s, seed %llu, %d images, %lld iterations%s\n",
            t->o->cfg, method_str(t->o->method), t->distill ? "online" : "none", t->seed, t->src[0].paths.n,
            t->total, t->resume ? " (resumed)" : "");
    return lwf_log_open(&t->log, lwf_folder_path(&t->dir, ".log.csv"), t->m, upto, err);
}

/* The next rows of every source: images, boxes (ids shifted), the teacher's slices. */
static int fill_batch(dtrainer *t, lwf_err *err)
{
    network *net = t->m->net;
    memset(net->truth, 0, (size_t)net->batch * net->truths * sizeof(float));
    for (int q = 0; q < t->nsrc; ++q) {
        det_source *sc = &t->src[q];
        const lwf_batch *b = lwf_loader_next(sc->ld, err);
        if (!b) return -1;
        float *X = net->input + (size_t)sc->row0 * net->inputs, *truth = net->truth + (size_t)sc->row0 * net->truths;
        memcpy(X, b->X, (size_t)sc->rows * net->inputs * sizeof(float));
        for (int r = 0; r < sc->rows; ++r)
            memcpy(truth + (size_t)r * net->truths, b->boxes + (size_t)r * LWF_MAX_BOXES * 5,
                   LWF_MAX_BOXES * 5 * sizeof(float));
        if (t->teacher && lwf_teacher_fill(t->teacher, b->index, X, sc->rows, truth, net->truths, err)) return -1;
    }
    return 0;
}

/* Darknet's detector loss of the forward just run: the mean of the [yolo] layers' costs per
 * image (calc_network_cost over them, divided by the batch). */
static double yolo_loss(const network *net)
{
    double sum = 0;
    int n = 0;
    for (int i = 0; i < net->n; ++i)
        if (net->layers[i].type == YOLO) sum += lwf_layer_loss(&net->layers[i]), ++n;
    return n ? sum / n : 0;
}

/* One iteration: its subdivisions' passes, the update, the weights check. */
static int iteration(dtrainer *t, long long k, const lwf_plan *plan, double *loss, float *rate, lwf_err *err)
{
    network *net = t->m->net;
    int sub = net->subdivisions;
    *loss = 0;
    for (int s = 0; s < sub; ++s) {
        if (fill_batch(t, err)) return -1;
        *net->seen += (size_t)net->batch;
        lwf_forward(net, plan);
        double l = yolo_loss(net);
        if (!isfinite(l))
            return lwf_fail(err, "iteration %lld: the loss is %g: stopping before writing bad weights; the last good "
                                 "backup is %s (try a lower learning rate)",
                            k + 1, l, lwf_folder_path(&t->dir, ".backup"));
        *loss += l / sub;
        lwf_backward(net, plan);
    }
    *rate = get_current_rate(net); /* stock policy, burn_in included, at this iteration */
    lwf_update(net, plan, *rate);
    if (lwf_weights_nonfinite(net, net->n) >= 0)
        return lwf_fail(err, "iteration %lld: weights of layer %d are not finite: training diverged; the last good "
                             "backup is %s (try a lower learning rate)",
                        k + 1, lwf_weights_nonfinite(net, net->n), lwf_folder_path(&t->dir, ".backup"));
    return 0;
}

/* -valid after iteration `it`: lwf map's means into map (all, old, new) and the line on
 * stdout (with -quiet too: -valid asked for it); *secs its time. */
static int validate(dtrainer *t, long long it, double *map, double *secs, lwf_err *err)
{
    double t0 = what_time_is_it_now();
    int images;
    if (lwf_detval_run(t->valid, t->m->net, map, &images, err)) return -1;
    *secs = what_time_is_it_now() - t0;
    printf("%lld: valid mAP@0.5 %s", it, t->m->tasks[0].name);
    const char *what[] = {"all", "old", "new"};
    for (int q = 0; q < (t->K > 0 ? 3 : 1); ++q) {
        if (t->K > 0) printf(" %s", what[q]);
        if (isnan(map[q])) printf(" -");
        else printf(" %.4f", map[q]);
    }
    printf(" (%d images, %.2f seconds)\n", images, *secs);
    fflush(stdout);
    return 0;
}

static int run(dtrainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    network *net = t->m->net;
    long long imgs = (long long)net->batch * net->subdivisions, start = (long long)(*net->seen / (size_t)imgs);
    int N = t->src[0].paths.n, rc = 0, stop = 0;
    lwf_backup_at at = {0, t->total, N, t->seed};
    lwf_plan plan;
    if (lwf_plan_make(t->m, LWF_PASS_JOINT, &plan)) return lwf_fail(err, "out of memory");
    for (int q = 0; q < t->nsrc && !rc; ++q) {
        det_source *sc = &t->src[q];
        sc->ld = lwf_loader_start_det(&sc->paths, &t->m->aug, &sc->det, net->w, net->h, sc->rows,
                                      t->seed + 7919ULL * (unsigned)q, start * net->subdivisions, err);
        if (!sc->ld) rc = -1;
    }
    double avg = -1, t0 = what_time_is_it_now(), vtime = 0; /* vtime: -valid's seconds so far */
    long long vdone = 0;
    for (long long k = start; !rc && !stop && k < t->total; ++k) {
        double it0 = what_time_is_it_now(), loss = 0, map[3], vs = 0;
        float rate = 0;
        if ((rc = iteration(t, k, &plan, &loss, &rate, err)) != 0) break;
        double secs = what_time_is_it_now() - it0; /* the iteration's own time, without -valid's */
        int last = k + 1 == t->total || (o->stop > 0 && k + 1 >= o->stop);
        int valid = t->valid && ((k + 1) % o->valid_every == 0 || last);
        if (valid && (rc = validate(t, k + 1, map, &vs, err)) != 0) break;
        vtime += vs;
        vdone += valid;
        avg = avg < 0 ? loss : avg * .9 + loss * .1;
        char eta[32]; /* training time per iteration so far, and validation time per round */
        lwf_fmt_time((what_time_is_it_now() - t0 - vtime) / (double)(k + 1 - start) * (double)(t->total - k - 1) +
                         (vdone ? vtime / (double)vdone : 0) *
                             (double)lwf_validations_left(o->valid_every, t->total, k + 1),
                     eta, sizeof eta);
        int scored = 1;
        lwf_iter_report r = {k + 1, (float)((double)*net->seen / N), 0, loss, avg, rate, secs, *net->seen,
                             &scored, &loss, NULL, valid ? map : NULL};
        rc = lwf_report(&t->log, t->m, &r, NULL, eta, o->quiet, err);
        if (!rc && (valid || last || (!t->valid && (k + 1) % LWF_CHART_EVERY == 0)))
            lwf_chart_draw(&t->chart, lwf_folder_path(&t->dir, ".log.csv"), t->m, 0, t->total);
        if (!rc) rc = lwf_save_backups(&t->dir, net, o, &at, k + 1, &stop, err);
    }
    if (!rc && (long long)(*net->seen / (size_t)imgs) >= t->total)
        rc = lwf_folder_save(&t->dir, net, ".weights", NULL, err);
    for (int q = 0; q < t->nsrc; ++q) {
        lwf_loader_stop(t->src[q].ld);
        t->src[q].ld = NULL;
    }
    lwf_plan_free(&plan);
    return rc;
}

int lwf_train_detector(const lwf_train_opts *o, lwf_err *err)
{
    dtrainer t;
    memset(&t, 0, sizeof t);
    t.o = o;
    t.dir.lockfd = t.log.fd = -1;
    int rc = setup(&t, err);
    if (!rc) rc = run(&t, err);
    lwf_log_close(&t.log);
    lwf_model_free(t.m);
    lwf_teacher_close(t.teacher);
    lwf_detval_close(t.valid);
    for (int q = 0; q < t.nsrc; ++q) {
        lwf_loader_stop(t.src[q].ld);
        lwf_list_free(&t.src[q].paths);
        lwf_datacfg_free(&t.src[q].data);
    }
    lwf_datacfg_free(&t.data);
    lwf_folder_close(&t.dir);
    return rc;
}
