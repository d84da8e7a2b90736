/* The LwF training driver: the schedule (warm-up the new head alone, then train everything
 * jointly) over the training sources, with the teacher filling the old heads' targets
 * (teacher.c), backups in the backup folder (folder.c), the CSV log (log.c) and
 * Darknet-style progress.  Layers: builder.c; passes: step.c. */
#define _POSIX_C_SOURCE 200809L
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LWF_MAX_TASKS 64

/* A task's labelled training images and the rows of each batch they fill. */
typedef struct {
    int task;                /* index of the task whose head they label */
    lwf_datacfg data;
    lwf_list paths, labels;
    int *label;              /* (paths.n) class of each image */
    lwf_loader *ld;
    int row0, rows;          /* rows [row0, row0 + rows) of every batch */
    int exemplars;           /* old-class images of a grown head ([task] exemplars=) */
} source;

typedef struct {
    const lwf_train_opts *o;
    lwf_model *m;            /* the student */
    lwf_teacher *teacher;    /* fills the old heads' targets (-method lwf), or NULL */
    lwf_datacfg data;        /* the new task's .data (command line) */
    int nsrc;
    source src[LWF_MAX_TASKS]; /* labelled images: the new task's, and every task's in joint */
    lwf_folder dir;          /* the backup folder: file names, lock, backups */
    lwf_log log;             /* the CSV log */
    lwf_trainval *valid;     /* -valid N: the tasks' valid lists, or NULL */
    lwf_chart chart;         /* <cfg>.chart.png */
    int resume;              /* continuing a whole-model backup */
    int whole;               /* the weights given are a whole model (a backup, a finished run) */
    int distill;             /* the joint phase uses the old heads' distillation */
    int joint;               /* -method joint: every head learns from its own labels */
    long long warmup, total; /* iterations */
    unsigned long long seed;
} trainer;

static const char *method_names[] = {"lwf", "finetune", "featext", "joint"};

const char *lwf_method_name(lwf_method m)
{
    return (unsigned)m < 4 ? method_names[m] : "?";
}

int lwf_method_parse(const char *name, lwf_method *m)
{
    for (int i = 0; i < 4; ++i)
        if (strcmp(name, method_names[i]) == 0) {
            *m = (lwf_method)i;
            return 0;
        }
    return -1;
}

static const char *bpath(trainer *t, const char *suffix)
{
    return lwf_folder_path(&t->dir, suffix);
}

/* Re-initialises the new head's weights from the seed, with Darknet's distributions (the
 * per-layer-type table says which arrays, and how). */
static void init_new_head(lwf_model *m, unsigned long long seed)
{
    network *net = m->net;
    const lwf_task *t = &m->tasks[m->new_task];
    for (int i = t->first; i < net->n; ++i) {
        if (t->old_classes && i != t->class_layer) continue; /* grown: the old model's layers stay */
        lwf_rng r = lwf_rng_make(seed, 0x4e455748ULL, (unsigned long long)i);
        lwf_layer_init_from(&net->layers[i], &r, t->old_classes); /* a grown class layer: its new rows */
    }
}

/* Darknet's learning-rate policy, counted from the start of the joint phase. */
static float joint_rate(network *net, long long joint_iter)
{
    size_t keep = *net->seen;
    *net->seen = (size_t)joint_iter * net->batch * net->subdivisions;
    float r = get_current_rate(net);
    *net->seen = keep;
    return r;
}

/* The next batch of every source into the network's input and truth rows: each row the
 * one-hot label of its task, after the teacher's targets when they are used. */
static int fill_batch(trainer *t, int use_teacher, lwf_err *err)
{
    network *net = t->m->net;
    memset(net->truth, 0, (size_t)net->batch * net->truths * sizeof(float));
    for (int q = 0; q < t->nsrc; ++q) {
        source *sc = &t->src[q];
        const lwf_batch *b = lwf_loader_next(sc->ld, err);
        if (!b) return -1;
        float *X = net->input + (size_t)sc->row0 * net->inputs, *truth = net->truth + (size_t)sc->row0 * net->truths;
        memcpy(X, b->X, (size_t)sc->rows * net->inputs * sizeof(float));
        /* the teacher knows the new task's images (the only source when it is used) */
        if (use_teacher && t->teacher && sc->task == t->m->new_task && !(sc->exemplars && t->o->teacher == LWF_TEACHER_RECORD) &&
            lwf_teacher_fill(t->teacher, b->index, X, sc->rows, truth, net->truths, err))
            return -1;
        const lwf_task *tk = &t->m->tasks[sc->task];
        for (int r = 0; r < sc->rows; ++r)
            truth[(size_t)r * net->truths + tk->offset + sc->label[b->index[r]]] = 1; /* one-hot label of its task */
    }
    return 0;
}

