/* train/: the record / warm-up / joint schedule (train.c: lwf_train, in lwf.h), and what it
 * is made of: the teacher (teacher.c), the CSV log (log.c), the backup folder with its lock
 * and backups (folder.c), what follows each iteration (progress.c), validation while
 * training (valid.c), the chart (chart.c).  Each piece owns its memory and files; train.c
 * owns the classifier's loop, detect.c the detector's. */
#ifndef LWF_TRAIN_H
#define LWF_TRAIN_H

#include "io/io.h"
#include "run/run.h"

/* "lwf", "finetune", "featext", "joint" ("?" for another value). */
const char *lwf_method_name(lwf_method m);

/* ---- the teacher (teacher.c) ----
 * The original trunk + old heads in inference mode, whose answers are the old heads'
 * distillation targets.  Online: a frozen copy of that network runs on every batch.
 * Record: its answers to every training image (plain, without augmentation) are computed
 * once and cached; a batch's targets are then looked up by image index.  Both fill the same
 * truth columns with the same numbers when augmentation is off. */
typedef struct lwf_teacher lwf_teacher;

typedef struct lwf_teacher_opts {
    lwf_teacher_mode mode;
    const char *weights;   /* the original old network (trunk + old heads), a .weights file */
    const char *list_path; /* record: the training list file (part of the cache key) */
    const lwf_list *list;  /* record: its images; a batch's image indices index it */
    const char *cache;     /* record: the cache file of recorded responses */
} lwf_teacher_opts;

/* 0 if mode can teach m as configured; otherwise -1 and an error naming the cfg
 * (recorded responses are for the plain image: record needs augmentation off). */
int lwf_teacher_check(const lwf_model *m, lwf_teacher_mode mode, lwf_err *err);

/* Builds the teacher of student m (its cfg's trunk + old heads, batch m->net->batch) from
 * o->weights; with record, reuses the cache if its key matches and its values are finite,
 * else records every image of o->list and writes the cache (atomically).  Every old task's
 * target is its head's logits (the input of its [lwf_distill]), into the task's truth slice.
 * Returns NULL and fills err on failure; free with lwf_teacher_close. */
lwf_teacher *lwf_teacher_open(const lwf_model *m, const lwf_teacher_opts *o, lwf_err *err);

/* Writes the targets of n batch rows into truth (row r at truth + r * stride, the old
 * tasks' columns only; other columns are left as they are).  X: (n, inputs) the rows'
 * network inputs (online); index: (n) each row's position in the list (record).
 * n <= m->net->batch.  Returns 0, or -1 with err on more rows than that (online) or an
 * index outside the list (record). */
int lwf_teacher_fill(lwf_teacher *t, const int *index, const float *X, int n, float *truth, int stride,
                     lwf_err *err);
void lwf_teacher_close(lwf_teacher *t);
/* A detector's teacher: the old detector of m (lwf_model_load_old_detector, batch
 * m->net->batch) with the weights of `weights` (a stock .weights of it), online; fill writes
 * each [lwf_yolo] layer's slice with the old detector's [yolo] output for the same rows. */
lwf_teacher *lwf_teacher_open_detector(const lwf_model *m, const char *weights, lwf_err *err);

/* ---- detectors (detect.c) ----
 * lwf train of a detector cfg ([yolo] / [lwf_yolo]): one task, Darknet's detection
 * augmentation, the [yolo] cost; -method lwf distils the old detector into each [lwf_yolo]. */
int lwf_train_detector(const lwf_train_opts *o, lwf_err *err);
/* The old detector's weights from a grown student's: every layer copied, and in each
 * convolution before an [lwf_yolo] each anchor's box, objectness and K old class rows. */
int lwf_detector_old_weights(const lwf_model *student, lwf_model *old, lwf_err *err);

/* ---- a grown head (grow.c) ---- */

