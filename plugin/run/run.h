/* run/: running the network by parts: plans (which layers run, in which mode, which learn)
 * and forward/backward/update restricted to one (step.c).  The interface is public: lwf.h
 * (lwf_plan, lwf_forward, lwf_backward, lwf_update). */
#ifndef LWF_RUN_H
#define LWF_RUN_H

#include "layers/layers.h"
#include "runtime/runtime.h"



#endif