/* A diverging run can keep a finite loss (saturated softmax) while its weights are already
 * NaN or inf: after iteration k's update, an error naming the first such layer, before any
 * of them is written. */
static int check_weights(trainer *t, long long k, lwf_err *err)
{
    const lwf_model *m = t->m;
    int bad = lwf_weights_nonfinite(m->net, m->net->n);
    if (bad < 0) return 0;
    const char *owner = "the shared trunk";
    for (int q = 0; q < m->ntasks; ++q)
        if (bad >= m->tasks[q].first && bad <= m->tasks[q].loss) owner = m->tasks[q].name;
    return lwf_fail(err, "iteration %lld: the weights of layer %d (%s:%d, task %s%s%s) are not finite: training "
                         "diverged; stopping before writing them; the last good backup is %s (try a lower "
                         "learning rate)",
                    k + 1, bad, t->o->cfg, m->line[bad], bad < m->trunk ? "" : "'", owner, bad < m->trunk ? "" : "'",
                    bpath(t, ".backup"));
}

/* -valid after iteration `it`: every task's top-1 into top1 (NAN where not measured) and
 * its line on stdout (printed with -quiet too: -valid asked for it); *secs its time. */
static int validate(trainer *t, long long it, double *top1, double *secs, lwf_err *err)
{
    const lwf_model *m = t->m;
    double t0 = what_time_is_it_now();
    long images;
    if (lwf_trainval_run(t->valid, m->net, top1, &images, err)) return -1;
    *secs = what_time_is_it_now() - t0;
    printf("%lld: valid top-1", it);
    for (int q = 0; q < m->ntasks; ++q)
        if (!isnan(top1[q])) printf(" %s %.4f", m->tasks[q].name, top1[q]);
    printf(" (%ld images, %.2f seconds)\n", images, *secs);
    fflush(stdout);
    return 0;
}

/* One iteration's forward and backward passes over its subdivisions: each task's loss
 * (averaged over them) where it is computed; an error on a non-finite one, before the
 * backward pass. */
static int passes(trainer *t, long long k, const lwf_plan *plan, int use_teacher, int *scored, double *task_loss,
                  lwf_err *err)
{
    lwf_model *m = t->m;
    network *net = m->net;
    int sub = net->subdivisions, rc = 0;
    for (int s = 0; s < sub && !rc; ++s) {
        if ((rc = fill_batch(t, use_teacher, err)) != 0) break;
        *net->seen += (size_t)net->batch;
        lwf_forward(net, plan);
        for (int q = 0; q < m->ntasks && q < LWF_MAX_TASKS && !rc; ++q) {
            if (!(scored[q] = plan->fwd[m->tasks[q].loss] && (m->tasks[q].is_new || use_teacher || t->joint)))
                continue;
            float lq = lwf_layer_loss(&net->layers[m->tasks[q].loss]);
            task_loss[q] += lq / sub;
            /* stop before the backward pass: libdarknet's maxpool backward writes out of
             * bounds on NaN inputs, and the weights must not take a NaN update */
            if (!isfinite(lq))
                rc = lwf_fail(err, "iteration %lld: the loss of task '%s' is %g: stopping before writing bad "
                                   "weights; the last good backup is %s (try a lower learning rate)",
                              k + 1, m->tasks[q].name, lq, bpath(t, ".backup"));
        }
        if (rc) break;
        lwf_backward(net, plan);
    }
    return rc;
}

/* The loss the progress line reports: each task's weighted by its head's lambda. */
static double weighted_loss(const lwf_model *m, const double *task_loss)
{
    network *net = m->net;
    double loss = 0;
    for (int q = 0; q < m->ntasks && q < LWF_MAX_TASKS; ++q) {
        const lwf_loss_params *p = lwf_loss_params_of(&net->layers[m->tasks[q].loss]);
        /* the new head's: 1 (a grown head's loss holds its distillation already) */
        loss += (m->tasks[q].is_new ? 1.0 : (double)(p->lambda * lwf_t2_factor(p))) * task_loss[q];
    }
    return loss;
}

