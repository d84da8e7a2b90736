/* The LwF training driver: record the old network's responses (or run it online as a
 * frozen teacher), warm up the new head alone, then train everything jointly; with
 * backups, a resumable state and Darknet-style progress.  Layers: builder.c; loops: step.c. */
#define _POSIX_C_SOURCE 200809L
#include "train/train.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
} source;

typedef struct {
    const lwf_train_opts *o;
    lwf_model *m;            /* the student */
    lwf_model *teacher;      /* online teacher (frozen original network), or NULL */
    float *record;           /* (N, old_truths) recorded teacher logits, or NULL */
    int old_truths;          /* columns of the old tasks (they come first in a truth row) */
    lwf_datacfg data;        /* the new task's .data (command line) */
    int nsrc;
    source src[LWF_MAX_TASKS]; /* labelled images: the new task's, and every task's in joint */
    char *base;              /* cfg file name without folder and extension */
    char path[4096];         /* scratch for file names */
    int logfd;               /* the CSV log, O_APPEND: one write() per line */
    int lockfd;              /* holds the backup folder's lock while we run */
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
    snprintf(t->path, sizeof t->path, "%s/%s%s", t->data.backup, t->base, suffix);
    return t->path;
}

/* With create = 0, only checks that dir is a folder or does not exist yet. */
static int ensure_dir(const char *dir, int create, lwf_err *err)
{
    struct stat st;
    if (stat(dir, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : lwf_fail(err, "%s: exists and is not a folder", dir);
    if (create && mkdir(dir, 0755) != 0)
        return lwf_fail(err, "%s: cannot create backup folder: %s", dir, strerror(errno));
    return 0;
}

/* Re-initialises the new head's weights from the seed, with Darknet's distributions. */
static void init_new_head(lwf_model *m, unsigned long long seed)
{
    network *net = m->net;
    for (int i = m->tasks[m->new_task].first; i < net->n; ++i) {
        layer *l = &net->layers[i];
        lwf_rng r = lwf_rng_make(seed, 0x4e455748ULL, (unsigned long long)i);
        if (l->type == CONVOLUTIONAL) {
            float scale = sqrtf(2.0f / (l->size * l->size * l->c / l->groups));
            for (int k = 0; k < l->nweights; ++k) l->weights[k] = scale * lwf_rng_normal(&r);
            memset(l->biases, 0, (size_t)l->n * sizeof(float));
        } else if (l->type == CONNECTED) {
            float scale = sqrtf(2.0f / l->inputs);
            for (int k = 0; k < l->outputs * l->inputs; ++k) l->weights[k] = scale * lwf_rng_uniform(&r, -1, 1);
            memset(l->biases, 0, (size_t)l->outputs * sizeof(float));
        }
    }
}

/* Teacher logits of old task k for the current teacher batch: its loss layer's input. */
static const float *teacher_logits(const lwf_model *tm, int k)
{
    return tm->net->layers[tm->tasks[k].loss - 1].output;
}

/* Runs the teacher (inference mode, trunk + old heads) on X (n rows) and writes the
 * old tasks' logits into rows of `out` with stride `stride`. */
static void run_teacher(lwf_model *tm, const lwf_plan *plan, const float *X, int n, float *out, int stride)
{
    network *net = tm->net;
    memcpy(net->input, X, (size_t)n * net->inputs * sizeof(float));
    lwf_forward(net, plan);
    for (int k = 0; k < tm->ntasks; ++k) {
        if (tm->tasks[k].is_new) continue;
        const float *z = teacher_logits(tm, k);
        int c = tm->tasks[k].classes;
        for (int b = 0; b < n; ++b) memcpy(out + (size_t)b * stride + tm->tasks[k].offset, z + (size_t)b * c, (size_t)c * sizeof(float));
    }
}

/* Record mode: the teacher's logits for every training image, cached beside the backups
 * and keyed by the list, the old weights and the network shape. */
static int record_responses(trainer *t, const char *teacher_weights, lwf_err *err)
{
    lwf_model *tm = t->teacher;
    const source *sc = &t->src[0];
    int N = sc->paths.n, C = t->old_truths;
    unsigned long long key = 0;
    if (lwf_hash_file(sc->data.train, &key, err) || lwf_hash_file(teacher_weights, &key, err)) return -1;
    for (int i = 0; i < lwf_old_layers(tm); ++i) {
        key = (key ^ (unsigned long long)tm->net->layers[i].type) * 1099511628211ULL;
        key = (key ^ (unsigned long long)tm->net->layers[i].outputs) * 1099511628211ULL;
    }
    const char *cache = bpath(t, ".teacher");
    char cachepath[4096];
    snprintf(cachepath, sizeof cachepath, "%s", cache);
    t->record = malloc((size_t)N * C * sizeof(float));
    if (!t->record) return lwf_fail(err, "out of memory for %d x %d recorded responses", N, C);
    FILE *fp = fopen(cachepath, "rb");
    if (fp) {
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
            fprintf(stderr, "teacher: recorded responses reused from %s\n", cachepath);
            return 0;
        }
        if (ok)
            fprintf(stderr, "teacher: %s is corrupt (value %zu is %g, not finite): recording again\n", cachepath, bad,
                    t->record[bad]);
        else
            fprintf(stderr, "teacher: %s is stale (list, old weights or cfg changed): recording again\n", cachepath);
    }
    fprintf(stderr, "teacher: recording the old network's responses on %d images\n", N);
    lwf_plan plan;
    if (lwf_plan_make(tm, LWF_PASS_TEACHER, &plan)) return lwf_fail(err, "out of memory");
    int bs = tm->net->batch, inputs = tm->net->inputs;
    float *X = calloc((size_t)bs * inputs, sizeof(float));
    float *rows = calloc((size_t)bs * C, sizeof(float));
    int rc = X && rows ? 0 : lwf_fail(err, "out of memory");
    for (int start = 0; !rc && start < N; start += bs) {
        int n = N - start < bs ? N - start : bs;
        for (int r = 0; r < n && !rc; ++r) {
            image im;
            if (lwf_image_load(sc->paths.items[start + r], &im, err)) {
                rc = -1;
                break;
            }
            image x = lwf_image_prepare(im, &tm->aug, 0, tm->net->w, tm->net->h, NULL);
            memcpy(X + (size_t)r * inputs, x.data, (size_t)inputs * sizeof(float));
            free_image(x);
            free_image(im);
        }
        if (rc) break;
        run_teacher(tm, &plan, X, bs, rows, C);
        memcpy(t->record + (size_t)start * C, rows, (size_t)n * C * sizeof(float));
    }
    free(X);
    free(rows);
    lwf_plan_free(&plan);
    if (rc) return -1;
    size_t bad = lwf_first_nonfinite(t->record, (size_t)N * C), img = bad / (size_t)C;
    if (bad < (size_t)N * C)
        return lwf_fail(err, "%s:%d: the old network (%s) answers image '%s' with %g, not a finite value",
                        sc->data.train, sc->paths.line[img], teacher_weights, sc->paths.items[img], t->record[bad]);
    size_t len = 16 + (size_t)N * C * sizeof(float);
    unsigned char *buf = malloc(len);
    if (!buf) return lwf_fail(err, "out of memory");
    memcpy(buf, &key, 8);
    memcpy(buf + 8, &N, 4);
    memcpy(buf + 12, &C, 4);
    memcpy(buf + 16, t->record, (size_t)N * C * sizeof(float));
    rc = lwf_write_file_atomic(cachepath, buf, len, err);
    free(buf);
    return rc;
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

static int save_backup(trainer *t, const char *suffix, long long iteration, int with_state, lwf_err *err)
{
    network *net = t->m->net;
    if (with_state) {
        char sp[4200];
        snprintf(sp, sizeof sp, "%s.state", bpath(t, suffix));
        lwf_state st = {iteration, t->seed, (int)t->o->method};
        if (lwf_state_save(net, &st, sp, err)) return -1;
    }
    const char *wp = bpath(t, suffix);
    if (lwf_weights_save(net, wp, net->n, *net->seen, err)) return -1;
    fprintf(stderr, "Saving weights to %s\n", wp);
    return 0;
}

static void fmt_time(double s, char *buf, size_t n)
{
    long v = (long)(s + 0.5);
    if (v >= 3600) snprintf(buf, n, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
}

/* The next batch of every source into the network's input and truth rows: each row the
 * one-hot label of its task, after the recorded teacher responses when they are used. */
static int fill_batch(trainer *t, int use_teacher, lwf_err *err)
{
    network *net = t->m->net;
    memset(net->truth, 0, (size_t)net->batch * net->truths * sizeof(float));
    for (int q = 0; q < t->nsrc; ++q) {
        source *sc = &t->src[q];
        const lwf_batch *b = lwf_loader_next(sc->ld, err);
        if (!b) return -1;
        memcpy(net->input + (size_t)sc->row0 * net->inputs, b->X, (size_t)sc->rows * net->inputs * sizeof(float));
        const lwf_task *tk = &t->m->tasks[sc->task];
        for (int r = 0; r < sc->rows; ++r) {
            float *row = net->truth + (size_t)(sc->row0 + r) * net->truths;
            if (use_teacher && t->record)
                memcpy(row, t->record + (size_t)b->index[r] * t->old_truths, (size_t)t->old_truths * sizeof(float));
            row[tk->offset + sc->label[b->index[r]]] = 1; /* one-hot label of its task */
        }
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

/* What one iteration reports, on stdout (unless -quiet) and as a line of the CSV log. */
typedef struct {
    long long it;           /* iteration, from 1 */
    float epoch;            /* epochs of the new task's images seen */
    int warmup;             /* the phase */
    double loss, avg, rate; /* weighted loss, its running average, the learning rate */
    double seconds;         /* this iteration's time */
    const int *scored;      /* (ntasks) the task's loss was computed */
    const double *task_loss; /* (ntasks) */
} iter_report;

static int report(trainer *t, const iter_report *r, const char *eta, lwf_err *err)
{
    const lwf_model *m = t->m;
    size_t seen = *m->net->seen;
    const char *phase = r->warmup ? "warmup" : "joint";
    if (!t->o->quiet) {
        printf("%lld, %.3f: %f, %f avg, %f rate, %lf seconds, %zu images, %s", r->it, r->epoch, r->loss, r->avg,
               r->rate, r->seconds, seen, phase);
        for (int q = 0; q < m->ntasks; ++q)
            if (r->scored[q]) printf(", %s %f", m->tasks[q].name, r->task_loss[q]);
        printf(", %s left\n", eta);
        fflush(stdout);
    }
    if (t->logfd < 0) return 0;
    char line[4096];
    int n = snprintf(line, sizeof line, "%lld,%.4f,%s,%f,%f,%g,%f,%zu", r->it, r->epoch, phase, r->loss, r->avg,
                     r->rate, r->seconds, seen);
    for (int q = 0; q < m->ntasks && n < (int)sizeof line - 40; ++q)
        n += r->scored[q] ? snprintf(line + n, sizeof line - (size_t)n, ",%f", r->task_loss[q])
                          : snprintf(line + n, sizeof line - (size_t)n, ","); /* not trained in this phase */
    n += snprintf(line + n, sizeof line - (size_t)n, "\n");
    /* one write() per line: a killed run leaves whole lines only */
    if (write(t->logfd, line, (size_t)n) != n)
        return lwf_fail(err, "%s: cannot append to the log: %s", bpath(t, ".log.csv"), strerror(errno));
    return 0;
}

static int run(trainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    lwf_model *m = t->m;
    network *net = m->net;
    int N = 0, bs = net->batch, sub = net->subdivisions;
    for (int q = 0; q < t->nsrc; ++q)
        if (t->src[q].task == m->new_task) N = t->src[q].paths.n; /* epochs count the new task's images */
    long long imgs = (long long)bs * sub;
    long long start = (long long)(*net->seen / (size_t)imgs);
    lwf_plan warm, joint, teach;
    memset(&teach, 0, sizeof teach);
    lwf_pass jp = o->method == LWF_METHOD_FEATEXT ? LWF_PASS_WARMUP
                  : o->method == LWF_METHOD_FINETUNE ? LWF_PASS_FINETUNE : LWF_PASS_JOINT;
    if (lwf_plan_make(m, LWF_PASS_WARMUP, &warm) || lwf_plan_make(m, jp, &joint) ||
        (t->teacher && lwf_plan_make(t->teacher, LWF_PASS_TEACHER, &teach)))
        return lwf_fail(err, "out of memory");
    int rc = 0;
    for (int q = 0; q < t->nsrc && !rc; ++q) {
        source *sc = &t->src[q];
        /* each source has its own stream of batches: seed per task */
        sc->ld = lwf_loader_start(&sc->paths, &m->aug, net->w, net->h, sc->rows, t->seed + 7919ULL * (unsigned)q,
                                  start * sub, err);
        if (!sc->ld) rc = -1;
    }
    double avg = -1, t0 = what_time_is_it_now(), spent = 0;
    long long done = 0;
    for (long long k = start; !rc && k < t->total; ++k) {
        double it0 = what_time_is_it_now();
        int warmup = k < t->warmup;
        const lwf_plan *plan = warmup ? &warm : &joint;
        int use_teacher = !warmup && t->distill;
        float rate = warmup ? m->warmup_learning_rate : joint_rate(net, k - t->warmup);
        double task_loss[LWF_MAX_TASKS] = {0};
        int scored[LWF_MAX_TASKS] = {0}; /* the task's loss was computed this iteration */
        for (int s = 0; s < sub && !rc; ++s) {
            if ((rc = fill_batch(t, use_teacher, err)) != 0) break;
            if (use_teacher && !t->record) run_teacher(t->teacher, &teach, net->input, bs, net->truth, net->truths);
            *net->seen += (size_t)bs;
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
        if (rc) break;
        lwf_update(net, plan, rate);
        double loss = 0;
        for (int q = 0; q < m->ntasks && q < LWF_MAX_TASKS; ++q) {
            const lwf_loss_params *p = lwf_loss_params_of(&net->layers[m->tasks[q].loss]);
            loss += (double)(p->lambda * lwf_t2_factor(p)) * task_loss[q]; /* the new head's: 1 */
        }
        if ((rc = check_weights(t, k, err)) != 0) break;
        avg = avg < 0 ? loss : avg * .9 + loss * .1;
        double now = what_time_is_it_now();
        spent = now - t0;
        ++done;
        double left = spent / done * (double)(t->total - k - 1);
        char eta[32];
        fmt_time(left, eta, sizeof eta);
        iter_report r = {k + 1, (float)((double)*net->seen / N), warmup, loss, avg, rate, now - it0, scored, task_loss};
        rc = report(t, &r, eta, err);
        long long it = k + 1;
        int end_warm = it == t->warmup && it < t->total, stop = o->stop > 0 && it >= o->stop && it < t->total;
        int every = o->backup_every > 0 ? o->backup_every : 100;
        if ((it % every == 0 || end_warm || stop) && it < t->total) rc = save_backup(t, ".backup", it, 1, err);
        long long e0 = (long long)((double)(it - 1) * imgs / N), e1 = (long long)((double)it * imgs / N);
        if (!rc && e1 > e0) {
            char suf[64];
            snprintf(suf, sizeof suf, "_%lld.weights", e1);
            rc = save_backup(t, suf, it, 0, err);
        }
        if (stop) {
            fprintf(stderr, "stopped after iteration %lld (-stop); resume with %s\n", it, bpath(t, ".backup"));
            break;
        }
    }
    if (!rc && (long long)(*net->seen / (size_t)imgs) >= t->total) rc = save_backup(t, ".weights", t->total, 0, err);
    for (int q = 0; q < t->nsrc; ++q) {
        lwf_loader_stop(t->src[q].ld);
        t->src[q].ld = NULL;
    }
    lwf_plan_free(&warm);
    lwf_plan_free(&joint);
    lwf_plan_free(&teach);
    return rc;
}

/* One run per backup folder: a POSIX lock on <backup>/.lwf-train.lock, which the kernel
 * drops when the process ends however it ends, so a killed run leaves nothing stuck.
 * Holding it, any temporary file left in the folder is a killed run's: removed. */
static int lock_folder(trainer *t, lwf_err *err)
{
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/.lwf-train.lock", t->data.backup);
    int fd = open(lp, O_RDWR | O_CREAT, 0644);
    if (fd < 0) return lwf_fail(err, "%s: cannot create the lock file: %s", lp, strerror(errno));
    struct flock fl = {0};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        char who[512] = "";
        ssize_t n = pread(fd, who, sizeof who - 1, 0);
        who[n > 0 ? n : 0] = '\0';
        char *nl = strchr(who, '\n');
        if (nl) *nl = '\0';
        close(fd);
        return lwf_fail(err, "%s: another lwf train is writing to this backup folder (%s); wait for it or use "
                             "another backup= folder",
                        t->data.backup, who[0] ? who : "unknown run");
    }
    char who[4400];
    int n = snprintf(who, sizeof who, "pid %ld, cfg %s, started %ld\n", (long)getpid(), t->o->cfg, (long)time(NULL));
    if (ftruncate(fd, 0) != 0 || pwrite(fd, who, (size_t)n, 0) != n) {
        close(fd);
        return lwf_fail(err, "%s: cannot write the lock file", lp);
    }
    t->lockfd = fd;
    DIR *d = opendir(t->data.backup);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *tmp = strstr(e->d_name, ".tmp.");
        if (!tmp || strspn(tmp + 5, "0123456789") != strlen(tmp + 5) || !tmp[5]) continue;
        snprintf(lp, sizeof lp, "%s/%s", t->data.backup, e->d_name);
        if (unlink(lp) == 0) fprintf(stderr, "removed %s, left by a run that was killed\n", lp);
    }
    if (d) closedir(d);
    return 0;
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
    if (lwf_list_read(sc->data.train, &sc->paths, err) || lwf_list_read(sc->data.labels, &sc->labels, err)) return -1;
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

static int open_log(trainer *t, int resume, lwf_err *err);

static int setup(trainer *t, lwf_err *err)
{
    const lwf_train_opts *o = t->o;
    if (lwf_datacfg_read(o->datacfg, &t->data, err)) return -1;
    if (!t->data.train) return lwf_fail(err, "%s: no train= list", o->datacfg);
    if (!t->data.labels) return lwf_fail(err, "%s: no labels= file", o->datacfg);
    if (!t->data.backup) t->data.backup = lwf_strdup("backup");
    lwf_model *m = t->m = lwf_model_load(o->cfg, NULL, err);
    if (!m || lwf_check_image_input(m, err)) return -1;
    network *net = m->net;
    lwf_task *nt = &m->tasks[m->new_task];
    t->joint = o->method == LWF_METHOD_JOINT;
    if (m->ntasks > LWF_MAX_TASKS) return lwf_fail(err, "%s: more than %d tasks", o->cfg, LWF_MAX_TASKS);
    /* both default to 0: such a run would only save the weights it was given */
    if (net->max_batches == 0 && m->warmup_batches == 0)
        return lwf_fail(err, "%s: [net] max_batches=0 and warmup_batches=0: nothing to train", o->cfg);
    /* the new task's images; with -method joint, every old task's too, in equal shares */
    for (int k = 0; k < m->ntasks; ++k) {
        if (!t->joint && k != m->new_task) continue;
        const lwf_task *tk = &m->tasks[k];
        const char *dpath = k == m->new_task ? o->datacfg : tk->data;
        if (!dpath)
            return lwf_fail(err, "%s:%d: task '%s' has no data= file: -method joint needs every task's training list",
                            o->cfg, tk->line, tk->name);
        if (load_source(t, &t->src[t->nsrc++], k, dpath, err)) return -1;
    }
    for (int q = 0, row = 0; q < t->nsrc; ++q) {
        source *sc = &t->src[q];
        sc->rows = net->batch / t->nsrc + (q < net->batch % t->nsrc);
        sc->row0 = row;
        row += sc->rows;
        if (sc->rows < 1)
            return lwf_fail(err, "%s: batch=%d is smaller than the number of tasks (%d) for -method joint", o->cfg,
                            net->batch, t->nsrc);
    }
    int nold = m->ntasks - 1;
    if (nold > 0 && !o->weights)
        return lwf_fail(err, "%s has %d old head(s): give the old network's weights (the stock classifier or the "
                             "previous LwF run) as the third argument",
                        o->cfg, nold);
    if (net->policy == POLY && net->max_batches <= 0)
        return lwf_fail(err, "%s: policy=poly needs max_batches > 0", o->cfg);
    t->base = lwf_path_stem(o->cfg);
    if (!t->base) return lwf_fail(err, "out of memory");
    if (ensure_dir(t->data.backup, 0, err)) return -1;
    t->warmup = m->warmup_batches;
    t->total = m->warmup_batches + (long long)net->max_batches;
    t->distill = o->method == LWF_METHOD_LWF && nold > 0;
    for (int k = 0; t->joint && k < m->ntasks; ++k) /* old heads learn from labels, T = 1 */
        if (!m->tasks[k].is_new) lwf_loss_params_of(&net->layers[m->tasks[k].loss])->targets = 1;
    t->old_truths = nt->offset; /* old slices come first */

    /* weights: old network (fresh run) or a whole-model backup (resume) */
    int whole = 0;
    size_t seen = 0;
    lwf_state st = {0, 0, 0};
    int have_state = 0;
    char teacher_w[4200];
    snprintf(teacher_w, sizeof teacher_w, "%s", bpath(t, ".teacher.weights"));
    if (o->weights && lwf_weights_load_model(m, o->weights, &whole, &seen, err)) return -1;
    if (o->weights && !whole) {
        /* our backups have a .state beside them: one that holds only the old network's
         * floats is a cut-off backup, not an old network to start a new run from */
        char sp[4200];
        snprintf(sp, sizeof sp, "%s.state", o->weights);
        if (access(sp, F_OK) == 0)
            return lwf_fail(err, "%s: holds only the old network's floats, but %s beside it says it is a whole-model "
                                 "backup: cut off? (resume from an intact backup, or start from the old network's "
                                 "weights)",
                            o->weights, sp);
    }
    int resume = whole && !o->clear;
    if (resume) {
        char sp[4200];
        snprintf(sp, sizeof sp, "%s.state", o->weights);
        int r = lwf_state_load(net, &st, sp, err);
        if (r < 0) return -1;
        size_t imgs = (size_t)net->batch * (size_t)net->subdivisions;
        /* both counters come from files: compare without multiplying (a corrupt iteration
         * overflowed st.iteration * imgs), and refuse a count beyond this run's end */
        if ((long long)(seen / imgs) > t->total)
            return lwf_fail(err, "%s: its header counts %zu images seen, iteration %zu, beyond this run's %lld "
                                 "iterations: a corrupt header (or give -clear to start the count again)",
                            o->weights, seen, seen / imgs, t->total);
        if (r == 0 && seen % imgs == 0 && (unsigned long long)st.iteration == seen / imgs) {
            have_state = 1;
            if (st.method != (int)o->method)
                return lwf_fail(err, "%s: this run was trained with another -method; resume it with the same one",
                                o->weights);
        } else {
            /* the update buffers are still the zeros the parser gave them */
            fprintf(stderr, "resume: no matching %s: momentum starts from zero\n", sp);
        }
        *net->seen = seen;
        if (t->distill && access(teacher_w, R_OK) != 0)
            return lwf_fail(err, "resume: the original old network %s is missing (it is written at the start of a "
                                 "run); start again from the old weights",
                            teacher_w);
    } else {
        *net->seen = 0;
    }
    t->seed = o->seed_set ? o->seed : have_state ? st.seed : (unsigned long long)time(NULL);
    srand((unsigned)t->seed); /* libdarknet's own randoms (dropout, crop layers) */
    if (!whole) init_new_head(m, t->seed);
    if (t->distill && o->teacher == LWF_TEACHER_RECORD && lwf_augment_is_on(&m->aug, net->w))
        return lwf_fail(err, "%s: -teacher record needs augmentation off (recorded responses are for the plain "
                             "image): set flip=0, min_crop=max_crop=width, angle=0, aspect=1, hue=0, "
                             "saturation=1, exposure=1 in [net], or use -teacher online",
                        o->cfg);
    if (t->distill) {
        lwf_build_opts bo = {net->batch, 1};
        t->teacher = lwf_model_load(o->cfg, &bo, err);
        if (!t->teacher) return -1;
    }

    /* Everything is checked: only from here on is the backup folder written to, so a
     * refused run leaves it as it was. */
    if (ensure_dir(t->data.backup, 1, err)) return -1;
    if (lock_folder(t, err)) return -1;
    if (!resume && t->distill && lwf_weights_save(net, teacher_w, lwf_old_layers(m), 0, err)) return -1;
    fprintf(stderr, "lwf train: %s, method %s, teacher %s, seed %llu, %d images, %lld warm-up + %d joint iterations%s\n",
            o->cfg, lwf_method_name(o->method),
            t->distill ? (o->teacher == LWF_TEACHER_RECORD ? "record" : "online") : "none", t->seed, t->src[0].paths.n,
            t->warmup, net->max_batches, resume ? " (resumed)" : "");
    if (resume) fprintf(stderr, "resume: from %s at iteration %lld\n", o->weights, (long long)(seen / ((size_t)net->batch * net->subdivisions)));

    if (t->distill) {
        if (lwf_weights_load(t->teacher->net, teacher_w, lwf_old_layers(t->teacher), NULL, err)) return -1;
        if (o->teacher == LWF_TEACHER_RECORD) {
            if (record_responses(t, teacher_w, err)) return -1;
            lwf_model_free(t->teacher);
            t->teacher = NULL;
        }
    }
    return open_log(t, resume, err);
}

/* The CSV log: rewritten (atomically) with the header and, on resume, the lines up to
 * the resumed iteration; then appended to, one line per iteration. */
static int open_log(trainer *t, int resume, lwf_err *err)
{
    char lp[4200];
    snprintf(lp, sizeof lp, "%s", bpath(t, ".log.csv"));
    long long upto = resume ? (long long)(*t->m->net->seen / ((size_t)t->m->net->batch * t->m->net->subdivisions)) : 0;
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    if (!text) return lwf_fail(err, "out of memory");
    len += (size_t)snprintf(text, cap, "iteration,epoch,phase,loss,avg_loss,rate,seconds,images");
    for (int q = 0; q < t->m->ntasks && len < cap - 200; ++q)
        len += (size_t)snprintf(text + len, cap - len, ",%s_loss", t->m->tasks[q].name);
    len += (size_t)snprintf(text + len, cap - len, "\n");
    FILE *old = resume ? fopen(lp, "r") : NULL;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    while (old && (got = getline(&line, &lcap, old)) > 0) {
        long long it;
        if (line[got - 1] != '\n' || sscanf(line, "%lld,", &it) != 1 || it < 1 || it > upto) continue;
        if (len + (size_t)got + 1 > cap) {
            cap = (cap + (size_t)got) * 2;
            char *nt = realloc(text, cap);
            if (!nt) break;
            text = nt;
        }
        memcpy(text + len, line, (size_t)got);
        len += (size_t)got;
    }
    free(line);
    if (old) fclose(old);
    int rc = lwf_write_file_atomic(lp, text, len, err);
    free(text);
    if (rc) return -1;
    t->logfd = open(lp, O_WRONLY | O_APPEND);
    if (t->logfd < 0) return lwf_fail(err, "%s: cannot append to the log: %s", lp, strerror(errno));
    return 0;
}

int lwf_train(const lwf_train_opts *o, lwf_err *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    t.o = o;
    t.lockfd = t.logfd = -1;
    int rc = setup(&t, err);
    if (!rc) rc = run(&t, err);
    if (t.logfd >= 0) close(t.logfd);
    lwf_model_free(t.m);
    lwf_model_free(t.teacher);
    free(t.record);
    free(t.base);
    for (int q = 0; q < t.nsrc; ++q) {
        source *sc = &t.src[q];
        lwf_loader_stop(sc->ld);
        free(sc->label);
        lwf_list_free(&sc->paths);
        lwf_list_free(&sc->labels);
        lwf_datacfg_free(&sc->data);
    }
    lwf_datacfg_free(&t.data);
    if (t.lockfd >= 0) close(t.lockfd);
    return rc;
}
