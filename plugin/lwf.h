/* darknet-lwf public API, all that src/ and bench/ use: build an LwF network (shared trunk
 * + task heads) from a cfg, load and save its weights, read Darknet .data files, run it by
 * plan, train, validate, predict, write cfgs (lwf init, lwf export), the kernels' switches.
 * Each function is defined in the plugin/ folder its section names. */
#ifndef LWF_H
#define LWF_H

#include <stddef.h>
#include <darknet.h>

/* Error report filled by every fallible call: "file:line: what is wrong". */
typedef struct lwf_err {
    char msg[8192];      /* room for two paths of PATH_MAX and the reason */
} lwf_err;

/* Formats a message into err (if not NULL); always returns -1 so callers can
 * write `return lwf_fail(err, ...)`.  A message longer than msg keeps its start and its
 * end (the reason) with "[...]" between; an argument may be err->msg itself. */
int lwf_fail(lwf_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One task: a head opened by [task] and closed by its loss layer. */
typedef struct lwf_task {
    char *name;        /* [task] name=, unique, owned */
    char *data;        /* [task] data= (.data path) or NULL, owned */
    int line;          /* cfg line of the [task] section */
    int first;         /* layer index of the [task] layer */
    int loss;          /* layer index of the head's loss layer */
    int is_new;        /* 1: ends in [softmax] or [lwf_softmax] (new task); 0: ends in [lwf_distill] */
    int classes;       /* logits of this head = inputs of its loss layer */
    int offset;        /* first column of this task's slice in a truth row */
    int old_classes;   /* a grown head ([lwf_softmax]): K, the outputs the old model had; else 0 */
    int class_layer;   /* a grown head: its class layer (K + M outputs, one per class); else -1 */
    char *exemplars;   /* [task] exemplars= (a list of old-class images) or NULL, owned */
    float exemplar_share; /* [task] exemplar_share=: the part of each batch they fill */
    /* temperature, lambda, t2_scaling: the loss layer's, lwf_task_loss */
} lwf_task;

/* Augmentation options of [net], as Darknet's classifier loader reads them. */
typedef struct lwf_augment {
    int min, max;                /* random crop scale range (pixels) */
    float angle, aspect, hue, saturation, exposure;
    int flip;                    /* random horizontal flip (stock Darknet: always on) */
    int center;                  /* centre crop instead of random crop */
} lwf_augment;

/* [task] exemplar_share when not given: a quarter of every batch (README, "Old images") */
#define LWF_EXEMPLAR_SHARE 0.25f

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
    int precise_bn;      /* [net] precise_bn: batches of the batch-norm re-estimation at the
                          * end of each phase (train/precise_bn.c); 0 = none, as stock */
    lwf_augment aug;
    int detector;        /* 1: a YOLO detector, one task (0) whose losses are its [yolo] and
                          * [lwf_yolo] layers; trunk = 0, and no layer is a [task] */
} lwf_model;

/* Options for building a model. */
typedef struct lwf_build_opts {
    int batch;           /* > 0: overrides [net] batch (subdivisions become 1) */
    int quiet;           /* 1: no table header and no layer numbers on stderr.  Each
                          * layer's own line (printed by libdarknet's parse functions and
                          * by [lwf_distill]) is printed whatever quiet says: a caller that
                          * wants none points fd 2 elsewhere around the call (the
                          * commands do: src/quiet.c); the plugin never redirects it */
} lwf_build_opts;

/* Parses an LwF cfg and builds its network.  Returns NULL and fills err on any
 * problem.  The caller owns the model: free it with lwf_model_free. */
lwf_model *lwf_model_load(const char *cfgpath, const lwf_build_opts *opts, lwf_err *err);
void lwf_model_free(lwf_model *m);

/* Index of the task named `name`, or -1. */
int lwf_task_find(const lwf_model *m, const char *name);

/* A head's loss settings, read from its loss layer (their one home, which the loss and
 * the trainer read): [lwf_distill] temperature, lambda, t2_scaling; the new task's
 * [softmax]: 1, 1, 0. */
