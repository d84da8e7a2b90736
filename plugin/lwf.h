/* darknet-lwf public API: build an LwF network (shared trunk + task heads) from a cfg,
 * load and save its weights, read Darknet .data files.  Training, evaluation and the
 * command line live elsewhere (plugin/train.c, plugin/eval.c, src/). */
#ifndef LWF_H
#define LWF_H

#include <stddef.h>
#include <darknet.h>

/* Error report filled by every fallible call: "file:line: what is wrong". */
typedef struct lwf_err {
    char msg[2048];
} lwf_err;

/* Formats a message into err (if not NULL); always returns -1 so callers can
 * write `return lwf_fail(err, ...)`. */
int lwf_fail(lwf_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One task: a head opened by [task] and closed by its loss layer. */
typedef struct lwf_task {
    char *name;        /* [task] name=, unique, owned */
    char *data;        /* [task] data= (.data path) or NULL, owned */
    int line;          /* cfg line of the [task] section */
    int first;         /* layer index of the [task] layer */
    int loss;          /* layer index of the head's loss layer */
    int is_new;        /* 1: ends in [softmax] (new task); 0: ends in [lwf_distill] */
    int classes;       /* logits of this head = inputs of its loss layer */
    int offset;        /* first column of this task's slice in a truth row */
    float temperature; /* [lwf_distill] temperature (old heads only) */
    float lambda;      /* [lwf_distill] lambda (old heads only) */
    int t2_scaling;    /* [lwf_distill] t2_scaling (old heads only) */
} lwf_task;

/* Augmentation options of [net], as Darknet's classifier loader reads them. */
typedef struct lwf_augment {
    int min, max, size;          /* random crop scale range and output side (pixels) */
    float angle, aspect, hue, saturation, exposure;
    int flip;                    /* random horizontal flip (stock Darknet: always on) */
    int center;                  /* centre crop instead of random crop */
} lwf_augment;

/* An LwF network: all layers in one Darknet network, trunk first, then heads. */
typedef struct lwf_model {
    network *net;        /* owned; layers in cfg order */
    char *cfg;           /* cfg path, owned */
    int *line;           /* (net->n) cfg line of each layer's section */
    int trunk;           /* layers [0, trunk) are the shared trunk */
    int ntasks;
    lwf_task *tasks;     /* (ntasks) in cfg order */
    int new_task;        /* index of the new task (the last head) */
    int warmup_batches;  /* [net] warmup_batches, >= 0 */
    float warmup_learning_rate;
    lwf_augment aug;
} lwf_model;

/* Options for building a model. */
typedef struct lwf_build_opts {
    int batch;           /* > 0: overrides [net] batch (subdivisions become 1) */
    int quiet;           /* 1: no layer table on stderr */
} lwf_build_opts;

/* Parses an LwF cfg and builds its network.  Returns NULL and fills err on any
 * problem.  The caller owns the model: free it with lwf_model_free. */
lwf_model *lwf_model_load(const char *cfgpath, const lwf_build_opts *opts, lwf_err *err);
void lwf_model_free(lwf_model *m);

/* Index of the task named `name`, or -1. */
int lwf_task_find(const lwf_model *m, const char *name);

/* Number of layers that hold the old network: trunk + old heads (every layer
 * before the new head's [task]). */
int lwf_old_layers(const lwf_model *m);

/* Floats a .weights file holds for layers [0, upto) of net. */
size_t lwf_weights_count(const network *net, int upto);

/* Loads a Darknet .weights file into layers [0, upto).  The file must hold
 * exactly the floats those layers need; otherwise nothing is changed and err
 * names the expected and found counts.  *seen (may be NULL) gets the header's
 * image counter. */
int lwf_weights_load(network *net, const char *path, int upto, size_t *seen, lwf_err *err);

/* Loads a file that holds either the old part (trunk + old heads) or the whole
 * model (a backup of an LwF run).  *whole is set to 1 for the latter. */
int lwf_weights_load_model(lwf_model *m, const char *path, int *whole, size_t *seen, lwf_err *err);

/* Writes layers [0, upto) of net as Darknet .weights (version 0.2.0, `seen` in
 * the header) to a temporary file, flushed, then renamed onto path. */
int lwf_weights_save(const network *net, const char *path, int upto, size_t seen, lwf_err *err);

/* A Darknet .data file, read strictly. */
typedef struct lwf_datacfg {
    char *path;
    int classes;         /* classes=, required, >= 1 */
    char *train, *valid, *labels, *backup;  /* owned, NULL when absent */
    int top;             /* top=, default 1 */
} lwf_datacfg;

int lwf_datacfg_read(const char *path, lwf_datacfg *d, lwf_err *err);
void lwf_datacfg_free(lwf_datacfg *d);

/* A list file (one path per line, blank lines skipped). */
typedef struct lwf_list {
    int n;
    char **items;        /* (n) owned strings */
} lwf_list;

int lwf_list_read(const char *path, lwf_list *l, lwf_err *err);
void lwf_list_free(lwf_list *l);

/* Label of each path by Darknet's rule (the label string occurs in the path);
 * a path that matches no label or several is an error naming the list line. */
int lwf_labels_of(const lwf_list *paths, const char *listpath, const lwf_list *labels,
                  int *out /* (paths->n) */, lwf_err *err);

/* Writes `len` bytes to path atomically: temporary file, fsync, rename. */
int lwf_write_file_atomic(const char *path, const void *buf, size_t len, lwf_err *err);

#endif
