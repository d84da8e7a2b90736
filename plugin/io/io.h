/* io/: what goes to and from files once a model is built: images and the batch loader
 * (loader.c), .weights (weights.c), the optimiser's state beside a backup (state.c). */
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
/* Returns 0 and fills st (and the update buffers), 1 if there is no file, -1 on error. */
int lwf_state_load(network *net, lwf_state *st, const char *path, lwf_err *err);

/* Writes layers layers[0..n) of net (layers 0..n-1 when layers is NULL), in that order,
 * as Darknet .weights (version 0.2.0, `seen` in the header), atomically (plugin/io/weights.c). */
int lwf_weights_save_layers(const network *net, const int *layers, int n, const char *path, size_t seen,
                            lwf_err *err);

/* Index of the first layer in [0, upto) whose stored arrays (those a .weights file holds)
 * contain a NaN or an infinity, or -1. */
int lwf_weights_nonfinite(const network *net, int upto);

#endif
