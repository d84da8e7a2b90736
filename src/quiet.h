/* The command layer's choice about stderr: libdarknet prints a line of the layer table on
 * stderr for every layer it parses, whatever its caller asks, so a command that shows no
 * table points fd 2 at /dev/null around the call that builds the network.  Only the
 * commands do this (they own the process's descriptors); the plugin never redirects them. */
#ifndef LWF_QUIET_H
#define LWF_QUIET_H

#include "lwf.h"

/* Flushes stderr and points fd 2 at /dev/null.  Returns what lwf_quiet_end needs (-1 if
 * nothing was redirected). */
int lwf_quiet_begin(void);
/* Flushes stderr and puts fd 2 back. */
void lwf_quiet_end(int saved);

/* The model of cfg at batch 1 (valid, predict, map), built without its layer table;
 * NULL with err. */
lwf_model *lwf_model_load_quiet(const char *cfg, lwf_err *err);

/* map's and predict's error for a detector's weights file that holds only the old part of
 * a grown cfg (arguments: the file, the cfg) */
#define NOT_WHOLE                                                                               \
    "%s: holds only the old detector's part of %s (the file training grows): give the trained " \
    "weights (lwf train's <backup>/<cfg>.weights), or score the old detector with its own cfg"

#endif