typedef struct lwf_task_loss {
    float temperature;
    float lambda;
    int t2_scaling;
} lwf_task_loss;
lwf_task_loss lwf_task_loss_of(const lwf_model *m, int task);

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
    int train_line, valid_line, labels_line;  /* their lines in path, 0 when absent */
    char *old_data, *new_data; /* a grown detector's: the old and new tasks' .data, or NULL */
} lwf_datacfg;

int lwf_datacfg_read(const char *path, lwf_datacfg *d, lwf_err *err);
void lwf_datacfg_free(lwf_datacfg *d);

/* A list file (one path per line, blank lines skipped). */
typedef struct lwf_list {
    int n;
    char **items;        /* (n) owned strings */
    int *line;           /* (n) line of each item in its file */
} lwf_list;

int lwf_list_read(const char *path, lwf_list *l, lwf_err *err);
void lwf_list_free(lwf_list *l);

/* Reads the list named by d's `key` ("train", "valid" or "labels") with lwf_list_read; an
 * error names the .data line it came from (and, for a relative path, the current folder
 * it is read from). */
int lwf_datacfg_list(const lwf_datacfg *d, const char *key, lwf_list *l, lwf_err *err);


/* ---- images and batches ---- */

/* Decodes an image file with stb_image into a Darknet image (3 channels, 0..1, CHW).
 * Never reaches a shell or exits: a bad file is an error naming it. */
int lwf_image_load(const char *path, image *out, lwf_err *err);


/* ---- running the network by parts ---- */

/* Which layers run, in which mode, and which learn, for one kind of pass. */
typedef enum {
    LWF_PASS_EVAL,      /* every layer forward, inference mode */
    LWF_PASS_TEACHER,   /* trunk + old heads forward, inference mode */
    LWF_PASS_WARMUP,    /* trunk frozen (inference mode, no backward); new head learns */
    LWF_PASS_JOINT,     /* everything learns */
    LWF_PASS_FINETUNE   /* trunk + new head learn; old heads do not run */
} lwf_pass;

typedef struct lwf_plan {
    int n;
    unsigned char *fwd;    /* (n) run forward */
    unsigned char *train;  /* (n) forward in training mode (batch statistics, dropout) */
    unsigned char *learn;  /* (n) backward and update */
} lwf_plan;

int lwf_plan_make(const lwf_model *m, lwf_pass pass, lwf_plan *p);
void lwf_plan_free(lwf_plan *p);

/* Darknet's forward_network/backward_network/update_network restricted to a plan.
 * forward reads net->input and net->truth; backward gives a layer no input delta when
 * the layer before it does not learn, so a frozen trunk costs no backward time. */
void lwf_forward(network *net, const lwf_plan *p);
void lwf_backward(network *net, const lwf_plan *p);
void lwf_update(network *net, const lwf_plan *p, float rate);


/* ---- training (plugin/train/train.c) ---- */

typedef enum { LWF_METHOD_LWF, LWF_METHOD_FINETUNE, LWF_METHOD_FEATEXT, LWF_METHOD_JOINT } lwf_method;

/* The method named "lwf", "finetune", "featext" or "joint"; -1 on another name. */
int lwf_method_parse(const char *name, lwf_method *m);
typedef enum { LWF_TEACHER_ONLINE, LWF_TEACHER_RECORD } lwf_teacher_mode;

typedef struct lwf_train_opts {
    const char *datacfg;       /* the new task's .data */
    const char *cfg;           /* the LwF cfg */
    const char *weights;       /* old network, or a backup to resume; may be NULL */
    int clear;                 /* start the count again */
    int seed_set;
    unsigned long long seed;
    lwf_teacher_mode teacher;
    lwf_method method;
    long long stop;            /* > 0: stop after this many iterations, with a backup */
    int backup_every;          /* iterations between .backup files (Darknet: 100) */
    int quiet;                 /* no per-iteration line */
    int valid_every;           /* > 0: top-1 of every task with a valid list every this many
                                * iterations and at the end (-valid N) */
} lwf_train_opts;

