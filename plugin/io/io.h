/* io/: what goes to and from files once a model is built: images and the batch loader
 * (loader.c), their augmentation (augment.c), detection labels (boxes.c), .weights
 * (weights.c), the optimiser's state beside a backup (state.c). */
#ifndef LWF_IO_H
#define LWF_IO_H

#include "cfg/cfg.h"

/* Whether aug changes anything (random crop/scale, aspect, angle, colour, flip). */
int lwf_augment_is_on(const lwf_augment *aug, int w);

/* One network input of w x h from im: with augmentation on, Darknet's classifier
 * augmentation (random scale/aspect/rotation crop, flip, hue/saturation/exposure) with
 * randoms from rng; off (or aug->center), Darknet's centre crop to w x h.  Returns a new
 * image. */
image lwf_image_prepare(image im, const lwf_augment *aug, int on, int w, int h, lwf_rng *rng);

/* Darknet's random_distort_image with randoms from rng: hue shifted by up to +-aug->hue,
 * saturation and exposure scaled by rand_scale; nothing when all three are neutral. */
void lwf_distort_random(image im, const lwf_augment *aug, lwf_rng *rng);

/* ---- detection labels (boxes.c) ---- */

#define LWF_MAX_BOXES 90     /* boxes an image may hold: the truth [yolo] reads */
#define LWF_MIN_BOX 0.01f    /* a box narrower or lower than this after augmentation is dropped */

/* One labelled box: class and box (centre x, y and size w, h, relative to the image). */
typedef struct lwf_box {
    int cls;
    box b;
} lwf_box;

typedef struct lwf_boxes {
    int n;
    lwf_box box[LWF_MAX_BOXES];
} lwf_boxes;

/* Darknet's label file of an image: its first "images" replaced by "labels", then its
 * first "JPEGImages" by "labels", its extension (if any) by ".txt".  Newly allocated; NULL
 * when out of memory.  (Stock Darknet also rewrites "raw" and only some extensions: not
 * here.) */
char *lwf_label_path(const char *image_path);

/* Reads a label file: one "class x y w h" line per box (blank lines skipped), class a whole
 * number in [0, classes), x y w h numbers in [0, 1], w and h > 0; at most LWF_MAX_BOXES
 * boxes.  A missing or unreadable file, a line that breaks a rule, or one box too many is
 * an error naming the file and line.  out->n is 0 for an empty file. */
int lwf_boxes_read(const char *path, int classes, lwf_boxes *out, lwf_err *err);

/* Moves every box as the image is moved: x' = x sx + dx (likewise y), mirrored when flip,
 * clipped to the image, and drops a box left narrower or lower than LWF_MIN_BOX (the rest
 * keep their order). */
void lwf_boxes_place(lwf_boxes *bs, float dx, float dy, float sx, float sy, int flip);

/* Darknet's truth row for [yolo], (LWF_MAX_BOXES, 5): x, y, w, h, class + shift per box,
 * the boxes in order, then zeros (the layer stops at the first zero x). */
void lwf_boxes_truth(const lwf_boxes *bs, int shift, float *truth);

/* Darknet's detection augmentation: im placed at a new aspect ratio (jittered by up to
 * jitter times its sides) filling the w x h canvas's width or height, at a random offset,
 * on grey (.5); then colour distortion (aug's hue, saturation, exposure) and a flip when
 * aug->flip, half the time; bs moved the same way.  Randoms from rng.  Returns a new image. */
image lwf_det_image_prepare(image im, const lwf_augment *aug, float jitter, int w, int h, lwf_rng *rng,
                            lwf_boxes *bs);

/* A loaded batch. */
typedef struct lwf_batch {
    int n;               /* rows */
    int *index;          /* (n) position of each row's image in the list */
    float *X;            /* (n, inputs) */
    float *boxes;        /* detection: (n, LWF_MAX_BOXES, 5) each row's boxes as [yolo]'s truth;
                          * NULL for a classifier */
} lwf_batch;

/* What a detector's loader needs beyond a classifier's. */
typedef struct lwf_det_data {
    float jitter;        /* Darknet's detection jitter ([yolo] jitter=) */
    int classes;         /* classes the list's label files may name */
    int shift;           /* added to every id (a new task's ids follow the K old classes) */
} lwf_det_data;

typedef struct lwf_loader lwf_loader;

