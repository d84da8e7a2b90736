/* Helpers shared by the plugin's source files and its tests (not part of the public API):
 * strict parsing, files, randoms, the loader, training state, the cfg reader, the loss layers. */
#ifndef LWF_INTERNAL_H
#define LWF_INTERNAL_H

#include "lwf.h"
#include "dn.h"

/* Strict conversions: the whole string must be a number; return 0 or -1. */
int lwf_parse_int(const char *s, long lo, long hi, int *out);
int lwf_parse_float(const char *s, double lo, double hi, float *out);

/* strdup that returns NULL on NULL. */
char *lwf_strdup(const char *s);

/* Writes `len` bytes to path atomically: temporary file, fsync, rename. */
int lwf_write_file_atomic(const char *path, const void *buf, size_t len, lwf_err *err);

/* 64-bit FNV-1a of a file's bytes folded into h; -1 if unreadable. */
int lwf_hash_file(const char *path, unsigned long long *h, lwf_err *err);

/* Label of each path by Darknet's rule (the label string occurs in the path);
 * a path that matches no label or several is an error naming the list line. */
int lwf_labels_of(const lwf_list *paths, const char *listpath, const lwf_list *labels,
                  int *out /* (paths->n) */, lwf_err *err);

/* ---- random numbers: every draw comes from a seed and a position, so runs repeat
 * and background threads need no shared state ---- */
typedef struct lwf_rng {
    unsigned long long s;
} lwf_rng;

/* A stream for (seed, a, b): e.g. (seed, epoch, 0) for an epoch's order. */
lwf_rng lwf_rng_make(unsigned long long seed, unsigned long long a, unsigned long long b);
unsigned long long lwf_rng_next(lwf_rng *r);
float lwf_rng_uniform(lwf_rng *r, float lo, float hi);  /* [lo, hi) */
float lwf_rng_normal(lwf_rng *r);                         /* N(0, 1) */

/* ---- training images and batches (plugin/loader.c) ---- */

/* Whether aug changes anything (random crop/scale, aspect, angle, colour, flip). */
int lwf_augment_is_on(const lwf_augment *aug, int w);

/* One network input of w x h from im: with augmentation on, Darknet's classifier
 * augmentation (random scale/aspect/rotation crop, flip, hue/saturation/exposure) with
 * randoms from rng; off (or aug->center), Darknet's centre crop to w x h.  Returns a new
 * image. */
image lwf_image_prepare(image im, const lwf_augment *aug, int on, int w, int h, lwf_rng *rng);

/* A loaded batch. */
typedef struct lwf_batch {
    int n;               /* rows */
    int *index;          /* (n) position of each row's image in the list */
    float *X;            /* (n, inputs) */
} lwf_batch;

typedef struct lwf_loader lwf_loader;

/* Loads batches in a background thread.  Batch k holds images
 * perm_e[(k*n + r) mod N] for rows r, perm_e being epoch e's shuffled order from
 * (seed, e); augmentation randoms come from (seed, k*n + r).  So a run repeats for a
 * seed and may start at any batch (resume). */
lwf_loader *lwf_loader_start(const lwf_list *paths, const lwf_augment *aug, int w, int h, int batch,
                             unsigned long long seed, long long first, lwf_err *err);
/* The next batch (owned by the loader until the next call); NULL and err on a bad image. */
const lwf_batch *lwf_loader_next(lwf_loader *ld, lwf_err *err);
void lwf_loader_stop(lwf_loader *ld);

/* ---- training (plugin/train.c, plugin/state.c) ---- */

/* "lwf", "finetune", "featext", "joint" ("?" for another value). */
const char *lwf_method_name(lwf_method m);

/* Optimiser state beside a backup (momentum buffers and counters), so a resumed run
 * continues exactly.  Written atomically. */
typedef struct lwf_state {
    long long iteration;
    unsigned long long seed;
    int method;          /* the run's lwf_method: resuming with another is refused */
} lwf_state;
int lwf_state_save(const network *net, const lwf_state *st, const char *path, lwf_err *err);
/* Returns 0 and fills st (and the update buffers), 1 if there is no file, -1 on error. */
int lwf_state_load(network *net, lwf_state *st, const char *path, lwf_err *err);

/* Writes layers layers[0..n) of net (layers 0..n-1 when layers is NULL), in that order,
 * as Darknet .weights (version 0.2.0, `seen` in the header), atomically (plugin/weights.c). */
int lwf_weights_save_layers(const network *net, const int *layers, int n, const char *path, size_t seen,
                            lwf_err *err);

/* ---- kernels (plugin/kernels.c, plugin/pool.c) ---- */

/* Installs the fast kernels on net (convolutional with batch-norm and activation,
 * maxpool, avgpool; every gemm already goes to OpenBLAS) and grows net->workspace for
 * them.  Does nothing in reference mode.  lwf_model_load calls it on every network it
 * builds.  Returns 0, or -1 with err on out of memory. */
int lwf_kernels_install(network *net, lwf_err *err);

/* Sets n floats to zero, split over the kernels' threads when large. */
void lwf_zero(float *x, size_t n);

/* One option of a cfg section, with its line. */
typedef struct lwf_opt {
    char *key, *val;
    int line;
} lwf_opt;

/* One section of a cfg file, as read by lwf_cfg_read. */
typedef struct lwf_section {
    char *type;          /* without brackets, e.g. "convolutional" */
    int line;            /* line of the [type] header */
    int nopts;
    lwf_opt *opts;
} lwf_section;

