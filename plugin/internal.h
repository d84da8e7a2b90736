/* Helpers shared by the plugin's source files (not part of the public API):
 * strict number parsing, the cfg reader's section type, the loss layers' makers. */
#ifndef LWF_INTERNAL_H
#define LWF_INTERNAL_H

#include "lwf.h"
#include "dn.h"

/* Strict conversions: the whole string must be a number; return 0 or -1. */
int lwf_parse_int(const char *s, long lo, long hi, int *out);
int lwf_parse_float(const char *s, double lo, double hi, float *out);

/* strdup that returns NULL on NULL. */
char *lwf_strdup(const char *s);

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

#endif