/* Each source's batch loader, from batch `start` (in subdivisions) of its own stream. */
static int start_loaders(trainer *t, long long start, lwf_err *err)
{
    lwf_model *m = t->m;
    network *net = m->net;
    for (int q = 0; q < t->nsrc; ++q) {
        source *sc = &t->src[q];
        /* each source has its own stream of batches: seed per task */
        sc->ld = lwf_loader_start(&sc->paths, &m->aug, net->w, net->h, sc->rows, t->seed + 7919ULL * (unsigned)q,
                                  start * net->subdivisions, err);
        if (!sc->ld) return -1;
    }
    return 0;
}

static void stop_loaders(trainer *t)
{
    for (int q = 0; q < t->nsrc; ++q) {
        lwf_loader_stop(t->src[q].ld);
        t->src[q].ld = NULL;
    }
}

/* [net] precise_bn: after the phase that `plan` ran (phase 0 warm-up, 1 joint) ended at
 * iteration it, its batch-norm statistics re-estimated from the training sources, each
 * phase with a stream of its own (precise_bn.c). */
static int precise_bn(trainer *t, const lwf_plan *plan, int phase, lwf_err *err)
{
    lwf_bn_source bs[LWF_MAX_TASKS];
    for (int q = 0; q < t->nsrc; ++q) bs[q] = (lwf_bn_source){&t->src[q].paths, t->src[q].row0, t->src[q].rows};
    return lwf_precise_bn(t->m, plan, t->m->precise_bn, bs, t->nsrc, t->seed + 0x9e3779b97f4a7c15ULL * (unsigned)(phase + 1), err);
}

/* The final <cfg>.weights; a grown head whose bias correction applies is weight-aligned first, the
 * weights before it kept as <cfg>.uncorrected.weights (and with -valid, measured again). */
static int finish(trainer *t, lwf_err *err)
{
    network *net = t->m->net;
    if (lwf_grow_corrects(t->m)) {
        if (lwf_folder_save(&t->dir, net, ".uncorrected.weights", NULL, err)) return -1;
        fprintf(stderr, "bias correction: the new classes' logits scaled by %.4f (weight aligning)\n",
                lwf_grow_align(t->m));
        /* -valid's last figure is of the weights the run ends with (the log keeps the uncorrected) */
        double top1[LWF_MAX_TASKS], vs;
        if (t->valid && validate(t, t->total, top1, &vs, err)) return -1;
    }
    return lwf_folder_save(&t->dir, net, ".weights", NULL, err);
}

/* The schedule: from the resumed iteration to the end, warm-up then joint, each iteration
 * its passes, one update, the weights check, the report, the backups. */
