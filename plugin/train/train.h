/* train/: the record / warm-up / joint schedule (train.c: lwf_train, in lwf.h), and what it
 * is made of: the teacher (teacher.c), the CSV log (log.c), the backup folder with its lock
 * and backups (folder.c).  Each piece owns its memory and files; train.c owns the loop. */
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
    char path[4200];
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
} lwf_iter_report;

/* Rewrites path (atomically) with the header (a loss column per task of m) and the lines
 * of iterations 1..upto already in it (upto = 0: none; a resumed run passes its iteration,
 * so lines of iterations after the backup go), then opens it for appending. */
int lwf_log_open(lwf_log *log, const char *path, const lwf_model *m, long long upto, lwf_err *err);
/* Appends r's line (a task's loss empty where the task was not trained). */
int lwf_log_append(lwf_log *log, const lwf_model *m, const lwf_iter_report *r, lwf_err *err);
void lwf_log_close(lwf_log *log);

/* ---- the backup folder (folder.c) ----
 * <backup>/<cfg stem><suffix> files; one run at a time holds the folder's lock. */
typedef struct lwf_folder {
    const char *dir;       /* the .data's backup= (not owned) */
    char *base;            /* cfg file name without folder and extension, owned */
    int lockfd;            /* holds <dir>/.lwf-train.lock while we run, or -1 */
    char path[4096];       /* scratch for lwf_folder_path */
} lwf_folder;

/* Names the folder and the cfg whose backups it holds; checks that dir is a folder or does
 * not exist yet.  Writes nothing. */
int lwf_folder_init(lwf_folder *f, const char *dir, const char *cfg, lwf_err *err);
/* <dir>/<base><suffix>, in f's scratch buffer: valid until the next call. */
const char *lwf_folder_path(lwf_folder *f, const char *suffix);
/* Creates the folder, takes its lock (an error if another run holds it) and removes the
 * temporary files a killed run left.  The first write of a run. */
int lwf_folder_prepare(lwf_folder *f, const char *cfg, lwf_err *err);
/* Writes every layer of net as <base><suffix> (header: net's seen); with st, the optimiser
 * state beside it as <base><suffix>.state first. */
int lwf_folder_save(lwf_folder *f, const network *net, const char *suffix, const lwf_state *st, lwf_err *err);
void lwf_folder_close(lwf_folder *f);

#endif
