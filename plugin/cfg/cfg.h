/* cfg/: reading a cfg (reader.c), .data, list and labels files (datacfg.c), and building
 * the model from them (builder.c: lwf_model_load, in lwf.h). */
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

/* Label of each path by Darknet's rule (the label string occurs in the path);
 * a path that matches no label or several is an error naming the list line. */
int lwf_labels_of(const lwf_list *paths, const char *listpath, const lwf_list *labels,
                  int *out /* (paths->n) */, lwf_err *err);

#endif