/* Runs the record / warm-up / joint schedule.  Returns 0 or -1 with err set. */
int lwf_train(const lwf_train_opts *o, lwf_err *err);


/* ---- evaluation (plugin/eval/eval.c) ---- */

typedef struct lwf_accuracy {
    int images;
    int topk;            /* K of top-K */
    double top1, topK;   /* fractions */
} lwf_accuracy;

/* Top-1 and top-K accuracy of task `task` over its .data's valid list, each image
 * centre-cropped as stock `classifier valid` does.  m should be built with batch 1. */
int lwf_validate(lwf_model *m, int task, int topk, lwf_accuracy *acc, lwf_err *err);
/* The same in parts: acc (3): [0] every image, [1] the images of a grown head's old classes
 * (labels 0..K-1), [2] those of its new ones; for another head [1] and [2] count nothing.
 * Every image is scored against all the head's classes. */
int lwf_validate_parts(lwf_model *m, int task, int topk, lwf_accuracy *acc, lwf_err *err);

/* A multi-head model's task-agnostic answer (plugin/eval/merged.c): every head's
 * probabilities (softmax of its logits) side by side in cfg order, then, calibrated, each
 * class's probability p mapped to scale·p + bias, the answer the largest.  The calibration is
 * measured on the new task's training images (what a user has; no old image): for each head
 * and each of its classes c, the mean and standard deviation of p_c over the images on which
 * that head answers c (the head's own over all images when fewer than LWF_MERGED_CALIB_MIN
 * answer c; at least LWF_MERGED_CALIB_SD_MIN), and scale = 1/sd, bias = -mean/sd: a head wins
 * an image when it is more confident than it usually is on the new task's images.  Without a
 * calibration (NULL, or lwf_merged_calibrate with 0 images: scale 1, bias 0) the answer is the
 * class of the more confident head.
 * lwf_merged_classes: their count.  lwf_merged_calib_init/add/finish/free: the calibration
 * from (classes) probability vectors, heads of size[0..heads) classes (calloc'd arrays, owned);
 * lwf_merged_calib_apply: p (classes) := scale·p + bias, in place.
 * lwf_merged_calibrate: from the first `images` (> 0) images of the new task's train= list,
 * centre-cropped; 0 images: the identity.  lwf_merged_scores: after a forward pass, the
 * (classes) scores into out (calib may be NULL).  lwf_validate_merged: top-1 and top-K (topk <
 * 1: 1) over every task's valid images, each labelled by its task's first merged class plus
 * its label, centre-cropped.  All return 0, or -1 with err. */
#define LWF_MERGED_CALIB_IMAGES 5000 /* lwf valid -merged and lwf export ... all, unless told */
#define LWF_MERGED_CALIB_MIN 20
#define LWF_MERGED_CALIB_SD_MIN 1e-3
typedef struct lwf_merged_calib {
    int classes, heads, images; /* merged classes, heads, images added */
    int *size;                  /* (heads) classes of each head */
    double *sum, *sq;           /* (classes + heads): per class, then per head (its answer's p) */
    long *count;                /* (classes + heads) */
    float *scale, *bias;        /* (classes), set by finish */
} lwf_merged_calib;
int lwf_merged_classes(const lwf_model *m);
int lwf_merged_calib_init(lwf_merged_calib *c, int heads, const int *size, lwf_err *err);
void lwf_merged_calib_add(lwf_merged_calib *c, const float *p);
int lwf_merged_calib_finish(lwf_merged_calib *c, lwf_err *err);
void lwf_merged_calib_free(lwf_merged_calib *c);
void lwf_merged_calib_apply(const lwf_merged_calib *c, float *p);
int lwf_merged_calibrate(lwf_model *m, int images, lwf_merged_calib *c, lwf_err *err);
void lwf_merged_scores(const lwf_model *m, const lwf_merged_calib *c, float *out);
int lwf_validate_merged(lwf_model *m, const lwf_merged_calib *c, int topk, lwf_accuracy *acc, lwf_err *err);