static int run(trainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    lwf_model *m = t->m;
    network *net = m->net;
    int N = 0;
    for (int q = 0; q < t->nsrc; ++q)
        if (t->src[q].task == m->new_task && !t->src[q].exemplars) N = t->src[q].paths.n; /* epochs: new images */
    long long imgs = (long long)net->batch * net->subdivisions;
    long long start = (long long)(*net->seen / (size_t)imgs);
    lwf_plan warm, joint;
    lwf_pass jp = o->method == LWF_METHOD_FEATEXT ? LWF_PASS_WARMUP
                  : o->method == LWF_METHOD_FINETUNE ? LWF_PASS_FINETUNE : LWF_PASS_JOINT;
    if (lwf_plan_make(m, LWF_PASS_WARMUP, &warm) || lwf_plan_make(m, jp, &joint))
        return lwf_fail(err, "out of memory");
    /* a grown head: only the new rows of its class layer learn in the warm-up (and featext) */
    lwf_grow_freeze fz;
    lwf_grow_plan(m, &warm);
    if (jp == LWF_PASS_WARMUP) lwf_grow_plan(m, &joint);
    if (lwf_grow_freeze_begin(m, &fz, err)) return -1;
    int rc = start_loaders(t, start, err), stop = 0;
    lwf_backup_at at = {t->warmup, t->total, N, t->seed};
    double avg = -1, t0 = what_time_is_it_now(), vtime = 0; /* vtime: -valid's seconds so far */
    long long vdone = 0;
    for (long long k = start; !rc && !stop && k < t->total; ++k) {
        double it0 = what_time_is_it_now();
        int warmup = k < t->warmup;
        int use_teacher = !warmup && t->distill;
        float rate = warmup ? m->warmup_learning_rate : joint_rate(net, k - t->warmup);
        double task_loss[LWF_MAX_TASKS] = {0}, top1[LWF_MAX_TASKS], vs = 0;
        int scored[LWF_MAX_TASKS] = {0}; /* the task's loss was computed this iteration */
        lwf_grow_set_distill(m, use_teacher);
        if ((rc = passes(t, k, warmup ? &warm : &joint, use_teacher, scored, task_loss, err)) != 0) break;
        lwf_update(net, warmup ? &warm : &joint, rate);
        if (warmup || jp == LWF_PASS_WARMUP) lwf_grow_freeze_apply(m, &fz);
        double loss = weighted_loss(m, task_loss);
        if ((rc = check_weights(t, k, err)) != 0) break;
        double secs = what_time_is_it_now() - it0; /* the iteration's own time, without -valid's */
        /* a phase's end re-estimates its batch-norm statistics before anything measures or keeps them */
        if (k + 1 == t->warmup && (rc = precise_bn(t, &warm, 0, err)) != 0) break;
        if (k + 1 == t->total && t->total > t->warmup && (rc = precise_bn(t, &joint, 1, err)) != 0) break;
        int last = k + 1 == t->total || (o->stop > 0 && k + 1 >= o->stop);
        int valid = t->valid && ((k + 1) % o->valid_every == 0 || last);
        if (valid && (rc = validate(t, k + 1, top1, &vs, err)) != 0) break;
        vtime += vs;
        vdone += valid;
        avg = avg < 0 ? loss : avg * .9 + loss * .1;
        double now = what_time_is_it_now();
        char eta[32]; /* training time per iteration so far, and validation time per round */
        lwf_fmt_time((now - t0 - vtime) / (double)(k + 1 - start) * (double)(t->total - k - 1) +
                         (vdone ? vtime / (double)vdone : 0) *
                             (double)lwf_validations_left(o->valid_every, t->total, k + 1),
                     eta, sizeof eta);
        lwf_iter_report r = {k + 1, (float)((double)*net->seen / N), warmup, loss, avg, rate, secs,
                             *net->seen, scored, task_loss, valid ? top1 : NULL, NULL};
        rc = lwf_report(&t->log, m, &r, warmup ? "warmup" : "joint", eta, o->quiet, err);
        if (!rc && (valid || last || (!t->valid && (k + 1) % LWF_CHART_EVERY == 0)))
            lwf_chart_draw(&t->chart, bpath(t, ".log.csv"), m, t->warmup, t->total);
        if (!rc) rc = lwf_save_backups(&t->dir, net, o, &at, k + 1, &stop, err);
    }
    if (!rc && (long long)(*net->seen / (size_t)imgs) >= t->total) rc = finish(t, err);
    lwf_grow_freeze_end(&fz);
    stop_loaders(t);
    lwf_plan_free(&warm);
    lwf_plan_free(&joint);
    return rc;
}

