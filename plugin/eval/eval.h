/* eval/: validation and prediction of a built model (eval.c).  The interface is public:
 * lwf.h (lwf_validate, lwf_predict). */
#ifndef LWF_EVAL_H
#define LWF_EVAL_H

#include "io/io.h"
#include "run/run.h"



#endif