/* Runs every head on one image (letterboxed, as stock `classifier predict`); each
 * task's probabilities are then in m->net->layers[task.loss].output. */
int lwf_predict(lwf_model *m, const char *imagepath, lwf_err *err);


/* ---- detectors (plugin/eval/detect.c) ---- */

/* One image's detections by detector m (built with batch 1): the image letterboxed to the
 * network as stock `detector test` and `detector valid` do, libdarknet's get_network_boxes
 * (thresh, hier_thresh .5, boxes relative to the image) and do_nms_sort (nms; 0: none).
 * *im gets the decoded image (free_image), *dets libdarknet's detections (free_detections). */
int lwf_detect(lwf_model *m, const char *imagepath, float thresh, float nms, image *im, detection **dets, int *n,
               lwf_err *err);

typedef struct lwf_map_opts {
    const char *data;    /* the .data: a plain detector's valid= list, or a grown one's
                          * old_data= and new_data= valid lists (new ids shifted by K) */
    float iou;           /* a detection is right above this IoU (VOC: .5) */
    float thresh, nms;   /* stock `detector valid`: .005, .45 */
} lwf_map_opts;

typedef struct lwf_map_result {
    int classes, old_classes;  /* K + M and K (0 for a plain detector: no old classes) */
    lwf_list names;            /* (classes) the .data's names */
    double *ap;                /* (classes) VOC all-point AP; NAN for a class with no box */
    double mean_old, mean_new, mean_all; /* means over classes [0, K), [K, C), all (NANs left
                                          * out; NAN when none) */
    int images;
} lwf_map_result;

/* K of a detector: its [lwf_yolo] layers' old_classes (the trainer checks they agree); 0
 * for plain [yolo] (and for a classifier).  In plugin/cfg/builder.c. */
int lwf_det_old_classes(const lwf_model *m);

/* Per-class AP of detector m (batch 1) over o->data's validation images. */
int lwf_map(lwf_model *m, const lwf_map_opts *o, lwf_map_result *r, lwf_err *err);
void lwf_map_result_free(lwf_map_result *r);

/* ---- cfg tools (plugin/tools/cfgtools.c): lwf init and lwf export ---- */

/* What lwf_init_cfg wrote. */
typedef struct lwf_init_info {
    int from_lwf;        /* 1: the input was an LwF cfg (a new head was appended) */
    int head;            /* stock input: layer index of the old head's first layer; else -1 */
    int old_classes;     /* class count of the head the new one mirrors */
    int new_classes;     /* classes= of the new .data */
    int old_heads;       /* heads before the new one in the output */
    char old_task[256];  /* stock input: the old task's name (the cfg's file name) */
    char new_task[256];  /* the new task's name (the .data's file name, made unique) */
    int detector;        /* 1: lwf init -grow of a detector ([yolo] cfg): <stem>.data and <stem>.names */
    char data[4200];     /* lwf init -grow: the grown .data it wrote beside the cfg (<stem>.data) */
} lwf_init_info;

/* Writes the LwF cfg `outcfg` (atomically; an existing file is replaced) for learning the
 * task of `newdata` on top of `oldcfg`:
 * - oldcfg a stock classifier (ends in [softmax]): [net] + trunk, [task] (named after
 *   oldcfg) + old head + [lwf_distill] (temperature=2, lambda=1), [task] (named after
 *   newdata, data=newdata) + a copy of the old head with newdata's class count + the stock
 *   [softmax].  The old head is found by the rule in README.md ("lwf init"), or starts at
 *   layer `split` when split >= 0.
 * - oldcfg an LwF cfg (has [task]): every [softmax] head becomes old ([lwf_distill]
 *   temperature=2, lambda=1), [lwf_distill] heads stay, and a new head mirroring the last
 *   head is appended.  split must be -1.
 * [net] gets warmup_batches = max_batches / 2, warmup_learning_rate = learning_rate and
 * precise_bn = 50 when absent.  Options are written as key=value, in order, without comments.  info may be NULL. */