/* Whether the new task's head grows (ends in [lwf_softmax]). */
int lwf_grow_is(const lwf_model *m);
/* Layers the teacher's weights file holds: every layer for a grown head (its first K logits
 * are the old model's), else the old network (lwf_old_layers). */
int lwf_teacher_layers(const lwf_model *m);
/* Turns the grown head's distillation on or off (off without a teacher: warm-up, finetune,
 * featext, joint). */
void lwf_grow_set_distill(lwf_model *m, int on);
/* A plan of the new head's training: a grown head's layers before its class layer are the
 * old model's, so they neither train nor learn. */
void lwf_grow_plan(const lwf_model *m, lwf_plan *p);
/* Rows 0..K-1 of the grown class layer kept while only the new rows learn (the warm-up, and
 * -method featext): taken once, put back after every update with their momentum zeroed, so
 * they stay bit for bit as they were (their batch-norm statistics too). */
typedef struct lwf_grow_freeze {
    int layer, rows;
    float *saved;        /* (lwf_layer_rows_floats) or NULL: nothing kept */
} lwf_grow_freeze;
int lwf_grow_freeze_begin(const lwf_model *m, lwf_grow_freeze *f, lwf_err *err);
void lwf_grow_freeze_apply(lwf_model *m, const lwf_grow_freeze *f);
void lwf_grow_freeze_end(lwf_grow_freeze *f);
/* The new-class bias correction of [lwf_softmax] bias_correction=1, weight aligning (Zhao et
 * al. 2020): the new rows' logits scaled so that their mean weight norm (times the batch-norm
 * gain) is the old rows'.  Returns the factor (1: nothing done). */
double lwf_grow_align(lwf_model *m);
/* Whether it applies: bias_correction=1, or the default (-1) and no exemplars. */
int lwf_grow_corrects(const lwf_model *m);

/* ---- the CSV log (log.c) ----
 * <backup>/<cfg>.log.csv: a header, then one line per iteration, each appended with one
 * write() so a killed run leaves whole lines only. */
typedef struct lwf_log {
    int fd;                /* O_APPEND, or -1 */
    char *path;            /* owned */
} lwf_log;

/* What one iteration reports, on stdout (unless -quiet) and as a line of the CSV log. */
typedef struct lwf_iter_report {
    long long it;            /* iteration, from 1 */
    float epoch;             /* epochs of the new task's images seen */
    int warmup;              /* the phase */
    double loss, avg, rate;  /* weighted loss, its running average, the learning rate */
    double seconds;          /* this iteration's time */
    size_t images;           /* images seen after it */
    const int *scored;       /* (ntasks) the task's loss was computed */
    const double *task_loss; /* (ntasks) */
    const double *top1;      /* (ntasks) -valid's top-1 after this iteration, NAN where not
                              * measured; NULL: none measured */
    const double *map;       /* a detector's: (3) -valid's mAP over all, old, new classes (NAN:
                              * none to average); NULL: not measured */
} lwf_iter_report;

/* -valid's columns of m's log: a top-1 per task; a detector's mAP (1), a grown one's mAP
 * all, old, new (3). */
int lwf_log_valid_columns(const lwf_model *m);
/* Rewrites path (atomically) with the header (a loss column per task of m, then
 * lwf_log_valid_columns: <task>_top1 per task, a detector's <task>_map [, _map_old,
 * _map_new]) and the lines
 * of iterations 1..upto already in it (upto = 0: none; a resumed run passes its iteration,
 * so lines of iterations after the backup go), then opens it for appending. */
int lwf_log_open(lwf_log *log, const char *path, const lwf_model *m, long long upto, lwf_err *err);
/* Appends r's line (a task's loss empty where the task was not trained, its top-1 empty
 * where not measured). */
int lwf_log_append(lwf_log *log, const lwf_model *m, const lwf_iter_report *r, lwf_err *err);
void lwf_log_close(lwf_log *log);

/* ---- the backup folder (folder.c) ----
 * <backup>/<cfg stem><suffix> files; one run at a time holds the folder's lock. */