/* Reads a task's training list and labels (from its .data) and checks every image path. */
static int load_source(trainer *t, source *sc, int task, const char *dpath, lwf_err *err)
{
    const lwf_task *tk = &t->m->tasks[task];
    sc->task = task;
    if (lwf_datacfg_read(dpath, &sc->data, err)) return -1;
    if (!sc->data.train)
        return lwf_fail(err, "%s: no train= list (task '%s' needs its training list)", dpath, tk->name);
    if (!sc->data.labels) return lwf_fail(err, "%s: no labels= file", dpath);
    if (sc->data.classes != tk->classes)
        return lwf_fail(err, "%s: classes=%d, but task '%s' (%s:%d) outputs %d values", dpath, sc->data.classes,
                        tk->name, t->o->cfg, tk->line, tk->classes);
    /* a list that does not open is named with the .data line it came from */
    if (lwf_datacfg_list(&sc->data, "train", &sc->paths, err) || lwf_datacfg_list(&sc->data, "labels", &sc->labels, err))
        return -1;
    if (sc->labels.n != sc->data.classes)
        return lwf_fail(err, "%s: %d labels, but %s says classes=%d", sc->data.labels, sc->labels.n, dpath,
                        sc->data.classes);
    sc->label = malloc((size_t)sc->paths.n * sizeof(int));
    if (!sc->label) return lwf_fail(err, "out of memory");
    if (lwf_labels_of(&sc->paths, sc->data.train, &sc->labels, sc->label, err)) return -1;
    /* Decode every image now: a bad one met by the loader would stop the run after the
     * backup folder had been written to (teacher weights, log, backups). */
    for (int i = 0; i < sc->paths.n; ++i) {
        image im;
        lwf_err ierr;
        if (lwf_image_load(sc->paths.items[i], &im, &ierr))
            return lwf_fail(err, "%s:%d: %s", sc->data.train, sc->paths.line[i], ierr.msg);
        free_image(im);
    }
    return 0;
}

/* A grown head's old-class images ([task] exemplars=, a list), labelled by the new .data's
 * labels (old then new), a source of their own that fills its share of every batch. */
static int load_exemplars(trainer *t, lwf_err *err)
{
    const lwf_task *tk = &t->m->tasks[t->m->new_task];
    if (t->o->method == LWF_METHOD_LWF && t->o->teacher == LWF_TEACHER_RECORD)
        return lwf_fail(err, "%s:%d: [task] exemplars= needs -teacher online (the recorded responses are for the "
                             "training list only)",
                        t->o->cfg, tk->line);
    source *sc = &t->src[t->nsrc++];
    sc->task = t->m->new_task;
    sc->exemplars = 1;
    if (lwf_datacfg_read(t->o->datacfg, &sc->data, err)) return -1;
    if (lwf_list_read(tk->exemplars, &sc->paths, err) || lwf_list_read(sc->data.labels, &sc->labels, err)) return -1;
    if (sc->paths.n == 0) return lwf_fail(err, "%s: no images ([task] exemplars=, %s:%d)", tk->exemplars, t->o->cfg, tk->line);
    sc->label = malloc((size_t)sc->paths.n * sizeof(int));
    if (!sc->label) return lwf_fail(err, "out of memory");
    if (lwf_labels_of(&sc->paths, tk->exemplars, &sc->labels, sc->label, err)) return -1;
    for (int i = 0; i < sc->paths.n; ++i) {
        image im;
        lwf_err ierr;
        if (lwf_image_load(sc->paths.items[i], &im, &ierr))
            return lwf_fail(err, "%s:%d: %s", tk->exemplars, sc->paths.line[i], ierr.msg);
        free_image(im);
    }
    return 0;
}

/* The training sources: the new task's images; with -method joint, every old task's too,
 * in equal shares of each batch. */
static int load_sources(trainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    lwf_model *m = t->m;
    network *net = m->net;
    for (int k = 0; k < m->ntasks; ++k) {
        if (!t->joint && k != m->new_task) continue;
        const lwf_task *tk = &m->tasks[k];
        const char *dpath = k == m->new_task ? o->datacfg : tk->data;
        if (!dpath)
            return lwf_fail(err, "%s:%d: task '%s' has no data= file: -method joint needs every task's training list",
                            o->cfg, tk->line, tk->name);
        if (load_source(t, &t->src[t->nsrc++], k, dpath, err)) return -1;
    }
    if (m->tasks[m->new_task].exemplars && load_exemplars(t, err)) return -1;
    int ex = t->nsrc > 0 && t->src[t->nsrc - 1].exemplars, share = 0, nsplit = t->nsrc - ex;
    if (ex) { /* the exemplars' share of the batch, at least one row, at least one row left */
        share = (int)lrintf(m->tasks[m->new_task].exemplar_share * (float)net->batch);
        share = share < 1 ? 1 : share > net->batch - nsplit ? net->batch - nsplit : share;
    }
    for (int q = 0, row = 0; q < t->nsrc; ++q) {
        source *sc = &t->src[q];
        int avail = net->batch - share;
        sc->rows = sc->exemplars ? share : avail / nsplit + (q < avail % nsplit);
        sc->row0 = row;
        row += sc->rows;
        if (sc->rows < 1)
            return lwf_fail(err, "%s: batch=%d is smaller than the number of tasks (%d) for -method joint", o->cfg,
                            net->batch, t->nsrc);
    }
    return 0;
}