/* Loads batches in a background thread.  Batch k holds images
 * perm_e[(k*n + r) mod N] for rows r, perm_e being epoch e's shuffled order from
 * (seed, e); augmentation randoms come from (seed, k*n + r).  So a run repeats for a
 * seed and may start at any batch (resume). */
lwf_loader *lwf_loader_start(const lwf_list *paths, const lwf_augment *aug, int w, int h, int batch,
                             unsigned long long seed, long long first, lwf_err *err);
/* The same for a detector: each row's image and boxes augmented together by Darknet's
 * detection jitter (lwf_det_image_prepare; aug's flip and colour keys), the boxes from each
 * image's label file (lwf_label_path); a bad label file stops the loader like a bad image. */
lwf_loader *lwf_loader_start_det(const lwf_list *paths, const lwf_augment *aug, const lwf_det_data *det, int w, int h,
                                 int batch, unsigned long long seed, long long first, lwf_err *err);
/* The next batch (owned by the loader until the next call); NULL and err on a bad image. */
const lwf_batch *lwf_loader_next(lwf_loader *ld, lwf_err *err);
void lwf_loader_stop(lwf_loader *ld);

/* 0 if m's input takes the images lwf_image_load gives (3 channels); otherwise -1 and an
 * error naming the cfg: a network of c != 3 channels would read past (or misalign) them. */
int lwf_check_image_input(const lwf_model *m, lwf_err *err);

/* Optimiser state beside a backup (momentum buffers and counters), so a resumed run
 * continues exactly.  Written atomically. */
typedef struct lwf_state {
    long long iteration;
    unsigned long long seed;
    int method;          /* the run's lwf_method: resuming with another is refused */
} lwf_state;
int lwf_state_save(const network *net, const lwf_state *st, const char *path, lwf_err *err);
/* A .state file read whole and checked against a network, not yet applied to it. */
typedef struct lwf_state_file {
    lwf_state st;        /* what the run that wrote it was: its iteration, seed, method */
    int t;               /* updates done (net->t) */
    size_t n;            /* floats in momentum */
    float *momentum;     /* (n) every layer's update buffers, layer after layer (owned) */
} lwf_state_file;
/* Reads path into *f and checks all of it against net (format, layer and float counts,
 * every float finite), changing nothing in net: 0 (free *f with lwf_state_file_free),
 * 1 if there is no file, -1 and err (*f empty).  Whether the state belongs to the run
 * being resumed (iteration, method) is the caller's to decide before lwf_state_apply. */
int lwf_state_read(const network *net, const char *path, lwf_state_file *f, lwf_err *err);
/* Copies f's momentum and update count into net, which lwf_state_read checked f against. */
void lwf_state_apply(network *net, const lwf_state_file *f);
void lwf_state_file_free(lwf_state_file *f);

/* Writes layers layers[0..n) of net (layers 0..n-1 when layers is NULL), in that order,
 * as Darknet .weights (version 0.2.0, `seen` in the header), atomically (plugin/io/weights.c). */
int lwf_weights_save_layers(const network *net, const int *layers, int n, const char *path, size_t seen,
                            lwf_err *err);

/* Copies the stored arrays (those a .weights file holds) of layers [0, upto) of src into
 * dst, a network built from the same cfg (at any batch): dst then computes what src's
 * weights file would give.  changed (may be NULL; (upto)) gets 1 for each layer whose
 * arrays were not already bit for bit src's.  0, or -1 when a layer's arrays differ in
 * shape (another cfg). */
int lwf_weights_copy(network *dst, const network *src, int upto, unsigned char *changed);

/* Between a grown detector and its old one (lwf_model_load_old_detector of its cfg): every
 * layer's stored arrays, and in each convolution before an [lwf_yolo] each anchor's box,
 * objectness and K old class rows, as lwf_weights_load_model grows an old detector's file.
 * to_old = 1 copies the student's into old, 0 old's into the student's (its new class rows
 * left as they are).  0, or -1 when a layer does not match. */
int lwf_detector_copy(lwf_model *student, network *old, int to_old, lwf_err *err);

/* Index of the first layer in [0, upto) whose stored arrays (those a .weights file holds)
 * contain a NaN or an infinity, or -1. */
int lwf_weights_nonfinite(const network *net, int upto);

#endif