/* The longest suffix lwf_folder_path takes (the run's own names: ".teacher.weights",
 * "_<epoch>.weights", ...). */
#define LWF_FOLDER_SUFFIX_MAX 64

typedef struct lwf_folder {
    const char *dir;       /* the .data's backup= (not owned) */
    char *base;            /* cfg file name without folder and extension, owned */
    int lockfd;            /* holds <dir>/.lwf-train.lock while we run, or -1 */
    char *path;            /* scratch for lwf_folder_path: room for dir, base and any suffix */
    size_t cap;
} lwf_folder;

/* Names the folder and the cfg whose backups it holds; checks that dir is a folder or does
 * not exist yet, and is not "/" or a system folder (/etc, /usr, ...).  Writes nothing. */
int lwf_folder_init(lwf_folder *f, const char *dir, const char *cfg, lwf_err *err);
/* <dir>/<base><suffix>, in f's scratch buffer: valid until the next call.  suffix is one of
 * the run's own (at most LWF_FOLDER_SUFFIX_MAX characters). */
const char *lwf_folder_path(lwf_folder *f, const char *suffix);
/* Creates the folder, takes its lock (an error if another run holds it) and removes the
 * temporary files a killed run left: only this cfg's own names (<base><output>.tmp.<pid>,
 * as lwf_write_file_atomic makes them) whose pid is not a live process.  The first write
 * of a run. */
int lwf_folder_prepare(lwf_folder *f, const char *cfg, lwf_err *err);
/* Writes every layer of net as <base><suffix> (header: net's seen); with st, the optimiser
 * state beside it as <base><suffix>.state first. */
int lwf_folder_save(lwf_folder *f, const network *net, const char *suffix, const lwf_state *st, lwf_err *err);
void lwf_folder_close(lwf_folder *f);

/* ---- after each iteration (progress.c), for both trainers ---- */

/* Seconds as "<m>m<ss>s", or "<h>h<mm>m" from an hour on (rounded). */
void lwf_fmt_time(double s, char *buf, size_t n);
/* Validations still to come after iteration `it` of `total` with -valid `every` (0: none):
 * every `every` iterations and the last. */
long long lwf_validations_left(long long every, long long total, long long it);
/* The progress line on stdout (unless quiet): "<it>, <epoch>: <loss>, <avg> avg, <rate> rate,
 * <s> seconds, <images> images[, <phase>], <task> <loss>..., <eta> left" (phase NULL: none;
 * the tasks whose loss was scored), then r's line of the CSV log. */
int lwf_report(lwf_log *log, const lwf_model *m, const lwf_iter_report *r, const char *phase, const char *eta,
               int quiet, lwf_err *err);

/* The run's figures lwf_save_backups needs. */
typedef struct lwf_backup_at {
    long long warmup, total;  /* iterations: the warm-up's end (0: none), the run's end */
    int N;                    /* images of an epoch */
    unsigned long long seed;  /* the run's, kept in each backup's .state */
} lwf_backup_at;

/* After iteration `it`: <cfg>.backup with its .state (every o->backup_every, default 100;
 * at the warm-up's end; at -stop; never at the run's end), <cfg>_<epoch>.weights when an
 * epoch of N images ends.  *stop is set at -stop (said on stderr, with the backup). */
int lwf_save_backups(lwf_folder *dir, const network *net, const lwf_train_opts *o, const lwf_backup_at *at,
                     long long it, int *stop, lwf_err *err);

/* ---- batch-norm re-estimation (precise_bn.c) ----
 * [net] precise_bn=N: at the end of a phase, the rolling mean and variance of each layer
 * lwf_precise_bn_layer names become the mean of its batch means and of its batch variances
 * (Darknet's unbiased ones) over N batches, each a forward pass in training mode with the
 * phase's final weights.  Nothing else changes: weights, update buffers, the seen and update
 * counters, the training's batch streams and libc's random() state are as before. */