/* Load: the new task's .data, the model, the training sources, and every check that needs
 * no weights. */
static int load(trainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    if (lwf_datacfg_read(o->datacfg, &t->data, err)) return -1;
    if (!t->data.train) return lwf_fail(err, "%s: no train= list", o->datacfg);
    if (!t->data.labels) return lwf_fail(err, "%s: no labels= file", o->datacfg);
    if (!t->data.backup) t->data.backup = lwf_strdup("backup");
    lwf_model *m = t->m = lwf_model_load(o->cfg, NULL, err);
    if (!m || lwf_check_image_input(m, err)) return -1;
    network *net = m->net;
    t->joint = o->method == LWF_METHOD_JOINT;
    if (m->ntasks > LWF_MAX_TASKS) return lwf_fail(err, "%s: more than %d tasks", o->cfg, LWF_MAX_TASKS);
    /* both default to 0: such a run would only save the weights it was given */
    if (net->max_batches == 0 && m->warmup_batches == 0)
        return lwf_fail(err, "%s: [net] max_batches=0 and warmup_batches=0: nothing to train", o->cfg);
    if (load_sources(t, err)) return -1;
    int nold = m->ntasks - 1 + lwf_grow_is(m); /* a grown head distills from the old model too */
    if (nold > 0 && !o->weights)
        return lwf_fail(err, "%s has %d old head(s): give the old network's weights (the stock classifier or the "
                             "previous LwF run) as the third argument",
                        o->cfg, nold);
    if (net->policy == POLY && net->max_batches <= 0)
        return lwf_fail(err, "%s: policy=poly needs max_batches > 0", o->cfg);
    if (lwf_folder_init(&t->dir, t->data.backup, o->cfg, err)) return -1;
    t->warmup = m->warmup_batches;
    t->total = m->warmup_batches + (long long)net->max_batches;
    t->distill = o->method == LWF_METHOD_LWF && nold > 0;
    for (int k = 0; t->joint && k < m->ntasks; ++k) /* old heads learn from labels, T = 1 */
        if (!m->tasks[k].is_new) lwf_loss_params_of(&net->layers[m->tasks[k].loss])->targets = 1;
    return 0;
}

/* "<weights>.state", newly allocated (NULL when out of memory). */
static char *state_path(const char *weights)
{
    size_t n = strlen(weights) + sizeof ".state";
    char *sp = malloc(n);
    if (sp) snprintf(sp, n, "%s.state", weights);
    return sp;
}

/* Our backups have a .state beside them: a weights file that holds only the old network's
 * floats and has one is a cut-off backup, not an old network to start a new run from. */
static int refuse_cut_off(const char *weights, lwf_err *err)
{
    char *sp = state_path(weights);
    if (!sp) return lwf_fail(err, "out of memory");
    int rc = access(sp, F_OK) != 0 ? 0
                                   : lwf_fail(err, "%s: holds only the old network's floats, but %s beside it says it "
                                                   "is a whole-model backup: cut off? (resume from an intact backup, "
                                                   "or start from the old network's weights)",
                                              weights, sp);
    free(sp);
    return rc;
}

/* A resumed run at iteration `at` (from the backup's header) with -stop N <= at would train
 * one iteration and stop after it: refused, before anything is written. */
static int check_stop(const lwf_train_opts *o, long long at, lwf_err *err)
{
    if (o->stop > 0 && o->stop <= at)
        return lwf_fail(err, "-stop %lld: %s is already at iteration %lld, so there is nothing to train up to %lld: "
                             "give a later -stop (or none)",
                        (long long)o->stop, o->weights, at, (long long)o->stop);
    return 0;
}

/* Resuming from a whole-model backup (`seen` images in its header): reads the .state
 * beside it and checks all of it before anything is applied.  A state whose iteration is
 * the backup's gives the layers their momentum and update count; one of another iteration
 * (batch= or subdivisions= changed since, or a state left beside another backup) gives
 * none: the update buffers stay the parser's zeros.  Either way the state names the run:
 * its -method must be this one, and its seed is the run's (in *st).  Returns 1 if a state
 * was read, 0 if there is none, -1 on error (nothing changed). */
