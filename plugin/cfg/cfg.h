/* cfg/: reading a cfg (reader.c), .data, list and labels files (datacfg.c), the one table
 * of the sections an LwF cfg may hold (sections.c), and building the model from them
 * (builder.c: lwf_model_load, in lwf.h). */
#ifndef LWF_CFG_H
#define LWF_CFG_H

#include "layers/layers.h"
#include "kernels/kernels.h"

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

/* ---- the section table (sections.c) ----
 * Every section an LwF cfg may name, stock and ours, with Darknet's aliases, its keys
 * (which are ours, refused, required, layer references), the check of what libdarknet
 * would trip over and the function that makes its layer.  The builder, lwf init and
 * lwf export all read it: a new section is one row. */

/* What a key's value must be. */
typedef enum {
    LWF_KEY_INT, LWF_KEY_FLOAT, LWF_KEY_POS /* a number > 0 */, LWF_KEY_STR /* not empty */,
    LWF_KEY_ACT /* an activation name */, LWF_KEY_INTLIST, LWF_KEY_FLOATLIST, LWF_KEY_POLICY
} lwf_key_type;

/* lwf_keydef.flags */
enum {
    LWF_KEY_OURS = 1,     /* the plugin's key in a stock section: lwf export leaves it out */
    LWF_KEY_REFUSED = 2,  /* stock Darknet reads it; an LwF cfg refuses it as "not supported" */
    LWF_KEY_REQUIRED = 4, /* the section needs it */
    LWF_KEY_LAYERREF = 8  /* layer numbers (lwf init and lwf export move them) */
};

typedef struct lwf_keydef {
    const char *key;
    lwf_key_type type;
    double lo, hi;       /* range of a number or of each list item */
    unsigned flags;
} lwf_keydef;

typedef enum {
    LWF_SEC_NET, LWF_SEC_CONV, LWF_SEC_CONN, LWF_SEC_MAXPOOL, LWF_SEC_AVGPOOL, LWF_SEC_DROPOUT,
    LWF_SEC_BATCHNORM, LWF_SEC_SOFTMAX, LWF_SEC_ACTIVATION, LWF_SEC_CROP, LWF_SEC_NORM, LWF_SEC_REORG,
    LWF_SEC_ROUTE, LWF_SEC_SHORTCUT, LWF_SEC_UPSAMPLE, LWF_SEC_TASK, LWF_SEC_DISTILL, LWF_SEC_GROW,
    LWF_SEC_YOLO, LWF_SEC_LWF_YOLO,
    LWF_SEC_REFUSED      /* a Darknet section an LwF classifier cfg refuses */
} lwf_sec_kind;

/* A section's place in an LwF cfg: what the builder's head walk does with it. */
typedef enum {
    LWF_ROLE_NONE,       /* refused */
    LWF_ROLE_NET,        /* the first section, once */
    LWF_ROLE_LAYER,      /* a trunk or head layer */
    LWF_ROLE_TASK,       /* opens a head */
    LWF_ROLE_OLD_LOSS,   /* ends an old task's head */
    LWF_ROLE_NEW_LOSS,   /* ends the new task's head */
    LWF_ROLE_DET_LOSS    /* [yolo], [lwf_yolo]: one of a detector's losses (a detector is one task) */
} lwf_sec_role;

/* lwf_secdef.flags */
enum {
    LWF_SEC_PLUGIN = 1,     /* ours: the generic layer keys (stopbackward, ...) do not apply */
    LWF_SEC_SHAPE_ONLY = 2, /* no weights, each output depends on one channel's values only
                             * (lwf init walks back over these to a head's class layer) */
    LWF_SEC_NO_DELTA = 4    /* libdarknet's layer has no delta buffer (the loss needs none) */
};

/* The builder's state while it makes layers (defined in builder.c's terms, here because the
 * makers of sections.c share it). */
typedef struct lwf_build {
    const char *file;
    lwf_err *err;
    network *net;        /* layers [0, net->n) built so far */
    size_t floats;       /* running estimate of the floats allocated */
    size_t budget;       /* refuse networks larger than this */
    int other_lo, other_hi; /* [other_lo, other_hi): the other heads' layers, which a head's
                             * [route] and [shortcut] may not read (empty in the trunk) */
    int trunk;           /* layers [0, trunk) are the trunk, once the first [task] is seen */
    const int *line;     /* (net->n) cfg line of each layer built so far, or NULL */
} lwf_build;