#define LWF_PRECISE_BN_MAX_SOURCES 64

/* Images that fill rows [row0, row0 + rows) of each batch of the pass. */
typedef struct lwf_bn_source {
    const lwf_list *paths;
    int row0, rows;
} lwf_bn_source;

/* Whether the pass re-estimates layer i of net after a phase run with plan: the layer runs
 * forward in training mode and keeps rolling batch-norm statistics. */
int lwf_precise_bn_layer(const network *net, const lwf_plan *plan, int i);
/* Re-estimates them from `batches` batches (0: does nothing), the sources' images drawn by
 * their own loaders (m's augmentation; source q's stream is lwf_loader_start's with seed
 * seed + 7919 q, from its batch 0).  0, or -1 and err (a bad image, out of memory). */
int lwf_precise_bn(lwf_model *m, const lwf_plan *plan, int batches, const lwf_bn_source *src, int nsrc,
                   unsigned long long seed, lwf_err *err);

/* ---- validation while training (valid.c) ----
 * -valid N: the valid list of every task that has one, scored on a copy of the training
 * network's weights by a network of its own (built from the same cfg, at a small batch),
 * so training reads nothing validation writes: same weights as a run without -valid. */
typedef struct lwf_trainval lwf_trainval;

/* Opens the valid list of every classifier task of m that has one: its [task] data=, or
 * for the new task without one, newdata (the training .data).  Decodes the images now (a
 * bad one is an error naming its list line).  NULL with err when no task has a valid list
 * or one cannot be read. */
lwf_trainval *lwf_trainval_open(const lwf_model *m, const char *newdata, lwf_err *err);
/* Scores every open task on net's current weights (net: m->net of lwf_trainval_open):
 * top1 (ntasks) gets each task's top-1, NAN where it has no valid list; *images the images
 * scored.  0, or -1 with err. */
int lwf_trainval_run(lwf_trainval *v, const network *net, double *top1, long *images, lwf_err *err);
void lwf_trainval_close(lwf_trainval *v);

/* A detector's -valid: lwf map (IoU .5, thresh .005, nms .45) over the valid lists of its
 * [task] data=, or without one of newdata (the training .data: a plain detector's valid=, a
 * grown one's old_data= and new_data=), on a copy of the training weights in a network of
 * its own (the cfg at batch 1, as lwf map builds it).  Open checks every valid image (its
 * label file read, the image decoded): a bad one is an error naming its list line. */
typedef struct lwf_detval lwf_detval;

lwf_detval *lwf_detval_open(const lwf_model *m, const char *newdata, lwf_err *err);
/* map (3): the means over all classes, the old ones and the new ones (NAN: none to
 * average, e.g. old of a plain detector), exactly lwf map's on net's weights; *images the
 * images scored.  0, or -1 with err. */
int lwf_detval_run(lwf_detval *v, const network *net, double *map, int *images, lwf_err *err);
void lwf_detval_close(lwf_detval *v);

/* ---- the chart (chart.c) ----
 * <backup>/<cfg>.chart.png: each task's loss and top-1 (a detector's loss and mAP) over the
 * iterations, from the CSV
 * log, drawn by gnuplot (a child process given an argument vector, in a private folder; no
 * name or path in its command text: the log is its data file).  Never fails a run: a
 * failure is one warning on stderr, then no more charts in this run. */
#define LWF_CHART_EVERY 200  /* iterations between charts without -valid */

typedef struct lwf_chart {
    char png[4200];          /* the picture's path */
    int off;                 /* a draw failed: no more */
} lwf_chart;

void lwf_chart_init(lwf_chart *c, const char *png);
/* Draws the log at logpath (the columns of log.c for model m) into c->png, atomically;
 * warmup, total: the phases' boundary (marked when inside the run) and the x range. */
void lwf_chart_draw(lwf_chart *c, const char *logpath, const lwf_model *m, long long warmup, long long total);

#endif