typedef struct lwf_cfgfile {
    char *path;
    int nsections;
    lwf_section *sections;
} lwf_cfgfile;

/* Reads a Darknet-style cfg: [sections], key=value lines, '#' and ';' comments
 * (a '#' anywhere starts a comment).  Fails on a line that is neither, on a key
 * given twice in one section, and on a file with no section. */
int lwf_cfg_read(const char *path, lwf_cfgfile *cf, lwf_err *err);
void lwf_cfg_free(lwf_cfgfile *cf);
/* The option `key` of s, or NULL. */
const lwf_opt *lwf_cfg_opt(const lwf_section *s, const char *key);

/* Parameters of a head's loss layer, owned by the layer (stored in l.cweights,
 * which libdarknet's free_layer frees and no CPU path of these layer types reads). */
typedef struct lwf_loss_params {
    float temperature;   /* T of [lwf_distill]; 1 for the new task */
    float lambda;        /* loss weight */
    int t2_scaling;      /* multiply the gradient by T^2 */
    int offset;          /* first column of this head's slice in a truth row */
    int truths;          /* width of a truth row (net->truths) */
    int targets;         /* [lwf_distill] only: 1 = the slice holds target probabilities
                          * (joint training on labels, T = 1), 0 = teacher logits */
    int rows;            /* rows the last forward scored (rows with an all-zero slice carry
                          * no label for this task and are skipped) */
} lwf_loss_params;

static inline lwf_loss_params *lwf_loss_params_of(const layer *l)
{
    return (lwf_loss_params *)(void *)l->cweights;
}

/* T^2 where t2_scaling applies (teacher mode), else 1: the loss's weight is lambda times
 * this, and the gradient's scale lambda / T times this. */
static inline float lwf_t2_factor(const lwf_loss_params *p)
{
    return p->t2_scaling && !p->targets ? p->temperature * p->temperature : 1.0f;
}

/* [lwf_distill]: input logits z (batch, inputs); truth slice = teacher logits. */
layer lwf_make_distill_layer(int batch, int inputs, float temperature, float lambda, int t2);
/* Turns a libdarknet [softmax] layer into the new task's slice-aware loss. */
int lwf_make_softmax_head(layer *l);
/* [task]: routes layer `src` (its output) to the head that follows. */
layer lwf_make_task_layer(int batch, int src, const layer *srcl);
/* Makes the [task] layer at index i read its source's output in place (its forward does
 * nothing) when the layer after it does not write its input; lwf_task_unshare_output
 * undoes that before the layers are freed. */
void lwf_task_share_output(network *net, int i);
void lwf_task_unshare_output(network *net, int i);

/* 0 if m's input takes the images lwf_image_load gives (3 channels); otherwise -1 and an
 * error naming the cfg: a network of c != 3 channels would read past (or misalign) them. */
int lwf_check_image_input(const lwf_model *m, lwf_err *err);

/* First index in p[0, n) that holds a NaN or an infinity, or n when all are finite. */
size_t lwf_first_nonfinite(const float *p, size_t n);

/* Index of the first layer in [0, upto) whose stored arrays (those a .weights file holds)
 * contain a NaN or an infinity, or -1. */
int lwf_weights_nonfinite(const network *net, int upto);

/* Whether l's backward leaves the input delta alone when it is NULL (so a frozen or
 * absent predecessor can be given none); other types need a buffer. */
int lwf_layer_skips_null_delta(const layer *l);

/* libdarknet's free_layer plus the per-class loss buffer it forgets (l.loss). */
void lwf_layer_free(layer l);

/* Loss of one loss layer per scored image (its l.cost / rows scored). */
float lwf_layer_loss(const layer *l);

/* Reads the next line of a text file (a cfg, .data, list or labels file) into *buf, getline's
 * buffer, without its line end ("\n" or "\r\n"): returns its length, -1 at the end of the
 * file, or -2 with err set ("path:line: ...", `what` naming the kind of file) on a read error,
 * a line longer than 65536 characters, a NUL byte or another control character but tab. */
long lwf_read_text_line(FILE *fp, char **buf, size_t *cap, const char *path, int line, const char *what,
                        lwf_err *err);

/* splitmix64's output function (Steele, Lea and Flood, 2014): a well-mixed 64-bit value
 * of z, a bijection.  The one mixer of the plugin: rng.c's streams (z = state plus the
 * golden-ratio increment) and dropout_kernels.c's per-value uniforms. */
static inline unsigned long long lwf_mix64(unsigned long long z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Softmax cross-entropy, the loss of both heads (softmax_head.c).  lwf_softmax_sum: the
 * largest of z (n) into *mx, returns sum_k exp((z_k - mx) / T), in double. */
double lwf_softmax_sum(const float *z, int n, float T, double *mx);
/* One image: loss_i = -t_i log p_i with log p_i = (z_i - mx) / T - lse (in double: no log
 * of a tiny probability; 0 where t_i = 0), delta_i = scale (t_i - p_i) (Darknet's sign:
 * -dL/dz_i = (t_i - p_i) / T; the caller's scale holds 1/T and lambda).  z, t, p, loss,
 * delta (n): logits, target probabilities, the probabilities softmax(z / T) the delta
 * uses, per-class loss terms and delta (written);
 * mx and lse = log of lwf_softmax_sum's sum.  Returns sum_i loss_i. */
double lwf_xent_row(int n, const float *z, double mx, double lse, float T, const float *t, const float *p,
                    float scale, float *loss, float *delta);

#endif