static int resume_state(trainer *t, size_t seen, lwf_state *st, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    network *net = t->m->net;
    char *sp = state_path(o->weights);
    if (!sp) return lwf_fail(err, "out of memory");
    lwf_state_file f;
    int r = lwf_state_read(net, sp, &f, err), rc = r < 0 ? -1 : r == 1 ? 0 : 1;
    if (r == 1) fprintf(stderr, "resume: no %s: momentum starts from zero\n", sp);
    if (rc == 1 && f.st.method != (int)o->method)
        rc = lwf_fail(err, "%s: this run was trained with another -method (its .state says %s); resume it with the "
                           "same one",
                      o->weights, lwf_method_name((lwf_method)f.st.method));
    size_t imgs = (size_t)net->batch * (size_t)net->subdivisions;
    if (rc == 1 && seen % imgs == 0 && (unsigned long long)f.st.iteration == seen / imgs)
        lwf_state_apply(net, &f);
    else if (rc == 1)
        fprintf(stderr, "resume: no matching %s: it is for iteration %lld, the backup has seen %zu images, %zu an "
                        "iteration with this cfg's batch and subdivisions: momentum starts from zero\n",
                sp, f.st.iteration, seen, imgs);
    if (rc == 1) *st = f.st;
    if (r == 0) lwf_state_file_free(&f);
    free(sp);
    return rc;
}

/* Resume (or start): the weights, the old network's for a fresh run or a whole-model
 * backup's with its .state (momentum, counters, seed: see resume_state) for a resumed
 * one; the seen counter, the seed, the new head's initialisation on a fresh run.  Sets
 * t->resume. */
static int resume_or_start(trainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    lwf_model *m = t->m;
    network *net = m->net;
    /* weights: old network (fresh run) or a whole-model backup (resume) */
    size_t seen = 0;
    lwf_state st = {0, 0, 0};
    int have_state = 0;
    if (o->weights && lwf_weights_load_model(m, o->weights, &t->whole, &seen, err)) return -1;
    if (o->weights && !t->whole && refuse_cut_off(o->weights, err)) return -1;
    int resume = t->resume = t->whole && !o->clear;
    if (resume) {
        size_t imgs = (size_t)net->batch * (size_t)net->subdivisions;
        /* both counters come from files: compare without multiplying (a corrupt iteration
         * overflowed st.iteration * imgs), and refuse a count beyond this run's end */
        if ((long long)(seen / imgs) > t->total)
            return lwf_fail(err, "%s: its header counts %zu images seen, iteration %zu, beyond this run's %lld "
                                 "iterations: a corrupt header (or give -clear to start the count again)",
                            o->weights, seen, seen / imgs, t->total);
        if (check_stop(o, (long long)(seen / imgs), err)) return -1;
        if (t->distill && access(bpath(t, ".teacher.weights"), R_OK) != 0)
            return lwf_fail(err, "resume: the original old network %s is missing (it is written at the start of a "
                                 "run); start again from the old weights",
                            bpath(t, ".teacher.weights"));
        have_state = resume_state(t, seen, &st, err);
        if (have_state < 0) return -1;
        *net->seen = seen;
    } else {
        *net->seen = 0;
    }
    t->seed = o->seed_set ? o->seed : have_state ? st.seed : (unsigned long long)time(NULL);
    lwf_kernels_seed(net, t->seed); /* the fast [dropout]'s stream */
    srand((unsigned)t->seed); /* libdarknet's own rand(): [crop], [dropout] under -reference */
    if (!t->whole) init_new_head(m, t->seed);
    return 0;
}

/* The teacher's weights, <cfg>.teacher.weights, the original old network: written on a
 * fresh run from the old network given.  A whole model given with -clear (a backup or a
 * finished run, whose old heads have drifted) does not replace it: the folder's original
 * stays the teacher; only when the folder has none do that model's old heads become it,
 * as said on stderr.  Removing the file is how to ask for a new teacher. */