typedef struct lwf_secdef {
    const char *name;          /* as written in stock cfgs */
    const char *aliases[3];    /* Darknet's other names for it, NULL-terminated */
    lwf_sec_kind kind;
    lwf_sec_role role;
    unsigned flags;
    const lwf_keydef *keys;    /* its own keys, {0}-terminated */
    const char *class_key;     /* a layer that can give a head its class scores: the key of its
                                * output count (filters=, output=); else NULL */
    /* Refuses what libdarknet would assert on, divide by or overflow on, and counts the
     * floats a stock layer allocates (lwf_build.floats); may be NULL. */
    int (*check)(lwf_build *b, const lwf_section *s, const dn_size_params *p);
    /* libdarknet's parse_<section> and the buffers the plugin adds to its layer; returns
     * -1 when out of memory.  NULL for the plugin's own sections. */
    int (*parse)(list *opts, dn_size_params p, network *net, layer *l);
    int arrays;                /* (batch, inputs) float arrays the parsed layer allocates
                                * that `check` does not count */
    /* Makes the layer at p.index into *out (set even on failure, so what it allocated is
     * freed with the model).  NULL for [net] and refused sections. */
    int (*make)(lwf_build *b, const lwf_section *s, dn_size_params p, layer *out);
} lwf_secdef;

/* The table: every row, in order, ended by a row with a NULL name. */
const lwf_secdef *lwf_sections(void);
/* The row of a section named `type` (its name or an alias), or NULL when unknown. */
const lwf_secdef *lwf_section_def(const char *type);
/* Whether s names a section of this kind (false for an unknown section). */
int lwf_section_is(const lwf_section *s, lwf_sec_kind kind);
/* The role of s (LWF_ROLE_NONE for an unknown section). */
lwf_sec_role lwf_section_role(const lwf_section *s);
/* The definition of key in section d: its own keys, then for a stock layer the keys
 * parse_network_cfg reads for every layer (stopbackward, learning_rate, refused ones). */
const lwf_keydef *lwf_section_key(const lwf_secdef *d, const char *key);
/* Checks every key of s: known to its section and well formed ("file:line: ..." in err). */
int lwf_section_check_keys(const char *file, const lwf_section *s, const lwf_secdef *d, lwf_err *err);
/* The first key of d flagged LWF_KEY_REQUIRED that s lacks, or NULL. */
const lwf_keydef *lwf_section_missing(const lwf_section *s, const lwf_secdef *d);
/* Number of items of a comma-separated list, each parsed within [lo, hi]; -1 when one is
 * malformed or the list is empty. */
int lwf_check_list(const char *v, int is_float, double lo, double hi);
/* Adds `floats` the network will allocate for section s to b's estimate; an error when
 * over the budget. */
int lwf_build_account(lwf_build *b, const lwf_section *s, long long floats);
/* A Darknet options list (kvp*) over s's options (the strings stay s's), and its check
 * that the stock parser read every key ("has no effect here" otherwise).  free_opts
 * frees the list and kvps. */
list *lwf_section_opts(const lwf_section *s, dn_kvp **kvps);
void lwf_section_opts_free(list *l, dn_kvp *kvps);
int lwf_section_check_used(const char *file, const lwf_section *s, const dn_kvp *kvps, lwf_err *err);

/* The old detector of a grown one (the teacher): lwf_model_load with every [lwf_yolo] built
 * as the [yolo] it grew from (classes = old_classes, without the plugin's keys) and the
 * convolution before it with (old_classes + 5) x masks filters. */
lwf_model *lwf_model_load_old_detector(const char *cfgpath, const lwf_build_opts *opts, lwf_err *err);

/* How an old model's file fills layer i of a grown model m: 1 and `runs` runs of `rows`
 * outputs, run g into outputs [g * stride, g * stride + rows) of every stored array: a grown
 * class layer, one run of its K old outputs; a grown detector's convolution before an
 * [lwf_yolo], one run of 5 + K (box, objectness, the K old classes) per anchor, stride 5 + C.
 * 0: the layer is not grown (the whole layer, or none of it). */
int lwf_grown_rows(const lwf_model *m, int i, int *runs, int *stride, int *rows);

/* 1 if the cfg at path reads and has a [yolo] or [lwf_yolo] section (a detector), else 0
 * (lwf_model_load then says what is wrong with it). */
int lwf_cfg_is_detector(const char *cfgpath);

/* Label of each path by Darknet's rule (the label string occurs in the path);
 * a path that matches no label or several is an error naming the list line. */
int lwf_labels_of(const lwf_list *paths, const char *listpath, const lwf_list *labels,
                  int *out /* (paths->n) */, lwf_err *err);

#endif
