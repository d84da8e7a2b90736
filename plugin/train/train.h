/* train/: the record / warm-up / joint schedule (train.c: lwf_train, in lwf.h). */
#ifndef LWF_TRAIN_H
#define LWF_TRAIN_H

#include "io/io.h"
#include "run/run.h"

/* "lwf", "finetune", "featext", "joint" ("?" for another value). */
const char *lwf_method_name(lwf_method m);

#endif