int lwf_init_cfg(const char *oldcfg, const char *newdata, const char *outcfg, int split, lwf_init_info *info,
                 lwf_err *err);

/* lwf init -grow: writes the grown cfg `outcfg` (a stock classifier's head, or an LwF cfg's
 * last head, given K + M outputs and [lwf_softmax] old_classes=K, K = classes of olddata)
 * and beside it, named after its stem, <stem>.data (classes K + M, train = newdata's,
 * valid = <stem>.valid.list, labels = <stem>.labels, backup = newdata's), <stem>.labels (old
 * then new) and <stem>.valid.list (old valid list, then new); its [task] is named <stem>
 * with data=<stem>.data.  Every output is checked before any is written, each atomically.
 * A detector (oldcfg has [yolo]): every [yolo] becomes [lwf_yolo] (classes K + M,
 * old_classes=K; the distillation keys left at their defaults), the convolution before each
 * (K + M + 5) x masks filters, and beside it <stem>.names (olddata's names, then newdata's)
 * and <stem>.data (classes, names, backup = newdata's, old_data=olddata, new_data=newdata). */
int lwf_init_grow(const char *oldcfg, const char *newdata, const char *olddata, const char *outcfg,
                  lwf_init_info *info, lwf_err *err);

/* 1 if the cfg at path reads and has a [yolo] or [lwf_yolo] section (a detector), else 0
 * (plugin/cfg/builder.c). */
int lwf_cfg_is_detector(const char *cfgpath);

/* Writes task `task` of an LwF model as a stock Darknet classifier: outcfg = [net] without
 * the plugin's keys, the trunk, the task's head ending in [softmax]; outweights = the
 * weights of exactly those layers (from `weights`, old network or whole model).  Both
 * written atomically.  A detector (task = its name, or all): the stock cfg ([yolo] for every
 * [lwf_yolo], without [task] and the plugin's keys) and every layer's weights, which must be
 * the whole model's. */
int lwf_export(const char *cfg, const char *weights, const char *task, const char *outcfg, const char *outweights,
               lwf_err *err);

/* ---- fast CPU kernels (plugin/kernels/install.c: the kernel table; plugin/runtime/) ---- */

/* Reference mode: Darknet's own kernels everywhere (its triple-loop gemm, its layer
 * functions).  On when the environment has LWF_REFERENCE=1 (read once) or after
 * lwf_set_reference(1) (the commands' -reference).  Process-wide, because libdarknet
 * calls gemm without context (plugin/runtime/runtime.h); read at every call, by the gemm
 * and by the installed layer kernels alike, so it may change between passes (not between
 * a forward pass and its backward pass). */
int lwf_reference(void);
void lwf_set_reference(int on);

/* Whether layer l has one of our kernels installed (it runs it unless lwf_reference()). */
int lwf_kernels_installed(const layer *l);
/* Seeds the random streams of net's installed kernels ([dropout]: each value's uniform is
 * a function of the seed, the layer, *net->seen and the passes at that count).  The
 * trainer calls it with the run's seed; unseeded, the seed is 0. */
void lwf_kernels_seed(network *net, unsigned long long seed);
/* Threads the kernels use: LWF_THREADS if set (1..64; any other value makes building a
 * network fail with a message naming it), else the online CPUs. */
int lwf_threads(void);
/* "OpenBLAS core <name>" and how it was chosen. */
const char *lwf_blas_info(void);

/* Calls counted since the process started. */
typedef struct lwf_kernel_stats {
    long long fast_gemm;     /* gemm/gemm_cpu calls served by OpenBLAS */
    long long ref_gemm;      /* gemm/gemm_cpu calls served by libdarknet's gemm_cpu */
    int darknet_gemm_found;  /* libdarknet's own gemm_cpu was found (reference mode works) */
} lwf_kernel_stats;
void lwf_kernel_stats_get(lwf_kernel_stats *s);

#endif