static int keep_teacher_weights(trainer *t, lwf_err *err)
{
    const lwf_model *m = t->m;
    if (!t->distill || t->resume) return 0;
    const char *tw = bpath(t, ".teacher.weights");
    if (t->whole && access(tw, F_OK) == 0) {
        fprintf(stderr, "teacher: -clear keeps the original old network %s as the teacher, not the old heads of %s "
                        "(remove it to make those the teacher)\n",
                tw, t->o->weights);
        return 0;
    }
    if (t->whole)
        fprintf(stderr, "teacher: no original old network in %s: the old heads of %s become the teacher (%s)\n",
                t->dir.dir, t->o->weights, tw);
    return lwf_weights_save(m->net, tw, lwf_teacher_layers(m), 0, err);
}

/* Everything is checked: only from here on is the backup folder written to, so a refused
 * run leaves it as it was.  Takes the folder (created, locked), writes the original old
 * network for the teacher on a fresh -method lwf run, and says what the run is. */
static int prepare_folder(trainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    lwf_model *m = t->m;
    network *net = m->net;
    if (lwf_folder_prepare(&t->dir, o->cfg, err)) return -1;
    if (keep_teacher_weights(t, err)) return -1;
    fprintf(stderr, "lwf train: %s, method %s, teacher %s, seed %llu, %d images, %lld warm-up + %d joint iterations%s\n",
            o->cfg, lwf_method_name(o->method),
            t->distill ? (o->teacher == LWF_TEACHER_RECORD ? "record" : "online") : "none", t->seed, t->src[0].paths.n,
            t->warmup, net->max_batches, t->resume ? " (resumed)" : "");
    if (t->resume) fprintf(stderr, "resume: from %s at iteration %lld\n", o->weights, (long long)(*net->seen / ((size_t)net->batch * net->subdivisions)));
    return 0;
}

/* The teacher of -method lwf, from the original old network kept in the backup folder;
 * a record teacher's cache beside it. */
static int open_teacher(trainer *t, lwf_err *err)
{
    char *weights = lwf_strdup(bpath(t, ".teacher.weights")), *cache = lwf_strdup(bpath(t, ".teacher"));
    const source *sc = &t->src[0];
    lwf_teacher_opts to = {t->o->teacher, weights, sc->data.train, &sc->paths, cache};
    t->teacher = weights && cache ? lwf_teacher_open(t->m, &to, err) : NULL;
    if (!weights || !cache) lwf_fail(err, "out of memory");
    free(weights);
    free(cache);
    return t->teacher ? 0 : -1;
}

static int setup(trainer *t, lwf_err *err)
{
    if (load(t, err)) return -1;
    /* before resume_or_start's srand: building it draws libdarknet's rand() */
    if (t->o->valid_every > 0 && !(t->valid = lwf_trainval_open(t->m, t->o->datacfg, err))) return -1;
    if (resume_or_start(t, err)) return -1;
    if (t->distill && lwf_teacher_check(t->m, t->o->teacher, err)) return -1;
    lwf_chart_init(&t->chart, bpath(t, ".chart.png"));
    if (prepare_folder(t, err)) return -1;
    if (t->distill && open_teacher(t, err)) return -1;
    network *net = t->m->net;
    /* on resume the log keeps the lines up to the resumed iteration */
    long long upto = t->resume ? (long long)(*net->seen / ((size_t)net->batch * net->subdivisions)) : 0;
    return lwf_log_open(&t->log, bpath(t, ".log.csv"), t->m, upto, err);
}

int lwf_train(const lwf_train_opts *o, lwf_err *err)
{
    if (lwf_cfg_is_detector(o->cfg)) return lwf_train_detector(o, err); /* detect.c */
    trainer t;
    memset(&t, 0, sizeof t);
    t.o = o;
    t.dir.lockfd = t.log.fd = -1;
    int rc = setup(&t, err);
    if (!rc) rc = run(&t, err);
    lwf_log_close(&t.log);
    lwf_model_free(t.m);
    lwf_teacher_close(t.teacher);
    lwf_trainval_close(t.valid);
    for (int q = 0; q < t.nsrc; ++q) {
        source *sc = &t.src[q];
        lwf_loader_stop(sc->ld);
        free(sc->label);
        lwf_list_free(&sc->paths);
        lwf_list_free(&sc->labels);
        lwf_datacfg_free(&sc->data);
    }
    lwf_datacfg_free(&t.data);
    lwf_folder_close(&t.dir);
    return rc;
}
